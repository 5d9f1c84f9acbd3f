//! The throttle's Redis store against a real Redis (Debian's
//! `redis-server`, started on a free port and stopped after): servers
//! sharing one limit, an outage and its fallbacks, skewed clocks, one round
//! trip per request, and the Lua script held to the Rust arithmetic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use auth_axum::AuthLayer;
use auth_core::{
    Algorithm, AnonSessionBackend, Decision, Gate, IpBackend, JwtBackend, JwtValidator,
    TokenIssuer, Verdict,
};
use auth_tests::redis::RedisServer;
use auth_tests::serve_axum;
use auth_throttle::{
    Callers, Cell, Checked, FailureBudget, Fallback, MemoryStore, Quota, RedisStore, Reply, Rule,
    Store, StoreStep, Throttle, Throttled,
};
use proptest::prelude::*;

const SECRET: &[u8] = b"a secret the servers share, 32b!";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Anonymous sessions, any id taken back (so that tests name visitors).
fn anon_backend() -> AnonSessionBackend {
    AnonSessionBackend::builder("anon")
        .accept_ids(|_| true)
        .build()
        .unwrap()
}

fn redis_store(url: &str, timeout: Duration) -> RedisStore {
    RedisStore::builder(url, SECRET)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// 3 requests per 600 s per anonymous session.
fn visitors(store: impl Into<Store>, fallback: Fallback) -> Throttle {
    Throttle::builder(store)
        .rule(
            Rule::new("visitors", Quota::new(3, Duration::from_secs(600)).unwrap())
                .unwrap()
                .callers(Callers::ANONYMOUS),
        )
        .fallback(fallback)
        .build()
        .unwrap()
}

/// A server: anonymous sessions, then the throttle, then "ok".
fn server(throttle: Throttle) -> String {
    let anon = anon_backend();
    serve_axum(
        axum::Router::new()
            .route("/limited", axum::routing::get(|| async { "ok" }))
            .layer(AuthLayer::new(anon).throttle(throttle)),
    )
}

fn status(base: &str, visitor: &str) -> (u16, Option<String>) {
    let agent = auth_tests::agent();
    let response = agent
        .get(format!("{base}/limited"))
        .header("cookie", format!("anon={visitor}"))
        .call()
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

fn statuses(bases: &[&str], visitor: &str) -> Vec<u16> {
    bases.iter().map(|base| status(base, visitor).0).collect()
}

/// A connection to the Redis at `url`.
async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The keys matching `pattern`, sorted.
fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = runtime().block_on(async {
        let mut connection = connect(url).await;
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await
            .unwrap()
    });
    keys.sort();
    keys
}

fn commandstat(url: &str, command: &str) -> u64 {
    runtime().block_on(async {
        let mut connection = connect(url).await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    })
}

#[test]
fn two_servers_share_one_limit_in_redis_but_not_in_process() {
    let redis = RedisServer::start();
    let (a, b) = (
        server(visitors(
            redis_store(&redis.url(), Duration::from_millis(500)),
            Fallback::Deny,
        )),
        server(visitors(
            redis_store(&redis.url(), Duration::from_millis(500)),
            Fallback::Deny,
        )),
    );
    assert_eq!(
        statuses(&[&a, &b, &a, &b, &a], "shared"),
        [200, 200, 200, 429, 429]
    );
    // In process, each server counts its own requests: the same five
    // requests are all let through.
    let (c, d) = (
        server(visitors(MemoryStore::default(), Fallback::Deny)),
        server(visitors(MemoryStore::default(), Fallback::Deny)),
    );
    assert_eq!(statuses(&[&c, &d, &c, &d, &c], "shared"), [200; 5]);
}

/// A failure budget of `first` refused credentials per client address,
/// escalating to `then`.
fn budget(first: (u64, u64), then: (u64, u64)) -> FailureBudget {
    let quota = |(count, secs)| Quota::new(count, Duration::from_secs(secs)).unwrap();
    FailureBudget::new(quota(first))
        .escalate(quota(then))
        .unwrap()
}

/// A server: HS256 tokens, `budget` per client address (X-Forwarded-For
/// from loopback), counted in `store`.
fn budget_server(store: RedisStore, budget: FailureBudget) -> String {
    let jwt = JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .build()
            .unwrap(),
    );
    let throttle = Throttle::builder(store)
        .failure_budget(budget)
        .client_ip(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    serve_axum(
        axum::Router::new()
            .route("/api", axum::routing::get(|| async { "ok" }))
            .layer(AuthLayer::new(jwt).throttle(throttle)),
    )
}

fn bearer(base: &str, client: &str, token: &str) -> u16 {
    bearer_waits(base, client, token).0
}

/// The status, and the `Retry-After` seconds if any.
fn bearer_waits(base: &str, client: &str, token: &str) -> (u16, Option<u64>) {
    let response = auth_tests::agent()
        .get(format!("{base}/api"))
        .header("x-forwarded-for", client)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), retry)
}

