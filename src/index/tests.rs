//! Index tests: FAISS against the exact oracle, filters, removal, snapshots,
//! validation, concurrency and resource use.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

pub(super) const DIM: usize = 384;

/// `n` vectors around `centres` cluster centres on the unit sphere: centre
/// plus gaussian noise (sigma 0.03 per component), normalised.
pub(super) fn clustered(rng: &mut StdRng, centres: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..centres.len())];
            let v: Vec<f32> = c.iter().map(|x| x + 0.03 * gaussian(rng)).collect();
            normalized(&v)
        })
        .collect()
}

pub(super) fn centres(rng: &mut StdRng, count: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|_| normalized(&(0..dim).map(|_| gaussian(rng)).collect::<Vec<_>>()))
        .collect()
}

/// Standard normal sample (Box–Muller).
pub(super) fn gaussian(rng: &mut StdRng) -> f32 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let v: f64 = rng.gen();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

fn random_vectors(rng: &mut StdRng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..dim).map(|_| gaussian(rng)).collect())
        .collect()
}

fn items(vectors: &[Vec<f32>]) -> Vec<(Slot, &[f32])> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as Slot, v.as_slice()))
        .collect()
}

/// The shared 20 000-vector clustered fixture with HNSW active, with the
/// oracle's top 10 for each query (the oracle is slow in the test profile).
pub(super) struct Fixture {
    pub faiss: FaissIndex,
    pub exact: ExactIndex,
    pub queries: Vec<Vec<f32>>,
    pub truth: Vec<Vec<Hit>>,
}

pub(super) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(7);
        let centres = centres(&mut rng, 100, DIM);
        let vectors = clustered(&mut rng, &centres, 20_000);
        let queries = clustered(&mut rng, &centres, 100);
        let mut faiss = FaissIndex::new(DIM, &IndexConfig::default()).unwrap();
        let mut exact = ExactIndex::new(DIM);
        faiss.add(&items(&vectors)).unwrap();
        exact.add(&items(&vectors)).unwrap();
        assert!(faiss.is_hnsw());
        let truth = queries
            .iter()
            .map(|q| exact.search(q, 10, None).unwrap())
            .collect();
        Fixture {
            faiss,
            exact,
            queries,
            truth,
        }
    })
}

fn assert_same(a: &[Hit], b: &[Hit]) {
    let slots = |h: &[Hit]| h.iter().map(|h| h.slot).collect::<Vec<_>>();
    assert_eq!(slots(a), slots(b));
    for (x, y) in a.iter().zip(b) {
        assert!((x.similarity - y.similarity).abs() < 1e-5, "{x:?} vs {y:?}");
    }
}

fn recall(got: &[Hit], truth: &[Hit]) -> f64 {
    let hit = got
        .iter()
        .filter(|h| truth.iter().any(|t| t.slot == h.slot))
        .count();
    hit as f64 / truth.len().max(1) as f64
}

fn every_nth(n: usize, total: usize) -> SlotSet {
    (0..total as Slot).filter(|s| s % n as Slot == 0).collect()
}

#[test]
fn slot_set_layout_and_counts() {
    let mut set = SlotSet::new(16);
    assert!(set.insert(0));
    assert!(set.insert(9));
    assert!(set.insert(15));
    assert!(!set.insert(9));
    assert_eq!(set.len(), 3);
    assert_eq!(set.as_bytes(), &[0b0000_0001, 0b1000_0010]);
    for i in 0..16u64 {
        let bit = (set.as_bytes()[(i >> 3) as usize] >> (i & 7)) & 1;
        assert_eq!(bit == 1, set.contains(i));
    }
    assert!(!set.contains(1_000_000));
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 9, 15]);
    assert!(set.remove(9));
    assert!(!set.remove(9));
    assert_eq!(set.len(), 2);
    let other: SlotSet = [0, 15, 200].into_iter().collect();
    assert_eq!(set.intersection_len(&other), 2);
    assert_eq!(
        set.intersection(&other).iter().collect::<Vec<_>>(),
        vec![0, 15]
    );
}

