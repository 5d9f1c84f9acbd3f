//! The failure budget through a gate, with the in-process store: refused
//! credentials spend it per client address, a spent budget refuses before
//! the backend is asked, and only refused credentials count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::step::{Outcome, RequestView};
use auth_core::{AuthData, AuthError, Backend, Credential, Decision, Gate, PeerAddr, Source};
use auth_core::{Gated, http};
use auth_throttle::{FailureBudget, MemoryStore, Quota, Rule, Throttle};

/// `Bearer good` is alice, `Bearer scope` is alice without the scope the
/// route needs (403), any other bearer a forged token (401), `Bearer ` a
/// malformed one (400), none missing (401). Counts its calls.
#[derive(Default)]
struct Tokens {
    calls: AtomicUsize,
}

impl Backend for Tokens {
    fn authenticate(&self, req: &dyn RequestView, _now: SystemTime) -> Outcome {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let header = req
            .header("authorization")
            .map(|v| std::str::from_utf8(v).unwrap_or(""));
        if header == Some("Bearer good") {
            return Outcome::ok(AuthData::bare(Source::Custom("test"), "alice"));
        }
        Outcome::Done(match header {
            None => Err(AuthError::MissingCredentials(Credential::Bearer)),
            Some("Bearer scope") => Err(AuthError::InsufficientScope {
                required: "admin".into(),
            }),
            Some("Bearer ") => Err(AuthError::InvalidRequest {
                credential: Credential::Bearer,
                reason: "empty token",
            }),
            Some(_) => Err(AuthError::invalid_credentials(Credential::Bearer, "forged")),
        })
    }
}

fn request(authorization: Option<&str>, peer: &str) -> http::Request<()> {
    let mut req = http::Request::builder();
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
    req
}

fn status(gate: &Gate, req: &http::Request<()>, at: SystemTime) -> u16 {
    match gate.decide(req, at) {
        Gated::Done(Decision::Proceed(_)) => 200,
        Gated::Done(Decision::Refuse(refusal)) => refusal.status().as_u16(),
        Gated::Pending(_) => panic!("the in-process store decides at once"),
    }
}

fn gated(budget: FailureBudget) -> (Gate, Arc<Tokens>) {
    let tokens = Arc::new(Tokens::default());
    let throttle = Throttle::builder(MemoryStore::default())
        .failure_budget(budget)
        .build()
        .unwrap();
    (Gate::new(Arc::clone(&tokens)).throttle(throttle), tokens)
}

fn three_per_minute() -> FailureBudget {
    FailureBudget::new(Quota::new(3, Duration::from_secs(60)).unwrap())
}

#[test]
fn a_spent_budget_refuses_before_the_backend_is_asked() {
    let (gate, tokens) = gated(three_per_minute());
    let now = SystemTime::now();
    let forged = request(Some("Bearer forged"), "192.0.2.1:1000");
    let malformed = request(Some("Bearer "), "192.0.2.1:1001");
    assert_eq!(status(&gate, &forged, now), 401);
    assert_eq!(status(&gate, &malformed, now), 400);
    assert_eq!(status(&gate, &forged, now), 401);
    assert_eq!(tokens.calls.load(Ordering::Relaxed), 3);

    // Spent: refused before any credential is read, a valid one included.
    let good = request(Some("Bearer good"), "192.0.2.1:1002");
    for req in [&forged, &good] {
        let Gated::Done(Decision::Refuse(refusal)) = gate.decide(req, now) else {
            panic!("not refused");
        };
        assert_eq!(refusal.status(), 429);
        assert_eq!(refusal.header("retry-after").unwrap(), "20");
        assert_eq!(
            refusal.header("ratelimit-policy").unwrap(),
            "\"failed-credentials\";q=3;w=60"
        );
        assert_eq!(
            refusal.header("ratelimit").unwrap(),
            "\"failed-credentials\";r=0;t=60"
        );
    }
    assert_eq!(tokens.calls.load(Ordering::Relaxed), 3, "not asked");

    // Other addresses are unaffected.
    let other = request(Some("Bearer good"), "192.0.2.2:1000");
    assert_eq!(status(&gate, &other, now), 200);
    // One interval later, one more credential may be tried.
    let later = now + Duration::from_secs(20);
    assert_eq!(status(&gate, &good, later), 200);
    assert_eq!(status(&gate, &forged, later), 401);
    assert_eq!(status(&gate, &good, later), 429);
}

#[test]
fn only_refused_credentials_count_by_default() {
    let (gate, _) = gated(three_per_minute());
    let now = SystemTime::now();
    let peer = "192.0.2.1:1000";
    for _ in 0..10 {
        assert_eq!(status(&gate, &request(None, peer), now), 401);
        assert_eq!(
            status(&gate, &request(Some("Bearer scope"), peer), now),
            403
        );
        assert_eq!(status(&gate, &request(Some("Bearer good"), peer), now), 200);
    }
    // Missing credentials count when the application says so.
    let (gate, _) = gated(three_per_minute().counting(|e| e.status() == 401));
    for expected in [401, 401, 401, 429] {
        assert_eq!(status(&gate, &request(None, peer), now), expected);
    }
}

