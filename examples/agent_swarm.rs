//! `make demo`: a swarm of 32 agents sharing one PulseDB collective, in
//! plain sentences (the built-in all-MiniLM-L6-v2 embedder; feature
//! `embedder`, model from `make model`).
//!
//! Each agent works through lessons of its field. Before writing one down
//! it asks the shared memory, by meaning, whether someone already knows it:
//! if so it reinforces that experience instead of recording a duplicate.
//! Two observers watch the swarm's writes. At the end the demo asks the
//! memory questions in words it never saw and prints what the agents found.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pulsedb::{
    BuiltinEmbedder, Config, NewActivity, NewExperience, PulseHandle, SearchFilter, SearchOptions,
    WatchFilter,
};

const AGENTS: usize = 32;
const LESSONS_PER_AGENT: usize = 6;
/// A lesson this close to one already recorded is the same lesson.
const SAME_LESSON: f32 = 0.9;

/// What agents learn, by field.
const LESSONS: [(&str, [&str; 6]); 6] = [
    (
        "testing",
        [
            "retry the flaky integration test with one test thread",
            "seed the random generator so that test failures reproduce",
            "mock the clock instead of sleeping in unit tests",
            "run the slow end-to-end suite only on the main branch",
            "snapshot tests break when the machine's locale changes",
            "a test that passes alone but fails in the suite shares global state",
        ],
    ),
    (
        "build",
        [
            "cache the cargo target directory between CI runs",
            "pin the compiler version in rust-toolchain.toml",
            "link with lld to cut link times in half",
            "split the workspace so that small crates rebuild alone",
            "after switching branches, incremental builds need one clean",
            "compile the C++ dependency once and reuse the artefact",
        ],
    ),
    (
        "deploy",
        [
            "deploy to staging first and watch the error rate",
            "roll back to the previous image tag when health checks fail",
            "drain connections before restarting a server",
            "ship behind a feature flag and enable it later",
            "never deploy on a Friday afternoon",
            "keep the database migration separate from the code release",
        ],
    ),
    (
        "database",
        [
            "add an index on user_id: the orders query scanned the whole table",
            "the connection pool ran out under load, raise its size",
            "run migrations in a transaction so a failure leaves no half schema",
            "vacuum the large tables weekly to keep queries fast",
            "replicas lag a second behind, read your own writes from the primary",
            "batch the inserts: one transaction per row was the bottleneck",
        ],
    ),
    (
        "network",
        [
            "retry HTTP calls with exponential backoff and jitter",
            "set a timeout on every outgoing request",
            "DNS lookups were slow, cache them in the resolver",
            "TLS handshakes dominated latency, reuse connections",
            "the load balancer drops idle connections after sixty seconds",
            "compress large JSON responses before sending them",
        ],
    ),
    (
        "security",
        [
            "rotate the API keys every ninety days",
            "never write access tokens or passwords to the logs",
            "pin dependency versions and audit them for known vulnerabilities",
            "validate every input at the service boundary",
            "keep secrets in the vault, not in environment files",
            "give each agent its own credentials with the least privilege",
        ],
    ),
];

/// Questions in words the agents never used.
const QUESTIONS: [&str; 5] = [
    "flaky tests",
    "our builds take forever",
    "the database is overloaded",
    "how do we keep credentials safe?",
    "requests to other services hang",
];

#[tokio::main]
async fn main() -> pulsedb::Result<()> {
    let model = Instant::now();
    let embedder = Arc::new(
        tokio::task::spawn_blocking(BuiltinEmbedder::locate)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??,
    );
    let model = model.elapsed();
    let dir = std::env::temp_dir().join(format!("pulsedb-swarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db =
        PulseHandle::open_with_embedder(dir.join("swarm.db"), Config::default(), embedder).await?;
    let team = db.create_collective("swarm").await?;

    // Two observers: one sees every write, one only security lessons.
    let seen_all = Arc::new(AtomicU64::new(0));
    let seen_security = Arc::new(AtomicU64::new(0));
    let mut all = db.watch_experiences(team).await?;
    let security = WatchFilter {
        domains: Some(vec!["security".into()]),
        ..WatchFilter::default()
    };
    let mut security = db.watch_experiences_filtered(team, security).await?;
    let watchers = {
        let (a, s) = (seen_all.clone(), seen_security.clone());
        tokio::spawn(async move {
            let all = async {
                while all.next().await.is_some() {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            };
            let sec = async {
                while security.next().await.is_some() {
                    s.fetch_add(1, Ordering::Relaxed);
                }
            };
            tokio::join!(all, sec);
        })
    };

    let reinforced = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut agents = Vec::new();
    for agent in 0..AGENTS {
        let (db, reinforced) = (db.clone(), reinforced.clone());
        agents.push(tokio::spawn(async move {
            let name = format!("agent-{agent:02}");
            let (field, lessons) = LESSONS[agent % LESSONS.len()];
            db.register_activity(NewActivity {
                agent_id: name.clone(),
                collective_id: team,
                current_task: Some(format!("working on {field}")),
                context_summary: None,
            })
            .await?;
            for i in 0..LESSONS_PER_AGENT {
                let lesson = lessons[(agent / LESSONS.len() + i) % lessons.len()];
                // Ask the collective first: does someone already know this?
                let options = SearchOptions {
                    k: 1,
                    filter: SearchFilter {
                        domains: Some(vec![field.into()]),
                        ..SearchFilter::default()
                    },
                    weights: None,
                };
                let known = db.search_text(team, lesson, options).await?;
                match known.first() {
                    Some(hit) if hit.similarity >= SAME_LESSON => {
                        db.reinforce_experience(hit.experience.id).await?;
                        reinforced.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        db.record_experience(NewExperience {
                            collective_id: team,
                            content: lesson.to_string(),
                            embedding: None,
                            domain: vec![field.into()],
                            tags: BTreeMap::from([("agent".into(), name.clone())]),
                            source_agent: name.clone(),
                            ..NewExperience::default()
                        })
                        .await?;
                    }
                }
            }
            db.update_heartbeat(&name, team).await?;
            Ok::<(), pulsedb::Error>(())
        }));
    }
    for agent in agents {
        agent
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    let elapsed = started.elapsed();

    let stats = db.get_collective_stats(team).await?;
    let active = db.get_active_agents(team).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen_all.load(Ordering::Relaxed) < stats.experience_count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let steps = AGENTS * LESSONS_PER_AGENT;
    println!(
        "PulseDB agent-swarm demo (text, all-MiniLM-L6-v2 loaded in {} ms)",
        model.as_millis()
    );
    println!("  agents                 {AGENTS}, {} active", active.len());
    println!(
        "  lessons                {steps} learnt: {} new experiences, {} reinforced (already known)",
        stats.experience_count,
        reinforced.load(Ordering::Relaxed)
    );
    println!(
        "  wall time              {:.2} s ({:.0} steps/s, each a text search then a write)",
        elapsed.as_secs_f64(),
        steps as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  watch events seen      {} (all), {} (security only)",
        seen_all.load(Ordering::Relaxed),
        seen_security.load(Ordering::Relaxed)
    );
    println!("  asked in other words, the memory answers:");
    for question in QUESTIONS {
        let options = SearchOptions {
            k: 2,
            ..SearchOptions::default()
        };
        println!("    \"{question}\"");
        for hit in db.search_text(team, question, options).await? {
            let x = &hit.experience;
            println!(
                "      {:.2}  {} ({}, reinforced {}×)",
                hit.similarity, x.content, x.source_agent, x.applications
            );
        }
    }

    db.close().await?;
    let _ = watchers.await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
