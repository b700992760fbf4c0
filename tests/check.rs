//! `PulseHandle::check`, `compact_change_log` and `import_experiences`: a
//! database verifies clean after every kind of write, the log compacts to
//! its retention and still checks, and whole records are restored exactly.

mod common;

use std::time::Duration;

use common::*;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_checks_clean() {
    let t = TempDb::new();
    let db = t.open().await;
    let every = store_every_kind(&db).await;
    let c = db.create_collective("second").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(db.record_experience(exp(c, 10 + i)).await.unwrap());
    }
    for id in &ids[..40] {
        db.delete_experience(*id).await.unwrap();
    }
    db.archive_experience(ids[50]).await.unwrap();
    db.reinforce_experience(ids[51]).await.unwrap();
    let gone = db.create_collective("gone").await.unwrap();
    db.record_experience(exp(gone, 999)).await.unwrap();
    db.delete_collective(gone).await.unwrap();
    db.delete_insight(every.insight).await.unwrap();
    db.store_insight(NewDerivedInsight {
        collective_id: c,
        content: "kept".into(),
        embedding: Some(vec16(7)),
        source_experience_ids: vec![ids[60]],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    })
    .await
    .unwrap();

    let report = db.check().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.collectives, 2);
    assert_eq!(report.experiences, 262);
    assert_eq!(report.relations, 1);
    assert_eq!(report.insights, 1);
    assert_eq!(report.log_entries, db.get_current_sequence().await.unwrap());
    db.close().await.unwrap();

    // Reopened from the snapshots, the same.
    let db = t.reopen_when_released(config()).await;
    let again = db.check().await.unwrap();
    assert_eq!(again, report);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_compacts_to_its_retention_on_demand() {
    let t = TempDb::new();
    let retention = Config {
        change_log: ChangeLogConfig {
            retention: Duration::from_secs(3600),
        },
        ..config()
    };
    let db = t.open_with(retention.clone()).await;
    let c = db.create_collective("c").await.unwrap();
    for i in 0..20 {
        db.record_experience(exp(c, i)).await.unwrap();
    }
    // Nothing is an hour old.
    assert_eq!(db.compact_change_log().await.unwrap(), 0);
    db.close().await.unwrap();

    // Reopened with a retention of 2 s once every entry is older: the
    // background compaction first runs 500 ms after the open (a quarter of
    // the retention), so the whole log is this call's to remove.
    let short = Config {
        change_log: ChangeLogConfig {
            retention: Duration::from_secs(2),
        },
        ..retention
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let db = t.reopen_when_released(short).await;
    let current = db.get_current_sequence().await.unwrap();
    assert_eq!(db.compact_change_log().await.unwrap(), current);
    assert_eq!(db.compact_change_log().await.unwrap(), 0, "nothing left");
    assert!(matches!(
        db.poll_changes(0).await,
        Err(Error::ChangesCompacted { oldest }) if oldest == current + 1
    ));
    let report = db.check().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.log_entries, 0);
    assert_eq!(report.experiences, 20);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_records_are_restored_exactly_once() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let id = db.record_experience(exp(c, 1)).await.unwrap();
    db.reinforce_experience(id).await.unwrap();
    db.archive_experience(id).await.unwrap();
    let original = db.get_experience(id).await.unwrap().unwrap();

    let other = db.create_collective("copy").await.unwrap();
    let mut copy = original.clone();
    copy.id = ExperienceId::new();
    copy.collective_id = other;
    let ids = db.import_experiences(vec![copy.clone()]).await.unwrap();
    assert_eq!(ids, vec![copy.id]);
    let back = db.get_experience(copy.id).await.unwrap().unwrap();
    assert_eq!(back, copy, "restored as given: times, counters, archived");
    let hits = db
        .search(
            other,
            &copy.embedding,
            SearchOptions {
                filter: SearchFilter {
                    exclude_archived: false,
                    ..SearchFilter::default()
                },
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, copy.id, "indexed");
    // Restored archived: out of default searches, counted as archived.
    let default = db
        .search(other, &copy.embedding, SearchOptions::default())
        .await
        .unwrap();
    assert!(default.is_empty(), "{default:?}");
    assert_eq!(
        db.get_collective_stats(other).await.unwrap().archived_count,
        1
    );

    // Again: the id exists, nothing is written.
    let before = db.get_current_sequence().await.unwrap();
    let again = db.import_experiences(vec![copy.clone()]).await;
    assert!(matches!(again, Err(Error::Validation(_))), "{again:?}");
    let mut bad = copy.clone();
    bad.id = ExperienceId::new();
    bad.last_reinforced = Timestamp(bad.timestamp.0 - 1);
    let err = db.import_experiences(vec![bad]).await.unwrap_err();
    assert!(err.to_string().contains("last_reinforced"), "{err}");
    let mut short = copy;
    short.id = ExperienceId::new();
    short.embedding.pop();
    assert!(db.import_experiences(vec![short]).await.is_err());
    assert_eq!(db.get_current_sequence().await.unwrap(), before);
    assert!(db.check().await.unwrap().is_ok());
}

/// Removes `key` from a `&[u8] → ()` table of the closed file at `path`,
/// and adds `extra`.
fn tamper(path: &std::path::Path, table: &str, remove: &[u8], extra: &[u8]) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(def).unwrap();
        if !remove.is_empty() {
            assert!(t.remove(remove).unwrap().is_some(), "{table} has the key");
        }
        if !extra.is_empty() {
            t.insert(extra, ()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_lookup_tables_are_found() {
    let t = TempDb::new();
    let db = t.open().await;
    let every = store_every_kind(&db).await;
    assert!(db.check().await.unwrap().is_ok());
    db.close().await.unwrap();

    // An experience missing from its collective's list, and a relation
    // lookup entry for a relation that does not exist.
    let c = every.collective.as_bytes().to_vec();
    let listed = [c.as_slice(), every.first.as_bytes()].concat();
    tamper(&t.path, "experiences_by_collective", &listed, &[]);
    let ghost = [
        every.first.as_bytes().as_slice(),
        RelationId::new().as_bytes(),
    ]
    .concat();
    tamper(&t.path, "relations_by_source", &[], &ghost);

    let db = t.reopen_when_released(config()).await;
    let report = db.check().await.unwrap();
    assert!(!report.is_ok());
    let all = report.problems.join("\n");
    assert!(
        all.contains("experiences missing from experiences_by_collective: 1"),
        "{all}"
    );
    assert!(
        all.contains("relations_by_source entries that disagree with the records: 1"),
        "{all}"
    );
    db.close().await.unwrap();
}

/// A change-log entry that refers to its row but that the row's key in
/// `experience_logged_at` no longer leads to (the row's next write would
/// leave the entry reading the newer record), and a key of no experience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_change_log_references_are_found() {
    let t = TempDb::new();
    let db = t.open().await;
    let every = store_every_kind(&db).await;
    assert!(db.check().await.unwrap().is_ok());
    db.close().await.unwrap();

    {
        let file = redb::Database::open(&t.path).unwrap();
        let txn = file.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&[u8], u64> =
                redb::TableDefinition::new("experience_logged_at");
            let mut logged_at = txn.open_table(def).unwrap();
            let first = every.first.as_bytes().as_slice();
            assert!(logged_at.remove(first).unwrap().is_some());
            logged_at
                .insert(ExperienceId::new().as_bytes().as_slice(), 1)
                .unwrap();
        }
        txn.commit().unwrap();
    }

    let db = t.reopen_when_released(config()).await;
    let all = db.check().await.unwrap().problems.join("\n");
    assert!(
        all.contains(
            "change-log entries referring to a row that experience_logged_at does not lead to: 1"
        ),
        "{all}"
    );
    assert!(
        all.contains("experience_logged_at entries of no stored experience: 1"),
        "{all}"
    );
    db.close().await.unwrap();
}
