//! Merging changes from other nodes into the tables, by the rules of
//! REPLICATION.md (the same rules [`crate::replication::merge`] states and
//! tests on its own):
//!
//! - a change older than (or equal to) the stored version, or for a deleted
//!   entity or collective, writes and logs nothing: echoes end;
//! - deletes are final (a tombstone keeps the greatest delete version);
//! - reinforcement counters merge by per-instance maximum, outside the
//!   last-writer-wins state;
//! - a relation or insight whose experiences have not arrived is held back
//!   (kept, logged, served to peers, not shown), and so is a relation
//!   shadowed by a duplicate with a smaller id; they are released when what
//!   they wait for arrives or goes.
//!
//! A merged change is logged with its origin, so it travels on to nodes
//! that pull from this one.

use std::collections::HashSet;

use ::redb::ReadableTable;

use super::{s, Writer};
use crate::collective::CollectiveId;
use crate::error::{Result, ValidationError};
use crate::event::WatchEvent;
use crate::experience::{Experience, ExperienceId};
use crate::id::InstanceId;
use crate::insight::DerivedInsight;
use crate::relation::{ExperienceRelation, RelationId};
use crate::replication::{Counter, RemoteChange, Version};
use crate::storage::codec;
use crate::storage::redb::{corrupt, fixed};
use crate::storage::schema::key;
use crate::storage::versions::{self, entity_key, wait_key, Entity};
use crate::storage::{Applied, ChangeKind, Committed};

/// What a merge produced: index updates and watch events.
#[derive(Default)]
struct Merged {
    applied: Vec<Applied>,
    events: Vec<WatchEvent>,
}

