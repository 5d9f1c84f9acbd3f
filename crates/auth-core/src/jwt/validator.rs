//! [`JwtValidator`]: signatures by `jsonwebtoken`, claims against the
//! injected clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::claims::{Claim, Registered};
use super::header::{self, HeaderFacts};
use super::keys::{
    Key, KeySet, KeyStore, NoRefresh, RemoteConfig, RemoteSource, Unusable, algorithms_for,
    hmac_len, key_from_jwk,
};
use super::{Checked, TokenValidator, VerifiedClaims, invalid, unix_seconds};
use crate::error::{AuthError, ConfigError, Credential};
use crate::health::Probe;
use crate::request::DEFAULT_MAX_TOKEN_LEN;
use crate::transport::endpoint_url;

/// Default clock skew allowed on `exp` and `nbf`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default shortest time between two remote key refreshes.
pub(crate) const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Default most keys kept from a remote key set.
pub(crate) const DEFAULT_MAX_KEYS: usize = 32;
/// Default maximum age of a remote key set whose answer has no
/// `Cache-Control: max-age`.
pub(crate) const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default bounds on the maximum age a key set's `Cache-Control` asks for.
pub(crate) const DEFAULT_KEYS_MAX_AGE_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(86_400));
/// Default time a key set past its maximum age still serves while
/// refreshes fail.
pub(crate) const DEFAULT_KEYS_STALE_IF_ERROR: Duration = Duration::from_secs(3600);
/// Shortest HMAC secret accepted (RFC 7518 §3.2: at least the hash size).
pub(crate) const MIN_HMAC_SECRET_LEN: usize = 32;

impl JwtValidator {
    /// Default clock skew allowed on `exp` and `nbf`.
    pub const DEFAULT_LEEWAY: Duration = DEFAULT_LEEWAY;
    /// Default shortest time between two remote key refreshes.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = DEFAULT_REFRESH_INTERVAL;
    /// Default most keys kept from a remote key set.
    pub const DEFAULT_MAX_KEYS: usize = DEFAULT_MAX_KEYS;
    /// Default maximum age of a remote key set whose answer has no
    /// `Cache-Control: max-age`.
    pub const DEFAULT_KEYS_MAX_AGE: Duration = DEFAULT_KEYS_MAX_AGE;
    /// Default bounds on the maximum age a key set's `Cache-Control` asks
    /// for.
    pub const DEFAULT_KEYS_MAX_AGE_RANGE: (Duration, Duration) = DEFAULT_KEYS_MAX_AGE_RANGE;
    /// Default time a key set past its maximum age still serves while
    /// refreshes fail.
    pub const DEFAULT_KEYS_STALE_IF_ERROR: Duration = DEFAULT_KEYS_STALE_IF_ERROR;
    /// Shortest HMAC secret accepted (RFC 7518 §3.2: at least the hash
    /// size).
    pub const MIN_HMAC_SECRET_LEN: usize = MIN_HMAC_SECRET_LEN;
}

/// Validates JWTs with `jsonwebtoken`.
///
/// - **Algorithms are pinned by configuration** and matched to each key's
///   family (a key can only verify algorithms of its own kind: no HS/RS
///   confusion, no `none`); the token's `alg` only selects among them.
/// - Keys: an HMAC secret, PEM or DER public keys, JWKs, a JWKS document, or
///   remote keys ([`jwks_url`](JwtValidatorBuilder::jwks_url),
///   [`oidc_issuer`](JwtValidatorBuilder::oidc_issuer)) chosen by `kid`.
/// - Checks: signature; `exp` required; `nbf`; leeway; `iss` (one of);
///   `aud` (one of); required claims; `typ` absent, `JWT` or `at+jwt`;
///   tokens with a `crit` header are rejected; `jku`, `jwk`, `x5u` are
///   ignored (keys come from configuration only); size capped before any
///   decoding.
///
/// ```
/// use auth_core::{Algorithm, Backend, JwtBackend, JwtValidator, TokenIssuer};
/// use std::time::SystemTime;
///
/// let secret = b"a 32-byte or longer shared secret!";
/// let validator = JwtValidator::builder([Algorithm::HS256])
///     .hmac_secret(secret)
///     .issuer("https://id.example")
///     .build()?;
/// let backend = JwtBackend::new(validator);
///
/// let issuer = TokenIssuer::hs256(secret)?.issuer("https://id.example");
/// let token = issuer.issue(serde_json::json!({"sub": "alice", "scope": "read"}), SystemTime::now())?;
/// let req = http::Request::builder()
///     .header("authorization", format!("Bearer {token}"))
///     .body(())?;
/// let who = backend.authenticate(&req, SystemTime::now()).into_done().unwrap()?;
/// assert_eq!(who.auth.key(), "jwt:https://id.example|alice");
/// assert!(who.auth.has_scope("read"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JwtValidator {
    store: Arc<KeyStore>,
    checks: ClaimChecks,
    max_token_len: usize,
}

