//! [`Gate`]: the one pipeline a request goes through: checks by client
//! address, authentication ([`Policy`]), rate limits by identity (a
//! [`Limiter`], such as `auth-throttle`'s `Throttle`), then what the
//! response must carry. It answers with a [`Decision`], now or after the
//! steps of a [`Pending`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use http::header::SET_COOKIE;

use crate::backend::{Authenticated, Backend, Outcome};
use crate::decision::{Additions, Decision, Proceed, Verdict};
use crate::drive::{self, Runtime};
use crate::error::AuthError;
use crate::policy::Policy;
use crate::refusal::{Refusal, Wording};
use crate::request::RequestView;
use crate::step::Step;

/// A request's whole fate in one value: an optional [`Policy`] (who is
/// this?) and an optional [`Limiter`] (how much may they do?), applied in
/// a fixed order. The adapters' layers hold one; your own server calls
/// [`decide`](Self::decide) or [`decide_blocking`](Self::decide_blocking).
/// Cloning is cheap.
///
/// # The order inside
///
/// 1. **Before any credential is read**: the limiter's
///    [`admit`](Limiter::admit), checks by client address. A refusal here
///    costs no signature check, cache look-up or provider call.
///    (`auth-throttle`'s `Throttle` counts all its rules in step 3; a
///    limiter of your own may refuse here.)
/// 2. **Authentication**: the policy's backend (a CORS preflight passes
///    without it, when the policy lets it). A refusal (401, 400, 403, 503)
///    ends here, after the limiter's [`charge`](Limiter::charge) (a
///    refused credential counted against its client address); optional
///    mode lets a request without credentials on.
/// 3. **Rate limits by identity**: the limiter's [`check`](Limiter::check)
///    with the verdict. A denial (429) withdraws a session cookie issued in
///    step 2: a request the gate refuses never carries a new session.
/// 4. **The additions**: the issued cookie and the limiter's fields, for
///    the handler's response.
///
/// Every refusal of steps 1 to 3 goes through the gate's renderer
/// ([`Gate::render_refusals`]), and so does every refusal an extractor
/// makes from the verdict.
///
/// ```
/// use auth_core::{AnonSessionBackend, Decision, Gate};
///
/// let gate = Gate::new(AnonSessionBackend::new("anon")?);
/// let req = auth_core::http::Request::new(()); // a first visit
/// let Decision::Proceed(proceed) = gate.decide_blocking(&req) else { panic!() };
/// assert!(proceed.verdict.unwrap().is_new_session());
/// assert!(proceed.additions.get("set-cookie").is_some()); // the new session's cookie
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    policy: Option<Policy>,
    limiter: Option<Arc<dyn Limiter>>,
    wording: Arc<Wording>,
}

/// A [`Decision`] now, or after steps (network round trips, a shared
/// store's).
#[must_use = "a pending decision has steps to drive"]
#[derive(Debug)]
pub enum Gated {
    /// Decided (local backends, cache hits, in-process counters: the
    /// common case).
    Done(Decision),
    /// Steps first: drive them with [`Pending::drive`] or
    /// [`Pending::drive_blocking`].
    Pending(Pending),
}

/// A decision waiting for steps: a backend's network round trips
/// (introspection, a key fetch, another request's provider call) or a
/// limiter's shared store.
pub struct Pending {
    gate: Gate,
    /// (Boxed: a decision made at once, the common case, stays small.)
    stage: Box<Stage>,
}

/// Where a pending decision stands.
pub(crate) enum Stage {
    /// The limiter's checks before authentication.
    Admit(LimitFuture),
    /// The backend's network step.
    Auth {
        step: Box<Step>,
        additions: Additions,
    },
    /// The limiter's checks by identity.
    Limit {
        future: LimitFuture,
        verdict: Option<Verdict>,
        additions: Additions,
    },
    /// A refused credential being charged to the limiter; then the
    /// refusal.
    Charge { future: Charge, refusal: Refusal },
}

