//! Replication on [`PulseHandle`] (REPLICATION.md): the change log as peers
//! read it, snapshots, and merging what peers send. Transports (HTTP peer
//! pull in `crate::replication::peer`, the server's routes) are built on
//! these.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc;

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::collective::CollectiveId;
use crate::error::{Error, Result, ValidationError};
use crate::id::InstanceId;
use crate::replication::{ChangePage, PeerStatus, PulledBy, RemoteChange, ReplicationStatus};
use crate::storage::{Applied, StorageRead, WriteOp};

/// Most change-log entries one page carries.
pub const MAX_REPLICATION_PAGE: usize = 1000;

/// How far ahead of this node's clock a received version may be. A peer
/// whose clock runs further ahead is refused: its versions would drag this
/// node's clock (and every later write's version) with them.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Longest a page request waits for a change.
pub const MAX_REPLICATION_WAIT: Duration = Duration::from_secs(30);

impl PulseHandle {
    /// The changes after change-log position `since`, as a peer reads them:
    /// at most `limit` entries (capped at [`MAX_REPLICATION_PAGE`]; 0 gives
    /// just the node's id and head), each entity once with its state now.
    /// With nothing after `since`, waits up to `wait` (capped at
    /// [`MAX_REPLICATION_WAIT`]) for a commit: a long poll.
    ///
    /// # Errors
    /// `ChangesCompacted` when entries after `since` were compacted away
    /// (copy a snapshot), `Closed`, or a storage fault.
    pub async fn replication_changes(
        &self,
        since: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<ChangePage> {
        let limit = limit.min(MAX_REPLICATION_PAGE);
        self.long_poll("replication_changes", since, limit, wait, move |s| {
            let page = s.replication_page(since, limit)?;
            let next = page.next;
            Ok((page, next))
        })
        .await
    }

    /// This node's own changes after `since` (at most `limit` entries
    /// scanned) with their sequences, and the position reached; waits up
    /// to `wait` for one when there is none. What a cluster node publishes.
    #[cfg(feature = "cluster")]
    pub(crate) async fn own_changes(
        &self,
        since: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<(Vec<(u64, RemoteChange)>, u64)> {
        self.long_poll("own_changes", since, limit, wait, move |s| {
            let page = s.own_changes(since, limit)?;
            let next = page.1;
            Ok((page, next))
        })
        .await
    }

    /// Reads with `read` (which answers a value and the log position it
    /// reached) until the position passes `since`, waiting for commits up
    /// to `wait` (capped at [`MAX_REPLICATION_WAIT`]).
    async fn long_poll<T, F>(
        &self,
        op: &'static str,
        since: u64,
        limit: usize,
        wait: Duration,
        read: F,
    ) -> Result<T>
    where
        F: Fn(&crate::storage::RedbStorage) -> Result<(T, u64)> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let e = &self.engine;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_REPLICATION_WAIT);
        // Subscribed before the first read: no commit is missed.
        let mut commits = e.watch.commits();
        loop {
            let read = read.clone();
            let (value, next) = e
                .run(op, None, Access::Read, Admission::Wait, async {
                    e.read(read).await
                })
                .await?;
            if next > since || limit == 0 {
                return Ok(value);
            }
            match tokio::time::timeout_at(deadline, commits.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Ok(value),
            }
        }
    }

    /// Streams the whole replicated state into `sink` (collectives first)
    /// and returns the change-log position it covers: a peer that applies
    /// it continues from there. The read is one consistent view; a full
    /// `sink` makes it wait.
    ///
    /// # Errors
    /// `Closed` (also when `sink` is dropped) or a storage fault.
    pub async fn replication_snapshot(&self, sink: mpsc::Sender<RemoteChange>) -> Result<u64> {
        let e = &self.engine;
        e.run(
            "replication_snapshot",
            None,
            Access::Read,
            Admission::Wait,
            async {
                e.read(move |s| {
                    s.replication_snapshot(|change| {
                        sink.blocking_send(change).map_err(|_| Error::Closed)
                    })
                })
                .await
            },
        )
        .await
    }

    /// Merges changes received from `peer` (REPLICATION.md's rules), then
    /// records that its log was applied up to `position`. Changes that add
    /// nothing write nothing. Checked as a whole first: one change that
    /// cannot be merged refuses them all.
    ///
    /// # Errors
    /// `Validation` naming the field (a wrong dimension, a non-finite
    /// component, an unknown collective, this node's own id), `ReadOnly`,
    /// `Closed`, or a storage fault. A crash midway replays from the
    /// previous position: merging again is harmless.
    pub async fn apply_remote_changes(
        &self,
        peer: InstanceId,
        changes: Vec<RemoteChange>,
        position: u64,
    ) -> Result<()> {
        if peer == self.engine.instance_id {
            return Err(ValidationError::invalid(
                "instance_id",
                "a node cannot replicate from itself",
            )
            .into());
        }
        self.merge_changes(changes, Some((peer, position))).await
    }

