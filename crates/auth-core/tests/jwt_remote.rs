//! Remote JWT keys (JWKS URL, OIDC discovery) served by a real HTTP server
//! on 127.0.0.1: fetch, refresh on unknown `kid`, rate limit, rotation,
//! stale-on-error, skipped keys. The clock is injected; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::jwt::{Algorithm, Checked, JwtBackend, JwtValidator, TokenIssuer, TokenValidator};
use auth_core::transport::{Transport, UreqTransport, authenticate_blocking};
use auth_core::{Action, AuthError, Authenticated, Backend, Outcome};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

struct Signer {
    issuer: TokenIssuer,
    jwk: Jwk,
}

/// An RS256 signer for a test key, and its public JWK with `kid`.
fn signer(file: &str, kid: &str) -> Signer {
    let key = EncodingKey::from_rsa_pem(&key_file(file)).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    let issuer = TokenIssuer::new(Algorithm::RS256, key)
        .unwrap()
        .key_id(kid)
        .issuer("ISSUER");
    Signer { issuer, jwk }
}

impl Signer {
    fn token(&self, sub: &str) -> String {
        self.issuer.issue(json!({"sub": sub}), at(NOW)).unwrap()
    }
}

fn jwks(keys: &[&Jwk]) -> String {
    json!({"keys": keys}).to_string()
}

#[derive(Default)]
struct State {
    jwks: String,
    /// Status to answer JWKS requests with (200 unless a test breaks it).
    status: u16,
    /// `issuer` to claim in the discovery document (default: the real one).
    claimed_issuer: Option<String>,
}

/// A real HTTP server with a discovery document and a JWKS, counting hits.
struct Provider {
    base: String,
    state: Arc<Mutex<State>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Provider {
    fn start(jwks: String) -> Provider {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let state = Arc::new(Mutex::new(State {
            jwks,
            status: 200,
            claimed_issuer: None,
        }));
        let hits = Arc::new(Mutex::new(HashMap::new()));
        for _ in 0..2 {
            let (server, state, hits, base) = (
                Arc::clone(&server),
                Arc::clone(&state),
                Arc::clone(&hits),
                base.clone(),
            );
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let path = request.url().to_owned();
                    *hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                    let state = state.lock().unwrap();
                    let response = match path.as_str() {
                        "/.well-known/openid-configuration" => {
                            let issuer =
                                state.claimed_issuer.clone().unwrap_or_else(|| base.clone());
                            let doc =
                                json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks.json")});
                            tiny_http::Response::from_string(doc.to_string())
                        }
                        "/jwks.json" => tiny_http::Response::from_string(state.jwks.clone())
                            .with_status_code(state.status),
                        _ => tiny_http::Response::from_string("").with_status_code(404),
                    };
                    drop(state);
                    let _ = request.respond(response);
                }
            });
        }
        Provider { base, state, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn set_jwks(&self, jwks: String) {
        self.state.lock().unwrap().jwks = jwks;
    }

    fn set_status(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }
}

fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn transport() -> UreqTransport {
    UreqTransport::builder()
        .timeout(Duration::from_secs(2))
        .build()
}

/// Drives every network step with `transport` at the injected time `now`.
fn drive_at(
    backend: &dyn Backend,
    token: &str,
    now: u64,
    transport: &dyn Transport,
) -> Result<Authenticated, AuthError> {
    let req = bearer(token);
    let mut outcome = backend.authenticate(&req, at(now));
    for _ in 0..8 {
        match outcome {
            Outcome::Done(result) => return result,
            Outcome::Send(step) => {
                let (action, resume) = step.into_parts();
                outcome = match action {
                    Action::Send(request) => resume.resume(transport.send(request), &req, at(now)),
                    Action::Wait(waiter) => {
                        assert!(
                            waiter.wait_blocking(Duration::from_secs(5)),
                            "the fetch never finished"
                        );
                        resume.woken(&req, at(now))
                    }
                    _ => panic!("unknown action"),
                };
            }
            _ => panic!("unknown outcome"),
        }
    }
    panic!("too many steps")
}

fn jwks_backend(provider: &Provider) -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url(&format!("{}/jwks.json", provider.base))
            .build()
            .unwrap(),
    )
}

#[test]
fn jwks_url_end_to_end_with_the_blocking_driver() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    // Real clock: authenticate_blocking is what a custom server calls.
    let token = k1
        .issuer
        .issue(json!({"sub": "alice"}), SystemTime::now())
        .unwrap();
    let who = authenticate_blocking(&backend, &bearer(&token), &transport()).unwrap();
    assert_eq!(who.auth.identifier(), "alice");
    assert_eq!(provider.hits("/jwks.json"), 1);
    let other = k1
        .issuer
        .issue(json!({"sub": "bob"}), SystemTime::now())
        .unwrap();
    assert_eq!(
        authenticate_blocking(&backend, &bearer(&other), &transport())
            .unwrap()
            .auth
            .identifier(),
        "bob"
    );
    assert_eq!(provider.hits("/jwks.json"), 1, "known kid: no second fetch");
    // Without a token nothing is fetched at all.
    assert!(
        authenticate_blocking(&backend, &http::Request::new(()), &transport())
            .unwrap_err()
            .is_missing()
    );
}

