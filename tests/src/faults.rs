//! Identity providers that fail in every way a network peer can: a real TCP
//! server on 127.0.0.1 per failure mode, writing raw bytes, so the failure
//! reaches the transport exactly as it would from a broken provider.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How a [`FaultServer`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens on the port: connection refused.
    Down,
    /// Accepts, reads the request and never answers (until the client
    /// gives up and closes, or 30 s).
    Slow,
    /// `500 Internal Server Error` with a JSON error body.
    ServerError,
    /// `200 OK`, `Content-Type: application/json`, a body that is not JSON.
    Garbage,
    /// Bytes that are not HTTP at all, then close.
    NotHttp,
    /// `200 OK` announcing and streaming 50 MB (until the client stops
    /// reading).
    Huge,
    /// `200 OK` announcing 1,000 bytes, sending 40, then closing.
    CloseMidAnswer,
}

impl Fault {
    /// Every mode, for tables of test cases.
    pub const ALL: [Fault; 7] = [
        Fault::Down,
        Fault::Slow,
        Fault::ServerError,
        Fault::Garbage,
        Fault::NotHttp,
        Fault::Huge,
        Fault::CloseMidAnswer,
    ];

    /// A short lowercase name (for routes and messages).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Down => "down",
            Fault::Slow => "slow",
            Fault::ServerError => "500",
            Fault::Garbage => "garbage",
            Fault::NotHttp => "not-http",
            Fault::Huge => "50mb",
            Fault::CloseMidAnswer => "close-mid-answer",
        }
    }
}

/// Size of the [`Fault::Huge`] answer.
pub const HUGE_LEN: usize = 50 * 1024 * 1024;

/// A misbehaving provider on `127.0.0.1:<port>`. Every path answers the
/// same way, so it serves as an introspection endpoint, a JWKS URL and an
/// OIDC issuer alike.
#[derive(Debug)]
pub struct FaultServer {
    base: String,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    /// Connections accepted.
    accepted: AtomicUsize,
    /// Connection threads still running.
    open: AtomicUsize,
    /// Bytes of [`Fault::Huge`] body the client took before it stopped.
    huge_bytes_sent: AtomicUsize,
}

