//! Peer pull over HTTP (REPLICATION.md): one task per configured peer
//! long-polls its `GET /v1/replication/changes`, merges each page, and
//! moves its cursor in the same commit. A peer that compacted past the
//! cursor (or that this node has never pulled from and can no longer serve
//! from the start) answers `410 Gone`: the task copies its snapshot and
//! continues from the snapshot's position. Failures back off
//! exponentially (capped) and show in the status; other peers carry on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;

use super::{ChangePage, PeerStatus, RemoteChange, SnapshotLine, PROTOCOL_VERSION};
use crate::api::WeakHandle;
use crate::config::PeerConfig;
use crate::error::Error;
use crate::id::{InstanceId, Timestamp};
use crate::PulseHandle;

/// How long the peer may hold a request open waiting for a change.
const WAIT: Duration = Duration::from_secs(10);
/// First pause after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Largest page body accepted from a peer.
const MAX_PAGE_BYTES: usize = 128 * 1024 * 1024;
/// Largest snapshot line accepted from a peer.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Snapshot changes merged per commit.
const SNAPSHOT_CHUNK: usize = 500;

/// Why one round with a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("refused: {0}")]
    Refused(String),
    #[error("merging its changes failed: {0}")]
    Engine(#[from] Error),
}

/// Statuses of every peer, shared with the handle.
pub(crate) type Statuses = Arc<Mutex<Vec<PeerStatus>>>;

/// Starts pulling from `peer` (entry `index` of `statuses`).
pub(crate) fn spawn(
    db: WeakHandle,
    peer: PeerConfig,
    index: usize,
    batch: usize,
    statuses: Statuses,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let puller = Puller {
            db,
            peer,
            index,
            batch,
            statuses,
            known: None,
        };
        puller.run().await;
    })
    .abort_handle()
}

struct Puller {
    db: WeakHandle,
    peer: PeerConfig,
    index: usize,
    batch: usize,
    statuses: Statuses,
    /// The peer's id and where pulling resumes, once it has answered.
    known: Option<(InstanceId, u64)>,
}

