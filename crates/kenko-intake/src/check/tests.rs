//! Unit tests of the checks (`check.rs`): one or more per reason code.

use std::collections::HashMap;

use super::*;
use Column as C;
use Reason as R;

/// Not cryptographic: FNV-1a over the domain and bytes, twice with different seeds.
struct TestTokenizer;

impl Tokenizer for TestTokenizer {
    fn token(&self, domain: Domain, normalized: &[u8]) -> Token {
        let fnv = |seed: u64| {
            let tag = domain as u8;
            std::iter::once(tag)
                .chain(normalized.iter().copied())
                .fold(seed, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
        };
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_le_bytes());
        t[8..].copy_from_slice(&fnv(0x8422_2325_cbf2_9ce4).to_le_bytes());
        t
    }
}

struct TestRegister(HashMap<u64, RegisterEntry>);

impl Register for TestRegister {
    fn lookup(&self, resident_no: u64) -> Option<&RegisterEntry> {
        self.0.get(&resident_no)
    }
}

fn tok(domain: Domain, s: &str) -> Token {
    TestTokenizer.token(domain, s.as_bytes())
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

const NAME: &str = "山田太郎";
const ADDRESS: &str = "東京都千代田区千代田1-1";

fn entry(birth: NaiveDate, sex: Sex, loss: Option<Loss>) -> RegisterEntry {
    RegisterEntry {
        mynumber: None,
        name: tok(Domain::Name, NAME),
        sex,
        birth: birth_token(&TestTokenizer, birth),
        address: tok(Domain::Address, ADDRESS),
        loss,
        history: Box::new([]),
    }
}

fn register() -> TestRegister {
    let mut m = HashMap::new();
    m.insert(
        1001,
        RegisterEntry {
            mynumber: Some(tok(Domain::MyNumber, "123456789018")),
            ..entry(d(1950, 4, 1), Sex::Male, None)
        },
    );
    m.insert(1002, entry(d(2000, 2, 29), Sex::Female, None));
    let loss = |kind, on| Some(Loss { kind, on });
    m.insert(
        1003,
        entry(
            d(1950, 4, 1),
            Sex::Male,
            loss(LossKind::Deceased, d(2024, 10, 15)),
        ),
    );
    m.insert(
        1004,
        entry(
            d(1950, 4, 1),
            Sex::Male,
            loss(LossKind::Deceased, d(2024, 10, 14)),
        ),
    );
    m.insert(
        1005,
        entry(
            d(1950, 4, 1),
            Sex::Male,
            loss(LossKind::MovedOut, d(2024, 10, 1)),
        ),
    );
    TestRegister(m)
}

/// A good row in `Column::ALL` order.
const GOOD: [&str; Column::COUNT] = [
    "1001",
    "123456789018",
    "山田 太郎",
    "1",
    "1950-04-01",
    "東京都千代田区千代田1-1",
    "2024-10-15",
    "1312345678",
    "74",
    "202410",
    "1",
    "AB-123",
    "INF",
    "0",
    "佐藤一郎",
    "佐藤一郎",
    "1",
    "4,730",
    "0.5",
    "",
    "",
    "",
];

fn row<'r>(changes: &[(Column, &'r str)]) -> Vec<&'r str> {
    let mut fields = GOOD.to_vec();
    for &(c, v) in changes {
        fields[c as usize] = v;
    }
    fields
}

struct Fixture {
    master: VaccineMaster,
    register: TestRegister,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            master: VaccineMaster::default_master(),
            register: register(),
        }
    }

    fn checker(&self) -> Checker<'_> {
        Checker::new(
            Header::canonical(),
            &self.master,
            &self.register,
            &TestTokenizer,
            d(2024, 11, 1),
        )
    }

    fn issues(&self, changes: &[(Column, &str)]) -> Vec<(Reason, Option<Column>)> {
        match self.checker().check(&row(changes)) {
            Ok(_) => vec![],
            Err(e) => e.issues.iter().map(|i| (i.reason, i.column)).collect(),
        }
    }
}

