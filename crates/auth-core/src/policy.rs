//! [`Policy`]: how requests are authenticated: which backend, required or
//! optional, CORS preflights, the challenge realm, the transports for
//! network steps. A [`Gate`](crate::Gate) applies it.

use std::fmt;
use std::sync::Arc;

use crate::backend::Backend;
#[cfg(not(feature = "ureq"))]
use crate::error::TransportError;
use crate::request::RequestView;
use crate::transport::{AsyncTransport, Transport};

/// How requests are authenticated. A [`Gate`](crate::Gate) applies it (with
/// rate limits, if any); the adapters' layers take a policy or a gate.
/// Cloning is cheap (one shared value).
///
/// ```
/// use auth_core::{Decision, Gate, IpBackend, PeerAddr, Policy};
///
/// let policy = Policy::new(IpBackend::new()).realm("api");
/// let gate = Gate::new(policy);
/// let mut req = auth_core::http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
/// let Decision::Proceed(proceed) = gate.decide_blocking(&req) else { panic!() };
/// assert_eq!(proceed.verdict.unwrap().auth().unwrap().key(), "ip:192.0.2.1");
/// ```
#[derive(Clone)]
pub struct Policy(Arc<Settings>);

#[derive(Clone)]
struct Settings {
    backend: Arc<dyn Backend>,
    transport: Arc<dyn Transport>,
    async_transport: Option<Arc<dyn AsyncTransport>>,
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
    /// steps use [`UreqTransport`](crate::step::UreqTransport) (feature
    /// `ureq`) with its defaults.
    pub fn new(backend: impl Backend + 'static) -> Self {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        #[cfg(feature = "ureq")]
        let transport: Arc<dyn Transport> = Arc::new(crate::transport::UreqTransport::new());
        #[cfg(not(feature = "ureq"))]
        let transport: Arc<dyn Transport> = Arc::new(no_transport);
        Policy(Arc::new(Settings {
            backend,
            transport,
            async_transport: None,
            optional: false,
            preflight_passthrough: true,
            realm: None,
        }))
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.0));
        self
    }

    /// Lets requests *without* credentials through without identity.
    /// Invalid credentials are still refused: never downgraded.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with(|s| s.optional = true)
    }

    /// Whether CORS preflights skip authentication (default `true`). A
    /// preflight is an `OPTIONS` request with both `Origin` and
    /// `Access-Control-Request-Method` (the Fetch standard); browsers send
    /// it without credentials. Routes behind a passthrough must not act on
    /// `OPTIONS`: answer it with your CORS layer, or refuse it.
    #[must_use]
    pub fn preflight_passthrough(self, yes: bool) -> Self {
        self.with(|s| s.preflight_passthrough = yes)
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        self.with(|s| s.realm = Some(realm.into()))
    }

    /// The blocking transport for network steps (the blocking driver, and
    /// the adapters when no async transport is set: they call it on their
    /// blocking pool).
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        let transport: Arc<dyn Transport> = Arc::new(transport);
        self.with(|s| s.transport = transport)
    }

    /// An async transport for the adapters' network steps (your hyper or
    /// reqwest client), used instead of the blocking transport on a
    /// blocking pool. The blocking driver still uses the blocking one.
    #[must_use]
    pub fn async_transport(self, transport: impl AsyncTransport + 'static) -> Self {
        let transport: Arc<dyn AsyncTransport> = Arc::new(transport);
        self.with(|s| s.async_transport = Some(transport))
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.0.backend
    }

    pub(crate) fn is_optional(&self) -> bool {
        self.0.optional
    }

    pub(crate) fn realm_name(&self) -> Option<Arc<str>> {
        self.0.realm.clone()
    }

    pub(crate) fn blocking_transport(&self) -> &Arc<dyn Transport> {
        &self.0.transport
    }

    pub(crate) fn async_transport_ref(&self) -> Option<&Arc<dyn AsyncTransport>> {
        self.0.async_transport.as_ref()
    }

    /// Whether `req` is a CORS preflight this policy lets through.
    pub(crate) fn passes_preflight(&self, req: &dyn RequestView) -> bool {
        self.0.preflight_passthrough
            && req.method() == "OPTIONS"
            && req.header("access-control-request-method").is_some()
            && req.header("origin").is_some()
    }
}

/// Any backend is a policy with the default settings.
impl<B: Backend + 'static> From<B> for Policy {
    fn from(backend: B) -> Self {
        Policy::new(backend)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("optional", &self.0.optional)
            .field("preflight_passthrough", &self.0.preflight_passthrough)
            .field("realm", &self.0.realm)
            .field("async_transport", &self.0.async_transport.is_some())
            .finish_non_exhaustive()
    }
}
