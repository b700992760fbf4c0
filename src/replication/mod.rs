//! Replication between instances (REPLICATION.md): hybrid-clock versions
//! and the merge rules every transport applies.

pub mod hlc;
pub mod merge;

pub use hlc::{Hlc, HlcClock, Version};
pub use merge::{Change, Replica, Versioned, View};
