//! The storage layer: one redb file, the source of truth.
//!
//! [`StorageRead`] and [`StorageWrite`] are the contract; [`RedbStorage`]
//! implements them. Reads
//! run in their own read transactions (redb is MVCC: readers never block the
//! writer). Writes arrive as batches of [`WriteOp`]s: one write transaction,
//! one commit, and each operation keeps its own fate — every operation checks
//! all of its preconditions before it writes anything, so a domain error
//! leaves no trace while the rest of the batch commits.

// Parts of this layer serve only the tests and benches that use it
// directly (the `internals` feature).
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

mod apply;
pub(crate) mod codec;
mod read;
mod redb;
mod reload;
mod replica;
pub mod schema;
mod verify;
pub(crate) mod versions;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::redb::{OpenOptions, RedbStorage, COMMIT_SIZE_BUCKETS};
use crate::activity::Activity;
use crate::collective::{Collective, CollectiveId, CollectiveStats};
use crate::error::Result;
use crate::event::{WatchEvent, WatchEventType};
use crate::experience::{Experience, ExperienceId, ExperienceUpdate};
use crate::id::{InstanceId, Timestamp};
use crate::insight::{DerivedInsight, InsightId};
use crate::metadata::DatabaseMetadata;
use crate::relation::{ExperienceRelation, RelationId};
use crate::replication::RemoteChange;

