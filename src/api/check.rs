//! Verifying and compacting a database: what `pulsedb check` and
//! `pulsedb compact` run.

use std::collections::HashSet;
use std::path::Path;

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::actors::blocking;
use crate::actors::storage::StorageMsg;
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::experience::ExperienceId;
use crate::id::Timestamp;
use crate::insight::InsightId;
use crate::storage::{RedbStorage, StorageError, StorageRead, StorageWrite};

/// Change-log entries read per step of the gap check.
const LOG_BATCH: usize = 4096;
/// Ids named in one problem's message, at most.
const NAMED: usize = 3;
/// Change-log entries one compaction transaction removes, at most.
const COMPACT_BATCH: usize = 10_000;

/// What [`PulseHandle::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Collectives checked.
    pub collectives: usize,
    /// Experiences checked (each record decoded, its embedding read).
    pub experiences: u64,
    /// Insights checked.
    pub insights: u64,
    /// Relations checked.
    pub relations: u64,
    /// Change-log entries checked.
    pub log_entries: u64,
    /// One line per problem found; empty when everything holds.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether everything holds.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl PulseHandle {
    /// Verifies the database against itself: the stored tables agree
    /// (every lookup entry points at a record that agrees with it, every
    /// record has its lookup entries, every record decodes); every stored
    /// experience belongs to its collective and has a finite embedding of
    /// the database's dimension; every collective's vector indexes, as
    /// loaded, hold exactly its stored experiences and insights; every
    /// relation links two stored experiences of its collective; the change
    /// log runs without a gap from its compaction point to the current
    /// sequence.
    ///
    /// Meant for a quiet database (`pulsedb check` opens the file alone):
    /// writes committing meanwhile can show up as differences between an
    /// index and storage.
    ///
    /// # Errors
    /// `Closed`, or a storage fault that stops the check (a record that
    /// does not decode is a problem in the report, not an error).
    pub async fn check(&self) -> Result<CheckReport> {
        let e = &self.engine;
        e.run("check", None, Access::Read, Admission::Wait, async {
            // Everything acknowledged is committed and sent to its index.
            let _ = e.storage_actor.call(StorageMsg::Barrier, None).await;
            let dimension = self.metadata().embedding_dimension;
            // The stored tables against each other first.
            let (problems, relations) = e.read(|s| s.verify_tables()).await?;
            let mut report = CheckReport {
                problems,
                relations,
                ..CheckReport::default()
            };
            let collectives = e.read(|s| s.list_collectives()).await?;
            report.collectives = collectives.len();
            for c in collectives {
                let cid = c.id;
                let name = &c.name;
                // Damage in one collective is a problem of the report; the
                // others are still checked.
                let read = e.read(move |s| stored_records(s, cid, dimension)).await;
                let stored = match damage(read, &mut report.problems, name)? {
                    Some(stored) => stored,
                    None => continue,
                };
                let index = match damage(e.index(cid).await, &mut report.problems, name)? {
                    Some(index) => index,
                    None => continue,
                };
                let (indexed, indexed_insights) = e.blocking(move || index.live_ids()).await?;
                report.experiences += stored.experiences.len() as u64;
                report.insights += stored.insights.len() as u64;
                report.problems.extend(stored.problems);
                compare(
                    &mut report.problems,
                    &format!("collective {name:?}: experience index"),
                    &stored.experiences,
                    &indexed,
                );
                compare(
                    &mut report.problems,
                    &format!("collective {name:?}: insight index"),
                    &stored.insights,
                    &indexed_insights,
                );
            }
            let (entries, problems) = e.read(check_log).await?;
            report.log_entries = entries;
            report.problems.extend(problems);
            Ok(report)
        })
        .await
    }

    /// Removes every change-log entry older than the configured retention
    /// (`config.change_log.retention`) now, instead of in the background,
    /// never one a replication peer has not taken. Returns how many were
    /// removed. The file's free pages go back to the system on
    /// [`close`](Self::close) (with `compact_on_close`).
    ///
    /// # Errors
    /// `ReadOnly`, `Closed`, or a storage fault (what was removed before it
    /// stays removed; nothing else changes).
    pub async fn compact_change_log(&self) -> Result<u64> {
        let e = &self.engine;
        let retention = e.config.change_log.retention;
        e.run(
            "compact_change_log",
            None,
            Access::Write,
            Admission::Wait,
            async {
                let now = Timestamp::now();
                let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                let before = Timestamp(now.0.saturating_sub(millis));
                let mut removed = 0;
                loop {
                    let n = e
                        .read(move |s| s.compact_expired_changes(before, COMPACT_BATCH))
                        .await?;
                    removed += n;
                    if n == 0 {
                        return Ok(removed);
                    }
                }
            },
        )
        .await
    }
}