#[test]
fn a_good_row_passes_with_every_value() {
    let f = Fixture::new();
    let fields = row(&[]);
    let r = f.checker().check(&fields).unwrap();
    assert_eq!(r.resident_no, 1001);
    assert_eq!(r.mynumber, Some(MyNumber::parse("123456789018").unwrap()));
    assert_eq!(r.vaccinated_on, d(2024, 10, 15));
    assert_eq!(r.institution, "1312345678");
    assert_eq!(r.age, 74);
    assert_eq!(
        r.claim_month,
        YearMonth {
            year: 2024,
            month: 10
        }
    );
    assert_eq!(r.exam, ExamCategory::Vaccination);
    assert_eq!(r.lot_no, "AB-123");
    assert_eq!(r.vaccine, "INF");
    assert!(!r.moved_in);
    assert_eq!(r.prescreen_doctor, "佐藤一郎");
    assert_eq!(r.vaccinating_doctor, "佐藤一郎");
    assert_eq!(r.payment, Payment::Public);
    assert_eq!(r.fee, 4730);
    assert_eq!(r.dose_centi_ml, Some(50));
    assert!(r.remarks.iter().all(|x| x.is_empty()));
    // Already-normal values are borrowed from the row.
    assert!(matches!(r.institution, Cow::Borrowed(_)));
    assert!(matches!(r.prescreen_doctor, Cow::Borrowed(_)));
}

#[test]
fn the_checker_is_reusable() {
    let f = Fixture::new();
    let mut c = f.checker();
    for _ in 0..3 {
        assert!(c.check(&row(&[])).is_ok());
        assert!(c.check(&row(&[(C::Name, "山田次郎")])).is_err());
    }
}

#[test]
fn accepted_variants_pass() {
    let f = Fixture::new();
    let long_remark = "あ".repeat(200);
    let long_doctor = "医".repeat(50);
    for changes in [
        vec![(C::ResidentNo, "１００１")],
        vec![(C::MyNumber, "")],
        vec![(C::MyNumber, "1234 5678 9018")],
        vec![(C::MyNumber, "1234-5678-9018")],
        vec![(C::MyNumber, "１２３４５６７８９０１８")],
        vec![(C::Name, "山田　太郎")],
        vec![(C::Name, "　山田太郎 ")],
        vec![(C::Name, "山田 太 郎")],
        vec![(C::Address, "東京都千代田区千代田１－１")],
        vec![(C::Address, "東京都 千代田区　千代田1-1")],
        vec![(C::Sex, "男")],
        vec![(C::Sex, "１")],
        vec![(C::BirthDate, "昭和25年4月1日")],
        vec![(C::BirthDate, "S25.4.1")],
        vec![(C::BirthDate, "19500401")],
        vec![(C::VaccinatedOn, "令和6年10月15日")],
        vec![(C::VaccinatedOn, "R06.10.15")],
        vec![(C::VaccinatedOn, "２０２４／１０／１５")],
        vec![(C::VaccinatedOn, "2024-11-01"), (C::ClaimMonth, "202411")],
        vec![(C::Age, "74歳")],
        vec![(C::Age, "７４")],
        vec![(C::ClaimMonth, "R6.10")],
        vec![(C::ClaimMonth, "令和6年10月")],
        vec![(C::ClaimMonth, "2024/10")],
        vec![(C::ClaimMonth, "202411")],
        vec![(C::ExamCategory, "接種")],
        vec![(C::LotNo, "ａｂ１２３")],
        vec![(C::Vaccine, "ＩＮＦ")],
        vec![(C::Vaccine, " INF ")],
        vec![(C::MovedIn, "はい")],
        vec![(C::MovedIn, "無")],
        vec![(C::Payment, "公費")],
        vec![(C::Fee, "4730")],
        vec![(C::Fee, "4,730円")],
        vec![(C::Fee, "４，７３０")],
        vec![(C::Payment, "2"), (C::Fee, "0")],
        vec![(C::Dose, "0.5mL")],
        vec![(C::Dose, "０．５ｍＬ")],
        vec![(C::Dose, ".5")],
        vec![(C::Vaccine, "COV"), (C::Dose, "0.3"), (C::Fee, "15,300")],
        vec![(C::Remarks1, &long_remark), (C::Remarks3, "再接種")],
        vec![(C::PrescreenDoctor, &long_doctor)],
    ] {
        assert_eq!(f.issues(&changes), vec![], "{changes:?}");
    }
}

