//! `POST /v1/messages` and `count_tokens`: usage, caching, custom responders, validation.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, KEY};
use tenantry_emulator::{Emulator, ErrorType, MessageRequest, Reply, Responder};

fn cached_prompt(question: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "policy ".repeat(600), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}]
    })
}

#[tokio::test]
async fn message_usage_matches_count_tokens() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let body = json!({"model": "claude-opus-4-8", "max_tokens": 1000, "messages": [{"role": "user", "content": "Tell me about batches."}]});
    let message = client.post("/v1/messages", body.clone()).await;
    assert_eq!(message.status, 200, "{}", message.text);
    let message = message.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-opus-4-8");
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["stop_sequence"].is_null());
    assert_eq!(message["usage"]["service_tier"], "standard");
    let mut count_body = body;
    count_body.as_object_mut().unwrap().remove("max_tokens");
    let counted = client
        .post("/v1/messages/count_tokens", count_body)
        .await
        .json();
    assert_eq!(counted["input_tokens"], message["usage"]["input_tokens"]);
    assert!(counted["input_tokens"].as_u64().unwrap() > 5);
}

#[tokio::test]
async fn output_is_capped_by_max_tokens() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let body = json!({"model": "claude-opus-4-8", "max_tokens": 2, "messages": [{"role": "user", "content": "a long question indeed"}]});
    let message = client.post("/v1/messages", body).await.json();
    assert_eq!(message["usage"]["output_tokens"], 2);
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn repeated_prefix_reads_from_cache_within_ttl() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let first = client
        .post("/v1/messages", cached_prompt("one?"))
        .await
        .json();
    let written = first["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(written > 1_000, "{first}");
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(
        first["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        written
    );
    emu.clock().advance(Duration::from_secs(120));
    let second = client
        .post("/v1/messages", cached_prompt("two?"))
        .await
        .json();
    assert_eq!(second["usage"]["cache_read_input_tokens"], written);
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    // Total input is the same prompt size however it is split.
    let total = |m: &Value| {
        [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .map(|k| m["usage"][k].as_u64().unwrap())
        .sum::<u64>()
    };
    assert_eq!(total(&first), total(&second));
    // Past the 5-minute TTL (refreshed by the read at 120 s) the prefix is written again.
    emu.clock().advance(Duration::from_secs(301));
    let third = client
        .post("/v1/messages", cached_prompt("three?"))
        .await
        .json();
    assert_eq!(third["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(third["usage"]["cache_creation_input_tokens"], written);
}

#[tokio::test]
async fn batch_requests_share_the_cache() {
    let emu = support::emulator(1_000).await;
    let client = Client::new(&emu);
    let requests: Vec<Value> = (0..3)
        .map(|i| json!({"custom_id": format!("c{i}"), "params": cached_prompt(&format!("q{i}"))}))
        .collect();
    let id = client.create(Value::Array(requests)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.clock().advance(Duration::from_secs(2));
    let text = client
        .get(&format!("/v1/messages/batches/{id}/results"))
        .await
        .text;
    let lines = support::results_lines(&text);
    let usage = |cid: &str| {
        lines.iter().find(|l| l["custom_id"] == cid).unwrap()["result"]["message"]["usage"].clone()
    };
    assert!(usage("c0")["cache_creation_input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage("c1")["cache_read_input_tokens"],
        usage("c0")["cache_creation_input_tokens"]
    );
    assert_eq!(usage("c2")["service_tier"], "batch");
}

#[derive(Debug)]
struct ToolCaller;

impl Responder for ToolCaller {
    fn respond(&self, request: &MessageRequest<'_>) -> Reply {
        if request.custom_id == Some("fail") {
            return Reply::Error {
                error_type: ErrorType::Overloaded,
                message: "busy".into(),
            };
        }
        Reply::Content {
            content: vec![
                json!({"type": "tool_use", "id": "toolu_01", "name": "lookup", "input": {"q": request.model}}),
            ],
            stop_reason: "tool_use".into(),
        }
    }
}

#[tokio::test]
async fn hosts_plug_in_their_own_responder() {
    let emu = Emulator::builder()
        .responder(ToolCaller)
        .batch_latency(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let client = Client::new(&emu);
    let message = client
        .post("/v1/messages", json!({"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}))
        .await
        .json();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["input"]["q"], "claude-haiku-4-5");
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() <= 50);
    let id = client
        .create(json!([
            support::request("ok", "x"),
            support::request("fail", "x")
        ]))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = support::results_lines(
        &client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .text,
    );
    let failed = lines.iter().find(|l| l["custom_id"] == "fail").unwrap();
    assert_eq!(
        failed["result"]["error"]["error"]["type"],
        "overloaded_error"
    );
    assert_eq!(failed["result"]["error"]["error"]["message"], "busy");
}

#[tokio::test]
async fn invalid_messages_get_the_real_statuses() {
    let emu = support::emulator(0).await;
    let client = Client::new(&emu);
    let unknown = client
        .post("/v1/messages", json!({"model": "gpt-4", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.message(), "model: gpt-4");
    let missing = client
        .post(
            "/v1/messages",
            json!({"model": "claude-opus-4-8", "messages": []}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.message(), "max_tokens: Field required");
    let custom = Emulator::builder()
        .model("my-model", 10)
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    let ok = Client::new(&custom)
        .post("/v1/messages", json!({"model": "my-model", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(ok.status, 200);
}
