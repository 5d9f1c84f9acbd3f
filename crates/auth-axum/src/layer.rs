//! [`AuthLayer`] and [`AuthService`]: authenticate every request of a
//! router, before the handler runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use auth_core::request::RequestView;
use auth_core::transport::Transport;
use auth_core::{AuthError, Authenticated, Backend, Credential, Outcome, Policy};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Request, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::drive::resolve;
use crate::rejection::AuthRejection;
use crate::view::AxumView;

/// How the authentication went, left in the request extensions by the layer
/// for the extractors when they may still have to refuse: the error the
/// optional mode let through, and the policy (for its realm).
#[derive(Clone)]
pub(crate) struct Checked(pub(crate) Result<(), AuthError>, pub(crate) Arc<Policy>);

/// The rejection for `error`: a missing `ConnectInfo` is named as such.
pub(crate) fn rejection(policy: &Policy, error: AuthError, view: AxumView<'_>) -> AuthRejection {
    if matches!(error, AuthError::Misconfigured { .. }) && view.peer_addr().is_none() {
        AuthRejection::MissingConnectInfo
    } else {
        AuthRejection::new(error, policy.realm_name())
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
    policy: Policy,
}

impl AuthLayer {
    /// Requires an identity from `backend` on every request.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Self::with_policy(Policy::new(backend))
    }

    /// Applies a core [`Policy`] (the builder methods below are shortcuts
    /// to it).
    pub fn with_policy(policy: Policy) -> Self {
        AuthLayer { policy }
    }

    fn map(mut self, change: impl FnOnce(Policy) -> Policy) -> Self {
        self.policy = change(self.policy);
        self
    }

    /// Lets requests without credentials through without identity
    /// ([`Policy::optional`]).
    #[must_use]
    pub fn optional(self) -> Self {
        self.map(Policy::optional)
    }

    /// Whether CORS preflight requests skip authentication (default `true`).
    #[must_use]
    pub fn preflight_passthrough(self, yes: bool) -> Self {
        self.map(|p| p.preflight_passthrough(yes))
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        self.map(|p| p.realm(realm))
    }

    /// The transport for network steps (default: the core's
    /// `UreqTransport` with its default timeouts).
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        self.map(|p| p.transport(transport))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: Arc::new(self.policy.clone()),
        }
    }
}

/// The [`Service`] of [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let policy = &self.policy;
        let preflight = req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if policy.skips(req.method().as_str(), preflight) {
            // Not authenticated, but the layer ran: Option<Auth> is None
            // (not "layer missing").
            let mut req = req;
            let untried = AuthError::MissingCredentials(Credential::Bearer);
            req.extensions_mut()
                .insert(Checked(Err(untried), Arc::clone(policy)));
            return AuthFuture::handler(self.inner.call(req), None);
        }
        let (mut parts, body) = req.into_parts();
        let outcome = policy
            .backend()
            .authenticate(&AxumView(&parts), SystemTime::now());
        if let Outcome::Done(result) = outcome {
            // The common case (local backends, cache hits): decided here,
            // and the ready inner service is called at once.
            return match admit(policy, result, &mut parts) {
                Ok(set_cookie) => AuthFuture::handler(
                    self.inner.call(Request::from_parts(parts, body)),
                    set_cookie,
                ),
                Err(rejection) => AuthFuture::rejected(rejection.into_response()),
            };
        }
        // A network step: the ready service goes into the future, a clone
        // stays for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = Arc::clone(policy);
        AuthFuture::network(Box::pin(async move {
            let result = {
                let view = AxumView(&parts);
                resolve(outcome, &view, policy.shared_transport()).await
            };
            match admit(&policy, result, &mut parts) {
                Ok(set_cookie) => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(with_cookie(response, set_cookie))
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        }))
    }
}

/// Applies the decision to the request: the identity (or, for a refusal
/// the policy lets through, the error) into its extensions and the cookie
/// to set; or the rejection to answer with.
fn admit(
    policy: &Arc<Policy>,
    result: Result<Authenticated, AuthError>,
    parts: &mut Parts,
) -> Result<Option<HeaderValue>, AuthRejection> {
    match result {
        Ok(who) => {
            parts.extensions.insert(who.auth);
            if policy.realm_name().is_some() {
                // Only extractors that reject later (Scoped) need it.
                parts.extensions.insert(Checked(Ok(()), Arc::clone(policy)));
            }
            Ok(who.set_cookie.and_then(|c| HeaderValue::try_from(c).ok()))
        }
        Err(error) if policy.lets_through(&error) => {
            parts
                .extensions
                .insert(Checked(Err(error), Arc::clone(policy)));
            Ok(None)
        }
        Err(error) => Err(rejection(policy, error, AxumView(parts))),
    }
}

/// Appends an issued anonymous-session cookie (never replacing the
/// handler's own `Set-Cookie` headers).
fn with_cookie(mut response: Response, set_cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

type NetworkFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`AuthService`]. When the backend decides at
    /// once (local backends, cache hits) it is the handler's own future, or
    /// the rejection, with no allocation; only a request that needs a
    /// network step is boxed.
    pub struct AuthFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Handler { #[pin] future: F, set_cookie: Option<HeaderValue> },
        Rejected { response: Option<Response> },
        Network { future: NetworkFuture<E> },
    }
}

impl<F, E> AuthFuture<F, E> {
    fn handler(future: F, set_cookie: Option<HeaderValue>) -> Self {
        AuthFuture {
            state: State::Handler { future, set_cookie },
        }
    }

    fn rejected(response: Response) -> Self {
        AuthFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn network(future: NetworkFuture<E>) -> Self {
        AuthFuture {
            state: State::Network { future },
        }
    }
}

impl<F, E> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Handler { future, set_cookie } => future
                .poll(cx)
                .map_ok(|response| with_cookie(response, set_cookie.take())),
            StateProj::Rejected { response } => {
                #[allow(clippy::expect_used, reason = "the Future contract")]
                let response = response.take().expect("AuthFuture polled after completion");
                Poll::Ready(Ok(response))
            }
            StateProj::Network { future } => future.as_mut().poll(cx),
        }
    }
}
