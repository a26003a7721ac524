//! Fault injection: what to break, on which endpoint, when (scripted or by probability), and counters.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::Error;
use crate::wire::{ApiError, ErrorType};

/// An endpoint of the emulated API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/messages/batches`.
    CreateBatch,
    /// `GET /v1/messages/batches/{id}`.
    RetrieveBatch,
    /// `GET /v1/messages/batches`.
    ListBatches,
    /// `POST /v1/messages/batches/{id}/cancel`.
    CancelBatch,
    /// `DELETE /v1/messages/batches/{id}`.
    DeleteBatch,
    /// `GET /v1/messages/batches/{id}/results`.
    BatchResults,
    /// `POST /v1/messages`.
    CreateMessage,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/organizations/usage_report/messages` (Admin API).
    UsageReport,
    /// `GET /v1/organizations/cost_report` (Admin API).
    CostReport,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Self; 10] = [
        Self::CreateBatch,
        Self::RetrieveBatch,
        Self::ListBatches,
        Self::CancelBatch,
        Self::DeleteBatch,
        Self::BatchResults,
        Self::CreateMessage,
        Self::CountTokens,
        Self::UsageReport,
        Self::CostReport,
    ];

    /// The short name used by fault specifications (`create`, `retrieve`, `list`, `cancel`,
    /// `delete`, `results`, `messages`, `count_tokens`, `usage_report`, `cost_report`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateBatch => "create",
            Self::RetrieveBatch => "retrieve",
            Self::ListBatches => "list",
            Self::CancelBatch => "cancel",
            Self::DeleteBatch => "delete",
            Self::BatchResults => "results",
            Self::CreateMessage => "messages",
            Self::CountTokens => "count_tokens",
            Self::UsageReport => "usage_report",
            Self::CostReport => "cost_report",
        }
    }
}

/// One kind of misbehaviour.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with an error instead of doing the work.
    Error {
        /// The error type; the HTTP status follows from it (429, 529, 500, 404, …).
        error_type: ErrorType,
        /// Sent as `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
        retry_after: Option<Duration>,
        /// Sent as `x-should-retry: true|false`.
        should_retry: Option<bool>,
    },
    /// Close the TCP connection (with a reset) without answering, before doing any work: the
    /// batch is not created, the message not generated, the cancel not made.
    ConnectionReset,
    /// Do the work, then close the TCP connection (with a reset) instead of answering: a
    /// create creates the batch, a message is generated (and billed), a cancel cancels, a
    /// delete deletes. The client sees the same transport error as with
    /// [`ConnectionReset`](Fault::ConnectionReset), although the work happened: the case a
    /// client must reconcile (look the batch up in `list`) rather than simply retry.
    ///
    /// Works on every endpoint; an error answer (a 400 for an invalid body, say) is lost the
    /// same way. [`FaultCounts::completed`] counts the work that was done. Spec name `lost`.
    LostResponse,
    /// Stop the response body after this many bytes, mid-line, without finishing the response.
    Truncate {
        /// Bytes delivered before the stream stops.
        after_bytes: u64,
    },
    /// Deliver the body in small chunks with a pause before each.
    Slow {
        /// Bytes per chunk.
        chunk_bytes: usize,
        /// Real-time pause before each chunk.
        delay: Duration,
    },
    /// End results lines with `\r\n` instead of `\n` (results endpoint only).
    CrlfLines,
    /// Replace line `line` (1-based, in file order) of the results file with a line that is
    /// not a valid result but still starts with its real `{"custom_id":"…","result":` prefix:
    /// the line is cut in the middle of `result` and padded with spaces to its old length, so a
    /// decoder can still name the `custom_id` it failed on. The other lines, the line count
    /// and the file's length stay as they were. Results endpoint only; a `line` past the end
    /// (or 0) changes nothing. Spec `badline=N`.
    MalformedLine {
        /// The 1-based number of the line to break.
        line: u64,
    },
    /// Replace line `line` (1-based) of the results file with `not json at all`, from which
    /// no `custom_id` can be read. The other lines and the line count stay as they were.
    /// Results endpoint only; a `line` past the end (or 0) changes nothing. Spec `garbage=N`.
    GarbageLine {
        /// The 1-based number of the line to replace.
        line: u64,
    },
    /// Leave line `line` (1-based) out of the results file; the rest is intact and the
    /// response ends cleanly (a complete body, no truncation), one line short of what
    /// `request_counts` promise. Results endpoint only; a `line` past the end (or 0) changes
    /// nothing. Spec `dropline=N`.
    ///
    /// A client that counts the lines will download the file again; each download is a new
    /// call to [`Endpoint::BatchResults`], and only the calls the rule fires on lose the line.
    /// To make the line missing for good, let the rule fire on every call:
    /// `.script(Endpoint::BatchResults, Fault::DropLine { line: 3 }, u64::MAX)` or
    /// `.probability(Endpoint::BatchResults, Fault::DropLine { line: 3 }, 1.0)` (spec
    /// `results:dropline=3@1`). Like every rule, it applies to the downloads of every batch.
    DropLine {
        /// The 1-based number of the line to leave out.
        line: u64,
    },
}

