//! Health, server info and collectives.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Created;
use crate::server::extract::{JsonBody, Path, Query};
use crate::server::wire::CollectiveJson;
use crate::server::{ApiError, Shared};
use crate::{CollectiveId, CollectiveStats};

type Answer<T> = Result<T, ApiError>;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn info(state: Shared) -> Answer<Json<Value>> {
    let db = &state.db;
    let meta = db.metadata();
    let embedder = state
        .options
        .embedder
        .as_ref()
        .map(|(model, dimension)| json!({"model": model, "dimension": dimension}));
    Ok(Json(json!({
        "instance_id": db.instance_id(),
        "schema_version": meta.schema_version,
        "embedding_dimension": meta.embedding_dimension,
        "embedder": embedder,
        "sequence": db.get_current_sequence().await?,
    })))
}

#[derive(Deserialize)]
pub(crate) struct NewCollective {
    name: String,
    #[serde(default)]
    owner_id: Option<String>,
}

pub(crate) async fn create(
    state: Shared,
    JsonBody(body): JsonBody<NewCollective>,
) -> Answer<(StatusCode, Json<Created<CollectiveId>>)> {
    let id = match &body.owner_id {
        Some(owner) => {
            state
                .db
                .create_collective_with_owner(&body.name, owner)
                .await?
        }
        None => state.db.create_collective(&body.name).await?,
    };
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owner {
    #[serde(default)]
    owner_id: Option<String>,
}

pub(crate) async fn list(
    state: Shared,
    Query(q): Query<Owner>,
) -> Answer<Json<Vec<CollectiveJson>>> {
    let all = match &q.owner_id {
        Some(owner) => state.db.list_collectives_by_owner(owner).await?,
        None => state.db.list_collectives().await?,
    };
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

pub(crate) async fn get(
    state: Shared,
    Path(cid): Path<CollectiveId>,
) -> Answer<Json<CollectiveJson>> {
    match state.db.get_collective(cid).await? {
        Some(c) => Ok(Json(c.into())),
        None => Err(crate::Error::from(crate::NotFoundError::Collective(cid)).into()),
    }
}

pub(crate) async fn delete(state: Shared, Path(cid): Path<CollectiveId>) -> Answer<StatusCode> {
    state.db.delete_collective(cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `CollectiveStats`, timestamps as integers, absent ones left out.
#[derive(Serialize)]
pub(crate) struct StatsJson {
    experience_count: u64,
    archived_count: u64,
    insight_count: u64,
    relation_count: u64,
    storage_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_experience: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    newest_experience: Option<i64>,
}

impl From<CollectiveStats> for StatsJson {
    fn from(s: CollectiveStats) -> Self {
        StatsJson {
            experience_count: s.experience_count,
            archived_count: s.archived_count,
            insight_count: s.insight_count,
            relation_count: s.relation_count,
            storage_bytes: s.storage_bytes,
            oldest_experience: s.oldest_experience.map(|t| t.0),
            newest_experience: s.newest_experience.map(|t| t.0),
        }
    }
}

pub(crate) async fn stats(state: Shared, Path(cid): Path<CollectiveId>) -> Answer<Json<StatsJson>> {
    Ok(Json(state.db.get_collective_stats(cid).await?.into()))
}
