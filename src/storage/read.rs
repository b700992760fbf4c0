//! The read side of [`RedbStorage`]: every query runs in its own read
//! transaction, so it sees one consistent snapshot and never blocks the writer.

use ::redb::{ReadableTable, ReadableTableMetadata};

use super::codec;
use super::schema::{self, key, meta_keys};
use super::{
    ChangeRecord, Committed, RedbStorage, StorageError, StorageRead, StorageWrite, WriteOp,
};
use crate::activity::Activity;
use crate::collective::{Collective, CollectiveId, CollectiveStats};
use crate::error::{NotFoundError, Result};
use crate::event::WatchEvent;
use crate::experience::{Experience, ExperienceId};
use crate::id::{InstanceId, Timestamp};
use crate::insight::{DerivedInsight, InsightId};
use crate::metadata::DatabaseMetadata;
use crate::relation::{ExperienceRelation, RelationId, RelationType};

type BytesTable = ::redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
type IndexTable = ::redb::ReadOnlyTable<&'static [u8], ()>;

/// Ids stored as the trailing 16 bytes of the index keys that start with `prefix`.
pub(super) fn ids_with_prefix(
    table: &impl ReadableTable<&'static [u8], ()>,
    prefix: &[u8],
) -> Result<Vec<[u8; 16]>> {
    let mut out = Vec::new();
    for item in table.range::<&[u8]>(prefix..).map_err(StorageError::from)? {
        let (k, _) = item.map_err(StorageError::from)?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        if let Some(id) = schema::trailing_id(k) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Like [`ids_with_prefix`], skipping `offset` and taking at most `limit`.
fn page_with_prefix(
    table: &IndexTable,
    prefix: &[u8],
    limit: usize,
    offset: usize,
) -> Result<Vec<[u8; 16]>> {
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut skipped = 0;
    for item in table.range::<&[u8]>(prefix..).map_err(StorageError::from)? {
        let (k, _) = item.map_err(StorageError::from)?;
        let k = k.value();
        if !k.starts_with(prefix) || out.len() >= limit {
            break;
        }
        if skipped < offset {
            skipped += 1;
            continue;
        }
        if let Some(id) = schema::trailing_id(k) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The first key after every key starting with `prefix` (for reverse scans).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end.extend_from_slice(&[0xff; 32]);
    end
}

impl RedbStorage {
    fn bytes_table(
        txn: &::redb::ReadTransaction,
        def: ::redb::TableDefinition<&'static [u8], &'static [u8]>,
    ) -> Result<BytesTable> {
        Ok(txn.open_table(def).map_err(StorageError::from)?)
    }

    fn index_table(
        txn: &::redb::ReadTransaction,
        def: ::redb::TableDefinition<&'static [u8], ()>,
    ) -> Result<IndexTable> {
        Ok(txn.open_table(def).map_err(StorageError::from)?)
    }

    fn load_experience(
        exps: &BytesTable,
        with_embedding: bool,
        id: &[u8; 16],
    ) -> Result<Option<Experience>> {
        let Some(raw) = exps.get(id.as_slice()).map_err(StorageError::from)? else {
            return Ok(None);
        };
        Ok(Some(codec::decode_experience_row(
            raw.value(),
            with_embedding,
        )?))
    }

    fn collective_known(&self, txn: &::redb::ReadTransaction, c: CollectiveId) -> Result<()> {
        let t = Self::bytes_table(txn, schema::COLLECTIVES)?;
        if t.get(c.as_bytes().as_slice())
            .map_err(StorageError::from)?
            .is_none()
        {
            return Err(NotFoundError::Collective(c).into());
        }
        Ok(())
    }

    /// The record change-log entry `sequence` reads as: its copy (with the
    /// row's embedding when asked and the row still exists: embeddings
    /// never change), or, for an entry that refers to the row, the row.
    fn logged_record(
        exps: &BytesTable,
        sequence: u64,
        change: &mut ChangeRecord,
        refers: bool,
        with_embedding: bool,
    ) -> Result<Option<Experience>> {
        let row = |id: &[u8; 16]| exps.get(id.as_slice()).map_err(StorageError::from);
        if refers {
            let Some(raw) = row(&change.entity_id)? else {
                return Err(StorageError::Corrupt(format!(
                    "change-log entry {sequence} refers to a missing experience row"
                ))
                .into());
            };
            return Ok(Some(codec::decode_experience_row(
                raw.value(),
                with_embedding,
            )?));
        }
        let Some(mut exp) = change.experience.take() else {
            return Ok(None);
        };
        if with_embedding {
            if let Some(raw) = row(exp.id.as_bytes())? {
                exp.embedding = codec::row_embedding(raw.value())?;
            }
        }
        Ok(Some(exp))
    }

    fn to_watch_event(
        &self,
        exps: &BytesTable,
        sequence: u64,
        mut change: ChangeRecord,
        refers: bool,
    ) -> Result<Option<WatchEvent>> {
        let Some(event_type) = change.kind.watch_type() else {
            return Ok(None);
        };
        let experience = Self::logged_record(exps, sequence, &mut change, refers, true)?;
        Ok(Some(WatchEvent {
            sequence,
            experience_id: ExperienceId::from_bytes(change.entity_id),
            collective_id: change.collective_id,
            event_type,
            timestamp: change.timestamp,
            experience,
        }))
    }
}

impl StorageRead for RedbStorage {
    fn metadata(&self) -> DatabaseMetadata {
        self.metadata.clone()
    }

    fn instance_id(&self) -> InstanceId {
        self.instance_id
    }

    fn get_collective(&self, id: CollectiveId) -> Result<Option<Collective>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::COLLECTIVES)?;
        let v = t
            .get(id.as_bytes().as_slice())
            .map_err(StorageError::from)?;
        v.map(|v| codec::decode_collective(v.value()))
            .transpose()
            .map_err(Into::into)
    }

    fn list_collectives(&self) -> Result<Vec<Collective>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::COLLECTIVES)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(StorageError::from)? {
            let (_, v) = item.map_err(StorageError::from)?;
            out.push(codec::decode_collective(v.value())?);
        }
        out.sort_by_key(|c| (c.created_at, c.id));
        Ok(out)
    }

    fn collective_stats(&self, id: CollectiveId) -> Result<CollectiveStats> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, id)?;
        let prefix = id.as_bytes().as_slice();
        let by_collective = Self::index_table(&txn, schema::EXP_BY_COLLECTIVE)?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let mut stats = CollectiveStats::default();
        for exp_id in ids_with_prefix(&by_collective, prefix)? {
            let raw = exps
                .get(exp_id.as_slice())
                .map_err(StorageError::from)?
                .ok_or_else(|| StorageError::Corrupt("dangling collective index entry".into()))?;
            let exp = codec::decode_experience_row(raw.value(), false)?;
            stats.experience_count += 1;
            if exp.archived {
                stats.archived_count += 1;
            }
            stats.oldest_experience = Some(
                stats
                    .oldest_experience
                    .map_or(exp.timestamp, |t| t.min(exp.timestamp)),
            );
            stats.newest_experience = Some(
                stats
                    .newest_experience
                    .map_or(exp.timestamp, |t| t.max(exp.timestamp)),
            );
            stats.storage_bytes += (16 + raw.value().len()) as u64;
        }
        let insights_idx = Self::index_table(&txn, schema::INSIGHTS_BY_COLLECTIVE)?;
        let insights = Self::bytes_table(&txn, schema::INSIGHTS)?;
        for iid in ids_with_prefix(&insights_idx, prefix)? {
            stats.insight_count += 1;
            if let Some(v) = insights.get(iid.as_slice()).map_err(StorageError::from)? {
                stats.storage_bytes += (16 + v.value().len()) as u64;
            }
        }
        let rel_idx = Self::index_table(&txn, schema::REL_BY_COLLECTIVE)?;
        let relations = Self::bytes_table(&txn, schema::RELATIONS)?;
        for rid in ids_with_prefix(&rel_idx, prefix)? {
            stats.relation_count += 1;
            if let Some(v) = relations.get(rid.as_slice()).map_err(StorageError::from)? {
                stats.storage_bytes += (16 + v.value().len()) as u64;
            }
        }
        Ok(stats)
    }

    fn count_experiences(&self, id: CollectiveId) -> Result<u64> {
        let txn = self.read_txn()?;
        let t = Self::index_table(&txn, schema::EXP_BY_COLLECTIVE)?;
        Ok(ids_with_prefix(&t, id.as_bytes())?.len() as u64)
    }

    fn get_experience(&self, id: ExperienceId) -> Result<Option<Experience>> {
        let txn = self.read_txn()?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        Self::load_experience(&exps, true, id.as_bytes())
    }

    fn get_experiences(&self, ids: &[ExperienceId]) -> Result<Vec<Experience>> {
        let txn = self.read_txn()?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = Self::load_experience(&exps, true, id.as_bytes())? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn get_embedding(&self, id: ExperienceId) -> Result<Option<Vec<f32>>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let v = t
            .get(id.as_bytes().as_slice())
            .map_err(StorageError::from)?;
        v.map(|v| codec::row_embedding(v.value()))
            .transpose()
            .map_err(Into::into)
    }

    fn list_experience_ids(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExperienceId>> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let t = Self::index_table(&txn, schema::EXP_BY_COLLECTIVE)?;
        Ok(page_with_prefix(&t, c.as_bytes(), limit, offset)?
            .into_iter()
            .map(ExperienceId::from_bytes)
            .collect())
    }

    fn scan_experiences_newest_first(
        &self,
        c: CollectiveId,
        visit: &mut dyn FnMut(Experience) -> bool,
    ) -> Result<()> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let idx = Self::index_table(&txn, schema::EXP_BY_COLLECTIVE)?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let prefix = c.as_bytes().as_slice();
        let end = prefix_end(prefix);
        let range = idx
            .range::<&[u8]>(prefix..end.as_slice())
            .map_err(StorageError::from)?;
        for item in range.rev() {
            let (k, _) = item.map_err(StorageError::from)?;
            let Some(id) = schema::trailing_id(k.value()) else {
                continue;
            };
            if let Some(exp) = Self::load_experience(&exps, false, &id)? {
                if !visit(exp) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn scan_experiences(
        &self,
        c: CollectiveId,
        with_embeddings: bool,
        visit: &mut dyn FnMut(Experience),
    ) -> Result<()> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let idx = Self::index_table(&txn, schema::EXP_BY_COLLECTIVE)?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        for id in ids_with_prefix(&idx, c.as_bytes())? {
            if let Some(exp) = Self::load_experience(&exps, with_embeddings, &id)? {
                visit(exp);
            }
        }
        Ok(())
    }

    fn get_relation(&self, id: RelationId) -> Result<Option<ExperienceRelation>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::RELATIONS)?;
        let v = t
            .get(id.as_bytes().as_slice())
            .map_err(StorageError::from)?;
        v.map(|v| codec::decode_relation(v.value()))
            .transpose()
            .map_err(Into::into)
    }

    fn relation_ids_by_source(&self, id: ExperienceId) -> Result<Vec<RelationId>> {
        let txn = self.read_txn()?;
        let t = Self::index_table(&txn, schema::REL_BY_SOURCE)?;
        Ok(ids_with_prefix(&t, id.as_bytes())?
            .into_iter()
            .map(RelationId::from_bytes)
            .collect())
    }

    fn relation_ids_by_target(&self, id: ExperienceId) -> Result<Vec<RelationId>> {
        let txn = self.read_txn()?;
        let t = Self::index_table(&txn, schema::REL_BY_TARGET)?;
        Ok(ids_with_prefix(&t, id.as_bytes())?
            .into_iter()
            .map(RelationId::from_bytes)
            .collect())
    }

    fn relation_exists(
        &self,
        source: ExperienceId,
        target: ExperienceId,
        relation_type: RelationType,
    ) -> Result<bool> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::REL_UNIQUE)?;
        let k = key(&[
            source.as_bytes(),
            target.as_bytes(),
            &[relation_type.code()],
        ]);
        Ok(t.get(k.as_slice()).map_err(StorageError::from)?.is_some())
    }

    fn list_relations(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExperienceRelation>> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let idx = Self::index_table(&txn, schema::REL_BY_COLLECTIVE)?;
        let rels = Self::bytes_table(&txn, schema::RELATIONS)?;
        let mut out = Vec::new();
        for id in page_with_prefix(&idx, c.as_bytes(), limit, offset)? {
            if let Some(v) = rels.get(id.as_slice()).map_err(StorageError::from)? {
                out.push(codec::decode_relation(v.value())?);
            }
        }
        Ok(out)
    }

    fn get_insight(&self, id: InsightId) -> Result<Option<DerivedInsight>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::INSIGHTS)?;
        let v = t
            .get(id.as_bytes().as_slice())
            .map_err(StorageError::from)?;
        v.map(|v| codec::decode_insight(v.value()))
            .transpose()
            .map_err(Into::into)
    }

    fn list_insight_ids(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<InsightId>> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let t = Self::index_table(&txn, schema::INSIGHTS_BY_COLLECTIVE)?;
        Ok(page_with_prefix(&t, c.as_bytes(), limit, offset)?
            .into_iter()
            .map(InsightId::from_bytes)
            .collect())
    }

    fn get_activity(&self, agent_id: &str, c: CollectiveId) -> Result<Option<Activity>> {
        let txn = self.read_txn()?;
        let t = Self::bytes_table(&txn, schema::ACTIVITIES)?;
        let k = key(&[c.as_bytes(), agent_id.as_bytes()]);
        let v = t.get(k.as_slice()).map_err(StorageError::from)?;
        v.map(|v| codec::decode_activity(v.value()))
            .transpose()
            .map_err(Into::into)
    }

    fn list_activities(&self, c: CollectiveId, since: Timestamp) -> Result<Vec<Activity>> {
        let txn = self.read_txn()?;
        self.collective_known(&txn, c)?;
        let t = Self::bytes_table(&txn, schema::ACTIVITIES)?;
        let prefix = c.as_bytes().as_slice();
        let mut out = Vec::new();
        for item in t.range::<&[u8]>(prefix..).map_err(StorageError::from)? {
            let (k, v) = item.map_err(StorageError::from)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            let a = codec::decode_activity(v.value())?;
            if a.last_heartbeat >= since {
                out.push(a);
            }
        }
        out.sort_by(|a, b| {
            b.last_heartbeat
                .cmp(&a.last_heartbeat)
                .then_with(|| a.agent_id.cmp(&b.agent_id))
        });
        Ok(out)
    }

    fn current_sequence(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        let t = txn.open_table(schema::META).map_err(StorageError::from)?;
        let v = t
            .get(meta_keys::SEQUENCE)
            .map_err(StorageError::from)?
            .ok_or_else(|| StorageError::Corrupt("change-log sequence missing".into()))?;
        Ok(u64::from_be_bytes(super::redb::fixed(
            v.value(),
            "wal_sequence",
        )?))
    }

    fn changes_since(&self, since: u64, limit: usize) -> Result<Vec<(u64, ChangeRecord)>> {
        let txn = self.read_txn()?;
        let t = txn.open_table(schema::WAL).map_err(StorageError::from)?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let mut out = Vec::new();
        let start = since.saturating_add(1);
        for item in t.range(start..).map_err(StorageError::from)?.take(limit) {
            let (k, v) = item.map_err(StorageError::from)?;
            let sequence = k.value();
            let (mut change, refers) = codec::decode_change_entry(v.value())?;
            change.experience = Self::logged_record(&exps, sequence, &mut change, refers, false)?;
            out.push((sequence, change));
        }
        Ok(out)
    }

    fn compacted_through(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        compacted_through(&meta)
    }

    fn poll_events(&self, since: u64, limit: usize) -> Result<(Vec<WatchEvent>, u64)> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        let compacted = compacted_through(&meta)?;
        if since < compacted {
            return Err(crate::error::Error::ChangesCompacted {
                oldest: compacted + 1,
            });
        }
        let wal = txn.open_table(schema::WAL).map_err(StorageError::from)?;
        let exps = Self::bytes_table(&txn, schema::EXPERIENCES)?;
        let mut events = Vec::new();
        let mut position = since;
        let start = since.saturating_add(1);
        for item in wal.range(start..).map_err(StorageError::from)? {
            let (k, v) = item.map_err(StorageError::from)?;
            let seq = k.value();
            let (change, refers) = codec::decode_change_entry(v.value())?;
            if change.kind.watch_type().is_some() {
                if events.len() >= limit {
                    break;
                }
                if let Some(event) = self.to_watch_event(&exps, seq, change, refers)? {
                    events.push(event);
                }
            }
            position = seq;
        }
        Ok((events, position))
    }

    fn load_sync_cursor(&self, peer: InstanceId) -> Result<Option<u64>> {
        let txn = self.read_txn()?;
        let t = txn
            .open_table(schema::SYNC_CURSORS)
            .map_err(StorageError::from)?;
        let v = t
            .get(peer.as_bytes().as_slice())
            .map_err(StorageError::from)?;
        Ok(v.map(|v| v.value()))
    }

    fn list_sync_cursors(&self) -> Result<Vec<(InstanceId, u64)>> {
        let txn = self.read_txn()?;
        let t = txn
            .open_table(schema::SYNC_CURSORS)
            .map_err(StorageError::from)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(StorageError::from)? {
            let (k, v) = item.map_err(StorageError::from)?;
            let id = super::redb::fixed::<16>(k.value(), "sync cursor key")?;
            out.push((InstanceId::from_bytes(id), v.value()));
        }
        Ok(out)
    }
}

