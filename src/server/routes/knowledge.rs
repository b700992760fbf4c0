//! Relations, insights and agents' activity.

use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{Agent, Cid, Created, Embedding, Iid, Page, Rid, Xid};
use crate::server::extract::{JsonBody, Path, Query};
use crate::server::{ApiError, Failures, Shared};
use crate::wire::{
    ActivityJson, DirectionJson, ExperienceJson, InsightJson, NewInsightJson, Related,
    RelationJson, RelationTypeJson,
};
use crate::{
    CollectiveId, Error, ExperienceId, InsightId, NewActivity, NewExperienceRelation,
    NotFoundError, RelationId,
};

type Answer<T> = Result<T, ApiError>;

fn one_strength() -> f32 {
    1.0
}

/// `NewExperienceRelation`: `strength` defaults to 1.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRelationJson {
    source_id: ExperienceId,
    target_id: ExperienceId,
    relation_type: RelationTypeJson,
    #[serde(default = "one_strength")]
    #[schema(minimum = 0.0, maximum = 1.0, default = 1.0)]
    strength: f32,
    /// ≤ 10 240 bytes.
    #[serde(default)]
    #[schema(max_length = 10240)]
    metadata: Option<String>,
}

/// Links two experiences of one collective.
#[utoipa::path(post, operation_id = "store_relation", path = "/v1/relations", tag = "relations", request_body = NewRelationJson,
    responses((status = 201, body = Created<RelationId>), Failures))]
pub(crate) async fn store_relation(
    state: Shared,
    JsonBody(r): JsonBody<NewRelationJson>,
) -> Answer<(StatusCode, Json<Created<RelationId>>)> {
    let id = state
        .db
        .store_relation(NewExperienceRelation {
            source_id: r.source_id,
            target_id: r.target_id,
            relation_type: r.relation_type.into(),
            strength: r.strength,
            metadata: r.metadata,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// One relation.
#[utoipa::path(get, operation_id = "get_relation", path = "/v1/relations/{id}", tag = "relations", params(Rid),
    responses((status = 200, body = RelationJson), Failures))]
pub(crate) async fn get_relation(
    state: Shared,
    Path(id): Path<RelationId>,
) -> Answer<Json<RelationJson>> {
    match state.db.get_relation(id).await? {
        Some(r) => Ok(Json(r.into())),
        None => Err(Error::from(NotFoundError::Relation(id)).into()),
    }
}

/// Deletes a relation.
#[utoipa::path(delete, operation_id = "delete_relation", path = "/v1/relations/{id}", tag = "relations", params(Rid),
    responses((status = 204, description = "deleted"), Failures))]
pub(crate) async fn delete_relation(
    state: Shared,
    Path(id): Path<RelationId>,
) -> Answer<StatusCode> {
    state.db.delete_relation(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A collective's relations, oldest first.
#[utoipa::path(get, operation_id = "list_relations", path = "/v1/collectives/{cid}/relations", tag = "relations",
    params(Cid, Page), responses((status = 200, body = Vec<RelationJson>), Failures))]
pub(crate) async fn list_relations(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(p): Query<Page>,
) -> Answer<Json<Vec<RelationJson>>> {
    let rs = state.db.list_relations(cid, p.limit, p.offset).await?;
    Ok(Json(rs.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelatedQuery {
    /// Which relations to follow (default `both`).
    #[serde(default)]
    #[param(inline)]
    direction: Option<DirectionJson>,
    /// Only relations of this type.
    #[serde(default, rename = "type")]
    #[param(inline)]
    relation_type: Option<RelationTypeJson>,
    /// Include each experience's embedding.
    #[serde(default)]
    include_embedding: bool,
}

/// The experiences related to one.
#[utoipa::path(get, operation_id = "related_experiences", path = "/v1/experiences/{id}/related", tag = "relations",
    params(Xid, RelatedQuery), responses((status = 200, body = Vec<Related>), Failures))]
pub(crate) async fn related(
    state: Shared,
    Path(id): Path<ExperienceId>,
    Query(q): Query<RelatedQuery>,
) -> Answer<Json<Vec<Related>>> {
    let direction = q.direction.unwrap_or(DirectionJson::Both).into();
    let pairs = state
        .db
        .get_related_experiences_filtered(id, direction, q.relation_type.map(Into::into))
        .await?;
    Ok(Json(
        pairs
            .into_iter()
            .map(|(x, r)| Related {
                experience: ExperienceJson::new(x, q.include_embedding),
                relation: r.into(),
            })
            .collect(),
    ))
}

/// Stores an insight; without `embedding` the embedder embeds `content`.
#[utoipa::path(post, operation_id = "store_insight", path = "/v1/collectives/{cid}/insights", tag = "insights", params(Cid),
    request_body = NewInsightJson,
    responses((status = 201, body = Created<InsightId>), Failures))]
