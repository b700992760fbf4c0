//! The batch write path of [`RedbStorage`]: group commit.
//!
//! Every operation first checks all of its preconditions with reads, and only
//! then writes. A domain error therefore leaves no partial writes and the
//! rest of the batch commits; a fault aborts the whole transaction.

use std::collections::HashSet;

use ::redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{self, Logged};
use super::schema::{self, key, meta_keys};
use super::versions::{self, entity_key, Entity};
use super::{Applied, ChangeKind, Committed, RedbStorage, StorageError, WriteOp};
use crate::activity::Activity;
use crate::collective::{Collective, CollectiveId};
use crate::error::{Error, NotFoundError, Result, ValidationError};
use crate::event::WatchEvent;
use crate::experience::{Experience, ExperienceId, ExperienceUpdate};
use crate::id::{InstanceId, Timestamp};
use crate::insight::{DerivedInsight, InsightId};
use crate::relation::{ExperienceRelation, RelationId};
use crate::replication::{HlcClock, Version};

mod remote;

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;
type Index<'t> = Table<'t, &'static [u8], ()>;

fn s<E: Into<StorageError>>(e: E) -> Error {
    Error::Storage(e.into())
}

impl RedbStorage {
    pub(super) fn apply_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Committed>>> {
        let mut txn = self.db.begin_write().map_err(s)?;
        txn.set_durability(self.redb_durability()).map_err(s)?;
        let results = {
            let mut w = Writer::open(&txn, self.instance_id, self.metadata.embedding_dimension)?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                match w.apply(op) {
                    Ok(c) => results.push(Ok(c)),
                    Err(e) if e.is_answer() => results.push(Err(e)),
                    // Dropping `txn` unwritten aborts the whole batch.
                    Err(fault) => return Err(fault),
                }
            }
            w.finish()?;
            results
        };
        txn.commit().map_err(s)?;
        self.mark_commit();
        Ok(results)
    }
}

