//! JWT bearer tokens: `JwtBackend` over a `TokenValidator`, the ready
//! `JwtValidator` on `jsonwebtoken`, remote keys (JWKS, OIDC discovery) as
//! network steps, a verified-token cache, and `TokenIssuer`.
//!
//! # The backend and its cache
//!
//! `JwtBackend` takes a bearer token (capped at 8 KiB before any decoding)
//! and first looks in its verified-token cache (`quick_cache`, 10,000
//! entries by default, keyed by the token's bytes). A hit skips the
//! signature and claim checks, and the token68 scan too: only tokens that
//! passed it are cached. An entry is never used at or after the token's
//! `exp` or before its `nbf`, after the validator withdrew a key (the key
//! generation changed), or once the remote key set is due for a refresh.
//! On a miss the backend asks its `TokenValidator`: `Checked::Valid(map)`
//! (validators written elsewhere), `ValidClaims` (what `JwtValidator`
//! answers), `Invalid`, `FetchKeys(KeyFetch)` (a detached network step whose
//! continuation checks the token again) or `WaitForKeys(Waiter)`. OIDC
//! discovery is two fetches in a row: the document, then its `jwks_uri`.
//!
//! # The check: one boundary (`validator.rs`)
//!
//! A token is accepted only through these steps:
//!
//! 1. It is split from the right, as `jsonwebtoken::decode` splits it.
//! 2. `header::read` takes the header part (the base64url text), decodes it
//!    into jsonwebtoken's `Header` and checks it: `typ` absent, `JWT` or
//!    `at+jwt`; no `crit`; `b64` absent or `true`. `jku`, `jwk` and `x5u`
//!    are ignored: keys come from configuration only. Accepted headers are
//!    remembered per thread by their text (4 per thread, up to 256 bytes):
//!    a header's meaning depends on its text alone, and an issuer's tokens
//!    share one. Refused headers are never remembered.
//! 3. The candidate keys: with a `kid`, the keys with that `kid`; without
//!    one, the keys that allow the header's `alg`. A single fixed key takes
//!    every token.
//! 4. `Key::verify(alg, message, signature)` refuses an algorithm the key
//!    does not allow, whatever the signature. Each key allows only the
//!    configured algorithms of its own family, so the token's `alg` only
//!    selects among them: no `none`, no HS/RS confusion. The signature is
//!    checked by a verifier from jsonwebtoken's installed crypto provider,
//!    kept per key, algorithm and thread (16 per thread; not `Send`). Each
//!    key has a process-unique id, so a rotated key never meets an old
//!    key's verifier. (jsonwebtoken builds a boxed verifier per token
//!    otherwise: for HS256 that is two SHA-256 blocks and an allocation,
//!    an eighth of the whole check.)
//! 5. Only then is the payload decoded, once (`claims.rs`): only the
//!    registered claims (`sub`, `exp`, `nbf`, `iss`, `aud`) are built, with
//!    strings borrowed from the payload; every other member is read to the
//!    end and checked as valid JSON (a lone surrogate or a bad escape is
//!    refused) but not built; a payload that is not an object, or a
//!    registered claim given twice, is refused.
//! 6. The checks run against the injected clock: `exp` required, `nbf`
//!    checked, both with leeway (default 60 s); `iss` and `aud` each one of
//!    those configured; required claims present. A NumericDate that is
//!    negative, not finite or past `u64` seconds is unusable, never "never
//!    expires".
//!
//! The result keeps the payload's JSON text: `AuthData` builds a map of
//! the claims only when an attribute is read, once. The rate-limiting key
//! (`jwt:<iss>|<sub>`, or `jwt:|<sub>` without `iss`) is built at
//! verification. Most requests need only the identifier and the key, and a
//! map of every claim costs more than an HS256 signature check.
//!
//! Two fuzz targets hold this boundary to `jsonwebtoken::decode` with the
//! same key and checks: `jwt` (arbitrary bearer strings) and `jwt_signed`
//! (fuzzed headers and claims, signed in the harness). Whatever we accept,
//! `decode` accepts.
//!
//! # Keys and their lifecycle (`keys.rs`)
//!
//! - Local keys (an HMAC secret, PEM or DER public keys, JWKs, a JWKS
//!   document) stay in service beside remote ones (`jwks_url`,
//!   `oidc_issuer`; the discovered document must name the same issuer
//!   exactly). HMAC secrets are at least 32 bytes; remote symmetric keys
//!   are refused unless allowed (a key set is public).
//! - Remote JWKs are skipped, not fatal, when they do not parse, are
//!   `use=enc`, fit no allowed algorithm, name one of another family, or
//!   are HMAC secrets under 32 bytes; at most `max_keys` (32) are kept.
//! - A remote set has a maximum age from `Cache-Control: max-age`
//!   (`no-store`/`no-cache` mean zero), clamped (default 1 min to 24 h),
//!   else a default (1 h). Past it, the next request starts a refresh while
//!   the current keys keep serving. A failed or unusable answer keeps the
//!   last good keys for `stale_if_error` (default 1 h) past that age; then
//!   503 until a fetch succeeds.
//! - A fetch starts on an unknown `kid`, before the first set, or when the
//!   set has expired; one at a time (others wait on its `Waiter`); at most
//!   one per `refresh_interval` (default 60 s) from the end of the last. A
//!   discovery document's fetch does not count: the JWKS is due at once.
//! - A key missing from a new set, or new material under a known `kid`, is
//!   withdrawn: the key generation moves on, and the verified-token cache
//!   ignores older entries.
//!
//! jsonwebtoken 12 panics at first use when both or neither of its crypto
//! features are on. Our `aws_lc_rs` (default) and `rust_crypto` features
//! map to its; every constructor that reaches it first installs aws-lc-rs
//! when both are on, and returns a `ConfigError` (never a panic) when
//! neither is.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::backend::{Backend, Outcome};
use crate::data::{AuthData, Source, jwt_key};
use crate::error::TransportError;
use crate::error::{AuthError, Credential};
use crate::flight::Waiter;
use crate::health::Probe;
use crate::request::{DEFAULT_MAX_TOKEN_LEN, RequestView, bearer_bytes, token68};
use crate::step::Step;

