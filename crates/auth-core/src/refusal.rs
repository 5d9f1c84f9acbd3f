//! [`Refusal`]: a ready answer that refuses a request, and [`Cause`], what
//! it answers; the wording every refusal of one gate goes through (the
//! challenge's realm, the renderer).

use std::sync::Arc;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::decision::Additions;
use crate::error::AuthError;
use crate::log::PerReason;

/// Why a request was refused: what a [`Refusal`] answers, so that a
/// renderer ([`Gate::render_refusals`](crate::Gate::render_refusals)) can
/// word each kind its own way.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Cause {
    /// Authentication failed: no credentials, an invalid one, a missing
    /// scope (401, 400, 403), the provider unavailable (503), the server
    /// set up wrongly (500).
    Auth(AuthError),
    /// Over a rate limit (429): the rule that holds the client back
    /// longest, and the whole seconds until a request may pass again (the
    /// `Retry-After`).
    RateLimited {
        /// The rule's id.
        rule: Arc<str>,
        /// Seconds until a retry may pass, at least 1.
        retry_after: u64,
    },
    /// The rate limits' shared store did not answer and its fallback
    /// refuses (503).
    LimitsUnavailable,
    /// A refusal built by hand ([`Refusal::new`]).
    Custom,
}

/// A ready answer that refuses a request: status, headers (content type,
/// `WWW-Authenticate`, `Retry-After`, the `RateLimit` fields, ...) and body,
/// and its [`Cause`]. Every adapter sends it as it is.
///
/// The default wording of an authentication error
/// ([`for_error`](Self::for_error)) is a JSON body `{"error",
/// "error_description"}` with the RFC 6750 challenge; a rate limit's is
/// an `application/problem+json` body (RFC 9457). A
/// [`Gate`](crate::Gate) can reword every refusal it makes
/// ([`render_refusals`](crate::Gate::render_refusals)).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    status: StatusCode,
    headers: Additions,
    body: String,
    cause: Cause,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Refusal {
    /// A refusal with `status`, a body and its content type
    /// ([`Cause::Custom`]).
    pub fn new(status: StatusCode, content_type: HeaderValue, body: impl Into<String>) -> Self {
        Refusal {
            status,
            headers: Additions(vec![(CONTENT_TYPE, content_type)]),
            body: body.into(),
            cause: Cause::Custom,
        }
    }

    /// The default answer for `error`: its status, its `WWW-Authenticate`
    /// challenge (naming `realm`, if any) and the JSON body
    /// ([`AuthError::body_json`]). It is logged here: `debug` for client
    /// errors, `warn` for an unavailable provider, `error` for a server
    /// misconfiguration (the log holds the reason, the body a fixed text);
    /// the last two at most once a second per reason, `also` counting the
    /// lines held back since.
    ///
    /// ```
    /// use auth_core::{AuthError, Credential, Refusal};
    ///
    /// let refusal = Refusal::for_error(AuthError::MissingCredentials(Credential::Bearer), Some("api"));
    /// assert_eq!(refusal.status(), 401);
    /// assert_eq!(refusal.header("www-authenticate").unwrap(), r#"Bearer realm="api""#);
    /// assert_eq!(refusal.body(), r#"{"error":"unauthorized","error_description":"no credentials (Bearer)"}"#);
    /// ```
    pub fn for_error(error: AuthError, realm: Option<&str>) -> Self {
        let status = error.status();
        match &error {
            // Both can come with every request: a line a second at most.
            AuthError::Misconfigured { reason } => {
                static LOG: PerReason = PerReason::new();
                LOG.log(reason, |also| {
                    tracing::error!(%reason, also, "request refused: server misconfigured");
                });
            }
            AuthError::ProviderUnavailable { reason, .. } => {
                static LOG: PerReason = PerReason::new();
                // By kind: the text before a `:` (details follow it).
                let kind = reason.split(':').next().unwrap_or_default();
                LOG.log(kind, |also| {
                    tracing::warn!(
                        %reason,
                        also,
                        "request refused: identity provider unavailable"
                    );
                });
            }
            other => {
                tracing::debug!(status = status.as_u16(), reason = %other, "request refused");
            }
        }
        let mut refusal = Refusal::new(status, JSON, error.body_json());
        let challenge = error.challenge().map(|c| match realm {
            Some(realm) => c.realm(realm).to_string(),
            None => c.to_string(),
        });
        if let Some(value) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            refusal.headers.push(WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = error.retry_after() {
            refusal
                .headers
                .push(RETRY_AFTER, HeaderValue::from(seconds));
        }
        refusal.cause = Cause::Auth(error);
        refusal
    }

    /// A 500 for a server set up wrongly (an extractor without its layer,
    /// for example): `detail` goes to the log at `error` level, the client
    /// gets a fixed body.
    pub fn server_error(detail: &'static str) -> Self {
        Refusal::for_error(AuthError::Misconfigured { reason: detail }, None)
    }

    /// Sets what the refusal answers (for refusals made outside this
    /// crate: a rate limiter's 429 or 503).
    #[must_use]
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers, in order (the content type first).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.headers.as_slice()
    }

    /// The first value of the header `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// The body.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// What the refusal answers.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The authentication error this refusal answers, if it answers one.
    pub fn error(&self) -> Option<&AuthError> {
        match &self.cause {
            Cause::Auth(error) => Some(error),
            _ => None,
        }
    }

    /// Replaces the body and its content type.
    ///
    /// ```
    /// use auth_core::{AuthError, Refusal};
    /// use auth_core::http::HeaderValue;
    ///
    /// let mut refusal = Refusal::for_error(AuthError::provider_unavailable("down"), None);
    /// refusal.set_body(HeaderValue::from_static("text/plain"), "try again later");
    /// assert_eq!(refusal.header("content-type").unwrap(), "text/plain");
    /// assert_eq!(refusal.body(), "try again later");
    /// ```
    pub fn set_body(&mut self, content_type: HeaderValue, body: impl Into<String>) {
        self.headers.0.retain(|(name, _)| *name != CONTENT_TYPE);
        self.headers.0.insert(0, (CONTENT_TYPE, content_type));
        self.body = body.into();
    }

    /// Sets `status`.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// Appends a header.
    pub fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push(name, value);
    }

    /// Status, headers and body, to build a response from.
    pub fn into_parts(self) -> (StatusCode, Additions, String) {
        (self.status, self.headers, self.body)
    }

    /// The answer as an `http` response.
    pub fn into_response<B: From<String>>(self) -> http::Response<B> {
        let (status, headers, body) = self.into_parts();
        let mut response = http::Response::new(B::from(body));
        *response.status_mut() = status;
        headers.append_to(response.headers_mut());
        response
    }
}

/// A gate's rewording of its refusals.
pub(crate) type RenderFn = dyn Fn(Refusal) -> Refusal + Send + Sync;

/// How a gate words its refusals: the challenge's realm (its policy's),
/// and the renderer that may reword the default. Shared by the gate and
/// every verdict it leaves, so an extractor's refusal reads like the
/// gate's own.
#[derive(Clone, Default)]
pub(crate) struct Wording {
    pub(crate) realm: Option<Arc<str>>,
    pub(crate) render: Option<Arc<RenderFn>>,
}

impl Wording {
    /// The refusal for an authentication error.
    pub(crate) fn refuse(&self, error: AuthError) -> Refusal {
        self.render(Refusal::for_error(error, self.realm.as_deref()))
    }

    /// `refusal` through the renderer, if any.
    pub(crate) fn render(&self, refusal: Refusal) -> Refusal {
        match &self.render {
            Some(render) => render(refusal),
            None => refusal,
        }
    }
}
