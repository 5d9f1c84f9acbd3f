//! [`Throttle`]: a route's rules, where their counters live, and the
//! decision for each request.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::request::RequestView;
use auth_core::{AuthData, IpBackend, Refusal, Verdict};
use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::answer::{self, Shown};
use crate::error::{StoreError, ThrottleError};
use crate::gcra::{Cell, Rate};
use crate::key::{CallerKey, KeyHasher};
use crate::memory::MemoryStore;
use crate::rule::{Callers, KeyBy, Rule};

/// Where counters live.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// In this process ([`MemoryStore`]).
    Memory(MemoryStore),
    /// In Redis, shared by every server that uses it (feature `redis`).
    #[cfg(feature = "redis")]
    Redis(crate::redis::RedisStore),
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Self {
        Store::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<crate::redis::RedisStore> for Store {
    fn from(store: crate::redis::RedisStore) -> Self {
        Store::Redis(store)
    }
}

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
enum Mode {
    #[default]
    Enforce,
    LogOnly,
}

type Exempt = dyn Fn(&AuthData) -> bool + Send + Sync;

/// A route's rate limits: rules, the store of their counters, and how the
/// answers look. Decides per request, from the identity the auth layer
/// found, with no IO of its own: at once with the in-process store, or
/// after one round trip to Redis ([`Checked::Store`]). Cloning is cheap.
///
/// ```
/// use auth_core::{AnonSessionBackend, Decision, Policy};
/// use auth_throttle::{Callers, Checked, MemoryStore, Quota, Rule, Throttle, Throttled};
/// use std::time::{Duration, SystemTime};
///
/// let store = MemoryStore::default();
/// let throttle = Throttle::builder(store)
///     .rule(Rule::new("visitors", Quota::new(3, Duration::from_secs(10)))?.callers(Callers::ANONYMOUS))
///     .build()?;
///
/// let policy = Policy::new(AnonSessionBackend::new("anon")?);
/// let req = http::Request::builder()
///     .header("cookie", "anon=visitor-1")
///     .body(())?;
/// let Decision::Admit(admit) = policy.decide_blocking(&req) else { panic!() };
/// let now = SystemTime::now();
/// for _ in 0..3 {
///     let Checked::Done(Throttled::Allow(_)) = throttle.check(Some(&admit.verdict), &req, now) else { panic!() };
/// }
/// let Checked::Done(Throttled::Deny(refusal)) = throttle.check(Some(&admit.verdict), &req, now) else { panic!() };
/// assert_eq!(refusal.status(), 429);
/// assert_eq!(refusal.header("retry-after").unwrap(), "4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    rules: Vec<Rule>,
    /// The rules' numbers in the in-process store (the primary one, or the
    /// fallback of a shared store).
    numbers: Vec<u32>,
    store: Store,
    memory: MemoryStore,
    keys: KeyHasher,
    client_ip: IpBackend,
    fallback: Fallback,
    mode: Mode,
    exempt: Option<Box<Exempt>>,
    pub(crate) shown: Shown,
    /// A rule that counts only identified callers: a request without an
    /// auth verdict passes it uncounted.
    needs_identity: bool,
    /// Whether that was logged (once per throttle).
    warned_no_verdict: AtomicBool,
}

/// The decision: now, or after one round trip to the shared store.
#[must_use]
#[derive(Debug)]
pub enum Checked {
    /// Decided.
    Done(Throttled),
    /// Run the store's script ([`StoreStep::run`] with the `redis`
    /// feature, or your own client), then [`StoreStep::finish`].
    Store(StoreStep),
}

/// Let through or not.
#[derive(Debug)]
pub enum Throttled {
    /// Let the request through, and add these headers to its response.
    Allow(Allowance),
    /// Answer with this refusal (429, or 503 when the store failed and the
    /// fallback denies).
    Deny(Refusal),
}

/// An allowed request's response headers (the `RateLimit` fields of its
/// most constrained rule, if shown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    pub(crate) headers: Headers,
}

/// A few response headers, kept on the stack.
pub(crate) type Headers = SmallVec<[(HeaderName, HeaderValue); 2]>;

impl Allowance {
    /// The headers to add to the response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Takes the headers out.
    pub fn into_headers(self) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        self.headers.into_iter()
    }
}

/// Rules a request usually meets, kept on the stack (more spill to the
/// heap).
pub(crate) const INLINE: usize = 8;
type Counters = SmallVec<[Counter; INLINE]>;
pub(crate) type Cells = SmallVec<[Cell; INLINE]>;

