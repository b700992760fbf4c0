//! Change-log retention through the handle: entries older than
//! `change_log.retention` are compacted away automatically, and polling from
//! a compacted position is `Error::ChangesCompacted`, never a silent gap.

mod common;

use std::time::Duration;

use common::*;
use pulsedb::*;

fn short_retention() -> Config {
    Config {
        change_log: ChangeLogConfig {
            retention: Duration::from_millis(300),
        },
        ..config()
    }
}

/// Whether every entry up to `through` has been compacted away.
async fn compacted(db: &PulseHandle, through: u64) -> bool {
    match db.poll_changes(0).await {
        Err(Error::ChangesCompacted { oldest }) => oldest > through,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_past_its_retention() {
    let t = TempDb::new();
    let db = t.open_with(short_retention()).await;
    let c = db.create_collective("c").await.unwrap();
    for i in 0..5 {
        db.record_experience(exp(c, i)).await.unwrap();
    }
    let (events, position) = db.poll_changes(0).await.unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(position, 6);

    // Compaction runs every quarter of the retention and removes what
    // expired: the whole log, once its last entry is older than 300 ms.
    wait_until(|| compacted(&db, position)).await;
    match db.poll_changes(0).await {
        Err(Error::ChangesCompacted { oldest }) => assert_eq!(oldest, position + 1),
        other => panic!("expected ChangesCompacted, got {other:?}"),
    }
    // From the position already taken nothing is missing.
    let id = db.record_experience(exp(c, 9)).await.unwrap();
    let (events, _) = db.poll_changes(position).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].experience_id, id);
    assert_eq!(events[0].sequence, position + 1);
    db.close().await.unwrap();

    // The compacted position is remembered across reopen.
    let db = t.reopen_when_released(config()).await;
    assert!(compacted(&db, position).await);
    assert!(db.poll_changes(position).await.is_ok());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retention_keeps_everything_and_read_only_compacts_nothing() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    db.record_experience(exp(c, 1)).await.unwrap();
    db.close().await.unwrap();
    // Read-only: no compaction, whatever the retention.
    let ro = t
        .open_with(Config {
            read_only: true,
            ..short_retention()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ro.poll_changes(0).await.unwrap().0.len(), 1);
    ro.close().await.unwrap();
    // The default retention (7 days) keeps it too.
    let db = t.open().await;
    assert_eq!(db.poll_changes(0).await.unwrap().0.len(), 1);
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_zero_retention_is_refused() {
    let bad = Config {
        change_log: ChangeLogConfig {
            retention: Duration::ZERO,
        },
        ..config()
    };
    match PulseHandle::open_in_memory(bad).await {
        Err(Error::Validation(ValidationError::InvalidField { field, .. })) => {
            assert_eq!(field, "change_log.retention")
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}
