//! JWT backend: every algorithm and key form, the security suite, and the
//! verified-token cache. The clock is fixed; nothing sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::step::{Checked, TokenValidator};
use auth_core::{
    Algorithm, AuthData, AuthError, Authenticated, Backend, ConfigError, JwtBackend, JwtValidator,
    Source, TokenIssuer,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn run_at(backend: &dyn Backend, token: &str, now: u64) -> Result<Authenticated, AuthError> {
    backend
        .authenticate(&bearer(token), at(now))
        .into_done()
        .expect("local keys need no network step")
}

fn run(backend: &dyn Backend, token: &str) -> Result<Authenticated, AuthError> {
    run_at(backend, token, NOW)
}

/// The error's status and description, and a check that neither its text
/// nor its debug form holds the token.
fn rejected(result: Result<Authenticated, AuthError>, token: &str) -> (u16, String) {
    let error = result.expect_err("must be rejected");
    let shown = format!(
        "{error} {error:?} {}",
        error.www_authenticate().unwrap_or_default()
    );
    let secret_part = token.rsplit('.').next().unwrap_or(token);
    if secret_part.len() > 8 {
        assert!(
            !shown.contains(secret_part),
            "error shows the token: {shown}"
        );
    }
    (error.status().as_u16(), error.to_string())
}

fn hs256() -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .issuer("https://issuer.example")
            .audience("api")
            .build()
            .unwrap(),
    )
}

/// Signs `claims` with `header` and the HS256 test secret, unchecked.
fn sign_hs(header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(SECRET).unwrap()).unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "alice", "iss": "https://issuer.example", "aud": "api", "exp": NOW + 600, "scope": "read"})
}

fn b64(json: &str) -> String {
    B64.encode(json)
}

