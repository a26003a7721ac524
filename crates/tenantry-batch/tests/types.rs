//! Serde round trips of the wire models against JSON samples from the API reference.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tenantry_batch::types::*;

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(sample: &Value) -> T {
    let typed: T = serde_json::from_value(sample.clone()).expect("decodes");
    let back = serde_json::to_value(&typed).expect("encodes");
    let again: T = serde_json::from_value(back).expect("decodes again");
    let _ = again;
    typed
}

#[test]
fn full_params_round_trip_exactly() {
    // The shape of the Python SDK's "create with all params" fixture, plus every block kind.
    let sample = json!({
        "model": "claude-opus-4-6",
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": "Hello, world"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C", "is_error": false},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "ok"}]},
                {"type": "text", "text": "Describe these.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                 "title": "Report", "context": "Q3", "citations": {"enabled": true}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
                {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
                {"type": "search_result", "source": "https://x", "title": "t", "content": []}
            ]}
        ],
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "5m"}}],
        "cache_control": {"type": "ephemeral"},
        "temperature": 0.5,
        "top_k": 5,
        "top_p": 0.7,
        "stop_sequences": ["END"],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
             "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
        "service_tier": "auto",
        "inference_geo": "us",
        "output_config": {"effort": "low"},
        "stream": false,
        "container": "container_1",
        "future_param": {"nested": [1, 2]}
    });
    let params: MessageParams = round_trip(&sample);
    assert_eq!(serde_json::to_value(&params).unwrap(), sample);
    assert_eq!(params.service_tier, Some(ServiceTierParam::Auto));
    assert_eq!(params.extra["future_param"], json!({"nested": [1, 2]}));
    assert!(matches!(params.tools.as_ref().unwrap()[1], Tool::Raw(_)));
    let MessageContent::Blocks(blocks) = &params.messages[2].content else {
        panic!("blocks")
    };
    assert!(matches!(blocks.last().unwrap(), ContentBlockParam::Raw(_)));
    assert!(matches!(
        &blocks[2],
        ContentBlockParam::Text {
            cache_control: Some(CacheControl {
                ttl: Some(CacheTtl::OneHour),
                ..
            }),
            ..
        }
    ));
}

#[test]
fn system_as_string_and_other_tool_choices() {
    for sample in [
        json!({"model": "m", "max_tokens": 1, "messages": [], "system": "be brief", "tool_choice": {"type": "auto"}}),
        json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "any"}, "thinking": {"type": "adaptive", "display": "summarized"}}),
        json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "none"}, "thinking": {"type": "disabled"}}),
    ] {
        let params: MessageParams = round_trip(&sample);
        assert_eq!(serde_json::to_value(&params).unwrap(), sample);
    }
}

#[test]
fn message_with_full_usage() {
    let sample = json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-opus-4-8",
        "content": [
            {"type": "text", "text": "Hi! ", "citations": null},
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Bye."}
        ],
        "stop_reason": "end_turn", "stop_sequence": null, "stop_details": null, "container": null,
        "usage": {
            "input_tokens": 2095, "output_tokens": 503,
            "cache_creation_input_tokens": 2051, "cache_read_input_tokens": 2051,
            "cache_creation": {"ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 2},
            "inference_geo": "global",
            "output_tokens_details": {"thinking_tokens": 7},
            "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 2},
            "service_tier": "batch",
            "brand_new_counter": 9
        },
        "brand_new_field": true
    });
    let message: Message = round_trip(&sample);
    assert_eq!(message.text(), "Hi! Bye.");
    assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    assert!(matches!(message.content[4], ContentBlock::Unknown(_)));
    let usage = &message.usage;
    assert_eq!((usage.input_tokens, usage.output_tokens), (2095, 503));
    assert_eq!(
        usage
            .cache_creation
            .as_ref()
            .unwrap()
            .ephemeral_1h_input_tokens,
        2
    );
    assert_eq!(
        usage
            .output_tokens_details
            .as_ref()
            .unwrap()
            .thinking_tokens,
        7
    );
    assert_eq!(
        usage.server_tool_use.as_ref().unwrap().web_fetch_requests,
        2
    );
    assert_eq!(usage.service_tier, Some(ServiceTier::Batch));
    assert_eq!(usage.inference_geo.as_deref(), Some("global"));

    let minimal: Usage =
        serde_json::from_value(json!({"input_tokens": 1, "output_tokens": 2})).unwrap();
    assert_eq!(minimal.cache_read_input_tokens, None);
}

#[test]
fn unknown_enum_values_decode_and_survive() {
    let reason: StopReason = serde_json::from_value(json!("brand_new_reason")).unwrap();
    assert_eq!(reason, StopReason::Unknown("brand_new_reason".into()));
    assert_eq!(
        serde_json::to_value(&reason).unwrap(),
        json!("brand_new_reason")
    );
    let status: ProcessingStatus = serde_json::from_value(json!("paused")).unwrap();
    assert_eq!(status.as_str(), "paused");
    let tier: ServiceTier = serde_json::from_value(json!("flex")).unwrap();
    assert_eq!(tier, ServiceTier::Unknown("flex".into()));
}

