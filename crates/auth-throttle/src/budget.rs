//! [`FailureBudget`]: refused credentials counted per client address; an
//! address that spent its budget is refused (429) before its next
//! credential is read.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::step::{Charge, Limited, RequestView};
use auth_core::{Additions, AuthError, Refusal};

use crate::answer;
use crate::error::{StoreError, ThrottleError};
use crate::key::CallerKey;
use crate::rule::{Quota, Rule};
use crate::store::{Batch, Counter, Reply};
use crate::throttle::{Inner, Mode, Throttle, micros};

type Counts = dyn Fn(&AuthError) -> bool + Send + Sync;

/// A budget of refused credentials per client address: each request
/// authentication refuses for its credential (by default 400 or 401 for a
/// malformed, forged, expired or unknown one; not a missing one, not 403)
/// spends one; once the budget is spent, the address gets 429 (with
/// `Retry-After` and the budget's `RateLimit` fields) before its next
/// credential is parsed: no signature check, cache look-up or provider
/// call. Other addresses are unaffected.
///
/// Addresses are found as the throttle's rules by address find them
/// ([`ThrottleBuilder::client_ip`](crate::ThrottleBuilder::client_ip):
/// trusted proxies honoured, IPv6 per /64). The budget counts in the
/// throttle's store, so servers sharing a Redis share it: each server
/// refuses an address once its own last count said the budget is spent,
/// so an address spread over `n` servers gets at most `n - 1` more
/// failures than the quota per window.
///
/// ```
/// use auth_core::{Algorithm, Decision, Gate, JwtBackend, JwtValidator};
/// use auth_throttle::{FailureBudget, MemoryStore, Quota, Throttle};
/// use std::time::Duration;
///
/// let budget = FailureBudget::new(Quota::new(3, Duration::from_secs(10))?);
/// let throttle = Throttle::builder(MemoryStore::default()).failure_budget(budget).build()?;
/// let validator = JwtValidator::builder([Algorithm::HS256])
///     .hmac_secret(b"a 32-byte or longer shared secret!")
///     .build()?;
/// let gate = Gate::new(JwtBackend::new(validator)).throttle(throttle);
///
/// let forged = auth_core::http::Request::builder()
///     .header("authorization", "Bearer not.a.token")
///     .extension(auth_core::PeerAddr("192.0.2.7:4711".parse()?))
///     .body(())?;
/// for _ in 0..3 {
///     let Decision::Refuse(refusal) = gate.decide_blocking(&forged) else { panic!() };
///     assert_eq!(refusal.status(), 401);
/// }
/// let Decision::Refuse(refusal) = gate.decide_blocking(&forged) else { panic!() };
/// assert_eq!(refusal.status(), 429);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FailureBudget {
    pub(crate) rule: Rule,
    counts: Arc<Counts>,
}

impl FailureBudget {
    /// The budget's rule id, in its `RateLimit` fields and store keys,
    /// unless [`id`](Self::id) says otherwise.
    pub const DEFAULT_ID: &'static str = "failed-credentials";

    /// A budget of `quota` refused credentials per client address.
    pub fn new(quota: Quota) -> Self {
        let rule = Rule::new(Self::DEFAULT_ID, quota)
            .map(Rule::by_client_ip)
            .unwrap_or_else(|_| unreachable!("the default id is valid"));
        FailureBudget {
            rule,
            counts: Arc::new(Self::counts_by_default),
        }
    }

    /// Names the budget (as [`Rule::new`] names a rule); budgets with the
    /// same id in one store share their counters.
    ///
    /// # Errors
    /// An invalid id.
    pub fn id(self, id: &str) -> Result<Self, ThrottleError> {
        Ok(FailureBudget {
            rule: Rule::new(id, self.rule.quota)?.by_client_ip(),
            ..self
        })
    }

    /// Which refusals spend the budget (default
    /// [`counts_by_default`](Self::counts_by_default)).
    #[must_use]
    pub fn counting(self, counts: impl Fn(&AuthError) -> bool + Send + Sync + 'static) -> Self {
        FailureBudget {
            counts: Arc::new(counts),
            ..self
        }
    }

