//! Search on the wire: filters, weights, hits and context.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActivityJson, ExperienceJson, ExperienceTypeTagJson, InsightJson, RelationJson};
use crate::{RecallWeights, SearchFilter, Timestamp};

/// `SearchFilter`; missing fields filter nothing, archived records are
/// excluded unless `exclude_archived` is `false`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
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

/// A search hit.
#[derive(Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Hit {
    #[serde(serialize_with = "crate::wire::decimal")]
    pub similarity: f32,
    #[serde(serialize_with = "crate::wire::decimal")]
    pub score: f32,
    pub experience: ExperienceJson,
}

impl Hit {
    pub fn new(h: crate::SearchResult, embedding: bool) -> Self {
        Hit {
            similarity: h.similarity,
            score: h.score,
            experience: ExperienceJson::new(h.experience, embedding),
        }
    }
}

/// `ContextCandidates`.
#[derive(Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ContextJson {
    pub similar_experiences: Vec<Hit>,
    pub recent_experiences: Vec<ExperienceJson>,
    pub insights: Vec<InsightJson>,
    pub relations: Vec<RelationJson>,
    pub active_agents: Vec<ActivityJson>,
}

impl ContextJson {
    /// The wire form of `found`, with embeddings when `embedding` is set.
    pub fn new(found: crate::ContextCandidates, embedding: bool) -> Self {
        ContextJson {
            similar_experiences: found
                .similar_experiences
                .into_iter()
                .map(|h| Hit::new(h, embedding))
                .collect(),
            recent_experiences: found
                .recent_experiences
                .into_iter()
                .map(|x| ExperienceJson::new(x, embedding))
                .collect(),
            insights: found
                .insights
                .into_iter()
                .map(|i| InsightJson::new(i, false))
                .collect(),
            relations: found.relations.into_iter().map(Into::into).collect(),
            active_agents: found.active_agents.into_iter().map(Into::into).collect(),
        }
    }
}
