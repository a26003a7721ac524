//! The wire format: round trips of every variant, the exact JSON of each, and the errors that
//! bad input gets.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use pretty_assertions::assert_eq;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenantry_envelope::{
    Code, Cursor, CustomCode, Envelope, FieldError, JsonPointer, Limit, Meta, Operation,
    OperationState, Outcome, Page, Problem,
};

fn round_trip<T>(envelope: &Envelope<T>) -> Value
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(envelope).expect("serialize");
    let back: Envelope<T> = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, envelope, "round trip changed the envelope: {json}");
    serde_json::from_str(&json).expect("json value")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Summary {
    id: String,
    words: u32,
}

#[test]
fn success_carries_any_data_shape() {
    assert_eq!(
        round_trip(&Envelope::success(42_u32)),
        json!({"status":"success","data":42})
    );
    assert_eq!(
        round_trip(&Envelope::success("text".to_owned())),
        json!({"status":"success","data":"text"})
    );
    assert_eq!(
        round_trip(&Envelope::success(vec![1_i32, 2])),
        json!({"status":"success","data":[1,2]})
    );
    assert_eq!(
        round_trip(&Envelope::success(())),
        json!({"status":"success","data":null})
    );
    assert_eq!(
        round_trip(&Envelope::success(Some(true))),
        json!({"status":"success","data":true})
    );
    assert_eq!(
        round_trip(&Envelope::<Option<bool>>::success(None)),
        json!({"status":"success","data":null})
    );
    let summary = Summary {
        id: "s1".into(),
        words: 120,
    };
    assert_eq!(
        round_trip(&Envelope::success(summary)),
        json!({"status":"success","data":{"id":"s1","words":120}})
    );
    let mut map = BTreeMap::new();
    map.insert("a".to_owned(), 1_u8);
    assert_eq!(
        round_trip(&Envelope::success(map)),
        json!({"status":"success","data":{"a":1}})
    );
}

#[test]
fn success_with_meta() {
    let envelope = Envelope::success_with_meta(
        Page::more(
            vec![Summary {
                id: "s1".into(),
                words: 3,
            }],
            Cursor::new("c1"),
        ),
        Meta::new()
            .with_request_id("req_1")
            .with_extra("api_version", "2026-11-01")
            .with_extra("shard", 3),
    );
    assert_eq!(
        round_trip(&envelope),
        json!({
            "status": "success",
            "data": {"items": [{"id": "s1", "words": 3}], "next_cursor": "c1", "has_more": true},
            "meta": {"request_id": "req_1", "extra": {"api_version": "2026-11-01", "shard": 3}},
        })
    );
    // Empty meta is an empty object, and reads back as present-but-empty.
    let empty = Envelope::success_with_meta(1_u8, Meta::new());
    assert_eq!(
        round_trip(&empty),
        json!({"status":"success","data":1,"meta":{}})
    );
}

#[test]
fn error_with_everything() {
    let problem = Problem::validation_failed([
        FieldError::new(
            JsonPointer::from_segments(["requests", "0", "params", "max_tokens"]),
            "must be at most 4096",
        ),
        FieldError::new(
            JsonPointer::parse("/tenant").expect("pointer"),
            "is required",
        ),
    ])
    .with_limit(Limit::new("max_tokens", "tokens", 4096).with_actual(10_000))
    .with_request_id("req_9")
    .with_retry_after(Duration::from_secs(1))
    .with_retryable(true);
    let envelope: Envelope<Vec<Summary>> = problem.into();
    assert_eq!(
        round_trip(&envelope),
        json!({
            "status": "error",
            "error": {
                "code": "VALIDATION_FAILED",
                "status": 422,
                "message": "the request has 2 invalid fields",
                "retryable": true,
                "details": {
                    "fields": [
                        {"pointer": "/requests/0/params/max_tokens", "message": "must be at most 4096"},
                        {"pointer": "/tenant", "message": "is required"},
                    ],
                    "limits": [{"name": "max_tokens", "unit": "tokens", "max": "4096", "actual": "10000"}],
                },
                "request_id": "req_9",
                "retry_after": 1,
            },
        })
    );
}

#[test]
fn every_built_in_code_round_trips_with_its_status() {
    for code in Code::BUILT_IN {
        let envelope: Envelope<()> = Problem::new(code.clone(), "m").into();
        let json = round_trip(&envelope);
        assert_eq!(json["error"]["code"], code.as_str());
        assert_eq!(json["error"]["status"], code.http_status().as_u16());
        assert_eq!(json["error"]["retryable"], code.is_retryable());
        assert_eq!(envelope.http_status(), code.http_status());
    }
}

