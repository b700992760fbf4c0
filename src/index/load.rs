//! Loading a collective's indexes: from their snapshots brought up to date
//! by the change log when they are usable, from redb alone otherwise.
//!
//! The experience snapshot carries everything a load would otherwise derive
//! from the records (slot map and filter columns), and the change-log
//! position it covers. A clean open therefore reads the snapshot, asks the
//! log which records changed after that position (usually none), reads
//! those records, and puts the stored vectors back into the graph straight
//! from their rows — no record is decoded. Anything that does not match
//! (a damaged or foreign snapshot, a log compacted past its position,
//! columns that disagree with the graph, a record missing without a log
//! entry) falls back to the scan of every record.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::collective::{
    decode_slots, extra_payload, snapshot_path, CollectiveIndex, IdIndex, InsightSlots,
    EXPERIENCES_EXTRA, INSIGHTS_EXTRA,
};
use super::{IndexConfig, RowFill, Slot, SnapshotFile, StagedIndex};
use crate::collective::CollectiveId;
use crate::error::Result;
use crate::experience::{Experience, ExperienceId};
use crate::insight::InsightId;
use crate::search::columns::Columns;
use crate::storage::{RedbStorage, StorageError, StorageRead};

/// A loaded collective index.
pub(crate) struct Loaded {
    pub(crate) index: CollectiveIndex,
    /// Both indexes came from their snapshots with nothing to reconcile.
    pub(crate) snapshot_current: bool,
    /// The change-log position the index reflects: every change of the
    /// collective up to it is in the index.
    pub(crate) sequence: u64,
}

/// How experience indexes were loaded since the handle opened, as
/// reported by [`PulseHandle::engine_stats`](crate::PulseHandle::engine_stats).
#[derive(Debug, Default)]
pub(crate) struct LoadCounts {
    /// From the snapshot alone: nothing changed since it was written.
    pub(crate) snapshot: AtomicU64,
    /// From the snapshot and the change-log entries written after it.
    pub(crate) replayed: AtomicU64,
    /// From a scan of every record (no usable snapshot).
    pub(crate) scanned: AtomicU64,
}

/// The experience side of a load.
struct Experiences {
    columns: Columns,
    index: IdIndex<ExperienceId>,
    /// The index differs from what the snapshot holds.
    changed: bool,
}

/// Builds the collective's indexes (see the module docs). The result holds
/// exactly redb's records.
pub(crate) fn load(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
    dir: Option<&Path>,
    counts: &LoadCounts,
) -> Result<Loaded> {
    let started = std::time::Instant::now();
    let current = storage.current_sequence()?;
    let restored = match dir {
        Some(dir) => from_snapshot(id, storage, config, dimension, dir, current)?,
        None => None,
    };
    let experiences = match restored {
        Some(e) => {
            let counter = if e.changed {
                &counts.replayed
            } else {
                &counts.snapshot
            };
            counter.fetch_add(1, Ordering::Relaxed);
            e
        }
        None => {
            counts.scanned.fetch_add(1, Ordering::Relaxed);
            scan(id, storage, config, dimension)?
        }
    };
    tracing::debug!(
        collective = %id,
        snapshot_unchanged = !experiences.changed,
        elapsed_us = started.elapsed().as_micros() as u64,
        "experience index loaded"
    );
    let (insights, insight_slots, insights_changed) =
        load_insights(id, storage, config, dimension, dir, current)?;
    Ok(Loaded {
        index: CollectiveIndex {
            id,
            columns: RwLock::new(experiences.columns),
            experiences: experiences.index,
            insights,
            insight_slots: Mutex::new(insight_slots),
        },
        snapshot_current: !experiences.changed && !insights_changed,
        sequence: current,
    })
}

/// Live vectors from which a snapshot that kept its vectors decodes its
/// columns on a second thread while the graph restores (measured: below
/// it the second thread costs more than it saves).
const PARALLEL_RESTORE_ROWS: usize = 32_768;

