//! One table of scenarios, run three ways: through the core directly (the
//! route's gate decides, the handler answers from the verdict, the gate's
//! additions are appended), through the axum adapter and through the
//! actix adapter (both over real TCP with a real client).
//!
//! Every way must give the row's status, `WWW-Authenticate`, number of
//! `Set-Cookie` headers and identity; and the three ways must agree on the
//! whole answer: every header (but `date` and `content-length`, with issued
//! session ids masked) and the body, byte for byte. A scenario is one line
//! of the table; a route is one entry of `routes()`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cancelled;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime};

use auth_core::step::UreqTransport;
use auth_core::{
    Algorithm, AnonSessionBackend, Backend, Cause, Chain, Decision, Gate, IntrospectionBackend,
    IpBackend, JwtBackend, JwtValidator, PeerAddr, Policy, Refusal, RequireScopes, Scope,
    SessionBackend, TokenIssuer, Verdict,
};
use auth_tests::{agent, serve_axum, serve_axum_with};
use auth_throttle::{Callers, FailureBudget, MemoryStore, Quota, Rule, Throttle};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};

const SECRET: &[u8] = b"conformance-secret-0123456789abc";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../crates/auth-core/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The RS256 key of the local key server, as an issuer and its public JWK.
fn rsa() -> &'static (TokenIssuer, Jwk) {
    static RSA: OnceLock<(TokenIssuer, Jwk)> = OnceLock::new();
    RSA.get_or_init(|| {
        let key = EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let issuer = TokenIssuer::new(Algorithm::RS256, key)
            .unwrap()
            .key_id("k1")
            .issuer(key_server());
        (issuer, jwk)
    })
}

/// A real key server on 127.0.0.1 (started once): an OIDC discovery
/// document and its JWKS, both counted.
fn key_server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let issuer = base.clone();
        thread::spawn(move || {
            for request in server.incoming_requests() {
                let body = match request.url() {
                    "/.well-known/openid-configuration" => {
                        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")})
                    }
                    "/jwks.json" => json!({"keys": [rsa().1]}),
                    _ => json!({}),
                };
                let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
            }
        });
        base
    })
}

/// Tokens the table refers to by name.
fn token(name: &str) -> String {
    let issuer = TokenIssuer::hs256(SECRET).unwrap().issuer("conf");
    let now = SystemTime::now();
    match name {
        "reader" => issuer
            .issue(json!({"sub": "alice", "scope": "read", "tenant": 7}), now)
            .unwrap(),
        "admin" => issuer
            .issue(
                json!({"sub": "root", "scope": "read admin", "tenant": 1}),
                now,
            )
            .unwrap(),
        "operator" => issuer.issue(json!({"sub": "operator"}), now).unwrap(),
        "no-tenant" => issuer
            .issue(json!({"sub": "bob", "scope": "read"}), now)
            .unwrap(),
        "bad-tenant" => issuer
            .issue(
                json!({"sub": "eve", "scope": "read", "tenant": "seven"}),
                now,
            )
            .unwrap(),
        "expired" => issuer
            .ttl(Duration::ZERO)
            .issue(json!({"sub": "late"}), now - Duration::from_secs(3600))
            .unwrap(),
        "foreign" => TokenIssuer::hs256(SECRET)
            .unwrap()
            .issuer("elsewhere")
            .issue(json!({"sub": "mallory"}), now)
            .unwrap(),
        "rs256" => rsa().0.issue(json!({"sub": "carol"}), now).unwrap(),
        "rs256-unknown-kid" => rsa()
            .0
            .clone()
            .key_id("k9")
            .issue(json!({"sub": "carol"}), now)
            .unwrap(),
        "none-alg" => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.".into(),
        "huge" => format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c"),
        other => panic!("unknown token {other}"),
    }
}

/// A real introspection endpoint on 127.0.0.1 (started once): the token
/// `opaque-good` is active for `svc-1`, anything else is inactive.
fn introspection_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/introspect",
            server.server_addr().to_ip().unwrap()
        );
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                let answer = if body.starts_with("token=opaque-good&") {
                    json!({"active": true, "sub": "svc-1", "scope": "read"})
                } else {
                    json!({"active": false})
                };
                let _ = request.respond(tiny_http::Response::from_string(answer.to_string()));
            }
        });
        url
    })
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/introspect", listener.local_addr().unwrap())
}

/// What a route's handler does; the same in every way.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Handler {
    /// `Option<Auth>`: the identifier, or "anonymous".
    Identity,
    /// `Auth`.
    Required,
    /// `Claims<Typed>`: `sub` and `tenant`.
    Claims,
    /// `Scoped<Admin>`.
    Scoped,
    /// `Auth`, and the handler sets its own cookie.
    OwnCookie,
    /// No layer: the state-based extractor decides (extracted twice: one
    /// identity, one issued cookie), and the handler sends the issued
    /// cookie.
    State,
    /// `Auth` on a route without the layer (a server bug).
    NoLayer,
    /// No extractor: "ok" (a gate with rate limits alone leaves no
    /// verdict).
    Plain,
}

struct Admin;
impl Scope for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

#[derive(serde::Deserialize)]
struct Typed {
    sub: String,
    tenant: u32,
}

fn jwt() -> JwtBackend {
    JwtBackend::new(
        JwtValidator::builder([Algorithm::HS256])
            .hmac_secret(SECRET)
            .issuer("conf")
            .build()
            .unwrap(),
    )
}

fn anon() -> AnonSessionBackend {
    AnonSessionBackend::new("anon").unwrap()
}

/// The key of signed anonymous sessions.
const SESSION_KEY: [u8; 32] = [9u8; 32];

fn signed_anon() -> AnonSessionBackend {
    AnonSessionBackend::builder("anon")
        .signing_key(SESSION_KEY)
        .build()
        .unwrap()
}

