//! [`Throttle`]: a route's rules, where their counters live, and the
//! decision for each request; a [`Limiter`] for `auth-core`'s gate.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::step::{Charge, EverySecond, Limited, Limiter, RequestView};
use auth_core::{Additions, AuthData, AuthError, IpBackend, Refusal, Verdict};
use smallvec::SmallVec;

use crate::answer::{self, Shown};
use crate::budget::{Budget, FailureBudget};
use crate::error::{StoreError, ThrottleError};
use crate::gcra::{Cell, Rate};
use crate::key::{CallerKey, KeyHasher};
use crate::memory::MemoryStore;
use crate::metrics;
use crate::probe::Probing;
use crate::rule::{Callers, KeyBy, Rule};
use crate::store::{Batch, Counter, Reply, Store};

/// What a throttle does when the shared store gives no answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// Count in this process meanwhile (each server on its own): the
    /// default.
    #[default]
    Memory,
    /// Let requests through uncounted.
    Allow,
    /// Refuse them: 503 with `Retry-After: 1`.
    Deny,
}

/// Enforce, or only count and log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    #[default]
    Enforce,
    LogOnly,
}

type Exempt = dyn Fn(&AuthData) -> bool + Send + Sync;

/// A route's rate limits: rules, the store of their counters, and how the
/// answers look. Decides per request, from the identity authentication
/// found, with no IO of its own: at once with the in-process store, or
/// after one round trip to a shared store ([`Checked::Store`]). Cloning is
/// cheap.
///
/// Give it to a gate (`auth_core::Gate::throttle`, or the adapters'
/// `AuthLayer::throttle` and `Authentication::throttle`), which applies it
/// after authentication; or call [`decide`](Self::decide) yourself.
///
/// ```
/// use auth_core::{AnonSessionBackend, Decision, Gate};
/// use auth_throttle::{Callers, MemoryStore, Quota, Rule, Throttle};
/// use std::time::Duration;
///
/// let throttle = Throttle::builder(MemoryStore::default())
///     .rule(Rule::new("visitors", Quota::new(3, Duration::from_secs(10))?)?.callers(Callers::ANONYMOUS))
///     .build()?;
/// let gate = Gate::new(AnonSessionBackend::new("anon")?).throttle(throttle);
///
/// let req = auth_core::http::Request::builder()
///     .header("cookie", "anon=0123456789abcdef0123456789abcdef") // a returning visitor
///     .body(())?;
/// for _ in 0..3 {
///     let Decision::Proceed(proceed) = gate.decide_blocking(&req) else { panic!() };
///     assert!(proceed.additions.get("ratelimit").is_some());
/// }
/// let Decision::Refuse(refusal) = gate.decide_blocking(&req) else { panic!() };
/// assert_eq!(refusal.status(), 429);
/// assert_eq!(refusal.header("retry-after").unwrap(), "4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Throttle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    rules: Vec<Rule>,
    /// The rules' numbers in the in-process store (the primary one, or the
    /// fallback of a shared store).
    numbers: Vec<u32>,
    pub(crate) store: Store,
    pub(crate) memory: MemoryStore,
    pub(crate) keys: KeyHasher,
    pub(crate) client_ip: IpBackend,
    pub(crate) fallback: Fallback,
    pub(crate) mode: Mode,
    exempt: Option<Box<Exempt>>,
    pub(crate) shown: Shown,
    pub(crate) budget: Option<Budget>,
    /// A rule that counts only identified callers: a request without an
    /// auth verdict passes it uncounted.
    needs_identity: bool,
    /// Whether that was logged (once per throttle).
    warned_no_verdict: AtomicBool,
    /// Whether a forwarded header from a proxy nobody trusts was logged
    /// (once per throttle; set from the start when proxies are trusted).
    warned_forwarding: AtomicBool,
    /// Requests from loopback or private addresses so far.
    local_requests: AtomicU64,
    /// Whether a client-chosen identity that met no rule was logged.
    warned_unclaimed: AtomicBool,
    /// Requests the shared store failed, whole or in part, since it last
    /// answered whole (its recovery is logged with their number).
    store_failures: AtomicU64,
    /// The recovery's log line, at most once a second.
    recovery_log: EverySecond,
    /// The readiness probe's ping, one at a time.
    pub(crate) probing: Probing,
}

