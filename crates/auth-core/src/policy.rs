//! [`Policy`]: how requests are authenticated (which backend, required or
//! optional, CORS preflights, the challenge realm, how refusals are worded,
//! the transports for network steps) and the one place that turns a request
//! into a [`Decision`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;

use crate::backend::Effect;
use crate::backend::{Authenticated, Backend, Outcome};
use crate::decision::{Admit, Decision, Refusal, Verdict, Wording};
use crate::error::AuthError;
#[cfg(not(feature = "ureq"))]
use crate::error::TransportError;
use crate::request::RequestView;
use crate::transport::{self, AsyncTransport, BlockingSend, Runtime, Transport};

/// How requests are authenticated, and the decision for each one.
///
/// Adapters hold one and render its [`Decision`]s; your own server can do
/// the same with [`decide`](Self::decide) or
/// [`decide_blocking`](Self::decide_blocking). Cloning is cheap (one
/// shared value).
///
/// ```
/// use auth_core::{Decision, IpBackend, Policy, request::PeerAddr};
///
/// let policy = Policy::new(IpBackend::new()).realm("api");
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
/// match policy.decide_blocking(&req) {
///     Decision::Admit(admit) => assert_eq!(admit.verdict.auth().unwrap().key(), "ip:192.0.2.1"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone)]
pub struct Policy(Arc<Settings>);

#[derive(Clone)]
struct Settings {
    backend: Arc<dyn Backend>,
    transport: Arc<dyn Transport>,
    async_transport: Option<Arc<dyn AsyncTransport>>,
    optional: bool,
    preflight_passthrough: bool,
    wording: Arc<Wording>,
}

/// The transport when the `ureq` feature is off and none was given: every
/// network step fails (503) with a message saying so.
#[cfg(not(feature = "ureq"))]
fn no_transport(_: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
    Err(TransportError::Other(
        "no transport configured (enable auth-core's ureq feature)".into(),
    ))
}

/// A [`Decision`] now, or after network steps.
#[must_use = "a pending decision has network steps to drive"]
#[derive(Debug)]
pub enum Deciding {
    /// Decided (local backends, cache hits: the common case).
    Done(Decision),
    /// The backend needs the network first (introspection, a key fetch):
    /// drive it with [`Pending::drive`] or [`Pending::drive_blocking`].
    Pending(Pending),
}

/// A decision waiting for network steps.
pub struct Pending {
    policy: Policy,
    outcome: Outcome,
}

impl Pending {
    /// Drives the network steps on `runtime` without blocking, then
    /// decides. `req` is the request the decision is for. Sends use the
    /// policy's async transport (spawned on the runtime) if it has one,
    /// else its blocking transport on the runtime's blocking pool; either
    /// way, a response that other requests rely on is applied even if this
    /// request is dropped meanwhile.
    pub async fn drive<R: RequestView>(self, req: &R, runtime: &impl Runtime) -> Decision {
        let Pending { policy, outcome } = self;
        let send = |request: http::Request<Vec<u8>>, effect: Option<Effect>| {
            let job = match policy.async_transport_ref() {
                Some(transport) => {
                    let send = transport.send(request);
                    Err(runtime.spawn(Box::pin(async move {
                        let response = send.await;
                        if let Some(effect) = effect {
                            effect.apply(&response, SystemTime::now());
                        }
                        response
                    })))
                }
                None => Ok(runtime.run_blocking(BlockingSend {
                    transport: Arc::clone(policy.blocking_transport()),
                    request,
                    effect,
                })),
            };
            async move {
                match job {
                    Ok(blocking) => blocking.await,
                    Err(spawned) => spawned.await,
                }
            }
        };
        let result = transport::drive(outcome, req, send, |waiter| runtime.wait(waiter)).await;
        policy.conclude(result)
    }

    /// Drives the network steps on the calling thread with the policy's
    /// blocking transport, then decides.
    pub fn drive_blocking(self, req: &dyn RequestView) -> Decision {
        let Pending { policy, outcome } = self;
        let result = transport::drive_blocking(outcome, req, &**policy.blocking_transport());
        policy.conclude(result)
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pending").field(&self.outcome).finish()
    }
}

