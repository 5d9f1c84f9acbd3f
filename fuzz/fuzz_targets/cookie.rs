//! `Cookie` header lines (split on `\n`) into `cookie_value`, for a name
//! taken from the first byte. Oracle: the same answer as a full
//! `Cookie::split_parse` of every line, first occurrence wins.
#![no_main]

use auth_core::step::cookie_value;
use cookie::Cookie;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1024;
const NAMES: [&str; 4] = ["sid", "a", "__Host-s", "é"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let mut builder = http::Request::builder();
    let mut lines = Vec::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            lines.push(value.as_bytes().to_vec());
            builder = builder.header(http::header::COOKIE, value);
        }
    }
    let Ok(req) = builder.body(()) else { return };
    let got = cookie_value(&req, name, CAP);

    let got = got
        .map(|v| v.map(str::to_owned))
        .map_err(|e| e.status().as_u16());
    assert_eq!(got, reference(&lines, name, CAP));
});

/// Line by line: over the cap before the cookie is found is a 400;
/// otherwise the first pair with that name in a full parse.
fn reference(lines: &[Vec<u8>], name: &str, cap: usize) -> Result<Option<String>, u16> {
    let mut seen = 0;
    for line in lines {
        seen += line.len();
        if seen > cap {
            return Err(400);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let found = Cookie::split_parse(line)
            .flatten()
            .find(|c| c.name_raw() == Some(name))
            .and_then(|c| c.value_raw().map(|v| trim_quotes(v).to_owned()));
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn trim_quotes(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}
