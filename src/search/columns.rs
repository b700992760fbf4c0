//! The per-slot filter columns a collective actor keeps in memory, and the
//! slot ↔ id map of its experience index.
//!
//! A [`SearchFilter`] becomes an eligibility bitmap ([`SlotSet`]) over these
//! columns, which the vector index applies *during* its traversal — so a
//! filtered search returns `k` results whenever `k` experiences match.

use std::collections::HashMap;

use crate::experience::{Experience, ExperienceId, ExperienceTypeTag};
use crate::id::Timestamp;
use crate::index::{Slot, SlotSet};
use crate::search::SearchFilter;

/// The filterable fields of one experience.
#[derive(Debug, Clone)]
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
#[derive(Debug, Default)]
pub(crate) struct Columns {
    rows: Vec<Option<Row>>,
    slot_of: HashMap<ExperienceId, Slot>,
    domain_ids: HashMap<String, u32>,
    tag_ids: HashMap<(String, String), u32>,
    live: usize,
    archived: usize,
}

impl Columns {
    /// Number of live experiences.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The next unused slot.
    pub(crate) fn next_slot(&self) -> Slot {
        self.rows.len() as Slot
    }

    /// Makes every slot up to `slot` used, so new records go after it.
    pub(crate) fn reserve_through(&mut self, slot: Slot) {
        let n = slot as usize + 1;
        if self.rows.len() < n {
            self.rows.resize(n, None);
        }
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
            if let Some(old) = cell.replace(row) {
                self.archived -= usize::from(old.archived);
            }
            self.archived += usize::from(exp.archived);
        }
    }

    /// Forgets an experience; returns its slot.
    pub(crate) fn remove(&mut self, id: &ExperienceId) -> Option<Slot> {
        let slot = self.slot_of.remove(id)?;
        if let Some(old) = self.rows.get_mut(slot as usize).and_then(Option::take) {
            self.forget_counts(&old);
        }
        Some(slot)
    }

    fn forget_counts(&mut self, old: &Row) {
        self.live -= 1;
        self.archived -= usize::from(old.archived);
    }

    fn row_of(&mut self, exp: &Experience) -> Row {
        let mut domains: Vec<u32> = exp
            .domain
            .iter()
            .map(|d| intern(&mut self.domain_ids, d.clone()))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let mut tags: Vec<u32> = exp
            .tags
            .iter()
            .map(|(k, v)| intern(&mut self.tag_ids, (k.clone(), v.clone())))
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
        let compiled = Compiled::new(self, filter);
        let mut set = SlotSet::new(self.rows.len());
        if let Some(compiled) = compiled {
            for (slot, row) in self.rows.iter().enumerate() {
                if let Some(row) = row {
                    if compiled.admits(row) {
                        set.insert(slot as Slot);
                    }
                }
            }
        }
        Some(set)
    }

    /// Every (slot, id) pair, for snapshots.
    pub(crate) fn slot_ids(&self) -> Vec<(Slot, ExperienceId)> {
        let mut v: Vec<_> = self.slot_of.iter().map(|(id, s)| (*s, *id)).collect();
        v.sort_unstable_by_key(|(s, _)| *s);
        v
    }
}

fn intern<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) -> u32 {
    let next = map.len() as u32;
    *map.entry(key).or_insert(next)
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
                    ids.push(*cols.tag_ids.get(&(k.clone(), v.clone()))?);
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
