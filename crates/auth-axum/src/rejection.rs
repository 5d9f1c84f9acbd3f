//! [`AuthRejection`]: a refusal of the core, as an axum response.

use auth_core::Refusal;
use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};

/// Why an extractor refused a request: the core's [`Refusal`] (status,
/// headers, body), sent as it is — the same answer `auth-actix` sends.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthRejection(pub Refusal);

impl From<Refusal> for AuthRejection {
    fn from(refusal: Refusal) -> Self {
        AuthRejection(refusal)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0.into_response::<Body>()
    }
}
