//! Parser for SQL job files: a job written as one `.sql` file, with a header of `-- key: value` comment lines
//! (`job`, `about`, `input`, `param`, `output`) followed by one SQL statement per `output`, separated by `;`.
//! The rules come from `shared/spec/sql-jobs.md`. This module checks the file's form (names, types, defaults,
//! statement count, `$name` placeholders) and reports the first problem with its 1-based line; running the SQL,
//! binding the parameters and naming the file in messages are the caller's business.

use std::fmt;

/// A parse error: 1-based line in the file, and a message (no file name; the caller adds it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlFileError {
    /// The 1-based line of the offending header line or statement.
    pub line: usize,
    /// What is wrong, in plain English, quoting the bad value.
    pub message: String,
}

impl fmt::Display for SqlFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SqlFileError {}

/// The type of a job parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// A 64-bit signed integer.
    Bigint,
    /// A string.
    Text,
    /// A flag without a value: present is true, absent false.
    Boolean,
    /// A UTC instant, given as a `WHEN` (`now`, a date, a timestamp).
    Timestamp,
}

impl ParamType {
    /// The SQL spelling of the type: `BIGINT`, `TEXT`, `BOOLEAN` or `TIMESTAMP`.
    pub fn sql_name(self) -> &'static str {
        match self {
            ParamType::Bigint => "BIGINT",
            ParamType::Text => "TEXT",
            ParamType::Boolean => "BOOLEAN",
            ParamType::Timestamp => "TIMESTAMP",
        }
    }

    /// The type named `word`, case-insensitively.
    fn from_sql(word: &str) -> Option<ParamType> {
        [ParamType::Bigint, ParamType::Text, ParamType::Boolean, ParamType::Timestamp]
            .into_iter()
            .find(|ty| ty.sql_name().eq_ignore_ascii_case(word))
    }
}

/// What a parameter is when its option is not given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamDefault {
    /// The option must be given.
    Required,
    /// The parameter is SQL NULL (`= NULL`).
    Null,
    /// The default's text as written, unquoted if it was a SQL string literal; `false` for a BOOLEAN flag.
    Value(String),
}

/// One `-- param: NAME TYPE [= DEFAULT]` header line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDecl {
    /// The name used as `$NAME` in the SQL (`[a-z][a-z0-9_]*`).
    pub name: String,
    /// The parameter's type.
    pub ty: ParamType,
    /// The value when the option is not given.
    pub default: ParamDefault,
    /// The 1-based line of the declaration.
    pub line: usize,
}

impl ParamDecl {
    /// The name of the job option that sets this parameter (without `--`): the name with `_` turned into `-`.
    pub fn option(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// One key of an output's total order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The column sorted on.
    pub column: String,
    /// True for `DESC`, false for `ASC` (the default).
    pub descending: bool,
}

/// One `-- output: TABLE ORDER BY KEY [ASC|DESC], ...` header line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputDecl {
    /// The table the statement's result is published as.
    pub table: String,
    /// The total order of the published rows (at least one key).
    pub order: Vec<SortKey>,
    /// The 1-based line of the declaration.
    pub line: usize,
}

/// One SQL statement of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The statement without its `;`, trimmed of surrounding whitespace and comments.
    pub text: String,
    /// The 1-based line of the statement's first character that is neither blank nor in a comment.
    pub line: usize,
}

/// A parsed job file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlJobFile {
    /// The job's name (`-- job:`).
    pub name: String,
    /// The one-line description (`-- about:`), empty if absent.
    pub about: String,
    /// The table the inputs are registered as (`-- input: TABLE FORMAT`).
    pub input_table: String,
    /// The reader format of the inputs (`-- input: TABLE FORMAT`).
    pub input_format: String,
    /// The parameters, in header order.
    pub params: Vec<ParamDecl>,
    /// The outputs, in header order.
    pub outputs: Vec<OutputDecl>,
    /// The statements, exactly one per output, in the same order.
    pub statements: Vec<Statement>,
}

const KEYS: &str = "job, about, input, param, output";
const HEADER_END: &str = "the header ends at the first line that is not a '-- key: value' comment";

