//! The host's table and column names, validated, with defaults matching tenantry's own tables.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::render::Backend;

/// A validated SQL identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes (PostgreSQL's limit).
///
/// Identifiers come from configuration, never from end users, but they are still checked so a
/// typo cannot turn into SQL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident(Cow<'static, str>);

impl Ident {
    /// Checks `name` and wraps it.
    ///
    /// # Errors
    /// [`Error::InvalidIdentifier`] when `name` is empty, longer than 63 bytes or contains
    /// anything but ASCII letters, digits and `_` (or starts with a digit).
    ///
    /// # Example
    /// ```
    /// use tenantry_metrics::Ident;
    /// assert_eq!(Ident::new("tenantry_usage")?.as_str(), "tenantry_usage");
    /// assert!(Ident::new("usage; DROP TABLE x").is_err());
    /// # Ok::<(), tenantry_metrics::Error>(())
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if first_ok && rest_ok && name.len() <= 63 {
            Ok(Self(Cow::Owned(name.to_owned())))
        } else {
            Err(Error::InvalidIdentifier(name.to_owned()))
        }
    }

    /// The identifier as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A default name: borrowed, so a query over the default schema allocates no names.
    fn fixed(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }
}

/// The logical tables the metrics read (and the users table the [`Registry`](crate::Registry)
/// writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Table {
    /// The tenant tree: `id`, `parent_id`, `level` (default `tenantry_tenants`).
    Tenants,
    /// Which user belongs to which tenant: `user_id`, `tenant_id` (default `tenantry_memberships`).
    Memberships,
    /// The users memberships refer to: `id` (default `tenantry_users`). The queries never read
    /// it; the [`Registry`](crate::Registry) adds a member's user there first.
    Users,
    /// Permissions granted on a tenant to its members and its subtree: `tenant_id`, `permission`
    /// (default `tenantry_grants`).
    Grants,
    /// The usage ledger shared with `tenantry-cost` (default `tenantry_usage`).
    Usage,
    /// The role tree: `id`, `parent_id` (default `tenantry_roles`).
    Roles,
    /// Which user holds which role in which tenant: `user_id`, `tenant_id`, `role_id` (default
    /// `tenantry_role_assignments`).
    RoleAssignments,
    /// Permissions granted to a role and every role below it: `role_id`, `permission` (default
    /// `tenantry_role_grants`).
    RoleGrants,
}

impl Table {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Memberships => "memberships",
            Table::Users => "users",
            Table::Grants => "grants",
            Table::Usage => "usage",
            Table::Roles => "roles",
            Table::RoleAssignments => "role assignments",
            Table::RoleGrants => "role grants",
        }
    }
}

/// The column names of the usage ledger, in the order the crate knows them.
pub(crate) const USAGE_COLUMNS: [&str; 13] = [
    "tenant_id",
    "user_id",
    "feature",
    "model",
    "lane",
    "occurred_at",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "cost_nanos",
    "standard_cost_nanos",
];
const TENANT_COLUMNS: [&str; 3] = ["id", "parent_id", "level"];
const MEMBERSHIP_COLUMNS: [&str; 2] = ["user_id", "tenant_id"];
const USER_COLUMNS: [&str; 1] = ["id"];
const GRANT_COLUMNS: [&str; 2] = ["tenant_id", "permission"];
const ROLE_COLUMNS: [&str; 2] = ["id", "parent_id"];
const ROLE_ASSIGNMENT_COLUMNS: [&str; 3] = ["user_id", "tenant_id", "role_id"];
const ROLE_GRANT_COLUMNS: [&str; 2] = ["role_id", "permission"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableNames {
    pub(crate) name: Ident,
    defaults: &'static [&'static str],
    columns: Vec<Ident>,
}

impl TableNames {
    fn new(name: &'static str, defaults: &'static [&'static str]) -> Self {
        Self {
            name: Ident::fixed(name),
            defaults,
            columns: defaults.iter().map(|c| Ident::fixed(c)).collect(),
        }
    }

    /// The configured name of the column known by default as `default`.
    pub(crate) fn col(&self, default: &str) -> &Ident {
        let i = self
            .defaults
            .iter()
            .position(|c| *c == default)
            .unwrap_or_else(|| unreachable!("column {default} is not part of the table"));
        &self.columns[i]
    }
}

/// The SQL type of the host's tenant ids or user ids, in every table that holds them.
///
/// Whatever the type, a result's tenant id is its text form (`CAST(id AS TEXT)`: `42`, or a
/// UUID's lowercase hyphenated form), the ids of a [`Scope`](crate::Scope) are given in that
/// form, and ids compare byte-wise in that form (the order of rows, text comparisons in metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdType {
    /// `TEXT` (the default, tenantry's own tables).
    #[default]
    Text,
    /// `INTEGER` / `BIGINT` / `INT` (SQLite's `INTEGER PRIMARY KEY` included).
    Integer,
    /// `uuid`, PostgreSQL only (SQLite has no UUID type).
    Uuid,
}

