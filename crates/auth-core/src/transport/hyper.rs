//! [`HyperTransport`]: network steps on hyper's client, as futures on
//! tokio, without a blocking pool (feature `hyper`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::{
    AsyncTransport, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_LEN, DEFAULT_TIMEOUT,
    ResponseFuture, TransportError,
};

/// An [`AsyncTransport`] on hyper-util's pooled client: give it to
/// [`Policy::async_transport`](crate::Policy::async_transport) and the
/// adapters (`auth-axum`, `auth-actix`: both run on tokio) send network
/// steps with it instead of the blocking transport on a blocking pool.
///
/// [`http`](Self::http) speaks plain HTTP (a provider on a private
/// network, tests); for `https`, build the client with your TLS connector
/// (hyper-rustls, hyper-tls) and use [`new`](Self::new). Redirects are not
/// followed; non-2xx answers reach the backend.
///
/// ```
/// use auth_core::step::HyperTransport;
/// use auth_core::{IntrospectionBackend, Policy};
///
/// let backend = IntrospectionBackend::builder("http://idp.internal/introspect", "api", "secret")
///     .allow_http(true)
///     .build()?;
/// let policy = Policy::new(backend).async_transport(HyperTransport::http());
/// # drop(policy);
/// # Ok::<(), auth_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HyperTransport<C> {
    client: Client<C, Full<Bytes>>,
    timeout: Duration,
    max_response_len: usize,
}

impl HyperTransport<HttpConnector> {
    /// Plain HTTP with the defaults (2 s to connect, 5 s per exchange, 1 MiB
    /// answers: the blocking transport's).
    pub fn http() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DEFAULT_CONNECT_TIMEOUT));
        Self::new(Client::builder(TokioExecutor::new()).build(connector))
    }
}

impl<C> HyperTransport<C> {
    /// Your client (your connector, pool settings), with the defaults.
    pub fn new(client: Client<C, Full<Bytes>>) -> Self {
        HyperTransport {
            client,
            timeout: DEFAULT_TIMEOUT,
            max_response_len: usize::try_from(DEFAULT_MAX_RESPONSE_LEN).unwrap_or(usize::MAX),
        }
    }

    /// Longest time for one exchange, connect to last body byte.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body accepted.
    #[must_use]
    pub fn max_response_len(mut self, len: usize) -> Self {
        self.max_response_len = len;
        self
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> AsyncTransport for HyperTransport<C> {
    fn send(&self, request: http::Request<Vec<u8>>) -> ResponseFuture {
        let client = self.client.clone();
        let (timeout, max) = (self.timeout, self.max_response_len);
        Box::pin(async move {
            let exchange = async {
                let response = client
                    .request(request.map(|body| Full::new(Bytes::from(body))))
                    .await
                    .map_err(|e| {
                        if e.is_connect() {
                            TransportError::Connect
                        } else {
                            TransportError::Other("the exchange failed".into())
                        }
                    })?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, max).collect().await.map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        TransportError::TooLarge { limit: max as u64 }
                    } else {
                        TransportError::Other("reading the answer failed".into())
                    }
                })?;
                Ok(http::Response::from_parts(parts, body.to_bytes().to_vec()))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or(Err(TransportError::Timeout))
        })
    }
}
