//! Tests of the generator. Besides bytes and determinism, `MiniCheck` re-reads every
//! generated row with an independent, simplified reading of `docs/intake-format.md`, so the
//! promise "valid rows pass, an injected row fails with exactly its reason" is tested here
//! without waiting for the real checker.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use encoding_rs::SHIFT_JIS;
use kenko_intake::age::age_on;
use kenko_intake::{LossKind, MyNumber, Sex, VaccineMaster, YearMonth};

use super::csv::parse_records;
use super::names::{BUILDINGS, FAMILY_NAMES, FEMALE_GIVEN_NAMES, MALE_GIVEN_NAMES, REMARKS, TOWNS};
use super::*;

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn october_spec(records: usize, error_rate: f64, seed: u64) -> IntakeSpec {
    IntakeSpec {
        records,
        month: YearMonth::new(2024, 10).unwrap(),
        encoding: SampleEncoding::Utf8,
        error_rate,
        seed,
        institution: None,
        today: ymd(2024, 11, 10),
    }
}

fn intake_bytes(residents: &[SampleResident], spec: &IntakeSpec) -> (Vec<u8>, IntakeStats) {
    let mut out = Vec::new();
    let stats = write_intake(&mut out, residents, spec).unwrap();
    (out, stats)
}

/// The generated file's records (header first) and, per data row, the injected error.
fn generate(
    residents: &[SampleResident],
    spec: &IntakeSpec,
) -> (Vec<Vec<String>>, Vec<Option<InjectedError>>, IntakeStats) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    let stats = write_intake_observed(&mut out, residents, spec, |row, kind| {
        assert_eq!(row as usize, kinds.len() + 1);
        kinds.push(kind);
    })
    .unwrap();
    let text = match spec.encoding {
        SampleEncoding::Utf8 => String::from_utf8(out).unwrap(),
        SampleEncoding::Cp932 => SHIFT_JIS
            .decode_without_bom_handling_and_without_replacement(&out)
            .unwrap()
            .into_owned(),
    };
    let records = parse_records(&text)
        .unwrap()
        .into_iter()
        .map(|r| r.fields)
        .collect();
    (records, kinds, stats)
}

#[test]
fn word_lists_are_big_enough_and_cp932() {
    assert!(FAMILY_NAMES.len() >= 100);
    assert!(MALE_GIVEN_NAMES.len() >= 60);
    assert!(FEMALE_GIVEN_NAMES.len() >= 60);
    assert!(TOWNS.len() >= 20);
    let lists = [
        FAMILY_NAMES,
        MALE_GIVEN_NAMES,
        FEMALE_GIVEN_NAMES,
        TOWNS,
        BUILDINGS,
        REMARKS,
    ];
    for word in lists.iter().flat_map(|l| l.iter()) {
        let (_, _, unmappable) = SHIFT_JIS.encode(word);
        assert!(!unmappable, "{word} is not CP932");
    }
    for list in [FAMILY_NAMES, MALE_GIVEN_NAMES, FEMALE_GIVEN_NAMES, TOWNS] {
        let unique: HashSet<_> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "duplicate entries");
    }
}

#[test]
fn resident_csv_has_the_header_and_count_unique_rows() {
    let mut out = Vec::new();
    write_residents(&mut out, 1000, 7).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("{RESIDENT_HEADER}\n")));
    assert!(!text.contains('\r'));
    let records = parse_records(&text).unwrap();
    assert_eq!(records.len(), 1001);
    let numbers: HashSet<u64> = records[1..]
        .iter()
        .map(|r| r.fields[0].parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 1000);
    assert_eq!(numbers.iter().min(), Some(&FIRST_RESIDENT_NO));
    assert_eq!(numbers.iter().max(), Some(&(FIRST_RESIDENT_NO + 999)));
    // Shuffled, not in order.
    let first: Vec<u64> = records[1..11]
        .iter()
        .map(|r| r.fields[0].parse().unwrap())
        .collect();
    assert!(first.windows(2).any(|w| w[0] > w[1]));
    for r in &records[1..] {
        assert_eq!(r.fields.len(), 8);
    }
}

