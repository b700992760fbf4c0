//! Experiences on the wire: types, new records, records, updates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    CollectiveId, Experience, ExperienceId, ExperienceType, ExperienceTypeTag, ExperienceUpdate,
    NewExperience, Severity, Timestamp,
};

/// `Severity` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeverityJson {
    Low,
    Medium,
    High,
    Critical,
}

impl From<Severity> for SeverityJson {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Low => SeverityJson::Low,
            Severity::Medium => SeverityJson::Medium,
            Severity::High => SeverityJson::High,
            Severity::Critical => SeverityJson::Critical,
        }
    }
}

impl From<SeverityJson> for Severity {
    fn from(s: SeverityJson) -> Self {
        match s {
            SeverityJson::Low => Severity::Low,
            SeverityJson::Medium => Severity::Medium,
            SeverityJson::High => Severity::High,
            SeverityJson::Critical => Severity::Critical,
        }
    }
}

/// `ExperienceType`: `{"type": "difficulty", "description": ..., "severity": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExperienceTypeJson {
    Difficulty {
        description: String,
        severity: SeverityJson,
    },
    Solution {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem_ref: Option<ExperienceId>,
        approach: String,
        worked: bool,
    },
    ErrorPattern {
        signature: String,
        fix: String,
        prevention: String,
    },
    SuccessPattern {
        task_type: String,
        approach: String,
        #[cfg_attr(feature = "server", schema(minimum = 0.0, maximum = 1.0))]
        #[serde(serialize_with = "crate::wire::decimal")]
        quality: f32,
    },
    UserPreference {
        category: String,
        preference: String,
        #[cfg_attr(feature = "server", schema(minimum = 0.0, maximum = 1.0))]
        #[serde(serialize_with = "crate::wire::decimal")]
        strength: f32,
    },
    ArchitecturalDecision {
        decision: String,
        rationale: String,
    },
    TechInsight {
        technology: String,
        insight: String,
    },
    Fact {
        statement: String,
        source: String,
    },
    Generic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
    },
}

impl From<ExperienceType> for ExperienceTypeJson {
    fn from(t: ExperienceType) -> Self {
        use ExperienceType as T;
        use ExperienceTypeJson as J;
        match t {
            T::Difficulty {
                description,
                severity,
            } => J::Difficulty {
                description,
                severity: severity.into(),
            },
            T::Solution {
                problem_ref,
                approach,
                worked,
            } => J::Solution {
                problem_ref,
                approach,
                worked,
            },
            T::ErrorPattern {
                signature,
                fix,
                prevention,
            } => J::ErrorPattern {
                signature,
                fix,
                prevention,
            },
            T::SuccessPattern {
                task_type,
                approach,
                quality,
            } => J::SuccessPattern {
                task_type,
                approach,
                quality,
            },
            T::UserPreference {
                category,
                preference,
                strength,
            } => J::UserPreference {
                category,
                preference,
                strength,
            },
            T::ArchitecturalDecision {
                decision,
                rationale,
            } => J::ArchitecturalDecision {
                decision,
                rationale,
            },
            T::TechInsight {
                technology,
                insight,
            } => J::TechInsight {
                technology,
                insight,
            },
            T::Fact { statement, source } => J::Fact { statement, source },
            T::Generic { category } => J::Generic { category },
        }
    }
}