/// The experience index from its snapshot and the change-log entries
/// after it; `None` (logged) when they cannot give it exactly.
fn from_snapshot(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
    dir: &Path,
    current: u64,
) -> Result<Option<Experiences>> {
    let path = snapshot_path(dir, id, "experiences");
    let refuse = |reason: &str| {
        tracing::warn!(path = %path.display(), reason, "experience snapshot not used; scanning");
        Ok(None)
    };
    let Some(mut file) = SnapshotFile::read(&path, dimension) else {
        return Ok(None);
    };
    let since = file.sequence();
    if since > current {
        return refuse("ahead of the change log");
    }
    let extra = file.take_extra();
    let Some(saved) = extra_payload(&extra, id, EXPERIENCES_EXTRA) else {
        return refuse("written for another collective or index");
    };
    let mut live_slots = file.slots().to_vec();
    live_slots.sort_unstable();
    // A snapshot that kept its vectors restores its graph at once (while
    // the columns decode, when it is large enough to gain from a second
    // thread); otherwise the columns name the vectors to put back first.
    let (columns, pending, restored) = match file.is_filled() {
        true if live_slots.len() >= PARALLEL_RESTORE_ROWS => {
            let (columns, main) = std::thread::scope(|scope| {
                let columns = scope.spawn(|| Columns::decode(saved));
                let main = file.restore(config);
                (columns.join().ok().flatten(), main)
            });
            (columns, None, Some(main))
        }
        true => (Columns::decode(saved), None, Some(file.restore(config))),
        false => (Columns::decode(saved), Some(file), None),
    };
    let Some(mut columns) = columns else {
        return refuse("filter columns unreadable");
    };
    let held: Vec<Slot> = columns.slot_ids().iter().map(|(slot, _)| *slot).collect();
    if held != live_slots {
        return refuse("filter columns disagree with the graph");
    }
    let Some(touched) = storage.touched_since(id, since, current)? else {
        return refuse("change log no longer reaches back to it");
    };
    let (gone, added) = reconcile(id, storage, &mut columns, &touched.experiences)?;
    let live = columns.slot_ids();
    let main = match (pending, restored) {
        (Some(file), _) => {
            // The vectors of the records the snapshot holds, from redb,
            // straight into the graph's storage as FAISS reads it.
            let mut rows: Vec<(usize, ExperienceId)> = live
                .iter()
                .filter_map(|(slot, eid)| Some((file.row_of(*slot)?, *eid)))
                .collect();
            rows.sort_unstable_by_key(|(row, _)| *row);
            let mut failure = None;
            let mut complete = false;
            let main = file.restore_with(config, &mut |target| {
                match fill_vectors(storage, target, &rows) {
                    Ok(all) => complete = all,
                    Err(e) => failure = Some(e),
                }
                complete
            });
            if let Some(e) = failure {
                return Err(e);
            }
            if !complete {
                return refuse("a record it holds is missing or of another dimension");
            }
            main
        }
        (None, restored) => restored.flatten(),
    };
    let Some(main) = main else {
        return Ok(None);
    };
    let index = IdIndex::new(StagedIndex::from_main(main));
    let named: Vec<(Slot, ExperienceId, &[f32])> = live
        .iter()
        .map(|(slot, eid)| (*slot, *eid, &[][..]))
        .collect();
    index.record_ids(&named)?;
    for slot in &gone {
        index.index.remove(*slot)?;
    }
    add_records(&mut columns, &index, &added)?;
    Ok(Some(Experiences {
        columns,
        index,
        changed: !touched.experiences.is_empty(),
    }))
}

/// Brings snapshot columns up to date with the records the change log
/// names: an update is applied in place; returns the slots of the records
/// gone since, and the records (with vectors) new since.
fn reconcile(
    id: CollectiveId,
    storage: &RedbStorage,
    columns: &mut Columns,
    touched: &HashSet<ExperienceId>,
) -> Result<(Vec<Slot>, Vec<Experience>)> {
    let mut gone: Vec<Slot> = Vec::new();
    let mut added: Vec<Experience> = Vec::new();
    for eid in touched {
        let now = storage
            .get_experience(*eid)?
            .filter(|e| e.collective_id == id);
        match (columns.slot_of(eid), now) {
            (Some(_), Some(e)) => columns.update(&e),
            (Some(_), None) => gone.extend(columns.remove(eid)),
            (None, Some(e)) => added.push(e),
            (None, None) => {}
        }
    }
    Ok((gone, added))
}

/// Rows per thread below which filling vectors stays on one thread.
const ROWS_PER_FILL_THREAD: usize = 4096;

/// Puts the stored vector of each `(row, id)` (sorted by row) into
/// `target`, reading the rows on up to four threads (each its own read
/// transaction and its own run of rows). `false` when a record is missing
/// or of another dimension.
fn fill_vectors(
    storage: &RedbStorage,
    target: RowFill<'_>,
    rows: &[(usize, ExperienceId)],
) -> Result<bool> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4)
        .min(rows.len() / ROWS_PER_FILL_THREAD)
        .max(1);
    let per_thread = rows.len().div_ceil(threads).max(1);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = target;
    for chunk in rows.chunks(per_thread) {
        let next_row = rows
            .get(parts.len() * per_thread + chunk.len())
            .map_or(usize::MAX, |(row, _)| *row);
        let (mine, others) = rest.split_at(next_row);
        parts.push((chunk, mine));
        rest = others;
    }
    let fill = |(chunk, mut target): (&[(usize, ExperienceId)], RowFill<'_>)| -> Result<bool> {
        let ids: Vec<ExperienceId> = chunk.iter().map(|(_, eid)| *eid).collect();
        let mut vector: Vec<f32> = Vec::new();
        let mut put = true;
        let found = storage.visit_embeddings(&ids, &mut |i, bytes| {
            vector.clear();
            vector.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            put &= target.put(chunk[i].0, &vector);
        })?;
        Ok(found && put)
    };
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Ok(true);
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = parts.map(|part| scope.spawn(move || fill(part))).collect();
        let mut all = fill(first)?;
        for handle in others {
            all &= handle
                .join()
                .map_err(|_| StorageError::Corrupt("vector fill thread panicked".into()))??;
        }
        Ok(all)
    })
}