/// Requests from a local address whose forwarding headers are all looked
/// at, and one in how many after them.
const FORWARDING_FIRST: u64 = 16;
const FORWARDING_SAMPLE: u64 = 1_024;

/// The decision: now, or after one round trip to the shared store.
#[must_use]
#[derive(Debug)]
pub enum Checked {
    /// Decided.
    Done(Throttled),
    /// Run the shared store first ([`StoreStep::run`], or your own client
    /// with [`StoreStep::batch`] and [`StoreStep::finish`]).
    Store(StoreStep),
}

/// Let through or not.
#[derive(Debug)]
pub enum Throttled {
    /// Let the request through, and add these fields to its response (the
    /// `RateLimit` fields of its most constrained rule, if shown).
    Allow(Additions),
    /// Answer with this refusal (429, or 503 when the store failed and the
    /// fallback denies).
    Deny(Refusal),
}

/// Rules a request usually meets, kept on the stack (more spill to the
/// heap).
pub(crate) const INLINE: usize = 8;
pub(crate) type Cells = SmallVec<[Cell; INLINE]>;

/// One request's counter of one rule, in process: which rule, and whose.
#[derive(Clone, Copy)]
struct Count {
    rule: usize,
    caller: CallerKey,
}

type Counts = SmallVec<[Count; INLINE]>;

/// Where a refusal's log line finds the route pattern: the request, or
/// what a store step kept of it.
#[derive(Clone, Copy)]
pub(crate) enum Route<'r> {
    Request(&'r dyn RequestView),
    Kept(Option<&'r str>),
}

impl Route<'_> {
    /// The pattern (asked of the request only here, when a line is
    /// written: actix-web matches it anew).
    pub(crate) fn get(&self) -> Option<Cow<'_, str>> {
        match self {
            Route::Request(req) => req.route(),
            Route::Kept(route) => route.map(Cow::Borrowed),
        }
    }
}

/// A round trip to the shared store a request needs: its [`Batch`] of
/// counters, and how to go on from the store's answer.
pub struct StoreStep {
    throttle: Throttle,
    batch: Batch,
    /// The injected time (µs), for the in-process fallback's counting.
    now: u64,
    /// The request's caller kind and route pattern, for a 429's log line
    /// (the pattern kept only while that line is enabled).
    caller: Callers,
    route: Option<String>,
}

impl fmt::Debug for StoreStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreStep")
            .field("counters", &self.batch.counters().len())
            .finish_non_exhaustive()
    }
}

impl StoreStep {
    /// The counters to apply.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Runs the batch on the throttle's shared store (one round trip,
    /// under the store's timeout), then [`finish`](Self::finish)es.
    pub async fn run(self) -> Throttled {
        let reply = match self.throttle.inner.store.shared_store() {
            Some(store) => metrics::timed(&**store, &self.batch).await,
            None => Err(StoreError::Unexpected),
        };
        self.finish(reply)
    }

    /// Goes on from the store's answer (or its failure: the throttle's
    /// fallback then applies, never a 500). An answer with a cell per
    /// counter missing is a failure.
    pub fn finish(self, reply: Result<Reply, StoreError>) -> Throttled {
        let inner = &self.throttle.inner;
        let counters = self.batch.counters();
        match answer::checked(reply, counters.len(), counters.iter().map(|c| c.rate)) {
            Ok(Reply { now, cells, failed }) => {
                inner.store_replied(failed.as_ref());
                let rules = counters.iter().map(|c| c.rule);
                let route = Route::Kept(self.route.as_deref());
                inner.settle(rules.zip(cells.iter()), now, self.caller, route)
            }
            Err(error) => {
                inner.store_failed(&error);
                if let Some(store) = inner.store.shared_store() {
                    metrics::fell_back(store.kind(), inner.fallback);
                }
                match inner.fallback {
                    Fallback::Memory => {
                        let counts: Counts = counters
                            .iter()
                            .map(|c| Count {
                                rule: c.rule,
                                caller: c.caller,
                            })
                            .collect();
                        let route = Route::Kept(self.route.as_deref());
                        inner.in_memory(&counts, self.now, self.caller, route)
                    }
                    Fallback::Allow => Throttled::Allow(Additions::new()),
                    Fallback::Deny if inner.mode == Mode::LogOnly => {
                        Throttled::Allow(Additions::new())
                    }
                    Fallback::Deny => Throttled::Deny(answer::store_unavailable()),
                }
            }
        }
    }
}

