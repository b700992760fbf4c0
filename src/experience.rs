//! Experiences: what agents record, and the rules for recording them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::collective::CollectiveId;
use crate::config::DecayConfig;
use crate::error::ValidationError;
use crate::id::{define_id, Timestamp};
use crate::validate::{self, Checked};

define_id!(
    /// Identifies one experience.
    ExperienceId
);

/// Largest experience `content`, in bytes.
pub const MAX_CONTENT_BYTES: usize = 102_400;
/// Most `domain` entries.
pub const MAX_DOMAINS: usize = 50;
/// Largest `domain` entry, in bytes.
pub const MAX_DOMAIN_BYTES: usize = 100;
/// Most `tags` pairs.
pub const MAX_TAGS: usize = 50;
/// Largest tag key, in bytes.
pub const MAX_TAG_KEY_BYTES: usize = 100;
/// Largest tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 200;
/// Most `related_files` entries.
pub const MAX_RELATED_FILES: usize = 100;
/// Largest `related_files` entry, in bytes.
pub const MAX_RELATED_FILE_BYTES: usize = 500;
/// Largest `source_agent` / `agent_id`, in bytes.
pub const MAX_AGENT_ID_BYTES: usize = 255;
/// Largest `source_task`, in bytes.
pub const MAX_SOURCE_TASK_BYTES: usize = 1024;
/// Largest experience `metadata`, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 16_384;
/// Most experiences in one `record_experiences` call.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Largest free-text field inside an [`ExperienceType`] payload, in bytes.
pub const MAX_TYPE_FIELD_BYTES: usize = 10_240;

/// How bad a difficulty was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Minor.
    Low,
    /// Noticeable.
    Medium,
    /// Serious.
    High,
    /// Blocking.
    Critical,
}

/// What kind of experience this is, with its typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExperienceType {
    /// Something was hard.
    Difficulty {
        /// What was hard.
        description: String,
        /// How hard.
        severity: Severity,
    },
    /// A way a problem was solved (or not).
    Solution {
        /// The difficulty it answers, if recorded.
        problem_ref: Option<ExperienceId>,
        /// What was done.
        approach: String,
        /// Whether it worked.
        worked: bool,
    },
    /// A recurring error and how to handle it.
    ErrorPattern {
        /// How to recognise it.
        signature: String,
        /// How to fix it.
        fix: String,
        /// How to avoid it.
        prevention: String,
    },
    /// An approach that worked well.
    SuccessPattern {
        /// Kind of task.
        task_type: String,
        /// What was done.
        approach: String,
        /// How well it worked, `0.0..=1.0`.
        quality: f32,
    },
    /// What a user prefers.
    UserPreference {
        /// Area of the preference.
        category: String,
        /// The preference.
        preference: String,
        /// How strong, `0.0..=1.0`.
        strength: f32,
    },
    /// A design decision and why.
    ArchitecturalDecision {
        /// The decision.
        decision: String,
        /// Why.
        rationale: String,
    },
    /// Something learnt about a technology.
    TechInsight {
        /// The technology.
        technology: String,
        /// What was learnt.
        insight: String,
    },
    /// A statement of fact with its source.
    Fact {
        /// The fact.
        statement: String,
        /// Where it comes from.
        source: String,
    },
    /// Anything else.
    Generic {
        /// Optional free category.
        category: Option<String>,
    },
}

impl Default for ExperienceType {
    fn default() -> Self {
        ExperienceType::Generic { category: None }
    }
}

/// The variant of an [`ExperienceType`], without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ExperienceTypeTag {
    Difficulty,
    Solution,
    ErrorPattern,
    SuccessPattern,
    UserPreference,
    ArchitecturalDecision,
    TechInsight,
    Fact,
    Generic,
}

impl ExperienceTypeTag {
    /// Every tag, in declaration order.
    pub const ALL: [ExperienceTypeTag; 9] = [
        ExperienceTypeTag::Difficulty,
        ExperienceTypeTag::Solution,
        ExperienceTypeTag::ErrorPattern,
        ExperienceTypeTag::SuccessPattern,
        ExperienceTypeTag::UserPreference,
        ExperienceTypeTag::ArchitecturalDecision,
        ExperienceTypeTag::TechInsight,
        ExperienceTypeTag::Fact,
        ExperienceTypeTag::Generic,
    ];
}

