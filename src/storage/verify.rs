//! The stored tables checked against each other (`pulsedb check`): every
//! record decodes, every lookup entry points at a record that agrees with
//! it, and every record has its lookup entries. One read transaction, one
//! pass per table.

use std::collections::HashMap;

use ::redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle};

use super::redb::RedbStorage;
use super::schema::{self, key};
use super::{codec, StorageError};
use crate::error::Result;

/// Ids named in one problem, at most.
const NAMED: usize = 3;

/// Tallies one kind of problem: how many, and the first few ids.
struct Tally {
    what: String,
    count: usize,
    examples: Vec<String>,
}

impl Tally {
    fn new(what: impl Into<String>) -> Self {
        Tally {
            what: what.into(),
            count: 0,
            examples: Vec::new(),
        }
    }

    fn note(&mut self, id: &[u8]) {
        self.count += 1;
        if self.examples.len() < NAMED {
            self.examples.push(hex(id));
        }
    }

    fn report(self, problems: &mut Vec<String>) {
        if self.count > 0 {
            problems.push(format!(
                "{}: {} (e.g. {})",
                self.what,
                self.count,
                self.examples.join(", ")
            ));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 16-byte id at `at` of a key.
fn id_at(k: &[u8], at: usize) -> Option<[u8; 16]> {
    k.get(at..at + 16)?.try_into().ok()
}

/// What a relation's lookup entries must be.
struct RelationKeys {
    by_source: Vec<u8>,
    by_target: Vec<u8>,
    unique: Vec<u8>,
    collective: [u8; 16],
}

type Table = ::redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
type Index = ::redb::ReadOnlyTable<&'static [u8], ()>;

fn open(txn: &ReadTransaction, t: TableDefinition<&[u8], &[u8]>) -> Result<Table> {
    Ok(txn.open_table(t).map_err(StorageError::from)?)
}

fn open_index(txn: &ReadTransaction, t: TableDefinition<&[u8], ()>) -> Result<Index> {
    Ok(txn.open_table(t).map_err(StorageError::from)?)
}

/// Walks a lookup table (`&[u8] → ()`): every key `agrees` rejects is a
/// problem; when `expected` is given, so is a count of agreeing keys other
/// than it (records without their entry). Answers how many agreed.
fn walk_lookup(
    txn: &ReadTransaction,
    table: TableDefinition<&[u8], ()>,
    expected: Option<usize>,
    problems: &mut Vec<String>,
    agrees: impl Fn(&[u8]) -> bool,
) -> Result<usize> {
    let name = table.name().to_string();
    let mut seen = 0;
    let mut dangling = Tally::new(format!("{name} entries that disagree with the records"));
    for item in open_index(txn, table)?.iter().map_err(StorageError::from)? {
        let (k, _) = item.map_err(StorageError::from)?;
        if agrees(k.value()) {
            seen += 1;
        } else {
            dangling.note(k.value());
        }
    }
    dangling.report(problems);
    if let Some(n) = expected.filter(|n| *n != seen) {
        problems.push(format!("{name}: {seen} entries for {n} records"));
    }
    Ok(seen)
}

/// The collective and record ids of a `collective ‖ id` key.
fn pair(k: &[u8]) -> Option<([u8; 16], [u8; 16])> {
    Some((id_at(k, 0)?, id_at(k, 16)?))
}

impl RedbStorage {
    /// Checks the tables against each other: one line per kind of
    /// problem, and the number of relation records read.
    ///
    /// # Errors
    /// A storage fault (damage shows as problems, not errors).
    pub(crate) fn verify_tables(&self) -> Result<(Vec<String>, u64)> {
        let txn = self.read_txn()?;
        let mut problems = Vec::new();
        let homes = verify_experiences(&txn, &mut problems)?;
        let relations = verify_relations(&txn, &homes, &mut problems)?;
        verify_insights(&txn, &mut problems)?;
        verify_logged_rows(&txn, &homes, &mut problems)?;
        Ok((problems, relations))
    }
}

/// Experiences, their collective list and their counters; answers each
/// experience's collective.
fn verify_experiences(
    txn: &ReadTransaction,
    problems: &mut Vec<String>,
) -> Result<HashMap<[u8; 16], [u8; 16]>> {
    let mut homes: HashMap<[u8; 16], [u8; 16]> = HashMap::new();
    let mut undecodable = Tally::new("experience records that do not decode");
    for item in open(txn, schema::EXPERIENCES)?
        .iter()
        .map_err(StorageError::from)?
    {
        let (k, v) = item.map_err(StorageError::from)?;
        match (
            id_at(k.value(), 0),
            codec::decode_experience_row(v.value(), false),
        ) {
            (Some(id), Ok(x)) => {
                homes.insert(id, *x.collective_id.as_bytes());
            }
            _ => undecodable.note(k.value()),
        }
    }
    undecodable.report(problems);
    let listed = walk_lookup(txn, schema::EXP_BY_COLLECTIVE, None, problems, |k| {
        pair(k).is_some_and(|(c, id)| homes.get(&id) == Some(&c))
    })?;
    if listed != homes.len() {
        let mut unlisted = Tally::new("experiences missing from experiences_by_collective");
        let keys = open_index(txn, schema::EXP_BY_COLLECTIVE)?;
        for (id, c) in &homes {
            if keys
                .get(key(&[c, id]).as_slice())
                .map_err(StorageError::from)?
                .is_none()
            {
                unlisted.note(id);
            }
        }
        unlisted.report(problems);
    }

    let mut orphans = Tally::new("reinforcement counters of no stored experience");
    for item in txn
        .open_table(schema::REINFORCEMENTS)
        .map_err(StorageError::from)?
        .iter()
        .map_err(StorageError::from)?
    {
        let (k, _) = item.map_err(StorageError::from)?;
        if !id_at(k.value(), 0).is_some_and(|id| homes.contains_key(&id)) {
            orphans.note(k.value());
        }
    }
    orphans.report(problems);
    Ok(homes)
}

/// Relations: both ends stored, in one collective, with their three lookup
/// entries and their uniqueness entry. Answers how many records it read.
fn verify_relations(
    txn: &ReadTransaction,
    homes: &HashMap<[u8; 16], [u8; 16]>,
    problems: &mut Vec<String>,
) -> Result<u64> {
    let mut relations: HashMap<[u8; 16], RelationKeys> = HashMap::new();
    let mut read = 0;
    let mut bad = Tally::new("relation records that do not decode or link missing experiences");
    for item in open(txn, schema::RELATIONS)?
        .iter()
        .map_err(StorageError::from)?
    {
        let (k, v) = item.map_err(StorageError::from)?;
        read += 1;
        let decoded = codec::decode_relation(v.value()).ok();
        let ends = decoded.as_ref().and_then(|r| {
            let s = homes.get(r.source_id.as_bytes())?;
            let t = homes.get(r.target_id.as_bytes())?;
            (s == t).then_some(*s)
        });
        match (id_at(k.value(), 0), decoded, ends) {
            (Some(id), Some(r), Some(c)) => {
                let (s, t) = (r.source_id.as_bytes(), r.target_id.as_bytes());
                relations.insert(
                    id,
                    RelationKeys {
                        by_source: key(&[s, &id]),
                        by_target: key(&[t, &id]),
                        unique: key(&[s, t, &[r.relation_type.code()]]),
                        collective: c,
                    },
                );
            }
            _ => bad.note(k.value()),
        }
    }
    bad.report(problems);
    let n = Some(relations.len());
    let of = |k: &[u8]| id_at(k, 16).and_then(|id| relations.get(&id));
    walk_lookup(txn, schema::REL_BY_SOURCE, n, problems, |k| {
        of(k).is_some_and(|r| r.by_source == k)
    })?;
    walk_lookup(txn, schema::REL_BY_TARGET, n, problems, |k| {
        of(k).is_some_and(|r| r.by_target == k)
    })?;
    walk_lookup(txn, schema::REL_BY_COLLECTIVE, n, problems, |k| {
        pair(k).is_some_and(|(c, _)| of(k).is_some_and(|r| r.collective == c))
    })?;
    let mut dangling = Tally::new("relations_unique entries that disagree with relations");
    for item in open(txn, schema::REL_UNIQUE)?
        .iter()
        .map_err(StorageError::from)?
    {
        let (k, v) = item.map_err(StorageError::from)?;
        let agrees = id_at(v.value(), 0)
            .and_then(|id| relations.get(&id))
            .is_some_and(|r| r.unique == k.value());
        if !agrees {
            dangling.note(k.value());
        }
    }
    dangling.report(problems);
    Ok(read)
}

/// Insights and their collective list.
fn verify_insights(txn: &ReadTransaction, problems: &mut Vec<String>) -> Result<()> {
    let mut insights: HashMap<[u8; 16], [u8; 16]> = HashMap::new();
    let mut undecodable = Tally::new("insight records that do not decode");
    for item in open(txn, schema::INSIGHTS)?
        .iter()
        .map_err(StorageError::from)?
    {
        let (k, v) = item.map_err(StorageError::from)?;
        match (id_at(k.value(), 0), codec::decode_insight(v.value())) {
            (Some(id), Ok(i)) => {
                insights.insert(id, *i.collective_id.as_bytes());
            }
            _ => undecodable.note(k.value()),
        }
    }
    undecodable.report(problems);
    walk_lookup(
        txn,
        schema::INSIGHTS_BY_COLLECTIVE,
        Some(insights.len()),
        problems,
        |k| pair(k).is_some_and(|(c, id)| insights.get(&id) == Some(&c)),
    )?;
    Ok(())
}

/// Change-log entries that refer to their experience's row instead of
/// holding a copy: each must be found by its experience's key in
/// `experience_logged_at` (or the row's next write would leave it reading
/// the newer record), and each key must name a stored experience. Entries
/// that do not decode are the change-log check's to report.
fn verify_logged_rows(
    txn: &ReadTransaction,
    homes: &HashMap<[u8; 16], [u8; 16]>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let logged_at = match txn.open_table(schema::LOGGED_AT) {
        Ok(t) => t,
        // A file of an older schema opened read-only: every entry holds
        // its copy.
        Err(::redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(StorageError::from(e).into()),
    };
    let mut found_by: HashMap<[u8; 16], u64> = HashMap::new();
    let mut stray = Tally::new("experience_logged_at entries of no stored experience");
    for item in logged_at.iter().map_err(StorageError::from)? {
        let (k, v) = item.map_err(StorageError::from)?;
        match id_at(k.value(), 0).filter(|id| homes.contains_key(id)) {
            Some(id) => {
                found_by.insert(id, v.value());
            }
            None => stray.note(k.value()),
        }
    }
    stray.report(problems);
    let mut lost = Tally::new(
        "change-log entries referring to a row that experience_logged_at does not lead to",
    );
    let wal = txn.open_table(schema::WAL).map_err(StorageError::from)?;
    for item in wal.iter().map_err(StorageError::from)? {
        let (k, v) = item.map_err(StorageError::from)?;
        if let Ok((change, true)) = codec::decode_change_entry(v.value()) {
            if found_by.get(&change.entity_id) != Some(&k.value()) {
                lost.note(&change.entity_id);
            }
        }
    }
    lost.report(problems);
    Ok(())
}
