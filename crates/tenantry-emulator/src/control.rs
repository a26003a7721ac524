//! Control routes for hosts that cannot call the Rust API (the binary, other languages).
//!
//! They live under `/_emulator/`, a prefix the real API never uses, and need no key.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::body::{MESSAGE_BODY_LIMIT, json_response, parse_json, read_body};
use crate::server::{Handled, Shared};
use crate::wire::ApiError;

/// `POST /_emulator/clock`: `{"offset_ms": O, "advance_ms": N, "scale": S}`, applied in
/// that order.
pub(crate) async fn control_clock(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let body = read_body(&headers, body, MESSAGE_BODY_LIMIT, shared.body_timeout).await?;
    let value = parse_json(&body)?;
    if let Some(ms) = value.get("offset_ms") {
        let ms = ms
            .as_i64()
            .ok_or_else(|| ApiError::invalid("offset_ms: Input should be a valid integer"))?;
        shared.clock.set_offset(time::Duration::milliseconds(ms));
    }
    if let Some(ms) = value.get("advance_ms") {
        let ms = ms
            .as_u64()
            .ok_or_else(|| ApiError::invalid("advance_ms: Input should be a valid integer"))?;
        shared.clock.advance(Duration::from_millis(ms));
    }
    if let Some(scale) = value.get("scale") {
        let scale = scale
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| ApiError::invalid("scale: Input should be a valid integer"))?;
        shared.clock.set_scale(scale);
    }
    let now = crate::wire::timestamp(shared.clock.now());
    Ok(json_response(
        StatusCode::OK,
        &json!({"now": now, "scale": shared.clock.scale()}),
    ))
}

pub(crate) async fn control_config(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let body = read_body(&headers, body, MESSAGE_BODY_LIMIT, shared.body_timeout).await?;
    let value = parse_json(&body)?;
    if let Some(ms) = value.get("batch_latency_ms") {
        let ms = ms.as_u64().ok_or_else(|| {
            ApiError::invalid("batch_latency_ms: Input should be a valid integer")
        })?;
        shared.set_latency(Duration::from_millis(ms));
    }
    let latency = u64::try_from(shared.latency().as_millis()).unwrap_or(u64::MAX);
    Ok(json_response(
        StatusCode::OK,
        &json!({"batch_latency_ms": latency}),
    ))
}

pub(crate) async fn control_faults(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let body = read_body(&headers, body, MESSAGE_BODY_LIMIT, shared.body_timeout).await?;
    let value = parse_json(&body)?;
    let specs = value
        .get("specs")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("specs: Field required"))?;
    let mut plan = crate::faults::FaultPlan::new();
    for spec in specs {
        let spec = spec
            .as_str()
            .ok_or_else(|| ApiError::invalid("specs: Input should be a list of strings"))?;
        plan = plan
            .with_spec(spec)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    shared.faults.replace(plan);
    Ok(json_response(
        StatusCode::OK,
        &json!({"installed": specs.len()}),
    ))
}

pub(crate) async fn control_counts(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &shared.faults.counts().to_json())
}
