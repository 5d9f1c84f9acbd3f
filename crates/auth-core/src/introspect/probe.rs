//! The introspection endpoint's health for a readiness probe: the outcome
//! of the latest provider call, or a call of the probe's own about a token
//! that does not exist, at most one every [`RECENT`] seconds.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::{Answer, IntrospectionBackend};
use crate::error::{AuthError, TransportError};
use crate::health::{Health, Probe, ProbeStep, unusable};
use crate::jwt::unix_seconds;

/// The token a probe asks about: no provider issued it, so a working one
/// answers `{"active": false}`.
const PROBE_TOKEN: &str = "readiness-probe-not-a-token";

/// How recent (seconds) a provider call's outcome must be for a probe to
/// take it instead of asking; and the least time between two probe calls.
const RECENT: u64 = 10;

type Response = Result<http::Response<Vec<u8>>, TransportError>;

/// What the latest provider call told of the provider.
#[derive(Default)]
pub(super) struct ProviderState {
    /// When it finished (seconds since the epoch) and the provider's
    /// failure, by kind, if it failed.
    last: Mutex<Option<(u64, Option<Cow<'static, str>>)>>,
    /// When the last probe call started (seconds since the epoch, plus
    /// one; 0: never).
    probed: AtomicU64,
}

/// Whether a request's call tells of the provider whatever token it was
/// about: an answer, no connection, or our client credentials rejected
/// (401, 403). Any other failure a client's token may have caused (some
/// providers answer 400 or 500 to a malformed token, or take their time):
/// it is the probe's own call's to find, or a client could turn every
/// instance's report down at will.
fn independent_of_the_token(response: &Response, failure: Option<&Cow<'static, str>>) -> bool {
    failure.is_none()
        || match response {
            Err(TransportError::Connect) => true,
            Err(_) => false,
            Ok(r) => r.status() == 401 || r.status() == 403,
        }
}

/// The provider's failure in a call's answer, by kind: no answer, a
/// status other than 200, or a 200 that is not an answer.
fn failure(response: &Response, answer: &Result<Answer, AuthError>) -> Option<Cow<'static, str>> {
    matches!(answer, Err(AuthError::ProviderUnavailable { .. })).then(|| unusable(response))
}

fn health(failure: Option<&Cow<'static, str>>) -> Health {
    match failure {
        None => Health::Ready,
        Some(reason) => Health::Down(format!("the introspection endpoint: {reason}").into()),
    }
}

impl ProviderState {
    /// Keeps a request's call outcome, unless it may be about the
    /// client's token rather than the provider: a client cannot make the
    /// provider look down.
    pub(super) fn called(&self, now: u64, response: &Response, answer: &Result<Answer, AuthError>) {
        let failure = failure(response, answer);
        if independent_of_the_token(response, failure.as_ref()) {
            self.keep(now, failure);
        }
    }

    fn keep(&self, now: u64, failure: Option<Cow<'static, str>>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, failure));
    }

    fn last(&self) -> Option<(u64, Option<Cow<'static, str>>)> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl IntrospectionBackend {
    /// The provider's health at `now`, for a readiness probe: the outcome
    /// of a call in the last 10 s, else a call about a token no provider
    /// issued (any answer is ready; no answer, a server error or our
    /// client rejected is down). At most one probe call every 10 s,
    /// however the probes end; meanwhile the latest outcome (degraded,
    /// "not checked yet", before any). Of a request's call, only an
    /// answer, no connection, or our client rejected (401, 403) counts:
    /// any other failure a client's token may cause. Run
    /// it with [`Probe::run_blocking`] or [`Probe::run`]. See
    /// [`health`](crate::health).
    pub fn probe(&self, now: SystemTime) -> Probe {
        let state = &self.inner.provider;
        let secs = unix_seconds(now);
        let last = state.last();
        let recent = |at: u64| secs >= at && secs - at < RECENT;
        if let Some((at, failure)) = &last
            && recent(*at)
        {
            return Probe::Done(health(failure.as_ref()));
        }
        let started = state.probed.load(Ordering::Acquire);
        let may_ask = started == 0 || !recent(started - 1);
        if !may_ask
            || state
                .probed
                .compare_exchange(
                    started,
                    secs.saturating_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return Probe::Done(match last {
                Some((_, failure)) => health(failure.as_ref()),
                None => Health::Degraded("the introspection endpoint: not checked yet".into()),
            });
        }
        let this = self.clone();
        let call = crate::metrics::ProviderCall::start(crate::metrics::Provider::Introspection);
        Probe::Send(ProbeStep::new(
            self.request_for(PROBE_TOKEN),
            move |response, now| {
                let now = unix_seconds(now);
                let answer = this.parse(response.as_ref(), PROBE_TOKEN, now);
                call.finish(answer.is_ok());
                // The token is ours: any 4xx is the provider's failure.
                let failure = failure(response, &answer);
                this.inner.provider.keep(now, failure.clone());
                Probe::Done(health(failure.as_ref()))
            },
        ))
    }
}
