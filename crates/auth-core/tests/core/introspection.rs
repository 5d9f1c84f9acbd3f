//! Introspection backend: the request it builds, recorded Keycloak-shaped
//! answers, every error mapping, the cache (injected clock), and single
//! flight — in process and, with N = 100 threads, against a real server
//! that counts its calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::health::{Health, Probe};
use auth_core::step::{Action, Outcome, TransportError, UreqTransport};
use auth_core::{AuthError, Authenticated, Backend, ClientAuth, IntrospectionBackend, Source};

use crate::authenticate_blocking;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const TOKEN: &str = "opaque-token-0123456789";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

/// An answer as recorded from Keycloak 24 for a user token (values changed).
fn keycloak_user_answer() -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW - 60, "jti": "2f1c7f0e-5c1a-4c5e-9b8e-0d6c2f8e1a11",
        "iss": "https://sso.example/realms/acme", "aud": ["orders-api", "account"],
        "sub": "f:7b1d3c9e-0c2a-4a55-8f3e-9a1b2c3d4e5f:jane",
        "typ": "Bearer", "azp": "web-frontend", "session_state": "5a0b...",
        "preferred_username": "jane", "email": "jane@example.com", "email_verified": true,
        "acr": "1", "scope": "openid profile email",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "customer"]},
        "resource_access": {
            "orders-api": {"roles": ["orders:read", "orders:write"]},
            "account": {"roles": ["manage-account", "view-profile"]}
        },
        "client_id": "web-frontend", "username": "jane", "token_type": "Bearer", "active": true
    })
}

/// A Keycloak answer for a client-credentials (service account) token.
fn keycloak_service_answer() -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW, "iss": "https://sso.example/realms/acme", "aud": "orders-api",
        "sub": "a3c1...service-account", "typ": "Bearer", "azp": "billing-job",
        "preferred_username": "service-account-billing-job", "client_id": "billing-job",
        "token_type": "Bearer", "active": true
    })
}

type Reply = Result<http::Response<Vec<u8>>, TransportError>;

/// A scripted provider: the answer to each request.
type Script = Box<dyn Fn(&http::Request<Vec<u8>>) -> Reply>;

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut response = http::Response::new(body.to_string().into_bytes());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Ok(response)
}

/// Drives `backend` at time `now`, answering sends with `reply` and
/// counting them.
fn drive(
    backend: &dyn Backend,
    token: &str,
    now: u64,
    calls: &AtomicUsize,
    reply: &dyn Fn(&http::Request<Vec<u8>>) -> Reply,
) -> Result<Authenticated, AuthError> {
    let req = bearer(token);
    let mut outcome = backend.authenticate(&req, at(now));
    loop {
        match outcome {
            Outcome::Done(result) => return result,
            Outcome::Send(step) => {
                let (action, resume) = step.into_parts();
                let Action::Send(request) = action else {
                    panic!("nobody else is asking")
                };
                calls.fetch_add(1, Ordering::SeqCst);
                outcome = resume.resume(reply(&request), &req, at(now));
            }
            _ => panic!("unknown outcome"),
        }
    }
}

fn keycloak() -> IntrospectionBackend {
    auth_core::IntrospectionBackend::keycloak(
        "https://sso.example",
        "acme",
        "orders-api",
        "s3cr3t:&=",
    )
    .build()
    .unwrap()
}

fn with(answer: Value) -> impl Fn(&http::Request<Vec<u8>>) -> Reply {
    move |_| json_reply(200, &answer)
}

#[test]
fn the_request_follows_rfc_7662_and_6749() {
    let basic = keycloak().request_for(TOKEN);
    assert_eq!(basic.method(), http::Method::POST);
    assert_eq!(
        basic.uri(),
        "https://sso.example/realms/acme/protocol/openid-connect/token/introspect"
    );
    assert_eq!(
        basic.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        std::str::from_utf8(basic.body()).unwrap(),
        format!("token={TOKEN}&token_type_hint=access_token")
    );
    // Basic over the form-encoded id and secret (RFC 6749 §2.3.1).
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode("orders-api:s3cr3t%3A%26%3D");
    assert_eq!(
        basic.headers()["authorization"],
        format!("Basic {expected}").as_str()
    );
    assert!(basic.headers()["authorization"].is_sensitive());

    let post = IntrospectionBackend::builder("http://127.0.0.1:1/introspect", "api", "p&ss")
        .allow_http(true)
        .client_auth(ClientAuth::ClientSecretPost)
        .build()
        .unwrap()
        .request_for("a b+c");
    assert!(post.headers().get("authorization").is_none());
    assert_eq!(
        std::str::from_utf8(post.body()).unwrap(),
        "token=a+b%2Bc&token_type_hint=access_token&client_id=api&client_secret=p%26ss"
    );
}

