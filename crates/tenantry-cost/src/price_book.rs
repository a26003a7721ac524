//! The price book: effective-dated, immutable rate rows per model, loaded from JSON or TOML.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;

use crate::error::{Error, Result};
use crate::formula::{
    self, ContextTier, LineCost, MAX_BATCH_PERMILLE, MAX_GEO_PERMILLE, ONE_BP, ONE_PERMILLE,
    RateSnapshot, Rates, TokenBuckets,
};
use tenantry_core::Lane;
use tenantry_core::UnixMicros;

const DEFAULT_BOOK: &str = include_str!("../data/anthropic.json");

/// Long-context pricing of a rate row: above the threshold every token of the request switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongContext {
    /// The request switches when its prompt tokens (input + cache writes + cache reads) are
    /// strictly greater than this.
    pub above_prompt_tokens: i64,
    /// The rates of every token of such a request.
    pub rates: Rates,
}

/// One immutable rate row: a model's prices from `effective_from` until the next row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateRow {
    /// Canonical model id.
    pub model: String,
    /// Start of validity (inclusive), UTC.
    pub effective_from: UnixMicros,
    /// The same instant as written in the book (`YYYY-MM-DD`).
    pub effective_date: String,
    /// Standard rates.
    pub rates: Rates,
    /// Batch multiplier in per-mille (500 = the 50 % Batch API discount).
    pub batch_permille: i64,
    /// Data-residency multipliers in per-mille by `inference_geo` value (e.g. `us` → 1100).
    pub inference_geo_permille: BTreeMap<String, i64>,
    /// Long-context tier, when the model has one.
    pub long_context: Option<LongContext>,
}

impl RateRow {
    /// The id stored in the ledger: `model@YYYY-MM-DD`.
    #[must_use]
    pub fn price_id(&self) -> String {
        format!("{}@{}", self.model, self.effective_date)
    }
}

/// What a request looks like to the price book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PriceQuery<'a> {
    /// Model id, alias or dated id.
    pub model: &'a str,
    /// When the usage happened (prices are those effective then).
    pub at: UnixMicros,
    /// Batch or synchronous.
    pub lane: Lane,
    /// `usage.inference_geo`, if any (`global` and absent cost 1×).
    pub inference_geo: Option<&'a str>,
    /// Prompt tokens of the request (input + cache writes + cache reads), for the
    /// long-context threshold.
    pub prompt_tokens: i64,
}

impl<'a> PriceQuery<'a> {
    /// A request to `model` at `at` on `lane`, with no residency and no prompt tokens (set
    /// them with [`with_inference_geo`](Self::with_inference_geo) and
    /// [`with_prompt_tokens`](Self::with_prompt_tokens)).
    #[must_use]
    pub fn new(model: &'a str, at: UnixMicros, lane: Lane) -> Self {
        Self {
            model,
            at,
            lane,
            inference_geo: None,
            prompt_tokens: 0,
        }
    }

    /// Sets `usage.inference_geo`.
    #[must_use]
    pub fn with_inference_geo(mut self, inference_geo: Option<&'a str>) -> Self {
        self.inference_geo = inference_geo;
        self
    }

    /// Sets the prompt tokens (input + cache writes + cache reads), for the long-context
    /// threshold.
    #[must_use]
    pub fn with_prompt_tokens(mut self, prompt_tokens: i64) -> Self {
        self.prompt_tokens = prompt_tokens;
        self
    }
}

/// The price book: rates as data, with effective dates, model aliases and dated ids.
///
/// ```
/// use tenantry_cost::{Lane, PriceBook, PriceQuery, TokenBuckets, UnixMicros};
/// let book = PriceBook::anthropic_default();
/// let tokens = TokenBuckets { input: 100_000, output: 100_000, ..Default::default() };
/// let at = UnixMicros::from_ymd(2026, 1, 15)?;
/// let mut query = PriceQuery::new("claude-sonnet-4-5-20250929", at, Lane::Batch)
///     .with_prompt_tokens(tokens.prompt_tokens());
/// let line = book.price(&query, &tokens)?;
/// assert_eq!(line.cost.to_string(), "$0.900000000"); // ($0.30 + $1.50) × 0.5
/// // Past 200K prompt tokens every token switches to the long-context rates ($6 / $22.50).
/// let long = TokenBuckets { input: 1_000_000, output: 1_000_000, ..Default::default() };
/// query.prompt_tokens = long.prompt_tokens();
/// assert_eq!(book.price(&query, &long)?.cost.to_string(), "$14.250000000");
/// # Ok::<(), tenantry_cost::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    name: String,
    as_of: String,
    source: String,
    rows: HashMap<String, Vec<RateRow>>,
    aliases: HashMap<String, String>,
}

