//! The throttle through its public API, with the in-process store: which
//! rules count which callers, all-or-nothing denials, the answers checked
//! against the RateLimit header fields draft, log-only mode, exemptions,
//! and memory under a flood of unique callers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use auth_core::http;
use auth_core::{
    Algorithm, AnonSessionBackend, Decision, Gate, IpBackend, JwtBackend, JwtValidator, PeerAddr,
    TokenIssuer, Verdict,
};
use auth_throttle::{Callers, Checked, MemoryStore, Quota, Rule, Throttle, Throttled};
use serde_json::{Value, json};

const SECRET: &[u8] = b"throttle-tests-secret-0123456789";

fn request(headers: &[(&str, &str)], peer: &str) -> http::Request<()> {
    let mut req = http::Request::builder().method("POST");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
    req
}

/// What the auth layer would leave: a JWT, else an anonymous session
/// (unsigned, any id accepted, so that tests name their visitors).
fn verdict(req: &http::Request<()>) -> Verdict {
    let anon = AnonSessionBackend::builder("anon")
        .accept_ids(|_| true)
        .build()
        .unwrap();
    verdict_of(req, anon)
}

fn verdict_of(req: &http::Request<()>, anon: AnonSessionBackend) -> Verdict {
    let jwt = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .build()
            .unwrap(),
    );
    let gate = Gate::new(auth_core::Chain::new().or(jwt).or(anon));
    match gate.decide_blocking(req) {
        Decision::Proceed(proceed) => proceed.verdict.unwrap(),
        other => panic!("{other:?}"),
    }
}

fn token(claims: Value) -> String {
    TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue(claims, SystemTime::now())
        .unwrap()
}

fn check(throttle: &Throttle, req: &http::Request<()>, at: SystemTime) -> Throttled {
    match throttle.decide(Some(&verdict(req)), req, at) {
        Checked::Done(throttled) => throttled,
        Checked::Store(_) => panic!("the in-process store decides at once"),
    }
}

fn header<'a>(additions: &'a auth_core::Additions, name: &str) -> Option<&'a str> {
    additions.get(name).map(|v| v.to_str().unwrap())
}

