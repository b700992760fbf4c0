//! The storage actor: the only redb writer.
//!
//! Group commit: writes queue up while a commit is in progress; when it
//! finishes, everything queued (up to `max_batch_ops`) is applied in one
//! transaction with one commit. Each write keeps its own fate. After a
//! commit the actor publishes the watch events, then hands each collective
//! actor its committed writes (so the index is updated before the caller is
//! answered) and answers the other callers directly.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::collective::CollectiveMsg;
use super::{blocking, upgrade, Reply, StorageRef};
use crate::config::{ChangeLogConfig, Durability};
use crate::error::{Error, Result};
use crate::storage::{Committed, StorageWrite, WriteOp};
use crate::watch::WatchHub;

pub(crate) struct StorageActor;

pub(crate) struct StorageArgs {
    pub(crate) storage: StorageRef,
    pub(crate) watch: Arc<WatchHub>,
    pub(crate) max_batch_ops: usize,
    pub(crate) durability: Durability,
    pub(crate) flush_interval: std::time::Duration,
    /// Change-log retention: entries older are compacted away periodically
    /// (`None`: never, for read-only sessions).
    pub(crate) change_log: Option<ChangeLogConfig>,
    /// A replication peer silent this long stops holding compaction back.
    pub(crate) peer_retention: std::time::Duration,
}

pub(crate) struct StorageState {
    storage: StorageRef,
    watch: Arc<WatchHub>,
    max_batch_ops: usize,
    pending: Vec<PendingWrite>,
    committing: bool,
    /// While set, the next commit waits until this many writes are queued
    /// (or [`GATHER_TIMEOUT`] passes): the writers just answered are about
    /// to send their next writes.
    gathering: Option<usize>,
    flushing: bool,
    /// Change-log retention, when compaction is on.
    retention: Option<std::time::Duration>,
    peer_retention: std::time::Duration,
    /// A change-log compaction is running.
    compacting: bool,
    /// The last periodic flush and compaction started: they hold the
    /// storage layer while they run, so stopping waits for them.
    flush_task: Option<tokio::task::JoinHandle<()>>,
    compaction_task: Option<tokio::task::JoinHandle<()>>,
    /// Writes received so far.
    received: u64,
    /// Writes whose commit has finished (successfully or not).
    finished: u64,
    /// Replies waiting until `finished` reaches the count they carry: every
    /// write received before the barrier has been committed and answered.
    barriers: Vec<(u64, RpcReplyPort<()>)>,
}

/// A queued write and where its result goes.
pub(crate) struct PendingWrite {
    pub(crate) op: WriteOp,
    /// The collective actor that must apply the result to its index before
    /// the caller is answered.
    pub(crate) via: Option<ActorRef<CollectiveMsg>>,
    pub(crate) reply: Reply<Result<Committed>>,
}

/// Where the result of a write in the commit goes.
pub(crate) struct Waiter {
    via: Option<ActorRef<CollectiveMsg>>,
    reply: Reply<Result<Committed>>,
}