#[test]
fn oidc_discovery_requires_the_same_issuer() {
    let provider = Provider::start(String::new());
    let k1 = signer("rsa.key", "k1");
    provider.set_jwks(jwks(&[&k1.jwk]));
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(&provider.base)
            .build()
            .unwrap(),
    );
    let token = k1
        .issuer
        .issue(json!({"sub": "alice", "iss": provider.base}), at(NOW))
        .unwrap();
    // The signer sets iss "ISSUER" only when absent; ours is the provider.
    let who = drive_at(&backend, &token, NOW, &transport()).unwrap();
    assert_eq!(who.auth.key(), format!("jwt:{}|alice", provider.base));
    assert_eq!(
        (
            provider.hits("/.well-known/openid-configuration"),
            provider.hits("/jwks.json")
        ),
        (1, 1)
    );
    // A token from another issuer is refused even though the key matches.
    let foreign = k1.token("mallory");
    assert_eq!(
        drive_at(&backend, &foreign, NOW, &transport())
            .unwrap_err()
            .to_string(),
        "invalid credentials: token has the wrong issuer"
    );

    // A provider whose document names another issuer is not trusted.
    let lying = Provider::start(jwks(&[&k1.jwk]));
    lying.state.lock().unwrap().claimed_issuer = Some("https://someone-else.example".into());
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(&lying.base)
            .build()
            .unwrap(),
    );
    let token = k1
        .issuer
        .issue(json!({"sub": "alice", "iss": lying.base}), at(NOW))
        .unwrap();
    let err = drive_at(&backend, &token, NOW, &transport()).unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(lying.hits("/jwks.json"), 0);
}

#[test]
fn rotation_without_restart() {
    let (k1, k2) = (signer("rsa.key", "k1"), signer("rsa2.key", "k2"));
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    let old = k1.token("alice");
    assert!(drive_at(&backend, &old, NOW, &transport()).is_ok());
    assert!(
        drive_at(&backend, &old, NOW + 1, &transport()).is_ok(),
        "cached"
    );

    // The provider rotates: k2 in, k1 out. After the refresh interval, a k2
    // token triggers a refresh and verifies; k1 tokens, even cached ones,
    // are refused from then on.
    provider.set_jwks(jwks(&[&k2.jwk]));
    let new = k2.token("bob");
    assert_eq!(
        drive_at(&backend, &new, NOW + 61, &transport())
            .unwrap()
            .auth
            .identifier(),
        "bob"
    );
    assert_eq!(provider.hits("/jwks.json"), 2);
    let err = drive_at(&backend, &old, NOW + 62, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: unknown signing key");
    assert_eq!(
        provider.hits("/jwks.json"),
        2,
        "within the interval: no new fetch"
    );
}

#[test]
fn random_kids_cannot_make_us_hammer_the_provider() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    assert!(drive_at(&backend, &k1.token("alice"), NOW, &transport()).is_ok());
    let attacker = EncodingKey::from_rsa_pem(&key_file("rsa2.key")).unwrap();
    // 1,000 tokens with fresh random kids over two minutes (one per 120 ms).
    for i in 0..1000_u64 {
        let issuer = TokenIssuer::new(Algorithm::RS256, attacker.clone())
            .unwrap()
            .key_id(format!("rand-{i}"));
        let token = issuer.issue(json!({"sub": "x"}), at(NOW)).unwrap();
        let err = drive_at(&backend, &token, NOW + 1 + i * 120 / 1000, &transport()).unwrap_err();
        assert_eq!(err.status(), 401, "{err}");
    }
    // The initial fetch, then at most one per 60 s interval: t=1 and t=61.
    assert_eq!(provider.hits("/jwks.json"), 3);
    assert!(drive_at(&backend, &k1.token("alice"), NOW + 121, &transport()).is_ok());
}

#[test]
fn failed_refresh_keeps_serving_the_last_good_keys() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    assert!(drive_at(&backend, &k1.token("alice"), NOW, &transport()).is_ok());
    let unknown = signer("rsa2.key", "k9").token("bob");
    for (t, breakage) in [
        (NOW + 61, "500"),
        (NOW + 122, "garbage"),
        (NOW + 183, "no usable keys"),
        (NOW + 244, "down"),
    ] {
        let down = UreqTransport::builder()
            .timeout(Duration::from_millis(200))
            .build();
        let broken = |req| match breakage {
            "down" => Err(auth_core::transport::TransportError::Connect),
            _ => down.send(req),
        };
        match breakage {
            "500" => provider.set_status(500),
            "garbage" => {
                provider.set_status(200);
                provider.set_jwks("<html>oops</html>".into());
            }
            _ => provider.set_jwks(
                json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "k9"}]}).to_string(),
            ),
        }
        let err = drive_at(&backend, &unknown, t, &broken).unwrap_err();
        assert_eq!(err.status(), 503, "{breakage}: {err}");
        // A token under the old key still works, without a fetch.
        let hits = provider.hits("/jwks.json");
        assert!(
            drive_at(&backend, &k1.token("alice"), t, &transport()).is_ok(),
            "{breakage}"
        );
        assert_eq!(provider.hits("/jwks.json"), hits);
    }
}