#[test]
fn every_algorithm_and_key_form_round_trips() {
    let rsa_priv = key_file("rsa.key");
    let cases: Vec<(Algorithm, EncodingKey, JwtValidator)> = vec![
        (
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET).unwrap(),
            JwtValidator::builder([Algorithm::HS256])
                .hmac_secret(SECRET)
                .build()
                .unwrap(),
        ),
        (
            Algorithm::HS384,
            EncodingKey::from_secret(&[7; 48]).unwrap(),
            JwtValidator::builder([Algorithm::HS384])
                .hmac_secret([7; 48])
                .build()
                .unwrap(),
        ),
        (
            Algorithm::HS512,
            EncodingKey::from_secret(&[9; 64]).unwrap(),
            JwtValidator::builder([Algorithm::HS512])
                .hmac_secret([9; 64])
                .build()
                .unwrap(),
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::RS256])
                .rsa_pem(key_file("rsa.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::RS384,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::RS384])
                .rsa_der(key_file("rsa.pkcs1.der"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::RS512,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::RS512])
                .rsa_pem(key_file("rsa.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::PS256,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::PS256])
                .rsa_pem(key_file("rsa.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::PS384,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::PS384])
                .rsa_pem(key_file("rsa.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::PS512,
            EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            JwtValidator::builder([Algorithm::PS512])
                .rsa_pem(key_file("rsa.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&key_file("ec256.pk8")).unwrap(),
            JwtValidator::builder([Algorithm::ES256])
                .ec_pem(key_file("ec256.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&key_file("ec256.pk8")).unwrap(),
            {
                let spki = key_file("ec256.spki.der");
                JwtValidator::builder([Algorithm::ES256])
                    .ec_der(&spki[spki.len() - 65..])
                    .build()
                    .unwrap()
            },
        ),
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(&key_file("ec384.pk8")).unwrap(),
            JwtValidator::builder([Algorithm::ES384])
                .ec_pem(key_file("ec384.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&key_file("ed.key")).unwrap(),
            JwtValidator::builder([Algorithm::EdDSA])
                .ed_pem(key_file("ed.pub"))
                .build()
                .unwrap(),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&key_file("ed.key")).unwrap(),
            {
                let spki = key_file("ed.spki.der");
                JwtValidator::builder([Algorithm::EdDSA])
                    .ed_der(&spki[spki.len() - 32..])
                    .build()
                    .unwrap()
            },
        ),
    ];
    for (alg, signing, validator) in cases {
        let token = TokenIssuer::new(alg, signing)
            .unwrap()
            .issue(json!({"sub": "alice"}), at(NOW))
            .unwrap();
        let backend = JwtBackend::new(validator);
        let who = run(&backend, &token).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(who.auth.identifier(), "alice", "{alg:?}");
        assert_eq!(who.auth.source(), Source::Jwt);
        assert!(
            who.auth.get("sub").is_none(),
            "sub is the identifier, not data"
        );
        assert!(who.auth.get("jti").is_some());
    }
}

#[test]
fn keys_from_jwk_and_jwks_documents() {
    let signing = EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let token = TokenIssuer::new(Algorithm::RS256, signing)
        .unwrap()
        .key_id("k1")
        .issue(json!({"sub": "bob"}), at(NOW))
        .unwrap();

    let one = JwtValidator::builder([Algorithm::RS256])
        .jwk(jwk.clone())
        .build()
        .unwrap();
    assert_eq!(
        run(&JwtBackend::new(one), &token)
            .unwrap()
            .auth
            .identifier(),
        "bob"
    );

    let document = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "use": "enc"},
        serde_json::to_value(&jwk).unwrap(),
    ]})
    .to_string();
    // A set with an encryption key is fine through jwks_json? No: static
    // JWKs must all be usable, or build fails loudly.
    assert!(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_json(&document)
            .build()
            .is_err()
    );
    let clean = json!({"keys": [serde_json::to_value(&jwk).unwrap()]}).to_string();
    let set = JwtValidator::builder([Algorithm::RS256])
        .jwks_json(&clean)
        .build()
        .unwrap();
    assert_eq!(
        run(&JwtBackend::new(set), &token)
            .unwrap()
            .auth
            .identifier(),
        "bob"
    );
    // A JWK naming an algorithm outside the allowed list is not usable.
    assert!(
        JwtValidator::builder([Algorithm::PS256])
            .jwk(jwk)
            .build()
            .is_err()
    );
}

#[test]
fn happy_path_claims_and_key() {
    let token = sign_hs(&Header::default(), &good_claims());
    let who = run(&hs256(), &token).unwrap();
    assert_eq!(who.auth.identifier(), "alice");
    assert_eq!(who.auth.key(), "jwt:https://issuer.example|alice");
    assert!(who.auth.has_scope("read"));
    assert_eq!(who.set_cookie, None);
}

#[test]
fn alg_none_is_rejected() {
    let header = b64(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64(&good_claims().to_string());
    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        let (status, _) = rejected(run(&hs256(), &token), &token);
        assert_eq!(status, 401, "{token}");
    }
}

#[test]
fn hmac_signed_with_the_rsa_public_key_is_rejected() {
    // Algorithm confusion: the attacker signs HS256 with the RSA public key
    // (which is public) as the HMAC secret.
    let public_pem = key_file("rsa.pub");
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "mallory", "exp": NOW + 600}),
        &EncodingKey::from_secret(&public_pem).unwrap(),
    )
    .unwrap();
    for allowed in [
        vec![Algorithm::RS256],
        vec![Algorithm::RS256, Algorithm::HS256],
    ] {
        let backend = JwtBackend::new(
            JwtValidator::builder(allowed)
                .rsa_pem(&public_pem)
                .build()
                .unwrap(),
        );
        let (status, reason) = rejected(run(&backend, &token), &token);
        assert_eq!(
            (status, reason.as_str()),
            (
                401,
                "invalid credentials: algorithm not allowed for this key"
            )
        );
    }
}

#[test]
fn wrong_key_is_an_invalid_signature() {
    let token = TokenIssuer::new(
        Algorithm::RS256,
        EncodingKey::from_rsa_pem(&key_file("rsa2.key")).unwrap(),
    )
    .unwrap()
    .issue(json!({"sub": "mallory"}), at(NOW))
    .unwrap();
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .rsa_pem(key_file("rsa.pub"))
            .build()
            .unwrap(),
    );
    assert_eq!(
        rejected(run(&backend, &token), &token),
        (401, "invalid credentials: invalid signature".into())
    );
    let hs = sign_hs(&Header::default(), &good_claims());
    let other = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret([1u8; 32])
            .build()
            .unwrap(),
    );
    assert_eq!(
        rejected(run(&other, &hs), &hs).1,
        "invalid credentials: invalid signature"
    );
}

