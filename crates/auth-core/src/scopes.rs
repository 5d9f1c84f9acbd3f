//! Scopes: [`Scope`], a fixed set named by a type (the adapters'
//! `Scoped<T>` extractors), and [`RequireScopes`], a backend whose
//! identities must hold some.

use std::sync::Arc;
use std::time::SystemTime;

use crate::backend::{Backend, Outcome};
use crate::error::AuthError;
use crate::request::RequestView;

/// A fixed set of scopes, named by a type: the adapters' `Scoped<T>`
/// extractors require `T::SCOPES`.
///
/// ```
/// use auth_core::Scope;
///
/// struct Admin;
/// impl Scope for Admin {
///     const SCOPES: &'static [&'static str] = &["admin"];
/// }
/// ```
pub trait Scope: Send + Sync {
    /// Every one of these must be granted.
    const SCOPES: &'static [&'static str];
}

/// A backend whose identities must hold every one of some scopes; otherwise
/// 403 `insufficient_scope` naming them (see [`AuthData::require_scopes`](crate::AuthData::require_scopes)).
///
/// ```
/// use auth_core::{AuthData, Backend, RequireScopes, Source};
/// use auth_core::step::{Outcome, RequestView};
/// use std::time::SystemTime;
///
/// struct Fixed;
/// impl Backend for Fixed {
///     fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
///         let data = serde_json::json!({"scope": "read"});
///         Outcome::ok(AuthData::new(Source::Jwt, "alice", data.as_object().unwrap().clone()))
///     }
/// }
///
/// let admin = RequireScopes::new(Fixed, ["admin"]);
/// let err = admin.identify(&auth_core::http::Request::new(())).unwrap_err();
/// assert_eq!(err.status(), 403);
/// ```
#[derive(Clone, Debug)]
pub struct RequireScopes<B> {
    inner: B,
    scopes: Arc<[String]>,
}

impl<B: Backend> RequireScopes<B> {
    /// Wraps `inner`, requiring `scopes`.
    pub fn new<I, S>(inner: B, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireScopes {
            inner,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl<B: Backend> Backend for RequireScopes<B> {
    fn authenticate(&self, req: &dyn RequestView, now: SystemTime) -> Outcome {
        let scopes = Arc::clone(&self.scopes);
        self.inner.authenticate(req, now).map_result(move |result| {
            let who = result?;
            if scopes.iter().all(|s| who.auth.has_scope(s)) {
                Ok(who)
            } else {
                Err(AuthError::InsufficientScope {
                    required: scopes.join(" "),
                })
            }
        })
    }
}
