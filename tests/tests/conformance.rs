//! One table of scenarios, run three ways: through the core directly,
//! through the axum adapter and through the actix adapter (both over real
//! TCP with a real client). Every way must give the row's status,
//! `WWW-Authenticate`, `Set-Cookie` presence and identifier, and the two
//! adapters must send byte-identical error bodies. Adding a scenario is one
//! row of `SCENARIOS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, SystemTime};

use auth_core::introspect::IntrospectionBackend;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::request::PeerAddr;
use auth_core::transport::{UreqTransport, authenticate_blocking};
use auth_core::{AnonSessionBackend, Chain, IpBackend, Policy, RequireScopes, SessionBackend};
use auth_tests::serve_axum;
use serde_json::{Value, json};

const SECRET: &[u8] = b"conformance-secret-0123456789abc";
const NO_WWW: Option<&str> = None;

/// Tokens the table refers to by name.
fn token(name: &str) -> String {
    let issuer = TokenIssuer::hs256(SECRET).unwrap().issuer("conf");
    let now = SystemTime::now();
    match name {
        "reader" => issuer
            .issue(json!({"sub": "alice", "scope": "read"}), now)
            .unwrap(),
        "admin" => issuer
            .issue(json!({"sub": "root", "scope": "read admin"}), now)
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
        "none-alg" => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.".into(),
        "huge" => format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c"),
        other => panic!("unknown token {other}"),
    }
}

/// A real introspection endpoint on 127.0.0.1 (started once): the token
/// `opaque-good` is active for `svc-1`, anything else is inactive.
fn introspection_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
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

