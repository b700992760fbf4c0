//! Supervision: a collective actor that fails is restarted with its full
//! index; other collectives never notice; no call hangs.
//!
//! Needs the `fault-injection` feature (`make test` enables all features).

#![cfg(feature = "fault-injection")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_collective_restarts_with_full_index_and_others_never_fail() {
    let t = TempDb::new();
    let db = t.open().await;
    let failing = db.create_collective("failing").await.unwrap();
    let healthy = db.create_collective("healthy").await.unwrap();
    // Some data before the fault.
    let mut seeded = Vec::new();
    for i in 0..50u64 {
        seeded.push((i, db.record_experience(exp(failing, i)).await.unwrap()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked_failing = Arc::new(Mutex::new(Vec::new()));
    let acked_healthy = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        // Users of the failing collective: errors allowed, hangs not.
        let (h, halt, acked) = (db.clone(), stop.clone(), acked_failing.clone());
        tasks.push(tokio::spawn(async move {
            let mut j = 0;
            while !halt.load(Ordering::Relaxed) {
                let seed = 10_000 + task * 1000 + j;
                j += 1;
                if let Ok(id) = within(h.record_experience(exp(failing, seed))).await {
                    acked.lock().unwrap().push((seed, id));
                }
                let _ = within(h.search_similar(failing, &vec16(seed), 3)).await;
            }
        }));
        // Users of the healthy collective: never an error.
        let (h, halt, acked) = (db.clone(), stop.clone(), acked_healthy.clone());
        tasks.push(tokio::spawn(async move {
            let mut j = 0;
            while !halt.load(Ordering::Relaxed) {
                let seed = 500_000 + task * 1000 + j;
                j += 1;
                let id = within(h.record_experience(exp(healthy, seed)))
                    .await
                    .expect("healthy collective failed a write");
                let hits = within(h.search_similar(healthy, &vec16(seed), 1))
                    .await
                    .expect("healthy collective failed a search");
                assert_eq!(hits[0].experience.id, id);
                acked.lock().unwrap().push((seed, id));
            }
        }));
    }
    // Let the load run, inject faults, let it run on.
    wait_until(|| {
        let acked = acked_failing.clone();
        async move { acked.lock().unwrap().len() >= 50 }
    })
    .await;
    for _ in 0..3 {
        within(db.inject_collective_fault(failing)).await.unwrap();
        let before = acked_failing.lock().unwrap().len();
        // The failed collective serves writes again.
        wait_until(|| {
            let acked = acked_failing.clone();
            async move { acked.lock().unwrap().len() >= before + 30 }
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        within(t).await.unwrap();
    }

    // Every acknowledged record of the failed collective is searchable.
    let acked: Vec<_> = acked_failing.lock().unwrap().clone();
    for (seed, id) in seeded.iter().chain(acked.iter()) {
        let hits = db.search_similar(failing, &vec16(*seed), 1).await.unwrap();
        assert_eq!(
            hits[0].experience.id, *id,
            "record {seed} missing from the rebuilt index"
        );
    }
    // The index holds exactly the stored records (nothing duplicated or lost).
    let stored = db
        .get_collective_stats(failing)
        .await
        .unwrap()
        .experience_count;
    let all = db.search_similar(failing, &vec16(1), 1000).await.unwrap();
    assert_eq!(all.len() as u64, stored.min(1000));
    let healthy_acked = acked_healthy.lock().unwrap().clone();
    assert!(!healthy_acked.is_empty());
    for (seed, id) in healthy_acked.iter().step_by(5) {
        assert_eq!(
            db.search_similar(healthy, &vec16(*seed), 1).await.unwrap()[0]
                .experience
                .id,
            *id
        );
    }
    within(db.close()).await.unwrap();

    // And after reopen.
    let db = t.open().await;
    for (seed, id) in acked.iter().step_by(3) {
        assert_eq!(
            db.search_similar(failing, &vec16(*seed), 1).await.unwrap()[0]
                .experience
                .id,
            *id
        );
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_in_idle_collective_keeps_insights_and_filters() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let a = db
        .record_experience(NewExperience {
            domain: vec!["x".into()],
            ..exp(c, 1)
        })
        .await
        .unwrap();
    let b = db.record_experience(exp(c, 2)).await.unwrap();
    db.archive_experience(b).await.unwrap();
    let i = db
        .store_insight(NewDerivedInsight {
            collective_id: c,
            content: "i".into(),
            embedding: Some(vec16(3)),
            source_experience_ids: vec![a],
            insight_type: InsightType::Pattern,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    db.inject_collective_fault(c).await.unwrap();
    // Poll: the first calls may hit the failed actor and get an error.
    wait_until(|| {
        let db = db.clone();
        async move { db.search_similar(c, &vec16(1), 5).await.is_ok() }
    })
    .await;
    let hits = db.search_similar(c, &vec16(2), 5).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.experience.id).collect::<Vec<_>>(),
        vec![a],
        "archived stays out"
    );
    let hits = db
        .search_similar_filtered(
            c,
            &vec16(2),
            5,
            SearchFilter {
                domains: Some(vec!["x".into()]),
                ..SearchFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(db.get_insights(c, &vec16(3), 1).await.unwrap()[0].0.id, i);
    assert_not_found(db.inject_collective_fault(CollectiveId::new()).await);
    db.close().await.unwrap();
    assert_closed(db.inject_collective_fault(c).await);
}
