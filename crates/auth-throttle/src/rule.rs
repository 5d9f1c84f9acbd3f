//! [`Rule`]: a quota, whom it applies to and what it counts by.

use std::fmt;
use std::ops::BitOr;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{AuthData, Source};
use http::Method;

use crate::error::ThrottleError;
use crate::gcra::Rate;

/// How many requests a rule allows: `limit` per `window`, in bursts of up
/// to `burst` (default `limit`) at once. Checked where it is made: a zero
/// limit, window or burst, or a window too long to count, is an error
/// here.
///
/// ```
/// use auth_throttle::Quota;
/// use std::time::Duration;
///
/// let five_per_ten_seconds = Quota::new(5, Duration::from_secs(10))?;
/// let steadier = Quota::new(60, Duration::from_secs(60))?.burst(10)?;
/// assert!(Quota::new(0, Duration::ZERO).is_err());
/// # drop((five_per_ten_seconds, steadier));
/// # Ok::<(), auth_throttle::ThrottleError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
    window: Duration,
    burst: u64,
    rate: Rate,
}

impl Quota {
    /// `limit` requests per `window`, all of them at once if need be.
    ///
    /// # Errors
    /// A zero limit or window; a window too long to count (about 35
    /// years times the burst).
    pub fn new(limit: u64, window: Duration) -> Result<Self, ThrottleError> {
        Quota::with_burst(limit, window, limit)
    }

    /// Requests allowed at once (default: the limit).
    ///
    /// # Errors
    /// A zero burst; a burst too long to count at this rate.
    pub fn burst(self, burst: u64) -> Result<Self, ThrottleError> {
        Quota::with_burst(self.limit, self.window, burst)
    }

    fn with_burst(limit: u64, window: Duration, burst: u64) -> Result<Self, ThrottleError> {
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        if limit == 0 || micros == 0 || burst == 0 {
            return Err(ThrottleError::Invalid {
                name: "quota",
                reason: "limit, window and burst must be positive",
            });
        }
        // The emission interval rounds up to the microsecond, so the
        // sustained rate never exceeds `limit / window`. Counters stay
        // below 2^53 µs ahead of the clock, so the Redis script's Lua
        // numbers (doubles) hold them exactly.
        let interval = micros.div_ceil(limit).max(1);
        if interval.checked_mul(burst).is_none_or(|t| t > 1 << 50) {
            return Err(ThrottleError::Invalid {
                name: "quota",
                reason: "window x burst / limit is too long (at most 2^50 us, about 35 years)",
            });
        }
        Ok(Quota {
            limit,
            window,
            burst,
            rate: Rate { interval, burst },
        })
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Requests allowed at once.
    pub fn burst_size(&self) -> u64 {
        self.burst
    }

    /// The window in whole seconds, at least 1 (what `RateLimit-Policy`'s
    /// `w` says).
    pub(crate) fn window_secs(&self) -> u64 {
        self.window
            .as_micros()
            .div_ceil(1_000_000)
            .clamp(1, u128::from(u64::MAX)) as u64
    }

    /// Microseconds to refill a whole burst: at exactly `limit / window`
    /// when the interval is that rounded up to the microsecond (off by
    /// less than a microsecond per request of the burst); the rate's own
    /// when more than one request fits in a microsecond (its interval is
    /// raised to 1 µs: a full burst really takes longer).
    fn full(&self) -> u64 {
        let window = self.window.as_micros();
        if window < u128::from(self.limit) {
            return self.rate.tolerance();
        }
        let micros = window.saturating_mul(u128::from(self.burst));
        u64::try_from(micros.div_ceil(u128::from(self.limit))).unwrap_or(u64::MAX)
    }
}

/// Which callers a rule applies to, by the kind of identity the request
/// has (see [`Callers::of`]). Combine with `|`.
///
/// ```
/// use auth_throttle::Callers;
///
/// let clients = Callers::ANONYMOUS | Callers::UNIDENTIFIED;
/// assert!(clients.contains(Callers::ANONYMOUS));
/// assert!(!clients.contains(Callers::AUTHENTICATED));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Callers(u8);

impl Callers {
    /// Identities a verifier vouched for ([`AuthData::is_vouched`]): a
    /// JWT, an introspected token, a custom backend's that says it
    /// verified. Not a session cookie's value ([`CLAIMED`](Self::CLAIMED)).
    pub const AUTHENTICATED: Callers = Callers(1);
    /// Anonymous sessions (issued on this request or returning, signed or
    /// not).
    pub const ANONYMOUS: Callers = Callers(2);
    /// Anonymous sessions not known to be old: issued on this very
    /// request, or an unsigned id a client sent (which this server cannot
    /// tell from one the client made up). With [`Rule::by_client_ip`], a
    /// cap on new sessions per address, so a client that drops its cookie
    /// or invents ids gains nothing; sign sessions
    /// (`AnonSessionBuilder::signing_key`) so that returning visitors are
    /// not counted as new.
    pub const NEW_SESSIONS: Callers = Callers(4);
    /// Identities that are the client address (`IpBackend`).
    pub const IP: Callers = Callers(8);
    /// Requests without an identity (no auth layer, optional mode, a
    /// preflight): only rules keyed by client address can count them.
    pub const UNIDENTIFIED: Callers = Callers(16);
    /// Identities the client chose and nothing verified: a session
    /// cookie's value, an unsigned anonymous id, a custom backend's that
    /// does not say it verified. A client gets a fresh one whenever it
    /// likes: count these by client address too.
    pub const CLAIMED: Callers = Callers(32);
    /// Everybody.
    pub const EVERYONE: Callers = Callers(63);

