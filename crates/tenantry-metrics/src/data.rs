//! Rows already in memory, the input of the Rust interpreter.

/// One tenant of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
pub struct MembershipRow {
    /// The member.
    pub user_id: String,
    /// The tenant.
    pub tenant_id: String,
}

/// One grant: members of `tenant_id` and of its whole subtree hold `permission`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrantRow {
    /// The tenant the grant sits on.
    pub tenant_id: String,
    /// The permission.
    pub permission: String,
}

/// One role of the role tree: a role inherits every permission of its parent role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleRow {
    /// Role id.
    pub id: String,
    /// The role it inherits from; `None` for a root role. The data may form a cycle: walks up
    /// the tree end at [`MetricsQuery::max_depth`](crate::MetricsQuery::max_depth).
    pub parent_id: Option<String>,
}

/// One role assignment: `user_id` holds `role_id` in `tenant_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
pub struct RoleGrantRow {
    /// The role the grant sits on.
    pub role_id: String,
    /// The permission.
    pub permission: String,
}

/// One row of the usage ledger (the columns of the contract with `tenantry-cost` that metrics
/// read).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
