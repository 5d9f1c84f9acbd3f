//! The [`Backend`] trait, its [`Outcome`], and the combinators: [`Chain`]
//! and [`RequireScopes`].
//!
//! A backend answers at once ([`Outcome::Done`]) or, when it needs the
//! network, hands out the HTTP request to send and a continuation for the
//! answer ([`Outcome::Send`]). The core never does IO: a driver moves the
//! bytes ([`crate::transport::authenticate_blocking`], or an adapter).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::data::AuthData;
use crate::error::{AuthError, Credential, TransportError};
use crate::flight::Waiter;
use crate::request::RequestView;

/// A way to answer "who is this?" for a request.
///
/// Object safe: backends are composed as values (`Box<dyn Backend>`,
/// [`Chain`]). `now` is the clock, passed in so that tests never sleep.
///
/// ```
/// use auth_core::{AuthData, Authenticated, Backend, Outcome, Source, request::RequestView};
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
/// let who = Guest.authenticate(&http::Request::new(()), SystemTime::now());
/// assert_eq!(who.into_done().unwrap().unwrap().auth.key(), "guest:guest");
/// ```
pub trait Backend: Send + Sync {
    /// Identifies `req`, or says what request to send to find out.
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome;

    /// Identifies `req` now, with a backend that answers locally (IP,
    /// sessions, JWT with local keys): one call, no network step to drive.
    /// A backend that needs the network gets a clear error, not a panic:
    /// use [`Policy::decide_blocking`](crate::Policy::decide_blocking) or
    /// [`authenticate_blocking`](crate::transport::authenticate_blocking)
    /// for those.
    ///
    /// ```
    /// use auth_core::{AnonSessionBackend, Backend};
    ///
    /// let anon = AnonSessionBackend::new("anon")?;
    /// let who = anon.identify(&http::Request::new(()))?;
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
                         drive it with Policy::decide_blocking or authenticate_blocking",
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
    /// Do the step's [`Action`] (send a request, or wait for another
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

/// What a driver feeds back into a [`Resume`].
enum Reply {
    Response(Result<http::Response<Vec<u8>>, TransportError>),
    Woken,
}

type ResumeFn = dyn FnOnce(Reply, &dyn RequestView, SystemTime) -> Outcome + Send;
type EffectFn = dyn FnOnce(&Result<http::Response<Vec<u8>>, TransportError>, SystemTime) + Send;

/// What a [`Step`] asks of its driver.
#[non_exhaustive]
#[allow(clippy::large_enum_variant, reason = "only ever inside a boxed Step")]
pub enum Action {
    /// Send this request, then [`Resume::resume`] with the answer.
    Send(http::Request<Vec<u8>>),
    /// Another request is already asking the provider the same question:
    /// wait for it ([`Waiter::wait_blocking`] or [`Waiter::wait`]), then
    /// [`Resume::woken`].
    Wait(Waiter),
}

/// One thing a backend needs before it can answer: an HTTP round trip, or
/// the answer of a round trip another request is making; and the
/// continuation that turns it into the next [`Outcome`].
///
/// The continuation owns everything it needs (`'static + Send`), so a driver
/// may send the request on another thread and resume wherever the original
/// request is.
pub struct Step {
    action: Action,
    resume: Resume,
}

/// The continuation of a [`Step`].
pub struct Resume {
    then: Box<ResumeFn>,
    effect: Option<Effect>,
}

/// The part of a step's continuation that must see the response even if
/// the request that asked has gone away (a cancelled request must not
/// leave a shared answer, such as a key set or an introspection answer
/// other requests wait for, unapplied).
///
/// [`Resume::resume`] applies it first; an async driver that may drop the
/// request takes it out ([`Resume::take_effect`]) and applies it where the
/// response arrives: inside the blocking job, or in a spawned task.
pub struct Effect(Box<EffectFn>);

impl Effect {
    /// Applies the response (or the transport's failure) at time `now`.
    pub fn apply(
        self,
        response: &Result<http::Response<Vec<u8>>, TransportError>,
        now: SystemTime,
    ) {
        (self.0)(response, now);
    }
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Effect(..)")
    }
}

