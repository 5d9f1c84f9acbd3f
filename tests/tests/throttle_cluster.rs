//! The throttle's Redis store on a real Redis Cluster: six
//! `redis-server --cluster-enabled yes` nodes (three primaries, three
//! replicas, a password), two axum servers over TCP counting in it. Limits
//! shared with identity and address rules (two hash slots in one request),
//! keys on every primary, all or nothing across slots, `SCRIPT FLUSH`, a
//! primary killed mid-traffic, and a slot moved mid-traffic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use auth_axum::AuthLayer;
use auth_core::health::Health;
use auth_core::{AnonSessionBackend, IpBackend};
use auth_tests::redis::RedisCluster;
use auth_tests::{serve_actix, serve_axum};
use auth_throttle::{Callers, Quota, RedisStore, Rule, Throttle};

const SECRET: &[u8] = b"a secret the servers share, 32b!";
const PREFIX: &str = "auth-throttle";

/// The tests of this file start clusters and kill nodes: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `per_visitor` requests per 600 s per anonymous visitor, and
/// `per_address` per client address (behind a proxy on loopback), counted
/// in the cluster. A request waits up to a second for it: these tests are
/// not about timeouts, and one that ran out would count in process.
fn throttle(cluster: &RedisCluster, per_visitor: u64, per_address: u64) -> Throttle {
    backing_off(
        cluster,
        per_visitor,
        per_address,
        RedisStore::DEFAULT_BACKOFF,
        Duration::from_secs(1),
    )
}

/// [`throttle`], a request waiting `timeout` for Redis, which is not
/// asked for `backoff` after a failure.
fn backing_off(
    cluster: &RedisCluster,
    per_visitor: u64,
    per_address: u64,
    backoff: Duration,
    timeout: Duration,
) -> Throttle {
    let store = RedisStore::cluster(cluster.urls(), SECRET)
        .timeout(timeout)
        .backoff(backoff)
        .build()
        .unwrap();
    let quota = |n| Quota::new(n, Duration::from_secs(600)).unwrap();
    Throttle::builder(store)
        .rule(
            Rule::new("visitor", quota(per_visitor))
                .unwrap()
                .callers(Callers::ANONYMOUS),
        )
        .rule(
            Rule::new("address", quota(per_address))
                .unwrap()
                .by_client_ip(),
        )
        .client_ip(IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap())
        .build()
        .unwrap()
}

/// A server: anonymous sessions (any id taken back, so that tests name
/// visitors), then the throttle, then "ok".
fn server(throttle: Throttle) -> String {
    let anon = AnonSessionBackend::builder("anon")
        .accept_ids(|_| true)
        .build()
        .unwrap();
    serve_axum(
        axum::Router::new()
            .route("/limited", axum::routing::get(|| async { "ok" }))
            .layer(AuthLayer::new(anon).throttle(throttle)),
    )
}

fn status(base: &str, visitor: &str, address: &str) -> u16 {
    let agent = auth_tests::agent();
    agent
        .get(format!("{base}/limited"))
        .header("cookie", format!("anon={visitor}"))
        .header("x-forwarded-for", address)
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// The counters' keys in the cluster (not the refunds' own keys, which
/// expire in seconds).
fn counters(cluster: &RedisCluster) -> Vec<String> {
    let mut keys = cluster.keys(&format!("{PREFIX}:*"));
    keys.retain(|k| !k.contains(":refund:"));
    keys
}

/// `n` requests of `visitor` from `address`, alternating between `bases`.
fn statuses(bases: &[&str], visitor: &str, address: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| status(bases[i % bases.len()], visitor, address))
        .collect()
}

fn allowed(statuses: &[u16]) -> usize {
    statuses.iter().filter(|&&s| s == 200).count()
}

/// Waits until each server counts in the cluster: a first connect needs
/// every primary, and one that outlasts a request's timeout sends the
/// server to its fallback for a while. The counters the warm-up stored
/// are returned (visitors `warm-*` from addresses `10.7.*`, each request
/// a visitor and an address of its own, so that none is denied).
fn warm(cluster: &RedisCluster, bases: &[&str]) -> Vec<String> {
    for (n, base) in bases.iter().enumerate() {
        let started = std::time::Instant::now();
        let mut i = 0;
        loop {
            let before = counters(cluster).len();
            let (visitor, address) = (format!("warm-{n}-{i}"), format!("10.7.{n}.{i}"));
            assert_eq!(status(base, &visitor, &address), 200);
            if counters(cluster).len() > before {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{base} never counted in Redis"
            );
            thread::sleep(Duration::from_millis(200));
            i += 1;
        }
    }
    counters(cluster)
}

