//! Concurrency: durability of acknowledged concurrent writes, backpressure,
//! many callers at once.

mod common;

use common::*;
use pulsedb::*;

/// 64 tasks record concurrently; after close and reopen every acknowledged
/// id is present and found by its own vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_concurrent_writes_are_durable() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for j in 0..4u64 {
                let seed = task * 100 + j;
                acked.push((seed, db.record_experience(exp(c, seed)).await.unwrap()));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(within(t).await.unwrap());
    }
    assert_eq!(acked.len(), 256);
    db.close().await.unwrap();

    let db = t.open().await;
    for (seed, id) in &acked {
        let got = db
            .get_experience(*id)
            .await
            .unwrap()
            .expect("acknowledged write lost");
        assert_eq!(got.embedding, vec16(*seed));
        let hits = db.search_similar(c, &vec16(*seed), 1).await.unwrap();
        assert_eq!(hits[0].experience.id, *id);
    }
    assert_eq!(
        db.get_collective_stats(c).await.unwrap().experience_count,
        256
    );
    // Sequences are gap-free: one per write plus the collective.
    assert_eq!(db.get_current_sequence().await.unwrap(), 257);
    db.close().await.unwrap();
}

/// With a small in-flight bound, `try_` calls are refused with `Overloaded`
/// while waiting callers all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_refuses_try_calls_and_waits_others() {
    let db = PulseHandle::open_in_memory(Config {
        max_in_flight: 4,
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    let mut waiting = Vec::new();
    for i in 0..200u64 {
        let db = db.clone();
        waiting.push(tokio::spawn(async move {
            db.record_experience(exp(c, i)).await
        }));
    }
    let mut trying = Vec::new();
    for i in 0..200u64 {
        let db = db.clone();
        trying.push(tokio::spawn(async move {
            db.try_record_experience(exp(c, 1000 + i)).await
        }));
    }
    let mut ok_try = 0;
    let mut overloaded = 0;
    for t in trying {
        match within(t).await.unwrap() {
            Ok(_) => ok_try += 1,
            Err(Error::Overloaded) => overloaded += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    for t in waiting {
        within(t).await.unwrap().expect("waiting caller fails");
    }
    assert!(overloaded > 0, "no Overloaded with max_in_flight = 4");
    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!(
        stats.experience_count,
        200 + ok_try as u64,
        "refused calls wrote nothing"
    );
    // Once idle, a try call is admitted.
    db.try_record_experience(exp(c, 5000)).await.unwrap();
    db.close().await.unwrap();
}

/// 10 000 concurrent callers with the default config all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_callers_complete() {
    let db = PulseHandle::open_in_memory(config()).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let mut tasks = Vec::with_capacity(10_000);
    for i in 0..10_000u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                db.search_similar(c, &vec16(i), 3).await.map(|_| ())
            } else {
                db.record_experience(exp(c, i)).await.map(|_| ())
            }
        }));
    }
    within_secs(60, async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    })
    .await;
    assert_eq!(
        db.get_collective_stats(c).await.unwrap().experience_count,
        7_500
    );
    db.close().await.unwrap();
}

/// Close while many callers are waiting for admission: none hangs, and
/// each gets either its result or `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_under_load_answers_every_caller() {
    let t = TempDb::new();
    let db = t
        .open_with(Config {
            max_in_flight: 8,
            ..config()
        })
        .await;
    let c = db.create_collective("c").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            (i, db.record_experience(exp(c, i)).await)
        }));
    }
    wait_until(|| {
        let db = db.clone();
        async move {
            db.get_collective_stats(c)
                .await
                .map(|s| s.experience_count >= 20)
                .unwrap_or(true)
        }
    })
    .await;
    within(db.close()).await.unwrap();
    let mut acked = Vec::new();
    for t in tasks {
        match within(t).await.unwrap() {
            (i, Ok(id)) => acked.push((i, id)),
            (_, Err(Error::Closed)) => {}
            (i, Err(e)) => panic!("{i}: {e:?}"),
        }
    }
    assert!(!acked.is_empty());
    let db = t.open().await;
    for (i, id) in acked {
        assert_eq!(
            db.search_similar(c, &vec16(i), 1).await.unwrap()[0]
                .experience
                .id,
            id
        );
    }
    db.close().await.unwrap();
}

/// The graph drain steps aside while searches stream in, and comes back
/// once they stop: the write buffer empties without further writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_vectors_reach_the_graph_after_a_stream_of_searches() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let batch = (0..300).map(|i| exp(c, i)).collect();
    db.record_experiences(batch).await.unwrap();
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    let mut q = 0;
    while tokio::time::Instant::now() < until {
        db.search_similar(c, &vec16(10_000 + q), 5).await.unwrap();
        q += 1;
    }
    wait_until(|| async { db.index_stats(c).await.unwrap().staged == 0 }).await;
    assert_eq!(db.index_stats(c).await.unwrap().indexed, 300);
}

/// The write buffer in front of the graph holds at most 4 096 vectors:
/// writers that would pass the bound wait for graph insertions (their own
/// or the background drain's). Several writers push it over at once; each
/// call returns with the buffer within bounds, and every vector is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_buffer_holds_writers_back() {
    let mut config = config();
    config.index.hnsw_threshold = 100;
    let db = within(PulseHandle::open_in_memory(config)).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let (mut most_staged, mut recorded) = (0, Vec::new());
            for batch in 0..3u64 {
                let seeds: Vec<u64> = (0..600).map(|i| task * 10_000 + batch * 600 + i).collect();
                let ids = db
                    .record_experiences(seeds.iter().map(|s| exp(c, *s)).collect())
                    .await
                    .unwrap();
                most_staged = most_staged.max(db.index_stats(c).await.unwrap().staged);
                recorded.extend(seeds.into_iter().zip(ids));
            }
            (most_staged, recorded)
        }));
    }
    let mut recorded = Vec::new();
    for t in tasks {
        let (most_staged, ids) = within_secs(120, t).await.unwrap();
        assert!(most_staged <= 4096, "{most_staged} vectors buffered");
        recorded.extend(ids);
    }
    assert_eq!(db.index_stats(c).await.unwrap().indexed, recorded.len());
    for (seed, id) in recorded.iter().step_by(97) {
        let hits = db.search_similar(c, &vec16(*seed), 1).await.unwrap();
        assert_eq!(hits[0].experience.id, *id, "seed {seed}");
    }
    db.close().await.unwrap();
}
