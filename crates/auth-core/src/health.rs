//! Readiness: how each part a server relies on is doing ([`Health`]),
//! known at once or after a request to its provider ([`Probe`], a network
//! step like authentication's), and the report of them all
//! ([`Readiness`]) that a readiness endpoint answers with.
//!
//! | part | how it is checked | down when |
//! |---|---|---|
//! | a JWT key set ([`JwtBackend::probe`](crate::JwtBackend::probe)) | fixed keys: ready. Remote keys: fetched now if due (never fetched, or past their max age), at most once per refresh interval | no remote key can verify a token: none fetched yet, or past the stale limit while refreshes fail (degraded: past the max age, still serving) |
//! | an introspection endpoint ([`IntrospectionBackend::probe`](crate::IntrospectionBackend::probe)) | the outcome of a provider call in the last 10 s, else a call about a token that does not exist (any answer will do: `{"active": false}`), at most one per 10 s | the provider did not answer usably, or rejected our client credentials |
//! | a rate-limit store (`auth_throttle::Throttle::probe`) | a `PING` (every primary of a cluster), under the store's timeout, one at a time | unreachable and the fallback refuses (degraded: the fallback counts in process or lets through) |
//!
//! Reasons name kinds (`could not connect`, `answered 502`), never a
//! transport's own text, which may name hosts: that is in the log. A part
//! whose first check is under way is degraded, "not checked yet" (a key
//! set: "the first fetch is under way"). Remote keys beside local ones
//! are degraded, not down, when none can serve: the local keys still
//! verify their tokens.
//!
//! A degraded part still serves: the report stays ready (HTTP 200). A part
//! is down only when the requests that need it are refused. Mind that the
//! provider and the store are shared: when one is down, every instance's
//! report is 503 at once, and an orchestrator that follows it takes every
//! instance out, for the requests that do not need that part too. Add to
//! the report the parts without which an instance should get no traffic
//! at all; show the others elsewhere (a diagnostic route, metrics).
//!
//! ```
//! use auth_core::health::{Health, Readiness};
//!
//! let report = Readiness::new()
//!     .with("jwt_keys", Health::Ready)
//!     .with("rate_limit_store", Health::Degraded("unreachable: counting in process".into()));
//! assert!(report.is_ready());
//! assert_eq!(report.status(), http::StatusCode::OK);
//! let report = report.with("introspection", Health::Down("introspection endpoint answered 500".into()));
//! assert_eq!(report.status(), http::StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(report.to_json()["checks"]["introspection"]["status"], "down");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use crate::drive::MAX_STEPS;
use crate::error::TransportError;
use crate::transport::{AsyncTransport, Transport};

/// How one part is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Working as configured.
    Ready,
    /// Serving, but not as configured (a key set past its max age, limits
    /// counted in process while the shared store is away); why.
    Degraded(Cow<'static, str>),
    /// Not serving: requests that need it are refused; why (never a token
    /// or secret).
    Down(Cow<'static, str>),
}

impl Health {
    /// `ready`, `degraded` or `down`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ready => "ready",
            Health::Degraded(_) => "degraded",
            Health::Down(_) => "down",
        }
    }

    /// Why it is degraded or down.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Ready => None,
            Health::Degraded(reason) | Health::Down(reason) => Some(reason),
        }
    }

    /// Whether requests that need this part are refused.
    pub fn is_down(&self) -> bool {
        matches!(self, Health::Down(_))
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}: {reason}", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

type ThenFn =
    dyn FnOnce(&Result<http::Response<Vec<u8>>, TransportError>, SystemTime) -> Probe + Send;

/// A part's health: known now, or after a request to its provider.
#[must_use]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per readiness probe and consumed at once"
)]
pub enum Probe {
    /// Known.
    Done(Health),
    /// Send the step's request, then [`ProbeStep::apply`] the answer.
    Send(ProbeStep),
}

/// A request a probe needs, and how its answer is read.
#[must_use]
pub struct ProbeStep {
    request: http::Request<Vec<u8>>,
    then: Box<ThenFn>,
}

impl ProbeStep {
    /// A step sending `request` whose answer `then` reads (into the health,
    /// or another step).
    pub fn new<F>(request: http::Request<Vec<u8>>, then: F) -> Self
    where
        F: FnOnce(&Result<http::Response<Vec<u8>>, TransportError>, SystemTime) -> Probe
            + Send
            + 'static,
    {
        ProbeStep {
            request,
            then: Box::new(then),
        }
    }

    /// The request to send.
    pub fn request(&self) -> &http::Request<Vec<u8>> {
        &self.request
    }

    /// Reads the answer (or the transport's failure) at `now`.
    pub fn apply(
        self,
        response: &Result<http::Response<Vec<u8>>, TransportError>,
        now: SystemTime,
    ) -> Probe {
        (self.then)(response, now)
    }
}

impl fmt::Debug for ProbeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeStep")
            .field("uri", &self.request.uri().path())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Done(health) => f.debug_tuple("Done").field(health).finish(),
            Probe::Send(step) => f.debug_tuple("Send").field(step).finish(),
        }
    }
}

/// A provider's failure as a report says it: its kind and status, never
/// the text a transport or a server gave (host names, addresses stay in
/// the log). `None` for a 2xx answer (the caller judges its body).
pub(crate) fn provider_failure(
    response: &Result<http::Response<Vec<u8>>, TransportError>,
) -> Option<Cow<'static, str>> {
    match response {
        Err(TransportError::Connect) => Some("could not connect".into()),
        Err(TransportError::Timeout) => Some("timed out".into()),
        Err(TransportError::TooLarge { .. }) => Some("answer too large".into()),
        Err(_) => Some("transport failed".into()),
        Ok(r) if r.status() == 401 || r.status() == 403 => {
            Some("rejected our client credentials".into())
        }
        Ok(r) if !r.status().is_success() => {
            Some(format!("answered {}", r.status().as_u16()).into())
        }
        Ok(_) => None,
    }
}

