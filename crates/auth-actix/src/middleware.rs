//! [`Authentication`]: actix-web middleware that authenticates every request
//! of a scope or app before the handler runs.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpMessage, ResponseError};
use auth_core::transport::Transport;
use auth_core::{AuthError, Backend, Policy};
use futures_util::future::LocalBoxFuture;

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
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let preflight = req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if policy.skips(req.method().as_str(), preflight) {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            }
            // The view borrows actix's request (no copy, and no clone: actix
            // must own it alone again when it routes below).
            let result = {
                let view = ActixView(req.request());
                let outcome = policy.backend().authenticate(&view, SystemTime::now());
                resolve(outcome, &view, policy.shared_transport()).await
            };
            let set_cookie = match result {
                Ok(who) => {
                    req.extensions_mut().insert(who.auth);
                    who.set_cookie
                }
                Err(error) if policy.lets_through(&error) => {
                    req.extensions_mut()
                        .insert(Unidentified(error, Arc::clone(&policy)));
                    None
                }
                Err(error) => {
                    let rejection = AuthRejection::new(error, policy.realm_name());
                    return Ok(req
                        .into_response(rejection.error_response())
                        .map_into_right_body());
                }
            };
            let mut response = service.call(req).await?;
            if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response.map_into_left_body())
        })
    }
}
