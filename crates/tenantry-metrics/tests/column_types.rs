//! The Rust = SQL agreement on the host's own column types: random tenant forests, members,
//! grants, roles and usage stored with integer or uuid ids and `timestamptz`, Unix-second or
//! ISO-8601 text time, read through a [`Schema`] that says so, give the same rows as the Rust
//! evaluation of the same data (ids in their text form, time in microseconds).
//!
//! Each case loads the data into tenantry's default tables, then copies it into the host's
//! typed tables with the database's own conversions, so what is compared is the database's
//! reading of its own types. A handful of cases per type combination: the general proof runs
//! in `agreement.rs`; here only the typed columns are new.

mod support;

use std::collections::HashMap;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::AssertSqlSafe;
use tenantry_core::db::Pool;
use tenantry_metrics::builtin::{self, Period, Slice};
use tenantry_metrics::{
    Dataset, IdType, Metric, MetricsCache, MetricsQuery, Order, Schema, Scope, Table, TimeType,
    case_when, count, count_distinct, count_rows, lit, max, members, min, sum, usage,
};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

const CASES: u32 = 6;

#[derive(Clone, Copy, Debug)]
struct Types {
    tenants: IdType,
    users: IdType,
    time: TimeType,
}

/// The text form of the `i`-th distinct id: integers whose byte order is not their numeric
/// order (negatives included), or lowercase UUIDs.
fn id_text(ty: IdType, i: usize, salt: u64) -> String {
    match ty {
        IdType::Integer => (i64::try_from(i).expect("small") * 7 - 20).to_string(),
        IdType::Uuid => format!("{:08x}-0000-4000-8000-{:012x}", salt, i * 977),
        _ => format!("id{i}"),
    }
}

/// Stored time is microseconds through this map: spread over seconds before and after 1970,
/// with sub-second parts (whole seconds for Unix seconds).
fn time_of(t: i64, ty: TimeType) -> i64 {
    let step = t.rem_euclid(1000) - 300;
    match ty {
        TimeType::UnixSeconds => step * 1_000_000,
        _ => step * 7_777_777_777 + (t.rem_euclid(3) * 250_000),
    }
}

/// `data` with its ids and times in the host's forms.
fn typed(data: &Dataset, types: Types) -> Dataset {
    let mut tenants: HashMap<String, String> = HashMap::new();
    let mut users: HashMap<String, String> = HashMap::new();
    let mut tenant = |id: &str| {
        let n = tenants.len();
        tenants
            .entry(id.to_owned())
            .or_insert_with(|| id_text(types.tenants, n, 0xa11ce))
            .clone()
    };
    let mut out = data.clone();
    for t in &mut out.tenants {
        t.id = tenant(&t.id);
        t.parent_id = t.parent_id.as_deref().map(&mut tenant);
    }
    for m in &mut out.memberships {
        m.tenant_id = tenant(&m.tenant_id);
    }
    for g in &mut out.grants {
        g.tenant_id = tenant(&g.tenant_id);
    }
    for a in &mut out.role_assignments {
        a.tenant_id = tenant(&a.tenant_id);
    }
    for u in &mut out.usage {
        u.tenant_id = tenant(&u.tenant_id);
        u.occurred_at = time_of(u.occurred_at, types.time);
    }
    let mut user = |id: &str| {
        let n = users.len();
        users
            .entry(id.to_owned())
            .or_insert_with(|| id_text(types.users, n, 0xb0b))
            .clone()
    };
    for m in &mut out.memberships {
        m.user_id = user(&m.user_id);
    }
    for a in &mut out.role_assignments {
        a.user_id = user(&a.user_id);
    }
    for u in &mut out.usage {
        u.user_id = u.user_id.as_deref().map(&mut user);
    }
    out
}

fn schema(types: Types) -> Schema {
    Schema::default()
        .with_table(Table::Tenants, "h_tenants")
        .and_then(|s| s.with_column(Table::Tenants, "parent_id", "parent"))
        .and_then(|s| s.with_table(Table::Memberships, "h_memberships"))
        .and_then(|s| s.with_table(Table::Grants, "h_grants"))
        .and_then(|s| s.with_table(Table::RoleAssignments, "h_role_assignments"))
        .and_then(|s| s.with_table(Table::Usage, "h_usage"))
        .and_then(|s| s.with_column(Table::Usage, "occurred_at", "created"))
        .expect("names")
        .with_tenant_ids(types.tenants)
        .with_user_ids(types.users)
        .with_time(types.time)
}

