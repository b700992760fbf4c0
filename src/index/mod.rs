//! Vector indexes: derived data, rebuilt from redb whenever in doubt.
//!
//! A [`VectorIndex`] maps *slots* (dense `u64` numbers the owner assigns) to
//! vectors and answers cosine k-nearest-neighbour queries, optionally
//! restricted to an eligibility set ([`SlotSet`]) that is applied during the
//! traversal. [`FaissIndex`] is the production implementation; [`ExactIndex`]
//! is a brute-force oracle with the same contract.

// Parts of this layer serve only the tests and benches that use it
// directly (the `internals` feature).
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

pub(crate) mod collective;
mod config;
mod exact;
mod faiss;
mod ffi;
pub(crate) mod load;
#[cfg(test)]
mod measure;
mod slots;
mod snapshot;
mod staged;
#[cfg(test)]
mod tests;

pub use self::config::IndexConfig;
pub use self::exact::ExactIndex;
pub use self::faiss::FaissIndex;
pub use self::slots::SlotSet;
pub use self::snapshot::{RowFill, Snapshot, SnapshotFile};
pub use self::staged::StagedIndex;

use std::path::Path;

/// Position of a vector in an index, assigned by the index's owner.
pub type Slot = u64;

/// One search answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Slot of the vector found.
    pub slot: Slot,
    /// Cosine similarity to the query, in `[-1, 1]`.
    pub similarity: f32,
}

/// A failure inside a vector index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector was refused: wrong dimension, non-finite component or zero norm.
    #[error("invalid vector: {reason}")]
    InvalidVector {
        /// Why it was refused.
        reason: String,
    },
    /// The slot already holds a live vector.
    #[error("slot {0} is already occupied")]
    SlotTaken(Slot),
    /// FAISS reported an error.
    #[error("faiss: {0}")]
    Faiss(String),
    /// Reading or writing a snapshot file failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl IndexError {
    pub(crate) fn duplicate(&self) -> IndexError {
        match self {
            IndexError::InvalidVector { reason } => IndexError::InvalidVector {
                reason: reason.clone(),
            },
            IndexError::SlotTaken(s) => IndexError::SlotTaken(*s),
            IndexError::Faiss(s) => IndexError::Faiss(s.clone()),
            IndexError::Io(e) => IndexError::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// The contract every vector index keeps.
///
/// Vectors are compared by cosine similarity; implementations normalise their
/// own copy. Searches take `&self` and may run concurrently with each other;
/// mutations take `&mut self`.
pub trait VectorIndex: Send + Sync {
    /// Number of components of every vector.
    fn dimension(&self) -> usize;

    /// Adds vectors under the given slots, all or nothing.
    ///
    /// # Errors
    /// [`IndexError::InvalidVector`] for a wrong-dimension, non-finite or
    /// zero vector, [`IndexError::SlotTaken`] for a live slot; the index is
    /// unchanged.
    fn add(&mut self, items: &[(Slot, &[f32])]) -> Result<(), IndexError>;

    /// Removes a slot (a tombstone until the next rebuild). Returns whether it
    /// was live.
    fn remove(&mut self, slot: Slot) -> bool;

    /// The `k` live vectors most similar to `query`, best first, restricted to
    /// `eligible` when given. Returns `min(k, eligible live vectors)` hits.
    ///
    /// # Errors
    /// [`IndexError::InvalidVector`] for a bad query; [`IndexError::Faiss`].
    fn search(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
    ) -> Result<Vec<Hit>, IndexError>;

    /// Live vectors.
    fn len(&self) -> usize;

    /// True when no live vector is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removed vectors still taking space (always 0 for exact indexes).
    fn tombstones(&self) -> usize;

    /// Whether `slot` holds a live vector.
    fn contains(&self, slot: Slot) -> bool;

    /// Writes the index to `path` (atomically: a temporary file renamed into
    /// place) together with the change-log `sequence` it covers and an opaque
    /// `extra` payload for the owner (its slot map).
    ///
    /// # Errors
    /// [`IndexError::Io`] or [`IndexError::Faiss`]; an existing file at `path`
    /// is left as it was.
    fn save_snapshot(&self, path: &Path, sequence: u64, extra: &[u8]) -> Result<(), IndexError>;
}

/// Checks a vector against the index rules: exact dimension, every component
/// finite, not all zero.
pub(crate) fn check_vector(vector: &[f32], dimension: usize) -> Result<(), IndexError> {
    if vector.len() != dimension {
        return Err(IndexError::InvalidVector {
            reason: format!("dimension {} (expected {dimension})", vector.len()),
        });
    }
    // Branch-free, so the compiler vectorises it (this runs on every insert).
    let finite = vector.iter().fold(true, |ok, x| ok & x.is_finite());
    if !finite {
        return Err(IndexError::InvalidVector {
            reason: "non-finite component".into(),
        });
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(IndexError::InvalidVector {
            reason: "zero vector".into(),
        });
    }
    Ok(())
}

/// Returns `vector` scaled to unit length (callers have run [`check_vector`]).
pub(crate) fn normalized(vector: &[f32]) -> Vec<f32> {
    let scale = unit_scale(vector);
    vector.iter().map(|x| unit_component(*x, scale)).collect()
}

/// The factor that normalises `vector`: one over its Euclidean norm, in
/// `f64`. The squares are summed in eight lanes (added up in a fixed
/// order), which the compiler vectorises; the result is the same on every
/// call, so every normalised copy of a vector is the same.
pub(crate) fn unit_scale(vector: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = vector.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(*x) * f64::from(*x);
        }
    }
    let tail: f64 = rest.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    let norm = (lanes.iter().sum::<f64>() + tail).sqrt();
    1.0 / norm
}

/// One component of the normalised vector: every normalised copy is made
/// with this, so copies of the same vector are equal bit for bit.
#[inline]
pub(crate) fn unit_component(x: f32, scale: f64) -> f32 {
    (f64::from(x) * scale) as f32
}
