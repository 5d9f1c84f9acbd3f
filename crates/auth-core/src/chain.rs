//! [`Chain`]: backends tried in order, as one backend.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::backend::{Backend, Outcome};
use crate::error::AuthError;
use crate::request::RequestView;
use crate::step::Step;

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
///
/// let chain = Chain::new()
///     .or(SessionBackend::new("session").unwrap())
///     .or(AnonSessionBackend::new("anon").unwrap());
/// let who = chain.identify(&auth_core::http::Request::new(()))?;
/// assert!(who.set_cookie.is_some()); // an anonymous session was issued
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::missing;
    use crate::data::AuthData;
    use crate::data::Source;
    use crate::error::Credential;
    use crate::scopes::RequireScopes;
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
}
