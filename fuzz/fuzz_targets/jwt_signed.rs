//! Fuzzed JOSE header and claims, signed here with the backend's own HMAC
//! secret, so the fuzzer explores the tokens that pass the signature check
//! (the claims rules, the header rules, the attributes) rather than the
//! signature wall. The verified-token cache is on: every token is checked
//! twice and the second answer must be the first.
//!
//! Input: `<header JSON> 0x00 <claims JSON>`; with no 0x00 byte, the whole
//! input is the claims and the header is `{"alg":"HS256","typ":"JWT"}`.
//! The token is signed with the header's `alg` when it is HS256 or HS384
//! (the validator takes both), else with HS256.
//!
//! Oracles, against plain `jsonwebtoken::decode` with the same key and
//! checks:
//! - a token we accept, jsonwebtoken accepts; the identifier is its `sub`,
//!   the attributes are its claims but `sub`, and `claims::<Value>()` is its
//!   claims, member for member;
//! - a plain token (header of `alg` and `typ: JWT` only; claims a JSON object
//!   with no repeated member, a non-empty string `sub`, an integer `exp`, our
//!   `iss` and `aud`, no `nbf`; within our size limit) that jsonwebtoken
//!   accepts, we accept: our extra rules never refuse an ordinary token;
//! - a refusal is a 401 whose text does not repeat the token.
#![no_main]

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;
use std::time::SystemTime;

use auth_core::{Algorithm, Backend, JwtBackend, JwtValidator};
use jsonwebtoken::{DecodingKey, EncodingKey, Validation};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-32";
const ISSUER: &str = "https://issuer.example";
const DEFAULT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;
const MAX_TOKEN_LEN: usize = 8192;

static BACKEND: LazyLock<JwtBackend> = LazyLock::new(|| {
    JwtBackend::builder(
        JwtValidator::builder([Algorithm::HS256, Algorithm::HS384])
            .hmac_secret(SECRET)
            .issuer(ISSUER)
            .audience("api")
            .build()
            .unwrap(),
    )
    .max_token_len(MAX_TOKEN_LEN)
    .build()
});

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The header's `alg`, when it is one the harness signs with.
fn signing_alg(header: &[u8]) -> Algorithm {
    serde_json::from_slice::<Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .and_then(|alg| alg.parse().ok())
        .filter(|alg| matches!(alg, Algorithm::HS256 | Algorithm::HS384))
        .unwrap_or(Algorithm::HS256)
}

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_secret(SECRET).expect("an HMAC secret");
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, signing_alg(header))
        .expect("HMAC signs any input");
    format!("{input}.{signature}")
}

/// Whether the JSON object `json` names no member twice (serde_json's map
/// keeps the last of two; our checks refuse a repeated registered claim).
fn no_repeated_members(json: &[u8]) -> bool {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen = HashSet::new();
            let mut unique = true;
            while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                unique &= seen.insert(key);
            }
            Ok(unique)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    de.deserialize_map(Keys).unwrap_or(false)
}

/// A token no rule of ours beyond jsonwebtoken's should refuse.
fn plain(token: &str, header: &[u8], claims: &Map<String, Value>, raw_claims: &[u8]) -> bool {
    if token.len() > MAX_TOKEN_LEN {
        return false;
    }
    let header_plain = serde_json::from_slice::<Map<String, Value>>(header).is_ok_and(|h| {
        h.len() == 2 && h.get("typ").and_then(Value::as_str) == Some("JWT") && h.contains_key("alg")
    }) && no_repeated_members(header);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == "api",
        Some(Value::Array(auds)) => {
            auds.iter().all(Value::is_string) && auds.iter().any(|a| a == "api")
        }
        _ => false,
    };
    header_plain
        && no_repeated_members(raw_claims)
        && claims
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        && claims.get("exp").is_some_and(Value::is_u64)
        && claims.get("iss").and_then(Value::as_str) == Some(ISSUER)
        && !claims.contains_key("nbf")
        && aud_ok
}

fuzz_target!(|data: &[u8]| {
    let (header, claims) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (DEFAULT_HEADER, data),
    };
    let token = sign(header, claims);
    let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("base64url text is a header value");
    let mut req = http::Request::new(());
    req.headers_mut().insert(http::header::AUTHORIZATION, value);

    let now = SystemTime::now();
    let first = BACKEND
        .authenticate(&req, now)
        .into_done()
        .expect("local keys");
    let again = BACKEND
        .authenticate(&req, now)
        .into_done()
        .expect("local keys");

    let key = DecodingKey::from_secret(SECRET).unwrap();
    let mut checks = Validation::new(signing_alg(header));
    checks.algorithms = vec![Algorithm::HS256, Algorithm::HS384];
    checks.set_issuer(&[ISSUER]);
    checks.set_audience(&["api"]);
    checks.set_required_spec_claims(&["exp", "sub"]);
    checks.validate_nbf = true;
    let theirs = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &checks);

    match (&first, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.auth.identifier(), b.auth.identifier());
            assert_eq!(a.auth.data(), b.auth.data(), "the cached answer differs");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "the cached answer differs"),
        _ => panic!("the cached answer differs: {first:?} then {again:?}"),
    }

    match first {
        Ok(who) => {
            let theirs = theirs
                .expect("jsonwebtoken refuses a token we accepted")
                .claims;
            assert_eq!(theirs["sub"].as_str(), Some(who.auth.identifier()));
            let mut attributes = theirs.clone();
            attributes.remove("sub");
            assert_eq!(who.auth.data(), &attributes, "attributes lost or changed");
            let typed: Map<String, Value> = who.auth.claims().expect("the claims read back");
            assert_eq!(typed, theirs);
        }
        Err(e) => {
            assert_eq!(e.status().as_u16(), 401, "{e:?}");
            if let Ok(theirs) = &theirs {
                assert!(
                    !plain(&token, header, &theirs.claims, claims),
                    "an ordinary token refused: {e}"
                );
            }
            let text = format!("{e} {e:?} {:?}", e.www_authenticate());
            assert!(!text.contains(&token), "the error repeats the token");
        }
    }
});
