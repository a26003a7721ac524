//! A spend-limit 429 (`error.details.error_code = enforced_spend_limit_reached`) is not
//! retried, while an ordinary 429 is. The emulator cannot inject error details, so a minimal
//! local server answers exactly what the real API documents.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use tenantry_batch::{Client, Config, ListParams, RetryPolicy};

async fn serve(body: &'static str, retry_after: bool) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/v1/messages/batches",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                headers.insert("request-id", "req_spend".parse().unwrap());
                if retry_after {
                    headers.insert("retry-after-ms", "10".parse().unwrap());
                }
                (StatusCode::TOO_MANY_REQUESTS, headers, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

fn client(url: &str) -> Client {
    let retry = RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .jitter(false);
    Client::new(Config::new("sk-test").base_url(url).retry(retry)).unwrap()
}

#[tokio::test]
async fn spend_limit_is_not_retried() {
    let (url, hits) = serve(
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit reached","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_spend"}"#,
        false,
    )
    .await;
    let err = client(&url)
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(err.is_rate_limited() && err.is_spend_limit() && !err.is_retryable());
    assert_eq!(err.request_id(), Some("req_spend"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn ordinary_rate_limit_is_retried() {
    let (url, hits) = serve(
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_spend"}"#,
        true,
    )
    .await;
    let err = client(&url)
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(err.is_rate_limited() && !err.is_spend_limit() && err.is_retryable());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
