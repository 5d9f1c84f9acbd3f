//! Cookie identities: [`SessionBackend`] reads a session cookie;
//! [`AnonSessionBackend`] also issues one when the client has none.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::backend::{Authenticated, Backend, Outcome, missing};
use crate::data::{AuthData, Source};
use crate::error::{AuthError, ConfigError, Credential};
use crate::request::{
    DEFAULT_MAX_COOKIE_HEADER_LEN, RequestView, cookie_value, is_cookie_name, is_cookie_value,
};

/// Default longest session cookie value accepted.
pub(crate) const DEFAULT_MAX_SESSION_LEN: usize = 4096;

/// Default `Max-Age` of issued anonymous session cookies: 14 days.
pub(crate) const DEFAULT_ANON_MAX_AGE: Duration = Duration::from_secs(1_209_600);

/// Shortest accepted signing secret.
pub(crate) const MIN_SIGNING_KEY_LEN: usize = 32;

impl SessionBackend {
    /// Default longest session cookie value accepted.
    pub const DEFAULT_MAX_SESSION_LEN: usize = DEFAULT_MAX_SESSION_LEN;
}

impl AnonSessionBackend {
    /// Default `Max-Age` of issued anonymous session cookies: 14 days.
    pub const DEFAULT_MAX_AGE: Duration = DEFAULT_ANON_MAX_AGE;
    /// Shortest accepted signing secret.
    pub const MIN_SIGNING_KEY_LEN: usize = MIN_SIGNING_KEY_LEN;
}

fn checked_name(name: String) -> Result<String, ConfigError> {
    if is_cookie_name(&name) {
        Ok(name)
    } else {
        Err(ConfigError::InvalidCookieName(name))
    }
}

/// Identifies a request by the value of a named session cookie (set by your
/// login flow). It does not look the session up: the value is the identity.
///
/// - Identifier: the cookie value; key `session:<value>`.
/// - Missing or empty cookie: [`AuthError::MissingCredentials`], so a chain
///   moves on.
/// - A value longer than the cap or with characters outside RFC 6265
///   `cookie-octet`: [`AuthError::InvalidCredentials`] (401).
/// - `Cookie` headers over the size cap: [`AuthError::InvalidRequest`] (400).
///
/// ```
/// use auth_core::{Backend, SessionBackend};
/// use std::time::SystemTime;
///
/// let backend = SessionBackend::new("session").unwrap();
/// let req = http::Request::builder().header("cookie", "session=s3cr3t").body(()).unwrap();
/// let who = backend.authenticate(&req, SystemTime::now()).into_done().unwrap().unwrap();
/// assert_eq!(who.auth.identifier(), "s3cr3t");
/// assert!(SessionBackend::new("bad;name").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct SessionBackend {
    name: String,
    max_value_len: usize,
    max_header_len: usize,
}

impl SessionBackend {
    /// Reads the cookie `name`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidCookieName`] unless `name` is an RFC 6265 token.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(SessionBackend {
            name: checked_name(name.into())?,
            max_value_len: DEFAULT_MAX_SESSION_LEN,
            max_header_len: DEFAULT_MAX_COOKIE_HEADER_LEN,
        })
    }

    /// Longest accepted cookie value (default 4096 bytes).
    pub fn max_value_len(mut self, len: usize) -> Self {
        self.max_value_len = len;
        self
    }

    /// Cap on the request's `Cookie` headers together (default 16 KiB).
    pub fn max_header_len(mut self, len: usize) -> Self {
        self.max_header_len = len;
        self
    }
}

impl Backend for SessionBackend {
    fn authenticate(&self, req: &dyn RequestView, _now: SystemTime) -> Outcome {
        let value = match cookie_value(req, &self.name, self.max_header_len) {
            Ok(Some(value)) if !value.is_empty() => value,
            Ok(_) => return missing(Credential::Cookie),
            Err(e) => return Outcome::err(e),
        };
        if value.len() > self.max_value_len || !is_cookie_value(value) {
            return Outcome::err(AuthError::invalid_credentials(
                Credential::Cookie,
                "malformed session cookie",
            ));
        }
        Outcome::ok(AuthData::bare(Source::Session, value))
    }
}

