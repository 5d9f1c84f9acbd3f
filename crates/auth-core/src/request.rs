//! Reading a request: the [`RequestView`] trait, the [`PeerAddr`] extension,
//! and readers for bearer tokens and cookies.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::ControlFlow;

use crate::error::{AuthError, Credential};

/// Default cap on a bearer token's length, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Default cap on the total length of a request's `Cookie` headers.
pub const DEFAULT_MAX_COOKIE_HEADER_LEN: usize = 16 * 1024;

/// A read-only view of the request parts authentication needs.
///
/// Implemented for [`http::request::Parts`] and [`http::Request<B>`] here, and
/// for actix-web's request types in `auth-actix`. Object safe: backends take
/// `&dyn RequestView`. Implementations read the framework's own header map;
/// nothing is copied.
pub trait RequestView {
    /// Calls `f` with each value of the header `name` (case-insensitive), in
    /// the order they arrived, until `f` breaks.
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>);

    /// The address of the connection's other end, if the server supplied it.
    fn peer_addr(&self) -> Option<SocketAddr>;

    /// The request method, as sent (`GET`, `OPTIONS`, ...).
    fn method(&self) -> &str;

    /// The route pattern the request matched (`/users/{id}`, never the
    /// concrete path), if the server knows it, for log lines such as a rate
    /// limit's 429. The adapters supply it (axum's `MatchedPath`,
    /// actix-web's `match_pattern`); `None` by default. Called only to
    /// write such a line, or, before a shared store's round trip, while
    /// its level is enabled.
    fn route(&self) -> Option<Cow<'_, str>> {
        None
    }

    /// The first value of the header `name`.
    fn header<'a>(&'a self, name: &str) -> Option<&'a [u8]> {
        let mut first = None;
        self.for_each_header(name, &mut |value| {
            first = Some(value);
            ControlFlow::Break(())
        });
        first
    }
}

impl<T: RequestView + ?Sized> RequestView for &T {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        (**self).for_each_header(name, f);
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        (**self).peer_addr()
    }

    fn method(&self) -> &str {
        (**self).method()
    }

    fn route(&self) -> Option<Cow<'_, str>> {
        (**self).route()
    }
}

/// The connection's peer address, as a request extension.
///
/// Adapters (or your own server) insert it into the `http` request's
/// extensions; the `http` implementations of [`RequestView`] read it from
/// there.
///
/// ```
/// use auth_core::PeerAddr;
/// use auth_core::step::RequestView;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("192.0.2.7:5000".parse().unwrap()));
/// assert_eq!(req.peer_addr(), Some("192.0.2.7:5000".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

fn visit_header_map<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
    f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>,
) {
    // The names the core reads every request skip `HeaderName` parsing.
    let values = match name {
        "cookie" => headers.get_all(&http::header::COOKIE),
        "authorization" => headers.get_all(&http::header::AUTHORIZATION),
        "x-forwarded-for" => headers.get_all(&X_FORWARDED_FOR),
        "forwarded" => headers.get_all(&http::header::FORWARDED),
        other => headers.get_all(other),
    };
    for value in values {
        if f(value.as_bytes()).is_break() {
            return;
        }
    }
}

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

impl RequestView for http::request::Parts {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        visit_header_map(&self.headers, name, f);
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.extensions.get::<PeerAddr>().map(|p| p.0)
    }

    fn method(&self) -> &str {
        self.method.as_str()
    }
}

impl<B> RequestView for http::Request<B> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        visit_header_map(self.headers(), name, f);
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.extensions().get::<PeerAddr>().map(|p| p.0)
    }

    fn method(&self) -> &str {
        http::Request::method(self).as_str()
    }
}

/// A byte class as a lookup table (one load per byte instead of a chain of
/// comparisons; right for short values such as cookies: long bearer tokens
/// use vector compares, see `is_token68_body`).
macro_rules! byte_table {
    (|$b:ident| $class:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $class;
            i += 1;
        }
        table
    }};
}

