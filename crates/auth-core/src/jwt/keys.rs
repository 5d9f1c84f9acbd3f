//! The verification keys of a [`JwtValidator`](super::JwtValidator): local
//! keys, and keys fetched from a JWKS URL (directly or found by OIDC
//! discovery). Remote keys are refreshed when their set is older than its
//! maximum age, or on an unknown `kid`: one fetch at a time, and at most
//! once per interval counted from the last *finished* fetch. A fetch that
//! was sent always finishes (its response is applied even if the request
//! that asked went away).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::KeyFetch;
use crate::error::AuthError;
use crate::error::TransportError;
use crate::flight::{Flights, Join, Waiter};
use crate::health::{Health, Probe, ProbeStep};
use crate::transport::endpoint_url;

/// One verification key, with the algorithms it may verify.
pub(super) struct Key {
    pub(super) kid: Option<String>,
    key: DecodingKey,
    /// Only the key's own algorithms, from the configured list.
    algorithms: Vec<Algorithm>,
    /// Unique in the process, for the per-thread verifiers.
    id: u64,
    /// SHA-256 of the `kid` and the key material: a key set that no longer
    /// holds this exact key withdrew it.
    fingerprint: [u8; 32],
}

/// Verifiers kept per thread, at most this many (oldest out first).
const VERIFIERS_PER_THREAD: usize = 16;

/// A verifier built for one key (its `id`) and algorithm.
type Kept = (u64, Algorithm, Box<dyn JwtVerifier>);

thread_local! {
    /// jsonwebtoken's verifiers, built once per key, algorithm and thread
    /// instead of once per token: building one sets up the HMAC key (two
    /// SHA-256 blocks) and boxes it, which was an eighth of an uncached
    /// HS256 check. They are not `Send`, hence per thread.
    static VERIFIERS: RefCell<Vec<Kept>> =
        const { RefCell::new(Vec::new()) };
}

impl Key {
    /// A key allowed to verify `algorithms` (of one family, non-empty).
    pub(super) fn new(kid: Option<String>, key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let fingerprint = fingerprint(kid.as_deref(), &key);
        Key {
            kid,
            key,
            algorithms,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fingerprint,
        }
    }

    pub(super) fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }

    /// Whether `signature` (base64url, as in the token) is this key's
    /// signature of `message` with `algorithm`, checked by jsonwebtoken's
    /// crypto provider as `jsonwebtoken::decode` checks it; an algorithm
    /// this key may not use is an error, whatever the signature.
    pub(super) fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &str,
    ) -> Result<bool, jsonwebtoken::errors::Error> {
        if !self.allows(algorithm) {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| jsonwebtoken::errors::Error::from(ErrorKind::Base64(e)))?;
        let check = |verifier: &dyn JwtVerifier| verifier.verify(message, &signature).is_ok();
        let kept = VERIFIERS.try_with(|verifiers| {
            // Nothing below calls back into this function, so the borrow is
            // never taken twice.
            let mut verifiers = verifiers.borrow_mut();
            let at = match verifiers
                .iter()
                .position(|(id, alg, _)| *id == self.id && *alg == algorithm)
            {
                Some(at) => at,
                None => {
                    if verifiers.len() == VERIFIERS_PER_THREAD {
                        verifiers.remove(0);
                    }
                    verifiers.push((self.id, algorithm, self.new_verifier(algorithm)?));
                    verifiers.len() - 1
                }
            };
            Ok(check(&*verifiers[at].2))
        });
        // Only while the thread is being torn down: no cache, same check.
        kept.unwrap_or_else(|_| Ok(check(&*self.new_verifier(algorithm)?)))
    }

    fn new_verifier(
        &self,
        algorithm: Algorithm,
    ) -> Result<Box<dyn JwtVerifier>, jsonwebtoken::errors::Error> {
        // Installed when the validator was built (`ensure_crypto_provider`).
        let provider = CryptoProvider::try_get_default().ok_or_else(|| {
            jsonwebtoken::errors::Error::from(ErrorKind::Provider("no crypto provider".into()))
        })?;
        (provider.verifier_factory)(&algorithm, &self.key)
    }
}

