//! Arbitrary bearer strings against a fixed key set (an HS256 secret and an
//! RS256 public key, issuer and audience pinned). Oracles: a token we accept
//! is also accepted by plain `jsonwebtoken` with the same key and checks
//! (we are stricter, never looser); a refusal is a 400/401 whose text does
//! not repeat a JWT-shaped token. Seeds: `fuzz/make-seeds.py`.
#![no_main]

use std::sync::LazyLock;
use std::time::SystemTime;

use auth_core::{Algorithm, Backend, JwtBackend, JwtValidator};
use jsonwebtoken::{DecodingKey, Validation};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-32";
const RSA_PUB: &[u8] = include_bytes!("../../crates/auth-core/tests/keys/rsa.pub");
const ISSUER: &str = "https://issuer.example";

static BACKEND: LazyLock<JwtBackend> = LazyLock::new(|| {
    JwtBackend::builder(
        JwtValidator::builder([Algorithm::HS256, Algorithm::RS256])
            .hmac_secret(SECRET)
            .rsa_pem(RSA_PUB)
            .issuer(ISSUER)
            .audience("api")
            .build()
            .unwrap(),
    )
    .max_token_len(4096)
    .cache_capacity(0)
    .build()
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let mut req = http::Request::new(());
    req.headers_mut().insert(http::header::AUTHORIZATION, value);

    let outcome = BACKEND.authenticate(&req, SystemTime::now());
    match outcome
        .into_done()
        .expect("local keys never need the network")
    {
        Ok(who) => {
            let token = token.trim_ascii();
            let header = jsonwebtoken::decode_header(token).unwrap();
            let key = match header.alg {
                Algorithm::HS256 => DecodingKey::from_secret(SECRET).unwrap(),
                Algorithm::RS256 => DecodingKey::from_rsa_pem(RSA_PUB).unwrap(),
                other => panic!("accepted a token signed with {other:?}"),
            };
            let mut checks = Validation::new(header.alg);
            checks.set_issuer(&[ISSUER]);
            checks.set_audience(&["api"]);
            checks.set_required_spec_claims(&["exp", "sub"]);
            let raw = jsonwebtoken::decode::<serde_json::Value>(token, &key, &checks)
                .expect("jsonwebtoken refuses a token we accepted");
            assert_eq!(raw.claims["sub"].as_str(), Some(who.auth.identifier()));
        }
        Err(e) => {
            assert!(matches!(e.status().as_u16(), 400 | 401), "{e:?}");
            let text = format!("{e} {e:?} {:?}", e.www_authenticate());
            let token = token.trim_ascii();
            // A JWT-shaped input (it has a dot; none of our fixed phrases
            // does): a fuzzer that copies one of our own error phrases into
            // the token would otherwise "find" it in the error.
            if token.len() >= 16 && token.contains('.') {
                assert!(!text.contains(token), "the error repeats the token");
            }
        }
    }
});
