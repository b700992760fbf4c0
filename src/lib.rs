//! # PulseDB
//!
//! An embedded, persistent **collective memory for AI agent swarms**. Agents
//! record *experiences* (text, an embedding, typed metadata), find them again
//! by meaning with filters, link them in a typed graph, distil *insights*,
//! announce their *activity*, and are told about each other's changes as they
//! happen. One database file, no server.
//!
//! ```no_run
//! use pulsedb::{Config, EmbeddingDimension, NewExperience, PulseHandle};
//!
//! # async fn demo() -> pulsedb::Result<()> {
//! let config = Config {
//!     embedding_dimension: EmbeddingDimension::Custom(4),
//!     ..Config::default()
//! };
//! let db = PulseHandle::open("memory.db", config).await?;
//! let team = db.create_collective("team").await?;
//! db.record_experience(NewExperience {
//!     collective_id: team,
//!     content: "cargo test needs --release for the FAISS tests".into(),
//!     embedding: Some(vec![0.1, 0.9, 0.0, 0.2]),
//!     ..NewExperience::default()
//! })
//! .await?;
//! let hits = db.search_similar(team, &[0.1, 0.8, 0.1, 0.2], 5).await?;
//! assert_eq!(hits.len(), 1);
//! db.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Architecture
//!
//! [`PulseHandle`] (cheap to clone) validates each call on the caller's task
//! and bounds the work in flight. Behind it run supervised actors:
//!
//! - the **router** creates, resolves and supervises one actor per live
//!   collective, restarting a failed one (its index is reloaded or rebuilt);
//! - a **collective actor** orders one collective's writes and keeps its
//!   index (vector indexes for experiences and insights, slot ↔ id maps,
//!   filter columns) in step with them, in commit order; it also drains
//!   the write buffers into the graphs and rebuilds a graph aside when
//!   deletes call for it. Searches do not pass through it: they read the
//!   collective's index directly on the blocking pool;
//! - the **storage actor** is the only redb writer: it group-commits every
//!   queued write in one transaction (the change log is written in the same
//!   transaction), publishes watch events, and hands each collective actor
//!   its committed writes so the index is updated *before* the caller is
//!   answered.
//!
//! Reads that need no index open a redb read transaction directly: on the
//! blocking pool (list, recent, poll), or on the calling task for a point
//! read of one record by key (get). redb is the source of truth;
//! indexes are derived and rebuilt whenever a snapshot is missing or stale.

//! # Text
//!
//! With the `embedder` feature, [`BuiltinEmbedder`] (all-MiniLM-L6-v2 on
//! candle) embeds text in process: open with
//! [`PulseHandle::open_with_embedder`], record experiences with
//! `embedding: None`, and search with [`PulseHandle::search_text`]. Any
//! other model plugs in through the [`Embedder`] trait. Each handle runs
//! its embedder on a thread of its own; the texts of callers that queue
//! while a forward pass runs share the next pass.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod activity;
mod actors;
mod api;
mod collective;
mod config;
mod embed;
mod error;
mod event;
mod experience;
mod id;
#[cfg(feature = "internals")]
pub mod index;
#[cfg(not(feature = "internals"))]
mod index;
mod insight;
mod metadata;
mod relation;
pub mod replication;
mod search;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "internals")]
pub mod storage;
#[cfg(not(feature = "internals"))]
mod storage;
mod validate;
mod watch;
#[cfg(feature = "wire")]
pub mod wire;

pub use crate::activity::{validate_agent_id, Activity, NewActivity, MAX_ACTIVITY_TEXT_BYTES};
pub use crate::api::{
    check_file_integrity, CheckReport, Embedder, EngineStats, PulseHandle, MAX_REPLICATION_PAGE,
    MAX_REPLICATION_WAIT,
};
pub use crate::collective::{
    validate_collective_name, validate_owner_id, Collective, CollectiveId, CollectiveStats,
    MAX_COLLECTIVE_NAME_BYTES,
};
pub use crate::config::{
    ActivityConfig, ChangeLogConfig, Config, DecayConfig, Durability, EmbeddingDimension,
    IndexConfig, NatsConfig, PeerConfig, ReplicationConfig, WatchConfig, MAX_EMBEDDING_DIMENSION,
};
#[cfg(feature = "embedder")]
pub use crate::embed::BuiltinEmbedder;
pub use crate::error::{Error, NotFoundError, Result, ValidationError};
pub use crate::event::{WatchEvent, WatchEventType, WatchFilter};
pub use crate::experience::{
    energy, validate_embedding, validate_metadata, Experience, ExperienceId, ExperienceType,
    ExperienceTypeTag, ExperienceUpdate, NewExperience, Severity, MAX_BATCH_ITEMS,
    MAX_CONTENT_BYTES, MAX_METADATA_BYTES,
};
pub use crate::id::{InstanceId, Timestamp};
pub use crate::index::collective::IndexStats;
pub use crate::insight::{DerivedInsight, InsightId, InsightType, NewDerivedInsight};
pub use crate::metadata::DatabaseMetadata;
pub use crate::relation::{
    ExperienceRelation, NewExperienceRelation, RelationDirection, RelationId, RelationType,
};
pub use crate::search::{
    ContextCandidates, ContextRequest, RecallWeights, SearchFilter, SearchOptions, SearchResult,
};
pub use crate::validate::MAX_RESULTS;
pub use crate::watch::WatchStream;
/// The JSON types of experience `metadata`.
pub use serde_json;
