//! Index settings (part of the engine [`Config`](crate::Config)).

use serde::{Deserialize, Serialize};

/// Vector index settings, per collective.
///
/// Defaults were chosen by measurement on a 2-core x86-64 machine (shared
/// with other compilations, so single numbers are noisy) with clustered
/// 384-dimension vectors: 100 centres on the unit sphere, gaussian noise
/// sigma 0.03 per component, normalised; queries drawn the same way; k = 10;
/// mean over 300 queries; one OpenMP thread per search. Reproduce with
/// `cargo test --release --lib index::measure -- --ignored --nocapture
/// --test-threads=1`.
///
/// | live vectors | flat search | HNSW search (M32/efC64/efS64) | recall@10 | HNSW build |
/// |-------------:|------------:|------------------------------:|----------:|-----------:|
/// |        1 000 |      100 µs |                        120 µs |     1.000 |     0.08 s |
/// |        2 000 |      195 µs |                        195 µs |     1.000 |     0.18 s |
/// |        5 000 |      515 µs |                        316 µs |     1.000 |     0.68 s |
/// |       10 000 |    1 814 µs |                        214 µs |     1.000 |      1.6 s |
/// |       20 000 |    3 352 µs |                        169 µs |     0.999 |      2.4 s |
/// |      100 000 |   17 400 µs |                        498 µs |     0.985 |       35 s |
///
/// So `hnsw_threshold` = 2 000, where the two cost the same.
///
/// HNSW parameters at 100 000 vectors (recall@10 / latency by efSearch):
///
/// | M, efConstruction | efS 16       | efS 32       | efS 64       | efS 128      |
/// |-------------------|--------------|--------------|--------------|--------------|
/// | 16, 64            | 0.731/229 µs | 0.876/294 µs | 0.964/441 µs | 0.993/551 µs |
/// | 32, 64            | 0.810/212 µs | 0.933/279 µs | 0.985/438 µs | 0.997/545 µs |
/// | 32, 128           | 0.831/221 µs | 0.949/354 µs | 0.991/463 µs | 0.999/712 µs |
///
/// M 32, efConstruction 64, efSearch 64: recall ≥ 0.985 up to 100 000 at
/// under 0.5 ms here, but 0.976 on the `pulsedb-bench` workload at
/// n = 100 000 (`--n 100000`), and efSearch 80 gave 0.978–0.993 there over
/// the runs, too close to 0.98. `measure_ef_search` (the graph built in the
/// drain's chunks of 128) gives at 100 000:
///
/// | efSearch | 64 | 80 | 96 | 112 | 128 | 160 |
/// |---|---|---|---|---|---|---|
/// | recall@10 | 0.983 | 0.991 | 0.995 | 0.996 | 0.997 | 0.998 |
/// | µs | 314 | 339 | 336 | 362 | 372 | 476 |
///
/// On the bench at n = 100 000 (`PULSEDB_BENCH_EF_SEARCH=96 pulsedb-bench
/// --n 100000`, two runs each, alternating, on a busy machine) efSearch 96
/// gave recall 0.990 and 0.995 at a search p50 of 639 and 644 µs; 128 gave
/// 0.988 and 0.992 at 707 and 858 µs: past 96 the graph's build order moves
/// recall more than efSearch does. So the default efSearch is 96: +0.004
/// recall over 80 at the same latency. efConstruction 128 bought +0.006
/// recall for ~7 % more build time and slows every insertion, which bounds
/// sustained ingest. At 20 000 vectors M 16 is as accurate (0.999) and
/// faster, but falls to 0.964 at 100 000.
///
/// Filtered search at 100 000 vectors, graph with bitmap selector versus an
/// exact scan of the eligible vectors:
///
/// | eligible | graph µs (recall) | exact scan µs |
/// |---------:|------------------:|--------------:|
/// |     50 % |       537 (0.979) |        38 257 |
/// |     10 % |       439 (0.959) |         7 201 |
/// |      5 % |       630 (0.944) |         4 224 |
/// |      2 % |       534 (0.899) |           603 |
/// |      1 % |       707 (0.973) |           314 |
/// |    0.1 % |       807 (1.000) |           168 |
///
/// The crossover is about 2 % (≈ 2 000 eligible vectors, where the scan also
/// gives exact answers while graph recall dips), hence
/// `exact_scan_selectivity` = 0.02.
///
/// A snapshot holds the graph without the vectors (see `snapshot.rs`); an
/// open of a 100 000-experience collective restores it, with the vectors
/// read back from redb, in 0.8–1.4 s (`reopen_ms` of
/// `pulsedb-bench --n 100000`), against a 35–42 s rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// Collectives with fewer live vectors than this are searched exactly
    /// (flat index); from this size on an HNSW graph is built.
    pub hnsw_threshold: usize,
    /// HNSW graph degree (`M`).
    pub hnsw_m: usize,
    /// HNSW candidate list size while building (`efConstruction`).
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (`efSearch`); raised to `k`
    /// when `k` is larger.
    pub ef_search: usize,
    /// Rebuild an index when tombstones exceed this fraction of its vectors.
    pub tombstone_ratio: f32,
    /// Filters that admit at most this fraction of vectors are answered by an
    /// exact scan of the eligible vectors instead of the HNSW graph.
    pub exact_scan_selectivity: f32,
    /// Write index snapshots on close so the next open skips the rebuild.
    pub snapshots: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            hnsw_threshold: 2_000,
            hnsw_m: 32,
            ef_construction: 64,
            ef_search: 96,
            tombstone_ratio: 0.2,
            exact_scan_selectivity: 0.02,
            snapshots: true,
        }
    }
}
