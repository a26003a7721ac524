//! One line of a batch's results file, and the API's error object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::Message;
use tenantry_core::open_enum;

/// One line of the results file: which request, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchResult {
    /// The `custom_id` the request was submitted with.
    pub custom_id: String,
    /// What became of the request.
    pub result: ResultOutcome,
}

/// What became of one request of a batch.
///
/// Decoded in one pass whatever the order of its fields (no buffering of the message).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
// Results are streamed one at a time, so an unboxed message saves an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum ResultOutcome {
    /// The model answered (billed).
    Succeeded {
        /// The answer.
        message: Message,
    },
    /// The request failed (not billed); read `error.error.kind`.
    Errored {
        /// The error envelope.
        error: ErrorResponse,
    },
    /// The batch was canceled before this request was sent to the model (not billed).
    Canceled,
    /// The batch expired before this request was sent to the model (not billed).
    Expired,
    /// An outcome this version of the crate does not know.
    Unknown,
}

impl<'de> Deserialize<'de> for ResultOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OutcomeVisitor)
    }
}

/// The fields of a result object, named without allocating.
enum Field {
    Type,
    Message,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl serde::de::Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Field, E> {
                Ok(match value {
                    "type" => Field::Type,
                    "message" => Field::Message,
                    "error" => Field::Error,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// The `type` of a result, named without allocating.
enum Kind {
    Succeeded,
    Errored,
    Canceled,
    Expired,
    Unknown,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl serde::de::Visitor<'_> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a result type")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Kind, E> {
                Ok(match value {
                    "succeeded" => Kind::Succeeded,
                    "errored" => Kind::Errored,
                    "canceled" => Kind::Canceled,
                    "expired" => Kind::Expired,
                    _ => Kind::Unknown,
                })
            }
        }
        deserializer.deserialize_str(KindVisitor)
    }
}

struct OutcomeVisitor;

impl<'de> serde::de::Visitor<'de> for OutcomeVisitor {
    type Value = ResultOutcome;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a batch result object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<ResultOutcome, A::Error> {
        use serde::de::Error as _;
        let mut kind = None;
        let mut message = None;
        let mut error = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type => kind = Some(map.next_value::<Kind>()?),
                Field::Message => message = Some(map.next_value::<Message>()?),
                Field::Error => error = Some(map.next_value::<ErrorResponse>()?),
                Field::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match kind.ok_or_else(|| A::Error::missing_field("type"))? {
            Kind::Succeeded => Ok(ResultOutcome::Succeeded {
                message: message.ok_or_else(|| A::Error::missing_field("message"))?,
            }),
            Kind::Errored => Ok(ResultOutcome::Errored {
                error: error.ok_or_else(|| A::Error::missing_field("error"))?,
            }),
            Kind::Canceled => Ok(ResultOutcome::Canceled),
            Kind::Expired => Ok(ResultOutcome::Expired),
            Kind::Unknown => Ok(ResultOutcome::Unknown),
        }
    }
}

/// The API's error envelope: `{"type":"error","error":{…},"request_id":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorResponse {
    /// The error itself.
    pub error: ErrorObject,
    /// The id of the failed request, when known.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The inner error object: a type, a message and optional details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorObject {
    /// What kind of error.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Human-readable description.
    #[serde(default)]
    pub message: String,
    /// Extra machine-readable details, e.g. `{"error_code": "enforced_spend_limit_reached"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorObject {
    /// `details.error_code`, when present.
    #[must_use]
    pub fn error_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("error_code")?.as_str()
    }
}

open_enum! {
    /// The kind of an API error. The API says these values will grow.
    ErrorType {
        /// 400: the request is malformed; fix it before resending.
        InvalidRequest = "invalid_request_error",
        /// 401: bad key.
        Authentication = "authentication_error",
        /// 402: billing problem.
        Billing = "billing_error",
        /// 403: the key lacks permission.
        Permission = "permission_error",
        /// 404: no such resource.
        NotFound = "not_found_error",
        /// 409: conflicts with the resource's state.
        Conflict = "conflict_error",
        /// 413: the request body is too large.
        RequestTooLarge = "request_too_large",
        /// 429: rate or spend limit.
        RateLimit = "rate_limit_error",
        /// 500: internal error.
        Api = "api_error",
        /// 504: timed out while processing.
        Timeout = "timeout_error",
        /// 529: temporarily overloaded.
        Overloaded = "overloaded_error",
    }
}
