//! Bounded provider load: 300 concurrent requests with unique tokens
//! against a slow introspection endpoint, through axum over real TCP. The
//! server's threads stay within the cap of concurrent provider calls (plus
//! its workers), the requests over the cap get 503 with `Retry-After` at
//! once, and other routes keep answering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use auth_core::introspect::DEFAULT_MAX_CONCURRENT_CALLS;
use auth_core::{IntrospectionBackend, Policy};
use serde_json::json;

const CLIENTS: usize = 300;
const WORKERS: usize = 2;
const SERVER_THREADS: &str = "auth-srv";

/// An introspection endpoint that takes a second to answer "active".
fn slow_provider() -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    for _ in 0..(DEFAULT_MAX_CONCURRENT_CALLS + 8) {
        let server = Arc::clone(&server);
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                thread::sleep(Duration::from_secs(1));
                let answer = json!({"active": true, "sub": "svc"}).to_string();
                let _ = request.respond(tiny_http::Response::from_string(answer));
            }
        });
    }
    url
}

/// The server, its runtime's threads named `auth-srv`.
fn serve(url: &str) -> String {
    let backend = IntrospectionBackend::builder(url, "api", "secret")
        .allow_http(true)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(
            axum::Router::new()
                .route(
                    "/introspected",
                    axum::routing::get(
                        |auth_axum::Auth(who): auth_axum::Auth| async move { who.key() },
                    ),
                )
                .layer(auth_axum::AuthLayer::new(Policy::new(backend))),
        );
    // A listen backlog for every client at once (the default, 128, would
    // have the kernel drop connections and the clients retry a second
    // later: a measure of the backlog, not of the server).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = socket.listen(1024).unwrap();
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            });
    });
    base
}

/// The server's threads now (its runtime names every thread it starts).
fn server_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(SERVER_THREADS))
        .count()
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

#[test]
fn provider_calls_and_threads_are_capped() {
    let base = serve(&slow_provider());
    let up = Instant::now();
    while agent().get(format!("{base}/health")).call().is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "the server did not start"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let idle = server_threads();

    // Sample the server's thread count during the storm.
    let storm = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (storm, most) = (Arc::clone(&storm), Arc::clone(&most));
        thread::spawn(move || {
            while storm.load(Ordering::SeqCst) {
                most.fetch_max(server_threads(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (base, start) = (base.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                let response = agent()
                    .get(format!("{base}/introspected"))
                    .header("authorization", format!("Bearer unique-token-{i}"))
                    .call()
                    .unwrap();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), retry_after, began.elapsed())
            })
        })
        .collect();
    start.wait();
    // Meanwhile, another route answers at once.
    thread::sleep(Duration::from_millis(200));
    let began = Instant::now();
    let health = agent().get(format!("{base}/health")).call().unwrap();
    let health_took = began.elapsed();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    storm.store(false, Ordering::SeqCst);
    sampler.join().unwrap();

    assert_eq!(health.status(), 200);
    assert!(health_took < Duration::from_millis(500), "{health_took:?}");
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(ok + busy.len(), CLIENTS, "only 200 and 503: {answers:?}");
    assert!(
        ok >= 1 && !busy.is_empty(),
        "{ok} admitted, {} refused",
        busy.len()
    );
    for (_, retry_after, took) in &busy {
        assert_eq!(retry_after.as_deref(), Some("1"));
        // Refused at once, not after waiting for a thread or the provider.
        assert!(*took < Duration::from_millis(900), "{took:?}");
    }
    let most = most.load(Ordering::SeqCst);
    println!(
        "{ok} admitted, {} refused; server threads idle {idle}, at most {most}",
        busy.len()
    );
    assert!(
        most <= WORKERS + DEFAULT_MAX_CONCURRENT_CALLS + 4,
        "at most {most} server threads for a cap of {DEFAULT_MAX_CONCURRENT_CALLS}"
    );
}
