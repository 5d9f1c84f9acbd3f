//! The answers: `RateLimit-Policy` and `RateLimit` (the IETF RateLimit
//! header fields draft, draft-ietf-httpapi-ratelimit-headers), the
//! optional legacy `X-RateLimit-*` fields, and the 429 with an integer
//! `Retry-After` and an `application/problem+json` body (RFC 9457).

use std::sync::Arc;

use auth_core::step::EverySecond;
use auth_core::{Additions, Cause, Refusal};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::error::StoreError;
use crate::gcra::{Cell, Rate};
use crate::rule::{Callers, Rule};
use crate::store::Reply;
use crate::throttle::{Fallback, Route};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Whole seconds, rounded up: a client told "t" seconds is never early.
fn seconds_up(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

/// Which headers a throttle shows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shown {
    pub(crate) on_allowed: bool,
    pub(crate) legacy: bool,
}

impl Default for Shown {
    fn default() -> Self {
        Shown {
            on_allowed: true,
            legacy: false,
        }
    }
}

/// `"<id>";r=<remaining>;t=<seconds>`: what is left, and when more is.
/// (`"<id>";q=<limit>;w=<window>`, the policy, is made with the rule.)
fn state(rule: &Rule, remaining: u64, seconds: u64) -> HeaderValue {
    let mut numbers = (itoa::Buffer::new(), itoa::Buffer::new());
    let (remaining, seconds) = (numbers.0.format(remaining), numbers.1.format(seconds));
    let parts = ["\"", rule.id(), "\";r=", remaining, ";t=", seconds];
    // Exactly as long as it needs: the header value takes the allocation
    // over as it is.
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    // Ids are checked at construction: letters, digits and `-_.`.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("\"?\""))
}

impl Shown {
    /// The fields of `rule` for `cell`: the policy, what is left and `t`,
    /// the seconds until the quota is whole again (the draft's reset, on
    /// every answer alike: a client that waits `t` seconds has the whole
    /// quota again; `Retry-After` says when the next request fits).
    fn fields(self, rule: &Rule, cell: &Cell, now: u64) -> Additions {
        let reset = cell.reset.min(rule.full);
        let mut fields = Additions::with_capacity(if self.legacy { 5 } else { 2 });
        fields.push(RATELIMIT_POLICY.clone(), rule.policy.clone());
        fields.push(
            RATELIMIT.clone(),
            state(rule, cell.remaining, seconds_up(reset)),
        );
        if self.legacy {
            let reset_at = seconds_up(now.saturating_add(reset));
            fields.push(LIMIT.clone(), HeaderValue::from(rule.quota().limit()));
            fields.push(REMAINING.clone(), HeaderValue::from(cell.remaining));
            fields.push(RESET.clone(), HeaderValue::from(reset_at));
        }
        fields
    }

    /// An allowed request's fields: its most constrained rule's.
    pub(crate) fn allowed(self, rule: &Rule, cell: &Cell, now: u64) -> Additions {
        if !self.on_allowed {
            return Additions::new();
        }
        self.fields(rule, cell, now)
    }

    /// The 429 for the violated rule: `Retry-After` (whole seconds, at
    /// least 1, at most the rule's window: a store's word never holds a
    /// client back longer), the rule's fields with `r=0`, and a problem+json body.
    pub(crate) fn denied(self, rule: &Rule, cell: &Cell, now: u64) -> Refusal {
        let retry = seconds_up(cell.retry.min(rule.full)).max(1);
        let problem = serde_json::json!({
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": format!("rate limit \"{}\" exceeded; retry in {retry} s", rule.id()),
        });
        let mut refusal = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            HeaderValue::from_static("application/problem+json"),
            problem.to_string(),
        )
        .with_cause(Cause::RateLimited {
            rule: Arc::clone(&rule.id),
            retry_after: retry,
        });
        refusal.append_header(http::header::RETRY_AFTER, HeaderValue::from(retry));
        for (name, value) in self.fields(rule, cell, now) {
            refusal.append_header(name, value);
        }
        refusal
    }
}

/// The 503 of [`Fallback::Deny`](crate::Fallback::Deny).
pub(crate) fn store_unavailable() -> Refusal {
    let problem = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the rate limit store is unavailable",
    });
    let mut refusal = Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        HeaderValue::from_static("application/problem+json"),
        problem.to_string(),
    )
    .with_cause(Cause::LimitsUnavailable);
    refusal.append_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    refusal
}

/// Whether a shared store's answer for a counter of `rate` is one the
/// arithmetic can give. (Times beyond the rule's window are possible after
/// its quota was lowered; every answer caps them at the window.)
fn plausible(cell: &Cell, rate: Rate) -> bool {
    match cell.allowed {
        true => cell.retry == 0 && cell.remaining < rate.burst,
        false => cell.remaining == 0 && cell.retry > 0,
    }
}

/// A shared store's answer for `count` counters of these `rates`, if it
/// has a plausible cell for each; else [`StoreError::Unexpected`] (a lying
/// or broken store is a failed store).
pub(crate) fn checked(
    reply: Result<Reply, StoreError>,
    count: usize,
    rates: impl Iterator<Item = Rate>,
) -> Result<Reply, StoreError> {
    let reply = reply?;
    let fits = reply.cells.len() == count
        && rates
            .zip(&reply.cells)
            .all(|(rate, cell)| plausible(cell, rate));
    fits.then_some(reply).ok_or(StoreError::Unexpected)
}

/// A warning that a request was over a limit in log-only mode (the caller
/// kind unknown before authentication, for the failure budget).
pub(crate) fn warn_over_limit(rule: &Rule, caller: Option<Callers>, route: Route<'_>) {
    static LOG: EverySecond = EverySecond::new();
    LOG.log(|held| {
        tracing::warn!(
            rule = %rule.id(),
            route = route.get().as_deref(),
            caller = caller.map(tracing::field::display),
            also = held,
            "rate limit exceeded (log-only: let through)"
        );
    });
}

/// A warning that the shared store failed, at most once a second (an
/// outage must not flood the log); a refusal that waiting will not mend
/// is an error of its own, as often.
pub(crate) fn warn_store_failed(error: &StoreError, fallback: Fallback) {
    static LOG: EverySecond = EverySecond::new();
    if let StoreError::Refused(_) = error {
        REFUSED.log(|held| {
            tracing::error!(
                %error,
                ?fallback,
                also = held,
                "rate limit store misconfigured; the fallback applies"
            );
        });
        return;
    }
    LOG.log(|held| {
        tracing::warn!(
            %error,
            ?fallback,
            also = held,
            "rate limit store failed; the fallback applies"
        );
    });
}

/// The store's refusals, whole or in part: one error line a second.
static REFUSED: EverySecond = EverySecond::new();

/// A warning that a part of the shared store failed while another part's
/// answer decided (a denial in one hash slot), at most once a second; a
/// refusal there is an error, with the store's other refusals.
pub(crate) fn warn_store_partly_failed(error: &StoreError) {
    static LOG: EverySecond = EverySecond::new();
    if let StoreError::Refused(_) = error {
        REFUSED.log(|held| {
            tracing::error!(
                %error,
                also = held,
                "rate limit store misconfigured in part; the answer of the rest stands"
            );
        });
        return;
    }
    LOG.log(|held| {
        tracing::warn!(
            %error,
            also = held,
            "rate limit store failed in part; the answer of the rest stands"
        );
    });
}
