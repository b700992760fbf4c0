//! Experiences: record (single and bulk), get, update, archive, delete,
//! reinforce, energy, cold / list / recent, validation at every limit.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use pulsedb::*;

fn tags(n: usize) -> BTreeMap<String, String> {
    (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_and_get_round_trips_every_field() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let embedding: Vec<f32> = (0..DIM).map(|i| i as f32 * 3.5 - 7.0).collect();
    let before = Timestamp::now();
    let new = NewExperience {
        collective_id: c,
        content: "naïve content ✓".into(),
        experience_type: ExperienceType::SuccessPattern {
            task_type: "build".into(),
            approach: "cache".into(),
            quality: 0.75,
        },
        embedding: Some(embedding.clone()),
        importance: 0.8,
        confidence: 0.3,
        domain: vec!["rust".into(), "ci".into()],
        tags: tags(3),
        related_files: vec!["src/lib.rs".into()],
        source_agent: "agent-7".into(),
        source_task: Some("task-1".into()),
        metadata: serde_json::json!({"run": 42, "by": "ci", "nested": {"ok": true}})
            .as_object()
            .unwrap()
            .clone(),
    };
    let id = db.record_experience(new.clone()).await.unwrap();
    let got = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.collective_id, c);
    assert_eq!(got.content, new.content);
    assert_eq!(got.experience_type, new.experience_type);
    // Returned exactly as given, not normalised.
    assert_eq!(got.embedding, embedding);
    assert_eq!(got.importance, 0.8);
    assert_eq!(got.confidence, 0.3);
    assert_eq!(got.domain, new.domain);
    assert_eq!(got.tags, new.tags);
    assert_eq!(got.related_files, new.related_files);
    assert_eq!(got.source_agent, "agent-7");
    assert_eq!(got.source_task.as_deref(), Some("task-1"));
    assert_eq!(got.metadata, new.metadata);
    assert_eq!(got.applications, 0);
    assert!(!got.archived);
    assert!(got.timestamp >= before);
    assert_eq!(got.last_reinforced, got.timestamp);
    assert_eq!(db.get_experience(ExperienceId::new()).await.unwrap(), None);

    let d = NewExperience::default();
    assert_eq!(d.importance, 0.5);
    assert_eq!(d.confidence, 0.5);
    assert_eq!(d.source_agent, "anonymous");
    assert_eq!(
        d.experience_type,
        ExperienceType::Generic { category: None }
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_limits_are_enforced_and_write_nothing() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let seq = db.get_current_sequence().await.unwrap();
    let base = exp(c, 1);
    let bad: Vec<(&str, NewExperience)> = vec![
        (
            "empty content",
            NewExperience {
                content: String::new(),
                ..base.clone()
            },
        ),
        (
            "content too large",
            NewExperience {
                content: "x".repeat(102_401),
                ..base.clone()
            },
        ),
        (
            "importance < 0",
            NewExperience {
                importance: -0.01,
                ..base.clone()
            },
        ),
        (
            "importance > 1",
            NewExperience {
                importance: 1.01,
                ..base.clone()
            },
        ),
        (
            "importance NaN",
            NewExperience {
                importance: f32::NAN,
                ..base.clone()
            },
        ),
        (
            "confidence > 1",
            NewExperience {
                confidence: 1.5,
                ..base.clone()
            },
        ),
        (
            "confidence inf",
            NewExperience {
                confidence: f32::INFINITY,
                ..base.clone()
            },
        ),
        (
            "51 domains",
            NewExperience {
                domain: (0..51).map(|i| i.to_string()).collect(),
                ..base.clone()
            },
        ),
        (
            "empty domain",
            NewExperience {
                domain: vec![String::new()],
                ..base.clone()
            },
        ),
        (
            "101-byte domain",
            NewExperience {
                domain: vec!["d".repeat(101)],
                ..base.clone()
            },
        ),
        (
            "51 tags",
            NewExperience {
                tags: tags(51),
                ..base.clone()
            },
        ),
        (
            "empty tag key",
            NewExperience {
                tags: [(String::new(), "v".into())].into(),
                ..base.clone()
            },
        ),
        (
            "101-byte tag key",
            NewExperience {
                tags: [("k".repeat(101), "v".into())].into(),
                ..base.clone()
            },
        ),
        (
            "201-byte tag value",
            NewExperience {
                tags: [("k".into(), "v".repeat(201))].into(),
                ..base.clone()
            },
        ),
        (
            "101 related files",
            NewExperience {
                related_files: vec!["f".into(); 101],
                ..base.clone()
            },
        ),
        (
            "501-byte related file",
            NewExperience {
                related_files: vec!["f".repeat(501)],
                ..base.clone()
            },
        ),
        (
            "empty source_agent",
            NewExperience {
                source_agent: String::new(),
                ..base.clone()
            },
        ),
        (
            "256-byte source_agent",
            NewExperience {
                source_agent: "a".repeat(256),
                ..base.clone()
            },
        ),
        (
            "1025-byte source_task",
            NewExperience {
                source_task: Some("t".repeat(1025)),
                ..base.clone()
            },
        ),
        (
            "NaN component",
            NewExperience {
                embedding: Some({
                    let mut v = vec16(1);
                    v[3] = f32::NAN;
                    v
                }),
                ..base.clone()
            },
        ),
        (
            "inf component",
            NewExperience {
                embedding: Some({
                    let mut v = vec16(1);
                    v[0] = f32::NEG_INFINITY;
                    v
                }),
                ..base.clone()
            },
        ),
        (
            "zero vector",
            NewExperience {
                embedding: Some(vec![0.0; DIM]),
                ..base.clone()
            },
        ),
        (
            "quality > 1",
            NewExperience {
                experience_type: ExperienceType::SuccessPattern {
                    task_type: "t".into(),
                    approach: "a".into(),
                    quality: 1.5,
                },
                ..base.clone()
            },
        ),
        (
            "strength < 0",
            NewExperience {
                experience_type: ExperienceType::UserPreference {
                    category: "c".into(),
                    preference: "p".into(),
                    strength: -0.5,
                },
                ..base.clone()
            },
        ),
    ];
    for (what, x) in bad {
        match db.record_experience(x.clone()).await {
            Err(Error::Validation(_)) => {}
            other => panic!("{what}: expected a validation error, got {other:?}"),
        }
        match db.record_experiences(vec![exp(c, 2), x]).await {
            Err(Error::Validation(_)) => {}
            other => panic!("{what} (bulk): expected a validation error, got {other:?}"),
        }
    }
    match db
        .record_experience(NewExperience {
            content: "x".repeat(102_401),
            ..base.clone()
        })
        .await
    {
        Err(Error::Validation(ValidationError::ContentTooLarge { size, max })) => {
            assert_eq!((size, max), (102_401, 102_400));
        }
        other => panic!("expected ContentTooLarge, got {other:?}"),
    }
    match db
        .record_experience(NewExperience {
            embedding: Some(vector(1, DIM - 1)),
            ..base.clone()
        })
        .await
    {
        Err(Error::Validation(ValidationError::DimensionMismatch { expected, got })) => {
            assert_eq!((expected, got), (DIM, DIM - 1));
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    assert_eq!(
        db.get_current_sequence().await.unwrap(),
        seq,
        "nothing logged"
    );
    assert!(db.list_experiences(c, 10, 0).await.unwrap().is_empty());
    assert!(db
        .search_similar(c, &vec16(1), 10)
        .await
        .unwrap()
        .is_empty());

    // Exactly at every limit is fine.
    let at_limits = NewExperience {
        content: "x".repeat(102_400),
        importance: 1.0,
        confidence: 0.0,
        domain: (0..50).map(|i| format!("{i:0>100}")).collect(),
        tags: (0..50)
            .map(|i| (format!("{i:0>100}"), "v".repeat(200)))
            .collect(),
        related_files: (0..100).map(|i| format!("{i:0>500}")).collect(),
        source_agent: "a".repeat(255),
        source_task: Some("t".repeat(1024)),
        ..base.clone()
    };
    let id = db.record_experience(at_limits.clone()).await.unwrap();
    let got = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(got.content.len(), 102_400);
    assert_eq!(got.tags.len(), 50);
    assert_eq!(got.related_files.len(), 100);
    let empty_value = NewExperience {
        tags: [("k".into(), String::new())].into(),
        ..base.clone()
    };
    db.record_experience(empty_value).await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_record_is_ordered_and_all_or_nothing() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    assert_eq!(
        db.record_experiences(vec![]).await.unwrap(),
        Vec::<ExperienceId>::new()
    );

    let batch: Vec<_> = (0..20u64).map(|i| exp(c, i)).collect();
    let ids = db.record_experiences(batch).await.unwrap();
    assert_eq!(ids.len(), 20);
    for (i, id) in ids.iter().enumerate() {
        let got = db.get_experience(*id).await.unwrap().unwrap();
        assert_eq!(got.content, format!("experience {i}"));
        let hit = &db.search_similar(c, &vec16(i as u64), 1).await.unwrap()[0];
        assert_eq!(hit.experience.id, *id);
    }
    let listed: Vec<_> = db
        .list_experiences(c, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, ids, "oldest first = input order");

    // Mixed collectives are refused, nothing written.
    assert_validation(
        db.record_experiences(vec![exp(c, 100), exp(other, 101)])
            .await,
    );
    // A missing collective in the batch writes nothing.
    assert_not_found(
        db.record_experiences(vec![exp(CollectiveId::new(), 1)])
            .await,
    );
    assert_eq!(db.list_experiences(c, 100, 0).await.unwrap().len(), 20);
    assert!(db.list_experiences(other, 100, 0).await.unwrap().is_empty());

    // Too many items.
    let too_many: Vec<_> = (0..10_001u64).map(|i| exp(c, i)).collect();
    match db.record_experiences(too_many).await {
        Err(Error::Validation(ValidationError::TooManyItems { count, max, .. })) => {
            assert_eq!((count, max), (10_001, 10_000));
        }
        other => panic!("expected TooManyItems, got {other:?}"),
    }
    assert_eq!(
        db.get_collective_stats(c).await.unwrap().experience_count,
        20
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_record_of_the_maximum_batch() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let seq = db.get_current_sequence().await.unwrap();
    let ids = within(db.record_experiences((0..10_000u64).map(|i| exp(c, i)).collect()))
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(
        db.get_current_sequence().await.unwrap(),
        seq + 10_000,
        "one entry per item"
    );
    assert_eq!(
        db.get_collective_stats(c).await.unwrap().experience_count,
        10_000
    );
    let hit = &db.search_similar(c, &vec16(1234), 1).await.unwrap()[0];
    assert_eq!(hit.experience.id, ids[1234]);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_changes_only_given_fields() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let id = db
        .record_experience(NewExperience {
            domain: vec!["a".into(), "b".into()],
            tags: tags(2),
            related_files: vec!["x".into()],
            ..exp(c, 1)
        })
        .await
        .unwrap();
    let before = db.get_experience(id).await.unwrap().unwrap();
    db.update_experience(
        id,
        ExperienceUpdate {
            importance: Some(0.9),
            ..ExperienceUpdate::default()
        },
    )
    .await
    .unwrap();
    let after = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(after.importance, 0.9);
    assert_eq!(
        Experience {
            importance: 0.5,
            ..after.clone()
        },
        before
    );

    let new_tags: BTreeMap<String, String> = [("only".to_string(), "this".to_string())].into();
    db.update_experience(
        id,
        ExperienceUpdate {
            confidence: Some(0.1),
            domain: Some(vec!["z".into()]),
            tags: Some(new_tags.clone()),
            related_files: Some(vec![]),
            ..ExperienceUpdate::default()
        },
    )
    .await
    .unwrap();
    let after = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(after.confidence, 0.1);
    assert_eq!(after.domain, vec!["z".to_string()], "domain replaced");
    assert_eq!(after.tags, new_tags, "tags replaced");
    assert!(after.related_files.is_empty());
    assert_eq!(after.importance, 0.9);
    assert_eq!(after.content, before.content);
    assert_eq!(after.embedding, before.embedding);

    // Validation and not-found change nothing.
    let seq = db.get_current_sequence().await.unwrap();
    assert_validation(
        db.update_experience(
            id,
            ExperienceUpdate {
                importance: Some(1.5),
                ..ExperienceUpdate::default()
            },
        )
        .await,
    );
    assert_validation(
        db.update_experience(
            id,
            ExperienceUpdate {
                domain: Some(vec!["d".repeat(101)]),
                ..ExperienceUpdate::default()
            },
        )
        .await,
    );
    assert_validation(
        db.update_experience(
            id,
            ExperienceUpdate {
                tags: Some(tags(51)),
                ..ExperienceUpdate::default()
            },
        )
        .await,
    );
    let missing = ExperienceId::new();
    match db
        .update_experience(
            missing,
            ExperienceUpdate {
                importance: Some(0.2),
                ..ExperienceUpdate::default()
            },
        )
        .await
    {
        Err(Error::NotFound(NotFoundError::Experience(x))) => assert_eq!(x, missing),
        other => panic!("expected NotFound(Experience), got {other:?}"),
    }
    assert_eq!(db.get_experience(id).await.unwrap().unwrap(), after);
    assert_eq!(db.get_current_sequence().await.unwrap(), seq);
    // Updated filter fields are what search filters see.
    let hits = db
        .search_similar_filtered(
            c,
            &vec16(1),
            5,
            SearchFilter {
                domains: Some(vec!["z".into()]),
                ..SearchFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let hits = db
        .search_similar_filtered(
            c,
            &vec16(1),
            5,
            SearchFilter {
                domains: Some(vec!["a".into()]),
                ..SearchFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(hits.is_empty());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_hides_from_search_recent_and_cold_but_not_lists() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let a = db.record_experience(exp(c, 1)).await.unwrap();
    let b = db.record_experience(exp(c, 2)).await.unwrap();
    db.archive_experience(a).await.unwrap();
    assert!(db.get_experience(a).await.unwrap().unwrap().archived);
    let hits = db.search_similar(c, &vec16(1), 10).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.experience.id).collect::<Vec<_>>(),
        vec![b]
    );
    let hits = db
        .search(c, &vec16(1), SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let recent = db.get_recent_experiences(c, 10).await.unwrap();
    assert_eq!(recent.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b]);
    let cold = db.list_cold_experiences(c, 1.0, 10).await.unwrap();
    assert_eq!(cold.iter().map(|x| x.0).collect::<Vec<_>>(), vec![b]);
    assert_eq!(db.list_experiences(c, 10, 0).await.unwrap().len(), 2);
    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!((stats.experience_count, stats.archived_count), (2, 1));
    // Included when asked.
    let all = SearchFilter {
        exclude_archived: false,
        ..SearchFilter::default()
    };
    let hits = db
        .search_similar_filtered(c, &vec16(1), 10, all.clone())
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, a);
    assert_eq!(
        db.get_recent_experiences_filtered(c, 10, all)
            .await
            .unwrap()
            .len(),
        2
    );

    db.unarchive_experience(a).await.unwrap();
    assert!(!db.get_experience(a).await.unwrap().unwrap().archived);
    assert_eq!(
        db.search_similar(c, &vec16(1), 1).await.unwrap()[0]
            .experience
            .id,
        a
    );
    // Update with archived: Some(true) archives too.
    db.update_experience(
        b,
        ExperienceUpdate {
            archived: Some(true),
            ..ExperienceUpdate::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(db.search_similar(c, &vec16(2), 10).await.unwrap().len(), 1);

    let missing = ExperienceId::new();
    assert_not_found(db.archive_experience(missing).await);
    assert_not_found(db.unarchive_experience(missing).await);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_record_relations_and_search_hits() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let a = db.record_experience(exp(c, 1)).await.unwrap();
    let b = db.record_experience(exp(c, 2)).await.unwrap();
    let r1 = db
        .store_relation(NewExperienceRelation {
            source_id: a,
            target_id: b,
            relation_type: RelationType::Supports,
            strength: 0.5,
            metadata: None,
        })
        .await
        .unwrap();
    let r2 = db
        .store_relation(NewExperienceRelation {
            source_id: b,
            target_id: a,
            relation_type: RelationType::Contradicts,
            strength: 0.5,
            metadata: None,
        })
        .await
        .unwrap();
    db.delete_experience(a).await.unwrap();
    assert_eq!(db.get_experience(a).await.unwrap(), None);
    assert_eq!(db.get_relation(r1).await.unwrap(), None);
    assert_eq!(db.get_relation(r2).await.unwrap(), None);
    assert!(db
        .get_related_experiences(b, RelationDirection::Both)
        .await
        .unwrap()
        .is_empty());
    let hits = db.search_similar(c, &vec16(1), 10).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.experience.id).collect::<Vec<_>>(),
        vec![b]
    );
    match db.delete_experience(a).await {
        Err(Error::NotFound(NotFoundError::Experience(x))) => assert_eq!(x, a),
        other => panic!("expected NotFound(Experience), got {other:?}"),
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinforce_counts_and_raises_energy() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let id = db.record_experience(exp(c, 1)).await.unwrap();
    let e0 = db.energy(id).await.unwrap();
    assert!(
        (e0 - 0.5).abs() < 0.01,
        "fresh energy = importance, got {e0}"
    );
    // Reading never reinforces.
    db.energy(id).await.unwrap();
    db.get_experience(id).await.unwrap();
    db.search_similar(c, &vec16(1), 1).await.unwrap();
    assert_eq!(
        db.get_experience(id).await.unwrap().unwrap().applications,
        0
    );

    assert_eq!(db.reinforce_experience(id).await.unwrap(), 1);
    assert_eq!(db.reinforce_experience(id).await.unwrap(), 2);
    let got = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(got.applications, 2);
    assert!(got.last_reinforced >= got.timestamp);
    let e2 = db.energy(id).await.unwrap();
    let expected = 0.5 * (1.0 + 0.25 * 3f32.ln());
    assert!(
        (e2 - expected).abs() < 0.01,
        "energy {e2}, expected {expected}"
    );

    // Concurrent reinforcements are atomic.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.reinforce_experience(id).await.unwrap()
        }));
    }
    let mut totals = Vec::new();
    for t in tasks {
        totals.push(within(t).await.unwrap());
    }
    totals.sort_unstable();
    assert_eq!(totals, (3..=22).collect::<Vec<u32>>());
    assert_eq!(
        db.get_experience(id).await.unwrap().unwrap().applications,
        22
    );

    let missing = ExperienceId::new();
    assert_not_found(db.reinforce_experience(missing).await);
    assert_not_found(db.energy(missing).await);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn energy_decays_with_the_half_life() {
    let db = PulseHandle::open_in_memory(Config {
        decay: DecayConfig {
            half_life: Duration::from_millis(200),
            ..DecayConfig::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    let id = db
        .record_experience(NewExperience {
            importance: 1.0,
            ..exp(c, 1)
        })
        .await
        .unwrap();
    let ts = db
        .get_experience(id)
        .await
        .unwrap()
        .unwrap()
        .last_reinforced;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = db.energy(id).await.unwrap();
    let dt = (Timestamp::now().0 - ts.0) as f32;
    let upper = 2f32.powf(-200.0 / 200.0) + 0.01;
    assert!(e <= upper && e > 0.0, "energy {e} after {dt} ms");
    // Reinforcing restores it.
    db.reinforce_experience(id).await.unwrap();
    assert!(db.energy(id).await.unwrap() > 0.9);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_list_is_coldest_first_and_validated() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let mut ids = Vec::new();
    for (i, imp) in [0.9f32, 0.1, 0.5, 0.3, 0.05].iter().enumerate() {
        ids.push(
            db.record_experience(NewExperience {
                importance: *imp,
                ..exp(c, i as u64)
            })
            .await
            .unwrap(),
        );
    }
    let cold = db.list_cold_experiences(c, 0.4, 10).await.unwrap();
    assert_eq!(
        cold.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![ids[4], ids[1], ids[3]]
    );
    assert!(cold.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(cold.iter().all(|x| x.1 < 0.4));
    assert_eq!(db.list_cold_experiences(c, 0.4, 2).await.unwrap().len(), 2);
    assert!(db
        .list_cold_experiences(c, 0.0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.list_cold_experiences(c, 1.0, 10).await.unwrap().len(), 5);
    for below in [f32::NAN, -0.1, 1.1, f32::INFINITY] {
        assert_validation(db.list_cold_experiences(c, below, 10).await);
    }
    assert_validation(db.list_cold_experiences(c, 0.5, 0).await);
    assert_validation(db.list_cold_experiences(c, 0.5, 1001).await);
    db.list_cold_experiences(c, 0.5, 1000).await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_recent_order_pagination_and_limits() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..30u64 {
        let x = NewExperience {
            domain: vec![if i % 10 == 0 {
                "rare".into()
            } else {
                "common".into()
            }],
            ..exp(c, i)
        };
        ids.push(db.record_experience(x).await.unwrap());
    }
    let page: Vec<_> = db
        .list_experiences(c, 10, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(page, ids[5..15].to_vec());
    assert_eq!(db.list_experiences(c, 10, 25).await.unwrap().len(), 5);
    assert!(db.list_experiences(c, 10, 30).await.unwrap().is_empty());
    let recent: Vec<_> = db
        .get_recent_experiences(c, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    let mut newest: Vec<_> = ids[25..].to_vec();
    newest.reverse();
    assert_eq!(recent, newest);
    // Filtered recent returns `limit` results whenever that many match.
    let rare = SearchFilter {
        domains: Some(vec!["rare".into()]),
        ..SearchFilter::default()
    };
    let got: Vec<_> = db
        .get_recent_experiences_filtered(c, 3, rare.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(got, vec![ids[20], ids[10], ids[0]]);
    assert_eq!(
        db.get_recent_experiences_filtered(c, 10, rare)
            .await
            .unwrap()
            .len(),
        3
    );
    // Recent returns full records with embeddings.
    assert_eq!(
        db.get_recent_experiences(c, 1).await.unwrap()[0].embedding,
        vec16(29)
    );
    for limit in [0, 1001] {
        assert_validation(db.list_experiences(c, limit, 0).await);
        assert_validation(db.get_recent_experiences(c, limit).await);
        assert_validation(
            db.get_recent_experiences_filtered(c, limit, SearchFilter::default())
                .await,
        );
    }
    assert_eq!(db.list_experiences(c, 1000, 0).await.unwrap().len(), 30);
    db.close().await.unwrap();
}

/// After `record_experience` returns, another clone sees it in get and search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_across_clones() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let writer = db.clone();
    let reader = db.clone();
    for i in 0..100u64 {
        let id = writer.record_experience(exp(c, i)).await.unwrap();
        assert!(
            reader.get_experience(id).await.unwrap().is_some(),
            "get misses {i}"
        );
        let hits = reader.search_similar(c, &vec16(i), 1).await.unwrap();
        assert_eq!(hits[0].experience.id, id, "search misses {i}");
        // Updates are visible to filtered search at once too.
        writer.archive_experience(id).await.unwrap();
        let hits = reader.search_similar(c, &vec16(i), 1).await.unwrap();
        assert!(
            hits.iter().all(|h| h.experience.id != id),
            "archived {i} still found"
        );
        writer.unarchive_experience(id).await.unwrap();
    }
    // Deletions too.
    let id = writer.record_experience(exp(c, 1000)).await.unwrap();
    writer.delete_experience(id).await.unwrap();
    let hits = reader.search_similar(c, &vec16(1000), 100).await.unwrap();
    assert!(hits.iter().all(|h| h.experience.id != id));
    db.close().await.unwrap();
}

/// Metadata of every JSON kind, in an order that is not sorted.
fn rich_metadata() -> serde_json::Map<String, serde_json::Value> {
    let text = r#"{"zeta":1,"alpha":-9223372036854775808,"big":18446744073709551615,
        "float":0.1,"tiny":1e-300,"whole_float":2.0,"s":"ünï\u0000code","null":null,
        "list":[1,"two",[3.5],{"four":4}],"obj":{"b":false,"a":true}}"#;
    serde_json::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_stored_exactly_updated_whole_and_survives_reopen() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let mut watch = db.watch_experiences(c).await.unwrap();
    let meta = rich_metadata();
    let id = db
        .record_experience(NewExperience {
            metadata: meta.clone(),
            ..exp(c, 1)
        })
        .await
        .unwrap();
    let plain = db.record_experience(exp(c, 2)).await.unwrap();

    let got = db.get_experience(id).await.unwrap().unwrap();
    // Exactly: same values, integers stay integers, same key order.
    assert_eq!(
        serde_json::to_string(&got.metadata).unwrap(),
        serde_json::to_string(&meta).unwrap()
    );
    assert!(got.metadata["big"].is_u64() && got.metadata["alpha"].is_i64());
    assert!(got.metadata["whole_float"].is_f64());
    assert!(db
        .get_experience(plain)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .is_empty());
    // The change log carries it.
    let event = within(watch.next()).await.unwrap();
    assert_eq!(event.experience.unwrap().metadata, meta);

    // An update replaces it whole; other updates leave it.
    let replaced = serde_json::json!({"only": "this"})
        .as_object()
        .unwrap()
        .clone();
    db.update_experience(
        id,
        ExperienceUpdate {
            metadata: Some(replaced.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    db.update_experience(
        id,
        ExperienceUpdate {
            importance: Some(0.9),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        db.get_experience(id).await.unwrap().unwrap().metadata,
        replaced
    );

    // Too large: refused, naming the field, nothing written.
    let seq = db.get_current_sequence().await.unwrap();
    let huge = serde_json::json!({"k": "v".repeat(MAX_METADATA_BYTES)});
    let err = db
        .record_experience(NewExperience {
            metadata: huge.as_object().unwrap().clone(),
            ..exp(c, 3)
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");
    assert_eq!(db.get_current_sequence().await.unwrap(), seq);
    db.close().await.unwrap();

    let db = t.reopen_when_released(config()).await;
    assert_eq!(
        db.get_experience(id).await.unwrap().unwrap().metadata,
        replaced
    );
    let (events, _) = db.poll_changes(0).await.unwrap();
    assert_eq!(events[0].experience.as_ref().unwrap().metadata, meta);
    db.close().await.unwrap();
}
