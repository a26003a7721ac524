//! The ledger on real PostgreSQL and SQLite: idempotency, snapshots, corrections, reports.

mod support;

use std::sync::Arc;

use support::{at, tenant, tokens, usage};
use tenantry_cost::{Error, GroupBy, Lane, Nanos, SpendQuery, UnixMicros};

#[tokio::test]
async fn same_request_twice_is_one_line() {
    for (name, ledger, _db) in support::both().await {
        let u = usage(
            "req-1",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000, 0, 0, 0, 1_000),
        );
        let first = ledger.record(&u).await.unwrap();
        assert!(!first.duplicate, "{name}");
        assert_eq!(first.cost.cost, Nanos(6_000_000)); // $1/MTok × 1000 + $5/MTok × 1000
        let second = ledger.record(&u).await.unwrap();
        assert!(second.duplicate, "{name}");
        assert_eq!(second.line_id, first.line_id);
        assert_eq!(second.cost, first.cost);
        // A different source with the same request id is a different line.
        let mut other = u.clone();
        other.source = "anthropic-messages".into();
        assert!(!ledger.record(&other).await.unwrap().duplicate);
        assert_eq!(
            ledger.lines(&tenant("acme")).await.unwrap().len(),
            2,
            "{name}"
        );
    }
}

#[tokio::test]
async fn concurrent_recorders_on_postgres_cannot_double_a_line() {
    let (ledger, _db) = support::pg_ledger().await;
    let ledger = Arc::new(ledger);
    let u = usage(
        "req-race",
        "claude-sonnet-4-5",
        Lane::Batch,
        tokens(5_000, 100, 0, 2_000, 700),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (l, u) = (ledger.clone(), u.clone());
        tasks.push(tokio::spawn(async move { l.record(&u).await.unwrap() }));
    }
    let mut fresh = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        fresh += usize::from(!r.duplicate);
        ids.insert(r.line_id);
    }
    assert_eq!(fresh, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(ledger.lines(&tenant("acme")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn record_batch_skips_duplicates() {
    for (name, ledger, _db) in support::both().await {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                usage(
                    &format!("b-{i}"),
                    "claude-haiku-4-5",
                    Lane::Batch,
                    tokens(i, 0, 0, 0, i),
                )
            })
            .collect();
        assert_eq!(ledger.record_batch(&batch).await.unwrap(), 50, "{name}");
        assert_eq!(
            ledger.record_batch(&batch[..10]).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(ledger.lines(&tenant("acme")).await.unwrap().len(), 50);
    }
}

#[tokio::test]
async fn a_line_keeps_its_snapshot_and_can_be_rederived() {
    for (name, ledger, _db) in support::both().await {
        let mut u = usage(
            "snap",
            "claude-sonnet-4-6",
            Lane::Batch,
            tokens(300_000, 1_000, 2_000, 4_000, 9_000),
        );
        u.inference_geo = Some("us".into());
        let rec = ledger.record(&u).await.unwrap();
        let line = ledger.line(rec.line_id).await.unwrap();
        assert_eq!(
            line.snapshot.price_id, "claude-sonnet-4-6@2026-02-17",
            "{name}"
        );
        assert_eq!(line.snapshot.batch_permille, 500);
        assert_eq!(line.snapshot.geo_permille, 1_100);
        assert_eq!(line.snapshot.rates.cache_write_1h, 6_000_000);
        assert_eq!(line.rederive().unwrap(), line.stored);
        assert_eq!(line.stored, rec.cost);
        // 300000×$3 + 1000×$3.75 + 2000×$6 + 4000×$0.30 + 9000×$15 per MTok
        // = 1_051_950 µUSD = 1_051_950_000 nano-USD, × 0.5 × 1.1
        assert_eq!(line.stored.cost, Nanos(578_572_500), "{name}");
        assert_eq!(line.stored.standard_cost, Nanos(1_157_145_000), "{name}");
    }
}

#[tokio::test]
async fn tier_and_region_multipliers_are_copied_at_insert() {
    for (name, ledger, _db) in support::both().await {
        ledger
            .multipliers()
            .set_feature_tier("premium", 15_000, at(2026, 1, 1))
            .await
            .unwrap();
        ledger
            .multipliers()
            .set_region("eu", 11_000, at(2026, 1, 1))
            .await
            .unwrap();
        let mut u = usage(
            "tiered",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000_000, 0, 0, 0, 0),
        );
        u.feature_tier = Some("premium".into());
        u.region = Some("eu".into());
        let first = ledger.record(&u).await.unwrap();
        assert_eq!(first.cost.cost, Nanos(1_650_000_000), "{name}"); // $1 × 1.5 × 1.1
        // A later multiplier change does not touch the recorded line.
        ledger
            .multipliers()
            .set_feature_tier("premium", 20_000, at(2026, 3, 5))
            .await
            .unwrap();
        let line = ledger.line(first.line_id).await.unwrap();
        assert_eq!(line.snapshot.tier_bp, 15_000);
        assert_eq!(line.stored.cost, Nanos(1_650_000_000));
        // New usage after the change gets the new multiplier.
        u.request_id = "tiered-2".into();
        assert_eq!(
            ledger.record(&u).await.unwrap().cost.cost,
            Nanos(2_200_000_000)
        );
        u.request_id = "tiered-3".into();
        u.feature_tier = Some("gold".into());
        assert!(matches!(
            ledger.record(&u).await,
            Err(Error::UnknownMultiplier { .. })
        ));
    }
}

#[tokio::test]
async fn reversal_cancels_exactly_and_never_updates() {
    for (name, ledger, _db) in support::both().await {
        let u = usage(
            "orig",
            "claude-opus-4-5",
            Lane::Batch,
            tokens(12_345, 67, 89, 1_011, 1_213),
        );
        let orig = ledger.record(&u).await.unwrap();
        let rev = ledger
            .reverse(orig.line_id, "corrections", "orig-reversal")
            .await
            .unwrap();
        assert_eq!(rev.cost.cost, -orig.cost.cost, "{name}");
        assert_eq!(rev.cost.standard_cost, -orig.cost.standard_cost);
        let again = ledger
            .reverse(orig.line_id, "corrections", "orig-reversal")
            .await
            .unwrap();
        assert!(again.duplicate);
        let lines = ledger.lines(&tenant("acme")).await.unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].corrects_id, Some(orig.line_id));
        assert_eq!(lines[0].stored, orig.cost, "the original row is untouched");
        let total: Nanos = lines.iter().map(|l| l.stored.cost).sum();
        assert_eq!(total, Nanos::ZERO);
    }
}

