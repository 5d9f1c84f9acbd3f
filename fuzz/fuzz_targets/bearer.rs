//! `Authorization` header lines (split on `\n`) into `bearer_token`.
//! Oracle: an accepted token is non-empty, within the cap, token68 only,
//! and is exactly what follows the scheme in the only header line; a line
//! that starts with the Bearer scheme is never "no credentials".
#![no_main]

use auth_core::step::bearer_token;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut builder = http::Request::builder();
    let mut first = None;
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            first.get_or_insert_with(|| value.clone());
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
    }
    let Ok(req) = builder.body(()) else { return };
    let result = bearer_token(&req, CAP);
    let starts_bearer = req
        .headers()
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|line| {
            let line = line.as_bytes().trim_ascii_start();
            line.len() >= 6
                && line[..6].eq_ignore_ascii_case(b"bearer")
                && line.get(6).is_none_or(|b| matches!(b, b' ' | b'\t' | b','))
        });
    if starts_bearer {
        assert!(!matches!(&result, Err(e) if e.is_missing()), "{result:?}");
    }
    if let Ok(token) = result {
        assert!(!token.is_empty() && token.len() <= CAP);
        let body = token.trim_end_matches('=');
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        );
        assert_eq!(
            req.headers()
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .count(),
            1
        );
        let line = first.expect("a token came from some line");
        let line = line.as_bytes().trim_ascii();
        assert!(line[..6].eq_ignore_ascii_case(b"bearer"));
        assert_eq!(line[6..].trim_ascii(), token.as_bytes());
    }
    if let Err(e) = result {
        assert!(matches!(e.status().as_u16(), 400 | 401), "{e:?}");
    }
});
