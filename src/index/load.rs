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
    INSIGHTS_EXTRA,
};
use super::{IndexConfig, Slot, SnapshotFile, StagedIndex};
use crate::collective::CollectiveId;
use crate::error::Result;
use crate::experience::{Experience, ExperienceId};
use crate::insight::InsightId;
use crate::search::columns::Columns;
use crate::storage::{RedbStorage, StorageError, StorageRead};

mod restore;

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
        Some(dir) => restore::from_snapshot(id, storage, config, dimension, dir, current)?,
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