    /// Whether every caller kind of `other` is among these.
    pub fn contains(self, other: Callers) -> bool {
        self.0 & other.0 == other.0
    }

    /// The kinds a request's identity has (its verdict says whether the
    /// session is new).
    pub fn of(auth: Option<&AuthData>, new_session: bool) -> Callers {
        let Some(auth) = auth else {
            return Callers::UNIDENTIFIED;
        };
        match (auth.source(), auth.is_vouched()) {
            (Source::Anonymous, _) if new_session => Callers::ANONYMOUS | Callers::NEW_SESSIONS,
            (Source::Anonymous, true) => Callers::ANONYMOUS,
            (Source::Anonymous, false) => {
                Callers::ANONYMOUS | Callers::NEW_SESSIONS | Callers::CLAIMED
            }
            (Source::Ip, _) => Callers::IP,
            (_, true) => Callers::AUTHENTICATED,
            (_, false) => Callers::CLAIMED,
        }
    }

    fn intersects(self, other: Callers) -> bool {
        self.0 & other.0 != 0
    }
}

/// The kinds' names, joined by `|` (`anonymous|new_sessions`), as log
/// lines show a request's caller kind; `none` for no kind.
///
/// ```
/// use auth_throttle::Callers;
///
/// assert_eq!(Callers::AUTHENTICATED.to_string(), "authenticated");
/// assert_eq!((Callers::ANONYMOUS | Callers::NEW_SESSIONS).to_string(), "anonymous|new_sessions");
/// ```
impl fmt::Display for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Callers, &str); 6] = [
            (Callers::AUTHENTICATED, "authenticated"),
            (Callers::ANONYMOUS, "anonymous"),
            (Callers::NEW_SESSIONS, "new_sessions"),
            (Callers::IP, "ip"),
            (Callers::UNIDENTIFIED, "unidentified"),
            (Callers::CLAIMED, "claimed"),
        ];
        let mut names = NAMES.iter().filter(|(kind, _)| self.contains(*kind));
        let Some((_, first)) = names.next() else {
            return f.write_str("none");
        };
        f.write_str(first)?;
        names.try_for_each(|(_, name)| write!(f, "|{name}"))
    }
}

impl BitOr for Callers {
    type Output = Callers;

    fn bitor(self, other: Callers) -> Callers {
        Callers(self.0 | other.0)
    }
}

/// A rule's condition on the identity.
pub(crate) type Predicate = dyn Fn(&AuthData) -> bool + Send + Sync;

/// What a rule counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyBy {
    /// The identity's rate-limiting key (`AuthData::key`).
    Identity,
    /// The client address, as the throttle's `IpBackend` finds it.
    ClientIp,
}

