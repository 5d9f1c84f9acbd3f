//! `JwtBackend` vs raw `jsonwebtoken::decode` of the same token, and a
//! verified-token cache hit.
//!
//! `cargo bench -p auth-core --bench jwt`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use auth_core::{Algorithm, Backend, JwtBackend, JwtValidator, TokenIssuer};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, EncodingKey, Validation};
use serde_json::{Map, Value, json};

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

struct Case {
    name: &'static str,
    alg: Algorithm,
    signing: EncodingKey,
    decoding: DecodingKey,
    validator: JwtValidator,
}

fn cases() -> Vec<Case> {
    let secret = b"0123456789abcdef0123456789abcdef";
    vec![
        Case {
            name: "HS256",
            alg: Algorithm::HS256,
            signing: EncodingKey::from_secret(secret).unwrap(),
            decoding: DecodingKey::from_secret(secret).unwrap(),
            validator: JwtValidator::builder([Algorithm::HS256])
                .hmac_secret(secret)
                .issuer("https://id.example")
                .audience("api")
                .build()
                .unwrap(),
        },
        Case {
            name: "RS256",
            alg: Algorithm::RS256,
            signing: EncodingKey::from_rsa_pem(&key("rsa.key")).unwrap(),
            decoding: DecodingKey::from_rsa_pem(&key("rsa.pub")).unwrap(),
            validator: JwtValidator::builder([Algorithm::RS256])
                .rsa_pem(key("rsa.pub"))
                .issuer("https://id.example")
                .audience("api")
                .build()
                .unwrap(),
        },
        Case {
            name: "ES256",
            alg: Algorithm::ES256,
            signing: EncodingKey::from_ec_pem(&key("ec256.pk8")).unwrap(),
            decoding: DecodingKey::from_ec_pem(&key("ec256.pub")).unwrap(),
            validator: JwtValidator::builder([Algorithm::ES256])
                .ec_pem(key("ec256.pub"))
                .issuer("https://id.example")
                .audience("api")
                .build()
                .unwrap(),
        },
        Case {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            signing: EncodingKey::from_ed_pem(&key("ed.key")).unwrap(),
            decoding: DecodingKey::from_ed_pem(&key("ed.pub")).unwrap(),
            validator: JwtValidator::builder([Algorithm::EdDSA])
                .ed_pem(key("ed.pub"))
                .issuer("https://id.example")
                .audience("api")
                .build()
                .unwrap(),
        },
    ]
}

/// The claims a typical hand-written validator keeps.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SubExp {
    sub: String,
    exp: u64,
}

fn jwt(c: &mut Criterion) {
    let now = SystemTime::now();
    // A typical access token: issuer, audience, scopes, a name.
    let claims = json!({
        "sub": "248289761001", "iss": "https://id.example", "aud": "api", "scope": "openid profile read",
        "name": "Jane Doe", "email": "jane@example.com",
    });
    for case in cases() {
        let token = TokenIssuer::new(case.alg, case.signing)
            .unwrap()
            .ttl(Duration::from_secs(86_400))
            .issue(claims.clone(), now)
            .unwrap();
        let req = http::Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let mut group = c.benchmark_group(format!("jwt/{}", case.name));
        // Raw: jsonwebtoken's own decode checking what ours checks: exp,
        // iss, aud.
        let mut validation = Validation::new(case.alg);
        validation.set_issuer(&["https://id.example"]);
        validation.set_audience(&["api"]);
        group.bench_function("raw_jsonwebtoken", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Map<String, Value>>(
                        black_box(&token),
                        &case.decoding,
                        &validation,
                    )
                    .unwrap(),
                )
            })
        });
        // Raw into a two-field struct, as a hand-rolled middleware would:
        // what keeping every claim (a JSON map) costs on top.
        group.bench_function("raw_jsonwebtoken_struct", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<SubExp>(black_box(&token), &case.decoding, &validation)
                        .unwrap(),
                )
            })
        });
        // Ours, no cache: header read, verify, claim checks, AuthData.
        let uncached = JwtBackend::builder(case.validator)
            .cache_capacity(0)
            .build();
        group.bench_function("ours_uncached", |b| {
            b.iter(|| {
                black_box(
                    uncached
                        .authenticate(black_box(&req), now)
                        .into_done()
                        .unwrap()
                        .unwrap(),
                )
            })
        });
        group.finish();
    }

    let secret = b"0123456789abcdef0123456789abcdef";
    let cached = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(secret)
            .build()
            .unwrap(),
    );
    let token = TokenIssuer::hs256(secret)
        .unwrap()
        .ttl(Duration::from_secs(86_400))
        .issue(claims, now)
        .unwrap();
    let req = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    assert!(cached.authenticate(&req, now).into_done().unwrap().is_ok());
    c.bench_function("jwt/cache_hit", |b| {
        b.iter(|| {
            black_box(
                cached
                    .authenticate(black_box(&req), now)
                    .into_done()
                    .unwrap()
                    .unwrap(),
            )
        })
    });
}

criterion_group!(benches, jwt);
criterion_main!(benches);
