//! One table of scenarios, run three ways: through the core directly (its
//! decision, rendered as the handlers would), through the axum adapter and
//! through the actix adapter (both over real TCP with a real client).
//!
//! Every way must give the row's status, `WWW-Authenticate`, number of
//! `Set-Cookie` headers and identity; and the three ways must agree on the
//! whole answer: every header (but `date` and `content-length`, with issued
//! session ids masked) and the body, byte for byte. Adding a scenario is one
//! row of `SCENARIOS`; a route is one entry of `routes()`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime};

use auth_core::introspect::IntrospectionBackend;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::request::PeerAddr;
use auth_core::transport::UreqTransport;
use auth_core::{
    AnonSessionBackend, Chain, IpBackend, Policy, Refusal, RequireScopes, Scope, SessionBackend,
    Verdict,
};
use auth_tests::{serve_axum, serve_axum_with};
use auth_throttle::{Callers, Checked, MemoryStore, Quota, Rule, Throttle, Throttled};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};

const SECRET: &[u8] = b"conformance-secret-0123456789abc";
const NO_WWW: Option<&str> = None;

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../crates/auth-core/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The RS256 key of the local key server, as an issuer and its public JWK.
fn rsa() -> &'static (TokenIssuer, Jwk) {
    static RSA: OnceLock<(TokenIssuer, Jwk)> = OnceLock::new();
    RSA.get_or_init(|| {
        let key = EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let issuer = TokenIssuer::new(Algorithm::RS256, key)
            .unwrap()
            .key_id("k1")
            .issuer(key_server());
        (issuer, jwk)
    })
}

/// A real key server on 127.0.0.1 (started once): an OIDC discovery
/// document and its JWKS, both counted.
fn key_server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let issuer = base.clone();
        thread::spawn(move || {
            for request in server.incoming_requests() {
                let body = match request.url() {
                    "/.well-known/openid-configuration" => {
                        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")})
                    }
                    "/jwks.json" => json!({"keys": [rsa().1]}),
                    _ => json!({}),
                };
                let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
            }
        });
        base
    })
}

/// Tokens the table refers to by name.
fn token(name: &str) -> String {
    let issuer = TokenIssuer::hs256(SECRET).unwrap().issuer("conf");
    let now = SystemTime::now();
    match name {
        "reader" => issuer
            .issue(json!({"sub": "alice", "scope": "read", "tenant": 7}), now)
            .unwrap(),
        "admin" => issuer
            .issue(
                json!({"sub": "root", "scope": "read admin", "tenant": 1}),
                now,
            )
            .unwrap(),
        "no-tenant" => issuer
            .issue(json!({"sub": "bob", "scope": "read"}), now)
            .unwrap(),
        "bad-tenant" => issuer
            .issue(
                json!({"sub": "eve", "scope": "read", "tenant": "seven"}),
                now,
            )
            .unwrap(),
        "expired" => issuer
            .ttl(Duration::ZERO)
            .issue(json!({"sub": "late"}), now - Duration::from_secs(3600))
            .unwrap(),
        "foreign" => TokenIssuer::hs256(SECRET)
            .unwrap()
            .issuer("elsewhere")
            .issue(json!({"sub": "mallory"}), now)
            .unwrap(),
        "rs256" => rsa().0.issue(json!({"sub": "carol"}), now).unwrap(),
        "rs256-unknown-kid" => rsa()
            .0
            .clone()
            .key_id("k9")
            .issue(json!({"sub": "carol"}), now)
            .unwrap(),
        "none-alg" => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.".into(),
        "huge" => format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c"),
        other => panic!("unknown token {other}"),
    }
}

/// A real introspection endpoint on 127.0.0.1 (started once): the token
/// `opaque-good` is active for `svc-1`, anything else is inactive.
fn introspection_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/introspect",
            server.server_addr().to_ip().unwrap()
        );
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                let answer = if body.starts_with("token=opaque-good&") {
                    json!({"active": true, "sub": "svc-1", "scope": "read"})
                } else {
                    json!({"active": false})
                };
                let _ = request.respond(tiny_http::Response::from_string(answer.to_string()));
            }
        });
        url
    })
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/introspect", listener.local_addr().unwrap())
}

/// What a route's handler does; the same in every way.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Handler {
    /// `Option<Auth>`: the identifier, or "anonymous".
    Identity,
    /// `Auth`.
    Required,
    /// `Claims<Typed>`: `sub` and `tenant`.
    Claims,
    /// `Scoped<Admin>`.
    Scoped,
    /// `Auth`, and the handler sets its own cookie.
    OwnCookie,
    /// No layer: the state-based extractor decides, and the handler sends
    /// the issued cookie.
    State,
    /// `Auth` on a route without the layer (a server bug).
    NoLayer,
}

struct Admin;
impl Scope for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

#[derive(serde::Deserialize)]
struct Typed {
    sub: String,
    tenant: u32,
}

fn jwt() -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .issuer("conf")
            .build()
            .unwrap(),
    )
}