/// Microseconds since the epoch (0 before it).
pub(crate) fn micros(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A loopback, private (RFC 1918, unique local) or link-local address:
/// where a reverse proxy usually sits.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        // `::` is `::1` grouped per /64: no client sends from it.
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
        }
    }
}

/// The peer address, IPv6 clients grouped per /64.
fn default_client_ip() -> IpBackend {
    IpBackend::new()
        .ipv6_prefix(64)
        .unwrap_or_else(|_| IpBackend::new())
}

impl Throttle {
    /// A throttle counting in `store`: a [`MemoryStore`], a `RedisStore`
    /// (feature `redis`), or any [`Store`].
    pub fn builder(store: impl Into<Store>) -> ThrottleBuilder {
        ThrottleBuilder {
            store: store.into(),
            rules: Vec::new(),
            client_ip: default_client_ip(),
            fallback: Fallback::default(),
            mode: Mode::default(),
            exempt: None,
            shown: Shown::default(),
            budget: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// Decides for a request: `verdict` is what authentication found (none
    /// without it: only rules keyed by client address count such a
    /// request), `req` the request (its method, and its client address for
    /// rules that count by it), `now` the clock (the in-process store uses
    /// it; a shared store uses its own).
    #[inline]
    pub fn decide(
        &self,
        verdict: Option<&Verdict>,
        req: &dyn RequestView,
        now: SystemTime,
    ) -> Checked {
        let inner = &self.inner;
        if verdict.is_none()
            && inner.needs_identity
            && !inner.warned_no_verdict.swap(true, Ordering::Relaxed)
        {
            // Legitimate on a route without authentication, but more often
            // a throttle applied where no identity is known: said once.
            tracing::warn!(
                "a request reached the throttle without an auth verdict: its rules for \
                 identified callers do not count it (does the gate have a policy?)"
            );
        }
        let auth = verdict.and_then(Verdict::auth);
        if let (Some(exempt), Some(auth)) = (&inner.exempt, auth)
            && auth.is_vouched()
            && exempt(auth)
        {
            return Checked::Done(Throttled::Allow(Additions::new()));
        }
        let kinds = Callers::of(auth, verdict.is_some_and(Verdict::is_new_session));
        let method = req.method();
        // Each key is hashed once, whatever the number of rules using it.
        let (mut identity, mut address) = (None, None);
        let mut counts = Counts::new();
        for (index, rule) in inner.rules.iter().enumerate() {
            if !rule.applies(auth, kinds, method) {
                continue;
            }
            let caller = match rule.key {
                KeyBy::Identity => match auth {
                    Some(auth) => *identity.get_or_insert_with(|| inner.keys.identity(auth)),
                    // No identity to count by.
                    None => continue,
                },
                KeyBy::ClientIp => match address {
                    Some(key) => key,
                    None => match inner.client_ip.client_group(req) {
                        Ok(ip) => {
                            inner.notice_forwarding(req, ip);
                            *address.insert(inner.keys.address(ip))
                        }
                        Err(error) => match inner.unknown_address(error) {
                            Some(refusal) => return Checked::Done(Throttled::Deny(refusal)),
                            None => continue,
                        },
                    },
                },
            };
            counts.push(Count {
                rule: index,
                caller,
            });
        }
        if counts.is_empty() {
            if kinds == Callers::CLAIMED && !inner.warned_unclaimed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "an identity the client chose (a session cookie's value, a custom backend's \
                     that does not vouch for it) met no rule of this throttle: rules for \
                     Callers::AUTHENTICATED do not count it; add one for Callers::CLAIMED"
                );
            }
            return Checked::Done(Throttled::Allow(Additions::new()));
        }
        let now = micros(now);
        if !inner.store.is_shared() {
            return Checked::Done(inner.in_memory(&counts, now, kinds, Route::Request(req)));
        }
        // A refusal's log line names the route: kept for after the round
        // trip only while that line would be written (a 429 at debug, a
        // log-only warning at warn).
        let logged = match inner.mode {
            Mode::Enforce => tracing::enabled!(tracing::Level::DEBUG),
            Mode::LogOnly => {
                tracing::enabled!(target: "auth_throttle::answer", tracing::Level::WARN)
            }
        };
        let route = if logged {
            req.route().map(Cow::into_owned)
        } else {
            None
        };
        let counters = counts
            .iter()
            .map(|c| {
                let rule = &inner.rules[c.rule];
                Counter::new(c.rule, c.caller, Arc::clone(&rule.id), rule.rate)
            })
            .collect();
        Checked::Store(StoreStep {
            throttle: self.clone(),
            batch: Batch::new(counters),
            now,
            caller: kinds,
            route,
        })
    }

