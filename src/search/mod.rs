//! Search requests and answers, and context assembly's request and answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::activity::Activity;
use crate::collective::CollectiveId;
use crate::error::ValidationError;
use crate::experience::{Experience, ExperienceTypeTag};
use crate::id::Timestamp;
use crate::insight::DerivedInsight;
use crate::relation::ExperienceRelation;
use crate::validate;

pub(crate) mod columns;

/// Tolerance on the sum of [`RecallWeights`].
pub const RECALL_WEIGHT_TOLERANCE: f32 = 1e-4;

/// Restricts which experiences a search or listing returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Matches experiences with any of these domains.
    pub domains: Option<Vec<String>>,
    /// Matches experiences carrying every one of these tag pairs.
    pub tags_all: Option<BTreeMap<String, String>>,
    /// Matches experiences of any of these types.
    pub experience_types: Option<Vec<ExperienceTypeTag>>,
    /// Matches importance ≥ this.
    pub min_importance: Option<f32>,
    /// Matches confidence ≥ this.
    pub min_confidence: Option<f32>,
    /// Matches experiences recorded at or after this time.
    pub since: Option<Timestamp>,
    /// Leaves archived experiences out.
    pub exclude_archived: bool,
}

impl Default for SearchFilter {
    fn default() -> Self {
        SearchFilter {
            domains: None,
            tags_all: None,
            experience_types: None,
            min_importance: None,
            min_confidence: None,
            since: None,
            exclude_archived: true,
        }
    }
}

impl SearchFilter {
    /// Whether `exp` passes the filter.
    pub fn matches(&self, exp: &Experience) -> bool {
        if self.exclude_archived && exp.archived {
            return false;
        }
        if !exp.passes(
            self.domains.as_deref(),
            self.experience_types.as_deref(),
            self.min_importance,
        ) {
            return false;
        }
        if let Some(tags) = &self.tags_all {
            if !tags.iter().all(|(k, v)| exp.tags.get(k) == Some(v)) {
                return false;
            }
        }
        if self.min_confidence.is_some_and(|m| exp.confidence < m) {
            return false;
        }
        if self.since.is_some_and(|s| exp.timestamp < s) {
            return false;
        }
        true
    }

    /// Checks the thresholds: `min_importance` and `min_confidence` finite.
    ///
    /// # Errors
    /// `InvalidField` naming the bad threshold.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, v) in [
            ("filter.min_importance", self.min_importance),
            ("filter.min_confidence", self.min_confidence),
        ] {
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(ValidationError::invalid(field, "must be finite"));
                }
            }
        }
        Ok(())
    }
}

/// How `search` mixes similarity with energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecallWeights {
    /// Weight of the cosine similarity (clamped to `0..=1`).
    pub similarity: f32,
    /// Weight of the energy.
    pub energy: f32,
}

impl RecallWeights {
    /// Checks the weights: finite, ≥ 0, summing to 1 ± 1e-4.
    ///
    /// # Errors
    /// `InvalidField(field)`.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let ok = [self.similarity, self.energy]
            .iter()
            .all(|w| w.is_finite() && *w >= 0.0);
        if !ok {
            return Err(ValidationError::invalid(
                field,
                "weights must be finite and >= 0",
            ));
        }
        if ((self.similarity + self.energy) - 1.0).abs() > RECALL_WEIGHT_TOLERANCE {
            return Err(ValidationError::invalid(
                field,
                "weights must sum to 1 (tolerance 1e-4)",
            ));
        }
        Ok(())
    }

    /// The ranking score of a candidate.
    pub fn score(&self, similarity: f32, energy: f32) -> f32 {
        self.similarity * similarity.clamp(0.0, 1.0) + self.energy * energy
    }
}

