//! [`IpBackend`]: the client address as identity, trusted-proxy aware.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::ControlFlow;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::backend::{Authenticated, Backend, Outcome};
use crate::data::{AuthData, Source};
use crate::error::{AuthError, ConfigError};
use crate::request::RequestView;

/// The longest text form of an address (`ffff:ffff:…:255.255.255.255`).
const MAX_IP_TEXT: usize = 45;

/// Which forwarded header trusted proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de-facto standard).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:80"` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// Identifies a request by its client address.
///
/// The address is the connection's peer address. Only when that peer is a
/// configured trusted proxy is the forwarded header read: walking it from the
/// right, the first address that is not itself a trusted proxy is the client.
/// From any other peer, forwarded headers are ignored, so a client cannot
/// choose its own address. IPv4-mapped IPv6 addresses are reported as IPv4.
///
/// - Identifier: the address (`192.0.2.7`, `2001:db8::1`).
/// - Key: `ip:<address>`, or `ip:<network>/<len>` with
///   [`ipv6_prefix`](Self::ipv6_prefix), so one host cannot dodge a rate limit
///   by cycling through the addresses of its /64.
/// - Errors: [`AuthError::Misconfigured`] (500) when the server supplied no
///   peer address.
///
/// ```
/// use auth_core::{Backend, IpBackend, PeerAddr};
/// use std::time::SystemTime;
///
/// let backend = IpBackend::new().trust_proxies(["10.0.0.0/8"]).unwrap();
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "203.0.113.9, 10.1.2.3")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert(PeerAddr("10.0.0.1:40000".parse().unwrap()));
/// let who = backend.authenticate(&req, SystemTime::now()).into_done().unwrap().unwrap();
/// assert_eq!(who.auth.identifier(), "203.0.113.9");
/// ```
#[derive(Clone, Debug, Default)]
pub struct IpBackend {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    ipv6_prefix: Option<u8>,
}

impl IpBackend {
    /// Peer address only; no proxy is trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the given proxies: addresses (`10.0.0.1`, `::1`) or CIDRs
    /// (`10.0.0.0/8`, `fd00::/8`). Adds to any already trusted.
    ///
    /// # Errors
    /// [`ConfigError::InvalidProxy`] for an entry that is neither.
    pub fn trust_proxies<I, S>(mut self, proxies: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for proxy in proxies {
            let proxy = proxy.as_ref().trim();
            let net = proxy
                .parse::<IpNet>()
                .or_else(|_| proxy.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::InvalidProxy(proxy.to_owned()))?;
            self.trusted.push(net.trunc());
        }
        Ok(self)
    }

    /// Which forwarded header the trusted proxies write (default
    /// `X-Forwarded-For`). Only that one is read.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by a prefix of this length in [`AuthData::key`]
    /// (64 is typical). The identifier stays the full address.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a length over 128.
    pub fn ipv6_prefix(mut self, len: u8) -> Result<Self, ConfigError> {
        if len > 128 {
            return Err(ConfigError::Invalid {
                name: "ipv6_prefix",
                reason: "prefix length must be at most 128",
            });
        }
        self.ipv6_prefix = Some(len);
        Ok(self)
    }

    /// The client address of `req` as a rate limit counts it:
    /// [`client_ip`](Self::client_ip), an IPv6 address cut to its
    /// [`ipv6_prefix`](Self::ipv6_prefix) (the host bits zero) when one is
    /// set, so one host cannot spread its requests over the addresses of
    /// its own network.
    ///
    /// # Errors
    /// As [`client_ip`](Self::client_ip).
    pub fn client_group(&self, req: &dyn RequestView) -> Result<IpAddr, AuthError> {
        let ip = self.client_ip(req)?;
        Ok(match ip {
            IpAddr::V6(v6) => self
                .v6_group(v6)
                .map_or(ip, |net| IpAddr::V6(net.network())),
            IpAddr::V4(_) => ip,
        })
    }

