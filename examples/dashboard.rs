//! A multi-tenant axum service on tenantry: endpoints that queue AI summaries and answer with
//! envelopes, a Server-Sent Events stream per tenant, and a page that shows each job turn from
//! pending to done live, with the tenant's spend.
//!
//! Run with: `cargo run --example dashboard`, then open <http://127.0.0.1:3000/t/acme/> (and
//! <http://127.0.0.1:3000/t/globex/> next to it: a tenant never sees another's jobs).
//!
//! - SQLite under the system temp dir by default; PostgreSQL with `DATABASE_URL=postgres://…`,
//!   where any number of instances (`PORT=3001 cargo run --example dashboard`) share the
//!   database: each runs an engine, and events reach every instance through `LISTEN/NOTIFY`.
//! - The local emulator unless `ANTHROPIC_API_KEY` is set.
//! - With `CI=true` or `--smoke` it serves a scripted round trip against itself (submit, SSE
//!   event, done, tenant isolation) and exits.
//!
//! Routes (the tenant comes from the path here; a real service takes it from the session):
//!
//! | route | answer |
//! |---|---|
//! | `GET /t/{tenant}/` | the page |
//! | `POST /t/{tenant}/summaries` `{"text": …}` | `202` pending envelope, `Location: jobs/{id}` |
//! | `GET /t/{tenant}/jobs/{id}` | the job's envelope: pending, success with the summary, or error |
//! | `GET /t/{tenant}/jobs` | the tenant's latest jobs |
//! | `GET /t/{tenant}/events` | `text/event-stream` of `job` events; each `id:` is the event's position in the tenant's log, and a reconnect with `Last-Event-ID` resumes right after it |
//! | `GET /t/{tenant}/spend` | the tenant's spend and its synchronous price |
//! | `GET /metrics` | the service's metrics in Prometheus' text format (queue depth, oldest job, batches in flight, usage backlog, dead letters, results, API calls, spend, budgets left: see `tenantry::telemetry`) |
//!
//! The metrics carry per-tenant labels here (two demo tenants); a service with many tenants
//! leaves `EngineConfig::tenant_labels` off.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tenantry::cost::{GroupBy, SpendQuery, UnixMicros};
use tenantry::emulator::Emulator;
use tenantry::envelope::Code;
use tenantry::envelope::axum::{Json, Path, method_not_allowed, not_found};
use tenantry::queue::{EngineConfig, JobEvent, JobFilter, Position, TenantId};
use tenantry::{EngineTask, Envelope, JobOutput, Problem, Request, Tenantry, batch::Config};

const PAGE: &str = include_str!("dashboard.html");

