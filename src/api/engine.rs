//! The plumbing behind [`PulseHandle`](super::PulseHandle): admission (the
//! in-flight bound and the closed flag), actor resolution with a per-handle
//! cache, and the three ways a call reaches the engine — a collective actor,
//! the storage actor, or a read transaction on the blocking pool.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

tokio::task_local! {
    /// The permit of the public call being run, for the work it queues.
    static PERMIT: WorkPermit;
}

/// A share of the current call's permit, for a piece of work it queues
/// (`None` outside [`Engine::run`]).
pub(crate) fn work_permit() -> Option<WorkPermit> {
    PERMIT.try_with(Arc::clone).ok()
}
use tracing::Instrument;

use crate::actors::collective::CollectiveMsg;
use crate::actors::router::{CollectiveRef, RouterMsg};
use crate::actors::storage::{PendingWrite, StorageMsg};
use crate::actors::{blocking, call_failed, Reply, WorkPermit};
use crate::collective::CollectiveId;
use crate::config::Config;
use crate::embed::queue::EmbedQueue;
use crate::error::{Error, NotFoundError, Result};
use crate::id::InstanceId;
use crate::index::collective::CollectiveIndex;
use crate::index::load::LoadCounts;
use crate::metadata::DatabaseMetadata;
use crate::storage::{Committed, RedbStorage, StorageRead, WriteOp};
use crate::watch::WatchHub;

/// Whether a call waits for an in-flight slot or gives up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Wait,
    Try,
}

/// Whether a call mutates the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

