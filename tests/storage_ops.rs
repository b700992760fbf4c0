//! Integration tests of every storage operation, through `StorageRead` and `StorageWrite`.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

#[path = "common/storage.rs"]
mod storage_common;

use std::collections::BTreeMap;

use pulsedb::storage::{Applied, StorageRead, WriteOp};
use pulsedb::{
    Error, ExperienceId, ExperienceType, ExperienceUpdate, InsightId, NotFoundError, RelationId,
    RelationType, Severity, Timestamp, ValidationError,
};
use storage_common::*;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// --- collectives ---------------------------------------------------------------

#[test]
fn collective_create_get_list() {
    let s = memory();
    let a = collective("alpha");
    let mut b = collective("beta");
    b.created_at = Timestamp(a.created_at.0 + 1);
    let c = ok(&s, WriteOp::CreateCollective(b.clone()));
    assert!(matches!(c.applied, Applied::CollectiveCreated(ref x) if *x == b));
    ok(&s, WriteOp::CreateCollective(a.clone()));

    assert_eq!(s.get_collective(a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.get_collective(b.id).unwrap(), Some(b.clone()));
    assert_eq!(
        s.get_collective(pulsedb::CollectiveId::new()).unwrap(),
        None
    );
    // Oldest first, whatever the insertion order.
    assert_eq!(s.list_collectives().unwrap(), vec![a.clone(), b]);

    // The same id twice is refused and changes nothing.
    let err = apply_one(&s, WriteOp::CreateCollective(a.clone())).unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_eq!(s.list_collectives().unwrap().len(), 2);
}

#[test]
fn collective_delete_cascades_to_everything() {
    let s = memory();
    let c = new_collective(&s, "doomed");
    let keep = new_collective(&s, "kept");

    let mut e1 = experience(c, "one");
    e1.tags = tags(&[("lang", "rust")]);
    e1.archived = true;
    e1.experience_type = ExperienceType::Fact {
        statement: "s".into(),
        source: "x".into(),
    };
    let e1 = record(&s, e1);
    let e2 = record_new(&s, c, "two");
    ok(
        &s,
        WriteOp::ReinforceExperience {
            id: e2,
            at: Timestamp::now(),
        },
    );
    let r = relation(e1.id, e2, RelationType::Supports);
    ok(&s, WriteOp::StoreRelation(r.clone()));
    let i = insight(c, vec![e1.id, e2]);
    ok(&s, WriteOp::StoreInsight(i.clone()));
    ok(&s, WriteOp::UpsertActivity(activity(c, "a1", 10)));

    // Things in another collective survive.
    let other = record_new(&s, keep, "survivor");
    let other2 = record_new(&s, keep, "survivor 2");
    ok(
        &s,
        WriteOp::StoreRelation(relation(other, other2, RelationType::Implies)),
    );
    ok(&s, WriteOp::UpsertActivity(activity(keep, "a1", 10)));

    let before = s.current_sequence().unwrap();
    let done = ok(&s, WriteOp::DeleteCollective(c));
    assert!(matches!(done.applied, Applied::CollectiveDeleted(id) if id == c));
    // One log entry for the whole cascade.
    assert_eq!(s.current_sequence().unwrap(), before + 1);
    let last = s.changes_since(before, 10).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[0].1.kind,
        pulsedb::storage::ChangeKind::CollectiveDeleted
    );

    assert_eq!(s.get_collective(c).unwrap(), None);
    for id in [e1.id, e2] {
        assert_eq!(s.get_experience(id).unwrap(), None);
        assert_eq!(s.get_embedding(id).unwrap(), None);
        assert!(s.relation_ids_by_source(id).unwrap().is_empty());
        assert!(s.relation_ids_by_target(id).unwrap().is_empty());
    }
    assert_eq!(s.get_relation(r.id).unwrap(), None);
    assert!(!s
        .relation_exists(e1.id, e2, RelationType::Supports)
        .unwrap());
    assert_eq!(s.get_insight(i.id).unwrap(), None);
    assert_eq!(s.get_activity("a1", c).unwrap(), None);
    assert_eq!(s.count_experiences(c).unwrap(), 0);
    // Reads that name the collective now say NotFound.
    for err in [
        s.list_experience_ids(c, 10, 0).unwrap_err(),
        s.list_insight_ids(c, 10, 0).unwrap_err(),
        s.list_relations(c, 10, 0).map(|_| ()).unwrap_err(),
        s.list_activities(c, Timestamp(0)).map(|_| ()).unwrap_err(),
        s.collective_stats(c).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::NotFound(NotFoundError::Collective(id)) if id == c),
            "{err:?}"
        );
    }

    // The other collective is untouched.
    assert_eq!(s.count_experiences(keep).unwrap(), 2);
    assert_eq!(s.list_relations(keep, 10, 0).unwrap().len(), 1);
    assert!(s.get_activity("a1", keep).unwrap().is_some());
    assert!(s.get_experience(other).unwrap().is_some());

    // A second delete is NotFound.
    let err = apply_one(&s, WriteOp::DeleteCollective(c)).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Collective(_))));
    assert_gap_free(&s);
}

