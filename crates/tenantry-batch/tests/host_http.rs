//! `Client::with_http`: the host's own `reqwest::Client` carries every call (its default
//! headers arrive), and the client still adds the key and version headers to each request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use tenantry_batch::{Client, Config, ListParams};

/// A server that records the headers of each request and answers an empty batch list.
async fn serve() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/v1/messages/batches",
        get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(headers);
                r#"{"data":[],"has_more":false,"first_id":null,"last_id":null}"#
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn a_hosts_own_http_client_carries_the_calls() {
    let (url, seen) = serve().await;
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("x-host-trace", "trace-7".parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(defaults)
        .user_agent("host-service/1.0")
        .build()
        .unwrap();
    let client = Client::with_http(Config::new("sk-test").base_url(&url), http).unwrap();

    let page = client.batches().list(&ListParams::default()).await.unwrap();
    assert!(page.data.is_empty());

    let seen = seen.lock().unwrap();
    let headers = seen.first().expect("the call reached the server");
    assert_eq!(headers["x-host-trace"], "trace-7");
    assert_eq!(headers["user-agent"], "host-service/1.0");
    assert_eq!(headers["x-api-key"], "sk-test");
    assert!(headers.contains_key("anthropic-version"));
}

#[tokio::test]
async fn the_default_client_sends_the_same_api_headers() {
    let (url, seen) = serve().await;
    let client = Client::new(Config::new("sk-test").base_url(&url)).unwrap();
    client.batches().list(&ListParams::default()).await.unwrap();

    let seen = seen.lock().unwrap();
    let headers = seen.first().expect("the call reached the server");
    assert_eq!(headers["x-api-key"], "sk-test");
    assert!(headers.contains_key("anthropic-version"));
    assert!(!headers.contains_key("x-host-trace"));
    assert!(
        headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("tenantry-batch/")
    );
}
