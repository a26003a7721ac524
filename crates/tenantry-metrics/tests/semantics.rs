//! Worked examples with hand-computed values, the same on Rust, PostgreSQL and SQLite: roll-up,
//! ratios, NULL and empty-set rules, cyclic tenant and role trees and overflow.

use tenantry_core::db::Pool;
use tenantry_metrics::builtin::{self, Period};
use tenantry_metrics::{
    Backend, Dataset, Dimension, Error, GrantRow, MIGRATIONS, MembershipRow, MetricRow,
    MetricsQuery, Order, RoleAssignmentRow, RoleGrantRow, RoleRow, Scope, TenantRow, UsageRow,
    fixture,
};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

fn tenant(id: &str, parent: Option<&str>, level: i32) -> TenantRow {
    TenantRow::new(id, parent, level)
}

fn member(user: &str, tenant: &str) -> MembershipRow {
    MembershipRow::new(user, tenant)
}

fn grant(tenant: &str, permission: &str) -> GrantRow {
    GrantRow::new(tenant, permission)
}

#[allow(clippy::too_many_arguments)]
fn used(
    tenant: &str,
    user: Option<&str>,
    feature: &str,
    lane: &str,
    at: i64,
    cost: i64,
    standard: i64,
) -> UsageRow {
    {
        let mut row = UsageRow::new(tenant, feature, "claude-a", lane, at);
        row.user_id = user.map(Into::into);
        row.input_tokens = 10;
        row.cache_write_5m_tokens = 0;
        row.cache_write_1h_tokens = 0;
        row.cache_read_tokens = 0;
        row.output_tokens = 5;
        row.cost_nanos = cost;
        row.standard_cost_nanos = standard;
        row
    }
}

fn org_chart() -> Dataset {
    {
        let mut data = Dataset::default();
        data.tenants = vec![
            tenant("org", None, 0),
            tenant("lonely", None, 0),
            tenant("ws1", Some("org"), 1),
            tenant("ws2", Some("org"), 1),
            tenant("team1", Some("ws1"), 2),
            tenant("team2", Some("ws1"), 2),
        ];
        data.memberships = vec![
            member("u1", "team1"),
            member("u2", "team1"),
            member("u3", "team2"),
            member("u4", "ws2"),
        ];
        data.grants = vec![
            grant("org", "read"),
            grant("ws1", "admin"),
            grant("team2", "read"),
        ];
        data.usage = vec![
            used("team1", Some("u1"), "summarize", "batch", 150, 100, 200),
            used("team1", Some("u2"), "classify", "sync", 150, 50, 50),
            used("team2", Some("u3"), "summarize", "sync", 50, 30, 30),
            used("ws2", None, "summarize", "batch", 120, 7, 14),
            used("team2", Some("u3"), "summarize", "batch", 199, 0, 1),
        ];
        data
    }
}

const NAMES: [&str; 14] = [
    "users",
    "active",
    "adoption",
    "requests",
    "cost",
    "per_user",
    "batch_share",
    "savings",
    "requests_delta",
    "max_read_depth",
    "read_at_0",
    "read_at_1",
    "read_at_2",
    "tokens",
];

fn dashboard(scope: Scope, level: Option<i32>) -> MetricsQuery {
    let now = Period::new(100, 200).expect("period");
    let before = Period::new(0, 100).expect("period");
    let mut q = MetricsQuery::new();
    q.scope(scope);
    if let Some(l) = level {
        q.level(l);
    }
    let metrics = [
        builtin::users(),
        builtin::active_users(now),
        builtin::adoption_rate("summarize", now),
        builtin::requests(now),
        builtin::cost(now),
        builtin::cost_per_active_user(now),
        builtin::batch_share(now),
        builtin::batch_savings(now),
        builtin::delta(builtin::requests, now, before),
        builtin::max_inheritance_depth("read"),
        builtin::inheritance_depth_count("read", 0),
        builtin::inheritance_depth_count("read", 1),
        builtin::inheritance_depth_count("read", 2),
        builtin::tokens(now),
    ];
    for (name, m) in NAMES.iter().zip(metrics) {
        q.select(name, m).expect("select");
    }
    q
}