impl Experience {
    /// The checks watch and search filters share: any of `domains`, one of
    /// `types`, importance at least `min_importance` (each skipped when
    /// `None`).
    pub(crate) fn passes(
        &self,
        domains: Option<&[String]>,
        types: Option<&[ExperienceTypeTag]>,
        min_importance: Option<f32>,
    ) -> bool {
        domains.is_none_or(|d| self.domain.iter().any(|x| d.contains(x)))
            && types.is_none_or(|t| t.contains(&self.experience_type.tag()))
            && min_importance.is_none_or(|m| self.importance >= m)
    }
}

impl ExperienceType {
    /// The variant name without payload.
    pub fn tag(&self) -> ExperienceTypeTag {
        match self {
            ExperienceType::Difficulty { .. } => ExperienceTypeTag::Difficulty,
            ExperienceType::Solution { .. } => ExperienceTypeTag::Solution,
            ExperienceType::ErrorPattern { .. } => ExperienceTypeTag::ErrorPattern,
            ExperienceType::SuccessPattern { .. } => ExperienceTypeTag::SuccessPattern,
            ExperienceType::UserPreference { .. } => ExperienceTypeTag::UserPreference,
            ExperienceType::ArchitecturalDecision { .. } => {
                ExperienceTypeTag::ArchitecturalDecision
            }
            ExperienceType::TechInsight { .. } => ExperienceTypeTag::TechInsight,
            ExperienceType::Fact { .. } => ExperienceTypeTag::Fact,
            ExperienceType::Generic { .. } => ExperienceTypeTag::Generic,
        }
    }

    /// Checks the payload: every text ≤ [`MAX_TYPE_FIELD_BYTES`], `quality`
    /// and `strength` finite in `0.0..=1.0`.
    fn validate(&self) -> Checked {
        let text = |name: &str, v: &str| {
            validate::bounded_text(&format!("experience_type.{name}"), v, MAX_TYPE_FIELD_BYTES)
        };
        match self {
            ExperienceType::Difficulty { description, .. } => text("description", description),
            ExperienceType::Solution { approach, .. } => text("approach", approach),
            ExperienceType::ErrorPattern {
                signature,
                fix,
                prevention,
            } => {
                text("signature", signature)?;
                text("fix", fix)?;
                text("prevention", prevention)
            }
            ExperienceType::SuccessPattern {
                task_type,
                approach,
                quality,
            } => {
                text("task_type", task_type)?;
                text("approach", approach)?;
                validate::unit_interval("experience_type.quality", *quality)
            }
            ExperienceType::UserPreference {
                category,
                preference,
                strength,
            } => {
                text("category", category)?;
                text("preference", preference)?;
                validate::unit_interval("experience_type.strength", *strength)
            }
            ExperienceType::ArchitecturalDecision {
                decision,
                rationale,
            } => {
                text("decision", decision)?;
                text("rationale", rationale)
            }
            ExperienceType::TechInsight {
                technology,
                insight,
            } => {
                text("technology", technology)?;
                text("insight", insight)
            }
            ExperienceType::Fact { statement, source } => {
                text("statement", statement)?;
                text("source", source)
            }
            ExperienceType::Generic { category } => match category {
                Some(c) => text("category", c),
                None => Ok(()),
            },
        }
    }
}