/// Options of [`crate::PulseHandle::search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOptions {
    /// Results wanted, 1 ..= 1000.
    pub k: usize,
    /// Which experiences qualify.
    pub filter: SearchFilter,
    /// Mix similarity with energy; `None` uses `decay.default_recall_weights`.
    pub weights: Option<RecallWeights>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            filter: SearchFilter::default(),
            weights: None,
        }
    }
}

/// One search answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The experience found.
    pub experience: Experience,
    /// Cosine similarity to the query, in `[-1, 1]`.
    pub similarity: f32,
    /// The ranking value: `similarity` unless recall weights apply.
    pub score: f32,
}

/// Everything an agent needs before acting, in one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRequest {
    /// The collective.
    pub collective_id: CollectiveId,
    /// Embedding of what the agent is about to do.
    pub query_embedding: Vec<f32>,
    /// Similar experiences wanted, 1 ..= 1000 (also the number of insights).
    pub max_similar: usize,
    /// Recent experiences wanted, 1 ..= 1000.
    pub max_recent: usize,
    /// Include the nearest insights.
    pub include_insights: bool,
    /// Include relations of the returned experiences.
    pub include_relations: bool,
    /// Include the active agents.
    pub include_active_agents: bool,
    /// Filter for the similar and recent experiences.
    pub filter: SearchFilter,
    /// Recall weights for the similar experiences.
    pub recall_weights: Option<RecallWeights>,
}

impl Default for ContextRequest {
    fn default() -> Self {
        ContextRequest {
            collective_id: CollectiveId::from_bytes([0; 16]),
            query_embedding: Vec::new(),
            max_similar: 20,
            max_recent: 10,
            include_insights: true,
            include_relations: true,
            include_active_agents: true,
            filter: SearchFilter::default(),
            recall_weights: None,
        }
    }
}

impl ContextRequest {
    /// Checks the limits and weights (the embedding is checked against the
    /// database dimension separately).
    ///
    /// # Errors
    /// `InvalidField` naming the bad field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::result_count("max_similar", self.max_similar)?;
        validate::result_count("max_recent", self.max_recent)?;
        self.filter.validate()?;
        if let Some(w) = &self.recall_weights {
            w.validate("recall_weights")?;
        }
        Ok(())
    }
}

/// The answer to a [`ContextRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextCandidates {
    /// Experiences similar to the query, best first.
    pub similar_experiences: Vec<SearchResult>,
    /// Recent experiences, newest first.
    pub recent_experiences: Vec<Experience>,
    /// Insights nearest the query.
    pub insights: Vec<DerivedInsight>,
    /// Relations touching the returned experiences, each once.
    pub relations: Vec<ExperienceRelation>,
    /// Agents active in the collective.
    pub active_agents: Vec<Activity>,
}

/// How many nearest neighbours to fetch for `k` results: with recall
/// weights, at least `max(4k, k + 16)` candidates are re-ranked.
pub(crate) fn candidate_count(k: usize, weights: Option<&RecallWeights>) -> usize {
    match weights {
        Some(_) => (4 * k).max(k + 16),
        None => k,
    }
}

/// Turns nearest neighbours (best first) into the `k` best results.
pub(crate) fn rank(
    hits: Vec<(Experience, f32)>,
    k: usize,
    weights: Option<&RecallWeights>,
    decay: &crate::config::DecayConfig,
    now: Timestamp,
) -> Vec<SearchResult> {
    let mut results: Vec<SearchResult> = hits
        .into_iter()
        .map(|(experience, similarity)| {
            let similarity = similarity.clamp(-1.0, 1.0);
            let score = match weights {
                Some(w) => {
                    let e = crate::experience::energy(
                        experience.importance,
                        experience.applications,
                        experience.last_reinforced,
                        now,
                        decay,
                    );
                    w.score(similarity, e)
                }
                None => similarity,
            };
            SearchResult {
                experience,
                similarity,
                score,
            }
        })
        .collect();
    if weights.is_some() {
        results.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.similarity.total_cmp(&a.similarity))
        });
    }
    results.truncate(k);
    results
}