/// The host's tables, copied from the default ones with the database's conversions.
fn copy_statements(pg: bool, types: Types) -> Vec<String> {
    let id = |ty: IdType, col: &str| match (ty, pg) {
        (IdType::Integer, true) => format!("CAST({col} AS BIGINT)"),
        (IdType::Integer, false) => format!("CAST({col} AS INTEGER)"),
        (IdType::Uuid, _) => format!("CAST({col} AS uuid)"),
        _ => col.to_owned(),
    };
    let (t, u) = (types.tenants, types.users);
    // Floor division and remainder of the microseconds, also before 1970.
    let rem = "((occurred_at % 1000000) + 1000000) % 1000000";
    let time = match types.time {
        TimeType::Timestamptz => {
            "TIMESTAMPTZ 'epoch' + occurred_at * INTERVAL '1 microsecond'".to_owned()
        }
        // SQLite gives a copied expression a declared type only through a CAST.
        TimeType::UnixSeconds if pg => "occurred_at / 1000000".to_owned(),
        TimeType::UnixSeconds => "CAST(occurred_at / 1000000 AS INTEGER)".to_owned(),
        // Both separators, and a whole second written without its fraction (Django) or with
        // six zeros (SQLAlchemy).
        TimeType::IsoText => format!(
            "CAST(strftime(CASE WHEN id % 2 = 0 THEN '%Y-%m-%d %H:%M:%S' ELSE '%Y-%m-%dT%H:%M:%S' END, \
             (occurred_at - {rem}) / 1000000, 'unixepoch') \
             || CASE WHEN {rem} = 0 AND id % 3 = 0 THEN '' ELSE '.' || printf('%06d', {rem}) END AS TEXT)"
        ),
        _ => "occurred_at".to_owned(),
    };
    vec![
        "DROP TABLE IF EXISTS h_tenants, h_memberships, h_grants, h_role_assignments, h_usage"
            .to_owned(),
        format!(
            "CREATE TABLE h_tenants AS SELECT {} AS id, {} AS parent, level FROM tenantry_tenants",
            id(t, "id"),
            id(t, "parent_id")
        ),
        format!(
            "CREATE TABLE h_memberships AS SELECT {} AS user_id, {} AS tenant_id FROM tenantry_memberships",
            id(u, "user_id"),
            id(t, "tenant_id")
        ),
        format!(
            "CREATE TABLE h_grants AS SELECT {} AS tenant_id, permission FROM tenantry_grants",
            id(t, "tenant_id")
        ),
        format!(
            "CREATE TABLE h_role_assignments AS SELECT {} AS user_id, {} AS tenant_id, role_id \
             FROM tenantry_role_assignments",
            id(u, "user_id"),
            id(t, "tenant_id")
        ),
        format!(
            "CREATE TABLE h_usage AS SELECT {} AS tenant_id, {} AS user_id, feature, model, lane, \
             {time} AS created, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
             cache_read_tokens, output_tokens, cost_nanos, standard_cost_nanos FROM tenantry_usage",
            id(t, "tenant_id"),
            id(u, "user_id")
        ),
    ]
}

