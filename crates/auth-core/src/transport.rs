//! Moving the bytes of a network step: the [`Transport`] trait, the blocking
//! driver [`authenticate_blocking`], and the default [`UreqTransport`]
//! (feature `ureq`).

use std::time::SystemTime;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Action, Authenticated, Backend, Effect, Outcome};
use crate::error::AuthError;
use crate::flight::Waiter;
use crate::request::RequestView;

pub use crate::error::TransportError;

#[cfg(feature = "ureq")]
mod ureq;
#[cfg(feature = "ureq")]
pub use self::ureq::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_LEN, DEFAULT_TIMEOUT, UreqTransport,
    UreqTransportBuilder,
};

/// Sends one HTTP request and returns the whole response, whatever its
/// status: non-2xx answers reach the backend, which decides what they mean.
///
/// Closures implement it, which is handy in tests:
///
/// ```
/// use auth_core::transport::{Transport, TransportError};
///
/// let down = |_req: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
///     Err(TransportError::Connect)
/// };
/// assert!(down.send(http::Request::new(Vec::new())).is_err());
/// ```
pub trait Transport: Send + Sync {
    /// Sends `request`.
    ///
    /// # Errors
    /// No response could be had; see [`TransportError`].
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError>;
}

impl<F> Transport for F
where
    F: Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> + Send + Sync,
{
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        self(request)
    }
}

/// A provider endpoint (JWKS, discovery, introspection): `https`, or plain
/// `http` when allowed; with a host.
pub(crate) fn endpoint_url(url: &str, allow_http: bool) -> Result<http::Uri, &'static str> {
    let uri = url.parse::<http::Uri>().map_err(|_| "is not a valid URL")?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http => Ok(uri),
        Some("http") => Err("must be https (allow_http for tests and loopback)"),
        _ => Err("must be an https URL"),
    }
}

/// The future an [`AsyncTransport`] answers with.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send>>;

/// Sends one HTTP request without blocking: your async HTTP client (hyper,
/// reqwest) for the adapters' network steps, instead of the blocking
/// [`Transport`] on a blocking pool. Same contract: the whole response,
/// whatever its status, with your own timeouts and size cap.
///
/// ```
/// use auth_core::transport::{AsyncTransport, ResponseFuture, TransportError};
///
/// struct Down;
/// impl AsyncTransport for Down {
///     fn send(&self, _request: http::Request<Vec<u8>>) -> ResponseFuture {
///         Box::pin(async { Err(TransportError::Connect) })
///     }
/// }
/// let policy = auth_core::Policy::new(auth_core::IpBackend::new()).async_transport(Down);
/// # drop(policy);
/// ```
pub trait AsyncTransport: Send + Sync {
    /// Sends `request`.
    fn send(&self, request: http::Request<Vec<u8>>) -> ResponseFuture;
}

/// Most network steps one authentication may take before the driver gives up
/// (a backend that keeps asking is a bug, not a reason to loop forever).
pub const MAX_STEPS: usize = 8;

/// Longest the blocking driver waits for another request's provider call
/// (that call has its own transport timeout; this is a backstop).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Authenticates `req` with `backend`, sending any network steps with
/// `transport` on the calling thread. For blocking callers: your own server,
/// a worker pool, a CLI. (The framework adapters drive steps without blocking
/// their executors.)
///
/// ```
/// use auth_core::{IpBackend, request::PeerAddr, transport::authenticate_blocking};
///
/// # let transport = |_: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, auth_core::transport::TransportError> { unreachable!() };
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("192.0.2.1:9".parse().unwrap()));
/// let who = authenticate_blocking(&IpBackend::new(), &req, &transport).unwrap();
/// assert_eq!(who.auth.identifier(), "192.0.2.1");
/// ```
///
/// # Errors
/// The backend's [`AuthError`].
pub fn authenticate_blocking(
    backend: &dyn Backend,
    req: &dyn RequestView,
    transport: &dyn Transport,
) -> Result<Authenticated, AuthError> {
    drive_blocking(backend.authenticate(req, SystemTime::now()), req, transport)
}

