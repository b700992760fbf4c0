//! `GET /v1/collectives/{cid}/watch`: the collective's changes as
//! server-sent events. Each event's `id` is its change-log sequence; a
//! `Last-Event-ID` resumes from the change log without a gap; a subscriber
//! whose buffer overflowed gets `event: missed` with the first sequence it
//! may have lost; the stream ends when the collective is deleted or the
//! server closes. Keep-alive comments every 15 s.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::server::extract::Path;
use crate::server::{ApiError, Failures, Shared};
use crate::wire::WatchEventJson;
use crate::{CollectiveId, PulseHandle, WatchEvent, WatchStream};

/// Events queued for one client before its feeder waits.
const CLIENT_BUFFER: usize = 64;
/// Change-log entries read per replay step.
const REPLAY_BATCH: usize = 1000;

/// The receiving end of a client's feed, as a stream.
pub(crate) struct Feed(mpsc::Receiver<Event>);

impl Stream for Feed {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a change-log sequence"))
}

fn event(e: WatchEvent) -> Event {
    let id = e.sequence.to_string();
    let json = serde_json::to_string(&WatchEventJson::from(e)).unwrap_or_default();
    Event::default().id(id).data(json)
}

/// A collective's changes as server-sent events: `id` is the change-log
/// sequence, `data` a `WatchEventJson`; `Last-Event-ID` resumes.
#[utoipa::path(get, operation_id = "watch_collective", path = "/v1/collectives/{cid}/watch", tag = "changes",
    params(super::Cid, ("Last-Event-ID" = Option<u64>, Header, description = "resume after this sequence")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "events until the collective is deleted or the server stops"), Failures))]
pub(crate) async fn watch(
    state: Shared,
    Path(cid): Path<CollectiveId>,
    headers: HeaderMap,
) -> Result<Sse<KeepAliveStream<Feed>>, ApiError> {
    let resume = last_event_id(&headers)?;
    // Subscribe before replaying: whatever commits meanwhile is in both,
    // and the sequence numbers tell the copies apart.
    let live = state.db.watch_experiences(cid).await?;
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let db = state.db.clone();
    let mut closing = state.closing.subscribe();
    tokio::spawn(async move {
        tokio::select! {
            _ = feed(db, cid, resume, live, tx) => {}
            _ = closing.wait_for(|closed| *closed) => {}
        }
    });
    Ok(Sse::new(Feed(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Replays the log after `resume` (when given), then forwards live events.
/// Returns when the client is gone, the collective deleted or the database
/// closed.
async fn feed(
    db: PulseHandle,
    cid: CollectiveId,
    resume: Option<u64>,
    mut live: WatchStream,
    tx: mpsc::Sender<Event>,
) {
    let mut sent = 0;
    if let Some(mut since) = resume {
        sent = since;
        loop {
            let Ok((events, next)) = db.poll_changes_batch(since, REPLAY_BATCH).await else {
                return;
            };
            let done = events.is_empty() || next == since;
            for e in events.into_iter().filter(|e| e.collective_id == cid) {
                sent = e.sequence;
                if tx.send(event(e)).await.is_err() {
                    return;
                }
            }
            since = next;
            if done {
                break;
            }
        }
    }
    let mut missed = live.missed();
    while let Some(e) = std::future::poll_fn(|cx| Pin::new(&mut live).poll_next(cx)).await {
        if live.missed() > missed {
            missed = live.missed();
            let note = serde_json::json!({ "first_sequence": sent + 1 }).to_string();
            if tx
                .send(Event::default().event("missed").data(note))
                .await
                .is_err()
            {
                return;
            }
        }
        if e.sequence <= sent {
            continue;
        }
        sent = e.sequence;
        if tx.send(event(e)).await.is_err() {
            return;
        }
    }
}
