//! Stored record encoding: postcard behind a per-record format version.
//!
//! postcard cannot skip unknown fields, so each record type is an enum whose
//! variant is its format version. A schema change adds a variant (the old
//! struct frozen here) and a migration; decoding dispatches on the variant.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StorageError;
use crate::activity::Activity;
use crate::collective::Collective;
use crate::experience::Experience;
use crate::insight::DerivedInsight;
use crate::relation::ExperienceRelation;

use super::ChangeRecord;

/// A stored collective.
#[derive(Debug, Serialize, Deserialize)]
pub enum CollectiveRecord {
    /// Format 1.
    V1(Collective),
}

/// A stored experience; `embedding` is empty (embeddings have their own table).
#[derive(Debug, Serialize, Deserialize)]
pub enum ExperienceRecord {
    /// Format 1.
    V1(Experience),
}

/// A stored relation.
#[derive(Debug, Serialize, Deserialize)]
pub enum RelationRecord {
    /// Format 1.
    V1(ExperienceRelation),
}

/// A stored insight, embedding included.
#[derive(Debug, Serialize, Deserialize)]
pub enum InsightRecord {
    /// Format 1.
    V1(DerivedInsight),
}

/// A stored activity.
#[derive(Debug, Serialize, Deserialize)]
pub enum ActivityRecord {
    /// Format 1.
    V1(Activity),
}

/// A stored change-log entry.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChangeEnvelope {
    /// Format 1.
    V1(ChangeRecord),
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|source| StorageError::Codec {
        what: std::any::type_name::<T>(),
        source,
    })
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|source| StorageError::Codec {
        what: std::any::type_name::<T>(),
        source,
    })
}

pub(crate) fn encode_collective(c: &Collective) -> Result<Vec<u8>, StorageError> {
    encode(&CollectiveRecord::V1(c.clone()))
}

pub(crate) fn decode_collective(bytes: &[u8]) -> Result<Collective, StorageError> {
    match decode(bytes)? {
        CollectiveRecord::V1(c) => Ok(c),
    }
}

/// Encodes an experience without its embedding.
pub(crate) fn encode_experience(e: &Experience) -> Result<Vec<u8>, StorageError> {
    let stored = Experience {
        embedding: Vec::new(),
        ..e.clone()
    };
    encode(&ExperienceRecord::V1(stored))
}

/// Decodes an experience; its `embedding` is empty.
pub(crate) fn decode_experience(bytes: &[u8]) -> Result<Experience, StorageError> {
    match decode(bytes)? {
        ExperienceRecord::V1(e) => Ok(e),
    }
}

pub(crate) fn encode_relation(r: &ExperienceRelation) -> Result<Vec<u8>, StorageError> {
    encode(&RelationRecord::V1(r.clone()))
}

pub(crate) fn decode_relation(bytes: &[u8]) -> Result<ExperienceRelation, StorageError> {
    match decode(bytes)? {
        RelationRecord::V1(r) => Ok(r),
    }
}

pub(crate) fn encode_insight(i: &DerivedInsight) -> Result<Vec<u8>, StorageError> {
    encode(&InsightRecord::V1(i.clone()))
}

pub(crate) fn decode_insight(bytes: &[u8]) -> Result<DerivedInsight, StorageError> {
    match decode(bytes)? {
        InsightRecord::V1(i) => Ok(i),
    }
}

pub(crate) fn encode_activity(a: &Activity) -> Result<Vec<u8>, StorageError> {
    encode(&ActivityRecord::V1(a.clone()))
}

pub(crate) fn decode_activity(bytes: &[u8]) -> Result<Activity, StorageError> {
    match decode(bytes)? {
        ActivityRecord::V1(a) => Ok(a),
    }
}

pub(crate) fn encode_change(c: &ChangeRecord) -> Result<Vec<u8>, StorageError> {
    encode(&ChangeEnvelope::V1(c.clone()))
}

pub(crate) fn decode_change(bytes: &[u8]) -> Result<ChangeRecord, StorageError> {
    match decode(bytes)? {
        ChangeEnvelope::V1(c) => Ok(c),
    }
}

/// An embedding as little-endian `f32`s.
pub(crate) fn encode_embedding(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn decode_embedding(bytes: &[u8]) -> Result<Vec<f32>, StorageError> {
    if bytes.len() % 4 != 0 {
        return Err(StorageError::Corrupt(format!(
            "embedding of {} bytes is not a whole number of f32",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