#[test]
fn residents_round_trip_through_the_csv() {
    let residents = generate_residents(2000, 3);
    let mut out = Vec::new();
    write_resident_csv(&mut out, &residents).unwrap();
    let back = parse_residents(std::str::from_utf8(&out).unwrap()).unwrap();
    assert_eq!(back, residents);

    let dir = std::env::temp_dir().join(format!("kenko-sample-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("residents.csv");
    // Also with a BOM and CRLF, as a spreadsheet would save it.
    let text = format!(
        "\u{feff}{}",
        std::str::from_utf8(&out).unwrap().replace('\n', "\r\n")
    );
    std::fs::write(&path, text).unwrap();
    let read = read_residents(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(read.unwrap(), residents);
}

#[test]
fn bad_resident_files_are_refused() {
    let header = RESIDENT_HEADER;
    let row = "100000001,123456789018,佐藤\u{3000}花,2,19500101,埼玉県越谷市南越谷1丁目2番3号,,";
    assert!(parse_residents(&format!("{header}\n{row}\n")).is_ok());
    let cases = [
        String::new(),
        format!("{}\n{row}\n", header.replace("氏名", "名前")),
        format!(
            "{header}\n{}\n",
            row.replace("123456789018", "123456789017")
        ),
        format!("{header}\n{}\n", row.replace("19500101", "19500230")),
        format!("{header}\n{}\n", row.replace(",,", ",死亡,")),
        format!("{header}\n{row}\n{row}\n"),
        format!("{header}\n{row},\n"),
    ];
    for case in &cases {
        assert!(parse_residents(case).is_err(), "{case:?}");
    }
}

#[test]
fn generated_my_numbers_are_valid_and_unique() {
    let residents = generate_residents(20_000, 11);
    let mut seen = HashSet::new();
    for r in &residents {
        let n = r.mynumber.as_deref().unwrap();
        assert!(MyNumber::parse(n).is_ok());
        assert!(seen.insert(n.to_owned()));
    }
}

#[test]
fn residents_look_like_a_city() {
    let spec = ResidentSpec::new(20_000, 5);
    let residents = spec.generate();
    let ages: Vec<u32> = residents
        .iter()
        .map(|r| age_on(r.birth, spec.as_of).unwrap())
        .collect();
    assert!(ages.iter().all(|a| *a <= 101));
    assert!(ages.contains(&0));
    let old = ages.iter().filter(|a| **a >= 65).count() as f64 / ages.len() as f64;
    assert!((0.2..0.4).contains(&old), "share of 65+: {old}");
    assert!(residents
        .iter()
        .any(|r| r.birth.month() == 2 && r.birth.day() == 29));
    let count = |k: LossKind| {
        residents
            .iter()
            .filter(|r| r.loss.map(|l| l.kind) == Some(k))
            .count()
    };
    let deceased = count(LossKind::Deceased) as f64 / residents.len() as f64;
    let moved = count(LossKind::MovedOut) as f64 / residents.len() as f64;
    assert!((0.005..0.02).contains(&deceased), "deceased {deceased}");
    assert!((0.01..0.04).contains(&moved), "moved out {moved}");
    for r in &residents {
        assert!(r.name.contains('\u{3000}'));
        assert!(r.address.starts_with("埼玉県越谷市"));
        assert!(
            r.address.contains("丁目")
                && r.address.contains('番')
                && r.address
                    .ends_with(|c: char| c == '号' || c.is_ascii_digit())
        );
        if let Some(loss) = r.loss {
            assert!(loss.on > r.birth && loss.on <= spec.as_of);
            assert!((spec.as_of - loss.on).num_days() <= 3 * 365);
        }
    }
    assert!(
        residents.iter().any(|r| r.address.contains('\u{3000}')),
        "some with a building"
    );
    assert!(
        residents.iter().any(|r| r.sex == Sex::Male)
            && residents.iter().any(|r| r.sex == Sex::Female)
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let residents = generate_residents(2000, 1);
    assert_eq!(residents, generate_residents(2000, 1));
    assert_ne!(residents, generate_residents(2000, 2));
    for encoding in [SampleEncoding::Utf8, SampleEncoding::Cp932] {
        let spec = IntakeSpec {
            encoding,
            ..october_spec(2000, 0.1, 42)
        };
        let (a, stats_a) = intake_bytes(&residents, &spec);
        let (b, stats_b) = intake_bytes(&residents, &spec);
        assert_eq!(a, b);
        assert_eq!(stats_a, stats_b);
        let (c, _) = intake_bytes(&residents, &IntakeSpec { seed: 43, ..spec });
        assert_ne!(a, c);
    }
}

#[test]
fn cp932_output_decodes_and_has_crlf() {
    let residents = generate_residents(3000, 9);
    let spec = IntakeSpec {
        encoding: SampleEncoding::Cp932,
        ..october_spec(5000, 0.1, 9)
    };
    let (bytes, _) = intake_bytes(&residents, &spec);
    let text = SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(&bytes)
        .unwrap();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "CP932 bytes must not pass as UTF-8"
    );
    assert!(text.starts_with(&format!("{INTAKE_HEADER}\r\n")));
    assert!(text.ends_with("\r\n"));
    let b = text.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' {
            assert_eq!(b[i - 1], b'\r', "a bare LF at byte {i}");
        }
    }
    // Multi-line remarks exist and keep the file's line ends.
    assert!(text.contains("経過観察\r\n異常なし"));
    // The per-character cache gives exactly what encoding_rs gives for the whole text.
    let (reencoded, _, unmappable) = SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    assert_eq!(reencoded, bytes);
}

#[test]
fn the_cp932_cache_agrees_with_encoding_rs() {
    let mut cp932 = super::intake::Cp932::new();
    let samples = [
        "ｱｲｳ ｶﾞ",
        "¥‾℃〜～−－①髙﨑",
        "佐藤\u{3000}花子,１２３",
        "plain ascii\r\n",
    ];
    // Each text whole, then each character alone (a text with one unmappable character says
    // nothing about the others).
    let chars: Vec<String> = samples
        .iter()
        .flat_map(|s| s.chars())
        .map(String::from)
        .collect();
    for text in samples
        .iter()
        .copied()
        .chain(chars.iter().map(String::as_str))
    {
        for _ in 0..2 {
            // Twice: the second time from the cache.
            let mut ours = Vec::new();
            let result = cp932.encode(text, &mut ours);
            let (theirs, _, unmappable) = SHIFT_JIS.encode(text);
            match result {
                Ok(()) => assert_eq!(ours, theirs.into_owned(), "{text}"),
                Err(()) => assert!(unmappable, "{text}"),
            }
        }
    }
    let mut out = Vec::new();
    assert!(cp932.encode("\u{1F600}", &mut out).is_err());
    assert!(cp932.encode("한", &mut out).is_err());
}

#[test]
fn utf8_output_has_no_bom_and_lf() {
    let residents = generate_residents(3000, 9);
    let (bytes, _) = intake_bytes(&residents, &october_spec(5000, 0.1, 9));
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(&format!("{INTAKE_HEADER}\n")));
    assert!(!text.contains('\r'));
}

