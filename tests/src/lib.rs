//! End-to-end tests of the auth workspace against real servers on
//! 127.0.0.1; the tests are in `tests/tests/`. This library holds the
//! fixtures they share.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub mod faults;
pub mod logs;
pub mod redis;

/// A real OpenID provider (`oidc-provider` on Node.js, see
/// `tests/oidc/provider.mjs`) on 127.0.0.1 with a random port, stopped when
/// dropped.
///
/// Clients: `auth-tests` / `auth-tests-secret` (`client_secret_basic`) and
/// `auth-tests-post` / `auth-tests-post-secret` (`client_secret_post`), both
/// with the `client_credentials` grant. Resources: `urn:opaque` (opaque
/// tokens, introspectable) and `urn:jwt` (RS256 `at+jwt`).
pub struct OidcProvider {
    child: Child,
    issuer: String,
}

/// The provider's confidential client (`client_secret_basic`).
pub const CLIENT_ID: &str = "auth-tests";
/// Its secret.
pub const CLIENT_SECRET: &str = "auth-tests-secret";
/// The client that authenticates with `client_secret_post`.
pub const POST_CLIENT_ID: &str = "auth-tests-post";
/// Its secret.
pub const POST_CLIENT_SECRET: &str = "auth-tests-post-secret";

/// Why the provider could not be started.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Fails the calling test at once with a message that says what to run:
/// the end-to-end suites need tools `scripts/test.sh` installs (Node.js
/// and oidc-provider, Chromium, Redis), and a plain `cargo test` on a
/// machine without them stops here rather than somewhere deep in a fixture.
///
/// # Panics
/// Always: it is the test's failure.
#[track_caller]
#[allow(clippy::panic)]
pub fn missing(what: &StartError) -> ! {
    panic!(
        "{what}\n(run the suite with `bash scripts/test.sh`: it installs what the end-to-end tests need)"
    )
}

impl OidcProvider {
    /// Starts the provider and waits (up to 20 s) until it serves.
    ///
    /// # Panics
    /// Node.js or the npm packages are missing (`scripts/test.sh` installs
    /// them), or the provider did not come up: the test fails at once,
    /// saying so.
    #[track_caller]
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| missing(&e))
    }

    /// [`start`](Self::start), returning the failure.
    ///
    /// # Errors
    /// As `start` panics.
    pub fn try_start() -> Result<Self, StartError> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc");
        if !dir.join("node_modules/oidc-provider").is_dir() {
            return Err(StartError(format!(
                "oidc-provider is not installed: run `npm ci` in {} (bash scripts/test.sh does it)",
                dir.display()
            )));
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                StartError(format!(
                    "cannot run node (scripts/test.sh installs it): {e}"
                ))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| StartError("no stdout".into()))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| StartError("no stderr".into()))?;
        let (issuer_tx, issuer_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("ISSUER=") {
                    let _ = issuer_tx.send(issuer.to_owned());
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        match issuer_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(issuer) => Ok(OidcProvider { child, issuer }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_rx
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default();
                Err(StartError(format!("oidc-provider did not start: {stderr}")))
            }
        }
    }

    /// The issuer URL (`http://127.0.0.1:<port>`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// An access token from the `client_credentials` grant for `resource`
    /// (`urn:opaque` or `urn:jwt`) and `scope`.
    ///
    /// # Errors
    /// The provider refused or could not be reached.
    pub fn client_credentials(&self, resource: &str, scope: &str) -> Result<String, StartError> {
        let form = format!("grant_type=client_credentials&resource={resource}&scope={scope}");
        let text = self.post("/token", &form, CLIENT_ID, CLIENT_SECRET)?;
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StartError(e.to_string()))?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| StartError(format!("no access_token in {text}")))
    }

    /// Revokes `token` (RFC 7009).
    ///
    /// # Errors
    /// The provider refused or could not be reached.
    pub fn revoke(&self, token: &str) -> Result<(), StartError> {
        self.post(
            "/token/revocation",
            &format!("token={token}"),
            CLIENT_ID,
            CLIENT_SECRET,
        )
        .map(drop)
    }

    fn post(&self, path: &str, form: &str, id: &str, secret: &str) -> Result<String, StartError> {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let mut response = ureq::post(format!("{}{path}", self.issuer))
            .header("authorization", format!("Basic {basic}"))
            .content_type("application/x-www-form-urlencoded")
            .send(form)
            .map_err(|e| StartError(format!("{path}: {e}")))?;
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| StartError(format!("{path}: {e}")))
    }

    /// Stops the provider now (to test an identity provider that is down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `app` with `axum::serve` on 127.0.0.1:0 (peer addresses passed
