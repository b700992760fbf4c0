//! [`FaissIndex`]: the production vector index, a FAISS flat index for small
//! collectives and an HNSW graph from [`IndexConfig::hnsw_threshold`] on.
//! See [`FaissIndex`] for the layout.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::exact::{dot, rank};
use super::ffi::{RawIndex, Selection, DEAD_LABEL};
use super::{check_vector, normalized, Hit, IndexConfig, IndexError, Slot, SlotSet, VectorIndex};

/// A cosine vector index backed by FAISS (flat, then HNSW), with tombstones
/// and filtered search.
///
/// # Layout
///
/// The FAISS index is always an `IndexIDMap` whose labels are the slots, over
/// either `IndexFlat` (exact) or `IndexHNSWFlat`, with the inner-product
/// metric on L2-normalised vectors, so FAISS's score is the cosine.
///
/// Vectors are **not** duplicated on the Rust side: the only copy lives in
/// FAISS's flat storage, and rebuilds and exact scans read rows back with
/// `reconstruct` (a `d`-float copy per row). Keeping our own
/// copy would double the memory of the vectors (1.5 KB per 384-d vector,
/// 150 MB per 100 000) to save a copy per row in operations that are either
/// rare (rebuilds) or bounded by the exact-scan selectivity. What we do keep
/// is `slot → row` (a hash map entry per live vector) and the live set (one
/// bit per slot).
///
/// # Removal
///
/// HNSW cannot delete, so [`remove`](VectorIndex::remove) leaves the row in
/// place and relabels it `-1` in the id map: no selector can admit it, so it
/// is never returned, yet the graph still routes through it. While tombstones
/// exist, unfiltered searches run with the live set as selector. Removal
/// never rebuilds: when tombstones exceed [`IndexConfig::tombstone_ratio`]
/// of the rows, [`FaissIndex::needs_rebuild`] says so, and the owner
/// rebuilds from a copy of the live vectors ([`FaissIndex::copy_vectors`],
/// [`FaissIndex::from_vectors`]) without holding up searches
/// ([`StagedIndex`](super::StagedIndex) does), or in place with
/// [`FaissIndex::compact`].
///
/// # Filtered search
///
/// The caller's [`SlotSet`] is handed to FAISS as an `IDSelectorBitmap`, so
/// the filter applies during the traversal. The plan is chosen by cost
/// (`filtered_plan`): an exact scan of the eligible vectors when it costs
/// at most `SCAN_PREMIUM` times the graph traversal, always when at most
/// [`IndexConfig::exact_scan_selectivity`] of the vectors are eligible, and
/// when the graph returns fewer than `min(k, eligible)` hits. A filtered
/// graph search widens its own beam with the filter's selectivity
/// (`filtered_ef_search`, through `src/index/faiss_shim.cpp`, as the FAISS
/// C API has no HNSW search parameters); other searches use the index's
/// efSearch.
///
/// # Threads
///
/// Each search runs with one OpenMP thread (the measured effect is in `ffi.rs`);
/// builds use all cores.
///
/// # Measurements
///
/// See [`IndexConfig`] for the numbers behind the defaults.
#[derive(Debug)]
pub struct FaissIndex {
    dimension: usize,
    config: IndexConfig,
    raw: RawIndex,
    hnsw: bool,
    /// Live slots; also the selector of unfiltered searches with tombstones.
    live: SlotSet,
    /// Row in FAISS of every live slot.
    rows: HashMap<Slot, usize>,
}

// SAFETY: `FaissIndex` owns its FAISS objects exclusively (no aliases exist
// outside it) and FAISS objects have no thread affinity, so moving the owner
// to another thread is sound.
unsafe impl Send for FaissIndex {}

// SAFETY: every method taking `&self` only reads the FAISS index: `search`
// (IndexIDMap/IndexFlat/IndexHNSW `search` are `const` in FAISS and allocate
// their per-query state — result heaps, HNSW's `VisitedTable` — per call),
// `reconstruct` (const), `write_index` (const), and reads of the id-map
// labels. The one piece of state a search writes is its own
// `SearchParameters` object (IndexIDMap swaps its `sel` during the call),
// which is created per search and never shared. Every mutation (`add`,
// `remove`, rebuilds, efSearch changes) takes `&mut self`, so Rust's borrow
// rules exclude it while any search runs. FAISS documents its CPU indexes as
// safe for concurrent searches; the only shared write is the global
// `hnsw_stats` counter FAISS updates after each HNSW search, statistics this
// crate never reads. `tests::concurrent_search_with_writes` runs searches on
// several threads against an index mutated under an `RwLock`.
unsafe impl Sync for FaissIndex {}