/// The configured algorithms that fit `key`'s family.
pub(super) fn algorithms_for(key: &DecodingKey, allowed: &[Algorithm]) -> Vec<Algorithm> {
    allowed
        .iter()
        .copied()
        .filter(|a| a.family() == key.family())
        .collect()
}

/// SHA-256 over the `kid` and the key material, each length-prefixed.
fn fingerprint(kid: Option<&str>, key: &DecodingKey) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(kid.unwrap_or_default().as_bytes());
    part(&[u8::from(kid.is_some())]);
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => part(bytes),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            part(n);
            part(e);
        }
    }
    hash.finalize().into()
}

/// The HMAC secret's length, for an HMAC key.
pub(super) fn hmac_len(key: &DecodingKey) -> Option<usize> {
    match (key.family(), key.kind()) {
        (AlgorithmFamily::Hmac, DecodingKeyKind::SecretOrDer(secret)) => Some(secret.len()),
        _ => None,
    }
}

/// Where remote keys come from.
#[derive(Clone, Debug)]
pub(super) enum RemoteSource {
    /// A JWKS document at this URL.
    Jwks(http::Uri),
    /// OIDC discovery at `<issuer>/.well-known/openid-configuration`; the
    /// document's `issuer` must equal this one exactly.
    Discovery { issuer: String, document: http::Uri },
}

/// How remote keys are fetched and kept.
#[derive(Clone, Debug)]
pub(super) struct RemoteConfig {
    pub(super) source: RemoteSource,
    pub(super) allowed: Vec<Algorithm>,
    pub(super) refresh_interval: Duration,
    pub(super) max_keys: usize,
    /// A discovered `jwks_uri` may be plain `http`.
    pub(super) allow_http: bool,
    /// `"kty":"oct"` keys are taken from the remote set.
    pub(super) allow_symmetric: bool,
    /// Maximum age of a key set whose answer says none.
    pub(super) max_age: Duration,
    /// Bounds on the maximum age an answer's `Cache-Control` asks for.
    pub(super) max_age_range: (Duration, Duration),
    /// How long past its maximum age a key set still serves while
    /// refreshes fail.
    pub(super) stale_if_error: Duration,
}

/// The keys in service, and how long the remote ones are good for.
pub(super) struct KeySet {
    local: Arc<[Key]>,
    remote: Vec<Key>,
    /// Whether a remote key set was ever installed.
    fetched: bool,
    /// After this the remote keys are due for a refresh (`None`: never,
    /// the time being past what `SystemTime` holds).
    fresh_until: Option<SystemTime>,
    /// After this the remote keys no longer serve: a provider that has
    /// failed for longer than the stale limit (`None`: never).
    usable_until: Option<SystemTime>,
}

impl KeySet {
    /// Whether the remote keys may verify tokens at `now`.
    fn remote_usable(&self, now: SystemTime) -> bool {
        self.fetched && self.usable_until.is_none_or(|until| now < until)
    }

    /// The keys that may verify a token at `now`: every local key, and the
    /// remote ones unless they are past the stale limit.
    pub(super) fn usable(&self, now: SystemTime) -> impl Iterator<Item = &Key> {
        let remote: &[Key] = if self.remote_usable(now) {
            &self.remote
        } else {
            &[]
        };
        self.local.iter().chain(remote)
    }
}

#[derive(Debug, Default)]
struct RefreshState {
    /// From discovery, once known.
    jwks_uri: Option<http::Uri>,
    /// When the last fetch finished, whatever its result.
    last_finished: Option<SystemTime>,
    /// Whether that fetch failed.
    last_failed: bool,
    /// Why the last failed fetch failed, by kind (never a host, token or
    /// secret).
    last_error: Option<Cow<'static, str>>,
    /// When a probe's fetch was last cut short: no probe starts another
    /// for the refresh interval (requests still fetch as they need).
    probe_cut_short: Option<SystemTime>,
}

