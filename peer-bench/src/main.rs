//! One hello route, bare or behind an authenticator, for
//! `scripts/peer-bench.sh`. Every server is single-threaded (one tokio
//! current-thread runtime, or one actix worker) so `taskset` gives it
//! exactly one core.
//!
//! ```text
//! peer-bench token <hs256|rs256>   # prints a bearer token every mode accepts
//! peer-bench <mode> <addr>         # serves GET /hello
//! ```
//!
//! Every authenticating mode checks the signature, `exp` and `iss` and
//! answers 401 without a valid token; the script checks that too.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};

const SECRET: &str = "peer-benchmark-secret-0123456789";
const RSA_PRIVATE: &[u8] = include_bytes!("../../crates/auth-core/tests/keys/rsa.key");
const RSA_PUBLIC: &[u8] = include_bytes!("../../crates/auth-core/tests/keys/rsa.pub");
const ISSUER: &str = "bench";

/// Every mode: `<framework>-<authenticator>`.
const MODES: [&str; 23] = [
    "axum-bare",
    "axum-limit-ip",
    "axum-limit-ip-quiet",
    "axum-governor-ip",
    "axum-governor-ip-quiet",
    "axum-ours-hs256",
    "axum-ours-hs256-cached",
    "axum-ours-rs256",
    "axum-ours-rs256-cached",
    "axum07-bare",
    "axum07-jwt-authorizer-hs256",
    "axum07-jwt-authorizer-rs256",
    "actix-bare",
    "actix-ours-hs256",
    "actix-ours-hs256-cached",
    "actix-ours-rs256",
    "actix-ours-rs256-cached",
    "actix-httpauth-hs256",
    "actix-httpauth-rs256",
    "actix-limit-ip",
    "actix-limit-ip-quiet",
    "actix-governor-ip",
    "actix-governor-ip-quiet",
];

fn ours(mode: &str) -> Result<JwtBackend, String> {
    let validator = if mode.contains("hs256") {
        JwtValidator::builder([Algorithm::HS256]).hmac_secret(SECRET)
    } else {
        JwtValidator::builder([Algorithm::RS256]).rsa_pem(RSA_PUBLIC)
    };
    let validator = validator
        .issuer(ISSUER)
        .build()
        .map_err(|e| e.to_string())?;
    let backend = JwtBackend::builder(validator);
    Ok(if mode.ends_with("-cached") {
        backend
    } else {
        backend.cache_capacity(0)
    }
    .build())
}

fn token(alg: &str) -> Result<String, String> {
    let issuer = match alg {
        "hs256" => TokenIssuer::hs256(SECRET).map_err(|e| e.to_string())?,
        "rs256" => TokenIssuer::new(
            Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?,
        other => return Err(format!("unknown algorithm {other}")),
    };
    issuer
        .issuer(ISSUER)
        .ttl(Duration::from_secs(86_400))
        .issue(
            serde_json::json!({"sub": "bench-user", "scope": "read"}),
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The quota of both rate limiters: a billion a second, so nothing is
/// denied and every request does the whole bookkeeping.
const PER_SECOND: u32 = 1_000_000_000;

/// Ours: a gate with rate limits alone, one rule counting every caller by
/// peer address, its `RateLimit` fields on every answer unless `quiet`.
fn limits(quiet: bool) -> Result<auth_core::Gate, String> {
    use auth_throttle::{Callers, MemoryStore, Quota, Rule, Throttle};
    let quota =
        Quota::new(u64::from(PER_SECOND), Duration::from_secs(1)).map_err(|e| e.to_string())?;
    let rule = Rule::new("ip", quota)
        .map_err(|e| e.to_string())?
        .callers(Callers::EVERYONE)
        .by_client_ip();
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(rule)
        .ratelimit_headers(!quiet)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(auth_core::Gate::without_auth().throttle(throttle))
}

fn serve_axum<S>(service: S, addr: SocketAddr) -> Result<(), String>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    current_thread()
        .map_err(|e| e.to_string())?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| e.to_string())?;
            axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                    SocketAddr,
                >(service),
            )
            .await
            .map_err(|e| e.to_string())
        })
}