#[test]
fn flat_equals_exact_below_threshold() {
    let mut rng = StdRng::seed_from_u64(1);
    let vectors = random_vectors(&mut rng, 1_500, 64);
    let mut faiss = FaissIndex::new(64, &IndexConfig::default()).unwrap();
    let mut exact = ExactIndex::new(64);
    faiss.add(&items(&vectors)).unwrap();
    exact.add(&items(&vectors)).unwrap();
    assert!(!faiss.is_hnsw());
    let filter = every_nth(3, 1_500);
    for q in random_vectors(&mut rng, 50, 64) {
        for k in [1, 10, 100] {
            assert_same(
                &faiss.search(&q, k, None).unwrap(),
                &exact.search(&q, k, None).unwrap(),
            );
            assert_same(
                &faiss.search(&q, k, Some(&filter)).unwrap(),
                &exact.search(&q, k, Some(&filter)).unwrap(),
            );
        }
    }
    // More than there is: everything, best first.
    assert_eq!(faiss.search(&vectors[0], 5_000, None).unwrap().len(), 1_500);
}

#[test]
fn hnsw_recall_at_10() {
    let f = fixture();
    let total: f64 = f
        .queries
        .iter()
        .zip(&f.truth)
        .map(|(q, truth)| recall(&f.faiss.search(q, 10, None).unwrap(), truth))
        .sum();
    let r = total / f.queries.len() as f64;
    assert!(r >= 0.95, "recall@10 = {r}");
}

#[test]
fn filtered_search_returns_k_eligible() {
    let f = fixture();
    // 50 %, 10 %, 1 %, 0.1 % of 20 000.
    for n in [2, 10, 100, 1_000] {
        let filter = every_nth(n, 20_000);
        let mut total = 0.0;
        for (i, q) in f.queries.iter().enumerate() {
            let hits = f.faiss.search(q, 10, Some(&filter)).unwrap();
            assert_eq!(hits.len(), 10, "selectivity 1/{n}");
            assert!(hits.iter().all(|h| filter.contains(h.slot)));
            assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
            // The oracle is slow in the test profile: compare a sample.
            if i < 10 {
                total += recall(&hits, &f.exact.search(q, 10, Some(&filter)).unwrap());
            }
        }
        assert!(
            total / 10.0 >= 0.9,
            "filtered recall 1/{n}: {}",
            total / 10.0
        );
    }
    // Fewer eligible than k: all of them.
    let few: SlotSet = [3, 5, 7].into_iter().collect();
    let hits = f.faiss.search(&f.queries[0], 10, Some(&few)).unwrap();
    assert_eq!(hits.len(), 3);
    // Nothing eligible, or eligible slots that hold nothing.
    let none: SlotSet = [50_000].into_iter().collect();
    assert!(f
        .faiss
        .search(&f.queries[0], 10, Some(&none))
        .unwrap()
        .is_empty());
    assert!(f
        .faiss
        .search(&f.queries[0], 10, Some(&SlotSet::default()))
        .unwrap()
        .is_empty());
}

/// A filter narrow enough that the filtered graph loses recall (5 % of
/// 20 000: the graph alone finds about three quarters of the true top 10)
/// is answered by the exact scan the cost plan picks for it: exact.
#[test]
fn a_narrow_filter_is_answered_exactly() {
    let f = fixture();
    let filter = every_nth(20, 20_000);
    assert_eq!(
        f.faiss.filtered_plan(filter.len()),
        super::faiss::FilteredPlan::Scan
    );
    for q in f.queries.iter().take(20) {
        let hits = f.faiss.search(q, 10, Some(&filter)).unwrap();
        let want = f.exact.search(q, 10, Some(&filter)).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.slot).collect::<Vec<_>>(),
            want.iter().map(|h| h.slot).collect::<Vec<_>>()
        );
    }
    // A wide one goes through the graph.
    let wide = every_nth(2, 20_000);
    assert_eq!(
        f.faiss.filtered_plan(wide.len()),
        super::faiss::FilteredPlan::Graph
    );
}

