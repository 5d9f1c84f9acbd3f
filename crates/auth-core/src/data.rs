//! [`AuthData`]: the answer to "who is this?".

use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{AuthError, Credential};

/// Which kind of backend produced an [`AuthData`].
///
/// It is also the namespace of [`AuthData::key`], so identities from two
/// sources never share a rate-limiting key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The client address ([`IpBackend`](crate::ip::IpBackend)).
    Ip,
    /// A session cookie ([`SessionBackend`](crate::session::SessionBackend)).
    Session,
    /// An anonymous session cookie, possibly issued for this very request
    /// ([`AnonSessionBackend`](crate::session::AnonSessionBackend)).
    Anonymous,
    /// A verified JWT bearer token.
    Jwt,
    /// A bearer token answered by an OAuth2 introspection endpoint (RFC 7662).
    Introspection,
    /// A backend written outside this crate; the string is its key namespace.
    Custom(&'static str),
}

impl Source {
    /// The key namespace: `ip`, `session`, `anon`, `jwt`, `introspect`, or the
    /// custom name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ip => "ip",
            Source::Session => "session",
            Source::Anonymous => "anon",
            Source::Jwt => "jwt",
            Source::Introspection => "introspect",
            Source::Custom(name) => name,
        }
    }
}

impl Source {
    /// Whether this source's identities are vouched for by default.
    const fn vouches(self) -> bool {
        matches!(self, Source::Ip | Source::Jwt | Source::Introspection)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request is: an identifier, the attributes that came with it, and the
/// backend that vouched for it.
///
/// ```
/// use auth_core::{AuthData, Source};
/// use serde_json::json;
///
/// let data = json!({"scope": "read write", "iss": "https://id.example"});
/// let auth = AuthData::new(Source::Jwt, "alice", data.as_object().unwrap().clone());
/// assert_eq!(auth.identifier(), "alice");
/// assert_eq!(auth.get("scope").and_then(|v| v.as_str()), Some("read write"));
/// assert!(auth.has_scope("write"));
/// assert_eq!(auth.key(), "jwt:https://id.example|alice");
/// ```
#[derive(Clone)]
pub struct AuthData {
    /// Shared, so that a cached identity clones without allocating.
    identifier: Arc<str>,
    /// Shared so that cached identities clone cheaply; `None` when empty, so
    /// backends without attributes allocate nothing for them.
    data: Option<Attrs>,
    source: Source,
    key: Option<Arc<str>>,
    /// Whether a verifier vouched for the identifier (see
    /// [`is_vouched`](AuthData::is_vouched)).
    vouched: bool,
}

/// The attributes: a map, or the verified JSON text of a token's claims,
/// parsed into a map only if somebody reads it (most requests only need the
/// identifier and key, and building a map of every claim costs more than
/// checking an HS256 signature).
#[derive(Clone)]
enum Attrs {
    Map(Arc<Map<String, Value>>),
    Json(Arc<JsonAttrs>),
}

struct JsonAttrs {
    /// A verified JWT's claims: a JSON object, as text the validator
    /// checked to the last string.
    json: Box<str>,
    map: OnceLock<Map<String, Value>>,
}

impl JsonAttrs {
    /// The claims but `sub` (it is the identifier).
    fn parse(&self) -> Map<String, Value> {
        // Checked by the validator: an object of valid JSON values.
        let mut map: Map<String, Value> = serde_json::from_str(&self.json).unwrap_or_default();
        map.remove("sub");
        map
    }
}

impl Attrs {
    fn map(&self) -> &Map<String, Value> {
        match self {
            Attrs::Map(map) => map,
            Attrs::Json(json) => json.map.get_or_init(|| json.parse()),
        }
    }
}

impl PartialEq for AuthData {
    fn eq(&self, other: &Self) -> bool {
        self.identifier == other.identifier
            && self.source == other.source
            && self.vouched == other.vouched
            && self.key() == other.key()
            && self.data() == other.data()
    }
}

impl AuthData {
    /// An identity with attributes. The rate-limiting key is derived from the
    /// source and identifier (see [`key`](Self::key)).
    pub fn new(source: Source, identifier: impl Into<Arc<str>>, data: Map<String, Value>) -> Self {
        Self::shared(source, identifier, Arc::new(data))
    }

    /// An identity whose attributes are shared with others (a cache entry).
    pub fn shared(
        source: Source,
        identifier: impl Into<Arc<str>>,
        data: Arc<Map<String, Value>>,
    ) -> Self {
        AuthData {
            identifier: identifier.into(),
            data: (!data.is_empty()).then_some(Attrs::Map(data)),
            vouched: source.vouches(),
            source,
            key: None,
        }
    }

    /// A verified JWT's identity: its attributes are the claims in `json`
    /// but `sub`, built on first use; `key` is its rate-limiting key, made
    /// at verification so that reading it never builds the attributes.
    pub(crate) fn from_jwt_claims(identifier: String, json: Box<str>, key: String) -> Self {
        AuthData {
            identifier: identifier.into(),
            data: Some(Attrs::Json(Arc::new(JsonAttrs {
                json,
                map: OnceLock::new(),
            }))),
            source: Source::Jwt,
            key: Some(key.into()),
            vouched: true,
        }
    }

    /// An identity with no attributes.
    pub fn bare(source: Source, identifier: impl Into<Arc<str>>) -> Self {
        AuthData {
            identifier: identifier.into(),
            data: None,
            vouched: source.vouches(),
            source,
            key: None,
        }
    }

    /// Says whether a verifier vouched for this identity (default: by its
    /// source, see [`is_vouched`](Self::is_vouched)). A backend of your own
    /// that checks what the client sends (a signature, a look-up of a
    /// session or an API key) says `true`; one that takes the client's word
    /// says `false`.
    #[must_use]
    pub fn with_vouched(mut self, vouched: bool) -> Self {
        self.vouched = vouched;
        self
    }

    /// Whether a verifier vouched for this identity, or the client chose it
    /// and nothing checked it. Vouched: a JWT (its signature), an
    /// introspected token (the provider), a signed or newly issued
    /// anonymous session (this server), the client address (the
    /// connection, or a trusted proxy). Chosen by the client: a session
    /// cookie's value (never looked up here), an unsigned anonymous id, a
    /// [`Custom`](Source::Custom) backend's identity unless it says
    /// otherwise ([`with_vouched`](Self::with_vouched)). Rate limits and
    /// exemptions tell the two apart: a client can send any identity it
    /// chooses, so it must never get the treatment of a vouched one.
    pub fn is_vouched(&self) -> bool {
        self.vouched
    }

    /// Replaces the part of the rate-limiting key after `source:`; used when
    /// several identifiers should share one key (an IPv6 /64, for example).
    pub fn with_key_part(mut self, part: impl fmt::Display) -> Self {
        self.key = Some(format!("{}:{part}", self.source).into());
        self
    }

    /// The identifier: a client address, a session id, a token's subject.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// The attributes: claims of a token, an introspection answer, or empty.
    pub fn data(&self) -> &Map<String, Value> {
        static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
        self.data.as_ref().map_or(&EMPTY, Attrs::map)
    }

    /// Takes the identifier and attributes out.
    pub fn into_parts(self) -> (String, Map<String, Value>) {
        let data = match self.data {
            None => Map::new(),
            Some(Attrs::Map(map)) => Arc::unwrap_or_clone(map),
            Some(Attrs::Json(json)) => match Arc::try_unwrap(json) {
                Ok(mut json) => json.map.take().unwrap_or_else(|| json.parse()),
                Err(shared) => Attrs::Json(shared).map().clone(),
            },
        };
        (self.identifier.to_string(), data)
    }

    /// Which backend produced this identity.
    pub fn source(&self) -> Source {
        self.source
    }

    /// One attribute.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.data().get(name)
    }

    /// Every claim as your own type `T`: for a JWT the whole payload,
    /// registered claims (`sub`, `iss`, `exp`, ...) included; otherwise the
    /// attributes (an introspection answer holds its `sub` already).
    ///
    /// ```
    /// use auth_core::{AuthData, Source};
    /// use serde_json::json;
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Mine { sub: String, tenant: u32 }
    ///
    /// let attrs = json!({"sub": "alice", "tenant": 7}).as_object().unwrap().clone();
    /// let auth = AuthData::new(Source::Introspection, "alice", attrs);
    /// let mine: Mine = auth.claims()?;
    /// assert_eq!((mine.sub.as_str(), mine.tenant), ("alice", 7));
    ///
    /// let wrong = AuthData::new(Source::Introspection, "bob", json!({"tenant": "x"}).as_object().unwrap().clone());
    /// let err = wrong.claims::<Mine>().unwrap_err();
    /// assert_eq!(err.to_string(), "claim `tenant` has an unexpected type or value");
    /// # Ok::<(), auth_core::ClaimsError>(())
    /// ```
    ///
    /// # Errors
    /// The claims do not fit `T`: the error names the field, never a claim's
    /// value.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, ClaimsError> {
        match &self.data {
            Some(Attrs::Json(json)) => {
                let mut de = serde_json::Deserializer::from_str(&json.json);
                serde_path_to_error::deserialize(&mut de).map_err(ClaimsError::from_path)
            }
            _ if self.source == Source::Jwt && !self.data().contains_key("sub") => {
                // A custom validator's claims, without the subject.
                let mut all = self.data().clone();
                all.insert("sub".into(), Value::String(self.identifier.to_string()));
                serde_path_to_error::deserialize(&all).map_err(ClaimsError::from_path)
            }
            _ => serde_path_to_error::deserialize(self.data()).map_err(ClaimsError::from_path),
        }
    }

