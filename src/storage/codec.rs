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

/// A stored experience; `embedding` is empty (an experience row keeps the
/// embedding after the record, see [`encode_experience_row`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum ExperienceRecord {
    /// Format 1 (schema 1 and 2): no metadata.
    V1(ExperienceV1),
    /// Format 2: metadata as compact JSON text.
    V2(StoredExperience),
}

/// Encodes like [`ExperienceRecord`] (always the newest format), from a
/// borrowed experience.
#[derive(Serialize)]
enum ExperienceRecordRef<'a> {
    #[allow(dead_code)] // keeps V2 at its index; never written
    V1(()),
    V2(WithoutEmbedding<'a>),
}

/// An experience as format 1 stored it (frozen).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExperienceV1 {
    id: crate::experience::ExperienceId,
    collective_id: crate::collective::CollectiveId,
    content: String,
    embedding: Vec<f32>,
    experience_type: crate::experience::ExperienceType,
    importance: f32,
    confidence: f32,
    applications: u32,
    domain: Vec<String>,
    tags: std::collections::BTreeMap<String, String>,
    related_files: Vec<String>,
    source_agent: String,
    source_task: Option<String>,
    timestamp: crate::id::Timestamp,
    last_reinforced: crate::id::Timestamp,
    archived: bool,
}

impl From<ExperienceV1> for Experience {
    fn from(e: ExperienceV1) -> Self {
        Experience {
            id: e.id,
            collective_id: e.collective_id,
            content: e.content,
            embedding: e.embedding,
            experience_type: e.experience_type,
            importance: e.importance,
            confidence: e.confidence,
            applications: e.applications,
            domain: e.domain,
            tags: e.tags,
            related_files: e.related_files,
            source_agent: e.source_agent,
            source_task: e.source_task,
            metadata: serde_json::Map::new(),
            timestamp: e.timestamp,
            last_reinforced: e.last_reinforced,
            archived: e.archived,
        }
    }
}

/// An experience as format 2 stores it: `metadata` is its compact JSON
/// text (postcard cannot carry JSON values, whose decoding needs a
/// self-describing format), empty for no metadata.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredExperience {
    id: crate::experience::ExperienceId,
    collective_id: crate::collective::CollectiveId,
    content: String,
    embedding: Vec<f32>,
    experience_type: crate::experience::ExperienceType,
    importance: f32,
    confidence: f32,
    applications: u32,
    domain: Vec<String>,
    tags: std::collections::BTreeMap<String, String>,
    related_files: Vec<String>,
    source_agent: String,
    source_task: Option<String>,
    metadata: String,
    timestamp: crate::id::Timestamp,
    last_reinforced: crate::id::Timestamp,
    archived: bool,
}

impl TryFrom<StoredExperience> for Experience {
    type Error = StorageError;

    fn try_from(e: StoredExperience) -> Result<Self, StorageError> {
        let metadata = if e.metadata.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_str(&e.metadata).map_err(|error| {
                StorageError::Corrupt(format!("experience {} metadata: {error}", e.id))
            })?
        };
        Ok(Experience {
            id: e.id,
            collective_id: e.collective_id,
            content: e.content,
            embedding: e.embedding,
            experience_type: e.experience_type,
            importance: e.importance,
            confidence: e.confidence,
            applications: e.applications,
            domain: e.domain,
            tags: e.tags,
            related_files: e.related_files,
            source_agent: e.source_agent,
            source_task: e.source_task,
            metadata,
            timestamp: e.timestamp,
            last_reinforced: e.last_reinforced,
            archived: e.archived,
        })
    }
}

/// The compact JSON text of `metadata`, empty for none.
fn metadata_text(m: &serde_json::Map<String, serde_json::Value>) -> String {
    if m.is_empty() {
        String::new()
    } else {
        serde_json::to_string(m).unwrap_or_default()
    }
}

