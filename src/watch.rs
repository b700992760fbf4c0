//! Change notification: in-process watch streams over the change log.
//!
//! Publishing never waits: each subscriber has a bounded buffer; when it is
//! full the newest event is dropped for that subscriber and counted in
//! [`WatchStream::missed`]. Every event carries its change-log `sequence`, so
//! a subscriber that missed events catches up exactly with `poll_changes`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::collective::CollectiveId;
use crate::event::{WatchEvent, WatchFilter};

/// A live feed of one collective's experience events.
///
/// Ends when the collective is deleted or the database is closed.
#[derive(Debug)]
pub struct WatchStream {
    receiver: mpsc::Receiver<WatchEvent>,
    missed: Arc<AtomicU64>,
}

impl WatchStream {
    /// Events dropped for this subscriber because its buffer was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl futures_core::Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.receiver.poll_recv(cx)
    }
}

#[derive(Debug)]
struct Subscriber {
    filter: WatchFilter,
    sender: mpsc::Sender<WatchEvent>,
    missed: Arc<AtomicU64>,
}

/// The subscriber registry, shared by the handle (subscribe) and the storage
/// actor (publish after each commit).
#[derive(Debug)]
pub(crate) struct WatchHub {
    subscribers: Mutex<HashMap<CollectiveId, Vec<Subscriber>>>,
    /// Counts commits: long polls of the change log wait on it.
    commits: tokio::sync::watch::Sender<u64>,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub {
            subscribers: Mutex::default(),
            commits: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl WatchHub {
    /// Tells long polls that a commit finished.
    pub(crate) fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after each commit.
    pub(crate) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub(crate) fn subscribe(
        &self,
        collective: CollectiveId,
        filter: WatchFilter,
        buffer: usize,
    ) -> WatchStream {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let sub = Subscriber {
            filter,
            sender,
            missed: missed.clone(),
        };
        self.lock().entry(collective).or_default().push(sub);
        WatchStream { receiver, missed }
    }

    /// Delivers one write's committed events, in sequence order, without
    /// ever waiting. The writer logs events without the experience (copying
    /// each record costs as much as a B-tree insert); `complete` puts it in,
    /// and runs only when someone watches a collective of the events.
    pub(crate) fn publish(
        &self,
        events: &mut [WatchEvent],
        complete: impl FnOnce(&mut [WatchEvent]),
    ) {
        let mut subs = self.lock();
        if !events.iter().any(|e| subs.contains_key(&e.collective_id)) {
            return;
        }
        complete(events);
        for event in events.iter() {
            let Some(list) = subs.get_mut(&event.collective_id) else {
                continue;
            };
            list.retain(|s| {
                if !s.filter.matches(event) {
                    return !s.sender.is_closed();
                }
                match s.sender.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.missed.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            // Forget a collective nobody watches any more, so its writes go
            // back to skipping `complete`.
            if list.is_empty() {
                subs.remove(&event.collective_id);
            }
        }
    }

    /// Ends every stream of a collective.
    pub(crate) fn close_collective(&self, collective: CollectiveId) {
        self.lock().remove(&collective);
    }

    /// Ends every stream.
    pub(crate) fn close_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CollectiveId, Vec<Subscriber>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every mutation is a single call), so a poisoned lock is usable.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WatchEventType;
    use crate::experience::ExperienceId;
    use crate::id::Timestamp;

    fn event(collective: CollectiveId) -> WatchEvent {
        WatchEvent {
            sequence: 1,
            experience_id: ExperienceId::new(),
            collective_id: collective,
            event_type: WatchEventType::Created,
            timestamp: Timestamp::now(),
            experience: None,
        }
    }

    /// Publishes one event and says whether `complete` ran.
    fn completes(hub: &WatchHub, collective: CollectiveId) -> bool {
        let mut ran = false;
        hub.publish(&mut [event(collective)], |_| ran = true);
        ran
    }

    #[test]
    fn events_are_completed_only_while_someone_watches() {
        let hub = WatchHub::default();
        let (watched, other) = (CollectiveId::new(), CollectiveId::new());
        assert!(!completes(&hub, watched), "nobody watches yet");
        let stream = hub.subscribe(watched, WatchFilter::default(), 4);
        assert!(completes(&hub, watched));
        assert!(!completes(&hub, other));
        // The publish after the last stream is dropped forgets the
        // collective; later writes skip `complete` again.
        drop(stream);
        completes(&hub, watched);
        assert!(!completes(&hub, watched));
    }
}
