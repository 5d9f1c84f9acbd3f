//! [`AuthLayer`] and [`AuthService`]: the core's decision for every request
//! of a service, before the handler runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use auth_core::{Deciding, Decision, Policy, Refusal};
use http::{Extensions, HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::drive::drive;
use crate::respond::{self, AddTo, Responding};
use crate::view::View;

/// A tower [`Layer`] that applies a core [`Policy`] to every request of the
/// service it wraps: an axum `Router` (`.layer`, `.route_layer`), a plain
/// hyper service, anything that takes an `http::Request<B>` and answers an
/// `http::Response<ResBody>` whose body can be built from a `String`
/// (axum's `Body`, `http_body_util::Full<Bytes>`).
///
/// It renders the core's [`Decision`]:
/// - **admit**: the [`Verdict`](auth_core::Verdict) (the identity) goes in
///   the request extensions for the extractors; an issued anonymous
///   session's `Set-Cookie` is **appended** to the handler's response (its
///   own cookies stay);
/// - **pass through** (a CORS preflight; optional mode without
///   credentials): the handler runs without an identity;
/// - **refuse**: the core's status, headers and body; the handler does not
///   run.
///
/// A local decision (local backends, cache hits) is made inside
/// `Service::call` and the handler's own future is returned, unboxed.
/// Network steps (introspection, key fetches) run on tokio's blocking pool,
/// or on the policy's [async transport](Policy::async_transport).
///
/// ```
/// use auth_axum::{Auth, AuthLayer};
/// use auth_core::{AnonSessionBackend, Chain, JwtBackend, JwtValidator, Policy};
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
///
/// // Settings beyond the backend are the core's Policy:
/// let policy = Policy::new(AnonSessionBackend::new("anon")?).realm("api");
/// let app: Router = app.layer(AuthLayer::new(policy));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthLayer {
    policy: Policy,
}

impl AuthLayer {
    /// Applies `policy`: a [`Policy`], or any backend (required mode,
    /// default settings).
    pub fn new(policy: impl Into<Policy>) -> Self {
        AuthLayer {
            policy: policy.into(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The [`Service`] of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    policy: Policy,
}

/// Leaves the verdict in the request for the extractors and returns the
/// cookie to append; or the refusal.
fn apply(decision: Decision, extensions: &mut Extensions) -> Result<Option<HeaderValue>, Refusal> {
    let (verdict, set_cookie) = decision.into_verdict()?;
    extensions.insert(verdict);
    Ok(set_cookie)
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
        let pending = match self.policy.decide(&View(&req), SystemTime::now()) {
            // The common case (local backends, cache hits): decided here,
            // and the ready inner service is called at once.
            Deciding::Done(decision) => {
                return match apply(decision, req.extensions_mut()) {
                    Ok(set_cookie) => AuthFuture {
                        inner: Responding::handler(self.inner.call(req), set_cookie),
                    },
                    Err(refusal) => AuthFuture {
                        inner: Responding::ready(refusal.into_response()),
                    },
                };
            }
            Deciding::Pending(pending) => pending,
        };
        // A network step: the ready service goes into the future, a clone
        // stays for next time. The future holds the request's parts (Sync)
        // across the wait, not the request (its body need not be Sync).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        AuthFuture {
            inner: Responding::boxed(Box::pin(async move {
                let decision = drive(pending, &View(&parts)).await;
                match apply(decision, &mut parts.extensions) {
                    Ok(set_cookie) => {
                        let response = inner.call(Request::from_parts(parts, body)).await?;
                        Ok(respond::with(response, set_cookie))
                    }
                    Err(refusal) => Ok(refusal.into_response()),
                }
            })),
        }
    }
}

/// An issued anonymous-session cookie, appended (never replacing the
/// handler's own `Set-Cookie` headers).
impl<B> AddTo<B> for HeaderValue {
    fn add_to(self, mut response: Response<B>) -> Response<B> {
        response.headers_mut().append(header::SET_COOKIE, self);
        response
    }
}

pin_project! {
    /// The response future of [`AuthService`]: the handler's own future
    /// (plus the cookie to append) or the ready refusal when the decision
    /// was local, with no allocation; a boxed future only when network steps
    /// had to be driven.
    pub struct AuthFuture<F, B, E> {
        #[pin]
        inner: Responding<F, B, E, HeaderValue>,
    }
}

impl<F, B, E> Future for AuthFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