/// A signed session value for `id`, as `signed_anon` would have issued it.
fn signed_session(id: &str) -> String {
    let id = id.to_owned();
    let issuer = AnonSessionBackend::builder("anon")
        .signing_key(SESSION_KEY)
        .id_factory(move || id.clone())
        .build()
        .unwrap();
    let issued = issuer.identify(&http::Request::new(())).unwrap();
    let set_cookie = issued.set_cookie.unwrap();
    let pair = set_cookie.split(';').next().unwrap();
    pair.strip_prefix("anon=").unwrap().to_owned()
}

/// One route: its path, its handler and the gate that guards it. Each way
/// builds its own (as a server would, with its own caches and counters),
/// so each way's first request to a remote-key route drives the key fetch
/// itself.
struct Route {
    path: &'static str,
    handler: Handler,
    gate: Gate,
}

/// One rule of `limit` per 900 s (one every 900 / `limit` s, so the
/// seconds in the headers are whole and stable).
fn rule(id: &str, limit: u64) -> Rule {
    Rule::new(id, Quota::new(limit, Duration::from_secs(900)).unwrap()).unwrap()
}

fn throttle(rules: impl IntoIterator<Item = Rule>) -> Throttle {
    rules
        .into_iter()
        .fold(Throttle::builder(MemoryStore::default()), |b, r| b.rule(r))
        .build()
        .unwrap()
}

/// A problem+json body naming what refused: the rule, or the error.
fn problem(mut refusal: Refusal) -> Refusal {
    let detail = match refusal.cause() {
        Cause::RateLimited { rule, retry_after } => format!("{rule}: retry in {retry_after} s"),
        Cause::Auth(error) => error.description().into_owned(),
        _ => "refused".to_owned(),
    };
    let problem = json!({
        "type": "about:blank",
        "title": refusal.status().canonical_reason(),
        "status": refusal.status().as_u16(),
        "detail": detail,
    });
    refusal.set_body(
        http::HeaderValue::from_static("application/problem+json"),
        problem.to_string(),
    );
    refusal
}

fn routes() -> Vec<Route> {
    use Handler::*;
    let ip_proxied = || IpBackend::new().trust_proxies(["127.0.0.0/8"]).unwrap();
    let remote = |validator: auth_core::JwtValidatorBuilder| {
        Policy::new(JwtBackend::new(validator.build().unwrap())).transport(
            UreqTransport::builder()
                .timeout(Duration::from_secs(2))
                .build(),
        )
    };
    let chain = || Policy::new(Chain::new().or(jwt()).or(anon()));
    let route = |path, handler, gate: Gate| Route {
        path,
        handler,
        gate,
    };
    vec![
        route("/whoami", Identity, chain().into()),
        // Anonymous sessions 3 per 900 s; writers (scope `write`) 1.
        route(
            "/limited",
            Identity,
            Gate::new(chain()).throttle(throttle([
                rule("visitors", 3).callers(Callers::ANONYMOUS),
                rule("writers", 1).scope("write"),
            ])),
        ),
        // One new session per client address per 900 s.
        route(
            "/new-sessions",
            Identity,
            Gate::new(signed_anon()).throttle(throttle([rule("new-sessions", 1)
                .callers(Callers::NEW_SESSIONS)
                .by_client_ip()])),
        ),
        // Rate limits alone: 2 per client address.
        route(
            "/by-address",
            Plain,
            Gate::without_auth().throttle(throttle([rule("per-address", 2)
                .callers(Callers::EVERYONE)
                .by_client_ip()])),
        ),
        // The scope is required by the policy: refused before counting.
        route(
            "/admin-limited",
            Identity,
            Gate::new(RequireScopes::new(jwt(), ["admin"])).throttle(throttle([rule("admins", 1)])),
        ),
        // A budget of 2 refused credentials per client address (behind a
        // trusted proxy: the address is X-Forwarded-For's).
        route(
            "/budget",
            Identity,
            Gate::new(chain()).throttle(
                Throttle::builder(MemoryStore::default())
                    .failure_budget(FailureBudget::new(
                        Quota::new(2, Duration::from_secs(900)).unwrap(),
                    ))
                    .client_ip(ip_proxied())
                    .build()
                    .unwrap(),
            ),
        ),
        // One request per 900 s, but the operator is exempt: only when a
        // verifier vouched for it (a token), not a session cookie's word.
        route(
            "/exempt",
            Identity,
            Gate::new(
                Chain::new()
                    .or(jwt())
                    .or(SessionBackend::new("session").unwrap()),
            )
            .throttle(
                Throttle::builder(MemoryStore::default())
                    .rule(rule("everyone", 1))
                    .exempt(|who| who.identifier() == "operator")
                    .build()
                    .unwrap(),
            ),
        ),
        // Every refusal reworded, the rule named in the 429.
        route(
            "/shaped",
            Identity,
            Gate::new(chain())
                .throttle(throttle([rule("shaped", 1)]))
                .render_refusals(problem),
        ),
        route("/private", Identity, Policy::new(jwt()).realm("api").into()),
        route(
            "/required",
            Required,
            Policy::new(jwt()).optional().realm("api").into(),
        ),
        route(
            "/admin",
            Identity,
            RequireScopes::new(jwt(), ["admin"]).into(),
        ),
        route(
            "/scoped",
            Scoped,
            Policy::new(Chain::new().or(jwt()).or(anon()))
                .realm("api")
                .into(),
        ),
        route("/claims", Claims, Policy::new(jwt()).realm("api").into()),
        route("/optional", Identity, Policy::new(jwt()).optional().into()),
        route("/cookies", OwnCookie, anon().into()),
        route(
            "/state",
            State,
            Chain::new()
                .or(SessionBackend::new("session").unwrap())
                .or(anon())
                .into(),
        ),
        route("/no-layer", NoLayer, anon().into()),
        route(
            "/session",
            Identity,
            SessionBackend::new("session").unwrap().into(),
        ),
        route("/signed", Identity, signed_anon().into()),
        route("/ip", Identity, IpBackend::new().into()),
        route("/ip-proxied", Identity, ip_proxied().into()),
        route(
            "/introspected",
            Identity,
            IntrospectionBackend::builder(introspection_url(), "api", "secret")
                .allow_http(true)
                .build()
                .unwrap()
                .into(),
        ),
        route(
            "/introspect-down",
            Identity,
            Policy::new(
                IntrospectionBackend::builder(closed_port(), "api", "secret")
                    .allow_http(true)
                    .build()
                    .unwrap(),
            )
            .transport(
                UreqTransport::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .build(),
            )
            .into(),
        ),
        route(
            "/jwks",
            Identity,
            remote(
                JwtValidator::builder([Algorithm::RS256])
                    .jwks_url(&format!("{}/jwks.json", key_server()))
                    .allow_http(true),
            )
            .into(),
        ),
        route(
            "/discovery",
            Identity,
            remote(
                JwtValidator::builder([Algorithm::RS256])
                    .oidc_issuer(key_server())
                    .allow_http(true),
            )
            .into(),
        ),
        route(
            "/problem",
            Identity,
            Gate::new(jwt()).render_refusals(problem),
        ),
    ]
}

