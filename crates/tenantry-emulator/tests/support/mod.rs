//! Shared helpers of the integration tests: a client that talks to an emulator like the SDKs do.

#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use tenantry_emulator::Emulator;

pub const KEY: &str = "sk-test";

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Client {
    pub fn new(emu: &Emulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emu.base_url().to_owned(),
            key: KEY.to_owned(),
        }
    }

    pub fn with_key(emu: &Emulator, key: &str) -> Self {
        Self {
            key: key.to_owned(),
            ..Self::new(emu)
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .http
            .request(method, url)
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body failed");
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn create(&self, requests: Value) -> Answer {
        self.post("/v1/messages/batches", json!({ "requests": requests }))
            .await
    }
}

pub fn request(custom_id: &str, text: &str) -> Value {
    json!({
        "custom_id": custom_id,
        "params": {"model": "claude-opus-4-8", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    })
}

pub fn requests(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| request(&format!("req-{i}"), &format!("prompt number {i}")))
            .collect(),
    )
}

/// A frozen-clock emulator with the given latency.
pub async fn emulator(latency_ms: u64) -> Emulator {
    let emu = Emulator::builder()
        .batch_latency(std::time::Duration::from_millis(latency_ms))
        .api_key(KEY)
        .api_key("sk-other")
        .api_key_in_workspace("sk-team-a", "wrkspc_team")
        .api_key_in_workspace("sk-team-b", "wrkspc_team")
        .seed(7)
        .start()
        .await
        .expect("emulator starts");
    emu.clock().set_scale(0);
    emu
}

pub fn results_lines(text: &str) -> Vec<Value> {
    assert!(!text.contains("\n\n"), "blank line in results");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}
