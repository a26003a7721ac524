//! The comparison itself: both sides keyed by cell and token class, every difference
//! classified (see the module docs of [`super`]). Pure: no database, no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::ledger_sums::LedgerSum;
use super::{
    AttoUsd, Attribution, Cell, Difference, DifferenceKind, ProviderAccount, ReconcileRequest,
    TokenClass, Unattributed,
};
use crate::price_book::PriceBook;
use tenantry_core::TenantId;

/// What the comparison found, before it is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) compared: u64,
    pub(crate) ledger_cost: AttoUsd,
    pub(crate) provider_cost: AttoUsd,
    pub(crate) differences: Vec<Difference>,
    pub(crate) unattributed: Vec<Unattributed>,
}

type Key = (Cell, TokenClass);

/// Both sides of one key.
#[derive(Debug, Clone, Copy, Default)]
struct Pair<T> {
    ledger: T,
    provider: T,
}

/// Where tenants and the provider's workspaces or keys land.
struct Scopes<'a> {
    attribution: &'a Attribution,
    /// Every workspace or key some tenant maps to.
    targets: BTreeSet<&'a str>,
}

impl<'a> Scopes<'a> {
    fn new(attribution: &'a Attribution) -> Self {
        let targets = match attribution {
            Attribution::Organization => BTreeSet::new(),
            Attribution::Workspaces(map) | Attribution::ApiKeys(map) => {
                map.values().map(String::as_str).collect()
            }
        };
        Self {
            attribution,
            targets,
        }
    }

    fn map(&self) -> Option<&'a BTreeMap<TenantId, String>> {
        match self.attribution {
            Attribution::Organization => None,
            Attribution::Workspaces(map) | Attribution::ApiKeys(map) => Some(map),
        }
    }

    /// The token scope of a tenant's ledger rows.
    fn of_tenant(&self, tenant: &str) -> Option<String> {
        let map = self.map()?;
        let tenant: TenantId = tenant.parse().ok()?;
        map.get(&tenant).cloned()
    }

    /// The token scope of a provider usage row.
    fn of_provider(&self, workspace: Option<&str>, key: Option<&str>) -> Option<String> {
        let value = match self.attribution {
            Attribution::Organization => None,
            Attribution::Workspaces(_) => workspace,
            Attribution::ApiKeys(_) => key,
        }?;
        self.targets.contains(value).then(|| value.to_owned())
    }

    /// The money scope of a token scope: the same for workspaces, the organization for keys.
    fn money(&self, scope: Option<String>) -> Option<String> {
        match self.attribution {
            Attribution::Workspaces(_) => scope,
            Attribution::Organization | Attribution::ApiKeys(_) => None,
        }
    }
}

fn canonical(book: &PriceBook, model: &str) -> String {
    book.resolve(model).unwrap_or(model).to_owned()
}

fn geo(value: &str) -> String {
    match value {
        "" | "not_available" => "global".to_owned(),
        other => other.to_owned(),
    }
}

fn service_tier(lane: &str) -> String {
    match lane {
        "sync" => "standard".to_owned(),
        other => other.to_owned(),
    }
}

