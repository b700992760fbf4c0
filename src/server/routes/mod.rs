//! The routes of SERVER.md, by concern.

pub(crate) mod changes;
pub(crate) mod collectives;
pub(crate) mod experiences;
pub(crate) mod knowledge;
pub(crate) mod replication;
pub(crate) mod search;
pub(crate) mod watch;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::AppState;

/// `{"id": ...}`, the answer to a create.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Created<T: Serialize> {
    pub id: T,
}

/// `?limit=&offset=` (defaults 100 and 0).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// Most items to return (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: usize,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: usize,
}

/// `?include_embedding=true`.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Embedding {
    /// Include each record's embedding.
    #[serde(default)]
    pub include_embedding: bool,
}

/// The path parameters of the routes, for the OpenAPI document (the
/// handlers take the ids themselves).
#[allow(dead_code)]
mod params {
    use crate::{CollectiveId, ExperienceId, InsightId, RelationId};

    /// `{cid}`.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct Cid {
        /// The collective's id.
        #[param(inline)]
        cid: CollectiveId,
    }

    /// `{id}` of an experience.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct Xid {
        /// The experience's id.
        #[param(inline)]
        id: ExperienceId,
    }

    /// `{id}` of a relation.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct Rid {
        /// The relation's id.
        #[param(inline)]
        id: RelationId,
    }

    /// `{id}` of an insight.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct Iid {
        /// The insight's id.
        #[param(inline)]
        id: InsightId,
    }

    /// `{cid}` and `{agent_id}`.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct Agent {
        /// The collective's id.
        #[param(inline)]
        cid: CollectiveId,
        /// The agent's id (any non-empty string).
        agent_id: String,
    }
}

pub(crate) use params::{Agent, Cid, Iid, Rid, Xid};

pub(super) fn default_limit() -> usize {
    100
}

pub(super) fn routes() -> Router<Arc<AppState>> {
    use collectives as c;
    use experiences as x;
    use knowledge as k;
    Router::new()
        .route("/healthz", get(c::healthz))
        .route("/v1/info", get(c::info))
        .route("/v1/collectives", post(c::create).get(c::list))
        .route("/v1/collectives/{cid}", get(c::get).delete(c::delete))
        .route("/v1/collectives/{cid}/stats", get(c::stats))
        .route(
            "/v1/collectives/{cid}/experiences",
            post(x::record).get(x::list),
        )
        .route(
            "/v1/collectives/{cid}/experiences/batch",
            post(x::record_batch),
        )
        .route("/v1/collectives/{cid}/experiences/recent", get(x::recent))
        .route("/v1/collectives/{cid}/experiences/cold", get(x::cold))
        .route(
            "/v1/experiences/{id}",
            get(x::get).patch(x::update).delete(x::delete),
        )
        .route("/v1/experiences/{id}/archive", post(x::archive))
        .route("/v1/experiences/{id}/unarchive", post(x::unarchive))
        .route("/v1/experiences/{id}/reinforce", post(x::reinforce))
        .route("/v1/experiences/{id}/energy", get(x::energy))
        .route("/v1/experiences/{id}/related", get(k::related))
        .route("/v1/collectives/{cid}/search", post(search::experiences))
        .route("/v1/collectives/{cid}/context", post(search::context))
        .route("/v1/relations", post(k::store_relation))
        .route(
            "/v1/relations/{id}",
            get(k::get_relation).delete(k::delete_relation),
        )
        .route("/v1/collectives/{cid}/relations", get(k::list_relations))
        .route(
            "/v1/collectives/{cid}/insights",
            post(k::store_insight).get(k::list_insights),
        )
        .route(
            "/v1/insights/{id}",
            get(k::get_insight).delete(k::delete_insight),
        )
        .route(
            "/v1/collectives/{cid}/insights/search",
            post(search::insights),
        )
        .route(
            "/v1/collectives/{cid}/agents/{agent_id}",
            put(k::put_agent).delete(k::end_agent),
        )
        .route("/v1/collectives/{cid}/agents", get(k::agents))
        .route("/v1/changes", get(changes::poll))
        .route("/v1/collectives/{cid}/watch", get(watch::watch))
        .route("/v1/replication/changes", get(replication::changes))
        .route("/v1/replication/snapshot", get(replication::snapshot))
        .route("/v1/replication/status", get(replication::status))
}
