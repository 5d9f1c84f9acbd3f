//! [`Authentication`]: actix-web middleware that authenticates every request
//! of a scope or app before the handler runs.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpMessage, ResponseError};
use auth_core::transport::Transport;
use auth_core::{AuthError, Authenticated, Backend, Outcome, Policy};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

use crate::drive::resolve;
use crate::rejection::AuthRejection;
use crate::view::ActixView;

/// What the middleware left for the extractors when it let a request
/// through without identity (optional mode), with the policy (its realm).
#[derive(Clone)]
pub(crate) struct Unidentified(pub(crate) AuthError, pub(crate) Arc<Policy>);

/// Authenticates each request with a core backend (any backend, or a
/// [`Chain`](auth_core::Chain) of them). The same modes and answers as
/// `auth-axum`'s `AuthLayer`:
///
/// - **Required** (default): unidentified requests get the core error's
///   status, `WWW-Authenticate` and JSON body; the handler does not run.
/// - **Optional** ([`optional`](Self::optional)): requests *without*
///   credentials go through without identity; invalid ones are refused.
/// - The [`AuthData`](auth_core::AuthData) goes into the request
///   extensions (extract it with [`Auth`](crate::Auth)); an issued
///   anonymous session's `Set-Cookie` is appended to the handler's response.
/// - CORS preflights pass through by default.
/// - Network steps run on actix's blocking pool (`web::block`); local answers
///   and cache hits never leave the worker.
///
/// ```
/// use actix_web::{App, web};
/// use auth_actix::{Auth, Authentication};
/// use auth_core::{AnonSessionBackend, Chain, IpBackend};
///
/// async fn whoami(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// let backend = Chain::new().or(AnonSessionBackend::new("anon")?);
/// let auth = Authentication::new(backend);
/// let app = App::new().wrap(auth).route("/whoami", web::get().to(whoami));
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Authentication {
    policy: Arc<Policy>,
}

impl Authentication {
    /// Requires an identity from `backend` on every request.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Self::with_policy(Policy::new(backend))
    }

    /// Applies a core [`Policy`] (the builder methods below are shortcuts
    /// to it).
    pub fn with_policy(policy: Policy) -> Self {
        Authentication {
            policy: Arc::new(policy),
        }
    }

    fn map(self, change: impl FnOnce(Policy) -> Policy) -> Self {
        let policy = Arc::unwrap_or_clone(self.policy);
        Self::with_policy(change(policy))
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
    /// `UreqTransport`).
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        self.map(|p| p.transport(transport))
    }
}

impl<S, B> Transform<S, ServiceRequest> for Authentication
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AuthenticationMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthenticationMiddleware {
            service: Rc::new(service),
            policy: Arc::clone(&self.policy),
        }))
    }
}

/// The service [`Authentication`] wraps around the app.
pub struct AuthenticationMiddleware<S> {
    service: Rc<S>,
    policy: Arc<Policy>,
}

impl<S, B> Service<ServiceRequest> for AuthenticationMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = AuthFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let policy = &self.policy;
        let preflight = req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if policy.skips(req.method().as_str(), preflight) {
            return AuthFuture::handler(self.service.call(req), None);
        }
        // The view borrows actix's request (no copy, and no clone: actix
        // must own it alone again when it routes below).
        let outcome = policy
            .backend()
            .authenticate(&ActixView(req.request()), SystemTime::now());
        if let Outcome::Done(result) = outcome {
            // The common case (local backends, cache hits): decided here,
            // and the service is called at once.
            return match admit(policy, result, &req) {
                Ok(set_cookie) => AuthFuture::handler(self.service.call(req), set_cookie),
                Err(rejection) => AuthFuture::rejected(
                    req.into_response(rejection.error_response())
                        .map_into_right_body(),
                ),
            };
        }
        let service = Rc::clone(&self.service);
        let policy = Arc::clone(policy);
        AuthFuture::network(Box::pin(async move {
            let result = {
                let view = ActixView(req.request());
                resolve(outcome, &view, policy.shared_transport()).await
            };
            match admit(&policy, result, &req) {
                Ok(set_cookie) => {
                    let response = service.call(req).await?;
                    Ok(with_cookie(response, set_cookie).map_into_left_body())
                }
                Err(rejection) => Ok(req
                    .into_response(rejection.error_response())
                    .map_into_right_body()),
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
    req: &ServiceRequest,
) -> Result<Option<HeaderValue>, AuthRejection> {
    match result {
        Ok(who) => {
            req.extensions_mut().insert(who.auth);
            Ok(who.set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()))
        }
        Err(error) if policy.lets_through(&error) => {
            req.extensions_mut()
                .insert(Unidentified(error, Arc::clone(policy)));
            Ok(None)
        }
        Err(error) => Err(AuthRejection::new(error, policy.realm_name())),
    }
}

/// Appends an issued anonymous-session cookie (never replacing the
/// handler's own `Set-Cookie` headers).
fn with_cookie<B>(
    mut response: ServiceResponse<B>,
    set_cookie: Option<HeaderValue>,
) -> ServiceResponse<B> {
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

type NetworkFuture<B> = LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>>;

pin_project! {
    /// The response future of [`AuthenticationMiddleware`]. When the backend
    /// decides at once (local backends, cache hits) it is the handler's own
    /// future, or the rejection, with no allocation; only a request that
    /// needs a network step is boxed.
    pub struct AuthFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Handler { #[pin] future: F, set_cookie: Option<HeaderValue> },
        Rejected { response: Option<ServiceResponse<EitherBody<B>>> },
        Network { future: NetworkFuture<B> },
    }
}

impl<F, B> AuthFuture<F, B> {
    fn handler(future: F, set_cookie: Option<HeaderValue>) -> Self {
        AuthFuture {
            state: State::Handler { future, set_cookie },
        }
    }

    fn rejected(response: ServiceResponse<EitherBody<B>>) -> Self {
        AuthFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn network(future: NetworkFuture<B>) -> Self {
        AuthFuture {
            state: State::Network { future },
        }
    }
}

impl<F, B> Future for AuthFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Handler { future, set_cookie } => future
                .poll(cx)
                .map_ok(|response| with_cookie(response, set_cookie.take()).map_into_left_body()),
            StateProj::Rejected { response } => {
                #[allow(clippy::expect_used, reason = "the Future contract")]
                let response = response.take().expect("AuthFuture polled after completion");
                Poll::Ready(Ok(response))
            }
            StateProj::Network { future } => future.as_mut().poll(cx),
        }
    }
}
