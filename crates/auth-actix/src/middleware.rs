//! [`Authentication`]: actix-web middleware that applies a core policy to
//! every request of an app, scope or resource before the handler runs.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpMessage};
use auth_core::{Deciding, Decision, Policy, Refusal};
use pin_project_lite::pin_project;

use crate::convert;
use crate::drive::drive;
use crate::rejection::render;
use crate::respond::{self, AddTo, Responding};
use crate::view::ActixView;

/// Applies a core [`Policy`] to each request (wrap an `App`, a `Scope` or a
/// `Resource`), rendering the core's decision with the same statuses,
/// headers and bodies as `auth-axum`:
///
/// - **admit**: the [`Verdict`](auth_core::Verdict) (the identity) goes in
///   the request extensions for the extractors; an issued anonymous
///   session's `Set-Cookie` is appended to the handler's response;
/// - **pass through** (a CORS preflight; optional mode without
///   credentials): the handler runs without an identity;
/// - **refuse**: the core's answer; the handler does not run.
///
/// Local decisions are made in `Service::call` and return the handler's own
/// future; network steps run on actix's blocking pool (`web::block`), or on
/// the policy's async transport.
///
/// ```
/// use actix_web::{App, web};
/// use auth_actix::{Auth, Authentication};
/// use auth_core::AnonSessionBackend;
///
/// async fn whoami(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// let app = App::new()
///     .wrap(Authentication::new(AnonSessionBackend::new("anon")?))
///     .route("/whoami", web::get().to(whoami));
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Authentication {
    policy: Policy,
}

impl Authentication {
    /// Applies `policy`: a [`Policy`], or any backend (required mode,
    /// default settings).
    pub fn new(policy: impl Into<Policy>) -> Self {
        Authentication {
            policy: policy.into(),
        }
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
            policy: self.policy.clone(),
        }))
    }
}

/// The service [`Authentication`] wraps around the app.
pub struct AuthenticationMiddleware<S> {
    service: Rc<S>,
    policy: Policy,
}

/// Leaves the verdict for the extractors and returns the cookie to append;
/// or the refusal.
fn apply(decision: Decision, req: &ServiceRequest) -> Result<Option<HeaderValue>, Refusal> {
    let (verdict, set_cookie) = decision.into_verdict()?;
    req.extensions_mut().insert(verdict);
    Ok(set_cookie.as_ref().and_then(convert::value))
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
        // The view borrows actix's request (no copy, and no clone: actix
        // must own it alone again when it routes below).
        let decided = self
            .policy
            .decide(&ActixView(req.request()), SystemTime::now());
        let pending = match decided {
            // The common case (local backends, cache hits): decided here,
            // and the service is called at once.
            Deciding::Done(decision) => {
                return match apply(decision, &req) {
                    Ok(set_cookie) => AuthFuture {
                        inner: Responding::handler(self.service.call(req), set_cookie),
                    },
                    Err(refusal) => AuthFuture {
                        inner: Responding::ready(
                            req.into_response(render(refusal)).map_into_right_body(),
                        ),
                    },
                };
            }
            Deciding::Pending(pending) => pending,
        };
        let service = Rc::clone(&self.service);
        AuthFuture {
            inner: Responding::boxed(Box::pin(async move {
                let decision = drive(pending, &ActixView(req.request())).await;
                match apply(decision, &req) {
                    Ok(set_cookie) => {
                        let response = service.call(req).await?;
                        Ok(respond::with(response, set_cookie).map_into_left_body())
                    }
                    Err(refusal) => Ok(req.into_response(render(refusal)).map_into_right_body()),
                }
            })),
        }
    }
}

/// An issued anonymous-session cookie, appended (never replacing the
/// handler's own `Set-Cookie` headers).
impl AddTo for HeaderValue {
    fn add_to<B>(self, mut response: ServiceResponse<B>) -> ServiceResponse<B> {
        response.headers_mut().append(header::SET_COOKIE, self);
        response
    }
}

pin_project! {
    /// The response future of [`AuthenticationMiddleware`]: the handler's
    /// own future (plus the cookie to append) or the ready refusal when the
    /// decision was local, with no allocation; a boxed future only when
    /// network steps had to be driven.
    pub struct AuthFuture<F, B> {
        #[pin]
        inner: Responding<F, B, HeaderValue>,
    }
}

impl<F, B> Future for AuthFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
