//! The collective actor: orders one collective's writes and keeps its
//! [`CollectiveIndex`] in step with them.
//!
//! Writes pass through it on their way to the storage actor and come back
//! as `Committed` batches, which it applies to the index in commit order
//! *before* answering the callers (read-your-writes for search). Searches
//! do not pass through it: callers read the index published in the
//! collective's [`CollectiveView`] directly, on the blocking pool, so a
//! search never queues behind index updates. The actor also plans the
//! background work: draining the write buffers into the graphs and
//! rebuilding a graph that asks for it.
//!
//! Loading (snapshot or rebuild) runs in `post_start`, after the actor is
//! spawned: whoever spawns it does not wait, and messages queue meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use super::storage::{PendingWrite, StorageMsg};
use super::{blocking, in_background, upgrade, Reply, StorageRef};
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::index::collective::{CollectiveIndex, IDLE_DRAIN_DELAY};
use crate::index::load::LoadCounts;
use crate::index::IndexConfig;
use crate::storage::{Committed, StorageRead, WriteOp};

pub(crate) struct CollectiveActor;

pub(crate) struct CollectiveArgs {
    pub(crate) id: CollectiveId,
    pub(crate) storage: StorageRef,
    pub(crate) storage_actor: ActorRef<StorageMsg>,
    pub(crate) index: IndexConfig,
    pub(crate) dimension: usize,
    /// Where snapshots live (`None` for in-memory databases).
    pub(crate) snapshot_dir: Option<PathBuf>,
    /// A read-only session: snapshots are read, never written.
    pub(crate) read_only: bool,
    /// Where the loaded index is published.
    pub(crate) view: Arc<CollectiveView>,
    /// Wait before loading (a restart backing off).
    pub(crate) delay: Duration,
    /// How loads went, for `engine_stats`.
    pub(crate) load_counts: Arc<LoadCounts>,
}

pub(crate) struct CollectiveState {
    args: CollectiveArgs,
    /// `None` until `post_start` has loaded it.
    index: Option<Arc<CollectiveIndex>>,
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
    /// Writes forwarded to the storage actor whose results have not come
    /// back yet.
    in_flight: usize,
    /// A change-log position the indexes reflect whole: read when no write
    /// was in flight (at load, and after each batch that left none), so
    /// every change of the collective up to it was applied. A snapshot
    /// written while writes are in flight says it covers this position.
    applied_through: u64,
}

/// A committed write and the caller waiting for it.
pub(crate) type CommittedWrite = (Result<Committed>, Reply<Result<Committed>>);

pub(crate) enum CollectiveMsg {
    /// Forward a write to the storage actor; the answer comes back as `Committed`.
    Write {
        op: WriteOp,
        reply: Reply<Result<Committed>>,
    },
    /// Writes the storage actor committed, in commit order.
    Committed(Vec<CommittedWrite>),
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
    /// Fail on purpose (supervision tests only).
    #[cfg(feature = "fault-injection")]
    InjectFault,
    /// Hold the actor busy for a while, as a long index update would
    /// (tests only).
    #[cfg(feature = "fault-injection")]
    InjectStall(Duration),
}