impl StorageWrite for RedbStorage {
    fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Committed>>> {
        self.commits.observe(ops.len());
        self.apply_batch(ops)
    }

    fn flush(&self) -> Result<()> {
        self.flush_if_dirty()
    }

    fn compact_changes(&self, upto: u64) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let removed = remove_log_through(&txn, upto)?;
        txn.commit().map_err(StorageError::from)?;
        Ok(removed)
    }

    fn compact_expired_changes(&self, before: Timestamp, max: usize) -> Result<u64> {
        let mut txn = self.db.begin_write()?;
        let limit = {
            let cursors = txn
                .open_table(schema::SYNC_CURSORS)
                .map_err(StorageError::from)?;
            let mut lowest = u64::MAX;
            for item in cursors.iter().map_err(StorageError::from)? {
                let (_, v) = item.map_err(StorageError::from)?;
                lowest = lowest.min(v.value());
            }
            lowest
        };
        let mut last = None;
        {
            let wal = txn.open_table(schema::WAL).map_err(StorageError::from)?;
            for item in wal.range(..=limit).map_err(StorageError::from)?.take(max) {
                let (k, v) = item.map_err(StorageError::from)?;
                if codec::decode_change(v.value())?.timestamp >= before {
                    break;
                }
                last = Some(k.value());
            }
        }
        let Some(upto) = last else {
            txn.abort().map_err(StorageError::from)?;
            return Ok(0);
        };
        let removed = remove_log_through(&txn, upto)?;
        txn.set_durability(self.redb_durability())
            .map_err(StorageError::from)?;
        txn.commit().map_err(StorageError::from)?;
        self.mark_commit();
        Ok(removed)
    }

    fn save_sync_cursor(&self, peer: InstanceId, sequence: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn
                .open_table(schema::SYNC_CURSORS)
                .map_err(StorageError::from)?;
            t.insert(peer.as_bytes().as_slice(), sequence)
                .map_err(StorageError::from)?;
        }
        txn.commit().map_err(StorageError::from)?;
        Ok(())
    }
}

