//! The Message Batches endpoints end to end over HTTP: objects, lifecycle, list paging,
//! cancel, delete, results, workspace scoping.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Client, emulator, request, requests, results_lines};

#[tokio::test]
async fn create_returns_a_complete_in_progress_batch() {
    let emu = emulator(1_000).await;
    let client = Client::new(&emu);
    let answer = client.create(requests(3)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.headers["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_011C")
    );
    assert_eq!(answer.headers["content-type"], "application/json");
    let batch = answer.json();
    let keys: Vec<&str> = batch
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "type",
        "processing_status",
        "request_counts",
        "ended_at",
        "created_at",
        "expires_at",
        "archived_at",
        "cancel_initiated_at",
        "results_url",
    ] {
        assert!(keys.contains(&key), "missing {key}");
    }
    assert_eq!(keys.len(), 10);
    assert!(batch["id"].as_str().unwrap().starts_with("msgbatch_01"));
    assert_eq!(batch["type"], "message_batch");
    assert_eq!(batch["processing_status"], "in_progress");
    assert_eq!(
        batch["request_counts"],
        json!({"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    );
    assert!(batch["ended_at"].is_null() && batch["archived_at"].is_null());
    assert!(batch["cancel_initiated_at"].is_null() && batch["results_url"].is_null());
    let created = batch["created_at"].as_str().unwrap();
    assert_eq!(created.len(), "2024-09-24T18:37:24.100435Z".len());
    assert!(created.ends_with('Z'));
    let created =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let expires = time::OffsetDateTime::parse(
        batch["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::hours(24));
}

#[tokio::test]
async fn batch_ends_after_latency_and_serves_results() {
    let emu = emulator(1_000).await;
    let client = Client::new(&emu);
    let id = client.create(requests(5)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.clock().advance(Duration::from_millis(999));
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["processing_status"], "in_progress");
    assert_eq!(batch["request_counts"]["processing"], 5);
    emu.clock().advance(Duration::from_millis(1));
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["processing_status"], "ended");
    assert_eq!(
        batch["request_counts"],
        json!({"processing": 0, "succeeded": 5, "errored": 0, "canceled": 0, "expired": 0})
    );
    let url = batch["results_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("{}/v1/messages/batches/{id}/results", emu.base_url())
    );
    let results = client.get(url).await;
    assert_eq!(results.status, 200);
    assert_eq!(results.headers["content-type"], "application/x-jsonl");
    assert!(results.text.ends_with('\n') && !results.text.contains('\r'));
    let lines = results_lines(&results.text);
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let message = &line["result"]["message"];
        assert_eq!(line["result"]["type"], "succeeded");
        assert!(message["id"].as_str().unwrap().starts_with("msg_01"));
        assert_eq!(message["usage"]["service_tier"], "batch");
        let n: usize = line["custom_id"].as_str().unwrap()[4..].parse().unwrap();
        assert_eq!(
            message["content"][0]["text"],
            format!("Echo: prompt number {n}")
        );
    }
}

#[tokio::test]
async fn params_problems_become_errored_lines() {
    let emu = emulator(0).await;
    let client = Client::new(&emu);
    let mut bad_model = request("bad-model", "x");
    bad_model["params"]["model"] = json!("claude-nonexistent");
    let mut zero = request("zero", "x");
    zero["params"]["max_tokens"] = json!(0);
    let mut stream = request("stream", "x");
    stream["params"]["stream"] = json!(true);
    let answer = client
        .create(json!([request("ok", "hi"), bad_model, zero, stream]))
        .await;
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["request_counts"]["succeeded"], 1);
    assert_eq!(batch["request_counts"]["errored"], 3);
    let lines = results_lines(
        &client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .text,
    );
    let by_id = |cid: &str| {
        lines
            .iter()
            .find(|l| l["custom_id"] == cid)
            .unwrap()
            .clone()
    };
    let line = by_id("bad-model");
    assert_eq!(line["result"]["type"], "errored");
    assert_eq!(line["result"]["error"]["type"], "error");
    assert_eq!(line["result"]["error"]["error"]["type"], "not_found_error");
    assert!(line["result"]["error"].get("request_id").is_some());
    assert_eq!(
        by_id("zero")["result"]["error"]["error"]["type"],
        "invalid_request_error"
    );
    assert_eq!(
        by_id("stream")["result"]["error"]["error"]["type"],
        "invalid_request_error"
    );
}

#[tokio::test]
async fn cancel_then_ended_with_canceled_requests() {
    let emu = emulator(10_000).await;
    let client = Client::new(&emu);
    let id = client.create(requests(10)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.clock().advance(Duration::from_millis(1_500));
    let canceled = client
        .post(&format!("/v1/messages/batches/{id}/cancel"), json!({}))
        .await
        .json();
    assert_eq!(canceled["processing_status"], "canceling");
    assert!(canceled["cancel_initiated_at"].is_string());
    assert_eq!(canceled["request_counts"]["processing"], 10);
    // A repeated cancel while canceling changes nothing.
    let again = client
        .post(&format!("/v1/messages/batches/{id}/cancel"), json!({}))
        .await
        .json();
    assert_eq!(
        again["cancel_initiated_at"],
        canceled["cancel_initiated_at"]
    );
    // Delete is refused while canceling.
    let refused = client
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
            None,
        )
        .await;
    assert_eq!(refused.status, 400);
    emu.clock().advance(Duration::from_millis(500));
    let ended = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(ended["processing_status"], "ended");
    // Requests 0 and 1 had started by 1.5 s; the other 8 are canceled.
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 2, "errored": 0, "canceled": 8, "expired": 0})
    );
    let lines = results_lines(
        &client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .text,
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["result"] == json!({"type": "canceled"}))
            .count(),
        8
    );
    let late = client
        .post(&format!("/v1/messages/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(late.status, 400);
    assert_eq!(late.error_type(), "invalid_request_error");
}

#[tokio::test]
async fn expiry_and_archive_follow_the_clock() {
    let emu = emulator(48 * 3_600 * 1_000).await;
    let client = Client::new(&emu);
    let id = client.create(requests(4)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let early = client
        .get(&format!("/v1/messages/batches/{id}/results"))
        .await;
    assert_eq!(early.status, 400);
    emu.clock().advance(Duration::from_secs(24 * 3_600));
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["processing_status"], "ended");
    assert_eq!(batch["ended_at"], batch["expires_at"]);
    assert_eq!(batch["request_counts"]["expired"], 2);
    assert_eq!(batch["request_counts"]["succeeded"], 2);
    let lines = results_lines(
        &client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .text,
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["result"] == json!({"type": "expired"}))
            .count(),
        2
    );
    emu.clock().advance(Duration::from_secs(28 * 24 * 3_600));
    let archived = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert!(archived["archived_at"].is_string());
    assert_eq!(
        client
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn delete_only_when_ended_then_404() {
    let emu = emulator(100).await;
    let client = Client::new(&emu);
    let id = client.create(requests(1)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/messages/batches/{id}");
    assert_eq!(
        client
            .send(reqwest::Method::DELETE, &path, None)
            .await
            .status,
        400
    );
    emu.clock().advance(Duration::from_millis(100));
    let deleted = client.send(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(
        deleted.json(),
        json!({"id": id, "type": "message_batch_deleted"})
    );
    for answer in [
        client.get(&path).await,
        client.get(&format!("{path}/results")).await,
        client.send(reqwest::Method::DELETE, &path, None).await,
        client.post(&format!("{path}/cancel"), json!({})).await,
    ] {
        assert_eq!(answer.status, 404);
        assert_eq!(answer.error_type(), "not_found_error");
        assert_eq!(
            answer.json()["request_id"],
            answer.headers["request-id"].to_str().unwrap()
        );
    }
    let list = client.get("/v1/messages/batches").await.json();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn list_pages_newest_first_in_both_directions() {
    let emu = emulator(0).await;
    let client = Client::new(&emu);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            client.create(requests(1)).await.json()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        emu.clock().advance(Duration::from_millis(1));
    }
    let page = client.get("/v1/messages/batches?limit=2").await.json();
    let got: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["first_id"], ids[4].as_str());
    assert_eq!(page["last_id"], ids[3].as_str());
    let next = client
        .get(&format!("/v1/messages/batches?limit=2&after_id={}", ids[3]))
        .await
        .json();
    assert_eq!(next["first_id"], ids[2].as_str());
    assert_eq!(next["last_id"], ids[1].as_str());
    let last = client
        .get(&format!("/v1/messages/batches?limit=2&after_id={}", ids[1]))
        .await
        .json();
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["has_more"], false);
    let back = client
        .get(&format!(
            "/v1/messages/batches?limit=2&before_id={}&beta=true",
            ids[1]
        ))
        .await
        .json();
    assert_eq!(back["first_id"], ids[3].as_str());
    assert_eq!(back["last_id"], ids[2].as_str());
    assert_eq!(back["has_more"], true);
    let all = client.get("/v1/messages/batches").await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["has_more"], false);
    for bad in ["limit=0", "limit=1001", "limit=x"] {
        let answer = client.get(&format!("/v1/messages/batches?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(
            answer.message().starts_with("limit: "),
            "{}",
            answer.message()
        );
    }
    let empty = Client::with_key(&emu, "sk-other")
        .get("/v1/messages/batches")
        .await
        .json();
    assert_eq!(
        empty,
        json!({"data": [], "has_more": false, "first_id": null, "last_id": null})
    );
}

#[tokio::test]
async fn batches_are_scoped_to_the_workspace() {
    let emu = emulator(0).await;
    let a = Client::with_key(&emu, "sk-team-a");
    let b = Client::with_key(&emu, "sk-team-b");
    let other = Client::with_key(&emu, "sk-other");
    let id = a.create(requests(1)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b.get(&format!("/v1/messages/batches/{id}")).await.status,
        200
    );
    let hidden = other.get(&format!("/v1/messages/batches/{id}")).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(
        other
            .get(&format!("/v1/messages/batches/{id}/results"))
            .await
            .status,
        404
    );
    assert_eq!(
        b.get("/v1/messages/batches").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn results_url_follows_the_address_the_client_used() {
    let emu = emulator(0).await;
    let client = Client::new(&emu);
    let id = client.create(requests(1)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch: serde_json::Value = client
        .http
        .get(format!("{}/v1/messages/batches/{id}", emu.base_url()))
        .header("x-api-key", support::KEY)
        .header("anthropic-version", "2023-06-01")
        .header("host", "emulator.internal:8080")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        batch["results_url"],
        format!("http://emulator.internal:8080/v1/messages/batches/{id}/results")
    );
}

#[tokio::test]
async fn a_faster_clock_ends_batches_sooner() {
    let emu = tenantry_emulator::Emulator::builder()
        .api_key(support::KEY)
        .batch_latency(Duration::from_secs(10))
        .time_scale(1_000)
        .start()
        .await
        .unwrap();
    assert_eq!(emu.clock().scale(), 1_000);
    let client = Client::new(&emu);
    let id = client.create(requests(2)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 10 virtual seconds are 10 real milliseconds at this scale.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batch = client
        .get(&format!("/v1/messages/batches/{id}"))
        .await
        .json();
    assert_eq!(batch["processing_status"], "ended");
    assert_eq!(batch["request_counts"]["succeeded"], 2);
}
