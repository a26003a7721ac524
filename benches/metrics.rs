//! Building and rendering a metrics query (`tenantry-metrics`): a dashboard of every built-in
//! metric, built from scratch and rendered to SQL plus bound values, per backend; cold
//! (`MetricsQuery::build`) and through a warm `MetricsCache` (a hit: the query is still built
//! from scratch, with another tenant id each iteration, and only its values are bound).
//!
//! Run with: `cargo bench -p tenantry-benches --bench metrics`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tenantry_metrics::builtin::{self, Period, Slice};
use tenantry_metrics::{Backend, MetricsCache, MetricsQuery, Scope};

fn dashboard(scope: Scope) -> MetricsQuery {
    let all = Period::all_time();
    let jan = Period::new(1_767_225_600_000_000, 1_769_904_000_000_000).expect("period");
    let slice = Slice::all().feature("feature1").model("model2");
    let mut q = MetricsQuery::new();
    q.scope(scope);
    let metrics = [
        ("users", builtin::users()),
        ("active_users", builtin::active_users(jan)),
        ("adoption_ppm", builtin::adoption_rate("feature1", jan)),
        ("requests", builtin::requests(jan)),
        ("tokens", builtin::tokens(jan)),
        ("cost", builtin::cost(jan)),
        ("cost_per_active_user", builtin::cost_per_active_user(jan)),
        ("slice_requests", builtin::requests_in(&slice, all)),
        ("slice_tokens", builtin::tokens_in(&slice, all)),
        ("slice_cost", builtin::cost_in(&slice, all)),
        ("batch_share_ppm", builtin::batch_share(jan)),
        ("batch_savings", builtin::batch_savings(jan)),
        ("admin_max_depth", builtin::max_inheritance_depth("admin")),
        (
            "admin_depth_0",
            builtin::inheritance_depth_count("admin", 0),
        ),
        (
            "admin_depth_1",
            builtin::inheritance_depth_count("admin", 1),
        ),
        ("read_holders", builtin::permission_holders("read")),
    ];
    for (name, m) in metrics {
        q.select(name, m).expect("select");
    }
    q
}

fn cost_one_tenant(tenant: &str) -> MetricsQuery {
    let mut q = MetricsQuery::new();
    q.scope(Scope::Ids(vec![tenant.into()]));
    q.select("cost", builtin::cost(Period::all_time()))
        .expect("select");
    q
}

/// Tenant ids the cached benches cycle through, so each hit binds other values.
const TENANTS: [&str; 4] = ["m7", "m8", "w3", "o1"];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics_build_render");
    for (label, dialect) in [("postgres", Backend::Postgres), ("sqlite", Backend::Sqlite)] {
        g.bench_function(format!("all_builtins_all_tenants/{label}"), |b| {
            b.iter(|| {
                dashboard(black_box(Scope::All))
                    .build(dialect)
                    .expect("build")
            })
        });
        g.bench_function(format!("all_builtins_one_tenant/{label}"), |b| {
            b.iter(|| {
                dashboard(black_box(Scope::Ids(vec!["m7".into()])))
                    .build(dialect)
                    .expect("build")
            })
        });
        g.bench_function(format!("cost_one_tenant/{label}"), |b| {
            b.iter(|| {
                cost_one_tenant(black_box("m7"))
                    .build(dialect)
                    .expect("build")
            })
        });
        let cache = MetricsCache::default();
        let mut i = 0;
        let mut next_tenant = move || {
            i = (i + 1) % TENANTS.len();
            black_box(TENANTS[i])
        };
        g.bench_function(format!("cached/all_builtins_all_tenants/{label}"), |b| {
            b.iter(|| {
                cache
                    .build(&dashboard(black_box(Scope::All)), dialect)
                    .expect("build")
            })
        });
        g.bench_function(format!("cached/all_builtins_one_tenant/{label}"), |b| {
            b.iter(|| {
                let q = dashboard(Scope::Ids(vec![next_tenant().into()]));
                cache.build(&q, dialect).expect("build")
            })
        });
        // The cache's own part: the queries are built before timing, one per tenant.
        let built: Vec<MetricsQuery> = TENANTS
            .iter()
            .map(|t| dashboard(Scope::Ids(vec![(*t).into()])))
            .collect();
        let mut k = 0;
        g.bench_function(
            format!("cached_prebuilt/all_builtins_one_tenant/{label}"),
            |b| {
                b.iter(|| {
                    k = (k + 1) % built.len();
                    cache.build(black_box(&built[k]), dialect).expect("build")
                })
            },
        );
        g.bench_function(format!("cached/cost_one_tenant/{label}"), |b| {
            b.iter(|| {
                cache
                    .build(&cost_one_tenant(next_tenant()), dialect)
                    .expect("build")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
