//! Index settings (part of the engine [`Config`](crate::Config)).

use serde::{Deserialize, Serialize};

/// Vector index settings, per collective.
///
/// Defaults were chosen by measurement on a 2-core x86-64 machine with
/// clustered 384-dimension vectors (see `src/index/faiss.rs`).
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
            hnsw_threshold: 5_000,
            hnsw_m: 32,
            ef_construction: 64,
            ef_search: 64,
            tombstone_ratio: 0.2,
            exact_scan_selectivity: 0.02,
            snapshots: true,
        }
    }
}
