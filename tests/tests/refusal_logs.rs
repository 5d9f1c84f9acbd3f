//! The log lines of rate-limit refusals, over real TCP on axum and
//! actix-web (in-process counters) and on axum with a real Redis: each 429
//! names its rule, the route pattern and the caller kind, and never the
//! caller, its token, its address or the concrete path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use auth_actix::Authentication;
use auth_axum::AuthLayer;
use auth_core::{Algorithm, IpBackend, JwtBackend, JwtValidator, TokenIssuer};
use auth_tests::redis::RedisServer;
use auth_tests::{serve_actix, serve_axum};
use auth_throttle::{
    Callers, FailureBudget, MemoryStore, Quota, RedisStore, Rule, Store, Throttle,
};

const SECRET: &[u8] = b"a secret the servers share, 32b!";
const USER: &str = "alice-the-caller";
const PATH: &str = "/items/secret-42";
const PATTERN: &str = "/items/{id}";

/// The tests of this file read one log: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn log() {
    auth_tests::logs::captured();
}

/// The lines logged since the last call holding `message`.
fn take_lines(message: &str) -> Vec<String> {
    auth_tests::logs::take_lines(message)
}

/// HS256 tokens, signed with `SECRET`.
fn jwt() -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .build()
            .unwrap(),
    )
}

/// HS256 tokens; 2 requests per 600 s per user and a failure budget of 1
/// per 600 s per address (`X-Forwarded-For` from loopback), counted in
/// `store`.
fn throttle(store: impl Into<Store>) -> (JwtBackend, Throttle) {
    let jwt = jwt();
    let throttle = Throttle::builder(store)
        .rule(
            Rule::new("per-user", Quota::new(2, Duration::from_secs(600)).unwrap())
                .unwrap()
                .callers(Callers::AUTHENTICATED),
        )
        .failure_budget(FailureBudget::new(
            Quota::new(1, Duration::from_secs(600)).unwrap(),
        ))
        .client_ip(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    (jwt, throttle)
}

fn axum_server(store: impl Into<Store>) -> String {
    let (jwt, throttle) = throttle(store);
    serve_axum(
        axum::Router::new()
            .route(PATTERN, axum::routing::get(|| async { "ok" }))
            .layer(AuthLayer::new(jwt).throttle(throttle)),
    )
}

/// The middleware wraps a scope around the route (as it would wrap the
/// whole app): it runs before actix-web has matched the resource.
fn actix_server() -> String {
    let (jwt, throttle) = throttle(MemoryStore::default());
    serve_actix(move |cfg| {
        cfg.service(
            actix_web::web::scope("")
                .wrap(Authentication::new(jwt.clone()).throttle(throttle.clone()))
                .route(PATTERN, actix_web::web::get().to(|| async { "ok" })),
        );
    })
}

fn get(base: &str, address: &str, token: &str) -> u16 {
    let agent = auth_tests::agent();
    agent
        .get(format!("{base}{PATH}"))
        .header("x-forwarded-for", address)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// Nothing in `line` names the caller, its token, its address or the
/// concrete path.
fn says_nothing_of_the_caller(line: &str, token: &str, address: &str) {
    for secret in [USER, token, address, "secret-42"] {
        assert!(!line.contains(secret), "{secret:?} logged: {line}");
    }
}

fn check(way: &str, base: &str) {
    let token = TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue(serde_json::json!({"sub": USER}), SystemTime::now())
        .unwrap();
    let address = "198.51.100.7";
    take_lines("");
    let statuses: Vec<u16> = (0..3).map(|_| get(base, address, &token)).collect();
    assert_eq!(statuses, [200, 200, 429], "{way}");
    let lines = take_lines("rate limit exceeded");
    assert_eq!(lines.len(), 1, "{way}: one line per 429: {lines:?}");
    let line = &lines[0];
    assert!(line.contains("DEBUG"), "{way}: {line}");
    for field in [
        "rule=per-user",
        &format!("route=\"{PATTERN}\""),
        "caller=authenticated",
    ] {
        assert!(line.contains(field), "{way}: no {field} in {line}");
    }
    says_nothing_of_the_caller(line, &token, address);

    // Forged tokens spend the address's failure budget: its 429 comes
    // before authentication, so it names the rule and the route only.
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZS10aGUtY2FsbGVyIn0.AAAA";
    let attacker = "198.51.100.66";
    let statuses: Vec<u16> = (0..2).map(|_| get(base, attacker, forged)).collect();
    assert_eq!(statuses, [401, 429], "{way}");
    let lines = take_lines("failure budget spent");
    assert_eq!(lines.len(), 1, "{way}: {lines:?}");
    let line = &lines[0];
    for field in ["rule=failed-credentials", &format!("route=\"{PATTERN}\"")] {
        assert!(line.contains(field), "{way}: no {field} in {line}");
    }
    says_nothing_of_the_caller(line, forged, attacker);
}

#[test]
fn a_429_names_its_rule_route_pattern_and_caller_kind() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    log();
    check("axum", &axum_server(MemoryStore::default()));
    check("actix", &actix_server());
    // With a shared store the line is written after the round trip, from
    // what the request's step kept.
    let redis = RedisServer::start();
    let store = RedisStore::builder(&redis.url(), SECRET)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    check("axum+redis", &axum_server(store));
}

#[test]
fn a_log_only_line_after_a_round_trip_names_the_route_too() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    log();
    let redis = RedisServer::start();
    let store = RedisStore::builder(&redis.url(), SECRET)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let jwt = jwt();
    let throttle = Throttle::builder(store)
        .rule(
            Rule::new("trial", Quota::new(1, Duration::from_secs(600)).unwrap())
                .unwrap()
                .callers(Callers::AUTHENTICATED),
        )
        .log_only(true)
        .build()
        .unwrap();
    let base = serve_axum(
        axum::Router::new()
            .route(PATTERN, axum::routing::get(|| async { "ok" }))
            .layer(AuthLayer::new(jwt).throttle(throttle)),
    );
    let token = TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue(serde_json::json!({"sub": USER}), SystemTime::now())
        .unwrap();
    let address = "198.51.100.8";
    let statuses: Vec<u16> = (0..2).map(|_| get(&base, address, &token)).collect();
    assert_eq!(statuses, [200, 200], "log-only lets through");
    let lines = take_lines("log-only: let through");
    let line = lines
        .iter()
        .find(|line| line.contains("rule=trial"))
        .unwrap_or_else(|| panic!("no line for the rule: {lines:?}"));
    assert!(line.contains("WARN"), "{line}");
    for field in [&format!("route=\"{PATTERN}\""), "caller=authenticated"] {
        assert!(line.contains(field), "no {field} in {line}");
    }
    says_nothing_of_the_caller(line, &token, address);
}
