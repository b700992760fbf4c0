//! The change log, sync cursors and file metadata of the storage layer.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

#[path = "common/storage.rs"]
mod storage_common;

use pulsedb::storage::{
    schema, ChangeKind, Location, RedbStorage, StorageRead, StorageWrite, WriteOp,
};
use pulsedb::{
    Error, ExperienceUpdate, InstanceId, RelationType, Timestamp, ValidationError, WatchEventType,
};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use storage_common::*;

fn kinds(s: &RedbStorage, since: u64) -> Vec<ChangeKind> {
    s.changes_since(since, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.kind)
        .collect()
}

#[test]
fn every_logged_write_is_one_entry_gap_free() {
    let s = memory();
    assert_eq!(s.current_sequence().unwrap(), 0);
    assert!(s.changes_since(0, 10).unwrap().is_empty());

    let c = new_collective(&s, "c");
    let batch: Vec<_> = (0..3).map(|i| experience(c, &format!("e{i}"))).collect();
    ok(&s, WriteOp::RecordExperiences(batch.clone()));
    let (a, b, d) = (batch[0].id, batch[1].id, batch[2].id);
    ok(
        &s,
        WriteOp::UpdateExperience {
            id: a,
            update: ExperienceUpdate {
                importance: Some(0.9),
                ..Default::default()
            },
        },
    );
    ok(
        &s,
        WriteOp::UpdateExperience {
            id: a,
            update: ExperienceUpdate {
                archived: Some(true),
                ..Default::default()
            },
        },
    );
    ok(
        &s,
        WriteOp::UpdateExperience {
            id: a,
            update: ExperienceUpdate {
                archived: Some(false),
                ..Default::default()
            },
        },
    );
    ok(
        &s,
        WriteOp::ReinforceExperience {
            id: b,
            at: Timestamp::now(),
        },
    );
    let r = relation(a, b, RelationType::Supports);
    ok(&s, WriteOp::StoreRelation(r.clone()));
    ok(&s, WriteOp::DeleteRelation(r.id));
    let i = insight(c, vec![a]);
    ok(&s, WriteOp::StoreInsight(i.clone()));
    ok(&s, WriteOp::DeleteInsight(i.id));
    // Activities are not logged.
    ok(&s, WriteOp::UpsertActivity(activity(c, "agent", 1)));
    ok(
        &s,
        WriteOp::Heartbeat {
            agent_id: "agent".into(),
            collective_id: c,
            at: Timestamp(2),
        },
    );
    ok(
        &s,
        WriteOp::EndActivity {
            agent_id: "agent".into(),
            collective_id: c,
        },
    );
    ok(&s, WriteOp::DeleteExperience(d));
    // A relation that goes away with its experience is not logged separately.
    ok(
        &s,
        WriteOp::StoreRelation(relation(b, a, RelationType::Implies)),
    );
    ok(&s, WriteOp::DeleteExperience(b));
    ok(&s, WriteOp::DeleteCollective(c));

    use ChangeKind::*;
    assert_eq!(
        kinds(&s, 0),
        vec![
            CollectiveCreated,
            ExperienceCreated,
            ExperienceCreated,
            ExperienceCreated,
            ExperienceUpdated,
            ExperienceArchived,
            ExperienceUpdated,
            ExperienceUpdated,
            RelationCreated,
            RelationDeleted,
            InsightCreated,
            InsightDeleted,
            ExperienceDeleted,
            RelationCreated,
            ExperienceDeleted,
            CollectiveDeleted,
        ]
    );
    assert_eq!(s.current_sequence().unwrap(), 16);
    assert_gap_free(&s);

    let log = s.changes_since(0, usize::MAX).unwrap();
    // Entity ids and collectives are those of the write.
    assert_eq!(log[0].1.entity_id, *c.as_bytes());
    assert_eq!(log[1].1.entity_id, *a.as_bytes());
    assert_eq!(log[3].1.entity_id, *d.as_bytes());
    assert_eq!(log[8].1.entity_id, *r.id.as_bytes());
    assert_eq!(log[10].1.entity_id, *i.id.as_bytes());
    assert!(log.iter().all(|(_, e)| e.collective_id == c));
    // Experience entries carry the record after the write (without the
    // embedding); deletes and other kinds carry none.
    let archived = log[5].1.experience.as_ref().unwrap();
    assert!(archived.archived);
    assert_eq!(archived.importance, 0.9);
    assert!(archived.embedding.is_empty());
    assert_eq!(log[7].1.experience.as_ref().unwrap().applications, 1);
    assert!(log[12].1.experience.is_none());
    assert!(log[8].1.experience.is_none());

    // changes_since: strictly after `since`, at most `limit`.
    let tail = s.changes_since(14, 10).unwrap();
    assert_eq!(
        tail.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        vec![15, 16]
    );
    let mid = s.changes_since(3, 2).unwrap();
    assert_eq!(mid.iter().map(|(q, _)| *q).collect::<Vec<_>>(), vec![4, 5]);
    assert!(s.changes_since(16, 10).unwrap().is_empty());
    assert!(s.changes_since(100, 10).unwrap().is_empty());
    assert!(s.changes_since(0, 0).unwrap().is_empty());
}

