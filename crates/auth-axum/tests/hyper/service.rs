//! `AuthLayer` around a plain hyper service (no axum router), served by
//! hyper over real TCP: the layer is a tower layer for any service taking
//! `http::Request<B>`, and reads the client address from a `PeerAddr`
//! extension the server inserts per connection.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use auth_axum::AuthLayer;
use auth_core::{AnonSessionBackend, Chain, IpBackend, PeerAddr, Policy, SessionBackend, Verdict};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower_layer::Layer;
use tower_service::Service;

/// The handler: who the layer admitted, or "nobody".
#[derive(Clone)]
struct Hello;

impl Service<Request<Incoming>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let who = req
            .extensions()
            .get::<Verdict>()
            .and_then(Verdict::auth)
            .map_or_else(|| "nobody".to_owned(), |auth| auth.key());
        ready(Ok(Response::new(Full::from(who))))
    }
}

/// Inserts the connection's address, as a server without axum does.
#[derive(Clone)]
struct WithPeer<S>(S, SocketAddr);

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for WithPeer<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.1));
        self.0.call(req)
    }
}

/// Serves `layer` around `Hello` with hyper's HTTP/1 server.
fn serve(layer: AuthLayer) -> String {
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
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                let service = WithPeer(layer.layer(Hello), peer);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
    });
    base
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_plain_hyper_service_is_guarded() {
    let sessions = serve(AuthLayer::new(
        Policy::new(
            Chain::new()
                .or(SessionBackend::new("session").unwrap())
                .or(AnonSessionBackend::new("anon").unwrap()),
        )
        .realm("api"),
    ));
    let (status, headers, body) = get(&sessions, &[("cookie", "session=u-7")]);
    assert_eq!((status, body.as_str()), (200, "session:u-7"));
    assert_eq!(header(&headers, "set-cookie"), None);

    let (status, headers, body) = get(&sessions, &[]);
    assert_eq!(status, 200);
    assert!(body.starts_with("anon:"), "{body}");
    let cookie = header(&headers, "set-cookie").unwrap();
    assert!(cookie.starts_with("anon=") && cookie.contains("HttpOnly"));

    let strict = serve(AuthLayer::new(Policy::new(
        SessionBackend::new("session").unwrap(),
    )));
    let (status, headers, body) = get(&strict, &[]);
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(
        body,
        r#"{"error":"unauthorized","error_description":"no credentials (Cookie)"}"#
    );
}

#[test]
fn the_peer_address_comes_from_the_server() {
    let ip = serve(AuthLayer::new(IpBackend::new()));
    let (status, _, body) = get(&ip, &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!((status, body.as_str()), (200, "ip:127.0.0.1"));
}
