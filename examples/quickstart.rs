//! tenantry end to end in one run: AI features for several tenants at batch prices, with live
//! progress, results, per-tenant spend and metrics.
//!
//! Run with: `cargo run --example quickstart`
//!
//! With no `ANTHROPIC_API_KEY` it starts the local emulator in-process (no service, no key,
//! under 30 s); with the key set it uses the real API (a batch may then take minutes). The
//! SQLite database is a fresh file under the system temp dir.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tenantry::cost::{GroupBy, Nanos, SpendQuery, UnixMicros, Window};
use tenantry::emulator::{Emulator, MessageRequest, Reply, Responder};
use tenantry::metrics::{MetricsQuery, Scope, builtin};
use tenantry::queue::EngineConfig;
use tenantry::{Envelope, Request, Tenantry, batch::Config};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const PER_TENANT: usize = 100;
const MODEL: &str = "claude-haiku-4-5";
const LABELS: [&str; 4] = ["billing", "shipping", "technical", "other"];

/// Plausible answers for the emulator: a one-line summary or a label.
#[derive(Debug)]
struct Features;

impl Responder for Features {
    fn respond(&self, request: &MessageRequest<'_>) -> Reply {
        let prompt = request.params["messages"][0]["content"]
            .as_str()
            .unwrap_or("");
        if let Some(ticket) =
            prompt.strip_prefix("Classify this ticket as billing, shipping, technical or other: ")
        {
            let label = LABELS
                .iter()
                .find(|l| ticket.contains(*l))
                .unwrap_or(&"other");
            Reply::Text((*label).to_owned())
        } else {
            let body = prompt.split_once(": ").map_or(prompt, |(_, b)| b);
            let first = body.split(". ").next().unwrap_or(body);
            Reply::Text(format!("Summary: {first}."))
        }
    }
}

fn ticket(tenant: &str, i: usize) -> String {
    let topic = LABELS[i % LABELS.len()];
    format!(
        "Ticket {i} from {tenant}: the customer writes about {topic}. They were charged \
         twice, the parcel is late and the app crashes on start. They want an answer by Friday."
    )
}

fn requests(tenant: &str) -> Vec<Request> {
    (0..PER_TENANT)
        .map(|i| {
            let (feature, prompt) = if i % 2 == 0 {
                (
                    "summaries",
                    format!("Summarise in one sentence: {}", ticket(tenant, i)),
                )
            } else {
                (
                    "classifications",
                    format!(
                        "Classify this ticket as billing, shipping, technical or other: {}",
                        ticket(tenant, i)
                    ),
                )
            };
            let params = serde_json::json!({
                "model": MODEL, "max_tokens": 120,
                "messages": [{"role": "user", "content": prompt}]
            });
            Request::new(feature, format!("user-{}", i % 7), params)
                .max_wait(Duration::from_millis(500))
        })
        .collect()
}