impl FaultServer {
    /// Starts a provider failing as `fault`.
    ///
    /// # Panics
    /// When 127.0.0.1:0 cannot be bound (a broken test machine).
    #[allow(clippy::expect_used)]
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let stats = Arc::new(Stats::default());
        if fault == Fault::Down {
            // Freed port: connecting is refused.
            drop(listener);
        } else {
            let stats = Arc::clone(&stats);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    stats.open.fetch_add(1, Ordering::SeqCst);
                    let stats = Arc::clone(&stats);
                    thread::spawn(move || {
                        answer(stream, fault, &stats);
                        stats.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        FaultServer { base, stats }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Body bytes of [`Fault::Huge`] written before the client hung up.
    pub fn huge_bytes_sent(&self) -> usize {
        self.stats.huge_bytes_sent.load(Ordering::SeqCst)
    }

    /// Waits (up to `limit`) until no connection thread is running; whether
    /// that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.stats.open.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Reads the request head (enough for these clients: no request bodies
/// beyond one read), then misbehaves.
fn answer(mut stream: TcpStream, fault: Fault, stats: &Stats) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = [0_u8; 16 * 1024];
    let _ = stream.read(&mut buf);
    let _ = match fault {
        Fault::Down => Ok(()),
        Fault::Slow => {
            // Hold the connection until the client gives up.
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            Ok(())
        }
        Fault::ServerError => respond(
            &mut stream,
            "500 Internal Server Error",
            br#"{"error":"server_error"}"#,
        ),
        Fault::Garbage => respond(&mut stream, "200 OK", b"{\"active\": tru\x00e, <html>"),
        Fault::NotHttp => stream.write_all(b"\x16\x03\x01\x02\x00SSH-2.0-OpenSSH\r\n\r\n"),
        Fault::Huge => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE_LEN}\r\n\r\n["
            );
            let chunk = [b' '; 64 * 1024];
            let mut sent = 0;
            let result = stream.write_all(head.as_bytes()).and_then(|()| {
                while sent < HUGE_LEN - 1 {
                    let n = chunk.len().min(HUGE_LEN - 1 - sent);
                    stream.write_all(&chunk[..n])?;
                    sent += n;
                }
                Ok(())
            });
            stats.huge_bytes_sent.fetch_add(sent, Ordering::SeqCst);
            result
        }
        Fault::CloseMidAnswer => stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"active\":true,\"sub\":\"mallory\",\"exp\":",
        ),
    };
    let _ = stream.shutdown(Shutdown::Both);
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

/// Polls `count` until it is at most `limit` or `patience` runs out; the
/// last value (for "back to where it was" checks after a run).
pub fn settle(count: impl Fn() -> usize, limit: usize, patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    loop {
        let now = count();
        if now <= limit || Instant::now() > deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Threads of this process right now (Linux: `/proc/self/task`), for leak
/// checks.
///
/// # Panics
/// Off Linux, where `/proc/self/task` does not exist.
#[allow(clippy::expect_used)]
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task (Linux)")
        .count()
}

/// The per-request timeout the fault tests configure (connect: half of it).
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// For every fault: a route per network backend, each with its own backend
/// (a JWKS backend that failed waits a refresh interval before asking
/// again, so routes must not share one), all with a [`TIMEOUT`] transport:
/// `/introspect/<fault>`, `/jwks/<fault>`, `/oidc/<fault>`.
///
/// # Panics
/// Never for these fixed settings.
#[allow(clippy::expect_used)]
pub fn fault_routes(servers: &[(Fault, FaultServer)]) -> Vec<(String, auth_core::Policy)> {
    use auth_core::{Algorithm, IntrospectionBackend, JwtBackend, JwtValidator, Policy};
    let transport = auth_core::step::UreqTransport::builder()
        .connect_timeout(TIMEOUT / 2)
        .timeout(TIMEOUT)
        .build();
    let policy = |backend: Policy| backend.transport(transport.clone());
    let mut routes = Vec::new();
    for (fault, server) in servers {
        let name = fault.name();
        let introspection =
            IntrospectionBackend::builder(format!("{}/introspect", server.base()), "api", "s3cret")
                .allow_http(true)
                .build()
                .expect("introspection settings");
        let jwks = JwtValidator::builder([Algorithm::RS256])
            .jwks_url(&format!("{}/jwks.json", server.base()))
            .allow_http(true)
            .build()
            .expect("JWKS settings");
        let oidc = JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(server.base())
            .allow_http(true)
            .build()
            .expect("OIDC settings");
        routes.push((
            format!("/introspect/{name}"),
            policy(Policy::new(introspection)),
        ));
        routes.push((
            format!("/jwks/{name}"),
            policy(Policy::new(JwtBackend::new(jwks))),
        ));
        routes.push((
            format!("/oidc/{name}"),
            policy(Policy::new(JwtBackend::new(oidc))),
        ));
    }
    routes
}

/// A bearer token for a fault route: opaque for introspection; for the JWT
/// routes an RS256 JWT with a key id the backend has never seen (so it must
/// fetch keys; its signature never gets checked).
pub fn fault_token(route: &str) -> String {
    use base64::Engine as _;
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    if route.starts_with("/introspect/") {
        format!("opaque-{}", route.replace('/', "-"))
    } else {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(r#"{"alg":"RS256","typ":"JWT","kid":"unknown-key"}"#),
            b64(r#"{"sub":"mallory","exp":4102444800}"#)
        )
    }
}

/// What one request through a fault route got.
#[derive(Debug)]
pub struct Answer {
    /// The status, or 0 for a connection error.
    pub status: u16,
    /// Time to the whole answer.
    pub elapsed: Duration,
    /// The body (empty on a connection error).
    pub body: String,
}

/// Sends `GET base+path` with `token` (if any) on a fresh connection.
pub fn get(base: &str, path: &str, token: Option<&str>) -> Answer {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let started = Instant::now();
    let mut request = agent.get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    match request.call() {
        Ok(mut response) => Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
            elapsed: started.elapsed(),
        },
        Err(_) => Answer {
            status: 0,
            elapsed: started.elapsed(),
            body: String::new(),
        },
    }
}

/// Concurrent requests per fault route.
pub const CONCURRENCY: usize = 8;

/// Drives every fault route of `base` (as made by [`fault_routes`]) with
/// [`CONCURRENCY`] requests at once while a second thread keeps asking
/// `/health`, and checks: every request is a 503 within [`TIMEOUT`] (plus
/// scheduling slack), its body names no token, and `/health` never waits
/// behind a fault. Returns one line per route for the test's output.
///
/// # Panics
/// On any failed check (it is the test).
#[allow(clippy::panic)]
pub fn check_fault_routes(base: &str, servers: &[(Fault, FaultServer)]) -> Vec<String> {
    // Slack for thread start-up and the server's own work on a loaded
    // 2-core machine; the providers' misbehaviour lasts far longer.
    let limit = TIMEOUT + Duration::from_millis(1500);
    let mut report = Vec::new();
    for (fault, server) in servers {
        for kind in ["introspect", "jwks", "oidc"] {
            let route = format!("/{kind}/{}", fault.name());
            let token = fault_token(&route);
            let accepted_before = server.accepted();
            let huge_before = server.huge_bytes_sent();
            let (answers, health) = thread::scope(|scope| {
                let clients: Vec<_> = (0..CONCURRENCY)
                    .map(|_| scope.spawn(|| get(base, &route, Some(&token))))
                    .collect();
                let health = scope.spawn(|| {
                    thread::sleep(Duration::from_millis(100));
                    get(base, "/health", None)
                });
                let answers: Vec<Answer> = clients
                    .into_iter()
                    .map(|c| c.join().unwrap_or_else(|_| panic!("client thread")))
                    .collect();
                (
                    answers,
                    health.join().unwrap_or_else(|_| panic!("health thread")),
                )
            });
            for answer in &answers {
                assert_eq!(answer.status, 503, "{route}: {answer:?}");
                assert!(
                    answer.elapsed < limit,
                    "{route}: {:?} > {limit:?}",
                    answer.elapsed
                );
                assert!(
                    !answer.body.contains(&token),
                    "{route}: body repeats the token"
                );
            }
            assert_eq!(health.status, 200, "/health during {route}: {health:?}");
            assert!(
                health.elapsed < Duration::from_millis(500),
                "/health waited {:?} during {route}",
                health.elapsed
            );
            // The transport stops at its response cap: what was written is
            // that plus the kernel's socket buffers, not 50 MB.
            let huge = server.huge_bytes_sent() - huge_before;
            assert!(
                huge < HUGE_LEN / 4,
                "{route}: {huge} bytes of 50 MB were taken"
            );
            let slowest = answers.iter().map(|a| a.elapsed).max().unwrap_or_default();
            let mut line = format!(
                "{route:<28} {CONCURRENCY}x 503, slowest {slowest:>9.1?}, provider calls {}, /health {:.1?}",
                server.accepted() - accepted_before,
                health.elapsed,
            );
            if huge > 0 {
                line += &format!(
                    ", {:.1} MB written before the client hung up",
                    huge as f64 / 1e6
                );
            }
            report.push(line);
        }
    }
    report
}

/// Starts one [`FaultServer`] per [`Fault`].
pub fn start_fault_servers() -> Vec<(Fault, FaultServer)> {
    Fault::ALL
        .into_iter()
        .map(|fault| (fault, FaultServer::start(fault)))
        .collect()
}
