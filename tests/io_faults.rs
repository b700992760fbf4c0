//! I/O faults through the engine: [`PulseHandle::open_with_backend`] over a
//! backend that fails a write, a `set_len` or an fsync at its Nth call, for
//! N across a whole workload. Each failed operation returns a storage error
//! (never a hang), reads keep being served, nothing acknowledged is lost,
//! and after a reopen over the bytes (power cut or process kill) the file
//! passes redb's integrity check and matches a model of the acknowledged
//! writes.
//!
//! What the engine does after a failed commit: redb refuses every later
//! write transaction on that `Database`, so every later write of the handle
//! fails with a storage error too (the probe write below checks this is an
//! error, not a hang or a lie); reads keep answering from the committed
//! state. Reopening over the bytes recovers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::faulty::{Disk, Fault, FaultyBackend};
use common::*;
use pulsedb::*;

/// One step of the workload. Experiences are named by a number `n`
/// (content `w{n}`, embedding `vector(n)`), insights by `m` (`i{m}`).
#[derive(Debug, Clone)]
enum Op {
    Record(u64),
    RecordBatch(Vec<u64>),
    Update(u64, f32),
    Archive(u64),
    Delete(u64),
    Relate(u64, u64),
    Insight(u64, Vec<u64>),
}

/// What the public API shows, keyed by content.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    /// n → (importance, archived)
    experiences: BTreeMap<u64, (f32, bool)>,
    relations: BTreeSet<(u64, u64)>,
    insights: BTreeMap<u64, Vec<u64>>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Record(n) => {
                self.experiences.insert(*n, (0.5, false));
            }
            Op::RecordBatch(ns) => {
                for n in ns {
                    self.experiences.insert(*n, (0.5, false));
                }
            }
            Op::Update(n, imp) => {
                if let Some(e) = self.experiences.get_mut(n) {
                    e.0 = *imp;
                }
            }
            Op::Archive(n) => {
                if let Some(e) = self.experiences.get_mut(n) {
                    e.1 = true;
                }
            }
            Op::Delete(n) => {
                self.experiences.remove(n);
                self.relations.retain(|(a, b)| a != n && b != n);
            }
            Op::Relate(a, b) => {
                self.relations.insert((*a, *b));
            }
            Op::Insight(m, sources) => {
                self.insights.insert(*m, sources.clone());
            }
        }
    }
}

fn workload() -> Vec<Op> {
    let mut ops = Vec::new();
    for n in 0..6 {
        ops.push(Op::Record(n));
    }
    ops.push(Op::RecordBatch((6..40).collect()));
    ops.push(Op::Relate(0, 1));
    ops.push(Op::Relate(2, 3));
    ops.push(Op::Update(4, 0.9));
    ops.push(Op::Archive(5));
    ops.push(Op::Insight(100, vec![0, 1, 2]));
    ops.push(Op::Delete(1));
    ops.push(Op::Record(40));
    ops.push(Op::RecordBatch((41..60).collect()));
    ops.push(Op::Relate(40, 41));
    ops.push(Op::Delete(7));
    ops.push(Op::Insight(101, vec![40, 41]));
    ops.push(Op::Update(8, 0.1));
    ops
}

fn new_exp(c: CollectiveId, n: u64) -> NewExperience {
    exp_with(c, &format!("w{n}"), vector(n, DIM))
}

/// Runs `op` against the engine; `ids` maps `n` to the ids acknowledged.
async fn run_op(
    db: &PulseHandle,
    c: CollectiveId,
    ids: &mut BTreeMap<u64, ExperienceId>,
    op: &Op,
) -> Result<()> {
    let id = |n: &u64| ids.get(n).copied().unwrap_or_else(ExperienceId::new);
    match op {
        Op::Record(n) => {
            let e = within(db.record_experience(new_exp(c, *n))).await?;
            ids.insert(*n, e);
        }
        Op::RecordBatch(ns) => {
            let got =
                within(db.record_experiences(ns.iter().map(|n| new_exp(c, *n)).collect())).await?;
            ids.extend(ns.iter().copied().zip(got));
        }
        Op::Update(n, imp) => {
            within(db.update_experience(
                id(n),
                ExperienceUpdate {
                    importance: Some(*imp),
                    ..ExperienceUpdate::default()
                },
            ))
            .await?
        }
        Op::Archive(n) => within(db.archive_experience(id(n))).await?,
        Op::Delete(n) => within(db.delete_experience(id(n))).await?,
        Op::Relate(a, b) => {
            within(db.store_relation(NewExperienceRelation {
                source_id: id(a),
                target_id: id(b),
                relation_type: RelationType::Supports,
                strength: 0.5,
                metadata: None,
            }))
            .await?;
        }
        Op::Insight(m, sources) => {
            within(db.store_insight(NewDerivedInsight {
                collective_id: c,
                content: format!("i{m}"),
                embedding: Some(vector(*m, DIM)),
                source_experience_ids: sources.iter().map(id).collect(),
                insight_type: InsightType::Pattern,
                confidence: 0.5,
                domain: vec![],
            }))
            .await?;
        }
    }
    Ok(())
}

