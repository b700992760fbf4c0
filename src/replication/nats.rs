//! The NATS JetStream transport (REPLICATION.md "NATS JetStream"): one
//! stream per cluster name, a subject per collective. Each node publishes
//! the changes of its own writes after they commit, from a persisted
//! outbox position, with message id `origin:sequence` (a republish after a
//! crash is deduplicated by the stream), and reads everyone's changes
//! through a durable consumer of its own, acknowledging a message only
//! after the change is committed here. Membership (node, address,
//! collectives held, last seen) is a JetStream key-value bucket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;

use super::peer::{copy_snapshot, Source};
use super::{ClusterMember, ClusterStatus, RemoteChange};
use crate::api::WeakHandle;
use crate::config::NatsConfig;
use crate::error::Error;
use crate::id::{InstanceId, Timestamp};
use crate::PulseHandle;

/// Own changes published per round.
const PUBLISH_BATCH: usize = 500;
/// Messages merged per commit at most.
const CONSUME_BATCH: usize = 500;
/// How long an idle publisher waits for a commit before looking again.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a node refreshes its membership entry.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Why a round with the cluster failed.
#[derive(Debug, thiserror::Error)]
enum ClusterError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{0}")]
    Engine(#[from] Error),
}

fn nats(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// The subject prefix and stream name of a cluster.
struct Names {
    stream: String,
    prefix: String,
    bucket: String,
}

impl Names {
    fn new(cluster: &str) -> Names {
        Names {
            stream: format!("PULSEDB_{cluster}"),
            prefix: format!("pulsedb.{cluster}"),
            bucket: format!("pulsedb_{cluster}_members"),
        }
    }

    fn subject(&self, change: &RemoteChange) -> String {
        format!("{}.{}", self.prefix, change.collective_id())
    }
}

/// Shared with the handle for its status.
pub(crate) type Status = Arc<Mutex<ClusterStatus>>;

/// Joins the cluster: connects, then publishes and consumes until the
/// handle closes. Returns the tasks to abort on close.
pub(crate) fn spawn(
    db: WeakHandle,
    config: NatsConfig,
    status: Status,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            match run(&db, &config, &status).await {
                Err(ClusterError::Engine(Error::Closed)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster replication failed; retrying");
                    set(&status, |s| {
                        s.connected = false;
                        s.last_error = Some(e.to_string());
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Ok(()) => return,
            }
        }
    })
    .abort_handle()
}

fn set(status: &Status, f: impl FnOnce(&mut ClusterStatus)) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
}

fn handle(db: &WeakHandle) -> Result<PulseHandle, ClusterError> {
    db.upgrade().ok_or(ClusterError::Engine(Error::Closed))
}