impl Writer<'_> {
    pub(super) fn apply_remote(
        &mut self,
        changes: Vec<RemoteChange>,
        cursor: Option<(InstanceId, u64)>,
    ) -> Result<Committed> {
        // Everything is checked before anything is written.
        self.check_remote(&changes)?;
        let mut out = Merged::default();
        for change in changes {
            self.clock.observe(change.version().hlc);
            self.merge(change, &mut out)?;
        }
        if let Some((peer, position)) = cursor {
            self.pull_cursors
                .insert(peer.as_bytes().as_slice(), position)
                .map_err(s)?;
        }
        Ok(Committed {
            applied: Applied::Many(out.applied),
            events: out.events,
        })
    }

    /// A local delete done as `deleted`: changes held back waiting for
    /// any of `ids` (what was deleted) are released with it.
    pub(super) fn with_released(
        &mut self,
        c: CollectiveId,
        ids: &[[u8; 16]],
        deleted: Applied,
        events: Vec<WatchEvent>,
    ) -> Result<Committed> {
        let mut out = Merged {
            applied: vec![deleted],
            events,
        };
        for id in ids {
            self.release(c, id, &mut out)?;
        }
        let applied = if out.applied.len() == 1 {
            out.applied.remove(0)
        } else {
            Applied::Many(out.applied)
        };
        Ok(Committed {
            applied,
            events: out.events,
        })
    }

    // --- checks ----------------------------------------------------------------

    fn check_remote(&self, changes: &[RemoteChange]) -> Result<()> {
        let mut arriving = HashSet::new();
        for change in changes {
            let c = change.collective_id();
            match change {
                RemoteChange::Collective { collective, .. } => {
                    if usize::from(collective.embedding_dimension) != self.dimension {
                        return Err(ValidationError::invalid(
                            "embedding_dimension",
                            format!(
                                "collective {c} has dimension {}, this database {}",
                                collective.embedding_dimension, self.dimension
                            ),
                        )
                        .into());
                    }
                    arriving.insert(c);
                    continue;
                }
                RemoteChange::CollectiveDeleted { .. } => continue,
                RemoteChange::Experience { experience, .. } => {
                    self.check_vector("embedding", &experience.embedding)?;
                }
                RemoteChange::Insight { insight, .. } => {
                    self.check_vector("embedding", &insight.embedding)?;
                }
                RemoteChange::Relation { relation, .. }
                    if relation.source_id == relation.target_id =>
                {
                    return Err(ValidationError::invalid(
                        "target_id",
                        "a relation cannot link an experience to itself",
                    )
                    .into());
                }
                _ => {}
            }
            let known = arriving.contains(&c)
                || self
                    .collectives
                    .get(c.as_bytes().as_slice())
                    .map_err(s)?
                    .is_some()
                || self.collective_buried(c)?;
            if !known {
                return Err(ValidationError::invalid(
                    "collective_id",
                    format!("unknown collective {c}"),
                )
                .into());
            }
        }
        Ok(())
    }

    fn check_vector(&self, field: &'static str, v: &[f32]) -> Result<()> {
        if v.len() != self.dimension {
            return Err(ValidationError::invalid(
                field,
                format!(
                    "{} components, this database has {}",
                    v.len(),
                    self.dimension
                ),
            )
            .into());
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ValidationError::invalid(field, "a component is not finite").into());
        }
        Ok(())
    }

    // --- lookups -----------------------------------------------------------------

    fn tombstone(&self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<Option<Version>> {
        versions::get_version(&self.tombstones, &entity_key(c, kind, id))
    }

    fn version_of(&self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<Option<Version>> {
        versions::get_version(&self.versions, &entity_key(c, kind, id))
    }

    fn collective_buried(&self, c: CollectiveId) -> Result<bool> {
        Ok(self
            .tombstone(c, Entity::Collective, c.as_bytes())?
            .is_some())
    }

    /// The collective of a live experience.
    fn experience_collective(&self, id: &ExperienceId) -> Result<Option<CollectiveId>> {
        match self.experiences.get(id.as_bytes().as_slice()).map_err(s)? {
            Some(raw) => Ok(Some(
                codec::decode_experience_row(raw.value(), false)?.collective_id,
            )),
            None => Ok(None),
        }
    }

    /// The held change of an entity, with what it waits for.
    fn held_change(
        &self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
    ) -> Result<Option<([u8; 16], RemoteChange)>> {
        versions::get_held(&self.held, &entity_key(c, kind, id))
    }

    /// The version an entity has here, live or held back.
    fn known_version(
        &self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
    ) -> Result<Option<Version>> {
        if let Some(v) = self.version_of(c, kind, id)? {
            return Ok(Some(v));
        }
        Ok(self
            .held_change(c, kind, id)?
            .map(|(_, change)| change.version()))
    }

    // --- merging -----------------------------------------------------------------

    fn merge(&mut self, change: RemoteChange, out: &mut Merged) -> Result<()> {
        let c = change.collective_id();
        if let RemoteChange::CollectiveDeleted { id, version } = change {
            return self.merge_collective_deleted(id, version, out);
        }
        if self.collective_buried(c)? {
            return Ok(());
        }
        match change {
            RemoteChange::Collective {
                version,
                collective,
            } => {
                let id = collective.id;
                let current = self.version_of(id, Entity::Collective, id.as_bytes())?;
                if current.is_some_and(|v| v >= version) {
                    return Ok(());
                }
                self.collectives
                    .insert(
                        id.as_bytes().as_slice(),
                        codec::encode_collective(&collective)?.as_slice(),
                    )
                    .map_err(s)?;
                self.set_version(id, Entity::Collective, id.as_bytes(), &version)?;
                self.log_from(
                    version.origin,
                    ChangeKind::CollectiveCreated,
                    id,
                    *id.as_bytes(),
                )?;
                if current.is_none() {
                    out.applied.push(Applied::CollectiveCreated(collective));
                }
                Ok(())
            }
            RemoteChange::Experience {
                version,
                experience,
                counters,
            } => self.merge_experience(version, *experience, &counters, out),
            RemoteChange::ExperienceDeleted { id, version, .. } => {
                self.merge_experience_deleted(c, id, version, out)
            }
            RemoteChange::Relation {
                version, relation, ..
            } => self.merge_relation(c, version, relation, out),
            RemoteChange::RelationDeleted { id, version, .. } => {
                self.merge_relation_deleted(c, id, version, out)
            }
            RemoteChange::Insight { version, insight } => self.merge_insight(version, insight, out),
            RemoteChange::InsightDeleted { id, version, .. } => {
                let rid = id.as_bytes();
                if self
                    .tombstone(c, Entity::Insight, rid)?
                    .is_some_and(|v| v >= version)
                {
                    return Ok(());
                }
                if self.remove_insight_rows(c, rid)? {
                    out.applied.push(Applied::InsightDeleted {
                        collective_id: c,
                        id,
                    });
                }
                self.unhold(c, Entity::Insight, rid)?;
                self.bury(c, Entity::Insight, rid, Some(version))?;
                self.log_from(version.origin, ChangeKind::InsightDeleted, c, *rid)?;
                Ok(())
            }
            RemoteChange::CollectiveDeleted { .. } => Ok(()),
        }
    }

    fn merge_collective_deleted(
        &mut self,
        id: CollectiveId,
        version: Version,
        out: &mut Merged,
    ) -> Result<()> {
        let bytes = id.as_bytes();
        if self
            .tombstone(id, Entity::Collective, bytes)?
            .is_some_and(|v| v >= version)
        {
            return Ok(());
        }
        if self.collectives.get(bytes.as_slice()).map_err(s)?.is_some() {
            self.drop_collective_rows(id)?;
            out.applied.push(Applied::CollectiveDeleted(id));
        } else {
            self.forget_versions(id)?;
        }
        self.bury(id, Entity::Collective, bytes, Some(version))?;
        self.log_from(version.origin, ChangeKind::CollectiveDeleted, id, *bytes)?;
        Ok(())
    }

    fn merge_experience(
        &mut self,
        version: Version,
        mut incoming: Experience,
        counters: &[Counter],
        out: &mut Merged,
    ) -> Result<()> {
        let c = incoming.collective_id;
        let id = incoming.id;
        let bytes = id.as_bytes();
        if self.tombstone(c, Entity::Experience, bytes)?.is_some() {
            return Ok(());
        }
        let old = match self.experiences.get(bytes.as_slice()).map_err(s)? {
            Some(raw) => Some(codec::decode_experience_row(raw.value(), true)?),
            None => None,
        };
        let newer = match &old {
            Some(_) => self
                .version_of(c, Entity::Experience, bytes)?
                .is_none_or(|v| version > v),
            None => true,
        };
        let counted = self.merge_counters(id, counters)?;
        let mut new = match (&old, newer) {
            (Some(old), false) => old.clone(),
            _ => {
                // Embeddings never change: a stored one stays.
                if let Some(old) = &old {
                    incoming.embedding.clone_from(&old.embedding);
                }
                incoming.clone()
            }
        };
        new.applications = self.applications(id)?;
        if let Some(old) = &old {
            new.last_reinforced = new.last_reinforced.max(old.last_reinforced);
        }
        new.last_reinforced = new.last_reinforced.max(incoming.last_reinforced);
        if !newer && !counted && old.as_ref() == Some(&new) {
            return Ok(());
        }
        let kind = match &old {
            None => ChangeKind::ExperienceCreated,
            Some(old) if new.archived && !old.archived => ChangeKind::ExperienceArchived,
            Some(_) => ChangeKind::ExperienceUpdated,
        };
        if old.is_some() {
            self.rewrite_experience(&new)?;
        } else {
            self.insert_experience_rows(&new)?;
        }
        if newer {
            self.set_version(c, Entity::Experience, bytes, &version)?;
        }
        let events = self.log_experience_from(version.origin, kind, &new, false)?;
        out.events.extend(events);
        if old.is_some() {
            out.applied.push(Applied::ExperienceChanged(Box::new(new)));
        } else {
            out.applied.push(Applied::ExperiencesRecorded(vec![new]));
            self.release(c, bytes, out)?;
        }
        Ok(())
    }

    /// Raises this node's copy of each counter to the one received;
    /// whether any rose.
    fn merge_counters(&mut self, id: ExperienceId, counters: &[Counter]) -> Result<bool> {
        let mut rose = false;
        for counter in counters {
            let k = key(&[id.as_bytes(), counter.origin.as_bytes()]);
            let mine = self
                .reinforcements
                .get(k.as_slice())
                .map_err(s)?
                .map_or(0, |v| v.value());
            if counter.count > mine {
                self.reinforcements
                    .insert(k.as_slice(), counter.count)
                    .map_err(s)?;
                rose = true;
            }
        }
        Ok(rose)
    }

    /// The sum of an experience's counters.
    fn applications(&self, id: ExperienceId) -> Result<u32> {
        let prefix = id.as_bytes().as_slice();
        let mut total: u32 = 0;
        for item in self.reinforcements.range::<&[u8]>(prefix..).map_err(s)? {
            let (k, v) = item.map_err(s)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            total = total.saturating_add(v.value());
        }
        Ok(total)
    }

    fn merge_experience_deleted(
        &mut self,
        c: CollectiveId,
        id: ExperienceId,
        version: Version,
        out: &mut Merged,
    ) -> Result<()> {
        let bytes = id.as_bytes();
        if self
            .tombstone(c, Entity::Experience, bytes)?
            .is_some_and(|v| v >= version)
        {
            return Ok(());
        }
        let existing = match self.experiences.get(bytes.as_slice()).map_err(s)? {
            Some(raw) => Some(codec::decode_experience_row(raw.value(), false)?),
            None => None,
        };
        self.bury(c, Entity::Experience, bytes, Some(version))?;
        let rels = match existing {
            Some(_) => {
                let mut rels = Self::prefix_ids(&self.rel_by_source, bytes)?;
                rels.extend(Self::prefix_ids(&self.rel_by_target, bytes)?);
                rels
            }
            None => Vec::new(),
        };
        match existing {
            Some(exp) => {
                for rid in &rels {
                    self.remove_relation_rows(RelationId::from_bytes(*rid))?;
                }
                self.remove_experience_rows(&exp)?;
                let events = self.log_experience_from(
                    version.origin,
                    ChangeKind::ExperienceDeleted,
                    &exp,
                    true,
                )?;
                out.events.extend(events);
                out.applied.push(Applied::ExperienceDeleted {
                    collective_id: c,
                    id,
                });
            }
            None => {
                self.log_from(version.origin, ChangeKind::ExperienceDeleted, c, *bytes)?;
            }
        }
        // What waited for it, or for a relation that went with it (a
        // duplicate behind it), is merged again: an end deleted drops it.
        for rid in &rels {
            self.release(c, rid, out)?;
        }
        self.release(c, bytes, out)
    }

    fn merge_relation(
        &mut self,
        c: CollectiveId,
        version: Version,
        r: ExperienceRelation,
        out: &mut Merged,
    ) -> Result<()> {
        let id = *r.id.as_bytes();
        if self.tombstone(c, Entity::Relation, &id)?.is_some()
            || self
                .known_version(c, Entity::Relation, &id)?
                .is_some_and(|v| v >= version)
        {
            return Ok(());
        }
        let change = RemoteChange::Relation {
            version,
            collective_id: c,
            relation: r.clone(),
        };
        // An end deleted: the relation went with it.
        for end in [r.source_id, r.target_id] {
            if self
                .tombstone(c, Entity::Experience, end.as_bytes())?
                .is_some()
            {
                return self.unhold(c, Entity::Relation, &id);
            }
        }
        for end in [r.source_id, r.target_id] {
            match self.experience_collective(&end)? {
                None => return self.hold(c, Entity::Relation, &id, end.as_bytes(), &change, true),
                // A relation across collectives cannot exist: ignored.
                Some(other) if other != c => return Ok(()),
                Some(_) => {}
            }
        }
        let unique = key(&[
            r.source_id.as_bytes(),
            r.target_id.as_bytes(),
            &[r.relation_type.code()],
        ]);
        let shown = match self.rel_unique.get(unique.as_slice()).map_err(s)? {
            Some(v) => Some(fixed::<16>(v.value(), "relation id")?),
            None => None,
        };
        match shown {
            // A duplicate with a smaller id shows; this one waits behind it.
            Some(other) if other < id => {
                return self.hold(c, Entity::Relation, &id, &other, &change, true);
            }
            Some(other) if other > id => {
                // This one takes the duplicate's place; the duplicate waits.
                let other_version = self.version_of(c, Entity::Relation, &other)?;
                let other_row = match self.relations.get(other.as_slice()).map_err(s)? {
                    Some(v) => codec::decode_relation(v.value())?,
                    None => return Err(corrupt("relation key without row")),
                };
                self.remove_relation_rows(RelationId::from_bytes(other))?;
                if let Some(v) = other_version {
                    let held = RemoteChange::Relation {
                        version: v,
                        collective_id: c,
                        relation: other_row,
                    };
                    self.hold(c, Entity::Relation, &other, &id, &held, false)?;
                }
                out.applied
                    .push(Applied::RelationDeleted(RelationId::from_bytes(other)));
            }
            _ => {
                // The same relation, older: replaced below.
                self.remove_relation_rows(r.id)?;
            }
        }
        self.unhold(c, Entity::Relation, &id)?;
        self.insert_relation_rows(c, &r)?;
        self.set_version(c, Entity::Relation, &id, &version)?;
        self.log_from(version.origin, ChangeKind::RelationCreated, c, id)?;
        out.applied.push(Applied::RelationStored(r));
        Ok(())
    }

    fn merge_relation_deleted(
        &mut self,
        c: CollectiveId,
        id: RelationId,
        version: Version,
        out: &mut Merged,
    ) -> Result<()> {
        let bytes = id.as_bytes();
        if self
            .tombstone(c, Entity::Relation, bytes)?
            .is_some_and(|v| v >= version)
        {
            return Ok(());
        }
        if self.remove_relation_rows(id)?.is_some() {
            out.applied.push(Applied::RelationDeleted(id));
        }
        self.unhold(c, Entity::Relation, bytes)?;
        self.bury(c, Entity::Relation, bytes, Some(version))?;
        self.log_from(version.origin, ChangeKind::RelationDeleted, c, *bytes)?;
        self.release(c, bytes, out)
    }

    fn merge_insight(
        &mut self,
        version: Version,
        i: DerivedInsight,
        out: &mut Merged,
    ) -> Result<()> {
        let c = i.collective_id;
        let id = *i.id.as_bytes();
        if self.tombstone(c, Entity::Insight, &id)?.is_some()
            || self
                .known_version(c, Entity::Insight, &id)?
                .is_some_and(|v| v >= version)
        {
            return Ok(());
        }
        // An insight shows once each source is known, live or deleted.
        let mut unknown = None;
        for src in &i.source_experience_ids {
            let live = self.experience_collective(src)?;
            if live.is_some_and(|other| other != c) {
                // Sources in another collective cannot be: ignored.
                return Ok(());
            }
            if live.is_none()
                && self
                    .tombstone(c, Entity::Experience, src.as_bytes())?
                    .is_none()
            {
                unknown = Some(*src.as_bytes());
                break;
            }
        }
        if let Some(src) = unknown {
            let change = RemoteChange::Insight {
                version,
                insight: i,
            };
            return self.hold(c, Entity::Insight, &id, &src, &change, true);
        }
        if self.remove_insight_rows(c, &id)? {
            out.applied.push(Applied::InsightDeleted {
                collective_id: c,
                id: i.id,
            });
        }
        self.unhold(c, Entity::Insight, &id)?;
        self.insights
            .insert(id.as_slice(), codec::encode_insight(&i)?.as_slice())
            .map_err(s)?;
        self.insights_by_collective
            .insert(key(&[c.as_bytes(), &id]).as_slice(), ())
            .map_err(s)?;
        self.set_version(c, Entity::Insight, &id, &version)?;
        self.log_from(version.origin, ChangeKind::InsightCreated, c, id)?;
        out.applied.push(Applied::InsightStored(i));
        Ok(())
    }

    /// Removes an insight's rows; whether it was there.
    fn remove_insight_rows(&mut self, c: CollectiveId, id: &[u8; 16]) -> Result<bool> {
        if self.insights.remove(id.as_slice()).map_err(s)?.is_none() {
            return Ok(false);
        }
        self.insights_by_collective
            .remove(key(&[c.as_bytes(), id]).as_slice())
            .map_err(s)?;
        self.versions
            .remove(entity_key(c, Entity::Insight, id).as_slice())
            .map_err(s)?;
        Ok(true)
    }

    // --- held back -----------------------------------------------------------------

    /// Keeps `change` until `waits_for` arrives or goes; logged (when
    /// `log`) so that it travels on.
    fn hold(
        &mut self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
        waits_for: &[u8; 16],
        change: &RemoteChange,
        log: bool,
    ) -> Result<()> {
        self.unhold(c, kind, id)?;
        let k = entity_key(c, kind, id);
        self.held
            .insert(
                k.as_slice(),
                versions::encode_held(waits_for, change)?.as_slice(),
            )
            .map_err(s)?;
        self.held_by_wait
            .insert(wait_key(c, waits_for, &k).as_slice(), ())
            .map_err(s)?;
        if log {
            let logged = match kind {
                Entity::Insight => ChangeKind::InsightCreated,
                _ => ChangeKind::RelationCreated,
            };
            self.log_from(change.version().origin, logged, c, *id)?;
        }
        Ok(())
    }

    /// Forgets a held change of an entity, if any.
    fn unhold(&mut self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<()> {
        let k = entity_key(c, kind, id);
        let Some(raw) = self.held.remove(k.as_slice()).map_err(s)? else {
            return Ok(());
        };
        let (waits_for, _) = versions::decode_held(raw.value())?;
        drop(raw);
        self.held_by_wait
            .remove(wait_key(c, &waits_for, &k).as_slice())
            .map_err(s)?;
        Ok(())
    }

    /// Merges again every change held back waiting for `id`.
    fn release(&mut self, c: CollectiveId, id: &[u8; 16], out: &mut Merged) -> Result<()> {
        let prefix = key(&[c.as_bytes(), id]);
        let mut waiting = Vec::new();
        for item in self
            .held_by_wait
            .range::<&[u8]>(prefix.as_slice()..)
            .map_err(s)?
        {
            let (k, _) = item.map_err(s)?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            // collective (16) ‖ waited-for id (16) ‖ kind (1) ‖ id (16)
            let kind_and_id: [u8; 17] =
                k.value()
                    .get(32..)
                    .and_then(|rest| rest.try_into().ok())
                    .ok_or_else(|| corrupt("held-back index key of the wrong length"))?;
            let mut entity = [0u8; 33];
            entity[..16].copy_from_slice(c.as_bytes());
            entity[16..].copy_from_slice(&kind_and_id);
            waiting.push(entity);
        }
        for entity in waiting {
            let Some(raw) = self.held.remove(entity.as_slice()).map_err(s)? else {
                continue;
            };
            let (waits_for, change) = versions::decode_held(raw.value())?;
            drop(raw);
            self.held_by_wait
                .remove(wait_key(c, &waits_for, &entity).as_slice())
                .map_err(s)?;
            self.merge(change, out)?;
        }
        Ok(())
    }
}
