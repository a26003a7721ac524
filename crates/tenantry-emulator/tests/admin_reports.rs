//! The Admin API reports: `GET /v1/organizations/usage_report/messages` and
//! `GET /v1/organizations/cost_report` count exactly what the emulator billed, in the real
//! wire shape, paged; admin keys are separate; the account can be made to disagree.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, KEY};
use tenantry_emulator::{CostRounding, Emulator, Prices};
use time::macros::datetime;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

const ADMIN: &str = "sk-ant-admin01-test";

async fn emulator() -> Emulator {
    let emu = Emulator::builder()
        .batch_latency(Duration::from_secs(1))
        .api_key(KEY)
        .api_key_in_workspace("sk-team-a", "wrkspc_team")
        .admin_key(ADMIN)
        .seed(3)
        .start()
        .await
        .expect("emulator starts");
    emu.clock().set_scale(0);
    emu
}

/// Moves the (frozen) virtual clock to `at`.
fn at(emu: &Emulator, at: OffsetDateTime) {
    emu.clock().set_offset(at - OffsetDateTime::now_utc());
}

fn ts(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn message(text: &str, model: &str) -> Value {
    json!({"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": text}]})
}

/// A message, a US-residency message and a batch of three on 2026-03-02, one message on
/// 2026-03-03.
async fn traffic(emu: &Emulator) {
    let client = Client::new(emu);
    at(emu, datetime!(2026-03-02 10:00 UTC));
    let a = client
        .post("/v1/messages", message("first question", "claude-opus-4-8"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut us = message("second question, in the US", "claude-opus-4-8");
    us["inference_geo"] = json!("us");
    let b = client.post("/v1/messages", us).await;
    assert_eq!(b.json()["usage"]["inference_geo"], "us");
    let team = Client::with_key(emu, "sk-team-a");
    let requests: Vec<Value> = (0..3)
        .map(|i| {
            json!({"custom_id": format!("r{i}"), "params": message(&format!("batch item {i}"), "claude-haiku-4-5")})
        })
        .collect();
    assert_eq!(team.create(Value::Array(requests)).await.status, 200);
    emu.clock().advance(Duration::from_secs(60));
    at(emu, datetime!(2026-03-03 09:00 UTC));
    let c = client
        .post(
            "/v1/messages",
            message("third, next day", "claude-sonnet-4-6"),
        )
        .await;
    assert_eq!(c.status, 200);
    at(emu, datetime!(2026-03-09 12:00 UTC));
}

fn report_path(path: &str, params: &[(&str, &str)]) -> String {
    let query: String = url_encode(params);
    format!("{path}?{query}")
}

fn url_encode(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&v.replace(':', "%3A").replace('+', "%2B"));
    }
    out
}

const USAGE: &str = "/v1/organizations/usage_report/messages";
const COST: &str = "/v1/organizations/cost_report";

