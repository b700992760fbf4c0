//! Callers that give up (their future dropped by a timeout) do not leave
//! work queued beyond the in-flight bound: a call's permit travels with the
//! work it queued and is released when that work is done.
//!
//! Needs the `fault-injection` feature (`make test` enables all features).

#![cfg(feature = "fault-injection")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pulsedb::*;

const CALLERS: u64 = 10_000;
const MAX_IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_time_out_and_retry_leave_at_most_the_bound_queued() {
    let t = TempDb::new();
    let config = Config {
        max_in_flight: MAX_IN_FLIGHT,
        ..config()
    };
    let db = t.open_with(config.clone()).await;
    let c = db.create_collective("stalled").await.unwrap();
    // Nothing the callers queue can finish while the actor is busy.
    db.inject_collective_stall(c, Duration::from_secs(3))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for i in 0..CALLERS {
        let (db, stop, attempts, acked) =
            (db.clone(), stop.clone(), attempts.clone(), acked.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                attempts.fetch_add(1, Ordering::Relaxed);
                let call = db.record_experience(exp(c, i));
                match tokio::time::timeout(Duration::from_millis(1), call).await {
                    Ok(result) => {
                        result.unwrap();
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_gave_up) => tokio::task::yield_now().await,
                }
            }
        }));
    }
    // One second of callers giving up and trying again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        within(caller).await.unwrap();
    }
    let attempts = attempts.load(Ordering::Relaxed);
    assert!(attempts as u64 >= CALLERS, "only {attempts} attempts");

    // Close waits for every piece of queued work; what was stored is what
    // the acknowledged calls wrote plus the abandoned work that was queued.
    db.close().await.unwrap();
    let db = t.reopen_when_released(config).await;
    let stored = db.get_collective_stats(c).await.unwrap().experience_count as usize;
    let acked = acked.load(Ordering::Relaxed);
    assert!(
        stored <= acked + MAX_IN_FLIGHT,
        "{stored} records stored for {acked} acknowledged calls: \
         abandoned work was queued past the bound of {MAX_IN_FLIGHT}"
    );
    db.close().await.unwrap();
}
