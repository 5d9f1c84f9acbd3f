//! Extractors: [`Auth`], `Option<Auth>`, [`Claims`], [`Scoped`] read what
//! [`AuthLayer`](crate::AuthLayer) decided; [`StateAuth`] decides itself.

use std::marker::PhantomData;
use std::time::SystemTime;

use auth_core::{AuthData, Gate, Gated, Policy, Refusal, Scope, Verdict};
use axum_core::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;
use http::{HeaderValue, header};
use serde::de::DeserializeOwned;

use crate::drive::Tokio;
use crate::rejection::AuthRejection;
use crate::view::View;

/// What the layer left; a 500 (logged) without it.
fn verdict(parts: &Parts) -> Result<&Verdict, AuthRejection> {
    parts.extensions.get::<Verdict>().ok_or_else(|| {
        AuthRejection(Refusal::server_error(
            "an auth-axum extractor ran on a route without AuthLayer \
             (use StateAuth with an AuthState for routes without the layer)",
        ))
    })
}

/// The identity [`AuthLayer`](crate::AuthLayer) found.
///
/// Without one (optional mode, no credentials; a passed-through preflight)
/// it refuses as the layer's policy words it (401 with its challenge). Use
/// `Option<Auth>` where a request may be anonymous.
#[derive(Clone, Debug, PartialEq)]
pub struct Auth(pub AuthData);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = verdict(parts)?.require()?;
        Ok(Auth(auth.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(verdict(parts)?.auth().cloned().map(Auth))
    }
}

/// Every claim of the identity as your own type: the token's claims
/// (registered ones such as `sub` included), or the introspection answer.
/// Claims that do not fit `T`: 401 `invalid_token` naming the field (never
/// its value).
///
/// ```
/// use auth_axum::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct MyClaims { sub: String, tenant: String }
///
/// async fn handler(Claims(claims): Claims<MyClaims>) -> String {
///     format!("{} of {}", claims.sub, claims.tenant)
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(handler);
/// ```
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Claims(verdict(parts)?.claims::<T>()?))
    }
}

/// The identity, if it holds every scope of `T` (see
/// [`Scope`](auth_core::Scope)): otherwise 403 `insufficient_scope` naming
/// them in the challenge (with the layer's realm), or 401 asking for a
/// token when the identity cannot carry scopes (an anonymous session).
///
/// ```
/// use auth_axum::Scoped;
/// use auth_core::Scope;
///
/// struct Admin;
/// impl Scope for Admin {
///     const SCOPES: &'static [&'static str] = &["admin"];
/// }
///
/// async fn admin_only(Scoped(who, _): Scoped<Admin>) -> String {
///     who.identifier().to_owned()
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(admin_only);
/// ```
pub struct Scoped<T: Scope>(pub AuthData, pub PhantomData<T>);

impl<T: Scope> std::fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scoped").field(&self.0).finish()
    }
}

impl<S: Send + Sync, T: Scope> FromRequestParts<S> for Scoped<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = verdict(parts)?.require_scopes(T::SCOPES)?;
        Ok(Scoped(auth.clone(), PhantomData))
    }
}

/// A policy in the router state for routes without
/// [`AuthLayer`](crate::AuthLayer), applied by [`StateAuth`] (rate limits
/// need the layer).
///
/// ```
/// use auth_axum::{AuthState, StateAuth};
/// use auth_core::SessionBackend;
/// use axum::{Router, routing::get};
///
/// async fn me(who: StateAuth) -> String {
///     who.auth.key()
/// }
///
/// let state = AuthState::new(SessionBackend::new("session")?);
/// let app: Router = Router::new().route("/me", get(me)).with_state(state);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthState {
    gate: Gate,
}

impl AuthState {
    /// Applies `policy` (a [`Policy`], or any backend). An extractor always
    /// requires an identity: optional mode and preflight passthrough refuse
    /// here as a required policy would.
    pub fn new(policy: impl Into<Policy>) -> Self {
        AuthState {
            gate: Gate::new(policy.into()),
        }
    }
}

/// The identity from the [`AuthState`] in the router state.
///
/// If the backend issued an anonymous session, return
/// [`set_cookie`](Self::set_cookie) with your response to send its cookie
/// (the layer does that for you; an extractor cannot).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StateAuth {
    /// Who the request is.
    pub auth: AuthData,
    /// A `Set-Cookie` value to send back, if a session was issued.
    pub issued_cookie: Option<HeaderValue>,
}

impl StateAuth {
    /// The issued cookie as response parts (nothing if none was issued).
    pub fn set_cookie(&self) -> IssuedCookie {
        IssuedCookie(self.issued_cookie.clone())
    }
}

/// Appends an issued `Set-Cookie` to a response; see [`StateAuth`].
#[derive(Clone, Debug)]
pub struct IssuedCookie(Option<HeaderValue>);

impl IntoResponseParts for IssuedCookie {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some(value) = self.0 {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(res)
    }
}

/// The verdict a [`StateAuth`] decided, kept for a second extraction.
#[derive(Clone)]
struct StateVerdict(Verdict);

impl<S> FromRequestParts<S> for StateAuth
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Extracted again: the same identity, the cookie only the first time.
        if let Some(StateVerdict(verdict)) = parts.extensions.get::<StateVerdict>() {
            return Ok(StateAuth {
                auth: verdict.require()?.clone(),
                issued_cookie: None,
            });
        }
        let AuthState { gate } = AuthState::from_ref(state);
        let view = View(&*parts);
        let decision = match gate.decide(&view, SystemTime::now()) {
            Gated::Done(decision) => decision,
            Gated::Pending(pending) => pending.drive(&view, &Tokio).await,
        };
        let (verdict, additions) = decision.into_verdict()?;
        let auth = verdict.require().cloned();
        parts.extensions.insert(StateVerdict(verdict));
        Ok(StateAuth {
            auth: auth?,
            issued_cookie: additions.get(header::SET_COOKIE.as_str()).cloned(),
        })
    }
}
