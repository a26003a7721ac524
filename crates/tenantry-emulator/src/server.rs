//! The HTTP layer: routes, authentication, fault injection and the handlers of every endpoint.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::account::{Account, BilledUsage};
use crate::batch::{Batch, BatchStore, Item, Outcome, Status, WireBatch, start_time};
use crate::body::{
    MESSAGE_BODY_LIMIT, json_response, json_text, parse_json, read_body, slow, truncate,
};
use crate::cache::PromptCache;
use crate::clock::{Clock, http_date};
use crate::conn::ConnHandle;
use crate::control;
use crate::faults::{Endpoint, Fault, Injector};
use crate::ids::IdGen;
use crate::message::Generator;
use crate::params::{Mode, check};
use crate::ratelimit::{RateInfo, RateLimiter};
use crate::responder::Responder;
use crate::results::{Damage, LineEnding, Shape, stream};
use crate::tokens::measure;
use crate::wire::{ApiError, ErrorType, error_body};

/// Longest batch latency accepted (longer values are capped): 365 days.
pub(crate) const MAX_LATENCY: Duration = Duration::from_secs(365 * 24 * 3_600);
/// The organization id every response carries.
const ORGANIZATION_ID: &str = "00000000-0000-4000-8000-00000000e4a1";

/// State shared by all handlers of one emulator.
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    /// Batch latency for batches created from now on.
    pub(crate) latency: Mutex<Duration>,
    /// Accepted keys → workspace; `None` accepts any non-empty key (its own workspace).
    pub(crate) keys: Option<HashMap<String, String>>,
    pub(crate) models: Vec<(String, u32)>,
    pub(crate) ids: Mutex<IdGen>,
    pub(crate) responder: Arc<dyn Responder>,
    pub(crate) cache: PromptCache,
    pub(crate) faults: Injector,
    pub(crate) batches: BatchStore,
    /// What was received and billed, for [`crate::Emulator::served`].
    pub(crate) served: crate::served::ServedLog,
    pub(crate) base_url: String,
    pub(crate) max_batch_bytes: usize,
    /// Longest pause between two pieces of a request body before the request is abandoned.
    pub(crate) body_timeout: Duration,
    /// Requests-per-minute limit per workspace, when configured.
    pub(crate) rate: Option<RateLimiter>,
    /// The account behind the Admin API reports.
    pub(crate) account: Account,
    /// Accepted Admin API keys; empty accepts any `sk-ant-admin…` key when [`Shared::keys`]
    /// is `None`.
    pub(crate) admin_keys: Vec<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .field("latency", &self.latency())
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

/// The router with every route and the outer layer.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/messages/batches", post(create_batch).get(list_batches))
        .route(
            "/v1/messages/batches/{id}",
            get(retrieve_batch).delete(delete_batch),
        )
        .route("/v1/messages/batches/{id}/cancel", post(cancel_batch))
        .route("/v1/messages/batches/{id}/results", get(batch_results))
        .route("/v1/messages", post(create_message))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route(
            "/v1/organizations/usage_report/messages",
            get(crate::reports::usage_report),
        )
        .route(
            "/v1/organizations/cost_report",
            get(crate::reports::cost_report),
        )
        .route("/_emulator/clock", post(control::control_clock))
        .route("/_emulator/config", post(control::control_config))
        .route("/_emulator/faults", post(control::control_faults))
        .route("/_emulator/fault_counts", get(control::control_counts))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async {
            let mut error = ApiError::invalid("Method Not Allowed");
            error.status = 405;
            error
        })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), outer))
        .with_state(shared)
}

/// Adds `request-id` and `date` (from the virtual clock) to every response and renders error
/// bodies (which carry the request id too).
async fn outer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let request_id = shared
        .ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .request();
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = error.body(Some(&request_id));
        *response.body_mut() = Body::from(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value);
    }
    headers.insert(
        "anthropic-organization-id",
        HeaderValue::from_static(ORGANIZATION_ID),
    );
    // hyper adds a `date` from the host's clock only when the response has none.
    if let Ok(date) = HeaderValue::from_str(&http_date(shared.clock.now())) {
        headers.insert(header::DATE, date);
    }
    response
}