impl Fault {
    /// 429 `rate_limit_error` with `retry-after` / `retry-after-ms`.
    #[must_use]
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::Error {
            error_type: ErrorType::RateLimit,
            retry_after: Some(retry_after),
            should_retry: None,
        }
    }

    /// 529 `overloaded_error`.
    #[must_use]
    pub fn overloaded() -> Self {
        Self::Error {
            error_type: ErrorType::Overloaded,
            retry_after: None,
            should_retry: None,
        }
    }

    /// 500 `api_error`.
    #[must_use]
    pub fn api_error() -> Self {
        Self::Error {
            error_type: ErrorType::Api,
            retry_after: None,
            should_retry: None,
        }
    }

    /// 404 `not_found_error`, as the real API transiently answers right after a create.
    #[must_use]
    pub fn not_found() -> Self {
        Self::Error {
            error_type: ErrorType::NotFound,
            retry_after: None,
            should_retry: None,
        }
    }

    /// Adds an `x-should-retry` header to an error fault (no effect on other faults).
    #[must_use]
    pub fn with_should_retry(self, retry: bool) -> Self {
        match self {
            Self::Error {
                error_type,
                retry_after,
                ..
            } => Self::Error {
                error_type,
                retry_after,
                should_retry: Some(retry),
            },
            other => other,
        }
    }

    /// The counter this fault increments.
    #[must_use]
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::Error { error_type, .. } => match error_type {
                ErrorType::RateLimit => FaultKind::RateLimited,
                ErrorType::Overloaded => FaultKind::Overloaded,
                ErrorType::Api => FaultKind::ApiError,
                ErrorType::NotFound => FaultKind::NotFound,
                _ => FaultKind::OtherError,
            },
            Self::ConnectionReset => FaultKind::ConnectionReset,
            Self::LostResponse => FaultKind::LostResponse,
            Self::Truncate { .. } => FaultKind::Truncated,
            Self::Slow { .. } => FaultKind::Slow,
            Self::CrlfLines => FaultKind::CrlfLines,
            Self::MalformedLine { .. } => FaultKind::MalformedLine,
            Self::GarbageLine { .. } => FaultKind::GarbageLine,
            Self::DropLine { .. } => FaultKind::DroppedLine,
        }
    }

    /// Whether the fault shapes a results file, and so means nothing on other endpoints.
    fn results_only(&self) -> bool {
        matches!(
            self,
            Self::CrlfLines
                | Self::MalformedLine { .. }
                | Self::GarbageLine { .. }
                | Self::DropLine { .. }
        )
    }

    pub(crate) fn as_api_error(&self) -> Option<ApiError> {
        match self {
            Self::Error {
                error_type,
                retry_after,
                should_retry,
            } => {
                let mut error = ApiError::new(*error_type, error_type.default_message());
                error.retry_after = *retry_after;
                error.should_retry = *should_retry;
                Some(error)
            }
            _ => None,
        }
    }
}