struct Remote {
    config: RemoteConfig,
    state: Mutex<RefreshState>,
    /// The one fetch in flight, if any (single flight, like introspection).
    fetches: Arc<Flights<(), ()>>,
    /// When the set in service was installed, for the metrics.
    age: crate::metrics::KeySetAge,
}

impl Remote {
    /// Whether `now` is less than the refresh interval after `at`.
    fn within_interval(&self, at: SystemTime, now: SystemTime) -> bool {
        later(at, self.config.refresh_interval).is_none_or(|next| now < next)
    }
}

/// Why no refresh was started.
#[derive(Debug)]
pub(super) enum NoRefresh {
    /// Keys are fixed.
    Fixed,
    /// Another request's fetch is under way: wait for it, then look again.
    InFlight(Waiter),
    /// The last fetch finished less than the refresh interval ago; `failed`
    /// says whether it failed.
    TooSoon { failed: bool },
}

/// A probe's key fetch, dropped before its answer if the probe is (a
/// readiness request gone mid-way): no probe starts another for the
/// refresh interval, however often probes are cut short, while requests
/// still fetch the keys they need (a cut-short probe never keeps a server
/// without keys); it is no failure of the provider's (nothing logged or
/// counted, the last outcome kept).
struct Unapplied(Option<Box<super::ApplyFn>>, SystemTime, Arc<KeyStore>);

impl Drop for Unapplied {
    fn drop(&mut self) {
        // Dropping the fetch releases whoever waits for it.
        if self.0.take().is_some()
            && let Some(remote) = &self.2.remote
        {
            let mut state = remote.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.probe_cut_short = Some(self.1);
        }
    }
}

/// `at + d`, or "never" when that is past what `SystemTime` can hold.
fn later(at: SystemTime, d: Duration) -> Option<SystemTime> {
    at.checked_add(d)
}

/// The current keys, shared with the fetches that replace them.
pub(super) struct KeyStore {
    set: RwLock<Arc<KeySet>>,
    generation: AtomicU64,
    /// The set's `fresh_until` in seconds since the epoch (`u64::MAX`:
    /// never), readable without the lock on every cache hit.
    fresh_until: AtomicU64,
    remote: Option<Remote>,
}

impl KeyStore {
    pub(super) fn new(local: Vec<Key>, remote: Option<RemoteConfig>) -> Self {
        KeyStore {
            set: RwLock::new(Arc::new(KeySet {
                local: local.into(),
                remote: Vec::new(),
                fetched: false,
                fresh_until: None,
                usable_until: None,
            })),
            generation: AtomicU64::new(0),
            fresh_until: AtomicU64::new(u64::MAX),
            remote: remote.map(|config| Remote {
                config,
                state: Mutex::new(RefreshState::default()),
                fetches: Flights::new(),
                age: crate::metrics::KeySetAge::new(),
            }),
        }
    }

    pub(super) fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn fresh_until(&self) -> u64 {
        self.fresh_until.load(Ordering::Acquire)
    }

    /// Whether exactly one key is configured and nothing can come from
    /// elsewhere: it verifies every token, whatever its `kid`.
    pub(super) fn single_fixed_key(&self, set: &KeySet) -> bool {
        self.remote.is_none() && set.local.len() == 1
    }

    /// Whether remote keys are configured but none can serve at `now`
    /// (none fetched yet, or past the stale limit).
    pub(super) fn remote_unavailable(&self, set: &KeySet, now: SystemTime) -> bool {
        self.remote.is_some() && !set.remote_usable(now)
    }

    /// Whether the remote key set is due for a refresh at `now`.
    pub(super) fn refresh_due(&self, set: &KeySet, now: SystemTime) -> bool {
        self.remote.is_some() && set.fetched && set.fresh_until.is_some_and(|f| now >= f)
    }

