//! The demo's readiness endpoint, `GET /health/ready`: the OIDC key set,
//! the introspection provider and the shared rate-limit store, each when
//! configured (see `auth_core::health`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::health::{Health, Probe, Readiness};
use auth_core::step::UreqTransport;
use auth_core::{IntrospectionBackend, JwtBackend};
use auth_throttle::Throttle;

/// How long a probe waits for a provider (a readiness probe's own timeout
/// is short).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the readiness endpoint checks.
#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) jwt: Option<JwtBackend>,
    pub(crate) introspection: Option<IntrospectionBackend>,
    /// A throttle on the shared store (its fallback says degraded or down).
    pub(crate) store: Option<Throttle>,
    transport: Arc<UreqTransport>,
}

impl Parts {
    pub(crate) fn new() -> Self {
        Parts {
            jwt: None,
            introspection: None,
            store: None,
            transport: Arc::new(UreqTransport::builder().timeout(PROBE_TIMEOUT).build()),
        }
    }

    /// Every configured part, all at once, so the answer takes as long as
    /// the slowest probe: the providers' on blocking threads (their calls
    /// block), the store's on the runtime this runs on (tokio's, or
    /// actix-web's).
    pub(crate) async fn check(self) -> Readiness {
        let now = SystemTime::now();
        let jwt = self
            .jwt
            .map(|jwt| run(jwt.probe(now), Arc::clone(&self.transport)));
        let introspection = self
            .introspection
            .map(|backend| run(backend.probe(now), Arc::clone(&self.transport)));
        let store = self.store.as_ref().map(Throttle::probe);
        let (jwt, introspection, store) =
            tokio::join!(optional(jwt), optional(introspection), optional(store));
        [
            ("jwt_keys", jwt),
            ("introspection", introspection),
            ("rate_limit_store", store),
        ]
        .into_iter()
        .filter_map(|(name, health)| Some((name, health?)))
        .fold(Readiness::new(), |readiness, (name, health)| {
            readiness.with(name, health)
        })
    }
}

/// A probe's health: at once when known, else its calls on tokio's
/// blocking threads (one that panicked is down).
async fn run(probe: Probe, transport: Arc<UreqTransport>) -> Health {
    match probe {
        Probe::Done(health) => health,
        probe => tokio::task::spawn_blocking(move || probe.run_blocking(&*transport))
            .await
            .unwrap_or_else(|_| Health::Down("the probe failed".into())),
    }
}

/// `future`'s output, if there is a future.
async fn optional<F: Future>(future: Option<F>) -> Option<F::Output> {
    match future {
        Some(future) => Some(future.await),
        None => None,
    }
}
