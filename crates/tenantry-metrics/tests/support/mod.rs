//! Shared test support: random tenant forests with members, grants, role trees (cycles
//! included), role assignments and usage, and the query that selects every built-in metric.
#![allow(dead_code, unreachable_pub)]

pub mod db;

use proptest::prelude::*;
use tenantry_metrics::builtin::{self, Period, Slice};
use tenantry_metrics::{
    Dataset, Dimension, GrantRow, MembershipRow, Metric, MetricsQuery, Order, RoleAssignmentRow,
    RoleGrantRow, RoleRow, Scope, TenantRow, UsageRow, avg, case_when, count, lit, max, min, null,
    sum, usage,
};

pub const PERMISSIONS: [&str; 2] = ["read", "admin"];
pub const FEATURES: [&str; 3] = ["summarize", "classify", "translate"];
pub const MODELS: [&str; 2] = ["claude-a", "claude-b"];
const PREFIXES: [&str; 4] = ["t", "T", "_", "a"];

/// The periods the queries use.
pub fn p_now() -> Period {
    Period::new(100, 200).expect("valid")
}
pub fn p_before() -> Period {
    Period::new(0, 100).expect("valid")
}

fn occurred_at() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..250,
        Just(99),
        Just(100),
        Just(199),
        Just(200),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(-1),
    ]
}

fn amount(max: i64) -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 0..1000i64, Just(max), 0..=max]
}

fn signed_cost() -> impl Strategy<Value = i64> {
    const M: i64 = 1_000_000_000_000_000;
    prop_oneof![Just(0i64), -1000..1000i64, Just(M), Just(-M), -M..=M]
}

/// A random dataset: a forest of up to 14 tenants (depth 0–6), up to 8 users, memberships,
/// grants, up to 6 roles whose parents are any role (so chains, self-loops and cycles), role
/// assignments and grants to roles, and up to 40 usage rows with NULL users, zeros and extreme
/// values.
pub fn dataset() -> impl Strategy<Value = Dataset> {
    (
        proptest::collection::vec(
            (any::<prop::sample::Index>(), 0usize..4, any::<bool>()),
            0..14,
        ),
        proptest::collection::vec((0usize..8, any::<prop::sample::Index>()), 0..24),
        proptest::collection::vec((any::<prop::sample::Index>(), 0usize..2), 0..10),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                proptest::option::weighted(0.8, 0usize..8),
                0usize..3,
                0usize..2,
                any::<bool>(),
                occurred_at(),
                (
                    amount(1_000_000_000_000),
                    amount(1_000_000),
                    amount(1_000_000),
                ),
                (amount(1_000_000), amount(1_000_000_000_000)),
                (signed_cost(), signed_cost()),
            ),
            0..40,
        ),
        (
            proptest::collection::vec(
                proptest::option::weighted(0.7, any::<prop::sample::Index>()),
                0..6,
            ),
            proptest::collection::vec(
                (
                    0usize..8,
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                ),
                0..16,
            ),
            proptest::collection::vec((any::<prop::sample::Index>(), 0usize..2), 0..8),
        ),
    )
        .prop_map(
            |(tenants, members, grants, usage, (roles, assigned, role_grants))| {
                let mut rows: Vec<TenantRow> = Vec::new();
                for (i, (parent, prefix, root)) in tenants.into_iter().enumerate() {
                    let id = format!("{}{i}", PREFIXES[prefix]);
                    let parent = if root || rows.is_empty() {
                        None
                    } else {
                        let p = &rows[parent.index(rows.len())];
                        (p.level < 6).then(|| p.clone())
                    };
                    rows.push(TenantRow::new(
                        id,
                        parent.as_ref().map(|p| p.id.as_str()),
                        parent.as_ref().map_or(0, |p| p.level + 1),
                    ));
                }
                let mut memberships: Vec<MembershipRow> = Vec::new();
                if !rows.is_empty() {
                    for (u, t) in members {
                        let m = MembershipRow::new(
                            format!("u{u}"),
                            rows[t.index(rows.len())].id.clone(),
                        );
                        if !memberships.contains(&m) {
                            memberships.push(m);
                        }
                    }
                }
                let mut grant_rows: Vec<GrantRow> = Vec::new();
                if !rows.is_empty() {
                    for (t, p) in grants {
                        let g = GrantRow::new(
                            rows[t.index(rows.len())].id.clone(),
                            PERMISSIONS[p].to_owned(),
                        );
                        if !grant_rows.contains(&g) {
                            grant_rows.push(g);
                        }
                    }
                }
                let usage = usage
                    .into_iter()
                    .map(
                        |(t, user, f, m, batch, at, (inp, w5, w1), (rd, out), (c, s))| {
                            let mut row = UsageRow::new(
                                if rows.is_empty() {
                                    "ghost".to_owned()
                                } else {
                                    rows[t.index(rows.len())].id.clone()
                                },
                                FEATURES[f].to_owned(),
                                MODELS[m].to_owned(),
                                if batch { "batch" } else { "sync" }.to_owned(),
                                at,
                            );
                            row.user_id = user.map(|u| format!("u{u}"));
                            row.input_tokens = inp;
                            row.cache_write_5m_tokens = w5;
                            row.cache_write_1h_tokens = w1;
                            row.cache_read_tokens = rd;
                            row.output_tokens = out;
                            row.cost_nanos = c;
                            row.standard_cost_nanos = s;
                            row
                        },
                    )
                    .collect();
                let n = roles.len();
                let roles: Vec<RoleRow> = roles
                    .into_iter()
                    .enumerate()
                    .map(|(i, parent)| {
                        RoleRow::new(
                            format!("r{i}"),
                            parent.map(|p| format!("r{}", p.index(n))).as_deref(),
                        )
                    })
                    .collect();
                let mut role_assignments: Vec<RoleAssignmentRow> = Vec::new();
                let mut role_grant_rows: Vec<RoleGrantRow> = Vec::new();
                if !rows.is_empty() && !roles.is_empty() {
                    for (u, t, r) in assigned {
                        let a = RoleAssignmentRow::new(
                            format!("u{u}"),
                            rows[t.index(rows.len())].id.clone(),
                            roles[r.index(n)].id.clone(),
                        );
                        if !role_assignments.contains(&a) {
                            role_assignments.push(a);
                        }
                    }
                }
                if !roles.is_empty() {
                    for (r, p) in role_grants {
                        let g = RoleGrantRow::new(
                            roles[r.index(n)].id.clone(),
                            PERMISSIONS[p].to_owned(),
                        );
                        if !role_grant_rows.contains(&g) {
                            role_grant_rows.push(g);
                        }
                    }
                }
                let mut data = Dataset::default();
                data.tenants = rows;
                data.memberships = memberships;
                data.grants = grant_rows;
                data.roles = roles;
                data.role_assignments = role_assignments;
                data.role_grants = role_grant_rows;
                data.usage = usage;
                data
            },
        )
}

