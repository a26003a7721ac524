//! The host's table and column names, validated, with defaults matching tenantry's own tables.

use std::borrow::Cow;

use crate::error::{Error, Result};

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
    fn label(self) -> &'static str {
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

/// Where the metrics find the host's data: table and column names, each validated.
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
