//! Interop: RS256 `at+jwt` access tokens issued by a real OpenID provider
//! (oidc-provider), verified by `JwtBackend` through OIDC discovery and the
//! provider's JWKS, driven by the blocking ureq driver.

use std::time::Duration;

use auth_core::{Algorithm, JwtBackend, JwtValidator};
use auth_tests::{
    CLIENT_ID, OidcProvider, authenticate_blocking, bearer, quick_transport as transport,
};

fn backend(provider: &OidcProvider, audience: &str) -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(provider.issuer())
            .allow_http(true)
            .audience(audience)
            .build()
            .unwrap(),
    )
}

#[test]
fn at_jwt_from_a_real_provider_verifies_through_discovery() {
    let provider = OidcProvider::start();
    let token = provider
        .client_credentials("urn:jwt", "read%20write")
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        header.typ.as_deref(),
        Some("at+jwt"),
        "the provider issues RFC 9068 tokens"
    );

    let jwt = backend(&provider, "urn:jwt");
    let who = authenticate_blocking(&jwt, &bearer(&token), &transport()).unwrap();
    // client_credentials tokens have the client as subject.
    assert_eq!(who.auth.identifier(), CLIENT_ID);
    assert_eq!(
        who.auth.key(),
        format!("jwt:{}|{CLIENT_ID}", provider.issuer())
    );
    assert!(who.auth.has_scope("read") && who.auth.has_scope("write"));
    assert_eq!(
        who.auth.get("aud").and_then(|a| a.as_str()),
        Some("urn:jwt")
    );

    // A second token: keys are known, and the provider can even be gone.
    let second = provider.client_credentials("urn:jwt", "read").unwrap();
    let mut provider = provider;
    provider.stop();
    assert!(authenticate_blocking(&jwt, &bearer(&second), &transport()).is_ok());
}

#[test]
fn wrong_audience_and_opaque_tokens_are_rejected() {
    let provider = OidcProvider::start();
    let token = provider.client_credentials("urn:jwt", "read").unwrap();
    let elsewhere = backend(&provider, "urn:other-api");
    let err = authenticate_blocking(&elsewhere, &bearer(&token), &transport()).unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.to_string().as_str()),
        (401, "invalid credentials: token has the wrong audience")
    );

    let opaque = provider.client_credentials("urn:opaque", "read").unwrap();
    let jwt = backend(&provider, "urn:jwt");
    let err = authenticate_blocking(&jwt, &bearer(&opaque), &transport()).unwrap_err();
    assert_eq!(err.status().as_u16(), 401);
}

#[test]
fn provider_down_before_the_first_key_fetch_is_503() {
    let mut provider = OidcProvider::start();
    let token = provider.client_credentials("urn:jwt", "read").unwrap();
    let jwt = backend(&provider, "urn:jwt");
    provider.stop();
    let started = std::time::Instant::now();
    let err = authenticate_blocking(&jwt, &bearer(&token), &transport()).unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
