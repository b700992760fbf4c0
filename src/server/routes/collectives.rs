//! Health, server info and collectives.

use super::{Cid, Created};
use crate::server::extract::{JsonBody, Path, Query};
use crate::server::{ApiError, Failures, Shared};
use crate::wire::{CollectiveJson, StatsJson};
use crate::{CollectiveId, InstanceId};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

type Answer<T> = Result<T, ApiError>;

/// `{"status": "ok"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    status: &'static str,
}

/// Liveness; needs no token.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "server", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The embedder a server was started with.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EmbedderJson {
    model: String,
    dimension: usize,
}

/// What `/v1/info` answers; `embedder` is `null` without one.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InfoJson {
    instance_id: InstanceId,
    schema_version: u32,
    embedding_dimension: usize,
    embedder: Option<EmbedderJson>,
    /// The change log's last sequence.
    sequence: u64,
}

/// The database's identity, embedder and change-log position.
#[utoipa::path(get, operation_id = "info", path = "/v1/info", tag = "server",
    responses((status = 200, body = InfoJson), Failures))]
pub(crate) async fn info(state: Shared) -> Answer<Json<InfoJson>> {
    let db = &state.db;
    let meta = db.metadata();
    let embedder = state
        .options
        .embedder
        .as_ref()
        .map(|(model, dimension)| EmbedderJson {
            model: model.clone(),
            dimension: *dimension,
        });
    Ok(Json(InfoJson {
        instance_id: db.instance_id(),
        schema_version: meta.schema_version,
        embedding_dimension: meta.embedding_dimension,
        embedder,
        sequence: db.get_current_sequence().await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewCollective {
    /// 1 ..= 255 bytes, not only whitespace; not necessarily unique (by
    /// name, the oldest collective bearing it is meant).
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    #[serde(default)]
    owner_id: Option<String>,
}

/// Creates a collective (names need not be unique).
#[utoipa::path(post, operation_id = "create_collective", path = "/v1/collectives", tag = "collectives", request_body = NewCollective,
    responses((status = 201, body = Created<CollectiveId>), Failures))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owner {
    /// Only the collectives of this owner.
    #[serde(default)]
    owner_id: Option<String>,
}

/// Every collective, or an owner's.
#[utoipa::path(get, operation_id = "list_collectives", path = "/v1/collectives", tag = "collectives", params(Owner),
    responses((status = 200, body = Vec<CollectiveJson>), Failures))]
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

/// One collective.
#[utoipa::path(get, operation_id = "get_collective", path = "/v1/collectives/{cid}", tag = "collectives", params(Cid),
    responses((status = 200, body = CollectiveJson), Failures))]
pub(crate) async fn get(
    state: Shared,
    Path(cid): Path<CollectiveId>,
) -> Answer<Json<CollectiveJson>> {
    match state.db.get_collective(cid).await? {
        Some(c) => Ok(Json(c.into())),
        None => Err(state.db.collective_not_found(cid).into()),
    }
}

/// Deletes a collective and everything in it.
#[utoipa::path(delete, operation_id = "delete_collective", path = "/v1/collectives/{cid}", tag = "collectives", params(Cid),
    responses((status = 204, description = "deleted"), Failures))]
pub(crate) async fn delete(state: Shared, Path(cid): Path<CollectiveId>) -> Answer<StatusCode> {
    state.db.delete_collective(cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts and storage of a collective.
#[utoipa::path(get, operation_id = "collective_stats", path = "/v1/collectives/{cid}/stats", tag = "collectives", params(Cid),
    responses((status = 200, body = StatsJson), Failures))]
pub(crate) async fn stats(state: Shared, Path(cid): Path<CollectiveId>) -> Answer<Json<StatsJson>> {
    Ok(Json(state.db.get_collective_stats(cid).await?.into()))
}
