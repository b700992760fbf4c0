//! Opening the engine over any redb [`StorageBackend`], and index
//! diagnostics. Both exist so that fault-injection and crash tests can go
//! through the real engine without hooks in its production paths.

use std::sync::Arc;

use ::redb::StorageBackend;

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::actors::blocking;
use crate::collective::CollectiveId;
use crate::config::Config;
use crate::error::Result;
use crate::index::collective::IndexStats;
use crate::storage::{Location, OpenOptions, RedbStorage, StorageError};

impl PulseHandle {
    /// Opens the engine over a caller-supplied redb storage backend (for
    /// example one that injects I/O faults, or keeps the bytes in memory).
    ///
    /// The backend holds the whole database; index snapshots are not
    /// written, so indexes live in memory and are rebuilt from the stored
    /// embeddings on every open, as with [`PulseHandle::open_in_memory`].
    /// Opening a second handle over the same bytes is not detected: the
    /// caller owns the backend and must not share it between open handles.
    ///
    /// After a failed commit redb refuses further write transactions on the
    /// same `Database` (its in-memory state may disagree with the bytes); the
    /// engine then answers every write with a storage error and keeps serving
    /// reads of what was committed. Reopening over the backend's bytes
    /// recovers.
    ///
    /// # Errors
    /// `Validation` for a bad config or another stored dimension,
    /// `SchemaTooNew`, or a storage fault when redb cannot open or initialise
    /// the bytes. On error the backend is dropped; bytes already written for
    /// a new database are a valid empty database or nothing.
    pub async fn open_with_backend(
        backend: impl StorageBackend,
        config: Config,
    ) -> Result<PulseHandle> {
        config.validate()?;
        let options = OpenOptions {
            location: Location::Memory,
            dimension: config.embedding_dimension.size(),
            durability: config.durability,
            read_only: config.read_only,
            embedder_model: None,
            cache_size: Some(config.cache_size),
        };
        let storage = blocking(move || {
            let db = ::redb::Database::builder()
                .create_with_backend(backend)
                .map_err(StorageError::Database)?;
            RedbStorage::from_database(db, &options)
        })
        .await?;
        Self::start_over(Arc::new(storage), config, None, None).await
    }

    /// What collective `c`'s vector indexes hold right now (after every
    /// write acknowledged so far).
    ///
    /// A diagnostic: crash and fault tests compare `indexed` with the stored
    /// `experience_count` to prove that indexes agree with redb.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed`, or `ActorUnavailable` when the
    /// collective's actor stopped before answering. Nothing changes.
    pub async fn index_stats(&self, c: CollectiveId) -> Result<IndexStats> {
        let e = &self.engine;
        e.run(
            "index_stats",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                let index = e.index(c).await?;
                e.blocking(move || index.stats()).await
            },
        )
        .await
    }
}