fn seconds(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An RFC 9651 list of one item: a string (the policy's name) and integer
/// parameters, as the draft defines `RateLimit-Policy` and `RateLimit`.
fn parse_item(value: &str) -> (String, Vec<(String, u64)>) {
    let (name, params) = value
        .strip_prefix('"')
        .and_then(|rest| rest.split_once('"'))
        .unwrap_or_else(|| panic!("not a string item: {value}"));
    assert!(
        name.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    );
    let params: Vec<(String, u64)> = params
        .split(';')
        .skip(1)
        .map(|param| {
            let (key, number) = param.split_once('=').unwrap();
            assert!(key.bytes().all(|b| b.is_ascii_lowercase()), "{key}");
            assert!(
                !number.is_empty() && number.len() <= 15,
                "sf-integer: {number}"
            );
            (key.to_owned(), number.parse().unwrap())
        })
        .collect();
    assert!(!params.is_empty(), "{value}");
    (name.to_owned(), params)
}

/// 3 per 10 s: the emission interval rounds up to 3,333,334 µs, so three
/// requests take the counter 2 µs past 10 s; `t` still never exceeds the
/// window (the quota is whole again 10 s after a full burst, not 11).
#[test]
fn the_reset_never_exceeds_the_window() {
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(Rule::new("visitors", Quota::new(3, seconds(10)).unwrap()).unwrap())
        .legacy_headers(true)
        .build()
        .unwrap();
    let req = request(&[("cookie", "anon=v1")], "192.0.2.1:1");
    let now = SystemTime::UNIX_EPOCH + seconds(1_800_000_000);
    let mut seen = Vec::new();
    for i in 0..3 {
        let Throttled::Allow(allowance) = check(&throttle, &req, now) else {
            panic!("request {i}")
        };
        let (_, params) = parse_item(header(&allowance, "ratelimit").unwrap());
        let reset_at = header(&allowance, "x-ratelimit-reset").unwrap();
        seen.push((
            params[1].1,
            reset_at.parse::<u64>().unwrap() - 1_800_000_000,
        ));
    }
    assert_eq!(seen, [(4, 4), (7, 7), (10, 10)]);
}

#[test]
fn the_answers_follow_the_draft() {
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(Rule::new("visitors", Quota::new(3, seconds(9)).unwrap()).unwrap())
        .legacy_headers(true)
        .build()
        .unwrap();
    let req = request(&[("cookie", "anon=v1")], "192.0.2.1:1");
    let now = SystemTime::UNIX_EPOCH + seconds(1_800_000_000);
    let mut remaining = Vec::new();
    for i in 0..3 {
        let Throttled::Allow(allowance) = check(&throttle, &req, now) else {
            panic!("request {i}")
        };
        let headers = &allowance;
        let (name, params) = parse_item(header(headers, "ratelimit-policy").unwrap());
        assert_eq!(
            (name.as_str(), params),
            ("visitors", vec![("q".into(), 3), ("w".into(), 9)])
        );
        let (name, params) = parse_item(header(headers, "ratelimit").unwrap());
        assert_eq!(name, "visitors");
        remaining.push(params);
        // Legacy fields with their usual meanings: the quota, what is
        // left, the Unix time the quota is whole again.
        assert_eq!(header(headers, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(headers, "x-ratelimit-remaining"),
            Some(&*(2 - i).to_string())
        );
        let reset = 1_800_000_000 + 3 * (i + 1);
        assert_eq!(
            header(headers, "x-ratelimit-reset"),
            Some(&*reset.to_string())
        );
    }
    // r counts down; t is the seconds until the quota is whole again.
    assert_eq!(
        remaining,
        [
            vec![("r".into(), 2), ("t".into(), 3)],
            vec![("r".into(), 1), ("t".into(), 6)],
            vec![("r".into(), 0), ("t".into(), 9)]
        ]
    );
    let Throttled::Deny(refusal) = check(&throttle, &req, now + Duration::from_millis(500)) else {
        panic!("over the limit")
    };
    assert_eq!(refusal.status(), 429);
    // An integer Retry-After (2.5 s rounds up: when the next request
    // fits), and t, as on every answer, the seconds until the quota is
    // whole again (8.5 s rounds up).
    assert_eq!(refusal.header("retry-after").unwrap(), "3");
    let (_, params) = parse_item(refusal.header("ratelimit").unwrap().to_str().unwrap());
    assert_eq!(params, vec![("r".into(), 0), ("t".into(), 9)]);
    assert_eq!(
        refusal.cause(),
        &auth_core::Cause::RateLimited {
            rule: "visitors".into(),
            retry_after: 3
        }
    );
    assert_eq!(
        refusal.header("content-type").unwrap(),
        "application/problem+json"
    );
    let body: Value = serde_json::from_str(refusal.body()).unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Too Many Requests");
    // A retry a whisker before it is due still says 1, never 0.
    let almost = now + seconds(3) - Duration::from_micros(1);
    let Throttled::Deny(refusal) = check(&throttle, &req, almost) else {
        panic!()
    };
    assert_eq!(refusal.header("retry-after").unwrap(), "1");
    assert!(matches!(
        check(&throttle, &req, now + seconds(3)),
        Throttled::Allow(_)
    ));
}

#[test]
fn rules_count_their_callers_and_a_denial_consumes_none() {
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(
            Rule::new("members", Quota::new(5, seconds(600)).unwrap())
                .unwrap()
                .callers(Callers::AUTHENTICATED),
        )
        .rule(
            Rule::new("visitors", Quota::new(2, seconds(600)).unwrap())
                .unwrap()
                .callers(Callers::ANONYMOUS),
        )
        .rule(
            Rule::new("per-address", Quota::new(3, seconds(600)).unwrap())
                .unwrap()
                .callers(Callers::ANONYMOUS)
                .by_client_ip(),
        )
        .rule(
            Rule::new("writers", Quota::new(1, seconds(600)).unwrap())
                .unwrap()
                .scope("write")
                .methods([http::Method::POST]),
        )
        .build()
        .unwrap();
    let now = SystemTime::now();
    let allowed =
        |req: &http::Request<()>| matches!(check(&throttle, req, now), Throttled::Allow(_));
    // Two anonymous sessions from one address: 2 each by session, but 3
    // in all by address; the denied one consumes nothing of its session.
    let (a, b) = (
        request(&[("cookie", "anon=a")], "192.0.2.1:1"),
        request(&[("cookie", "anon=b")], "192.0.2.1:2"),
    );
    assert_eq!(
        [
            allowed(&a),
            allowed(&a),
            allowed(&a),
            allowed(&b),
            allowed(&b)
        ],
        [true, true, false, true, false]
    );
    // Another address is not charged for them.
    assert!(allowed(&request(&[("cookie", "anon=c")], "192.0.2.9:1")));
    // A token without any scope claim: the scope rule does not count it
    // (and nothing panics); members count it.
    let plain = format!("Bearer {}", token(json!({"sub": "alice"})));
    let plain = request(&[("authorization", &plain)], "192.0.2.1:3");
    assert!((0..5).all(|_| allowed(&plain)));
    assert!(!allowed(&plain), "five members' requests");
    // With the scope: one POST, then denied by "writers".
    let writer = format!(
        "Bearer {}",
        token(json!({"sub": "bob", "scope": "read write"}))
    );
    let writer = request(&[("authorization", &writer)], "192.0.2.1:4");
    assert!(allowed(&writer));
    let Throttled::Deny(refusal) = check(&throttle, &writer, now) else {
        panic!()
    };
    assert!(refusal.body().contains("writers"), "{}", refusal.body());
}

/// By default, rules by client address count an IPv6 client per /64: a
/// host that owns a /64 cannot get a fresh quota per address.
#[test]
fn ipv6_clients_are_counted_per_64_by_default() {
    let per_address = |throttle: Throttle| {
        let now = SystemTime::now();
        let from = |peer: &str| request(&[], peer);
        let first = check(&throttle, &from("[2001:db8:1:2::1]:1"), now);
        let same_64 = check(&throttle, &from("[2001:db8:1:2:ffff::9]:1"), now);
        let other_64 = check(&throttle, &from("[2001:db8:1:3::1]:1"), now);
        [first, same_64, other_64].map(|t| matches!(t, Throttled::Allow(_)))
    };
    let rule = || {
        Rule::new("addresses", Quota::new(1, seconds(60)).unwrap())
            .unwrap()
            .by_client_ip()
    };
    let default = Throttle::builder(MemoryStore::default())
        .rule(rule())
        .build()
        .unwrap();
    assert_eq!(per_address(default), [true, false, true]);
    // Without a prefix, every address counts apart.
    let apart = Throttle::builder(MemoryStore::default())
        .client_ip(IpBackend::new())
        .rule(rule())
        .build()
        .unwrap();
    assert_eq!(per_address(apart), [true, true, true]);
}

#[test]
fn new_sessions_per_address_are_capped() {
    let throttle = Throttle::builder(MemoryStore::default())
        .client_ip(IpBackend::new().trust_proxies(["10.0.0.0/8"]).unwrap())
        .rule(
            Rule::new("new-sessions", Quota::new(2, seconds(600)).unwrap())
                .unwrap()
                .callers(Callers::NEW_SESSIONS)
                .by_client_ip(),
        )
        .build()
        .unwrap();
    let now = SystemTime::now();
    // A client behind a trusted proxy drops its cookie every time: each
    // request issues a session, and the third from its address is denied.
    let fresh = || request(&[("x-forwarded-for", "203.0.113.7")], "10.0.0.1:1");
    let decisions: Vec<bool> = (0..3)
        .map(|_| matches!(check(&throttle, &fresh(), now), Throttled::Allow(_)))
        .collect();
    assert_eq!(decisions, [true, true, false]);
    // An unsigned id the client sends cannot be told from one it made up:
    // it counts as new.
    let unsigned = request(
        &[
            ("cookie", "anon=made-up"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
        "10.0.0.1:1",
    );
    assert!(matches!(
        check(&throttle, &unsigned, now),
        Throttled::Deny(_)
    ));
    // A signed session issued here and sent back is not new: not counted.
    let signed = || {
        AnonSessionBackend::builder("anon")
            .signing_key(SECRET)
            .build()
            .unwrap()
    };
    let first = request(&[("x-forwarded-for", "203.0.113.9")], "10.0.0.1:1");
    let Decision::Proceed(issued) = Gate::new(signed()).decide_blocking(&first) else {
        panic!("a session is issued");
    };
    let cookie = issued
        .additions
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let returning = request(
        &[("cookie", &pair), ("x-forwarded-for", "203.0.113.7")],
        "10.0.0.1:1",
    );
    let verdict = verdict_of(&returning, signed());
    for _ in 0..3 {
        assert!(matches!(
            throttle.decide(Some(&verdict), &returning, now),
            Checked::Done(Throttled::Allow(_))
        ));
    }
    // Another client behind the same proxy has its own count.
    let other = request(&[("x-forwarded-for", "203.0.113.8")], "10.0.0.1:1");
    assert!(matches!(check(&throttle, &other, now), Throttled::Allow(_)));
}

#[test]
fn log_only_and_exempt_identities() {
    let rule = || Rule::new("r", Quota::new(1, seconds(600)).unwrap()).unwrap();
    let log_only = Throttle::builder(MemoryStore::default())
        .rule(rule())
        .log_only(true)
        .build()
        .unwrap();
    let exempt = Throttle::builder(MemoryStore::default())
        .rule(rule())
        .exempt(|auth| auth.identifier() == "operator")
        .build()
        .unwrap();
    let now = SystemTime::now();
    let visitor = request(&[("cookie", "anon=v")], "192.0.2.1:1");
    let bearer = format!("Bearer {}", token(json!({"sub": "operator"})));
    let operator = request(&[("authorization", &bearer)], "192.0.2.1:1");
    // A client-chosen identity is never exempt, whatever it says.
    let posing = request(&[("cookie", "anon=operator")], "192.0.2.1:1");
    assert!(matches!(check(&exempt, &posing, now), Throttled::Allow(_)));
    assert!(matches!(check(&exempt, &posing, now), Throttled::Deny(_)));
    for _ in 0..3 {
        assert!(matches!(
            check(&log_only, &visitor, now),
            Throttled::Allow(_)
        ));
        assert!(matches!(
            check(&exempt, &operator, now),
            Throttled::Allow(_)
        ));
    }
    assert!(matches!(check(&exempt, &visitor, now), Throttled::Allow(_)));
    assert!(matches!(check(&exempt, &visitor, now), Throttled::Deny(_)));
}

#[test]
fn requests_without_identity_count_only_by_address() {
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(Rule::new("by-identity", Quota::new(1, seconds(600)).unwrap()).unwrap())
        .rule(
            Rule::new("by-address", Quota::new(2, seconds(600)).unwrap())
                .unwrap()
                .callers(Callers::UNIDENTIFIED)
                .by_client_ip(),
        )
        .build()
        .unwrap();
    let req = request(&[], "192.0.2.1:1");
    let now = SystemTime::now();
    let decisions: Vec<bool> = (0..3)
        .map(|_| {
            matches!(
                throttle.decide(None, &req, now),
                Checked::Done(Throttled::Allow(_))
            )
        })
        .collect();
    assert_eq!(decisions, [true, true, false]);
    // No address known (a server that does not supply it): a 500 named in
    // the log, not a silent pass.
    let no_peer = http::Request::new(());
    let Checked::Done(Throttled::Deny(refusal)) = throttle.decide(None, &no_peer, now) else {
        panic!()
    };
    assert_eq!(refusal.status(), 500);
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_unique_callers_stays_within_the_capacity() {
    let store = MemoryStore::new(10_000);
    let throttle = Throttle::builder(store.clone())
        .rule(Rule::new("per-caller", Quota::new(5, seconds(60)).unwrap()).unwrap())
        .build()
        .unwrap();
    let now = SystemTime::now();
    // Warm up: the store at its capacity.
    let caller = |i: u32| request(&[("cookie", &format!("anon=flood-{i}"))], "192.0.2.1:1");
    for i in 0..20_000 {
        let _ = check(&throttle, &caller(i), now);
    }
    let settled = rss_kib();
    for i in 20_000..120_000 {
        let _ = check(&throttle, &caller(i), now);
    }
    assert!(
        store.len() <= store.capacity(),
        "{} > {}",
        store.len(),
        store.capacity()
    );
    let grown = rss_kib().saturating_sub(settled);
    println!(
        "100,000 more unique callers: {} counters kept, RSS +{grown} KiB",
        store.len()
    );
    assert!(grown < 8 * 1024, "RSS grew {grown} KiB past a full store");
}

/// What `f` logs on this thread (`INFO` and above).
fn logs_of(f: impl FnOnce()) -> String {
    logs_at(tracing::Level::INFO, f)
}

/// A throttle that never sees an auth verdict (layered outside the auth
/// layer) cannot count identified callers: it says so in the log, once,
/// instead of silently letting everybody through uncounted.
#[test]
fn rules_for_identities_without_a_verdict_are_logged_once() {
    let run = |rule: Rule| {
        let throttle = Throttle::builder(MemoryStore::default())
            .rule(rule)
            .build()
            .unwrap();
        let req = request(&[("cookie", "anon=v1")], "192.0.2.1:1");
        logs_of(|| {
            for _ in 0..3 {
                assert!(matches!(
                    throttle.decide(None, &req, SystemTime::now()),
                    Checked::Done(Throttled::Allow(_))
                ));
            }
        })
    };
    let quota = Quota::new(1, seconds(60)).unwrap();
    let by_identity = run(Rule::new("members", quota).unwrap());
    assert_eq!(
        by_identity.matches("without an auth verdict").count(),
        1,
        "{by_identity}"
    );
    let anonymous_by_address = run(Rule::new("visitors", quota)
        .unwrap()
        .callers(Callers::ANONYMOUS)
        .by_client_ip());
    assert_eq!(
        anonymous_by_address
            .matches("without an auth verdict")
            .count(),
        1
    );
    // A scope is an identity's: a scoped rule by address cannot count them.
    let scoped = run(Rule::new("writers", quota)
        .unwrap()
        .scope("write")
        .by_client_ip());
    assert_eq!(
        scoped.matches("without an auth verdict").count(),
        1,
        "{scoped}"
    );
    // A rule by address for everybody counts such requests: nothing to say.
    let everybody = Rule::new("everybody", quota).unwrap().by_client_ip();
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(everybody)
        .build()
        .unwrap();
    let req = request(&[], "192.0.2.1:1");
    let log = logs_of(|| {
        let first = throttle.decide(None, &req, SystemTime::now());
        let second = throttle.decide(None, &req, SystemTime::now());
        assert!(matches!(first, Checked::Done(Throttled::Allow(_))));
        assert!(matches!(second, Checked::Done(Throttled::Deny(_))));
    });
    assert!(!log.contains("without an auth verdict"), "{log}");
}

/// A shared store that answers with the given cells, whatever it is asked.
#[derive(Debug)]
struct Lying(Vec<auth_throttle::Cell>);

impl auth_throttle::SharedStore for Lying {
    fn apply(&self, _: &auth_throttle::Batch) -> auth_throttle::StoreFuture {
        let reply = auth_throttle::Reply::new(1_800_000_000_000_000, self.0.clone());
        Box::pin(std::future::ready(Ok(reply)))
    }
}

/// An answer the arithmetic cannot give is a failed store (its fallback
/// applies), never what the client is told: no "retry in a year", no
/// "allowed" with a wait, no 429 with requests left.
#[test]
fn a_store_answer_the_arithmetic_cannot_give_is_not_believed() {
    use auth_throttle::{Cell, Fallback, Store};
    let year = 365 * 24 * 3600 * 1_000_000;
    let lies = [
        Cell::new(true, 0, 1_000_000, 5_000_000),
        Cell::new(false, 3, 1_000_000, 1_000_000),
        Cell::new(true, 1_000, 1_000_000, 0),
    ];
    let run = |cells: Vec<Cell>| {
        let store = Store::shared(Lying(cells), SECRET).unwrap();
        let throttle = Throttle::builder(store)
            .rule(Rule::new("r", Quota::new(2, seconds(60)).unwrap()).unwrap())
            .fallback(Fallback::Deny)
            .build()
            .unwrap();
        let req = request(&[("cookie", "anon=v")], "192.0.2.1:1");
        let Checked::Store(step) = throttle.decide(Some(&verdict(&req)), &req, SystemTime::now())
        else {
            panic!("a shared store is asked");
        };
        match poll_once(step.run()) {
            Throttled::Allow(_) => (200, None),
            Throttled::Deny(refusal) => (
                refusal.status().as_u16(),
                refusal
                    .header("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned()),
            ),
        }
    };
    for lie in lies {
        assert_eq!(
            run(vec![lie]).0,
            503,
            "{lie:?}: the fallback (Deny) applies"
        );
    }
    // The truth is believed; a wait is never told beyond the window.
    let truth = run(vec![Cell::new(false, 0, 60_000_000, 30_000_000)]);
    assert_eq!(truth, (429, Some("30".to_owned())));
    assert_eq!(run(vec![Cell::new(true, 1, 30_000_000, 0)]).0, 200);
    let year = run(vec![Cell::new(false, 0, year, year)]);
    assert_eq!(year, (429, Some("60".to_owned())));
}

/// Polls a future that is ready at once.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("not ready at once"),
    }
}

/// A by-address rule that trusts no proxy, meeting a forwarding header
/// from a loopback or private peer (a proxy in front it does not know
/// about): one warning, the first time; none from a public peer or with
/// the proxy trusted.
#[test]
fn forwarding_through_an_untrusted_local_proxy_is_logged_once() {
    let throttle = |client_ip: IpBackend| {
        Throttle::builder(MemoryStore::default())
            .client_ip(client_ip)
            .rule(
                Rule::new("per-address", Quota::new(100, seconds(60)).unwrap())
                    .unwrap()
                    .callers(Callers::EVERYONE)
                    .by_client_ip(),
            )
            .build()
            .unwrap()
    };
    let run = |throttle: &Throttle, peer: &str, header: &str| {
        logs_of(|| {
            for _ in 0..3 {
                let req = request(&[(header, "203.0.113.7")], peer);
                assert!(matches!(
                    throttle.decide(None, &req, SystemTime::now()),
                    Checked::Done(Throttled::Allow(_))
                ));
            }
        })
    };
    let untrusting = throttle(IpBackend::new());
    let logs = run(&untrusting, "127.0.0.1:1", "x-forwarded-for");
    assert_eq!(logs.matches("trusts no proxy").count(), 1, "{logs}");
    assert!(logs.contains("x-forwarded-for"), "{logs}");
    assert!(
        run(&untrusting, "10.1.2.3:1", "forwarded").is_empty(),
        "once"
    );
    let fresh = throttle(IpBackend::new());
    let logs = run(&fresh, "[fd00::1]:1", "forwarded");
    assert_eq!(logs.matches("trusts no proxy").count(), 1, "{logs}");
    // IPv6 loopback, grouped per /64 by default.
    let loopback = throttle(IpBackend::new().ipv6_prefix(64).unwrap());
    let logs = run(&loopback, "[::1]:1", "x-forwarded-for");
    assert_eq!(logs.matches("trusts no proxy").count(), 1, "{logs}");
    let public = throttle(IpBackend::new());
    assert!(run(&public, "192.0.2.1:1", "x-forwarded-for").is_empty());
    let trusting = throttle(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap());
    assert!(run(&trusting, "127.0.0.1:1", "x-forwarded-for").is_empty());
}

/// An identity the client chose that no rule counts (rules for
/// AUTHENTICATED no longer take session cookies): said once.
#[test]
fn a_claimed_identity_no_rule_counts_is_logged_once() {
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(
            Rule::new("members", Quota::new(1, seconds(60)).unwrap())
                .unwrap()
                .callers(Callers::AUTHENTICATED),
        )
        .build()
        .unwrap();
    let gate = Gate::new(auth_core::SessionBackend::new("session").unwrap());
    let req = request(&[("cookie", "session=s-1")], "192.0.2.1:1");
    let Decision::Proceed(proceed) = gate.decide_blocking(&req) else {
        panic!("a session cookie is an identity");
    };
    let verdict = proceed.verdict.unwrap();
    let logs = logs_of(|| {
        for _ in 0..3 {
            assert!(matches!(
                throttle.decide(Some(&verdict), &req, SystemTime::now()),
                Checked::Done(Throttled::Allow(_))
            ));
        }
    });
    assert_eq!(
        logs.matches("add one for Callers::CLAIMED").count(),
        1,
        "{logs}"
    );
}

/// A shared store that fails its first `failing` calls, then answers
/// "allowed" (one cell per counter). `in_part`: those calls fail only in
/// part, and the rest's answer, a denial, stands.
#[derive(Debug)]
struct Recovering {
    failing: std::sync::atomic::AtomicUsize,
    in_part: bool,
}

impl auth_throttle::SharedStore for Recovering {
    fn apply(&self, batch: &auth_throttle::Batch) -> auth_throttle::StoreFuture {
        use std::sync::atomic::Ordering;
        let failing = self
            .failing
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let refused =
            auth_throttle::StoreError::Unavailable("I/O error: connection refused".to_owned());
        let answer = if failing && self.in_part {
            let cells = batch
                .counters()
                .iter()
                .map(|_| auth_throttle::Cell::new(false, 0, 1_000_000, 1_000_000))
                .collect();
            Ok(auth_throttle::Reply::new(1_800_000_000_000_000, cells).with_failure(refused))
        } else if failing {
            Err(refused)
        } else {
            let cells = batch
                .counters()
                .iter()
                .map(|_| auth_throttle::Cell::new(true, 1, 1_000_000, 0))
                .collect();
            Ok(auth_throttle::Reply::new(1_800_000_000_000_000, cells))
        };
        Box::pin(std::future::ready(answer))
    }

    fn kind(&self) -> &'static str {
        "recovering"
    }
}

/// A throttle of one rule (100 a minute, falling back to letting
/// through) over a [`Recovering`] store.
fn recovering(failing: usize, in_part: bool) -> Throttle {
    let store = auth_throttle::Store::shared(
        Recovering {
            failing: std::sync::atomic::AtomicUsize::new(failing),
            in_part,
        },
        SECRET,
    )
    .unwrap();
    Throttle::builder(store)
        .rule(Rule::new("r", Quota::new(100, seconds(60)).unwrap()).unwrap())
        .fallback(auth_throttle::Fallback::Allow)
        .build()
        .unwrap()
}

/// One visitor's request through `throttle`'s shared store.
fn run_shared(throttle: &Throttle) -> Throttled {
    let req = request(&[("cookie", "anon=v")], "192.0.2.1:1");
    let Checked::Store(step) = throttle.decide(Some(&verdict(&req)), &req, SystemTime::now())
    else {
        panic!("a shared store is asked");
    };
    poll_once(step.run())
}

/// The shared store's failure is logged with the error's kind, and its
/// recovery too, once, with the number of requests that fell back.
#[test]
fn a_store_failure_and_its_recovery_are_logged() {
    let throttle = recovering(3, false);
    let run = || assert!(matches!(run_shared(&throttle), Throttled::Allow(_)));
    let log = logs_of(|| {
        for _ in 0..5 {
            run();
        }
    });
    // At most one a second, across the process (another test may have
    // written this second's line).
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("store failed")).collect();
    assert!(failed.len() <= 1, "{log}");
    assert!(
        failed.iter().all(|l| l.contains("connection refused")),
        "{log}"
    );
    let recovered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("answering again"))
        .collect();
    assert_eq!(recovered.len(), 1, "{log}");
    assert!(recovered[0].contains("failed_requests=3"), "{log}");
    assert!(recovered[0].contains("recovering"), "{log}");
}

/// A store that failed in part while the rest denied: the denial is
/// enforced (no fallback lets it through), the failure is logged as one
/// and no recovery is claimed until an answer comes whole.
#[test]
fn a_store_failed_in_part_denies_and_recovers_later() {
    let throttle = recovering(2, true);
    let run = || run_shared(&throttle);
    let log = logs_of(|| {
        for _ in 0..2 {
            assert!(matches!(run(), Throttled::Deny(_)), "the denial stands");
        }
    });
    assert!(!log.contains("answering again"), "{log}");
    // Once a second, and no other test here fails in part.
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed in part"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("WARN") && failed[0].contains("connection refused"),
        "{log}"
    );
    let log = logs_of(|| assert!(matches!(run(), Throttled::Allow(_))));
    let recovered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("answering again"))
        .collect();
    assert_eq!(recovered.len(), 1, "{log}");
    assert!(recovered[0].contains("failed_requests=2"), "{log}");
}

