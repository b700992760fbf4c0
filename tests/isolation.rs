//! Slow work in one place holds up nothing else: searches read a
//! collective's index without waiting for its actor (busy with writes), and
//! a collective that takes seconds to load does not delay calls on another.
//!
//! Needs the `fault-injection` feature (`make test` enables all features).

#![cfg(feature = "fault-injection")]

mod common;

use std::time::Duration;

use common::*;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_do_not_wait_for_a_busy_collective_actor() {
    let db = memory_db().await;
    let c = db.create_collective("busy").await.unwrap();
    let first = db.record_experience(exp(c, 1)).await.unwrap();
    let source = db.record_experience(exp(c, 2)).await.unwrap();
    db.store_insight(NewDerivedInsight {
        collective_id: c,
        content: "insight".into(),
        embedding: Some(vec16(3)),
        source_experience_ids: vec![source],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    })
    .await
    .unwrap();

    // The actor is busy (as with a long index update); a write queues.
    db.inject_collective_stall(c, Duration::from_secs(3))
        .await
        .unwrap();
    let writer = tokio::spawn({
        let db = db.clone();
        async move { db.record_experience(exp(c, 4)).await }
    });
    // Reads of the index answer meanwhile, and see every acknowledged write.
    let hits = within(db.search_similar(c, &vec16(1), 1)).await.unwrap();
    assert_eq!(hits[0].experience.id, first);
    let filtered = SearchFilter {
        min_importance: Some(0.0),
        ..SearchFilter::default()
    };
    let hits = within(db.search_similar_filtered(c, &vec16(2), 1, filtered))
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, source);
    assert_eq!(
        within(db.get_insights(c, &vec16(3), 1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(within(db.index_stats(c)).await.unwrap().indexed, 2);
    assert!(!writer.is_finished(), "the write waits for the actor");

    // The write lands once the actor is free, and is then searchable.
    let written = within(writer).await.unwrap().unwrap();
    let hits = db.search_similar(c, &vec16(4), 1).await.unwrap();
    assert_eq!(hits[0].experience.id, written);
    db.close().await.unwrap();
}

/// Experiences in the collective whose load is slow: no snapshot, so the
/// graph is rebuilt from every stored record.
const SLOW_LOAD: u64 = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_load_does_not_delay_calls_on_another_collective() {
    let t = TempDb::new();
    let config = config_dim(64);
    let db = t.open_with(config.clone()).await;
    let big = db.create_collective("big").await.unwrap();
    let small = db.create_collective("small").await.unwrap();
    for start in (0..SLOW_LOAD).step_by(1_000) {
        let batch: Vec<NewExperience> = (start..start + 1_000)
            .map(|i| exp_with(big, "x", vector(i, 64)))
            .collect();
        within(db.record_experiences(batch)).await.unwrap();
    }
    let kept = db
        .record_experience(exp_with(small, "small", vector(7, 64)))
        .await
        .unwrap();
    db.close().await.unwrap();
    // Without snapshots, `big` rebuilds its graph at load.
    std::fs::remove_dir_all(t.index_dir()).unwrap();

    let db = t.reopen_when_released(config).await;
    let mut big_search = Box::pin({
        let db = db.clone();
        async move { db.search_similar(big, &vector(1, 64), 1).await }
    });
    // One poll sends the resolution of `big` to the router before anything
    // about `small` is asked.
    assert!(futures::poll!(&mut big_search).is_pending());
    let big_search = tokio::spawn(big_search);

    let hits = within(db.search_similar(small, &vector(7, 64), 1))
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, kept);
    let recent = within(db.get_recent_experiences(small, 5)).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert!(
        !big_search.is_finished(),
        "`small` answered only after `big` had loaded"
    );
    let hits = within(big_search).await.unwrap().unwrap();
    assert_eq!(hits.len(), 1);
    db.close().await.unwrap();
}
