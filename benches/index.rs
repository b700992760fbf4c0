//! Vector index benchmarks: add and search, exact (flat) and HNSW, with and
//! without a 10 % filter, on clustered 384-dimension vectors; and the
//! brute-force `ExactIndex` at write-buffer sizes (1 024 to 4 096 vectors).
//!
//! Sizes come from `PULSEDB_BENCH_SIZES` (comma list, default
//! `10000,100000`); CI runs a smoke pass with a small size.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use pulsedb::index::{ExactIndex, FaissIndex, IndexConfig, Slot, SlotSet, VectorIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn sizes() -> Vec<usize> {
    std::env::var("PULSEDB_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let v: f64 = rng.gen();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `n` vectors around 100 centres on the unit sphere (noise sigma 0.03).
fn clustered(rng: &mut StdRng, n: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| unit((0..DIM).map(|_| gaussian(rng)).collect()))
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..centres.len())];
            unit(c.iter().map(|x| x + 0.03 * gaussian(rng)).collect())
        })
        .collect()
}

fn items(vectors: &[Vec<f32>]) -> Vec<(Slot, &[f32])> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as Slot, v.as_slice()))
        .collect()
}

fn configs() -> [(&'static str, IndexConfig); 2] {
    [
        (
            "exact",
            IndexConfig {
                hnsw_threshold: usize::MAX,
                ..IndexConfig::default()
            },
        ),
        (
            "hnsw",
            IndexConfig {
                hnsw_threshold: 0,
                ..IndexConfig::default()
            },
        ),
    ]
}

fn bench_add(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_add");
    group.sample_size(10);
    for n in sizes() {
        let vectors = clustered(&mut StdRng::seed_from_u64(1), n);
        for (name, config) in configs() {
            group.bench_with_input(BenchmarkId::new(name, n), &vectors, |b, vectors| {
                b.iter_batched(
                    || FaissIndex::new(DIM, &config).expect("new index"),
                    |mut index| {
                        index.add(&items(vectors)).expect("add");
                        black_box(index.len())
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

fn bench_search(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_search");
    for n in sizes() {
        let mut rng = StdRng::seed_from_u64(2);
        let vectors = clustered(&mut rng, n + 256);
        let (data, queries) = vectors.split_at(n);
        let filter: SlotSet = (0..n as Slot).filter(|s| s % 10 == 0).collect();
        for (name, config) in configs() {
            let mut index = FaissIndex::new(DIM, &config).expect("new index");
            index.add(&items(data)).expect("add");
            assert_eq!(index.is_hnsw(), name == "hnsw");
            for (label, eligible) in [("all", None), ("filter10", Some(&filter))] {
                let id = BenchmarkId::new(format!("{name}/{label}"), n);
                let mut i = 0;
                group.bench_function(id, |b| {
                    b.iter(|| {
                        i = (i + 1) % queries.len();
                        black_box(index.search(&queries[i], 10, eligible).expect("search"))
                    });
                });
            }
        }
    }
    group.finish();
}

/// The write buffer in front of each graph is an `ExactIndex`; every search
/// scans it whole.
fn bench_buffer_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("buffer_scan");
    let mut rng = StdRng::seed_from_u64(3);
    let vectors = clustered(&mut rng, 4096 + 64);
    let (data, queries) = vectors.split_at(4096);
    for n in [1024, 2048, 4096] {
        let mut index = ExactIndex::new(DIM);
        index.add(&items(&data[..n])).expect("add");
        let mut i = 0;
        group.bench_function(BenchmarkId::new("exact", n), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(index.search(&queries[i], 10, None).expect("search"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_add, bench_search, bench_buffer_scan);
criterion_main!(benches);