/// The metrics over typed columns: ids counted, compared with text and grouped by; time
/// compared with period bounds and returned by `MIN`/`MAX`.
fn metrics(data: &Dataset, types: Types) -> Vec<(&'static str, Metric)> {
    let now = Period::new(time_of(100, types.time), time_of(200, types.time)).expect("period");
    let some_user = (data.usage.iter())
        .find_map(|u| u.user_id.clone())
        .unwrap_or_else(|| id_text(types.users, 999, 1));
    let some_tenant = (data.usage.first())
        .map_or_else(|| id_text(types.tenants, 999, 1), |u| u.tenant_id.clone());
    vec![
        ("users", builtin::users()),
        ("active_users", builtin::active_users(now)),
        ("adoption", builtin::adoption_rate("summarize", now)),
        ("requests", builtin::requests(now)),
        ("cost", builtin::cost(now)),
        ("per_user", builtin::cost_per_active_user(now)),
        (
            "slice_cost",
            builtin::cost_in(&Slice::all().feature("classify"), Period::all_time()),
        ),
        ("batch_share", builtin::batch_share(now)),
        ("read_depth", builtin::max_inheritance_depth("read")),
        (
            "role_read_depth",
            builtin::max_role_inheritance_depth("read"),
        ),
        ("first", min(usage::occurred_at()).into()),
        ("last", max(usage::occurred_at()).into()),
        (
            "last_now",
            max(usage::occurred_at()).filter(now.contains()).into(),
        ),
        ("with_user", count(usage::user_id()).into()),
        ("tenants_used", count_distinct(usage::tenant_id()).into()),
        (
            "member_tenants",
            count_distinct(members::tenant_id()).into(),
        ),
        (
            "by_some_user",
            sum(case_when(
                usage::user_id().equals(some_user.as_str()),
                lit(1),
                lit(0),
            ))
            .into(),
        ),
        (
            "not_some_tenant",
            count_rows()
                .filter(usage::tenant_id().not_equals(some_tenant.as_str()))
                .into(),
        ),
    ]
}

fn query(data: &Dataset, shape: &support::Shape, types: Types) -> MetricsQuery {
    let mut q = MetricsQuery::with_schema(schema(types));
    let absent = id_text(types.tenants, 5000, 7);
    let some_id = if data.tenants.is_empty() {
        absent.clone()
    } else {
        data.tenants[shape.pick.index(data.tenants.len())]
            .id
            .clone()
    };
    q.scope(match shape.scope {
        0 => Scope::All,
        1 => Scope::Ids(vec![some_id, absent]),
        _ => Scope::Subtree(some_id),
    });
    if let Some(l) = shape.level {
        q.level(l);
    }
    let metrics = metrics(data, types);
    for (name, m) in &metrics {
        q.select(name, m.clone()).expect("distinct names");
    }
    if let Some((i, desc)) = shape.order {
        let m = metrics[i % metrics.len()].1.clone();
        q.order_by(m, if desc { Order::Desc } else { Order::Asc });
    }
    if let Some(l) = shape.limit {
        q.limit(l);
    }
    q
}

enum Db {
    Pg(PgDatabase),
    Lite(SqliteDatabase),
}

impl Db {
    fn pool(&self) -> Pool {
        match self {
            Db::Pg(db) => Pool::from(db.pool().clone()),
            Db::Lite(db) => Pool::from(db.pool().clone()),
        }
    }

    async fn load(&self, data: &Dataset, types: Types) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Db::Pg(db) => {
                tenantry_metrics::fixture::load_postgres(db.pool(), data).await?;
                for sql in copy_statements(true, types) {
                    sqlx::raw_sql(AssertSqlSafe(sql)).execute(db.pool()).await?;
                }
            }
            Db::Lite(db) => {
                tenantry_metrics::fixture::load_sqlite(db.pool(), data).await?;
                for sql in copy_statements(false, types) {
                    // SQLite drops one table per statement.
                    let sql = sql.replace(
                        "h_tenants, h_memberships, h_grants, h_role_assignments, h_usage",
                        "h_tenants; DROP TABLE IF EXISTS h_memberships; DROP TABLE IF EXISTS h_grants; \
                         DROP TABLE IF EXISTS h_role_assignments; DROP TABLE IF EXISTS h_usage",
                    );
                    sqlx::raw_sql(AssertSqlSafe(sql)).execute(db.pool()).await?;
                }
            }
        }
        Ok(())
    }
}