#[test]
fn every_row_has_every_column() {
    let residents = generate_residents(3000, 4);
    let (records, kinds, stats) = generate(&residents, &october_spec(4000, 0.2, 4));
    assert_eq!(records.len(), 4001);
    assert_eq!(records[0].join(","), INTAKE_HEADER);
    assert_eq!(records[0].len(), kenko_intake::Column::COUNT);
    for r in &records {
        assert_eq!(r.len(), kenko_intake::Column::COUNT);
    }
    assert_eq!(kinds.len(), 4000);
    assert_eq!(stats.rows, 4000);
    // Quoting is exercised.
    assert!(records
        .iter()
        .any(|r| r[19..].iter().any(|f| f.contains(','))));
    assert!(records
        .iter()
        .any(|r| r[19..].iter().any(|f| f.contains('"'))));
}

#[test]
fn error_rate_zero_injects_nothing() {
    let residents = generate_residents(2000, 6);
    let (_, kinds, stats) = generate(&residents, &october_spec(3000, 0.0, 6));
    assert!(stats.injected.is_empty());
    assert_eq!(stats.injected_total(), 0);
    assert_eq!(stats.valid_rows, 3000);
    assert!(kinds.iter().all(Option::is_none));
}

#[test]
fn stats_count_what_was_injected() {
    let residents = generate_residents(3000, 8);
    let (_, kinds, stats) = generate(&residents, &october_spec(10_000, 0.3, 8));
    let mut counted: HashMap<&str, usize> = HashMap::new();
    for k in kinds.iter().flatten() {
        *counted.entry(k.code()).or_default() += 1;
    }
    assert_eq!(
        counted
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
        stats.injected
    );
    assert_eq!(stats.valid_rows + stats.injected_total(), stats.rows);
    let share = stats.injected_total() as f64 / stats.rows as f64;
    assert!((0.27..0.33).contains(&share), "injected share {share}");
    // Every kind occurs, about equally often.
    for kind in InjectedError::ALL {
        let n = stats.injected.get(kind.code()).copied().unwrap_or(0);
        assert!(n > 100, "{} injected {n} times", kind.code());
        // The code is the Reason variant in snake_case (what `Reason::code` returns).
        let mut snake = String::new();
        for c in format!("{:?}", kind.reason()).chars() {
            if c.is_ascii_uppercase() && !snake.is_empty() {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        assert_eq!(snake, kind.code());
    }
}

#[test]
fn a_single_institution_is_used_throughout() {
    let residents = generate_residents(2000, 2);
    let spec = IntakeSpec {
        institution: Some("1110123456".into()),
        ..october_spec(2000, 0.0, 2)
    };
    let (records, _, _) = generate(&residents, &spec);
    assert!(records[1..].iter().all(|r| r[7] == "1110123456"));
    for bad in ["111012345", "111012345a", ""] {
        let spec = IntakeSpec {
            institution: Some(bad.into()),
            ..october_spec(10, 0.0, 2)
        };
        assert!(
            write_intake(Vec::new(), &residents, &spec).is_err(),
            "{bad:?}"
        );
    }
    let (records, _, _) = generate(&residents, &october_spec(2000, 0.0, 2));
    let codes: HashSet<&str> = records[1..].iter().map(|r| r[7].as_str()).collect();
    assert!(codes.len() >= 6);
}

#[test]
fn impossible_requests_are_errors() {
    let residents = generate_residents(100, 2);
    let future = IntakeSpec {
        today: ymd(2024, 9, 30),
        ..october_spec(10, 0.0, 1)
    };
    assert!(write_intake(Vec::new(), &residents, &future).is_err());
    assert!(write_intake(Vec::new(), &[], &october_spec(10, 0.0, 1)).is_err());
    assert!(write_intake(Vec::new(), &residents, &october_spec(10, 1.5, 1)).is_err());
    // Two residents cannot fill a thousand unique rows in a month.
    assert!(write_intake(Vec::new(), &residents[..2], &october_spec(1000, 0.0, 1)).is_err());
    // No rows is a header only.
    let (bytes, stats) = intake_bytes(&[], &october_spec(0, 0.0, 1));
    assert_eq!(bytes, format!("{INTAKE_HEADER}\n").into_bytes());
    assert_eq!(stats.rows, 0);
}

#[test]
fn valid_rows_pass_and_injected_rows_fail_with_their_reason() {
    let residents = generate_residents(3000, 12);
    for (encoding, error_rate, seed) in [
        (SampleEncoding::Utf8, 0.0, 1),
        (SampleEncoding::Cp932, 0.0, 2),
        (SampleEncoding::Utf8, 0.5, 3),
        (SampleEncoding::Cp932, 1.0, 4),
    ] {
        let spec = IntakeSpec {
            encoding,
            ..october_spec(6000, error_rate, seed)
        };
        let (records, kinds, _) = generate(&residents, &spec);
        let mut check = MiniCheck::new(&residents, &spec);
        for (i, (fields, kind)) in records[1..].iter().zip(&kinds).enumerate() {
            let found = check.check(fields);
            let expected: Vec<&str> = kind.iter().map(|k| k.code()).collect();
            assert_eq!(found, expected, "row {}: {fields:?}", i + 1);
        }
    }
}

#[test]
fn the_month_is_honoured_and_today_is_not_passed() {
    let residents = generate_residents(3000, 12);
    let spec = IntakeSpec {
        today: ymd(2024, 10, 15),
        ..october_spec(3000, 0.0, 5)
    };
    let (records, _, _) = generate(&residents, &spec);
    for r in &records[1..] {
        let date = parse_date(&r[6]).unwrap().unwrap();
        assert!(
            date >= ymd(2024, 10, 1) && date <= ymd(2024, 10, 15),
            "{date}"
        );
    }
}

#[test]
fn dates_and_formats_vary() {
    let residents = generate_residents(3000, 12);
    let (records, _, _) = generate(&residents, &october_spec(5000, 0.0, 5));
    let rows = &records[1..];
    let any = |col: usize, pred: &dyn Fn(&str) -> bool| rows.iter().any(|r| pred(&r[col]));
    assert!(any(6, &|s| s.starts_with("令和")));
    assert!(any(6, &|s| s.starts_with("R6.")));
    assert!(any(6, &|s| s.contains('-')));
    assert!(any(4, &|s| s.starts_with("昭和")));
    assert!(any(9, &|s| s == "令和6年10月"));
    assert!(any(9, &|s| s == "R6.10"));
    assert!(any(5, &|s| s.contains('１') || s.contains('２')));
    assert!(any(2, &|s| s.contains(' ')));
    assert!(any(1, &|s| s.is_empty()) && any(1, &|s| s.len() == 12));
    assert!(any(17, &|s| s.contains(',')));
    assert!(any(10, &|s| s == "2"));
    assert!(any(16, &|s| s == "2"));
    let with_number = rows.iter().filter(|r| !r[1].is_empty()).count() as f64 / rows.len() as f64;
    assert!((0.65..0.75).contains(&with_number), "{with_number}");
}

/// A simplified, independent reading of `docs/intake-format.md` for generated rows: the
/// reasons a row breaks, deduplicated, in a fixed order.
struct MiniCheck<'a> {
    register: HashMap<u64, &'a SampleResident>,
    master: VaccineMaster,
    today: NaiveDate,
    keys: HashSet<(u64, NaiveDate, String, String)>,
}

impl<'a> MiniCheck<'a> {
    fn new(residents: &'a [SampleResident], spec: &IntakeSpec) -> MiniCheck<'a> {
        MiniCheck {
            register: residents.iter().map(|r| (r.resident_no, r)).collect(),
            master: VaccineMaster::default_master(),
            today: spec.today,
            keys: HashSet::new(),
        }
    }

    fn check(&mut self, f: &[String]) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let mut push = |r: &'static str| {
            if !out.contains(&r) {
                out.push(r);
            }
        };
        let f: Vec<String> = f.iter().map(|s| nfkc_lite(s)).collect();
        let no: u64 = f[0].parse().unwrap();
        let resident = self.register.get(&no).copied();
        if resident.is_none() {
            push("resident_not_found");
        }
        if !f[1].is_empty() {
            if MyNumber::parse(&f[1]).is_err() {
                push("mynumber_check_digit");
            } else if resident.is_some_and(|r| r.mynumber.as_deref() != Some(f[1].as_str())) {
                push("mynumber_mismatch");
            }
        }
        if f[2].is_empty() {
            push("missing_field");
        } else if resident.is_some_and(|r| compact(&f[2]) != compact(&r.name)) {
            push("name_mismatch");
        }
        let sex = Sex::parse(&f[3]).unwrap();
        if resident.is_some_and(|r| r.sex != sex) {
            push("sex_mismatch");
        }
        let birth = parse_date(&f[4]).unwrap().unwrap();
        if resident.is_some_and(|r| r.birth != birth) {
            push("birth_date_mismatch");
        }
        if resident.is_some_and(|r| compact(&f[5]) != compact(&r.address)) {
            push("address_mismatch");
        }
        let claim = parse_month(&f[9]).unwrap();
        let date = match parse_date(&f[6]).unwrap() {
            None => {
                push("impossible_date");
                None
            }
            Some(d) => {
                if d > self.today {
                    push("vaccinated_in_future");
                }
                if d > claim.last_day() {
                    push("vaccinated_after_claim_month");
                }
                if let Some(loss) = resident.and_then(|r| r.loss) {
                    if loss.on < d {
                        push(match loss.kind {
                            LossKind::Deceased => "resident_deceased",
                            LossKind::MovedOut => "resident_moved_out",
                        });
                    }
                }
                let age: u32 = f[8].trim_end_matches('歳').parse().unwrap();
                if age_on(birth, d) != Some(age) {
                    push("age_mismatch");
                }
                Some(d)
            }
        };
        if f[7].is_empty() {
            push("missing_field");
        } else if f[7].len() != 10 || !f[7].bytes().all(|b| b.is_ascii_digit()) {
            push("malformed_field");
        }
        let vaccination = match f[10].as_str() {
            "1" | "接種" => true,
            "2" | "予診のみ" => false,
            other => panic!("診察区分 {other:?}"),
        };
        assert!(
            f[11]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && f[11].len() <= 20
        );
        assert!(matches!(f[13].as_str(), "0" | "1" | "無" | "いいえ"));
        assert!(!f[14].is_empty());
        if vaccination {
            assert!(!f[11].is_empty() && !f[15].is_empty() && !f[18].is_empty());
        } else {
            assert!(f[15].is_empty());
            if !f[11].is_empty() || !f[18].is_empty() {
                push("prescreen_with_lot_or_dose");
            }
        }
        let public = match f[16].as_str() {
            "1" | "公費" => true,
            "2" | "自費" => false,
            other => panic!("公費自費区分 {other:?}"),
        };
        let fee: u32 = f[17].replace(',', "").parse().unwrap();
        match self.master.get(&f[12]) {
            None => push("unknown_vaccine"),
            Some(v) => {
                if vaccination {
                    let dose = f[18].trim_end_matches("mL");
                    let (whole, frac) = dose.split_once('.').unwrap_or((dose, ""));
                    let centi = whole.parse::<u32>().unwrap() * 100
                        + format!("{frac:0<2}").parse::<u32>().unwrap();
                    if !v.doses_centi_ml.contains(&centi) {
                        push("dose_not_allowed");
                    }
                }
                let expected = match (public, vaccination) {
                    (false, _) => 0,
                    (true, true) => v.fee_vaccination,
                    (true, false) => v.fee_prescreen,
                };
                if fee != expected {
                    push("fee_mismatch");
                }
            }
        }
        for remark in &f[19..] {
            assert!(remark.chars().count() <= 200);
        }
        if out.is_empty() {
            let key = (no, date.unwrap(), f[12].clone(), f[10].clone());
            if !self.keys.insert(key) {
                out.push("duplicate_in_file");
            }
        }
        out
    }
}