#[test]
fn time_claims_with_leeway() {
    let with = |patch: Value| {
        let mut claims = good_claims();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign_hs(&Header::default(), &claims)
    };
    let backend = hs256();
    // Default leeway is 60 s.
    assert!(run(&backend, &with(json!({"exp": NOW - 30}))).is_ok());
    let expired = with(json!({"exp": NOW - 60}));
    assert_eq!(
        rejected(run(&backend, &expired), &expired).1,
        "invalid credentials: token expired"
    );
    let future = with(json!({"nbf": NOW + 120}));
    assert_eq!(
        rejected(run(&backend, &future), &future).1,
        "invalid credentials: token not yet valid"
    );
    assert!(run(&backend, &with(json!({"nbf": NOW + 30}))).is_ok());
    for bad in [
        json!({"exp": "tomorrow"}),
        json!({"exp": -5}),
        json!({"exp": 1e300}),
        json!({"exp": null}),
    ] {
        let token = with(bad.clone());
        assert_eq!(
            rejected(run(&backend, &token), &token).1,
            "invalid credentials: token has no valid exp claim",
            "{bad}"
        );
    }
    // RFC 7519 NumericDate may have a fraction: the whole seconds count.
    assert!(run(&backend, &with(json!({"exp": NOW as f64 + 0.5}))).is_ok());
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let token = sign_hs(&Header::default(), &no_exp);
    assert_eq!(rejected(run(&backend, &token), &token).0, 401);
    let strict = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .leeway(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let just_expired = with(json!({"exp": NOW}));
    assert!(
        run(&strict, &just_expired).is_err(),
        "valid strictly before exp"
    );
}

#[test]
fn issuer_audience_and_required_claims() {
    let backend = hs256();
    let patch = |k: &str, v: Value| {
        let mut claims = good_claims();
        claims[k] = v;
        sign_hs(&Header::default(), &claims)
    };
    let wrong_iss = patch("iss", json!("https://evil.example"));
    assert_eq!(
        rejected(run(&backend, &wrong_iss), &wrong_iss).1,
        "invalid credentials: token has the wrong issuer"
    );
    let wrong_aud = patch("aud", json!("other"));
    assert_eq!(
        rejected(run(&backend, &wrong_aud), &wrong_aud).1,
        "invalid credentials: token has the wrong audience"
    );
    assert!(
        run(&backend, &patch("aud", json!(["other", "api"]))).is_ok(),
        "one of several"
    );
    assert!(run(&backend, &patch("aud", json!(["other"]))).is_err());
    let several = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .audience("a")
            .audience("api")
            .build()
            .unwrap(),
    );
    assert!(run(&several, &patch("aud", json!("api"))).is_ok());
    let needs_tenant = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .require_claim("tenant")
            .build()
            .unwrap(),
    );
    let token = sign_hs(&Header::default(), &good_claims());
    assert_eq!(
        rejected(run(&needs_tenant, &token), &token).1,
        "invalid credentials: token lacks the required claim tenant"
    );
    assert!(run(&needs_tenant, &patch("tenant", json!("t1"))).is_ok());
}

#[test]
fn missing_or_empty_subject() {
    for claims in [
        json!({"exp": NOW + 60}),
        json!({"exp": NOW + 60, "sub": ""}),
        json!({"exp": NOW + 60, "sub": 42}),
    ] {
        let token = sign_hs(&Header::default(), &claims);
        let backend = JwtBackend::new(
            JwtValidator::builder([Algorithm::HS256])
                .hmac_secret(SECRET)
                .build()
                .unwrap(),
        );
        let (status, reason) = rejected(run(&backend, &token), &token);
        assert_eq!(
            (status, reason.as_str()),
            (401, "invalid credentials: token has no subject"),
            "{claims}"
        );
    }
}

