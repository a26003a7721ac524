//! The store behaviour suite: every behaviour is one generic async fn, run against SQLite
//! and PostgreSQL.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{params, take, tenant};
use tenantry_queue::{
    Error, InvalidRequest, JobFilter, JobState, JobStore, Lane, Position, Submission, SubmitOptions,
};

async fn submit_stores_the_request<S: JobStore>(store: S) {
    let t = tenant("acme");
    let options = SubmitOptions::new()
        .lane(Lane::Urgent)
        .max_wait(Duration::from_secs(5))
        .metadata(serde_json::json!({"ticket": 42}));
    let id = store
        .submit(&t, "triage", "u1", params("hi"), options)
        .await
        .unwrap();
    let job = store.job(&t, &id).await.unwrap();
    assert_eq!(job.id, id);
    assert_eq!(job.tenant, t);
    assert_eq!((job.feature.as_str(), job.user.as_str()), ("triage", "u1"));
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.lane, Lane::Urgent);
    assert_eq!(job.params, params("hi"));
    assert_eq!(job.metadata, serde_json::json!({"ticket": 42}));
    assert_eq!(job.max_wait, Duration::from_secs(5));
    assert_eq!(job.attempts, 0);
    assert!(job.result.is_none() && job.error.is_none() && job.finished_at.is_none());
}

async fn invalid_submission_stores_nothing<S: JobStore>(store: S) {
    let t = tenant("acme");
    let mut bad = params("hi");
    bad["max_tokens"] = 0.into();
    let err = store
        .submit(&t, "f", "u", bad.clone(), SubmitOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(InvalidRequest::MaxTokens)),
        "{err:?}"
    );
    let many = [
        Submission::new("f", "u", params("ok")),
        Submission::new("f", "u", bad),
    ];
    let err = store.submit_many(&t, &many).await.unwrap_err();
    assert!(
        matches!(err, Error::Invalid(InvalidRequest::Item { index: 1, .. })),
        "{err:?}"
    );
    let page = store.list(&t, &JobFilter::new(), None).await.unwrap();
    assert!(
        page.items().is_empty(),
        "rejected requests were stored: {:?}",
        page.items()
    );
    assert_eq!(store.latest_position(&t).await.unwrap(), Position::START);
}

async fn idempotency_key_returns_the_same_job<S: JobStore>(store: S) {
    let (a, b) = (tenant("a"), tenant("b"));
    let keyed = || SubmitOptions::new().idempotency_key("k1");
    let first = store
        .submit(&a, "f", "u", params("1"), keyed())
        .await
        .unwrap();
    let again = store
        .submit(&a, "f", "u", params("2"), keyed())
        .await
        .unwrap();
    assert_eq!(first, again);
    // The same key of another tenant is another job.
    let other = store
        .submit(&b, "f", "u", params("1"), keyed())
        .await
        .unwrap();
    assert_ne!(first, other);
    // In bulk: known keys map to their jobs, new ones are stored.
    let many = [
        Submission::new("f", "u", params("x"))
            .with_options(SubmitOptions::new().idempotency_key("k2")),
        Submission::new("f", "u", params("y")).with_options(keyed()),
        Submission::new("f", "u", params("z")),
    ];
    let ids = store.submit_many(&a, &many).await.unwrap();
    assert_eq!(ids[1], first);
    assert_ne!(ids[0], ids[2]);
    let page = store.list(&a, &JobFilter::new(), None).await.unwrap();
    assert_eq!(
        page.items().len(),
        3,
        "one keyed job, one new keyed job, one unkeyed job"
    );
    assert_eq!(store.job(&a, &first).await.unwrap().params, params("1"));
}

async fn submit_many_keeps_input_order<S: JobStore>(store: S) {
    let t = tenant("bulk");
    let many: Vec<_> = (0..2500)
        .map(|i| Submission::new("f", format!("u{i}"), params("x")))
        .collect();
    let ids = store.submit_many(&t, &many).await.unwrap();
    assert_eq!(ids.len(), 2500);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2500);
    for i in [0, 1234, 2499] {
        assert_eq!(store.job(&t, &ids[i]).await.unwrap().user, format!("u{i}"));
    }
    assert!(store.submit_many(&t, &[]).await.unwrap().is_empty());
}

