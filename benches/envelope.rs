//! Envelope costs on the request path: serializing and reading an `Envelope<Page<T>>` against
//! the bare `Page<T>` (what the envelope adds), and the envelope `Json` extractor (syntax pass,
//! then a typed pass that tracks the path for error pointers) against `axum::Json`.
//!
//! Run with: `cargo bench -p tenantry-benches --bench envelope`

use std::hint::black_box;

use axum::body::Body;
use axum::extract::FromRequest;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use tenantry_envelope::{Cursor, Envelope, Page};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    id: String,
    tenant: String,
    words: u32,
    cost_micros: u64,
    text: String,
}

fn summaries(n: usize) -> Vec<Summary> {
    (0..n)
        .map(|i| Summary {
            id: format!("sum_{i:08}"),
            tenant: "acme".to_owned(),
            words: 120,
            cost_micros: 1_234_567,
            text: "The quarterly report shows steady growth in all regions.".to_owned(),
        })
        .collect()
}

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope_wire");
    for n in [1_usize, 100] {
        let page = Page::more(summaries(n), Cursor::new("after:sum_00000099"));
        let envelope = Envelope::success(page.clone());
        let bare_json = serde_json::to_vec(&page).expect("serialize");
        let envelope_json = serde_json::to_vec(&envelope).expect("serialize");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("serialize_bare_page", n),
            &page,
            |b, page| {
                b.iter(|| serde_json::to_vec(black_box(page)).expect("serialize"));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("serialize_envelope", n),
            &envelope,
            |b, envelope| {
                b.iter(|| serde_json::to_vec(black_box(envelope)).expect("serialize"));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("read_bare_page", n),
            &bare_json,
            |b, json| {
                b.iter(|| serde_json::from_slice::<Page<Summary>>(black_box(json)).expect("read"));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("read_envelope", n),
            &envelope_json,
            |b, json| {
                b.iter(|| {
                    serde_json::from_slice::<Envelope<Page<Summary>>>(black_box(json))
                        .expect("read")
                });
            },
        );
    }
    group.finish();
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read by serde only
struct Submit {
    tenant: String,
    requests: Vec<Summary>,
}

fn request(body: &bytes::Bytes) -> Request<Body> {
    Request::post("/v1/jobs")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.clone()))
        .expect("request")
}

fn extract(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("envelope_extract");
    for n in [1_usize, 100] {
        let body =
            serde_json::to_vec(&serde_json::json!({"tenant": "acme", "requests": summaries(n)}))
                .expect("serialize");
        let body = bytes::Bytes::from(body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("axum_json", n), &body, |b, body| {
            b.to_async(&runtime).iter(|| async {
                axum::Json::<Submit>::from_request(request(body), &())
                    .await
                    .expect("extract")
            });
        });
        group.bench_with_input(BenchmarkId::new("envelope_json", n), &body, |b, body| {
            b.to_async(&runtime).iter(|| async {
                tenantry_envelope::axum::Json::<Submit>::from_request(request(body), &())
                    .await
                    .expect("extract")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, wire, extract);
criterion_main!(benches);