/// Rate limits a [`Gate`] applies: `auth-throttle`'s `Throttle`, or your
/// own. Both checks answer at once or hand out a future (a shared store's
/// round trip), which the driver awaits on its runtime, as it is: the
/// future must end by itself within its own timeout (with an answer, or
/// its fallback's), as `auth-throttle`'s Redis store does. A future that
/// never ends holds its request forever.
pub trait Limiter: Send + Sync + fmt::Debug {
    /// Checks made before any credential is read, by client address (for
    /// example a budget of refused credentials). The default admits every
    /// request.
    fn admit(&self, req: &dyn RequestView, now: SystemTime) -> Limited {
        let _ = (req, now);
        Limited::Allow(Additions::new())
    }

    /// The rate limits of an authenticated (or passed-through) request:
    /// `verdict` is what authentication found, `None` when the gate has no
    /// policy.
    fn check(&self, verdict: Option<&Verdict>, req: &dyn RequestView, now: SystemTime) -> Limited;

    /// A request authentication refused with `error`, before its refusal
    /// is sent: the limiter may count it (for example against a budget of
    /// refused credentials per client address, which
    /// [`admit`](Self::admit) then enforces). The refusal stands whatever
    /// the limiter does; a returned future (a shared store's round trip)
    /// is awaited before it is sent, so the next request from that client
    /// meets the count, and must end by itself like a [`LimitFuture`].
    /// The default counts nothing.
    fn charge(&self, error: &AuthError, req: &dyn RequestView, now: SystemTime) -> Option<Charge> {
        let _ = (error, req, now);
        None
    }
}

/// A shared limiter is a limiter.
impl<L: Limiter + ?Sized> Limiter for Arc<L> {
    fn admit(&self, req: &dyn RequestView, now: SystemTime) -> Limited {
        (**self).admit(req, now)
    }

    fn check(&self, verdict: Option<&Verdict>, req: &dyn RequestView, now: SystemTime) -> Limited {
        (**self).check(verdict, req, now)
    }

    fn charge(&self, error: &AuthError, req: &dyn RequestView, now: SystemTime) -> Option<Charge> {
        (**self).charge(error, req, now)
    }
}

/// A limiter's answer.
#[must_use]
#[non_exhaustive]
pub enum Limited {
    /// Let the request through, and add these fields to its response.
    Allow(Additions),
    /// Refuse it with this (429; 503 when a shared store failed and the
    /// fallback refuses).
    Deny(Refusal),
    /// Await this first (a shared store's round trip).
    Pending(LimitFuture),
}

/// A limiter's answer after a round trip of its own, bounded in time by
/// the limiter (see [`Limiter`]).
pub type LimitFuture = Pin<Box<dyn Future<Output = Limited> + Send>>;

/// A limiter counting a refused credential ([`Limiter::charge`]), bounded
/// in time by the limiter.
pub type Charge = Pin<Box<dyn Future<Output = ()> + Send>>;

impl fmt::Debug for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limited::Allow(additions) => f.debug_tuple("Allow").field(additions).finish(),
            Limited::Deny(refusal) => f.debug_tuple("Deny").field(refusal).finish(),
            Limited::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

impl Gate {
    /// Authenticates with `policy` (a [`Policy`], or any backend with the
    /// default settings); no rate limits until [`throttle`](Self::throttle).
    pub fn new(policy: impl Into<Policy>) -> Self {
        let policy = policy.into();
        let wording = Wording {
            realm: policy.realm_name(),
            render: None,
        };
        Gate(Arc::new(Inner {
            policy: Some(policy),
            limiter: None,
            wording: Arc::new(wording),
        }))
    }