struct ClaimChecks {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    required: Vec<String>,
}

impl JwtValidator {
    /// A builder allowing exactly `algorithms`.
    pub fn builder(algorithms: impl IntoIterator<Item = Algorithm>) -> JwtValidatorBuilder {
        JwtValidatorBuilder {
            algorithms: algorithms.into_iter().collect(),
            keys: Vec::new(),
            jwks: Vec::new(),
            error: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            required: Vec::new(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            remote: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            max_keys: DEFAULT_MAX_KEYS,
            allow_http: false,
            allow_remote_symmetric: false,
            max_age: DEFAULT_KEYS_MAX_AGE,
            max_age_range: DEFAULT_KEYS_MAX_AGE_RANGE,
            stale_if_error: DEFAULT_KEYS_STALE_IF_ERROR,
        }
    }

    /// Checks `jws` with the keys of `set`, the set in service when the
    /// request looked. A set past its maximum age starts a fetch; without a
    /// usable key of its `kid`, starts a key fetch or says why the token
    /// cannot be checked now.
    fn check_in(
        &self,
        jws: &Jws<'_>,
        header: &HeaderFacts,
        set: Arc<KeySet>,
        now: SystemTime,
    ) -> Checked {
        let mut set = set;
        // A remote key set past its maximum age: this request fetches a new
        // one; while that runs (or if it fails) the keys in service serve,
        // read again if a fetch finished since `set` was read.
        if self.store.refresh_due(&set, now) {
            match self.store.start_refresh(now) {
                Ok(fetch) => return Checked::FetchKeys(Box::new(fetch)),
                Err(NoRefresh::TooSoon { .. }) => set = self.store.current(),
                Err(_) => {}
            }
        }
        if let Some(checked) = self.verify_with(jws, header, &set, now) {
            return checked;
        }
        match self.store.start_refresh(now) {
            Ok(fetch) => Checked::FetchKeys(Box::new(fetch)),
            Err(NoRefresh::InFlight(waiter)) => Checked::WaitForKeys(waiter),
            Err(NoRefresh::TooSoon { failed }) => {
                // A fetch that succeeded after this request read the set is
                // why it is too soon: its keys are the ones to look in (a
                // failed one replaced nothing).
                if !failed {
                    let current = self.store.current();
                    if !Arc::ptr_eq(&current, &set) {
                        if let Some(checked) = self.verify_with(jws, header, &current, now) {
                            return checked;
                        }
                        set = current;
                    }
                }
                // We cannot tell whether the key exists: the provider
                // failed, or no remote key can serve.
                if failed || self.store.remote_unavailable(&set, now) {
                    Checked::Invalid(AuthError::provider_unavailable(
                        "signing keys are unavailable",
                    ))
                } else {
                    Checked::Invalid(invalid("unknown signing key"))
                }
            }
            Err(NoRefresh::Fixed) => Checked::Invalid(invalid("unknown signing key")),
        }
    }

    /// The check of `jws` by the usable keys of `set` that may have signed
    /// it, or `None` when there is none.
    fn verify_with(
        &self,
        jws: &Jws<'_>,
        header: &HeaderFacts,
        set: &KeySet,
        now: SystemTime,
    ) -> Option<Checked> {
        // One fixed key verifies every token, whatever its `kid`.
        let only = self.store.single_fixed_key(set);
        let mut candidates = set
            .usable(now)
            .filter(|k| match &header.kid {
                _ if only => true,
                Some(kid) => k.kid.as_deref() == Some(&**kid),
                None => k.allows(header.alg),
            })
            .peekable();
        candidates.peek()?;
        let mut first_error = None;
        for key in candidates {
            match jws.verify(header, key) {
                Ok(()) => {
                    return Some(
                        self.claims(jws.payload, now)
                            .map_or_else(Checked::Invalid, Checked::ValidClaims),
                    );
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Some(Checked::Invalid(
            first_error.unwrap_or_else(|| invalid("invalid token")),
        ))
    }

    /// The verified claims of a token whose signature checked out: the
    /// payload decoded once, every member checked (valid JSON text to the
    /// last string), only the registered claims built. The JSON text is kept;
    /// `AuthData` builds a map of it if and when somebody reads an attribute:
    /// a map of every claim costs more than checking an HS256 signature.
    fn claims(&self, payload: &str, now: SystemTime) -> Result<VerifiedClaims, AuthError> {
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| invalid("malformed token"))?;
        let claims = serde_json::from_str::<Registered<'_>>(&json)
            .map_err(|_| invalid("malformed token"))?;
        self.checks
            .check(&claims, json.as_bytes(), unix_seconds(now))?;
        let sub = match claims.sub {
            Some(Claim::Str(sub)) if !sub.is_empty() => sub.into_owned(),
            _ => return Err(invalid("token has no subject")),
        };
        Ok(VerifiedClaims {
            exp: claims.exp.as_ref().and_then(Claim::seconds),
            nbf: claims.nbf.as_ref().and_then(Claim::seconds_up),
            iss: match claims.iss {
                Some(Claim::Str(iss)) => Some(iss.into_owned()),
                _ => None,
            },
            sub,
            json: json.into_boxed_str(),
        })
    }
}

/// A compact JWS split as `jsonwebtoken::decode` splits it (from the right,
/// so a fourth part lands in the header and fails its base64).
struct Jws<'a> {
    /// `header.payload`, what the signature covers.
    message: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    fn split(token: &'a str) -> Option<Self> {
        let (message, signature) = token.rsplit_once('.')?;
        let (header, payload) = message.rsplit_once('.')?;
        Some(Jws {
            message,
            header,
            payload,
            signature,
        })
    }

    /// The signature check, by `jsonwebtoken`'s crypto provider, with the
    /// header's algorithm if this key may use it (the key says).
    fn verify(&self, header: &HeaderFacts, key: &Key) -> Result<(), AuthError> {
        match key.verify(header.alg, self.message.as_bytes(), self.signature) {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid("invalid signature")),
            Err(e) => Err(map_error(e)),
        }
    }
}

impl TokenValidator for JwtValidator {
    fn validate(&self, token: &str, now: SystemTime) -> Checked {
        if token.len() > self.max_token_len {
            return Checked::Invalid(invalid("token exceeds the size limit"));
        }
        // `jsonwebtoken::decode` would parse the claims twice (into ours,
        // then into its own validation struct, even with every check off):
        // it checks the signature here and the claims are read once.
        let Some(jws) = Jws::split(token) else {
            return Checked::Invalid(invalid("malformed token"));
        };
        let header = match header::read(jws.header) {
            Ok(header) => header,
            Err(e) => return Checked::Invalid(e),
        };
        self.check_in(&jws, &header, self.store.current(), now)
    }

