//! The [`Backend`] trait: one way to answer "who is this?", and its
//! [`Outcome`]: an answer, or a network step.
//!
//! A backend answers at once ([`Outcome::Done`]) or, when it needs the
//! network, hands out the HTTP request to send and a continuation for the
//! answer ([`Outcome::Send`], a [`Step`](crate::step::Step)). The core
//! never does IO: a driver moves the bytes (a [`Gate`](crate::Gate)'s
//! pending decision, on an adapter's runtime or the calling thread).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::data::AuthData;
use crate::error::{AuthError, Credential};
use crate::request::RequestView;
use crate::step::Step;

/// A way to answer "who is this?" for a request.
///
/// Object safe: backends are composed as values (`Box<dyn Backend>`,
/// [`Chain`](crate::Chain)). `now` is the clock, passed in so that tests never sleep.
///
/// ```
/// use auth_core::{AuthData, Backend, Source};
/// use auth_core::step::{Outcome, RequestView};
/// use std::time::SystemTime;
///
/// /// Everybody is "guest".
/// struct Guest;
///
/// impl Backend for Guest {
///     fn authenticate(&self, _req: &dyn RequestView, _now: SystemTime) -> Outcome {
///         Outcome::ok(AuthData::bare(Source::Custom("guest"), "guest"))
///     }
/// }
///
/// let who = Guest.authenticate(&auth_core::http::Request::new(()), SystemTime::now());
/// assert_eq!(who.into_done().unwrap().unwrap().auth.key(), "guest:guest");
/// ```
pub trait Backend: Send + Sync {
    /// Identifies `req`, or says what request to send to find out.
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome;

    /// Identifies `req` now, with a backend that answers locally (IP,
    /// sessions, JWT with local keys): one call, no network step to drive.
    /// A backend that needs the network gets a clear error, not a panic:
    /// use [`Gate::decide_blocking`](crate::Gate::decide_blocking) for
    /// those.
    ///
    /// ```
    /// use auth_core::{AnonSessionBackend, Backend};
    ///
    /// let anon = AnonSessionBackend::new("anon")?;
    /// let who = anon.identify(&auth_core::http::Request::new(()))?;
    /// assert!(who.set_cookie.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The backend's [`AuthError`]; [`AuthError::Misconfigured`] if it
    /// needs the network.
    fn identify(&self, req: &dyn RequestView) -> Result<Authenticated, AuthError> {
        match self.authenticate(req, SystemTime::now()) {
            Outcome::Done(result) => result,
            Outcome::Send(_) => Err(AuthError::Misconfigured {
                reason: "identify() was given a backend that needs the network; \
                         drive it with Gate::decide_blocking",
            }),
        }
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        (**self).authenticate(req, now)
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        (**self).authenticate(req, now)
    }
}

impl<B: Backend + ?Sized> Backend for &B {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        (**self).authenticate(req, now)
    }
}

/// A successful identification, and what the response must carry for it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Authenticated {
    /// Who the request is.
    pub auth: AuthData,
    /// A `Set-Cookie` header value the response must append: an anonymous
    /// session issued for this request. The core writes no response; the
    /// adapter (or you) adds it.
    pub set_cookie: Option<String>,
}

impl Authenticated {
    /// An identity with no response effects.
    pub fn new(auth: AuthData) -> Self {
        Authenticated {
            auth,
            set_cookie: None,
        }
    }

    /// Adds a `Set-Cookie` value to send with the response.
    pub fn with_set_cookie(mut self, set_cookie: String) -> Self {
        self.set_cookie = Some(set_cookie);
        self
    }
}

/// The result of [`Backend::authenticate`]: an answer, or a network step.
#[must_use = "an outcome may be a network step that has to be driven"]
#[non_exhaustive]
pub enum Outcome {
    /// The answer.
    Done(Result<Authenticated, AuthError>),
    /// Do the step's [`Action`](crate::step::Action) (send a request, or wait for another
    /// request's provider call), then resume it. (Boxed: local answers, the
    /// hot path, stay small to move.)
    Send(Box<Step>),
}

impl Outcome {
    /// A successful answer with no response effects.
    pub fn ok(auth: AuthData) -> Self {
        Outcome::Done(Ok(Authenticated::new(auth)))
    }

    /// A failed answer.
    pub fn err(error: AuthError) -> Self {
        Outcome::Done(Err(error))
    }

    /// A network step.
    pub fn send(step: Step) -> Self {
        Outcome::Send(Box::new(step))
    }

    /// The answer, or `None` for a network step.
    pub fn into_done(self) -> Option<Result<Authenticated, AuthError>> {
        match self {
            Outcome::Done(result) => Some(result),
            Outcome::Send(_) => None,
        }
    }

    /// Applies `f` to the final answer, now or after any network steps.
    pub fn map_result<F>(self, f: F) -> Outcome
    where
        F: FnOnce(Result<Authenticated, AuthError>) -> Result<Authenticated, AuthError>
            + Send
            + 'static,
    {
        match self {
            Outcome::Done(result) => Outcome::Done(f(result)),
            Outcome::Send(step) => {
                Outcome::send(step.then(move |outcome, _, _| outcome.map_result(f)))
            }
        }
    }
}

impl From<Result<Authenticated, AuthError>> for Outcome {
    fn from(result: Result<Authenticated, AuthError>) -> Self {
        Outcome::Done(result)
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done(result) => f.debug_tuple("Done").field(result).finish(),
            Outcome::Send(step) => f.debug_tuple("Send").field(step).finish(),
        }
    }
}

/// "No credentials" for `credential`: what a backend returns when the
/// request carries nothing for it.
pub(crate) fn missing(credential: Credential) -> Outcome {
    Outcome::err(AuthError::MissingCredentials(credential))
}