#[test]
fn collective_stats_are_computed_from_data() {
    let s = memory();
    let c = new_collective(&s, "c");
    let empty = s.collective_stats(c).unwrap();
    assert_eq!(empty, pulsedb::CollectiveStats::default());

    let mut e1 = experience(c, "first");
    e1.timestamp = Timestamp(1_000);
    let mut e2 = experience(c, "second");
    e2.timestamp = Timestamp(5_000);
    e2.archived = true;
    let mut e3 = experience(c, "third");
    e3.timestamp = Timestamp(3_000);
    ok(
        &s,
        WriteOp::RecordExperiences(vec![e1.clone(), e2.clone(), e3.clone()]),
    );
    ok(
        &s,
        WriteOp::StoreRelation(relation(e1.id, e2.id, RelationType::Supports)),
    );
    ok(
        &s,
        WriteOp::StoreRelation(relation(e2.id, e3.id, RelationType::Supports)),
    );
    ok(&s, WriteOp::StoreInsight(insight(c, vec![e1.id])));

    let st = s.collective_stats(c).unwrap();
    assert_eq!(st.experience_count, 3);
    assert_eq!(st.archived_count, 1);
    assert_eq!(st.relation_count, 2);
    assert_eq!(st.insight_count, 1);
    assert_eq!(st.oldest_experience, Some(Timestamp(1_000)));
    assert_eq!(st.newest_experience, Some(Timestamp(5_000)));
    // At least the embeddings and contents are counted.
    let floor = (3 * DIM * 4 + "firstsecondthird".len()) as u64;
    assert!(st.storage_bytes > floor, "{} <= {floor}", st.storage_bytes);

    ok(&s, WriteOp::DeleteExperience(e2.id));
    let st2 = s.collective_stats(c).unwrap();
    assert_eq!(st2.experience_count, 2);
    assert_eq!(st2.archived_count, 0);
    assert_eq!(st2.relation_count, 0);
    assert_eq!(st2.newest_experience, Some(Timestamp(3_000)));
    assert!(st2.storage_bytes < st.storage_bytes);
    assert_eq!(s.count_experiences(c).unwrap(), 2);
}

// --- experiences ---------------------------------------------------------------

#[test]
fn record_stores_record_embedding_and_indexes() {
    let s = memory();
    let c = new_collective(&s, "c");
    let mut e = experience(c, "with everything");
    e.embedding = vec![0.1, -2.5, 3.0e-7, f32::MAX];
    e.experience_type = ExperienceType::Difficulty {
        description: "hard".into(),
        severity: Severity::High,
    };
    e.tags = tags(&[("lang", "rust"), ("os", "")]);
    e.domain = vec!["db".into()];
    e.related_files = vec!["src/lib.rs".into()];
    e.source_task = Some("t".into());
    let done = ok(&s, WriteOp::RecordExperiences(vec![e.clone()]));
    match &done.applied {
        Applied::ExperiencesRecorded(v) => assert_eq!(v, &vec![e.clone()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Created);

    // Embedding returned exactly as given.
    assert_eq!(s.get_experience(e.id).unwrap(), Some(e.clone()));
    assert_eq!(s.get_embedding(e.id).unwrap(), Some(e.embedding.clone()));
    assert_eq!(
        s.get_experiences(&[ExperienceId::new(), e.id]).unwrap(),
        vec![e.clone()]
    );
    assert_eq!(s.get_experience(ExperienceId::new()).unwrap(), None);
    assert_eq!(s.get_embedding(ExperienceId::new()).unwrap(), None);

    assert_eq!(s.list_experience_ids(c, 10, 0).unwrap(), vec![e.id]);

    // Scans: embeddings only when asked.
    let mut seen = Vec::new();
    s.scan_experiences(c, false, &mut |x| seen.push(x)).unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].embedding.is_empty());
    assert_eq!(seen[0].content, e.content);
    let mut seen = Vec::new();
    s.scan_experiences(c, true, &mut |x| seen.push(x)).unwrap();
    assert_eq!(seen, vec![e]);
}

