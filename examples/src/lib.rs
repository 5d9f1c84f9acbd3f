//! Runnable examples of the auth workspace.
//!
//! [`Demo`] is the app behind `cargo run -p auth-examples --bin demo`: the
//! core driven directly from a small synchronous server (`tiny_http`), no
//! web framework. It shows the direct-call use: build backends once, hand
//! each request to [`authenticate_blocking`], write the answer (and any
//! `Set-Cookie`) yourself.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use auth_core::introspect::IntrospectionBackend;
use auth_core::jwt::{Algorithm, JwtBackend, JwtValidator, TokenIssuer};
use auth_core::request::PeerAddr;
use auth_core::session::uuid_session_id;
use auth_core::transport::authenticate_blocking;
use auth_core::{
    AnonSessionBackend, AuthData, AuthError, Authenticated, Chain, ConfigError, IpBackend, Policy,
    RequireScopes,
};
use serde_json::json;

/// The `iss` of demo tokens.
pub const DEMO_ISSUER: &str = "auth-demo";

/// Demo settings (from the environment in the binary).
#[derive(Clone, Debug, Default)]
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
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl DemoConfig {
    /// Reads the `DEMO_*` variables.
    pub fn from_env() -> Self {
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
            }),
            _ => None,
        };
        DemoConfig {
            jwt_secret: env("DEMO_JWT_SECRET"),
            trusted_proxies,
            session_key: env("DEMO_SESSION_KEY"),
            introspection,
        }
    }
}

/// The demo's routes and their backends.
///
/// | route | identity |
/// |---|---|
/// | `GET /whoami` | bearer JWT, else an anonymous session (issued when absent); a bad token is 401, not anonymous |
/// | `GET /private` | bearer JWT required |
/// | `GET /admin` | bearer JWT with scope `admin` |
/// | `GET /ip` | the client address (trusted proxies honoured) |
/// | `GET /introspected` | RFC 7662 introspection; 404 when not configured |
///
/// Each route is a core [`Policy`]: the axum and actix demos and the
/// framework-free server ([`Demo::handle`]) apply the same values.
pub struct Demo {
    routes: Vec<(&'static str, Policy)>,
    issuer: TokenIssuer,
}

impl Demo {
    /// Builds the backends.
    ///
    /// # Errors
    /// An invalid trusted proxy, a session key or JWT secret under 32 bytes,
    /// an invalid introspection URL.
    pub fn new(config: &DemoConfig) -> Result<Self, ConfigError> {
        let secret = config
            .jwt_secret
            .clone()
            .unwrap_or_else(|| format!("{}{}", uuid_session_id(), uuid_session_id()));
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
        let mut routes = vec![
            (
                "/whoami",
                Policy::new(Chain::new().or(jwt.clone()).or(anon.build()?)),
            ),
            ("/private", Policy::new(jwt.clone())),
            ("/admin", Policy::new(RequireScopes::new(jwt, ["admin"]))),
            (
                "/ip",
                Policy::new(IpBackend::new().trust_proxies(&config.trusted_proxies)?),
            ),
        ];
        if let Some(c) = &config.introspection {
            let introspection =
                IntrospectionBackend::builder(&c.url, &c.client_id, &c.client_secret)
                    .identifier_claim(&c.identifier)
                    .build()?;
            routes.push(("/introspected", Policy::new(introspection)));
        }
        Ok(Demo {
            routes,
            issuer: TokenIssuer::hs256(secret.as_bytes())?
                .issuer(DEMO_ISSUER)
                .ttl(Duration::from_secs(3600)),
        })
    }

    /// The routes: a path and the policy that guards it.
    pub fn routes(&self) -> &[(&'static str, Policy)] {
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
    /// the core decides, this code only writes JSON, the status,
    /// `WWW-Authenticate` and any `Set-Cookie`.
    pub fn handle<B>(&self, req: &http::Request<B>) -> http::Response<String> {
        let route = (req.method() == http::Method::GET)
            .then(|| {
                self.routes
                    .iter()
                    .find(|(path, _)| *path == req.uri().path())
            })
            .flatten();
        let Some((_, policy)) = route else {
            return json_response(404, &json!({"error": "not_found"}));
        };
        match authenticate_blocking(policy.backend(), req, &**policy.shared_transport()) {
            Ok(who) => identity_response(who),
            Err(error) => error_response(&error),
        }
    }
}

/// The demo's routes on axum: one `AuthLayer` per route, from the same
/// policies. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn axum_router(demo: &Demo) -> axum::Router {
    use auth_axum::{Auth, AuthLayer};
    async fn identity(Auth(who): Auth) -> impl axum::response::IntoResponse {
        (
            [(http::header::CONTENT_TYPE, "application/json")],
            identity_json(&who).to_string(),
        )
    }
    let mut app = axum::Router::new();
    for (path, policy) in demo.routes() {
        let route = axum::Router::new().route(path, axum::routing::get(identity));
        app = app.merge(route.layer(AuthLayer::with_policy(policy.clone())));
    }
    app
}

/// The demo's routes on actix-web, for `App::configure`: one
/// `Authentication` middleware per route, from the same policies.
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
    let routes = demo.routes().to_vec();
    move |config: &mut web::ServiceConfig| {
        for (path, policy) in &routes {
            config.service(
                web::scope(path)
                    .wrap(Authentication::with_policy(policy.clone()))
                    .route("", web::get().to(identity)),
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

fn json_response(status: u16, body: &serde_json::Value) -> http::Response<String> {
    let mut response = http::Response::new(body.to_string());
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The identity's JSON and any issued cookie.
fn identity_response(who: Authenticated) -> http::Response<String> {
    let mut response = json_response(200, &identity_json(&who.auth));
    if let Some(cookie) = who
        .set_cookie
        .and_then(|c| http::HeaderValue::try_from(c).ok())
    {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, cookie);
    }
    response
}

/// The error's status, challenge and the shared JSON body.
fn error_response(error: &AuthError) -> http::Response<String> {
    let mut response = http::Response::new(error.body_json());
    *response.status_mut() = http::StatusCode::from_u16(error.status().as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(challenge) = error
        .www_authenticate()
        .and_then(|c| http::HeaderValue::try_from(c).ok())
    {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, challenge);
    }
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
        let mut out = tiny_http::Response::from_string(response.body().as_str())
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

/// The guides' code blocks, compiled (and run, unless marked `no_run`) as
/// doctests: every block in `docs/guides/` compiles.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../docs/guides/ip.md")]
    struct Ip;
    #[doc = include_str!("../../docs/guides/sessions.md")]
    struct Sessions;
    #[doc = include_str!("../../docs/guides/jwt.md")]
    struct Jwt;
    #[doc = include_str!("../../docs/guides/introspection.md")]
    struct Introspection;
    #[doc = include_str!("../../docs/guides/chaining.md")]
    struct Chaining;
    #[doc = include_str!("../../docs/guides/axum.md")]
    struct Axum;
    #[doc = include_str!("../../docs/guides/actix.md")]
    struct Actix;
    #[doc = include_str!("../../docs/guides/direct.md")]
    struct Direct;
}
