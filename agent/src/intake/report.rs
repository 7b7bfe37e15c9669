//! What an intake writes for people: the return report (返戻) for the institution, the file's
//! JSON summary for maintainers, and the monthly fee summary. Report contents are a pure
//! function of the input and the store (no times, no database ids), so a run interrupted by a
//! crash and restarted writes byte-identical reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use kenko_intake::{Column, Issue, Reason};
use kenko_store::FeeLine;
use serde::Serialize;

use super::decode::FileEncoding;

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub row: u64,
    pub resident_no: Option<u64>,
    pub issues: Vec<Issue>,
}

/// A problem that rejected the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    pub reason: Reason,
    /// The column (header text) concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
}

impl FileProblem {
    pub fn of(reason: Reason) -> FileProblem {
        FileProblem {
            reason,
            column: None,
            offset: None,
            line: None,
            row: None,
        }
    }
}

const RETURN_HEADER: &str = "行番号,宛名番号,項目,理由コード,内容";

/// Writes one CSV cell. Institutions and the city open these files in Excel, which runs a
/// cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula
/// (`=cmd|' /C calc'!A0`, `+HYPERLINK(...)`): such a cell gets a leading `'` (the OWASP
/// CSV-injection rule), so it shows as the text it is. Every cell of every CSV kenko writes
/// goes through here.
fn csv_field(out: &mut String, s: &str) {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s != "-";
    if formula || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn column_name(c: Option<Column>) -> &'static str {
    c.map_or("-", Column::ja)
}

/// The return report's text (before encoding).
pub fn return_report_text(
    rejections: &[Rejection],
    file_problems: &[FileProblem],
    crlf: bool,
) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(64 + rejections.len() * 96);
    out.push_str(RETURN_HEADER);
    out.push_str(nl);
    for p in file_problems {
        if let Some(r) = p.row {
            let _ = write!(out, "{r}");
        }
        out.push_str(",,");
        csv_field(&mut out, p.column.as_deref().unwrap_or("ファイル"));
        out.push(',');
        out.push_str(p.reason.code());
        out.push(',');
        let mut msg = p.reason.ja().to_string();
        if let (Some(offset), Some(line)) = (p.offset, p.line) {
            let _ = write!(msg, "（バイト位置 {offset}、{line}行目）");
        }
        csv_field(&mut out, &msg);
        out.push_str(nl);
    }
    for r in rejections {
        let _ = write!(out, "{},", r.row);
        if let Some(no) = r.resident_no {
            let _ = write!(out, "{no}");
        }
        out.push(',');
        let join = |f: &dyn Fn(&Issue) -> &'static str| {
            r.issues.iter().map(f).collect::<Vec<_>>().join(";")
        };
        csv_field(&mut out, &join(&|i| column_name(i.column)));
        out.push(',');
        out.push_str(&join(&|i| i.reason.code()));
        out.push(',');
        csv_field(&mut out, &join(&|i| i.reason.ja()));
        out.push_str(nl);
    }
    out
}

/// The return report in the input's encoding.
pub fn return_report_bytes(
    rejections: &[Rejection],
    file_problems: &[FileProblem],
    encoding: FileEncoding,
    crlf: bool,
) -> Vec<u8> {
    encoding.encode(&return_report_text(rejections, file_problems, crlf))
}

