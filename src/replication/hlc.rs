//! Hybrid logical clock and versions (REPLICATION.md "Versions and
//! conflicts").
//!
//! A reading is physical milliseconds with a logical counter. The clock
//! never goes back and moves past every version it observes, so a node
//! whose wall clock is slow still orders its next writes after everything
//! it has seen. A [`Version`] pairs a reading with the writing instance:
//! versions are totally ordered, on every node the same.

use serde::{Deserialize, Serialize};

use crate::id::InstanceId;

/// One clock reading: milliseconds since the Unix epoch, then a counter
/// that orders readings within one millisecond. Compared as a pair.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Physical part, milliseconds since the Unix epoch.
    pub millis: u64,
    /// Logical part.
    pub counter: u32,
}

/// The version of a replicated row: the writer's clock reading, then its
/// instance id as the tie-break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// When, by the writer's hybrid clock.
    pub hlc: Hlc,
    /// Who wrote it.
    pub origin: InstanceId,
}

/// A hybrid logical clock: [`HlcClock::tick`] for each local write,
/// [`HlcClock::observe`] for each version received.
#[derive(Debug, Clone, Copy, Default)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reading for a local write at wall time `physical_ms`: later than
    /// every reading given or observed before.
    pub fn tick(&mut self, physical_ms: u64) -> Hlc {
        self.last = if physical_ms > self.last.millis {
            Hlc {
                millis: physical_ms,
                counter: 0,
            }
        } else {
            self.after_last()
        };
        self.last
    }

    /// Moves the clock past `seen` (a version received from another node).
    pub fn observe(&mut self, seen: Hlc) {
        if seen > self.last {
            self.last = seen;
        }
    }

    /// The latest reading given or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// The reading just after the last one: the next counter, or the next
    /// millisecond when the counter is exhausted.
    fn after_last(&self) -> Hlc {
        match self.last.counter.checked_add(1) {
            Some(counter) => Hlc {
                millis: self.last.millis,
                counter,
            },
            // The last reading of time itself stays the last.
            None if self.last.millis == u64::MAX => self.last,
            None => Hlc {
                millis: self.last.millis + 1,
                counter: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_only_grow_even_when_the_wall_clock_goes_back() {
        let mut c = HlcClock::new();
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(900);
        let e = c.tick(1001);
        assert!(a < b && b < d && d < e);
        assert_eq!(
            e,
            Hlc {
                millis: 1001,
                counter: 0
            }
        );
    }

    #[test]
    fn a_slow_clock_orders_its_writes_after_what_it_has_seen() {
        let mut slow = HlcClock::new();
        slow.observe(Hlc {
            millis: 5000,
            counter: 7,
        });
        let next = slow.tick(10);
        assert!(
            next > Hlc {
                millis: 5000,
                counter: 7
            }
        );
        // Observing an older reading changes nothing.
        slow.observe(Hlc {
            millis: 1,
            counter: 0,
        });
        assert_eq!(slow.last(), next);
    }

    #[test]
    fn versions_order_by_reading_then_origin() {
        let (a, b) = (
            InstanceId::from_bytes([1; 16]),
            InstanceId::from_bytes([2; 16]),
        );
        let early = Hlc {
            millis: 1,
            counter: 0,
        };
        let late = Hlc {
            millis: 1,
            counter: 1,
        };
        let v = |hlc, origin| Version { hlc, origin };
        assert!(v(early, b) < v(late, a));
        assert!(v(late, a) < v(late, b));
    }

    #[test]
    fn the_end_of_time_does_not_overflow() {
        let mut c = HlcClock::new();
        let end = Hlc {
            millis: u64::MAX,
            counter: u32::MAX,
        };
        c.observe(end);
        assert_eq!(c.tick(0), end);
    }

    #[test]
    fn an_exhausted_counter_moves_to_the_next_millisecond() {
        let mut c = HlcClock::new();
        c.observe(Hlc {
            millis: 7,
            counter: u32::MAX,
        });
        assert_eq!(
            c.tick(0),
            Hlc {
                millis: 8,
                counter: 0
            }
        );
    }
}