#[test]
fn custom_codes_round_trip() {
    const QUOTA_FROZEN: CustomCode = CustomCode::new("QUOTA_FROZEN", StatusCode::LOCKED);
    let envelope: Envelope<u8> = Problem::new(QUOTA_FROZEN, "frozen by an administrator").into();
    let json = round_trip(&envelope);
    assert_eq!(json["error"]["code"], "QUOTA_FROZEN");
    assert_eq!(json["error"]["status"], 423);
    assert_eq!(envelope.http_status(), StatusCode::LOCKED);
}

#[test]
fn pending_round_trips() {
    for state in [
        OperationState::Queued,
        OperationState::Running,
        OperationState::Canceling,
    ] {
        let operation = Operation::new(
            "0190f3a0-7c1e",
            "https://api.example.com/v1/jobs/0190f3a0-7c1e",
        )
        .expect("operation")
        .with_state(state)
        .with_retry_after(Duration::from_secs(30));
        let envelope: Envelope<Summary> = operation.into();
        let json = round_trip(&envelope);
        assert_eq!(json["operation"]["id"], "0190f3a0-7c1e");
        assert_eq!(json["operation"]["retry_after"], 30);
        assert_eq!(envelope.http_status(), StatusCode::ACCEPTED);
    }
    let minimal: Envelope<()> = Operation::new("j", "/j").expect("operation").into();
    assert_eq!(
        round_trip(&minimal),
        json!({"status":"pending","operation":{"id":"j","state":"queued","status_url":"/j"}})
    );
}

#[test]
fn large_integers_in_data_survive_the_tagged_representation() {
    // Internally tagged enums buffer their content; 64-bit values must come through intact.
    assert_eq!(
        round_trip(&Envelope::success(u64::MAX))["data"],
        json!(u64::MAX)
    );
    assert_eq!(
        round_trip(&Envelope::success(i64::MIN))["data"],
        json!(i64::MIN)
    );
}

fn read_err<T: for<'de> Deserialize<'de> + std::fmt::Debug>(json: &str) -> String {
    serde_json::from_str::<Envelope<T>>(json)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn bad_input_is_named_in_the_error() {
    let cases: [(&str, &str); 9] = [
        (
            r#"{"status":"loading"}"#,
            "unknown variant `loading`, expected one of `success`, `error`, `pending`",
        ),
        (
            r#"{"status":"Success","data":1}"#,
            "unknown variant `Success`",
        ),
        (r#"{"data":1}"#, "missing field `status`"),
        (r#"{"status":"success"}"#, "missing field `data`"),
        (r#"{"status":"error"}"#, "missing field `error`"),
        (r#"{"status":"pending"}"#, "missing field `operation`"),
        (
            r#"{"status":"error","error":{"code":"NOT_FOUND","status":404,"retryable":false}}"#,
            "missing field `message`",
        ),
        (
            r#"{"status":"pending","operation":{"id":"a","status_url":"/a"}}"#,
            "missing field `state`",
        ),
        (
            r#"{"status":"success","data":"one"}"#,
            "invalid type: string \"one\", expected u32",
        ),
    ];
    for (json, expected) in cases {
        let err = read_err::<u32>(json);
        assert!(
            err.contains(expected),
            "{json}: got `{err}`, expected it to contain `{expected}`"
        );
    }
    let err = read_err::<u32>("[]");
    assert!(err.contains("missing field `status`"), "{err}");
}

#[test]
fn unknown_members_are_ignored_for_forward_compatibility() {
    let envelope: Envelope<u8> =
        serde_json::from_str(r#"{"status":"success","data":1,"served_by":"eu-1"}"#).expect("read");
    assert_eq!(envelope, Envelope::success(1));
    let envelope: Envelope<u8> = serde_json::from_str(
        r#"{"status":"error","error":{"code":"NOT_FOUND","status":404,"message":"m","retryable":false,"doc_url":"x"}}"#,
    )
    .expect("read");
    assert_eq!(envelope, Envelope::error(Problem::new(Code::NotFound, "m")));
}

#[test]
fn into_result_and_map() {
    assert_eq!(Envelope::success(2).map(|n| n + 1).into_result(), Ok(3));
    let problem = Problem::new(Code::Conflict, "already canceled");
    assert_eq!(
        Envelope::<u8>::error(problem.clone())
            .map(|n| n + 1)
            .into_result(),
        Err(Outcome::Failed(problem))
    );
    let operation = Operation::new("j", "/j").expect("operation");
    assert_eq!(
        Envelope::<u8>::pending(operation.clone()).into_result(),
        Err(Outcome::Pending(operation))
    );
    let from_result: Envelope<u8> = Err::<u8, Problem>(Problem::new(Code::Internal, "x")).into();
    assert_eq!(from_result.status(), "error");
    assert_eq!(Envelope::from(Ok::<u8, Problem>(1)).status(), "success");
}
