//! Crashes with real processes: a child (`pulsedb-crash-child`) writes
//! experiences, relations, insights, archives and deletes from many tasks
//! and prints each acknowledged write; the parent kills it with SIGKILL at
//! a random moment, reopens the file and checks that nothing acknowledged
//! is lost, nothing is half-written, the index agrees with redb and the
//! change log is gap-free. The same file is crashed again and again, so
//! recovery from a crash that interrupted a recovery is covered as well.
//!
//! `PULSEDB_CRASH_ITERATIONS` sets the number of kills (20 by default;
//! `make crash-soak` runs 200), `PULSEDB_CRASH_SEED` the random seed.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use pulsedb::storage::{Location, OpenOptions, RedbStorage, StorageRead};
use pulsedb::*;
use rand::{Rng, SeedableRng};

/// Kills per database file.
const GENERATION: usize = 10;

/// Small, so that each file crosses from the flat index to HNSW while
/// being crashed.
const HNSW_THRESHOLD: usize = 300;

fn crash_config() -> Config {
    let mut c = config();
    c.index.hnsw_threshold = HNSW_THRESHOLD;
    c
}

/// Must match the child's salt for insight embeddings.
const INSIGHT_SALT: u64 = 0x5A5A_0000_0000;

/// Everything the children acknowledged (or started) so far.
#[derive(Debug, Default)]
struct Acked {
    collective: Option<CollectiveId>,
    experiences: BTreeMap<ExperienceId, u64>,
    relations: BTreeMap<RelationId, (ExperienceId, ExperienceId)>,
    insights: BTreeMap<InsightId, (u64, Vec<ExperienceId>)>,
    archive_sent: BTreeSet<ExperienceId>,
    archived: BTreeSet<ExperienceId>,
    delete_sent: BTreeSet<ExperienceId>,
    deleted: BTreeSet<ExperienceId>,
}

fn id<T: FromStr>(s: Option<&str>, line: &str) -> T {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad child line {line:?}"))
}

fn uuid(s: Option<&str>, line: &str) -> [u8; 16] {
    let u: uuid::Uuid = id(s, line);
    *u.as_bytes()
}

impl Acked {
    fn take(&mut self, line: &str) {
        let mut f = line.split(' ');
        match f.next() {
            Some("C") => {
                let c = CollectiveId::from_bytes(uuid(f.next(), line));
                assert!(self.collective.is_none_or(|known| known == c));
                self.collective = Some(c);
            }
            Some("E") => {
                let e = ExperienceId::from_bytes(uuid(f.next(), line));
                self.experiences.insert(e, id(f.next(), line));
            }
            Some("R") => {
                let r = RelationId::from_bytes(uuid(f.next(), line));
                let s = ExperienceId::from_bytes(uuid(f.next(), line));
                let t = ExperienceId::from_bytes(uuid(f.next(), line));
                self.relations.insert(r, (s, t));
            }
            Some("I") => {
                let i = InsightId::from_bytes(uuid(f.next(), line));
                let seed = id(f.next(), line);
                let sources = f
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| ExperienceId::from_bytes(uuid(Some(s), line)))
                    .collect();
                self.insights.insert(i, (seed, sources));
            }
            Some("a") => {
                self.archive_sent
                    .insert(ExperienceId::from_bytes(uuid(f.next(), line)));
            }
            Some("A") => {
                self.archived
                    .insert(ExperienceId::from_bytes(uuid(f.next(), line)));
            }
            Some("d") => {
                self.delete_sent
                    .insert(ExperienceId::from_bytes(uuid(f.next(), line)));
            }
            Some("D") => {
                self.deleted
                    .insert(ExperienceId::from_bytes(uuid(f.next(), line)));
            }
            _ => panic!("bad child line {line:?}"),
        }
    }
}

fn iterations() -> usize {
    std::env::var("PULSEDB_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Runs the child on `path` and kills it after it acknowledged `kill_after`
/// lines (0: as soon as it started). Returns every line it printed.
fn run_and_kill(path: &Path, base: u64, kill_after: usize) -> (Vec<String>, bool) {
    let args = [base.to_string(), "8".into(), HNSW_THRESHOLD.to_string()];
    let (mut child, rx, reader) = spawn_crash_child(path, &args, &[]);
    let mut lines = Vec::new();
    let mut exited_by_itself = false;
    while lines.len() < kill_after {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((_, line)) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited_by_itself = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("crash child printed nothing for 30 s");
            }
        }
    }
    // SIGKILL on Unix.
    let _ = child.kill();
    let status = child.wait().expect("wait for child");
    // Lines already in the pipe were acknowledged before the kill.
    reader.join().expect("reader thread");
    lines.extend(rx.try_iter().map(|(_, line)| line));
    assert!(
        !exited_by_itself || status.success(),
        "crash child failed on its own: {status:?}"
    );
    (lines, exited_by_itself)
}

