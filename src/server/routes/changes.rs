//! The change log, polled.

use axum::Json;
use serde::{Deserialize, Serialize};

use super::default_limit;
use crate::server::extract::Query;
use crate::server::{ApiError, Failures, Shared};
use crate::wire::WatchEventJson;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Since {
    /// The sequence already seen (default 0: from the start).
    #[serde(default)]
    since: u64,
    /// Most events to return (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
}

/// Events after `since` and the position to poll from next.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Changes {
    events: Vec<WatchEventJson>,
    next: u64,
}

/// The change log after a sequence, every collective.
#[utoipa::path(get, operation_id = "poll_changes", path = "/v1/changes", tag = "changes", params(Since),
    responses((status = 200, body = Changes), Failures))]
pub(crate) async fn poll(state: Shared, Query(q): Query<Since>) -> Result<Json<Changes>, ApiError> {
    let (events, next) = state.db.poll_changes_batch(q.since, q.limit).await?;
    Ok(Json(Changes {
        events: events.into_iter().map(Into::into).collect(),
        next,
    }))
}