    /// The network an IPv6 client is counted in, when a prefix is set.
    fn v6_group(&self, ip: Ipv6Addr) -> Option<ipnet::Ipv6Net> {
        let len = self.ipv6_prefix?;
        ipnet::Ipv6Net::new(ip, len).ok().map(|net| net.trunc())
    }

    /// Whether any proxy is trusted (else forwarding headers are never
    /// read).
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `req`, as described on the type.
    ///
    /// # Errors
    /// [`AuthError::Misconfigured`] when the request carries no peer address.
    pub fn client_ip(&self, req: &dyn RequestView) -> Result<IpAddr, AuthError> {
        let peer = req
            .peer_addr()
            .ok_or(AuthError::Misconfigured {
                reason: "the server supplied no peer address (axum: serve with \
                         into_make_service_with_connect_info::<SocketAddr>(); \
                         other servers: insert a PeerAddr extension)",
            })?
            .ip()
            .to_canonical();
        if !self.is_trusted(peer) {
            return Ok(peer);
        }
        let mut walk = Walk::Empty;
        req.for_each_header(self.header.name(), &mut |line| {
            match self.header {
                ForwardedHeader::XForwardedFor => {
                    for element in line.split(|b| *b == b',') {
                        let element = element.trim_ascii();
                        if !element.is_empty() {
                            walk.push(parse_node(element), |ip| self.is_trusted(ip));
                        }
                    }
                }
                ForwardedHeader::Forwarded => {
                    for_each_forwarded_for(line, &mut |node| {
                        walk.push(node, |ip| self.is_trusted(ip))
                    });
                }
            }
            ControlFlow::Continue(())
        });
        Ok(walk.finish().unwrap_or(peer))
    }
}

impl Backend for IpBackend {
    fn authenticate(&self, req: &dyn RequestView, _now: SystemTime) -> Outcome {
        let ip = match self.client_ip(req) {
            Ok(ip) => ip,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let auth = match ip {
            IpAddr::V4(v4) => {
                let mut text = [0u8; 15];
                let len = write_ipv4(&mut text, v4);
                // Digits and dots: always UTF-8.
                let text = std::str::from_utf8(&text[..len]).unwrap_or_default();
                AuthData::bare(Source::Ip, text)
            }
            // RFC 5952 compression is std's job.
            IpAddr::V6(v6) => {
                let mut text = String::with_capacity(MAX_IP_TEXT);
                let _ = write!(text, "{v6}");
                AuthData::bare(Source::Ip, text)
            }
        };
        let auth = match ip {
            IpAddr::V6(v6) => match self.v6_group(v6) {
                Some(net) => auth.with_key_part(net),
                None => auth,
            },
            IpAddr::V4(_) => auth,
        };
        Outcome::Done(Ok(Authenticated::new(auth)))
    }
}

/// Writes `ip` in dotted-decimal form into `out` and returns its length:
/// the same text as its `Display`, which goes through `fmt` machinery costing
/// more than the rest of [`IpBackend::authenticate`] together (callgrind:
/// ~90% of it). On the stack, so the identity's text is allocated once.
fn write_ipv4(out: &mut [u8; 15], ip: Ipv4Addr) -> usize {
    let mut len = 0;
    let mut push = |b: u8| {
        out[len] = b;
        len += 1;
    };
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            push(b'.');
        }
        if octet >= 100 {
            push(b'0' + octet / 100);
        }
        if octet >= 10 {
            push(b'0' + octet / 10 % 10);
        }
        push(b'0' + octet % 10);
    }
    len
}

/// The right-to-left walk over forwarded nodes, done in one left-to-right
/// pass with constant state (header lines can only be visited in order).
///
/// Right to left, the answer is the first untrusted address; if an
/// unparsable node comes first, the trusted hop to its right (it is the last
/// address we can vouch for); if every node is trusted, the leftmost.
#[derive(Debug, Clone, Copy)]
enum Walk {
    /// No node yet.
    Empty,
    /// An untrusted address with only trusted ones to its right.
    Client(IpAddr),
    /// Every node so far is trusted; the leftmost.
    AllTrusted(IpAddr),
    /// An unparsable node, then only trusted ones (the first of them, if any).
    AfterGarbage(Option<IpAddr>),
}