async fn on_every_backend(data: &Dataset, q: &MetricsQuery) -> Vec<MetricRow> {
    let expected = q.evaluate(data).expect("rust");
    let pg = PgDatabase::create().await;
    fixture::setup_postgres(pg.pool()).await.expect("pg schema");
    fixture::load_postgres(pg.pool(), data)
        .await
        .expect("pg load");
    assert_eq!(q.fetch_postgres(pg.pool()).await.expect("pg"), expected);
    let lite = SqliteDatabase::create().await;
    fixture::setup_sqlite(lite.pool())
        .await
        .expect("sqlite schema");
    fixture::load_sqlite(lite.pool(), data)
        .await
        .expect("sqlite load");
    assert_eq!(q.fetch_sqlite(lite.pool()).await.expect("sqlite"), expected);
    expected
}

fn values(row: &MetricRow) -> Vec<(&'static str, Option<i64>)> {
    NAMES.iter().map(|n| (*n, row.value(n))).collect()
}

#[tokio::test]
async fn organizations_roll_up_their_whole_subtree() {
    let rows = on_every_backend(&org_chart(), &dashboard(Scope::All, Some(0))).await;
    let ids: Vec<&str> = rows.iter().map(MetricRow::tenant_id).collect();
    assert_eq!(ids, ["lonely", "org"]);
    assert_eq!(
        values(&rows[1]),
        [
            ("users", Some(4)),
            ("active", Some(3)),
            ("adoption", Some(500_000)),
            ("requests", Some(4)),
            ("cost", Some(157)),
            ("per_user", Some(52)),
            ("batch_share", Some(750_000)),
            ("savings", Some(108)),
            ("requests_delta", Some(3)),
            ("max_read_depth", Some(2)),
            ("read_at_0", Some(1)),
            ("read_at_1", Some(1)),
            ("read_at_2", Some(2)),
            ("tokens", Some(60)),
        ]
    );
    // No rows at all: counts are 0, sums and ratios NULL.
    assert_eq!(
        values(&rows[0]),
        [
            ("users", Some(0)),
            ("active", Some(0)),
            ("adoption", None),
            ("requests", Some(0)),
            ("cost", None),
            ("per_user", None),
            ("batch_share", None),
            ("savings", None),
            ("requests_delta", Some(0)),
            ("max_read_depth", None),
            ("read_at_0", Some(0)),
            ("read_at_1", Some(0)),
            ("read_at_2", Some(0)),
            ("tokens", None),
        ]
    );
}

#[tokio::test]
async fn ratios_are_recomputed_per_level_not_summed() {
    let rows = on_every_backend(
        &org_chart(),
        &dashboard(Scope::Subtree("org".into()), Some(1)),
    )
    .await;
    let ids: Vec<&str> = rows.iter().map(MetricRow::tenant_id).collect();
    assert_eq!(ids, ["ws1", "ws2"]);
    // ws1: 2 of 3 users used summarize: 666_666 ppm (truncated), batch 2 of 3 requests.
    assert_eq!(rows[0].value("adoption"), Some(666_666));
    assert_eq!(rows[0].value("batch_share"), Some(666_666));
    assert_eq!(rows[0].value("per_user"), Some(50));
    // ws2: one user, no active user (the only request has no user): per-user cost is NULL.
    assert_eq!(rows[1].value("users"), Some(1));
    assert_eq!(rows[1].value("active"), Some(0));
    assert_eq!(rows[1].value("adoption"), Some(0));
    assert_eq!(rows[1].value("cost"), Some(7));
    assert_eq!(rows[1].value("per_user"), None);
}

#[tokio::test]
async fn filter_order_and_limit_by_metric_value() {
    let now = Period::new(100, 200).expect("period");
    let mut q = dashboard(Scope::All, None);
    q.filter(builtin::users().ge(1))
        .order_by(builtin::cost(now), Order::Desc)
        .limit(3);
    let rows = on_every_backend(&org_chart(), &q).await;
    let ids: Vec<&str> = rows.iter().map(MetricRow::tenant_id).collect();
    // cost: org 157, ws1 150, team1 150, ws2 7, team2 0; ties by id bytes.
    assert_eq!(ids, ["org", "team1", "ws1"]);

    let mut nulls_last = dashboard(Scope::All, None);
    nulls_last.order_by(builtin::cost_per_active_user(now), Order::Asc);
    let rows = on_every_backend(&org_chart(), &nulls_last).await;
    let ids: Vec<&str> = rows.iter().map(MetricRow::tenant_id).collect();
    assert_eq!(ids, ["team2", "ws1", "org", "team1", "lonely", "ws2"]);
}

