//! The peer protocol of REPLICATION.md: what other nodes pull from this
//! one. Behind the token like every route; not in the OpenAPI document
//! (it is node-to-node, described in REPLICATION.md and docs/replication.md).
//!
//! - `GET /v1/replication/changes?since=&limit=&wait_ms=&peer=&protocol=`:
//!   a [`ChangePage`] (long poll); `410 changes_compacted` when `since` was
//!   compacted away.
//! - `GET /v1/replication/snapshot`: newline-delimited [`SnapshotLine`]s.
//! - `GET /v1/replication/status`: a [`ReplicationStatus`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_core::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::replication::{ChangePage, ReplicationStatus, SnapshotLine, PROTOCOL_VERSION};
use crate::server::extract::Query;
use crate::server::{ApiError, Shared};
use crate::{Error, InstanceId};

/// `?since=&limit=&wait_ms=&peer=&protocol=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// The position already applied (default 0: from the start).
    #[serde(default)]
    since: u64,
    /// Most entries (default 500, at most 1000; 0: only the node's id and
    /// head).
    #[serde(default = "default_batch")]
    limit: usize,
    /// Longest wait for a change, in ms (default 0, at most 30 000).
    #[serde(default)]
    wait_ms: u64,
    /// The pulling node: remembered with `since`, so the log is compacted
    /// only past what it has taken.
    peer: Option<InstanceId>,
    /// The protocol the puller speaks.
    protocol: Option<u32>,
}

fn default_batch() -> usize {
    500
}

/// One page of the change log for a peer.
pub(crate) async fn changes(
    state: Shared,
    Query(q): Query<PageQuery>,
) -> Result<Json<ChangePage>, ApiError> {
    if let Some(p) = q.protocol.filter(|p| *p != PROTOCOL_VERSION) {
        return Err(ApiError::validation(
            "protocol",
            format!("protocol {p} is not spoken here ({PROTOCOL_VERSION} is)"),
        ));
    }
    if q.limit > crate::api::MAX_REPLICATION_PAGE {
        return Err(ApiError::validation(
            "limit",
            format!("at most {}", crate::api::MAX_REPLICATION_PAGE),
        ));
    }
    if q.peer == Some(state.db.instance_id()) {
        return Err(ApiError::validation(
            "peer",
            "a node cannot pull from itself",
        ));
    }
    if let Some(peer) = q.peer {
        state.note_peer_pull(peer, q.since);
    }
    let wait = Duration::from_millis(q.wait_ms.min(30_000));
    let mut closing = state.closing.subscribe();
    let page = tokio::select! {
        page = state.db.replication_changes(q.since, q.limit, wait) => page,
        _ = closing.wait_for(|closing| *closing) => Err(Error::Closed),
    };
    match page {
        Ok(page) => Ok(Json(page)),
        Err(Error::ChangesCompacted { oldest }) => Err(ApiError {
            field: Some("since".into()),
            ..ApiError::new(
                StatusCode::GONE,
                "changes_compacted",
                format!(
                    "changes after {} were compacted (the oldest kept is {oldest}): copy GET /v1/replication/snapshot",
                    q.since
                ),
            )
        }),
        Err(e) => Err(e.into()),
    }
}

/// Lines queued for one client before the reader waits.
const SNAPSHOT_BUFFER: usize = 64;

/// The receiving end of a snapshot's lines, as a body stream.
struct Lines(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for Lines {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn line(l: &SnapshotLine) -> Result<Bytes, std::io::Error> {
    let mut bytes = serde_json::to_vec(l).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

/// The whole state, streamed: a header, every entity, the end with the
/// position it covers. An error midway cuts the stream (no end line).
pub(crate) async fn snapshot(state: Shared) -> Response {
    let db = state.db.clone();
    let (tx, rx) = mpsc::channel(SNAPSHOT_BUFFER);
    tokio::spawn(async move {
        let header = SnapshotLine::Header {
            protocol: PROTOCOL_VERSION,
            instance_id: db.instance_id(),
        };
        if tx.send(line(&header)).await.is_err() {
            return;
        }
        let (changes_tx, mut changes) = mpsc::channel(SNAPSHOT_BUFFER);
        let reading = {
            let db = db.clone();
            tokio::spawn(async move { db.replication_snapshot(changes_tx).await })
        };
        while let Some(change) = changes.recv().await {
            if tx.send(line(&SnapshotLine::Change(change))).await.is_err() {
                // The client went away: dropping `changes` stops the read.
                return;
            }
        }
        let end = match reading.await {
            Ok(Ok(position)) => line(&SnapshotLine::End { position }),
            Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let _ = tx.send(end).await;
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(Lines(rx)),
    )
        .into_response()
}

/// This node's replication: peers pulled from, peers pulling.
pub(crate) async fn status(state: Shared) -> Result<Json<ReplicationStatus>, ApiError> {
    Ok(Json(state.db.replication_status().await?))
}
