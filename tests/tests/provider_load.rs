//! Bounded provider load: 300 concurrent requests with unique tokens
//! against a slow introspection endpoint, through axum and through
//! actix-web over real TCP. The provider never sees more calls at once than
//! the cap, every admitted request made exactly one call, the requests over
//! the cap get 503 with `Retry-After` at once, other routes keep answering
//! meanwhile, and (axum, whose runtime names its threads) the server's
//! threads stay within the cap plus its workers. And one client address
//! flooding unknown tokens holds no more than its share of the calls:
//! other clients' new tokens are still checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use auth_core::step::UreqTransport;
use auth_core::{Gate, IntrospectionBackend, IpBackend, Policy};
use auth_tests::agent;
use serde_json::json;

const CAP: usize = IntrospectionBackend::DEFAULT_MAX_CONCURRENT_CALLS;
const CLIENTS: usize = 300;
const WORKERS: usize = 2;
const SERVER_THREADS: &str = "auth-srv";

/// What the slow provider saw: calls in all, and the most at once; and
/// whether it holds its answers until the test releases them.
#[derive(Default)]
struct Calls {
    total: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
    held: AtomicBool,
}

/// An introspection endpoint that takes a second to answer "active" (or
/// longer, while `held`), with room for any number of calls at once (slow,
/// not overloaded). Async, so that a held call holds no thread another
/// call would wait for.
fn slow_provider() -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/introspect", socket.local_addr().unwrap());
    let seen = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move || {
            let calls = Arc::clone(&seen);
            async move {
                calls.total.fetch_add(1, Ordering::SeqCst);
                let now = calls.now.fetch_add(1, Ordering::SeqCst) + 1;
                calls.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                while calls.held.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                calls.now.fetch_sub(1, Ordering::SeqCst);
                json!({"active": true, "sub": "svc"}).to_string()
            }
        }),
    );
    thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = socket.listen(1024).unwrap();
                let _ = axum::serve(listener, app).await;
            });
    });
    (url, calls)
}

/// Introspection at `url`; clients are told apart by `X-Forwarded-For`
/// (the tests' requests come through a proxy on loopback). A provider call
/// waits up to two minutes: the storm holds the admitted ones until every
/// client is accounted for, which on a loaded machine may outlast the
/// default 5 s.
fn gate(url: &str) -> Gate {
    let backend = IntrospectionBackend::builder(url, "api", "secret")
        .allow_http(true)
        .client_ip(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    let transport = UreqTransport::builder()
        .timeout(Duration::from_secs(120))
        .build();
    Gate::new(Policy::new(backend).transport(transport))
}

/// A client address of its own for client `i`.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
}

/// The axum server, its runtime's threads named `threads`.
fn serve_axum(url: &str, threads: &'static str) -> String {
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
                .layer(auth_axum::AuthLayer::new(gate(url))),
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
            .thread_name(threads)
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

/// The actix-web server: the middleware built once and shared by the
/// workers, as an application should (one cache, one cap on calls).
fn serve_actix(url: &str) -> String {
    use actix_web::{App, HttpServer, web};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = auth_actix::Authentication::new(gate(url));
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .route("/health", web::get().to(|| async { "ok" }))
                    .service(
                        web::resource("/introspected")
                            .wrap(auth.clone())
                            .route(web::get().to(
                                |auth_actix::Auth(who): auth_actix::Auth| async move { who.key() },
                            )),
                    )
            })
            .workers(WORKERS)
            .backlog(1024)
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });
    base
}

/// The axum server's threads now (its runtime names every thread it
/// starts).
fn server_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(SERVER_THREADS))
        .count()
}