#[test]
fn ipv6_clients_share_a_budget_per_64() {
    let (gate, _) = gated(three_per_minute());
    let now = SystemTime::now();
    for host in 1..=3 {
        let forged = request(Some("Bearer forged"), &format!("[2001:db8::{host}]:1"));
        assert_eq!(status(&gate, &forged, now), 401);
    }
    let neighbour = request(Some("Bearer good"), "[2001:db8::ffff:1]:1");
    assert_eq!(status(&gate, &neighbour, now), 429);
    let elsewhere = request(Some("Bearer good"), "[2001:db8:0:1::1]:1");
    assert_eq!(status(&gate, &elsewhere, now), 200);
}

#[test]
fn log_only_counts_but_never_refuses() {
    let tokens = Arc::new(Tokens::default());
    let throttle = Throttle::builder(MemoryStore::default())
        .failure_budget(three_per_minute())
        .log_only(true)
        .build()
        .unwrap();
    let gate = Gate::new(Arc::clone(&tokens)).throttle(throttle);
    let now = SystemTime::now();
    let forged = request(Some("Bearer forged"), "192.0.2.1:1");
    for _ in 0..10 {
        assert_eq!(status(&gate, &forged, now), 401);
    }
    assert_eq!(tokens.calls.load(Ordering::Relaxed), 10);
}

#[test]
fn the_budget_is_named_apart_from_the_rules() {
    let quota = Quota::new(3, Duration::from_secs(60)).unwrap();
    let clash = Throttle::builder(MemoryStore::default())
        .rule(Rule::new("failed-credentials", quota).unwrap())
        .failure_budget(FailureBudget::new(quota))
        .build();
    assert!(clash.is_err());
    let renamed = FailureBudget::new(quota).id("bad-logins").unwrap();
    let throttle = Throttle::builder(MemoryStore::default())
        .rule(Rule::new("failed-credentials", quota).unwrap())
        .failure_budget(renamed)
        .build()
        .unwrap();
    assert_eq!(
        throttle.failure_budget().map(|b| b.quota().limit()),
        Some(3)
    );
    assert!(FailureBudget::new(quota).id("not an id").is_err());
}

/// A client that spends the budget again and again meets the escalation:
/// its wait grows to the slower step's rate, and no further.
#[test]
fn repeated_exhaustion_escalates_the_wait() {
    let budget = FailureBudget::new(Quota::new(2, Duration::from_secs(10)).unwrap())
        .escalate(Quota::new(3, Duration::from_secs(60)).unwrap())
        .unwrap();
    let (gate, tokens) = gated(budget);
    let forged = request(Some("Bearer forged"), "192.0.2.1:1");
    let start = SystemTime::now();
    let at = |seconds| start + Duration::from_secs(seconds);
    let answer = |seconds| match gate.decide(&forged, at(seconds)) {
        Gated::Done(Decision::Refuse(refusal)) => (
            refusal.status().as_u16(),
            refusal
                .header("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            refusal
                .header("ratelimit")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned()),
        ),
        other => panic!("{other:?}"),
    };
    let refused = |_: u64| (401, None, None);
    let waits =
        |retry: &str, step: &str| (429, Some(retry.to_owned()), Some(format!("\"{step}\"")));
    // The budget: 2, then one every 5 s.
    assert_eq!(answer(0), refused(0));
    assert_eq!(answer(0), refused(0));
    assert_eq!(answer(0), waits("5", "failed-credentials"));
    assert_eq!(answer(5), refused(5));
    // The third refusal spent the escalation's 3 too: one every 20 s now.
    assert_eq!(answer(10), waits("10", "failed-credentials-2"));
    assert_eq!(answer(20), refused(20));
    assert_eq!(answer(25), waits("15", "failed-credentials-2"));
    assert_eq!(answer(40), refused(40));
    assert_eq!(
        tokens.calls.load(Ordering::Relaxed),
        5,
        "refused before the backend"
    );

    // Each step slower than the one before.
    let quota = |limit, secs| Quota::new(limit, Duration::from_secs(secs)).unwrap();
    let budget = FailureBudget::new(quota(10, 10));
    assert!(budget.clone().escalate(quota(10, 10)).is_err());
    assert!(
        budget.clone().escalate(quota(100, 60)).is_err(),
        "0.6 s < 1 s"
    );
    let renamed = budget
        .escalate(quota(30, 600))
        .unwrap()
        .id("logins")
        .unwrap();
    assert!(format!("{renamed:?}").contains("logins"));
}

/// A shared store that never answers, or answers with a year's wait.
#[derive(Debug)]
enum Store {
    Silent,
    YearLong,
}