/// A large call (on PostgreSQL a `COPY`) stores every character of every field as it came:
/// tabs, line ends, backslashes, quotes, the text of `COPY`'s NULL and end markers, non-ASCII.
async fn submit_many_stores_awkward_text_exactly<S: JobStore>(store: S) {
    let t = tenant("awkward");
    let awkward =
        "tab\there\nnew line\r\n back\\slash \\N \\. \"double\" 'single' é ü 漢字 🦀\u{7f}";
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(3_600);
    let mut events = store.subscribe(&t).await.unwrap();
    let many: Vec<_> = (0..300)
        .map(|i| {
            let options = SubmitOptions::new()
                .metadata(serde_json::json!({ "note": awkward, "i": i }))
                .deadline(later, tenantry_queue::DeadlinePolicy::Expire);
            Submission::new(format!("f\t{i}"), format!("{awkward} {i}"), params(awkward))
                .with_options(options)
        })
        .collect();
    let ids = store.submit_many(&t, &many).await.unwrap();
    assert_eq!(ids.len(), 300);
    for i in [0, 150, 299] {
        let job = store.job(&t, &ids[i]).await.unwrap();
        assert_eq!(job.feature, format!("f\t{i}"));
        assert_eq!(job.user, format!("{awkward} {i}"));
        assert_eq!(job.params, params(awkward));
        assert_eq!(job.metadata, serde_json::json!({ "note": awkward, "i": i }));
        assert_eq!(job.state, JobState::Queued);
        assert!(job.deadline.is_some());
    }
    let queued = take(&mut events, 300).await;
    let order: Vec<_> = queued.iter().map(|e| e.job_id.clone()).collect();
    assert_eq!(order, ids, "one queued event per job, in input order");
}

async fn another_tenants_job_is_not_found<S: JobStore>(store: S) {
    let (a, b) = (tenant("a"), tenant("b"));
    let id = store
        .submit(&a, "f", "u", params("secret"), SubmitOptions::new())
        .await
        .unwrap();
    assert!(store.job(&b, &id).await.unwrap_err().is_not_found());
    assert!(store.cancel(&b, &id).await.unwrap_err().is_not_found());
    assert!(
        store
            .list(&b, &JobFilter::new(), None)
            .await
            .unwrap()
            .items()
            .is_empty()
    );
    assert_eq!(
        store.job(&a, &id).await.unwrap().state,
        JobState::Queued,
        "b's cancel did nothing"
    );
    assert_eq!(store.latest_position(&b).await.unwrap(), Position::START);
}

async fn cancel_a_queued_job<S: JobStore>(store: S) {
    let t = tenant("acme");
    let id = store
        .submit(&t, "f", "u", params("x"), SubmitOptions::new())
        .await
        .unwrap();
    let job = store.cancel(&t, &id).await.unwrap();
    assert_eq!(job.state, JobState::Canceled);
    assert!(job.finished_at.is_some());
    // Idempotent, and no second event.
    assert_eq!(
        store.cancel(&t, &id).await.unwrap().state,
        JobState::Canceled
    );
    let events = store.events_after(&t, Position::START, 10).await.unwrap();
    let states: Vec<_> = events.iter().map(|e| (e.job_id.clone(), e.state)).collect();
    assert_eq!(
        states,
        [(id.clone(), JobState::Queued), (id, JobState::Canceled)]
    );
    assert!(events[0].position < events[1].position);
}