fn agree(pg: bool, types: Types) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(async {
        if pg {
            let db = PgDatabase::create().await;
            tenantry_metrics::fixture::setup_postgres(db.pool())
                .await
                .expect("schema");
            Db::Pg(db)
        } else {
            let db = SqliteDatabase::create().await;
            tenantry_metrics::fixture::setup_sqlite(db.pool())
                .await
                .expect("schema");
            Db::Lite(db)
        }
    });
    let cache = MetricsCache::default();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let rows = std::cell::Cell::new(0usize);
    runner
        .run(&(support::dataset(), support::shape()), |(data, shape)| {
            let data = typed(&data, types);
            rt.block_on(db.load(&data, types))
                .map_err(|e| TestCaseError::fail(format!("load: {e}")))?;
            let q = query(&data, &shape, types);
            rt.block_on(q.check_schema(&db.pool()))
                .map_err(|e| TestCaseError::fail(format!("check: {e}")))?;
            let expected = q
                .evaluate(&data)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = rt
                .block_on(q.fetch(&db.pool()))
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            proptest::prop_assert_eq!(&expected, &actual);
            let cached = rt
                .block_on(q.fetch_cached(&cache, &db.pool()))
                .map_err(|e| TestCaseError::fail(format!("cached: {e:?}")))?;
            proptest::prop_assert_eq!(&expected, &cached);
            rows.set(rows.get() + expected.len());
            Ok(())
        })
        .expect("Rust and the database agree on typed columns");
    assert!(rows.get() > 0, "some cases returned rows");
}

#[test]
fn postgres_integer_tenants_uuid_users_timestamptz() {
    agree(
        true,
        Types {
            tenants: IdType::Integer,
            users: IdType::Uuid,
            time: TimeType::Timestamptz,
        },
    );
}

#[test]
fn postgres_uuid_tenants_integer_users_unix_seconds() {
    agree(
        true,
        Types {
            tenants: IdType::Uuid,
            users: IdType::Integer,
            time: TimeType::UnixSeconds,
        },
    );
}

#[test]
fn sqlite_integer_ids_iso_text() {
    agree(
        false,
        Types {
            tenants: IdType::Integer,
            users: IdType::Integer,
            time: TimeType::IsoText,
        },
    );
}

#[test]
fn sqlite_integer_tenants_text_users_unix_seconds() {
    agree(
        false,
        Types {
            tenants: IdType::Integer,
            users: IdType::Text,
            time: TimeType::UnixSeconds,
        },
    );
}

#[test]
fn unsupported_types_and_malformed_ids_are_typed_errors() {
    use tenantry_metrics::{Backend, Error};
    let mut q = MetricsQuery::with_schema(Schema::default().with_tenant_ids(IdType::Uuid));
    q.select("users", builtin::users()).expect("select");
    assert!(matches!(
        q.build(Backend::Sqlite),
        Err(Error::UnsupportedType { .. })
    ));
    let mut q = MetricsQuery::with_schema(Schema::default().with_time(TimeType::IsoText));
    q.select("users", builtin::users()).expect("select");
    let err = q.build(Backend::Postgres).unwrap_err();
    assert_eq!(
        err.to_string(),
        "occurred_at cannot be ISO-8601 text on postgres"
    );
    assert!(err.is_invalid());
    let mut q = MetricsQuery::with_schema(Schema::default().with_tenant_ids(IdType::Integer));
    q.select("users", builtin::users()).expect("select");
    for bad in ["acme", "007", "+7", ""] {
        q.scope(Scope::Ids(vec!["1".into(), bad.into()]));
        assert!(
            matches!(q.build(Backend::Sqlite), Err(Error::InvalidId { .. })),
            "{bad}"
        );
        let cache = MetricsCache::default();
        assert!(matches!(
            cache.build(&q, Backend::Postgres),
            Err(Error::InvalidId { .. })
        ));
    }
    q.scope(Scope::Subtree("-42".into()));
    assert!(q.build(Backend::Sqlite).is_ok());
}

