//! `pulsedb-bench`: the standard agent-memory workload of
//! `shared/bench/WORKLOAD.md`, run against a fresh database in a temporary
//! directory. Prints one JSON object on one line to stdout; progress goes to
//! stderr. With `PULSEDB_BENCH_KEEP` set, the database directory is kept
//! for inspection; `PULSEDB_BENCH_EF_SEARCH` replaces the default efSearch
//! and `PULSEDB_BENCH_TOMBSTONE_RATIO` the rebuild threshold (to compare
//! settings; the JSON line reports the ones used).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsedb::{
    Config, ContextRequest, Durability, EmbeddingDimension, ExperienceId, NewExperience,
    PulseHandle, SearchFilter,
};

struct Args {
    n: usize,
    dim: usize,
    queries: usize,
    k: usize,
    seed: u64,
    writers: usize,
    searchers: usize,
    durability: Durability,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 10_000,
        dim: 384,
        queries: 200,
        k: 10,
        seed: 42,
        writers: 64,
        searchers: 4,
        durability: Durability::Immediate,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--n" => a.n = num(value()?)?,
            "--dim" => a.dim = num(value()?)?,
            "--queries" => a.queries = num(value()?)?,
            "--k" => a.k = num(value()?)?,
            "--seed" => a.seed = num(value()?)? as u64,
            "--writers" => a.writers = num(value()?)?,
            "--searchers" => a.searchers = num(value()?)?,
            "--durability" => {
                a.durability = match value()?.as_str() {
                    "immediate" => Durability::Immediate,
                    "eventual" => Durability::Eventual,
                    other => return Err(format!("--durability: unknown value {other:?}")),
                }
            }
            "--help" | "-h" => {
                return Err(
                    "usage: pulsedb-bench [--n N] [--dim D] [--queries Q] [--k K] \
                     [--seed S] [--writers W] [--searchers R] [--durability immediate|eventual]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.n < 8 || a.dim == 0 || a.k == 0 || a.queries == 0 || a.writers == 0 || a.searchers == 0 {
        return Err("--n must be ≥ 8; --dim, --k, --queries, --writers, --searchers ≥ 1".into());
    }
    Ok(a)
}

/// splitmix64 with Box–Muller gaussians: deterministic from the seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

struct Data {
    centres: Vec<Vec<f32>>,
    sigma: f64,
    dim: usize,
}

impl Data {
    fn new(dim: usize, rng: &mut Rng) -> Data {
        let centres = (0..100)
            .map(|_| {
                let mut c: Vec<f32> = (0..dim).map(|_| rng.gaussian() as f32).collect();
                normalize(&mut c);
                c
            })
            .collect();
        Data {
            centres,
            sigma: 0.03 * (384.0 / dim as f64).sqrt(),
            dim,
        }
    }

