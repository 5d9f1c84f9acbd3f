//! The demo's readiness endpoint, `GET /health/ready`: the OIDC key set,
//! the introspection provider and the shared rate-limit store, each when
//! configured (see `auth_core::health`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::health::{Health, Readiness};
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

    /// The providers' parts, their calls blocking this thread.
    fn providers_blocking(&self) -> Readiness {
        let now = SystemTime::now();
        let mut readiness = Readiness::new();
        if let Some(jwt) = &self.jwt {
            readiness = readiness.with("jwt_keys", jwt.probe(now).run_blocking(&*self.transport));
        }
        if let Some(introspection) = &self.introspection {
            let health = introspection.probe(now).run_blocking(&*self.transport);
            readiness = readiness.with("introspection", health);
        }
        readiness
    }

    /// Every part: the providers' on a blocking thread, the store's on the
    /// runtime this runs on (tokio's, or actix-web's).
    pub(crate) async fn check(self) -> Readiness {
        let store = self.store.clone();
        let readiness = tokio::task::spawn_blocking(move || self.providers_blocking())
            .await
            .unwrap_or_else(|_| {
                Readiness::new().with("providers", Health::Down("the probe failed".into()))
            });
        match store {
            Some(throttle) => readiness.with("rate_limit_store", throttle.probe().await),
            None => readiness,
        }
    }
}
