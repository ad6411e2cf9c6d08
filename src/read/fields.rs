//! Field parsers of the `read` stage: timestamps, integers and money, exactly as
//! `spec/jobs.md` defines them. Bytes in, a typed value or `None` (a bad field) out.
//!
//! These run once per field of every input line, so they are hand-written byte
//! loops with no allocation rather than chrono or regex calls.

use std::sync::LazyLock;

/// Microseconds in one second.
pub const MICROS_PER_SEC: i64 = 1_000_000;
/// 9999-12-31T23:59:59Z, the largest epoch-seconds value accepted.
const MAX_EPOCH_SECS: i64 = 253_402_300_799;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, the range of instants.
const MIN_MICROS: i64 = -719_528 * 86_400 * MICROS_PER_SEC;
const MAX_MICROS: i64 = (MAX_EPOCH_SECS + 1) * MICROS_PER_SEC - 1;

/// Parses a timestamp in one of the three accepted forms into UTC microseconds.
///
/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)`, `YYYY-MM-DD HH:MM:SS` (UTC),
/// or 1 to 12 digits of epoch seconds. Fractions beyond microseconds are truncated.
pub fn parse_timestamp(s: &[u8]) -> Option<i64> {
    if !s.is_empty() && s.len() <= 12 && s.iter().all(u8::is_ascii_digit) {
        let secs = digits(s)?;
        return (secs <= MAX_EPOCH_SECS).then_some(secs * MICROS_PER_SEC);
    }
    if s.len() < 19 {
        return None;
    }
    let days = parse_date(&s[..10])?;
    let secs_of_day = parse_hms(&s[11..19])?;
    let mut micros = (days * 86_400 + secs_of_day) * MICROS_PER_SEC;
    match s[10] {
        b' ' => (s.len() == 19).then_some(micros),
        b'T' => {
            let mut rest = &s[19..];
            if let Some(frac) = rest.strip_prefix(b".") {
                let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 || n > 9 {
                    return None;
                }
                // Scale to exactly six digits: pad short fractions, truncate long ones.
                let mut f = 0i64;
                for i in 0..6 {
                    f = f * 10 + frac.get(i).filter(|_| i < n).map_or(0, |b| i64::from(b - b'0'));
                }
                micros += f;
                rest = &frac[n..];
            }
            let offset_secs = match rest {
                b"Z" => 0,
                [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                    let h = two_digits(*h1, *h2)?;
                    let m = two_digits(*m1, *m2)?;
                    if h > 23 || m > 59 {
                        return None;
                    }
                    let off = h * 3600 + m * 60;
                    if *sign == b'+' { off } else { -off }
                }
                _ => return None,
            };
            in_years(micros - offset_secs * MICROS_PER_SEC)
        }
        _ => None,
    }
}

/// The UTC instant if it lies in the years 0000-9999. An offset can carry a local time
/// out of them (`0000-01-01T00:00:00+01:00`, or the same in CLF), where it has no
/// `YYYY-MM` month: such a timestamp is bad in every format, like a too-large epoch.
pub fn in_years(utc: i64) -> Option<i64> {
    (MIN_MICROS..=MAX_MICROS).contains(&utc).then_some(utc)
}

/// Parses `YYYY-MM-DD` (a real calendar date) into days since 1970-01-01.
pub fn parse_date(s: &[u8]) -> Option<i64> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = digits(&s[..4])?;
    let month = two_digits(s[5], s[6])?;
    let day = two_digits(s[8], s[9])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Parses `HH:MM:SS` into seconds of the day.
fn parse_hms(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let h = two_digits(s[0], s[1])?;
    let m = two_digits(s[3], s[4])?;
    let sec = two_digits(s[6], s[7])?;
    (h <= 23 && m <= 59 && sec <= 59).then_some(h * 3600 + m * 60 + sec)
}

/// Parses an integer `[+-]?[0-9]{1,18}`.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, body) = split_sign(s);
    if body.is_empty() || body.len() > 18 {
        return None;
    }
    let v = digits(body)?;
    Some(if negative { -v } else { v })
}

/// Parses money `[+-]?[0-9]{1,16}(\.[0-9]{1,2})?` into integer cents.
pub fn parse_money(s: &[u8]) -> Option<i64> {
    let (negative, body) = split_sign(s);
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(dot) => (&body[..dot], Some(&body[dot + 1..])),
        None => (body, None),
    };
    if int_part.is_empty() || int_part.len() > 16 {
        return None;
    }
    let mut cents = digits(int_part)? * 100;
    match frac_part {
        None => {}
        Some([d]) if d.is_ascii_digit() => cents += i64::from(d - b'0') * 10,
        Some([d1, d2]) => cents += two_digits(*d1, *d2)?,
        Some(_) => return None,
    }
    Some(if negative { -cents } else { cents })
}

/// Formats integer cents as a decimal with two fraction digits (`-3.10`).
pub fn format_cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Formats UTC microseconds as RFC 3339 with a `Z` (fraction only when non-zero).
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(MICROS_PER_SEC);
    let frac = micros.rem_euclid(MICROS_PER_SEC);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let base = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    if frac == 0 { format!("{base}Z") } else { format!("{base}.{frac:06}Z") }
}

/// The UTC calendar month of a timestamp as `(year, month)`.
pub fn year_month(micros: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(micros.div_euclid(MICROS_PER_SEC * 86_400));
    (y, m)
}

/// `0000` to `9999`, four bytes each: a year pushed as a slice of text checked once.
static YEARS: LazyLock<String> = LazyLock::new(|| (0..10_000).map(|y| format!("{y:04}")).collect());

/// `00` to `99`, two bytes each.
static TWO_DIGITS: LazyLock<String> = LazyLock::new(|| (0..100).map(|d| format!("{d:02}")).collect());

/// Appends `YYYY-MM` for a year in 0..=9999 (every timestamp's, see [`in_years`]) and
/// a month in 1..=12, without going through `fmt` or checking UTF-8 (it runs once per
/// input row: `fmt` cost hit-counts 10% of its instructions, and `str::from_utf8` of
/// the seven bytes half of what was left).
pub fn push_year_month(out: &mut String, year: i64, month: i64) {
    let (y, m) = (year.clamp(0, 9999) as usize, month.clamp(0, 99) as usize);
    out.push_str(&YEARS[4 * y..4 * y + 4]);
    out.push('-');
    out.push_str(&TWO_DIGITS[2 * m..2 * m + 2]);
}

fn split_sign(s: &[u8]) -> (bool, &[u8]) {
    match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// Value of an all-digit slice; `None` if any byte is not a digit. Callers bound the length.
fn digits(s: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

fn two_digits(a: u8, b: u8) -> Option<i64> {
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The most columns any format has; values of one line live in a stack array this big.
pub const MAX_COLUMNS: usize = 8;

/// One typed field value of a line; text borrows from the line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// No value (only CLF `bytes` of `-`).
    Null,
    /// Text field.
    Text(&'a str),
    /// UTC microseconds.
    Timestamp(i64),
    /// Integer.
    Int(i64),
    /// Cents.
    Money(i64),
}

/// Quotes a value for a message, cut to a readable length.
pub fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("'{}'", escape(s.as_bytes()))
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("'{}...'", escape(cut.as_bytes()))
    }
}

/// Whether a character is invisible or moves the cursor: C0 and C1 controls, DEL, the
/// byte-order mark, zero-width and bidirectional formatting characters (Unicode `Cf`
/// characters that text tools hide or act on).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{ad}' | '\u{feff}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}')
}

/// Input text made safe for a terminal and for one TSV field, so a log line can neither
/// drive the terminal through a message nor break the rejects file: `\t`, `\r`, `\n`,
/// `\\`, other control bytes and invalid UTF-8 as `\xNN`, invisible characters as
/// `\u{...}`. Everything else is kept as it is.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x80 && invisible(c) => out.push_str(&format!("\\x{:02x}", u32::from(c))),
                c if invisible(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes [`escape`] stood for: its escapes decoded, everything else kept (an
/// escape it never writes is kept as written).
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let tail = &rest[at..];
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (bytes, used): (Vec<u8>, usize) = match tail.as_bytes().get(1) {
            Some(b't') => (vec![b'\t'], 2),
            Some(b'r') => (vec![b'\r'], 2),
            Some(b'n') => (vec![b'\n'], 2),
            Some(b'\\') => (vec![b'\\'], 2),
            Some(b'x') => match tail.get(2..4).and_then(hex) {
                Some(b) => (vec![b as u8], 4),
                None => (vec![b'\\'], 1),
            },
            Some(b'u') => match tail.get(2..).and_then(|t| t.strip_prefix('{')?.split_once('}')) {
                Some((digits, _)) => match hex(digits).and_then(char::from_u32) {
                    Some(c) => (c.to_string().into_bytes(), 4 + digits.len()),
                    None => (vec![b'\\'], 1),
                },
                None => (vec![b'\\'], 1),
            },
            _ => (vec![b'\\'], 1),
        };
        out.extend_from_slice(&bytes);
        rest = &tail[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<String> {
        parse_timestamp(s.as_bytes()).map(format_timestamp)
    }

    #[test]
    fn accepts_every_timestamp_form() {
        let cases = [
            ("2026-11-20T13:45:12Z", "2026-11-20T13:45:12Z"),
            ("2026-11-20T13:45:12+01:00", "2026-11-20T12:45:12Z"),
            ("2026-11-20T00:15:00-02:30", "2026-11-20T02:45:00Z"),
            ("2026-11-20T13:45:12.5Z", "2026-11-20T13:45:12.500000Z"),
            ("2026-11-20T13:45:12.123456789Z", "2026-11-20T13:45:12.123456Z"),
            ("2026-11-20 13:45:12", "2026-11-20T13:45:12Z"),
            ("0", "1970-01-01T00:00:00Z"),
            ("1795614312", "2026-11-25T13:45:12Z"),
            ("253402300799", "9999-12-31T23:59:59Z"),
            ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
            ("2000-02-29 00:00:00", "2000-02-29T00:00:00Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("0000-01-01T01:00:00+01:00", "0000-01-01T00:00:00Z"),
            ("9999-12-31T22:59:59.999999-01:00", "9999-12-31T23:59:59.999999Z"),
        ];
        for (input, want) in cases {
            assert_eq!(ts(input).as_deref(), Some(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_every_bad_timestamp_form() {
        let bad = [
            "",
            "2026-11-20",
            "2026-11-20T13:45:12",
            "2026-11-20t13:45:12Z",
            "2026-11-20T13:45:12z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T13:60:00Z",
            "2026-11-20T13:45:60Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29 00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-20T13:45:12.Z",
            "2026-11-20T13:45:12.1234567890Z",
            "2026-11-20T13:45:12+0100",
            "2026-11-20T13:45:12+24:00",
            "2026-11-20 13:45:12Z",
            "2026-11-20 13:45:12.5",
            "253402300800",
            "0000-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "1234567890123",
            "-5",
            "+5",
            "12.5",
            " 2026-11-20T13:45:12Z",
            "2026-1-20T13:45:12Z",
        ];
        for input in bad {
            assert_eq!(ts(input), None, "input {input:?} should be bad");
        }
    }

    #[test]
    fn money_is_exact_cents() {
        let cases = [
            ("20", 2000),
            ("20.5", 2050),
            ("20.00", 2000),
            ("-3.10", -310),
            ("+0.01", 1),
            ("9999999999999999.99", 999_999_999_999_999_999),
        ];
        for (input, want) in cases {
            assert_eq!(parse_money(input.as_bytes()), Some(want), "input {input:?}");
        }
        for bad in ["", "20.", ".5", "1.234", "1,00", "--1", "+", "12345678901234567", "1e3", " 1", "0x10"] {
            assert_eq!(parse_money(bad.as_bytes()), None, "input {bad:?} should be bad");
        }
    }

    #[test]
    fn integers_have_at_most_18_digits() {
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b"-7"), Some(-7));
        assert_eq!(parse_int(b"+7"), Some(7));
        assert_eq!(parse_int(b"999999999999999999"), Some(999_999_999_999_999_999));
        for bad in ["", "-", "1.0", "1000000000000000000", "1 ", "x"] {
            assert_eq!(parse_int(bad.as_bytes()), None, "input {bad:?} should be bad");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_000, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_cents(-310), "-3.10");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(year_month(parse_timestamp(b"2026-12-31T23:59:59-01:00").unwrap()), (2027, 1));
        for (y, m, want) in [(2026, 11, "2026-11"), (0, 1, "0000-01"), (9999, 12, "9999-12"), (802, 7, "0802-07")] {
            let mut out = String::from("x");
            push_year_month(&mut out, y, m);
            assert_eq!(out, format!("x{want}"));
        }
    }
}
