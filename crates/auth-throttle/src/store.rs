//! Where counters live: [`Store`], in this process ([`MemoryStore`]) or in
//! a [`SharedStore`] every server counts in (`RedisStore`, feature `redis`,
//! or your own), which gets one request's counters as a [`Batch`] and
//! answers in one round trip.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{StoreError, ThrottleError};
use crate::gcra::{Cell, Rate};
use crate::key::{CallerKey, KeyHasher};
use crate::memory::MemoryStore;

/// A store that many servers count in: it applies one request's counters
/// in one round trip.
///
/// [`apply`](Self::apply) runs the generic cell rate algorithm on every
/// counter of the batch ([`Counter::check`] is the arithmetic, in integer
/// microseconds) at the store's own clock, so servers with skewed clocks
/// agree; it stores the counters' new timestamps ([`Cell::next`]) only if
/// every counter allows the request (all or nothing), each expiring by
/// itself once the clock passes it; and it answers one [`Cell`] per counter,
/// in the batch's order. Counters of one caller are together
/// ([`Batch::by_caller`]; `RedisStore` puts the caller in a hash tag): a
/// store that shards by key can send each group where its keys live, and
/// then defines what all or nothing means across groups. An answer that
/// stands though a group failed (a denial elsewhere decides) says so with
/// [`Reply::with_failure`].
///
/// The future must end within the store's own timeout with an answer or a
/// [`StoreError`]: the throttle's [fallback](crate::Fallback) then applies,
/// never a 500. It is polled where the gate's pending decision is driven:
/// the adapter's runtime (tokio for axum, actix's for actix-web), or the
/// calling thread for `decide_blocking` (a store on tokio then needs that
/// thread inside a tokio runtime).
///
/// ```
/// use auth_throttle::{Batch, Reply, SharedStore, Store, StoreError, StoreFuture};
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// /// Counts in a map, as a shared store would (for tests).
/// #[derive(Debug, Default)]
/// struct Map(Arc<Mutex<HashMap<String, u64>>>);
///
/// impl SharedStore for Map {
///     fn apply(&self, batch: &Batch) -> StoreFuture {
///         let now = 1_800_000_000_000_000; // the store's clock, in µs
///         let mut map = self.0.lock().unwrap();
///         let key = |c: &auth_throttle::Counter| format!("{}:{}", c.caller(), c.rule());
///         let cells: Vec<_> = batch
///             .counters()
///             .iter()
///             .map(|c| c.check(map.get(&key(c)).copied(), now))
///             .collect();
///         if cells.iter().all(|cell| cell.allowed()) {
///             for (c, cell) in batch.counters().iter().zip(&cells) {
///                 map.insert(key(c), cell.next());
///             }
///         }
///         Box::pin(std::future::ready(Ok(Reply::new(now, cells))))
///     }
/// }
///
/// let store = Store::shared(Map::default(), b"a secret shared by the servers")?;
/// assert!(store.is_shared());
/// # Ok::<(), auth_throttle::ThrottleError>(())
/// ```
pub trait SharedStore: Send + Sync + fmt::Debug + 'static {
    /// Applies `batch`'s counters, all or nothing, in one round trip.
    fn apply(&self, batch: &Batch) -> StoreFuture;

    /// What kind of store this is, for the metrics' `store` label (a short
    /// fixed name; `shared` unless the store says).
    fn kind(&self) -> &'static str {
        "shared"
    }

    /// Whether the store answers, for a readiness probe
    /// ([`Throttle::probe`](crate::Throttle::probe)): one round trip under
    /// the store's timeout that changes nothing. The default, for a store
    /// that cannot tell, answers `Ok` at once.
    fn ping(&self) -> PingFuture {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A shared store's answer, when it comes.
pub type StoreFuture = Pin<Box<dyn Future<Output = Result<Reply, StoreError>> + Send>>;

/// A shared store's answer to [`SharedStore::ping`].
pub type PingFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What a shared store answers: its clock (µs since the epoch) and one
/// [`Cell`] per counter, in the batch's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub(crate) now: u64,
    pub(crate) cells: Vec<Cell>,
    /// A part of the batch that failed, though the answer stands.
    pub(crate) failed: Option<StoreError>,
}

impl Reply {
    /// The answer at `now` (µs since the epoch, the store's clock).
    pub fn new(now: u64, cells: Vec<Cell>) -> Self {
        Reply {
            now,
            cells,
            failed: None,
        }
    }

    /// The same answer, though a part of the batch failed with `error` (a
    /// cluster's call to one primary, while another's denial decides): the
    /// throttle enforces the answer, and logs and times the round trip as
    /// a failure; the next answer without one logs the recovery.
    #[must_use]
    pub fn with_failure(mut self, error: StoreError) -> Self {
        self.failed = Some(error);
        self
    }
}

/// One request's counters, for a [`SharedStore`]: one per rule that
/// counts the request, ordered so that each caller's counters are together.
#[derive(Clone, Debug)]
pub struct Batch {
    counters: Vec<Counter>,
}

impl Batch {
    /// Sorts `counters` by caller (stable: rules in order within one).
    pub(crate) fn new(mut counters: Vec<Counter>) -> Self {
        counters.sort_by_key(|c| c.caller);
        Batch { counters }
    }

