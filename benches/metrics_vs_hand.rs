//! Four tenant metrics (members, cost, cost per member, adoption of one feature) through
//! `MetricsQuery` against the SQL a strong engineer writes by hand, on PostgreSQL and SQLite.
//!
//! Run with: `cargo bench --bench metrics_vs_hand -- [orgs] [usage_rows] [pg|sqlite|both] [runs]`
//! (defaults 100 organizations = 10,100 tenants, 1,000,000 ledger rows, both databases, the
//! median of 3 runs after one warm-up; with `CI` set, a smoke run of a few seconds whose figures
//! are not benchmarks).
//!
//! The dataset (seeded server-side): `orgs` organizations (level 0) × 5 departments (level 1)
//! × 19 teams (level 2, the leaves), 10 members per team, `usage_rows` ledger rows on the
//! teams' members spread over 30 days and three features. For `orgs = 100`: 9,500 teams,
//! 95,000 members (the shape of issue 17).
//!
//! Two groupings, each timed as the library renders it and as hand-written SQL:
//! - one level: the 9,500 teams (leaves);
//! - roll-up: the organizations, each over its whole subtree.
//!
//! Hand-written comparisons: the best hand query (ledger pre-aggregated per tenant with one
//! `WHERE` on the period, then joined), for the roll-up a hand recursive CTE, on SQLite also
//! both forced to scan the ledger (`NOT INDEXED`), and sequential N+1 (one query per group,
//! awaited one by one). Every variant's rows are compared with the library's: all must agree.
//! The SQLAlchemy hybrid-property comparison needs a Python environment and is not run here.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};
use tenantry_metrics::builtin::{self, Period};
use tenantry_metrics::{Metric, MetricRow, MetricsQuery, fixture};

/// 2026-01-01T00:00:00Z and 30 days later, Unix microseconds.
const START: i64 = 1_767_225_600_000_000;
const DAYS_30: i64 = 30 * 86_400_000_000;
const FEATURE: &str = "f1";

type Row4 = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

fn period() -> Period {
    Period::new(START, START + DAYS_30).expect("period")
}

fn four(level: i32) -> MetricsQuery {
    let p = period();
    let mut q = MetricsQuery::new();
    q.level(level);
    q.select("members", builtin::users()).expect("select");
    q.select("cost", builtin::cost(p)).expect("select");
    let per: Metric = builtin::cost(p).per(builtin::users());
    q.select("cost_per_member", per).expect("select");
    q.select("adoption_ppm", builtin::adoption_rate(FEATURE, p))
        .expect("select");
    q
}

fn rows4(rows: &[MetricRow]) -> Vec<Row4> {
    rows.iter()
        .map(|r| {
            let v = r.values();
            (r.tenant_id().to_owned(), v[0], v[1], v[2], v[3])
        })
        .collect()
}

/// The seed, one statement per line; `$O` organizations and `$R` ledger rows are substituted.
/// `SERIES(n)` is `generate_series(0, n - 1) s(i)` on PostgreSQL and a recursive CTE on SQLite.
const SEED: &[&str] = &[
    "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'o' || i, NULL, 0 FROM SERIES($O)",
    "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'd' || i, 'o' || (i / 5), 1 FROM SERIES(5 * $O)",
    "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 't' || i, 'd' || (i / 19), 2 FROM SERIES(95 * $O)",
    "INSERT INTO tenantry_users (id) SELECT 'u' || i FROM SERIES(950 * $O)",
    "INSERT INTO tenantry_memberships (user_id, tenant_id) SELECT 'u' || i, 't' || (i / 10) FROM SERIES(950 * $O)",
    "INSERT INTO tenantry_usage (tenant_id, user_id, feature, model, lane, occurred_at, input_tokens, \
     output_tokens, cost_nanos, standard_cost_nanos) \
     SELECT 't' || ((i * 7919) % (95 * $O)), 'u' || (((i * 7919) % (95 * $O)) * 10 + (i / 7) % 10), \
     'f' || ((i / 3) % 3), 'm' || (i % 2), 'sync', $TIME, \
     i % 1000, i % 500, (i % 1000) * 1000 + 1, (i % 1000) * 1000 + 1 FROM SERIES($R)",
];

fn seed_sql(stmt: &str, orgs: i64, rows: i64, pg: bool) -> String {
    // Time: spread evenly over 30 days, integer arithmetic on both databases.
    let stmt = stmt.replace("$TIME", &format!("{START} + (i * {DAYS_30}) / {rows}"));
    let stmt = stmt
        .replace("$O", &orgs.to_string())
        .replace("$R", &rows.to_string());
    let start = stmt.find("SERIES(").expect("series");
    let end = start + stmt[start..].find(')').expect("close");
    let n = &stmt[start + 7..end];
    if pg {
        format!(
            "{}generate_series(CAST(0 AS BIGINT), {n} - 1) s(i){}",
            &stmt[..start],
            &stmt[end + 1..]
        )
    } else {
        format!(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n} - 1) {}s{}",
            &stmt[..start],
            &stmt[end + 1..]
        )
    }
}

