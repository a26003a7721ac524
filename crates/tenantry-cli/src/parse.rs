//! Values of flags: durations, instants and dollar amounts, parsed exactly.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// `90s`, `15m`, `2h`, `30d`: a whole number and a unit.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` needs a unit: s, m, h or d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` must start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` (use s, m, h or d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// `2026-12-01` (midnight UTC) or an RFC 3339 time.
pub(crate) fn instant(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("`{text}` is neither a date (2026-12-01) nor an RFC 3339 time"))
}

/// Dollars as exact nano-dollars: `12`, `12.5`, `0.000000001`; never through a float.
pub(crate) fn usd_nanos(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an amount in dollars with at most nine decimals");
    let text = text.trim().trim_start_matches('$');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 9
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: i64 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_a_number_and_a_unit() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "15", "m", "1.5h", "3w", "-1d"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_are_dates_or_rfc3339() {
        assert_eq!(
            instant("2026-12-01").unwrap().unix_timestamp(),
            1_796_083_200
        );
        assert_eq!(
            instant("2026-12-01T01:00:00+01:00")
                .unwrap()
                .unix_timestamp(),
            1_796_083_200
        );
        assert!(instant("yesterday").is_err());
    }

    #[test]
    fn dollars_are_exact_nanos() {
        assert_eq!(usd_nanos("12"), Ok(12_000_000_000));
        assert_eq!(usd_nanos("$12.5"), Ok(12_500_000_000));
        assert_eq!(usd_nanos("0.000000001"), Ok(1));
        assert_eq!(usd_nanos(".25"), Ok(250_000_000));
        for bad in ["", ".", "1.0000000001", "-1", "1e3", "ten", "99999999999"] {
            assert!(usd_nanos(bad).is_err(), "{bad}");
        }
    }
}