#[test]
fn failed_operations_are_not_logged() {
    let s = memory();
    let c = new_collective(&s, "c");
    let a = record_new(&s, c, "a");
    let before = s.current_sequence().unwrap();
    let results = s
        .apply(vec![
            WriteOp::DeleteExperience(pulsedb::ExperienceId::new()),
            WriteOp::StoreRelation(relation(a, a, RelationType::Supports)),
            WriteOp::DeleteCollective(pulsedb::CollectiveId::new()),
        ])
        .unwrap();
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(s.current_sequence().unwrap(), before);
    assert_gap_free(&s);
}

#[test]
fn poll_events_positions() {
    let s = memory();
    // Nothing at all: the given position comes back.
    assert_eq!(s.poll_events(0, 10).unwrap(), (vec![], 0));
    assert_eq!(s.poll_events(7, 10).unwrap(), (vec![], 7));

    let c = new_collective(&s, "c"); // 1
    let e1 = record_new(&s, c, "e1"); // 2
    let e2 = record_new(&s, c, "e2"); // 3
    ok(
        &s,
        WriteOp::StoreRelation(relation(e1, e2, RelationType::Supports)),
    ); // 4
    let e3 = record_new(&s, c, "e3"); // 5
    ok(&s, WriteOp::StoreInsight(insight(c, vec![e1]))); // 6
    ok(
        &s,
        WriteOp::UpdateExperience {
            id: e2,
            update: ExperienceUpdate {
                archived: Some(true),
                ..Default::default()
            },
        },
    ); // 7
    ok(&s, WriteOp::DeleteExperience(e3)); // 8
    ok(&s, WriteOp::CreateCollective(collective("trailing"))); // 9
    assert_eq!(s.current_sequence().unwrap(), 9);

    // Everything at once: experience events only, position covers the
    // trailing collective entry.
    let (events, pos) = s.poll_events(0, 100).unwrap();
    assert_eq!(pos, 9);
    let got: Vec<(u64, WatchEventType)> =
        events.iter().map(|e| (e.sequence, e.event_type)).collect();
    assert_eq!(
        got,
        vec![
            (2, WatchEventType::Created),
            (3, WatchEventType::Created),
            (5, WatchEventType::Created),
            (7, WatchEventType::Archived),
            (8, WatchEventType::Deleted),
        ]
    );
    assert_eq!(events[0].experience_id, e1);
    assert_eq!(events[0].collective_id, c);
    // The record after the write, embedding included; none for a delete.
    let created = events[0].experience.as_ref().unwrap();
    assert_eq!(created.id, e1);
    assert_eq!(created.embedding, embedding("e1".len() as u32));
    assert!(events[3].experience.as_ref().unwrap().archived);
    assert!(events[4].experience.is_none());
    assert_eq!(events[4].experience_id, e3);

    // The limit counts events; positions chain without loss or repeats.
    let (first, p1) = s.poll_events(0, 2).unwrap();
    assert_eq!(
        first.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!((3..5).contains(&p1), "position {p1} must not pass event 5");
    let (second, p2) = s.poll_events(p1, 2).unwrap();
    assert_eq!(
        second.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![5, 7]
    );
    let (third, p3) = s.poll_events(p2, 2).unwrap();
    assert_eq!(
        third.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![8]
    );
    assert_eq!(p3, 9);
    assert_eq!(s.poll_events(p3, 2).unwrap(), (vec![], 9));

    // Only non-experience entries after the position: covered, no events.
    assert_eq!(s.poll_events(8, 10).unwrap(), (vec![], 9));
    // A position past the end comes back unchanged.
    assert_eq!(s.poll_events(50, 10).unwrap(), (vec![], 50));
}

#[test]
fn committed_events_match_polled_events() {
    let s = memory();
    let c = new_collective(&s, "c");
    let batch: Vec<_> = (0..3).map(|i| experience(c, &format!("e{i}"))).collect();
    // Events leave the writer without the experience; `complete_events`
    // puts it in (the engine does so when someone watches).
    let mut committed = Vec::new();
    for op in [
        WriteOp::RecordExperiences(batch.clone()),
        WriteOp::ReinforceExperience {
            id: batch[0].id,
            at: Timestamp::now(),
        },
        WriteOp::DeleteExperience(batch[1].id),
    ] {
        let mut done = ok(&s, op);
        assert!(done.events.iter().all(|e| e.experience.is_none()));
        done.applied.complete_events(&mut done.events);
        committed.extend(done.events);
    }
    let (polled, _) = s.poll_events(0, 100).unwrap();
    assert_eq!(polled.len(), 5);
    // The deleted experience's Created event can no longer carry an
    // embedding; compare everything else.
    for (p, c) in polled.iter().zip(&committed) {
        assert_eq!(p.sequence, c.sequence);
        assert_eq!(p.experience_id, c.experience_id);
        assert_eq!(p.collective_id, c.collective_id);
        assert_eq!(p.event_type, c.event_type);
        assert_eq!(p.timestamp, c.timestamp, "event {} timestamp", p.sequence);
        if p.experience_id != batch[1].id {
            assert_eq!(p.experience, c.experience);
        }
    }
}

#[test]
fn sequences_persist_across_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let c;
    {
        let s = file(&path);
        c = new_collective(&s, "c");
        for i in 0..4 {
            record_new(&s, c, &format!("e{i}"));
        }
        assert_eq!(s.current_sequence().unwrap(), 5);
    }
    {
        let s = file(&path);
        assert_eq!(s.current_sequence().unwrap(), 5);
        assert_eq!(log_sequences(&s), vec![1, 2, 3, 4, 5]);
        record_new(&s, c, "after reopen");
        assert_eq!(s.current_sequence().unwrap(), 6);
        assert_gap_free(&s);

        // Compaction removes entries ≤ upto and returns how many.
        assert_eq!(s.compact_changes(3).unwrap(), 3);
        assert_eq!(log_sequences(&s), vec![4, 5, 6]);
        assert_eq!(s.compact_changes(3).unwrap(), 0);
        assert_eq!(s.current_sequence().unwrap(), 6);
        assert!(matches!(
            s.poll_events(0, 100),
            Err(pulsedb::Error::ChangesCompacted { oldest: 4 })
        ));
        let (events, pos) = s.poll_events(3, 100).unwrap();
        assert_eq!(
            events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert_eq!(pos, 6);
        // Compacting everything never lets a sequence be reused.
        assert_eq!(s.compact_changes(u64::MAX).unwrap(), 3);
        assert!(log_sequences(&s).is_empty());
        assert_eq!(s.current_sequence().unwrap(), 6);
        // Polling from before the compacted position says so.
        assert!(matches!(
            s.poll_events(0, 10),
            Err(pulsedb::Error::ChangesCompacted { oldest: 7 })
        ));
        assert_eq!(s.compacted_through().unwrap(), 6);
        assert_eq!(s.poll_events(6, 10).unwrap(), (vec![], 6));
        let done = ok(&s, WriteOp::RecordExperiences(vec![experience(c, "x")]));
        assert_eq!(done.events[0].sequence, 7);
    }
    let s = file(&path);
    assert_eq!(s.current_sequence().unwrap(), 7);
    assert_eq!(log_sequences(&s), vec![7]);
    ok(&s, WriteOp::CreateCollective(collective("d")));
    assert_eq!(log_sequences(&s), vec![7, 8]);
}

#[test]
fn expired_entries_are_compacted_but_never_past_a_sync_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let s = file(&dir.path().join("expiry.redb"));
    let c = new_collective(&s, "c");
    for i in 0..9 {
        record_new(&s, c, &format!("e{i}"));
    }
    assert_eq!(s.current_sequence().unwrap(), 10);
    let later = Timestamp(Timestamp::now().0 + 60_000);
    // Nothing is older than an old cut-off.
    assert_eq!(s.compact_expired_changes(Timestamp(0), 100).unwrap(), 0);
    // A peer that has taken up to 4 holds the rest back.
    let peer = InstanceId::new();
    s.save_sync_cursor(peer, 4).unwrap();
    assert_eq!(s.compact_expired_changes(later, 100).unwrap(), 4);
    assert_eq!(log_sequences(&s), (5..=10).collect::<Vec<_>>());
    assert!(matches!(
        s.poll_events(3, 10),
        Err(pulsedb::Error::ChangesCompacted { oldest: 5 })
    ));
    assert_eq!(s.poll_events(4, 100).unwrap().0.len(), 6);
    // The peer moves on; a run removes at most `max`.
    s.save_sync_cursor(peer, 10).unwrap();
    assert_eq!(s.compact_expired_changes(later, 2).unwrap(), 2);
    assert_eq!(s.compacted_through().unwrap(), 6);
    assert_eq!(s.compact_expired_changes(later, 100).unwrap(), 4);
    assert!(log_sequences(&s).is_empty());
    assert_eq!(s.poll_events(10, 10).unwrap(), (vec![], 10));
}