/// The best hand query, one level (`level` groups, no roll-up): members, ledger cost and the
/// feature's distinct (tenant, user) pairs each pre-aggregated per tenant (hash aggregates, the
/// ledger filtered by the period in `WHERE`), then joined on the tenant id. SQLite's
/// `NOT INDEXED` goes after the ledger when `not_indexed`.
fn hand_one_level(level: i32, pg: bool, not_indexed: bool) -> String {
    let ni = if not_indexed { " NOT INDEXED" } else { "" };
    let p = |n: usize| if pg { format!("${n}") } else { format!("?{n}") };
    let order = if pg { "t.id COLLATE \"C\"" } else { "t.id" };
    let cost = if pg {
        "CAST(SUM(cost_nanos) AS BIGINT)"
    } else {
        "SUM(cost_nanos)"
    };
    format!(
        "WITH m AS (SELECT tenant_id, COUNT(DISTINCT user_id) AS members FROM tenantry_memberships GROUP BY tenant_id), \
         u AS (SELECT tenant_id, {cost} AS cost FROM tenantry_usage{ni} \
               WHERE occurred_at >= {s} AND occurred_at < {e} GROUP BY tenant_id), \
         a AS (SELECT tenant_id, COUNT(*) AS adopters FROM (SELECT DISTINCT tenant_id, user_id \
               FROM tenantry_usage{ni} WHERE occurred_at >= {s} AND occurred_at < {e} AND feature = {f}) x \
               GROUP BY tenant_id) \
         SELECT t.id, COALESCE(m.members, 0), u.cost, u.cost / NULLIF(COALESCE(m.members, 0), 0), \
                COALESCE(a.adopters, 0) * 1000000 / NULLIF(COALESCE(m.members, 0), 0) \
         FROM tenantry_tenants t LEFT JOIN m ON m.tenant_id = t.id LEFT JOIN u ON u.tenant_id = t.id \
         LEFT JOIN a ON a.tenant_id = t.id WHERE t.level = {level} ORDER BY {order}",
        s = p(1),
        e = p(2),
        f = p(3),
    )
}

/// The hand roll-up: a recursive CTE from each group down its subtree, members and ledger
/// pre-aggregated per tenant (distinct users as (tenant, user) pairs), then combined per group.
fn hand_rollup(level: i32, pg: bool, not_indexed: bool) -> String {
    let ni = if not_indexed { " NOT INDEXED" } else { "" };
    let p = |n: usize| if pg { format!("${n}") } else { format!("?{n}") };
    let order = if pg { "g.id COLLATE \"C\"" } else { "g.id" };
    let cast = |e: &str| {
        if pg {
            format!("CAST({e} AS BIGINT)")
        } else {
            e.to_owned()
        }
    };
    format!(
        "WITH RECURSIVE tree(gid, tid) AS (SELECT id, id FROM tenantry_tenants WHERE level = {level} \
           UNION ALL SELECT tree.gid, t.id FROM tree JOIN tenantry_tenants t ON t.parent_id = tree.tid), \
         pu AS (SELECT tenant_id, SUM(cost_nanos) AS cost FROM tenantry_usage{ni} \
                WHERE occurred_at >= {s} AND occurred_at < {e} GROUP BY tenant_id), \
         pa AS (SELECT DISTINCT tenant_id, user_id FROM tenantry_usage{ni} \
                WHERE occurred_at >= {s} AND occurred_at < {e} AND feature = {f}), \
         m AS (SELECT tree.gid, COUNT(DISTINCT mm.user_id) AS members FROM tree \
               JOIN tenantry_memberships mm ON mm.tenant_id = tree.tid GROUP BY tree.gid), \
         c AS (SELECT tree.gid, {sum} AS cost FROM tree JOIN pu ON pu.tenant_id = tree.tid GROUP BY tree.gid), \
         a AS (SELECT tree.gid, COUNT(DISTINCT pa.user_id) AS adopters FROM tree \
               JOIN pa ON pa.tenant_id = tree.tid GROUP BY tree.gid) \
         SELECT g.id, COALESCE(m.members, 0), c.cost, c.cost / NULLIF(COALESCE(m.members, 0), 0), \
                COALESCE(a.adopters, 0) * 1000000 / NULLIF(COALESCE(m.members, 0), 0) \
         FROM tenantry_tenants g LEFT JOIN m ON m.gid = g.id LEFT JOIN c ON c.gid = g.id \
         LEFT JOIN a ON a.gid = g.id WHERE g.level = {level} ORDER BY {order}",
        s = p(1),
        e = p(2),
        f = p(3),
        sum = cast("SUM(pu.cost)"),
    )
}

