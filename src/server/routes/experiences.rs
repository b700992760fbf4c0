//! Experiences: record (one or a batch), list, read, update, archive,
//! reinforce, energy, delete.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{default_limit, Cid, Created, Embedding, Xid};
use crate::server::extract::{JsonBody, Path, Query};
use crate::server::{ApiError, Failures, Shared};
use crate::wire::{ExperienceJson, ExperienceUpdateJson, NewExperienceJson};
use crate::{CollectiveId, ExperienceId, NotFoundError};

type Answer<T> = Result<T, ApiError>;

fn shaped(xs: Vec<crate::Experience>, embedding: bool) -> Json<Vec<ExperienceJson>> {
    Json(
        xs.into_iter()
            .map(|x| ExperienceJson::new(x, embedding))
            .collect(),
    )
}

/// Records one experience; without `embedding` the server's embedder
/// embeds `content`.
#[utoipa::path(post, operation_id = "record_experience", path = "/v1/collectives/{cid}/experiences", tag = "experiences",
    params(Cid), request_body = NewExperienceJson,
    responses((status = 201, body = Created<ExperienceId>), Failures))]
pub(crate) async fn record(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<NewExperienceJson>,
) -> Answer<(StatusCode, Json<Created<ExperienceId>>)> {
    let id = state.db.record_experience(body.into_new(cid)).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Batch {
    #[schema(max_items = 10000)]
    experiences: Vec<NewExperienceJson>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ids {
    ids: Vec<ExperienceId>,
}

/// Records many experiences, all or nothing; ids in the order given.
#[utoipa::path(post, operation_id = "record_experiences", path = "/v1/collectives/{cid}/experiences/batch", tag = "experiences",
    params(Cid), request_body = Batch, responses((status = 201, body = Ids), Failures))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Most experiences to return (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
    /// Experiences to skip (default 0).
    #[serde(default)]
    offset: usize,
    /// Include each experience's embedding.
    #[serde(default)]
    include_embedding: bool,
}

/// A collective's experiences, oldest first.
#[utoipa::path(get, operation_id = "list_experiences", path = "/v1/collectives/{cid}/experiences", tag = "experiences",
    params(Cid, ListQuery), responses((status = 200, body = Vec<ExperienceJson>), Failures))]
pub(crate) async fn list(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<ListQuery>,
) -> Answer<Json<Vec<ExperienceJson>>> {
    let xs = state.db.list_experiences(cid, q.limit, q.offset).await?;
    Ok(shaped(xs, q.include_embedding))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecentQuery {
    /// Most experiences to return (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
    /// Include each experience's embedding.
    #[serde(default)]
    include_embedding: bool,
}

/// A collective's experiences, newest first.
#[utoipa::path(get, operation_id = "recent_experiences", path = "/v1/collectives/{cid}/experiences/recent", tag = "experiences",
    params(Cid, RecentQuery), responses((status = 200, body = Vec<ExperienceJson>), Failures))]
pub(crate) async fn recent(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<RecentQuery>,
) -> Answer<Json<Vec<ExperienceJson>>> {
    let xs = state.db.get_recent_experiences(cid, q.limit).await?;
    Ok(shaped(xs, q.include_embedding))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColdQuery {
    /// Energy threshold: experiences below it are listed.
    below: f32,
    /// Most experiences to return (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
}

/// An experience and its energy.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Cold {
    id: ExperienceId,
    energy: f32,
}

/// Experiences whose energy is below a threshold, coldest first.
#[utoipa::path(get, operation_id = "cold_experiences", path = "/v1/collectives/{cid}/experiences/cold", tag = "experiences",
    params(Cid, ColdQuery), responses((status = 200, body = Vec<Cold>), Failures))]
pub(crate) async fn cold(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(q): Query<ColdQuery>,
) -> Answer<Json<Vec<Cold>>> {
    let cold = state
        .db
        .list_cold_experiences(cid, q.below, q.limit)
        .await?;
    Ok(Json(
        cold.into_iter()
            .map(|(id, energy)| Cold { id, energy })
            .collect(),
    ))
}

/// One experience.
#[utoipa::path(get, operation_id = "get_experience", path = "/v1/experiences/{id}", tag = "experiences",
    params(Xid, Embedding), responses((status = 200, body = ExperienceJson), Failures))]
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

/// Changes the fields given.
#[utoipa::path(patch, operation_id = "update_experience", path = "/v1/experiences/{id}", tag = "experiences", params(Xid),
    request_body = ExperienceUpdateJson,
    responses((status = 204, description = "updated"), Failures))]
pub(crate) async fn update(
    state: Shared,
    Path(id): Path<ExperienceId>,
    JsonBody(body): JsonBody<ExperienceUpdateJson>,
) -> Answer<StatusCode> {
    state.db.update_experience(id, body.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an experience and its relations.
#[utoipa::path(delete, operation_id = "delete_experience", path = "/v1/experiences/{id}", tag = "experiences", params(Xid),
    responses((status = 204, description = "deleted"), Failures))]
pub(crate) async fn delete(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.delete_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Archives an experience: kept, but out of searches by default.
#[utoipa::path(post, operation_id = "archive_experience", path = "/v1/experiences/{id}/archive", tag = "experiences", params(Xid),
    responses((status = 204, description = "archived"), Failures))]
pub(crate) async fn archive(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.archive_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings an archived experience back.
#[utoipa::path(post, operation_id = "unarchive_experience", path = "/v1/experiences/{id}/unarchive", tag = "experiences", params(Xid),
    responses((status = 204, description = "unarchived"), Failures))]
pub(crate) async fn unarchive(state: Shared, Path(id): Path<ExperienceId>) -> Answer<StatusCode> {
    state.db.unarchive_experience(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"applications": n}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Applications {
    applications: u32,
}

/// Counts one more application of an experience.
#[utoipa::path(post, operation_id = "reinforce_experience", path = "/v1/experiences/{id}/reinforce", tag = "experiences", params(Xid),
    responses((status = 200, body = Applications), Failures))]
pub(crate) async fn reinforce(
    state: Shared,
    Path(id): Path<ExperienceId>,
) -> Answer<Json<Applications>> {
    let applications = state.db.reinforce_experience(id).await?;
    Ok(Json(Applications { applications }))
}

/// `{"energy": e}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Energy {
    energy: f32,
}

/// An experience's energy now (importance, reinforcement, age).
#[utoipa::path(get, operation_id = "experience_energy", path = "/v1/experiences/{id}/energy", tag = "experiences", params(Xid),
    responses((status = 200, body = Energy), Failures))]
pub(crate) async fn energy(state: Shared, Path(id): Path<ExperienceId>) -> Answer<Json<Energy>> {
    let energy = state.db.energy(id).await?;
    Ok(Json(Energy { energy }))
}