/// One limit: an id, a [`Quota`], the [`Callers`] it applies to, and
/// optionally a scope the identity must hold and the methods it counts.
///
/// A route's rules all apply to each request they match: the request is
/// allowed only when every one allows it, and a denied request consumes
/// none of them.
///
/// ```
/// use auth_core::http::Method;
/// use auth_throttle::{Callers, Quota, Rule};
/// use std::time::Duration;
///
/// let ten_seconds = Duration::from_secs(10);
/// let members = Rule::new("members", Quota::new(5, ten_seconds)?)?.callers(Callers::AUTHENTICATED);
/// let visitors = Rule::new("visitors", Quota::new(3, ten_seconds)?)?.callers(Callers::ANONYMOUS);
/// // Anonymous sessions are the client's own choice: also count them by
/// // address, so dropping the cookie gains nothing.
/// let per_address = Rule::new("visitors-ip", Quota::new(20, ten_seconds)?)?
///     .callers(Callers::ANONYMOUS)
///     .by_client_ip();
/// let writers = Rule::new("writes", Quota::new(100, Duration::from_secs(60))?)?
///     .scope("write")
///     .methods([Method::POST, Method::PUT]);
/// # drop((members, visitors, per_address, writers));
/// # Ok::<(), auth_throttle::ThrottleError>(())
/// ```
#[derive(Clone)]
pub struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) quota: Quota,
    pub(crate) rate: Rate,
    pub(crate) callers: Callers,
    pub(crate) scope: Option<Arc<str>>,
    pub(crate) methods: Option<Arc<[Method]>>,
    pub(crate) key: KeyBy,
    /// Applies only to identities this holds for.
    pub(crate) when: Option<Arc<Predicate>>,
    /// `RateLimit-Policy`'s value, made once.
    pub(crate) policy: http::HeaderValue,
    /// Microseconds from empty to a full burst at the exact rate
    /// (`window * burst / limit`, rounded up): the interval is rounded up
    /// to the microsecond, so a counter's own reset can overshoot this by
    /// a few microseconds, which must not show as one more second.
    pub(crate) full: u64,
    /// Its counters in the metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) counters: crate::metrics::RuleCounters,
}