    /// Where the counters live.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// The throttle as a gate's rate limits: its [`decide`](Throttle::decide),
/// with a shared store's round trip as the future to await.
impl Limiter for Throttle {
    #[inline]
    fn admit(&self, req: &dyn RequestView, now: SystemTime) -> Limited {
        self.admit_budget(req, now)
    }

    fn charge(&self, error: &AuthError, req: &dyn RequestView, now: SystemTime) -> Option<Charge> {
        self.charge_budget(error, req, now)
    }

    #[inline]
    fn check(&self, verdict: Option<&Verdict>, req: &dyn RequestView, now: SystemTime) -> Limited {
        match self.decide(verdict, req, now) {
            Checked::Done(throttled) => throttled.into(),
            Checked::Store(step) => {
                Limited::Pending(Box::pin(async move { step.run().await.into() }))
            }
        }
    }
}

impl From<Throttled> for Limited {
    fn from(throttled: Throttled) -> Self {
        match throttled {
            Throttled::Allow(additions) => Limited::Allow(additions),
            Throttled::Deny(refusal) => Limited::Deny(refusal),
        }
    }
}

impl Inner {
    /// The shared store failed (or was not asked, in its backoff): counted
    /// for the recovery's log line, and warned of.
    pub(crate) fn store_failed(&self, error: &StoreError) {
        self.store_failures.fetch_add(1, Ordering::Relaxed);
        answer::warn_store_failed(error, self.fallback);
    }

    /// The shared store answered; if a part of the batch `failed`, that
    /// is a failure for the recovery's log line, and warned of (the answer
    /// stands: no fallback).
    pub(crate) fn store_replied(&self, failed: Option<&StoreError>) {
        match failed {
            Some(error) => {
                self.store_failures.fetch_add(1, Ordering::Relaxed);
                answer::warn_store_partly_failed(error);
            }
            None => self.store_answered(),
        }
    }

    /// The shared store answered: after failures, that is logged once
    /// (limits are shared again).
    fn store_answered(&self) {
        if self.store_failures.load(Ordering::Relaxed) == 0 {
            return;
        }
        // At most once a second: on a cluster, the answers of live
        // primaries come between a dead one's failures. The failures held
        // back count toward the next line.
        self.recovery_log.log(|_| {
            let failed = self.store_failures.swap(0, Ordering::Relaxed);
            if failed > 0 {
                let store = self.store.shared_store().map_or("shared", |s| s.kind());
                tracing::info!(
                    store,
                    failed_requests = failed,
                    "rate limit store answering again; limits are shared again"
                );
            }
        });
    }

    /// A request whose client address cannot be found (the server gives
    /// no peer address): refused for it when enforcing; in log-only mode,
    /// nothing is refused: it is not counted by address, and a warning
    /// says so (at most once a second).
    pub(crate) fn unknown_address(&self, error: AuthError) -> Option<Refusal> {
        match self.mode {
            Mode::Enforce => Some(Refusal::for_error(error, None)),
            Mode::LogOnly => {
                static LOG: EverySecond = EverySecond::new();
                LOG.log(|also| {
                    tracing::warn!(
                        %error,
                        also,
                        "client address unknown (log-only: let through, not counted by address)"
                    );
                });
                None
            }
        }
    }