    fn key_generation(&self) -> u64 {
        self.store.generation()
    }

    fn keys_fresh_until(&self) -> u64 {
        self.store.fresh_until()
    }

    fn probe(&self, now: SystemTime) -> Probe {
        self.store.probe(now)
    }
}

fn map_error(error: jsonwebtoken::errors::Error) -> AuthError {
    invalid(match error.kind() {
        ErrorKind::InvalidSignature => "invalid signature",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => "algorithm not allowed for this key",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        _ => "invalid token",
    })
}

impl ClaimChecks {
    /// `claims` were read from `json`, the payload's JSON text.
    fn check(&self, claims: &Registered<'_>, json: &[u8], now: u64) -> Result<(), AuthError> {
        let exp = claims
            .exp
            .as_ref()
            .and_then(Claim::seconds)
            .ok_or_else(|| invalid("token has no valid exp claim"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(invalid("token expired"));
        }
        if let Some(nbf) = &claims.nbf {
            let nbf = nbf
                .seconds_up()
                .ok_or_else(|| invalid("token has an invalid nbf claim"))?;
            if nbf > now.saturating_add(self.leeway) {
                return Err(invalid("token not yet valid"));
            }
        }
        if !self.issuers.is_empty() {
            let iss = claims.iss.as_ref().and_then(Claim::as_str);
            if !iss.is_some_and(|iss| self.issuers.iter().any(|i| i == iss)) {
                return Err(invalid("token has the wrong issuer"));
            }
        }
        if !self.audiences.is_empty() {
            let ours = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let matched = match &claims.aud {
                Some(Claim::Str(aud)) => ours(aud),
                Some(Claim::Strs(auds)) => auds.iter().any(|aud| ours(aud)),
                _ => false,
            };
            if !matched {
                return Err(invalid("token has the wrong audience"));
            }
        }
        if !self.required.is_empty() {
            // Rarely configured: only then are all members read.
            let all = serde_json::from_slice::<Map<String, Value>>(json)
                .map_err(|_| invalid("malformed token"))?;
            if let Some(missing) = self.required.iter().find(|c| !all.contains_key(c.as_str())) {
                return Err(AuthError::invalid_credentials(
                    Credential::Bearer,
                    format!("token lacks the required claim {missing}"),
                ));
            }
        }
        Ok(())
    }
}

/// Builds a [`JwtValidator`]; see [`JwtValidator::builder`]. Key methods
/// never fail on the spot: the first bad key is reported by
/// [`build`](Self::build).
#[must_use]
pub struct JwtValidatorBuilder {
    algorithms: Vec<Algorithm>,
    keys: Vec<(Option<String>, DecodingKey)>,
    jwks: Vec<Jwk>,
    error: Option<ConfigError>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    required: Vec<String>,
    max_token_len: usize,
    remote: Option<RemoteSpec>,
    refresh_interval: Duration,
    max_keys: usize,
    allow_http: bool,
    allow_remote_symmetric: bool,
    max_age: Duration,
    max_age_range: (Duration, Duration),
    stale_if_error: Duration,
}

/// A remote key source as configured, checked by `build`.
enum RemoteSpec {
    Jwks(String),
    Discovery(String),
}

impl JwtValidatorBuilder {
    fn fail(mut self, name: &'static str, reason: &'static str) -> Self {
        self.error
            .get_or_insert(ConfigError::Invalid { name, reason });
        self
    }

