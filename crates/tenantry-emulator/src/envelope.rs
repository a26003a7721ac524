//! Parses and validates the body of a batch create call (`{"requests": [{custom_id, params}, …]}`)
//! without copying it: request params stay borrowed slices of the body.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde_json::value::RawValue;

use crate::wire::ApiError;

/// The most requests one batch may hold.
pub(crate) const MAX_REQUESTS: usize = 100_000;

/// One request of the envelope, borrowed from the body.
#[derive(Debug)]
pub(crate) struct RawRequest<'a> {
    pub(crate) custom_id: Cow<'a, str>,
    pub(crate) params: &'a RawValue,
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

/// Whether a custom_id matches `^[a-zA-Z0-9_-]{1,64}$`.
pub(crate) fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates the envelope the way the real API does before accepting a batch.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<RawRequest<'_>>, ApiError> {
    let top: &RawValue = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "There was an error parsing the body of your request: {e}"
        ))
    })?;
    let top: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(top.get())
        .map_err(|_| invalid(String::from("Input should be a valid dictionary")))?;
    if let Some(extra) = top.keys().find(|k| k.as_ref() != "requests") {
        return Err(invalid(format!("{extra}: Extra inputs are not permitted")));
    }
    let requests = top
        .get("requests")
        .ok_or_else(|| invalid(String::from("requests: Field required")))?;
    let items: Vec<&RawValue> = serde_json::from_str(requests.get())
        .map_err(|_| invalid(String::from("requests: Input should be a valid list")))?;
    if items.is_empty() {
        return Err(invalid(String::from(
            "requests: List should have at least 1 item after validation, not 0",
        )));
    }
    if items.len() > MAX_REQUESTS {
        return Err(invalid(format!(
            "requests: List should have at most {MAX_REQUESTS} items after validation, not {}",
            items.len()
        )));
    }
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let fields: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(item.get())
            .map_err(|_| invalid(format!("requests.{i}: Input should be a valid dictionary")))?;
        if let Some(extra) = fields
            .keys()
            .find(|k| !matches!(k.as_ref(), "custom_id" | "params"))
        {
            return Err(invalid(format!(
                "requests.{i}.{extra}: Extra inputs are not permitted"
            )));
        }
        let id_raw = fields
            .get("custom_id")
            .ok_or_else(|| invalid(format!("requests.{i}.custom_id: Field required")))?;
        let custom_id: Cow<'_, str> = serde_json::from_str(id_raw.get()).map_err(|_| {
            invalid(format!(
                "requests.{i}.custom_id: Input should be a valid string"
            ))
        })?;
        if custom_id.is_empty() {
            return Err(invalid(format!(
                "requests.{i}.custom_id: String should have at least 1 character"
            )));
        }
        if custom_id.chars().count() > 64 {
            return Err(invalid(format!(
                "requests.{i}.custom_id: String should have at most 64 characters"
            )));
        }
        if !valid_custom_id(&custom_id) {
            return Err(invalid(format!(
                "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )));
        }
        let params = fields
            .get("params")
            .ok_or_else(|| invalid(format!("requests.{i}.params: Field required")))?;
        if !params.get().starts_with('{') {
            return Err(invalid(format!(
                "requests.{i}.params: Input should be a valid dictionary"
            )));
        }
        if !seen.insert(custom_id.clone()) {
            return Err(invalid(format!(
                "requests.{i}.custom_id: Duplicate custom_id '{custom_id}'. Each request in a Message Batch must have a unique custom_id"
            )));
        }
        out.push(RawRequest { custom_id, params });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn accepts_a_valid_envelope_without_copying_params() {
        let body = r#"{"requests":[{"custom_id":"a-1","params":{"model":"m"}},{"custom_id":"b_2","params":{}}]}"#;
        let parsed = parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].custom_id, "a-1");
        assert_eq!(parsed[0].params.get(), r#"{"model":"m"}"#);
    }

    #[test]
    fn pydantic_style_messages() {
        assert!(message("{").starts_with("There was an error parsing"));
        assert_eq!(message("[]"), "Input should be a valid dictionary");
        assert_eq!(message("{}"), "requests: Field required");
        assert_eq!(
            message(r#"{"requests":[],"x":1}"#),
            "x: Extra inputs are not permitted"
        );
        assert_eq!(
            message(r#"{"requests":{}}"#),
            "requests: Input should be a valid list"
        );
        assert_eq!(
            message(r#"{"requests":[]}"#),
            "requests: List should have at least 1 item after validation, not 0"
        );
        assert_eq!(
            message(r#"{"requests":[1]}"#),
            "requests.0: Input should be a valid dictionary"
        );
        assert_eq!(
            message(r#"{"requests":[{"params":{}}]}"#),
            "requests.0.custom_id: Field required"
        );
        assert_eq!(
            message(r#"{"requests":[{"custom_id":"a"}]}"#),
            "requests.0.params: Field required"
        );
        assert_eq!(
            message(
                r#"{"requests":[{"custom_id":"a","params":{}},{"custom_id":"b","params":[]}]}"#
            ),
            "requests.1.params: Input should be a valid dictionary"
        );
        assert_eq!(
            message(
                r#"{"requests":[{"custom_id":"a","params":{}},{"custom_id":"a b","params":{}}]}"#
            ),
            "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
        );
        let long = "x".repeat(65);
        assert_eq!(
            message(&format!(
                r#"{{"requests":[{{"custom_id":"{long}","params":{{}}}}]}}"#
            )),
            "requests.0.custom_id: String should have at most 64 characters"
        );
        assert!(
            message(
                r#"{"requests":[{"custom_id":"a","params":{}},{"custom_id":"a","params":{}}]}"#
            )
            .starts_with("requests.1.custom_id: Duplicate custom_id 'a'")
        );
        assert_eq!(
            message(r#"{"requests":[{"custom_id":"a","params":{},"extra":1}]}"#),
            "requests.0.extra: Extra inputs are not permitted"
        );
    }

    #[test]
    fn too_many_requests() {
        let item = r#"{"custom_id":"x","params":{}}"#;
        let mut body = String::from(r#"{"requests":["#);
        for i in 0..=MAX_REQUESTS {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&item.replace("\"x\"", &format!("\"r{i}\"")));
        }
        body.push_str("]}");
        assert_eq!(
            message(&body),
            "requests: List should have at most 100000 items after validation, not 100001"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_input(text in r#"[\{\}\[\]":,a-z0-9_ -]{0,200}"#) {
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn valid_ids_are_accepted_and_order_kept(ids in proptest::collection::hash_set("[a-zA-Z0-9_-]{1,64}", 1..20)) {
            let ids: Vec<String> = ids.into_iter().collect();
            let items: Vec<String> = ids.iter().map(|id| format!(r#"{{"custom_id":"{id}","params":{{"n":1}}}}"#)).collect();
            let body = format!(r#"{{"requests":[{}]}}"#, items.join(","));
            let parsed = parse(body.as_bytes()).unwrap();
            let got: Vec<&str> = parsed.iter().map(|r| r.custom_id.as_ref()).collect();
            prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
