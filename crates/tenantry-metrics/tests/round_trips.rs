//! A dashboard for N tenants costs the same few messages whatever N: one query statement.
//!
//! PostgreSQL is counted on the wire: the connection goes through a local proxy that records
//! every protocol message the client sends, so the count includes what sqlx sends on its own
//! (the transaction that turns JIT off, the queued `ROLLBACK`). A round trip is a message the
//! client then waits on: a simple `Query` or a `Sync`. SQLite runs in process and is counted
//! from the statements sqlx reports (`sqlx::query` events).

mod support;

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tenantry_metrics::{Dataset, MetricsQuery, Scope, TenantRow, fixture};
use tenantry_testkit::{PgDatabase, SqliteDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Counts the statements sqlx reports that read the metrics' tables. The subscriber is global,
/// so it also sees what other connections do meanwhile (a pool's own `PRAGMA`s, a
/// transaction's `BEGIN`); a dashboard that ran a statement per tenant would read the tables
/// once per tenant.
struct CountStatements(Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>);

/// The `db.statement` field of a `sqlx::query` event.
#[derive(Default)]
struct Statement(Option<String>);

impl tracing::field::Visit for Statement {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "db.statement" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        let text = statement.0.unwrap_or_default();
        if text.contains("tenantry_") && !text.trim_start().to_uppercase().starts_with("PRAGMA") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        self.1.lock().unwrap().push(text);
    }
}

/// One frontend message: its type byte and, for `Query` and `Parse`, its SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    kind: char,
    sql: Option<String>,
}

type Wire = Arc<Mutex<Vec<Message>>>;

fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[(end + 1).min(bytes.len())..],
    )
}

fn record(wire: &Wire, frame: &[u8]) {
    let kind = char::from(frame[0]);
    let body = &frame[5..];
    let sql = match kind {
        'Q' => Some(cstr(body).0),
        'P' => Some(cstr(cstr(body).1).0),
        _ => None,
    };
    wire.lock().expect("wire log").push(Message { kind, sql });
}

/// Forwards one client connection to `upstream`, logging each message the client sends
/// before forwarding it (so a reply the client has seen implies a logged request).
async fn proxy(upstream: (String, u16), wire: Wire) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("accept");
        let server = TcpStream::connect(upstream)
            .await
            .expect("connect upstream");
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        // Startup packets (SSL request, startup message) have no type byte.
        let mut typed = false;
        loop {
            let n = from_client.read(&mut chunk).await.expect("read");
            if n == 0 {
                return;
            }
            pending.extend_from_slice(&chunk[..n]);
            loop {
                let header = if typed { 5 } else { 4 };
                if pending.len() < header {
                    break;
                }
                let len_bytes: [u8; 4] = pending[header - 4..header].try_into().expect("4 bytes");
                let len = u32::from_be_bytes(len_bytes) as usize;
                let total = if typed { len + 1 } else { len };
                if pending.len() < total {
                    break;
                }
                let frame: Vec<u8> = pending.drain(..total).collect();
                if typed {
                    record(&wire, &frame);
                } else {
                    let code = u32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
                    // 80877103: SSLRequest, 80877104: GSSENCRequest; anything else is the
                    // startup message, after which every message is typed.
                    typed = !matches!(code, 80_877_103 | 80_877_104);
                }
                to_server.write_all(&frame).await.expect("forward");
            }
        }
    });
    port
}

fn forest(n: usize) -> Dataset {
    let tenants = (0..n)
        .map(|i| {
            TenantRow::new(
                format!("t{i}"),
                (i > 0).then(|| format!("t{}", (i - 1) / 3)).as_deref(),
                0,
            )
        })
        .collect();
    let mut data = Dataset::default();
    data.tenants = tenants;
    data
}

fn dashboard() -> MetricsQuery {
    let mut q = MetricsQuery::new();
    for (name, m) in support::all_metrics() {
        q.select(name, m).expect("select");
    }
    q.scope(Scope::All);
    q
}

fn take(wire: &Wire) -> Vec<Message> {
    std::mem::take(&mut *wire.lock().expect("wire log"))
}

fn round_trips(messages: &[Message]) -> usize {
    messages
        .iter()
        .filter(|m| matches!(m.kind, 'Q' | 'S'))
        .count()
}

fn simple_queries(messages: &[Message]) -> Vec<&str> {
    messages
        .iter()
        .filter(|m| m.kind == 'Q')
        .filter_map(|m| m.sql.as_deref())
        .collect()
}