#[derive(Deserialize, Serialize)]
struct BookFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    source: String,
    models: Vec<ModelFile>,
}

#[derive(Deserialize, Serialize)]
struct ModelFile {
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    rates: Vec<RowFile>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RowFile {
    effective_from: String,
    input: String,
    cache_write_5m: String,
    cache_write_1h: String,
    cache_read: String,
    output: String,
    #[serde(default = "half")]
    batch: String,
    #[serde(default)]
    inference_geo: BTreeMap<String, String>,
    #[serde(default)]
    long_context: Option<LongFile>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LongFile {
    above_prompt_tokens: i64,
    input: String,
    cache_write_5m: String,
    cache_write_1h: String,
    cache_read: String,
    output: String,
}

fn half() -> String {
    "0.5".to_owned()
}

impl PriceBook {
    /// The default book shipped in the crate: current Claude models, with its date
    /// ([`PriceBook::as_of`]) and source ([`PriceBook::source`]).
    ///
    /// # Panics
    ///
    /// Never: the embedded book is parsed by a unit test.
    #[must_use]
    pub fn anthropic_default() -> Self {
        Self::from_json(DEFAULT_BOOK).expect("the embedded price book parses")
    }

    /// An empty book, to fill with [`PriceBook::add_row`].
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads a book from JSON. Amounts are decimal **strings** in USD per million tokens
    /// (`"3.75"`, at most 6 decimals) and multipliers decimal strings (`"0.5"`, at most 3
    /// decimals), so no float ever touches a price.
    ///
    /// # Errors
    ///
    /// [`Error::PriceBookJson`] for malformed JSON, [`Error::InvalidPriceBook`] for a bad
    /// amount, date or a duplicate row.
    pub fn from_json(text: &str) -> Result<Self> {
        let file: BookFile = serde_json::from_str(text).map_err(Error::PriceBookJson)?;
        Self::from_file(file)
    }

    /// Loads a book from TOML, same shape as [`PriceBook::from_json`].
    ///
    /// # Errors
    ///
    /// [`Error::PriceBookToml`] for malformed TOML, [`Error::InvalidPriceBook`] as for JSON.
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: BookFile = toml::from_str(text).map_err(Error::PriceBookToml)?;
        Self::from_file(file)
    }

    fn from_file(file: BookFile) -> Result<Self> {
        let mut book = Self {
            name: file.name,
            as_of: file.as_of,
            source: file.source,
            ..Self::default()
        };
        for m in file.models {
            for r in &m.rates {
                book.add_row(row_from_file(&m.model, r)?)?;
            }
            for alias in m.aliases {
                book.add_alias(&alias, &m.model)?;
            }
        }
        Ok(book)
    }

    /// Adds all rows and aliases of `other` (a host's own book on top of the default one).
    ///
    /// # Errors
    ///
    /// As [`PriceBook::add_row`] and [`PriceBook::add_alias`].
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        for rows in other.rows.values() {
            for row in rows {
                self.add_row(row.clone())?;
            }
        }
        for (alias, model) in &other.aliases {
            self.add_alias(alias, model)?;
        }
        Ok(())
    }

    /// Adds a rate row. Rows are immutable: adding the identical row again is a no-op, a
    /// different row for the same model and date is an error (add a later row instead).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPriceBook`] for a conflicting row, [`Error::OutOfRange`] for a rate or
    /// multiplier outside the formula's range.
    pub fn add_row(&mut self, row: RateRow) -> Result<()> {
        row.rates.validate()?;
        formula::check_range("batch_permille", row.batch_permille, 0, MAX_BATCH_PERMILLE)?;
        for v in row.inference_geo_permille.values() {
            formula::check_range("geo_permille", *v, 0, MAX_GEO_PERMILLE)?;
        }
        if let Some(long) = &row.long_context {
            long.rates.validate()?;
        }
        let rows = self.rows.entry(row.model.clone()).or_default();
        match rows.binary_search_by_key(&row.effective_from, |r| r.effective_from) {
            Ok(i) if rows[i] == row => Ok(()),
            Ok(_) => Err(Error::InvalidPriceBook(format!(
                "a different rate row for `{}` effective {} already exists; rows are immutable",
                row.model, row.effective_date
            ))),
            Err(i) => {
                rows.insert(i, row);
                Ok(())
            }
        }
    }