/// What a handler knows after the common checks.
///
/// Every handler ends by dropping it: with [`Fault::LostResponse`] that resets the connection,
/// whichever way the handler ends (success through [`Ctx::finish`] or an error).
#[derive(Debug)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    conn: ConnHandle,
    workspace: String,
    /// The id of the key that made the request (see [`api_key_id`]).
    api_key_id: String,
    body_fault: Option<Fault>,
    rate: Option<RateInfo>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if self.body_fault == Some(Fault::LostResponse) {
            // The work is done; the answer is written after the handler returns, and every
            // write to a reset connection fails, so the client gets no answer at all.
            self.conn.reset();
        }
    }
}

impl Ctx {
    /// Counts the work as completed, applies the body fault, if any, and adds the workspace
    /// header.
    pub(crate) fn finish(&self, mut response: Response) -> Response {
        self.shared.faults.on_completed(self.endpoint);
        if let Ok(value) = HeaderValue::from_str(&self.workspace) {
            response
                .headers_mut()
                .insert("anthropic-workspace-id", value);
        }
        if let Some(rate) = self.rate {
            let headers = response.headers_mut();
            headers.insert(
                "anthropic-ratelimit-requests-limit",
                HeaderValue::from(rate.limit),
            );
            headers.insert(
                "anthropic-ratelimit-requests-remaining",
                HeaderValue::from(rate.remaining),
            );
            if let Ok(reset) = HeaderValue::from_str(&rfc3339_seconds(rate.reset)) {
                headers.insert("anthropic-ratelimit-requests-reset", reset);
            }
        }
        match &self.body_fault {
            Some(Fault::Truncate { after_bytes }) => {
                response.headers_mut().remove(header::CONTENT_LENGTH);
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, truncate(body, *after_bytes))
            }
            Some(Fault::Slow { chunk_bytes, delay }) => {
                response.headers_mut().remove(header::CONTENT_LENGTH);
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, slow(body, *chunk_bytes, *delay))
            }
            _ => response,
        }
    }

    /// How the results file is written under the body fault, if any.
    fn results_shape(&self) -> Shape {
        let damaged = |line, damage| Shape {
            damage: Some((line, damage)),
            ..Shape::PLAIN
        };
        match self.body_fault {
            Some(Fault::CrlfLines) => Shape {
                ending: LineEnding::CrLf,
                damage: None,
            },
            Some(Fault::MalformedLine { line }) => damaged(line, Damage::Malformed),
            Some(Fault::GarbageLine { line }) => damaged(line, Damage::Garbage),
            Some(Fault::DropLine { line }) => damaged(line, Damage::Drop),
            _ => Shape::PLAIN,
        }
    }
}

pub(crate) fn workspace_of_key(key: &str) -> String {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    format!("wrkspc_01{:016x}", hasher.finish())
}

/// The id the Admin API reports a key under (`apikey_01…`): stable per key, never the key.
pub(crate) fn api_key_id(key: &str) -> String {
    let mut hasher = DefaultHasher::new();
    ("api key id", key).hash(&mut hasher);
    format!("apikey_01{:016x}", hasher.finish())
}

/// The prefix of Admin API keys.
const ADMIN_KEY_PREFIX: &str = "sk-ant-admin";

impl Shared {
    pub(crate) fn latency(&self) -> Duration {
        *self.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap_or_else(PoisonError::into_inner) = latency.min(MAX_LATENCY);
    }

