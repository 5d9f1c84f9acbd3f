//! [`Decision`]: what to do with one request, decided by a
//! [`Policy`](crate::Policy): admit it with an identity, let it through
//! without one, or refuse it with a ready answer ([`Refusal`]). A framework
//! adapter only renders it; what the handler's extractors may still refuse is
//! decided by the [`Verdict`] the adapter leaves in the request.

use std::fmt;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::data::AuthData;
use crate::error::{AuthError, Credential};

/// What an adapter does with a request.
///
/// ```
/// use auth_core::{Decision, Deciding, Policy, SessionBackend};
/// use std::time::SystemTime;
/// ///
/// let policy = Policy::new(SessionBackend::new("session")?);
/// let req = http::Request::builder().header("cookie", "session=u-1").body(())?;
/// let Deciding::Done(Decision::Admit(admit)) = policy.decide(&req, SystemTime::now()) else {
///     panic!("a session cookie is a local answer");
/// };
/// assert_eq!(admit.verdict.auth().map(|a| a.key()), Some("session:u-1".into()));
///
/// let Deciding::Done(Decision::Refuse(refusal)) = policy.decide(&http::Request::new(()), SystemTime::now()) else {
///     panic!("no cookie: refused");
/// };
/// assert_eq!(refusal.status(), 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Decision {
    /// Run the handler with an identity: put the [`Verdict`] in the request
    /// (extractors read it) and append `set_cookie`, if any, to the
    /// handler's response.
    Admit(Admit),
    /// Run the handler without an identity (a CORS preflight, or optional
    /// mode and no credentials): put the [`Verdict`] in the request; an
    /// extractor that requires an identity refuses with it.
    PassThrough(Verdict),
    /// Answer with this; the handler does not run.
    Refuse(Refusal),
}

impl Decision {
    /// What a server does with the decision, admitted or passed through
    /// alike: the [`Verdict`] to hand to the handler and the `Set-Cookie`
    /// to append to its response; or the [`Refusal`] to answer with
    /// instead.
    ///
    /// # Errors
    /// The refusal, for [`Decision::Refuse`].
    pub fn into_verdict(self) -> Result<(Verdict, Option<HeaderValue>), Refusal> {
        match self {
            Decision::Admit(Admit {
                verdict,
                set_cookie,
            }) => Ok((verdict, set_cookie)),
            Decision::PassThrough(verdict) => Ok((verdict, None)),
            Decision::Refuse(refusal) => Err(refusal),
        }
    }
}

/// An admitted request: its verdict, and a cookie to send back.
#[derive(Debug)]
#[non_exhaustive]
pub struct Admit {
    /// Holds the identity ([`Verdict::auth`] is `Some`).
    pub verdict: Verdict,
    /// A `Set-Cookie` value to append to the response (an anonymous session
    /// was issued). Appended, never replacing the handler's own cookies.
    pub set_cookie: Option<HeaderValue>,
}

/// What the policy decided about a request's identity, left in the request
/// for the handler's extractors: the identity, or why there is none, and
/// how to word a refusal (the policy's realm and renderer).
#[derive(Clone)]
pub struct Verdict {
    auth: Option<AuthData>,
    /// Why there is no identity (optional mode: no credentials); `None`
    /// with no identity means the request was a passed-through preflight.
    unidentified: Option<AuthError>,
    /// The identity was issued for this very request (a new anonymous
    /// session).
    issued: bool,
    wording: Arc<Wording>,
}

impl Verdict {
    pub(crate) fn admitted(auth: AuthData, issued: bool, wording: Arc<Wording>) -> Self {
        Verdict {
            auth: Some(auth),
            unidentified: None,
            issued,
            wording,
        }
    }

    pub(crate) fn unidentified(why: Option<AuthError>, wording: Arc<Wording>) -> Self {
        Verdict {
            auth: None,
            unidentified: why,
            issued: false,
            wording,
        }
    }

    /// Whether the identity was issued for this very request (a new
    /// anonymous session, whose cookie goes out with the response): a rate
    /// limiter can cap how many a client address gets.
    pub fn is_new_session(&self) -> bool {
        self.issued
    }

    /// The identity, if the request was admitted with one.
    pub fn auth(&self) -> Option<&AuthData> {
        self.auth.as_ref()
    }

    /// Takes the identity out.
    pub fn into_auth(self) -> Option<AuthData> {
        self.auth
    }

    /// The identity, or the refusal for a request that has none: the
    /// policy's answer to "no credentials" (401 with its challenge).
    ///
    /// # Errors
    /// No identity.
    pub fn require(&self) -> Result<&AuthData, Refusal> {
        match &self.auth {
            Some(auth) => Ok(auth),
            None => Err(self.wording.refuse(
                self.unidentified
                    .clone()
                    .unwrap_or(AuthError::MissingCredentials(Credential::Bearer)),
            )),
        }
    }

    /// The identity, if it holds every one of `scopes`; else the refusal
    /// (see [`AuthData::require_scopes`]: 403 `insufficient_scope`, or 401
    /// asking for a token when the identity is not one that carries
    /// scopes), worded by the policy (realm, renderer).
    ///
    /// # Errors
    /// No identity, or a scope missing.
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<&AuthData, Refusal> {
        let auth = self.require()?;
        auth.require_scopes(scopes)
            .map_err(|error| self.wording.refuse(error))?;
        Ok(auth)
    }