#[test]
fn each_field_problem_is_reported_on_its_column() {
    let f = Fixture::new();
    let long_remark = "あ".repeat(201);
    let long_doctor = "医".repeat(51);
    let one = |r, c| vec![(r, Some(c))];
    for (changes, want) in [
        (
            vec![(C::MyNumber, "123456789017")],
            one(R::MynumberCheckDigit, C::MyNumber),
        ),
        (
            vec![(C::MyNumber, "12345678901")],
            one(R::MalformedField, C::MyNumber),
        ),
        (
            vec![(C::MyNumber, "1234567890180")],
            one(R::MalformedField, C::MyNumber),
        ),
        (
            vec![(C::MyNumber, "12345678901x")],
            one(R::MalformedField, C::MyNumber),
        ),
        (vec![(C::Name, "")], one(R::MissingField, C::Name)),
        (vec![(C::Name, "\u{3000}")], one(R::MissingField, C::Name)),
        (vec![(C::Sex, "")], one(R::MissingField, C::Sex)),
        (vec![(C::Sex, "M")], one(R::MalformedField, C::Sex)),
        (vec![(C::Address, " ")], one(R::MissingField, C::Address)),
        (
            vec![(C::BirthDate, "1950-4-1x")],
            one(R::MalformedField, C::BirthDate),
        ),
        (
            vec![(C::Institution, "")],
            one(R::MissingField, C::Institution),
        ),
        (
            vec![(C::Institution, "131234567")],
            one(R::MalformedField, C::Institution),
        ),
        (
            vec![(C::Institution, "13123456789")],
            one(R::MalformedField, C::Institution),
        ),
        (vec![(C::Age, "")], one(R::MissingField, C::Age)),
        (vec![(C::Age, "131")], one(R::MalformedField, C::Age)),
        (vec![(C::Age, "-1")], one(R::MalformedField, C::Age)),
        (vec![(C::Age, "74才")], one(R::MalformedField, C::Age)),
        (
            vec![(C::ClaimMonth, "")],
            one(R::MissingField, C::ClaimMonth),
        ),
        (
            vec![(C::ClaimMonth, "202413")],
            one(R::ImpossibleDate, C::ClaimMonth),
        ),
        (
            vec![(C::ClaimMonth, "2024年10月")],
            one(R::MalformedField, C::ClaimMonth),
        ),
        (vec![(C::LotNo, "")], one(R::MissingField, C::LotNo)),
        (vec![(C::LotNo, "AB 123")], one(R::MalformedField, C::LotNo)),
        (
            vec![(C::LotNo, "A12345678901234567890")],
            one(R::MalformedField, C::LotNo),
        ),
        (vec![(C::Vaccine, "")], one(R::MissingField, C::Vaccine)),
        (
            vec![(C::Vaccine, "XYZ")],
            one(R::UnknownVaccine, C::Vaccine),
        ),
        (
            vec![(C::Vaccine, "inf")],
            one(R::UnknownVaccine, C::Vaccine),
        ),
        (vec![(C::MovedIn, "")], one(R::MissingField, C::MovedIn)),
        (vec![(C::MovedIn, "2")], one(R::MalformedField, C::MovedIn)),
        (
            vec![(C::PrescreenDoctor, "")],
            one(R::MissingField, C::PrescreenDoctor),
        ),
        (
            vec![(C::PrescreenDoctor, &long_doctor)],
            one(R::MalformedField, C::PrescreenDoctor),
        ),
        (
            vec![(C::VaccinatingDoctor, "")],
            one(R::MissingField, C::VaccinatingDoctor),
        ),
        (
            vec![(C::VaccinatingDoctor, &long_doctor)],
            one(R::MalformedField, C::VaccinatingDoctor),
        ),
        (vec![(C::Payment, "")], one(R::MissingField, C::Payment)),
        (vec![(C::Payment, "3")], one(R::MalformedField, C::Payment)),
        (vec![(C::Fee, "")], one(R::MissingField, C::Fee)),
        (vec![(C::Fee, "47,30")], one(R::MalformedField, C::Fee)),
        (vec![(C::Fee, "4730.0")], one(R::MalformedField, C::Fee)),
        (vec![(C::Fee, "¥4730")], one(R::MalformedField, C::Fee)),
        (vec![(C::Dose, "")], one(R::MissingField, C::Dose)),
        (vec![(C::Dose, "0.5cc")], one(R::MalformedField, C::Dose)),
        (
            vec![(C::Remarks2, &long_remark)],
            one(R::MalformedField, C::Remarks2),
        ),
    ] {
        assert_eq!(f.issues(&changes), want, "{changes:?}");
    }
}