/// The database as the public API shows it, keyed by content; also checks
/// that every record is whole and the index agrees with redb.
async fn dump(db: &PulseHandle) -> (bool, Model) {
    let collectives = db.list_collectives().await.unwrap();
    let Some(c) = collectives.first() else {
        return (false, Model::default());
    };
    assert_eq!(collectives.len(), 1);
    let c = c.id;
    let mut m = Model::default();
    let mut names = BTreeMap::new();
    let exps = db.list_experiences(c, 1000, 0).await.unwrap();
    for e in &exps {
        let n: u64 = e.content[1..].parse().unwrap();
        assert_eq!(e.embedding, vector(n, DIM), "w{n}: embedding torn");
        names.insert(e.id, n);
        m.experiences.insert(n, (e.importance, e.archived));
    }
    for r in db.list_relations(c, 1000, 0).await.unwrap() {
        m.relations
            .insert((names[&r.source_id], names[&r.target_id]));
    }
    let all_names: BTreeMap<ExperienceId, u64> = names.clone();
    for i in db.list_insights(c, 1000, 0).await.unwrap() {
        let mi: u64 = i.content[1..].parse().unwrap();
        // Sources may have been deleted since: their names come from the
        // embedding-free change log, so only compare the count for those.
        let sources = i
            .source_experience_ids
            .iter()
            .map(|s| all_names.get(s).copied().unwrap_or(u64::MAX))
            .collect();
        m.insights.insert(mi, sources);
    }
    // The index holds every stored record and finds each by its vector.
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed, exps.len(), "index disagrees with redb");
    for e in exps.iter().filter(|e| !e.archived) {
        let hits = db.search_similar(c, &e.embedding, 3).await.unwrap();
        assert!(hits.iter().any(|h| h.experience.id == e.id));
    }
    (true, m)
}

/// Model comparison that tolerates deleted insight sources (stored as
/// `u64::MAX` by [`dump`]).
fn same(got: &Model, want: &Model) -> bool {
    let mut want = want.clone();
    for sources in want.insights.values_mut() {
        for s in sources.iter_mut() {
            if !got.experiences.contains_key(s) {
                *s = u64::MAX;
            }
        }
    }
    got == &want
}

#[derive(Debug, Default)]
struct Outcome {
    opened: bool,
    collective_acked: bool,
    acked: Vec<Op>,
    /// Failed operations: each may or may not have reached the disk.
    maybe: Vec<(usize, Op)>,
    storage_errors: usize,
}

fn is_storage_fault(e: &Error) -> bool {
    matches!(e, Error::Storage(_) | Error::Io(_))
}

/// Runs the workload over `backend` with `fault` armed at call `at`.
async fn run_case(backend: FaultyBackend, fault: Option<(Fault, i64)>) -> Outcome {
    if let Some((f, at)) = fault {
        backend.faults.get(f).arm(at);
    }
    let mut out = Outcome::default();
    let db = match within(PulseHandle::open_with_backend(backend.clone(), config())).await {
        Ok(db) => db,
        Err(e) => {
            assert!(is_storage_fault(&e), "open failed with {e:?}");
            out.storage_errors += 1;
            return out;
        }
    };
    out.opened = true;
    let c = match within(db.create_collective("faults")).await {
        Ok(c) => c,
        Err(e) => {
            assert!(is_storage_fault(&e), "create failed with {e:?}");
            out.storage_errors += 1;
            within(db.close()).await.ok();
            return out;
        }
    };
    out.collective_acked = true;
    let mut ids = BTreeMap::new();
    let ops = workload();
    let mut failed_at = None;
    for (i, op) in ops.iter().enumerate() {
        match run_op(&db, c, &mut ids, op).await {
            Ok(()) => out.acked.push(op.clone()),
            Err(e) => {
                assert!(is_storage_fault(&e), "{op:?} failed with {e:?}");
                out.storage_errors += 1;
                out.maybe.push((i, op.clone()));
                failed_at = Some(i);
                break;
            }
        }
    }
    if failed_at.is_some() {
        // Reads keep being served, and show exactly the acknowledged state.
        let mut model = Model::default();
        for op in &out.acked {
            model.apply(op);
        }
        let (_, seen) = dump(&db).await;
        assert!(
            same(&seen, &model),
            "reads after a fault differ from the acknowledged writes:\n{seen:?}\n{model:?}"
        );
        for (n, id) in &ids {
            if let Some(e) = db.get_experience(*id).await.unwrap() {
                assert_eq!(e.content, format!("w{n}"));
            }
        }
        // A later write: an answer (a storage error, or success if redb
        // accepts it), never a hang.
        let probe = Op::Record(999);
        match run_op(&db, c, &mut ids, &probe).await {
            Ok(()) => out.acked.push(probe),
            Err(e) => {
                assert!(is_storage_fault(&e), "probe failed with {e:?}");
                out.storage_errors += 1;
                out.maybe.push((ops.len(), probe));
            }
        }
    }
    // Close answers (possibly with the flush's storage error).
    if let Err(e) = within(db.close()).await {
        assert!(is_storage_fault(&e), "close failed with {e:?}");
    }
    out
}

