//! Derived insights: knowledge distilled from several experiences.

use serde::{Deserialize, Serialize};

use crate::collective::CollectiveId;
use crate::error::ValidationError;
use crate::experience::{validate_domains, ExperienceId};
use crate::id::{define_id, Timestamp};
use crate::validate;

define_id!(
    /// Identifies one derived insight.
    InsightId
);

/// Largest insight `content`, in bytes.
pub const MAX_INSIGHT_CONTENT_BYTES: usize = 51_200;
/// Most source experiences of one insight.
pub const MAX_INSIGHT_SOURCES: usize = 100;

/// How an insight was derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InsightType {
    /// A recurring pattern.
    Pattern,
    /// A combination of several findings.
    Synthesis,
    /// A generalisation.
    Abstraction,
    /// Things that go together.
    Correlation,
}

/// An insight to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDerivedInsight {
    /// Collective it belongs to.
    pub collective_id: CollectiveId,
    /// The text, 1 ..= 51 200 bytes.
    pub content: String,
    /// Embedding of `content`; required unless the handle has an embedder.
    pub embedding: Option<Vec<f32>>,
    /// The experiences it was derived from: 1 ..= 100, all in the collective.
    pub source_experience_ids: Vec<ExperienceId>,
    /// How it was derived.
    pub insight_type: InsightType,
    /// How sure, `0.0..=1.0`.
    pub confidence: f32,
    /// Domains.
    pub domain: Vec<String>,
}

/// A stored insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedInsight {
    /// Its id.
    pub id: InsightId,
    /// Collective it belongs to.
    pub collective_id: CollectiveId,
    /// The text.
    pub content: String,
    /// The embedding.
    pub embedding: Vec<f32>,
    /// The experiences it was derived from (kept when a source is deleted).
    pub source_experience_ids: Vec<ExperienceId>,
    /// How it was derived.
    pub insight_type: InsightType,
    /// How sure.
    pub confidence: f32,
    /// Domains.
    pub domain: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl NewDerivedInsight {
    /// Checks every field except the embedding and the sources' existence.
    ///
    /// | field | rule |
    /// |---|---|
    /// | `content` | 1 ..= 51 200 bytes |
    /// | `source_experience_ids` | 1 ..= 100 |
    /// | `confidence` | finite, 0.0 ..= 1.0 |
    /// | `domain` | ≤ 50 items, each 1 ..= 100 bytes |
    ///
    /// # Errors
    /// The first broken rule, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.content.is_empty() {
            return Err(ValidationError::RequiredField {
                field: "content".into(),
            });
        }
        if self.content.len() > MAX_INSIGHT_CONTENT_BYTES {
            return Err(ValidationError::ContentTooLarge {
                size: self.content.len(),
                max: MAX_INSIGHT_CONTENT_BYTES,
            });
        }
        if self.source_experience_ids.is_empty() {
            return Err(ValidationError::RequiredField {
                field: "source_experience_ids".into(),
            });
        }
        validate::item_count(
            "source_experience_ids",
            self.source_experience_ids.len(),
            MAX_INSIGHT_SOURCES,
        )?;
        validate::unit_interval("confidence", self.confidence)?;
        validate_domains(&self.domain)
    }
}
