//! The demo answers alike on axum, actix-web and the framework-free server:
//! the same status, every header (but `date`, `content-length` and the
//! servers' own names; issued session ids masked) and the same body, down to
//! a wrong method (405 with `Allow`) and an unknown path.

use std::sync::Arc;
use std::thread;

use auth_examples::{Demo, DemoConfig, actix_routes, axum_router, local_addr, serve};
use auth_tests::{serve_actix, serve_axum};

fn start_actix(demo: &Demo) -> String {
    serve_actix(actix_routes(demo))
}

fn start_direct(demo: &Arc<Demo>) -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let base = format!("http://{}", local_addr(&server).unwrap());
    let (demo, server) = (Arc::clone(demo), Arc::clone(&server));
    thread::spawn(move || serve(&demo, &server));
    base
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Issued ids (32 hex digits) masked.
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..at]);
        let run = rest[at..]
            .find(|c: char| !(c.is_ascii_digit() || ('a'..='f').contains(&c)))
            .unwrap_or(rest.len() - at);
        if run == 32 {
            out.push_str("<id>");
        } else {
            out.push_str(&rest[at..at + run.max(1)]);
        }
        rest = &rest[at + run.max(1)..];
    }
    out.push_str(rest);
    out
}

fn call(base: &str, method: &str, path: &str, headers: &[(&str, String)]) -> Answer {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .build(),
    );
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = agent.run(request.body(()).unwrap()).unwrap();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), mask(v.to_str().unwrap())))
        .filter(|(n, _)| !matches!(n.as_str(), "date" | "content-length" | "server"))
        .collect();
    headers.sort();
    let status = response.status().as_u16();
    let body = mask(&response.body_mut().read_to_string().unwrap());
    Answer {
        status,
        headers,
        body,
    }
}

/// A name, method, path, headers and the expected status.
type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>, u16);

#[test]
fn axum_actix_and_direct_answer_alike() {
    let demo = Arc::new(Demo::new(&DemoConfig::default()).unwrap());
    let servers = [
        ("axum", serve_axum(axum_router(&demo))),
        ("actix", start_actix(&demo)),
        ("direct", start_direct(&demo)),
    ];
    let reader = format!("Bearer {}", demo.sample_token("demo-user", "read"));
    let admin = format!("Bearer {}", demo.sample_token("demo-admin", "read admin"));
    let bearer = |value: &str| vec![("authorization", value.to_owned())];
    let cases: Vec<Case<'_>> = vec![
        ("anonymous visitor", "GET", "/whoami", vec![], 200),
        ("token", "GET", "/whoami", bearer(&reader), 200),
        ("bad token", "GET", "/whoami", bearer("Bearer x.y.z"), 401),
        ("private without token", "GET", "/private", vec![], 401),
        ("admin as reader", "GET", "/admin", bearer(&reader), 403),
        ("admin", "GET", "/admin", bearer(&admin), 200),
        ("client address", "GET", "/ip", vec![], 200),
        ("HEAD", "HEAD", "/whoami", bearer(&reader), 200),
        ("wrong method", "POST", "/whoami", vec![], 405),
        (
            "wrong method, no token needed",
            "DELETE",
            "/private",
            vec![],
            405,
        ),
        (
            "preflight to a GET route",
            "OPTIONS",
            "/private",
            vec![
                ("origin", "https://app.example".into()),
                ("access-control-request-method", "GET".into()),
            ],
            405,
        ),
        ("unknown path", "GET", "/nope", vec![], 404),
        ("not configured", "GET", "/introspected", vec![], 404),
        ("not configured either", "GET", "/oidc", vec![], 404),
        (
            "readiness, nothing remote",
            "GET",
            "/health/ready",
            vec![],
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, path, headers, status) in &cases {
        let answers: Vec<(&str, Answer)> = servers
            .iter()
            .map(|(way, base)| (*way, call(base, method, path, headers)))
            .collect();
        let (_, first) = &answers[0];
        if first.status != *status {
            failures.push(format!(
                "{name}: axum answered {} (want {status})",
                first.status
            ));
        }
        if *status == 405
            && first
                .headers
                .iter()
                .find(|(n, _)| n == "allow")
                .map(|(_, v)| v.as_str())
                != Some("GET,HEAD")
        {
            failures.push(format!("{name}: 405 without Allow: GET,HEAD: {first:?}"));
        }
        for (way, answer) in &answers[1..] {
            if answer != first {
                failures.push(format!(
                    "{name}: {way} differs:\n  axum: {first:?}\n  {way}: {answer:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
