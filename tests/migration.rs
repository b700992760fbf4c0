//! Files of an earlier schema open and are migrated. `fixtures/schema_v1.db`
//! was written by the schema-1 engine: collective "fixture" (owner "owner",
//! dimension 16) with 30 experiences `fixture {i}` (embedding `vector(i)`,
//! type Fact / Difficulty / Generic by `i % 3`, tag `topic = t{i % 3}`,
//! domain `domain{i % 2}`), of which 3 archived, 4 reinforced once and 5
//! deleted; a relation 0 → 1, an insight over 0 and 1, an activity.

mod common;

use std::time::Duration;

use common::*;
use pulsedb::*;
use redb::{ReadableDatabase, TableHandle};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema_v1.db");

/// A copy of the fixture to open (the checked-in file is never touched).
fn fixture_copy() -> TempDb {
    let t = TempDb::new();
    std::fs::copy(FIXTURE, &t.path).expect("copy fixture");
    t
}

fn lasting_activities() -> Config {
    let mut c = config();
    c.activity.stale_threshold = Duration::from_secs(100 * 365 * 24 * 3600);
    c
}

fn table_names(path: &std::path::Path) -> Vec<String> {
    let db = redb::ReadOnlyDatabase::open(path).expect("open with redb");
    let txn = db.begin_read().unwrap();
    txn.list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect()
}

