//! Search by vector or by text, for experiences and insights.

use axum::Json;
use serde::{Deserialize, Serialize};

use crate::server::extract::{JsonBody, Path, Query};
use crate::server::wire::{ExperienceJson, InsightJson, RecallWeightsJson, SearchFilterJson};
use crate::server::{ApiError, Shared};
use crate::{CollectiveId, PulseHandle, SearchFilter, SearchOptions};

use super::Embedding;

type Answer<T> = Result<T, ApiError>;

fn default_k() -> usize {
    10
}

/// The query of a search: exactly one of `vector` and `text`.
#[derive(Deserialize)]
pub(crate) struct TextOrVector {
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    text: Option<String>,
}

impl TextOrVector {
    /// The query vector: `vector` as given, or `text` embedded.
    async fn vector(self, db: &PulseHandle) -> Answer<Vec<f32>> {
        match (self.vector, self.text) {
            (Some(v), None) => Ok(v),
            (None, Some(text)) => {
                let mut vs = db.embed(&[&text]).await.map_err(|e| match e {
                    crate::Error::Validation(_) => ApiError::validation("text", e.to_string()),
                    other => other.into(),
                })?;
                vs.pop()
                    .ok_or_else(|| ApiError::validation("text", "the embedder returned nothing"))
            }
            (Some(_), Some(_)) => Err(ApiError::validation(
                "vector",
                "give exactly one of `vector` and `text`, not both",
            )),
            (None, None) => Err(ApiError::validation(
                "vector",
                "give exactly one of `vector` and `text`",
            )),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SearchBody {
    #[serde(flatten)]
    query: TextOrVector,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    filter: Option<SearchFilterJson>,
    #[serde(default)]
    weights: Option<RecallWeightsJson>,
}

#[derive(Serialize)]
pub(crate) struct Hit {
    similarity: f32,
    score: f32,
    experience: ExperienceJson,
}

pub(crate) async fn experiences(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<Embedding>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Answer<Json<Vec<Hit>>> {
    let vector = body.query.vector(&state.db).await?;
    let options = SearchOptions {
        k: body.k,
        filter: body.filter.map_or_else(SearchFilter::default, Into::into),
        weights: body.weights.map(Into::into),
    };
    let hits = state.db.search(cid, &vector, options).await?;
    Ok(Json(
        hits.into_iter()
            .map(|h| Hit {
                similarity: h.similarity,
                score: h.score,
                experience: ExperienceJson::new(h.experience, q.include_embedding),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct InsightSearchBody {
    #[serde(flatten)]
    query: TextOrVector,
    #[serde(default = "default_k")]
    k: usize,
}

#[derive(Serialize)]
pub(crate) struct InsightHit {
    insight: InsightJson,
    similarity: f32,
}

pub(crate) async fn insights(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<InsightSearchBody>,
) -> Answer<Json<Vec<InsightHit>>> {
    let vector = body.query.vector(&state.db).await?;
    let hits = state.db.get_insights(cid, &vector, body.k).await?;
    Ok(Json(
        hits.into_iter()
            .map(|(insight, similarity)| InsightHit {
                insight: InsightJson::new(insight, false),
                similarity,
            })
            .collect(),
    ))
}
