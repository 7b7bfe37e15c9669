//! The columns of the intake file and the header that maps them to positions.

use crate::Reason;

/// Longest header text quoted back in a problem, so a stray data row used as a header does
/// not flood the report.
const MAX_HEADER_TEXT: usize = 40;

fn strip_bom(cell: &str) -> &str {
    cell.trim_start_matches('\u{feff}')
}

/// The cell as the institution wrote it (trimmed, shortened) for an unknown-column problem.
fn header_text(cell: &str) -> String {
    strip_bom(cell)
        .trim()
        .chars()
        .take(MAX_HEADER_TEXT)
        .collect()
}

/// An unknown header cell as reports may show it: its position and shape, never its text. A
/// headerless file's first row is a resident's data (My Number, name, birth date, address),
/// and a short kanji word cannot be told from a name.
fn unknown_cell(position: usize, cell: &str) -> String {
    let text = header_text(cell);
    let n = text.chars().count();
    if n == 0 {
        return format!("column {position} (empty)");
    }
    let mut classes: Vec<&str> = Vec::new();
    for c in text.chars() {
        let class = match c {
            '0'..='9' | '０'..='９' => "digits",
            'a'..='z' | 'A'..='Z' | 'ａ'..='ｚ' | 'Ａ'..='Ｚ' => "latin",
            '\u{3040}'..='\u{30ff}' | '\u{ff66}'..='\u{ff9f}' => "kana",
            '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}' => "kanji",
            c if c.is_whitespace() => "space",
            _ => "other",
        };
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    format!(
        "column {position} ({n} character{}: {})",
        if n == 1 { "" } else { "s" },
        classes.join(", ")
    )
}

/// Whether a header cell looks like a resident's value rather than a column name: a number
/// of 4 digits or more (a 宛名番号, a My Number, a fee), a date (digits with `/`, `-`, `.` or
/// 年月日, or an era letter), or a long run of kanji and kana (a name, an address). No
/// contract column name is any of these.
pub fn looks_like_a_value(cell: &str) -> bool {
    // The cell may be a resident's value: the copy is zeroized.
    let mut text = zeroize::Zeroizing::new(String::with_capacity(cell.len()));
    crate::normalize::compact_into(strip_bom(cell), &mut text);
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits >= 4 && text.chars().all(|c| c.is_ascii_digit() || c == '-') {
        return true;
    }
    let era = text.starts_with(['R', 'H', 'S', 'T', 'M', '令', '平', '昭', '大', '明']);
    if digits >= 2
        && (digits >= 4 || era)
        && text.chars().skip(usize::from(era)).all(|c| {
            c.is_ascii_digit()
                || matches!(
                    c,
                    '/' | '-' | '.' | '年' | '月' | '日' | '和' | '成' | '正' | '治'
                )
        })
    {
        return true;
    }
    let letters = text
        .chars()
        .filter(|c| matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}'))
        .count();
    letters >= 8
}

/// One column of the intake file. Identity columns first, then the 16 fields of 別添2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    ResidentNo,
    MyNumber,
    Name,
    Sex,
    BirthDate,
    Address,
    VaccinatedOn,
    Institution,
    Age,
    ClaimMonth,
    ExamCategory,
    LotNo,
    Vaccine,
    MovedIn,
    PrescreenDoctor,
    VaccinatingDoctor,
    Payment,
    Fee,
    Dose,
    Remarks1,
    Remarks2,
    Remarks3,
}

impl Column {
    pub const COUNT: usize = 22;
    /// All columns in the canonical order (the order the generator writes).
    pub const ALL: [Column; Column::COUNT] = [
        Column::ResidentNo,
        Column::MyNumber,
        Column::Name,
        Column::Sex,
        Column::BirthDate,
        Column::Address,
        Column::VaccinatedOn,
        Column::Institution,
        Column::Age,
        Column::ClaimMonth,
        Column::ExamCategory,
        Column::LotNo,
        Column::Vaccine,
        Column::MovedIn,
        Column::PrescreenDoctor,
        Column::VaccinatingDoctor,
        Column::Payment,
        Column::Fee,
        Column::Dose,
        Column::Remarks1,
        Column::Remarks2,
        Column::Remarks3,
    ];