    /// The granted scopes: the space-separated `scope` attribute (RFC 6749,
    /// RFC 9068), or the `scp` array some providers send.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let spaced = self
            .get("scope")
            .and_then(Value::as_str)
            .into_iter()
            .flat_map(|s| s.split(' ').filter(|s| !s.is_empty()));
        let listed = self
            .get("scp")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        spaced.chain(listed)
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Succeeds when every scope in `required` was granted. Otherwise:
    /// for an identity that cannot carry scopes (a client address, a
    /// session cookie, an anonymous session) the "no credentials" error for
    /// a bearer token (401 with the `Bearer` challenge: the caller should
    /// send one); for any other, the 403 `insufficient_scope` error naming
    /// all of them.
    ///
    /// # Errors
    /// [`AuthError::MissingCredentials`] or [`AuthError::InsufficientScope`].
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), AuthError> {
        if required.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else if matches!(
            self.source,
            Source::Ip | Source::Session | Source::Anonymous
        ) {
            Err(AuthError::MissingCredentials(Credential::Bearer))
        } else {
            Err(AuthError::InsufficientScope {
                required: required.join(" "),
            })
        }
    }

    /// Keycloak realm roles: `realm_access.roles`.
    pub fn realm_roles(&self) -> impl Iterator<Item = &str> {
        roles(self.get("realm_access"))
    }

    /// Keycloak roles for one client: `resource_access.<client>.roles`.
    pub fn client_roles<'a>(&'a self, client: &str) -> impl Iterator<Item = &'a str> {
        roles(self.get("resource_access").and_then(|r| r.get(client)))
    }

    /// Whether the Keycloak realm role `role` was granted.
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles().any(|r| r == role)
    }

    /// Whether `client`'s Keycloak role `role` was granted.
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.client_roles(client).any(|r| r == role)
    }

    /// Feeds the bytes of [`key`](Self::key), in order and in pieces, to `f`,
    /// without building the string: for hashing it on every request (a rate
    /// limiter does).
    ///
    /// ```
    /// use auth_core::{AuthData, Source};
    ///
    /// let auth = AuthData::bare(Source::Anonymous, "abc");
    /// let mut key = Vec::new();
    /// auth.key_bytes(|piece| key.extend_from_slice(piece));
    /// assert_eq!(key, auth.key().as_bytes());
    /// ```
    pub fn key_bytes(&self, mut f: impl FnMut(&[u8])) {
        if let Some(key) = &self.key {
            return f(key.as_bytes());
        }
        match (self.source, self.get("iss").and_then(Value::as_str)) {
            (Source::Jwt, iss) => jwt_key_pieces(iss.unwrap_or(""), &self.identifier, &mut f),
            (source, _) => {
                f(source.as_str().as_bytes());
                f(b":");
                f(self.identifier.as_bytes());
            }
        }
    }

    /// The rate-limiting key: `<source>:<identifier>`, except for JWTs, whose
    /// key is `jwt:<iss>|<sub>` (with `%` and `|` in the issuer
    /// percent-encoded), because a subject is only unique within its
    /// issuer; `jwt:|<sub>` without a string `iss`, so that no subject
    /// takes the key of another issuer's.
    pub fn key(&self) -> String {
        if let Some(key) = &self.key {
            return key.to_string();
        }
        match (self.source, self.get("iss").and_then(Value::as_str)) {
            (Source::Jwt, iss) => jwt_key(iss.unwrap_or(""), &self.identifier),
            (source, _) => format!("{source}:{}", self.identifier),
        }
    }
}

