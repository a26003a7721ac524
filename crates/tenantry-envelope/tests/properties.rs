//! Property tests: any envelope the constructors can build survives a JSON round trip
//! unchanged, and JSON pointers built from arbitrary segments parse back.

use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;
use tenantry_envelope::{
    Code, Cursor, CustomCode, Envelope, FieldError, JsonPointer, Limit, Meta, Operation,
    OperationState, Page, Problem,
};

fn code() -> impl Strategy<Value = Code> {
    prop_oneof![
        proptest::sample::select(Code::BUILT_IN.to_vec()),
        ("[A-Z][A-Z0-9_]{0,40}[A-Z0-9]", 400_u16..600).prop_filter_map(
            "valid custom code",
            |(name, status)| {
                let status = StatusCode::from_u16(status).ok()?;
                CustomCode::parse(name, status).ok().map(Code::from)
            }
        ),
    ]
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        code(),
        any::<String>(),
        any::<bool>(),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<String>(), 0..4),
                any::<String>(),
            ),
            0..3,
        ),
        proptest::collection::vec(
            (
                any::<String>(),
                any::<String>(),
                any::<u64>(),
                any::<Option<u64>>(),
            ),
            0..3,
        ),
        any::<Option<String>>(),
        any::<Option<u32>>(),
    )
        .prop_map(
            |(code, message, retryable, fields, limits, request_id, retry_after)| {
                let mut problem = Problem::new(code, message).with_retryable(retryable);
                for (segments, message) in fields {
                    problem = problem.with_field_error(FieldError::new(
                        JsonPointer::from_segments(segments),
                        message,
                    ));
                }
                for (name, unit, max, actual) in limits {
                    let mut limit = Limit::new(name, unit, max);
                    if let Some(actual) = actual {
                        limit = limit.with_actual(actual);
                    }
                    problem = problem.with_limit(limit);
                }
                if let Some(id) = request_id {
                    problem = problem.with_request_id(id);
                }
                if let Some(secs) = retry_after {
                    problem = problem.with_retry_after(Duration::from_secs(u64::from(secs)));
                }
                problem
            },
        )
}

fn operation() -> impl Strategy<Value = Operation> {
    (
        "[!-~]{1,40}",
        "[!-~]{1,80}",
        proptest::sample::select(vec![
            OperationState::Queued,
            OperationState::Running,
            OperationState::Canceling,
        ]),
        any::<Option<u32>>(),
    )
        .prop_map(|(id, url, state, retry_after)| {
            let operation = Operation::new(id, url)
                .expect("visible ASCII is valid")
                .with_state(state);
            match retry_after {
                Some(secs) => operation.with_retry_after(Duration::from_secs(u64::from(secs))),
                None => operation,
            }
        })
}

fn page() -> impl Strategy<Value = Page<i64>> {
    (
        proptest::collection::vec(any::<i64>(), 0..8),
        any::<Option<String>>(),
    )
        .prop_map(|(items, cursor)| Page::new(items, cursor.map(Cursor::new)))
}

fn envelope() -> impl Strategy<Value = Envelope<Page<i64>>> {
    prop_oneof![
        (page(), any::<Option<String>>()).prop_map(|(page, request_id)| match request_id {
            Some(id) => Envelope::success_with_meta(page, Meta::new().with_request_id(id)),
            None => Envelope::success(page),
        }),
        problem().prop_map(Envelope::error),
        operation().prop_map(Envelope::pending),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn envelopes_round_trip(envelope in envelope()) {
        let json = serde_json::to_string(&envelope).expect("serialize");
        let back: Envelope<Page<i64>> = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(&back, &envelope);
        prop_assert_eq!(back.http_status(), envelope.http_status());
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        prop_assert_eq!(value["status"].as_str(), Some(envelope.status()));
    }

    #[test]
    fn pointers_from_segments_parse_back(segments in proptest::collection::vec(any::<String>(), 0..6)) {
        let pointer = JsonPointer::from_segments(&segments);
        prop_assert_eq!(JsonPointer::parse(pointer.as_str()).expect("valid pointer"), pointer.clone());
        // Unescaping the tokens gives the segments back (RFC 6901 §4: `~1` first, then `~0`).
        let tokens: Vec<String> = if pointer.as_str().is_empty() {
            Vec::new()
        } else {
            pointer.as_str()[1..].split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
        };
        prop_assert_eq!(tokens, segments);
    }
}
