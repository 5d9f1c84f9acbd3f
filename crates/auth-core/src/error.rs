//! Why a request could not be identified ([`AuthError`]), and why a backend
//! could not be built ([`ConfigError`]).
//!
//! No error text or `Debug` output holds a token, a cookie value or a secret:
//! the reasons are fixed descriptions chosen by this crate (or by a backend
//! author, who must keep to the same rule).

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// The kind of credential a backend reads; it decides the challenge scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credential {
    /// An `Authorization: Bearer` token (RFC 6750): errors carry a `Bearer`
    /// challenge.
    Bearer,
    /// A cookie: there is no standard challenge scheme, so none is sent.
    Cookie,
    /// The client address.
    PeerAddress,
}

/// Why a request could not be identified.
///
/// Each kind maps to one HTTP status ([`status`](Self::status)) and, for
/// bearer credentials, one RFC 6750 `WWW-Authenticate` challenge
/// ([`challenge`](Self::challenge)); adapters turn these into responses.
///
/// ```
/// use auth_core::{AuthError, Credential};
///
/// let err = AuthError::invalid_credentials(Credential::Bearer, "token expired");
/// assert_eq!(err.status(), 401);
/// assert_eq!(
///     err.www_authenticate().as_deref(),
///     Some(r#"Bearer error="invalid_token", error_description="token expired""#),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no credential of this kind. A chain moves on to
    /// its next backend. 401.
    #[error("no credentials ({0:?})")]
    MissingCredentials(Credential),
    /// A credential is there but malformed at the syntax level (a
    /// `Bearer` with no token, an oversized cookie header). 400
    /// `invalid_request`.
    #[error("malformed credentials: {reason}")]
    InvalidRequest {
        /// The kind of credential.
        credential: Credential,
        /// What is wrong, never the credential itself.
        reason: &'static str,
    },
    /// A credential is there but is not valid: bad signature, expired,
    /// tampered, inactive. 401 `invalid_token`. A chain stops here by default:
    /// a bad credential is never silently downgraded to anonymous.
    #[error("invalid credentials: {reason}")]
    InvalidCredentials {
        /// The kind of credential.
        credential: Credential,
        /// What is wrong, never the credential itself.
        reason: Cow<'static, str>,
    },
    /// The identity is known but lacks a required scope or role. 403
    /// `insufficient_scope`.
    #[error("insufficient scope: requires {required}")]
    InsufficientScope {
        /// The space-separated scopes the resource requires.
        required: String,
    },
    /// The identity provider could not be asked or gave no usable answer:
    /// down, slow, rejected our client, answered garbage. 503: not the
    /// client's fault.
    #[error("identity provider unavailable: {reason}")]
    ProviderUnavailable {
        /// What went wrong, never a token or secret. Logged, never sent to
        /// the client (the body says only that the provider is unavailable).
        reason: Cow<'static, str>,
        /// Seconds after which a retry may succeed (`Retry-After`), when
        /// known.
        retry_after: Option<u32>,
    },
    /// The server is set up wrongly for this request (for example the
    /// adapter did not supply the peer address). 500.
    #[error("server misconfigured: {reason}")]
    Misconfigured {
        /// What is missing. Logged, never sent to the client.
        reason: &'static str,
    },
}

impl AuthError {
    /// [`AuthError::InvalidCredentials`] with a fixed or computed reason.
    pub fn invalid_credentials(
        credential: Credential,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        AuthError::InvalidCredentials {
            credential,
            reason: reason.into(),
        }
    }

    /// [`AuthError::ProviderUnavailable`].
    pub fn provider_unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        AuthError::ProviderUnavailable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// Seconds to send as `Retry-After`, if the error knows when a retry
    /// may succeed.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            AuthError::ProviderUnavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this is "no credentials", on which a chain tries its next
    /// backend.
    pub fn is_missing(&self) -> bool {
        matches!(self, AuthError::MissingCredentials(_))
    }

