//! Measurements behind the [`IndexConfig`] defaults. Ignored by default; run
//! with `cargo test --release --lib index::measure -- --ignored --nocapture
//! --test-threads=1` on an otherwise idle machine.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::faiss::filtered_ef_search;
use super::tests::{centres, clustered, DIM};
use super::*;

fn per_query(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn build(vectors: &[Vec<f32>], config: &IndexConfig) -> (FaissIndex, Duration) {
    let items: Vec<(Slot, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as Slot, v.as_slice()))
        .collect();
    let mut index = FaissIndex::new(DIM, config).unwrap();
    let t = Instant::now();
    index.add(&items).unwrap();
    (index, t.elapsed())
}

/// Mean search latency in µs and recall@10 against `truth`.
fn run(
    index: &FaissIndex,
    queries: &[Vec<f32>],
    filter: Option<&SlotSet>,
    truth: Option<&[Vec<Hit>]>,
) -> (f64, f64) {
    let t = Instant::now();
    let mut recall = 0.0;
    for (i, q) in queries.iter().enumerate() {
        let hits = index.search(q, 10, filter).unwrap();
        if let Some(truth) = truth {
            let tr = &truth[i];
            recall += hits
                .iter()
                .filter(|h| tr.iter().any(|t| t.slot == h.slot))
                .count() as f64
                / tr.len().max(1) as f64;
        }
    }
    (
        per_query(t.elapsed(), queries.len()),
        recall / queries.len() as f64,
    )
}

/// The ten nearest of each query: the ground truth from a flat index.
fn top_10(flat: &FaissIndex, queries: &[Vec<f32>]) -> Vec<Vec<Hit>> {
    queries
        .iter()
        .map(|q| flat.search(q, 10, None).unwrap())
        .collect()
}

/// Always flat (exact).
fn flat_config() -> IndexConfig {
    IndexConfig {
        hnsw_threshold: usize::MAX,
        ..IndexConfig::default()
    }
}

/// HNSW from the first vector.
fn hnsw_config() -> IndexConfig {
    IndexConfig {
        hnsw_threshold: 0,
        ..IndexConfig::default()
    }
}