impl Puller {
    async fn run(mut self) {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(WAIT + Duration::from_secs(30))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                self.failed(&PullError::Http(e));
                return;
            }
        };
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.round(&client).await {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(PullError::Engine(Error::Closed)) => return,
                Err(e) => {
                    self.failed(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn failed(&self, e: &PullError) {
        tracing::warn!(peer = %self.peer.url, error = %e, "replication pull failed");
        self.update(|s| s.last_error = Some(e.to_string()));
    }

    fn update(&self, f: impl FnOnce(&mut PeerStatus)) {
        let mut all = self
            .statuses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(s) = all.get_mut(self.index) {
            f(s);
        }
    }

    /// One request to the peer and what follows from its answer.
    async fn round(&mut self, client: &reqwest::Client) -> Result<(), PullError> {
        let db = self.db.upgrade().ok_or(PullError::Engine(Error::Closed))?;
        let (peer, cursor) = match self.known {
            Some(known) => known,
            None => self.introduce(client, &db).await?,
        };
        let own = db.instance_id();
        let query = [
            ("since", cursor.to_string()),
            ("limit", self.batch.to_string()),
            ("wait_ms", WAIT.as_millis().to_string()),
            ("peer", own.to_string()),
            ("protocol", PROTOCOL_VERSION.to_string()),
        ];
        let response = self
            .get(client, "/v1/replication/changes")
            .query(&query)
            .send()
            .await?;
        if response.status() == StatusCode::GONE {
            return self.copy_snapshot(client, &db, peer, cursor).await;
        }
        let page: ChangePage = self.parse_page(response).await?;
        if page.instance_id != peer {
            self.known = None;
            return Err(PullError::Refused(format!(
                "the peer's instance id changed from {peer} to {}",
                page.instance_id
            )));
        }
        if page.next < cursor {
            return Err(PullError::Refused(format!(
                "the peer answered position {} for a request after {cursor}",
                page.next
            )));
        }
        let received = page.changes.len() as u64;
        if page.next > cursor {
            db.apply_remote_changes(peer, page.changes, page.next)
                .await?;
        }
        self.known = Some((peer, page.next));
        self.update(|s| {
            s.cursor = page.next;
            s.head = page.head;
            s.lag = page.head.saturating_sub(page.next);
            s.changes_received += received;
            s.last_success = Some(Timestamp::now());
            s.last_error = None;
        });
        Ok(())
    }

    /// Learns the peer's id (a page of no entries) and where to resume.
    async fn introduce(
        &mut self,
        client: &reqwest::Client,
        db: &PulseHandle,
    ) -> Result<(InstanceId, u64), PullError> {
        let response = self
            .get(client, "/v1/replication/changes")
            .query(&[("limit", "0"), ("protocol", &PROTOCOL_VERSION.to_string())])
            .send()
            .await?;
        let page: ChangePage = self.parse_page(response).await?;
        if page.instance_id == db.instance_id() {
            return Err(PullError::Refused(
                "the peer is this node (same instance id)".into(),
            ));
        }
        let cursor = db.pull_cursor(page.instance_id).await?;
        self.known = Some((page.instance_id, cursor));
        self.update(|s| s.instance_id = Some(page.instance_id));
        Ok((page.instance_id, cursor))
    }

    fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.peer.url.trim_end_matches('/'));
        let request = client.get(url);
        match &self.peer.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn parse_page(&self, response: reqwest::Response) -> Result<ChangePage, PullError> {
        let status = response.status();
        let body = read_capped(response, MAX_PAGE_BYTES).await?;
        if !status.is_success() {
            return Err(PullError::Status {
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        let page: ChangePage = serde_json::from_slice(&body)
            .map_err(|e| PullError::Refused(format!("malformed page: {e}")))?;
        if page.protocol != PROTOCOL_VERSION {
            return Err(PullError::Refused(format!(
                "protocol {} (this node speaks {PROTOCOL_VERSION})",
                page.protocol
            )));
        }
        Ok(page)
    }

    /// Copies the peer's whole state and resumes after its position.
    async fn copy_snapshot(
        &mut self,
        client: &reqwest::Client,
        db: &PulseHandle,
        peer: InstanceId,
        cursor: u64,
    ) -> Result<(), PullError> {
        tracing::info!(peer = %self.peer.url, "copying a snapshot: the peer compacted what this node has not pulled");
        let source = Source {
            url: &self.peer.url,
            token: self.peer.token.as_deref(),
            expected: Some(peer),
            only: None,
        };
        let copied = copy_snapshot(client, &source, db, cursor).await?;
        self.known = Some((peer, copied.position));
        self.update(|s| {
            s.cursor = copied.position;
            s.snapshots += 1;
            s.changes_received += copied.changes;
            s.last_success = Some(Timestamp::now());
            s.last_error = None;
        });
        Ok(())
    }
}

/// Where a snapshot comes from.
pub(crate) struct Source<'a> {
    /// The node's base URL.
    pub(crate) url: &'a str,
    /// Its bearer token.
    pub(crate) token: Option<&'a str>,
    /// The instance id it must have, when known.
    pub(crate) expected: Option<InstanceId>,
    /// Take only the changes of these collectives (`None`: all).
    pub(crate) only: Option<&'a [crate::CollectiveId]>,
}

/// A snapshot copied.
pub(crate) struct Copied {
    /// The position of its log it covers.
    pub(crate) position: u64,
    /// Changes received.
    pub(crate) changes: u64,
}

/// Copies a node's whole state (`GET /v1/replication/snapshot`) into `db`
/// in chunks; the pull cursor of the source stays at `cursor` until the
/// last chunk, which moves it to the snapshot's position.
pub(crate) async fn copy_snapshot(
    client: &reqwest::Client,
    from: &Source<'_>,
    db: &PulseHandle,
    cursor: u64,
) -> Result<Copied, PullError> {
    let url = format!("{}/v1/replication/snapshot", from.url.trim_end_matches('/'));
    let mut request = client.get(url);
    if let Some(token) = from.token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = read_capped(response, 4096).await.unwrap_or_default();
        return Err(PullError::Status {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let mut lines = Lines::default();
    let mut chunk = Vec::new();
    let mut source = None;
    let mut received = 0u64;
    while let Some(bytes) = response.chunk().await? {
        lines.push(&bytes)?;
        while let Some(line) = lines.next_line() {
            let line: SnapshotLine = serde_json::from_slice(&line)
                .map_err(|e| PullError::Refused(format!("malformed snapshot line: {e}")))?;
            match (line, source) {
                (
                    SnapshotLine::Header {
                        protocol,
                        instance_id,
                    },
                    None,
                ) => {
                    let unexpected = from.expected.is_some_and(|e| e != instance_id);
                    if protocol != PROTOCOL_VERSION || unexpected || instance_id == db.instance_id()
                    {
                        return Err(PullError::Refused(format!(
                            "snapshot of protocol {protocol} from {instance_id}, expected protocol {PROTOCOL_VERSION} from {}",
                            from.expected.map_or_else(|| "another node".to_string(), |e| e.to_string())
                        )));
                    }
                    source = Some(instance_id);
                }
                (_, None) | (SnapshotLine::Header { .. }, Some(_)) => {
                    return Err(PullError::Refused(
                        "snapshot without one header first".into(),
                    ));
                }
                (SnapshotLine::Change(change), Some(_))
                    if from
                        .only
                        .is_some_and(|only| !only.contains(&change.collective_id())) => {}
                (SnapshotLine::Change(change), Some(node)) => {
                    chunk.push(change);
                    received += 1;
                    if chunk.len() >= SNAPSHOT_CHUNK {
                        merge(db, node, &mut chunk, cursor).await?;
                    }
                }
                (SnapshotLine::End { position }, Some(node)) => {
                    merge(db, node, &mut chunk, position).await?;
                    return Ok(Copied {
                        position,
                        changes: received,
                    });
                }
            }
        }
    }
    Err(PullError::Refused("snapshot cut short".into()))
}

/// Merges a chunk of snapshot changes, the cursor left at `position`.
async fn merge(
    db: &PulseHandle,
    peer: InstanceId,
    chunk: &mut Vec<RemoteChange>,
    position: u64,
) -> Result<(), PullError> {
    let changes = std::mem::take(chunk);
    db.apply_remote_changes(peer, changes, position).await?;
    Ok(())
}

/// Reads a body, refusing one over `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, PullError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(PullError::Refused(format!("an answer over {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Splits a byte stream into lines, each at most [`MAX_LINE_BYTES`].
#[derive(Default)]
struct Lines {
    buffer: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) -> Result<(), PullError> {
        self.buffer.extend_from_slice(bytes);
        let pending = match self.buffer.iter().rposition(|b| *b == b'\n') {
            Some(last) => self.buffer.len() - last - 1,
            None => self.buffer.len(),
        };
        if pending > MAX_LINE_BYTES {
            return Err(PullError::Refused(format!(
                "a snapshot line over {MAX_LINE_BYTES} bytes"
            )));
        }
        Ok(())
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buffer.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
        line.pop();
        Some(line)
    }
}
