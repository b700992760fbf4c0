//! Crash-test child: writes to a PulseDB database from many tasks and
//! prints every acknowledged write to stdout the moment its call returns,
//! until it is killed (the parent sends SIGKILL at a random moment).
//!
//! Usage: `pulsedb-crash-child <database file> <seed base> [tasks] [hnsw threshold]`
//!
//! With `PULSEDB_CRASH_FLUSH_MS` set, the database runs with
//! `Durability::Eventual` and that flush interval.
//!
//! Output lines (ids are UUIDs, seeds decimal):
//!
//! | line | meaning |
//! |---|---|
//! | `C <collective>` | the collective written to (opened or created) |
//! | `E <experience> <seed>` | recorded: content `crash <seed>`, embedding `vector(seed)` |
//! | `R <relation> <source> <target>` | relation stored (`RelatedTo`) |
//! | `I <insight> <seed> <source>,<source>…` | insight stored: content `insight <seed>`, embedding `vector(seed ^ INSIGHT_SALT)` |
//! | `a <experience>` / `A <experience>` | archive sent / acknowledged |
//! | `d <experience>` / `D <experience>` | delete sent / acknowledged |
//!
//! The embedding dimension is 16. The vector generator must stay identical
//! to `vector` in `tests/common/mod.rs`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pulsedb::{
    Config, EmbeddingDimension, ExperienceId, InsightType, NewDerivedInsight, NewExperience,
    NewExperienceRelation, PulseHandle, RelationType,
};

const DIM: usize = 16;
const INSIGHT_SALT: u64 = 0x5A5A_0000_0000;
/// Stops by itself after this many operations per task, should the parent
/// never kill it.
const MAX_OPS_PER_TASK: u64 = 50_000;

type Out = Arc<Mutex<std::io::Stdout>>;

/// Prints one line and flushes; exits when the parent has gone away.
fn emit(out: &Out, line: String) {
    let Ok(mut o) = out.lock() else {
        std::process::exit(3);
    };
    if writeln!(o, "{line}").and_then(|_| o.flush()).is_err() {
        std::process::exit(0);
    }
}

fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x1234_5678);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    v
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("crash child: {what}: {e}");
    std::process::exit(2);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        fail(
            "usage",
            "pulsedb-crash-child <database file> <seed base> [tasks]",
        );
    }
    let path = &args[1];
    let base: u64 = args[2].parse().unwrap_or_else(|e| fail("seed base", e));
    let tasks: u64 = match args.get(3) {
        Some(t) => t.parse().unwrap_or_else(|e| fail("tasks", e)),
        None => 8,
    };
    let mut config = Config {
        embedding_dimension: EmbeddingDimension::Custom(DIM),
        ..Config::default()
    };
    if let Some(t) = args.get(4) {
        config.index.hnsw_threshold = t.parse().unwrap_or_else(|e| fail("hnsw threshold", e));
    }
    if let Ok(ms) = std::env::var("PULSEDB_CRASH_FLUSH_MS") {
        let ms: u64 = ms
            .parse()
            .unwrap_or_else(|e| fail("PULSEDB_CRASH_FLUSH_MS", e));
        config.durability = pulsedb::Durability::Eventual;
        config.eventual_flush_interval = std::time::Duration::from_millis(ms);
    }
    let db = PulseHandle::open(path, config)
        .await
        .unwrap_or_else(|e| fail("open", e));
    let existing = db
        .list_collectives()
        .await
        .unwrap_or_else(|e| fail("list collectives", e));
    let c = match existing.first() {
        Some(c) => c.id,
        None => db
            .create_collective("crash")
            .await
            .unwrap_or_else(|e| fail("create collective", e)),
    };
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    emit(&out, format!("C {c}"));

    let mut handles = Vec::new();
    for task in 0..tasks {
        let (db, out) = (db.clone(), out.clone());
        handles.push(tokio::spawn(async move {
            let mut mine: Vec<ExperienceId> = Vec::new();
            for j in 0..MAX_OPS_PER_TASK {
                let seed = base + task * 1_000_000 + j * 10;
                let new = |seed: u64| NewExperience {
                    collective_id: c,
                    content: format!("crash {seed}"),
                    embedding: Some(vector(seed, DIM)),
                    source_agent: format!("task-{task}"),
                    ..NewExperience::default()
                };
                if j % 6 == 5 {
                    let seeds = [seed, seed + 1, seed + 2];
                    let ids = db
                        .record_experiences(seeds.iter().map(|s| new(*s)).collect())
                        .await
                        .unwrap_or_else(|e| fail("record batch", e));
                    for (id, s) in ids.iter().zip(seeds) {
                        emit(&out, format!("E {id} {s}"));
                    }
                    mine.extend(ids);
                } else {
                    let id = db
                        .record_experience(new(seed))
                        .await
                        .unwrap_or_else(|e| fail("record", e));
                    emit(&out, format!("E {id} {seed}"));
                    mine.push(id);
                }
                let n = mine.len();
                if j % 3 == 2 && n >= 2 {
                    let (source_id, target_id) = (mine[n - 2], mine[n - 1]);
                    let r = db
                        .store_relation(NewExperienceRelation {
                            source_id,
                            target_id,
                            relation_type: RelationType::RelatedTo,
                            strength: 0.5,
                            metadata: Some(format!("{seed}")),
                        })
                        .await
                        .unwrap_or_else(|e| fail("relate", e));
                    emit(&out, format!("R {r} {source_id} {target_id}"));
                }
                if j % 7 == 6 && n >= 3 {
                    let sources = mine[n - 3..].to_vec();
                    let i = db
                        .store_insight(NewDerivedInsight {
                            collective_id: c,
                            content: format!("insight {seed}"),
                            embedding: Some(vector(seed ^ INSIGHT_SALT, DIM)),
                            source_experience_ids: sources.clone(),
                            insight_type: InsightType::Synthesis,
                            confidence: 0.5,
                            domain: Vec::new(),
                        })
                        .await
                        .unwrap_or_else(|e| fail("insight", e));
                    let list: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
                    emit(&out, format!("I {i} {seed} {}", list.join(",")));
                }
                if j % 5 == 4 && n >= 6 {
                    let victim = mine[n - 6];
                    emit(&out, format!("a {victim}"));
                    db.archive_experience(victim)
                        .await
                        .unwrap_or_else(|e| fail("archive", e));
                    emit(&out, format!("A {victim}"));
                }
                if j % 9 == 8 && n >= 5 {
                    let victim = mine.remove(n - 5);
                    emit(&out, format!("d {victim}"));
                    db.delete_experience(victim)
                        .await
                        .unwrap_or_else(|e| fail("delete", e));
                    emit(&out, format!("D {victim}"));
                }
            }
        }));
    }
    for h in handles {
        if let Err(e) = h.await {
            fail("task", e);
        }
    }
    if let Err(e) = db.close().await {
        fail("close", e);
    }
}
