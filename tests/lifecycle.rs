//! Lifecycle: open, reopen, close, drop, read-only, embedders.

mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_new_database_reports_metadata_and_sequence_zero() {
    let t = TempDb::new();
    let before = Timestamp::now();
    let db = t.open().await;
    let md = db.metadata();
    assert_eq!(md.embedding_dimension, DIM);
    assert!(md.schema_version >= 1);
    assert!(md.created_at >= before);
    assert_eq!(md.last_opened_at, md.created_at);
    assert_eq!(db.get_current_sequence().await.unwrap(), 0);
    assert_eq!(
        db.config().embedding_dimension,
        EmbeddingDimension::Custom(DIM)
    );
    assert!(db.list_collectives().await.unwrap().is_empty());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_instance_id_and_created_at_and_updates_last_opened() {
    let t = TempDb::new();
    let db = t.open().await;
    let id = db.instance_id();
    let md = db.metadata();
    db.close().await.unwrap();
    // Make sure the clock moves so `last_opened_at` must differ.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let db = t.open().await;
    assert_eq!(db.instance_id(), id);
    assert_eq!(db.metadata().created_at, md.created_at);
    assert!(db.metadata().last_opened_at > md.last_opened_at);
    db.close().await.unwrap();

    let other = TempDb::new().open().await;
    assert_ne!(other.instance_id(), id);
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_in_memory_serves_the_whole_api() {
    let db = memory_db().await;
    let c = db.create_collective("mem").await.unwrap();
    let id = db.record_experience(exp(c, 1)).await.unwrap();
    let hits = db.search_similar(c, &vec16(1), 1).await.unwrap();
    assert_eq!(hits[0].experience.id, id);
    // Two in-memory databases are independent.
    let other = memory_db().await;
    assert!(other.list_collectives().await.unwrap().is_empty());
    assert_ne!(other.instance_id(), db.instance_id());
    db.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_rejected_naming_the_field() {
    let t = TempDb::new();
    let cases: Vec<(Config, &str)> = vec![
        (
            Config {
                max_in_flight: 0,
                ..config()
            },
            "max_in_flight",
        ),
        (config_dim(0), "embedding_dimension"),
        (config_dim(4097), "embedding_dimension"),
        (
            Config {
                watch: WatchConfig { buffer_size: 0 },
                ..config()
            },
            "watch.buffer_size",
        ),
        (
            Config {
                activity: ActivityConfig {
                    stale_threshold: std::time::Duration::ZERO,
                },
                ..config()
            },
            "activity.stale_threshold",
        ),
        (
            Config {
                decay: DecayConfig {
                    default_recall_weights: Some(RecallWeights {
                        similarity: 0.7,
                        energy: 0.7,
                    }),
                    ..DecayConfig::default()
                },
                ..config()
            },
            "decay.default_recall_weights",
        ),
    ];
    for (cfg, field) in cases {
        match PulseHandle::open(&t.path, cfg).await {
            Err(Error::Validation(ValidationError::InvalidField { field: f, .. })) => {
                assert_eq!(f, field)
            }
            other => panic!("expected InvalidField({field}), got {other:?}"),
        }
        match PulseHandle::open_in_memory(config_dim(0)).await {
            Err(Error::Validation(_)) => {}
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    // Nothing was created by the failed opens.
    assert!(!t.path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_with_another_dimension_is_dimension_mismatch() {
    let t = TempDb::new();
    t.open().await.close().await.unwrap();
    match PulseHandle::open(&t.path, config_dim(8)).await {
        Err(Error::Validation(ValidationError::DimensionMismatch { expected, got })) => {
            assert_eq!((expected, got), (DIM, 8));
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    // The file is intact and still opens with its own dimension.
    t.open().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_an_open_file_is_database_locked() {
    let t = TempDb::new();
    let db = t.open().await;
    match PulseHandle::open(&t.path, config()).await {
        Err(Error::DatabaseLocked) => {}
        other => panic!("expected DatabaseLocked, got {other:?}"),
    }
    db.close().await.unwrap();
    // `close` releases the file at once.
    t.open().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_close_is_ok_and_sync_accessors_still_answer() {
    let t = TempDb::new();
    let db = t.open().await;
    let id = db.instance_id();
    let clone = db.clone();
    db.close().await.unwrap();
    db.close().await.unwrap();
    clone.close().await.unwrap();
    assert_eq!(db.instance_id(), id);
    assert_eq!(clone.metadata().embedding_dimension, DIM);
    assert_eq!(db.config().max_in_flight, Config::default().max_in_flight);
}

/// Every async call of the API on a closed handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_after_close_is_closed() {
    let t = TempDb::new();
    let db = t.open().await;
    let EveryKind {
        collective: c,
        first: a,
        second: b,
        relation: r,
        insight: i,
    } = store_every_kind(&db).await;
    let clone = db.clone();
    db.close().await.unwrap();

    for h in [&db, &clone] {
        assert_closed(h.create_collective("x").await);
        assert_closed(h.create_collective_with_owner("x", "o").await);
        assert_closed(h.get_collective(c).await);
        assert_closed(h.list_collectives().await);
        assert_closed(h.list_collectives_by_owner("o").await);
        assert_closed(h.get_collective_stats(c).await);
        assert_closed(h.delete_collective(c).await);
        assert_closed(h.record_experience(exp(c, 9)).await);
        assert_closed(h.record_experiences(vec![exp(c, 9)]).await);
        assert_closed(h.record_experiences(vec![]).await);
        assert_closed(h.try_record_experience(exp(c, 9)).await);
        assert_closed(h.get_experience(a).await);
        assert_closed(
            h.update_experience(
                a,
                ExperienceUpdate {
                    importance: Some(0.9),
                    ..ExperienceUpdate::default()
                },
            )
            .await,
        );
        assert_closed(h.archive_experience(a).await);
        assert_closed(h.unarchive_experience(a).await);
        assert_closed(h.delete_experience(a).await);
        assert_closed(h.reinforce_experience(a).await);
        assert_closed(h.energy(a).await);
        assert_closed(h.list_cold_experiences(c, 0.5, 10).await);
        assert_closed(h.list_experiences(c, 10, 0).await);
        assert_closed(h.get_recent_experiences(c, 10).await);
        assert_closed(
            h.get_recent_experiences_filtered(c, 10, SearchFilter::default())
                .await,
        );
        assert_closed(h.search_similar(c, &vec16(1), 5).await);
        assert_closed(
            h.search_similar_filtered(c, &vec16(1), 5, SearchFilter::default())
                .await,
        );
        assert_closed(h.search(c, &vec16(1), SearchOptions::default()).await);
        assert_closed(
            h.store_relation(NewExperienceRelation {
                source_id: b,
                target_id: a,
                relation_type: RelationType::Supports,
                strength: 0.5,
                metadata: None,
            })
            .await,
        );
        assert_closed(h.get_relation(r).await);
        assert_closed(h.delete_relation(r).await);
        assert_closed(h.get_related_experiences(a, RelationDirection::Both).await);
        assert_closed(
            h.get_related_experiences_filtered(a, RelationDirection::Both, None)
                .await,
        );
        assert_closed(h.list_relations(c, 10, 0).await);
        assert_closed(
            h.store_insight(NewDerivedInsight {
                collective_id: c,
                content: "insight".into(),
                embedding: Some(vec16(3)),
                source_experience_ids: vec![a],
                insight_type: InsightType::Pattern,
                confidence: 0.5,
                domain: vec![],
            })
            .await,
        );
        assert_closed(h.get_insight(i).await);
        assert_closed(h.get_insights(c, &vec16(3), 5).await);
        assert_closed(h.delete_insight(i).await);
        assert_closed(h.list_insights(c, 10, 0).await);
        assert_closed(
            h.register_activity(NewActivity {
                agent_id: "agent".into(),
                collective_id: c,
                current_task: None,
                context_summary: None,
            })
            .await,
        );
        assert_closed(h.update_heartbeat("agent", c).await);
        assert_closed(h.end_activity("agent", c).await);
        assert_closed(h.get_active_agents(c).await);
        assert_closed(
            h.get_context_candidates(ContextRequest {
                collective_id: c,
                query_embedding: vec16(1),
                ..ContextRequest::default()
            })
            .await,
        );
        assert_closed(h.watch_experiences(c).await);
        assert_closed(
            h.watch_experiences_filtered(c, WatchFilter::default())
                .await,
        );
        assert_closed(h.get_current_sequence().await);
        assert_closed(h.poll_changes(0).await);
        assert_closed(h.poll_changes_batch(0, 10).await);
    }

    // Nothing was written after close.
    let db = t.open().await;
    assert!(db.get_experience(a).await.unwrap().is_some());
    assert!(db.get_relation(r).await.unwrap().is_some());
    assert!(db.get_insight(i).await.unwrap().is_some());
    assert_eq!(db.list_collectives().await.unwrap().len(), 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_drains_in_flight_writes_and_refuses_later_ones() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            (i, db.record_experience(exp(c, i)).await)
        }));
    }
    // Let a part of them get in flight, then close while they run.
    tokio::task::yield_now().await;
    within(db.close()).await.unwrap();
    let mut acknowledged = Vec::new();
    for task in tasks {
        let (i, r) = within(task).await.unwrap();
        match r {
            Ok(id) => acknowledged.push((i, id)),
            Err(Error::Closed) => {}
            Err(e) => panic!("write {i} failed with {e:?} instead of Ok or Closed"),
        }
    }
    let db = t.open().await;
    for (i, id) in &acknowledged {
        let got = db
            .get_experience(*id)
            .await
            .unwrap()
            .expect("acknowledged write lost");
        assert_eq!(got.embedding, vec16(*i));
        let hits = db.search_similar(c, &vec16(*i), 1).await.unwrap();
        assert_eq!(hits[0].experience.id, *id);
    }
    let stored = db.list_experiences(c, 1000, 0).await.unwrap();
    assert_eq!(stored.len(), acknowledged.len());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_watch_streams() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
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
    db.record_experience(exp(c, 1)).await.unwrap();
    db.close().await.unwrap();
    // The buffered event is still delivered, then the stream ends.
    let first = within(s1.next()).await.expect("buffered event");
    assert_eq!(first.event_type, WatchEventType::Created);
    assert!(within(s1.next()).await.is_none());
    assert!(within(s2.next()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_loses_nothing_and_releases_the_file() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let clone = db.clone();
    let mut ids = Vec::new();
    for i in 0..20u64 {
        ids.push((i, clone.record_experience(exp(c, i)).await.unwrap()));
    }
    let seq = db.get_current_sequence().await.unwrap();
    let stream = db.watch_experiences(c).await.unwrap();
    drop(clone);
    within(async move { drop(db) }).await;
    // A stream of a dropped engine ends.
    let mut stream = stream;
    assert!(within(stream.next()).await.is_none());

    let db = within(t.reopen_when_released(config())).await;
    assert_eq!(db.get_current_sequence().await.unwrap(), seq);
    for (i, id) in ids {
        assert!(db.get_experience(id).await.unwrap().is_some());
        let hits = db.search_similar(c, &vec16(i), 1).await.unwrap();
        assert_eq!(hits[0].experience.id, id);
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_mutation_and_serves_reads() {
    let t = TempDb::new();
    let db = t.open().await;
    let EveryKind {
        collective: c,
        first: a,
        second: b,
        relation: r,
        insight: i,
    } = store_every_kind(&db).await;
    let seq = db.get_current_sequence().await.unwrap();
    db.close().await.unwrap();

    let ro = t
        .open_with(Config {
            read_only: true,
            ..config()
        })
        .await;
    let rel = NewExperienceRelation {
        source_id: b,
        target_id: a,
        relation_type: RelationType::Contradicts,
        strength: 0.5,
        metadata: None,
    };
    let ins = NewDerivedInsight {
        collective_id: c,
        content: "insight 2".into(),
        embedding: Some(vec16(4)),
        source_experience_ids: vec![a],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    };
    let act = NewActivity {
        agent_id: "agent2".into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    };
    assert_read_only(ro.create_collective("x").await);
    assert_read_only(ro.create_collective_with_owner("x", "o").await);
    assert_read_only(ro.delete_collective(c).await);
    assert_read_only(ro.record_experience(exp(c, 9)).await);
    assert_read_only(ro.record_experiences(vec![exp(c, 9), exp(c, 10)]).await);
    assert_read_only(ro.try_record_experience(exp(c, 9)).await);
    assert_read_only(
        ro.update_experience(
            a,
            ExperienceUpdate {
                importance: Some(0.9),
                ..ExperienceUpdate::default()
            },
        )
        .await,
    );
    assert_read_only(ro.archive_experience(a).await);
    assert_read_only(ro.unarchive_experience(a).await);
    assert_read_only(ro.delete_experience(a).await);
    assert_read_only(ro.reinforce_experience(a).await);
    assert_read_only(ro.store_relation(rel).await);
    assert_read_only(ro.delete_relation(r).await);
    assert_read_only(ro.store_insight(ins).await);
    assert_read_only(ro.delete_insight(i).await);
    assert_read_only(ro.register_activity(act).await);
    assert_read_only(ro.update_heartbeat("agent", c).await);
    assert_read_only(ro.end_activity("agent", c).await);

    // Reads work, and nothing changed.
    assert_eq!(ro.get_current_sequence().await.unwrap(), seq);
    let got = ro.get_experience(a).await.unwrap().unwrap();
    assert_eq!(got.importance, 0.5);
    assert!(!got.archived);
    assert_eq!(got.applications, 0);
    assert_eq!(ro.list_experiences(c, 10, 0).await.unwrap().len(), 2);
    let hits = ro.search_similar(c, &vec16(2), 1).await.unwrap();
    assert_eq!(hits[0].experience.id, b);
    assert_eq!(ro.get_insights(c, &vec16(3), 1).await.unwrap()[0].0.id, i);
    assert!(ro.get_relation(r).await.unwrap().is_some());
    assert_eq!(ro.get_active_agents(c).await.unwrap().len(), 1);
    assert_eq!(
        ro.list_collectives_by_owner("owner").await.unwrap().len(),
        1
    );
    ro.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_with_the_file_released() {
    let t = TempDb::new();
    for round in 0..20u64 {
        // No retry: the file must be free the moment close returns.
        let db = within(PulseHandle::open(&t.path, config()))
            .await
            .unwrap_or_else(|e| panic!("round {round}: open after close: {e:?}"));
        let c = db.create_collective(&format!("c{round}")).await.unwrap();
        let doomed = db.create_collective(&format!("d{round}")).await.unwrap();
        let mut writes = Vec::new();
        for i in 0..20 {
            let db = db.clone();
            writes.push(tokio::spawn(async move {
                db.record_experience(exp(c, round * 100 + i)).await
            }));
        }
        db.record_experience(exp(doomed, round)).await.unwrap();
        // A deleted collective's actor stops on its own time.
        let deleting = {
            let db = db.clone();
            tokio::spawn(async move { db.delete_collective(doomed).await })
        };
        db.search_similar(c, &vec16(round), 3).await.unwrap();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        deleting.await.unwrap().unwrap();
        within(db.close()).await.unwrap();
    }
    let db = t.open().await;
    assert_eq!(db.list_collectives().await.unwrap().len(), 20);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_a_running_flush_and_compaction() {
    let t = TempDb::new();
    let busy = Config {
        durability: Durability::Eventual,
        eventual_flush_interval: std::time::Duration::from_millis(1),
        change_log: ChangeLogConfig {
            retention: std::time::Duration::from_millis(1),
        },
        ..config()
    };
    for round in 0..20u64 {
        let db = within(PulseHandle::open(&t.path, busy.clone()))
            .await
            .unwrap_or_else(|e| panic!("round {round}: open after close: {e:?}"));
        let c = match db.list_collectives().await.unwrap().first() {
            Some(c) => c.id,
            None => db.create_collective("c").await.unwrap(),
        };
        for i in 0..20 {
            db.record_experience(exp(c, round * 100 + i)).await.unwrap();
        }
        within(db.close())
            .await
            .unwrap_or_else(|e| panic!("round {round}: close: {e:?}"));
    }
}

/// Every file under `dir` with its bytes.
fn dir_contents(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_session_changes_no_byte_and_creates_no_file() {
    let t = TempDb::new();
    let db = t.open().await;
    let kinds = store_every_kind(&db).await;
    db.close().await.unwrap();
    // Without snapshots the session rebuilds its indexes in memory; it
    // must not write them on close.
    std::fs::remove_dir_all(t.index_dir()).unwrap();
    let before = dir_contents(t.dir.path());
    let read_only = Config {
        read_only: true,
        ..config()
    };

    let ro = t.open_with(read_only.clone()).await;
    let c = kinds.collective;
    assert_eq!(ro.search_similar(c, &vec16(1), 2).await.unwrap().len(), 2);
    assert_eq!(ro.get_insights(c, &vec16(3), 1).await.unwrap().len(), 1);
    assert!(ro.get_experience(kinds.first).await.unwrap().is_some());
    assert!(ro.poll_changes(0).await.unwrap().0.len() >= 2);
    assert_eq!(ro.index_stats(c).await.unwrap().indexed, 2);
    let _stream = ro.watch_experiences(c).await.unwrap();
    // The file's own schema version (a file of this build: the current one).
    assert_eq!(ro.metadata().schema_version, 5);
    ro.close().await.unwrap();
    assert_eq!(
        dir_contents(t.dir.path()),
        before,
        "a read-only session wrote"
    );

    // A missing file is an error, and is not created.
    let missing = t.dir.path().join("missing.db");
    assert!(PulseHandle::open(&missing, read_only).await.is_err());
    assert!(!missing.exists());
    assert_eq!(dir_contents(t.dir.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_persists_across_reopen() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..30u64 {
        ids.push(db.record_experience(exp(c, i)).await.unwrap());
    }
    db.archive_experience(ids[0]).await.unwrap();
    db.reinforce_experience(ids[1]).await.unwrap();
    let r = db
        .store_relation(NewExperienceRelation {
            source_id: ids[1],
            target_id: ids[2],
            relation_type: RelationType::Elaborates,
            strength: 0.25,
            metadata: Some("because".into()),
        })
        .await
        .unwrap();
    let i = db
        .store_insight(NewDerivedInsight {
            collective_id: c,
            content: "insight".into(),
            embedding: Some(vec16(100)),
            source_experience_ids: vec![ids[1], ids[2]],
            insight_type: InsightType::Synthesis,
            confidence: 0.75,
            domain: vec!["d".into()],
        })
        .await
        .unwrap();
    db.register_activity(NewActivity {
        agent_id: "agent".into(),
        collective_id: c,
        current_task: Some("task".into()),
        context_summary: Some("summary".into()),
    })
    .await
    .unwrap();
    let seq = db.get_current_sequence().await.unwrap();
    let before_exp = db.get_experience(ids[1]).await.unwrap().unwrap();
    let before_rel = db.get_relation(r).await.unwrap().unwrap();
    let before_ins = db.get_insight(i).await.unwrap().unwrap();
    let (before_events, _) = db.poll_changes(0).await.unwrap();
    db.close().await.unwrap();

    for round in 0..2 {
        if round == 1 {
            // Without snapshots the indexes are rebuilt from redb.
            std::fs::remove_dir_all(t.index_dir()).ok();
        }
        let db = t.open().await;
        assert_eq!(db.get_current_sequence().await.unwrap(), seq);
        assert_eq!(
            db.get_experience(ids[1]).await.unwrap().unwrap(),
            before_exp
        );
        assert_eq!(db.get_relation(r).await.unwrap().unwrap(), before_rel);
        assert_eq!(db.get_insight(i).await.unwrap().unwrap(), before_ins);
        assert_eq!(db.poll_changes(0).await.unwrap().0, before_events);
        let agents = db.get_active_agents(c).await.unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].current_task.as_deref(), Some("task"));
        assert!(db.get_experience(ids[0]).await.unwrap().unwrap().archived);
        for (n, id) in ids.iter().enumerate().skip(1) {
            let hits = db.search_similar(c, &vec16(n as u64), 1).await.unwrap();
            assert_eq!(hits[0].experience.id, *id, "round {round}, record {n}");
        }
        // The archived one stays out of search after reopen.
        let all = db.search_similar(c, &vec16(0), 100).await.unwrap();
        assert_eq!(all.len(), 29);
        assert!(all.iter().all(|h| h.experience.id != ids[0]));
        assert_eq!(db.get_insights(c, &vec16(100), 1).await.unwrap()[0].0.id, i);
        db.close().await.unwrap();
    }

    // Sequences continue after reopen without gaps.
    let db = t.open().await;
    let id = db.record_experience(exp(c, 1000)).await.unwrap();
    let (events, pos) = db.poll_changes(seq).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].experience_id, id);
    assert_eq!(events[0].sequence, seq + 1);
    assert_eq!(pos, seq + 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedder_embeds_records_and_insights_without_embeddings() {
    let t = TempDb::new();
    let embedder = Arc::new(TestEmbedder::new(DIM, "test-model-v1"));
    let db = within(PulseHandle::open_with_embedder(
        &t.path,
        config(),
        embedder.clone(),
    ))
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    let texts = [
        "the build fails on arm64",
        "cache the target directory",
        "flaky network test",
    ];
    let mut ids = Vec::new();
    for text in texts {
        ids.push(
            db.record_experience(NewExperience {
                collective_id: c,
                content: text.into(),
                embedding: None,
                ..NewExperience::default()
            })
            .await
            .unwrap(),
        );
    }
    // Bulk records are embedded too, and a given embedding is kept.
    let bulk = db
        .record_experiences(vec![
            NewExperience {
                collective_id: c,
                content: "bulk one".into(),
                embedding: None,
                ..NewExperience::default()
            },
            exp(c, 7),
        ])
        .await
        .unwrap();
    for (id, text) in ids.iter().zip(texts) {
        let got = db.get_experience(*id).await.unwrap().unwrap();
        assert_eq!(got.embedding, embedder.embed_one(text));
        let hits = db
            .search_similar(c, &embedder.embed_one(text), 1)
            .await
            .unwrap();
        assert_eq!(hits[0].experience.id, *id);
    }
    assert_eq!(
        db.get_experience(bulk[0]).await.unwrap().unwrap().embedding,
        embedder.embed_one("bulk one")
    );
    assert_eq!(
        db.get_experience(bulk[1]).await.unwrap().unwrap().embedding,
        vec16(7)
    );
    let insight = db
        .store_insight(NewDerivedInsight {
            collective_id: c,
            content: "builds need caching".into(),
            embedding: None,
            source_experience_ids: vec![ids[1]],
            insight_type: InsightType::Abstraction,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        db.get_insight(insight).await.unwrap().unwrap().embedding,
        embedder.embed_one("builds need caching")
    );
    db.close().await.unwrap();

    // Same model: fine. Another model: EmbedderMismatch naming both.
    let same = PulseHandle::open_with_embedder(&t.path, config(), embedder.clone())
        .await
        .unwrap();
    same.close().await.unwrap();
    let other = Arc::new(TestEmbedder::new(DIM, "test-model-v2"));
    match PulseHandle::open_with_embedder(&t.path, config(), other).await {
        Err(Error::EmbedderMismatch { stored, given }) => {
            assert_eq!(stored, "test-model-v1");
            assert_eq!(given, "test-model-v2");
        }
        other => panic!("expected EmbedderMismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedder_with_another_dimension_fails_open() {
    let t = TempDb::new();
    let embedder = Arc::new(TestEmbedder::new(8, "m"));
    match PulseHandle::open_with_embedder(&t.path, config(), embedder).await {
        Err(Error::Validation(ValidationError::DimensionMismatch { expected, got })) => {
            assert_eq!((expected, got), (DIM, 8));
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_embedding_without_embedder_is_a_validation_error() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    assert_validation(
        db.record_experience(NewExperience {
            collective_id: c,
            content: "no vector".into(),
            embedding: None,
            ..NewExperience::default()
        })
        .await,
    );
    assert_eq!(db.get_current_sequence().await.unwrap(), 1);
    db.close().await.unwrap();
}

/// The same writes and deletes into two files; only one compacts on close.
/// Its file ends smaller and holds exactly the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_free_pages_back_and_keeps_everything() {
    let mut kept = Vec::new();
    let mut sizes = Vec::new();
    for compact_on_close in [false, true] {
        let t = TempDb::new();
        let cfg = Config {
            compact_on_close,
            ..config()
        };
        let db = t.open_with(cfg.clone()).await;
        let c = db.create_collective("c").await.unwrap();
        let mut ids = Vec::new();
        for round in 0..5u64 {
            let batch = (0..200).map(|i| exp(c, round * 1_000 + i)).collect();
            ids.extend(db.record_experiences(batch).await.unwrap());
        }
        // Deleting half of it leaves free pages behind.
        for id in ids.iter().skip(1).step_by(2) {
            db.delete_experience(*id).await.unwrap();
        }
        db.close().await.unwrap();
        sizes.push(std::fs::metadata(&t.path).unwrap().len());

        let db = t.open_with(cfg).await;
        let mut contents = Vec::new();
        for id in &ids {
            contents.push(
                db.get_experience(*id)
                    .await
                    .unwrap()
                    .map(|e| (e.content, e.embedding)),
            );
        }
        assert_eq!(
            db.get_collective_stats(c).await.unwrap().experience_count as usize,
            contents.iter().flatten().count()
        );
        db.close().await.unwrap();
        kept.push(contents);
    }
    assert_eq!(kept[0], kept[1], "both files hold the same experiences");
    assert!(
        sizes[1] < sizes[0] * 9 / 10,
        "compacted {} bytes vs {} bytes",
        sizes[1],
        sizes[0]
    );
}