mod claims;
mod header;
mod issuer;
mod keys;
mod validator;

pub use issuer::{IssueError, TokenIssuer};
pub use validator::{JwtValidator, JwtValidatorBuilder};

/// Default number of verified tokens remembered.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;

impl JwtBackend {
    /// Default number of verified tokens remembered.
    pub const DEFAULT_CACHE_CAPACITY: usize = DEFAULT_CACHE_CAPACITY;
}

/// What a [`TokenValidator`] says about a token.
#[non_exhaustive]
pub enum Checked {
    /// Valid; the token's claims.
    Valid(Map<String, Value>),
    /// Valid, as [`JwtValidator`] answers: the claims kept as verified JSON
    /// text, turned into a map only if an attribute is read.
    ValidClaims(VerifiedClaims),
    /// Not valid, and why (never the token itself).
    Invalid(AuthError),
    /// The validator must fetch keys first (a JWKS refresh, OIDC discovery):
    /// send the request, give the answer to [`KeyFetch::apply`], and ask
    /// again.
    FetchKeys(Box<KeyFetch>),
    /// Another request is fetching the keys this token needs: wait for it,
    /// then ask again.
    WaitForKeys(Waiter),
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checked::Valid(claims) => f
                .debug_tuple("Valid")
                .field(&claims.keys().collect::<Vec<_>>())
                .finish(),
            Checked::ValidClaims(claims) => f.debug_tuple("ValidClaims").field(claims).finish(),
            Checked::Invalid(e) => f.debug_tuple("Invalid").field(e).finish(),
            Checked::FetchKeys(fetch) => f.debug_tuple("FetchKeys").field(fetch).finish(),
            Checked::WaitForKeys(waiter) => f.debug_tuple("WaitForKeys").field(waiter).finish(),
        }
    }
}

/// A token's claims as [`JwtValidator`] verified them: the registered
/// claims it read, and the JSON text of them all.
pub struct VerifiedClaims {
    pub(crate) sub: String,
    pub(crate) iss: Option<String>,
    pub(crate) exp: Option<u64>,
    pub(crate) nbf: Option<u64>,
    /// The claims object, as JSON text (checked, decoded once).
    pub(crate) json: Box<str>,
}

/// Shows the subject and issuer, not the other claims.
impl fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedClaims")
            .field("sub", &self.sub)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

pub(super) type ApplyFn = dyn FnOnce(&Result<http::Response<Vec<u8>>, TransportError>, SystemTime) -> Result<(), AuthError>
    + Send;

/// A key download a validator needs before it can answer.
pub struct KeyFetch {
    request: http::Request<Vec<u8>>,
    apply: Box<ApplyFn>,
}

impl KeyFetch {
    /// A fetch of `request` whose answer `apply` installs.
    pub fn new<F>(request: http::Request<Vec<u8>>, apply: F) -> Self
    where
        F: FnOnce(
                &Result<http::Response<Vec<u8>>, TransportError>,
                SystemTime,
            ) -> Result<(), AuthError>
            + Send
            + 'static,
    {
        KeyFetch {
            request,
            apply: Box::new(apply),
        }
    }