impl Policy {
    /// Requires an identity from `backend`; CORS preflights pass; network
    /// steps use [`UreqTransport`](crate::transport::UreqTransport) (feature
    /// `ureq`) with its defaults.
    pub fn new(backend: impl Backend + 'static) -> Self {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        #[cfg(feature = "ureq")]
        let transport: Arc<dyn Transport> = Arc::new(crate::transport::UreqTransport::new());
        #[cfg(not(feature = "ureq"))]
        let transport: Arc<dyn Transport> = Arc::new(no_transport);
        Policy(Arc::new(Settings {
            backend,
            transport,
            async_transport: None,
            optional: false,
            preflight_passthrough: true,
            wording: Arc::new(Wording::default()),
        }))
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.0));
        self
    }

    /// Lets requests *without* credentials through without identity.
    /// Invalid credentials are still refused: never downgraded.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with(|s| s.optional = true)
    }

    /// Whether CORS preflights skip authentication (default `true`). A
    /// preflight is an `OPTIONS` request with both `Origin` and
    /// `Access-Control-Request-Method` (the Fetch standard); browsers send
    /// it without credentials. Routes behind a passthrough must not act on
    /// `OPTIONS`: answer it with your CORS layer, or refuse it.
    #[must_use]
    pub fn preflight_passthrough(self, yes: bool) -> Self {
        self.with(|s| s.preflight_passthrough = yes)
    }

    /// The `realm` named in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        self.with(|s| Arc::make_mut(&mut s.wording).realm = Some(realm.into()))
    }

    /// The blocking transport for network steps (the blocking driver, and
    /// the adapters when no async transport is set: they call it on their
    /// blocking pool).
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        let transport: Arc<dyn Transport> = Arc::new(transport);
        self.with(|s| s.transport = transport)
    }

    /// An async transport for the adapters' network steps (your hyper or
    /// reqwest client), used instead of the blocking transport on a
    /// blocking pool. The blocking driver still uses the blocking one.
    #[must_use]
    pub fn async_transport(self, transport: impl AsyncTransport + 'static) -> Self {
        let transport: Arc<dyn AsyncTransport> = Arc::new(transport);
        self.with(|s| s.async_transport = Some(transport))
    }

    /// Rewords every refusal of this policy (the default is
    /// [`Refusal::for_error`]: JSON and the RFC 6750 challenge). `render`
    /// gets the default refusal, whose [`error`](Refusal::error) says what
    /// it answers, and returns the one to send.
    ///
    /// ```
    /// use auth_core::{Decision, Policy, SessionBackend};
    /// use http::HeaderValue;
    ///
    /// let policy = Policy::new(SessionBackend::new("session")?).render_refusals(|mut refusal| {
    ///     let problem = serde_json::json!({
    ///         "type": "about:blank",
    ///         "title": refusal.status().canonical_reason(),
    ///         "status": refusal.status().as_u16(),
    ///         "detail": refusal.error().map(|e| e.description().into_owned()),
    ///     });
    ///     refusal.set_body(HeaderValue::from_static("application/problem+json"), problem.to_string());
    ///     refusal
    /// });
    /// let Decision::Refuse(refusal) = policy.decide_blocking(&http::Request::new(())) else { panic!() };
    /// assert_eq!(refusal.header("content-type").unwrap(), "application/problem+json");
    /// assert!(refusal.body().contains(r#""status":401"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn render_refusals(
        self,
        render: impl Fn(Refusal) -> Refusal + Send + Sync + 'static,
    ) -> Self {
        self.with(|s| Arc::make_mut(&mut s.wording).render = Some(Arc::new(render)))
    }

    fn wording(&self) -> Arc<Wording> {
        Arc::clone(&self.0.wording)
    }

    pub(crate) fn blocking_transport(&self) -> &Arc<dyn Transport> {
        &self.0.transport
    }

    pub(crate) fn async_transport_ref(&self) -> Option<&Arc<dyn AsyncTransport>> {
        self.0.async_transport.as_ref()
    }

    /// Whether `req` is a CORS preflight this policy lets through.
    fn passes_preflight(&self, req: &dyn RequestView) -> bool {
        self.0.preflight_passthrough
            && req.method() == "OPTIONS"
            && req.header("access-control-request-method").is_some()
            && req.header("origin").is_some()
    }

    /// Decides what to do with `req` at time `now`: at once for local
    /// backends and cache hits, or after the network steps of a
    /// [`Pending`].
    pub fn decide(&self, req: &dyn RequestView, now: SystemTime) -> Deciding {
        if self.passes_preflight(req) {
            return Deciding::Done(Decision::PassThrough(Verdict::unidentified(
                None,
                self.wording(),
            )));
        }
        match self.0.backend.authenticate(req, now) {
            Outcome::Done(result) => Deciding::Done(self.conclude(result)),
            outcome => Deciding::Pending(Pending {
                policy: self.clone(),
                outcome,
            }),
        }
    }

    /// [`decide`](Self::decide) with the system clock, driving any network
    /// steps on the calling thread with the blocking transport: for your
    /// own synchronous server.
    pub fn decide_blocking(&self, req: &dyn RequestView) -> Decision {
        match self.decide(req, SystemTime::now()) {
            Deciding::Done(decision) => decision,
            Deciding::Pending(pending) => pending.drive_blocking(req),
        }
    }

    /// The decision for an authentication's result.
    pub(crate) fn conclude(&self, result: Result<Authenticated, AuthError>) -> Decision {
        match result {
            Ok(who) => {
                let set_cookie = who.set_cookie.and_then(|c| HeaderValue::try_from(c).ok());
                Decision::Admit(Admit {
                    verdict: Verdict::admitted(who.auth, set_cookie.is_some(), self.wording()),
                    set_cookie,
                })
            }
            Err(error) if self.0.optional && error.is_missing() => {
                Decision::PassThrough(Verdict::unidentified(Some(error), self.wording()))
            }
            Err(error) => Decision::Refuse(self.refuse(error)),
        }
    }

    /// This policy's refusal for `error`: the default wording with its
    /// realm, then its renderer, if any.
    pub fn refuse(&self, error: AuthError) -> Refusal {
        self.0.wording.refuse(error)
    }
}