    /// A gate that authenticates nothing: rate limits alone (by client
    /// address), with [`throttle`](Self::throttle). Its decisions carry no
    /// verdict.
    pub fn without_auth() -> Self {
        Gate(Arc::new(Inner {
            policy: None,
            limiter: None,
            wording: Arc::new(Wording::default()),
        }))
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.0));
        self
    }

    /// Applies `limiter`'s rate limits (one limiter per gate, replacing any
    /// earlier one; a `Throttle` holds any number of rules).
    #[must_use]
    pub fn throttle(self, limiter: impl Limiter + 'static) -> Self {
        let limiter: Arc<dyn Limiter> = Arc::new(limiter);
        self.with(|inner| inner.limiter = Some(limiter))
    }

    /// Rewords every refusal this gate makes (authentication, rate limits)
    /// and every refusal an extractor makes from its verdict. `render` gets
    /// the default refusal, whose [`cause`](Refusal::cause) says what it
    /// answers (an [`AuthError`], or the rate limit rule that refused), and
    /// returns the one to send.
    ///
    /// ```
    /// use auth_core::{Cause, Decision, Gate, SessionBackend};
    /// use auth_core::http::HeaderValue;
    ///
    /// let gate = Gate::new(SessionBackend::new("session")?).render_refusals(|mut refusal| {
    ///     let detail = match refusal.cause() {
    ///         Cause::Auth(error) => error.description().into_owned(),
    ///         Cause::RateLimited { rule, .. } => format!("slow down ({rule})"),
    ///         _ => "unavailable".to_owned(),
    ///     };
    ///     let problem = serde_json::json!({
    ///         "type": "about:blank",
    ///         "status": refusal.status().as_u16(),
    ///         "detail": detail,
    ///     });
    ///     refusal.set_body(HeaderValue::from_static("application/problem+json"), problem.to_string());
    ///     refusal
    /// });
    /// let Decision::Refuse(refusal) = gate.decide_blocking(&auth_core::http::Request::new(())) else { panic!() };
    /// assert_eq!(refusal.header("content-type").unwrap(), "application/problem+json");
    /// assert!(refusal.body().contains(r#""status":401"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn render_refusals(
        self,
        render: impl Fn(Refusal) -> Refusal + Send + Sync + 'static,
    ) -> Self {
        self.with(|inner| Arc::make_mut(&mut inner.wording).render = Some(Arc::new(render)))
    }

    /// The policy, if the gate authenticates.
    pub fn policy(&self) -> Option<&Policy> {
        self.0.policy.as_ref()
    }

    /// Decides what to do with `req` at time `now`: at once for local
    /// backends, cache hits and in-process counters, or after the steps of
    /// a [`Pending`].
    #[inline]
    pub fn decide(&self, req: &dyn RequestView, now: SystemTime) -> Gated {
        let gated = self.decide_now(req, now);
        if let Gated::Done(decision) = &gated {
            crate::metrics::decided(decision);
        }
        gated
    }

    /// [`decide`](Self::decide), uncounted.
    #[inline(always)]
    fn decide_now(&self, req: &dyn RequestView, now: SystemTime) -> Gated {
        match &self.0.limiter {
            // A preflight the policy lets through carries no credential:
            // no check before authentication applies to it.
            Some(limiter)
                if !self
                    .0
                    .policy
                    .as_ref()
                    .is_some_and(|p| p.passes_preflight(req)) =>
            {
                self.admitted(limiter.admit(req, now), req, now)
            }
            _ => self.authenticate(req, now, Additions::new()),
        }
    }

    /// [`decide`](Self::decide) with the system clock, driving any steps on
    /// the calling thread (network steps with the policy's blocking
    /// transport): for your own synchronous server. A limiter's shared
    /// store is awaited here too; a store on tokio (`RedisStore`) needs the
    /// thread to be inside a multi-threaded tokio runtime
    /// (`runtime.enter()`).
    pub fn decide_blocking(&self, req: &dyn RequestView) -> Decision {
        match self.decide(req, SystemTime::now()) {
            Gated::Done(decision) => decision,
            Gated::Pending(pending) => pending.drive_blocking(req),
        }
    }

    /// After the checks before authentication.
    #[inline(always)]
    pub(crate) fn admitted(
        &self,
        limited: Limited,
        req: &dyn RequestView,
        now: SystemTime,
    ) -> Gated {
        match limited {
            Limited::Allow(additions) => self.authenticate(req, now, additions),
            Limited::Deny(refusal) => Gated::Done(self.refuse(refusal)),
            Limited::Pending(future) => self.pending(Stage::Admit(future)),
        }
    }

    /// Step 2, authentication.
    #[inline(always)]
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime, additions: Additions) -> Gated {
        let Some(policy) = &self.0.policy else {
            return self.limit(None, req, now, additions);
        };
        if policy.passes_preflight(req) {
            let verdict = Verdict::unidentified(None, Arc::clone(&self.0.wording));
            return self.limit(Some(verdict), req, now, additions);
        }
        match policy.backend().authenticate(req, now) {
            Outcome::Done(result) => self.authenticated(result, req, now, additions),
            Outcome::Send(step) => self.pending(Stage::Auth { step, additions }),
        }
    }

    /// After authentication: the verdict, or the refusal.
    #[inline(always)]
    pub(crate) fn authenticated(
        &self,
        result: Result<Authenticated, AuthError>,
        req: &dyn RequestView,
        now: SystemTime,
        mut additions: Additions,
    ) -> Gated {
        let wording = &self.0.wording;
        let verdict = match result {
            Ok(who) => {
                let cookie = who.set_cookie.and_then(|c| {
                    HeaderValue::try_from(c)
                        .inspect_err(|_| {
                            tracing::error!(
                                "a backend's Set-Cookie is not a valid header value: not sent"
                            );
                        })
                        .ok()
                });
                let issued = cookie.is_some();
                if let Some(cookie) = cookie {
                    additions.push(SET_COOKIE, cookie);
                }
                Verdict::admitted(who.auth, issued, Arc::clone(wording))
            }
            Err(error)
                if error.is_missing()
                    && self.0.policy.as_ref().is_some_and(Policy::is_optional) =>
            {
                Verdict::unidentified(Some(error), Arc::clone(wording))
            }
            Err(error) => return self.refuse_credential(error, req, now),
        };
        self.limit(Some(verdict), req, now, additions)
    }

    /// Authentication's refusal, charged to the limiter first.
    fn refuse_credential(&self, error: AuthError, req: &dyn RequestView, now: SystemTime) -> Gated {
        let charge = self
            .0
            .limiter
            .as_ref()
            .and_then(|l| l.charge(&error, req, now));
        let refusal = self.0.wording.refuse(error);
        match charge {
            None => Gated::Done(Decision::Refuse(refusal)),
            Some(future) => self.pending(Stage::Charge { future, refusal }),
        }
    }

    /// Step 3, rate limits by identity.
    #[inline(always)]
    fn limit(
        &self,
        verdict: Option<Verdict>,
        req: &dyn RequestView,
        now: SystemTime,
        additions: Additions,
    ) -> Gated {
        match &self.0.limiter {
            Some(limiter) => {
                let limited = limiter.check(verdict.as_ref(), req, now);
                self.limited(limited, verdict, additions)
            }
            None => Gated::Done(Decision::Proceed(Proceed { verdict, additions })),
        }
    }

    /// After the rate limits: step 4, or the refusal (without the cookie
    /// authentication issued).
    #[inline(always)]
    pub(crate) fn limited(
        &self,
        limited: Limited,
        verdict: Option<Verdict>,
        mut additions: Additions,
    ) -> Gated {
        match limited {
            Limited::Allow(fields) => {
                additions.append(fields);
                Gated::Done(Decision::Proceed(Proceed { verdict, additions }))
            }
            Limited::Deny(refusal) => Gated::Done(self.refuse(refusal)),
            Limited::Pending(future) => self.pending(Stage::Limit {
                future,
                verdict,
                additions,
            }),
        }
    }

    /// Steps to drive first.
    #[inline]
    fn pending(&self, stage: Stage) -> Gated {
        Gated::Pending(Pending::new(self.clone(), stage))
    }

    /// A limiter's refusal, through the renderer.
    #[inline]
    fn refuse(&self, refusal: Refusal) -> Decision {
        Decision::Refuse(self.0.wording.render(refusal))
    }

    /// The refusal for an authentication error, worded by this gate.
    pub(crate) fn refuse_error(&self, error: AuthError) -> Decision {
        Decision::Refuse(self.0.wording.refuse(error))
    }
}

