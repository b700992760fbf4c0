//! Collectives: create, list, stats, delete (with its cascade), and
//! `NotFound` for an unknown collective everywhere one is named.

mod common;

use common::*;
use futures::StreamExt;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_list_collectives() {
    let db = memory_db().await;
    let before = Timestamp::now();
    let a = db.create_collective("alpha").await.unwrap();
    let b = db
        .create_collective_with_owner("beta", "alice")
        .await
        .unwrap();
    let c = db
        .create_collective_with_owner("gamma", "alice")
        .await
        .unwrap();
    let d = db
        .create_collective_with_owner("delta", "bob")
        .await
        .unwrap();

    let got = db.get_collective(b).await.unwrap().unwrap();
    assert_eq!(got.id, b);
    assert_eq!(got.name, "beta");
    assert_eq!(got.owner_id.as_deref(), Some("alice"));
    assert_eq!(got.embedding_dimension as usize, DIM);
    assert!(got.created_at >= before);
    assert_eq!(got.updated_at, got.created_at);
    assert_eq!(db.get_collective(a).await.unwrap().unwrap().owner_id, None);
    assert_eq!(db.get_collective(CollectiveId::new()).await.unwrap(), None);

    let all: Vec<_> = db
        .list_collectives()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all, vec![a, b, c, d]);
    let alice: Vec<_> = db
        .list_collectives_by_owner("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(alice, vec![b, c]);
    assert!(db
        .list_collectives_by_owner("nobody")
        .await
        .unwrap()
        .is_empty());
    // Names need not be unique.
    let a2 = db.create_collective("alpha").await.unwrap();
    assert_ne!(a, a2);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collective_name_and_owner_are_validated_at_the_limits() {
    let db = memory_db().await;
    assert_validation(db.create_collective("").await);
    assert_validation(db.create_collective("   \t\n").await);
    assert_validation(db.create_collective(&"n".repeat(256)).await);
    // 128 two-byte characters: 256 bytes.
    assert_validation(db.create_collective(&"é".repeat(128)).await);
    assert_validation(
        db.create_collective_with_owner("ok", &"o".repeat(256))
            .await,
    );
    assert_validation(db.create_collective_with_owner("", "owner").await);
    assert!(db.list_collectives().await.unwrap().is_empty());
    assert_eq!(db.get_current_sequence().await.unwrap(), 0);

    let max = db.create_collective(&"n".repeat(255)).await.unwrap();
    assert_eq!(
        db.get_collective(max).await.unwrap().unwrap().name.len(),
        255
    );
    db.create_collective(" padded ").await.unwrap();
    db.create_collective_with_owner("ok", &"o".repeat(255))
        .await
        .unwrap();
    assert_eq!(db.list_collectives().await.unwrap().len(), 3);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_real_figures() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let empty = db.get_collective_stats(c).await.unwrap();
    assert_eq!(empty.experience_count, 0);
    assert_eq!(empty.archived_count, 0);
    assert_eq!(empty.insight_count, 0);
    assert_eq!(empty.relation_count, 0);
    assert_eq!(empty.oldest_experience, None);
    assert_eq!(empty.newest_experience, None);

    let mut ids = Vec::new();
    for i in 0..5u64 {
        ids.push(db.record_experience(exp(c, i)).await.unwrap());
    }
    db.archive_experience(ids[0]).await.unwrap();
    db.archive_experience(ids[1]).await.unwrap();
    db.store_relation(NewExperienceRelation {
        source_id: ids[2],
        target_id: ids[3],
        relation_type: RelationType::Supports,
        strength: 1.0,
        metadata: None,
    })
    .await
    .unwrap();
    db.store_insight(NewDerivedInsight {
        collective_id: c,
        content: "i".into(),
        embedding: Some(vec16(50)),
        source_experience_ids: vec![ids[2]],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    })
    .await
    .unwrap();
    // Another collective's data does not count.
    let other = db.create_collective("other").await.unwrap();
    db.record_experience(exp(other, 99)).await.unwrap();

    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!(stats.experience_count, 5);
    assert_eq!(stats.archived_count, 2);
    assert_eq!(stats.insight_count, 1);
    assert_eq!(stats.relation_count, 1);
    let first = db.get_experience(ids[0]).await.unwrap().unwrap().timestamp;
    let last = db.get_experience(ids[4]).await.unwrap().unwrap().timestamp;
    assert_eq!(stats.oldest_experience, Some(first));
    assert_eq!(stats.newest_experience, Some(last));
    // At least the embeddings themselves are stored.
    assert!(stats.storage_bytes >= 5 * (DIM as u64) * 4);

    // Bigger content means more bytes.
    db.record_experience(NewExperience {
        content: "x".repeat(10_000),
        ..exp(c, 7)
    })
    .await
    .unwrap();
    let bigger = db.get_collective_stats(c).await.unwrap();
    assert!(bigger.storage_bytes >= stats.storage_bytes + 10_000);
    assert_eq!(bigger.experience_count, 6);

    db.delete_experience(ids[2]).await.unwrap();
    let after = db.get_collective_stats(c).await.unwrap();
    assert_eq!(after.experience_count, 5);
    assert_eq!(
        after.relation_count, 0,
        "relations go with their experience"
    );
    assert_eq!(after.insight_count, 1, "insights keep their sources");
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collective_cascades_and_logs_one_entry() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("doomed").await.unwrap();
    let keep = db.create_collective("kept").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..10u64 {
        ids.push(db.record_experience(exp(c, i)).await.unwrap());
    }
    let kept_id = db.record_experience(exp(keep, 1)).await.unwrap();
    let r = db
        .store_relation(NewExperienceRelation {
            source_id: ids[0],
            target_id: ids[1],
            relation_type: RelationType::Implies,
            strength: 0.5,
            metadata: None,
        })
        .await
        .unwrap();
    let i = db
        .store_insight(NewDerivedInsight {
            collective_id: c,
            content: "i".into(),
            embedding: Some(vec16(50)),
            source_experience_ids: vec![ids[0]],
            insight_type: InsightType::Pattern,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    db.register_activity(activity("a", c)).await.unwrap();
    db.close().await.unwrap();

    // After a close the snapshot files of both collectives exist.
    let files_of = |id: CollectiveId| -> Vec<String> {
        std::fs::read_dir(t.index_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(&id.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!files_of(c).is_empty(), "snapshots written on close");
    assert!(!files_of(keep).is_empty());

    let db = t.open().await;
    // Warm the collective actor so that deletion has a live actor to stop.
    db.search_similar(c, &vec16(1), 1).await.unwrap();
    let mut stream = db.watch_experiences(c).await.unwrap();
    let seq = db.get_current_sequence().await.unwrap();
    db.delete_collective(c).await.unwrap();
    assert_eq!(
        db.get_current_sequence().await.unwrap(),
        seq + 1,
        "one log entry"
    );
    assert!(within(stream.next()).await.is_none(), "watch stream ends");

    assert_eq!(db.get_collective(c).await.unwrap(), None);
    for id in &ids {
        assert_eq!(db.get_experience(*id).await.unwrap(), None);
    }
    assert_eq!(db.get_relation(r).await.unwrap(), None);
    assert_eq!(db.get_insight(i).await.unwrap(), None);
    assert!(
        files_of(c).is_empty(),
        "index files removed: {:?}",
        files_of(c)
    );
    assert!(!files_of(keep).is_empty());
    assert_not_found(db.get_collective_stats(c).await);
    assert_not_found(db.search_similar(c, &vec16(1), 1).await);
    assert_not_found(db.list_experiences(c, 10, 0).await);
    assert_not_found(db.get_active_agents(c).await);
    match db.delete_collective(c).await {
        Err(Error::NotFound(NotFoundError::Collective(x))) => assert_eq!(x, c),
        other => panic!("expected NotFound(Collective), got {other:?}"),
    }
    // The other collective is untouched.
    assert!(db.get_experience(kept_id).await.unwrap().is_some());
    assert_eq!(
        db.search_similar(keep, &vec16(1), 1).await.unwrap()[0]
            .experience
            .id,
        kept_id
    );
    db.close().await.unwrap();

    // The deletion persists and the snapshots do not bring anything back.
    let db = t.open().await;
    assert_eq!(db.get_collective(c).await.unwrap(), None);
    assert_eq!(db.list_collectives().await.unwrap().len(), 1);
    assert!(files_of(c).is_empty());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_collective_is_not_found_everywhere() {
    let db = memory_db().await;
    let real = db.create_collective("real").await.unwrap();
    let a = db.record_experience(exp(real, 1)).await.unwrap();
    let c = CollectiveId::new();
    macro_rules! nf {
        ($e:expr) => {
            match $e.await {
                Err(Error::NotFound(NotFoundError::Collective(x))) => assert_eq!(x, c),
                other => panic!(
                    "{}: expected NotFound(Collective), got {other:?}",
                    stringify!($e)
                ),
            }
        };
    }
    nf!(db.get_collective_stats(c));
    nf!(db.delete_collective(c));
    nf!(db.record_experience(exp(c, 1)));
    nf!(db.record_experiences(vec![exp(c, 1), exp(c, 2)]));
    nf!(db.try_record_experience(exp(c, 1)));
    nf!(db.list_experiences(c, 10, 0));
    nf!(db.get_recent_experiences(c, 10));
    nf!(db.get_recent_experiences_filtered(c, 10, SearchFilter::default()));
    nf!(db.list_cold_experiences(c, 0.5, 10));
    nf!(db.search_similar(c, &vec16(1), 5));
    nf!(db.search_similar_filtered(c, &vec16(1), 5, SearchFilter::default()));
    nf!(db.search(c, &vec16(1), SearchOptions::default()));
    nf!(db.list_relations(c, 10, 0));
    nf!(db.store_insight(NewDerivedInsight {
        collective_id: c,
        content: "i".into(),
        embedding: Some(vec16(1)),
        source_experience_ids: vec![a],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    }));
    nf!(db.get_insights(c, &vec16(1), 5));
    nf!(db.list_insights(c, 10, 0));
    nf!(db.register_activity(NewActivity {
        agent_id: "a".into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    }));
    nf!(db.update_heartbeat("a", c));
    nf!(db.end_activity("a", c));
    nf!(db.get_active_agents(c));
    nf!(db.watch_experiences(c));
    nf!(db.watch_experiences_filtered(c, WatchFilter::default()));
    nf!(db.get_context_candidates(ContextRequest {
        collective_id: c,
        query_embedding: vec16(1),
        ..ContextRequest::default()
    }));
    // Nothing was written by the failed calls.
    assert_eq!(db.get_current_sequence().await.unwrap(), 2);
    db.close().await.unwrap();
}

/// Writes racing a collective's delete either land before it or find the
/// collective gone: `NotFound`, never an actor that "stopped before
/// answering" (which the server would have to answer with a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_a_collective_delete_find_it_gone() {
    let db = memory_db().await;
    let (mut landed, mut gone) = (0, 0);
    for round in 0..20u64 {
        let c = db
            .create_collective(&format!("doomed {round}"))
            .await
            .unwrap();
        db.record_experience(exp(c, round)).await.unwrap();
        let writers: Vec<_> = (0..64u64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.record_experience(exp(c, 1_000 + i)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        db.delete_collective(c).await.unwrap();
        for w in writers {
            match w.await.unwrap() {
                Ok(_) => landed += 1,
                Err(Error::NotFound(_)) => gone += 1,
                Err(e) => panic!("round {round}: a write racing the delete got {e:?}"),
            }
        }
    }
    eprintln!("{landed} writes landed before the deletes, {gone} found the collective gone");
}
