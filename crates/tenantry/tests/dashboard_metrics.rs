//! The dashboard example's `/metrics` (issue 16): after a run, the Prometheus text it serves
//! agrees with the database: results ingested, queue depth per tenant, the oldest queued job,
//! batches in flight, the usage backlog and dead letters, batch creates, and spend to the
//! nano-USD. SQLite, then PostgreSQL, in one test: the recorder and its counters are the
//! process's, so the second run is measured from the figures the first one left.
#![cfg(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "axum",
    feature = "emulator",
    feature = "telemetry"
))]

#[path = "../../../examples/dashboard.rs"]
#[allow(dead_code)]
mod dashboard;

mod support;

use std::time::Duration;

use tenantry::Request;

/// Sum of the samples of `name` whose labels include every pair of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let pairs: Vec<(&str, &str)> = rest
                .split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|want| pairs.contains(want))
                .then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

/// Figures read from the database the dashboard runs on.
#[derive(Debug, PartialEq)]
struct Tables {
    succeeded: i64,
    queued: Vec<(String, i64)>,
    oldest_queued_at: Option<i64>,
    in_flight: i64,
    backlog: i64,
    dead: i64,
    created: i64,
    spend: i64,
}

const TABLES: [&str; 7] = [
    "SELECT count(*) FROM tenantry_queue_jobs WHERE state = 'succeeded'",
    "SELECT min(created_at) FROM tenantry_queue_jobs WHERE state = 'queued'",
    "SELECT count(*) FROM tenantry_queue_batches WHERE state IN ('planned', 'creating', 'submitted')",
    "SELECT count(*) FROM tenantry_queue_jobs WHERE usage_state IN ('pending', 'sending')",
    "SELECT count(*) FROM tenantry_queue_jobs WHERE usage_state = 'dead'",
    "SELECT count(*) FROM tenantry_queue_batches WHERE api_batch_id IS NOT NULL AND api_batch_id <> ''",
    "SELECT CAST(coalesce(sum(cost_nanos), 0) AS BIGINT) FROM tenantry_usage",
];
const QUEUED: &str = "SELECT tenant, count(*) FROM tenantry_queue_jobs WHERE state = 'queued' GROUP BY tenant ORDER BY tenant";

macro_rules! read_tables {
    ($pool:expr) => {{
        let pool = $pool;
        let mut n = Vec::new();
        for q in TABLES {
            let (v,): (Option<i64>,) = sqlx::query_as(q).fetch_one(pool).await.unwrap();
            n.push(v);
        }
        let queued: Vec<(String, i64)> = sqlx::query_as(QUEUED).fetch_all(pool).await.unwrap();
        Tables {
            succeeded: n[0].unwrap(),
            oldest_queued_at: n[1],
            in_flight: n[2].unwrap(),
            backlog: n[3].unwrap(),
            dead: n[4].unwrap(),
            created: n[5].unwrap(),
            spend: n[6].unwrap(),
            queued,
        }
    }};
}

/// One run of the dashboard on `url`, checked against what `read` says the tables hold.
async fn run<F, Fut>(url: String, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Tables>,
{
    let running = dashboard::start("127.0.0.1:0", Some(url)).await.unwrap();
    let base = format!("http://{}", running.addr);
    let before = scrape(&base).await;

    // Summaries through the HTTP API, for two tenants, to the end.
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (tenant, text) in [
        ("acme", "late parcel"),
        ("acme", "torn box"),
        ("globex", "wrong size"),
    ] {
        let envelope: serde_json::Value = http
            .post(format!("{base}/t/{tenant}/summaries"))
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push((
            tenant,
            envelope["operation"]["id"].as_str().unwrap().to_owned(),
        ));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for (tenant, id) in &ids {
            loop {
                let job: serde_json::Value = http
                    .get(format!("{base}/t/{tenant}/jobs/{id}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if job["status"] == "success" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await
    .expect("the summaries succeed within 60 s");
    // Jobs that wait an hour for their batch: queue depth and the oldest job are not zero.
    for (tenant, n) in [("acme", 2), ("globex", 1)] {
        for i in 0..n {
            let request = Request::new("summaries", "web", support::params(&format!("later {i}")))
                .max_wait(Duration::from_secs(3600));
            running.tenantry.submit(tenant, request).await.unwrap();
        }
    }

    // The gauges are sampled once a second: wait for a sample that saw the jobs above and the
    // usage recorded, then take the tables and the figures together.
    let (tables, after) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let tables = read().await;
            let after = scrape(&base).await;
            let sampled_queued = value(&after, "tenantry_queue_jobs", &[("state", "queued")]);
            let queued: i64 = tables.queued.iter().map(|(_, n)| n).sum();
            #[expect(clippy::cast_precision_loss)]
            if tables.backlog == 0 && sampled_queued == queued as f64 && queued == 3 {
                return (tables, after);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a sample with the queued jobs and no usage backlog within 30 s");
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };

    #[expect(clippy::cast_precision_loss)]
    let f = |n: i64| n as f64;
    assert_eq!(tables.succeeded, 3);
    assert_eq!(
        delta(
            "tenantry_queue_results_ingested_total",
            &[("outcome", "succeeded")]
        ),
        f(tables.succeeded)
    );
    for (tenant, n) in &tables.queued {
        assert_eq!(
            value(
                &after,
                "tenantry_queue_jobs",
                &[("state", "queued"), ("tenant", tenant)]
            ),
            f(*n),
            "{after}"
        );
    }
    assert_eq!(
        tables.queued,
        [("acme".to_owned(), 2), ("globex".to_owned(), 1)]
    );
    let oldest = value(&after, "tenantry_queue_oldest_queued_age_seconds", &[]);
    let waited = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as f64
        - f(tables.oldest_queued_at.unwrap());
    assert!(
        oldest > 0.0 && oldest <= waited / 1e6 + 1.0,
        "oldest {oldest} s, waited {} s",
        waited / 1e6
    );
    assert_eq!(
        value(&after, "tenantry_queue_batches_in_flight", &[]),
        f(tables.in_flight)
    );
    assert_eq!(
        value(&after, "tenantry_queue_usage_backlog", &[]),
        f(tables.backlog)
    );
    assert_eq!(
        value(&after, "tenantry_queue_usage_dead_letters", &[]),
        f(tables.dead)
    );
    assert!(tables.created >= 1);
    assert_eq!(
        delta(
            "tenantry_api_requests_total",
            &[("endpoint", "batches.create"), ("status", "200")]
        ),
        f(tables.created)
    );
    assert!(tables.spend > 0);
    assert_eq!(delta("tenantry_spend_nano_usd_total", &[]), f(tables.spend));
    assert_eq!(
        delta(
            "tenantry_spend_nano_usd_total",
            &[("tenant", "globex"), ("lane", "batch")]
        ) + delta(
            "tenantry_spend_nano_usd_total",
            &[("tenant", "acme"), ("lane", "batch")]
        ),
        f(tables.spend)
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_the_tables_on_both_databases() {
    let sqlite = tenantry_testkit::SqliteDatabase::create().await;
    let pool = sqlite.pool().clone();
    run(format!("sqlite://{}", sqlite.path().display()), || async {
        read_tables!(&pool)
    })
    .await;

    let pg = tenantry_testkit::PgDatabase::create().await;
    let pool = pg.pool().clone();
    run(pg.url().to_owned(), || async { read_tables!(&pool) }).await;
}
