//! The provider calls of an introspection backend: at most a cap in
//! flight, and at most a share of it per client address, so that one
//! client sending unknown tokens cannot hold every call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::AuthError;
use crate::ip::IpBackend;
use crate::request::RequestView;

/// The calls in flight, in all and per client.
pub(super) struct Calls {
    in_flight: AtomicUsize,
    max: usize,
    /// Most calls one client address holds (`max` or more: no share).
    per_client: usize,
    client_ip: IpBackend,
    /// Calls in flight per client address: only addresses with a call in
    /// flight are kept, so at most `max` entries.
    by_client: Mutex<HashMap<IpAddr, usize>>,
    /// Whether a request without a peer address was logged (it is let
    /// through without a share).
    warned_no_peer: AtomicBool,
}

/// One provider call, given back when dropped (the call finished, or its
/// step was dropped unsent).
pub(super) struct CallPermit {
    calls: Arc<Calls>,
    client: Option<IpAddr>,
}

impl Calls {
    pub(super) fn new(max: usize, per_client: usize, client_ip: IpBackend) -> Arc<Self> {
        Arc::new(Calls {
            in_flight: AtomicUsize::new(0),
            max,
            per_client,
            client_ip,
            by_client: Mutex::new(HashMap::new()),
            warned_no_peer: AtomicBool::new(false),
        })
    }

    /// A call for `req`, if the cap and the client's share allow one.
    ///
    /// # Errors
    /// 503 with `Retry-After: 1`: over the cap, or over the client's share.
    pub(super) fn take(self: &Arc<Self>, req: &dyn RequestView) -> Result<CallPermit, AuthError> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| busy("too many introspection calls in flight"))?;
        // From here on, dropping the permit gives the call back.
        let mut permit = CallPermit {
            calls: Arc::clone(self),
            client: None,
        };
        if self.per_client >= self.max {
            return Ok(permit);
        }
        let client = match self.client_ip.client_group(req) {
            Ok(client) => client,
            Err(_) => {
                if !self.warned_no_peer.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "introspection: a request without a peer address has no client share \
                         of the provider calls (insert a PeerAddr extension)"
                    );
                }
                return Ok(permit);
            }
        };
        let mut by_client = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = by_client.entry(client).or_insert(0);
        if *held >= self.per_client {
            return Err(busy(
                "too many introspection calls in flight for one client address",
            ));
        }
        *held += 1;
        permit.client = Some(client);
        Ok(permit)
    }

    /// Calls in flight for `client` (tests).
    #[cfg(test)]
    fn held_by(&self, client: IpAddr) -> usize {
        let by_client = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        by_client.get(&client).copied().unwrap_or(0)
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            let mut by_client = self
                .calls
                .by_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = by_client.get_mut(&client) {
                *held -= 1;
                if *held == 0 {
                    by_client.remove(&client);
                }
            }
        }
        self.calls.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Over the cap or a share: 503, retry in a second.
fn busy(reason: &'static str) -> AuthError {
    AuthError::ProviderUnavailable {
        reason: reason.into(),
        retry_after: Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::PeerAddr;

    fn from(peer: &str) -> http::Request<()> {
        let mut req = http::Request::new(());
        req.extensions_mut()
            .insert(PeerAddr(peer.parse().unwrap_or_else(|e| panic!("{e}"))));
        req
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gives_it_back() {
        let ipv6 = IpBackend::new()
            .ipv6_prefix(64)
            .unwrap_or_else(|e| panic!("{e}"));
        let calls = Calls::new(4, 2, ipv6);
        let greedy = from("192.0.2.1:1");
        let first = calls.take(&greedy).ok();
        let second = calls.take(&greedy).ok();
        assert!(first.is_some() && second.is_some());
        let refused = calls.take(&from("192.0.2.1:2")).err();
        assert_eq!(refused.map(|e| e.status().as_u16()), Some(503));
        // Other clients still get calls, up to the cap.
        let other = calls.take(&from("[2001:db8::1]:1")).ok();
        let neighbour = calls.take(&from("[2001:db8::2]:1")).ok();
        assert!(
            other.is_some() && neighbour.is_some(),
            "one /64, its share of 2"
        );
        assert!(calls.take(&from("198.51.100.1:1")).is_err(), "the cap");
        drop((first, other));
        assert_eq!(
            calls.held_by("192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]))),
            1
        );
        assert!(calls.take(&greedy).is_ok());
        drop((second, neighbour));
        let left = calls
            .by_client
            .lock()
            .map(|m| m.len())
            .unwrap_or(usize::MAX);
        assert_eq!(left, 0, "no entry kept without a call in flight");
        assert_eq!(calls.in_flight.load(Ordering::Relaxed), 0);
        // Without a peer address: the cap only.
        let unknown = http::Request::new(());
        assert!(calls.take(&unknown).is_ok());
    }
}