pub(crate) enum StorageMsg {
    /// Queue a write for the next group commit.
    Write(PendingWrite),
    /// A commit finished (sent by the actor to itself).
    CommitDone {
        writes: Vec<Waiter>,
        results: Result<Vec<Result<Committed>>>,
    },
    /// Answer once every write queued before this message has committed.
    Barrier(RpcReplyPort<()>),
    /// Make non-durable commits durable (`Durability::Eventual`).
    Flush,
    /// Compact the change log past its retention (sent to itself).
    CompactLog,
    /// A change-log compaction finished.
    CompactLogDone,
    /// A flush finished.
    FlushDone,
    /// Stop gathering and commit what is queued.
    GatherTimeout,
}

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = StorageState;
    type Arguments = StorageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StorageMsg>,
        args: StorageArgs,
    ) -> std::result::Result<StorageState, ActorProcessingErr> {
        if args.durability == Durability::Eventual {
            myself.send_interval(args.flush_interval, || StorageMsg::Flush);
        }
        if let Some(log) = &args.change_log {
            myself.send_interval(log.compaction_interval(), || StorageMsg::CompactLog);
        }
        Ok(StorageState {
            storage: args.storage,
            watch: args.watch,
            max_batch_ops: args.max_batch_ops,
            pending: Vec::new(),
            committing: false,
            gathering: None,
            flushing: false,
            retention: args.change_log.map(|log| log.retention),
            peer_retention: args.peer_retention,
            compacting: false,
            flush_task: None,
            compaction_task: None,
            received: 0,
            finished: 0,
            barriers: Vec::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StorageMsg>,
        state: &mut StorageState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // A flush or compaction still running holds the storage layer;
        // `close` needs it released when the actor has stopped.
        for task in [state.flush_task.take(), state.compaction_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<StorageMsg>,
        msg: StorageMsg,
        state: &mut StorageState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            StorageMsg::Write(write) => {
                state.received += 1;
                state.pending.push(write);
                let gathered = state
                    .gathering
                    .is_none_or(|want| state.pending.len() >= want);
                if !state.committing && gathered {
                    start_commit(&myself, state);
                }
            }
            StorageMsg::CommitDone { writes, results } => {
                state.committing = false;
                state.finished += writes.len() as u64;
                let committed = writes.len();
                finish_commit(state, writes, results);
                plan_commit(&myself, state, committed);
                // A barrier waits only for the writes received before it, so
                // a steady stream of new writes cannot starve it.
                let finished = state.finished;
                let (done, waiting): (Vec<_>, Vec<_>) = state
                    .barriers
                    .drain(..)
                    .partition(|(target, _)| *target <= finished);
                state.barriers = waiting;
                for (_, barrier) in done {
                    let _ = barrier.send(());
                }
            }
            StorageMsg::Barrier(reply) => {
                if state.finished >= state.received {
                    let _ = reply.send(());
                } else {
                    state.barriers.push((state.received, reply));
                }
            }
            StorageMsg::Flush => {
                if !state.flushing {
                    state.flushing = true;
                    let storage = state.storage.clone();
                    let me = myself.clone();
                    state.flush_task = Some(tokio::spawn(async move {
                        let flushed = blocking(move || upgrade(&storage)?.flush()).await;
                        if let Err(e) = flushed {
                            tracing::warn!(error = %e, "periodic durable commit failed");
                        }
                        let _ = me.send_message(StorageMsg::FlushDone);
                    }));
                }
            }
            StorageMsg::FlushDone => state.flushing = false,
            StorageMsg::CompactLog => compact_log(&myself, state),
            StorageMsg::CompactLogDone => state.compacting = false,
            StorageMsg::GatherTimeout => {
                if state.gathering.is_some() && !state.committing && !state.pending.is_empty() {
                    start_commit(&myself, state);
                }
            }
        }
        Ok(())
    }
}

/// Most change-log entries one compaction removes (one transaction); the
/// rest wait for the next.
const MAX_COMPACTED_PER_RUN: usize = 10_000;

/// Removes change-log entries older than the retention, on the blocking pool
/// (redb runs it between group commits: one writer at a time).
fn compact_log(myself: &ActorRef<StorageMsg>, state: &mut StorageState) {
    let Some(retention) = state.retention else {
        return;
    };
    if state.compacting {
        return;
    }
    state.compacting = true;
    let storage = state.storage.clone();
    let me = myself.clone();
    let peer_retention = state.peer_retention;
    state.compaction_task = Some(tokio::spawn(async move {
        let ago = |d: std::time::Duration| {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            crate::id::Timestamp(crate::id::Timestamp::now().0.saturating_sub(ms))
        };
        let (before, silent_since) = (ago(retention), ago(peer_retention));
        let compacted = blocking(move || {
            let storage = upgrade(&storage)?;
            for peer in storage.forget_silent_peers(silent_since)? {
                tracing::warn!(%peer, "replication peer silent too long: no longer holds the change log");
            }
            storage.compact_expired_changes(before, MAX_COMPACTED_PER_RUN)
        })
        .await;
        match compacted {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "change log compacted"),
            Err(e) => tracing::warn!(error = %e, "change-log compaction failed"),
        }
        let _ = me.send_message(StorageMsg::CompactLogDone);
    }));
}

