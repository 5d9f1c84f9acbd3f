//! RFC 7662 introspection against a real OpenID provider (oidc-provider):
//! active, garbage and revoked tokens, a wrong client secret, a provider
//! that is down, cache hits that make no call, both client auth methods.

use std::time::{Duration, Instant};

use auth_core::{AuthError, ClientAuth, IntrospectionBackend, Source};
use auth_tests::{
    CLIENT_ID, CLIENT_SECRET, OidcProvider, POST_CLIENT_ID, POST_CLIENT_SECRET, Who,
    authenticate_blocking, bearer, quick_transport as transport,
};

fn backend(provider: &OidcProvider, secret: &str) -> IntrospectionBackend {
    IntrospectionBackend::builder(provider.introspection_url(), CLIENT_ID, secret)
        .allow_http(true)
        .identifier_claim("client_id")
        .issuer(provider.issuer())
        .audience("urn:opaque")
        .build()
        .unwrap()
}

fn check(backend: &IntrospectionBackend, token: &str) -> Result<Who, AuthError> {
    authenticate_blocking(backend, &bearer(token), &transport())
}

#[test]
fn active_garbage_and_revoked_tokens() {
    let provider = OidcProvider::start();
    let introspect = backend(&provider, CLIENT_SECRET);
    let token = provider.client_credentials("urn:opaque", "read").unwrap();

    let who = check(&introspect, &token).unwrap();
    assert_eq!(who.auth.source(), Source::Introspection);
    assert_eq!(who.auth.identifier(), CLIENT_ID);
    assert_eq!(
        who.auth.get("access_token"),
        None,
        "the raw token is kept only when asked"
    );
    assert!(who.auth.has_scope("read"));

    let garbage = check(&introspect, "not-a-token-the-provider-knows").unwrap_err();
    assert_eq!(
        (garbage.status().as_u16(), garbage.to_string().as_str()),
        (401, "invalid credentials: token is not active")
    );

    let doomed = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.revoke(&doomed).unwrap();
    let revoked = check(&introspect, &doomed).unwrap_err();
    assert_eq!(revoked.status().as_u16(), 401);
}

#[test]
fn client_secret_post_works_too() {
    let provider = OidcProvider::start();
    let token = provider.client_credentials("urn:opaque", "read").unwrap();
    let post = IntrospectionBackend::builder(
        provider.introspection_url(),
        POST_CLIENT_ID,
        POST_CLIENT_SECRET,
    )
    .allow_http(true)
    .client_auth(ClientAuth::ClientSecretPost)
    .identifier_claim("client_id")
    .build()
    .unwrap();
    // Introspecting another client's token is allowed in oidc-provider.
    assert_eq!(check(&post, &token).unwrap().auth.identifier(), CLIENT_ID);
}

#[test]
fn wrong_client_secret_is_503_not_the_callers_fault() {
    let provider = OidcProvider::start();
    let token = provider.client_credentials("urn:opaque", "read").unwrap();
    let err = check(&backend(&provider, "wrong-secret"), &token).unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err}");
    assert!(
        err.to_string().contains("rejected our client credentials"),
        "{err}"
    );
    assert!(!err.to_string().contains(&token));
}

#[test]
fn cache_hit_makes_no_call_and_a_down_provider_is_503() {
    let mut provider = OidcProvider::start();
    let introspect = backend(&provider, CLIENT_SECRET);
    let cached = provider.client_credentials("urn:opaque", "read").unwrap();
    let fresh = provider.client_credentials("urn:opaque", "read").unwrap();
    assert!(check(&introspect, &cached).is_ok());
    provider.stop();
    // The provider is gone: only a cache hit can still answer.
    assert_eq!(
        check(&introspect, &cached).unwrap().auth.identifier(),
        CLIENT_ID
    );
    let started = Instant::now();
    let err = check(&introspect, &fresh).unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within the timeout"
    );
}
