//! [`AuthLayer`], [`AuthService`] and [`AuthFuture`]: the core gate's
//! decision for every request, rendered before the handler runs.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use auth_core::step::Limiter;
use auth_core::{Additions, Decision, Gate, Gated, Proceed};
use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::drive::Tokio;
use crate::view::View;

/// A tower [`Layer`] that applies a core [`Gate`] (authentication, and rate
/// limits if it has them) to every request of the service it wraps: an
/// axum `Router` (`.layer`, `.route_layer`), a plain hyper service,
/// anything that takes an `http::Request<B>` and answers an
/// `http::Response<ResBody>` whose body can be built from a `String`
/// (axum's `Body`, `http_body_util::Full<Bytes>`).
///
/// It renders the gate's [`Decision`]:
/// - **proceed**: the [`Verdict`](auth_core::Verdict) (the identity, or why
///   there is none) goes in the request extensions for the extractors; the
///   [`Additions`] (an issued session's `Set-Cookie`, the `RateLimit`
///   fields) are **appended** to the handler's response (its own cookies
///   stay);
/// - **refuse**: the gate's status, headers and body (401, 403, 429, 503
///   ...); the handler does not run.
///
/// A local decision (local backends, cache hits, in-process counters) is
/// made inside `Service::call` and the handler's own future is returned,
/// unboxed. Steps (introspection, key fetches, a shared store's round trip)
/// run in a boxed future: network sends on tokio's blocking pool, or on the
/// policy's [async transport](auth_core::Policy::async_transport).
///
/// ```
/// use auth_axum::{Auth, AuthLayer};
/// use auth_core::{AnonSessionBackend, Policy};
/// use auth_throttle::{MemoryStore, Quota, Rule, Throttle};
/// use axum::{Router, routing::get};
/// use std::time::Duration;
///
/// async fn whoami(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// // Any backend, or a Policy for settings beyond it; rate limits optional.
/// let policy = Policy::new(AnonSessionBackend::new("anon")?).realm("api");
/// let limits = Throttle::builder(MemoryStore::default())
///     .rule(Rule::new("per-caller", Quota::new(100, Duration::from_secs(60))?)?)
///     .build()?;
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .route_layer(AuthLayer::new(policy).throttle(limits));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthLayer {
    gate: Gate,
}

impl AuthLayer {
    /// Applies `gate`: a [`Gate`], a [`Policy`](auth_core::Policy), or any
    /// backend (required, default settings).
    pub fn new(gate: impl Into<Gate>) -> Self {
        AuthLayer { gate: gate.into() }
    }

    /// Adds rate limits (an `auth_throttle::Throttle`, or any
    /// [`Limiter`]), applied after authentication on the same request; for
    /// rate limits alone, start from
    /// [`Gate::without_auth`](auth_core::Gate::without_auth).
    #[must_use]
    pub fn throttle(self, limiter: impl Limiter + 'static) -> Self {
        AuthLayer {
            gate: self.gate.throttle(limiter),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The [`Service`] of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    gate: Gate,
}

/// Leaves the verdict (if any) for the extractors; returns the additions.
fn proceed(proceed: &mut Proceed, extensions: &mut Extensions) -> Additions {
    if let Some(verdict) = proceed.verdict.take() {
        extensions.insert(verdict);
    }
    std::mem::take(&mut proceed.additions)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let pending = match self.gate.decide(&View(&req), SystemTime::now()) {
            // The common case (local backends, cache hits, in-process
            // counters): decided here, and the ready inner service is
            // called at once.
            Gated::Done(Decision::Proceed(mut decision)) => {
                let additions = proceed(&mut decision, req.extensions_mut());
                return AuthFuture {
                    state: State::Handler {
                        future: self.inner.call(req),
                        additions,
                    },
                };
            }
            Gated::Done(Decision::Refuse(refusal)) => {
                let response = ready(Ok(refusal.into_response()));
                return AuthFuture {
                    state: State::Refused { response },
                };
            }
            Gated::Pending(pending) => pending,
        };
        // Steps first: the ready service goes into the future, a clone
        // stays for next time. The future holds the request's parts (Sync)
        // across the wait, not the request (its body need not be Sync).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let future: Boxed<ResBody, S::Error> = Box::pin(async move {
            match pending.drive(&View(&parts), &Tokio).await {
                Decision::Proceed(mut decision) => {
                    let additions = proceed(&mut decision, &mut parts.extensions);
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    additions.append_to(response.headers_mut());
                    Ok(response)
                }
                Decision::Refuse(refusal) => Ok(refusal.into_response()),
            }
        });
        AuthFuture {
            state: State::Boxed { future },
        }
    }
}

/// A decision after steps, with the inner service's call.
type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`AuthService`]: the handler's own future
    /// (plus the fields to append) or the ready refusal when the decision
    /// was local, with no allocation; a boxed future only when steps had to
    /// be driven.
    pub struct AuthFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        // The handler runs; its response gets the additions.
        Handler { #[pin] future: F, additions: Additions },
        // Refused: the answer is ready.
        Refused { response: Ready<Result<Response<B>, E>> },
        // Steps first.
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E> Future for AuthFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Handler { future, additions } => future.poll(cx).map_ok(|mut response| {
                if !additions.is_empty() {
                    std::mem::take(additions).append_to(response.headers_mut());
                }
                response
            }),
            StateProj::Refused { response } => Pin::new(response).poll(cx),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
