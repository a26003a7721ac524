//! Headers, authentication, routing and bad input: the real API's error shapes, never a panic.

mod support;

use proptest::prelude::*;
use serde_json::json;
use support::{Client, KEY};
use tenantry_emulator::Emulator;

async fn raw(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> support::Answer {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", emu.base_url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    support::Answer {
        status,
        headers,
        text,
    }
}

const AUTH: [(&str, &str); 3] = [
    ("x-api-key", KEY),
    ("anthropic-version", "2023-06-01"),
    ("content-type", "application/json"),
];

#[tokio::test]
async fn authentication_and_version_rules() {
    let emu = support::emulator(0).await;
    let get = reqwest::Method::GET;
    let path = "/v1/messages/batches";
    let missing = raw(
        &emu,
        get.clone(),
        path,
        &[("anthropic-version", "2023-06-01")],
        None,
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_type().as_str()),
        (401, "authentication_error")
    );
    assert_eq!(missing.message(), "x-api-key header is required");
    let wrong = raw(
        &emu,
        get.clone(),
        path,
        &[
            ("x-api-key", "sk-nope"),
            ("anthropic-version", "2023-06-01"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.message().as_str()),
        (401, "invalid x-api-key")
    );
    let no_version = raw(&emu, get.clone(), path, &[("x-api-key", KEY)], None).await;
    assert_eq!(
        (no_version.status, no_version.message().as_str()),
        (400, "anthropic-version: header is required")
    );
    let bearer = raw(
        &emu,
        get.clone(),
        path,
        &[
            ("authorization", "Bearer sk-test"),
            ("anthropic-version", "2023-06-01"),
        ],
        None,
    )
    .await;
    assert_eq!(bearer.status, 200);
    let noisy = raw(
        &emu,
        get,
        "/v1/messages/batches?beta=true",
        &[
            ("x-api-key", KEY),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "message-batches-2024-09-24,some-future-beta",
            ),
            ("x-stainless-retry-count", "0"),
            ("x-stainless-lang", "python"),
        ],
        None,
    )
    .await;
    assert_eq!(noisy.status, 200);
    for answer in [&missing, &wrong, &no_version, &bearer, &noisy] {
        assert!(
            answer.headers["request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_011C")
        );
    }
    assert_eq!(
        missing.json()["request_id"],
        missing.headers["request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn any_key_is_accepted_without_a_key_list() {
    let emu = Emulator::builder().start().await.unwrap();
    let answer = Client::with_key(&emu, "whatever")
        .get("/v1/messages/batches")
        .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["anthropic-workspace-id"]
            .to_str()
            .unwrap()
            .starts_with("wrkspc_")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let unknown = client.get("/v1/nothing").await;
    assert_eq!(
        (unknown.status, unknown.error_type().as_str()),
        (404, "not_found_error")
    );
    let method = client
        .send(reqwest::Method::PUT, "/v1/messages/batches", None)
        .await;
    assert_eq!(method.status, 405);
    assert_eq!(method.json()["type"], "error");
}

#[tokio::test]
async fn malformed_bodies() {
    let emu = support::emulator(0).await;
    let post = reqwest::Method::POST;
    let bad_json = raw(
        &emu,
        post.clone(),
        "/v1/messages/batches",
        &AUTH,
        Some(b"{\"requests\": [".to_vec()),
    )
    .await;
    assert_eq!(
        (bad_json.status, bad_json.error_type().as_str()),
        (400, "invalid_request_error")
    );
    let text_type = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "text/plain"),
    ];
    let wrong_type = raw(
        &emu,
        post.clone(),
        "/v1/messages",
        &text_type,
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(wrong_type.status, 400);
    assert!(wrong_type.message().contains("application/json"));
    let empty = raw(&emu, post, "/v1/messages/count_tokens", &AUTH, None).await;
    assert_eq!(empty.status, 400);
}

#[tokio::test]
async fn envelope_errors_fail_the_create() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let answer = client
        .create(json!([
            support::request("a", "x"),
            support::request("b", "x"),
            support::request("c", "x"),
            support::request("bad id", "x")
        ]))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.message(),
        "requests.3.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    );
    let dup = client
        .create(json!([
            support::request("a", "x"),
            support::request("a", "y")
        ]))
        .await;
    assert!(
        dup.message()
            .starts_with("requests.1.custom_id: Duplicate custom_id")
    );
    let empty = client.create(json!([])).await;
    assert_eq!(
        empty.message(),
        "requests: List should have at least 1 item after validation, not 0"
    );
    assert_eq!(
        client.get("/v1/messages/batches").await.json()["data"],
        json!([]),
        "nothing was created"
    );
}