/// Expected identity in the body.
#[derive(Clone, Copy, Debug)]
enum Id {
    Is(&'static str),
    Issued,
    Anonymous,
    /// A refusal: an `error` member, no identity.
    Refused,
    /// Not JSON of ours (a problem+json body, a plain "ok"): checked only
    /// for equality between the ways.
    Other,
    /// A body that holds this text.
    Has(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Peer {
    /// The server supplies the client address.
    Known,
    /// It does not (axum without `ConnectInfo`; the core without a
    /// `PeerAddr`). actix always knows it over TCP, so it is not asked.
    NoPeer,
}

struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Header values may name a token as `{token:NAME}`.
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    www_authenticate: Option<&'static str>,
    set_cookies: usize,
    id: Id,
    peer: Peer,
}

/// `-` for no `WWW-Authenticate`, else its value.
macro_rules! www {
    (-) => {
        None
    };
    ($value:expr) => {
        Some($value)
    };
}

/// One scenario per line: `name = METHOD path [header: value, ...] =>
/// status, www-authenticate, set-cookie count, identity[, NoPeer];`
macro_rules! table {
    ($($name:literal = $method:ident $path:literal [$($h:literal: $v:tt),*] => $status:literal, $www:tt, $cookies:literal, $id:ident $(($is:literal))? $(, $peer:ident)?;)*) => {
        &[$(Scenario {
            name: $name,
            method: stringify!($method),
            path: $path,
            headers: &[$(($h, $v)),*],
            status: $status,
            www_authenticate: www!($www),
            set_cookies: $cookies,
            id: Id::$id $(($is))?,
            peer: table!(@peer $($peer)?),
        }),*]
    };
    (@peer) => { Peer::Known };
    (@peer $peer:ident) => { Peer::$peer };
}

const INVALID: &str = r#"Bearer error="invalid_token", error_description="malformed token""#;
const ANON: &str = "anon=feedface000000000000000000000042";
const LIMITED: &str = "anon=11111111111111111111111111111111";
const SHAPED: &str = "anon=22222222222222222222222222222222";

#[rustfmt::skip]
const SCENARIOS: &[Scenario] = table![
    // Chain: JWT, else anonymous session.
    "chain: nothing -> anonymous issued" = GET "/whoami" [] => 200, -, 1, Issued;
    "chain: anonymous cookie reused" = GET "/whoami" ["cookie": ANON] => 200, -, 0, Is("feedface000000000000000000000042");
    "chain: valid token wins over cookie" = GET "/whoami" ["authorization": "Bearer {token:reader}", "cookie": ANON] => 200, -, 0, Is("alice");
    "chain: lowercase scheme" = GET "/whoami" ["authorization": "bearer {token:reader}"] => 200, -, 0, Is("alice");
    "chain: bad token is not downgraded" = GET "/whoami" ["authorization": "Bearer not.a.jwt"] => 401, INVALID, 0, Refused;
    "chain: Bearer without token" = GET "/whoami" ["authorization": "Bearer"] => 400, r#"Bearer error="invalid_request", error_description="empty bearer token""#, 0, Refused;
    "chain: other scheme -> anonymous" = GET "/whoami" ["authorization": "Basic dXNlcjpwYXNz"] => 200, -, 1, Issued;
    "chain: a bad bearer line after another scheme is not downgraded" = GET "/whoami" ["authorization": "Basic dXNlcjpwYXNz", "authorization": "Bearer not token68!"] => 400, r#"Bearer error="invalid_request", error_description="more than one Authorization header""#, 0, Refused;
    "chain: a tab after the scheme is still the Bearer scheme" = GET "/whoami" ["authorization": "Bearer\tnot.a.jwt"] => 401, INVALID, 0, Refused;
    "chain: Bearer named after a comma" = GET "/whoami" ["authorization": "Basic dXNlcjpwYXNz, Bearer abc"] => 400, r#"Bearer error="invalid_request", error_description="a bearer token must be the only credential""#, 0, Refused;
    "chain: two Authorization headers" = GET "/whoami" ["authorization": "Bearer {token:reader}", "authorization": "Bearer {token:admin}"] => 400, r#"Bearer error="invalid_request", error_description="more than one Authorization header""#, 0, Refused;
    "chain: expired token" = GET "/whoami" ["authorization": "Bearer {token:expired}"] => 401, r#"Bearer error="invalid_token", error_description="token expired""#, 0, Refused;
    "chain: foreign issuer" = GET "/whoami" ["authorization": "Bearer {token:foreign}"] => 401, r#"Bearer error="invalid_token", error_description="token has the wrong issuer""#, 0, Refused;
    "chain: malformed anonymous cookie replaced" = GET "/whoami" ["cookie": "anon=\"a\\b\""] => 200, -, 1, Issued;
    "chain: an id not of the issued format is replaced" = GET "/whoami" ["cookie": "anon=operator"] => 200, -, 1, Issued;
    // Rate limits after the identity (the throttle inside the auth layer).
    "limited: a new session's first request counts" = GET "/limited" [] => 200, -, 1, Issued;
    "limited: 1st of 3" = GET "/limited" ["cookie": LIMITED] => 200, -, 0, Is("11111111111111111111111111111111");
    "limited: 2nd of 3" = GET "/limited" ["cookie": LIMITED] => 200, -, 0, Is("11111111111111111111111111111111");
    "limited: 3rd of 3" = GET "/limited" ["cookie": LIMITED] => 200, -, 0, Is("11111111111111111111111111111111");
    "limited: the 4th is a 429" = GET "/limited" ["cookie": LIMITED] => 429, -, 0, Other;
    "limited: another route does not count them" = GET "/whoami" ["cookie": LIMITED] => 200, -, 0, Is("11111111111111111111111111111111");
    "a path no route serves: the router's 404, no gate" = GET "/nowhere" ["cookie": LIMITED] => 404, -, 0, Other;
    "limited: a token without a scope claim is counted by no rule" = GET "/limited" ["authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    "limited: a bad token is refused before any counting" = GET "/limited" ["authorization": "Bearer not.a.jwt"] => 401, INVALID, 0, Refused;
    // New sessions per client address: the one over the cap gets a 429 and no session.
    "new sessions: the first is issued" = GET "/new-sessions" [] => 200, -, 1, Issued;
    "new sessions: over the cap, a 429 without the cookie" = GET "/new-sessions" [] => 429, -, 0, Has("new-sessions");
    "new sessions: a signed session sent back is not new" = GET "/new-sessions" ["cookie": "anon={signed:5191ed00000000000000000000000001}"] => 200, -, 0, Is("5191ed00000000000000000000000001");
    "new sessions: an unsigned id is a new session, over the cap: 429, no cookie" = GET "/new-sessions" ["cookie": ANON] => 429, -, 0, Has("new-sessions");
    // Rate limits alone, by client address: no verdict, no identity.
    "limits alone: 1st of 2" = GET "/by-address" [] => 200, -, 0, Has("ok");
    "limits alone: 2nd of 2" = GET "/by-address" ["cookie": ANON] => 200, -, 0, Has("ok");
    "limits alone: the 3rd is a 429" = GET "/by-address" ["authorization": "Bearer {token:reader}"] => 429, -, 0, Has("per-address");
    // A scope the policy requires: refused before any counting.
    "scope in the policy: a reader gets 403" = GET "/admin-limited" ["authorization": "Bearer {token:reader}"] => 403, r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#, 0, Refused;
    "scope in the policy: 403 again, nothing counted" = GET "/admin-limited" ["authorization": "Bearer {token:reader}"] => 403, r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#, 0, Refused;
    "scope in the policy: an admin is counted" = GET "/admin-limited" ["authorization": "Bearer {token:admin}"] => 200, -, 0, Is("root");
    "scope in the policy: the admin's 2nd is a 429" = GET "/admin-limited" ["authorization": "Bearer {token:admin}"] => 429, -, 0, Has("admins");
    // A failure budget: refused credentials spend it; once spent, the address gets 429 before its credential is read.
    "budget: a forged token is a 401 and spends one" = GET "/budget" ["x-forwarded-for": "198.51.100.1", "authorization": "Bearer not.a.jwt"] => 401, INVALID, 0, Refused;
    "budget: no token, an anonymous session, spends nothing" = GET "/budget" ["x-forwarded-for": "198.51.100.1"] => 200, -, 1, Issued;
    "budget: a malformed one is a 400 and spends the last" = GET "/budget" ["x-forwarded-for": "198.51.100.1", "authorization": "Bearer"] => 400, r#"Bearer error="invalid_request", error_description="empty bearer token""#, 0, Refused;
    "budget: spent, even a valid token gets the budget's 429" = GET "/budget" ["x-forwarded-for": "198.51.100.1", "authorization": "Bearer {token:reader}"] => 429, -, 0, Has("failed-credentials");
    "budget: spent, a new visitor gets 429 and no session" = GET "/budget" ["x-forwarded-for": "198.51.100.1"] => 429, -, 0, Has("failed-credentials");
    "budget: another address is unaffected" = GET "/budget" ["x-forwarded-for": "198.51.100.2", "authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    // Exemptions apply to vouched identities only.
    "exempt: the operator's token, 1st" = GET "/exempt" ["authorization": "Bearer {token:operator}"] => 200, -, 0, Is("operator");
    "exempt: the operator's token, 2nd: exempt" = GET "/exempt" ["authorization": "Bearer {token:operator}"] => 200, -, 0, Is("operator");
    "exempt: a session cookie saying operator, 1st" = GET "/exempt" ["cookie": "session=operator"] => 200, -, 0, Is("operator");
    "exempt: a session cookie saying operator, 2nd: counted" = GET "/exempt" ["cookie": "session=operator"] => 429, -, 0, Has("everyone");
    // One renderer for every refusal of a gate: the 429 names its rule.
    "shaped: the 1st passes" = GET "/shaped" ["cookie": SHAPED] => 200, -, 0, Is("22222222222222222222222222222222");
    "shaped: the 429 names its rule" = GET "/shaped" ["cookie": SHAPED] => 429, -, 0, Has(r#""detail":"shaped: retry in 900 s""#);
    "shaped: an authentication refusal is reworded too" = GET "/shaped" ["authorization": "Bearer not.a.jwt"] => 401, INVALID, 0, Has(r#""detail":"invalid credentials: malformed token""#);
    // JWT required, with a realm.
    "private: nothing" = GET "/private" [] => 401, r#"Bearer realm="api""#, 0, Refused;
    "private: valid" = GET "/private" ["authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    "private: alg none" = GET "/private" ["authorization": "Bearer {token:none-alg}"] => 401, r#"Bearer realm="api", error="invalid_token", error_description="malformed token""#, 0, Refused;
    "private: oversized token" = GET "/private" ["authorization": "Bearer {token:huge}"] => 401, r#"Bearer realm="api", error="invalid_token", error_description="bearer token exceeds the size limit""#, 0, Refused;
    "private: not token68" = GET "/private" ["authorization": "Bearer a b"] => 400, r#"Bearer realm="api", error="invalid_request", error_description="bearer token is not a token68 string""#, 0, Refused;
    // The Auth extractor on an optional layer: refused as the policy words it.
    "required extractor: nothing" = GET "/required" [] => 401, r#"Bearer realm="api""#, 0, Refused;
    "required extractor: valid" = GET "/required" ["authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    // Scopes: the RequireScopes backend.
    "admin: reader lacks scope" = GET "/admin" ["authorization": "Bearer {token:reader}"] => 403, r#"Bearer error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#, 0, Refused;
    "admin: admin" = GET "/admin" ["authorization": "Bearer {token:admin}"] => 200, -, 0, Is("root");
    "admin: nothing" = GET "/admin" [] => 401, "Bearer", 0, Refused;
    // Scopes: the Scoped extractor, with a realm, behind JWT -> anonymous.
    "scoped: reader lacks scope (realm named)" = GET "/scoped" ["authorization": "Bearer {token:reader}"] => 403, r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin""#, 0, Refused;
    "scoped: admin" = GET "/scoped" ["authorization": "Bearer {token:admin}"] => 200, -, 0, Is("root");
    "scoped: anonymous caller is asked for a token" = GET "/scoped" ["cookie": ANON] => 401, r#"Bearer realm="api""#, 0, Refused;
    "scoped: new anonymous caller is asked, and keeps its cookie" = GET "/scoped" [] => 401, r#"Bearer realm="api""#, 1, Refused;
    // Typed claims.
    "claims: every claim, registered ones too" = GET "/claims" ["authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    "claims: a missing field is named" = GET "/claims" ["authorization": "Bearer {token:no-tenant}"] => 401, r#"Bearer realm="api", error="invalid_token", error_description="token claim `tenant` is missing""#, 0, Refused;
    "claims: a mistyped field is named, not its value" = GET "/claims" ["authorization": "Bearer {token:bad-tenant}"] => 401, r#"Bearer realm="api", error="invalid_token", error_description="token claim `tenant` has an unexpected type or value""#, 0, Refused;
    // Optional mode.
    "optional: nothing" = GET "/optional" [] => 200, -, 0, Anonymous;
    "optional: valid" = GET "/optional" ["authorization": "Bearer {token:reader}"] => 200, -, 0, Is("alice");
    "optional: invalid still refused" = GET "/optional" ["authorization": "Bearer x.y.z"] => 401, INVALID, 0, Refused;
    // The handler's own cookie next to an issued one.
    "cookies: handler's and issued" = GET "/cookies" [] => 200, -, 2, Issued;
    "cookies: handler's only" = GET "/cookies" ["cookie": ANON] => 200, -, 1, Is("feedface000000000000000000000042");
    // The state-based extractor, without the layer.
    "state: issued" = GET "/state" [] => 200, -, 1, Issued;
    "state: session" = GET "/state" ["cookie": "session=s-1"] => 200, -, 0, Is("s-1");
    // An extractor without its layer: a fixed 500.
    "no layer: 500" = GET "/no-layer" [] => 500, -, 0, Refused;
    // Session cookie required.
    "session: nothing" = GET "/session" [] => 401, -, 0, Refused;
    "session: present" = GET "/session" ["cookie": "theme=dark; session=u-1=x"] => 200, -, 0, Is("u-1=x");
    "session: two Cookie headers" = GET "/session" ["cookie": "theme=dark", "cookie": "session=u-2"] => 200, -, 0, Is("u-2");
    "session: malformed value" = GET "/session" ["cookie": "session=a\\b"] => 401, -, 0, Refused;
    // Signed anonymous sessions.
    "signed: nothing -> issued" = GET "/signed" [] => 200, -, 1, Issued;
    "signed: self-chosen id replaced" = GET "/signed" ["cookie": ANON] => 200, -, 1, Issued;
    // Client address.
    "ip: peer" = GET "/ip" [] => 200, -, 0, Is("127.0.0.1");
    "ip: spoof from untrusted peer ignored" = GET "/ip" ["x-forwarded-for": "203.0.113.9"] => 200, -, 0, Is("127.0.0.1");
    "ip: trusted proxy chain" = GET "/ip-proxied" ["x-forwarded-for": "6.6.6.6, 203.0.113.9, 127.0.0.3"] => 200, -, 0, Is("203.0.113.9");
    "ip: mapped address normalised" = GET "/ip-proxied" ["x-forwarded-for": "::ffff:198.51.100.9"] => 200, -, 0, Is("198.51.100.9");
    "ip: garbage after trusted hop" = GET "/ip-proxied" ["x-forwarded-for": "garbage"] => 200, -, 0, Is("127.0.0.1");
    "ip: Forwarded not read when XFF configured" = GET "/ip-proxied" ["forwarded": "for=203.0.113.9"] => 200, -, 0, Is("127.0.0.1");
    "ip: no client address is a fixed 500" = GET "/ip" [] => 500, -, 0, Refused, NoPeer;
    // Token introspection against a real endpoint, and a provider that is down.
    "introspection: active token" = GET "/introspected" ["authorization": "Bearer opaque-good"] => 200, -, 0, Is("svc-1");
    "introspection: inactive token" = GET "/introspected" ["authorization": "Bearer opaque-revoked"] => 401, r#"Bearer error="invalid_token", error_description="token is not active""#, 0, Refused;
    "introspection: no token" = GET "/introspected" [] => 401, "Bearer", 0, Refused;
    "introspection: provider down, nothing about it in the body" = GET "/introspect-down" ["authorization": "Bearer opaque-good"] => 503, -, 0, Refused;
    // Remote keys: the first request of each way drives the fetch.
    "jwks: key fetched, token accepted" = GET "/jwks" ["authorization": "Bearer {token:rs256}"] => 200, -, 0, Is("carol");
    "jwks: unknown kid" = GET "/jwks" ["authorization": "Bearer {token:rs256-unknown-kid}"] => 401, r#"Bearer error="invalid_token", error_description="unknown signing key""#, 0, Refused;
    "discovery: document, then keys, then accepted" = GET "/discovery" ["authorization": "Bearer {token:rs256}"] => 200, -, 0, Is("carol");
    // A policy's own wording of its refusals.
    "problem+json: nothing" = GET "/problem" [] => 401, "Bearer", 0, Other;
    // CORS preflight passes; an OPTIONS without Origin does not.
    "preflight passes through" = OPTIONS "/private" ["access-control-request-method": "GET", "origin": "https://app.example"] => 200, -, 0, Anonymous;
    "preflight to a required extractor: asked for a token" = OPTIONS "/required" ["access-control-request-method": "GET", "origin": "https://app.example"] => 401, r#"Bearer realm="api""#, 0, Refused;
    "OPTIONS without Origin is authenticated" = OPTIONS "/private" ["access-control-request-method": "GET"] => 401, r#"Bearer realm="api""#, 0, Refused;
];

/// `{token:<name>}` and `{signed:<id>}` replaced by a token and a signed
/// session value.
fn expand(value: &str) -> String {
    if let Some((before, rest)) = value.split_once("{token:") {
        let (name, after) = rest.split_once('}').unwrap();
        return format!("{before}{}{after}", token(name));
    }
    if let Some((before, rest)) = value.split_once("{signed:") {
        let (id, after) = rest.split_once('}').unwrap();
        return format!("{before}{}{after}", signed_session(id));
    }
    value.to_owned()
}

/// What one way answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-case names, sorted by name (stable), without `date` and
    /// `content-length`; issued session ids masked.
    headers: Vec<(String, String)>,
    /// Issued session ids masked.
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }
}

/// The ids of the sessions an answer issues (`Set-Cookie: anon=<id>...`,
/// the id before any signature).
fn issued_ids(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.strip_prefix("anon="))
        .filter_map(|rest| rest.split([';', '.']).next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Masks the ids of issued sessions, and the value of an issued `anon`
/// cookie (signed ones are longer): they differ from one way to another.
fn mask(text: &str, issued: &[String]) -> String {
    let mut text = match text.strip_prefix("anon=") {
        Some(rest) => match rest.split_once(';') {
            Some((_, attributes)) => format!("anon=<issued>;{attributes}"),
            None => "anon=<issued>".into(),
        },
        None => text.to_owned(),
    };
    for id in issued {
        text = text.replace(id.as_str(), "<id>");
    }
    text
}

fn answer(status: u16, headers: Vec<(String, String)>, body: &str) -> Answer {
    let issued = issued_ids(&headers);
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), mask(&v, &issued)))
        .filter(|(n, _)| n != "date" && n != "content-length")
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    Answer {
        status,
        headers,
        body: mask(body, &issued),
    }
}

/// The handlers' identity body: the identifier, or "anonymous".
fn identity_body(identifier: Option<&str>) -> String {
    json!({"identifier": identifier.unwrap_or("anonymous")}).to_string()
}

const TEXT: &str = "text/plain; charset=utf-8";
const THEME: &str = "theme=dark; Path=/";

fn text(body: String) -> http::Response<String> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(TEXT),
    );
    response
}

/// A handler's answer from the verdict, in the core's terms: its response,
/// or the extractor's refusal.
fn handle(handler: Handler, verdict: Option<&Verdict>) -> Result<http::Response<String>, Refusal> {
    let Some(verdict) = verdict else {
        return Ok(text("ok".into()));
    };
    match handler {
        Handler::Identity => Ok(text(identity_body(verdict.auth().map(|a| a.identifier())))),
        Handler::Required | Handler::State | Handler::NoLayer => {
            Ok(text(identity_body(Some(verdict.require()?.identifier()))))
        }
        Handler::Claims => {
            let typed: Typed = verdict.claims()?;
            let body = json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string();
            Ok(text(body))
        }
        Handler::Scoped => Ok(text(identity_body(Some(
            verdict.require_scopes(Admin::SCOPES)?.identifier(),
        )))),
        Handler::OwnCookie => {
            let mut response = text(identity_body(Some(verdict.require()?.identifier())));
            response.headers_mut().append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_static(THEME),
            );
            Ok(response)
        }
        Handler::Plain => Ok(text("ok".into())),
    }
}

fn from_response(response: &http::Response<String>) -> Answer {
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    answer(response.status().as_u16(), headers, response.body())
}

/// The core directly: the route's gate decides; the handler answers from
/// the verdict (or its extractor refuses); the gate's additions are
/// appended, as the adapters do.
fn through_core(s: &Scenario) -> Answer {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    let Some(route) = ROUTES.get_or_init(routes).iter().find(|r| r.path == s.path) else {
        // No route: every way's router answers 404, and no gate runs.
        let mut response = http::Response::new(String::new());
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return from_response(&response);
    };
    let mut req = http::Request::builder().method(s.method);
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut req = req.body(()).unwrap();
    if s.peer == Peer::Known {
        req.extensions_mut()
            .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    }
    if route.handler == Handler::NoLayer {
        return from_response(&Refusal::server_error("no layer").into_response());
    }
    match route.gate.decide_blocking(&req) {
        Decision::Refuse(refusal) => from_response(&refusal.into_response()),
        Decision::Proceed(proceed) => {
            let mut response = handle(route.handler, proceed.verdict.as_ref())
                .unwrap_or_else(Refusal::into_response);
            proceed.additions.append_to(response.headers_mut());
            from_response(&response)
        }
    }
}

fn axum_app() -> axum::Router {
    use auth_axum::{Auth, AuthLayer, AuthState, Claims, Scoped, StateAuth};
    use axum::response::IntoResponse;
    use axum::routing::{MethodRouter, get};
    async fn identity(who: Option<Auth>) -> String {
        identity_body(who.as_ref().map(|Auth(a)| a.identifier()))
    }
    async fn required(Auth(who): Auth) -> String {
        identity_body(Some(who.identifier()))
    }
    async fn claims(Claims(typed): Claims<Typed>) -> String {
        json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string()
    }
    async fn scoped(Scoped(who, _): Scoped<Admin>) -> String {
        identity_body(Some(who.identifier()))
    }
    async fn own_cookie(Auth(who): Auth) -> impl IntoResponse {
        (
            [(http::header::SET_COOKIE, THEME)],
            identity_body(Some(who.identifier())),
        )
    }
    async fn state(who: StateAuth, again: StateAuth) -> impl IntoResponse {
        assert_eq!(who.auth, again.auth, "one identity per request");
        assert!(again.issued_cookie.is_none(), "its cookie with the first");
        (who.set_cookie(), identity_body(Some(who.auth.identifier())))
    }
    async fn plain() -> &'static str {
        "ok"
    }
    let mut app = axum::Router::new();
    for Route {
        path,
        handler,
        gate,
    } in routes()
    {
        let method: MethodRouter = match handler {
            Handler::Identity => get(identity).options(identity),
            Handler::Required => get(required).options(required),
            Handler::Claims => get(claims),
            Handler::Scoped => get(scoped),
            Handler::OwnCookie => get(own_cookie),
            Handler::NoLayer => get(required),
            Handler::Plain => get(plain),
            Handler::State => {
                let policy = gate.policy().unwrap().clone();
                app = app.merge(
                    axum::Router::new()
                        .route(path, get(state))
                        .with_state(AuthState::new(policy)),
                );
                continue;
            }
        };
        let route = axum::Router::new().route(path, method);
        app = app.merge(match handler {
            Handler::NoLayer => route,
            // route_layer: the gate guards the route, not the router's
            // fallback (a path no route serves stays a plain 404).
            _ => route.route_layer(AuthLayer::new(gate)),
        });
    }
    app
}

fn serve_actix() -> String {
    use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
    use auth_actix::{Auth, AuthState, Authentication, Claims, IssuedCookie, Scoped};
    fn text(body: String) -> HttpResponse {
        HttpResponse::Ok().content_type(TEXT).body(body)
    }
    async fn identity(who: Option<Auth>) -> HttpResponse {
        text(identity_body(who.as_ref().map(|Auth(a)| a.identifier())))
    }
    async fn required(Auth(who): Auth) -> HttpResponse {
        text(identity_body(Some(who.identifier())))
    }
    async fn claims(Claims(typed): Claims<Typed>) -> HttpResponse {
        text(json!({"identifier": typed.sub, "tenant": typed.tenant}).to_string())
    }
    async fn scoped(Scoped(who, _): Scoped<Admin>) -> HttpResponse {
        text(identity_body(Some(who.identifier())))
    }
    async fn own_cookie(Auth(who): Auth) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(TEXT)
            .append_header(("set-cookie", THEME))
            .body(identity_body(Some(who.identifier())))
    }
    // actix builds both extractors before polling either: one decision.
    async fn state(Auth(who): Auth, Auth(again): Auth, req: HttpRequest) -> HttpResponse {
        assert_eq!(who, again, "one identity per request");
        let mut response = text(identity_body(Some(who.identifier())));
        if let Some(IssuedCookie(cookie)) = req.extensions().get::<IssuedCookie>() {
            response
                .headers_mut()
                .append(actix_web::http::header::SET_COOKIE, cookie.clone());
        }
        response
    }
    async fn plain() -> HttpResponse {
        text("ok".into())
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                let mut app = App::new();
                for Route {
                    path,
                    handler,
                    gate,
                } in routes()
                {
                    let options = web::method(actix_web::http::Method::OPTIONS);
                    let scope = web::scope(path);
                    let scope = match handler {
                        Handler::Identity => scope
                            .route("", web::get().to(identity))
                            .route("", options.to(identity)),
                        Handler::Required => scope
                            .route("", web::get().to(required))
                            .route("", options.to(required)),
                        Handler::Claims => scope.route("", web::get().to(claims)),
                        Handler::Scoped => scope.route("", web::get().to(scoped)),
                        Handler::OwnCookie => scope.route("", web::get().to(own_cookie)),
                        Handler::NoLayer => scope.route("", web::get().to(required)),
                        Handler::Plain => scope.route("", web::get().to(plain)),
                        Handler::State => {
                            let policy = gate.policy().unwrap().clone();
                            app = app.service(
                                scope
                                    .app_data(web::Data::new(AuthState::new(policy)))
                                    .route("", web::get().to(state)),
                            );
                            continue;
                        }
                    };
                    app = match handler {
                        Handler::NoLayer => app.service(scope),
                        _ => app.service(scope.wrap(Authentication::new(gate))),
                    };
                }
                app
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    base
}

fn over_tcp(base: &str, s: &Scenario) -> Answer {
    let mut req = http::Request::builder()
        .method(s.method)
        .uri(format!("{base}{}", s.path));
    for (name, value) in s.headers {
        req = req.header(*name, expand(value));
    }
    let mut response = agent().run(req.body(()).unwrap()).unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    answer(status, headers, &body)
}

fn check(way: &str, s: &Scenario, a: &Answer) -> Result<(), String> {
    let fail = |what: String| Err(format!("[{way}] {}: {what}", s.name));
    if a.status != s.status {
        return fail(format!("status {} (want {}); {a:?}", a.status, s.status));
    }
    if a.header("www-authenticate") != s.www_authenticate {
        return fail(format!(
            "WWW-Authenticate {:?} (want {:?})",
            a.header("www-authenticate"),
            s.www_authenticate
        ));
    }
    if a.count("set-cookie") != s.set_cookies {
        return fail(format!(
            "{} Set-Cookie (want {}): {:?}",
            a.count("set-cookie"),
            s.set_cookies,
            a.headers
        ));
    }
    let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    let identifier = body.get("identifier").and_then(Value::as_str);
    let ok = match s.id {
        Id::Is(id) => identifier == Some(id),
        Id::Issued => identifier == Some("<id>"),
        Id::Anonymous => identifier == Some("anonymous"),
        Id::Refused => identifier.is_none() && body.get("error").is_some(),
        Id::Other => true,
        Id::Has(text) => a.body.contains(text),
    };
    if !ok {
        return fail(format!("body {} (want {:?})", a.body, s.id));
    }
    Ok(())
}

fn log() {
    auth_tests::logs::captured();
}

fn logged(needle: &str) -> bool {
    auth_tests::logs::text().contains(needle)
}

#[test]
fn one_table_three_ways() {
    log();
    assert!(
        SCENARIOS.len() >= 55,
        "the table has {} rows",
        SCENARIOS.len()
    );
    let axum = serve_axum(axum_app());
    let axum_no_peer = serve_axum_with(axum_app(), false);
    let actix = serve_actix();
    let mut failures = Vec::new();
    for s in SCENARIOS {
        let core = through_core(s);
        let mut ways = vec![("core", core)];
        match s.peer {
            Peer::Known => {
                ways.push(("axum", over_tcp(&axum, s)));
                ways.push(("actix", over_tcp(&actix, s)));
            }
            Peer::NoPeer => ways.push(("axum", over_tcp(&axum_no_peer, s))),
        }
        for (way, answer) in &ways {
            if let Err(e) = check(way, s, answer) {
                failures.push(e);
            }
        }
        // The whole answer, alike in every way.
        let (_, first) = &ways[0];
        for (way, other) in &ways[1..] {
            if other.headers != first.headers || other.body != first.body {
                failures.push(format!(
                    "{}: {way} differs from core:\n  core: {first:?}\n  {way}: {other:?}",
                    s.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A server set up wrongly gets a fixed 500; the log says what to fix.
    for hint in [
        "without AuthLayer",
        "without the Authentication middleware",
        "into_make_service_with_connect_info",
    ] {
        assert!(logged(hint), "the log names the fix: {hint}");
    }
}

/// Details that stay in the log: a 503 or 500 body names no host, address
/// or error text.
#[test]
fn server_side_failures_have_fixed_bodies() {
    let down = SCENARIOS
        .iter()
        .find(|s| s.path == "/introspect-down")
        .unwrap();
    let answer = through_core(down);
    assert_eq!(
        answer.body,
        r#"{"error":"temporarily_unavailable","error_description":"the identity provider is unavailable"}"#
    );
    let no_layer = SCENARIOS.iter().find(|s| s.path == "/no-layer").unwrap();
    assert_eq!(
        through_core(no_layer).body,
        r#"{"error":"server_error","error_description":"internal server error"}"#
    );
}

/// A rule for GET counts HEAD (axum answers it with the GET handler), over
/// real TCP.
#[test]
fn a_rule_for_get_counts_head() {
    let limits = Throttle::builder(MemoryStore::default())
        .rule(
            rule("reads", 2)
                .methods([http::Method::GET])
                .callers(Callers::EVERYONE)
                .by_client_ip(),
        )
        .build()
        .unwrap();
    let base = serve_axum(
        axum::Router::new()
            .route("/read", axum::routing::get(|| async { "ok" }))
            .layer(auth_axum::AuthLayer::new(
                Gate::without_auth().throttle(limits),
            )),
    );
    let agent = auth_tests::agent();
    let url = format!("{base}/read");
    let head = |agent: &ureq::Agent| agent.head(&url).call().unwrap().status().as_u16();
    assert_eq!(head(&agent), 200);
    assert_eq!(head(&agent), 200);
    assert_eq!(agent.get(&url).call().unwrap().status().as_u16(), 429);
}

/// Many requests with one new token make one provider call, through both
/// adapters; every request gets the same answer.
#[test]
fn single_flight_through_both_adapters() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/introspect",
        server.server_addr().to_ip().unwrap()
    );
    for _ in 0..4 {
        let (server, calls) = (Arc::clone(&server), Arc::clone(&calls));
        thread::spawn(move || {
            for request in server.incoming_requests() {
                calls.fetch_add(1, Ordering::SeqCst);
                // Slow enough for every request to arrive while it waits.
                thread::sleep(Duration::from_millis(400));
                let answer = json!({"active": true, "sub": "svc-9"}).to_string();
                let _ = request.respond(tiny_http::Response::from_string(answer));
            }
        });
    }
    let policy = || {
        Policy::new(
            IntrospectionBackend::builder(url.as_str(), "api", "secret")
                .allow_http(true)
                .build()
                .unwrap(),
        )
    };
    let axum = serve_axum(
        axum::Router::new()
            .route(
                "/i",
                axum::routing::get(|auth_axum::Auth(who): auth_axum::Auth| async move {
                    identity_body(Some(who.identifier()))
                }),
            )
            .layer(auth_axum::AuthLayer::new(policy())),
    );
    let actix = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let policy = policy();
        thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                actix_web::HttpServer::new(move || {
                    actix_web::App::new().service(
                        actix_web::web::scope("/i")
                            .wrap(auth_actix::Authentication::new(policy.clone()))
                            .route(
                                "",
                                actix_web::web::get().to(
                                    |auth_actix::Auth(who): auth_actix::Auth| async move {
                                        identity_body(Some(who.identifier()))
                                    },
                                ),
                            ),
                    )
                })
                .workers(2)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        base
    };
    for (way, base, token) in [("axum", axum, "tok-axum"), ("actix", actix, "tok-actix")] {
        let before = calls.load(Ordering::SeqCst);
        let answers: Vec<(u16, String)> = (0..8)
            .map(|_| {
                let url = format!("{base}/i");
                thread::spawn(move || {
                    let mut response = agent()
                        .get(&url)
                        .header("authorization", format!("Bearer {token}"))
                        .call()
                        .unwrap();
                    let body = response.body_mut().read_to_string().unwrap();
                    (response.status().as_u16(), body)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut distinct: HashMap<(u16, String), usize> = HashMap::new();
        for a in answers {
            *distinct.entry(a).or_default() += 1;
        }
        assert_eq!(
            distinct.len(),
            1,
            "{way}: every request gets the one answer: {distinct:?}"
        );
        assert!(distinct.contains_key(&(200, identity_body(Some("svc-9")))));
        assert_eq!(
            calls.load(Ordering::SeqCst) - before,
            1,
            "{way}: one provider call for 8 requests"
        );
    }
}