async fn list_pages_with_a_cursor_and_filters<S: JobStore>(store: S) {
    let t = tenant("acme");
    let mut ids = Vec::new();
    for i in 0..7 {
        let feature = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            store
                .submit(&t, feature, "u", params("x"), SubmitOptions::new())
                .await
                .unwrap(),
        );
    }
    store.cancel(&t, &ids[6]).await.unwrap();
    let filter = JobFilter::new().limit(3);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(&t, &filter, cursor.as_ref()).await.unwrap();
        assert!(page.items().len() <= 3);
        seen.extend(page.items().iter().map(|j| j.id.clone()));
        match page.next_cursor() {
            Some(next) => cursor = Some(tenantry_queue::Cursor::new(next.as_str())),
            None => break,
        }
    }
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let even = store
        .list(&t, &JobFilter::new().feature("even"), None)
        .await
        .unwrap();
    assert_eq!(even.items().len(), 4);
    let canceled = store
        .list(&t, &JobFilter::new().states([JobState::Canceled]), None)
        .await
        .unwrap();
    assert_eq!(
        canceled.items().iter().map(|j| &j.id).collect::<Vec<_>>(),
        [&ids[6]]
    );
    let bad = store
        .list(&t, &filter, Some(&tenantry_queue::Cursor::new("nonsense")))
        .await;
    assert!(
        matches!(bad, Err(tenantry_queue::Error::BadCursor)),
        "{bad:?}"
    );
}

async fn subscriptions_see_only_their_tenant_in_order<S: JobStore>(store: S) {
    let (a, b) = (tenant("a"), tenant("b"));
    let mut sub_a = store.subscribe(&a).await.unwrap();
    let mut sub_b = store.subscribe(&b).await.unwrap();
    let a1 = store
        .submit(&a, "f", "u", params("1"), SubmitOptions::new())
        .await
        .unwrap();
    let b1 = store
        .submit(&b, "f", "u", params("1"), SubmitOptions::new())
        .await
        .unwrap();
    let a2 = store
        .submit(&a, "f", "u", params("2"), SubmitOptions::new())
        .await
        .unwrap();
    store.cancel(&a, &a1).await.unwrap();
    let got: Vec<_> = take(&mut sub_a, 3)
        .await
        .into_iter()
        .map(|e| (e.job_id, e.state, e.tenant))
        .collect();
    assert_eq!(
        got,
        [
            (a1.clone(), JobState::Queued, a.clone()),
            (a2, JobState::Queued, a.clone()),
            (a1, JobState::Canceled, a.clone())
        ]
    );
    let got_b = take(&mut sub_b, 1).await;
    assert_eq!((got_b[0].job_id.clone(), got_b[0].tenant.clone()), (b1, b));
    support::assert_quiet(&mut sub_b, Duration::from_millis(300)).await;
}

async fn subscribe_after_replays_from_a_position<S: JobStore>(store: S) {
    let t = tenant("acme");
    let ids = store
        .submit_many(
            &t,
            &[
                Submission::new("f", "u", params("1")),
                Submission::new("f", "u", params("2")),
            ],
        )
        .await
        .unwrap();
    let mut all = store.subscribe_after(&t, Position::START).await.unwrap();
    let replay = take(&mut all, 2).await;
    assert_eq!(
        replay.iter().map(|e| e.job_id.clone()).collect::<Vec<_>>(),
        ids
    );
    let mut rest = store.subscribe_after(&t, replay[0].position).await.unwrap();
    assert_eq!(take(&mut rest, 1).await[0].job_id, ids[1]);
    assert_eq!(store.latest_position(&t).await.unwrap(), replay[1].position);
}

