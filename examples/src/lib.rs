//! Runnable examples of the auth workspace.
//!
//! [`Demo`] holds the demo's routes as core [`Gate`] values (a policy, and
//! rate limits on `/limited`), and the servers that apply them alike:
//! [`axum_router`] and [`actix_routes`] (`cargo run -p auth-examples --bin
//! demo [-- --framework actix]`), and [`Demo::handle`] with [`serve`], a
//! framework-free `tiny_http` server that asks the same gates for each
//! request's decision (`--bin direct`).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use auth_core::health::{Health, Readiness};
use auth_core::{
    Algorithm, AnonSessionBackend, AuthData, Chain, Decision, Gate, IntrospectionBackend,
    IpBackend, JwtBackend, JwtValidator, PeerAddr, Policy, RequireScopes, TokenIssuer,
};
use auth_throttle::{
    Callers, FailureBudget, MemoryStore, Quota, RedisStore, Rule, Store, Throttle, ThrottleBuilder,
};
use serde_json::json;

mod metrics;
mod ready;

pub use metrics::{install_metrics, metrics_response};

/// The `iss` of demo tokens.
pub const DEMO_ISSUER: &str = "auth-demo";

/// Demo settings (from the environment in the binary). The default has
/// the failure budget on, as the binary does.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// HS256 secret for bearer tokens (`DEMO_JWT_SECRET`); random when unset.
    pub jwt_secret: Option<String>,
    /// CIDRs of trusted proxies for `/ip` (`DEMO_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<String>,
    /// When set, anonymous session ids are signed (`DEMO_SESSION_KEY`).
    pub session_key: Option<String>,
    /// The introspection route, when `DEMO_INTROSPECTION_URL`,
    /// `DEMO_CLIENT_ID` and `DEMO_CLIENT_SECRET` are all set.
    pub introspection: Option<IntrospectionConfig>,
    /// `/limited` and the failure budget count in this Redis
    /// (`DEMO_REDIS_URL`, for example `redis://127.0.0.1:6379`), shared by
    /// every demo with the same `throttle_secret`; in this process when
    /// unset.
    pub redis_url: Option<String>,
    /// `/limited` and the failure budget count in this Redis Cluster
    /// instead (`DEMO_REDIS_CLUSTER`, some of its nodes' URLs separated by
    /// commas); not with `redis_url`.
    pub redis_cluster: Vec<String>,
    /// How long a request waits for Redis before `/limited` counts in this
    /// process instead (`DEMO_REDIS_TIMEOUT_MS`; default the store's,
    /// 50 ms).
    pub redis_timeout: Option<Duration>,
    /// The rate limits' key secret (`DEMO_THROTTLE_SECRET`, at least 16
    /// bytes, the same on every demo that shares a Redis): required with
    /// `redis_url` or `redis_cluster`, random otherwise.
    pub throttle_secret: Option<String>,
    /// Refused credentials per client address before it gets 429, on
    /// every route (`DEMO_FAILURE_BUDGET=<count>/<seconds>`, default
    /// `10/10`; `off` for none).
    pub failure_budget: Option<Quota>,
    /// The `/oidc` route: RS256 or ES256 tokens of this OpenID issuer, its
    /// keys found by discovery (`DEMO_OIDC_ISSUER`).
    pub oidc_issuer: Option<String>,
    /// The audience `/oidc` tokens must name (`DEMO_OIDC_AUDIENCE`; any
    /// when unset).
    pub oidc_audience: Option<String>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            jwt_secret: None,
            trusted_proxies: Vec::new(),
            session_key: None,
            introspection: None,
            redis_url: None,
            redis_cluster: Vec::new(),
            redis_timeout: None,
            throttle_secret: None,
            failure_budget: default_failure_budget(),
            oidc_issuer: None,
            oidc_audience: None,
        }
    }
}

/// 10 refused credentials per 10 s per client address.
fn default_failure_budget() -> Option<Quota> {
    Quota::new(10, Duration::from_secs(10)).ok()
}

/// `<count>/<seconds>`, or `off`.
fn parse_budget(value: &str) -> Result<Option<Quota>, DemoError> {
    if value == "off" {
        return Ok(None);
    }
    let parsed = value
        .split_once('/')
        .and_then(|(count, seconds)| Some((count.parse().ok()?, seconds.parse().ok()?)));
    match parsed {
        Some((count, seconds)) => Ok(Some(Quota::new(count, Duration::from_secs(seconds))?)),
        None => {
            Err(format!("DEMO_FAILURE_BUDGET: {value:?} is not <count>/<seconds> or off").into())
        }
    }
}

