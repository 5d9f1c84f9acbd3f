//! Extractors: [`Auth`], [`Claims`], [`Scoped`] read what the middleware
//! decided; without it they decide from an [`AuthState`] in `app_data`.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use auth_core::{AuthData, Gate, Gated, Policy, Refusal, Scope, Verdict};
use futures_util::future::{Either, LocalBoxFuture};
use serde::de::DeserializeOwned;

use crate::convert;
use crate::drive::Actix;
use crate::rejection::AuthRejection;
use crate::view::ActixView;

/// A ready answer when the middleware decided; boxed when an [`AuthState`] must.
pub type ExtractFuture<T> =
    Either<Ready<Result<T, AuthRejection>>, LocalBoxFuture<'static, Result<T, AuthRejection>>>;

/// Applies `read` to the request's verdict, the middleware's or decided now.
fn with_verdict<T: 'static>(
    req: &HttpRequest,
    read: fn(&Verdict) -> Result<T, Refusal>,
) -> ExtractFuture<T> {
    if let Some(verdict) = req.extensions().get::<Verdict>() {
        return Either::Left(ready(read(verdict).map_err(AuthRejection)));
    }
    let Some(state) = req.app_data::<web::Data<AuthState>>() else {
        return Either::Left(ready(Err(AuthRejection(Refusal::server_error(
            "an auth-actix extractor ran without the Authentication middleware \
             or an AuthState in app_data",
        )))));
    };
    let gate = state.gate.clone();
    let req = req.clone();
    Either::Right(Box::pin(async move {
        // actix builds every extractor of a handler before it polls any:
        // one polled earlier may have decided meanwhile. Deciding again
        // would issue a second anonymous session, its cookie replacing
        // the one of the identity already handed out.
        if let Some(verdict) = req.extensions().get::<Verdict>() {
            return read(verdict).map_err(AuthRejection);
        }
        let view = ActixView(&req);
        let decision = match gate.decide(&view, SystemTime::now()) {
            Gated::Done(decision) => decision,
            Gated::Pending(pending) => pending.drive(&view, &Actix).await,
        };
        let (verdict, additions) = decision.into_verdict()?;
        if let Some(cookie) = additions.get("set-cookie").and_then(convert::value) {
            req.extensions_mut().insert(IssuedCookie(cookie));
        }
        let answer = read(&verdict).map_err(AuthRejection);
        // Later extractors of the same request reuse it.
        req.extensions_mut().insert(verdict);
        answer
    }))
}

/// The identity of the request.
///
/// From the [`Authentication`](crate::Authentication) middleware's verdict
/// when it ran, else decided from an [`AuthState`] in `app_data`, else a
/// 500 (logged). Without an identity it refuses as the policy words it.
///
/// `Option<Auth>` is actix's own: it turns *any* refusal into `None`. Behind
/// the middleware that is safe (it has refused invalid credentials); from
/// an [`AuthState`], an invalid token would become `None` too: for optional
/// authentication use the middleware with `Policy::optional()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Auth(pub AuthData);

/// A `Set-Cookie` issued while deciding from an [`AuthState`]: find it in
/// the request extensions and send it with your response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCookie(pub actix_web::http::header::HeaderValue);

impl FromRequest for Auth {
    type Error = AuthRejection;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        with_verdict(req, |verdict| verdict.require().map(|a| Auth(a.clone())))
    }
}

/// A policy in `app_data` (as `web::Data<AuthState>`), for handlers
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
#[derive(Clone, Debug)]
pub struct AuthState {
    gate: Gate,
}

impl AuthState {
    /// Applies `policy` (a [`Policy`], or any backend; rate limits need
    /// the middleware).
    pub fn new(policy: impl Into<Policy>) -> Self {
        AuthState {
            gate: Gate::new(policy.into()),
        }
    }
}

/// Every claim of the identity as your own type: the token's claims
/// (registered ones such as `sub` included), or the introspection answer.
/// Claims that do not fit `T`: 401 `invalid_token` naming the field (never
/// its value).
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Claims<T> {
    type Error = AuthRejection;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        with_verdict(req, |verdict| verdict.claims::<T>().map(Claims))
    }
}

/// The identity, if it holds every scope of `T` (see
/// [`Scope`](auth_core::Scope)): otherwise 403 `insufficient_scope` naming
/// them (with the policy's realm), or 401 asking for a token when the
/// identity cannot carry scopes (an anonymous session).
///
/// ```
/// use auth_actix::Scoped;
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
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        with_verdict(req, |verdict| {
            verdict
                .require_scopes(T::SCOPES)
                .map(|auth| Scoped(auth.clone(), PhantomData))
        })
    }
}