impl Walk {
    fn push(&mut self, node: Option<IpAddr>, trusted: impl Fn(IpAddr) -> bool) {
        *self = match (node, *self) {
            (None, _) => Walk::AfterGarbage(None),
            (Some(ip), _) if !trusted(ip) => Walk::Client(ip),
            (Some(ip), Walk::Empty) => Walk::AllTrusted(ip),
            (Some(ip), Walk::AfterGarbage(None)) => Walk::AfterGarbage(Some(ip)),
            (Some(_), state) => state,
        };
    }

    /// The client address, or `None` to fall back to the peer.
    fn finish(self) -> Option<IpAddr> {
        match self {
            Walk::Empty | Walk::AfterGarbage(None) => None,
            Walk::Client(ip) | Walk::AllTrusted(ip) | Walk::AfterGarbage(Some(ip)) => Some(ip),
        }
    }
}

/// Parses one forwarded node: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]:80`, `fe80::1%eth0` (the zone is dropped: it means nothing
/// off the host). IPv4-mapped IPv6 becomes IPv4.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let node = std::str::from_utf8(node).ok()?;
    let ip = if let Some(rest) = node.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        IpAddr::V6(parse_v6(inner)?)
    } else if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else if let Some((v4, _port)) = node.split_once(':').filter(|(_, p)| is_port(p)) {
        IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?)
    } else {
        IpAddr::V6(parse_v6(node)?)
    };
    Some(ip.to_canonical())
}

fn parse_v6(text: &str) -> Option<Ipv6Addr> {
    let addr = text.split_once('%').map_or(text, |(addr, _zone)| addr);
    addr.parse().ok()
}

fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// Calls `f` with the `for=` node of each element of one RFC 7239
/// `Forwarded` line: `None` when the element has no `for`, its value is
/// `unknown` or obfuscated, or does not parse.
fn for_each_forwarded_for(line: &[u8], f: &mut dyn FnMut(Option<IpAddr>)) {
    for element in split_unquoted(line, b',') {
        if element.trim_ascii().is_empty() {
            continue;
        }
        let mut node = None;
        for pair in split_unquoted(element, b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].eq_ignore_ascii_case(b"for") {
                let value = &pair[eq + 1..];
                let value = match value {
                    [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => inner,
                    [b'"', ..] => &[][..],
                    _ => value,
                };
                node = parse_node(value);
                break;
            }
        }
        f(node);
    }
}

