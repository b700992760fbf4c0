//! Index settings (part of the engine [`Config`](crate::Config)).

use serde::{Deserialize, Serialize};

/// Vector index settings, per collective.
///
/// The defaults come from measurements on clustered 384-d vectors, k = 10,
/// one OpenMP thread per search (tables and commands in
/// `docs/performance.md`, "Index settings"; reproduce with `cargo test
/// --release --lib index::measure -- --ignored --nocapture
/// --test-threads=1`):
///
/// - `hnsw_threshold` 2 000: below it a flat scan costs no more than the
///   graph and is exact;
/// - M 32, efConstruction 64, efSearch 96: recall@10 about 0.99 at 100 000
///   vectors at under a millisecond; a wider efSearch buys little recall
///   for more latency, a larger efConstruction slows every insertion;
/// - `exact_scan_selectivity` 0.02: below it an exact scan of the eligible
///   vectors always beats the filtered graph (above it the plan is chosen
///   by cost, see the FAISS index's docs);
/// - `tombstone_ratio` 0.2: a graph is rebuilt, aside, once a fifth of its
///   rows are deleted.
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
    /// Keep the normalised vectors in the snapshots too. The next open then
    /// restores a graph without reading each vector back from its record
    /// (about half of the time to the first answer), at the cost of a
    /// second copy of every vector on disk (4 × dimension bytes per
    /// experience). Off: snapshots hold the graph only.
    #[serde(default)]
    pub snapshot_vectors: bool,
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
            snapshot_vectors: false,
        }
    }
}