impl Resume {
    /// Feeds the response (or the transport's failure) of an
    /// [`Action::Send`] back in, applying the step's [`Effect`] first if it
    /// was not taken out. `req` is the request being authenticated, the same
    /// one the step came from.
    pub fn resume(
        mut self,
        response: Result<http::Response<Vec<u8>>, TransportError>,
        req: &dyn RequestView,
        now: SystemTime,
    ) -> Outcome {
        if let Some(effect) = self.effect.take() {
            effect.apply(&response, now);
        }
        (self.then)(Reply::Response(response), req, now)
    }

    /// Continues after an [`Action::Wait`] (whether the wait ended or timed
    /// out: the continuation checks).
    pub fn woken(self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        (self.then)(Reply::Woken, req, now)
    }

    /// Takes out the step's [`Effect`], if it has one: the driver then
    /// applies it where the response arrives, and still calls
    /// [`resume`](Self::resume) (with the same response) if the request is
    /// still there.
    pub fn take_effect(&mut self) -> Option<Effect> {
        self.effect.take()
    }
}

impl fmt::Debug for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume")
            .field("effect", &self.effect.is_some())
            .finish_non_exhaustive()
    }
}

impl Step {
    /// A step that sends `request` and continues with `resume`.
    pub fn new<F>(request: http::Request<Vec<u8>>, resume: F) -> Self
    where
        F: FnOnce(
                Result<http::Response<Vec<u8>>, TransportError>,
                &dyn RequestView,
                SystemTime,
            ) -> Outcome
            + Send
            + 'static,
    {
        Step {
            action: Action::Send(request),
            resume: Resume {
                then: Box::new(move |reply, req, now| {
                    let response = match reply {
                        Reply::Response(response) => response,
                        Reply::Woken => {
                            Err(TransportError::Other("resumed without a response".into()))
                        }
                    };
                    resume(response, req, now)
                }),
                effect: None,
            },
        }
    }

    /// A step that sends `request`, applies the response with `effect`
    /// wherever it arrives (even if this request is gone by then), and
    /// continues with `then`, which reads what `effect` left.
    pub fn detached<E, F>(request: http::Request<Vec<u8>>, effect: E, then: F) -> Self
    where
        E: FnOnce(&Result<http::Response<Vec<u8>>, TransportError>, SystemTime) + Send + 'static,
        F: FnOnce(&dyn RequestView, SystemTime) -> Outcome + Send + 'static,
    {
        Step {
            action: Action::Send(request),
            resume: Resume {
                then: Box::new(move |_reply, req, now| then(req, now)),
                effect: Some(Effect(Box::new(effect))),
            },
        }
    }

    /// A step that waits for `waiter` and continues with `resume`.
    pub fn wait<F>(waiter: Waiter, resume: F) -> Self
    where
        F: FnOnce(&dyn RequestView, SystemTime) -> Outcome + Send + 'static,
    {
        Step {
            action: Action::Wait(waiter),
            resume: Resume {
                then: Box::new(move |_reply, req, now| resume(req, now)),
                effect: None,
            },
        }
    }

    /// What the driver must do.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The request to send, for an [`Action::Send`] step.
    pub fn request(&self) -> Option<&http::Request<Vec<u8>>> {
        match &self.action {
            Action::Send(request) => Some(request),
            Action::Wait(_) => None,
        }
    }

    /// Splits the step, to act on it somewhere else.
    pub fn into_parts(self: Box<Self>) -> (Action, Resume) {
        let Step { action, resume } = *self;
        (action, resume)
    }

    /// Runs `f` on the outcome the continuation produces (the step's
    /// effect stays as it is).
    pub fn then<F>(self: Box<Self>, f: F) -> Step
    where
        F: FnOnce(Outcome, &dyn RequestView, SystemTime) -> Outcome + Send + 'static,
    {
        let Step { action, resume } = *self;
        let Resume { then, effect } = resume;
        Step {
            action,
            resume: Resume {
                then: Box::new(move |reply, req, now| f(then(reply, req, now), req, now)),
                effect,
            },
        }
    }
}

/// Shows the method and URI path only: headers and body carry client
/// secrets.
impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Action::Send(request) => f
                .debug_struct("Step::Send")
                .field("method", request.method())
                .field("uri", &request.uri().path())
                .finish_non_exhaustive(),
            Action::Wait(waiter) => f.debug_tuple("Step::Wait").field(waiter).finish(),
        }
    }
}

