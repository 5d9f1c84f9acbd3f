//! [`Authentication`]: actix-web middleware that authenticates every request
//! of a scope or app before the handler runs.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpMessage, HttpRequest, ResponseError};
use auth_core::transport::{Transport, UreqTransport};
use auth_core::{AuthError, Backend};
use futures_util::future::LocalBoxFuture;

use crate::drive::resolve;
use crate::rejection::AuthRejection;
use crate::view::ActixView;

/// What the middleware left for the extractors when it let a request
/// through without identity (optional mode).
#[derive(Clone, Debug)]
pub(crate) struct Unidentified(pub(crate) AuthError, pub(crate) Option<Arc<str>>);

/// Settings shared by the middleware and [`AuthState`](crate::AuthState).
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
}

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
    config: Arc<Config>,
}

impl Authentication {
    /// Requires an identity from `backend` on every request.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Authentication {
            config: Arc::new(Config::new(backend)),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Lets requests without credentials through without identity.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with(|c| c.optional = true)
    }

    /// Whether CORS preflight requests skip authentication (default `true`).
    #[must_use]
    pub fn preflight_passthrough(self, yes: bool) -> Self {
        self.with(|c| c.preflight_passthrough = yes)
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        self.with(|c| c.realm = Some(realm.into()))
    }

    /// The transport for network steps (default: [`UreqTransport`]).
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        self.with(|c| c.transport = Arc::new(transport))
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
            config: Arc::clone(&self.config),
        }))
    }
}

/// The service [`Authentication`] wraps around the app.
pub struct AuthenticationMiddleware<S> {
    service: Rc<S>,
    config: Arc<Config>,
}

fn is_preflight(req: &HttpRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
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
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            if config.preflight_passthrough && is_preflight(req.request()) {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            }
            // The view borrows actix's request (no copy, and no clone: actix
            // must own it alone again when it routes below).
            let result = {
                let view = ActixView(req.request());
                let outcome = config.backend.authenticate(&view, SystemTime::now());
                resolve(outcome, &view, &config.transport).await
            };
            let set_cookie = match result {
                Ok(who) => {
                    req.extensions_mut().insert(who.auth);
                    who.set_cookie
                }
                Err(error) if config.optional && error.is_missing() => {
                    req.extensions_mut()
                        .insert(Unidentified(error, config.realm.clone()));
                    None
                }
                Err(error) => {
                    let rejection = AuthRejection::new(error, config.realm.as_deref());
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