#[tokio::test]
async fn cyclic_trees_end_at_the_depth_guard_everywhere() {
    let data = {
        let mut data = Dataset::default();
        data.tenants = vec![
            tenant("c1", Some("c2"), 0),
            tenant("c2", Some("c1"), 1),
            tenant("c3", Some("c2"), 2),
        ];
        data.memberships = vec![member("u1", "c3")];
        data.grants = vec![grant("c1", "read")];
        data.usage = vec![
            used("c1", Some("u1"), "summarize", "sync", 150, 1, 1),
            used("c3", Some("u1"), "summarize", "sync", 150, 10, 10),
        ];
        data
    };
    let mut q = dashboard(Scope::All, None);
    q.max_depth(5);
    let rows = on_every_backend(&data, &q).await;
    assert_eq!(rows.len(), 3);
    // Every tenant of the cycle reaches the others: c3 hangs below c2.
    assert_eq!(rows[0].value("cost"), Some(11));
    assert_eq!(rows[2].value("cost"), Some(10));
    // u1 in c3: c3 -> c2 -> c1 (grant) is 2 levels up.
    assert_eq!(rows[0].value("max_read_depth"), Some(2));
}

fn role(id: &str, parent: Option<&str>) -> RoleRow {
    RoleRow::new(id, parent)
}

fn assign(user: &str, tenant: &str, role: &str) -> RoleAssignmentRow {
    RoleAssignmentRow::new(user, tenant, role)
}

fn role_grant(role: &str, permission: &str) -> RoleGrantRow {
    RoleGrantRow::new(role, permission)
}

/// The org chart with a role tree `admin -> editor -> viewer` and a cycle `loop_a <-> loop_b`.
fn org_chart_with_roles() -> Dataset {
    {
        let mut data = org_chart();
        data.roles = vec![
            role("admin", Some("editor")),
            role("editor", Some("viewer")),
            role("viewer", None),
            role("loop_a", Some("loop_b")),
            role("loop_b", Some("loop_a")),
        ];
        data.role_assignments = vec![
            assign("u1", "team1", "admin"),
            assign("u2", "team1", "viewer"),
            assign("u3", "team2", "editor"),
            assign("u3", "team2", "loop_a"),
            assign("u4", "ws2", "loop_a"),
            assign("u1", "ws1", "editor"),
        ];
        data.role_grants = vec![
            role_grant("viewer", "read"),
            role_grant("editor", "write"),
            role_grant("admin", "admin"),
            role_grant("loop_b", "read"),
        ];
        data
    }
}

fn role_dashboard(max_depth: u32) -> MetricsQuery {
    let mut q = MetricsQuery::new();
    q.max_depth(max_depth);
    q.select("max_read", builtin::max_role_inheritance_depth("read"))
        .expect("select");
    for (name, depth) in [("read_at_0", 0), ("read_at_1", 1), ("read_at_2", 2)] {
        q.select(name, builtin::role_inheritance_depth_count("read", depth))
            .expect("select");
    }
    q.select("admins", builtin::role_permission_holders("admin"))
        .expect("select");
    q
}

fn role_values(row: &MetricRow) -> (&str, [Option<i64>; 5]) {
    let v = |n| row.value(n);
    (
        row.tenant_id(),
        [
            v("max_read"),
            v("read_at_0"),
            v("read_at_1"),
            v("read_at_2"),
            v("admins"),
        ],
    )
}

#[tokio::test]
async fn role_tree_depths_roll_up_and_cycles_end_at_the_depth_guard() {
    let data = org_chart_with_roles();
    let rows = on_every_backend(&data, &role_dashboard(5)).await;
    let got: Vec<_> = rows.iter().map(role_values).collect();
    // read: u2 in team1 at 0 (viewer); u1 in team1 at 2 (admin -> editor -> viewer); u3 in
    // team2 at 1 (editor -> viewer, and loop_a -> loop_b); u4 in ws2 at 1 (loop_a -> loop_b,
    // around the cycle until the guard); u1 in ws1 at 1 (editor -> viewer).
    assert_eq!(
        got,
        vec![
            ("lonely", [None, Some(0), Some(0), Some(0), Some(0)]),
            ("org", [Some(2), Some(1), Some(3), Some(1), Some(1)]),
            ("team1", [Some(2), Some(1), Some(0), Some(1), Some(1)]),
            ("team2", [Some(1), Some(0), Some(1), Some(0), Some(0)]),
            ("ws1", [Some(2), Some(1), Some(2), Some(1), Some(1)]),
            ("ws2", [Some(1), Some(0), Some(1), Some(0), Some(0)]),
        ]
    );
    // With a guard of one level, admin reaches editor but not viewer: u1 loses read in team1
    // (the guard also bounds the tenant walk; team1 has no tenant below it).
    let rows = on_every_backend(&data, &role_dashboard(1)).await;
    let team1 = rows
        .iter()
        .find(|r| r.tenant_id() == "team1")
        .expect("team1");
    assert_eq!(
        role_values(team1).1,
        [Some(0), Some(1), Some(0), Some(0), Some(1)]
    );
}