/// Effective rate of `cost` over `tokens`, in micro-USD per million tokens (= pico-USD per
/// token), rounded half away from zero.
fn rate(cost: AttoUsd, tokens: i64) -> i64 {
    if tokens == 0 {
        return 0;
    }
    let per_token = i128::from(tokens) * 1_000_000;
    let rounded = crate::money::div_round_half_away(cost.0, per_token.abs()) * per_token.signum();
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

pub(crate) fn compare(
    book: &PriceBook,
    request: &ReconcileRequest,
    sums: &[LedgerSum],
    account: &ProviderAccount,
) -> Outcome {
    let scopes = Scopes::new(&request.attribution);
    let mut tokens: BTreeMap<Key, Pair<i64>> = BTreeMap::new();
    let mut money: BTreeMap<Key, Pair<AttoUsd>> = BTreeMap::new();
    let mut unmapped_tenants = BTreeSet::new();
    let mut unmapped_scopes = BTreeSet::new();

    for sum in sums {
        let Some(day) = sum.date() else { continue };
        let scope = scopes.of_tenant(&sum.tenant_id);
        if scope.is_none() && scopes.map().is_some() {
            unmapped_tenants.insert(sum.tenant_id.clone());
        }
        let cell = Cell {
            day,
            scope: scope.clone(),
            model: canonical(book, &sum.model),
            service_tier: service_tier(&sum.lane),
            context_window: sum.context_window.clone(),
            inference_geo: geo(&sum.geo),
        };
        let money_cell = Cell {
            scope: scopes.money(scope),
            ..cell.clone()
        };
        let (counts, rates) = (sum.tokens(), sum.rates());
        let multiplier = i128::from(sum.batch_permille) * i128::from(sum.geo_permille);
        for class in TokenClass::ALL {
            let n = class.of(&counts);
            if n == 0 {
                continue;
            }
            tokens.entry((cell.clone(), class)).or_default().ledger += n;
            let cost = i128::from(n) * i128::from(class.of_rates(&rates)) * multiplier;
            money
                .entry((money_cell.clone(), class))
                .or_default()
                .ledger
                .0 += cost;
        }
    }
    for row in &account.usage {
        let scope = scopes.of_provider(row.workspace_id.as_deref(), row.api_key_id.as_deref());
        if scope.is_none() && scopes.map().is_some() {
            let named = match request.attribution {
                Attribution::Workspaces(_) => row.workspace_id.as_deref(),
                _ => row.api_key_id.as_deref(),
            };
            if let Some(named) = named {
                unmapped_scopes.insert(named.to_owned());
            }
        }
        let cell = Cell {
            day: row.day,
            scope,
            model: canonical(book, &row.model),
            service_tier: row.service_tier.clone(),
            context_window: row.context_window.clone(),
            inference_geo: geo(&row.inference_geo),
        };
        for class in TokenClass::ALL {
            let n = class.of(&row.tokens);
            if n != 0 {
                tokens.entry((cell.clone(), class)).or_default().provider += n;
            }
        }
    }
    for row in &account.cost {
        let scope = match request.attribution {
            Attribution::Workspaces(_) => row
                .workspace_id
                .as_deref()
                .filter(|w| scopes.targets.contains(w))
                .map(str::to_owned),
            _ => None,
        };
        let cell = Cell {
            day: row.day,
            scope,
            model: canonical(book, &row.model),
            service_tier: row.service_tier.clone(),
            context_window: row.context_window.clone(),
            inference_geo: geo(&row.inference_geo),
        };
        money.entry((cell, row.token_class)).or_default().provider.0 += row.amount.0;
    }

    // Money cells whose tokens disagree somewhere: the ingestion difference explains them.
    let mut explained = BTreeSet::new();
    let mut differences = Vec::new();
    let money_of = |cell: &Cell, class: TokenClass| {
        let key = (
            Cell {
                scope: scopes.money(cell.scope.clone()),
                ..cell.clone()
            },
            class,
        );
        (money.get(&key).copied().unwrap_or_default(), key)
    };
    for ((cell, class), pair) in &tokens {
        if pair.ledger == pair.provider {
            continue;
        }
        let (cost, money_key) = money_of(cell, *class);
        explained.insert(money_key);
        differences.push(Difference {
            cell: cell.clone(),
            class: *class,
            kind: if pair.provider > pair.ledger {
                DifferenceKind::MissingUsage
            } else {
                DifferenceKind::DuplicateUsage
            },
            ledger_tokens: pair.ledger,
            provider_tokens: pair.provider,
            ledger_cost: cost.ledger,
            provider_cost: cost.provider,
        });
    }
    // Tokens per money cell, for the rates of a price difference.
    let mut money_tokens: BTreeMap<Key, Pair<i64>> = BTreeMap::new();
    for ((cell, class), pair) in &tokens {
        let (_, key) = money_of(cell, *class);
        let entry = money_tokens.entry(key).or_default();
        entry.ledger += pair.ledger;
        entry.provider += pair.provider;
    }
    let mut ledger_cost = AttoUsd::ZERO;
    let mut provider_cost = AttoUsd::ZERO;
    for (key, pair) in &money {
        ledger_cost.0 += pair.ledger.0;
        provider_cost.0 += pair.provider.0;
        let delta = pair.provider.0 - pair.ledger.0;
        if delta == 0 || explained.contains(key) {
            continue;
        }
        let counts = money_tokens.get(key).copied().unwrap_or_default();
        let kind = if delta.abs() <= request.tolerance.0 {
            DifferenceKind::Rounding
        } else {
            DifferenceKind::PriceDifference {
                ledger_rate: rate(pair.ledger, counts.ledger),
                implied_rate: rate(pair.provider, counts.provider),
            }
        };
        differences.push(Difference {
            cell: key.0.clone(),
            class: key.1,
            kind,
            ledger_tokens: counts.ledger,
            provider_tokens: counts.provider,
            ledger_cost: pair.ledger,
            provider_cost: pair.provider,
        });
    }
    differences.sort_by(|a, b| (&a.cell, a.class).cmp(&(&b.cell, b.class)));

    let mut unattributed = Vec::new();
    match request.attribution {
        Attribution::Organization => unattributed.push(Unattributed::Organization),
        Attribution::ApiKeys(_) => unattributed.push(Unattributed::CostByOrganizationOnly),
        Attribution::Workspaces(_) => {}
    }
    if !unmapped_tenants.is_empty() {
        unattributed.push(Unattributed::UnmappedTenants(
            unmapped_tenants
                .into_iter()
                .filter_map(|t| t.parse().ok())
                .collect(),
        ));
    }
    if !unmapped_scopes.is_empty() {
        unattributed.push(Unattributed::UnmappedScopes(
            unmapped_scopes.into_iter().collect(),
        ));
    }
    let compared = u64::try_from(tokens.len().max(money.len())).unwrap_or(u64::MAX);
    Outcome {
        compared,
        ledger_cost,
        provider_cost,
        differences,
        unattributed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formula::TokenBuckets;
    use crate::reconcile::{ProviderCost, ProviderUsage};
    use time::macros::date;

    fn sum(tenant: &str, input: i64, output: i64) -> LedgerSum {
        LedgerSum {
            tenant_id: tenant.to_owned(),
            day: 20_513, // 2026-03-01
            model: "claude-haiku-4-5".to_owned(),
            lane: "batch".to_owned(),
            context_window: "0-200k".to_owned(),
            geo: "global".to_owned(),
            input_rate: 1_000_000,
            cache_write_5m_rate: 1_250_000,
            cache_write_1h_rate: 2_000_000,
            cache_read_rate: 100_000,
            output_rate: 5_000_000,
            batch_permille: 500,
            geo_permille: 1_000,
            input_tokens: input,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            cache_read_tokens: 0,
            output_tokens: output,
        }
    }

    fn usage(input: i64, output: i64) -> ProviderUsage {
        ProviderUsage {
            day: date!(2026 - 03 - 01),
            workspace_id: Some("wrkspc_a".to_owned()),
            api_key_id: Some("apikey_a".to_owned()),
            model: "claude-haiku-4-5-20251001".to_owned(),
            service_tier: "batch".to_owned(),
            context_window: "0-200k".to_owned(),
            inference_geo: "global".to_owned(),
            tokens: TokenBuckets {
                input,
                output,
                ..TokenBuckets::default()
            },
        }
    }

    fn cost(class: TokenClass, cents: (i128, u32)) -> ProviderCost {
        ProviderCost {
            day: date!(2026 - 03 - 01),
            workspace_id: None,
            model: "claude-haiku-4-5".to_owned(),
            service_tier: "batch".to_owned(),
            context_window: "0-200k".to_owned(),
            inference_geo: "global".to_owned(),
            token_class: class,
            amount: AttoUsd::from_cents(cents.0, cents.1).unwrap(),
        }
    }

    /// Compares with a tolerance of a hundredth of a cent (the amounts here are small).
    fn run(sums: &[LedgerSum], account: &ProviderAccount) -> Outcome {
        let request = ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 03 - 01))
            .tolerance(AttoUsd(AttoUsd::CENT.0 / 100));
        compare(&PriceBook::anthropic_default(), &request, sums, account)
    }

    #[test]
    fn equal_sides_have_no_difference() {
        // 1,000 input at $0.50/MTok = 0.05 cents; 100 output at $2.50/MTok = 0.025 cents.
        let account = ProviderAccount {
            usage: vec![usage(1_000, 100)],
            cost: vec![
                cost(TokenClass::Input, (5, 2)),
                cost(TokenClass::Output, (25, 3)),
            ],
        };
        let out = run(&[sum("acme", 600, 100), sum("beta", 400, 0)], &account);
        assert_eq!(out.differences, vec![]);
        assert_eq!(out.compared, 2);
        assert_eq!(out.ledger_cost, out.provider_cost);
    }

    #[test]
    fn each_disagreement_gets_its_kind() {
        let account = ProviderAccount {
            usage: vec![usage(1_000, 100)],
            cost: vec![
                // Input: priced at $1/MTok batch instead of $0.50 → price difference.
                cost(TokenClass::Input, (10, 2)),
                cost(TokenClass::Output, (25, 3)),
            ],
        };
        let out = run(&[sum("acme", 1_000, 100)], &account);
        assert_eq!(out.differences.len(), 1, "{:?}", out.differences);
        assert_eq!(
            out.differences[0].kind,
            DifferenceKind::PriceDifference {
                ledger_rate: 500_000,
                implied_rate: 1_000_000
            }
        );
        // The ledger lacks 10 output tokens: missing usage, and its money is not classified.
        let account = ProviderAccount {
            usage: vec![usage(1_000, 110)],
            cost: vec![
                cost(TokenClass::Input, (5, 2)),
                cost(TokenClass::Output, (275, 4)),
            ],
        };
        let out = run(&[sum("acme", 1_000, 100)], &account);
        assert_eq!(out.differences.len(), 1);
        assert_eq!(out.differences[0].kind, DifferenceKind::MissingUsage);
        assert_eq!(out.differences[0].token_delta(), 10);
        // A hundredth of a cent off: rounding.
        let account = ProviderAccount {
            usage: vec![usage(1_000, 100)],
            cost: vec![
                cost(TokenClass::Input, (6, 2)),
                cost(TokenClass::Output, (25, 3)),
            ],
        };
        let out = run(&[sum("acme", 1_000, 100)], &account);
        assert_eq!(out.differences.len(), 1);
        assert_eq!(out.differences[0].kind, DifferenceKind::Rounding);
    }

    #[test]
    fn workspaces_scope_cells_and_name_what_is_unmapped() {
        let mut map = BTreeMap::new();
        map.insert("acme".parse().unwrap(), "wrkspc_a".to_owned());
        let request = ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 03 - 01))
            .attribution(Attribution::Workspaces(map));
        let mut other = usage(5, 0);
        other.workspace_id = Some("wrkspc_z".to_owned());
        let account = ProviderAccount {
            usage: vec![usage(1_000, 100), other],
            cost: vec![],
        };
        let out = compare(
            &PriceBook::anthropic_default(),
            &request,
            &[sum("acme", 1_000, 100), sum("beta", 5, 0)],
            &account,
        );
        let token_kinds: Vec<_> = out
            .differences
            .iter()
            .filter(|d| d.ledger_tokens != d.provider_tokens)
            .collect();
        assert!(token_kinds.is_empty(), "{token_kinds:?}");
        assert!(
            out.unattributed
                .contains(&Unattributed::UnmappedTenants(vec![
                    "beta".parse().unwrap()
                ]))
        );
        assert!(
            out.unattributed
                .contains(&Unattributed::UnmappedScopes(vec!["wrkspc_z".to_owned()]))
        );
    }
}
