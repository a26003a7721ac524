//! The axum integration against a real router: status codes, headers, and that every failure a
//! client can cause (bad JSON, wrong content type, too large, wrong shape, unknown route, wrong
//! method) comes back as an error envelope, never as plain text.
#![cfg(feature = "axum")]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use http::header::{ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{Request, StatusCode};
use pretty_assertions::assert_eq;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_envelope::axum::{Json, Path, Query, method_not_allowed, not_found};
use tenantry_envelope::{
    Code, Envelope, Limit, Operation, OperationState, Page, Problem, ProblemDetails,
};
use tower::ServiceExt;

#[derive(Debug, Deserialize)]
struct Submit {
    tenant: String,
    requests: Vec<Request1>,
}

#[derive(Debug, Deserialize)]
struct Request1 {
    max_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: u32,
}

async fn submit(Json(body): Json<Submit>) -> Result<Operation, Problem> {
    if body.tenant == "broke" {
        return Err(Problem::budget_exceeded(
            "the budget is spent",
            Limit::new("monthly_spend", "usd_micros", 10),
        ));
    }
    let tokens: u32 = body.requests.iter().map(|r| r.max_tokens).sum();
    let id = format!("job_{}_{tokens}", body.tenant);
    Ok(Operation::new(id.clone(), format!("/v1/jobs/{id}"))
        .map_err(|err| Problem::new(Code::Internal, err.to_string()))?
        .with_state(OperationState::Queued)
        .with_retry_after(Duration::from_secs(5)))
}

async fn list(Query(query): Query<ListQuery>) -> Envelope<Page<u32>> {
    Envelope::success(Page::last((0..query.limit).collect()))
}

async fn job(Path(id): Path<u32>) -> Envelope<u32> {
    Envelope::success(id)
}

async fn limited() -> Problem {
    Problem::rate_limited("slow down", Duration::from_secs(7))
}

async fn rfc9457() -> ProblemDetails {
    Problem::new(Code::NotFound, "no job").to_problem_details()
}

async fn created() -> (StatusCode, Envelope<&'static str>) {
    (StatusCode::CREATED, Envelope::success("made"))
}

async fn reason(body: Option<Json<String>>) -> Envelope<String> {
    Envelope::success(body.map_or_else(|| "none".to_owned(), |Json(reason)| reason))
}

async fn unserializable() -> Envelope<HashMap<(u8, u8), u8>> {
    Envelope::success(HashMap::from([((1, 2), 3)]))
}

fn app() -> Router {
    Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(job))
        .route("/limited", get(limited))
        .route("/rfc9457", get(rfc9457))
        .route("/created", post(created))
        .route("/unserializable", get(unserializable))
        .route("/reason", post(reason))
        .layer(DefaultBodyLimit::max(256))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

async fn send(request: Request<Body>) -> Reply {
    let response = app().oneshot(request).await.expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "body is not JSON ({err}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        body,
    }
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

