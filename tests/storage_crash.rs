//! Crashes and I/O faults, through redb's `StorageBackend` trait: a backend
//! that keeps the bytes written (`live`) apart from the bytes last made
//! durable (`synced`), and that fails writes, syncs or resizes after a
//! number of calls. A crash of the machine is a reopen over `synced`; a crash
//! of the process is a reopen over `live`.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

#[path = "common/faulty.rs"]
mod faulty;
#[path = "common/storage.rs"]
mod storage_common;

use faulty::{Disk, Fault, FaultyBackend};
use pulsedb::storage::{ChangeKind, Location, RedbStorage, StorageRead, StorageWrite, WriteOp};
use pulsedb::{CollectiveId, Durability, Experience, ExperienceId, RelationType};
use storage_common::*;

fn open_over(backend: FaultyBackend, durability: Durability) -> pulsedb::Result<RedbStorage> {
    let db = redb::Database::builder()
        .create_with_backend(backend)
        .map_err(|e| pulsedb::Error::Storage(pulsedb::storage::StorageError::Database(e)))?;
    let mut o = options(Location::Memory, DIM);
    o.durability = durability;
    RedbStorage::from_database(db, &o)
}

/// What the read API shows, for comparison.
#[derive(Debug, PartialEq, Clone)]
struct State {
    sequence: u64,
    log: Vec<(u64, ChangeKind, [u8; 16])>,
    collectives: Vec<pulsedb::Collective>,
    experiences: Vec<Experience>,
    relations: Vec<pulsedb::ExperienceRelation>,
}

fn state(s: &RedbStorage) -> pulsedb::Result<State> {
    let collectives = s.list_collectives()?;
    let mut experiences = Vec::new();
    let mut relations = Vec::new();
    for c in &collectives {
        let ids = s.list_experience_ids(c.id, usize::MAX, 0)?;
        experiences.extend(s.get_experiences(&ids)?);
        relations.extend(s.list_relations(c.id, usize::MAX, 0)?);
    }
    Ok(State {
        sequence: s.current_sequence()?,
        log: s
            .changes_since(0, usize::MAX)?
            .into_iter()
            .map(|(q, c)| (q, c.kind, c.entity_id))
            .collect(),
        collectives,
        experiences,
        relations,
    })
}

/// A database image holding one collective with a few experiences.
fn base_image() -> (Disk, CollectiveId, Vec<ExperienceId>) {
    let backend = FaultyBackend::new(Disk::default());
    let s = open_over(backend.clone(), Durability::Immediate).unwrap();
    let c = new_collective(&s, "base");
    let ids: Vec<ExperienceId> = (0..5)
        .map(|i| record_new(&s, c, &format!("base {i}")))
        .collect();
    ok(
        &s,
        WriteOp::StoreRelation(relation(ids[0], ids[1], RelationType::Supports)),
    );
    drop(s);
    let image = backend.process_kill_image();
    (image, c, ids)
}

/// A batch big enough to grow the file (so it resizes as well as writes).
fn big_batch(c: CollectiveId, ids: &[ExperienceId]) -> Vec<WriteOp> {
    let exps: Vec<Experience> = (0..20)
        .map(|i| {
            let mut e = experience(c, &format!("new {i}"));
            e.content = format!("{i}:").repeat(2_000);
            e
        })
        .collect();
    vec![
        WriteOp::RecordExperiences(exps.clone()),
        WriteOp::StoreRelation(relation(exps[0].id, ids[2], RelationType::Implies)),
        WriteOp::DeleteExperience(ids[4]),
        WriteOp::CreateCollective(collective("another")),
    ]
}

fn assert_consistent(st: &State) {
    let seqs: Vec<u64> = st.log.iter().map(|(q, _, _)| *q).collect();
    assert_eq!(seqs, (1..=st.sequence).collect::<Vec<_>>(), "log has gaps");
}

/// Injects `fault` after `calls` calls while `batch` commits over a copy of
/// `image`, then checks the handle and both crash images. Returns whether
/// the batch was acknowledged.
fn run_case(
    image: &Disk,
    batch: &[WriteOp],
    fault: Fault,
    calls: i64,
    before: &State,
    after: &State,
) -> bool {
    let backend = FaultyBackend::new(image.clone());
    let s = open_over(backend.clone(), Durability::Immediate).unwrap();
    assert_eq!(&state(&s).unwrap(), before);
    match fault {
        Fault::Write => backend.faults.write.arm(calls),
        Fault::Sync => backend.faults.sync.arm(calls),
        Fault::SetLen => backend.faults.set_len.arm(calls),
    }
    let acknowledged = match s.apply(batch.to_vec()) {
        Ok(fates) => {
            assert!(fates.iter().all(|f| f.is_ok()), "{fates:?}");
            true
        }
        Err(e) => {
            assert!(matches!(e, pulsedb::Error::Storage(_)), "{e:?}");
            false
        }
    };
    // The same handle never shows a failed batch; it may refuse to read
    // after an I/O error, but never panics.
    if let Ok(seen) = state(&s) {
        if acknowledged {
            assert_eq!(&seen, after, "{fault:?} after {calls}: handle");
        } else {
            assert_eq!(
                &seen, before,
                "{fault:?} after {calls}: handle shows a failed batch"
            );
        }
    }
    let power_cut = backend.power_cut_image();
    let killed = backend.process_kill_image();
    drop(s);

    for (what, img) in [("power cut", power_cut), ("process kill", killed)] {
        let reopened = open_over(FaultyBackend::new(img), Durability::Immediate)
            .unwrap_or_else(|e| panic!("{fault:?} after {calls}, {what}: reopen failed: {e}"));
        let st = state(&reopened).unwrap();
        assert_consistent(&st);
        if acknowledged {
            // An acknowledged batch is durable.
            assert_eq!(
                &st, after,
                "{fault:?} after {calls}, {what}: acknowledged batch lost"
            );
        } else {
            // All or nothing: never a part of the batch.
            assert!(
                &st == before || &st == after,
                "{fault:?} after {calls}, {what}: partial batch visible"
            );
        }
        // The reopened database keeps working; sequences continue.
        let c = st.collectives[0].id;
        let done = ok(
            &reopened,
            WriteOp::RecordExperiences(vec![experience(c, "later")]),
        );
        assert_eq!(done.events[0].sequence, st.sequence + 1);
    }
    acknowledged
}