/// Serialises an [`Experience`] as [`StoredExperience`] with an empty
/// embedding, and without copying it: records are written on every write
/// (and into the log when a row is rewritten), so cloning each experience
/// (1.5 KB of embedding at 384-d) to blank a field would be a large share of
/// the write path's allocations. The field order must be
/// `StoredExperience`'s; the round-trip tests below decode what this writes.
struct WithoutEmbedding<'a>(&'a Experience);

impl Serialize for WithoutEmbedding<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let mut st = serializer.serialize_struct("StoredExperience", 17)?;
        st.serialize_field("id", &e.id)?;
        st.serialize_field("collective_id", &e.collective_id)?;
        st.serialize_field("content", &e.content)?;
        st.serialize_field("embedding", &[] as &[f32])?;
        st.serialize_field("experience_type", &e.experience_type)?;
        st.serialize_field("importance", &e.importance)?;
        st.serialize_field("confidence", &e.confidence)?;
        st.serialize_field("applications", &e.applications)?;
        st.serialize_field("domain", &e.domain)?;
        st.serialize_field("tags", &e.tags)?;
        st.serialize_field("related_files", &e.related_files)?;
        st.serialize_field("source_agent", &e.source_agent)?;
        st.serialize_field("source_task", &e.source_task)?;
        st.serialize_field("metadata", &metadata_text(&e.metadata))?;
        st.serialize_field("timestamp", &e.timestamp)?;
        st.serialize_field("last_reinforced", &e.last_reinforced)?;
        st.serialize_field("archived", &e.archived)?;
        st.end()
    }
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
    /// Format 1: experiences of format 1.
    V1(ChangeRecordV1),
    /// Format 2: experiences of format 2.
    V2(ChangeRecordV2),
    /// Format 3: format 2 with the change's origin.
    V3(ChangeRecordV3),
    /// Format 4: format 3 whose experience may be a reference to its row.
    V4(ChangeRecordV4),
}

/// Encodes like [`ChangeEnvelope`] (the newest format), from borrowed parts.
#[derive(Serialize)]
enum ChangeEnvelopeRef<'a> {
    #[allow(dead_code)] // keeps V3 at its index; never written
    V1(()),
    #[allow(dead_code)]
    V2(()),
    #[allow(dead_code)]
    V3(()),
    V4(ChangeRecordRef<'a>),
}

/// A change-log entry of format 1 (frozen).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeRecordV1 {
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    experience: Option<ExperienceV1>,
}

/// A change-log entry of format 2.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeRecordV2 {
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    experience: Option<StoredExperience>,
}

/// A change-log entry of format 3.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeRecordV3 {
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    origin: crate::id::InstanceId,
    experience: Option<StoredExperience>,
}

/// A change-log entry of format 4.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeRecordV4 {
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    origin: crate::id::InstanceId,
    experience: LoggedV4,
}

/// What an entry of format 4 holds of its experience.
#[derive(Debug, Serialize, Deserialize)]
pub enum LoggedV4 {
    /// Nothing: not an experience change, or a delete.
    Nothing,
    /// The record after the write.
    Copy(Box<StoredExperience>),
    /// The record after the write is the experience's row as it is now.
    CurrentRow,
}

/// What a change-log entry being written holds of its experience.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Logged<'a> {
    /// Nothing: not an experience change, or a delete.
    Nothing,
    /// A copy of the record after the write (stored without its embedding).
    Copy(&'a Experience),
    /// A reference to the experience's row, which the write left as the
    /// record after it: whoever rewrites or removes the row first turns the
    /// reference into a copy.
    CurrentRow,
}

/// [`LoggedV4`], the copy borrowed.
#[derive(Serialize)]
enum LoggedRef<'a> {
    Nothing,
    Copy(WithoutEmbedding<'a>),
    CurrentRow,
}