#[test]
fn sync_cursors_save_load_list_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors.redb");
    let (p1, p2) = (InstanceId::new(), InstanceId::new());
    {
        let s = file(&path);
        assert_eq!(s.load_sync_cursor(p1).unwrap(), None);
        assert!(s.list_sync_cursors().unwrap().is_empty());
        s.save_sync_cursor(p1, 10).unwrap();
        s.save_sync_cursor(p2, 3).unwrap();
        s.save_sync_cursor(p1, 12).unwrap();
        assert_eq!(s.load_sync_cursor(p1).unwrap(), Some(12));
        assert_eq!(s.load_sync_cursor(p2).unwrap(), Some(3));
    }
    let s = file(&path);
    let mut all = s.list_sync_cursors().unwrap();
    all.sort();
    let mut want = vec![(p1, 12), (p2, 3)];
    want.sort();
    assert_eq!(all, want);
    // Cursors are not change-log entries.
    assert_eq!(s.current_sequence().unwrap(), 0);
}

// --- metadata ------------------------------------------------------------------

#[test]
fn metadata_and_instance_id_are_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let (id, created) = {
        let s = file(&path);
        let m = s.metadata();
        assert_eq!(m.schema_version, schema::SCHEMA_VERSION);
        assert_eq!(m.embedding_dimension, DIM);
        assert!(m.last_opened_at >= m.created_at);
        (s.instance_id(), m.created_at)
    };
    let s = file(&path);
    assert_eq!(s.instance_id(), id);
    assert_eq!(s.metadata().created_at, created);
    assert!(s.metadata().last_opened_at >= created);
    // Another file, another instance.
    let other = file(&dir.path().join("other.redb"));
    assert_ne!(other.instance_id(), id);
    assert_ne!(memory().instance_id(), memory().instance_id());
}