#[test]
fn servers_share_a_failure_budget_in_redis() {
    let redis = RedisServer::start();
    let store = || redis_store(&redis.url(), Duration::from_secs(2));
    let budget = || budget((3, 600), (5, 6_000));
    let (a, b) = (
        budget_server(store(), budget()),
        budget_server(store(), budget()),
    );
    let forged = "eyJhbGciOiJIUzI1NiJ9.e30.AAAA";
    let valid = TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue(serde_json::json!({"sub": "alice"}), SystemTime::now())
        .unwrap();
    let attacker = "198.51.100.66";
    let statuses: Vec<u16> = [&a, &b, &a, &b, &a, &b, &a]
        .iter()
        .map(|base| bearer(base, attacker, forged))
        .collect();
    // Three spent in Redis; server a learns it is spent from its own next
    // charge (one more refused credential), server b from its last one.
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429, 429]);
    assert_eq!(bearer(&a, attacker, &valid), 429);
    assert_eq!(bearer(&b, attacker, &valid), 429);
    assert_eq!(bearer(&a, "198.51.100.67", &valid), 200, "another address");
    // In Redis: one counter per step, under a hashed key (one hash tag).
    let keys = redis_keys(&redis.url(), "*failed-credentials*");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].ends_with(":failed-credentials") && keys[1].ends_with(":failed-credentials-2"));
    assert_eq!(
        keys[0].split(':').nth(1),
        keys[1].split(':').nth(1),
        "one caller"
    );
    assert!(!keys.concat().contains(attacker));
}

/// A server whose copy of the budget lags behind Redis's lets one more
/// refused credential through; Redis then denies the first step and
/// stores nothing. That server's copy of the next step must stay what
/// Redis holds, not the unit Redis did not store: its `Retry-After` is
/// the other server's.
#[test]
fn a_charge_redis_denied_leaves_the_next_step_as_stored() {
    let redis = RedisServer::start();
    // 2 per 600 s (one every 300 s), then 3 per 6,000 s (one every
    // 2,000 s).
    let budget = || budget((2, 600), (3, 6_000));
    let store = || redis_store(&redis.url(), Duration::from_secs(2));
    let (a, b) = (
        budget_server(store(), budget()),
        budget_server(store(), budget()),
    );
    let forged = "eyJhbGciOiJIUzI1NiJ9.e30.AAAA";
    let attacker = "198.51.100.70";
    // Redis: the first step spent by a and b; a, one refusal behind, lets
    // a third through, which Redis denies on the first step and allows on
    // the second (2 of 3 spent: not stored).
    let statuses: Vec<u16> = [&a, &b, &a]
        .iter()
        .map(|base| bearer(base, attacker, forged))
        .collect();
    assert_eq!(statuses, [401, 401, 401]);
    let (status_a, wait_a) = bearer_waits(&a, attacker, forged);
    let (status_b, wait_b) = bearer_waits(&b, attacker, forged);
    assert_eq!((status_a, status_b), (429, 429));
    let (wait_a, wait_b) = (wait_a.unwrap(), wait_b.unwrap());
    // The first step's wait (300 s): the second still has one left.
    assert!(wait_a <= 300, "a waits {wait_a} s, b {wait_b} s");
    assert!(
        wait_a.abs_diff(wait_b) <= 1,
        "a waits {wait_a} s, b {wait_b} s"
    );
}