/// The compaction watermark stored in the metadata table (0: none).
pub(super) fn compacted_through(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64> {
    match meta
        .get(meta_keys::COMPACTED_THROUGH)
        .map_err(StorageError::from)?
    {
        Some(v) => Ok(u64::from_be_bytes(super::redb::fixed(
            v.value(),
            "wal_compacted_through",
        )?)),
        None => Ok(0),
    }
}

/// Removes the change-log entries up to `upto`, and the keys that lead to
/// those of them that refer to their experience's row, and raises the
/// compaction watermark. Returns how many entries were removed.
fn remove_log_through(txn: &::redb::WriteTransaction, upto: u64) -> Result<u64> {
    let (removed, referring) = {
        let mut t = txn.open_table(schema::WAL).map_err(StorageError::from)?;
        let mut referring = Vec::new();
        for item in t.range(..=upto).map_err(StorageError::from)? {
            let (k, v) = item.map_err(StorageError::from)?;
            if let (change, true) = codec::decode_change_entry(v.value())? {
                referring.push((change.entity_id, k.value()));
            }
        }
        let before = t.len().map_err(StorageError::from)?;
        t.retain_in(..=upto, |_, _| false)
            .map_err(StorageError::from)?;
        (before - t.len().map_err(StorageError::from)?, referring)
    };
    let mut logged_at = txn
        .open_table(schema::LOGGED_AT)
        .map_err(StorageError::from)?;
    for (id, sequence) in referring {
        let leads_here = logged_at
            .get(id.as_slice())
            .map_err(StorageError::from)?
            .is_some_and(|v| v.value() == sequence);
        if leads_here {
            logged_at
                .remove(id.as_slice())
                .map_err(StorageError::from)?;
        }
    }
    raise_compacted_through(txn, upto)?;
    Ok(removed)
}

/// Records that every entry up to `upto` (at most the last sequence
/// assigned) was compacted; the watermark only rises.
fn raise_compacted_through(txn: &::redb::WriteTransaction, upto: u64) -> Result<()> {
    let mut meta = txn.open_table(schema::META).map_err(StorageError::from)?;
    let last = match meta.get(meta_keys::SEQUENCE).map_err(StorageError::from)? {
        Some(v) => u64::from_be_bytes(super::redb::fixed(v.value(), "wal_sequence")?),
        None => 0,
    };
    let upto = upto.min(last);
    let current = compacted_through(&meta)?;
    if upto > current {
        meta.insert(meta_keys::COMPACTED_THROUGH, upto.to_be_bytes().as_slice())
            .map_err(StorageError::from)?;
    }
    Ok(())
}
