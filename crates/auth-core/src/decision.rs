//! [`Decision`]: what to do with one request, decided by a
//! [`Gate`](crate::Gate): proceed to the handler (with the [`Verdict`] for
//! its extractors and the [`Additions`] for its response), or refuse it
//! with a ready answer. An adapter only renders it.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use crate::data::AuthData;
use crate::error::{AuthError, Credential};
use crate::refusal::{Refusal, Wording};

/// What a server does with a request.
///
/// ```
/// use auth_core::{Decision, Gate, SessionBackend};
///
/// let gate = Gate::new(SessionBackend::new("session")?);
/// let req = auth_core::http::Request::builder().header("cookie", "session=u-1").body(())?;
/// let Decision::Proceed(proceed) = gate.decide_blocking(&req) else {
///     panic!("a session cookie is a local answer");
/// };
/// assert_eq!(proceed.verdict.unwrap().auth().map(|a| a.key()), Some("session:u-1".into()));
///
/// let Decision::Refuse(refusal) = gate.decide_blocking(&auth_core::http::Request::new(())) else {
///     panic!("no cookie: refused");
/// };
/// assert_eq!(refusal.status(), 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Decision {
    /// Run the handler: leave the [`Verdict`] (if any) in the request for
    /// the extractors, and append the [`Additions`] to the handler's
    /// response.
    Proceed(Proceed),
    /// Answer with this; the handler does not run.
    Refuse(Refusal),
}

impl Decision {
    /// For code that hands an identity on (an extractor deciding by
    /// itself): the verdict and the additions, or the refusal. A gate
    /// without a policy leaves no verdict: a 500 (logged), as that is a
    /// server set up wrongly.
    ///
    /// ```
    /// use auth_core::{Gate, SessionBackend};
    ///
    /// let req = auth_core::http::Request::builder().header("cookie", "session=u-1").body(())?;
    /// let gate = Gate::new(SessionBackend::new("session")?);
    /// let Ok((verdict, _additions)) = gate.decide_blocking(&req).into_verdict() else { panic!() };
    /// assert_eq!(verdict.auth().map(|a| a.key()), Some("session:u-1".into()));
    ///
    /// let no_cookie = auth_core::http::Request::new(());
    /// let refused = gate.decide_blocking(&no_cookie).into_verdict().unwrap_err();
    /// assert_eq!(refused.status(), 401);
    /// let limits_only = Gate::without_auth().decide_blocking(&req).into_verdict();
    /// assert_eq!(limits_only.unwrap_err().status(), 500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The refusal to answer with.
    pub fn into_verdict(self) -> Result<(Verdict, Additions), Refusal> {
        match self {
            Decision::Proceed(Proceed {
                verdict: Some(verdict),
                additions,
            }) => Ok((verdict, additions)),
            Decision::Proceed(_) => Err(Refusal::server_error(
                "a verdict was asked of a gate without a policy",
            )),
            Decision::Refuse(refusal) => Err(refusal),
        }
    }
}

/// A request that goes on to its handler, and what its response must
/// carry.
#[derive(Debug)]
#[non_exhaustive]
pub struct Proceed {
    /// What authentication found: the identity, or why there is none (a
    /// passed-through preflight, optional mode without credentials).
    /// `None` when the gate authenticates nothing (rate limits alone).
    pub verdict: Option<Verdict>,
    /// Header fields to append to the handler's response: an issued
    /// session's `Set-Cookie`, the `RateLimit` fields.
    pub additions: Additions,
}

/// Header fields a gate adds to the handler's response: appended, never
/// replacing the handler's own (its cookies stay).
///
/// ```
/// use auth_core::Additions;
/// use auth_core::http::{HeaderMap, HeaderValue, header::SET_COOKIE};
///
/// let mut additions = Additions::new();
/// additions.push(SET_COOKIE, HeaderValue::from_static("anon=1; Path=/"));
/// let mut headers = HeaderMap::new();
/// headers.append(SET_COOKIE, HeaderValue::from_static("theme=dark"));
/// additions.append_to(&mut headers);
/// assert_eq!(headers.get_all(SET_COOKIE).iter().count(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Additions(pub(crate) Vec<(HeaderName, HeaderValue)>);

impl Additions {
    /// None yet (no allocation until the first field).
    pub fn new() -> Self {
        Additions(Vec::new())
    }

    /// None yet, room for `fields`.
    pub fn with_capacity(fields: usize) -> Self {
        Additions(Vec::with_capacity(fields))
    }

    /// Adds a field.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.push((name, value));
    }

    /// The fields, in order.
    pub fn as_slice(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0
    }

    /// The first value of the field `name`.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends every field to `headers`.
    #[inline]
    pub fn append_to(self, headers: &mut HeaderMap) {
        for (name, value) in self.0 {
            headers.append(name, value);
        }
    }
}

impl IntoIterator for Additions {
    type Item = (HeaderName, HeaderValue);
    type IntoIter = std::vec::IntoIter<(HeaderName, HeaderValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Additions {
    /// Appends `other`'s fields (taking its allocation when this has none).
    #[inline]
    pub fn append(&mut self, mut other: Additions) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            *self = other;
        } else {
            self.0.append(&mut other.0);
        }
    }
}

impl fmt::Debug for Additions {
    /// Names only: an issued session cookie is a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// What a gate decided about a request's identity, left in the request for
/// the handler's extractors: the identity, or why there is none, and how to
/// word a refusal (the gate's realm and renderer).
#[derive(Clone)]
pub struct Verdict {
    auth: Option<AuthData>,
    /// Why there is no identity (optional mode: no credentials); `None`
    /// with no identity means the request was a passed-through preflight.
    /// (Boxed: the common verdict, with an identity, stays small to move.)
    unidentified: Option<Box<AuthError>>,
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
            unidentified: why.map(Box::new),
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
    /// gate's answer to "no credentials" (401 with its challenge).
    ///
    /// # Errors
    /// No identity.
    pub fn require(&self) -> Result<&AuthData, Refusal> {
        match &self.auth {
            Some(auth) => Ok(auth),
            None => Err(self.wording.refuse(match &self.unidentified {
                Some(why) => AuthError::clone(why),
                None => AuthError::MissingCredentials(Credential::Bearer),
            })),
        }
    }

    /// The identity, if it holds every one of `scopes`; else the refusal
    /// (see [`AuthData::require_scopes`]: 403 `insufficient_scope`, or 401
    /// asking for a token when the identity is not one that carries
    /// scopes), worded by the gate (realm, renderer).
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
