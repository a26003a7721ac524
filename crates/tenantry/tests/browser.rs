//! The dashboard example in a real headless browser (Debian `chromium` driven by
//! `chromedriver` over the W3C WebDriver protocol): open a tenant's page, submit a job, see it
//! turn done without reloading, and see that another tenant's page never shows it.
//!
//! Fails (never skips) when `/usr/bin/chromium` or `/usr/bin/chromedriver` is missing;
//! `cargo xtask test` installs both from `.ci/apt-packages.txt`.
#![cfg(all(feature = "sqlite", feature = "axum", feature = "emulator"))]

#[path = "../../../examples/dashboard.rs"]
#[allow(dead_code)]
mod dashboard;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session on a chromedriver child process; both end on drop.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: String,
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install the Debian packages `chromium` and `chromium-driver` \
                 (listed in .ci/apt-packages.txt; `cargo xtask test` installs them) to run the browser test"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let driver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{driver}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let profile = tempfile::tempdir().expect("a profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let created: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {created}"))
            .to_owned();
        Self {
            http,
            session,
            driver,
            child,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        let response: Value = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver JSON");
        assert!(
            response["value"].get("error").is_none(),
            "webdriver {path} failed: {response}"
        );
        response["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// `[id, state]` of every job row on the page.
    async fn rows(&self) -> Vec<(String, String)> {
        let v = self
            .script(
                "return Array.from(document.querySelectorAll('li.job')).map(e => [e.dataset.id, e.dataset.state]);",
            )
            .await;
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r[0].as_str().unwrap_or_default().to_owned(),
                            r[1].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn quit(mut self) {
        let url = format!("{}/session/{}", self.driver, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.child.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_job_turns_done_live_and_stays_with_its_tenant() {
    let running = dashboard::start("127.0.0.1:0", None)
        .await
        .expect("dashboard starts");
    let base = format!("http://{}", running.addr);
    let browser = Browser::start().await;

    // Tenant globex's page first, in a second window, so it is open while acme submits.
    browser.goto(&format!("{base}/t/globex/")).await;
    let globex_window = browser
        .call(reqwest::Method::GET, "/window", json!({}))
        .await;
    let acme_window = browser
        .call(reqwest::Method::POST, "/window/new", json!({"type": "tab"}))
        .await["handle"]
        .clone();
    browser
        .call(
            reqwest::Method::POST,
            "/window",
            json!({"handle": acme_window}),
        )
        .await;
    browser.goto(&format!("{base}/t/acme/")).await;
    browser
        .script("window.__loadedOnce = true; return null;")
        .await;

    let text = browser.element("#text").await;
    browser
        .call(
            reqwest::Method::POST,
            &format!("/element/{text}/value"),
            json!({"text": "The parcel arrived two days late and the box was torn."}),
        )
        .await;
    let send = browser.element("#send").await;
    browser
        .call(
            reqwest::Method::POST,
            &format!("/element/{send}/click"),
            json!({}),
        )
        .await;

    // The row appears pending, then turns done, on the same page load.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen_pending = false;
    let id = loop {
        let rows = browser.rows().await;
        if let Some((row_id, state)) = rows.first() {
            seen_pending |= state == "pending";
            if state == "done" {
                break row_id.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not turn done within 60 s: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(seen_pending, "the job was shown pending before done");
    assert!(id.starts_with("job_"), "{id}");
    assert_eq!(
        browser.script("return window.__loadedOnce === true;").await,
        json!(true),
        "the page was not reloaded"
    );
    let shown = browser
        .script("return document.querySelector('li.job .text').textContent;")
        .await;
    assert!(shown.as_str().unwrap_or("").contains("parcel"), "{shown}");

    // Tenant globex: neither the open page nor a fresh load shows acme's job.
    browser
        .call(
            reqwest::Method::POST,
            "/window",
            json!({"handle": globex_window}),
        )
        .await;
    assert!(
        browser.rows().await.is_empty(),
        "globex's live page shows a job"
    );
    browser.goto(&format!("{base}/t/globex/")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let html = browser.script("return document.body.innerHTML;").await;
    assert!(
        !html.as_str().unwrap_or("").contains(&id),
        "globex's page shows acme's job"
    );
    assert!(browser.rows().await.is_empty());

    browser.quit().await;
    running.stop().await.expect("dashboard stops");
}
