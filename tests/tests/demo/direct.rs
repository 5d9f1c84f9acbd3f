//! The direct-call example (the demo's routes on a framework-free
//! `tiny_http` server driving the core's blocking driver), on 127.0.0.1,
//! exercised with a real HTTP client: anonymous sessions issued and re-used, signed sessions,
//! session-required routes, client IPs with and without trusted proxies.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use auth_examples::{Demo, DemoConfig, IntrospectionConfig, local_addr, serve};
use auth_tests::{CLIENT_ID, OidcProvider};

struct Running {
    base: String,
    agent: ureq::Agent,
    demo: Arc<Demo>,
}

fn start(config: DemoConfig) -> Running {
    let demo = Arc::new(Demo::new(&config).unwrap());
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let base = format!("http://{}", local_addr(&server).unwrap());
    for _ in 0..2 {
        let (demo, server) = (Arc::clone(&demo), Arc::clone(&server));
        thread::spawn(move || serve(&demo, &server));
    }
    let demo = Arc::clone(&demo);
    let agent = auth_tests::agent();
    Running { base, agent, demo }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    set_cookie: Vec<String>,
    www_authenticate: Option<String>,
    body: serde_json::Value,
}

impl Running {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap();
        let header_strings = |name: &str| -> Vec<String> {
            response
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        let set_cookie = header_strings("set-cookie");
        let www_authenticate = header_strings("www-authenticate").into_iter().next();
        let retry_after = header_strings("retry-after").into_iter().next();
        let status = response.status().as_u16();
        let body = serde_json::from_str(&response.body_mut().read_to_string().unwrap())
            .unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            retry_after,
            set_cookie,
            www_authenticate,
            body,
        }
    }
}

fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

#[test]
fn anonymous_session_is_issued_then_reused() {
    let demo = start(DemoConfig::default());
    let first = demo.get("/whoami", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body["source"], "anon");
    assert_eq!(first.set_cookie.len(), 1);
    let cookie = &first.set_cookie[0];
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=1209600",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let id = first.body["identifier"].as_str().unwrap().to_owned();
    assert_eq!(first.body["key"], format!("anon:{id}"));

    let second = demo.get("/whoami", &[("cookie", pair(cookie))]);
    assert_eq!(second.body["identifier"], id.as_str());
    assert!(
        second.set_cookie.is_empty(),
        "a returning client gets no new cookie"
    );

    let stranger = demo.get("/whoami", &[]);
    assert_ne!(stranger.body["identifier"], id.as_str());
}

#[test]
fn bearer_token_beats_anonymous_and_bad_tokens_are_not_downgraded() {
    let demo = start(DemoConfig::default());
    let token = demo.demo.sample_token("alice", "read");
    let auth = format!("Bearer {token}");
    let who = demo.get("/whoami", &[("authorization", &auth), ("cookie", "anon=x")]);
    assert_eq!(
        (who.body["source"].as_str(), who.body["identifier"].as_str()),
        (Some("jwt"), Some("alice"))
    );
    assert_eq!(who.body["key"], "jwt:auth-demo|alice");
    assert!(who.set_cookie.is_empty());

    let bad = demo.get("/whoami", &[("authorization", "Bearer not.a.jwt")]);
    assert_eq!(bad.status, 401);
    assert!(
        bad.set_cookie.is_empty(),
        "an invalid token is not downgraded to anonymous"
    );
    assert_eq!(
        bad.www_authenticate.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="malformed token""#)
    );
    // A token signed with another secret is rejected too.
    let stranger = start(DemoConfig::default())
        .demo
        .sample_token("mallory", "admin");
    assert_eq!(
        demo.get(
            "/private",
            &[("authorization", &format!("Bearer {stranger}"))]
        )
        .status,
        401
    );
}

#[test]
fn private_and_admin_routes() {
    let demo = start(DemoConfig {
        jwt_secret: Some("a-fixed-demo-secret-of-32-bytes!!".into()),
        ..DemoConfig::default()
    });
    let denied = demo.get("/private", &[]);
    assert_eq!(
        (denied.status, denied.www_authenticate.as_deref()),
        (401, Some("Bearer"))
    );
    assert!(denied.set_cookie.is_empty());
    let reader = format!("Bearer {}", demo.demo.sample_token("bob", "read"));
    assert_eq!(
        demo.get("/private", &[("authorization", &reader)]).body["identifier"],
        "bob"
    );
    let forbidden = demo.get("/admin", &[("authorization", &reader)]);
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.www_authenticate.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#
        )
    );
    let admin = format!("Bearer {}", demo.demo.sample_token("root", "read admin"));
    assert_eq!(demo.get("/admin", &[("authorization", &admin)]).status, 200);
}