#[test]
fn bulk_record_is_all_or_nothing() {
    let s = memory();
    let c = new_collective(&s, "c");
    let existing = record_new(&s, c, "existing");
    let before = s.current_sequence().unwrap();

    // A duplicate id inside the batch.
    let a = experience(c, "a");
    let err = apply_one(&s, WriteOp::RecordExperiences(vec![a.clone(), a.clone()])).unwrap_err();
    assert!(err.is_validation());
    // An id that exists already.
    let mut dup = experience(c, "dup");
    dup.id = existing;
    let b = experience(c, "b");
    let err = apply_one(&s, WriteOp::RecordExperiences(vec![b.clone(), dup])).unwrap_err();
    assert!(err.is_validation());
    // An unknown collective for the last item.
    let stray = experience(pulsedb::CollectiveId::new(), "stray");
    let err = apply_one(&s, WriteOp::RecordExperiences(vec![b.clone(), stray])).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Collective(_))));

    assert_eq!(s.get_experience(a.id).unwrap(), None);
    assert_eq!(s.get_experience(b.id).unwrap(), None);
    assert_eq!(s.count_experiences(c).unwrap(), 1);
    assert_eq!(s.current_sequence().unwrap(), before);

    // A good bulk record: every item stored, one Created event each.
    let batch: Vec<_> = (0..5)
        .map(|i| experience(c, &format!("bulk {i}")))
        .collect();
    let done = ok(&s, WriteOp::RecordExperiences(batch.clone()));
    assert_eq!(done.events.len(), 5);
    let seqs: Vec<u64> = done.events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (before + 1..=before + 5).collect::<Vec<_>>());
    for (ev, e) in done.events.iter().zip(&batch) {
        assert_eq!(ev.experience_id, e.id);
    }
    assert_eq!(s.count_experiences(c).unwrap(), 6);
}

#[test]
fn update_changes_fields_and_moves_index_entries() {
    let s = memory();
    let c = new_collective(&s, "c");
    let mut e = experience(c, "to update");
    e.tags = tags(&[("lang", "rust"), ("keep", "me")]);
    let e = record(&s, e);

    let update = ExperienceUpdate {
        importance: Some(0.9),
        confidence: Some(0.1),
        domain: Some(vec!["new".into()]),
        tags: Some(tags(&[("lang", "go"), ("keep", "me")])),
        related_files: Some(vec!["a.rs".into()]),
        archived: None,
        metadata: Some(
            serde_json::json!({"run": 7, "ok": true})
                .as_object()
                .unwrap()
                .clone(),
        ),
    };
    let done = ok(&s, WriteOp::UpdateExperience { id: e.id, update });
    assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Updated);
    let got = s.get_experience(e.id).unwrap().unwrap();
    assert_eq!(got.importance, 0.9);
    assert_eq!(got.confidence, 0.1);
    assert_eq!(got.domain, vec!["new".to_string()]);
    assert_eq!(got.related_files, vec!["a.rs".to_string()]);
    assert_eq!(got.metadata["run"], 7);
    assert_eq!(got.embedding, e.embedding);
    assert_eq!(got.content, e.content);
    match &done.applied {
        Applied::ExperienceChanged(x) => assert_eq!(**x, got),
        other => panic!("{other:?}"),
    }
    // Tags replaced as a whole.
    assert_eq!(
        got.tags,
        BTreeMap::from([
            ("keep".to_string(), "me".to_string()),
            ("lang".to_string(), "go".to_string())
        ])
    );

    // Archive: Archived event; unarchive: Updated.
    let archive = ExperienceUpdate {
        archived: Some(true),
        ..Default::default()
    };
    let done = ok(
        &s,
        WriteOp::UpdateExperience {
            id: e.id,
            update: archive,
        },
    );
    assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Archived);
    assert!(s.get_experience(e.id).unwrap().unwrap().archived);
    // Still listed.
    assert_eq!(s.list_experience_ids(c, 10, 0).unwrap(), vec![e.id]);

    let unarchive = ExperienceUpdate {
        archived: Some(false),
        tags: Some(BTreeMap::new()),
        ..Default::default()
    };
    let done = ok(
        &s,
        WriteOp::UpdateExperience {
            id: e.id,
            update: unarchive,
        },
    );
    assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Updated);
    let got = s.get_experience(e.id).unwrap().unwrap();
    assert!(!got.archived);
    assert!(got.tags.is_empty());

    // Unknown id.
    let missing = ExperienceId::new();
    let err = apply_one(
        &s,
        WriteOp::UpdateExperience {
            id: missing,
            update: ExperienceUpdate::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(id)) if id == missing));
}

