//! The engine's actors (ractor on tokio).
//!
//! - [`router::RouterActor`]: resolves, spawns and supervises collective actors.
//! - [`collective::CollectiveActor`]: one per live collective; owns its indexes.
//! - [`storage::StorageActor`]: the only redb writer; group commit.

pub(crate) mod collective;
pub(crate) mod router;
pub(crate) mod storage;

use std::sync::{Arc, Weak};

use ractor::RpcReplyPort;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{Error, Result};
use crate::storage::RedbStorage;

/// A caller's share of the in-flight bound. The call holds one clone and
/// every piece of work it queues (a write, a blocking task) holds another,
/// so the slot is freed only when the work is done — not when a caller gives
/// up and drops its future while its work is still queued.
pub(crate) type WorkPermit = Arc<OwnedSemaphorePermit>;

/// Where a queued write's answer goes, with the permit it holds until then.
pub(crate) struct Reply<T> {
    port: RpcReplyPort<T>,
    _permit: Option<WorkPermit>,
}

impl<T> Reply<T> {
    pub(crate) fn new(port: RpcReplyPort<T>, permit: Option<WorkPermit>) -> Reply<T> {
        Reply {
            port,
            _permit: permit,
        }
    }

    /// Answers the caller (if still waiting) and frees the permit.
    pub(crate) fn send(self, answer: T) {
        let _ = self.port.send(answer);
    }
}

/// The actors' reference to the storage layer. Only the handle owns the
/// database: each piece of work upgrades this for its own duration, so once
/// the actors are stopped and the work is done, `close` holds the last
/// reference and releases the file deterministically.
pub(crate) type StorageRef = Weak<RedbStorage>;

/// The storage layer for one piece of work, or `Closed` once the handle has
/// released it.
pub(crate) fn upgrade(storage: &StorageRef) -> Result<Arc<RedbStorage>> {
    storage.upgrade().ok_or(Error::Closed)
}

/// Runs blocking work (redb, FAISS) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(Error::ActorUnavailable {
            actor: if join.is_panic() {
                "blocking task (panicked)"
            } else {
                "blocking task"
            },
        }),
    }
}

/// Maps a failed actor call (actor gone, reply dropped) to an error.
pub(crate) fn call_failed<E>(actor: &'static str) -> impl FnOnce(E) -> Error {
    move |_| Error::ActorUnavailable { actor }
}