/// Settings of the `/introspected` route.
#[derive(Clone, Debug)]
pub struct IntrospectionConfig {
    /// The RFC 7662 endpoint.
    pub url: String,
    /// Our client id.
    pub client_id: String,
    /// Our client secret.
    pub client_secret: String,
    /// The answer's claim used as identifier (`DEMO_INTROSPECTION_IDENTIFIER`,
    /// default `sub`; `client_id` for client-credentials tokens).
    pub identifier: String,
    /// How long an active answer is reused (`DEMO_INTROSPECTION_CACHE_TTL`,
    /// seconds; `0` asks the provider every time, so a revoked token stops
    /// working at once). Default: the backend's, 300 s.
    pub cache_ttl: Option<Duration>,
}

/// Where the demo's limits count: Redis (one server or a cluster) when
/// configured, else this process.
fn store(config: &DemoConfig) -> Result<Store, DemoError> {
    let cluster = config.redis_cluster.as_slice();
    if config.redis_url.is_none() && cluster.is_empty() {
        return Ok(MemoryStore::default().into());
    }
    let Some(secret) = &config.throttle_secret else {
        return Err(
            "DEMO_REDIS_URL and DEMO_REDIS_CLUSTER need DEMO_THROTTLE_SECRET (at least \
                    16 bytes, the same on every server sharing the limits)"
                .into(),
        );
    };
    let redis = match (&config.redis_url, cluster) {
        (Some(url), []) => RedisStore::builder(url, secret.as_bytes()),
        (None, nodes) => RedisStore::cluster(nodes, secret.as_bytes()),
        (Some(_), _) => {
            return Err("set DEMO_REDIS_URL (one server) or DEMO_REDIS_CLUSTER, not both".into());
        }
    };
    let redis = match config.redis_timeout {
        Some(timeout) => redis.timeout(timeout),
        None => redis,
    };
    Ok(redis.build()?.into())
}

/// A throttle counting in `store` with the failure budget, if any.
fn throttle(config: &DemoConfig, store: &Store, client_ip: &IpBackend) -> ThrottleBuilder {
    let builder = Throttle::builder(store.clone()).client_ip(client_ip.clone());
    match config.failure_budget {
        Some(quota) => builder.failure_budget(FailureBudget::new(quota)),
        None => builder,
    }
}

/// `/limited`'s rules: tokens 5 per 10 s; anonymous sessions 3 per 10 s,
/// and 20 per 10 s per client address (a client that drops its cookie
/// gains nothing).
fn limits(builder: ThrottleBuilder) -> Result<Throttle, DemoError> {
    let ten_seconds = Duration::from_secs(10);
    Ok(builder
        .rule(Rule::new("tokens", Quota::new(5, ten_seconds)?)?.callers(Callers::AUTHENTICATED))
        .rule(Rule::new("visitors", Quota::new(3, ten_seconds)?)?.callers(Callers::ANONYMOUS))
        .rule(
            Rule::new("visitors-per-address", Quota::new(20, ten_seconds)?)?
                .callers(Callers::ANONYMOUS)
                .by_client_ip(),
        )
        .build()?)
}