#[derive(Debug, Deserialize)]
struct Summarize {
    text: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct JobRow {
    id: String,
    state: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Spend {
    cost: String,
    standard_cost: String,
    requests: i64,
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn summarize(
    State(t): State<Tenantry>,
    Path(tenant): Path<String>,
    Json(body): Json<Summarize>,
) -> Result<Envelope<JobOutput>, Problem> {
    let params = serde_json::json!({
        "model": "claude-haiku-4-5", "max_tokens": 200,
        "messages": [{"role": "user", "content": format!("Summarise in one sentence: {}", body.text)}]
    });
    let request = Request::new("summaries", "web", params).max_wait(Duration::from_millis(200));
    Ok(t.submit(&tenant, request).await?)
}

async fn job(
    State(t): State<Tenantry>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Envelope<JobOutput>, Problem> {
    Ok(t.job(&tenant, &id).await?)
}

async fn jobs(
    State(t): State<Tenantry>,
    Path(tenant): Path<String>,
) -> Result<Envelope<Vec<JobRow>>, Problem> {
    let tenant_id = TenantId::new(tenant).map_err(tenantry::Error::from)?;
    let page = t
        .jobs()
        .list(&tenant_id, &JobFilter::new().limit(50), None)
        .await?;
    Ok(Envelope::success(
        page.items()
            .iter()
            .map(|j| JobRow {
                id: j.id.to_string(),
                state: j.state.to_string(),
            })
            .collect(),
    ))
}

async fn spend(
    State(t): State<Tenantry>,
    Path(tenant): Path<String>,
) -> Result<Envelope<Spend>, Problem> {
    let rows = t
        .spend(
            &SpendQuery::new(UnixMicros(0), UnixMicros(i64::MAX), GroupBy::Tenant)
                .for_tenant(TenantId::new(tenant).map_err(tenantry::Error::from)?),
        )
        .await?;
    let (cost, standard, lines) = rows.iter().fold((0, 0, 0), |(c, s, l), r| {
        (c + r.cost.0, s + r.standard_cost.0, l + r.lines)
    });
    Ok(Envelope::success(Spend {
        cost: tenantry::cost::Nanos(cost).to_string(),
        standard_cost: tenantry::cost::Nanos(standard).to_string(),
        requests: lines,
    }))
}

/// Where a reconnecting `EventSource` left off: the `Last-Event-ID` it sends back is the `id`
/// of the last event it received, which is that event's durable position in the tenant's log.
fn last_event_id(headers: &HeaderMap) -> Result<Option<Position>, Problem> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .map(|p| Some(Position::from_i64(p)))
        .ok_or_else(|| {
            Problem::new(
                Code::ValidationFailed,
                "Last-Event-ID must be the id of an event of this stream (a non-negative integer)",
            )
        })
}

async fn events(
    State(t): State<Tenantry>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    // A browser that reconnects gets the tenant's events after the last one it saw (the
    // tenant's own log, so never another tenant's), then the live ones; a first connection
    // starts from now.
    let subscription = match last_event_id(&headers)? {
        Some(after) => t.subscribe_after(&tenant, after).await?,
        None => t.subscribe(&tenant).await?,
    };
    let stream = subscription.filter_map(|event| async move {
        // Only the jobs' progress: an event about a job's billing leaves its row as it is.
        let event = event.ok().filter(JobEvent::is_state_change)?;
        let data = serde_json::json!({
            "job": event.job_id.to_string(),
            "state": event.state.to_string(),
            "terminal": event.state.is_terminal(),
            "position": event.position.get().to_string(),
        });
        Some(Ok(Event::default()
            .event("job")
            .id(event.position.get().to_string())
            .data(data.to_string())))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The process's Prometheus recorder, installed on first use: every metric tenantry records
/// from then on is rendered by `GET /metrics`.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed in this process")
    })
}

async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
}

/// The service's routes.
pub(crate) fn app(tenantry: Tenantry) -> Router {
    prometheus();
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(|| async { Redirect::to("/t/acme/") }))
        .route("/t/{tenant}/", get(page))
        .route("/t/{tenant}/summaries", post(summarize))
        .route("/t/{tenant}/jobs", get(jobs))
        .route("/t/{tenant}/jobs/{id}", get(job))
        .route("/t/{tenant}/events", get(events))
        .route("/t/{tenant}/spend", get(spend))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(tenantry)
}

/// A running service: its address and what it owns.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    /// The handle the server runs on (the tests submit through it directly).
    #[allow(dead_code)]
    pub(crate) tenantry: Tenantry,
    engine: EngineTask,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    emulator: Option<Emulator>,
    dir: Option<std::path::PathBuf>,
}

impl Running {
    pub(crate) async fn stop(self) -> Result<(), Box<dyn std::error::Error>> {
        self.server.abort();
        self.engine.shutdown().await?;
        if let Some(e) = self.emulator {
            e.shutdown().await;
        }
        if let Some(dir) = self.dir {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}

/// Starts the emulator (without `ANTHROPIC_API_KEY`), tenantry on `database` (a fresh SQLite file
/// when `None`), its engine and the HTTP server on `addr`.
pub(crate) async fn start(
    addr: &str,
    database: Option<String>,
) -> Result<Running, Box<dyn std::error::Error>> {
    let (config, emulator) = if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
        (Config::from_env()?, None)
    } else {
        let emulator = Emulator::builder()
            .api_key("sk-emulator")
            .batch_latency(Duration::from_secs(1))
            .start()
            .await?;
        let config = Config::new("sk-emulator").base_url(emulator.base_url());
        (config, Some(emulator))
    };
    let (url, dir) = match database {
        Some(url) => (url, None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "tenantry-dashboard-{}-{}",
                std::process::id(),
                uuid_like()
            ));
            std::fs::create_dir_all(&dir)?;
            (
                format!("sqlite://{}", dir.join("dashboard.db").display()),
                Some(dir),
            )
        }
    };
    let tenantry = Tenantry::builder()
        .database(url)
        .api(config)
        .status_path("jobs/") // relative to /t/{tenant}/summaries: /t/{tenant}/jobs/{id}
        .engine(
            EngineConfig::new()
                .poll_interval(Duration::from_millis(200), Duration::from_secs(5))
                .idle(Duration::from_millis(50))
                // Gauges read from the database once a second, per tenant (two demo tenants).
                .sample_every(Duration::from_secs(1))
                .tenant_labels(true),
        )
        .event_poll_interval(Duration::from_millis(500))
        .build()
        .await?;
    let engine = tenantry.spawn();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = app(tenantry.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Running {
        addr,
        tenantry,
        engine,
        server,
        emulator,
        dir,
    })
}

