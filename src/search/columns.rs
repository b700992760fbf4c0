//! The per-slot filter columns a collective actor keeps in memory, and the
//! slot ↔ id map of its experience index.
//!
//! A [`SearchFilter`] becomes an eligibility bitmap ([`SlotSet`]) over these
//! columns, which the vector index applies *during* its traversal — so a
//! filtered search returns `k` results whenever `k` experiences match.
//!
//! Set-valued fields (archived, type, domains, tags) keep a compressed
//! posting bitmap per value, so a filter on them costs a few bitmap
//! operations rather than a pass over every row; only the numeric
//! thresholds look at rows, and only at the rows the bitmaps admit.

use std::collections::HashMap;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::experience::{Experience, ExperienceId, ExperienceTypeTag};
use crate::id::Timestamp;
use crate::index::{Slot, SlotSet};
use crate::search::SearchFilter;

/// The filterable fields of one experience.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    archived: bool,
    type_tag: ExperienceTypeTag,
    importance: f32,
    confidence: f32,
    timestamp: Timestamp,
    /// Interned domain ids, sorted.
    domains: Vec<u32>,
    /// Interned `(key, value)` tag ids, sorted.
    tags: Vec<u32>,
}

/// Slot map plus filter columns for one collective's experiences.
///
/// Slots are bitmap positions, so a collective holds at most `u32::MAX`
/// slots over its lifetime.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    rows: Vec<Option<Row>>,
    slot_of: HashMap<ExperienceId, Slot>,
    domain_ids: HashMap<String, u32>,
    /// Tag key → value → id; ids are numbered across all pairs.
    tag_ids: HashMap<String, HashMap<String, u32>>,
    tag_count: u32,
    live: usize,
    archived: usize,
    postings: Postings,
}

/// Posting bitmaps: for each value, the slots that hold it.
#[derive(Debug, Default)]
struct Postings {
    live: RoaringBitmap,
    archived: RoaringBitmap,
    by_type: HashMap<ExperienceTypeTag, RoaringBitmap>,
    by_domain: HashMap<u32, RoaringBitmap>,
    by_tag: HashMap<u32, RoaringBitmap>,
}

impl Postings {
    fn add(&mut self, slot: u32, row: &Row) {
        self.live.insert(slot);
        if row.archived {
            self.archived.insert(slot);
        }
        self.by_type.entry(row.type_tag).or_default().insert(slot);
        for d in &row.domains {
            self.by_domain.entry(*d).or_default().insert(slot);
        }
        for t in &row.tags {
            self.by_tag.entry(*t).or_default().insert(slot);
        }
    }

    fn remove(&mut self, slot: u32, row: &Row) {
        self.live.remove(slot);
        self.archived.remove(slot);
        if let Some(b) = self.by_type.get_mut(&row.type_tag) {
            b.remove(slot);
        }
        for d in &row.domains {
            if let Some(b) = self.by_domain.get_mut(d) {
                b.remove(slot);
            }
        }
        for t in &row.tags {
            if let Some(b) = self.by_tag.get_mut(t) {
                b.remove(slot);
            }
        }
    }
}

/// [`Columns`] as saved with an index snapshot: each slot's id and row,
/// and the interned vocabularies in id order. The posting bitmaps and
/// counts are derived again on load.
#[derive(Serialize, Deserialize)]
struct Persisted {
    rows: Vec<Option<([u8; 16], Row)>>,
    domains: Vec<String>,
    tags: Vec<(String, String)>,
}

/// A slot as a bitmap position (see [`Columns`] for the ceiling).
fn bit(slot: Slot) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX)
}

impl Columns {
    /// Number of live experiences.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The next unused slot.
    pub(crate) fn next_slot(&self) -> Slot {
        self.rows.len() as Slot
    }

    pub(crate) fn slot_of(&self, id: &ExperienceId) -> Option<Slot> {
        self.slot_of.get(id).copied()
    }

    /// Records an experience under `slot` (which must be `next_slot()` or a
    /// free slot from a snapshot).
    pub(crate) fn insert(&mut self, slot: Slot, exp: &Experience) {
        let row = self.row_of(exp);
        let i = slot as usize;
        if self.rows.len() <= i {
            self.rows.resize(i + 1, None);
        }
        self.postings.add(bit(slot), &row);
        if let Some(old) = self.rows[i].replace(row) {
            self.forget_counts(&old);
        }
        if exp.archived {
            self.archived += 1;
        }
        self.live += 1;
        self.slot_of.insert(exp.id, slot);
    }

