//! `GET /health/ready` on the demo's three servers (axum, actix-web, the
//! framework-free one, sharing one `Demo`), against a real OpenID provider
//! and a real Redis: each part named, each one taken down in turn.

use std::sync::Arc;
use std::thread;

use auth_examples::{Demo, DemoConfig, actix_routes, axum_router, local_addr, serve};
use auth_tests::redis::RedisServer;
use auth_tests::{CLIENT_SECRET, OidcProvider, agent, serve_actix, serve_axum};
use serde_json::Value;

fn servers(demo: &Arc<Demo>) -> Vec<(&'static str, String)> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let direct = format!("http://{}", local_addr(&server).unwrap());
    let (shared, server) = (Arc::clone(demo), Arc::clone(&server));
    thread::spawn(move || serve(&shared, &server));
    vec![
        ("axum", serve_axum(axum_router(demo))),
        ("actix", serve_actix(actix_routes(demo))),
        ("direct", direct),
    ]
}

/// The status and JSON of `GET /health/ready`.
fn ready(base: &str) -> (u16, Value) {
    let mut response = agent().get(format!("{base}/health/ready")).call().unwrap();
    assert_eq!(
        response.headers().get("cache-control").unwrap(),
        "no-store",
        "{base}"
    );
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    (status, body)
}

fn get(base: &str, path: &str, token: &str) -> u16 {
    agent()
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// Each part's name and status.
type Parts = Vec<(String, String)>;

/// Each server's report: its name, status, and parts.
fn reports(servers: &[(&str, String)]) -> Vec<(String, u16, Parts)> {
    servers
        .iter()
        .map(|(name, base)| {
            let (status, body) = ready(base);
            let checks = body["checks"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(part, check)| (part.clone(), check["status"].as_str().unwrap().to_owned()))
                .collect();
            assert_eq!(body["ready"], status == 200, "{name}: {body}");
            ((*name).to_owned(), status, checks)
        })
        .collect()
}

fn each(servers: &[(&str, String)], status: u16, parts: &[(&str, &str)]) {
    let parts: Parts = parts
        .iter()
        .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
        .collect();
    for (name, got, checks) in reports(servers) {
        assert_eq!((got, &checks), (status, &parts), "{name}");
    }
}

/// Every part the demo checks, ready.
const ALL_READY: &[(&str, &str)] = &[
    ("introspection", "ready"),
    ("jwt_keys", "ready"),
    ("rate_limit_store", "ready"),
];

fn config(provider: &OidcProvider, redis: &RedisServer) -> DemoConfig {
    DemoConfig {
        introspection: Some(crate::demo_introspection(provider.introspection_url())),
        oidc_issuer: Some(provider.issuer().to_owned()),
        oidc_audience: Some("urn:jwt".into()),
        redis_url: Some(redis.url()),
        // A ping that outlasts its timeout is a degraded store: 50 ms, the
        // default, is short for a first connect on a loaded machine.
        redis_timeout: Some(std::time::Duration::from_secs(2)),
        throttle_secret: Some("a throttle secret, 32 bytes long".into()),
        ..DemoConfig::default()
    }
}

#[test]
fn readiness_names_each_part_and_is_503_while_one_is_down() {
    let mut provider = OidcProvider::start();
    let mut redis = RedisServer::start();
    let demo = Arc::new(Demo::new(&config(&provider, &redis)).unwrap());
    let servers = servers(&demo);

    // The key set is fetched by the probe itself: no token came yet.
    each(&servers, 200, ALL_READY);
    let signed = provider.client_credentials("urn:jwt", "read").unwrap();
    for (name, base) in &servers {
        assert_eq!(get(base, "/oidc", &signed), 200, "{name}");
    }

    // Redis away: limits are counted in process (the demo's fallback),
    // so the store is degraded and the server still ready.
    redis.stop();
    for (name, _, checks) in reports(&servers) {
        assert!(
            checks.contains(&("rate_limit_store".into(), "degraded".into())),
            "{name}: {checks:?}"
        );
    }
    let (_, body) = ready(&servers[0].1);
    let reason = body["checks"]["rate_limit_store"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("unreachable") && reason.contains("counted in this process"),
        "{reason}"
    );
    assert!(
        !reason.contains(&redis.url()),
        "no URL in a reason: {reason}"
    );
    redis.restart().unwrap();
    // The store's connection comes back by itself, within moments.
    let started = std::time::Instant::now();
    while reports(&servers[..1])[0].1 != 200
        || !reports(&servers[..1])[0]
            .2
            .contains(&("rate_limit_store".into(), "ready".into()))
    {
        assert!(
            started.elapsed().as_secs() < 10,
            "Redis is not answering again"
        );
        thread::sleep(std::time::Duration::from_millis(100));
    }
    each(&servers, 200, ALL_READY);

    // The provider away: a token to introspect finds it down, and so does
    // the next report (the keys fetched stay fresh: their tokens verify).
    let opaque = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.stop();
    assert_eq!(get(&servers[0].1, "/introspected", &opaque), 503);
    each(
        &servers,
        503,
        &[
            ("introspection", "down"),
            ("jwt_keys", "ready"),
            ("rate_limit_store", "ready"),
        ],
    );
    let (_, body) = ready(&servers[1].1);
    let reason = body["checks"]["introspection"]["reason"].as_str().unwrap();
    assert_eq!(reason, "the introspection endpoint: could not connect");
    assert!(
        !body.to_string().contains(CLIENT_SECRET) && !body.to_string().contains(&opaque),
        "{body}"
    );
    for (name, base) in &servers {
        assert_eq!(get(base, "/oidc", &signed), 200, "{name}");
    }
}

#[test]
fn a_key_set_never_fetched_is_down_and_an_idle_provider_is_asked() {
    let mut provider = OidcProvider::start();
    let redis = RedisServer::start();
    let config = config(&provider, &redis);
    // Introspection answers a token nobody issued (`active: false`): the
    // provider works. No request has introspected anything yet.
    let live = Arc::new(Demo::new(&config).unwrap());
    let live = servers(&live);
    each(&live[..1], 200, ALL_READY);
    // A demo started while the provider is away: no key set, no answers.
    provider.stop();
    let cold = Arc::new(Demo::new(&config).unwrap());
    let cold = servers(&cold);
    each(
        &cold[..1],
        503,
        &[
            ("introspection", "down"),
            ("jwt_keys", "down"),
            ("rate_limit_store", "ready"),
        ],
    );
    let (_, body) = ready(&cold[2].1);
    let reason = body["checks"]["jwt_keys"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("no remote signing keys yet") && reason.contains("the last fetch failed"),
        "{reason}"
    );
}

/// The next connection to `listener`, within `secs` seconds (a call that
/// never comes fails the test rather than hanging it).
fn accept_within(listener: &std::net::TcpListener, secs: u64) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let started = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    started.elapsed().as_secs() < secs,
                    "no call within {secs} s"
                );
                thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reads one HTTP request's head from `stream`.
