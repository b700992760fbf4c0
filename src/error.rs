//! The crate's one error type and its caller-mistake categories.
//!
//! Caller mistakes ([`ValidationError`], [`NotFoundError`], [`Error::ReadOnly`],
//! …) are answers: nothing was written and the engine is healthy. Faults
//! ([`Error::Storage`], [`Error::Index`], [`Error::Io`]) mean the operation
//! could not be carried out; committed data is still intact.

use crate::collective::CollectiveId;
use crate::experience::ExperienceId;
use crate::index::IndexError;
use crate::insight::InsightId;
use crate::relation::RelationId;
use crate::storage::StorageError;

/// Result alias used by every fallible PulseDB function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in PulseDB.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input broke a documented rule; nothing was written.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationError),
    /// The named entity does not exist; nothing was written.
    #[error("not found: {0}")]
    NotFound(#[from] NotFoundError),
    /// The database was opened with `read_only` and the call would mutate it.
    #[error("the database is open read-only")]
    ReadOnly,
    /// The handle was closed; no further calls are accepted.
    #[error("the database handle is closed")]
    Closed,
    /// The in-flight bound (`Config::max_in_flight`) is reached (`try_` calls only).
    #[error("too many requests in flight; retry later")]
    Overloaded,
    /// The database file is already open, in this process or another one.
    #[error("the database file is already open elsewhere")]
    DatabaseLocked,
    /// The database was created with another embedding model.
    #[error("embedder mismatch: database uses model {stored:?}, handle was given {given:?}")]
    EmbedderMismatch {
        /// Model id stored in the database.
        stored: String,
        /// Model id of the embedder given to `open_with_embedder`.
        given: String,
    },
    /// The file was written by a newer PulseDB with a schema this build cannot read.
    #[error("database schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// Schema version found in the file.
        found: u32,
        /// Newest schema version this build understands.
        supported: u32,
    },
    /// The storage layer failed (I/O, corruption, redb error).
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    /// The vector index failed.
    #[error("vector index failure: {0}")]
    Index(#[from] IndexError),
    /// An operating-system I/O error outside redb (index snapshot files, …).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The embedder given to `open_with_embedder` failed or returned bad output.
    #[error("embedder failed: {reason}")]
    Embedder {
        /// What went wrong.
        reason: String,
    },
    /// The call needs an embedder and the handle has none (see
    /// `PulseHandle::open_with_embedder`).
    #[error("no embedder: open the database with one to embed text")]
    NoEmbedder,
    /// The change-log position polled from was compacted away (past
    /// `Config::change_log.retention`); `oldest` is the first sequence still
    /// held. Catch up from the current state, then poll from
    /// `get_current_sequence`.
    #[error("the change log no longer holds the changes after that position; the oldest held is {oldest}")]
    ChangesCompacted {
        /// The first sequence still held.
        oldest: u64,
    },
    /// An internal actor stopped before answering; the request may or may not
    /// have been applied (check with a read). The actor is being restarted.
    #[error("the {actor} actor stopped before answering")]
    ActorUnavailable {
        /// Which actor failed.
        actor: &'static str,
    },
}

impl Error {
    /// True for [`Error::Validation`].
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Validation(_))
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// True when the error is a caller mistake rather than a fault: the
    /// engine is healthy and nothing was written.
    pub(crate) fn is_answer(&self) -> bool {
        !matches!(
            self,
            Error::Storage(_) | Error::Index(_) | Error::Io(_) | Error::ActorUnavailable { .. }
        )
    }

    /// Copies an error for delivery to several waiters. Foreign sources that
    /// are not `Clone` are carried as their message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Validation(v) => Error::Validation(v.clone()),
            Error::NotFound(n) => Error::NotFound(n.clone()),
            Error::ReadOnly => Error::ReadOnly,
            Error::Closed => Error::Closed,
            Error::Overloaded => Error::Overloaded,
            Error::DatabaseLocked => Error::DatabaseLocked,
            Error::EmbedderMismatch { stored, given } => Error::EmbedderMismatch {
                stored: stored.clone(),
                given: given.clone(),
            },
            Error::SchemaTooNew { found, supported } => Error::SchemaTooNew {
                found: *found,
                supported: *supported,
            },
            Error::Storage(e) => Error::Storage(e.duplicate()),
            Error::Index(e) => Error::Index(e.duplicate()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Embedder { reason } => Error::Embedder {
                reason: reason.clone(),
            },
            Error::ActorUnavailable { actor } => Error::ActorUnavailable { actor },
            Error::NoEmbedder => Error::NoEmbedder,
            Error::ChangesCompacted { oldest } => Error::ChangesCompacted { oldest: *oldest },
        }
    }
}

/// An input that breaks one of the documented limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ValidationError {
    /// An embedding has the wrong number of components.
    #[error("embedding dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The dimension the database was created with.
        expected: usize,
        /// The dimension that was given.
        got: usize,
    },
    /// A field holds a value outside its rules.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// Name of the field.
        field: String,
        /// Which rule it broke, with the limit.
        reason: String,
    },
    /// A text field is larger than its byte limit.
    #[error("content is {size} bytes, the limit is {max}")]
    ContentTooLarge {
        /// Size given, in UTF-8 bytes.
        size: usize,
        /// Largest size allowed.
        max: usize,
    },
    /// A required field is missing or empty.
    #[error("field `{field}` is required")]
    RequiredField {
        /// Name of the field.
        field: String,
    },
    /// A list holds more items than allowed.
    #[error("field `{field}` has {count} items, the limit is {max}")]
    TooManyItems {
        /// Name of the field.
        field: String,
        /// Items given.
        count: usize,
        /// Most items allowed.
        max: usize,
    },
}

impl ValidationError {
    /// The name of the input this error is about: `embedding` for a
    /// dimension mismatch, `content` for oversized content.
    pub fn field(&self) -> &str {
        match self {
            ValidationError::InvalidField { field, .. }
            | ValidationError::RequiredField { field }
            | ValidationError::TooManyItems { field, .. } => field,
            ValidationError::DimensionMismatch { .. } => "embedding",
            ValidationError::ContentTooLarge { .. } => "content",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The entity a call named does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum NotFoundError {
    /// No collective with this id.
    #[error("collective {0}")]
    Collective(CollectiveId),
    /// No experience with this id.
    #[error("experience {0}")]
    Experience(ExperienceId),
    /// No relation with this id.
    #[error("relation {0}")]
    Relation(RelationId),
    /// No insight with this id.
    #[error("insight {0}")]
    Insight(InsightId),
    /// No activity for this agent in this collective.
    #[error("activity of agent {agent_id:?} in collective {collective_id}")]
    Activity {
        /// The agent.
        agent_id: String,
        /// The collective.
        collective_id: CollectiveId,
    },
    /// A collective this cluster node does not hold (it holds a subset).
    #[error("collective {collective} on this node, which does not hold it; nodes that do: {}", if holders.is_empty() { "none known".to_string() } else { holders.join(", ") })]
    NotHeld {
        /// The collective.
        collective: CollectiveId,
        /// Addresses of the cluster members known to hold it.
        holders: Vec<String>,
    },
}