/// How a filtered search is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilteredPlan {
    /// Exact scan of the eligible vectors.
    Scan,
    /// Graph traversal with the bitmap selector.
    Graph,
}

/// Estimated cost of the exact scan per vector component: a stored row read
/// in place (prefetched a few rows ahead) and its dot product (0.20–0.34 ns
/// at 10 000 vectors, 0.35–0.43 ns at 100 000;
/// `index::measure::measure_filtered_plan`).
const SCAN_NS_PER_COMPONENT: f64 = 0.4;
/// Estimated cost of a graph search per efSearch slot and vector component,
/// per doubling of the graph's size (measured 2.9 ns per ef-component at
/// 10 000 vectors and 4.2 at 100 000 with the widened beam of a 10 %
/// filter).
const GRAPH_NS_PER_EF_COMPONENT_LOG2_N: f64 = 0.24;
/// Widest beam a filtered graph search is given.
const MAX_FILTERED_EF: usize = 1024;
/// How much more than the graph an exact scan may cost and still be
/// chosen: the scan is exact, the widened graph about 0.99.
const SCAN_PREMIUM: f64 = 1.5;

impl FaissIndex {
    /// An empty index of `dimension`-component vectors.
    ///
    /// # Errors
    /// [`IndexError::InvalidVector`] for a zero dimension,
    /// [`IndexError::Faiss`] if FAISS cannot build the index.
    pub fn new(dimension: usize, config: &IndexConfig) -> Result<FaissIndex, IndexError> {
        if dimension == 0 {
            return Err(IndexError::InvalidVector {
                reason: "dimension 0".into(),
            });
        }
        let raw = build(dimension, config, &[], &[])?;
        Ok(FaissIndex {
            dimension,
            config: config.clone(),
            hnsw: !raw.is_flat(),
            raw,
            live: SlotSet::default(),
            rows: HashMap::new(),
        })
    }

    /// Whether the HNSW graph is in use (otherwise searches are exact).
    pub fn is_hnsw(&self) -> bool {
        self.hnsw
    }

    /// The settings this index was built with.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Settings, for measurements that switch search strategies.
    #[cfg(test)]
    pub(crate) fn config_mut(&mut self) -> &mut IndexConfig {
        &mut self.config
    }

    /// Sets HNSW `efSearch` directly, for measurements.
    #[cfg(test)]
    pub(crate) fn raw_set_ef_search(&mut self, ef: usize) {
        let _ = self.raw.set_parameter("efSearch", ef as f64);
    }

    /// Whether tombstones exceed [`IndexConfig::tombstone_ratio`] of the rows.
    pub fn needs_compaction(&self) -> bool {
        let total = self.raw.ntotal();
        total > 0
            && self.tombstones() as f64 / total as f64 > f64::from(self.config.tombstone_ratio)
    }

    /// Whether a rebuild is due: too many tombstones, or a flat index that
    /// grew past [`IndexConfig::hnsw_threshold`] through the write buffer's
    /// drain (which never builds the graph itself).
    pub fn needs_rebuild(&self) -> bool {
        self.needs_compaction() || (!self.hnsw && self.live.len() >= self.config.hnsw_threshold)
    }

    /// An index holding `slots` with their vectors (already normalised,
    /// concatenated in the order of `slots`, as [`FaissIndex::copy_vectors`]
    /// gives them): flat below [`IndexConfig::hnsw_threshold`], HNSW from it on.
    ///
    /// # Errors
    /// [`IndexError::InvalidVector`] when the lengths disagree,
    /// [`IndexError::Faiss`].
    pub fn from_vectors(
        dimension: usize,
        config: &IndexConfig,
        slots: &[Slot],
        vectors: &[f32],
    ) -> Result<FaissIndex, IndexError> {
        if dimension == 0 || vectors.len() != slots.len() * dimension {
            return Err(IndexError::InvalidVector {
                reason: format!(
                    "{} components for {} vectors of dimension {dimension}",
                    vectors.len(),
                    slots.len()
                ),
            });
        }
        let raw = build(dimension, config, slots, vectors)?;
        Ok(FaissIndex::over(raw, dimension, config, slots))
    }