    fn vector(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.centres[rng.below(self.centres.len())];
        let mut v: Vec<f32> = (0..self.dim)
            .map(|i| c[i] + (self.sigma * rng.gaussian()) as f32)
            .collect();
        normalize(&mut v);
        v
    }
}

const TOPICS: usize = 10;
const DOMAINS: [&str; 5] = ["build", "testing", "deploy", "database", "network"];

/// One generated experience and what the harness remembers of it.
struct Item {
    new: NewExperience,
    topic: usize,
}

fn item(data: &Data, rng: &mut Rng, collective: pulsedb::CollectiveId, i: usize) -> Item {
    let topic = rng.below(TOPICS);
    let domain = DOMAINS[rng.below(DOMAINS.len())];
    let embedding = data.vector(rng);
    let mut content = format!(
        "Experience {i}: while working on {domain} the agent found that topic-{topic} needs care; "
    );
    while content.len() < 200 {
        content.push_str("retry with backoff and check the logs. ");
    }
    content.truncate(200);
    Item {
        new: NewExperience {
            collective_id: collective,
            content,
            embedding: Some(embedding),
            importance: rng.unit() as f32,
            domain: vec![domain.to_string()],
            tags: BTreeMap::from([("topic".to_string(), format!("t{topic}"))]),
            source_agent: format!("agent-{}", i % 64),
            ..NewExperience::default()
        },
        topic,
    }
}

fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

fn exact_top_k(
    stored: &[(ExperienceId, Vec<f32>, usize)],
    q: &[f32],
    k: usize,
    topic: Option<usize>,
) -> Vec<ExperienceId> {
    let mut scored: Vec<(f32, ExperienceId)> = stored
        .iter()
        .filter(|(_, _, t)| topic.is_none_or(|want| *t == want))
        .map(|(id, v, _)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn recall(found: &[ExperienceId], truth: &[ExperienceId]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = found.iter().filter(|id| truth.contains(id)).count();
    hits as f64 / truth.len() as f64
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// A progress line on stderr, with the peak RSS so far (which phase sets
/// `peak_rss_mb` is then visible).
fn progress(msg: &str) {
    eprintln!(
        "[pulsedb-bench] {msg} (peak rss so far {:.0} MB)",
        peak_rss_mb()
    );
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("pulsedb-bench failed: {e}");
        std::process::exit(1);
    }
}

/// Share of the collective the delete storm removes.
const STORM_SHARE: usize = 30;
/// Deletes in flight during the storm.
const STORM_IN_FLIGHT: usize = 32;

/// The delete storm: `searchers` clients search in a loop while 30 % of the
/// collective is deleted, [`STORM_IN_FLIGHT`] deletes at a time, and go on
/// until the graph rebuild the deletes cause has finished. Reports the
/// searches' p50/p99, how many came back with fewer than k results (all
/// should have k), and the longest single search or delete.
async fn delete_storm(
    db: &PulseHandle,
    c: pulsedb::CollectiveId,
    stored: &[(ExperienceId, Vec<f32>, usize)],
    queries: Arc<Vec<Vec<f32>>>,
    searchers: usize,
    k: usize,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let victims: Vec<ExperienceId> = stored
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 < STORM_SHARE)
        .map(|(_, (id, _, _))| *id)
        .collect();
    // The collective loads on first use after the reopen: load it before
    // the phase, which measures deletes and searches, not the load.
    db.search_similar(c, &queries[0], k).await?;
    progress(&format!(
        "delete storm: {} deletes while {searchers} clients search",
        victims.len()
    ));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for s in 0..searchers {
        let (db, queries, done) = (db.clone(), queries.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut short) = (Vec::new(), 0usize);
            let mut i = s;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let hits = db.search_similar(c, &queries[i % queries.len()], k).await?;
                lat.push(us(t.elapsed()));
                // Far more than k records match throughout.
                short += usize::from(hits.len() < k);
                i += searchers;
            }
            Ok::<_, pulsedb::Error>((lat, short))
        }));
    }
    let t = Instant::now();
    let mut delete_lat = Vec::with_capacity(victims.len());
    for chunk in victims.chunks(STORM_IN_FLIGHT) {
        let mut deletes = tokio::task::JoinSet::new();
        for id in chunk {
            let (db, id) = (db.clone(), *id);
            deletes.spawn(async move {
                let t = Instant::now();
                db.delete_experience(id).await.map(|()| us(t.elapsed()))
            });
        }
        while let Some(r) = deletes.join_next().await {
            delete_lat.push(r.map_err(|e| std::io::Error::other(e.to_string()))??);
        }
    }
    let deleting = t.elapsed();
    // The phase lasts until the rebuild the deletes set off has been swapped
    // in (tombstones back within the ratio), so its stall is measured too.
    let ratio = db.config().index.tombstone_ratio.min(0.99);
    loop {
        let stats = db.index_stats(c).await?;
        let rows = (stats.indexed + stats.tombstones).max(1);
        if stats.tombstones as f64 <= f64::from(ratio) * rows as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let phase = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut search_lat, mut short) = (Vec::new(), 0);
    for task in tasks {
        let (lat, n) = task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        search_lat.extend(lat);
        short += n;
    }
    let longest_search = search_lat.iter().copied().max().unwrap_or(0);
    let longest_delete = delete_lat.iter().copied().max().unwrap_or(0);
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    Ok(vec![
        (
            "delete_per_s",
            format!("{:.1}", victims.len() as f64 / deleting.as_secs_f64()),
        ),
        ("delete_phase_ms", phase.as_millis().to_string()),
        ("delete_searches", search_lat.len().to_string()),
        ("delete_short_searches", short.to_string()),
        (
            "delete_search_p50_us",
            percentile(&mut search_lat, 0.5).to_string(),
        ),
        (
            "delete_search_p99_us",
            percentile(&mut search_lat, 0.99).to_string(),
        ),
        (
            "delete_p99_us",
            percentile(&mut delete_lat, 0.99).to_string(),
        ),
        (
            "delete_max_stall_ms",
            ms(longest_search.max(longest_delete)),
        ),
        ("delete_max_search_ms", ms(longest_search)),
        ("delete_max_delete_ms", ms(longest_delete)),
    ])
}

