//! PostgreSQL subscriptions survive their listener connection being killed.

mod support;

use std::time::Duration;

use support::{params, take, tenant};
use tenantry_queue::{JobState, JobStore, LISTENER_APPLICATION_NAME, PgStore, SubmitOptions};

/// Lets new connections into the test database or not (run from the `postgres` database,
/// since a database cannot lock itself out).
async fn allow_connections(db: &tenantry_testkit::PgDatabase, allow: bool) {
    use sqlx::Connection;
    let options: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let mut admin = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {allow}",
        db.name()
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

async fn kill_listener(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LISTENER_APPLICATION_NAME)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn events_written_while_the_listener_is_down_are_delivered_after_it_reconnects() {
    let db = tenantry_testkit::PgDatabase::create().await;
    // A poll far beyond the test's timeouts: only the wake-up path can deliver in time.
    let store = PgStore::open(db.pool().clone())
        .await
        .unwrap()
        .with_poll_interval(Duration::from_secs(600));
    let (a, b) = (tenant("a"), tenant("b"));
    let mut sub_a = store.subscribe(&a).await.unwrap();
    let mut sub_b = store.subscribe(&b).await.unwrap();
    let first = store
        .submit(&a, "f", "u", params("0"), SubmitOptions::new())
        .await
        .unwrap();
    assert_eq!(take(&mut sub_a, 1).await[0].job_id, first);

    for round in 0..3 {
        // Keep the listener from coming back until the writes are done, so only the
        // catch-up after it reconnects can deliver them (the pool's open connections still work).
        allow_connections(&db, false).await;
        assert!(
            kill_listener(db.pool()).await >= 1,
            "round {round}: no listener connection to kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let batch: Vec<_> = (0..5)
            .map(|i| tenantry_queue::Submission::new("f", "u", params(&format!("{round}-{i}"))))
            .collect();
        let ids = store.submit_many(&a, &batch).await.unwrap();
        store.cancel(&a, &ids[0]).await.unwrap();
        allow_connections(&db, true).await;
        let got: Vec<_> = take(&mut sub_a, 6)
            .await
            .into_iter()
            .map(|e| (e.job_id, e.state))
            .collect();
        let mut expected: Vec<_> = ids
            .iter()
            .map(|id| (id.clone(), JobState::Queued))
            .collect();
        expected.push((ids[0].clone(), JobState::Canceled));
        assert_eq!(got, expected, "round {round}");
    }
    // Tenant b saw none of it.
    support::assert_quiet(&mut sub_b, Duration::from_millis(300)).await;
    let late = store
        .submit(&b, "f", "u", params("b"), SubmitOptions::new())
        .await
        .unwrap();
    let got = take(&mut sub_b, 1).await;
    assert_eq!((got[0].job_id.clone(), got[0].tenant.clone()), (late, b));
}

#[tokio::test]
async fn notification_payloads_are_tiny_and_name_only_the_tenant() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let store = PgStore::open(db.pool().clone()).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(db.url()).await.unwrap();
    listener.listen("tenantry_queue_events").await.unwrap();
    let t = tenant("acme");
    let many: Vec<_> = (0..50)
        .map(|i| tenantry_queue::Submission::new("f", "u", params(&"x".repeat(i * 100))))
        .collect();
    store.submit_many(&t, &many).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "acme");
    // One wake-up per transaction and tenant, not one per job.
    let extra = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(extra.is_err(), "unexpected second notification {extra:?}");
}

#[tokio::test]
async fn opening_again_and_concurrently_migrates_once() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move { PgStore::open(pool).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    PgStore::open(db.pool().clone()).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM tenantry_migrations WHERE component = 'queue' ORDER BY version",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
}

/// A TCP proxy to PostgreSQL that can silence the listener connection: bytes stop flowing
/// both ways while both sockets stay open, as when a peer vanishes without a reset.
mod silent {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[derive(Debug, Default)]
    struct State {
        listeners: Vec<usize>,
        silenced: HashSet<usize>,
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Proxy {
        pub(crate) addr: SocketAddr,
        state: Arc<Mutex<State>>,
    }

    impl Proxy {
        pub(crate) async fn start(target: SocketAddr) -> Self {
            let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = Self {
                addr: socket.local_addr().unwrap(),
                state: Arc::default(),
            };
            let state = proxy.state.clone();
            tokio::spawn(async move {
                for id in 0.. {
                    let (client, _) = socket.accept().await.unwrap();
                    let server = TcpStream::connect(target).await.unwrap();
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(id, cr, sw, state.clone(), true));
                    tokio::spawn(pipe(id, sr, cw, state.clone(), false));
                }
            });
            proxy
        }

        /// Silences the newest listener connection; returns how many listener connections
        /// were opened so far.
        pub(crate) fn silence_listener(&self) -> usize {
            let mut state = self.state.lock().unwrap();
            let newest = *state.listeners.last().expect("a listener connected");
            state.silenced.insert(newest);
            state.listeners.len()
        }

        pub(crate) fn listeners(&self) -> usize {
            self.state.lock().unwrap().listeners.len()
        }
    }

    async fn pipe(
        id: usize,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        state: Arc<Mutex<State>>,
        from_client: bool,
    ) {
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let silenced = {
                let mut state = state.lock().unwrap();
                // The startup message names the application in plain text.
                if from_client
                    && buf[..n]
                        .windows(super::LISTENER_APPLICATION_NAME.len())
                        .any(|w| w == super::LISTENER_APPLICATION_NAME.as_bytes())
                {
                    state.listeners.push(id);
                }
                state.silenced.contains(&id)
            };
            if silenced {
                // Keep both sockets open and forward nothing, ever.
                let _keep = (from, to);
                return std::future::pending().await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_listener_whose_connection_goes_silent_is_replaced() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let writer = PgStore::open(db.pool().clone()).await.unwrap();
    let direct: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let target = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = silent::Proxy::start(target).await;
    let via_proxy = direct
        .host("127.0.0.1")
        .port(proxy.addr.port())
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_with(via_proxy)
        .await
        .unwrap();
    // No poll within the test's timeouts: only a working listener delivers in time.
    let reader = PgStore::open(pool)
        .await
        .unwrap()
        .with_poll_interval(Duration::from_secs(600))
        .with_listener_heartbeat(Duration::from_millis(300));
    let t = tenant("acme");
    let mut sub = reader.subscribe(&t).await.unwrap();
    let first = writer
        .submit(&t, "f", "u", params("0"), SubmitOptions::new())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 1).await[0].job_id, first);

    assert_eq!(proxy.silence_listener(), 1);
    let silenced = std::time::Instant::now();
    let second = writer
        .submit(&t, "f", "u", params("1"), SubmitOptions::new())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 1).await[0].job_id, second);
    // Within two heartbeats (plus a reconnect) a new listener replaces the silent one.
    while proxy.listeners() < 2 {
        assert!(
            silenced.elapsed() < Duration::from_secs(5),
            "the silent listener was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new listener carries wake-ups again.
    let third = writer
        .submit(&t, "f", "u", params("2"), SubmitOptions::new())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 1).await[0].job_id, third);
}