#[test]
fn the_raw_token_is_kept_only_on_request() {
    let calls = AtomicUsize::new(0);
    let keeping =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "a", "s")
            .keep_token(true)
            .build()
            .unwrap();
    let who = drive(&keeping, TOKEN, NOW, &calls, &with(keycloak_user_answer())).unwrap();
    assert_eq!(who.auth.get("access_token"), Some(&json!(TOKEN)));
    // And the cached answer holds it too: a repeat is served from it.
    let again = drive(&keeping, TOKEN, NOW, &calls, &with(keycloak_user_answer())).unwrap();
    assert_eq!(again.auth.get("access_token"), Some(&json!(TOKEN)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn keycloak_user_token() {
    let calls = AtomicUsize::new(0);
    let who = drive(
        &keycloak(),
        TOKEN,
        NOW,
        &calls,
        &with(keycloak_user_answer()),
    )
    .unwrap();
    let auth = who.auth;
    assert_eq!(auth.source(), Source::Introspection);
    assert_eq!(
        auth.identifier(),
        "f:7b1d3c9e-0c2a-4a55-8f3e-9a1b2c3d4e5f:jane"
    );
    assert_eq!(
        auth.key(),
        "introspect:f:7b1d3c9e-0c2a-4a55-8f3e-9a1b2c3d4e5f:jane"
    );
    assert_eq!(auth.get("preferred_username"), Some(&json!("jane")));
    assert_eq!(
        auth.get("access_token"),
        None,
        "the raw token is not kept unless asked for"
    );
    assert!(!format!("{:?}", auth.data()).contains(TOKEN));
    assert!(auth.has_realm_role("customer") && !auth.has_realm_role("admin"));
    assert_eq!(
        auth.client_roles("orders-api").collect::<Vec<_>>(),
        ["orders:read", "orders:write"]
    );
    assert!(auth.has_client_role("account", "view-profile"));
    assert!(!auth.has_client_role("orders-api", "view-profile"));
    assert!(auth.client_roles("nope").next().is_none());
    assert!(auth.has_scope("email"));
    assert!(
        !format!("{auth:?}").contains(TOKEN),
        "Debug shows attribute names only"
    );
}

#[test]
fn service_account_by_client_id_and_optional_checks() {
    let calls = AtomicUsize::new(0);
    let by_client =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .identifier_claim("client_id")
            .audience("orders-api")
            .issuer("https://sso.example/realms/acme")
            .allowed_client("billing-job")
            .token_type("bearer")
            .build()
            .unwrap();
    let who = drive(
        &by_client,
        TOKEN,
        NOW,
        &calls,
        &with(keycloak_service_answer()),
    )
    .unwrap();
    assert_eq!(who.auth.identifier(), "billing-job");

    let strict = || {
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .identifier_claim("client_id")
            .audience("orders-api")
            .issuer("https://sso.example/realms/acme")
            .allowed_client("billing-job")
            .token_type("bearer")
            .build()
            .unwrap()
    };
    let checks: [(&str, Value, &str); 4] = [
        ("aud", json!("other-api"), "token has the wrong audience"),
        (
            "iss",
            json!("https://evil.example/realms/acme"),
            "token has the wrong issuer",
        ),
        (
            "client_id",
            json!("intruder"),
            "token was issued to another client",
        ),
        (
            "token_type",
            json!("DPoP"),
            "token has an unexpected token_type",
        ),
    ];
    for (claim, value, reason) in checks {
        let mut answer = keycloak_service_answer();
        answer[claim] = value;
        let err = drive(&strict(), TOKEN, NOW, &calls, &with(answer)).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.to_string()),
            (401, format!("invalid credentials: {reason}")),
            "{claim}"
        );
    }
    // The identifier claim must be there.
    let mut anonymous = keycloak_service_answer();
    anonymous.as_object_mut().unwrap().remove("client_id");
    let by_client =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .identifier_claim("client_id")
            .build()
            .unwrap();
    let err = drive(&by_client, TOKEN, NOW, &calls, &with(anonymous)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid credentials: introspection answer has no client_id"
    );
    // azp stands in for a missing client_id.
    let mut azp_only = keycloak_service_answer();
    azp_only.as_object_mut().unwrap().remove("client_id");
    let azp =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .allowed_client("billing-job")
            .build()
            .unwrap();
    assert!(drive(&azp, TOKEN, NOW, &calls, &with(azp_only)).is_ok());
}

