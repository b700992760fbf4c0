//! [`RedbStorage`]: opening a file and its metadata. Reads live in
//! `read.rs`, the batch write path in `apply.rs`.

use std::sync::atomic::{AtomicBool, Ordering};

use ::redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::schema::{self, meta_keys, SCHEMA_VERSION};
use super::{Location, StorageError};
use crate::config::Durability;
use crate::error::{Error, Result, ValidationError};
use crate::id::{InstanceId, Timestamp};
use crate::metadata::DatabaseMetadata;

/// How to open a [`RedbStorage`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// File or memory.
    pub location: Location,
    /// Embedding dimension; must match the stored one.
    pub dimension: usize,
    /// Commit durability.
    pub durability: Durability,
    /// Do not write (not even `last_opened_at`).
    pub read_only: bool,
    /// Model id of the embedder, if the handle has one.
    pub embedder_model: Option<String>,
    /// redb's page cache, in bytes (`None`: redb's default).
    pub cache_size: Option<usize>,
}

/// The redb database: writable, or opened with redb's `ReadOnlyDatabase`
/// for a read-only session, which cannot write a byte.
pub(super) enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Db {
    pub(super) fn begin_read(&self) -> std::result::Result<::redb::ReadTransaction, StorageError> {
        Ok(match self {
            Db::Writable(db) => db.begin_read()?,
            Db::ReadOnly(db) => db.begin_read()?,
        })
    }

    /// A write transaction; [`StorageError::ReadOnly`] for a read-only
    /// database.
    pub(super) fn begin_write(
        &self,
    ) -> std::result::Result<::redb::WriteTransaction, StorageError> {
        match self {
            Db::Writable(db) => Ok(db.begin_write()?),
            Db::ReadOnly(_) => Err(StorageError::ReadOnly),
        }
    }
}

/// The redb implementation of [`super::StorageRead`] and [`super::StorageWrite`].
pub struct RedbStorage {
    pub(super) db: Db,
    pub(super) metadata: DatabaseMetadata,
    pub(super) instance_id: InstanceId,
    pub(super) durability: Durability,
    /// Set when a non-durable commit has not been followed by a durable one.
    pub(super) dirty: AtomicBool,
    /// Group commits and their sizes.
    pub(super) commits: CommitCounters,
}

/// Upper bounds of the commit-size buckets (writes per group commit).
pub const COMMIT_SIZE_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// Group commits counted as they finish (successful or not).
#[derive(Debug, Default)]
pub(crate) struct CommitCounters {
    commits: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    /// Per bucket of [`COMMIT_SIZE_BUCKETS`] (not cumulative), then the rest.
    sizes: [std::sync::atomic::AtomicU64; COMMIT_SIZE_BUCKETS.len() + 1],
}

impl CommitCounters {
    /// Counts one group commit of `writes` writes.
    pub(crate) fn observe(&self, writes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let writes = writes as u64;
        self.commits.fetch_add(1, Relaxed);
        self.writes.fetch_add(writes, Relaxed);
        let bucket = COMMIT_SIZE_BUCKETS
            .iter()
            .position(|bound| writes <= *bound)
            .unwrap_or(COMMIT_SIZE_BUCKETS.len());
        self.sizes[bucket].fetch_add(1, Relaxed);
    }

    /// Commits, writes, and commits per size bucket (the last: larger).
    pub(crate) fn read(&self) -> (u64, u64, Vec<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commits.load(Relaxed),
            self.writes.load(Relaxed),
            self.sizes.iter().map(|n| n.load(Relaxed)).collect(),
        )
    }
}