/// Every table of one write transaction, opened once per batch.
struct Writer<'t> {
    instance: InstanceId,
    /// The database's embedding dimension.
    dimension: usize,
    /// Versions every write of this batch.
    clock: HlcClock,
    meta: Table<'t, &'static str, &'static [u8]>,
    sequence: u64,
    collectives: Bytes<'t>,
    experiences: Bytes<'t>,
    by_collective: Index<'t>,
    reinforcements: Table<'t, &'static [u8], u32>,
    relations: Bytes<'t>,
    rel_by_source: Index<'t>,
    rel_by_target: Index<'t>,
    rel_by_collective: Index<'t>,
    rel_unique: Bytes<'t>,
    insights: Bytes<'t>,
    insights_by_collective: Index<'t>,
    activities: Bytes<'t>,
    wal: Table<'t, u64, &'static [u8]>,
    /// Experience id → the change-log entry that refers to its row.
    logged_at: Table<'t, &'static [u8], u64>,
    versions: Bytes<'t>,
    tombstones: Bytes<'t>,
    held: Bytes<'t>,
    held_by_wait: Index<'t>,
    pull_cursors: Table<'t, &'static [u8], u64>,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t WriteTransaction, instance: InstanceId, dimension: usize) -> Result<Self> {
        let meta = txn.open_table(schema::META).map_err(s)?;
        let sequence = match meta.get(meta_keys::SEQUENCE).map_err(s)? {
            Some(v) => u64::from_be_bytes(super::redb::fixed(v.value(), "wal_sequence")?),
            None => 0,
        };
        let mut clock = HlcClock::new();
        if let Some(v) = meta.get(meta_keys::HLC).map_err(s)? {
            clock.observe(versions::decode_hlc(v.value())?);
        }
        Ok(Writer {
            instance,
            dimension,
            clock,
            meta,
            sequence,
            collectives: txn.open_table(schema::COLLECTIVES).map_err(s)?,
            experiences: txn.open_table(schema::EXPERIENCES).map_err(s)?,
            by_collective: txn.open_table(schema::EXP_BY_COLLECTIVE).map_err(s)?,
            reinforcements: txn.open_table(schema::REINFORCEMENTS).map_err(s)?,
            relations: txn.open_table(schema::RELATIONS).map_err(s)?,
            rel_by_source: txn.open_table(schema::REL_BY_SOURCE).map_err(s)?,
            rel_by_target: txn.open_table(schema::REL_BY_TARGET).map_err(s)?,
            rel_by_collective: txn.open_table(schema::REL_BY_COLLECTIVE).map_err(s)?,
            rel_unique: txn.open_table(schema::REL_UNIQUE).map_err(s)?,
            insights: txn.open_table(schema::INSIGHTS).map_err(s)?,
            insights_by_collective: txn.open_table(schema::INSIGHTS_BY_COLLECTIVE).map_err(s)?,
            activities: txn.open_table(schema::ACTIVITIES).map_err(s)?,
            wal: txn.open_table(schema::WAL).map_err(s)?,
            logged_at: txn.open_table(schema::LOGGED_AT).map_err(s)?,
            versions: txn.open_table(schema::VERSIONS).map_err(s)?,
            tombstones: txn.open_table(schema::TOMBSTONES).map_err(s)?,
            held: txn.open_table(schema::HELD).map_err(s)?,
            held_by_wait: txn.open_table(schema::HELD_BY_WAIT).map_err(s)?,
            pull_cursors: txn.open_table(schema::PULL_CURSORS).map_err(s)?,
        })
    }

    fn finish(mut self) -> Result<()> {
        self.meta
            .insert(meta_keys::SEQUENCE, self.sequence.to_be_bytes().as_slice())
            .map_err(s)?;
        self.meta
            .insert(
                meta_keys::HLC,
                versions::encode_hlc(self.clock.last()).as_slice(),
            )
            .map_err(s)?;
        Ok(())
    }

    fn apply(&mut self, op: WriteOp) -> Result<Committed> {
        match op {
            WriteOp::CreateCollective(c) => self.create_collective(c),
            WriteOp::DeleteCollective(id) => self.delete_collective(id),
            WriteOp::RecordExperiences(exps) => self.record_experiences(exps),
            WriteOp::UpdateExperience { id, update } => self.update_experience(id, &update),
            WriteOp::ReinforceExperience { id, at } => self.reinforce(id, at),
            WriteOp::DeleteExperience(id) => self.delete_experience(id),
            WriteOp::StoreRelation(r) => self.store_relation(r),
            WriteOp::DeleteRelation(id) => self.delete_relation(id),
            WriteOp::StoreInsight(i) => self.store_insight(i),
            WriteOp::DeleteInsight(id) => self.delete_insight(id),
            WriteOp::UpsertActivity(a) => self.upsert_activity(a),
            WriteOp::Heartbeat {
                agent_id,
                collective_id,
                at,
            } => self.heartbeat(&agent_id, collective_id, at),
            WriteOp::EndActivity {
                agent_id,
                collective_id,
            } => self.end_activity(&agent_id, collective_id),
            WriteOp::ApplyRemote { changes, cursor } => self.apply_remote(changes, cursor),
        }
    }

    // --- change log ----------------------------------------------------------
    //
    // An experience's change-log entry refers to its row instead of copying
    // it for as long as the row is as that write left it: every write of
    // the row first gives the entry that refers to it a copy of the row
    // (`freeze_logged`), so each entry still reads as the record after its
    // own write, and a record written once is stored once.

    /// Appends one change-log entry of this instance's own write and
    /// returns its sequence and timestamp.
    fn log(
        &mut self,
        kind: ChangeKind,
        collective_id: CollectiveId,
        entity_id: [u8; 16],
    ) -> Result<(u64, Timestamp)> {
        let origin = self.instance;
        self.log_from(origin, kind, collective_id, entity_id)
    }

    /// Appends one change-log entry of `origin`'s write.
    fn log_from(
        &mut self,
        origin: InstanceId,
        kind: ChangeKind,
        collective_id: CollectiveId,
        entity_id: [u8; 16],
    ) -> Result<(u64, Timestamp)> {
        self.append_log(origin, kind, collective_id, entity_id, Logged::Nothing)
    }

    fn append_log(
        &mut self,
        origin: InstanceId,
        kind: ChangeKind,
        collective_id: CollectiveId,
        entity_id: [u8; 16],
        experience: Logged<'_>,
    ) -> Result<(u64, Timestamp)> {
        self.sequence += 1;
        let timestamp = Timestamp::now();
        let record = codec::encode_change_parts(
            kind,
            collective_id,
            entity_id,
            timestamp,
            origin,
            experience,
        )?;
        self.wal
            .insert(self.sequence, record.as_slice())
            .map_err(s)?;
        Ok((self.sequence, timestamp))
    }

    /// Logs an experience change and returns its watch event, without the
    /// experience: the storage actor puts that in only when someone watches
    /// (`Applied::complete_events`). The entry of a write that leaves a row
    /// refers to the row; the row's next write gives it a copy.
    fn log_experience(
        &mut self,
        kind: ChangeKind,
        exp: &Experience,
        deleted: bool,
    ) -> Result<Vec<WatchEvent>> {
        let origin = self.instance;
        self.log_experience_from(origin, kind, exp, deleted)
    }

    /// [`Self::log_experience`] for `origin`'s write.
    fn log_experience_from(
        &mut self,
        origin: InstanceId,
        kind: ChangeKind,
        exp: &Experience,
        deleted: bool,
    ) -> Result<Vec<WatchEvent>> {
        let id = exp.id.as_bytes();
        let logged = if deleted {
            Logged::Nothing
        } else {
            Logged::CurrentRow
        };
        // The event carries the logged timestamp, so it equals what
        // `poll_events` later reads back.
        let (sequence, timestamp) =
            self.append_log(origin, kind, exp.collective_id, *id, logged)?;
        if !deleted {
            self.logged_at.insert(id.as_slice(), sequence).map_err(s)?;
        }
        let Some(event_type) = kind.watch_type() else {
            return Ok(Vec::new());
        };
        Ok(vec![WatchEvent {
            sequence,
            experience_id: exp.id,
            collective_id: exp.collective_id,
            event_type,
            timestamp,
            experience: None,
        }])
    }

    /// Before experience `id`'s row is rewritten or removed: the change-log
    /// entry that refers to the row as it is gets a copy of it. Nothing to
    /// do when no entry refers to it (a record of an older schema, whose
    /// entries all hold copies, or an entry compacted away).
    fn freeze_logged(&mut self, id: &[u8; 16]) -> Result<()> {
        let Some(sequence) = self
            .logged_at
            .remove(id.as_slice())
            .map_err(s)?
            .map(|v| v.value())
        else {
            return Ok(());
        };
        let Some(entry) = self
            .wal
            .get(sequence)
            .map_err(s)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(());
        };
        let (change, refers) = codec::decode_change_entry(&entry)?;
        if !refers {
            return Ok(());
        }
        let Some(row) = self
            .experiences
            .get(id.as_slice())
            .map_err(s)?
            .map(|v| v.value().to_vec())
        else {
            return Err(StorageError::Corrupt(format!(
                "change-log entry {sequence} refers to a missing experience row"
            ))
            .into());
        };
        let current = codec::decode_experience_row(&row, false)?;
        let frozen = codec::encode_change_parts(
            change.kind,
            change.collective_id,
            change.entity_id,
            change.timestamp,
            change.origin.unwrap_or(self.instance),
            Logged::Copy(&current),
        )?;
        self.wal.insert(sequence, frozen.as_slice()).map_err(s)?;
        Ok(())
    }

    // --- versions ------------------------------------------------------------

    /// Gives a local write of an entity a new version.
    fn stamp(&mut self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<Version> {
        let version = Version {
            hlc: self.clock.tick(now_millis()),
            origin: self.instance,
        };
        self.set_version(c, kind, id, &version)?;
        Ok(version)
    }

    fn set_version(
        &mut self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
        version: &Version,
    ) -> Result<()> {
        self.versions
            .insert(
                entity_key(c, kind, id).as_slice(),
                versions::encode_version(version).as_slice(),
            )
            .map_err(s)?;
        Ok(())
    }

    /// Marks an entity deleted for good at `version` (a new local one when
    /// `None`).
    fn bury(
        &mut self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
        version: Option<Version>,
    ) -> Result<()> {
        let version = match version {
            Some(v) => v,
            None => Version {
                hlc: self.clock.tick(now_millis()),
                origin: self.instance,
            },
        };
        let k = entity_key(c, kind, id);
        self.versions.remove(k.as_slice()).map_err(s)?;
        self.tombstones
            .insert(k.as_slice(), versions::encode_version(&version).as_slice())
            .map_err(s)?;
        Ok(())
    }

    /// Removes every version, tombstone and held change of a collective.
    fn forget_versions(&mut self, c: CollectiveId) -> Result<()> {
        let prefix = c.as_bytes().as_slice();
        let within = |k: &[u8]| k.starts_with(prefix);
        self.versions
            .retain_in::<&[u8], _>(prefix.., |k, _| !within(k))
            .map_err(s)?;
        self.tombstones
            .retain_in::<&[u8], _>(prefix.., |k, _| !within(k))
            .map_err(s)?;
        self.held
            .retain_in::<&[u8], _>(prefix.., |k, _| !within(k))
            .map_err(s)?;
        self.held_by_wait
            .retain_in::<&[u8], _>(prefix.., |k, _| !within(k))
            .map_err(s)?;
        Ok(())
    }

    // --- lookups -------------------------------------------------------------

    fn require_collective(&self, id: CollectiveId) -> Result<Collective> {
        match self.collectives.get(id.as_bytes().as_slice()).map_err(s)? {
            Some(v) => Ok(codec::decode_collective(v.value())?),
            None => Err(NotFoundError::Collective(id).into()),
        }
    }

    /// The experience with its embedding, or `NotFound`.
    fn require_experience(&self, id: ExperienceId) -> Result<Experience> {
        let Some(raw) = self.experiences.get(id.as_bytes().as_slice()).map_err(s)? else {
            return Err(NotFoundError::Experience(id).into());
        };
        Ok(codec::decode_experience_row(raw.value(), true)?)
    }

    fn prefix_ids(table: &Index<'t>, prefix: &[u8]) -> Result<Vec<[u8; 16]>> {
        super::read::ids_with_prefix(table, prefix)
    }

    // --- collectives -----------------------------------------------------------

    fn create_collective(&mut self, c: Collective) -> Result<Committed> {
        let k = c.id.as_bytes().as_slice();
        if self.collectives.get(k).map_err(s)?.is_some() {
            return Err(ValidationError::invalid("id", "a collective with this id exists").into());
        }
        self.collectives
            .insert(k, codec::encode_collective(&c)?.as_slice())
            .map_err(s)?;
        self.stamp(c.id, Entity::Collective, c.id.as_bytes())?;
        self.log(ChangeKind::CollectiveCreated, c.id, *c.id.as_bytes())?;
        Ok(Committed {
            applied: Applied::CollectiveCreated(c),
            events: Vec::new(),
        })
    }

    fn delete_collective(&mut self, id: CollectiveId) -> Result<Committed> {
        self.require_collective(id)?;
        self.drop_collective_rows(id)?;
        self.bury(id, Entity::Collective, id.as_bytes(), None)?;
        self.log(ChangeKind::CollectiveDeleted, id, *id.as_bytes())?;
        Ok(Committed {
            applied: Applied::CollectiveDeleted(id),
            events: Vec::new(),
        })
    }

    /// Removes a collective and everything in it (versions included).
    fn drop_collective_rows(&mut self, id: CollectiveId) -> Result<()> {
        let prefix = id.as_bytes().as_slice();
        for rid in Self::prefix_ids(&self.rel_by_collective, prefix)? {
            self.remove_relation_rows(RelationId::from_bytes(rid))?;
        }
        for eid in Self::prefix_ids(&self.by_collective, prefix)? {
            let exp = self.require_experience(ExperienceId::from_bytes(eid))?;
            self.remove_experience_rows(&exp)?;
        }
        for iid in Self::prefix_ids(&self.insights_by_collective, prefix)? {
            self.insights.remove(iid.as_slice()).map_err(s)?;
            self.insights_by_collective
                .remove(key(&[prefix, &iid]).as_slice())
                .map_err(s)?;
        }
        let mut agents = Vec::new();
        for item in self.activities.range::<&[u8]>(prefix..).map_err(s)? {
            let (k, _) = item.map_err(s)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            agents.push(k.value().to_vec());
        }
        for k in agents {
            self.activities.remove(k.as_slice()).map_err(s)?;
        }
        self.collectives.remove(prefix).map_err(s)?;
        self.forget_versions(id)
    }

    // --- experiences -----------------------------------------------------------

    fn record_experiences(&mut self, exps: Vec<Experience>) -> Result<Committed> {
        let mut seen_collectives = HashSet::new();
        let mut seen_ids = HashSet::new();
        for e in &exps {
            if seen_collectives.insert(e.collective_id) {
                self.require_collective(e.collective_id)?;
            }
            let fresh = seen_ids.insert(e.id)
                && self
                    .experiences
                    .get(e.id.as_bytes().as_slice())
                    .map_err(s)?
                    .is_none();
            if !fresh {
                return Err(
                    ValidationError::invalid("id", "an experience with this id exists").into(),
                );
            }
        }
        let mut events = Vec::with_capacity(exps.len());
        for e in &exps {
            self.insert_experience_rows(e)?;
            self.stamp(e.collective_id, Entity::Experience, e.id.as_bytes())?;
            events.extend(self.log_experience(ChangeKind::ExperienceCreated, e, false)?);
        }
        Ok(Committed {
            applied: Applied::ExperiencesRecorded(exps),
            events,
        })
    }

    fn insert_experience_rows(&mut self, e: &Experience) -> Result<()> {
        let id = e.id.as_bytes();
        let c = e.collective_id.as_bytes();
        self.experiences
            .insert(id.as_slice(), codec::encode_experience_row(e)?.as_slice())
            .map_err(s)?;
        self.by_collective
            .insert(key(&[c, id]).as_slice(), ())
            .map_err(s)?;
        Ok(())
    }

    fn remove_experience_rows(&mut self, e: &Experience) -> Result<()> {
        let id = e.id.as_bytes();
        self.freeze_logged(id)?;
        self.experiences.remove(id.as_slice()).map_err(s)?;
        self.versions
            .remove(entity_key(e.collective_id, Entity::Experience, id).as_slice())
            .map_err(s)?;
        self.by_collective
            .remove(key(&[e.collective_id.as_bytes(), id]).as_slice())
            .map_err(s)?;
        let mut counters = Vec::new();
        for item in self
            .reinforcements
            .range::<&[u8]>(id.as_slice()..)
            .map_err(s)?
        {
            let (k, _) = item.map_err(s)?;
            if !k.value().starts_with(id) {
                break;
            }
            counters.push(k.value().to_vec());
        }
        for k in counters {
            self.reinforcements.remove(k.as_slice()).map_err(s)?;
        }
        Ok(())
    }

    fn rewrite_experience(&mut self, new: &Experience) -> Result<()> {
        self.freeze_logged(new.id.as_bytes())?;
        self.experiences
            .insert(
                new.id.as_bytes().as_slice(),
                codec::encode_experience_row(new)?.as_slice(),
            )
            .map_err(s)?;
        Ok(())
    }

    fn update_experience(
        &mut self,
        id: ExperienceId,
        update: &ExperienceUpdate,
    ) -> Result<Committed> {
        let old = self.require_experience(id)?;
        let mut new = old.clone();
        update.apply_to(&mut new);
        self.rewrite_experience(&new)?;
        self.stamp(new.collective_id, Entity::Experience, id.as_bytes())?;
        let kind = if update.archived == Some(true) {
            ChangeKind::ExperienceArchived
        } else {
            ChangeKind::ExperienceUpdated
        };
        let events = self.log_experience(kind, &new, false)?;
        Ok(Committed {
            applied: Applied::ExperienceChanged(Box::new(new)),
            events,
        })
    }

    fn reinforce(&mut self, id: ExperienceId, at: Timestamp) -> Result<Committed> {
        let old = self.require_experience(id)?;
        let counter_key = key(&[id.as_bytes(), self.instance.as_bytes()]);
        let mine = self
            .reinforcements
            .get(counter_key.as_slice())
            .map_err(s)?
            .map_or(0, |v| v.value());
        self.reinforcements
            .insert(counter_key.as_slice(), mine.saturating_add(1))
            .map_err(s)?;
        let mut new = old.clone();
        new.applications = old.applications.saturating_add(1);
        new.last_reinforced = at.max(old.last_reinforced);
        self.rewrite_experience(&new)?;
        let events = self.log_experience(ChangeKind::ExperienceUpdated, &new, false)?;
        Ok(Committed {
            applied: Applied::ExperienceChanged(Box::new(new)),
            events,
        })
    }

    fn delete_experience(&mut self, id: ExperienceId) -> Result<Committed> {
        let exp = self.require_experience(id)?;
        let mut rels = Self::prefix_ids(&self.rel_by_source, id.as_bytes())?;
        rels.extend(Self::prefix_ids(&self.rel_by_target, id.as_bytes())?);
        for rid in &rels {
            self.remove_relation_rows(RelationId::from_bytes(*rid))?;
        }
        self.remove_experience_rows(&exp)?;
        self.bury(exp.collective_id, Entity::Experience, id.as_bytes(), None)?;
        let events = self.log_experience(ChangeKind::ExperienceDeleted, &exp, true)?;
        let deleted = Applied::ExperienceDeleted {
            collective_id: exp.collective_id,
            id,
        };
        // What waited for the experience, or for a relation that went
        // with it (a duplicate behind it), is merged again now.
        rels.push(*id.as_bytes());
        self.with_released(exp.collective_id, &rels, deleted, events)
    }

    // --- relations ---------------------------------------------------------------

    fn store_relation(&mut self, r: ExperienceRelation) -> Result<Committed> {
        if r.source_id == r.target_id {
            return Err(ValidationError::invalid(
                "target_id",
                "a relation cannot link an experience to itself",
            )
            .into());
        }
        let source = self.require_experience(r.source_id)?;
        let target = self.require_experience(r.target_id)?;
        if source.collective_id != target.collective_id {
            return Err(ValidationError::invalid(
                "target_id",
                "source and target must belong to the same collective",
            )
            .into());
        }
        if self
            .relations
            .get(r.id.as_bytes().as_slice())
            .map_err(s)?
            .is_some()
        {
            return Err(ValidationError::invalid("id", "a relation with this id exists").into());
        }
        let unique = key(&[
            r.source_id.as_bytes(),
            r.target_id.as_bytes(),
            &[r.relation_type.code()],
        ]);
        if self.rel_unique.get(unique.as_slice()).map_err(s)?.is_some() {
            return Err(ValidationError::invalid(
                "relation_type",
                "a relation of this type between these experiences exists",
            )
            .into());
        }
        let id = r.id.as_bytes();
        let c = source.collective_id;
        self.insert_relation_rows(c, &r)?;
        self.stamp(c, Entity::Relation, id)?;
        self.log(ChangeKind::RelationCreated, c, *id)?;
        Ok(Committed {
            applied: Applied::RelationStored(r),
            events: Vec::new(),
        })
    }

    /// Writes a relation into every relation table.
    fn insert_relation_rows(&mut self, c: CollectiveId, r: &ExperienceRelation) -> Result<()> {
        let id = r.id.as_bytes();
        let unique = key(&[
            r.source_id.as_bytes(),
            r.target_id.as_bytes(),
            &[r.relation_type.code()],
        ]);
        self.relations
            .insert(id.as_slice(), codec::encode_relation(r)?.as_slice())
            .map_err(s)?;
        self.rel_by_source
            .insert(key(&[r.source_id.as_bytes(), id]).as_slice(), ())
            .map_err(s)?;
        self.rel_by_target
            .insert(key(&[r.target_id.as_bytes(), id]).as_slice(), ())
            .map_err(s)?;
        self.rel_by_collective
            .insert(key(&[c.as_bytes(), id]).as_slice(), ())
            .map_err(s)?;
        self.rel_unique
            .insert(unique.as_slice(), id.as_slice())
            .map_err(s)?;
        Ok(())
    }

    /// Removes a relation from every relation table; returns its collective.
    fn remove_relation_rows(&mut self, id: RelationId) -> Result<Option<CollectiveId>> {
        let Some(raw) = self.relations.remove(id.as_bytes().as_slice()).map_err(s)? else {
            return Ok(None);
        };
        let r = codec::decode_relation(raw.value())?;
        drop(raw);
        let rid = id.as_bytes();
        self.rel_by_source
            .remove(key(&[r.source_id.as_bytes(), rid]).as_slice())
            .map_err(s)?;
        self.rel_by_target
            .remove(key(&[r.target_id.as_bytes(), rid]).as_slice())
            .map_err(s)?;
        let unique = key(&[
            r.source_id.as_bytes(),
            r.target_id.as_bytes(),
            &[r.relation_type.code()],
        ]);
        self.rel_unique.remove(unique.as_slice()).map_err(s)?;
        // The collective is that of the source, which still exists here
        // (ends are deleted after their relations).
        let collective = self
            .experiences
            .get(r.source_id.as_bytes().as_slice())
            .map_err(s)?
            .map(|v| codec::decode_experience_row(v.value(), false).map(|e| e.collective_id))
            .transpose()?;
        if let Some(c) = collective {
            self.rel_by_collective
                .remove(key(&[c.as_bytes(), rid]).as_slice())
                .map_err(s)?;
            self.versions
                .remove(entity_key(c, Entity::Relation, rid).as_slice())
                .map_err(s)?;
        }
        Ok(collective)
    }

    fn delete_relation(&mut self, id: RelationId) -> Result<Committed> {
        if self
            .relations
            .get(id.as_bytes().as_slice())
            .map_err(s)?
            .is_none()
        {
            return Err(NotFoundError::Relation(id).into());
        }
        let collective = self
            .remove_relation_rows(id)?
            .ok_or_else(|| StorageError::Corrupt(format!("relation {id} has no source")))?;
        self.bury(collective, Entity::Relation, id.as_bytes(), None)?;
        self.log(ChangeKind::RelationDeleted, collective, *id.as_bytes())?;
        // A duplicate it shadowed shows now.
        let deleted = Applied::RelationDeleted(id);
        self.with_released(collective, &[*id.as_bytes()], deleted, Vec::new())
    }

    // --- insights ------------------------------------------------------------------

    fn store_insight(&mut self, i: DerivedInsight) -> Result<Committed> {
        self.require_collective(i.collective_id)?;
        if self
            .insights
            .get(i.id.as_bytes().as_slice())
            .map_err(s)?
            .is_some()
        {
            return Err(ValidationError::invalid("id", "an insight with this id exists").into());
        }
        for src in &i.source_experience_ids {
            let Some(raw) = self.experiences.get(src.as_bytes().as_slice()).map_err(s)? else {
                return Err(NotFoundError::Experience(*src).into());
            };
            if codec::decode_experience_row(raw.value(), false)?.collective_id != i.collective_id {
                return Err(ValidationError::invalid(
                    "source_experience_ids",
                    format!("experience {src} belongs to another collective"),
                )
                .into());
            }
        }
        let id = i.id.as_bytes();
        self.insights
            .insert(id.as_slice(), codec::encode_insight(&i)?.as_slice())
            .map_err(s)?;
        self.insights_by_collective
            .insert(key(&[i.collective_id.as_bytes(), id]).as_slice(), ())
            .map_err(s)?;
        self.stamp(i.collective_id, Entity::Insight, id)?;
        self.log(ChangeKind::InsightCreated, i.collective_id, *id)?;
        Ok(Committed {
            applied: Applied::InsightStored(i),
            events: Vec::new(),
        })
    }

    fn delete_insight(&mut self, id: InsightId) -> Result<Committed> {
        let Some(raw) = self.insights.remove(id.as_bytes().as_slice()).map_err(s)? else {
            return Err(NotFoundError::Insight(id).into());
        };
        let i = codec::decode_insight(raw.value())?;
        drop(raw);
        self.insights_by_collective
            .remove(key(&[i.collective_id.as_bytes(), id.as_bytes()]).as_slice())
            .map_err(s)?;
        self.bury(i.collective_id, Entity::Insight, id.as_bytes(), None)?;
        self.log(ChangeKind::InsightDeleted, i.collective_id, *id.as_bytes())?;
        Ok(Committed {
            applied: Applied::InsightDeleted {
                collective_id: i.collective_id,
                id,
            },
            events: Vec::new(),
        })
    }

    // --- activities ----------------------------------------------------------------

    fn upsert_activity(&mut self, a: Activity) -> Result<Committed> {
        self.require_collective(a.collective_id)?;
        let k = key(&[a.collective_id.as_bytes(), a.agent_id.as_bytes()]);
        self.activities
            .insert(k.as_slice(), codec::encode_activity(&a)?.as_slice())
            .map_err(s)?;
        Ok(Committed {
            applied: Applied::ActivityChanged,
            events: Vec::new(),
        })
    }

    fn heartbeat(&mut self, agent_id: &str, c: CollectiveId, at: Timestamp) -> Result<Committed> {
        self.require_collective(c)?;
        let k = key(&[c.as_bytes(), agent_id.as_bytes()]);
        let Some(raw) = self.activities.get(k.as_slice()).map_err(s)? else {
            return Err(NotFoundError::Activity {
                agent_id: agent_id.to_string(),
                collective_id: c,
            }
            .into());
        };
        let mut a = codec::decode_activity(raw.value())?;
        drop(raw);
        a.last_heartbeat = at.max(a.last_heartbeat);
        self.activities
            .insert(k.as_slice(), codec::encode_activity(&a)?.as_slice())
            .map_err(s)?;
        Ok(Committed {
            applied: Applied::ActivityChanged,
            events: Vec::new(),
        })
    }

    fn end_activity(&mut self, agent_id: &str, c: CollectiveId) -> Result<Committed> {
        self.require_collective(c)?;
        let k = key(&[c.as_bytes(), agent_id.as_bytes()]);
        if self.activities.remove(k.as_slice()).map_err(s)?.is_none() {
            return Err(NotFoundError::Activity {
                agent_id: agent_id.to_string(),
                collective_id: c,
            }
            .into());
        }
        Ok(Committed {
            applied: Applied::ActivityChanged,
            events: Vec::new(),
        })
    }
}

/// Wall-clock milliseconds for the hybrid clock.
fn now_millis() -> u64 {
    u64::try_from(Timestamp::now().0).unwrap_or(0)
}
