//! auth-axum over real TCP: `axum::serve` on 127.0.0.1:0, a real HTTP
//! client (ureq), real backends. What both adapters must do alike (statuses,
//! challenges, optional mode, anonymous sessions, preflight, proxies) is in
//! the shared table `tests/tests/conformance.rs`; this file covers what is
//! axum's own: the extractors, handler cookies, `StateAuth`, a missing layer
//! or `ConnectInfo`, and a slow provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use auth_axum::{Auth, AuthLayer, AuthState, Claims, Scope, Scoped, StateAuth};
use auth_core::introspect::IntrospectionBackend;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::transport::UreqTransport;
use auth_core::{AnonSessionBackend, Chain, IpBackend, Policy, SessionBackend};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
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

async fn who(Auth(who): Auth) -> axum::Json<Value> {
    axum::Json(
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

async fn with_own_cookie(Auth(who): Auth) -> impl IntoResponse {
    (
        [(http::header::SET_COOKIE, "theme=dark; Path=/")],
        who.identifier().to_owned(),
    )
}

/// Extracted twice: one identity, its cookie with the first.
async fn state_me(who: StateAuth, again: StateAuth) -> impl IntoResponse {
    let body = if who.auth == again.auth {
        who.auth.key()
    } else {
        format!(
            "two identities: {} and {}",
            who.auth.key(),
            again.auth.key()
        )
    };
    (who.set_cookie(), again.set_cookie(), body)
}

/// What the slow provider saw: calls in all, and the most at once.
#[derive(Default)]
struct Calls {
    total: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Answers introspection slowly (and counts): every call takes `delay`, but
/// all 256 can be in progress at once (slow, not overloaded).
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

fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/introspect", listener.local_addr().unwrap())
}

fn app(slow_url: &str) -> Router {
    let chain = Chain::new()
        .or(jwt())
        .or(AnonSessionBackend::new("anon").unwrap());
    let fast_fail = UreqTransport::builder()
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(5))
        .build();
    Router::new()
        .merge(
            Router::new()
                .route("/whoami", get(who))
                .layer(AuthLayer::new(chain)),
        )
        .merge(
            Router::new()
                .route("/private", get(who))
                .route("/admin", get(admin))
                .route("/claims", get(claims))
                .layer(AuthLayer::new(Policy::new(jwt()).realm("api"))),
        )
        .merge(
            Router::new()
                .route("/cookies", get(with_own_cookie))
                .layer(AuthLayer::new(AnonSessionBackend::new("anon").unwrap())),
        )
        .merge(
            Router::new()
                .route("/ip", get(who))
                .layer(AuthLayer::new(IpBackend::new())),
        )
        .merge(
            Router::new().route("/down", get(who)).layer(AuthLayer::new(
                Policy::new(
                    IntrospectionBackend::builder(closed_port(), "api", "secret")
                        .allow_http(true)
                        .build()
                        .unwrap(),
                )
                .transport(fast_fail),
            )),
        )
        .merge(
            Router::new().route("/slow", get(who)).layer(AuthLayer::new(
                IntrospectionBackend::builder(slow_url, "api", "secret")
                    .allow_http(true)
                    .build()
                    .unwrap(),
            )),
        )
        .merge(Router::new().route("/no-layer", get(who)))
        .merge(
            Router::new()
                .route("/state", get(state_me))
                .with_state(AuthState::new(
                    Chain::new()
                        .or(SessionBackend::new("session").unwrap())
                        .or(AnonSessionBackend::new("anon").unwrap()),
                )),
        )
}

/// Serves `app` on 127.0.0.1:0 in a background runtime; `connect_info`
/// says whether the peer address is passed on.
fn serve(app: Router, connect_info: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            if connect_info {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .unwrap();
            } else {
                axum::serve(listener, app.into_make_service())
                    .await
                    .unwrap();
            }
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

struct Fixture {
    base: String,
    slow_calls: Arc<Calls>,
}

/// The app on a real server; `/slow` points at a slow provider only for the
/// test that needs one.
fn fixture_with(slow: bool) -> Fixture {
    let (slow_url, slow_calls) = if slow {
        slow_provider(Duration::from_millis(1500))
    } else {
        (closed_port(), Arc::new(Calls::default()))
    };
    Fixture {
        base: serve(app(&slow_url), true),
        slow_calls,
    }
}

fn fixture() -> Fixture {
    fixture_with(false)
}

#[test]
fn scoped_and_claims_extractors() {
    let f = fixture();
    let reader = format!("Bearer {}", token("alice", "read"));
    let forbidden = get_(&f.base, "/admin", &[("authorization", &reader)]);
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.www_authenticate.as_deref(),
        Some(
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#
        )
    );
    let admin_token = format!("Bearer {}", token("root", "read admin"));
    assert_eq!(
        get_(&f.base, "/admin", &[("authorization", &admin_token)]).body,
        "admin root"
    );
    assert_eq!(
        get_(&f.base, "/claims", &[("authorization", &admin_token)]).body,
        "read admin"
    );
    assert_eq!(
        get_(&f.base, "/private", &[("authorization", &reader)]).status,
        200
    );
}

#[test]
fn anonymous_cookie_issued_then_reused_and_handler_cookies_kept() {
    let f = fixture();
    let first = get_(&f.base, "/whoami", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.set_cookie.len(), 1);
    let pair = first.set_cookie[0].split(';').next().unwrap().to_owned();
    let id: Value = serde_json::from_str(&first.body).unwrap();
    let second = get_(&f.base, "/whoami", &[("cookie", &pair)]);
    assert_eq!(
        serde_json::from_str::<Value>(&second.body).unwrap()["identifier"],
        id["identifier"]
    );
    assert!(second.set_cookie.is_empty());
    // A present but bad token on the chain route is 401, not anonymous.
    assert_eq!(
        get_(&f.base, "/whoami", &[("authorization", "Bearer x.y.z")]).status,
        401
    );

    let cookies = get_(&f.base, "/cookies", &[]);
    assert_eq!(cookies.set_cookie.len(), 2, "{:?}", cookies.set_cookie);
    assert!(
        cookies
            .set_cookie
            .iter()
            .any(|c| c.starts_with("theme=dark"))
    );
    assert!(cookies.set_cookie.iter().any(|c| c.starts_with("anon=")));
}

/// Everything logged in this test binary (the servers run on other
/// threads, so the subscriber is global).
fn log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let writer = move || LogWriter(log);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(writer)
            .init();
        log
    })
}

