//! Telemetry (issue 16): a full run against the emulator, with every span and event captured
//! by a subscriber layer, opens the expected spans with their ids and OpenTelemetry GenAI
//! fields, and never lets the API key, a prompt or a completion into any span or event.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

mod support;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tenantry::emulator::Emulator;
use tenantry::{Database, Tenantry, batch::Config};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span (its name) or an event (its target), with every field it carried.
#[derive(Debug, Clone)]
struct Captured {
    span: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn text(&self) -> String {
        format!("{:?} {:?}", self.span, self.fields)
    }
}

static CAPTURED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Where a span's record sits in [`CAPTURED`].
struct Slot(usize);

/// Keeps every span (with the fields recorded later) and every event, at every level.
struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut all = CAPTURED.lock().unwrap();
        all.push(Captured {
            span: Some(attrs.metadata().name()),
            fields,
        });
        let slot = all.len() - 1;
        drop(all);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(slot));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(slot) = span.extensions().get::<Slot>().map(|s| s.0) else {
            return;
        };
        values.record(&mut Fields(&mut CAPTURED.lock().unwrap()[slot].fields));
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        fields.insert("target".to_owned(), event.metadata().target().to_owned());
        CAPTURED
            .lock()
            .unwrap()
            .push(Captured { span: None, fields });
    }
}

/// Installs the capturing subscriber for the whole process (both databases' cases share it:
/// the engine runs on other threads than the test, so a thread-local default would miss it).
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber in this test binary");
    });
}

fn spans(name: &str) -> Vec<Captured> {
    CAPTURED
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.span == Some(name))
        .cloned()
        .collect()
}

fn count(c: &Captured, field: &str) -> u64 {
    c.field(field)
        .unwrap_or_else(|| panic!("{field} recorded on {}", c.text()))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is a number on {}", c.text()))
}

