//! OAuth2 token introspection (RFC 7662): `IntrospectionBackend`, and its
//! Keycloak preset in `keycloak.rs`.
//!
//! - The question is a form POST (`token`, `token_type_hint=access_token`)
//!   authenticated with our client id and secret: HTTP Basic by default,
//!   or in the body. The token and the secret never appear in `Debug` or
//!   error text.
//! - The answer's `sub` (or another claim, such as `client_id`) is the
//!   identifier; the answer is the attributes; the key is
//!   `introspect:<identifier>`. `active` must be `true`; optional checks
//!   cover `aud`, `iss`, `client_id`/`azp` and `token_type`.
//! - An inactive token, or one that fails a check, is 401. These are 503,
//!   not the client's fault: the provider rejecting our client (401/403), a
//!   5xx, a timeout or refused connection, an answer that is not JSON or is
//!   too large.
//! - Answers are cached by the token's SHA-256, never by the token: active
//!   ones until the earlier of `exp` and `max_cache_ttl` (default 5 min:
//!   the revocation window), inactive ones for `inactive_cache_ttl`
//!   (default 10 s). A hit is a hash and a look-up.
//! - Single flight: concurrent requests with one uncached token make one
//!   call. The leader's step is detached: the answer is cached and
//!   published even if its request is gone.
//! - At most `max_concurrent_calls` (default 64) calls are in flight per
//!   backend, and at most `max_calls_per_client` (default an eighth of
//!   that) for one client address; over either a request gets 503 with
//!   `Retry-After: 1` at once instead of queueing, and so does anyone
//!   waiting on that token.
//! - `keep_token(true)` adds the raw token to the attributes as
//!   `access_token` (and so to the cache); it is off by default.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::backend::{Backend, Outcome};
use crate::data::{AuthData, Source};
use crate::error::TransportError;
use crate::error::{AuthError, ConfigError, Credential};
use crate::flight::{Flights, Join, Leader};
use crate::ip::IpBackend;
use crate::jwt::{seconds, unix_seconds};
use crate::request::{DEFAULT_MAX_TOKEN_LEN, RequestView, bearer_token};
use crate::step::Step;

mod calls;
mod keycloak;
mod probe;

use calls::{CallPermit, Calls};
use probe::ProviderState;

/// Default number of introspection answers remembered.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default longest time an active answer is reused (never past the token's
/// `exp`).
pub(crate) const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default time an inactive answer is reused.
pub(crate) const DEFAULT_INACTIVE_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default most provider calls one backend has in flight at once.
pub(crate) const DEFAULT_MAX_CONCURRENT_CALLS: usize = 64;
/// The default share of one client address: the cap divided by this.
const DEFAULT_CLIENT_SHARE: usize = 8;

impl IntrospectionBackend {
    /// Default number of introspection answers remembered.
    pub const DEFAULT_CACHE_CAPACITY: usize = DEFAULT_CACHE_CAPACITY;
    /// Default longest time an active answer is reused (never past the
    /// token's `exp`).
    pub const DEFAULT_MAX_CACHE_TTL: Duration = DEFAULT_MAX_CACHE_TTL;
    /// Default time an inactive answer is reused.
    pub const DEFAULT_INACTIVE_CACHE_TTL: Duration = DEFAULT_INACTIVE_CACHE_TTL;
    /// Default most provider calls one backend has in flight at once.
    pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = DEFAULT_MAX_CONCURRENT_CALLS;
    /// Default most provider calls one client address has in flight: an
    /// eighth of the cap.
    pub const DEFAULT_MAX_CALLS_PER_CLIENT: usize =
        DEFAULT_MAX_CONCURRENT_CALLS / DEFAULT_CLIENT_SHARE;
}

/// How we authenticate to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A provider answer, as cached.
#[derive(Clone)]
enum Answer {
    /// Active: the identity, usable until `until` (seconds since the epoch).
    Active { auth: AuthData, until: u64 },
    /// Not active (expired, revoked, unknown), remembered until `until`.
    Inactive { until: u64 },
}

type TokenHash = [u8; 32];

