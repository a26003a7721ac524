//! The provider's own account: every request the emulator billed, with the dimensions its
//! Admin API reports group by, its own price table, and the knobs that make that account
//! disagree with a client's ledger (a price change at a date, a dropped or doubled request, a
//! coarser rounding).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use time::OffsetDateTime;

/// Prices of one model in **micro-USD per million tokens** (the same number as pico-USD per
/// token): `$3.75/MTok` is `3_750_000`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Prices {
    /// Uncached input.
    pub input: u64,
    /// 5-minute cache write.
    pub cache_write_5m: u64,
    /// 1-hour cache write.
    pub cache_write_1h: u64,
    /// Cache read.
    pub cache_read: u64,
    /// Output.
    pub output: u64,
}

impl Prices {
    /// Prices in micro-USD per million tokens, in the order of the cost report's token types.
    #[must_use]
    pub const fn new(
        input: u64,
        cache_write_5m: u64,
        cache_write_1h: u64,
        cache_read: u64,
        output: u64,
    ) -> Self {
        Self {
            input,
            cache_write_5m,
            cache_write_1h,
            cache_read,
            output,
        }
    }

    /// The usual shape of Anthropic's prices from the input and output rates: cache writes
    /// 1.25× (5 minutes) and 2× (1 hour) input, cache reads 0.1× input.
    #[must_use]
    pub const fn standard(input: u64, output: u64) -> Self {
        Self::new(input, input * 5 / 4, input * 2, input / 10, output)
    }

    fn of(&self, token_type: TokenType) -> u64 {
        match token_type {
            TokenType::Uncached => self.input,
            TokenType::Write5m => self.cache_write_5m,
            TokenType::Write1h => self.cache_write_1h,
            TokenType::Read => self.cache_read,
            TokenType::Output => self.output,
        }
    }
}

/// How the cost report writes each `amount` (a decimal string in cents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CostRounding {
    /// Every digit of the exact amount (trailing zeros dropped). The default.
    #[default]
    Exact,
    /// Each result row's amount rounded half up to this many decimals of a cent (`0`: whole
    /// cents), as a provider that rounds its own lines would report it.
    Decimals(u32),
}

/// A token type as the cost report names it (`token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TokenType {
    Uncached,
    Write5m,
    Write1h,
    Read,
    Output,
}

impl TokenType {
    pub(crate) const ALL: [Self; 5] = [
        Self::Uncached,
        Self::Write5m,
        Self::Write1h,
        Self::Read,
        Self::Output,
    ];

    pub(crate) fn wire(self) -> &'static str {
        match self {
            Self::Uncached => "uncached_input_tokens",
            Self::Write5m => "cache_creation.ephemeral_5m_input_tokens",
            Self::Write1h => "cache_creation.ephemeral_1h_input_tokens",
            Self::Read => "cache_read_input_tokens",
            Self::Output => "output_tokens",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Uncached => "Input Tokens",
            Self::Write5m => "Cache Write Tokens (5m)",
            Self::Write1h => "Cache Write Tokens (1h)",
            Self::Read => "Cache Read Tokens",
            Self::Output => "Output Tokens",
        }
    }
}

