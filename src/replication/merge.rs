//! The merge rules of REPLICATION.md as a pure state machine: no I/O, no
//! clock, no storage. A [`Replica`] applies [`Change`]s in any order, any
//! number of times, and ends in the same state for the same set of
//! changes; [`Replica::view`] is what a node shows of that state.
//!
//! Entity states are opaque here (`S`): merging looks only at ids,
//! versions, counters and the references between entities.
//!
//! The rules, and why each is order-insensitive:
//! - **Last writer wins** per entity: the stored state is the one with the
//!   greatest [`Version`] seen.
//! - **Reinforcement** is a grow-only counter per instance, merged by
//!   per-instance maximum; `applications` is the sum.
//! - **Deletes are final**: a deleted id keeps a tombstone (the greatest
//!   delete version seen) and every change for it is dropped, whatever its
//!   version. A deleted collective drops every entity of it and every
//!   later change for one.
//! - **Held back**: a relation shows once both its experiences are live
//!   (it goes with either of them); an insight shows once each of its
//!   sources is known, live or deleted (an insight outlives its sources, as
//!   on one node). Until then it is kept, not shown.
//! - **Duplicate relations**: of the relations with one (source, target,
//!   type), the one with the smallest id shows.
//! - **Collective names**: a name resolves to the oldest collective (the
//!   smallest id) bearing it.

use std::collections::{BTreeMap, BTreeSet};

use super::hlc::Version;
use crate::collective::CollectiveId;
use crate::experience::ExperienceId;
use crate::id::InstanceId;
use crate::insight::InsightId;
use crate::relation::{RelationId, RelationType};

