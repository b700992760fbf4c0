//! [`PulseHandle`]: the public, async face of the engine. Each method
//! validates its input on the caller's task, is admitted under the in-flight
//! bound, sends the work to the right actor (or opens a read transaction on
//! the blocking pool) and maps the answer. No business logic lives here.

mod backend;
mod changes;
mod check;
mod engine;
mod experiences;
mod knowledge;
mod replication;
mod text;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::Actor;

pub use self::backend::EngineStats;
pub use self::check::{check_file_integrity, CheckReport};
use self::engine::{Access, Admission, Engine};
pub use self::replication::{MAX_REPLICATION_PAGE, MAX_REPLICATION_WAIT};
use crate::actors::blocking;
use crate::actors::router::{RouterActor, RouterArgs, RouterMsg};
use crate::actors::storage::{StorageActor, StorageArgs, StorageMsg};
use crate::collective::{
    validate_collective_name, validate_owner_id, Collective, CollectiveId, CollectiveStats,
};
use crate::config::Config;
use crate::embed::queue::EmbedQueue;
use crate::error::{Error, Result, ValidationError};
use crate::id::{InstanceId, Timestamp};
use crate::index::load::LoadCounts;
use crate::metadata::DatabaseMetadata;
use crate::storage::{Location, OpenOptions, RedbStorage, StorageRead, StorageWrite, WriteOp};
use crate::watch::WatchHub;

/// Turns text into embeddings, for records and insights given without one.
pub trait Embedder: Send + Sync {
    /// One embedding per text, in order, each of [`Embedder::dimension`] components.
    ///
    /// # Errors
    /// Whatever the model reports; the calling operation then fails and
    /// writes nothing.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Components per embedding.
    fn dimension(&self) -> usize;
    /// Identifies the model; stored in the database and checked on reopen.
    fn model_id(&self) -> &str;
}

/// A handle to an open PulseDB database. Cheap to clone; clones share one
/// engine. Every method is async and safe to call from many tasks at once.
#[derive(Clone)]
pub struct PulseHandle {
    engine: Arc<Engine>,
}

/// A handle that does not keep the engine alive (for background tasks that
/// must end when every handle is gone).
#[cfg(feature = "replication")]
#[derive(Clone)]
pub(crate) struct WeakHandle(std::sync::Weak<Engine>);

#[cfg(feature = "replication")]
impl WeakHandle {
    /// The handle, while the engine lives.
    pub(crate) fn upgrade(&self) -> Option<PulseHandle> {
        self.0.upgrade().map(|engine| PulseHandle { engine })
    }
}

#[cfg(feature = "replication")]
impl PulseHandle {
    pub(crate) fn downgrade(&self) -> WeakHandle {
        WeakHandle(Arc::downgrade(&self.engine))
    }
}