/// One request the API billed, with every dimension its usage and cost reports group by.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BilledUsage {
    /// The message id (`msg_…`) the client received, in a Messages answer or a batch result.
    pub message_id: String,
    /// When it was billed (virtual time): the message's generation, or the batch request's
    /// start.
    pub at: OffsetDateTime,
    /// The workspace of the key that made it.
    pub workspace_id: String,
    /// The id of the key that made it (see [`crate::Emulator::api_key_id`]).
    pub api_key_id: String,
    /// The model as the request named it.
    pub model: String,
    /// `standard` (Messages API) or `batch`.
    pub service_tier: String,
    /// `0-200k`, or `200k-1M` when the prompt (input + cache writes + cache reads) passed
    /// 200,000 tokens.
    pub context_window: String,
    /// The request's `inference_geo`, `global` when it set none.
    pub inference_geo: String,
    /// Uncached input tokens.
    pub uncached_input_tokens: u64,
    /// Tokens written to the 5-minute cache.
    pub cache_creation_5m_input_tokens: u64,
    /// Tokens written to the 1-hour cache.
    pub cache_creation_1h_input_tokens: u64,
    /// Tokens read from the cache.
    pub cache_read_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl BilledUsage {
    pub(crate) fn tokens(&self, token_type: TokenType) -> u64 {
        match token_type {
            TokenType::Uncached => self.uncached_input_tokens,
            TokenType::Write5m => self.cache_creation_5m_input_tokens,
            TokenType::Write1h => self.cache_creation_1h_input_tokens,
            TokenType::Read => self.cache_read_input_tokens,
            TokenType::Output => self.output_tokens,
        }
    }

    /// Reads a generated `Message` (serialized JSON) billed at `at`.
    pub(crate) fn from_message(
        message: &str,
        at: OffsetDateTime,
        workspace_id: &str,
        api_key_id: &str,
    ) -> Option<Self> {
        let message: Value = serde_json::from_str(message).ok()?;
        let usage = message.get("usage")?;
        let count = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let creation = usage.get("cache_creation");
        let w5 = count(creation.and_then(|c| c.get("ephemeral_5m_input_tokens")));
        let w1 = count(creation.and_then(|c| c.get("ephemeral_1h_input_tokens")));
        let uncached = count(usage.get("input_tokens"));
        let read = count(usage.get("cache_read_input_tokens"));
        let prompt = uncached + w5 + w1 + read;
        Some(Self {
            message_id: message.get("id")?.as_str()?.to_owned(),
            at,
            workspace_id: workspace_id.to_owned(),
            api_key_id: api_key_id.to_owned(),
            model: message.get("model")?.as_str()?.to_owned(),
            service_tier: usage
                .get("service_tier")
                .and_then(Value::as_str)
                .unwrap_or("standard")
                .to_owned(),
            context_window: if prompt > LONG_CONTEXT_TOKENS {
                "200k-1M"
            } else {
                "0-200k"
            }
            .to_owned(),
            inference_geo: usage
                .get("inference_geo")
                .and_then(Value::as_str)
                .unwrap_or("global")
                .to_owned(),
            uncached_input_tokens: uncached,
            cache_creation_5m_input_tokens: w5,
            cache_creation_1h_input_tokens: w1,
            cache_read_input_tokens: read,
            output_tokens: count(usage.get("output_tokens")),
        })
    }
}

/// Prompts longer than this many tokens are in the `200k-1M` context window.
const LONG_CONTEXT_TOKENS: u64 = 200_000;

/// µUSD per million tokens of one dollar per million tokens.
const USD: u64 = 1_000_000;