    /// Refreshes the filter fields of a known experience.
    pub(crate) fn update(&mut self, exp: &Experience) {
        let Some(slot) = self.slot_of(&exp.id) else {
            return;
        };
        let row = self.row_of(exp);
        if let Some(cell) = self.rows.get_mut(slot as usize) {
            if let Some(old) = cell.as_ref() {
                self.postings.remove(bit(slot), old);
                self.archived -= usize::from(old.archived);
            }
            self.postings.add(bit(slot), &row);
            *cell = Some(row);
            self.archived += usize::from(exp.archived);
        }
    }

    /// Forgets an experience; returns its slot.
    pub(crate) fn remove(&mut self, id: &ExperienceId) -> Option<Slot> {
        let slot = self.slot_of.remove(id)?;
        if let Some(old) = self.rows.get_mut(slot as usize).and_then(Option::take) {
            self.postings.remove(bit(slot), &old);
            self.forget_counts(&old);
        }
        Some(slot)
    }

    fn forget_counts(&mut self, old: &Row) {
        self.live -= 1;
        self.archived -= usize::from(old.archived);
    }

    fn intern_tag(&mut self, key: &str, value: &str) -> u32 {
        if let Some(id) = self.tag_ids.get(key).and_then(|values| values.get(value)) {
            return *id;
        }
        let id = self.tag_count;
        self.tag_count += 1;
        self.tag_ids
            .entry(key.to_owned())
            .or_default()
            .insert(value.to_owned(), id);
        id
    }

    fn row_of(&mut self, exp: &Experience) -> Row {
        let mut domains: Vec<u32> = exp
            .domain
            .iter()
            .map(|d| intern(&mut self.domain_ids, d))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let mut tags: Vec<u32> = exp
            .tags
            .iter()
            .map(|(k, v)| self.intern_tag(k, v))
            .collect();
        tags.sort_unstable();
        Row {
            archived: exp.archived,
            type_tag: exp.experience_type.tag(),
            importance: exp.importance,
            confidence: exp.confidence,
            timestamp: exp.timestamp,
            domains,
            tags,
        }
    }

    /// The slots `filter` admits, or `None` when it admits every live slot.
    pub(crate) fn eligible(&self, filter: &SearchFilter) -> Option<SlotSet> {
        let trivial = filter.domains.is_none()
            && filter.tags_all.is_none()
            && filter.experience_types.is_none()
            && filter.min_importance.is_none()
            && filter.min_confidence.is_none()
            && filter.since.is_none()
            && (!filter.exclude_archived || self.archived == 0);
        if trivial {
            return None;
        }
        let mut set = SlotSet::new(self.rows.len());
        let Some(compiled) = Compiled::new(self, filter) else {
            return Some(set);
        };
        let p = &self.postings;
        let mut admitted = p.live.clone();
        if filter.exclude_archived {
            admitted -= &p.archived;
        }
        if let Some(types) = &filter.experience_types {
            let mut any = RoaringBitmap::new();
            for t in types {
                if let Some(b) = p.by_type.get(t) {
                    any |= b;
                }
            }
            admitted &= any;
        }
        if let Some(domains) = &compiled.domains {
            let mut any = RoaringBitmap::new();
            for d in domains {
                if let Some(b) = p.by_domain.get(d) {
                    any |= b;
                }
            }
            admitted &= any;
        }
        if let Some(tags) = &compiled.tags {
            for t in tags {
                match p.by_tag.get(t) {
                    Some(b) => admitted &= b,
                    None => admitted.clear(),
                }
            }
        }
        let numeric = filter.min_importance.is_some()
            || filter.min_confidence.is_some()
            || filter.since.is_some();
        for slot in admitted.iter() {
            let passes = !numeric
                || self
                    .rows
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|row| compiled.admits(row));
            if passes {
                set.insert(Slot::from(slot));
            }
        }
        Some(set)
    }

    /// The columns as bytes, to be saved with an index snapshot.
    ///
    /// # Errors
    /// The encoder's, which the caller turns into a failed snapshot.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut ids: Vec<Option<[u8; 16]>> = vec![None; self.rows.len()];
        for (id, slot) in &self.slot_of {
            if let Some(cell) = ids.get_mut(*slot as usize) {
                *cell = Some(*id.as_bytes());
            }
        }
        let rows = self
            .rows
            .iter()
            .zip(ids)
            .map(|(row, id)| Some((id?, row.clone()?)))
            .collect();
        let mut domains = vec![String::new(); self.domain_ids.len()];
        for (name, id) in &self.domain_ids {
            domains[*id as usize] = name.clone();
        }
        let mut tags = vec![(String::new(), String::new()); self.tag_count as usize];
        for (key, values) in &self.tag_ids {
            for (value, id) in values {
                tags[*id as usize] = (key.clone(), value.clone());
            }
        }
        postcard::to_allocvec(&Persisted {
            rows,
            domains,
            tags,
        })
    }

    /// Columns saved by [`encode`](Self::encode); `None` when the bytes do
    /// not decode or do not hold together (an id under two slots, a
    /// vocabulary id out of range): the caller rebuilds from redb.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Columns> {
        let saved: Persisted = postcard::from_bytes(bytes).ok()?;
        let mut columns = Columns {
            rows: Vec::with_capacity(saved.rows.len()),
            tag_count: u32::try_from(saved.tags.len()).ok()?,
            ..Columns::default()
        };
        for (id, name) in saved.domains.into_iter().enumerate() {
            let id = u32::try_from(id).ok()?;
            columns
                .domain_ids
                .insert(name, id)
                .is_none()
                .then_some(())?;
        }
        for (id, (key, value)) in saved.tags.into_iter().enumerate() {
            let id = u32::try_from(id).ok()?;
            let values = columns.tag_ids.entry(key).or_default();
            values.insert(value, id).is_none().then_some(())?;
        }
        let domains = columns.domain_ids.len();
        for (slot, cell) in saved.rows.into_iter().enumerate() {
            let Some((id, row)) = cell else {
                columns.rows.push(None);
                continue;
            };
            let in_range = row.domains.iter().all(|d| (*d as usize) < domains)
                && row.tags.iter().all(|t| *t < columns.tag_count);
            let bit = u32::try_from(slot).ok()?;
            let fresh = columns
                .slot_of
                .insert(ExperienceId::from_bytes(id), Slot::from(bit))
                .is_none();
            if !in_range || !fresh {
                return None;
            }
            columns.postings.add(bit, &row);
            columns.live += 1;
            columns.archived += usize::from(row.archived);
            columns.rows.push(Some(row));
        }
        Some(columns)
    }

    /// Every (slot, id) pair, for snapshots.
    pub(crate) fn slot_ids(&self) -> Vec<(Slot, ExperienceId)> {
        let mut v: Vec<_> = self.slot_of.iter().map(|(id, s)| (*s, *id)).collect();
        v.sort_unstable_by_key(|(s, _)| *s);
        v
    }
}

