//! Remote JWT keys (JWKS URL, OIDC discovery) served by a real HTTP server
//! on 127.0.0.1: fetch, refresh on unknown `kid`, rate limit, rotation,
//! stale-on-error, skipped keys. The clock is injected; nothing sleeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::health::{Health, Probe};
use auth_core::step::{
    Action, Checked, Outcome, TokenValidator, Transport, TransportError, UreqTransport,
};
use auth_core::{
    Algorithm, AuthError, Authenticated, Backend, JwtBackend, JwtValidator, JwtValidatorBuilder,
    TokenIssuer,
};

use crate::authenticate_blocking;
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
        self.token_at(sub, NOW)
    }

    fn token_at(&self, sub: &str, now: u64) -> String {
        self.issuer.issue(json!({"sub": sub}), at(now)).unwrap()
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
    /// A `Cache-Control` header for JWKS answers.
    cache_control: Option<String>,
    /// `jwks_uri` to name in the discovery document (default: ours).
    jwks_uri: Option<String>,
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
            ..State::default()
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
                            let jwks_uri = state
                                .jwks_uri
                                .clone()
                                .unwrap_or_else(|| format!("{base}/jwks.json"));
                            let doc = json!({"issuer": issuer, "jwks_uri": jwks_uri});
                            tiny_http::Response::from_string(doc.to_string())
                        }
                        "/jwks.json" => {
                            let mut answer = tiny_http::Response::from_string(state.jwks.clone())
                                .with_status_code(state.status);
                            if let Some(value) = &state.cache_control {
                                answer.add_header(
                                    tiny_http::Header::from_bytes(
                                        "cache-control",
                                        value.as_bytes(),
                                    )
                                    .unwrap(),
                                );
                            }
                            answer
                        }
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

/// RS256 keys from `provider`'s `/jwks.json`.
fn jwks_validator(provider: &Provider) -> JwtValidatorBuilder {
    JwtValidator::builder([Algorithm::RS256])
        .jwks_url(&format!("{}/jwks.json", provider.base))
        .allow_http(true)
}

fn jwks_backend(provider: &Provider) -> JwtBackend {
    JwtBackend::new(jwks_validator(provider).build().unwrap())
}