pub(crate) async fn store_insight(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    JsonBody(body): JsonBody<NewInsightJson>,
) -> Answer<(StatusCode, Json<Created<InsightId>>)> {
    let id = state.db.store_insight(body.into_new(cid)).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// One insight.
#[utoipa::path(get, operation_id = "get_insight", path = "/v1/insights/{id}", tag = "insights", params(Iid, Embedding),
    responses((status = 200, body = InsightJson), Failures))]
pub(crate) async fn get_insight(
    state: Shared,
    Path(id): Path<InsightId>,
    Query(q): Query<Embedding>,
) -> Answer<Json<InsightJson>> {
    match state.db.get_insight(id).await? {
        Some(i) => Ok(Json(InsightJson::new(i, q.include_embedding))),
        None => Err(Error::from(NotFoundError::Insight(id)).into()),
    }
}

/// Deletes an insight.
#[utoipa::path(delete, operation_id = "delete_insight", path = "/v1/insights/{id}", tag = "insights", params(Iid),
    responses((status = 204, description = "deleted"), Failures))]
pub(crate) async fn delete_insight(state: Shared, Path(id): Path<InsightId>) -> Answer<StatusCode> {
    state.db.delete_insight(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A collective's insights, oldest first.
#[utoipa::path(get, operation_id = "list_insights", path = "/v1/collectives/{cid}/insights", tag = "insights",
    params(Cid, Page), responses((status = 200, body = Vec<InsightJson>), Failures))]
pub(crate) async fn list_insights(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    Query(p): Query<Page>,
) -> Answer<Json<Vec<InsightJson>>> {
    let is = state.db.list_insights(cid, p.limit, p.offset).await?;
    Ok(Json(
        is.into_iter().map(|i| InsightJson::new(i, false)).collect(),
    ))
}

/// An agent's announcement; `{}` is a heartbeat of a registered agent.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ActivityBody {
    #[serde(default)]
    #[schema(max_length = 1024)]
    current_task: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    context_summary: Option<String>,
}

/// An empty body for a registered agent is a heartbeat; anything else
/// registers (replacing task and summary).
#[utoipa::path(put, operation_id = "put_agent", path = "/v1/collectives/{cid}/agents/{agent_id}", tag = "agents",
    params(Agent), request_body = ActivityBody,
    responses((status = 204, description = "registered or heartbeat"), Failures))]
pub(crate) async fn put_agent(
    state: Shared,
    Path((cid, agent_id)): Path<(CollectiveId, String)>,
    JsonBody(body): JsonBody<ActivityBody>,
) -> Answer<StatusCode> {
    let db = &state.db;
    if body.current_task.is_none() && body.context_summary.is_none() {
        match db.update_heartbeat(&agent_id, cid).await {
            Err(Error::NotFound(NotFoundError::Activity { .. })) => {}
            other => {
                other?;
                return Ok(StatusCode::NO_CONTENT);
            }
        }
    }
    db.register_activity(NewActivity {
        agent_id,
        collective_id: cid,
        current_task: body.current_task,
        context_summary: body.context_summary,
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends an agent's activity.
#[utoipa::path(delete, operation_id = "end_agent", path = "/v1/collectives/{cid}/agents/{agent_id}", tag = "agents",
    params(Agent), responses((status = 204, description = "ended"), Failures))]
pub(crate) async fn end_agent(
    state: Shared,
    Path((cid, agent_id)): Path<(CollectiveId, String)>,
) -> Answer<StatusCode> {
    state.db.end_activity(&agent_id, cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The active agents, most recent first.
#[utoipa::path(get, operation_id = "active_agents", path = "/v1/collectives/{cid}/agents", tag = "agents", params(Cid),
    responses((status = 200, body = Vec<ActivityJson>), Failures))]
pub(crate) async fn agents(
    state: Shared,
    Path(cid): Path<CollectiveId>,
) -> Answer<Json<Vec<ActivityJson>>> {
    let active = state.db.get_active_agents(cid).await?;
    Ok(Json(active.into_iter().map(Into::into).collect()))
}
