//! The throttle on one route of a server, over real TCP: axum's
//! `route_layer` and actix-web's per-resource `wrap`. The throttled route
//! gets its quota and then 429; the server's other routes, and paths no
//! route serves, are neither refused nor counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::time::Duration;

use auth_core::{AnonSessionBackend, Policy};
use auth_tests::serve_axum;
use auth_throttle::{Callers, MemoryStore, Quota, Rule, Throttle};

fn throttle() -> Throttle {
    Throttle::builder(MemoryStore::default())
        .rule(
            Rule::new("visitors", Quota::new(2, Duration::from_secs(600)).unwrap())
                .unwrap()
                .callers(Callers::ANONYMOUS),
        )
        .build()
        .unwrap()
}

fn policy() -> Policy {
    Policy::new(AnonSessionBackend::new("anon").unwrap())
}

fn get(base: &str, path: &str) -> (u16, Option<String>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let response = agent
        .get(format!("{base}{path}"))
        .header("cookie", "anon=visitor-1")
        .call()
        .unwrap();
    let ratelimit = response
        .headers()
        .get("ratelimit")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), ratelimit)
}

/// Free and unknown paths first (they must not count), then the limited
/// route: two allowed with their `RateLimit` field, then 429; the free
/// route still answers afterwards.
fn exercise(base: &str) {
    for _ in 0..3 {
        assert_eq!(get(base, "/free"), (200, None));
        assert_eq!(get(base, "/nowhere").0, 404);
    }
    let first = get(base, "/limited");
    assert_eq!(first.0, 200);
    assert!(first.1.unwrap().starts_with("\"visitors\";r=1;"));
    assert_eq!(get(base, "/limited").0, 200);
    assert_eq!(get(base, "/limited").0, 429);
    assert_eq!(get(base, "/free"), (200, None));
}

#[test]
fn axum_route_layer_limits_one_route() {
    use auth_axum::AuthLayer;
    use axum::routing::get as route;
    let app = axum::Router::new()
        .route("/limited", route(|| async { "limited" }))
        // route_layer: only matched routes.
        .route_layer(AuthLayer::new(policy()).throttle(throttle()))
        .merge(axum::Router::new().route("/free", route(|| async { "free" })));
    exercise(&serve_axum(app));
}

#[test]
fn actix_wrap_limits_one_resource() {
    use actix_web::{App, HttpServer, web};
    use auth_actix::Authentication;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Built once: the workers share the counters.
    let auth = Authentication::new(policy()).throttle(throttle());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .service(
                        web::resource("/limited")
                            .wrap(auth.clone())
                            .route(web::get().to(|| async { "limited" })),
                    )
                    .route("/free", web::get().to(|| async { "free" }))
            })
            .workers(2)
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });
    exercise(&base);
}