    /// Merges changes received from a cluster's stream (no cursor: the
    /// stream's consumer acknowledgement is the position).
    #[cfg(feature = "cluster")]
    pub(crate) async fn merge_remote_changes(&self, changes: Vec<RemoteChange>) -> Result<()> {
        self.merge_changes(changes, None).await
    }

    async fn merge_changes(
        &self,
        changes: Vec<RemoteChange>,
        cursor: Option<(InstanceId, u64)>,
    ) -> Result<()> {
        let e = &self.engine;
        e.run(
            "apply_remote_changes",
            None,
            Access::Write,
            Admission::Wait,
            async {
                self.check_remote(&changes).await?;
                let plan = Plan::new(changes);
                if !plan.created.is_empty() {
                    e.write_direct(remote(plan.created)).await?;
                }
                for (c, group) in plan.groups {
                    let live = e.read_point(move |s| s.get_collective(c))?.is_some();
                    if live {
                        e.write_indexed(c, remote(group)).await?;
                    } else {
                        e.write_direct(remote(group)).await?;
                    }
                }
                if !plan.deleted.is_empty() {
                    let done = e.write_direct(remote(plan.deleted)).await?;
                    if let Applied::Many(parts) = done.applied {
                        for part in parts {
                            if let Applied::CollectiveDeleted(id) = part {
                                e.collective_gone(id).await?;
                            }
                        }
                    }
                }
                if cursor.is_some() {
                    e.write_direct(WriteOp::ApplyRemote {
                        changes: Vec::new(),
                        cursor,
                    })
                    .await?;
                }
                Ok(())
            },
        )
        .await
    }

    /// The error for a collective that is not here: `NotFound(NotHeld)`
    /// naming the members that hold it when this node is a cluster member
    /// holding a subset that leaves it out, else `NotFound(Collective)`.
    pub fn collective_not_found(&self, c: CollectiveId) -> Error {
        self.engine.not_found(c)
    }

    /// Where pulling from `peer` resumes: the last position of its log
    /// applied here (0: none).
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn pull_cursor(&self, peer: InstanceId) -> Result<u64> {
        let e = &self.engine;
        e.run("pull_cursor", None, Access::Read, Admission::Wait, async {
            e.read(move |s| s.load_pull_cursor(peer)).await
        })
        .await
    }

    /// Records that `peer` has taken this node's log up to `position`: the
    /// log is compacted only past what every peer has taken (a peer silent
    /// for longer than `config.replication.peer_retention` stops counting).
    ///
    /// # Errors
    /// `ReadOnly`, `Closed` or a storage fault.
    pub async fn record_peer_pull(&self, peer: InstanceId, position: u64) -> Result<()> {
        let e = &self.engine;
        e.run(
            "record_peer_pull",
            None,
            Access::Write,
            Admission::Wait,
            async { e.read(move |s| s.record_peer_pull(peer, position)).await },
        )
        .await
    }

