//! `Durability::Eventual` under SIGKILL: a process crash loses at most the
//! writes acknowledged since the last durable flush, so every write
//! acknowledged more than `eventual_flush_interval` (plus the flush's own
//! time) before the kill survives, and the file reopens consistent.

mod common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use common::*;
use pulsedb::*;

const FLUSH: Duration = Duration::from_millis(200);
/// Slack for the flush itself (one fsync) and a late timer on a busy machine.
const SLACK: Duration = Duration::from_millis(300);
/// How long the child writes before it is killed.
const RUN: Duration = Duration::from_millis(1500);

/// Runs the child in eventual mode for [`RUN`], kills it, and returns each
/// acknowledged experience with the moment its line arrived, and the
/// moment of the kill.
fn run_and_kill(path: &std::path::Path, base: u64) -> (Vec<(Instant, ExperienceId)>, Instant) {
    let args = [base.to_string(), "8".into()];
    let env = [("PULSEDB_CRASH_FLUSH_MS", FLUSH.as_millis().to_string())];
    let (mut child, rx, reader) = spawn_crash_child(path, &args, &env);
    let started = Instant::now();
    let mut acked = Vec::new();
    let mut delete_sent = std::collections::HashSet::new();
    let mut take = |(at, line): (Instant, String)| {
        let mut parts = line.split(' ');
        let kind = parts.next();
        let mut id = || {
            let id = uuid::Uuid::from_str(parts.next().expect("id")).expect("experience id");
            ExperienceId::from_bytes(*id.as_bytes())
        };
        match kind {
            Some("E") => acked.push((at, id())),
            // The child deletes some of its records: those may be gone.
            Some("d") => {
                delete_sent.insert(id());
            }
            _ => {}
        }
    };
    while started.elapsed() < RUN {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(received) => take(received),
            Err(e) => panic!("crash child stopped printing: {e:?}"),
        }
    }
    let killed = Instant::now();
    let _ = child.kill();
    child.wait().expect("wait for child");
    reader.join().expect("reader thread");
    rx.try_iter().for_each(&mut take);
    acked.retain(|(_, id)| !delete_sent.contains(id));
    (acked, killed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_only_writes_acknowledged_within_the_flush_interval() {
    let t = TempDb::new();
    let config = Config {
        durability: Durability::Eventual,
        eventual_flush_interval: FLUSH,
        ..config()
    };
    for round in 0..3u64 {
        let (acked, killed) = run_and_kill(&t.path, round * 100_000_000);
        assert!(acked.len() > 100, "only {} writes in {RUN:?}", acked.len());
        let db = t.reopen_when_released(config.clone()).await;
        let c = db.list_collectives().await.unwrap()[0].id;
        let stored: std::collections::HashSet<ExperienceId> = all_experiences(&db, c)
            .await
            .into_iter()
            .map(|e| e.id)
            .collect();
        let window = FLUSH + SLACK;
        let mut lost_recent = 0;
        for (at, id) in &acked {
            if stored.contains(id) {
                continue;
            }
            let age = killed.duration_since(*at);
            assert!(
                age < window,
                "round {round}: a write acknowledged {age:?} before the kill was lost"
            );
            lost_recent += 1;
        }
        // The index agrees with what survived.
        let stats = db.index_stats(c).await.unwrap();
        assert_eq!(stats.indexed, stored.len());
        eprintln!(
            "round {round}: {} acknowledged, {lost_recent} lost (all within {window:?})",
            acked.len()
        );
        db.close().await.unwrap();
    }
}