#[test]
fn delete_experience_removes_it_from_every_table() {
    let s = memory();
    let c = new_collective(&s, "c");
    let mut e = experience(c, "delete me");
    e.tags = tags(&[("k", "v")]);
    e.archived = true;
    let e = record(&s, e);
    let other = record_new(&s, c, "other");
    let out = relation(e.id, other, RelationType::Supports);
    let inc = relation(other, e.id, RelationType::Contradicts);
    ok(&s, WriteOp::StoreRelation(out.clone()));
    ok(&s, WriteOp::StoreRelation(inc.clone()));
    ok(
        &s,
        WriteOp::ReinforceExperience {
            id: e.id,
            at: Timestamp::now(),
        },
    );
    let i = insight(c, vec![e.id]);
    ok(&s, WriteOp::StoreInsight(i.clone()));

    let done = ok(&s, WriteOp::DeleteExperience(e.id));
    assert!(
        matches!(done.applied, Applied::ExperienceDeleted { id, collective_id } if id == e.id && collective_id == c)
    );
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Deleted);
    assert!(done.events[0].experience.is_none());

    assert_eq!(s.get_experience(e.id).unwrap(), None);
    assert_eq!(s.get_embedding(e.id).unwrap(), None);
    assert_eq!(s.list_experience_ids(c, 10, 0).unwrap(), vec![other]);
    // Its relations went with it, in both directions and every index.
    assert_eq!(s.get_relation(out.id).unwrap(), None);
    assert_eq!(s.get_relation(inc.id).unwrap(), None);
    assert!(s.relation_ids_by_source(other).unwrap().is_empty());
    assert!(s.relation_ids_by_target(other).unwrap().is_empty());
    assert!(!s
        .relation_exists(e.id, other, RelationType::Supports)
        .unwrap());
    assert!(!s
        .relation_exists(other, e.id, RelationType::Contradicts)
        .unwrap());
    assert!(s.list_relations(c, 10, 0).unwrap().is_empty());
    // The insight keeps its source ids.
    assert_eq!(
        s.get_insight(i.id).unwrap().unwrap().source_experience_ids,
        vec![e.id]
    );

    // Re-recording the same id starts a fresh reinforcement count.
    let mut again = experience(c, "again");
    again.id = e.id;
    record(&s, again);
    let c2 = ok(
        &s,
        WriteOp::ReinforceExperience {
            id: e.id,
            at: Timestamp::now(),
        },
    );
    assert_eq!(c2.applied.applications(), Some(1));

    let err = apply_one(&s, WriteOp::DeleteExperience(ExperienceId::new())).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(_))));
}

#[test]
fn reinforce_counts_and_saturates() {
    let s = memory();
    let c = new_collective(&s, "c");
    let mut e = experience(c, "reinforce");
    e.last_reinforced = Timestamp(1_000);
    let e = record(&s, e);

    for n in 1..=3u32 {
        let done = ok(
            &s,
            WriteOp::ReinforceExperience {
                id: e.id,
                at: Timestamp(2_000 + n as i64),
            },
        );
        assert_eq!(done.applied.applications(), Some(n));
        assert_eq!(done.events[0].event_type, pulsedb::WatchEventType::Updated);
    }
    let got = s.get_experience(e.id).unwrap().unwrap();
    assert_eq!(got.applications, 3);
    assert_eq!(got.last_reinforced, Timestamp(2_003));
    // An older time never moves last_reinforced back.
    ok(
        &s,
        WriteOp::ReinforceExperience {
            id: e.id,
            at: Timestamp(5),
        },
    );
    let got = s.get_experience(e.id).unwrap().unwrap();
    assert_eq!(got.applications, 4);
    assert_eq!(got.last_reinforced, Timestamp(2_003));

    // The total saturates instead of overflowing.
    let mut full = experience(c, "full");
    full.applications = u32::MAX;
    let full = record(&s, full);
    let done = ok(
        &s,
        WriteOp::ReinforceExperience {
            id: full.id,
            at: Timestamp::now(),
        },
    );
    assert_eq!(done.applied.applications(), Some(u32::MAX));

    let err = apply_one(
        &s,
        WriteOp::ReinforceExperience {
            id: ExperienceId::new(),
            at: Timestamp::now(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(_))));
}