#[tokio::test]
async fn oversized_batches_get_413() {
    let emu = Emulator::builder()
        .api_key(KEY)
        .max_batch_bytes(64 * 1024)
        .start()
        .await
        .unwrap();
    let client = Client::new(&emu);
    let big = support::request("big", &"x".repeat(70 * 1024));
    let answer = client.create(json!([big])).await;
    assert_eq!(
        (answer.status, answer.error_type().as_str()),
        (413, "request_too_large")
    );
    // Without a content-length (chunked upload) the limit holds too.
    let body =
        serde_json::to_vec(&json!({"requests": [support::request("big", &"y".repeat(70 * 1024))]}))
            .unwrap();
    let stream = futures_util::stream::iter(
        body.chunks(8 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages/batches", emu.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // The emulator is still healthy.
    assert_eq!(client.create(support::requests(1)).await.status, 200);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the body, the create endpoint answers 200 or a 4xx in the error shape.
    #[test]
    fn create_endpoint_never_fails_on_input(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        r#"\{"requests":\[(\{"custom_id":"[a-z !]{0,5}","params":\{[a-z":0-9,]{0,20}\}\},?){0,4}\]\}"#.prop_map(String::into_bytes),
    ]) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let emu = Emulator::builder().start().await.unwrap();
            let answer = raw(&emu, reqwest::Method::POST, "/v1/messages/batches", &AUTH, Some(body)).await;
            prop_assert!(answer.status == 200 || answer.status == 400, "status {}", answer.status);
            let json = answer.json();
            if answer.status == 400 {
                prop_assert_eq!(&json["type"], "error");
                prop_assert_eq!(&json["error"]["type"], "invalid_request_error");
            } else {
                prop_assert_eq!(&json["type"], "message_batch");
            }
            // Still serving afterwards.
            prop_assert_eq!(raw(&emu, reqwest::Method::GET, "/v1/messages/batches", &AUTH, None).await.status, 200);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_stalled_body_times_out_instead_of_hanging() {
    let emu = Emulator::builder()
        .body_timeout(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(b"{\"requests\":[".to_vec())).await.unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages/batches", emu.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status().as_u16(), 408);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "timeout_error");
    drop(tx);
}

#[tokio::test]
async fn control_routes_steer_the_emulator_and_survive_extreme_values() {
    let emu = support::emulator(0).await;
    let http = reqwest::Client::new();
    let control = |path: &str, body: serde_json::Value| {
        http.post(format!("{}/_emulator/{path}", emu.base_url()))
            .json(&body)
            .send()
    };
    let config = control("config", json!({"batch_latency_ms": 5_000}))
        .await
        .unwrap();
    assert_eq!(
        config.json::<serde_json::Value>().await.unwrap()["batch_latency_ms"],
        5_000
    );
    let client = Client::new(&emu);
    let id = client.create(support::requests(1)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let clock = control("clock", json!({"advance_ms": 5_000}))
        .await
        .unwrap();
    assert_eq!(clock.status(), 200);
    assert_eq!(
        client
            .get(&format!("/v1/messages/batches/{id}"))
            .await
            .json()["processing_status"],
        "ended"
    );
    let faults = control("faults", json!({"specs": ["list:500:1"]}))
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);
    assert_eq!(client.get("/v1/messages/batches").await.status, 500);
    let bad = control("faults", json!({"specs": ["nowhere:1"]}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let counts: serde_json::Value = http
        .get(format!("{}/_emulator/fault_counts", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["list"]["injected"]["api_error"], 1);
    // Extreme values are capped, never a crash.
    assert_eq!(
        control("config", json!({"batch_latency_ms": u64::MAX}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        control("clock", json!({"advance_ms": u64::MAX, "scale": u32::MAX}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(client.create(support::requests(2)).await.status, 200);
    assert_eq!(client.get("/v1/messages/batches").await.status, 200);
}
