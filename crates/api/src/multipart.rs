//! Writing `multipart/related` response bodies (PS3.18 8.6.1.2). WADO-RS retrieval streams
//! its parts with [`part_head`] and [`end`]; small bodies (frames, bulk data, rendered
//! images) are built whole by [`response`].

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The header of a `multipart/related` response whose parts are `root_type`.
pub(crate) fn content_type(root_type: &str, boundary: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("multipart/related; type=\"{root_type}\"; boundary={boundary}"))
        .expect("media types and boundaries are ASCII")
}

/// What comes before a part's bytes.
pub(crate) fn part_head(boundary: &str, media_type: &str) -> String {
    format!("--{boundary}\r\nContent-Type: {media_type}\r\n\r\n")
}

/// What comes after the last part's bytes (each part's bytes end with CRLF before it).
pub(crate) fn end(boundary: &str) -> String {
    format!("--{boundary}--\r\n")
}

/// A whole response of `parts`, each `(media type, bytes)`.
pub(crate) fn response(
    root_type: &str,
    boundary: &str,
    parts: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Response {
    let mut body = Vec::new();
    for (media_type, bytes) in parts {
        body.extend_from_slice(part_head(boundary, &media_type).as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(end(boundary).as_bytes());
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, content_type(root_type, boundary));
    response
}
