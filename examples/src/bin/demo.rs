//! The demo server (README's first command):
//! `cargo run -p auth-examples --bin demo [-- --framework axum|actix]`.
//!
//! The same routes and behaviour on axum (default) or actix-web, from the
//! same core policies (see `auth_examples::Demo`). Environment:
//! `DEMO_ADDR` (default `127.0.0.1:3000`), `DEMO_JWT_SECRET` (HS256, at least
//! 32 bytes; random when unset), `DEMO_TRUSTED_PROXIES` (comma-separated
//! CIDRs), `DEMO_SESSION_KEY` (signs anonymous session ids; at least 32
//! bytes), `DEMO_INTROSPECTION_URL` + `DEMO_CLIENT_ID` +
//! `DEMO_CLIENT_SECRET` (+ `DEMO_INTROSPECTION_IDENTIFIER`,
//! `DEMO_INTROSPECTION_CACHE_TTL` in seconds) for `/introspected` (plain
//! `http` only to a provider on this machine), `DEMO_REDIS_URL` (one
//! server) or `DEMO_REDIS_CLUSTER` (some of a Redis Cluster's nodes' URLs,
//! comma-separated) with `DEMO_THROTTLE_SECRET` (at least 16 bytes, the
//! same on every server) to count `/limited`'s requests and the failure
//! budget in Redis (`DEMO_REDIS_TIMEOUT_MS`: how long a request waits for
//! it, default 50),
//! `DEMO_FAILURE_BUDGET` (refused credentials per client address on every
//! route, `<count>/<seconds>`, default `10/10`; `off`), `DEMO_OIDC_ISSUER`
//! (+ `DEMO_OIDC_AUDIENCE`) for `/oidc`: RS256 or ES256 tokens of that
//! OpenID provider, its keys found by discovery. Rejections are
//! logged at `debug`: `RUST_LOG=auth_core=debug`. `GET /metrics` answers
//! the Prometheus text exposition of the gate's and the throttle's metrics;
//! `GET /health/ready` the readiness of the key set, the introspection
//! provider and the shared store, each when configured.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;

use auth_examples::{Demo, DemoConfig, actix_routes, axum_router};

fn axum(demo: &Demo, addr: SocketAddr) -> std::io::Result<()> {
    let app = axum_router(demo);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        })
}

fn actix(demo: &Demo, addr: SocketAddr) -> std::io::Result<()> {
    let routes = actix_routes(demo);
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
            .bind(addr)?
            .run()
            .await
    })
}

fn main() -> ExitCode {
    // RUST_LOG=auth_core=debug shows every refusal and why; warnings (a
    // provider down) and errors (a misconfigured server) show by default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let args: Vec<String> = std::env::args().collect();
    let framework = match args
        .iter()
        .position(|a| a == "--framework")
        .map(|i| args.get(i + 1))
    {
        None => "axum",
        Some(Some(f)) if f == "axum" || f == "actix" => f.as_str(),
        Some(_) => {
            eprintln!("usage: demo [--framework axum|actix]");
            return ExitCode::FAILURE;
        }
    };
    let addr: SocketAddr = match std::env::var("DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("demo: DEMO_ADDR: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Built without the `metrics` feature, `GET /metrics` is 404.
    #[cfg(feature = "metrics")]
    if let Err(e) = auth_examples::install_metrics() {
        eprintln!("demo: metrics: {e}");
        return ExitCode::FAILURE;
    }
    let demo = match DemoConfig::from_env().and_then(|config| Demo::new(&config)) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("demo: bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = demo.sample_token("demo-user", "read");
    let admin = demo.sample_token("demo-admin", "read admin");
    println!("auth demo ({framework}) listening on http://{addr}");
    println!("sample token (sub demo-user, scope read, 1 h):\n  {token}");
    println!("try:");
    println!("  curl -i http://{addr}/whoami                     # anonymous session issued");
    println!("  curl -i -H 'Authorization: Bearer {token}' http://{addr}/whoami");
    println!("  curl -i http://{addr}/private                    # 401 + WWW-Authenticate");
    println!(
        "  curl -i -H 'Authorization: Bearer {token}' http://{addr}/admin   # 403 insufficient_scope"
    );
    println!("  curl -i -H 'Authorization: Bearer {admin}' http://{addr}/admin");
    println!("  curl -i http://{addr}/ip");
    println!(
        "  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}}\\n' -b anon=0123456789abcdef0123456789abcdef http://{addr}/limited; done   # 200 200 200 429"
    );
    #[cfg(feature = "metrics")]
    println!(
        "  curl -s http://{addr}/metrics | grep ^auth_   # Prometheus text; serve it apart from public traffic in production"
    );
    println!(
        "  curl -i http://{addr}/health/ready            # 200, or 503 when a provider or the store is down"
    );
    if demo.counts_in_redis() {
        println!("/limited counts in Redis (DEMO_REDIS_URL or DEMO_REDIS_CLUSTER)");
    } else {
        println!(
            "/limited counts in this process (set DEMO_REDIS_URL or DEMO_REDIS_CLUSTER to share the limits)"
        );
    }
    if demo.has_introspection() {
        println!("  curl -i -H 'Authorization: Bearer <opaque token>' http://{addr}/introspected");
    } else {
        println!(
            "/introspected is off (set DEMO_INTROSPECTION_URL, DEMO_CLIENT_ID and DEMO_CLIENT_SECRET)"
        );
    }
    let served = match framework {
        "actix" => actix(&demo, addr),
        _ => axum(&demo, addr),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
