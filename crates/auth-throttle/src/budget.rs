//! [`FailureBudget`]: refused credentials counted per client address; an
//! address that spent its budget is refused (429) before its next
//! credential is read.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::step::{Charge, Limited, RequestView};
use auth_core::{Additions, AuthError};

use crate::answer;
use crate::error::{StoreError, ThrottleError};
use crate::gcra::Rate;
use crate::key::CallerKey;
use crate::metrics;
use crate::rule::{Quota, Rule};
use crate::store::{Batch, Counter, Reply};
use crate::throttle::{Cells, INLINE, Inner, Mode, Route, Throttle, micros};
use smallvec::SmallVec;

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
/// throttle's store, so servers sharing a Redis share it. Each refusal is
/// counted in process at once (a client that hangs up is counted all the
/// same), then in the shared store, whose answer each server keeps; a
/// server refuses an address from what it knows, so good traffic never
/// waits for the store.
///
/// What it does not bound: requests from one address already past the
/// check when its budget runs out are still verified (as many as it has
/// in flight during one verification; for introspection, at most its
/// share of the provider calls), and with a shared store a server learns
/// that an address is spent from its own next refusal of it (`n - 1` more
/// refusals for an address spread over `n` servers, one after the other).
/// Clients behind one NAT share a budget: a client there that sends forged
/// tokens spends everybody's. IPv6 clients count per /64, so a client with
/// a larger prefix gets a budget per /64 it uses.
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
    /// Longer budgets behind the first, each stricter in the long run.
    pub(crate) escalations: Vec<Rule>,
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
            escalations: Vec::new(),
            counts: Arc::new(Self::counts_by_default),
        }
    }

    /// Escalates the wait for a client that spends the budget again and
    /// again: every refused credential also spends `quota`, a budget with
    /// a slower rate (a longer wait per credential) than the one before
    /// it; once that is spent too, the client waits at its rate. Chain
    /// several for steps, the last one the cap on the wait:
    ///
    /// ```
    /// use auth_throttle::{FailureBudget, Quota};
    /// use std::time::Duration;
    ///
    /// // 10 per 10 s; a client that keeps failing gets 30 per 10 min (one
    /// // every 20 s), then 100 a day (one every 14.4 min) at most.
    /// let budget = FailureBudget::new(Quota::new(10, Duration::from_secs(10))?)
    ///     .escalate(Quota::new(30, Duration::from_secs(600))?)?
    ///     .escalate(Quota::new(100, Duration::from_secs(86_400))?)?;
    /// # drop(budget);
    /// # Ok::<(), auth_throttle::ThrottleError>(())
    /// ```
    ///
    /// Each step is named `<id>-2`, `<id>-3`... in the `RateLimit` fields
    /// and store keys.
    ///
    /// # Errors
    /// A step whose rate is not slower than the one before it, or a name
    /// too long for the budget's id.
    pub fn escalate(mut self, quota: Quota) -> Result<Self, ThrottleError> {
        let id = format!("{}-{}", self.rule.id, self.escalations.len() + 2);
        let step = Rule::new(&id, quota)?.by_client_ip();
        let before = self.escalations.last().unwrap_or(&self.rule);
        if step.rate.interval <= before.rate.interval {
            return Err(ThrottleError::Invalid {
                name: "failure budget escalation",
                reason: "each step needs a slower rate (window / limit) than the one before",
            });
        }
        self.escalations.push(step);
        Ok(self)
    }

    /// Names the budget (as [`Rule::new`] names a rule); budgets with the
    /// same id in one store share their counters.
    ///
    /// # Errors
    /// An invalid id.
    pub fn id(self, id: &str) -> Result<Self, ThrottleError> {
        let rule = Rule::new(id, self.rule.quota())?.by_client_ip();
        let escalations = (self.escalations.iter().enumerate())
            .map(
                |(i, step)| Ok(Rule::new(&format!("{id}-{}", i + 2), step.quota())?.by_client_ip()),
            )
            .collect::<Result<_, ThrottleError>>()?;
        Ok(FailureBudget {
            rule,
            escalations,
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
            .field(
                "escalations",
                &self.escalations.iter().map(Rule::quota).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A throttle's budget, its counters (the budget's, then each
/// escalation's) numbered in the in-process store.
pub(crate) struct Budget {
    pub(crate) budget: FailureBudget,
    pub(crate) numbers: Vec<u32>,
}

impl Budget {
    /// The budget's rules: its own, then each escalation's.
    pub(crate) fn rules(&self) -> impl Iterator<Item = &Rule> {
        std::iter::once(&self.budget.rule).chain(&self.budget.escalations)
    }

    /// Each rule with its number in the in-process store.
    fn numbered(&self) -> impl Iterator<Item = (u32, &Rule)> {
        self.numbers.iter().copied().zip(self.rules())
    }
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
            Err(error) => {
                return match inner.unknown_address(error) {
                    Some(refusal) => Limited::Deny(refusal),
                    None => Limited::Allow(Additions::new()),
                };
            }
        };
        inner.notice_forwarding(req, ip);
        let key = inner.keys.address(ip);
        let now = micros(now);
        // The step that holds the client back longest.
        let spent = budget
            .numbered()
            .map(|(number, rule)| (rule, inner.memory.peek(number, key, rule.rate, now)))
            .filter(|(_, cell)| !cell.allowed)
            .max_by_key(|(_, cell)| cell.retry);
        let Some((rule, cell)) = spent else {
            // Every step read it and let it through.
            for rule in budget.rules() {
                metrics::counted(rule, true);
            }
            return Limited::Allow(Additions::new());
        };
        metrics::counted(rule, false);
        match inner.mode {
            Mode::LogOnly => {
                answer::warn_over_limit(rule, None, Route::Request(req));
                Limited::Allow(Additions::new())
            }
            Mode::Enforce => {
                tracing::debug!(
                    rule = %rule.id,
                    route = req.route().as_deref(),
                    "failure budget spent"
                );
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
        // An address that cannot be found was refused for it already (in
        // log-only mode, let through uncounted).
        let ip: IpAddr = inner.client_ip.client_group(req).ok()?;
        let key = inner.keys.address(ip);
        let now = micros(now);
        // Counted here at once: a client that hangs up before a shared
        // store answers (dropping the round trip below) is counted all the
        // same.
        inner.charge_in_memory(budget, key, now);
        let store = inner.store.shared_store()?;
        let counters = budget
            .rules()
            // No rule of the throttle's own: the index is never read (the
            // answer comes back to `charged`, not to `StoreStep::finish`).
            .map(|rule| Counter::new(usize::MAX, key, Arc::clone(&rule.id), rule.rate))
            .collect();
        // One caller: the batch keeps the steps in order.
        let batch = Batch::new(counters);
        let store = Arc::clone(store);
        let throttle = self.clone();
        Some(Box::pin(async move {
            let reply = metrics::timed(&*store, &batch).await;
            throttle.inner.charged(reply, key, now);
        }))
    }
}

impl Inner {
    /// After the shared store counted a refused credential: its count
    /// (every server's), mirrored in process for
    /// [`Throttle::admit_budget`], at most a full burst ahead (a store's
    /// word never locks an address out for longer). On a failure, the
    /// count in process stands.
    fn charged(&self, reply: Result<Reply, StoreError>, key: CallerKey, now: u64) {
        let Some(budget) = &self.budget else { return };
        let rates = budget.rules().map(|rule| rule.rate);
        match answer::checked(reply, budget.numbers.len(), rates) {
            // What the store holds for each step, ahead of its clock: a
            // denied step's `reset`; an allowed step's `reset` when every
            // step allowed (the call stored them all), one interval less
            // when another step denied (the call stored nothing, and
            // `reset` counts the unit it would have spent). (One caller is
            // one call: a store that failed it in part is not mirrored;
            // the count in process stands.)
            Ok(reply) => {
                self.store_replied(reply.failed.as_ref());
                if reply.failed.is_some() {
                    return;
                }
                let stored = reply.cells.iter().all(|cell| cell.allowed);
                for ((number, rule), cell) in budget.numbered().zip(&reply.cells) {
                    let held = if cell.allowed && !stored {
                        cell.reset.saturating_sub(rule.rate.interval)
                    } else {
                        cell.reset
                    };
                    let ahead = held.min(rule.rate.tolerance());
                    self.memory.set(number, key, now.saturating_add(ahead), now);
                }
            }
            Err(error) => self.store_failed(&error),
        }
    }

    /// Spends one of each step of `budget` in process, all or nothing.
    fn charge_in_memory(&self, budget: &Budget, key: CallerKey, now: u64) {
        let counters: SmallVec<[(u32, CallerKey, Rate); INLINE]> = budget
            .numbered()
            .map(|(number, rule)| (number, key, rule.rate))
            .collect();
        self.memory.apply(&counters, now, &mut Cells::new());
    }
}