/// redb's own integrity check of the file at `path`: its checksums and
/// trees. Needs the file to itself (no handle open on it). Returns `true`
/// when the file was sound; `false` when redb found damage and repaired it
/// (what was lost is then unknown: run [`PulseHandle::check`]).
///
/// # Errors
/// `DatabaseLocked` when the file is open, or a storage fault (damage redb
/// cannot repair included).
pub async fn check_file_integrity(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref().to_path_buf();
    blocking(move || RedbStorage::check_file_integrity(&path)).await
}

/// What storage holds for one collective.
struct Stored {
    experiences: Vec<ExperienceId>,
    insights: Vec<InsightId>,
    problems: Vec<String>,
}

/// Reads every record of collective `c` and checks each on its own.
fn stored_records(s: &RedbStorage, c: CollectiveId, dimension: usize) -> Result<Stored> {
    let mut problems = Vec::new();
    let mut experiences = Vec::new();
    let mut bad = Vec::new();
    s.scan_experiences(c, true, &mut |x| {
        let v = &x.embedding;
        if x.collective_id != c
            || v.len() != dimension
            || v.iter().any(|f| !f.is_finite())
            || v.iter().all(|f| *f == 0.0)
        {
            bad.push(x.id);
        }
        experiences.push(x.id);
    })?;
    if !bad.is_empty() {
        problems.push(format!(
            "collective {c}: {} experiences with a wrong collective or embedding, e.g. {}",
            bad.len(),
            named(&bad)
        ));
    }

    let mut insights = Vec::new();
    loop {
        let page = s.list_insight_ids(c, 1000, insights.len())?;
        if page.is_empty() {
            break;
        }
        insights.extend(page);
    }
    Ok(Stored {
        experiences,
        insights,
        problems,
    })
}

/// `Some` of a result, or `None` with the problem noted when the result
/// is damaged data (a record that does not decode, a broken invariant);
/// other errors stop the check.
fn damage<T>(r: Result<T>, problems: &mut Vec<String>, collective: &str) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Storage(why @ (StorageError::Codec { .. } | StorageError::Corrupt(_)))) => {
            problems.push(format!("collective {collective:?}: unreadable: {why}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Notes the ids only storage or only the index holds.
fn compare<Id>(problems: &mut Vec<String>, what: &str, stored: &[Id], indexed: &[Id])
where
    Id: Copy + Eq + std::hash::Hash + std::fmt::Display,
{
    let stored_set: HashSet<Id> = stored.iter().copied().collect();
    let indexed_set: HashSet<Id> = indexed.iter().copied().collect();
    let missing: Vec<Id> = stored
        .iter()
        .filter(|id| !indexed_set.contains(id))
        .copied()
        .collect();
    let extra: Vec<Id> = indexed
        .iter()
        .filter(|id| !stored_set.contains(id))
        .copied()
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{what} lacks {} stored records, e.g. {}",
            missing.len(),
            named(&missing)
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "{what} holds {} records storage does not, e.g. {}",
            extra.len(),
            named(&extra)
        ));
    }
    if indexed.len() != indexed_set.len() {
        problems.push(format!(
            "{what} holds {} duplicate entries",
            indexed.len() - indexed_set.len()
        ));
    }
}

fn named<Id: std::fmt::Display>(ids: &[Id]) -> String {
    let shown: Vec<String> = ids.iter().take(NAMED).map(ToString::to_string).collect();
    shown.join(", ")
}

/// Walks the change log: entries must run from just after the compaction
/// point to the current sequence, one by one. Returns the entries seen and
/// the problems.
fn check_log(s: &RedbStorage) -> Result<(u64, Vec<String>)> {
    let floor = s.compacted_through()?;
    let current = s.current_sequence()?;
    let mut problems = Vec::new();
    let (mut expected, mut seen) = (floor + 1, 0u64);
    loop {
        let batch = match s.changes_since(expected - 1, LOG_BATCH) {
            Ok(b) => b,
            Err(Error::Storage(why @ (StorageError::Codec { .. } | StorageError::Corrupt(_)))) => {
                problems.push(format!(
                    "change log: entry after {} unreadable: {why}",
                    expected - 1
                ));
                return Ok((seen, problems));
            }
            Err(e) => return Err(e),
        };
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        for (sequence, _) in &batch {
            if *sequence != expected {
                problems.push(format!(
                    "change log: gap, entries {expected}..{sequence} missing"
                ));
            }
            expected = sequence + 1;
            seen += 1;
        }
        if last >= current {
            break;
        }
    }
    if expected != current + 1 && current > floor {
        problems.push(format!(
            "change log: ends at {} but the current sequence is {current}",
            expected - 1
        ));
    }
    Ok((seen, problems))
}