    /// The index over `raw`, whose rows are `slots` in order.
    fn over(raw: RawIndex, dimension: usize, config: &IndexConfig, slots: &[Slot]) -> FaissIndex {
        FaissIndex {
            dimension,
            config: config.clone(),
            hnsw: !raw.is_flat(),
            raw,
            live: slots.iter().copied().collect(),
            rows: slots.iter().enumerate().map(|(row, s)| (*s, row)).collect(),
        }
    }

    /// Live slots in increasing order.
    pub fn live_slots(&self) -> Vec<Slot> {
        self.live.iter().collect()
    }

    /// Appends each of `slots` that is live, and its stored (normalised)
    /// vector, to `kept` and `vectors`; removed slots are skipped.
    ///
    /// # Errors
    /// [`IndexError::Faiss`] when FAISS cannot give a row back.
    pub fn copy_vectors(
        &self,
        slots: &[Slot],
        kept: &mut Vec<Slot>,
        vectors: &mut Vec<f32>,
    ) -> Result<(), IndexError> {
        for slot in slots {
            let Some(row) = self.rows.get(slot) else {
                continue;
            };
            let start = vectors.len();
            vectors.resize(start + self.dimension, 0.0);
            self.raw.reconstruct_row(*row, &mut vectors[start..])?;
            kept.push(*slot);
        }
        Ok(())
    }

    /// The stored (normalised) vector of a live slot.
    pub fn vector(&self, slot: Slot) -> Option<Vec<f32>> {
        let row = *self.rows.get(&slot)?;
        let mut out = vec![0f32; self.dimension];
        self.raw.reconstruct_row(row, &mut out).ok()?;
        Some(out)
    }

    /// Rebuilds the index from the live vectors (in slot order), dropping
    /// every tombstone. Flat below [`IndexConfig::hnsw_threshold`], HNSW from
    /// it on. Answers are unchanged for the flat index and identical to those
    /// of a fresh index of the live set for HNSW.
    ///
    /// # Errors
    /// [`IndexError::Faiss`]; the index is then left as it was.
    pub fn compact(&mut self) -> Result<(), IndexError> {
        let (slots, vectors) = self.live_vectors()?;
        let raw = build(self.dimension, &self.config, &slots, &vectors)?;
        self.install(raw, &slots);
        Ok(())
    }

    /// Live slots in increasing order and their (normalised) vectors,
    /// concatenated.
    fn live_vectors(&self) -> Result<(Vec<Slot>, Vec<f32>), IndexError> {
        let slots: Vec<Slot> = self.live.iter().collect();
        let mut vectors = vec![0f32; slots.len() * self.dimension];
        for (slot, out) in slots.iter().zip(vectors.chunks_exact_mut(self.dimension)) {
            let row = self.row(*slot)?;
            self.raw.reconstruct_row(row, out)?;
        }
        Ok((slots, vectors))
    }

    fn row(&self, slot: Slot) -> Result<usize, IndexError> {
        self.rows
            .get(&slot)
            .copied()
            .ok_or_else(|| IndexError::Faiss(format!("live slot {slot} has no row")))
    }

    /// Replaces the FAISS index with `raw`, whose rows are `slots` in order.
    fn install(&mut self, raw: RawIndex, slots: &[Slot]) {
        let next = FaissIndex::over(raw, self.dimension, &self.config, slots);
        *self = next;
    }

