//! The schema check a host runs at startup: every table and column a query reads exists, with a
//! type the configured [`Schema`] can read.

use std::fmt;

use tenantry_core::db::Pool;

use crate::error::{Error, Result};
use crate::expr::{Node, SourceKind};
use crate::metric::AggCall;
use crate::query::MetricsQuery;
use crate::render::Backend;
use crate::schema::{IdType, Schema, Table, TimeType};

/// What is wrong with one table or column of the host's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// The table does not exist (in the connection's search path on PostgreSQL).
    MissingTable {
        /// The logical table.
        table: Table,
        /// Its configured name.
        name: String,
    },
    /// The table has no such column.
    MissingColumn {
        /// The logical table.
        table: Table,
        /// The table's configured name.
        name: String,
        /// The column's configured name.
        column: String,
    },
    /// The column's declared type is not one the schema reads it as.
    WrongType {
        /// The logical table.
        table: Table,
        /// The table's configured name.
        name: String,
        /// The column's configured name.
        column: String,
        /// The declared type, as the database reports it (`format_type` on PostgreSQL, the
        /// declared type on SQLite; empty when none was declared).
        found: String,
        /// What the schema expects there.
        expected: &'static str,
    },
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTable { table, name } => {
                write!(f, "{} table {name:?} does not exist", table.label())
            }
            Self::MissingColumn {
                table,
                name,
                column,
            } => write!(
                f,
                "{} table {name:?} has no column {column:?}",
                table.label()
            ),
            Self::WrongType {
                table,
                name,
                column,
                found,
                expected,
            } => write!(
                f,
                "column {name}.{column} ({} table) is {found:?}, expected {expected}",
                table.label()
            ),
        }
    }
}

/// Everything a schema check found wrong: the content of [`Error::SchemaMismatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaMismatch {
    pub(crate) problems: Vec<SchemaProblem>,
}

impl SchemaMismatch {
    /// Each problem, table by table in the order the query reads them.
    #[must_use]
    pub fn problems(&self) -> &[SchemaProblem] {
        &self.problems
    }
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What a column must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    TenantId,
    UserId,
    Text,
    /// A 64-bit integer: it may come back as a metric's value.
    BigInt,
    /// Any integer (a tenant's level, only compared).
    Integer,
    Time,
    /// Any type, the same on both sides of a join (role ids).
    Any,
}

/// The type family of a declared column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Text,
    BigInt,
    SmallerInt,
    Uuid,
    Timestamptz,
    /// SQLite's `DATE`/`DATETIME`/`TIMESTAMP`: numeric affinity, text as written.
    DateText,
    Other,
}

fn family(declared: &str, dialect: Backend) -> Family {
    let d = declared.to_ascii_lowercase();
    match dialect {
        Backend::Postgres => match d.as_str() {
            "text" | "character varying" | "character" | "name" => Family::Text,
            "bigint" => Family::BigInt,
            "integer" | "smallint" => Family::SmallerInt,
            "uuid" => Family::Uuid,
            "timestamp with time zone" => Family::Timestamptz,
            _ => Family::Other,
        },
        // SQLite's affinity rules (section 3.1 of its datatype documentation): any declared
        // type containing INT holds 64-bit integers.
        Backend::Sqlite => {
            if d.contains("int") {
                Family::BigInt
            } else if d.contains("char") || d.contains("clob") || d.contains("text") {
                Family::Text
            } else if d.contains("date") || d.contains("time") {
                Family::DateText
            } else {
                Family::Other
            }
        }
    }
}

fn id_ok(ty: IdType, f: Family) -> bool {
    match ty {
        IdType::Text => f == Family::Text,
        IdType::Integer => matches!(f, Family::BigInt | Family::SmallerInt),
        IdType::Uuid => f == Family::Uuid,
    }
}

fn id_label(ty: IdType) -> &'static str {
    match ty {
        IdType::Text => "text (IdType::Text)",
        IdType::Integer => "an integer type (IdType::Integer)",
        IdType::Uuid => "uuid (IdType::Uuid)",
    }
}

impl Want {
    fn accepts(self, schema: &Schema, f: Family) -> bool {
        match self {
            Want::TenantId => id_ok(schema.tenant_ids, f),
            Want::UserId => id_ok(schema.user_ids, f),
            Want::Text => f == Family::Text,
            Want::BigInt => f == Family::BigInt,
            Want::Integer => matches!(f, Family::BigInt | Family::SmallerInt),
            Want::Time => match schema.time {
                TimeType::EpochMicros | TimeType::UnixSeconds => f == Family::BigInt,
                TimeType::Timestamptz => f == Family::Timestamptz,
                TimeType::IsoText => matches!(f, Family::Text | Family::DateText),
            },
            Want::Any => true,
        }
    }