/// Asserts the reply is an error envelope with `code` and the matching HTTP status, and
/// returns the problem.
fn assert_problem(reply: &Reply, code: &str, status: StatusCode) -> Value {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
    assert_eq!(reply.body["status"], "error", "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    assert_eq!(reply.body["error"]["status"], status.as_u16());
    // The body is a well-formed envelope for the typed reader too.
    serde_json::from_value::<Envelope<Value>>(reply.body.clone()).expect("typed envelope");
    reply.body["error"].clone()
}

#[tokio::test]
async fn success_is_200_json() {
    let reply = send(get_req("/v1/jobs?limit=3")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
    assert_eq!(
        reply.body,
        json!({"status":"success","data":{"items":[0,1,2],"next_cursor":null,"has_more":false}})
    );
}

#[tokio::test]
async fn accepted_work_is_202_with_location_and_retry_after() {
    let reply = send(post_json(
        "/v1/jobs",
        r#"{"tenant":"acme","requests":[{"max_tokens":5}]}"#,
    ))
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.headers[LOCATION], "/v1/jobs/job_acme_5");
    assert_eq!(reply.headers[RETRY_AFTER], "5");
    assert_eq!(
        reply.body,
        json!({"status":"pending","operation":{"id":"job_acme_5","state":"queued","status_url":"/v1/jobs/job_acme_5","retry_after":5}})
    );
}

#[tokio::test]
async fn handler_problems_keep_their_status_and_details() {
    let reply = send(post_json("/v1/jobs", r#"{"tenant":"broke","requests":[]}"#)).await;
    let problem = assert_problem(&reply, "BUDGET_EXCEEDED", StatusCode::PAYMENT_REQUIRED);
    assert_eq!(problem["details"]["limits"][0]["max"], "10");
    assert!(!reply.headers.contains_key(RETRY_AFTER));

    let reply = send(get_req("/limited")).await;
    let problem = assert_problem(&reply, "RATE_LIMITED", StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["retryable"], true);
    assert_eq!(reply.headers[RETRY_AFTER], "7");
}

#[tokio::test]
async fn wrong_content_type_is_415_envelope() {
    let request = Request::post("/v1/jobs")
        .header(CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    assert_problem(
        &send(request).await,
        "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    let request = Request::post("/v1/jobs")
        .body(Body::from("{}"))
        .expect("request");
    assert_problem(
        &send(request).await,
        "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
}

#[tokio::test]
async fn malformed_json_is_400_envelope() {
    let reply = send(post_json("/v1/jobs", r#"{"tenant":"acme","#)).await;
    let problem = assert_problem(&reply, "INVALID_REQUEST", StatusCode::BAD_REQUEST);
    let message = problem["message"].as_str().expect("message");
    assert!(
        message.starts_with("the request body is not valid JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn wrong_shape_is_422_with_a_pointer_to_the_field() {
    let reply = send(post_json(
        "/v1/jobs",
        r#"{"tenant":"acme","requests":[{"max_tokens":1},{"max_tokens":-4}]}"#,
    ))
    .await;
    let problem = assert_problem(
        &reply,
        "VALIDATION_FAILED",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(
        problem["details"]["fields"][0]["pointer"],
        "/requests/1/max_tokens"
    );
    let field_message = problem["details"]["fields"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        field_message.starts_with("invalid value: integer `-4`, expected u32"),
        "{field_message}"
    );

    let reply = send(post_json("/v1/jobs", r#"{"requests":[]}"#)).await;
    let problem = assert_problem(
        &reply,
        "VALIDATION_FAILED",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(
        problem["details"]["fields"][0],
        json!({"pointer":"/tenant","message":"missing field `tenant`"})
    );
}

#[tokio::test]
async fn oversized_body_is_413_envelope() {
    let big = format!(r#"{{"tenant":"{}","requests":[]}}"#, "a".repeat(1000));
    assert_problem(
        &send(post_json("/v1/jobs", &big)).await,
        "PAYLOAD_TOO_LARGE",
        StatusCode::PAYLOAD_TOO_LARGE,
    );
}

#[tokio::test]
async fn bad_query_and_path_are_400_envelopes() {
    let reply = send(get_req("/v1/jobs?limit=many")).await;
    let problem = assert_problem(&reply, "INVALID_REQUEST", StatusCode::BAD_REQUEST);
    assert!(
        problem["message"]
            .as_str()
            .expect("message")
            .contains("limit"),
        "{problem}"
    );
    assert_problem(
        &send(get_req("/v1/jobs")).await,
        "INVALID_REQUEST",
        StatusCode::BAD_REQUEST,
    );

    let reply = send(get_req("/v1/jobs/not-a-number")).await;
    assert_problem(&reply, "INVALID_REQUEST", StatusCode::BAD_REQUEST);
    assert_eq!(
        send(get_req("/v1/jobs/12")).await.body,
        json!({"status":"success","data":12})
    );
}

#[tokio::test]
async fn unknown_route_and_method_are_envelopes() {
    let reply = send(get_req("/v2/nothing")).await;
    let problem = assert_problem(&reply, "NOT_FOUND", StatusCode::NOT_FOUND);
    assert_eq!(problem["message"], "no route for GET /v2/nothing");

    let request = Request::delete("/v1/jobs")
        .body(Body::empty())
        .expect("request");
    let reply = send(request).await;
    let problem = assert_problem(&reply, "METHOD_NOT_ALLOWED", StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem["message"], "/v1/jobs does not accept DELETE");
    let allow = reply
        .headers
        .get(ALLOW)
        .expect("Allow header")
        .to_str()
        .expect("ascii");
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "HEAD", "POST"]);
}

#[tokio::test]
async fn problem_details_is_problem_json() {
    let reply = send(get_req("/rfc9457")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers[CONTENT_TYPE], "application/problem+json");
    assert_eq!(
        reply.body,
        json!({"type":"about:blank","title":"Not Found","status":404,"detail":"no job","code":"NOT_FOUND","retryable":false})
    );
}

#[tokio::test]
async fn tuple_overrides_the_success_status() {
    let reply = send(
        Request::post("/created")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body, json!({"status":"success","data":"made"}));
}

#[tokio::test]
async fn unserializable_data_becomes_an_internal_error_envelope() {
    let reply = send(get_req("/unserializable")).await;
    let problem = assert_problem(&reply, "INTERNAL", StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem["message"], "the response could not be serialized");
}

#[tokio::test]
async fn optional_json_body() {
    let reply = send(
        Request::post("/reason")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.body, json!({"status":"success","data":"none"}));
    let reply = send(post_json("/reason", r#""late""#)).await;
    assert_eq!(reply.body, json!({"status":"success","data":"late"}));
    let reply = send(post_json("/reason", "7")).await;
    assert_problem(
        &reply,
        "VALIDATION_FAILED",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let request = Request::post("/reason")
        .header(CONTENT_TYPE, "text/plain")
        .body(Body::from("late"))
        .expect("request");
    assert_problem(
        &send(request).await,
        "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
}
