//! The blocking driver and the ureq transport against a real HTTP server on
//! 127.0.0.1, with a backend that needs one round trip.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use auth_core::step::{
    DEFAULT_MAX_COOKIE_HEADER_LEN, Outcome, RequestView, Step, TransportError, UreqTransport,
    cookie_value,
};
use auth_core::{AnonSessionBackend, AuthData, AuthError, Backend, Chain, Credential, Source};

use crate::authenticate_blocking;

/// Looks a `sid` cookie up on a remote session service: `POST /lookup` with
/// the id as body; 200 → the body is the user, 404 → unknown session (401),
/// 204 → "not a session of ours" (no credentials, the chain moves on),
/// anything else or no answer → 503.
#[derive(Clone)]
struct RemoteSessions {
    base: String,
}

impl Backend for RemoteSessions {
    fn authenticate(&self, req: &dyn RequestView, _now: SystemTime) -> Outcome {
        let sid = match cookie_value(req, "sid", DEFAULT_MAX_COOKIE_HEADER_LEN) {
            Ok(Some(sid)) => sid,
            Ok(None) => return Outcome::err(AuthError::MissingCredentials(Credential::Cookie)),
            Err(e) => return Outcome::err(e),
        };
        let request = http::Request::post(format!("{}/lookup", self.base))
            .header("content-type", "text/plain")
            .body(sid.as_bytes().to_vec())
            .unwrap();
        Outcome::send(Step::new(request, |response, _req, _now| {
            let response = match response {
                Ok(r) => r,
                Err(e) => return Outcome::err(AuthError::provider_unavailable(e.to_string())),
            };
            match response.status().as_u16() {
                200 => Outcome::ok(AuthData::bare(
                    Source::Session,
                    String::from_utf8_lossy(response.body()).into_owned(),
                )),
                204 => Outcome::err(AuthError::MissingCredentials(Credential::Cookie)),
                404 => Outcome::err(AuthError::invalid_credentials(
                    Credential::Cookie,
                    "unknown session",
                )),
                status => Outcome::err(AuthError::provider_unavailable(format!(
                    "lookup answered {status}"
                ))),
            }
        }))
    }
}

struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
}

/// A real HTTP server with a `/lookup` route whose answer depends on the
/// posted session id.
fn start_server() -> Server {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let server = Arc::new(server);
    for _ in 0..4 {
        let server = Arc::clone(&server);
        let counter = Arc::clone(&counter);
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                assert_eq!(request.method(), &tiny_http::Method::Post);
                assert_eq!(request.url(), "/lookup");
                let response = match body.as_str() {
                    "alice-sid" => tiny_http::Response::from_string("alice"),
                    "other-app" => tiny_http::Response::from_string("").with_status_code(204),
                    "broken" => tiny_http::Response::from_string("oops").with_status_code(500),
                    "slow" => {
                        thread::sleep(Duration::from_secs(3));
                        tiny_http::Response::from_string("late")
                    }
                    "big" => tiny_http::Response::from_data(vec![b'x'; 2 * 1024 * 1024]),
                    _ => tiny_http::Response::from_string("no").with_status_code(404),
                };
                let _ = request.respond(response);
            }
        });
    }
    Server { base, hits }
}

fn with_sid(sid: &str) -> http::Request<()> {
    http::Request::builder()
        .header("cookie", format!("sid={sid}"))
        .body(())
        .unwrap()
}

/// A transport that waits long enough for a loaded machine: these tests
/// expect answers, except `slow_provider_times_out`.
fn transport() -> UreqTransport {
    transport_within(Duration::from_secs(5))
}

fn transport_within(timeout: Duration) -> UreqTransport {
    UreqTransport::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .max_response_len(64 * 1024)
        .build()
}

#[test]
fn a_round_trip_through_a_real_server() {
    let server = start_server();
    let backend = RemoteSessions {
        base: server.base.clone(),
    };
    let who = authenticate_blocking(&backend, &with_sid("alice-sid"), &transport()).unwrap();
    assert_eq!(who.auth.identifier(), "alice");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    // No cookie: answered locally, no request sent.
    let err = authenticate_blocking(&backend, &http::Request::new(()), &transport()).unwrap_err();
    assert!(err.is_missing());
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn non_2xx_statuses_reach_the_continuation() {
    let server = start_server();
    let backend = RemoteSessions { base: server.base };
    let unknown = authenticate_blocking(&backend, &with_sid("nobody"), &transport()).unwrap_err();
    assert_eq!(unknown.status(), 401);
    let broken = authenticate_blocking(&backend, &with_sid("broken"), &transport()).unwrap_err();
    assert_eq!(broken.status(), 503);
    assert!(broken.to_string().contains("500"), "{broken}");
}

#[test]
fn slow_provider_times_out() {
    let server = start_server();
    let backend = RemoteSessions { base: server.base };
    let started = Instant::now();
    let transport = transport_within(Duration::from_millis(500));
    let err = authenticate_blocking(&backend, &with_sid("slow"), &transport).unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_answer_is_cut_off() {
    let server = start_server();
    let backend = RemoteSessions { base: server.base };
    let err = authenticate_blocking(&backend, &with_sid("big"), &transport()).unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(
        err.to_string()
            .contains(&TransportError::TooLarge { limit: 64 * 1024 }.to_string()),
        "{err}"
    );
}

#[test]
fn refused_connection_is_unavailable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let backend = RemoteSessions {
        base: format!("http://{addr}"),
    };
    let err = authenticate_blocking(&backend, &with_sid("alice-sid"), &transport()).unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[test]
fn chain_continues_after_a_network_step() {
    let server = start_server();
    let chain = Chain::new()
        .or(RemoteSessions {
            base: server.base.clone(),
        })
        .or(AnonSessionBackend::new("anon").unwrap());
    // The remote says "not ours": the anonymous backend issues an identity.
    let who = authenticate_blocking(&chain, &with_sid("other-app"), &transport()).unwrap();
    assert_eq!(who.auth.source(), Source::Anonymous);
    assert!(who.set_cookie.is_some());
    // The remote says "unknown session": that is an invalid credential and
    // stops the chain instead of downgrading to anonymous.
    let err = authenticate_blocking(&chain, &with_sid("nobody"), &transport()).unwrap_err();
    assert_eq!(err.status(), 401);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn closures_are_transports() {
    let backend = RemoteSessions {
        base: "http://unused.invalid".into(),
    };
    let fake = |req: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
        assert_eq!(req.body(), b"alice-sid");
        Ok(http::Response::new(b"from-closure".to_vec()))
    };
    let who = authenticate_blocking(&backend, &with_sid("alice-sid"), &fake).unwrap();
    assert_eq!(who.auth.identifier(), "from-closure");
}

#[test]
fn ip_literals_and_host_names_both_reach_the_server() {
    use auth_core::step::Transport;
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    thread::spawn(move || {
        for request in server.incoming_requests() {
            let _ = request.respond(tiny_http::Response::from_string("here"));
        }
    });
    let transport = UreqTransport::new();
    for host in ["127.0.0.1", "localhost"] {
        let request = http::Request::get(format!("http://{host}:{port}/"))
            .body(Vec::new())
            .unwrap();
        let response = transport.send(request).unwrap();
        assert_eq!(response.body(), b"here", "{host}");
    }
}