/// The counters stored since `warm`'s.
fn counters_since(cluster: &RedisCluster, warm: &[String]) -> Vec<String> {
    let mut keys = counters(cluster);
    keys.retain(|k| !warm.contains(k));
    keys
}

/// Requests for 30 visitors, each from an address of its own: their
/// limits are shared by both servers, and every primary holds keys.
fn shared_by_both(bases: &[&str], round: &str) {
    for v in 0..30 {
        let answers = statuses(bases, &format!("{round}-{v}"), &format!("10.9.{v}.1"), 5);
        assert_eq!(answers, [200, 200, 200, 429, 429], "visitor {v} of {round}");
    }
}

#[test]
fn servers_share_limits_across_slots_and_primaries() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let (a, b) = (
        server(throttle(&cluster, 3, 100)),
        server(throttle(&cluster, 3, 100)),
    );
    let warmed = warm(&cluster, &[&a, &b]);
    shared_by_both(&[&a, &b], "shared");
    // Identity and address keys of 30 visitors: on all three primaries.
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    for port in primaries {
        let keys: u64 = cluster.cli(port, &["DBSIZE"]).parse().unwrap();
        assert!(keys > 0, "no key on primary {port}");
    }
    assert_eq!(counters_since(&cluster, &warmed).len(), 60);
}

#[test]
fn a_request_denied_in_one_slot_spends_nothing_in_another() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let (a, b) = (
        server(throttle(&cluster, 2, 4)),
        server(throttle(&cluster, 2, 4)),
    );
    let warmed = warm(&cluster, &[&a, &b]);
    // The first visitor: 2 allowed by its own rule, then 2 denied by it
    // while the address rule, in another slot, would allow them.
    let first = statuses(&[&a, &b], "first", "10.1.1.1", 4);
    assert_eq!(first, [200, 200, 429, 429]);
    let keys = counters_since(&cluster, &warmed);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let slots: Vec<u16> = keys.iter().map(|k| cluster.slot(k)).collect();
    assert_ne!(
        slots[0], slots[1],
        "the two counters share a slot: {keys:?}"
    );
    // The address spent 2 of 4, not 4: a second visitor from it gets its
    // own 2 (its third, denied by its own rule, spends nothing either).
    let second = statuses(&[&a, &b], "second", "10.1.1.1", 3);
    assert_eq!(second, [200, 200, 429]);
    // Now the address is spent: a third visitor is denied there, and
    // those denials spend nothing of its own quota.
    assert_eq!(statuses(&[&a, &b], "third", "10.1.1.1", 2), [429, 429]);
    assert_eq!(statuses(&[&a, &b], "third", "10.1.1.2", 3), [200, 200, 429]);
}

#[test]
fn script_flush_on_a_node_still_counts_in_redis() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let (a, b) = (
        server(throttle(&cluster, 4, 100)),
        server(throttle(&cluster, 4, 100)),
    );
    let warmed = warm(&cluster, &[&a, &b]);
    assert_eq!(statuses(&[&a], "flushed", "10.2.2.2", 1), [200]);
    let key = counters_since(&cluster, &warmed)
        .into_iter()
        .find(|k| k.ends_with(":visitor"))
        .unwrap();
    let port = cluster.primary_of(cluster.slot(&key)).unwrap();
    assert_eq!(cluster.cli(port, &["SCRIPT", "FLUSH"]), "OK");
    cluster.cli(port, &["CONFIG", "RESETSTAT"]);
    // Still one count shared by both servers: 3 more, then denied.
    let answers = statuses(&[&b, &a], "flushed", "10.2.2.2", 4);
    assert_eq!(answers, [200, 200, 200, 429]);
    let stats = cluster.cli(port, &["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_eval:calls="),
        "no EVAL after NOSCRIPT: {stats}"
    );
}

