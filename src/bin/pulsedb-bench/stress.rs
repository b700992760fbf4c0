//! The phases that change the collective under load: the delete storm and
//! searches under writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsedb::{ExperienceId, NewExperience, PulseHandle};

use crate::measure::{percentile, progress, us};
use crate::Args;

/// Share of the collective the delete storm removes.
const STORM_SHARE: usize = 30;
/// Deletes in flight during the storm.
const STORM_IN_FLIGHT: usize = 32;

/// The delete storm: `searchers` clients search in a loop while 30 % of the
/// collective is deleted, [`STORM_IN_FLIGHT`] deletes at a time, and go on
/// until the graph rebuild the deletes cause has finished. Reports the
/// searches' p50/p99, how many came back with fewer than k results (all
/// should have k), and the longest single search or delete.
pub(crate) async fn delete_storm(
    db: &PulseHandle,
    c: pulsedb::CollectiveId,
    stored: &[(ExperienceId, Vec<f32>, usize)],
    queries: Arc<Vec<Vec<f32>>>,
    searchers: usize,
    k: usize,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let victims: Vec<ExperienceId> = stored
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 < STORM_SHARE)
        .map(|(_, (id, _, _))| *id)
        .collect();
    // The collective loads on first use after the reopen: load it before
    // the phase, which measures deletes and searches, not the load.
    db.search_similar(c, &queries[0], k).await?;
    progress(&format!(
        "delete storm: {} deletes while {searchers} clients search",
        victims.len()
    ));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for s in 0..searchers {
        let (db, queries, done) = (db.clone(), queries.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut short) = (Vec::new(), 0usize);
            let mut i = s;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let hits = db.search_similar(c, &queries[i % queries.len()], k).await?;
                lat.push(us(t.elapsed()));
                // Far more than k records match throughout.
                short += usize::from(hits.len() < k);
                i += searchers;
            }
            Ok::<_, pulsedb::Error>((lat, short))
        }));
    }
    let t = Instant::now();
    let mut delete_lat = Vec::with_capacity(victims.len());
    for chunk in victims.chunks(STORM_IN_FLIGHT) {
        let mut deletes = tokio::task::JoinSet::new();
        for id in chunk {
            let (db, id) = (db.clone(), *id);
            deletes.spawn(async move {
                let t = Instant::now();
                db.delete_experience(id).await.map(|()| us(t.elapsed()))
            });
        }
        while let Some(r) = deletes.join_next().await {
            delete_lat.push(r.map_err(|e| std::io::Error::other(e.to_string()))??);
        }
    }
    let deleting = t.elapsed();
    // The phase lasts until the rebuild the deletes set off has been swapped
    // in (tombstones back within the ratio), so its stall is measured too.
    let ratio = db.config().index.tombstone_ratio.min(0.99);
    loop {
        let stats = db.index_stats(c).await?;
        let rows = (stats.indexed + stats.tombstones).max(1);
        if stats.tombstones as f64 <= f64::from(ratio) * rows as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let phase = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut search_lat, mut short) = (Vec::new(), 0);
    for task in tasks {
        let (lat, n) = task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        search_lat.extend(lat);
        short += n;
    }
    let longest_search = search_lat.iter().copied().max().unwrap_or(0);
    let longest_delete = delete_lat.iter().copied().max().unwrap_or(0);
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    Ok(vec![
        (
            "delete_per_s",
            format!("{:.1}", victims.len() as f64 / deleting.as_secs_f64()),
        ),
        ("delete_phase_ms", phase.as_millis().to_string()),
        ("delete_searches", search_lat.len().to_string()),
        ("delete_short_searches", short.to_string()),
        (
            "delete_search_p50_us",
            percentile(&mut search_lat, 0.5).to_string(),
        ),
        (
            "delete_search_p99_us",
            percentile(&mut search_lat, 0.99).to_string(),
        ),
        (
            "delete_p99_us",
            percentile(&mut delete_lat, 0.99).to_string(),
        ),
        (
            "delete_max_stall_ms",
            ms(longest_search.max(longest_delete)),
        ),
        ("delete_max_search_ms", ms(longest_search)),
        ("delete_max_delete_ms", ms(longest_delete)),
    ])
}

/// Searches under writes: `searchers` clients search in a loop while
/// `writers` tasks record `items`. Reports the searches' p50/p99.
pub(crate) async fn search_under_write(
    db: &PulseHandle,
    items: Vec<NewExperience>,
    queries: Arc<Vec<Vec<f32>>>,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let Some(c) = items.first().map(|e| e.collective_id) else {
        return Ok(Vec::new());
    };
    progress(&format!(
        "{} searchers while {} writers record {}",
        a.searchers,
        a.writers,
        items.len()
    ));
    let count = items.len();
    let mut per_writer: Vec<Vec<NewExperience>> = (0..a.writers).map(|_| Vec::new()).collect();
    for (i, it) in items.into_iter().enumerate() {
        per_writer[i % a.writers].push(it);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut searchers = Vec::new();
    for s in 0..a.searchers {
        let (db, queries, done, k, step) =
            (db.clone(), queries.clone(), done.clone(), a.k, a.searchers);
        searchers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = s;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                db.search_similar(c, &queries[i % queries.len()], k).await?;
                lat.push(us(t.elapsed()));
                i += step;
            }
            Ok::<_, pulsedb::Error>(lat)
        }));
    }
    let t = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for batch in per_writer {
        let db = db.clone();
        writers.spawn(async move {
            for new in batch {
                db.record_experience(new).await?;
            }
            Ok::<(), pulsedb::Error>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r.map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    let writing = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = Vec::new();
    for task in searchers {
        lat.extend(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        );
    }
    Ok(vec![
        (
            "under_write_record_per_s",
            format!("{:.1}", count as f64 / writing.as_secs_f64()),
        ),
        ("under_write_searches", lat.len().to_string()),
        (
            "search_under_write_p50_us",
            percentile(&mut lat, 0.5).to_string(),
        ),
        (
            "search_under_write_p99_us",
            percentile(&mut lat, 0.99).to_string(),
        ),
    ])
}
