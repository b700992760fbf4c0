//! [`StagedIndex`]: a [`FaissIndex`] fronted by a small exact write buffer.
//!
//! Inserting into an HNSW graph costs far more than committing the record
//! (about 0.16 ms per 384-d vector at 10 000 vectors, 0.35 ms at 100 000,
//! against a few microseconds of a group commit's share). Writers should not
//! wait for it, yet a search issued after a write must see that write. So
//! new vectors land in an exact buffer first — searched by brute force next
//! to the graph, with the same eligibility set — and a background drain
//! moves them into the graph in chunks. The union of two exact-or-ANN top-k
//! lists, re-ranked, is the answer; the buffer is bounded by its owner.

use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use parking_lot::RwLock as FairLock;

use super::exact::rank;
use super::ffi::OmpSingleThread;
use super::{ExactIndex, FaissIndex, Hit, IndexConfig, IndexError, Slot, SlotSet, VectorIndex};

/// A graph index with an exact write buffer in front of it, safe to share
/// between threads: every method takes `&self`.
///
/// The graph and the buffer have separate locks, so buffering a write never
/// waits for a graph insertion in progress; searches read both. The graph's
/// write lock is handed over on release (`GraphWrite`). Lock order:
/// a thread holding both takes the graph first (so a search waiting for the
/// graph holds nothing a writer needs); a drain never holds both.
#[derive(Debug)]
pub struct StagedIndex {
    main: FairLock<FaissIndex>,
    buffer: RwLock<Buffer>,
    /// One drain at a time: two would insert the same vectors.
    draining: Mutex<()>,
    /// One rebuild at a time.
    rebuilding: Mutex<()>,
    /// Changes made to the graph since a running rebuild copied it (`None`
    /// while no rebuild runs). Appended under the graph's write lock, so its
    /// order is the graph's.
    journal: Mutex<Option<Vec<Change>>>,
    /// Buffered vectors, readable without a lock (updated under the buffer lock).
    buffered: AtomicUsize,
    /// Whether the graph asks for a rebuild, readable without a lock
    /// (updated under the graph's write lock).
    wants_rebuild: AtomicBool,
    /// Searches running now, when the last one ended and when vectors were
    /// last buffered, so a drain can stay out of the way of searches and
    /// writers (see [`StagedIndex::searched_within`]).
    activity: Activity,
}

#[derive(Debug)]
struct Activity {
    /// Searches running now.
    running: AtomicUsize,
    /// Microseconds after `since` at which the last search ended (0: never).
    last_end_us: AtomicU64,
    /// Microseconds after `since` at which vectors were last buffered.
    last_add_us: AtomicU64,
    since: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            running: AtomicUsize::new(0),
            last_end_us: AtomicU64::new(0),
            last_add_us: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether `at_us` (an [`Activity::now_us`] reading, 0 for never)
    /// is less than `window` ago.
    fn is_recent(&self, at_us: u64, window: Duration) -> bool {
        at_us > 0
            && self.now_us().saturating_sub(at_us)
                < u64::try_from(window.as_micros()).unwrap_or(u64::MAX)
    }
}

/// Counts a search as running while alive.
struct Searching<'a>(&'a Activity);

impl<'a> Searching<'a> {
    fn enter(activity: &'a Activity) -> Searching<'a> {
        activity.running.fetch_add(1, Ordering::Relaxed);
        Searching(activity)
    }
}

impl Drop for Searching<'_> {
    fn drop(&mut self) {
        self.0.last_end_us.store(self.0.now_us(), Ordering::Relaxed);
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A change to the graph, journaled while a rebuild runs.
#[derive(Debug, Clone, Copy)]
enum Change {
    Added(Slot),
    Removed(Slot),
}

/// A rebuild between its two halves: the live vectors as they were when
/// it began, and the right to be the only rebuild.
struct RebuildCopy<'a> {
    _one_at_a_time: std::sync::MutexGuard<'a, ()>,
    dimension: usize,
    config: IndexConfig,
    slots: Vec<Slot>,
    vectors: Vec<f32>,
}

/// Journal entries left at which a rebuild stops catching up outside the
/// lock and swaps (the rest are replayed under the write lock).
const SWAP_AT_JOURNAL: usize = 64;
/// Vectors copied, or journal entries replayed, per graph-lock hold.
const COPY_CHUNK: usize = 1024;
/// Catch-up rounds before a rebuild swaps regardless (writers that outpace
/// the replay then wait for the last round).
const MAX_CATCH_UP_ROUNDS: usize = 16;

/// The graph's write lock, released fairly: the threads that queued for
/// the lock while it was held get it, in order, before this thread can take
/// it again. Drains and deletes take it once per chunk or batch, in a loop;
/// with a plain release, a search woken on busy cores is runnable but not
/// yet running when the loop takes the lock again, and would wait for many
/// chunks instead of one (at 100 000 vectors, a search p99 of 100 ms while
/// 64 writers ran, against 7 ms with the handover).
struct GraphWrite<'a>(ManuallyDrop<parking_lot::RwLockWriteGuard<'a, FaissIndex>>);

