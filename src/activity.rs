//! Agent activity: who is working in a collective right now, and on what.

use serde::{Deserialize, Serialize};

use crate::collective::CollectiveId;
use crate::error::ValidationError;
use crate::experience::MAX_AGENT_ID_BYTES;
use crate::id::Timestamp;
use crate::validate;

/// Largest `current_task` / `context_summary`, in bytes.
pub const MAX_ACTIVITY_TEXT_BYTES: usize = 1024;

/// An activity to register (or replace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewActivity {
    /// The agent, 1 ..= 255 bytes.
    pub agent_id: String,
    /// Where it works.
    pub collective_id: CollectiveId,
    /// What it is doing, ≤ 1 024 bytes.
    pub current_task: Option<String>,
    /// Its context, ≤ 1 024 bytes.
    pub context_summary: Option<String>,
}

/// A registered activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The agent.
    pub agent_id: String,
    /// Where it works.
    pub collective_id: CollectiveId,
    /// What it is doing.
    pub current_task: Option<String>,
    /// Its context.
    pub context_summary: Option<String>,
    /// When it was registered.
    pub started_at: Timestamp,
    /// Its last sign of life.
    pub last_heartbeat: Timestamp,
}

impl NewActivity {
    /// Checks `agent_id` (1 ..= 255 bytes), `current_task` and
    /// `context_summary` (≤ 1 024 bytes each).
    ///
    /// # Errors
    /// The first broken rule, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_agent_id(&self.agent_id)?;
        if let Some(t) = &self.current_task {
            validate::bounded_text("current_task", t, MAX_ACTIVITY_TEXT_BYTES)?;
        }
        if let Some(s) = &self.context_summary {
            validate::bounded_text("context_summary", s, MAX_ACTIVITY_TEXT_BYTES)?;
        }
        Ok(())
    }
}

/// Checks an agent id: 1 ..= 255 bytes.
///
/// # Errors
/// `RequiredField("agent_id")` or `InvalidField("agent_id")`.
pub fn validate_agent_id(agent_id: &str) -> Result<(), ValidationError> {
    validate::required_text("agent_id", agent_id, MAX_AGENT_ID_BYTES)
}
