//! Soak load against a running demo server (`scripts/soak.sh` starts one per
//! framework and runs this).
//!
//! ```text
//! soak --url http://127.0.0.1:3000 --secret <DEMO_JWT_SECRET> --pid <server pid>
//!      [--connections 256] [--seconds 60]
//! ```
//!
//! Every connection keeps one HTTP/1.1 connection open and cycles through a
//! mix of requests, checking each answer: valid tokens from a fixed set, a
//! never-repeated valid token per request (fills and churns the
//! verified-token cache), a forged signature, a non-JWT, no credentials, a
//! missing scope, an anonymous session issued and then sent back (same
//! identity, no new cookie), and the client address. Any unexpected status
//! or body, or any connection error, fails the run (exit 1). It reports
//! requests/s, latency percentiles and the server's resident memory (from
//! `/proc/<pid>/status`) sampled every second; memory must stay flat: it
//! fails when the end is more than 16 MB and 20% above the sample taken a
//! third of the way in, after the caches have filled.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use auth_core::TokenIssuer;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The demo's issuer (`auth_examples::DEMO_ISSUER`).
const ISSUER: &str = "auth-demo";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    /// One of 100 pre-issued tokens on `/private`: 200.
    ValidToken,
    /// A token never sent before on `/private`: 200.
    FreshToken,
    /// A valid token with its signature changed: 401.
    ForgedToken,
    /// `Bearer` with something that is not a JWT: 401.
    GarbageToken,
    /// `/private` without credentials: 401.
    NoCredentials,
    /// `/admin` with a `read`-only token: 403.
    MissingScope,
    /// `/whoami` without a cookie: 200 and a new anonymous cookie.
    AnonymousNew,
    /// `/whoami` with this connection's anonymous cookie: 200, the same
    /// identity, no new cookie.
    AnonymousReturning,
    /// `/ip`: 200, identity 127.0.0.1.
    Ip,
}

const MIX: [Case; 10] = [
    Case::ValidToken,
    Case::FreshToken,
    Case::AnonymousReturning,
    Case::ForgedToken,
    Case::ValidToken,
    Case::GarbageToken,
    Case::NoCredentials,
    Case::AnonymousNew,
    Case::MissingScope,
    Case::Ip,
];

struct Args {
    addr: SocketAddr,
    secret: String,
    pid: u32,
    connections: usize,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut secret, mut pid) = (None, None, None);
    let (mut connections, mut seconds) = (256, 60);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => url = Some(value),
            "--secret" => secret = Some(value),
            "--pid" => pid = Some(u32::try_from(number(&value)?).map_err(|e| e.to_string())?),
            "--connections" => connections = usize::try_from(number(&value)?).unwrap_or(256),
            "--seconds" => seconds = number(&value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let addr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or("--url must be http://<ip>:<port>")?;
    Ok(Args {
        addr,
        secret: secret.ok_or("--secret is required")?,
        pid: pid.ok_or("--pid is required")?,
        connections,
        seconds,
    })
}

/// What every connection shares.
struct Shared {
    addr: SocketAddr,
    issuer: TokenIssuer,
    valid: Vec<String>,
    read_only: String,
    forged: String,
    deadline: Instant,
    failed: AtomicBool,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    by_case: BTreeMap<Case, u64>,
    failures: Vec<String>,
}