/// Why a provider's answer could not be used, as a report says it: the
/// kind of [`provider_failure`], or an answer that is not one.
pub(crate) fn unusable(
    response: &Result<http::Response<Vec<u8>>, TransportError>,
) -> Cow<'static, str> {
    provider_failure(response).unwrap_or(Cow::Borrowed("answer not usable"))
}

/// A probe that keeps asking is a bug: it is then down.
fn too_many_steps() -> Health {
    Health::Down("the probe took too many steps".into())
}

impl Probe {
    /// Sends its requests on `transport`, blocking the calling thread
    /// (under the transport's own timeouts), until the health is known.
    pub fn run_blocking(self, transport: &dyn Transport) -> Health {
        let mut probe = self;
        for _ in 0..=MAX_STEPS {
            match probe {
                Probe::Done(health) => return health,
                Probe::Send(step) => {
                    let response = transport.send(step.request.clone());
                    probe = step.apply(&response, SystemTime::now());
                }
            }
        }
        too_many_steps()
    }

    /// Sends its requests on `transport`, without blocking, until the
    /// health is known.
    pub async fn run(self, transport: &dyn AsyncTransport) -> Health {
        let mut probe = self;
        for _ in 0..=MAX_STEPS {
            match probe {
                Probe::Done(health) => return health,
                Probe::Send(step) => {
                    let response = transport.send(step.request.clone()).await;
                    probe = step.apply(&response, SystemTime::now());
                }
            }
        }
        too_many_steps()
    }
}

/// Every part's health, by name: what a readiness endpoint answers
/// ([`status`](Self::status) and [`to_json`](Self::to_json), or
/// [`into_response`](Self::into_response)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    checks: Vec<(Cow<'static, str>, Health)>,
}

impl Readiness {
    /// No part yet: ready.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Adds the part `name` (`jwt_keys`, `introspection`,
    /// `rate_limit_store`, or your own) and its health.
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, health: Health) -> Self {
        self.checks.push((name.into(), health));
        self
    }

    /// The parts, in the order added.
    pub fn checks(&self) -> impl Iterator<Item = (&str, &Health)> {
        self.checks.iter().map(|(name, health)| (&**name, health))
    }

    /// Whether no part is down.
    pub fn is_ready(&self) -> bool {
        !self.checks.iter().any(|(_, health)| health.is_down())
    }

    /// 200 when ready, else 503.
    pub fn status(&self) -> http::StatusCode {
        if self.is_ready() {
            http::StatusCode::OK
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        }
    }

    /// `{"ready": bool, "checks": {name: {"status": "ready" | "degraded" |
    /// "down", "reason"?: text}}}` (a part added twice under one name
    /// shows its worst).
    pub fn to_json(&self) -> serde_json::Value {
        let mut checks = serde_json::Map::new();
        for (name, health) in &self.checks {
            let worse = |shown: &serde_json::Value| {
                let rank = |status: &str| {
                    ["ready", "degraded", "down"]
                        .iter()
                        .position(|s| *s == status)
                };
                rank(health.as_str()) > shown["status"].as_str().and_then(rank)
            };
            if checks.get(&**name).is_some_and(|shown| !worse(shown)) {
                continue;
            }
            let mut check = serde_json::Map::new();
            check.insert("status".into(), health.as_str().into());
            if let Some(reason) = health.reason() {
                check.insert("reason".into(), reason.into());
            }
            checks.insert(name.to_string(), check.into());
        }
        serde_json::json!({"ready": self.is_ready(), "checks": checks})
    }

    /// The answer for a readiness endpoint: [`status`](Self::status), the
    /// JSON of [`to_json`](Self::to_json), `Cache-Control: no-store`.
    pub fn into_response(self) -> http::Response<String> {
        let mut response = http::Response::new(self.to_json().to_string());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_down_makes_the_report_503_and_degraded_ones_do_not() {
        let report = Readiness::new()
            .with("a", Health::Ready)
            .with("b", Health::Degraded("slow".into()));
        assert!(report.is_ready());
        let report = report.with("c", Health::Down("gone".into()));
        assert!(!report.is_ready());
        let response = report.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ready": false, "checks": {
                "a": {"status": "ready"},
                "b": {"status": "degraded", "reason": "slow"},
                "c": {"status": "down", "reason": "gone"},
            }})
        );
    }

    #[test]
    fn one_name_twice_shows_its_worst() {
        for order in [[0, 1], [1, 0]] {
            let healths = [Health::Down("one".into()), Health::Ready];
            let report = order.iter().fold(Readiness::new(), |r, &i| {
                r.with("store", healths[i].clone())
            });
            assert_eq!(report.to_json()["checks"]["store"]["status"], "down");
        }
    }

    #[test]
    fn a_probe_that_keeps_asking_is_down() {
        fn forever() -> Probe {
            Probe::Send(ProbeStep::new(http::Request::new(Vec::new()), |_, _| {
                forever()
            }))
        }
        let sent = std::sync::atomic::AtomicUsize::new(0);
        let transport = |_| {
            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(TransportError::Connect)
        };
        let health = forever().run_blocking(&transport);
        assert_eq!(sent.into_inner(), MAX_STEPS + 1);
        assert!(health.is_down());
    }
}