/// Identifies a request by asking an OAuth2 introspection endpoint (RFC
/// 7662) about its bearer token.
///
/// - The question is a network step: a form POST of
///   `token=…&token_type_hint=access_token`, authenticated with our client
///   id and secret (Basic by default, or in the body).
/// - Identifier: the answer's `sub` (or another claim, for example
///   `client_id` for client-credentials tokens, which have no `sub`); `data`:
///   the whole answer (plus the token as `access_token` only with
///   [`keep_token`](IntrospectionBuilder::keep_token)). Key:
///   `introspect:<identifier>`.
/// - `active` must be `true`; optional checks of `aud`, `iss`,
///   `client_id`/`azp` and `token_type`.
/// - Errors: no bearer token → no credentials (a chain moves on); inactive
///   or failing a check → 401 `invalid_token`; the provider rejecting our
///   client (401/403), a 5xx, a timeout, a refused connection, a non-JSON or
///   oversized answer → 503.
/// - Answers are cached by a SHA-256 of the token: active ones until the
///   earlier of the token's `exp` and a maximum (5 min), inactive ones for a
///   short time (10 s). Concurrent requests with the same uncached token
///   make **one** call: the first sends, the others get an
///   [`Action::Wait`](crate::step::Action::Wait) step.
/// - The token and the client secret never appear in `Debug` or error text.
///
/// ```
/// use auth_core::{ClientAuth, IntrospectionBackend};
///
/// let backend = IntrospectionBackend::builder("https://id.example/oauth2/introspect", "api", "s3cret")
///     .client_auth(ClientAuth::ClientSecretPost)
///     .identifier_claim("client_id")
///     .audience("api")
///     .build()?;
/// assert!(!format!("{backend:?}").contains("s3cret"));
/// # Ok::<(), auth_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct IntrospectionBackend {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: http::Uri,
    client_id: String,
    client_secret: String,
    basic: Option<http::HeaderValue>,
    identifier_claim: String,
    audiences: Vec<String>,
    issuer: Option<String>,
    clients: Vec<String>,
    token_type: Option<String>,
    max_token_len: usize,
    cache: Option<quick_cache::sync::Cache<TokenHash, Answer>>,
    max_ttl: u64,
    inactive_ttl: u64,
    flights: Arc<Flights<TokenHash, Result<Answer, AuthError>>>,
    /// Provider calls in flight, in all and per client.
    calls: Arc<Calls>,
    keep_token: bool,
    /// The latest call's outcome, for a readiness probe.
    provider: ProviderState,
}

fn invalid(reason: impl Into<std::borrow::Cow<'static, str>>) -> AuthError {
    AuthError::invalid_credentials(Credential::Bearer, reason)
}

fn abandoned() -> Result<Answer, AuthError> {
    Err(AuthError::provider_unavailable(
        "the introspection call was abandoned",
    ))
}