impl Deref for GraphWrite<'_> {
    type Target = FaissIndex;

    fn deref(&self) -> &FaissIndex {
        &self.0
    }
}

impl DerefMut for GraphWrite<'_> {
    fn deref_mut(&mut self) -> &mut FaissIndex {
        &mut self.0
    }
}

impl Drop for GraphWrite<'_> {
    fn drop(&mut self) {
        // SAFETY: the guard is taken once, here, and not used after.
        let guard = unsafe { ManuallyDrop::take(&mut self.0) };
        parking_lot::RwLockWriteGuard::unlock_fair(guard);
    }
}

#[derive(Debug)]
struct Buffer {
    exact: ExactIndex,
    /// Buffered slots in arrival order (may hold slots removed since).
    order: VecDeque<Slot>,
}

fn poisoned() -> IndexError {
    IndexError::Faiss("index lock poisoned by a panic during an update".into())
}

impl StagedIndex {
    /// An empty index.
    ///
    /// # Errors
    /// As [`FaissIndex::new`].
    pub fn new(dimension: usize, config: &IndexConfig) -> Result<StagedIndex, IndexError> {
        Ok(Self::from_main(FaissIndex::new(dimension, config)?))
    }

    /// Wraps an existing index (a loaded snapshot) with an empty buffer.
    pub fn from_main(main: FaissIndex) -> StagedIndex {
        let dimension = main.dimension();
        let wants_rebuild = AtomicBool::new(main.needs_rebuild());
        StagedIndex {
            main: FairLock::new(main),
            buffer: RwLock::new(Buffer {
                exact: ExactIndex::new(dimension),
                order: VecDeque::new(),
            }),
            draining: Mutex::new(()),
            rebuilding: Mutex::new(()),
            journal: Mutex::new(None),
            buffered: AtomicUsize::new(0),
            wants_rebuild,
            activity: Activity::new(),
        }
    }

