//! [`MemoryStore`]: counters in this process, bounded.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::gcra::{Cell, Rate};
use crate::key::{CallerKey, KeyHasher};
use crate::throttle::Cells;

/// Default most counters kept.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Shards: a request locks only the shards of its callers.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;

type Counters = quick_cache::unsync::Cache<(u32, CallerKey), u64>;

struct Shard {
    counters: Counters,
    /// Last sweep of full buckets (seconds), so a full shard is swept at
    /// most once a second.
    swept: u64,
}

impl Shard {
    /// Stores a counter's new timestamp. A full shard first drops the
    /// counters whose bucket is full again (at most once a second), before
    /// the cache evicts live ones.
    fn store(&mut self, key: (u32, CallerKey), tat: u64, now: u64) {
        let now_secs = now / 1_000_000;
        if self.counters.len() as u64 >= self.counters.capacity() && self.swept < now_secs {
            self.swept = now_secs;
            self.counters.retain(|_, stored| *stored > now);
        }
        self.counters.insert(key, tat);
    }
}

/// Counters kept in this process: one timestamp per (rule, caller), at
/// most `capacity` of them (a flood of unique callers evicts old entries
/// instead of growing memory; entries whose bucket is full again are
/// dropped first, they hold no information). Cloning shares the store.
///
/// Not shared between servers: each counts its own requests (see
/// `RedisStore`, feature `redis`, for one limit across servers).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// Rule ids, interned: counters of rules with the same id are shared.
    ids: Mutex<HashMap<Arc<str>, u32>>,
    capacity: usize,
    /// Caller keys under a secret of this store's own (random): every
    /// throttle counting here hashes callers alike.
    keys: KeyHasher,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// Default most counters kept.
    pub const DEFAULT_CAPACITY: usize = DEFAULT_CAPACITY;

    /// A store of at most `capacity` counters (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    counters: Counters::new(per_shard),
                    swept: 0,
                })
            })
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                ids: Mutex::new(HashMap::new()),
                capacity: per_shard * SHARDS,
                keys: KeyHasher::random(),
            }),
        }
    }

    /// The most counters kept.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Counters kept now.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .counters
                    .len()
            })
            .sum()
    }

    /// Whether no counter is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn keys(&self) -> &KeyHasher {
        &self.inner.keys
    }

    /// The number for a rule id (the same id, the same counters).
    pub(crate) fn intern(&self, id: &Arc<str>) -> u32 {
        let mut ids = self
            .inner
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(Arc::clone(id)).or_insert(next)
    }

    /// Checks one request against its counters at `now` (µs), all or
    /// nothing: `cells[i]` for `counters[i]`; the new timestamps are stored
    /// only if every counter allows the request.
    pub(crate) fn apply(&self, counters: &[(u32, CallerKey, Rate)], now: u64, cells: &mut Cells) {
        if let [(rule, key, rate)] = counters {
            cells.clear();
            cells.push(self.apply_one(*rule, *key, *rate, now));
            return;
        }
        let shard_of = |key: &CallerKey| key.shard(SHARD_BITS);
        // Lock each shard involved once, in index order (no deadlock).
        let mut involved = [false; SHARDS];
        for (_, key, _) in counters {
            involved[shard_of(key)] = true;
        }
        let mut guards: [Option<std::sync::MutexGuard<'_, Shard>>; SHARDS] = Default::default();
        for (index, guard) in guards.iter_mut().enumerate() {
            if involved[index] {
                *guard = Some(
                    self.inner.shards[index]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
            }
        }
        cells.clear();
        let mut allowed = true;
        for (rule, key, rate) in counters {
            let Some(shard) = guards[shard_of(key)].as_mut() else {
                continue;
            };
            let stored = shard
                .counters
                .get(&(*rule, *key))
                .copied()
                .filter(|&tat| tat > now);
            let cell = rate.check(stored, now);
            allowed &= cell.allowed;
            cells.push(cell);
        }
        if !allowed {
            return;
        }
        for ((rule, key, _), cell) in counters.iter().zip(cells.iter()) {
            if let Some(shard) = guards[shard_of(key)].as_mut() {
                shard.store((*rule, *key), cell.next, now);
            }
        }
    }
}

impl MemoryStore {
    /// [`apply`](Self::apply) for one counter, the common case: one lock,
    /// one look-up, the timestamp updated in place.
    pub(crate) fn apply_one(&self, rule: u32, key: CallerKey, rate: Rate, now: u64) -> Cell {
        let index = key.shard(SHARD_BITS);
        let mut shard = self.inner.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mut stored) = shard.counters.get_mut(&(rule, key)) {
            let cell = rate.check(Some(*stored).filter(|&tat| tat > now), now);
            if cell.allowed {
                *stored = cell.next;
            }
            return cell;
        }
        let cell = rate.check(None, now);
        if cell.allowed {
            shard.store((rule, key), cell.next, now);
        }
        cell
    }
}