impl IntrospectionBackend {
    /// A builder for the endpoint URL and our client's credentials.
    pub fn builder(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_auth: ClientAuth::default(),
            identifier_claim: "sub".into(),
            audiences: Vec::new(),
            issuer: None,
            clients: Vec::new(),
            token_type: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            max_ttl: DEFAULT_MAX_CACHE_TTL,
            inactive_ttl: DEFAULT_INACTIVE_CACHE_TTL,
            max_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_calls_per_client: None,
            client_ip: None,
            allow_http: false,
            keep_token: false,
        }
    }

    /// The introspection request for `token` (also useful to see exactly
    /// what is sent).
    pub fn request_for(&self, token: &str) -> http::Request<Vec<u8>> {
        let inner = &self.inner;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        if inner.basic.is_none() {
            form.append_pair("client_id", &inner.client_id)
                .append_pair("client_secret", &inner.client_secret);
        }
        let mut request = http::Request::post(inner.endpoint.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(form.finish().into_bytes())
            .unwrap_or_default();
        if let Some(basic) = &inner.basic {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, basic.clone());
        }
        request
    }

    /// Interprets the endpoint's answer about `token` at time `now`.
    fn parse(
        &self,
        response: Result<&http::Response<Vec<u8>>, &TransportError>,
        token: &str,
        now: u64,
    ) -> Result<Answer, AuthError> {
        let inner = &self.inner;
        let response = response
            .map_err(|e| AuthError::provider_unavailable(format!("introspection failed: {e}")))?;
        let status = response.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            return Err(AuthError::provider_unavailable(
                "the identity provider rejected our client credentials",
            ));
        }
        if status != http::StatusCode::OK {
            return Err(AuthError::provider_unavailable(format!(
                "introspection endpoint answered {}",
                status.as_u16()
            )));
        }
        let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(response.body()) else {
            return Err(AuthError::provider_unavailable(
                "introspection answer is not a JSON object",
            ));
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Ok(Answer::Inactive {
                until: now.saturating_add(inner.inactive_ttl),
            });
        }
        self.check(&answer)?;
        let exp = answer.get("exp").and_then(seconds);
        if exp.is_some_and(|exp| exp <= now) {
            return Ok(Answer::Inactive {
                until: now.saturating_add(inner.inactive_ttl),
            });
        }
        let identifier = match answer.get(&inner.identifier_claim) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                return Err(invalid(format!(
                    "introspection answer has no {}",
                    inner.identifier_claim
                )));
            }
        };
        if inner.keep_token {
            answer.insert("access_token".into(), Value::String(token.to_owned()));
        }
        let until = exp
            .map_or(u64::MAX, |e| e)
            .min(now.saturating_add(inner.max_ttl));
        Ok(Answer::Active {
            auth: AuthData::new(Source::Introspection, identifier, answer),
            until,
        })
    }

    /// The optional checks on an active answer.
    fn check(&self, answer: &Map<String, Value>) -> Result<(), AuthError> {
        let inner = &self.inner;
        let text = |name: &str| answer.get(name).and_then(Value::as_str);
        if let Some(expected) = &inner.token_type
            && !text("token_type").is_some_and(|t| t.eq_ignore_ascii_case(expected))
        {
            return Err(invalid("token has an unexpected token_type"));
        }
        if let Some(issuer) = &inner.issuer
            && text("iss") != Some(issuer.as_str())
        {
            return Err(invalid("token has the wrong issuer"));
        }
        if !inner.audiences.is_empty() {
            let ours = |aud: &str| inner.audiences.iter().any(|a| a == aud);
            let matched = match answer.get("aud") {
                Some(Value::String(aud)) => ours(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(ours),
                _ => false,
            };
            if !matched {
                return Err(invalid("token has the wrong audience"));
            }
        }
        if !inner.clients.is_empty() {
            let client = text("client_id").or_else(|| text("azp"));
            if !client.is_some_and(|c| inner.clients.iter().any(|ok| ok == c)) {
                return Err(invalid("token was issued to another client"));
            }
        }
        Ok(())
    }

    /// Counts a look-up in the cache, if there is one: a hit, or a token
    /// the provider is asked about (by this request, or by the one it
    /// waits for); not a request turned away before the provider.
    fn looked_up(&self, hit: bool) {
        if self.inner.cache.is_some() {
            crate::metrics::looked_up(crate::metrics::Cache::Introspection, hit);
        }
    }

    fn cached(&self, hash: &TokenHash, now: u64) -> Option<Result<AuthData, AuthError>> {
        let cache = self.inner.cache.as_ref()?;
        match cache.get(hash) {
            None => None,
            Some(Answer::Active { auth, until }) if now < until => Some(Ok(auth)),
            Some(Answer::Inactive { until }) if now < until => {
                Some(Err(invalid("token is not active")))
            }
            Some(_) => {
                cache.remove(hash);
                None
            }
        }
    }

    /// Caches an answer that is good past `now` (a zero TTL caches no
    /// active answer: every request asks the provider).
    fn remember(&self, hash: TokenHash, answer: &Result<Answer, AuthError>, now: u64) {
        let until = match answer {
            Ok(Answer::Active { until, .. } | Answer::Inactive { until }) => *until,
            Err(_) => return,
        };
        if let (Some(cache), Ok(answer)) = (&self.inner.cache, answer)
            && until > now
        {
            cache.insert(hash, answer.clone());
        }
    }

    /// Sends the question; this request leads the flight for `hash`. The
    /// answer is parsed, cached and published wherever it arrives, even if
    /// this request is gone by then: the requests waiting on it get it.
    fn ask(
        &self,
        token: &str,
        hash: TokenHash,
        leader: Leader<TokenHash, Result<Answer, AuthError>>,
        permit: CallPermit,
    ) -> Outcome {
        let this = self.clone();
        let flight = leader.flight();
        let request = self.request_for(token);
        let token = token.to_owned();
        let call = crate::metrics::ProviderCall::start(crate::metrics::Provider::Introspection);
        Outcome::send(Step::detached(
            request,
            move |response, now| {
                let now = unix_seconds(now);
                let answer = this.parse(response.as_ref(), &token, now);
                call.finish(answer.is_ok());
                this.inner.provider.called(now, response, &answer);
                this.remember(hash, &answer, now);
                leader.finish(answer);
                drop(permit);
            },
            // The effect ran first, in every driver: the answer is there.
            move |_req, _now| outcome(flight.answer().cloned().unwrap_or_else(abandoned)),
        ))
    }
}

