//! Side files of the `read` stage (seller map, crowd overrides, incomes, budget
//! overrides): small TSV files read whole, with the same line framing and header
//! rule as inputs. A malformed row is skipped with a warning naming `file:line`;
//! it is not a bad input line.

use std::path::Path;

use crate::error::{Error, Result};

/// One well-formed row of a side file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideRow {
    /// 1-based line number, for warnings.
    pub line: u64,
    /// The row's fields.
    pub fields: Vec<String>,
}

/// Reads the rows of `path` that have `field_count` fields; `header` is the first
/// column's name. Skipped rows add a warning to `warnings`.
pub fn read_side_file(
    path: &Path,
    header: &str,
    field_count: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<SideRow>> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(parse_side(&data, &path.display().to_string(), header, field_count, warnings))
}

/// [`read_side_file`] over bytes in memory; `name` is used in warnings.
pub fn parse_side(
    data: &[u8],
    name: &str,
    header: &str,
    field_count: usize,
    warnings: &mut Vec<String>,
) -> Vec<SideRow> {
    let mut rows = Vec::new();
    let data = super::decode::strip_bom(data);
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            warnings.push(format!("{name}:{line_no}: invalid UTF-8; row skipped"));
            continue;
        };
        let fields: Vec<String> = text.split('\t').map(str::to_string).collect();
        if line_no == 1 && fields[0] == header {
            continue;
        }
        if fields.len() != field_count {
            warnings
                .push(format!("{name}:{line_no}: expected {field_count} fields, found {}; row skipped", fields.len()));
            continue;
        }
        rows.push(SideRow { line: line_no, fields });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_bom_is_not_part_of_the_header_or_first_row() {
        let mut warnings = Vec::new();
        let rows = parse_side("\u{feff}seller\tcategory\nExxon\tgas\n".as_bytes(), "m", "seller", 2, &mut warnings);
        assert_eq!(rows, vec![SideRow { line: 2, fields: vec!["Exxon".into(), "gas".into()] }]);
        let rows = parse_side("\u{feff}Exxon\tgas\n".as_bytes(), "m", "seller", 2, &mut warnings);
        assert_eq!(rows[0].fields[0], "Exxon");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn header_bad_rows_and_crlf() {
        let mut warnings = Vec::new();
        let rows =
            parse_side(b"seller\tcategory\r\nExxon\tgas\r\n\nbroken\nA\tb\tc\n", "s.tsv", "seller", 2, &mut warnings);
        assert_eq!(rows, vec![SideRow { line: 2, fields: vec!["Exxon".into(), "gas".into()] }]);
        assert_eq!(
            warnings,
            vec![
                "s.tsv:4: expected 2 fields, found 1; row skipped",
                "s.tsv:5: expected 2 fields, found 3; row skipped"
            ]
        );
    }
}