/// [`ChangeRecordV4`]'s fields in its order, the experience borrowed.
#[derive(Serialize)]
struct ChangeRecordRef<'a> {
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    origin: crate::id::InstanceId,
    experience: LoggedRef<'a>,
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
    encode(&ExperienceRecordRef::V2(WithoutEmbedding(e)))
}

/// Decodes an experience; its `embedding` is empty.
pub(crate) fn decode_experience(bytes: &[u8]) -> Result<Experience, StorageError> {
    match decode(bytes)? {
        ExperienceRecord::V1(e) => Ok(e.into()),
        ExperienceRecord::V2(e) => e.try_into(),
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

/// Encodes a change-log entry; an experience in it is stored as a copy,
/// without its embedding.
#[cfg(test)]
pub(crate) fn encode_change(c: &ChangeRecord) -> Result<Vec<u8>, StorageError> {
    encode_change_parts(
        c.kind,
        c.collective_id,
        c.entity_id,
        c.timestamp,
        c.origin
            .unwrap_or_else(|| crate::id::InstanceId::from_bytes([0; 16])),
        c.experience.as_ref().map_or(Logged::Nothing, Logged::Copy),
    )
}

/// [`encode_change`] from its parts, the experience borrowed.
pub(crate) fn encode_change_parts(
    kind: super::ChangeKind,
    collective_id: crate::collective::CollectiveId,
    entity_id: [u8; 16],
    timestamp: crate::id::Timestamp,
    origin: crate::id::InstanceId,
    experience: Logged<'_>,
) -> Result<Vec<u8>, StorageError> {
    let experience = match experience {
        Logged::Nothing => LoggedRef::Nothing,
        Logged::Copy(e) => LoggedRef::Copy(WithoutEmbedding(e)),
        Logged::CurrentRow => LoggedRef::CurrentRow,
    };
    encode(&ChangeEnvelopeRef::V4(ChangeRecordRef {
        kind,
        collective_id,
        entity_id,
        timestamp,
        origin,
        experience,
    }))
}

/// Decodes a change-log entry. An entry that refers to its experience's
/// row (see [`Logged::CurrentRow`]) decodes with no experience: readers
/// that return the record use [`decode_change_entry`].
pub(crate) fn decode_change(bytes: &[u8]) -> Result<ChangeRecord, StorageError> {
    decode_change_entry(bytes).map(|(change, _)| change)
}

/// Decodes a change-log entry, and whether its record is the experience's
/// row as it is now (the entry then holds no copy).
pub(crate) fn decode_change_entry(bytes: &[u8]) -> Result<(ChangeRecord, bool), StorageError> {
    let decoded = match decode(bytes)? {
        ChangeEnvelope::V1(c) => ChangeRecord {
            kind: c.kind,
            collective_id: c.collective_id,
            entity_id: c.entity_id,
            timestamp: c.timestamp,
            origin: None,
            experience: c.experience.map(Into::into),
        },
        ChangeEnvelope::V2(c) => ChangeRecord {
            kind: c.kind,
            collective_id: c.collective_id,
            entity_id: c.entity_id,
            timestamp: c.timestamp,
            origin: None,
            experience: c.experience.map(TryInto::try_into).transpose()?,
        },
        ChangeEnvelope::V3(c) => ChangeRecord {
            kind: c.kind,
            collective_id: c.collective_id,
            entity_id: c.entity_id,
            timestamp: c.timestamp,
            origin: Some(c.origin),
            experience: c.experience.map(TryInto::try_into).transpose()?,
        },
        ChangeEnvelope::V4(c) => {
            let (experience, refers) = match c.experience {
                LoggedV4::Nothing => (None, false),
                LoggedV4::Copy(e) => (Some((*e).try_into()?), false),
                LoggedV4::CurrentRow => (None, true),
            };
            return Ok((
                ChangeRecord {
                    kind: c.kind,
                    collective_id: c.collective_id,
                    entity_id: c.entity_id,
                    timestamp: c.timestamp,
                    origin: Some(c.origin),
                    experience,
                },
                refers,
            ));
        }
    };
    Ok((decoded, false))
}

/// An experience row of the `experiences` table: the record's length (`u32`
/// little-endian), the record without its embedding (as
/// [`encode_experience`]), then the embedding as little-endian `f32`s. One
/// row keeps a record and its vector on the same page: a 384-d experience
/// fills about half of a 4 KiB leaf, where a separate 1.5 KB embedding row
/// and a 0.3 KB record row took a page and a fraction of another.
pub(crate) fn encode_experience_row(e: &Experience) -> Result<Vec<u8>, StorageError> {
    let record = encode_experience(e)?;
    let len = u32::try_from(record.len())
        .map_err(|_| StorageError::Corrupt("experience record over 4 GiB".into()))?;
    let mut row = Vec::with_capacity(4 + record.len() + 4 * e.embedding.len());
    row.extend_from_slice(&len.to_le_bytes());
    row.extend_from_slice(&record);
    for x in &e.embedding {
        row.extend_from_slice(&x.to_le_bytes());
    }
    Ok(row)
}

/// The record and embedding parts of an experience row.
fn split_row(row: &[u8]) -> Result<(&[u8], &[u8]), StorageError> {
    let corrupt = || StorageError::Corrupt(format!("experience row of {} bytes", row.len()));
    let len: [u8; 4] = row
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let end = (u32::from_le_bytes(len) as usize)
        .checked_add(4)
        .filter(|end| *end <= row.len())
        .ok_or_else(corrupt)?;
    Ok((&row[4..end], &row[end..]))
}

/// Decodes an experience row; the embedding only when asked (it is left
/// empty otherwise).
pub(crate) fn decode_experience_row(
    row: &[u8],
    with_embedding: bool,
) -> Result<Experience, StorageError> {
    let (record, embedding) = split_row(row)?;
    let mut e = decode_experience(record)?;
    if with_embedding {
        e.embedding = decode_embedding(embedding)?;
    }
    Ok(e)
}

/// The embedding of an experience row.
pub(crate) fn row_embedding(row: &[u8]) -> Result<Vec<f32>, StorageError> {
    decode_embedding(split_row(row)?.1)
}

/// The embedding of an experience row as stored: little-endian `f32`s.
pub(crate) fn row_embedding_bytes(row: &[u8]) -> Result<&[u8], StorageError> {
    whole_floats(split_row(row)?.1)
}

fn whole_floats(bytes: &[u8]) -> Result<&[u8], StorageError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StorageError::Corrupt(format!(
            "embedding of {} bytes is not a whole number of f32",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn decode_embedding(bytes: &[u8]) -> Result<Vec<f32>, StorageError> {
    Ok(whole_floats(bytes)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::collection::{btree_map, vec};
    use proptest::option;
    use proptest::prelude::*;

    use super::*;
    use crate::collective::CollectiveId;
    use crate::experience::{ExperienceId, ExperienceType, Severity};
    use crate::id::Timestamp;
    use crate::insight::{InsightId, InsightType};
    use crate::relation::{RelationId, RelationType};
    use crate::storage::ChangeKind;

    fn text() -> impl Strategy<Value = String> {
        ".{0,12}"
    }

    /// Finite floats, so records compare equal with `==`.
    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![Just(0.0f32), Just(1.0f32), -1.0e6f32..1.0e6f32]
    }

    fn ts() -> impl Strategy<Value = Timestamp> {
        any::<i64>().prop_map(Timestamp)
    }

    fn cid() -> impl Strategy<Value = CollectiveId> {
        any::<[u8; 16]>().prop_map(CollectiveId::from_bytes)
    }

    fn eid() -> impl Strategy<Value = ExperienceId> {
        any::<[u8; 16]>().prop_map(ExperienceId::from_bytes)
    }

    fn experience_type() -> impl Strategy<Value = ExperienceType> {
        let severity = prop_oneof![
            Just(Severity::Low),
            Just(Severity::Medium),
            Just(Severity::High),
            Just(Severity::Critical)
        ];
        prop_oneof![
            (text(), severity).prop_map(|(description, severity)| ExperienceType::Difficulty {
                description,
                severity
            }),
            (option::of(eid()), text(), any::<bool>()).prop_map(
                |(problem_ref, approach, worked)| {
                    ExperienceType::Solution {
                        problem_ref,
                        approach,
                        worked,
                    }
                }
            ),
            (text(), text(), text()).prop_map(|(signature, fix, prevention)| {
                ExperienceType::ErrorPattern {
                    signature,
                    fix,
                    prevention,
                }
            }),
            (text(), text(), float()).prop_map(|(task_type, approach, quality)| {
                ExperienceType::SuccessPattern {
                    task_type,
                    approach,
                    quality,
                }
            }),
            (text(), text(), float()).prop_map(|(category, preference, strength)| {
                ExperienceType::UserPreference {
                    category,
                    preference,
                    strength,
                }
            }),
            (text(), text()).prop_map(|(decision, rationale)| {
                ExperienceType::ArchitecturalDecision {
                    decision,
                    rationale,
                }
            }),
            (text(), text()).prop_map(|(technology, insight)| ExperienceType::TechInsight {
                technology,
                insight
            }),
            (text(), text())
                .prop_map(|(statement, source)| ExperienceType::Fact { statement, source }),
            option::of(text()).prop_map(|category| ExperienceType::Generic { category }),
        ]
    }

    fn experience() -> impl Strategy<Value = Experience> {
        (
            (eid(), cid(), text(), vec(float(), 0..8), experience_type()),
            (float(), float(), any::<u32>(), vec(text(), 0..4)),
            (
                btree_map(text(), text(), 0..4),
                vec(text(), 0..4),
                text(),
                option::of(text()),
            ),
            (ts(), ts(), any::<bool>(), metadata()),
        )
            .prop_map(
                |(
                    (id, collective_id, content, embedding, experience_type),
                    (importance, confidence, applications, domain),
                    (tags, related_files, source_agent, source_task),
                    (timestamp, last_reinforced, archived, metadata),
                )| Experience {
                    id,
                    collective_id,
                    content,
                    embedding,
                    experience_type,
                    importance,
                    confidence,
                    applications,
                    domain,
                    tags,
                    related_files,
                    source_agent,
                    source_task,
                    metadata,
                    timestamp,
                    last_reinforced,
                    archived,
                },
            )
    }

    fn metadata() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
        use serde_json::Value;
        let value = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            text().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ];
        vec(("[a-z]{1,4}", value), 0..4).prop_map(|pairs| pairs.into_iter().collect())
    }

    fn collective() -> impl Strategy<Value = Collective> {
        (cid(), text(), option::of(text()), any::<u16>(), ts(), ts()).prop_map(
            |(id, name, owner_id, embedding_dimension, created_at, updated_at)| Collective {
                id,
                name,
                owner_id,
                embedding_dimension,
                created_at,
                updated_at,
            },
        )
    }

    fn relation() -> impl Strategy<Value = ExperienceRelation> {
        let kind = prop_oneof![
            Just(RelationType::Supports),
            Just(RelationType::Contradicts),
            Just(RelationType::Elaborates),
            Just(RelationType::Supersedes),
            Just(RelationType::Implies),
            Just(RelationType::RelatedTo)
        ];
        (
            any::<[u8; 16]>(),
            eid(),
            eid(),
            kind,
            float(),
            option::of(text()),
            ts(),
        )
            .prop_map(
                |(id, source_id, target_id, relation_type, strength, metadata, created_at)| {
                    ExperienceRelation {
                        id: RelationId::from_bytes(id),
                        source_id,
                        target_id,
                        relation_type,
                        strength,
                        metadata,
                        created_at,
                    }
                },
            )
    }

    fn insight() -> impl Strategy<Value = DerivedInsight> {
        let kind = prop_oneof![
            Just(InsightType::Pattern),
            Just(InsightType::Synthesis),
            Just(InsightType::Abstraction),
            Just(InsightType::Correlation)
        ];
        (
            (any::<[u8; 16]>(), cid(), text(), vec(float(), 0..8)),
            (
                vec(eid(), 0..4),
                kind,
                float(),
                vec(text(), 0..3),
                ts(),
                ts(),
            ),
        )
            .prop_map(
                |(
                    (id, collective_id, content, embedding),
                    (
                        source_experience_ids,
                        insight_type,
                        confidence,
                        domain,
                        created_at,
                        updated_at,
                    ),
                )| DerivedInsight {
                    id: InsightId::from_bytes(id),
                    collective_id,
                    content,
                    embedding,
                    source_experience_ids,
                    insight_type,
                    confidence,
                    domain,
                    created_at,
                    updated_at,
                },
            )
    }

    fn activity() -> impl Strategy<Value = Activity> {
        (
            text(),
            cid(),
            option::of(text()),
            option::of(text()),
            ts(),
            ts(),
        )
            .prop_map(
                |(
                    agent_id,
                    collective_id,
                    current_task,
                    context_summary,
                    started_at,
                    last_heartbeat,
                )| {
                    Activity {
                        agent_id,
                        collective_id,
                        current_task,
                        context_summary,
                        started_at,
                        last_heartbeat,
                    }
                },
            )
    }

    fn change() -> impl Strategy<Value = ChangeRecord> {
        let kind = prop_oneof![
            Just(ChangeKind::CollectiveCreated),
            Just(ChangeKind::CollectiveDeleted),
            Just(ChangeKind::ExperienceCreated),
            Just(ChangeKind::ExperienceUpdated),
            Just(ChangeKind::ExperienceArchived),
            Just(ChangeKind::ExperienceDeleted),
            Just(ChangeKind::RelationCreated),
            Just(ChangeKind::RelationDeleted),
            Just(ChangeKind::InsightCreated),
            Just(ChangeKind::InsightDeleted)
        ];
        (
            kind,
            cid(),
            any::<[u8; 16]>(),
            ts(),
            any::<[u8; 16]>(),
            option::of(experience()),
        )
            .prop_map(
                |(kind, collective_id, entity_id, timestamp, origin, experience)| ChangeRecord {
                    kind,
                    collective_id,
                    entity_id,
                    timestamp,
                    origin: Some(crate::id::InstanceId::from_bytes(origin)),
                    experience,
                },
            )
    }

    /// Every strict prefix of a valid encoding is an error.
    fn truncations_fail<T>(bytes: &[u8], decode: fn(&[u8]) -> Result<T, StorageError>) {
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn collective_round_trips(c in collective()) {
            let bytes = encode_collective(&c).unwrap();
            prop_assert_eq!(decode_collective(&bytes).unwrap(), c);
            truncations_fail(&bytes, decode_collective);
        }

        #[test]
        fn experience_round_trips_without_embedding(e in experience()) {
            let bytes = encode_experience(&e).unwrap();
            let back = decode_experience(&bytes).unwrap();
            prop_assert!(back.embedding.is_empty());
            prop_assert_eq!(back, Experience { embedding: Vec::new(), ..e });
            truncations_fail(&bytes, decode_experience);
        }

        #[test]
        fn relation_round_trips(r in relation()) {
            let bytes = encode_relation(&r).unwrap();
            prop_assert_eq!(decode_relation(&bytes).unwrap(), r);
            truncations_fail(&bytes, decode_relation);
        }

        #[test]
        fn insight_round_trips(i in insight()) {
            let bytes = encode_insight(&i).unwrap();
            prop_assert_eq!(decode_insight(&bytes).unwrap(), i);
            truncations_fail(&bytes, decode_insight);
        }

        #[test]
        fn activity_round_trips(a in activity()) {
            let bytes = encode_activity(&a).unwrap();
            prop_assert_eq!(decode_activity(&bytes).unwrap(), a);
            truncations_fail(&bytes, decode_activity);
        }

        #[test]
        fn change_round_trips(c in change()) {
            let bytes = encode_change(&c).unwrap();
            let stored = ChangeRecord {
                experience: c.experience.clone().map(|e| Experience { embedding: Vec::new(), ..e }),
                ..c
            };
            prop_assert_eq!(decode_change(&bytes).unwrap(), stored);
            truncations_fail(&bytes, decode_change);
        }

        #[test]
        fn experience_row_round_trips_bit_exact(e in experience(), v in vec(any::<f32>(), 0..64)) {
            let e = Experience { embedding: v, ..e };
            let row = encode_experience_row(&e).unwrap();
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let back = decode_experience_row(&row, true).unwrap();
            prop_assert_eq!(bits(&back.embedding), bits(&e.embedding));
            prop_assert_eq!(bits(&row_embedding(&row).unwrap()), bits(&e.embedding));
            let without = decode_experience_row(&row, false).unwrap();
            prop_assert!(without.embedding.is_empty());
            prop_assert_eq!(without.id, e.id);
            prop_assert_eq!(&without.content, &e.content);
            // Cut inside the length or the record: refused.
            let record_end = 4 + encode_experience(&e).unwrap().len();
            for n in 0..record_end {
                prop_assert!(decode_experience_row(&row[..n], false).is_err());
            }
        }

        /// Arbitrary bytes never panic a decoder; whatever decodes is a
        /// record that encodes back to a decodable equal value.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            if let Ok(c) = decode_collective(&bytes) {
                prop_assert_eq!(decode_collective(&encode_collective(&c).unwrap()).unwrap(), c);
            }
            if let Ok(e) = decode_experience(&bytes) {
                let again = decode_experience(&encode_experience(&e).unwrap()).unwrap();
                prop_assert_eq!(again.id, e.id);
            }
            let _ = decode_experience_row(&bytes, true);
            let _ = row_embedding(&bytes);
            let _ = decode_relation(&bytes);
            let _ = decode_insight(&bytes);
            if let Ok(a) = decode_activity(&bytes) {
                prop_assert_eq!(decode_activity(&encode_activity(&a).unwrap()).unwrap(), a);
            }
            let _ = decode_change(&bytes);
            match decode_embedding(&bytes) {
                Ok(v) => prop_assert_eq!(v.len() * 4, bytes.len()),
                Err(_) => prop_assert!(bytes.len() % 4 != 0),
            }
        }

        /// A record behind an unknown format version is an error.
        #[test]
        fn unknown_format_versions_fail(c in collective(), version in 1u8..=127) {
            let mut bytes = encode_collective(&c).unwrap();
            prop_assert_eq!(bytes[0], 0, "V1 is variant 0");
            bytes[0] = version;
            prop_assert!(decode_collective(&bytes).is_err());
            prop_assert!(decode_experience(&bytes).is_err());
            prop_assert!(decode_relation(&bytes).is_err());
            prop_assert!(decode_insight(&bytes).is_err());
            prop_assert!(decode_activity(&bytes).is_err());
            prop_assert!(decode_change(&bytes).is_err());
        }
    }

    #[test]
    fn empty_input_fails_every_decoder() {
        assert!(decode_collective(&[]).is_err());
        assert!(decode_experience(&[]).is_err());
        assert!(decode_relation(&[]).is_err());
        assert!(decode_insight(&[]).is_err());
        assert!(decode_activity(&[]).is_err());
        assert!(decode_change(&[]).is_err());
        assert_eq!(decode_embedding(&[]).unwrap(), Vec::<f32>::new());
        assert!(matches!(
            decode_embedding(&[1, 2, 3]),
            Err(StorageError::Corrupt(_))
        ));
    }
}