fn read_head(stream: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
}

/// Whether the client still holds `stream` open: no end of stream and no
/// reset behind what it sent (the introspection call's body, unread, is
/// read and dropped first).
fn still_open(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0; 1024];
    let open = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) => break e.kind() == std::io::ErrorKind::WouldBlock,
        }
    };
    stream.set_nonblocking(false).unwrap();
    open
}

#[test]
fn the_providers_are_probed_at_once_not_one_after_the_other() {
    // A provider that accepts and never answers: each probe waits out its
    // timeout. The second probe's call must come while the first still
    // waits (one after the other, it would come after the first gave up).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    let demo = Arc::new(
        Demo::new(&DemoConfig {
            introspection: Some(crate::demo_introspection(format!("{base}/introspect"))),
            oidc_issuer: Some(base),
            oidc_audience: Some("urn:jwt".into()),
            ..DemoConfig::default()
        })
        .unwrap(),
    );
    let calls = thread::spawn(move || {
        let mut first = accept_within(&silent, 20);
        read_head(&mut first);
        let mut second = accept_within(&silent, 20);
        read_head(&mut second);
        still_open(&mut first)
    });
    let axum = serve_axum(axum_router(&demo));
    let (status, body) = ready(&axum);
    assert_eq!(status, 503, "{body}");
    for part in ["jwt_keys", "introspection"] {
        assert_eq!(body["checks"][part]["status"], "down", "{body}");
    }
    assert!(
        calls.join().unwrap(),
        "the second provider call came after the first was given up"
    );
}