/// The id of `key` in `map`, numbered from 0 in order of first sight. Looks
/// up by reference, so a known value (nearly every one) allocates nothing.
fn intern(map: &mut HashMap<String, u32>, key: &str) -> u32 {
    if let Some(id) = map.get(key) {
        return *id;
    }
    let next = map.len() as u32;
    map.insert(key.to_owned(), next);
    next
}

/// A filter resolved against the interned vocabularies.
struct Compiled<'f> {
    filter: &'f SearchFilter,
    domains: Option<Vec<u32>>,
    tags: Option<Vec<u32>>,
}

impl<'f> Compiled<'f> {
    /// `None` when the filter can match nothing (an unknown tag pair, or no
    /// known domain).
    fn new(cols: &Columns, filter: &'f SearchFilter) -> Option<Compiled<'f>> {
        let domains = match &filter.domains {
            None => None,
            Some(names) => {
                let ids: Vec<u32> = names
                    .iter()
                    .filter_map(|n| cols.domain_ids.get(n).copied())
                    .collect();
                if ids.is_empty() {
                    return None;
                }
                Some(ids)
            }
        };
        let tags = match &filter.tags_all {
            None => None,
            Some(pairs) => {
                let mut ids = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    ids.push(*cols.tag_ids.get(k)?.get(v)?);
                }
                Some(ids)
            }
        };
        Some(Compiled {
            filter,
            domains,
            tags,
        })
    }

