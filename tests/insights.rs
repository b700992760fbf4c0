//! Insights: store rules, vector search over the collective's insights,
//! listing, deletion, persistence.

mod common;

use common::*;
use pulsedb::*;

fn insight(c: CollectiveId, sources: Vec<ExperienceId>, seed: u64) -> NewDerivedInsight {
    NewDerivedInsight {
        collective_id: c,
        content: format!("insight {seed}"),
        embedding: Some(vec16(seed)),
        source_experience_ids: sources,
        insight_type: InsightType::Synthesis,
        confidence: 0.6,
        domain: vec!["d".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_get_search_and_delete_insights() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let ids = db
        .record_experiences((0..5).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    let o = db.record_experience(exp(other, 1)).await.unwrap();
    let before = Timestamp::now();
    let mut stored = Vec::new();
    for seed in 100..130u64 {
        stored.push((
            db.store_insight(insight(c, ids.clone(), seed))
                .await
                .unwrap(),
            vec16(seed),
        ));
    }
    // An insight of another collective never shows up here.
    db.store_insight(insight(other, vec![o], 100))
        .await
        .unwrap();

    let got = db.get_insight(stored[0].0).await.unwrap().unwrap();
    assert_eq!(got.collective_id, c);
    assert_eq!(got.content, "insight 100");
    assert_eq!(got.embedding, vec16(100));
    assert_eq!(got.source_experience_ids, ids);
    assert_eq!(got.insight_type, InsightType::Synthesis);
    assert_eq!(got.confidence, 0.6);
    assert_eq!(got.domain, vec!["d".to_string()]);
    assert!(got.created_at >= before);
    assert_eq!(got.updated_at, got.created_at);
    assert_eq!(db.get_insight(InsightId::new()).await.unwrap(), None);

    for q in 0..5u64 {
        let query = vector(900 + q, DIM);
        let hits = db.get_insights(c, &query, 5).await.unwrap();
        let expected = oracle(&stored, &query, 5);
        assert_eq!(
            hits.iter().map(|h| h.0.id).collect::<Vec<_>>(),
            expected.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for (h, e) in hits.iter().zip(&expected) {
            assert!((h.1 - e.1).abs() < 1e-4);
            assert_eq!(h.0.collective_id, c);
        }
    }
    assert_eq!(db.get_insights(c, &vec16(1), 1000).await.unwrap().len(), 30);

    let listed: Vec<_> = db
        .list_insights(c, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        listed,
        stored.iter().map(|s| s.0).collect::<Vec<_>>(),
        "oldest first"
    );
    let page: Vec<_> = db
        .list_insights(c, 5, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(page, stored[10..15].iter().map(|s| s.0).collect::<Vec<_>>());

    db.delete_insight(stored[0].0).await.unwrap();
    assert_eq!(db.get_insight(stored[0].0).await.unwrap(), None);
    let hits = db.get_insights(c, &vec16(100), 1).await.unwrap();
    assert_ne!(hits[0].0.id, stored[0].0, "deleted insight not searchable");
    assert_eq!(db.list_insights(c, 100, 0).await.unwrap().len(), 29);
    match db.delete_insight(stored[0].0).await {
        Err(Error::NotFound(NotFoundError::Insight(x))) => assert_eq!(x, stored[0].0),
        other => panic!("expected NotFound(Insight), got {other:?}"),
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insight_rules_are_enforced_and_write_nothing() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let ids = db
        .record_experiences((0..100).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    let foreign = db.record_experience(exp(other, 1)).await.unwrap();
    let seq = db.get_current_sequence().await.unwrap();
    assert_validation(db.store_insight(insight(c, vec![], 1)).await);
    let mut too_many = ids.clone();
    too_many.push(ids[0]);
    assert_validation(db.store_insight(insight(c, too_many, 1)).await);
    assert_validation(db.store_insight(insight(c, vec![ids[0], foreign], 1)).await);
    assert_validation(
        db.store_insight(NewDerivedInsight {
            content: String::new(),
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    assert_validation(
        db.store_insight(NewDerivedInsight {
            content: "x".repeat(51_201),
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    assert_validation(
        db.store_insight(NewDerivedInsight {
            confidence: 1.5,
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    assert_validation(
        db.store_insight(NewDerivedInsight {
            embedding: Some(vector(1, DIM + 1)),
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    assert_validation(
        db.store_insight(NewDerivedInsight {
            embedding: Some(vec![0.0; DIM]),
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    assert_validation(
        db.store_insight(NewDerivedInsight {
            embedding: None,
            ..insight(c, vec![ids[0]], 1)
        })
        .await,
    );
    let missing = ExperienceId::new();
    match db.store_insight(insight(c, vec![ids[0], missing], 1)).await {
        Err(Error::NotFound(NotFoundError::Experience(x))) => assert_eq!(x, missing),
        other => panic!("expected NotFound(Experience), got {other:?}"),
    }
    assert_eq!(
        db.get_current_sequence().await.unwrap(),
        seq,
        "nothing written"
    );
    assert!(db.list_insights(c, 10, 0).await.unwrap().is_empty());
    assert!(db.get_insights(c, &vec16(1), 10).await.unwrap().is_empty());
    // At the limits.
    db.store_insight(NewDerivedInsight {
        content: "x".repeat(51_200),
        ..insight(c, ids.clone(), 1)
    })
    .await
    .unwrap();
    for k in [0, 1001] {
        assert_validation(db.get_insights(c, &vec16(1), k).await);
        assert_validation(db.list_insights(c, k, 0).await);
    }
    assert_validation(db.get_insights(c, &vector(1, 3), 5).await);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_keep_sources_and_persist_across_reopen() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let ids = db
        .record_experiences(vec![exp(c, 1), exp(c, 2)])
        .await
        .unwrap();
    let i = db.store_insight(insight(c, ids.clone(), 50)).await.unwrap();
    let j = db
        .store_insight(insight(c, vec![ids[1]], 51))
        .await
        .unwrap();
    db.delete_experience(ids[0]).await.unwrap();
    assert_eq!(
        db.get_insight(i)
            .await
            .unwrap()
            .unwrap()
            .source_experience_ids,
        ids,
        "sources kept"
    );
    db.delete_insight(j).await.unwrap();
    db.close().await.unwrap();
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_dir_all(t.index_dir()).unwrap();
        }
        let db = t.open().await;
        let hits = db.get_insights(c, &vec16(51), 10).await.unwrap();
        assert_eq!(
            hits.iter().map(|h| h.0.id).collect::<Vec<_>>(),
            vec![i],
            "round {round}"
        );
        let k = db
            .store_insight(insight(c, vec![ids[1]], 60 + round))
            .await
            .unwrap();
        assert_eq!(
            db.get_insights(c, &vec16(60 + round), 1).await.unwrap()[0]
                .0
                .id,
            k
        );
        db.delete_insight(k).await.unwrap();
        db.close().await.unwrap();
    }
}
