//! The core's `http` 1 header names and values in actix-web 4's types
//! (`http` 0.2), carried over as bytes.

use actix_web::http::header::{HeaderName, HeaderValue};

/// A header value; `None` for one actix would not take (it takes every
/// value `http` 1 does).
pub(crate) fn value(value: &http::HeaderValue) -> Option<HeaderValue> {
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// A header line.
pub(crate) fn header(
    name: &http::HeaderName,
    value: &http::HeaderValue,
) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
        self::value(value)?,
    ))
}