/// [`jwks_backend`] whose key set serves for `stale` past its max age
/// while fetches fail.
fn stale_if_error_backend(provider: &Provider, stale: Duration) -> JwtBackend {
    JwtBackend::new(
        jwks_validator(provider)
            .keys_stale_if_error(stale)
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
            .allow_http(true)
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
            .allow_http(true)
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
        (NOW + 183, "not a key set"),
        (NOW + 244, "down"),
    ] {
        let down = UreqTransport::builder()
            .timeout(Duration::from_millis(200))
            .build();
        let broken = |req| match breakage {
            "down" => Err(TransportError::Connect),
            _ => down.send(req),
        };
        match breakage {
            "500" => provider.set_status(500),
            "garbage" => {
                provider.set_status(200);
                provider.set_jwks("<html>oops</html>".into());
            }
            _ => provider.set_jwks(json!({"kty": "RSA", "kid": "k9"}).to_string()),
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

/// A well-formed key set with no usable key is the provider's word: the
/// keys held are withdrawn (their tokens, cached ones too, get 401), with
/// an error in the log; a later set with keys is taken again.
#[test]
fn a_key_set_with_no_usable_key_withdraws_the_old_keys() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    let alice = k1.token("alice");
    assert!(drive_at(&backend, &alice, NOW, &transport()).is_ok());
    provider.set_jwks(
        json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "k9"}]}).to_string(),
    );
    let unknown = signer("rsa2.key", "k9").token("bob");
    let err = drive_at(&backend, &unknown, NOW + 61, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: unknown signing key");
    let err = drive_at(&backend, &alice, NOW + 61, &transport()).unwrap_err();
    assert_eq!(
        err.status(),
        401,
        "the withdrawn key's token, cached before: {err}"
    );
    provider.set_jwks(jwks(&[&k1.jwk]));
    assert!(drive_at(&backend, &alice, NOW + 122, &transport()).is_ok());
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
            .allow_http(true)
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
        .allow_http(true)
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
    fetch.apply(&transport().send(request), at(NOW)).unwrap();
    assert!(waiter.is_done());
    assert!(matches!(
        validator.validate(&token, at(NOW)),
        Checked::ValidClaims(_)
    ));
    assert_eq!(provider.hits("/jwks.json"), 1);

    // A fetch that is dropped before it was sent (its request was cancelled
    // first) releases the waiters and does not count: no provider was
    // asked, so the next request may fetch at once.
    let validator = JwtValidator::builder([Algorithm::RS256])
        .jwks_url(&format!("{}/jwks.json", provider.base))
        .allow_http(true)
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
    let Checked::FetchKeys(fetch) = validator.validate(&token, at(NOW + 5)) else {
        panic!("an unsent fetch does not hold the interval")
    };
    // One that finished, even failing, does: the interval runs from its end.
    fetch
        .apply(&Err(TransportError::Timeout), at(NOW + 7))
        .unwrap_err();
    match validator.validate(&token, at(NOW + 66)) {
        Checked::Invalid(e) => assert_eq!(e.status().as_u16(), 503, "no keys yet: {e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        validator.validate(&token, at(NOW + 67)),
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

fn with_cache_control(provider: &Provider, value: &str) {
    provider.state.lock().unwrap().cache_control = Some(value.into());
}

#[test]
fn key_sets_expire_and_withdrawn_keys_stop_verifying() {
    let (k1, k2) = (signer("rsa.key", "k1"), signer("rsa2.key", "k2"));
    let provider = Provider::start(jwks(&[&k1.jwk, &k2.jwk]));
    with_cache_control(&provider, "public, max-age=120");
    let backend = jwks_backend(&provider);
    let old = k1.token("alice");
    assert!(drive_at(&backend, &old, NOW, &transport()).is_ok());
    // The provider withdraws k1; nobody sends an unknown kid.
    provider.set_jwks(jwks(&[&k2.jwk]));
    assert!(
        drive_at(&backend, &old, NOW + 119, &transport()).is_ok(),
        "fresh for its max-age (and cached)"
    );
    assert_eq!(provider.hits("/jwks.json"), 1);
    // Past max-age the next request refreshes, and k1 (even its cached
    // verification) stops verifying.
    let err = drive_at(&backend, &old, NOW + 121, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: unknown signing key");
    assert_eq!(provider.hits("/jwks.json"), 2);
    assert!(drive_at(&backend, &k2.token("bob"), NOW + 122, &transport()).is_ok());
    assert_eq!(provider.hits("/jwks.json"), 2);
}

#[test]
fn a_stale_key_set_serves_while_the_provider_fails_then_503() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    with_cache_control(&provider, "max-age=120");
    let backend = stale_if_error_backend(&provider, Duration::from_secs(600));
    assert!(drive_at(&backend, &k1.token("alice"), NOW, &transport()).is_ok());
    provider.set_status(500);
    // Due at 120; fetches fail; the old set serves, one fetch per interval.
    for t in [121, 150, 181, 300, 719] {
        let token = k1.token_at(&format!("u{t}"), NOW + t);
        let who = drive_at(&backend, &token, NOW + t, &transport());
        assert!(who.is_ok(), "t={t}: {who:?}");
    }
    assert_eq!(provider.hits("/jwks.json"), 1 + 4, "121, 181, 300, 719");
    // Past the stale limit (120 + 600): no key serves until a fetch works.
    let late = k1.token_at("late", NOW + 721);
    let err = drive_at(&backend, &late, NOW + 721, &transport()).unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    provider.set_status(200);
    let back = k1.token_at("back", NOW + 790);
    assert!(drive_at(&backend, &back, NOW + 790, &transport()).is_ok());
}

#[test]
fn cache_control_max_age_is_clamped() {
    let k1 = signer("rsa.key", "k1");
    for (header, fresh, due) in [
        ("max-age=5", 59, 61),
        ("no-store", 59, 61),
        ("max-age=999999999", 86_399, 86_401),
        ("private", 3_599, 3_601),
    ] {
        let provider = Provider::start(jwks(&[&k1.jwk]));
        with_cache_control(&provider, header);
        let backend = jwks_backend(&provider);
        assert!(drive_at(&backend, &k1.token("a"), NOW, &transport()).is_ok());
        let b = drive_at(
            &backend,
            &k1.token_at("b", NOW + fresh),
            NOW + fresh,
            &transport(),
        );
        assert!(b.is_ok(), "{header}: {b:?}");
        assert_eq!(provider.hits("/jwks.json"), 1, "{header}: still fresh");
        let c = k1.token_at("c", NOW + due);
        assert!(drive_at(&backend, &c, NOW + due, &transport()).is_ok());
        assert_eq!(provider.hits("/jwks.json"), 2, "{header}: refreshed");
    }
}

#[test]
fn new_material_under_a_known_kid_invalidates_cached_tokens() {
    let k1 = signer("rsa.key", "k1");
    let impostor = signer("rsa2.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&provider);
    let old = k1.token("alice");
    assert!(drive_at(&backend, &old, NOW, &transport()).is_ok());
    assert!(
        drive_at(&backend, &old, NOW + 1, &transport()).is_ok(),
        "cached"
    );
    // The provider replaces the material behind "k1"; a refresh happens
    // (an unknown kid after the interval).
    provider.set_jwks(jwks(&[&impostor.jwk]));
    let unknown = signer("rsa2.key", "k9").token("x");
    assert!(drive_at(&backend, &unknown, NOW + 61, &transport()).is_err());
    assert_eq!(provider.hits("/jwks.json"), 2);
    let err = drive_at(&backend, &old, NOW + 62, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: invalid signature");
    assert!(drive_at(&backend, &impostor.token("bob"), NOW + 62, &transport()).is_ok());
}

#[test]
fn a_key_set_without_kids_is_compared_by_material() {
    let mut plain1 = signer("rsa.key", "x").jwk;
    plain1.common.key_id = None;
    let mut plain2 = signer("rsa2.key", "x").jwk;
    plain2.common.key_id = None;
    let no_kid = |file: &str| {
        TokenIssuer::new(
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&key_file(file)).unwrap(),
        )
        .unwrap()
    };
    let provider = Provider::start(jwks(&[&plain1]));
    with_cache_control(&provider, "max-age=60");
    let backend = jwks_backend(&provider);
    let old = no_kid("rsa.key")
        .issue(json!({"sub": "alice"}), at(NOW))
        .unwrap();
    assert!(drive_at(&backend, &old, NOW, &transport()).is_ok());
    // The same material again: the cached verification stays good.
    assert!(drive_at(&backend, &old, NOW + 61, &transport()).is_ok());
    assert_eq!(provider.hits("/jwks.json"), 2);
    provider.set_jwks(jwks(&[&plain2]));
    let err = drive_at(&backend, &old, NOW + 122, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: invalid signature");
    assert_eq!(provider.hits("/jwks.json"), 3);
}

#[test]
fn local_keys_survive_a_remote_refresh() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let secret = b"a local 32-byte or longer secret!";
    let backend = JwtBackend::builder(
        JwtValidator::builder([Algorithm::RS256, Algorithm::HS256])
            .hmac_secret(secret)
            .jwks_url(&format!("{}/jwks.json", provider.base))
            .allow_http(true)
            .build()
            .unwrap(),
    )
    .cache_capacity(0)
    .build();
    let local = TokenIssuer::hs256(secret)
        .unwrap()
        .issue(json!({"sub": "svc"}), at(NOW))
        .unwrap();
    assert!(drive_at(&backend, &local, NOW, &transport()).is_ok());
    // Any client can trigger a refresh with a random kid.
    let random = signer("rsa2.key", "rand").token("x");
    assert!(drive_at(&backend, &random, NOW, &transport()).is_err());
    assert!(drive_at(&backend, &random, NOW + 61, &transport()).is_err());
    assert_eq!(provider.hits("/jwks.json"), 2);
    assert!(drive_at(&backend, &local, NOW + 62, &transport()).is_ok());
    assert!(drive_at(&backend, &k1.token("a"), NOW + 62, &transport()).is_ok());
}

#[test]
fn remote_symmetric_keys_are_refused_unless_allowed() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let secret = b"a 32-byte or longer shared secret";
    let short = b"sixteen byte key";
    let set = json!({"keys": [
        {"kty": "oct", "k": b64(secret), "kid": "s1"},
        {"kty": "oct", "k": b64(short), "kid": "s2"},
    ]});
    let provider = Provider::start(set.to_string());
    let token = |key: &[u8], kid: &str| {
        TokenIssuer::new(Algorithm::HS256, EncodingKey::from_secret(key).unwrap())
            .unwrap()
            .key_id(kid)
            .issue(json!({"sub": "svc"}), at(NOW))
            .unwrap()
    };
    let backend = |allow: bool| {
        JwtBackend::new(
            JwtValidator::builder([Algorithm::HS256])
                .jwks_url(&format!("{}/jwks.json", provider.base))
                .allow_http(true)
                .allow_remote_symmetric_keys(allow)
                .build()
                .unwrap(),
        )
    };
    // Refused: the set then has no usable key at all, and its token none
    // to verify with.
    let err = drive_at(&backend(false), &token(secret, "s1"), NOW, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: unknown signing key");
    // Allowed: the 32-byte key verifies; the 16-byte one is never taken.
    let allowed = backend(true);
    assert!(drive_at(&allowed, &token(secret, "s1"), NOW, &transport()).is_ok());
    let err = drive_at(&allowed, &token(short, "s2"), NOW, &transport()).unwrap_err();
    assert_eq!(err.to_string(), "invalid credentials: unknown signing key");
    // A short local secret is a configuration error, from every source.
    let jwk: Jwk =
        serde_json::from_value(json!({"kty": "oct", "k": b64(short), "kid": "l"})).unwrap();
    for built in [
        JwtValidator::builder([Algorithm::HS256]).jwk(jwk).build(),
        JwtValidator::builder([Algorithm::HS256])
            .decoding_key(None, jsonwebtoken::DecodingKey::from_secret(short).unwrap())
            .build(),
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(short)
            .build(),
    ] {
        assert_eq!(
            built.err(),
            Some(auth_core::ConfigError::KeyTooShort { len: 16, min: 32 })
        );
    }
}

#[test]
fn provider_urls_must_be_https_unless_allowed() {
    use auth_core::ConfigError;
    let url_error = |built: Result<JwtValidator, ConfigError>| match built {
        Err(ConfigError::Invalid { name, reason }) => format!("{name}: {reason}"),
        other => panic!("{other:?}", other = other.map(|_| ())),
    };
    let jwks = |url: &str| {
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url(url)
            .build()
    };
    assert_eq!(
        url_error(jwks("http://idp.example/jwks.json")),
        "jwks_url: must be https (allow_http for tests and loopback)"
    );
    assert_eq!(url_error(jwks("not a url")), "jwks_url: is not a valid URL");
    assert_eq!(
        url_error(jwks("ftp://idp.example/k")),
        "jwks_url: must be an https URL"
    );
    assert_eq!(url_error(jwks("/relative")), "jwks_url: has no host");
    assert!(jwks("https://idp.example/jwks.json").is_ok());
    let issuer = |url: &str| {
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(url)
            .build()
    };
    assert_eq!(
        url_error(issuer("http://idp.example")),
        "oidc_issuer: must be https (allow_http for tests and loopback)"
    );
    assert!(issuer("https://idp.example/realms/a").is_ok());
    let introspection = |url: &str| {
        auth_core::IntrospectionBackend::builder(url, "api", "secret")
            .build()
            .map(|_| ())
    };
    assert_eq!(
        introspection("http://idp.example/introspect"),
        Err(ConfigError::Invalid {
            name: "endpoint",
            reason: "must be https (allow_http for tests and loopback)"
        })
    );
    assert!(introspection("https://idp.example/introspect").is_ok());
}

#[test]
fn a_discovered_plain_http_jwks_uri_is_refused() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    // The issuer is https; its document (served here through a transport
    // that stands in for it) names a plain-http jwks_uri.
    let jwks_uri = format!("{}/jwks.json", provider.base);
    let document = json!({"issuer": "https://idp.example", "jwks_uri": jwks_uri}).to_string();
    let fake =
        move |req: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
            if req.uri().path() == "/.well-known/openid-configuration" {
                Ok(http::Response::new(document.clone().into_bytes()))
            } else {
                transport().send(req)
            }
        };
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer("https://idp.example")
            .build()
            .unwrap(),
    );
    let token = k1
        .issuer
        .issue(json!({"sub": "a", "iss": "https://idp.example"}), at(NOW))
        .unwrap();
    let err = drive_at(&backend, &token, NOW, &fake).unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(
        provider.hits("/jwks.json"),
        0,
        "the http jwks_uri is never fetched"
    );
}

#[test]
fn huge_durations_do_not_panic() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    with_cache_control(&provider, "max-age=18446744073709551615");
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url(&format!("{}/jwks.json", provider.base))
            .allow_http(true)
            .refresh_interval(Duration::MAX)
            .keys_max_age(Duration::MAX)
            .keys_max_age_range(Duration::MAX, Duration::MAX)
            .keys_stale_if_error(Duration::MAX)
            .leeway(Duration::MAX)
            .build()
            .unwrap(),
    );
    assert!(drive_at(&backend, &k1.token("a"), NOW, &transport()).is_ok());
    let unknown = signer("rsa2.key", "k9").token("x");
    assert!(drive_at(&backend, &unknown, NOW + 10, &transport()).is_err());
    let far = k1.token_at("b", 1 << 40);
    assert!(drive_at(&backend, &far, 1 << 40, &transport()).is_ok());
    // The blocking wait with a timeout the clock cannot hold.
    let validator = JwtValidator::builder([Algorithm::RS256])
        .jwks_url(&format!("{}/jwks.json", provider.base))
        .allow_http(true)
        .build()
        .unwrap();
    let Checked::FetchKeys(fetch) = validator.validate(&k1.token("c"), at(NOW)) else {
        panic!()
    };
    let Checked::WaitForKeys(waiter) = validator.validate(&k1.token("c"), at(NOW)) else {
        panic!()
    };
    let request = fetch.request().clone();
    fetch.apply(&transport().send(request), at(NOW)).unwrap();
    assert!(waiter.wait_blocking(Duration::MAX));
}