/// A per-run suffix for the temp dir (time-based; several runs in one process differ).
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Whether an SSE text holds a `job` event saying that `id` succeeded.
fn succeeded(stream: &str, id: &str) -> bool {
    stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .any(|e| e["job"] == id && e["state"] == "succeeded")
}

/// The scripted round trip of `--smoke`: submit, see the SSE event, read the result, check
/// another tenant sees nothing of it.
async fn smoke(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut acme = http
        .get(format!("{base}/t/acme/events"))
        .send()
        .await?
        .bytes_stream();
    let mut globex = http
        .get(format!("{base}/t/globex/events"))
        .send()
        .await?
        .bytes_stream();

    let page = http
        .get(format!("{base}/t/acme/"))
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("<html"), "the page is served");

    let response = http
        .post(format!("{base}/t/acme/summaries"))
        .json(
            &serde_json::json!({"text": "The parcel arrived two days late and the box was torn."}),
        )
        .send()
        .await?;
    assert_eq!(response.status(), 202, "a submit answers 202 Accepted");
    let location = response
        .headers()
        .get("location")
        .ok_or("no Location header")?
        .to_str()?
        .to_owned();
    let envelope: serde_json::Value = response.json().await?;
    let id = envelope["operation"]["id"]
        .as_str()
        .ok_or("no operation id")?
        .to_owned();
    println!("submitted {id}, Location: {location}");

    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = acme.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk?));
            if succeeded(&seen, &id) {
                return Ok::<(), reqwest::Error>(());
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| format!("no succeeded event within 60 s; stream so far:\n{seen}"))??;
    println!("SSE: {id} succeeded");

    let done: serde_json::Value = http
        .get(format!("{base}/t/acme/{location}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(done["status"], "success", "{done}");
    println!("result: {}", done["data"]["text"]);

    let other = http
        .get(format!("{base}/t/globex/jobs/{id}"))
        .send()
        .await?;
    assert_eq!(other.status(), 404, "another tenant cannot read the job");
    // globex's stream has only keep-alives: wait briefly and check it never named the job.
    let mut leaked = String::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(chunk)) = globex.next().await {
            leaked.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(!leaked.contains(&id), "tenant globex received acme's event");

    let spend: serde_json::Value = http
        .get(format!("{base}/t/acme/spend"))
        .send()
        .await?
        .json()
        .await?;
    println!("acme spend: {}", spend["data"]);

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("tenantry_queue_results_ingested_total"),
        "/metrics serves the queue's metrics:\n{metrics}"
    );
    println!(
        "/metrics: {} series",
        metrics.lines().filter(|l| !l.starts_with('#')).count()
    );
    println!("smoke round trip passed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke_mode =
        std::env::var("CI").is_ok_and(|v| v == "true") || std::env::args().any(|a| a == "--smoke");
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let addr = if smoke_mode {
        "127.0.0.1:0".to_owned()
    } else {
        format!("127.0.0.1:{port}")
    };
    let running = start(&addr, std::env::var("DATABASE_URL").ok()).await?;
    if smoke_mode {
        let result = smoke(running.addr).await;
        running.stop().await?;
        return result;
    }
    println!(
        "dashboard on http://{}/t/acme/ and http://{}/t/globex/",
        running.addr, running.addr
    );
    tokio::signal::ctrl_c().await?;
    running.stop().await
}