fn anon() -> AnonSessionBackend {
    AnonSessionBackend::new("anon").unwrap()
}

/// The routes: a path, its handler and the core policy that guards it. Each
/// way builds its own (as a server would, with its own caches), so each
/// way's first request to a remote-key route drives the key fetch itself.
/// One route: its path, its handler, its policy and its rate limits.
struct Route {
    path: &'static str,
    handler: Handler,
    policy: Policy,
    throttle: Option<Throttle>,
}

/// The rate limits of `/limited`: anonymous sessions 3 per 900 s (one every
/// 300 s, so the seconds in the headers are whole and stable), and writers
/// (scope `write`) once per 600 s.
fn limits() -> Throttle {
    Throttle::builder(MemoryStore::default())
        .rule(
            Rule::new("visitors", Quota::new(3, Duration::from_secs(900)))
                .unwrap()
                .callers(Callers::ANONYMOUS),
        )
        .rule(
            Rule::new("writers", Quota::new(1, Duration::from_secs(600)))
                .unwrap()
                .scope("write"),
        )
        .build()
        .unwrap()
}

fn routes() -> Vec<Route> {
    routes_and_policies()
        .into_iter()
        .map(|(path, handler, policy)| Route {
            path,
            handler,
            throttle: (path == "/limited").then(limits),
            policy,
        })
        .collect()
}

