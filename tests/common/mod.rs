//! Shared helpers for the integration tests: a temporary database with a
//! small dimension, deterministic pseudo-embeddings, a brute-force cosine
//! oracle, and timeouts so that no test can hang.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod faulty;

use pulsedb::*;

/// Dimension used by most tests.
pub const DIM: usize = 16;

/// A temporary directory holding one database file.
pub struct TempDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempDb {
    pub fn new() -> TempDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pulse.db");
        TempDb { dir, path }
    }

    /// The index snapshot directory of the database file.
    pub fn index_dir(&self) -> PathBuf {
        self.dir.path().join("pulse.db.idx")
    }

    pub async fn open(&self) -> PulseHandle {
        self.open_with(config()).await
    }

    pub async fn open_with(&self, config: Config) -> PulseHandle {
        within(PulseHandle::open(&self.path, config))
            .await
            .expect("open database")
    }

    /// Opens the file again, polling until the previous handle's actors have
    /// released it (shutdown after a drop is asynchronous).
    pub async fn reopen_when_released(&self, config: Config) -> PulseHandle {
        reopen_when_released(&self.path, config).await
    }
}

/// Polls `open` until it stops answering `DatabaseLocked` (at most 10 s).
pub async fn reopen_when_released(path: &Path, config: Config) -> PulseHandle {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match PulseHandle::open(path, config.clone()).await {
            Ok(db) => return db,
            Err(Error::DatabaseLocked) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("reopen failed: {e:?}"),
        }
    }
}

/// The default test configuration: dimension [`DIM`].
pub fn config() -> Config {
    config_dim(DIM)
}

pub fn config_dim(dim: usize) -> Config {
    Config {
        embedding_dimension: EmbeddingDimension::Custom(dim),
        ..Config::default()
    }
}

/// An in-memory database of dimension [`DIM`].
pub async fn memory_db() -> PulseHandle {
    within(PulseHandle::open_in_memory(config()))
        .await
        .expect("open in memory")
}

/// Fails the test when `fut` takes more than 30 s.
pub async fn within<F: Future>(fut: F) -> F::Output {
    within_secs(30, fut).await
}

pub async fn within_secs<F: Future>(secs: u64, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("operation timed out")
}

/// Polls `check` every 5 ms until it returns true (at most 10 s).
pub async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A deterministic pseudo-random vector in `[-1, 1]^dim` (never all zero).
pub fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x1234_5678);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            // splitmix64
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

/// [`vector`] of dimension [`DIM`].
pub fn vec16(seed: u64) -> Vec<f32> {
    vector(seed, DIM)
}

/// A unit vector along axis `i`.
pub fn axis(i: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Exact top-`k` by cosine, best first.
pub fn oracle<Id: Copy>(items: &[(Id, Vec<f32>)], query: &[f32], k: usize) -> Vec<(Id, f32)> {
    let mut scored: Vec<(Id, f32)> = items
        .iter()
        .map(|(id, v)| (*id, cosine(v, query)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

/// A valid experience of collective `c` with embedding `vector(seed)`.
pub fn exp(c: CollectiveId, seed: u64) -> NewExperience {
    NewExperience {
        collective_id: c,
        content: format!("experience {seed}"),
        embedding: Some(vec16(seed)),
        ..NewExperience::default()
    }
}

/// A valid experience with an explicit embedding.
pub fn exp_with(c: CollectiveId, content: &str, embedding: Vec<f32>) -> NewExperience {
    NewExperience {
        collective_id: c,
        content: content.to_string(),
        embedding: Some(embedding),
        ..NewExperience::default()
    }
}

/// Asserts `r` is a validation error.
#[track_caller]
pub fn assert_validation<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::Validation(_)) => {}
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// Asserts `r` is `NotFound`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(e) if e.is_not_found() => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_closed<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::Closed) => {}
        other => panic!("expected Error::Closed, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_read_only<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::ReadOnly) => {}
        other => panic!("expected Error::ReadOnly, got {other:?}"),
    }
}

/// A small deterministic embedder: hashes character trigrams into `dim`
/// buckets, so similar texts get similar vectors.
#[derive(Debug)]
pub struct TestEmbedder {
    pub dim: usize,
    pub model: String,
}

impl TestEmbedder {
    pub fn new(dim: usize, model: &str) -> TestEmbedder {
        TestEmbedder {
            dim,
            model: model.to_string(),
        }
    }

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        let bytes = text.as_bytes();
        for w in bytes.windows(3.min(bytes.len()).max(1)) {
            let h = w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
            v[(h % self.dim as u64) as usize] += 1.0;
        }
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        v
    }
}

impl Embedder for TestEmbedder {
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }

    fn dimension(&self) -> usize {
        self.dim
    }

    fn model_id(&self) -> &str {
        &self.model
    }
}

/// Every experience of collective `c`, oldest first, a page at a time.
pub async fn all_experiences(db: &PulseHandle, c: CollectiveId) -> Vec<Experience> {
    let mut all = Vec::new();
    loop {
        let page = db.list_experiences(c, 1000, all.len()).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Opens `t` with a [`TestEmbedder`] of dimension [`DIM`].
pub async fn open_with_test_embedder(t: &TempDb) -> (PulseHandle, std::sync::Arc<TestEmbedder>) {
    let embedder = std::sync::Arc::new(TestEmbedder::new(DIM, "test-model-v1"));
    let db = within(PulseHandle::open_with_embedder(
        &t.path,
        config(),
        embedder.clone(),
    ))
    .await
    .expect("open with embedder");
    (db, embedder)
}

/// One stored entity of every kind, for tests that exercise the whole API.
pub struct EveryKind {
    pub collective: CollectiveId,
    pub first: pulsedb::ExperienceId,
    pub second: pulsedb::ExperienceId,
    pub relation: pulsedb::RelationId,
    pub insight: pulsedb::InsightId,
}

/// Stores two experiences, a relation between them, an insight and an
/// activity of agent `"agent"` in a new collective owned by `"owner"`.
pub async fn store_every_kind(db: &PulseHandle) -> EveryKind {
    let c = db.create_collective_with_owner("c", "owner").await.unwrap();
    let a = db.record_experience(exp(c, 1)).await.unwrap();
    let b = db.record_experience(exp(c, 2)).await.unwrap();
    let relation = db
        .store_relation(pulsedb::NewExperienceRelation {
            source_id: a,
            target_id: b,
            relation_type: pulsedb::RelationType::Supports,
            strength: 0.5,
            metadata: None,
        })
        .await
        .unwrap();
    let insight = db
        .store_insight(pulsedb::NewDerivedInsight {
            collective_id: c,
            content: "insight".into(),
            embedding: Some(vec16(3)),
            source_experience_ids: vec![a],
            insight_type: pulsedb::InsightType::Pattern,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    db.register_activity(pulsedb::NewActivity {
        agent_id: "agent".into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    })
    .await
    .unwrap();
    EveryKind {
        collective: c,
        first: a,
        second: b,
        relation,
        insight,
    }
}

/// A bare activity of `agent` in `c`.
pub fn activity(agent: &str, c: CollectiveId) -> NewActivity {
    NewActivity {
        agent_id: agent.into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    }
}

/// Starts the crash-test child (`pulsedb-crash-child`) on `path` with
/// `args` after the path, and a thread that forwards each line it prints,
/// with the moment it arrived. The receiver ends when the child's output
/// does.
pub fn spawn_crash_child(
    path: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<(std::time::Instant, String)>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pulsedb-crash-child"));
    command
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn crash child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((std::time::Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx, reader)
}
