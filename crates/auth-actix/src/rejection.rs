//! [`AuthRejection`]: every way auth can refuse a request, as an actix
//! [`ResponseError`].

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use auth_core::AuthError;

/// Why a request was refused.
///
/// The response is the core's: the error's status, its RFC 6750
/// `WWW-Authenticate` challenge (with the realm, if configured), and the
/// JSON body `{"error", "error_description"}` — the same as `auth-axum`
/// sends for the same scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The core's answer.
    Auth {
        /// The error.
        error: AuthError,
        /// The realm to name in the challenge.
        realm: Option<String>,
    },
    /// An extractor found neither the [`Authentication`](crate::Authentication)
    /// middleware nor an [`AuthState`](crate::AuthState) in `app_data`: a
    /// server bug, 500.
    MissingMiddleware,
}

impl AuthRejection {
    pub(crate) fn new(error: AuthError, realm: Option<&str>) -> Self {
        AuthRejection::Auth {
            error,
            realm: realm.map(str::to_owned),
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthRejection::Auth { error, .. } => error.fmt(f),
            AuthRejection::MissingMiddleware => f.write_str(MISSING),
        }
    }
}

const MISSING: &str =
    "auth-actix: this extractor needs the Authentication middleware, or an AuthState in app_data";

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthRejection::Auth { error, .. } => StatusCode::from_u16(error.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            AuthRejection::MissingMiddleware => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        match self {
            AuthRejection::Auth { error, realm } => {
                tracing::debug!(status = error.status().as_u16(), reason = %error, "request not authenticated");
                let challenge = error.challenge().map(|c| match realm {
                    Some(realm) => c.realm(realm).to_string(),
                    None => c.to_string(),
                });
                if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
                response.body(error.body_json())
            }
            AuthRejection::MissingMiddleware => {
                tracing::error!("{MISSING}");
                response.body(
                    serde_json::json!({"error": "server_error", "error_description": MISSING})
                        .to_string(),
                )
            }
        }
    }
}
