//! The `date` header: every response carries the virtual clock's time, so a client can learn
//! the emulated API's clock offset from it, ahead of or behind the host's.

mod support;

use std::time::Duration;

use support::{Client, KEY};
use tenantry_emulator::Emulator;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn parse_http_date(answer: &support::Answer) -> OffsetDateTime {
    let values: Vec<_> = answer.headers.get_all("date").iter().collect();
    assert_eq!(values.len(), 1, "exactly one date header: {values:?}");
    let text = values[0].to_str().unwrap();
    let text = text
        .strip_suffix(" GMT")
        .unwrap_or_else(|| panic!("{text}"));
    time::PrimitiveDateTime::parse(
        text,
        time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
        ),
    )
    .unwrap_or_else(|e| panic!("{text}: {e}"))
    .assume_utc()
}

fn near(a: OffsetDateTime, b: OffsetDateTime, within: time::Duration) -> bool {
    (a - b).abs() <= within
}

async fn emulator() -> Emulator {
    Emulator::builder()
        .api_key(KEY)
        .batch_latency(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn date_follows_an_advanced_clock_and_agrees_with_created_at() {
    let emu = emulator().await;
    let client = Client::new(&emu);
    let before = client.get("/v1/messages/batches").await;
    assert!(near(
        parse_http_date(&before),
        OffsetDateTime::now_utc(),
        time::Duration::seconds(2)
    ));

    emu.clock().advance(Duration::from_secs(3_600));
    let created = client.create(support::requests(2)).await;
    assert_eq!(created.status, 200);
    let date = parse_http_date(&created);
    let ahead = date - OffsetDateTime::now_utc();
    assert!(
        near(
            date,
            OffsetDateTime::now_utc() + time::Duration::hours(1),
            time::Duration::seconds(2)
        ),
        "date {date} is {ahead} ahead of the host"
    );
    let created_at =
        OffsetDateTime::parse(created.json()["created_at"].as_str().unwrap(), &Rfc3339).unwrap();
    // `date` has whole seconds; `created_at` was read from the same clock just before.
    assert!(
        near(created_at, date, time::Duration::seconds(1)),
        "{created_at} vs {date}"
    );

    // Still an hour ahead later on (the offset is fixed at scale 1), on every kind of answer.
    let listed = client.get("/v1/messages/batches").await;
    let listed_at = OffsetDateTime::parse(
        listed.json()["data"][0]["created_at"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert_eq!(listed_at, created_at);
    let not_found = client.get("/v1/messages/batches/msgbatch_nope").await;
    assert_eq!(not_found.status, 404);
    let unauthorized = Client::with_key(&emu, "sk-wrong")
        .get("/v1/messages/batches")
        .await;
    assert_eq!(unauthorized.status, 401);
    for answer in [&listed, &not_found, &unauthorized] {
        assert!(near(
            parse_http_date(answer),
            OffsetDateTime::now_utc() + time::Duration::hours(1),
            time::Duration::seconds(2)
        ));
    }
}

#[tokio::test]
async fn date_follows_a_negative_offset_and_a_frozen_clock() {
    let emu = emulator().await;
    let client = Client::new(&emu);
    emu.clock().set_offset(time::Duration::minutes(-10));
    let answer = client.get("/v1/messages/batches").await;
    assert!(near(
        parse_http_date(&answer),
        OffsetDateTime::now_utc() - time::Duration::minutes(10),
        time::Duration::seconds(2)
    ));

    emu.clock().set_scale(0);
    emu.clock().advance(Duration::from_secs(86_400 * 400));
    let frozen = emu.clock().now().replace_nanosecond(0).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let answer = client.get("/v1/messages/batches").await;
    assert_eq!(parse_http_date(&answer), frozen);
}

#[tokio::test]
async fn the_clock_control_route_sets_a_signed_offset() {
    let emu = emulator().await;
    let client = Client::new(&emu);
    let set = client
        .post(
            "/_emulator/clock",
            serde_json::json!({"offset_ms": -3_600_000}),
        )
        .await;
    assert_eq!(set.status, 200);
    let now = OffsetDateTime::parse(set.json()["now"].as_str().unwrap(), &Rfc3339).unwrap();
    let expected = OffsetDateTime::now_utc() - time::Duration::hours(1);
    assert!(near(now, expected, time::Duration::seconds(2)), "{now}");
    assert!(near(
        parse_http_date(&set),
        expected,
        time::Duration::seconds(2)
    ));
    let bad = client
        .post("/_emulator/clock", serde_json::json!({"offset_ms": "soon"}))
        .await;
    assert_eq!(bad.status, 400);
}
