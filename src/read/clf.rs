//! NCSA Common / Combined Log Format lines, as nginx and Apache write them, decoded
//! into the access-log columns (`timestamp client_ip method url status bytes`).
//!
//! `host ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] "request" status bytes [anything]`:
//! `bytes` may be `-` (null), `\"` may appear inside the request, and the request
//! must be `METHOD URL` or `METHOD URL PROTOCOL` separated by single spaces.

use super::fields::{MAX_COLUMNS, MICROS_PER_SEC, Value, in_years, parse_int, parse_timestamp, quote};

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Parses one CLF line into the six access-log values.
pub fn parse_clf<'a>(line: &'a str, out: &mut [Value<'a>; MAX_COLUMNS]) -> Result<(), String> {
    let bad = |what: &str| format!("not a common/combined log line: {what}");
    let (host, rest) = line.split_once(' ').ok_or_else(|| bad("no fields"))?;
    let (_ident, rest) = rest.split_once(' ').ok_or_else(|| bad("no ident"))?;
    let (_user, rest) = rest.split_once(' ').ok_or_else(|| bad("no user"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let rest = rest.strip_prefix('[').ok_or_else(|| bad("no [time]"))?;
    let (time, rest) = rest.split_once("] ").ok_or_else(|| bad("no [time]"))?;
    let timestamp = parse_clf_time(time.as_bytes()).ok_or_else(|| format!("bad timestamp {}", quote(time)))?;
    let rest = rest.strip_prefix('"').ok_or_else(|| bad("no \"request\""))?;
    let end = closing_quote(rest.as_bytes()).ok_or_else(|| bad("unterminated \"request\""))?;
    let request = &rest[..end];
    let rest = rest[end + 1..].strip_prefix(' ').ok_or_else(|| bad("no status"))?;

    let mut parts = request.split(' ');
    let method = parts.next().unwrap_or("");
    let url = parts.next().unwrap_or("");
    let extra = parts.count();
    if method.is_empty() || url.is_empty() || extra > 1 {
        return Err(format!("bad request {}", quote(request)));
    }

    let mut tail = rest.splitn(3, ' ');
    let status_field = tail.next().unwrap_or("");
    let bytes_field = tail.next().ok_or_else(|| bad("no bytes"))?;
    let status = parse_int(status_field.as_bytes()).ok_or_else(|| format!("bad status {}", quote(status_field)))?;
    let bytes = match bytes_field {
        "-" => Value::Null,
        b => Value::Int(parse_int(b.as_bytes()).ok_or_else(|| format!("bad bytes {}", quote(b)))?),
    };
    *out = [
        Value::Timestamp(timestamp),
        Value::Text(host),
        Value::Text(method),
        Value::Text(url),
        Value::Int(status),
        bytes,
        Value::Null,
        Value::Null,
    ];
    Ok(())
}

/// Index of the `"` closing a quoted string whose opening quote was already consumed.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Parses `dd/Mon/yyyy:HH:MM:SS +zzzz` into UTC microseconds.
fn parse_clf_time(s: &[u8]) -> Option<i64> {
    if s.len() != 26 || s[2] != b'/' || s[6] != b'/' || s[11] != b':' || s[20] != b' ' {
        return None;
    }
    let month = MONTHS.iter().position(|m| m[..] == s[3..6])? as i64 + 1;
    let mut iso = *b"0000-00-00 00:00:00";
    iso[..4].copy_from_slice(&s[7..11]);
    iso[5] = b'0' + (month / 10) as u8;
    iso[6] = b'0' + (month % 10) as u8;
    iso[8..10].copy_from_slice(&s[0..2]);
    iso[11..19].copy_from_slice(&s[12..20]);
    // Reuses the ISO parser, which validates the calendar date and time of day.
    let local = parse_timestamp(&iso)?;
    let sign = match s[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone = &s[22..26];
    if !zone.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h = i64::from(zone[0] - b'0') * 10 + i64::from(zone[1] - b'0');
    let m = i64::from(zone[2] - b'0') * 10 + i64::from(zone[3] - b'0');
    if h > 23 || m > 59 {
        return None;
    }
    in_years(local - sign * (h * 3600 + m * 60) * MICROS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_that_leaves_the_years_0000_to_9999_is_bad_as_in_tsv() {
        let line = |t: &str| format!("1.2.3.4 - - [{t}] \"GET /x HTTP/1.1\" 200 5");
        assert!(parse(&line("01/Jan/0000:00:00:00 +0100")).is_err());
        assert!(parse(&line("31/Dec/9999:23:59:59 -0100")).is_err());
        assert!(parse(&line("01/Jan/0000:00:00:00 -0100")).is_ok());
        assert!(parse_timestamp(b"0000-01-01T00:00:00+01:00").is_none());
    }

    fn parse(line: &str) -> Result<Vec<Value<'_>>, String> {
        let mut out = [Value::Null; MAX_COLUMNS];
        parse_clf(line, &mut out)?;
        Ok(out[..6].to_vec())
    }

    #[test]
    fn combined_log_line() {
        let line = r#"203.0.113.9 - frank [20/Nov/2026:14:45:12 +0100] "GET /abc1234?x=1 HTTP/1.1" 200 512 "http://ref/" "Mozilla/5.0 (X11)""#;
        let want = parse_timestamp(b"2026-11-20T13:45:12Z").unwrap();
        assert_eq!(
            parse(line).unwrap(),
            vec![
                Value::Timestamp(want),
                Value::Text("203.0.113.9"),
                Value::Text("GET"),
                Value::Text("/abc1234?x=1"),
                Value::Int(200),
                Value::Int(512)
            ]
        );
    }

    #[test]
    fn common_log_line_with_dash_bytes_and_escaped_quote() {
        let line = r#"::1 - - [01/Dec/2026:00:00:00 -0000] "GET /a\"b" 304 -"#;
        let got = parse(line).unwrap();
        assert_eq!(got[3], Value::Text(r#"/a\"b"#));
        assert_eq!(got[5], Value::Null);
    }

    #[test]
    fn noise_is_bad() {
        for line in [
            "\\x16\\x03\\x01",
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "\x16\x03\x01" 400 0"#,
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "GET /x HTTP/1.1" 200"#,
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "GET  /x" 200 1"#,
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "GET /x HTTP/1.1 extra" 200 1"#,
            r#"1.2.3.4 - - [31/Nov/2026:14:45:12 +0100] "GET /x" 200 1"#,
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "GET /x" 2x0 1"#,
            r#"1.2.3.4 - - [20/Nov/2026:14:45:12 +0100] "GET /x"#,
        ] {
            assert!(parse(line).is_err(), "line {line:?} should be bad");
        }
    }
}
