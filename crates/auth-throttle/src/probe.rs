//! [`Throttle::probe`]: the shared store's health for a readiness probe,
//! one ping at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use auth_core::health::Health;

use crate::error::StoreError;
use crate::throttle::{Fallback, Mode, Throttle};

/// A throttle's readiness pings: the one under way, and what the last
/// one found.
#[derive(Debug, Default)]
pub(crate) struct Probing {
    running: AtomicBool,
    last: Mutex<Option<Health>>,
}

/// Ends a ping, however it ends (a probe dropped mid-way included).
struct Running<'a>(&'a Probing);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

impl Throttle {
    /// The store's health, for a readiness probe: ready in process; a
    /// shared store is pinged ([`SharedStore::ping`](crate::SharedStore::ping),
    /// under its timeout). Unreachable, it is degraded while the fallback
    /// still answers (counting in process, letting through, or log-only)
    /// and down when the fallback refuses; a store that answers with a
    /// refusal of the probe's command is degraded. One ping at a time: a
    /// probe while one runs gets what the last one found (degraded, "not
    /// checked yet", before any), so a flood of probes is one round trip at
    /// a time. Needs a tokio runtime for `RedisStore`. See
    /// `auth_core::health`.
    pub async fn probe(&self) -> Health {
        let inner = &self.inner;
        let Some(store) = inner.store.shared_store() else {
            return Health::Ready;
        };
        let probing = &inner.probing;
        if probing.running.swap(true, Ordering::AcqRel) {
            let last = probing.last.lock().unwrap_or_else(PoisonError::into_inner);
            return last
                .clone()
                .unwrap_or_else(|| Health::Degraded("rate limit store: not checked yet".into()));
        }
        let _running = Running(probing);
        let health = match store.ping().await {
            Ok(()) => Health::Ready,
            // It answered: reachable, though the probe's command is not
            // allowed (an ACL without `ping` or `cluster|slots`).
            Err(StoreError::Refused(code)) => Health::Degraded(
                format!(
                    "rate limit store {} refused the probe's command ({code}): allow PING and \
                     CLUSTER SLOTS to check it",
                    store.kind()
                )
                .into(),
            ),
            Err(error) => {
                let unreachable =
                    format!("rate limit store {} unreachable ({error})", store.kind());
                match (inner.fallback, inner.mode) {
                    (Fallback::Deny, Mode::Enforce) => Health::Down(
                        format!("{unreachable}: throttled requests are refused").into(),
                    ),
                    (Fallback::Memory, _) => Health::Degraded(
                        format!("{unreachable}: limits are counted in this process").into(),
                    ),
                    (Fallback::Allow | Fallback::Deny, _) => Health::Degraded(
                        format!("{unreachable}: throttled requests are let through uncounted")
                            .into(),
                    ),
                }
            }
        };
        *probing.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(health.clone());
        health
    }
}