    /// Warns, once, that a request with a forwarding header came from a
    /// loopback or private address while no proxy is trusted: every client
    /// behind that proxy then shares its address's count. The headers are
    /// looked at on the first requests from such addresses, then on one in
    /// [`FORWARDING_SAMPLE`] (a proxy sends them on every request; looking
    /// on all would cost two header look-ups each).
    pub(crate) fn notice_forwarding(&self, req: &dyn RequestView, client: IpAddr) {
        if self.warned_forwarding.load(Ordering::Relaxed) || !is_local(client) {
            return;
        }
        let seen = self.local_requests.fetch_add(1, Ordering::Relaxed);
        if seen >= FORWARDING_FIRST && !seen.is_multiple_of(FORWARDING_SAMPLE) {
            return;
        }
        let forwarded = ["x-forwarded-for", "forwarded"]
            .into_iter()
            .find(|name| req.header(name).is_some());
        if let Some(header) = forwarded
            && !self.warned_forwarding.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                header,
                "a request from a loopback or private address carries a forwarding header, \
                 but the throttle trusts no proxy: every client behind that proxy shares one \
                 count by address (ThrottleBuilder::client_ip with trust_proxies)"
            );
        }
    }

    /// The in-process store's decision at `now` (µs).
    fn in_memory(
        &self,
        counts: &[Count],
        now: u64,
        caller: Callers,
        route: Route<'_>,
    ) -> Throttled {
        if let [count] = counts {
            let rule = count.rule;
            let cell = (self.memory).apply_one(
                self.numbers[rule],
                count.caller,
                self.rules[rule].rate,
                now,
            );
            return self.settle(std::iter::once((rule, &cell)), now, caller, route);
        }
        let numbered: SmallVec<[(u32, CallerKey, Rate); INLINE]> = counts
            .iter()
            .map(|c| (self.numbers[c.rule], c.caller, self.rules[c.rule].rate))
            .collect();
        let mut cells = Cells::new();
        self.memory.apply(&numbered, now, &mut cells);
        let cells = counts.iter().map(|c| c.rule).zip(cells.iter());
        self.settle(cells, now, caller, route)
    }

    /// The answer for the cells of a request's counters (each with its
    /// rule's index); a refusal's log line names the rule, the caller kind
    /// and the route pattern, never the caller.
    fn settle<'a>(
        &self,
        cells: impl Iterator<Item = (usize, &'a Cell)> + Clone,
        now: u64,
        caller: Callers,
        route: Route<'_>,
    ) -> Throttled {
        let denied = cells
            .clone()
            .filter(|(_, cell)| !cell.allowed)
            // The rule that holds the client back longest.
            .max_by_key(|(_, cell)| cell.retry);
        // Allowed by every rule that counted it, or denied by those that
        // denied it (the others spent nothing).
        if auth_core::metrics::enabled() {
            for (rule, cell) in cells.clone() {
                if denied.is_none() || !cell.allowed {
                    metrics::counted(&self.rules[rule], cell.allowed);
                }
            }
        }
        match (denied, self.mode) {
            (None, _) => {
                let tightest =
                    cells.min_by_key(|(_, cell)| (cell.remaining, std::cmp::Reverse(cell.reset)));
                let additions = match tightest {
                    Some((rule, cell)) => self.shown.allowed(&self.rules[rule], cell, now),
                    None => Additions::new(),
                };
                Throttled::Allow(additions)
            }
            (Some((rule, _)), Mode::LogOnly) => {
                answer::warn_over_limit(&self.rules[rule], Some(caller), route);
                Throttled::Allow(Additions::new())
            }
            (Some((rule, cell)), Mode::Enforce) => {
                let rule = &self.rules[rule];
                tracing::debug!(
                    rule = %rule.id,
                    route = route.get().as_deref(),
                    caller = %caller,
                    retry_after_us = cell.retry,
                    "rate limit exceeded"
                );
                Throttled::Deny(self.shown.denied(rule, cell, now))
            }
        }
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("rules", &self.inner.rules)
            .field("store", &self.inner.store)
            .field("fallback", &self.inner.fallback)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Throttle`]; see [`Throttle::builder`].
#[must_use]
pub struct ThrottleBuilder {
    store: Store,
    rules: Vec<Rule>,
    client_ip: IpBackend,
    fallback: Fallback,
    mode: Mode,
    exempt: Option<Box<Exempt>>,
    shown: Shown,
    budget: Option<FailureBudget>,
}

impl ThrottleBuilder {
    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// How rules keyed by client address find it, and how they group IPv6
    /// clients (default `IpBackend::new().ipv6_prefix(64)`: the peer
    /// address, IPv6 clients counted per /64, the smallest network a
    /// provider gives one subscriber). Give it your trusted proxies, the
    /// same as the policy's, and a prefix:
    /// `IpBackend::new().trust_proxies(["10.0.0.0/8"])?.ipv6_prefix(64)?`
    /// (without one, every IPv6 address counts apart).
    pub fn client_ip(mut self, ip: IpBackend) -> Self {
        self.client_ip = ip;
        self
    }

    /// Counts refused credentials per client address, and refuses an
    /// address that spent its budget before its next credential is read
    /// (see [`FailureBudget`]). Its id must differ from the rules'.
    pub fn failure_budget(mut self, budget: FailureBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// What happens when the shared store does not answer (default:
    /// [`Fallback::Memory`]; in [log-only](Self::log_only) mode,
    /// [`Fallback::Deny`] lets requests through).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Counts and logs (`warn`, at most once a second with a count)
    /// requests over a limit, but lets them through (default `false`): to
    /// try rules on live traffic. Nothing is refused, not even by
    /// [`Fallback::Deny`], a spent failure budget or a client address that
    /// cannot be found (that request is not counted by address; a warning
    /// says so).
    pub fn log_only(mut self, yes: bool) -> Self {
        self.mode = if yes { Mode::LogOnly } else { Mode::Enforce };
        self
    }

    /// Identities never counted (an operator, a health checker), among
    /// those a verifier vouched for ([`AuthData::is_vouched`]): an identity
    /// the client chose (a session cookie's value, an unsigned anonymous
    /// id) is never exempt, whatever it says. Compare what the verifier
    /// vouched for, such as a token's issuer and subject
    /// (`who.key() == "jwt:https://id.example|health-checker"`).
    pub fn exempt(mut self, exempt: impl Fn(&AuthData) -> bool + Send + Sync + 'static) -> Self {
        self.exempt = Some(Box::new(exempt));
        self
    }

    /// Whether allowed answers carry `RateLimit-Policy` and `RateLimit` for
    /// their most constrained rule (default `true`; 429s always do).
    pub fn ratelimit_headers(mut self, yes: bool) -> Self {
        self.shown.on_allowed = yes;
        self
    }

    /// Adds the legacy `X-RateLimit-Limit` (the quota), `-Remaining` (what
    /// is left) and `-Reset` (Unix time, in seconds, when the quota is
    /// whole again) next to the standard fields (default `false`).
    pub fn legacy_headers(mut self, yes: bool) -> Self {
        self.shown.legacy = yes;
        self
    }

    /// The throttle.
    ///
    /// # Errors
    /// Two rules with the same id on one route.
    pub fn build(self) -> Result<Throttle, ThrottleError> {
        for (i, rule) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|r| r.id == rule.id) {
                return Err(ThrottleError::Invalid {
                    name: "rules",
                    reason: "two rules of one throttle share an id",
                });
            }
        }
        let memory = self.store.memory().clone();
        let keys = self.store.keys().clone();
        let numbers = self.rules.iter().map(|r| memory.intern(&r.id)).collect();
        let budget = self.budget.map(|budget| {
            let mut budget = Budget {
                budget,
                numbers: Vec::new(),
            };
            budget.numbers = budget.rules().map(|r| memory.intern(&r.id)).collect();
            budget
        });
        if let Some(budget) = &budget
            && budget
                .rules()
                .any(|step| self.rules.iter().any(|r| r.id == step.id))
        {
            return Err(ThrottleError::Invalid {
                name: "failure budget",
                reason: "its id is a rule's id",
            });
        }
        let trusts_proxies = self.client_ip.trusts_proxies();
        let needs_identity = self.rules.iter().any(|r| {
            r.key == KeyBy::Identity
                || r.scope.is_some()
                || r.when.is_some()
                || !r.callers.contains(Callers::UNIDENTIFIED)
        });
        Ok(Throttle {
            inner: Arc::new(Inner {
                rules: self.rules,
                numbers,
                store: self.store,
                memory,
                keys,
                client_ip: self.client_ip,
                fallback: self.fallback,
                mode: self.mode,
                exempt: self.exempt,
                shown: self.shown,
                budget,
                needs_identity,
                warned_no_verdict: AtomicBool::new(false),
                warned_forwarding: AtomicBool::new(trusts_proxies),
                local_requests: AtomicU64::new(0),
                warned_unclaimed: AtomicBool::new(false),
                store_failures: AtomicU64::new(0),
                recovery_log: EverySecond::new(),
                probing: Probing::default(),
            }),
        })
    }
}
