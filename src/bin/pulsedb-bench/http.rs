//! The HTTP phase (`--http`, feature `bench-http`): the record and search
//! phases through `pulsedb serve`'s router on a loopback port, with reqwest
//! clients (keep-alive), on a database of its own:
//!
//! - `http_search_p50_us` / `_p99_us`: one client, the search phase's
//!   queries (k = K) as `POST /v1/collectives/{cid}/search` with vectors,
//!   over N experiences;
//! - `http_record_conc_per_s` / `_p50_us` / `_p99_us`: W clients recording
//!   N/4 more experiences one `POST .../experiences` each;
//! - `http_ping_p50_us`: `GET /healthz`, the round trip without the engine;
//! - `http_recall_at_k`: the searches' recall, to show the answers are the
//!   engine's;
//! - `http_record_conc_commit_writes`: writes per group commit meanwhile
//!   (`record_conc_commit_writes` is the in-process phase's).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pulsedb::server::{self, ServerOptions};
use pulsedb::{Config, ExperienceId, NewExperience, PulseHandle};
use serde_json::{json, Value};

use crate::data::{exact_top_k, item, recall, Data, Rng};
use crate::measure::{percentile, progress, us};
use crate::Args;

fn failed(e: impl std::fmt::Display) -> pulsedb::Error {
    std::io::Error::other(e.to_string()).into()
}

/// The wire form of a new experience (SERVER.md).
fn body(x: &NewExperience) -> Value {
    json!({
        "content": x.content,
        "embedding": x.embedding,
        "importance": x.importance,
        "domain": x.domain,
        "tags": x.tags,
        "source_agent": x.source_agent,
    })
}

pub(crate) async fn http_phase(
    dir: &Path,
    config: Config,
    a: &Args,
) -> pulsedb::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut rng = Rng(a.seed ^ 0x4854_5450);
    let data = Data::new(a.dim, &mut rng);
    let db = PulseHandle::open(dir.join("http.db"), config).await?;
    let c = db.create_collective("http").await?;

    progress(&format!("http: loading {} experiences", a.n));
    let mut stored: Vec<(ExperienceId, Vec<f32>, usize)> = Vec::with_capacity(a.n);
    let items: Vec<_> = (0..a.n).map(|i| item(&data, &mut rng, c, i)).collect();
    for chunk in items.chunks(1000) {
        let news: Vec<NewExperience> = chunk.iter().map(|it| it.new.clone()).collect();
        let ids = db.record_experiences(news).await?;
        for (id, it) in ids.into_iter().zip(chunk) {
            stored.push((id, it.new.embedding.clone().unwrap_or_default(), it.topic));
        }
    }

    // As in the in-process phases, search a settled index: the bulk load's
    // vectors are in the graph, not in its write buffer.
    while db.index_stats(c).await?.staged > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(
        listener,
        db.clone(),
        ServerOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.writers)
        .build()
        .map_err(failed)?;

    // The bare round trip: client, connection, router, no engine.
    let health = format!("{base}/healthz");
    let mut lat = Vec::with_capacity(a.queries);
    for _ in 0..a.queries {
        let s = Instant::now();
        client
            .get(&health)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .bytes()
            .await
            .map_err(failed)?;
        lat.push(us(s.elapsed()));
    }
    out.push(("http_ping_p50_us", percentile(&mut lat, 0.5).to_string()));

    progress(&format!("http: {} searches", a.queries));
    let queries: Vec<Vec<f32>> = (0..a.queries).map(|_| data.vector(&mut rng)).collect();
    let search = format!("{base}/v1/collectives/{c}/search");
    // Ground truth and id lookup before the clock, as in-process.
    let truths: Vec<Vec<ExperienceId>> = queries
        .iter()
        .map(|q| exact_top_k(&stored, q, a.k, None))
        .collect();
    let by_name: HashMap<String, ExperienceId> =
        stored.iter().map(|s| (s.0.to_string(), s.0)).collect();
    let mut lat = Vec::with_capacity(a.queries);
    let mut answers = Vec::with_capacity(a.queries);
    for q in &queries {
        let request = json!({ "vector": q, "k": a.k });
        let s = Instant::now();
        let hits: Vec<Value> = client
            .post(&search)
            .json(&request)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)?;
        lat.push(us(s.elapsed()));
        answers.push(hits);
    }
    let recall_sum: f64 = answers
        .iter()
        .zip(&truths)
        .map(|(hits, truth)| {
            let found: Vec<ExperienceId> = hits
                .iter()
                .filter_map(|h| by_name.get(h["experience"]["id"].as_str()?).copied())
                .collect();
            recall(&found, truth)
        })
        .sum();
    out.push(("http_search_p50_us", percentile(&mut lat, 0.5).to_string()));
    out.push(("http_search_p99_us", percentile(&mut lat, 0.99).to_string()));
    out.push((
        "http_recall_at_k",
        format!("{:.4}", recall_sum / a.queries as f64),
    ));

    let n_conc = a.n / 4;
    progress(&format!(
        "http: concurrent record of {n_conc} by {} clients",
        a.writers
    ));
    let record = Arc::new(format!("{base}/v1/collectives/{c}/experiences"));
    let mut per_client: Vec<Vec<Value>> = (0..a.writers).map(|_| Vec::new()).collect();
    for i in 0..n_conc {
        per_client[i % a.writers].push(body(&item(&data, &mut rng, c, a.n + i).new));
    }
    let before = db.engine_stats();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for bodies in per_client {
        let (client, record) = (client.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(bodies.len());
            for b in bodies {
                let s = Instant::now();
                client
                    .post(record.as_str())
                    .json(&b)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(failed)?;
                lat.push(us(s.elapsed()));
            }
            Ok::<_, pulsedb::Error>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(n_conc);
    for task in tasks {
        lat.extend(task.await.map_err(failed)??);
    }
    out.push((
        "http_record_conc_per_s",
        format!("{:.1}", n_conc as f64 / t.elapsed().as_secs_f64()),
    ));
    let after = db.engine_stats();
    out.push((
        "http_record_conc_commit_writes",
        format!(
            "{:.1}",
            (after.committed_writes - before.committed_writes) as f64
                / (after.commits - before.commits).max(1) as f64
        ),
    ));
    out.push((
        "http_record_conc_p50_us",
        percentile(&mut lat, 0.5).to_string(),
    ));
    out.push((
        "http_record_conc_p99_us",
        percentile(&mut lat, 0.99).to_string(),
    ));
    let count = db.get_collective_stats(c).await?.experience_count;
    if count != (a.n + n_conc) as u64 {
        return Err(failed(format!(
            "http: {count} experiences stored, expected {}",
            a.n + n_conc
        )));
    }

    let _ = stop.send(());
    // Serving ends by closing the database.
    serving.await.map_err(failed)??;
    Ok(out)
}