/// A filtered graph search sets its own beam width: a narrower beam than
/// the index's loses recall, the widened one gains it, and neither changes
/// the index's efSearch for the searches that follow.
#[test]
fn the_beam_width_is_set_per_search() {
    let f = fixture();
    let filter = every_nth(50, 20_000);
    let recall_with = |ef: Option<usize>| {
        let total: f64 = f
            .queries
            .iter()
            .take(20)
            .map(|q| {
                let hits = f.faiss.search_graph(q, 10, Some(&filter), ef).unwrap();
                assert!(hits.iter().all(|h| filter.contains(h.slot)));
                recall(&hits, &f.exact.search(q, 10, Some(&filter)).unwrap())
            })
            .sum();
        total / 20.0
    };
    let unfiltered = |q: &[f32]| f.faiss.search_graph(q, 10, None, None).unwrap();
    let before: Vec<Vec<Hit>> = f.queries.iter().take(5).map(|q| unfiltered(q)).collect();
    let narrow = recall_with(Some(10));
    let own = recall_with(None);
    let widened = recall_with(Some(super::faiss::filtered_ef_search(96, 10, 0.02)));
    eprintln!(
        "recall at 2 % with efSearch 10 / the index's / widened: {narrow} / {own} / {widened}"
    );
    // Measured 0.30 / 0.47 / 0.84 (the plan answers so narrow a filter on
    // so small a graph with the exact scan).
    assert!(narrow + 0.1 < own, "narrow {narrow}, own {own}");
    assert!(own + 0.2 < widened, "own {own}, widened {widened}");
    for (q, hits) in f.queries.iter().zip(&before) {
        assert_same(&unfiltered(q), hits);
    }
}

#[test]
fn the_beam_widens_as_the_filter_narrows() {
    use super::faiss::filtered_ef_search as ef;
    assert_eq!(ef(96, 10, 1.0), 96);
    assert_eq!(ef(96, 200, 1.0), 200);
    let widths: Vec<usize> = [0.5, 0.2, 0.1, 0.05, 0.02]
        .iter()
        .map(|f| ef(96, 10, *f))
        .collect();
    assert!(widths.windows(2).all(|w| w[0] < w[1]), "{widths:?}");
    assert_eq!(ef(96, 10, 0.0), 1024);
    assert_eq!(ef(2048, 10, 0.001), 2048);
}

fn small_hnsw_config() -> IndexConfig {
    IndexConfig {
        hnsw_threshold: 500,
        ..IndexConfig::default()
    }
}

#[test]
fn removed_vectors_never_returned_and_rebuild_matches_fresh() {
    let mut rng = StdRng::seed_from_u64(3);
    let centres = centres(&mut rng, 20, 32);
    let vectors = clustered(&mut rng, &centres, 2_000);
    let queries = clustered(&mut rng, &centres, 30);
    let config = IndexConfig {
        tombstone_ratio: 0.3,
        ..small_hnsw_config()
    };
    let mut index = FaissIndex::new(32, &config).unwrap();
    index.add(&items(&vectors)).unwrap();
    assert!(index.is_hnsw());
    // Remove 25 %: below the ratio, so tombstones stay.
    let mut removed = SlotSet::default();
    for slot in (0..2_000).filter(|s| s % 4 == 0) {
        assert!(index.remove(slot));
        removed.insert(slot);
    }
    assert!(!index.remove(0));
    assert_eq!(index.tombstones(), 500);
    assert_eq!(index.len(), 1_500);
    let filter = every_nth(2, 2_000);
    for q in &queries {
        let hits = index.search(q, 10, None).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| !removed.contains(h.slot)));
        let hits = index.search(q, 10, Some(&filter)).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits
            .iter()
            .all(|h| !removed.contains(h.slot) && filter.contains(h.slot)));
    }
    // A removed slot can be reused.
    index.add(&[(0, vectors[1].as_slice())]).unwrap();
    assert!(index
        .search(&vectors[1], 2, None)
        .unwrap()
        .iter()
        .any(|h| h.slot == 0));
    assert!(index.remove(0));
    // Pass the ratio (501 + 300 of 2 001 rows): removal stays constant-time
    // and the index asks for a rebuild.
    assert!(!index.needs_rebuild());
    for slot in (0..2_000).filter(|s| s % 4 == 1).take(300) {
        assert!(index.remove(slot));
        removed.insert(slot);
    }
    assert_eq!(index.tombstones(), 801);
    assert!(index.needs_rebuild());
    index.compact().unwrap();
    assert!(!index.needs_rebuild());
    assert_eq!(index.tombstones(), 0);
    assert_eq!(index.len(), 1_200);
    // Identical to a fresh index of the live set.
    let live: Vec<(Slot, &[f32])> = (0..2_000u64)
        .filter(|s| !removed.contains(*s))
        .map(|s| (s, vectors[s as usize].as_slice()))
        .collect();
    let mut fresh = FaissIndex::new(32, &config).unwrap();
    fresh.add(&live).unwrap();
    for q in &queries {
        let hits = index.search(q, 10, None).unwrap();
        assert!(hits.iter().all(|h| !removed.contains(h.slot)));
        assert_same(&hits, &fresh.search(q, 10, None).unwrap());
        assert_same(
            &index.search(q, 10, Some(&filter)).unwrap(),
            &fresh.search(q, 10, Some(&filter)).unwrap(),
        );
    }
}