    /// The HTTP status for this error: 400, 401, 403, 500 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingCredentials(_) | AuthError::InvalidCredentials { .. } => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::ProviderUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Misconfigured { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 challenge for this error, if it has one: bearer
    /// credential errors and insufficient scope. Cookie and address errors,
    /// 503 and 500 have none.
    pub fn challenge(&self) -> Option<Challenge<'_>> {
        let bearer = |c: &Credential| *c == Credential::Bearer;
        let (error, description, scope) = match self {
            AuthError::MissingCredentials(c) if bearer(c) => (None, None, None),
            AuthError::InvalidRequest { credential, reason } if bearer(credential) => {
                (Some("invalid_request"), Some(*reason), None)
            }
            AuthError::InvalidCredentials { credential, reason } if bearer(credential) => {
                (Some("invalid_token"), Some(reason.as_ref()), None)
            }
            AuthError::InsufficientScope { required } => (
                Some("insufficient_scope"),
                Some("the token lacks a required scope"),
                Some(required.as_str()),
            ),
            _ => return None,
        };
        Some(Challenge {
            realm: None,
            error,
            description,
            scope,
        })
    }

    /// A short machine-readable code: the RFC 6750 error code where there is
    /// one (`invalid_request`, `invalid_token`, `insufficient_scope`), else
    /// `unauthorized` (no credentials), `temporarily_unavailable` (503) or
    /// `server_error` (500).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials(_) => "unauthorized",
            AuthError::InvalidRequest { .. } => "invalid_request",
            AuthError::InvalidCredentials { .. } => "invalid_token",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::ProviderUnavailable { .. } => "temporarily_unavailable",
            AuthError::Misconfigured { .. } => "server_error",
        }
    }

    /// The text a client is told: the error's own text for client errors
    /// (never a credential), and a fixed one for 503 and 500, whose reasons
    /// (upstream hosts, addresses, server internals) stay in the log.
    pub fn description(&self) -> Cow<'_, str> {
        match self {
            AuthError::ProviderUnavailable { .. } => {
                Cow::Borrowed("the identity provider is unavailable")
            }
            AuthError::Misconfigured { .. } => Cow::Borrowed("internal server error"),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The response body every adapter sends for this error:
    /// `{"error": <code>, "error_description": <text>}`, the text being
    /// [`description`](Self::description).
    ///
    /// ```
    /// use auth_core::{AuthError, Credential};
    ///
    /// let body = AuthError::MissingCredentials(Credential::Bearer).body_json();
    /// assert_eq!(body, r#"{"error":"unauthorized","error_description":"no credentials (Bearer)"}"#);
    /// let body = AuthError::provider_unavailable("connect to 10.0.0.7:8443 refused").body_json();
    /// assert_eq!(body, r#"{"error":"temporarily_unavailable","error_description":"the identity provider is unavailable"}"#);
    /// ```
    pub fn body_json(&self) -> String {
        serde_json::json!({"error": self.code(), "error_description": self.description()})
            .to_string()
    }

    /// The `WWW-Authenticate` header value, if any (see
    /// [`challenge`](Self::challenge)).
    pub fn www_authenticate(&self) -> Option<String> {
        self.challenge().map(|c| c.to_string())
    }
}

/// An RFC 6750 `Bearer` challenge; `Display` renders the header value with
/// every parameter as a correctly escaped quoted string.
///
/// ```
/// use auth_core::AuthError;
///
/// let err = AuthError::InsufficientScope { required: "admin".into() };
/// let header = err.challenge().unwrap().realm("api").to_string();
/// assert_eq!(
///     header,
///     r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    realm: Option<&'a str>,
    error: Option<&'static str>,
    description: Option<&'a str>,
    scope: Option<&'a str>,
}

impl<'a> Challenge<'a> {
    /// Adds a `realm` parameter.
    pub fn realm(mut self, realm: &'a str) -> Self {
        self.realm = Some(realm);
        self
    }

