//! Rows already in memory, the input of the Rust interpreter.

/// One tenant of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TenantRow {
    /// Tenant id.
    pub id: String,
    /// The parent tenant; `None` for a root.
    pub parent_id: Option<String>,
    /// The level in the hierarchy (0 = organization, 1 = workspace, 2 = team, …).
    pub level: i32,
}

/// One membership: `user_id` belongs to `tenant_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MembershipRow {
    /// The member.
    pub user_id: String,
    /// The tenant.
    pub tenant_id: String,
}

/// One grant: members of `tenant_id` and of its whole subtree hold `permission`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct GrantRow {
    /// The tenant the grant sits on.
    pub tenant_id: String,
    /// The permission.
    pub permission: String,
}

/// One role of the role tree: a role inherits every permission of its parent role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RoleRow {
    /// Role id.
    pub id: String,
    /// The role it inherits from; `None` for a root role. The data may form a cycle: walks up
    /// the tree end at [`MetricsQuery::max_depth`](crate::MetricsQuery::max_depth).
    pub parent_id: Option<String>,
}

/// One role assignment: `user_id` holds `role_id` in `tenant_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RoleAssignmentRow {
    /// The user.
    pub user_id: String,
    /// The tenant the role is held in.
    pub tenant_id: String,
    /// The role.
    pub role_id: String,
}

/// One grant to a role: holders of `role_id` and of every role below it hold `permission`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RoleGrantRow {
    /// The role the grant sits on.
    pub role_id: String,
    /// The permission.
    pub permission: String,
}

/// One row of the usage ledger (the columns of the contract with `tenantry-cost` that metrics
/// read).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UsageRow {
    /// The tenant charged.
    pub tenant_id: String,
    /// The user, if any.
    pub user_id: Option<String>,
    /// The feature.
    pub feature: String,
    /// The model.
    pub model: String,
    /// `"batch"` or `"sync"`.
    pub lane: String,
    /// Unix time in microseconds, UTC.
    pub occurred_at: i64,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// 5-minute cache writes.
    pub cache_write_5m_tokens: i64,
    /// 1-hour cache writes.
    pub cache_write_1h_tokens: i64,
    /// Cache reads.
    pub cache_read_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Charged cost, nano-USD.
    pub cost_nanos: i64,
    /// Cost without the batch discount, nano-USD.
    pub standard_cost_nanos: i64,
}

/// Everything the Rust interpreter reads: the same rows the SQL reads from the tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dataset {
    /// The tenant tree.
    pub tenants: Vec<TenantRow>,
    /// Memberships.
    pub memberships: Vec<MembershipRow>,
    /// Grants.
    pub grants: Vec<GrantRow>,
    /// The role tree.
    pub roles: Vec<RoleRow>,
    /// Role assignments.
    pub role_assignments: Vec<RoleAssignmentRow>,
    /// Grants to roles.
    pub role_grants: Vec<RoleGrantRow>,
    /// Usage ledger rows.
    pub usage: Vec<UsageRow>,
}

impl TenantRow {
    /// Tenant `id` under `parent_id` at `level`.
    #[must_use]
    pub fn new(id: impl Into<String>, parent_id: Option<&str>, level: i32) -> Self {
        Self {
            id: id.into(),
            parent_id: parent_id.map(str::to_owned),
            level,
        }
    }
}

impl MembershipRow {
    /// `user_id` belongs to `tenant_id`.
    #[must_use]
    pub fn new(user_id: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            tenant_id: tenant_id.into(),
        }
    }
}

impl GrantRow {
    /// Members of `tenant_id` and of its subtree hold `permission`.
    #[must_use]
    pub fn new(tenant_id: impl Into<String>, permission: impl Into<String>) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            permission: permission.into(),
        }
    }
}

impl RoleRow {
    /// Role `id` inheriting from `parent_id`.
    #[must_use]
    pub fn new(id: impl Into<String>, parent_id: Option<&str>) -> Self {
        Self {
            id: id.into(),
            parent_id: parent_id.map(str::to_owned),
        }
    }
}

impl RoleAssignmentRow {
    /// `user_id` holds `role_id` in `tenant_id`.
    #[must_use]
    pub fn new(
        user_id: impl Into<String>,
        tenant_id: impl Into<String>,
        role_id: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            tenant_id: tenant_id.into(),
            role_id: role_id.into(),
        }
    }
}

impl RoleGrantRow {
    /// Holders of `role_id` and of every role below it hold `permission`.
    #[must_use]
    pub fn new(role_id: impl Into<String>, permission: impl Into<String>) -> Self {
        Self {
            role_id: role_id.into(),
            permission: permission.into(),
        }
    }
}

impl UsageRow {
    /// A line of `tenant_id`'s `feature` on `model` in `lane` (`"batch"` or `"sync"`) at
    /// `occurred_at`, with no user, no tokens and no cost yet (set the public fields).
    #[must_use]
    pub fn new(
        tenant_id: impl Into<String>,
        feature: impl Into<String>,
        model: impl Into<String>,
        lane: impl Into<String>,
        occurred_at: i64,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            user_id: None,
            feature: feature.into(),
            model: model.into(),
            lane: lane.into(),
            occurred_at,
            input_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            cache_read_tokens: 0,
            output_tokens: 0,
            cost_nanos: 0,
            standard_cost_nanos: 0,
        }
    }
}