/// Drives an [`Outcome`] to its answer with `transport` (see
/// [`authenticate_blocking`]).
///
/// # Errors
/// The backend's [`AuthError`]; [`AuthError::ProviderUnavailable`] after
/// [`MAX_STEPS`] steps.
pub fn drive_blocking(
    mut outcome: Outcome,
    req: &dyn RequestView,
    transport: &dyn Transport,
) -> Result<Authenticated, AuthError> {
    for _ in 0..MAX_STEPS {
        match outcome {
            Outcome::Done(result) => return result,
            Outcome::Send(step) => {
                let (action, resume) = step.into_parts();
                outcome = match action {
                    Action::Send(request) => {
                        let response = transport.send(request);
                        if let Err(e) = &response {
                            tracing::debug!(error = %e, "authentication network step failed");
                        }
                        resume.resume(response, req, SystemTime::now())
                    }
                    Action::Wait(waiter) => {
                        waiter.wait_blocking(MAX_WAIT);
                        resume.woken(req, SystemTime::now())
                    }
                };
            }
        }
    }
    match outcome {
        Outcome::Done(result) => result,
        Outcome::Send(_) => Err(AuthError::provider_unavailable("too many network steps")),
    }
}

/// How an async driver runs a pending decision's steps on its runtime:
/// what the framework adapters implement (tokio, actix), and what your own
/// async server implements to use [`Pending::drive`](crate::Pending::drive).
pub trait Runtime {
    /// Runs `job` where blocking is allowed (a blocking pool). It must run
    /// to completion even if the returned future is dropped (a cancelled
    /// request): the job applies what other requests rely on.
    fn run_blocking(
        &self,
        job: BlockingSend,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;

    /// Runs `send` to completion even if the returned future is dropped (a
    /// spawned task), for the same reason.
    fn spawn(
        &self,
        send: ResponseFuture,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;

    /// Waits for another request's provider call ([`Waiter::wait`]), at
    /// most [`MAX_WAIT`].
    fn wait(&self, waiter: Waiter) -> impl Future<Output = ()> + Send;
}

/// One request to send on a blocking thread, with the effect to apply to
/// its response there: what [`Runtime::run_blocking`] runs.
pub struct BlockingSend {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) request: http::Request<Vec<u8>>,
    pub(crate) effect: Option<Effect>,
}

impl BlockingSend {
    /// Sends the request, blocking the calling thread, and applies the
    /// step's effect to the response.
    ///
    /// # Errors
    /// The transport's.
    pub fn run(self) -> Result<http::Response<Vec<u8>>, TransportError> {
        let response = self.transport.send(self.request);
        if let Some(effect) = self.effect {
            effect.apply(&response, SystemTime::now());
        }
        response
    }
}

impl std::fmt::Debug for BlockingSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingSend")
            .field("uri", &self.request.uri().path())
            .finish_non_exhaustive()
    }
}

/// Drives an [`Outcome`] to its answer without blocking: `send` sends a
/// request and applies the step's effect where the response arrives;
/// `wait` waits for another request's provider call.
pub(crate) async fn drive<R, S, SF, W, WF>(
    mut outcome: Outcome,
    req: &R,
    mut send: S,
    mut wait: W,
) -> Result<Authenticated, AuthError>
where
    R: RequestView,
    S: FnMut(http::Request<Vec<u8>>, Option<Effect>) -> SF,
    SF: Future<Output = Result<http::Response<Vec<u8>>, TransportError>>,
    W: FnMut(Waiter) -> WF,
    WF: Future<Output = ()>,
{
    for _ in 0..MAX_STEPS {
        match outcome {
            Outcome::Done(result) => return result,
            Outcome::Send(step) => {
                let (action, mut resume) = step.into_parts();
                outcome = match action {
                    Action::Send(request) => {
                        let effect = resume.take_effect();
                        let response = send(request, effect).await;
                        if let Err(e) = &response {
                            tracing::debug!(error = %e, "authentication network step failed");
                        }
                        resume.resume(response, req, SystemTime::now())
                    }
                    Action::Wait(waiter) => {
                        wait(waiter).await;
                        resume.woken(req, SystemTime::now())
                    }
                };
            }
        }
    }
    match outcome {
        Outcome::Done(result) => result,
        Outcome::Send(_) => Err(AuthError::provider_unavailable("too many network steps")),
    }
}