fn routes_and_policies() -> Vec<(&'static str, Handler, Policy)> {
    use Handler::*;
    let ip_proxied = || IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap();
    let remote = |validator: auth_core::jwt::JwtValidatorBuilder| {
        Policy::new(JwtBackend::new(validator.build().unwrap())).transport(
            UreqTransport::builder()
                .timeout(Duration::from_secs(2))
                .build(),
        )
    };
    vec![
        (
            "/whoami",
            Identity,
            Policy::new(Chain::new().or(jwt()).or(anon())),
        ),
        (
            "/limited",
            Identity,
            Policy::new(Chain::new().or(jwt()).or(anon())),
        ),
        ("/private", Identity, Policy::new(jwt()).realm("api")),
        (
            "/required",
            Required,
            Policy::new(jwt()).optional().realm("api"),
        ),
        (
            "/admin",
            Identity,
            Policy::new(RequireScopes::new(jwt(), ["admin"])),
        ),
        (
            "/scoped",
            Scoped,
            Policy::new(Chain::new().or(jwt()).or(anon())).realm("api"),
        ),
        ("/claims", Claims, Policy::new(jwt()).realm("api")),
        ("/optional", Identity, Policy::new(jwt()).optional()),
        ("/cookies", OwnCookie, Policy::new(anon())),
        (
            "/state",
            State,
            Policy::new(
                Chain::new()
                    .or(SessionBackend::new("session").unwrap())
                    .or(anon()),
            ),
        ),
        ("/no-layer", NoLayer, Policy::new(anon())),
        (
            "/session",
            Identity,
            Policy::new(SessionBackend::new("session").unwrap()),
        ),
        (
            "/signed",
            Identity,
            Policy::new(
                AnonSessionBackend::builder("anon")
                    .signing_key([9u8; 32])
                    .build()
                    .unwrap(),
            ),
        ),
        ("/ip", Identity, Policy::new(IpBackend::new())),
        ("/ip-proxied", Identity, Policy::new(ip_proxied())),
        (
            "/introspected",
            Identity,
            Policy::new(
                IntrospectionBackend::builder(introspection_url(), "api", "secret")
                    .allow_http(true)
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "/introspect-down",
            Identity,
            Policy::new(
                IntrospectionBackend::builder(closed_port(), "api", "secret")
                    .allow_http(true)
                    .build()
                    .unwrap(),
            )
            .transport(
                UreqTransport::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .build(),
            ),
        ),
        (
            "/jwks",
            Identity,
            remote(
                JwtValidator::builder([Algorithm::RS256])
                    .jwks_url(&format!("{}/jwks.json", key_server()))
                    .allow_http(true),
            ),
        ),
        (
            "/discovery",
            Identity,
            remote(
                JwtValidator::builder([Algorithm::RS256])
                    .oidc_issuer(key_server())
                    .allow_http(true),
            ),
        ),
        (
            "/problem",
            Identity,
            Policy::new(jwt()).render_refusals(|mut refusal| {
                let problem = json!({
                    "type": "about:blank",
                    "title": refusal.status().canonical_reason(),
                    "status": refusal.status().as_u16(),
                });
                refusal.set_body(
                    http::HeaderValue::from_static("application/problem+json"),
                    problem.to_string(),
                );
                refusal
            }),
        ),
    ]
}

/// Expected identity in the body.
#[derive(Clone, Copy, Debug)]
enum Id {
    Is(&'static str),
    Issued,
    Anonymous,
    /// A refusal: an `error` member, no identity.
    Refused,
    /// Not JSON of ours (a custom refusal body): checked only for equality.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Peer {
    /// The server supplies the client address.
    Known,
    /// It does not (axum without `ConnectInfo`; the core without a
    /// `PeerAddr`). actix always knows it over TCP, so it is not asked.
    Missing,
}

struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Header values may name a token as `{token:NAME}`.
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    www_authenticate: Option<&'static str>,
    set_cookies: usize,
    id: Id,
    peer: Peer,
}

const fn row(
    name: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    www_authenticate: Option<&'static str>,
    set_cookies: usize,
    id: Id,
) -> Scenario {
    Scenario {
        name,
        method: "GET",
        path,
        headers,
        status,
        www_authenticate,
        set_cookies,
        id,
        peer: Peer::Known,
    }
}

const INVALID: Option<&str> =
    Some(r#"Bearer error="invalid_token", error_description="malformed token""#);
const ANON: &str = "anon=returning-visitor-42";
const PREFLIGHT: &[(&str, &str)] = &[
    ("access-control-request-method", "GET"),
    ("origin", "https://app.example"),
];

const SCENARIOS: &[Scenario] = &[
    // Chain: JWT, else anonymous session.
    row(
        "chain: nothing -> anonymous issued",
        "/whoami",
        &[],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    row(
        "chain: anonymous cookie reused",
        "/whoami",
        &[("cookie", ANON)],
        200,
        NO_WWW,
        0,
        Id::Is("returning-visitor-42"),
    ),
    row(
        "chain: valid token wins over cookie",
        "/whoami",
        &[("authorization", "Bearer {token:reader}"), ("cookie", ANON)],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "chain: lowercase scheme",
        "/whoami",
        &[("authorization", "bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "chain: bad token is not downgraded",
        "/whoami",
        &[("authorization", "Bearer not.a.jwt")],
        401,
        INVALID,
        0,
        Id::Refused,
    ),
    row(
        "chain: Bearer without token",
        "/whoami",
        &[("authorization", "Bearer")],
        400,
        Some(r#"Bearer error="invalid_request", error_description="empty bearer token""#),
        0,
        Id::Refused,
    ),
    row(
        "chain: other scheme -> anonymous",
        "/whoami",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    row(
        "chain: a bad bearer line after another scheme is not downgraded",
        "/whoami",
        &[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("authorization", "Bearer not token68!"),
        ],
        400,
        Some(
            r#"Bearer error="invalid_request", error_description="more than one Authorization header""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "chain: a tab after the scheme is still the Bearer scheme",
        "/whoami",
        &[("authorization", "Bearer\tnot.a.jwt")],
        401,
        INVALID,
        0,
        Id::Refused,
    ),
    row(
        "chain: Bearer named after a comma",
        "/whoami",
        &[("authorization", "Basic dXNlcjpwYXNz, Bearer abc")],
        400,
        Some(
            r#"Bearer error="invalid_request", error_description="a bearer token must be the only credential""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "chain: two Authorization headers",
        "/whoami",
        &[
            ("authorization", "Bearer {token:reader}"),
            ("authorization", "Bearer {token:admin}"),
        ],
        400,
        Some(
            r#"Bearer error="invalid_request", error_description="more than one Authorization header""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "chain: expired token",
        "/whoami",
        &[("authorization", "Bearer {token:expired}")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token expired""#),
        0,
        Id::Refused,
    ),
    row(
        "chain: foreign issuer",
        "/whoami",
        &[("authorization", "Bearer {token:foreign}")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token has the wrong issuer""#),
        0,
        Id::Refused,
    ),
    row(
        "chain: malformed anonymous cookie replaced",
        "/whoami",
        &[("cookie", "anon=\"a\\b\"")],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    // Rate limits after the identity (the throttle inside the auth layer).
    row(
        "limited: a new session's first request counts",
        "/limited",
        &[],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    row(
        "limited: 1st of 3",
        "/limited",
        &[("cookie", "anon=limited-visitor")],
        200,
        NO_WWW,
        0,
        Id::Is("limited-visitor"),
    ),
    row(
        "limited: 2nd of 3",
        "/limited",
        &[("cookie", "anon=limited-visitor")],
        200,
        NO_WWW,
        0,
        Id::Is("limited-visitor"),
    ),
    row(
        "limited: 3rd of 3",
        "/limited",
        &[("cookie", "anon=limited-visitor")],
        200,
        NO_WWW,
        0,
        Id::Is("limited-visitor"),
    ),
    row(
        "limited: the 4th is a 429",
        "/limited",
        &[("cookie", "anon=limited-visitor")],
        429,
        NO_WWW,
        0,
        Id::Other,
    ),
    row(
        "limited: a token without a scope claim is counted by no rule",
        "/limited",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "limited: a bad token is refused before any counting",
        "/limited",
        &[("authorization", "Bearer not.a.jwt")],
        401,
        INVALID,
        0,
        Id::Refused,
    ),
    // JWT required, with a realm.
    row(
        "private: nothing",
        "/private",
        &[],
        401,
        Some(r#"Bearer realm="api""#),
        0,
        Id::Refused,
    ),
    row(
        "private: valid",
        "/private",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "private: alg none",
        "/private",
        &[("authorization", "Bearer {token:none-alg}")],
        401,
        Some(r#"Bearer realm="api", error="invalid_token", error_description="malformed token""#),
        0,
        Id::Refused,
    ),
    row(
        "private: oversized token",
        "/private",
        &[("authorization", "Bearer {token:huge}")],
        401,
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="bearer token exceeds the size limit""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "private: not token68",
        "/private",
        &[("authorization", "Bearer a b")],
        400,
        Some(
            r#"Bearer realm="api", error="invalid_request", error_description="bearer token is not a token68 string""#,
        ),
        0,
        Id::Refused,
    ),
    // The Auth extractor on an optional layer: refused as the policy words it.
    row(
        "required extractor: nothing",
        "/required",
        &[],
        401,
        Some(r#"Bearer realm="api""#),
        0,
        Id::Refused,
    ),
    row(
        "required extractor: valid",
        "/required",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    // Scopes: the RequireScopes backend.
    row(
        "admin: reader lacks scope",
        "/admin",
        &[("authorization", "Bearer {token:reader}")],
        403,
        Some(
            r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "admin: admin",
        "/admin",
        &[("authorization", "Bearer {token:admin}")],
        200,
        NO_WWW,
        0,
        Id::Is("root"),
    ),
    row(
        "admin: nothing",
        "/admin",
        &[],
        401,
        Some("Bearer"),
        0,
        Id::Refused,
    ),
    // Scopes: the Scoped extractor, with a realm, behind JWT -> anonymous.
    row(
        "scoped: reader lacks scope (realm named)",
        "/scoped",
        &[("authorization", "Bearer {token:reader}")],
        403,
        Some(
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "scoped: admin",
        "/scoped",
        &[("authorization", "Bearer {token:admin}")],
        200,
        NO_WWW,
        0,
        Id::Is("root"),
    ),
    row(
        "scoped: anonymous caller is asked for a token",
        "/scoped",
        &[("cookie", ANON)],
        401,
        Some(r#"Bearer realm="api""#),
        0,
        Id::Refused,
    ),
    row(
        "scoped: new anonymous caller is asked, and keeps its cookie",
        "/scoped",
        &[],
        401,
        Some(r#"Bearer realm="api""#),
        1,
        Id::Refused,
    ),
    // Typed claims.
    row(
        "claims: every claim, registered ones too",
        "/claims",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "claims: a missing field is named",
        "/claims",
        &[("authorization", "Bearer {token:no-tenant}")],
        401,
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="token claim `tenant` is missing""#,
        ),
        0,
        Id::Refused,
    ),
    row(
        "claims: a mistyped field is named, not its value",
        "/claims",
        &[("authorization", "Bearer {token:bad-tenant}")],
        401,
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="token claim `tenant` has an unexpected type or value""#,
        ),
        0,
        Id::Refused,
    ),
    // Optional mode.
    row(
        "optional: nothing",
        "/optional",
        &[],
        200,
        NO_WWW,
        0,
        Id::Anonymous,
    ),
    row(
        "optional: valid",
        "/optional",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        0,
        Id::Is("alice"),
    ),
    row(
        "optional: invalid still refused",
        "/optional",
        &[("authorization", "Bearer x.y.z")],
        401,
        INVALID,
        0,
        Id::Refused,
    ),
    // The handler's own cookie next to an issued one.
    row(
        "cookies: handler's and issued",
        "/cookies",
        &[],
        200,
        NO_WWW,
        2,
        Id::Issued,
    ),
    row(
        "cookies: handler's only",
        "/cookies",
        &[("cookie", ANON)],
        200,
        NO_WWW,
        1,
        Id::Is("returning-visitor-42"),
    ),
    // The state-based extractor, without the layer.
    row("state: issued", "/state", &[], 200, NO_WWW, 1, Id::Issued),
    row(
        "state: session",
        "/state",
        &[("cookie", "session=s-1")],
        200,
        NO_WWW,
        0,
        Id::Is("s-1"),
    ),
    // An extractor without its layer: a fixed 500.
    row(
        "no layer: 500",
        "/no-layer",
        &[],
        500,
        NO_WWW,
        0,
        Id::Refused,
    ),
    // Session cookie required.
    row(
        "session: nothing",
        "/session",
        &[],
        401,
        NO_WWW,
        0,
        Id::Refused,
    ),
    row(
        "session: present",
        "/session",
        &[("cookie", "theme=dark; session=u-1=x")],
        200,
        NO_WWW,
        0,
        Id::Is("u-1=x"),
    ),
    row(
        "session: two Cookie headers",
        "/session",
        &[("cookie", "theme=dark"), ("cookie", "session=u-2")],
        200,
        NO_WWW,
        0,
        Id::Is("u-2"),
    ),
    row(
        "session: malformed value",
        "/session",
        &[("cookie", "session=a\\b")],
        401,
        NO_WWW,
        0,
        Id::Refused,
    ),
    // Signed anonymous sessions.
    row(
        "signed: nothing -> issued",
        "/signed",
        &[],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    row(
        "signed: self-chosen id replaced",
        "/signed",
        &[("cookie", ANON)],
        200,
        NO_WWW,
        1,
        Id::Issued,
    ),
    // Client address.
    row("ip: peer", "/ip", &[], 200, NO_WWW, 0, Id::Is("127.0.0.1")),
    row(
        "ip: spoof from untrusted peer ignored",
        "/ip",
        &[("x-forwarded-for", "203.0.113.9")],
        200,
        NO_WWW,
        0,
        Id::Is("127.0.0.1"),
    ),
    row(
        "ip: trusted proxy chain",
        "/ip-proxied",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 127.0.0.3")],
        200,
        NO_WWW,
        0,
        Id::Is("203.0.113.9"),
    ),
    row(
        "ip: mapped address normalised",
        "/ip-proxied",
        &[("x-forwarded-for", "::ffff:198.51.100.9")],
        200,
        NO_WWW,
        0,
        Id::Is("198.51.100.9"),
    ),
    row(
        "ip: garbage after trusted hop",
        "/ip-proxied",
        &[("x-forwarded-for", "garbage")],
        200,
        NO_WWW,
        0,
        Id::Is("127.0.0.1"),
    ),
    row(
        "ip: Forwarded not read when XFF configured",
        "/ip-proxied",
        &[("forwarded", "for=203.0.113.9")],
        200,
        NO_WWW,
        0,
        Id::Is("127.0.0.1"),
    ),
    Scenario {
        peer: Peer::Missing,
        ..row(
            "ip: no client address is a fixed 500",
            "/ip",
            &[],
            500,
            NO_WWW,
            0,
            Id::Refused,
        )
    },
    // Token introspection against a real endpoint, and a provider that is down.
    row(
        "introspection: active token",
        "/introspected",
        &[("authorization", "Bearer opaque-good")],
        200,
        NO_WWW,
        0,
        Id::Is("svc-1"),
    ),
    row(
        "introspection: inactive token",
        "/introspected",
        &[("authorization", "Bearer opaque-revoked")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token is not active""#),
        0,
        Id::Refused,
    ),
    row(
        "introspection: no token",
        "/introspected",
        &[],
        401,
        Some("Bearer"),
        0,
        Id::Refused,
    ),
    row(
        "introspection: provider down, nothing about it in the body",
        "/introspect-down",
        &[("authorization", "Bearer opaque-good")],
        503,
        NO_WWW,
        0,
        Id::Refused,
    ),
    // Remote keys: the first request of each way drives the fetch.
    row(
        "jwks: key fetched, token accepted",
        "/jwks",
        &[("authorization", "Bearer {token:rs256}")],
        200,
        NO_WWW,
        0,
        Id::Is("carol"),
    ),
    row(
        "jwks: unknown kid",
        "/jwks",
        &[("authorization", "Bearer {token:rs256-unknown-kid}")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="unknown signing key""#),
        0,
        Id::Refused,
    ),
    row(
        "discovery: document, then keys, then accepted",
        "/discovery",
        &[("authorization", "Bearer {token:rs256}")],
        200,
        NO_WWW,
        0,
        Id::Is("carol"),
    ),
    // A policy's own wording of its refusals.
    row(
        "problem+json: nothing",
        "/problem",
        &[],
        401,
        Some("Bearer"),
        0,
        Id::Other,
    ),
    // CORS preflight passes; an OPTIONS without Origin does not.
    Scenario {
        method: "OPTIONS",
        ..row(
            "preflight passes through",
            "/private",
            PREFLIGHT,
            200,
            NO_WWW,
            0,
            Id::Anonymous,
        )
    },
    Scenario {
        method: "OPTIONS",
        ..row(
            "preflight to a required extractor: asked for a token",
            "/required",
            PREFLIGHT,
            401,
            Some(r#"Bearer realm="api""#),
            0,
            Id::Refused,
        )
    },
    Scenario {
        method: "OPTIONS",
        ..row(
            "OPTIONS without Origin is authenticated",
            "/private",
            &[("access-control-request-method", "GET")],
            401,
            Some(r#"Bearer realm="api""#),
            0,
            Id::Refused,
        )
    },
];

fn expand(value: &str) -> String {
    match value.split_once("{token:") {
        Some((before, rest)) => {
            let (name, after) = rest.split_once('}').unwrap();
            format!("{before}{}{after}", token(name))
        }
        None => value.to_owned(),
    }
}

/// What one way answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-case names, sorted by name (stable), without `date` and
    /// `content-length`; issued session ids masked.
    headers: Vec<(String, String)>,
    /// Issued session ids masked.
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }
}

/// Masks every run of exactly 32 lower-case hex digits (an issued session
/// id), and the value of an issued `anon` cookie (signed ones are longer).
fn mask(text: &str) -> String {
    let text = match text.strip_prefix("anon=") {
        Some(rest) => match rest.split_once(';') {
            Some((_, attributes)) => format!("anon=<issued>;{attributes}"),
            None => "anon=<issued>".into(),
        },
        None => text.to_owned(),
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(*b))
            .count();
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if run == 32 && boundary {
            out.push_str("<id>");
            i += run;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    out
}

fn answer(status: u16, headers: Vec<(String, String)>, body: &str) -> Answer {
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), mask(&v)))
        .filter(|(n, _)| n != "date" && n != "content-length")
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    Answer {
        status,
        headers,
        body: mask(body),
    }
}

/// The handlers' identity body: the identifier, or "anonymous".
fn identity_body(identifier: Option<&str>) -> String {
    json!({"identifier": identifier.unwrap_or("anonymous")}).to_string()
}

const TEXT: &str = "text/plain; charset=utf-8";
const THEME: &str = "theme=dark; Path=/";

/// A handler's answer from the verdict, in the core's terms: the body and
/// the headers it sets itself, or the extractor's refusal.
fn handle(handler: Handler, verdict: &Verdict) -> Result<(String, Vec<(String, String)>), Refusal> {
    let text = || vec![("content-type".to_owned(), TEXT.to_owned())];
    match handler {
        Handler::Identity => Ok((
            identity_body(verdict.auth().map(|a| a.identifier())),
            text(),
        )),
        Handler::Required | Handler::State | Handler::NoLayer => {
            Ok((identity_body(Some(verdict.require()?.identifier())), text()))
        }
        Handler::Claims => {
            let typed: Typed = verdict.claims()?;
            let body = json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string();
            Ok((body, text()))
        }
        Handler::Scoped => Ok((
            identity_body(Some(verdict.require_scopes(Admin::SCOPES)?.identifier())),
            text(),
        )),
        Handler::OwnCookie => {
            let mut headers = text();
            headers.push(("set-cookie".into(), THEME.into()));
            Ok((
                identity_body(Some(verdict.require()?.identifier())),
                headers,
            ))
        }
    }
}

fn refused(refusal: Refusal) -> Answer {
    let response = refusal.into_response::<String>();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    answer(response.status().as_u16(), headers, response.body())
}

/// The core directly: the policy's decision, rendered as the adapters and
/// handlers render it.
fn through_core(s: &Scenario) -> Answer {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    let route = ROUTES
        .get_or_init(routes)
        .iter()
        .find(|r| r.path == s.path)
        .unwrap();
    let (handler, policy) = (&route.handler, &route.policy);
    let mut req = http::Request::builder().method(s.method);
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut req = req.body(()).unwrap();
    if s.peer == Peer::Known {
        req.extensions_mut()
            .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    }
    if *handler == Handler::NoLayer {
        return refused(Refusal::server_error("no layer"));
    }
    let (verdict, set_cookie) = match policy.decide_blocking(&req).into_verdict() {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(refusal),
    };
    let throttled = route.throttle.as_ref().map(|throttle| {
        match throttle.check(Some(&verdict), &req, SystemTime::now()) {
            Checked::Done(throttled) => throttled,
            Checked::Store(_) => panic!("in-process counters"),
        }
    });
    let handled = match throttled {
        Some(Throttled::Deny(refusal)) => Err(refusal),
        Some(Throttled::Allow(allowance)) => {
            handle(*handler, &verdict).map(|(body, mut headers)| {
                for (name, value) in allowance.headers() {
                    headers.push((name.to_string(), value.to_str().unwrap().to_owned()));
                }
                (body, headers)
            })
        }
        None => handle(*handler, &verdict),
    };
    match handled {
        Ok((body, mut headers)) => {
            if let Some(cookie) = set_cookie {
                headers.push(("set-cookie".into(), cookie.to_str().unwrap().to_owned()));
            }
            answer(200, headers, &body)
        }
        Err(refusal) => {
            let mut answer = refused(refusal);
            // The layer appends its cookie to whatever the handler answered.
            if let Some(cookie) = set_cookie {
                answer
                    .headers
                    .push(("set-cookie".into(), mask(cookie.to_str().unwrap())));
                answer.headers.sort_by(|a, b| a.0.cmp(&b.0));
            }
            answer
        }
    }
}

fn axum_app() -> axum::Router {
    use auth_axum::{Auth, AuthLayer, AuthState, Claims, Scoped, StateAuth};
    use axum::response::IntoResponse;
    use axum::routing::{MethodRouter, get};
    async fn identity(who: Option<Auth>) -> String {
        identity_body(who.as_ref().map(|Auth(a)| a.identifier()))
    }
    async fn required(Auth(who): Auth) -> String {
        identity_body(Some(who.identifier()))
    }
    async fn claims(Claims(typed): Claims<Typed>) -> String {
        json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string()
    }
    async fn scoped(Scoped(who, _): Scoped<Admin>) -> String {
        identity_body(Some(who.identifier()))
    }
    async fn own_cookie(Auth(who): Auth) -> impl IntoResponse {
        (
            [(http::header::SET_COOKIE, THEME)],
            identity_body(Some(who.identifier())),
        )
    }
    async fn state(who: StateAuth) -> impl IntoResponse {
        (who.set_cookie(), identity_body(Some(who.auth.identifier())))
    }
    let mut app = axum::Router::new();
    for Route {
        path,
        handler,
        policy,
        throttle,
    } in routes()
    {
        let method: MethodRouter = match handler {
            Handler::Identity => get(identity).options(identity),
            Handler::Required => get(required).options(required),
            Handler::Claims => get(claims),
            Handler::Scoped => get(scoped),
            Handler::OwnCookie => get(own_cookie),
            Handler::NoLayer => get(required),
            Handler::State => {
                app = app.merge(
                    axum::Router::new()
                        .route(path, get(state))
                        .with_state(AuthState::new(policy)),
                );
                continue;
            }
        };
        let mut route = axum::Router::new().route(path, method);
        if let Some(throttle) = throttle {
            route = route.layer(auth_axum::ThrottleLayer::new(throttle));
        }
        app = app.merge(match handler {
            Handler::NoLayer => route,
            _ => route.layer(AuthLayer::new(policy)),
        });
    }
    app
}

fn serve_actix() -> String {
    use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
    use auth_actix::{Auth, AuthState, Authentication, Claims, IssuedCookie, Scoped};
    fn text(body: String) -> HttpResponse {
        HttpResponse::Ok().content_type(TEXT).body(body)
    }
    async fn identity(who: Option<Auth>) -> HttpResponse {
        text(identity_body(who.as_ref().map(|Auth(a)| a.identifier())))
    }
    async fn required(Auth(who): Auth) -> HttpResponse {
        text(identity_body(Some(who.identifier())))
    }
    async fn claims(Claims(typed): Claims<Typed>) -> HttpResponse {
        text(json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string())
    }
    async fn scoped(Scoped(who, _): Scoped<Admin>) -> HttpResponse {
        text(identity_body(Some(who.identifier())))
    }
    async fn own_cookie(Auth(who): Auth) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(TEXT)
            .append_header(("set-cookie", THEME))
            .body(identity_body(Some(who.identifier())))
    }
    async fn state(Auth(who): Auth, req: HttpRequest) -> HttpResponse {
        let mut response = text(identity_body(Some(who.identifier())));
        if let Some(IssuedCookie(cookie)) = req.extensions().get::<IssuedCookie>() {
            response
                .headers_mut()
                .append(actix_web::http::header::SET_COOKIE, cookie.clone());
        }
        response
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                let mut app = App::new();
                for Route {
                    path,
                    handler,
                    policy,
                    throttle,
                } in routes()
                {
                    let options = web::method(actix_web::http::Method::OPTIONS);
                    let scope = web::scope(path);
                    let scope = match handler {
                        Handler::Identity => scope
                            .route("", web::get().to(identity))
                            .route("", options.to(identity)),
                        Handler::Required => scope
                            .route("", web::get().to(required))
                            .route("", options.to(required)),
                        Handler::Claims => scope.route("", web::get().to(claims)),
                        Handler::Scoped => scope.route("", web::get().to(scoped)),
                        Handler::OwnCookie => scope.route("", web::get().to(own_cookie)),
                        Handler::NoLayer => scope.route("", web::get().to(required)),
                        Handler::State => {
                            app = app.service(
                                scope
                                    .app_data(web::Data::new(AuthState::new(policy)))
                                    .route("", web::get().to(state)),
                            );
                            continue;
                        }
                    };
                    app = match (handler, throttle) {
                        (Handler::NoLayer, _) => app.service(scope),
                        // actix runs the last wrap first.
                        (_, Some(throttle)) => app.service(
                            scope
                                .wrap(auth_actix::Throttling::new(throttle))
                                .wrap(Authentication::new(policy)),
                        ),
                        (_, None) => app.service(scope.wrap(Authentication::new(policy))),
                    };
                }
                app
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    base
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

fn over_tcp(base: &str, s: &Scenario) -> Answer {
    let mut req = http::Request::builder()
        .method(s.method)
        .uri(format!("{base}{}", s.path));
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut response = agent().run(req.body(()).unwrap()).unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    answer(status, headers, &body)
}

fn check(way: &str, s: &Scenario, a: &Answer) -> Result<(), String> {
    let fail = |what: String| Err(format!("[{way}] {}: {what}", s.name));
    if a.status != s.status {
        return fail(format!("status {} (want {}); {a:?}", a.status, s.status));
    }
    if a.header("www-authenticate") != s.www_authenticate {
        return fail(format!(
            "WWW-Authenticate {:?} (want {:?})",
            a.header("www-authenticate"),
            s.www_authenticate
        ));
    }
    if a.count("set-cookie") != s.set_cookies {
        return fail(format!(
            "{} Set-Cookie (want {}): {:?}",
            a.count("set-cookie"),
            s.set_cookies,
            a.headers
        ));
    }
    let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    let identifier = body.get("identifier").and_then(Value::as_str);
    let ok = match s.id {
        Id::Is(id) => identifier == Some(id),
        Id::Issued => identifier == Some("<id>"),
        Id::Anonymous => identifier == Some("anonymous"),
        Id::Refused => identifier.is_none() && body.get("error").is_some(),
        Id::Other => true,
    };
    if !ok {
        return fail(format!("body {} (want {:?})", a.body, s.id));
    }
    Ok(())
}

#[test]
fn one_table_three_ways() {
    assert!(
        SCENARIOS.len() >= 55,
        "the table has {} rows",
        SCENARIOS.len()
    );
    let axum = serve_axum(axum_app());
    let axum_no_peer = serve_axum_with(axum_app(), false);
    let actix = serve_actix();
    let mut failures = Vec::new();
    for s in SCENARIOS {
        let core = through_core(s);
        let mut ways = vec![("core", core)];
        match s.peer {
            Peer::Known => {
                ways.push(("axum", over_tcp(&axum, s)));
                ways.push(("actix", over_tcp(&actix, s)));
            }
            Peer::Missing => ways.push(("axum", over_tcp(&axum_no_peer, s))),
        }
        for (way, answer) in &ways {
            if let Err(e) = check(way, s, answer) {
                failures.push(e);
            }
        }
        // The whole answer, alike in every way.
        let (_, first) = &ways[0];
        for (way, other) in &ways[1..] {
            if other.headers != first.headers || other.body != first.body {
                failures.push(format!(
                    "{}: {way} differs from core:\n  core: {first:?}\n  {way}: {other:?}",
                    s.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Details that stay in the log: a 503 or 500 body names no host, address
/// or error text.
#[test]
fn server_side_failures_have_fixed_bodies() {
    let down = SCENARIOS
        .iter()
        .find(|s| s.path == "/introspect-down")
        .unwrap();
    let answer = through_core(down);
    assert_eq!(
        answer.body,
        r#"{"error":"temporarily_unavailable","error_description":"the identity provider is unavailable"}"#
    );
    let no_layer = SCENARIOS.iter().find(|s| s.path == "/no-layer").unwrap();
    assert_eq!(
        through_core(no_layer).body,
        r#"{"error":"server_error","error_description":"internal server error"}"#
    );
}

/// Many requests with one new token make one provider call, through both
/// adapters; every request gets the same answer.
#[test]
fn single_flight_through_both_adapters() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    for _ in 0..4 {
        let (server, calls) = (Arc::clone(&server), Arc::clone(&calls));
        thread::spawn(move || {
            for request in server.incoming_requests() {
                calls.fetch_add(1, Ordering::SeqCst);
                // Slow enough for every request to arrive while it waits.
                thread::sleep(Duration::from_millis(400));
                let answer = json!({"active": true, "sub": "svc-9"}).to_string();
                let _ = request.respond(tiny_http::Response::from_string(answer));
            }
        });
    }
    let policy = || {
        Policy::new(
            IntrospectionBackend::builder(url.as_str(), "api", "secret")
                .allow_http(true)
                .build()
                .unwrap(),
        )
    };
    let axum = serve_axum(
        axum::Router::new()
            .route(
                "/i",
                axum::routing::get(|auth_axum::Auth(who): auth_axum::Auth| async move {
                    identity_body(Some(who.identifier()))
                }),
            )
            .layer(auth_axum::AuthLayer::new(policy())),
    );
    let actix = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let policy = policy();
        thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                actix_web::HttpServer::new(move || {
                    actix_web::App::new().service(
                        actix_web::web::scope("/i")
                            .wrap(auth_actix::Authentication::new(policy.clone()))
                            .route(
                                "",
                                actix_web::web::get().to(
                                    |auth_actix::Auth(who): auth_actix::Auth| async move {
                                        identity_body(Some(who.identifier()))
                                    },
                                ),
                            ),
                    )
                })
                .workers(2)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        base
    };
    for (way, base, token) in [("axum", axum, "tok-axum"), ("actix", actix, "tok-actix")] {
        let before = calls.load(Ordering::SeqCst);
        let answers: Vec<(u16, String)> = (0..8)
            .map(|_| {
                let url = format!("{base}/i");
                thread::spawn(move || {
                    let mut response = agent()
                        .get(&url)
                        .header("authorization", format!("Bearer {token}"))
                        .call()
                        .unwrap();
                    let body = response.body_mut().read_to_string().unwrap();
                    (response.status().as_u16(), body)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut distinct: HashMap<(u16, String), usize> = HashMap::new();
        for a in answers {
            *distinct.entry(a).or_default() += 1;
        }
        assert_eq!(
            distinct.len(),
            1,
            "{way}: every request gets the one answer: {distinct:?}"
        );
        assert!(distinct.contains_key(&(200, identity_body(Some("svc-9")))));
        assert_eq!(
            calls.load(Ordering::SeqCst) - before,
            1,
            "{way}: one provider call for 8 requests"
        );
    }
}