    /// The canonical Japanese header: 宛名番号, 個人番号, 氏名, 性別, 生年月日, 住所, 接種日,
    /// 接種場所, 接種時年齢, 請求年月, 診察区分, LOT-NO, ワクチン, 転入前接種, 予診医師名,
    /// 接種医師名, 公費自費区分, 委託料, 接種量, 備考1, 備考2, 備考3.
    pub fn ja(self) -> &'static str {
        match self {
            Column::ResidentNo => "宛名番号",
            Column::MyNumber => "個人番号",
            Column::Name => "氏名",
            Column::Sex => "性別",
            Column::BirthDate => "生年月日",
            Column::Address => "住所",
            Column::VaccinatedOn => "接種日",
            Column::Institution => "接種場所",
            Column::Age => "接種時年齢",
            Column::ClaimMonth => "請求年月",
            Column::ExamCategory => "診察区分",
            Column::LotNo => "LOT-NO",
            Column::Vaccine => "ワクチン",
            Column::MovedIn => "転入前接種",
            Column::PrescreenDoctor => "予診医師名",
            Column::VaccinatingDoctor => "接種医師名",
            Column::Payment => "公費自費区分",
            Column::Fee => "委託料",
            Column::Dose => "接種量",
            Column::Remarks1 => "備考1",
            Column::Remarks2 => "備考2",
            Column::Remarks3 => "備考3",
        }
    }

    /// A short English name for maintainers, e.g. `vaccinated_on`.
    pub fn en(self) -> &'static str {
        match self {
            Column::ResidentNo => "resident_no",
            Column::MyNumber => "mynumber",
            Column::Name => "name",
            Column::Sex => "sex",
            Column::BirthDate => "birth_date",
            Column::Address => "address",
            Column::VaccinatedOn => "vaccinated_on",
            Column::Institution => "institution",
            Column::Age => "age",
            Column::ClaimMonth => "claim_month",
            Column::ExamCategory => "exam_category",
            Column::LotNo => "lot_no",
            Column::Vaccine => "vaccine",
            Column::MovedIn => "moved_in",
            Column::PrescreenDoctor => "prescreen_doctor",
            Column::VaccinatingDoctor => "vaccinating_doctor",
            Column::Payment => "payment",
            Column::Fee => "fee",
            Column::Dose => "dose",
            Column::Remarks1 => "remarks1",
            Column::Remarks2 => "remarks2",
            Column::Remarks3 => "remarks3",
        }
    }

    /// Whether the header must contain this column (個人番号 and 備考1–3 may be absent).
    pub fn is_required_column(self) -> bool {
        !matches!(
            self,
            Column::MyNumber | Column::Remarks1 | Column::Remarks2 | Column::Remarks3
        )
    }

    /// Recognises a header cell after NFKC normalisation and removal of all white space.
    pub fn from_header(cell: &str) -> Option<Column> {
        let mut key = String::with_capacity(cell.len());
        // A UTF-8 BOM survives decoding in the first cell; it is neither white space nor
        // changed by NFKC, so it is dropped explicitly.
        crate::normalize::compact_into(strip_bom(cell), &mut key);
        if let Some(c) = Column::ALL.iter().copied().find(|c| c.ja() == key) {
            return Some(c);
        }
        // Lot number spellings seen in the wild; CP932 and JIS conversions yield different dashes.
        let lot = key.replace(['\u{2010}', '\u{2011}', '\u{2212}'], "-");
        if ["LOT-NO", "LOTNO", "LOT_NO"]
            .iter()
            .any(|k| lot.eq_ignore_ascii_case(k))
            || key == "ロット番号"
        {
            return Some(Column::LotNo);
        }
        None
    }
}

/// A problem with the header row (file level). `column` is a column's canonical name, or for
/// an unknown cell its position and shape ([`unknown_cell`]): never a cell's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub reason: Reason,
    pub column: String,
}

/// Where each column sits in the file's rows.
#[derive(Debug, Clone)]
pub struct Header {
    index: [Option<usize>; Column::COUNT],
    width: usize,
}

