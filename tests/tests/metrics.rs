//! The demo's metrics, scraped from its `GET /metrics` (the Prometheus
//! text exposition) over real TCP, on axum and on actix-web: exact counts
//! for known traffic, series that stay bounded under many unique callers,
//! and no caller in any label.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use auth_examples::{Demo, DemoConfig, actix_routes, axum_router, install_metrics};
use auth_tests::{agent, serve_actix, serve_axum};

/// The recorder is the process's: one test at a time reads its deltas.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const JWT_SECRET: &str = "a JWT secret of thirty-two bytes!!";

fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = agent().get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.call().unwrap().status().as_u16()
}

fn scrape(base: &str) -> String {
    let mut response = agent().get(format!("{base}/metrics")).call().unwrap();
    assert_eq!(response.status(), 200);
    response.body_mut().read_to_string().unwrap()
}

/// The sample of `name` whose labels are exactly `labels` (0 when absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    found(text, name, labels).unwrap_or(0.0)
}

/// The sample of `name` whose labels are exactly `labels`, if exported.
fn found(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let mut found: Vec<String> = rest
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            found.sort();
            (metric == name && found == wanted).then(|| value.parse().unwrap())
        })
}

/// Sends the known traffic to `base` and checks each count moved by
/// exactly what it caused.
fn known_traffic_counts_exactly(base: &str, token: &str, visitor: &str) {
    let before = scrape(base);
    let bearer = format!("Bearer {token}");
    let cookie = format!("anon={visitor}");
    for _ in 0..2 {
        assert_eq!(get(base, "/private", &[("authorization", &bearer)]), 200);
    }
    for _ in 0..3 {
        assert_eq!(get(base, "/private", &[]), 401);
    }
    assert_eq!(
        get(base, "/private", &[("authorization", "Bearer x.y.z")]),
        401
    );
    assert_eq!(get(base, "/ip", &[]), 200);
    let limited: Vec<u16> = (0..4)
        .map(|_| get(base, "/limited", &[("cookie", &cookie)]))
        .collect();
    assert_eq!(limited, [200, 200, 200, 429]);
    let after = scrape(base);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let requests = "auth_requests_total";
    let decided = |outcome, source, status| {
        delta(
            requests,
            &[("outcome", outcome), ("source", source), ("status", status)],
        )
    };
    assert_eq!(decided("admitted", "jwt", "none"), 2.0, "{base}");
    assert_eq!(decided("refused", "none", "401"), 4.0, "{base}");
    assert_eq!(decided("admitted", "ip", "none"), 1.0, "{base}");
    assert_eq!(decided("admitted", "anon", "none"), 3.0, "{base}");
    assert_eq!(decided("refused", "none", "429"), 1.0, "{base}");
    let rules = "auth_throttle_requests_total";
    let rule = |rule, result| delta(rules, &[("rule", rule), ("result", result)]);
    assert_eq!(rule("visitors", "allowed"), 3.0, "{base}");
    assert_eq!(rule("visitors", "denied"), 1.0, "{base}");
    assert_eq!(rule("visitors-per-address", "allowed"), 3.0, "{base}");
    assert_eq!(rule("visitors-per-address", "denied"), 0.0, "{base}");
    // The failure budget is read before every request on /private and
    // /limited (not /ip): 6 + 4.
    assert_eq!(rule("failed-credentials", "allowed"), 10.0, "{base}");
    assert_eq!(rule("failed-credentials", "denied"), 0.0, "{base}");
}

#[test]
fn known_traffic_gives_exact_counts_on_axum_and_actix() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let config = DemoConfig {
        jwt_secret: Some(JWT_SECRET.into()),
        ..DemoConfig::default()
    };
    let axum_demo = Demo::new(&config).unwrap();
    let token = axum_demo.sample_token("alice", "read");
    let axum = serve_axum(axum_router(&axum_demo));
    known_traffic_counts_exactly(&axum, &token, "0123456789abcdef0123456789abcdef");
    let actix_demo = Demo::new(&config).unwrap();
    let actix = serve_actix(actix_routes(&actix_demo));
    known_traffic_counts_exactly(&actix, &token, "fedcba9876543210fedcba9876543210");
}