#[test]
fn invalid_vectors_refused_and_index_unchanged() {
    let mut rng = StdRng::seed_from_u64(4);
    let vectors = random_vectors(&mut rng, 100, 16);
    let mut faiss = FaissIndex::new(16, &IndexConfig::default()).unwrap();
    let mut exact = ExactIndex::new(16);
    faiss.add(&items(&vectors)).unwrap();
    exact.add(&items(&vectors)).unwrap();
    let query = vectors[5].clone();
    let before = faiss.search(&query, 10, None).unwrap();

    let mut nan = vectors[0].clone();
    nan[3] = f32::NAN;
    let mut inf = vectors[0].clone();
    inf[0] = f32::INFINITY;
    let zero = vec![0.0; 16];
    let short = vec![1.0; 15];
    let good = vectors[1].clone();
    for bad in [&nan, &inf, &zero, &short] {
        let batch = [(500, good.as_slice()), (501, bad.as_slice())];
        for index in [&mut faiss as &mut dyn VectorIndex, &mut exact] {
            assert!(matches!(
                index.add(&batch),
                Err(IndexError::InvalidVector { .. })
            ));
            assert!(matches!(
                index.search(bad, 5, None),
                Err(IndexError::InvalidVector { .. })
            ));
            assert_eq!(index.len(), 100);
            assert!(!index.contains(500));
        }
    }
    // Taken slots: live, or twice in one batch.
    for index in [&mut faiss as &mut dyn VectorIndex, &mut exact] {
        assert!(matches!(
            index.add(&[(500, good.as_slice()), (3, good.as_slice())]),
            Err(IndexError::SlotTaken(3))
        ));
        assert!(matches!(
            index.add(&[(600, good.as_slice()), (600, good.as_slice())]),
            Err(IndexError::SlotTaken(600))
        ));
        assert_eq!(index.len(), 100);
        assert!(!index.contains(500) && !index.contains(600));
    }
    assert_same(&faiss.search(&query, 10, None).unwrap(), &before);
    assert!(faiss.search(&query, 0, None).unwrap().is_empty());
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulsedb-index-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let dir = temp_dir("snapshot");
    let mut rng = StdRng::seed_from_u64(5);
    let centres = centres(&mut rng, 10, 24);
    let vectors = clustered(&mut rng, &centres, 1_000);
    let queries = clustered(&mut rng, &centres, 20);
    let config = small_hnsw_config();
    let filter = every_nth(3, 1_000);
    let mut given = |slot: Slot| vectors.get(slot as usize).cloned();
    for (name, count) in [("flat", 300), ("hnsw", 1_000)] {
        let mut index = FaissIndex::new(24, &config).unwrap();
        index.add(&items(&vectors[..count])).unwrap();
        assert_eq!(index.is_hnsw(), count >= 500);
        for slot in [1, 2, 3, 50] {
            index.remove(slot);
        }
        let path = dir.join(format!("{name}.snap"));
        index.save_snapshot(&path, 42, b"slot map").unwrap();
        assert!(!dir.join(format!("{name}.snap.tmp")).exists());
        // The live vectors are not in the file: only the four removed ones.
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        let full = index.faiss_bytes().unwrap().len();
        assert!(
            size + index.len() * 24 * 4 <= full + 1024,
            "{name}: {size} of {full}"
        );
        let loaded = Snapshot::load(&path, &config, 24, &mut given).unwrap();
        assert_eq!(loaded.sequence, 42);
        assert_eq!(loaded.extra, b"slot map");
        let restored = loaded.index;
        assert_eq!(restored.len(), index.len());
        assert_eq!(restored.tombstones(), index.tombstones());
        assert_eq!(restored.is_hnsw(), index.is_hnsw());
        assert!(!restored.contains(50) && restored.contains(51));
        for q in &queries {
            for eligible in [None, Some(&filter)] {
                assert_same(
                    &restored.search(q, 10, eligible).unwrap(),
                    &index.search(q, 10, eligible).unwrap(),
                );
            }
        }

        // Other vectors than the saved ones are refused.
        let mut swapped = |slot: Slot| given(if slot == 7 { 8 } else { slot });
        assert!(Snapshot::load(&path, &config, 24, &mut swapped).is_none());
        // A slot without a vector comes back as a zero vector, still live,
        // for the owner to remove; everything else answers as before.
        let mut missing = |slot: Slot| if slot == 7 { None } else { given(slot) };
        let mut partial = Snapshot::load(&path, &config, 24, &mut missing)
            .unwrap()
            .index;
        assert!(partial.contains(7));
        assert!(partial.remove(7));
        assert_eq!(partial.len(), index.len() - 1);
        for hit in partial.search(&vectors[9], 10, None).unwrap() {
            assert_ne!(hit.slot, 7);
        }
        assert_eq!(partial.search(&vectors[9], 1, None).unwrap()[0].slot, 9);

        let bytes = std::fs::read(&path).unwrap();
        let bad = dir.join("bad.snap");
        for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&bad, &bytes[..cut]).unwrap();
            assert!(
                Snapshot::load(&bad, &config, 24, &mut given).is_none(),
                "cut at {cut}"
            );
        }
        for pos in [0, 10, 30, bytes.len() / 2, bytes.len() - 2] {
            let mut flipped = bytes.clone();
            flipped[pos] ^= 0x10;
            std::fs::write(&bad, &flipped).unwrap();
            assert!(
                Snapshot::load(&bad, &config, 24, &mut given).is_none(),
                "flip at {pos}"
            );
        }
        assert!(Snapshot::load(&path, &config, 25, &mut given).is_none());
    }
    assert!(Snapshot::load(&dir.join("missing.snap"), &config, 24, &mut given).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `snapshot_vectors` the file holds every vector: it restores without
/// the owner giving any back (streamed from the file), answers as the saved
/// index did, and a damaged file is refused.
#[test]
fn snapshot_with_kept_vectors_needs_no_vectors_back() {
    let dir = temp_dir("snapshot-kept");
    let mut rng = StdRng::seed_from_u64(6);
    let centres = centres(&mut rng, 10, 24);
    let vectors = clustered(&mut rng, &centres, 1_000);
    let queries = clustered(&mut rng, &centres, 20);
    let config = IndexConfig {
        snapshot_vectors: true,
        ..small_hnsw_config()
    };
    let mut index = FaissIndex::new(24, &config).unwrap();
    index.add(&items(&vectors)).unwrap();
    for slot in [4, 40, 400] {
        index.remove(slot);
    }
    let path = dir.join("kept.snap");
    index.save_snapshot(&path, 7, b"columns").unwrap();
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(
        size >= index.faiss_bytes().unwrap().len(),
        "vectors kept: {size}"
    );

    let file = SnapshotFile::read(&path, 24).unwrap();
    assert!(file.is_filled());
    assert_eq!((file.sequence(), file.extra()), (7, &b"columns"[..]));
    let restored = file.restore(&config).unwrap();
    assert_eq!(restored.len(), index.len());
    assert_eq!(restored.tombstones(), index.tombstones());
    assert!(!restored.contains(40) && restored.contains(41));
    let filter = every_nth(3, 1_000);
    for q in &queries {
        for eligible in [None, Some(&filter)] {
            assert_same(
                &restored.search(q, 10, eligible).unwrap(),
                &index.search(q, 10, eligible).unwrap(),
            );
        }
    }

    // It takes no vectors back: the saved ones are restored.
    let mut file = SnapshotFile::read(&path, 24).unwrap();
    assert!(!file.fill(7, &vectors[8]));
    let again = file.restore(&config).unwrap();
    assert_same(
        &again.search(&vectors[7], 1, None).unwrap(),
        &index.search(&vectors[7], 1, None).unwrap(),
    );
    assert_eq!(again.search(&vectors[7], 1, None).unwrap()[0].slot, 7);

    // Damage anywhere is refused: in the graph, among the kept vectors, in
    // the id map at the end, or a cut.
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.snap");
    for pos in [20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 40] {
        let mut flipped = bytes.clone();
        flipped[pos] ^= 0x10;
        std::fs::write(&bad, &flipped).unwrap();
        assert!(SnapshotFile::read(&bad, 24).is_none(), "flip at {pos}");
    }
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        assert!(SnapshotFile::read(&bad, 24).is_none(), "cut at {cut}");
    }

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_search_with_writes() {
    let mut rng = StdRng::seed_from_u64(6);
    let centres = centres(&mut rng, 10, 32);
    let vectors = Arc::new(clustered(&mut rng, &centres, 3_000));
    let mut index = FaissIndex::new(32, &small_hnsw_config()).unwrap();
    index.add(&items(&vectors[..2_000])).unwrap();
    let index = Arc::new(RwLock::new(index));
    let filter = Arc::new(every_nth(2, 3_000));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let index = Arc::clone(&index);
            let vectors = Arc::clone(&vectors);
            let filter = Arc::clone(&filter);
            std::thread::spawn(move || {
                for i in 0..400 {
                    let q = &vectors[(i * 7 + t) % 3_000];
                    let guard = index.read().unwrap();
                    let eligible = (i % 2 == 0).then_some(&*filter);
                    let hits = guard.search(q, 10, eligible).unwrap();
                    assert_eq!(hits.len(), 10);
                    for h in &hits {
                        assert!(guard.contains(h.slot));
                        assert!(eligible.is_none_or(|f| f.contains(h.slot)));
                    }
                }
            })
        })
        .collect();
    let writer = {
        let index = Arc::clone(&index);
        let vectors = Arc::clone(&vectors);
        std::thread::spawn(move || {
            for i in 0..1_000usize {
                let mut guard = index.write().unwrap();
                let slot = 2_000 + i as Slot;
                guard.add(&[(slot, vectors[2_000 + i].as_slice())]).unwrap();
                assert!(guard.remove((i * 2) as Slot));
            }
        })
    };
    for r in readers {
        r.join().unwrap();
    }
    writer.join().unwrap();
    assert_eq!(index.read().unwrap().len(), 2_000);
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs the leak loop in a child process, so other tests' allocations do not
/// disturb the RSS measurement.
#[test]
fn filtered_search_does_not_leak() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "index::tests::leak_loop",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "run by filtered_search_does_not_leak in its own process"]
fn leak_loop() {
    let mut rng = StdRng::seed_from_u64(8);
    let vectors = random_vectors(&mut rng, 600, 8);
    let mut index = FaissIndex::new(8, &small_hnsw_config()).unwrap();
    index.add(&items(&vectors)).unwrap();
    index.remove(7);
    let filter = every_nth(2, 600);
    let run = |n: usize| {
        for i in 0..n {
            let hits = index.search(&vectors[i % 600], 5, Some(&filter)).unwrap();
            assert_eq!(hits.len(), 5);
        }
    };
    run(20_000);
    let before = rss_kib();
    run(100_000);
    let grown = rss_kib().saturating_sub(before);
    println!("rss growth over 100000 filtered searches: {grown} KiB");
    // Leaking one bitmap selector per search would be >= 3 MB here.
    assert!(grown < 1_024, "RSS grew {grown} KiB");
}