const RETIRED: [&str; 3] = [
    "experiences_by_type",
    "experiences_by_tag",
    "experiences_archived",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_reads_a_schema_1_file_as_it_is() {
    let t = fixture_copy();
    let before = std::fs::read(&t.path).unwrap();
    let ro = t
        .open_with(Config {
            read_only: true,
            ..config()
        })
        .await;
    assert_eq!(ro.metadata().schema_version, 1);
    let c = ro.list_collectives().await.unwrap()[0].clone();
    assert_eq!(all_experiences(&ro, c.id).await.len(), 29);
    ro.close().await.unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_file_is_migrated_and_keeps_everything() {
    let t = fixture_copy();
    assert!(RETIRED
        .iter()
        .all(|r| table_names(&t.path).iter().any(|n| n == r)));
    let db = t.open_with(lasting_activities()).await;
    assert_eq!(db.metadata().schema_version, 5);

    let collectives = db.list_collectives().await.unwrap();
    assert_eq!(collectives.len(), 1);
    let c = &collectives[0];
    assert_eq!(
        (c.name.as_str(), c.owner_id.as_deref()),
        ("fixture", Some("owner"))
    );
    let exps = all_experiences(&db, c.id).await;
    assert_eq!(exps.len(), 29);
    for e in &exps {
        let i: u64 = e.content["fixture ".len()..].parse().unwrap();
        assert_ne!(i, 5, "the deleted one is gone");
        assert_eq!(e.embedding, vector(i, DIM));
        assert_eq!(e.tags["topic"], format!("t{}", i % 3));
        assert_eq!(e.domain, vec![format!("domain{}", i % 2)]);
        let want = match i % 3 {
            0 => ExperienceTypeTag::Fact,
            1 => ExperienceTypeTag::Difficulty,
            _ => ExperienceTypeTag::Generic,
        };
        assert_eq!(e.experience_type.tag(), want);
        assert_eq!(e.archived, i == 3);
        assert_eq!(e.applications, u32::from(i == 4));
    }

    // Search (the index is rebuilt from the rows) and filters work.
    let hits = db.search_similar(c.id, &vector(7, DIM), 1).await.unwrap();
    assert_eq!(hits[0].experience.content, "fixture 7");
    let filter = SearchFilter {
        tags_all: Some([("topic".to_string(), "t1".to_string())].into()),
        experience_types: Some(vec![ExperienceTypeTag::Difficulty]),
        ..SearchFilter::default()
    };
    let hits = db
        .search_similar_filtered(c.id, &vector(7, DIM), 20, filter)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.experience.tags["topic"] == "t1"));
    assert_eq!(db.list_relations(c.id, 10, 0).await.unwrap().len(), 1);
    let insights = db.get_insights(c.id, &vector(1000, DIM), 1).await.unwrap();
    assert_eq!(insights[0].0.content, "fixture insight");
    assert_eq!(db.get_active_agents(c.id).await.unwrap().len(), 1);
    let (events, position) = db.poll_changes(0).await.unwrap();
    assert!(!events.is_empty());
    assert!(events.windows(2).all(|w| w[0].sequence < w[1].sequence));

    // Writes go on where the log left off.
    let id = db
        .record_experience(exp_with(c.id, "after migration", vector(99, DIM)))
        .await
        .unwrap();
    let (events, _) = db.poll_changes(position).await.unwrap();
    assert_eq!(events.last().unwrap().experience_id, id);
    db.close().await.unwrap();

    // The tables nothing read are gone; a second open finds version 5.
    let names = table_names(&t.path);
    assert!(RETIRED.iter().all(|r| !names.iter().any(|n| n == r)));
    let db = t.open().await;
    assert_eq!(db.metadata().schema_version, 5);
    assert_eq!(all_experiences(&db, c.id).await.len(), 30);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_the_old_format_read_with_empty_metadata_and_take_new() {
    let t = fixture_copy();
    let db = t.open_with(lasting_activities()).await;
    let c = db.list_collectives().await.unwrap()[0].clone();
    let old = all_experiences(&db, c.id).await;
    assert!(old.iter().all(|x| x.metadata.is_empty()));
    // Old change-log entries decode too.
    let (events, _) = db.poll_changes(0).await.unwrap();
    assert!(events
        .iter()
        .filter_map(|e| e.experience.as_ref())
        .all(|x| x.metadata.is_empty()));

    // An old record rewritten by an update is stored in the new format.
    let meta = serde_json::json!({"migrated": 3})
        .as_object()
        .unwrap()
        .clone();
    let update = ExperienceUpdate {
        metadata: Some(meta.clone()),
        ..Default::default()
    };
    db.update_experience(old[0].id, update).await.unwrap();
    db.close().await.unwrap();
    let db = t.open_with(lasting_activities()).await;
    let got = db.get_experience(old[0].id).await.unwrap().unwrap();
    assert_eq!(got.metadata, meta);
    assert_eq!(got.content, old[0].content);
    let unchanged = db.get_experience(old[1].id).await.unwrap().unwrap();
    assert_eq!(unchanged, old[1]);
    db.close().await.unwrap();
}

/// Schema 4: every migrated row has a version (this instance, its write
/// time), so a migrated file replicates to a new node completely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_file_has_a_version_on_every_row_and_replicates_whole() {
    use pulsedb::replication::RemoteChange;
    let t = fixture_copy();
    let db = t.open_with(lasting_activities()).await;
    let c = db.list_collectives().await.unwrap()[0].clone();
    let exps = all_experiences(&db, c.id).await;

    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let reading = {
        let db = db.clone();
        tokio::spawn(async move { db.replication_snapshot(tx).await })
    };
    let mut state = Vec::new();
    while let Some(change) = rx.recv().await {
        state.push(change);
    }
    reading.await.unwrap().unwrap();
    let versioned_exps: Vec<_> = state
        .iter()
        .filter_map(|ch| match ch {
            RemoteChange::Experience {
                version,
                experience,
                ..
            } => Some((version, experience)),
            _ => None,
        })
        .collect();
    assert_eq!(versioned_exps.len(), exps.len());
    for (version, e) in &versioned_exps {
        assert_eq!(version.origin, db.instance_id());
        assert_eq!(version.hlc.millis as i64, e.timestamp.0);
    }
    let count = |f: fn(&RemoteChange) -> bool| state.iter().filter(|ch| f(ch)).count();
    assert_eq!(count(|ch| matches!(ch, RemoteChange::Collective { .. })), 1);
    assert_eq!(count(|ch| matches!(ch, RemoteChange::Relation { .. })), 1);
    assert_eq!(count(|ch| matches!(ch, RemoteChange::Insight { .. })), 1);

    // A new node given the migrated file's snapshot holds every row.
    let fresh = TempDb::new();
    let other = fresh.open().await;
    other
        .apply_remote_changes(db.instance_id(), state, 0)
        .await
        .unwrap();
    let mut copied = all_experiences(&other, c.id).await;
    let mut original = exps;
    copied.sort_by_key(|e| e.id);
    original.sort_by_key(|e| e.id);
    assert_eq!(copied, original);
}

/// `fixtures/schema_v4.db` was written by the schema-4 engine: collective
/// "fixture" (owner "owner", dimension 16) with 30 experiences `fixture {i}`
/// (embedding `vector(i)`, type Fact / Difficulty / Generic by `i % 3`, tag
/// `topic = t{i % 3}`, domain `domain{i % 2}`, metadata `{"i": i, "even":
/// true}` for even `i`); experience 10's importance set to 0.9, 3–5
/// archived, 6–9 reinforced once, 25–29 deleted; a relation 0 → 1, an
/// insight over 0 and 1, an activity. Every experience entry of its change
/// log holds a copy of the record.
const FIXTURE_V4: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema_v4.db");