/// The key set's health at the injected time `now`, its fetches sent on a
/// real transport.
fn probe_at(backend: &JwtBackend, now: u64) -> Health {
    let mut probe = backend.probe(at(now));
    for _ in 0..4 {
        match probe {
            Probe::Done(health) => return health,
            Probe::Send(step) => {
                let response = transport().send(step.request().clone());
                probe = step.apply(&response, at(now));
            }
            _ => panic!("unknown probe"),
        }
    }
    panic!("too many steps")
}

#[test]
fn the_probe_fetches_due_keys_and_tells_fresh_stale_and_gone() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    with_cache_control(&provider, "max-age=120");
    let backend = stale_if_error_backend(&provider, Duration::from_secs(600));
    // Never fetched: the probe fetches (no token has come yet).
    assert_eq!(probe_at(&backend, NOW), Health::Ready);
    assert_eq!(provider.hits("/jwks.json"), 1);
    assert_eq!(probe_at(&backend, NOW + 60), Health::Ready);
    assert_eq!(provider.hits("/jwks.json"), 1, "fresh: not fetched again");
    assert!(drive_at(&backend, &k1.token("alice"), NOW + 60, &transport()).is_ok());
    assert_eq!(provider.hits("/jwks.json"), 1, "the probe's keys serve");

    provider.set_status(500);
    // Past its max age (120 s), the refresh fails: still serving.
    let stale = probe_at(&backend, NOW + 121);
    let Health::Degraded(reason) = &stale else {
        panic!("{stale:?}")
    };
    assert!(reason.contains("past its max age"), "{reason}");
    assert!(
        reason.ends_with("the last fetch failed: answered 500"),
        "{reason}"
    );
    assert_eq!(provider.hits("/jwks.json"), 2);
    // Within the refresh interval (60 s) the provider is not asked again.
    assert!(matches!(probe_at(&backend, NOW + 150), Health::Degraded(_)));
    assert_eq!(provider.hits("/jwks.json"), 2);
    // Past the stale limit (120 + 600 s): no remote key serves.
    let gone = probe_at(&backend, NOW + 721);
    assert!(
        matches!(&gone, Health::Down(reason) if reason.contains("past its stale limit")),
        "{gone:?}"
    );
    assert_eq!(provider.hits("/jwks.json"), 3);
    provider.set_status(200);
    assert_eq!(probe_at(&backend, NOW + 800), Health::Ready);
    assert_eq!(provider.hits("/jwks.json"), 4);
}

