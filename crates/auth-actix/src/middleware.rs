//! [`Authentication`], [`AuthenticationMiddleware`] and [`AuthFuture`]:
//! the core gate's decision for every request, rendered before the handler.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use auth_core::step::Limiter;
use auth_core::{Additions, Decision, Gate, Gated, Proceed, Refusal};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

use crate::convert;
use crate::drive::Actix;
use crate::view::ActixView;

/// Applies a core [`Gate`] (authentication, and rate limits if it has
/// them) to each request of an `App`, a `Scope` or a `Resource`:
///
/// - **proceed**: the [`Verdict`](auth_core::Verdict) goes in the request
///   extensions for the extractors; the [`Additions`] (`Set-Cookie`,
///   `RateLimit` fields) are appended to the handler's response;
/// - **refuse**: the gate's answer (401, 403, 429, 503 ...); the handler
///   does not run.
///
/// Local decisions return the handler's own future; steps run in a boxed
/// future: network sends on `web::block` or the policy's async transport,
/// a shared store's round trip on the worker.
///
/// ```
/// use actix_web::{App, web};
/// use auth_actix::{Auth, Authentication};
/// use auth_core::AnonSessionBackend;
/// use auth_throttle::{MemoryStore, Quota, Rule, Throttle};
/// use std::time::Duration;
///
/// async fn whoami(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// let limits = Throttle::builder(MemoryStore::default())
///     .rule(Rule::new("per-caller", Quota::new(100, Duration::from_secs(60))?)?)
///     .build()?;
/// let app = App::new()
///     .wrap(Authentication::new(AnonSessionBackend::new("anon")?).throttle(limits))
///     .route("/whoami", web::get().to(whoami));
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Authentication {
    gate: Gate,
}

impl Authentication {
    /// Applies `gate`: a [`Gate`], a [`Policy`](auth_core::Policy), or any
    /// backend (required, default settings).
    pub fn new(gate: impl Into<Gate>) -> Self {
        Authentication { gate: gate.into() }
    }

    /// Adds rate limits (an `auth_throttle::Throttle`, or any
    /// [`Limiter`]), applied after authentication on the same request; for
    /// rate limits alone, start from
    /// [`Gate::without_auth`](auth_core::Gate::without_auth).
    #[must_use]
    pub fn throttle(self, limiter: impl Limiter + 'static) -> Self {
        Authentication {
            gate: self.gate.throttle(limiter),
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
            gate: self.gate.clone(),
        }))
    }
}

/// The service [`Authentication`] wraps around the app.
pub struct AuthenticationMiddleware<S> {
    service: Rc<S>,
    gate: Gate,
}

/// Leaves the verdict (if any) for the extractors; the additions are for
/// the response.
fn proceed(proceed: &mut Proceed, req: &ServiceRequest) -> Additions {
    if let Some(verdict) = proceed.verdict.take() {
        req.extensions_mut().insert(verdict);
    }
    std::mem::take(&mut proceed.additions)
}

/// The handler's response with the additions appended.
fn answer<B>(additions: Additions, mut response: ServiceResponse<B>) -> Answer<B> {
    if !additions.is_empty() {
        convert::append(response.headers_mut(), additions);
    }
    Ok(response.map_into_left_body())
}

/// A refusal, answered in place of the handler.
fn refused<B>(req: ServiceRequest, refusal: Refusal) -> ServiceResponse<EitherBody<B>> {
    req.into_response(convert::refusal(refusal))
        .map_into_right_body()
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
            .gate
            .decide(&ActixView(req.request()), SystemTime::now());
        let pending = match decided {
            // The common case (local backends, cache hits, in-process
            // counters): decided here, and the service is called at once.
            Gated::Done(Decision::Proceed(mut decision)) => {
                let additions = proceed(&mut decision, &req);
                let future = self.service.call(req);
                return AuthFuture {
                    state: State::Handler { future, additions },
                };
            }
            Gated::Done(Decision::Refuse(refusal)) => {
                let response = ready(Ok(refused(req, refusal)));
                return AuthFuture {
                    state: State::Refused { response },
                };
            }
            Gated::Pending(pending) => pending,
        };
        let service = Rc::clone(&self.service);
        let future: Boxed<B> = Box::pin(async move {
            match pending.drive(&ActixView(req.request()), &Actix).await {
                Decision::Proceed(mut decision) => {
                    let additions = proceed(&mut decision, &req);
                    answer(additions, service.call(req).await?)
                }
                Decision::Refuse(refusal) => Ok(refused(req, refusal)),
            }
        });
        AuthFuture {
            state: State::Boxed { future },
        }
    }
}

/// The answer: the handler's body, or a refusal's.
type Answer<B> = Result<ServiceResponse<EitherBody<B>>, Error>;

/// A decision that had to wait for steps, with the inner service's call.
type Boxed<B> = LocalBoxFuture<'static, Answer<B>>;

pin_project! {
    /// The response future of [`AuthenticationMiddleware`]: the handler's
    /// own future (plus the fields to append) or the ready refusal when the
    /// decision was local, with no allocation; a boxed future only when
    /// steps had to be driven.
    pub struct AuthFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // The handler runs; its response gets the additions.
        Handler { #[pin] future: F, additions: Additions },
        // Refused: the answer is ready.
        Refused { response: Ready<Answer<B>> },
        // Steps first.
        Boxed { future: Boxed<B> },
    }
}

impl<F, B> Future for AuthFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Answer<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Handler { future, additions } => future
                .poll(cx)
                .map(|response| answer(std::mem::take(additions), response?)),
            StateProj::Refused { response } => Pin::new(response).poll(cx),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