    fn label(self, schema: &Schema) -> &'static str {
        match self {
            Want::TenantId => id_label(schema.tenant_ids),
            Want::UserId => id_label(schema.user_ids),
            Want::Text => "text",
            Want::BigInt => "bigint (a 64-bit integer)",
            Want::Integer => "an integer type",
            Want::Time => match schema.time {
                TimeType::EpochMicros => "bigint Unix microseconds (TimeType::EpochMicros)",
                TimeType::UnixSeconds => "bigint Unix seconds (TimeType::UnixSeconds)",
                TimeType::Timestamptz => "timestamptz (TimeType::Timestamptz)",
                TimeType::IsoText => "ISO-8601 text (TimeType::IsoText)",
            },
            Want::Any => "any type",
        }
    }
}

/// The type a metric column of the ledger or memberships is read as.
fn want_of(column: &str) -> Want {
    match column {
        "tenant_id" => Want::TenantId,
        "user_id" => Want::UserId,
        "feature" | "model" | "lane" | "permission" => Want::Text,
        "occurred_at" => Want::Time,
        _ => Want::BigInt,
    }
}

/// Every column `node` reads.
fn columns_of(node: &Node, out: &mut Vec<crate::expr::Column>) {
    match node {
        Node::Col(c) => out.push(*c),
        Node::Int(_) | Node::Text(_) | Node::Null(_) | Node::True => {}
        Node::Arith(_, a, b)
        | Node::Cmp(_, a, b)
        | Node::And(a, b)
        | Node::Or(a, b)
        | Node::Coalesce(a, b) => {
            columns_of(a, out);
            columns_of(b, out);
        }
        Node::Not(a) | Node::IsNull(a) => columns_of(a, out),
        Node::Case(c, t, e) => {
            columns_of(c, out);
            columns_of(t, out);
            columns_of(e, out);
        }
    }
}

/// The (table, default column, type) triples a query reads, each once, in reading order.
fn required(q: &MetricsQuery, calls: &[&AggCall]) -> Vec<(Table, &'static str, Want)> {
    let mut need: Vec<(Table, &'static str, Want)> = vec![
        (Table::Tenants, "id", Want::TenantId),
        (Table::Tenants, "parent_id", Want::TenantId),
    ];
    if q.level.is_some() {
        need.push((Table::Tenants, "level", Want::Integer));
    }
    let push = |need: &mut Vec<_>, t, c, w| {
        if !need.contains(&(t, c, w)) {
            need.push((t, c, w));
        }
    };
    if !q.dimensions.is_empty() {
        push(&mut need, Table::Usage, "tenant_id", Want::TenantId);
        for d in &q.dimensions {
            push(&mut need, Table::Usage, d.column(), Want::Text);
        }
    }
    for call in calls {
        let mut cols = Vec::new();
        for n in call.arg.iter().chain(call.filter.iter()) {
            columns_of(n, &mut cols);
        }
        match call.source {
            SourceKind::Usage => {
                push(&mut need, Table::Usage, "tenant_id", Want::TenantId);
                for c in cols {
                    push(&mut need, Table::Usage, c.name(), want_of(c.name()));
                }
            }
            SourceKind::Members => {
                push(&mut need, Table::Memberships, "tenant_id", Want::TenantId);
                for c in cols {
                    push(&mut need, Table::Memberships, c.name(), want_of(c.name()));
                }
            }
            SourceKind::Access => {
                push(&mut need, Table::Memberships, "user_id", Want::UserId);
                push(&mut need, Table::Memberships, "tenant_id", Want::TenantId);
                push(&mut need, Table::Grants, "tenant_id", Want::TenantId);
                push(&mut need, Table::Grants, "permission", Want::Text);
            }
            SourceKind::RoleAccess => {
                push(&mut need, Table::Roles, "id", Want::Any);
                push(&mut need, Table::Roles, "parent_id", Want::Any);
                push(&mut need, Table::RoleAssignments, "user_id", Want::UserId);
                push(
                    &mut need,
                    Table::RoleAssignments,
                    "tenant_id",
                    Want::TenantId,
                );
                push(&mut need, Table::RoleAssignments, "role_id", Want::Any);
                push(&mut need, Table::RoleGrants, "role_id", Want::Any);
                push(&mut need, Table::RoleGrants, "permission", Want::Text);
            }
        }
    }
    need
}