/// A policy (or any backend) is a gate without rate limits.
impl From<Policy> for Gate {
    fn from(policy: Policy) -> Self {
        Gate::new(policy)
    }
}

/// Any backend is a gate with the default policy settings.
impl<B: Backend + 'static> From<B> for Gate {
    fn from(backend: B) -> Self {
        Gate::new(backend)
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("policy", &self.0.policy)
            .field("limiter", &self.0.limiter)
            .field("render_refusals", &self.0.wording.render.is_some())
            .finish()
    }
}

impl Pending {
    pub(crate) fn new(gate: Gate, stage: Stage) -> Self {
        Pending {
            gate,
            stage: Box::new(stage),
        }
    }

    pub(crate) fn into_stage(self) -> Stage {
        *self.stage
    }

    /// Drives the steps on `runtime` without blocking, then decides. `req`
    /// is the request the decision is for. Network sends use the policy's
    /// async transport (spawned on the runtime) if it has one, else its
    /// blocking transport on the runtime's blocking pool; either way, a
    /// response that other requests rely on is applied even if this
    /// request is dropped meanwhile. A limiter's future is awaited here.
    pub async fn drive<R: RequestView>(self, req: &R, runtime: &impl Runtime) -> Decision {
        let decision = drive::drive(self.gate, *self.stage, req, runtime, true).await;
        crate::metrics::decided(&decision);
        decision
    }