#[test]
fn the_probe_follows_discovery_and_a_fixed_key_is_ready_at_once() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let backend = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(&provider.base)
            .allow_http(true)
            .build()
            .unwrap(),
    );
    assert_eq!(probe_at(&backend, NOW), Health::Ready);
    assert_eq!(
        (
            provider.hits("/.well-known/openid-configuration"),
            provider.hits("/jwks.json")
        ),
        (1, 1)
    );
    // A set with no key this validator can use verifies nothing.
    let hmac_only = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]});
    let empty = Provider::start(hmac_only.to_string());
    let backend = jwks_backend(&empty);
    let health = probe_at(&backend, NOW);
    assert!(
        matches!(&health, Health::Down(reason) if reason.contains("no usable signing key")),
        "{health:?}"
    );
    // A probe dropped before its answer (a readiness request gone) counts
    // as a fetch: the next probe within the refresh interval asks nobody.
    let cut = Provider::start(jwks(&[&k1.jwk]));
    let backend = jwks_backend(&cut);
    let Probe::Send(step) = backend.probe(at(NOW)) else {
        panic!("never fetched: the probe fetches")
    };
    let _sent = transport().send(step.request().clone());
    drop(step);
    assert_eq!(cut.hits("/jwks.json"), 1);
    let health = probe_at(&backend, NOW + 30);
    assert!(health.is_down(), "{health:?}");
    assert_eq!(cut.hits("/jwks.json"), 1, "within the refresh interval");
    assert_eq!(probe_at(&backend, NOW + 61), Health::Ready);
    assert_eq!(cut.hits("/jwks.json"), 2);
    // Requests still fetch the keys they need meanwhile: a cut-short probe
    // never keeps a server without keys.
    let backend = jwks_backend(&cut);
    let Probe::Send(step) = backend.probe(at(NOW)) else {
        panic!("never fetched: the probe fetches")
    };
    drop(step);
    assert!(drive_at(&backend, &k1.token("alice"), NOW + 1, &transport()).is_ok());
    assert_eq!(cut.hits("/jwks.json"), 3);
    assert_eq!(probe_at(&backend, NOW + 2), Health::Ready);
    assert_eq!(cut.hits("/jwks.json"), 3);

    let fixed = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(b"a secret of thirty-two bytes!!!!")
            .build()
            .unwrap(),
    );
    assert!(matches!(fixed.probe(at(NOW)), Probe::Done(Health::Ready)));
}

