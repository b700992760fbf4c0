//! Experience change events: what the change log reports (`poll_changes`)
//! and watch streams deliver, and the filter a stream applies to them. Plain
//! data, shared by the storage layer that logs the changes and the watch hub
//! that delivers them.

use serde::{Deserialize, Serialize};

use crate::collective::CollectiveId;
use crate::experience::{Experience, ExperienceId, ExperienceTypeTag};
use crate::id::Timestamp;

/// What happened to an experience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatchEventType {
    /// Recorded.
    Created,
    /// Changed (update, unarchive, reinforce).
    Updated,
    /// Archived.
    Archived,
    /// Deleted.
    Deleted,
}

/// One change to an experience, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// Change-log sequence of the write.
    pub sequence: u64,
    /// The experience changed.
    pub experience_id: ExperienceId,
    /// Its collective.
    pub collective_id: CollectiveId,
    /// What happened.
    pub event_type: WatchEventType,
    /// When.
    pub timestamp: Timestamp,
    /// The record as it was after the write (`None` for `Deleted`).
    pub experience: Option<Experience>,
}

/// Which events a watch stream receives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchFilter {
    /// Experiences with any of these domains.
    pub domains: Option<Vec<String>>,
    /// Experiences of any of these types.
    pub experience_types: Option<Vec<ExperienceTypeTag>>,
    /// Experiences with importance ≥ this.
    pub min_importance: Option<f32>,
}

impl WatchFilter {
    /// Whether the event passes. A `Deleted` event carries no record and
    /// passes every filter, so subscribers learn of every deletion.
    pub fn matches(&self, event: &WatchEvent) -> bool {
        let Some(exp) = &event.experience else {
            return true;
        };
        exp.passes(
            self.domains.as_deref(),
            self.experience_types.as_deref(),
            self.min_importance,
        )
    }
}