/// Makes new anonymous session ids.
pub(crate) type IdFactory = Arc<dyn Fn() -> String + Send + Sync>;

/// Tells ids of the issued format from others.
type IdCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The format of [`uuid_session_id`]: 32 lowercase hex digits. (Every
/// byte is looked at, without an early exit, which lets the loop run as
/// vector instructions.)
fn is_uuid_session_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .fold(true, |ok, b| ok & matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The default session id: a random (CSPRNG) UUID v4 as 32 lowercase hex
/// digits.
pub(crate) fn uuid_session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Identifies everybody: by an anonymous session cookie when the client has
/// one, and by a freshly issued one when it has not.
///
/// - Identifier: the session id; key `anon:<id>`.
/// - No cookie, an empty or malformed one, or (when signing) one whose
///   signature does not verify: a new id is issued. It identifies the current
///   request, and [`Authenticated::set_cookie`] carries the `Set-Cookie` value
///   for the response: `Path=/; HttpOnly; SameSite=Lax; Max-Age=1209600;
///   Secure` by default, built with the `cookie` crate.
/// - Ids come from a CSPRNG (UUID v4, 32 hex digits) unless you supply a
///   factory.
/// - With a [signing key](AnonSessionBuilder::signing_key) the cookie value
///   is `<id>.<issued>.<mac>`: an HMAC-SHA256 over the cookie's name, the
///   id and the time it was issued. A client cannot pick its own identity,
///   move a value to another cookie signed with the same key, or keep one
///   past the server-side maximum age (the cookie's `Max-Age`): such a value
///   is replaced by a new session. Without a key, a client can send any
///   id of the issued format it likes (such an identity is not
///   [vouched](AuthData::is_vouched) for): fine for telling browsers
///   apart, not for anything a client would want to forge.
/// - Never fails for a well-formed request; `Cookie` headers over the size
///   cap give [`AuthError::InvalidRequest`] (400).
///
/// ```
/// use auth_core::{AnonSessionBackend, Backend};
/// use std::time::SystemTime;
///
/// let anon = AnonSessionBackend::new("anon").unwrap();
/// let first = anon.authenticate(&http::Request::new(()), SystemTime::now());
/// let first = first.into_done().unwrap().unwrap();
/// let set_cookie = first.set_cookie.clone().unwrap();
/// assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
///
/// // The browser sends it back: same identity, nothing issued.
/// let pair = set_cookie.split(';').next().unwrap();
/// let again = http::Request::builder().header("cookie", pair).body(()).unwrap();
/// let again = anon.authenticate(&again, SystemTime::now()).into_done().unwrap().unwrap();
/// assert_eq!(again.auth.identifier(), first.auth.identifier());
/// assert_eq!(again.set_cookie, None);
/// ```
#[derive(Clone)]
pub struct AnonSessionBackend {
    name: String,
    cookie_template: Cookie<'static>,
    id_factory: IdFactory,
    /// Which unsigned ids a returning client may present (`None`: the
    /// default ids' format).
    accept_ids: Option<IdCheck>,
    signer: Option<Signer>,
    max_value_len: usize,
    max_header_len: usize,
}

/// Signs and checks anonymous session values: `<id>.<issued>.<mac>`.
#[derive(Clone)]
struct Signer {
    /// Keyed once; cloned per use.
    mac: Hmac<Sha256>,
    /// Seconds a signed value is honoured after it was issued.
    max_age: u64,
}

/// Clock skew tolerated on a value's issue time.
const ISSUE_SKEW: u64 = 60;

impl Signer {
    fn mac(&self, name: &str, id: &str, issued: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        // Names are tokens and ids cookie octets: neither holds a NUL.
        for part in [
            b"whois-auth anonymous session v1".as_slice(),
            name.as_bytes(),
            id.as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\0");
        }
        mac.update(issued.as_bytes());
        mac
    }

    fn sign(&self, name: &str, id: &str, now: u64) -> String {
        let issued = now.to_string();
        let tag = self.mac(name, id, &issued).finalize().into_bytes();
        format!("{id}.{issued}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The id of a value signed for cookie `name`, issued no more than
    /// `max_age` before `now` (and not in the future).
    fn verify<'v>(&self, name: &str, value: &'v str, now: u64) -> Option<&'v str> {
        let (rest, tag) = value.rsplit_once('.')?;
        let (id, issued) = rest.rsplit_once('.')?;
        if id.is_empty() || issued.is_empty() || issued.len() > 20 {
            return None;
        }
        let at: u64 = issued
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| issued.parse().ok())??;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(name, id, issued).verify_slice(&tag).ok()?;
        let fresh = at <= now.saturating_add(ISSUE_SKEW) && now.saturating_sub(at) < self.max_age;
        fresh.then_some(id)
    }
}

impl AnonSessionBackend {
    /// The defaults, with cookie `name`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidCookieName`] unless `name` is an RFC 6265 token.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(name).build()
    }

    /// A builder for cookie attributes, the id factory and signing.
    pub fn builder(name: impl Into<String>) -> AnonSessionBuilder {
        AnonSessionBuilder {
            name: name.into(),
            max_age: DEFAULT_ANON_MAX_AGE,
            secure: true,
            same_site: Some(SameSite::Lax),
            path: "/".into(),
            domain: None,
            id_factory: Arc::new(uuid_session_id),
            custom_factory: false,
            accept_ids: None,
            signing_secret: None,
            max_header_len: DEFAULT_MAX_COOKIE_HEADER_LEN,
        }
    }

    /// The session id in a cookie value, if the value is acceptable at
    /// `now` (seconds since the epoch).
    fn existing_id<'v>(&self, value: &'v str, now: u64) -> Option<&'v str> {
        if value.is_empty() || value.len() > self.max_value_len || !is_cookie_value(value) {
            return None;
        }
        match &self.signer {
            None => {
                let accepted = match &self.accept_ids {
                    None => is_uuid_session_id(value),
                    Some(check) => check(value),
                };
                accepted.then_some(value)
            }
            Some(signer) => signer.verify(&self.name, value, now),
        }
    }

    /// A new identity and the `Set-Cookie` value that carries it.
    fn issue(&self, now: u64) -> Result<Authenticated, AuthError> {
        let id = (self.id_factory)();
        if id.is_empty() || id.len() > self.max_value_len || !is_cookie_value(&id) {
            return Err(AuthError::Misconfigured {
                reason: "the session id factory made an id that is not a cookie value",
            });
        }
        let mut cookie = self.cookie_template.clone();
        match &self.signer {
            None => cookie.set_value(id.clone()),
            Some(signer) => cookie.set_value(signer.sign(&self.name, &id, now)),
        }
        // Made here: nobody chose it.
        let auth = AuthData::bare(Source::Anonymous, id).with_vouched(true);
        Ok(Authenticated::new(auth).with_set_cookie(cookie.to_string()))
    }
}