/// RFC 6265 `cookie-octet`: printable ASCII except space, `"`, `,`, `;`, `\`.
static COOKIE_OCTET: [bool; 256] =
    byte_table!(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E));

/// Whether every byte is in the class. Branch-free (no early exit), so the
/// loop unrolls: inputs are short and almost always valid.
fn all_in(bytes: &[u8], class: &[bool; 256]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & class[usize::from(b)])
}

/// Whether `b` may appear in a `token68` before its `=` padding. Written
/// as comparisons, not a table: LLVM turns them into 16-byte vector
/// compares, which a table lookup per byte cannot be (a bearer token is
/// hundreds of bytes, and it is checked on every request, cache hit or not).
fn is_token68_body(b: u8) -> bool {
    // `b | 0x20` folds A-Z onto a-z and nothing else onto a-z.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether `token` is an RFC 9110 `token68`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..body_len];
    // Whole chunks without an early exit (so they vectorize), then the tail.
    let mut chunks = body.chunks_exact(32);
    let chunks_ok = chunks.all(|chunk| chunk.iter().fold(true, |ok, &b| ok & is_token68_body(b)));
    body_len > 0 && chunks_ok && chunks.remainder().iter().all(|&b| is_token68_body(b))
}

/// Reads the bearer token of the `Authorization` header (RFC 6750 §2.1).
///
/// - No `Authorization` header, or only other schemes (`Basic …`):
///   [`AuthError::MissingCredentials`], so a chain may try its next backend.
/// - The scheme is matched case-insensitively (RFC 9110 §11.1), and may be
///   followed by spaces or tabs: `bearer<TAB>abc` is a bearer token.
/// - A request that names the `Bearer` scheme anywhere (in any
///   `Authorization` line, also after a comma) but is not exactly one
///   well-formed bearer credential is never "no credentials": more than one
///   `Authorization` header, another credential before it, `Bearer` with no
///   token, or a token that is not `token68` is
///   [`AuthError::InvalidRequest`] (400); a token longer than `max_len`
///   bytes is [`AuthError::InvalidCredentials`] (401), checked before
///   looking at its characters.
///
/// ```
/// use auth_core::step::{bearer_token, DEFAULT_MAX_TOKEN_LEN};
///
/// let req = http::Request::builder()
///     .header("authorization", "bearer abc.def-ghi")
///     .body(())
///     .unwrap();
/// assert_eq!(bearer_token(&req, DEFAULT_MAX_TOKEN_LEN), Ok("abc.def-ghi"));
///
/// // A bad bearer credential after another one is refused, not ignored.
/// let req = http::Request::builder()
///     .header("authorization", "Basic dXNlcjpwYXNz")
///     .header("authorization", "Bearer not token68!")
///     .body(())
///     .unwrap();
/// assert_eq!(bearer_token(&req, DEFAULT_MAX_TOKEN_LEN).unwrap_err().status(), 400);
/// ```
///
/// # Errors
/// As listed above.
pub fn bearer_token(req: &dyn RequestView, max_len: usize) -> Result<&str, AuthError> {
    bearer_bytes(req, max_len).and_then(token68)
}

/// Whether `b` is linear whitespace in a header value (SP or HTAB: header
/// values carry no CR or LF).
fn is_lws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The scheme at the start of `value` and what follows it.
fn split_scheme(value: &[u8]) -> (&[u8], &[u8]) {
    let value = value.trim_ascii_start();
    match value.iter().position(|b| is_lws(*b) || *b == b',') {
        Some(end) => value.split_at(end),
        None => (value, &[][..]),
    }
}

/// Whether a header line names the `Bearer` scheme: as its first
/// credential, or as one after a comma.
fn names_bearer(line: &[u8]) -> bool {
    let is_bearer = |part: &[u8]| split_scheme(part).0.eq_ignore_ascii_case(b"bearer");
    is_bearer(line) || line.split(|b| *b == b',').skip(1).any(is_bearer)
}

