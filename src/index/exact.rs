//! [`ExactIndex`]: brute-force cosine search, the oracle tests compare with.

use std::collections::HashMap;
use std::path::Path;

use super::{check_vector, normalized, Hit, IndexError, Slot, SlotSet, VectorIndex};

/// Brute-force index: every search scores every live (eligible) vector.
///
/// Keeps a normalised copy of each vector. Ties in similarity are broken by
/// increasing slot, so answers are deterministic. Removal is immediate, so
/// [`tombstones`](VectorIndex::tombstones) is always 0.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dimension: usize,
    vectors: HashMap<Slot, Vec<f32>>,
}

impl ExactIndex {
    /// An empty index of `dimension`-component vectors.
    pub fn new(dimension: usize) -> ExactIndex {
        ExactIndex {
            dimension,
            vectors: HashMap::new(),
        }
    }

    /// The normalised copy of a live slot's vector.
    pub fn vector(&self, slot: Slot) -> Option<&[f32]> {
        self.vectors.get(&slot).map(Vec::as_slice)
    }
}

/// Inner product in `f32` (four interleaved partial sums: fewer dependent
/// additions, and a loop the optimiser vectorises).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f32 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Sorts hits best first (similarity descending, then slot ascending) and
/// keeps `k`.
pub(crate) fn rank(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    hits.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.slot.cmp(&b.slot))
    });
    hits.truncate(k);
    hits
}

impl VectorIndex for ExactIndex {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn add(&mut self, items: &[(Slot, &[f32])]) -> Result<(), IndexError> {
        let mut batch = SlotSet::default();
        for (slot, vector) in items {
            check_vector(vector, self.dimension)?;
            if self.vectors.contains_key(slot) || !batch.insert(*slot) {
                return Err(IndexError::SlotTaken(*slot));
            }
        }
        for (slot, vector) in items {
            self.vectors.insert(*slot, normalized(vector));
        }
        Ok(())
    }

    fn remove(&mut self, slot: Slot) -> bool {
        self.vectors.remove(&slot).is_some()
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        check_vector(query, self.dimension)?;
        let query = normalized(query);
        let hits = self
            .vectors
            .iter()
            .filter(|(slot, _)| eligible.is_none_or(|e| e.contains(**slot)))
            .map(|(slot, v)| Hit {
                slot: *slot,
                similarity: dot(&query, v),
            })
            .collect();
        Ok(rank(hits, k))
    }

    fn len(&self) -> usize {
        self.vectors.len()
    }

    fn tombstones(&self) -> usize {
        0
    }

    fn contains(&self, slot: Slot) -> bool {
        self.vectors.contains_key(&slot)
    }

    /// Exact indexes are cheap to rebuild and are not persisted: this writes
    /// nothing.
    fn save_snapshot(&self, _path: &Path, _sequence: u64, _extra: &[u8]) -> Result<(), IndexError> {
        Ok(())
    }
}