    /// The key set's health at `now`, for a readiness probe: a fetch
    /// started first when one is due (never fetched, or past the max age)
    /// and the refresh interval allows it.
    pub(super) fn probe(self: &Arc<Self>, now: SystemTime) -> Probe {
        self.probe_from(&self.current(), now)
    }

    /// [`probe`](Self::probe), having read `set` as the set in service.
    pub(super) fn probe_from(self: &Arc<Self>, set: &KeySet, now: SystemTime) -> Probe {
        if self.remote.is_none() {
            return Probe::Done(Health::Ready);
        }
        let refresh = if (!set.fetched || self.refresh_due(set, now)) && !self.probe_held(now) {
            Some(self.start_refresh(now))
        } else {
            None
        };
        if let Some(Err(NoRefresh::InFlight(_))) = &refresh
            && !set.fetched
        {
            // Not checked yet: the first fetch is a request's, under way.
            return Probe::Done(Health::Degraded(
                "no remote signing keys yet; the first fetch is under way".into(),
            ));
        }
        if let Some(Ok(fetch)) = refresh {
            let store = Arc::clone(self);
            let KeyFetch { request, apply } = fetch;
            let mut fetch = Unapplied(Some(apply), now, Arc::clone(self));
            return Probe::Send(ProbeStep::new(request, move |response, now| {
                let applied = fetch.0.take().map(|apply| apply(response, now));
                let set = store.current();
                // Discovery found the key set: that is due at once (one
                // more step); otherwise the health (a failure is logged
                // and kept).
                if matches!(applied, Some(Ok(()))) && !set.fetched {
                    store.probe(now)
                } else {
                    Probe::Done(store.health(&set, now))
                }
            }));
        }
        // Fetched recently, or being fetched by a request: as it stands
        // (read again: a fetch may have finished since `set` was read).
        Probe::Done(self.health(&self.current(), now))
    }

    /// Whether a probe's fetch was cut short less than the refresh
    /// interval before `now`.
    fn probe_held(&self, now: SystemTime) -> bool {
        self.remote.as_ref().is_some_and(|remote| {
            let state = remote.state.lock().unwrap_or_else(PoisonError::into_inner);
            state
                .probe_cut_short
                .is_some_and(|at| remote.within_interval(at, now))
        })
    }

