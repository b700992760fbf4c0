//! Opening the engine over any redb [`StorageBackend`], and index
//! diagnostics. Both exist so that fault-injection and crash tests can go
//! through the real engine without hooks in its production paths.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::redb::StorageBackend;

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::actors::blocking;
use crate::collective::CollectiveId;
use crate::config::Config;
use crate::error::Result;
use crate::index::collective::IndexStats;
use crate::storage::{Location, OpenOptions, RedbStorage, StorageError, COMMIT_SIZE_BUCKETS};

/// Engine figures at one instant, for monitoring
/// ([`PulseHandle::engine_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Calls admitted and not yet finished (at most `max_in_flight`).
    pub in_flight: usize,
    /// Group commits since the handle opened.
    pub commits: u64,
    /// Writes in those commits.
    pub committed_writes: u64,
    /// Commits by size: `(bound, n)` counts the commits of more writes than
    /// the previous bound and at most `bound` (the last bound is
    /// `u64::MAX`). Not cumulative.
    pub commit_sizes: Vec<(u64, u64)>,
    /// Collective experience indexes loaded from their snapshot alone
    /// (nothing changed since it was written).
    pub index_loads_from_snapshot: u64,
    /// Loaded from their snapshot and the change-log entries after it.
    pub index_loads_replayed: u64,
    /// Rebuilt from a scan of every record (no usable snapshot).
    pub index_loads_scanned: u64,
}

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

    /// The engine's figures now: calls in flight and group commits (how
    /// many writes each gathered). Zero commits after `close`.
    pub fn engine_stats(&self) -> EngineStats {
        let e = &self.engine;
        let in_flight = e
            .config
            .max_in_flight
            .saturating_sub(e.permits.available_permits());
        let Ok(storage) = e.storage() else {
            return EngineStats {
                in_flight,
                ..EngineStats::default()
            };
        };
        let (commits, committed_writes, sizes) = storage.commit_counts();
        let loads = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let bounds = COMMIT_SIZE_BUCKETS.iter().copied().chain([u64::MAX]);
        EngineStats {
            in_flight,
            commits,
            committed_writes,
            commit_sizes: bounds.zip(sizes).collect(),
            index_loads_from_snapshot: loads(&e.load_counts.snapshot),
            index_loads_replayed: loads(&e.load_counts.replayed),
            index_loads_scanned: loads(&e.load_counts.scanned),
        }
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
