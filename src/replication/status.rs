//! What a node reports of its replication (`GET /v1/replication/status`).

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, Timestamp};

/// How pulling from one peer goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's URL, as configured.
    pub url: String,
    /// Its instance id, once it has answered.
    pub instance_id: Option<InstanceId>,
    /// The last position of its change log applied here.
    pub cursor: u64,
    /// Its last change-log position, as of its last answer.
    pub head: u64,
    /// Entries of its log not yet applied here (`head - cursor`).
    pub lag: u64,
    /// Changes received from it and merged.
    pub changes_received: u64,
    /// Snapshots copied from it (after falling too far behind, or when new).
    pub snapshots: u64,
    /// When it last answered.
    pub last_success: Option<Timestamp>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// A peer that pulls from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledBy {
    /// The peer.
    pub instance_id: InstanceId,
    /// The last position of this node's log it has taken.
    pub position: u64,
}

/// A node's replication at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// This node.
    pub instance_id: InstanceId,
    /// Its last change-log position.
    pub head: u64,
    /// The peers it pulls from.
    pub peers: Vec<PeerStatus>,
    /// The peers pulling from it, with how far they have taken its log.
    pub pulled_by: Vec<PulledBy>,
    /// Its NATS cluster, when it is in one.
    pub cluster: Option<ClusterStatus>,
}

/// How a node's part in a NATS cluster goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub name: String,
    /// Connected, its stream and consumer in place.
    pub connected: bool,
    /// The last position of this node's log the stream has acknowledged.
    pub outbox: u64,
    /// Own changes published.
    pub published: u64,
    /// Others' changes received and merged.
    pub received: u64,
    /// Messages refused (malformed, or a change that cannot be merged).
    pub refused: u64,
    /// When a message last came.
    pub last_received: Option<Timestamp>,
    /// The last failure, cleared on reconnecting.
    pub last_error: Option<String>,
    /// Snapshots copied from a member after falling behind the stream.
    pub snapshots: u64,
    /// The cluster's members as this node last read them.
    pub members: Vec<ClusterMember>,
}

/// One node of a cluster, as it announces itself in the membership bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// The node.
    pub instance_id: InstanceId,
    /// Its HTTP address, when it serves one.
    pub address: Option<String>,
    /// The collectives it holds (`None`: all).
    pub collectives: Option<Vec<crate::collective::CollectiveId>>,
    /// When it last announced itself.
    pub last_seen: Timestamp,
}