impl std::fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStorage")
            .field("metadata", &self.metadata)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl RedbStorage {
    /// Opens (creating when missing) a database.
    ///
    /// # Errors
    /// `DatabaseLocked` when the file is open elsewhere,
    /// `Validation(DimensionMismatch)` for another dimension,
    /// `SchemaTooNew`, `EmbedderMismatch`, or a storage fault.
    pub fn open(options: &OpenOptions) -> Result<RedbStorage> {
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_size {
            builder.set_cache_size(bytes);
        }
        if let (true, Location::File(path)) = (options.read_only, &options.location) {
            let db = builder.open_read_only(path).map_err(map_open_error)?;
            return Self::from_read_only(db, options);
        }
        let db = match &options.location {
            Location::File(path) => builder.create(path).map_err(map_open_error)?,
            Location::Memory => builder
                .create_with_backend(::redb::backends::InMemoryBackend::new())
                .map_err(map_open_error)?,
        };
        Self::from_database(db, options)
    }

    /// Group commits so far: commits, writes, commits per size bucket.
    pub(crate) fn commit_counts(&self) -> (u64, u64, Vec<u64>) {
        self.commits.read()
    }

    /// Gives the file's free pages back: moves pages towards its start and
    /// truncates the free tail (redb's `compact`, crash-safe). Needs the
    /// only reference to the database, with no transaction open. Returns
    /// whether anything moved.
    ///
    /// # Errors
    /// A storage fault; what was committed stays as it was.
    pub fn compact(&mut self) -> std::result::Result<bool, StorageError> {
        match &mut self.db {
            Db::Writable(db) => Ok(db.compact()?),
            Db::ReadOnly(_) => Ok(false),
        }
    }

    /// redb's integrity check of the file at `path`, opened alone: `true`
    /// when sound, `false` when damage was found and repaired.
    ///
    /// # Errors
    /// `DatabaseLocked` when the file is open elsewhere, or a storage fault
    /// (damage that cannot be repaired included).
    pub fn check_file_integrity(path: &std::path::Path) -> Result<bool> {
        let mut db = Database::open(path).map_err(map_open_error)?;
        Ok(db.check_integrity().map_err(StorageError::Database)?)
    }

    /// Opens over a read-only database: reads the metadata and writes
    /// nothing (`last_opened_at` is this open's time, not stored).
    fn from_read_only(db: ReadOnlyDatabase, options: &OpenOptions) -> Result<RedbStorage> {
        let db = Db::ReadOnly(db);
        let txn = db.begin_read()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        let found = read_meta(&meta)?.ok_or_else(|| corrupt("metadata missing"))?;
        check_meta(&found, options)?;
        let metadata = DatabaseMetadata {
            schema_version: found.schema_version,
            embedding_dimension: options.dimension,
            created_at: found.created_at,
            last_opened_at: Timestamp::now(),
        };
        drop(meta);
        drop(txn);
        Ok(RedbStorage {
            db,
            metadata,
            instance_id: found.instance_id,
            durability: options.durability,
            dirty: AtomicBool::new(false),
            commits: CommitCounters::default(),
        })
    }

    /// Opens over an already-created redb database (custom backends).
    ///
    /// # Errors
    /// As [`RedbStorage::open`].
    pub fn from_database(db: Database, options: &OpenOptions) -> Result<RedbStorage> {
        let now = Timestamp::now();
        let txn = db.begin_write().map_err(StorageError::from)?;
        let (metadata, instance_id, is_new) = {
            let mut meta = txn.open_table(schema::META).map_err(StorageError::from)?;
            let existing = read_meta(&meta)?;
            let is_new = existing.is_none();
            let (created_at, instance_id, schema_version) = match existing {
                Some(found) => {
                    check_meta(&found, options)?;
                    if found.embedder_model.is_none() {
                        if let Some(given) = &options.embedder_model {
                            put(&mut meta, meta_keys::EMBEDDER_MODEL, given.as_bytes())?;
                        }
                    }
                    // A writable open migrates the file to the current schema
                    // (in this transaction: all or nothing); a read-only one
                    // reads it as it is.
                    let version = if options.read_only {
                        found.schema_version
                    } else {
                        migrate(&txn, found.schema_version, found.instance_id)?;
                        put(
                            &mut meta,
                            meta_keys::SCHEMA_VERSION,
                            &SCHEMA_VERSION.to_be_bytes(),
                        )?;
                        SCHEMA_VERSION
                    };
                    (found.created_at, found.instance_id, version)
                }
                None => {
                    let id = InstanceId::new();
                    put(
                        &mut meta,
                        meta_keys::SCHEMA_VERSION,
                        &SCHEMA_VERSION.to_be_bytes(),
                    )?;
                    put(
                        &mut meta,
                        meta_keys::DIMENSION,
                        &(options.dimension as u32).to_be_bytes(),
                    )?;
                    put(&mut meta, meta_keys::INSTANCE_ID, id.as_bytes())?;
                    put(&mut meta, meta_keys::CREATED_AT, &now.0.to_be_bytes())?;
                    put(&mut meta, meta_keys::SEQUENCE, &0u64.to_be_bytes())?;
                    if let Some(model) = &options.embedder_model {
                        put(&mut meta, meta_keys::EMBEDDER_MODEL, model.as_bytes())?;
                    }
                    (now, id, SCHEMA_VERSION)
                }
            };
            put(&mut meta, meta_keys::LAST_OPENED_AT, &now.0.to_be_bytes())?;
            let metadata = DatabaseMetadata {
                schema_version,
                embedding_dimension: options.dimension,
                created_at,
                last_opened_at: now,
            };
            (metadata, instance_id, is_new)
        };
        // Create every table up front so read transactions never meet a
        // missing table.
        create_tables(&txn)?;
        if options.read_only {
            // A read-only open of an existing file writes nothing; a brand
            // new file still needs its metadata to be usable.
            // (Decided by whether metadata was found, not by comparing
            // times: a file created in the same millisecond is not new.)
            if is_new {
                txn.commit().map_err(StorageError::from)?;
            } else {
                txn.abort().map_err(StorageError::from)?;
            }
        } else {
            txn.commit().map_err(StorageError::from)?;
        }
        Ok(RedbStorage {
            db: Db::Writable(db),
            metadata,
            instance_id,
            durability: options.durability,
            dirty: AtomicBool::new(false),
            commits: CommitCounters::default(),
        })
    }

    pub(super) fn redb_durability(&self) -> ::redb::Durability {
        match self.durability {
            Durability::Immediate => ::redb::Durability::Immediate,
            Durability::Eventual => ::redb::Durability::None,
        }
    }

    pub(super) fn mark_commit(&self) {
        if self.durability == Durability::Eventual {
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub(super) fn flush_if_dirty(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let durable_commit = || -> std::result::Result<(), StorageError> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(::redb::Durability::Immediate)?;
            txn.commit()?;
            Ok(())
        };
        if let Err(e) = durable_commit() {
            // Still not durable: the next flush must try again.
            self.dirty.store(true, Ordering::Release);
            return Err(e.into());
        }
        Ok(())
    }

    pub(super) fn read_txn(&self) -> Result<::redb::ReadTransaction> {
        Ok(self.db.begin_read()?)
    }
}

/// Brings a file of schema `from` to [`SCHEMA_VERSION`] inside `txn`.
fn migrate(txn: &::redb::WriteTransaction, from: u32, instance: InstanceId) -> Result<()> {
    if from < 2 {
        for retired in schema::RETIRED_IN_V2 {
            txn.delete_table(retired).map_err(StorageError::from)?;
        }
    }
    // Schema 3 changes no stored byte: old records read as they are.
    if from < 4 {
        super::versions::version_existing_rows(txn, instance)?;
    }
    // Schema 5 adds `LOGGED_AT`, created empty with every table at open:
    // the entries of older writes hold their copies.
    if from < SCHEMA_VERSION {
        tracing::info!(from, to = SCHEMA_VERSION, "database schema migrated");
    }
    Ok(())
}

/// Refuses a stored database the options cannot open: a newer schema,
/// another dimension, another embedder model.
fn check_meta(found: &StoredMeta, options: &OpenOptions) -> Result<()> {
    if found.schema_version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: found.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    if found.dimension != options.dimension {
        return Err(ValidationError::DimensionMismatch {
            expected: found.dimension,
            got: options.dimension,
        }
        .into());
    }
    if let (Some(stored), Some(given)) = (&found.embedder_model, &options.embedder_model) {
        if stored != given {
            return Err(Error::EmbedderMismatch {
                stored: stored.clone(),
                given: given.clone(),
            });
        }
    }
    Ok(())
}

struct StoredMeta {
    schema_version: u32,
    dimension: usize,
    instance_id: InstanceId,
    created_at: Timestamp,
    embedder_model: Option<String>,
}

fn read_meta(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Option<StoredMeta>> {
    let Some(version) = get(meta, meta_keys::SCHEMA_VERSION)? else {
        return Ok(None);
    };
    let schema_version = u32::from_be_bytes(fixed(&version, "schema_version")?);
    let dimension =
        get(meta, meta_keys::DIMENSION)?.ok_or_else(|| corrupt("embedding dimension missing"))?;
    let dimension = u32::from_be_bytes(fixed(&dimension, "embedding_dimension")?) as usize;
    let id = get(meta, meta_keys::INSTANCE_ID)?.ok_or_else(|| corrupt("instance id missing"))?;
    let instance_id = InstanceId::from_bytes(fixed(&id, "instance_id")?);
    let created = get(meta, meta_keys::CREATED_AT)?.ok_or_else(|| corrupt("created_at missing"))?;
    let created_at = Timestamp(i64::from_be_bytes(fixed(&created, "created_at")?));
    let embedder_model = get(meta, meta_keys::EMBEDDER_MODEL)?
        .map(|b| String::from_utf8(b).map_err(|_| corrupt("embedder model is not UTF-8")))
        .transpose()?;
    Ok(Some(StoredMeta {
        schema_version,
        dimension,
        instance_id,
        created_at,
        embedder_model,
    }))
}

fn get(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    Ok(meta
        .get(key)
        .map_err(StorageError::from)?
        .map(|v| v.value().to_vec()))
}

fn put(
    meta: &mut ::redb::Table<&'static str, &'static [u8]>,
    key: &str,
    value: &[u8],
) -> Result<()> {
    meta.insert(key, value).map_err(StorageError::from)?;
    Ok(())
}

pub(super) fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(&format!("{what} has {} bytes, expected {N}", bytes.len())))
}