/// Reopens after a kill and checks every invariant. Returns the number of
/// stored experiences.
async fn verify(path: &Path, acked: &Acked, full_search_check: bool) -> usize {
    let db = within(PulseHandle::open(path, crash_config()))
        .await
        .expect("reopen after SIGKILL");
    let Some(c) = acked.collective else {
        // Killed before its collective was announced: the file opens; at most
        // one collective exists.
        assert!(db.list_collectives().await.unwrap().len() <= 1);
        db.close().await.unwrap();
        return 0;
    };
    let collectives = db.list_collectives().await.unwrap();
    assert_eq!(collectives.len(), 1, "{collectives:?}");

    // Every stored experience, whole.
    let mut stored: BTreeMap<ExperienceId, Experience> = BTreeMap::new();
    for e in all_experiences(&db, c).await {
        assert_eq!(e.embedding.len(), DIM, "{} has no embedding", e.id);
        assert!(e.content.starts_with("crash "), "{e:?}");
        stored.insert(e.id, e);
    }
    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!(stats.experience_count as usize, stored.len());

    // Every acknowledged experience is present and intact (unless a delete
    // of it was at least sent), and every acknowledged delete happened.
    for (eid, seed) in &acked.experiences {
        if acked.deleted.contains(eid) {
            assert!(
                !stored.contains_key(eid),
                "acknowledged delete of {eid} lost"
            );
            assert!(db.get_experience(*eid).await.unwrap().is_none());
            continue;
        }
        let Some(e) = stored.get(eid) else {
            assert!(
                acked.delete_sent.contains(eid),
                "acknowledged experience {eid} (seed {seed}) lost"
            );
            continue;
        };
        assert_eq!(e.content, format!("crash {seed}"));
        assert_eq!(e.embedding, vector(*seed, DIM), "{eid}: embedding changed");
        assert_eq!(e.collective_id, c);
        if acked.archived.contains(eid) {
            assert!(e.archived, "acknowledged archive of {eid} lost");
        } else if !acked.archive_sent.contains(eid) {
            assert!(!e.archived, "{eid} archived without being asked");
        }
        assert_eq!(db.get_experience(*eid).await.unwrap().as_ref(), Some(e));
    }
    // Nothing stored that no child wrote (a write in flight at the kill may
    // have committed without its acknowledgement being printed: then its id
    // is unknown here, but its content says which seed it was).
    for e in stored.values() {
        if let Some(seed) = acked.experiences.get(&e.id) {
            assert_eq!(e.content, format!("crash {seed}"));
        } else {
            let seed: u64 = e.content["crash ".len()..].parse().unwrap();
            assert_eq!(e.embedding, vector(seed, DIM), "unacknowledged record torn");
        }
    }

    // Relations: both ends exist in the collective; acknowledged ones are
    // present unless an end was (possibly) deleted.
    let mut relations = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = db.list_relations(c, 1000, offset).await.unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        for r in page {
            assert!(
                stored.contains_key(&r.source_id),
                "relation {} lost its source",
                r.id
            );
            assert!(
                stored.contains_key(&r.target_id),
                "relation {} lost its target",
                r.id
            );
            relations.insert(r.id, r);
        }
    }
    assert_eq!(stats.relation_count as usize, relations.len());
    for (rid, (s, t)) in &acked.relations {
        let end_gone = [s, t].iter().any(|e| acked.delete_sent.contains(*e));
        match relations.get(rid) {
            Some(r) => assert_eq!((r.source_id, r.target_id), (*s, *t)),
            None => assert!(end_gone, "acknowledged relation {rid} lost"),
        }
        if [s, t].iter().any(|e| acked.deleted.contains(*e)) {
            assert!(
                !relations.contains_key(rid),
                "relation of a deleted end kept"
            );
        }
    }

    // Insights: acknowledged ones intact; every stored one whole.
    let mut insights = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = db.list_insights(c, 1000, offset).await.unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        for i in page {
            assert_eq!(i.embedding.len(), DIM);
            assert!(!i.source_experience_ids.is_empty());
            insights.insert(i.id, i);
        }
    }
    assert_eq!(stats.insight_count as usize, insights.len());
    for (iid, (seed, sources)) in &acked.insights {
        let i = insights
            .get(iid)
            .unwrap_or_else(|| panic!("acknowledged insight {iid} lost"));
        assert_eq!(i.content, format!("insight {seed}"));
        assert_eq!(&i.source_experience_ids, sources);
        assert_eq!(i.embedding, vector(seed ^ INSIGHT_SALT, DIM));
    }

    // The index agrees with redb: same count, each record found by its own
    // vector (archived ones are excluded from search by default).
    let index = db.index_stats(c).await.unwrap();
    assert_eq!(index.indexed, stored.len(), "index count != stored count");
    if stored.len() >= HNSW_THRESHOLD + index.staged {
        assert!(index.hnsw, "{} records but no HNSW graph", stored.len());
    }
    assert_eq!(index.insights, insights.len());
    let live: Vec<&Experience> = stored.values().filter(|e| !e.archived).collect();
    let step = if full_search_check { 1 } else { 7 };
    for e in live.iter().step_by(step) {
        let hits = db.search_similar(c, &e.embedding, 5).await.unwrap();
        assert!(
            hits.iter().any(|h| h.experience.id == e.id),
            "{} not found by its own vector",
            e.id
        );
    }
    for i in insights.values().step_by(step) {
        let hits = db.get_insights(c, &i.embedding, 3).await.unwrap();
        assert!(
            hits.iter().any(|(h, _)| h.id == i.id),
            "insight {} not found",
            i.id
        );
    }

    // Change events are strictly increasing.
    let mut since = 0;
    let mut last = 0;
    loop {
        let (events, next) = db.poll_changes(since).await.unwrap();
        for ev in &events {
            assert!(ev.sequence > last, "event sequences out of order");
            last = ev.sequence;
        }
        if next == since {
            break;
        }
        since = next;
    }
    assert_eq!(since, db.get_current_sequence().await.unwrap());
    within(db.close()).await.unwrap();

    // The whole change log is gap-free.
    let storage = RedbStorage::open(&OpenOptions {
        location: Location::File(path.to_path_buf()),
        dimension: DIM,
        durability: Durability::Immediate,
        read_only: true,
        embedder_model: None,
        cache_size: None,
    })
    .unwrap();
    let current = storage.current_sequence().unwrap();
    let seqs: Vec<u64> = storage
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        seqs,
        (1..=current).collect::<Vec<_>>(),
        "change log has gaps"
    );
    drop(storage);

    // redb's own integrity check passes.
    let mut raw = redb::Database::open(path).expect("raw redb open");
    assert!(
        raw.check_integrity().expect("integrity check"),
        "redb repaired the file"
    );
    stored.len()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let n = iterations();
    let seed: u64 = std::env::var("PULSEDB_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("crash test: {n} iterations, PULSEDB_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = TempDb::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acked = Acked::default();
    let mut survived = 0;
    let mut total_lines = 0;
    let mut total_experiences = 0;
    for i in 0..n {
        // A fresh file every GENERATION kills keeps each verification short.
        if i > 0 && i % GENERATION == 0 {
            t = TempDb::new();
            acked = Acked::default();
        }
        // Mostly mid-write kills; sometimes right at start (during open or
        // index recovery).
        let kill_after = if rng.gen_bool(0.1) {
            0
        } else {
            rng.gen_range(1..200)
        };
        let base = (i as u64 + 1) * 100_000_000;
        let (lines, exited) = run_and_kill(&t.path, base, kill_after);
        assert!(!exited, "iteration {i}: child finished before the kill");
        total_lines += lines.len();
        total_experiences += lines.iter().filter(|l| l.starts_with("E ")).count();
        for line in &lines {
            acked.take(line);
        }
        let last = i + 1 == n || (i + 1) % GENERATION == 0;
        let stored = rt.block_on(verify(&t.path, &acked, last));
        survived += 1;
        eprintln!(
            "iteration {i}: killed after {} lines, {stored} experiences stored",
            lines.len()
        );
    }
    eprintln!(
        "crash test: survived {survived} SIGKILLs, {total_lines} acknowledged writes \
         ({total_experiences} experiences)"
    );
    assert_eq!(survived, n);
    assert!(total_experiences > n, "children acknowledged too little");
}