/// [`bearer_token`] up to, not including, the `token68` check: for a cache
/// of tokens that all passed it, whose hit then needs no second look.
pub(crate) fn bearer_bytes(req: &dyn RequestView, max_len: usize) -> Result<&[u8], AuthError> {
    let mut first = None;
    let mut count = 0_usize;
    let mut bearer_named = false;
    req.for_each_header("authorization", &mut |value| {
        count += 1;
        first.get_or_insert(value);
        bearer_named = bearer_named || names_bearer(value);
        ControlFlow::Continue(())
    });
    let (Some(value), true) = (first, bearer_named) else {
        return Err(AuthError::MissingCredentials(Credential::Bearer));
    };
    let invalid = |reason| AuthError::InvalidRequest {
        credential: Credential::Bearer,
        reason,
    };
    if count > 1 {
        return Err(invalid("more than one Authorization header"));
    }
    let (scheme, rest) = split_scheme(value);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(invalid("a bearer token must be the only credential"));
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(invalid("empty bearer token"));
    }
    if token.len() > max_len {
        return Err(AuthError::invalid_credentials(
            Credential::Bearer,
            "bearer token exceeds the size limit",
        ));
    }
    Ok(token)
}

/// The token, if it is a `token68` string (then also ASCII).
pub(crate) fn token68(token: &[u8]) -> Result<&str, AuthError> {
    let not_token68 = || AuthError::InvalidRequest {
        credential: Credential::Bearer,
        reason: "bearer token is not a token68 string",
    };
    if !is_token68(token) {
        return Err(not_token68());
    }
    std::str::from_utf8(token).map_err(|_| not_token68())
}

/// Whether every byte is an RFC 6265 `cookie-octet` (printable ASCII except
/// space, `"`, `,`, `;` and `\`).
pub fn is_cookie_value(value: &str) -> bool {
    all_in(value.as_bytes(), &COOKIE_OCTET)
}

/// Whether `name` is an RFC 6265 cookie name (an RFC 9110 `token`).
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Reads the cookie `name` from the request's `Cookie` headers.
///
/// - Every `Cookie` header line is read (HTTP/2 sends one per cookie), with
///   the `cookie` crate's parser; values may contain `=`.
/// - **Duplicate names: the first occurrence wins.** Browsers send the
///   cookie with the most specific path first (RFC 6265 §5.4), and a later
///   duplicate is more likely to be planted by a subdomain.
/// - A value wrapped in one pair of double quotes (allowed by RFC 6265) is
///   returned without them. Values are not percent-decoded.
/// - Lines that are not UTF-8 and pairs that do not parse are skipped.
/// - `Ok(None)` when the cookie is absent.
///
/// ```
/// use auth_core::step::{cookie_value, DEFAULT_MAX_COOKIE_HEADER_LEN};
///
/// let req = http::Request::builder()
///     .header("cookie", "theme=dark; sid=a=b")
///     .header("cookie", "sid=second")
///     .body(())
///     .unwrap();
/// assert_eq!(cookie_value(&req, "sid", DEFAULT_MAX_COOKIE_HEADER_LEN), Ok(Some("a=b")));
/// ```
///
/// # Errors
/// [`AuthError::InvalidRequest`] (400) when the `Cookie` headers together
/// exceed `max_header_len` bytes; nothing past the cap is parsed.
pub fn cookie_value<'a>(
    req: &'a dyn RequestView,
    name: &str,
    max_header_len: usize,
) -> Result<Option<&'a str>, AuthError> {
    let mut seen = 0_usize;
    let mut too_large = false;
    let mut found = None;
    req.for_each_header("cookie", &mut |line| {
        seen = seen.saturating_add(line.len());
        if seen > max_header_len {
            too_large = true;
            return ControlFlow::Break(());
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return ControlFlow::Continue(());
        };
        found = find_in_line(line, name);
        if found.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if too_large {
        return Err(AuthError::InvalidRequest {
            credential: Credential::Cookie,
            reason: "cookie header exceeds the size limit",
        });
    }
    Ok(found)
}

/// The value of the first pair named `name` in one `Cookie` line.
///
/// Same answer as scanning `Cookie::split_parse(line)` for the first pair
/// with that name (a property test checks it), but the `cookie` crate only
/// parses the pairs that can be ours: a pair starts at the line's start or
/// after a `;` and optional whitespace, so other pairs are skipped by a
/// substring search instead of being built (and copied) one by one.
fn find_in_line<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    // Candidate starts: each occurrence of the name's first byte, found
    // with SIMD `memchr`, then a prefix check. (A UTF-8 lead byte never
    // occurs inside another character, so every hit is a char boundary.)
    let first = *name.as_bytes().first()?; // an empty name matches nothing
    if name.contains('=') {
        return None; // the parser splits at the first `=`: never this name
    }
    let bytes = line.as_bytes();
    let mut from = 0;
    let mut starts = std::iter::from_fn(|| {
        while let Some(offset) = memchr::memchr(first, &bytes[from..]) {
            let at = from + offset;
            from = at + 1;
            if bytes[at..].starts_with(name.as_bytes()) {
                return Some(at);
            }
        }
        None
    });
    starts.find_map(|at| {
        let before = line[..at].trim_end();
        if !(before.is_empty() || before.ends_with(';')) {
            return None;
        }
        // The pair runs to the next `;`: what `split_parse` would hand
        // `Cookie::parse`, which takes the text before the first `=`,
        // trimmed, as the name, and the rest, trimmed, as the value. The
        // pair starts with our name, so it is ours when only whitespace
        // lies between the name and that `=`. (Building a `Cookie` to learn
        // this cost more than the rest of the anonymous-session backend.)
        let end = memchr::memchr(b';', &bytes[at..]).map_or(line.len(), |k| at + k);
        let rest = &line[at + name.len()..end];
        let eq = rest.find('=')?;
        if !rest[..eq].trim().is_empty() {
            return None;
        }
        Some(trim_quotes(rest[eq + 1..].trim()))
    })
}

