//! auth-axum with the introspection backend against a real OpenID provider
//! (oidc-provider), over real TCP.

use std::time::Duration;

use auth_axum::{Auth, AuthLayer};
use auth_core::step::UreqTransport;
use auth_core::{IntrospectionBackend, Policy};
use auth_tests::{CLIENT_ID, CLIENT_SECRET, OidcProvider, serve_axum};
use axum::Router;
use axum::routing::get;

async fn who(Auth(who): Auth) -> String {
    who.key()
}

fn fetch(url: &str, token: Option<&str>) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn introspection_through_the_axum_layer() {
    let mut provider = OidcProvider::start();
    let backend =
        IntrospectionBackend::builder(provider.introspection_url(), CLIENT_ID, CLIENT_SECRET)
            .allow_http(true)
            .identifier_claim("client_id")
            .build()
            .unwrap();
    let transport = UreqTransport::builder()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .build();
    let base = serve_axum(
        Router::new()
            .route("/me", get(who))
            .layer(AuthLayer::new(Policy::new(backend).transport(transport))),
    );
    let url = format!("{base}/me");

    let token = provider.client_credentials("urn:opaque", "read").unwrap();
    assert_eq!(
        fetch(&url, Some(&token)),
        (200, format!("introspect:{CLIENT_ID}"))
    );
    assert_eq!(fetch(&url, Some("garbage")).0, 401);
    assert_eq!(fetch(&url, None).0, 401);
    let revoked = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.revoke(&revoked).unwrap();
    assert_eq!(fetch(&url, Some(&revoked)).0, 401);
    let fresh = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.stop();
    assert_eq!(fetch(&url, Some(&token)).0, 200, "cached: no call needed");
    assert_eq!(fetch(&url, Some(&fresh)).0, 503);
}