/// Splits at `sep` outside double-quoted strings (honouring `\` escapes).
fn split_unquoted(bytes: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut in_quotes = false;
    let mut escaped = false;
    bytes.split(move |&b| {
        if escaped {
            escaped = false;
            return false;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b if b == sep && !in_quotes => return true,
            _ => {}
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::PeerAddr;
    use proptest::prelude::*;
    use std::net::SocketAddr;

    fn request(peer: Option<&str>, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut req = http::Request::new(());
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                req.headers_mut().append(n, v);
            }
        }
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{peer}: {e}"));
            req.extensions_mut().insert(PeerAddr(addr));
        }
        req
    }

    fn client(backend: &IpBackend, peer: &str, headers: &[(&str, &str)]) -> String {
        backend
            .client_ip(&request(Some(peer), headers))
            .map_or_else(|e| format!("error: {e}"), |ip| ip.to_string())
    }

    fn proxied() -> IpBackend {
        IpBackend::new()
            .trust_proxies(["10.0.0.0/8", "fd00::/8", "127.0.0.1"])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let b = proxied();
        let spoof = [("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=1.1.1.1")];
        assert_eq!(client(&b, "203.0.113.5:1000", &spoof), "203.0.113.5");
        assert_eq!(
            client(&IpBackend::new(), "10.0.0.1:1000", &spoof),
            "10.0.0.1"
        );
    }

    #[test]
    fn trusted_chain_walks_from_the_right() {
        let b = proxied();
        let xff = |v| [("x-forwarded-for", v)];
        // A client-supplied spoof on the left is skipped over.
        assert_eq!(
            client(
                &b,
                "10.0.0.1:1",
                &xff("6.6.6.6, 198.51.100.2, 10.0.0.9, 10.2.2.2")
            ),
            "198.51.100.2"
        );
        // Several header lines count as one list, in order.
        let lines = [
            ("x-forwarded-for", "6.6.6.6, 198.51.100.2"),
            ("x-forwarded-for", "10.0.0.9"),
        ];
        assert_eq!(client(&b, "10.0.0.1:1", &lines), "198.51.100.2");
        // Every hop trusted: the leftmost.
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("10.9.9.9, 10.0.0.9")),
            "10.9.9.9"
        );
        // No header: the peer.
        assert_eq!(client(&b, "10.0.0.1:1", &[]), "10.0.0.1");
        // Garbage right after trusted hops: the nearest trusted hop.
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("1.1.1.1, garbage, 10.0.0.7")),
            "10.0.0.7"
        );
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("1.1.1.1, unknown")),
            "10.0.0.1"
        );
        // Empty list elements are ignored.
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff(" , 198.51.100.3 ,,")),
            "198.51.100.3"
        );
        // Forwarded is not read unless configured.
        assert_eq!(
            client(&b, "10.0.0.1:1", &[("forwarded", "for=198.51.100.3")]),
            "10.0.0.1"
        );
    }

    #[test]
    fn node_forms_ports_zones_and_mapped_addresses() {
        let b = proxied();
        let xff = |v| [("x-forwarded-for", v)];
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("198.51.100.2:8080")),
            "198.51.100.2"
        );
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("[2001:db8::5]:443")),
            "2001:db8::5"
        );
        assert_eq!(client(&b, "10.0.0.1:1", &xff("2001:db8::5")), "2001:db8::5");
        assert_eq!(client(&b, "10.0.0.1:1", &xff("fe80::1%eth0")), "fe80::1");
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("::ffff:198.51.100.9")),
            "198.51.100.9"
        );
        // A mapped trusted peer is recognised as the IPv4 proxy it is.
        assert_eq!(
            client(&b, "[::ffff:10.0.0.1]:1", &xff("198.51.100.4")),
            "198.51.100.4"
        );
        assert_eq!(client(&b, "[::ffff:203.0.113.1]:1", &[]), "203.0.113.1");
        // A mapped address in the list is checked against IPv4 proxies.
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("198.51.100.4, ::ffff:10.3.3.3")),
            "198.51.100.4"
        );
        assert_eq!(
            client(&b, "10.0.0.1:1", &xff("[2001:db8::5]:99999")),
            "10.0.0.1"
        );
    }

    #[test]
    fn rfc7239_forwarded() {
        let b = proxied().forwarded_header(ForwardedHeader::Forwarded);
        let fwd = |v| [("forwarded", v)];
        assert_eq!(
            client(
                &b,
                "10.0.0.1:1",
                &fwd(
                    r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5;by=10.0.0.1"#
                )
            ),
            "2001:db8:cafe::17"
        );
        assert_eq!(
            client(&b, "10.0.0.1:1", &fwd("proto=http;for=198.51.100.8")),
            "198.51.100.8"
        );
        assert_eq!(
            client(&b, "10.0.0.1:1", &fwd(r#"for="198.51.100.8,10.0.0.2""#)),
            "10.0.0.1"
        );
        assert_eq!(client(&b, "10.0.0.1:1", &fwd("for=unknown")), "10.0.0.1");
        assert_eq!(
            client(&b, "10.0.0.1:1", &fwd("for=_hidden, for=10.0.0.3")),
            "10.0.0.3"
        );
        assert_eq!(client(&b, "10.0.0.1:1", &fwd("by=10.0.0.3")), "10.0.0.1");
        assert_eq!(
            client(&b, "10.0.0.1:1", &[("x-forwarded-for", "1.2.3.4")]),
            "10.0.0.1"
        );
    }

    #[test]
    fn missing_peer_is_an_error_not_a_panic() {
        let err = IpBackend::new().client_ip(&request(None, &[])).unwrap_err();
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn config_errors() {
        assert!(matches!(
            IpBackend::new().trust_proxies(["10.0.0.0/33"]),
            Err(ConfigError::InvalidProxy(_))
        ));
        assert!(IpBackend::new().trust_proxies(["nope"]).is_err());
        assert!(IpBackend::new().ipv6_prefix(129).is_err());
    }

    #[test]
    fn ipv6_prefix_groups_the_key_only() {
        let b = IpBackend::new()
            .ipv6_prefix(64)
            .unwrap_or_else(|e| panic!("{e}"));
        let outcome = b.authenticate(
            &request(Some("[2001:db8:1:2:3:4:5:6]:1"), &[]),
            SystemTime::UNIX_EPOCH,
        );
        let who = outcome.into_done().and_then(Result::ok).map(|a| a.auth);
        let who = who.unwrap_or_else(|| panic!("no identity"));
        assert_eq!(who.identifier(), "2001:db8:1:2:3:4:5:6");
        assert_eq!(who.key(), "ip:2001:db8:1:2::/64");
        let v4 = b.authenticate(&request(Some("192.0.2.1:1"), &[]), SystemTime::UNIX_EPOCH);
        let v4 = v4.into_done().and_then(Result::ok).map(|a| a.auth.key());
        assert_eq!(v4.as_deref(), Some("ip:192.0.2.1"));
        // The address a rate limit counts: the same grouping.
        let group = |b: &IpBackend, peer| b.client_group(&request(Some(peer), &[])).ok();
        let net: Option<IpAddr> = "2001:db8:1:2::".parse().ok();
        assert_eq!(group(&b, "[2001:db8:1:2:3:4:5:6]:1"), net);
        assert_eq!(group(&b, "192.0.2.1:1"), "192.0.2.1".parse().ok());
        let full: Option<IpAddr> = "2001:db8:1:2:3:4:5:6".parse().ok();
        assert_eq!(group(&IpBackend::new(), "[2001:db8:1:2:3:4:5:6]:1"), full);
    }

    proptest! {
        #[test]
        fn ipv4_text_is_display(bits in any::<u32>()) {
            let ip = Ipv4Addr::from(bits);
            let mut text = [0u8; 15];
            let len = write_ipv4(&mut text, ip);
            let display = ip.to_string();
            prop_assert_eq!(std::str::from_utf8(&text[..len]), Ok(display.as_str()));
        }

        #[test]
        fn forwarded_never_panics(lines in prop::collection::vec(any::<Vec<u8>>(), 0..4), rfc in any::<bool>()) {
            let b = proxied().forwarded_header(if rfc { ForwardedHeader::Forwarded } else { ForwardedHeader::XForwardedFor });
            let mut req = request(Some("10.0.0.1:1"), &[]);
            for line in &lines {
                if let Ok(v) = http::HeaderValue::from_bytes(line) {
                    req.headers_mut().append(b.header.name(), v);
                }
            }
            let ip = b.client_ip(&req);
            prop_assert!(ip.is_ok());
        }

        #[test]
        fn untrusted_peer_always_wins(peer in any::<Ipv4Addr>(), xff in "[0-9a-f.:, \\[\\]]{0,80}") {
            let b = proxied();
            let peer = IpAddr::V4(peer);
            prop_assume!(!b.is_trusted(peer));
            let got = b.client_ip(&request(Some(&SocketAddr::new(peer, 1).to_string()), &[("x-forwarded-for", &xff)]));
            prop_assert_eq!(got, Ok(peer));
        }

        #[test]
        fn client_behind_trusted_chain_round_trips(client in any::<IpAddr>(), hops in prop::collection::vec(0u8..255, 0..5)) {
            let b = proxied();
            let client = client.to_canonical();
            prop_assume!(!b.is_trusted(client));
            let mut list = vec![client.to_string()];
            list.extend(hops.iter().map(|h| format!("10.0.{h}.1")));
            let got = b.client_ip(&request(Some("10.0.0.1:1"), &[("x-forwarded-for", &list.join(", "))]));
            prop_assert_eq!(got, Ok(client));
        }
    }
}