/// Tries backends in order: "JWT, else Keycloak, else an anonymous session"
/// as one value.
///
/// - It moves to the next backend only on
///   [`AuthError::MissingCredentials`]: a credential that is present but
///   invalid (or malformed) stops the chain with its error, so a bad token is
///   never silently downgraded to a weaker identity. [`fall_through`]
///   changes that.
/// - A backend that needs the network stops the walk until its step is
///   resumed; the chain continues from there.
/// - If no backend identifies the request, the error is the first one that
///   fell through, else the first backend's "no credentials" (so a chain
///   headed by a bearer backend answers with a `Bearer` challenge).
///
/// [`fall_through`]: Self::fall_through
///
/// ```
/// use auth_core::{AnonSessionBackend, Backend, Chain, SessionBackend};
/// use std::time::SystemTime;
///
/// let chain = Chain::new()
///     .or(SessionBackend::new("session").unwrap())
///     .or(AnonSessionBackend::new("anon").unwrap());
/// let who = chain.authenticate(&http::Request::new(()), SystemTime::now());
/// let who = who.into_done().unwrap().unwrap();
/// assert!(who.set_cookie.is_some()); // an anonymous session was issued
/// ```
#[derive(Clone, Default)]
pub struct Chain {
    backends: Vec<Arc<dyn Backend>>,
    fall_through: bool,
}

impl Chain {
    /// An empty chain; add backends with [`or`](Self::or).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend to try after the ones already there.
    pub fn or(mut self, backend: impl Backend + 'static) -> Self {
        self.backends.push(Arc::new(backend));
        self
    }

    /// Adds a shared backend.
    pub fn or_shared(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backends.push(backend);
        self
    }

    /// When `true`, an invalid or malformed credential also moves on to the
    /// next backend (the error is kept in case none succeeds). Provider
    /// failures (503) and server errors (500) always stop the chain.
    pub fn fall_through(mut self, yes: bool) -> Self {
        self.fall_through = yes;
        self
    }

    fn falls_through(&self, error: &AuthError) -> bool {
        match error {
            AuthError::MissingCredentials(_) => true,
            AuthError::InvalidCredentials { .. } | AuthError::InvalidRequest { .. } => {
                self.fall_through
            }
            _ => false,
        }
    }

    /// Walks `self.backends[start..]`; `kept` is the error to report if none
    /// succeeds.
    fn walk(
        &self,
        start: usize,
        mut kept: Option<AuthError>,
        req: &dyn RequestView,
        now: SystemTime,
    ) -> Outcome {
        for (index, backend) in self.backends.iter().enumerate().skip(start) {
            match backend.authenticate(req, now) {
                Outcome::Done(Err(error)) if self.falls_through(&error) => {
                    kept = Some(keep(kept, error));
                }
                Outcome::Send(step) => return self.resume_after(index, kept, step),
                done => return done,
            }
        }
        Outcome::err(kept.unwrap_or(AuthError::Misconfigured {
            reason: "the backend chain is empty",
        }))
    }

    /// Wraps a network step of backend `index` so that, once resumed, the
    /// walk goes on after it when its answer falls through.
    fn resume_after(&self, index: usize, kept: Option<AuthError>, step: Box<Step>) -> Outcome {
        let chain = self.clone();
        Outcome::send(step.then(move |outcome, req, now| match outcome {
            Outcome::Done(Err(error)) if chain.falls_through(&error) => {
                chain.walk(index + 1, Some(keep(kept, error)), req, now)
            }
            Outcome::Send(step) => chain.resume_after(index, kept, step),
            done => done,
        }))
    }
}

/// The error a chain reports when nothing succeeds: the first real failure
/// over any "no credentials", else the first "no credentials".
fn keep(kept: Option<AuthError>, new: AuthError) -> AuthError {
    match kept {
        Some(old) if !old.is_missing() || new.is_missing() => old,
        _ => new,
    }
}

impl Backend for Chain {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        self.walk(0, None, req, now)
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("backends", &self.backends.len())
            .field("fall_through", &self.fall_through)
            .finish()
    }
}

/// A fixed set of scopes, named by a type: the adapters' `Scoped<T>`
/// extractors require `T::SCOPES`.
///
/// ```
/// use auth_core::Scope;
///
/// struct Admin;
/// impl Scope for Admin {
///     const SCOPES: &'static [&'static str] = &["admin"];
/// }
/// ```
pub trait Scope: Send + Sync {
    /// Every one of these must be granted.
    const SCOPES: &'static [&'static str];
}