    /// Every claim of the identity as your own type `T` (see
    /// [`AuthData::claims`]); claims that do not fit are a 401
    /// `invalid_token` naming the field, never its value.
    ///
    /// # Errors
    /// No identity, or claims that do not fit `T`.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        let auth = self.require()?;
        auth.claims::<T>().map_err(|error| {
            let reason = error.to_string();
            tracing::debug!(%reason, "token claims do not fit the requested type");
            self.wording.refuse(AuthError::invalid_credentials(
                credential_of(auth),
                format!("token {reason}"),
            ))
        })
    }
}

/// The credential kind an identity came from, for the challenge of a
/// refusal about it.
fn credential_of(auth: &AuthData) -> Credential {
    use crate::data::Source;
    match auth.source() {
        Source::Session | Source::Anonymous => Credential::Cookie,
        Source::Ip => Credential::PeerAddress,
        _ => Credential::Bearer,
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdict")
            .field("auth", &self.auth)
            .field("unidentified", &self.unidentified)
            .finish_non_exhaustive()
    }
}

/// How a policy words its refusals: the challenge's realm, and the
/// renderer that may reword the default.
#[derive(Clone, Default)]
pub(crate) struct Wording {
    pub(crate) realm: Option<Box<str>>,
    pub(crate) render: Option<Arc<RenderFn>>,
}

/// A policy's rewording of its refusals.
pub(crate) type RenderFn = dyn Fn(Refusal) -> Refusal + Send + Sync;

impl Wording {
    pub(crate) fn refuse(&self, error: AuthError) -> Refusal {
        let refusal = Refusal::for_error(error, self.realm.as_deref());
        match &self.render {
            Some(render) => render(refusal),
            None => refusal,
        }
    }
}

/// A ready answer that refuses a request: status, headers (content type,
/// `WWW-Authenticate`, `Retry-After`, ...) and body. Every adapter sends it
/// as it is.
///
/// The default wording ([`for_error`](Self::for_error)) is a JSON body
/// `{"error", "error_description"}` with the RFC 6750 challenge; a
/// [`Policy`](crate::Policy) can reword its refusals
/// ([`render_refusals`](crate::Policy::render_refusals)).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    error: Option<AuthError>,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Refusal {
    /// A refusal with `status`, a body and its content type.
    pub fn new(status: StatusCode, content_type: HeaderValue, body: impl Into<String>) -> Self {
        Refusal {
            status,
            headers: vec![(CONTENT_TYPE, content_type)],
            body: body.into(),
            error: None,
        }
    }

    /// The default answer for `error`: its status, its `WWW-Authenticate`
    /// challenge (naming `realm`, if any) and the JSON body
    /// ([`AuthError::body_json`]). It is logged here: `debug` for client
    /// errors, `warn` for an unavailable provider, `error` for a server
    /// misconfiguration (the log holds the reason, the body a fixed text).
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
            AuthError::Misconfigured { reason } => {
                tracing::error!(%reason, "request refused: server misconfigured");
            }
            AuthError::ProviderUnavailable { reason, .. } => {
                tracing::warn!(%reason, "request refused: identity provider unavailable");
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
            refusal.headers.push((WWW_AUTHENTICATE, value));
        }
        if let Some(seconds) = error.retry_after() {
            refusal
                .headers
                .push((http::header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        refusal.error = Some(error);
        refusal
    }

    /// A 500 for a server set up wrongly (an extractor without its layer,
    /// for example): `detail` goes to the log at `error` level, the client
    /// gets a fixed body.
    pub fn server_error(detail: &'static str) -> Self {
        Refusal::for_error(AuthError::Misconfigured { reason: detail }, None)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers, in order (the content type first).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The first value of the header `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The body.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The authentication error this refusal answers, if it answers one.
    pub fn error(&self) -> Option<&AuthError> {
        self.error.as_ref()
    }

    /// Replaces the body and its content type.
    ///
    /// ```
    /// use auth_core::{AuthError, Refusal};
    /// use http::HeaderValue;
    ///
    /// let mut refusal = Refusal::for_error(AuthError::provider_unavailable("down"), None);
    /// refusal.set_body(HeaderValue::from_static("text/plain"), "try again later");
    /// assert_eq!(refusal.header("content-type").unwrap(), "text/plain");
    /// assert_eq!(refusal.body(), "try again later");
    /// ```
    pub fn set_body(&mut self, content_type: HeaderValue, body: impl Into<String>) {
        self.headers.retain(|(name, _)| *name != CONTENT_TYPE);
        self.headers.insert(0, (CONTENT_TYPE, content_type));
        self.body = body.into();
    }

    /// Sets `status`.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// Appends a header.
    pub fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push((name, value));
    }

    /// Status, headers and body, to build a response from.
    pub fn into_parts(self) -> (StatusCode, Vec<(HeaderName, HeaderValue)>, String) {
        (self.status, self.headers, self.body)
    }

    /// The answer as an `http` response.
    pub fn into_response<B: From<String>>(self) -> http::Response<B> {
        let (status, headers, body) = self.into_parts();
        let mut response = http::Response::new(B::from(body));
        *response.status_mut() = status;
        let map = response.headers_mut();
        for (name, value) in headers {
            map.append(name, value);
        }
        response
    }
}