#[test]
fn reinforcement_counter_is_per_instance() {
    // Two database files (two instances) each count their own reinforcements
    // in the `reinforcements` table.
    use pulsedb::storage::schema;
    use redb::ReadableDatabase;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let e_id;
    let instance;
    {
        let s = file(&path);
        instance = s.instance_id();
        let c = new_collective(&s, "c");
        e_id = record_new(&s, c, "x");
        for _ in 0..3 {
            ok(
                &s,
                WriteOp::ReinforceExperience {
                    id: e_id,
                    at: Timestamp::now(),
                },
            );
        }
    }
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(schema::REINFORCEMENTS).unwrap();
    let k = schema::key(&[e_id.as_bytes(), instance.as_bytes()]);
    assert_eq!(t.get(k.as_slice()).unwrap().map(|v| v.value()), Some(3));
}

// --- relations -----------------------------------------------------------------

#[test]
fn relation_store_get_indexes_and_delete() {
    let s = memory();
    let c = new_collective(&s, "c");
    let a = record_new(&s, c, "a");
    let b = record_new(&s, c, "b");
    let d = record_new(&s, c, "d");
    let ab = relation(a, b, RelationType::Supports);
    let ab2 = relation(a, b, RelationType::Elaborates);
    let db_ = relation(d, b, RelationType::Implies);
    let done = ok(&s, WriteOp::StoreRelation(ab.clone()));
    assert!(matches!(done.applied, Applied::RelationStored(ref r) if *r == ab));
    assert!(done.events.is_empty());
    ok(&s, WriteOp::StoreRelation(ab2.clone()));
    ok(&s, WriteOp::StoreRelation(db_.clone()));

    assert_eq!(s.get_relation(ab.id).unwrap(), Some(ab.clone()));
    assert_eq!(s.get_relation(RelationId::new()).unwrap(), None);
    let mut by_src = s.relation_ids_by_source(a).unwrap();
    by_src.sort();
    let mut want = vec![ab.id, ab2.id];
    want.sort();
    assert_eq!(by_src, want);
    assert_eq!(s.relation_ids_by_target(b).unwrap().len(), 3);
    assert!(s.relation_ids_by_target(a).unwrap().is_empty());
    assert_eq!(s.relation_ids_by_source(d).unwrap(), vec![db_.id]);
    assert!(s.relation_exists(a, b, RelationType::Supports).unwrap());
    assert!(!s.relation_exists(b, a, RelationType::Supports).unwrap());
    assert!(!s.relation_exists(a, b, RelationType::Contradicts).unwrap());
    assert_eq!(
        s.list_relations(c, 10, 0).unwrap(),
        vec![ab.clone(), ab2.clone(), db_.clone()]
    );

    let done = ok(&s, WriteOp::DeleteRelation(ab.id));
    assert!(matches!(done.applied, Applied::RelationDeleted(id) if id == ab.id));
    assert_eq!(s.get_relation(ab.id).unwrap(), None);
    assert_eq!(s.relation_ids_by_source(a).unwrap(), vec![ab2.id]);
    assert_eq!(s.relation_ids_by_target(b).unwrap().len(), 2);
    assert!(!s.relation_exists(a, b, RelationType::Supports).unwrap());
    assert_eq!(s.list_relations(c, 10, 0).unwrap(), vec![ab2, db_]);
    // The pair can be related with that type again.
    ok(
        &s,
        WriteOp::StoreRelation(relation(a, b, RelationType::Supports)),
    );

    let err = apply_one(&s, WriteOp::DeleteRelation(ab.id)).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Relation(id)) if id == ab.id));
}