/// Every state the file may legitimately hold: the acknowledged writes plus
/// any subset of the failed ones, in order.
fn candidates(out: &Outcome) -> Vec<Model> {
    let mut all = Vec::new();
    let all_ops: Vec<(Option<usize>, &Op)> = out
        .acked
        .iter()
        .map(|op| (None, op))
        .chain(
            out.maybe
                .iter()
                .enumerate()
                .map(|(i, (_, op))| (Some(i), op)),
        )
        .collect();
    for mask in 0..(1u32 << out.maybe.len()) {
        let mut m = Model::default();
        for (maybe, op) in &all_ops {
            if maybe.is_none_or(|i| mask & (1 << i) != 0) {
                m.apply(op);
            }
        }
        all.push(m);
    }
    all
}

/// Reopens `image`: redb's integrity check, then the model comparison.
async fn check_image(image: Disk, out: &Outcome, what: &str) {
    let raw = redb::Database::builder().create_with_backend(FaultyBackend::new(image.clone()));
    let mut raw = match raw {
        Ok(raw) => raw,
        Err(e) if !out.opened => {
            // A fault while redb was creating the file, before its header
            // was written: nothing was ever acknowledged. redb cannot open
            // such a torn new file; the engine reports that as a storage
            // error (no panic) and the caller recreates the file.
            let again = within(PulseHandle::open_with_backend(
                FaultyBackend::new(image),
                config(),
            ))
            .await;
            assert!(
                matches!(again, Err(Error::Storage(_))),
                "{what}: {e}: {again:?}"
            );
            return;
        }
        Err(e) => panic!("{what}: redb cannot reopen: {e}"),
    };
    assert!(
        raw.check_integrity()
            .unwrap_or_else(|e| panic!("{what}: integrity check failed: {e}")),
        "{what}: integrity check repaired the file"
    );
    drop(raw);
    let db = within(PulseHandle::open_with_backend(
        FaultyBackend::new(image),
        config(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{what}: engine cannot reopen: {e}"));
    let (has_collective, got) = dump(&db).await;
    if out.collective_acked {
        assert!(has_collective, "{what}: acknowledged collective lost");
    }
    let cands = candidates(out);
    assert!(
        cands.iter().any(|m| same(&got, m)),
        "{what}: reopened state matches no allowed state\n got: {got:?}\nacked: {:?}\nmaybe: {:?}",
        out.acked,
        out.maybe
    );
    // The reopened database accepts writes again.
    let c = match db.list_collectives().await.unwrap().first() {
        Some(c) => c.id,
        None => db.create_collective("again").await.unwrap(),
    };
    db.record_experience(new_exp(c, 5000)).await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_point_fails_cleanly_and_loses_nothing() {
    // A clean run counts each operation's calls over the whole workload.
    let clean = FaultyBackend::new(Disk::default());
    let out = run_case(clean.clone(), None).await;
    assert!(out.maybe.is_empty() && out.acked.len() == workload().len());
    let mut want = Model::default();
    for op in &out.acked {
        want.apply(op);
    }
    let (_, got) = dump(
        &PulseHandle::open_with_backend(FaultyBackend::new(clean.process_kill_image()), config())
            .await
            .unwrap(),
    )
    .await;
    assert!(same(&got, &want), "the model is wrong: {got:?}\n{want:?}");

    let mut injected = 0;
    let mut failed_ops = 0;
    let (mut probes_ok, mut probes_failed) = (0, 0);
    for fault in [Fault::Write, Fault::SetLen, Fault::Sync] {
        let total = clean.faults.get(fault).calls() as i64;
        assert!(total > 0, "{fault:?}: never called");
        // Every one of the first calls (open, first commits), then points
        // spread over the rest of the workload, and the last call.
        let mut points: BTreeSet<i64> = (0..total.min(6)).collect();
        let step = (total / 14).max(1);
        points.extend((0..total).step_by(step as usize));
        points.insert(total - 1);
        let mut hit = 0;
        for at in points {
            let backend = FaultyBackend::new(Disk::default());
            let out = run_case(backend.clone(), Some((fault, at))).await;
            if backend.faults.get(fault).failed() > 0 {
                hit += 1;
            }
            failed_ops += out.storage_errors;
            match out.maybe.last() {
                Some((_, Op::Record(999))) => probes_failed += 1,
                Some(_) => probes_ok += 1,
                None => {}
            }
            injected += 1;
            check_image(
                backend.power_cut_image(),
                &out,
                &format!("{fault:?} at call {at}, power cut"),
            )
            .await;
            check_image(
                backend.process_kill_image(),
                &out,
                &format!("{fault:?} at call {at}, process kill"),
            )
            .await;
        }
        assert!(hit > 0, "{fault:?}: no injected fault was reached");
        eprintln!("{fault:?}: {total} calls in the workload, {hit} fault points hit");
    }
    eprintln!(
        "io faults: {injected} fault points injected, {failed_ops} operations failed cleanly; \
         writes after a failed one: {probes_ok} accepted, {probes_failed} refused"
    );
    assert!(failed_ops > 0);
}