/// The string members of `value.roles` (Keycloak's role lists).
fn roles(value: Option<&Value>) -> impl Iterator<Item = &str> {
    value
        .and_then(|v| v.get("roles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Why [`AuthData::claims`] could not build the requested type. Names the
/// field (a claim's name, at most 64 characters), never a claim's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// A required claim is not there.
    #[error("claim `{0}` is missing")]
    Missing(String),
    /// A claim is there with a type or value the field does not take.
    #[error("claim `{0}` has an unexpected type or value")]
    Unexpected(String),
    /// The claims as a whole do not fit (not an object, say).
    #[error("claims have an unexpected shape")]
    Shape,
}

impl ClaimsError {
    fn from_path(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        const MAX_NAME: usize = 64;
        let short = |name: String| name.chars().take(MAX_NAME).collect::<String>();
        let path = error.path().to_string();
        let at_root = path == ".";
        // serde's own wording for a missing field: "missing field `name`"
        // (a name from the type, not a value from the token).
        let missing = error
            .inner()
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned());
        match missing {
            Some(name) if at_root => ClaimsError::Missing(short(name)),
            Some(name) => ClaimsError::Missing(short(format!("{path}.{name}"))),
            None if at_root => ClaimsError::Shape,
            None => ClaimsError::Unexpected(short(path)),
        }
    }
}

/// Feeds the pieces of `jwt:<iss>|<sub>` (see [`jwt_key`]) to `f`.
fn jwt_key_pieces(iss: &str, sub: &str, f: &mut dyn FnMut(&[u8])) {
    f(b"jwt:");
    let mut rest = iss;
    while let Some(at) = rest.find(['%', '|']) {
        f(&rest.as_bytes()[..at]);
        f(if rest.as_bytes()[at] == b'%' {
            b"%25"
        } else {
            b"%7C"
        });
        rest = &rest[at + 1..];
    }
    f(rest.as_bytes());
    f(b"|");
    f(sub.as_bytes());
}

/// `jwt:<iss>|<sub>` with `%` and `|` in the issuer percent-encoded, so no
/// two (issuer, subject) pairs give the same key.
pub(crate) fn jwt_key(iss: &str, sub: &str) -> String {
    let mut part = String::with_capacity(5 + iss.len() + sub.len());
    part.push_str("jwt:");
    for c in iss.chars() {
        match c {
            '%' => part.push_str("%25"),
            '|' => part.push_str("%7C"),
            c => part.push(c),
        }
    }
    part.push('|');
    part.push_str(sub);
    part
}

/// Shows the source and identifier and only the *names* of the attributes:
/// attribute values can hold tokens (an introspection answer carries the
/// `access_token`).
impl fmt::Debug for AuthData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthData")
            .field("source", &self.source)
            .field("identifier", &&*self.identifier)
            .field("vouched", &self.vouched)
            .field("data", &self.data().keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn jwt(data: Value) -> AuthData {
        let Value::Object(map) = data else {
            unreachable!("test data is an object")
        };
        AuthData::new(Source::Jwt, "alice", map)
    }

    #[test]
    fn keys_are_namespaced_by_source() {
        assert_eq!(AuthData::bare(Source::Ip, "1.2.3.4").key(), "ip:1.2.3.4");
        assert_eq!(AuthData::bare(Source::Session, "x").key(), "session:x");
        assert_eq!(AuthData::bare(Source::Anonymous, "x").key(), "anon:x");
        assert_eq!(
            AuthData::bare(Source::Custom("apikey"), "k").key(),
            "apikey:k"
        );
        assert_ne!(
            AuthData::bare(Source::Session, "x").key(),
            AuthData::bare(Source::Anonymous, "x").key()
        );
    }

    #[test]
    fn jwt_key_includes_issuer_and_cannot_be_confused() {
        assert_eq!(
            jwt(json!({"iss": "https://a"})).key(),
            "jwt:https://a|alice"
        );
        assert_eq!(jwt(json!({})).key(), "jwt:|alice");
        // iss "a|b" + sub "c" must not collide with iss "a" + sub "b|c".
        let one = AuthData::new(
            Source::Jwt,
            "c",
            json!({"iss": "a|b"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let two = AuthData::new(
            Source::Jwt,
            "b|c",
            json!({"iss": "a"}).as_object().cloned().unwrap_or_default(),
        );
        assert_eq!(one.key(), "jwt:a%7Cb|c");
        assert_ne!(one.key(), two.key());
    }

    #[test]
    fn key_bytes_are_the_key() {
        let cases = [
            AuthData::bare(Source::Ip, "1.2.3.4"),
            jwt(json!({"iss": "https://a%b|c|"})),
            jwt(json!({})),
            AuthData::bare(Source::Ip, "2001:db8::1").with_key_part("2001:db8::/64"),
            AuthData::bare(Source::Custom("apikey"), "k"),
        ];
        for auth in cases {
            let mut bytes = Vec::new();
            auth.key_bytes(|piece| bytes.extend_from_slice(piece));
            assert_eq!(String::from_utf8(bytes).unwrap_or_default(), auth.key());
        }
    }

    #[test]
    fn key_part_override() {
        let auth = AuthData::bare(Source::Ip, "2001:db8::1").with_key_part("2001:db8::/64");
        assert_eq!(auth.identifier(), "2001:db8::1");
        assert_eq!(auth.key(), "ip:2001:db8::/64");
    }

    #[test]
    fn typed_claims_and_scopes() {
        #[derive(Deserialize)]
        struct Claims {
            name: String,
        }
        let auth = jwt(json!({"name": "Alice", "scope": "read  admin", "scp": ["x"]}));
        let claims: Claims = auth.claims().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.name, "Alice");
        assert_eq!(auth.scopes().collect::<Vec<_>>(), ["read", "admin", "x"]);
        assert!(auth.require_scopes(&["admin", "x"]).is_ok());
        let err = auth.require_scopes(&["admin", "delete"]).unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(auth.claims::<Vec<u8>>().is_err());
    }

    #[test]
    fn debug_hides_attribute_values() {
        let auth = jwt(json!({"access_token": "secret-token-value"}));
        let debug = format!("{auth:?}");
        assert!(debug.contains("access_token"));
        assert!(!debug.contains("secret-token-value"));
    }
}