    /// Drives the steps on the calling thread (network steps with the
    /// policy's blocking transport), then decides. See
    /// [`Gate::decide_blocking`] for a limiter's store on tokio.
    pub fn drive_blocking(self, req: &dyn RequestView) -> Decision {
        let decision = drive::drive_blocking(self.gate, *self.stage, req);
        crate::metrics::decided(&decision);
        decision
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match &*self.stage {
            Stage::Admit(_) => "admit",
            Stage::Auth { .. } => "auth",
            Stage::Limit { .. } => "limit",
            Stage::Charge { .. } => "charge",
        };
        f.debug_struct("Pending").field("stage", &stage).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AuthData, Source};
    use crate::error::Credential;
    use crate::refusal::Cause;
    use crate::session::{AnonSessionBackend, SessionBackend};
    use http::StatusCode;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn request(method: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut req = http::Request::builder().method(method);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap_or_default()
    }

    fn session() -> SessionBackend {
        SessionBackend::new("s").unwrap_or_else(|e| panic!("{e}"))
    }

    fn proceed(decision: Decision) -> Proceed {
        match decision {
            Decision::Proceed(proceed) => proceed,
            Decision::Refuse(refusal) => panic!("refused: {refusal:?}"),
        }
    }

    fn refused(decision: Decision) -> Refusal {
        match decision {
            Decision::Refuse(refusal) => refusal,
            Decision::Proceed(proceed) => panic!("proceeded: {proceed:?}"),
        }
    }

    #[test]
    fn optional_lets_only_missing_credentials_through() {
        let policy = Policy::new(session());
        let optional = Gate::new(policy.clone().optional());
        let none = request("GET", &[]);
        assert_eq!(
            refused(Gate::new(policy).decide_blocking(&none)).status(),
            401
        );
        let verdict = proceed(optional.decide_blocking(&none)).verdict;
        let refusal = verdict.map(|v| v.require().map(|_| ()));
        assert_eq!(
            refusal
                .and_then(Result::err)
                .as_ref()
                .and_then(Refusal::error),
            Some(&AuthError::MissingCredentials(Credential::Cookie))
        );
        let bad = request("GET", &[("cookie", "s=a\\b")]);
        assert_eq!(
            refused(optional.decide_blocking(&bad)).status(),
            401,
            "an invalid cookie is refused even when optional"
        );
    }

    #[test]
    fn preflight_needs_options_origin_and_request_method() {
        let gate = Gate::new(session());
        let acrm = ("access-control-request-method", "GET");
        let origin = ("origin", "https://app.example");
        let preflight = request("OPTIONS", &[acrm, origin]);
        let verdict = proceed(gate.decide_blocking(&preflight)).verdict;
        assert!(verdict.is_some_and(|v| v.auth().is_none()));
        for not_preflight in [
            request("OPTIONS", &[acrm]),
            request("OPTIONS", &[origin]),
            request("OPTIONS", &[]),
            request("GET", &[acrm, origin]),
        ] {
            assert!(
                matches!(gate.decide_blocking(&not_preflight), Decision::Refuse(_)),
                "{not_preflight:?}"
            );
        }
        let strict = Gate::new(Policy::new(session()).preflight_passthrough(false));
        assert!(matches!(
            strict.decide_blocking(&preflight),
            Decision::Refuse(_)
        ));
    }

    /// Finds no bearer token, ever.
    struct NoToken;

