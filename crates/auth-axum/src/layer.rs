//! [`AuthLayer`] and [`AuthService`]: authenticate every request of a
//! router, before the handler runs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use auth_core::request::PeerAddr;
use auth_core::transport::{Transport, UreqTransport};
use auth_core::{AuthError, Backend};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, Request, header};
use tower::{Layer, Service};

use crate::drive::resolve;
use crate::rejection::AuthRejection;

/// How the authentication went, left in the request extensions by the layer
/// for the extractors: `Ok(())` with an `AuthData` beside it, or the error
/// the optional mode let through.
#[derive(Clone, Debug)]
pub(crate) struct Checked(
    pub(crate) Result<(), AuthError>,
    pub(crate) Option<Arc<str>>,
);

/// The shared settings of [`AuthLayer`] and
/// [`AuthState`](crate::AuthState).
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) optional: bool,
    pub(crate) preflight_passthrough: bool,
    pub(crate) realm: Option<Arc<str>>,
}

impl Config {
    pub(crate) fn new(backend: impl Backend + 'static) -> Self {
        Config {
            backend: Arc::new(backend),
            transport: Arc::new(UreqTransport::new()),
            optional: false,
            preflight_passthrough: true,
            realm: None,
        }
    }

    pub(crate) fn rejection(&self, error: AuthError, parts: &Parts) -> AuthRejection {
        let no_peer = matches!(error, AuthError::Misconfigured { .. })
            && parts.extensions.get::<PeerAddr>().is_none();
        if no_peer {
            AuthRejection::MissingConnectInfo
        } else {
            AuthRejection::new(error, self.realm.as_deref())
        }
    }
}

/// Makes the peer address from axum's `ConnectInfo` visible to the core.
pub(crate) fn add_peer_addr(parts: &mut Parts) {
    if parts.extensions.get::<PeerAddr>().is_none()
        && let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>()
    {
        let addr = *addr;
        parts.extensions.insert(PeerAddr(addr));
    }
}

/// A tower [`Layer`] that authenticates each request with a core backend
/// (any backend, or a [`Chain`](auth_core::Chain) of them).
///
/// - **Required** (default): a request that cannot be identified gets the
///   core error's status, `WWW-Authenticate` and a short JSON body; the
///   handler does not run.
/// - **Optional** ([`optional`](Self::optional)): a request *without*
///   credentials goes through without identity; invalid credentials are
///   still refused (never downgraded).
/// - On success the [`AuthData`](auth_core::AuthData) is in the request
///   extensions (use the [`Auth`](crate::Auth) extractor). When a backend
///   issued an anonymous session, its `Set-Cookie` is **appended** to the
///   handler's response; the handler's own cookies stay.
/// - CORS preflights (`OPTIONS` with `Access-Control-Request-Method`) pass
///   through untouched by default ([`preflight_passthrough`](Self::preflight_passthrough)).
/// - Network steps (introspection, JWKS) run on tokio's blocking pool; local
///   answers and cache hits never leave the request's task.
///
/// ```
/// use auth_axum::{Auth, AuthLayer};
/// use auth_core::{AnonSessionBackend, Chain, JwtBackend, JwtValidator};
/// use auth_core::jwt::Algorithm;
/// use axum::{Router, routing::get};
///
/// async fn whoami(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// let jwt = JwtValidator::builder([Algorithm::HS256])
///     .hmac_secret(b"a 32-byte or longer shared secret!")
///     .build()?;
/// let backend = Chain::new()
///     .or(JwtBackend::new(jwt))
///     .or(AnonSessionBackend::new("anon")?);
/// let app: Router = Router::new().route("/whoami", get(whoami)).layer(AuthLayer::new(backend));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    config: Config,
}

impl AuthLayer {
    /// Requires an identity from `backend` on every request.
    pub fn new(backend: impl Backend + 'static) -> Self {
        AuthLayer {
            config: Config::new(backend),
        }
    }

    /// Lets requests without credentials through without identity.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.config.optional = true;
        self
    }

    /// Whether CORS preflight requests skip authentication (default `true`).
    #[must_use]
    pub fn preflight_passthrough(mut self, yes: bool) -> Self {
        self.config.preflight_passthrough = yes;
        self
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.config.realm = Some(realm.into());
        self
    }

    /// The transport for network steps (default: [`UreqTransport`] with its
    /// default timeouts).
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.config.transport = Arc::new(transport);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The [`Service`] of [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    config: Arc<Config>,
}

fn is_preflight(req: &Request<Body>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone is the fresh service for next time; the ready one serves.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            if config.preflight_passthrough && is_preflight(&req) {
                return inner.call(req).await;
            }
            let (mut parts, body) = req.into_parts();
            add_peer_addr(&mut parts);
            let outcome = config.backend.authenticate(&parts, SystemTime::now());
            let result = resolve(outcome, &parts, &config.transport).await;
            let set_cookie = match result {
                Ok(who) => {
                    parts.extensions.insert(who.auth);
                    if config.realm.is_some() {
                        // Only extractors that reject later (Scoped) need it.
                        parts
                            .extensions
                            .insert(Checked(Ok(()), config.realm.clone()));
                    }
                    who.set_cookie
                }
                Err(error) if config.optional && error.is_missing() => {
                    parts
                        .extensions
                        .insert(Checked(Err(error), config.realm.clone()));
                    None
                }
                Err(error) => return Ok(config.rejection(error, &parts).into_response()),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        })
    }
}
