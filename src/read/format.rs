//! Input formats of the `read` stage: a format names its columns (and so its Arrow
//! schema) and turns one framed line into typed values, or a reason why it is bad.
//!
//! Three kinds exist: plain TSV with typed columns, NCSA Common/Combined Log Format
//! (decoded into the access-log columns), and URL lists (one trimmed URL a line).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::fields::{parse_int, parse_money, parse_timestamp};
// Values and their quoting are shared with the CLF decoder, so they live below both.
pub use super::fields::{MAX_COLUMNS, Value, escape, quote, unescape};

/// The type of an input column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text without TAB (ids, names, urls).
    Text,
    /// A timestamp in one of the spec's forms, stored as UTC microseconds.
    Timestamp,
    /// `[+-]?[0-9]{1,18}`.
    Int,
    /// An integer >= 1 (quantities).
    PositiveInt,
    /// Decimal money with at most 2 fraction digits, stored as cents.
    Money,
}

/// One input column: its name and type.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Column name, also the header word of the first column.
    pub name: &'static str,
    /// Column type.
    pub kind: Kind,
}

/// Which of a format's columns a decoder builds into Arrow arrays (bit `i` is column
/// `i`). The others are still parsed and checked, so whether a line is good never
/// depends on it; they are only not copied into the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Projection(u16);

impl Projection {
    /// Whether column `i` is built.
    pub fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

/// Shorthand for declaring a column in a job file.
pub const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// How lines of an input are split into fields.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// TAB-separated fields, one per column.
    Tsv(&'static [Column]),
    /// NCSA Common or Combined Log Format, decoded into [`ACCESS_LOG`] columns.
    Clf,
    /// One URL a line, surrounding spaces and tabs trimmed.
    UrlList,
}

/// Columns of a sales log (sales-rank's input).
pub const SALES: &[Column] = &[
    col("timestamp", Kind::Timestamp),
    col("product_id", Kind::Text),
    col("category_id", Kind::Text),
    col("quantity", Kind::PositiveInt),
    col("total_price", Kind::Money),
    col("seller_id", Kind::Text),
    col("buyer_id", Kind::Text),
];

/// Columns of a card-transaction log (spending's input).
pub const TRANSACTIONS: &[Column] = &[
    col("user_id", Kind::Text),
    col("timestamp", Kind::Timestamp),
    col("seller", Kind::Text),
    col("amount", Kind::Money),
];

/// The input formats by the names `mrpipe query --as` and SQL jobs' `input:` use.
pub const FORMAT_NAMES: &[&str] = &["sales", "transactions", "access", "clf", "urls"];

impl Format {
    /// The format named `name` (one of [`FORMAT_NAMES`]).
    pub fn by_name(name: &str) -> Option<Format> {
        Some(match name {
            "sales" => Format::Tsv(SALES),
            "transactions" => Format::Tsv(TRANSACTIONS),
            "access" => Format::Tsv(ACCESS_LOG),
            "clf" => Format::Clf,
            "urls" => Format::UrlList,
            _ => return None,
        })
    }

    /// This format's name in [`FORMAT_NAMES`] ([`Format::by_name`] gives it back);
    /// `"tsv"` for columns no name stands for (tests').
    pub fn name(&self) -> &'static str {
        // Columns compare by name: a `const` slice has no one address to compare.
        let same = |other: &Format| {
            std::mem::discriminant(self) == std::mem::discriminant(other)
                && self.columns().iter().map(|c| c.name).eq(other.columns().iter().map(|c| c.name))
        };
        FORMAT_NAMES.iter().copied().find(|name| Format::by_name(name).is_some_and(|f| same(&f))).unwrap_or("tsv")
    }
}

/// Columns of a web-server access log (TSV form, and what CLF is decoded into).
pub const ACCESS_LOG: &[Column] = &[
    col("timestamp", Kind::Timestamp),
    col("client_ip", Kind::Text),
    col("method", Kind::Text),
    col("url", Kind::Text),
    col("status", Kind::Int),
    col("bytes", Kind::Int),
];

