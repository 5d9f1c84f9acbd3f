//! The server of the load benchmark (`scripts/load-bench.sh`): one hello
//! route, bare or behind an auth layer, on a single-threaded runtime so that
//! `taskset` can give it exactly one core.
//!
//! ```text
//! bench_server token                       # prints the benchmark's bearer token
//! bench_server axum <mode> <addr>          # mode: bare | jwt | jwt-cached | ip | anon,
//!                                          #   or ip-throttle | anon-throttle (+ a rate limit),
//!                                          #   anon-throttle-redis (in Redis at BENCH_REDIS_URL)
//! bench_server actix <mode> <addr>         # the same with actix-web (one worker)
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use auth_axum::AuthLayer;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::{AnonSessionBackend, IpBackend};
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

/// The hello router, wrapped by the auth layer unless `bare`. The layer
/// wraps the whole router, as a service-level tower layer: `Router::layer`
/// would add axum's own boxing of the layered route (a boxed clone of the
/// service and a boxed future per request, for any layer).
fn app(mode: &str) -> Option<Service> {
    let hello = Router::new().route("/hello", get(|| async { "hello" }));
    if mode == "bare" {
        return Some(Service::Bare(hello));
    }
    if let Some((auth, store)) = throttled(mode) {
        let throttled = auth_axum::ThrottleLayer::new(throttle(store)?).layer(hello);
        return Some(Service::Throttled(
            AuthLayer::new(backend(auth)?).layer(throttled),
        ));
    }
    Some(Service::Auth(AuthLayer::new(backend(mode)?).layer(hello)))
}

/// `<auth>-throttle` (in-process counters) or `<auth>-throttle-redis`
/// (in Redis at `BENCH_REDIS_URL`): the auth mode and the store.
fn throttled(mode: &str) -> Option<(&str, Option<String>)> {
    if let Some(auth) = mode.strip_suffix("-throttle-redis") {
        return Some((auth, std::env::var("BENCH_REDIS_URL").ok()));
    }
    mode.strip_suffix("-throttle").map(|auth| (auth, None))
}

/// One rule per caller, with a quota no benchmark reaches: every request
/// does the whole bookkeeping (and gets the `RateLimit` fields).
fn throttle(redis: Option<String>) -> Option<auth_throttle::Throttle> {
    use auth_throttle::{MemoryStore, Quota, RedisStore, Rule, Store, Throttle};
    let store: Store = match redis {
        Some(url) => RedisStore::builder(&url, SECRET).build().ok()?.into(),
        None => MemoryStore::default().into(),
    };
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1));
    Throttle::builder(store)
        .rule(Rule::new("per-caller", quota).ok()?)
        .build()
        .ok()
}

/// A bare router, or one behind the layers.
#[derive(Clone)]
enum Service {
    Bare(Router),
    Auth(auth_axum::AuthService<Router>),
    Throttled(auth_axum::AuthService<auth_axum::ThrottleService<Router>>),
}

fn backend(mode: &str) -> Option<Box<dyn auth_core::Backend>> {
    Some(match mode {
        "jwt" => Box::new(JwtBackend::builder(validator()?).cache_capacity(0).build()),
        "jwt-cached" => Box::new(JwtBackend::new(validator()?)),
        "ip" => Box::new(IpBackend::new()),
        "anon" => Box::new(AnonSessionBackend::new("anon").ok()?),
        _ => return None,
    })
}

/// The actix-web server: one worker; bare, or wrapped in the middleware
/// (and the throttle, for `<mode>-throttle`).
fn actix(mode: &str, addr: &str) -> std::io::Result<()> {
    use actix_web::{App, HttpServer, web};
    let unknown = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "unknown mode");
    let (auth_mode, throttled) = match throttled(mode) {
        Some((auth, store)) => (auth, Some(throttle(store).ok_or_else(unknown)?)),
        None => (mode, None),
    };
    let auth = match auth_mode {
        "bare" => None,
        other => Some(auth_actix::Authentication::new(
            backend(other).ok_or_else(unknown)?,
        )),
    };
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let hello = web::resource("/hello").route(web::get().to(|| async { "hello" }));
            // actix runs the last wrap first: authentication, then the throttle.
            match (&auth, &throttled) {
                (None, _) => App::new().service(hello),
                (Some(auth), None) => App::new().service(hello.wrap(auth.clone())),
                (Some(auth), Some(throttle)) => App::new().service(
                    hello
                        .wrap(auth_actix::Throttling::new(throttle.clone()))
                        .wrap(auth.clone()),
                ),
            }
        })
        .workers(1)
        .bind(addr)?
        .run()
        .await
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("token") => {
            let issuer = TokenIssuer::hs256(SECRET)
                .map(|i| i.issuer("bench").ttl(Duration::from_secs(86_400)));
            match issuer.map(|i| {
                i.issue(
                    serde_json::json!({"sub": "bench-user", "scope": "read"}),
                    SystemTime::now(),
                )
            }) {
                Ok(Ok(token)) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                _ => ExitCode::FAILURE,
            }
        }
        Some("axum") => {
            let (Some(app), Some(addr)) = (args.get(2).and_then(|m| app(m)), args.get(3)) else {
                eprintln!("usage: bench_server axum <bare|jwt|jwt-cached|ip|anon> <addr>");
                return ExitCode::FAILURE;
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("bench_server: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let served = runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                match app {
                    Service::Bare(router) => {
                        axum::serve(
                            listener,
                            router.into_make_service_with_connect_info::<SocketAddr>(),
                        )
                        .await
                    }
                    Service::Auth(service) => {
                        axum::serve(
                            listener,
                            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(service),
                        )
                        .await
                    }
                    Service::Throttled(service) => {
                        axum::serve(
                            listener,
                            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(service),
                        )
                        .await
                    }
                }
            });
            if let Err(e) = served {
                eprintln!("bench_server: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Some("actix") => {
            let (Some(mode), Some(addr)) = (args.get(2), args.get(3)) else {
                eprintln!("usage: bench_server actix <bare|jwt|jwt-cached|ip|anon> <addr>");
                return ExitCode::FAILURE;
            };
            match actix(mode, addr) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench_server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: bench_server token | bench_server axum|actix <mode> <addr>");
            ExitCode::FAILURE
        }
    }
}
