//! `GET /metrics`: Prometheus text. Per route: request counts by status and
//! a latency histogram; requests in flight; engine figures read at scrape
//! time (collectives, experiences, change-log position, vectors waiting in
//! index buffers, engine calls in flight, writes per group commit).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, Shared};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Route {
    by_status: BTreeMap<u16, u64>,
    /// Cumulative counts per bucket of [`BUCKETS`], then the total.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The server's request figures.
#[derive(Default)]
pub(crate) struct Metrics {
    routes: Mutex<BTreeMap<(String, String), Route>>,
    pub(crate) in_flight: AtomicI64,
}

impl Metrics {
    /// Counts one finished request.
    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let r = routes
            .entry((route.to_string(), method.to_string()))
            .or_default();
        *r.by_status.entry(status).or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in r.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        r.count += 1;
        r.sum_seconds += seconds;
    }

    fn render_requests(&self, out: &mut String) {
        let Ok(routes) = self.routes.lock() else {
            return;
        };
        out.push_str("# HELP pulsedb_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE pulsedb_http_requests_total counter\n");
        for ((route, method), r) in routes.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "pulsedb_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP pulsedb_http_request_duration_seconds Time to answer.\n");
        out.push_str("# TYPE pulsedb_http_request_duration_seconds histogram\n");
        for ((route, method), r) in routes.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\"");
            for (n, bound) in r.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "pulsedb_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "pulsedb_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                r.count
            );
            let _ = writeln!(
                out,
                "pulsedb_http_request_duration_seconds_sum{{{labels}}} {}",
                r.sum_seconds
            );
            let _ = writeln!(
                out,
                "pulsedb_http_request_duration_seconds_count{{{labels}}} {}",
                r.count
            );
        }
    }
}

/// Requests in the engine and its group commits: how many writes each
/// commit gathered, as a histogram.
fn render_engine(out: &mut String, e: &crate::EngineStats) {
    gauge(
        out,
        "pulsedb_engine_in_flight",
        "Engine calls admitted and not yet finished.",
        e.in_flight,
    );
    out.push_str("# HELP pulsedb_commit_writes Writes per group commit.\n");
    out.push_str("# TYPE pulsedb_commit_writes histogram\n");
    let mut cumulative = 0;
    for (bound, n) in &e.commit_sizes {
        cumulative += n;
        if *bound == u64::MAX {
            let _ = writeln!(
                out,
                "pulsedb_commit_writes_bucket{{le=\"+Inf\"}} {cumulative}"
            );
        } else {
            let _ = writeln!(
                out,
                "pulsedb_commit_writes_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
    }
    let _ = writeln!(out, "pulsedb_commit_writes_sum {}", e.committed_writes);
    let _ = writeln!(out, "pulsedb_commit_writes_count {}", e.commits);
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Prometheus text: requests and latency per route, engine figures.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "server",
    responses((status = 200, content_type = "text/plain", body = String,
        description = "Prometheus text exposition format 0.0.4"), super::Failures))]
pub(crate) async fn metrics(state: Shared) -> Result<impl IntoResponse, ApiError> {
    let db = &state.db;
    let collectives = db.list_collectives().await?;
    let (mut experiences, mut archived, mut staged, mut tombstones) = (0, 0, 0, 0);
    for c in &collectives {
        let s = db.get_collective_stats(c.id).await?;
        experiences += s.experience_count;
        archived += s.archived_count;
        let index = db.index_stats(c.id).await?;
        staged += index.staged;
        tombstones += index.tombstones;
    }
    let mut out = String::new();
    state.metrics.render_requests(&mut out);
    gauge(
        &mut out,
        "pulsedb_http_requests_in_flight",
        "HTTP requests being answered.",
        state.metrics.in_flight.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "pulsedb_collectives",
        "Collectives.",
        collectives.len(),
    );
    gauge(
        &mut out,
        "pulsedb_experiences",
        "Experiences, archived included.",
        experiences,
    );
    gauge(
        &mut out,
        "pulsedb_experiences_archived",
        "Archived experiences.",
        archived,
    );
    gauge(
        &mut out,
        "pulsedb_change_log_sequence",
        "Last change-log sequence.",
        db.get_current_sequence().await?,
    );
    gauge(
        &mut out,
        "pulsedb_index_buffered_vectors",
        "Vectors in index write buffers, not yet in a graph.",
        staged,
    );
    gauge(
        &mut out,
        "pulsedb_index_tombstones",
        "Deleted vectors still in a graph, awaiting its rebuild.",
        tombstones,
    );
    render_engine(&mut out, &db.engine_stats());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