    fn main(&self) -> parking_lot::RwLockReadGuard<'_, FaissIndex> {
        self.main.read()
    }

    fn main_mut(&self) -> GraphWrite<'_> {
        GraphWrite(ManuallyDrop::new(self.main.write()))
    }

    fn buffer(&self) -> Result<RwLockReadGuard<'_, Buffer>, IndexError> {
        self.buffer.read().map_err(|_| poisoned())
    }

    fn buffer_mut(&self) -> Result<RwLockWriteGuard<'_, Buffer>, IndexError> {
        self.buffer.write().map_err(|_| poisoned())
    }

    /// Buffers vectors (all or nothing); they are searchable at once and
    /// [`StagedIndex::drain`] moves them into the graph.
    ///
    /// Slots must be fresh: buffering never waits for the graph lock (held
    /// for whole chunk insertions), so a slot already in the graph is only
    /// detected when the drain tries to insert it, and fails that drain.
    ///
    /// # Errors
    /// As [`VectorIndex::add`] for the buffer; nothing is added then.
    pub fn add(&self, items: &[(Slot, &[f32])]) -> Result<(), IndexError> {
        let mut buffer = self.buffer_mut()?;
        buffer.exact.add(items)?;
        buffer.order.extend(items.iter().map(|(s, _)| *s));
        self.buffered.store(buffer.exact.len(), Ordering::Relaxed);
        let a = &self.activity;
        a.last_add_us.store(a.now_us(), Ordering::Relaxed);
        Ok(())
    }

    /// Adds vectors straight to the graph, bypassing the buffer (bulk loads
    /// at open, where nobody waits).
    ///
    /// # Errors
    /// As [`VectorIndex::add`].
    pub fn add_direct(&self, items: &[(Slot, &[f32])]) -> Result<(), IndexError> {
        let mut main = self.main_mut();
        main.add(items)?;
        self.note_graph(&main);
        self.journal_changes(items.iter().map(|(s, _)| Change::Added(*s)))
    }

    /// Journals changes just made to the graph (the caller holds its write
    /// lock) when a rebuild is running.
    fn journal_changes(&self, changes: impl Iterator<Item = Change>) -> Result<(), IndexError> {
        if let Some(journal) = self.journal.lock().map_err(|_| poisoned())?.as_mut() {
            journal.extend(changes);
        }
        Ok(())
    }

    /// Notes whether the graph (just changed, write lock held) asks for a
    /// rebuild.
    fn note_graph(&self, main: &FaissIndex) {
        self.wants_rebuild
            .store(main.needs_rebuild(), Ordering::Relaxed);
    }

    /// Whether the graph asks for [`StagedIndex::rebuild_if_needed`], read
    /// without a lock (may be a moment out of date).
    pub fn needs_rebuild(&self) -> bool {
        self.wants_rebuild.load(Ordering::Relaxed)
    }

    /// Removes a slot, buffered or not. Returns whether it was live.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn remove(&self, slot: Slot) -> Result<bool, IndexError> {
        Ok(self.remove_many(&[slot])? == 1)
    }

    /// Removes slots, buffered or not, taking each lock once for all of
    /// them. Returns how many were live.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn remove_many(&self, slots: &[Slot]) -> Result<usize, IndexError> {
        let mut from_graph = Vec::new();
        let mut removed = 0;
        {
            let mut buffer = self.buffer_mut()?;
            for &slot in slots {
                if buffer.exact.remove(slot) {
                    removed += 1;
                } else {
                    from_graph.push(slot);
                }
            }
            self.buffered.store(buffer.exact.len(), Ordering::Relaxed);
        }
        Ok(removed + self.remove_from_graph(from_graph)?)
    }

    /// Removes slots from the graph under one hold of its lock, journaling
    /// those that were live. Returns how many were.
    fn remove_from_graph(&self, mut slots: Vec<Slot>) -> Result<usize, IndexError> {
        if slots.is_empty() {
            return Ok(0);
        }
        let mut main = self.main_mut();
        slots.retain(|slot| main.remove(*slot));
        self.note_graph(&main);
        self.journal_changes(slots.iter().map(|slot| Change::Removed(*slot)))?;
        Ok(slots.len())
    }

    /// Moves up to `max` buffered vectors into the graph, oldest first.
    /// Returns how many moved. The buffer stays searchable meanwhile; a
    /// vector briefly in both is reported once.
    ///
    /// # Errors
    /// [`IndexError::Faiss`]; the vectors then stay buffered (still found).
    pub fn drain(&self, max: usize) -> Result<usize, IndexError> {
        let _one_at_a_time = self.draining.lock().map_err(|_| poisoned())?;
        self.drain_locked(max)
    }

    /// Like [`StagedIndex::drain`], but `None` at once when another drain
    /// is running. A drain that loops re-takes the lock as soon as it lets
    /// go of it, so a second drainer waiting on the lock can wait for the
    /// whole loop (about a second at 100 000 vectors).
    ///
    /// # Errors
    /// As [`StagedIndex::drain`].
    pub fn try_drain(&self, max: usize) -> Result<Option<usize>, IndexError> {
        let _one_at_a_time = match self.draining.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            Err(std::sync::TryLockError::Poisoned(_)) => return Err(poisoned()),
        };
        self.drain_locked(max).map(Some)
    }

    fn drain_locked(&self, max: usize) -> Result<usize, IndexError> {
        let batch: Vec<(Slot, Vec<f32>)> = {
            let buffer = self.buffer()?;
            buffer
                .order
                .iter()
                .filter_map(|s| Some((*s, buffer.exact.vector(*s)?.to_vec())))
                .take(max)
                .collect()
        };
        if batch.is_empty() {
            // Only removed slots (or nothing) were queued when the batch was
            // read. Vectors buffered since then stay queued: dropping only
            // the removed slots, under the write lock, cannot lose them.
            let mut buffer = self.buffer_mut()?;
            let Buffer { exact, order } = &mut *buffer;
            order.retain(|s| exact.contains(*s));
            return Ok(0);
        }
        let items: Vec<(Slot, &[f32])> = batch.iter().map(|(s, v)| (*s, v.as_slice())).collect();
        // The buffer holds normalised vectors: stored as they are.
        {
            let mut main = self.main_mut();
            main.add_normalized(&items)?;
            self.note_graph(&main);
            self.journal_changes(items.iter().map(|(s, _)| Change::Added(*s)))?;
        }
        // Drop the moved slots from the buffer. A slot removed while it was
        // being inserted is gone from the buffer: remove it from the graph.
        let mut removed_meanwhile = Vec::new();
        {
            let mut buffer = self.buffer_mut()?;
            let last = batch.last().map(|(s, _)| *s);
            while let Some(front) = buffer.order.pop_front() {
                if Some(front) == last {
                    break;
                }
            }
            for (slot, _) in &batch {
                if !buffer.exact.remove(*slot) {
                    removed_meanwhile.push(*slot);
                }
            }
            self.buffered.store(buffer.exact.len(), Ordering::Relaxed);
        }
        self.remove_from_graph(removed_meanwhile)?;
        Ok(batch.len())
    }

    /// Rebuilds the graph when it asks for it ([`FaissIndex::needs_rebuild`]),
    /// without holding up searches or writes: see the module docs. Returns
    /// whether it rebuilt; `false` also when another rebuild is running.
    /// Blocking and CPU-heavy (seconds at 100 000 vectors): call it on a
    /// blocking thread.
    ///
    /// # Errors
    /// [`IndexError::Faiss`]; the index is then unchanged.
    pub fn rebuild_if_needed(&self) -> Result<bool, IndexError> {
        match self.begin_rebuild()? {
            Some(copy) => self.finish_rebuild(copy).map(|()| true),
            None => Ok(false),
        }
    }

    /// First half of a rebuild: copies the live vectors under the read lock
    /// and starts the journal. `None` when no rebuild is due or another
    /// one is running.
    fn begin_rebuild(&self) -> Result<Option<RebuildCopy<'_>>, IndexError> {
        let guard = match self.rebuilding.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            Err(std::sync::TryLockError::Poisoned(_)) => return Err(poisoned()),
        };
        let (dimension, config, listed) = {
            let main = self.main();
            if !main.needs_rebuild() {
                return Ok(None);
            }
            // Under the read lock nothing changes the graph, so the journal
            // starts exactly at this list of live slots.
            *self.journal.lock().map_err(|_| poisoned())? = Some(Vec::new());
            (main.dimension(), main.config().clone(), main.live_slots())
        };
        // The vectors are copied a chunk per read-lock hold, so removals and
        // drains (which need the write lock) wait for one chunk at most. A
        // slot removed meanwhile is skipped here and journaled; vectors
        // never change, so every copied one is current.
        let mut slots = Vec::with_capacity(listed.len());
        let mut vectors = Vec::with_capacity(listed.len() * dimension);
        let copied = listed
            .chunks(COPY_CHUNK)
            .try_for_each(|chunk| self.main().copy_vectors(chunk, &mut slots, &mut vectors));
        if let Err(e) = copied {
            // No rebuild after all: stop journaling.
            *self.journal.lock().map_err(|_| poisoned())? = None;
            return Err(e);
        }
        Ok(Some(RebuildCopy {
            _one_at_a_time: guard,
            dimension,
            config,
            slots,
            vectors,
        }))
    }

    /// Second half: builds the new graph with no lock held, replays the
    /// journal onto it (outside the write lock while it is long) and swaps.
    /// On failure the old graph stays and journaling stops.
    fn finish_rebuild(&self, copy: RebuildCopy<'_>) -> Result<(), IndexError> {
        let result = self.build_and_swap(copy);
        if result.is_err() {
            *self.journal.lock().map_err(|_| poisoned())? = None;
        }
        result
    }

    fn build_and_swap(&self, copy: RebuildCopy<'_>) -> Result<(), IndexError> {
        // One core: the other stays with the searches and writes this
        // rebuild must not disturb.
        let _one_core = OmpSingleThread::enter();
        let mut fresh =
            FaissIndex::from_vectors(copy.dimension, &copy.config, &copy.slots, &copy.vectors)?;
        drop(copy.vectors);
        for _ in 0..MAX_CATCH_UP_ROUNDS {
            let pending = self.take_journal(false)?;
            if pending.is_empty() {
                break;
            }
            let short = pending.len() <= SWAP_AT_JOURNAL;
            for chunk in pending.chunks(COPY_CHUNK) {
                replay(chunk, &mut fresh, &self.main())?;
            }
            if short {
                break;
            }
        }
        let mut main = self.main_mut();
        let rest = self.take_journal(true)?;
        replay(&rest, &mut fresh, &main)?;
        let old = std::mem::replace(&mut *main, fresh);
        self.note_graph(&main);
        // Freeing the old graph (hundreds of megabytes at 100 000 vectors)
        // happens after the lock is released.
        drop(main);
        drop(old);
        Ok(())
    }

    /// The journal so far, emptied; `stop` also ends journaling.
    fn take_journal(&self, stop: bool) -> Result<Vec<Change>, IndexError> {
        let mut journal = self.journal.lock().map_err(|_| poisoned())?;
        Ok(if stop {
            journal.take().unwrap_or_default()
        } else {
            journal.as_mut().map(std::mem::take).unwrap_or_default()
        })
    }

    /// The `k` nearest live vectors, from the graph and the buffer.
    ///
    /// # Errors
    /// As [`VectorIndex::search`].
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        let _counted = Searching::enter(&self.activity);
        // Hold the graph for the whole search: a drain inserts moved vectors
        // into the graph before removing them from the buffer, and cannot
        // insert meanwhile, so every vector is seen in one or both.
        let main = self.main();
        let mut hits = main.search(query, k, eligible)?;
        let buffer = self.buffer()?;
        drop(main);
        if !buffer.exact.is_empty() {
            hits.extend(buffer.exact.search(query, k, eligible)?);
            drop(buffer);
            hits.sort_by_key(|h| h.slot);
            hits.dedup_by_key(|h| h.slot);
            hits = rank(hits, k);
        }
        Ok(hits)
    }

    /// Live vectors (graph and buffer).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn len(&self) -> Result<usize, IndexError> {
        let main = self.main();
        let buffer = self.buffer()?;
        // A vector being moved is in both for a moment: count it once.
        let only_buffered = buffer
            .order
            .iter()
            .filter(|s| buffer.exact.contains(**s) && !main.contains(**s))
            .count();
        Ok(main.len() + only_buffered)
    }

    /// True when no live vector is held.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len()? == 0)
    }

    /// Whether a search is running or ended less than `window` ago (one
    /// client's back-to-back searches leave only short gaps).
    pub fn searched_within(&self, window: Duration) -> bool {
        let a = &self.activity;
        if a.running.load(Ordering::Relaxed) > 0 {
            return true;
        }
        a.is_recent(a.last_end_us.load(Ordering::Relaxed), window)
    }

    /// Whether vectors were buffered less than `window` ago.
    pub fn added_within(&self, window: Duration) -> bool {
        let a = &self.activity;
        a.is_recent(a.last_add_us.load(Ordering::Relaxed), window)
    }

    /// Vectors waiting in the buffer, read without a lock (may be a moment
    /// out of date).
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Vectors waiting in the buffer.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn staged_len(&self) -> Result<usize, IndexError> {
        Ok(self.buffer()?.exact.len())
    }

    /// Removed vectors still taking space in the graph.
    pub fn tombstones(&self) -> usize {
        self.main().tombstones()
    }

    /// Whether the graph is HNSW (otherwise flat).
    pub fn is_hnsw(&self) -> bool {
        self.main().is_hnsw()
    }

    /// Whether `slot` is live.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn contains(&self, slot: Slot) -> Result<bool, IndexError> {
        // One lock at a time (a thread holding both takes the graph first).
        let buffered = self.buffer()?.exact.contains(slot);
        Ok(buffered || self.main().contains(slot))
    }

    /// Saves the graph. Buffered vectors are not in the snapshot; the owner
    /// reconciles snapshots with redb on load, so they are re-added then
    /// (drain first to keep that cheap).
    ///
    /// # Errors
    /// As [`VectorIndex::save_snapshot`].
    pub fn save_snapshot(
        &self,
        path: &Path,
        sequence: u64,
        extra: &[u8],
    ) -> Result<(), IndexError> {
        self.main().save_snapshot(path, sequence, extra)
    }
}

/// Applies journaled graph changes to a rebuilt graph, reading added
/// vectors from the old one. A slot added and removed since is no longer in
/// the old graph and is skipped; its removal follows in the journal.
fn replay(changes: &[Change], fresh: &mut FaissIndex, old: &FaissIndex) -> Result<(), IndexError> {
    for change in changes {
        match *change {
            Change::Added(slot) => {
                if fresh.contains(slot) {
                    continue;
                }
                if let Some(vector) = old.vector(slot) {
                    fresh.add_normalized(&[(slot, &vector)])?;
                }
            }
            Change::Removed(slot) => {
                fresh.remove(slot);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