#[test]
fn malformed_parts_are_rejected_without_panic() {
    let good = sign_hs(&Header::default(), &good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let not_json = b64("{not json");
    let not_object = b64("[1,2]");
    let cases = [
        format!("a.{}.{}", parts[1], parts[2]),
        format!("{not_json}.{}.{}", parts[1], parts[2]),
        format!("{}.a.{}", parts[0], parts[2]),
        format!("{}.{not_json}.{}", parts[0], parts[2]),
        format!("{}.{not_object}.{}", parts[0], parts[2]),
        format!("{}.{}.a", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        "a".into(),
        "...".into(),
    ];
    for token in cases {
        let (status, _) = rejected(run(&hs256(), &token), &token);
        assert_eq!(status, 401, "{token}");
    }
    // Characters outside token68 never reach the decoder: 400.
    let (status, _) = rejected(run(&hs256(), "abc.d%ef.ghi"), "abc.d%ef.ghi");
    assert_eq!(status, 400);
}

#[test]
fn oversized_token_is_rejected_before_decoding() {
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(30_000),
        "b".repeat(30_000),
        "c".repeat(5_536)
    );
    assert_eq!(huge.len(), 65_538);
    let (status, reason) = rejected(run(&hs256(), &huge), &huge);
    assert_eq!(
        (status, reason.as_str()),
        (
            401,
            "invalid credentials: bearer token exceeds the size limit"
        )
    );
    // The validator's own cap holds for callers that skip the backend.
    let validator = JwtValidator::builder([Algorithm::HS256])
        .hmac_secret(SECRET)
        .max_token_len(100)
        .build()
        .unwrap();
    let token = sign_hs(&Header::default(), &good_claims());
    assert!(
        matches!(validator.validate(&token, at(NOW)), Checked::Invalid(e) if e.to_string().contains("size limit"))
    );
}

#[test]
fn crit_typ_and_ignored_key_headers() {
    let backend = hs256();
    let crit = Header {
        crit: Some(vec!["exp".into()]),
        ..Header::default()
    };
    let token = sign_hs(&crit, &good_claims());
    assert_eq!(rejected(run(&backend, &token), &token).0, 401);

    for (typ, ok) in [
        ("JWT", true),
        ("at+jwt", true),
        ("application/at+jwt", true),
        ("AT+JWT", true),
        ("dpop+jwt", false),
        ("JWE", false),
    ] {
        let header = Header {
            typ: Some(typ.into()),
            ..Header::default()
        };
        let token = sign_hs(&header, &good_claims());
        assert_eq!(run(&backend, &token).is_ok(), ok, "typ {typ}");
    }

    // jku / x5u / jwk headers pointing elsewhere are ignored: the right key
    // still verifies, and a token signed by the attacker's key does not.
    let pointing = Header {
        jku: Some("https://attacker.example/jwks.json".into()),
        x5u: Some("https://attacker.example/cert.pem".into()),
        ..Header::default()
    };
    let token = sign_hs(&pointing, &good_claims());
    let outcome = backend.authenticate(&bearer(&token), at(NOW));
    assert!(
        outcome.into_done().is_some_and(|r| r.is_ok()),
        "no fetch, accepted with our key"
    );
    let attacker = EncodingKey::from_rsa_pem(&key_file("rsa2.key")).unwrap();
    let mut embedded = Header::new(Algorithm::RS256);
    embedded.jwk =
        Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, Algorithm::RS256).unwrap());
    embedded.jku = Some("https://attacker.example/jwks.json".into());
    let token = jsonwebtoken::encode(
        &embedded,
        &json!({"sub": "mallory", "exp": NOW + 60}),
        &attacker,
    )
    .unwrap();
    let rsa = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .rsa_pem(key_file("rsa.pub"))
            .build()
            .unwrap(),
    );
    let outcome = rsa.authenticate(&bearer(&token), at(NOW));
    let result = outcome.into_done().expect("never fetched from jku");
    assert_eq!(
        rejected(result, &token).1,
        "invalid credentials: invalid signature"
    );
}