impl IdType {
    fn label(self) -> &'static str {
        match self {
            IdType::Text => "text",
            IdType::Integer => "integer",
            IdType::Uuid => "uuid",
        }
    }

    /// The SQL type a bound id (sent as text) is cast to; `None` for text.
    pub(crate) fn cast(self, dialect: Backend) -> Option<&'static str> {
        match (self, dialect) {
            (IdType::Text, _) => None,
            (IdType::Integer, Backend::Postgres) => Some("BIGINT"),
            (IdType::Integer, Backend::Sqlite) => Some("INTEGER"),
            (IdType::Uuid, _) => Some("uuid"),
        }
    }

    /// Checks that `id` is the text form of an id of this type, as the database prints it.
    pub(crate) fn check(self, id: &str) -> Result<()> {
        let ok = match self {
            IdType::Text => true,
            IdType::Integer => id.parse::<i64>().is_ok_and(|v| v.to_string() == id),
            IdType::Uuid => {
                id.len() == 36
                    && id.char_indices().all(|(i, c)| match i {
                        8 | 13 | 18 | 23 => c == '-',
                        _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
                    })
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidId {
                id: id.to_owned(),
                expected: match self {
                    IdType::Text => "text",
                    IdType::Integer => "a decimal integer such as 42 (no sign +, no leading zero)",
                    IdType::Uuid => "a lowercase hyphenated UUID",
                },
            })
        }
    }
}

/// How the ledger's `occurred_at` column stores time. Metrics always see Unix microseconds
/// (UTC): the SQL converts each stored value exactly, and [`Period`](crate::Period) bounds
/// stay microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeType {
    /// `BIGINT` Unix microseconds (the default, tenantry's own ledger).
    #[default]
    EpochMicros,
    /// Integer Unix seconds (SQLite's `unixepoch()`, or a PostgreSQL `BIGINT`).
    UnixSeconds,
    /// `timestamptz`, PostgreSQL only: converted with `EXTRACT(EPOCH FROM ..)`, exact to the
    /// microsecond (it is `numeric` since PostgreSQL 14).
    Timestamptz,
    /// ISO-8601 text in UTC, SQLite only: `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, with
    /// an optional fraction of up to six digits and no zone suffix (what SQLite's `datetime()`,
    /// SQLAlchemy and Django write).
    IsoText,
}

impl TimeType {
    fn label(self) -> &'static str {
        match self {
            TimeType::EpochMicros => "epoch microseconds",
            TimeType::UnixSeconds => "unix seconds",
            TimeType::Timestamptz => "timestamptz",
            TimeType::IsoText => "ISO-8601 text",
        }
    }
}

/// Where the metrics find the host's data: table and column names, each validated, and the
/// types of its id and time columns.
///
/// The defaults are the tables [`crate::migrate`] creates plus the usage ledger of
/// `tenantry-cost` (`tenantry_usage`).
///
/// # Example
/// ```
/// use tenantry_metrics::{Schema, Table};
/// let schema = Schema::default()
///     .with_table(Table::Tenants, "orgs")?
///     .with_column(Table::Tenants, "parent_id", "parent")?;
/// assert_eq!(schema.table_name(Table::Tenants), "orgs");
/// assert!(Schema::default().with_column(Table::Usage, "nope", "x").is_err());
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schema {
    pub(crate) tenants: TableNames,
    pub(crate) memberships: TableNames,
    pub(crate) users: TableNames,
    pub(crate) grants: TableNames,
    pub(crate) usage: TableNames,
    pub(crate) roles: TableNames,
    pub(crate) role_assignments: TableNames,
    pub(crate) role_grants: TableNames,
    pub(crate) tenant_ids: IdType,
    pub(crate) user_ids: IdType,
    pub(crate) time: TimeType,
}