#[test]
fn a_killed_primary_falls_back_then_limits_are_shared_again() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = RedisCluster::start();
    let (a, b) = (
        server(throttle(&cluster, 3, 1000)),
        server(throttle(&cluster, 3, 1000)),
    );
    warm(&cluster, &[&a, &b]);
    shared_by_both(&[&a, &b], "before");
    // A readiness probe pings every primary.
    let probed = throttle(&cluster, 3, 1000);
    // The store's connection lives on the runtime it opened on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let probe = || runtime.block_on(probed.probe());
    assert_eq!(probe(), Health::Ready);
    // Traffic from both servers while a primary is killed.
    let victim = cluster.primary_of(0).unwrap();
    let traffic = {
        let (a, b) = (a.clone(), b.clone());
        thread::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..300 {
                let base = if i % 2 == 0 { &a } else { &b };
                seen.push(status(base, &format!("during-{}", i % 40), "10.3.3.3"));
                thread::sleep(Duration::from_millis(10));
            }
            seen
        })
    };
    thread::sleep(Duration::from_millis(300));
    cluster.kill(victim);
    let killed = std::time::Instant::now();
    // A primary down, before a replica takes over (a second at least):
    // the in-process fallback counts meanwhile.
    let during = probe();
    assert!(
        matches!(&during, Health::Degraded(reason) if reason.contains("redis-cluster unreachable")),
        "{during:?} {:?} after the kill",
        killed.elapsed()
    );
    let seen = traffic.join().unwrap();
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 429),
        "only 200 and 429 while a primary died: {seen:?}"
    );
    cluster.wait_until_ok(Duration::from_secs(30)).unwrap();
    println!("a replica took over {:?} after the kill", killed.elapsed());
    let promoted = cluster.primary_of(0).unwrap();
    assert_ne!(promoted, victim);
    // Let the servers' backoff end, then limits are shared again, on
    // every slot the dead primary served too.
    thread::sleep(Duration::from_millis(1_100));
    shared_by_both(&[&a, &b], "after");
    let keys: u64 = cluster.cli(promoted, &["DBSIZE"]).parse().unwrap();
    assert!(keys > 0, "the promoted replica counts nothing");
    // The client learns the new primary: every primary answers again.
    let started = std::time::Instant::now();
    while probe() != Health::Ready {
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", probe());
        thread::sleep(Duration::from_millis(100));
    }
}

/// A visitor, from an address of its own, after one request.
struct Placed {
    visitor: String,
    address: String,
    /// Its two counters' keys (its visitor rule's, its address's).
    keys: Vec<String>,
    /// The primaries that hold them.
    primaries: Vec<u16>,
}

impl Placed {
    fn visitor_key(&self) -> &str {
        self.keys.iter().find(|k| k.ends_with(":visitor")).unwrap()
    }

    fn status(&self, base: &str) -> u16 {
        status(base, &self.visitor, &self.address)
    }
}

/// 30 visitors, one request each, and where their counters went.
fn placed(cluster: &RedisCluster, base: &str, round: &str) -> Vec<Placed> {
    (0..30)
        .map(|v| {
            let (visitor, address) = (format!("{round}-{v}"), format!("10.8.{v}.1"));
            let before = counters(cluster);
            assert_eq!(status(base, &visitor, &address), 200);
            let keys: Vec<String> = counters(cluster)
                .into_iter()
                .filter(|key| !before.contains(key))
                .collect();
            assert_eq!(keys.len(), 2, "{visitor}: {keys:?}");
            let primaries = keys
                .iter()
                .map(|key| cluster.primary_of(cluster.slot(key)).unwrap())
                .collect();
            Placed {
                visitor,
                address,
                keys,
                primaries,
            }
        })
        .collect()
}

/// The time a GCRA counter stores (its theoretical arrival time, in
/// microseconds).
fn stored(cluster: &RedisCluster, key: &str) -> u64 {
    let primary = cluster.primary_of(cluster.slot(key)).unwrap();
    let value = cluster.cli(primary, &["GET", key]);
    value.parse().unwrap_or_else(|_| panic!("{key}: {value:?}"))
}