    /// The RFC 6750 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        self.error
    }
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer")?;
        let params = [
            ("realm", self.realm),
            ("error", self.error),
            ("error_description", self.description),
            ("scope", self.scope),
        ];
        let mut first = true;
        for (name, value) in params {
            let Some(value) = value else { continue };
            f.write_str(if first { " " } else { ", " })?;
            first = false;
            write!(f, "{name}=")?;
            write_quoted(f, value)?;
        }
        Ok(())
    }
}

/// Writes `value` as an RFC 9110 quoted-string: `"` and `\` are escaped,
/// and characters that may not appear in a header value (controls, CR, LF,
/// non-ASCII) are dropped, so nothing can break out of the header.
fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in value.chars() {
        match c {
            '"' | '\\' => write!(f, "\\{c}")?,
            ' '..='~' => write!(f, "{c}")?,
            _ => {}
        }
    }
    f.write_str("\"")
}

/// Why a network step got no response. Backends turn it into
/// [`AuthError::ProviderUnavailable`] (503).
///
/// Texts name the failure, never a URL's query, a header or a body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No connection could be made (refused, unreachable, DNS).
    #[error("could not connect")]
    Connect,
    /// A connect, read or overall timeout ran out.
    #[error("timed out")]
    Timeout,
    /// The response body is over the size cap.
    #[error("response exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// Anything else (TLS, protocol, IO), described.
    #[error("transport failed: {0}")]
    Other(String),
}

/// Why a backend could not be built. Returned at construction, never at
/// request time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A cookie name that is not an RFC 6265 token (it would allow header
    /// injection or never match).
    #[error("invalid cookie name {0:?}: must be a non-empty RFC 6265 token")]
    InvalidCookieName(String),
    /// A trusted-proxy entry that is neither an address nor a CIDR.
    #[error("invalid trusted proxy {0:?}: expected an IP address or CIDR")]
    InvalidProxy(String),
    /// A signing key shorter than the minimum.
    #[error("signing key too short: {len} bytes, at least {min} required")]
    KeyTooShort {
        /// The given length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Any other invalid setting, named.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (AuthError::MissingCredentials(Credential::Bearer), 401),
            (
                AuthError::InvalidRequest {
                    credential: Credential::Bearer,
                    reason: "x",
                },
                400,
            ),
            (AuthError::invalid_credentials(Credential::Cookie, "x"), 401),
            (
                AuthError::InsufficientScope {
                    required: "a".into(),
                },
                403,
            ),
            (AuthError::provider_unavailable("down"), 503),
            (AuthError::Misconfigured { reason: "x" }, 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn challenges() {
        let missing = AuthError::MissingCredentials(Credential::Bearer);
        assert_eq!(missing.www_authenticate().as_deref(), Some("Bearer"));
        assert_eq!(
            missing
                .challenge()
                .map(|c| c.realm("r").to_string())
                .as_deref(),
            Some(r#"Bearer realm="r""#)
        );
        let bad = AuthError::InvalidRequest {
            credential: Credential::Bearer,
            reason: "empty bearer token",
        };
        assert_eq!(
            bad.www_authenticate().as_deref(),
            Some(r#"Bearer error="invalid_request", error_description="empty bearer token""#)
        );
        assert_eq!(
            AuthError::MissingCredentials(Credential::Cookie).www_authenticate(),
            None
        );
        assert_eq!(
            AuthError::invalid_credentials(Credential::Cookie, "x").www_authenticate(),
            None
        );
        assert_eq!(
            AuthError::provider_unavailable("x").www_authenticate(),
            None
        );
    }

    #[test]
    fn quoted_strings_are_escaped_and_cannot_inject() {
        let err = AuthError::InsufficientScope {
            required: "a\"b\\c\r\nSet-Cookie: x=1\u{7f}é".into(),
        };
        let header = err.www_authenticate().unwrap_or_default();
        assert!(
            header.ends_with(r#"scope="a\"b\\cSet-Cookie: x=1""#),
            "{header}"
        );
        assert!(http::HeaderValue::from_str(&header).is_ok());
    }
}