/// One request's counters: which rule, and whose.
#[derive(Clone, Copy)]
pub(crate) struct Counter {
    pub(crate) rule: usize,
    pub(crate) caller: CallerKey,
}

/// The script a shared store must run for one request, and how to go on
/// from its answer.
pub struct StoreStep {
    pub(crate) throttle: Throttle,
    pub(crate) counters: Vec<Counter>,
    /// The injected time (µs), for the in-process fallback's counting.
    pub(crate) now: u64,
}

impl fmt::Debug for StoreStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreStep")
            .field("counters", &self.counters.len())
            .finish_non_exhaustive()
    }
}

impl StoreStep {
    /// The Redis keys of the request's counters, one per rule, in the
    /// order of the script's `KEYS`: `<prefix>:{<caller>}:<rule id>` (the
    /// hash tag puts one caller's counters in one Redis Cluster slot).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.counters
            .iter()
            .map(|c| {
                format!(
                    "{prefix}:{{{}}}:{}",
                    c.caller, self.throttle.inner.rules[c.rule].id
                )
            })
            .collect()
    }

    /// The script's `ARGV`: `""` (the server's clock), then each rule's
    /// emission interval and tolerance in microseconds.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(1 + 2 * self.counters.len());
        args.push(String::new());
        for counter in &self.counters {
            let rate = self.throttle.inner.rules[counter.rule].rate;
            args.push(rate.interval.to_string());
            args.push(rate.tolerance().to_string());
        }
        args
    }

    /// The script itself (Lua), to load or `EVAL`.
    pub fn script() -> &'static str {
        SCRIPT
    }

    /// Goes on from the script's answer (or the store's failure: the
    /// throttle's fallback then applies, never a 500).
    pub fn finish(self, reply: Result<Vec<i64>, StoreError>) -> Throttled {
        let inner = &self.throttle.inner;
        match reply.and_then(|reply| parse(&reply, self.counters.len())) {
            Ok((now, cells)) => inner.settle(&self.counters, &cells, now),
            Err(error) => {
                answer::warn_store_failed(&error, inner.fallback);
                match inner.fallback {
                    Fallback::Memory => inner.in_memory(&self.counters, self.now),
                    Fallback::Allow => Throttled::Allow(Allowance::default()),
                    Fallback::Deny => Throttled::Deny(answer::store_unavailable()),
                }
            }
        }
    }
}

#[cfg(not(feature = "redis"))]
impl StoreStep {
    /// Without the `redis` feature there is no shared store, so no step:
    /// finishes as a failed store would (the fallback).
    pub async fn run(self) -> Throttled {
        self.finish(Err(StoreError::Unexpected))
    }
}

/// The Lua script the shared store runs (src/redis.lua).
pub(crate) const SCRIPT: &str = include_str!("redis.lua");

