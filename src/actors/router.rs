//! The router actor: resolves collectives to their actors, spawning each
//! lazily on first use, and supervises them — a collective actor that fails
//! is restarted and rebuilds (or reloads) its index. Repeated failures back
//! off exponentially (capped), so a collective that cannot load does not
//! spin. Spawning never waits for a load: the collective actor loads in its
//! `post_start`, so the router keeps resolving other collectives meanwhile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::collective::{CollectiveActor, CollectiveArgs, CollectiveMsg, CollectiveView};
use super::storage::StorageMsg;
use super::{blocking, upgrade, StorageRef};
use crate::collective::CollectiveId;
use crate::error::{Error, NotFoundError, Result};
use crate::index::collective::snapshot_path;
use crate::index::load::LoadCounts;
use crate::index::IndexConfig;
use crate::storage::StorageRead;

pub(crate) struct RouterActor;

pub(crate) struct RouterArgs {
    pub(crate) storage: StorageRef,
    pub(crate) storage_actor: ActorRef<StorageMsg>,
    pub(crate) index: IndexConfig,
    pub(crate) dimension: usize,
    pub(crate) snapshot_dir: Option<PathBuf>,
    /// A read-only session: snapshots are read, never written.
    pub(crate) read_only: bool,
    /// How collective indexes were loaded (shared with the engine).
    pub(crate) load_counts: Arc<LoadCounts>,
}

pub(crate) struct RouterState {
    args: RouterArgs,
    actors: HashMap<CollectiveId, CollectiveRef>,
    owners: HashMap<ActorId, CollectiveId>,
    /// Recent failures per collective: how many in a row, and the last.
    failures: HashMap<CollectiveId, (u32, Instant)>,
    /// Actors of deleted collectives, told to stop but not waited for (one
    /// may be loading); shutdown waits for them.
    stopping: Vec<ActorRef<CollectiveMsg>>,
}

/// A live collective: its actor (writes, snapshots) and its view (the
/// index that searches read).
#[derive(Clone)]
pub(crate) struct CollectiveRef {
    pub(crate) actor: ActorRef<CollectiveMsg>,
    pub(crate) view: Arc<CollectiveView>,
}

/// Wait before restarting a collective that failed `failures` times in a
/// row: none the first time, then 100 ms doubling up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(16);
    (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A failure this long after the previous one starts the count again.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);

pub(crate) enum RouterMsg {
    /// The actor of a collective, spawned if needed; `NotFound` if the
    /// collective does not exist.
    Resolve(CollectiveId, RpcReplyPort<Result<CollectiveRef>>),
    /// A collective was deleted: stop its actor and remove its index files.
    Forget(CollectiveId, RpcReplyPort<()>),
    /// Snapshot every index and stop every collective actor.
    Shutdown(RpcReplyPort<Result<()>>),
}

