//! One API, every answer an envelope: a small axum service built with `tenantry-envelope`,
//! called in-process, printing each response's status, headers and body.
//!
//! Run with: `cargo run --example envelope_api`
//!
//! It shows the three envelope states (success, error, pending), a budget refusal with its
//! limit, a host-defined error code, and how bad input (wrong content type, malformed JSON, a
//! wrong field, an unknown route, a wrong method) comes back in the same shape instead of
//! axum's plain-text rejections.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{Request, StatusCode};
use serde::Deserialize;
use tenantry_envelope::axum::{Json, Path, Query, method_not_allowed, not_found};
use tenantry_envelope::{Code, Cursor, CustomCode, Envelope, Limit, Operation, Page, Problem};
use tower::ServiceExt;

/// A code this host adds to the built-in set.
const SEAT_LIMIT_REACHED: CustomCode = CustomCode::new("SEAT_LIMIT_REACHED", StatusCode::FORBIDDEN);

#[derive(Deserialize)]
struct Summarize {
    tenant: String,
    documents: Vec<String>,
}

#[derive(Deserialize)]
struct ListParams {
    limit: usize,
    cursor: Option<String>,
}

/// Accepts work for the next batch, or refuses it.
async fn summarize(Json(body): Json<Summarize>) -> Result<Operation, Problem> {
    match body.tenant.as_str() {
        "broke" => Err(Problem::budget_exceeded(
            "the monthly budget of tenant broke is spent",
            Limit::new("monthly_spend", "usd_micros", 50_000_000).with_actual(50_000_130),
        )),
        "crowded" => Err(Problem::new(
            SEAT_LIMIT_REACHED,
            "all 5 seats of this plan are taken",
        )),
        tenant => {
            let id = format!("job_{tenant}_{}", body.documents.len());
            let operation = Operation::new(id.clone(), format!("/v1/jobs/{id}"))
                .map_err(|err| Problem::new(Code::Internal, err.to_string()))?;
            Ok(operation.with_retry_after(Duration::from_secs(30)))
        }
    }
}

/// Lists summaries a page at a time.
async fn list(Query(params): Query<ListParams>) -> Envelope<Page<String>> {
    let all: Vec<String> = (1..=5).map(|i| format!("summary {i}")).collect();
    let start = params
        .cursor
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0_usize)
        .min(all.len());
    let end = (start + params.limit).min(all.len());
    let items = all[start..end].to_vec();
    let page = if end < all.len() {
        Page::more(items, Cursor::new(end.to_string()))
    } else {
        Page::last(items)
    };
    Envelope::success(page)
}

/// Reads one summary.
async fn one(Path(id): Path<u32>) -> Result<Envelope<String>, Problem> {
    if id > 5 {
        return Err(Problem::new(
            Code::NotFound,
            format!("summary {id} does not exist"),
        ));
    }
    Ok(Envelope::success(format!("summary {id}")))
}

fn app() -> Router {
    Router::new()
        .route("/v1/summaries", post(summarize).get(list))
        .route("/v1/summaries/{id}", get(one))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn show(title: &str, request: Request<Body>) -> Result<(), Box<dyn std::error::Error>> {
    let line = format!("{} {}", request.method(), request.uri());
    let response = app().oneshot(request).await?;
    let status = response.status();
    let mut headers = Vec::new();
    for name in [LOCATION, RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            headers.push(format!("{name}: {}", value.to_str()?));
        }
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
    // Every body, whatever happened, reads back as an envelope.
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(&body)?;
    println!(
        "## {title}\n{line}\n-> {status} [{}] {}",
        envelope.status(),
        headers.join(", ")
    );
    println!("{}\n", String::from_utf8_lossy(&body));
    Ok(())
}

fn json(uri: &str, body: &str) -> Result<Request<Body>, http::Error> {
    Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let summaries = "/v1/summaries";
    show(
        "accepted for the next batch",
        json(summaries, r#"{"tenant":"acme","documents":["a","b"]}"#)?,
    )
    .await?;
    show(
        "a page of results",
        Request::get("/v1/summaries?limit=2").body(Body::empty())?,
    )
    .await?;
    show(
        "the last page",
        Request::get("/v1/summaries?limit=2&cursor=4").body(Body::empty())?,
    )
    .await?;
    show(
        "one result",
        Request::get("/v1/summaries/3").body(Body::empty())?,
    )
    .await?;
    show(
        "budget refusal",
        json(summaries, r#"{"tenant":"broke","documents":["a"]}"#)?,
    )
    .await?;
    show(
        "host-defined code",
        json(summaries, r#"{"tenant":"crowded","documents":["a"]}"#)?,
    )
    .await?;
    show(
        "missing resource",
        Request::get("/v1/summaries/9").body(Body::empty())?,
    )
    .await?;
    show(
        "wrong content type",
        Request::post(summaries)
            .header(CONTENT_TYPE, "text/plain")
            .body(Body::from("tenant=acme"))?,
    )
    .await?;
    show("malformed JSON", json(summaries, r#"{"tenant":"acme","#)?).await?;
    show(
        "wrong field type",
        json(summaries, r#"{"tenant":"acme","documents":["a",7]}"#)?,
    )
    .await?;
    show("missing field", json(summaries, r#"{"documents":[]}"#)?).await?;
    show(
        "bad query",
        Request::get("/v1/summaries?limit=lots").body(Body::empty())?,
    )
    .await?;
    show(
        "unknown route",
        Request::get("/v2/everything").body(Body::empty())?,
    )
    .await?;
    show(
        "wrong method",
        Request::delete(summaries).body(Body::empty())?,
    )
    .await?;
    Ok(())
}