#[test]
fn relation_refusals_leave_no_trace() {
    let s = memory();
    let c = new_collective(&s, "c");
    let other_c = new_collective(&s, "other");
    let a = record_new(&s, c, "a");
    let b = record_new(&s, c, "b");
    let x = record_new(&s, other_c, "x");
    ok(
        &s,
        WriteOp::StoreRelation(relation(a, b, RelationType::Supports)),
    );
    let before = s.current_sequence().unwrap();

    let field_of = |e: Error| match e {
        Error::Validation(ValidationError::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    };
    // Duplicate (source, target, type).
    let dup = relation(a, b, RelationType::Supports);
    assert_eq!(
        field_of(apply_one(&s, WriteOp::StoreRelation(dup.clone())).unwrap_err()),
        "relation_type"
    );
    // Self relation.
    let selfish = relation(a, a, RelationType::RelatedTo);
    assert_eq!(
        field_of(apply_one(&s, WriteOp::StoreRelation(selfish.clone())).unwrap_err()),
        "target_id"
    );
    // Cross-collective.
    let cross = relation(a, x, RelationType::RelatedTo);
    assert_eq!(
        field_of(apply_one(&s, WriteOp::StoreRelation(cross.clone())).unwrap_err()),
        "target_id"
    );
    // Missing ends.
    let ghost = ExperienceId::new();
    let missing_target = relation(a, ghost, RelationType::RelatedTo);
    let err = apply_one(&s, WriteOp::StoreRelation(missing_target.clone())).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(id)) if id == ghost));
    let missing_source = relation(ghost, a, RelationType::RelatedTo);
    let err = apply_one(&s, WriteOp::StoreRelation(missing_source.clone())).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(id)) if id == ghost));

    for r in [dup, selfish, cross, missing_target, missing_source] {
        assert_eq!(s.get_relation(r.id).unwrap(), None);
    }
    assert_eq!(s.relation_ids_by_source(a).unwrap().len(), 1);
    assert!(s.relation_ids_by_target(a).unwrap().is_empty());
    assert!(s.relation_ids_by_target(x).unwrap().is_empty());
    assert!(!s.relation_exists(a, x, RelationType::RelatedTo).unwrap());
    assert!(s.list_relations(other_c, 10, 0).unwrap().is_empty());
    assert_eq!(s.current_sequence().unwrap(), before);
}

#[test]
fn relation_with_an_existing_id_is_refused() {
    let s = memory();
    let c = new_collective(&s, "c");
    let a = record_new(&s, c, "a");
    let b = record_new(&s, c, "b");
    let d = record_new(&s, c, "d");
    let first = relation(a, b, RelationType::Supports);
    ok(&s, WriteOp::StoreRelation(first.clone()));
    let mut clash = relation(a, d, RelationType::Implies);
    clash.id = first.id;
    let err = apply_one(&s, WriteOp::StoreRelation(clash)).unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_eq!(s.get_relation(first.id).unwrap(), Some(first));
    assert!(s.relation_ids_by_target(d).unwrap().is_empty());
    assert!(!s.relation_exists(a, d, RelationType::Implies).unwrap());
}

// --- insights ------------------------------------------------------------------

#[test]
fn insight_save_get_list_delete() {
    let s = memory();
    let c = new_collective(&s, "c");
    let a = record_new(&s, c, "a");
    let b = record_new(&s, c, "b");
    let i1 = insight(c, vec![a, b]);
    let i2 = insight(c, vec![b]);
    let done = ok(&s, WriteOp::StoreInsight(i1.clone()));
    assert!(matches!(done.applied, Applied::InsightStored(ref i) if *i == i1));
    ok(&s, WriteOp::StoreInsight(i2.clone()));

    assert_eq!(s.get_insight(i1.id).unwrap(), Some(i1.clone()));
    assert_eq!(s.get_insight(InsightId::new()).unwrap(), None);
    assert_eq!(s.list_insight_ids(c, 10, 0).unwrap(), vec![i1.id, i2.id]);

    let done = ok(&s, WriteOp::DeleteInsight(i1.id));
    assert!(
        matches!(done.applied, Applied::InsightDeleted { id, collective_id } if id == i1.id && collective_id == c)
    );
    assert_eq!(s.get_insight(i1.id).unwrap(), None);
    assert_eq!(s.list_insight_ids(c, 10, 0).unwrap(), vec![i2.id]);
    let err = apply_one(&s, WriteOp::DeleteInsight(i1.id)).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Insight(id)) if id == i1.id));
}