    /// Authentication, version check, request counting and fault decision.
    pub(crate) fn begin(
        self: &Arc<Self>,
        endpoint: Endpoint,
        headers: &HeaderMap,
        conn: &ConnHandle,
    ) -> Result<Ctx, ApiError> {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::new(ErrorType::Authentication, "x-api-key header is required")
            })?;
        let admin = key.starts_with(ADMIN_KEY_PREFIX);
        let wants_admin = matches!(endpoint, Endpoint::UsageReport | Endpoint::CostReport);
        if admin != wants_admin {
            let message = if wants_admin {
                "This endpoint requires an Admin API key (sk-ant-admin…)."
            } else {
                "Admin API keys cannot be used with this endpoint; use an API key."
            };
            return Err(ApiError::new(ErrorType::Authentication, message));
        }
        let workspace = if admin {
            let accepted = if self.admin_keys.is_empty() {
                self.keys.is_none()
            } else {
                self.admin_keys.iter().any(|k| k == key)
            };
            if !accepted {
                return Err(ApiError::new(
                    ErrorType::Authentication,
                    "invalid x-api-key",
                ));
            }
            // The organization: an Admin key sees every workspace.
            String::from("organization")
        } else {
            match &self.keys {
                Some(keys) => keys
                    .get(key)
                    .cloned()
                    .ok_or_else(|| ApiError::new(ErrorType::Authentication, "invalid x-api-key"))?,
                None => workspace_of_key(key),
            }
        };
        let api_key_id = api_key_id(key);
        match headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
        {
            None => return Err(ApiError::invalid("anthropic-version: header is required")),
            Some(version) if is_api_version(version) => {}
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "anthropic-version: unknown version {other:?}"
                )));
            }
        }
        let fault = self.faults.on_request(endpoint);
        let rate = match &self.rate {
            None => None,
            Some(limiter) => {
                let now = self.clock.now();
                match limiter.check(&workspace, now) {
                    Ok(info) => Some(info),
                    Err(info) => {
                        let wait = (info.reset - now).max(time::Duration::ZERO);
                        let mut error = ApiError::new(
                            ErrorType::RateLimit,
                            format!(
                                "This request would exceed the rate limit for your organization of {} requests per minute.",
                                info.limit
                            ),
                        );
                        error.retry_after = Some(Duration::try_from(wait).unwrap_or_default());
                        return Err(error);
                    }
                }
            }
        };
        match fault {
            Some(Fault::ConnectionReset) => {
                conn.reset();
                Err(ApiError::new(ErrorType::Api, "connection reset"))
            }
            Some(fault @ Fault::Error { .. }) => Err(fault.as_api_error().unwrap_or_else(|| {
                ApiError::new(ErrorType::Api, ErrorType::Api.default_message())
            })),
            body_fault => Ok(Ctx {
                shared: self.clone(),
                endpoint,
                conn: conn.clone(),
                workspace,
                api_key_id,
                body_fault,
                rate,
            }),
        }
    }

    /// Every request billed so far (Messages API calls and the processed requests of ended
    /// batches), oldest first.
    pub(crate) fn billed(&self) -> Vec<BilledUsage> {
        let mut billed = self.account.messages();
        self.served
            .for_each_billed(self.clock.now(), |batch, at, message| {
                let key = self.account.key_of_batch(&batch.id);
                if let Some(usage) = BilledUsage::from_message(message, at, &batch.workspace, &key)
                {
                    billed.push(usage);
                }
            });
        billed.sort_by_key(|u| u.at);
        billed
    }

    /// The batch `id` of the caller's workspace, unless the transient-404 fault hides it.
    fn batch(&self, ctx: &Ctx, endpoint: Endpoint, id: &str) -> Result<Arc<Batch>, ApiError> {
        let batch = self.batches.get(&ctx.workspace, id)?;
        if self
            .faults
            .fresh_not_found(endpoint, self.clock.now() - batch.created_at)
        {
            return Err(ApiError::not_found(
                "The requested resource could not be found.",
            ));
        }
        Ok(batch)
    }

    /// The base of `results_url`: the address the client used, else the bound address.
    fn public_base(&self, headers: &HeaderMap) -> String {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| self.base_url.clone(), |host| format!("http://{host}"))
    }
}

