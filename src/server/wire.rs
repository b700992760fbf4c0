//! The server's JSON shapes (SERVER.md "HTTP conventions"), separate from
//! the library's types so that the storage codec never changes with the
//! wire: snake_case enums, `{"type": ...}` experience types, integer
//! millisecond timestamps, `null` fields left out, embeddings only on
//! request. Requests take the library's defaults for missing fields.
//! Each type mirrors the library type of the same name (see API.md); the
//! fields are documented there.

#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Activity, Collective, CollectiveId, DerivedInsight, Experience, ExperienceId, ExperienceType,
    ExperienceTypeTag, ExperienceUpdate, InsightId, InsightType, NewDerivedInsight, NewExperience,
    RecallWeights, RelationType, SearchFilter, Severity, Timestamp, WatchEvent, WatchEventType,
};

/// `Severity` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
        #[schema(minimum = 0.0, maximum = 1.0)]
        quality: f32,
    },
    UserPreference {
        category: String,
        preference: String,
        #[schema(minimum = 0.0, maximum = 1.0)]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
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

fn half() -> f32 {
    0.5
}

fn anonymous() -> String {
    "anonymous".into()
}

/// A `NewExperience` without `collective_id` (the route names it).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewExperienceJson {
    /// 1 ..= 102 400 bytes.
    #[schema(min_length = 1, max_length = 102400)]
    pub content: String,
    #[serde(default)]
    pub experience_type: Option<ExperienceTypeJson>,
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    #[serde(default = "half")]
    #[schema(minimum = 0.0, maximum = 1.0, default = 0.5)]
    pub importance: f32,
    #[serde(default = "half")]
    #[schema(minimum = 0.0, maximum = 1.0, default = 0.5)]
    pub confidence: f32,
    /// ≤ 50 items, each 1 ..= 100 bytes.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub domain: Vec<String>,
    /// ≤ 50 pairs, key 1 ..= 100 bytes, value ≤ 200 bytes.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// ≤ 100 items, each ≤ 500 bytes.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub related_files: Vec<String>,
    /// 1 ..= 255 bytes.
    #[serde(default = "anonymous")]
    #[schema(min_length = 1, max_length = 255, default = "anonymous")]
    pub source_agent: String,
    #[serde(default)]
    pub source_task: Option<String>,
    /// Free JSON, ≤ 16 384 bytes compact; returned exactly as given.
    #[serde(default)]
    #[schema(value_type = Object)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperienceJson {
    pub id: ExperienceId,
    pub collective_id: CollectiveId,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    pub experience_type: ExperienceTypeJson,
    pub importance: f32,
    pub confidence: f32,
    pub applications: u32,
    pub domain: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub related_files: Vec<String>,
    pub source_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_task: Option<String>,
    #[schema(value_type = Object)]
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ExperienceUpdateJson {
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub importance: Option<f32>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f32>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub domain: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub related_files: Option<Vec<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
    /// Replaces the metadata.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
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

/// `SearchFilter`; missing fields filter nothing, archived records are
/// excluded unless `exclude_archived` is `false`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SearchFilterJson {
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    #[serde(default)]
    pub tags_all: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub experience_types: Option<Vec<ExperienceTypeTagJson>>,
    #[serde(default)]
    pub min_importance: Option<f32>,
    #[serde(default)]
    pub min_confidence: Option<f32>,
    #[serde(default)]
    pub since: Option<i64>,
    #[serde(default = "yes")]
    pub exclude_archived: bool,
}

pub(crate) fn yes() -> bool {
    true
}

impl From<SearchFilterJson> for SearchFilter {
    fn from(f: SearchFilterJson) -> Self {
        SearchFilter {
            domains: f.domains,
            tags_all: f.tags_all,
            experience_types: f
                .experience_types
                .map(|ts| ts.into_iter().map(Into::into).collect()),
            min_importance: f.min_importance,
            min_confidence: f.min_confidence,
            since: f.since.map(Timestamp),
            exclude_archived: f.exclude_archived,
        }
    }
}

/// `RecallWeights`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub struct RecallWeightsJson {
    pub similarity: f32,
    pub energy: f32,
}

impl From<RecallWeightsJson> for RecallWeights {
    fn from(w: RecallWeightsJson) -> Self {
        RecallWeights {
            similarity: w.similarity,
            energy: w.energy,
        }
    }
}

/// `Collective` in a response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CollectiveJson {
    pub id: CollectiveId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub embedding_dimension: u16,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Collective> for CollectiveJson {
    fn from(c: Collective) -> Self {
        CollectiveJson {
            id: c.id,
            name: c.name,
            owner_id: c.owner_id,
            embedding_dimension: c.embedding_dimension,
            created_at: c.created_at.0,
            updated_at: c.updated_at.0,
        }
    }
}

/// `Activity` in a response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActivityJson {
    pub agent_id: String,
    pub collective_id: CollectiveId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_summary: Option<String>,
    pub started_at: i64,
    pub last_heartbeat: i64,
}

impl From<Activity> for ActivityJson {
    fn from(a: Activity) -> Self {
        ActivityJson {
            agent_id: a.agent_id,
            collective_id: a.collective_id,
            current_task: a.current_task,
            context_summary: a.context_summary,
            started_at: a.started_at.0,
            last_heartbeat: a.last_heartbeat.0,
        }
    }
}

/// `WatchEventType` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventTypeJson {
    Created,
    Updated,
    Archived,
    Deleted,
}

