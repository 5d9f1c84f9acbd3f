//! The introspection endpoint's health for a readiness probe: the outcome
//! of the latest provider call, or a call of the probe's own about a token
//! that does not exist.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::{Answer, IntrospectionBackend};
use crate::error::AuthError;
use crate::health::{Health, Probe, ProbeStep};
use crate::jwt::unix_seconds;

/// The token a probe asks about: no provider issued it, so a working one
/// answers `{"active": false}`.
const PROBE_TOKEN: &str = "readiness-probe-not-a-token";

/// How recent (seconds) a provider call's outcome must be for a probe to
/// take it instead of asking.
const RECENT: u64 = 10;

/// What the latest provider call told of the provider.
#[derive(Default)]
pub(super) struct ProviderState {
    /// When it finished (seconds since the epoch) and the provider's
    /// failure, if it failed.
    last: Mutex<Option<(u64, Option<Cow<'static, str>>)>>,
    /// A probe's call is under way (one at a time).
    probing: AtomicBool,
}

impl ProviderState {
    /// Keeps a call's outcome: a failure of the provider's (not an answer
    /// about the token, whatever it says).
    pub(super) fn called(&self, now: u64, answer: &Result<Answer, AuthError>) {
        let failure = match answer {
            Err(AuthError::ProviderUnavailable { reason, .. }) => Some(reason.clone()),
            _ => None,
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, failure));
    }

    fn last(&self) -> Option<(u64, Option<Cow<'static, str>>)> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn health(failure: Option<Cow<'static, str>>) -> Health {
    match failure {
        None => Health::Ready,
        Some(reason) => Health::Down(reason),
    }
}

/// Ends a probe's call, however it ends (a dropped step included).
struct Probing(IntrospectionBackend);

impl Drop for Probing {
    fn drop(&mut self) {
        self.0
            .inner
            .provider
            .probing
            .store(false, Ordering::Release);
    }
}

impl IntrospectionBackend {
    /// The provider's health at `now`, for a readiness probe: the outcome
    /// of a call in the last 10 s, else a call about a token no provider
    /// issued (any usable answer is ready; a failure, or our client
    /// rejected, is down). One probe call at a time; while one is under
    /// way, the latest outcome (ready if there is none). Run it with
    /// [`Probe::run_blocking`] or [`Probe::run`]. See
    /// [`health`](crate::health).
    pub fn probe(&self, now: SystemTime) -> Probe {
        let state = &self.inner.provider;
        let last = state.last();
        if let Some((at, failure)) = &last
            && unix_seconds(now).saturating_sub(*at) < RECENT
        {
            return Probe::Done(health(failure.clone()));
        }
        if state.probing.swap(true, Ordering::AcqRel) {
            return Probe::Done(health(last.and_then(|(_, failure)| failure)));
        }
        let probing = Probing(self.clone());
        let call = crate::metrics::ProviderCall::start(crate::metrics::Provider::Introspection);
        Probe::Send(ProbeStep::new(
            self.request_for(PROBE_TOKEN),
            move |response, now| {
                let this = &probing.0;
                let now = unix_seconds(now);
                let answer = this.parse(response.as_ref(), PROBE_TOKEN, now);
                call.finish(answer.is_ok());
                this.inner.provider.called(now, &answer);
                let failure = match answer {
                    Err(AuthError::ProviderUnavailable { reason, .. }) => Some(reason),
                    _ => None,
                };
                Probe::Done(health(failure))
            },
        ))
    }
}