/// The NFKC mappings the generator relies on: full-width digits to ASCII.
fn nfkc_lite(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - 0xFF10 + u32::from(b'0')).unwrap(),
            _ => c,
        })
        .collect()
}

fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

const ERAS: [(&str, &str, NaiveDate, i32); 5] = [
    ("明治", "M", date(1868, 1, 25), 1867),
    ("大正", "T", date(1912, 7, 30), 1911),
    ("昭和", "S", date(1926, 12, 25), 1925),
    ("平成", "H", date(1989, 1, 8), 1988),
    ("令和", "R", date(2019, 5, 1), 2018),
];

const fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("bad date"),
    }
}

/// `Ok(None)` for an impossible date, `Err` for a form the generator never writes.
fn parse_date(s: &str) -> Result<Option<NaiveDate>, String> {
    let nums = |s: &str| -> Vec<i64> {
        s.split(|c: char| !c.is_ascii_digit() && c != '元')
            .filter(|p| !p.is_empty())
            .map(|p| if p == "元" { 1 } else { p.parse().unwrap() })
            .collect()
    };
    for (i, (kanji, initial, start, base)) in ERAS.iter().enumerate() {
        if let Some(rest) = s.strip_prefix(kanji).or_else(|| s.strip_prefix(initial)) {
            let n = nums(rest);
            let d = NaiveDate::from_ymd_opt(base + n[0] as i32, n[1] as u32, n[2] as u32);
            let end = ERAS.get(i + 1).map(|e| e.2);
            return Ok(d.filter(|d| d >= start && end.is_none_or(|e| *d < e)));
        }
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 8 || !(s.len() == 8 || s.len() == 10) {
        return Err(format!("unexpected date {s:?}"));
    }
    let n: u32 = digits.parse().unwrap();
    Ok(NaiveDate::from_ymd_opt(
        (n / 10_000) as i32,
        n / 100 % 100,
        n % 100,
    ))
}

fn parse_month(s: &str) -> Result<YearMonth, String> {
    for (kanji, initial, _, base) in ERAS {
        if let Some(rest) = s.strip_prefix(kanji).or_else(|| s.strip_prefix(initial)) {
            let parts: Vec<i32> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap())
                .collect();
            return YearMonth::new(base + parts[0], parts[1] as u32).ok_or(s.to_owned());
        }
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().map_err(|_| s.to_owned())?;
    YearMonth::new((n / 100) as i32, n % 100).ok_or(s.to_owned())
}

#[test]
fn mini_check_reads_era_dates_like_the_contract() {
    assert_eq!(parse_date("令和6年10月1日"), Ok(Some(ymd(2024, 10, 1))));
    assert_eq!(parse_date("R6.10.1"), Ok(Some(ymd(2024, 10, 1))));
    assert_eq!(parse_date("令和元年5月1日"), Ok(Some(ymd(2019, 5, 1))));
    assert_eq!(parse_date("平成31年4月30日"), Ok(Some(ymd(2019, 4, 30))));
    assert_eq!(parse_date("平成32年1月1日"), Ok(None));
    assert_eq!(parse_date("20240230"), Ok(None));
    assert_eq!(parse_date("2024-10-01"), Ok(Some(ymd(2024, 10, 1))));
    assert_eq!(parse_month("R6.10"), Ok(YearMonth::new(2024, 10).unwrap()));
    assert_eq!(
        parse_month("2024/10"),
        Ok(YearMonth::new(2024, 10).unwrap())
    );
}

/// The real checker, with keyed tokens from an in-test tokenizer, agrees with `MiniCheck`:
/// valid rows pass, an injected row fails with its reason and no other (`duplicate_in_file`
/// is the pipeline's, so here it is a row that passes but repeats an earlier key).
#[test]
fn the_checker_accepts_valid_rows_and_rejects_injected_ones_for_their_reason() {
    use kenko_intake::normalize::compact_into;
    use kenko_intake::{Checker, Domain, Header, Register, RegisterEntry, Token, Tokenizer};
    use sha2::{Digest, Sha256};

    struct TestTokenizer;
    impl Tokenizer for TestTokenizer {
        fn token(&self, domain: Domain, normalized: &[u8]) -> Token {
            let mut h = Sha256::new();
            h.update([domain as u8]);
            h.update(normalized);
            h.finalize()[..16].try_into().unwrap()
        }
    }
    struct TestRegister(HashMap<u64, RegisterEntry>);
    impl Register for TestRegister {
        fn lookup(&self, resident_no: u64) -> Option<&RegisterEntry> {
            self.0.get(&resident_no)
        }
    }

    let residents = generate_residents(3000, 21);
    let tokenizer = TestTokenizer;
    let compact_token = |domain: Domain, s: &str| {
        let mut out = String::new();
        compact_into(s, &mut out);
        tokenizer.token(domain, out.as_bytes())
    };
    let register = TestRegister(
        residents
            .iter()
            .map(|r| {
                let entry = RegisterEntry {
                    mynumber: r
                        .mynumber
                        .as_ref()
                        .map(|n| tokenizer.token(Domain::MyNumber, n.as_bytes())),
                    name: compact_token(Domain::Name, &r.name),
                    sex: r.sex,
                    birth: kenko_intake::birth_token(&tokenizer, r.birth),
                    address: compact_token(Domain::Address, &r.address),
                    loss: r.loss,
                    history: Box::new([]),
                };
                (r.resident_no, entry)
            })
            .collect(),
    );
    let master = VaccineMaster::default_master();
    for (encoding, error_rate, seed) in [
        (SampleEncoding::Utf8, 0.0, 31),
        (SampleEncoding::Cp932, 0.0, 32),
        (SampleEncoding::Cp932, 0.2, 33),
        (SampleEncoding::Utf8, 1.0, 34),
    ] {
        let spec = IntakeSpec {
            encoding,
            ..october_spec(5000, error_rate, seed)
        };
        let (records, kinds, stats) = generate(&residents, &spec);
        let header = Header::resolve(records[0].iter().map(String::as_str)).unwrap();
        let mut checker = Checker::new(header, &master, &register, &tokenizer, spec.today);
        let mut keys: HashSet<(u64, NaiveDate, String, u8)> = HashSet::new();
        let mut rejected = 0;
        for (i, (row, kind)) in records[1..].iter().zip(&kinds).enumerate() {
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            let found: Vec<&str> = match checker.check(&fields) {
                Ok(rec) => {
                    let key = (
                        rec.resident_no,
                        rec.vaccinated_on,
                        rec.vaccine.to_string(),
                        rec.exam.code(),
                    );
                    if keys.insert(key) {
                        vec![]
                    } else {
                        vec!["duplicate_in_file"]
                    }
                }
                Err(e) => {
                    rejected += 1;
                    let mut codes: Vec<&str> = e.issues.iter().map(|i| i.reason.code()).collect();
                    codes.dedup();
                    codes
                }
            };
            let expected: Vec<&str> = kind.iter().map(|k| k.code()).collect();
            assert_eq!(found, expected, "row {}: {row:?}", i + 1);
        }
        let duplicates = stats
            .injected
            .get("duplicate_in_file")
            .copied()
            .unwrap_or(0);
        assert_eq!(rejected, stats.injected_total() - duplicates);
    }
}