/// One group's four metrics over its subtree: the N+1 pattern's per-tenant query.
fn hand_one_group(pg: bool) -> String {
    let p = |n: usize| if pg { format!("${n}") } else { format!("?{n}") };
    let cost = if pg {
        "CAST(SUM(cost_nanos) AS BIGINT)"
    } else {
        "SUM(cost_nanos)"
    };
    format!(
        "WITH RECURSIVE tree(tid) AS (SELECT {g} UNION ALL SELECT t.id FROM tree \
           JOIN tenantry_tenants t ON t.parent_id = tree.tid), \
         m AS (SELECT COUNT(DISTINCT user_id) AS members FROM tenantry_memberships WHERE tenant_id IN (SELECT tid FROM tree)), \
         u AS (SELECT {cost} AS cost, COUNT(DISTINCT user_id) FILTER (WHERE feature = {f}) AS adopters \
               FROM tenantry_usage WHERE tenant_id IN (SELECT tid FROM tree) \
               AND occurred_at >= {s} AND occurred_at < {e}) \
         SELECT {g2}, m.members, u.cost, u.cost / NULLIF(m.members, 0), \
                u.adopters * 1000000 / NULLIF(m.members, 0) FROM m, u",
        g = if pg {
            "CAST($4 AS TEXT)".to_owned()
        } else {
            p(4)
        },
        g2 = if pg {
            "CAST($4 AS TEXT)".to_owned()
        } else {
            p(4)
        },
        s = p(1),
        e = p(2),
        f = p(3),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Report {
    db: &'static str,
    grouping: &'static str,
    library: Duration,
}

impl Report {
    fn line(&self, what: &str, t: Duration) {
        println!(
            "{:<8} {:<10} {:<44} {:>10.1} ms  library/this = {:.2}",
            self.db,
            self.grouping,
            what,
            ms(t),
            self.library.as_secs_f64() / t.as_secs_f64()
        );
    }
}

async fn pg_rows(pool: &PgPool, sql: &str, group: Option<&str>) -> Result<Vec<Row4>, sqlx::Error> {
    let p = period().bounds().expect("bounded");
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .bind(p.0)
        .bind(p.1)
        .bind(FEATURE);
    if let Some(g) = group {
        q = q.bind(g.to_owned());
    }
    let mut tx = pool.begin().await?;
    sqlx::raw_sql("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await?;
    let rows = q.fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

async fn lite_rows(
    pool: &SqlitePool,
    sql: &str,
    group: Option<&str>,
) -> Result<Vec<Row4>, sqlx::Error> {
    let p = period().bounds().expect("bounded");
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .bind(p.0)
        .bind(p.1)
        .bind(FEATURE);
    if let Some(g) = group {
        q = q.bind(g.to_owned());
    }
    let rows = q.fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

enum Db {
    Pg(PgPool),
    Lite(SqlitePool),
}

impl Db {
    async fn library(&self, q: &MetricsQuery) -> Result<Vec<Row4>, Box<dyn std::error::Error>> {
        Ok(rows4(&match self {
            Db::Pg(pool) => q.fetch_postgres(pool).await?,
            Db::Lite(pool) => q.fetch_sqlite(pool).await?,
        }))
    }

    async fn hand(&self, sql: &str, group: Option<&str>) -> Result<Vec<Row4>, sqlx::Error> {
        match self {
            Db::Pg(pool) => pg_rows(pool, sql, group).await,
            Db::Lite(pool) => lite_rows(pool, sql, group).await,
        }
    }

    /// `sql` with sea-query's `values` bound (SQLite only).
    async fn bound(
        &self,
        sql: &str,
        values: &[sea_query::Value],
    ) -> Result<Vec<Row4>, sqlx::Error> {
        let Db::Lite(pool) = self else {
            unreachable!("SQLite only")
        };
        let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for v in values {
            q = match v {
                sea_query::Value::BigInt(x) => q.bind(*x),
                sea_query::Value::Int(x) => q.bind(*x),
                sea_query::Value::String(x) => q.bind(x.clone()),
                other => unreachable!("the four metrics bind no {other:?}"),
            };
        }
        let rows = q.fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect()
    }

    fn pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

async fn timed<F, Fut, T>(
    runs: usize,
    mut f: F,
) -> Result<(Duration, T), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Box<dyn std::error::Error>>>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await?);
        times.push(t.elapsed());
    }
    Ok((median(times), last.expect("at least one run")))
}

async fn compare(
    db: &Db,
    name: &'static str,
    runs: usize,
    n1_runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let pg = db.pg();
    for (grouping, level) in [("one level", 2), ("roll-up", 0)] {
        let q = four(level);
        // Warm the caches once.
        let reference = db.library(&q).await?;
        let (library, rows) = timed(runs, || async { db.library(&q).await }).await?;
        assert_eq!(rows, reference);
        let report = Report {
            db: name,
            grouping,
            library,
        };
        report.line(&format!("library ({} groups)", rows.len()), library);
        let mut hands: Vec<(&str, String)> = vec![
            (
                "hand: pre-aggregated, one level",
                hand_one_level(level, pg, false),
            ),
            ("hand: recursive CTE roll-up", hand_rollup(level, pg, false)),
        ];
        if level != 2 {
            hands.remove(0);
        }
        if !pg {
            if level == 2 {
                hands.push((
                    "hand: pre-aggregated, NOT INDEXED",
                    hand_one_level(level, pg, true),
                ));
            }
            hands.push((
                "hand: recursive CTE, NOT INDEXED",
                hand_rollup(level, pg, true),
            ));
        }
        if !pg {
            // The library's SQL as rendered before SQLite's ledger was marked NOT INDEXED.
            let (sql, values) = q.build(tenantry_metrics::Backend::Sqlite)?;
            let before = sql.replace(" NOT INDEXED", "");
            let (t, rows) =
                timed(runs, || async { Ok(db.bound(&before, &values.0).await?) }).await?;
            assert_eq!(
                rows, reference,
                "the earlier SQL disagrees with the library"
            );
            report.line("library SQL before NOT INDEXED", t);
        }
        for (what, sql) in &hands {
            let (t, rows) = timed(runs, || async { Ok(db.hand(sql, None).await?) }).await?;
            assert_eq!(rows, reference, "{what} disagrees with the library");
            report.line(what, t);
        }
        // Sequential N+1: the first `n1_runs` groups, scaled to all groups.
        let one = hand_one_group(pg);
        let groups: Vec<&str> = reference.iter().map(|r| r.0.as_str()).collect();
        let sample = &groups[..groups.len().min(n1_runs)];
        let t = Instant::now();
        for (g, expected) in sample.iter().zip(&reference) {
            let rows = db.hand(&one, Some(g)).await?;
            assert_eq!(rows.first(), Some(expected), "N+1 disagrees on {g}");
        }
        let per = t.elapsed().as_secs_f64() / sample.len().max(1) as f64;
        let all = Duration::from_secs_f64(per * groups.len() as f64);
        report.line(
            &format!(
                "sequential N+1 ({} of {} groups, scaled)",
                sample.len(),
                groups.len()
            ),
            all,
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("CI").is_some();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let orgs: i64 = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if smoke { 2 } else { 100 });
    let rows: i64 = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if smoke { 20_000 } else { 1_000_000 });
    let which = args.get(2).map_or("both", String::as_str);
    let runs: usize = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if smoke { 1 } else { 3 });
    let n1 = if smoke { 20 } else { 500 };
    if smoke {
        println!("CI is set: smoke run (figures are not benchmarks)");
    }
    println!(
        "{} tenants ({orgs} organizations, {} teams), {} members, {rows} ledger rows over 30 days",
        101 * orgs,
        95 * orgs,
        950 * orgs
    );
    if which != "sqlite" {
        let db = tenantry_testkit::PgDatabase::create().await;
        fixture::setup_postgres(db.pool()).await?;
        let t = Instant::now();
        let mut tx = db.pool().begin().await?;
        for stmt in SEED {
            sqlx::raw_sql(AssertSqlSafe(seed_sql(stmt, orgs, rows, true)))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(db.pool()).await?;
        println!("postgres: seeded in {:?}", t.elapsed());
        compare(&Db::Pg(db.pool().clone()), "postgres", runs, n1).await?;
    }
    if which != "pg" {
        let db = tenantry_testkit::SqliteDatabase::create().await;
        fixture::setup_sqlite(db.pool()).await?;
        let t = Instant::now();
        let mut tx = db.pool().begin().await?;
        for stmt in SEED {
            sqlx::raw_sql(AssertSqlSafe(seed_sql(stmt, orgs, rows, false)))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        sqlx::raw_sql("ANALYZE").execute(db.pool()).await?;
        println!(
            "sqlite: seeded in {:?} ({})",
            t.elapsed(),
            db.path().display()
        );
        compare(&Db::Lite(db.pool().clone()), "sqlite", runs, n1).await?;
    }
    Ok(())
}