#[test]
fn resident_number_problems() {
    let f = Fixture::new();
    for v in ["", "12a", "1234567890123456", "-1"] {
        let err = f.checker().check(&row(&[(C::ResidentNo, v)])).unwrap_err();
        let want = if v.is_empty() {
            R::MissingField
        } else {
            R::MalformedField
        };
        assert_eq!(err.issues, vec![Issue::at(want, C::ResidentNo)], "{v:?}");
        assert_eq!(err.resident_no, None);
    }
    let err = f
        .checker()
        .check(&row(&[(C::ResidentNo, "9999")]))
        .unwrap_err();
    assert_eq!(
        err.issues,
        vec![Issue::at(R::ResidentNotFound, C::ResidentNo)]
    );
    assert_eq!(err.resident_no, Some(9999));
}

#[test]
fn dates_and_cross_field_rules() {
    let f = Fixture::new();
    let one = |r, c| vec![(r, Some(c))];
    assert_eq!(
        f.issues(&[(C::BirthDate, "19500230")]),
        one(R::ImpossibleDate, C::BirthDate)
    );
    assert_eq!(
        f.issues(&[(C::VaccinatedOn, "平成31年5月1日")]),
        one(R::ImpossibleDate, C::VaccinatedOn)
    );
    assert_eq!(
        f.issues(&[(C::VaccinatedOn, "2024-11-02"), (C::ClaimMonth, "202411")]),
        one(R::VaccinatedInFuture, C::VaccinatedOn)
    );
    assert_eq!(
        f.issues(&[(C::VaccinatedOn, "2024-11-02")]),
        vec![
            (R::VaccinatedInFuture, Some(C::VaccinatedOn)),
            (R::VaccinatedAfterClaimMonth, Some(C::VaccinatedOn)),
        ]
    );
    assert_eq!(
        f.issues(&[(C::ClaimMonth, "202409")]),
        one(R::VaccinatedAfterClaimMonth, C::VaccinatedOn)
    );
    assert_eq!(f.issues(&[(C::Age, "75")]), one(R::AgeMismatch, C::Age));
    assert_eq!(
        f.issues(&[(C::BirthDate, "2024-10-16"), (C::Age, "0")]),
        vec![
            (R::BornAfterVaccination, Some(C::BirthDate)),
            (R::BirthDateMismatch, Some(C::BirthDate)),
        ]
    );
    // The day before the 74th birthday is still 73; the birthday itself is 74.
    let on = |date, age| {
        f.issues(&[
            (C::VaccinatedOn, date),
            (C::ClaimMonth, "202404"),
            (C::Age, age),
        ])
    };
    assert_eq!(on("2024-03-31", "73"), vec![]);
    assert_eq!(on("2024-03-31", "74"), one(R::AgeMismatch, C::Age));
    assert_eq!(on("2024-04-01", "74"), vec![]);
}

#[test]
fn age_of_someone_born_on_29_february() {
    let f = Fixture::new();
    let base = [
        (C::ResidentNo, "1002"),
        (C::MyNumber, ""),
        (C::Sex, "2"),
        (C::BirthDate, "2000-02-29"),
    ];
    let with = |on: &'static str, month: &'static str, age: &'static str| {
        let mut c = base.to_vec();
        c.extend([(C::VaccinatedOn, on), (C::ClaimMonth, month), (C::Age, age)]);
        f.issues(&c)
    };
    let mismatch = vec![(R::AgeMismatch, Some(C::Age))];
    assert_eq!(with("2023-02-28", "202302", "22"), vec![]);
    assert_eq!(with("2023-02-28", "202302", "23"), mismatch);
    assert_eq!(with("2023-03-01", "202303", "23"), vec![]);
    assert_eq!(with("2024-02-28", "202402", "23"), vec![]);
    assert_eq!(with("2024-02-29", "202402", "24"), vec![]);
    assert_eq!(with("2024-02-29", "202402", "23"), mismatch);
}