    /// What the key set in service is good for at `now`.
    fn health(&self, set: &KeySet, now: SystemTime) -> Health {
        let Some(remote) = &self.remote else {
            return Health::Ready;
        };
        let error = {
            let state = remote.state.lock().unwrap_or_else(PoisonError::into_inner);
            state
                .last_failed
                .then(|| state.last_error.clone())
                .flatten()
        };
        let because = |what: &str| -> Cow<'static, str> {
            match &error {
                Some(error) => format!("{what}; the last fetch failed: {error}").into(),
                None => what.to_owned().into(),
            }
        };
        // Local keys still verify their tokens: degraded, not down.
        let down = |reason| {
            if set.local.is_empty() {
                Health::Down(reason)
            } else {
                Health::Degraded(reason)
            }
        };
        if !set.fetched {
            return down(because("no remote signing keys yet"));
        }
        if !set.remote_usable(now) {
            return down(because("the remote key set is past its stale limit"));
        }
        if set.remote.is_empty() {
            return down(because("the remote key set holds no usable signing key"));
        }
        if set.fresh_until.is_some_and(|fresh| now >= fresh) {
            return Health::Degraded(because("the remote key set is past its max age"));
        }
        Health::Ready
    }

    /// Starts a key fetch if the rules allow one now.
    pub(super) fn start_refresh(self: &Arc<Self>, now: SystemTime) -> Result<KeyFetch, NoRefresh> {
        let Some(remote) = &self.remote else {
            return Err(NoRefresh::Fixed);
        };
        // One fetch at a time: the others wait for it. A fetch that is
        // dropped before it was sent releases them (the leader's Drop) and
        // does not count: no provider was asked.
        let leader = match remote.fetches.join(&(), || ()) {
            Join::Follower(flight) => return Err(NoRefresh::InFlight(flight.waiter())),
            Join::Leader(leader) => leader,
        };
        let state = remote.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = state.last_finished
            && remote.within_interval(last, now)
        {
            return Err(NoRefresh::TooSoon {
                failed: state.last_failed,
            });
        }
        let (uri, is_discovery) = match (&remote.config.source, &state.jwks_uri) {
            (RemoteSource::Jwks(uri), _) | (RemoteSource::Discovery { .. }, Some(uri)) => {
                (uri.clone(), false)
            }
            (RemoteSource::Discovery { document, .. }, None) => (document.clone(), true),
        };
        drop(state);
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .unwrap_or_default();
        let store = Arc::clone(self);
        let call = crate::metrics::ProviderCall::start(if is_discovery {
            crate::metrics::Provider::Discovery
        } else {
            crate::metrics::Provider::Jwks
        });
        Ok(KeyFetch::new(request, move |response, now| {
            let result = if is_discovery {
                store.apply_discovery(response)
            } else {
                store.apply_jwks(response, now)
            };
            call.finish(result.is_ok());
            if let Some(remote) = &store.remote {
                let mut state = remote.state.lock().unwrap_or_else(PoisonError::into_inner);
                // A discovery document found the JWKS: that is due at once.
                state.last_finished = (!(is_discovery && result.is_ok())).then_some(now);
                state.last_failed = result.is_err();
                if result.is_err() {
                    // Its kind only: the error's text (in the log) may
                    // name hosts.
                    state.last_error = Some(crate::health::unusable(response));
                }
            }
            if let Err(error) = &result {
                tracing::warn!(%error, "JWT key fetch failed; the keys in service stay");
            }
            leader.finish(());
            result
        }))
    }

    fn apply_discovery(
        &self,
        response: &Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Result<(), AuthError> {
        let Some(Remote {
            config:
                RemoteConfig {
                    source: RemoteSource::Discovery { issuer, .. },
                    allow_http,
                    ..
                },
            state,
            ..
        }) = &self.remote
        else {
            return Ok(());
        };
        let document = json_document(response, "OIDC discovery")?;
        if document.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(AuthError::provider_unavailable(
                "OIDC discovery document names another issuer",
            ));
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .and_then(|u| endpoint_url(u, *allow_http).ok())
            .ok_or_else(|| {
                AuthError::provider_unavailable(
                    "OIDC discovery document has no usable jwks_uri (https, or http if allowed)",
                )
            })?;
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .jwks_uri = Some(jwks_uri);
        Ok(())
    }

    fn apply_jwks(
        &self,
        response: &Result<http::Response<Vec<u8>>, TransportError>,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let Some(Remote { config, age, .. }) = &self.remote else {
            return Ok(());
        };
        let document = json_document(response, "JWKS")?;
        if !matches!(document.get("keys"), Some(Value::Array(_))) {
            // Not a key set: stale on error, the keys we had stay in
            // service.
            return Err(AuthError::provider_unavailable("JWKS has no keys array"));
        }
        let keys = keys_from_jwks(&document, config);
        if keys.is_empty() {
            // A well-formed answer is the provider's word: it withdrew
            // every key we can use. So are they here (their tokens get
            // 401), loudly: a provider that serves no usable key is
            // misconfigured, or this validator is.
            tracing::error!(
                "the provider's key set holds no usable signing key (algorithms, key types, \
                 `use`): every remote key is withdrawn"
            );
        }
        let max_age = response
            .as_ref()
            .ok()
            .and_then(|r| cache_max_age(r.headers()))
            .map_or(config.max_age, |asked| {
                asked.clamp(config.max_age_range.0, config.max_age_range.1)
            });
        let fresh_until = later(now, max_age);
        let usable_until = fresh_until.and_then(|fresh| later(fresh, config.stale_if_error));
        self.replace(keys, fresh_until, usable_until);
        age.updated(now);
        Ok(())
    }

    /// Installs a new remote key set beside the local keys; withdrawing a
    /// key (by `kid` and material: new material under a known `kid` is a
    /// withdrawal too) bumps the generation, so that tokens it verified are
    /// checked again.
    fn replace(
        &self,
        keys: Vec<Key>,
        fresh_until: Option<SystemTime>,
        usable_until: Option<SystemTime>,
    ) {
        let new: HashSet<[u8; 32]> = keys.iter().map(|k| k.fingerprint).collect();
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        let withdrawn = set.remote.iter().any(|k| !new.contains(&k.fingerprint));
        *set = Arc::new(KeySet {
            local: Arc::clone(&set.local),
            remote: keys,
            fetched: true,
            fresh_until,
            usable_until,
        });
        let seconds = fresh_until.map_or(u64::MAX, super::unix_seconds);
        self.fresh_until.store(seconds, Ordering::Release);
        if withdrawn {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// `Cache-Control: max-age` of an answer (`no-store` and `no-cache` ask
/// for zero), if it says.
fn cache_max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(seconds) = lower.strip_prefix("max-age=")
                && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
            {
                max_age = Some(Duration::from_secs(seconds));
            }
        }
    }
    max_age
}