/// Whether `url` names this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl DemoConfig {
    /// Reads the `DEMO_*` variables.
    ///
    /// # Errors
    /// A `DEMO_FAILURE_BUDGET` that is not `<count>/<seconds>` or `off`, or
    /// a `DEMO_REDIS_TIMEOUT_MS` that is not a number.
    pub fn from_env() -> Result<Self, DemoError> {
        let trusted_proxies = env("DEMO_TRUSTED_PROXIES")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let introspection = match (
            env("DEMO_INTROSPECTION_URL"),
            env("DEMO_CLIENT_ID"),
            env("DEMO_CLIENT_SECRET"),
        ) {
            (Some(url), Some(client_id), Some(client_secret)) => Some(IntrospectionConfig {
                url,
                client_id,
                client_secret,
                identifier: env("DEMO_INTROSPECTION_IDENTIFIER").unwrap_or_else(|| "sub".into()),
                cache_ttl: env("DEMO_INTROSPECTION_CACHE_TTL")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
            }),
            _ => None,
        };
        Ok(DemoConfig {
            jwt_secret: env("DEMO_JWT_SECRET"),
            trusted_proxies,
            session_key: env("DEMO_SESSION_KEY"),
            introspection,
            redis_url: env("DEMO_REDIS_URL"),
            redis_cluster: env("DEMO_REDIS_CLUSTER")
                .map(|nodes| {
                    nodes
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            redis_timeout: match env("DEMO_REDIS_TIMEOUT_MS") {
                Some(ms) => Some(Duration::from_millis(ms.parse().map_err(|_| {
                    format!("DEMO_REDIS_TIMEOUT_MS: {ms:?} is not a number of milliseconds")
                })?)),
                None => None,
            },
            throttle_secret: env("DEMO_THROTTLE_SECRET"),
            failure_budget: match env("DEMO_FAILURE_BUDGET") {
                Some(value) => parse_budget(&value)?,
                None => default_failure_budget(),
            },
            oidc_issuer: env("DEMO_OIDC_ISSUER"),
            oidc_audience: env("DEMO_OIDC_AUDIENCE"),
        })
    }
}

/// One of the demo's routes: its path and the core gate that guards it
/// (who may call it and, for `/limited`, how often).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Route {
    /// The path.
    pub path: &'static str,
    /// Who may call it, and how often.
    pub gate: Gate,
}

/// Why the demo could not be built.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The demo's routes and their backends.
///
/// | route | identity |
/// |---|---|
/// | `GET /whoami` | bearer JWT, else an anonymous session (issued when absent); a bad token is 401, not anonymous |
/// | `GET /private` | bearer JWT required |
/// | `GET /admin` | bearer JWT with scope `admin` |
/// | `GET /ip` | the client address (trusted proxies honoured) |
/// | `GET /limited` | as `/whoami`, rate limited: tokens 5 per 10 s, anonymous sessions 3 per 10 s and 20 per 10 s per client address |
/// | `GET /introspected` | RFC 7662 introspection; 404 when not configured |
/// | `GET /oidc` | RS256 or ES256 tokens of `DEMO_OIDC_ISSUER` (keys by OIDC discovery); 404 when not configured |
/// | `GET /metrics` | the Prometheus text exposition, once [`install_metrics`] ran |
/// | `GET /health/ready` | readiness ([`Demo::readiness`]): 200, or 503 when a configured provider or store is down |
///
/// Every route but `/ip` has a failure budget: 10 refused credentials per
/// 10 s per client address by default, then 429 until it refills.
///
/// Each route is a core [`Gate`]: the axum and actix demos and the
/// framework-free server ([`Demo::handle`]) apply the same values.
pub struct Demo {
    routes: Vec<Route>,
    /// What `GET /health/ready` checks.
    ready: ready::Parts,
    issuer: TokenIssuer,
    /// `/limited` counts in Redis.
    shared_limits: bool,
}

fn route(path: &'static str, gate: impl Into<Gate>) -> Route {
    Route {
        path,
        gate: gate.into(),
    }
}