/// Submits made at once by many tasks (written in groups) for several tenants, some sharing an
/// idempotency key: each key ends as one job whose id every caller with that key gets, every
/// job has exactly one `queued` event in its own tenant's log, and no tenant sees another's.
async fn concurrent_submits_sharing_keys_get_one_job_per_key<S: JobStore + Clone>(store: S) {
    let tenants = [tenant("g1"), tenant("g2")];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let t = tenants[w % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..12 {
                // Every third submit uses a key that the tenant's other tasks use too.
                let options = if i % 3 == 0 {
                    SubmitOptions::new().idempotency_key(format!("shared-{i}"))
                } else {
                    SubmitOptions::new()
                };
                let id = store
                    .submit(&t, "f", &format!("w{w}-{i}"), params("x"), options)
                    .await
                    .unwrap();
                out.push((t.clone(), i, id));
            }
            out
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.unwrap());
    }
    for t in &tenants {
        let mine: Vec<_> = results.iter().filter(|(rt, ..)| rt == t).collect();
        for i in [0, 3, 6, 9] {
            let ids: HashSet<_> = mine
                .iter()
                .filter(|(_, n, _)| *n == i)
                .map(|r| &r.2)
                .collect();
            assert_eq!(ids.len(), 1, "one job for key shared-{i} of {t}");
        }
        let distinct: HashSet<_> = mine.iter().map(|r| r.2.clone()).collect();
        // 4 tasks x 8 unkeyed submits, and 4 keys.
        assert_eq!(distinct.len(), 4 * 8 + 4);
        let events = store.events_after(t, Position::START, 1_000).await.unwrap();
        let evented: Vec<_> = events.iter().map(|e| e.job_id.clone()).collect();
        assert_eq!(evented.len(), distinct.len(), "one event per job of {t}");
        assert_eq!(evented.iter().collect::<HashSet<_>>().len(), evented.len());
        assert!(evented.iter().all(|id| distinct.contains(id)));
        assert!(
            events
                .iter()
                .all(|e| e.state == JobState::Queued && &e.tenant == t)
        );
    }
}

async fn concurrent_writers_never_leave_a_gap<S: JobStore + Clone>(store: S) {
    let t = tenant("busy");
    let mut sub = store.subscribe(&t).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..15 {
                let id = store
                    .submit(
                        &t,
                        "f",
                        &format!("w{w}-{i}"),
                        params("x"),
                        SubmitOptions::new(),
                    )
                    .await
                    .unwrap();
                if i % 5 == 0 {
                    store.cancel(&t, &id).await.unwrap();
                }
                ids.push(id);
            }
            ids
        }));
    }
    let mut expected = 0;
    for task in tasks {
        expected += task.await.unwrap().len();
    }
    let cancels = 8 * 3;
    let events = take(&mut sub, expected + cancels).await;
    assert!(
        events.windows(2).all(|w| w[0].position < w[1].position),
        "positions in order"
    );
    let from_table = store
        .events_after(&t, Position::START, 10_000)
        .await
        .unwrap();
    assert_eq!(events, from_table, "the stream delivered exactly the log");
}