fn print_progress(
    started: Instant,
    current: &HashMap<String, String>,
    finished: usize,
    total: usize,
) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for state in current.values() {
        *counts.entry(state.as_str()).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_unstable();
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "  {:>5.1}s  {finished:>3}/{total} done   jobs: {}",
        started.elapsed().as_secs_f64(),
        counts.join(", ")
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (config, emulator) = match std::env::var("ANTHROPIC_API_KEY") {
        Ok(_) => {
            println!("ANTHROPIC_API_KEY is set: using the real API (a batch can take minutes)");
            (Config::from_env()?, None)
        }
        Err(_) => {
            let emulator = Emulator::builder()
                .api_key("sk-emulator")
                .batch_latency(Duration::from_secs(2))
                .responder(Features)
                .start()
                .await?;
            println!(
                "no ANTHROPIC_API_KEY: using the local emulator at {}",
                emulator.base_url()
            );
            (
                Config::new("sk-emulator").base_url(emulator.base_url()),
                Some(emulator),
            )
        }
    };
    let dir = std::env::temp_dir().join(format!("tenantry-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("quickstart.db");
    println!("SQLite database: {}", db.display());

    let tenantry = Tenantry::builder()
        .database(format!("sqlite://{}", db.display()))
        .api(config)
        .engine(
            EngineConfig::new()
                .poll_interval(Duration::from_millis(250), Duration::from_secs(5))
                .idle(Duration::from_millis(50)),
        )
        .event_poll_interval(Duration::from_millis(250))
        .budget("acme", Window::Month, Nanos::from_usd_micros(5_000_000)) // $5 a month
        .feature_tier("premium", 12_000) // 1.2× for premium tenants
        .tenant_tier("globex", "premium")
        .build()
        .await?;
    let engine = tenantry.spawn();

    // Live progress: every tenant's job events, merged.
    let mut subscriptions = Vec::new();
    for tenant in TENANTS {
        subscriptions.push(tenantry.subscribe(tenant).await?);
    }
    let mut events = futures_util::stream::select_all(subscriptions);

    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for tenant in TENANTS {
        for envelope in tenantry.submit_many(tenant, requests(tenant)).await? {
            if let Envelope::Pending { operation } = envelope {
                ids.entry(tenant)
                    .or_default()
                    .push(operation.id().to_string());
            }
        }
    }
    let total = TENANTS.len() * PER_TENANT;
    println!("submitted {total} requests for {} tenants", TENANTS.len());

    // Each job's latest state; a line of counts every half second while the batches run.
    let mut current: HashMap<String, String> = HashMap::new();
    let mut finished = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let give_up = tokio::time::sleep(Duration::from_secs(if emulator.is_some() {
        60
    } else {
        86_400
    }));
    tokio::pin!(give_up);
    while finished < total {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let event = event?;
                if !event.is_state_change() {
                    continue; // about its billing, not its progress
                }
                if event.state.is_terminal() {
                    finished += 1;
                }
                current.insert(event.job_id.to_string(), event.state.to_string());
            }
            _ = tick.tick() => print_progress(started, &current, finished, total),
            () = &mut give_up => break,
        }
    }
    print_progress(started, &current, finished, total);

    println!("\nsome results:");
    for tenant in TENANTS {
        for id in ids[tenant].iter().take(2) {
            let envelope = tenantry.job(tenant, id).await?;
            match envelope {
                Envelope::Success { data, .. } => {
                    println!("  {tenant:8} {:16} {}", data.feature, data.text)
                }
                other => println!("  {tenant:8} {}", serde_json::to_string(&other)?),
            }
        }
    }

    // Usage is recorded right after the results; wait until every line is in the ledger.
    let query = SpendQuery::new(UnixMicros(0), UnixMicros(i64::MAX), GroupBy::Tenant);
    let deadline = Instant::now() + Duration::from_secs(20);
    let spend = loop {
        let rows = tenantry.spend(&query).await?;
        let lines: i64 = rows.iter().map(|r| r.lines).sum();
        if usize::try_from(lines).unwrap_or(0) >= total || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("\nspend per tenant (batch price vs the same work synchronously):");
    let (mut cost, mut standard) = (Nanos::ZERO, Nanos::ZERO);
    for row in &spend {
        println!(
            "  {:8} {:>4} requests  {}  synchronous {}  saved {}",
            row.key.as_deref().unwrap_or("-"),
            row.lines,
            row.cost,
            row.standard_cost,
            row.saved_by_batching()
        );
        cost = cost + row.cost;
        standard = standard + row.standard_cost;
    }
    println!(
        "  total             {cost}  synchronous {standard}  saved {}",
        standard - cost
    );

    let all = tenantry::metrics::Period::all_time();
    let mut metrics = MetricsQuery::new();
    metrics.scope(Scope::All);
    metrics.select("requests", builtin::requests(all))?;
    metrics.select("tokens", builtin::tokens(all))?;
    metrics.select("active_users", builtin::active_users(all))?;
    metrics.select("cost_per_user", builtin::cost_per_active_user(all))?;
    metrics.select("batch_share_ppm", builtin::batch_share(all))?;
    println!("\nmetrics per tenant:");
    for row in tenantry.metrics(&metrics).await? {
        println!(
            "  {:8} requests {:>4}  tokens {:>6}  active users {}  cost/user {}  batch share {}%",
            row.tenant_id(),
            row.value("requests").unwrap_or(0),
            row.value("tokens").unwrap_or(0),
            row.value("active_users").unwrap_or(0),
            Nanos(row.value("cost_per_user").unwrap_or(0)),
            row.value("batch_share_ppm").unwrap_or(0) / 10_000,
        );
    }

    engine.shutdown().await?;
    if let Some(emulator) = emulator {
        emulator.shutdown().await;
    }
    std::fs::remove_dir_all(&dir)?;
    println!("\ndone in {:.1}s", started.elapsed().as_secs_f64());
    if finished < total {
        return Err(format!("only {finished} of {total} jobs finished").into());
    }
    Ok(())
}