/// The script's answer: the server's time and one cell per counter.
fn parse(reply: &[i64], counters: usize) -> Result<(u64, Cells), StoreError> {
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| StoreError::Unexpected);
    if reply.len() != 2 + 4 * counters {
        return Err(StoreError::Unexpected);
    }
    let now = unsigned(reply[1])?;
    let cells = reply[2..]
        .chunks_exact(4)
        .map(|c| {
            Ok(Cell {
                allowed: c[0] == 1,
                next: 0,
                remaining: unsigned(c[1])?,
                reset: unsigned(c[2])?,
                retry: unsigned(c[3])?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((now, cells))
}

/// Microseconds since the epoch (0 before it).
fn micros(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The peer address, IPv6 clients grouped per /64.
fn default_client_ip() -> IpBackend {
    IpBackend::new()
        .ipv6_prefix(64)
        .unwrap_or_else(|_| IpBackend::new())
}

impl Throttle {
    /// A throttle counting in `store` (a [`MemoryStore`], or a
    /// `RedisStore` with the `redis` feature).
    pub fn builder(store: impl Into<Store>) -> ThrottleBuilder {
        ThrottleBuilder {
            store: store.into(),
            rules: Vec::new(),
            client_ip: default_client_ip(),
            fallback: Fallback::default(),
            mode: Mode::default(),
            exempt: None,
            shown: Shown::default(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// Decides for a request: `verdict` is what the auth layer left (none
    /// without one: only rules keyed by client address count such a
    /// request), `req` the request (its method, and its client address
    /// for rules that count by it), `now` the clock (the in-process store
    /// uses it; Redis uses its own).
    pub fn check(
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
            // a throttle layered outside the auth layer: said once.
            tracing::warn!(
                "a request reached the throttle without an auth verdict: its rules for \
                 identified callers do not count it (is the throttle inside the auth layer?)"
            );
        }
        let auth = verdict.and_then(Verdict::auth);
        if let (Some(exempt), Some(auth)) = (&inner.exempt, auth)
            && exempt(auth)
        {
            return Checked::Done(Throttled::Allow(Allowance::default()));
        }
        let kinds = Callers::of(auth, verdict.is_some_and(Verdict::is_new_session));
        let method = req.method();
        // Each key is hashed once, whatever the number of rules using it.
        let (mut identity, mut address) = (None, None);
        let mut counters = Counters::new();
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
                        Ok(ip) => *address.insert(inner.keys.address(ip)),
                        Err(error) => {
                            return Checked::Done(Throttled::Deny(Refusal::for_error(error, None)));
                        }
                    },
                },
            };
            counters.push(Counter {
                rule: index,
                caller,
            });
        }
        if counters.is_empty() {
            return Checked::Done(Throttled::Allow(Allowance::default()));
        }
        let now = micros(now);
        match &inner.store {
            Store::Memory(_) => Checked::Done(inner.in_memory(&counters, now)),
            #[cfg(feature = "redis")]
            Store::Redis(_) => Checked::Store(StoreStep {
                throttle: self.clone(),
                counters: counters.into_vec(),
                now,
            }),
        }
    }

    /// The client address a rule keyed by it would count, IPv6 cut to the
    /// prefix (for tests and logs).
    pub fn client_ip(&self, req: &dyn RequestView) -> Option<IpAddr> {
        self.inner.client_ip.client_group(req).ok()
    }

    /// Where the counters live.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

impl Inner {
    /// The in-process store's decision at `now` (µs).
    fn in_memory(&self, counters: &[Counter], now: u64) -> Throttled {
        let numbered: SmallVec<[(u32, CallerKey, Rate); INLINE]> = counters
            .iter()
            .map(|c| (self.numbers[c.rule], c.caller, self.rules[c.rule].rate))
            .collect();
        let mut cells = Cells::new();
        self.memory.apply(&numbered, now, &mut cells);
        self.settle(counters, &cells, now)
    }

    /// The answer for the cells of a request's counters.
    fn settle(&self, counters: &[Counter], cells: &[Cell], now: u64) -> Throttled {
        let denied = counters
            .iter()
            .zip(cells)
            .filter(|(_, cell)| !cell.allowed)
            // The rule that holds the client back longest.
            .max_by_key(|(_, cell)| cell.retry);
        match (denied, self.mode) {
            (None, _) => {
                let tightest = counters
                    .iter()
                    .zip(cells)
                    .min_by_key(|(_, cell)| (cell.remaining, std::cmp::Reverse(cell.reset)));
                let headers = tightest.map_or_else(Headers::new, |(counter, cell)| {
                    self.shown.allowed(&self.rules[counter.rule], cell, now)
                });
                Throttled::Allow(Allowance { headers })
            }
            (Some((counter, _)), Mode::LogOnly) => {
                let rule = &self.rules[counter.rule];
                tracing::warn!(rule = %rule.id, "rate limit exceeded (log-only: let through)");
                Throttled::Allow(Allowance::default())
            }
            (Some((counter, cell)), Mode::Enforce) => {
                let rule = &self.rules[counter.rule];
                tracing::debug!(rule = %rule.id, retry_after_us = cell.retry, "rate limit exceeded");
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
    /// same as the auth layer's, and a prefix:
    /// `IpBackend::new().trust_proxies(["10.0.0.0/8"])?.ipv6_prefix(64)?`
    /// (without one, every IPv6 address counts apart).
    pub fn client_ip(mut self, ip: IpBackend) -> Self {
        self.client_ip = ip;
        self
    }

    /// What happens when the shared store does not answer (default:
    /// [`Fallback::Memory`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Counts and logs (`warn`) requests over a limit, but lets them
    /// through (default `false`): to try rules on live traffic.
    pub fn log_only(mut self, yes: bool) -> Self {
        self.mode = if yes { Mode::LogOnly } else { Mode::Enforce };
        self
    }

    /// Identities never counted (an operator, a health checker).
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
        let (memory, keys) = match &self.store {
            Store::Memory(memory) => (memory.clone(), memory.keys().clone()),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => (redis.fallback_store().clone(), redis.keys().clone()),
        };
        let numbers = self.rules.iter().map(|r| memory.intern(&r.id)).collect();
        let needs_identity = self.rules.iter().any(|r| {
            r.key == KeyBy::Identity
                || r.scope.is_some()
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
                needs_identity,
                warned_no_verdict: AtomicBool::new(false),
            }),
        })
    }
}