/// RFC 3339 with whole seconds, as the rate-limit reset headers are written.
fn rfc3339_seconds(at: time::OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether a header value looks like an API version (`YYYY-MM-DD`, e.g. `2023-06-01`;
/// newer SDKs send newer dates).
fn is_api_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && version >= "2023-01-01"
}

pub(crate) type Handled = Result<Response, ApiError>;

async fn create_batch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let ctx = shared.begin(Endpoint::CreateBatch, &headers, &conn)?;
    let body = read_body(&headers, body, shared.max_batch_bytes, shared.body_timeout).await?;
    let created_at = shared.clock.now();
    let worker = shared.clone();
    let workspace = ctx.workspace.clone();
    let batch =
        tokio::task::spawn_blocking(move || build_batch(&worker, workspace, &body, created_at))
            .await
            .map_err(|_| ApiError::new(ErrorType::Api, ErrorType::Api.default_message()))??;
    let batch = Arc::new(batch);
    shared.batches.insert(batch.clone());
    shared.account.batch_key(&batch.id, &ctx.api_key_id);
    shared.served.batch(batch.clone());
    let value = batch.to_wire(shared.clock.now(), &shared.public_base(&headers));
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}

/// Validates the envelope and answers every request (see [`crate::batch`]).
fn build_batch(
    shared: &Shared,
    workspace: String,
    body: &[u8],
    created_at: time::OffsetDateTime,
) -> Result<Batch, ApiError> {
    let requests = crate::envelope::parse(body)?;
    let n = requests.len();
    let latency = shared.latency();
    let generator = Generator {
        responder: shared.responder.as_ref(),
        cache: &shared.cache,
        ids: &shared.ids,
        workspace: &workspace,
    };
    let mut items = Vec::with_capacity(n);
    for (i, request) in requests.into_iter().enumerate() {
        let at = start_time(created_at, latency, n, i);
        let outcome = match serde_json::from_str::<Value>(request.params.get()) {
            Err(e) => Outcome::Errored(
                error_body(
                    ErrorType::InvalidRequest.as_str(),
                    &format!("params: {e}"),
                    None,
                )
                .into(),
            ),
            Ok(params) => match check(&params, Mode::Batch, &shared.models) {
                Err(e) => {
                    Outcome::Errored(error_body(e.error_type.as_str(), &e.message, None).into())
                }
                Ok(checked) => match shared.faults.errored_result() {
                    Some(error_type) => {
                        let request_id = shared
                            .ids
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .request();
                        let body = error_body(
                            error_type.as_str(),
                            error_type.default_message(),
                            Some(&request_id),
                        );
                        Outcome::Errored(body.into())
                    }
                    None => match generator.generate(
                        &params,
                        &checked,
                        Some(&request.custom_id),
                        at,
                        "batch",
                    ) {
                        Ok(message) => Outcome::Succeeded(message.into()),
                        Err(e) => Outcome::Errored(
                            error_body(e.error_type.as_str(), &e.message, None).into(),
                        ),
                    },
                },
            },
        };
        items.push(Item {
            custom_id: request.custom_id.as_ref().into(),
            outcome,
        });
    }
    let (id, order_seed) = {
        let mut ids = shared.ids.lock().unwrap_or_else(PoisonError::into_inner);
        (ids.batch(), ids.next_u64())
    };
    Ok(Batch::new(
        id, workspace, created_at, latency, items, order_seed,
    ))
}

async fn retrieve_batch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::RetrieveBatch, &headers, &conn)?;
    let batch = shared.batch(&ctx, Endpoint::RetrieveBatch, &id)?;
    let value = batch.to_wire(shared.clock.now(), &shared.public_base(&headers));
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let limit: i64 = value.parse().map_err(|_| {
        ApiError::invalid(
            "limit: Input should be a valid integer, unable to parse string as an integer",
        )
    })?;
    if limit < 1 {
        return Err(ApiError::invalid(
            "limit: Input should be greater than or equal to 1",
        ));
    }
    if limit > 1000 {
        return Err(ApiError::invalid(
            "limit: Input should be less than or equal to 1000",
        ));
    }
    usize::try_from(limit).map_err(|_| ApiError::invalid("limit: Input should be a valid integer"))
}

