//! Damaged results files (one malformed, garbage or missing line), decoded by the workspace's
//! own client the way the queue engine reads them.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use support::KEY;
use tenantry_batch::{Config, Error, RetryPolicy};
use tenantry_emulator::{Emulator, Endpoint, Fault, FaultKind, FaultPlan};

const N: usize = 20;

/// An emulator with an ended batch of [`N`] requests, the batch id and its results file's
/// `custom_id`s in file order (read before any fault is installed).
async fn ended_batch() -> (Emulator, String, Vec<String>) {
    let emu = Emulator::builder()
        .api_key(KEY)
        .batch_latency(Duration::ZERO)
        .seed(11)
        .start()
        .await
        .unwrap();
    let raw = support::Client::new(&emu);
    let id = raw.create(support::requests(N)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = raw
        .get(&format!("/v1/messages/batches/{id}/results"))
        .await
        .text;
    let ids = support::results_lines(&text)
        .iter()
        .map(|line| line["custom_id"].as_str().unwrap().to_owned())
        .collect();
    (emu, id, ids)
}

fn client(emu: &Emulator, retries: u32) -> tenantry_batch::Client {
    let retry = RetryPolicy::default()
        .max_retries(retries)
        .initial_delay(Duration::from_millis(5))
        .jitter(false);
    tenantry_batch::Client::new(Config::new(KEY).base_url(emu.base_url()).retry(retry)).unwrap()
}

async fn decode(
    emu: &Emulator,
    id: &str,
    retries: u32,
) -> Vec<Result<tenantry_batch::types::BatchResult, Error>> {
    client(emu, retries)
        .batches()
        .results(id)
        .await
        .unwrap()
        .collect()
        .await
}

fn ok_ids(items: &[Result<tenantry_batch::types::BatchResult, Error>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item.as_ref().ok().map(|r| r.custom_id.clone()))
        .collect()
}

fn without(ids: &[String], k: usize) -> Vec<String> {
    let mut rest = ids.to_vec();
    rest.remove(k);
    rest
}

#[tokio::test]
async fn badline_yields_malformed_result_naming_its_custom_id_and_every_other_result() {
    let (emu, id, ids) = ended_batch().await;
    emu.set_faults("results:badline=3".parse().unwrap());
    let items = decode(&emu, &id, 2).await;
    assert_eq!(items.len(), N);
    match &items[2] {
        Err(Error::MalformedResult {
            line, custom_id, ..
        }) => {
            assert_eq!(*line, 3);
            assert_eq!(custom_id.as_deref(), Some(ids[2].as_str()));
        }
        other => panic!("line 3: {other:?}"),
    }
    assert_eq!(ok_ids(&items), without(&ids, 2));
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::MalformedLine),
        1
    );
    assert_eq!(
        counts.requests(Endpoint::BatchResults),
        2,
        "a named bad line is a received line: no re-download"
    );
}

#[tokio::test]
async fn garbage_yields_malformed_result_without_custom_id_and_every_other_result() {
    let (emu, id, ids) = ended_batch().await;
    emu.set_faults(FaultPlan::new().script(
        Endpoint::BatchResults,
        Fault::GarbageLine { line: N as u64 },
        1,
    ));
    let items = decode(&emu, &id, 2).await;
    assert_eq!(items.len(), N);
    match &items[N - 1] {
        Err(Error::MalformedResult {
            line, custom_id, ..
        }) => {
            assert_eq!(*line, N as u64);
            assert_eq!(*custom_id, None);
        }
        other => panic!("last line: {other:?}"),
    }
    assert_eq!(ok_ids(&items), without(&ids, N - 1));
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::GarbageLine),
        1
    );
    assert_eq!(counts.requests(Endpoint::BatchResults), 2);
}

#[tokio::test]
async fn dropline_on_every_download_yields_the_rest_then_missing_results_after_the_resumes() {
    let (emu, id, ids) = ended_batch().await;
    emu.set_faults(FaultPlan::new().script(
        Endpoint::BatchResults,
        Fault::DropLine { line: 3 },
        u64::MAX,
    ));
    let retries = 2;
    let mut items = decode(&emu, &id, retries).await;
    match items.pop() {
        Some(Err(Error::MissingResults { received, expected })) => {
            assert_eq!((received, expected), (N as u64 - 1, N as u64));
        }
        other => panic!("the stream should end with a result missing, got {other:?}"),
    }
    assert_eq!(ok_ids(&items), without(&ids, 2), "each other result once");
    assert_eq!(items.len(), N - 1);
    let counts = emu.fault_counts();
    let downloads = 1 + u64::from(retries);
    assert_eq!(counts.requests(Endpoint::BatchResults), 1 + downloads);
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::DroppedLine),
        downloads,
        "the line is missing from every download"
    );
}

#[tokio::test]
async fn dropline_at_probability_one_is_missing_for_good_too() {
    let (emu, id, ids) = ended_batch().await;
    emu.set_faults("results:dropline=1@1".parse().unwrap());
    let mut items = decode(&emu, &id, 1).await;
    assert!(
        matches!(items.pop(), Some(Err(Error::MissingResults { .. }))),
        "{items:?}"
    );
    assert_eq!(ok_ids(&items), without(&ids, 0));
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::BatchResults, FaultKind::DroppedLine),
        2
    );
}

#[tokio::test]
async fn dropline_once_is_healed_by_the_clients_resume() {
    let (emu, id, ids) = ended_batch().await;
    emu.set_faults("results:dropline=5".parse().unwrap());
    let items = decode(&emu, &id, 2).await;
    let mut got = ok_ids(&items);
    assert_eq!(got.len(), N, "{items:?}");
    got.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(got, all);
    // The first download lacked line 5; the client downloaded again and found it.
    assert_eq!(emu.fault_counts().requests(Endpoint::BatchResults), 1 + 2);
}

#[tokio::test]
async fn damaged_files_end_cleanly_with_the_expected_line_count() {
    let (emu, id, ids) = ended_batch().await;
    let raw = support::Client::new(&emu);
    let path = format!("/v1/messages/batches/{id}/results");
    let plain = raw.get(&path).await.text;
    let plain_lines: Vec<&str> = plain.lines().collect();

    emu.set_faults("results:dropline=4".parse().unwrap());
    let answer = raw.get(&path).await; // the whole body arrives: no transport error
    assert_eq!(answer.status, 200);
    assert!(answer.text.ends_with('\n'));
    let mut expected = plain_lines.clone();
    expected.remove(3);
    assert_eq!(answer.text.lines().collect::<Vec<_>>(), expected);

    emu.set_faults("results:badline=4".parse().unwrap());
    let text = raw.get(&path).await.text;
    assert_eq!(text.len(), plain.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N);
    let prefix = format!("{{\"custom_id\":\"{}\",\"result\":{{", ids[3]);
    assert!(lines[3].starts_with(&prefix), "{}", lines[3]);
    assert!(serde_json::from_str::<serde_json::Value>(lines[3]).is_err());
    for (k, (a, b)) in lines.iter().zip(&plain_lines).enumerate() {
        if k != 3 {
            assert_eq!(a, b);
        }
    }

    emu.set_faults("results:garbage=4".parse().unwrap());
    let text = raw.get(&path).await.text;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N);
    assert_eq!(lines[3], "not json at all");
}