impl Rule {
    /// A rule named `id` (letters, digits, `-`, `_` and `.`, at most 64:
    /// it appears in headers and store keys), counting every caller by
    /// identity.
    ///
    /// # Errors
    /// An invalid id.
    pub fn new(id: &str, quota: Quota) -> Result<Self, ThrottleError> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(ThrottleError::Invalid {
                name: "rule id",
                reason: "1 to 64 of A-Z a-z 0-9 - _ .",
            });
        }
        let policy = format!("\"{id}\";q={};w={}", quota.limit(), quota.window_secs());
        Ok(Rule {
            policy: http::HeaderValue::try_from(policy).map_err(|_| ThrottleError::Invalid {
                name: "rule id",
                reason: "not a header value",
            })?,
            id: id.into(),
            full: quota.full(),
            rate: quota.rate,
            quota,
            callers: Callers::EVERYONE,
            scope: None,
            methods: None,
            key: KeyBy::Identity,
            when: None,
            counters: crate::metrics::RuleCounters::default(),
        })
    }

    /// Applies only to these callers (default: everybody).
    #[must_use]
    pub fn callers(mut self, callers: Callers) -> Self {
        self.callers = callers;
        self
    }

    /// Applies only to identities granted `scope` (the space-separated
    /// `scope` claim, or the `scp` array); an identity without it is not
    /// counted by this rule.
    #[must_use]
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Applies only to these methods (default: all). `GET` includes
    /// `HEAD`, which servers answer with the `GET` handler.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// Counts by the client address (trusted-proxy aware, the throttle's
    /// `IpBackend`) instead of by identity: for identities the client
    /// chooses itself.
    #[must_use]
    pub fn by_client_ip(mut self) -> Self {
        self.key = KeyBy::ClientIp;
        self
    }

    /// Applies only to identities for which `when` holds: a claim, a role,
    /// a tier. A request without an identity is not counted by it. Give
    /// the other identities a rule of their own with the opposite
    /// condition:
    ///
    /// ```
    /// use auth_core::AuthData;
    /// use auth_throttle::{Callers, Quota, Rule};
    /// use std::time::Duration;
    ///
    /// let minute = Duration::from_secs(60);
    /// let premium = |who: &AuthData| who.has_realm_role("premium");
    /// let rules = [
    ///     Rule::new("premium", Quota::new(100, minute)?)?
    ///         .callers(Callers::AUTHENTICATED)
    ///         .when(premium),
    ///     Rule::new("standard", Quota::new(10, minute)?)?
    ///         .callers(Callers::AUTHENTICATED)
    ///         .when(move |who| !premium(who)),
    /// ];
    /// # drop(rules);
    /// # Ok::<(), auth_throttle::ThrottleError>(())
    /// ```
    ///
    /// The condition reads what the identity carries: keep it to
    /// identities a verifier vouched for (a JWT's claims, an introspection
    /// answer), which [`Callers::AUTHENTICATED`] with a token backend
    /// means; a session cookie's value is the client's own choice.
    #[must_use]
    pub fn when(mut self, when: impl Fn(&AuthData) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(when));
        self
    }

    /// The rule's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Whether the rule counts this request.
    pub(crate) fn applies(&self, auth: Option<&AuthData>, kinds: Callers, method: &str) -> bool {
        if !self.callers.intersects(kinds) {
            return false;
        }
        // HEAD is GET without the body (servers answer it with the GET
        // handler): a rule for GET counts it too.
        if let Some(methods) = &self.methods
            && !methods
                .iter()
                .any(|m| m.as_str() == method || (*m == Method::GET && method == "HEAD"))
        {
            return false;
        }
        if let Some(when) = &self.when
            && !auth.is_some_and(|auth| when(auth))
        {
            return false;
        }
        match (&self.scope, auth) {
            (None, _) => true,
            (Some(scope), Some(auth)) => auth.has_scope(scope),
            (Some(_), None) => false,
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("quota", &self.quota)
            .field("callers", &self.callers)
            .field("scope", &self.scope)
            .field("methods", &self.methods)
            .field("key", &self.key)
            .field("when", &self.when.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(limit: u64, window: u64) -> Quota {
        Quota::new(limit, Duration::from_secs(window)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_full_burst_refills_at_the_rate_the_counter_keeps() {
        // 3 per 10 s: the interval rounds up by a fraction of a µs; the
        // window is what a client is told.
        assert_eq!(quota(3, 10).full(), 10_000_000);
        assert_eq!(quota(3, 10).burst(6).map(|q| q.full()), Ok(20_000_000));
        // 2,000,000 per second: the interval is raised to 1 µs, so a full
        // burst really takes 2 s.
        assert_eq!(quota(2_000_000, 1).full(), 2_000_000);
    }

    #[test]
    fn quotas_are_checked_where_they_are_made() {
        assert!(Quota::new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::new(1, Duration::ZERO).is_err());
        assert!(Quota::new(0, Duration::ZERO).is_err());
        assert!(quota(1, 1).burst(0).is_err());
        assert!(Quota::new(1, Duration::from_secs(u64::MAX)).is_err());
        assert!(
            quota(1, 1 << 30).burst(1 << 30).is_err(),
            "too long to count"
        );
        assert_eq!(
            quota(3, 10).rate,
            Rate {
                interval: 3_333_334,
                burst: 3
            },
            "the interval rounds up: never more than 3 per 10 s"
        );
        assert_eq!(quota(3, 10).burst(1).map(|q| q.burst_size()), Ok(1));
    }

    #[test]
    fn ids_are_checked() {
        let q = quota(5, 10);
        for bad in ["", "a b", "a\\r\\nb", "\"x\"", &"a".repeat(65)] {
            assert!(Rule::new(bad, q).is_err(), "{bad:?}");
        }
        assert!(Rule::new("ok-1_a.b", q).is_ok());
    }

    fn token(claims: serde_json::Value) -> AuthData {
        AuthData::new(
            Source::Jwt,
            "alice",
            claims.as_object().cloned().unwrap_or_default(),
        )
    }

    #[test]
    fn callers_scopes_and_methods() {
        let q = quota(5, 10);
        let anon = AuthData::bare(Source::Anonymous, "a");
        let scoped = Rule::new("r", q)
            .map(|r| r.scope("write").methods([Method::POST]))
            .ok();
        let Some(scoped) = scoped else { return };
        let writer = token(json!({"scope": "read write"}));
        let kinds = Callers::of(Some(&writer), false);
        assert!(scoped.applies(Some(&writer), kinds, "POST"));
        assert!(!scoped.applies(Some(&writer), kinds, "GET"));
        let reads = Rule::new("reads", q).map(|r| r.methods([Method::GET])).ok();
        let Some(reads) = reads else { return };
        assert!(reads.applies(Some(&writer), kinds, "GET"));
        assert!(reads.applies(Some(&writer), kinds, "HEAD"), "HEAD is a GET");
        assert!(!reads.applies(Some(&writer), kinds, "POST"));
        assert!(!scoped.applies(Some(&writer), kinds, "HEAD"), "not a POST");
        // No scope claim at all: not counted, and no panic.
        let plain = token(json!({}));
        assert!(!scoped.applies(Some(&plain), kinds, "POST"));
        assert!(!scoped.applies(None, Callers::UNIDENTIFIED, "POST"));
        let anons = Rule::new("a", q)
            .map(|r| r.callers(Callers::ANONYMOUS))
            .ok();
        let Some(anons) = anons else { return };
        assert!(anons.applies(Some(&anon), Callers::of(Some(&anon), false), "GET"));
        assert!(!anons.applies(Some(&writer), kinds, "GET"));
        let new = Callers::of(Some(&anon), true);
        assert!(new.contains(Callers::NEW_SESSIONS) && new.contains(Callers::ANONYMOUS));
    }

    /// Who vouches for an identity decides its kind: a client-chosen one is
    /// never AUTHENTICATED, and an unsigned returning session is never
    /// known to be old.
    #[test]
    fn callers_by_who_vouches() {
        let kinds = |auth: AuthData| Callers::of(Some(&auth), false);
        let session = AuthData::bare(Source::Session, "s");
        assert_eq!(kinds(session.clone()), Callers::CLAIMED);
        assert_eq!(kinds(session.with_vouched(true)), Callers::AUTHENTICATED);
        assert_eq!(kinds(token(json!({}))), Callers::AUTHENTICATED);
        let custom = AuthData::bare(Source::Custom("apikey"), "k");
        assert_eq!(kinds(custom.clone()), Callers::CLAIMED);
        assert_eq!(kinds(custom.with_vouched(true)), Callers::AUTHENTICATED);
        let unsigned = AuthData::bare(Source::Anonymous, "a");
        assert_eq!(
            kinds(unsigned.clone()),
            Callers::ANONYMOUS | Callers::NEW_SESSIONS | Callers::CLAIMED
        );
        assert_eq!(kinds(unsigned.with_vouched(true)), Callers::ANONYMOUS);
        assert_eq!(kinds(AuthData::bare(Source::Ip, "192.0.2.1")), Callers::IP);
        assert_eq!(Callers::of(None, false), Callers::UNIDENTIFIED);
        assert!(Callers::EVERYONE.contains(Callers::CLAIMED | Callers::UNIDENTIFIED));
    }

    #[test]
    fn a_condition_on_the_identity_picks_the_rule() {
        let premium = |who: &AuthData| who.get("tier").and_then(|t| t.as_str()) == Some("premium");
        let rule = |id, limit| Rule::new(id, quota(limit, 60)).unwrap_or_else(|e| panic!("{e}"));
        let high = rule("premium", 100).when(premium);
        let low = rule("standard", 10).when(move |who| !premium(who));
        let gold = token(json!({"tier": "premium"}));
        let plain = token(json!({"tier": "free"}));
        let kinds = Callers::AUTHENTICATED;
        assert!(high.applies(Some(&gold), kinds, "GET") && !low.applies(Some(&gold), kinds, "GET"));
        assert!(
            low.applies(Some(&plain), kinds, "GET") && !high.applies(Some(&plain), kinds, "GET")
        );
        assert!(!high.applies(None, Callers::UNIDENTIFIED, "GET"));
        assert!(
            !low.applies(None, Callers::UNIDENTIFIED, "GET"),
            "no identity, no condition met"
        );
    }
}
