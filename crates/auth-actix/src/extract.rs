//! Extractors: [`Auth`], [`Claims`], [`Scoped`]; and [`AuthState`] for
//! handlers without the middleware.

use std::future::ready;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use auth_core::transport::Transport;
use auth_core::{AuthData, AuthError, Backend, Credential, Policy, Scope};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::drive::resolve;
use crate::middleware::Unidentified;
use crate::rejection::AuthRejection;
use crate::view::ActixView;

/// The identity of the request.
///
/// From the [`Authentication`](crate::Authentication) middleware's result
/// when it ran; otherwise from an [`AuthState`] in `app_data`; otherwise a
/// 500 naming the missing middleware. Use `Option<Auth>` where a request
/// may be anonymous (actix turns any refusal into `None` there).
#[derive(Clone, Debug, PartialEq)]
pub struct Auth(pub AuthData);

/// A `Set-Cookie` value issued while extracting [`Auth`] from an
/// [`AuthState`] (no middleware to send it): find it in the request
/// extensions and send it with your response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCookie(pub String);

fn from_middleware(req: &HttpRequest) -> Option<Result<AuthData, AuthRejection>> {
    let extensions = req.extensions();
    if let Some(auth) = extensions.get::<AuthData>() {
        return Some(Ok(auth.clone()));
    }
    extensions
        .get::<Unidentified>()
        .map(|Unidentified(error, policy)| {
            Err(AuthRejection::new(error.clone(), policy.realm_name()))
        })
}

impl FromRequest for Auth {
    type Error = AuthRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        if let Some(result) = from_middleware(req) {
            return Box::pin(ready(result.map(Auth)));
        }
        let Some(state) = req
            .app_data::<web::Data<AuthState>>()
            .map(|d| Arc::clone(&d.policy))
        else {
            return Box::pin(ready(Err(AuthRejection::MissingMiddleware)));
        };
        let req = req.clone();
        Box::pin(async move {
            let view = ActixView(&req);
            let outcome = state.backend().authenticate(&view, SystemTime::now());
            match resolve(outcome, &view, state.shared_transport()).await {
                Ok(who) => {
                    let mut extensions = req.extensions_mut();
                    extensions.insert(who.auth.clone());
                    if let Some(cookie) = who.set_cookie {
                        extensions.insert(IssuedCookie(cookie));
                    }
                    Ok(Auth(who.auth))
                }
                Err(error) => Err(AuthRejection::new(error, state.realm_name())),
            }
        })
    }
}

/// A backend in `app_data` (as `web::Data<AuthState>`), for handlers
/// without the [`Authentication`](crate::Authentication) middleware.
///
/// ```
/// use actix_web::{App, web};
/// use auth_actix::{Auth, AuthState};
/// use auth_core::SessionBackend;
///
/// async fn me(Auth(who): Auth) -> String {
///     who.key()
/// }
///
/// let state = web::Data::new(AuthState::new(SessionBackend::new("session")?));
/// let app = App::new().app_data(state).route("/me", web::get().to(me));
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AuthState {
    policy: Arc<Policy>,
}

impl AuthState {
    /// Authenticates with `backend`.
    pub fn new(backend: impl Backend + 'static) -> Self {
        Self::with_policy(Policy::new(backend))
    }

    /// Applies a core [`Policy`] (its realm and transport; an extractor
    /// always requires an identity).
    pub fn with_policy(policy: Policy) -> Self {
        AuthState {
            policy: Arc::new(policy),
        }
    }

    /// The realm named in challenges.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        Self::with_policy(Arc::unwrap_or_clone(self.policy).realm(realm))
    }

    /// The transport for network steps.
    #[must_use]
    pub fn transport(self, transport: impl Transport + 'static) -> Self {
        Self::with_policy(Arc::unwrap_or_clone(self.policy).transport(transport))
    }
}

/// The identity's attributes as your own type. Attributes that do not fit
/// `T`: 401 `invalid_token`.
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Claims<T> {
    type Error = AuthRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Auth::from_request(req, payload);
        Box::pin(async move {
            let Auth(auth) = auth.await?;
            auth.claims::<T>().map(Claims).map_err(|_| {
                AuthRejection::new(
                    AuthError::invalid_credentials(
                        Credential::Bearer,
                        "token claims have an unexpected shape",
                    ),
                    None,
                )
            })
        })
    }
}

/// The identity, if it holds every scope of `T` (see
/// [`Scope`](auth_core::Scope)); otherwise 403 `insufficient_scope`.
///
/// ```
/// use auth_actix::{Scope, Scoped};
///
/// struct Admin;
/// impl Scope for Admin {
///     const SCOPES: &'static [&'static str] = &["admin"];
/// }
///
/// async fn admin_only(Scoped(who, _): Scoped<Admin>) -> String {
///     who.identifier().to_owned()
/// }
/// # let _ = actix_web::web::get().to(admin_only);
/// ```
pub struct Scoped<T: Scope>(pub AuthData, pub PhantomData<T>);

impl<T: Scope> std::fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scoped").field(&self.0).finish()
    }
}

impl<T: Scope + 'static> FromRequest for Scoped<T> {
    type Error = AuthRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Auth::from_request(req, payload);
        Box::pin(async move {
            let Auth(auth) = auth.await?;
            auth.require_scopes(T::SCOPES)
                .map_err(|e| AuthRejection::new(e, None))?;
            Ok(Scoped(auth, PhantomData))
        })
    }
}