#[test]
fn register_mismatches() {
    let f = Fixture::new();
    let one = |r, c| vec![(r, Some(c))];
    assert_eq!(
        f.issues(&[(C::MyNumber, "000000000000")]),
        one(R::MynumberMismatch, C::MyNumber)
    );
    // No My Number in the register: a given one cannot match.
    assert_eq!(
        f.issues(&[(C::ResidentNo, "1003"), (C::MyNumber, "123456789018")]),
        one(R::MynumberMismatch, C::MyNumber)
    );
    assert_eq!(
        f.issues(&[(C::Name, "山田次郎")]),
        one(R::NameMismatch, C::Name)
    );
    assert_eq!(f.issues(&[(C::Sex, "2")]), one(R::SexMismatch, C::Sex));
    assert_eq!(f.issues(&[(C::Sex, "女")]), one(R::SexMismatch, C::Sex));
    assert_eq!(
        f.issues(&[(C::BirthDate, "S25.4.2")]),
        one(R::BirthDateMismatch, C::BirthDate)
    );
    assert_eq!(
        f.issues(&[(C::Address, "東京都千代田区千代田1-2")]),
        one(R::AddressMismatch, C::Address)
    );
}

#[test]
fn death_or_moving_out_before_the_vaccination_day() {
    let f = Fixture::new();
    let base = |no| vec![(C::ResidentNo, no), (C::MyNumber, "")];
    // Death on the vaccination day itself: still a resident that day.
    assert_eq!(f.issues(&base("1003")), vec![]);
    assert_eq!(
        f.issues(&base("1004")),
        vec![(R::ResidentDeceased, Some(C::ResidentNo))]
    );
    assert_eq!(
        f.issues(&base("1005")),
        vec![(R::ResidentMovedOut, Some(C::ResidentNo))]
    );
    let mut before = base("1005");
    before.extend([(C::VaccinatedOn, "2024-10-01"), (C::Age, "74")]);
    assert_eq!(f.issues(&before), vec![]);
}

#[test]
fn prescreen_only_rows() {
    let f = Fixture::new();
    let prescreen = [
        (C::ExamCategory, "2"),
        (C::LotNo, ""),
        (C::VaccinatingDoctor, ""),
        (C::Dose, ""),
        (C::Fee, "2,970"),
    ];
    let fields = row(&prescreen);
    let r = f.checker().check(&fields).unwrap();
    assert_eq!(r.exam, ExamCategory::PrescreenOnly);
    assert_eq!(r.lot_no, "");
    assert_eq!(r.vaccinating_doctor, "");
    assert_eq!(r.dose_centi_ml, None);
    assert_eq!(r.fee, 2970);

    let mut with = prescreen.to_vec();
    with.extend([
        (C::ExamCategory, "予診のみ"),
        (C::LotNo, "AB 1"),
        (C::Dose, "0.5"),
    ]);
    assert_eq!(
        f.issues(&with),
        vec![
            (R::PrescreenWithLotOrDose, Some(C::LotNo)),
            (R::PrescreenWithLotOrDose, Some(C::Dose)),
        ]
    );
    let mut fee = prescreen.to_vec();
    fee.push((C::Fee, "4730"));
    assert_eq!(f.issues(&fee), vec![(R::FeeMismatch, Some(C::Fee))]);
}

#[test]
fn master_rules() {
    let f = Fixture::new();
    let one = |r, c| vec![(r, Some(c))];
    assert_eq!(
        f.issues(&[(C::Dose, "0.3")]),
        one(R::DoseNotAllowed, C::Dose)
    );
    assert_eq!(f.issues(&[(C::Fee, "2970")]), one(R::FeeMismatch, C::Fee));
    assert_eq!(
        f.issues(&[(C::Payment, "自費"), (C::Fee, "4730")]),
        one(R::FeeMismatch, C::Fee)
    );
    // An unknown category or vaccine leaves the public fee unchecked, reported once.
    assert_eq!(
        f.issues(&[(C::ExamCategory, "3"), (C::Fee, "1")]),
        one(R::MalformedField, C::ExamCategory)
    );
    assert_eq!(
        f.issues(&[(C::Vaccine, "XYZ"), (C::Fee, "1"), (C::Dose, "9")]),
        one(R::UnknownVaccine, C::Vaccine)
    );
}

