//! Index faults: the snapshot files (`<db file>.idx/*.idx`) are deleted,
//! truncated, corrupted, swapped, of another format version, stale (with
//! the log after them whole, or compacted) or ahead of the log between
//! runs; the database reopens, rebuilds or replays what it must, and
//! answers exactly as before (full result lists compared), with snapshots
//! that keep their vectors and snapshots that do not.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use pulsedb::*;

/// Collective `flat` stays below this size (exact search: answers must be
/// identical); collective `graph` grows past it (HNSW).
const HNSW_THRESHOLD: usize = 200;

fn cfg() -> Config {
    let mut c = config();
    c.index.hnsw_threshold = HNSW_THRESHOLD;
    c
}

/// How the two collectives' experience indexes were loaded since `db`
/// opened: (from the snapshot alone, snapshot and log, scan).
fn loads(db: &PulseHandle) -> (u64, u64, u64) {
    let s = db.engine_stats();
    (
        s.index_loads_from_snapshot,
        s.index_loads_replayed,
        s.index_loads_scanned,
    )
}

/// Rewrites a snapshot file's bytes with `change` and a valid checksum, so
/// only the change itself can make it unusable.
fn rewrite(change: impl Fn(&Path, &mut Vec<u8>) + 'static) -> Mutation {
    for_each_file(move |p, mut b| {
        b.truncate(b.len() - 4);
        change(p, &mut b);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        Some(b)
    })
}

/// Everything a search can show for the two collectives.
#[derive(Debug, Clone)]
struct Answers {
    flat: Vec<Vec<(ExperienceId, f32)>>,
    flat_insights: Vec<Vec<(InsightId, f32)>>,
    graph_count: usize,
    stats: (IndexStats, IndexStats),
}

async fn answers(db: &PulseHandle, flat: CollectiveId, graph: CollectiveId) -> Answers {
    let mut out = Answers {
        flat: Vec::new(),
        flat_insights: Vec::new(),
        graph_count: 0,
        stats: (
            db.index_stats(flat).await.unwrap(),
            db.index_stats(graph).await.unwrap(),
        ),
    };
    for q in 0..12u64 {
        let query = vec16(7_000 + q);
        let hits = db.search_similar(flat, &query, 1000).await.unwrap();
        out.flat.push(
            hits.iter()
                .map(|h| (h.experience.id, h.similarity))
                .collect(),
        );
        let filtered = db
            .search_similar_filtered(
                flat,
                &query,
                20,
                SearchFilter {
                    domains: Some(vec!["even".into()]),
                    ..SearchFilter::default()
                },
            )
            .await
            .unwrap();
        out.flat.push(
            filtered
                .iter()
                .map(|h| (h.experience.id, h.similarity))
                .collect(),
        );
        let ins = db.get_insights(flat, &query, 1000).await.unwrap();
        out.flat_insights
            .push(ins.iter().map(|(i, s)| (i.id, *s)).collect());
    }
    // The HNSW collective: every live record is found by its own vector.
    let mut offset = 0;
    loop {
        let page = db.list_experiences(graph, 1000, offset).await.unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        for e in page.iter().filter(|e| !e.archived) {
            let hits = db.search_similar(graph, &e.embedding, 3).await.unwrap();
            assert!(
                hits.iter().any(|h| h.experience.id == e.id),
                "{} lost from the graph index",
                e.id
            );
            out.graph_count += 1;
        }
    }
    out
}