#[test]
fn a_stuck_primary_sends_only_its_own_callers_to_the_fallback() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let backoff = Duration::from_secs(3);
    let throttles = [
        backing_off(&cluster, 3, 1000, backoff, Duration::from_millis(200)),
        backing_off(&cluster, 3, 1000, backoff, Duration::from_millis(200)),
    ];
    let (a, b) = (server(throttles[0].clone()), server(throttles[1].clone()));
    // Both servers connected, and the slot map known to both (a
    // readiness probe asks for it, besides the connect).
    warm(&cluster, &[&a, &b]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for throttle in &throttles {
        assert_eq!(runtime.block_on(throttle.probe()), Health::Ready);
    }
    let callers = placed(&cluster, &a, "placed");
    let slot = |caller: &Placed| cluster.slot(caller.visitor_key());
    let stuck = &callers[0];
    let primary = cluster.primary_of(slot(stuck)).unwrap();
    // Another visitor counted on that primary, in another slot.
    let neighbour = callers[1..]
        .iter()
        .find(|c| cluster.primary_of(slot(c)) == Some(primary) && slot(c) != slot(stuck))
        .expect("30 visitors: another on the same primary");
    let live: Vec<&Placed> = callers
        .iter()
        .filter(|c| !c.primaries.contains(&primary))
        .take(2)
        .collect();
    assert_eq!(live.len(), 2, "30 visitors: two on the other primaries");
    let (stuck_before, neighbour_before) = (
        stored(&cluster, stuck.visitor_key()),
        stored(&cluster, neighbour.visitor_key()),
    );
    // The primary takes commands but runs no script until unpaused; the
    // cluster sees it alive (no failover).
    assert_eq!(
        cluster.cli(primary, &["CLIENT", "PAUSE", "20000", "WRITE"]),
        "OK"
    );
    // Its caller: the timeout, then the fallback (in process), and the
    // backoff for that primary's slots on this server, from a moment
    // between these two.
    let asked = std::time::Instant::now();
    assert_eq!(stuck.status(&a), 200);
    let failed = std::time::Instant::now();
    // Meanwhile that primary's callers go straight to the fallback: this
    // one's slot, and another's.
    assert_eq!(stuck.status(&a), 200);
    assert_eq!(neighbour.status(&a), 200);
    // Callers on the other primaries still count in Redis, shared by both
    // servers: one request spent, two left of three.
    for caller in &live {
        assert_eq!(
            statuses(&[&a, &b], &caller.visitor, &caller.address, 4),
            [200, 200, 429, 429],
            "{} during the pause",
            caller.visitor
        );
    }
    // (The whole store in backoff, as before the slot map was used, would
    // have sent them to each server's own count.)
    assert!(asked.elapsed() < backoff, "the test outran the backoff");
    assert_eq!(cluster.cli(primary, &["CLIENT", "UNPAUSE"]), "OK");
    // Unpaused, the primary runs what it was sent: the first request
    // alone (one emission interval, 200 s, later); nothing of the
    // requests sent to the fallback at once.
    let started = std::time::Instant::now();
    while stored(&cluster, stuck.visitor_key()) == stuck_before {
        assert!(started.elapsed() < Duration::from_secs(5), "never run");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stored(&cluster, stuck.visitor_key()) - stuck_before,
        200_000_000
    );
    assert_eq!(stored(&cluster, neighbour.visitor_key()), neighbour_before);
    // The backoff over, that primary's callers are shared again.
    thread::sleep(backoff.saturating_sub(failed.elapsed()) + Duration::from_millis(100));
    let again = placed(&cluster, &b, "again");
    let caller = again
        .iter()
        .find(|c| c.primaries.contains(&primary))
        .unwrap();
    assert_eq!(
        statuses(&[&a, &b], &caller.visitor, &caller.address, 4),
        [200, 200, 429, 429],
        "{} after the pause",
        caller.visitor
    );
}

