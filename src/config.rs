//! Engine configuration. Every field has a default and does something;
//! [`Config::validate`] runs in `open` and names the bad field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ValidationError};
pub use crate::index::IndexConfig;
use crate::search::RecallWeights;

/// Smallest `cache_size`: 1 MiB.
pub const MIN_CACHE_SIZE: usize = 1024 * 1024;

/// Largest `max_in_flight`.
pub const MAX_IN_FLIGHT: usize = 1_000_000;

/// Largest custom embedding dimension.
pub const MAX_EMBEDDING_DIMENSION: usize = 4096;

/// The dimension of every embedding in a database, locked at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EmbeddingDimension {
    /// 384 components (MiniLM-class models).
    #[default]
    D384,
    /// 768 components (BERT-base-class models).
    D768,
    /// Any dimension in `1..=4096`.
    Custom(usize),
}

impl EmbeddingDimension {
    /// Number of components.
    pub fn size(&self) -> usize {
        match self {
            EmbeddingDimension::D384 => 384,
            EmbeddingDimension::D768 => 768,
            EmbeddingDimension::Custom(d) => *d,
        }
    }
}

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Every acknowledged write is fsynced before the call returns.
    #[default]
    Immediate,
    /// Commits skip the fsync; a durable commit follows at most
    /// [`Config::eventual_flush_interval`] later. What a crash can lose:
    ///
    /// - **process crash** (a panic, SIGKILL, an OOM kill): the writes
    ///   acknowledged since the last durable commit, so at most those of
    ///   the last `eventual_flush_interval` plus one flush's duration. On
    ///   reopen redb returns to its last durable commit: the lost writes are
    ///   gone as a whole, with their change-log entries, never half-applied
    ///   (`tests/eventual_crash.rs` kills a writing process and checks
    ///   this).
    /// - **machine crash** (power loss, kernel panic): the same window; the
    ///   durable commits before it are fsynced.
    ///
    /// `close` and dropping the last handle make everything durable.
    Eventual,
}

/// Agent activity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityConfig {
    /// Agents whose last heartbeat is older than this are not active.
    pub stale_threshold: Duration,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            stale_threshold: Duration::from_secs(300),
        }
    }
}

/// Watch stream settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchConfig {
    /// Events buffered per subscriber before the newest are dropped (and
    /// counted in `WatchStream::missed`).
    pub buffer_size: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { buffer_size: 1024 }
    }
}

/// Change-log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeLogConfig {
    /// Entries older than this are compacted away automatically (never one
    /// a replication peer has not taken yet). Polling from a compacted
    /// position is `Error::ChangesCompacted`.
    pub retention: Duration,
}

impl Default for ChangeLogConfig {
    fn default() -> Self {
        ChangeLogConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ChangeLogConfig {
    /// How often the log is checked for expired entries: a quarter of the
    /// retention, between 10 ms and a minute.
    pub(crate) fn compaction_interval(&self) -> Duration {
        (self.retention / 4).clamp(Duration::from_millis(10), Duration::from_secs(60))
    }
}

/// A node to pull changes from (REPLICATION.md "Peer pull over HTTP").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// The peer's base URL, `http://host:port` (its `pulsedb serve`).
    pub url: String,
    /// Bearer token the peer requires, if any.
    pub token: Option<String>,
}

/// Membership of a NATS JetStream cluster (REPLICATION.md "NATS
/// JetStream").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsConfig {
    /// The NATS servers (`nats://host:port`); any reachable one will do.
    pub urls: Vec<String>,
    /// The cluster's name: one stream per name (letters, digits, `-`,
    /// `_`).
    pub cluster: String,
    /// Hold only these collectives (`None`: all).
    pub collectives: Option<Vec<crate::collective::CollectiveId>>,
    /// This node's HTTP address, told to the other members.
    pub advertise: Option<String>,
    /// Bearer token for the members' HTTP APIs (a node that fell behind
    /// the stream copies a member's snapshot).
    pub token: Option<String>,
    /// Most messages the stream keeps (`None`: no limit); only applies when
    /// this node creates the stream. A node away for longer than the stream
    /// remembers copies a member's snapshot when it returns.
    pub max_messages: Option<i64>,
}

