//! The replication side of [`RedbStorage`]: the change log as peers read
//! it (each entry as its entity's state now, with its version), the whole
//! state as a snapshot, and the positions of peers on both sides.

use std::collections::HashMap;

use ::redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::read::compacted_through;
use super::schema::{self, meta_keys};
use super::versions::{self, entity_key, Entity};
use super::{codec, ChangeKind, RedbStorage, StorageError};
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::experience::ExperienceId;
use crate::id::{InstanceId, Timestamp};
use crate::insight::InsightId;
use crate::relation::RelationId;
use crate::replication::{ChangePage, Counter, RemoteChange, Version, PROTOCOL_VERSION};

type Bytes = ::redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Changes with the sequences of their entries, the position reached and
/// the head of the log.
type LogPage = (Vec<(u64, RemoteChange)>, u64, u64);

/// The tables a change is read from, opened once per page.
struct Tables {
    collectives: Bytes,
    experiences: Bytes,
    reinforcements: ::redb::ReadOnlyTable<&'static [u8], u32>,
    relations: Bytes,
    insights: Bytes,
    versions: Bytes,
    tombstones: Bytes,
    held: Bytes,
}

impl Tables {
    fn open(txn: &ReadTransaction) -> Result<Tables> {
        let t = |d| txn.open_table(d).map_err(StorageError::from);
        Ok(Tables {
            collectives: t(schema::COLLECTIVES)?,
            experiences: t(schema::EXPERIENCES)?,
            reinforcements: txn
                .open_table(schema::REINFORCEMENTS)
                .map_err(StorageError::from)?,
            relations: t(schema::RELATIONS)?,
            insights: t(schema::INSIGHTS)?,
            versions: t(schema::VERSIONS)?,
            tombstones: t(schema::TOMBSTONES)?,
            held: t(schema::HELD)?,
        })
    }

    fn version(&self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<Option<Version>> {
        versions::get_version(&self.versions, &entity_key(c, kind, id))
    }

    fn tombstone(&self, c: CollectiveId, kind: Entity, id: &[u8; 16]) -> Result<Option<Version>> {
        versions::get_version(&self.tombstones, &entity_key(c, kind, id))
    }

    /// The entity's state now, as a change: live, deleted, held back, or
    /// `None` when gone with its collective.
    fn current(
        &self,
        c: CollectiveId,
        kind: Entity,
        id: &[u8; 16],
    ) -> Result<Option<RemoteChange>> {
        if let Some(version) = self.tombstone(c, kind, id)? {
            return Ok(Some(match kind {
                Entity::Collective => RemoteChange::CollectiveDeleted { id: c, version },
                Entity::Experience => RemoteChange::ExperienceDeleted {
                    id: ExperienceId::from_bytes(*id),
                    collective_id: c,
                    version,
                },
                Entity::Relation => RemoteChange::RelationDeleted {
                    id: RelationId::from_bytes(*id),
                    collective_id: c,
                    version,
                },
                Entity::Insight => RemoteChange::InsightDeleted {
                    id: InsightId::from_bytes(*id),
                    collective_id: c,
                    version,
                },
            }));
        }
        if let Some((_, held)) = versions::get_held(&self.held, &entity_key(c, kind, id))? {
            return Ok(Some(held));
        }
        let Some(version) = self.version(c, kind, id)? else {
            return Ok(None);
        };
        let row = |t: &Bytes| -> Result<Option<Vec<u8>>> {
            Ok(t.get(id.as_slice())
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec()))
        };
        let missing = || {
            Error::from(StorageError::Corrupt(format!(
                "versioned {kind:?} without a row"
            )))
        };
        Ok(Some(match kind {
            Entity::Collective => RemoteChange::Collective {
                version,
                collective: codec::decode_collective(
                    &row(&self.collectives)?.ok_or_else(missing)?,
                )?,
            },
            Entity::Experience => {
                let raw = row(&self.experiences)?.ok_or_else(missing)?;
                let experience = codec::decode_experience_row(&raw, true)?;
                RemoteChange::Experience {
                    version,
                    counters: self.counters(experience.id)?,
                    experience: Box::new(experience),
                }
            }
            Entity::Relation => RemoteChange::Relation {
                version,
                collective_id: c,
                relation: codec::decode_relation(&row(&self.relations)?.ok_or_else(missing)?)?,
            },
            Entity::Insight => RemoteChange::Insight {
                version,
                insight: codec::decode_insight(&row(&self.insights)?.ok_or_else(missing)?)?,
            },
        }))
    }

    fn counters(&self, id: ExperienceId) -> Result<Vec<Counter>> {
        let prefix = id.as_bytes().as_slice();
        let mut out = Vec::new();
        for item in self
            .reinforcements
            .range::<&[u8]>(prefix..)
            .map_err(StorageError::from)?
        {
            let (k, v) = item.map_err(StorageError::from)?;
            let Some(origin) = k.value().strip_prefix(prefix) else {
                break;
            };
            out.push(Counter {
                origin: InstanceId::from_bytes(super::redb::fixed(origin, "counter origin")?),
                count: v.value(),
            });
        }
        Ok(out)
    }
}