#[test]
fn unknown_or_hostile_kid_with_fixed_keys() {
    let validator = JwtValidator::builder([Algorithm::HS256])
        .decoding_key(
            Some("k1"),
            jsonwebtoken::DecodingKey::from_secret(SECRET).unwrap(),
        )
        .decoding_key(
            Some("k2"),
            jsonwebtoken::DecodingKey::from_secret(&[2; 32]).unwrap(),
        )
        .build()
        .unwrap();
    let backend = JwtBackend::new(validator);
    for kid in ["../../../etc/passwd", "k3", "", "k1\u{0}"] {
        let header = Header {
            kid: Some(kid.into()),
            ..Header::default()
        };
        let token = sign_hs(&header, &good_claims());
        assert_eq!(
            rejected(run(&backend, &token), &token),
            (401, "invalid credentials: unknown signing key".into()),
            "{kid:?}"
        );
    }
    let mut header = Header {
        kid: Some("k1".into()),
        ..Header::default()
    };
    assert!(run(&backend, &sign_hs(&header, &good_claims())).is_ok());
    header.kid = Some("k2".into());
    let wrong = sign_hs(&header, &good_claims());
    assert_eq!(
        rejected(run(&backend, &wrong), &wrong).1,
        "invalid credentials: invalid signature"
    );
}

#[test]
fn configuration_errors() {
    assert!(matches!(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(b"short")
            .build(),
        Err(ConfigError::KeyTooShort { len: 5, min: 32 })
    ));
    assert!(
        JwtValidator::builder(Vec::<Algorithm>::new())
            .hmac_secret(SECRET)
            .build()
            .is_err()
    );
    assert!(
        JwtValidator::builder([Algorithm::HS256]).build().is_err(),
        "no keys"
    );
    assert!(
        JwtValidator::builder([Algorithm::RS256])
            .hmac_secret(SECRET)
            .build()
            .is_err(),
        "no algorithm fits"
    );
    assert!(
        JwtValidator::builder([Algorithm::RS256])
            .rsa_pem(b"not a pem")
            .build()
            .is_err()
    );
    assert!(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url("ftp://x/")
            .build()
            .is_err()
    );
    assert!(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer("not a url")
            .build()
            .is_err()
    );
    assert!(TokenIssuer::hs256(b"short").is_err());
}

#[test]
fn missing_header_falls_through_a_chain() {
    let chain = auth_core::Chain::new()
        .or(hs256())
        .or(auth_core::AnonSessionBackend::new("anon").unwrap());
    let who = chain
        .authenticate(&http::Request::new(()), at(NOW))
        .into_done()
        .unwrap()
        .unwrap();
    assert_eq!(who.auth.source(), Source::Anonymous);
    // A present but invalid token is not downgraded to anonymous.
    let err = chain
        .authenticate(&bearer("a.b.c"), at(NOW))
        .into_done()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.status(), 401);
    assert_eq!(
        err.www_authenticate().as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="malformed token""#)
    );
}

/// Counts how often the real validator is asked.
struct Counting(JwtValidator, Arc<AtomicUsize>);

impl TokenValidator for Counting {
    fn validate(&self, token: &str, now: SystemTime) -> Checked {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.validate(token, now)
    }
    fn key_generation(&self) -> u64 {
        self.0.key_generation()
    }
}

