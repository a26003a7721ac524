//! A local receiver that verifies every signature, and stores with events to deliver.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tenantry_queue::{Feed, JobStore, Submission, TenantId};
use tenantry_webhooks::{AddressPolicy, Secret, Webhooks};

/// One request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub body: serde_json::Value,
}

#[derive(Debug)]
pub struct Receiver {
    pub url: String,
    pub secret: Secret,
    pub received: Mutex<Vec<Received>>,
    /// Requests whose signature did not verify (answered 401).
    pub bad_signatures: AtomicU64,
    /// Answer 500 to everything while set.
    pub fail: AtomicBool,
    pub attempts: AtomicU64,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver = Arc::new(Self {
            url,
            secret: Secret::generate(),
            received: Mutex::new(Vec::new()),
            bad_signatures: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.attempts.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(ts) = timestamp.parse::<i64>() else {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - ts).abs() > 300 || !r.secret.verify(&id, ts, &body, &signature) {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    if r.fail.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.received.lock().unwrap().push(Received {
        id,
        body: serde_json::from_slice(&body).unwrap(),
    });
    StatusCode::NO_CONTENT
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// `n` jobs for a tenant (one `job.queued` event each).
pub async fn submit(store: &dyn JobStore, tenant: &TenantId, n: usize) {
    let subs: Vec<Submission> = (0..n)
        .map(|i| {
            Submission::new(
                "chat",
                "u1",
                serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 16,
                    "messages": [{"role": "user", "content": format!("hi {i}")}]}),
            )
        })
        .collect();
    store.submit_many(tenant, &subs).await.unwrap();
}

pub fn local(feed: Feed) -> Webhooks {
    Webhooks::new(feed).with_address_policy(AddressPolicy::public_only().allow_private(true))
}

/// Event positions of the webhook ids received, in arrival order.
pub fn positions(ids: &[String]) -> Vec<i64> {
    ids.iter()
        .map(|id| id.trim_start_matches("evt_").parse().unwrap())
        .collect()
}