/// The kind of entity a change-log entry names.
fn entity_of(kind: ChangeKind) -> Entity {
    match kind {
        ChangeKind::CollectiveCreated | ChangeKind::CollectiveDeleted => Entity::Collective,
        ChangeKind::ExperienceCreated
        | ChangeKind::ExperienceUpdated
        | ChangeKind::ExperienceArchived
        | ChangeKind::ExperienceDeleted => Entity::Experience,
        ChangeKind::RelationCreated | ChangeKind::RelationDeleted => Entity::Relation,
        ChangeKind::InsightCreated | ChangeKind::InsightDeleted => Entity::Insight,
    }
}

impl RedbStorage {
    /// The changes after `since` as a peer reads them: at most `limit`
    /// change-log entries, each as its entity's state now (an entity
    /// written several times comes once, at its last position).
    ///
    /// # Errors
    /// `ChangesCompacted` when entries after `since` were compacted away
    /// (the peer must copy a snapshot); a storage fault.
    pub fn replication_page(&self, since: u64, limit: usize) -> Result<ChangePage> {
        let (changes, next, head) = self.log_page(since, limit, None)?;
        Ok(ChangePage {
            protocol: PROTOCOL_VERSION,
            instance_id: self.instance_id,
            changes: changes.into_iter().map(|(_, c)| c).collect(),
            next,
            head,
        })
    }

    /// The changes of this instance's own writes after `since` (at most
    /// `limit` entries scanned), each with the sequence of its entry, and
    /// the position covering the entries scanned: what a node publishes to
    /// a cluster's stream.
    ///
    /// # Errors
    /// As [`RedbStorage::replication_page`].
    pub fn own_changes(&self, since: u64, limit: usize) -> Result<(Vec<(u64, RemoteChange)>, u64)> {
        let (changes, next, _) = self.log_page(since, limit, Some(self.instance_id))?;
        Ok((changes, next))
    }