/// What the fault counters count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// A 429 answer.
    RateLimited,
    /// A 529 answer.
    Overloaded,
    /// A 500 answer.
    ApiError,
    /// A 404 answer.
    NotFound,
    /// Another injected error status.
    OtherError,
    /// A connection closed without an answer, before the work.
    ConnectionReset,
    /// A connection closed without an answer, after the work was done.
    LostResponse,
    /// A body cut short.
    Truncated,
    /// A body delivered slowly.
    Slow,
    /// Results delivered with CRLF line endings.
    CrlfLines,
    /// Results delivered with one line broken after its `custom_id`.
    MalformedLine,
    /// Results delivered with one line replaced by garbage.
    GarbageLine,
    /// Results delivered with one line left out.
    DroppedLine,
    /// A batch request turned into an `errored` result with a retryable error type
    /// (counted on [`Endpoint::CreateBatch`]).
    ErroredResult,
}

/// When a rule fires.
#[derive(Clone, Debug, PartialEq)]
enum Trigger {
    /// On calls `skip + 1 ..= skip + times` to the endpoint (counted from start).
    Script { skip: u64, times: u64 },
    /// On each call with this probability.
    Probability(f64),
}

#[derive(Clone, Debug, PartialEq)]
struct Rule {
    endpoint: Endpoint,
    fault: Fault,
    trigger: Trigger,
}

/// Which faults to inject, built with owned-`self` setters.
///
/// Rules are checked in the order they were added; the first one that fires wins.
/// Scripted rules count the calls to their endpoint since the emulator started (or since
/// the plan was installed with [`Emulator::set_faults`](crate::Emulator::set_faults)).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tenantry_emulator::{Endpoint, Fault, FaultPlan};
///
/// let plan = FaultPlan::new()
///     // The next 2 creates answer 529, the third succeeds.
///     .script(Endpoint::CreateBatch, Fault::overloaded(), 2)
///     // The first results download stops after 100 bytes.
///     .script(Endpoint::BatchResults, Fault::Truncate { after_bytes: 100 }, 1)
///     // One in ten retrieves is rate limited.
///     .probability(Endpoint::RetrieveBatch, Fault::rate_limited(Duration::from_millis(50)), 0.1)
///     .with_spec("list:500:1")?;
/// # Ok::<(), tenantry_emulator::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    errored: Option<(f64, ErrorType)>,
    fresh_not_found: Option<Duration>,
}

impl FaultPlan {
    /// An empty plan: nothing is injected (the default).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `times` calls to `endpoint` get `fault`.
    #[must_use]
    pub fn script(self, endpoint: Endpoint, fault: Fault, times: u64) -> Self {
        self.script_after(endpoint, fault, 0, times)
    }

    /// After `skip` normal calls to `endpoint`, the following `times` calls get `fault`.
    #[must_use]
    pub fn script_after(mut self, endpoint: Endpoint, fault: Fault, skip: u64, times: u64) -> Self {
        self.rules.push(Rule {
            endpoint,
            fault,
            trigger: Trigger::Script { skip, times },
        });
        self
    }

    /// Each call to `endpoint` gets `fault` with `probability` (0.0 to 1.0, clamped), drawn
    /// from the emulator's seeded generator.
    #[must_use]
    pub fn probability(mut self, endpoint: Endpoint, fault: Fault, probability: f64) -> Self {
        let p = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self.rules.push(Rule {
            endpoint,
            fault,
            trigger: Trigger::Probability(p),
        });
        self
    }

    /// A `share` (0.0 to 1.0) of batch requests end as `errored` results with `error_type`
    /// (use a retryable one: `api_error`, `overloaded_error`).
    #[must_use]
    pub fn errored_results(mut self, share: f64, error_type: ErrorType) -> Self {
        let p = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        self.errored = Some((p, error_type));
        self
    }

    /// For `window` (virtual time) after a batch is created, retrieve, results, cancel and
    /// delete of that batch answer 404 `not_found_error`, as the real API transiently does
    /// right after a create (counted as [`FaultKind::NotFound`] on the endpoint).
    #[must_use]
    pub fn not_found_after_create(mut self, window: Duration) -> Self {
        self.fresh_not_found = Some(window);
        self
    }