/// An event's type and the record it carries: index, importance, archived,
/// applications.
type EventSummary = (WatchEventType, Option<(u64, f32, bool, u32)>);

fn content_index(e: &Experience) -> u64 {
    e.content["fixture ".len()..].parse().unwrap()
}

/// Schema 5: the change log of a schema-4 file reads as it did (each
/// entry the record after its write), and writes after the migration keep
/// it so, also for records whose last entry is an old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_4_file_is_migrated_and_its_log_reads_as_before() {
    let t = TempDb::new();
    std::fs::copy(FIXTURE_V4, &t.path).expect("copy fixture");
    {
        let mut read_only = lasting_activities();
        read_only.read_only = true;
        let ro = t.open_with(read_only).await;
        assert_eq!(ro.metadata().schema_version, 4);
        assert!(!ro.poll_changes(0).await.unwrap().0.is_empty());
        ro.close().await.unwrap();
    }
    let db = t.open_with(lasting_activities()).await;
    assert_eq!(db.metadata().schema_version, 5);
    let c = db.list_collectives().await.unwrap()[0].id;
    let exps = all_experiences(&db, c).await;
    assert_eq!(exps.len(), 25);
    for e in &exps {
        let i = content_index(e);
        assert_eq!(e.embedding, vector(i, DIM));
        assert_eq!(e.archived, (3..=5).contains(&i));
        assert_eq!(e.applications, u32::from((6..=9).contains(&i)));
        assert_eq!(e.importance, if i == 10 { 0.9 } else { 0.5 });
        assert_eq!(
            e.metadata.get("i").and_then(|v| v.as_u64()),
            i.is_multiple_of(2).then_some(i)
        );
    }

    // The migrated log: each event carries the record after its write.
    let (events, position) = db.poll_changes(0).await.unwrap();
    let summary = |events: &[WatchEvent]| -> Vec<EventSummary> {
        events
            .iter()
            .map(|ev| {
                let e = ev.experience.as_ref();
                let state = e.map(|e| (content_index(e), e.importance, e.archived, e.applications));
                (ev.event_type, state)
            })
            .collect()
    };
    let mut want: Vec<_> = (0..30)
        .map(|i| (WatchEventType::Created, Some((i, 0.5, false, 0))))
        .collect();
    want.push((WatchEventType::Updated, Some((10, 0.9, false, 0))));
    want.extend((3..=5).map(|i| (WatchEventType::Archived, Some((i, 0.5, true, 0)))));
    want.extend((6..=9).map(|i| (WatchEventType::Updated, Some((i, 0.5, false, 1)))));
    want.extend((25..30).map(|_| (WatchEventType::Deleted, None)));
    assert_eq!(summary(&events), want);

    // Writes after the migration: a record whose last entry is an old
    // copy, one reinforced again, a new one, a delete.
    let ten = exps.iter().find(|e| content_index(e) == 10).unwrap().id;
    let six = exps.iter().find(|e| content_index(e) == 6).unwrap().id;
    let zero = exps.iter().find(|e| content_index(e) == 0).unwrap().id;
    let update = ExperienceUpdate {
        importance: Some(0.3),
        ..Default::default()
    };
    db.update_experience(ten, update).await.unwrap();
    db.reinforce_experience(six).await.unwrap();
    let fresh = db
        .record_experience(exp_with(c, "fixture 99", vector(99, DIM)))
        .await
        .unwrap();
    db.update_experience(
        fresh,
        ExperienceUpdate {
            importance: Some(0.8),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    db.delete_experience(zero).await.unwrap();
    let (after, _) = db.poll_changes(position).await.unwrap();
    assert_eq!(
        summary(&after),
        vec![
            (WatchEventType::Updated, Some((10, 0.3, false, 0))),
            (WatchEventType::Updated, Some((6, 0.5, false, 2))),
            (WatchEventType::Created, Some((99, 0.5, false, 0))),
            (WatchEventType::Updated, Some((99, 0.8, false, 0))),
            (WatchEventType::Deleted, None),
        ]
    );
    // The old entries did not change.
    let (again, _) = db.poll_changes(0).await.unwrap();
    assert_eq!(summary(&again[..events.len()]), want);
    db.close().await.unwrap();

    let db = t.open().await;
    assert_eq!(db.metadata().schema_version, 5);
    assert_eq!(all_experiences(&db, c).await.len(), 25);
    let (reopened, _) = db.poll_changes(position).await.unwrap();
    assert_eq!(summary(&reopened), summary(&after));
    db.close().await.unwrap();
}