    /// Exact scan of the live vectors in `eligible` (all when `None`).
    pub(super) fn exact_scan(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        let d = self.dimension;
        let candidates: Box<dyn Iterator<Item = Slot>> = match eligible {
            Some(e) => Box::new(e.iter().filter(|s| self.live.contains(*s))),
            None => Box::new(self.live.iter()),
        };
        let mut hits = Vec::new();
        let mut score = |slot: Slot, vector: &[f32]| {
            hits.push(Hit {
                slot,
                similarity: dot(query, vector).clamp(-1.0, 1.0),
            });
        };
        if let Some(rows) = self.raw.flat_rows() {
            let picked = candidates
                .map(|slot| {
                    let start = self.row(slot)? * d;
                    match rows.get(start..start + d) {
                        Some(_) => Ok((slot, start)),
                        None => Err(IndexError::Faiss(format!(
                            "row of slot {slot} out of range"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (i, (slot, start)) in picked.iter().enumerate() {
                if let Some((_, ahead)) = picked.get(i + PREFETCH_AHEAD) {
                    prefetch(&rows[*ahead..*ahead + d]);
                }
                score(*slot, &rows[*start..*start + d]);
            }
        } else {
            let mut buffer = vec![0f32; d];
            for slot in candidates {
                self.raw.reconstruct_row(self.row(slot)?, &mut buffer)?;
                score(slot, &buffer);
            }
        }
        Ok(rank(hits, k))
    }

    /// The graph's (or flat index's) `k` best for a normalised query, best
    /// first, restricted to `eligible` by a bitmap selector; `ef_search`
    /// sets an HNSW graph's beam for this search (`None`: the index's own).
    pub(super) fn search_graph(
        &self,
        query: &[f32],
        k: usize,
        eligible: Option<&SlotSet>,
        ef_search: Option<usize>,
    ) -> Result<Vec<Hit>, IndexError> {
        let bitmap = match eligible {
            Some(e) => Some(e.as_bytes()),
            None if self.tombstones() > 0 => Some(self.live.as_bytes()),
            None => None,
        };
        let selection = bitmap.map(Selection::bitmap).transpose()?;
        let ef_search = ef_search.filter(|_| self.hnsw);
        let found = self.raw.search(query, k, ef_search, selection.as_ref())?;
        drop(selection);
        Ok(found
            .into_iter()
            .map(|(similarity, label)| Hit {
                slot: label as u64,
                similarity: similarity.clamp(-1.0, 1.0),
            })
            .collect())
    }

    /// How to answer a filtered search with `eligible` live vectors
    /// eligible: an exact scan of them when its estimated cost is at most
    /// [`SCAN_PREMIUM`] times the graph traversal's, or when at most
    /// [`IndexConfig::exact_scan_selectivity`] of the vectors are eligible;
    /// otherwise the graph.
    pub(super) fn filtered_plan(&self, eligible: usize) -> FilteredPlan {
        let live = self.live.len().max(1);
        let fraction = eligible as f64 / live as f64;
        if fraction <= f64::from(self.config.exact_scan_selectivity) {
            return FilteredPlan::Scan;
        }
        let d = self.dimension as f64;
        let scan_ns = eligible as f64 * d * SCAN_NS_PER_COMPONENT;
        let ef = filtered_ef_search(self.config.ef_search, 0, fraction) as f64;
        let graph_ns = ef * d * GRAPH_NS_PER_EF_COMPONENT_LOG2_N * (live as f64).log2().max(1.0);
        if scan_ns <= SCAN_PREMIUM * graph_ns {
            FilteredPlan::Scan
        } else {
            FilteredPlan::Graph
        }
    }

    /// Adds the snapshot contents back: rebuilds the slot map from the FAISS
    /// id map and checks it against the stored tombstone rows.
    pub(crate) fn from_raw(
        raw: RawIndex,
        config: &IndexConfig,
        dimension: usize,
        dead_rows: &[u64],
    ) -> Result<FaissIndex, String> {
        if !raw.is_id_map() {
            return Err("not an IndexIDMap".into());
        }
        if raw.dimension() != dimension {
            return Err(format!(
                "dimension {} (expected {dimension})",
                raw.dimension()
            ));
        }
        let mut live = SlotSet::default();
        let mut rows = HashMap::new();
        let mut dead = Vec::new();
        for (row, label) in raw.labels().iter().enumerate() {
            if *label == DEAD_LABEL {
                dead.push(row as u64);
            } else if *label < 0 || !live.insert(*label as u64) {
                return Err(format!("bad or repeated label {label}"));
            } else {
                rows.insert(*label as u64, row);
            }
        }
        if dead != dead_rows {
            return Err("tombstone list does not match the index".into());
        }
        let mut index = FaissIndex {
            dimension,
            config: config.clone(),
            hnsw: !raw.is_flat(),
            raw,
            live,
            rows,
        };
        if index.hnsw {
            index
                .raw
                .set_parameter("efSearch", config.ef_search as f64)
                .map_err(|e| e.to_string())?;
        }
        Ok(index)
    }

    /// The FAISS index serialised by `write_index`.
    pub(crate) fn faiss_bytes(&self) -> Result<Vec<u8>, IndexError> {
        // Vectors, plus up to 2·M level-0 links and bookkeeping per row for
        // HNSW; a little slack for headers and upper levels.
        let rows = self.raw.ntotal();
        let links = if self.hnsw {
            2 * self.config.hnsw_m + 8
        } else {
            0
        };
        let per_row = self.dimension * 4 + links * 4 + 16;
        self.raw
            .to_bytes(rows.saturating_mul(per_row) + rows / 8 + 4096)
    }

    /// As [`VectorIndex::add`] for vectors already normalised by
    /// [`normalized`] (those of an [`ExactIndex`](super::ExactIndex)): they
    /// are stored as given, bit for bit, which snapshots rely on (a vector
    /// normalised twice can differ in its last bits).
    ///
    /// It never builds the HNSW graph: a flat index that grows past
    /// [`IndexConfig::hnsw_threshold`] stays flat (exact, still correct)
    /// until its owner rebuilds it ([`FaissIndex::needs_rebuild`]).
    pub(crate) fn add_normalized(&mut self, items: &[(Slot, &[f32])]) -> Result<(), IndexError> {
        self.insert(items, false)
    }

    fn insert(&mut self, items: &[(Slot, &[f32])], normalize: bool) -> Result<(), IndexError> {
        let mut batch = HashSet::with_capacity(items.len());
        for (slot, vector) in items {
            check_vector(vector, self.dimension)?;
            if self.live.contains(*slot) || !batch.insert(*slot) {
                return Err(IndexError::SlotTaken(*slot));
            }
        }
        let new_slots: Vec<Slot> = items.iter().map(|(s, _)| *s).collect();
        let ids = labels(&new_slots)?;
        let mut vectors = Vec::with_capacity(items.len() * self.dimension);
        for (_, v) in items {
            if normalize {
                vectors.extend(normalized(v));
            } else {
                vectors.extend_from_slice(v);
            }
        }
        if normalize && !self.hnsw && self.live.len() + items.len() >= self.config.hnsw_threshold {
            // Crossing the threshold: build the graph from everything live.
            let (mut slots, mut all) = self.live_vectors()?;
            slots.extend_from_slice(&new_slots);
            all.extend_from_slice(&vectors);
            let raw = build(self.dimension, &self.config, &slots, &all)?;
            self.install(raw, &slots);
            return Ok(());
        }
        let first_row = self.raw.ntotal();
        self.raw.add_with_ids(&vectors, &ids)?;
        for (i, slot) in new_slots.iter().enumerate() {
            self.rows.insert(*slot, first_row + i);
            self.live.insert(*slot);
        }
        Ok(())
    }

    /// The FAISS id map: the slot of every row, `-1` for removed ones.
    pub(crate) fn labels(&self) -> &[i64] {
        self.raw.labels()
    }

    /// Rows holding removed vectors, in increasing order.
    pub(crate) fn dead_rows(&self) -> Vec<u64> {
        self.raw
            .labels()
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == DEAD_LABEL)
            .map(|(row, _)| row as u64)
            .collect()
    }
}

/// Rows an exact scan asks the memory for ahead of the one it scores.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring `data` into its caches. An exact scan reads
/// scattered rows of several cache lines each; fetching a few rows ahead
/// overlaps their memory latency with the dot products.
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64 / std::mem::size_of::<f32>();
        for line in data.chunks(LINE) {
            // SAFETY: a prefetch is a hint that never faults; the pointer is
            // in bounds of `data` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }
}

/// Beam width of a graph search admitting `fraction` of the vectors.
///
/// FAISS's filtered HNSW traversal keeps ineligible vertices in its beam
/// (they route the search) but returns only eligible ones, so a beam of
/// `ef` holds fewer usable results the narrower the filter. Widening it by
/// `fraction^(-1/3)` keeps recall@10 at or above 0.99 on 100 000 vectors
/// from half of them down to a fiftieth (0.982 at a tenth with the plain
/// efSearch 96; `index::measure::measure_filtered_plan`). On smaller graphs
/// a narrow filter needs a wider beam still, but there the exact scan is
/// cheaper and [`FaissIndex::filtered_plan`] chooses it. Capped at
/// [`MAX_FILTERED_EF`].
pub(super) fn filtered_ef_search(ef_search: usize, k: usize, fraction: f64) -> usize {
    let base = ef_search.max(k).max(1) as f64;
    let widened = base / fraction.clamp(1e-6, 1.0).cbrt();
    (widened.ceil() as usize).min(MAX_FILTERED_EF.max(ef_search))
}

/// Builds a FAISS index holding `slots` (vectors already normalised,
/// concatenated): flat below the HNSW threshold, HNSW from it on.
fn build(
    dimension: usize,
    config: &IndexConfig,
    slots: &[Slot],
    vectors: &[f32],
) -> Result<RawIndex, IndexError> {
    let hnsw = slots.len() >= config.hnsw_threshold;
    let description = if hnsw {
        format!("IDMap,HNSW{},Flat", config.hnsw_m.max(2))
    } else {
        "IDMap,Flat".to_owned()
    };
    let mut raw = RawIndex::factory(dimension, &description)?;
    if !raw.is_id_map() {
        return Err(IndexError::Faiss(format!("{description} is not an id map")));
    }
    if hnsw {
        raw.set_parameter("efConstruction", config.ef_construction.max(1) as f64)?;
        raw.set_parameter("efSearch", config.ef_search.max(1) as f64)?;
    }
    if !slots.is_empty() {
        let ids = labels(slots)?;
        raw.add_with_ids(vectors, &ids)?;
    }
    Ok(raw)
}

/// Slots as FAISS labels (FAISS labels are signed; `-1` means "none").
fn labels(slots: &[Slot]) -> Result<Vec<i64>, IndexError> {
    slots
        .iter()
        .map(|s| {
            i64::try_from(*s).map_err(|_| IndexError::InvalidVector {
                reason: format!("slot {s} exceeds {}", i64::MAX),
            })
        })
        .collect()
}

impl VectorIndex for FaissIndex {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn add(&mut self, items: &[(Slot, &[f32])]) -> Result<(), IndexError> {
        self.insert(items, true)
    }

    /// Tombstones `slot` (its row stays until a rebuild; see
    /// [`FaissIndex::needs_rebuild`]). Constant time: never rebuilds.
    fn remove(&mut self, slot: Slot) -> bool {
        if !self.live.remove(slot) {
            return false;
        }
        if let Some(row) = self.rows.remove(&slot) {
            if let Some(label) = self.raw.labels_mut().get_mut(row) {
                *label = DEAD_LABEL;
            }
        }
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
        let available = match eligible {
            Some(e) => e.intersection_len(&self.live),
            None => self.live.len(),
        };
        let wanted = k.min(available);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        if self.hnsw && eligible.is_some() && self.filtered_plan(available) == FilteredPlan::Scan {
            return self.exact_scan(&query, k, eligible);
        }
        // A filtered graph search widens its beam with the filter's
        // selectivity.
        let ef_search = eligible.map(|_| {
            let fraction = available as f64 / self.live.len().max(1) as f64;
            filtered_ef_search(self.config.ef_search, k, fraction)
        });
        let hits = self.search_graph(&query, k, eligible, ef_search)?;
        if hits.len() < wanted {
            return self.exact_scan(&query, k, eligible);
        }
        Ok(hits)
    }

    fn len(&self) -> usize {
        self.live.len()
    }

    fn tombstones(&self) -> usize {
        self.raw.ntotal().saturating_sub(self.live.len())
    }

    fn contains(&self, slot: Slot) -> bool {
        self.live.contains(slot)
    }

    fn save_snapshot(&self, path: &Path, sequence: u64, extra: &[u8]) -> Result<(), IndexError> {
        super::snapshot::write(self, path, sequence, extra)
    }
}
