//! [`Authentication`], [`AuthenticationMiddleware`] and [`AuthFuture`]:
//! the core gate's decision for every request of an app, scope or
//! resource, rendered in actix-web's types before the handler runs.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use auth_core::step::Limiter;
use auth_core::{Additions, Decision, Gate, Gated, Proceed};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

use crate::convert;
use crate::drive::drive;
use crate::view::ActixView;

/// Applies a core [`Gate`] (authentication, and rate limits if it has
/// them) to each request (wrap an `App`, a `Scope` or a `Resource`),
/// rendering its decision with the same statuses, headers and bodies as
/// `auth-axum`:
///
/// - **proceed**: the [`Verdict`](auth_core::Verdict) goes in the request
///   extensions for the extractors; the [`Additions`] (an issued session's
///   `Set-Cookie`, the `RateLimit` fields) are appended to the handler's
///   response;
/// - **refuse**: the gate's answer (401, 403, 429, 503 ...); the handler
///   does not run.
///
/// Local decisions are made in `Service::call` and return the handler's own
/// future; steps run in a boxed future: network sends on actix's blocking
/// pool (`web::block`) or the policy's async transport, a shared store's
/// round trip on the worker.
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

/// Appends the additions to the handler's response (actix-web 4 speaks
/// `http` 0.2: names and values are carried over as bytes).
fn append<B>(additions: Additions, mut response: ServiceResponse<B>) -> ServiceResponse<B> {
    if additions.is_empty() {
        return response;
    }
    let headers = response.headers_mut();
    for (name, value) in additions {
        if let Some((name, value)) = convert::header(&name, &value) {
            headers.append(name, value);
        }
    }
    response
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
                let response = req
                    .into_response(convert::refusal(refusal))
                    .map_into_right_body();
                return AuthFuture {
                    state: State::Ready {
                        response: Some(response),
                    },
                };
            }
            Gated::Pending(pending) => pending,
        };
        let service = Rc::clone(&self.service);
        let future: Boxed<B> = Box::pin(async move {
            match drive(pending, &ActixView(req.request())).await {
                Decision::Proceed(mut decision) => {
                    let additions = proceed(&mut decision, &req);
                    let response = service.call(req).await?;
                    Ok(append(additions, response).map_into_left_body())
                }
                Decision::Refuse(refusal) => Ok(req
                    .into_response(convert::refusal(refusal))
                    .map_into_right_body()),
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
        Ready { response: Option<ServiceResponse<EitherBody<B>>> },
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
            StateProj::Handler { future, additions } => future.poll(cx).map_ok(|response| {
                append(std::mem::take(additions), response).map_into_left_body()
            }),
            StateProj::Ready { response } => {
                #[allow(clippy::expect_used, reason = "the Future contract")]
                let response = response
                    .take()
                    .expect("response future polled after completion");
                Poll::Ready(Ok(response))
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