impl Demo {
    /// Builds the backends.
    ///
    /// # Errors
    /// An invalid trusted proxy, a session key or JWT secret under 32 bytes,
    /// an invalid introspection or Redis URL.
    pub fn new(config: &DemoConfig) -> Result<Self, DemoError> {
        let secret = config.jwt_secret.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        });
        let jwt = JwtBackend::new(
            JwtValidator::builder([Algorithm::HS256])
                .hmac_secret(secret.as_bytes())
                .issuer(DEMO_ISSUER)
                .build()?,
        );
        let mut anon = AnonSessionBackend::builder("anon");
        if let Some(key) = &config.session_key {
            anon = anon.signing_key(key.as_bytes());
        }
        let anon = anon.build()?;
        let client_ip = IpBackend::new().trust_proxies(&config.trusted_proxies)?;
        let whoami = Policy::new(Chain::new().or(jwt.clone()).or(anon));
        // Rate limits count IPv6 clients per /64 (`/ip` shows the address).
        let limits_ip = client_ip.clone().ipv6_prefix(64)?;
        let store = store(config)?;
        let shared_limits = store.is_shared();
        // Every route spends the one failure budget per address (one id,
        // one store).
        let gate = |gate: Gate| -> Result<Gate, DemoError> {
            Ok(match config.failure_budget {
                Some(_) => gate.throttle(throttle(config, &store, &limits_ip).build()?),
                None => gate,
            })
        };
        let limits = limits(throttle(config, &store, &limits_ip))?;
        let mut ready = ready::Parts::new();
        if shared_limits {
            ready.store = Some(limits.clone());
        }
        let limited = Gate::new(whoami.clone()).throttle(limits);
        let mut routes = vec![
            route("/whoami", gate(whoami.into())?),
            route("/private", gate(jwt.clone().into())?),
            route("/admin", gate(RequireScopes::new(jwt, ["admin"]).into())?),
            route("/ip", client_ip),
            route("/limited", limited),
        ];
        if let Some(c) = &config.introspection {
            let mut introspection =
                IntrospectionBackend::builder(&c.url, &c.client_id, &c.client_secret)
                    .identifier_claim(&c.identifier)
                    // Plain http only to a provider on this machine.
                    .allow_http(is_loopback_url(&c.url))
                    // One client address holds at most an eighth of the
                    // provider calls (the default share), found as the
                    // limits find it.
                    .client_ip(limits_ip.clone());
            if let Some(ttl) = c.cache_ttl {
                introspection = introspection.max_cache_ttl(ttl);
            }
            let introspection = introspection.build()?;
            ready.introspection = Some(introspection.clone());
            routes.push(route("/introspected", gate(introspection.into())?));
        }
        if let Some(issuer) = &config.oidc_issuer {
            let mut validator = JwtValidator::builder([Algorithm::RS256, Algorithm::ES256])
                .oidc_issuer(issuer)
                // Plain http only to a provider on this machine.
                .allow_http(is_loopback_url(issuer));
            if let Some(audience) = &config.oidc_audience {
                validator = validator.audience(audience);
            }
            let oidc = JwtBackend::new(validator.build()?);
            ready.jwt = Some(oidc.clone());
            routes.push(route("/oidc", gate(oidc.into())?));
        }
        Ok(Demo {
            routes,
            ready,
            shared_limits,
            issuer: TokenIssuer::hs256(secret.as_bytes())?
                .issuer(DEMO_ISSUER)
                .ttl(Duration::from_secs(3600)),
        })
    }

    /// Whether `/introspected` is served (the introspection settings were
    /// given).
    pub fn has_introspection(&self) -> bool {
        self.routes.iter().any(|r| r.path == "/introspected")
    }

    /// `GET /health/ready`'s report: the OIDC key set (fetched if due),
    /// the introspection provider and the shared store, each when
    /// configured; 503 when one is down. Runs on a tokio runtime (the
    /// provider calls on its blocking pool).
    pub fn readiness(&self) -> impl std::future::Future<Output = Readiness> + Send + 'static {
        self.ready.clone().check()
    }

    /// Whether `/limited` counts in Redis.
    pub fn counts_in_redis(&self) -> bool {
        self.shared_limits
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// A token for `sub` with `scope`, valid for an hour, signed with the
    /// demo's secret.
    pub fn sample_token(&self, sub: &str, scope: &str) -> String {
        self.issuer
            .issue(json!({"sub": sub, "scope": scope}), SystemTime::now())
            .unwrap_or_default()
    }

    /// Answers one request without a framework (the direct-call example):
    /// the route's gate decides ([`Gate::decide_blocking`]); this code runs
    /// the handler (the identity's JSON) or sends the gate's refusal as it
    /// is, and appends the gate's additions. A path it does not serve is
    /// 404; a method other than GET or HEAD is 405 with `Allow`, before any
    /// authentication (as the axum and actix demos answer).
    pub fn handle<B>(&self, req: &http::Request<B>) -> http::Response<String> {
        if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
            return metrics_response();
        }
        if req.uri().path() == "/health/ready" && req.method() == http::Method::GET {
            return match store_runtime() {
                Some(runtime) => runtime.block_on(self.readiness()).into_response(),
                None => Readiness::new()
                    .with("runtime", Health::Down("no tokio runtime".into()))
                    .into_response(),
            };
        }
        let Some(route) = self.routes.iter().find(|r| r.path == req.uri().path()) else {
            return not_found();
        };
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            return method_not_allowed();
        }
        // A Redis round trip needs a tokio runtime to run on: this server
        // is synchronous, so it enters one of its own.
        let _entered = store_runtime().map(tokio::runtime::Runtime::enter);
        match route.gate.decide_blocking(req) {
            Decision::Refuse(refusal) => refusal.into_response(),
            Decision::Proceed(proceed) => {
                let identity = proceed.verdict.as_ref().map(|v| v.require());
                let mut response = match identity {
                    Some(Ok(who)) => json_response(identity_json(who).to_string()),
                    Some(Err(refusal)) => refusal.into_response(),
                    None => not_found(),
                };
                proceed.additions.append_to(response.headers_mut());
                response
            }
        }
    }
}