/// An experience to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExperience {
    /// Collective it belongs to.
    pub collective_id: CollectiveId,
    /// The text, 1..=102 400 bytes.
    pub content: String,
    /// Kind and typed payload.
    pub experience_type: ExperienceType,
    /// Embedding of `content`; required unless the handle has an embedder.
    pub embedding: Option<Vec<f32>>,
    /// How much it matters, `0.0..=1.0`.
    pub importance: f32,
    /// How sure the agent is, `0.0..=1.0`.
    pub confidence: f32,
    /// Domains it belongs to.
    pub domain: Vec<String>,
    /// Free key/value tags.
    pub tags: BTreeMap<String, String>,
    /// Files it concerns.
    pub related_files: Vec<String>,
    /// The recording agent.
    pub source_agent: String,
    /// The task it came from.
    pub source_task: Option<String>,
    /// Free JSON metadata, stored and returned exactly as given (≤ 16 384
    /// bytes as compact JSON).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Default for NewExperience {
    fn default() -> Self {
        NewExperience {
            collective_id: CollectiveId::from_bytes([0; 16]),
            content: String::new(),
            experience_type: ExperienceType::default(),
            embedding: None,
            importance: 0.5,
            confidence: 0.5,
            domain: Vec::new(),
            tags: BTreeMap::new(),
            related_files: Vec::new(),
            source_agent: "anonymous".into(),
            source_task: None,
            metadata: serde_json::Map::new(),
        }
    }
}

/// A stored experience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experience {
    /// Its id.
    pub id: ExperienceId,
    /// Collective it belongs to.
    pub collective_id: CollectiveId,
    /// The text.
    pub content: String,
    /// The embedding exactly as given (or as the embedder produced it).
    pub embedding: Vec<f32>,
    /// Kind and typed payload.
    pub experience_type: ExperienceType,
    /// How much it matters.
    pub importance: f32,
    /// How sure the agent was.
    pub confidence: f32,
    /// Times it was reinforced, summed over every instance.
    pub applications: u32,
    /// Domains.
    pub domain: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Related files.
    pub related_files: Vec<String>,
    /// The recording agent.
    pub source_agent: String,
    /// The task it came from.
    pub source_task: Option<String>,
    /// Free JSON metadata, exactly as given.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// When it was last reinforced (the record time until then).
    pub last_reinforced: Timestamp,
    /// Archived experiences are kept but excluded from search and recent.
    pub archived: bool,
}

/// A change to an experience's mutable fields; only `Some` fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperienceUpdate {
    /// New importance.
    pub importance: Option<f32>,
    /// New confidence.
    pub confidence: Option<f32>,
    /// Replaces the domains.
    pub domain: Option<Vec<String>>,
    /// Replaces the tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Replaces the related files.
    pub related_files: Option<Vec<String>>,
    /// Archives (`true`) or unarchives (`false`).
    pub archived: Option<bool>,
    /// Replaces the metadata.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ExperienceUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &ExperienceUpdate::default()
    }

    /// Checks the fields that are set, with the rules of [`NewExperience::validate`].
    ///
    /// # Errors
    /// The first broken rule, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(v) = self.importance {
            validate::unit_interval("importance", v)?;
        }
        if let Some(v) = self.confidence {
            validate::unit_interval("confidence", v)?;
        }
        if let Some(d) = &self.domain {
            validate_domains(d)?;
        }
        if let Some(t) = &self.tags {
            validate_tags(t)?;
        }
        if let Some(f) = &self.related_files {
            validate_related_files(f)?;
        }
        if let Some(m) = &self.metadata {
            validate_metadata(m)?;
        }
        Ok(())
    }

    /// Applies the update to a stored experience.
    pub(crate) fn apply_to(&self, exp: &mut Experience) {
        if let Some(v) = self.importance {
            exp.importance = v;
        }
        if let Some(v) = self.confidence {
            exp.confidence = v;
        }
        if let Some(d) = &self.domain {
            exp.domain = d.clone();
        }
        if let Some(t) = &self.tags {
            exp.tags = t.clone();
        }
        if let Some(f) = &self.related_files {
            exp.related_files = f.clone();
        }
        if let Some(a) = self.archived {
            exp.archived = a;
        }
        if let Some(m) = &self.metadata {
            exp.metadata = m.clone();
        }
    }
}

