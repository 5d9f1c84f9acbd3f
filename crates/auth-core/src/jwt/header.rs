//! The JOSE header of a token: decoded into `jsonwebtoken`'s `Header` (as
//! `jsonwebtoken::decode_header` decodes it), checked, and remembered per
//! thread by its text. The tokens of one issuer share one header (`alg`,
//! `typ`, `kid`), and `Header` goes through serde's buffering for its
//! flattened extra members: parsing it was a fifth of an uncached HS256
//! check.

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};

use super::invalid;
use crate::error::AuthError;

/// What the validator uses of an accepted header.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct HeaderFacts {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<Rc<str>>,
}

/// Accepted headers remembered per thread, at most this many (oldest out).
const PER_THREAD: usize = 4;
/// Longer headers are not remembered (a typical one is 36–120 bytes).
const MAX_REMEMBERED_LEN: usize = 256;

thread_local! {
    /// Accepted headers by their base64url text. What a header means
    /// depends on its text alone, so no validator or key is part of the key.
    static ACCEPTED: RefCell<Vec<(Box<str>, HeaderFacts)>> = const { RefCell::new(Vec::new()) };
}

/// The header whose base64url text is `encoded` (a token's first part):
/// decoded as `jsonwebtoken::decode_header` decodes it and checked as
/// `jsonwebtoken::decode` checks it, plus our own `typ` and `crit` rules
/// (see [`check`]).
pub(super) fn read(encoded: &str) -> Result<HeaderFacts, AuthError> {
    let known = ACCEPTED
        .try_with(|accepted| {
            let accepted = accepted.borrow();
            let found = accepted.iter().find(|(text, _)| **text == *encoded);
            found.map(|(_, facts)| facts.clone())
        })
        .ok()
        .flatten();
    if let Some(facts) = known {
        return Ok(facts);
    }
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| invalid("malformed token"))?;
    let header: Header = serde_json::from_slice(&json).map_err(|_| invalid("malformed token"))?;
    check(&header)?;
    let facts = HeaderFacts {
        alg: header.alg,
        kid: header.kid.map(Rc::from),
    };
    if encoded.len() <= MAX_REMEMBERED_LEN {
        // Fails only while the thread is torn down: then nothing is kept.
        let _ = ACCEPTED.try_with(|accepted| {
            let mut accepted = accepted.borrow_mut();
            if accepted.len() == PER_THREAD {
                accepted.remove(0);
            }
            accepted.push((encoded.into(), facts.clone()));
        });
    }
    Ok(facts)
}

/// `typ` absent, `JWT` or `at+jwt` (RFC 9068); no `crit` (RFC 7515 §4.1.11:
/// we understand no extensions, so any critical one is a reason to reject);
/// `b64` absent or `true`.
fn check(header: &Header) -> Result<(), AuthError> {
    if header.crit.is_some() {
        return Err(invalid("critical header parameters are not supported"));
    }
    // RFC 7797: `"b64": false` means the payload is not base64url.
    match header.extras.get::<bool>("b64") {
        Ok(None | Some(true)) => {}
        Ok(Some(false)) => return Err(invalid("unencoded payloads are not supported")),
        Err(_) => return Err(invalid("malformed token")),
    }
    match header.typ.as_deref() {
        None => Ok(()),
        Some(typ)
            if ["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|t| typ.eq_ignore_ascii_case(t)) =>
        {
            Ok(())
        }
        Some(_) => Err(invalid("unsupported token type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_json(header: &str) -> Result<HeaderFacts, AuthError> {
        read(&URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn remembered_headers_mean_what_they_meant() {
        let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
        let kid = r#"{"alg":"RS256","kid":"k1"}"#;
        for _ in 0..3 {
            assert_eq!(read_json(hs).unwrap().alg, Algorithm::HS256);
            let facts = read_json(kid).unwrap();
            assert_eq!(
                (facts.alg, facts.kid.as_deref()),
                (Algorithm::RS256, Some("k1"))
            );
        }
        // More distinct headers than are kept: each still reads right.
        for round in 0..2 {
            for i in 0..(PER_THREAD * 3) {
                let header = format!(r#"{{"alg":"HS384","kid":"k{i}"}}"#);
                let facts = read_json(&header).unwrap();
                assert_eq!(
                    facts.kid.as_deref(),
                    Some(format!("k{i}").as_str()),
                    "{round}"
                );
            }
        }
    }

    #[test]
    fn refused_headers_are_refused_every_time() {
        for (header, reason) in [
            (r#"{"alg":"HS256","typ":"JWE"}"#, "unsupported token type"),
            (
                r#"{"alg":"HS256","crit":["exp"]}"#,
                "critical header parameters are not supported",
            ),
            (
                r#"{"alg":"HS256","b64":false}"#,
                "unencoded payloads are not supported",
            ),
            (r#"{"alg":"none"}"#, "malformed token"),
            (r#"{"typ":"JWT"}"#, "malformed token"),
        ] {
            for _ in 0..2 {
                let err = read_json(header).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!("invalid credentials: {reason}"),
                    "{header}"
                );
            }
        }
    }

    #[test]
    fn long_headers_are_read_but_not_kept() {
        let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(300));
        let encoded = URL_SAFE_NO_PAD.encode(&long);
        assert!(encoded.len() > MAX_REMEMBERED_LEN);
        assert_eq!(read(&encoded).unwrap().alg, Algorithm::HS256);
        let kept = ACCEPTED.with(|a| a.borrow().iter().any(|(text, _)| **text == *encoded));
        assert!(!kept);
    }
}
