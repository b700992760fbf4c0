//! How versions, tombstones and held-back changes are laid out in their
//! tables ([`super::schema::VERSIONS`], [`super::schema::TOMBSTONES`],
//! [`super::schema::HELD`]).
//!
//! Keys start with the collective, so everything of a deleted collective
//! goes with one range removal: `collective (16) ‖ kind (1) ‖ id (16)`.
//! A version is 28 bytes: milliseconds (u64 BE), counter (u32 BE), origin.

use ::redb::ReadableTable;

use super::redb::{corrupt, fixed};
use super::StorageError;
use crate::collective::CollectiveId;
use crate::error::{Error, Result};
use crate::id::InstanceId;
use crate::replication::{Hlc, RemoteChange, Version};

/// Which kind of entity a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Collective = b'c' as isize,
    Experience = b'x' as isize,
    Relation = b'r' as isize,
    Insight = b'i' as isize,
}

/// The key of one entity in the version, tombstone and held tables.
pub(crate) fn entity_key(c: CollectiveId, kind: Entity, id: &[u8; 16]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..16].copy_from_slice(c.as_bytes());
    k[16] = kind as u8;
    k[17..].copy_from_slice(id);
    k
}

/// The key of a held change in [`super::schema::HELD_BY_WAIT`].
pub(crate) fn wait_key(c: CollectiveId, waits_for: &[u8; 16], entity: &[u8; 33]) -> Vec<u8> {
    super::schema::key(&[c.as_bytes(), waits_for, &entity[16..]])
}

pub(crate) const VERSION_LEN: usize = 28;

pub(crate) fn encode_version(v: &Version) -> [u8; VERSION_LEN] {
    let mut b = [0u8; VERSION_LEN];
    b[..8].copy_from_slice(&v.hlc.millis.to_be_bytes());
    b[8..12].copy_from_slice(&v.hlc.counter.to_be_bytes());
    b[12..].copy_from_slice(v.origin.as_bytes());
    b
}

pub(crate) fn decode_version(b: &[u8]) -> Result<Version> {
    let b: [u8; VERSION_LEN] = fixed(b, "version")?;
    let (millis, rest) = b.split_at(8);
    let (counter, origin) = rest.split_at(4);
    Ok(Version {
        hlc: Hlc {
            millis: u64::from_be_bytes(fixed(millis, "version millis")?),
            counter: u32::from_be_bytes(fixed(counter, "version counter")?),
        },
        origin: InstanceId::from_bytes(fixed(origin, "version origin")?),
    })
}

pub(crate) fn encode_hlc(h: Hlc) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&h.millis.to_be_bytes());
    b[8..].copy_from_slice(&h.counter.to_be_bytes());
    b
}

pub(crate) fn decode_hlc(b: &[u8]) -> Result<Hlc> {
    let b: [u8; 12] = fixed(b, "hlc")?;
    let (millis, counter) = b.split_at(8);
    Ok(Hlc {
        millis: u64::from_be_bytes(fixed(millis, "hlc millis")?),
        counter: u32::from_be_bytes(fixed(counter, "hlc counter")?),
    })
}

/// The version stored under `key` in a version or tombstone table.
pub(crate) fn get_version(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Version>> {
    match table.get(key).map_err(StorageError::from)? {
        Some(v) => Ok(Some(decode_version(v.value())?)),
        None => Ok(None),
    }
}

/// A held change as stored: the id it waits for, then the change as JSON.
pub(crate) fn encode_held(waits_for: &[u8; 16], change: &RemoteChange) -> Result<Vec<u8>> {
    let mut b = waits_for.to_vec();
    serde_json::to_writer(&mut b, change)
        .map_err(|e| Error::from(StorageError::Corrupt(format!("held change: {e}"))))?;
    Ok(b)
}

pub(crate) fn decode_held(b: &[u8]) -> Result<([u8; 16], RemoteChange)> {
    if b.len() < 16 {
        return Err(corrupt("held change shorter than its key"));
    }
    let (wait, json) = b.split_at(16);
    let change = serde_json::from_slice(json)
        .map_err(|e| Error::from(StorageError::Corrupt(format!("held change: {e}"))))?;
    Ok((fixed(wait, "held wait")?, change))
}

/// The held change stored under `key`, if any.
pub(crate) fn get_held(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<([u8; 16], RemoteChange)>> {
    match table.get(key).map_err(StorageError::from)? {
        Some(v) => Ok(Some(decode_held(v.value())?)),
        None => Ok(None),
    }
}

/// Schema 4: gives every stored collective, experience, relation and insight
/// a version of this instance at its last known write time (update time for
/// collectives, creation time for the rest).
pub(crate) fn version_existing_rows(
    txn: &::redb::WriteTransaction,
    instance: InstanceId,
) -> Result<()> {
    use super::codec;
    use super::schema;
    let e = |err: ::redb::TableError| Error::from(StorageError::from(err));
    let at = |ts: crate::id::Timestamp| Version {
        hlc: Hlc {
            millis: u64::try_from(ts.0).unwrap_or(0),
            counter: 0,
        },
        origin: instance,
    };
    let mut rows: Vec<([u8; 33], Version)> = Vec::new();
    let collectives = txn.open_table(schema::COLLECTIVES).map_err(e)?;
    for item in collectives.iter().map_err(StorageError::from)? {
        let (_, v) = item.map_err(StorageError::from)?;
        let c = codec::decode_collective(v.value())?;
        rows.push((
            entity_key(c.id, Entity::Collective, c.id.as_bytes()),
            at(c.updated_at),
        ));
    }
    let experiences = txn.open_table(schema::EXPERIENCES).map_err(e)?;
    let mut collective_of = std::collections::HashMap::new();
    for item in experiences.iter().map_err(StorageError::from)? {
        let (_, v) = item.map_err(StorageError::from)?;
        let x = codec::decode_experience_row(v.value(), false)?;
        collective_of.insert(x.id, x.collective_id);
        rows.push((
            entity_key(x.collective_id, Entity::Experience, x.id.as_bytes()),
            at(x.timestamp),
        ));
    }
    let relations = txn.open_table(schema::RELATIONS).map_err(e)?;
    for item in relations.iter().map_err(StorageError::from)? {
        let (_, v) = item.map_err(StorageError::from)?;
        let r = codec::decode_relation(v.value())?;
        if let Some(c) = collective_of.get(&r.source_id) {
            rows.push((
                entity_key(*c, Entity::Relation, r.id.as_bytes()),
                at(r.created_at),
            ));
        }
    }
    let insights = txn.open_table(schema::INSIGHTS).map_err(e)?;
    for item in insights.iter().map_err(StorageError::from)? {
        let (_, v) = item.map_err(StorageError::from)?;
        let i = codec::decode_insight(v.value())?;
        rows.push((
            entity_key(i.collective_id, Entity::Insight, i.id.as_bytes()),
            at(i.created_at),
        ));
    }
    let mut versions = txn.open_table(schema::VERSIONS).map_err(e)?;
    for (k, v) in rows {
        versions
            .insert(k.as_slice(), encode_version(&v).as_slice())
            .map_err(StorageError::from)?;
    }
    Ok(())
}