    /// Adds a rule written as text, the form the `--fault` command-line flag takes:
    /// `ENDPOINT:FAULT[:TIMES]` or `ENDPOINT:FAULT@PROBABILITY`.
    ///
    /// `ENDPOINT` is an [`Endpoint::name`]; `FAULT` is `429[=MS]` (retry-after in ms,
    /// default 1000), `529`, `500`, `404`, `reset` ([`Fault::ConnectionReset`]), `lost`
    /// ([`Fault::LostResponse`]), `truncate=BYTES`, `slow=CHUNK/MS`, and on `results` only
    /// `crlf`, `badline=N` ([`Fault::MalformedLine`]), `garbage=N` ([`Fault::GarbageLine`]),
    /// `dropline=N` ([`Fault::DropLine`]) with 1-based line numbers; a suffix `+retry` / `+noretry` on an error adds `x-should-retry`. `TIMES`
    /// scripts the next N calls (default 1); `@P` fires with probability P instead (`@1`: on
    /// every call, e.g. `results:dropline=3@1` loses line 3 from every download).
    /// `errored=SHARE[/TYPE]` (no endpoint) sets [`errored_results`](Self::errored_results);
    /// `fresh404=MS` sets [`not_found_after_create`](Self::not_found_after_create).
    ///
    /// # Errors
    ///
    /// [`Error::FaultSpec`] when the text does not follow this grammar.
    pub fn with_spec(self, spec: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::FaultSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(ms) = spec.strip_prefix("fresh404=") {
            let ms: u64 = ms.parse().map_err(|_| bad("fresh404 needs milliseconds"))?;
            return Ok(self.not_found_after_create(Duration::from_millis(ms)));
        }
        if let Some(rest) = spec.strip_prefix("errored=") {
            let (share, kind) = rest.split_once('/').unwrap_or((rest, "api_error"));
            let share: f64 = share
                .parse()
                .map_err(|_| bad("share must be a number between 0 and 1"))?;
            let kind = ErrorType::from_wire(kind).ok_or_else(|| bad("unknown error type"))?;
            return Ok(self.errored_results(share, kind));
        }
        let mut parts = spec.splitn(3, ':');
        let endpoint_name = parts.next().unwrap_or("");
        let endpoint = Endpoint::ALL
            .into_iter()
            .find(|e| e.name() == endpoint_name)
            .ok_or_else(|| bad("unknown endpoint"))?;
        let fault_text = parts.next().ok_or_else(|| bad("missing fault"))?;
        let (fault_text, probability) = match fault_text.split_once('@') {
            Some((fault, p)) => (fault, Some(format!("@{p}"))),
            None => (fault_text, None),
        };
        let fault = parse_fault(fault_text).map_err(|reason| bad(&reason))?;
        if fault.results_only() && endpoint != Endpoint::BatchResults {
            return Err(bad("this fault applies to the results endpoint only"));
        }
        let trigger = match (probability, parts.next()) {
            (Some(_), Some(_)) => return Err(bad("give either :TIMES or @PROBABILITY")),
            (Some(p), None) => Some(p),
            (None, rest) => rest.map(str::to_owned),
        };
        match trigger.as_deref() {
            None => Ok(self.script(endpoint, fault, 1)),
            Some(p) if p.starts_with('@') => {
                let p: f64 = p[1..]
                    .parse()
                    .map_err(|_| bad("probability must be a number"))?;
                Ok(self.probability(endpoint, fault, p))
            }
            Some(times) => {
                let times: u64 = times
                    .parse()
                    .map_err(|_| bad("times must be a whole number"))?;
                Ok(self.script(endpoint, fault, times))
            }
        }
    }
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    let (base, should_retry) = if let Some(base) = text.strip_suffix("+retry") {
        (base, Some(true))
    } else if let Some(base) = text.strip_suffix("+noretry") {
        (base, Some(false))
    } else {
        (text, None)
    };
    let (name, arg) = base
        .split_once('=')
        .map_or((base, None), |(n, a)| (n, Some(a)));
    let number = |a: Option<&str>, default: u64| -> Result<u64, String> {
        a.map_or(Ok(default), |a| {
            a.parse()
                .map_err(|_| format!("{a:?} is not a whole number"))
        })
    };
    let fault = match name {
        "429" => Fault::rate_limited(Duration::from_millis(number(arg, 1000)?)),
        "529" => Fault::overloaded(),
        "500" => Fault::api_error(),
        "404" => Fault::not_found(),
        "reset" => Fault::ConnectionReset,
        "lost" => Fault::LostResponse,
        "truncate" => Fault::Truncate {
            after_bytes: number(arg, 0)?,
        },
        "slow" => {
            let (chunk, ms) = arg
                .and_then(|a| a.split_once('/'))
                .ok_or("slow needs CHUNK/MS")?;
            Fault::Slow {
                chunk_bytes: usize::try_from(number(Some(chunk), 0)?)
                    .map_err(|e| e.to_string())?
                    .max(1),
                delay: Duration::from_millis(number(Some(ms), 0)?),
            }
        }
        "crlf" => Fault::CrlfLines,
        "badline" | "garbage" | "dropline" => {
            let line = number(arg, 0)?;
            if line == 0 {
                return Err(format!("{name} needs a line number from 1 ({name}=N)"));
            }
            match name {
                "badline" => Fault::MalformedLine { line },
                "garbage" => Fault::GarbageLine { line },
                _ => Fault::DropLine { line },
            }
        }
        _ => return Err(format!("unknown fault {name:?}")),
    };
    Ok(match should_retry {
        Some(retry) => fault.with_should_retry(retry),
        None => fault,
    })
}

