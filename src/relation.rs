//! Relations: typed, directed edges between experiences of one collective.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::experience::ExperienceId;
use crate::id::{define_id, Timestamp};
use crate::validate;

define_id!(
    /// Identifies one relation.
    RelationId
);

/// Largest relation `metadata`, in bytes.
pub const MAX_RELATION_METADATA_BYTES: usize = 10_240;

/// What a relation says about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RelationType {
    /// The source backs the target up.
    Supports,
    /// The source disagrees with the target.
    Contradicts,
    /// The source adds detail to the target.
    Elaborates,
    /// The source replaces the target.
    Supersedes,
    /// The source leads to the target.
    Implies,
    /// Loosely related.
    RelatedTo,
}

impl RelationType {
    /// A stable one-byte code (used in storage keys).
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

/// Which edges of an experience to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RelationDirection {
    /// Edges from the experience.
    Outgoing,
    /// Edges to the experience.
    Incoming,
    /// Both.
    Both,
}

/// A relation to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExperienceRelation {
    /// Where the edge starts.
    pub source_id: ExperienceId,
    /// Where the edge ends.
    pub target_id: ExperienceId,
    /// What it says.
    pub relation_type: RelationType,
    /// How strong, `0.0..=1.0`.
    pub strength: f32,
    /// Free text, ≤ 10 240 bytes.
    pub metadata: Option<String>,
}

/// A stored relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperienceRelation {
    /// Its id.
    pub id: RelationId,
    /// Where the edge starts.
    pub source_id: ExperienceId,
    /// Where the edge ends.
    pub target_id: ExperienceId,
    /// What it says.
    pub relation_type: RelationType,
    /// How strong.
    pub strength: f32,
    /// Free text.
    pub metadata: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

impl NewExperienceRelation {
    /// Checks the fields that need no database.
    ///
    /// | field | rule |
    /// |---|---|
    /// | `source_id`, `target_id` | different |
    /// | `strength` | finite, 0.0 ..= 1.0 |
    /// | `metadata` | ≤ 10 240 bytes |
    ///
    /// Existence, same collective and uniqueness are checked when stored.
    ///
    /// # Errors
    /// The first broken rule, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.source_id == self.target_id {
            return Err(ValidationError::invalid(
                "target_id",
                "a relation cannot link an experience to itself",
            ));
        }
        validate::unit_interval("strength", self.strength)?;
        if let Some(m) = &self.metadata {
            validate::bounded_text("metadata", m, MAX_RELATION_METADATA_BYTES)?;
        }
        Ok(())
    }
}