#[test]
fn series_stay_bounded_and_name_no_caller() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let demo = Demo::new(&DemoConfig::default()).unwrap();
    let base = serve_axum(axum_router(&demo));
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("auth_"))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
            .collect::<std::collections::BTreeSet<String>>()
    };
    let visit = |n: usize| {
        let visitor = format!("{n:032x}");
        get(&base, "/limited", &[("cookie", &format!("anon={visitor}"))]);
        get(&base, "/whoami", &[("cookie", &format!("anon={visitor}"))]);
        get(
            &base,
            "/private",
            &[("authorization", &format!("Bearer forged-{n}"))],
        );
        visitor
    };
    // 100 unique callers (every kind of answer, the failure budget spent
    // too), then 200 more: no new series.
    for n in 0..100 {
        visit(n);
    }
    let first = series(&scrape(&base));
    let visitors: Vec<String> = (100..300).map(visit).collect();
    let text = scrape(&base);
    assert_eq!(series(&text), first, "new series for new callers");
    for visitor in &visitors {
        assert!(!text.contains(visitor.as_str()), "a caller in the metrics");
    }
    assert!(!text.contains("forged-"), "a token in the metrics");
    assert!(!text.contains("127.0.0.1"), "an address in the metrics");
}

#[test]
fn the_shared_store_is_timed_and_its_fallbacks_counted() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let mut redis = auth_tests::redis::RedisServer::start();
    let demo = Demo::new(&DemoConfig {
        redis_url: Some(redis.url()),
        // Not about timeouts: a first connect on a loaded machine may
        // outlast the default 50 ms, and a fallback would change the counts.
        redis_timeout: Some(std::time::Duration::from_secs(2)),
        throttle_secret: Some("a throttle secret, 16+ bytes".into()),
        ..DemoConfig::default()
    })
    .unwrap();
    let base = serve_axum(axum_router(&demo));
    let cookie = ("cookie", "anon=00000000000000000000000000000abc");
    let before = scrape(&base);
    let waited = |text: &str, result| {
        sample(
            text,
            "auth_throttle_store_duration_seconds_count",
            &[("store", "redis"), ("result", result)],
        )
    };
    let fallbacks = |text: &str| {
        sample(
            text,
            "auth_throttle_store_fallbacks_total",
            &[("store", "redis"), ("fallback", "memory")],
        )
    };
    for _ in 0..2 {
        assert_eq!(get(&base, "/limited", &[cookie]), 200);
    }
    let counted = scrape(&base);
    assert_eq!(waited(&counted, "ok") - waited(&before, "ok"), 2.0);
    assert_eq!(fallbacks(&counted) - fallbacks(&before), 0.0);
    // Redis away: the first request waits and falls back, the next ones
    // fall back at once (the backoff): every one counted as a fallback,
    // only the first as a wait.
    redis.stop();
    for _ in 0..3 {
        assert_eq!(
            get(
                &base,
                "/limited",
                &[("cookie", "anon=00000000000000000000000000000def")]
            ),
            200
        );
    }
    let away = scrape(&base);
    assert_eq!(fallbacks(&away) - fallbacks(&counted), 3.0);
    assert_eq!(waited(&away, "error") - waited(&counted, "error"), 1.0);
}

/// A shared store whose every answer denies while a part of the batch
/// failed (a cluster's call to a dead primary beside a live one's
/// denial): no Redis Cluster can be made to do that on cue.
#[derive(Debug)]
struct FailedInPart;

impl auth_throttle::SharedStore for FailedInPart {
    fn apply(&self, batch: &auth_throttle::Batch) -> auth_throttle::StoreFuture {
        let cells = batch
            .counters()
            .iter()
            .map(|_| auth_throttle::Cell::new(false, 0, 1_000_000, 1_000_000))
            .collect();
        let reply = auth_throttle::Reply::new(1_800_000_000_000_000, cells)
            .with_failure(auth_throttle::StoreError::Timeout);
        Box::pin(std::future::ready(Ok(reply)))
    }

    fn kind(&self) -> &'static str {
        "failed-in-part"
    }
}