impl Actor for CollectiveActor {
    type Msg = CollectiveMsg;
    type State = CollectiveState;
    type Arguments = CollectiveArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CollectiveMsg>,
        args: CollectiveArgs,
    ) -> std::result::Result<CollectiveState, ActorProcessingErr> {
        Ok(CollectiveState {
            args,
            index: None,
            snapshot_current: false,
            draining: false,
            rebuilding: false,
            added_since_drain: false,
            generation: 0,
            in_flight: 0,
            applied_through: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CollectiveMsg>,
        state: &mut CollectiveState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let loaded = load(&state.args).await?;
        state.snapshot_current = loaded.snapshot_current;
        state.applied_through = loaded.sequence;
        let index = Arc::new(loaded.index);
        state.args.view.publish(index.clone());
        state.index = Some(index);
        // A loaded graph may carry tombstones past the ratio: rebuilt aside.
        plan_rebuild(&myself, state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CollectiveMsg>,
        state: &mut CollectiveState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        state.args.view.retire();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CollectiveMsg>,
        msg: CollectiveMsg,
        state: &mut CollectiveState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let handled = handle_msg(myself, msg, state).await;
        if handled.is_err() {
            // ractor skips `post_stop` for a failing actor: retire the view
            // here, before the router learns of the failure.
            state.args.view.retire();
        }
        handled
    }
}

async fn handle_msg(
    myself: ActorRef<CollectiveMsg>,
    msg: CollectiveMsg,
    state: &mut CollectiveState,
) -> std::result::Result<(), ActorProcessingErr> {
    match msg {
        CollectiveMsg::Write { op, reply } => forward(myself, state, op, reply),
        CollectiveMsg::Committed(batch) => {
            apply_committed(state, batch).await?;
            plan_drain(&myself, state);
            plan_rebuild(&myself, state);
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
            return Err(format!("fault injected into collective {}", state.args.id).into());
        }
        #[cfg(feature = "fault-injection")]
        CollectiveMsg::InjectStall(duration) => tokio::time::sleep(duration).await,
    }
    Ok(())
}

/// How the rest of the engine sees a collective: its index once loaded,
/// until its actor stops. Searches wait here for the load and then read the
/// index directly.
#[derive(Debug)]
pub(crate) struct CollectiveView {
    state: watch::Sender<ViewState>,
}

#[derive(Debug, Clone)]
enum ViewState {
    Loading,
    Ready(Arc<CollectiveIndex>),
    /// The actor stopped (failed, deleted, closed): writes go to its
    /// successor, so its index must not be read any more.
    Retired,
}

impl CollectiveView {
    pub(crate) fn new() -> Arc<CollectiveView> {
        Arc::new(CollectiveView {
            state: watch::Sender::new(ViewState::Loading),
        })
    }

    /// The index once loaded; `None` when the actor stopped first or
    /// since.
    pub(crate) async fn ready(&self) -> Option<Arc<CollectiveIndex>> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, ViewState::Loading))
            .await
            .ok()?
            .clone();
        match state {
            ViewState::Ready(index) => Some(index),
            ViewState::Loading | ViewState::Retired => None,
        }
    }

    fn publish(&self, index: Arc<CollectiveIndex>) {
        self.state.send_if_modified(|s| match s {
            ViewState::Loading => {
                *s = ViewState::Ready(index);
                true
            }
            ViewState::Ready(_) | ViewState::Retired => false,
        });
    }

    /// Whether the view's actor has stopped (or is failing).
    pub(crate) fn is_retired(&self) -> bool {
        matches!(*self.state.borrow(), ViewState::Retired)
    }

    /// Marks the view stale: its actor stopped.
    pub(crate) fn retire(&self) {
        self.state.send_replace(ViewState::Retired);
    }
}

/// Loads the collective's index on the blocking pool.
async fn load(args: &CollectiveArgs) -> Result<crate::index::load::Loaded> {
    if !args.delay.is_zero() {
        tokio::time::sleep(args.delay).await;
    }
    let started = std::time::Instant::now();
    // Writes forwarded by a previous incarnation of this actor (before a
    // fault) may still be committing; their results go to the dead actor
    // and would never reach this index. Loading after they have all
    // committed makes the rebuilt index hold every one of them.
    if let Err(e) = args.storage_actor.call(StorageMsg::Barrier, None).await {
        tracing::debug!(collective = %args.id, error = %e, "storage barrier unavailable");
    }
    let (id, dimension) = (args.id, args.dimension);
    let storage = upgrade(&args.storage)?;
    let config = args.index.clone();
    let dir = args.snapshot_dir.clone();
    let counts = args.load_counts.clone();
    let loaded = blocking(move || {
        crate::index::load::load(id, &storage, &config, dimension, dir.as_deref(), &counts)
    })
    .await?;
    tracing::debug!(
        collective = %id,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "collective index ready"
    );
    Ok(loaded)
}

/// Sends a write on to the storage actor; its result comes back as
/// `Committed`.
fn forward(
    myself: ActorRef<CollectiveMsg>,
    state: &mut CollectiveState,
    op: WriteOp,
    reply: Reply<Result<Committed>>,
) {
    let write = PendingWrite {
        op,
        via: Some(myself),
        reply,
    };
    match state
        .args
        .storage_actor
        .send_message(StorageMsg::Write(write))
    {
        Ok(()) => state.in_flight += 1,
        Err(ractor::MessagingErr::SendErr(StorageMsg::Write(w))) => {
            w.reply.send(Err(Error::Closed));
        }
        Err(_) => {}
    }
}

/// The loaded index (`post_start` loads it before any message is handled).
fn loaded(state: &CollectiveState) -> Result<Arc<CollectiveIndex>> {
    state.index.clone().ok_or(Error::ActorUnavailable {
        actor: "collective",
    })
}