#[test]
fn reopen_with_another_dimension_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dim.redb");
    drop(file(&path));
    let err = RedbStorage::open(&options(Location::File(path.clone()), DIM + 3)).unwrap_err();
    match err {
        Error::Validation(ValidationError::DimensionMismatch { expected, got }) => {
            assert_eq!((expected, got), (DIM, DIM + 3))
        }
        other => panic!("{other:?}"),
    }
    // The refused open changed nothing.
    assert_eq!(file(&path).metadata().embedding_dimension, DIM);
}

#[test]
fn reopen_with_another_embedder_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.redb");
    let with_model = |m: Option<&str>| {
        let mut o = options(Location::File(path.clone()), DIM);
        o.embedder_model = m.map(String::from);
        RedbStorage::open(&o)
    };
    // No model at creation: the first model given is recorded.
    drop(with_model(None).unwrap());
    drop(with_model(Some("mini-lm")).unwrap());
    // Without an embedder the file still opens.
    drop(with_model(None).unwrap());
    drop(with_model(Some("mini-lm")).unwrap());
    match with_model(Some("bert")).unwrap_err() {
        Error::EmbedderMismatch { stored, given } => {
            assert_eq!(stored, "mini-lm");
            assert_eq!(given, "bert");
        }
        other => panic!("{other:?}"),
    }
}

