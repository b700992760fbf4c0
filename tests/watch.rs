//! Watch streams and the change log (`poll_changes`).

mod common;

use std::time::Duration;

use common::*;
use futures::{FutureExt, StreamExt};
use pulsedb::*;

async fn next_n(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(within(stream.next()).await.expect("stream ended early"));
    }
    out
}

fn rel(a: ExperienceId, b: ExperienceId) -> NewExperienceRelation {
    NewExperienceRelation {
        source_id: a,
        target_id: b,
        relation_type: RelationType::RelatedTo,
        strength: 0.5,
        metadata: None,
    }
}

fn insight(c: CollectiveId, src: ExperienceId) -> NewDerivedInsight {
    NewDerivedInsight {
        collective_id: c,
        content: "insight".into(),
        embedding: Some(vec16(77)),
        source_experience_ids: vec![src],
        insight_type: InsightType::Correlation,
        confidence: 0.5,
        domain: vec![],
    }
}

/// Every experience operation's event type, sequences matching the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_the_change_log() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let mut stream = db.watch_experiences(c).await.unwrap();
    let mut other_stream = db.watch_experiences(other).await.unwrap();
    let start = db.get_current_sequence().await.unwrap();

    let ids = db
        .record_experiences(vec![exp(c, 1), exp(c, 2), exp(c, 3)])
        .await
        .unwrap();
    db.update_experience(
        ids[0],
        ExperienceUpdate {
            importance: Some(0.9),
            ..ExperienceUpdate::default()
        },
    )
    .await
    .unwrap();
    db.update_experience(
        ids[1],
        ExperienceUpdate {
            archived: Some(true),
            ..ExperienceUpdate::default()
        },
    )
    .await
    .unwrap();
    db.archive_experience(ids[2]).await.unwrap();
    db.unarchive_experience(ids[2]).await.unwrap();
    db.reinforce_experience(ids[0]).await.unwrap();
    let r = db.store_relation(rel(ids[0], ids[2])).await.unwrap();
    let i = db.store_insight(insight(c, ids[0])).await.unwrap();
    db.delete_experience(ids[2]).await.unwrap();
    db.delete_relation(r).await.ok(); // already gone with its end
    db.delete_insight(i).await.unwrap();

    use WatchEventType::*;
    let expected = [
        Created, Created, Created, Updated, Archived, Archived, Updated, Updated, Deleted,
    ];
    let events = next_n(&mut stream, expected.len()).await;
    assert_eq!(
        events.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        expected
    );
    let ids_seen: Vec<_> = events.iter().map(|e| e.experience_id).collect();
    assert_eq!(
        ids_seen,
        vec![ids[0], ids[1], ids[2], ids[0], ids[1], ids[2], ids[2], ids[0], ids[2]]
    );
    assert!(events.iter().all(|e| e.collective_id == c));
    // The record as it is after the write.
    assert_eq!(events[3].experience.as_ref().unwrap().importance, 0.9);
    assert!(events[4].experience.as_ref().unwrap().archived);
    assert!(!events[6].experience.as_ref().unwrap().archived);
    assert_eq!(events[7].experience.as_ref().unwrap().applications, 1);
    assert!(events[8].experience.is_none(), "Deleted carries no record");
    assert_eq!(events[0].experience.as_ref().unwrap().embedding, vec16(1));

    let (polled, pos) = db.poll_changes(start).await.unwrap();
    assert_eq!(polled.len(), events.len());
    for (p, e) in polled.iter().zip(&events) {
        assert_eq!(p.sequence, e.sequence);
        assert_eq!(p.experience_id, e.experience_id);
        assert_eq!(p.event_type, e.event_type);
        assert_eq!(p.collective_id, e.collective_id);
        assert_eq!(p.experience.is_some(), e.experience.is_some());
        if let (Some(a), Some(b)) = (&p.experience, &e.experience) {
            assert_eq!(
                Experience {
                    embedding: vec![],
                    ..a.clone()
                },
                Experience {
                    embedding: vec![],
                    ..b.clone()
                }
            );
        }
    }
    // Sequences strictly increase; the gaps are the relation and insight entries.
    assert!(events.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert_eq!(events[0].sequence, start + 1);
    // The position covers the trailing insight deletion.
    assert_eq!(pos, db.get_current_sequence().await.unwrap());
    // Nothing new: the given position comes back.
    assert_eq!(db.poll_changes(pos).await.unwrap(), (vec![], pos));
    assert_eq!(
        db.poll_changes(pos + 100).await.unwrap(),
        (vec![], pos + 100)
    );
    // The other collective saw nothing.
    assert!(other_stream.next().now_or_never().is_none());
    db.close().await.unwrap();
}