/// A backend whose identities must hold every one of some scopes; otherwise
/// 403 `insufficient_scope` naming them (see [`AuthData::require_scopes`]).
///
/// ```
/// use auth_core::{AuthData, Backend, Outcome, RequireScopes, Source, request::RequestView};
/// use std::time::SystemTime;
///
/// struct Fixed;
/// impl Backend for Fixed {
///     fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
///         let data = serde_json::json!({"scope": "read"});
///         Outcome::ok(AuthData::new(Source::Jwt, "alice", data.as_object().unwrap().clone()))
///     }
/// }
///
/// let admin = RequireScopes::new(Fixed, ["admin"]);
/// let err = admin.authenticate(&http::Request::new(()), SystemTime::now()).into_done().unwrap().unwrap_err();
/// assert_eq!(err.status(), 403);
/// ```
#[derive(Clone, Debug)]
pub struct RequireScopes<B> {
    inner: B,
    scopes: Arc<[String]>,
}

impl<B: Backend> RequireScopes<B> {
    /// Wraps `inner`, requiring `scopes`.
    pub fn new<I, S>(inner: B, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireScopes {
            inner,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl<B: Backend> Backend for RequireScopes<B> {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        let scopes = Arc::clone(&self.scopes);
        self.inner.authenticate(req, now).map_result(move |result| {
            let who = result?;
            if scopes.iter().all(|s| who.auth.has_scope(s)) {
                Ok(who)
            } else {
                Err(AuthError::InsufficientScope {
                    required: scopes.join(" "),
                })
            }
        })
    }
}

/// "No credentials" for `credential`: what a backend returns when the
/// request carries nothing for it.
pub(crate) fn missing(credential: Credential) -> Outcome {
    Outcome::err(AuthError::MissingCredentials(credential))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Source;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers with a fixed result and counts its calls.
    struct Fixed(Result<&'static str, AuthError>, AtomicUsize);

    impl Fixed {
        fn new(result: Result<&'static str, AuthError>) -> Arc<Self> {
            Arc::new(Fixed(result, AtomicUsize::new(0)))
        }
        fn calls(&self) -> usize {
            self.1.load(Ordering::SeqCst)
        }
    }

    impl Backend for Fixed {
        fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
            self.1.fetch_add(1, Ordering::SeqCst);
            match &self.0 {
                Ok(id) => Outcome::ok(AuthData::bare(Source::Custom("t"), *id)),
                Err(e) => Outcome::err(e.clone()),
            }
        }
    }

    /// Needs one round trip; answers with the response body as identifier,
    /// or the mapped status.
    struct Remote;

    impl Backend for Remote {
        fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
            let request = http::Request::new(b"q".to_vec());
            Outcome::send(Step::new(request, |response, _, _| match response {
                Ok(r) if r.status() == 200 => Outcome::ok(AuthData::bare(
                    Source::Custom("remote"),
                    String::from_utf8_lossy(r.body()).into_owned(),
                )),
                Ok(r) if r.status() == 404 => missing(Credential::Cookie),
                Ok(_) => Outcome::err(AuthError::invalid_credentials(
                    Credential::Cookie,
                    "rejected",
                )),
                Err(_) => Outcome::err(AuthError::provider_unavailable("down")),
            }))
        }
    }

    fn run(backend: &dyn Backend) -> Outcome {
        backend.authenticate(&http::Request::new(()), SystemTime::UNIX_EPOCH)
    }

    fn answer(outcome: Outcome) -> Result<String, AuthError> {
        match outcome.into_done() {
            Some(result) => result.map(|a| a.auth.identifier().to_owned()),
            None => Ok("<step>".into()),
        }
    }

    fn resume(outcome: Outcome, status: u16, body: &str) -> Outcome {
        let Outcome::Send(step) = outcome else {
            return outcome;
        };
        let (_, resume) = step.into_parts();
        let mut response = http::Response::new(body.as_bytes().to_vec());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        resume.resume(
            Ok(response),
            &http::Request::new(()),
            SystemTime::UNIX_EPOCH,
        )
    }

    fn missing_err() -> AuthError {
        AuthError::MissingCredentials(Credential::Bearer)
    }

    fn invalid_err() -> AuthError {
        AuthError::invalid_credentials(Credential::Bearer, "bad")
    }

    #[test]
    fn moves_on_only_when_credentials_are_missing() {
        let last = Fixed::new(Ok("anon"));
        let chain = Chain::new()
            .or_shared(Fixed::new(Err(missing_err())))
            .or_shared(last.clone());
        assert_eq!(answer(run(&chain)), Ok("anon".into()));

        let last = Fixed::new(Ok("anon"));
        let chain = Chain::new()
            .or_shared(Fixed::new(Err(invalid_err())))
            .or_shared(last.clone());
        assert_eq!(answer(run(&chain)), Err(invalid_err()));
        assert_eq!(last.calls(), 0, "an invalid credential must stop the chain");

        let chain = Chain::new()
            .or_shared(Fixed::new(Err(AuthError::provider_unavailable("down"))))
            .or_shared(Fixed::new(Ok("anon")))
            .fall_through(true);
        assert_eq!(
            answer(run(&chain)).map_err(|e| e.status().as_u16()),
            Err(503)
        );
    }

    #[test]
    fn fall_through_keeps_the_real_error() {
        let chain = Chain::new()
            .or_shared(Fixed::new(Err(invalid_err())))
            .or_shared(Fixed::new(Ok("anon")))
            .fall_through(true);
        assert_eq!(answer(run(&chain)), Ok("anon".into()));
        let chain = Chain::new()
            .or_shared(Fixed::new(Err(missing_err())))
            .or_shared(Fixed::new(Err(invalid_err())))
            .or_shared(Fixed::new(Err(AuthError::MissingCredentials(
                Credential::Cookie,
            ))))
            .fall_through(true);
        assert_eq!(answer(run(&chain)), Err(invalid_err()));
    }

    #[test]
    fn all_missing_reports_the_first_and_empty_is_misconfigured() {
        let chain = Chain::new()
            .or_shared(Fixed::new(Err(missing_err())))
            .or_shared(Fixed::new(Err(AuthError::MissingCredentials(
                Credential::Cookie,
            ))));
        assert_eq!(answer(run(&chain)), Err(missing_err()));
        assert_eq!(
            answer(run(&Chain::new())).map_err(|e| e.status().as_u16()),
            Err(500)
        );
    }

    #[test]
    fn network_step_pauses_and_resumes_the_chain() {
        let last = Fixed::new(Ok("anon"));
        let chain = Chain::new().or(Remote).or_shared(last.clone());
        let step = run(&chain);
        assert_eq!(
            last.calls(),
            0,
            "nothing after the step runs before it is resumed"
        );
        assert_eq!(answer(resume(step, 200, "alice")), Ok("alice".into()));
        assert_eq!(answer(resume(run(&chain), 404, "")), Ok("anon".into()));
        assert_eq!(
            answer(resume(run(&chain), 403, "")).map_err(|e| e.status().as_u16()),
            Err(401)
        );
        assert_eq!(last.calls(), 1);
        let lenient = chain.clone().fall_through(true);
        assert_eq!(answer(resume(run(&lenient), 403, "")), Ok("anon".into()));
    }

    #[test]
    fn scopes_are_checked_after_network_steps_too() {
        let admin = RequireScopes::new(Remote, ["admin"]);
        let err = answer(resume(run(&admin), 200, "alice")).map_err(|e| e.status().as_u16());
        assert_eq!(err, Err(403));
        let none = RequireScopes::new(Remote, Vec::<String>::new());
        assert_eq!(answer(resume(run(&none), 200, "alice")), Ok("alice".into()));
    }

    #[test]
    fn step_debug_hides_headers_and_body() {
        let request = http::Request::builder()
            .uri("https://idp.example/introspect?x=1")
            .header("authorization", "Basic c2VjcmV0")
            .body(b"token=secret-token".to_vec())
            .unwrap_or_default();
        let step = Step::new(request, |_, _, _| missing(Credential::Bearer));
        let debug = format!("{:?}", Outcome::send(step));
        assert!(debug.contains("/introspect"));
        assert!(
            !debug.contains("c2VjcmV0")
                && !debug.contains("secret-token")
                && !debug.contains("x=1")
        );
    }
}