fn write_meta(path: &std::path::Path, key: &str, value: &[u8]) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(schema::META)
        .unwrap()
        .insert(key, value)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.redb");
    drop(file(&path));
    let newer = schema::SCHEMA_VERSION + 1;
    write_meta(
        &path,
        schema::meta_keys::SCHEMA_VERSION,
        &newer.to_be_bytes(),
    );
    match RedbStorage::open(&options(Location::File(path.clone()), DIM)).unwrap_err() {
        Error::SchemaTooNew { found, supported } => {
            assert_eq!(found, newer);
            assert_eq!(supported, schema::SCHEMA_VERSION);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_metadata_is_a_fault_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.redb");
    drop(file(&path));
    write_meta(&path, schema::meta_keys::DIMENSION, &[1, 2, 3]);
    let err = RedbStorage::open(&options(Location::File(path), DIM)).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
}

#[test]
fn read_only_open_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.redb");
    drop(file(&path));
    let stored_opened_at = || {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(schema::META).unwrap();
        let v = t.get(schema::meta_keys::LAST_OPENED_AT).unwrap().unwrap();
        v.value().to_vec()
    };
    let before = stored_opened_at();
    let mut o = options(Location::File(path.clone()), DIM);
    o.read_only = true;
    o.embedder_model = Some("model".into());
    let s = RedbStorage::open(&o).unwrap();
    assert_eq!(s.current_sequence().unwrap(), 0);
    drop(s);
    assert_eq!(stored_opened_at(), before);
    // The embedder model was not recorded either: another one still opens.
    let mut o2 = options(Location::File(path.clone()), DIM);
    o2.embedder_model = Some("other".into());
    assert!(RedbStorage::open(&o2).is_ok());
}

#[test]
fn peers_silent_past_their_retention_stop_holding_compaction_back() {
    let s = memory();
    for i in 0..6 {
        s.apply(vec![WriteOp::CreateCollective(collective(&format!(
            "c{i}"
        )))])
        .unwrap();
    }
    let peer = InstanceId::new();
    s.record_peer_pull(peer, 2).unwrap();
    let far = Timestamp(Timestamp::now().0 + 60_000);
    assert_eq!(s.compact_expired_changes(far, 100).unwrap(), 2);
    // Still pulling (seen after this instant): kept.
    let an_hour_ago = Timestamp(Timestamp::now().0 - 3_600_000);
    assert!(s.forget_silent_peers(an_hour_ago).unwrap().is_empty());
    assert_eq!(s.compact_expired_changes(far, 100).unwrap(), 0);
    // Silent since before `far`: forgotten, and the log goes.
    assert_eq!(s.forget_silent_peers(far).unwrap(), vec![peer]);
    assert!(s.list_sync_cursors().unwrap().is_empty());
    assert_eq!(s.compact_expired_changes(far, 100).unwrap(), 4);
}

/// A logged record's content, importance and applications.
type LoggedState = (String, f32, u32);

/// Size of each change-log entry as stored, read from the closed file.
fn entry_sizes(path: &std::path::Path) -> Vec<(u64, usize)> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let wal = txn.open_table(schema::WAL).unwrap();
    let sizes = wal
        .iter()
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.value(), v.value().len())
        })
        .collect();
    sizes
}