impl Header {
    /// Maps header cells to columns. Problems (missing, unknown or duplicate columns) are all
    /// reported at once, in header order then `Column::ALL` order for missing ones.
    pub fn resolve<'a>(
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<Header, Vec<HeaderProblem>> {
        let mut index = [None; Column::COUNT];
        let mut problems = Vec::new();
        let mut width = 0;
        let mut first_row_is_data = false;
        for (i, cell) in cells.into_iter().enumerate() {
            width = i + 1;
            first_row_is_data |= looks_like_a_value(cell);
            match Column::from_header(cell) {
                None => problems.push(HeaderProblem {
                    reason: Reason::UnknownColumn,
                    column: unknown_cell(i + 1, cell),
                }),
                Some(c) if index[c as usize].is_some() => problems.push(HeaderProblem {
                    // The canonical name, since the two cells may be spelled differently.
                    reason: Reason::DuplicateColumn,
                    column: c.ja().to_owned(),
                }),
                Some(c) => index[c as usize] = Some(i),
            }
        }
        // Not one cell is a column name, and one looks like a value: the file starts with
        // a data row. One problem says so, instead of a list of unknown and missing columns.
        if index.iter().all(Option::is_none) && first_row_is_data {
            return Err(vec![HeaderProblem {
                reason: Reason::NoHeaderRow,
                column: String::new(),
            }]);
        }
        for c in Column::ALL {
            if c.is_required_column() && index[c as usize].is_none() {
                problems.push(HeaderProblem {
                    reason: Reason::MissingColumn,
                    column: c.ja().to_owned(),
                });
            }
        }
        if problems.is_empty() {
            Ok(Header { index, width })
        } else {
            Err(problems)
        }
    }

    /// A header with every column in `Column::ALL` order.
    pub fn canonical() -> Header {
        let mut index = [None; Column::COUNT];
        for (i, slot) in index.iter_mut().enumerate() {
            *slot = Some(i);
        }
        Header {
            index,
            width: Column::COUNT,
        }
    }

    /// Number of fields a row must have.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Position of a column in the row, if the file has it.
    pub fn position(&self, column: Column) -> Option<usize> {
        self.index[column as usize]
    }