/// One connection's life: the stream and consumer ensured, then the
/// publisher, consumer and heartbeat side by side until one fails.
async fn run(db: &WeakHandle, config: &NatsConfig, status: &Status) -> Result<(), ClusterError> {
    let names = Names::new(&config.cluster);
    let client = async_nats::ConnectOptions::new()
        .name("pulsedb")
        .connect(config.urls.clone())
        .await
        .map_err(nats)?;
    let js = jetstream::new(client.clone());
    // As many copies as the NATS cluster has servers, up to three.
    let servers = 1 + client.server_info().connect_urls.len();
    let stream = js
        .get_or_create_stream(stream::Config {
            name: names.stream.clone(),
            subjects: vec![format!("{}.>", names.prefix)],
            storage: stream::StorageType::File,
            num_replicas: servers.clamp(1, 3),
            duplicate_window: Duration::from_secs(120),
            max_messages: config.max_messages.unwrap_or(-1),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut stream = stream;
    let me = handle(db)?.instance_id();
    let filter = match &config.collectives {
        Some(held) => held
            .iter()
            .map(|c| format!("{}.{c}", names.prefix))
            .collect(),
        None => vec![format!("{}.>", names.prefix)],
    };
    let durable = format!("node-{me}");
    let mut consumer = stream
        .get_or_create_consumer(
            &durable,
            consumer::pull::Config {
                durable_name: Some(durable.clone()),
                filter_subjects: filter,
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(nats)?;
    let members = js
        .create_key_value(kv::Config {
            bucket: names.bucket.clone(),
            history: 1,
            num_replicas: servers.clamp(1, 3),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    refresh_members(&members, status).await?;
    // Away longer than the stream remembers (or new to a stream that has
    // dropped its first messages): what was dropped comes from a member.
    let first = stream.info().await.map_err(nats)?.state.first_sequence;
    let floor = consumer
        .info()
        .await
        .map_err(nats)?
        .ack_floor
        .stream_sequence;
    if first > floor.saturating_add(1) {
        copy_from_member(db, config, me, status).await?;
    }
    set(status, |s| {
        s.connected = true;
        s.last_error = None;
    });
    tokio::select! {
        r = publish(db, &js, &names, me, status) => r,
        r = consume(db, consumer, status) => r,
        r = heartbeat(db, &members, config, status) => r,
    }
}

/// Publishes this node's own changes from the outbox position on, and
/// moves the position once the stream has acknowledged them.
async fn publish(
    db: &WeakHandle,
    js: &jetstream::Context,
    names: &Names,
    me: InstanceId,
    status: &Status,
) -> Result<(), ClusterError> {
    let mut outbox = {
        let db = handle(db)?;
        db.outbox_position().await?
    };
    loop {
        let (changes, next) = {
            let db = handle(db)?;
            db.own_changes(outbox, PUBLISH_BATCH, PUBLISH_WAIT).await?
        };
        if next == outbox {
            continue;
        }
        let mut acks = Vec::with_capacity(changes.len());
        for (sequence, change) in &changes {
            let payload = serde_json::to_vec(change).map_err(nats)?;
            // This node's entry: another node's state (a reinforcement of
            // its record, say) is published under this node's id.
            let id = format!("{me}:{sequence}");
            let ack = js
                .send_publish(
                    names.subject(change),
                    jetstream::message::PublishMessage::build()
                        .message_id(id)
                        .payload(payload.into()),
                )
                .await
                .map_err(nats)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(nats)?;
        }
        handle(db)?.set_outbox_position(next).await?;
        outbox = next;
        set(status, |s| {
            s.outbox = next;
            s.published += changes.len() as u64;
        });
    }
}

/// Merges everyone's changes as they come, acknowledging each message
/// after its change is committed here.
async fn consume(
    db: &WeakHandle,
    consumer: consumer::PullConsumer,
    status: &Status,
) -> Result<(), ClusterError> {
    let mut messages = consumer.messages().await.map_err(nats)?;
    loop {
        let Some(first) = messages.next().await else {
            return Err(ClusterError::Nats("the consumer's stream ended".into()));
        };
        let mut batch = vec![first.map_err(nats)?];
        // Whatever else has arrived goes into the same commit.
        while batch.len() < CONSUME_BATCH {
            match tokio::time::timeout(Duration::ZERO, messages.next()).await {
                Ok(Some(m)) => batch.push(m.map_err(nats)?),
                _ => break,
            }
        }
        let mut changes = Vec::with_capacity(batch.len());
        let mut refused = 0u64;
        for m in &batch {
            // Its own changes come back too: merging them changes nothing.
            match serde_json::from_slice::<RemoteChange>(&m.payload) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    refused += 1;
                    tracing::warn!(subject = %m.subject, error = %e, "malformed change dropped");
                }
            }
        }
        let received = changes.len() as u64;
        if !changes.is_empty() {
            let db = handle(db)?;
            if let Err(e) = db.merge_remote_changes(changes.clone()).await {
                if !matches!(e, Error::Validation(_)) {
                    return Err(e.into());
                }
                // One bad change must not hold the others back: merge them
                // one by one and drop the ones refused.
                for change in changes {
                    if let Err(e) = db.merge_remote_changes(vec![change]).await {
                        if !matches!(e, Error::Validation(_)) {
                            return Err(e.into());
                        }
                        refused += 1;
                        tracing::warn!(error = %e, "change refused");
                    }
                }
            }
        }
        for m in &batch {
            m.ack().await.map_err(nats)?;
        }
        set(status, |s| {
            s.received += received;
            s.refused += refused;
            s.last_received = Some(Timestamp::now());
        });
    }
}

/// Refreshes this node's membership entry and its view of the others.
async fn heartbeat(
    db: &WeakHandle,
    members: &kv::Store,
    config: &NatsConfig,
    status: &Status,
) -> Result<(), ClusterError> {
    loop {
        let me = handle(db)?.instance_id();
        let entry = ClusterMember {
            instance_id: me,
            address: config.advertise.clone(),
            collectives: config.collectives.clone(),
            last_seen: Timestamp::now(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(nats)?;
        members
            .put(me.to_string(), bytes.into())
            .await
            .map_err(nats)?;
        refresh_members(members, status).await?;
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Reads every member's entry into the status.
async fn refresh_members(members: &kv::Store, status: &Status) -> Result<(), ClusterError> {
    let mut keys = members.keys().await.map_err(nats)?;
    let mut found = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(nats)?;
        if let Some(bytes) = members.get(key).await.map_err(nats)? {
            if let Ok(m) = serde_json::from_slice::<ClusterMember>(&bytes) {
                found.push(m);
            }
        }
    }
    set(status, |s| s.members = found);
    Ok(())
}

/// Copies the snapshot of a live member holding (at least) what this node
/// holds.
async fn copy_from_member(
    db: &WeakHandle,
    config: &NatsConfig,
    me: InstanceId,
    status: &Status,
) -> Result<(), ClusterError> {
    let members = status.lock().map(|s| s.members.clone()).unwrap_or_default();
    let window = i64::try_from(3 * HEARTBEAT.as_millis()).unwrap_or(i64::MAX);
    let fresh = Timestamp(Timestamp::now().0.saturating_sub(window));
    let covers = |m: &ClusterMember| match (&m.collectives, &config.collectives) {
        (None, _) => true,
        (Some(theirs), Some(mine)) => mine.iter().all(|c| theirs.contains(c)),
        (Some(_), None) => false,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(nats)?;
    let db = handle(db)?;
    for m in members
        .iter()
        .filter(|m| m.instance_id != me && m.last_seen >= fresh && covers(m))
    {
        let Some(url) = &m.address else { continue };
        tracing::info!(member = %url, "behind the stream: copying a member's snapshot");
        let from = Source {
            url,
            token: config.token.as_deref(),
            expected: Some(m.instance_id),
            only: config.collectives.as_deref(),
        };
        match copy_snapshot(&client, &from, &db, 0).await {
            Ok(copied) => {
                set(status, |s| {
                    s.snapshots += 1;
                    s.received += copied.changes;
                });
                return Ok(());
            }
            Err(e) => tracing::warn!(member = %url, error = %e, "snapshot copy failed"),
        }
    }
    Err(ClusterError::Nats(
        "behind the stream and no live member to copy a snapshot from".into(),
    ))
}