/// Whether following parent roles from some role comes back to a role already seen.
pub fn has_role_cycle(data: &Dataset) -> bool {
    let parent = |id: &str| {
        data.roles
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.parent_id.as_deref())
    };
    data.roles.iter().any(|start| {
        let mut seen = vec![start.id.as_str()];
        let mut cur = start.id.as_str();
        while let Some(p) = parent(cur) {
            if seen.contains(&p) {
                return true;
            }
            seen.push(p);
            cur = p;
        }
        false
    })
}

/// Every built-in metric with its name, plus custom metrics that exercise CASE, COALESCE,
/// NULL literals, MIN/MAX/AVG, safe division and composed arithmetic.
pub fn all_metrics() -> Vec<(&'static str, Metric)> {
    let mut all = vec![
        ("users", builtin::users()),
        (
            "adoption_rate",
            builtin::adoption_rate("summarize", p_now()),
        ),
        (
            "adoption_all_time",
            builtin::adoption_rate("classify", Period::all_time()),
        ),
        ("max_depth_read", builtin::max_inheritance_depth("read")),
        ("max_depth_admin", builtin::max_inheritance_depth("admin")),
        ("depth0_read", builtin::inheritance_depth_count("read", 0)),
        ("depth1_read", builtin::inheritance_depth_count("read", 1)),
        ("depth2_read", builtin::inheritance_depth_count("read", 2)),
        ("holders_admin", builtin::permission_holders("admin")),
        (
            "role_max_depth_read",
            builtin::max_role_inheritance_depth("read"),
        ),
        (
            "role_max_depth_admin",
            builtin::max_role_inheritance_depth("admin"),
        ),
        (
            "role_depth0_read",
            builtin::role_inheritance_depth_count("read", 0),
        ),
        (
            "role_depth1_read",
            builtin::role_inheritance_depth_count("read", 1),
        ),
        (
            "role_depth2_admin",
            builtin::role_inheritance_depth_count("admin", 2),
        ),
        (
            "role_holders_read",
            builtin::role_permission_holders("read"),
        ),
        (
            "custom_compose",
            Metric::from(max(usage::input_tokens()))
                .minus(min(usage::input_tokens()))
                .times(Metric::constant(3))
                .plus(builtin::users())
                .per(builtin::requests(Period::all_time()).or_zero()),
        ),
    ];
    all.extend(usage_metrics());
    all
}

