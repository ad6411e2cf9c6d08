//! Validated job parameters: parsers for the values of `--as-of`, `--window`,
//! `--month` and `--memory-limit`. They are clap value parsers, so a bad value is
//! reported with the option's name, quoted, and exits with the usage code.

use crate::read::fields::{self, MICROS_PER_SEC};

/// `now`, a date `YYYY-MM-DD` (midnight UTC) or a timestamp, as UTC microseconds.
pub fn parse_as_of(s: &str) -> Result<i64, String> {
    if s == "now" {
        return Ok(chrono::Utc::now().timestamp_micros());
    }
    if let Some(days) = fields::parse_date(s.as_bytes()) {
        return Ok(days * 86_400 * MICROS_PER_SEC);
    }
    fields::parse_timestamp(s.as_bytes())
        .ok_or_else(|| "expected now, YYYY-MM-DD, or a timestamp like 2026-11-20T13:45:12Z".to_string())
}

/// `<n>d`, `<n>h`, `<n>m` or `<n>s` (n >= 1), as microseconds.
pub fn parse_window(s: &str) -> Result<i64, String> {
    let err = || "expected a length like 7d, 24h, 30m or 90s".to_string();
    let unit = match s.as_bytes().last() {
        Some(b'd') => 86_400,
        Some(b'h') => 3_600,
        Some(b'm') => 60,
        Some(b's') => 1,
        _ => return Err(err()),
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i64 = digits.parse().map_err(|_| err())?;
    if n == 0 {
        return Err("a length must be longer than zero".into());
    }
    // Checked: 999999999d is past what 64-bit microseconds hold (292,000 years).
    n.checked_mul(unit)
        .and_then(|secs| secs.checked_mul(MICROS_PER_SEC))
        .ok_or_else(|| format!("'{s}' is longer than 292,000 years"))
}

/// Formats a window length the way `--window` takes it, in the largest exact unit.
pub fn format_window(micros: i64) -> String {
    let secs = micros / MICROS_PER_SEC;
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % len == 0 {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// A month filter: one calendar month, or the month of `--as-of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonthArg {
    /// `YYYY-MM`.
    Month(i64, i64),
    /// `current`.
    Current,
}

/// The period of one month, as monthly jobs publish it.
pub fn month_period((y, m): (i64, i64)) -> crate::table::Period {
    let label = format!("{y:04}-{m:02}");
    crate::table::Period { label: label.clone(), column: Some("month"), value: label }
}

/// `YYYY-MM` or `current`.
pub fn parse_month(s: &str) -> Result<MonthArg, String> {
    if s == "current" {
        return Ok(MonthArg::Current);
    }
    let b = s.as_bytes();
    let ok = b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit());
    let (y, m) = if ok { (s[..4].parse().unwrap_or(0), s[5..].parse().unwrap_or(0)) } else { (0, 0) };
    if !ok || !(1..=12).contains(&m) {
        return Err("expected YYYY-MM or current".into());
    }
    Ok(MonthArg::Month(y, m))
}

/// A byte size: `512MiB`, `2GiB`, `100MB`, `64KiB` or plain bytes.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| "expected a size like 512MiB or 2GiB".to_string())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!("unknown size unit '{other}' (use B, KiB, MiB, GiB, KB, MB or GB)"));
        }
    };
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(|| "the size must be above zero and fit 64 bits".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_errors() {
        assert_eq!(parse_as_of("2026-11-23"), Ok(fields::parse_timestamp(b"2026-11-23T00:00:00Z").unwrap()));
        assert!(parse_as_of("2026-11-31").is_err());
        assert_eq!(parse_window("7d"), Ok(7 * 86_400 * MICROS_PER_SEC));
        assert_eq!(parse_window("90s"), Ok(90 * MICROS_PER_SEC));
        for w in ["7d", "36h", "90m", "61s"] {
            assert_eq!(format_window(parse_window(w).unwrap()), w);
        }
        assert!(parse_window("999999999d").unwrap_err().contains("longer than"));
        for bad in ["", "d", "7", "7w", "-1d", "0h", "1.5h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_month("2026-02"), Ok(MonthArg::Month(2026, 2)));
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("2026-1").is_err());
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("12XB").is_err());
        assert!(parse_byte_size("0").is_err());
    }
}