impl NewExperience {
    /// Checks every field except the embedding, whose dimension belongs to the
    /// database (see [`validate_embedding`]).
    ///
    /// | field | rule |
    /// |---|---|
    /// | `content` | 1 ..= 102 400 bytes |
    /// | `importance`, `confidence` | finite, 0.0 ..= 1.0 |
    /// | `domain` | ≤ 50 items, each 1 ..= 100 bytes |
    /// | `tags` | ≤ 50 pairs, key 1 ..= 100 bytes, value ≤ 200 bytes |
    /// | `related_files` | ≤ 100 items, each ≤ 500 bytes |
    /// | `source_agent` | 1 ..= 255 bytes |
    /// | `source_task` | ≤ 1 024 bytes |
    /// | `metadata` | ≤ 16 384 bytes as compact JSON |
    /// | `experience_type` | texts ≤ 10 240 bytes; `quality`, `strength` finite in 0.0 ..= 1.0 |
    ///
    /// # Errors
    /// The first broken rule, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.content.is_empty() {
            return Err(ValidationError::RequiredField {
                field: "content".into(),
            });
        }
        if self.content.len() > MAX_CONTENT_BYTES {
            return Err(ValidationError::ContentTooLarge {
                size: self.content.len(),
                max: MAX_CONTENT_BYTES,
            });
        }
        validate::unit_interval("importance", self.importance)?;
        validate::unit_interval("confidence", self.confidence)?;
        validate_domains(&self.domain)?;
        validate_tags(&self.tags)?;
        validate_related_files(&self.related_files)?;
        validate::required_text("source_agent", &self.source_agent, MAX_AGENT_ID_BYTES)?;
        if let Some(task) = &self.source_task {
            validate::bounded_text("source_task", task, MAX_SOURCE_TASK_BYTES)?;
        }
        validate_metadata(&self.metadata)?;
        self.experience_type.validate()
    }
}

/// Checks an embedding for a database of `dimension`.
///
/// # Errors
/// `DimensionMismatch`, or `InvalidField` for a non-finite component or an
/// all-zero vector.
pub fn validate_embedding(vector: &[f32], dimension: usize) -> Result<(), ValidationError> {
    validate::embedding("embedding", vector, dimension)
}

pub(crate) fn validate_domains(domains: &[String]) -> Checked {
    validate::item_count("domain", domains.len(), MAX_DOMAINS)?;
    for d in domains {
        validate::required_text("domain", d, MAX_DOMAIN_BYTES)?;
    }
    Ok(())
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Checked {
    validate::item_count("tags", tags.len(), MAX_TAGS)?;
    for (k, v) in tags {
        validate::required_text("tags.key", k, MAX_TAG_KEY_BYTES)?;
        validate::bounded_text("tags.value", v, MAX_TAG_VALUE_BYTES)?;
    }
    Ok(())
}

fn validate_related_files(files: &[String]) -> Checked {
    validate::item_count("related_files", files.len(), MAX_RELATED_FILES)?;
    for f in files {
        validate::bounded_text("related_files", f, MAX_RELATED_FILE_BYTES)?;
    }
    Ok(())
}

/// Energy of an experience: how present it should be in recall.
///
/// `E = clamp01(importance × (1 + freq_weight × ln(1 + applications)) × 2^(−Δt / half_life))`
/// with `Δt = now − last_reinforced` (negative Δt counts as 0).
pub fn energy(
    importance: f32,
    applications: u32,
    last_reinforced: Timestamp,
    now: Timestamp,
    decay: &DecayConfig,
) -> f32 {
    let dt_ms = (now.0 - last_reinforced.0).max(0) as f64;
    let half_life_ms = decay.half_life.as_millis().max(1) as f64;
    let freq = 1.0 + f64::from(decay.freq_weight) * (1.0 + f64::from(applications)).ln();
    let e = f64::from(importance) * freq * (-dt_ms / half_life_ms).exp2();
    e.clamp(0.0, 1.0) as f32
}

/// `metadata`: at most [`MAX_METADATA_BYTES`] as compact JSON.
///
/// # Errors
/// `InvalidField("metadata")` naming its size and the limit.
pub fn validate_metadata(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ValidationError> {
    if m.is_empty() {
        return Ok(());
    }
    let size = serde_json::to_vec(m).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_METADATA_BYTES {
        return Err(ValidationError::invalid(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes as compact JSON, got {size}"),
        ));
    }
    Ok(())
}
