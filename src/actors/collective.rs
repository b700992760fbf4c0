//! The collective actor: owns one collective's vector indexes (experiences,
//! insights), their slot ↔ id maps and the in-memory filter columns.
//!
//! Writes pass through it on their way to the storage actor and come back
//! as `Committed` batches, which it applies to its indexes in commit order
//! *before* answering the callers (read-your-writes for search). Searches
//! take a read lock on the index inside a blocking task, so any number run
//! in parallel; only index updates are exclusive.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::blocking;
use super::storage::{PendingWrite, StorageMsg};
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::experience::{Experience, ExperienceId};
use crate::index::{IndexConfig, IndexError, Slot, SnapshotFile, StagedIndex};
use crate::insight::InsightId;
use crate::search::columns::Columns;
use crate::search::SearchFilter;
use crate::storage::{Applied, Committed, RedbStorage, StorageEngine, WriteOp};

pub(crate) struct CollectiveActor;

pub(crate) struct CollectiveArgs {
    pub(crate) id: CollectiveId,
    pub(crate) storage: Arc<RedbStorage>,
    pub(crate) storage_actor: ActorRef<StorageMsg>,
    pub(crate) index: IndexConfig,
    pub(crate) dimension: usize,
    /// Where snapshots live (`None` for in-memory databases).
    pub(crate) snapshot_dir: Option<PathBuf>,
}

/// A vector index and the id stored under each of its slots. Shared by the
/// actor (updates) and blocking search tasks; internally synchronised.
pub(crate) struct Shared<Id> {
    index: StagedIndex,
    ids: RwLock<Vec<Option<Id>>>,
}

impl<Id: Copy> Shared<Id> {
    fn new(index: StagedIndex) -> Self {
        Shared {
            index,
            ids: RwLock::new(Vec::new()),
        }
    }

    /// Buffers vectors: searchable at once, moved into the graph by a drain.
    fn add(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
        // Ids first, so a search that finds a new slot can name it.
        self.record_ids(items)?;
        let vectors: Vec<(Slot, &[f32])> = items.iter().map(|(s, _, v)| (*s, *v)).collect();
        Ok(self.index.add(&vectors)?)
    }

    /// Adds straight to the graph (loading at open, nobody waiting).
    fn add_direct(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
        self.record_ids(items)?;
        let vectors: Vec<(Slot, &[f32])> = items.iter().map(|(s, _, v)| (*s, *v)).collect();
        Ok(self.index.add_direct(&vectors)?)
    }

