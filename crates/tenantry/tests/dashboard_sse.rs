//! The dashboard example's event stream over HTTP (issue 13, case 12): a client that
//! reconnects with `Last-Event-ID` gets exactly the events it missed, in order, then the live
//! ones, and only its own tenant's. Runs on SQLite (in-process wake-ups) and on PostgreSQL
//! (`LISTEN/NOTIFY`).
#![cfg(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "axum",
    feature = "emulator"
))]

#[path = "../../../examples/dashboard.rs"]
#[allow(dead_code)]
mod dashboard;

mod support;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tenantry::{Database, Tenantry, batch::Config};

/// One `job` event as the stream sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SseEvent {
    id: i64,
    job: String,
    state: String,
}

/// An open event stream and the text received but not yet parsed.
struct Stream {
    bytes: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl Stream {
    async fn open(base: &str, tenant: &str, last_event_id: Option<i64>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}/t/{tenant}/events"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self {
            bytes: response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The `job` events received within `within`, stopping early once `want` have come.
    async fn events(&mut self, want: usize, within: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&frame) {
                    out.push(event);
                }
            }
            if out.len() >= want {
                return out;
            }
            match tokio::time::timeout_at(deadline, self.bytes.next()).await {
                Ok(Some(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                Ok(None) | Err(_) => return out,
            }
        }
    }
}

/// A `job` frame's id and data; `None` for keep-alive comments.
fn parse(frame: &str) -> Option<SseEvent> {
    let (mut id, mut data) = (None, None);
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<i64>().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = serde_json::from_str::<serde_json::Value>(v.trim()).ok();
        }
    }
    let data = data?;
    let id = id.expect("every job event carries an id");
    assert_eq!(data["position"], id.to_string(), "the id is the position");
    Some(SseEvent {
        id,
        job: data["job"].as_str()?.to_owned(),
        state: data["state"].as_str()?.to_owned(),
    })
}

/// Submits a summary for `tenant` and returns its job id.
async fn submit(base: &str, tenant: &str, text: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/t/{tenant}/summaries"))
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let envelope: serde_json::Value = response.json().await.unwrap();
    envelope["operation"]["id"].as_str().unwrap().to_owned()
}

/// A browser's `EventSource` reconnects with the `id` of the last event it got as
/// `Last-Event-ID`; the stream used to ignore it and start from now, so the events written
/// while it was away were lost to the page.
async fn case_12_dashboard_resumes_from_last_event_id(database: Database) {
    // No engine: the only events are the `queued` ones of the submits, so the test knows
    // every event the log holds.
    let tenantry = Tenantry::builder()
        .database_pool(database)
        .api(Config::new("sk-test").base_url("http://127.0.0.1:9"))
        .status_path("jobs/")
        .event_poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = dashboard::app(tenantry);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut first = Stream::open(&base, "acme", None).await;
    let seen = submit(&base, "acme", "the first parcel").await;
    let got = first.events(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].job.as_str(), got[0].state.as_str()),
        (seen.as_str(), "queued")
    );
    let last_seen = got[0].id;
    drop(first); // the browser goes away

    let missed = [
        submit(&base, "acme", "the second parcel").await,
        submit(&base, "acme", "the third parcel").await,
    ];
    let foreign = submit(&base, "globex", "another tenant's parcel").await;

    // A new connection without the header starts from now.
    let mut fresh = Stream::open(&base, "acme", None).await;
    assert_eq!(fresh.events(1, Duration::from_millis(500)).await, []);

    // The reconnect gets exactly what it missed, in order, and nothing of globex's.
    let mut resumed = Stream::open(&base, "acme", Some(last_seen)).await;
    let got = resumed.events(3, Duration::from_secs(2)).await;
    let jobs: Vec<&str> = got.iter().map(|e| e.job.as_str()).collect();
    assert_eq!(jobs, [missed[0].as_str(), missed[1].as_str()], "{got:?}");
    assert!(got.iter().all(|e| e.state == "queued" && e.id > last_seen));
    assert!(got[0].id < got[1].id);
    assert!(!jobs.contains(&foreign.as_str()));

    // Then it goes on live.
    let live = submit(&base, "acme", "the fourth parcel").await;
    let got = resumed.events(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].job, live);
    assert_eq!(fresh.events(1, Duration::from_secs(10)).await[0].job, live);

    // Another tenant's stream resumed from the same number holds only its own events.
    let mut other = Stream::open(&base, "globex", Some(0)).await;
    let got = other.events(3, Duration::from_secs(1)).await;
    let jobs: Vec<&str> = got.iter().map(|e| e.job.as_str()).collect();
    assert_eq!(jobs, [foreign.as_str()], "{got:?}");

    // A header that is no event id is refused, naming it.
    let response = reqwest::Client::new()
        .get(format!("{base}/t/acme/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("Last-Event-ID"));

    server.abort();
}

support::on_both_databases!(case_12_dashboard_resumes_from_last_event_id);
