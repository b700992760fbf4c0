//! criterion benches of the engine's hot paths through the public API:
//! record (sequential, 64 concurrent, bulk), get, search (exact, HNSW,
//! filtered), context assembly and reopen.
//!
//! Sizes come from `PULSEDB_BENCH_N` (experiences in the HNSW collective,
//! default 10 000, at least the HNSW threshold; the exact one holds n/5,
//! below the threshold); `PULSEDB_BENCH_N=500 cargo bench --bench engine`
//! is a quick smoke pass. Each read bench waits until the index is in the
//! state it names (buffer drained, graph built).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pulsedb::{
    CollectiveId, Config, ContextRequest, EmbeddingDimension, NewExperience, PulseHandle,
    SearchFilter,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn size() -> usize {
    std::env::var("PULSEDB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn vector(rng: &mut StdRng, centres: &[Vec<f32>]) -> Vec<f32> {
    let c = &centres[rng.gen_range(0..centres.len())];
    let mut v: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.05..0.05)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn centres(rng: &mut StdRng) -> Vec<Vec<f32>> {
    (0..100)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

fn experience(c: CollectiveId, rng: &mut StdRng, centres: &[Vec<f32>]) -> NewExperience {
    NewExperience {
        collective_id: c,
        content: "x".repeat(200),
        embedding: Some(vector(rng, centres)),
        importance: rng.gen_range(0.0..1.0),
        tags: BTreeMap::from([("topic".into(), format!("t{}", rng.gen_range(0..10)))]),
        ..NewExperience::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    db: PulseHandle,
    c: CollectiveId,
    rng: StdRng,
    centres: Vec<Vec<f32>>,
}

fn config() -> Config {
    Config {
        embedding_dimension: EmbeddingDimension::Custom(DIM),
        ..Config::default()
    }
}

fn fixture(rt: &tokio::runtime::Runtime, n: usize) -> Fixture {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let db = PulseHandle::open(&path, config()).await.unwrap();
        let c = db.create_collective("bench").await.unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let centres = centres(&mut rng);
        let mut left = n;
        while left > 0 {
            let batch: Vec<_> = (0..left.min(1000))
                .map(|_| experience(c, &mut rng, &centres))
                .collect();
            left -= batch.len();
            db.record_experiences(batch).await.unwrap();
        }
        settle(&db, c, n).await;
        Fixture {
            _dir: dir,
            path,
            db,
            c,
            rng,
            centres,
        }
    })
}

/// Waits until the collective's index is in the state the benchmark names:
/// nothing left in the write buffer, and an HNSW graph exactly when `n`
/// reaches the threshold (the graph is built in the background).
async fn settle(db: &PulseHandle, c: CollectiveId, n: usize) {
    let want_hnsw = n >= config().index.hnsw_threshold;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let stats = db.index_stats(c).await.unwrap();
        if stats.staged == 0 && stats.hnsw == want_hnsw && stats.tombstones == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "index did not settle: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn record(crit: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut f = fixture(&rt, 0);
    let mut g = crit.benchmark_group("record");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.bench_function("sequential", |b| {
        b.iter_batched(
            || experience(f.c, &mut f.rng, &f.centres),
            |e| rt.block_on(f.db.record_experience(e)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("concurrent_64", |b| {
        b.iter_batched(
            || {
                (0..64)
                    .map(|_| experience(f.c, &mut f.rng, &f.centres))
                    .collect::<Vec<_>>()
            },
            |batch| {
                rt.block_on(async {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|e| {
                            let db = f.db.clone();
                            tokio::spawn(async move { db.record_experience(e).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("bulk_1000", |b| {
        b.iter_batched(
            || {
                (0..1000)
                    .map(|_| experience(f.c, &mut f.rng, &f.centres))
                    .collect::<Vec<_>>()
            },
            |batch| rt.block_on(f.db.record_experiences(batch)).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    rt.block_on(f.db.close()).unwrap();
}

fn read(crit: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = size();
    // "exact" stays below the HNSW threshold, "hnsw" reaches it.
    let threshold = config().index.hnsw_threshold;
    let small = (n / 5).clamp(100, threshold - 1);
    let large = n.max(threshold);
    for (label, count) in [("exact", small), ("hnsw", large)] {
        let mut f = fixture(&rt, count);
        let ids: Vec<_> = rt
            .block_on(f.db.list_experiences(f.c, 1000, 0))
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let mut g = crit.benchmark_group(format!("read_{label}"));
        g.sample_size(50);
        g.bench_with_input(BenchmarkId::new("get", count), &count, |b, _| {
            b.iter_batched(
                || ids[f.rng.gen_range(0..ids.len())],
                |id| rt.block_on(f.db.get_experience(id)).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("search_k10", count), &count, |b, _| {
            b.iter_batched(
                || vector(&mut f.rng, &f.centres),
                |q| rt.block_on(f.db.search_similar(f.c, &q, 10)).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("filtered_k10", count), &count, |b, _| {
            b.iter_batched(
                || {
                    let filter = SearchFilter {
                        tags_all: Some(BTreeMap::from([(
                            "topic".to_string(),
                            format!("t{}", f.rng.gen_range(0..10)),
                        )])),
                        ..SearchFilter::default()
                    };
                    (vector(&mut f.rng, &f.centres), filter)
                },
                |(q, filter)| {
                    rt.block_on(f.db.search_similar_filtered(f.c, &q, 10, filter))
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("context", count), &count, |b, _| {
            b.iter_batched(
                || ContextRequest {
                    collective_id: f.c,
                    query_embedding: vector(&mut f.rng, &f.centres),
                    max_similar: 10,
                    ..ContextRequest::default()
                },
                |req| rt.block_on(f.db.get_context_candidates(req)).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
        if label == "hnsw" {
            reopen(crit, &rt, f);
        } else {
            rt.block_on(f.db.close()).unwrap();
        }
    }
}

fn reopen(crit: &mut Criterion, rt: &tokio::runtime::Runtime, f: Fixture) {
    rt.block_on(f.db.close()).unwrap();
    let q = vec![1.0; DIM];
    let mut g = crit.benchmark_group("reopen");
    g.sample_size(10);
    g.bench_function("open_and_first_search", |b| {
        b.iter(|| {
            rt.block_on(async {
                let db = PulseHandle::open(&f.path, config()).await.unwrap();
                db.search_similar(f.c, &q, 10).await.unwrap();
                db.close().await.unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, record, read);
criterion_main!(benches);