#[test]
fn wrong_field_count() {
    let f = Fixture::new();
    for n in [0, Column::COUNT - 1, Column::COUNT + 1] {
        let mut fields = row(&[]);
        fields.resize(n, "");
        let err = f.checker().check(&fields).unwrap_err();
        assert_eq!(
            err,
            RowErrors {
                resident_no: None,
                issues: vec![Issue {
                    reason: R::WrongFieldCount,
                    column: None
                }],
            }
        );
    }
}

#[test]
fn a_row_with_several_problems_lists_them_all() {
    let f = Fixture::new();
    let err = f
        .checker()
        .check(&row(&[
            (C::MyNumber, "123456789017"),
            (C::Name, "山田次郎"),
            (C::Sex, "x"),
            (C::Age, "80"),
            (C::Vaccine, "PCV"),
            (C::Fee, "4730"),
            (C::Dose, "0.25"),
            (C::Remarks1, &"x".repeat(201)),
        ]))
        .unwrap_err();
    assert_eq!(err.resident_no, Some(1001));
    let got: Vec<_> = err.issues.iter().map(|i| (i.reason, i.column)).collect();
    assert_eq!(
        got,
        vec![
            (R::MynumberCheckDigit, Some(C::MyNumber)),
            (R::MalformedField, Some(C::Sex)),
            (R::MalformedField, Some(C::Remarks1)),
            (R::AgeMismatch, Some(C::Age)),
            (R::DoseNotAllowed, Some(C::Dose)),
            (R::FeeMismatch, Some(C::Fee)),
            (R::NameMismatch, Some(C::Name)),
        ]
    );
}

#[test]
fn errors_never_show_values() {
    let f = Fixture::new();
    let name = "鈴木一郎";
    let address = "大阪府大阪市北区1-1";
    let err = f
        .checker()
        .check(&row(&[
            (C::Name, name),
            (C::Address, address),
            (C::BirthDate, "1951-05-06"),
            (C::MyNumber, "000000000000"),
        ]))
        .unwrap_err();
    for text in [format!("{err:?}"), err.to_string(), format!("{err:#?}")] {
        for value in [name, address, "1951", "000000000000"] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
    assert_eq!(
        err.to_string(),
        "row of resident 1001 rejected: age_mismatch (age), \
         mynumber_mismatch (mynumber), name_mismatch (name), birth_date_mismatch (birth_date), \
         address_mismatch (address)"
    );
}

#[test]
fn a_header_without_optional_columns() {
    let f = Fixture::new();
    let cols: Vec<Column> = Column::ALL
        .iter()
        .copied()
        .filter(|c| c.is_required_column())
        .rev()
        .collect();
    let header = Header::resolve(cols.iter().map(|c| c.ja())).unwrap();
    let mut checker = Checker::new(
        header,
        &f.master,
        &f.register,
        &TestTokenizer,
        d(2024, 11, 1),
    );
    let fields: Vec<&str> = cols.iter().map(|&c| GOOD[c as usize]).collect();
    let r = checker.check(&fields).unwrap();
    assert_eq!(r.mynumber, None);
    assert!(r.remarks.iter().all(|x| x.is_empty()));
}

/// A resident who moved and married on 2024-10-10 (異動): a row is compared with the facts valid
/// on its 接種日, so an earlier vaccination at the old address under the old name is accepted,
/// and a later one is checked against the new ones.
#[test]
fn a_row_is_checked_against_the_facts_valid_on_its_vaccination_day() {
    const NEW_ADDRESS: &str = "東京都八王子市元本郷町3-24-1";
    const NEW_NAME: &str = "鈴木太郎";
    let mut f = Fixture::new();
    let moved = RegisterEntry {
        name: tok(Domain::Name, NEW_NAME),
        address: tok(Domain::Address, NEW_ADDRESS),
        mynumber: Some(tok(Domain::MyNumber, "123456789018")),
        history: Box::new([PastFacts {
            until: d(2024, 10, 10),
            mynumber: Some(tok(Domain::MyNumber, "123456789018")),
            name: tok(Domain::Name, NAME),
            address: tok(Domain::Address, ADDRESS),
        }]),
        ..entry(d(1950, 4, 1), Sex::Male, None)
    };
    f.register.0.insert(1001, moved);
    let on = |day: &'static str, name: &'static str, address: &'static str| {
        f.issues(&[
            (C::VaccinatedOn, day),
            (C::Name, name),
            (C::Address, address),
        ])
    };
    // Before the change: the old name and address are right, the new ones are not.
    assert_eq!(on("2024-10-05", "山田 太郎", ADDRESS), vec![]);
    assert_eq!(
        on("2024-10-05", NEW_NAME, NEW_ADDRESS),
        vec![
            (R::NameMismatch, Some(C::Name)),
            (R::AddressMismatch, Some(C::Address))
        ]
    );
    // From the day of the change: the new ones.
    assert_eq!(on("2024-10-10", NEW_NAME, NEW_ADDRESS), vec![]);
    assert_eq!(on("2024-10-15", NEW_NAME, NEW_ADDRESS), vec![]);
    assert_eq!(
        on("2024-10-15", "山田 太郎", ADDRESS),
        vec![
            (R::NameMismatch, Some(C::Name)),
            (R::AddressMismatch, Some(C::Address))
        ]
    );
}

