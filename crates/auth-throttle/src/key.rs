//! Caller keys: a keyed 128-bit hash (SipHash-2-4, a PRF under the
//! throttle's secret) of the identity's rate-limiting key or of the client
//! address. Counters are stored under it, so no raw session id, token or
//! address reaches a store, and every key has the same size.

use std::fmt;
use std::hash::Hasher as _;
use std::net::IpAddr;

use auth_core::AuthData;
use hkdf::Hkdf;
use sha2::Sha256;
use siphasher::sip128::{Hasher128, SipHasher24};

use crate::error::ThrottleError;

/// Shortest secret for keys shared between servers.
pub const MIN_KEY_SECRET_LEN: usize = 16;

/// A caller as stores see it: a keyed 128-bit hash of its identity or
/// address, never the identity itself. Shown as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallerKey(pub(crate) [u8; 16]);

impl CallerKey {
    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Which of `2^bits` shards the key belongs to: its two halves folded
    /// and mixed.
    pub(crate) fn shard(&self, bits: u32) -> usize {
        let [a, b] = [&self.0[..8], &self.0[8..]]
            .map(|half| u64::from_le_bytes(half.try_into().unwrap_or_default()));
        let mixed = (a ^ b.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        usize::try_from(mixed >> (64 - bits)).unwrap_or(0)
    }
}

impl fmt::Display for CallerKey {
    /// Lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Makes caller keys under one secret.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    key: [u8; 16],
}

/// Never shows its secret.
impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    /// A random secret: keys meaningful to this process only.
    pub(crate) fn random() -> Self {
        KeyHasher {
            key: uuid::Uuid::new_v4().into_bytes(),
        }
    }

    /// A secret shared by every server that counts in the same store.
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self, ThrottleError> {
        if secret.len() < MIN_KEY_SECRET_LEN {
            return Err(ThrottleError::Invalid {
                name: "key secret",
                reason: "at least 16 bytes of high entropy",
            });
        }
        // A key for this purpose alone (HKDF-SHA256): a secret also used
        // elsewhere (a JWT secret) gives unrelated keys here.
        let mut key = [0u8; 16];
        Hkdf::<Sha256>::new(Some(b"auth-throttle"), secret)
            .expand(b"caller keys v2", &mut key)
            .map_err(|_| ThrottleError::Invalid {
                name: "key secret",
                reason: "cannot derive a key from it",
            })?;
        Ok(KeyHasher { key })
    }

    fn hasher(&self, domain: &[u8]) -> SipHasher24 {
        let mut hasher = SipHasher24::new_with_key(&self.key);
        hasher.write(domain);
        hasher
    }

    /// The key of an identity (by its rate-limiting key).
    pub(crate) fn identity(&self, auth: &AuthData) -> CallerKey {
        let mut hasher = self.hasher(b"identity\0");
        auth.key_bytes(|piece| hasher.write(piece));
        CallerKey(hasher.finish128().as_bytes())
    }

    /// The key of a client address.
    pub(crate) fn address(&self, ip: IpAddr) -> CallerKey {
        let mut hasher = self.hasher(b"address\0");
        match ip.to_canonical() {
            IpAddr::V4(v4) => hasher.write(&v4.octets()),
            IpAddr::V6(v6) => hasher.write(&v6.octets()),
        }
        CallerKey(hasher.finish128().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::Source;

    #[test]
    fn keys_separate_kinds_secrets_and_callers() {
        let a = KeyHasher::from_secret(b"a shared secret of 32 bytes!!!!!")
            .unwrap_or_else(|e| panic!("{e}"));
        let b = KeyHasher::from_secret(b"another secret of 32 bytes!!!!!!")
            .unwrap_or_else(|e| panic!("{e}"));
        let alice = AuthData::bare(Source::Session, "alice");
        assert_eq!(a.identity(&alice), a.identity(&alice.clone()));
        assert_ne!(a.identity(&alice), b.identity(&alice), "the secret matters");
        assert_ne!(
            a.identity(&alice),
            a.identity(&AuthData::bare(Source::Anonymous, "alice")),
            "the key's namespace matters"
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(ip);
        assert_eq!(a.address(ip), a.address(mapped), "one address, one key");
        assert_ne!(
            a.address(ip),
            a.identity(&AuthData::bare(Source::Ip, "192.0.2.1"))
        );
        let text = a.identity(&alice).to_string();
        assert_eq!(text.len(), 32);
        assert!(!text.contains("alice"));
        assert!(KeyHasher::from_secret(b"short").is_err());
        // HKDF-SHA256 (salt "auth-throttle", info "caller keys v2"), as
        // computed by another implementation: pinned, since servers sharing
        // a Redis must derive the same key (a change starts every counter
        // afresh).
        let expected = [
            0x8f, 0xa7, 0x02, 0x08, 0x3c, 0x40, 0x9b, 0xaf, 0xc8, 0xc9, 0xaf, 0x10, 0xc4, 0x34,
            0x48, 0xe9,
        ];
        assert_eq!(a.key, expected);
        assert_ne!(KeyHasher::random().key, KeyHasher::random().key);
    }
}