impl std::fmt::Debug for PulseHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseHandle")
            .field("instance_id", &self.engine.instance_id)
            .field("metadata", &self.engine.metadata)
            .field("closed", &self.engine.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl PulseHandle {
    /// Creates or opens the database file at `path`.
    ///
    /// Index snapshots live in a directory beside it (`<file>.idx`).
    ///
    /// # Errors
    /// `Validation` for a bad config (naming the field) or another stored
    /// dimension (`DimensionMismatch`), `DatabaseLocked` when the file is
    /// open elsewhere, `SchemaTooNew`, or a storage fault. Nothing is
    /// changed on error.
    pub async fn open(path: impl AsRef<Path>, config: Config) -> Result<PulseHandle> {
        Self::start(Location::File(path.as_ref().to_path_buf()), config, None).await
    }

    /// The same engine on an in-memory backend; nothing persists.
    ///
    /// # Errors
    /// `Validation` for a bad config.
    pub async fn open_in_memory(config: Config) -> Result<PulseHandle> {
        Self::start(Location::Memory, config, None).await
    }

    /// Like [`PulseHandle::open`], embedding records and insights given
    /// without an embedding with `embedder`.
    ///
    /// # Errors
    /// As `open`; also `Validation(DimensionMismatch)` when the embedder's
    /// dimension differs from the config's and `EmbedderMismatch` when the
    /// database was created with another model id.
    pub async fn open_with_embedder(
        path: impl AsRef<Path>,
        config: Config,
        embedder: Arc<dyn Embedder>,
    ) -> Result<PulseHandle> {
        Self::start(
            Location::File(path.as_ref().to_path_buf()),
            config,
            Some(embedder),
        )
        .await
    }

    async fn start(
        location: Location,
        config: Config,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<PulseHandle> {
        config.validate()?;
        let dimension = config.embedding_dimension.size();
        if let Some(e) = &embedder {
            if e.dimension() != dimension {
                return Err(ValidationError::DimensionMismatch {
                    expected: dimension,
                    got: e.dimension(),
                }
                .into());
            }
        }
        let snapshot_dir = match &location {
            Location::File(path) => Some(snapshot_dir(path)),
            Location::Memory => None,
        };
        let options = OpenOptions {
            location,
            dimension,
            durability: config.durability,
            read_only: config.read_only,
            embedder_model: embedder.as_ref().map(|e| e.model_id().to_string()),
            cache_size: Some(config.cache_size),
        };
        let storage = Arc::new(blocking(move || RedbStorage::open(&options)).await?);
        Self::start_over(storage, config, embedder, snapshot_dir).await
    }

    /// Starts the actors over an opened storage layer. `config` is validated.
    async fn start_over(
        storage: Arc<RedbStorage>,
        config: Config,
        embedder: Option<Arc<dyn Embedder>>,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<PulseHandle> {
        let dimension = config.embedding_dimension.size();
        let embedder = embedder.map(EmbedQueue::start).transpose()?;
        let watch = Arc::new(WatchHub::default());
        let (storage_actor, _) = Actor::spawn(
            None,
            StorageActor,
            StorageArgs {
                storage: Arc::downgrade(&storage),
                watch: watch.clone(),
                max_batch_ops: config.max_batch_ops,
                durability: config.durability,
                flush_interval: config.eventual_flush_interval,
                change_log: (!config.read_only).then(|| config.change_log.clone()),
                peer_retention: config.replication.peer_retention,
            },
        )
        .await
        .map_err(|_| Error::ActorUnavailable { actor: "storage" })?;
        let load_counts = Arc::new(LoadCounts::default());
        let router = Actor::spawn(
            None,
            RouterActor,
            RouterArgs {
                storage: Arc::downgrade(&storage),
                storage_actor: storage_actor.clone(),
                index: config.index.clone(),
                dimension,
                snapshot_dir,
                read_only: config.read_only,
                load_counts: load_counts.clone(),
            },
        )
        .await;
        let router = match router {
            Ok((router, _)) => router,
            Err(_) => {
                storage_actor.stop(None);
                return Err(Error::ActorUnavailable { actor: "router" });
            }
        };
        let metadata = storage.metadata();
        let instance_id = storage.instance_id();
        let handle = PulseHandle {
            engine: Arc::new(Engine::new(
                config,
                metadata,
                instance_id,
                embedder,
                watch,
                storage,
                router,
                storage_actor,
                load_counts,
            )),
        };
        handle.start_replication();
        Ok(handle)
    }

    /// Stops intake, waits for every request in flight, snapshots the
    /// indexes and closes the file. A second `close` returns `Ok(())`;
    /// afterwards every other async call returns `Error::Closed` and watch
    /// streams end.
    ///
    /// # Errors
    /// A failed snapshot or final flush; the database is closed regardless
    /// and every acknowledged write is durable.
    pub async fn close(&self) -> Result<()> {
        let e = &self.engine;
        let _serial = e.close_lock.lock().await;
        if e.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Pulling stops first; long polls waiting for a commit wake up and
        // find the handle closed.
        for puller in e
            .pullers
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
        {
            puller.abort();
        }
        e.watch.committed();
        // Every admitted call holds a permit: taking them all waits for the
        // calls in flight to finish.
        let all = u32::try_from(e.config.max_in_flight).unwrap_or(u32::MAX);
        let held = e.permits.acquire_many(all).await;
        e.permits.close();
        drop(held);

        let mut outcome = Ok(());
        let _ = e.storage_actor.call(StorageMsg::Barrier, None).await;
        match e.router.call(RouterMsg::Shutdown, None).await {
            Ok(ractor::rpc::CallResult::Success(Err(err))) => outcome = Err(err),
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => {}
            _ => outcome = Err(Error::ActorUnavailable { actor: "router" }),
        }
        let _ = e.router.stop_and_wait(None, None).await;
        let _ = e.storage_actor.drain_and_wait(None).await;
        e.watch.close_all();

        let storage = e.storage.write().ok().and_then(|mut s| s.take());
        let compact = e.config.compact_on_close && !e.config.read_only;
        if let Some(storage) = storage {
            let closed = blocking(move || {
                let flushed = storage.flush();
                // The actors hold the storage layer only while a piece of
                // their work runs, and every piece has finished: this is the
                // last reference, and dropping it releases the file lock.
                let mut owned = Arc::try_unwrap(storage).map_err(|_| {
                    tracing::error!("storage still referenced at close");
                    Error::ActorUnavailable { actor: "storage" }
                })?;
                // Everything is durable already: a failed compaction only
                // leaves free pages in the file.
                if compact && flushed.is_ok() {
                    if let Err(error) = owned.compact() {
                        tracing::warn!(%error, "compaction on close failed");
                    }
                }
                drop(owned);
                flushed
            })
            .await;
            if outcome.is_ok() {
                outcome = closed;
            }
        }
        outcome
    }

    /// The configuration this handle was opened with.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// Facts about the database file.
    pub fn metadata(&self) -> DatabaseMetadata {
        self.engine.metadata.clone()
    }

    /// The persistent id of this database file.
    pub fn instance_id(&self) -> InstanceId {
        self.engine.instance_id
    }

    // --- collectives -----------------------------------------------------

    /// Creates a collective.
    ///
    /// # Errors
    /// `Validation` for a bad name (empty, only whitespace, > 255 bytes),
    /// `ReadOnly`, `Closed`, or a storage fault; nothing is written on error.
    pub async fn create_collective(&self, name: &str) -> Result<CollectiveId> {
        self.create_collective_inner(name, None).await
    }

    /// Creates a collective with an owner.
    ///
    /// # Errors
    /// As [`PulseHandle::create_collective`], and `Validation` for an owner
    /// id outside 1 ..= 255 bytes.
    pub async fn create_collective_with_owner(
        &self,
        name: &str,
        owner_id: &str,
    ) -> Result<CollectiveId> {
        self.create_collective_inner(name, Some(owner_id)).await
    }

    async fn create_collective_inner(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<CollectiveId> {
        let e = &self.engine;
        e.run(
            "create_collective",
            None,
            Access::Write,
            Admission::Wait,
            async {
                validate_collective_name(name)?;
                if let Some(owner) = owner {
                    validate_owner_id(owner)?;
                }
                let now = Timestamp::now();
                let collective = Collective {
                    id: CollectiveId::new(),
                    name: name.to_string(),
                    owner_id: owner.map(str::to_string),
                    embedding_dimension: u16::try_from(e.metadata.embedding_dimension)
                        .unwrap_or(u16::MAX),
                    created_at: now,
                    updated_at: now,
                };
                let id = collective.id;
                e.write_direct(WriteOp::CreateCollective(collective))
                    .await?;
                Ok(id)
            },
        )
        .await
    }

    /// One collective, or `None`.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn get_collective(&self, id: CollectiveId) -> Result<Option<Collective>> {
        let e = &self.engine;
        e.run(
            "get_collective",
            Some(id),
            Access::Read,
            Admission::Wait,
            async { e.read_point(|s| s.get_collective(id)) },
        )
        .await
    }

    /// Every collective, oldest first.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn list_collectives(&self) -> Result<Vec<Collective>> {
        let e = &self.engine;
        e.run(
            "list_collectives",
            None,
            Access::Read,
            Admission::Wait,
            async { e.read(|s| s.list_collectives()).await },
        )
        .await
    }

    /// The collective a name stands for: of the collectives bearing it,
    /// the one with the smallest id (the oldest), so that every replica
    /// resolves a name the same way (REPLICATION.md); `None` when no
    /// collective has it.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn resolve_collective(&self, name: &str) -> Result<Option<CollectiveId>> {
        let all = self.list_collectives().await?;
        Ok(all
            .into_iter()
            .filter(|c| c.name == name)
            .map(|c| c.id)
            .min())
    }

    /// Collectives of one owner, oldest first.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn list_collectives_by_owner(&self, owner_id: &str) -> Result<Vec<Collective>> {
        let e = &self.engine;
        let owner = owner_id.to_string();
        e.run(
            "list_collectives_by_owner",
            None,
            Access::Read,
            Admission::Wait,
            async {
                let all = e.read(|s| s.list_collectives()).await?;
                Ok(all
                    .into_iter()
                    .filter(|c| c.owner_id.as_deref() == Some(owner.as_str()))
                    .collect())
            },
        )
        .await
    }

    /// Figures computed from the stored data.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed` or a storage fault.
    pub async fn get_collective_stats(&self, id: CollectiveId) -> Result<CollectiveStats> {
        let e = &self.engine;
        e.run(
            "get_collective_stats",
            Some(id),
            Access::Read,
            Admission::Wait,
            async { e.read(move |s| s.collective_stats(id)).await },
        )
        .await
    }

    /// Deletes a collective with its experiences, embeddings, relations,
    /// insights and activities in one transaction (one change-log entry),
    /// removes its index files and ends its watch streams.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `ReadOnly`, `Closed` or a storage fault;
    /// nothing is deleted on error.
    pub async fn delete_collective(&self, id: CollectiveId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "delete_collective",
            Some(id),
            Access::Write,
            Admission::Wait,
            async {
                // The delete and what follows it (the actor stopped, its
                // index files removed, its watch streams ended) run as one
                // task, finished even if the caller stops waiting.
                let engine = e.clone();
                let deleting = e.detach(async move {
                    engine.write_direct(WriteOp::DeleteCollective(id)).await?;
                    engine.collective_gone(id).await
                });
                deleting
                    .await
                    .map_err(|_| Error::ActorUnavailable { actor: "router" })?
            },
        )
        .await
    }
}

