//! The embedder phase (`--embedder`, feature `embedder`): the built-in
//! all-MiniLM-L6-v2 through the handle, on short generated sentences.
//!
//! - `embed_single_p50_ms` / `_p99_ms`: one caller, one sentence per call;
//! - `embed_batch_per_s`: sentences per second with 32 callers each
//!   embedding one sentence per call (the queue batches them);
//! - `record_text_conc_per_s`: 64 writers recording text experiences
//!   (embedded on the way in) into one collective.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pulsedb::{BuiltinEmbedder, Config, NewExperience, PulseHandle};

use crate::data::Rng;
use crate::measure::{peak_rss_mb, percentile, progress, us};
use crate::Args;

const SINGLE_CALLS: usize = 200;
const BATCH_CALLERS: usize = 32;
const BATCH_PER_CALLER: usize = 40;
const TEXT_WRITERS: usize = 64;
const TEXT_PER_WRITER: usize = 20;

/// A short sentence an agent might write (8–14 tokens).
fn sentence(rng: &mut Rng) -> String {
    const WHO: [&str; 6] = [
        "the agent",
        "a reviewer",
        "the planner",
        "agent 7",
        "the tester",
        "ci",
    ];
    const DID: [&str; 6] = [
        "retried", "cached", "fixed", "profiled", "pinned", "skipped",
    ];
    const WHAT: [&str; 8] = [
        "the flaky integration test",
        "the cargo target directory",
        "a slow database query",
        "the deploy script",
        "the failing lint step",
        "an expired api token",
        "the nightly benchmark",
        "a memory leak in the parser",
    ];
    const WHY: [&str; 6] = [
        "after the timeout",
        "to speed up builds",
        "before the release",
        "with one test thread",
        "when the cache missed",
        "on the staging cluster",
    ];
    format!(
        "{} {} {} {}",
        WHO[rng.below(WHO.len())],
        DID[rng.below(DID.len())],
        WHAT[rng.below(WHAT.len())],
        WHY[rng.below(WHY.len())]
    )
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

fn joined<T>(r: Result<pulsedb::Result<T>, tokio::task::JoinError>) -> pulsedb::Result<T> {
    r.map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Runs the embedder phase on its own database in `dir`.
pub(crate) async fn embedder_phase(
    dir: &Path,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut rng = Rng(a.seed ^ 0x7e47);
    progress("embedder: loading all-MiniLM-L6-v2");
    let t = Instant::now();
    let model = tokio::task::spawn_blocking(BuiltinEmbedder::locate)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    out.push(("embed_load_ms", ms(us(t.elapsed()))));
    let config = Config {
        durability: a.durability,
        ..Config::default()
    };
    let db = PulseHandle::open_with_embedder(dir.join("text.db"), config, Arc::new(model)).await?;
    for _ in 0..10 {
        db.embed(&[&sentence(&mut rng)]).await?;
    }

    progress("embedder: one caller, one sentence per call");
    let mut lat = Vec::with_capacity(SINGLE_CALLS);
    for _ in 0..SINGLE_CALLS {
        let s = sentence(&mut rng);
        let t = Instant::now();
        db.embed(&[&s]).await?;
        lat.push(us(t.elapsed()));
    }
    out.push(("embed_single_p50_ms", ms(percentile(&mut lat, 0.5))));
    out.push(("embed_single_p99_ms", ms(percentile(&mut lat, 0.99))));

    progress(&format!("embedder: {BATCH_CALLERS} concurrent callers"));
    let t = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..BATCH_CALLERS {
        let texts: Vec<String> = (0..BATCH_PER_CALLER).map(|_| sentence(&mut rng)).collect();
        let db = db.clone();
        callers.spawn(async move {
            for s in texts {
                db.embed(&[&s]).await?;
            }
            Ok::<(), pulsedb::Error>(())
        });
    }
    while let Some(r) = callers.join_next().await {
        joined(r)?;
    }
    let rate = (BATCH_CALLERS * BATCH_PER_CALLER) as f64 / t.elapsed().as_secs_f64();
    out.push(("embed_batch_per_s", format!("{rate:.1}")));

    progress(&format!("embedder: {TEXT_WRITERS} writers recording text"));
    let c = db.create_collective("text").await?;
    let t = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..TEXT_WRITERS {
        let texts: Vec<String> = (0..TEXT_PER_WRITER).map(|_| sentence(&mut rng)).collect();
        let db = db.clone();
        writers.spawn(async move {
            for content in texts {
                let new = NewExperience {
                    collective_id: c,
                    content,
                    embedding: None,
                    source_agent: format!("agent-{w}"),
                    ..NewExperience::default()
                };
                db.record_experience(new).await?;
            }
            Ok::<(), pulsedb::Error>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        joined(r)?;
    }
    let rate = (TEXT_WRITERS * TEXT_PER_WRITER) as f64 / t.elapsed().as_secs_f64();
    out.push(("record_text_conc_per_s", format!("{rate:.1}")));
    db.close().await?;
    out.push(("embed_peak_rss_mb", format!("{:.1}", peak_rss_mb())));
    Ok(out)
}
