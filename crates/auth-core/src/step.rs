//! The step machinery, for backend, limiter and driver authors: what a
//! backend reads ([`RequestView`] and its readers), how it asks for the
//! network ([`Outcome`], [`Step`], [`Action`], [`Resume`], [`Effect`],
//! [`Waiter`]), how bytes move ([`Transport`], [`AsyncTransport`],
//! [`UreqTransport`] with feature `ureq`, `HyperTransport` with `hyper`), how a pending decision is driven
//! on a runtime ([`Runtime`], [`BlockingSend`]), and the seam of rate
//! limits ([`Limiter`]). Applications name the crate root; this module is
//! for code that extends it.
//!
//! A backend answers at once or hands out a [`Step`]: the HTTP request to
//! send (or another request's provider call to wait for) and the
//! continuation that turns the answer into the next [`Outcome`]. Whoever
//! drives it decides how to send: [`Pending::drive`](crate::Pending::drive)
//! on an async [`Runtime`] (what the adapters do), or
//! [`Pending::drive_blocking`](crate::Pending::drive_blocking) on the
//! calling thread.

use std::fmt;
use std::time::SystemTime;

pub use crate::backend::Outcome;
pub use crate::drive::{BlockingSend, MAX_STEPS, MAX_WAIT, Runtime};
pub use crate::flight::Waiter;
pub use crate::gate::{Charge, LimitFuture, Limited, Limiter};
pub use crate::jwt::{Checked, KeyFetch, TokenValidator, VerifiedClaims};
pub use crate::log::EverySecond;
pub use crate::request::{
    DEFAULT_MAX_COOKIE_HEADER_LEN, DEFAULT_MAX_TOKEN_LEN, RequestView, bearer_token, cookie_value,
    is_cookie_name, is_cookie_value,
};
#[cfg(feature = "hyper")]
pub use crate::transport::HyperTransport;
pub use crate::transport::{AsyncTransport, ResponseFuture, Transport, TransportError};
#[cfg(feature = "ureq")]
pub use crate::transport::{UreqTransport, UreqTransportBuilder};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::missing;
    use crate::error::Credential;

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
