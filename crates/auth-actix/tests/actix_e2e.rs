//! auth-actix over real TCP: an actix `HttpServer` on 127.0.0.1:0, a real
//! HTTP client (ureq), real backends. What both adapters must do alike is in
//! the shared table `tests/tests/conformance.rs`; this file covers what is
//! actix's own: the extractors, handler cookies, `AuthState` in `app_data`,
//! and a slow provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use auth_actix::{Auth, AuthState, Authentication, Claims, IssuedCookie, Scope, Scoped};
use auth_core::introspect::IntrospectionBackend;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::transport::UreqTransport;
use auth_core::{AnonSessionBackend, Chain, IpBackend, Policy, SessionBackend};
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn jwt() -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .issuer("test")
            .build()
            .unwrap(),
    )
}

fn token(sub: &str, scope: &str) -> String {
    TokenIssuer::hs256(SECRET)
        .unwrap()
        .issuer("test")
        .issue(json!({"sub": sub, "scope": scope}), SystemTime::now())
        .unwrap()
}

async fn who(Auth(who): Auth) -> HttpResponse {
    HttpResponse::Ok().json(
        json!({"identifier": who.identifier(), "source": who.source().as_str(), "key": who.key()}),
    )
}

struct Admin;
impl Scope for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

async fn admin(Scoped(who, _): Scoped<Admin>) -> String {
    format!("admin {}", who.identifier())
}

#[derive(serde::Deserialize)]
struct TokenClaims {
    scope: String,
}

async fn claims(Claims(c): Claims<TokenClaims>) -> String {
    c.scope
}

async fn with_own_cookie(Auth(who): Auth) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("set-cookie", "theme=dark; Path=/"))
        .body(who.identifier().to_owned())
}

/// Without the middleware: the identity comes from the `AuthState` in
/// `app_data`, and the handler sends any issued cookie itself. Two
/// extractors (actix builds both before polling either) must see one
/// decision: one identity, one issued cookie.
async fn state_me(req: HttpRequest, Auth(who): Auth, Auth(again): Auth) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(IssuedCookie(cookie)) = req.extensions().get::<IssuedCookie>() {
        response.append_header(("set-cookie", cookie.clone()));
    }
    if who == again {
        response.body(who.key())
    } else {
        response.body(format!("two identities: {} and {}", who.key(), again.key()))
    }
}

fn slow_provider(delay: Duration) -> (String, Arc<Calls>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    let calls = Arc::new(Calls::default());
    for _ in 0..260 {
        let (server, calls) = (Arc::clone(&server), Arc::clone(&calls));
        thread::spawn(move || {
            for request in server.incoming_requests() {
                calls.total.fetch_add(1, Ordering::SeqCst);
                let now = calls.now.fetch_add(1, Ordering::SeqCst) + 1;
                calls.most.fetch_max(now, Ordering::SeqCst);
                thread::sleep(delay);
                calls.now.fetch_sub(1, Ordering::SeqCst);
                let answer = json!({"active": true, "sub": "slow-user"}).to_string();
                let _ = request.respond(tiny_http::Response::from_string(answer));
            }
        });
    }
    (url, calls)
}

/// What the slow provider saw: calls in all, and the most at once.
#[derive(Default)]
struct Calls {
    total: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/introspect", listener.local_addr().unwrap())
}

/// Serves the test app on 127.0.0.1:0 with two workers.
fn serve(slow_url: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Built once and shared by the workers, as an application should: one
    // cache, one cap on provider calls.
    let slow = Authentication::new(
        IntrospectionBackend::builder(slow_url, "api", "s")
            .allow_http(true)
            .build()
            .unwrap(),
    );
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let chain = Chain::new()
                    .or(jwt())
                    .or(AnonSessionBackend::new("anon").unwrap());
                let fast_fail = UreqTransport::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .build();
                let state = AuthState::new(
                    Chain::new()
                        .or(SessionBackend::new("session").unwrap())
                        .or(AnonSessionBackend::new("anon").unwrap()),
                );
                App::new()
                    .app_data(web::Data::new(state))
                    .service(
                        web::scope("/chain")
                            .wrap(Authentication::new(chain))
                            .route("/whoami", web::get().to(who)),
                    )
                    .service(
                        web::scope("/jwt")
                            .wrap(Authentication::new(Policy::new(jwt()).realm("api")))
                            .route("/private", web::get().to(who))
                            .route("/admin", web::get().to(admin))
                            .route("/claims", web::get().to(claims)),
                    )
                    .service(
                        web::scope("/cookies")
                            .wrap(Authentication::new(
                                AnonSessionBackend::new("anon").unwrap(),
                            ))
                            .route("", web::get().to(with_own_cookie)),
                    )
                    .service(
                        web::scope("/ip")
                            .wrap(Authentication::new(IpBackend::new()))
                            .route("", web::get().to(who)),
                    )
                    .service(
                        web::scope("/down")
                            .wrap(Authentication::new(
                                Policy::new(
                                    IntrospectionBackend::builder(closed_port(), "api", "s")
                                        .allow_http(true)
                                        .build()
                                        .unwrap(),
                                )
                                .transport(fast_fail),
                            ))
                            .route("", web::get().to(who)),
                    )
                    .service(
                        web::scope("/slow")
                            .wrap(slow.clone())
                            .route("", web::get().to(who)),
                    )
                    .route("/state", web::get().to(state_me))
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
}