#[test]
fn cache_hits_skip_the_signature_check_and_respect_exp() {
    let calls = Arc::new(AtomicUsize::new(0));
    let validator = JwtValidator::builder([Algorithm::HS256])
        .hmac_secret(SECRET)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let backend = JwtBackend::new(Counting(validator, Arc::clone(&calls)));
    let token = sign_hs(&Header::default(), &good_claims());
    let first = run(&backend, &token).unwrap();
    let second = run(&backend, &token).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the repeat is a cache hit");
    assert_eq!(first, second);
    // Up to exp the hit holds; at exp it is dropped and the token re-checked.
    assert!(run_at(&backend, &token, NOW + 599).is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(run_at(&backend, &token, NOW + 600).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Not before nbf either, even if cached.
    let mut early = good_claims();
    early["nbf"] = json!(NOW);
    let early = sign_hs(&Header::default(), &early);
    assert!(run(&backend, &early).is_ok());
    assert!(run_at(&backend, &early, NOW - 10).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // A tampered copy of a cached token is a different key: checked, rejected.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(run(&backend, &tampered).is_err());

    let uncached = JwtBackend::builder(Counting(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .build()
            .unwrap(),
        Arc::clone(&calls),
    ))
    .cache_capacity(0)
    .build();
    let before = calls.load(Ordering::SeqCst);
    run(&uncached, &token).unwrap();
    run(&uncached, &token).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), before + 2);
}

#[test]
fn crypto_provider_is_installed() {
    // Building a validator installs a provider when jsonwebtoken cannot pick
    // one (both features on, as in an --all-features build).
    let _ = hs256();
    assert!(jsonwebtoken::crypto::CryptoProvider::try_get_default().is_some());
    let token = TokenIssuer::new(
        Algorithm::ES256,
        EncodingKey::from_ec_pem(&key_file("ec256.pk8")).unwrap(),
    )
    .unwrap()
    .issue(json!({"sub": "x"}), at(NOW))
    .unwrap();
    let es = JwtBackend::new(
        JwtValidator::builder([Algorithm::ES256])
            .ec_pem(key_file("ec256.pub"))
            .build()
            .unwrap(),
    );
    assert!(run(&es, &token).is_ok());
}

/// HS256-signs `claims`, given as raw JSON text (so it can say things a
/// `Value` cannot, like a member twice).
fn sign_raw(claims: &str) -> String {
    sign_raw_with(r#"{"alg":"HS256","typ":"JWT"}"#, claims)
}

/// HS256-signs a raw JSON header and raw JSON claims.
fn sign_raw_with(header: &str, claims: &str) -> String {
    sign_raw_bytes(header, claims.as_bytes())
}

/// HS256-signs a raw JSON header and claims given as bytes (which need not
/// be UTF-8).
fn sign_raw_bytes(header: &str, claims: &[u8]) -> String {
    // jsonwebtoken's signing needs the crypto provider our validator
    // installs (with both crypto features on, nothing else picks one).
    let _ = hs256();
    let input = format!("{}.{}", b64(header), B64.encode(claims));
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{input}.{signature}")
}

#[test]
fn claims_are_read_lazily_but_mean_the_same() {
    let exp = NOW + 600;
    let token = sign_raw(&format!(
        r#"{{"sub":"alice","iss":"https://issuer.example","aud":["api","x"],"exp":{exp},"scope":"read write","n":{{"deep":[1,2]}}}}"#
    ));
    let who = run(&hs256(), &token).unwrap();
    assert_eq!(who.auth.identifier(), "alice");
    assert_eq!(who.auth.key(), "jwt:https://issuer.example|alice");
    assert!(who.auth.has_scope("write"));
    assert_eq!(who.auth.get("n"), Some(&json!({"deep": [1, 2]})));
    assert!(
        who.auth.get("sub").is_none(),
        "sub is the identifier, not data"
    );
    #[derive(serde::Deserialize)]
    struct Mine {
        iss: String,
        exp: u64,
    }
    let mine: Mine = who.auth.claims().unwrap();
    assert_eq!(
        (mine.iss.as_str(), mine.exp),
        ("https://issuer.example", exp)
    );
    // The same identity as one built from a map.
    let mut map = json!({"iss": "https://issuer.example", "aud": ["api", "x"], "exp": exp,
        "scope": "read write", "n": {"deep": [1, 2]}});
    let map = map.as_object_mut().unwrap().clone();
    assert_eq!(
        who.auth,
        auth_core::AuthData::new(Source::Jwt, "alice", map)
    );
}

/// Without a string `iss`, the rate-limiting key is `jwt:|<sub>`, the same
/// as an identity built from the claims map would have, and never the key
/// of a subject of another issuer (`{"sub": "https://evil|alice"}` is not
/// `{"iss": "https://evil", "sub": "alice"}`).
#[test]
fn the_key_without_an_issuer() {
    let any_issuer = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .build()
            .unwrap(),
    );
    let exp = NOW + 600;
    for (claims, iss) in [
        (format!(r#"{{"sub":"alice","exp":{exp}}}"#), None),
        (
            format!(r#"{{"sub":"alice","exp":{exp},"iss":5}}"#),
            Some(json!(5)),
        ),
    ] {
        let who = run(&any_issuer, &sign_raw(&claims)).unwrap();
        assert_eq!(who.auth.key(), "jwt:|alice", "{claims}");
        let mut map = serde_json::Map::new();
        map.insert("exp".into(), json!(exp));
        if let Some(iss) = iss {
            map.insert("iss".into(), iss);
        }
        assert_eq!(
            AuthData::new(Source::Jwt, "alice", map).key(),
            who.auth.key()
        );
    }
    let posing = run(
        &any_issuer,
        &sign_raw(&format!(r#"{{"sub":"https://evil|alice","exp":{exp}}}"#)),
    )
    .unwrap();
    let issued = run(
        &any_issuer,
        &sign_raw(&format!(
            r#"{{"sub":"alice","iss":"https://evil","exp":{exp}}}"#
        )),
    )
    .unwrap();
    assert_ne!(posing.auth.key(), issued.auth.key());
    assert_eq!(issued.auth.key(), "jwt:https://evil|alice");
}

#[test]
fn a_duplicated_or_misplaced_claim_is_refused() {
    let exp = NOW + 600;
    let cases = [
        // Which sub? RFC 7519 §4 lets a parser refuse: we do.
        format!(
            r#"{{"sub":"alice","sub":"admin","iss":"https://issuer.example","aud":"api","exp":{exp}}}"#
        ),
        format!(
            r#"{{"sub":"alice","iss":"https://issuer.example","aud":"api","exp":{exp},"exp":{}}}"#,
            exp + 1
        ),
        // A claim the checks do not read, holding a string no JSON reader
        // can build (a lone surrogate): refused here, not accepted with its
        // scopes and typed claims lost when they are read.
        format!(
            r#"{{"sub":"alice","iss":"https://issuer.example","aud":"api","exp":{exp},"scope":"read","x":"\ud800"}}"#
        ),
        format!(
            r#"{{"sub":"alice","iss":"https://issuer.example","aud":"api","exp":{exp},"scope":"read","x":{{"y":["\q"]}}}}"#
        ),
        // Claims that are not an object.
        format!(r#"["alice",{exp},null,"https://issuer.example","api"]"#),
        "\"alice\"".to_owned(),
    ];
    for claims in cases {
        let token = sign_raw(&claims);
        let (status, text) = rejected(run(&hs256(), &token), &token);
        assert_eq!(
            (status, text.as_str()),
            (401, "invalid credentials: malformed token"),
            "{claims}"
        );
    }
}

/// Claims whose skipped members could not be read back later (bytes that
/// are not UTF-8, a number past f64) are refused when the token is checked:
/// an identity is never admitted with attributes it cannot show.
#[test]
fn unreadable_claims_are_refused_at_validation() {
    let exp = NOW + 600;
    let head =
        format!(r#"{{"sub":"alice","iss":"https://issuer.example","aud":"api","exp":{exp},"#);
    let mut not_utf8 = format!(r#"{head}"scope":"read","x":""#).into_bytes();
    not_utf8.extend_from_slice(b"\xff\xfe\"}");
    let too_big = format!(r#"{head}"scope":"read","x":1e400}}"#).into_bytes();
    for claims in [not_utf8, too_big] {
        let token = sign_raw_bytes(r#"{"alg":"HS256"}"#, &claims);
        let (status, text) = rejected(run(&hs256(), &token), &token);
        assert_eq!(
            (status, text.as_str()),
            (401, "invalid credentials: malformed token"),
            "{}",
            String::from_utf8_lossy(&claims)
        );
    }
}

/// Registered claims of a shape RFC 7519 does not define are refused, not
/// read as absent or pruned: `"nbf": null`, an audience array holding a
/// number. A `nbf` with a fraction counts from the next whole second.
#[test]
fn registered_claims_of_the_wrong_shape_are_refused() {
    let exp = NOW + 600;
    let with = |extra: &str| {
        sign_raw(&format!(
            r#"{{"sub":"alice","iss":"https://issuer.example","exp":{exp},{extra}}}"#
        ))
    };
    for (extra, reason) in [
        (
            r#""aud":"api","nbf":null"#,
            "token has an invalid nbf claim",
        ),
        (r#""aud":["api",1]"#, "token has the wrong audience"),
        (r#""aud":["api",null]"#, "token has the wrong audience"),
        (r#""aud":null"#, "token has the wrong audience"),
    ] {
        let token = with(extra);
        assert_eq!(
            rejected(run(&hs256(), &token), &token),
            (401, format!("invalid credentials: {reason}")),
            "{extra}"
        );
    }
    assert!(run(&hs256(), &with(r#""aud":["x","api"]"#)).is_ok());
    // Leeway 60 s: a nbf of NOW + 60.5 starts at NOW + 61, not yet valid.
    let early = with(&format!(r#""aud":"api","nbf":{}.5"#, NOW + 60));
    assert_eq!(
        rejected(run(&hs256(), &early), &early).1,
        "invalid credentials: token not yet valid"
    );
    assert!(run_at(&hs256(), &early, NOW + 1).is_ok());
}

#[test]
fn b64_header_and_escaped_claims() {
    let exp = NOW + 600;
    let claims = format!(
        r#"{{"sub":"al\u0069ce","iss":"https:\/\/issuer.example","aud":"api","exp":{exp}}}"#
    );
    for (header, expected) in [
        (r#"{"alg":"HS256"}"#, Ok("alice")),
        (r#"{"alg":"HS256","b64":true}"#, Ok("alice")),
        (
            r#"{"alg":"HS256","b64":false}"#,
            Err("invalid credentials: unencoded payloads are not supported"),
        ),
        (
            r#"{"alg":"HS256","b64":"no"}"#,
            Err("invalid credentials: malformed token"),
        ),
        (
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            Err("invalid credentials: critical header parameters are not supported"),
        ),
    ] {
        let token = sign_raw_with(header, &claims);
        let result = run(&hs256(), &token);
        match expected {
            Ok(sub) => {
                let who = result.unwrap();
                assert_eq!(who.auth.identifier(), sub, "{header}");
                assert_eq!(who.auth.key(), "jwt:https://issuer.example|alice");
            }
            Err(text) => assert_eq!(rejected(result, &token), (401, text.to_owned()), "{header}"),
        }
    }
}

/// jsonwebtoken's verifiers are built once per key and thread and kept (16
/// per thread): with more keys than that, each token still meets its own
/// key and only its own, on every round, on more than one thread.
#[test]
fn kept_verifiers_stay_with_their_key() {
    let secret = |i: u8| [i; 32];
    let mut builder = JwtValidator::builder([Algorithm::HS256, Algorithm::HS384]);
    for i in 0..24 {
        builder = builder.decoding_key(
            Some(&format!("k{i}")),
            jsonwebtoken::DecodingKey::from_secret(&secret(i)).unwrap(),
        );
    }
    let backend = JwtBackend::builder(builder.build().unwrap())
        .cache_capacity(0)
        .build();
    let sign = |kid: u8, key: u8, alg: Algorithm| {
        let header = Header {
            kid: Some(format!("k{kid}")),
            ..Header::new(alg)
        };
        let key = EncodingKey::from_secret(&secret(key)).unwrap();
        jsonwebtoken::encode(&header, &good_claims(), &key).unwrap()
    };
    let check = || {
        for round in 0..3 {
            for i in 0..24 {
                for alg in [Algorithm::HS256, Algorithm::HS384] {
                    let token = sign(i, i, alg);
                    assert!(
                        run(&backend, &token).is_ok(),
                        "round {round} key {i} {alg:?}"
                    );
                    // Signed by the next key, labelled as this one.
                    let forged = sign(i, (i + 1) % 24, alg);
                    assert_eq!(
                        rejected(run(&backend, &forged), &forged).1,
                        "invalid credentials: invalid signature",
                        "round {round} key {i} {alg:?}"
                    );
                }
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(check);
        s.spawn(check);
    });
}
