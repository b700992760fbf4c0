//! [`ExactIndex`]: brute-force cosine search, the oracle tests compare with.

use std::collections::HashMap;
use std::path::Path;

use super::{check_vector, normalized, Hit, IndexError, Slot, SlotSet, VectorIndex};

/// Brute-force index: every search scores every live (eligible) vector.
///
/// Keeps a normalised copy of each vector, all in one contiguous matrix (a
/// scan streams through memory instead of chasing one allocation per
/// vector; removal moves the last row into the hole). Ties in similarity are
/// broken by increasing slot, so answers are deterministic. Removal is
/// immediate, so [`tombstones`](VectorIndex::tombstones) is always 0.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dimension: usize,
    /// Row-major, `dimension` floats per row.
    matrix: Vec<f32>,
    /// The slot of each row.
    slots: Vec<Slot>,
    rows: HashMap<Slot, usize>,
}

impl ExactIndex {
    /// An empty index of `dimension`-component vectors.
    pub fn new(dimension: usize) -> ExactIndex {
        ExactIndex {
            dimension,
            matrix: Vec::new(),
            slots: Vec::new(),
            rows: HashMap::new(),
        }
    }

    /// The normalised copy of a live slot's vector.
    pub fn vector(&self, slot: Slot) -> Option<&[f32]> {
        let row = *self.rows.get(&slot)?;
        self.matrix
            .get(row * self.dimension..(row + 1) * self.dimension)
    }
}

/// Inner product in `f32`: with AVX2 and FMA when the CPU has them
/// (checked at run time, so the library still runs on any x86-64), in
/// portable code otherwise.
///
/// The exact write buffer scores every buffered vector on every search, so
/// this loop is the buffer's whole cost (`cargo bench --bench index --
/// buffer_scan`; figures in `docs/performance.md`).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports both features, checked just above.
            return unsafe { dot_avx2_fma(a, b) };
        }
    }
    dot_portable(a, b)
}

/// Portable inner product over sixteen interleaved partial sums: additions
/// into one sum wait for each other, sixteen independent ones keep the
/// vector units busy.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0] + tail
}

/// Inner product with four 8-wide fused multiply-add accumulators (32
/// floats per step), then the scalar tail.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    const STEP: usize = 32;
    let n = a.len().min(b.len());
    let whole = n - n % STEP;
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < whole {
        for (j, sum) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8 * j + 8 <= whole <= both lengths; unaligned loads.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(a.as_ptr().add(i + 8 * j)),
                    _mm256_loadu_ps(b.as_ptr().add(i + 8 * j)),
                )
            };
            *sum = _mm256_fmadd_ps(x, y, *sum);
        }
        i += STEP;
    }
    let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds exactly eight floats; unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    let tail: f32 = a.iter().zip(b).skip(whole).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Best first: similarity descending, then slot ascending (a total order,
/// so answers are deterministic).
fn better(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.similarity
        .total_cmp(&a.similarity)
        .then(a.slot.cmp(&b.slot))
}

/// The `k` best hits, best first. Selects before sorting: a scan of
/// thousands of vectors keeps ten.
pub(crate) fn rank(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, better);
        hits.truncate(k);
    }
    hits.sort_by(better);
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
            if self.rows.contains_key(slot) || !batch.insert(*slot) {
                return Err(IndexError::SlotTaken(*slot));
            }
        }
        self.matrix.reserve(items.len() * self.dimension);
        for (slot, vector) in items {
            self.rows.insert(*slot, self.slots.len());
            self.slots.push(*slot);
            self.matrix.extend(normalized(vector));
        }
        Ok(())
    }

    fn remove(&mut self, slot: Slot) -> bool {
        let Some(row) = self.rows.remove(&slot) else {
            return false;
        };
        let d = self.dimension;
        let last = self.slots.len() - 1;
        if row != last {
            self.matrix.copy_within(last * d..(last + 1) * d, row * d);
            let moved = self.slots[last];
            self.slots[row] = moved;
            self.rows.insert(moved, row);
        }
        self.slots.truncate(last);
        self.matrix.truncate(last * d);
        true
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
            .slots
            .iter()
            .zip(self.matrix.chunks_exact(self.dimension))
            .filter(|(slot, _)| eligible.is_none_or(|e| e.contains(**slot)))
            .map(|(slot, v)| Hit {
                slot: *slot,
                similarity: dot(&query, v),
            })
            .collect();
        Ok(rank(hits, k))
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn tombstones(&self) -> usize {
        0
    }

    fn contains(&self, slot: Slot) -> bool {
        self.rows.contains_key(&slot)
    }

    /// Exact indexes are cheap to rebuild and are not persisted: this writes
    /// nothing.
    fn save_snapshot(&self, _path: &Path, _sequence: u64, _extra: &[u8]) -> Result<(), IndexError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(i: usize, d: usize) -> Vec<f32> {
        (0..d).map(|j| if j == i { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn removal_moves_rows_and_keeps_every_other_vector() {
        let d = 20;
        let vectors: Vec<Vec<f32>> = (0..6).map(|i| axis(i, d)).collect();
        let mut index = ExactIndex::new(d);
        let items: Vec<(Slot, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (10 + i as Slot, v.as_slice()))
            .collect();
        index.add(&items).unwrap();
        for gone in [12, 15, 10] {
            assert!(index.remove(gone));
            assert!(!index.remove(gone));
        }
        assert_eq!(index.len(), 3);
        for (i, v) in vectors.iter().enumerate() {
            let slot = 10 + i as Slot;
            let live = ![12, 15, 10].contains(&slot);
            assert_eq!(index.contains(slot), live);
            assert_eq!(
                index.vector(slot).map(<[f32]>::to_vec),
                live.then(|| v.clone())
            );
            let best = index.search(v, 1, None).unwrap();
            if live {
                assert_eq!(best[0].slot, slot);
                assert!((best[0].similarity - 1.0).abs() < 1e-6);
            } else {
                assert!(best[0].similarity.abs() < 1e-6);
            }
        }
    }

    #[test]
    fn ties_rank_by_slot_and_k_keeps_the_best() {
        let d = 20;
        let v = axis(0, d);
        let mut index = ExactIndex::new(d);
        let items: Vec<(Slot, &[f32])> =
            [7, 3, 9, 1, 5].iter().map(|s| (*s, v.as_slice())).collect();
        index.add(&items).unwrap();
        let hits = index.search(&v, 3, None).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.slot).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
        assert!(index.search(&v, 0, None).unwrap().is_empty());
        assert_eq!(index.search(&v, 10, None).unwrap().len(), 5);
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 383, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "n = {n}");
            assert!(
                (f64::from(dot_portable(&a, &b)) - plain).abs() < 1e-4,
                "n = {n}"
            );
        }
    }
}