/// axum 0.8: bare or with our auth layer (route layers); the rate limiters
/// (ours, and tower_governor keyed by peer IP, each with its headers or
/// without) as service-level layers around the router, the harness of
/// `scripts/instructions.sh`.
fn axum(mode: &str, addr: SocketAddr) -> Result<(), String> {
    use axum::{Router, routing::get};
    use tower::Layer;
    let hello = Router::new().route("/hello", get(|| async { "hello" }));
    match mode {
        "axum-limit-ip" | "axum-limit-ip-quiet" => {
            let gate = limits(mode.ends_with("quiet"))?;
            return serve_axum(
                auth_axum::AuthLayer::new(gate).layer(hello.with_state(())),
                addr,
            );
        }
        "axum-governor-ip" | "axum-governor-ip-quiet" => {
            use tower_governor::GovernorLayer;
            use tower_governor::governor::GovernorConfigBuilder;
            use tower_governor::key_extractor::PeerIpKeyExtractor;
            let mut config = GovernorConfigBuilder::default().key_extractor(PeerIpKeyExtractor);
            config
                .period(Duration::from_secs(1) / PER_SECOND)
                .burst_size(PER_SECOND);
            let router = hello.with_state(());
            return if mode.ends_with("quiet") {
                let config = config.finish().ok_or("governor configuration")?;
                serve_axum(GovernorLayer::new(Arc::new(config)).layer(router), addr)
            } else {
                let config = config
                    .use_headers()
                    .finish()
                    .ok_or("governor configuration")?;
                serve_axum(GovernorLayer::new(Arc::new(config)).layer(router), addr)
            };
        }
        _ => {}
    }
    let app = match mode {
        "axum-bare" => hello,
        _ => hello.layer(auth_axum::AuthLayer::new(ours(mode)?)),
    };
    current_thread()
        .map_err(|e| e.to_string())?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| e.to_string())?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .map_err(|e| e.to_string())
        })
}

/// axum 0.7: bare or with jwt-authorizer.
fn axum07(mode: &str, addr: SocketAddr) -> Result<(), String> {
    use axum07::{Router, routing::get};
    use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, RegisteredClaims, Validation};
    current_thread()
        .map_err(|e| e.to_string())?
        .block_on(async move {
            let hello = Router::new().route("/hello", get(|| async { "hello" }));
            let app = if mode == "axum07-bare" {
                hello
            } else {
                let builder: JwtAuthorizer<RegisteredClaims> = if mode.ends_with("hs256") {
                    JwtAuthorizer::from_secret(SECRET)
                } else {
                    let pem = std::str::from_utf8(RSA_PUBLIC).map_err(|e| e.to_string())?;
                    JwtAuthorizer::from_rsa_pem_text(pem)
                };
                let authorizer: Authorizer<RegisteredClaims> = builder
                    .validation(Validation::new().iss(&[ISSUER]))
                    .build()
                    .await
                    .map_err(|e| e.to_string())?;
                hello.layer(authorizer.into_layer())
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| e.to_string())?;
            axum07::serve(listener, app.into_make_service())
                .await
                .map_err(|e| e.to_string())
        })
}

/// Claims the actix-web-httpauth validator decodes, like a typical user of
/// it would.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    exp: u64,
}

