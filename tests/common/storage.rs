//! Helpers for the storage-layer tests (`tests/storage_*.rs`), included with
//! `#[path = "common/storage.rs"] mod storage_common;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use pulsedb::storage::{Committed, Location, OpenOptions, RedbStorage, StorageWrite, WriteOp};
use pulsedb::{
    Activity, Collective, CollectiveId, DerivedInsight, Durability, Experience, ExperienceId,
    ExperienceRelation, ExperienceType, ExperienceUpdate, InsightId, InsightType, RelationId,
    RelationType, Timestamp,
};

/// Embedding dimension the storage tests use.
pub const DIM: usize = 4;

pub fn options(location: Location, dimension: usize) -> OpenOptions {
    OpenOptions {
        location,
        dimension,
        durability: Durability::Immediate,
        read_only: false,
        embedder_model: None,
        cache_size: None,
    }
}

pub fn memory() -> RedbStorage {
    RedbStorage::open(&options(Location::Memory, DIM)).unwrap()
}

pub fn file(path: &Path) -> RedbStorage {
    RedbStorage::open(&options(Location::File(path.to_path_buf()), DIM)).unwrap()
}

pub fn collective(name: &str) -> Collective {
    let now = Timestamp::now();
    Collective {
        id: CollectiveId::new(),
        name: name.into(),
        owner_id: None,
        embedding_dimension: DIM as u16,
        created_at: now,
        updated_at: now,
    }
}

/// A distinct, non-zero embedding derived from `seed`.
pub fn embedding(seed: u32) -> Vec<f32> {
    (0..DIM as u32)
        .map(|i| 1.0 + seed as f32 * 0.5 + i as f32 * 0.25)
        .collect()
}

pub fn experience(c: CollectiveId, content: &str) -> Experience {
    let now = Timestamp::now();
    Experience {
        id: ExperienceId::new(),
        collective_id: c,
        content: content.into(),
        embedding: embedding(content.len() as u32),
        experience_type: ExperienceType::default(),
        importance: 0.5,
        confidence: 0.5,
        applications: 0,
        domain: Vec::new(),
        tags: BTreeMap::new(),
        related_files: Vec::new(),
        source_agent: "agent".into(),
        source_task: None,
        metadata: serde_json::Map::new(),
        timestamp: now,
        last_reinforced: now,
        archived: false,
    }
}

pub fn relation(source: ExperienceId, target: ExperienceId, t: RelationType) -> ExperienceRelation {
    ExperienceRelation {
        id: RelationId::new(),
        source_id: source,
        target_id: target,
        relation_type: t,
        strength: 0.7,
        metadata: Some("because".into()),
        created_at: Timestamp::now(),
    }
}

pub fn insight(c: CollectiveId, sources: Vec<ExperienceId>) -> DerivedInsight {
    let now = Timestamp::now();
    DerivedInsight {
        id: InsightId::new(),
        collective_id: c,
        content: "an insight".into(),
        embedding: embedding(99),
        source_experience_ids: sources,
        insight_type: InsightType::Synthesis,
        confidence: 0.8,
        domain: vec!["rust".into()],
        created_at: now,
        updated_at: now,
    }
}

pub fn activity(c: CollectiveId, agent: &str, heartbeat: i64) -> Activity {
    Activity {
        agent_id: agent.into(),
        collective_id: c,
        current_task: Some("task".into()),
        context_summary: None,
        started_at: Timestamp(heartbeat),
        last_heartbeat: Timestamp(heartbeat),
    }
}

/// Applies one operation; panics on a fault, returns its own fate.
pub fn apply_one(s: &impl StorageWrite, op: WriteOp) -> pulsedb::Result<Committed> {
    let mut results = s.apply(vec![op]).expect("no storage fault");
    assert_eq!(results.len(), 1);
    results.pop().unwrap()
}

/// Applies one operation that must succeed.
pub fn ok(s: &impl StorageWrite, op: WriteOp) -> Committed {
    apply_one(s, op).expect("operation committed")
}

/// Creates and returns a collective.
pub fn new_collective(s: &impl StorageWrite, name: &str) -> CollectiveId {
    let c = collective(name);
    let id = c.id;
    ok(s, WriteOp::CreateCollective(c));
    id
}

/// Records one experience and returns it.
pub fn record(s: &impl StorageWrite, e: Experience) -> Experience {
    ok(s, WriteOp::RecordExperiences(vec![e.clone()]));
    e
}

/// The update that sets experience `id`'s importance.
pub fn set_importance(id: ExperienceId, importance: f32) -> WriteOp {
    WriteOp::UpdateExperience {
        id,
        update: ExperienceUpdate {
            importance: Some(importance),
            ..Default::default()
        },
    }
}

/// Records a plain experience in `c` and returns its id.
pub fn record_new(s: &impl StorageWrite, c: CollectiveId, content: &str) -> ExperienceId {
    record(s, experience(c, content)).id
}

/// Every sequence in the change log, in order.
pub fn log_sequences(s: &impl StorageWrite) -> Vec<u64> {
    s.changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(seq, _)| seq)
        .collect()
}

/// Asserts the log holds exactly `1..=n` with `n` the current sequence.
pub fn assert_gap_free(s: &impl StorageWrite) {
    let current = s.current_sequence().unwrap();
    let seqs = log_sequences(s);
    assert_eq!(
        seqs,
        (1..=current).collect::<Vec<_>>(),
        "change log has gaps"
    );
}
