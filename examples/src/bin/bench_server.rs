//! The server of the load benchmark (`scripts/load-bench.sh`) and of the
//! instruction counts (`scripts/instructions.sh`): one hello route, bare or
//! behind a gate, on a single-threaded runtime so that `taskset` can give
//! it exactly one core.
//!
//! ```text
//! bench_server token                       # prints the benchmark's bearer token
//! bench_server axum <mode> <addr>          # serves GET /hello
//! bench_server actix <mode> <addr>         # the same with actix-web (one worker)
//! ```
//!
//! Modes: `bare`; authentication alone: `jwt` (HS256, no cache),
//! `jwt-cached`, `ip`, `anon`; with one rate-limit rule counting each
//! caller by identity in process: `ip-throttle`, `anon-throttle` (the
//! `RateLimit` fields on every answer), `ip-throttle-quiet`,
//! `anon-throttle-quiet` (the fields off), `anon-throttle-redis` (in Redis
//! at `BENCH_REDIS_URL`, or the cluster at `BENCH_REDIS_CLUSTER`); rate
//! limits alone, by peer address: `limit-ip`, `limit-ip-quiet`; a failure
//! budget by peer address in front of the cached JWT (the demo's setting,
//! which good traffic only reads): `jwt-cached-budget`. Any mode with
//! `+metrics` after it runs with a Prometheus recorder installed (built
//! with the examples' `metrics` feature, which compiles the metrics into
//! every mode; without a recorder nothing is recorded).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use auth_axum::AuthLayer;
use auth_core::{
    Algorithm, AnonSessionBackend, Backend, Gate, IpBackend, JwtBackend, JwtValidator, TokenIssuer,
};
use auth_throttle::{
    Callers, FailureBudget, MemoryStore, Quota, RedisStore, Rule, Store, Throttle,
};
use axum::Router;
use axum::routing::get;
use tower_layer::Layer;

/// Fixed so the script can mint the token once.
const SECRET: &[u8] = b"load-benchmark-secret-0123456789";

fn validator() -> Option<JwtValidator> {
    JwtValidator::builder([Algorithm::HS256])
        .hmac_secret(SECRET)
        .issuer("bench")
        .build()
        .ok()
}

fn backend(mode: &str) -> Option<Box<dyn Backend>> {
    Some(match mode {
        "jwt" => Box::new(JwtBackend::builder(validator()?).cache_capacity(0).build()),
        "jwt-cached" => Box::new(JwtBackend::new(validator()?)),
        "ip" => Box::new(IpBackend::new()),
        "anon" => Box::new(AnonSessionBackend::new("anon").ok()?),
        _ => return None,
    })
}

/// One rule with a quota no benchmark reaches: every request does the
/// whole bookkeeping. `by_ip`: every caller by peer address, else by
/// identity; `quiet`: no `RateLimit` fields on allowed answers; `redis`: in
/// the Redis Cluster at `BENCH_REDIS_CLUSTER` (some of its nodes' URLs,
/// comma-separated) when set, else in the Redis at `BENCH_REDIS_URL`.
fn throttle(by_ip: bool, quiet: bool, redis: bool) -> Option<Throttle> {
    let store: Store = if redis {
        let redis = match std::env::var("BENCH_REDIS_CLUSTER") {
            Ok(nodes) => RedisStore::cluster(nodes.split(','), SECRET),
            Err(_) => RedisStore::builder(&std::env::var("BENCH_REDIS_URL").ok()?, SECRET),
        };
        redis.build().ok()?.into()
    } else {
        MemoryStore::default().into()
    };
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1)).ok()?;
    let rule = Rule::new("per-caller", quota).ok()?;
    let rule = if by_ip {
        rule.callers(Callers::EVERYONE).by_client_ip()
    } else {
        rule
    };
    Throttle::builder(store)
        .rule(rule)
        .ratelimit_headers(!quiet)
        .build()
        .ok()
}

