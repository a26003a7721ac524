//! The registry writes tenants, users and memberships where the schema says, on both backends,
//! and leaves rows already there as they are.

use sea_query::{Alias, Order, Query};
use tenantry_core::TenantId;
use tenantry_core::db::Pool;
use tenantry_metrics::{MetricsQuery, Registry, Schema, Scope, Table, builtin};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

/// The host's own tables, every name other than the defaults.
const HOST_TABLES: &str = "
CREATE TABLE orgs (
    org_id      TEXT PRIMARY KEY,
    parent      TEXT NULL REFERENCES orgs (org_id),
    depth_level INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE people (uid TEXT PRIMARY KEY);
CREATE TABLE members (
    uid TEXT NOT NULL REFERENCES people (uid),
    org TEXT NOT NULL REFERENCES orgs (org_id),
    PRIMARY KEY (uid, org)
)";

fn host_schema() -> Schema {
    let rename = || -> tenantry_metrics::Result<Schema> {
        Schema::default()
            .with_table(Table::Tenants, "orgs")?
            .with_column(Table::Tenants, "id", "org_id")?
            .with_column(Table::Tenants, "parent_id", "parent")?
            .with_column(Table::Tenants, "level", "depth_level")?
            .with_table(Table::Users, "people")?
            .with_column(Table::Users, "id", "uid")?
            .with_table(Table::Memberships, "members")?
            .with_column(Table::Memberships, "user_id", "uid")?
            .with_column(Table::Memberships, "tenant_id", "org")
    };
    rename().expect("valid names")
}

/// The names the checks read back, per table: (table, columns).
struct Names {
    tenants: (&'static str, [&'static str; 3]),
    users: (&'static str, &'static str),
    memberships: (&'static str, [&'static str; 2]),
}

const DEFAULT: Names = Names {
    tenants: ("tenantry_tenants", ["id", "parent_id", "level"]),
    users: ("tenantry_users", "id"),
    memberships: ("tenantry_memberships", ["user_id", "tenant_id"]),
};

const HOST: Names = Names {
    tenants: ("orgs", ["org_id", "parent", "depth_level"]),
    users: ("people", "uid"),
    memberships: ("members", ["uid", "org"]),
};

fn id(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant id")
}

async fn registers(pool: &Pool, schema: Schema, names: &Names) {
    let registry = Registry::new(schema.clone());
    let (org, team, solo) = (id("org"), id("team"), id("solo"));
    registry.add_tenant(pool, &org, None).await.expect("org");
    registry
        .add_tenant(pool, &team, Some(&org))
        .await
        .expect("team");
    // Already in the tree: left where it is.
    registry.add_tenant(pool, &team, None).await.expect("again");
    registry
        .add_member(pool, &team, "ana")
        .await
        .expect("member");
    registry
        .add_member(pool, &team, "ana")
        .await
        .expect("member again");
    registry
        .add_member(pool, &solo, "bob")
        .await
        .expect("member of a new tenant");
    assert!(matches!(
        registry
            .add_tenant(pool, &id("stray"), Some(&id("nobody")))
            .await,
        Err(sqlx::Error::Database(_))
    ));

    let (table, [c_id, c_parent, c_level]) = names.tenants;
    let tenants: Vec<(String, Option<String>, i32)> = pool
        .fetch_all(
            &Query::select()
                .columns([Alias::new(c_id), Alias::new(c_parent), Alias::new(c_level)])
                .from(Alias::new(table))
                .order_by(Alias::new(c_id), Order::Asc)
                .to_owned(),
        )
        .await
        .expect("tenants");
    assert_eq!(
        tenants,
        [
            ("org".to_owned(), None, 0),
            ("solo".to_owned(), None, 0),
            ("team".to_owned(), Some("org".to_owned()), 1),
        ]
    );
    let (table, c_id) = names.users;
    let users: Vec<(String,)> = pool
        .fetch_all(
            &Query::select()
                .column(Alias::new(c_id))
                .from(Alias::new(table))
                .order_by(Alias::new(c_id), Order::Asc)
                .to_owned(),
        )
        .await
        .expect("users");
    assert_eq!(users, [("ana".to_owned(),), ("bob".to_owned(),)]);
    let (table, [c_user, c_tenant]) = names.memberships;
    let memberships: Vec<(String, String)> = pool
        .fetch_all(
            &Query::select()
                .columns([Alias::new(c_user), Alias::new(c_tenant)])
                .from(Alias::new(table))
                .order_by(Alias::new(c_user), Order::Asc)
                .to_owned(),
        )
        .await
        .expect("memberships");
    assert_eq!(
        memberships,
        [
            ("ana".to_owned(), "team".to_owned()),
            ("bob".to_owned(), "solo".to_owned()),
        ]
    );

    // The queries read what the registry wrote, under the same schema.
    let mut q = MetricsQuery::with_schema(schema);
    q.scope(Scope::Ids(vec!["org".into()]));
    let users = q.select("users", builtin::users()).expect("select");
    let rows = q.fetch(pool).await.expect("fetch");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get(users), Some(1), "ana, in org's subtree");
}

#[tokio::test]
async fn registers_on_postgres() {
    let db = PgDatabase::create().await;
    let pool = Pool::from(db.pool().clone());
    tenantry_metrics::migrate(&pool).await.expect("migrate");
    registers(&pool, Schema::default(), &DEFAULT).await;
}

#[tokio::test]
async fn registers_on_sqlite() {
    let db = SqliteDatabase::create().await;
    let pool = Pool::from(db.pool().clone());
    tenantry_metrics::migrate(&pool).await.expect("migrate");
    registers(&pool, Schema::default(), &DEFAULT).await;
}

#[tokio::test]
async fn registers_in_renamed_tables_on_postgres() {
    let db = PgDatabase::create().await;
    let pool = Pool::from(db.pool().clone());
    let mut tx = pool.begin().await.expect("begin");
    tx.execute_schema(HOST_TABLES).await.expect("host tables");
    tx.commit().await.expect("commit");
    registers(&pool, host_schema(), &HOST).await;
}

#[tokio::test]
async fn registers_in_renamed_tables_on_sqlite() {
    let db = SqliteDatabase::create().await;
    let pool = Pool::from(db.pool().clone());
    let mut tx = pool.begin().await.expect("begin");
    tx.execute_schema(HOST_TABLES).await.expect("host tables");
    tx.commit().await.expect("commit");
    registers(&pool, host_schema(), &HOST).await;
}