    fn key(
        mut self,
        kid: Option<&str>,
        key: Result<DecodingKey, jsonwebtoken::errors::Error>,
        what: &'static str,
    ) -> Self {
        match key {
            Ok(key) => {
                self.keys.push((kid.map(str::to_owned), key));
                self
            }
            Err(_) => self.fail(what, "cannot be parsed"),
        }
    }

    /// An HMAC secret (for HS256/384/512), at least 32 bytes.
    pub fn hmac_secret(self, secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            let len = secret.len();
            let mut this = self;
            this.error.get_or_insert(ConfigError::KeyTooShort {
                len,
                min: MIN_HMAC_SECRET_LEN,
            });
            return this;
        }
        self.key(None, DecodingKey::from_secret(secret), "hmac_secret")
    }

    /// An RSA public key in PEM (RS* and PS*).
    pub fn rsa_pem(self, pem: impl AsRef<[u8]>) -> Self {
        self.key(None, DecodingKey::from_rsa_pem(pem.as_ref()), "rsa_pem")
    }

    /// An EC public key in PEM (ES256, ES384).
    pub fn ec_pem(self, pem: impl AsRef<[u8]>) -> Self {
        self.key(None, DecodingKey::from_ec_pem(pem.as_ref()), "ec_pem")
    }

