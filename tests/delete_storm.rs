//! Deletes racing searches: every search still returns `k` results whenever
//! `k` match, never a record deleted before it was issued, and the graph
//! rebuild that the deletes trigger happens aside, with searches served.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use pulsedb::*;

const N: u64 = 3_000;
const K: usize = 10;

fn storm_config() -> Config {
    Config {
        index: IndexConfig {
            hnsw_threshold: 500,
            ..IndexConfig::default()
        },
        ..config()
    }
}

/// Records `N` experiences, half tagged `half = yes`.
async fn populate(db: &PulseHandle, c: CollectiveId) -> Vec<ExperienceId> {
    let items: Vec<NewExperience> = (0..N)
        .map(|i| NewExperience {
            tags: [("half".to_string(), (i % 2 == 0).to_string())].into(),
            ..exp(c, i)
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in items.chunks(1_000) {
        ids.extend(within(db.record_experiences(chunk.to_vec())).await.unwrap());
    }
    ids
}

/// Whether the graph's tombstones are within the default ratio (0.2) of its
/// rows: without a rebuild, the deletes of these tests leave far more.
async fn rebuilt(db: &PulseHandle, c: CollectiveId) -> bool {
    let stats = db.index_stats(c).await.unwrap();
    stats.tombstones * 5 <= stats.indexed + stats.tombstones
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_return_k_while_a_third_is_deleted() {
    let tmp = TempDb::new();
    let db = tmp.open_with(storm_config()).await;
    let c = db.create_collective("storm").await.unwrap();
    let ids = populate(&db, c).await;
    let deleted: Arc<Mutex<HashSet<ExperienceId>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicUsize::new(0));

    let mut searchers = Vec::new();
    for s in 0..3u64 {
        let (db, deleted, done, searches) =
            (db.clone(), deleted.clone(), done.clone(), searches.clone());
        searchers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let query = vec16(1_000_000 + s * 100_000 + i);
                let gone_before: HashSet<ExperienceId> = deleted.lock().unwrap().clone();
                let filter = SearchFilter {
                    tags_all: Some([("half".to_string(), "true".to_string())].into()),
                    ..SearchFilter::default()
                };
                let (all, half) = tokio::join!(
                    db.search_similar(c, &query, K),
                    db.search_similar_filtered(c, &query, K, filter)
                );
                for hits in [all.unwrap(), half.unwrap()] {
                    // Far more than K match at every moment of the storm.
                    assert_eq!(hits.len(), K, "search {i} came back short");
                    for h in &hits {
                        assert!(
                            !gone_before.contains(&h.experience.id),
                            "a record deleted before the search was returned"
                        );
                    }
                }
                searches.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Delete 35 % (past the 20 % tombstone ratio: a rebuild is due), 32 in
    // flight at a time.
    let victims: Vec<ExperienceId> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 < 7)
        .map(|(_, id)| *id)
        .collect();
    for chunk in victims.chunks(32) {
        let deletes = chunk.iter().map(|id| db.delete_experience(*id));
        for r in within(futures::future::join_all(deletes)).await {
            r.unwrap();
        }
        deleted.lock().unwrap().extend(chunk.iter().copied());
    }
    // Searches go on until the rebuild has replaced the graph.
    wait_until(|| rebuilt(&db, c)).await;
    done.store(true, Ordering::Relaxed);
    for s in searchers {
        within(s).await.unwrap();
    }
    assert!(searches.load(Ordering::Relaxed) > 0);
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed as u64, N - victims.len() as u64);
    assert!(stats.hnsw);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_past_the_tombstone_ratio_is_rebuilt_and_still_exact() {
    let tmp = TempDb::new();
    let db = tmp.open_with(storm_config()).await;
    let c = db.create_collective("rebuild").await.unwrap();
    let ids = populate(&db, c).await;
    let mut live: Vec<(ExperienceId, Vec<f32>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, vec16(i as u64)))
        .collect();
    // Every other record goes: 50 % tombstones.
    for (_, id) in ids.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        db.delete_experience(*id).await.unwrap();
    }
    live = live.into_iter().step_by(2).collect();
    wait_until(|| rebuilt(&db, c)).await;
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed, live.len());
    // The rebuilt graph finds every live record as its own nearest
    // neighbour, and nothing deleted.
    for (id, v) in live.iter().step_by(50) {
        let hits = db.search_similar(c, v, K).await.unwrap();
        assert_eq!(hits.len(), K);
        assert_eq!(hits[0].experience.id, *id);
    }
    // Reopened from the snapshot written at close: the same answers.
    db.close().await.unwrap();
    let db = tmp.reopen_when_released(storm_config()).await;
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed, live.len());
    assert!(rebuilt(&db, c).await);
    let (id, v) = &live[7];
    assert_eq!(
        db.search_similar(c, v, 1).await.unwrap()[0].experience.id,
        *id
    );
    db.close().await.unwrap();
}
