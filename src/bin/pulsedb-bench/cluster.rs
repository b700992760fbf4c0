//! The cluster phase (`--cluster`, feature `bench-http`): three PulseDB
//! nodes in this process on a three-server NATS JetStream cluster (real
//! `nats-server` processes, `$PULSEDB_NATS_SERVER`):
//!
//! - `cluster_lag_p50_ms` / `_p99_ms`: 1 000 writes/s for 5 s spread over
//!   the three nodes; the lag of a write on each other node is from its
//!   node acknowledging it to that node's watch stream delivering it;
//! - `cluster_max_write_per_s` with `cluster_max_lag_p99_ms`: 64 writers
//!   spread over the nodes as fast as they go for 5 s, the rate the
//!   cluster took and the lag meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pulsedb::{
    CollectiveId, Config, ExperienceId, NatsConfig, NewExperience, PulseHandle, ReplicationConfig,
    WatchEventType,
};

use crate::data::{item, Data, Rng};
use crate::measure::{percentile, progress};
use crate::Args;

fn failed(e: impl std::fmt::Display) -> pulsedb::Error {
    std::io::Error::other(e.to_string()).into()
}

fn free_port() -> pulsedb::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The NATS servers, killed when dropped.
struct NatsCluster(Vec<Child>);

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Three JetStream servers in one cluster; their client URLs.
fn start_nats(dir: &Path) -> pulsedb::Result<(NatsCluster, Vec<String>)> {
    let binary = std::env::var_os("PULSEDB_NATS_SERVER")
        .map(PathBuf::from)
        .ok_or_else(|| {
            failed("set PULSEDB_NATS_SERVER to a nats-server binary (make deps fetches one)")
        })?;
    let clients = [free_port()?, free_port()?, free_port()?];
    let routes = [free_port()?, free_port()?, free_port()?];
    let mut children = NatsCluster(Vec::new());
    for i in 0..3 {
        let others: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
            .collect();
        let store = dir.join(format!("nats{i}"));
        std::fs::create_dir_all(&store)?;
        let child = Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &clients[i].to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .args(["--server_name", &format!("b{i}"), "--cluster_name", "bench"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
            .args(["--routes", &others.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        children.0.push(child);
    }
    Ok((
        children,
        clients
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect(),
    ))
}

async fn open_node(
    file: &Path,
    urls: Vec<String>,
    config: &Config,
) -> pulsedb::Result<PulseHandle> {
    let config = Config {
        replication: ReplicationConfig {
            nats: Some(NatsConfig {
                urls,
                cluster: "bench".into(),
                collectives: None,
                advertise: None,
                token: None,
                max_messages: None,
            }),
            ..ReplicationConfig::default()
        },
        ..config.clone()
    };
    PulseHandle::open(file, config).await
}

/// Which node wrote each write and when it was acknowledged.
type Acked = Arc<Mutex<HashMap<ExperienceId, (usize, Instant)>>>;

/// Watches node `me` until it has seen `expected` creations; the lags of
/// those written on other nodes.
fn watch_lags(
    db: PulseHandle,
    me: usize,
    c: CollectiveId,
    acked: Acked,
    expected: usize,
) -> tokio::task::JoinHandle<pulsedb::Result<Vec<u64>>> {
    tokio::spawn(async move {
        let mut stream = db.watch_experiences(c).await?;
        let mut lags = Vec::with_capacity(expected);
        let mut seen_count = 0;
        while seen_count < expected {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx));
            let Some(event) = next.await else { break };
            if event.event_type != WatchEventType::Created {
                continue;
            }
            seen_count += 1;
            let seen = Instant::now();
            let sent = acked
                .lock()
                .ok()
                .and_then(|m| m.get(&event.experience_id).copied());
            // Not yet acknowledged: this node's own write, whose event
            // comes before its answer.
            if let Some((_, at)) = sent.filter(|(writer, _)| *writer != me) {
                lags.push(seen.saturating_duration_since(at).as_micros() as u64);
            }
        }
        Ok(lags)
    })
}

pub(crate) async fn cluster_phase(
    dir: &Path,
    config: Config,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut rng = Rng(a.seed ^ 0x434c_5553);
    let data = Data::new(a.dim, &mut rng);
    let (_nats, urls) = start_nats(dir)?;
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mine = vec![urls[i].clone(), urls[(i + 1) % 3].clone()];
        nodes.push(open_node(&dir.join(format!("cluster{i}.db")), mine, &config).await?);
    }
    progress("cluster: waiting for the JetStream cluster");
    let c = nodes[0].create_collective("cluster").await?;
    let started = Instant::now();
    for n in &nodes[1..] {
        while n.get_collective(c).await?.is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(failed("the cluster did not form within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Lag at 1 000 writes/s spread over the nodes.
    progress("cluster: 5 000 writes at 1 000/s over three nodes");
    let total = 5_000;
    let (mut lags, _) = run_writes(&nodes, c, &data, &mut rng, total, Some(1_000), 0).await?;
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    out.push(("cluster_lag_p50_ms", ms(percentile(&mut lags, 0.5))));
    out.push(("cluster_lag_p99_ms", ms(percentile(&mut lags, 0.99))));

    progress("cluster: 64 writers over three nodes, as fast as they go");
    let (mut lags, rate) = run_writes(&nodes, c, &data, &mut rng, 20_000, None, total).await?;
    out.push(("cluster_max_write_per_s", format!("{rate:.0}")));
    out.push(("cluster_max_lag_p99_ms", ms(percentile(&mut lags, 0.99))));
    for n in nodes {
        n.close().await?;
    }
    Ok(out)
}

/// `total` writes round robin over the nodes, at `rate` per second or as
/// fast as 64 writers go; the lags every other node saw and the write rate.
async fn run_writes(
    nodes: &[PulseHandle],
    c: CollectiveId,
    data: &Data,
    rng: &mut Rng,
    total: usize,
    rate: Option<u64>,
    first: usize,
) -> pulsedb::Result<(Vec<u64>, f64)> {
    let acked: Acked = Arc::default();
    let watchers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| watch_lags(n.clone(), k, c, acked.clone(), total))
        .collect();
    let items: Vec<NewExperience> = (0..total)
        .map(|i| item(data, rng, c, first + i).new)
        .collect();
    let started = Instant::now();
    let mut writes = Vec::with_capacity(total);
    match rate {
        Some(per_s) => {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_s));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for (i, x) in items.into_iter().enumerate() {
                tick.tick().await;
                let k = i % nodes.len();
                writes.push(spawn_write(k, nodes[k].clone(), x, acked.clone()));
            }
        }
        None => {
            let queue = Arc::new(Mutex::new(items.into_iter().enumerate()));
            for w in 0..64 {
                let k = w % nodes.len();
                let (queue, acked, node) = (queue.clone(), acked.clone(), nodes[k].clone());
                writes.push(tokio::spawn(async move {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some((_, x)) = next else { return Ok(()) };
                        let id = node.record_experience(x).await?;
                        if let Ok(mut m) = acked.lock() {
                            m.insert(id, (k, Instant::now()));
                        }
                    }
                }));
            }
        }
    }
    for w in writes {
        w.await.map_err(failed)??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let mut lags = Vec::new();
    for w in watchers {
        let got = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .map_err(|_| failed("a node did not receive every write within 120 s"))?
            .map_err(failed)??;
        lags.extend(got);
    }
    Ok((lags, rate))
}

fn spawn_write(
    k: usize,
    node: PulseHandle,
    x: NewExperience,
    acked: Acked,
) -> tokio::task::JoinHandle<pulsedb::Result<()>> {
    tokio::spawn(async move {
        let id = node.record_experience(x).await?;
        if let Ok(mut m) = acked.lock() {
            m.insert(id, (k, Instant::now()));
        }
        Ok(())
    })
}
