//! Per-request cost of the local backends and a chain.
//!
//! `cargo bench -p auth-core --bench local_backends`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::SystemTime;

use auth_core::step::{
    DEFAULT_MAX_COOKIE_HEADER_LEN, DEFAULT_MAX_TOKEN_LEN, bearer_token, cookie_value,
};
use auth_core::{AnonSessionBackend, Backend, Chain, IpBackend, PeerAddr, SessionBackend};
use criterion::{Criterion, criterion_group, criterion_main};

/// A request shaped like a browser's: a dozen headers, a few cookies.
fn browser_request(cookie: &str) -> http::Request<()> {
    let mut req = http::Request::builder()
        .uri("/hello")
        .header("host", "app.example")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-GB,en;q=0.9")
        .header("accept-encoding", "gzip, deflate, br")
        .header("x-forwarded-for", "198.51.100.23, 10.0.0.7")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "none")
        .header("cookie", cookie)
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr("10.0.0.2:51000".parse().unwrap()));
    req
}

fn backends(c: &mut Criterion) {
    let now = SystemTime::now();
    let mut group = c.benchmark_group("local");

    let plain = browser_request("theme=dark; _ga=GA1.2.3.4; anon=0123456789abcdef0123456789abcdef");
    let ip = IpBackend::new();
    group.bench_function("ip/peer", |b| {
        b.iter(|| black_box(ip.authenticate(black_box(&plain), now)))
    });
    let proxied = IpBackend::new().trust_proxies(["10.0.0.0/8"]).unwrap();
    group.bench_function("ip/trusted_proxy", |b| {
        b.iter(|| black_box(proxied.authenticate(black_box(&plain), now)))
    });

    let session = SessionBackend::new("anon").unwrap();
    group.bench_function("session", |b| {
        b.iter(|| black_box(session.authenticate(black_box(&plain), now)))
    });

    let anon = AnonSessionBackend::new("anon").unwrap();
    group.bench_function("anon/returning", |b| {
        b.iter(|| black_box(anon.authenticate(black_box(&plain), now)))
    });
    let fresh = browser_request("theme=dark; _ga=GA1.2.3.4");
    group.bench_function("anon/issue", |b| {
        b.iter(|| black_box(anon.authenticate(black_box(&fresh), now)))
    });

    let signed = AnonSessionBackend::builder("anon")
        .signing_key([7u8; 32])
        .build()
        .unwrap();
    let issued = signed
        .authenticate(&fresh, now)
        .into_done()
        .unwrap()
        .unwrap();
    let pair = issued.set_cookie.unwrap();
    let signed_req = browser_request(pair.split(';').next().unwrap());
    group.bench_function("anon/signed_returning", |b| {
        b.iter(|| black_box(signed.authenticate(black_box(&signed_req), now)))
    });

    // Logged-in session missing → anonymous session found.
    let chain = Chain::new()
        .or(SessionBackend::new("session").unwrap())
        .or(AnonSessionBackend::new("anon").unwrap());
    group.bench_function("chain/session_then_anon", |b| {
        b.iter(|| black_box(chain.authenticate(black_box(&plain), now)))
    });
    group.finish();
}

fn readers(c: &mut Criterion) {
    let mut group = c.benchmark_group("reader");
    let req = browser_request("theme=dark; _ga=GA1.2.3.4; anon=0123456789abcdef0123456789abcdef");
    group.bench_function("cookie_value", |b| {
        b.iter(|| {
            black_box(cookie_value(
                black_box(&req),
                "anon",
                DEFAULT_MAX_COOKIE_HEADER_LEN,
            ))
        })
    });
    let mut with_token = browser_request("");
    with_token.headers_mut().insert(
        "authorization",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTk5OTk5OTk5OX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
            .parse()
            .unwrap(),
    );
    group.bench_function("bearer_token", |b| {
        b.iter(|| black_box(bearer_token(black_box(&with_token), DEFAULT_MAX_TOKEN_LEN).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, backends, readers);
criterion_main!(benches);
