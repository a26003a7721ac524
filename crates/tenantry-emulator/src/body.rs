//! Request and response bodies: bounded reads with an idle timeout, JSON parsing, JSON
//! answers, and the body faults (truncated and slow streams).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::Value;

use crate::wire::{ApiError, ErrorType};

/// Body limit of `/v1/messages` and `count_tokens` (the real API's 32 MB).
pub(crate) const MESSAGE_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Reads a JSON body of at most `limit` bytes.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        drain(body, idle).await;
        return Err(ApiError::too_large());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let capacity = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(limit);
    let mut buffer = BytesMut::with_capacity(capacity);
    let mut data = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, data.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                let mut error = ApiError::new(
                    ErrorType::Timeout,
                    "Timed out waiting for the request body.",
                );
                error.status = 408;
                return Err(error);
            }
        };
        let chunk = chunk.map_err(|_| ApiError::invalid("The request body could not be read."))?;
        if buffer.len() + chunk.len() > limit {
            drop(buffer);
            drain_stream(data, idle).await;
            return Err(ApiError::too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    if !buffer.is_empty()
        && !content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(ApiError::invalid(format!(
            "Unsupported content type {content_type:?}: the body must be application/json"
        )));
    }
    Ok(buffer.freeze())
}

/// Most bytes read and discarded from a rejected body, so that a client that sends its
/// whole body before reading the answer still sees the 413 (beyond it the connection closes).
const DRAIN_LIMIT: usize = 1024 * 1024 * 1024;

async fn drain(body: Body, idle: Duration) {
    drain_stream(body.into_data_stream(), idle).await;
}

async fn drain_stream(mut data: axum::body::BodyDataStream, idle: Duration) {
    let mut seen = 0_usize;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(idle, data.next()).await {
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: {e}"
        ))
    })
}

pub(crate) fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let text = match serde_json::to_string(value) {
        Ok(text) => text,
        Err(e) => {
            return ApiError::new(ErrorType::Api, format!("cannot encode the response: {e}"))
                .into_response();
        }
    };
    json_text(status, text)
}

pub(crate) fn json_text(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn truncate(body: Body, after_bytes: u64) -> Body {
    let inner = body.into_data_stream();
    let stream = futures_util::stream::unfold(
        (inner, after_bytes, false),
        |(mut inner, remaining, done)| async move {
            if done {
                return None;
            }
            if remaining == 0 {
                // Let the server flush the headers and the partial data first, so the client
                // sees a response that stops mid-body rather than no response at all.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let err = std::io::Error::other("response truncated by fault injection");
                return Some((Err(err), (inner, 0, true)));
            }
            match inner.next().await {
                Some(Ok(mut chunk)) => {
                    let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                    if len > remaining {
                        chunk.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
                        Some((Ok(chunk), (inner, 0, false)))
                    } else {
                        Some((Ok(chunk), (inner, remaining - len, false)))
                    }
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (inner, 0, true))),
                None => None,
            }
        },
    );
    Body::from_stream(stream)
}

pub(crate) fn slow(body: Body, chunk_bytes: usize, delay: Duration) -> Body {
    let inner = body.into_data_stream();
    let chunk_bytes = chunk_bytes.max(1);
    let stream = futures_util::stream::unfold(
        (inner, Bytes::new()),
        move |(mut inner, mut buffer)| async move {
            while buffer.is_empty() {
                match inner.next().await {
                    Some(Ok(chunk)) => buffer = chunk,
                    Some(Err(e)) => {
                        return Some((Err(std::io::Error::other(e)), (inner, Bytes::new())));
                    }
                    None => return None,
                }
            }
            tokio::time::sleep(delay).await;
            let piece = buffer.split_to(chunk_bytes.min(buffer.len()));
            Some((Ok(piece), (inner, buffer)))
        },
    );
    Body::from_stream(stream)
}