/// What became of one delivered file; on the wire (summaries, metrics' `outcome` label) as
/// its lower-case name.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// Checked and committed; the accepted rows are in the store.
    Loaded,
    /// Nothing taken in: the whole file goes back to the institution.
    Returned,
    /// A re-delivery of bytes already taken in: skipped.
    Duplicate,
    /// Its commit was done before a crash; only the move was finished.
    Recovered,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Loaded => "loaded",
            Disposition::Returned => "returned",
            Disposition::Duplicate => "duplicate",
            Disposition::Recovered => "recovered",
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The per-file summary (reports/intake/NAME.h.json and `intake run-once --json`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileSummary {
    pub file: String,
    pub sha256: String,
    pub encoding: String,
    pub disposition: Disposition,
    /// Where the input went, relative to the data directory.
    pub destination: String,
    pub rows: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub reasons: BTreeMap<String, u64>,
    /// Rows with no value in any field (blank lines, rows of only commas), skipped: not
    /// counted in `rows`.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub empty_rows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<FileProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_report: Option<String>,
}

/// The fee summary file for a month: UTF-8 with a BOM so spreadsheet software opens it
/// correctly, CRLF line ends, a total line at the end.
pub fn fee_report_bytes(lines: &[FeeLine]) -> Vec<u8> {
    let mut out = String::from("\u{FEFF}請求年月,接種場所,ワクチン,件数,委託料合計\r\n");
    let (mut n, mut total) = (0i64, 0i64);
    for l in lines {
        csv_field(&mut out, &l.claim_month);
        out.push(',');
        csv_field(&mut out, &l.institution);
        out.push(',');
        csv_field(&mut out, &l.vaccine);
        let _ = write!(out, ",{},{}\r\n", l.count, l.total_fee);
        n += l.count;
        total += l.total_fee;
    }
    if let Some(first) = lines.first() {
        let _ = write!(out, "{},合計,,{n},{total}\r\n", first.claim_month);
    }
    out.into_bytes()
}

/// `reports/fees/fees-YYYY-MM.csv`.
pub fn fee_report_path(reports: &Path, month: &str) -> std::path::PathBuf {
    reports.join("fees").join(format!("fees-{month}.csv"))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn return_report_lines_name_row_field_and_reason_but_no_values() {
        let rej = vec![Rejection {
            row: 7,
            resident_no: Some(100000123),
            issues: vec![
                Issue {
                    reason: Reason::NameMismatch,
                    column: Some(Column::Name),
                },
                Issue {
                    reason: Reason::FeeMismatch,
                    column: Some(Column::Fee),
                },
            ],
        }];
        let text = return_report_text(&rej, &[], true);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next(), Some(RETURN_HEADER));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("7,100000123,氏名;委託料,name_mismatch;fee_mismatch,"),
            "{line}"
        );
    }

    #[test]
    fn cells_excel_would_run_as_formulas_are_neutralised_in_every_csv() {
        let evil = [
            "=cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "+HYPERLINK(\"http://x\")",
            "-2+3",
            "\t=1",
            "\r=1",
        ];
        for e in evil {
            let lines = [FeeLine {
                claim_month: "2024-10".into(),
                institution: e.into(),
                vaccine: e.into(),
                count: 1,
                total_fee: 4730,
            }];
            let text = String::from_utf8(fee_report_bytes(&lines)).unwrap();
            let row = text.split("\r\n").nth(1).unwrap();
            let quoted = format!("\"'{}\"", e.replace('"', "\"\""));
            assert_eq!(row.matches(&quoted).count(), 2, "{e:?}: {row}");
            let p = FileProblem {
                column: Some(e.into()),
                ..FileProblem::of(Reason::UnknownColumn)
            };
            let text = return_report_text(&[], &[p], false);
            assert!(text.contains(&quoted), "{e:?}: {text}");
        }
        // Nothing else changes: the "-" of a row without a column, plain text and numbers.
        let mut out = String::new();
        for s in ["-", "氏名", "4730", "a-b"] {
            out.clear();
            csv_field(&mut out, s);
            assert_eq!(out, s);
        }
    }

    #[test]
    fn cp932_report_round_trips() {
        let p = FileProblem {
            reason: Reason::UndecodableBytes,
            column: None,
            offset: Some(120),
            line: Some(3),
            row: Some(3),
        };
        let bytes = return_report_bytes(&[], &[p], FileEncoding::Cp932, true);
        let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!had_errors);
        assert!(text.contains("undecodable_bytes"));
        assert!(text.contains("バイト位置 120、3行目"));
    }
}
