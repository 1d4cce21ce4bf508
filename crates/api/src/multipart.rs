//! Writing `multipart/related` response bodies (PS3.18 8.6.1.2). Large ones (WADO-RS
//! retrieval, rendered studies and series) are [`streamed`]: a task writes parts with
//! [`part_head`] and [`end`] into a small bounded channel. Small bodies (frames, bulk data)
//! are built whole by [`response`].

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

/// A piece of a streamed body; an error cuts the body off (the cause goes to the log).
pub(crate) type Chunk = Result<Bytes, std::io::Error>;

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

/// A response whose body is whatever arrives on `receiver`, already framed as parts.
pub(crate) fn streamed(root_type: &str, boundary: &str, receiver: mpsc::Receiver<Chunk>) -> Response {
    let mut response = Body::from_stream(ChannelBody(receiver)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, content_type(root_type, boundary));
    response
}

/// A response body fed by a bounded channel.
struct ChannelBody(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChannelBody {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}