/// Replication settings (REPLICATION.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationConfig {
    /// Nodes to pull committed changes from, each continuously (long poll);
    /// pulling needs the `replication` cargo feature.
    pub peers: Vec<PeerConfig>,
    /// A peer that has not pulled for this long stops holding change-log
    /// compaction back (when it returns it copies a snapshot).
    pub peer_retention: Duration,
    /// Most change-log entries asked for per request.
    pub batch_size: usize,
    /// Join a NATS JetStream cluster (cargo feature `cluster`).
    pub nats: Option<NatsConfig>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            peers: Vec::new(),
            peer_retention: Duration::from_secs(7 * 24 * 3600),
            batch_size: 500,
            nats: None,
        }
    }
}

/// Energy (decay) settings. See [`crate::energy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecayConfig {
    /// Time for an unreinforced experience's energy to halve.
    pub half_life: Duration,
    /// Weight of the reinforcement count in the energy formula.
    pub freq_weight: f32,
    /// Weights `search` and context assembly use when none are given.
    pub default_recall_weights: Option<RecallWeights>,
}

impl Default for DecayConfig {
    fn default() -> Self {
        DecayConfig {
            half_life: Duration::from_secs(30 * 24 * 3600),
            freq_weight: 0.25,
            default_recall_weights: None,
        }
    }
}

/// Everything an engine can be told at open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Dimension of every embedding; locked when the database is created.
    pub embedding_dimension: EmbeddingDimension,
    /// Bound on requests in flight per handle; callers wait beyond it (or get
    /// `Error::Overloaded` from `try_` calls).
    pub max_in_flight: usize,
    /// Commit durability.
    pub durability: Durability,
    /// Refuse every mutation with `Error::ReadOnly`, and write nothing at
    /// all: no snapshot, no metadata, no new file (a missing file is an
    /// error). That includes the repair a file left by a crashed writer
    /// needs: such a file fails a read-only open with a storage error until
    /// it has been opened writable once.
    pub read_only: bool,
    /// Vector index settings.
    pub index: IndexConfig,
    /// Agent activity settings.
    pub activity: ActivityConfig,
    /// Watch stream settings.
    pub watch: WatchConfig,
    /// Change-log settings.
    pub change_log: ChangeLogConfig,
    /// Energy settings.
    pub decay: DecayConfig,
    /// Most write operations applied in one redb transaction.
    pub max_batch_ops: usize,
    /// With [`Durability::Eventual`], the longest time between durable commits.
    pub eventual_flush_interval: Duration,
    /// Bytes of redb page cache. Reads of records not cached go to the OS
    /// page cache, so a modest cache keeps memory flat without slowing reads
    /// much.
    pub cache_size: usize,
    /// On `close`, give the file's free pages back to the file system
    /// (redb's compaction: pages move towards the start and the free tail is
    /// cut off). Costs time proportional to the file: `pulsedb-bench` closes
    /// (drain and snapshot included) in 0.12–0.35 s at 10 000 experiences
    /// and 3.4–5.3 s at 100 000, where it takes the file from 285 MB to
    /// 263 MB. A failed compaction is logged and changes nothing committed.
    pub compact_on_close: bool,
    /// Replication with other nodes.
    pub replication: ReplicationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embedding_dimension: EmbeddingDimension::default(),
            max_in_flight: 1024,
            durability: Durability::default(),
            read_only: false,
            index: IndexConfig::default(),
            activity: ActivityConfig::default(),
            watch: WatchConfig::default(),
            change_log: ChangeLogConfig::default(),
            decay: DecayConfig::default(),
            max_batch_ops: 4096,
            eventual_flush_interval: Duration::from_millis(200),
            cache_size: 64 * 1024 * 1024,
            compact_on_close: true,
            replication: ReplicationConfig::default(),
        }
    }
}

