//! Replication between instances (REPLICATION.md): hybrid-clock versions
//! and the merge rules every transport applies.

pub mod change;
pub mod hlc;
pub mod merge;

pub use change::{ChangePage, Counter, RemoteChange, PROTOCOL_VERSION};
pub use hlc::{Hlc, HlcClock, Version};
pub use merge::{Change, Replica, Versioned, View};