/// Parses a job file. `file_stem` (the file name without `.sql`) must equal `job:` when given.
/// `formats`: the accepted input formats; `reserved`: option names no param may take (e.g. "output", "threads").
pub fn parse(
    text: &str,
    file_stem: Option<&str>,
    formats: &[&str],
    reserved: &[&str],
) -> Result<SqlJobFile, SqlFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();

    let mut job: Option<(String, usize)> = None;
    let mut about: Option<(String, usize)> = None;
    let mut input: Option<((String, String), usize)> = None;
    let mut params: Vec<ParamDecl> = Vec::new();
    let mut outputs: Vec<OutputDecl> = Vec::new();
    let mut header_len = 0;
    for (index, raw) in lines.iter().enumerate() {
        let Some((key, value)) = header_entry(raw) else { break };
        let line = index + 1;
        header_len = line;
        match key {
            "job" => {
                check_once(&job, key, line)?;
                job = Some((parse_job(value, file_stem, line)?, line));
            }
            "about" => {
                check_once(&about, key, line)?;
                about = Some((value.to_string(), line));
            }
            "input" => {
                check_once(&input, key, line)?;
                input = Some((parse_input(value, formats, line)?, line));
            }
            "param" => {
                let param = parse_param(value, line, reserved)?;
                if let Some(first) = params.iter().find(|p| p.name == param.name) {
                    return Err(err(
                        line,
                        format!("duplicate param '{}' (first declared on line {})", param.name, first.line),
                    ));
                }
                params.push(param);
            }
            "output" => {
                let output = parse_output(value, line)?;
                if let Some(first) = outputs.iter().find(|o| o.table.eq_ignore_ascii_case(&output.table)) {
                    return Err(err(
                        line,
                        format!("duplicate output table '{}' (first declared on line {})", output.table, first.line),
                    ));
                }
                outputs.push(output);
            }
            _ => return Err(err(line, format!("unknown header key '{key}' (expected {KEYS})"))),
        }
    }

    let end_line = (header_len + 1).min(lines.len()).max(1);
    let Some((name, _)) = job else {
        return Err(err(end_line, format!("the header has no '-- job: NAME' line ({HEADER_END})")));
    };
    let Some(((input_table, input_format), input_line)) = input else {
        return Err(err(end_line, format!("the header has no '-- input: TABLE FORMAT' line ({HEADER_END})")));
    };
    if outputs.is_empty() {
        return Err(err(
            end_line,
            format!("the header has no '-- output: TABLE ORDER BY KEY [ASC|DESC], ...' line ({HEADER_END})"),
        ));
    }
    if let Some(output) = outputs.iter().find(|o| o.table.eq_ignore_ascii_case(&input_table)) {
        return Err(err(
            output.line,
            format!("output table '{}' has the name of the input table (line {input_line})", output.table),
        ));
    }

    let body = lines[header_len..].join("\n");
    let (pieces, error) = scan(&body, header_len + 1);
    if let Some(error) = error {
        return Err(error);
    }
    if pieces.len() != outputs.len() {
        let line = match pieces.get(outputs.len()) {
            Some(extra) => extra.line,
            None => outputs.get(pieces.len()).map_or(end_line, |o| o.line),
        };
        let message = format!(
            "{} statement{} for {} output{} (the body needs one statement per '-- output:' line, separated by ';')",
            pieces.len(),
            plural(pieces.len()),
            outputs.len(),
            plural(outputs.len()),
        );
        return Err(err(line, message));
    }
    for (placeholder, line) in pieces.iter().flat_map(|p| p.placeholders.iter()) {
        if !params.iter().any(|p| &p.name == placeholder) {
            return Err(err(
                *line,
                format!("unknown parameter ${placeholder} (declare it with -- param: {placeholder} TYPE)"),
            ));
        }
    }

    let statements = pieces.into_iter().map(|p| Statement { text: p.text, line: p.line }).collect();
    Ok(SqlJobFile {
        name,
        about: about.map(|(a, _)| a).unwrap_or_default(),
        input_table,
        input_format,
        params,
        outputs,
        statements,
    })
}

/// The names of the `$name` placeholders of a statement, in order of appearance, duplicates kept.
pub fn placeholders(stmt: &str) -> Vec<String> {
    scan(stmt, 1).0.into_iter().flat_map(|p| p.placeholders).map(|(name, _)| name).collect()
}