fn expected_states(image: &Disk, batch: &[WriteOp]) -> (State, State) {
    let s = open_over(FaultyBackend::new(image.clone()), Durability::Immediate).unwrap();
    let before = state(&s).unwrap();
    for r in s.apply(batch.to_vec()).unwrap() {
        r.unwrap();
    }
    (before, state(&s).unwrap())
}

#[test]
fn failed_commits_leave_the_last_committed_state() {
    let (image, c, ids) = base_image();
    let batch = big_batch(c, &ids);
    let (before, after) = expected_states(&image, &batch);
    assert_eq!(before.sequence, 7);
    assert_eq!(after.sequence, 7 + 20 + 1 + 1 + 1);
    assert_eq!(after.experiences.len(), 5 + 20 - 1);

    for fault in [Fault::Write, Fault::Sync, Fault::SetLen] {
        let mut failures = 0;
        let mut acknowledged = false;
        for calls in 0..500 {
            if run_case(&image, &batch, fault, calls, &before, &after) {
                acknowledged = true;
                break;
            }
            failures += 1;
        }
        assert!(failures > 0, "{fault:?} faults never hit the commit");
        assert!(acknowledged, "{fault:?}: the commit never got through");
    }
}

#[test]
fn a_failed_first_write_is_invisible_after_a_power_cut() {
    let (image, c, ids) = base_image();
    let batch = big_batch(c, &ids);
    let (before, _) = expected_states(&image, &batch);
    let backend = FaultyBackend::new(image);
    let s = open_over(backend.clone(), Durability::Immediate).unwrap();
    backend.faults.write.arm(0);
    assert!(matches!(s.apply(batch), Err(pulsedb::Error::Storage(_))));
    let img = backend.power_cut_image();
    drop(s);
    let reopened = open_over(FaultyBackend::new(img), Durability::Immediate).unwrap();
    assert_eq!(state(&reopened).unwrap(), before);
}

#[test]
fn eventual_durability_is_made_durable_by_flush() {
    let (image, c, _) = base_image();
    let backend = FaultyBackend::new(image);
    let s = open_over(backend.clone(), Durability::Eventual).unwrap();
    let before = state(&s).unwrap();
    let e = record_new(&s, c, "eventually");
    // Visible at once in the handle.
    assert!(s.get_experience(e).unwrap().is_some());
    // A power cut now may lose it, but never corrupts.
    let cut = open_over(
        FaultyBackend::new(backend.power_cut_image()),
        Durability::Immediate,
    )
    .unwrap();
    let st = state(&cut).unwrap();
    assert_consistent(&st);
    assert!(st == before || st.sequence == before.sequence + 1);
    drop(cut);
    // After flush it survives a power cut.
    s.flush().unwrap();
    let cut = open_over(
        FaultyBackend::new(backend.power_cut_image()),
        Durability::Immediate,
    )
    .unwrap();
    assert!(cut.get_experience(e).unwrap().is_some());
    assert_eq!(cut.current_sequence().unwrap(), before.sequence + 1);
    // A flush with nothing pending succeeds.
    s.flush().unwrap();
}

#[test]
fn a_failed_flush_is_not_forgotten() {
    let (image, c, _) = base_image();
    let backend = FaultyBackend::new(image);
    let s = open_over(backend.clone(), Durability::Eventual).unwrap();
    let e = record_new(&s, c, "eventually");
    backend.faults.sync.arm(0);
    assert!(s.flush().is_err());
    // The disk recovers. Every later flush must make the write durable or
    // report that it could not (redb refuses commits after an I/O error
    // until reopened); none may claim success while the write is volatile.
    backend.faults.sync.arm(-1);
    for attempt in 0..3 {
        match s.flush() {
            Ok(()) => {
                let cut = open_over(
                    FaultyBackend::new(backend.power_cut_image()),
                    Durability::Immediate,
                )
                .unwrap();
                assert!(
                    cut.get_experience(e).unwrap().is_some(),
                    "flush {attempt} succeeded but the write is not durable"
                );
            }
            Err(err) => assert!(matches!(err, pulsedb::Error::Storage(_)), "{err:?}"),
        }
    }
}