impl Backend for AnonSessionBackend {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        let now = crate::jwt::unix_seconds(now);
        let existing = match cookie_value(req, &self.name, self.max_header_len) {
            Ok(value) => value.and_then(|v| self.existing_id(v, now)),
            Err(e) => return Outcome::err(e),
        };
        match existing {
            // Signed: issued here; unsigned: the client's word.
            Some(id) => Outcome::ok(
                AuthData::bare(Source::Anonymous, id).with_vouched(self.signer.is_some()),
            ),
            None => Outcome::Done(self.issue(now)),
        }
    }
}

impl fmt::Debug for AnonSessionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnonSessionBackend")
            .field("cookie", &self.cookie_template.to_string())
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AnonSessionBackend`]; see [`AnonSessionBackend::builder`].
#[must_use]
pub struct AnonSessionBuilder {
    name: String,
    max_age: Duration,
    secure: bool,
    same_site: Option<SameSite>,
    path: String,
    domain: Option<String>,
    id_factory: IdFactory,
    custom_factory: bool,
    accept_ids: Option<IdCheck>,
    signing_secret: Option<Vec<u8>>,
    max_header_len: usize,
}

impl AnonSessionBuilder {
    /// `Max-Age` of issued cookies (default 14 days).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Whether issued cookies are `Secure` (default `true`). Turn off only
    /// for plain-HTTP development: browsers drop `Secure` cookies from
    /// `http://` origins other than localhost.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `SameSite` attribute: `Some(Lax)` (default), `Some(Strict)`,
    /// `Some(None)` (requires `Secure`), or `None` to leave it unset.
    pub fn same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A `Domain` attribute (default: none, a host-only cookie).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Where new session ids come from (default: a random (CSPRNG) UUID v4
    /// as 32 lowercase hex digits). Ids must be RFC 6265 cookie values and
    /// unguessable.
    pub fn id_factory(mut self, factory: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.id_factory = Arc::new(factory);
        self.custom_factory = true;
        self
    }

    /// Which unsigned ids a returning client may present (default: the
    /// format of the default ids, 32 lowercase hex digits); any other
    /// value is replaced by a new session, as a malformed one is. Unsigned
    /// ids of an [id factory](Self::id_factory) of your own need this
    /// check (`build` says so). Unsigned ids
    /// are still the client's choice within the format: sign them
    /// ([`signing_key`](Self::signing_key)) to know they were issued here.
    pub fn accept_ids(mut self, check: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.accept_ids = Some(Arc::new(check));
        self
    }

    /// Signs issued ids with HMAC-SHA256 under `secret` (at least 32 bytes
    /// of high entropy), binding the cookie's name and the issue time; a
    /// signed value is honoured for the cookie's `Max-Age`.
    pub fn signing_key(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.signing_secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Cap on the request's `Cookie` headers together (default 16 KiB).
    pub fn max_header_len(mut self, len: usize) -> Self {
        self.max_header_len = len;
        self
    }

    /// Checks the settings and builds the backend.
    ///
    /// # Errors
    /// An invalid cookie name, path or domain; a signing secret under 32
    /// bytes; `SameSite=None` without `Secure` (browsers reject it); a
    /// `Max-Age` beyond what a cookie can say.
    pub fn build(self) -> Result<AnonSessionBackend, ConfigError> {
        let name = checked_name(self.name)?;
        let attribute_ok = |v: &str| v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';');
        if !attribute_ok(&self.path) || !self.path.starts_with('/') {
            return Err(ConfigError::Invalid {
                name: "path",
                reason: "must start with '/' and hold no ';' or control characters",
            });
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !attribute_ok(domain))
        {
            return Err(ConfigError::Invalid {
                name: "domain",
                reason: "must be non-empty and hold no ';' or control characters",
            });
        }
        if self.same_site == Some(SameSite::None) && !self.secure {
            return Err(ConfigError::Invalid {
                name: "same_site",
                reason: "SameSite=None requires Secure",
            });
        }
        let max_age = i64::try_from(self.max_age.as_secs()).map_err(|_| ConfigError::Invalid {
            name: "max_age",
            reason: "too large",
        })?;
        let signer = match self.signing_secret {
            Some(secret) if secret.len() < MIN_SIGNING_KEY_LEN => {
                return Err(ConfigError::KeyTooShort {
                    len: secret.len(),
                    min: MIN_SIGNING_KEY_LEN,
                });
            }
            Some(secret) => Some(Signer {
                mac: Hmac::<Sha256>::new_from_slice(&secret).map_err(|_| ConfigError::Invalid {
                    name: "signing_key",
                    reason: "not usable as an HMAC key",
                })?,
                max_age: self.max_age.as_secs(),
            }),
            None => None,
        };
        let mut template = Cookie::build((name.clone(), ""))
            .path(self.path)
            .http_only(true)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age));
        if let Some(same_site) = self.same_site {
            template = template.same_site(same_site);
        }
        if let Some(domain) = self.domain {
            template = template.domain(domain);
        }
        if self.accept_ids.is_none() && self.custom_factory && signer.is_none() {
            return Err(ConfigError::Invalid {
                name: "accept_ids",
                reason: "unsigned ids of an id factory need accept_ids, a check of their format",
            });
        }
        let accept_ids = self.accept_ids;
        // The signature adds `.<issued>.<43 characters>`.
        let max_value_len = if signer.is_some() {
            DEFAULT_MAX_SESSION_LEN + 80
        } else {
            DEFAULT_MAX_SESSION_LEN
        };
        Ok(AnonSessionBackend {
            name,
            cookie_template: template.build(),
            id_factory: self.id_factory,
            accept_ids,
            signer,
            max_value_len,
            max_header_len: self.max_header_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn with_cookies(lines: &[&str]) -> http::Request<()> {
        let mut req = http::Request::new(());
        for line in lines {
            if let Ok(v) = http::HeaderValue::from_str(line) {
                req.headers_mut().append(http::header::COOKIE, v);
            }
        }
        req
    }

    fn run(backend: &dyn Backend, lines: &[&str]) -> Result<Authenticated, AuthError> {
        backend
            .authenticate(&with_cookies(lines), SystemTime::UNIX_EPOCH)
            .into_done()
            .unwrap_or_else(|| Err(AuthError::provider_unavailable("unexpected step")))
    }

    /// The `name=value` pair of a `Set-Cookie` value.
    fn pair(set_cookie: &str) -> &str {
        set_cookie.split(';').next().unwrap_or_default()
    }

    #[test]
    fn session_cookie() {
        let b = SessionBackend::new("sid").unwrap_or_else(|e| panic!("{e}"));
        let who =
            run(&b, &["a=1; sid=abc=def"]).map(|a| (a.auth.identifier().to_owned(), a.auth.key()));
        assert_eq!(who, Ok(("abc=def".into(), "session:abc=def".into())));
        for absent in [&[][..], &["other=1"][..], &["sid="][..], &["sid=\"\""][..]] {
            assert_eq!(
                run(&b, absent),
                Err(AuthError::MissingCredentials(Credential::Cookie))
            );
        }
        let long = format!("sid={}", "a".repeat(DEFAULT_MAX_SESSION_LEN + 1));
        assert_eq!(run(&b, &[&long]).map_err(|e| e.status().as_u16()), Err(401));
        assert_eq!(
            run(&b, &["sid=a\"b"]).map_err(|e| e.status().as_u16()),
            Err(401)
        );
        let huge = format!("sid=1; x={}", "y".repeat(100 * 1024));
        assert_eq!(run(&b, &[&huge]).map_err(|e| e.status().as_u16()), Err(400));
    }

    #[test]
    fn cookie_names_are_validated_at_construction() {
        for bad in ["", "a;b", "a\r\nSet-Cookie: x", "a b", "a=b", "a\nb"] {
            assert!(
                matches!(
                    SessionBackend::new(bad),
                    Err(ConfigError::InvalidCookieName(_))
                ),
                "{bad:?}"
            );
            assert!(AnonSessionBackend::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn anon_issues_with_secure_defaults_and_reuses() {
        let anon = AnonSessionBackend::new("anon").unwrap_or_else(|e| panic!("{e}"));
        let first = run(&anon, &[]).unwrap_or_else(|e| panic!("{e}"));
        let id = first.auth.identifier().to_owned();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(first.auth.source(), Source::Anonymous);
        let set_cookie = first.set_cookie.unwrap_or_default();
        let mut attributes: Vec<&str> = set_cookie.split("; ").skip(1).collect();
        attributes.sort_unstable();
        assert_eq!(
            attributes,
            [
                "HttpOnly",
                "Max-Age=1209600",
                "Path=/",
                "SameSite=Lax",
                "Secure"
            ]
        );
        assert_eq!(pair(&set_cookie), format!("anon={id}"));

        assert!(first.auth.is_vouched(), "issued here");
        let again = run(&anon, &[pair(&set_cookie)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.auth.identifier(), id);
        assert_eq!(again.set_cookie, None);
        assert!(!again.auth.is_vouched(), "unsigned: the client's word");

        // Only the issued format is taken back; anything else is replaced.
        for invented in ["operator", "<script>", "0123456789ABCDEF0123456789ABCDEF"] {
            let replaced =
                run(&anon, &[&format!("anon={invented}")]).unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(replaced.auth.identifier(), invented);
            assert!(replaced.set_cookie.is_some(), "{invented}");
        }

        let other = run(&anon, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            other.auth.identifier(),
            id,
            "each new client gets its own id"
        );
    }

    #[test]
    fn anon_replaces_malformed_values() {
        let anon = AnonSessionBackend::new("anon").unwrap_or_else(|e| panic!("{e}"));
        for bad in ["anon=", "anon=a\"b", "anon=a\\b"] {
            let who = run(&anon, &[bad]).unwrap_or_else(|e| panic!("{e}"));
            assert!(who.set_cookie.is_some(), "{bad}");
        }
        let long = format!("anon={}", "a".repeat(DEFAULT_MAX_SESSION_LEN + 1));
        assert!(run(&anon, &[&long]).is_ok_and(|w| w.set_cookie.is_some()));
    }

    #[test]
    fn anon_attributes_are_configurable() {
        let anon = AnonSessionBackend::builder("__Host-anon")
            .max_age(Duration::from_secs(60))
            .same_site(Some(SameSite::Strict))
            .secure(true)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let set_cookie = run(&anon, &[])
            .ok()
            .and_then(|w| w.set_cookie)
            .unwrap_or_default();
        assert!(set_cookie.contains("SameSite=Strict") && set_cookie.contains("Max-Age=60"));
        let unset = AnonSessionBackend::builder("a")
            .same_site(None)
            .secure(false)
            .domain("example.com")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let set_cookie = run(&unset, &[])
            .ok()
            .and_then(|w| w.set_cookie)
            .unwrap_or_default();
        assert!(!set_cookie.contains("SameSite") && !set_cookie.contains("Secure"));
        assert!(set_cookie.contains("Domain=example.com"));

        let none_insecure = AnonSessionBackend::builder("a")
            .same_site(Some(SameSite::None))
            .secure(false);
        assert!(none_insecure.build().is_err());
        assert!(
            AnonSessionBackend::builder("a")
                .path("nope")
                .build()
                .is_err()
        );
        assert!(
            AnonSessionBackend::builder("a")
                .path("/a;b")
                .build()
                .is_err()
        );
        assert!(
            AnonSessionBackend::builder("a")
                .domain("a\r\nb")
                .build()
                .is_err()
        );
        assert!(
            AnonSessionBackend::builder("a")
                .max_age(Duration::from_secs(u64::MAX))
                .build()
                .is_err()
        );
    }

    #[test]
    fn custom_id_factory_and_a_broken_one() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&n);
        let factory = move || format!("id{}", counter.fetch_add(1, Ordering::SeqCst));
        let unchecked = AnonSessionBackend::builder("a").id_factory(factory.clone());
        assert!(unchecked.build().is_err(), "unsigned: accept_ids is needed");
        let anon = AnonSessionBackend::builder("a")
            .id_factory(factory.clone())
            .accept_ids(|id| id.starts_with("id"))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            run(&anon, &[]).map(|w| w.auth.identifier().to_owned()),
            Ok("id0".into())
        );
        let returning = run(&anon, &["a=id7"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(returning.auth.identifier(), "id7");
        assert!(run(&anon, &["a=other"]).is_ok_and(|w| w.set_cookie.is_some()));
        let signed = AnonSessionBackend::builder("a")
            .id_factory(factory)
            .signing_key([7u8; 32]);
        assert!(signed.build().is_ok(), "signed ids need no format");
        let broken = AnonSessionBackend::builder("a")
            .id_factory(|| "bad value; Secure".into())
            .accept_ids(|_| true)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(run(&broken, &[]).map_err(|e| e.status().as_u16()), Err(500));
    }

    #[test]
    fn signed_ids_reject_tampering() {
        let secret = [7u8; 32];
        let anon = AnonSessionBackend::builder("anon")
            .signing_key(secret)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let first = run(&anon, &[]).unwrap_or_else(|e| panic!("{e}"));
        let id = first.auth.identifier().to_owned();
        let set_cookie = first.set_cookie.unwrap_or_default();
        let sent = pair(&set_cookie).to_owned();
        assert_ne!(sent, format!("anon={id}"), "the value carries a signature");
        assert!(sent.starts_with(&format!("anon={id}.0.")), "{sent}");

        let again = run(&anon, &[&sent]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (again.auth.identifier(), again.set_cookie),
            (id.as_str(), None)
        );

        // Flip one byte anywhere in the value: rejected, a new id issued.
        let value_start = "anon=".len();
        for at in [value_start, value_start + 20, sent.len() - 1] {
            let mut bytes = sent.clone().into_bytes();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap_or_default();
            let who = run(&anon, &[&tampered]).unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(who.auth.identifier(), id, "flipped byte at {at}");
            assert!(who.set_cookie.is_some());
        }
        // A self-chosen plain id is not accepted either.
        let chosen = run(&anon, &["anon=0123456789abcdef0123456789abcdef"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(chosen.auth.identifier(), "0123456789abcdef0123456789abcdef");
        // Another key does not verify it.
        let other = AnonSessionBackend::builder("anon")
            .signing_key([8u8; 32])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            run(&other, &[&sent]).map(|w| w.auth.identifier().to_owned()),
            Ok(id)
        );
    }

    fn at(backend: &dyn Backend, cookie: &str, secs: u64) -> Authenticated {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let req = with_cookies(&[cookie]);
        match backend.authenticate(&req, now) {
            Outcome::Done(Ok(who)) => who,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signed_ids_are_bound_to_the_cookie_name_and_a_maximum_age() {
        let secret = [7u8; 32];
        let day = 86_400;
        let signed = |name: &str| {
            AnonSessionBackend::builder(name)
                .signing_key(secret)
                .max_age(Duration::from_secs(day))
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (anon, other) = (signed("anon"), signed("other"));
        let now = 1_800_000_000;
        let first = at(&anon, "", now);
        let id = first.auth.identifier().to_owned();
        let value = pair(&first.set_cookie.unwrap_or_default())["anon=".len()..].to_owned();
        assert_eq!(
            at(&anon, &format!("anon={value}"), now + day - 1)
                .auth
                .identifier(),
            id
        );
        // Older than the maximum age: refused, a new session issued.
        let late = at(&anon, &format!("anon={value}"), now + day);
        assert_ne!(late.auth.identifier(), id);
        assert!(late.set_cookie.is_some());
        // Issued "in the future" (beyond the skew): refused.
        assert_ne!(
            at(&anon, &format!("anon={value}"), now - 61)
                .auth
                .identifier(),
            id
        );
        assert_eq!(
            at(&anon, &format!("anon={value}"), now - 60)
                .auth
                .identifier(),
            id
        );
        // The same key, another cookie name: refused.
        let moved = at(&other, &format!("other={value}"), now);
        assert_ne!(moved.auth.identifier(), id);
        assert!(moved.set_cookie.is_some());
        // A forged issue time does not verify.
        let (rest, tag) = value.rsplit_once('.').unwrap_or_default();
        let (id_part, _) = rest.rsplit_once('.').unwrap_or_default();
        let forged = format!("anon={id_part}.{}.{tag}", now + 1000);
        assert_ne!(at(&anon, &forged, now + day + 10).auth.identifier(), id);
        // Hostile shapes never panic and are replaced.
        for shape in [
            "anon=..",
            "anon=a.b.c",
            "anon=a.99999999999999999999999.x",
            "anon=.1.AAAA",
        ] {
            assert!(at(&anon, shape, 1 << 40).set_cookie.is_some(), "{shape}");
        }
    }

    #[test]
    fn short_signing_key_is_a_config_error() {
        let err = AnonSessionBackend::builder("a")
            .signing_key([1u8; 16])
            .build()
            .err();
        assert_eq!(err, Some(ConfigError::KeyTooShort { len: 16, min: 32 }));
    }

    #[test]
    fn debug_shows_no_key() {
        let anon = AnonSessionBackend::builder("a")
            .signing_key(*b"0123456789abcdef0123456789abcdef")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{anon:?}");
        assert!(debug.contains("signed: true") && !debug.contains("0123456789"));
    }
}
