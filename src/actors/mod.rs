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

/// Runs long background work (a graph rebuild) on a thread of its own at
/// background CPU priority, so that searches and writes on the same cores
/// go first: on a machine whose cores are busy the work takes longer
/// instead of delaying them. The thread ends with the work.
pub(crate) async fn in_background<T, F>(name: &str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("pulsedb-{name}"))
        .spawn(move || {
            lower_this_threads_priority();
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return Err(Error::ActorUnavailable {
            actor: "background thread (could not start)",
        });
    }
    rx.await.unwrap_or(Err(Error::ActorUnavailable {
        actor: "background thread (panicked)",
    }))
}

/// Nice value of background threads: under contention such a thread gets
/// about a tenth of the share of a normal one (Linux CFS weights 110 and
/// 1 024), and all of an otherwise idle core.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority (Linux applies `setpriority`
/// to one thread when given its thread id). Best effort: a refusal leaves
/// the thread at normal priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on this
        // thread's id changes only this thread's nice value.
        let refused = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) != 0
        };
        if refused {
            tracing::debug!("background thread keeps its priority");
        }
    }
}

/// Maps a failed actor call (actor gone, reply dropped) to an error.
pub(crate) fn call_failed<E>(actor: &'static str) -> impl FnOnce(E) -> Error {
    move |_| Error::ActorUnavailable { actor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn this_threads_nice() -> libc::c_int {
        // SAFETY: plain syscalls on this thread's id.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    /// Background work runs on its own thread, at a lower priority than
    /// the caller's, and never changes the caller's.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn background_work_runs_at_a_lower_priority() {
        let caller = this_threads_nice();
        let (name, nice) = in_background("probe", || {
            let name = std::thread::current().name().map(str::to_owned);
            Ok((name, this_threads_nice()))
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("pulsedb-probe"));
        assert_eq!(nice, (caller + BACKGROUND_NICE).min(19));
        assert_eq!(this_threads_nice(), caller);
    }

    #[tokio::test]
    async fn background_errors_and_panics_are_answers() {
        let failed: Result<()> = in_background("fails", || Err(Error::Closed)).await;
        assert!(matches!(failed, Err(Error::Closed)));
        let panicked: Result<()> = in_background("panics", || panic!("probe")).await;
        assert!(matches!(panicked, Err(Error::ActorUnavailable { .. })));
    }
}
