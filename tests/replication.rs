//! Replication between handles in one process (REPLICATION.md): pages of
//! one node's change log merged into another, in every direction, until
//! quiet. The HTTP transport between real processes is tested in
//! `tests/replication_http.rs`.

mod common;

use std::time::Duration;

use common::*;
use pulsedb::replication::RemoteChange;
use pulsedb::*;

/// Pulls everything `to` has not yet applied from `from`, page by page;
/// returns how many changes were sent.
async fn pull(from: &PulseHandle, to: &PulseHandle) -> usize {
    let peer = from.instance_id();
    let mut since = to.pull_cursor(peer).await.unwrap();
    let mut sent = 0;
    loop {
        let page = from
            .replication_changes(since, 7, Duration::ZERO)
            .await
            .unwrap();
        if page.next == since {
            return sent;
        }
        sent += page.changes.len();
        to.apply_remote_changes(peer, page.changes, page.next)
            .await
            .unwrap();
        since = page.next;
    }
}

/// Full mesh rounds until no node's log moves.
async fn converge(nodes: &[&PulseHandle]) {
    for _ in 0..10 {
        let before = heads(nodes).await;
        for a in nodes {
            for b in nodes {
                if a.instance_id() != b.instance_id() {
                    pull(a, b).await;
                }
            }
        }
        if heads(nodes).await == before {
            return;
        }
    }
    panic!("nodes did not go quiet");
}

async fn heads(nodes: &[&PulseHandle]) -> Vec<u64> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.get_current_sequence().await.unwrap());
    }
    out
}

/// A node's whole replicated state (entities, versions, counters,
/// tombstones) as its snapshot gives it.
async fn state(db: &PulseHandle) -> Vec<RemoteChange> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reading = {
        let db = db.clone();
        tokio::spawn(async move { db.replication_snapshot(tx).await })
    };
    let mut out = Vec::new();
    while let Some(change) = rx.recv().await {
        out.push(change);
    }
    reading.await.unwrap().unwrap();
    out
}

fn relation(a: ExperienceId, b: ExperienceId) -> NewExperienceRelation {
    NewExperienceRelation {
        source_id: a,
        target_id: b,
        relation_type: RelationType::Supports,
        strength: 0.5,
        metadata: None,
    }
}

