//! `GET /openapi.json`: the OpenAPI 3 document of every route, generated
//! from the handlers' `#[utoipa::path]` attributes and the wire types.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::routes::{changes, collectives, experiences, knowledge, search, watch};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PulseDB",
        description = "Collective memory for AI agent swarms: experiences, search, \
                       relations, insights, activity and changes over HTTP/JSON."
    ),
    paths(
        collectives::healthz,
        collectives::info,
        collectives::create,
        collectives::list,
        collectives::get,
        collectives::delete,
        collectives::stats,
        experiences::record,
        experiences::record_batch,
        experiences::list,
        experiences::recent,
        experiences::cold,
        experiences::get,
        experiences::update,
        experiences::delete,
        experiences::archive,
        experiences::unarchive,
        experiences::reinforce,
        experiences::energy,
        knowledge::related,
        search::experiences,
        search::context,
        knowledge::store_relation,
        knowledge::get_relation,
        knowledge::delete_relation,
        knowledge::list_relations,
        knowledge::store_insight,
        knowledge::get_insight,
        knowledge::delete_insight,
        knowledge::list_insights,
        search::insights,
        knowledge::put_agent,
        knowledge::end_agent,
        knowledge::agents,
        changes::poll,
        watch::watch,
        super::metrics::metrics,
        openapi,
    ),
    components(schemas(super::error::Body)),
    modifiers(&BearerToken),
    security(("token" = []))
)]
struct ApiDoc;

/// Declares the bearer token every route but `/healthz` needs.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "server",
    responses((status = 200, body = Object, description = "the OpenAPI 3 document"),
        super::Failures))]
pub(crate) async fn openapi() -> Json<Document> {
    Json(document())
}

/// The OpenAPI document of the HTTP API.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