#[test]
#[ignore = "measurement"]
fn measure_index() {
    let mut rng = StdRng::seed_from_u64(11);
    let c = centres(&mut rng, 100, DIM);
    let vectors = clustered(&mut rng, &c, 100_000);
    let queries = clustered(&mut rng, &c, 300);
    let (flat_cfg, hnsw_cfg) = (flat_config(), hnsw_config());

    println!("== flat vs HNSW (M32 efC64 efS64), k=10");
    for n in [1_000, 2_000, 5_000, 10_000, 20_000, 100_000] {
        let (flat, _) = build(&vectors[..n], &flat_cfg);
        let truth = top_10(&flat, &queries);
        let (flat_us, _) = run(&flat, &queries, None, None);
        let (hnsw, build_t) = build(&vectors[..n], &hnsw_cfg);
        let (hnsw_us, recall) = run(&hnsw, &queries, None, Some(&truth));
        println!("n={n:>6} flat {flat_us:>8.1} us  hnsw {hnsw_us:>7.1} us recall {recall:.4} build {build_t:?}");
    }

    println!("== HNSW parameters at 20 000 / 100 000");
    for n in [20_000, 100_000] {
        let (flat, _) = build(&vectors[..n], &flat_cfg);
        let truth = top_10(&flat, &queries);
        for (m, efc) in [(16, 64), (32, 64), (32, 128)] {
            let cfg = IndexConfig {
                hnsw_threshold: 0,
                hnsw_m: m,
                ef_construction: efc,
                ..IndexConfig::default()
            };
            let (mut hnsw, build_t) = build(&vectors[..n], &cfg);
            for ef in [16, 32, 64, 128] {
                hnsw.raw_set_ef_search(ef);
                let (us, recall) = run(&hnsw, &queries, None, Some(&truth));
                println!("n={n:>6} M={m} efC={efc} build {build_t:>10.2?} efS={ef:>3}: {us:>7.1} us recall {recall:.4}");
            }
        }
    }

    println!("== filtered at 100 000: HNSW+selector vs exact scan");
    let (mut hnsw, _) = build(&vectors, &hnsw_cfg);
    let (flat, _) = build(&vectors, &flat_cfg);
    for pct in [50.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1] {
        let every = (100.0 / pct) as u64;
        let filter: SlotSet = (0..100_000u64).filter(|s| s % every == 0).collect();
        let truth: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| flat.search(q, 10, Some(&filter)).unwrap())
            .collect();
        hnsw.config_mut().exact_scan_selectivity = 0.0;
        let (g_us, g_rec) = run(&hnsw, &queries, Some(&filter), Some(&truth));
        hnsw.config_mut().exact_scan_selectivity = 1.0;
        let (e_us, e_rec) = run(&hnsw, &queries, Some(&filter), Some(&truth));
        let (f_us, _) = run(&flat, &queries, Some(&filter), None);
        println!("{pct:>5}%: graph {g_us:>8.1} us (recall {g_rec:.4})  exact-scan {e_us:>8.1} us (recall {e_rec:.4})  flat+selector {f_us:>8.1} us");
    }

    println!("== snapshot at 100 000");
    let dir = std::env::temp_dir().join(format!("pulsedb-measure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idx.snap");
    let t = Instant::now();
    hnsw.save_snapshot(&path, 1, b"").unwrap();
    let save = t.elapsed();
    let t = Instant::now();
    let snap = Snapshot::load(&path, &IndexConfig::default(), DIM, &mut |slot| {
        Some(vectors[slot as usize].clone())
    })
    .unwrap();
    println!(
        "save {save:?} load {:?} size {} MB",
        t.elapsed(),
        std::fs::metadata(&path).unwrap().len() / 1_000_000
    );
    assert_eq!(snap.index.len(), 100_000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recall and latency of the default graph at 100 000 vectors for a range of
/// `ef_search`, the vectors inserted in the drain's chunks of 128.
#[test]
#[ignore = "measurement"]
fn measure_ef_search() {
    let mut rng = StdRng::seed_from_u64(42);
    let c = centres(&mut rng, 100, DIM);
    let vectors = clustered(&mut rng, &c, 100_000);
    let queries = clustered(&mut rng, &c, 400);
    let (flat, _) = build(&vectors, &flat_config());
    let truth = top_10(&flat, &queries);
    let mut hnsw = FaissIndex::new(DIM, &hnsw_config()).unwrap();
    let items: Vec<(Slot, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as Slot, v.as_slice()))
        .collect();
    let t = Instant::now();
    for chunk in items.chunks(128) {
        hnsw.add(chunk).unwrap();
    }
    println!("built 100 000 in chunks of 128: {:?}", t.elapsed());
    for ef in [64, 80, 96, 112, 128, 160] {
        hnsw.raw_set_ef_search(ef);
        // Twice: the first pass warms the caches.
        run(&hnsw, &queries, None, Some(&truth));
        let (us, recall) = run(&hnsw, &queries, None, Some(&truth));
        println!("efS={ef:>3}: {us:>7.1} us recall {recall:.4}");
    }
}

/// The costs behind the filtered-search plan (`FaissIndex::filtered_plan`):
/// an exact scan of the eligible vectors against the filtered graph, at
/// 10 000 and 100 000 vectors, for eligible fractions from 50 % to 1 %,
/// with the recall@10 of each and the plan chosen.
#[test]
#[ignore = "measurement"]
fn measure_filtered_plan() {
    let mut rng = StdRng::seed_from_u64(7);
    let c = centres(&mut rng, 100, DIM);
    let vectors = clustered(&mut rng, &c, 100_000);
    let queries: Vec<Vec<f32>> = clustered(&mut rng, &c, 200)
        .iter()
        .map(|q| normalized(q))
        .collect();
    let (flat_cfg, hnsw_cfg) = (flat_config(), hnsw_config());
    let ef = hnsw_cfg.ef_search;
    for n in [10_000, 100_000] {
        let (flat, _) = build(&vectors[..n], &flat_cfg);
        let (hnsw, _) = build(&vectors[..n], &hnsw_cfg);
        for pct in [50.0, 20.0, 10.0, 5.0, 2.0, 1.0] {
            let every = (100.0 / pct) as u64;
            let filter: SlotSet = (0..n as u64).filter(|s| s % every == 0).collect();
            let truth: Vec<Vec<Hit>> = queries
                .iter()
                .map(|q| flat.search(q, 10, Some(&filter)).unwrap())
                .collect();
            let timed = |f: &dyn Fn(&[f32]) -> Vec<Hit>| {
                let t = Instant::now();
                let answers: Vec<Vec<Hit>> = queries.iter().map(|q| f(q)).collect();
                let elapsed = per_query(t.elapsed(), queries.len());
                let recall = answers
                    .iter()
                    .zip(&truth)
                    .map(|(a, t)| {
                        let found = a.iter().filter(|h| t.iter().any(|x| x.slot == h.slot));
                        found.count() as f64 / t.len().max(1) as f64
                    })
                    .sum::<f64>()
                    / queries.len() as f64;
                (elapsed, recall)
            };
            let (scan_us, _) = timed(&|q| hnsw.exact_scan(q, 10, Some(&filter)).unwrap());
            let eligible = filter.len();
            let widened = filtered_ef_search(ef, 10, eligible as f64 / n as f64);
            println!(
                "n={n:>6} {pct:>4}% eligible {eligible:>6}: scan {scan_us:>7.1} us \
                 ({:.3} ns/component) | plan {:?}, widened efSearch {widened}",
                scan_us * 1000.0 / (eligible * DIM) as f64,
                hnsw.filtered_plan(eligible),
            );
            for beam in [ef, 128, 192, 256, 384, 512, widened] {
                let (graph_us, recall) =
                    timed(&|q| hnsw.search_graph(q, 10, Some(&filter), Some(beam)).unwrap());
                println!(
                    "    graph efSearch {beam:>4}: {graph_us:>7.1} us recall {recall:.3} \
                     ({:.3} ns/ef-component/log2(n))",
                    graph_us * 1000.0 / (beam * DIM) as f64 / (n as f64).log2(),
                );
            }
        }
    }
}