fn wait_until_up(base: &str) {
    let up = Instant::now();
    while agent().get(format!("{base}/health")).call().is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "the server did not start"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `CLIENTS` requests with unique tokens at once, against a provider that
/// holds every call until the test releases it. The refusals all come
/// while it holds them (at once, not after a thread or the provider) and
/// `/health` answers meanwhile. Checks the answers against the provider's
/// calls, and says how many were admitted and refused, and the most calls
/// at once.
fn storm(base: &str, calls: &Calls) -> String {
    calls.held.store(true, Ordering::SeqCst);
    let answered = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (base, start) = (base.to_owned(), Arc::clone(&start));
            let answered = Arc::clone(&answered);
            thread::spawn(move || {
                start.wait();
                let response = agent()
                    .get(format!("{base}/introspected"))
                    .header("authorization", format!("Bearer unique-token-{i}"))
                    .header("x-forwarded-for", address(i))
                    .call()
                    .unwrap();
                answered.fetch_add(1, Ordering::SeqCst);
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), retry_after)
            })
        })
        .collect();
    start.wait();
    // Every client is either answered or waiting on a held provider call.
    let began = Instant::now();
    while answered.load(Ordering::SeqCst) + calls.now.load(Ordering::SeqCst) < CLIENTS {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{base}: {} answered, {} provider calls, of {CLIENTS}",
            answered.load(Ordering::SeqCst),
            calls.now.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Meanwhile, another route answers, again and again.
    for _ in 0..5 {
        let health = agent().get(format!("{base}/health")).call().unwrap();
        assert_eq!(health.status(), 200);
    }
    let refused_while_held = answered.load(Ordering::SeqCst);
    calls.held.store(false, Ordering::SeqCst);
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(ok + busy.len(), CLIENTS, "only 200 and 503: {answers:?}");
    assert!(
        ok >= 1 && !busy.is_empty(),
        "{ok} admitted, {} refused",
        busy.len()
    );
    // Refused at once: every refusal came while the provider held the
    // admitted calls.
    assert_eq!(busy.len(), refused_while_held, "{base}");
    for (_, retry_after) in &busy {
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    // How many are admitted depends on how fast this machine starts the
    // clients; that the provider never sees more than the cap at once,
    // and one call per admitted request, does not.
    let most = calls.most.load(Ordering::SeqCst);
    assert!(most <= CAP, "{most} provider calls at once, cap {CAP}");
    assert_eq!(calls.total.load(Ordering::SeqCst), ok);
    format!(
        "{ok} admitted, {} refused, {most} calls at once",
        busy.len()
    )
}

/// The tests of this file load the machine: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn provider_calls_and_threads_are_capped_on_both_adapters() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (url, calls) = slow_provider();
    let base = serve_axum(&url, SERVER_THREADS);
    wait_until_up(&base);
    let idle = server_threads();
    // Sample the server's thread count during the storm.
    let storming = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (storming, most) = (Arc::clone(&storming), Arc::clone(&most));
        thread::spawn(move || {
            while storming.load(Ordering::SeqCst) {
                most.fetch_max(server_threads(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let seen = storm(&base, &calls);
    storming.store(false, Ordering::SeqCst);
    sampler.join().unwrap();
    let most = most.load(Ordering::SeqCst);
    println!("axum: {seen}; server threads idle {idle}, at most {most}");
    assert!(
        most <= WORKERS + CAP + 4,
        "at most {most} server threads for a cap of {CAP}"
    );

    let (url, calls) = slow_provider();
    let base = serve_actix(&url);
    wait_until_up(&base);
    println!("actix: {}", storm(&base, &calls));
}

/// One address keeps 90 connections busy with unknown tokens (each call
/// takes the provider a second); meanwhile new tokens from other addresses
/// are checked: the flood holds at most its share of the provider calls.
#[test]
fn one_address_cannot_hold_the_provider() {
    const SHARE: usize = IntrospectionBackend::DEFAULT_MAX_CALLS_PER_CLIENT;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (url, calls) = slow_provider();
    let base = serve_axum(&url, "flood-srv");
    wait_until_up(&base);
    let flooding = Arc::new(AtomicBool::new(true));
    let attackers: Vec<_> = (0..90)
        .map(|t| {
            let (base, flooding) = (base.clone(), Arc::clone(&flooding));
            thread::spawn(move || {
                let agent = agent();
                let (mut admitted, mut refused) = (0, 0);
                for n in 0.. {
                    if !flooding.load(Ordering::SeqCst) {
                        break;
                    }
                    let status = agent
                        .get(format!("{base}/introspected"))
                        .header("authorization", format!("Bearer flood-{t}-{n}"))
                        .header("x-forwarded-for", "198.51.100.66")
                        .call()
                        .unwrap()
                        .status()
                        .as_u16();
                    match status {
                        200 => admitted += 1,
                        503 => refused += 1,
                        other => panic!("{other}"),
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // Five other clients, each with a new token, while the flood runs.
    let others: Vec<_> = (0..5)
        .map(|i| {
            let base = base.clone();
            thread::spawn(move || {
                agent()
                    .get(format!("{base}/introspected"))
                    .header("authorization", format!("Bearer fresh-{i}"))
                    .header("x-forwarded-for", address(1_000 + i))
                    .call()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let others: Vec<u16> = others.into_iter().map(|o| o.join().unwrap()).collect();
    thread::sleep(Duration::from_millis(1_200));
    let most_during = calls.most.load(Ordering::SeqCst);
    flooding.store(false, Ordering::SeqCst);
    let (admitted, refused) = attackers
        .into_iter()
        .map(|a| a.join().unwrap())
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    // The provider calls still in flight end (a second each) before the
    // next test of this file loads the machine.
    thread::sleep(Duration::from_millis(1_100));
    println!(
        "flood: {admitted} admitted, {refused} refused; others {others:?}; \
         at most {most_during} provider calls at once"
    );
    assert_eq!(others, [200; 5], "other clients' new tokens are checked");
    assert!(refused > 0, "the flood is refused over its share");
    assert!(
        most_during <= SHARE + 5,
        "{most_during} calls at once: the flood held more than its share of {SHARE}"
    );
}