impl Config {
    /// Checks every field.
    ///
    /// | field | rule |
    /// |---|---|
    /// | `embedding_dimension` | `1..=4096` |
    /// | `max_in_flight` | `1..=1_000_000` |
    /// | `max_batch_ops`, `watch.buffer_size` | ≥ 1 |
    /// | `cache_size` | ≥ 1 MiB |
    /// | `index.hnsw_m` | `2..=256` |
    /// | `index.ef_construction`, `index.ef_search` | `1..=4096` |
    /// | `index.tombstone_ratio`, `index.exact_scan_selectivity` | finite, `0.0..=1.0` |
    /// | `activity.stale_threshold`, `decay.half_life`, `eventual_flush_interval`, `change_log.retention` | > 0 |
    /// | `decay.freq_weight` | finite, ≥ 0 |
    /// | `decay.default_recall_weights` | see [`RecallWeights::validate`] |
    /// | `replication.peers[].url` | `http://` or `https://` and a host |
    /// | `replication.peer_retention` | > 0 |
    /// | `replication.batch_size` | `1..=1000` |
    ///
    /// # Errors
    /// `Error::Validation(InvalidField)` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let dim = self.embedding_dimension.size();
        if dim == 0 || dim > MAX_EMBEDDING_DIMENSION {
            return Err(bad("embedding_dimension", "must be in 1..=4096"));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(bad("max_in_flight", "must be in 1..=1000000"));
        }
        if self.max_batch_ops == 0 {
            return Err(bad("max_batch_ops", "must be at least 1"));
        }
        if self.cache_size < MIN_CACHE_SIZE {
            return Err(bad("cache_size", "must be at least 1 MiB"));
        }
        if self.watch.buffer_size == 0 {
            return Err(bad("watch.buffer_size", "must be at least 1"));
        }
        let ix = &self.index;
        if !(2..=256).contains(&ix.hnsw_m) {
            return Err(bad("index.hnsw_m", "must be in 2..=256"));
        }
        if !(1..=4096).contains(&ix.ef_construction) {
            return Err(bad("index.ef_construction", "must be in 1..=4096"));
        }
        if !(1..=4096).contains(&ix.ef_search) {
            return Err(bad("index.ef_search", "must be in 1..=4096"));
        }
        if !unit(ix.tombstone_ratio) {
            return Err(bad("index.tombstone_ratio", "must be finite in 0.0..=1.0"));
        }
        if !unit(ix.exact_scan_selectivity) {
            return Err(bad(
                "index.exact_scan_selectivity",
                "must be finite in 0.0..=1.0",
            ));
        }
        if self.activity.stale_threshold.is_zero() {
            return Err(bad("activity.stale_threshold", "must be greater than zero"));
        }
        if self.decay.half_life.is_zero() {
            return Err(bad("decay.half_life", "must be greater than zero"));
        }
        if self.change_log.retention.is_zero() {
            return Err(bad("change_log.retention", "must be greater than zero"));
        }
        if self.eventual_flush_interval.is_zero() {
            return Err(bad("eventual_flush_interval", "must be greater than zero"));
        }
        if !self.decay.freq_weight.is_finite() || self.decay.freq_weight < 0.0 {
            return Err(bad("decay.freq_weight", "must be finite and >= 0"));
        }
        if let Some(w) = &self.decay.default_recall_weights {
            w.validate("decay.default_recall_weights")?;
        }
        let r = &self.replication;
        if !r.peers.is_empty() && !cfg!(feature = "replication") {
            return Err(bad(
                "replication.peers",
                "pulling from peers needs the `replication` cargo feature",
            ));
        }
        if !r.peers.is_empty() && self.read_only {
            return Err(bad(
                "replication.peers",
                "a read-only database cannot pull changes",
            ));
        }
        for peer in &r.peers {
            let host = peer
                .url
                .strip_prefix("http://")
                .or_else(|| peer.url.strip_prefix("https://"));
            if host.is_none_or(|h| h.trim_end_matches('/').is_empty()) {
                return Err(bad(
                    "replication.peers.url",
                    "must be http://host:port or https://host:port",
                ));
            }
        }
        if r.peer_retention.is_zero() {
            return Err(bad(
                "replication.peer_retention",
                "must be greater than zero",
            ));
        }
        if !(1..=1000).contains(&r.batch_size) {
            return Err(bad("replication.batch_size", "must be in 1..=1000"));
        }
        if let Some(n) = &r.nats {
            if !cfg!(feature = "cluster") {
                return Err(bad(
                    "replication.nats",
                    "a NATS cluster needs the `cluster` cargo feature",
                ));
            }
            if self.read_only {
                return Err(bad(
                    "replication.nats",
                    "a read-only database cannot join a cluster",
                ));
            }
            if n.urls.is_empty() {
                return Err(bad(
                    "replication.nats.urls",
                    "give at least one NATS server",
                ));
            }
            let name_ok = !n.cluster.is_empty()
                && n.cluster.len() <= 64
                && n.cluster
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(bad(
                    "replication.nats.cluster",
                    "1 to 64 letters, digits, '-' or '_'",
                ));
            }
        }
        Ok(())
    }
}

fn unit(x: f32) -> bool {
    x.is_finite() && (0.0..=1.0).contains(&x)
}

fn bad(field: &str, reason: &str) -> crate::Error {
    ValidationError::invalid(field, reason).into()
}