#[test]
fn message_batch_from_the_reference() {
    let sample = json!({
        "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
        "archived_at": "2024-08-20T18:37:24.100435Z",
        "cancel_initiated_at": "2024-08-20T18:37:24.100435Z",
        "created_at": "2024-08-20T18:37:24.100435Z",
        "ended_at": "2024-08-20T18:37:24.100435Z",
        "expires_at": "2024-08-20T18:37:24.100435Z",
        "processing_status": "in_progress",
        "request_counts": {"canceled": 10, "errored": 30, "expired": 10, "processing": 100, "succeeded": 50},
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results",
        "type": "message_batch"
    });
    let batch: MessageBatch = round_trip(&sample);
    assert_eq!(batch.processing_status, ProcessingStatus::InProgress);
    assert_eq!(batch.request_counts.total(), 200);
    assert_eq!(batch.created_at.microsecond(), 100_435);

    let fresh = json!({
        "id": "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d", "type": "message_batch", "processing_status": "in_progress",
        "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": null, "created_at": "2024-09-24T18:37:24.100435Z", "expires_at": "2024-09-25T18:37:24.100435Z",
        "cancel_initiated_at": null, "results_url": null
    });
    let batch: MessageBatch = round_trip(&fresh);
    assert!(batch.archived_at.is_none() && batch.results_url.is_none() && !batch.is_ended());

    let page: MessageBatchList = round_trip(&json!({
        "data": [fresh], "has_more": true, "first_id": "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d", "last_id": "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d"
    }));
    assert!(page.has_more);
    let deleted: DeletedMessageBatch =
        round_trip(&json!({"id": "msgbatch_1", "type": "message_batch_deleted"}));
    assert_eq!(deleted.id, "msgbatch_1");
}

#[test]
fn result_lines_from_the_guide() {
    let lines = [
        r#"{"custom_id":"my-second-request","result":{"type":"succeeded","message":{"id":"msg_014VwiXbi91y3JMjcpyGBHX5","type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"text","text":"Hello again!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":36}}}}"#,
        r#"{"custom_id":"my-third-request","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 64000","details":{"error_visibility":"user_facing"}},"request_id":null}}}"#,
        r#"{"custom_id":"my-fourth-request","result":{"type":"canceled"}}"#,
        r#"{"custom_id":"my-fifth-request","result":{"type":"expired"}}"#,
        r#"{"custom_id":"my-sixth-request","result":{"type":"deferred","until":"later"}}"#,
    ];
    let results: Vec<BatchResult> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ResultOutcome::Succeeded { message } = &results[0].result else {
        panic!("succeeded")
    };
    assert_eq!(message.usage.output_tokens, 36);
    let ResultOutcome::Errored { error } = &results[1].result else {
        panic!("errored")
    };
    assert_eq!(error.error.kind, ErrorType::InvalidRequest);
    assert_eq!(error.request_id, None);
    assert_eq!(results[2].result, ResultOutcome::Canceled);
    assert_eq!(results[3].result, ResultOutcome::Expired);
    assert_eq!(results[4].result, ResultOutcome::Unknown);
    for result in &results[..4] {
        let back: BatchResult =
            serde_json::from_value(serde_json::to_value(result).unwrap()).unwrap();
        assert_eq!(&back, result);
    }
}

#[test]
fn error_types_include_the_ones_the_sdk_union_lacks() {
    for (text, kind) in [
        ("request_too_large", ErrorType::RequestTooLarge),
        ("conflict_error", ErrorType::Conflict),
        ("overloaded_error", ErrorType::Overloaded),
        ("something_new", ErrorType::Unknown("something_new".into())),
    ] {
        let object: ErrorObject =
            serde_json::from_value(json!({"type": text, "message": "m"})).unwrap();
        assert_eq!(object.kind, kind);
    }
}

#[test]
fn blocks_and_results_decode_whatever_the_field_order() {
    let text: ContentBlock = serde_json::from_value(json!({"text": "a", "type": "text"})).unwrap();
    assert_eq!(
        text,
        ContentBlock::Text {
            text: "a".into(),
            citations: None
        }
    );
    let tool: ContentBlock =
        serde_json::from_value(json!({"input": {}, "caller": {"type": "direct"}, "name": "f", "id": "t", "type": "tool_use"}))
            .unwrap();
    assert!(matches!(tool, ContentBlock::ToolUse { .. }));
    let unknown = json!({"type": "web_search_tool_result", "tool_use_id": "x", "content": [], "id": "i", "text": "t"});
    let block: ContentBlock = serde_json::from_value(unknown.clone()).unwrap();
    assert_eq!(block, ContentBlock::Unknown(unknown.clone()));
    assert_eq!(serde_json::to_value(&block).unwrap(), unknown);
    // A known type missing a required field is kept, not lost.
    let partial = json!({"type": "thinking", "thinking": "t"});
    let block: ContentBlock = serde_json::from_value(partial.clone()).unwrap();
    assert_eq!(block, ContentBlock::Unknown(partial));

    let line = r#"{"result":{"message":{"usage":{"output_tokens":2,"input_tokens":1},"stop_reason":"max_tokens","role":"assistant","model":"m","id":"msg_1","content":[{"text":"hi","type":"text"}]},"type":"succeeded"},"custom_id":"late-type"}"#;
    let result: BatchResult = serde_json::from_str(line).unwrap();
    let ResultOutcome::Succeeded { message } = result.result else {
        panic!("succeeded")
    };
    assert_eq!(message.stop_reason, Some(StopReason::MaxTokens));
    let missing: Result<BatchResult, _> =
        serde_json::from_str(r#"{"custom_id":"x","result":{"type":"succeeded"}}"#);
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("missing field `message`")
    );
}