#[test]
fn inactive_and_bad_answers() {
    let calls = AtomicUsize::new(0);
    for (answer, what) in [
        (json!({"active": false}), "inactive"),
        (json!({"active": "true", "sub": "x"}), "active as a string"),
        (json!({"sub": "x"}), "no active"),
        (
            json!({"active": true, "sub": "x", "exp": NOW - 1}),
            "active but expired",
        ),
    ] {
        let err = drive(&keycloak(), TOKEN, NOW, &calls, &with(answer)).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.to_string().as_str()),
            (401, "invalid credentials: token is not active"),
            "{what}"
        );
        assert_eq!(
            err.www_authenticate().as_deref(),
            Some(r#"Bearer error="invalid_token", error_description="token is not active""#)
        );
    }
    let missing_sub = drive(
        &keycloak(),
        TOKEN,
        NOW,
        &calls,
        &with(json!({"active": true})),
    )
    .unwrap_err();
    assert_eq!(
        missing_sub.to_string(),
        "invalid credentials: introspection answer has no sub"
    );
}

#[test]
fn provider_failures_are_503_and_never_show_secrets() {
    let calls = AtomicUsize::new(0);
    let raw = |status: u16, body: &'static str| {
        move |_: &http::Request<Vec<u8>>| -> Reply {
            let mut r = http::Response::new(body.as_bytes().to_vec());
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok(r)
        }
    };
    let cases: Vec<(Script, &str)> = vec![
        (
            Box::new(raw(401, r#"{"error":"invalid_client"}"#)),
            "rejected our client credentials",
        ),
        (Box::new(raw(403, "")), "rejected our client credentials"),
        (Box::new(raw(500, "oops")), "answered 500"),
        (Box::new(raw(502, "")), "answered 502"),
        (Box::new(raw(200, "<html>")), "not a JSON object"),
        (Box::new(raw(200, "[true]")), "not a JSON object"),
        (
            Box::new(|_: &http::Request<Vec<u8>>| Err(TransportError::Timeout)),
            "timed out",
        ),
        (
            Box::new(|_: &http::Request<Vec<u8>>| Err(TransportError::Connect)),
            "could not connect",
        ),
        (
            Box::new(|_: &http::Request<Vec<u8>>| Err(TransportError::TooLarge { limit: 1024 })),
            "exceeds 1024 bytes",
        ),
    ];
    for (reply, reason) in cases {
        let err = drive(&keycloak(), TOKEN, NOW, &calls, &*reply).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert_eq!(err.status().as_u16(), 503, "{reason}: {shown}");
        assert!(shown.contains(reason), "{reason}: {shown}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert_eq!(err.www_authenticate(), None);
    }
    let debug = format!("{:?}", keycloak());
    assert!(
        debug.contains("orders-api") && !debug.contains("s3cr3t"),
        "{debug}"
    );
}

#[test]
fn cache_by_exp_max_ttl_and_inactive_ttl() {
    let calls = AtomicUsize::new(0);
    let backend =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .max_cache_ttl(Duration::from_secs(120))
            .inactive_cache_ttl(Duration::from_secs(5))
            .build()
            .unwrap();
    let answer = with(keycloak_user_answer()); // exp = NOW + 300
    drive(&backend, TOKEN, NOW, &calls, &answer).unwrap();
    drive(&backend, TOKEN, NOW + 119, &calls, &answer).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a hit makes no call");
    drive(&backend, TOKEN, NOW + 120, &calls, &answer).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "max ttl reached");
    // exp is earlier than the max ttl: exp wins.
    let mut short = keycloak_user_answer();
    short["exp"] = json!(NOW + 30);
    drive(&backend, "other-token", NOW, &calls, &with(short.clone())).unwrap();
    drive(
        &backend,
        "other-token",
        NOW + 29,
        &calls,
        &with(short.clone()),
    )
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        drive(&backend, "other-token", NOW + 30, &calls, &with(short)).is_err(),
        "expired: asked again, inactive"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // Inactive answers are remembered briefly.
    let inactive = with(json!({"active": false}));
    for t in [NOW, NOW + 4] {
        assert!(drive(&backend, "revoked", t, &calls, &inactive).is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(drive(&backend, "revoked", NOW + 5, &calls, &inactive).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    // Provider failures are not cached.
    let down = |_: &http::Request<Vec<u8>>| -> Reply { Err(TransportError::Connect) };
    assert!(drive(&backend, "new", NOW, &calls, &down).is_err());
    assert!(drive(&backend, "new", NOW, &calls, &with(keycloak_user_answer())).is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

/// `Duration::MAX` for both TTLs, and answers whose `exp` is far in the
/// future or at the edge of u64: no panic (the arithmetic saturates), and
/// `exp` still bounds the cache.
#[test]
fn huge_ttls_and_far_exps_do_not_panic() {
    let calls = AtomicUsize::new(0);
    let backend =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "orders-api", "x")
            .max_cache_ttl(Duration::MAX)
            .inactive_cache_ttl(Duration::MAX)
            .build()
            .unwrap();
    for (token, exp) in [
        ("far", json!(u64::MAX)),
        ("float", json!(1e300)),
        ("soon", json!(NOW + 10)),
    ] {
        let mut answer = keycloak_user_answer();
        answer["exp"] = exp;
        let answer = with(answer);
        drive(&backend, token, NOW, &calls, &answer).unwrap();
        drive(&backend, token, NOW + 5, &calls, &answer).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "every answer was cached");
    // Past its exp, the short-lived token is asked about again.
    let mut soon = keycloak_user_answer();
    soon["exp"] = json!(NOW + 10);
    assert!(drive(&backend, "soon", NOW + 10, &calls, &with(soon)).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let inactive = with(json!({"active": false}));
    for t in [NOW, NOW + 1_000_000_000] {
        assert!(drive(&backend, "revoked", t, &calls, &inactive).is_err());
    }
}

#[test]
fn no_token_is_no_credentials_and_configuration_is_checked() {
    let outcome = keycloak().authenticate(&http::Request::new(()), at(NOW));
    assert!(outcome.into_done().unwrap().unwrap_err().is_missing());
    for bad in ["", "not a url", "ftp://x/introspect", "/relative"] {
        assert!(
            IntrospectionBackend::builder(bad, "id", "s")
                .allow_http(true)
                .build()
                .is_err(),
            "{bad}"
        );
    }
    assert!(
        IntrospectionBackend::builder("https://x/i", "", "s")
            .build()
            .is_err()
    );
    assert!(
        IntrospectionBackend::builder("https://x/i", "id", "s")
            .identifier_claim("")
            .build()
            .is_err()
    );
    // The Keycloak preset's endpoint: the realm is one path segment.
    let keycloak = IntrospectionBackend::keycloak("https://sso.example", "a b/../c", "id", "s")
        .build()
        .unwrap();
    let Outcome::Send(step) = keycloak.authenticate(&bearer(TOKEN), at(NOW)) else {
        panic!("a new token asks the provider");
    };
    assert_eq!(
        step.request().map(|r| r.uri().to_string()).as_deref(),
        Some("https://sso.example/realms/a+b%2F..%2Fc/protocol/openid-connect/token/introspect")
    );
}

#[test]
fn single_flight_in_process() {
    let backend = keycloak();
    let req = bearer(TOKEN);
    let Outcome::Send(lead) = backend.authenticate(&req, at(NOW)) else {
        panic!()
    };
    let Outcome::Send(follow) = backend.authenticate(&req, at(NOW)) else {
        panic!()
    };
    assert!(matches!(lead.action(), Action::Send(_)));
    let (Action::Wait(waiter), resume_follower) = follow.into_parts() else {
        panic!("the second must wait")
    };
    assert!(!waiter.is_done());
    let (_, resume_leader) = lead.into_parts();
    let led = resume_leader.resume(json_reply(200, &keycloak_user_answer()), &req, at(NOW));
    assert!(led.into_done().unwrap().is_ok());
    assert!(waiter.is_done());
    let followed = resume_follower
        .woken(&req, at(NOW))
        .into_done()
        .unwrap()
        .unwrap();
    assert_eq!(
        followed.auth.get("preferred_username"),
        Some(&json!("jane"))
    );

    // A leader whose step is dropped (a cancelled request) releases the
    // followers with a 503 instead of leaving them waiting.
    let Outcome::Send(lead) = backend.authenticate(&bearer("t2"), at(NOW)) else {
        panic!()
    };
    let Outcome::Send(follow) = backend.authenticate(&bearer("t2"), at(NOW)) else {
        panic!()
    };
    drop(lead);
    let (Action::Wait(waiter), resume) = follow.into_parts() else {
        panic!()
    };
    assert!(waiter.wait_blocking(Duration::from_millis(10)));
    assert_eq!(
        resume
            .woken(&bearer("t2"), at(NOW))
            .into_done()
            .unwrap()
            .unwrap_err()
            .status(),
        503
    );
}

/// A real introspection endpoint that answers slowly and counts its calls.
fn slow_introspection_server(
    delay: Duration,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..4 {
        let (server, calls, bodies) =
            (Arc::clone(&server), Arc::clone(&calls), Arc::clone(&bodies));
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                bodies.lock().unwrap().push(body);
                thread::sleep(delay);
                let answer =
                    json!({"active": true, "sub": "shared-user", "exp": 4_000_000_000_u64});
                let _ = request.respond(tiny_http::Response::from_string(answer.to_string()));
            }
        });
    }
    (url, calls, bodies)
}

#[test]
fn one_hundred_concurrent_requests_make_one_call() {
    let (url, calls, bodies) = slow_introspection_server(Duration::from_millis(300));
    let backend = Arc::new(
        IntrospectionBackend::builder(url, "api", "secret")
            .allow_http(true)
            .build()
            .unwrap(),
    );
    let transport = Arc::new(
        UreqTransport::builder()
            .timeout(Duration::from_secs(5))
            .build(),
    );
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (backend, transport, barrier) = (
                Arc::clone(&backend),
                Arc::clone(&transport),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                barrier.wait();
                authenticate_blocking(&*backend, &bearer("the-same-new-token"), &*transport)
                    .map(|who| who.auth.identifier().to_owned())
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), "shared-user");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one provider call for 100 requests"
    );
    assert!(
        bodies.lock().unwrap()[0]
            .starts_with("token=the-same-new-token&token_type_hint=access_token")
    );
    // And the answer is cached for the next one.
    authenticate_blocking(&*backend, &bearer("the-same-new-token"), &*transport).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_zero_ttl_asks_the_provider_every_time() {
    let calls = AtomicUsize::new(0);
    let uncached =
        auth_core::IntrospectionBackend::keycloak("https://sso.example", "acme", "a", "s")
            .max_cache_ttl(Duration::ZERO)
            .build()
            .unwrap();
    for _ in 0..3 {
        assert!(drive(&uncached, TOKEN, NOW, &calls, &with(keycloak_user_answer())).is_ok());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_leader_that_goes_away_still_answers_its_followers() {
    let backend = keycloak();
    let req = bearer(TOKEN);
    let Outcome::Send(leader) = backend.authenticate(&req, at(NOW)) else {
        panic!("the first request asks")
    };
    let Outcome::Send(follower) = backend.authenticate(&req, at(NOW)) else {
        panic!("the second waits")
    };
    let (Action::Send(request), mut resume) = leader.into_parts() else {
        panic!()
    };
    // The driver takes the effect to where the response arrives; the
    // leader's request is then dropped before it resumes.
    let effect = resume
        .take_effect()
        .expect("introspection steps are detached");
    drop(resume);
    assert!(request.body().starts_with(b"token="));
    effect.apply(&json_reply(200, &keycloak_user_answer()), at(NOW));
    let (Action::Wait(waiter), resume) = follower.into_parts() else {
        panic!()
    };
    assert!(waiter.is_done());
    let Outcome::Done(who) = resume.woken(&req, at(NOW)) else {
        panic!()
    };
    assert_eq!(
        who.unwrap().auth.identifier(),
        "f:7b1d3c9e-0c2a-4a55-8f3e-9a1b2c3d4e5f:jane"
    );
    // And the answer is cached: no further call.
    assert!(matches!(
        backend.authenticate(&req, at(NOW)),
        Outcome::Done(Ok(_))
    ));
}

/// The provider's health at `now`, probe calls answered by `reply`;
/// and whether the probe asked.
fn probe_at(
    backend: &IntrospectionBackend,
    now: u64,
    reply: &dyn Fn(&http::Request<Vec<u8>>) -> Reply,
) -> (Health, bool) {
    match backend.probe(at(now)) {
        Probe::Done(health) => (health, false),
        Probe::Send(step) => {
            let response = reply(step.request());
            match step.apply(&response, at(now)) {
                Probe::Done(health) => (health, true),
                _ => panic!("one call is enough"),
            }
        }
        _ => panic!("unknown probe"),
    }
}

#[test]
fn the_probe_asks_about_a_token_nobody_issued_unless_a_call_just_told() {
    let backend = keycloak();
    let asked = Mutex::new(Vec::new());
    let inactive = |request: &http::Request<Vec<u8>>| {
        asked
            .lock()
            .unwrap()
            .push(String::from_utf8(request.body().clone()).unwrap());
        json_reply(200, &json!({"active": false}))
    };
    assert_eq!(probe_at(&backend, NOW, &inactive), (Health::Ready, true));
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        ["token=readiness-probe-not-a-token&token_type_hint=access_token"]
    );
    // An outcome under 10 s old is taken as it is.
    assert_eq!(
        probe_at(&backend, NOW + 9, &inactive),
        (Health::Ready, false)
    );
    // A request's call our client was rejected on tells the next probe.
    let calls = AtomicUsize::new(0);
    let rejected = |_: &http::Request<Vec<u8>>| json_reply(401, &json!({}));
    assert!(drive(&backend, TOKEN, NOW + 20, &calls, &rejected).is_err());
    let (health, probed) = probe_at(&backend, NOW + 25, &inactive);
    assert!(!probed);
    assert_eq!(
        health,
        Health::Down("the introspection endpoint: rejected our client credentials".into())
    );
    // Then the probe asks for itself, and the provider is back.
    assert_eq!(
        probe_at(&backend, NOW + 31, &inactive),
        (Health::Ready, true)
    );
    // A 400, a 502 or a timeout to a request's call may be the client's
    // token's doing: it does not make the provider look down; the probe's
    // own call finds a 502.
    let bad_request =
        |_: &http::Request<Vec<u8>>| json_reply(400, &json!({"error": "invalid_request"}));
    let down = |_: &http::Request<Vec<u8>>| json_reply(502, &json!({}));
    let slow = |_: &http::Request<Vec<u8>>| Err(TransportError::Timeout);
    for (at, answer) in [
        (45, &bad_request as &dyn Fn(&_) -> _),
        (60, &down),
        (75, &slow),
    ] {
        let err = drive(&backend, "a-client-chose-this", NOW + at, &calls, answer).unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(
            probe_at(&backend, NOW + at + 1, &inactive),
            (Health::Ready, true),
            "after a {at}"
        );
    }
    assert_eq!(
        probe_at(&backend, NOW + 87, &down),
        (
            Health::Down("the introspection endpoint: answered 502".into()),
            true
        )
    );
}

#[test]
fn a_rejected_client_is_down_and_one_probe_call_runs_at_a_time() {
    let backend = keycloak();
    let rejected =
        |_: &http::Request<Vec<u8>>| json_reply(401, &json!({"error": "invalid_client"}));
    let (health, probed) = probe_at(&backend, NOW, &rejected);
    assert!(probed);
    assert_eq!(
        health,
        Health::Down("the introspection endpoint: rejected our client credentials".into())
    );
    // A transport's own text (it may name hosts) stays out of the report.
    let backend = keycloak();
    let tls = |_: &http::Request<Vec<u8>>| -> Reply {
        Err(TransportError::Other(
            "certificate not valid for name \"idp.internal.example\"".into(),
        ))
    };
    let (health, _) = probe_at(&backend, NOW, &tls);
    assert_eq!(
        health,
        Health::Down("the introspection endpoint: transport failed".into())
    );

    let backend = keycloak();
    let first = backend.probe(at(NOW));
    assert!(matches!(first, Probe::Send(_)));
    // While it runs, no second call: nothing is known yet.
    let meanwhile = backend.probe(at(NOW));
    assert!(
        matches!(&meanwhile, Probe::Done(Health::Degraded(reason)) if reason.contains("not checked yet")),
        "{meanwhile:?}"
    );
    // A probe dropped mid-way (a readiness request gone) does not let the
    // next one call at once: one probe call per 10 s, however they end.
    drop(first);
    assert!(matches!(backend.probe(at(NOW + 9)), Probe::Done(_)));
    assert!(matches!(backend.probe(at(NOW + 10)), Probe::Send(_)));
}