#[tokio::test]
async fn the_usage_report_counts_every_billed_request_by_its_dimensions() {
    let emu = emulator().await;
    traffic(&emu).await;
    let billed = emu.billed();
    assert_eq!(billed.len(), 6, "{billed:#?}");
    let admin = Client::with_key(&emu, ADMIN);
    let start = ts(datetime!(2026-03-01 00:00 UTC));
    let end = ts(datetime!(2026-03-05 00:00 UTC));
    let answer = admin
        .get(&report_path(
            USAGE,
            &[
                ("starting_at", &start),
                ("ending_at", &end),
                ("bucket_width", "1d"),
                ("group_by[]", "model"),
                ("group_by[]", "service_tier"),
                ("group_by[]", "workspace_id"),
                ("group_by[]", "api_key_id"),
                ("group_by[]", "context_window"),
                ("group_by[]", "inference_geo"),
            ],
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let page = answer.json();
    assert_eq!(page["has_more"], false);
    assert!(page["next_page"].is_null());
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "one bucket per day, empty ones too");
    assert_eq!(data[0]["starting_at"], "2026-03-01T00:00:00Z");
    assert_eq!(data[0]["ending_at"], "2026-03-02T00:00:00Z");
    assert_eq!(data[0]["results"], json!([]));
    // Day 2: opus global, opus us, haiku batch (three requests in one row).
    let day2 = data[1]["results"].as_array().unwrap();
    assert_eq!(day2.len(), 3, "{day2:#?}");
    let batch = day2
        .iter()
        .find(|r| r["service_tier"] == "batch")
        .expect("a batch row");
    assert_eq!(batch["model"], "claude-haiku-4-5");
    assert_eq!(batch["workspace_id"], "wrkspc_team");
    assert_eq!(batch["api_key_id"], emu.api_key_id("sk-team-a"));
    assert_eq!(batch["context_window"], "0-200k");
    assert_eq!(batch["inference_geo"], "global");
    let batch_billed: Vec<_> = billed
        .iter()
        .filter(|b| b.service_tier == "batch")
        .collect();
    assert_eq!(batch_billed.len(), 3);
    let sum = |f: fn(&tenantry_emulator::BilledUsage) -> u64| -> u64 {
        batch_billed.iter().map(|b| f(b)).sum()
    };
    assert_eq!(
        batch["uncached_input_tokens"],
        sum(|b| b.uncached_input_tokens)
    );
    assert_eq!(batch["output_tokens"], sum(|b| b.output_tokens));
    assert_eq!(batch["cache_read_input_tokens"], 0);
    assert_eq!(
        batch["cache_creation"],
        json!({"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0})
    );
    assert_eq!(batch["server_tool_use"], json!({"web_search_requests": 0}));
    assert!(day2.iter().any(|r| r["inference_geo"] == "us"));
    assert_eq!(data[2]["results"][0]["model"], "claude-sonnet-4-6");
    assert_eq!(data[2]["results"][0]["service_tier"], "standard");

    // Without group_by every dimension is null and a day is one row.
    let plain = admin
        .get(&report_path(
            USAGE,
            &[("starting_at", &start), ("ending_at", &end)],
        ))
        .await
        .json();
    let row = &plain["data"][1]["results"][0];
    assert!(row["model"].is_null() && row["workspace_id"].is_null());
    let day2_input: u64 = billed
        .iter()
        .filter(|b| b.at.date() == time::macros::date!(2026 - 03 - 02))
        .map(|b| b.uncached_input_tokens)
        .sum();
    assert_eq!(row["uncached_input_tokens"], day2_input);
    // A filter keeps one model.
    let only = admin
        .get(&report_path(
            USAGE,
            &[
                ("starting_at", &start),
                ("ending_at", &end),
                ("models[]", "claude-sonnet-4-6"),
            ],
        ))
        .await
        .json();
    assert_eq!(only["data"][1]["results"], json!([]));
    assert_eq!(only["data"][2]["results"].as_array().unwrap().len(), 1);
}

/// The exact cents of `tokens` at `usd_per_mtok_micros` × `permille` / 1000, as the cost
/// report writes it.
fn cents(tokens: u64, micros_per_mtok: u64, permille: u64) -> String {
    // tokens × µUSD/MTok = pico-USD; × permille / 1000; cents = pico / 10^10.
    let scaled = u128::from(tokens) * u128::from(micros_per_mtok) * u128::from(permille);
    let unit = 10_000_000_000_000u128; // 10^10 × 1000
    let whole = scaled / unit;
    let frac = scaled % unit;
    if frac == 0 {
        whole.to_string()
    } else {
        let digits = format!("{frac:013}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[tokio::test]
async fn the_cost_report_prices_each_line_with_the_emulator_table() {
    let emu = emulator().await;
    traffic(&emu).await;
    let billed = emu.billed();
    let admin = Client::with_key(&emu, ADMIN);
    let start = ts(datetime!(2026-03-02 00:00 UTC));
    let end = ts(datetime!(2026-03-04 00:00 UTC));
    let page = admin
        .get(&report_path(
            COST,
            &[
                ("starting_at", &start),
                ("ending_at", &end),
                ("group_by[]", "description"),
                ("group_by[]", "workspace_id"),
            ],
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let page = page.json();
    let day2 = page["data"][0]["results"].as_array().unwrap();
    let haiku_in: u64 = billed
        .iter()
        .filter(|b| b.service_tier == "batch")
        .map(|b| b.uncached_input_tokens)
        .sum();
    let row = day2
        .iter()
        .find(|r| r["service_tier"] == "batch" && r["token_type"] == "uncached_input_tokens")
        .expect("the batch input line");
    // Haiku 4.5: $1/MTok input, batch half.
    assert_eq!(row["amount"], cents(haiku_in, 1_000_000, 500));
    assert_eq!(row["currency"], "USD");
    assert_eq!(row["cost_type"], "tokens");
    assert_eq!(row["model"], "claude-haiku-4-5");
    assert_eq!(row["workspace_id"], "wrkspc_team");
    assert_eq!(row["context_window"], "0-200k");
    assert!(row["description"].as_str().unwrap().contains("Batch"));
    let us_out = billed.iter().find(|b| b.inference_geo == "us").unwrap();
    let row = day2
        .iter()
        .find(|r| r["inference_geo"] == "us" && r["token_type"] == "output_tokens")
        .unwrap();
    // Opus 4.8 output $25/MTok, US residency 1.1×.
    assert_eq!(
        row["amount"],
        cents(us_out.output_tokens, 25_000_000, 1_100)
    );

    // Without description, one amount per day and workspace: the sum of the lines.
    let plain = admin
        .get(&report_path(
            COST,
            &[("starting_at", &start), ("ending_at", &end)],
        ))
        .await
        .json();
    let total = &plain["data"][0]["results"];
    assert_eq!(total.as_array().unwrap().len(), 1);
    assert!(total[0]["model"].is_null() && total[0]["token_type"].is_null());
}

#[tokio::test]
async fn pages_follow_next_page_to_the_end() {
    let emu = emulator().await;
    traffic(&emu).await;
    let admin = Client::with_key(&emu, ADMIN);
    let start = ts(datetime!(2026-03-01 00:00 UTC));
    let end = ts(datetime!(2026-03-11 00:00 UTC));
    for path in [USAGE, COST] {
        let mut page_token: Option<String> = None;
        let mut days = Vec::new();
        let mut pages = 0;
        loop {
            let mut params = vec![
                ("starting_at", start.as_str()),
                ("ending_at", end.as_str()),
                ("limit", "3"),
            ];
            if let Some(token) = &page_token {
                params.push(("page", token.as_str()));
            }
            let page = admin.get(&report_path(path, &params)).await;
            assert_eq!(page.status, 200, "{}", page.text);
            let page = page.json();
            pages += 1;
            for bucket in page["data"].as_array().unwrap() {
                days.push(bucket["starting_at"].as_str().unwrap().to_owned());
            }
            if page["has_more"] == false {
                assert!(page["next_page"].is_null());
                break;
            }
            page_token = Some(page["next_page"].as_str().unwrap().to_owned());
        }
        assert_eq!(pages, 4, "{path}: 3 + 3 + 3 + 1 days");
        assert_eq!(days.len(), 10);
        assert_eq!(days[9], "2026-03-10T00:00:00Z");
    }
    let bad = admin
        .get(&report_path(
            COST,
            &[("starting_at", &start), ("limit", "32")],
        ))
        .await;
    assert_eq!(
        (bad.status, bad.error_type().as_str()),
        (400, "invalid_request_error")
    );
    assert!(bad.message().starts_with("limit"));
}

#[tokio::test]
async fn admin_keys_read_reports_and_nothing_else() {
    let emu = emulator().await;
    let admin = Client::with_key(&emu, ADMIN);
    let refused = admin
        .post("/v1/messages", message("hi", "claude-opus-4-8"))
        .await;
    assert_eq!(
        (refused.status, refused.error_type().as_str()),
        (401, "authentication_error")
    );
    let batches = admin.get("/v1/messages/batches").await;
    assert_eq!(batches.status, 401);
    let path = report_path(COST, &[("starting_at", "2026-03-01T00%3A00%3A00Z")]);
    let user = Client::new(&emu).get(&path).await;
    assert_eq!(
        (user.status, user.error_type().as_str()),
        (401, "authentication_error")
    );
    let stranger = Client::with_key(&emu, "sk-ant-admin01-unknown")
        .get(&path)
        .await;
    assert_eq!(stranger.status, 401);
    assert_eq!(admin.get(&path).await.status, 200);
    // Nothing the refused calls did was billed.
    assert!(emu.billed().is_empty());
}

#[tokio::test]
async fn the_account_can_be_made_to_disagree() {
    let emu = emulator().await;
    traffic(&emu).await;
    let billed = emu.billed();
    let admin = Client::with_key(&emu, ADMIN);
    let start = ts(datetime!(2026-03-02 00:00 UTC));
    let end = ts(datetime!(2026-03-04 00:00 UTC));
    let usage_path = report_path(USAGE, &[("starting_at", &start), ("ending_at", &end)]);
    let before = admin.get(&usage_path).await.json();
    let input = |page: &Value, day: usize| {
        page["data"][day]["results"][0]["uncached_input_tokens"]
            .as_u64()
            .unwrap()
    };
    let day3 = billed
        .iter()
        .find(|b| b.model == "claude-sonnet-4-6")
        .unwrap();
    emu.double_in_account(&day3.message_id);
    let first = billed
        .iter()
        .find(|b| b.model == "claude-opus-4-8")
        .unwrap();
    emu.drop_from_account(&first.message_id);
    let after = admin.get(&usage_path).await.json();
    assert_eq!(input(&after, 1), 2 * input(&before, 1));
    assert_eq!(
        input(&after, 0),
        input(&before, 0) - first.uncached_input_tokens
    );
    // The log of what was billed is unchanged: only the account disagrees.
    assert_eq!(emu.billed(), billed);

    // A price change from 2026-03-03: sonnet's output at $20/MTok from then on.
    emu.change_price(
        "claude-sonnet-4-6",
        datetime!(2026-03-03 00:00 UTC),
        Prices::new(3_000_000, 3_750_000, 6_000_000, 300_000, 20_000_000),
    );
    let cost_path = report_path(
        COST,
        &[
            ("starting_at", &start),
            ("ending_at", &end),
            ("group_by[]", "description"),
        ],
    );
    let cost = admin.get(&cost_path).await.json();
    let out = cost["data"][1]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["token_type"] == "output_tokens")
        .unwrap()
        .clone();
    assert_eq!(
        out["amount"],
        cents(2 * day3.output_tokens, 20_000_000, 1_000)
    );

    // Whole cents per line.
    emu.set_cost_rounding(CostRounding::Decimals(0));
    let rounded = admin.get(&cost_path).await.json();
    for bucket in rounded["data"].as_array().unwrap() {
        for row in bucket["results"].as_array().unwrap() {
            let amount = row["amount"].as_str().unwrap();
            assert!(!amount.contains('.'), "{amount}");
        }
    }
}
