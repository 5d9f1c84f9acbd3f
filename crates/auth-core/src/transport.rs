//! Moving the bytes of a network step: the [`Transport`] and
//! [`AsyncTransport`] traits, the default [`UreqTransport`] (feature
//! `ureq`) and [`HyperTransport`] (feature `hyper`).

use std::future::Future;
use std::pin::Pin;
#[cfg(any(feature = "ureq", feature = "hyper"))]
use std::time::Duration;

pub use crate::error::TransportError;

#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "ureq")]
mod ureq;
#[cfg(feature = "hyper")]
pub use self::hyper::HyperTransport;
#[cfg(feature = "ureq")]
pub use self::ureq::{UreqTransport, UreqTransportBuilder};

/// Default connect timeout of the transports.
#[cfg(any(feature = "ureq", feature = "hyper"))]
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default overall timeout of one request, connect to last body byte.
#[cfg(any(feature = "ureq", feature = "hyper"))]
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a response body.
#[cfg(any(feature = "ureq", feature = "hyper"))]
pub(crate) const DEFAULT_MAX_RESPONSE_LEN: u64 = 1024 * 1024;

/// Sends one HTTP request and returns the whole response, whatever its
/// status: non-2xx answers reach the backend, which decides what they mean.
///
/// Closures implement it, which is handy in tests:
///
/// ```
/// use auth_core::step::{Transport, TransportError};
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
/// use auth_core::step::{AsyncTransport, ResponseFuture, TransportError};
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