pub(crate) struct Engine {
    pub(crate) config: Config,
    pub(crate) metadata: DatabaseMetadata,
    pub(crate) instance_id: InstanceId,
    /// The embedder's queue (its own thread), when the handle has one.
    pub(crate) embedder: Option<EmbedQueue>,
    pub(crate) watch: Arc<WatchHub>,
    /// `None` once closed: dropping the last reference closes the file.
    pub(crate) storage: RwLock<Option<Arc<RedbStorage>>>,
    pub(crate) router: ActorRef<RouterMsg>,
    pub(crate) storage_actor: ActorRef<StorageMsg>,
    /// One permit per request in flight; `close` takes them all.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) closed: AtomicBool,
    pub(crate) close_lock: tokio::sync::Mutex<()>,
    actors: RwLock<HashMap<CollectiveId, CollectiveRef>>,
    /// How pulling from each configured peer goes.
    pub(crate) peers: Arc<std::sync::Mutex<Vec<crate::replication::PeerStatus>>>,
    /// How this node's part in a NATS cluster goes.
    pub(crate) cluster: Arc<std::sync::Mutex<crate::replication::ClusterStatus>>,
    /// The pulling tasks, stopped by `close`.
    pub(crate) pullers: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
    /// How collective indexes were loaded.
    pub(crate) load_counts: Arc<LoadCounts>,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Config,
        metadata: DatabaseMetadata,
        instance_id: InstanceId,
        embedder: Option<EmbedQueue>,
        watch: Arc<WatchHub>,
        storage: Arc<RedbStorage>,
        router: ActorRef<RouterMsg>,
        storage_actor: ActorRef<StorageMsg>,
        load_counts: Arc<LoadCounts>,
    ) -> Engine {
        let permits = Arc::new(Semaphore::new(config.max_in_flight));
        Engine {
            config,
            metadata,
            instance_id,
            embedder,
            watch,
            storage: RwLock::new(Some(storage)),
            router,
            storage_actor,
            permits,
            closed: AtomicBool::new(false),
            close_lock: tokio::sync::Mutex::new(()),
            actors: RwLock::new(HashMap::new()),
            peers: Arc::default(),
            cluster: Arc::default(),
            pullers: std::sync::Mutex::default(),
            load_counts,
        }
    }

    /// Runs one public operation: a tracing span, admission, then `body`.
    pub(crate) async fn run<T, F>(
        &self,
        op: &'static str,
        collective: Option<CollectiveId>,
        access: Access,
        admission: Admission,
        body: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let span = match collective {
            Some(c) => tracing::debug_span!("pulsedb", op, collective = %c),
            None => tracing::debug_span!("pulsedb", op),
        };
        let result = async move {
            let permit = Arc::new(self.admit(access, admission).await?);
            PERMIT.scope(permit, body).await
        }
        .instrument(span)
        .await;
        match result {
            Err(Error::NotFound(NotFoundError::Collective(c))) => Err(self.not_found(c)),
            other => other,
        }
    }

    /// A collective missing here: on a cluster node holding a subset that
    /// leaves it out, which members hold it.
    pub(crate) fn not_found(&self, c: CollectiveId) -> Error {
        let held = self
            .config
            .replication
            .nats
            .as_ref()
            .and_then(|n| n.collectives.as_ref());
        match held {
            Some(held) if !held.contains(&c) => {
                let members = self
                    .cluster
                    .lock()
                    .map(|s| s.members.clone())
                    .unwrap_or_default();
                let holders = members
                    .into_iter()
                    .filter(|m| m.collectives.as_ref().is_none_or(|h| h.contains(&c)))
                    .filter_map(|m| m.address)
                    .collect();
                NotFoundError::NotHeld {
                    collective: c,
                    holders,
                }
                .into()
            }
            _ => NotFoundError::Collective(c).into(),
        }
    }

    async fn admit(&self, access: Access, admission: Admission) -> Result<OwnedSemaphorePermit> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let permit = match admission {
            Admission::Wait => self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Closed)?,
            Admission::Try => match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::NoPermits) => return Err(Error::Overloaded),
                Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Closed),
            },
        };
        // `close` sets the flag before taking every permit, so a call that
        // got a permit after that sees the flag here.
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if access == Access::Write && self.config.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(permit)
    }

    pub(crate) fn storage(&self) -> Result<Arc<RedbStorage>> {
        self.storage
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)
    }

    /// Runs a storage read on the blocking pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&RedbStorage) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let storage = self.storage()?;
        self.blocking(move || f(&storage)).await
    }

    /// Runs `work` as a task of its own that holds a share of the current
    /// call's permit: it completes (and stays within the in-flight bound)
    /// even if the caller stops waiting for it.
    pub(crate) fn detach<T, F>(&self, work: F) -> tokio::task::JoinHandle<Result<T>>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match work_permit() {
            Some(permit) => tokio::spawn(PERMIT.scope(permit, work)),
            None => tokio::spawn(work),
        }
    }

    /// Runs a point read — one record by key: a B-tree descent of a few
    /// pages, never a scan — on the calling thread.
    ///
    /// Why not the blocking pool: the hop there and back costs more than
    /// the read itself (a cached `get_experience` takes about 2 µs in
    /// `pulsedb-bench`). Why it is safe on an async worker: the work is
    /// bounded by the tree's depth; with the pages out of redb's cache it is
    /// a few reads from the OS page cache (8–9 µs at 100 000 records, past
    /// the 64 MiB cache) or, at worst, the disk: as short as waiting for a
    /// contended lock.
    /// Anything that can touch many records goes through [`Engine::read`].
    pub(crate) fn read_point<T>(&self, f: impl FnOnce(&RedbStorage) -> Result<T>) -> Result<T> {
        f(&*self.storage()?)
    }

    /// Runs blocking work of the current call on the blocking pool; the
    /// work holds a share of the call's permit until it ends, even if the
    /// caller stops waiting.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = work_permit();
        blocking(move || {
            let _held = permit;
            f()
        })
        .await
    }

    /// The actor and view of a collective (cached), or `NotFound(Collective)`.
    pub(crate) async fn collective(&self, id: CollectiveId) -> Result<CollectiveRef> {
        if let Some(known) = self.actors.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(known);
        }
        let known = self
            .router
            .call(|reply| RouterMsg::Resolve(id, reply), None)
            .await
            .map_err(call_failed("router"))?;
        let known = match known {
            ractor::rpc::CallResult::Success(r) => r?,
            _ => return Err(Error::ActorUnavailable { actor: "router" }),
        };
        if let Ok(mut map) = self.actors.write() {
            map.insert(id, known.clone());
        }
        Ok(known)
    }

    /// The loaded index of a collective, for searches: read directly,
    /// without the collective actor's mailbox. Waits while the collective
    /// loads. A view whose actor has stopped (and been replaced) is
    /// dropped from the cache and resolved once more.
    ///
    /// # Errors
    /// `NotFound(Collective)`, or `ActorUnavailable` when the collective
    /// stopped twice before it could serve.
    pub(crate) async fn index(&self, id: CollectiveId) -> Result<Arc<CollectiveIndex>> {
        for _ in 0..2 {
            let known = self.collective(id).await?;
            if let Some(index) = known.view.ready().await {
                return Ok(index);
            }
            self.forget_collective(id);
        }
        Err(Error::ActorUnavailable {
            actor: "collective",
        })
    }

    pub(crate) fn forget_collective(&self, id: CollectiveId) {
        if let Ok(mut map) = self.actors.write() {
            map.remove(&id);
        }
    }

    /// After a collective's delete committed: its actor stopped, its index
    /// files removed, its watch streams ended.
    pub(crate) async fn collective_gone(&self, id: CollectiveId) -> Result<()> {
        self.forget_collective(id);
        self.router
            .call(|reply| RouterMsg::Forget(id, reply), None)
            .await
            .map_err(call_failed("router"))?;
        self.watch.close_collective(id);
        Ok(())
    }

    /// Sends a request to a collective actor and waits for the answer.
    ///
    /// A message that could not be delivered (the actor had stopped) is
    /// re-sent once to the actor the router resolves now. A request whose
    /// actor stopped before answering fails with `NotFound` when the
    /// collective was deleted meanwhile (its actor stops with the delete,
    /// dropping what waited in its mailbox), `ActorUnavailable` otherwise.
    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        id: CollectiveId,
        make: impl FnOnce(RpcReplyPort<T>) -> CollectiveMsg,
    ) -> Result<T> {
        let (tx, rx) = ractor::concurrency::oneshot();
        let mut msg = make(RpcReplyPort::from(tx));
        for _ in 0..2 {
            let actor = self.collective(id).await?.actor;
            match actor.send_message(msg) {
                Ok(()) => match rx.await {
                    Ok(answer) => return Ok(answer),
                    Err(_) => break,
                },
                Err(MessagingErr::SendErr(back)) => {
                    self.forget_collective(id);
                    msg = back;
                }
                Err(_) => break,
            }
        }
        self.forget_collective(id);
        Err(self.stopped_before_answering(id))
    }

    /// The error for a request whose collective actor stopped before
    /// answering: `NotFound` if the collective no longer exists.
    fn stopped_before_answering(&self, id: CollectiveId) -> Error {
        // A point read, as `get_collective` makes on the calling task.
        match self.read_point(|s| s.get_collective(id)) {
            Ok(None) => Error::NotFound(NotFoundError::Collective(id)),
            Ok(Some(_)) | Err(_) => Error::ActorUnavailable {
                actor: "collective",
            },
        }
    }

    /// A write that a collective actor must apply to its index. The write
    /// holds a share of the call's permit until it is answered.
    pub(crate) async fn write_indexed(&self, id: CollectiveId, op: WriteOp) -> Result<Committed> {
        let permit = work_permit();
        self.ask(id, |port| CollectiveMsg::Write {
            op,
            reply: Reply::new(port, permit),
        })
        .await?
    }

    /// A write no index depends on, straight to the storage actor.
    pub(crate) async fn write_direct(&self, op: WriteOp) -> Result<Committed> {
        let (tx, rx) = ractor::concurrency::oneshot();
        let write = PendingWrite {
            op,
            via: None,
            reply: Reply::new(RpcReplyPort::from(tx), work_permit()),
        };
        self.storage_actor
            .send_message(StorageMsg::Write(write))
            .map_err(|_| Error::Closed)?;
        rx.await
            .map_err(|_| Error::ActorUnavailable { actor: "storage" })?
    }
}