    /// The default of [`counting`](Self::counting): a credential that is
    /// there but refused (400 `invalid_request`, 401 `invalid_token`).
    /// A missing credential costs nothing to refuse; 403 is a valid
    /// identity; 503 and 500 are the server's side.
    pub fn counts_by_default(error: &AuthError) -> bool {
        matches!(
            error,
            AuthError::InvalidRequest { .. } | AuthError::InvalidCredentials { .. }
        )
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.rule.quota
    }
}

impl fmt::Debug for FailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureBudget")
            .field("id", &self.rule.id)
            .field("quota", &self.rule.quota)
            .finish_non_exhaustive()
    }
}

/// A throttle's budget, its counter numbered in the in-process store.
pub(crate) struct Budget {
    pub(crate) budget: FailureBudget,
    pub(crate) number: u32,
}

impl Throttle {
    /// The failure budget, if any.
    pub fn failure_budget(&self) -> Option<&FailureBudget> {
        self.inner.budget.as_ref().map(|b| &b.budget)
    }

    /// [`Limiter::admit`](auth_core::step::Limiter::admit): refuses an
    /// address whose budget is spent, from this process's count (the
    /// store's own, or the shared store's answer to this server's last
    /// charge): no round trip.
    pub(crate) fn admit_budget(&self, req: &dyn RequestView, now: SystemTime) -> Limited {
        let inner = &self.inner;
        let Some(budget) = &inner.budget else {
            return Limited::Allow(Additions::new());
        };
        let ip = match inner.client_ip.client_group(req) {
            Ok(ip) => ip,
            Err(error) => return Limited::Deny(Refusal::for_error(error, None)),
        };
        inner.notice_forwarding(req, ip);
        let rule = &budget.budget.rule;
        let now = micros(now);
        let cell = inner
            .memory
            .peek(budget.number, inner.keys.address(ip), rule.rate, now);
        if cell.allowed {
            return Limited::Allow(Additions::new());
        }
        match inner.mode {
            Mode::LogOnly => {
                answer::warn_over_limit(rule);
                Limited::Allow(Additions::new())
            }
            Mode::Enforce => {
                tracing::debug!(rule = %rule.id, "failure budget spent");
                Limited::Deny(inner.shown.denied(rule, &cell, now))
            }
        }
    }

    /// [`Limiter::charge`](auth_core::step::Limiter::charge): spends one
    /// of the address's budget, in the store.
    pub(crate) fn charge_budget(
        &self,
        error: &AuthError,
        req: &dyn RequestView,
        now: SystemTime,
    ) -> Option<Charge> {
        let inner = &self.inner;
        let budget = inner.budget.as_ref()?;
        if !(budget.budget.counts)(error) {
            return None;
        }
        // An address that cannot be found was refused for it already.
        let ip: IpAddr = inner.client_ip.client_group(req).ok()?;
        let key = inner.keys.address(ip);
        let now = micros(now);
        let rule = &budget.budget.rule;
        let Some(store) = inner.store.shared_store() else {
            let _ = inner.memory.apply_one(budget.number, key, rule.rate, now);
            return None;
        };
        let batch = Batch::new(vec![Counter::new(
            usize::MAX,
            key,
            Arc::clone(&rule.id),
            rule.rate,
        )]);
        let store = Arc::clone(store);
        let throttle = self.clone();
        Some(Box::pin(async move {
            let reply = store.apply(&batch).await;
            throttle.inner.charged(reply, key, now);
        }))
    }
}

impl Inner {
    /// After the shared store counted a refused credential: its count,
    /// mirrored in process for [`Throttle::admit_budget`]; on a failure,
    /// counted in process instead (a budget is never silently dropped,
    /// whatever the fallback of the rules).
    fn charged(&self, reply: Result<Reply, StoreError>, key: CallerKey, now: u64) {
        let Some(budget) = &self.budget else { return };
        let rate = budget.budget.rule.rate;
        let cell = reply.and_then(|reply| match reply.cells.as_slice() {
            [cell] if answer::plausible(cell, rate) => Ok(*cell),
            _ => Err(StoreError::Unexpected),
        });
        match cell {
            // The counter's timestamp in the store is `reset` ahead of its
            // clock, allowed or not.
            Ok(cell) => {
                let tat = now.saturating_add(cell.reset);
                self.memory.set(budget.number, key, tat, now);
            }
            Err(error) => {
                answer::warn_store_failed(&error, self.fallback);
                let _ = self.memory.apply_one(budget.number, key, rate, now);
            }
        }
    }
}
