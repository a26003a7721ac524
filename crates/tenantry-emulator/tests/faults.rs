//! Fault injection over HTTP: statuses and headers, resets before and after the work, broken
//! and slow streams, CRLF, errored results, and the counters tests assert on.

mod support;

use std::time::{Duration, Instant};

use support::{Client, KEY};
use tenantry_emulator::{Emulator, Endpoint, ErrorType, Fault, FaultKind, FaultPlan};

async fn with_faults(plan: FaultPlan) -> Emulator {
    Emulator::builder()
        .api_key(KEY)
        .batch_latency(Duration::ZERO)
        .faults(plan)
        .start()
        .await
        .unwrap()
}

async fn ended_batch(client: &Client) -> String {
    client.create(support::requests(20)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn scripted_statuses_with_retry_headers() {
    let plan = FaultPlan::new()
        .script(
            Endpoint::CreateBatch,
            Fault::rate_limited(Duration::from_millis(1_500)),
            1,
        )
        .script_after(
            Endpoint::CreateBatch,
            Fault::overloaded().with_should_retry(true),
            1,
            1,
        )
        .script(
            Endpoint::ListBatches,
            Fault::api_error().with_should_retry(false),
            1,
        );
    let emu = with_faults(plan).await;
    let client = Client::new(&emu);
    let limited = client.create(support::requests(1)).await;
    assert_eq!(
        (limited.status, limited.error_type().as_str()),
        (429, "rate_limit_error")
    );
    assert_eq!(limited.headers["retry-after"], "2");
    assert_eq!(limited.headers["retry-after-ms"], "1500");
    let overloaded = client.create(support::requests(1)).await;
    assert_eq!(
        (overloaded.status, overloaded.error_type().as_str()),
        (529, "overloaded_error")
    );
    assert_eq!(overloaded.headers["x-should-retry"], "true");
    assert_eq!(client.create(support::requests(1)).await.status, 200);
    let failed = client.get("/v1/messages/batches").await;
    assert_eq!(
        (failed.status, failed.error_type().as_str()),
        (500, "api_error")
    );
    assert_eq!(failed.headers["x-should-retry"], "false");
    assert_eq!(client.get("/v1/messages/batches").await.status, 200);
    let counts = emu.fault_counts();
    assert_eq!(counts.requests(Endpoint::CreateBatch), 3);
    assert_eq!(
        counts.injected(Endpoint::CreateBatch, FaultKind::RateLimited),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::CreateBatch, FaultKind::Overloaded),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::ListBatches, FaultKind::ApiError),
        1
    );
    assert_eq!(counts.total_injected(), 3);
}

#[tokio::test]
async fn transient_404_right_after_create() {
    let emu =
        with_faults(FaultPlan::new().script(Endpoint::RetrieveBatch, Fault::not_found(), 2)).await;
    let client = Client::new(&emu);
    let id = ended_batch(&client).await;
    let path = format!("/v1/messages/batches/{id}");
    assert_eq!(client.get(&path).await.status, 404);
    assert_eq!(client.get(&path).await.status, 404);
    assert_eq!(client.get(&path).await.status, 200);
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::RetrieveBatch, FaultKind::NotFound),
        2
    );
}