    /// Makes `alias` (e.g. a dated id) resolve to the canonical `model`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPriceBook`] when the alias already points to another model.
    pub fn add_alias(&mut self, alias: &str, model: &str) -> Result<()> {
        match self.aliases.get(alias) {
            Some(existing) if existing != model => Err(Error::InvalidPriceBook(format!(
                "alias `{alias}` already resolves to `{existing}`"
            ))),
            _ => {
                self.aliases.insert(alias.to_owned(), model.to_owned());
                Ok(())
            }
        }
    }

    /// The book's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The date the book's prices were taken.
    #[must_use]
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// Where the prices come from.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Resolves an id, alias or dated id (`…-YYYYMMDD`) to the canonical model id.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`]: an unknown model is never priced at $0.
    pub fn resolve(&self, model: &str) -> Result<&str> {
        self.lookup(model).map(|(canonical, _)| canonical)
    }

    /// The canonical id and rate rows of a model: two hash lookups for any known name.
    fn lookup(&self, model: &str) -> Result<(&str, &[RateRow])> {
        let find = |m: &str| {
            let canonical = self.aliases.get(m).map_or(m, String::as_str);
            self.rows
                .get_key_value(canonical)
                .map(|(k, rows)| (k.as_str(), rows.as_slice()))
        };
        find(model)
            .or_else(|| strip_date_suffix(model).and_then(find))
            .ok_or_else(|| Error::UnknownModel {
                model: model.to_owned(),
            })
    }

    /// The rate row of `model` effective at `at`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`], or [`Error::NoRateAt`] when `at` is before the model's first row.
    pub fn rate_at(&self, model: &str, at: UnixMicros) -> Result<&RateRow> {
        let (canonical, rows) = self.lookup(model)?;
        let idx = rows.partition_point(|r| r.effective_from <= at);
        if idx == 0 {
            return Err(Error::NoRateAt {
                model: canonical.to_owned(),
                at_micros: at.0,
            });
        }
        Ok(&rows[idx - 1])
    }

    /// The rate snapshot for a request: rate row, long-context choice, batch and data-residency
    /// multipliers. Feature-tier and region multipliers are 1× here; the ledger sets them.
    ///
    /// # Errors
    ///
    /// As [`PriceBook::rate_at`], plus [`Error::UnsupportedModifier`] for an `inference_geo`
    /// the row has no multiplier for.
    pub fn snapshot(&self, query: &PriceQuery<'_>) -> Result<RateSnapshot> {
        let (row, context_tier, rates, batch_permille, geo_permille) = self.select(query)?;
        Ok(RateSnapshot {
            price_id: row.price_id(),
            context_tier,
            rates,
            batch_permille,
            geo_permille,
            tier_bp: ONE_BP,
            region_bp: ONE_BP,
        })
    }

    /// The rate row, rate set and provider multipliers a query gets.
    fn select(&self, query: &PriceQuery<'_>) -> Result<(&RateRow, ContextTier, Rates, i64, i64)> {
        let row = self.rate_at(query.model, query.at)?;
        let geo_permille =
            match query.inference_geo {
                None | Some("" | "global") => ONE_PERMILLE,
                Some(geo) => *row.inference_geo_permille.get(geo).ok_or_else(|| {
                    Error::UnsupportedModifier {
                        model: row.model.clone(),
                        modifier: format!("inference_geo \"{geo}\""),
                    }
                })?,
            };
        let (context_tier, rates) = match &row.long_context {
            Some(long) if query.prompt_tokens > long.above_prompt_tokens => {
                (ContextTier::Long, long.rates)
            }
            _ => (ContextTier::Standard, row.rates),
        };
        let batch_permille = match query.lane {
            Lane::Batch => row.batch_permille,
            Lane::Urgent => ONE_PERMILLE,
            // A lane this version does not know is never priced by a guess.
            other => {
                return Err(Error::UnsupportedModifier {
                    model: row.model.clone(),
                    modifier: format!("lane \"{other}\""),
                });
            }
        };
        Ok((row, context_tier, rates, batch_permille, geo_permille))
    }

    /// Prices tokens as [`PriceBook::snapshot`] then [`formula::line_cost`] would, without
    /// building the snapshot (tier and region at 1×).
    ///
    /// # Errors
    ///
    /// As [`PriceBook::snapshot`], and [`Error::OutOfRange`] for token counts.
    pub fn price(&self, query: &PriceQuery<'_>, tokens: &TokenBuckets) -> Result<LineCost> {
        tokens.validate()?;
        let (_, _, rates, batch, geo) = self.select(query)?;
        // Rates and multipliers were range-checked when the row was added.
        Ok(formula::cost_parts(
            tokens,
            &rates,
            [batch, geo, ONE_BP, ONE_BP],
        ))
    }
}