/// A request that knows the route pattern it matched, as the adapters'
/// views do.
struct Routed(http::Request<()>);

impl auth_core::step::RequestView for Routed {
    fn for_each_header<'a>(
        &'a self,
        name: &str,
        f: &mut dyn FnMut(&'a [u8]) -> std::ops::ControlFlow<()>,
    ) {
        self.0.for_each_header(name, f);
    }

    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.0.peer_addr()
    }

    fn method(&self) -> &str {
        auth_core::step::RequestView::method(&self.0)
    }

    fn route(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some("/items/{id}".into())
    }
}

/// What is logged at `level` and above while `f` runs on this thread.
fn logs_at(level: tracing::Level, f: impl FnOnce()) -> String {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(level)
        .with_writer(move || Writer(Arc::clone(&writer)))
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// After a shared store's round trip, a refusal's line still names the
/// route: the step keeps it while that line's level is on (a 429 at
/// debug; a log-only warning at warn, with debug off).
#[test]
fn a_line_after_a_round_trip_names_the_route_at_its_own_level() {
    use auth_throttle::{Cell, Store};
    let denied = || Lying(vec![Cell::new(false, 0, 60_000_000, 30_000_000)]);
    for (log_only, level, message) in [
        (false, tracing::Level::DEBUG, "rate limit exceeded"),
        (true, tracing::Level::WARN, "(log-only: let through)"),
    ] {
        let throttle = Throttle::builder(Store::shared(denied(), SECRET).unwrap())
            .rule(Rule::new("r", Quota::new(2, seconds(60)).unwrap()).unwrap())
            .log_only(log_only)
            .build()
            .unwrap();
        let req = Routed(request(&[("cookie", "anon=v")], "192.0.2.1:1"));
        let run = || {
            let Checked::Store(step) =
                throttle.decide(Some(&verdict(&req.0)), &req, SystemTime::now())
            else {
                panic!("a shared store is asked");
            };
            let _ = poll_once(step.run());
        };
        // The log-only warning is written at most once a second in the
        // process (another test may have had this second's).
        let mut line = None;
        for _ in 0..3 {
            let log = logs_at(level, run);
            line = log.lines().find(|l| l.contains(message)).map(str::to_owned);
            if line.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1_100));
        }
        let line = line.unwrap_or_else(|| panic!("no {message:?} line"));
        // An anonymous id nobody signed: it could be a new session, and
        // the client chose it.
        let caller = "caller=anonymous|new_sessions|claimed";
        for field in ["rule=r", "route=\"/items/{id}\"", caller] {
            assert!(
                line.split_whitespace().any(|word| word == field),
                "no {field} in {line}"
            );
        }
    }
}
