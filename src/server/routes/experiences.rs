//! Experiences: record (one or a batch), list, read, update, archive,
//! reinforce, energy, delete.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{default_limit, Created, Embedding};
use crate::server::extract::{JsonBody, Path, Query};
use crate::server::wire::{ExperienceJson, ExperienceUpdateJson, NewExperienceJson};
use crate::server::{ApiError, Shared};
use crate::{CollectiveId, ExperienceId, NotFoundError};

type Answer<T> = Result<T, ApiError>;

fn shaped(xs: Vec<crate::Experience>, embedding: bool) -> Json<Vec<ExperienceJson>> {
    Json(
        xs.into_iter()
            .map(|x| ExperienceJson::new(x, embedding))
            .collect(),
    )
}

pub(crate) async fn record(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<NewExperienceJson>,
) -> Answer<(StatusCode, Json<Created<ExperienceId>>)> {
    let id = state.db.record_experience(body.into_new(cid)).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Deserialize)]
pub(crate) struct Batch {
    experiences: Vec<NewExperienceJson>,
}

#[derive(Serialize)]
pub(crate) struct Ids {
    ids: Vec<ExperienceId>,
}

pub(crate) async fn record_batch(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<Batch>,
) -> Answer<(StatusCode, Json<Ids>)> {
    let news = body
        .experiences
        .into_iter()
        .map(|x| x.into_new(cid))
        .collect();
    let ids = state.db.record_experiences(news).await?;
    Ok((StatusCode::CREATED, Json(Ids { ids })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    include_embedding: bool,
}

pub(crate) async fn list(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<ListQuery>,
) -> Answer<Json<Vec<ExperienceJson>>> {
    let xs = state.db.list_experiences(cid, q.limit, q.offset).await?;
    Ok(shaped(xs, q.include_embedding))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecentQuery {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    include_embedding: bool,
}

pub(crate) async fn recent(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<RecentQuery>,
) -> Answer<Json<Vec<ExperienceJson>>> {
    let xs = state.db.get_recent_experiences(cid, q.limit).await?;
    Ok(shaped(xs, q.include_embedding))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColdQuery {
    below: f32,
    #[serde(default = "default_limit")]
    limit: usize,
}

pub(crate) async fn cold(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<ColdQuery>,
) -> Answer<Json<Vec<Value>>> {
    let cold = state
        .db
        .list_cold_experiences(cid, q.below, q.limit)
        .await?;
    Ok(Json(
        cold.into_iter()
            .map(|(id, energy)| json!({"id": id, "energy": energy}))
            .collect(),
    ))
}

pub(crate) async fn get(
    state: Shared,
    Path(id): Path<ExperienceId>,
    Query(q): Query<Embedding>,
) -> Answer<Json<ExperienceJson>> {
    match state.db.get_experience(id).await? {
        Some(x) => Ok(Json(ExperienceJson::new(x, q.include_embedding))),
        None => Err(crate::Error::from(NotFoundError::Experience(id)).into()),
    }
}

pub(crate) async fn update(
    state: Shared,
    Path(id): Path<ExperienceId>,
    JsonBody(body): JsonBody<ExperienceUpdateJson>,
) -> Answer<StatusCode> {
    state.db.update_experience(id, body.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.delete_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn archive(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.archive_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unarchive(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.unarchive_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn reinforce(state: Shared, Path(id): Path<ExperienceId>) -> Answer<Json<Value>> {
    let applications = state.db.reinforce_experience(id).await?;
    Ok(Json(json!({ "applications": applications })))
}

pub(crate) async fn energy(state: Shared, Path(id): Path<ExperienceId>) -> Answer<Json<Value>> {
    let energy = state.db.energy(id).await?;
    Ok(Json(json!({ "energy": energy })))
}