fn strip_date_suffix(model: &str) -> Option<&str> {
    let (base, suffix) = model.rsplit_once('-')?;
    (suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

fn row_from_file(model: &str, r: &RowFile) -> Result<RateRow> {
    let date = Date::parse(
        &r.effective_from,
        format_description!("[year]-[month]-[day]"),
    )
    .map_err(|e| {
        Error::InvalidPriceBook(format!(
            "`{model}`: effective_from `{}`: {e}",
            r.effective_from
        ))
    })?;
    let rates = |i: &str, w5: &str, w1: &str, cr: &str, o: &str| -> Result<Rates> {
        Ok(Rates {
            input: parse_scaled(i, 6)?,
            cache_write_5m: parse_scaled(w5, 6)?,
            cache_write_1h: parse_scaled(w1, 6)?,
            cache_read: parse_scaled(cr, 6)?,
            output: parse_scaled(o, 6)?,
        })
    };
    let mut geo = BTreeMap::new();
    for (k, v) in &r.inference_geo {
        geo.insert(k.clone(), parse_scaled(v, 3)?);
    }
    let long_context = match &r.long_context {
        Some(l) => Some(LongContext {
            above_prompt_tokens: l.above_prompt_tokens,
            rates: rates(
                &l.input,
                &l.cache_write_5m,
                &l.cache_write_1h,
                &l.cache_read,
                &l.output,
            )?,
        }),
        None => None,
    };
    Ok(RateRow {
        model: model.to_owned(),
        effective_from: UnixMicros::from_date(date),
        effective_date: r.effective_from.clone(),
        rates: rates(
            &r.input,
            &r.cache_write_5m,
            &r.cache_write_1h,
            &r.cache_read,
            &r.output,
        )?,
        batch_permille: parse_scaled(&r.batch, 3)?,
        inference_geo_permille: geo,
        long_context,
    })
}

/// Parses a non-negative decimal string exactly into an integer scaled by `10^decimals`
/// (`parse_scaled("3.75", 6) == 3_750_000`). More decimals than `decimals` is an error,
/// never a silent rounding.
pub(crate) fn parse_scaled(s: &str, decimals: u32) -> Result<i64> {
    let bad =
        || Error::InvalidPriceBook(format!("`{s}` is not a decimal with ≤ {decimals} decimals"));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > decimals as usize
    {
        return Err(bad());
    }
    let scale = 10_i64.pow(decimals);
    let mut frac_value: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let place = 10_i64.pow(decimals - 1 - u32::try_from(i).map_err(|_| bad())?);
        frac_value += i64::from(b - b'0') * place;
    }
    int.parse::<i64>()
        .ok()
        .and_then(|i| i.checked_mul(scale))
        .and_then(|i| i.checked_add(frac_value))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(parse_scaled("3.75", 6).unwrap(), 3_750_000);
        assert_eq!(parse_scaled("0.025", 6).unwrap(), 25_000);
        assert_eq!(parse_scaled("15", 6).unwrap(), 15_000_000);
        assert_eq!(parse_scaled("1.1", 3).unwrap(), 1_100);
        assert!(parse_scaled("0.0000001", 6).is_err());
        assert!(parse_scaled("-1", 6).is_err());
        assert!(parse_scaled("1e3", 6).is_err());
        assert!(parse_scaled(".5", 6).is_err());
    }

    #[test]
    fn default_book_parses_and_resolves() {
        let book = PriceBook::anthropic_default();
        assert_eq!(book.as_of(), "2026-10-31");
        assert!(book.source().contains("platform.claude.com"));
        assert_eq!(
            book.resolve("claude-sonnet-4-5-20250929").unwrap(),
            "claude-sonnet-4-5"
        );
        assert_eq!(book.resolve("claude-opus-4-0").unwrap(), "claude-opus-4");
        assert_eq!(
            book.resolve("claude-sonnet-4-6-20260301").unwrap(),
            "claude-sonnet-4-6"
        );
        assert!(matches!(
            book.resolve("gpt-4o"),
            Err(Error::UnknownModel { .. })
        ));
    }

    #[test]
    fn rows_are_immutable() {
        let mut book = PriceBook::anthropic_default();
        let mut row = book
            .rate_at(
                "claude-haiku-4-5",
                UnixMicros::from_ymd(2026, 1, 1).unwrap(),
            )
            .unwrap()
            .clone();
        book.add_row(row.clone()).unwrap();
        row.rates.output += 1;
        assert!(matches!(book.add_row(row), Err(Error::InvalidPriceBook(_))));
    }
}