#[tokio::test]
async fn unknown_model_and_dates_before_any_rate_are_errors_not_zero() {
    for (name, ledger, _db) in support::both().await {
        let u = usage("x", "claude-unknown-9", Lane::Urgent, tokens(1, 0, 0, 0, 1));
        assert!(
            matches!(ledger.record(&u).await, Err(Error::UnknownModel { .. })),
            "{name}"
        );
        let mut early = usage("y", "claude-haiku-4-5", Lane::Urgent, tokens(1, 0, 0, 0, 1));
        early.occurred_at = at(2025, 1, 1);
        assert!(matches!(
            ledger.record(&early).await,
            Err(Error::NoRateAt { .. })
        ));
        let mut geo = usage("z", "claude-opus-4-5", Lane::Urgent, tokens(1, 0, 0, 0, 1));
        geo.inference_geo = Some("us".into());
        assert!(matches!(
            ledger.record(&geo).await,
            Err(Error::UnsupportedModifier { .. })
        ));
        assert!(ledger.lines(&tenant("acme")).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn reports_group_spend_and_show_batch_savings() {
    for (name, ledger, _db) in support::both().await {
        let mut rows = vec![
            usage(
                "r1",
                "claude-haiku-4-5",
                Lane::Batch,
                tokens(1_000_000, 0, 0, 0, 0),
            ),
            usage(
                "r2",
                "claude-haiku-4-5",
                Lane::Urgent,
                tokens(1_000_000, 0, 0, 0, 0),
            ),
            usage(
                "r3",
                "claude-sonnet-4-5",
                Lane::Batch,
                tokens(0, 0, 0, 0, 1_000_000),
            ),
        ];
        rows[1].feature = "chat".into();
        rows[2].user_id = None;
        let mut other = usage(
            "r4",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000_000, 0, 0, 0, 0),
        );
        other.tenant_id = tenant("globex");
        rows.push(other);
        let mut late = usage(
            "r5",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000_000, 0, 0, 0, 0),
        );
        late.occurred_at = at(2026, 4, 2);
        rows.push(late);
        ledger.record_batch(&rows).await.unwrap();

        let (from, to) = (at(2026, 3, 1), at(2026, 4, 1));
        let q = |tenant: Option<&str>, group_by| {
            let mut query = SpendQuery::new(from, to, group_by);
            query.tenant_id = tenant.map(support::tenant);
            query
        };
        let by_lane = ledger
            .reports()
            .spend(&q(Some("acme"), GroupBy::Lane))
            .await
            .unwrap();
        assert_eq!(by_lane.len(), 2, "{name}");
        assert_eq!(by_lane[0].key.as_deref(), Some("batch"));
        assert_eq!(by_lane[0].cost, Nanos(500_000_000 + 7_500_000_000));
        assert_eq!(
            by_lane[0].standard_cost,
            Nanos(1_000_000_000 + 15_000_000_000)
        );
        assert_eq!(by_lane[1].cost, Nanos(1_000_000_000));
        assert_eq!(by_lane[1].saved_by_batching(), Nanos::ZERO);
        let saved = ledger
            .reports()
            .saved_by_batching(Some(&tenant("acme")), from, to)
            .await
            .unwrap();
        assert_eq!(saved, Nanos(8_000_000_000));

        let by_tenant = ledger
            .reports()
            .spend(&q(None, GroupBy::Tenant))
            .await
            .unwrap();
        assert_eq!(by_tenant.len(), 2);
        assert_eq!(by_tenant[1].key.as_deref(), Some("globex"));
        assert_eq!(by_tenant[1].cost, Nanos(1_000_000_000));
        let by_feature = ledger
            .reports()
            .spend(&q(Some("acme"), GroupBy::Feature))
            .await
            .unwrap();
        assert_eq!(by_feature.iter().map(|r| r.lines).sum::<i64>(), 3);
        let by_user = ledger
            .reports()
            .spend(&q(Some("acme"), GroupBy::User))
            .await
            .unwrap();
        assert!(by_user.iter().any(|r| r.key.is_none()));
        let by_model = ledger
            .reports()
            .spend(&q(Some("acme"), GroupBy::Model))
            .await
            .unwrap();
        assert_eq!(by_model.len(), 2);
        // A tenant id carrying SQL is refused before it can reach a statement, and the tenant
        // filter is a bound value, not spliced.
        assert!(tenantry_cost::TenantId::new("acme' OR '1'='1").is_err());
        let nobody = q(Some("acme-or-1"), GroupBy::Tenant);
        let (sql, _) =
            tenantry_cost::report::spend_statement(&nobody).build(sea_query::PostgresQueryBuilder);
        assert!(!sql.contains("acme-or-1"), "{sql}");
        let evil = ledger.reports().spend(&nobody).await.unwrap();
        assert!(evil.is_empty());
        let _ = UnixMicros::now();
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_recorded() {
    for (name, ledger, _db) in support::both().await {
        ledger.migrate().await.unwrap();
        ledger.migrate().await.unwrap();
        let u = usage("m", "claude-haiku-4-5", Lane::Urgent, tokens(1, 0, 0, 0, 1));
        assert!(!ledger.record(&u).await.unwrap().duplicate, "{name}");
    }
}

#[tokio::test]
async fn benchmark_baseline_stores_the_same_costs_in_plain_columns() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let ledger = tenantry_cost::Ledger::postgres_without_generated_columns_for_benchmarks(
        db.pool().clone(),
        tenantry_cost::PriceBook::anthropic_default(),
    );
    ledger.migrate().await.unwrap();
    let u = usage(
        "base",
        "claude-sonnet-4-5",
        Lane::Batch,
        tokens(123_456, 7, 8, 9, 1_011),
    );
    let rec = ledger.record(&u).await.unwrap();
    let line = ledger.line(rec.line_id).await.unwrap();
    assert_eq!(line.stored, rec.cost);
    assert_eq!(line.rederive().unwrap(), line.stored);
}

#[tokio::test]
async fn concurrent_migrators_on_postgres_both_succeed() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let book = tenantry_cost::PriceBook::anthropic_default();
    let a = tenantry_cost::Ledger::postgres(db.pool().clone(), book.clone());
    let b = tenantry_cost::Ledger::postgres(db.pool().clone(), book);
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    let u = usage(
        "after-migrate",
        "claude-haiku-4-5",
        Lane::Urgent,
        tokens(1, 0, 0, 0, 1),
    );
    assert!(!a.record(&u).await.unwrap().duplicate);
    assert!(b.record(&u).await.unwrap().duplicate);
}

/// Issue 13, case 10: a key already recorded for one tenant, reused for another tenant (or with
/// other tokens), is refused with a typed conflict. It used to answer the first tenant's line
/// as a "duplicate", so the second tenant's usage was never charged and its caller was handed
/// another tenant's line id and cost.
#[tokio::test]
async fn case_10_ledger_key_is_tenant_scoped() {
    for (name, ledger, _db) in support::both().await {
        let acme = usage(
            "req-shared",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000, 0, 0, 0, 1_000),
        );
        let first = ledger.record(&acme).await.unwrap();
        assert!(!first.duplicate, "{name}");

        let mut globex = acme.clone();
        globex.tenant_id = tenant("globex");
        let err = ledger.record(&globex).await.unwrap_err();
        assert!(err.is_key_conflict(), "{name}: {err:?}");
        assert!(
            !err.to_string().contains("acme"),
            "{name}: the error names the other tenant: {err}"
        );
        assert!(
            ledger.lines(&tenant("globex")).await.unwrap().is_empty(),
            "{name}"
        );

        // The same tenant with other tokens under the same key is no duplicate either.
        let mut other_tokens = acme.clone();
        other_tokens.tokens = tokens(1_000, 0, 0, 0, 2_000);
        let err = ledger.record(&other_tokens).await.unwrap_err();
        assert!(err.is_key_conflict(), "{name}: {err:?}");

        // Bulk recording refuses the whole call, and records nothing of it.
        let fresh = usage(
            "req-fresh",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(10, 0, 0, 0, 10),
        );
        let err = ledger
            .record_batch(&[fresh.clone(), globex.clone()])
            .await
            .unwrap_err();
        assert!(err.is_key_conflict(), "{name}: {err:?}");
        let mut twice = fresh.clone();
        twice.tenant_id = tenant("globex");
        let err = ledger
            .record_batch(&[fresh.clone(), twice])
            .await
            .unwrap_err();
        assert!(err.is_key_conflict(), "{name}: {err:?}");
        assert_eq!(
            ledger.lines(&tenant("acme")).await.unwrap().len(),
            1,
            "{name}"
        );
        assert!(
            ledger.lines(&tenant("globex")).await.unwrap().is_empty(),
            "{name}"
        );

        // The same usage again stays an idempotent duplicate, alone or in bulk.
        let again = ledger.record(&acme).await.unwrap();
        assert!(again.duplicate && again.line_id == first.line_id, "{name}");
        assert_eq!(
            ledger
                .record_batch(&[acme.clone(), fresh.clone()])
                .await
                .unwrap(),
            1,
            "{name}"
        );
        // And the second tenant is charged once its usage has a key of its own.
        globex.request_id = "req-globex".into();
        assert!(!ledger.record(&globex).await.unwrap().duplicate, "{name}");
        assert_eq!(
            ledger.lines(&tenant("globex")).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn what_the_database_refuses_is_not_retryable_and_an_unknown_line_is_not_found() {
    for (name, ledger, _db) in support::both().await {
        let from = at(2026, 1, 1);
        ledger
            .multipliers()
            .set_feature_tier("premium", 15_000, from)
            .await
            .unwrap();
        // The same name and start again breaks the table's primary key.
        let err = ledger
            .multipliers()
            .set_feature_tier("premium", 20_000, from)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{name}: {err:?}");
        assert!(!err.is_retryable(), "{name}");
        assert_eq!(err.code(), "database");
        let missing = ledger.line(999_999).await.unwrap_err();
        assert!(missing.is_not_found(), "{name}: {missing:?}");
        assert_eq!(missing.code(), "not_found");
    }
}

/// Every writer takes a checked tenant id, so one that no longer passes can only be a damaged
/// row: reading it is a typed error, not a panic and not a silently trusted id.
#[tokio::test]
async fn a_stored_tenant_id_that_is_not_valid_is_an_invalid_row() {
    for (name, ledger, db) in support::both().await {
        let when = at(2026, 3, 10);
        let line = ledger
            .record(&usage(
                "req-1",
                "claude-haiku-4-5",
                Lane::Urgent,
                tokens(1_000, 0, 0, 0, 1_000),
            ))
            .await
            .unwrap();
        let hold = tenantry_cost::HoldRequest::new(
            tenant("acme"),
            "summaries",
            "claude-haiku-4-5",
            Lane::Urgent,
            1_000,
            when,
        )
        .with_input_tokens(1_000)
        .with_ttl_micros(600_000_000);
        ledger.hold(&hold).await.unwrap();
        let sql = sqlx::AssertSqlSafe(
            "UPDATE tenantry_usage SET tenant_id = 'not a tenant'; \
             UPDATE tenantry_reservations SET tenant_id = 'not a tenant';",
        );
        match &db {
            support::Db::Pg(db) => {
                sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
            }
            support::Db::Sqlite(db) => {
                sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
            }
        }
        let err = ledger.line(line.line_id).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRow(_)), "{name}: {err}");
        let err = ledger.held_tenants(when).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRow(_)), "{name}: {err}");
    }
}