#[cfg(feature = "fault-injection")]
impl PulseHandle {
    /// Makes the actor serving collective `c` fail as if it had hit an
    /// internal fault, so that supervision can be exercised: the router
    /// restarts it and its indexes are rebuilt (or reloaded) from the stored
    /// data. Only built with the `fault-injection` feature.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed`, or `ActorUnavailable` when the actor
    /// is already gone. No data is changed.
    pub async fn inject_collective_fault(&self, c: CollectiveId) -> Result<()> {
        use crate::actors::collective::CollectiveMsg;
        self.inject("inject_collective_fault", c, CollectiveMsg::InjectFault)
            .await
    }

    /// Keeps the actor of collective `c` busy for `duration`, as a long
    /// index update would: writes to `c` queue behind it meanwhile. Only
    /// built with the `fault-injection` feature.
    ///
    /// # Errors
    /// As [`PulseHandle::inject_collective_fault`].
    pub async fn inject_collective_stall(
        &self,
        c: CollectiveId,
        duration: std::time::Duration,
    ) -> Result<()> {
        use crate::actors::collective::CollectiveMsg;
        self.inject(
            "inject_collective_stall",
            c,
            CollectiveMsg::InjectStall(duration),
        )
        .await
    }

    async fn inject(
        &self,
        op: &'static str,
        c: CollectiveId,
        msg: crate::actors::collective::CollectiveMsg,
    ) -> Result<()> {
        let e = &self.engine;
        e.run(op, Some(c), Access::Read, Admission::Wait, async {
            let actor = e.collective(c).await?.actor;
            actor
                .send_message(msg)
                .map_err(crate::actors::call_failed("collective"))
        })
        .await
    }
}

impl Drop for Engine {
    /// Dropping the last handle without `close` stops the actors. Every
    /// acknowledged write is already committed; with `Durability::Eventual`
    /// the pending commits are made durable by a final flush on the
    /// blocking pool (inline when no runtime is running).
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.router.stop_children(None);
        self.router.stop(None);
        self.storage_actor.stop(None);
        self.watch.close_all();
        if let Some(storage) = self.storage.get_mut().ok().and_then(|s| s.take()) {
            let flush = move || {
                if let Err(e) = storage.flush() {
                    tracing::warn!(error = %e, "final durable commit failed on drop");
                }
            };
            // The flush may fsync: never on an async worker thread. A
            // runtime finishes its blocking tasks before it shuts down.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(flush)),
                Err(_) => flush(),
            }
        }
    }
}

/// Directory of a database file's index snapshots.
fn snapshot_dir(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".idx");
    path.with_file_name(name)
}