/// The emulator's price table: `(model, standard prices, long-context prices)`, the public
/// list prices of the models the emulator knows (dated ids priced as their alias).
fn default_prices() -> HashMap<String, (Prices, Option<Prices>)> {
    let opus_4_5 = Prices::standard(5 * USD, 25 * USD);
    let opus_4_1 = Prices::standard(15 * USD, 75 * USD);
    let sonnet = Prices::standard(3 * USD, 15 * USD);
    let sonnet_long = Prices::new(6 * USD, 7_500_000, 12 * USD, 600_000, 22_500_000);
    let haiku_4_5 = Prices::standard(USD, 5 * USD);
    let sonnet_5 = Prices::new(2 * USD, 2_500_000, 4 * USD, 200_000, 10 * USD);
    let fable = Prices::new(10 * USD, 12_500_000, 20 * USD, USD, 50 * USD);
    let table: [(&str, Prices, Option<Prices>); 22] = [
        ("claude-sonnet-5", sonnet_5, None),
        ("claude-fable-5", fable, None),
        ("claude-mythos-5", fable, None),
        ("claude-opus-5", opus_4_5, None),
        ("claude-opus-4-8", opus_4_5, None),
        ("claude-opus-4-7", opus_4_5, None),
        ("claude-mythos-preview", fable, None),
        ("claude-opus-4-6", opus_4_5, None),
        ("claude-sonnet-4-6", sonnet, None),
        ("claude-haiku-4-5", haiku_4_5, None),
        ("claude-haiku-4-5-20251001", haiku_4_5, None),
        ("claude-opus-4-5", opus_4_5, None),
        ("claude-opus-4-5-20251101", opus_4_5, None),
        ("claude-sonnet-4-5", sonnet, Some(sonnet_long)),
        ("claude-sonnet-4-5-20250929", sonnet, Some(sonnet_long)),
        ("claude-opus-4-1", opus_4_1, None),
        ("claude-opus-4-1-20250805", opus_4_1, None),
        ("claude-sonnet-4-0", sonnet, Some(sonnet_long)),
        ("claude-sonnet-4-20250514", sonnet, Some(sonnet_long)),
        (
            "claude-3-5-haiku-latest",
            Prices::standard(800_000, 4 * USD),
            None,
        ),
        (
            "claude-3-5-haiku-20241022",
            Prices::standard(800_000, 4 * USD),
            None,
        ),
        (
            "claude-3-haiku-20240307",
            Prices::new(250_000, 300_000, 500_000, 30_000, 1_250_000),
            None,
        ),
    ];
    table
        .into_iter()
        .map(|(model, standard, long)| (model.to_owned(), (standard, long)))
        .collect()
}

/// Batch requests cost half, in per-mille.
const BATCH_PERMILLE: u128 = 500;
/// `inference_geo: us` costs 1.1×, in per-mille.
const US_PERMILLE: u128 = 1_100;
/// One, in per-mille.
const ONE_PERMILLE: u128 = 1_000;
/// Units of the exact amounts (10⁻¹⁸ USD, pico-USD × two per-mille factors) per cent.
pub(crate) const UNITS_PER_CENT: u128 = 10_000_000_000_000_000;

#[derive(Debug, Default)]
struct State {
    /// `model → (standard, long-context)` prices from the beginning of time.
    prices: HashMap<String, (Prices, Option<Prices>)>,
    /// Later price changes: `(model, from, prices)`, applied in order of `from`.
    changes: Vec<(String, OffsetDateTime, Prices)>,
    /// Billed Messages API requests, in order.
    messages: Vec<BilledUsage>,
    /// Which key created each batch: `batch id → api key id`.
    batch_keys: HashMap<String, String>,
    dropped: HashSet<String>,
    doubled: HashSet<String>,
    rounding: CostRounding,
}

/// The account behind the Admin API reports.
#[derive(Debug)]
pub(crate) struct Account {
    state: Mutex<State>,
}

