//! The replication phase (`--replication`, feature `bench-http`): nodes in
//! this process, each behind `pulsedb serve`'s router on a loopback port,
//! pulling from each other over HTTP:
//!
//! - `repl_lag_p50_ms` / `_p99_ms`: two nodes pulling from each other;
//!   one writer records on A at 1 000 writes/s for 5 s; the lag of a write
//!   is from A acknowledging it to B's watch stream delivering it;
//! - `repl_catchup_per_s`: a node that was away while A took
//!   `--repl-changes` changes (default 100 000) starts pulling from A;
//!   change-log entries applied per second until it has them all.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pulsedb::server::{self, ServerOptions};
use pulsedb::{Config, NewExperience, PeerConfig, PulseHandle, ReplicationConfig, WatchEventType};

use crate::data::{item, Data, Rng};
use crate::measure::{percentile, progress};
use crate::Args;

/// A node: its handle and the server in front of it.
struct Node {
    db: PulseHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<pulsedb::Result<()>>,
}

impl Node {
    /// Opens `file` pulling from `peers` and serves it on `listener`.
    async fn start(
        file: &Path,
        listener: tokio::net::TcpListener,
        peers: &[String],
        config: &Config,
    ) -> pulsedb::Result<Node> {
        let config = Config {
            replication: ReplicationConfig {
                peers: peers
                    .iter()
                    .map(|url| PeerConfig {
                        url: url.clone(),
                        token: None,
                    })
                    .collect(),
                ..ReplicationConfig::default()
            },
            ..config.clone()
        };
        let db = PulseHandle::open(file, config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(
            listener,
            db.clone(),
            ServerOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Node { db, stop, serving })
    }

    async fn stop(self) -> pulsedb::Result<()> {
        let _ = self.stop.send(());
        self.serving
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

async fn listen() -> pulsedb::Result<(tokio::net::TcpListener, String)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    Ok((l, url))
}

pub(crate) async fn replication_phase(
    dir: &Path,
    config: Config,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut rng = Rng(a.seed ^ 0x5245_504c);
    let data = Data::new(a.dim, &mut rng);
    let ((la, url_a), (lb, url_b)) = (listen().await?, listen().await?);
    let node_a = Node::start(&dir.join("repl-a.db"), la, &[url_b], &config).await?;
    let node_b = Node::start(
        &dir.join("repl-b.db"),
        lb,
        std::slice::from_ref(&url_a),
        &config,
    )
    .await?;
    let (a_db, b_db) = (node_a.db.clone(), node_b.db.clone());
    let c = a_db.create_collective("replicated").await?;
    while b_db.get_collective(c).await?.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Lag at 1 000 writes/s.
    progress("replication: 5 000 writes at 1 000/s on A, watched on B");
    let acked: Arc<Mutex<HashMap<pulsedb::ExperienceId, Instant>>> = Arc::default();
    let mut stream = b_db.watch_experiences(c).await?;
    let total = 5_000;
    let watcher = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut lags = Vec::with_capacity(total);
            while lags.len() < total {
                let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx));
                let Some(event) = next.await else {
                    break;
                };
                if event.event_type != WatchEventType::Created {
                    continue;
                }
                let seen = Instant::now();
                let sent = acked.lock().map(|m| m.get(&event.experience_id).copied());
                // Seen before A's answer reached the writer: no lag.
                let lag = match sent {
                    Ok(Some(at)) => seen.saturating_duration_since(at),
                    _ => Duration::ZERO,
                };
                lags.push(lag.as_micros() as u64);
            }
            lags
        })
    };
    let items: Vec<NewExperience> = (0..total)
        .map(|i| item(&data, &mut rng, c, i).new)
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::with_capacity(total);
    for x in items {
        tick.tick().await;
        let (db, acked) = (a_db.clone(), acked.clone());
        writes.push(tokio::spawn(async move {
            let id = db.record_experience(x).await?;
            if let Ok(mut m) = acked.lock() {
                m.insert(id, Instant::now());
            }
            Ok::<_, pulsedb::Error>(())
        }));
    }
    for w in writes {
        w.await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    let mut lags = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .map_err(|_| std::io::Error::other("B did not receive every write within 60 s"))?
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    out.push(("repl_lag_p50_ms", ms(percentile(&mut lags, 0.5))));
    out.push(("repl_lag_p99_ms", ms(percentile(&mut lags, 0.99))));
    out.push(("repl_lag_max_ms", ms(percentile(&mut lags, 1.0))));
    node_b.stop().await?;

    // Catch-up: A takes the changes while C is away, then C pulls them.
    let changes = a.repl_changes;
    progress(&format!(
        "replication: {changes} changes on A, then a new node catches up"
    ));
    let head_before = a_db.get_current_sequence().await?;
    let mut left = changes;
    let mut i = total;
    while left > 0 {
        let n = left.min(1000);
        let batch: Vec<NewExperience> = (0..n)
            .map(|j| item(&data, &mut rng, c, i + j).new)
            .collect();
        a_db.record_experiences(batch).await?;
        left -= n;
        i += n;
    }
    let head = a_db.get_current_sequence().await?;
    let (lc, _) = listen().await?;
    let started = Instant::now();
    let node_c = Node::start(&dir.join("repl-c.db"), lc, &[url_a], &config).await?;
    let a_id = a_db.instance_id();
    loop {
        if node_c.db.pull_cursor(a_id).await? >= head {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(std::io::Error::other("catch-up took over 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    out.push(("repl_catchup_per_s", format!("{:.0}", head as f64 / secs)));
    out.push(("repl_catchup_changes", head.to_string()));
    out.push(("repl_catchup_new_changes", (head - head_before).to_string()));
    node_c.stop().await?;
    node_a.stop().await?;
    Ok(out)
}