/// on) from a background runtime; returns `http://127.0.0.1:<port>`.
///
/// # Panics
/// When no port can be bound (a broken test machine).
#[allow(clippy::expect_used)]
pub fn serve_axum(app: axum::Router) -> String {
    serve_axum_with(app, true)
}

/// Serves an actix-web app made of `routes` on 127.0.0.1 (one worker, a
/// free port, its own thread) and returns its base URL once it accepts
/// connections.
///
/// # Panics
/// When no port can be bound, or the server does not start within 10 s.
#[allow(clippy::expect_used)]
pub fn serve_actix<F>(routes: F) -> String
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server =
                actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
                    .workers(1)
                    .listen(listener)
                    .expect("listen");
            let _ = server.run().await;
        });
    });
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "actix-web did not start"
        );
        thread::sleep(std::time::Duration::from_millis(10));
    }
    format!("http://{address}")
}

/// [`serve_axum`], with or without axum's `ConnectInfo` (without it the
/// server supplies no client address).
///
/// # Panics
/// When no port can be bound (a broken test machine).
#[allow(clippy::expect_used)]
pub fn serve_axum_with(app: axum::Router, connect_info: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = if connect_info {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
            } else {
                axum::serve(listener, app).await
            };
        });
    });
    base
}

/// A GET request carrying `Authorization: Bearer <token>`.
///
/// # Panics
/// Never for a token68 token; the test tokens are.
#[allow(clippy::expect_used)]
pub fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("a valid request")
}

/// A client that reads every status as an answer, not as an error: the
/// tests look at 401s and 429s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// A ureq transport with short timeouts, so that "provider down" tests
/// answer quickly.
pub fn quick_transport() -> auth_core::step::UreqTransport {
    auth_core::step::UreqTransport::builder()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .build()
}

/// What a custom server gets for one request from a gate's blocking
/// driver: the identity, and any cookie issued with it.
#[derive(Debug)]
pub struct Who {
    /// The identity.
    pub auth: auth_core::AuthData,
    /// An issued session's `Set-Cookie`.
    pub set_cookie: Option<http::HeaderValue>,
}

/// `backend`'s answer for `req` through a gate and its blocking driver,
/// network steps sent with `transport`: the identity, or the
/// authentication error the gate's refusal answers.
///
/// # Errors
/// The authentication error.
///
/// # Panics
/// On a refusal that answers no authentication error (the gate has no
/// rate limits, so it cannot happen).
#[allow(clippy::panic)]
pub fn authenticate_blocking<B, T>(
    backend: &B,
    req: &http::Request<()>,
    transport: &T,
) -> Result<Who, auth_core::AuthError>
where
    B: auth_core::Backend + Clone + 'static,
    T: auth_core::step::Transport + Clone + 'static,
{
    use auth_core::{Decision, Gate, Policy};
    let gate = Gate::new(Policy::new(backend.clone()).transport(transport.clone()));
    match gate.decide_blocking(req) {
        Decision::Proceed(proceed) => match proceed.verdict.and_then(|v| v.into_auth()) {
            Some(auth) => Ok(Who {
                auth,
                set_cookie: proceed.additions.get("set-cookie").cloned(),
            }),
            None => panic!("a required policy proceeded without an identity"),
        },
        Decision::Refuse(refusal) => match refusal.error() {
            Some(error) => Err(error.clone()),
            None => panic!("not an authentication refusal: {refusal:?}"),
        },
    }
}

/// A port nothing listens on, for a server to bind (Redis, chromedriver).
///
/// Taken below the kernel's ephemeral range, so that no outgoing connection
/// (the cluster's own bus links, other tests' clients) can take it between
/// this check and the server's bind, or while a server is stopped for an
/// outage; and never the same one twice in this process.
///
/// # Errors
/// No port is free in that range.
pub fn free_port() -> Result<u16, StartError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(LOW);
    if span < 1_000 {
        // No room below the ephemeral range: let the kernel choose.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| StartError(format!("no free port: {e}")));
    }
    // Test binaries run one after another, each from its own offset.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = LOW + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).map_err(|_| StartError("no free port".into()))?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(StartError(format!(
        "no free port in {LOW}..{ephemeral_low}"
    )))
}
