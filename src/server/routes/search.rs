//! Search by vector or by text, for experiences and insights.

use axum::Json;
use serde::{Deserialize, Serialize};

use crate::server::extract::{JsonBody, Path, Query};
use crate::server::{ApiError, Failures, Shared};
use crate::wire::{yes, ContextJson, Hit, InsightJson, RecallWeightsJson, SearchFilterJson};
use crate::{CollectiveId, ContextRequest, PulseHandle, SearchFilter, SearchOptions};

use super::{Cid, Embedding};

type Answer<T> = Result<T, ApiError>;

/// The query of a search: exactly one of `vector` and `text`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct TextOrVector {
    /// The query vector (the collective's dimension).
    #[serde(default)]
    vector: Option<Vec<f32>>,
    /// A text query, embedded by the server's embedder.
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

/// A query vector of the wrong dimension is reported against the
/// request's own field (the library names `embedding`).
fn query_error(e: crate::Error, field: &str) -> ApiError {
    match e {
        crate::Error::Validation(crate::ValidationError::DimensionMismatch { .. }) => {
            ApiError::validation(field, e.to_string())
        }
        other => other.into(),
    }
}

/// A search: exactly one of `vector` and `text`, `k` defaults to 10.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SearchBody {
    #[serde(flatten)]
    query: TextOrVector,
    #[serde(default = "ten")]
    #[schema(default = 10, minimum = 1, maximum = 1000)]
    k: usize,
    #[serde(default)]
    filter: Option<SearchFilterJson>,
    #[serde(default)]
    weights: Option<RecallWeightsJson>,
}

/// Searches a collective's experiences by vector or text, with filters;
/// best first.
#[utoipa::path(post, operation_id = "search_experiences", path = "/v1/collectives/{cid}/search", tag = "search",
    params(Cid, Embedding), request_body = SearchBody,
    responses((status = 200, body = Vec<Hit>), Failures))]
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
    let hits = state
        .db
        .search(cid, &vector, options)
        .await
        .map_err(|e| query_error(e, "vector"))?;
    Ok(Json(
        hits.into_iter()
            .map(|h| Hit::new(h, q.include_embedding))
            .collect(),
    ))
}

/// An insight search: exactly one of `vector` and `text`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct InsightSearchBody {
    #[serde(flatten)]
    query: TextOrVector,
    #[serde(default = "ten")]
    #[schema(default = 10, minimum = 1, maximum = 1000)]
    k: usize,
}

/// An insight search hit.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InsightHit {
    insight: InsightJson,
    similarity: f32,
}

/// Searches a collective's insights; best first.
#[utoipa::path(post, operation_id = "search_insights", path = "/v1/collectives/{cid}/insights/search", tag = "search",
    params(Cid), request_body = InsightSearchBody,
    responses((status = 200, body = Vec<InsightHit>), Failures))]
pub(crate) async fn insights(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<InsightSearchBody>,
) -> Answer<Json<Vec<InsightHit>>> {
    let vector = body.query.vector(&state.db).await?;
    let hits = state
        .db
        .get_insights(cid, &vector, body.k)
        .await
        .map_err(|e| query_error(e, "vector"))?;
    Ok(Json(
        hits.into_iter()
            .map(|(insight, similarity)| InsightHit {
                insight: InsightJson::new(insight, false),
                similarity,
            })
            .collect(),
    ))
}

fn twenty() -> usize {
    20
}

/// `ContextRequest` without `collective_id`; `query_embedding` or `text`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ContextBody {
    #[serde(default)]
    query_embedding: Option<Vec<f32>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default = "twenty")]
    #[schema(default = 20, minimum = 1, maximum = 1000)]
    max_similar: usize,
    #[serde(default = "ten")]
    #[schema(default = 10, minimum = 1, maximum = 1000)]
    max_recent: usize,
    #[serde(default = "yes")]
    include_insights: bool,
    #[serde(default = "yes")]
    include_relations: bool,
    #[serde(default = "yes")]
    include_active_agents: bool,
    #[serde(default)]
    filter: Option<SearchFilterJson>,
    #[serde(default)]
    recall_weights: Option<RecallWeightsJson>,
}

fn ten() -> usize {
    10
}

/// What an agent should know before a task: similar and recent
/// experiences, insights, relations and active agents.
#[utoipa::path(post, operation_id = "context", path = "/v1/collectives/{cid}/context", tag = "search",
    params(Cid, Embedding), request_body = ContextBody,
    responses((status = 200, body = ContextJson), Failures))]
pub(crate) async fn context(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<Embedding>,
    JsonBody(body): JsonBody<ContextBody>,
) -> Answer<Json<ContextJson>> {
    let query = TextOrVector {
        vector: body.query_embedding,
        text: body.text,
    };
    let request = ContextRequest {
        collective_id: cid,
        query_embedding: query.vector(&state.db).await?,
        max_similar: body.max_similar,
        max_recent: body.max_recent,
        include_insights: body.include_insights,
        include_relations: body.include_relations,
        include_active_agents: body.include_active_agents,
        filter: body.filter.map_or_else(SearchFilter::default, Into::into),
        recall_weights: body.recall_weights.map(Into::into),
    };
    let found = state
        .db
        .get_context_candidates(request)
        .await
        .map_err(|e| query_error(e, "query_embedding"))?;
    Ok(Json(ContextJson::new(found, q.include_embedding)))
}