async fn case_full_run_spans_carry_ids_and_no_secret(database: Database) {
    capture();
    let run = match &database {
        Database::Sqlite(_) => "sqlite",
        Database::Postgres(_) => "postgres",
        _ => unreachable!("two databases"),
    };
    // Unique per case: both cases share the process's capture.
    let key = format!("sk-ant-api03-SECRET{run}KEY7f3a9c");
    let prompt =
        format!("CONFIDENTIAL {run} customer wrote: my card 4111-1111-1111-1111 was charged twice");
    let tenant = format!("tel-{run}");
    let emulator = Emulator::builder()
        .api_key(key.clone())
        .batch_latency(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let tenantry = Tenantry::builder()
        .database_pool(database)
        .api(Config::new(key.clone()).base_url(emulator.base_url()))
        .engine(support::fast_engine())
        .event_poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();

    // A job canceled before any engine runs: the cancel spans.
    let long = support::request(&prompt).max_wait(Duration::from_secs(3600));
    let canceled = support::pending_id(&tenantry.submit(&tenant, long).await.unwrap());
    tenantry.cancel(&tenant, &canceled).await.unwrap();

    let engine = tenantry.spawn();
    let mut events = tenantry.subscribe(&tenant).await.unwrap();
    let requests = vec![
        support::request(&format!("{prompt} (1)")),
        support::request(&format!("{prompt} (2)")),
        support::request(&format!("{prompt} (3)")),
        support::request(&format!("{prompt} (urgent)")).urgent(),
    ];
    let ids: Vec<String> = tenantry
        .submit_many(&tenant, requests)
        .await
        .unwrap()
        .iter()
        .map(support::pending_id)
        .collect();
    support::until_terminal(&mut events, ids.len()).await;
    // Usage reaches the ledger just after the results: wait for its spans.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let recorded = spans("tenantry.engine.usage_record")
                .iter()
                .filter(|s| s.field("tenant") == Some(tenant.as_str()))
                .count();
            if recorded >= ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every job's usage is recorded");
    let mut completions = Vec::new();
    for id in &ids {
        let output = tenantry
            .job(&tenant, id)
            .await
            .unwrap()
            .into_result()
            .unwrap();
        assert!(!output.text.is_empty());
        completions.push(output.text);
    }
    engine.shutdown().await.unwrap();
    emulator.shutdown().await;

    // Nothing secret anywhere: the key (or its distinctive part), the prompt, a completion.
    let all: Vec<Captured> = CAPTURED.lock().unwrap().clone();
    assert!(
        all.len() > 50,
        "the run was captured ({} records)",
        all.len()
    );
    for c in &all {
        let text = c.text();
        assert!(
            !text.contains(&key) && !text.contains(&format!("SECRET{run}KEY")),
            "the API key leaked: {text}"
        );
        assert!(
            !text.contains("CONFIDENTIAL") && !text.contains("4111-1111-1111-1111"),
            "a prompt leaked: {text}"
        );
        for completion in &completions {
            assert!(
                !text.contains(completion.as_str()),
                "a completion leaked: {text}"
            );
        }
    }

    // The entry points, with the tenant and the job.
    let ours = |name: &str| -> Vec<Captured> {
        spans(name)
            .into_iter()
            .filter(|s| s.field("tenant") == Some(tenant.as_str()))
            .collect()
    };
    assert!(
        ours("tenantry.submit_many")
            .iter()
            .any(|s| s.field("requests") == Some("4"))
    );
    assert!(
        ours("tenantry.queue.submit_many")
            .iter()
            .any(|s| s.field("jobs") == Some("4"))
    );
    assert!(
        ours("tenantry.cancel")
            .iter()
            .any(|s| s.field("job") == Some(canceled.as_str()))
    );
    assert!(
        ours("tenantry.queue.cancel")
            .iter()
            .any(|s| s.field("job") == Some(canceled.as_str()))
    );
    assert!(
        ours("tenantry.job")
            .iter()
            .any(|s| s.field("job") == Some(ids[0].as_str()))
    );

    // Every engine step, with the ids it worked on.
    for step in [
        "tenantry.engine.step",
        "tenantry.engine.sweep",
        "tenantry.engine.usage_flush",
    ] {
        assert!(!spans(step).is_empty(), "no {step} span");
    }
    let claims: Vec<_> = spans("tenantry.engine.claim")
        .into_iter()
        .filter(|s| s.field("batch").is_some())
        .collect();
    assert!(
        claims
            .iter()
            .all(|s| s.field("batch").unwrap().starts_with("qb_") && count(s, "jobs") >= 1)
    );
    let creates: Vec<_> = spans("tenantry.engine.create")
        .into_iter()
        .filter(|s| s.field("api_batch_id").is_some())
        .collect();
    assert!(!creates.is_empty(), "a batch was created");
    for create in &creates {
        assert!(create.field("batch").unwrap().starts_with("qb_"));
        assert!(
            create
                .field("api_batch_id")
                .unwrap()
                .starts_with("msgbatch_")
        );
        assert_eq!(create.field("gen_ai.provider.name"), Some("anthropic"));
        assert!(count(create, "requests") >= 1);
        assert!(
            claims
                .iter()
                .any(|c| c.field("batch") == create.field("batch")),
            "created batches were claimed"
        );
    }
    assert!(spans("tenantry.engine.poll").iter().any(|p| {
        p.field("ended") == Some("true")
            && creates
                .iter()
                .any(|c| c.field("api_batch_id") == p.field("api_batch_id"))
    }));
    assert!(
        spans("tenantry.queue.ingest_chunk")
            .iter()
            .any(|i| count(i, "succeeded") >= 1
                && creates.iter().any(|c| c.field("batch") == i.field("batch")))
    );

    // Usage: per job, the GenAI names for provider, model and every token count.
    let usage = ours("tenantry.engine.usage_record");
    for id in &ids {
        let u = usage
            .iter()
            .find(|u| u.field("job") == Some(id.as_str()))
            .expect("usage span per job");
        assert_eq!(u.field("gen_ai.provider.name"), Some("anthropic"));
        assert_eq!(u.field("gen_ai.request.model"), Some("claude-haiku-4-5"));
        assert!(count(u, "gen_ai.usage.input_tokens") > 0);
        assert!(count(u, "gen_ai.usage.output_tokens") > 0);
        count(u, "gen_ai.usage.cache_read.input_tokens");
        count(u, "gen_ai.usage.cache_creation.input_tokens");
    }
    assert!(
        usage
            .iter()
            .filter(|u| u.field("lane") == Some("batch"))
            .count()
            >= 3
    );

    // The urgent call: the job, the model asked and answered, the response id and tokens.
    let urgent = ours("tenantry.engine.urgent_call");
    let call = urgent
        .iter()
        .find(|u| u.field("job") == Some(ids[3].as_str()))
        .expect("urgent call span");
    assert_eq!(call.field("gen_ai.operation.name"), Some("chat"));
    assert_eq!(call.field("gen_ai.request.model"), Some("claude-haiku-4-5"));
    assert!(
        call.field("gen_ai.response.id")
            .is_some_and(|id| id.starts_with("msg_"))
    );
    assert!(call.field("gen_ai.response.model").is_some());
    assert!(count(call, "gen_ai.usage.output_tokens") > 0);

    // API calls: the endpoint, the status and the API's request id.
    let api = spans("tenantry.api.call");
    for endpoint in [
        "batches.create",
        "batches.retrieve",
        "batches.results",
        "messages.create",
    ] {
        let call = api
            .iter()
            .find(|c| {
                c.field("endpoint") == Some(endpoint)
                    && c.field("http.response.status_code") == Some("200")
            })
            .unwrap_or_else(|| panic!("a successful {endpoint} span"));
        assert!(
            call.field("request_id").is_some_and(|id| !id.is_empty()),
            "{}",
            call.text()
        );
        assert!(matches!(
            call.field("http.request.method"),
            Some("GET" | "POST")
        ));
    }
}

support::on_both_databases!(case_full_run_spans_carry_ids_and_no_secret);