/// The experience index built from every stored record.
fn scan(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
) -> Result<Experiences> {
    // Records first (without vectors), then their vectors a chunk at a
    // time: only one chunk of vectors is held besides the index.
    let mut records: Vec<Experience> = Vec::new();
    storage.scan_experiences(id, false, &mut |e| records.push(e))?;
    let mut columns = Columns::default();
    let index = IdIndex::new(StagedIndex::new(dimension, config)?);
    for chunk in records.chunks_mut(4096) {
        for e in chunk.iter_mut() {
            e.embedding = storage.get_embedding(e.id)?.ok_or_else(|| {
                StorageError::Corrupt(format!("experience {} has no embedding", e.id))
            })?;
        }
        add_records(&mut columns, &index, chunk)?;
        for e in chunk.iter_mut() {
            e.embedding = Vec::new();
        }
    }
    Ok(Experiences {
        columns,
        index,
        changed: true,
    })
}

/// Adds records (with their embeddings) under new slots, straight into the
/// graph.
fn add_records(
    columns: &mut Columns,
    index: &IdIndex<ExperienceId>,
    records: &[Experience],
) -> Result<()> {
    for chunk in records.chunks(4096) {
        let mut items: Vec<(Slot, ExperienceId, &[f32])> = Vec::with_capacity(chunk.len());
        for e in chunk {
            let slot = columns.next_slot();
            columns.insert(slot, e);
            items.push((slot, e.id, e.embedding.as_slice()));
        }
        index.add_direct(&items)?;
    }
    Ok(())
}

/// The insight index: from its snapshot reconciled with the stored
/// insights (few, read whole), or built from them. Returns whether it
/// differs from the snapshot.
fn load_insights(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
    dir: Option<&Path>,
    current: u64,
) -> Result<(IdIndex<InsightId>, InsightSlots, bool)> {
    let mut stored = Vec::new();
    loop {
        let page = storage.list_insight_ids(id, 1000, stored.len())?;
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    let snapshot = dir
        .and_then(|dir| SnapshotFile::read(&snapshot_path(dir, id, "insights"), dimension))
        .filter(|file| file.sequence() <= current)
        .and_then(|file| {
            let payload = extra_payload(file.extra(), id, INSIGHTS_EXTRA)?;
            Some((decode_slots(payload, file.slots())?, file))
        });
    let restored = match snapshot {
        Some((slots, mut file)) => {
            let kept = file.is_filled();
            for (slot, raw) in slots.iter().filter(|_| !kept) {
                if let Some(insight) = storage.get_insight(InsightId::from_bytes(*raw))? {
                    file.fill(*slot, &insight.embedding);
                }
            }
            file.restore(config).map(|index| (index, slots))
        }
        None => None,
    };
    let mut changed = restored.is_none();
    let mut slots: HashMap<InsightId, Slot> = HashMap::new();
    let mut next: Slot = 0;
    let index = match restored {
        Some((main, saved)) => {
            let index = IdIndex::new(StagedIndex::from_main(main));
            let known: HashSet<InsightId> = stored.iter().copied().collect();
            for (slot, raw) in &saved {
                let iid = InsightId::from_bytes(*raw);
                next = next.max(slot + 1);
                if known.contains(&iid) && index.index.contains(*slot)? {
                    slots.insert(iid, *slot);
                    index.record_ids(&[(*slot, iid, &[])])?;
                } else {
                    changed |= index.index.remove(*slot)?;
                }
            }
            index
        }
        None => IdIndex::new(StagedIndex::new(dimension, config)?),
    };
    for iid in stored {
        if slots.contains_key(&iid) {
            continue;
        }
        let Some(insight) = storage.get_insight(iid)? else {
            continue;
        };
        index.add_direct(&[(next, iid, insight.embedding.as_slice())])?;
        slots.insert(iid, next);
        next += 1;
        changed = true;
    }
    Ok((index, InsightSlots { slots, next }, changed))
}