const URL_LIST: &[Column] = &[col("url", Kind::Text)];

impl Format {
    /// The columns this format yields.
    pub fn columns(&self) -> &'static [Column] {
        match self {
            Format::Tsv(columns) => columns,
            Format::Clf => ACCESS_LOG,
            Format::UrlList => URL_LIST,
        }
    }

    /// Every column of this format.
    pub fn all_columns(&self) -> Projection {
        Projection((1u16 << self.columns().len()) - 1)
    }

    /// The columns named `names` (in this format's order, whatever the order of
    /// `names`); every column when `None`. Err names a column the format lacks.
    pub fn projection(&self, names: Option<&[&str]>) -> Result<Projection, String> {
        let Some(names) = names else { return Ok(self.all_columns()) };
        let mut bits = 0u16;
        for name in names {
            let i = self.columns().iter().position(|c| c.name == *name).ok_or_else(|| {
                let known: Vec<&str> = self.columns().iter().map(|c| c.name).collect();
                format!("no input column '{name}' (the format has {})", known.join(", "))
            })?;
            bits |= 1 << i;
        }
        Ok(Projection(bits))
    }

    /// The Arrow schema of the batches this format is decoded into.
    pub fn schema(&self) -> SchemaRef {
        self.projected_schema(self.all_columns())
    }

    /// The Arrow schema of batches holding only `projection`'s columns.
    pub fn projected_schema(&self, projection: Projection) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .enumerate()
            .filter(|(i, _)| projection.contains(*i))
            .map(|(_, c)| {
                let (ty, nullable) = match c.kind {
                    Kind::Text => (DataType::Utf8, false),
                    Kind::Timestamp => (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
                    Kind::Int | Kind::PositiveInt => (DataType::Int64, matches!(self, Format::Clf)),
                    Kind::Money => (DataType::Decimal128(18, 2), false),
                };
                Field::new(c.name, ty, nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Whether this line (the first of a file) is a header to skip.
    pub fn is_header(&self, line: &str) -> bool {
        let first_field = line.split('\t').next().unwrap_or("");
        match self {
            Format::Tsv(columns) => first_field == columns[0].name,
            Format::UrlList => line.trim_matches([' ', '\t']) == "url",
            Format::Clf => false,
        }
    }

    /// Whether a framed line (no `\n`, no trailing `\r`) is empty and so skipped.
    pub fn is_empty_line(&self, line: &[u8]) -> bool {
        match self {
            Format::UrlList => line.iter().all(|&b| b == b' ' || b == b'\t'),
            _ => line.is_empty(),
        }
    }

    /// Parses one non-empty line into `out` (one value per column), or says why it is bad.
    pub fn parse_line<'a>(&self, line: &'a str, out: &mut [Value<'a>; MAX_COLUMNS]) -> Result<(), String> {
        match self {
            Format::Tsv(columns) => parse_tsv(columns, line, out),
            Format::UrlList => parse_tsv(URL_LIST, line.trim_matches([' ', '\t']), out),
            Format::Clf => super::clf::parse_clf(line, out),
        }
    }
}

fn parse_tsv<'a>(columns: &[Column], line: &'a str, out: &mut [Value<'a>; MAX_COLUMNS]) -> Result<(), String> {
    // memchr finds the TABs (a byte search over the whole line) several times faster
    // than `str::split(char)`; a TAB is ASCII, so every cut is at a char boundary.
    let mut n = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\t', line.as_bytes()).chain(std::iter::once(line.len())) {
        if n < columns.len() {
            out[n] = parse_field(columns[n], &line[start..end])?;
        }
        n += 1;
        start = end + 1;
    }
    if n != columns.len() {
        return Err(format!("expected {} fields, found {n}", columns.len()));
    }
    Ok(())
}

/// Parses one field as its column's kind; the reason names the column and quotes the value.
pub fn parse_field(column: Column, field: &str) -> Result<Value<'_>, String> {
    let bytes = field.as_bytes();
    let value = match column.kind {
        Kind::Text => Some(Value::Text(field)),
        Kind::Timestamp => parse_timestamp(bytes).map(Value::Timestamp),
        Kind::Int => parse_int(bytes).map(Value::Int),
        Kind::PositiveInt => match parse_int(bytes) {
            Some(q) if q >= 1 => Some(Value::Int(q)),
            Some(_) => {
                return Err(format!("{} must be >= 1, got {}", column.name, quote(field)));
            }
            None => None,
        },
        Kind::Money => parse_money(bytes).map(Value::Money),
    };
    value.ok_or_else(|| format!("bad {} {}", column.name, quote(field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_gives_the_format_back() {
        for name in FORMAT_NAMES {
            assert_eq!(Format::by_name(name).unwrap().name(), *name);
        }
    }

    #[test]
    fn escape_and_unescape_are_inverse() {
        let samples: [&[u8]; 4] = [b"caf\xe9.tsv", b"a\\b\tc\nd", "\u{feff}x\u{202e}".as_bytes(), b"plain \\x41"];
        for bytes in samples {
            assert_eq!(unescape(&escape(bytes)), bytes, "{}", escape(bytes));
        }
        assert_eq!(unescape("a\\q"), b"a\\q", "an escape never written is kept");
    }

    const SALES: &[Column] = &[
        col("timestamp", Kind::Timestamp),
        col("product_id", Kind::Text),
        col("quantity", Kind::PositiveInt),
        col("price", Kind::Money),
    ];

    fn parse(format: Format, line: &str) -> Result<Vec<Value<'_>>, String> {
        let mut out = [Value::Null; MAX_COLUMNS];
        format.parse_line(line, &mut out)?;
        Ok(out[..format.columns().len()].to_vec())
    }

    #[test]
    fn tsv_line_parses_to_typed_values() {
        let got = parse(Format::Tsv(SALES), "2026-11-20T13:45:12Z\tp1\t2\t20.50").unwrap();
        assert_eq!(
            got,
            vec![Value::Timestamp(1_795_182_312_000_000), Value::Text("p1"), Value::Int(2), Value::Money(2050)]
        );
    }

    #[test]
    fn tsv_bad_lines_say_why() {
        let cases = [
            ("2026-11-20T13:45:12Z\tp1\t2", "expected 4 fields, found 3"),
            ("2026-11-20T13:45:12Z\tp1\t2\t1\textra", "expected 4 fields, found 5"),
            ("2026-11-20T13:45:12Z\tp1\t0\t1", "quantity must be >= 1, got '0'"),
            ("2026-11-20T13:45:12Z\tp1\tx\t1", "bad quantity 'x'"),
            ("2026-11-20T13:45:12Z\tp1\t1\t1.234", "bad price '1.234'"),
            ("yesterday\tp1\t1\t1", "bad timestamp 'yesterday'"),
        ];
        for (line, reason) in cases {
            assert_eq!(parse(Format::Tsv(SALES), line), Err(reason.to_string()), "line {line:?}");
        }
    }

    #[test]
    fn url_list_trims_and_rejects_inner_tabs() {
        assert_eq!(parse(Format::UrlList, "  http://a/ \t"), Ok(vec![Value::Text("http://a/")]));
        assert_eq!(parse(Format::UrlList, "http://a/\thttp://b/"), Err("expected 1 fields, found 2".into()));
        assert!(Format::UrlList.is_empty_line(b" \t "));
        assert!(Format::UrlList.is_header("url"));
        assert!(Format::Tsv(SALES).is_header("timestamp\tproduct_id"));
        assert!(!Format::Tsv(SALES).is_header("timestamps\tproduct_id"));
    }
}
