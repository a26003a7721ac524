//! A fresh PostgreSQL database per test, on whichever server this machine can offer.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;

use crate::cluster::{ThrowawayCluster, unique_suffix};

const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const NAME_PREFIX: &str = "tenantry_t_";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server every test of this process uses, resolved once.
static SERVER: Mutex<Option<Server>> = Mutex::const_new(None);

#[derive(Debug, Clone)]
struct Server {
    admin_url: String,
    /// Keeps the throw-away cluster's handle for the life of the process.
    _cluster: Option<std::sync::Arc<ThrowawayCluster>>,
}

/// A database created for one test and dropped when this value is dropped.
///
/// Databases left behind by a process that died are dropped by the next test run on the
/// same machine.
#[derive(Debug)]
pub struct PgDatabase {
    pool: PgPool,
    name: String,
    url: String,
    admin_url: String,
}

impl PgDatabase {
    /// Creates a new empty database and a pool of up to 10 connections to it.
    ///
    /// # Panics
    ///
    /// When no PostgreSQL server can be had; the message says how to provide one.
    pub async fn create() -> Self {
        match Self::try_create().await {
            Ok(db) => db,
            Err(reason) => panic!("{reason}"),
        }
    }

    /// Like [`PgDatabase::create`], returning the reason instead of panicking.
    ///
    /// # Errors
    ///
    /// A message naming the three ways to provide a server and why each one failed.
    pub async fn try_create() -> Result<Self, String> {
        let server = server().await?;
        let name = format!("{NAME_PREFIX}{}_{}", std::process::id(), unique_suffix());
        let mut admin = connect(&server.admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("cannot create test database {name}: {e}"))?;
        admin.close().await.ok();
        let url = database_url(&server.admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .map_err(|e| format!("cannot connect to test database {name}: {e}"))?;
        Ok(Self {
            pool,
            name,
            url,
            admin_url: server.admin_url,
        })
    }

    /// The pool connected to this test's database.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The URL of this test's database, for listeners, extra pools and child processes.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on its own futures: the
        // drop statement gets a runtime of its own on a plain thread.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = connect(&admin_url).await {
                    drop_database(&mut admin, &name).await;
                    admin.close().await.ok();
                }
            });
        });
        dropper.join().ok();
    }
}

async fn server() -> Result<Server, String> {
    let mut slot = SERVER.lock().await;
    if let Some(server) = slot.as_ref() {
        return Ok(server.clone());
    }
    let server = resolve().await?;
    drop_stale_databases(&server.admin_url).await;
    *slot = Some(server.clone());
    Ok(server)
}

async fn resolve() -> Result<Server, String> {
    let forced = std::env::var("TENANTRY_TEST_PG").is_ok_and(|v| v == "throwaway");
    let mut tried = Vec::new();
    if forced {
        tried.push(
            "DATABASE_URL and 127.0.0.1:5432: skipped, TENANTRY_TEST_PG=throwaway".to_owned(),
        );
    } else {
        match std::env::var("DATABASE_URL") {
            Ok(url) => match connect(&url).await {
                Ok(conn) => {
                    conn.close().await.ok();
                    return Ok(Server {
                        admin_url: url,
                        _cluster: None,
                    });
                }
                Err(e) => tried.push(format!("DATABASE_URL={}: {e}", redact(&url))),
            },
            Err(_) => tried.push("DATABASE_URL: not set".to_owned()),
        }
        match connect(LOCAL_SERVER).await {
            Ok(conn) => {
                conn.close().await.ok();
                return Ok(Server {
                    admin_url: LOCAL_SERVER.to_owned(),
                    _cluster: None,
                });
            }
            Err(e) => tried.push(format!("{LOCAL_SERVER}: {e}")),
        }
    }
    match tokio::task::spawn_blocking(ThrowawayCluster::start).await {
        Ok(Ok(cluster)) => {
            let admin_url = cluster.url();
            connect(&admin_url).await?.close().await.ok();
            Ok(Server {
                admin_url,
                _cluster: Some(std::sync::Arc::new(cluster)),
            })
        }
        Ok(Err(e)) => {
            tried.push(format!("throw-away cluster: {e}"));
            Err(no_server_message(&tried))
        }
        Err(e) => {
            tried.push(format!("throw-away cluster: {e}"));
            Err(no_server_message(&tried))
        }
    }
}

fn no_server_message(tried: &[String]) -> String {
    format!(
        "this test needs PostgreSQL and none could be had. Provide one of:\n  \
         1. DATABASE_URL=postgres://user@host:port/db pointing at a server where the user may CREATE DATABASE;\n  \
         2. a server on 127.0.0.1:5432 accepting user `postgres` with trust authentication;\n  \
         3. PostgreSQL's `initdb` and `pg_ctl` on PATH or under /usr/lib/postgresql/<version>/bin \
         (e.g. `apt-get install postgresql`), so a throw-away cluster can be started.\n\
         What was tried:\n  - {}",
        tried.join("\n  - ")
    )
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("bad PostgreSQL URL {}: {e}", redact(url)))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Hides the password of a URL before it goes into a message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn drop_database(admin: &mut PgConnection, name: &str) {
    // Names are generated here from digits and underscores only, so quoting is enough.
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(admin)
        .await
        .ok();
}

/// Drops test databases whose creating process no longer runs on this machine.
async fn drop_stale_databases(admin_url: &str) {
    let local = ["@127.0.0.1", "@localhost", "@[::1]", "host=/"]
        .iter()
        .any(|marker| admin_url.contains(marker));
    if !local {
        return;
    }
    let Ok(mut admin) = connect(admin_url).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{NAME_PREFIX}%"))
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name[NAME_PREFIX.len()..]
            .split('_')
            .next()
            .unwrap_or_default();
        let alive = !pid.is_empty() && std::path::Path::new("/proc").join(pid).exists();
        if !alive {
            drop_database(&mut admin, &name).await;
        }
    }
    admin.close().await.ok();
}

#[cfg(test)]
mod tests {
    use super::{database_url, redact};

    #[test]
    fn database_url_replaces_only_the_database() {
        assert_eq!(
            database_url("postgres://u:p@h:5/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
