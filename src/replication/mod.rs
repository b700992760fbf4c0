//! Replication between instances (REPLICATION.md): hybrid-clock versions
//! and the merge rules every transport applies.

pub mod change;
pub mod hlc;
pub mod merge;
#[cfg(feature = "cluster")]
pub(crate) mod nats;
#[cfg(feature = "replication")]
pub(crate) mod peer;
pub mod status;

pub use change::{ChangePage, Counter, RemoteChange, SnapshotLine, PROTOCOL_VERSION};
pub use hlc::{Hlc, HlcClock, Version};
pub use merge::{Change, Replica, Versioned, View};
pub use status::{ClusterMember, ClusterStatus, PeerStatus, PulledBy, ReplicationStatus};