    /// The counters.
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The ranges of [`counters`](Self::counters) that share a caller (one
    /// hash tag in `RedisStore`'s keys), in order.
    pub fn by_caller(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let first = self.counters.get(start)?;
            let len = self.counters[start..]
                .iter()
                .take_while(|c| c.caller == first.caller)
                .count();
            let range = start..start + len;
            start += len;
            Some(range)
        })
    }
}

/// One rule's counter for one caller.
#[derive(Clone, Debug)]
pub struct Counter {
    /// The rule's index in its throttle.
    pub(crate) rule: usize,
    pub(crate) caller: CallerKey,
    id: Arc<str>,
    pub(crate) rate: Rate,
}

impl Counter {
    pub(crate) fn new(rule: usize, caller: CallerKey, id: Arc<str>, rate: Rate) -> Self {
        Counter {
            rule,
            caller,
            id,
            rate,
        }
    }

    /// The caller: a keyed hash of its identity or address under the
    /// store's secret (never the identity itself), shown as 32 lowercase
    /// hex digits.
    pub fn caller(&self) -> CallerKey {
        self.caller
    }

    /// The rule's id.
    pub fn rule(&self) -> &str {
        &self.id
    }

    /// The emission interval: microseconds per request at the sustained
    /// rate.
    pub fn interval(&self) -> u64 {
        self.rate.interval
    }

    /// The tolerance: microseconds a burst may run ahead of the clock
    /// (burst × interval).
    pub fn tolerance(&self) -> u64 {
        self.rate.tolerance()
    }

    /// The arithmetic: how a request at `now` fares against this counter
    /// when the store holds `stored` (its last [`Cell::next`], if any).
    pub fn check(&self, stored: Option<u64>, now: u64) -> Cell {
        self.rate.check(stored, now)
    }
}

/// Where a throttle's counters live: in this process ([`MemoryStore`]),
/// or in a [`SharedStore`] every server counts in, with an in-process store
/// for its fallback. Cloning shares it: throttles built from clones of one
/// store share counters when their rules share an id.
#[derive(Clone, Debug)]
pub struct Store(pub(crate) Kind);

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Memory(MemoryStore),
    Shared {
        store: Arc<dyn SharedStore>,
        keys: KeyHasher,
        fallback: MemoryStore,
    },
}

impl Store {
    /// Counters in `store`, shared by every server that uses it, its
    /// callers' keys hashed under `key_secret` (at least
    /// [`MIN_KEY_SECRET_LEN`](crate::MIN_KEY_SECRET_LEN) bytes, the same on
    /// every server). The fallback counts in a default [`MemoryStore`].
    ///
    /// # Errors
    /// A short key secret.
    pub fn shared(store: impl SharedStore, key_secret: &[u8]) -> Result<Self, ThrottleError> {
        Ok(Store(Kind::Shared {
            store: Arc::new(store),
            keys: KeyHasher::from_secret(key_secret)?,
            fallback: MemoryStore::default(),
        }))
    }

    /// Where [`Fallback::Memory`](crate::Fallback::Memory) counts while the
    /// shared store fails (a store of its own by default). No effect on an
    /// in-process store.
    #[must_use]
    pub fn fallback(self, memory: MemoryStore) -> Self {
        match self.0 {
            Kind::Shared { store, keys, .. } => Store(Kind::Shared {
                store,
                keys,
                fallback: memory,
            }),
            memory @ Kind::Memory(_) => Store(memory),
        }
    }

    /// Whether the counters are shared between servers.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Kind::Shared { .. })
    }

    /// The in-process counters: the store itself, or a shared store's
    /// fallback.
    pub(crate) fn memory(&self) -> &MemoryStore {
        match &self.0 {
            Kind::Memory(memory)
            | Kind::Shared {
                fallback: memory, ..
            } => memory,
        }
    }

    /// How callers are hashed into keys.
    pub(crate) fn keys(&self) -> &KeyHasher {
        match &self.0 {
            Kind::Memory(memory) => memory.keys(),
            Kind::Shared { keys, .. } => keys,
        }
    }

    /// The shared store, if any.
    pub(crate) fn shared_store(&self) -> Option<&Arc<dyn SharedStore>> {
        match &self.0 {
            Kind::Memory(_) => None,
            Kind::Shared { store, .. } => Some(store),
        }
    }
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Self {
        Store(Kind::Memory(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(rule: usize, caller: u8) -> Counter {
        let rate = Rate {
            interval: 1,
            burst: 1,
        };
        Counter::new(rule, CallerKey([caller; 16]), "r".into(), rate)
    }

    #[test]
    fn a_batch_keeps_each_callers_counters_together() {
        let batch = Batch::new(vec![counter(0, 2), counter(1, 1), counter(2, 2)]);
        let rules: Vec<usize> = batch.counters().iter().map(|c| c.rule).collect();
        assert_eq!(
            rules,
            [1, 0, 2],
            "sorted by caller, rules in order within one"
        );
        assert_eq!(batch.by_caller().collect::<Vec<_>>(), [0..1, 1..3]);
        assert_eq!(Batch::new(Vec::new()).by_caller().count(), 0);
    }
}
