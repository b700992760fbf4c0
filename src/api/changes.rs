//! Watch streams and the change log on [`PulseHandle`].

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::collective::CollectiveId;
use crate::error::{NotFoundError, Result};
use crate::event::{WatchEvent, WatchFilter};
use crate::storage::StorageRead;
use crate::validate;
use crate::watch::WatchStream;

/// Most events one `poll_changes` call returns.
pub const MAX_POLL_EVENTS: usize = 1000;

impl PulseHandle {
    /// A live stream of a collective's experience events.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed`, or a storage fault.
    pub async fn watch_experiences(&self, c: CollectiveId) -> Result<WatchStream> {
        self.watch_experiences_filtered(c, WatchFilter::default())
            .await
    }

    /// A live stream of the events passing `filter`.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed`, or a storage fault.
    pub async fn watch_experiences_filtered(
        &self,
        c: CollectiveId,
        filter: WatchFilter,
    ) -> Result<WatchStream> {
        let e = &self.engine;
        e.run(
            "watch_experiences",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                // Subscribe first, then look: a delete that commits after
                // the look ends the stream (its streams are closed after its
                // commit); one that committed before is seen here.
                let stream = e.watch.subscribe(c, filter, e.config.watch.buffer_size);
                if e.read(move |s| s.get_collective(c)).await?.is_none() {
                    e.watch.close_collective(c);
                    return Err(NotFoundError::Collective(c).into());
                }
                Ok(stream)
            },
        )
        .await
    }

    /// The last change-log sequence (0 on a new database).
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn get_current_sequence(&self) -> Result<u64> {
        let e = &self.engine;
        e.run(
            "get_current_sequence",
            None,
            Access::Read,
            Admission::Wait,
            async { e.read(|s| s.current_sequence()).await },
        )
        .await
    }

    /// Experience events after `since_seq` (at most 1 000) and the position
    /// to poll from next, which also covers the other entries scanned. With
    /// nothing new, the position given is returned.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn poll_changes(&self, since_seq: u64) -> Result<(Vec<WatchEvent>, u64)> {
        let e = &self.engine;
        e.run("poll_changes", None, Access::Read, Admission::Wait, async {
            e.read(move |s| s.poll_events(since_seq, MAX_POLL_EVENTS))
                .await
        })
        .await
    }

    /// As [`PulseHandle::poll_changes`], returning at most `limit` events.
    ///
    /// # Errors
    /// `Validation` (`limit` in 1 ..= 1000), `Closed` or a storage fault.
    pub async fn poll_changes_batch(
        &self,
        since_seq: u64,
        limit: usize,
    ) -> Result<(Vec<WatchEvent>, u64)> {
        let e = &self.engine;
        e.run(
            "poll_changes_batch",
            None,
            Access::Read,
            Admission::Wait,
            async {
                validate::result_count("limit", limit)?;
                e.read(move |s| s.poll_events(since_seq, limit)).await
            },
        )
        .await
    }
}