/// The metrics of [`all_metrics`] that read the usage ledger only (the ones a query grouped by
/// feature, model or lane can select).
pub fn usage_metrics() -> Vec<(&'static str, Metric)> {
    let now = p_now();
    let before = p_before();
    let slice = Slice::all().feature("summarize").model("claude-a");
    let feature_only = Slice::all().feature("classify");
    vec![
        ("active_users", builtin::active_users(now)),
        (
            "feature_active_users",
            builtin::feature_active_users("summarize", now),
        ),
        ("requests", builtin::requests(now)),
        ("tokens", builtin::tokens(now)),
        ("cost", builtin::cost(now)),
        ("cost_per_active_user", builtin::cost_per_active_user(now)),
        ("requests_in", builtin::requests_in(&slice, now)),
        ("tokens_in", builtin::tokens_in(&slice, now)),
        (
            "cost_in",
            builtin::cost_in(&feature_only, Period::all_time()),
        ),
        ("batch_requests", builtin::batch_requests(now)),
        ("batch_share", builtin::batch_share(now)),
        ("batch_savings", builtin::batch_savings(now)),
        (
            "requests_delta",
            builtin::delta(builtin::requests, now, before),
        ),
        ("cost_delta", builtin::delta(builtin::cost, now, before)),
        (
            "custom_usage_compose",
            Metric::from(max(usage::input_tokens()))
                .minus(min(usage::input_tokens()))
                .times(Metric::constant(3))
                .per(builtin::requests(Period::all_time()).or_zero()),
        ),
        (
            "custom_case",
            sum(case_when(
                usage::lane().equals("batch"),
                usage::output_tokens(),
                usage::input_tokens().safe_div(usage::cache_read_tokens()),
            ))
            .into(),
        ),
        (
            "custom_coalesce",
            sum(usage::cost_nanos()
                .safe_div(usage::output_tokens())
                .coalesce(lit(-7)))
            .filter(
                usage::user_id()
                    .is_not_null()
                    .or(usage::occurred_at().lt(50)),
            )
            .into(),
        ),
        (
            "custom_null",
            count(case_when(
                usage::feature().not_equals("classify"),
                null(),
                usage::model(),
            ))
            .into(),
        ),
        ("custom_min", min(usage::cost_nanos()).into()),
        (
            "custom_max",
            max(usage::occurred_at())
                .filter(!usage::lane().equals("sync"))
                .into(),
        ),
        ("custom_avg", avg(usage::cost_nanos()).into()),
    ]
}

/// What the generated query looks like.
#[derive(Clone, Debug)]
pub struct Shape {
    pub scope: u8,
    pub pick: prop::sample::Index,
    pub level: Option<i32>,
    pub order: Option<(usize, bool)>,
    pub filter: Option<i64>,
    pub limit: Option<u64>,
    /// The dimensions of the query grouped by dimension (never empty).
    pub dims: Vec<Dimension>,
}

pub fn shape() -> impl Strategy<Value = Shape> {
    (
        0u8..3,
        any::<prop::sample::Index>(),
        proptest::option::of(0i32..4),
        proptest::option::of((0usize..30, any::<bool>())),
        proptest::option::of(0i64..3),
        proptest::option::of(0u64..6),
        proptest::sample::subsequence(
            vec![Dimension::Feature, Dimension::Model, Dimension::Lane],
            1..=3,
        )
        .prop_shuffle(),
    )
        .prop_map(|(scope, pick, level, order, filter, limit, dims)| Shape {
            scope,
            pick,
            level,
            order,
            filter,
            limit,
            dims,
        })
}

/// The query of `shape` over `data`: one row per tenant group, every metric of [`all_metrics`].
pub fn query(data: &Dataset, shape: &Shape) -> MetricsQuery {
    build(data, shape, &all_metrics(), builtin::users())
}

/// The query of `shape` grouped by `shape.dims` as well: one row per tenant and dimension
/// values, every metric of [`usage_metrics`].
pub fn query_by_dimension(data: &Dataset, shape: &Shape) -> MetricsQuery {
    let mut q = build(
        data,
        shape,
        &usage_metrics(),
        builtin::requests(Period::all_time()),
    );
    for d in &shape.dims {
        q.group_by(*d);
    }
    q
}

fn build(
    data: &Dataset,
    shape: &Shape,
    metrics: &[(&'static str, Metric)],
    filtered: Metric,
) -> MetricsQuery {
    let mut q = MetricsQuery::new();
    let some_id = if data.tenants.is_empty() {
        "nobody".to_owned()
    } else {
        data.tenants[shape.pick.index(data.tenants.len())]
            .id
            .clone()
    };
    q.scope(match shape.scope {
        0 => Scope::All,
        1 => Scope::Ids(vec![some_id, "missing".into()]),
        _ => Scope::Subtree(some_id),
    });
    if let Some(l) = shape.level {
        q.level(l);
    }
    for (name, m) in metrics {
        q.select(name, m.clone()).expect("distinct names");
    }
    if let Some((i, desc)) = shape.order {
        let m = metrics[i % metrics.len()].1.clone();
        q.order_by(m, if desc { Order::Desc } else { Order::Asc });
    }
    if let Some(min) = shape.filter {
        q.filter(filtered.ge(min));
    }
    if let Some(l) = shape.limit {
        q.limit(l);
    }
    q
}
