//! The columns of the intake file and the header that maps them to positions.

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
        todo!()
    }

    /// A short English name for maintainers, e.g. `vaccinated_on`.
    pub fn en(self) -> &'static str {
        todo!()
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
        let _ = cell;
        todo!()
    }
}

/// A problem with the header row (file level). `column` is header text, never row data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub reason: crate::Reason,
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
    pub fn resolve<'a>(cells: impl IntoIterator<Item = &'a str>) -> Result<Header, Vec<HeaderProblem>> {
        let _ = cells;
        todo!()
    }

    /// A header with every column in `Column::ALL` order.
    pub fn canonical() -> Header {
        let mut index = [None; Column::COUNT];
        for (i, slot) in index.iter_mut().enumerate() {
            *slot = Some(i);
        }
        Header { index, width: Column::COUNT }
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
