//! [`CollectiveIndex`]: everything a search of one collective reads — the
//! experience and insight vector indexes, the ids under their slots and the
//! filter columns — shared between the collective actor, which applies
//! committed writes in commit order, and the searches, which read it
//! directly on the blocking pool without going through the actor's mailbox.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use super::{IndexError, Slot, SlotSet, StagedIndex};
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::experience::{Experience, ExperienceId};
use crate::insight::InsightId;
use crate::search::columns::Columns;
use crate::search::SearchFilter;
use crate::storage::{Applied, RedbStorage, StorageRead};

/// What a collective's vector indexes hold, as reported by
/// [`PulseHandle::index_stats`](crate::PulseHandle::index_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Live experience vectors (archived ones included: the filter excludes
    /// them, the index keeps them). Equals the collective's stored
    /// `experience_count` whenever the index agrees with redb.
    pub indexed: usize,
    /// Of `indexed`, the vectors still in the exact write buffer, waiting to
    /// be moved into the main index (searched exactly meanwhile).
    pub staged: usize,
    /// Deleted experience vectors still taking space until the next rebuild.
    pub tombstones: usize,
    /// Whether the main experience index is an HNSW graph (otherwise exact).
    pub hnsw: bool,
    /// Live insight vectors.
    pub insights: usize,
}

/// Most vectors waiting in a write buffer before writers wait for the drain.
pub(crate) const MAX_STAGED: usize = 4096;
/// How often a writer held back by a full buffer looks at it again while
/// another drain makes room.
const BACKPRESSURE_POLL: std::time::Duration = std::time::Duration::from_millis(1);
/// Vectors moved into the graph per graph-lock hold while searches run.
const DRAIN_CHUNK: usize = 8;
/// Chunk size while the buffer is more than half full: FAISS inserts
/// batches of more than 100 vectors on every OpenMP thread, which drains
/// faster but holds the graph lock longer.
const DRAIN_CHUNK_PRESSED: usize = 128;
/// Chunk size while writers are active and nobody searches: FAISS inserts
/// up to 100 vectors on one thread, leaving the other cores to the writes.
const DRAIN_CHUNK_ONE_CORE: usize = 96;
/// Quiet time after which searches or writes no longer count as active.
pub(crate) const IDLE_DRAIN_DELAY: std::time::Duration = std::time::Duration::from_millis(20);
/// Rounds of [`IdIndex::search_records`] before it answers with what it has.
const MAX_SEARCH_ROUNDS: usize = 8;

fn poisoned() -> Error {
    Error::Index(IndexError::Faiss(
        "index lock poisoned by a panic during an update".into(),
    ))
}

/// A vector index and the id stored under each of its slots; internally
/// synchronised.
#[derive(Debug)]
pub(crate) struct IdIndex<Id> {
    pub(crate) index: StagedIndex,
    ids: RwLock<Vec<Option<Id>>>,
}

impl<Id: Copy> IdIndex<Id> {
    pub(crate) fn new(index: StagedIndex) -> Self {
        IdIndex {
            index,
            ids: RwLock::new(Vec::new()),
        }
    }

    /// The ids of the live vectors, in slot order.
    ///
    /// # Errors
    /// A poisoned lock.
    pub(crate) fn live_ids(&self) -> Result<Vec<Id>> {
        let ids = self.ids.read().map_err(|_| poisoned())?;
        Ok(ids.iter().flatten().copied().collect())
    }

    /// Buffers vectors: searchable at once, moved into the graph by a drain.
    fn add(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
        // Ids first, so a search that finds a new slot can name it.
        self.record_ids(items)?;
        let vectors: Vec<(Slot, &[f32])> = items.iter().map(|(s, _, v)| (*s, *v)).collect();
        Ok(self.index.add(&vectors)?)
    }