#[tokio::test]
async fn connection_reset_gives_no_response() {
    let emu =
        with_faults(FaultPlan::new().script(Endpoint::CountTokens, Fault::ConnectionReset, 1))
            .await;
    let client = Client::new(&emu);
    let body = serde_json::json!({"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "x"}]});
    let result = client
        .http
        .post(format!("{}/v1/messages/count_tokens", emu.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a transport error, got {result:?}"
    );
    assert_eq!(
        client.post("/v1/messages/count_tokens", body).await.status,
        200
    );
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::CountTokens, FaultKind::ConnectionReset),
        1
    );
}

/// Sends a request expecting no answer at all; returns whether the client saw a transport error.
async fn transport_fails(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> bool {
    let mut request = client
        .http
        .request(method, format!("{}{path}", client.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01");
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Err(e) => {
            assert!(!e.is_status(), "{e}");
            true
        }
        Ok(response) => panic!("expected no answer, got {}", response.status()),
    }
}

#[tokio::test]
async fn lost_create_creates_the_batch_but_never_answers() {
    let emu = with_faults("create:lost".parse().unwrap()).await;
    let client = Client::new(&emu);
    let body = serde_json::json!({ "requests": support::requests(2) });
    assert!(
        transport_fails(
            &client,
            reqwest::Method::POST,
            "/v1/messages/batches",
            Some(body)
        )
        .await
    );
    let listed = client.get("/v1/messages/batches").await.json();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "the lost create made its batch: {listed}");
    assert_eq!(data[0]["request_counts"]["succeeded"], 2);
    // The rule fired once: the next create answers.
    assert_eq!(client.create(support::requests(1)).await.status, 200);
    let counts = emu.fault_counts();
    assert_eq!(counts.requests(Endpoint::CreateBatch), 2);
    assert_eq!(counts.completed(Endpoint::CreateBatch), 2);
    assert_eq!(
        counts.injected(Endpoint::CreateBatch, FaultKind::LostResponse),
        1
    );
    assert_eq!(counts.to_json()["create"]["injected"]["lost_response"], 1);
    assert_eq!(counts.to_json()["create"]["completed"], 2);
}

#[tokio::test]
async fn reset_create_makes_no_batch_unlike_lost() {
    let emu = with_faults("create:reset".parse().unwrap()).await;
    let client = Client::new(&emu);
    let body = serde_json::json!({ "requests": support::requests(2) });
    assert!(
        transport_fails(
            &client,
            reqwest::Method::POST,
            "/v1/messages/batches",
            Some(body)
        )
        .await
    );
    let listed = client.get("/v1/messages/batches").await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    assert_eq!(emu.fault_counts().completed(Endpoint::CreateBatch), 0);
}

#[tokio::test]
async fn lost_message_is_generated_and_billed_without_an_answer() {
    let emu =
        with_faults(FaultPlan::new().script(Endpoint::CreateMessage, Fault::LostResponse, 1)).await;
    let client = Client::new(&emu);
    let body = serde_json::json!({"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]});
    assert!(
        transport_fails(
            &client,
            reqwest::Method::POST,
            "/v1/messages",
            Some(body.clone())
        )
        .await
    );
    let counts = emu.fault_counts();
    assert_eq!(
        counts.completed(Endpoint::CreateMessage),
        1,
        "generated, so billed"
    );
    assert_eq!(
        counts.injected(Endpoint::CreateMessage, FaultKind::LostResponse),
        1
    );
    let answered = client.post("/v1/messages", body).await;
    assert_eq!(answered.status, 200);
    assert_eq!(emu.fault_counts().completed(Endpoint::CreateMessage), 2);
}

#[tokio::test]
async fn lost_cancel_cancels_and_a_lost_error_is_lost_too() {
    let emu = Emulator::builder()
        .api_key(KEY)
        .batch_latency(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    emu.clock().set_scale(0);
    let client = Client::new(&emu);
    let id = client.create(support::requests(3)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.set_faults(
        FaultPlan::new()
            .with_spec("cancel:lost")
            .unwrap()
            .with_spec("create:lost")
            .unwrap(),
    );
    let cancel = format!("/v1/messages/batches/{id}/cancel");
    assert!(transport_fails(&client, reqwest::Method::POST, &cancel, None).await);
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["processing_status"], "canceling", "{batch}");
    assert!(batch["cancel_initiated_at"].is_string());
    // An invalid create answers 400 normally; under `lost` that answer is lost as well.
    let invalid = serde_json::json!({ "requests": [] });
    assert!(
        transport_fails(
            &client,
            reqwest::Method::POST,
            "/v1/messages/batches",
            Some(invalid)
        )
        .await
    );
    let counts = emu.fault_counts();
    assert_eq!(counts.completed(Endpoint::CancelBatch), 1);
    assert_eq!(counts.completed(Endpoint::CreateBatch), 1);
}

#[tokio::test]
async fn truncated_results_stop_mid_line_once() {
    let emu = with_faults(FaultPlan::new().script(
        Endpoint::BatchResults,
        Fault::Truncate { after_bytes: 1_000 },
        1,
    ))
    .await;
    let client = Client::new(&emu);
    let id = ended_batch(&client).await;
    let url = format!("{}/v1/messages/batches/{id}/results", emu.base_url());
    let response = client
        .http
        .get(&url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the stream must end in an error");
    assert_eq!(received.len(), 1_000);
    assert_ne!(received.last(), Some(&b'\n'), "cut mid-line");
    let whole = client.get(&url).await.text;
    assert_eq!(support::results_lines(&whole).len(), 20);
}

#[tokio::test]
async fn slow_and_crlf_results() {
    let plan = FaultPlan::new()
        .script(
            Endpoint::BatchResults,
            Fault::Slow {
                chunk_bytes: 4_096,
                delay: Duration::from_millis(20),
            },
            1,
        )
        .script_after(Endpoint::BatchResults, Fault::CrlfLines, 1, 1);
    let emu = with_faults(plan).await;
    let client = Client::new(&emu);
    let id = ended_batch(&client).await;
    let path = format!("/v1/messages/batches/{id}/results");
    let started = Instant::now();
    let slow = client.get(&path).await.text;
    let chunks = u32::try_from(slow.len().div_ceil(4_096)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(20) * chunks,
        "{:?} for {chunks} chunks",
        started.elapsed()
    );
    assert_eq!(support::results_lines(&slow).len(), 20);
    let crlf = client.get(&path).await.text;
    assert_eq!(crlf.matches("\r\n").count(), 20);
    assert_eq!(crlf.replace("\r\n", "\n").len(), slow.len());
    let counts = emu.fault_counts();
    assert_eq!(counts.injected(Endpoint::BatchResults, FaultKind::Slow), 1);
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::CrlfLines),
        1
    );
}

#[tokio::test]
async fn a_share_of_results_is_errored_and_retryable() {
    let emu = with_faults(FaultPlan::new().errored_results(0.5, ErrorType::Api)).await;
    let client = Client::new(&emu);
    let id = client.create(support::requests(200)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    let errored = batch["request_counts"]["errored"].as_u64().unwrap();
    assert!((60..140).contains(&errored), "{errored} of 200");
    assert_eq!(
        errored,
        emu.fault_counts()
            .injected(Endpoint::CreateBatch, FaultKind::ErroredResult)
    );
    let lines = support::results_lines(
        &client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .text,
    );
    let errored_lines: Vec<_> = lines
        .iter()
        .filter(|l| l["result"]["type"] == "errored")
        .collect();
    assert_eq!(u64::try_from(errored_lines.len()).unwrap(), errored);
    assert!(
        errored_lines
            .iter()
            .all(|l| l["result"]["error"]["error"]["type"] == "api_error")
    );
}

#[tokio::test]
async fn probabilistic_faults_follow_the_seed_and_plans_can_change() {
    let run = |seed| async move {
        let emu = Emulator::builder()
            .seed(seed)
            .faults(FaultPlan::new().probability(Endpoint::ListBatches, Fault::overloaded(), 0.5))
            .start()
            .await
            .unwrap();
        let client = Client::new(&emu);
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(client.get("/v1/messages/batches").await.status);
        }
        emu.set_faults(FaultPlan::new());
        assert_eq!(client.get("/v1/messages/batches").await.status, 200);
        statuses
    };
    let first = run(5).await;
    assert_eq!(first, run(5).await);
    assert!(first.contains(&529) && first.contains(&200), "{first:?}");
}

#[tokio::test]
async fn not_found_for_a_while_after_create() {
    let emu = with_faults(FaultPlan::new().not_found_after_create(Duration::from_secs(2))).await;
    emu.clock().set_scale(0);
    let client = Client::new(&emu);
    let id = ended_batch(&client).await;
    let path = format!("/v1/messages/batches/{id}");
    assert_eq!(client.get(&path).await.status, 404);
    assert_eq!(client.get(&format!("{path}/results")).await.status, 404);
    emu.clock().advance(Duration::from_secs(2));
    assert_eq!(client.get(&path).await.status, 200);
    assert_eq!(client.get(&format!("{path}/results")).await.status, 200);
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::RetrieveBatch, FaultKind::NotFound),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::NotFound),
        1
    );
}

#[tokio::test]
async fn requests_per_minute_limit_with_headers() {
    let emu = Emulator::builder()
        .api_key(KEY)
        .api_key("sk-other")
        .requests_per_minute(2)
        .start()
        .await
        .unwrap();
    emu.clock().set_scale(0);
    let client = Client::new(&emu);
    let first = client.get("/v1/messages/batches").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["anthropic-ratelimit-requests-limit"], "2");
    assert_eq!(first.headers["anthropic-ratelimit-requests-remaining"], "1");
    let reset = first.headers["anthropic-ratelimit-requests-reset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        time::OffsetDateTime::parse(&reset, &time::format_description::well_known::Rfc3339).is_ok(),
        "{reset}"
    );
    assert_eq!(
        client.get("/v1/messages/batches").await.headers["anthropic-ratelimit-requests-remaining"],
        "0"
    );
    let limited = client.get("/v1/messages/batches").await;
    assert_eq!(
        (limited.status, limited.error_type().as_str()),
        (429, "rate_limit_error")
    );
    assert_eq!(limited.headers["retry-after"], "60");
    // Another workspace has its own budget; the next minute resets this one.
    assert_eq!(
        Client::with_key(&emu, "sk-other")
            .get("/v1/messages/batches")
            .await
            .status,
        200
    );
    emu.clock().advance(Duration::from_secs(60));
    assert_eq!(client.get("/v1/messages/batches").await.status, 200);
}