impl Default for Schema {
    fn default() -> Self {
        Self {
            tenants: TableNames::new("tenantry_tenants", &TENANT_COLUMNS),
            memberships: TableNames::new("tenantry_memberships", &MEMBERSHIP_COLUMNS),
            users: TableNames::new("tenantry_users", &USER_COLUMNS),
            grants: TableNames::new("tenantry_grants", &GRANT_COLUMNS),
            usage: TableNames::new("tenantry_usage", &USAGE_COLUMNS),
            roles: TableNames::new("tenantry_roles", &ROLE_COLUMNS),
            role_assignments: TableNames::new(
                "tenantry_role_assignments",
                &ROLE_ASSIGNMENT_COLUMNS,
            ),
            role_grants: TableNames::new("tenantry_role_grants", &ROLE_GRANT_COLUMNS),
            tenant_ids: IdType::Text,
            user_ids: IdType::Text,
            time: TimeType::EpochMicros,
        }
    }
}

impl Schema {
    fn table_mut(&mut self, table: Table) -> &mut TableNames {
        match table {
            Table::Tenants => &mut self.tenants,
            Table::Memberships => &mut self.memberships,
            Table::Users => &mut self.users,
            Table::Grants => &mut self.grants,
            Table::Usage => &mut self.usage,
            Table::Roles => &mut self.roles,
            Table::RoleAssignments => &mut self.role_assignments,
            Table::RoleGrants => &mut self.role_grants,
        }
    }

    fn table(&self, table: Table) -> &TableNames {
        match table {
            Table::Tenants => &self.tenants,
            Table::Memberships => &self.memberships,
            Table::Users => &self.users,
            Table::Grants => &self.grants,
            Table::Usage => &self.usage,
            Table::Roles => &self.roles,
            Table::RoleAssignments => &self.role_assignments,
            Table::RoleGrants => &self.role_grants,
        }
    }

    /// Uses `name` for `table` instead of its default.
    ///
    /// # Errors
    /// [`Error::InvalidIdentifier`] when `name` is not a plain identifier.
    pub fn with_table(mut self, table: Table, name: &str) -> Result<Self> {
        self.table_mut(table).name = Ident::new(name)?;
        Ok(self)
    }

    /// Uses `name` for the column of `table` known by default as `default_column`.
    ///
    /// # Errors
    /// [`Error::UnknownColumn`] when the table has no such default column,
    /// [`Error::InvalidIdentifier`] when `name` is not a plain identifier.
    pub fn with_column(mut self, table: Table, default_column: &str, name: &str) -> Result<Self> {
        let ident = Ident::new(name)?;
        let names = self.table_mut(table);
        let i = names
            .defaults
            .iter()
            .position(|c| *c == default_column)
            .ok_or_else(|| Error::UnknownColumn {
                table: table.label(),
                column: default_column.to_owned(),
            })?;
        names.columns[i] = ident;
        Ok(self)
    }

    /// The configured name of `table`.
    #[must_use]
    pub fn table_name(&self, table: Table) -> &str {
        self.table(table).name.as_str()
    }

    /// The configured name of the column of `table` known by default as `default_column`;
    /// `None` when the table has no such column.
    #[must_use]
    pub fn column_name(&self, table: Table, default_column: &str) -> Option<&str> {
        let names = self.table(table);
        let i = names.defaults.iter().position(|c| *c == default_column)?;
        Some(names.columns[i].as_str())
    }

    /// The type of every tenant id column: the tenants' `id` and `parent_id`, and `tenant_id`
    /// of memberships, grants, role assignments and the ledger (default [`IdType::Text`]).
    ///
    /// # Example
    /// ```
    /// use tenantry_metrics::{Backend, IdType, MetricsQuery, Schema, Scope, TimeType, builtin};
    /// let schema = Schema::default()
    ///     .with_tenant_ids(IdType::Integer)
    ///     .with_user_ids(IdType::Uuid)
    ///     .with_time(TimeType::Timestamptz);
    /// let mut q = MetricsQuery::with_schema(schema);
    /// q.scope(Scope::Ids(vec!["42".into()]));
    /// q.select("users", builtin::users())?;
    /// let (sql, _) = q.build(Backend::Postgres)?;
    /// assert!(sql.starts_with(r#"WITH RECURSIVE "mq_groups" ("id") AS (SELECT "t"."id" AS "id" FROM "tenantry_tenants" AS "t" WHERE "t"."id" IN (CAST($1 AS BIGINT)))"#));
    /// // SQLite has no uuid type: a typed error, before any SQL runs.
    /// assert!(q.build(Backend::Sqlite).is_err());
    /// # Ok::<(), tenantry_metrics::Error>(())
    /// ```
    #[must_use]
    pub fn with_tenant_ids(mut self, ty: IdType) -> Self {
        self.tenant_ids = ty;
        self
    }