impl From<ExperienceTypeJson> for ExperienceType {
    fn from(t: ExperienceTypeJson) -> Self {
        use ExperienceType as T;
        use ExperienceTypeJson as J;
        match t {
            J::Difficulty {
                description,
                severity,
            } => T::Difficulty {
                description,
                severity: severity.into(),
            },
            J::Solution {
                problem_ref,
                approach,
                worked,
            } => T::Solution {
                problem_ref,
                approach,
                worked,
            },
            J::ErrorPattern {
                signature,
                fix,
                prevention,
            } => T::ErrorPattern {
                signature,
                fix,
                prevention,
            },
            J::SuccessPattern {
                task_type,
                approach,
                quality,
            } => T::SuccessPattern {
                task_type,
                approach,
                quality,
            },
            J::UserPreference {
                category,
                preference,
                strength,
            } => T::UserPreference {
                category,
                preference,
                strength,
            },
            J::ArchitecturalDecision {
                decision,
                rationale,
            } => T::ArchitecturalDecision {
                decision,
                rationale,
            },
            J::TechInsight {
                technology,
                insight,
            } => T::TechInsight {
                technology,
                insight,
            },
            J::Fact { statement, source } => T::Fact { statement, source },
            J::Generic { category } => T::Generic { category },
        }
    }
}

/// `ExperienceTypeTag` as a snake_case string (filters).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema, utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExperienceTypeTagJson {
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

impl From<ExperienceTypeTagJson> for ExperienceTypeTag {
    fn from(t: ExperienceTypeTagJson) -> Self {
        use ExperienceTypeTag as T;
        use ExperienceTypeTagJson as J;
        match t {
            J::Difficulty => T::Difficulty,
            J::Solution => T::Solution,
            J::ErrorPattern => T::ErrorPattern,
            J::SuccessPattern => T::SuccessPattern,
            J::UserPreference => T::UserPreference,
            J::ArchitecturalDecision => T::ArchitecturalDecision,
            J::TechInsight => T::TechInsight,
            J::Fact => T::Fact,
            J::Generic => T::Generic,
        }
    }
}

impl From<ExperienceTypeTag> for ExperienceTypeTagJson {
    fn from(t: ExperienceTypeTag) -> Self {
        use ExperienceTypeTag as T;
        use ExperienceTypeTagJson as J;
        match t {
            T::Difficulty => J::Difficulty,
            T::Solution => J::Solution,
            T::ErrorPattern => J::ErrorPattern,
            T::SuccessPattern => J::SuccessPattern,
            T::UserPreference => J::UserPreference,
            T::ArchitecturalDecision => J::ArchitecturalDecision,
            T::TechInsight => J::TechInsight,
            T::Fact => J::Fact,
            T::Generic => J::Generic,
        }
    }
}

pub(crate) fn half() -> f32 {
    0.5
}

fn anonymous() -> String {
    "anonymous".into()
}

/// A `NewExperience` without `collective_id` (the route names it).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NewExperienceJson {
    /// 1 ..= 102 400 bytes.
    #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 102400))]
    pub content: String,
    #[serde(default)]
    pub experience_type: Option<ExperienceTypeJson>,
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    #[serde(default = "half")]
    #[cfg_attr(
        feature = "server",
        schema(minimum = 0.0, maximum = 1.0, default = 0.5)
    )]
    pub importance: f32,
    #[serde(default = "half")]
    #[cfg_attr(
        feature = "server",
        schema(minimum = 0.0, maximum = 1.0, default = 0.5)
    )]
    pub confidence: f32,
    /// ≤ 50 items, each 1 ..= 100 bytes.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(max_items = 50))]
    pub domain: Vec<String>,
    /// ≤ 50 pairs, key 1 ..= 100 bytes, value ≤ 200 bytes.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// ≤ 100 items, each ≤ 500 bytes.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(max_items = 100))]
    pub related_files: Vec<String>,
    /// 1 ..= 255 bytes.
    #[serde(default = "anonymous")]
    #[cfg_attr(
        feature = "server",
        schema(min_length = 1, max_length = 255, default = "anonymous")
    )]
    pub source_agent: String,
    #[serde(default)]
    pub source_task: Option<String>,
    /// Free JSON, ≤ 16 384 bytes compact; returned exactly as given.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl NewExperienceJson {
    /// The library's `NewExperience` for collective `c`.
    pub fn into_new(self, c: CollectiveId) -> NewExperience {
        NewExperience {
            collective_id: c,
            content: self.content,
            experience_type: self.experience_type.map(Into::into).unwrap_or_default(),
            embedding: self.embedding,
            importance: self.importance,
            confidence: self.confidence,
            domain: self.domain,
            tags: self.tags,
            related_files: self.related_files,
            source_agent: self.source_agent,
            source_task: self.source_task,
            metadata: self.metadata,
        }
    }
}