impl FromStr for FaultPlan {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self, Error> {
        Self::new().with_spec(spec)
    }
}

/// Per-endpoint counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EndpointCounts {
    requests: u64,
    completed: u64,
    injected: BTreeMap<FaultKind, u64>,
}

/// A snapshot of what the emulator served and injected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    endpoints: BTreeMap<Endpoint, EndpointCounts>,
}

impl FaultCounts {
    /// Requests that reached `endpoint` (including those answered with a fault).
    #[must_use]
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.endpoints.get(&endpoint).map_or(0, |c| c.requests)
    }

    /// Requests to `endpoint` that did their work and produced a success answer. Counted when
    /// the answer is produced, so it includes answers then lost to
    /// [`Fault::LostResponse`] or cut short by a body fault, and excludes error answers and
    /// [`Fault::ConnectionReset`]. On [`Endpoint::CreateMessage`] these are the messages
    /// generated, each of which the real API would bill; on [`Endpoint::CreateBatch`], the
    /// batches created.
    #[must_use]
    pub fn completed(&self, endpoint: Endpoint) -> u64 {
        self.endpoints.get(&endpoint).map_or(0, |c| c.completed)
    }

    /// Faults of `kind` injected on `endpoint`.
    #[must_use]
    pub fn injected(&self, endpoint: Endpoint, kind: FaultKind) -> u64 {
        self.endpoints
            .get(&endpoint)
            .and_then(|c| c.injected.get(&kind).copied())
            .unwrap_or(0)
    }

    /// All faults injected on `endpoint`.
    #[must_use]
    pub fn injected_on(&self, endpoint: Endpoint) -> u64 {
        self.endpoints
            .get(&endpoint)
            .map_or(0, |c| c.injected.values().sum())
    }

    /// All faults injected, on every endpoint.
    #[must_use]
    pub fn total_injected(&self) -> u64 {
        self.endpoints
            .values()
            .flat_map(|c| c.injected.values())
            .sum()
    }
}

impl FaultKind {
    /// The counter's name in JSON and text output (`rate_limited`, `overloaded`, …).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::ApiError => "api_error",
            Self::NotFound => "not_found",
            Self::OtherError => "other_error",
            Self::ConnectionReset => "connection_reset",
            Self::LostResponse => "lost_response",
            Self::Truncated => "truncated",
            Self::Slow => "slow",
            Self::CrlfLines => "crlf_lines",
            Self::MalformedLine => "malformed_line",
            Self::GarbageLine => "garbage_line",
            Self::DroppedLine => "dropped_line",
            Self::ErroredResult => "errored_result",
        }
    }
}

