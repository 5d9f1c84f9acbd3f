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
        convert::status(self.0.status())
    }

    fn error_response(&self) -> HttpResponse {
        convert::refusal(self.0.clone())
    }
}
