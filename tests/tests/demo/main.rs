//! The demo and its framework-free twin, running: the direct server's
//! answers route by route, the three servers answering alike, and a real
//! browser keeping its anonymous session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alike;
mod browser;
mod direct;
mod ready;

use auth_examples::IntrospectionConfig;

/// The demo's `/introspected` route against the endpoint at `url`, as
/// `auth_tests::CLIENT_ID`, identifying callers by `client_id` (client-credentials
/// tokens have no `sub`).
fn demo_introspection(url: String) -> IntrospectionConfig {
    IntrospectionConfig {
        url,
        client_id: auth_tests::CLIENT_ID.into(),
        client_secret: auth_tests::CLIENT_SECRET.into(),
        identifier: "client_id".into(),
        cache_ttl: None,
    }
}
