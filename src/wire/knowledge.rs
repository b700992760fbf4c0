//! Relations and insights on the wire.

use serde::{Deserialize, Serialize};

use super::{half, ExperienceJson};
use crate::{
    CollectiveId, DerivedInsight, ExperienceId, ExperienceRelation, InsightId, InsightType,
    NewDerivedInsight, RelationId, RelationType,
};

/// `RelationType` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema, utoipa::ToSchema))]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema, utoipa::ToSchema))]
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
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NewInsightJson {
    /// 1 ..= 51 200 bytes.
    #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 51200))]
    pub content: String,
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// 1 ..= 100 experiences of the same collective.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(min_items = 1, max_items = 100))]
    pub source_experience_ids: Vec<ExperienceId>,
    pub insight_type: InsightTypeJson,
    #[serde(default = "half")]
    #[cfg_attr(
        feature = "server",
        schema(minimum = 0.0, maximum = 1.0, default = 0.5)
    )]
    pub confidence: f32,
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(max_items = 50))]
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
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct InsightJson {
    pub id: InsightId,
    pub collective_id: CollectiveId,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    pub source_experience_ids: Vec<ExperienceId>,
    pub insight_type: InsightTypeJson,
    #[serde(serialize_with = "crate::wire::decimal")]
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
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema, utoipa::ToSchema))]
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

/// `ExperienceRelation` in a response.
#[derive(Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RelationJson {
    pub id: RelationId,
    pub source_id: ExperienceId,
    pub target_id: ExperienceId,
    pub relation_type: RelationTypeJson,
    #[serde(serialize_with = "crate::wire::decimal")]
    pub strength: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    pub created_at: i64,
}

impl From<ExperienceRelation> for RelationJson {
    fn from(r: ExperienceRelation) -> Self {
        RelationJson {
            id: r.id,
            source_id: r.source_id,
            target_id: r.target_id,
            relation_type: r.relation_type.into(),
            strength: r.strength,
            metadata: r.metadata,
            created_at: r.created_at.0,
        }
    }
}

/// A related experience and the relation that links it.
#[derive(Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Related {
    pub experience: ExperienceJson,
    pub relation: RelationJson,
}
