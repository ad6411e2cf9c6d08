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

/// A length of whole seconds, as microseconds, in humantime's units (`7d`, `24h`,
/// `1h30m`, `1.5h`, `90s`, `2w`; `M` and `y` are 30.44 and 365.25 days). Errors: no unit, zero,
/// a fraction of a second, longer than 64-bit microseconds hold (292,000 years).
pub fn parse_window(s: &str) -> Result<i64, String> {
    let length =
        humantime::parse_duration(s).map_err(|e| format!("expected a length like 7d, 24h, 1h30m or 90s ({e})"))?;
    if length.is_zero() {
        return Err("a length must be longer than zero".into());
    }
    if length.subsec_nanos() != 0 {
        return Err(format!("'{s}' is not a whole number of seconds"));
    }
    i64::try_from(length.as_micros()).map_err(|_| format!("'{s}' is longer than 292,000 years"))
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
    crate::table::Period { key: "month", label: label.clone(), column: Some("month"), value: label }
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

/// A byte size as bytes, in bytesize's notation: `512MiB`, `1.5GiB`, `100MB`, `64k`,
/// or plain bytes; `K`/`M`/`G` are powers of 1000, `Ki`/`Mi`/`Gi` of 1024 (case aside).
/// Errors: zero, an unknown unit, more than 64 bits hold.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize =
        s.trim().parse().map_err(|e| format!("expected a size like 512MiB or 1.5GiB: {e}"))?;
    match size.as_u64() {
        0 => Err("the size must be above zero".into()),
        // bytesize saturates where the value overflows.
        u64::MAX => Err(format!("'{s}' does not fit 64 bits")),
        n => Ok(n),
    }
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
        assert_eq!(parse_window("1h30m"), Ok(5_400 * MICROS_PER_SEC));
        assert_eq!(parse_window("2w"), Ok(14 * 86_400 * MICROS_PER_SEC));
        assert_eq!(parse_window("1.5h"), Ok(5_400 * MICROS_PER_SEC));
        for bad in ["", "d", "7", "7x", "-1d", "0h", "1500ms", "0.5s"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_month("2026-02"), Ok(MonthArg::Month(2026, 2)));
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("2026-1").is_err());
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("12XB").is_err());
        assert!(parse_byte_size("0").is_err());
        assert_eq!(parse_byte_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_byte_size("512m"), Ok(512_000_000));
        assert_eq!(parse_byte_size("64KiB"), Ok(64 << 10));
        assert!(parse_byte_size("20EiB").is_err(), "past 64 bits");
    }
}
