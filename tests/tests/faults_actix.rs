//! The broken providers of `faults_axum.rs` behind a real actix-web server:
//! every request a 503 within the timeout, `/health` keeps answering, and
//! afterwards the process has no more threads than before. (actix runs its
//! tasks on per-worker local sets that tokio's task metrics do not see, so
//! threads are what is counted here; network steps run on blocking threads,
//! and a stuck one would stay.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use auth_actix::Authentication;
use auth_tests::faults::{
    check_fault_routes, fault_routes, get, settle, start_fault_servers, thread_count,
};

#[test]
fn broken_providers_give_503_in_time_and_leak_nothing() {
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