impl Actor for RouterActor {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> std::result::Result<RouterState, ActorProcessingErr> {
        Ok(RouterState {
            args,
            actors: HashMap::new(),
            owners: HashMap::new(),
            failures: HashMap::new(),
            stopping: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Resolve(id, reply) => {
                let result = resolve(&myself, state, id).await;
                let _ = reply.send(result);
            }
            RouterMsg::Forget(id, reply) => {
                forget(state, id).await;
                let _ = reply.send(());
            }
            RouterMsg::Shutdown(reply) => {
                let _ = reply.send(shutdown(state).await);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RouterMsg>,
        event: SupervisionEvent,
        state: &mut RouterState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                // `None`: already replaced (see `resolve`) or forgotten.
                if let Some(id) = forget_cell(state, &cell) {
                    tracing::warn!(collective = %id, error = %err, "collective actor failed");
                    restart(&myself, state, id).await;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                forget_cell(state, &cell);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A deleted collective: its actor is told to stop (not waited for: it may
/// be loading; shutdown waits for it) and its snapshot files are removed.
async fn forget(state: &mut RouterState, id: CollectiveId) {
    state.failures.remove(&id);
    if let Some(gone) = state.actors.remove(&id) {
        state.owners.remove(&gone.actor.get_id());
        gone.view.retire();
        gone.actor.stop(None);
        state
            .stopping
            .retain(|a| a.get_status() != ractor::ActorStatus::Stopped);
        state.stopping.push(gone.actor);
    }
    let Some(dir) = state.args.snapshot_dir.clone() else {
        return;
    };
    let _ = blocking(move || {
        for kind in ["experiences", "insights"] {
            match std::fs::remove_file(snapshot_path(&dir, id, kind)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(collective = %id, error = %e, "cannot remove index snapshot");
                }
                _ => {}
            }
        }
        Ok(())
    })
    .await;
}

/// Snapshots every live collective's indexes and stops every collective
/// actor. Returns the first snapshot failure (the rest are still tried).
async fn shutdown(state: &mut RouterState) -> Result<()> {
    let mut outcome = Ok(());
    for actor in state.stopping.drain(..) {
        let _ = actor.stop_and_wait(None, None).await;
    }
    let actors: Vec<_> = state.actors.drain().collect();
    state.owners.clear();
    for (id, CollectiveRef { actor, view }) in actors {
        let snap = actor
            .call(CollectiveMsg::Snapshot, None)
            .await
            .map_err(super::call_failed("collective"))
            .and_then(|r| match r {
                ractor::rpc::CallResult::Success(r) => r,
                _ => Err(Error::ActorUnavailable {
                    actor: "collective",
                }),
            });
        if let Err(e) = snap {
            tracing::warn!(collective = %id, error = %e, "index snapshot failed");
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
        view.retire();
        let _ = actor.stop_and_wait(None, None).await;
    }
    outcome
}

/// Drops a stopped actor from the maps and retires its view. Returns its
/// collective, unless it had been forgotten already.
fn forget_cell(state: &mut RouterState, cell: &ActorCell) -> Option<CollectiveId> {
    let id = state.owners.remove(&cell.get_id())?;
    if state
        .actors
        .get(&id)
        .is_some_and(|r| r.actor.get_id() == cell.get_id())
    {
        if let Some(gone) = state.actors.remove(&id) {
            gone.view.retire();
        }
    }
    Some(id)
}

async fn resolve(
    myself: &ActorRef<RouterMsg>,
    state: &mut RouterState,
    id: CollectiveId,
) -> Result<CollectiveRef> {
    if let Some(known) = state.actors.get(&id).cloned() {
        if !known.view.is_retired() {
            return Ok(known);
        }
        // The actor failed and retired its view; its supervision event is
        // still on the way. Replace it now rather than hand out a view that
        // can no longer be read (the event then finds nothing to restart).
        state.owners.remove(&known.actor.get_id());
        state.actors.remove(&id);
        return restart(myself, state, id)
            .await
            .ok_or(Error::ActorUnavailable {
                actor: "collective",
            });
    }
    let storage = upgrade(&state.args.storage)?;
    if blocking(move || storage.get_collective(id))
        .await?
        .is_none()
    {
        return Err(NotFoundError::Collective(id).into());
    }
    spawn(myself, state, id, Duration::ZERO).await
}

/// Starts a new actor for a collective whose actor failed, after the
/// backoff its recent failures call for. `None` when the spawn failed (the
/// next call on the collective tries again).
async fn restart(
    myself: &ActorRef<RouterMsg>,
    state: &mut RouterState,
    id: CollectiveId,
) -> Option<CollectiveRef> {
    let now = Instant::now();
    let failures = match state.failures.get(&id) {
        Some((n, last)) if now.duration_since(*last) < FAILURE_MEMORY => n + 1,
        _ => 1,
    };
    state.failures.insert(id, (failures, now));
    let delay = backoff(failures);
    tracing::warn!(collective = %id, failures, delay_ms = delay.as_millis() as u64,
        "restarting collective actor");
    match spawn(myself, state, id, delay).await {
        Ok(known) => Some(known),
        Err(e) => {
            tracing::error!(collective = %id, error = %e,
                "collective actor restart failed; will retry on next use");
            None
        }
    }
}

/// Spawns the actor of `id`, which loads after `delay`. Returns once the
/// actor runs, before it has loaded.
async fn spawn(
    myself: &ActorRef<RouterMsg>,
    state: &mut RouterState,
    id: CollectiveId,
    delay: Duration,
) -> Result<CollectiveRef> {
    let view = CollectiveView::new();
    let args = CollectiveArgs {
        id,
        storage: state.args.storage.clone(),
        storage_actor: state.args.storage_actor.clone(),
        index: state.args.index.clone(),
        dimension: state.args.dimension,
        snapshot_dir: state.args.snapshot_dir.clone(),
        read_only: state.args.read_only,
        load_counts: state.args.load_counts.clone(),
        view: view.clone(),
        delay,
    };
    let (actor, _) = Actor::spawn_linked(None, CollectiveActor, args, myself.get_cell())
        .await
        .map_err(|e| {
            tracing::error!(collective = %id, error = %e, "collective actor failed to start");
            Error::ActorUnavailable {
                actor: "collective",
            }
        })?;
    state.owners.insert(actor.get_id(), id);
    let known = CollectiveRef { actor, view };
    state.actors.insert(id, known.clone());
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_exponentially_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::ZERO, "the first restart is at once");
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(6), Duration::from_millis(1_600));
        assert_eq!(backoff(8), Duration::from_millis(6_400));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        let waits: Vec<Duration> = (1..40).map(backoff).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}