    /// The type of every user id column: `user_id` of memberships, role assignments and the
    /// ledger, and the users' `id` (default [`IdType::Text`]).
    #[must_use]
    pub fn with_user_ids(mut self, ty: IdType) -> Self {
        self.user_ids = ty;
        self
    }

    /// How the ledger's `occurred_at` stores time (default [`TimeType::EpochMicros`]).
    #[must_use]
    pub fn with_time(mut self, ty: TimeType) -> Self {
        self.time = ty;
        self
    }

    /// The type of tenant id columns.
    #[must_use]
    pub fn tenant_ids(&self) -> IdType {
        self.tenant_ids
    }

    /// The type of user id columns.
    #[must_use]
    pub fn user_ids(&self) -> IdType {
        self.user_ids
    }

    /// How the ledger stores time.
    #[must_use]
    pub fn time(&self) -> TimeType {
        self.time
    }

    /// Checks that `dialect` has the configured column types.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for `uuid` ids or `timestamptz` time on SQLite, and ISO-8601
    /// text time on PostgreSQL (use `timestamptz` there).
    pub fn check_backend(&self, dialect: Backend) -> Result<()> {
        let unsupported = |column: &'static str, ty: &'static str| Error::UnsupportedType {
            column,
            ty,
            backend: dialect.as_str(),
        };
        if dialect == Backend::Sqlite {
            if self.tenant_ids == IdType::Uuid {
                return Err(unsupported("tenant ids", self.tenant_ids.label()));
            }
            if self.user_ids == IdType::Uuid {
                return Err(unsupported("user ids", self.user_ids.label()));
            }
            if self.time == TimeType::Timestamptz {
                return Err(unsupported("occurred_at", self.time.label()));
            }
        }
        if dialect == Backend::Postgres && self.time == TimeType::IsoText {
            return Err(unsupported("occurred_at", self.time.label()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated() {
        for good in ["a", "_x", "tenantry_usage", "T1"] {
            assert!(Ident::new(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "a b", "a\"b", "a;b", "é", &"x".repeat(64)] {
            assert!(
                matches!(Ident::new(bad), Err(Error::InvalidIdentifier(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn overrides_apply_to_the_named_column_only() -> Result<()> {
        let s = Schema::default().with_column(Table::Usage, "occurred_at", "ts")?;
        assert_eq!(s.usage.col("occurred_at").as_str(), "ts");
        assert_eq!(s.usage.col("tenant_id").as_str(), "tenant_id");
        assert!(matches!(
            Schema::default().with_column(Table::Grants, "level", "x"),
            Err(Error::UnknownColumn { .. })
        ));
        Ok(())
    }

    #[test]
    fn role_tables_are_renamed_in_the_sql() -> Result<()> {
        let schema = Schema::default()
            .with_table(Table::Roles, "groups")?
            .with_column(Table::Roles, "parent_id", "inherits")?
            .with_table(Table::RoleAssignments, "group_members")?
            .with_column(Table::RoleAssignments, "role_id", "group_id")?
            .with_table(Table::RoleGrants, "group_acl")?
            .with_column(Table::RoleGrants, "permission", "perm")?
            .with_column(Table::RoleGrants, "role_id", "group_id")?;
        let mut q = crate::MetricsQuery::with_schema(schema);
        q.select("depth", crate::builtin::max_role_inheritance_depth("read"))?;
        for dialect in [crate::Backend::Postgres, crate::Backend::Sqlite] {
            let (sql, _) = q.build(dialect)?;
            for name in [
                r#""groups" AS "r""#,
                r#""r"."inherits""#,
                r#""group_members" AS "ra""#,
                r#""ra"."group_id""#,
                r#""group_acl" AS "rg""#,
                r#""rg"."perm""#,
                r#""rg"."group_id""#,
            ] {
                assert!(sql.contains(name), "{name} in {sql}");
            }
            for default in [
                "tenantry_role",
                "\"r\".\"parent_id\"",
                "\"ra\".\"role_id\"",
                "\"rg\".\"role_id\"",
                "\"rg\".\"permission\"",
            ] {
                assert!(!sql.contains(default), "{default} in {sql}");
            }
        }
        Ok(())
    }
}
