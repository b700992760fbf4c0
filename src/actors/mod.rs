//! The engine's actors (ractor on tokio).
//!
//! - [`router::RouterActor`]: resolves, spawns and supervises collective actors.
//! - [`collective::CollectiveActor`]: one per live collective; owns its indexes.
//! - [`storage::StorageActor`]: the only redb writer; group commit.

pub(crate) mod collective;
pub(crate) mod router;
pub(crate) mod storage;

use crate::error::{Error, Result};

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
