//! The experience index from its snapshot brought up to date by the change
//! log (see the parent module).
//!
//! Two things happen at once on a large collective: this thread has FAISS
//! restore the graph from the snapshot, while a second one prepares the
//! filter columns (decodes them, checks them against the graph, applies
//! the changes logged since). A snapshot that kept its vectors needs
//! nothing else; a graph-only one has its vectors read from redb straight
//! into FAISS's storage when FAISS asks for it, which waits for the
//! prepared columns (they say which record sits in each row).

use std::collections::HashSet;
use std::path::Path;
use std::thread::ScopedJoinHandle;

use super::{add_records, Experiences};
use crate::collective::CollectiveId;
use crate::error::Result;
use crate::experience::{Experience, ExperienceId};
use crate::index::collective::{extra_payload, snapshot_path, IdIndex, EXPERIENCES_EXTRA};
use crate::index::{IndexConfig, RowFill, Slot, SnapshotFile, StagedIndex};
use crate::search::columns::Columns;
use crate::storage::{RedbStorage, StorageError, StorageRead};

/// Live vectors from which the columns are prepared on a second thread
/// while the graph restores. Measured with repeated reopens: at 15 000
/// vectors the thread made the first answer slower (35 ms against 23), at
/// 150 000 it saved 60–70 ms; the bound sits between.
const PARALLEL_RESTORE_ROWS: usize = 32_768;

/// Rows per thread below which filling vectors stays on one thread.
const ROWS_PER_FILL_THREAD: usize = 4096;

/// Columns brought up to date with the log, and what the graph must change.
struct Ready {
    columns: Columns,
    /// Slots of the records gone since the snapshot.
    gone: Vec<Slot>,
    /// Records (with vectors) new since the snapshot.
    added: Vec<Experience>,
    /// The log named records of the collective after the snapshot.
    changed: bool,
}

/// A preparation: ready, refused (the reason), or failed.
type Prepared = Result<std::result::Result<Ready, &'static str>>;

/// A preparation, running on its own thread until its outcome is asked.
struct Preparation<'s> {
    running: Option<ScopedJoinHandle<'s, Prepared>>,
    outcome: Option<Prepared>,
}

impl Preparation<'_> {
    /// The columns, once ready (waiting for the thread the first time);
    /// `None` when refused or failed.
    fn ready(&mut self) -> Option<&Ready> {
        if let Some(running) = self.running.take() {
            let outcome = running
                .join()
                .unwrap_or(Ok(Err("column preparation panicked")));
            self.outcome = Some(outcome);
        }
        match &self.outcome {
            Some(Ok(Ok(ready))) => Some(ready),
            _ => None,
        }
    }

    fn into_outcome(mut self) -> Prepared {
        self.ready();
        self.outcome.unwrap_or(Ok(Err("column preparation lost")))
    }
}

/// The experience index from its snapshot and the change-log entries
/// after it; `None` (logged) when they cannot give it exactly.
pub(super) fn from_snapshot(
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
    let live_rows = file.live_rows();
    let prepare = || prepare(id, storage, saved, &live_rows, since, current);

    let mut fill_failure = None;
    let (prepared, main) = std::thread::scope(|scope| {
        let mut preparation = if live_rows.len() >= PARALLEL_RESTORE_ROWS {
            Preparation {
                running: Some(scope.spawn(prepare)),
                outcome: None,
            }
        } else {
            match prepare() {
                Ok(Ok(ready)) => Preparation {
                    running: None,
                    outcome: Some(Ok(Ok(ready))),
                },
                // Nothing to restore for.
                other => return (other, None),
            }
        };
        let main = file.restore_with(config, &mut |target| {
            let Some(ready) = preparation.ready() else {
                return false;
            };
            let rows = rows_to_fill(&ready.columns, &live_rows);
            fill_vectors(storage, target, &rows).unwrap_or_else(|e| {
                fill_failure = Some(e);
                false
            })
        });
        (preparation.into_outcome(), main)
    });
    if let Some(e) = fill_failure {
        return Err(e);
    }
    let Ready {
        mut columns,
        gone,
        added,
        changed,
    } = match prepared? {
        Ok(ready) => ready,
        Err(reason) => return refuse(reason),
    };
    // A graph that did not restore was logged by the snapshot.
    let Some(main) = main else {
        return Ok(None);
    };
    let index = IdIndex::new(StagedIndex::from_main(main));
    let named: Vec<(Slot, ExperienceId, &[f32])> = columns
        .slot_ids()
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
        changed,
    }))
}

/// Decodes the saved columns, checks that they name exactly the graph's
/// live slots (`live_rows`, by slot), and brings them up to date with the
/// records the change log names after `since`.
fn prepare(
    id: CollectiveId,
    storage: &RedbStorage,
    saved: &[u8],
    live_rows: &[(Slot, usize)],
    since: u64,
    current: u64,
) -> Prepared {
    let Some(mut columns) = Columns::decode(saved) else {
        return Ok(Err("filter columns unreadable"));
    };
    let held = columns.slot_ids();
    let agree =
        held.len() == live_rows.len() && held.iter().zip(live_rows).all(|((a, _), (b, _))| a == b);
    if !agree {
        return Ok(Err("filter columns disagree with the graph"));
    }
    let Some(touched) = storage.touched_since(id, since, current)? else {
        return Ok(Err("change log no longer reaches back to it"));
    };
    let (gone, added) = reconcile(id, storage, &mut columns, &touched.experiences)?;
    Ok(Ok(Ready {
        columns,
        gone,
        added,
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

/// The row and record of every live slot of `columns`, by row.
fn rows_to_fill(columns: &Columns, live_rows: &[(Slot, usize)]) -> Vec<(usize, ExperienceId)> {
    let mut rows: Vec<(usize, ExperienceId)> = columns
        .slot_ids()
        .into_iter()
        .filter_map(|(slot, eid)| {
            let at = live_rows.binary_search_by_key(&slot, |(s, _)| *s).ok()?;
            Some((live_rows[at].1, eid))
        })
        .collect();
    rows.sort_unstable_by_key(|(row, _)| *row);
    rows
}

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