#[tokio::test]
async fn sum_overflow_is_an_error_on_every_backend() {
    let mut data = org_chart();
    data.usage = vec![
        used("team1", Some("u1"), "summarize", "sync", 150, i64::MAX, 0),
        used("team1", Some("u2"), "summarize", "sync", 150, i64::MAX, 0),
    ];
    let mut q = MetricsQuery::new();
    q.scope(Scope::Ids(vec!["team1".into()]));
    q.select("cost", builtin::cost(Period::all_time()))
        .expect("select");
    assert!(matches!(q.evaluate(&data), Err(Error::Overflow(_))));
    let pg = PgDatabase::create().await;
    fixture::setup_postgres(pg.pool()).await.expect("pg schema");
    fixture::load_postgres(pg.pool(), &data)
        .await
        .expect("pg load");
    assert!(matches!(
        q.fetch_postgres(pg.pool()).await,
        Err(Error::Database(_))
    ));
    let lite = SqliteDatabase::create().await;
    fixture::setup_sqlite(lite.pool())
        .await
        .expect("sqlite schema");
    fixture::load_sqlite(lite.pool(), &data)
        .await
        .expect("sqlite load");
    assert!(matches!(
        q.fetch_sqlite(lite.pool()).await,
        Err(Error::Database(_))
    ));
}

#[tokio::test]
async fn migrations_are_idempotent() {
    const COUNT: &str = "SELECT COUNT(*) FROM tenantry_migrations WHERE component = 'metrics'";
    let pg = PgDatabase::create().await;
    let pool = Pool::from(pg.pool().clone());
    tenantry_metrics::migrate(&pool).await.expect("first");
    tenantry_metrics::migrate(&pool).await.expect("second");
    let n: i64 = sqlx::query_scalar(COUNT)
        .fetch_one(pg.pool())
        .await
        .expect("count");
    let shipped = MIGRATIONS.migrations(tenantry_core::db::Backend::Postgres);
    assert_eq!(n, i64::try_from(shipped.len()).expect("few"));
    let lite = SqliteDatabase::create().await;
    let pool = Pool::from(lite.pool().clone());
    tenantry_metrics::migrate(&pool).await.expect("first");
    tenantry_metrics::migrate(&pool).await.expect("second");
    let n: i64 = sqlx::query_scalar(COUNT)
        .fetch_one(lite.pool())
        .await
        .expect("count");
    let shipped = MIGRATIONS.migrations(tenantry_core::db::Backend::Sqlite);
    assert_eq!(n, i64::try_from(shipped.len()).expect("few"));
}

/// A database migrated by the crate's own runner before core's (its versions in
/// `tenantry_metrics_migrations`) is adopted as it stands: nothing is applied again.
#[tokio::test]
async fn a_database_migrated_by_the_old_runner_is_adopted() {
    let lite = SqliteDatabase::create().await;
    let pool = Pool::from(lite.pool().clone());
    let mut tx = pool.begin().await.expect("begin");
    for m in MIGRATIONS.migrations(tenantry_core::db::Backend::Sqlite) {
        for statement in m.statements() {
            tx.execute_schema(statement).await.expect("old schema");
        }
    }
    tx.execute_schema(
        "CREATE TABLE tenantry_metrics_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO tenantry_metrics_migrations VALUES (1, 'one'), (2, 'two')",
    )
    .await
    .expect("old ledger");
    tx.commit().await.expect("commit");
    assert!(
        tenantry_metrics::migrate(&pool)
            .await
            .expect("adopt")
            .is_empty()
    );
}

const RENAMED: &str = "
CREATE TABLE orgs AS SELECT id AS org_id, parent_id AS parent, level AS depth_level FROM tenantry_tenants;
CREATE TABLE members AS SELECT user_id AS uid, tenant_id AS org FROM tenantry_memberships;
CREATE TABLE acl AS SELECT tenant_id AS org, permission AS perm FROM tenantry_grants;
CREATE TABLE events AS SELECT tenant_id AS org, user_id, feature, model, lane, occurred_at AS ts,
    input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens,
    cost_nanos, standard_cost_nanos FROM tenantry_usage;
