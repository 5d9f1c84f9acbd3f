//! Introspection without the network: a cache hit, and building the request
//! plus parsing a Keycloak-sized answer.
//!
//! `cargo bench -p auth-core --bench introspection`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::SystemTime;

use auth_core::step::{Action, Outcome};
use auth_core::{Backend, IntrospectionBackend};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn answer() -> Vec<u8> {
    json!({
        "exp": 4_000_000_000_u64, "iat": 1_800_000_000_u64, "jti": "2f1c7f0e-5c1a-4c5e-9b8e-0d6c2f8e1a11",
        "iss": "https://sso.example/realms/acme", "aud": ["orders-api", "account"],
        "sub": "7b1d3c9e-0c2a-4a55-8f3e-9a1b2c3d4e5f", "typ": "Bearer", "azp": "web-frontend",
        "preferred_username": "jane", "email": "jane@example.com", "email_verified": true,
        "scope": "openid profile email",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "customer"]},
        "resource_access": {"orders-api": {"roles": ["orders:read", "orders:write"]}},
        "client_id": "web-frontend", "username": "jane", "token_type": "Bearer", "active": true
    })
    .to_string()
    .into_bytes()
}

fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn introspection(c: &mut Criterion) {
    let now = SystemTime::now();
    let body = answer();
    let token = "kFOl60oJbgjNsOfE0Vh14rkRXjk8my5M4Rkd9j8Em6p";

    // Request built, answer parsed, identity made; the cache is off so every
    // iteration does the whole round (minus the network).
    let uncached =
        IntrospectionBackend::builder("https://sso.example/introspect", "orders-api", "secret")
            .audience("orders-api")
            .cache_capacity(0)
            .build()
            .unwrap();
    let req = bearer(token);
    c.bench_function("introspect/build_and_parse", |b| {
        b.iter(|| {
            let Outcome::Send(step) = uncached.authenticate(black_box(&req), now) else {
                unreachable!()
            };
            let (Action::Send(request), resume) = step.into_parts() else {
                unreachable!()
            };
            black_box(request);
            let response = http::Response::new(body.clone());
            black_box(
                resume
                    .resume(Ok(response), &req, now)
                    .into_done()
                    .unwrap()
                    .unwrap(),
            )
        })
    });

    let cached =
        IntrospectionBackend::builder("https://sso.example/introspect", "orders-api", "secret")
            .build()
            .unwrap();
    let Outcome::Send(step) = cached.authenticate(&req, now) else {
        unreachable!()
    };
    let (_, resume) = step.into_parts();
    assert!(
        resume
            .resume(Ok(http::Response::new(body.clone())), &req, now)
            .into_done()
            .unwrap()
            .is_ok()
    );
    c.bench_function("introspect/cache_hit", |b| {
        b.iter(|| {
            black_box(
                cached
                    .authenticate(black_box(&req), now)
                    .into_done()
                    .unwrap()
                    .unwrap(),
            )
        })
    });
}

criterion_group!(benches, introspection);
criterion_main!(benches);