/// Applies committed writes to the index, then answers their callers.
///
/// An index failure here is a fault: the callers still get their (durable)
/// results, and the actor fails so that its supervisor rebuilds the index
/// from redb.
async fn apply_committed(state: &mut CollectiveState, batch: Vec<CommittedWrite>) -> Result<()> {
    let index = loaded(state)?;
    state.in_flight = state.in_flight.saturating_sub(batch.len());
    // With nothing else in flight, every change of the collective committed
    // so far is in this batch or applied already: the position read after
    // applying it is one the index reflects whole (no write can be
    // forwarded meanwhile, the actor is busy here). Best effort: without
    // storage the batch is still applied and answered.
    let storage = (state.in_flight == 0)
        .then(|| upgrade(&state.args.storage).ok())
        .flatten();
    let (batch, outcome, position) = blocking(move || {
        let mut batch = batch;
        let applied = batch
            .iter_mut()
            .filter_map(|(result, _)| result.as_mut().ok())
            .map(|committed| &mut committed.applied);
        // A panic in the index (FAISS) must not take the callers' committed
        // results with it: it becomes an index fault like any other. The
        // index is not read again after a fault (the view is retired).
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.apply(applied)))
                .unwrap_or_else(|_| {
                    Err(Error::Index(crate::index::IndexError::Faiss(
                        "index update panicked".into(),
                    )))
                });
        let position = match (&outcome, storage) {
            (Ok(_), Some(storage)) => storage.current_sequence().ok(),
            _ => None,
        };
        Ok((batch, outcome, position))
    })
    .await?;
    if let Some(position) = position {
        state.applied_through = position;
    }
    if let Err(e) = &outcome {
        // The index may lack these writes: nobody reads it from now on, so
        // a caller that searches right after its answer is served by the
        // successor, which rebuilds from redb.
        tracing::error!(collective = %state.args.id, error = %e,
            "index update failed; rebuilding");
        state.args.view.retire();
    }
    for (result, reply) in batch {
        reply.send(result);
    }
    let changed = outcome?;
    // Any index change schedules a drain: it also plans rebuilds.
    state.added_since_drain |= changed;
    state.snapshot_current &= !changed;
    Ok(())
}

/// Buffered vectors at which a background drain starts at once. Below it,
/// the drain waits for a quiet moment ([`IDLE_DRAIN_DELAY`]): graph
/// insertion is the most expensive part of a write, and a burst of writes
/// should not compete with it for the CPU. Searches pay for the buffer with
/// an exact scan of at most this many vectors.
const DRAIN_START: usize = 1024;

/// Decides when the write buffers are drained next.
fn plan_drain(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    if !state.added_since_drain || state.draining {
        return;
    }
    let Some(index) = &state.index else { return };
    state.generation += 1;
    if index.buffered() >= DRAIN_START {
        schedule_drain(myself, state);
    } else {
        let generation = state.generation;
        myself.send_after(IDLE_DRAIN_DELAY, move || {
            CollectiveMsg::DrainIfIdle(generation)
        });
    }
}

/// Starts the background drain of the write buffers unless one is running.
fn schedule_drain(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    let Some(index) = state.index.clone() else {
        return;
    };
    if state.draining {
        return;
    }
    state.draining = true;
    state.added_since_drain = false;
    let me = myself.clone();
    tokio::spawn(async move {
        let result = blocking(move || index.drain(true)).await;
        // If the actor is gone, the buffers go with it; its successor
        // rebuilds from redb.
        let _ = me.send_message(CollectiveMsg::Drained(result));
    });
}

/// Starts a background rebuild of the graphs that ask for one, unless one
/// is running. Searches and writes go on meanwhile.
fn plan_rebuild(myself: &ActorRef<CollectiveMsg>, state: &mut CollectiveState) {
    let Some(index) = state.index.clone() else {
        return;
    };
    if state.rebuilding || !index.needs_rebuild() {
        return;
    }
    state.rebuilding = true;
    let me = myself.clone();
    tokio::spawn(async move {
        let result = in_background("rebuild", move || index.rebuild()).await;
        let _ = me.send_message(CollectiveMsg::Rebuilt(result));
    });
}

async fn write_snapshots(state: &CollectiveState) -> Result<()> {
    let Some(dir) = state.args.snapshot_dir.clone() else {
        return Ok(());
    };
    if !state.args.index.snapshots || state.args.read_only {
        return Ok(());
    }
    let index = loaded(state)?;
    let storage = upgrade(&state.args.storage)?;
    let (quiet, applied_through) = (state.in_flight == 0, state.applied_through);
    blocking(move || {
        // Nothing in flight: everything committed so far is applied (the
        // actor forwards nothing while it waits here).
        let sequence = if quiet {
            storage.current_sequence()?
        } else {
            applied_through
        };
        index.save_snapshots(&dir, sequence)
    })
    .await
}