/// A throttle with a failure budget alone (10 per 10 s per address).
fn budget() -> Option<Throttle> {
    let quota = Quota::new(10, Duration::from_secs(10)).ok()?;
    Throttle::builder(MemoryStore::default())
        .failure_budget(FailureBudget::new(quota))
        .build()
        .ok()
}

/// The gate of a mode; `None` for `bare` or an unknown mode.
fn gate(mode: &str) -> Option<Gate> {
    if let Some(auth) = mode.strip_suffix("-budget") {
        return Some(Gate::new(backend(auth)?).throttle(budget()?));
    }
    if let Some(rest) = mode.strip_prefix("limit-ip") {
        let quiet = match rest {
            "" => false,
            "-quiet" => true,
            _ => return None,
        };
        return Some(Gate::without_auth().throttle(throttle(true, quiet, false)?));
    }
    let (auth, limits) = match mode.split_once("-throttle") {
        Some((auth, limits)) => (auth, Some(limits)),
        None => (mode, None),
    };
    let gate = Gate::new(backend(auth)?);
    Some(match limits {
        None => gate,
        Some("") => gate.throttle(throttle(false, false, false)?),
        Some("-quiet") => gate.throttle(throttle(false, true, false)?),
        Some("-redis") => gate.throttle(throttle(false, false, true)?),
        Some(_) => return None,
    })
}

/// The actix-web server: one worker; bare, or wrapped in the middleware.
fn actix(mode: &str, addr: &str) -> std::io::Result<()> {
    use actix_web::{App, HttpServer, web};
    let gate = match mode {
        "bare" => None,
        other => Some(auth_actix::Authentication::new(gate(other).ok_or_else(
            || std::io::Error::new(std::io::ErrorKind::InvalidInput, "unknown mode"),
        )?)),
    };
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let hello = web::resource("/hello").route(web::get().to(|| async { "hello" }));
            match &gate {
                None => App::new().service(hello),
                Some(gate) => App::new().service(hello.wrap(gate.clone())),
            }
        })
        .workers(1)
        .bind(addr)?
        .run()
        .await
    })
}

/// The axum server on a current-thread runtime: the layer wraps the whole
/// router, as a service-level tower layer (`Router::layer` would add
/// axum's own boxing of the layered route, for any layer).
fn axum(mode: &str, addr: &str) -> std::io::Result<()> {
    let hello = Router::new().route("/hello", get(|| async { "hello" }));
    let gate = match mode {
        "bare" => None,
        other => Some(gate(other).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "unknown mode")
        })?),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            match gate {
                None => {
                    axum::serve(
                        listener,
                        hello.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .await
                }
                Some(gate) => {
                    // The router with its handlers made routes once, as
                    // `Router::into_make_service` does for the bare one.
                    let service = AuthLayer::new(gate).layer(hello.with_state(()));
                    axum::serve(
                        listener,
                        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(service),
                    )
                    .await
                }
            }
        })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let served = match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("token"), _, _) => {
            let token = TokenIssuer::hs256(SECRET).map(|i| {
                i.issuer("bench").ttl(Duration::from_secs(86_400)).issue(
                    serde_json::json!({"sub": "bench-user", "scope": "read"}),
                    SystemTime::now(),
                )
            });
            return match token {
                Ok(Ok(token)) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                _ => ExitCode::FAILURE,
            };
        }
        (Some(framework @ ("axum" | "actix")), Some(mode), Some(addr)) => {
            // `<mode>+metrics`: the same with a Prometheus recorder
            // installed.
            let mode = match mode.strip_suffix("+metrics") {
                Some(mode) => match auth_examples::install_metrics() {
                    Ok(()) => mode,
                    Err(e) => {
                        eprintln!("bench_server: metrics: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => mode.as_str(),
            };
            let mode = &mode.to_owned();
            if framework == "axum" {
                axum(mode, addr)
            } else {
                actix(mode, addr)
            }
        }
        _ => {
            eprintln!("usage: bench_server token | bench_server axum|actix <mode> <addr>");
            return ExitCode::FAILURE;
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_server: {e}");
            ExitCode::FAILURE
        }
    }
}
