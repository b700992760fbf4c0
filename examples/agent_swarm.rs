//! `make demo`: a swarm of 32 agents sharing one PulseDB collective.
//!
//! Each agent records what it learns (deterministic pseudo-embeddings around
//! a handful of topics), searches the shared memory with filters before
//! acting, reinforces what it reuses, and watches the others' writes. At the
//! end the demo prints a short report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pulsedb::{
    Config, ExperienceType, NewActivity, NewExperience, PulseHandle, SearchFilter, Severity,
};

const AGENTS: usize = 32;
const RECORDS_PER_AGENT: usize = 60;
const DIM: usize = 384;
const TOPICS: [&str; 6] = [
    "build", "testing", "deploy", "database", "network", "security",
];

/// A small deterministic generator (splitmix64), so every run is the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A pseudo-embedding near the centre of `topic`.
fn embedding(topic: usize, rng: &mut Rng) -> Vec<f32> {
    let mut centre = Rng(1000 + topic as u64);
    (0..DIM)
        .map(|_| (centre.unit() - 0.5) + 0.15 * (rng.unit() - 0.5))
        .collect()
}

#[tokio::main]
async fn main() -> pulsedb::Result<()> {
    let dir = std::env::temp_dir().join(format!("pulsedb-swarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = PulseHandle::open(dir.join("swarm.db"), Config::default()).await?;
    let team = db.create_collective("swarm").await?;

    // Two observers watch the swarm: one sees everything, one only security.
    let seen_all = Arc::new(AtomicU64::new(0));
    let seen_security = Arc::new(AtomicU64::new(0));
    let mut all = db.watch_experiences(team).await?;
    let mut security = db
        .watch_experiences_filtered(
            team,
            pulsedb::WatchFilter {
                domains: Some(vec!["security".into()]),
                ..Default::default()
            },
        )
        .await?;
    let watchers = {
        let (a, s) = (seen_all.clone(), seen_security.clone());
        tokio::spawn(async move {
            let all_task = async {
                while all.next().await.is_some() {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            };
            let sec_task = async {
                while security.next().await.is_some() {
                    s.fetch_add(1, Ordering::Relaxed);
                }
            };
            tokio::join!(all_task, sec_task);
        })
    };

    let reinforced = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut agents = Vec::new();
    for agent in 0..AGENTS {
        let db = db.clone();
        let reinforced = reinforced.clone();
        agents.push(tokio::spawn(async move {
            let name = format!("agent-{agent:02}");
            let mut rng = Rng(agent as u64);
            db.register_activity(NewActivity {
                agent_id: name.clone(),
                collective_id: team,
                current_task: Some(format!("task for {name}")),
                context_summary: None,
            })
            .await?;
            for i in 0..RECORDS_PER_AGENT {
                let topic = (agent + i) % TOPICS.len();
                let query = embedding(topic, &mut rng);
                // Look before acting: reuse what others learnt on this topic.
                let filter = SearchFilter {
                    domains: Some(vec![TOPICS[topic].into()]),
                    min_importance: Some(0.3),
                    ..SearchFilter::default()
                };
                let hits = db.search_similar_filtered(team, &query, 3, filter).await?;
                if let Some(best) = hits.first() {
                    if best.similarity > 0.9 && best.experience.source_agent != name {
                        db.reinforce_experience(best.experience.id).await?;
                        reinforced.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let experience_type = if i % 4 == 0 {
                    ExperienceType::Difficulty {
                        description: format!("{} step {i} was slow", TOPICS[topic]),
                        severity: Severity::Medium,
                    }
                } else {
                    ExperienceType::TechInsight {
                        technology: TOPICS[topic].into(),
                        insight: format!("lesson {i} of {name}"),
                    }
                };
                db.record_experience(NewExperience {
                    collective_id: team,
                    content: format!("{name}: lesson {i} about {}", TOPICS[topic]),
                    experience_type,
                    embedding: Some(embedding(topic, &mut rng)),
                    importance: 0.2 + 0.8 * rng.unit(),
                    confidence: 0.5 + 0.5 * rng.unit(),
                    domain: vec![TOPICS[topic].into()],
                    tags: BTreeMap::from([("agent".into(), name.clone())]),
                    source_agent: name.clone(),
                    ..NewExperience::default()
                })
                .await?;
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
    let probe = embedding(3, &mut Rng(7));
    let hits = db.search_similar(team, &probe, 3).await?;

    // Let the observers drain what is already buffered.
    let total = stats.experience_count;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen_all.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!("PulseDB agent-swarm demo");
    println!("  agents                 {AGENTS}");
    println!("  experiences recorded   {}", stats.experience_count);
    println!(
        "  wall time              {:.2} s ({:.0} records/s with a filtered search before each)",
        elapsed.as_secs_f64(),
        stats.experience_count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  reinforcements         {}",
        reinforced.load(Ordering::Relaxed)
    );
    println!("  active agents          {}", active.len());
    println!(
        "  watch events seen      {} (all), {} (security only)",
        seen_all.load(Ordering::Relaxed),
        seen_security.load(Ordering::Relaxed)
    );
    println!("  nearest to a 'database' query:");
    for hit in hits {
        println!("    {:.3}  {}", hit.similarity, hit.experience.content);
    }

    db.close().await?;
    let _ = watchers.await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
