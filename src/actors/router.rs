//! The router actor: resolves collectives to their actors, spawning each
//! lazily on first use, and supervises them — a collective actor that fails
//! is restarted at once and rebuilds (or reloads) its index.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::blocking;
use super::collective::{snapshot_path, CollectiveActor, CollectiveArgs, CollectiveMsg};
use super::storage::StorageMsg;
use crate::collective::CollectiveId;
use crate::error::{Error, NotFoundError, Result};
use crate::index::IndexConfig;
use crate::storage::{RedbStorage, StorageEngine};

pub(crate) struct RouterActor;

pub(crate) struct RouterArgs {
    pub(crate) storage: Arc<RedbStorage>,
    pub(crate) storage_actor: ActorRef<StorageMsg>,
    pub(crate) index: IndexConfig,
    pub(crate) dimension: usize,
    pub(crate) snapshot_dir: Option<PathBuf>,
}

pub(crate) struct RouterState {
    args: RouterArgs,
    actors: HashMap<CollectiveId, ActorRef<CollectiveMsg>>,
    owners: HashMap<ActorId, CollectiveId>,
}

pub(crate) enum RouterMsg {
    /// The actor of a collective, spawned if needed; `NotFound` if the
    /// collective does not exist.
    Resolve(CollectiveId, RpcReplyPort<Result<ActorRef<CollectiveMsg>>>),
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
                if let Some(actor) = state.actors.remove(&id) {
                    state.owners.remove(&actor.get_id());
                    let _ = actor.stop_and_wait(None, None).await;
                }
                if let Some(dir) = state.args.snapshot_dir.clone() {
                    let _ = blocking(move || {
                        for kind in ["experiences", "insights"] {
                            match std::fs::remove_file(snapshot_path(&dir, id, kind)) {
                                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                    tracing::warn!(collective = %id, error = %e,
                                        "cannot remove index snapshot");
                                }
                                _ => {}
                            }
                        }
                        Ok(())
                    })
                    .await;
                }
                let _ = reply.send(());
            }
            RouterMsg::Shutdown(reply) => {
                let mut outcome = Ok(());
                let actors: Vec<_> = state.actors.drain().collect();
                state.owners.clear();
                for (id, actor) in actors {
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
                        outcome = Err(e);
                    }
                    let _ = actor.stop_and_wait(None, None).await;
                }
                let _ = reply.send(outcome);
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
                let Some(id) = forget_cell(state, &cell) else {
                    return Ok(());
                };
                tracing::warn!(collective = %id, error = %err, "collective actor failed; restarting");
                if let Err(e) = spawn(&myself, state, id).await {
                    tracing::error!(collective = %id, error = %e,
                        "collective actor restart failed; will retry on next use");
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

fn forget_cell(state: &mut RouterState, cell: &ActorCell) -> Option<CollectiveId> {
    let id = state.owners.remove(&cell.get_id())?;
    if state
        .actors
        .get(&id)
        .is_some_and(|a| a.get_id() == cell.get_id())
    {
        state.actors.remove(&id);
    }
    Some(id)
}

async fn resolve(
    myself: &ActorRef<RouterMsg>,
    state: &mut RouterState,
    id: CollectiveId,
) -> Result<ActorRef<CollectiveMsg>> {
    if let Some(actor) = state.actors.get(&id) {
        return Ok(actor.clone());
    }
    let storage = state.args.storage.clone();
    if blocking(move || storage.get_collective(id))
        .await?
        .is_none()
    {
        return Err(NotFoundError::Collective(id).into());
    }
    spawn(myself, state, id).await
}

async fn spawn(
    myself: &ActorRef<RouterMsg>,
    state: &mut RouterState,
    id: CollectiveId,
) -> Result<ActorRef<CollectiveMsg>> {
    let args = CollectiveArgs {
        id,
        storage: state.args.storage.clone(),
        storage_actor: state.args.storage_actor.clone(),
        index: state.args.index.clone(),
        dimension: state.args.dimension,
        snapshot_dir: state.args.snapshot_dir.clone(),
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
    state.actors.insert(id, actor.clone());
    Ok(actor)
}