#[test]
fn a_round_trip_failed_in_part_is_timed_as_an_error() {
    use auth_throttle::{Checked, Quota, Rule, Store, Throttle, Throttled};
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let throttle =
        Throttle::builder(Store::shared(FailedInPart, b"a store secret, 16+ b").unwrap())
            .rule(
                Rule::new(
                    "r",
                    Quota::new(5, std::time::Duration::from_secs(60)).unwrap(),
                )
                .unwrap()
                .by_client_ip(),
            )
            .build()
            .unwrap();
    let mut req = http::Request::new(());
    req.extensions_mut()
        .insert(auth_core::PeerAddr("192.0.2.7:1".parse().unwrap()));
    let scrape = || auth_examples::metrics_response().into_body();
    let waited = |text: &str, result| {
        sample(
            text,
            "auth_throttle_store_duration_seconds_count",
            &[("store", "failed-in-part"), ("result", result)],
        )
    };
    let before = scrape();
    let Checked::Store(step) = throttle.decide(None, &req, std::time::SystemTime::now()) else {
        panic!("a shared store is asked");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(runtime.block_on(step.run()), Throttled::Deny(_)));
    let after = scrape();
    assert_eq!(waited(&after, "error") - waited(&before, "error"), 1.0);
    assert_eq!(waited(&after, "ok") - waited(&before, "ok"), 0.0);
    let fallbacks = |text: &str| {
        sample(
            text,
            "auth_throttle_store_fallbacks_total",
            &[("store", "failed-in-part"), ("fallback", "memory")],
        )
    };
    assert_eq!(
        fallbacks(&after) - fallbacks(&before),
        0.0,
        "the denial stands"
    );
}

#[test]
fn provider_calls_caches_and_key_sets_are_counted() {
    use auth_core::{Algorithm, JwtBackend, JwtValidator};
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let provider = auth_tests::OidcProvider::start();
    // Tokens through OIDC discovery and the JWKS, on a route of its own.
    let jwt = JwtBackend::new(
        JwtValidator::builder([Algorithm::RS256])
            .oidc_issuer(provider.issuer())
            .allow_http(true)
            .audience("urn:jwt")
            .build()
            .unwrap(),
    );
    let jwt_base = serve_axum(
        axum::Router::new()
            .route("/jwt", axum::routing::get(|| async { "ok" }))
            .layer(auth_axum::AuthLayer::new(jwt)),
    );
    // Opaque tokens through the demo's introspection route.
    let demo = Demo::new(&DemoConfig {
        introspection: Some(auth_examples::IntrospectionConfig {
            url: provider.introspection_url(),
            client_id: auth_tests::CLIENT_ID.into(),
            client_secret: auth_tests::CLIENT_SECRET.into(),
            identifier: "client_id".into(),
            cache_ttl: None,
        }),
        ..DemoConfig::default()
    })
    .unwrap();
    let base = serve_axum(axum_router(&demo));
    let before = scrape(&base);
    let signed = format!(
        "Bearer {}",
        provider.client_credentials("urn:jwt", "read").unwrap()
    );
    let opaque = format!(
        "Bearer {}",
        provider.client_credentials("urn:opaque", "read").unwrap()
    );
    for _ in 0..2 {
        assert_eq!(get(&jwt_base, "/jwt", &[("authorization", &signed)]), 200);
        assert_eq!(
            get(&base, "/introspected", &[("authorization", &opaque)]),
            200
        );
    }
    let after = scrape(&base);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    for kind in ["discovery", "jwks", "introspection"] {
        let calls = delta(
            "auth_provider_requests_total",
            &[("kind", kind), ("result", "ok")],
        );
        assert_eq!(calls, 1.0, "{kind}: one call, then the cache or the keys");
        let timed = delta(
            "auth_provider_request_duration_seconds_count",
            &[("kind", kind), ("result", "ok")],
        );
        assert_eq!(timed, 1.0, "{kind}");
        let in_flight = found(&after, "auth_provider_in_flight", &[("kind", kind)]);
        assert_eq!(in_flight, Some(0.0), "{kind}: exported, and back to 0");
    }
    for cache in ["verified_token", "introspection"] {
        let looked = |result| {
            delta(
                "auth_cache_requests_total",
                &[("cache", cache), ("result", result)],
            )
        };
        assert_eq!((looked("miss"), looked("hit")), (1.0, 1.0), "{cache}");
    }
    let updated = sample(&after, "auth_jwt_keys_updated_timestamp_seconds", &[]);
    assert!(
        updated >= started.floor(),
        "keys installed at {updated}, test began {started}"
    );
}