#[test]
fn one_query_statement_for_any_number_of_tenants() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let count = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let subscriber =
        tracing_subscriber::registry().with(CountStatements(count.clone(), seen.clone()));
    // Global: SQLite runs statements on its own worker thread.
    tracing::subscriber::set_global_default(subscriber)
        .expect("only subscriber of this test binary");
    let pg = rt.block_on(PgDatabase::create());
    let lite = rt.block_on(SqliteDatabase::create());
    rt.block_on(fixture::setup_postgres(pg.pool())).expect("pg");
    rt.block_on(fixture::setup_sqlite(lite.pool()))
        .expect("sqlite");

    let wire: Wire = Arc::default();
    let options = PgConnectOptions::from_str(pg.url()).expect("url");
    let upstream = (options.get_host().to_owned(), options.get_port());
    let port = rt.block_on(proxy(upstream, wire.clone()));
    let mut conn: PgConnection = rt
        .block_on(PgConnection::connect_with(
            &options
                .host("127.0.0.1")
                .port(port)
                .ssl_mode(PgSslMode::Disable),
        ))
        .expect("connect through the proxy");

    let q = dashboard();
    let mut per_fetch = Vec::new();
    for n in [1, 10, 300] {
        let data = forest(n);
        rt.block_on(fixture::load_postgres(pg.pool(), &data))
            .expect("load");
        rt.block_on(fixture::load_sqlite(lite.pool(), &data))
            .expect("load");

        // The first run prepares the statement (sqlx caches it per connection).
        rt.block_on(q.fetch_postgres(&mut conn)).expect("pg fetch");
        rt.block_on(conn.ping()).expect("ping");
        take(&wire);
        let rows = rt.block_on(q.fetch_postgres(&mut conn)).expect("pg fetch");
        let fetch = take(&wire);
        // The ROLLBACK is queued by the fetch and leaves with the connection's next message.
        rt.block_on(conn.ping()).expect("ping");
        let after = take(&wire);
        assert_eq!(rows.len(), n);
        assert_eq!(
            fetch.iter().filter(|m| m.kind == 'E').count(),
            1,
            "one executed statement, {n} tenants: {fetch:?}"
        );
        assert_eq!(
            simple_queries(&fetch),
            ["BEGIN READ ONLY; SET LOCAL jit = off"],
            "{n} tenants"
        );
        assert_eq!(round_trips(&fetch), 2, "{n} tenants: {fetch:?}");
        assert_eq!(simple_queries(&after), ["ROLLBACK"], "{n} tenants");
        per_fetch.push(fetch.iter().map(|m| m.kind).collect::<String>());

        count.store(0, Ordering::SeqCst);
        seen.lock().unwrap().clear();
        let rows = rt
            .block_on(q.fetch_sqlite(lite.pool()))
            .expect("sqlite fetch");
        assert_eq!(rows.len(), n);
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "SQLite, {n} tenants: {:?}",
            seen.lock().unwrap()
        );
    }
    assert!(
        per_fetch.windows(2).all(|w| w[0] == w[1]),
        "the same messages whatever N: {per_fetch:?}"
    );
}

#[test]
fn jit_is_off_for_the_query_only() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pg = rt.block_on(PgDatabase::create());
    rt.block_on(async {
        fixture::setup_postgres(pg.pool()).await?;
        fixture::load_postgres(pg.pool(), &forest(5)).await?;
        let mut conn = pg.pool().acquire().await?;
        sqlx::raw_sql("SET jit = on").execute(&mut *conn).await?;
        let q = dashboard();
        assert_eq!(q.fetch_postgres(&mut *conn).await?.len(), 5);
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(&mut *conn).await?;
        assert_eq!(jit, "on", "the session's setting is restored");

        // Inside the caller's transaction: a savepoint, rolled back.
        let mut tx = conn.begin().await?;
        sqlx::raw_sql("SET LOCAL jit = on")
            .execute(&mut *tx)
            .await?;
        assert_eq!(q.fetch_postgres(&mut tx).await?.len(), 5);
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(&mut *tx).await?;
        assert_eq!(jit, "on", "the transaction's setting is restored");
        tx.commit().await?;
        Ok::<_, tenantry_metrics::Error>(())
    })
    .expect("fetch on a session and inside a transaction");
}
