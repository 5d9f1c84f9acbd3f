//! The core's answers in actix-web 4's types (`http` 0.2): header names,
//! values and statuses carried over as bytes.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use auth_core::Refusal;

/// The rate limit fields' names, made once (not parsed per request).
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// A header name: the fields the gate adds most, without parsing.
fn name(name: &http::HeaderName) -> Option<HeaderName> {
    Some(match name.as_str() {
        "set-cookie" => header::SET_COOKIE,
        "ratelimit" => RATELIMIT.clone(),
        "ratelimit-policy" => RATELIMIT_POLICY.clone(),
        "retry-after" => header::RETRY_AFTER,
        other => HeaderName::from_bytes(other.as_bytes()).ok()?,
    })
}

/// A header value; `None` for one actix would not take (it takes every
/// value `http` 1 does).
pub(crate) fn value(value: &http::HeaderValue) -> Option<HeaderValue> {
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// Appends `fields` (the gate's additions, a refusal's headers).
pub(crate) fn append(
    headers: &mut HeaderMap,
    fields: impl IntoIterator<Item = (http::HeaderName, http::HeaderValue)>,
) {
    for (name, value) in fields {
        if let (Some(name), Some(value)) = (self::name(&name), self::value(&value)) {
            headers.append(name, value);
        }
    }
}

/// A status.
pub(crate) fn status(status: http::StatusCode) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal as actix's response.
pub(crate) fn refusal(refusal: Refusal) -> HttpResponse {
    let (status, headers, body) = refusal.into_parts();
    let mut response = HttpResponse::with_body(self::status(status), body);
    append(response.headers_mut(), headers);
    response.map_into_boxed_body()
}
