//! [`ThrottleLayer`] (feature `throttle`): an `auth-throttle` decision for
//! every request, after [`AuthLayer`](crate::AuthLayer) found who it is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use auth_core::Verdict;
use auth_throttle::{Allowance, Checked, Throttle, Throttled};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::respond::{AddTo, Responding};
use crate::view::View;

/// A tower [`Layer`] that applies an [`auth_throttle::Throttle`]: put it
/// inside [`AuthLayer`](crate::AuthLayer) (applied after it, so it reads the
/// identity the auth layer left), on a router or per route
/// (`route_layer`).
///
/// - allowed: the handler runs; its response gets the `RateLimit` fields
///   of the most constrained rule;
/// - over a limit: the throttle's 429 (`Retry-After`, `RateLimit-Policy`,
///   `RateLimit`, problem+json), the handler does not run; an anonymous
///   session issued by the auth layer still gets its `Set-Cookie`;
/// - with a Redis store, one round trip per request, on the request's task.
///
/// ```
/// use auth_axum::{Auth, AuthLayer, ThrottleLayer};
/// use auth_core::AnonSessionBackend;
/// use auth_throttle::{MemoryStore, Quota, Rule, Throttle};
/// use axum::{Router, routing::get};
/// use std::time::Duration;
///
/// let throttle = Throttle::builder(MemoryStore::default())
///     .rule(Rule::new("per-caller", Quota::new(3, Duration::from_secs(10)))?)
///     .build()?;
/// let app: Router = Router::new()
///     .route("/limited", get(|Auth(who): Auth| async move { who.key() }))
///     .layer(ThrottleLayer::new(throttle))
///     .layer(AuthLayer::new(AnonSessionBackend::new("anon")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ThrottleLayer {
    throttle: Throttle,
}

impl ThrottleLayer {
    /// Applies `throttle`.
    pub fn new(throttle: Throttle) -> Self {
        ThrottleLayer { throttle }
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = ThrottleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService {
            inner,
            throttle: self.throttle.clone(),
        }
    }
}

/// The [`Service`] of [`ThrottleLayer`].
#[derive(Clone, Debug)]
pub struct ThrottleService<S> {
    inner: S,
    throttle: Throttle,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ThrottleService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ThrottleFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let verdict = req.extensions().get::<Verdict>();
        let step = match self.throttle.check(verdict, &View(&req), SystemTime::now()) {
            Checked::Done(Throttled::Allow(allowance)) => {
                return ThrottleFuture {
                    inner: Responding::handler(self.inner.call(req), Some(allowance)),
                };
            }
            Checked::Done(Throttled::Deny(refusal)) => {
                return ThrottleFuture {
                    inner: Responding::ready(refusal.into_response()),
                };
            }
            Checked::Store(step) => step,
        };
        // A round trip to the shared store first: the ready service goes
        // into the future, a clone stays for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ThrottleFuture {
            inner: Responding::boxed(Box::pin(async move {
                match step.run().await {
                    Throttled::Allow(allowance) => {
                        let response = inner.call(req).await?;
                        Ok(allowance.add_to(response))
                    }
                    Throttled::Deny(refusal) => Ok(refusal.into_response()),
                }
            })),
        }
    }
}

/// The allowed request's `RateLimit` fields, appended to its response.
impl<B> AddTo<B> for Allowance {
    fn add_to(self, mut response: Response<B>) -> Response<B> {
        let map = response.headers_mut();
        for (name, value) in self.into_headers() {
            map.append(name, value);
        }
        response
    }
}

pin_project! {
    /// The response future of [`ThrottleService`]: the handler's own future
    /// (plus the headers to add) or the ready refusal with the in-process
    /// store, unboxed; a boxed future only for a round trip to a shared
    /// store.
    pub struct ThrottleFuture<F, B, E> {
        #[pin]
        inner: Responding<F, B, E, Allowance>,
    }
}

impl<F, B, E> Future for ThrottleFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