/// Any backend is a policy with the default settings.
impl<B: Backend + 'static> From<B> for Policy {
    fn from(backend: B) -> Self {
        Policy::new(backend)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("optional", &self.0.optional)
            .field("preflight_passthrough", &self.0.preflight_passthrough)
            .field("realm", &self.0.wording.realm)
            .field("async_transport", &self.0.async_transport.is_some())
            .field("render_refusals", &self.0.wording.render.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Credential;
    use crate::session::SessionBackend;

    fn request(method: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut req = http::Request::builder().method(method);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap_or_default()
    }

    fn decision(policy: &Policy, req: &http::Request<()>) -> Decision {
        policy.decide_blocking(req)
    }

    #[test]
    fn optional_lets_only_missing_credentials_through() {
        let policy = Policy::new(SessionBackend::new("s").unwrap_or_else(|e| panic!("{e}")));
        let optional = policy.clone().optional();
        let none = request("GET", &[]);
        assert!(matches!(decision(&policy, &none), Decision::Refuse(_)));
        let Decision::PassThrough(verdict) = decision(&optional, &none) else {
            panic!("optional: no cookie passes");
        };
        let refusal = verdict.require().unwrap_err();
        assert_eq!(
            refusal.error(),
            Some(&AuthError::MissingCredentials(Credential::Cookie))
        );
        let bad = request("GET", &[("cookie", "s=a\\b")]);
        let Decision::Refuse(refusal) = decision(&optional, &bad) else {
            panic!("an invalid cookie is refused even when optional");
        };
        assert_eq!(refusal.status(), 401);
    }

    #[test]
    fn preflight_needs_options_origin_and_request_method() {
        let policy = Policy::new(SessionBackend::new("s").unwrap_or_else(|e| panic!("{e}")));
        let acrm = ("access-control-request-method", "GET");
        let origin = ("origin", "https://app.example");
        let preflight = request("OPTIONS", &[acrm, origin]);
        assert!(matches!(
            decision(&policy, &preflight),
            Decision::PassThrough(_)
        ));
        for not_preflight in [
            request("OPTIONS", &[acrm]),
            request("OPTIONS", &[origin]),
            request("OPTIONS", &[]),
            request("GET", &[acrm, origin]),
        ] {
            assert!(
                matches!(decision(&policy, &not_preflight), Decision::Refuse(_)),
                "{not_preflight:?}"
            );
        }
        let strict = policy.preflight_passthrough(false);
        assert!(matches!(decision(&strict, &preflight), Decision::Refuse(_)));
    }

    #[test]
    fn refusals_name_the_realm_and_go_through_the_renderer() {
        let policy = Policy::new(SessionBackend::new("s").unwrap_or_else(|e| panic!("{e}")))
            .realm("api")
            .render_refusals(|mut r| {
                r.set_status(http::StatusCode::IM_A_TEAPOT);
                r
            });
        let refusal = policy.refuse(AuthError::MissingCredentials(Credential::Bearer));
        assert_eq!(refusal.status(), 418);
        assert_eq!(
            refusal.header("www-authenticate").map(|v| v.as_bytes()),
            Some(&br#"Bearer realm="api""#[..])
        );
    }
}