#[test]
fn insight_source_checks() {
    let s = memory();
    let c = new_collective(&s, "c");
    let other = new_collective(&s, "other");
    let a = record_new(&s, c, "a");
    let x = record_new(&s, other, "x");
    let before = s.current_sequence().unwrap();

    let cross = insight(c, vec![a, x]);
    match apply_one(&s, WriteOp::StoreInsight(cross.clone())).unwrap_err() {
        Error::Validation(ValidationError::InvalidField { field, .. }) => {
            assert_eq!(field, "source_experience_ids")
        }
        other => panic!("{other:?}"),
    }
    let ghost = ExperienceId::new();
    let missing = insight(c, vec![a, ghost]);
    let err = apply_one(&s, WriteOp::StoreInsight(missing.clone())).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Experience(id)) if id == ghost));
    let homeless = insight(pulsedb::CollectiveId::new(), vec![a]);
    let err = apply_one(&s, WriteOp::StoreInsight(homeless.clone())).unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Collective(_))));

    for i in [cross, missing, homeless] {
        assert_eq!(s.get_insight(i.id).unwrap(), None);
    }
    assert!(s.list_insight_ids(c, 10, 0).unwrap().is_empty());
    assert_eq!(s.current_sequence().unwrap(), before);
}

// --- activities ----------------------------------------------------------------

#[test]
fn activities_upsert_heartbeat_end_list() {
    let s = memory();
    let c = new_collective(&s, "c");
    let other = new_collective(&s, "other");
    let seq = s.current_sequence().unwrap();

    ok(&s, WriteOp::UpsertActivity(activity(c, "old", 100)));
    ok(&s, WriteOp::UpsertActivity(activity(c, "mid", 200)));
    ok(&s, WriteOp::UpsertActivity(activity(c, "new", 300)));
    ok(
        &s,
        WriteOp::UpsertActivity(activity(other, "elsewhere", 400)),
    );
    // Activities are not logged.
    assert_eq!(s.current_sequence().unwrap(), seq);

    assert_eq!(
        s.get_activity("mid", c).unwrap(),
        Some(activity(c, "mid", 200))
    );
    assert_eq!(s.get_activity("mid", other).unwrap(), None);
    let names = |since| -> Vec<String> {
        s.list_activities(c, Timestamp(since))
            .unwrap()
            .into_iter()
            .map(|a| a.agent_id)
            .collect()
    };
    assert_eq!(names(0), ["new", "mid", "old"]);
    // The cutoff is inclusive.
    assert_eq!(names(200), ["new", "mid"]);
    assert_eq!(names(301), Vec::<String>::new());

    // Heartbeat moves an agent to the front, never backwards.
    ok(
        &s,
        WriteOp::Heartbeat {
            agent_id: "old".into(),
            collective_id: c,
            at: Timestamp(500),
        },
    );
    assert_eq!(names(0), ["old", "new", "mid"]);
    ok(
        &s,
        WriteOp::Heartbeat {
            agent_id: "old".into(),
            collective_id: c,
            at: Timestamp(1),
        },
    );
    let old = s.get_activity("old", c).unwrap().unwrap();
    assert_eq!(old.last_heartbeat, Timestamp(500));
    assert_eq!(old.started_at, Timestamp(100));

    // Upsert replaces (and resets started_at).
    let mut again = activity(c, "old", 600);
    again.current_task = None;
    ok(&s, WriteOp::UpsertActivity(again.clone()));
    assert_eq!(s.get_activity("old", c).unwrap(), Some(again));

    // End.
    ok(
        &s,
        WriteOp::EndActivity {
            agent_id: "mid".into(),
            collective_id: c,
        },
    );
    assert_eq!(s.get_activity("mid", c).unwrap(), None);
    assert_eq!(names(0), ["old", "new"]);
    assert_eq!(s.list_activities(other, Timestamp(0)).unwrap().len(), 1);

    for op in [
        WriteOp::EndActivity {
            agent_id: "mid".into(),
            collective_id: c,
        },
        WriteOp::Heartbeat {
            agent_id: "ghost".into(),
            collective_id: c,
            at: Timestamp(1),
        },
    ] {
        let err = apply_one(&s, op).unwrap_err();
        assert!(
            matches!(err, Error::NotFound(NotFoundError::Activity { .. })),
            "{err:?}"
        );
    }
    let err = apply_one(
        &s,
        WriteOp::UpsertActivity(activity(pulsedb::CollectiveId::new(), "a", 1)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotFound(NotFoundError::Collective(_))));
    assert_eq!(s.current_sequence().unwrap(), seq);
}

#[test]
fn activity_agent_ids_do_not_leak_across_prefixes() {
    // Agent "a" and agent "ab" are distinct keys.
    let s = memory();
    let c = new_collective(&s, "c");
    ok(&s, WriteOp::UpsertActivity(activity(c, "a", 1)));
    ok(&s, WriteOp::UpsertActivity(activity(c, "ab", 2)));
    ok(
        &s,
        WriteOp::EndActivity {
            agent_id: "a".into(),
            collective_id: c,
        },
    );
    assert_eq!(s.get_activity("ab", c).unwrap().unwrap().agent_id, "ab");
    assert_eq!(s.list_activities(c, Timestamp(0)).unwrap().len(), 1);
}

