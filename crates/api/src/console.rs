//! The web console: a static page, a stylesheet and a script, compiled into the binary,
//! with Chart.js (from npm, vendored by `npm run vendor` in `console/`) for the dose charts.
//! It holds no patient data and needs no token to load; everything it shows it fetches
//! from the DICOMweb and admin APIs with the token the user types in.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn index() -> Response {
    asset(include_str!("../console/index.html"), "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(include_str!("../console/console.js"), "text/javascript; charset=utf-8")
}

pub async fn stylesheet() -> Response {
    asset(include_str!("../console/console.css"), "text/css; charset=utf-8")
}

pub async fn charts() -> Response {
    asset(include_str!("../console/vendor/chart.umd.min.js"), "text/javascript; charset=utf-8")
}