/// A page of `list`.
#[derive(serde::Serialize)]
struct ListPage<'a> {
    data: Vec<WireBatch<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

async fn list_batches(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::ListBatches, &headers, &conn)?;
    let mut before_id = None;
    let mut after_id = None;
    let mut limit = 20;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "before_id" => before_id = Some(value.into_owned()),
            "after_id" => after_id = Some(value.into_owned()),
            "limit" => limit = parse_limit(&value)?,
            _ => {}
        }
    }
    let page = shared.batches.list(
        &ctx.workspace,
        before_id.as_deref(),
        after_id.as_deref(),
        limit,
    )?;
    let now = shared.clock.now();
    let base = shared.public_base(&headers);
    let data: Vec<WireBatch<'_>> = page.data.iter().map(|b| b.to_wire(now, &base)).collect();
    let value = ListPage {
        first_id: data.first().map(|b| b.id),
        last_id: data.last().map(|b| b.id),
        has_more: page.has_more,
        data,
    };
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}

async fn cancel_batch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::CancelBatch, &headers, &conn)?;
    let batch = shared.batch(&ctx, Endpoint::CancelBatch, &id)?;
    let now = shared.clock.now();
    batch.cancel(now)?;
    let value = batch.to_wire(now, &shared.public_base(&headers));
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}

async fn delete_batch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::DeleteBatch, &headers, &conn)?;
    let batch = shared.batch(&ctx, Endpoint::DeleteBatch, &id)?;
    if batch.view(shared.clock.now()).status != Status::Ended {
        return Err(ApiError::invalid(format!(
            "Message Batch {id} cannot be deleted while it is still processing. Cancel it first."
        )));
    }
    shared.batches.remove(&batch);
    let value = json!({"id": batch.id, "type": "message_batch_deleted"});
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}

async fn batch_results(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::BatchResults, &headers, &conn)?;
    let batch = shared.batch(&ctx, Endpoint::BatchResults, &id)?;
    let view = batch.view(shared.clock.now());
    if view.status != Status::Ended {
        return Err(ApiError::invalid(format!(
            "Message Batch {id} has not finished processing; its results are not available yet."
        )));
    }
    if view.archived {
        return Err(ApiError::not_found(format!(
            "The results of Message Batch {id} have been archived and are no longer available."
        )));
    }
    let mut response =
        Body::from_stream(stream(batch.clone(), view, ctx.results_shape())).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-jsonl"),
    );
    Ok(ctx.finish(response))
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let ctx = shared.begin(Endpoint::CreateMessage, &headers, &conn)?;
    let body = read_body(&headers, body, MESSAGE_BODY_LIMIT, shared.body_timeout).await?;
    let params = parse_json(&body)?;
    let checked = check(&params, Mode::Messages, &shared.models)?;
    let generator = Generator {
        responder: shared.responder.as_ref(),
        cache: &shared.cache,
        ids: &shared.ids,
        workspace: &ctx.workspace,
    };
    let at = shared.clock.now();
    let message = generator.generate(&params, &checked, None, at, "standard")?;
    shared.served.message(&params, &message);
    if let Some(billed) = BilledUsage::from_message(&message, at, &ctx.workspace, &ctx.api_key_id) {
        shared.account.message(billed);
    }
    Ok(ctx.finish(json_text(StatusCode::OK, message)))
}

async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let ctx = shared.begin(Endpoint::CountTokens, &headers, &conn)?;
    let body = read_body(&headers, body, MESSAGE_BODY_LIMIT, shared.body_timeout).await?;
    let params = parse_json(&body)?;
    check(&params, Mode::CountTokens, &shared.models)?;
    let value = json!({"input_tokens": measure(&params).total});
    Ok(ctx.finish(json_response(StatusCode::OK, &value)))
}
