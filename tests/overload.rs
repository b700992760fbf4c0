//! Overload: 10 000 concurrent callers against one collective all complete,
//! the engine's memory stays bounded while they wait, and `try_` calls see
//! `Error::Overloaded` when the in-flight bound is reached.
//!
//! One test per binary: peak memory (`VmHWM`) is per process.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use pulsedb::*;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// Callers, the size of each record, the bound on requests in flight.
const CALLERS: u64 = 10_000;
const CONTENT: usize = 256;
const MAX_IN_FLIGHT: usize = 256;
/// Peak memory growth allowed, per caller. Each waiting caller's task holds
/// its own future (about 5 KiB: the API's state machines) and record; the
/// engine itself buffers at most `MAX_IN_FLIGHT` requests, and the 6 000
/// records written stay in the in-memory database (with their change-log
/// copies and redb's page cache).
const PEAK_GROWTH_PER_CALLER_KIB: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_complete_in_bounded_memory() {
    let db = PulseHandle::open_in_memory(Config {
        max_in_flight: MAX_IN_FLIGHT,
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    // Warm up the runtime, the actors and the index before measuring.
    for i in 0..100u64 {
        db.record_experience(exp(c, 1_000_000 + i)).await.unwrap();
    }
    let future_bytes = std::mem::size_of_val(&db.record_experience(exp(c, 0)));
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");

    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(CALLERS as usize);
    for i in 0..CALLERS {
        let (db, started) = (db.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            started.fetch_add(1, Ordering::Relaxed);
            match i % 5 {
                0 => db.search_similar(c, &vec16(i), 5).await.map(|_| None),
                1 => db.get_recent_experiences(c, 10).await.map(|_| None),
                _ => db
                    .record_experience(NewExperience {
                        content: {
                            let mut s = format!("{i}:").repeat(CONTENT);
                            s.truncate(CONTENT);
                            s
                        },
                        ..exp(c, i)
                    })
                    .await
                    .map(|id| Some((i, id))),
            }
        }));
    }
    // While they wait, the bound is reached: try_ calls are refused (and
    // write nothing), never queued.
    wait_until(|| {
        let started = started.clone();
        async move { started.load(Ordering::Relaxed) >= CALLERS as usize / 2 }
    })
    .await;
    let mut overloaded = 0;
    let mut admitted = 0;
    for i in 0..200u64 {
        match db.try_record_experience(exp(c, 2_000_000 + i)).await {
            Err(Error::Overloaded) => overloaded += 1,
            Ok(_) => admitted += 1,
            Err(e) => panic!("try_record_experience: {e:?}"),
        }
    }
    assert!(
        overloaded > 0,
        "no Overloaded with {CALLERS} callers waiting"
    );

    let mut acked = Vec::new();
    within_secs(120, async {
        for t in tasks {
            if let Some(a) = t.await.unwrap().expect("a waiting caller failed") {
                acked.push(a);
            }
        }
    })
    .await;
    let hwm_after = status_kib("VmHWM:");
    let rss_after = status_kib("VmRSS:");
    let growth = hwm_after.saturating_sub(hwm_before.max(rss_before));
    eprintln!(
        "overload: {CALLERS} callers, max_in_flight {MAX_IN_FLIGHT}: VmRSS {rss_before} KiB -> \
         {rss_after} KiB, VmHWM {hwm_before} KiB -> {hwm_after} KiB, peak growth {growth} KiB \
         (bound {} KiB); record_experience future {future_bytes} bytes; try_ calls: {overloaded} Overloaded, {admitted} admitted",
        PEAK_GROWTH_PER_CALLER_KIB * CALLERS
    );
    assert!(
        growth < PEAK_GROWTH_PER_CALLER_KIB * CALLERS,
        "peak memory grew by {growth} KiB under overload"
    );

    // Every caller completed, every acknowledged write is there.
    let writes = CALLERS * 3 / 5;
    assert_eq!(acked.len() as u64, writes);
    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!(stats.experience_count, 100 + writes + admitted);
    for (i, id) in acked.iter().step_by(97) {
        assert_eq!(
            db.search_similar(c, &vec16(*i), 1).await.unwrap()[0]
                .experience
                .id,
            *id
        );
    }
    // Once idle, a try_ call is admitted again.
    db.try_record_experience(exp(c, 3_000_000)).await.unwrap();
    db.close().await.unwrap();
}
