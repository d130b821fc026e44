//! The gateway's own answers: JSON errors that say what happened, and redirects.

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::body::{Body, empty, full};

/// A JSON error: `{"error": CODE, "message": MESSAGE}` with `status`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    let body = json!({ "error": code, "message": message.into() }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A redirect to `location` with `status`.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    match HeaderValue::try_from(location) {
        Ok(value) => {
            let mut response = Response::new(empty());
            *response.status_mut() = status;
            response.headers_mut().insert(LOCATION, value);
            response
        }
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request's path cannot be put in a Location header",
        ),
    }
}

/// 404 for a request no route takes.
pub(crate) fn no_route(host: &str, path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("no route of this gateway serves {host}{path}"),
    )
}