/// actix-web: bare, our middleware, or actix-web-httpauth with a
/// jsonwebtoken validator.
fn actix(mode: &str, addr: SocketAddr) -> Result<(), String> {
    use actix_web::dev::ServiceRequest;
    use actix_web::{App, HttpMessage, HttpServer, web};
    use actix_web_httpauth::extractors::bearer::BearerAuth;
    use actix_web_httpauth::middleware::HttpAuthentication;

    async fn hello() -> &'static str {
        "hello"
    }
    if mode.contains("-limit-ip") {
        let ours = auth_actix::Authentication::new(limits(mode.ends_with("quiet"))?);
        return actix_serve(addr, move || {
            App::new().service(
                web::resource("/hello")
                    .wrap(ours.clone())
                    .route(web::get().to(hello)),
            )
        });
    }
    if mode.contains("-governor-ip") {
        use actix_governor::{Governor, GovernorConfigBuilder, PeerIpKeyExtractor};
        let mut config = GovernorConfigBuilder::default().key_extractor(PeerIpKeyExtractor);
        config
            .period(Duration::from_secs(1) / PER_SECOND)
            .burst_size(PER_SECOND);
        // One limiter: every worker's middleware shares the config's.
        return if mode.ends_with("quiet") {
            let config = config.finish().ok_or("governor configuration")?;
            actix_serve(addr, move || {
                let governor = Governor::new(&config);
                App::new().service(
                    web::resource("/hello")
                        .wrap(governor)
                        .route(web::get().to(hello)),
                )
            })
        } else {
            let config = config
                .use_headers()
                .finish()
                .ok_or("governor configuration")?;
            actix_serve(addr, move || {
                let governor = Governor::new(&config);
                App::new().service(
                    web::resource("/hello")
                        .wrap(governor)
                        .route(web::get().to(hello)),
                )
            })
        };
    }
    let mode = mode.to_owned();
    let ours = if mode.contains("-ours-") {
        Some(auth_actix::Authentication::new(ours(&mode)?))
    } else {
        None
    };
    let httpauth = if mode.contains("-httpauth-") {
        let (key, alg) = if mode.ends_with("hs256") {
            (
                jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
                Algorithm::HS256,
            )
        } else {
            (
                jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUBLIC),
                Algorithm::RS256,
            )
        };
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        Some(Arc::new((key.map_err(|e| e.to_string())?, validation)))
    } else {
        None
    };
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || {
                let route = web::resource("/hello").route(web::get().to(hello));
                let app = App::new();
                if let Some(ours) = &ours {
                    return App::new().service(route.wrap(ours.clone()));
                }
                if let Some(checks) = &httpauth {
                    let checks = Arc::clone(checks);
                    let validator = move |req: ServiceRequest, credentials: BearerAuth| {
                        let checks = Arc::clone(&checks);
                        async move {
                            let (key, validation) = &*checks;
                            match jsonwebtoken::decode::<Claims>(
                                credentials.token(),
                                key,
                                validation,
                            ) {
                                Ok(data) => {
                                    req.extensions_mut().insert(data.claims);
                                    Ok(req)
                                }
                                Err(_) => {
                                    Err((actix_web::error::ErrorUnauthorized("invalid token"), req))
                                }
                            }
                        }
                    };
                    return App::new().service(route.wrap(HttpAuthentication::bearer(validator)));
                }
                app.service(route)
            })
            .workers(1)
            .bind(addr)?
            .run()
            .await
        })
        .map_err(|e| e.to_string())
}

/// One actix-web worker serving `app`.
fn actix_serve<F, A>(addr: SocketAddr, app: F) -> Result<(), String>
where
    F: Fn() -> actix_web::App<A> + Send + Clone + 'static,
    A: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    actix_web::rt::System::new()
        .block_on(async move {
            actix_web::HttpServer::new(app)
                .workers(1)
                .bind(addr)?
                .run()
                .await
        })
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["token", alg] => token(alg).map(|t| println!("{t}")),
        ["modes"] => {
            MODES.iter().for_each(|m| println!("{m}"));
            Ok(())
        }
        [mode, addr] if MODES.contains(&mode) => match addr.parse::<SocketAddr>() {
            Err(e) => Err(format!("{addr}: {e}")),
            Ok(addr) if mode.starts_with("axum07-") => axum07(mode, addr),
            Ok(addr) if mode.starts_with("axum-") => axum(mode, addr),
            Ok(addr) => actix(mode, addr),
        },
        _ => Err(format!(
            "usage: peer-bench token <hs256|rs256> | modes | <{}> <addr>",
            MODES.join("|")
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