    /// The request to send.
    pub fn request(&self) -> &http::Request<Vec<u8>> {
        &self.request
    }

    /// Installs the answer.
    ///
    /// # Errors
    /// The keys could not be had ([`AuthError::ProviderUnavailable`]).
    pub fn apply(
        self,
        response: &Result<http::Response<Vec<u8>>, TransportError>,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        (self.apply)(response, now)
    }
}

impl fmt::Debug for KeyFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFetch")
            .field("uri", &self.request.uri().path())
            .finish_non_exhaustive()
    }
}

/// Checks a token and returns its claims. Plug your own in (an opaque-token
/// store, another JWT library), or use [`JwtValidator`].
///
/// ```
/// use auth_core::step::{Checked, TokenValidator};
/// use auth_core::{AuthError, Backend, Credential, JwtBackend};
/// use std::time::SystemTime;
///
/// /// Accepts one hard-wired test token.
/// struct Fixed;
/// impl TokenValidator for Fixed {
///     fn validate(&self, token: &str, _now: SystemTime) -> Checked {
///         if token == "letmein" {
///             let claims = serde_json::json!({"sub": "tester"});
///             Checked::Valid(claims.as_object().cloned().unwrap())
///         } else {
///             Checked::Invalid(AuthError::invalid_credentials(Credential::Bearer, "unknown token"))
///         }
///     }
/// }
///
/// let backend = JwtBackend::new(Fixed);
/// let req = http::Request::builder().header("authorization", "Bearer letmein").body(()).unwrap();
/// let who = backend.authenticate(&req, SystemTime::now()).into_done().unwrap().unwrap();
/// assert_eq!(who.auth.identifier(), "tester");
/// ```
pub trait TokenValidator: Send + Sync {
    /// Checks `token` at time `now`.
    fn validate(&self, token: &str, now: SystemTime) -> Checked;

    /// A number that changes whenever a key that signed earlier tokens is
    /// withdrawn; cached verifications from before the change are dropped.
    /// Validators with fixed keys keep the default.
    fn key_generation(&self) -> u64 {
        0
    }

    /// Seconds since the epoch after which the keys must be looked at again
    /// (a remote key set past its maximum age): from then on cached
    /// verifications are not used, so the next check refreshes the keys.
    /// Validators with fixed keys keep the default, "never".
    fn keys_fresh_until(&self) -> u64 {
        u64::MAX
    }

    /// The keys' health at `now`, for a readiness probe (a key fetch first
    /// if one is due). Validators with fixed keys keep the default,
    /// [`Health::Ready`](crate::health::Health::Ready).
    fn probe(&self, now: SystemTime) -> Probe {
        let _ = now;
        Probe::Done(crate::health::Health::Ready)
    }
}

impl<V: TokenValidator + ?Sized> TokenValidator for Arc<V> {
    fn validate(&self, token: &str, now: SystemTime) -> Checked {
        (**self).validate(token, now)
    }

    fn keys_fresh_until(&self) -> u64 {
        (**self).keys_fresh_until()
    }

    fn key_generation(&self) -> u64 {
        (**self).key_generation()
    }

    fn probe(&self, now: SystemTime) -> Probe {
        (**self).probe(now)
    }
}

/// A verified token, remembered.
#[derive(Clone)]
struct Verified {
    auth: AuthData,
    /// `exp` in seconds since the epoch: never used at or after it.
    exp: u64,
    /// `nbf` in seconds since the epoch, if any.
    nbf: Option<u64>,
    key_generation: u64,
}

/// Identifies a request by the `sub` of its `Authorization: Bearer` JWT.
///
/// - Identifier: the `sub` claim (a non-empty string); `data`: the other
///   claims; key `jwt:<iss>|<sub>`.
/// - No `Authorization` header or another scheme:
///   [`AuthError::MissingCredentials`] (a chain moves on). A malformed header:
///   400. A token that does not validate, or has no `sub`: 401
///   `invalid_token`. Keys that cannot be fetched: 503.
/// - Verified tokens are cached (on by default, [`JwtBackend::DEFAULT_CACHE_CAPACITY`]
///   entries): a repeat skips the signature check. An entry is never used at
///   or after the token's `exp`, before its `nbf`, after the validator
///   withdrew a key, or while the validator's remote keys are due for a
///   refresh.
/// - Needs the network only when its validator does (remote keys); the
///   outcome is then a [`Step`].
#[derive(Clone)]
pub struct JwtBackend {
    inner: Arc<Inner>,
}

