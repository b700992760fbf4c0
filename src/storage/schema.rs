//! Every redb table of a PulseDB file, with its key and value layout.
//!
//! Conventions: ids are their 16 UUID bytes (UUIDv7 ids start with a
//! big-endian millisecond timestamp, so id order is creation order);
//! integers in keys are big-endian so byte order is numeric order; values are
//! postcard records (see `storage/codec.rs`), each behind a format-version tag.
//! `()` values mark pure index entries.

use redb::TableDefinition;

/// Current on-disk schema version.
///
/// | version | change |
/// |---|---|
/// | 1 | first |
/// | 2 | the type, tag and archived experience indexes, which nothing read, are gone ([`RETIRED_IN_V2`]) |
/// | 3 | experiences carry `metadata`: records of format 2 (experiences and change-log entries); format-1 records stay and read as empty metadata, so nothing is rewritten, but a schema-2 engine cannot read the new records |
/// | 4 | replication: every collective, experience, relation and insight has a version ([`VERSIONS`]; migrated rows get their creation or update time and this instance), deletes leave [`TOMBSTONES`], change-log entries of format 3 carry their origin |
/// | 5 | change-log entries of format 4: an experience's entry refers to its row until the row is next written, and holds a copy only from then on ([`LOGGED_AT`] finds the entry); older entries keep their copies |
pub const SCHEMA_VERSION: u32 = 5;

/// `name → bytes`: schema version (u32 BE), dimension (u32 BE), instance id
/// (16 bytes), created-at (i64 BE), last-opened-at (i64 BE), embedder model
/// (UTF-8), last change-log sequence (u64 BE).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Keys of [`META`].
pub mod meta_keys {
    /// Schema version, u32 BE.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// Embedding dimension, u32 BE.
    pub const DIMENSION: &str = "embedding_dimension";
    /// Instance id, 16 bytes.
    pub const INSTANCE_ID: &str = "instance_id";
    /// Creation time, i64 BE.
    pub const CREATED_AT: &str = "created_at";
    /// Last open time, i64 BE.
    pub const LAST_OPENED_AT: &str = "last_opened_at";
    /// Embedder model id, UTF-8.
    pub const EMBEDDER_MODEL: &str = "embedder_model";
    /// Last assigned change-log sequence, u64 BE (0: none yet).
    pub const SEQUENCE: &str = "wal_sequence";
    /// Every change-log entry up to this sequence was compacted away, u64
    /// BE (absent: none).
    pub const COMPACTED_THROUGH: &str = "wal_compacted_through";
    /// The hybrid clock's last reading: milliseconds (u64 BE), counter
    /// (u32 BE). Absent: none yet.
    pub const HLC: &str = "hlc";
}

/// `collective id (16) → CollectiveRecord`.
pub const COLLECTIVES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("collectives");

/// `experience id (16) → row`: the `ExperienceRecord`'s length (`u32`
/// little-endian), the record without its embedding, then the embedding
/// (`dimension × f32` little-endian). See `codec::encode_experience_row`.
pub const EXPERIENCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("experiences");

/// `collective id (16) ‖ experience id (16) → ()`: a collective's experiences
/// in creation order.
pub const EXP_BY_COLLECTIVE: TableDefinition<&[u8], ()> =
    TableDefinition::new("experiences_by_collective");

/// Tables of schema 1 that nothing read (experience ids by type, by tag
/// pair, archived); opening a schema-1 file for writing deletes them.
pub const RETIRED_IN_V2: [TableDefinition<&[u8], ()>; 3] = [
    TableDefinition::new("experiences_by_type"),
    TableDefinition::new("experiences_by_tag"),
    TableDefinition::new("experiences_archived"),
];

/// `experience id (16) ‖ instance id (16) → u32`: reinforcements per instance.
pub const REINFORCEMENTS: TableDefinition<&[u8], u32> = TableDefinition::new("reinforcements");

/// `relation id (16) → RelationRecord`.
pub const RELATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("relations");

/// `source experience id (16) ‖ relation id (16) → ()`.
pub const REL_BY_SOURCE: TableDefinition<&[u8], ()> = TableDefinition::new("relations_by_source");

/// `target experience id (16) ‖ relation id (16) → ()`.
pub const REL_BY_TARGET: TableDefinition<&[u8], ()> = TableDefinition::new("relations_by_target");

/// `collective id (16) ‖ relation id (16) → ()`.
pub const REL_BY_COLLECTIVE: TableDefinition<&[u8], ()> =
    TableDefinition::new("relations_by_collective");

/// `source id (16) ‖ target id (16) ‖ relation type code (1) → relation id (16)`.
pub const REL_UNIQUE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("relations_unique");

/// `insight id (16) → InsightRecord` (embedding included).
pub const INSIGHTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("insights");

/// `collective id (16) ‖ insight id (16) → ()`.
pub const INSIGHTS_BY_COLLECTIVE: TableDefinition<&[u8], ()> =
    TableDefinition::new("insights_by_collective");

/// `collective id (16) ‖ agent id (UTF-8) → ActivityRecord`.
pub const ACTIVITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("activities");

/// `sequence (u64) → ChangeRecord`: the change log.
pub const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("change_log");

/// `experience id (16) → sequence (u64)`: the change-log entry that refers
/// to the experience's row instead of holding a copy of it (the last write
/// of a live experience, unless compacted). Whatever rewrites or removes the
/// row first gives that entry a copy and drops the key. A migration that
/// rewrites experience rows must do the same.
pub const LOGGED_AT: TableDefinition<&[u8], u64> = TableDefinition::new("experience_logged_at");

/// `peer instance id (16) → last sequence the peer has taken (u64)`.
pub const SYNC_CURSORS: TableDefinition<&[u8], u64> = TableDefinition::new("sync_cursors");

/// `peer instance id (16) → when the peer last pulled (i64 BE ms)`: a peer
/// silent past `peer_retention` stops holding compaction back.
pub const PEER_SEEN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peer_seen");

/// `peer instance id (16) → last sequence of the peer's log applied here`:
/// where pulling from that peer resumes.
pub const PULL_CURSORS: TableDefinition<&[u8], u64> = TableDefinition::new("pull_cursors");

/// `collective id (16) ‖ entity kind (1) ‖ entity id (16) → version (28)`:
/// the version of every live replicated row (see `storage/versions.rs`).
pub const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");

/// Same key → the delete's version (28): deleted ids stay deleted.
pub const TOMBSTONES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tombstones");

/// Same key → waited-for id (16) ‖ the change as JSON: a remote relation
/// or insight held back until what it references arrives (or a relation
/// shadowed by a duplicate with a smaller id).
pub const HELD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("held_back");

/// `collective id (16) ‖ waited-for id (16) ‖ entity kind (1) ‖ entity id
/// (16)`: the held changes waiting for one id.
pub const HELD_BY_WAIT: TableDefinition<&[u8], ()> = TableDefinition::new("held_back_by_wait");

/// Concatenates key parts.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The trailing 16-byte id of an index key.
pub fn trailing_id(key: &[u8]) -> Option<[u8; 16]> {
    let start = key.len().checked_sub(16)?;
    key[start..].try_into().ok()
}