/// The runtime the framework-free server's Redis round trips run on
/// (multi-threaded: its threads drive the connection while the request's
/// thread waits).
fn store_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// The value of `Allow` on the demo's 405 answers (axum's own wording for
/// a GET route).
pub const ALLOW: &str = "GET,HEAD";

fn method_not_allowed() -> http::Response<String> {
    let mut response = http::Response::new(String::new());
    *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(ALLOW));
    response
}

fn not_found() -> http::Response<String> {
    let mut response = http::Response::new(String::new());
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// The demo's routes on axum: one `AuthLayer` per route, on its GET (and
/// HEAD) handler only, so a wrong method is axum's 405 before
/// authentication; from the same gates. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn axum_router(demo: &Demo) -> axum::Router {
    use auth_axum::{Auth, AuthLayer};
    use axum::handler::Handler;
    async fn identity(Auth(who): Auth) -> impl axum::response::IntoResponse {
        (
            [(http::header::CONTENT_TYPE, "application/json")],
            identity_json(&who).to_string(),
        )
    }
    let metrics = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { metrics_response() }),
    );
    let ready = demo.ready.clone();
    let metrics = metrics.route(
        "/health/ready",
        axum::routing::get(move || {
            let check = ready.clone().check();
            async move { check.await.into_response() }
        }),
    );
    demo.routes().iter().fold(metrics, |app, route| {
        let guarded = identity.layer(AuthLayer::new(route.gate.clone()));
        app.route(route.path, axum::routing::get(guarded))
    })
}

/// The demo's routes on actix-web, for `App::configure`: one
/// `Authentication` middleware per route (on the GET and HEAD routes, so a
/// wrong method is 405 with `Allow` before authentication, as on axum),
/// from the same gates.
pub fn actix_routes(
    demo: &Demo,
) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static {
    use actix_web::{HttpResponse, web};
    use auth_actix::{Auth, Authentication};
    async fn identity(Auth(who): Auth) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(identity_json(&who).to_string())
    }
    async fn wrong_method() -> HttpResponse {
        HttpResponse::MethodNotAllowed()
            .insert_header((http::header::ALLOW.as_str(), ALLOW))
            .finish()
    }
    /// An `http` response as actix-web's (actix-web 4 has `http` 0.2
    /// types): status, headers, body.
    fn to_actix(response: http::Response<String>) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut out = HttpResponse::build(status);
        for (name, value) in response.headers() {
            out.append_header((name.as_str(), value.as_bytes()));
        }
        out.body(response.into_body())
    }
    async fn metrics() -> HttpResponse {
        to_actix(metrics_response())
    }
    let routes = demo.routes().to_vec();
    let ready = demo.ready.clone();
    move |config: &mut web::ServiceConfig| {
        config.route("/metrics", web::get().to(metrics));
        let parts = ready.clone();
        config.route(
            "/health/ready",
            web::get().to(move || {
                let check = parts.clone().check();
                async move { to_actix(check.await.into_response()) }
            }),
        );
        for route in &routes {
            let auth = Authentication::new(route.gate.clone());
            let guarded = |method: actix_web::Route| method.to(identity).wrap(auth.clone());
            config.service(
                web::resource(route.path)
                    .route(guarded(web::get()))
                    .route(guarded(web::head()))
                    .default_service(web::to(wrong_method)),
            );
        }
    }
}

/// The demo's answer for an identity: `{"identifier", "source", "key",
/// "data"}` (the same in every server).
pub fn identity_json(auth: &AuthData) -> serde_json::Value {
    json!({
        "identifier": auth.identifier(),
        "source": auth.source().as_str(),
        "key": auth.key(),
        "data": auth.data(),
    })
}

fn json_response(body: String) -> http::Response<String> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Turns a `tiny_http` request into the `http` request view the core reads
/// (a custom server's one copy of the headers), with the peer address.
fn to_http(request: &tiny_http::Request) -> http::Request<()> {
    let mut out = http::Request::new(());
    *out.method_mut() = request
        .method()
        .as_str()
        .parse()
        .unwrap_or(http::Method::GET);
    *out.uri_mut() = request.url().parse().unwrap_or_default();
    for header in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(header.field.as_str().as_str().as_bytes()),
            http::HeaderValue::from_bytes(header.value.as_bytes()),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    if let Some(peer) = request.remote_addr() {
        out.extensions_mut().insert(PeerAddr(*peer));
    }
    out
}

