//! auth-core's `HyperTransport` (feature `hyper`): the layer's network steps
//! as futures on hyper's client, never on the blocking transport.

use std::net::SocketAddr;
use std::time::Duration;

use auth_axum::{Auth, AuthLayer};
use auth_core::step::{HyperTransport, TransportError};
use auth_core::{IntrospectionBackend, Policy};
use axum::Router;
use axum::routing::get;
use serde_json::json;

/// An introspection endpoint: `good` is active, anything else inactive; a
/// token `big` gets an answer over the transport's size cap.
fn provider() -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let answer = if body.starts_with("token=good&") {
                json!({"active": true, "sub": "svc"}).to_string()
            } else if body.starts_with("token=big&") {
                format!(
                    r#"{{"active":true,"sub":"svc","pad":"{}"}}"#,
                    "x".repeat(4096)
                )
            } else {
                json!({"active": false}).to_string()
            };
            let _ = request.respond(tiny_http::Response::from_string(answer));
        }
    });
    url
}

fn serve(app: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
    });
    base
}

fn status(url: &str, token: &str) -> u16 {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let response = agent
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    response.status().as_u16()
}

#[test]
fn network_steps_run_on_the_async_transport() {
    let backend = IntrospectionBackend::builder(provider(), "api", "secret")
        .allow_http(true)
        .build()
        .unwrap();
    // The blocking transport would fail every step: a 200 means the async
    // transport answered.
    let never = |_: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
        Err(TransportError::Other(
            "the blocking transport was used".into(),
        ))
    };
    let policy = Policy::new(backend)
        .transport(never)
        .async_transport(HyperTransport::http().max_response_len(1024));
    let base = serve(
        Router::new()
            .route("/me", get(|Auth(who): Auth| async move { who.key() }))
            .layer(AuthLayer::new(policy)),
    );
    let url = format!("{base}/me");
    assert_eq!(status(&url, "good"), 200);
    assert_eq!(status(&url, "revoked"), 401);
    // Over the size cap: the provider's answer is unusable, 503.
    assert_eq!(status(&url, "big"), 503);
}

#[test]
fn a_dead_provider_is_503_within_the_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let backend = IntrospectionBackend::builder(url, "api", "secret")
        .allow_http(true)
        .build()
        .unwrap();
    let policy = Policy::new(backend)
        .async_transport(HyperTransport::http().timeout(Duration::from_secs(1)));
    let base = serve(
        Router::new()
            .route("/me", get(|Auth(who): Auth| async move { who.key() }))
            .layer(AuthLayer::new(policy)),
    );
    let started = std::time::Instant::now();
    assert_eq!(status(&format!("{base}/me"), "good"), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
}
