//! Single flight: many requests that need the same provider answer share one
//! call. The first becomes the leader and sends; the others get a
//! [`Waiter`] that any driver can wait on, blocking or async, with no runtime
//! of our own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

/// A one-shot "done" flag that can be waited for.
#[derive(Default)]
struct Signal {
    done: AtomicBool,
    event: Event,
}

/// What a driver waits on for an [`Action::Wait`](crate::step::Action::Wait)
/// step: another request's provider call. Cheap to clone.
#[derive(Clone)]
pub struct Waiter(Arc<Signal>);

impl Waiter {
    /// Whether the awaited answer is there.
    pub fn is_done(&self) -> bool {
        self.0.done.load(Ordering::Acquire)
    }

    /// Blocks the calling thread until the answer is there or `timeout`
    /// passes; `true` when it is there.
    pub fn wait_blocking(&self, timeout: Duration) -> bool {
        // A timeout too long for the clock to hold is no timeout.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.is_done() {
                return true;
            }
            let listener = self.0.event.listen();
            // Checked again after listening, so a finish in between is seen.
            if self.is_done() {
                return true;
            }
            let Some(deadline) = deadline else {
                listener.wait();
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || listener.wait_timeout(left).is_none() {
                return self.is_done();
            }
        }
    }

    /// Waits without blocking a thread (any executor). Wrap it in your
    /// runtime's timeout.
    pub async fn wait(&self) {
        loop {
            if self.is_done() {
                return;
            }
            let listener = self.0.event.listen();
            if self.is_done() {
                return;
            }
            listener.await;
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("done", &self.is_done())
            .finish()
    }
}

/// One provider call in progress and, once there, its answer.
pub(crate) struct Flight<V> {
    answer: OnceLock<V>,
    signal: Arc<Signal>,
}

impl<V> Flight<V> {
    pub(crate) fn answer(&self) -> Option<&V> {
        self.answer.get()
    }

    pub(crate) fn waiter(&self) -> Waiter {
        Waiter(Arc::clone(&self.signal))
    }
}

/// The calls in progress, by key.
pub(crate) struct Flights<K, V> {
    map: Mutex<HashMap<K, Arc<Flight<V>>>>,
}

/// What [`Flights::join`] makes of a caller.
pub(crate) enum Join<K: Hash + Eq + Clone, V> {
    /// Nobody asks yet: you do, and must [`Leader::finish`].
    Leader(Leader<K, V>),
    /// Somebody asks already: wait for their answer.
    Follower(Arc<Flight<V>>),
}

impl<K: Hash + Eq + Clone, V> Flights<K, V> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Flights {
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Leads the call for `key`, or follows the one under way. `abandoned`
    /// is the answer followers get if the leader is dropped unfinished (its
    /// request was cancelled).
    pub(crate) fn join(self: &Arc<Self>, key: &K, abandoned: fn() -> V) -> Join<K, V> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(key) {
            return Join::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight {
            answer: OnceLock::new(),
            signal: Arc::new(Signal::default()),
        });
        map.insert(key.clone(), Arc::clone(&flight));
        Join::Leader(Leader {
            flights: Arc::clone(self),
            key: key.clone(),
            flight,
            abandoned,
            finished: false,
        })
    }

    /// Calls in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The caller that makes the provider call. Finishing (or dropping) it
/// publishes the answer and wakes the followers.
pub(crate) struct Leader<K: Hash + Eq + Clone, V> {
    flights: Arc<Flights<K, V>>,
    key: K,
    flight: Arc<Flight<V>>,
    abandoned: fn() -> V,
    finished: bool,
}

impl<K: Hash + Eq + Clone, V> Leader<K, V> {
    /// The flight this leader publishes to (to read the answer back).
    pub(crate) fn flight(&self) -> Arc<Flight<V>> {
        Arc::clone(&self.flight)
    }

    /// Publishes `answer` to the followers.
    pub(crate) fn finish(mut self, answer: V) {
        self.publish(answer);
    }

    fn publish(&mut self, answer: V) {
        if self.finished {
            return;
        }
        self.finished = true;
        let _ = self.flight.answer.set(answer);
        self.flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        self.flight.signal.done.store(true, Ordering::Release);
        self.flight.signal.event.notify(usize::MAX);
    }
}

impl<K: Hash + Eq + Clone, V> Drop for Leader<K, V> {
    fn drop(&mut self) {
        let abandoned = (self.abandoned)();
        self.publish(abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn one_leader_many_followers() {
        let flights: Arc<Flights<u8, u32>> = Flights::new();
        let Join::Leader(leader) = flights.join(&1, || 0) else {
            panic!("first caller leads")
        };
        let followers: Vec<_> = (0..8)
            .map(|_| match flights.join(&1, || 0) {
                Join::Follower(f) => f,
                Join::Leader(_) => panic!("second caller must follow"),
            })
            .collect();
        assert!(
            matches!(flights.join(&2, || 0), Join::Leader(_)),
            "other keys are independent"
        );
        let handles: Vec<_> = followers
            .into_iter()
            .map(|f| {
                thread::spawn(move || {
                    assert!(f.waiter().wait_blocking(Duration::from_secs(5)));
                    f.answer().copied()
                })
            })
            .collect();
        leader.finish(42);
        for h in handles {
            assert_eq!(h.join().ok().flatten(), Some(42));
        }
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn dropped_leader_releases_followers_with_the_abandoned_answer() {
        let flights: Arc<Flights<u8, u32>> = Flights::new();
        let leader = flights.join(&1, || 7);
        let Join::Follower(follower) = flights.join(&1, || 7) else {
            panic!()
        };
        drop(leader);
        assert!(follower.waiter().wait_blocking(Duration::from_millis(10)));
        assert_eq!(follower.answer(), Some(&7));
        assert!(
            matches!(flights.join(&1, || 7), Join::Leader(_)),
            "a new call may start"
        );
    }

    #[test]
    fn wait_times_out() {
        let flights: Arc<Flights<u8, u32>> = Flights::new();
        let _leader = flights.join(&1, || 0);
        let Join::Follower(follower) = flights.join(&1, || 0) else {
            panic!()
        };
        assert!(!follower.waiter().wait_blocking(Duration::from_millis(20)));
    }
}