/// Polled events carry the record as it was after the write, embedding
/// included, even when the experience was deleted later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_events_keep_the_record_after_later_deletes() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let id = db.record_experience(exp(c, 1)).await.unwrap();
    let (events, _) = db.poll_changes(0).await.unwrap();
    assert_eq!(events[0].experience.as_ref().unwrap().embedding, vec16(1));
    db.delete_experience(id).await.unwrap();
    let (events, _) = db.poll_changes(0).await.unwrap();
    assert_eq!(events.len(), 2);
    let created = events[0].experience.as_ref().unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.content, "experience 1");
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_are_gap_free_over_every_logged_write() {
    let db = memory_db().await;
    let mut seq = db.get_current_sequence().await.unwrap();
    assert_eq!(seq, 0);
    let mut step = |expected_delta: u64, now: u64, what: &str| {
        assert_eq!(now, seq + expected_delta, "{what}");
        seq = now;
    };
    let c = db.create_collective("c").await.unwrap();
    step(
        1,
        db.get_current_sequence().await.unwrap(),
        "create collective",
    );
    let ids = db
        .record_experiences((0..5).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    step(
        5,
        db.get_current_sequence().await.unwrap(),
        "bulk record: one per item",
    );
    let r = db.store_relation(rel(ids[0], ids[1])).await.unwrap();
    step(
        1,
        db.get_current_sequence().await.unwrap(),
        "store relation",
    );
    db.delete_relation(r).await.unwrap();
    step(
        1,
        db.get_current_sequence().await.unwrap(),
        "delete relation",
    );
    let i = db.store_insight(insight(c, ids[0])).await.unwrap();
    step(1, db.get_current_sequence().await.unwrap(), "store insight");
    db.delete_insight(i).await.unwrap();
    step(
        1,
        db.get_current_sequence().await.unwrap(),
        "delete insight",
    );
    db.register_activity(activity("a", c)).await.unwrap();
    db.update_heartbeat("a", c).await.unwrap();
    db.end_activity("a", c).await.unwrap();
    step(
        0,
        db.get_current_sequence().await.unwrap(),
        "activities are not logged",
    );
    db.update_experience(ids[0], ExperienceUpdate::default())
        .await
        .unwrap();
    step(
        0,
        db.get_current_sequence().await.unwrap(),
        "an empty update logs nothing",
    );
    db.reinforce_experience(ids[0]).await.unwrap();
    step(1, db.get_current_sequence().await.unwrap(), "reinforce");
    db.store_relation(rel(ids[0], ids[1])).await.unwrap();
    db.store_relation(rel(ids[1], ids[2])).await.unwrap();
    step(2, db.get_current_sequence().await.unwrap(), "relations");
    db.delete_collective(c).await.unwrap();
    step(
        1,
        db.get_current_sequence().await.unwrap(),
        "delete collective: one entry",
    );

    // The experience events' sequences are exactly the experience entries.
    let (events, pos) = db.poll_changes(0).await.unwrap();
    assert_eq!(pos, seq, "position covers trailing non-experience entries");
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6, 11]);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_batches_count_events_and_resume_exactly() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let mut expected = Vec::new();
    for i in 0..10u64 {
        let a = db.record_experience(exp(c, 2 * i)).await.unwrap();
        let b = db.record_experience(exp(c, 2 * i + 1)).await.unwrap();
        expected.push(a);
        expected.push(b);
        // Non-experience entries in between.
        db.store_relation(rel(a, b)).await.unwrap();
    }
    let end = db.get_current_sequence().await.unwrap();
    for limit in [1usize, 3, 7, 1000] {
        let mut pos = 0;
        let mut seen = Vec::new();
        loop {
            let (events, next) = db.poll_changes_batch(pos, limit).await.unwrap();
            assert!(events.len() <= limit);
            assert!(next >= pos);
            if let Some(last) = events.last() {
                assert!(next >= last.sequence);
            }
            seen.extend(events.iter().map(|e| e.experience_id));
            if events.is_empty() {
                assert_eq!(next, pos, "nothing new: same position");
                break;
            }
            pos = next;
        }
        assert_eq!(seen, expected, "limit {limit}: no loss, no duplicate");
        // After the last event, the trailing relation entry is covered.
        let (events, tail) = db.poll_changes_batch(0, 1000).await.unwrap();
        assert_eq!(events.len(), 20);
        assert_eq!(tail, end);
    }
    assert_validation(db.poll_changes_batch(0, 0).await);
    assert_validation(db.poll_changes_batch(0, 1001).await);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_changes_returns_at_most_1000_events() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    db.record_experiences((0..1500).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    let (first, pos) = db.poll_changes(0).await.unwrap();
    assert_eq!(first.len(), 1000);
    assert_eq!(pos, first.last().unwrap().sequence);
    let (rest, end) = db.poll_changes(pos).await.unwrap();
    assert_eq!(rest.len(), 500);
    assert_eq!(end, db.get_current_sequence().await.unwrap());
    assert_eq!(rest[0].sequence, pos + 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_watch_receives_only_matching_events() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let mut by_domain = db
        .watch_experiences_filtered(
            c,
            WatchFilter {
                domains: Some(vec!["rust".into()]),
                ..WatchFilter::default()
            },
        )
        .await
        .unwrap();
    let mut by_type = db
        .watch_experiences_filtered(
            c,
            WatchFilter {
                experience_types: Some(vec![ExperienceTypeTag::Fact]),
                ..WatchFilter::default()
            },
        )
        .await
        .unwrap();
    let mut by_importance = db
        .watch_experiences_filtered(
            c,
            WatchFilter {
                min_importance: Some(0.7),
                ..WatchFilter::default()
            },
        )
        .await
        .unwrap();
    let mut everything = db.watch_experiences(c).await.unwrap();
    let mut matching = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..30u64 {
        let x = NewExperience {
            domain: vec![if i % 3 == 0 {
                "rust".into()
            } else {
                "go".into()
            }],
            experience_type: if i % 5 == 0 {
                ExperienceType::Fact {
                    statement: "s".into(),
                    source: "x".into(),
                }
            } else {
                ExperienceType::default()
            },
            importance: if i % 4 == 0 { 0.7 } else { 0.69 },
            ..exp(c, i)
        };
        let id = db.record_experience(x).await.unwrap();
        if i % 3 == 0 {
            matching[0].push(id);
        }
        if i % 5 == 0 {
            matching[1].push(id);
        }
        if i % 4 == 0 {
            matching[2].push(id);
        }
    }
    for (stream, want) in [&mut by_domain, &mut by_type, &mut by_importance]
        .into_iter()
        .zip(&matching)
    {
        let got: Vec<_> = next_n(stream, want.len())
            .await
            .into_iter()
            .map(|e| e.experience_id)
            .collect();
        assert_eq!(&got, want);
        assert!(
            stream.next().now_or_never().is_none(),
            "a non-matching event was delivered"
        );
        assert_eq!(stream.missed(), 0);
    }
    assert_eq!(next_n(&mut everything, 30).await.len(), 30);
    db.close().await.unwrap();
}

/// A subscriber that never reads does not slow writers; it counts what it
/// missed and catches up exactly with `poll_changes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_misses_events_without_slowing_writers() {
    let db = PulseHandle::open_in_memory(Config {
        watch: WatchConfig { buffer_size: 4 },
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    let mut slow = db.watch_experiences(c).await.unwrap();
    let start = db.get_current_sequence().await.unwrap();
    let total = 200u64;
    let mut written = Vec::new();
    within_secs(20, async {
        for i in 0..total {
            written.push(db.record_experience(exp(c, i)).await.unwrap());
        }
    })
    .await;
    assert_eq!(slow.missed(), total - 4);
    let received = next_n(&mut slow, 4).await;
    assert!(slow.next().now_or_never().is_none());
    assert_eq!(
        received.len() as u64 + slow.missed(),
        total,
        "received + missed = total"
    );
    // The oldest were kept, the newest dropped.
    assert_eq!(
        received.iter().map(|e| e.experience_id).collect::<Vec<_>>(),
        written[..4].to_vec()
    );
    let last_seen = received.last().unwrap().sequence;
    let (rest, _) = db.poll_changes(last_seen).await.unwrap();
    assert_eq!(rest.len() as u64, slow.missed());
    assert_eq!(
        rest.iter().map(|e| e.experience_id).collect::<Vec<_>>(),
        written[4..].to_vec()
    );
    assert_eq!(rest[0].sequence, last_seen + 1);
    let _ = start;
    // After catching up, the stream delivers new events again.
    let id = db.record_experience(exp(c, 9999)).await.unwrap();
    assert_eq!(within(slow.next()).await.unwrap().experience_id, id);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_while_its_collective_is_deleted_ends() {
    let db = memory_db().await;
    let (mut refused, mut ended) = (0, 0);
    for round in 0..300 {
        let c = db.create_collective(&format!("c{round}")).await.unwrap();
        let deleting = tokio::spawn({
            let db = db.clone();
            async move { db.delete_collective(c).await }
        });
        let watched = db.watch_experiences(c).await;
        within(deleting).await.unwrap().unwrap();
        match watched {
            Err(e) => {
                assert!(e.is_not_found(), "{e:?}");
                refused += 1;
            }
            Ok(mut stream) => {
                let end = within_secs(5, stream.next()).await;
                assert!(end.is_none(), "a stream outlived its collective");
                ended += 1;
            }
        }
    }
    assert_eq!(refused + ended, 300);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_caller_stops_waiting_still_ends_the_streams() {
    let db = memory_db().await;
    // One poll starts each delete; then the caller gives up. A delete can
    // (rarely) finish within that one poll, when the actors answer on the
    // other worker meanwhile: the streams must end either way, and most
    // deletes are abandoned midway.
    let mut abandoned = 0;
    for i in 0..20 {
        let c = db.create_collective(&format!("c{i}")).await.unwrap();
        let mut stream = db.watch_experiences(c).await.unwrap();
        let mut deleting = Box::pin(db.delete_collective(c));
        if futures::poll!(&mut deleting).is_pending() {
            abandoned += 1;
        }
        drop(deleting);
        assert!(within_secs(5, stream.next()).await.is_none());
        wait_until(|| async { db.get_collective(c).await.unwrap().is_none() }).await;
        assert_not_found(db.search_similar(c, &vec16(1), 1).await);
    }
    assert!(
        abandoned >= 10,
        "only {abandoned} of 20 deletes were pending after one poll"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_collective_ends_only_its_streams() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let mut s1 = db.watch_experiences(c).await.unwrap();
    let mut s2 = db
        .watch_experiences_filtered(
            c,
            WatchFilter {
                min_importance: Some(0.9),
                ..WatchFilter::default()
            },
        )
        .await
        .unwrap();
    let mut keep = db.watch_experiences(other).await.unwrap();
    db.record_experience(exp(c, 1)).await.unwrap();
    db.delete_collective(c).await.unwrap();
    assert_eq!(
        within(s1.next()).await.unwrap().event_type,
        WatchEventType::Created
    );
    assert!(within(s1.next()).await.is_none());
    assert!(within(s2.next()).await.is_none());
    // The other collective's stream lives on.
    let id = db.record_experience(exp(other, 2)).await.unwrap();
    assert_eq!(within(keep.next()).await.unwrap().experience_id, id);
    assert!(tokio::time::timeout(Duration::from_millis(20), keep.next())
        .await
        .is_err());
    db.close().await.unwrap();
}