    /// An Ed25519 public key in PEM (EdDSA).
    pub fn ed_pem(self, pem: impl AsRef<[u8]>) -> Self {
        self.key(None, DecodingKey::from_ed_pem(pem.as_ref()), "ed_pem")
    }

    /// An RSA public key in DER (PKCS#1).
    pub fn rsa_der(self, der: impl AsRef<[u8]>) -> Self {
        self.key(None, Ok(DecodingKey::from_rsa_der(der.as_ref())), "rsa_der")
    }

    /// An EC public key as DER-encoded point bytes.
    pub fn ec_der(self, der: impl AsRef<[u8]>) -> Self {
        self.key(None, Ok(DecodingKey::from_ec_der(der.as_ref())), "ec_der")
    }

    /// An Ed25519 public key as raw bytes.
    pub fn ed_der(self, der: impl AsRef<[u8]>) -> Self {
        self.key(None, Ok(DecodingKey::from_ed_der(der.as_ref())), "ed_der")
    }

    /// Any `jsonwebtoken` key, with an optional `kid` to match (an HMAC
    /// secret must be at least 32 bytes).
    pub fn decoding_key(mut self, kid: Option<&str>, key: DecodingKey) -> Self {
        if let Some(len) = hmac_len(&key)
            && len < MIN_HMAC_SECRET_LEN
        {
            self.error.get_or_insert(ConfigError::KeyTooShort {
                len,
                min: MIN_HMAC_SECRET_LEN,
            });
            return self;
        }
        self.key(kid, Ok(key), "decoding_key")
    }

    /// A JWK (its `kid` and `alg` are honoured).
    pub fn jwk(mut self, jwk: Jwk) -> Self {
        self.jwks.push(jwk);
        self
    }

    /// Every key of a JWKS document.
    pub fn jwk_set(mut self, set: JwkSet) -> Self {
        self.jwks.extend(set.keys);
        self
    }

    /// Every key of a JWKS document given as JSON text.
    pub fn jwks_json(self, json: &str) -> Self {
        match serde_json::from_str::<JwkSet>(json) {
            Ok(set) => self.jwk_set(set),
            Err(_) => self.fail("jwks_json", "is not a JWKS document"),
        }
    }

    /// Fetches keys from a JWKS URL (as network steps): when the set is
    /// older than its maximum age, and on an unknown `kid`. Must be `https`
    /// unless [`allow_http`](Self::allow_http); checked by `build`. Local
    /// keys given as well stay in service beside the remote ones.
    pub fn jwks_url(mut self, url: &str) -> Self {
        self.remote = Some(RemoteSpec::Jwks(url.to_owned()));
        self
    }

    /// Finds the JWKS by OIDC discovery at
    /// `<issuer>/.well-known/openid-configuration`, and accepts only tokens
    /// whose `iss` is `issuer`; the discovered document must name the same
    /// issuer exactly, and its `jwks_uri` must be `https` (unless
    /// [`allow_http`](Self::allow_http)).
    pub fn oidc_issuer(mut self, issuer: &str) -> Self {
        self.remote = Some(RemoteSpec::Discovery(issuer.to_owned()));
        self.issuer(issuer)
    }

    /// Lets the JWKS URL, the OIDC issuer and the discovered `jwks_uri` be
    /// plain `http` (default `false`): for tests and a provider on loopback,
    /// never across a network (keys fetched in the clear can be swapped).
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = yes;
        self
    }

    /// Takes symmetric keys (`"kty":"oct"`, HMAC secrets) from the remote
    /// key set (default `false`: a key set is public, a shared secret in it
    /// is a misconfiguration or an attack). Local ones are always taken.
    pub fn allow_remote_symmetric_keys(mut self, yes: bool) -> Self {
        self.allow_remote_symmetric = yes;
        self
    }

    /// Maximum age of a remote key set whose answer has no
    /// `Cache-Control: max-age` (default 1 h). Past it, the next request
    /// fetches a new set; the old one serves meanwhile.
    pub fn keys_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Bounds on the maximum age an answer's `Cache-Control: max-age` asks
    /// for (default 1 min to 24 h).
    pub fn keys_max_age_range(mut self, min: Duration, max: Duration) -> Self {
        self.max_age_range = (min, max.max(min));
        self
    }