fn request(path: &str) -> http::request::Builder {
    http::Request::get(path).header(http::header::HOST, "soak")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// One connection's loop. Returns its tally; stops at the first failure.
async fn connection(id: usize, shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    if let Err(e) = drive(id, &shared, &mut tally).await {
        shared.failed.store(true, Ordering::Relaxed);
        tally.failures.push(format!("connection {id}: {e}"));
    }
    tally
}

async fn drive(id: usize, shared: &Shared, tally: &mut Tally) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(shared.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);

    let mut anon_cookie: Option<(String, String)> = None; // (cookie pair, identifier)
    let mut n = id;
    while Instant::now() < shared.deadline && !shared.failed.load(Ordering::Relaxed) {
        let mut case = MIX[n % MIX.len()];
        n += 1;
        if case == Case::AnonymousReturning && anon_cookie.is_none() {
            case = Case::AnonymousNew;
        }
        let fresh_sub = format!("soak-{id}-{n}");
        let req = match case {
            Case::ValidToken => request("/private").header(
                "authorization",
                bearer(&shared.valid[n % shared.valid.len()]),
            ),
            Case::FreshToken => {
                let token = shared
                    .issuer
                    .issue(
                        json!({"sub": fresh_sub, "scope": "read"}),
                        SystemTime::now(),
                    )
                    .map_err(|e| format!("issue: {e}"))?;
                request("/private").header("authorization", bearer(&token))
            }
            Case::ForgedToken => {
                request("/private").header("authorization", bearer(&shared.forged))
            }
            Case::GarbageToken => request("/private").header("authorization", "Bearer not-a-jwt~~"),
            Case::NoCredentials => request("/private"),
            Case::MissingScope => {
                request("/admin").header("authorization", bearer(&shared.read_only))
            }
            Case::AnonymousNew => request("/whoami"),
            Case::AnonymousReturning => request("/whoami").header(
                "cookie",
                anon_cookie
                    .as_ref()
                    .map(|(c, _)| c.as_str())
                    .unwrap_or_default(),
            ),
            Case::Ip => request("/ip"),
        }
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;

        sender.ready().await.map_err(|e| format!("{case:?}: {e}"))?;
        let started = Instant::now();
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{case:?}: {e}"))?;
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get(http::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{case:?}: body: {e}"))?
            .to_bytes();
        tally
            .latencies_us
            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        *tally.by_case.entry(case).or_default() += 1;

        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let identifier = json["identifier"].as_str();
        let expected = match case {
            Case::ValidToken | Case::FreshToken | Case::AnonymousNew => 200,
            Case::AnonymousReturning | Case::Ip => 200,
            Case::ForgedToken | Case::GarbageToken | Case::NoCredentials => 401,
            Case::MissingScope => 403,
        };
        let ok = status == expected
            && match case {
                Case::FreshToken => identifier == Some(fresh_sub.as_str()),
                Case::ValidToken => identifier.is_some_and(|i| i.starts_with("soak-user-")),
                Case::Ip => identifier == Some("127.0.0.1"),
                Case::AnonymousNew => match (&set_cookie, identifier) {
                    (Some(cookie), Some(identifier)) => {
                        let pair = cookie.split(';').next().unwrap_or_default().to_owned();
                        anon_cookie = Some((pair, identifier.to_owned()));
                        true
                    }
                    _ => false,
                },
                Case::AnonymousReturning => {
                    set_cookie.is_none()
                        && identifier == anon_cookie.as_ref().map(|(_, i)| i.as_str())
                }
                Case::ForgedToken | Case::GarbageToken => json["error"] == "invalid_token",
                Case::NoCredentials => json["error"] == "unauthorized",
                Case::MissingScope => json["error"] == "insufficient_scope",
            };
        if !ok {
            return Err(format!(
                "{case:?}: status {status} (expected {expected}), set-cookie {set_cookie:?}, body {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    Ok(())
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let issuer = TokenIssuer::hs256(args.secret.as_bytes())
        .map_err(|e| e.to_string())?
        .issuer(ISSUER)
        .ttl(Duration::from_secs(3600));
    let now = SystemTime::now();
    let issue = |sub: &str, scope: &str| {
        issuer
            .issue(json!({"sub": sub, "scope": scope}), now)
            .map_err(|e| e.to_string())
    };
    let valid = (0..100)
        .map(|i| issue(&format!("soak-user-{i}"), "read"))
        .collect::<Result<Vec<_>, _>>()?;
    let read_only = issue("soak-reader", "read")?;
    // Same header and claims, the signature of another token.
    let other = issue("soak-other", "read")?;
    let forged = format!(
        "{}.{}",
        valid[0]
            .rsplit_once('.')
            .map(|(h, _)| h)
            .unwrap_or_default(),
        other.rsplit_once('.').map(|(_, s)| s).unwrap_or_default()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let rss_start = rss_kib(args.pid).ok_or("cannot read the server's memory (--pid)")?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        addr: args.addr,
        issuer,
        valid,
        read_only,
        forged,
        deadline: started + Duration::from_secs(args.seconds),
        failed: AtomicBool::new(false),
    });
    let (tallies, samples) = runtime.block_on(async {
        let sampler = {
            let (pid, seconds) = (args.pid, args.seconds);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for second in 1..=seconds {
                    tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
                    samples.push((second, rss_kib(pid).unwrap_or(0)));
                }
                samples
            })
        };
        let tasks: Vec<_> = (0..args.connections)
            .map(|id| tokio::spawn(connection(id, Arc::clone(&shared))))
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap_or_else(|e| Tally {
                failures: vec![format!("task: {e}")],
                ..Tally::default()
            }));
        }
        (tallies, sampler.await.unwrap_or_default())
    });
    let elapsed = started.elapsed();

    let mut latencies: Vec<u32> = Vec::new();
    let mut by_case: BTreeMap<Case, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for tally in tallies {
        latencies.extend(tally.latencies_us);
        for (case, n) in tally.by_case {
            *by_case.entry(case).or_default() += n;
        }
        failures.extend(tally.failures);
    }
    latencies.sort_unstable();
    let total = latencies.len();
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{} connections, {:.1} s: {total} requests, {rate:.0} req/s",
        args.connections,
        elapsed.as_secs_f64()
    );
    println!(
        "latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 99.9),
        percentile(&latencies, 100.0)
    );
    let mix: Vec<String> = by_case.iter().map(|(c, n)| format!("{c:?} {n}")).collect();
    println!("mix: {}", mix.join(", "));

    let third = samples
        .get(samples.len() / 3)
        .map_or(rss_start, |&(_, kib)| kib);
    let end = samples.last().map_or(rss_start, |&(_, kib)| kib);
    let trace: Vec<String> = samples
        .iter()
        .filter(|(s, _)| s % 10 == 0 || *s == 1)
        .map(|(s, kib)| format!("{s}s {:.1}", *kib as f64 / 1024.0))
        .collect();
    println!(
        "server RSS MiB: start {:.1}, a third in {:.1}, end {:.1}  ({})",
        rss_start as f64 / 1024.0,
        third as f64 / 1024.0,
        end as f64 / 1024.0,
        trace.join(", ")
    );
    let mut ok = true;
    if !failures.is_empty() {
        ok = false;
        eprintln!(
            "FAILED: {} connection(s) saw an unexpected answer:",
            failures.len()
        );
        for failure in failures.iter().take(10) {
            eprintln!("  {failure}");
        }
    }
    if total == 0 {
        ok = false;
        eprintln!("FAILED: no request completed");
    }
    let growth = end.saturating_sub(third);
    if growth > 16 * 1024 && growth * 5 > third {
        ok = false;
        eprintln!(
            "FAILED: memory grew by {:.1} MiB after the caches filled",
            growth as f64 / 1024.0
        );
    }
    Ok(ok)
}
