//! Arbitrary introspection answers (first byte: the HTTP status; the rest:
//! the body) fed to an `IntrospectionBackend` with every optional check on.
//! Oracles: only a 200 whose body is a JSON object with `"active": true`
//! and a string `sub` authenticates; every refusal is a 401 or 503 whose
//! text holds neither the token nor the client secret.
#![no_main]

use std::sync::LazyLock;
use std::time::SystemTime;

use auth_core::step::{Action, Outcome, TransportError};
use auth_core::{Backend, IntrospectionBackend};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "opaque-token-fuzzing-0123456789";
const SECRET: &str = "client-secret-fuzzing-0123456789";
const STATUSES: [u16; 8] = [200, 200, 200, 200, 401, 500, 302, 204];

static BACKEND: LazyLock<IntrospectionBackend> = LazyLock::new(|| {
    IntrospectionBackend::builder("https://idp.example/introspect", "api", SECRET)
        .issuer("https://idp.example")
        .audience("api")
        .token_type("Bearer")
        .allowed_client("web")
        .cache_capacity(0)
        .build()
        .unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(pick & 7)];
    let mut req = http::Request::new(());
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    let now = SystemTime::now();
    let Outcome::Send(step) = BACKEND.authenticate(&req, now) else {
        panic!("an uncached token needs the provider")
    };
    let (action, resume) = step.into_parts();
    assert!(matches!(action, Action::Send(_)));
    let mut response = http::Response::new(body.to_vec());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let reply: Result<_, TransportError> = Ok(response);
    let result = resume
        .resume(reply, &req, now)
        .into_done()
        .expect("one round trip is enough");

    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    match result {
        Ok(who) => {
            let answer = json.expect("accepted a body that is not JSON");
            assert_eq!(status, 200);
            assert_eq!(answer["active"], serde_json::Value::Bool(true));
            assert_eq!(answer["sub"].as_str(), Some(who.auth.identifier()));
        }
        Err(e) => {
            assert!(matches!(e.status().as_u16(), 401 | 503), "{e:?}");
            let text = format!("{e} {e:?} {:?}", e.www_authenticate());
            assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
        }
    }
});