fn outcome(answer: Result<Answer, AuthError>) -> Outcome {
    match answer {
        Ok(Answer::Active { auth, .. }) => Outcome::ok(auth),
        Ok(Answer::Inactive { .. }) => Outcome::err(invalid("token is not active")),
        Err(error) => Outcome::err(error),
    }
}

impl Backend for IntrospectionBackend {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        let token = match bearer_token(req, self.inner.max_token_len) {
            Ok(token) => token,
            Err(e) => return Outcome::err(e),
        };
        let hash: TokenHash = Sha256::digest(token.as_bytes()).into();
        let secs = unix_seconds(now);
        if let Some(hit) = self.cached(&hash, secs) {
            self.looked_up(true);
            return hit.map_or_else(Outcome::err, Outcome::ok);
        }
        match self.inner.flights.join(&hash, abandoned) {
            Join::Leader(leader) => {
                // The previous leader may have finished between our cache
                // look-up and the join.
                if let Some(hit) = self.cached(&hash, secs) {
                    self.looked_up(true);
                    let answer = hit.clone().map(|auth| Answer::Active { auth, until: secs });
                    leader.finish(answer);
                    return hit.map_or_else(Outcome::err, Outcome::ok);
                }
                // Bounded provider load: over the cap or the client's share,
                // 503 at once (and to anyone waiting on this token) instead
                // of one more call.
                let permit = match self.inner.calls.take(req) {
                    Ok(permit) => permit,
                    Err(busy) => {
                        leader.finish(Err(busy.clone()));
                        return Outcome::err(busy);
                    }
                };
                self.looked_up(false);
                self.ask(token, hash, leader, permit)
            }
            Join::Follower(flight) => {
                let this = self.clone();
                Outcome::send(Step::wait(
                    flight.waiter(),
                    move |_req, _now| match flight.answer() {
                        Some(answer) => {
                            this.looked_up(false);
                            outcome(answer.clone())
                        }
                        None => Outcome::err(AuthError::provider_unavailable(
                            "timed out waiting for the identity provider",
                        )),
                    },
                ))
            }
        }
    }
}

impl fmt::Debug for IntrospectionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBackend")
            .field("endpoint", &self.inner.endpoint)
            .field("client_id", &self.inner.client_id)
            .field("identifier_claim", &self.inner.identifier_claim)
            .finish_non_exhaustive()
    }
}

/// Builds an [`IntrospectionBackend`]; see
/// [`IntrospectionBackend::builder`].
#[must_use]
pub struct IntrospectionBuilder {
    endpoint: String,
    client_id: String,
    client_secret: String,
    client_auth: ClientAuth,
    identifier_claim: String,
    audiences: Vec<String>,
    issuer: Option<String>,
    clients: Vec<String>,
    token_type: Option<String>,
    max_token_len: usize,
    cache_capacity: usize,
    max_ttl: Duration,
    inactive_ttl: Duration,
    max_calls: usize,
    max_calls_per_client: Option<usize>,
    client_ip: Option<IpBackend>,
    allow_http: bool,
    keep_token: bool,
}

impl fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl IntrospectionBuilder {
    /// How we authenticate to the endpoint (default `client_secret_basic`).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The answer's claim used as identifier (default `sub`; `client_id`
    /// for client-credentials tokens).
    pub fn identifier_claim(mut self, claim: impl Into<String>) -> Self {
        self.identifier_claim = claim.into();
        self
    }

    /// Requires `aud` to hold this audience; repeat for "one of several".
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Requires `iss` to be this issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `client_id` (or else `azp`) to be this client; repeat for
    /// "one of several".
    pub fn allowed_client(mut self, client: impl Into<String>) -> Self {
        self.clients.push(client.into());
        self
    }