/// Searches under writes: `searchers` clients search in a loop while
/// `writers` tasks record `items`. Reports the searches' p50/p99.
async fn search_under_write(
    db: &PulseHandle,
    items: Vec<NewExperience>,
    queries: Arc<Vec<Vec<f32>>>,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let Some(c) = items.first().map(|e| e.collective_id) else {
        return Ok(Vec::new());
    };
    progress(&format!(
        "{} searchers while {} writers record {}",
        a.searchers,
        a.writers,
        items.len()
    ));
    let count = items.len();
    let mut per_writer: Vec<Vec<NewExperience>> = (0..a.writers).map(|_| Vec::new()).collect();
    for (i, it) in items.into_iter().enumerate() {
        per_writer[i % a.writers].push(it);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut searchers = Vec::new();
    for s in 0..a.searchers {
        let (db, queries, done, k, step) =
            (db.clone(), queries.clone(), done.clone(), a.k, a.searchers);
        searchers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = s;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                db.search_similar(c, &queries[i % queries.len()], k).await?;
                lat.push(us(t.elapsed()));
                i += step;
            }
            Ok::<_, pulsedb::Error>(lat)
        }));
    }
    let t = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for batch in per_writer {
        let db = db.clone();
        writers.spawn(async move {
            for new in batch {
                db.record_experience(new).await?;
            }
            Ok::<(), pulsedb::Error>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r.map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    let writing = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = Vec::new();
    for task in searchers {
        lat.extend(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        );
    }
    Ok(vec![
        (
            "under_write_record_per_s",
            format!("{:.1}", count as f64 / writing.as_secs_f64()),
        ),
        ("under_write_searches", lat.len().to_string()),
        (
            "search_under_write_p50_us",
            percentile(&mut lat, 0.5).to_string(),
        ),
        (
            "search_under_write_p99_us",
            percentile(&mut lat, 0.99).to_string(),
        ),
    ])
}

async fn run(a: Args) -> pulsedb::Result<()> {
    let tmp = std::env::temp_dir().join(format!("pulsedb-bench-{}-{}", std::process::id(), a.seed));
    std::fs::create_dir_all(&tmp)?;
    let path: PathBuf = tmp.join("bench.db");
    let mut config = Config {
        embedding_dimension: EmbeddingDimension::Custom(a.dim),
        durability: a.durability,
        ..Config::default()
    };
    if let Ok(ef) = std::env::var("PULSEDB_BENCH_EF_SEARCH") {
        config.index.ef_search = ef.parse().map_err(|_| {
            std::io::Error::other(format!("PULSEDB_BENCH_EF_SEARCH={ef}: not a number"))
        })?;
    }
    if let Ok(ratio) = std::env::var("PULSEDB_BENCH_TOMBSTONE_RATIO") {
        config.index.tombstone_ratio = ratio.parse().map_err(|_| {
            std::io::Error::other(format!(
                "PULSEDB_BENCH_TOMBSTONE_RATIO={ratio}: not a number"
            ))
        })?;
    }
    let index = config.index.clone();
    let mut rng = Rng(a.seed);
    let data = Data::new(a.dim, &mut rng);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));

    let db = PulseHandle::open(&path, config.clone()).await?;
    let c = db.create_collective("bench").await?;
    let mut stored: Vec<(ExperienceId, Vec<f32>, usize)> = Vec::with_capacity(a.n);

    // Sequential record: N/2, one awaited call at a time.
    let n_seq = a.n / 2;
    progress(&format!("sequential record of {n_seq}"));
    let mut lat = Vec::with_capacity(n_seq);
    let t = Instant::now();
    for i in 0..n_seq {
        let it = item(&data, &mut rng, c, i);
        let v = it.new.embedding.clone().unwrap_or_default();
        let s = Instant::now();
        let id = db.record_experience(it.new).await?;
        lat.push(us(s.elapsed()));
        stored.push((id, v, it.topic));
    }
    put(
        "record_seq_per_s",
        format!("{:.1}", n_seq as f64 / t.elapsed().as_secs_f64()),
    );
    put("record_seq_p50_us", percentile(&mut lat, 0.5).to_string());
    put("record_seq_p99_us", percentile(&mut lat, 0.99).to_string());

    // Concurrent record: W tasks, N/4 in total, one collective.
    let n_conc = a.n / 4;
    progress(&format!(
        "concurrent record of {n_conc} by {} writers",
        a.writers
    ));
    let items: Vec<Item> = (0..n_conc)
        .map(|i| item(&data, &mut rng, c, n_seq + i))
        .collect();
    // Requests and the harness's own copies are made before the clock starts.
    let mut per_writer: Vec<Vec<NewExperience>> = (0..a.writers).map(|_| Vec::new()).collect();
    let mut expected: Vec<Vec<(Vec<f32>, usize)>> = (0..a.writers).map(|_| Vec::new()).collect();
    for (i, it) in items.into_iter().enumerate() {
        let w = i % a.writers;
        expected[w].push((it.new.embedding.clone().unwrap_or_default(), it.topic));
        per_writer[w].push(it.new);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for batch in per_writer {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::with_capacity(batch.len());
            for new in batch {
                let s = Instant::now();
                let id = db.record_experience(new).await?;
                done.push((id, us(s.elapsed())));
            }
            Ok::<_, pulsedb::Error>(done)
        }));
    }
    let mut lat = Vec::with_capacity(n_conc);
    for (task, expected) in tasks.into_iter().zip(expected) {
        let done = task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        for ((id, l), (v, topic)) in done.into_iter().zip(expected) {
            lat.push(l);
            stored.push((id, v, topic));
        }
    }
    put(
        "record_conc_per_s",
        format!("{:.1}", n_conc as f64 / t.elapsed().as_secs_f64()),
    );
    put("record_conc_p50_us", percentile(&mut lat, 0.5).to_string());
    put("record_conc_p99_us", percentile(&mut lat, 0.99).to_string());

    // Bulk record: batches of 1000, the remaining N/4 (and any rounding rest).
    let n_bulk = a.n - n_seq - n_conc;
    progress(&format!(
        "bulk record of {n_bulk} ({} vectors buffered for the graph)",
        db.index_stats(c).await.map_or(0, |s| s.staged)
    ));
    let items: Vec<Item> = (0..n_bulk)
        .map(|i| item(&data, &mut rng, c, n_seq + n_conc + i))
        .collect();
    let expected: Vec<(Vec<f32>, usize)> = items
        .iter()
        .map(|it| (it.new.embedding.clone().unwrap_or_default(), it.topic))
        .collect();
    let mut batches: Vec<Vec<NewExperience>> = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        if i % 1000 == 0 {
            batches.push(Vec::with_capacity(1000));
        }
        if let Some(b) = batches.last_mut() {
            b.push(it.new);
        }
    }
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n_bulk);
    for batch in batches {
        ids.extend(db.record_experiences(batch).await?);
    }
    let bulk_elapsed = t.elapsed();
    for (id, (v, topic)) in ids.into_iter().zip(expected) {
        stored.push((id, v, topic));
    }
    put(
        "record_bulk_per_s",
        format!("{:.1}", n_bulk as f64 / bulk_elapsed.as_secs_f64()),
    );

    // Get by id.
    let n_get = a.n.min(5000);
    progress(&format!("{n_get} gets"));
    let mut lat = Vec::with_capacity(n_get);
    let t = Instant::now();
    for _ in 0..n_get {
        let id = stored[rng.below(stored.len())].0;
        let s = Instant::now();
        let found = db.get_experience(id).await?;
        lat.push(us(s.elapsed()));
        if found.is_none() {
            return Err(std::io::Error::other("a recorded experience is missing").into());
        }
    }
    put(
        "get_per_s",
        format!("{:.1}", n_get as f64 / t.elapsed().as_secs_f64()),
    );
    put("get_p50_us", percentile(&mut lat, 0.5).to_string());
    put("get_p99_us", percentile(&mut lat, 0.99).to_string());

    // Search, one client.
    progress(&format!(
        "{} searches ({} vectors buffered for the graph)",
        a.queries,
        db.index_stats(c).await.map_or(0, |s| s.staged)
    ));
    let queries: Vec<Vec<f32>> = (0..a.queries).map(|_| data.vector(&mut rng)).collect();
    let truths: Vec<Vec<ExperienceId>> = queries
        .iter()
        .map(|q| exact_top_k(&stored, q, a.k, None))
        .collect();
    let mut lat = Vec::with_capacity(a.queries);
    let mut answers = Vec::with_capacity(a.queries);
    let t = Instant::now();
    for q in &queries {
        let s = Instant::now();
        let hits = db.search_similar(c, q, a.k).await?;
        lat.push(us(s.elapsed()));
        answers.push(hits.iter().map(|h| h.experience.id).collect::<Vec<_>>());
    }
    let search_qps = a.queries as f64 / t.elapsed().as_secs_f64();
    let recall_sum: f64 = answers.iter().zip(&truths).map(|(f, t)| recall(f, t)).sum();
    put("search_p50_us", percentile(&mut lat, 0.5).to_string());
    put("search_p99_us", percentile(&mut lat, 0.99).to_string());
    put("search_qps", format!("{search_qps:.1}"));
    put(
        "recall_at_k",
        format!("{:.4}", recall_sum / a.queries as f64),
    );

    // Search, R concurrent clients, each running every query.
    progress(&format!("{} concurrent searchers", a.searchers));
    let queries = Arc::new(queries);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.searchers {
        let (db, queries, k) = (db.clone(), queries.clone(), a.k);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(queries.len());
            for q in queries.iter() {
                let s = Instant::now();
                db.search_similar(c, q, k).await?;
                lat.push(us(s.elapsed()));
            }
            Ok::<_, pulsedb::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        );
    }
    let conc_qps = (a.searchers * a.queries) as f64 / t.elapsed().as_secs_f64();
    put("search_conc_qps", format!("{conc_qps:.1}"));
    // The baseline of the delete-storm and under-write phases, which run
    // the same number of clients.
    put("search_conc_p99_us", percentile(&mut lat, 0.99).to_string());

    // Filtered search: tags_all = {topic: v}.
    progress("filtered searches");
    let mut lat = Vec::with_capacity(a.queries);
    let (mut recall_sum, mut full) = (0.0, 0usize);
    for (i, q) in queries.iter().enumerate() {
        let topic = i % TOPICS;
        let filter = SearchFilter {
            tags_all: Some(BTreeMap::from([("topic".to_string(), format!("t{topic}"))])),
            ..SearchFilter::default()
        };
        let s = Instant::now();
        let hits = db.search_similar_filtered(c, q, a.k, filter).await?;
        lat.push(us(s.elapsed()));
        let found: Vec<ExperienceId> = hits.iter().map(|h| h.experience.id).collect();
        // Ground truth outside the timed call.
        let truth = exact_top_k(&stored, q, a.k, Some(topic));
        recall_sum += recall(&found, &truth);
        if found.len() == a.k {
            full += 1;
        }
    }
    put(
        "filtered_search_p50_us",
        percentile(&mut lat, 0.5).to_string(),
    );
    put(
        "filtered_recall_at_k",
        format!("{:.4}", recall_sum / a.queries as f64),
    );
    put(
        "filtered_full_k",
        format!("{:.4}", full as f64 / a.queries as f64),
    );

    // Context candidates.
    progress("context assembly");
    let mut lat = Vec::with_capacity(a.queries);
    for q in queries.iter() {
        let req = ContextRequest {
            collective_id: c,
            query_embedding: q.clone(),
            max_similar: a.k,
            ..ContextRequest::default()
        };
        let s = Instant::now();
        db.get_context_candidates(req).await?;
        lat.push(us(s.elapsed()));
    }
    put("context_p50_us", percentile(&mut lat, 0.5).to_string());
    put("context_p99_us", percentile(&mut lat, 0.99).to_string());

    // Close, reopen, one search.
    progress("close and reopen");
    let t = Instant::now();
    db.close().await?;
    put("close_ms", t.elapsed().as_millis().to_string());
    progress("closed");
    let t = Instant::now();
    let db = PulseHandle::open(&path, config.clone()).await?;
    db.search_similar(c, &queries[0], a.k).await?;
    put("reopen_ms", t.elapsed().as_millis().to_string());
    progress("reopened");
    db.close().await?;
    put(
        "bytes_per_exp",
        format!("{:.0}", dir_bytes(&tmp) as f64 / a.n as f64),
    );

    // Last, the phases that change the collective: the delete storm
    // removes 30 % of it, searches under writes add N/4.
    let db = PulseHandle::open(&path, config).await?;
    for (key, value) in delete_storm(&db, c, &stored, queries.clone(), a.searchers, a.k).await? {
        put(key, value);
    }
    let more: Vec<NewExperience> = (0..a.n / 4)
        .map(|i| item(&data, &mut rng, c, a.n + i).new)
        .collect();
    for (key, value) in search_under_write(&db, more, queries, &a).await? {
        put(key, value);
    }
    db.close().await?;

    put("peak_rss_mb", format!("{:.1}", peak_rss_mb()));
    put("n", a.n.to_string());
    put("dim", a.dim.to_string());
    put("k", a.k.to_string());
    put("seed", a.seed.to_string());
    put("writers", a.writers.to_string());
    put("searchers", a.searchers.to_string());
    put(
        "durability",
        format!(
            "\"{}\"",
            match a.durability {
                Durability::Immediate => "immediate",
                Durability::Eventual => "eventual",
            }
        ),
    );
    put("hnsw_threshold", index.hnsw_threshold.to_string());
    put("hnsw_m", index.hnsw_m.to_string());
    put("ef_construction", index.ef_construction.to_string());
    put("ef_search", index.ef_search.to_string());
    put("tombstone_ratio", index.tombstone_ratio.to_string());
    put(
        "cores",
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .to_string(),
    );

    let body: Vec<String> = out.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("{{{}}}", body.join(","));
    if std::env::var_os("PULSEDB_BENCH_KEEP").is_some() {
        progress(&format!("database kept in {}", tmp.display()));
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