#[test]
fn one_round_trip_per_request() {
    let redis = RedisServer::start();
    let throttle = Throttle::builder(redis_store(&redis.url(), Duration::from_millis(500)))
        .rule(Rule::new("a", Quota::new(1000, Duration::from_secs(60)).unwrap()).unwrap())
        .rule(Rule::new("b", Quota::new(500, Duration::from_secs(60)).unwrap()).unwrap())
        .rule(
            Rule::new("c", Quota::new(800, Duration::from_secs(60)).unwrap())
                .unwrap()
                .by_client_ip(),
        )
        .build()
        .unwrap();
    let base = server(throttle);
    // The first request finds no script (NOSCRIPT) and sends it whole
    // (EVAL), which loads it for the next.
    assert_eq!(status(&base, "warm").0, 200);
    assert_eq!(commandstat(&redis.url(), "eval"), 1);
    let before = commandstat(&redis.url(), "evalsha");
    for i in 0..20 {
        assert_eq!(status(&base, &format!("v{i}")).0, 200);
    }
    assert_eq!(
        commandstat(&redis.url(), "evalsha") - before,
        20,
        "three rules, one EVALSHA per request"
    );
    assert_eq!(commandstat(&redis.url(), "eval"), 1);
    // Redis forgets its scripts (SCRIPT FLUSH, a restart): the next
    // request still counts in Redis, by EVAL, and the one after by EVALSHA.
    runtime().block_on(async {
        let mut connection = connect(&redis.url()).await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut connection)
            .await
            .unwrap();
    });
    assert_eq!(status(&base, "after-flush").0, 200);
    assert_eq!(commandstat(&redis.url(), "eval"), 2, "EVAL after NOSCRIPT");
    let before = commandstat(&redis.url(), "evalsha");
    assert_eq!(status(&base, "after-flush").0, 200);
    assert_eq!(commandstat(&redis.url(), "evalsha") - before, 1);
}

#[test]
fn an_outage_gives_the_fallback_in_time_and_redis_is_used_again_after() {
    let mut redis = RedisServer::start();
    let timeout = Duration::from_millis(100);
    let in_process = server(visitors(
        redis_store(&redis.url(), timeout),
        Fallback::Memory,
    ));
    let allow = server(visitors(
        redis_store(&redis.url(), timeout),
        Fallback::Allow,
    ));
    let deny = server(visitors(redis_store(&redis.url(), timeout), Fallback::Deny));
    // Each counts in Redis (a first connect that outlasts the timeout
    // falls back, and the next request tries again).
    for base in [&in_process, &allow, &deny] {
        counted_in_redis(&redis, base, "before");
    }
    redis.stop();
    let started = Instant::now();
    // In process: a fresh count (3 allowed) while Redis is away.
    assert_eq!(
        statuses(&[in_process.as_str(); 4], "during"),
        [200, 200, 200, 429]
    );
    // Allow: uncounted. Deny: 503, retry in a second.
    assert_eq!(statuses(&[allow.as_str(); 5], "during"), [200; 5]);
    for _ in 0..3 {
        assert_eq!(status(&deny, "during"), (503, Some("1".into())));
    }
    // Twelve requests, none waited much past the timeout.
    assert!(
        started.elapsed() < 12 * (timeout + Duration::from_millis(300)),
        "{:?}",
        started.elapsed()
    );
    redis.restart().unwrap();
    // Each server reconnects within a few seconds: counted in Redis again.
    for base in [&in_process, &allow, &deny] {
        counted_in_redis(&redis, base, "after");
    }
}