/// The routes, as core policies: the same values for all three ways.
fn routes() -> Vec<(&'static str, Policy)> {
    let jwt = || {
        JwtBackend::new(
            JwtValidator::builder([Algorithm::HS256])
                .hmac_secret(SECRET)
                .issuer("conf")
                .build()
                .unwrap(),
        )
    };
    let anon = || AnonSessionBackend::new("anon").unwrap();
    vec![
        ("/whoami", Policy::new(Chain::new().or(jwt()).or(anon()))),
        ("/private", Policy::new(jwt()).realm("api")),
        ("/admin", Policy::new(RequireScopes::new(jwt(), ["admin"]))),
        ("/optional", Policy::new(jwt()).optional()),
        (
            "/session",
            Policy::new(SessionBackend::new("session").unwrap()),
        ),
        (
            "/signed",
            Policy::new(
                AnonSessionBackend::builder("anon")
                    .signing_key([9u8; 32])
                    .build()
                    .unwrap(),
            ),
        ),
        ("/ip", Policy::new(IpBackend::new())),
        (
            "/ip-proxied",
            Policy::new(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap()),
        ),
        (
            "/introspected",
            Policy::new(
                IntrospectionBackend::builder(introspection_url(), "api", "secret")
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "/introspect-down",
            Policy::new(
                IntrospectionBackend::builder(closed_port(), "api", "secret")
                    .build()
                    .unwrap(),
            )
            .transport(
                UreqTransport::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .build(),
            ),
        ),
    ]
}

/// Expected identifier: exact, any issued one, or none (anonymous access).
#[derive(Clone, Copy, Debug)]
enum Id {
    Is(&'static str),
    Issued,
    Anonymous,
    NoBody,
}

struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Header values may name a token as `{token:NAME}`.
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    www_authenticate: Option<&'static str>,
    set_cookie: bool,
    id: Id,
}

const fn row(
    name: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    www_authenticate: Option<&'static str>,
    set_cookie: bool,
    id: Id,
) -> Scenario {
    Scenario {
        name,
        method: "GET",
        path,
        headers,
        status,
        www_authenticate,
        set_cookie,
        id,
    }
}

const INVALID: Option<&str> =
    Some(r#"Bearer error="invalid_token", error_description="malformed token""#);
const ANON: &str = "anon=0123456789abcdef0123456789abcdef";

const SCENARIOS: &[Scenario] = &[
    // Chain: JWT, else anonymous session.
    row(
        "chain: nothing -> anonymous issued",
        "/whoami",
        &[],
        200,
        NO_WWW,
        true,
        Id::Issued,
    ),
    row(
        "chain: anonymous cookie reused",
        "/whoami",
        &[("cookie", ANON)],
        200,
        NO_WWW,
        false,
        Id::Is("0123456789abcdef0123456789abcdef"),
    ),
    row(
        "chain: valid token wins over cookie",
        "/whoami",
        &[("authorization", "Bearer {token:reader}"), ("cookie", ANON)],
        200,
        NO_WWW,
        false,
        Id::Is("alice"),
    ),
    row(
        "chain: lowercase scheme",
        "/whoami",
        &[("authorization", "bearer {token:reader}")],
        200,
        NO_WWW,
        false,
        Id::Is("alice"),
    ),
    row(
        "chain: bad token is not downgraded",
        "/whoami",
        &[("authorization", "Bearer not.a.jwt")],
        401,
        INVALID,
        false,
        Id::NoBody,
    ),
    row(
        "chain: Bearer without token",
        "/whoami",
        &[("authorization", "Bearer")],
        400,
        Some(r#"Bearer error="invalid_request", error_description="empty bearer token""#),
        false,
        Id::NoBody,
    ),
    row(
        "chain: other scheme -> anonymous",
        "/whoami",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        200,
        NO_WWW,
        true,
        Id::Issued,
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
        false,
        Id::NoBody,
    ),
    row(
        "chain: expired token",
        "/whoami",
        &[("authorization", "Bearer {token:expired}")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token expired""#),
        false,
        Id::NoBody,
    ),
    row(
        "chain: foreign issuer",
        "/whoami",
        &[("authorization", "Bearer {token:foreign}")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token has the wrong issuer""#),
        false,
        Id::NoBody,
    ),
    row(
        "chain: malformed anonymous cookie replaced",
        "/whoami",
        &[("cookie", "anon=\"a\\b\"")],
        200,
        NO_WWW,
        true,
        Id::Issued,
    ),
    // JWT required, with a realm.
    row(
        "private: nothing",
        "/private",
        &[],
        401,
        Some(r#"Bearer realm="api""#),
        false,
        Id::NoBody,
    ),
    row(
        "private: valid",
        "/private",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        false,
        Id::Is("alice"),
    ),
    row(
        "private: alg none",
        "/private",
        &[("authorization", "Bearer {token:none-alg}")],
        401,
        Some(r#"Bearer realm="api", error="invalid_token", error_description="malformed token""#),
        false,
        Id::NoBody,
    ),
    row(
        "private: oversized token",
        "/private",
        &[("authorization", "Bearer {token:huge}")],
        401,
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="bearer token exceeds the size limit""#,
        ),
        false,
        Id::NoBody,
    ),
    row(
        "private: not token68",
        "/private",
        &[("authorization", "Bearer a b")],
        400,
        Some(
            r#"Bearer realm="api", error="invalid_request", error_description="bearer token is not a token68 string""#,
        ),
        false,
        Id::NoBody,
    ),
    // Scopes.
    row(
        "admin: reader lacks scope",
        "/admin",
        &[("authorization", "Bearer {token:reader}")],
        403,
        Some(
            r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#,
        ),
        false,
        Id::NoBody,
    ),
    row(
        "admin: admin",
        "/admin",
        &[("authorization", "Bearer {token:admin}")],
        200,
        NO_WWW,
        false,
        Id::Is("root"),
    ),
    row(
        "admin: nothing",
        "/admin",
        &[],
        401,
        Some("Bearer"),
        false,
        Id::NoBody,
    ),
    // Optional mode.
    row(
        "optional: nothing",
        "/optional",
        &[],
        200,
        NO_WWW,
        false,
        Id::Anonymous,
    ),
    row(
        "optional: valid",
        "/optional",
        &[("authorization", "Bearer {token:reader}")],
        200,
        NO_WWW,
        false,
        Id::Is("alice"),
    ),
    row(
        "optional: invalid still refused",
        "/optional",
        &[("authorization", "Bearer x.y.z")],
        401,
        INVALID,
        false,
        Id::NoBody,
    ),
    // Session cookie required.
    row(
        "session: nothing",
        "/session",
        &[],
        401,
        NO_WWW,
        false,
        Id::NoBody,
    ),
    row(
        "session: present",
        "/session",
        &[("cookie", "theme=dark; session=u-1=x")],
        200,
        NO_WWW,
        false,
        Id::Is("u-1=x"),
    ),
    row(
        "session: two Cookie headers",
        "/session",
        &[("cookie", "theme=dark"), ("cookie", "session=u-2")],
        200,
        NO_WWW,
        false,
        Id::Is("u-2"),
    ),
    row(
        "session: malformed value",
        "/session",
        &[("cookie", "session=a\\b")],
        401,
        NO_WWW,
        false,
        Id::NoBody,
    ),
    // Signed anonymous sessions.
    row(
        "signed: nothing -> issued",
        "/signed",
        &[],
        200,
        NO_WWW,
        true,
        Id::Issued,
    ),
    row(
        "signed: self-chosen id replaced",
        "/signed",
        &[("cookie", ANON)],
        200,
        NO_WWW,
        true,
        Id::Issued,
    ),
    // Client address.
    row(
        "ip: peer",
        "/ip",
        &[],
        200,
        NO_WWW,
        false,
        Id::Is("127.0.0.1"),
    ),
    row(
        "ip: spoof from untrusted peer ignored",
        "/ip",
        &[("x-forwarded-for", "203.0.113.9")],
        200,
        NO_WWW,
        false,
        Id::Is("127.0.0.1"),
    ),
    row(
        "ip: trusted proxy chain",
        "/ip-proxied",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 127.0.0.3")],
        200,
        NO_WWW,
        false,
        Id::Is("203.0.113.9"),
    ),
    row(
        "ip: mapped address normalised",
        "/ip-proxied",
        &[("x-forwarded-for", "::ffff:198.51.100.9")],
        200,
        NO_WWW,
        false,
        Id::Is("198.51.100.9"),
    ),
    row(
        "ip: garbage after trusted hop",
        "/ip-proxied",
        &[("x-forwarded-for", "garbage")],
        200,
        NO_WWW,
        false,
        Id::Is("127.0.0.1"),
    ),
    row(
        "ip: Forwarded not read when XFF configured",
        "/ip-proxied",
        &[("forwarded", "for=203.0.113.9")],
        200,
        NO_WWW,
        false,
        Id::Is("127.0.0.1"),
    ),
    // Token introspection against a real endpoint, and a provider that is down.
    row(
        "introspection: active token",
        "/introspected",
        &[("authorization", "Bearer opaque-good")],
        200,
        NO_WWW,
        false,
        Id::Is("svc-1"),
    ),
    row(
        "introspection: inactive token",
        "/introspected",
        &[("authorization", "Bearer opaque-revoked")],
        401,
        Some(r#"Bearer error="invalid_token", error_description="token is not active""#),
        false,
        Id::NoBody,
    ),
    row(
        "introspection: no token",
        "/introspected",
        &[],
        401,
        Some("Bearer"),
        false,
        Id::NoBody,
    ),
    row(
        "introspection: provider down",
        "/introspect-down",
        &[("authorization", "Bearer opaque-good")],
        503,
        NO_WWW,
        false,
        Id::NoBody,
    ),
    // CORS preflight passes; plain OPTIONS does not.
    Scenario {
        name: "preflight passes through",
        method: "OPTIONS",
        path: "/private",
        headers: &[("access-control-request-method", "GET")],
        status: 200,
        www_authenticate: NO_WWW,
        set_cookie: false,
        id: Id::Anonymous,
    },
    Scenario {
        name: "plain OPTIONS is authenticated",
        method: "OPTIONS",
        path: "/private",
        headers: &[],
        status: 401,
        www_authenticate: Some(r#"Bearer realm="api""#),
        set_cookie: false,
        id: Id::NoBody,
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
    www_authenticate: Option<String>,
    set_cookie: bool,
    body: String,
}

/// The handlers' body: the identifier, or "anonymous".
fn identity_body(identifier: Option<&str>) -> String {
    json!({"identifier": identifier.unwrap_or("anonymous")}).to_string()
}

/// The core directly: the same policy decisions the adapters make.
fn through_core(s: &Scenario) -> Answer {
    let policy = routes().into_iter().find(|(p, _)| *p == s.path).unwrap().1;
    let mut req = http::Request::builder().method(s.method);
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    let preflight = req.headers().contains_key("access-control-request-method");
    if policy.skips(s.method, preflight) {
        return Answer {
            status: 200,
            www_authenticate: None,
            set_cookie: false,
            body: identity_body(None),
        };
    }
    match authenticate_blocking(policy.backend(), &req, &**policy.shared_transport()) {
        Ok(who) => Answer {
            status: 200,
            www_authenticate: None,
            set_cookie: who.set_cookie.is_some(),
            body: identity_body(Some(who.auth.identifier())),
        },
        Err(e) if policy.lets_through(&e) => Answer {
            status: 200,
            www_authenticate: None,
            set_cookie: false,
            body: identity_body(None),
        },
        Err(e) => Answer {
            status: e.status().as_u16(),
            www_authenticate: e.challenge().map(|c| match policy.realm_name() {
                Some(realm) => c.realm(realm).to_string(),
                None => c.to_string(),
            }),
            set_cookie: false,
            body: e.body_json(),
        },
    }
}

fn serve_axum_app() -> String {
    use auth_axum::{Auth, AuthLayer};
    use axum::routing::get;
    async fn handler(who: Option<Auth>) -> String {
        identity_body(who.as_ref().map(|Auth(a)| a.identifier()))
    }
    let mut app = axum::Router::new();
    for (path, policy) in routes() {
        app = app.merge(
            axum::Router::new()
                .route(path, get(handler).options(handler))
                .layer(AuthLayer::with_policy(policy)),
        );
    }
    serve_axum(app)
}

fn serve_actix() -> String {
    use actix_web::{App, HttpServer, web};
    use auth_actix::{Auth, Authentication};
    async fn handler(who: Option<Auth>) -> String {
        identity_body(who.as_ref().map(|Auth(a)| a.identifier()))
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                let mut app = App::new();
                for (path, policy) in routes() {
                    app = app.service(
                        web::scope(path)
                            .wrap(Authentication::with_policy(policy))
                            .route("", web::get().to(handler))
                            .route(
                                "",
                                web::method(actix_web::http::Method::OPTIONS).to(handler),
                            ),
                    );
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

fn over_tcp(base: &str, s: &Scenario) -> Answer {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut req = http::Request::builder()
        .method(s.method)
        .uri(format!("{base}{}", s.path));
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut response = agent.run(req.body(()).unwrap()).unwrap();
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("anon="));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    Answer {
        status,
        www_authenticate,
        set_cookie,
        body,
    }
}

fn check(way: &str, s: &Scenario, a: &Answer) -> Result<(), String> {
    let fail = |what: String| Err(format!("[{way}] {}: {what}", s.name));
    if a.status != s.status {
        return fail(format!("status {} (want {})", a.status, s.status));
    }
    if a.www_authenticate.as_deref() != s.www_authenticate {
        return fail(format!(
            "WWW-Authenticate {:?} (want {:?})",
            a.www_authenticate, s.www_authenticate
        ));
    }
    if a.set_cookie != s.set_cookie {
        return fail(format!(
            "Set-Cookie {} (want {})",
            a.set_cookie, s.set_cookie
        ));
    }
    let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    let identifier = body.get("identifier").and_then(Value::as_str);
    let ok = match s.id {
        Id::Is(id) => identifier == Some(id),
        Id::Issued => {
            identifier.is_some_and(|id| id.len() == 32 && id != "0123456789abcdef0123456789abcdef")
        }
        Id::Anonymous => identifier == Some("anonymous"),
        Id::NoBody => identifier.is_none() && body.get("error").is_some(),
    };
    if !ok {
        return fail(format!("body {} (want {:?})", a.body, s.id));
    }
    Ok(())
}

#[test]
fn one_table_three_ways() {
    assert!(
        SCENARIOS.len() >= 30,
        "the table has {} rows",
        SCENARIOS.len()
    );
    let (axum, actix) = (serve_axum_app(), serve_actix());
    let mut failures = Vec::new();
    for s in SCENARIOS {
        let core = through_core(s);
        let via_axum = over_tcp(&axum, s);
        let via_actix = over_tcp(&actix, s);
        for (way, answer) in [("core", &core), ("axum", &via_axum), ("actix", &via_actix)] {
            if let Err(e) = check(way, s, answer) {
                failures.push(e);
            }
        }
        // Error bodies are the core's, byte for byte, in every way.
        if s.status != 200 && !(core.body == via_axum.body && via_axum.body == via_actix.body) {
            failures.push(format!(
                "{}: bodies differ: core {} / axum {} / actix {}",
                s.name, core.body, via_axum.body, via_actix.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        SCENARIOS.len() * 4,
        failures.join("\n")
    );
}
