//! Forwarded-header lines (split on `\n`) through `IpBackend` behind the
//! trusted proxies 10.0.0.0/8 and 2001:db8::/32. The first byte picks the
//! peer and the header. Oracles: an untrusted peer's headers are ignored;
//! the answer is canonical (no IPv4-mapped IPv6); `X-Forwarded-For` lines
//! mean the same as one comma-joined line (RFC 9110 §5.3).
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::SystemTime;

use auth_core::{Backend, ForwardedHeader, IpBackend, PeerAddr};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 4] = [
    "10.0.0.1:443",
    "203.0.113.9:5000",
    "[::ffff:10.0.0.2]:80",
    "[2001:db8::1]:8080",
];
const TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8::/32"];

static XFF: LazyLock<IpBackend> = LazyLock::new(|| {
    IpBackend::new()
        .trust_proxies(TRUSTED)
        .unwrap()
        .ipv6_prefix(64)
        .unwrap()
});
static FORWARDED: LazyLock<IpBackend> = LazyLock::new(|| {
    IpBackend::new()
        .trust_proxies(TRUSTED)
        .unwrap()
        .forwarded_header(ForwardedHeader::Forwarded)
});

fn request(header: &'static str, lines: &[&[u8]], peer: SocketAddr) -> http::Request<()> {
    let mut req = http::Request::new(());
    for line in lines {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            req.headers_mut().append(header, value);
        }
    }
    req.extensions_mut().insert(PeerAddr(peer));
    req
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let peer: SocketAddr = PEERS[usize::from(pick & 3)].parse().unwrap();
    let forwarded = pick & 4 != 0;
    let (backend, header) = if forwarded {
        (&*FORWARDED, "forwarded")
    } else {
        (&*XFF, "x-forwarded-for")
    };
    let lines: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let req = request(header, &lines, peer);

    let ip = backend.client_ip(&req).expect("a peer address is known");
    if let IpAddr::V6(v6) = ip {
        assert!(v6.to_ipv4_mapped().is_none(), "{ip} is not canonical");
    }
    if peer.ip().to_canonical() == "203.0.113.9".parse::<IpAddr>().unwrap() {
        assert_eq!(ip, peer.ip(), "an untrusted peer chose its address");
    }
    let who = backend
        .authenticate(&req, SystemTime::UNIX_EPOCH)
        .into_done()
        .unwrap()
        .unwrap();
    assert!(who.auth.key().starts_with("ip:"));

    if !forwarded {
        let valid: Vec<&[u8]> = lines
            .iter()
            .copied()
            .filter(|l| http::HeaderValue::from_bytes(l).is_ok())
            .collect();
        let joined = valid.join(&b","[..]);
        let one = request(header, &[&joined], peer);
        assert_eq!(
            backend.client_ip(&one),
            Ok(ip),
            "lines and their join disagree"
        );
    }
});