struct Answer {
    status: u16,
    set_cookie: Vec<String>,
    www_authenticate: Option<String>,
    body: String,
}

fn call(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = agent.run(request.body(()).unwrap()).unwrap();
    let values = |name: &str| -> Vec<String> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let set_cookie = values("set-cookie");
    let www_authenticate = values("www-authenticate").into_iter().next();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    Answer {
        status,
        set_cookie,
        www_authenticate,
        body,
    }
}

fn get_(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    call("GET", &format!("{base}{path}"), headers)
}

#[test]
fn scoped_and_claims_extractors() {
    let base = serve(closed_port());
    let reader = format!("Bearer {}", token("alice", "read"));
    let forbidden = get_(&base, "/jwt/admin", &[("authorization", &reader)]);
    assert_eq!(forbidden.status, 403);
    assert!(
        forbidden
            .www_authenticate
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );
    let admin_token = format!("Bearer {}", token("root", "read admin"));
    assert_eq!(
        get_(&base, "/jwt/admin", &[("authorization", &admin_token)]).body,
        "admin root"
    );
    assert_eq!(
        get_(&base, "/jwt/claims", &[("authorization", &admin_token)]).body,
        "read admin"
    );
}

#[test]
fn anonymous_cookie_issued_then_reused_and_handler_cookies_kept() {
    let base = serve(closed_port());
    let first = get_(&base, "/chain/whoami", &[]);
    assert_eq!((first.status, first.set_cookie.len()), (200, 1));
    let pair = first.set_cookie[0].split(';').next().unwrap().to_owned();
    let id: Value = serde_json::from_str(&first.body).unwrap();
    let second = get_(&base, "/chain/whoami", &[("cookie", &pair)]);
    assert_eq!(
        serde_json::from_str::<Value>(&second.body).unwrap()["identifier"],
        id["identifier"]
    );
    assert!(second.set_cookie.is_empty());
    assert_eq!(
        get_(&base, "/chain/whoami", &[("authorization", "Bearer x.y.z")]).status,
        401
    );

    let cookies = get_(&base, "/cookies", &[]);
    assert_eq!(cookies.set_cookie.len(), 2, "{:?}", cookies.set_cookie);
    assert!(
        cookies
            .set_cookie
            .iter()
            .any(|c| c.starts_with("theme=dark"))
    );
    assert!(cookies.set_cookie.iter().any(|c| c.starts_with("anon=")));
}

#[test]
fn provider_down_is_503_and_state_extractor_works() {
    let base = serve(closed_port());
    let started = Instant::now();
    let down = get_(
        &base,
        "/down",
        &[("authorization", "Bearer some-opaque-token")],
    );
    assert_eq!((down.status, down.www_authenticate.as_deref()), (503, None));
    assert_eq!(
        serde_json::from_str::<Value>(&down.body).unwrap()["error"],
        "temporarily_unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let issued = get_(&base, "/state", &[]);
    assert!(issued.body.starts_with("anon:"), "{}", issued.body);
    assert_eq!(issued.set_cookie.len(), 1);
    // The cookie sent is the identity's.
    let id = issued.body.trim_start_matches("anon:");
    assert!(
        issued.set_cookie[0].starts_with(&format!("anon={id};")),
        "{:?} for {id}",
        issued.set_cookie
    );
    assert_eq!(
        get_(&base, "/state", &[("cookie", "session=s-1")]).body,
        "session:s-1"
    );
}

#[test]
fn a_slow_provider_does_not_stall_other_routes() {
    let (slow_url, calls) = slow_provider(Duration::from_millis(1500));
    let base = serve(slow_url);
    let slow: Vec<_> = (0..256)
        .map(|i| {
            let base = base.clone();
            thread::spawn(move || {
                get_(
                    &base,
                    "/slow",
                    &[("authorization", &format!("Bearer token-{i}"))],
                )
                .status
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let reader = format!("Bearer {}", token("carol", "read"));
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(
            get_(&base, "/jwt/private", &[("authorization", &reader)]).status,
            200
        );
        assert_eq!(get_(&base, "/ip", &[]).status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
    let statuses: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    // Over the cap of concurrent provider calls (64), 503 at once; each
    // admitted request made one call.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    // How many are admitted depends on how fast this machine starts 256
    // requests; that the provider never sees more than the cap at once
    // does not.
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let most = calls.most.load(Ordering::SeqCst);
    assert!(admitted >= 1 && most <= 64, "{most} at once; {statuses:?}");
    assert_eq!(calls.total.load(Ordering::SeqCst), admitted);
}