#[test]
fn a_probe_while_a_requests_first_fetch_runs_is_degraded() {
    let k1 = signer("rsa.key", "k1");
    let provider = Provider::start(jwks(&[&k1.jwk]));
    let validator = jwks_validator(&provider).build().unwrap();
    let Checked::FetchKeys(fetch) = validator.validate(&k1.token("alice"), at(NOW)) else {
        panic!("never fetched: the request fetches")
    };
    // Not checked yet (the request's fetch under way): degraded, not down.
    let Probe::Done(health) = validator.probe(at(NOW)) else {
        panic!("a second fetch while one runs")
    };
    assert!(
        matches!(&health, Health::Degraded(reason) if reason.contains("first fetch is under way")),
        "{health:?}"
    );
    let request = fetch.request().clone();
    fetch.apply(&transport().send(request), at(NOW)).unwrap();
    assert!(matches!(
        validator.probe(at(NOW)),
        Probe::Done(Health::Ready)
    ));
    assert_eq!(provider.hits("/jwks.json"), 1);
}

#[test]
fn local_keys_beside_unusable_remote_ones_are_degraded_not_down() {
    // The provider answers something that is no key set.
    let provider = Provider::start("not a key set".into());
    let remote_only = jwks_backend(&provider);
    let with_local = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256, Algorithm::HS256])
            .hmac_secret(b"a 32-byte or longer shared secret!")
            .jwks_url(&format!("{}/jwks.json", provider.base))
            .allow_http(true)
            .build()
            .unwrap(),
    );
    assert!(matches!(probe_at(&remote_only, NOW), Health::Down(_)));
    let health = probe_at(&with_local, NOW);
    assert!(
        matches!(&health, Health::Degraded(reason)
            if reason.contains("no remote signing keys yet; the last fetch failed")),
        "{health:?}"
    );
    assert_eq!(provider.hits("/jwks.json"), 2, "each probe fetched");
}