/// Sends requests to `base` (visitors `<visitor>-<n>`) until one is
/// counted in Redis (a request that reaches Redis shows in its command
/// statistics) and allowed, within 10 s. One that reached Redis after its
/// timeout got the fallback: the next one tries again.
fn counted_in_redis(redis: &RedisServer, base: &str, visitor: &str) {
    let started = Instant::now();
    for n in 0.. {
        let counted = commandstat(&redis.url(), "evalsha");
        let (code, _) = status(base, &format!("{visitor}-{n}"));
        if commandstat(&redis.url(), "evalsha") > counted && code == 200 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{base}: no request was counted in Redis and answered in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A "Redis" that accepts connections and never answers (a hung server, a
/// path that drops packets): an in-process double, since a real Redis
/// cannot be made to hang. The first request waits out the timeout; for
/// the backoff after it, requests go straight to the fallback instead of
/// each waiting the timeout again.
#[test]
fn a_silent_redis_costs_one_timeout_per_backoff() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(200);
    let store = |backoff| {
        RedisStore::builder(&url, SECRET)
            .timeout(timeout)
            .backoff(backoff)
            .build()
            .unwrap()
    };
    let run = |throttle: &Throttle, requests: usize| {
        let verdict = anonymous("silent");
        let started = Instant::now();
        for _ in 0..requests {
            let decided = decide(throttle, &verdict, SystemTime::now());
            assert!(matches!(decided, Throttled::Allow(_)), "{decided:?}");
        }
        started.elapsed()
    };
    let backing_off = visitors(store(Duration::from_secs(30)), Fallback::Allow);
    let took = run(&backing_off, 10);
    assert!(
        took >= timeout,
        "the first request waited for an answer: {took:?}"
    );
    assert!(took < 3 * timeout, "ten requests, one timeout: {took:?}");
    // Without a backoff, every request waits the timeout.
    let asking = visitors(store(Duration::ZERO), Fallback::Allow);
    let took = run(&asking, 3);
    assert!(took >= 3 * timeout, "{took:?}");
}

#[test]
fn a_blocking_driver_outside_a_runtime_gets_the_fallback_not_a_panic() {
    let redis = RedisServer::start();
    // One store for all: a call outside a runtime must not start its
    // backoff for the calls inside one.
    let store = redis_store(&redis.url(), Duration::from_secs(1));
    let gate = |fallback| {
        let throttle = visitors(store.clone(), fallback);
        Gate::new(anon_backend()).throttle(throttle)
    };
    let req = http::Request::builder()
        .header("cookie", "anon=plain-thread")
        .body(())
        .unwrap();
    // No runtime entered on this thread: the Redis client cannot run.
    assert!(tokio::runtime::Handle::try_current().is_err());
    let Decision::Refuse(refusal) = gate(Fallback::Deny).decide_blocking(&req) else {
        panic!("a store that cannot run, with Fallback::Deny, refuses");
    };
    assert_eq!(refusal.status(), 503);
    assert!(matches!(
        gate(Fallback::Allow).decide_blocking(&req),
        Decision::Proceed(_)
    ));
    // Inside a runtime the same call counts in Redis.
    let entered = runtime().enter();
    assert!(matches!(
        gate(Fallback::Deny).decide_blocking(&req),
        Decision::Proceed(_)
    ));
    drop(entered);
    assert_eq!(commandstat(&redis.url(), "evalsha"), 1);
}

/// The decision of `throttle` for an anonymous caller at `now`, driving a
/// store step on the test runtime.
fn decide(throttle: &Throttle, verdict: &Verdict, now: SystemTime) -> Throttled {
    let req = http::Request::new(());
    match throttle.decide(Some(verdict), &req, now) {
        Checked::Done(throttled) => throttled,
        Checked::Store(step) => runtime().block_on(step.run()),
    }
}

fn anonymous(id: &str) -> Verdict {
    let gate = Gate::new(anon_backend());
    let req = http::Request::builder()
        .header("cookie", format!("anon={id}"))
        .body(())
        .unwrap();
    match gate.decide_blocking(&req) {
        Decision::Proceed(proceed) => proceed.verdict.unwrap(),
        other => panic!("{other:?}"),
    }
}

fn allowed(throttled: &Throttled) -> bool {
    matches!(throttled, Throttled::Allow(_))
}

#[test]
fn servers_with_skewed_clocks_make_the_same_decisions() {
    let redis = RedisServer::start();
    let now = SystemTime::now();
    let ahead = now + Duration::from_secs(300);
    let (a, b) = (
        visitors(
            redis_store(&redis.url(), Duration::from_secs(1)),
            Fallback::Deny,
        ),
        visitors(
            redis_store(&redis.url(), Duration::from_secs(1)),
            Fallback::Deny,
        ),
    );
    let visitor = anonymous("skewed");
    let decisions: Vec<bool> = [(&a, now), (&b, ahead), (&a, now), (&b, ahead), (&a, now)]
        .into_iter()
        .map(|(throttle, at)| allowed(&decide(throttle, &visitor, at)))
        .collect();
    assert_eq!(decisions, [true, true, true, false, false]);
    // In process, the clock the server is given is the clock counted by:
    // five minutes ahead, a burst already spent is whole again.
    let local = visitors(MemoryStore::default(), Fallback::Deny);
    let spent: Vec<bool> = (0..4)
        .map(|_| allowed(&decide(&local, &visitor, now)))
        .collect();
    assert_eq!(spent, [true, true, true, false]);
    assert!(allowed(&decide(&local, &visitor, ahead)));
}

/// One step of a generated sequence: which caller, how far the clock
/// moved (µs).
#[derive(Clone, Debug)]
struct Request {
    caller: u8,
    advance: u64,
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec(
        (
            0u8..3,
            prop_oneof![Just(0u64), 0u64..2_000_000, 0u64..40_000_000],
        )
            .prop_map(|(caller, advance)| Request { caller, advance }),
        1..40,
    )
}

/// What a client sees of a decision: the status and every header.
fn seen(throttled: Throttled) -> (u16, Vec<(String, String)>) {
    match throttled {
        Throttled::Allow(allowance) => (
            200,
            allowance
                .as_slice()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect(),
        ),
        Throttled::Deny(refusal) => (
            refusal.status().as_u16(),
            refusal
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect(),
        ),
    }
}

/// Runs the store's script for the step's batch on `connection` at an
/// explicit time (the script takes one in `ARGV[1]` instead of `TIME`).
fn run_at(
    connection: &mut redis::aio::MultiplexedConnection,
    step: StoreStep,
    now: u64,
) -> Throttled {
    let counters = step.batch().counters();
    let keys: Vec<String> = counters
        .iter()
        .map(|c| format!("crosscheck:{{{}}}:{}", c.caller(), c.rule()))
        .collect();
    let rates: Vec<u64> = counters
        .iter()
        .flat_map(|c| [c.interval(), c.tolerance()])
        .collect();
    let reply: Vec<i64> = runtime()
        .block_on(
            redis::cmd("EVAL")
                .arg(RedisStore::SCRIPT)
                .arg(keys.len())
                .arg(&keys)
                .arg(now)
                .arg(&rates)
                .query_async(connection),
        )
        .unwrap();
    let unsigned = |v: i64| u64::try_from(v).unwrap();
    let cells = reply[2..]
        .chunks_exact(4)
        .map(|c| Cell::new(c[0] == 1, unsigned(c[1]), unsigned(c[2]), unsigned(c[3])))
        .collect();
    step.finish(Ok(Reply::new(unsigned(reply[1]), cells)))
}

#[test]
fn the_lua_script_and_the_rust_arithmetic_agree() {
    let redis = RedisServer::start();
    let connection = runtime().block_on(async { connect(&redis.url()).await });
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let case = std::sync::atomic::AtomicU64::new(0);
    let quotas = (1u64..8, 1u64..30, 1u64..8).prop_map(|(limit, window, burst)| {
        Quota::new(limit, Duration::from_secs(window))
            .unwrap()
            .burst(burst)
            .unwrap()
    });
    runner
        .run(
            &(quotas.clone(), quotas, requests()),
            |(q1, q2, sequence)| {
                let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut connection = connection.clone();
                let rules = |store: Store| {
                    Throttle::builder(store)
                        .rule(Rule::new("one", q1).unwrap())
                        .rule(Rule::new("two", q2).unwrap().callers(Callers::ANONYMOUS))
                        .legacy_headers(true)
                        .build()
                        .unwrap()
                };
                let memory = rules(MemoryStore::default().into());
                let shared = rules(redis_store(&redis.url(), Duration::from_secs(1)).into());
                let verdicts: Vec<Verdict> = (0..3)
                    .map(|c| anonymous(&format!("case{case}-{c}")))
                    .collect();
                let mut now: u64 = 1_800_000_000_000_000;
                let req = http::Request::new(());
                for request in sequence {
                    now += request.advance;
                    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(now);
                    let verdict = &verdicts[usize::from(request.caller)];
                    let Checked::Done(rust) = memory.decide(Some(verdict), &req, at) else {
                        panic!("the in-process store decides at once")
                    };
                    let Checked::Store(step) = shared.decide(Some(verdict), &req, at) else {
                        panic!("the shared store is asked")
                    };
                    let lua = run_at(&mut connection, step, now);
                    prop_assert_eq!(seen(rust), seen(lua), "at {}", now);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn hashed_keys_only_reach_redis() {
    let redis = RedisServer::start();
    let store = redis_store(&redis.url(), Duration::from_secs(1));
    let throttle = visitors(store, Fallback::Deny);
    let secret_id = "session-id-that-must-not-leak";
    let verdict = anonymous(secret_id);
    assert!(allowed(&decide(&throttle, &verdict, SystemTime::now())));
    let keys = redis_keys(&redis.url(), "*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains(secret_id) && keys[0].starts_with("auth-throttle:{"));
    let ttl: i64 = runtime().block_on(async {
        let mut connection = connect(&redis.url()).await;
        redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut connection)
            .await
            .unwrap()
    });
    assert!(
        ttl > 0 && ttl <= 200_000,
        "expires by itself when full again: {ttl}"
    );
}

/// A certificate authority and a server certificate for 127.0.0.1,
/// written to a directory of their own: (ca.pem, cert.pem, key.pem).
fn tls_files() -> (tempdir::Dir, [String; 3]) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let dir = tempdir::Dir::new();
    let files = [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ]
    .map(|(name, pem)| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    });
    (dir, files)
}

/// A directory removed when dropped.
mod tempdir {
    pub(crate) struct Dir(std::path::PathBuf);

    impl Dir {
        pub(crate) fn new() -> Self {
            let path = std::env::temp_dir().join(format!("auth-tests-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&path).unwrap();
            Dir(path)
        }

        pub(crate) fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `rediss://` with a password: two servers share one limit over TLS; a
/// certificate not signed by the trusted roots, or a wrong password, is a
/// failed store (the fallback applies), never a 500.
#[test]
fn shared_limits_over_tls_with_a_password() {
    let (_dir, [ca, cert, key]) = tls_files();
    let redis = RedisServer::start_tls(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret-pass",
    ]);
    let url = |password: &str| format!("rediss://:{password}@127.0.0.1:{}", redis.port());
    let ca_pem = std::fs::read(&ca).unwrap();
    let store = |password: &str, roots: Vec<u8>| {
        RedisStore::builder(&url(password), SECRET)
            .timeout(Duration::from_secs(2))
            .tls_root_certificates(roots)
            .build()
            .unwrap()
    };
    let (a, b) = (
        server(visitors(
            store("s3cret-pass", ca_pem.clone()),
            Fallback::Deny,
        )),
        server(visitors(
            store("s3cret-pass", ca_pem.clone()),
            Fallback::Deny,
        )),
    );
    assert_eq!(
        statuses(&[&a, &b, &a, &b, &a], "over-tls"),
        [200, 200, 200, 429, 429]
    );
    // Not the trusted root, or not the password: the fallback (Deny: 503).
    let (other_dir, [other_ca, _, _]) = tls_files();
    let stranger = server(visitors(
        store("s3cret-pass", std::fs::read(&other_ca).unwrap()),
        Fallback::Deny,
    ));
    assert_eq!(statuses(&[&stranger], "tls-stranger"), [503]);
    let wrong = server(visitors(store("wrong", ca_pem), Fallback::Deny));
    assert_eq!(statuses(&[&wrong], "tls-wrong"), [503]);
    drop(other_dir);
    let plain = RedisStore::builder(&redis.url(), SECRET)
        .tls_root_certificates(std::fs::read(&ca).unwrap())
        .build();
    assert!(plain.is_err(), "roots for a URL without TLS");
    assert!(!format!("{:?}", store("s3cret-pass", Vec::new())).contains("s3cret"));
}

/// A key of another type (written by something else) is a refusal waiting
/// will not mend: that caller gets the fallback (here 503), and nobody
/// else's request is held back by a backoff.
#[test]
fn a_wrongtype_refusal_is_no_outage_for_other_callers() {
    let redis = RedisServer::start();
    let base = server(visitors(
        redis_store(&redis.url(), Duration::from_millis(500)),
        Fallback::Deny,
    ));
    assert_eq!(status(&base, "spoilt").0, 200);
    let keys = redis_keys(&redis.url(), "auth-throttle:*");
    assert_eq!(keys.len(), 1);
    runtime().block_on(async {
        let mut connection = connect(&redis.url()).await;
        let () = redis::pipe()
            .del(&keys[0])
            .ignore()
            .lpush(&keys[0], "not a counter")
            .ignore()
            .query_async(&mut connection)
            .await
            .unwrap();
    });
    assert_eq!(status(&base, "spoilt"), (503, Some("1".to_owned())));
    // At once, another caller counts in Redis (no backoff started).
    assert_eq!(statuses(&[&base, &base], "fine"), [200, 200]);
    assert_eq!(redis_keys(&redis.url(), "auth-throttle:*").len(), 2);
    assert_eq!(status(&base, "spoilt").0, 503);
}

/// The refund script (a cluster store's all or nothing across slots),
/// against a real Redis: it gives back at most one emission interval, once
/// per refund even if sent again, and nothing of a unit that has drained.
#[test]
fn a_refund_gives_back_what_the_request_took_once() {
    const REFUND: &str = include_str!("../../crates/auth-throttle/src/redis/refund.lua");
    const T: u64 = 10_000_000; // 10 s
    let redis = RedisServer::start();
    runtime().block_on(async {
        let mut connection = connect(&redis.url()).await;
        let (seconds, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut connection)
            .await
            .unwrap();
        let now = seconds * 1_000_000 + micros;
        let stored = now + 3 * T;
        let () = redis::cmd("SET")
            .arg("c")
            .arg(stored)
            .query_async(&mut connection)
            .await
            .unwrap();
        let refund = |once: &str, stored: u64| {
            let mut command = redis::cmd("EVAL");
            command
                .arg(REFUND)
                .arg(2)
                .arg("c")
                .arg(once)
                .arg(T)
                .arg(stored);
            command
        };
        let value = |connection: &mut redis::aio::MultiplexedConnection| {
            let mut connection = connection.clone();
            async move {
                redis::cmd("GET")
                    .arg("c")
                    .query_async::<u64>(&mut connection)
                    .await
                    .unwrap()
            }
        };
        let back: i64 = refund("once-1", stored)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(back, 1);
        assert_eq!(value(&mut connection).await, now + 2 * T);
        // Sent again (a retry): nothing more.
        let back: i64 = refund("once-1", stored)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(back, 0);
        assert_eq!(value(&mut connection).await, now + 2 * T);
        // A unit whose stored time the clock has passed has drained: taking
        // anything off would give back another request's.
        let back: i64 = refund("once-2", now - 1)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(back, 0);
        assert_eq!(value(&mut connection).await, now + 2 * T);
        // What is left of a unit partly drained, no more: the stored time
        // is 4 s ahead, so at most 4 s come off.
        let back: i64 = refund("once-3", now + 4_000_000)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(back, 1);
        let left = value(&mut connection).await;
        assert!(
            (now + 2 * T - 4_000_000..now + 2 * T - 3_000_000).contains(&left),
            "{left}"
        );
    });
}

#[test]
fn the_probe_pings_redis_and_the_fallback_says_degraded_or_down() {
    use auth_core::health::Health;
    let mut redis = RedisServer::start();
    let store = || redis_store(&redis.url(), Duration::from_millis(200));
    let log_only = Throttle::builder(store())
        .rule(Rule::new("r", Quota::new(3, Duration::from_secs(60)).unwrap()).unwrap())
        .fallback(Fallback::Deny)
        .log_only(true)
        .build()
        .unwrap();
    let throttles = [
        visitors(store(), Fallback::Memory),
        visitors(store(), Fallback::Allow),
        visitors(store(), Fallback::Deny),
        log_only,
    ];
    let probe_all = || -> Vec<String> {
        runtime().block_on(async {
            let mut found = Vec::new();
            for throttle in &throttles {
                found.push(throttle.probe().await.to_string());
            }
            found
        })
    };
    // All ready once connected (a first connect may outlast the timeout).
    let connecting = Instant::now();
    loop {
        let found = probe_all();
        if found == ["ready"; 4] {
            break;
        }
        assert!(connecting.elapsed() < Duration::from_secs(10), "{found:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Probes at once make one round trip; the others get its last finding.
    // (Counted from when the count stands still: a probe above that timed
    // out while connecting may still have its PING queued.)
    let mut before = commandstat(&redis.url(), "ping");
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = commandstat(&redis.url(), "ping");
        if now == before {
            break;
        }
        assert!(
            connecting.elapsed() < Duration::from_secs(20),
            "PINGs keep coming"
        );
        before = now;
    }
    let many = runtime().block_on(futures_util::future::join_all(
        (0..50).map(|_| throttles[0].probe()),
    ));
    assert!(many.iter().all(|h| *h == Health::Ready));
    assert_eq!(commandstat(&redis.url(), "ping") - before, 1);
    let in_process = visitors(MemoryStore::default(), Fallback::Deny);
    assert_eq!(runtime().block_on(in_process.probe()), Health::Ready);

    redis.stop();
    let started = Instant::now();
    let away = probe_all();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "each under its timeout"
    );
    let [memory, allow, deny, log_only] = &away[..] else {
        panic!("{away:?}")
    };
    assert!(
        memory.starts_with("degraded: rate limit store redis unreachable (")
            && memory.ends_with("): limits are counted in this process"),
        "{memory}"
    );
    assert!(allow.starts_with("degraded: ") && allow.ends_with("let through uncounted"));
    assert!(deny.starts_with("down: ") && deny.ends_with("throttled requests are refused"));
    assert!(
        log_only.starts_with("degraded: "),
        "log-only refuses nothing: {log_only}"
    );
    for line in &away {
        assert!(
            !line.contains(&redis.url()) && !line.contains("127.0.0.1"),
            "{line}"
        );
    }

    redis.restart().unwrap();
    let started = Instant::now();
    while probe_all() != ["ready"; 4] {
        assert!(started.elapsed() < Duration::from_secs(10), "Redis is back");
        std::thread::sleep(Duration::from_millis(100));
    }
}
