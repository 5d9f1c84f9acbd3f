//! The default blocking transport, on `ureq` 3.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_LEN, DEFAULT_TIMEOUT, Transport, TransportError,
};

impl UreqTransport {
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = DEFAULT_CONNECT_TIMEOUT;
    /// Default overall timeout of one request, connect to last body byte.
    pub const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;
    /// Default cap on a response body.
    pub const DEFAULT_MAX_RESPONSE_LEN: u64 = DEFAULT_MAX_RESPONSE_LEN;
}

/// A [`Transport`] on a `ureq` agent (connection pooling, rustls for
/// `https`).
///
/// Redirects are not followed (an identity endpoint that redirects is
/// misconfigured, and following would carry our client credentials
/// elsewhere): a 3xx reaches the backend like any other status. Non-2xx
/// statuses are answers, not errors.
///
/// ```
/// use auth_core::step::UreqTransport;
/// use std::time::Duration;
///
/// let transport = UreqTransport::builder()
///     .connect_timeout(Duration::from_millis(500))
///     .timeout(Duration::from_secs(2))
///     .max_response_len(64 * 1024)
///     .build();
/// # drop(transport);
/// ```
#[derive(Clone, Debug)]
pub struct UreqTransport {
    agent: ureq::Agent,
    max_response_len: u64,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl UreqTransport {
    /// The defaults: 2 s to connect, 5 s in all, 1 MiB responses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Timeouts and caps.
    pub fn builder() -> UreqTransportBuilder {
        UreqTransportBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_len: DEFAULT_MAX_RESPONSE_LEN,
        }
    }
}

/// Builds an [`UreqTransport`].
#[derive(Clone, Debug)]
#[must_use]
pub struct UreqTransportBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    max_response_len: u64,
}

impl UreqTransportBuilder {
    /// Time allowed to open a connection (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request, connect to last byte (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body read (default 1 MiB); a larger one fails with
    /// [`TransportError::TooLarge`] without being read to the end.
    pub fn max_response_len(mut self, len: u64) -> Self {
        self.max_response_len = len;
        self
    }

    /// The transport.
    pub fn build(self) -> UreqTransport {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(self.connect_timeout))
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("auth-core/", env!("CARGO_PKG_VERSION")))
            .build();
        UreqTransport {
            agent: ureq::Agent::with_parts(
                config,
                DefaultConnector::new(),
                LiteralFirst::default(),
            ),
            max_response_len: self.max_response_len,
        }
    }
}

impl Transport for UreqTransport {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let response = self.agent.run(request).map_err(map_error)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(self.max_response_len)
            .read_to_vec()
            .map_err(map_error)?;
        Ok(http::Response::from_parts(parts, bytes))
    }
}

/// ureq's resolver starts a thread per lookup whenever a timeout is set (so
/// that a slow `getaddrinfo` can be abandoned): one more thread per provider
/// call. A host that is an IP address needs no lookup and gets none.
#[derive(Debug, Default)]
struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.host().and_then(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.parse::<IpAddr>().ok()
        });
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        match (literal, port) {
            (Some(ip), Some(port)) => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                Ok(addrs)
            }
            _ => self.0.resolve(uri, config, timeout),
        }
    }
}

fn map_error(error: ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => TransportError::Connect,
        ureq::Error::BodyExceedsLimit(limit) => TransportError::TooLarge { limit },
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportError::Timeout,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::AddrNotAvailable => TransportError::Connect,
            kind => TransportError::Other(format!("io: {kind}")),
        },
        // Neither of these texts holds a URL query, header or body.
        other @ (ureq::Error::Protocol(_) | ureq::Error::Tls(_) | ureq::Error::Rustls(_)) => {
            TransportError::Other(other.to_string())
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            TransportError::Other("invalid request URI".into())
        }
        _ => TransportError::Other("request failed".into()),
    }
}
