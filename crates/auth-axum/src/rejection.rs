//! [`AuthRejection`]: every way auth can refuse a request, as a response.

use auth_core::AuthError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Why a request was refused; implements [`IntoResponse`].
///
/// The response is the core's: the error's status, its RFC 6750
/// `WWW-Authenticate` challenge (with the realm, if configured), and the
/// JSON body `{"error", "error_description"}` — the same as `auth-actix`
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
    /// An extractor found neither `AuthLayer` on the route nor an
    /// `AuthState` in the router state: a server bug, 500.
    MissingLayer,
    /// `IpBackend` needs the peer address, but the server was not started
    /// with `into_make_service_with_connect_info::<SocketAddr>()`: 500.
    MissingConnectInfo,
}

impl AuthRejection {
    pub(crate) fn new(error: AuthError, realm: Option<&str>) -> Self {
        AuthRejection::Auth {
            error,
            realm: realm.map(str::to_owned),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::Auth { error, .. } => StatusCode::from_u16(error.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            AuthRejection::MissingLayer | AuthRejection::MissingConnectInfo => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn server_error(description: &str) -> String {
    serde_json::json!({"error": "server_error", "error_description": description}).to_string()
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            AuthRejection::Auth { error, realm } => {
                tracing::debug!(status = status.as_u16(), reason = %error, "request not authenticated");
                let mut response = json(status, error.body_json());
                let challenge = error.challenge().map(|c| match &realm {
                    Some(realm) => c.realm(realm).to_string(),
                    None => c.to_string(),
                });
                if let Some(value) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
            AuthRejection::MissingLayer => {
                tracing::error!(
                    "auth-axum extractor used on a route without AuthLayer or AuthState"
                );
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    server_error(
                        "auth-axum: this extractor needs AuthLayer on the route, or an AuthState in the router state",
                    ),
                )
            }
            AuthRejection::MissingConnectInfo => {
                tracing::error!(
                    "auth-axum: no ConnectInfo<SocketAddr>; IpBackend cannot see the client"
                );
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    server_error(
                        "auth-axum: no peer address; serve the app with into_make_service_with_connect_info::<SocketAddr>()",
                    ),
                )
            }
        }
    }
}
