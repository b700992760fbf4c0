//! The change log, polled.

use axum::Json;
use serde::{Deserialize, Serialize};

use super::default_limit;
use crate::server::extract::Query;
use crate::server::wire::WatchEventJson;
use crate::server::{ApiError, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Since {
    #[serde(default)]
    since: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

#[derive(Serialize)]
pub(crate) struct Changes {
    events: Vec<WatchEventJson>,
    next: u64,
}

pub(crate) async fn poll(state: Shared, Query(q): Query<Since>) -> Result<Json<Changes>, ApiError> {
    let (events, next) = state.db.poll_changes_batch(q.since, q.limit).await?;
    Ok(Json(Changes {
        events: events.into_iter().map(Into::into).collect(),
        next,
    }))
}