/// `WatchEvent` in a response (the experience without its embedding).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WatchEventJson {
    pub sequence: u64,
    pub experience_id: ExperienceId,
    pub collective_id: CollectiveId,
    pub event_type: WatchEventTypeJson,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experience: Option<ExperienceJson>,
}

impl From<WatchEvent> for WatchEventJson {
    fn from(e: WatchEvent) -> Self {
        WatchEventJson {
            sequence: e.sequence,
            experience_id: e.experience_id,
            collective_id: e.collective_id,
            event_type: match e.event_type {
                WatchEventType::Created => WatchEventTypeJson::Created,
                WatchEventType::Updated => WatchEventTypeJson::Updated,
                WatchEventType::Archived => WatchEventTypeJson::Archived,
                WatchEventType::Deleted => WatchEventTypeJson::Deleted,
            },
            timestamp: e.timestamp.0,
            experience: e.experience.map(|x| ExperienceJson::new(x, false)),
        }
    }
}

/// `RelationType` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationTypeJson {
    Supports,
    Contradicts,
    Elaborates,
    Supersedes,
    Implies,
    RelatedTo,
}

impl From<RelationTypeJson> for RelationType {
    fn from(r: RelationTypeJson) -> Self {
        match r {
            RelationTypeJson::Supports => RelationType::Supports,
            RelationTypeJson::Contradicts => RelationType::Contradicts,
            RelationTypeJson::Elaborates => RelationType::Elaborates,
            RelationTypeJson::Supersedes => RelationType::Supersedes,
            RelationTypeJson::Implies => RelationType::Implies,
            RelationTypeJson::RelatedTo => RelationType::RelatedTo,
        }
    }
}

impl From<RelationType> for RelationTypeJson {
    fn from(r: RelationType) -> Self {
        match r {
            RelationType::Supports => RelationTypeJson::Supports,
            RelationType::Contradicts => RelationTypeJson::Contradicts,
            RelationType::Elaborates => RelationTypeJson::Elaborates,
            RelationType::Supersedes => RelationTypeJson::Supersedes,
            RelationType::Implies => RelationTypeJson::Implies,
            RelationType::RelatedTo => RelationTypeJson::RelatedTo,
        }
    }
}

/// `InsightType` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsightTypeJson {
    Pattern,
    Synthesis,
    Abstraction,
    Correlation,
}

impl From<InsightTypeJson> for InsightType {
    fn from(t: InsightTypeJson) -> Self {
        match t {
            InsightTypeJson::Pattern => InsightType::Pattern,
            InsightTypeJson::Synthesis => InsightType::Synthesis,
            InsightTypeJson::Abstraction => InsightType::Abstraction,
            InsightTypeJson::Correlation => InsightType::Correlation,
        }
    }
}

impl From<InsightType> for InsightTypeJson {
    fn from(t: InsightType) -> Self {
        match t {
            InsightType::Pattern => InsightTypeJson::Pattern,
            InsightType::Synthesis => InsightTypeJson::Synthesis,
            InsightType::Abstraction => InsightTypeJson::Abstraction,
            InsightType::Correlation => InsightTypeJson::Correlation,
        }
    }
}

/// A `NewDerivedInsight` without `collective_id`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewInsightJson {
    /// 1 ..= 51 200 bytes.
    #[schema(min_length = 1, max_length = 51200)]
    pub content: String,
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// 1 ..= 100 experiences of the same collective.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    pub source_experience_ids: Vec<ExperienceId>,
    pub insight_type: InsightTypeJson,
    #[serde(default = "half")]
    #[schema(minimum = 0.0, maximum = 1.0, default = 0.5)]
    pub confidence: f32,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub domain: Vec<String>,
}

impl NewInsightJson {
    /// The library's `NewDerivedInsight` for collective `c`.
    pub fn into_new(self, c: CollectiveId) -> NewDerivedInsight {
        NewDerivedInsight {
            collective_id: c,
            content: self.content,
            embedding: self.embedding,
            source_experience_ids: self.source_experience_ids,
            insight_type: self.insight_type.into(),
            confidence: self.confidence,
            domain: self.domain,
        }
    }
}

/// `DerivedInsight` in a response (embedding on request).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InsightJson {
    pub id: InsightId,
    pub collective_id: CollectiveId,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    pub source_experience_ids: Vec<ExperienceId>,
    pub insight_type: InsightTypeJson,
    pub confidence: f32,
    pub domain: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl InsightJson {
    /// The wire form of `i`, with its embedding when `embedding` is set.
    pub fn new(i: DerivedInsight, embedding: bool) -> Self {
        InsightJson {
            id: i.id,
            collective_id: i.collective_id,
            content: i.content,
            embedding: embedding.then_some(i.embedding),
            source_experience_ids: i.source_experience_ids,
            insight_type: i.insight_type.into(),
            confidence: i.confidence,
            domain: i.domain,
            created_at: i.created_at.0,
            updated_at: i.updated_at.0,
        }
    }
}

/// `RelationDirection` as a snake_case string.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionJson {
    Outgoing,
    Incoming,
    Both,
}

impl From<DirectionJson> for crate::RelationDirection {
    fn from(d: DirectionJson) -> Self {
        match d {
            DirectionJson::Outgoing => crate::RelationDirection::Outgoing,
            DirectionJson::Incoming => crate::RelationDirection::Incoming,
            DirectionJson::Both => crate::RelationDirection::Both,
        }
    }
}