/// The declared columns of `table` (name, type); `None` when the table does not exist.
async fn declared(pool: &Pool, table: &str) -> Result<Option<Vec<(String, String)>>> {
    #[cfg(feature = "postgres")]
    if let Some(pool) = pool.as_postgres() {
        // `to_regclass` resolves the name through the search path, as the queries do; the
        // name is quoted because the queries quote it (case kept).
        let exists: Option<String> = sqlx::query_scalar("SELECT CAST(to_regclass($1) AS TEXT)")
            .bind(format!("\"{table}\""))
            .fetch_one(pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let cols = sqlx::query_as(
            "SELECT CAST(attname AS TEXT), format_type(atttypid, NULL) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        )
        .bind(format!("\"{table}\""))
        .fetch_all(pool)
        .await?;
        return Ok(Some(cols));
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = pool.as_sqlite() {
        let cols: Vec<(String, String)> =
            sqlx::query_as("SELECT name, type FROM pragma_table_info(?)")
                .bind(table)
                .fetch_all(pool)
                .await?;
        // A table always has a column: none means no such table.
        return Ok((!cols.is_empty()).then_some(cols));
    }
    Err(Error::Database(sqlx::Error::Configuration(
        format!(
            "tenantry-metrics does not run on {}",
            pool.backend().as_str()
        )
        .into(),
    )))
}

impl MetricsQuery {
    /// Checks the host's database against what this query reads: each table exists, and each
    /// column the query reads exists with a type the [`Schema`] reads it as (tenant and user
    /// ids of the configured [`IdType`](crate::IdType), time of the configured
    /// [`TimeType`](crate::TimeType), 64-bit integers for the amounts a metric may return, text
    /// for features, models, lanes and permissions). Run it at startup, once per dashboard
    /// query; it reads the catalog only (one or two statements per table).
    ///
    /// The columns each built-in needs are listed in [`builtin`](crate::builtin).
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] listing every missing table, missing column and wrong type;
    /// [`Error::UnsupportedType`] when the schema's types do not exist on the pool's database;
    /// [`Error::Database`] when the catalog cannot be read.
    ///
    /// # Example
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tenantry_core::db::Pool;
    /// use tenantry_metrics::{builtin, Error, MetricsQuery, Period};
    ///
    /// let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
    /// tenantry_metrics::migrate(&pool).await?; // tenants and memberships, no ledger
    /// let mut q = MetricsQuery::new();
    /// q.select("users", builtin::users())?;
    /// q.check_schema(&pool).await?;
    /// q.select("cost", builtin::cost(Period::all_time()))?;
    /// let err = q.check_schema(&pool).await.unwrap_err();
    /// assert!(matches!(err, Error::SchemaMismatch(_)));
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"the host's schema does not match the metrics: usage table "tenantry_usage" does not exist"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn check_schema(&self, pool: &Pool) -> Result<()> {
        let dialect = pool.backend();
        self.schema.check_backend(dialect)?;
        let aggs = self.aggregates()?;
        let need = required(self, &aggs.calls);
        let mut problems = Vec::new();
        let mut tables: Vec<Table> = Vec::new();
        for (t, _, _) in &need {
            if !tables.contains(t) {
                tables.push(*t);
            }
        }
        for table in tables {
            let name = self.schema.table_name(table).to_owned();
            let Some(cols) = declared(pool, &name).await? else {
                problems.push(SchemaProblem::MissingTable { table, name });
                continue;
            };
            for (_, default, want) in need.iter().filter(|(t, _, _)| *t == table) {
                let column = self
                    .schema
                    .column_name(table, default)
                    .unwrap_or_else(|| unreachable!("{default} is a column of the table"))
                    .to_owned();
                match cols.iter().find(|(c, _)| *c == column) {
                    None => problems.push(SchemaProblem::MissingColumn {
                        table,
                        name: name.clone(),
                        column,
                    }),
                    Some((_, ty)) if !want.accepts(&self.schema, family(ty, dialect)) => {
                        problems.push(SchemaProblem::WrongType {
                            table,
                            name: name.clone(),
                            column,
                            found: ty.clone(),
                            expected: want.label(&self.schema),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaMismatch(SchemaMismatch { problems }))
        }
    }
}