/// Takes up to `max_batch_ops` queued writes and commits them on the blocking pool.
fn start_commit(myself: &ActorRef<StorageMsg>, state: &mut StorageState) {
    let take = state.pending.len().min(state.max_batch_ops);
    let (ops, writes): (Vec<WriteOp>, Vec<Waiter>) = state
        .pending
        .drain(..take)
        .map(|w| {
            let waiter = Waiter {
                via: w.via,
                reply: w.reply,
            };
            (w.op, waiter)
        })
        .unzip();
    state.committing = true;
    state.gathering = None;
    let storage = state.storage.clone();
    let me = myself.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let n = ops.len();
        let results = blocking(move || upgrade(&storage)?.apply(ops)).await;
        tracing::trace!(
            ops = n,
            elapsed_us = started.elapsed().as_micros() as u64,
            "group commit"
        );
        // If the actor is gone, the replies are dropped and callers get an
        // error rather than a hang.
        let _ = me.send_message(StorageMsg::CommitDone { writes, results });
    });
}

/// Longest a commit waits for returning writers (tokio's timer granularity).
const GATHER_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);
/// Batches smaller than this never make the next commit wait.
const GATHER_MIN_BATCH: usize = 8;

/// Starts the next commit after one finished, or waits briefly for the
/// writers of a large batch to come back: committing the one or two writes
/// that arrived meanwhile costs a whole fsync and splits the writers into
/// two alternating groups, halving the batch size.
fn plan_commit(myself: &ActorRef<StorageMsg>, state: &mut StorageState, committed: usize) {
    if state.pending.is_empty() {
        return;
    }
    let want = committed / 2;
    if committed < GATHER_MIN_BATCH || state.pending.len() >= want {
        start_commit(myself, state);
    } else {
        state.gathering = Some(want);
        myself.send_after(GATHER_TIMEOUT, || StorageMsg::GatherTimeout);
    }
}

fn finish_commit(
    state: &mut StorageState,
    writes: Vec<Waiter>,
    results: Result<Vec<Result<Committed>>>,
) {
    let mut results = match results {
        Ok(r) if r.len() == writes.len() => r,
        Ok(_) => {
            let e = Error::Storage(crate::storage::StorageError::Corrupt(
                "batch result count mismatch".into(),
            ));
            writes.iter().map(|_| Err(e.duplicate())).collect()
        }
        Err(fault) => {
            tracing::error!(error = %fault, ops = writes.len(), "group commit failed");
            writes.iter().map(|_| Err(fault.duplicate())).collect()
        }
    };
    if results.iter().any(Result::is_ok) {
        state.watch.committed();
    }
    for committed in results.iter_mut().filter_map(|r| r.as_mut().ok()) {
        let Committed { applied, events } = committed;
        state
            .watch
            .publish(events, |events| applied.complete_events(events));
        events.clear();
    }

    let mut per_collective: HashMap<ractor::ActorId, (ActorRef<CollectiveMsg>, Vec<_>)> =
        HashMap::new();
    for (write, result) in writes.into_iter().zip(results) {
        match write.via {
            Some(actor) if result.is_ok() => {
                per_collective
                    .entry(actor.get_id())
                    .or_insert_with(|| (actor.clone(), Vec::new()))
                    .1
                    .push((result, write.reply));
            }
            _ => {
                write.reply.send(result);
            }
        }
    }
    for (_, (actor, batch)) in per_collective {
        if let Err(ractor::MessagingErr::SendErr(CollectiveMsg::Committed(batch))) =
            actor.send_message(CollectiveMsg::Committed(batch))
        {
            // The collective actor is gone; its index is rebuilt from redb on
            // restart, so the writes are still good. Answer directly.
            for (result, reply) in batch {
                reply.send(result);
            }
        }
    }
}