    fn record_ids(&self, items: &[(Slot, Id, &[f32])]) -> Result<()> {
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

    fn remove(&self, slot: Slot) -> Result<()> {
        self.index.remove(slot)?;
        if let Some(cell) = self
            .ids
            .write()
            .map_err(|_| poisoned())?
            .get_mut(slot as usize)
        {
            *cell = None;
        }
        Ok(())
    }

    /// The ids of the `k` nearest live vectors, and how many hits the
    /// index gave (a slot removed since the index search has no id any more
    /// and is left out, so the list can be shorter).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&crate::index::SlotSet>,
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
}

/// Rounds of [`search_records`] before it answers with what it has.
const MAX_SEARCH_ROUNDS: usize = 8;

/// The `k` experiences nearest `query` among `eligible`, with their records,
/// best first.
///
/// A candidate deleted between the index search and the record read (a
/// delete committing meanwhile) is replaced, not dropped: the index is asked
/// again for twice as many, so `k` results come back whenever `k` match.
fn search_records(
    shared: &Shared<ExperienceId>,
    storage: &RedbStorage,
    query: &[f32],
    k: usize,
    eligible: Option<&crate::index::SlotSet>,
) -> Result<Vec<(Experience, f32)>> {
    let mut ask = k;
    let mut results = Vec::new();
    for _ in 0..MAX_SEARCH_ROUNDS {
        let (hits, found) = shared.search(query, ask, eligible)?;
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

type SharedIndex<Id> = Arc<Shared<Id>>;

pub(crate) struct CollectiveState {
    id: CollectiveId,
    storage: Arc<RedbStorage>,
    storage_actor: ActorRef<StorageMsg>,
    columns: Columns,
    experiences: SharedIndex<ExperienceId>,
    insight_slots: HashMap<InsightId, Slot>,
    next_insight_slot: Slot,
    insights: SharedIndex<InsightId>,
    snapshot_dir: Option<PathBuf>,
    snapshots: bool,
    /// The snapshot files hold exactly what the indexes hold (restored from
    /// them and unchanged since, or just written): closing need not write
    /// them again.
    snapshot_current: bool,
    /// A background drain of the write buffers is running.
    draining: bool,
    /// A background rebuild of a graph is running.
    rebuilding: bool,
    /// The indexes changed since the running drain started.
    added_since_drain: bool,
    /// Counts index changes; a delayed drain only runs if none came since.
    generation: u64,
}

/// A committed write and the caller waiting for it.
pub(crate) type CommittedWrite = (Result<Committed>, RpcReplyPort<Result<Committed>>);

pub(crate) enum CollectiveMsg {
    /// Forward a write to the storage actor; the answer comes back as `Committed`.
    Write {
        op: WriteOp,
        reply: RpcReplyPort<Result<Committed>>,
    },
    /// Writes the storage actor committed, in commit order.
    Committed(Vec<CommittedWrite>),
    /// The `k` experiences most similar to `query` that pass `filter`.
    Search {
        query: Vec<f32>,
        k: usize,
        filter: SearchFilter,
        reply: RpcReplyPort<Result<Vec<(Experience, f32)>>>,
    },
    /// The `k` insights nearest `query`.
    SearchInsights {
        query: Vec<f32>,
        k: usize,
        reply: RpcReplyPort<Result<Vec<(InsightId, f32)>>>,
    },
    /// The background drain of the write buffers finished (`false`: it
    /// yielded to searches with vectors left).
    Drained(Result<bool>),
    /// A background rebuild finished (`true`: a graph was replaced).
    Rebuilt(Result<bool>),
    /// Drain the write buffers if the indexes have not changed since
    /// `generation` (sent to itself after a quiet period).
    DrainIfIdle(u64),
    /// Write index snapshots covering everything committed so far.
    Snapshot(RpcReplyPort<Result<()>>),
    /// What the indexes hold (diagnostics).
    IndexStats(RpcReplyPort<Result<crate::api::IndexStats>>),
    /// Fail on purpose (supervision tests only).
    #[cfg(feature = "fault-injection")]
    InjectFault,
}

impl Actor for CollectiveActor {
    type Msg = CollectiveMsg;
    type State = CollectiveState;
    type Arguments = CollectiveArgs;

    async fn post_start(
        &self,
        myself: ActorRef<CollectiveMsg>,
        state: &mut CollectiveState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // A loaded graph may carry tombstones past the ratio: rebuilt aside.
        plan_rebuild(&myself, state);
        Ok(())
    }

    async fn pre_start(
        &self,
        _myself: ActorRef<CollectiveMsg>,
        args: CollectiveArgs,
    ) -> std::result::Result<CollectiveState, ActorProcessingErr> {
        let started = std::time::Instant::now();
        // Writes forwarded by a previous incarnation of this actor (before a
        // fault) may still be committing; their results go to the dead actor
        // and would never reach this index. Loading after they have all
        // committed makes the rebuilt index hold every one of them.
        if let Err(e) = args.storage_actor.call(StorageMsg::Barrier, None).await {
            tracing::debug!(collective = %args.id, error = %e, "storage barrier unavailable");
        }
        let id = args.id;
        let storage = args.storage.clone();
        let index_config = args.index.clone();
        let dimension = args.dimension;
        let dir = args.snapshot_dir.clone();
        let loaded =
            blocking(move || load(id, &storage, &index_config, dimension, dir.as_deref())).await?;
        tracing::debug!(
            collective = %args.id,
            experiences = loaded.columns.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "collective index ready"
        );
        Ok(CollectiveState {
            id: args.id,
            storage: args.storage,
            storage_actor: args.storage_actor,
            columns: loaded.columns,
            experiences: Arc::new(loaded.experiences),
            insight_slots: loaded.insight_slots,
            next_insight_slot: loaded.next_insight_slot,
            insights: Arc::new(loaded.insights),
            snapshot_dir: args.snapshot_dir,
            snapshots: args.index.snapshots,
            snapshot_current: loaded.snapshot_current,
            draining: false,
            rebuilding: false,
            added_since_drain: false,
            generation: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<CollectiveMsg>,
        msg: CollectiveMsg,
        state: &mut CollectiveState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            CollectiveMsg::Write { op, reply } => {
                let write = PendingWrite {
                    op,
                    via: Some(myself),
                    reply,
                };
                if let Err(ractor::MessagingErr::SendErr(StorageMsg::Write(w))) =
                    state.storage_actor.send_message(StorageMsg::Write(write))
                {
                    let _ = w.reply.send(Err(Error::Closed));
                }
            }
            CollectiveMsg::Committed(batch) => {
                apply_committed(state, batch).await?;
                plan_drain(&myself, state);
                plan_rebuild(&myself, state);
            }
            CollectiveMsg::Search {
                query,
                k,
                filter,
                reply,
            } => {
                // Building the bitmap reads the columns, which only this actor
                // touches; the FAISS search and the record fetch run on the
                // blocking pool so searches proceed in parallel.
                let eligible = state.columns.eligible(&filter);
                let shared = state.experiences.clone();
                let storage = state.storage.clone();
                tokio::spawn(async move {
                    let result = blocking(move || {
                        search_records(&shared, &storage, &query, k, eligible.as_ref())
                    })
                    .await;
                    let _ = reply.send(result);
                });
            }
            CollectiveMsg::SearchInsights { query, k, reply } => {
                let shared = state.insights.clone();
                tokio::spawn(async move {
                    let result = blocking(move || Ok(shared.search(&query, k, None)?.0)).await;
                    let _ = reply.send(result);
                });
            }
            CollectiveMsg::Snapshot(reply) => {
                let result = if state.snapshot_current {
                    Ok(())
                } else {
                    write_snapshots(state).await
                };
                state.snapshot_current = result.is_ok();
                let _ = reply.send(result);
            }
            CollectiveMsg::IndexStats(reply) => {
                let (experiences, insights) = (state.experiences.clone(), state.insights.clone());
                tokio::spawn(async move {
                    let stats = blocking(move || {
                        let exp = &experiences.index;
                        Ok(crate::api::IndexStats {
                            indexed: exp.len()?,
                            staged: exp.staged_len()?,
                            tombstones: exp.tombstones()?,
                            hnsw: exp.is_hnsw()?,
                            insights: insights.index.len()?,
                        })
                    })
                    .await;
                    let _ = reply.send(stats);
                });
            }
            CollectiveMsg::Drained(result) => {
                state.draining = false;
                if !result? {
                    // It yielded to searches: try again after a quiet moment.
                    state.added_since_drain = true;
                }
                plan_drain(&myself, state);
                plan_rebuild(&myself, state);
            }
            CollectiveMsg::Rebuilt(result) => {
                state.rebuilding = false;
                // The snapshot files hold the old graph (still correct).
                state.snapshot_current &= !result?;
                plan_rebuild(&myself, state);
            }
            CollectiveMsg::DrainIfIdle(generation) => {
                if generation == state.generation {
                    schedule_drain(&myself, state);
                }
            }
            #[cfg(feature = "fault-injection")]
            CollectiveMsg::InjectFault => {
                return Err(format!("fault injected into collective {}", state.id).into());
            }
        }
        Ok(())
    }
}

fn poisoned() -> Error {
    Error::Index(IndexError::Faiss(
        "index lock poisoned by a panic during an update".into(),
    ))
}

/// Applies committed writes to the indexes, then answers their callers.
///
/// An index failure here is a fault: the callers still get their (durable)
/// results, and the actor fails so that its supervisor rebuilds the index
/// from redb.
async fn apply_committed(
    state: &mut CollectiveState,
    mut batch: Vec<CommittedWrite>,
) -> Result<()> {
    let mut added: Vec<(Slot, ExperienceId, Vec<f32>)> = Vec::new();
    let mut removed: Vec<Slot> = Vec::new();
    let mut insights_added: Vec<(Slot, InsightId, Vec<f32>)> = Vec::new();
    let mut insights_removed: Vec<Slot> = Vec::new();
    for (result, _) in &mut batch {
        let Ok(committed) = result else { continue };
        match &mut committed.applied {
            Applied::ExperiencesRecorded(exps) => {
                // The vectors move into the index: the callers want the ids.
                for e in exps {
                    let slot = state.columns.next_slot();
                    state.columns.insert(slot, e);
                    added.push((slot, e.id, std::mem::take(&mut e.embedding)));
                }
            }
            Applied::ExperienceChanged(e) => state.columns.update(e),
            Applied::ExperienceDeleted { id, .. } => {
                if let Some(slot) = state.columns.remove(id) {
                    removed.push(slot);
                }
            }
            Applied::InsightStored(i) => {
                let slot = state.next_insight_slot;
                state.next_insight_slot += 1;
                state.insight_slots.insert(i.id, slot);
                insights_added.push((slot, i.id, i.embedding.clone()));
            }
            Applied::InsightDeleted { id, .. } => {
                if let Some(slot) = state.insight_slots.remove(id) {
                    insights_removed.push(slot);
                }
            }
            _ => {}
        }
    }
    // Any index change schedules a drain: it also compacts tombstones.
    let changed = !added.is_empty()
        || !insights_added.is_empty()
        || !removed.is_empty()
        || !insights_removed.is_empty();
    state.added_since_drain |= changed;
    state.snapshot_current &= !changed;
    let outcome = if added.is_empty()
        && removed.is_empty()
        && insights_added.is_empty()
        && insights_removed.is_empty()
    {
        Ok(())
    } else {
        let experiences = state.experiences.clone();
        let insights = state.insights.clone();
        blocking(move || {
            update_index(&experiences, &added, &removed)?;
            update_index(&insights, &insights_added, &insights_removed)
        })
        .await
    };
    for (result, reply) in batch {
        let _ = reply.send(result);
    }
    if let Err(e) = &outcome {
        tracing::error!(collective = %state.id, error = %e, "index update failed; rebuilding");
    }
    outcome
}

fn update_index<Id: Copy>(
    shared: &Shared<Id>,
    added: &[(Slot, Id, Vec<f32>)],
    removed: &[Slot],
) -> Result<()> {
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if !added.is_empty() {
        let items: Vec<(Slot, Id, &[f32])> = added
            .iter()
            .map(|(s, id, v)| (*s, *id, v.as_slice()))
            .collect();
        shared.add(&items)?;
    }
    for slot in removed {
        shared.remove(*slot)?;
    }
    // Backpressure: the buffer is searched by brute force, so it stays
    // bounded; past the bound the writer waits for graph insertions. It
    // inserts them itself unless a drain is running; then that drain is
    // making room, and the writer looks again shortly.
    while shared.index.staged_len()? > MAX_STAGED {
        if shared.index.try_drain(DRAIN_CHUNK_PRESSED)?.is_none() {
            std::thread::sleep(BACKPRESSURE_POLL);
        }
    }
    Ok(())
}

/// Most vectors waiting in a write buffer before writers wait for the drain.
const MAX_STAGED: usize = 4096;
/// How often a writer held back by a full buffer looks at it again while
/// another drain makes room (a chunk takes about 10 ms at 100 000 vectors).
const BACKPRESSURE_POLL: std::time::Duration = std::time::Duration::from_millis(1);
/// Vectors moved into the graph per graph-lock hold (searches run between).
const DRAIN_CHUNK: usize = 8;
/// Chunk size while the buffer is more than half full: FAISS inserts
/// batches of more than 100 vectors on every OpenMP thread, which drains
/// faster but holds the graph lock (and so stalls searches) longer.
const DRAIN_CHUNK_PRESSED: usize = 128;
/// Chunk size while writers are active and nobody searches: FAISS inserts
/// up to 100 vectors on one thread, leaving the other cores to the writes.
const DRAIN_CHUNK_ONE_CORE: usize = 96;

/// Buffered vectors at which a background drain starts at once. Below it,
/// the drain waits for a quiet moment ([`IDLE_DRAIN_DELAY`]): graph
/// insertion is the most expensive part of a write, and a burst of writes
/// should not compete with it for the CPU. Searches pay for the buffer with
/// an exact scan of at most this many vectors (about 0.1 ms at 384-d).
const DRAIN_START: usize = 1024;
/// Quiet time after the last index change before a small buffer is drained.
const IDLE_DRAIN_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// Decides when the write buffers are drained next.
fn plan_drain(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    if !state.added_since_drain || state.draining {
        return;
    }
    state.generation += 1;
    let buffered = state.experiences.index.buffered() + state.insights.index.buffered();
    if buffered >= DRAIN_START {
        schedule_drain(myself, state);
    } else {
        let generation = state.generation;
        myself.send_after(IDLE_DRAIN_DELAY, move || {
            CollectiveMsg::DrainIfIdle(generation)
        });
    }
}

/// Starts a background rebuild of the graphs that ask for one, unless one
/// is running. Searches and writes go on meanwhile (see [`StagedIndex`]).
fn plan_rebuild(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    let wanted = state.experiences.index.needs_rebuild() || state.insights.index.needs_rebuild();
    if state.rebuilding || !wanted {
        return;
    }
    state.rebuilding = true;
    let (experiences, insights) = (state.experiences.clone(), state.insights.clone());
    let me = myself.clone();
    tokio::spawn(async move {
        let result = blocking(move || {
            let rebuilt = experiences.index.rebuild_if_needed()?;
            Ok(insights.index.rebuild_if_needed()? | rebuilt)
        })
        .await;
        let _ = me.send_message(CollectiveMsg::Rebuilt(result));
    });
}

/// Starts the background drain of the write buffers unless one is running.
fn schedule_drain(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    if state.draining {
        return;
    }
    state.draining = true;
    state.added_since_drain = false;
    let (experiences, insights) = (state.experiences.clone(), state.insights.clone());
    let me = myself.clone();
    tokio::spawn(async move {
        let result =
            blocking(move || Ok(drain_all(&experiences, true)? & drain_all(&insights, true)?))
                .await;
        // If the actor is gone, the buffers go with it; its successor
        // rebuilds from redb.
        let _ = me.send_message(CollectiveMsg::Drained(result));
    });
}

/// Moves buffered vectors into the graph, a chunk per lock hold. The chunk
/// depends on who else wants the machine: small ones while searches run
/// (they wait at most a few insertions for the graph); single-threaded ones
/// of up to 96 while writes arrive (FAISS inserts up to 100 vectors on one
/// thread, so the writers keep the other core: `record_conc_per_s` at
/// n = 10 000 was 7 212 and 7 620 in two `pulsedb-bench` runs before, and
/// 7 463–9 056 in six after); large ones on every core while the buffer is
/// more than half full and it has the machine to itself; small ones
/// otherwise. Writers that find the buffer full drain large chunks
/// themselves when no drain runs (`update_index`).
///
/// Up to half of [`MAX_STAGED`] buffered vectors, the drain yields to
/// searches: it stops while any runs or one ended less than
/// [`IDLE_DRAIN_DELAY`] ago (returning `false`) and is planned again. Graph
/// insertion competes with searches for the lock, the cores and the memory
/// bandwidth (at 100 000 vectors a search overlapping a drain took
/// 780–940 µs at the median against about 580 µs alone), while the buffer
/// costs each search an exact scan of at most 2 048 vectors (about 0.1 ms
/// at 384-d with AVX2, `cargo bench --bench index -- buffer_scan`).
///
/// With `yield_to_searches` false (before a snapshot) it always drains
/// everything.
fn drain_all<Id: Copy>(shared: &Shared<Id>, yield_to_searches: bool) -> Result<bool> {
    loop {
        let buffered = shared.index.buffered();
        let searching = yield_to_searches && shared.index.searched_within(IDLE_DRAIN_DELAY);
        if searching && buffered <= MAX_STAGED / 2 {
            return Ok(buffered == 0);
        }
        let writing = yield_to_searches && shared.index.added_within(IDLE_DRAIN_DELAY);
        let chunk = if searching {
            DRAIN_CHUNK
        } else if writing {
            DRAIN_CHUNK_ONE_CORE
        } else if buffered > MAX_STAGED / 2 {
            DRAIN_CHUNK_PRESSED
        } else {
            DRAIN_CHUNK
        };
        if shared.index.drain(chunk)? == 0 {
            return Ok(true);
        }
    }
}

async fn write_snapshots(state: &CollectiveState) -> Result<()> {
    let Some(dir) = state.snapshot_dir.clone() else {
        return Ok(());
    };
    if !state.snapshots {
        return Ok(());
    }
    let id = state.id;
    let storage = state.storage.clone();
    let experiences = state.experiences.clone();
    let insights = state.insights.clone();
    let exp_extra = encode_slots(&state.columns.slot_ids());
    let mut insight_slots: Vec<(Slot, [u8; 16])> = state
        .insight_slots
        .iter()
        .map(|(id, s)| (*s, *id.as_bytes()))
        .collect();
    insight_slots.sort_unstable();
    let ins_extra = encode_slot_bytes(&insight_slots);
    blocking(move || {
        // Everything into the graph first: the snapshot holds the graph only.
        // A rebuild that is due (and not running) is done first too, with
        // searches still served; one already running is left to finish,
        // the graph it replaces still answers correctly.
        drain_all(&experiences, false)?;
        drain_all(&insights, false)?;
        experiences.index.rebuild_if_needed()?;
        insights.index.rebuild_if_needed()?;
        drain_all(&experiences, false)?;
        drain_all(&insights, false)?;
        std::fs::create_dir_all(&dir)?;
        let sequence = storage.current_sequence()?;
        experiences.index.save_snapshot(
            &snapshot_path(&dir, id, "experiences"),
            sequence,
            &exp_extra,
        )?;
        insights
            .index
            .save_snapshot(&snapshot_path(&dir, id, "insights"), sequence, &ins_extra)?;
        Ok(())
    })
    .await
}

pub(crate) fn snapshot_path(dir: &std::path::Path, id: CollectiveId, kind: &str) -> PathBuf {
    dir.join(format!("{id}.{kind}.idx"))
}

fn encode_slots(pairs: &[(Slot, ExperienceId)]) -> Vec<u8> {
    let bytes: Vec<(Slot, [u8; 16])> = pairs.iter().map(|(s, id)| (*s, *id.as_bytes())).collect();
    encode_slot_bytes(&bytes)
}

fn encode_slot_bytes(pairs: &[(Slot, [u8; 16])]) -> Vec<u8> {
    postcard::to_allocvec(pairs).unwrap_or_default()
}

fn decode_slot_bytes(bytes: &[u8]) -> Option<Vec<(Slot, [u8; 16])>> {
    postcard::from_bytes(bytes).ok()
}

/// A snapshot's slot map: each slot with the raw id stored under it.
type SlotMap = Vec<(Slot, [u8; 16])>;

struct Loaded {
    columns: Columns,
    experiences: Shared<ExperienceId>,
    insight_slots: HashMap<InsightId, Slot>,
    next_insight_slot: Slot,
    insights: Shared<InsightId>,
    /// Both indexes came from their snapshots with nothing to reconcile.
    snapshot_current: bool,
}

/// Builds the collective's indexes: from a snapshot reconciled with redb
/// when one is usable, from redb alone otherwise.
///
/// Reconciliation is exact because embeddings never change: every slot of
/// the snapshot whose id is no longer stored is removed, every stored id the
/// snapshot lacks is added. The result holds exactly redb's records.
fn load(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
    dir: Option<&std::path::Path>,
) -> Result<Loaded> {
    let started = std::time::Instant::now();
    let current = storage.current_sequence()?;

    let snapshot = |kind: &str| -> Option<(SnapshotFile, SlotMap)> {
        let path = snapshot_path(dir?, id, kind);
        let file = SnapshotFile::read(&path, dimension)?;
        if file.sequence() > current {
            tracing::warn!(path = %path.display(), snapshot = file.sequence(), current,
                "index snapshot is ahead of the change log; rebuilding");
            return None;
        }
        let Some(slots) = decode_slot_bytes(file.extra()) else {
            tracing::warn!(path = %path.display(), "index snapshot slot map unreadable; rebuilding");
            return None;
        };
        Some((file, slots))
    };

    // Experiences, in one pass over the stored records. Snapshots hold the
    // graph, not the vectors: each record the snapshot knows puts its vector
    // back and its filter columns in place on the way, and is not kept; the
    // others are kept (without embeddings) to be added after the restore.
    let mut columns = Columns::default();
    let mut exp_snapshot = snapshot("experiences");
    let snapshot_slot: HashMap<ExperienceId, Slot> = exp_snapshot
        .as_ref()
        .map(|(_, slots)| {
            slots
                .iter()
                .map(|(slot, raw)| (ExperienceId::from_bytes(*raw), *slot))
                .collect()
        })
        .unwrap_or_default();
    let mut known: Vec<(Slot, ExperienceId)> = Vec::new();
    let mut missing: Vec<Experience> = Vec::new();
    storage.scan_experiences(id, true, &mut |mut e| {
        if let (Some((file, _)), Some(slot)) = (exp_snapshot.as_mut(), snapshot_slot.get(&e.id)) {
            if file.fill(*slot, &e.embedding) {
                columns.insert(*slot, &e);
                known.push((*slot, e.id));
                return;
            }
        }
        e.embedding = Vec::new();
        missing.push(e);
    })?;
    drop(snapshot_slot);
    let scanned = started.elapsed();
    let restored =
        exp_snapshot.and_then(|(file, slots)| file.restore(config).map(|index| (index, slots)));
    let restored_at = started.elapsed();
    let from_snapshot = restored.is_some();
    // Whether the indexes differ from what the snapshots hold.
    let mut reconciled = !from_snapshot;
    let experiences = match restored {
        Some((index, slots)) => {
            let shared = Shared::new(StagedIndex::from_main(index));
            // A filled slot is live in the restored index.
            let items: Vec<(Slot, ExperienceId, &[f32])> = known
                .iter()
                .map(|(slot, eid)| (*slot, *eid, &[][..]))
                .collect();
            shared.record_ids(&items)?;
            // The snapshot's slots whose record is gone.
            let kept: std::collections::HashSet<Slot> = known.iter().map(|(s, _)| *s).collect();
            for (slot, _) in slots.iter().filter(|(s, _)| !kept.contains(s)) {
                reconciled |= shared.index.remove(*slot)?;
            }
            // Slots past the snapshot's are free for the records it lacks.
            if let Some(max) = slots.iter().map(|(s, _)| *s).max() {
                columns.reserve_through(max);
            }
            shared
        }
        None => {
            if !known.is_empty() {
                // The snapshot was refused after the scan: start over.
                columns = Columns::default();
                missing.clear();
                storage.scan_experiences(id, false, &mut |e| missing.push(e))?;
            }
            Shared::new(StagedIndex::new(dimension, config)?)
        }
    };
    drop(known);
    reconciled |= !missing.is_empty();
    tracing::debug!(
        collective = %id,
        from_snapshot,
        not_in_snapshot = missing.len(),
        scan_ms = scanned.as_millis() as u64,
        restore_ms = restored_at.saturating_sub(scanned).as_millis() as u64,
        "experience rows scanned and index restored"
    );
    for chunk in missing.chunks(4096) {
        let ids: Vec<ExperienceId> = chunk.iter().map(|e| e.id).collect();
        let mut vectors = Vec::with_capacity(chunk.len());
        for (e, eid) in chunk.iter().zip(&ids) {
            let v = storage.get_embedding(*eid)?.ok_or_else(|| {
                crate::storage::StorageError::Corrupt(format!("experience {eid} has no embedding"))
            })?;
            let slot = columns.next_slot();
            columns.insert(slot, e);
            vectors.push((slot, *eid, v));
        }
        let items: Vec<(Slot, ExperienceId, &[f32])> = vectors
            .iter()
            .map(|(s, id, v)| (*s, *id, v.as_slice()))
            .collect();
        experiences.add_direct(&items)?;
    }
    // A graph due for a rebuild is rebuilt aside once the actor runs.

    // Insights.
    let mut stored_insights = Vec::new();
    let mut offset = 0;
    loop {
        let page = storage.list_insight_ids(id, 1000, offset)?;
        if page.is_empty() {
            break;
        }
        offset += page.len();
        stored_insights.extend(page);
    }
    let mut insight_slots = HashMap::new();
    let mut next_insight_slot: Slot = 0;
    let restored = match snapshot("insights") {
        Some((mut file, slots)) => {
            for (slot, raw) in &slots {
                if let Some(insight) = storage.get_insight(InsightId::from_bytes(*raw))? {
                    file.fill(*slot, &insight.embedding);
                }
            }
            file.restore(config).map(|index| (index, slots))
        }
        None => None,
    };
    reconciled |= restored.is_none();
    let insights = match restored {
        Some((index, slots)) => {
            let shared = Shared::new(StagedIndex::from_main(index));
            let known: std::collections::HashSet<InsightId> =
                stored_insights.iter().copied().collect();
            for (slot, raw) in &slots {
                let iid = InsightId::from_bytes(*raw);
                next_insight_slot = next_insight_slot.max(slot + 1);
                if known.contains(&iid) && shared.index.contains(*slot)? {
                    insight_slots.insert(iid, *slot);
                    shared.record_ids(&[(*slot, iid, &[])])?;
                } else {
                    reconciled |= shared.index.remove(*slot)?;
                }
            }
            shared
        }
        None => Shared::new(StagedIndex::new(dimension, config)?),
    };
    for iid in stored_insights {
        if insight_slots.contains_key(&iid) {
            continue;
        }
        let Some(insight) = storage.get_insight(iid)? else {
            continue;
        };
        let slot = next_insight_slot;
        next_insight_slot += 1;
        insights.add_direct(&[(slot, iid, insight.embedding.as_slice())])?;
        insight_slots.insert(iid, slot);
        reconciled = true;
    }

    Ok(Loaded {
        columns,
        experiences,
        insight_slots,
        next_insight_slot,
        insights,
        snapshot_current: !reconciled,
    })
}
