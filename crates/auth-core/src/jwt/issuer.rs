//! [`TokenIssuer`]: mints tokens for tests, examples and services that sign
//! their own.

use std::fmt;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::unix_seconds;
use super::validator::MIN_HMAC_SECRET_LEN;
use crate::error::ConfigError;

/// Default token lifetime.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

impl TokenIssuer {
    /// Default lifetime of issued tokens.
    pub const DEFAULT_TTL: Duration = DEFAULT_TTL;
}

/// Why a token could not be issued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The claims are not a JSON object.
    #[error("claims must be a JSON object")]
    NotAnObject,
    /// There is no non-empty string `sub`.
    #[error("claims must hold a non-empty string sub")]
    MissingSubject,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs tokens: requires `sub`; adds `exp` (now + ttl), `iat`, a random
/// `jti`, and the configured `iss` / `aud` unless the claims carry their own.
///
/// ```
/// use auth_core::TokenIssuer;
/// use std::time::{Duration, SystemTime};
///
/// let issuer = TokenIssuer::hs256(b"a 32-byte or longer shared secret!")?
///     .ttl(Duration::from_secs(60))
///     .issuer("auth-demo");
/// let token = issuer.issue(serde_json::json!({"sub": "alice"}), SystemTime::now())?;
/// assert_eq!(token.split('.').count(), 3);
/// assert!(issuer.issue(serde_json::json!({"name": "no subject"}), SystemTime::now()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    ttl: Duration,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenIssuer {
    /// An issuer signing with `algorithm` and `key`.
    ///
    /// # Errors
    /// No crypto backend compiled in.
    pub fn new(algorithm: Algorithm, key: EncodingKey) -> Result<Self, ConfigError> {
        super::ensure_crypto_provider()?;
        Ok(TokenIssuer {
            key,
            header: Header::new(algorithm),
            ttl: DEFAULT_TTL,
            issuer: None,
            audience: None,
        })
    }

    /// An HS256 issuer.
    ///
    /// # Errors
    /// A secret under 32 bytes.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(ConfigError::KeyTooShort {
                len: secret.len(),
                min: MIN_HMAC_SECRET_LEN,
            });
        }
        let key = EncodingKey::from_secret(secret).map_err(|_| ConfigError::Invalid {
            name: "secret",
            reason: "cannot be used as an HMAC key",
        })?;
        Self::new(Algorithm::HS256, key)
    }

    /// Token lifetime (default 15 minutes).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// `iss` to add.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// `aud` to add.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// `kid` to put in the header.
    #[must_use]
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.header.kid = Some(kid.into());
        self
    }

    /// Signs `claims` at time `now`.
    ///
    /// # Errors
    /// Claims that are not an object or lack `sub`; a signing failure.
    pub fn issue(&self, claims: Value, now: SystemTime) -> Result<String, IssueError> {
        let Value::Object(mut claims) = claims else {
            return Err(IssueError::NotAnObject);
        };
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(IssueError::MissingSubject);
        }
        let iat = unix_seconds(now);
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), iat.saturating_add(self.ttl.as_secs()).into());
        claims.insert(
            "jti".into(),
            uuid::Uuid::new_v4().simple().to_string().into(),
        );
        if let Some(iss) = &self.issuer {
            claims.entry("iss").or_insert_with(|| iss.clone().into());
        }
        if let Some(aud) = &self.audience {
            claims.entry("aud").or_insert_with(|| aud.clone().into());
        }
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| IssueError::Signing(e.to_string()))
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.header.alg)
            .field("ttl", &self.ttl)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}
