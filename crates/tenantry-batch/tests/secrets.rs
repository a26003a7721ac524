//! The API key never appears in any `Debug`, `Display` or error text.

mod support;

use futures::TryStreamExt;
use support::*;
use tenantry_batch::{ApiKey, BatchRequests, Client, Config, Error, ListParams, RetryPolicy};
use tenantry_emulator::{Endpoint, Fault, FaultPlan};

const SECRET_PART: &str = "never-print-me";

fn assert_hidden(text: &str) {
    assert!(!text.contains(SECRET_PART), "the key leaked into: {text}");
}

fn assert_error_hidden(error: &Error) {
    assert_hidden(&error.to_string());
    assert_hidden(&format!("{error:?}"));
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        assert_hidden(&cause.to_string());
        assert_hidden(&format!("{cause:?}"));
        source = cause.source();
    }
}

#[tokio::test]
async fn key_is_hidden_everywhere() {
    let emu = emulator(FaultPlan::new()).await;
    let config = config(&emu);
    assert_hidden(&format!("{config:?}"));
    assert_hidden(&format!("{:?}", ApiKey::new(KEY)));
    let client = Client::new(config.clone()).unwrap();
    assert_hidden(&format!("{client:?}"));
    assert_hidden(&format!("{:?}", client.batches()));
    assert_hidden(&format!("{:?}", client.messages()));

    // A wrong key: the 401 names the problem, not the key.
    let wrong = Client::new(Config::new(format!("{KEY}-wrong")).base_url(emu.base_url())).unwrap();
    let err = wrong
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_error_hidden(&err);

    // A transport error after retries.
    let dead = Client::new(
        Config::new(KEY)
            .base_url("http://127.0.0.1:9")
            .retry(RetryPolicy::none()),
    )
    .unwrap();
    let err = dead.batches().retrieve("msgbatch_x").await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)));
    assert_error_hidden(&err);

    // An unknown create outcome, with its candidates.
    emu.set_faults(FaultPlan::new().script(Endpoint::CreateBatch, Fault::ConnectionReset, 1));
    let err = client.batches().create(requests(1)).await.unwrap_err();
    assert!(matches!(err, Error::CreateOutcomeUnknown { .. }));
    assert_error_hidden(&err);

    // Validation and results errors.
    assert_error_hidden(
        &client
            .batches()
            .create(BatchRequests::new())
            .await
            .unwrap_err(),
    );
    let batch = client.batches().create(requests(2)).await.unwrap();
    let err = client.batches().results(&batch.id).await.unwrap_err();
    assert_error_hidden(&err);
    client
        .batches()
        .wait(&batch.id, poll(), |b| assert_hidden(&format!("{b:?}")))
        .await
        .unwrap();
    let stream = client.batches().results(&batch.id).await.unwrap();
    assert_hidden(&format!("{stream:?}"));
    let _: Vec<_> = stream.try_collect().await.unwrap();
}