    /// The raw value of `column` in `fields` ("" when the file has no such column).
    pub fn get<'r>(&self, column: Column, fields: &[&'r str]) -> &'r str {
        match self.index[column as usize] {
            Some(i) => fields.get(i).copied().unwrap_or(""),
            None => "",
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_name_is_recognised() {
        for c in Column::ALL {
            assert_eq!(Column::from_header(c.ja()), Some(c), "{c:?}");
            assert_eq!(Column::ALL[c as usize], c);
        }
        let mut en: Vec<_> = Column::ALL.iter().map(|c| c.en()).collect();
        en.sort_unstable();
        en.dedup();
        assert_eq!(en.len(), Column::COUNT);
    }

    #[test]
    fn header_cells_are_normalised() {
        assert_eq!(Column::from_header("ＬＯＴ－ＮＯ"), Some(Column::LotNo));
        assert_eq!(Column::from_header("LOT - NO"), Some(Column::LotNo));
        assert_eq!(Column::from_header("lot_no"), Some(Column::LotNo));
        assert_eq!(Column::from_header("LotNo"), Some(Column::LotNo));
        assert_eq!(Column::from_header("ロット番号"), Some(Column::LotNo));
        assert_eq!(Column::from_header("備考１"), Some(Column::Remarks1));
        assert_eq!(
            Column::from_header(" 宛名\u{3000}番号 "),
            Some(Column::ResidentNo)
        );
        assert_eq!(
            Column::from_header("\u{feff}宛名番号"),
            Some(Column::ResidentNo)
        );
        assert_eq!(Column::from_header("ﾜｸﾁﾝ"), Some(Column::Vaccine));
        assert_eq!(Column::from_header("電話番号"), None);
        assert_eq!(Column::from_header(""), None);
    }

    #[test]
    fn canonical_header_resolves() {
        let h = Header::resolve(Column::ALL.iter().map(|c| c.ja())).unwrap();
        assert_eq!(h.width(), Column::COUNT);
        for c in Column::ALL {
            assert_eq!(h.position(c), Header::canonical().position(c));
        }
    }

    #[test]
    fn optional_columns_may_be_absent_and_order_is_free() {
        let mut cells: Vec<&str> = Column::ALL
            .iter()
            .filter(|c| c.is_required_column())
            .map(|c| c.ja())
            .collect();
        cells.reverse();
        let h = Header::resolve(cells.iter().copied()).unwrap();
        assert_eq!(h.width(), cells.len());
        assert_eq!(h.position(Column::MyNumber), None);
        assert_eq!(h.position(Column::ResidentNo), Some(cells.len() - 1));
        let fields: Vec<&str> = (0..cells.len()).map(|_| "x").collect();
        assert_eq!(h.get(Column::Remarks1, &fields), "");
        assert_eq!(h.get(Column::ResidentNo, &fields), "x");
    }

    #[test]
    fn all_header_problems_are_reported() {
        let long = "あ".repeat(60);
        let mut cells: Vec<&str> = Column::ALL.iter().map(|c| c.ja()).collect();
        cells.retain(|c| *c != "氏名" && *c != "住所");
        cells.push(" 電話番号 ");
        cells.push("ＬＯＴ－ＮＯ");
        cells.push(&long);
        cells.push("");
        let problems = Header::resolve(cells).unwrap_err();
        let got: Vec<(Reason, String)> =
            problems.into_iter().map(|p| (p.reason, p.column)).collect();
        assert_eq!(
            got,
            vec![
                (
                    Reason::UnknownColumn,
                    "column 21 (4 characters: kanji)".to_owned()
                ),
                (Reason::DuplicateColumn, "LOT-NO".to_owned()),
                (
                    Reason::UnknownColumn,
                    "column 23 (40 characters: kana)".to_owned()
                ),
                (Reason::UnknownColumn, "column 24 (empty)".to_owned()),
                (Reason::MissingColumn, "氏名".to_owned()),
                (Reason::MissingColumn, "住所".to_owned()),
            ]
        );
    }

    #[test]
    fn bom_in_the_first_cell_is_ignored() {
        let mut cells: Vec<String> = Column::ALL.iter().map(|c| c.ja().to_owned()).collect();
        cells[0].insert(0, '\u{feff}');
        let h = Header::resolve(cells.iter().map(String::as_str)).unwrap();
        assert_eq!(h.position(Column::ResidentNo), Some(0));
    }

    #[test]
    fn empty_header_misses_every_required_column() {
        let problems = Header::resolve(std::iter::empty()).unwrap_err();
        assert!(problems.iter().all(|p| p.reason == Reason::MissingColumn));
        assert_eq!(problems.len(), Column::COUNT - 4);
    }

    /// A data row where the header belongs: no value of it is echoed.
    #[test]
    fn a_headerless_files_first_row_is_reported_by_shape_only() {
        let row = [
            "100000003",
            "123456789018",
            "田村　大介",
            "1",
            "20240510",
            "埼玉県越谷市七左町２丁目２０番２４号",
        ];
        // The first row is data: one problem says so, with nothing of the row in it.
        let problems = Header::resolve(row).unwrap_err();
        assert_eq!(
            problems,
            vec![HeaderProblem {
                reason: Reason::NoHeaderRow,
                column: String::new()
            }]
        );
        // A header with one renamed column keeps the column-by-column report, by shape.
        let mut cells: Vec<&str> = Column::ALL.iter().map(|c| c.ja()).collect();
        cells[2] = "田村　大介";
        let problems = Header::resolve(cells).unwrap_err();
        assert_eq!(problems[0].reason, Reason::UnknownColumn);
        assert_eq!(problems[0].column, "column 3 (5 characters: kanji, space)");
        // Unknown cells that could be values are still never echoed.
        let problems = Header::resolve(["宛名番号", "123456789018", "備考"]).unwrap_err();
        assert!(problems.iter().all(|p| !p.column.contains("123456789018")));
        assert!(problems
            .iter()
            .any(|p| p.column == "column 2 (12 characters: digits)"));
    }

    #[test]
    fn values_are_told_from_column_names() {
        for v in [
            "100000003",
            "123456789018",
            "1234 5678 9018",
            "20240510",
            "2024/05/10",
            "2024-5-1",
            "令和6年5月10日",
            "R6.5.10",
            "Ｈ３１．４．３０",
            "２０２４年５月１０日",
            "埼玉県越谷市七左町２丁目２０番２４号",
        ] {
            assert!(looks_like_a_value(v), "{v}");
        }
        for c in Column::ALL {
            assert!(!looks_like_a_value(c.ja()), "{c:?}");
        }
        for v in ["", "1", "12", "LOT-NO", "ロット番号", "田村　大介"] {
            assert!(!looks_like_a_value(v), "{v}");
        }
    }
}