fn assert_same(got: &Answers, want: &Answers, what: &str) {
    assert_eq!(got.flat.len(), want.flat.len());
    for (g, w) in got.flat.iter().zip(&want.flat) {
        let gi: Vec<_> = g.iter().map(|(id, _)| *id).collect();
        let wi: Vec<_> = w.iter().map(|(id, _)| *id).collect();
        assert_eq!(gi, wi, "{what}: experience results differ");
        for ((_, a), (_, b)) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-6, "{what}: similarity {a} != {b}");
        }
    }
    for (g, w) in got.flat_insights.iter().zip(&want.flat_insights) {
        let gi: Vec<_> = g.iter().map(|(id, _)| *id).collect();
        let wi: Vec<_> = w.iter().map(|(id, _)| *id).collect();
        assert_eq!(gi, wi, "{what}: insight results differ");
    }
    assert_eq!(got.graph_count, want.graph_count, "{what}");
    assert_eq!(
        got.stats.0.indexed, want.stats.0.indexed,
        "{what}: flat count"
    );
    assert_eq!(
        got.stats.1.indexed, want.stats.1.indexed,
        "{what}: graph count"
    );
    assert_eq!(got.stats.0.insights, want.stats.0.insights, "{what}");
    assert!(
        got.stats.1.hnsw,
        "{what}: graph collective lost its HNSW index"
    );
}

async fn populate(db: &PulseHandle, c: CollectiveId, from: u64, n: u64) -> Vec<ExperienceId> {
    let exps = (from..from + n)
        .map(|i| NewExperience {
            domain: vec![if i % 2 == 0 { "even" } else { "odd" }.into()],
            ..exp(c, i)
        })
        .collect();
    db.record_experiences(exps).await.unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    files.sort();
    files
}

type Mutation = Box<dyn Fn(&Path, &Path)>;

fn for_each_file(f: impl Fn(&Path, Vec<u8>) -> Option<Vec<u8>> + 'static) -> Mutation {
    Box::new(move |idx: &Path, _old: &Path| {
        for p in snapshot_files(idx) {
            let bytes = std::fs::read(&p).unwrap();
            match f(&p, bytes) {
                Some(b) => std::fs::write(&p, b).unwrap(),
                None => std::fs::remove_file(&p).unwrap(),
            }
        }
    })
}