/// The JSON object of a successful answer, or why there is none.
fn json_document(
    response: &Result<http::Response<Vec<u8>>, TransportError>,
    what: &'static str,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let response = response
        .as_ref()
        .map_err(|e| AuthError::provider_unavailable(format!("{what} fetch failed: {e}")))?;
    if response.status() != http::StatusCode::OK {
        return Err(AuthError::provider_unavailable(format!(
            "{what} endpoint answered {}",
            response.status().as_u16()
        )));
    }
    match serde_json::from_slice(response.body()) {
        Ok(Value::Object(document)) => Ok(document),
        _ => Err(AuthError::provider_unavailable(format!(
            "{what} answer is not a JSON object"
        ))),
    }
}

/// The usable signing keys of a remote JWKS document, at most
/// `config.max_keys`. Keys that do not parse, are for encryption, fit none
/// of the allowed algorithms, are symmetric (unless allowed) or are HMAC
/// keys under 32 bytes are skipped, not fatal.
pub(super) fn keys_from_jwks(
    document: &serde_json::Map<String, Value>,
    config: &RemoteConfig,
) -> Vec<Key> {
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let jwk = serde_json::from_value::<Jwk>(entry.clone()).ok()?;
            if !config.allow_symmetric && is_symmetric(&jwk) {
                return None;
            }
            key_from_jwk(&jwk, &config.allowed).ok()
        })
        .take(config.max_keys)
        .collect()
}

/// Whether a JWK is a shared secret (`"kty":"oct"`).
pub(super) fn is_symmetric(jwk: &Jwk) -> bool {
    matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
}

/// Why a JWK is not a usable signing key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unusable {
    /// For encryption, unparsable, or fits no allowed algorithm.
    NotSigning,
    /// An HMAC secret under the minimum length.
    ShortSecret(usize),
}

/// A verification key from one JWK, if it is a usable signing key.
pub(super) fn key_from_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Result<Key, Unusable> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err(Unusable::NotSigning);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Unusable::NotSigning)?;
    if let Some(len) = hmac_len(&key)
        && len < super::validator::MIN_HMAC_SECRET_LEN
    {
        return Err(Unusable::ShortSecret(len));
    }
    let algorithms = match &jwk.common.key_algorithm {
        // A JWK that names its algorithm may verify only that one.
        Some(named) => {
            let named: Algorithm = serde_json::to_value(named)
                .ok()
                .and_then(|v| v.as_str()?.parse().ok())
                .ok_or(Unusable::NotSigning)?;
            if !allowed.contains(&named) || named.family() != key.family() {
                return Err(Unusable::NotSigning);
            }
            vec![named]
        }
        None => algorithms_for(&key, allowed),
    };
    if algorithms.is_empty() {
        return Err(Unusable::NotSigning);
    }
    Ok(Key::new(jwk.common.key_id.clone(), key, algorithms))
}