    fn admits(&self, row: &Row) -> bool {
        let f = self.filter;
        if f.exclude_archived && row.archived {
            return false;
        }
        if let Some(types) = &f.experience_types {
            if !types.contains(&row.type_tag) {
                return false;
            }
        }
        if f.min_importance.is_some_and(|m| row.importance < m) {
            return false;
        }
        if f.min_confidence.is_some_and(|m| row.confidence < m) {
            return false;
        }
        if f.since.is_some_and(|s| row.timestamp < s) {
            return false;
        }
        if let Some(domains) = &self.domains {
            if !domains.iter().any(|d| row.domains.binary_search(d).is_ok()) {
                return false;
            }
        }
        if let Some(tags) = &self.tags {
            if !tags.iter().all(|t| row.tags.binary_search(t).is_ok()) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::collective::CollectiveId;
    use crate::experience::ExperienceType;

    fn experience(seed: u64) -> Experience {
        let pick = |n: u64, salt: u64| (seed.wrapping_mul(2654435761).wrapping_add(salt * 97)) % n;
        Experience {
            id: ExperienceId::new(),
            collective_id: CollectiveId::from_bytes([1; 16]),
            content: "x".into(),
            embedding: Vec::new(),
            experience_type: if pick(3, 1) == 0 {
                ExperienceType::Fact {
                    statement: "s".into(),
                    source: "t".into(),
                }
            } else {
                ExperienceType::default()
            },
            importance: pick(10, 2) as f32 / 10.0,
            confidence: pick(10, 3) as f32 / 10.0,
            applications: 0,
            domain: (0..pick(3, 4))
                .map(|d| format!("d{}", (d + pick(4, 5)) % 4))
                .collect(),
            tags: BTreeMap::from([
                ("topic".to_string(), format!("t{}", pick(5, 6))),
                ("team".to_string(), format!("x{}", pick(2, 7))),
            ]),
            related_files: Vec::new(),
            source_agent: "a".into(),
            source_task: None,
            metadata: serde_json::Map::new(),
            timestamp: Timestamp(pick(100, 8) as i64),
            last_reinforced: Timestamp(0),
            archived: pick(4, 9) == 0,
        }
    }

    fn filters() -> Vec<SearchFilter> {
        let base = SearchFilter::default();
        vec![
            base.clone(),
            SearchFilter {
                exclude_archived: false,
                ..base.clone()
            },
            SearchFilter {
                domains: Some(vec!["d1".into(), "d3".into()]),
                ..base.clone()
            },
            SearchFilter {
                domains: Some(vec!["nowhere".into()]),
                ..base.clone()
            },
            SearchFilter {
                tags_all: Some(BTreeMap::from([
                    ("topic".into(), "t2".into()),
                    ("team".into(), "x1".into()),
                ])),
                ..base.clone()
            },
            SearchFilter {
                tags_all: Some(BTreeMap::from([("topic".into(), "t9".into())])),
                ..base.clone()
            },
            SearchFilter {
                experience_types: Some(vec![ExperienceTypeTag::Fact]),
                min_importance: Some(0.5),
                min_confidence: Some(0.3),
                since: Some(Timestamp(40)),
                ..base.clone()
            },
        ]
    }

    /// The bitmaps admit exactly the live rows `SearchFilter::matches` admits,
    /// through inserts, updates and removals.
    #[test]
    fn eligibility_matches_the_filter_predicate() {
        let mut cols = Columns::default();
        let mut live: Vec<(Slot, Experience)> = Vec::new();
        for i in 0..400u64 {
            let e = experience(i);
            let slot = cols.next_slot();
            cols.insert(slot, &e);
            live.push((slot, e));
        }
        for i in (0..400).step_by(7) {
            let mut e = live[i].1.clone();
            e.archived = !e.archived;
            e.tags.insert("topic".into(), "t2".into());
            e.domain = vec!["d3".into()];
            cols.update(&e);
            live[i].1 = e;
        }
        for i in (0..400).rev().step_by(11) {
            let (_, e) = live.remove(i);
            assert!(cols.remove(&e.id).is_some());
        }
        assert_admits_exactly(&cols, &live);

        // Saved with a snapshot and read back, they admit the same, and new
        // records still go after every slot ever used.
        let restored = Columns::decode(&cols.encode().unwrap()).unwrap();
        assert_admits_exactly(&restored, &live);
        assert_eq!(restored.slot_ids(), cols.slot_ids());
        assert_eq!(restored.next_slot(), cols.next_slot());
        assert_eq!(restored.archived, cols.archived);
    }

    fn assert_admits_exactly(cols: &Columns, live: &[(Slot, Experience)]) {
        assert_eq!(cols.len(), live.len());
        for f in filters() {
            let want: Vec<Slot> = live
                .iter()
                .filter(|(_, e)| f.matches(e))
                .map(|(s, _)| *s)
                .collect();
            let got: Vec<Slot> = match cols.eligible(&f) {
                Some(set) => set.iter().collect(),
                None => live.iter().map(|(s, _)| *s).collect(),
            };
            assert_eq!(got, want, "filter {f:?}");
        }
    }

    /// Saved columns that do not hold together are refused, not half used.
    #[test]
    fn inconsistent_saved_columns_are_refused() {
        let mut cols = Columns::default();
        let e = experience(3);
        cols.insert(0, &e);
        let mut saved: Persisted = postcard::from_bytes(&cols.encode().unwrap()).unwrap();
        saved.tags.pop();
        assert!(Columns::decode(&postcard::to_allocvec(&saved).unwrap()).is_none());

        let mut saved: Persisted = postcard::from_bytes(&cols.encode().unwrap()).unwrap();
        saved.rows.push(saved.rows[0].clone());
        assert!(Columns::decode(&postcard::to_allocvec(&saved).unwrap()).is_none());

        let bytes = cols.encode().unwrap();
        assert!(Columns::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Columns::decode(&bytes).is_some());
    }
}
