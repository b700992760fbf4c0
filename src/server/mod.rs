//! `pulsedb serve`: the engine behind HTTP/JSON (SERVER.md), on axum.
//!
//! Handlers are thin: they parse the wire shapes of [`wire`], call one
//! [`PulseHandle`] method and shape its answer. Everything a handler does
//! not do — auth, the body limit, tracing, JSON errors for unknown routes
//! and methods — is in the router's layers here.

mod error;
mod extract;
pub mod mcp;
mod metrics;
mod openapi;
mod routes;
pub use crate::wire;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tracing::Instrument;

pub(crate) use error::{ApiError, Failures};
pub use openapi::document as openapi_document;

use crate::PulseHandle;

/// Most pulling peers whose last recorded pull is remembered at once.
const MAX_TRACKED_PEERS: usize = 1024;

/// Default request body limit: 32 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Default bound on API requests answered at once; more answer 429.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// What the server was started with.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Bearer token every route but `/healthz` requires.
    pub token: Option<String>,
    /// Request body limit in bytes (0 = [`DEFAULT_BODY_LIMIT`]).
    pub body_limit: usize,
    /// The embedder's model id and dimension, for `/v1/info`.
    pub embedder: Option<(String, usize)>,
    /// `Host` values `/mcp` accepts besides `localhost`, `127.0.0.1` and
    /// `::1` (a guard against DNS rebinding): the names the server is
    /// reached by when it listens beyond loopback.
    pub mcp_hosts: Vec<String>,
    /// API requests and MCP messages answered at once (0 =
    /// [`DEFAULT_MAX_IN_FLIGHT`]); one more is answered `429 overloaded`
    /// with `Retry-After` at once, not queued. Watch streams do not count.
    pub max_in_flight: usize,
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) db: PulseHandle,
    pub(crate) options: ServerOptions,
    /// Set once the server stops: ends the watch streams, which would
    /// otherwise hold the graceful shutdown open forever.
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
    pub(crate) metrics: metrics::Metrics,
    /// Cancelled when the server stops: ends MCP sessions.
    pub(crate) mcp_stop: tokio_util::sync::CancellationToken,
    /// One permit per API request being answered.
    admission: Arc<tokio::sync::Semaphore>,
    /// When each pulling peer's position was last recorded.
    peer_pulls: std::sync::Mutex<std::collections::HashMap<crate::InstanceId, Instant>>,
}

impl AppState {
    fn new(db: PulseHandle, options: ServerOptions) -> Arc<AppState> {
        let admitted = match options.max_in_flight {
            0 => DEFAULT_MAX_IN_FLIGHT,
            n => n,
        };
        Arc::new(AppState {
            db,
            options,
            closing: tokio::sync::watch::channel(false).0,
            metrics: metrics::Metrics::default(),
            mcp_stop: tokio_util::sync::CancellationToken::new(),
            admission: Arc::new(tokio::sync::Semaphore::new(admitted)),
            peer_pulls: std::sync::Mutex::default(),
        })
    }

    /// Records how far a peer has pulled, at most once a second per peer
    /// (a position recorded late only holds compaction back a little
    /// longer), off the request's path.
    pub(crate) fn note_peer_pull(&self, peer: crate::InstanceId, position: u64) {
        let due = {
            let mut last = self
                .peer_pulls
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let due = last
                .get(&peer)
                .is_none_or(|at| now.duration_since(*at) >= std::time::Duration::from_secs(1));
            if due {
                // Bounded however many peer ids clients name: entries of
                // peers quiet for a second are only throttling state.
                if last.len() >= MAX_TRACKED_PEERS {
                    last.retain(|_, at| {
                        now.duration_since(*at) < std::time::Duration::from_secs(1)
                    });
                }
                if last.len() < MAX_TRACKED_PEERS {
                    last.insert(peer, now);
                }
            }
            due
        };
        if due {
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Err(error) = db.record_peer_pull(peer, position).await {
                    tracing::debug!(%error, %peer, "peer position not recorded");
                }
            });
        }
    }
}

pub(crate) type Shared = State<Arc<AppState>>;

/// The HTTP API over `db`.
pub fn router(db: PulseHandle, options: ServerOptions) -> Router {
    app(AppState::new(db, options))
}

fn app(state: Arc<AppState>) -> Router {
    let limit = match state.options.body_limit {
        0 => DEFAULT_BODY_LIMIT,
        n => n,
    };
    routes::routes()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .route("/openapi.json", axum::routing::get(openapi::openapi))
        .nest_service("/mcp", mcp_service(&state))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), trace))
        .with_state(state)
}

/// The MCP tools over streamable HTTP (JSON responses), one tool server
/// per session over the same handle.
fn mcp_service(
    state: &AppState,
) -> rmcp::transport::StreamableHttpService<
    mcp::PulseTools,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    let db = state.db.clone();
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(state.options.mcp_hosts.iter().cloned());
    let config = rmcp::transport::StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_allowed_hosts(hosts)
        .with_cancellation_token(state.mcp_stop.child_token());
    rmcp::transport::StreamableHttpService::new(
        move || Ok(mcp::PulseTools::new(db.clone())),
        Default::default(),
        config,
    )
}

/// Serves the API over `db` on `listener` until `shutdown` resolves: then
/// stops accepting, ends the watch streams, lets the requests in flight
/// finish and closes the database.
///
/// # Errors
/// The listener's I/O error, or the database's on close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: PulseHandle,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let state = AppState::new(db.clone(), options);
    let stop = {
        let state = state.clone();
        async move {
            shutdown.await;
            state.closing.send_replace(true);
            state.mcp_stop.cancel();
        }
    };
    // Answers go out at once, not held back to fill a segment.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(stop)
        .await?;
    db.close().await
}

/// Equal in time whatever the position of the first difference.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    diff == 0
}

async fn authorize(State(state): Shared, request: Request, next: Next) -> Response {
    let Some(token) = &state.options.token else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same_secret(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Bounds the API requests answered at once: one over the bound is
/// answered `429` at once (the client retries), so a burst never builds an
/// unbounded queue of waiting requests. MCP messages (`POST /mcp`) count
/// too; watch streams and MCP's event stream, which stay open, and the
/// operational routes do not.
async fn admit(State(state): Shared, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Streams and long polls stay open: they would hold permits idle.
    let long = path.ends_with("/watch")
        || path == "/v1/replication/changes"
        || path == "/v1/replication/snapshot";
    let api = path.starts_with("/v1/") && !long;
    let mcp = path == "/mcp" && request.method() == axum::http::Method::POST;
    if !api && !mcp {
        return next.run(request).await;
    }
    match state.admission.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::from(crate::Error::Overloaded).into_response(),
    }
}

/// One request in flight, counted until dropped (also when the client goes
/// away and the request's future is dropped).
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A span per request (method, route, status, latency), and the request
/// counted in the metrics.
async fn trace(State(state): Shared, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let span = tracing::info_span!("http", %method, %route, status = tracing::field::Empty);
    let started = Instant::now();
    let response = {
        let _counted = InFlight::enter(&state.metrics.in_flight);
        next.run(request).instrument(span.clone()).await
    };
    let status = response.status().as_u16();
    let latency = started.elapsed();
    span.record("status", status);
    tracing::debug!(parent: &span, latency_us = latency.as_micros() as u64, "answered");
    state
        .metrics
        .observe(method.as_str(), &route, status, latency);
    response
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"tokem"));
        assert!(!same_secret(b"tok", b"token"));
        assert!(!same_secret(b"token-and-more", b"token"));
        assert!(!same_secret(b"", b"token"));
    }
}
