//! When Redis is not asked after a failure, for the backoff: on one
//! server, the whole store; on a cluster, the slots of the primary that
//! failed, as the slot map says (the whole store while no map is known),
//! so that one dead or stuck primary sends only its own callers to the
//! fallback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::slots::{Range, SLOTS};

/// What a failed call puts to sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outage {
    /// The whole store (one server's call, a failure to connect).
    Store,
    /// A cluster's call on this slot: its primary's slots.
    Slot(u16),
}

pub(super) struct Backoff {
    length: u64,
    /// A cluster: the least time between two asks for a slot map.
    map_every: u64,
    /// The clock of the deadlines below: milliseconds since then.
    started: Instant,
    /// Before this, the whole store is not asked.
    whole: AtomicU64,
    /// A cluster: before `slots[s]`, slot `s` is not asked.
    slots: Option<Box<[AtomicU64]>>,
    /// A cluster: the slot map as a node last gave it.
    map: Mutex<Option<Arc<[Range]>>>,
    /// A cluster: before this, no new slot map is asked for.
    next_map: AtomicU64,
}

impl Backoff {
    /// A backoff of `length`; a cluster's (with slots) asks for a slot map
    /// at most once per `map_every`.
    pub(super) fn new(length: Duration, map_every: Option<Duration>) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Backoff {
            length: millis(length),
            map_every: map_every.map_or(u64::MAX, millis),
            started: Instant::now(),
            whole: AtomicU64::new(0),
            slots: map_every.map(|_| (0..SLOTS).map(|_| AtomicU64::new(0)).collect()),
            map: Mutex::new(None),
            next_map: AtomicU64::new(0),
        }
    }

    /// The backoff's clock: milliseconds since it was made (read once per
    /// request, for the checks below).
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the whole store is in its backoff at `now`.
    pub(super) fn whole_asleep(&self, now: u64) -> bool {
        now < self.whole.load(Ordering::Relaxed)
    }

    /// Whether any of `slots` of a cluster is in its backoff at `now` (the
    /// whole store's aside).
    pub(super) fn slots_asleep(&self, now: u64, slots: impl IntoIterator<Item = u16>) -> bool {
        let Some(asleep) = &self.slots else {
            return false;
        };
        slots.into_iter().any(|slot| {
            asleep
                .get(usize::from(slot))
                .is_some_and(|until| now < until.load(Ordering::Relaxed))
        })
    }

    /// A call failed at `now`: the whole store goes to sleep, or the slots
    /// of the primary that serves the failed call's slot (the whole store
    /// when the slot map does not say).
    pub(super) fn failed(&self, outage: Outage, now: u64) {
        if self.length == 0 {
            return;
        }
        let until = now.saturating_add(self.length);
        let (Outage::Slot(slot), Some(asleep)) = (outage, &self.slots) else {
            self.whole.fetch_max(until, Ordering::Relaxed);
            return;
        };
        let Some(this) = asleep.get(usize::from(slot)) else {
            self.whole.fetch_max(until, Ordering::Relaxed);
            return;
        };
        // Another request's failure put it to sleep a moment ago.
        if this.fetch_max(until, Ordering::Relaxed) > now {
            return;
        }
        let map = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let primary = map
            .as_deref()
            .and_then(|map| map.iter().find(|range| range.contains(slot)));
        let (Some(map), Some(primary)) = (map.as_deref(), primary) else {
            // Whose slot it is, unknown: every slot.
            self.whole.fetch_max(until, Ordering::Relaxed);
            return;
        };
        for range in map.iter().filter(|range| range.primary == primary.primary) {
            for slot in asleep[usize::from(range.start)..=usize::from(range.end)].iter() {
                slot.fetch_max(until, Ordering::Relaxed);
            }
        }
    }

    /// Whether a new slot map is to be asked for (a cluster, at most once
    /// per `map_every`); if so, the next is not due before then.
    pub(super) fn map_due(&self) -> bool {
        if self.slots.is_none() {
            return false;
        }
        let now = self.now();
        let due = self.next_map.load(Ordering::Relaxed);
        now >= due
            && self
                .next_map
                .compare_exchange(
                    due,
                    now.saturating_add(self.map_every),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// The slot map a node gave.
    pub(super) fn set_map(&self, map: Vec<Range>) {
        *self.map.lock().unwrap_or_else(PoisonError::into_inner) = Some(map.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::slots::{parse, tests::range};
    use redis::Value;

    /// Whether a request on `slots` is not to ask Redis.
    fn asleep<const N: usize>(backoff: &Backoff, slots: [u16; N]) -> bool {
        let now = backoff.now();
        backoff.whole_asleep(now) || backoff.slots_asleep(now, slots)
    }

    fn cluster() -> Backoff {
        let backoff = Backoff::new(Duration::from_secs(60), Some(Duration::from_secs(60)));
        let map = Value::Array(vec![
            range(0, 5_460, 7000),
            range(5_461, 10_922, 7002),
            range(10_923, 16_383, 7000),
        ]);
        backoff.set_map(parse(&map).unwrap());
        backoff
    }

    #[test]
    fn a_failed_slot_puts_its_primary_to_sleep_and_no_other() {
        let backoff = cluster();
        assert!(!asleep(&backoff, [0, 6_000, 16_383]));
        backoff.failed(Outage::Slot(3), backoff.now());
        // 7000's two ranges; 7002's slots are still asked.
        for slot in [0, 3, 5_460, 10_923, 16_383] {
            assert!(asleep(&backoff, [slot]), "{slot}");
        }
        for slot in [5_461, 8_000, 10_922] {
            assert!(!asleep(&backoff, [slot]), "{slot}");
        }
        // A request with a slot of each: asleep.
        assert!(asleep(&backoff, [6_000, 1]));
        assert!(!backoff.whole_asleep(backoff.now()));
    }

    #[test]
    fn without_a_map_or_a_slot_the_whole_store_sleeps() {
        let unmapped = Backoff::new(Duration::from_secs(60), Some(Duration::from_secs(60)));
        unmapped.failed(Outage::Slot(3), unmapped.now());
        assert!(unmapped.whole_asleep(unmapped.now()) && asleep(&unmapped, [8_000]));

        let partial = Backoff::new(Duration::from_secs(60), Some(Duration::from_secs(60)));
        partial.set_map(parse(&Value::Array(vec![range(0, 100, 7000)])).unwrap());
        partial.failed(Outage::Slot(200), partial.now());
        assert!(partial.whole_asleep(partial.now()));

        let cluster = cluster();
        cluster.failed(Outage::Store, cluster.now());
        assert!(cluster.whole_asleep(cluster.now()) && asleep(&cluster, [8_000]));

        let one = Backoff::new(Duration::from_secs(60), None);
        assert!(!asleep(&one, [0]));
        one.failed(Outage::Slot(3), one.now());
        assert!(one.whole_asleep(one.now()));
        assert!(!one.map_due(), "one server has no slot map");
    }

    #[test]
    fn the_backoff_ends() {
        // 60 s from the failure, to the millisecond.
        let backoff = cluster();
        let at = backoff.now();
        backoff.failed(Outage::Slot(3), at);
        backoff.failed(Outage::Store, at);
        let end = at + 60_000;
        assert!(backoff.whole_asleep(end - 1) && backoff.slots_asleep(end - 1, [3]));
        assert!(!backoff.whole_asleep(end) && !backoff.slots_asleep(end, [3]));
        // None at all.
        let none = Backoff::new(Duration::ZERO, Some(Duration::from_secs(1)));
        none.set_map(parse(&Value::Array(vec![range(0, 16_383, 7000)])).unwrap());
        let at = none.now();
        none.failed(Outage::Slot(3), at);
        none.failed(Outage::Store, at);
        assert!(!none.whole_asleep(at) && !none.slots_asleep(at, [3]));
    }

    #[test]
    fn a_map_is_asked_for_once_per_backoff() {
        let backoff = cluster();
        assert!(backoff.map_due());
        assert!(!backoff.map_due());
    }
}