/// Serves `demo` on `server` until the server is dropped or unblocked; call
/// it from as many threads as you want workers.
pub fn serve(demo: &Demo, server: &tiny_http::Server) {
    for request in server.incoming_requests() {
        let response = demo.handle(&to_http(&request));
        // from_data: no content type of tiny_http's own.
        let mut out = tiny_http::Response::from_data(response.body().as_bytes())
            .with_status_code(response.status().as_u16());
        for (name, value) in response.headers() {
            if let Ok(header) =
                tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes())
            {
                out.add_header(header);
            }
        }
        // A client that hung up is not the server's problem.
        let _ = request.respond(out);
    }
}

/// The address a `tiny_http` server listens on.
pub fn local_addr(server: &tiny_http::Server) -> Option<SocketAddr> {
    server.server_addr().to_ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_provider(url: &str) -> Result<Demo, DemoError> {
        Demo::new(&DemoConfig {
            introspection: Some(IntrospectionConfig {
                url: url.to_owned(),
                client_id: "demo".to_owned(),
                client_secret: "secret".to_owned(),
                identifier: "sub".to_owned(),
                cache_ttl: None,
            }),
            ..DemoConfig::default()
        })
    }

    /// Plain `http` to the provider only on this machine: tokens and the
    /// client secret would otherwise cross a network in the clear.
    #[test]
    fn the_failure_budget_setting() {
        let quota = |s| parse_budget(s).map(|q| q.map(|q| (q.limit(), q.window().as_secs())));
        assert_eq!(quota("10/10").ok(), Some(Some((10, 10))));
        assert_eq!(quota("3/60").ok(), Some(Some((3, 60))));
        assert_eq!(quota("off").ok(), Some(None));
        for bad in ["10", "ten/10", "0/10", "10/", "-1/5"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_introspection_only_to_loopback() {
        for local in [
            "http://127.0.0.1:9/introspect",
            "http://localhost:9/introspect",
            "http://[::1]:9/introspect",
            "https://id.example/introspect",
        ] {
            assert!(with_provider(local).is_ok(), "{local}");
        }
        for remote in [
            "http://id.example/introspect",
            "http://localhost.id.example/introspect",
            "http://127.0.0.1.id.example/introspect",
            "http://10.0.0.1/introspect",
            "not a url",
        ] {
            assert!(with_provider(remote).is_err(), "{remote}");
        }
    }

    /// Shared limits need a secret of their own, the same on every server:
    /// never the JWT secret by default.
    #[test]
    fn redis_needs_its_own_throttle_secret() {
        let redis = |secret: Option<&str>| DemoConfig {
            redis_url: Some("redis://127.0.0.1:9".into()),
            jwt_secret: Some("a JWT secret of thirty-two bytes!!".into()),
            throttle_secret: secret.map(str::to_owned),
            ..DemoConfig::default()
        };
        let refused = Demo::new(&redis(None)).err().map(|e| e.to_string());
        assert!(
            refused.is_some_and(|e| e.contains("DEMO_THROTTLE_SECRET")),
            "no store without its secret"
        );
        let demo = Demo::new(&redis(Some("a throttle secret, 16+ bytes")));
        assert!(demo.is_ok_and(|d| d.counts_in_redis()));
        let cluster = |url: Option<&str>, secret: Option<&str>| DemoConfig {
            redis_url: url.map(str::to_owned),
            redis_cluster: vec!["redis://127.0.0.1:9".into(), "redis://127.0.0.1:10".into()],
            ..redis(secret)
        };
        let demo = Demo::new(&cluster(None, Some("a throttle secret, 16+ bytes")));
        assert!(demo.is_ok_and(|d| d.counts_in_redis()));
        assert!(
            Demo::new(&cluster(None, None)).is_err(),
            "no cluster without its secret"
        );
        let both = Demo::new(&cluster(
            Some("redis://127.0.0.1:9"),
            Some("a throttle secret, 16+ bytes"),
        ));
        assert!(both.is_err_and(|e| e.to_string().contains("not both")));
        assert!(
            Demo::new(&redis(Some("short"))).is_err(),
            "at least 16 bytes"
        );
    }
}