/// The startup check names each missing table, missing column and wrong type, on both
/// databases, and passes once the host's tables match.
#[tokio::test]
async fn the_schema_check_names_table_column_and_type() {
    use tenantry_metrics::{Error, SchemaProblem};
    let june = Period::new(1_780_272_000_000_000, 1_782_864_000_000_000).expect("period");
    let query = |schema: Schema| {
        let mut q = MetricsQuery::with_schema(schema);
        q.level(1);
        q.select("users", builtin::users()).expect("select");
        q.select("cost", builtin::cost(june)).expect("select");
        q.select("adoption", builtin::adoption_rate("search", june))
            .expect("select");
        q
    };
    let schema = |time: TimeType| {
        Schema::default()
            .with_table(Table::Tenants, "orgs")
            .and_then(|s| s.with_column(Table::Tenants, "parent_id", "parent"))
            .and_then(|s| s.with_table(Table::Memberships, "members"))
            .and_then(|s| s.with_table(Table::Usage, "ledger"))
            .and_then(|s| s.with_column(Table::Usage, "occurred_at", "created"))
            .expect("names")
            .with_tenant_ids(IdType::Integer)
            .with_time(time)
    };

    let lite = SqliteDatabase::create().await;
    let pool = Pool::from(lite.pool().clone());
    sqlx::raw_sql(
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, parent INTEGER, level INTEGER); \
         CREATE TABLE ledger (tenant_id INTEGER, user_id TEXT, created TEXT, cost_nanos REAL)",
    )
    .execute(lite.pool())
    .await
    .expect("tables");
    let q = query(schema(TimeType::UnixSeconds));
    let err = q.check_schema(&pool).await.unwrap_err();
    let Error::SchemaMismatch(found) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(found.problems().len(), 4, "{err}");
    assert!(matches!(
        &found.problems()[0],
        SchemaProblem::MissingTable { table: Table::Memberships, name } if name == "members"
    ));
    assert_eq!(
        err.to_string(),
        "the host's schema does not match the metrics: \
         memberships table \"members\" does not exist; \
         column ledger.cost_nanos (usage table) is \"REAL\", expected bigint (a 64-bit integer); \
         column ledger.created (usage table) is \"TEXT\", expected bigint Unix seconds (TimeType::UnixSeconds); \
         usage table \"ledger\" has no column \"feature\""
    );
    assert!(err.is_invalid());
    sqlx::raw_sql(
        "CREATE TABLE members (user_id TEXT, tenant_id INTEGER); DROP TABLE ledger; \
         CREATE TABLE ledger (tenant_id INTEGER, user_id TEXT, feature TEXT, created DATETIME, cost_nanos BIGINT)",
    )
    .execute(lite.pool())
    .await
    .expect("tables");
    q.check_schema(&pool)
        .await
        .expect_err("DATETIME is not unix seconds");
    let q = query(schema(TimeType::IsoText));
    q.check_schema(&pool).await.expect("the tables match");
    assert!(q.fetch(&pool).await.expect("runs").is_empty());

    let pg = PgDatabase::create().await;
    let pool = Pool::from(pg.pool().clone());
    sqlx::raw_sql(
        "CREATE TABLE orgs (id uuid PRIMARY KEY, parent uuid, level INT); \
         CREATE TABLE members (user_id TEXT, tenant_id uuid); \
         CREATE TABLE ledger (tenant_id uuid, user_id TEXT, feature TEXT, created TIMESTAMPTZ, cost_nanos INT)",
    )
    .execute(pg.pool())
    .await
    .expect("tables");
    let q = query(schema(TimeType::Timestamptz));
    let err = q.check_schema(&pool).await.unwrap_err();
    let Error::SchemaMismatch(found) = &err else {
        panic!("{err:?}")
    };
    let wrong: Vec<String> = found.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        wrong,
        [
            "column orgs.id (tenants table) is \"uuid\", expected an integer type (IdType::Integer)",
            "column orgs.parent (tenants table) is \"uuid\", expected an integer type (IdType::Integer)",
            "column members.tenant_id (memberships table) is \"uuid\", expected an integer type (IdType::Integer)",
            "column ledger.tenant_id (usage table) is \"uuid\", expected an integer type (IdType::Integer)",
            "column ledger.cost_nanos (usage table) is \"integer\", expected bigint (a 64-bit integer)",
        ]
    );
    let mut q =
        MetricsQuery::with_schema(schema(TimeType::Timestamptz).with_tenant_ids(IdType::Uuid));
    q.level(1);
    q.select("users", builtin::users()).expect("select");
    q.select("adoption", builtin::adoption_rate("search", june))
        .expect("select");
    q.check_schema(&pool).await.expect("the tables match");
    assert!(q.fetch(&pool).await.expect("runs").is_empty());
}
