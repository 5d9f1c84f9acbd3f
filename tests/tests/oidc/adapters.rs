//! The adapters with the introspection backend against a real OpenID
//! provider (oidc-provider), over real TCP: axum on the blocking transport,
//! actix-web on `HyperTransport`.

use std::net::TcpListener;
use std::time::Duration;

use auth_axum::{Auth, AuthLayer};
use auth_core::step::{HyperTransport, TransportError, UreqTransport};
use auth_core::{IntrospectionBackend, Policy};
use auth_tests::{CLIENT_ID, CLIENT_SECRET, OidcProvider, serve_axum};
use axum::Router;
use axum::routing::get;

async fn who(Auth(who): Auth) -> String {
    who.key()
}

fn fetch(url: &str, token: Option<&str>) -> (u16, String) {
    let agent = auth_tests::agent();
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

/// An actix-web server with `policy` on `/me`.
fn serve_actix(policy: Policy) -> String {
    use actix_web::{App, HttpServer, web};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = auth_actix::Authentication::new(policy);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new().service(
                    web::resource("/me")
                        .wrap(auth.clone())
                        .route(web::get().to(
                            |auth_actix::Auth(who): auth_actix::Auth| async move { who.key() },
                        )),
                )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });
    base
}

#[test]
fn introspection_through_actix_on_the_async_transport() {
    let mut provider = OidcProvider::start();
    let backend =
        IntrospectionBackend::builder(provider.introspection_url(), CLIENT_ID, CLIENT_SECRET)
            .allow_http(true)
            .identifier_claim("client_id")
            .build()
            .unwrap();
    // The blocking transport fails every step: a 200 means hyper's client
    // answered, on actix's own (tokio) worker.
    let never = |_: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
        Err(TransportError::Other(
            "the blocking transport was used".into(),
        ))
    };
    let policy = Policy::new(backend)
        .transport(never)
        .async_transport(HyperTransport::http().timeout(Duration::from_secs(2)));
    let url = format!("{}/me", serve_actix(policy));

    let token = provider.client_credentials("urn:opaque", "read").unwrap();
    assert_eq!(
        fetch(&url, Some(&token)),
        (200, format!("introspect:{CLIENT_ID}"))
    );
    assert_eq!(fetch(&url, Some("garbage")).0, 401);
    let fresh = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.stop();
    assert_eq!(fetch(&url, Some(&token)).0, 200, "cached: no call needed");
    assert_eq!(fetch(&url, Some(&fresh)).0, 503);
}