    /// The log after `since` as changes with their sequences (only those of
    /// `origin` when given), the position reached and the head.
    fn log_page(&self, since: u64, limit: usize, origin: Option<InstanceId>) -> Result<LogPage> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        let compacted = compacted_through(&meta)?;
        // A page of no entries (a peer asking who this node is) is always
        // answered.
        if since < compacted && limit > 0 {
            return Err(Error::ChangesCompacted {
                oldest: compacted + 1,
            });
        }
        let head = match meta.get(meta_keys::SEQUENCE).map_err(StorageError::from)? {
            Some(v) => u64::from_be_bytes(super::redb::fixed(v.value(), "wal_sequence")?),
            None => 0,
        };
        let wal = txn.open_table(schema::WAL).map_err(StorageError::from)?;
        let tables = Tables::open(&txn)?;
        let mut entries: Vec<(u64, Entity, CollectiveId, [u8; 16])> = Vec::new();
        let mut last_at: HashMap<[u8; 16], usize> = HashMap::new();
        let mut next = since;
        for item in wal
            .range(since.saturating_add(1)..)
            .map_err(StorageError::from)?
            .take(limit)
        {
            let (k, v) = item.map_err(StorageError::from)?;
            next = k.value();
            let record = codec::decode_change(v.value())?;
            // Entries from before origins were logged are this instance's.
            let from = record.origin.unwrap_or(self.instance_id);
            if origin.is_some_and(|o| o != from) {
                continue;
            }
            last_at.insert(record.entity_id, entries.len());
            entries.push((
                next,
                entity_of(record.kind),
                record.collective_id,
                record.entity_id,
            ));
        }
        let mut changes = Vec::with_capacity(last_at.len());
        for (i, (seq, kind, c, id)) in entries.iter().enumerate() {
            if last_at.get(id) != Some(&i) {
                continue;
            }
            if let Some(change) = tables.current(*c, *kind, id)? {
                changes.push((*seq, change));
            }
        }
        Ok((changes, next, head))
    }

    /// The whole replicated state at one instant, change by change
    /// (collectives first, then each collective's experiences, relations
    /// and insights, held-back changes and tombstones), handed to `sink`;
    /// returns the change-log position it covers. Blocking.
    ///
    /// # Errors
    /// A storage fault, or the first error of `sink` (which stops it).
    pub fn replication_snapshot(
        &self,
        mut sink: impl FnMut(RemoteChange) -> Result<()>,
    ) -> Result<u64> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        let position = match meta.get(meta_keys::SEQUENCE).map_err(StorageError::from)? {
            Some(v) => u64::from_be_bytes(super::redb::fixed(v.value(), "wal_sequence")?),
            None => 0,
        };
        let tables = Tables::open(&txn)?;
        // Every entity with a version, held back or deleted; collectives
        // first, then experiences, relations, insights, so that a node
        // applying them in order never meets an unknown collective and
        // holds back as little as possible.
        let mut keys: Vec<[u8; 33]> =
            Vec::with_capacity(tables.versions.len().map_err(StorageError::from)? as usize);
        for item in tables.versions.iter().map_err(StorageError::from)? {
            let (k, _) = item.map_err(StorageError::from)?;
            keys.push(super::redb::fixed(k.value(), "version key")?);
        }
        for item in tables.held.iter().map_err(StorageError::from)? {
            let (k, _) = item.map_err(StorageError::from)?;
            keys.push(super::redb::fixed(k.value(), "held key")?);
        }
        for item in tables.tombstones.iter().map_err(StorageError::from)? {
            let (k, _) = item.map_err(StorageError::from)?;
            keys.push(super::redb::fixed(k.value(), "tombstone key")?);
        }
        let rank = |k: &[u8; 33]| match k[16] {
            b'c' => 0,
            b'x' => 1,
            b'r' => 2,
            _ => 3,
        };
        keys.sort_by_key(|k| rank(k));
        for k in keys {
            let c = CollectiveId::from_bytes(super::redb::fixed(&k[..16], "collective")?);
            let kind = match k[16] {
                b'c' => Entity::Collective,
                b'x' => Entity::Experience,
                b'r' => Entity::Relation,
                b'i' => Entity::Insight,
                other => {
                    return Err(StorageError::Corrupt(format!("entity kind {other}")).into());
                }
            };
            let id: [u8; 16] = super::redb::fixed(&k[17..], "entity id")?;
            if let Some(change) = tables.current(c, kind, &id)? {
                sink(change)?;
            }
        }
        Ok(position)
    }

    /// Whether a collective exists here or was deleted (a change for it is
    /// then merged or dropped; any other collective is unknown).
    ///
    /// # Errors
    /// A storage fault.
    pub fn collective_seen(&self, c: CollectiveId) -> Result<bool> {
        let txn = self.read_txn()?;
        let collectives = txn
            .open_table(schema::COLLECTIVES)
            .map_err(StorageError::from)?;
        if collectives
            .get(c.as_bytes().as_slice())
            .map_err(StorageError::from)?
            .is_some()
        {
            return Ok(true);
        }
        let tombstones = txn
            .open_table(schema::TOMBSTONES)
            .map_err(StorageError::from)?;
        Ok(tombstones
            .get(entity_key(c, Entity::Collective, c.as_bytes()).as_slice())
            .map_err(StorageError::from)?
            .is_some())
    }

    /// Where pulling from `peer` resumes (0: from the start).
    ///
    /// # Errors
    /// A storage fault.
    pub fn load_pull_cursor(&self, peer: InstanceId) -> Result<u64> {
        let txn = self.read_txn()?;
        let t = txn
            .open_table(schema::PULL_CURSORS)
            .map_err(StorageError::from)?;
        Ok(t.get(peer.as_bytes().as_slice())
            .map_err(StorageError::from)?
            .map_or(0, |v| v.value()))
    }

    /// Records that `peer` has taken this node's log up to `position`, now:
    /// compaction keeps what it has not taken yet.
    ///
    /// # Errors
    /// A storage fault.
    pub fn record_peer_pull(&self, peer: InstanceId, position: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut cursors = txn
                .open_table(schema::SYNC_CURSORS)
                .map_err(StorageError::from)?;
            cursors
                .insert(peer.as_bytes().as_slice(), position)
                .map_err(StorageError::from)?;
            let mut seen = txn
                .open_table(schema::PEER_SEEN)
                .map_err(StorageError::from)?;
            seen.insert(
                peer.as_bytes().as_slice(),
                Timestamp::now().0.to_be_bytes().as_slice(),
            )
            .map_err(StorageError::from)?;
        }
        txn.commit().map_err(StorageError::from)?;
        Ok(())
    }

    /// Stops holding compaction back for peers that have not pulled since
    /// `before`; returns them.
    ///
    /// # Errors
    /// A storage fault; nothing changes then.
    pub fn forget_silent_peers(&self, before: Timestamp) -> Result<Vec<InstanceId>> {
        let txn = self.db.begin_write()?;
        let mut silent = Vec::new();
        {
            let mut seen = txn
                .open_table(schema::PEER_SEEN)
                .map_err(StorageError::from)?;
            for item in seen.iter().map_err(StorageError::from)? {
                let (k, v) = item.map_err(StorageError::from)?;
                let at = i64::from_be_bytes(super::redb::fixed(v.value(), "peer seen")?);
                if at < before.0 {
                    silent.push(InstanceId::from_bytes(super::redb::fixed(
                        k.value(),
                        "peer id",
                    )?));
                }
            }
            let mut cursors = txn
                .open_table(schema::SYNC_CURSORS)
                .map_err(StorageError::from)?;
            for peer in &silent {
                seen.remove(peer.as_bytes().as_slice())
                    .map_err(StorageError::from)?;
                cursors
                    .remove(peer.as_bytes().as_slice())
                    .map_err(StorageError::from)?;
            }
        }
        if silent.is_empty() {
            txn.abort().map_err(StorageError::from)?;
        } else {
            txn.commit().map_err(StorageError::from)?;
        }
        Ok(silent)
    }
}