/// An `Experience` in a response; `embedding` only when asked for.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ExperienceJson {
    pub id: ExperienceId,
    pub collective_id: CollectiveId,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    pub experience_type: ExperienceTypeJson,
    #[serde(serialize_with = "crate::wire::decimal")]
    pub importance: f32,
    #[serde(serialize_with = "crate::wire::decimal")]
    pub confidence: f32,
    pub applications: u32,
    pub domain: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub related_files: Vec<String>,
    pub source_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_task: Option<String>,
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub timestamp: i64,
    pub last_reinforced: i64,
    pub archived: bool,
}

impl ExperienceJson {
    /// The wire form of `x`, with its embedding when `embedding` is set.
    pub fn new(x: Experience, embedding: bool) -> Self {
        ExperienceJson {
            id: x.id,
            collective_id: x.collective_id,
            content: x.content,
            embedding: embedding.then_some(x.embedding),
            experience_type: x.experience_type.into(),
            importance: x.importance,
            confidence: x.confidence,
            applications: x.applications,
            domain: x.domain,
            tags: x.tags,
            related_files: x.related_files,
            source_agent: x.source_agent,
            source_task: x.source_task,
            metadata: x.metadata,
            timestamp: x.timestamp.0,
            last_reinforced: x.last_reinforced.0,
            archived: x.archived,
        }
    }
}

/// An exported `ExperienceJson` read back (`pulsedb import` of an
/// export): the record whole, embedding included; restored as it was.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedExperienceJson {
    pub id: ExperienceId,
    pub content: String,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub experience_type: Option<ExperienceTypeJson>,
    #[serde(default = "half")]
    pub importance: f32,
    #[serde(default = "half")]
    pub confidence: f32,
    #[serde(default)]
    pub applications: u32,
    #[serde(default)]
    pub domain: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub related_files: Vec<String>,
    #[serde(default = "anonymous")]
    pub source_agent: String,
    #[serde(default)]
    pub source_task: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub timestamp: i64,
    pub last_reinforced: i64,
    #[serde(default)]
    pub archived: bool,
}

impl ExportedExperienceJson {
    /// The library's `Experience`, placed in collective `c`.
    pub fn into_experience(self, c: CollectiveId) -> Experience {
        Experience {
            id: self.id,
            collective_id: c,
            content: self.content,
            embedding: self.embedding,
            experience_type: self.experience_type.map(Into::into).unwrap_or_default(),
            importance: self.importance,
            confidence: self.confidence,
            applications: self.applications,
            domain: self.domain,
            tags: self.tags,
            related_files: self.related_files,
            source_agent: self.source_agent,
            source_task: self.source_task,
            metadata: self.metadata,
            timestamp: Timestamp(self.timestamp),
            last_reinforced: Timestamp(self.last_reinforced),
            archived: self.archived,
        }
    }
}

/// `ExperienceUpdate`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ExperienceUpdateJson {
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(minimum = 0.0, maximum = 1.0))]
    pub importance: Option<f32>,
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(minimum = 0.0, maximum = 1.0))]
    pub confidence: Option<f32>,
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(max_items = 50))]
    pub domain: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(max_items = 100))]
    pub related_files: Option<Vec<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
    /// Replaces the metadata.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<ExperienceUpdateJson> for ExperienceUpdate {
    fn from(u: ExperienceUpdateJson) -> Self {
        ExperienceUpdate {
            importance: u.importance,
            confidence: u.confidence,
            domain: u.domain,
            tags: u.tags,
            related_files: u.related_files,
            archived: u.archived,
            metadata: u.metadata,
        }
    }
}
