//! The routes of SERVER.md, by concern.

mod changes;
mod collectives;
mod experiences;
mod knowledge;
mod search;
mod watch;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::AppState;

/// `{"id": ...}`, the answer to a create.
#[derive(Serialize)]
pub(super) struct Created<T: Serialize> {
    pub id: T,
}

/// `?limit=&offset=` (defaults 100 and 0).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

/// `?include_embedding=true`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Embedding {
    #[serde(default)]
    pub include_embedding: bool,
}

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
}