pub(super) fn corrupt(msg: &str) -> Error {
    StorageError::Corrupt(msg.to_string()).into()
}

fn create_tables(txn: &::redb::WriteTransaction) -> Result<()> {
    macro_rules! create {
        ($($t:expr),*) => {
            $( txn.open_table($t).map_err(StorageError::from)?; )*
        };
    }
    create!(
        schema::COLLECTIVES,
        schema::EXPERIENCES,
        schema::EXP_BY_COLLECTIVE,
        schema::REINFORCEMENTS,
        schema::RELATIONS,
        schema::REL_BY_SOURCE,
        schema::REL_BY_TARGET,
        schema::REL_BY_COLLECTIVE,
        schema::REL_UNIQUE,
        schema::INSIGHTS,
        schema::INSIGHTS_BY_COLLECTIVE,
        schema::ACTIVITIES,
        schema::WAL,
        schema::LOGGED_AT,
        schema::SYNC_CURSORS,
        schema::PEER_SEEN,
        schema::PULL_CURSORS,
        schema::VERSIONS,
        schema::TOMBSTONES,
        schema::HELD
    );
    txn.open_table(schema::HELD_BY_WAIT)
        .map_err(StorageError::from)?;
    Ok(())
}

fn map_open_error(e: ::redb::DatabaseError) -> Error {
    match e {
        ::redb::DatabaseError::DatabaseAlreadyOpen => Error::DatabaseLocked,
        other => StorageError::Database(other).into(),
    }
}