fn flip(at: fn(usize) -> usize) -> Mutation {
    for_each_file(move |_, mut b| {
        let i = at(b.len()).min(b.len() - 1);
        b[i] ^= 0x5A;
        Some(b)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_are_rebuilt_and_answer_as_before() {
    damaged_snapshots(cfg()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_with_kept_vectors_are_rebuilt_and_answer_as_before() {
    let mut c = cfg();
    c.index.snapshot_vectors = true;
    damaged_snapshots(c).await;
}

async fn damaged_snapshots(cfg: Config) {
    let cfg = move || cfg.clone();
    let t = TempDb::new();
    let db = t.open_with(cfg()).await;
    let flat = db.create_collective("flat").await.unwrap();
    let graph = db.create_collective("graph").await.unwrap();
    let ids = populate(&db, flat, 0, 120).await;
    populate(&db, graph, 10_000, 300).await;
    for i in 0..10u64 {
        db.store_insight(NewDerivedInsight {
            collective_id: flat,
            content: format!("insight {i}"),
            embedding: Some(vec16(50_000 + i)),
            source_experience_ids: vec![ids[i as usize]],
            insight_type: InsightType::Pattern,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    }
    db.close().await.unwrap();
    // The snapshots of this earlier state, for the stale case.
    let old = tempfile::tempdir().unwrap();
    copy_dir(&t.index_dir(), old.path());

    // More writes: records, deletes (tombstones), archives, a deleted insight.
    let db = t.open_with(cfg()).await;
    let more = populate(&db, flat, 200, 40).await;
    for id in ids.iter().step_by(9) {
        db.delete_experience(*id).await.unwrap();
    }
    for id in more.iter().step_by(7) {
        db.archive_experience(*id).await.unwrap();
    }
    let graph_ids = populate(&db, graph, 20_000, 60).await;
    for id in graph_ids.iter().step_by(3) {
        db.delete_experience(*id).await.unwrap();
    }
    let gone = db.get_insights(flat, &vec16(50_003), 1).await.unwrap()[0]
        .0
        .id;
    db.delete_insight(gone).await.unwrap();
    let want = answers(&db, flat, graph).await;
    assert!(want.stats.1.hnsw && !want.stats.0.hnsw);
    assert!(want.stats.0.tombstones > 0 || want.stats.1.tombstones > 0);
    db.close().await.unwrap();
    assert_eq!(snapshot_files(&t.index_dir()).len(), 4);

    // The intact snapshots answer as before (the baseline of the cases).
    // They are restored, not rebuilt: a rebuild would drop the tombstones.
    let db = t.open_with(cfg()).await;
    let got = answers(&db, flat, graph).await;
    assert_same(&got, &want, "intact");
    assert_eq!(got.stats.0.tombstones, want.stats.0.tombstones);
    assert_eq!(got.stats.1.tombstones, want.stats.1.tombstones);
    assert_eq!(loads(&db), (2, 0, 0), "intact: both from their snapshots");
    db.close().await.unwrap();

    // The earlier snapshots are behind the log: both collectives take them
    // and replay the writes after them (the log still reaches back).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(t.dir.path(), copy.path());
    let idx = copy.path().join("pulse.db.idx");
    std::fs::remove_dir_all(&idx).unwrap();
    copy_dir(old.path(), &idx);
    let db = within(PulseHandle::open(copy.path().join("pulse.db"), cfg()))
        .await
        .unwrap();
    assert_same(&answers(&db, flat, graph).await, &want, "stale, replayed");
    assert_eq!(loads(&db), (0, 2, 0), "stale: snapshot and log");
    db.close().await.unwrap();

    // The same, with the log compacted past the earlier snapshots: they
    // cannot be brought up to date, and both collectives scan.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(t.dir.path(), copy.path());
    let path = copy.path().join("pulse.db");
    let mut short_log = cfg();
    short_log.change_log.retention = std::time::Duration::from_millis(1);
    let db = within(PulseHandle::open(&path, short_log)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // (Background compaction may have removed some already.)
    db.compact_change_log().await.unwrap();
    db.close().await.unwrap();
    let idx = copy.path().join("pulse.db.idx");
    std::fs::remove_dir_all(&idx).unwrap();
    copy_dir(old.path(), &idx);
    let db = within(PulseHandle::open(&path, cfg())).await.unwrap();
    assert_same(
        &answers(&db, flat, graph).await,
        &want,
        "stale, log compacted",
    );
    assert_eq!(loads(&db), (0, 0, 2), "stale past the log: scanned");
    db.close().await.unwrap();

    let cases: Vec<(&str, Mutation)> = vec![
        ("all deleted", for_each_file(|_, _| None)),
        (
            "experience snapshots deleted",
            for_each_file(|p, b| (!p.to_string_lossy().contains("experiences")).then_some(b)),
        ),
        ("emptied", for_each_file(|_, _| Some(Vec::new()))),
        (
            "truncated to the header",
            for_each_file(|_, b| Some(b[..20.min(b.len())].to_vec())),
        ),
        (
            "truncated by half",
            for_each_file(|_, b| Some(b[..b.len() / 2].to_vec())),
        ),
        (
            "last byte cut",
            for_each_file(|_, b| Some(b[..b.len() - 1].to_vec())),
        ),
        ("magic flipped", flip(|_| 0)),
        (
            "another format version (checksum valid)",
            rewrite(|_, b| b[8..12].copy_from_slice(&2u32.to_le_bytes())),
        ),
        (
            "columns and slot maps garbled (checksum valid)",
            rewrite(|_, b| {
                // The extra (filter columns or insight slot map) starts
                // after magic, version, dimension, sequence and its length.
                let len = u64::from_le_bytes(b[28..36].try_into().unwrap()) as usize;
                for byte in &mut b[36..36 + len] {
                    *byte = byte.wrapping_mul(31).wrapping_add(7);
                }
            }),
        ),
        (
            "insight snapshots deleted",
            for_each_file(|p, b| (!p.to_string_lossy().contains("insights")).then_some(b)),
        ),
        ("dimension flipped", flip(|_| 12)),
        ("sequence flipped", flip(|_| 20)),
        ("extra length flipped", flip(|_| 28)),
        ("middle byte flipped", flip(|n| n / 2)),
        ("checksum flipped", flip(|n| n - 1)),
        (
            "garbage appended",
            for_each_file(|_, mut b| {
                b.extend_from_slice(b"garbage");
                Some(b)
            }),
        ),
        (
            "replaced by random bytes",
            for_each_file(|_, b| Some((0..b.len()).map(|i| (i * 131 % 251) as u8).collect())),
        ),
        (
            "kinds swapped",
            Box::new(|idx: &Path, _: &Path| {
                for p in snapshot_files(idx) {
                    let s = p.to_string_lossy().to_string();
                    if s.ends_with(".experiences.idx") {
                        let other = PathBuf::from(s.replace(".experiences.idx", ".insights.idx"));
                        let tmp = idx.join("swap.tmp");
                        std::fs::rename(&p, &tmp).unwrap();
                        std::fs::rename(&other, &p).unwrap();
                        std::fs::rename(&tmp, &other).unwrap();
                    }
                }
            }),
        ),
        (
            "collectives swapped",
            Box::new(|idx: &Path, _: &Path| {
                let files = snapshot_files(idx);
                let names: Vec<String> = files
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                    .collect();
                let ids: std::collections::BTreeSet<&str> =
                    names.iter().map(|n| n.split('.').next().unwrap()).collect();
                let ids: Vec<&str> = ids.into_iter().collect();
                for p in &files {
                    let n = p.file_name().unwrap().to_string_lossy().to_string();
                    let swapped = if n.starts_with(ids[0]) {
                        n.replacen(ids[0], ids[1], 1)
                    } else {
                        n.replacen(ids[1], ids[0], 1)
                    };
                    std::fs::rename(p, idx.join(format!("{swapped}.new"))).unwrap();
                }
                for e in std::fs::read_dir(idx).unwrap() {
                    let p = e.unwrap().path();
                    let s = p.to_string_lossy().to_string();
                    if let Some(base) = s.strip_suffix(".new") {
                        std::fs::rename(&p, base).unwrap();
                    }
                }
            }),
        ),
        (
            "index directory replaced by a file",
            Box::new(|idx: &Path, _: &Path| {
                std::fs::remove_dir_all(idx).unwrap();
                std::fs::write(idx, b"not a directory").unwrap();
            }),
        ),
    ];

    for (what, mutate) in &cases {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(t.dir.path(), copy.path());
        let path = copy.path().join("pulse.db");
        let idx = copy.path().join("pulse.db.idx");
        mutate(&idx, old.path());
        let db = within(PulseHandle::open(&path, cfg()))
            .await
            .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
        assert_same(&answers(&db, flat, graph).await, &want, what);
        let (_, _, scanned) = loads(&db);
        let insights_only = what.starts_with("insight");
        assert!(
            if insights_only {
                scanned == 0
            } else {
                scanned > 0
            },
            "{what}: {:?}",
            loads(&db)
        );
        // Still right after writes and another close / reopen.
        let extra = db.record_experience(exp(flat, 99_999)).await.unwrap();
        assert_eq!(
            db.search_similar(flat, &vec16(99_999), 1).await.unwrap()[0]
                .experience
                .id,
            extra
        );
        db.delete_experience(extra).await.unwrap();
        let _ = db.close().await;
        let db = within(PulseHandle::open(&path, cfg())).await.unwrap();
        assert_same(
            &answers(&db, flat, graph).await,
            &want,
            &format!("{what}, reopened"),
        );
        db.close().await.ok();
    }

    // Snapshots ahead of the log (taken after writes this file never saw).
    let behind = tempfile::tempdir().unwrap();
    copy_dir(t.dir.path(), behind.path());
    let path = behind.path().join("pulse.db");
    let db = t.open_with(cfg()).await;
    for id in more.iter().take(5) {
        db.delete_experience(*id).await.unwrap();
    }
    populate(&db, flat, 900, 5).await;
    db.close().await.unwrap();
    let idx = behind.path().join("pulse.db.idx");
    std::fs::remove_dir_all(&idx).unwrap();
    copy_dir(&t.index_dir(), &idx);
    let db = within(PulseHandle::open(&path, cfg())).await.unwrap();
    assert_same(&answers(&db, flat, graph).await, &want, "ahead of the log");
    db.close().await.unwrap();
}

/// Searches just before `close` do not keep buffered vectors out of the
/// snapshot: the drain before a snapshot does not step aside for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_right_after_searches_snapshots_every_vector() {
    let t = TempDb::new();
    let db = t.open_with(cfg()).await;
    let c = db.create_collective("c").await.unwrap();
    let ids = populate(&db, c, 0, 300).await;
    assert!(
        db.index_stats(c).await.unwrap().staged > 0,
        "writes wait in the buffer"
    );
    for q in 0..5u64 {
        db.search_similar(c, &vec16(q), 5).await.unwrap();
    }
    db.close().await.unwrap();
    let path = t.index_dir().join(format!("{c}.experiences.idx"));
    let file = pulsedb::index::SnapshotFile::read(&path, DIM).expect("snapshot written");
    assert_eq!(file.slots().len(), ids.len());
}

/// Identity of each snapshot file: written files are renamed into place,
/// so a rewrite gives a new inode.
fn snapshot_identity(dir: &Path) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    snapshot_files(dir)
        .into_iter()
        .map(|p| {
            let ino = std::fs::metadata(&p).unwrap().ino();
            (p, ino)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_rewrites_snapshots_only_after_index_changes() {
    let t = TempDb::new();
    let db = t.open_with(cfg()).await;
    let c = db.create_collective("c").await.unwrap();
    let ids = populate(&db, c, 0, 300).await;
    db.close().await.unwrap();
    let written = snapshot_identity(&t.index_dir());
    assert_eq!(written.len(), 2, "experience and insight snapshots");

    // Reads and writes that leave the vectors alone: nothing to rewrite.
    let db = t.reopen_when_released(cfg()).await;
    let before = db.search_similar(c, &vec16(7), 10).await.unwrap();
    db.store_relation(NewExperienceRelation {
        source_id: ids[0],
        target_id: ids[1],
        relation_type: RelationType::Supports,
        strength: 0.5,
        metadata: None,
    })
    .await
    .unwrap();
    db.register_activity(activity("a", c)).await.unwrap();
    db.close().await.unwrap();
    assert_eq!(snapshot_identity(&t.index_dir()), written);

    // The kept snapshot still restores, and answers as before.
    let db = t.reopen_when_released(cfg()).await;
    let again = db.search_similar(c, &vec16(7), 10).await.unwrap();
    let key = |hits: &[SearchResult]| -> Vec<ExperienceId> {
        hits.iter().map(|h| h.experience.id).collect()
    };
    assert_eq!(key(&again), key(&before));
    // A deletion changes the index: the experience snapshot is rewritten.
    db.delete_experience(ids[5]).await.unwrap();
    db.close().await.unwrap();
    let after_delete = snapshot_identity(&t.index_dir());
    assert_ne!(after_delete[0].1, written[0].1, "experiences rewritten");

    // So does a new record; the reopened index holds it.
    let db = t.reopen_when_released(cfg()).await;
    let new = populate(&db, c, 1000, 1).await[0];
    db.close().await.unwrap();
    assert_ne!(snapshot_identity(&t.index_dir())[0].1, after_delete[0].1);
    let db = t.reopen_when_released(cfg()).await;
    let hits = db.search_similar(c, &vec16(1000), 1).await.unwrap();
    assert_eq!(hits[0].experience.id, new);
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed, ids.len(), "one deleted, one added");
    db.close().await.unwrap();
}

/// A large collective's records: a sample of the live ones and the
/// deleted ones (seed and id), and how many vectors it holds.
struct Large {
    live: Vec<(u64, ExperienceId)>,
    deleted: Vec<(u64, ExperienceId)>,
    indexed: usize,
}

/// Reopens a large collective and checks it: loaded the `path` way (from
/// the snapshot alone, replayed, scanned), holding `indexed` vectors, each
/// sampled live record found by its own vector, no deleted one.
async fn check_large(
    t: &TempDb,
    config: &Config,
    c: CollectiveId,
    want: &Large,
    path: (u64, u64, u64),
    what: &str,
) {
    let db = t.open_with(config.clone()).await;
    let stats = db.index_stats(c).await.unwrap();
    assert_eq!(stats.indexed, want.indexed, "{what}");
    assert_eq!(loads(&db), path, "{what}: load path");
    for (seed, id) in &want.live {
        let hits = db.search_similar(c, &vec16(*seed), 3).await.unwrap();
        assert!(
            hits.iter().any(|h| h.experience.id == *id),
            "{what}: {id} not found"
        );
    }
    for (seed, id) in &want.deleted {
        let hits = db.search_similar(c, &vec16(*seed), 3).await.unwrap();
        assert!(
            hits.iter().all(|h| h.experience.id != *id),
            "{what}: {id} deleted but found"
        );
    }
    db.close().await.unwrap();
}

/// A collective large enough (past 32 768 vectors) that a reopen prepares
/// its columns on a second thread while the graph restores: both snapshot
/// kinds load it whole, clean and with writes logged since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_collective_restores_its_columns_beside_the_graph() {
    for keep in [false, true] {
        let mut config = cfg();
        config.index.snapshot_vectors = keep;
        let t = TempDb::new();
        let db = t.open_with(config.clone()).await;
        let c = db.create_collective("large").await.unwrap();
        let mut sample = Vec::new();
        for batch in 0..34u64 {
            let ids = populate(&db, c, batch * 1_000, 1_000).await;
            sample.extend(
                (0..1_000u64)
                    .step_by(97)
                    .map(|i| (batch * 1_000 + i, ids[i as usize])),
            );
        }
        db.close().await.unwrap();
        let old = tempfile::tempdir().unwrap();
        copy_dir(&t.index_dir(), old.path());

        // Writes after the snapshot: records and deletes.
        let db = t.open_with(config.clone()).await;
        let more = populate(&db, c, 500_000, 300).await;
        let mut deleted = Vec::new();
        for (i, id) in more.iter().enumerate() {
            let seed = 500_000 + i as u64;
            if i % 3 == 0 {
                db.delete_experience(*id).await.unwrap();
                deleted.push((seed, *id));
            } else {
                sample.push((seed, *id));
            }
        }
        let gone = sample[..40].to_vec();
        for (_, id) in &gone {
            db.delete_experience(*id).await.unwrap();
        }
        deleted.extend(gone);
        let want = Large {
            live: sample[40..].to_vec(),
            deleted,
            indexed: db.index_stats(c).await.unwrap().indexed,
        };
        assert_eq!(want.indexed, 34_000 + 200 - 40);
        db.close().await.unwrap();
        let what = format!("keep {keep}");
        check_large(&t, &config, c, &want, (1, 0, 0), &format!("{what}: clean")).await;

        // The earlier snapshot, with the writes after it in the log.
        std::fs::remove_dir_all(t.index_dir()).unwrap();
        copy_dir(old.path(), &t.index_dir());
        check_large(
            &t,
            &config,
            c,
            &want,
            (0, 1, 0),
            &format!("{what}: replayed"),
        )
        .await;
    }
}