DELETE FROM tenantry_usage; DELETE FROM tenantry_grants; DELETE FROM tenantry_memberships;
UPDATE tenantry_tenants SET parent_id = NULL; DELETE FROM tenantry_tenants;
";

fn renamed_schema() -> tenantry_metrics::Schema {
    use tenantry_metrics::{Schema, Table};
    let rename = || -> tenantry_metrics::Result<Schema> {
        Schema::default()
            .with_table(Table::Tenants, "orgs")?
            .with_column(Table::Tenants, "id", "org_id")?
            .with_column(Table::Tenants, "parent_id", "parent")?
            .with_column(Table::Tenants, "level", "depth_level")?
            .with_table(Table::Memberships, "members")?
            .with_column(Table::Memberships, "user_id", "uid")?
            .with_column(Table::Memberships, "tenant_id", "org")?
            .with_table(Table::Grants, "acl")?
            .with_column(Table::Grants, "tenant_id", "org")?
            .with_column(Table::Grants, "permission", "perm")?
            .with_table(Table::Usage, "events")?
            .with_column(Table::Usage, "tenant_id", "org")?
            .with_column(Table::Usage, "occurred_at", "ts")
    };
    rename().expect("valid names")
}

#[tokio::test]
async fn host_table_and_column_names_are_used() {
    let data = org_chart();
    let default_q = dashboard(Scope::Subtree("org".into()), None);
    let expected = default_q.evaluate(&data).expect("rust");
    let mut q = MetricsQuery::with_schema(renamed_schema());
    q.scope(Scope::Subtree("org".into()));
    let now = Period::new(100, 200).expect("period");
    q.select("cost", builtin::cost(now)).expect("select");
    q.select("adoption", builtin::adoption_rate("summarize", now))
        .expect("select");
    q.select("max_read_depth", builtin::max_inheritance_depth("read"))
        .expect("select");
    let want: Vec<(String, Vec<Option<i64>>)> = expected
        .iter()
        .map(|r| {
            (
                r.tenant_id().to_owned(),
                vec![
                    r.value("cost"),
                    r.value("adoption"),
                    r.value("max_read_depth"),
                ],
            )
        })
        .collect();
    let got = |rows: Vec<MetricRow>| -> Vec<(String, Vec<Option<i64>>)> {
        rows.into_iter()
            .map(|r| (r.tenant_id().to_owned(), r.values().to_vec()))
            .collect()
    };

    let pg = PgDatabase::create().await;
    fixture::setup_postgres(pg.pool()).await.expect("pg schema");
    fixture::load_postgres(pg.pool(), &data)
        .await
        .expect("pg load");
    sqlx::raw_sql(RENAMED)
        .execute(pg.pool())
        .await
        .expect("pg rename");
    assert_eq!(got(q.fetch_postgres(pg.pool()).await.expect("pg")), want);

    let lite = SqliteDatabase::create().await;
    fixture::setup_sqlite(lite.pool())
        .await
        .expect("sqlite schema");
    fixture::load_sqlite(lite.pool(), &data)
        .await
        .expect("sqlite load");
    sqlx::raw_sql(RENAMED)
        .execute(lite.pool())
        .await
        .expect("sqlite rename");
    assert_eq!(
        got(q.fetch_sqlite(lite.pool()).await.expect("sqlite")),
        want
    );
    assert!(want.iter().any(|(_, v)| v[0].is_some()));
}