impl Default for Account {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Account {
    /// The default price table with `overrides` (`model → prices`) applied.
    pub(crate) fn new(overrides: Vec<(String, Prices)>) -> Self {
        let mut prices = default_prices();
        for (model, p) in overrides {
            prices.insert(model, (p, None));
        }
        Self {
            state: Mutex::new(State {
                prices,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn message(&self, billed: BilledUsage) {
        self.lock().messages.push(billed);
    }

    pub(crate) fn batch_key(&self, batch_id: &str, api_key_id: &str) {
        self.lock()
            .batch_keys
            .insert(batch_id.to_owned(), api_key_id.to_owned());
    }

    pub(crate) fn key_of_batch(&self, batch_id: &str) -> String {
        self.lock()
            .batch_keys
            .get(batch_id)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn messages(&self) -> Vec<BilledUsage> {
        self.lock().messages.clone()
    }

    pub(crate) fn change_price(&self, model: &str, from: OffsetDateTime, prices: Prices) {
        let mut state = self.lock();
        state.changes.push((model.to_owned(), from, prices));
        state.changes.sort_by_key(|(_, from, _)| *from);
    }

    pub(crate) fn drop_request(&self, message_id: &str) {
        self.lock().dropped.insert(message_id.to_owned());
    }

    pub(crate) fn double_request(&self, message_id: &str) {
        self.lock().doubled.insert(message_id.to_owned());
    }

    pub(crate) fn set_rounding(&self, rounding: CostRounding) {
        self.lock().rounding = rounding;
    }

    pub(crate) fn rounding(&self) -> CostRounding {
        self.lock().rounding
    }

    /// The requests as the account counts them: dropped ones left out, doubled ones twice.
    pub(crate) fn as_counted(&self, billed: Vec<BilledUsage>) -> Vec<BilledUsage> {
        let state = self.lock();
        let mut out = Vec::with_capacity(billed.len());
        for usage in billed {
            if state.dropped.contains(&usage.message_id) {
                continue;
            }
            if state.doubled.contains(&usage.message_id) {
                out.push(usage.clone());
            }
            out.push(usage);
        }
        out
    }

    /// The exact cost of one token type of one request, in 10⁻¹⁸ USD; `None` for a model
    /// the table does not price.
    pub(crate) fn amount(&self, usage: &BilledUsage, token_type: TokenType) -> Option<u128> {
        let state = self.lock();
        let (standard, long) = state.prices.get(&usage.model)?;
        let changed = state
            .changes
            .iter()
            .rev()
            .find(|(model, from, _)| *model == usage.model && *from <= usage.at)
            .map(|(_, _, p)| *p);
        let prices = match (usage.context_window.as_str(), long) {
            ("200k-1M", Some(long)) => *long,
            _ => changed.unwrap_or(*standard),
        };
        let tier = if usage.service_tier == "batch" {
            BATCH_PERMILLE
        } else {
            ONE_PERMILLE
        };
        let geo = if usage.inference_geo == "us" {
            US_PERMILLE
        } else {
            ONE_PERMILLE
        };
        Some(u128::from(usage.tokens(token_type)) * u128::from(prices.of(token_type)) * tier * geo)
    }
}

/// Writes an amount of 10⁻¹⁸ USD as the cost report does: a decimal string in cents, rounded
/// as `rounding` says.
pub(crate) fn cents_string(units: u128, rounding: CostRounding) -> String {
    const SCALE: usize = 16; // UNITS_PER_CENT = 10^16
    let units = match rounding {
        CostRounding::Exact => units,
        CostRounding::Decimals(decimals) => {
            let keep = u32::try_from(SCALE).unwrap_or(16).saturating_sub(decimals);
            let step = 10u128.pow(keep);
            (units + step / 2) / step * step
        }
    };
    let whole = units / UNITS_PER_CENT;
    let fraction = units % UNITS_PER_CENT;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0SCALE$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_cents() {
        // 1,000 output tokens at $15/MTok = $0.015 = 1.5 cents.
        let units = 1_000u128 * 15_000_000 * 1_000 * 1_000;
        assert_eq!(cents_string(units, CostRounding::Exact), "1.5");
        assert_eq!(cents_string(units, CostRounding::Decimals(0)), "2");
        assert_eq!(cents_string(0, CostRounding::Exact), "0");
        // One uncached Haiku batch token in the US: $1/MTok × 0.5 × 1.1 = 5.5e-5 cents.
        let one = 1_000_000u128 * 500 * 1_100; // one token
        assert_eq!(cents_string(one, CostRounding::Exact), "0.000055");
        assert_eq!(cents_string(one, CostRounding::Decimals(4)), "0.0001");
        assert_eq!(
            cents_string(123_450_000_000_000_000, CostRounding::Exact),
            "12.345"
        );
    }

    #[test]
    fn standard_prices_follow_the_published_ratios() {
        let p = Prices::standard(3 * USD, 15 * USD);
        assert_eq!(
            p,
            Prices::new(3_000_000, 3_750_000, 6_000_000, 300_000, 15_000_000)
        );
    }
}