    /// How long a key set past its maximum age still serves while
    /// refreshes fail (default 1 h); after that, tokens its keys would
    /// verify get 503 until a fetch succeeds.
    pub fn keys_stale_if_error(mut self, limit: Duration) -> Self {
        self.stale_if_error = limit;
        self
    }

    /// Accepts tokens from this issuer (`iss`); repeat for several. Without
    /// any, `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (`aud`, a string or an array
    /// containing it); repeat for several. Without any, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// A claim that must be present.
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required.push(claim.into());
        self
    }

    /// Longest token accepted (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Shortest time between the end of one remote key fetch and the start
    /// of the next (default 60 s): a stream of unknown `kid`s cannot make us
    /// hammer the provider.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Most keys kept from a remote key set (default 32).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// Checks the configuration and builds the validator.
    ///
    /// # Errors
    /// No algorithms; no keys and no remote source; a key that does not
    /// parse or fits none of the algorithms; an HMAC secret under 32 bytes;
    /// no crypto backend compiled in.
    pub fn build(self) -> Result<JwtValidator, ConfigError> {
        super::ensure_crypto_provider()?;
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::Invalid {
                name: "algorithms",
                reason: "at least one algorithm must be allowed",
            });
        }
        let mut keys = Vec::new();
        for (kid, key) in self.keys {
            let algorithms = algorithms_for(&key, &self.algorithms);
            if algorithms.is_empty() {
                return Err(ConfigError::Invalid {
                    name: "key",
                    reason: "no allowed algorithm fits this key",
                });
            }
            keys.push(Key::new(kid, key, algorithms));
        }
        for jwk in &self.jwks {
            keys.push(
                key_from_jwk(jwk, &self.algorithms).map_err(|unusable| match unusable {
                    Unusable::ShortSecret(len) => ConfigError::KeyTooShort {
                        len,
                        min: MIN_HMAC_SECRET_LEN,
                    },
                    Unusable::NotSigning => ConfigError::Invalid {
                        name: "jwk",
                        reason: "not a usable signing key for the allowed algorithms",
                    },
                })?,
            );
        }
        if keys.is_empty() && self.remote.is_none() {
            return Err(ConfigError::Invalid {
                name: "keys",
                reason: "no key and no remote key source",
            });
        }
        let allow_http = self.allow_http;
        let source = match self.remote {
            None => None,
            Some(RemoteSpec::Jwks(url)) => Some(RemoteSource::Jwks(
                endpoint_url(&url, allow_http).map_err(|reason| ConfigError::Invalid {
                    name: "jwks_url",
                    reason,
                })?,
            )),
            Some(RemoteSpec::Discovery(issuer)) => {
                endpoint_url(&issuer, allow_http).map_err(|reason| ConfigError::Invalid {
                    name: "oidc_issuer",
                    reason,
                })?;
                let document = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let document =
                    endpoint_url(&document, allow_http).map_err(|reason| ConfigError::Invalid {
                        name: "oidc_issuer",
                        reason,
                    })?;
                Some(RemoteSource::Discovery { issuer, document })
            }
        };
        let remote = source.map(|source| RemoteConfig {
            source,
            allowed: self.algorithms.clone(),
            refresh_interval: self.refresh_interval,
            max_keys: self.max_keys,
            allow_http,
            allow_symmetric: self.allow_remote_symmetric,
            max_age: self.max_age,
            max_age_range: self.max_age_range,
            stale_if_error: self.stale_if_error,
        });
        Ok(JwtValidator {
            store: Arc::new(KeyStore::new(keys, remote)),
            checks: ClaimChecks {
                issuers: self.issuers,
                audiences: self.audiences,
                leeway: self.leeway.as_secs(),
                required: self.required,
            },
            max_token_len: self.max_token_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::TokenIssuer;

    const SECRET: &[u8] = b"a 32-byte or longer shared secret!";

    fn remote_validator() -> JwtValidator {
        JwtValidator::builder([Algorithm::HS256])
            .jwks_url("http://127.0.0.1:9/jwks.json")
            .allow_http(true)
            .allow_remote_symmetric_keys(true)
            .keys_max_age(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// A JWKS answer holding HS256 keys `(kid, secret)`.
    fn jwks_answer(
        keys: &[(&str, &[u8])],
    ) -> Result<http::Response<Vec<u8>>, crate::transport::TransportError> {
        let keys: Vec<_> = keys
            .iter()
            .map(|(kid, secret)| {
                serde_json::json!({
                    "kty": "oct", "alg": "HS256", "kid": kid, "k": URL_SAFE_NO_PAD.encode(secret)
                })
            })
            .collect();
        let jwks = serde_json::json!({ "keys": keys });
        Ok(http::Response::new(jwks.to_string().into_bytes()))
    }

    /// Installs `keys` as a finished fetch at `now`.
    fn fetched(validator: &JwtValidator, keys: &[(&str, &[u8])], now: SystemTime) {
        let fetch = validator.store.start_refresh(now).unwrap();
        fetch.apply(&jwks_answer(keys), now).unwrap();
    }

    fn token(secret: &[u8], kid: &str, sub: &str, now: SystemTime) -> String {
        TokenIssuer::hs256(secret)
            .unwrap()
            .key_id(kid)
            .issue(serde_json::json!({ "sub": sub }), now)
            .unwrap()
    }

    fn checked(
        validator: &JwtValidator,
        token: &str,
        set: Arc<KeySet>,
        now: SystemTime,
    ) -> Checked {
        let jws = Jws::split(token).unwrap();
        let header = header::read(jws.header).unwrap();
        validator.check_in(&jws, &header, set, now)
    }

    const OTHER: &[u8] = b"another secret of 32 bytes or more";
    const NOW: Duration = Duration::from_secs(1_700_000_000);

    /// A request that read the key set just before another request's fetch
    /// finished, then found it too soon to fetch: it looks in the new keys
    /// rather than refusing a token they verify.
    #[test]
    fn a_fetch_finished_after_the_set_was_read_is_looked_in() {
        let now = SystemTime::UNIX_EPOCH + NOW;
        let validator = remote_validator();
        let read_before = validator.store.current();
        fetched(&validator, &[("k1", SECRET)], now);
        let alice = token(SECRET, "k1", "alice", now);
        match checked(&validator, &alice, Arc::clone(&read_before), now) {
            Checked::ValidClaims(claims) => assert_eq!(claims.sub, "alice"),
            other => panic!("{other:?}"),
        }
        // A readiness probe that read the old set reports the new one.
        match validator.store.probe_from(&read_before, now) {
            Probe::Done(health) => assert_eq!(health, crate::health::Health::Ready),
            other => panic!("{other:?}"),
        }
        // The set is the newest and lacks the token's key: refused as
        // before, whichever set the request read.
        let mallory = token(OTHER, "other", "mallory", now);
        for set in [validator.store.current(), read_before] {
            match checked(&validator, &mallory, set, now) {
                Checked::Invalid(e) => {
                    assert_eq!(
                        (e.status().as_u16(), e.to_string().as_str()),
                        (401, "invalid credentials: unknown signing key")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A request that read a set past its maximum age, when another
    /// request's fetch has just replaced it (withdrawing a key): the keys
    /// now in service decide, not the old set's.
    #[test]
    fn a_due_refresh_found_too_soon_checks_the_keys_now_in_service() {
        let now = SystemTime::UNIX_EPOCH + NOW;
        let validator = remote_validator();
        fetched(&validator, &[("k1", SECRET)], now);
        let later = now + Duration::from_secs(61);
        let read_before = validator.store.current();
        assert!(validator.store.refresh_due(&read_before, later));
        fetched(&validator, &[("k2", OTHER)], later);
        let withdrawn = token(SECRET, "k1", "alice", later);
        match checked(&validator, &withdrawn, read_before, later) {
            Checked::Invalid(e) => {
                assert_eq!(e.to_string(), "invalid credentials: unknown signing key")
            }
            other => panic!("a withdrawn key verified: {other:?}"),
        }
    }
}