/// An experience's entry refers to its row while the row is as that write
/// left it, and holds a copy from the row's next write on: the record is
/// stored once, and every entry still reads as the record after its own
/// write (updates, reinforcements, deletes, and a collective's delete).
#[test]
fn an_entry_refers_to_its_row_until_the_row_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let long = "x".repeat(2_000);
    let (c, a, b, kept) = {
        let s = file(&path);
        let c = new_collective(&s, "c"); // 1
        let a = record(&s, experience(c, &long)).id; // 2
        let b = record(&s, experience(c, "b")).id; // 3
        let kept = record(&s, experience(c, "kept")).id; // 4
        (c, a, b, kept)
    };
    // Written once: the entries of a record are a few dozen bytes.
    let sizes = entry_sizes(&path);
    assert!(sizes[1].1 < 100, "entry of a 2 000-byte record: {sizes:?}");

    let s = file(&path);
    ok(&s, set_importance(a, 0.9)); // 5
    ok(&s, set_importance(a, 0.7)); // 6
    ok(
        &s,
        WriteOp::ReinforceExperience {
            id: b,
            at: Timestamp::now(),
        },
    ); // 7
    ok(&s, WriteOp::DeleteExperience(b)); // 8
    let records = |s: &RedbStorage| -> Vec<(u64, Option<LoggedState>)> {
        s.changes_since(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(q, ch)| {
                let e = ch
                    .experience
                    .map(|e| (e.content, e.importance, e.applications));
                (q, e)
            })
            .collect()
    };
    let before_delete = records(&s);
    let want = vec![
        (1, None),
        (2, Some((long.clone(), 0.5, 0))),
        (3, Some(("b".to_string(), 0.5, 0))),
        (4, Some(("kept".to_string(), 0.5, 0))),
        (5, Some((long.clone(), 0.9, 0))),
        (6, Some((long.clone(), 0.7, 0))),
        (7, Some(("b".to_string(), 0.5, 1))),
        (8, None),
    ];
    assert_eq!(before_delete, want);
    // Watch events read the same records, embeddings included where the
    // row still exists.
    let (events, _) = s.poll_events(0, 100).unwrap();
    let polled: Vec<_> = events
        .iter()
        .map(|e| {
            e.experience
                .as_ref()
                .map(|x| (x.importance, x.embedding.is_empty()))
        })
        .collect();
    assert_eq!(
        polled,
        vec![
            Some((0.5, false)),
            Some((0.5, true)),
            Some((0.5, false)),
            Some((0.9, false)),
            Some((0.7, false)),
            Some((0.5, true)),
            None,
        ]
    );
    // A collective's delete gives its records' entries their copies.
    ok(&s, WriteOp::DeleteCollective(c)); // 9
    let mut after = records(&s);
    assert_eq!(after.pop(), Some((9, None)));
    assert_eq!(after, want);
    assert!(s.get_experience(kept).unwrap().is_none());
    drop(s);
    // Copies now sit where references were: entry 2 holds the 2 000 bytes.
    let sizes = entry_sizes(&path);
    assert!(sizes[1].1 > 2_000, "{sizes:?}");
    assert!(sizes[4].1 > 2_000, "{sizes:?}");
}

/// Compaction takes the keys that led to the entries it removes with them;
/// a record whose entry is gone is rewritten and deleted as any other.
#[test]
fn compaction_drops_the_keys_of_the_entries_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let logged_keys = |path: &std::path::Path| {
        let db = redb::ReadOnlyDatabase::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(schema::LOGGED_AT).unwrap();
        t.len().unwrap()
    };
    let (a, b) = {
        let s = file(&path);
        let c = new_collective(&s, "c"); // 1
        let a = record_new(&s, c, "a"); // 2
        let b = record_new(&s, c, "b"); // 3
        (a, b)
    };
    assert_eq!(logged_keys(&path), 2);
    {
        let s = file(&path);
        assert_eq!(s.compact_changes(2).unwrap(), 2);
    }
    // The key of the compacted entry went with it; b's entry stays.
    assert_eq!(logged_keys(&path), 1);
    let s = file(&path);
    ok(&s, set_importance(a, 0.9)); // 4
    ok(&s, WriteOp::DeleteExperience(b)); // 5
    let read: Vec<_> = s
        .changes_since(2, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(q, ch)| (q, ch.experience.map(|e| (e.content, e.importance))))
        .collect();
    assert_eq!(
        read,
        vec![
            (3, Some(("b".to_string(), 0.5))),
            (4, Some(("a".to_string(), 0.9))),
            (5, None),
        ]
    );
    drop(s);
    assert_eq!(logged_keys(&path), 1);
}
