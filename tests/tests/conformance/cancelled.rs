//! A client that hangs up while its request is fetching keys must not cost
//! everybody else the refresh: the fetch finishes and is installed without
//! its request, on both adapters, over real TCP.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use auth_core::{Algorithm, JwtBackend, JwtValidator, Policy, TokenIssuer};
use auth_tests::serve_axum;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::json;

const DELAY: Duration = Duration::from_millis(600);

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../crates/auth-core/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Signer {
    issuer: TokenIssuer,
    jwk: Jwk,
}

fn signer(file: &str, kid: &str) -> Signer {
    let key = EncodingKey::from_rsa_pem(&key_file(file)).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    let issuer = TokenIssuer::new(Algorithm::RS256, key).unwrap().key_id(kid);
    Signer { issuer, jwk }
}

impl Signer {
    fn token(&self) -> String {
        self.issuer
            .issue(json!({"sub": "alice"}), SystemTime::now())
            .unwrap()
    }
}

/// A JWKS endpoint that answers after `DELAY`, counting fetches and
/// answers.
struct Keys {
    url: String,
    set: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Keys {
    fn start(keys: &[&Jwk]) -> Keys {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/jwks.json", server.server_addr().to_ip().unwrap());
        let set = Arc::new(Mutex::new(json!({"keys": keys}).to_string()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let (server, set, fetches, answered) = (
                Arc::clone(&server),
                Arc::clone(&set),
                Arc::clone(&fetches),
                Arc::clone(&answered),
            );
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(DELAY);
                    let body = set.lock().unwrap().clone();
                    let _ = request.respond(tiny_http::Response::from_string(body));
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Keys {
            url,
            set,
            fetches,
            answered,
        }
    }

    fn rotate(&self, keys: &[&Jwk]) {
        *self.set.lock().unwrap() = json!({"keys": keys}).to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits until `count` of `counter` (`fetches` or `answered`).
    fn wait_for(counter: &AtomicUsize, count: usize) {
        let started = Instant::now();
        while counter.load(Ordering::SeqCst) < count {
            assert!(started.elapsed() < Duration::from_secs(10), "never came");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn policy(keys: &Keys) -> Policy {
    Policy::new(JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .jwks_url(&keys.url)
            .allow_http(true)
            .refresh_interval(Duration::from_secs(2))
            .build()
            .unwrap(),
    ))
}

fn serve_actix(policy: Policy) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            actix_web::HttpServer::new(move || {
                actix_web::App::new().service(
                    actix_web::web::scope("/p")
                        .wrap(auth_actix::Authentication::new(policy.clone()))
                        .route("", actix_web::web::get().to(|| async { "ok" })),
                )
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

fn serve_axum_app(policy: Policy) -> String {
    serve_axum(
        axum::Router::new()
            .route("/p", axum::routing::get(|| async { "ok" }))
            .layer(auth_axum::AuthLayer::new(policy)),
    )
}

fn status(base: &str, token: &str) -> u16 {
    let agent = auth_tests::agent();
    agent
        .get(format!("{base}/p"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// Sends a request with `token` and hangs up before the answer, once its
/// key fetch reached `keys` (the fetch it is still waiting for).
fn hang_up(base: &str, token: &str, keys: &Keys) {
    let address = base.trim_start_matches("http://");
    let before = keys.fetches();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /p HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    Keys::wait_for(&keys.fetches, before + 1);
    drop(stream);
}

type Serve = fn(Policy) -> String;

#[test]
fn a_hang_up_on_a_cold_start_does_not_cost_the_first_fetch() {
    for (name, serve) in [("axum", serve_axum_app as Serve), ("actix", serve_actix)] {
        let k1 = signer("rsa.key", "k1");
        let keys = Keys::start(&[&k1.jwk]);
        let base = serve(policy(&keys));
        hang_up(&base, &k1.token(), &keys);
        // The next client, while (or after) that fetch runs: served by it.
        assert_eq!(status(&base, &k1.token()), 200, "{name}");
        assert_eq!(keys.fetches(), 1, "{name}: the hung-up fetch was the one");
    }
}

#[test]
fn a_hang_up_after_a_rotation_does_not_block_the_new_key() {
    for (name, serve) in [("axum", serve_axum_app as Serve), ("actix", serve_actix)] {
        let (k1, k2) = (signer("rsa.key", "k1"), signer("rsa2.key", "k2"));
        let keys = Keys::start(&[&k1.jwk]);
        let base = serve(policy(&keys));
        assert_eq!(status(&base, &k1.token()), 200, "{name}: warm");
        // Past the refresh interval, the provider rotates to k2.
        thread::sleep(Duration::from_millis(2100));
        keys.rotate(&[&k1.jwk, &k2.jwk]);
        hang_up(&base, &k2.token(), &keys);
        // Once the provider has answered the hung-up fetch, a k2 token is
        // accepted at once, without waiting out the interval.
        Keys::wait_for(&keys.answered, 2);
        let started = Instant::now();
        assert_eq!(status(&base, &k2.token()), 200, "{name}");
        assert!(started.elapsed() < DELAY, "{name}: no new fetch was needed");
        assert_eq!(keys.fetches(), 2, "{name}");
    }
}