#[test]
fn facts_on_picks_the_oldest_version_not_yet_ended() {
    let v = |until, name| PastFacts {
        until,
        mynumber: None,
        name: tok(Domain::Name, name),
        address: tok(Domain::Address, ADDRESS),
    };
    let e = RegisterEntry {
        history: Box::new([v(d(2020, 1, 1), "一"), v(d(2022, 1, 1), "二")]),
        ..entry(d(1950, 4, 1), Sex::Male, None)
    };
    let name_on = |day| e.facts_on(day).name;
    assert_eq!(name_on(Some(d(2019, 6, 1))), tok(Domain::Name, "一"));
    assert_eq!(name_on(Some(d(2020, 1, 1))), tok(Domain::Name, "二"));
    assert_eq!(name_on(Some(d(2023, 1, 1))), e.name);
    assert_eq!(name_on(None), e.name);
}

#[test]
fn control_characters_are_malformed_fields_and_nothing_else_is_checked() {
    let f = Fixture::new();
    // A NUL in the doctor's name and in a remark (PostgreSQL text cannot hold NUL), an escape
    // in the name, a C1 control in the address: each field named once, nothing else checked.
    assert_eq!(
        f.issues(&[
            (Column::PrescreenDoctor, "山田\u{0}医師"),
            (Column::Remarks1, "\u{0}"),
            (Column::Name, "田村\u{1b}[2J"),
            (Column::Address, "越谷市\u{85}"),
            (Column::Fee, "x"),
        ]),
        vec![
            (Reason::MalformedField, Some(Column::Name)),
            (Reason::MalformedField, Some(Column::Address)),
            (Reason::MalformedField, Some(Column::PrescreenDoctor)),
            (Reason::MalformedField, Some(Column::Remarks1)),
        ]
    );
    // The resident is still named when their number is clean.
    let fields = row(&[(Column::Remarks2, "a\u{7f}b")]);
    let err = f.checker().check(&fields).unwrap_err();
    assert!(err.resident_no.is_some());
    // Tabs and line breaks (a quoted remark may hold them) are not controls here.
    assert!(f
        .issues(&[(Column::Remarks3, "一行目\r\n二行目\tです")])
        .is_empty());
    for s in ["\u{0}", "a\u{1f}", "\u{7f}", "\u{80}", "\u{9f}"] {
        assert!(has_control_character(s), "{s:?}");
    }
    for s in ["", "山田", "\t\n\r", "\u{a0}", "é", "\u{3000}"] {
        assert!(!has_control_character(s), "{s:?}");
    }
}