#[test]
fn unusable_keys_are_skipped_and_the_count_is_bounded() {
    let k1 = signer("rsa.key", "k1");
    let mut entries: Vec<Value> = vec![
        json!({"kty": "RSA", "n": "not-base64!", "e": "AQAB", "kid": "broken"}),
        json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "hmac"}),
        json!({"kid": "no-kty"}),
        json!(serde_json::to_value(&k1.jwk).unwrap()),
    ];
    let mut enc = serde_json::to_value(&k1.jwk).unwrap();
    enc["use"] = json!("enc");
    enc["kid"] = json!("for-encryption");
    entries.push(enc);
    let provider = Provider::start(json!({"keys": entries}).to_string());
    let backend = jwks_backend(&provider);
    assert!(drive_at(&backend, &k1.token("alice"), NOW, &transport()).is_ok());
    let enc_signed = TokenIssuer::new(
        Algorithm::RS256,
        EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap(),
    )
    .unwrap()
    .key_id("for-encryption")
    .issue(json!({"sub": "x"}), at(NOW))
    .unwrap();
    assert!(
        drive_at(&backend, &enc_signed, NOW, &transport()).is_err(),
        "a use=enc key never verifies"
    );

    // 40 copies of the key under different kids, capped at 5 kept.
    let many: Vec<Value> = (0..40)
        .map(|i| {
            let mut jwk = serde_json::to_value(&k1.jwk).unwrap();
            jwk["kid"] = json!(format!("k{i}"));
            jwk
        })
        .collect();
    let provider = Provider::start(json!({"keys": many}).to_string());
    let capped = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url(&format!("{}/jwks.json", provider.base))
            .max_keys(5)
            .build()
            .unwrap(),
    );
    assert!(
        drive_at(
            &capped,
            &signer("rsa.key", "k4").token("a"),
            NOW,
            &transport()
        )
        .is_ok()
    );
    assert!(
        drive_at(
            &capped,
            &signer("rsa.key", "k5").token("a"),
            NOW,
            &transport()
        )
        .is_err()
    );
}

#[test]
fn one_fetch_in_flight_at_a_time() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let validator = JwtValidator::builder([Algorithm::RS256])
        .jwks_url(&format!("{}/jwks.json", provider.base))
        .build()
        .unwrap();
    let token = k1.token("alice");
    let Checked::FetchKeys(fetch) = validator.validate(&token, at(NOW)) else {
        panic!("first use must fetch")
    };
    // While it is out, others wait for it rather than fetching too.
    let Checked::WaitForKeys(waiter) = validator.validate(&token, at(NOW)) else {
        panic!("the second must wait")
    };
    assert!(!waiter.is_done());
    let request = fetch.request().clone();
    fetch.apply(transport().send(request), at(NOW)).unwrap();
    assert!(waiter.is_done());
    assert!(matches!(
        validator.validate(&token, at(NOW)),
        Checked::ValidClaims(_)
    ));
    assert_eq!(provider.hits("/jwks.json"), 1);

    // A fetch that is dropped unfinished (its request was cancelled) releases
    // the waiters; the refresh interval still holds until the next attempt.
    let validator = JwtValidator::builder([Algorithm::RS256])
        .jwks_url(&format!("{}/jwks.json", provider.base))
        .build()
        .unwrap();
    let Checked::FetchKeys(lost) = validator.validate(&token, at(NOW)) else {
        panic!()
    };
    let Checked::WaitForKeys(waiter) = validator.validate(&token, at(NOW)) else {
        panic!()
    };
    drop(lost);
    assert!(waiter.wait_blocking(Duration::from_millis(10)));
    match validator.validate(&token, at(NOW + 5)) {
        Checked::Invalid(e) => assert_eq!(e.status().as_u16(), 503, "no keys yet: {e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        validator.validate(&token, at(NOW + 61)),
        Checked::FetchKeys(_)
    ));
}

#[test]
fn hits_counter_is_per_server() {
    // Guards the tests above: two providers never share counts.
    let a = Provider::start(String::new());
    let b = Provider::start(String::new());
    let _ = transport().send(
        http::Request::get(format!("{}/jwks.json", a.base))
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!((a.hits("/jwks.json"), b.hits("/jwks.json")), (1, 0));
}

#[test]
fn concurrent_first_requests_fetch_once() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = Arc::new(jwks_backend(&provider));
    let token = Arc::new(k1.token("alice"));
    let ok = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (backend, token, ok) = (Arc::clone(&backend), Arc::clone(&token), Arc::clone(&ok));
            thread::spawn(move || {
                if drive_at(&*backend, &token, NOW, &transport()).is_ok() {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        provider.hits("/jwks.json"),
        1,
        "one fetch in flight at a time"
    );
    assert_eq!(
        ok.load(Ordering::SeqCst),
        16,
        "the others waited for it and succeeded"
    );
}
