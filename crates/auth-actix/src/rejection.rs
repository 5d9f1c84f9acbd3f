//! [`AuthRejection`]: a refusal of the core, as an actix [`ResponseError`].

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use auth_core::Refusal;

use crate::convert;

/// Why an extractor refused a request: the core's [`Refusal`] (status,
/// headers, body), sent as it is — the same answer `auth-axum` sends.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthRejection(pub Refusal);

impl AuthRejection {
    /// The refusal.
    pub fn refusal(&self) -> &Refusal {
        &self.0
    }
}

impl From<Refusal> for AuthRejection {
    fn from(refusal: Refusal) -> Self {
        AuthRejection(refusal)
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.error() {
            Some(error) => error.fmt(f),
            None => write!(f, "request refused with {}", self.0.status()),
        }
    }
}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        render(self.0.clone())
    }
}

/// The refusal as actix's response (actix-web 4 speaks `http` 0.2: names,
/// values and status are carried over as bytes).
pub(crate) fn render(refusal: Refusal) -> HttpResponse {
    let (status, headers, body) = refusal.into_parts();
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, body);
    for (name, value) in headers {
        if let Some((name, value)) = convert::header(&name, &value) {
            response.headers_mut().append(name, value);
        }
    }
    response.map_into_boxed_body()
}