    /// Requires `token_type` to be this (case-insensitive), for example
    /// `Bearer`.
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = Some(token_type.into());
        self
    }

    /// Longest token accepted (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Answers remembered (default 10,000); 0 turns the cache off (single
    /// flight stays on).
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Longest reuse of an active answer (default 5 min); never past `exp`.
    /// This is the revocation window: a token revoked at the provider keeps
    /// working here until its cached answer expires. Zero asks the provider
    /// on every request (one call per request; the provider's load and
    /// latency become yours).
    pub fn max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Reuse of an inactive answer (default 10 s).
    pub fn inactive_cache_ttl(mut self, ttl: Duration) -> Self {
        self.inactive_ttl = ttl;
        self
    }

    /// Most provider calls in flight at once (default 64). Each unseen
    /// token costs one call and, with a blocking transport, one blocking
    /// thread; over the cap a request gets 503 with `Retry-After: 1` at
    /// once instead of queueing. At least 1.
    pub fn max_concurrent_calls(mut self, max: usize) -> Self {
        self.max_calls = max.max(1);
        self
    }

    /// Most provider calls in flight for one client address (default: an
    /// eighth of [`max_concurrent_calls`](Self::max_concurrent_calls), at
    /// least 1): a client sending unknown tokens holds at most this many,
    /// and is refused (503, `Retry-After: 1`) at once over it, while other
    /// clients' new tokens are still checked. The cap itself or more turns
    /// the share off. Addresses are found by
    /// [`client_ip`](Self::client_ip).
    pub fn max_calls_per_client(mut self, max: usize) -> Self {
        self.max_calls_per_client = Some(max.max(1));
        self
    }

    /// How [`max_calls_per_client`](Self::max_calls_per_client) finds a
    /// request's client address (default: the peer address, IPv6 per /64).
    /// Behind a reverse proxy, give it your trusted proxies
    /// (`IpBackend::new().trust_proxies([..])?.ipv6_prefix(64)?`), or every
    /// client shares the proxy's share. A request without a peer address
    /// has no share (the cap still holds; logged once).
    pub fn client_ip(mut self, ip: IpBackend) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Lets the endpoint be plain `http` (default `false`): for tests and a
    /// provider on loopback. Across a network, tokens and our client secret
    /// would travel in the clear.
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = yes;
        self
    }

    /// Keeps the raw access token in the identity's attributes (as
    /// `access_token`) and so in the answer cache (default `false`): only
    /// for a handler that must forward the token.
    pub fn keep_token(mut self, yes: bool) -> Self {
        self.keep_token = yes;
        self
    }

    /// Checks the settings and builds the backend.
    ///
    /// # Errors
    /// An endpoint that is not an `https` URL (or `http`, when allowed); an
    /// empty client id or identifier claim; credentials that cannot go in a
    /// header.
    pub fn build(self) -> Result<IntrospectionBackend, ConfigError> {
        let endpoint =
            crate::transport::endpoint_url(&self.endpoint, self.allow_http).map_err(|reason| {
                ConfigError::Invalid {
                    name: "endpoint",
                    reason,
                }
            })?;
        if self.client_id.is_empty() {
            return Err(ConfigError::Invalid {
                name: "client_id",
                reason: "must not be empty",
            });
        }
        if self.identifier_claim.is_empty() {
            return Err(ConfigError::Invalid {
                name: "identifier_claim",
                reason: "must not be empty",
            });
        }
        let basic = match self.client_auth {
            ClientAuth::ClientSecretPost => None,
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: both parts form-encoded before Base64.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(&self.client_secret)
                );
                let value = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                );
                let mut value =
                    http::HeaderValue::try_from(value).map_err(|_| ConfigError::Invalid {
                        name: "client credentials",
                        reason: "cannot be sent in a header",
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let cache =
            (self.cache_capacity > 0).then(|| quick_cache::sync::Cache::new(self.cache_capacity));
        Ok(IntrospectionBackend {
            inner: Arc::new(Inner {
                endpoint,
                client_id: self.client_id,
                client_secret: self.client_secret,
                basic,
                identifier_claim: self.identifier_claim,
                audiences: self.audiences,
                issuer: self.issuer,
                clients: self.clients,
                token_type: self.token_type,
                max_token_len: self.max_token_len,
                cache,
                max_ttl: self.max_ttl.as_secs(),
                inactive_ttl: self.inactive_ttl.as_secs(),
                flights: Flights::new(),
                calls: Calls::new(
                    self.max_calls,
                    self.max_calls_per_client
                        .unwrap_or((self.max_calls / DEFAULT_CLIENT_SHARE).max(1)),
                    match self.client_ip {
                        Some(ip) => ip,
                        None => IpBackend::new().ipv6_prefix(64)?,
                    },
                ),
                keep_token: self.keep_token,
                provider: ProviderState::default(),
            }),
        })
    }
}