    impl Backend for NoToken {
        fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
            Outcome::err(AuthError::MissingCredentials(Credential::Bearer))
        }
    }

    #[test]
    fn refusals_name_the_realm_and_go_through_the_renderer() {
        let teapot = |mut r: Refusal| {
            r.set_status(http::StatusCode::IM_A_TEAPOT);
            r
        };
        let gate = Gate::new(Policy::new(NoToken).realm("api")).render_refusals(teapot);
        let refusal = refused(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(refusal.status(), 418);
        assert_eq!(
            refusal.header("www-authenticate").map(|v| v.as_bytes()),
            Some(&br#"Bearer realm="api""#[..])
        );
        // An extractor's refusal from the verdict reads the same.
        let optional =
            Gate::new(Policy::new(NoToken).optional().realm("api")).render_refusals(teapot);
        let verdict = proceed(optional.decide_blocking(&request("GET", &[]))).verdict;
        let refusal = verdict.and_then(|v| v.require().err());
        assert_eq!(refusal.as_ref().map(|r| r.status().as_u16()), Some(418));
        assert_eq!(
            refusal
                .as_ref()
                .and_then(|r| r.header("www-authenticate"))
                .map(|v| v.as_bytes()),
            Some(&br#"Bearer realm="api""#[..])
        );
    }

    /// A limiter that records what it saw and answers as told.
    #[derive(Debug, Default)]
    struct Recorder {
        admits: AtomicUsize,
        checks: Mutex<Vec<Option<String>>>,
        deny_admit: bool,
        deny: bool,
        pending: bool,
    }

    fn rate_limited(rule: &str) -> Refusal {
        Refusal::new(
            http::StatusCode::TOO_MANY_REQUESTS,
            HeaderValue::from_static("text/plain"),
            "slow down",
        )
        .with_cause(Cause::RateLimited {
            rule: rule.into(),
            retry_after: 3,
        })
    }

    impl Limiter for Recorder {
        fn admit(&self, _: &dyn RequestView, _: SystemTime) -> Limited {
            self.admits.fetch_add(1, Ordering::SeqCst);
            if self.deny_admit {
                Limited::Deny(rate_limited("budget"))
            } else {
                Limited::Allow(Additions::new())
            }
        }

        fn check(&self, verdict: Option<&Verdict>, _: &dyn RequestView, _: SystemTime) -> Limited {
            let key = verdict.and_then(Verdict::auth).map(AuthData::key);
            if let Ok(mut checks) = self.checks.lock() {
                checks.push(key);
            }
            let answer = if self.deny {
                Limited::Deny(rate_limited("per-caller"))
            } else {
                let mut fields = Additions::new();
                fields.push(
                    http::HeaderName::from_static("ratelimit"),
                    HeaderValue::from_static("\"r\";r=1;t=2"),
                );
                Limited::Allow(fields)
            };
            if self.pending {
                Limited::Pending(Box::pin(async move { answer }))
            } else {
                answer
            }
        }
    }

    /// A backend that counts its calls.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl Backend for Arc<Counted> {
        fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
            self.0.fetch_add(1, Ordering::SeqCst);
            Outcome::ok(AuthData::bare(Source::Custom("t"), "x"))
        }
    }

    #[test]
    fn the_order_is_admit_authenticate_check() {
        let backend = Arc::new(Counted::default());
        let limiter = Arc::new(Recorder {
            deny_admit: true,
            ..Recorder::default()
        });
        let gate = Gate::new(Arc::clone(&backend)).throttle(Arc::clone(&limiter));
        let refusal = refused(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(refusal.status(), 429);
        assert_eq!(
            backend.0.load(Ordering::SeqCst),
            0,
            "refused before any credential is read"
        );
        let limiter = Arc::new(Recorder::default());
        let gate = Gate::new(Arc::clone(&backend)).throttle(Arc::clone(&limiter));
        let proceed = proceed(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(backend.0.load(Ordering::SeqCst), 1);
        assert_eq!(limiter.admits.load(Ordering::SeqCst), 1);
        assert_eq!(
            *limiter.checks.lock().unwrap_or_else(|e| e.into_inner()),
            [Some("t:x".to_owned())],
            "the limiter sees the identity"
        );
        assert!(proceed.additions.get("ratelimit").is_some());
    }

    #[test]
    fn a_denial_withdraws_the_issued_cookie() {
        let anon = AnonSessionBackend::new("anon").unwrap_or_else(|e| panic!("{e}"));
        for pending in [false, true] {
            let allow = Gate::new(anon.clone()).throttle(Recorder {
                pending,
                ..Recorder::default()
            });
            let proceed = proceed(allow.decide_blocking(&request("GET", &[])));
            assert!(proceed.additions.get("set-cookie").is_some());
            assert!(proceed.additions.get("ratelimit").is_some());
            let deny = Gate::new(anon.clone()).throttle(Recorder {
                deny: true,
                pending,
                ..Recorder::default()
            });
            let refusal = refused(deny.decide_blocking(&request("GET", &[])));
            assert_eq!(refusal.status(), 429);
            assert!(refusal.header("set-cookie").is_none());
        }
    }

    #[test]
    fn limits_without_auth_leave_no_verdict_and_refusals_are_rendered() {
        let gate = Gate::without_auth()
            .throttle(Recorder::default())
            .render_refusals(|mut r| {
                if let Cause::RateLimited { rule, retry_after } = r.cause().clone() {
                    r.set_body(
                        HeaderValue::from_static("text/plain"),
                        format!("{rule} {retry_after}"),
                    );
                }
                r
            });
        let proceed = proceed(gate.decide_blocking(&request("GET", &[])));
        assert!(proceed.verdict.is_none());
        let gate = gate.throttle(Recorder {
            deny: true,
            ..Recorder::default()
        });
        let refusal = refused(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(refusal.body(), "per-caller 3");
    }

    /// A backend that asks for a step forever.
    struct Endless;

    impl Backend for Endless {
        fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
            let request = http::Request::new(Vec::new());
            fn again(
                _: Result<http::Response<Vec<u8>>, crate::error::TransportError>,
                req: &dyn RequestView,
                now: SystemTime,
            ) -> Outcome {
                Endless.authenticate(req, now)
            }
            Outcome::send(Step::new(request, again))
        }
    }

    #[test]
    fn a_backend_that_keeps_asking_is_cut_off() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let transport = move |_: http::Request<Vec<u8>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(http::Response::new(Vec::new()))
        };
        let gate = Gate::new(Policy::new(Endless).transport(transport));
        let refusal = refused(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(refusal.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), drive::MAX_STEPS);
    }

    /// A limiter whose check before authentication waits for its store.
    #[derive(Debug)]
    struct StoreFirst;

    impl Limiter for StoreFirst {
        fn admit(&self, _: &dyn RequestView, _: SystemTime) -> Limited {
            Limited::Pending(Box::pin(std::future::ready(Limited::Allow(
                Additions::new(),
            ))))
        }

        fn check(&self, _: Option<&Verdict>, _: &dyn RequestView, _: SystemTime) -> Limited {
            Limited::Allow(Additions::new())
        }
    }

    #[test]
    fn a_limiters_round_trip_is_not_one_of_authentications_steps() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let transport = move |_: http::Request<Vec<u8>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(http::Response::new(Vec::new()))
        };
        let gate = Gate::new(Policy::new(Endless).transport(transport)).throttle(StoreFirst);
        let refusal = refused(gate.decide_blocking(&request("GET", &[])));
        assert_eq!(refusal.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), drive::MAX_STEPS);
    }

    /// Charges refused credentials with a round trip of its own.
    #[derive(Debug, Default)]
    struct Charging {
        charged: Arc<Mutex<Vec<StatusCode>>>,
    }

    impl Limiter for Charging {
        fn check(&self, _: Option<&Verdict>, _: &dyn RequestView, _: SystemTime) -> Limited {
            Limited::Allow(Additions::new())
        }

        fn charge(&self, error: &AuthError, _: &dyn RequestView, _: SystemTime) -> Option<Charge> {
            let (charged, status) = (Arc::clone(&self.charged), error.status());
            Some(Box::pin(async move {
                charged
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(status);
            }))
        }
    }

    #[test]
    fn a_refused_credential_is_charged_before_its_refusal() {
        let limiter = Charging::default();
        let charged = Arc::clone(&limiter.charged);
        let gate = Gate::new(session()).throttle(limiter);
        let bad = request("GET", &[("cookie", "s=a\\b")]);
        assert_eq!(refused(gate.decide_blocking(&bad)).status(), 401);
        assert_eq!(
            refused(gate.decide_blocking(&request("GET", &[]))).status(),
            401
        );
        let good = request("GET", &[("cookie", "s=alice")]);
        assert!(proceed(gate.decide_blocking(&good)).verdict.is_some());
        let charged = charged.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            charged,
            [StatusCode::UNAUTHORIZED; 2],
            "every refusal, none else"
        );
    }
}