struct Inner {
    validator: Box<dyn TokenValidator>,
    max_token_len: usize,
    /// Keyed by the token's bytes, as sent.
    cache: Option<quick_cache::sync::Cache<Box<[u8]>, Verified>>,
}

impl JwtBackend {
    /// A backend with the default cache and token size cap.
    pub fn new(validator: impl TokenValidator + 'static) -> Self {
        Self::builder(validator).build()
    }

    /// The key set's health at `now`, for a readiness probe: ready with
    /// fixed keys; with remote keys, whether they can verify tokens, after
    /// fetching them if they are due (never fetched, or past their max
    /// age; at most once per refresh interval). Run it with
    /// [`Probe::run_blocking`] or [`Probe::run`]. See
    /// [`health`](crate::health).
    pub fn probe(&self, now: SystemTime) -> Probe {
        self.inner.validator.probe(now)
    }

    /// Cache size and token size cap.
    pub fn builder(validator: impl TokenValidator + 'static) -> JwtBackendBuilder {
        JwtBackendBuilder {
            validator: Box::new(validator),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    fn cached(&self, token: &[u8], now: u64) -> Option<AuthData> {
        let cache = self.inner.cache.as_ref()?;
        let found = self.fresh(cache, token, now);
        if found.is_some() {
            crate::metrics::looked_up(crate::metrics::Cache::VerifiedToken, true);
        }
        found
    }

    /// A token the cache did not have went through the validator to an
    /// answer (not to a key fetch, after which it is looked up again).
    fn missed(&self) {
        if self.inner.cache.is_some() {
            crate::metrics::looked_up(crate::metrics::Cache::VerifiedToken, false);
        }
    }

    /// The entry for `token`, if there is one fit to use at `now` (one
    /// that is not is removed).
    fn fresh(
        &self,
        cache: &quick_cache::sync::Cache<Box<[u8]>, Verified>,
        token: &[u8],
        now: u64,
    ) -> Option<AuthData> {
        let hit = cache.get(token)?;
        let validator = &self.inner.validator;
        let fresh = now < hit.exp
            && hit.nbf.is_none_or(|nbf| now >= nbf)
            && hit.key_generation == validator.key_generation()
            && now < validator.keys_fresh_until();
        if fresh {
            Some(hit.auth)
        } else {
            cache.remove(token);
            None
        }
    }

    fn check(&self, token: &str, now: SystemTime) -> Outcome {
        let generation = self.inner.validator.key_generation();
        match self.inner.validator.validate(token, now) {
            Checked::Valid(claims) => {
                self.missed();
                Outcome::Done(self.identity(token, claims, generation))
            }
            Checked::ValidClaims(claims) => {
                self.missed();
                let VerifiedClaims {
                    sub,
                    iss,
                    exp,
                    nbf,
                    json,
                } = claims;
                // Without a string `iss`, the key is `jwt:|<sub>` (as
                // `AuthData::key` says), made here all the same.
                let key = jwt_key(iss.as_deref().unwrap_or(""), &sub);
                let auth = AuthData::from_jwt_claims(sub, json, key);
                self.remember(token, &auth, exp, nbf, generation);
                Outcome::ok(auth)
            }
            Checked::Invalid(error) => {
                self.missed();
                Outcome::err(error)
            }
            Checked::FetchKeys(fetch) => {
                let this = self.clone();
                let KeyFetch { request, apply } = *fetch;
                // The answer is installed wherever it arrives, even if this
                // request is gone by then: the fetch counts, and the keys
                // serve everybody.
                let failed = Arc::new(std::sync::OnceLock::new());
                let failure = Arc::clone(&failed);
                Outcome::send(Step::detached(
                    request,
                    move |response, now| {
                        if let Err(error) = apply(response, now) {
                            let _ = failure.set(error);
                        }
                    },
                    move |req, now| match (this.authenticate(req, now), failed.get()) {
                        // The validator wants another fetch right after a
                        // failed one: answer with that failure.
                        (Outcome::Send(_), Some(error)) => Outcome::err(error.clone()),
                        // Look at the token again: new keys, or the keys
                        // still in service.
                        (outcome, _) => outcome,
                    },
                ))
            }
            Checked::WaitForKeys(waiter) => {
                let this = self.clone();
                // Once the other fetch is done, look at the token again.
                Outcome::send(Step::wait(waiter, move |req, now| {
                    this.authenticate(req, now)
                }))
            }
        }
    }

    fn identity(
        &self,
        token: &str,
        mut claims: Map<String, Value>,
        generation: u64,
    ) -> Result<crate::Authenticated, AuthError> {
        let sub = match claims.remove("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub,
            _ => {
                return Err(AuthError::invalid_credentials(
                    Credential::Bearer,
                    "token has no subject",
                ));
            }
        };
        let exp = claims.get("exp").and_then(seconds);
        let nbf = claims.get("nbf").and_then(seconds_up);
        let auth = AuthData::new(Source::Jwt, sub, claims);
        self.remember(token, &auth, exp, nbf, generation);
        Ok(crate::Authenticated::new(auth))
    }

    /// Caches a verified identity until its `exp` (tokens without one are
    /// not cached).
    fn remember(
        &self,
        token: &str,
        auth: &AuthData,
        exp: Option<u64>,
        nbf: Option<u64>,
        generation: u64,
    ) {
        if let (Some(cache), Some(exp)) = (&self.inner.cache, exp) {
            let verified = Verified {
                auth: auth.clone(),
                exp,
                nbf,
                key_generation: generation,
            };
            cache.insert(token.as_bytes().into(), verified);
        }
    }
}

impl Backend for JwtBackend {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        let raw = match bearer_bytes(req, self.inner.max_token_len) {
            Ok(raw) => raw,
            Err(e) => return Outcome::err(e),
        };
        // Only verified tokens are cached, and they passed the token68
        // check: the same bytes need no second look.
        if let Some(auth) = self.cached(raw, unix_seconds(now)) {
            return Outcome::ok(auth);
        }
        match token68(raw) {
            Ok(token) => self.check(token, now),
            Err(e) => Outcome::err(e),
        }
    }
}

impl fmt::Debug for JwtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBackend")
            .field("max_token_len", &self.inner.max_token_len)
            .field("cache", &self.inner.cache.as_ref().map(|c| c.capacity()))
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtBackend`].
#[must_use]
pub struct JwtBackendBuilder {
    validator: Box<dyn TokenValidator>,
    max_token_len: usize,
    cache_capacity: usize,
}

impl JwtBackendBuilder {
    /// Longest token accepted, checked before any decoding (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Verified tokens remembered (default 10,000); 0 turns the cache off.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// The backend.
    pub fn build(self) -> JwtBackend {
        let cache =
            (self.cache_capacity > 0).then(|| quick_cache::sync::Cache::new(self.cache_capacity));
        JwtBackend {
            inner: Arc::new(Inner {
                validator: self.validator,
                max_token_len: self.max_token_len,
                cache,
            }),
        }
    }
}

/// Makes sure `jsonwebtoken` has a crypto provider, so it can never panic
/// at first use. With exactly one of our crypto features on, jsonwebtoken
/// picks it itself; with both (an `--all-features` build), aws-lc-rs is
/// installed; with neither, this is a configuration error.
pub(crate) fn ensure_crypto_provider() -> Result<(), crate::ConfigError> {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_some() {
        return Ok(());
    }
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    // Installed by us or, racing us, by another thread: either way one is
    // there now, unless no crypto feature is on.
    CryptoProvider::try_get_default()
        .map(|_| ())
        .ok_or(crate::ConfigError::Invalid {
            name: "crypto",
            reason: "enable the auth-core feature aws_lc_rs or rust_crypto",
        })
}

/// A bearer token that is not valid, for a fixed reason.
pub(crate) fn invalid(reason: &'static str) -> AuthError {
    AuthError::invalid_credentials(Credential::Bearer, reason)
}

/// Seconds since the epoch (0 before it).
pub(crate) fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A NumericDate claim as whole seconds, a fraction rounded down (for
/// `exp`); `None` for anything else.
pub(crate) fn seconds(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().and_then(float_seconds))
}

/// The same, a fraction rounded up (for `nbf`).
pub(crate) fn seconds_up(value: &Value) -> Option<u64> {
    let up =
        |date: f64| float_seconds(date).map(|s| s.saturating_add(u64::from(date.fract() != 0.0)));
    value.as_u64().or_else(|| value.as_f64().and_then(up))
}

/// A NumericDate given as a float: it may have a fraction (RFC 7519 §2),
/// and the whole seconds count. A negative or non-finite date, or one past
/// `u64` seconds, is none anybody means: `None` (unusable), never read as
/// "never expires".
pub(crate) fn float_seconds(date: f64) -> Option<u64> {
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    // In range, `as` only drops the fraction.
    (0.0..PAST_U64).contains(&date).then_some(date as u64)
}
