//! The verification keys of a [`JwtValidator`](super::JwtValidator): fixed,
//! or fetched from a JWKS URL (directly or found by OIDC discovery) and
//! refreshed on an unknown `kid`, at most once per interval and one fetch at
//! a time.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::KeyFetch;
use crate::error::AuthError;
use crate::error::TransportError;
use crate::flight::{Flights, Join, Waiter};

/// One verification key, with the algorithms it may verify.
pub(super) struct Key {
    pub(super) kid: Option<String>,
    key: DecodingKey,
    /// Only the key's own algorithms, from the configured list.
    algorithms: Vec<Algorithm>,
    /// Unique in the process, for the per-thread verifiers.
    id: u64,
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
        Key {
            kid,
            key,
            algorithms,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(super) fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }

    /// Whether `signature` (base64url, as in the token) is this key's
    /// signature of `message` with `algorithm`, checked by jsonwebtoken's
    /// crypto provider as `jsonwebtoken::decode` checks it. The caller has
    /// checked that the key [`allows`](Self::allows) the algorithm.
    pub(super) fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &str,
    ) -> Result<bool, jsonwebtoken::errors::Error> {
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

/// Where remote keys come from.
#[derive(Clone, Debug)]
pub(super) enum RemoteSource {
    /// A JWKS document at this URL.
    Jwks(http::Uri),
    /// OIDC discovery at `<issuer>/.well-known/openid-configuration`; the
    /// document's `issuer` must equal this one exactly.
    Discovery(String),
}

#[derive(Clone, Debug)]
pub(super) struct RemoteConfig {
    pub(super) source: RemoteSource,
    pub(super) allowed: Vec<Algorithm>,
    pub(super) refresh_interval: Duration,
    pub(super) max_keys: usize,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// From discovery, once known.
    jwks_uri: Option<http::Uri>,
    last_attempt: Option<SystemTime>,
}

/// Why no refresh was started.
#[derive(Debug)]
pub(super) enum NoRefresh {
    /// Keys are fixed.
    Fixed,
    /// Another request's fetch is under way: wait for it, then look again.
    InFlight(Waiter),
    /// The last attempt was less than the refresh interval ago.
    TooSoon,
}

/// The current keys, shared with the fetches that replace them.
pub(super) struct KeyStore {
    keys: RwLock<Arc<[Key]>>,
    generation: AtomicU64,
    remote: Option<(RemoteConfig, Mutex<RefreshState>)>,
    /// The one fetch in flight, if any (single flight, like introspection).
    fetches: Arc<Flights<(), ()>>,
}

impl KeyStore {
    pub(super) fn new(keys: Vec<Key>, remote: Option<RemoteConfig>) -> Self {
        KeyStore {
            keys: RwLock::new(keys.into()),
            generation: AtomicU64::new(0),
            remote: remote.map(|r| (r, Mutex::new(RefreshState::default()))),
            fetches: Flights::new(),
        }
    }

    pub(super) fn current(&self) -> Arc<[Key]> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Starts a key fetch if the rules allow one now.
    pub(super) fn start_refresh(self: &Arc<Self>, now: SystemTime) -> Result<KeyFetch, NoRefresh> {
        let Some((config, state)) = &self.remote else {
            return Err(NoRefresh::Fixed);
        };
        // One fetch at a time: the others wait for it. A fetch whose step is
        // dropped unfinished releases them (the leader's Drop).
        let leader = match self.fetches.join(&(), || ()) {
            Join::Follower(flight) => return Err(NoRefresh::InFlight(flight.waiter())),
            Join::Leader(leader) => leader,
        };
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = state.last_attempt
            && now < last + config.refresh_interval
        {
            return Err(NoRefresh::TooSoon);
        }
        let (uri, is_discovery) = match (&config.source, &state.jwks_uri) {
            (RemoteSource::Jwks(uri), _) | (RemoteSource::Discovery(_), Some(uri)) => {
                (uri.clone(), false)
            }
            (RemoteSource::Discovery(issuer), None) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                match url.parse::<http::Uri>() {
                    Ok(uri) => (uri, true),
                    Err(_) => return Err(NoRefresh::Fixed),
                }
            }
        };
        state.last_attempt = Some(now);
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .unwrap_or_default();
        let store = Arc::clone(self);
        Ok(KeyFetch::new(request, move |response, _now| {
            let result = if is_discovery {
                store.apply_discovery(response)
            } else {
                store.apply_jwks(response)
            };
            if let Some((_, state)) = &store.remote
                && is_discovery
                && result.is_ok()
            {
                // The JWKS itself is due at once.
                state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_attempt = None;
            }
            leader.finish(());
            result
        }))
    }

    fn apply_discovery(
        &self,
        response: Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Result<(), AuthError> {
        let Some((
            RemoteConfig {
                source: RemoteSource::Discovery(issuer),
                ..
            },
            state,
        )) = &self.remote
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
            .and_then(|u| u.parse::<http::Uri>().ok())
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| {
                AuthError::provider_unavailable("OIDC discovery document has no usable jwks_uri")
            })?;
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .jwks_uri = Some(jwks_uri);
        Ok(())
    }

    fn apply_jwks(
        &self,
        response: Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Result<(), AuthError> {
        let Some((config, _)) = &self.remote else {
            return Ok(());
        };
        let document = json_document(response, "JWKS")?;
        let keys = keys_from_jwks(&document, &config.allowed, config.max_keys);
        if keys.is_empty() {
            // Stale on error: the keys we had stay in service.
            return Err(AuthError::provider_unavailable(
                "JWKS has no usable signing key",
            ));
        }
        self.replace(keys);
        Ok(())
    }

    /// Installs a new key set; withdrawing any key bumps the generation so
    /// that tokens it verified are checked again.
    fn replace(&self, keys: Vec<Key>) {
        let new_kids: HashSet<Option<&str>> = keys.iter().map(|k| k.kid.as_deref()).collect();
        let mut current = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let withdrawn = current
            .iter()
            .any(|k| !new_kids.contains(&k.kid.as_deref()));
        *current = keys.into();
        if withdrawn {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The JSON object of a successful answer, or why there is none.
fn json_document(
    response: Result<http::Response<Vec<u8>>, TransportError>,
    what: &'static str,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let response = response
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

/// The usable signing keys of a JWKS document, at most `max`. Keys that do
/// not parse, are for encryption, or fit none of the `allowed` algorithms
/// are skipped, not fatal.
pub(super) fn keys_from_jwks(
    document: &serde_json::Map<String, Value>,
    allowed: &[Algorithm],
    max: usize,
) -> Vec<Key> {
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            key_from_jwk(&serde_json::from_value::<Jwk>(entry.clone()).ok()?, allowed)
        })
        .take(max)
        .collect()
}

/// A verification key from one JWK, if it is a usable signing key.
pub(super) fn key_from_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let algorithms = match &jwk.common.key_algorithm {
        // A JWK that names its algorithm may verify only that one.
        Some(named) => {
            let named: Algorithm = serde_json::to_value(named).ok()?.as_str()?.parse().ok()?;
            if !allowed.contains(&named) || named.family() != key.family() {
                return None;
            }
            vec![named]
        }
        None => algorithms_for(&key, allowed),
    };
    if algorithms.is_empty() {
        return None;
    }
    Some(Key::new(jwk.common.key_id.clone(), key, algorithms))
}