/// A request the client's batch builder refuses is refused at submit with the same
/// finding, and nothing is stored.
async fn the_batch_builders_rules_apply_at_submit<S: JobStore>(store: S) {
    use tenantry_batch::BatchRequests;
    use tenantry_batch::types::MessageParams;

    let t = tenant("acme");
    let mut bad_role = params("hi");
    bad_role["messages"][0]
        .as_object_mut()
        .unwrap()
        .remove("role");
    let mut text_tokens = params("hi");
    text_tokens["max_tokens"] = serde_json::json!(u64::from(u32::MAX) + 1);
    let mut bad_temperature = params("hi");
    bad_temperature["temperature"] = "warm".into();
    for bad in [bad_role, text_tokens, bad_temperature] {
        // The builder's path: decode into the typed request, then push.
        let builder = serde_json::from_value::<MessageParams>(bad.clone())
            .map_err(|e| e.to_string())
            .and_then(|p| {
                BatchRequests::new()
                    .push("job_1", &p)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        let Err(builder_says) = builder else {
            panic!("the builder accepted {bad}");
        };
        let err = store
            .submit(&t, "f", "u", bad.clone(), SubmitOptions::new())
            .await
            .unwrap_err();
        let Error::Invalid(InvalidRequest::Params { detail }) = &err else {
            panic!("{bad} gave {err:?}");
        };
        assert_eq!(detail, &builder_says, "same finding as the builder");
    }
    // A rule the builder checks after decoding: max_tokens 0.
    let mut zero = params("hi");
    zero["max_tokens"] = 0.into();
    let typed: MessageParams = serde_json::from_value(zero.clone()).unwrap();
    assert!(BatchRequests::new().push("job_1", &typed).is_err());
    let err = store
        .submit_many(&t, &[Submission::new("f", "u", zero)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(InvalidRequest::Item { index: 0, reason }) if **reason == InvalidRequest::MaxTokens),
        "{err:?}"
    );
    assert!(err.to_string().contains("item 0"), "{err}");
    let page = store.list(&t, &JobFilter::new(), None).await.unwrap();
    assert!(page.items().is_empty(), "stored: {:?}", page.items());
    assert_eq!(store.latest_position(&t).await.unwrap(), Position::START);
}

async fn consumer_cursors_move_forward_per_consumer_and_tenant<S: JobStore>(store: S) {
    let (a, b) = (tenant("a"), tenant("b"));
    assert_eq!(
        store.consumer_position("holds", &a).await.unwrap(),
        Position::START
    );
    store
        .advance_consumer("holds", &a, Position::from_i64(7))
        .await
        .unwrap();
    assert_eq!(
        store.consumer_position("holds", &a).await.unwrap(),
        Position::from_i64(7)
    );
    // Forward only: a lower position (a slower instance) is a no-op, a higher one moves it.
    store
        .advance_consumer("holds", &a, Position::from_i64(3))
        .await
        .unwrap();
    assert_eq!(
        store.consumer_position("holds", &a).await.unwrap(),
        Position::from_i64(7)
    );
    store
        .advance_consumer("holds", &a, Position::from_i64(9))
        .await
        .unwrap();
    assert_eq!(
        store.consumer_position("holds", &a).await.unwrap(),
        Position::from_i64(9)
    );
    // Per tenant and per consumer.
    assert_eq!(
        store.consumer_position("holds", &b).await.unwrap(),
        Position::START
    );
    assert_eq!(
        store.consumer_position("webhooks", &a).await.unwrap(),
        Position::START
    );
    store
        .advance_consumer("webhooks", &a, Position::from_i64(2))
        .await
        .unwrap();
    store
        .advance_consumer("holds", &b, Position::from_i64(1))
        .await
        .unwrap();
    assert_eq!(
        store.consumer_position("webhooks", &a).await.unwrap(),
        Position::from_i64(2)
    );
    assert_eq!(
        store.consumer_position("holds", &b).await.unwrap(),
        Position::from_i64(1)
    );
    assert_eq!(
        store.consumer_position("holds", &a).await.unwrap(),
        Position::from_i64(9)
    );
}

on_both_stores!(
    consumer_cursors_move_forward_per_consumer_and_tenant,
    submit_stores_the_request,
    invalid_submission_stores_nothing,
    the_batch_builders_rules_apply_at_submit,
    idempotency_key_returns_the_same_job,
    submit_many_keeps_input_order,
    submit_many_stores_awkward_text_exactly,
    another_tenants_job_is_not_found,
    cancel_a_queued_job,
    list_pages_with_a_cursor_and_filters,
    subscriptions_see_only_their_tenant_in_order,
    subscribe_after_replays_from_a_position,
    concurrent_writers_never_leave_a_gap,
    concurrent_submits_sharing_keys_get_one_job_per_key,
);

/// Backend-specific checks that need raw SQL or a reopened store.
mod raw {
    use super::{Error, JobState, JobStore, Position, SubmitOptions, params, tenant};
    use pretty_assertions::assert_eq;
    use tenantry_core::migrate::MigrateError;

    #[tokio::test]
    async fn sqlite_finished_jobs_cannot_be_canceled_and_migrations_are_idempotent() {
        let (store, db) = crate::support::sqlite().await;
        let t = tenant("acme");
        let id = store
            .submit(&t, "f", "u", params("x"), SubmitOptions::new())
            .await
            .unwrap();
        sqlx::query("UPDATE tenantry_queue_jobs SET state = 'succeeded' WHERE id = ?")
            .bind(id.as_str())
            .execute(db.pool())
            .await
            .unwrap();
        let err = store.cancel(&t, &id).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::AlreadyFinished {
                    state: JobState::Succeeded,
                    ..
                }
            ),
            "{err:?}"
        );
        tenantry_queue::SqliteStore::open(db.pool().clone())
            .await
            .unwrap();
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM tenantry_migrations WHERE component = 'queue' ORDER BY version",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        sqlx::query("INSERT INTO tenantry_migrations VALUES ('queue', 99, 'future', '', 0)")
            .execute(db.pool())
            .await
            .unwrap();
        let err = tenantry_queue::SqliteStore::open(db.pool().clone())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Migrate(MigrateError::TooNew {
                    component: "queue",
                    found: 99,
                    supported: 11
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn postgres_finished_jobs_cannot_be_canceled() {
        let (store, db) = crate::support::postgres().await;
        let t = tenant("acme");
        let id = store
            .submit(&t, "f", "u", params("x"), SubmitOptions::new())
            .await
            .unwrap();
        sqlx::query("UPDATE tenantry_queue_jobs SET state = 'expired' WHERE id = $1")
            .bind(id.as_str())
            .execute(db.pool())
            .await
            .unwrap();
        let err = store.cancel(&t, &id).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::AlreadyFinished {
                    state: JobState::Expired,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn sqlite_consumer_cursors_survive_a_reopen() {
        let (store, db) = crate::support::sqlite().await;
        let t = tenant("acme");
        store
            .advance_consumer("holds", &t, Position::from_i64(5))
            .await
            .unwrap();
        drop(store);
        let reopened = tenantry_queue::SqliteStore::open(db.pool().clone())
            .await
            .unwrap();
        assert_eq!(
            reopened.consumer_position("holds", &t).await.unwrap(),
            Position::from_i64(5)
        );
    }

    #[tokio::test]
    async fn postgres_consumer_cursors_survive_a_reopen() {
        let (store, db) = crate::support::postgres().await;
        let t = tenant("acme");
        store
            .advance_consumer("holds", &t, Position::from_i64(5))
            .await
            .unwrap();
        drop(store);
        let reopened = tenantry_queue::PgStore::open(db.pool().clone())
            .await
            .unwrap();
        assert_eq!(
            reopened.consumer_position("holds", &t).await.unwrap(),
            Position::from_i64(5)
        );
    }

    /// A database migrated by the queue's own runner of earlier versions (versions in
    /// `tenantry_queue_migrations`, up to 8) is adopted: nothing applied twice, the next
    /// migration applied, the stored jobs still there.
    #[tokio::test]
    async fn sqlite_a_database_of_the_old_runner_is_adopted() {
        let (store, db) = crate::support::sqlite().await;
        let t = tenant("acme");
        let id = store
            .submit(&t, "f", "u", params("x"), SubmitOptions::new())
            .await
            .unwrap();
        drop(store);
        for statement in [
            "DELETE FROM tenantry_migrations WHERE component = 'queue'",
            "DROP TABLE tenantry_queue_cursors",
            "ALTER TABLE tenantry_queue_events DROP COLUMN detail",
            "CREATE TABLE tenantry_queue_migrations \
             (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            "INSERT INTO tenantry_queue_migrations (version, name, applied_at) \
             VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0), (5, 'e', 0), (6, 'f', 0), \
             (7, 'g', 0), (8, 'h', 0)",
        ] {
            sqlx::query(statement).execute(db.pool()).await.unwrap();
        }
        let store = tenantry_queue::SqliteStore::open(db.pool().clone())
            .await
            .unwrap();
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM tenantry_migrations WHERE component = 'queue' ORDER BY version",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(store.job(&t, &id).await.unwrap().state, JobState::Queued);
        assert_eq!(
            store.consumer_position("holds", &t).await.unwrap(),
            Position::START
        );
    }
}
