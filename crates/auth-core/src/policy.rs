//! [`Policy`]: what a framework adapter applies to each request — which
//! backend, required or optional, CORS preflight handling, the challenge
//! realm, the transport for network steps. Adapters hold one and only
//! translate its outcome.

use std::fmt;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::AuthError;
use crate::transport::Transport;
#[cfg(not(feature = "ureq"))]
use crate::transport::TransportError;

/// How requests are authenticated by a framework adapter.
///
/// ```
/// use auth_core::{IpBackend, Policy};
///
/// let policy = Policy::new(IpBackend::new()).optional().realm("api");
/// assert!(policy.is_optional());
/// assert!(policy.skips("OPTIONS", true), "CORS preflights pass by default");
/// assert!(!policy.skips("OPTIONS", false));
/// ```
#[derive(Clone)]
pub struct Policy {
    backend: Arc<dyn Backend>,
    transport: Arc<dyn Transport>,
    optional: bool,
    preflight_passthrough: bool,
    realm: Option<Arc<str>>,
}

/// The transport when the `ureq` feature is off and none was given: every
/// network step fails (503) with a message saying so.
#[cfg(not(feature = "ureq"))]
fn no_transport(_: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
    Err(TransportError::Other(
        "no transport configured (enable auth-core's ureq feature)".into(),
    ))
}

impl Policy {
    /// Requires an identity from `backend`; CORS preflights pass; network
    /// steps use [`UreqTransport`](crate::transport::UreqTransport) (feature
    /// `ureq`) with its defaults.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Self::shared(Arc::new(backend))
    }

    /// The same with a shared backend.
    pub fn shared(backend: Arc<dyn Backend>) -> Self {
        #[cfg(feature = "ureq")]
        let transport: Arc<dyn Transport> = Arc::new(crate::transport::UreqTransport::new());
        #[cfg(not(feature = "ureq"))]
        let transport: Arc<dyn Transport> = Arc::new(no_transport);
        Policy {
            backend,
            transport,
            optional: false,
            preflight_passthrough: true,
            realm: None,
        }
    }

    /// Lets requests *without* credentials through without identity.
    /// Invalid credentials are still refused: never downgraded.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Whether CORS preflights (`OPTIONS` with
    /// `Access-Control-Request-Method`) skip authentication (default `true`).
    #[must_use]
    pub fn preflight_passthrough(mut self, yes: bool) -> Self {
        self.preflight_passthrough = yes;
        self
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The transport for network steps.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The transport, shared (to move it to a blocking pool).
    pub fn shared_transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Whether requests without credentials go through.
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// The configured realm.
    pub fn realm_name(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// Whether a request with this method, carrying an
    /// `Access-Control-Request-Method` header or not, skips authentication.
    pub fn skips(&self, method: &str, has_access_control_request_method: bool) -> bool {
        self.preflight_passthrough && method == "OPTIONS" && has_access_control_request_method
    }

    /// Whether a failed authentication still lets the request through
    /// (optional mode, and no credentials at all).
    pub fn lets_through(&self, error: &AuthError) -> bool {
        self.optional && error.is_missing()
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("optional", &self.optional)
            .field("preflight_passthrough", &self.preflight_passthrough)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Credential;
    use crate::ip::IpBackend;

    #[test]
    fn optional_lets_only_missing_credentials_through() {
        let policy = Policy::new(IpBackend::new()).optional();
        assert!(policy.lets_through(&AuthError::MissingCredentials(Credential::Bearer)));
        assert!(!policy.lets_through(&AuthError::invalid_credentials(Credential::Bearer, "bad")));
        assert!(!policy.lets_through(&AuthError::provider_unavailable("down")));
        let required = Policy::new(IpBackend::new());
        assert!(!required.lets_through(&AuthError::MissingCredentials(Credential::Bearer)));
    }

    #[test]
    fn preflight_rule() {
        let policy = Policy::new(IpBackend::new());
        assert!(policy.skips("OPTIONS", true));
        assert!(!policy.skips("GET", true));
        assert!(
            !policy
                .clone()
                .preflight_passthrough(false)
                .skips("OPTIONS", true)
        );
    }
}
