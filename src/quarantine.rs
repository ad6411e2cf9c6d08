//! The bad-line policy: how many bad lines a run may have ([`BadLineBudget`], from
//! `--max-bad-lines` / `--strict`), and the rejects file every bad line goes to
//! (TSV `file line reason raw`, escaped by [`crate::read::format::escape`]: tabs, line
//! ends, backslashes, control and invisible characters, and non-UTF-8 bytes).

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::read::ReadSummary;
use crate::read::format::escape;
use crate::read::input::InputFile;
use crate::sink::atomic::write_staged;

/// How many bad lines a run may have before it fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BadLineBudget {
    /// No limit (the default).
    Unlimited,
    /// At most this many.
    Count(u64),
    /// At most this fraction (0..1) of the lines read.
    Fraction(f64),
}

impl BadLineBudget {
    /// Parses `N`, `P%` or a fraction below 1 such as `0.001`.
    pub fn parse(s: &str) -> Result<BadLineBudget, String> {
        let err = || "expected a count (100), a percentage (0.1%) or a fraction (0.001)".to_string();
        if let Some(pct) = s.strip_suffix('%') {
            let p: f64 = pct.parse().map_err(|_| err())?;
            return if (0.0..=100.0).contains(&p) { Ok(BadLineBudget::Fraction(p / 100.0)) } else { Err(err()) };
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(BadLineBudget::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if (0.0..1.0).contains(&f) => Ok(BadLineBudget::Fraction(f)),
            _ => Err(err()),
        }
    }

    /// The number of bad lines allowed among `lines` lines read.
    pub fn allowed(&self, lines: u64) -> u64 {
        match *self {
            BadLineBudget::Unlimited => u64::MAX,
            BadLineBudget::Count(n) => n,
            BadLineBudget::Fraction(f) => (f * lines as f64).floor() as u64,
        }
    }

    /// The count past which reading may stop early: a fraction's count is known only
    /// once every line is read.
    pub fn stop_after(&self) -> Option<u64> {
        match *self {
            BadLineBudget::Count(n) => Some(n),
            BadLineBudget::Unlimited | BadLineBudget::Fraction(_) => None,
        }
    }

    /// The threshold as given on the command line (`unlimited`, `100`, `0.1%`).
    pub fn spelling(&self) -> String {
        match *self {
            BadLineBudget::Unlimited => "unlimited".into(),
            BadLineBudget::Count(n) => n.to_string(),
            BadLineBudget::Fraction(f) => format!("{}%", f * 100.0),
        }
    }

    fn describe(&self, lines: u64) -> String {
        match *self {
            BadLineBudget::Unlimited => "unlimited".into(),
            BadLineBudget::Count(n) => n.to_string(),
            BadLineBudget::Fraction(_) => format!("{} = {} lines", self.spelling(), self.allowed(lines)),
        }
    }

    /// Fails when the read's bad lines exceed the budget, naming the first bad line.
    /// A read stopped at a count budget of N reports the N+1 bad lines up to the one
    /// that broke it, the same whatever the thread count.
    pub fn check(&self, read: &ReadSummary, inputs: &[InputFile]) -> Result<()> {
        let lines = read.stats.lines;
        let (bad, read_part) = match (read.stopped, self.stop_after()) {
            (true, Some(n)) => {
                let last = read.bad_lines.iter().last().transpose()?;
                let at = last.map_or_else(String::new, |b| {
                    format!(", {}:{}", inputs[b.chunk.file as usize].display_name(), b.line)
                });
                (n + 1, format!("reading stopped at bad line {}{at}", n + 1))
            }
            _ if read.stats.bad <= self.allowed(lines) => return Ok(()),
            _ => (read.stats.bad, format!("of {lines} lines read")),
        };
        let first = read.bad_lines.first()?.map_or_else(String::new, |b| {
            format!("{}:{}: {}", inputs[b.chunk.file as usize].display_name(), b.line, b.reason)
        });
        Err(Error::BadLineBudget { bad, budget: self.describe(lines), read: read_part, first })
    }
}

/// Writes the rejects file atomically, or removes a stale one when there are no bad lines.
pub fn write_rejects(path: &Path, read: &ReadSummary, inputs: &[InputFile]) -> Result<()> {
    if read.bad_lines.is_empty() {
        // Only a regular file is a stale rejects file; a device such as /dev/null stays.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        }
        return Ok(());
    }
    let (staged, _) = write_staged(path, |w| {
        let io = |e| Error::io(path, e);
        w.write_all(b"file\tline\treason\traw\n").map_err(io)?;
        for bad in read.bad_lines.iter() {
            let bad = bad?;
            let file = inputs[bad.chunk.file as usize].display_name();
            // The reason quotes input through `format::quote`, escaped already: written as is.
            // The file's name is escaped already, losslessly (`InputFile::display_name`).
            let line = format!("{file}\t{}\t{}\t{}\n", bad.line, bad.reason, escape(&bad.raw));
            w.write_all(line.as_bytes()).map_err(io)?;
        }
        Ok(())
    })?;
    staged.publish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_forms() {
        assert_eq!(BadLineBudget::parse("10"), Ok(BadLineBudget::Count(10)));
        assert_eq!(BadLineBudget::parse("0.1%"), Ok(BadLineBudget::Fraction(0.001)));
        assert_eq!(BadLineBudget::parse("0.5"), Ok(BadLineBudget::Fraction(0.5)));
        assert!(BadLineBudget::parse("-1").is_err());
        assert!(BadLineBudget::parse("101%").is_err());
        assert!(BadLineBudget::parse("ten").is_err());
        assert_eq!(BadLineBudget::Fraction(0.001).allowed(10_000), 10);
    }

    #[test]
    fn escapes_tabs_controls_invisible_characters_and_invalid_bytes() {
        assert_eq!(escape(b"a\tb\\c\r\xff"), "a\\tb\\\\c\\r\\xff");
        assert_eq!(
            escape("\x1b]0;pwned\x07\0\x7f\u{feff}\u{202e}é".as_bytes()),
            "\\x1b]0;pwned\\x07\\x00\\x7f\\u{feff}\\u{202e}é"
        );
    }
}