/// With several remote key sets, the key age is the oldest set's, and a
/// set leaves it with its validator: a stale set is not hidden by a fresh
/// one beside it.
#[test]
fn the_key_age_is_the_oldest_set_in_service() {
    use auth_core::health::{Health, Probe};
    use auth_core::step::{Transport, UreqTransport};
    use auth_core::{Algorithm, JwtBackend, JwtValidator};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_metrics().unwrap();
    let provider = auth_tests::OidcProvider::start();
    let base = serve_axum(axum_router(&Demo::new(&DemoConfig::default()).unwrap()));
    let transport = UreqTransport::builder()
        .timeout(Duration::from_secs(5))
        .build();
    let backend = || {
        JwtBackend::new(
            JwtValidator::builder([Algorithm::RS256])
                .oidc_issuer(provider.issuer())
                .allow_http(true)
                .build()
                .unwrap(),
        )
    };
    // A probe fetches the keys of a backend that has none, at `secs`.
    let fetch_at = |backend: &JwtBackend, secs: u64| {
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        let mut probe = backend.probe(now);
        for _ in 0..4 {
            match probe {
                Probe::Done(health) => {
                    assert_eq!(health, Health::Ready);
                    return;
                }
                Probe::Send(step) => {
                    let response = transport.send(step.request().clone());
                    probe = step.apply(&response, now);
                }
                _ => panic!("unknown probe"),
            }
        }
        panic!("the probe took too many steps");
    };
    let key_age = || {
        found(
            &scrape(&base),
            "auth_jwt_keys_updated_timestamp_seconds",
            &[],
        )
    };
    // Both older than any other set this process holds (each fetched
    // since it started).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (older, newer) = (backend(), backend());
    fetch_at(&older, now - 7200);
    fetch_at(&newer, now - 3600);
    assert_eq!(
        key_age(),
        Some((now - 7200) as f64),
        "the oldest, fetched first"
    );
    drop(older);
    assert_eq!(key_age(), Some((now - 3600) as f64), "the older left");
    drop(newer);
}

/// Every metric the core and the throttle export.
fn exported() -> Vec<&'static str> {
    use auth_core::metrics as core;
    use auth_throttle::metrics as throttle;
    vec![
        core::REQUESTS,
        core::PROVIDER_REQUESTS,
        core::PROVIDER_DURATION,
        core::PROVIDER_IN_FLIGHT,
        core::CACHE_REQUESTS,
        core::KEYS_UPDATED,
        throttle::REQUESTS,
        throttle::STORE_FALLBACKS,
        throttle::STORE_DURATION,
    ]
}

/// `docs/grafana-dashboard.json`: every query names exported metrics only
/// (a histogram's by its `_bucket`, `_sum` or `_count` series), every
/// exported metric is graphed, and the metrics guide lists each one.
#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/docs/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exported = exported();
    let mut graphed = std::collections::BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("auth_"))
                .collect();
            assert!(!names.is_empty(), "a query on no metric of ours: {expr}");
            for name in names {
                let metric = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|base| exported.contains(base))
                    .unwrap_or(name);
                assert!(exported.contains(&metric), "{name} is not exported: {expr}");
                graphed.insert(metric);
            }
        }
    }
    let missing: Vec<_> = exported.iter().filter(|m| !graphed.contains(*m)).collect();
    assert!(missing.is_empty(), "not graphed: {missing:?}");
    let guide = std::fs::read_to_string(format!("{root}/docs/guides/metrics.md")).unwrap();
    for metric in exported {
        assert!(
            guide.contains(&format!("| `{metric}` |")),
            "{metric} not in the guide's table"
        );
    }
}