/// A fault in the storage layer (as opposed to a caller mistake).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// redb failed to open or repair the file.
    #[error("database: {0}")]
    Database(#[source] ::redb::DatabaseError),
    /// redb failed to begin a transaction.
    #[error("transaction: {0}")]
    Transaction(#[from] ::redb::TransactionError),
    /// redb failed to open a table.
    #[error("table: {0}")]
    Table(#[from] ::redb::TableError),
    /// redb's storage failed (I/O, corruption).
    #[error("storage: {0}")]
    Storage(#[from] ::redb::StorageError),
    /// A commit failed; the transaction's writes are discarded.
    #[error("commit: {0}")]
    Commit(#[from] ::redb::CommitError),
    /// Compacting the file failed (the database stays as it was committed).
    #[error("compaction: {0}")]
    Compaction(#[from] ::redb::CompactionError),
    /// Setting the transaction durability failed.
    #[error("durability: {0}")]
    Durability(#[from] ::redb::SetDurabilityError),
    /// A stored record could not be encoded or decoded.
    #[error("codec ({what}): {source}")]
    Codec {
        /// Record type.
        what: &'static str,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },
    /// Stored data breaks an invariant.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// An earlier fault (shared by every operation of a failed batch).
    #[error("{0}")]
    Shared(String),
    /// A write was attempted on a database opened read-only.
    #[error("the database was opened read-only")]
    ReadOnly,
}

impl StorageError {
    pub(crate) fn duplicate(&self) -> StorageError {
        StorageError::Shared(self.to_string())
    }
}

/// What kind of write a change-log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A collective was created.
    CollectiveCreated,
    /// A collective and everything in it were deleted.
    CollectiveDeleted,
    /// An experience was recorded.
    ExperienceCreated,
    /// An experience changed (update, unarchive, reinforce).
    ExperienceUpdated,
    /// An experience was archived.
    ExperienceArchived,
    /// An experience was deleted (with its relations).
    ExperienceDeleted,
    /// A relation was stored.
    RelationCreated,
    /// A relation was deleted.
    RelationDeleted,
    /// An insight was stored.
    InsightCreated,
    /// An insight was deleted.
    InsightDeleted,
}

impl ChangeKind {
    /// The watch event type of an experience change.
    pub fn watch_type(self) -> Option<WatchEventType> {
        match self {
            ChangeKind::ExperienceCreated => Some(WatchEventType::Created),
            ChangeKind::ExperienceUpdated => Some(WatchEventType::Updated),
            ChangeKind::ExperienceArchived => Some(WatchEventType::Archived),
            ChangeKind::ExperienceDeleted => Some(WatchEventType::Deleted),
            _ => None,
        }
    }
}

/// One change-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// What happened.
    pub kind: ChangeKind,
    /// The collective concerned.
    pub collective_id: CollectiveId,
    /// The id of the entity written (collective, experience, relation or insight).
    pub entity_id: [u8; 16],
    /// When.
    pub timestamp: Timestamp,
    /// The instance whose write it records (`None`: an entry written
    /// before origins were logged, so this instance's).
    pub origin: Option<InstanceId>,
    /// For experience changes other than delete: the record after the write,
    /// without its embedding.
    pub experience: Option<Experience>,
}

/// One write operation of a batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create a collective.
    CreateCollective(Collective),
    /// Delete a collective and everything in it.
    DeleteCollective(CollectiveId),
    /// Record experiences (ids and embeddings set), all or nothing.
    RecordExperiences(Vec<Experience>),
    /// Change an experience's mutable fields.
    UpdateExperience {
        /// Which.
        id: ExperienceId,
        /// What changes.
        update: ExperienceUpdate,
    },
    /// Add one to this instance's reinforcement counter.
    ReinforceExperience {
        /// Which.
        id: ExperienceId,
        /// When.
        at: Timestamp,
    },
    /// Delete an experience, its embedding, indexes and relations.
    DeleteExperience(ExperienceId),
    /// Store a relation (checks ends, collective and uniqueness).
    StoreRelation(ExperienceRelation),
    /// Delete a relation.
    DeleteRelation(RelationId),
    /// Store an insight (checks its sources).
    StoreInsight(DerivedInsight),
    /// Delete an insight.
    DeleteInsight(InsightId),
    /// Register or replace an agent's activity.
    UpsertActivity(Activity),
    /// Refresh an agent's heartbeat.
    Heartbeat {
        /// The agent.
        agent_id: String,
        /// The collective.
        collective_id: CollectiveId,
        /// When.
        at: Timestamp,
    },
    /// End an agent's activity.
    EndActivity {
        /// The agent.
        agent_id: String,
        /// The collective.
        collective_id: CollectiveId,
    },
    /// Merge changes received from another node (REPLICATION.md), then
    /// record how far that node's log has been applied. All or nothing: a
    /// change that cannot be merged (an unknown collective, a wrong
    /// dimension) refuses the whole operation.
    ApplyRemote {
        /// The changes, in the order served.
        changes: Vec<RemoteChange>,
        /// The peer and the position of its log they cover.
        cursor: Option<(InstanceId, u64)>,
    },
}

/// What a committed operation did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The collective created.
    CollectiveCreated(Collective),
    /// The collective deleted.
    CollectiveDeleted(CollectiveId),
    /// The experiences recorded, embeddings included as the storage layer
    /// returns them (the engine moves the embeddings into the index before
    /// answering the caller).
    ExperiencesRecorded(Vec<Experience>),
    /// The experience after an update or reinforce (embedding included).
    ExperienceChanged(Box<Experience>),
    /// The experience deleted, with the relations deleted along with it.
    ExperienceDeleted {
        /// Its collective.
        collective_id: CollectiveId,
        /// Its id.
        id: ExperienceId,
    },
    /// The relation stored.
    RelationStored(ExperienceRelation),
    /// The relation deleted.
    RelationDeleted(RelationId),
    /// The insight stored.
    InsightStored(DerivedInsight),
    /// The insight deleted.
    InsightDeleted {
        /// Its collective.
        collective_id: CollectiveId,
        /// Its id.
        id: InsightId,
    },
    /// An activity written or ended.
    ActivityChanged,
    /// Several of the above, in order: a merge of remote changes, or a
    /// delete that released held-back changes.
    Many(Vec<Applied>),
}

impl Applied {
    /// Puts the experience into each event of this write that carries one
    /// (all but deletions). The writer leaves it out, so that a write
    /// nobody watches does not copy its records.
    pub fn complete_events(&self, events: &mut [WatchEvent]) {
        match self {
            Applied::ExperiencesRecorded(exps) => {
                for (event, e) in events.iter_mut().zip(exps) {
                    event.experience = Some(e.clone());
                }
            }
            Applied::ExperienceChanged(e) => {
                for event in events {
                    event.experience = Some((**e).clone());
                }
            }
            Applied::Many(parts) => {
                let mut latest = std::collections::HashMap::new();
                for part in parts {
                    match part {
                        Applied::ExperiencesRecorded(exps) => {
                            latest.extend(exps.iter().map(|e| (e.id, e)));
                        }
                        Applied::ExperienceChanged(e) => {
                            latest.insert(e.id, &**e);
                        }
                        _ => {}
                    }
                }
                for event in events {
                    if event.event_type != WatchEventType::Deleted {
                        event.experience = latest.get(&event.experience_id).map(|e| (*e).clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// Every part, [`Applied::Many`] flattened.
    pub fn parts_mut(&mut self) -> Vec<&mut Applied> {
        match self {
            Applied::Many(parts) => parts.iter_mut().flat_map(Applied::parts_mut).collect(),
            one => vec![one],
        }
    }

    /// The new total reinforcement count, for a reinforce.
    pub fn applications(&self) -> Option<u32> {
        match self {
            Applied::ExperienceChanged(e) => Some(e.applications),
            _ => None,
        }
    }
}

/// A committed operation: its result and the experience events it logged.
#[derive(Debug, Clone)]
pub struct Committed {
    /// What it did.
    pub applied: Applied,
    /// Watch events of its change-log entries (experience changes only),
    /// without the experience: [`Applied::complete_events`] puts it in.
    pub events: Vec<WatchEvent>,
}

/// Where and how to open a database.
#[derive(Debug, Clone)]
pub enum Location {
    /// A file on disk.
    File(PathBuf),
    /// Memory only; nothing persists.
    Memory,
}

/// The reading half of PulseDB's storage layer.
///
/// Every method is blocking: call it from the blocking pool (or, for a
/// point read, see the engine's `read_point`), never for long on an async
/// worker thread.
pub trait StorageRead: Send + Sync + 'static {
    /// Facts about the file.
    fn metadata(&self) -> DatabaseMetadata;

    /// Persistent id of this database file.
    fn instance_id(&self) -> InstanceId;

    // --- collectives -------------------------------------------------------

    /// One collective.
    ///
    /// # Errors
    /// A storage fault.
    fn get_collective(&self, id: CollectiveId) -> Result<Option<Collective>>;

    /// Every collective, oldest first.
    ///
    /// # Errors
    /// A storage fault.
    fn list_collectives(&self) -> Result<Vec<Collective>>;

    /// Figures computed from the stored data.
    ///
    /// # Errors
    /// `NotFound(Collective)`, or a storage fault.
    fn collective_stats(&self, id: CollectiveId) -> Result<CollectiveStats>;

    /// Experiences in a collective (archived included).
    ///
    /// # Errors
    /// A storage fault.
    fn count_experiences(&self, id: CollectiveId) -> Result<u64>;

    // --- experiences -------------------------------------------------------

    /// One experience, embedding included.
    ///
    /// # Errors
    /// A storage fault.
    fn get_experience(&self, id: ExperienceId) -> Result<Option<Experience>>;

    /// Several experiences in the order given, embeddings included; unknown
    /// ids are skipped.
    ///
    /// # Errors
    /// A storage fault.
    fn get_experiences(&self, ids: &[ExperienceId]) -> Result<Vec<Experience>>;

    /// The embedding of an experience.
    ///
    /// # Errors
    /// A storage fault.
    fn get_embedding(&self, id: ExperienceId) -> Result<Option<Vec<f32>>>;

    /// Experience ids of a collective, oldest first, paginated.
    ///
    /// # Errors
    /// A storage fault.
    fn list_experience_ids(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExperienceId>>;

    /// Visits a collective's experiences newest first (embeddings empty) until
    /// `visit` returns false.
    ///
    /// # Errors
    /// A storage fault.
    fn scan_experiences_newest_first(
        &self,
        c: CollectiveId,
        visit: &mut dyn FnMut(Experience) -> bool,
    ) -> Result<()>;

    /// Visits every experience of a collective, oldest first (embeddings
    /// empty unless `with_embeddings`).
    ///
    /// # Errors
    /// A storage fault.
    fn scan_experiences(
        &self,
        c: CollectiveId,
        with_embeddings: bool,
        visit: &mut dyn FnMut(Experience),
    ) -> Result<()>;

    // --- relations ---------------------------------------------------------

    /// One relation.
    ///
    /// # Errors
    /// A storage fault.
    fn get_relation(&self, id: RelationId) -> Result<Option<ExperienceRelation>>;

    /// Relation ids whose source is `id`.
    ///
    /// # Errors
    /// A storage fault.
    fn relation_ids_by_source(&self, id: ExperienceId) -> Result<Vec<RelationId>>;

    /// Relation ids whose target is `id`.
    ///
    /// # Errors
    /// A storage fault.
    fn relation_ids_by_target(&self, id: ExperienceId) -> Result<Vec<RelationId>>;

    /// Whether a relation `(source, target, type)` exists.
    ///
    /// # Errors
    /// A storage fault.
    fn relation_exists(
        &self,
        source: ExperienceId,
        target: ExperienceId,
        relation_type: crate::relation::RelationType,
    ) -> Result<bool>;

    /// Relations of a collective, oldest first, paginated.
    ///
    /// # Errors
    /// A storage fault.
    fn list_relations(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExperienceRelation>>;

    // --- insights ----------------------------------------------------------

    /// One insight.
    ///
    /// # Errors
    /// A storage fault.
    fn get_insight(&self, id: InsightId) -> Result<Option<DerivedInsight>>;

    /// Insight ids of a collective, oldest first, paginated.
    ///
    /// # Errors
    /// A storage fault.
    fn list_insight_ids(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<InsightId>>;

    // --- activities --------------------------------------------------------

    /// One agent's activity.
    ///
    /// # Errors
    /// A storage fault.
    fn get_activity(&self, agent_id: &str, c: CollectiveId) -> Result<Option<Activity>>;

    /// Activities of a collective with a heartbeat at or after `since`, most
    /// recent heartbeat first.
    ///
    /// # Errors
    /// A storage fault.
    fn list_activities(&self, c: CollectiveId, since: Timestamp) -> Result<Vec<Activity>>;

    // --- change log --------------------------------------------------------

    /// Every entry up to this sequence was compacted away (0: none).
    ///
    /// # Errors
    /// A storage fault.
    fn compacted_through(&self) -> Result<u64>;

    /// Last assigned sequence (0 on a new database).
    ///
    /// # Errors
    /// A storage fault.
    fn current_sequence(&self) -> Result<u64>;

    /// Entries with sequence > `since`, at most `limit`, in order.
    ///
    /// # Errors
    /// A storage fault.
    fn changes_since(&self, since: u64, limit: usize) -> Result<Vec<(u64, ChangeRecord)>>;

    /// Experience events with sequence > `since`: at most `limit` events and
    /// the position covering every entry scanned.
    ///
    /// # Errors
    /// `ChangesCompacted` when entries after `since` were compacted away; a
    /// storage fault.
    fn poll_events(&self, since: u64, limit: usize) -> Result<(Vec<WatchEvent>, u64)>;

    // --- sync cursors ------------------------------------------------------

    /// The last sequence a peer has taken.
    ///
    /// # Errors
    /// A storage fault.
    fn load_sync_cursor(&self, peer: InstanceId) -> Result<Option<u64>>;

    /// Every peer cursor.
    ///
    /// # Errors
    /// A storage fault.
    fn list_sync_cursors(&self) -> Result<Vec<(InstanceId, u64)>>;
}

/// The writing half of PulseDB's storage layer: only the storage actor
/// (and the change-log and sync-cursor maintenance) writes.
///
/// Every method is blocking: call it from the blocking pool.
pub trait StorageWrite: StorageRead {
    /// Applies a batch in one write transaction and one commit.
    ///
    /// The outer `Err` is a fault: nothing of the batch was committed. Inner
    /// results are each operation's own fate; failed ones left no trace.
    ///
    /// # Errors
    /// [`StorageError`] for I/O or corruption.
    fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Committed>>>;

    /// Makes every earlier commit durable (for `Durability::Eventual`).
    ///
    /// # Errors
    /// A storage fault.
    fn flush(&self) -> Result<()>;

    /// Removes change-log entries with sequence ≤ `upto` (and records that
    /// they were removed). Sequences are never reused.
    ///
    /// # Errors
    /// A storage fault.
    fn compact_changes(&self, upto: u64) -> Result<u64>;

    /// Removes the oldest change-log entries written before `before`, at
    /// most `max` of them, never one past the lowest sync cursor (a peer
    /// that has not taken it yet). Returns how many were removed.
    ///
    /// # Errors
    /// A storage fault; nothing is removed then.
    fn compact_expired_changes(&self, before: Timestamp, max: usize) -> Result<u64>;

    /// Records the last sequence a peer has taken.
    ///
    /// # Errors
    /// A storage fault.
    fn save_sync_cursor(&self, peer: InstanceId, sequence: u64) -> Result<()>;
}