    /// Adds straight to the graph (loading, nobody waiting).
    pub(crate) fn add_direct(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
        self.record_ids(items)?;
        let vectors: Vec<(Slot, &[f32])> = items.iter().map(|(s, _, v)| (*s, *v)).collect();
        Ok(self.index.add_direct(&vectors)?)
    }

    /// Names the slots of vectors already in the index (a restored snapshot).
    pub(crate) fn record_ids(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
        let mut ids = self.ids.write().map_err(|_| poisoned())?;
        for (slot, id, _) in items {
            let i = *slot as usize;
            if ids.len() <= i {
                ids.resize(i + 1, None);
            }
            ids[i] = Some(*id);
        }
        Ok(())
    }

    fn remove(&self, slots: &[Slot]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        self.index.remove_many(slots)?;
        let mut ids = self.ids.write().map_err(|_| poisoned())?;
        for slot in slots {
            if let Some(cell) = ids.get_mut(*slot as usize) {
                *cell = None;
            }
        }
        Ok(())
    }

    /// The ids of the `k` nearest live vectors, and how many hits the
    /// index gave (a slot removed since the index search has no id any more
    /// and is left out, so the list can be shorter).
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
    ) -> Result<(Vec<(Id, f32)>, usize)> {
        let hits = self.index.search(query, k, eligible)?;
        let found = hits.len();
        let ids = self.ids.read().map_err(|_| poisoned())?;
        let named = hits
            .into_iter()
            .filter_map(|h| {
                let id = ids.get(h.slot as usize).copied().flatten()?;
                Some((id, h.similarity))
            })
            .collect();
        Ok((named, found))
    }

    /// Applies added and removed vectors. The buffer is searched by brute
    /// force, so it stays bounded: before adding, the writer makes room
    /// until the new vectors fit under [`MAX_STAGED`] (a batch larger than
    /// the bound first empties the buffer, and is drained back under it
    /// after), so no reader ever sees more buffered than the bound or one
    /// batch. The writer inserts into the graph itself unless a drain is
    /// running; then that drain is making room, and the writer looks again
    /// shortly.
    fn update(&self, added: &[(Slot, Id, Vec<f32>)], removed: &[Slot]) -> Result<()> {
        self.remove(removed)?;
        if added.is_empty() {
            return Ok(());
        }
        self.make_room(MAX_STAGED.saturating_sub(added.len()))?;
        let items: Vec<(Slot, Id, &[f32])> = added
            .iter()
            .map(|(s, id, v)| (*s, *id, v.as_slice()))
            .collect();
        self.add(&items)?;
        self.make_room(MAX_STAGED)
    }

    /// Moves buffered vectors into the graph until at most `room` remain.
    fn make_room(&self, room: usize) -> Result<()> {
        while self.index.staged_len()? > room {
            // Small chunks while searches run: each holds the graph's write
            // lock, which searches wait for.
            let chunk = if self.index.searched_within(IDLE_DRAIN_DELAY) {
                DRAIN_CHUNK
            } else {
                DRAIN_CHUNK_PRESSED
            };
            match self.index.try_drain(chunk)? {
                None => std::thread::sleep(BACKPRESSURE_POLL),
                Some(0) => {
                    // Nothing left to move although the buffer is over
                    // `room`: a broken invariant, not something to wait
                    // out. The actor fails and the index is rebuilt.
                    return Err(Error::Index(IndexError::Faiss(
                        "write buffer holds vectors no drain can move".into(),
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Moves buffered vectors into the graph, a chunk per lock hold. The
    /// chunk depends on who else wants the machine: small ones while
    /// searches run (they wait at most a few insertions for the graph);
    /// single-threaded ones while writes arrive (the writers keep the other
    /// core); large ones on every core while the buffer is more than half
    /// full; small ones otherwise.
    ///
    /// Up to half of [`MAX_STAGED`] buffered vectors, the drain yields to
    /// searches: it stops while any runs or one ended less than
    /// [`IDLE_DRAIN_DELAY`] ago (returning `false`) and is planned again.
    /// The buffer costs each search an exact scan of at most 2 048 vectors
    /// meanwhile. With `yield_to_searches` false it drains everything.
    pub(crate) fn drain_all(&self, yield_to_searches: bool) -> Result<bool> {
        loop {
            let buffered = self.index.buffered();
            let searching = yield_to_searches && self.index.searched_within(IDLE_DRAIN_DELAY);
            if searching && buffered <= MAX_STAGED / 2 {
                return Ok(buffered == 0);
            }
            let writing = yield_to_searches && self.index.added_within(IDLE_DRAIN_DELAY);
            let chunk = if searching {
                DRAIN_CHUNK
            } else if writing {
                DRAIN_CHUNK_ONE_CORE
            } else if buffered > MAX_STAGED / 2 {
                DRAIN_CHUNK_PRESSED
            } else {
                DRAIN_CHUNK
            };
            if self.index.drain(chunk)? == 0 {
                return Ok(true);
            }
        }
    }
}

/// Insight slots: insights have no filter columns, only a slot each.
#[derive(Debug, Default)]
pub(crate) struct InsightSlots {
    pub(crate) slots: HashMap<InsightId, Slot>,
    pub(crate) next: Slot,
}

/// One collective's search state. See the module docs.
#[derive(Debug)]
pub(crate) struct CollectiveIndex {
    pub(crate) id: CollectiveId,
    pub(crate) columns: RwLock<Columns>,
    pub(crate) experiences: IdIndex<ExperienceId>,
    pub(crate) insights: IdIndex<InsightId>,
    /// Written by the owning actor only; a lock so the index can be shared.
    pub(crate) insight_slots: Mutex<InsightSlots>,
}

impl CollectiveIndex {
    fn columns(&self) -> Result<RwLockReadGuard<'_, Columns>> {
        self.columns.read().map_err(|_| poisoned())
    }

    fn columns_mut(&self) -> Result<RwLockWriteGuard<'_, Columns>> {
        self.columns.write().map_err(|_| poisoned())
    }

    /// The `k` experiences nearest `query` that pass `filter`, with their
    /// records, best first.
    ///
    /// The filter becomes a slot bitmap under a brief read lock of the
    /// columns. A candidate deleted between the index search and the record
    /// read (a delete committing meanwhile) is replaced, not dropped: the
    /// index is asked again for twice as many, so `k` results come back
    /// whenever `k` match.
    ///
    /// # Errors
    /// A storage or index fault.
    pub(crate) fn search(
        &self,
        storage: &RedbStorage,
        query: &[f32],
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<(Experience, f32)>> {
        let eligible = self.columns()?.eligible(filter);
        let mut ask = k;
        let mut results = Vec::new();
        for _ in 0..MAX_SEARCH_ROUNDS {
            let (hits, found) = self.experiences.search(query, ask, eligible.as_ref())?;
            let ids: Vec<ExperienceId> = hits.iter().map(|(id, _)| *id).collect();
            let mut by_id: HashMap<ExperienceId, Experience> = storage
                .get_experiences(&ids)?
                .into_iter()
                .map(|e| (e.id, e))
                .collect();
            results = hits
                .into_iter()
                .filter_map(|(id, sim)| Some((by_id.remove(&id)?, sim)))
                .collect();
            // Enough, or the index has no more to give.
            if results.len() >= k || found < ask {
                break;
            }
            ask = ask.saturating_mul(2);
        }
        results.truncate(k);
        Ok(results)
    }

    /// The ids of the `k` insights nearest `query`.
    ///
    /// # Errors
    /// An index fault.
    pub(crate) fn search_insights(&self, query: &[f32], k: usize) -> Result<Vec<(InsightId, f32)>> {
        Ok(self.insights.search(query, k, None)?.0)
    }

    /// The ids of the experiences and insights the indexes hold.
    ///
    /// # Errors
    /// A poisoned lock.
    pub(crate) fn live_ids(&self) -> Result<(Vec<ExperienceId>, Vec<InsightId>)> {
        Ok((self.experiences.live_ids()?, self.insights.live_ids()?))
    }

    /// What the indexes hold.
    ///
    /// # Errors
    /// A poisoned lock.
    pub(crate) fn stats(&self) -> Result<IndexStats> {
        let exp = &self.experiences.index;
        Ok(IndexStats {
            indexed: exp.len()?,
            staged: exp.staged_len()?,
            tombstones: exp.tombstones(),
            hnsw: exp.is_hnsw(),
            insights: self.insights.index.len()?,
        })
    }

    /// Applies committed writes to the columns and indexes, in commit
    /// order. Recorded vectors move out of the records into the index.
    /// Returns whether any index changed.
    ///
    /// # Errors
    /// An index fault or poisoned lock; the indexes may then be partly
    /// updated and must be rebuilt from redb.
    pub(crate) fn apply<'a>(&self, batch: impl Iterator<Item = &'a mut Applied>) -> Result<bool> {
        let mut added: Vec<(Slot, ExperienceId, Vec<f32>)> = Vec::new();
        let mut removed: Vec<Slot> = Vec::new();
        let mut insights_added: Vec<(Slot, InsightId, Vec<f32>)> = Vec::new();
        let mut insights_removed: Vec<Slot> = Vec::new();
        {
            let mut columns = self.columns_mut()?;
            let mut insight_slots = self.insight_slots.lock().map_err(|_| poisoned())?;
            for applied in batch.flat_map(Applied::parts_mut) {
                match applied {
                    Applied::ExperiencesRecorded(exps) => {
                        for e in exps {
                            let slot = columns.next_slot();
                            columns.insert(slot, e);
                            added.push((slot, e.id, std::mem::take(&mut e.embedding)));
                        }
                    }
                    Applied::ExperienceChanged(e) => columns.update(e),
                    Applied::ExperienceDeleted { id, .. } => {
                        if let Some(slot) = columns.remove(id) {
                            removed.push(slot);
                        }
                    }
                    Applied::InsightStored(i) => {
                        let slot = insight_slots.next;
                        insight_slots.next += 1;
                        insight_slots.slots.insert(i.id, slot);
                        insights_added.push((slot, i.id, i.embedding.clone()));
                    }
                    Applied::InsightDeleted { id, .. } => {
                        if let Some(slot) = insight_slots.slots.remove(id) {
                            insights_removed.push(slot);
                        }
                    }
                    _ => {}
                }
            }
        }
        let changed = !added.is_empty()
            || !removed.is_empty()
            || !insights_added.is_empty()
            || !insights_removed.is_empty();
        self.experiences.update(&added, &removed)?;
        self.insights.update(&insights_added, &insights_removed)?;
        Ok(changed)
    }

    /// Vectors waiting in the write buffers.
    pub(crate) fn buffered(&self) -> usize {
        self.experiences.index.buffered() + self.insights.index.buffered()
    }

    /// Whether a graph asks for a rebuild.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.experiences.index.needs_rebuild() || self.insights.index.needs_rebuild()
    }

    /// Drains both write buffers (see [`IdIndex::drain_all`]); `true` when
    /// both are empty.
    ///
    /// # Errors
    /// An index fault.
    pub(crate) fn drain(&self, yield_to_searches: bool) -> Result<bool> {
        let experiences = self.experiences.drain_all(yield_to_searches)?;
        Ok(self.insights.drain_all(yield_to_searches)? & experiences)
    }

    /// Rebuilds the graphs that ask for it, aside (see [`StagedIndex`]);
    /// `true` when one was replaced.
    ///
    /// # Errors
    /// An index fault; the graphs are then unchanged.
    pub(crate) fn rebuild(&self) -> Result<bool> {
        let experiences = self.experiences.index.rebuild_if_needed()?;
        Ok(self.insights.index.rebuild_if_needed()? | experiences)
    }

    /// Writes both snapshots into `dir`, saying they cover the change log
    /// through `sequence` (the caller guarantees that every change of the
    /// collective up to it is in the indexes): buffers drained first (the
    /// snapshot holds the graph only), and a due rebuild done first when
    /// none is running. The experience snapshot carries the collective's id
    /// and its filter columns, so a load needs no pass over the records.
    ///
    /// # Errors
    /// An I/O, encoding or index fault; earlier snapshot files may remain,
    /// and are reconciled with redb (or refused) on the next load.
    pub(crate) fn save_snapshots(&self, dir: &Path, sequence: u64) -> Result<()> {
        self.drain(false)?;
        self.rebuild()?;
        self.drain(false)?;
        let mut exp_extra = extra_header(self.id, EXPERIENCES_EXTRA);
        exp_extra.extend(
            self.columns()?
                .encode()
                .map_err(|source| codec_error("filter columns", source))?,
        );
        let mut insight_slots: Vec<(Slot, [u8; 16])> = self
            .insight_slots
            .lock()
            .map_err(|_| poisoned())?
            .slots
            .iter()
            .map(|(id, s)| (*s, *id.as_bytes()))
            .collect();
        insight_slots.sort_unstable();
        let mut ins_extra = extra_header(self.id, INSIGHTS_EXTRA);
        ins_extra.extend(
            postcard::to_allocvec(&insight_slots)
                .map_err(|source| codec_error("index snapshot slot map", source))?,
        );
        std::fs::create_dir_all(dir)?;
        self.experiences.index.save_snapshot(
            &snapshot_path(dir, self.id, "experiences"),
            sequence,
            &exp_extra,
        )?;
        self.insights.index.save_snapshot(
            &snapshot_path(dir, self.id, "insights"),
            sequence,
            &ins_extra,
        )?;
        Ok(())
    }
}

/// The snapshot file of one of a collective's indexes.
pub(crate) fn snapshot_path(dir: &Path, id: CollectiveId, kind: &str) -> std::path::PathBuf {
    dir.join(format!("{id}.{kind}.idx"))
}

/// A snapshot's slot map: each slot with the raw id stored under it.
pub(crate) type SlotMap = Vec<(Slot, [u8; 16])>;

/// A snapshot payload that could not be encoded: the snapshot fails rather
/// than be written with a payload that names nothing.
fn codec_error(what: &'static str, source: postcard::Error) -> Error {
    Error::Storage(crate::storage::StorageError::Codec { what, source })
}

/// Marks the payload of an experience snapshot (filter columns).
pub(crate) const EXPERIENCES_EXTRA: u8 = b'E';
/// Marks the payload of an insight snapshot (slot map).
pub(crate) const INSIGHTS_EXTRA: u8 = b'I';

/// What a snapshot payload starts with: the collective's id and the kind,
/// so a snapshot moved to another collective's or index's name is refused.
fn extra_header(id: CollectiveId, kind: u8) -> Vec<u8> {
    let mut header = id.as_bytes().to_vec();
    header.push(kind);
    header
}

/// The payload of a snapshot written by collective `id` for indexes of
/// `kind`, without its header; `None` for any other.
pub(crate) fn extra_payload(extra: &[u8], id: CollectiveId, kind: u8) -> Option<&[u8]> {
    extra
        .strip_prefix(id.as_bytes().as_slice())?
        .strip_prefix(&[kind])
}

/// An insight snapshot's slot map, which must name exactly the snapshot's
/// live slots.
pub(crate) fn decode_slots(bytes: &[u8], live: &[Slot]) -> Option<SlotMap> {
    let (map, rest): (SlotMap, &[u8]) = postcard::take_from_bytes(bytes).ok()?;
    let mut named: Vec<Slot> = map.iter().map(|(slot, _)| *slot).collect();
    let mut live = live.to_vec();
    named.sort_unstable();
    live.sort_unstable();
    (rest.is_empty() && named == live).then_some(map)
}
