//! [`EverySecond`]: log lines a client can trigger on every request,
//! written at most once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// One kind of log line a client can trigger on every request (a provider
/// down, a limit exceeded in log-only mode, a store failing): written at
/// most once a second of monotonic time, with the number of lines held
/// back since the last one, so that a flood of requests cannot flood the
/// log. Keep one per reason, in a `static`.
///
/// ```
/// use auth_core::step::EverySecond;
///
/// static PROVIDER_DOWN: EverySecond = EverySecond::new();
/// let mut written = 0;
/// for _ in 0..1_000 {
///     PROVIDER_DOWN.log(|held_back| {
///         written += 1;
///         tracing::warn!(held_back, "identity provider unavailable");
///     });
/// }
/// assert_eq!(written, 1);
/// ```
#[derive(Debug)]
pub struct EverySecond {
    /// Milliseconds after the process's first use of any of these, plus
    /// one, of the last line written (0: never).
    last: AtomicU64,
    held: AtomicU64,
}

impl EverySecond {
    /// Nothing written yet.
    pub const fn new() -> Self {
        EverySecond {
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number of lines held back since the last one,
    /// unless a line was written less than a second ago (then counts this
    /// one as held back).
    pub fn log(&self, log: impl FnOnce(u64)) {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis())
            .unwrap_or(u64::MAX);
        self.log_at(now, log);
    }

    /// [`log`](Self::log) at `now`, milliseconds on a monotonic clock.
    fn log_at(&self, now: u64, log: impl FnOnce(u64)) {
        let now = now.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1_000;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log(self.held.swap(0, Ordering::Relaxed));
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An [`EverySecond`] per reason, for lines whose reason varies (at most
/// [`PerReason::MAX_REASONS`] reasons apart; more share one).
pub(crate) struct PerReason {
    reasons: Mutex<Vec<(Box<str>, EverySecond)>>,
    others: EverySecond,
}

impl PerReason {
    /// Reasons told apart.
    pub(crate) const MAX_REASONS: usize = 32;

    pub(crate) const fn new() -> Self {
        PerReason {
            reasons: Mutex::new(Vec::new()),
            others: EverySecond::new(),
        }
    }

    /// [`EverySecond::log`] for `reason`.
    pub(crate) fn log(&self, reason: &str, log: impl FnOnce(u64)) {
        let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        let at = match reasons.iter().position(|(r, _)| &**r == reason) {
            Some(at) => Some(at),
            None if reasons.len() < Self::MAX_REASONS => {
                reasons.push((reason.into(), EverySecond::new()));
                Some(reasons.len() - 1)
            }
            None => None,
        };
        match at {
            Some(at) => reasons[at].1.log(log),
            None => self.others.log(log),
        }
    }
}

impl Default for EverySecond {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_held_back() {
        let every = EverySecond::new();
        let mut lines = Vec::new();
        for at in [0, 1, 500, 999, 1_000, 1_500, 1_999, 2_000, 10_000] {
            every.log_at(at, |held| lines.push((at, held)));
        }
        assert_eq!(lines, [(0, 0), (1_000, 3), (2_000, 2), (10_000, 0)]);
    }

    #[test]
    fn reasons_apart_up_to_a_bound() {
        let per_reason = PerReason::new();
        let mut lines = 0;
        for round in 0..3 {
            for reason in 0..PerReason::MAX_REASONS + 10 {
                per_reason.log(&format!("reason {reason}"), |_| lines += 1);
            }
            let _ = round;
        }
        // One line per reason told apart, one for the others together.
        assert_eq!(lines, PerReason::MAX_REASONS + 1);
    }
}