impl MemoryStore {
    /// How one more request would fare against a counter at `now`, without
    /// counting it.
    pub(crate) fn peek(&self, rule: u32, key: CallerKey, rate: Rate, now: u64) -> Cell {
        let shard = self.inner.shards[key.shard(SHARD_BITS)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stored = shard.counters.peek(&(rule, key)).copied();
        drop(shard);
        rate.check(stored.filter(|&tat| tat > now), now)
    }

    /// Sets a counter's timestamp (a shared store's, mirrored here).
    pub(crate) fn set(&self, rule: u32, key: CallerKey, tat: u64, now: u64) {
        let mut shard = self.inner.shards[key.shard(SHARD_BITS)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.store((rule, key), tat, now);
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> CallerKey {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        bytes[4] = 7;
        CallerKey(bytes)
    }

    const RATE: Rate = Rate {
        interval: 1_000_000,
        burst: 2,
    };

    #[test]
    fn all_or_nothing_across_counters() {
        let store = MemoryStore::new(64);
        let (a, b) = (key(1), key(2));
        let mut cells = Cells::new();
        // b has one request left, a two.
        store.apply(&[(0, b, RATE)], 0, &mut cells);
        let both = [(0, a, RATE), (0, b, RATE)];
        store.apply(&both, 0, &mut cells);
        assert!(cells.iter().all(|c| c.allowed));
        // b is exhausted: the pair is denied and a is not charged.
        store.apply(&both, 0, &mut cells);
        assert_eq!(
            cells.iter().map(|c| c.allowed).collect::<Vec<_>>(),
            [true, false]
        );
        store.apply(&[(0, a, RATE)], 0, &mut cells);
        assert!(cells[0].allowed, "a still has its second request");
    }

    #[test]
    fn memory_stays_within_the_capacity() {
        let store = MemoryStore::new(1_000);
        let mut cells = Cells::new();
        for n in 0..20_000 {
            store.apply(&[(0, key(n), RATE)], 0, &mut cells);
        }
        assert!(
            store.len() <= store.capacity(),
            "{} > {}",
            store.len(),
            store.capacity()
        );
        // Later, full buckets are swept before live ones are evicted (each
        // shard when it is next written to).
        let mut written = [false; SHARDS];
        for n in 1_000_000.. {
            let key = key(n);
            if !written[key.shard(SHARD_BITS)] {
                written[key.shard(SHARD_BITS)] = true;
                store.apply(&[(0, key, RATE)], 10_000_000, &mut cells);
            }
            if written.iter().all(|w| *w) {
                break;
            }
        }
        assert!(store.len() <= SHARDS, "{}", store.len());
    }

    #[test]
    fn addresses_spread_over_the_shards() {
        let mut per_shard = [0usize; SHARDS];
        let keys = KeyHasher::random();
        for n in 0..4096u32 {
            let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + n));
            per_shard[keys.address(ip).shard(SHARD_BITS)] += 1;
        }
        // 256 each if even: none under half or over twice that.
        assert!(
            per_shard.iter().all(|&n| (128..=512).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn the_same_rule_id_shares_counters() {
        let store = MemoryStore::new(64);
        let id: Arc<str> = "r".into();
        assert_eq!(store.intern(&id), store.intern(&Arc::from("r")));
        assert_ne!(store.intern(&id), store.intern(&Arc::from("s")));
    }
}