#[test]
fn a_slot_moved_mid_traffic_stays_shared() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let (a, b) = (
        server(throttle(&cluster, 40, 1000)),
        server(throttle(&cluster, 40, 1000)),
    );
    let warmed = warm(&cluster, &[&a, &b]);
    assert_eq!(statuses(&[&a], "mover", "10.4.4.4", 1), [200]);
    let key = counters_since(&cluster, &warmed)
        .into_iter()
        .find(|k| k.ends_with(":visitor"))
        .unwrap();
    let slot = cluster.slot(&key);
    let from = cluster.primary_of(slot).unwrap();
    let to = cluster
        .primaries()
        .into_iter()
        .find(|&p| p != from)
        .unwrap();
    let id = |port: u16| cluster.cli(port, &["CLUSTER", "MYID"]);
    let (from_id, to_id) = (id(from), id(to));
    // Requests of that visitor on both servers, while the slot moves.
    let traffic = {
        let (a, b) = (a.clone(), b.clone());
        thread::spawn(move || {
            (0..59)
                .map(|i| {
                    thread::sleep(Duration::from_millis(15));
                    status(if i % 2 == 0 { &b } else { &a }, "mover", "10.4.4.4")
                })
                .collect::<Vec<u16>>()
        })
    };
    thread::sleep(Duration::from_millis(200));
    let slot_arg = slot.to_string();
    assert_eq!(
        cluster.cli(
            to,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id]
        ),
        "OK"
    );
    assert_eq!(
        cluster.cli(
            from,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id]
        ),
        "OK"
    );
    thread::sleep(Duration::from_millis(200));
    let keys = cluster.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty());
    let mut migrate = vec!["MIGRATE", "127.0.0.1"];
    let to_port = to.to_string();
    migrate.extend([
        to_port.as_str(),
        "",
        "0",
        "5000",
        "AUTH",
        auth_tests::redis::CLUSTER_PASSWORD,
        "KEYS",
    ]);
    migrate.extend(keys.iter().copied());
    assert_eq!(cluster.cli(from, &migrate), "OK");
    thread::sleep(Duration::from_millis(200));
    // The new owner first, then the old one, then the rest (as Redis's
    // documentation orders it): `from` never redirects to a node that is
    // still importing.
    let mut primaries = cluster.primaries();
    primaries.sort_by_key(|&p| (p != to, p != from));
    for port in primaries {
        assert_eq!(
            cluster.cli(port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]),
            "OK"
        );
    }
    let answers = traffic.join().unwrap();
    assert_eq!(cluster.primary_of(slot), Some(to), "the slot did not move");
    // 1 + 59 requests of a visitor allowed 40: exactly 40 allowed in all,
    // each counted once in Redis (in-process counting meanwhile would let
    // more through).
    assert_eq!(allowed(&answers) + 1, 40, "{answers:?}");
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 429),
        "{answers:?}"
    );
}

/// The demo with `DEMO_REDIS_CLUSTER`: `/limited` (a visitor rule and an
/// address rule: two hash slots) counted in the cluster, shared by an
/// axum demo and an actix-web demo.
#[test]
fn the_demo_counts_limited_in_a_cluster() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = RedisCluster::start();
    let config = auth_examples::DemoConfig {
        redis_cluster: cluster.urls(),
        throttle_secret: Some("a throttle secret, 16+ bytes".into()),
        // Not about timeouts: a request that outlasted the default 50 ms
        // would count in process.
        redis_timeout: Some(Duration::from_secs(2)),
        ..auth_examples::DemoConfig::default()
    };
    let demo = auth_examples::Demo::new(&config).unwrap();
    assert!(demo.counts_in_redis());
    let a = serve_axum(auth_examples::axum_router(&demo));
    let b = serve_actix(auth_examples::actix_routes(
        &auth_examples::Demo::new(&config).unwrap(),
    ));
    let agent = auth_tests::agent();
    // Both up and connected to every primary: their readiness pings them.
    let started = std::time::Instant::now();
    for base in [&a, &b] {
        while agent
            .get(format!("{base}/health/ready"))
            .call()
            .map_or(true, |r| r.status() != 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{base} not ready"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    let visitor = "anon=0123456789abcdef0123456789abcdef";
    let answers: Vec<u16> = [&a, &b, &a, &b]
        .iter()
        .map(|base| {
            agent
                .get(format!("{base}/limited"))
                .header("cookie", visitor)
                .call()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(answers, [200, 200, 200, 429]);
    // The visitor's counter and the address's, in two slots.
    let keys = counters(&cluster);
    assert_eq!(keys.len(), 2, "{keys:?}");
}
