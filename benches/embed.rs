//! criterion benches of the built-in embedder (feature `embedder`; the
//! model from `make model`): one short sentence, a pass of 32 short
//! sentences, one long text (truncated at 256 tokens), and 32 concurrent
//! callers through the handle's batching queue.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulsedb::{BuiltinEmbedder, Config, Embedder, PulseHandle};

const SHORT: [&str; 8] = [
    "the agent retried the flaky integration test with one thread",
    "cache the cargo target directory to speed up builds",
    "a slow database query was fixed before the release",
    "the deploy script failed on the staging cluster",
    "pin the faiss version in the lock file",
    "an expired api token broke the nightly benchmark",
    "the planner skipped the failing lint step",
    "a memory leak in the parser after the timeout",
];

fn model() -> Arc<BuiltinEmbedder> {
    match BuiltinEmbedder::locate() {
        Ok(m) => Arc::new(m),
        Err(e) => panic!("{e}"),
    }
}

fn direct(c: &mut Criterion) {
    let m = model();
    let mut g = c.benchmark_group("embed");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_short_sentence", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            m.embed_batch(&[SHORT[i % SHORT.len()]]).unwrap()
        })
    });
    let batch: Vec<&str> = (0..32).map(|i| SHORT[i % SHORT.len()]).collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("pass_of_32_short", |b| {
        b.iter(|| m.embed_batch(&batch).unwrap())
    });
    let long = "every agent writes down what it learned from the failed build. ".repeat(40);
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_text_of_256_tokens", |b| {
        b.iter(|| m.embed_batch(&[&long]).unwrap())
    });
    g.finish();
}

fn through_handle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = rt
        .block_on(PulseHandle::open_with_embedder(
            dir.path().join("embed.db"),
            Config::default(),
            model(),
        ))
        .unwrap();
    let mut g = c.benchmark_group("embed_handle");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(32));
    g.bench_function("32_concurrent_callers", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..32 {
                let db = db.clone();
                tasks.spawn(async move { db.embed(&[SHORT[i % SHORT.len()]]).await });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap().unwrap();
            }
        })
    });
    g.finish();
    rt.block_on(db.close()).unwrap();
}

criterion_group!(benches, direct, through_handle);
criterion_main!(benches);