/// One replicated change: an entity's whole state after a write (with its
/// version), a tombstone, or a reinforcement counter.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<S> {
    /// A collective's state.
    Collective {
        /// Which.
        id: CollectiveId,
        /// Its name (resolution by name looks at it).
        name: String,
        /// Of this state.
        version: Version,
        /// The rest of its state.
        state: S,
    },
    /// A collective deleted, with everything in it.
    CollectiveDeleted {
        /// Which.
        id: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// An experience's state (archived flag and every mutable field).
    Experience {
        /// Which.
        id: ExperienceId,
        /// Its collective.
        collective: CollectiveId,
        /// Of this state.
        version: Version,
        /// The state.
        state: S,
    },
    /// An experience deleted.
    ExperienceDeleted {
        /// Which.
        id: ExperienceId,
        /// Its collective.
        collective: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// One instance's reinforcement count of an experience.
    Reinforced {
        /// Which experience.
        id: ExperienceId,
        /// Its collective.
        collective: CollectiveId,
        /// Whose count.
        origin: InstanceId,
        /// That instance's count so far.
        count: u64,
    },
    /// A relation between two experiences.
    Relation {
        /// Which.
        id: RelationId,
        /// Its collective.
        collective: CollectiveId,
        /// From.
        source: ExperienceId,
        /// To.
        target: ExperienceId,
        /// Its type.
        relation_type: RelationType,
        /// Of this state.
        version: Version,
        /// The rest of its state.
        state: S,
    },
    /// A relation deleted.
    RelationDeleted {
        /// Which.
        id: RelationId,
        /// Its collective.
        collective: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// An insight over experiences.
    Insight {
        /// Which.
        id: InsightId,
        /// Its collective.
        collective: CollectiveId,
        /// The experiences it cites.
        sources: Vec<ExperienceId>,
        /// Of this state.
        version: Version,
        /// The rest of its state.
        state: S,
    },
    /// An insight deleted.
    InsightDeleted {
        /// Which.
        id: InsightId,
        /// Its collective.
        collective: CollectiveId,
        /// Of the delete.
        version: Version,
    },
    /// An agent's activity: `None` once ended (it may register again).
    Activity {
        /// The agent.
        agent: String,
        /// The collective.
        collective: CollectiveId,
        /// Of this state.
        version: Version,
        /// The activity, or `None` when ended.
        state: Option<S>,
    },
}

/// A state and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<S> {
    /// Of the state.
    pub version: Version,
    /// The state.
    pub state: S,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned<K, S> {
    collective: CollectiveId,
    key: K,
    current: Versioned<S>,
}

type RelationKey = (ExperienceId, ExperienceId, RelationType);

/// Everything a node has merged. Two replicas that applied the same set of
/// changes are equal, whatever the order and the duplicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica<S> {
    collectives: BTreeMap<CollectiveId, (String, Versioned<S>)>,
    deleted_collectives: BTreeMap<CollectiveId, Version>,
    experiences: BTreeMap<ExperienceId, Owned<(), S>>,
    deleted_experiences: BTreeMap<ExperienceId, (CollectiveId, Version)>,
    counters: BTreeMap<ExperienceId, (CollectiveId, BTreeMap<InstanceId, u64>)>,
    relations: BTreeMap<RelationId, Owned<RelationKey, S>>,
    deleted_relations: BTreeMap<RelationId, (CollectiveId, Version)>,
    insights: BTreeMap<InsightId, Owned<Vec<ExperienceId>, S>>,
    deleted_insights: BTreeMap<InsightId, (CollectiveId, Version)>,
    activities: BTreeMap<(CollectiveId, String), Versioned<Option<S>>>,
}

/// What a node shows: live entities only, held-back ones and duplicate
/// relations left out, `applications` summed.
#[derive(Debug, Clone, PartialEq)]
pub struct View<S> {
    /// Live collectives: name and state.
    pub collectives: BTreeMap<CollectiveId, (String, Versioned<S>)>,
    /// Live experiences: collective, state and applications.
    pub experiences: BTreeMap<ExperienceId, (CollectiveId, Versioned<S>, u64)>,
    /// Shown relations.
    pub relations: BTreeMap<RelationId, (CollectiveId, RelationKey, Versioned<S>)>,
    /// Shown insights.
    pub insights: BTreeMap<InsightId, (CollectiveId, Vec<ExperienceId>, Versioned<S>)>,
    /// Active agents.
    pub activities: BTreeMap<(CollectiveId, String), Versioned<S>>,
}

/// Replaces `slot` by `new` when `new` is newer; whether it did.
fn newer<S>(slot: &mut Versioned<S>, new: Versioned<S>) -> bool {
    if new.version > slot.version {
        *slot = new;
        true
    } else {
        false
    }
}

/// Keeps the greatest delete version; whether the map changed.
fn tombstone<K: Ord>(
    map: &mut BTreeMap<K, (CollectiveId, Version)>,
    id: K,
    c: CollectiveId,
    v: Version,
) -> bool {
    match map.get_mut(&id) {
        Some(old) if old.1 >= v => false,
        Some(old) => {
            old.1 = v;
            true
        }
        None => {
            map.insert(id, (c, v));
            true
        }
    }
}

/// Inserts or keeps the newer of two versions of an owned row.
fn upsert<K: Ord, X, S>(map: &mut BTreeMap<K, Owned<X, S>>, id: K, row: Owned<X, S>) -> bool {
    match map.get_mut(&id) {
        Some(old) => newer(&mut old.current, row.current),
        None => {
            map.insert(id, row);
            true
        }
    }
}

impl<S: Clone> Default for Replica<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone> Replica<S> {
    /// An empty replica.
    pub fn new() -> Self {
        Replica {
            collectives: BTreeMap::new(),
            deleted_collectives: BTreeMap::new(),
            experiences: BTreeMap::new(),
            deleted_experiences: BTreeMap::new(),
            counters: BTreeMap::new(),
            relations: BTreeMap::new(),
            deleted_relations: BTreeMap::new(),
            insights: BTreeMap::new(),
            deleted_insights: BTreeMap::new(),
            activities: BTreeMap::new(),
        }
    }

    /// Applies one change; whether anything changed. A change that adds
    /// nothing (seen before, older than what is held, or for a deleted
    /// entity) changes nothing: it is neither stored nor passed on, which
    /// ends echoes.
    pub fn apply(&mut self, change: Change<S>) -> bool {
        if let Some(c) = collective_of(&change) {
            if self.deleted_collectives.contains_key(&c) {
                return false;
            }
        }
        match change {
            Change::Collective {
                id,
                name,
                version,
                state,
            } => {
                let new = (name, Versioned { version, state });
                match self.collectives.get_mut(&id) {
                    Some(old) if old.1.version >= new.1.version => false,
                    Some(old) => {
                        *old = new;
                        true
                    }
                    None => {
                        self.collectives.insert(id, new);
                        true
                    }
                }
            }
            Change::CollectiveDeleted { id, version } => self.delete_collective(id, version),
            Change::Experience {
                id,
                collective,
                version,
                state,
            } => {
                if self.deleted_experiences.contains_key(&id) {
                    return false;
                }
                let row = Owned {
                    collective,
                    key: (),
                    current: Versioned { version, state },
                };
                upsert(&mut self.experiences, id, row)
            }
            Change::ExperienceDeleted {
                id,
                collective,
                version,
            } => {
                let changed = tombstone(&mut self.deleted_experiences, id, collective, version);
                let removed = self.experiences.remove(&id).is_some();
                let counted = self.counters.remove(&id).is_some();
                // Its relations go with it.
                let before = self.relations.len();
                self.relations.retain(|_, r| r.key.0 != id && r.key.1 != id);
                changed || removed || counted || before != self.relations.len()
            }
            Change::Reinforced {
                id,
                collective,
                origin,
                count,
            } => {
                // A zero count says nothing a missing counter does not.
                if count == 0 || self.deleted_experiences.contains_key(&id) {
                    return false;
                }
                let (_, counts) = self
                    .counters
                    .entry(id)
                    .or_insert_with(|| (collective, BTreeMap::new()));
                let slot = counts.entry(origin).or_insert(0);
                if count > *slot {
                    *slot = count;
                    true
                } else {
                    false
                }
            }
            Change::Relation {
                id,
                collective,
                source,
                target,
                relation_type,
                version,
                state,
            } => {
                let gone = |e| self.deleted_experiences.contains_key(e);
                if self.deleted_relations.contains_key(&id) || gone(&source) || gone(&target) {
                    return false;
                }
                let row = Owned {
                    collective,
                    key: (source, target, relation_type),
                    current: Versioned { version, state },
                };
                upsert(&mut self.relations, id, row)
            }
            Change::RelationDeleted {
                id,
                collective,
                version,
            } => {
                let changed = tombstone(&mut self.deleted_relations, id, collective, version);
                self.relations.remove(&id).is_some() || changed
            }
            Change::Insight {
                id,
                collective,
                sources,
                version,
                state,
            } => {
                if self.deleted_insights.contains_key(&id) {
                    return false;
                }
                let row = Owned {
                    collective,
                    key: sources,
                    current: Versioned { version, state },
                };
                upsert(&mut self.insights, id, row)
            }
            Change::InsightDeleted {
                id,
                collective,
                version,
            } => {
                let changed = tombstone(&mut self.deleted_insights, id, collective, version);
                self.insights.remove(&id).is_some() || changed
            }
            Change::Activity {
                agent,
                collective,
                version,
                state,
            } => {
                let new = Versioned { version, state };
                match self.activities.get_mut(&(collective, agent.clone())) {
                    Some(old) => newer(old, new),
                    None => {
                        self.activities.insert((collective, agent), new);
                        true
                    }
                }
            }
        }
    }

    /// Deletes a collective and drops everything of it.
    fn delete_collective(&mut self, id: CollectiveId, version: Version) -> bool {
        let mut changed = match self.deleted_collectives.get_mut(&id) {
            Some(old) if *old >= version => false,
            Some(old) => {
                *old = version;
                true
            }
            None => {
                self.deleted_collectives.insert(id, version);
                true
            }
        };
        changed |= self.collectives.remove(&id).is_some();
        let mut dropped = 0;
        let mut count = |n: usize| dropped += n;
        count(drain(&mut self.experiences, |r| r.collective == id));
        count(drain(&mut self.deleted_experiences, |r| r.0 == id));
        count(drain(&mut self.counters, |r| r.0 == id));
        count(drain(&mut self.relations, |r| r.collective == id));
        count(drain(&mut self.deleted_relations, |r| r.0 == id));
        count(drain(&mut self.insights, |r| r.collective == id));
        count(drain(&mut self.deleted_insights, |r| r.0 == id));
        let before = self.activities.len();
        self.activities.retain(|(c, _), _| *c != id);
        count(before - self.activities.len());
        changed || dropped > 0
    }

    /// What this node shows.
    pub fn view(&self) -> View<S> {
        let live_c = |c: &CollectiveId| self.collectives.contains_key(c);
        let mut view = View {
            collectives: self.collectives.clone(),
            experiences: BTreeMap::new(),
            relations: BTreeMap::new(),
            insights: BTreeMap::new(),
            activities: BTreeMap::new(),
        };
        for (id, row) in &self.experiences {
            if !live_c(&row.collective) {
                continue;
            }
            let applications = self
                .counters
                .get(id)
                .map_or(0, |(_, counts)| counts.values().sum());
            view.experiences
                .insert(*id, (row.collective, row.current.clone(), applications));
        }
        // Of duplicate relations, the smallest id; both ends must be live.
        let mut shown: BTreeSet<RelationKey> = BTreeSet::new();
        for (id, row) in &self.relations {
            let live_x = |x: &ExperienceId| view.experiences.contains_key(x);
            if !live_c(&row.collective) || !live_x(&row.key.0) || !live_x(&row.key.1) {
                continue;
            }
            if shown.insert(row.key) {
                view.relations
                    .insert(*id, (row.collective, row.key, row.current.clone()));
            }
        }
        for (id, row) in &self.insights {
            let known = |x: &ExperienceId| {
                self.experiences.contains_key(x) || self.deleted_experiences.contains_key(x)
            };
            if live_c(&row.collective) && row.key.iter().all(known) {
                view.insights
                    .insert(*id, (row.collective, row.key.clone(), row.current.clone()));
            }
        }
        for (key, a) in &self.activities {
            if let (true, Some(state)) = (live_c(&key.0), &a.state) {
                view.activities.insert(
                    key.clone(),
                    Versioned {
                        version: a.version,
                        state: state.clone(),
                    },
                );
            }
        }
        view
    }

    /// The collective a name resolves to: the oldest live one bearing it.
    pub fn resolve(&self, name: &str) -> Option<CollectiveId> {
        // Ids are UUIDv7: the smallest is the oldest.
        self.collectives
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id)
    }
}

/// Removes the entries `drop` selects; how many.
fn drain<K: Ord, V>(map: &mut BTreeMap<K, V>, drop: impl Fn(&V) -> bool) -> usize {
    let before = map.len();
    map.retain(|_, v| !drop(v));
    before - map.len()
}

/// The collective a change concerns (a collective's own id included).
fn collective_of<S>(change: &Change<S>) -> Option<CollectiveId> {
    match change {
        Change::Collective { id, .. } => Some(*id),
        Change::CollectiveDeleted { .. } => None,
        Change::Experience { collective, .. }
        | Change::ExperienceDeleted { collective, .. }
        | Change::Reinforced { collective, .. }
        | Change::Relation { collective, .. }
        | Change::RelationDeleted { collective, .. }
        | Change::Insight { collective, .. }
        | Change::InsightDeleted { collective, .. }
        | Change::Activity { collective, .. } => Some(*collective),
    }
}

#[cfg(test)]
mod tests;