fn trim_quotes(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::Cookie;
    use proptest::prelude::*;

    #[test]
    fn token68_body_is_exactly_the_rfc_set() {
        for b in 0..=u8::MAX {
            let rfc =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_token68_body(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn token68_is_checked_in_chunks_and_tail() {
        for len in [1, 31, 32, 33, 64, 95, 200] {
            let good = vec![b'a'; len];
            assert!(is_token68(&good), "{len}");
            for at in [0, len / 2, len - 1] {
                let mut bad = good.clone();
                bad[at] = b'"';
                assert!(!is_token68(&bad), "{len} bad at {at}");
            }
            let mut padded = good.clone();
            padded.extend_from_slice(b"==");
            assert!(is_token68(&padded));
            padded.push(b'a');
            assert!(!is_token68(&padded), "'=' only at the end");
        }
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b""));
    }

    fn req(headers: &[(&str, &[u8])]) -> http::Request<()> {
        let mut req = http::Request::new(());
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                req.headers_mut().append(name, value);
            }
        }
        req
    }

    fn bearer(headers: &[(&str, &[u8])]) -> Result<String, AuthError> {
        bearer_token(&req(headers), DEFAULT_MAX_TOKEN_LEN).map(str::to_owned)
    }

    fn status(r: Result<String, AuthError>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |_| 200)
    }

    #[test]
    fn bearer_accepts_any_scheme_case_and_token68() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer   abc  "] {
            assert_eq!(
                bearer(&[("authorization", value.as_bytes())]),
                Ok("abc".into())
            );
        }
        let t = "eyJ0eXAi.eyJzdWIi.c2ln-_~+/==";
        assert_eq!(
            bearer(&[("Authorization", format!("Bearer {t}").as_bytes())]),
            Ok(t.into())
        );
    }

    #[test]
    fn bearer_missing_or_other_scheme_is_missing() {
        for headers in [
            &[][..],
            &[("authorization", &b"Basic dXNlcjpwYXNz"[..])][..],
            &[("authorization", &b"Bearerabc"[..])][..],
            &[
                ("authorization", &b"Basic dXNlcjpwYXNz"[..]),
                ("authorization", &b"Digest username=\"bearer\""[..]),
            ][..],
        ] {
            assert_eq!(
                bearer(headers),
                Err(AuthError::MissingCredentials(Credential::Bearer))
            );
        }
    }

    #[test]
    fn bearer_malformed_is_400() {
        for value in [
            "Bearer",
            "Bearer ",
            "bearer    ",
            "Bearer a b",
            "Bearer a=b",
            "Bearer ===",
            "Bearer é",
        ] {
            assert_eq!(
                status(bearer(&[("authorization", value.as_bytes())])),
                400,
                "{value}"
            );
        }
        let two = [
            ("authorization", &b"Bearer a"[..]),
            ("authorization", &b"Bearer b"[..]),
        ];
        assert_eq!(status(bearer(&two)), 400);
    }

    #[test]
    fn a_named_bearer_scheme_is_never_no_credentials() {
        for headers in [
            // Another credential first, a bad bearer one after.
            &[
                ("authorization", &b"Basic dXNlcjpwYXNz"[..]),
                ("authorization", &b"Bearer not-token68!"[..]),
            ][..],
            &[
                ("authorization", &b"Basic dXNlcjpwYXNz"[..]),
                ("authorization", &b"Bearer good"[..]),
            ][..],
            // A tab (or several kinds of whitespace) after the scheme.
            &[("authorization", &b"Bearer\tnot token68"[..])][..],
            &[("authorization", &b"BEARER \t "[..])][..],
            // Two credentials in one line.
            &[("authorization", &b"Basic dXNlcjpwYXNz, Bearer abc"[..])][..],
            &[("authorization", &b"Bearer abc, Basic dXNlcjpwYXNz"[..])][..],
            &[("authorization", &b"Bearer, abc"[..])][..],
        ] {
            let result = bearer(headers);
            assert_eq!(status(result.clone()), 400, "{headers:?}: {result:?}");
        }
        assert_eq!(
            bearer(&[("authorization", &b"Bearer\tabc"[..])]),
            Ok("abc".into()),
            "a tab separates the scheme like a space"
        );
    }

    #[test]
    fn bearer_oversized_is_401_without_the_token_in_the_error() {
        let token = "a".repeat(100 * 1024);
        let err = bearer(&[("authorization", format!("Bearer {token}").as_bytes())]).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(!format!("{err} {err:?}").contains("aaaa"));
        let ok = "a".repeat(DEFAULT_MAX_TOKEN_LEN);
        assert!(bearer(&[("authorization", format!("Bearer {ok}").as_bytes())]).is_ok());
    }

    fn cookie(headers: &[(&str, &[u8])], name: &str) -> Result<Option<String>, AuthError> {
        let req = req(headers);
        cookie_value(&req, name, DEFAULT_MAX_COOKIE_HEADER_LEN).map(|v| v.map(str::to_owned))
    }

    #[test]
    fn cookies_with_equals_quotes_and_several_headers() {
        let h = [("cookie", &b"a=1; sid=x=y==; b=\"q\""[..])];
        assert_eq!(cookie(&h, "sid"), Ok(Some("x=y==".into())));
        assert_eq!(cookie(&h, "b"), Ok(Some("q".into())));
        assert_eq!(cookie(&h, "c"), Ok(None));
        let split = [("cookie", &b"a=1"[..]), ("cookie", &b"sid=second"[..])];
        assert_eq!(cookie(&split, "sid"), Ok(Some("second".into())));
        let dup = [
            ("cookie", &b"sid=first; sid=other"[..]),
            ("cookie", &b"sid=third"[..]),
        ];
        assert_eq!(cookie(&dup, "sid"), Ok(Some("first".into())));
        // A name is matched exactly, not as a prefix or case-insensitively.
        let near = [("cookie", &b"sidx=1; SID=2; xsid=3"[..])];
        assert_eq!(cookie(&near, "sid"), Ok(None));
        // Junk pairs are skipped, later pairs still found.
        let junk = [("cookie", &b";;=;garbage; ;sid=ok"[..])];
        assert_eq!(cookie(&junk, "sid"), Ok(Some("ok".into())));
        let non_utf8 = [("cookie", &b"sid=\xff\xfe"[..]), ("cookie", &b"sid=ok"[..])];
        assert_eq!(cookie(&non_utf8, "sid"), Ok(Some("ok".into())));
    }

    #[test]
    fn cookie_header_cap() {
        let big = format!("sid=1; pad={}", "x".repeat(100 * 1024));
        let err = cookie(&[("cookie", big.as_bytes())], "sid").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(!format!("{err:?}").contains("xxxx"));
    }

    #[test]
    fn cookie_names_and_values() {
        for ok in ["sid", "__Host-sid", "a.b_c-d!#$%&'*+^`|~"] {
            assert!(is_cookie_name(ok), "{ok}");
        }
        for bad in ["", "a;b", "a\r\nb", "a b", "a=b", "a\"", "a,b", "é", "a\0"] {
            assert!(!is_cookie_name(bad), "{bad:?}");
        }
        assert!(is_cookie_value("abc-0123=/+"));
        for bad in ["a b", "a;b", "a,b", "a\"b", "a\\b", "é", "a\x7f"] {
            assert!(!is_cookie_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn peer_addr_from_extension() {
        let mut parts = http::Request::new(()).into_parts().0;
        assert_eq!(parts.peer_addr(), None);
        let addr: SocketAddr = "[2001:db8::1]:443"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        parts.extensions.insert(PeerAddr(addr));
        assert_eq!(parts.peer_addr(), Some(addr));
        assert_eq!((&parts as &dyn RequestView).peer_addr(), Some(addr));
    }

    proptest! {
        #[test]
        fn bearer_never_panics(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..3)) {
            let headers: Vec<_> = values.iter().map(|v| ("authorization", v.as_slice())).collect();
            let _ = bearer(&headers);
        }

        #[test]
        fn bearer_round_trips(scheme in "(?i)bearer", token in "[A-Za-z0-9._~+/-]{1,300}={0,2}") {
            let value = format!("{scheme} {token}");
            prop_assert_eq!(bearer(&[("authorization", value.as_bytes())]), Ok(token));
        }

        #[test]
        fn cookie_never_panics(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4), name in "[a-z]{1,4}") {
            let headers: Vec<_> = lines.iter().map(|v| ("cookie", v.as_slice())).collect();
            let _ = cookie(&headers, &name);
        }

        #[test]
        fn cookie_search_matches_a_full_parse(
            line in "[a-c =;\"\t\u{3000}]{0,40}",
            name in "[a-c]{1,2}",
        ) {
            let reference = Cookie::split_parse(line.as_str())
                .flatten()
                .find(|c| c.name_raw() == Some(name.as_str()))
                .and_then(|c| c.value_raw().map(trim_quotes));
            prop_assert_eq!(find_in_line(&line, &name), reference);
        }

        #[test]
        fn cookie_round_trips(
            name in "[A-Za-z0-9_-]{1,16}",
            value in "[!#-+\\--:<-\\[\\]-~]{0,64}",
            before in prop::collection::vec(("[a-z]{1,8}", "[a-z0-9]{0,8}"), 0..4),
        ) {
            // Other cookies first, none with our name.
            let mut line: Vec<String> = before
                .iter()
                .filter(|(n, _)| *n != name)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            line.push(format!("{name}={value}"));
            let line = line.join("; ");
            let got = cookie(&[("cookie", line.as_bytes())], &name);
            // The parser drops surrounding whitespace; a value that is a
            // quoted pair loses its quotes.
            let expected = if value.is_empty() { None } else { Some(trim_quotes(&value).to_owned()) };
            prop_assert!(is_cookie_value(&value));
            if expected.is_some() {
                prop_assert_eq!(got, Ok(expected));
            }
        }
    }
}
