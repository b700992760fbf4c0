//! What nodes exchange (REPLICATION.md "What is replicated"): an entity's
//! whole state after a write with its version, or a tombstone. Applying
//! one is idempotent and order-insensitive per entity (the storage layer
//! applies the rules of [`super::merge`] to its tables).

use serde::{Deserialize, Serialize};

use super::hlc::Version;
use crate::collective::{Collective, CollectiveId};
use crate::experience::{Experience, ExperienceId};
use crate::id::InstanceId;
use crate::insight::{DerivedInsight, InsightId};
use crate::relation::{ExperienceRelation, RelationId};

/// The replication protocol this build speaks; a peer speaking another is
/// refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// One instance's reinforcement count of an experience (a grow-only
/// counter: merged by maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Whose count.
    pub origin: InstanceId,
    /// Reinforcements by that instance so far.
    pub count: u32,
}

/// One replicated change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteChange {
    /// A collective's state.
    Collective {
        /// Of this state.
        version: Version,
        /// The state.
        collective: Collective,
    },
    /// A collective deleted, with everything in it.
    CollectiveDeleted {
        /// Which.
        id: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// An experience's state, its embedding and reinforcement counters
    /// included (`applications` is their sum; `last_reinforced` merges by
    /// maximum, outside the last-writer-wins state).
    Experience {
        /// Of the state (reinforcements do not change it).
        version: Version,
        /// The state.
        experience: Box<Experience>,
        /// Every instance's reinforcement count.
        counters: Vec<Counter>,
    },
    /// An experience deleted (its relations with it).
    ExperienceDeleted {
        /// Which.
        id: ExperienceId,
        /// Its collective.
        collective_id: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// A relation.
    Relation {
        /// Of the state.
        version: Version,
        /// Its collective (that of its ends).
        collective_id: CollectiveId,
        /// The relation.
        relation: ExperienceRelation,
    },
    /// A relation deleted.
    RelationDeleted {
        /// Which.
        id: RelationId,
        /// Its collective.
        collective_id: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// An insight, embedding included.
    Insight {
        /// Of the state.
        version: Version,
        /// The insight.
        insight: DerivedInsight,
    },
    /// An insight deleted.
    InsightDeleted {
        /// Which.
        id: InsightId,
        /// Its collective.
        collective_id: CollectiveId,
        /// Of the delete.
        version: Version,
    },
}

impl RemoteChange {
    /// The collective the change concerns (a collective's own id included).
    pub fn collective_id(&self) -> CollectiveId {
        match self {
            RemoteChange::Collective { collective, .. } => collective.id,
            RemoteChange::CollectiveDeleted { id, .. } => *id,
            RemoteChange::Experience { experience, .. } => experience.collective_id,
            RemoteChange::Insight { insight, .. } => insight.collective_id,
            RemoteChange::ExperienceDeleted { collective_id, .. }
            | RemoteChange::Relation { collective_id, .. }
            | RemoteChange::RelationDeleted { collective_id, .. }
            | RemoteChange::InsightDeleted { collective_id, .. } => *collective_id,
        }
    }

    /// The version the change carries.
    pub fn version(&self) -> Version {
        match self {
            RemoteChange::Collective { version, .. }
            | RemoteChange::CollectiveDeleted { version, .. }
            | RemoteChange::Experience { version, .. }
            | RemoteChange::ExperienceDeleted { version, .. }
            | RemoteChange::Relation { version, .. }
            | RemoteChange::RelationDeleted { version, .. }
            | RemoteChange::Insight { version, .. }
            | RemoteChange::InsightDeleted { version, .. } => *version,
        }
    }

    /// Whether it concerns a collective itself (created or deleted) rather
    /// than an entity in one.
    pub fn is_collective_level(&self) -> bool {
        matches!(
            self,
            RemoteChange::Collective { .. } | RemoteChange::CollectiveDeleted { .. }
        )
    }
}

/// A page of a node's change log as it serves it: the changes after the
/// asked position and the position to ask from next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePage {
    /// The protocol spoken ([`PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The serving node.
    pub instance_id: InstanceId,
    /// The changes, oldest first, one per entity (its state now).
    pub changes: Vec<RemoteChange>,
    /// Every change-log entry up to here is covered.
    pub next: u64,
    /// The serving node's last sequence (lag = `head - next`).
    pub head: u64,
}

/// One line of a streamed snapshot (`GET /v1/replication/snapshot`,
/// newline-delimited JSON): a header, the changes, then the end with the
/// change-log position the snapshot covers. A stream without its end was
/// cut short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotLine {
    /// First: who serves it, in which protocol.
    Header {
        /// The protocol spoken ([`PROTOCOL_VERSION`]).
        protocol: u32,
        /// The serving node.
        instance_id: InstanceId,
    },
    /// One entity's state.
    Change(RemoteChange),
    /// Last: pulling continues after `position`.
    End {
        /// The change-log position covered.
        position: u64,
    },
}