struct LogWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&log().lock().unwrap()).contains(needle)
}

const SERVER_ERROR: &str =
    r#"{"error":"server_error","error_description":"internal server error"}"#;

#[test]
fn missing_connect_info_is_a_fixed_500_named_in_the_log() {
    log();
    let no_info = serve(app(&closed_port()), false);
    let missing = get_(&no_info, "/ip", &[]);
    assert_eq!(missing.status, 500);
    assert_eq!(missing.body, SERVER_ERROR);
    assert!(logged("into_make_service_with_connect_info"));
}

#[test]
fn provider_down_is_503_and_misconfiguration_is_500() {
    let f = fixture();
    let started = Instant::now();
    let down = get_(
        &f.base,
        "/down",
        &[("authorization", "Bearer some-opaque-token")],
    );
    assert_eq!(down.status, 503);
    assert_eq!(down.www_authenticate, None);
    assert_eq!(
        serde_json::from_str::<Value>(&down.body).unwrap()["error"],
        "temporarily_unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    log();
    let no_layer = get_(&f.base, "/no-layer", &[]);
    assert_eq!(no_layer.status, 500);
    assert_eq!(no_layer.body, SERVER_ERROR);
    assert!(logged("without AuthLayer"));
}

#[test]
fn state_extractor_without_the_layer() {
    let f = fixture();
    let issued = get_(&f.base, "/state", &[]);
    assert_eq!(issued.status, 200);
    assert!(issued.body.starts_with("anon:"));
    assert_eq!(
        issued.set_cookie.len(),
        1,
        "the handler returned the issued cookie"
    );
    let id = issued.body.trim_start_matches("anon:");
    assert!(issued.set_cookie[0].starts_with(&format!("anon={id};")));
    let session = get_(&f.base, "/state", &[("cookie", "session=s-1")]);
    assert_eq!(
        (session.body.as_str(), session.set_cookie.len()),
        ("session:s-1", 0)
    );
}

#[test]
fn a_slow_provider_does_not_stall_other_routes() {
    let f = fixture_with(true);
    let base = f.base.clone();
    // 256 requests with distinct tokens, each waiting 1.5 s on the provider.
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
    // Meanwhile other routes answer at once.
    let reader = format!("Bearer {}", token("carol", "read"));
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(
            get_(&f.base, "/private", &[("authorization", &reader)]).status,
            200
        );
        assert_eq!(get_(&f.base, "/ip", &[]).status, 200);
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
    let most = f.slow_calls.most.load(Ordering::SeqCst);
    assert!(admitted >= 1 && most <= 64, "{most} at once; {statuses:?}");
    assert_eq!(f.slow_calls.total.load(Ordering::SeqCst), admitted);
}
