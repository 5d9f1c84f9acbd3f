//! The generic cell rate algorithm: one timestamp per (rule, caller), the
//! *theoretical arrival time* (TAT) of the next request at the sustained
//! rate. The same integer arithmetic runs here (in-process store) and in
//! `redis/gcra.lua` (shared store); a property test holds them to the same
//! decisions.
//!
//! With `T` the emission interval (window / limit, rounded up to the
//! microsecond) and a burst of `b` requests:
//!
//! ```text
//! tat      = max(stored or now, now)
//! next     = tat + T
//! allowed  = next - now <= b * T
//! remaining (allowed) = (b * T - (next - now)) / T      (rounded down)
//! reset    = next - now (allowed), tat - now (denied)   (until the bucket is full)
//! retry    = next - now - b * T (denied)                 (until one more fits)
//! ```
//!
//! A denied request stores nothing; an allowed one stores `next`, which can
//! be forgotten at `next` (the bucket is full again: the same as no entry).

/// How one request fares against one counter: what a store answers for
/// each counter of a [`Batch`](crate::Batch) (microseconds throughout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Whether the rule lets the request through.
    pub(crate) allowed: bool,
    /// The TAT to store if the whole request is allowed.
    pub(crate) next: u64,
    /// Requests left right after this one (0 when denied).
    pub(crate) remaining: u64,
    /// Microseconds until the counter is back to a full burst.
    pub(crate) reset: u64,
    /// Microseconds until a request would be allowed (0 when allowed).
    pub(crate) retry: u64,
}

impl Cell {
    /// A store's answer for one counter: whether it allows the request,
    /// the requests left after it, and the microseconds until the counter
    /// is full again and until a request would pass (0 when allowed).
    pub fn new(allowed: bool, remaining: u64, reset: u64, retry: u64) -> Self {
        Cell {
            allowed,
            next: 0,
            remaining,
            reset,
            retry,
        }
    }

    /// Whether the counter lets the request through.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The counter's new timestamp (the theoretical arrival time, µs since
    /// the epoch) to store when every counter of the request allows it;
    /// a stored timestamp can be forgotten once the clock passes it.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Requests left right after this one (0 when denied).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Microseconds until the counter is back to a full burst.
    pub fn reset(&self) -> u64 {
        self.reset
    }

    /// Microseconds until a request would be allowed (0 when allowed).
    pub fn retry(&self) -> u64 {
        self.retry
    }
}

/// One rule's arithmetic: the emission interval and the burst, in
/// microseconds and requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Emission interval `T`, at least 1 µs.
    pub(crate) interval: u64,
    /// Burst `b`, at least 1.
    pub(crate) burst: u64,
}

impl Rate {
    /// The tolerance `b * T`.
    pub(crate) fn tolerance(self) -> u64 {
        self.burst.saturating_mul(self.interval)
    }

    /// The request at `now` (µs) against a counter that stored `stored`.
    pub(crate) fn check(self, stored: Option<u64>, now: u64) -> Cell {
        let tat = stored.map_or(now, |stored| stored.max(now));
        let next = tat.saturating_add(self.interval);
        let ahead = next - now;
        let tolerance = self.tolerance();
        if ahead <= tolerance {
            Cell {
                allowed: true,
                next,
                remaining: (tolerance - ahead) / self.interval,
                reset: ahead,
                retry: 0,
            }
        } else {
            Cell {
                allowed: false,
                next,
                remaining: 0,
                reset: tat - now,
                retry: ahead - tolerance,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        // 3 per 9 s: T = 3 s, burst 3.
        let rate = Rate {
            interval: 3 * SECOND,
            burst: 3,
        };
        let mut stored = None;
        let now = 1_000 * SECOND;
        for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
            let cell = rate.check(stored, now);
            assert!(cell.allowed, "request {i}");
            assert_eq!(cell.remaining, remaining);
            assert_eq!(cell.reset, (i as u64 + 1) * 3 * SECOND);
            stored = Some(cell.next);
        }
        let denied = rate.check(stored, now);
        assert!(!denied.allowed);
        assert_eq!((denied.retry, denied.reset), (3 * SECOND, 9 * SECOND));
        // One interval later, one more fits.
        assert!(rate.check(stored, now + 3 * SECOND).allowed);
        assert!(!rate.check(stored, now + 3 * SECOND - 1).allowed);
        // A full window later, the whole burst again.
        let later = rate.check(stored, now + 9 * SECOND);
        assert_eq!((later.allowed, later.remaining), (true, 2));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let rate = Rate {
            interval: u64::MAX / 2,
            burst: 3,
        };
        let cell = rate.check(Some(u64::MAX - 5), u64::MAX - 10);
        assert_eq!((cell.next, cell.allowed, cell.reset), (u64::MAX, true, 10));
        let rate = Rate {
            interval: 1,
            burst: u64::MAX,
        };
        assert!(rate.check(None, 0).allowed);
    }
}