#[test]
fn introspection_route_against_a_real_provider() {
    let unconfigured = start(DemoConfig::default());
    assert_eq!(unconfigured.get("/introspected", &[]).status, 404);

    let mut provider = OidcProvider::start();
    let demo = start(DemoConfig {
        introspection: Some(crate::demo_introspection(provider.introspection_url())),
        ..DemoConfig::default()
    });
    let token = provider.client_credentials("urn:opaque", "read").unwrap();
    let ok = demo.get(
        "/introspected",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(
        (ok.status, ok.body["identifier"].as_str()),
        (200, Some(CLIENT_ID))
    );
    assert_eq!(ok.body["source"], "introspect");
    // The demo answers with the identity, never the token it was given.
    assert!(!ok.body.to_string().contains(&token), "{}", ok.body);
    let garbage = demo.get(
        "/introspected",
        &[("authorization", "Bearer garbage-token")],
    );
    assert_eq!(garbage.status, 401);
    assert_eq!(demo.get("/introspected", &[]).status, 401);
    let fresh = provider.client_credentials("urn:opaque", "read").unwrap();
    provider.stop();
    let down = demo.get(
        "/introspected",
        &[("authorization", &format!("Bearer {fresh}"))],
    );
    assert_eq!(down.status, 503);
    assert_eq!(down.body["error"], "temporarily_unavailable");
}

/// `DEMO_INTROSPECTION_CACHE_TTL`: the default reuses an active answer (a
/// revoked token keeps working until it expires); `0` asks every time.
#[test]
fn the_revocation_window_is_the_operators_choice() {
    let provider = OidcProvider::start();
    let demo = |cache_ttl| {
        start(DemoConfig {
            introspection: Some(IntrospectionConfig {
                cache_ttl,
                ..crate::demo_introspection(provider.introspection_url())
            }),
            ..DemoConfig::default()
        })
    };
    for (ttl, after_revocation) in [(None, 200), (Some(Duration::ZERO), 401)] {
        let demo = demo(ttl);
        let token = provider.client_credentials("urn:opaque", "read").unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(
            demo.get("/introspected", &[("authorization", &bearer)])
                .status,
            200
        );
        provider.revoke(&token).unwrap();
        assert_eq!(
            demo.get("/introspected", &[("authorization", &bearer)])
                .status,
            after_revocation,
            "cache ttl {ttl:?}"
        );
    }
}

#[test]
fn signed_sessions_reject_a_chosen_id() {
    let demo = start(DemoConfig {
        session_key: Some("k".repeat(32)),
        ..DemoConfig::default()
    });
    let first = demo.get("/whoami", &[]);
    let id = first.body["identifier"].as_str().unwrap().to_owned();
    let cookie = pair(&first.set_cookie[0]).to_owned();
    assert_eq!(
        demo.get("/whoami", &[("cookie", &cookie)]).body["identifier"],
        id.as_str()
    );
    let forged = demo.get("/whoami", &[("cookie", &format!("anon={id}"))]);
    assert_ne!(forged.body["identifier"], id.as_str());
    assert_eq!(forged.set_cookie.len(), 1, "a forged id is replaced");
}

#[test]
fn client_ip_ignores_forwarding_from_untrusted_peers() {
    let direct = start(DemoConfig::default());
    let spoofed = direct.get("/ip", &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(spoofed.body["identifier"], "127.0.0.1");

    let proxied = start(DemoConfig {
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..DemoConfig::default()
    });
    let via_proxy = proxied.get(
        "/ip",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 127.0.0.5")],
    );
    assert_eq!(via_proxy.body["identifier"], "203.0.113.9");
    assert_eq!(via_proxy.body["key"], "ip:203.0.113.9");
}

/// The demo's failure budget (here 10 refused credentials per hour per
/// client address, so that none comes back while the test runs; the
/// default is 10 per 10 s), on every route: spent across routes, refused
/// before the next credential is read, other addresses unaffected, `off`
/// for none.
#[test]
fn refused_credentials_spend_one_budget_per_address_on_every_route() {
    let proxied = || DemoConfig {
        trusted_proxies: vec!["127.0.0.0/8".into()],
        failure_budget: Some(
            auth_throttle::Quota::new(10, std::time::Duration::from_secs(3600)).unwrap(),
        ),
        ..DemoConfig::default()
    };
    let demo = start(proxied());
    let from = |client: &'static str, authorization: &str| {
        [
            ("x-forwarded-for", client.to_owned()),
            ("authorization", authorization.to_owned()),
        ]
    };
    let get = |path, headers: &[(&str, String); 2]| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        demo.get(path, &headers)
    };
    let forged = from("198.51.100.9", "Bearer not.a.jwt");
    for path in ["/whoami", "/private", "/admin"]
        .into_iter()
        .cycle()
        .take(10)
    {
        assert_eq!(get(path, &forged).status, 401, "{path}");
    }
    let valid = format!("Bearer {}", demo.demo.sample_token("bob", "read"));
    let spent = get("/whoami", &from("198.51.100.9", &valid));
    assert_eq!(spent.status, 429);
    // One interval (360 s) after the first refusal, less the seconds the
    // requests took.
    let retry: u64 = spent.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((350..=360).contains(&retry), "Retry-After {retry}");
    assert!(
        spent.body["detail"]
            .as_str()
            .unwrap()
            .contains("failed-credentials"),
        "{}",
        spent.body
    );
    assert_eq!(get("/private", &from("198.51.100.10", &valid)).status, 200);

    let off = start(DemoConfig {
        failure_budget: None,
        ..proxied()
    });
    let forged: Vec<(&str, &str)> = vec![
        ("x-forwarded-for", "198.51.100.9"),
        ("authorization", "Bearer not.a.jwt"),
    ];
    for _ in 0..20 {
        assert_eq!(off.get("/private", &forged).status, 401);
    }
}

#[test]
fn hostile_headers_get_clear_errors() {
    let demo = start(DemoConfig::default());
    let huge = format!("anon=1; pad={}", "x".repeat(20 * 1024));
    let answer = demo.get("/whoami", &[("cookie", &huge)]);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.www_authenticate, None);
    assert!(!answer.body.to_string().contains("xxxx"));
    let unknown = demo.get("/nope", &[]);
    assert_eq!(unknown.status, 404);
}
