//! A dashboard for N tenants is one SQL statement, whatever N: counted from the statements
//! sqlx itself reports (`sqlx::query` events).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tenantry_metrics::{Dataset, MetricsQuery, Scope, TenantRow, fixture};
use tenantry_testkit::{PgDatabase, SqliteDatabase};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

struct CountStatements(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn forest(n: usize) -> Dataset {
    let tenants = (0..n)
        .map(|i| TenantRow {
            id: format!("t{i}"),
            parent_id: (i > 0).then(|| format!("t{}", (i - 1) / 3)),
            level: 0,
        })
        .collect();
    Dataset {
        tenants,
        ..Dataset::default()
    }
}

fn dashboard() -> MetricsQuery {
    let mut q = MetricsQuery::new();
    for (name, m) in support::all_metrics() {
        q.select(name, m).expect("select");
    }
    q.scope(Scope::All);
    q
}

#[test]
fn one_statement_for_any_number_of_tenants() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let count = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(CountStatements(count.clone()));
    // Global: SQLite runs statements on its own worker thread.
    tracing::subscriber::set_global_default(subscriber)
        .expect("only subscriber of this test binary");
    let pg = rt.block_on(PgDatabase::create());
    let lite = rt.block_on(SqliteDatabase::create());
    rt.block_on(fixture::setup_postgres(pg.pool())).expect("pg");
    rt.block_on(fixture::setup_sqlite(lite.pool()))
        .expect("sqlite");
    let q = dashboard();
    for n in [1, 10, 300] {
        let data = forest(n);
        rt.block_on(fixture::load_postgres(pg.pool(), &data))
            .expect("load");
        rt.block_on(fixture::load_sqlite(lite.pool(), &data))
            .expect("load");

        count.store(0, Ordering::SeqCst);
        let rows = rt.block_on(q.fetch_postgres(pg.pool())).expect("pg fetch");
        assert_eq!(rows.len(), n);
        assert_eq!(count.load(Ordering::SeqCst), 1, "PostgreSQL, {n} tenants");

        count.store(0, Ordering::SeqCst);
        let rows = rt
            .block_on(q.fetch_sqlite(lite.pool()))
            .expect("sqlite fetch");
        assert_eq!(rows.len(), n);
        assert_eq!(count.load(Ordering::SeqCst), 1, "SQLite, {n} tenants");
    }
}
