//! `pulsedb-bench`: the standard agent-memory workload of
//! `shared/bench/WORKLOAD.md`, run against a fresh database in a temporary
//! directory. Prints one JSON object on one line to stdout; progress goes to
//! stderr. With `PULSEDB_BENCH_KEEP` set, the database directory is kept
//! for inspection; `PULSEDB_BENCH_EF_SEARCH` replaces the default efSearch
//! and `PULSEDB_BENCH_TOMBSTONE_RATIO` the rebuild threshold;
//! `PULSEDB_BENCH_SNAPSHOT_VECTORS=1` keeps the vectors in the index
//! snapshots (to compare settings; the JSON line reports the ones used).
//! `PULSEDB_BENCH_FOOTPRINT=1` prints where `bytes_per_exp` goes, table by
//! table, to stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use pulsedb::{
    Config, ContextRequest, Durability, EmbeddingDimension, ExperienceId, NewExperience,
    PulseHandle, SearchFilter,
};

#[cfg(feature = "bench-http")]
mod cluster;
mod data;
#[cfg(feature = "bench-http")]
mod http;
mod measure;
#[cfg(feature = "bench-http")]
mod replication;
mod stress;
#[cfg(feature = "embedder")]
mod text;

use data::{exact_top_k, item, recall, Data, Item, Rng, TOPICS};
use measure::{
    dir_bytes, peak_rss_mb, percentile, print_footprint, progress, reset_peak_rss, rss_mb, us,
};
use stress::{delete_storm, search_under_write};

pub(crate) struct Args {
    n: usize,
    dim: usize,
    queries: usize,
    k: usize,
    seed: u64,
    writers: usize,
    searchers: usize,
    durability: Durability,
    /// Also run the embedder phase (feature `embedder`).
    embedder: bool,
    /// Also run the record and search phases through the HTTP server
    /// (feature `bench-http`).
    http: bool,
    /// Also run the replication phase (feature `bench-http`).
    replication: bool,
    /// Changes a node catches up on in the replication phase.
    repl_changes: usize,
    /// Also run the NATS cluster phase (feature `bench-http`).
    cluster: bool,
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
        embedder: false,
        http: false,
        replication: false,
        repl_changes: 100_000,
        cluster: false,
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
            "--embedder" if cfg!(feature = "embedder") => a.embedder = true,
            "--embedder" => {
                return Err("--embedder needs the `embedder` feature: \
                            cargo run --release --features embedder --bin pulsedb-bench"
                    .into())
            }
            "--http" if cfg!(feature = "bench-http") => a.http = true,
            "--http" => {
                return Err("--http needs the `bench-http` feature: \
                            cargo run --release --features bench-http --bin pulsedb-bench"
                    .into())
            }
            "--replication" if cfg!(feature = "bench-http") => a.replication = true,
            "--replication" => {
                return Err("--replication needs the `bench-http` feature: \
                            cargo run --release --features bench-http --bin pulsedb-bench"
                    .into())
            }
            "--repl-changes" => a.repl_changes = num(value()?)?,
            "--cluster" if cfg!(feature = "bench-http") => a.cluster = true,
            "--cluster" => {
                return Err("--cluster needs the `bench-http` feature: \
                            cargo run --release --features bench-http --bin pulsedb-bench"
                    .into())
            }
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
                     [--seed S] [--writers W] [--searchers R] [--durability immediate|eventual] \
                     [--embedder] [--http] [--replication] [--repl-changes N] [--cluster]"
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
    if let Ok(keep) = std::env::var("PULSEDB_BENCH_SNAPSHOT_VECTORS") {
        config.index.snapshot_vectors = match keep.as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(std::io::Error::other(format!(
                    "PULSEDB_BENCH_SNAPSHOT_VECTORS={keep}: 1 or 0"
                ))
                .into())
            }
        };
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
    let before = db.engine_stats();
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
    let after = db.engine_stats();
    put(
        "record_conc_commit_writes",
        format!(
            "{:.1}",
            (after.committed_writes - before.committed_writes) as f64
                / (after.commits - before.commits).max(1) as f64
        ),
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

    // Filtered search: tags_all = {topic: v}. The ground truth is computed
    // first: a brute-force pass over every stored vector between two timed
    // searches would evict the index from the caches before each of them.
    progress("filtered searches");
    let filtered_truths: Vec<Vec<ExperienceId>> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| exact_top_k(&stored, q, a.k, Some(i % TOPICS)))
        .collect();
    let mut lat = Vec::with_capacity(a.queries);
    let (mut recall_sum, mut full) = (0.0, 0usize);
    for ((i, q), truth) in queries.iter().enumerate().zip(&filtered_truths) {
        let topic = i % TOPICS;
        let filter = SearchFilter {
            tags_all: Some(BTreeMap::from([("topic".to_string(), format!("t{topic}"))])),
            ..SearchFilter::default()
        };
        let s = Instant::now();
        let hits = db.search_similar_filtered(c, q, a.k, filter).await?;
        lat.push(us(s.elapsed()));
        let found: Vec<ExperienceId> = hits.iter().map(|h| h.experience.id).collect();
        recall_sum += recall(&found, truth);
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
    // The memory the reopened database takes until its first answer: the
    // peak over the resident set before the open (the run's peak so far is
    // kept for `peak_rss_mb`).
    let peak_before_reopen = peak_rss_mb();
    let rss_reset = reset_peak_rss();
    let rss_before = rss_mb();
    let t = Instant::now();
    let db = PulseHandle::open(&path, config.clone()).await?;
    db.search_similar(c, &queries[0], a.k).await?;
    put("reopen_ms", t.elapsed().as_millis().to_string());
    if rss_reset {
        put(
            "reopen_rss_mb",
            format!("{:.1}", peak_rss_mb() - rss_before),
        );
    }
    progress("reopened");
    db.close().await?;
    put(
        "bytes_per_exp",
        format!("{:.0}", dir_bytes(&tmp) as f64 / a.n as f64),
    );
    if std::env::var_os("PULSEDB_BENCH_FOOTPRINT").is_some() {
        if let Err(e) = print_footprint(&path, &tmp, a.n) {
            progress(&format!("footprint: {e}"));
        }
    }

    // Last, the phases that change the collective: the delete storm
    // removes 30 % of it, searches under writes add N/4.
    let db = PulseHandle::open(&path, config.clone()).await?;
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

    if a.http {
        #[cfg(feature = "bench-http")]
        for (key, value) in http::http_phase(&tmp, config.clone(), &a).await? {
            put(key, value);
        }
    }
    if a.replication {
        #[cfg(feature = "bench-http")]
        for (key, value) in replication::replication_phase(&tmp, config.clone(), &a).await? {
            put(key, value);
        }
    }
    if a.cluster {
        #[cfg(feature = "bench-http")]
        for (key, value) in cluster::cluster_phase(&tmp, config.clone(), &a).await? {
            put(key, value);
        }
    }
    put(
        "peak_rss_mb",
        format!("{:.1}", peak_rss_mb().max(peak_before_reopen)),
    );
    if a.embedder {
        #[cfg(feature = "embedder")]
        for (key, value) in text::embedder_phase(&tmp, &a).await? {
            put(key, value);
        }
    }
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
    put("snapshot_vectors", index.snapshot_vectors.to_string());
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
