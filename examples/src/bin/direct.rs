//! The direct-call example: the demo's routes served without a web
//! framework (`tiny_http`), each request handed to the core's blocking
//! driver. `cargo run -p auth-examples --bin direct`.
//!
//! Environment: `DEMO_ADDR` (default `127.0.0.1:3000`), `DEMO_JWT_SECRET`
//! (HS256, at least 32 bytes; random when unset), `DEMO_TRUSTED_PROXIES`
//! (comma-separated CIDRs), `DEMO_SESSION_KEY` (signs anonymous session ids;
//! at least 32 bytes), `DEMO_INTROSPECTION_URL` + `DEMO_CLIENT_ID` +
//! `DEMO_CLIENT_SECRET` (+ `DEMO_INTROSPECTION_IDENTIFIER`) for
//! `/introspected`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use auth_examples::{Demo, DemoConfig, local_addr, serve};

const WORKERS: usize = 4;

fn main() -> ExitCode {
    // RUST_LOG=auth_core=debug shows every refusal and why; warnings (a
    // provider down) and errors (a misconfigured server) show by default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let demo = match DemoConfig::from_env().and_then(|config| Demo::new(&config)) {
        Ok(demo) => Arc::new(demo),
        Err(e) => {
            eprintln!("demo: bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match tiny_http::Server::http(&addr) {
        Ok(server) => Arc::new(server),
        Err(e) => {
            eprintln!("demo: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = local_addr(&server).map_or(addr, |a| a.to_string());
    let token = demo.sample_token("demo-user", "read");
    let admin = demo.sample_token("demo-admin", "read admin");
    println!("auth demo listening on http://{bound}");
    println!("sample token (sub demo-user, scope read, 1 h):\n  {token}");
    println!("try:");
    println!("  curl -i http://{bound}/whoami                     # anonymous session issued");
    println!("  curl -i -H 'Authorization: Bearer {token}' http://{bound}/whoami");
    println!("  curl -i http://{bound}/private                    # 401 + WWW-Authenticate");
    println!(
        "  curl -i -H 'Authorization: Bearer {token}' http://{bound}/admin   # 403 insufficient_scope"
    );
    println!("  curl -i -H 'Authorization: Bearer {admin}' http://{bound}/admin");
    println!("  curl -i http://{bound}/ip");
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (demo, server) = (Arc::clone(&demo), Arc::clone(&server));
            thread::spawn(move || serve(&demo, &server))
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("demo: a worker thread panicked");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
