//! A seeded tenantry database for the report examples: a small tenant tree and a month of
//! usage in the ledger, the same on every run.

use tenantry::Tenantry;
use tenantry::cost::{Lane, LedgerEntry, TokenBuckets, UnixMicros};

/// The seeded month: October 2026 (UTC).
pub(crate) const YEAR: i32 = 2026;
/// The seeded month's number.
pub(crate) const MONTH: u8 = 10;
/// Days in the seeded month.
pub(crate) const DAYS: u8 = 31;
/// One day in microseconds.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// `(tenant, parent)`, parents first.
pub(crate) const TENANTS: [(&str, Option<&str>); 6] = [
    ("acme", None),
    ("acme-eu", Some("acme")),
    ("acme-us", Some("acme")),
    ("globex", None),
    ("initech", None),
    ("umbrella", None),
];

/// The tenants that make requests (the leaves).
pub(crate) const ACTIVE: [&str; 5] = ["acme-eu", "acme-us", "globex", "initech", "umbrella"];

/// A deterministic generator (64-bit LCG), so every run seeds the same numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Opens a fresh SQLite database at `path` and seeds the tenant tree and a month of usage
/// (`per_day` requests per tenant on average). Returns the handle.
pub(crate) async fn seeded(
    path: &std::path::Path,
    per_day: u64,
) -> Result<Tenantry, Box<dyn std::error::Error>> {
    // The reports never call the API; the client is configured but unused.
    let tenantry = Tenantry::builder()
        .database(format!("sqlite://{}", path.display()))
        .api(tenantry::batch::Config::new("unused"))
        .feature_tier("premium", 12_000)
        .build()
        .await?;
    for (tenant, parent) in TENANTS {
        tenantry.add_tenant(tenant, parent).await?;
    }
    for tenant in ACTIVE {
        for u in 0..12 {
            tenantry
                .add_member(tenant, &format!("{tenant}-user-{u}"))
                .await?;
        }
    }
    let start = UnixMicros::from_ymd(YEAR, MONTH, 1)?;
    let mut rng = Lcg(42);
    let mut records = Vec::new();
    for (t, tenant) in ACTIVE.iter().enumerate() {
        let scale = u64::try_from(t).unwrap_or(0) + 1;
        for day in 0..i64::from(DAYS) {
            let n = per_day * scale / 3 + rng.next(per_day);
            for i in 0..n {
                let summary = rng.next(3) != 0;
                let urgent = rng.next(10) == 0;
                let input = if summary {
                    800 + rng.next(4_000)
                } else {
                    150 + rng.next(600)
                };
                let output = if summary {
                    60 + rng.next(240)
                } else {
                    1 + rng.next(8)
                };
                let mut entry = LedgerEntry::new(
                    "seed",
                    format!("{tenant}-{day}-{i}"),
                    tenant.parse()?,
                    if summary {
                        "summaries"
                    } else {
                        "classifications"
                    },
                    if summary {
                        "claude-sonnet-4-5"
                    } else {
                        "claude-haiku-4-5"
                    },
                    if urgent { Lane::Urgent } else { Lane::Batch },
                    UnixMicros(start.0 + day * DAY_MICROS + int(rng.next(86_400)) * 1_000_000),
                )
                .with_user(format!("{tenant}-user-{}", rng.next(12)))
                .with_tokens(TokenBuckets {
                    input: int(input),
                    output: int(output),
                    ..TokenBuckets::default()
                });
                entry.feature_tier = (*tenant == "globex").then(|| "premium".into());
                records.push(entry);
            }
        }
    }
    for chunk in records.chunks(2_000) {
        tenantry.ledger().record_batch(chunk).await?;
    }
    Ok(tenantry)
}