async fn search_ids(db: &PulseHandle, c: CollectiveId, seed: u64) -> Vec<ExperienceId> {
    db.search_similar(c, &vec16(seed), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.experience.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_receives_everything_and_searches_it() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    let every = store_every_kind(&a).await;
    for seed in 10..40 {
        a.record_experience(exp(every.collective, seed))
            .await
            .unwrap();
    }
    a.reinforce_experience(every.first).await.unwrap();
    converge(&[&a, &b]).await;

    assert_eq!(state(&a).await, state(&b).await);
    assert!(!state(&b).await.is_empty());
    let got = b.get_experience(every.first).await.unwrap().unwrap();
    assert_eq!(got.applications, 1);
    assert_eq!(got, a.get_experience(every.first).await.unwrap().unwrap());
    assert!(b.get_relation(every.relation).await.unwrap().is_some());
    assert!(b.get_insight(every.insight).await.unwrap().is_some());
    // The index followed the merge: the same query, the same answer.
    for seed in [1, 15, 33] {
        assert_eq!(
            search_ids(&a, every.collective, seed).await,
            search_ids(&b, every.collective, seed).await
        );
    }
    // Nothing new: another round sends nothing that changes anything.
    let heads_before = heads(&[&a, &b]).await;
    pull(&a, &b).await;
    pull(&b, &a).await;
    assert_eq!(heads(&[&a, &b]).await, heads_before, "echoes must end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_converge_on_three_nodes() {
    let (ta, tb, tc) = (TempDb::new(), TempDb::new(), TempDb::new());
    let (a, b, c) = (ta.open().await, tb.open().await, tc.open().await);
    let col = a.create_collective("shared").await.unwrap();
    let mut ids = Vec::new();
    for seed in 0..12 {
        ids.push(a.record_experience(exp(col, seed)).await.unwrap());
    }
    converge(&[&a, &b, &c]).await;

    // Concurrent writes, no exchange in between.
    let update = |importance: f32| ExperienceUpdate {
        importance: Some(importance),
        ..Default::default()
    };
    a.update_experience(ids[0], update(0.1)).await.unwrap();
    b.update_experience(ids[0], update(0.9)).await.unwrap();
    for _ in 0..2 {
        a.reinforce_experience(ids[1]).await.unwrap();
    }
    b.reinforce_experience(ids[1]).await.unwrap();
    c.reinforce_experience(ids[1]).await.unwrap();
    a.delete_experience(ids[2]).await.unwrap();
    b.update_experience(ids[2], update(0.7)).await.unwrap();
    c.archive_experience(ids[3]).await.unwrap();
    b.update_experience(ids[3], update(0.3)).await.unwrap();
    let ra = a.store_relation(relation(ids[4], ids[5])).await.unwrap();
    let rb = b.store_relation(relation(ids[4], ids[5])).await.unwrap();
    let rc = c.store_relation(relation(ids[6], ids[7])).await.unwrap();
    let new_on_c = c.record_experience(exp(col, 100)).await.unwrap();
    let rel_to_new = c.store_relation(relation(new_on_c, ids[8])).await.unwrap();
    b.delete_experience(ids[9]).await.unwrap();
    converge(&[&a, &b, &c]).await;

    let sa = state(&a).await;
    assert_eq!(sa, state(&b).await);
    assert_eq!(sa, state(&c).await);
    // Last writer wins, the same everywhere.
    let x0 = a.get_experience(ids[0]).await.unwrap().unwrap();
    assert!(x0.importance == 0.1 || x0.importance == 0.9);
    // No reinforcement is lost.
    for n in [&a, &b, &c] {
        let x1 = n.get_experience(ids[1]).await.unwrap().unwrap();
        assert_eq!(x1.applications, 4);
        // Deletes are final, whatever a concurrent update says.
        assert!(n.get_experience(ids[2]).await.unwrap().is_none());
        assert!(n.get_experience(ids[9]).await.unwrap().is_none());
        // Duplicate relations collapse to the smaller id.
        let smaller = ra.min(rb);
        let larger = ra.max(rb);
        assert!(n.get_relation(smaller).await.unwrap().is_some());
        assert!(n.get_relation(larger).await.unwrap().is_none());
        assert!(n.get_relation(rc).await.unwrap().is_some());
        assert!(n.get_relation(rel_to_new).await.unwrap().is_some());
    }
    for seed in [0, 5, 100] {
        let expect = search_ids(&a, col, seed).await;
        assert_eq!(search_ids(&b, col, seed).await, expect);
        assert_eq!(search_ids(&c, col, seed).await, expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_collective_drops_concurrent_writes_everywhere() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    let col = a.create_collective("doomed").await.unwrap();
    let x = a.record_experience(exp(col, 1)).await.unwrap();
    converge(&[&a, &b]).await;

    a.delete_collective(col).await.unwrap();
    b.record_experience(exp(col, 2)).await.unwrap();
    b.update_experience(
        x,
        ExperienceUpdate {
            importance: Some(0.2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    converge(&[&a, &b]).await;

    for n in [&a, &b] {
        assert!(n.get_collective(col).await.unwrap().is_none());
        assert!(n.get_experience(x).await.unwrap().is_none());
    }
    assert_eq!(state(&a).await, state(&b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_applied_out_of_order_are_held_back_then_shown() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    let every = store_every_kind(&a).await;
    let all = state(&a).await;
    // Collectives first (a change for an unknown collective is refused),
    // then everything else backwards: relations and insights before
    // their experiences.
    let (collectives, mut rest): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .partition(|c| matches!(c, RemoteChange::Collective { .. }));
    rest.reverse();
    let peer = a.instance_id();
    b.apply_remote_changes(peer, collectives, 0).await.unwrap();
    for change in rest {
        b.apply_remote_changes(peer, vec![change], 0).await.unwrap();
    }
    assert_eq!(state(&b).await, all);
    assert!(b.get_relation(every.relation).await.unwrap().is_some());
    assert!(b.get_insight(every.insight).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_is_refused_whole_and_changes_nothing() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    store_every_kind(&a).await;
    let good = a
        .replication_changes(0, 1000, Duration::ZERO)
        .await
        .unwrap();
    let peer = a.instance_id();
    let head = b.get_current_sequence().await.unwrap();

    // Without its collective: unknown.
    let orphans: Vec<_> = good
        .changes
        .iter()
        .filter(|c| !matches!(c, RemoteChange::Collective { .. }))
        .cloned()
        .collect();
    let err = b.apply_remote_changes(peer, orphans, 9).await.unwrap_err();
    assert!(err.to_string().contains("collective_id"), "{err}");

    // One experience of the wrong dimension spoils the batch.
    let mut bad = good.changes.clone();
    for change in &mut bad {
        if let RemoteChange::Experience { experience, .. } = change {
            experience.embedding.push(0.5);
            break;
        }
    }
    let err = b.apply_remote_changes(peer, bad, 9).await.unwrap_err();
    assert!(err.to_string().contains("embedding"), "{err}");

    // A version from far in the future (a peer's clock gone wrong).
    let mut future = good.changes.clone();
    if let Some(RemoteChange::Collective { version, .. }) = future.first_mut() {
        version.hlc.millis += 24 * 3600 * 1000;
    }
    let err = b.apply_remote_changes(peer, future, 9).await.unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");

    // From itself.
    let err = b
        .apply_remote_changes(b.instance_id(), good.changes.clone(), 9)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("instance_id"), "{err}");

    assert_eq!(b.get_current_sequence().await.unwrap(), head);
    assert!(b.list_collectives().await.unwrap().is_empty());
    assert_eq!(b.pull_cursor(peer).await.unwrap(), 0);

    // The good batch goes in.
    b.apply_remote_changes(peer, good.changes, good.next)
        .await
        .unwrap();
    assert_eq!(b.pull_cursor(peer).await.unwrap(), good.next);
    assert_eq!(state(&a).await, state(&b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_when_a_change_commits() {
    let t = TempDb::new();
    let db = t.open().await;
    let head = db.get_current_sequence().await.unwrap();
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move {
            db.replication_changes(head, 100, Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    let started = std::time::Instant::now();
    db.create_collective("wake").await.unwrap();
    let page = within(waiting).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(page.changes.len(), 1);
    assert!(page.next > head);
    // Nothing new: the wait ends at its limit with the position given.
    let quiet = db
        .replication_changes(page.next, 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(quiet.next, page.next);
    assert!(quiet.changes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_remote_changes_as_local_ones() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    let col = a.create_collective("watched").await.unwrap();
    converge(&[&a, &b]).await;
    let mut stream = b.watch_experiences(col).await.unwrap();
    let x = a.record_experience(exp(col, 1)).await.unwrap();
    converge(&[&a, &b]).await;
    let event = within(futures::StreamExt::next(&mut stream)).await.unwrap();
    assert_eq!(event.experience_id, x);
    assert_eq!(event.event_type, WatchEventType::Created);
    assert_eq!(event.experience.unwrap().id, x);
    let (events, _) = b.poll_changes(0).await.unwrap();
    assert!(events.iter().any(|e| e.experience_id == x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolves_to_the_oldest_collective_on_every_node() {
    let (ta, tb) = (TempDb::new(), TempDb::new());
    let (a, b) = (ta.open().await, tb.open().await);
    // Created concurrently on two nodes, before either saw the other's.
    let on_a = a.create_collective("team").await.unwrap();
    let on_b = b.create_collective("team").await.unwrap();
    assert_eq!(a.resolve_collective("team").await.unwrap(), Some(on_a));
    assert_eq!(b.resolve_collective("team").await.unwrap(), Some(on_b));
    converge(&[&a, &b]).await;
    let oldest = on_a.min(on_b);
    assert_eq!(a.resolve_collective("team").await.unwrap(), Some(oldest));
    assert_eq!(b.resolve_collective("team").await.unwrap(), Some(oldest));
    assert_eq!(a.resolve_collective("nobody").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_only_past_what_every_pulling_peer_has_taken() {
    let t = TempDb::new();
    let retention = Config {
        change_log: ChangeLogConfig {
            retention: Duration::from_millis(1),
        },
        ..config()
    };
    let db = t.open_with(retention).await;
    let slow = InstanceId::new();
    let fast = InstanceId::new();
    // Known before the first write: the background compaction (every
    // 10 ms here) never passes them.
    db.record_peer_pull(slow, 0).await.unwrap();
    db.record_peer_pull(fast, 0).await.unwrap();
    let c = db.create_collective("served").await.unwrap();
    for seed in 0..10 {
        db.record_experience(exp(c, seed)).await.unwrap();
    }
    let head = db.get_current_sequence().await.unwrap();
    db.record_peer_pull(slow, 4).await.unwrap();
    db.record_peer_pull(fast, head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    db.compact_change_log().await.unwrap();
    // The slow peer can go on from where it is; before that is gone.
    let page = db
        .replication_changes(4, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(page.next, head);
    assert!(matches!(
        db.replication_changes(0, 100, Duration::ZERO).await,
        Err(Error::ChangesCompacted { .. })
    ));
    let status = db.replication_status().await.unwrap();
    let mut pulled: Vec<_> = status
        .pulled_by
        .iter()
        .map(|p| (p.instance_id, p.position))
        .collect();
    pulled.sort();
    let mut expected = vec![(slow, 4), (fast, head)];
    expected.sort();
    assert_eq!(pulled, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_relations_whose_end_is_deleted_elsewhere_converge() {
    let (ta, tb, tc) = (TempDb::new(), TempDb::new(), TempDb::new());
    let (a, b, c) = (ta.open().await, tb.open().await, tc.open().await);
    let col = a.create_collective("dups").await.unwrap();
    let x = a.record_experience(exp(col, 1)).await.unwrap();
    let y = a.record_experience(exp(col, 2)).await.unwrap();
    converge(&[&a, &b, &c]).await;
    // The same relation created on two nodes; one of them learns of both
    // (and holds one behind the other) ...
    a.store_relation(relation(x, y)).await.unwrap();
    b.store_relation(relation(x, y)).await.unwrap();
    pull(&a, &b).await;
    // ... while a third, having seen neither, deletes an end.
    c.delete_experience(x).await.unwrap();
    converge(&[&a, &b, &c]).await;
    let sa = state(&a).await;
    assert_eq!(sa, state(&b).await);
    assert_eq!(sa, state(&c).await);
    for n in [&a, &b, &c] {
        assert!(n.get_experience(x).await.unwrap().is_none());
        let related = n
            .get_related_experiences(y, RelationDirection::Both)
            .await
            .unwrap();
        assert!(related.is_empty());
    }
}