fn err(line: usize, message: impl Into<String>) -> SqlFileError {
    SqlFileError { line, message: message.into() }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The key and trimmed value of a `-- key: value` line, or `None` if the line is not one (so it ends the header).
fn header_entry(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    let key_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if key_len == 0 {
        return None;
    }
    let value = rest[key_len..].trim_start().strip_prefix(':')?;
    Some((&rest[..key_len], value.trim()))
}

fn check_once<T>(slot: &Option<(T, usize)>, key: &str, line: usize) -> Result<(), SqlFileError> {
    match slot {
        Some((_, first)) => Err(err(line, format!("duplicate header key '{key}' (already given on line {first})"))),
        None => Ok(()),
    }
}

/// `[a-z][a-z0-9-]*`
fn is_job_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[a-z][a-z0-9_]*`
fn is_param_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_identifier(s: &str) -> bool {
    !s.is_empty() && ident_len(s.as_bytes()) == s.len()
}

/// The length of the `[A-Za-z_][A-Za-z0-9_]*` prefix of `bytes` (0 if there is none).
fn ident_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
            bytes.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count()
        }
        _ => 0,
    }
}

/// The first whitespace-separated word of `s` and the rest after it.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_job(value: &str, file_stem: Option<&str>, line: usize) -> Result<String, SqlFileError> {
    if !is_job_name(value) {
        return Err(err(
            line,
            format!("invalid job name '{value}' (expected lowercase letters, digits and '-', starting with a letter)"),
        ));
    }
    match file_stem {
        Some(stem) if stem != value => {
            Err(err(line, format!("job '{value}' must be named {value}.sql (this file is {stem}.sql)")))
        }
        _ => Ok(value.to_string()),
    }
}

fn parse_input(value: &str, formats: &[&str], line: usize) -> Result<(String, String), SqlFileError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let [table, format] = words[..] else {
        return Err(err(line, format!("input '{value}' must be 'TABLE FORMAT'")));
    };
    if !is_identifier(table) {
        return Err(err(
            line,
            format!("invalid input table name '{table}' (expected letters, digits and '_', not starting with a digit)"),
        ));
    }
    if !formats.contains(&format) {
        return Err(err(line, format!("unknown input format '{format}' (expected {})", formats.join(", "))));
    }
    Ok((table.to_string(), format.to_string()))
}

fn parse_param(value: &str, line: usize, reserved: &[&str]) -> Result<ParamDecl, SqlFileError> {
    let (decl, default) = match value.split_once('=') {
        Some((decl, default)) => (decl, Some(default.trim())),
        None => (value, None),
    };
    let words: Vec<&str> = decl.split_whitespace().collect();
    let [name, ty] = words[..] else {
        return Err(err(line, format!("param '{value}' must be 'NAME TYPE [= DEFAULT]'")));
    };
    if !is_param_name(name) {
        return Err(err(
            line,
            format!("invalid param name '{name}' (expected lowercase letters, digits and '_', starting with a letter)"),
        ));
    }
    let Some(ty) = ParamType::from_sql(ty) else {
        return Err(err(
            line,
            format!("unknown type '{ty}' for param '{name}' (expected BIGINT, TEXT, BOOLEAN, TIMESTAMP)"),
        ));
    };
    let option = name.replace('_', "-");
    if reserved.contains(&option.as_str()) {
        return Err(err(line, format!("param '{name}' would take the option --{option}, which every job has")));
    }
    let default = match default {
        None if ty == ParamType::Boolean => ParamDefault::Value("false".to_string()),
        None => ParamDefault::Required,
        Some("") => return Err(err(line, format!("param '{name}' has '=' but no default value"))),
        Some(d) if ty == ParamType::Boolean => {
            return Err(err(
                line,
                format!("BOOLEAN param '{name}' is a flag (false when absent) and takes no default, but has '= {d}'"),
            ));
        }
        Some(d) if d.eq_ignore_ascii_case("null") => ParamDefault::Null,
        Some(d) => ParamDefault::Value(parse_default(d, name, ty, line)?),
    };
    Ok(ParamDecl { name: name.to_string(), ty, default, line })
}

/// Checks a non-NULL default of a BIGINT, TEXT or TIMESTAMP param and returns its value.
fn parse_default(d: &str, name: &str, ty: ParamType, line: usize) -> Result<String, SqlFileError> {
    match ty {
        ParamType::Bigint => {
            let digits = d.strip_prefix(['+', '-']).unwrap_or(d);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || d.parse::<i64>().is_err() {
                return Err(err(
                    line,
                    format!("default '{d}' of param '{name}' is not a BIGINT (a whole number that fits in 64 bits)"),
                ));
            }
            Ok(d.to_string())
        }
        _ if d.starts_with('\'') => string_literal(d).ok_or_else(|| {
            err(
                line,
                format!("default {d} of param '{name}' is not one SQL string literal ('...', with '' for a quote)"),
            )
        }),
        ParamType::Text if d.contains(char::is_whitespace) || d.contains('"') => Err(err(
            line,
            format!("default '{d}' of TEXT param '{name}' must be one word or a SQL string literal like 'two words'"),
        )),
        _ => Ok(d.to_string()),
    }
}

/// The value of `s` if it is exactly one SQL string literal `'...'` (with `''` for a quote).
fn string_literal(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('\'')?.chars();
    let mut value = String::new();
    loop {
        match chars.next()? {
            '\'' if chars.as_str().starts_with('\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return chars.as_str().is_empty().then_some(value),
            c => value.push(c),
        }
    }
}

fn parse_output(value: &str, line: usize) -> Result<OutputDecl, SqlFileError> {
    let shape = || err(line, format!("output '{value}' must be 'TABLE ORDER BY KEY [ASC|DESC], ...'"));
    let (table, rest) = split_word(value);
    let (order_word, rest) = split_word(rest);
    let (by_word, rest) = split_word(rest);
    if table.is_empty() || !order_word.eq_ignore_ascii_case("order") || !by_word.eq_ignore_ascii_case("by") {
        return Err(shape());
    }
    if !is_identifier(table) {
        return Err(err(
            line,
            format!(
                "invalid output table name '{table}' (expected letters, digits and '_', not starting with a digit)"
            ),
        ));
    }
    let mut order = Vec::new();
    for key in rest.split(',') {
        let words: Vec<&str> = key.split_whitespace().collect();
        let (column, descending) = match words[..] {
            [column] => (column, false),
            [column, dir] if dir.eq_ignore_ascii_case("asc") => (column, false),
            [column, dir] if dir.eq_ignore_ascii_case("desc") => (column, true),
            [] => {
                return Err(err(
                    line,
                    format!("output '{table}' has an empty key in ORDER BY (expected KEY [ASC|DESC], ...)"),
                ));
            }
            _ => {
                return Err(err(
                    line,
                    format!("bad key '{}' in ORDER BY of output '{table}' (expected KEY [ASC|DESC])", key.trim()),
                ));
            }
        };
        if !is_identifier(column) {
            return Err(err(
                line,
                format!("invalid column name '{column}' in ORDER BY of output '{table}' (expected an identifier)"),
            ));
        }
        order.push(SortKey { column: column.to_string(), descending });
    }
    Ok(OutputDecl { table: table.to_string(), order, line })
}

/// A non-empty statement found by `scan`.
struct Piece {
    /// Its text, from its first to its last character that is neither blank nor in a comment.
    text: String,
    /// The line of its first such character.
    line: usize,
    /// Its placeholders with their lines.
    placeholders: Vec<(String, usize)>,
}

/// The statement being scanned.
#[derive(Default)]
struct Current {
    /// Byte offset and line of the first significant character.
    start: Option<(usize, usize)>,
    /// Byte offset just past the last significant character.
    end: usize,
    /// Placeholders with their lines.
    placeholders: Vec<(String, usize)>,
}

impl Current {
    fn mark(&mut self, at: usize, line: usize) {
        self.start.get_or_insert((at, line));
    }

    fn flush(&mut self, sql: &str, pieces: &mut Vec<Piece>) {
        let current = std::mem::take(self);
        if let Some((start, line)) = current.start {
            pieces.push(Piece { text: sql[start..current.end].to_string(), line, placeholders: current.placeholders });
        }
    }
}

/// Splits `sql` (whose first line is `first_line`) on `;` outside strings, quoted identifiers and comments,
/// dropping empty statements. An unterminated string, quoted identifier or block comment stops the scan and is
/// returned as the error, with the statements found so far.
fn scan(sql: &str, first_line: usize) -> (Vec<Piece>, Option<SqlFileError>) {
    let b = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut cur = Current::default();
    let mut line = first_line;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b';' => {
                cur.flush(sql, &mut pieces);
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest, as in DataFusion's generic SQL dialect.
                let start_line = line;
                let mut depth = 0usize;
                loop {
                    match (b.get(i), b.get(i + 1)) {
                        (None, _) => {
                            let error = err(start_line, "unterminated block comment: '/*' without '*/'");
                            cur.flush(sql, &mut pieces);
                            return (pieces, Some(error));
                        }
                        (Some(b'/'), Some(b'*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some(b'*'), Some(b'/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(b'\n'), _) => {
                            line += 1;
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
            }
            quote @ (b'\'' | b'"') => {
                let start_line = line;
                cur.mark(i, line);
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            let what = if quote == b'\'' {
                                "unterminated string literal: ' without its closing '"
                            } else {
                                "unterminated quoted identifier: \" without its closing \""
                            };
                            cur.end = i;
                            cur.flush(sql, &mut pieces);
                            return (pieces, Some(err(start_line, what)));
                        }
                        Some(&c) if c == quote => {
                            if b.get(i + 1) == Some(&quote) {
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                cur.end = i;
            }
            b'$' => {
                cur.mark(i, line);
                // `a$b` is an identifier, not a placeholder; `$1` and `$$` are not named placeholders.
                let inside_word =
                    i > 0 && (b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b'$' | 128..));
                let len = if inside_word { 0 } else { ident_len(&b[i + 1..]) };
                if len > 0 {
                    cur.placeholders.push((sql[i + 1..i + 1 + len].to_string(), line));
                }
                i += 1 + len;
                cur.end = i;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                cur.mark(i, line);
                i += 1;
                cur.end = i;
            }
        }
    }
    cur.flush(sql, &mut pieces);
    (pieces, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: &[&str] = &["sales", "transactions", "access", "clf", "urls"];
    const RESERVED: &[&str] = &["output", "threads", "dry-run", "max-bad-lines"];

    /// The example of `shared/spec/sql-jobs.md`, verbatim.
    const SPEC_EXAMPLE: &str = "\
-- job: top-urls
-- about: The most requested URLs of each month
-- input: access clf
-- param: top BIGINT = 10
-- param: strip_query BOOLEAN
-- output: top_urls ORDER BY month, hits DESC, url
WITH hits AS (
  SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month,
         CASE WHEN $strip_query THEN split_part(url, '?', 1) ELSE url END AS url,
         COUNT(*) AS hits
  FROM access GROUP BY 1, 2)
SELECT month, url, hits FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY month ORDER BY hits DESC, url) AS r FROM hits)
WHERE r <= $top
ORDER BY month, hits DESC, url;
";

    const EXAMPLE_STATEMENT: &str = "\
WITH hits AS (
  SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month,
         CASE WHEN $strip_query THEN split_part(url, '?', 1) ELSE url END AS url,
         COUNT(*) AS hits
  FROM access GROUP BY 1, 2)
SELECT month, url, hits FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY month ORDER BY hits DESC, url) AS r FROM hits)
WHERE r <= $top
ORDER BY month, hits DESC, url";

    fn p(text: &str) -> Result<SqlJobFile, SqlFileError> {
        parse(text, None, FORMATS, RESERVED)
    }

    /// The error of parsing `text`, as `(line, message)`.
    fn e(text: &str) -> (usize, String) {
        match p(text) {
            Ok(job) => panic!("expected an error, got {job:?}"),
            Err(error) => (error.line, error.message),
        }
    }

    const HEAD: &str = "-- job: j\n-- input: access clf\n-- output: t ORDER BY a\n";

    fn key(column: &str, descending: bool) -> SortKey {
        SortKey { column: column.to_string(), descending }
    }

    fn example_job() -> SqlJobFile {
        SqlJobFile {
            name: "top-urls".to_string(),
            about: "The most requested URLs of each month".to_string(),
            input_table: "access".to_string(),
            input_format: "clf".to_string(),
            params: vec![
                ParamDecl {
                    name: "top".to_string(),
                    ty: ParamType::Bigint,
                    default: ParamDefault::Value("10".to_string()),
                    line: 4,
                },
                ParamDecl {
                    name: "strip_query".to_string(),
                    ty: ParamType::Boolean,
                    default: ParamDefault::Value("false".to_string()),
                    line: 5,
                },
            ],
            outputs: vec![OutputDecl {
                table: "top_urls".to_string(),
                order: vec![key("month", false), key("hits", true), key("url", false)],
                line: 6,
            }],
            statements: vec![Statement { text: EXAMPLE_STATEMENT.to_string(), line: 7 }],
        }
    }

    #[test]
    fn spec_example() {
        assert_eq!(parse(SPEC_EXAMPLE, Some("top-urls"), FORMATS, RESERVED), Ok(example_job()));
        let job = example_job();
        assert_eq!(job.params[1].option(), "strip-query");
        assert_eq!(job.params[0].option(), "top");
        assert_eq!(placeholders(&job.statements[0].text), ["strip_query", "top"]);
    }

    #[test]
    fn crlf_and_bom() {
        let crlf = SPEC_EXAMPLE.replace('\n', "\r\n");
        assert_eq!(p(&crlf), Ok(example_job()));
        assert_eq!(p(&format!("\u{feff}{SPEC_EXAMPLE}")), Ok(example_job()));
        assert_eq!(p(&format!("\u{feff}{crlf}")), Ok(example_job()));
        // Only a BOM at the very start is ignored.
        assert_eq!(e(&format!("\n\u{feff}{SPEC_EXAMPLE}")).0, 1);
        // Errors keep their line numbers with CRLF.
        assert_eq!(e("-- job: j\r\n-- input: access clf\r\n-- jbo: x\r\n").0, 3);
    }

    #[test]
    fn no_trailing_newline_and_no_about() {
        let job = p("-- job: j\n-- input: access clf\n-- output: t ORDER BY a asc\nSELECT 1").unwrap();
        assert_eq!(job.about, "");
        assert_eq!(job.outputs[0].order, vec![key("a", false)]);
        assert_eq!(job.statements, vec![Statement { text: "SELECT 1".to_string(), line: 4 }]);
    }

    #[test]
    fn header_spacing_and_end() {
        let text =
            "--job:j\n  --   input   :   access   clf  \n--output:t order by a DESC ,b\n-- a normal comment\nSELECT 1;";
        let job = p(text).unwrap();
        assert_eq!(job.name, "j");
        assert_eq!(job.input_table, "access");
        assert_eq!(job.outputs[0].order, vec![key("a", true), key("b", false)]);
        assert_eq!(job.statements, vec![Statement { text: "SELECT 1".to_string(), line: 5 }]);
        // A blank line ends the header; a `-- key: value` line after it is just a comment in the body.
        let text = "-- job: j\n-- input: access clf\n-- output: t ORDER BY a\n\n-- note: x\nSELECT 1;";
        assert_eq!(p(text).unwrap().statements, vec![Statement { text: "SELECT 1".to_string(), line: 6 }]);
        // An uppercase word before ':' is not a key, so it ends the header.
        let text = "-- job: j\n-- input: access clf\n-- output: t ORDER BY a\n-- TODO: x\nSELECT 1;";
        assert_eq!(p(text).unwrap().statements[0].line, 5);
    }

    #[test]
    fn display_and_error_trait() {
        let error = err(3, "bad thing");
        assert_eq!(error.to_string(), "line 3: bad thing");
        let boxed: Box<dyn std::error::Error> = Box::new(error);
        assert_eq!(boxed.to_string(), "line 3: bad thing");
    }

    #[test]
    fn param_type_names() {
        assert_eq!(ParamType::Bigint.sql_name(), "BIGINT");
        assert_eq!(ParamType::Text.sql_name(), "TEXT");
        assert_eq!(ParamType::Boolean.sql_name(), "BOOLEAN");
        assert_eq!(ParamType::Timestamp.sql_name(), "TIMESTAMP");
        assert_eq!(ParamType::from_sql("timeStamp"), Some(ParamType::Timestamp));
        assert_eq!(ParamType::from_sql("INT"), None);
    }

    fn param(decl: &str) -> ParamDecl {
        let text = format!("{HEAD}-- param: {decl}\nSELECT 1");
        match p(&text) {
            Ok(job) => job.params[0].clone(),
            Err(error) => panic!("{decl}: {error}"),
        }
    }

    fn default(decl: &str) -> ParamDefault {
        param(decl).default
    }

    fn value(s: &str) -> ParamDefault {
        ParamDefault::Value(s.to_string())
    }

    #[test]
    fn defaults() {
        assert_eq!(
            param("n BIGINT"),
            ParamDecl { name: "n".to_string(), ty: ParamType::Bigint, default: ParamDefault::Required, line: 4 }
        );
        assert_eq!(default("n bigint = 10"), value("10"));
        assert_eq!(default("n BIGINT=-3"), value("-3"));
        assert_eq!(default("n BIGINT = +5"), value("+5"));
        assert_eq!(default("n BIGINT = 9223372036854775807"), value("9223372036854775807"));
        assert_eq!(default("n BIGINT = -9223372036854775808"), value("-9223372036854775808"));
        assert_eq!(default("n BIGINT = NULL"), ParamDefault::Null);
        assert_eq!(default("s TEXT"), ParamDefault::Required);
        assert_eq!(default("s TEXT = null"), ParamDefault::Null);
        assert_eq!(default("s TEXT = 'NULL'"), value("NULL"));
        assert_eq!(default("s TEXT = hello"), value("hello"));
        assert_eq!(default("s TEXT = 'it''s a = b'"), value("it's a = b"));
        assert_eq!(default("s TEXT = ''"), value(""));
        assert_eq!(default("s TEXT = ''''"), value("'"));
        assert_eq!(default("f boolean"), value("false"));
        assert_eq!(default("w TIMESTAMP"), ParamDefault::Required);
        assert_eq!(default("w TIMESTAMP = NuLL"), ParamDefault::Null);
        assert_eq!(default("w TIMESTAMP = now"), value("now"));
        assert_eq!(default("w TIMESTAMP = 2024-01-02 03:04:05"), value("2024-01-02 03:04:05"));
        assert_eq!(default("w TIMESTAMP = '2024-01-02 03:04:05'"), value("2024-01-02 03:04:05"));
        assert_eq!(param("w timestamp").ty, ParamType::Timestamp);
        assert_eq!(param("s Text").ty, ParamType::Text);
        // Params may share a name with the input or an output table.
        assert_eq!(param("access TEXT").name, "access");
        assert_eq!(param("t TEXT").name, "t");
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            e("-- job: j\n-- jbo: x\n"),
            (2, "unknown header key 'jbo' (expected job, about, input, param, output)".to_string())
        );
        assert_eq!(
            e(&format!("{HEAD}-- job: k\nSELECT 1")),
            (4, "duplicate header key 'job' (already given on line 1)".to_string())
        );
        assert_eq!(
            e(&format!("-- about: a\n{HEAD}-- about: b\nSELECT 1")),
            (5, "duplicate header key 'about' (already given on line 1)".to_string())
        );
        assert_eq!(
            e(&format!("{HEAD}-- input: access clf\nSELECT 1")),
            (4, "duplicate header key 'input' (already given on line 2)".to_string())
        );
    }

    #[test]
    fn missing_keys() {
        let end = "the header ends at the first line that is not a '-- key: value' comment";
        assert_eq!(e(""), (1, format!("the header has no '-- job: NAME' line ({end})")));
        assert_eq!(
            e("-- input: access clf\n-- output: t ORDER BY a\n\nSELECT 1"),
            (3, format!("the header has no '-- job: NAME' line ({end})"))
        );
        assert_eq!(
            e("-- job: j\n-- output: t ORDER BY a\nSELECT 1"),
            (3, format!("the header has no '-- input: TABLE FORMAT' line ({end})"))
        );
        assert_eq!(
            e("-- job: j\n-- input: access clf"),
            (2, format!("the header has no '-- output: TABLE ORDER BY KEY [ASC|DESC], ...' line ({end})"))
        );
        // An output after a blank line is not in the header.
        assert_eq!(e("-- job: j\n-- input: access clf\n\n-- output: t ORDER BY a\nSELECT 1").0, 3);
    }

    #[test]
    fn job_errors() {
        assert_eq!(
            e("-- about: x\n-- job: Top\n"),
            (
                2,
                "invalid job name 'Top' (expected lowercase letters, digits and '-', starting with a letter)"
                    .to_string()
            )
        );
        assert_eq!(e("-- job: 1x\n").0, 1);
        assert_eq!(e("-- job: a_b\n").0, 1);
        assert_eq!(
            e("-- job:\n").1,
            "invalid job name '' (expected lowercase letters, digits and '-', starting with a letter)"
        );
        let error = parse(SPEC_EXAMPLE, Some("top"), FORMATS, RESERVED).unwrap_err();
        assert_eq!(error, err(1, "job 'top-urls' must be named top-urls.sql (this file is top.sql)"));
    }

    #[test]
    fn input_errors() {
        assert_eq!(e("-- job: j\n-- input: access\n"), (2, "input 'access' must be 'TABLE FORMAT'".to_string()));
        assert_eq!(e("-- job: j\n-- input: a b c\n"), (2, "input 'a b c' must be 'TABLE FORMAT'".to_string()));
        assert_eq!(
            e("-- job: j\n-- input: 9a clf\n"),
            (
                2,
                "invalid input table name '9a' (expected letters, digits and '_', not starting with a digit)"
                    .to_string()
            )
        );
        assert_eq!(
            e("-- job: j\n-- input: access CLF\n"),
            (2, "unknown input format 'CLF' (expected sales, transactions, access, clf, urls)".to_string())
        );
        let error = parse("-- input: t json\n", None, &["csv", "json2"], &[]).unwrap_err();
        assert_eq!(error, err(1, "unknown input format 'json' (expected csv, json2)"));
    }

    fn param_error(decl: &str) -> (usize, String) {
        e(&format!("{HEAD}-- param: {decl}\nSELECT 1"))
    }

    #[test]
    fn param_errors() {
        assert_eq!(param_error("top"), (4, "param 'top' must be 'NAME TYPE [= DEFAULT]'".to_string()));
        assert_eq!(
            param_error("top BIGINT 5"),
            (4, "param 'top BIGINT 5' must be 'NAME TYPE [= DEFAULT]'".to_string())
        );
        assert_eq!(
            param_error("Top BIGINT"),
            (
                4,
                "invalid param name 'Top' (expected lowercase letters, digits and '_', starting with a letter)"
                    .to_string()
            )
        );
        assert_eq!(
            param_error("a-b BIGINT").1,
            "invalid param name 'a-b' (expected lowercase letters, digits and '_', starting with a letter)"
        );
        assert_eq!(
            param_error("top INT = 5"),
            (4, "unknown type 'INT' for param 'top' (expected BIGINT, TEXT, BOOLEAN, TIMESTAMP)".to_string())
        );
        assert_eq!(
            param_error("flag BOOLEAN = true"),
            (
                4,
                "BOOLEAN param 'flag' is a flag (false when absent) and takes no default, but has '= true'".to_string()
            )
        );
        assert_eq!(param_error("flag BOOLEAN = NULL").0, 4);
        assert_eq!(param_error("top BIGINT ="), (4, "param 'top' has '=' but no default value".to_string()));
        let not_bigint =
            |d: &str| format!("default '{d}' of param 'top' is not a BIGINT (a whole number that fits in 64 bits)");
        assert_eq!(param_error("top BIGINT = ten"), (4, not_bigint("ten")));
        assert_eq!(param_error("top BIGINT = 1.5"), (4, not_bigint("1.5")));
        assert_eq!(param_error("top BIGINT = -"), (4, not_bigint("-")));
        assert_eq!(param_error("top BIGINT = '10'"), (4, not_bigint("'10'")));
        assert_eq!(param_error("top BIGINT = 9223372036854775808"), (4, not_bigint("9223372036854775808")));
        assert_eq!(
            param_error("s TEXT = two words"),
            (
                4,
                "default 'two words' of TEXT param 's' must be one word or a SQL string literal like 'two words'"
                    .to_string()
            )
        );
        assert_eq!(
            param_error("s TEXT = 'open"),
            (4, "default 'open of param 's' is not one SQL string literal ('...', with '' for a quote)".to_string())
        );
        assert_eq!(param_error("s TEXT = 'a' 'b'").0, 4);
        assert_eq!(param_error("s TEXT = 'it's'").0, 4);
        assert_eq!(param_error("w TIMESTAMP = '2024").0, 4);
        assert_eq!(
            param_error("threads BIGINT = 2"),
            (4, "param 'threads' would take the option --threads, which every job has".to_string())
        );
        assert_eq!(
            param_error("dry_run BOOLEAN"),
            (4, "param 'dry_run' would take the option --dry-run, which every job has".to_string())
        );
        assert_eq!(
            e(&format!("{HEAD}-- param: top BIGINT\n-- param: x TEXT\n-- param: top TEXT\nSELECT $top")),
            (6, "duplicate param 'top' (first declared on line 4)".to_string())
        );
    }

    fn output_error(decl: &str) -> (usize, String) {
        e(&format!("-- job: j\n-- input: access clf\n-- output: {decl}\nSELECT 1"))
    }

    #[test]
    fn output_errors() {
        let shape = |d: &str| format!("output '{d}' must be 'TABLE ORDER BY KEY [ASC|DESC], ...'");
        assert_eq!(output_error("t"), (3, shape("t")));
        assert_eq!(output_error("t ORDER a"), (3, shape("t ORDER a")));
        assert_eq!(output_error("t SORT BY a"), (3, shape("t SORT BY a")));
        assert_eq!(output_error("t a ORDER BY a"), (3, shape("t a ORDER BY a")));
        assert_eq!(
            output_error("t ORDER BY"),
            (3, "output 't' has an empty key in ORDER BY (expected KEY [ASC|DESC], ...)".to_string())
        );
        assert_eq!(output_error("t ORDER BY a,").0, 3);
        assert_eq!(
            output_error("t ORDER BY a DOWN"),
            (3, "bad key 'a DOWN' in ORDER BY of output 't' (expected KEY [ASC|DESC])".to_string())
        );
        assert_eq!(
            output_error("t ORDER BY a, 1"),
            (3, "invalid column name '1' in ORDER BY of output 't' (expected an identifier)".to_string())
        );
        assert_eq!(
            output_error("top-urls ORDER BY a"),
            (
                3,
                "invalid output table name 'top-urls' (expected letters, digits and '_', not starting with a digit)"
                    .to_string()
            )
        );
        assert_eq!(
            e("-- job: j\n-- output: t ORDER BY a\n-- output: T ORDER BY b\n-- input: access clf\nSELECT 1;SELECT 2"),
            (3, "duplicate output table 'T' (first declared on line 2)".to_string())
        );
        assert_eq!(
            e(
                "-- job: j\n-- output: t ORDER BY a\n-- output: access ORDER BY b\n-- input: access clf\nSELECT 1;SELECT 2"
            ),
            (3, "output table 'access' has the name of the input table (line 4)".to_string())
        );
    }

    #[test]
    fn statement_count_errors() {
        assert_eq!(
            e(&format!("{HEAD}SELECT 1;\n\n  SELECT 2;\nSELECT 3")),
            (
                6,
                "3 statements for 1 output (the body needs one statement per '-- output:' line, separated by ';')"
                    .to_string()
            )
        );
        let two = "-- job: j\n-- input: access clf\n-- output: t ORDER BY a\n-- output: u ORDER BY a\n";
        assert_eq!(
            e(&format!("{two}SELECT 1;")),
            (
                4,
                "1 statement for 2 outputs (the body needs one statement per '-- output:' line, separated by ';')"
                    .to_string()
            )
        );
        assert_eq!(
            e(HEAD),
            (
                3,
                "0 statements for 1 output (the body needs one statement per '-- output:' line, separated by ';')"
                    .to_string()
            )
        );
        assert_eq!(e(&format!("{two}-- only comments ; here\n/* ; */ ;;")).0, 3);
    }

    #[test]
    fn unterminated_errors() {
        assert_eq!(
            e(&format!("{HEAD}SELECT 1\n;\nSELECT 'abc\n\n")),
            (6, "unterminated string literal: ' without its closing '".to_string())
        );
        assert_eq!(
            e(&format!("{HEAD}SELECT \"abc\n")),
            (4, "unterminated quoted identifier: \" without its closing \"".to_string())
        );
        assert_eq!(
            e(&format!("{HEAD}SELECT 1\n/* a\n/* nested */ still open\n")),
            (5, "unterminated block comment: '/*' without '*/'".to_string())
        );
        // Reported before the statement count.
        assert_eq!(e(&format!("{HEAD}SELECT 1; SELECT 2; SELECT 'x")).0, 4);
    }

    #[test]
    fn unknown_placeholder() {
        let text =
            format!("{HEAD}-- param: top BIGINT\nSELECT $top,\n  '$nope', \"$nope\", -- $nope\n  /* $nope */ $nope");
        assert_eq!(e(&text), (7, "unknown parameter $nope (declare it with -- param: nope TYPE)".to_string()));
        // Placeholders are case-sensitive.
        assert_eq!(e(&format!("{HEAD}-- param: top BIGINT\nSELECT $Top")).0, 5);
        // Unused params are fine.
        assert_eq!(p(&format!("{HEAD}-- param: top BIGINT\nSELECT 1")).unwrap().params.len(), 1);
    }

    #[test]
    fn semicolons_in_strings_and_comments() {
        let body = "SELECT ';', 'it''s; ok', \"a;b\" -- x; y\n  /* ; /* ; */ ; */ FROM t;\n-- trailing; comment\n";
        let job = p(&format!("{HEAD}{body}")).unwrap();
        let text = "SELECT ';', 'it''s; ok', \"a;b\" -- x; y\n  /* ; /* ; */ ; */ FROM t";
        assert_eq!(job.statements, vec![Statement { text: text.to_string(), line: 4 }]);
    }

    #[test]
    fn multiple_statements() {
        let text = "\
-- job: two
-- input: access clf
-- param: n BIGINT = 3
-- output: a ORDER BY x
-- output: b ORDER BY y DESC
-- first statement
  SELECT x FROM access LIMIT $n ;

;  /* empty ones are dropped */ ;
/* lead */ SELECT y
FROM a -- trailing comment
/* and another */
;
-- the end
";
        let job = p(text).unwrap();
        assert_eq!(
            job.statements,
            vec![
                Statement { text: "SELECT x FROM access LIMIT $n".to_string(), line: 7 },
                Statement { text: "SELECT y\nFROM a".to_string(), line: 10 },
            ]
        );
        assert_eq!(job.outputs.iter().map(|o| o.table.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(job.outputs[1].order, vec![key("y", true)]);
        assert_eq!(job.outputs[1].line, 5);
    }

    #[test]
    fn placeholder_scanning() {
        assert_eq!(placeholders("SELECT $a, $b_2 + $a, $_c"), ["a", "b_2", "a", "_c"]);
        assert_eq!(placeholders("SELECT $top::BIGINT, ($x)"), ["top", "x"]);
        assert_eq!(placeholders("SELECT '$a', 'x''$b', \"$c\", \"q\"\"$d\" -- $e\n/* $f /* $g */ $h */ $i"), ["i"]);
        assert_eq!(placeholders("SELECT a$b, $1, $$, $ x, $é"), Vec::<String>::new());
        assert_eq!(placeholders("SELECT $a;$b"), ["a", "b"]);
        assert_eq!(placeholders("SELECT $a, 'open $b"), ["a"]);
        assert_eq!(placeholders(""), Vec::<String>::new());
    }

    #[test]
    fn placeholder_lines() {
        let (pieces, error) = scan("\n-- c\nSELECT 'a\nb' ,\n $x;\n/* \n */ $y", 10);
        assert_eq!(error, None);
        let found: Vec<(String, usize, usize)> =
            pieces.iter().flat_map(|p| p.placeholders.iter().map(|(n, l)| (n.clone(), *l, p.line))).collect();
        assert_eq!(found, [("x".to_string(), 14, 12), ("y".to_string(), 16, 16)]);
    }
}
