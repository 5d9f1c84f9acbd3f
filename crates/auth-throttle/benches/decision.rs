//! The in-process decision: one request's check against 1 and 3 rules
//! (`cargo bench -p auth-throttle --bench decision`). Every check is
//! allowed (the quotas are far away), so each one writes its counters.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use auth_core::{AnonSessionBackend, Decision, Gate, PeerAddr, Verdict, http};
use auth_throttle::{Callers, Checked, MemoryStore, Quota, Rule, Throttle, Throttled};
use criterion::{Criterion, criterion_group, criterion_main};

fn throttle(rules: usize) -> Throttle {
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1)).unwrap();
    let mut builder = Throttle::builder(MemoryStore::default());
    for i in 0..rules {
        let rule = Rule::new(&format!("rule-{i}"), quota).unwrap();
        // The third counts by client address.
        let rule = if i == 2 {
            rule.callers(Callers::ANONYMOUS).by_client_ip()
        } else {
            rule
        };
        builder = builder.rule(rule);
    }
    builder.build().unwrap()
}

fn request() -> (http::Request<()>, Verdict) {
    let mut req = http::Request::builder()
        .header("cookie", "anon=0123456789abcdef0123456789abcdef")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
    let gate = Gate::new(AnonSessionBackend::new("anon").unwrap());
    let Decision::Proceed(proceed) = gate.decide_blocking(&req) else {
        panic!()
    };
    (req, proceed.verdict.unwrap())
}

fn bench(c: &mut Criterion) {
    let (req, verdict) = request();
    let mut group = c.benchmark_group("throttle");
    for rules in [1, 3] {
        let throttle = throttle(rules);
        group.bench_function(format!("memory/{rules}-rules"), |b| {
            b.iter(|| {
                let checked = throttle.decide(Some(black_box(&verdict)), &req, SystemTime::now());
                let Checked::Done(Throttled::Allow(allowance)) = checked else {
                    panic!("allowed")
                };
                black_box(allowance)
            })
        });
    }
    let quiet = Throttle::builder(MemoryStore::default())
        .rule(
            Rule::new(
                "r",
                Quota::new(1_000_000_000, Duration::from_secs(1)).unwrap(),
            )
            .unwrap(),
        )
        .ratelimit_headers(false)
        .build()
        .unwrap();
    group.bench_function("memory/1-rule-no-headers", |b| {
        b.iter(|| black_box(quiet.decide(Some(black_box(&verdict)), &req, SystemTime::now())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