// --- pagination ----------------------------------------------------------------

#[test]
fn pagination_boundaries() {
    let s = memory();
    let c = new_collective(&s, "c");
    let ids: Vec<ExperienceId> = (0..5)
        .map(|i| record_new(&s, c, &format!("e{i}")))
        .collect();
    let mut rels = Vec::new();
    let mut insights = Vec::new();
    for w in ids.windows(2) {
        let r = relation(w[0], w[1], RelationType::Implies);
        ok(&s, WriteOp::StoreRelation(r.clone()));
        rels.push(r.id);
        let i = insight(c, vec![w[0]]);
        ok(&s, WriteOp::StoreInsight(i.clone()));
        insights.push(i.id);
    }
    let page = |limit, offset| s.list_experience_ids(c, limit, offset).unwrap();
    assert_eq!(page(10, 0), ids);
    assert_eq!(page(0, 0), vec![]);
    assert_eq!(page(0, 3), vec![]);
    assert_eq!(page(2, 0), ids[..2]);
    assert_eq!(page(2, 2), ids[2..4]);
    assert_eq!(page(2, 4), ids[4..]);
    assert_eq!(page(5, 0), ids);
    assert_eq!(page(1, 4), ids[4..]);
    assert_eq!(page(3, 5), vec![]);
    assert_eq!(page(3, 50), vec![]);
    assert_eq!(page(usize::MAX, usize::MAX), vec![]);

    let rpage = |limit, offset| -> Vec<RelationId> {
        s.list_relations(c, limit, offset)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(rpage(10, 0), rels);
    assert_eq!(rpage(0, 0), vec![]);
    assert_eq!(rpage(2, 2), rels[2..4]);
    assert_eq!(rpage(2, 4), vec![]);
    assert_eq!(rpage(1, 3), rels[3..]);

    let ipage = |limit, offset| s.list_insight_ids(c, limit, offset).unwrap();
    assert_eq!(ipage(10, 0), insights);
    assert_eq!(ipage(0, 1), vec![]);
    assert_eq!(ipage(3, 1), insights[1..]);
    assert_eq!(ipage(4, 4), vec![]);

    // Another collective's keys never leak into a page.
    let c2 = new_collective(&s, "c2");
    record_new(&s, c2, "elsewhere");
    assert_eq!(page(10, 0), ids);
    assert_eq!(s.list_experience_ids(c2, 10, 0).unwrap().len(), 1);
}

#[test]
fn scans_run_oldest_first_and_newest_first_and_stop() {
    let s = memory();
    let c = new_collective(&s, "c");
    let ids: Vec<ExperienceId> = (0..4)
        .map(|i| record_new(&s, c, &format!("e{i}")))
        .collect();
    let c2 = new_collective(&s, "c2");
    record_new(&s, c2, "not mine");

    let mut seen = Vec::new();
    s.scan_experiences(c, false, &mut |e| seen.push(e.id))
        .unwrap();
    assert_eq!(seen, ids);
    let mut seen = Vec::new();
    s.scan_experiences_newest_first(c, &mut |e| {
        seen.push(e.id);
        seen.len() < 3
    })
    .unwrap();
    assert_eq!(seen, vec![ids[3], ids[2], ids[1]]);
    let mut count = 0;
    s.scan_experiences_newest_first(c2, &mut |_| {
        count += 1;
        true
    })
    .unwrap();
    assert_eq!(count, 1);
}

#[test]
fn insight_with_an_existing_id_is_refused() {
    let s = memory();
    let c = new_collective(&s, "c");
    let other = new_collective(&s, "other");
    let a = record_new(&s, c, "a");
    let x = record_new(&s, other, "x");
    let first = insight(c, vec![a]);
    ok(&s, WriteOp::StoreInsight(first.clone()));
    let mut clash = insight(other, vec![x]);
    clash.id = first.id;
    let err = apply_one(&s, WriteOp::StoreInsight(clash)).unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_eq!(s.get_insight(first.id).unwrap(), Some(first.clone()));
    assert_eq!(s.list_insight_ids(c, 10, 0).unwrap(), vec![first.id]);
    assert!(s.list_insight_ids(other, 10, 0).unwrap().is_empty());
}