impl auth_throttle::SharedStore for Store {
    fn apply(&self, batch: &auth_throttle::Batch) -> auth_throttle::StoreFuture {
        match self {
            Store::Silent => Box::pin(std::future::pending()),
            Store::YearLong => {
                let year = 365 * 24 * 3_600 * 1_000_000;
                let cells = batch
                    .counters()
                    .iter()
                    .map(|_| auth_throttle::Cell::new(false, 0, year, year))
                    .collect();
                let reply = auth_throttle::Reply::new(1_800_000_000_000_000, cells);
                Box::pin(std::future::ready(Ok(reply)))
            }
        }
    }
}

fn shared(store: Store) -> (Gate, Arc<Tokens>) {
    let tokens = Arc::new(Tokens::default());
    let store = auth_throttle::Store::shared(store, b"a secret of sixteen+ bytes").unwrap();
    let throttle = Throttle::builder(store)
        .failure_budget(three_per_minute())
        .build()
        .unwrap();
    (Gate::new(Arc::clone(&tokens)).throttle(throttle), tokens)
}

/// A client that hangs up while the shared store is asked (its request's
/// future dropped with the round trip) is counted all the same.
#[test]
fn hanging_up_during_the_charge_does_not_escape_the_budget() {
    let (gate, tokens) = shared(Store::Silent);
    let now = SystemTime::now();
    let forged = request(Some("Bearer forged"), "192.0.2.1:1");
    for _ in 0..3 {
        match gate.decide(&forged, now) {
            // The charge's round trip: dropped, as a hang-up drops it.
            Gated::Pending(pending) => drop(pending),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(status(&gate, &forged, now), 429);
    assert_eq!(tokens.calls.load(Ordering::Relaxed), 3);
}

/// A store that says "a year" locks nobody out for longer than the
/// budget's window, here or in what the client is told.
#[test]
fn a_store_cannot_lock_an_address_out_beyond_the_window() {
    let (gate, _) = shared(Store::YearLong);
    let now = SystemTime::now();
    let forged = request(Some("Bearer forged"), "192.0.2.1:1");
    let Gated::Pending(pending) = gate.decide(&forged, now) else {
        panic!("a shared store is asked");
    };
    let Decision::Refuse(refused) = pending.drive_blocking(&forged) else {
        panic!("a forged token is refused");
    };
    assert_eq!(refused.status(), 401);
    let Gated::Done(Decision::Refuse(refusal)) = gate.decide(&forged, now) else {
        panic!("spent");
    };
    assert_eq!(refusal.status(), 429);
    // Taken as "spent": the next credential after one interval, not a
    // year.
    assert_eq!(refusal.header("retry-after").unwrap(), "20");
    let good = request(Some("Bearer good"), "192.0.2.1:1");
    assert_eq!(status(&gate, &good, now + Duration::from_secs(19)), 429);
    assert_eq!(status(&gate, &good, now + Duration::from_secs(20)), 200);
}

/// A CORS preflight carries no credential: a spent budget does not refuse
/// it (the browser would report a CORS error, not the 429).
#[test]
fn a_preflight_passes_a_spent_budget() {
    let (gate, _) = gated(three_per_minute());
    let now = SystemTime::now();
    let peer = "192.0.2.1:1";
    for _ in 0..3 {
        assert_eq!(
            status(&gate, &request(Some("Bearer forged"), peer), now),
            401
        );
    }
    let mut preflight = http::Request::builder()
        .method("OPTIONS")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .body(())
        .unwrap();
    preflight
        .extensions_mut()
        .insert(PeerAddr(peer.parse().unwrap()));
    assert_eq!(status(&gate, &preflight, now), 200);
    assert_eq!(status(&gate, &request(Some("Bearer good"), peer), now), 429);
}

/// A request whose client address cannot be found (the server gives no
/// peer address) is refused for it (500) when enforcing; in log-only mode
/// nothing is refused, the budget and the rules by address included.
#[test]
fn log_only_refuses_nothing_when_the_address_is_unknown() {
    let gate = |log_only: bool| {
        let limits = Throttle::builder(MemoryStore::default())
            .rule(
                Rule::new(
                    "by-address",
                    Quota::new(5, Duration::from_secs(60)).unwrap(),
                )
                .unwrap()
                .by_client_ip(),
            )
            .failure_budget(FailureBudget::new(
                Quota::new(3, Duration::from_secs(60)).unwrap(),
            ))
            .log_only(log_only)
            .build()
            .unwrap();
        Gate::new(Tokens::default()).throttle(limits)
    };
    let no_peer = http::Request::builder()
        .header("authorization", "Bearer good")
        .body(())
        .unwrap();
    let now = SystemTime::now();
    assert_eq!(status(&gate(false), &no_peer, now), 500);
    // More than the rule's 5 and the budget's 3: none refused.
    let log_only = gate(true);
    let good: Vec<u16> = (0..6).map(|_| status(&log_only, &no_peer, now)).collect();
    assert_eq!(good, [200; 6]);
    let forged = http::Request::builder()
        .header("authorization", "Bearer forged")
        .body(())
        .unwrap();
    let forged: Vec<u16> = (0..4).map(|_| status(&log_only, &forged, now)).collect();
    assert_eq!(forged, [401; 4], "not counted, not refused");
}