    /// How replication goes: this node's head, each peer it pulls from
    /// (cursor, lag, last error), and the peers pulling from it.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn replication_status(&self) -> Result<ReplicationStatus> {
        let e = &self.engine;
        let (head, cursors) = e
            .run(
                "replication_status",
                None,
                Access::Read,
                Admission::Wait,
                async {
                    e.read(|s| Ok((s.current_sequence()?, s.list_sync_cursors()?)))
                        .await
                },
            )
            .await?;
        let peers: Vec<PeerStatus> = e
            .peers
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let cluster = e.config.replication.nats.as_ref().map(|n| {
            let mut s = e
                .cluster
                .lock()
                .map(|c| c.clone())
                .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
            s.name.clone_from(&n.cluster);
            s
        });
        Ok(ReplicationStatus {
            instance_id: e.instance_id,
            head,
            peers,
            cluster,
            pulled_by: cursors
                .into_iter()
                .map(|(instance_id, position)| PulledBy {
                    instance_id,
                    position,
                })
                .collect(),
        })
    }

    /// Starts pulling from the configured peers (`config.replication`).
    pub(crate) fn start_replication(&self) {
        #[cfg(feature = "replication")]
        {
            let e = &self.engine;
            let peers = &e.config.replication.peers;
            if let Ok(mut statuses) = e.peers.lock() {
                *statuses = peers
                    .iter()
                    .map(|p| PeerStatus {
                        url: p.url.clone(),
                        ..PeerStatus::default()
                    })
                    .collect();
            }
            let handles: Vec<_> = peers
                .iter()
                .enumerate()
                .map(|(i, peer)| {
                    crate::replication::peer::spawn(
                        self.downgrade(),
                        peer.clone(),
                        i,
                        e.config.replication.batch_size,
                        e.peers.clone(),
                    )
                })
                .collect();
            if let Ok(mut pullers) = e.pullers.lock() {
                pullers.extend(handles);
            }
        }
        #[cfg(feature = "cluster")]
        if let Some(nats) = &self.engine.config.replication.nats {
            let task = crate::replication::nats::spawn(
                self.downgrade(),
                nats.clone(),
                self.engine.cluster.clone(),
            );
            if let Ok(mut pullers) = self.engine.pullers.lock() {
                pullers.push(task);
            }
        }
    }

    /// The last position of this node's log its cluster's stream has
    /// acknowledged (kept as the sync cursor of the node itself, so the log
    /// is not compacted past what the stream has not taken).
    #[cfg(feature = "cluster")]
    pub(crate) async fn outbox_position(&self) -> Result<u64> {
        let e = &self.engine;
        let me = e.instance_id;
        e.run(
            "outbox_position",
            None,
            Access::Read,
            Admission::Wait,
            async {
                e.read(move |s| Ok(s.load_sync_cursor(me)?.unwrap_or(0)))
                    .await
            },
        )
        .await
    }

    /// Records that the stream has taken this node's log up to `position`.
    #[cfg(feature = "cluster")]
    pub(crate) async fn set_outbox_position(&self, position: u64) -> Result<()> {
        self.record_peer_pull(self.engine.instance_id, position)
            .await
    }

    /// The checks of [`PulseHandle::apply_remote_changes`] before anything
    /// is written.
    async fn check_remote(&self, changes: &[RemoteChange]) -> Result<()> {
        let e = &self.engine;
        let dimension = e.metadata.embedding_dimension;
        let vector = |v: &[f32]| -> Result<()> {
            if v.len() != dimension {
                return Err(ValidationError::invalid(
                    "embedding",
                    format!("{} components, this database has {dimension}", v.len()),
                )
                .into());
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(
                    ValidationError::invalid("embedding", "a component is not finite").into(),
                );
            }
            Ok(())
        };
        let mut created = HashSet::new();
        let mut referenced = HashSet::new();
        let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
        let latest = u64::try_from(crate::id::Timestamp::now().0)
            .unwrap_or(0)
            .saturating_add(skew);
        for change in changes {
            let version = change.version();
            if version.hlc.millis > latest {
                return Err(ValidationError::invalid(
                    "version",
                    format!(
                        "{} ms is more than {} s ahead of this node's clock",
                        version.hlc.millis,
                        MAX_CLOCK_SKEW.as_secs()
                    ),
                )
                .into());
            }
            match change {
                RemoteChange::Collective { collective, .. } => {
                    if usize::from(collective.embedding_dimension) != dimension {
                        return Err(ValidationError::invalid(
                            "embedding_dimension",
                            format!(
                                "{}, this database has {dimension}",
                                collective.embedding_dimension
                            ),
                        )
                        .into());
                    }
                    created.insert(collective.id);
                }
                RemoteChange::CollectiveDeleted { .. } => {}
                RemoteChange::Experience { experience, .. } => {
                    vector(&experience.embedding)?;
                    referenced.insert(experience.collective_id);
                }
                RemoteChange::Insight { insight, .. } => {
                    vector(&insight.embedding)?;
                    referenced.insert(insight.collective_id);
                }
                other => {
                    referenced.insert(other.collective_id());
                }
            }
        }
        let unknown: Vec<CollectiveId> = referenced.difference(&created).copied().collect();
        let missing = e
            .read(move |s| {
                for c in unknown {
                    if !s.collective_seen(c)? {
                        return Ok(Some(c));
                    }
                }
                Ok(None)
            })
            .await?;
        match missing {
            Some(c) => Err(ValidationError::invalid(
                "collective_id",
                format!("unknown collective {c}"),
            )
            .into()),
            None => Ok(()),
        }
    }
}

fn remote(changes: Vec<RemoteChange>) -> WriteOp {
    WriteOp::ApplyRemote {
        changes,
        cursor: None,
    }
}

/// The order a batch is merged in: new collectives, then each collective's
/// entities (through its actor, so its index follows), then collective
/// deletes.
struct Plan {
    created: Vec<RemoteChange>,
    groups: Vec<(CollectiveId, Vec<RemoteChange>)>,
    deleted: Vec<RemoteChange>,
}

impl Plan {
    fn new(changes: Vec<RemoteChange>) -> Plan {
        let mut plan = Plan {
            created: Vec::new(),
            groups: Vec::new(),
            deleted: Vec::new(),
        };
        for change in changes {
            match change {
                RemoteChange::Collective { .. } => plan.created.push(change),
                RemoteChange::CollectiveDeleted { .. } => plan.deleted.push(change),
                _ => {
                    let c = change.collective_id();
                    match plan.groups.iter_mut().find(|(g, _)| *g == c) {
                        Some((_, group)) => group.push(change),
                        None => plan.groups.push((c, vec![change])),
                    }
                }
            }
        }
        plan
    }
}