#[tokio::test]
async fn long_id_lists_take_the_whole_table_plan_with_the_same_values() {
    let mut ids: Vec<String> = (0..80).map(|i| format!("missing{i}")).collect();
    ids.extend(["ws1".to_owned(), "org".to_owned(), "team2".to_owned()]);
    let long = dashboard(Scope::Ids(ids), None);
    let short = dashboard(
        Scope::Ids(vec!["ws1".into(), "org".into(), "team2".into()]),
        None,
    );
    let (long_sql, _) = long
        .build(tenantry_metrics::Backend::Postgres)
        .expect("build");
    let (short_sql, _) = short
        .build(tenantry_metrics::Backend::Postgres)
        .expect("build");
    assert!(!long_sql.contains("LATERAL") && short_sql.contains("LATERAL"));
    let rows = on_every_backend(&org_chart(), &long).await;
    assert_eq!(rows, on_every_backend(&org_chart(), &short).await);
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn grouping_by_feature_gives_one_row_per_tenant_and_feature() {
    let now = Period::new(100, 200).expect("period");
    let mut q = MetricsQuery::new();
    q.level(0)
        .group_by(Dimension::Feature)
        .group_by(Dimension::Model);
    q.select("requests", builtin::requests(now))
        .expect("select");
    q.select("cost", builtin::cost(now)).expect("select");
    q.select("active", builtin::active_users(now))
        .expect("select");
    let rows = on_every_backend(&org_chart(), &q).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.tenant_id(),
                r.dimension(Dimension::Feature),
                r.dimension(Dimension::Model),
                r.dimension(Dimension::Lane),
                r.values().to_vec(),
            )
        })
        .collect();
    // `lonely` has no ledger rows, so no row; the period filter keeps one summarize row out of
    // the sums but not out of the keys.
    assert_eq!(
        got,
        [
            (
                "org",
                Some("classify"),
                Some("claude-a"),
                None,
                vec![Some(1), Some(50), Some(1)]
            ),
            (
                "org",
                Some("summarize"),
                Some("claude-a"),
                None,
                vec![Some(3), Some(107), Some(2)]
            ),
        ]
    );
}

#[test]
fn grouping_by_a_dimension_needs_ledger_metrics() {
    let mut q = MetricsQuery::new();
    q.group_by(Dimension::Lane);
    q.select("users", builtin::users()).expect("select");
    for dialect in [Backend::Postgres, Backend::Sqlite] {
        assert!(matches!(
            q.build(dialect),
            Err(Error::DimensionSource {
                table: "memberships"
            })
        ));
    }
    assert!(matches!(
        q.evaluate(&org_chart()),
        Err(Error::DimensionSource { .. })
    ));
    let mut q = MetricsQuery::new();
    q.group_by(Dimension::Feature);
    q.select("admins", builtin::role_permission_holders("admin"))
        .expect("select");
    assert!(matches!(
        q.build(Backend::Sqlite),
        Err(Error::DimensionSource {
            table: "role access"
        })
    ));
}

/// `Period::all_time()` compares nothing: its SQL has no bound on `occurred_at`, and its values
/// are those of the widest bounded period, plus the rows that period cannot hold (at
/// `i64::MAX`, its excluded end).
#[tokio::test]
async fn all_time_adds_no_predicate_and_keeps_the_values() {
    let all = Period::all_time();
    let widest = Period::new(i64::MIN, i64::MAX).expect("period");
    let query = |period: Period| {
        let mut q = MetricsQuery::new();
        q.scope(Scope::All);
        q.select("requests", builtin::requests(period))
            .expect("select");
        q.select("cost", builtin::cost(period)).expect("select");
        q.select("per_user", builtin::cost_per_active_user(period))
            .expect("select");
        q.select("adoption", builtin::adoption_rate("summarize", period))
            .expect("select");
        q
    };
    for dialect in [Backend::Postgres, Backend::Sqlite] {
        let (sql, _) = query(all).build(dialect).expect("build");
        assert!(!sql.contains("occurred_at"), "{sql}");
        let (bounded, _) = query(widest).build(dialect).expect("build");
        assert!(bounded.contains(r#""occurred_at" >= "#), "{bounded}");
    }
    let data = org_chart();
    let rows = on_every_backend(&data, &query(all)).await;
    assert_eq!(rows, on_every_backend(&data, &query(widest)).await);
    let org = rows.iter().find(|r| r.tenant_id() == "org").expect("org");
    assert_eq!(
        (org.value("requests"), org.value("cost")),
        (Some(5), Some(187))
    );
    // A row at the last microsecond is in all of time, and outside every bounded period.
    let mut late = org_chart();
    late.usage
        .push(used("ws2", Some("u4"), "summarize", "sync", i64::MAX, 1, 1));
    let rows = on_every_backend(&late, &query(all)).await;
    let org = rows.iter().find(|r| r.tenant_id() == "org").expect("org");
    assert_eq!(
        (org.value("requests"), org.value("cost")),
        (Some(6), Some(188))
    );
    let rows = on_every_backend(&late, &query(widest)).await;
    let org = rows.iter().find(|r| r.tenant_id() == "org").expect("org");
    assert_eq!(
        (org.value("requests"), org.value("cost")),
        (Some(5), Some(187))
    );
}
