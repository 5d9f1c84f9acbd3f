//! Broken identity providers behind real axum and actix-web servers: down,
//! silent past the timeout, 500, garbage, not HTTP, 50 MB, closing
//! mid-answer; for introspection, a JWKS URL and OIDC discovery. Every
//! request gets a 503 within the timeout, `/health` keeps answering, and
//! afterwards the process has no more threads (and axum's runtime no more
//! tasks) than before. One test, the adapters one after the other: the
//! counts are the process's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use auth_actix::Authentication;
use auth_axum::AuthLayer;
use auth_tests::faults::{
    check_fault_routes, fault_routes, get, settle, start_fault_servers, thread_count,
};
use axum::routing::get as route_get;

#[test]
fn broken_providers_give_503_in_time_and_leak_nothing() {
    through_axum();
    through_actix();
}

/// axum: afterwards no more threads, and no more tasks on its runtime.
fn through_axum() {
    let servers = start_fault_servers();
    let mut app = axum::Router::new().route("/health", route_get(|| async { "ok" }));
    for (path, policy) in fault_routes(&servers) {
        app = app.route(
            &path,
            route_get(|| async { "authenticated" }).layer(AuthLayer::new(policy)),
        );
    }

    // Our own runtime, to count its tasks; idle blocking threads (where
    // network steps run) exit after 100 ms instead of tokio's 10 s.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = runtime.handle().clone();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    assert_eq!(get(&base, "/health", None).status, 200);
    let tasks = || handle.metrics().num_alive_tasks();
    // Let the warm-up's connection task and blocking thread finish.
    std::thread::sleep(Duration::from_millis(300));
    let (threads_before, tasks_before) = (thread_count(), settle(tasks, 1, Duration::from_secs(2)));

    for line in check_fault_routes(&base, &servers) {
        println!("{line}");
    }

    for (fault, server) in &servers {
        assert!(
            server.wait_idle(Duration::from_secs(5)),
            "{fault:?} provider still busy"
        );
    }
    let threads_after = settle(thread_count, threads_before, Duration::from_secs(5));
    let tasks_after = settle(tasks, tasks_before, Duration::from_secs(5));
    println!("threads {threads_before} -> {threads_after}, tasks {tasks_before} -> {tasks_after}");
    assert!(
        threads_after <= threads_before,
        "threads {threads_before} -> {threads_after}"
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks {tasks_before} -> {tasks_after}"
    );
    assert_eq!(get(&base, "/health", None).status, 200);
}

/// actix-web runs its tasks on per-worker local sets that tokio's task
/// metrics do not see: threads are what is counted (network steps run on
/// blocking threads, and a stuck one would stay).
fn through_actix() {
    let servers = start_fault_servers();
    let routes = fault_routes(&servers);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let mut app = App::new().route("/health", web::get().to(|| async { "ok" }));
                for (path, policy) in &routes {
                    app = app.service(
                        web::resource(path.as_str())
                            .wrap(Authentication::new(policy.clone()))
                            .route(web::get().to(|| async { "authenticated" })),
                    );
                }
                app
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    assert_eq!(get(&base, "/health", None).status, 200);
    thread::sleep(Duration::from_millis(300));
    let threads_before = thread_count();

    for line in check_fault_routes(&base, &servers) {
        println!("{line}");
    }

    for (fault, server) in &servers {
        assert!(
            server.wait_idle(Duration::from_secs(5)),
            "{fault:?} provider still busy"
        );
    }
    // actix's blocking threads idle out after tokio's default 10 s.
    let threads_after = settle(thread_count, threads_before, Duration::from_secs(20));
    println!("threads {threads_before} -> {threads_after}");
    assert!(
        threads_after <= threads_before,
        "threads {threads_before} -> {threads_after}"
    );
    assert_eq!(get(&base, "/health", None).status, 200);
}
