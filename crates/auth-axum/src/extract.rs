//! Extractors: [`Auth`], `Option<Auth>`, [`Claims`], [`Scoped`], and
//! [`StateAuth`] for routes without the layer.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::transport::Transport;
use auth_core::{AuthData, AuthError, Backend, Credential, Policy, Scope};
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;
use http::{HeaderValue, header};
use serde::de::DeserializeOwned;

use crate::drive::resolve;
use crate::layer::{Checked, rejection};
use crate::rejection::AuthRejection;
use crate::view::AxumView;

/// The identity [`AuthLayer`](crate::AuthLayer) found.
///
/// - No identity (optional mode, no credentials): 401 with the backend's
///   challenge.
/// - No `AuthLayer` on the route: 500 naming the missing layer.
///
/// Use `Option<Auth>` where a request may be anonymous.
#[derive(Clone, Debug, PartialEq)]
pub struct Auth(pub AuthData);

fn layered(parts: &Parts) -> Result<Option<AuthData>, AuthRejection> {
    if let Some(auth) = parts.extensions.get::<AuthData>() {
        return Ok(Some(auth.clone()));
    }
    match parts.extensions.get::<Checked>() {
        Some(Checked(Err(error), policy)) => {
            Err(AuthRejection::new(error.clone(), policy.realm_name()))
        }
        Some(Checked(Ok(()), _)) => Ok(None),
        None => Err(AuthRejection::MissingLayer),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match layered(parts)? {
            Some(auth) => Ok(Auth(auth)),
            None => Err(AuthRejection::new(
                AuthError::MissingCredentials(Credential::Bearer),
                None,
            )),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match layered(parts) {
            Ok(auth) => Ok(auth.map(Auth)),
            // The layer ran and let an unidentified request through.
            Err(AuthRejection::Auth { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// The identity's attributes as your own type (the token's claims, the
/// introspection answer). Attributes that do not fit `T`: 401
/// `invalid_token`.
///
/// ```
/// use auth_axum::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct MyClaims { tenant: String }
///
/// async fn handler(Claims(claims): Claims<MyClaims>) -> String {
///     claims.tenant
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(handler);
/// ```
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Auth(auth) = <Auth as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        auth.claims::<T>().map(Claims).map_err(|_| {
            AuthRejection::new(
                AuthError::invalid_credentials(
                    Credential::Bearer,
                    "token claims have an unexpected shape",
                ),
                None,
            )
        })
    }
}

/// The identity, if it holds every scope of `T` (see
/// [`Scope`](auth_core::Scope)); otherwise 403 `insufficient_scope` naming
/// them in the challenge.
///
/// ```
/// use auth_axum::{Scope, Scoped};
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

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let policy = parts.extensions.get::<Checked>().map(|c| Arc::clone(&c.1));
        let Auth(auth) = <Auth as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        auth.require_scopes(T::SCOPES)
            .map_err(|e| AuthRejection::new(e, policy.as_ref().and_then(|p| p.realm_name())))?;
        Ok(Scoped(auth, PhantomData))
    }
}

/// A backend in the router state, for routes without
/// [`AuthLayer`](crate::AuthLayer): the [`StateAuth`] extractor uses it.
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
#[derive(Clone)]
pub struct AuthState {
    policy: Policy,
}

impl AuthState {
    /// Authenticates with `backend` (required mode).
    pub fn new(backend: impl Backend + 'static) -> Self {
        Self::with_policy(Policy::new(backend))
    }

    /// Applies a core [`Policy`] (its realm and transport; an extractor
    /// always requires an identity).
    pub fn with_policy(policy: Policy) -> Self {
        AuthState { policy }
    }

    /// The realm named in challenges.
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.policy = self.policy.realm(realm);
        self
    }

    /// The transport for network steps.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.policy = self.policy.transport(transport);
        self
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
    pub issued_cookie: Option<String>,
}

impl StateAuth {
    /// The issued cookie as response parts (nothing if none was issued).
    pub fn set_cookie(&self) -> IssuedCookie {
        IssuedCookie(self.issued_cookie.clone())
    }
}

/// Appends an issued `Set-Cookie` to a response; see [`StateAuth`].
#[derive(Clone, Debug)]
pub struct IssuedCookie(Option<String>);

impl IntoResponseParts for IssuedCookie {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some(value) = self.0.and_then(|c| HeaderValue::try_from(c).ok()) {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(res)
    }
}

impl<S> FromRequestParts<S> for StateAuth
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AuthState::from_ref(state);
        let view = AxumView(parts);
        let outcome = state
            .policy
            .backend()
            .authenticate(&view, SystemTime::now());
        match resolve(outcome, &view, state.policy.shared_transport()).await {
            Ok(who) => Ok(StateAuth {
                auth: who.auth,
                issued_cookie: who.set_cookie,
            }),
            Err(error) => Err(rejection(&state.policy, error, view)),
        }
    }
}