impl FaultCounts {
    /// The counters as JSON:
    /// `{"create": {"requests": 3, "completed": 1, "injected": {"overloaded": 2}}, …}`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .endpoints
            .iter()
            .map(|(endpoint, counts)| {
                let injected: serde_json::Map<String, serde_json::Value> = counts
                    .injected
                    .iter()
                    .map(|(kind, n)| (kind.name().to_owned(), serde_json::Value::from(*n)))
                    .collect();
                (
                    endpoint.name().to_owned(),
                    serde_json::json!({
                        "requests": counts.requests,
                        "completed": counts.completed,
                        "injected": injected,
                    }),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (endpoint, counts) in &self.endpoints {
            write!(
                f,
                "{}: {} requests, {} completed",
                endpoint.name(),
                counts.requests,
                counts.completed
            )?;
            for (kind, n) in &counts.injected {
                write!(f, ", {} {n}", kind.name())?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct InjectorState {
    plan: FaultPlan,
    /// Calls per endpoint since the plan was installed.
    calls: BTreeMap<Endpoint, u64>,
    counts: FaultCounts,
    rng: StdRng,
}

/// The live fault state of one emulator.
#[derive(Debug)]
pub(crate) struct Injector {
    state: Mutex<InjectorState>,
}

impl Injector {
    pub(crate) fn new(plan: FaultPlan, seed: u64) -> Self {
        Self {
            state: Mutex::new(InjectorState {
                plan,
                calls: BTreeMap::new(),
                counts: FaultCounts::default(),
                rng: StdRng::seed_from_u64(seed ^ 0x5eed_fa17),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request to `endpoint` and decides whether a fault fires (and counts it).
    pub(crate) fn on_request(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut state = self.lock();
        let state = &mut *state;
        state.counts.endpoints.entry(endpoint).or_default().requests += 1;
        let call = {
            let calls = state.calls.entry(endpoint).or_default();
            *calls += 1;
            *calls
        };
        let mut chosen = None;
        for rule in state.plan.rules.iter().filter(|r| r.endpoint == endpoint) {
            let fires = match rule.trigger {
                Trigger::Script { skip, times } => {
                    call > skip && call <= skip.saturating_add(times)
                }
                Trigger::Probability(p) => state.rng.random_bool(p),
            };
            if fires {
                chosen = Some(rule.fault.clone());
                break;
            }
        }
        if let Some(fault) = &chosen {
            let counts = state.counts.endpoints.entry(endpoint).or_default();
            *counts.injected.entry(fault.kind()).or_default() += 1;
        }
        chosen
    }

    /// Counts one request to `endpoint` that did its work and produced a success answer.
    pub(crate) fn on_completed(&self, endpoint: Endpoint) {
        self.lock()
            .counts
            .endpoints
            .entry(endpoint)
            .or_default()
            .completed += 1;
    }

    /// Whether the next batch request should become a retryable `errored` result.
    pub(crate) fn errored_result(&self) -> Option<ErrorType> {
        let mut state = self.lock();
        let state = &mut *state;
        let (share, error_type) = state.plan.errored?;
        if state.rng.random_bool(share) {
            let counts = state
                .counts
                .endpoints
                .entry(Endpoint::CreateBatch)
                .or_default();
            *counts.injected.entry(FaultKind::ErroredResult).or_default() += 1;
            Some(error_type)
        } else {
            None
        }
    }

    /// Whether a request for a batch of age `age` (virtual) falls in the transient-404
    /// window; counts the fault when it does.
    pub(crate) fn fresh_not_found(&self, endpoint: Endpoint, age: time::Duration) -> bool {
        let mut state = self.lock();
        let Some(window) = state.plan.fresh_not_found else {
            return false;
        };
        if age < window {
            let counts = state.counts.endpoints.entry(endpoint).or_default();
            *counts.injected.entry(FaultKind::NotFound).or_default() += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        self.lock().counts.clone()
    }

    pub(crate) fn replace(&self, plan: FaultPlan) {
        let mut state = self.lock();
        state.plan = plan;
        state.calls.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_fire_exactly_n_times() {
        let injector = Injector::new(
            FaultPlan::new().script(Endpoint::CreateBatch, Fault::overloaded(), 2),
            1,
        );
        assert_eq!(injector.on_request(Endpoint::RetrieveBatch), None);
        assert_eq!(
            injector.on_request(Endpoint::CreateBatch),
            Some(Fault::overloaded())
        );
        assert_eq!(
            injector.on_request(Endpoint::CreateBatch),
            Some(Fault::overloaded())
        );
        assert_eq!(injector.on_request(Endpoint::CreateBatch), None);
        let counts = injector.counts();
        assert_eq!(counts.requests(Endpoint::CreateBatch), 3);
        assert_eq!(
            counts.injected(Endpoint::CreateBatch, FaultKind::Overloaded),
            2
        );
        assert_eq!(counts.total_injected(), 2);
        assert_eq!(counts.requests(Endpoint::RetrieveBatch), 1);
    }

    #[test]
    fn script_after_skips_calls() {
        let plan = FaultPlan::new().script_after(Endpoint::ListBatches, Fault::api_error(), 1, 1);
        let injector = Injector::new(plan, 1);
        assert_eq!(injector.on_request(Endpoint::ListBatches), None);
        assert_eq!(
            injector.on_request(Endpoint::ListBatches),
            Some(Fault::api_error())
        );
        assert_eq!(injector.on_request(Endpoint::ListBatches), None);
    }

    #[test]
    fn probability_extremes_and_seed_determinism() {
        let always = Injector::new(
            FaultPlan::new().probability(Endpoint::CountTokens, Fault::api_error(), 1.0),
            1,
        );
        assert!((0..20).all(|_| always.on_request(Endpoint::CountTokens).is_some()));
        let never = Injector::new(
            FaultPlan::new().probability(Endpoint::CountTokens, Fault::api_error(), 0.0),
            1,
        );
        assert!((0..20).all(|_| never.on_request(Endpoint::CountTokens).is_none()));
        let draw = |seed| {
            let injector = Injector::new(
                FaultPlan::new().probability(Endpoint::CountTokens, Fault::api_error(), 0.5),
                seed,
            );
            (0..64)
                .map(|_| injector.on_request(Endpoint::CountTokens).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        let hits = draw(3).into_iter().filter(|hit| *hit).count();
        assert!((10..54).contains(&hits), "{hits}");
    }

    #[test]
    fn specs_parse() {
        let plan: FaultPlan = "create:529:2".parse().unwrap();
        assert_eq!(
            plan,
            FaultPlan::new().script(Endpoint::CreateBatch, Fault::overloaded(), 2)
        );
        let plan = FaultPlan::new()
            .with_spec("retrieve:429=250+noretry")
            .unwrap();
        assert_eq!(
            plan,
            FaultPlan::new().script(
                Endpoint::RetrieveBatch,
                Fault::rate_limited(Duration::from_millis(250)).with_should_retry(false),
                1
            )
        );
        let plan = FaultPlan::new().with_spec("results:slow=64/5@0.5").unwrap();
        assert_eq!(
            plan,
            FaultPlan::new().probability(
                Endpoint::BatchResults,
                Fault::Slow {
                    chunk_bytes: 64,
                    delay: Duration::from_millis(5)
                },
                0.5
            )
        );
        let plan: FaultPlan = "messages:lost".parse().unwrap();
        assert_eq!(
            plan,
            FaultPlan::new().script(Endpoint::CreateMessage, Fault::LostResponse, 1)
        );
        let plan = FaultPlan::new()
            .with_spec("errored=0.25/overloaded_error")
            .unwrap();
        assert_eq!(
            plan,
            FaultPlan::new().errored_results(0.25, ErrorType::Overloaded)
        );
        let plan = FaultPlan::new()
            .with_spec("results:badline=3")
            .unwrap()
            .with_spec("results:garbage=1:2")
            .unwrap()
            .with_spec("results:dropline=7@1")
            .unwrap();
        assert_eq!(
            plan,
            FaultPlan::new()
                .script(Endpoint::BatchResults, Fault::MalformedLine { line: 3 }, 1)
                .script(Endpoint::BatchResults, Fault::GarbageLine { line: 1 }, 2)
                .probability(Endpoint::BatchResults, Fault::DropLine { line: 7 }, 1.0)
        );
        for bad in [
            "results:badline",
            "results:badline=0",
            "results:garbage=x",
            "create:dropline=2",
            "list:crlf",
            "",
            "nope:529",
            "create",
            "create:999",
            "create:529:x",
            "results:slow=5",
            "errored=x",
        ] {
            assert!(
                matches!(
                    FaultPlan::new().with_spec(bad),
                    Err(Error::FaultSpec { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn errored_share_is_counted() {
        let injector = Injector::new(FaultPlan::new().errored_results(1.0, ErrorType::Api), 1);
        assert_eq!(injector.errored_result(), Some(ErrorType::Api));
        assert_eq!(
            injector
                .counts()
                .injected(Endpoint::CreateBatch, FaultKind::ErroredResult),
            1
        );
    }
}
