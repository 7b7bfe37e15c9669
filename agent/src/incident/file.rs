//! The incident file: what people know of an incident, in TOML (documented in
//! `runbooks/incident-report.md`). Every field is optional but `discovered_at`; what is absent
//! stays a blank of the draft. Errors name the file, the line and the field and what was
//! expected, never the value; text that holds a 12-digit number (a My Number's shape) is
//! refused, so a report is never where a My Number is written down.

use std::path::Path;

use chrono::{DateTime, FixedOffset};

use super::exposure::DataItem;
use super::{IncidentError, Tristate};

/// An incident file, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentFile {
    pub id: Option<String>,
    pub alert: Option<String>,
    pub summary: Option<String>,
    pub discovered_at: Option<DateTime<FixedOffset>>,
    pub occurred_from: Option<DateTime<FixedOffset>>,
    pub occurred_to: Option<DateTime<FixedOffset>>,
    pub data_items: Option<Vec<DataItem>>,
    pub people: Option<u64>,
    pub people_estimate: Option<bool>,
    pub improper_purpose: Tristate,
    pub cause: Option<String>,
    pub secondary_damage: Option<String>,
    pub response_to_individuals: Option<String>,
    pub publication: Option<String>,
    pub prevention: Option<String>,
    pub other: Option<String>,
    pub entrusted: Option<String>,
    pub reportable: Option<String>,
}

/// The fields of `[incident]`: (name, what is expected).
pub const FIELDS: &[(&str, &str)] = &[
    ("id", "a string: the city's own reference"),
    ("alert", "a string: the kenko alert id (16 hexadecimal digits)"),
    ("summary", "a string: 事案の概要"),
    ("discovered_at", "an RFC 3339 time with its offset: 発覚日時 (required)"),
    ("occurred_from", "an RFC 3339 time with its offset: 発生日時 (from)"),
    ("occurred_to", "an RFC 3339 time with its offset: 発生日時 (to)"),
    (
        "data_items",
        "an array of item keys: my_number, name, sex, birth_date, address, atena_number, vaccination_record",
    ),
    ("people", "a non-negative integer: 本人の数"),
    ("people_estimate", "a boolean: whether `people` is an estimate"),
    ("improper_purpose", "one of \"yes\", \"no\", \"unknown\": 不正の目的の有無"),
    ("cause", "a string: 原因"),
    ("secondary_damage", "a string: 二次被害又はそのおそれの有無及びその内容"),
    ("response_to_individuals", "a string: 本人への対応の実施状況"),
    ("publication", "a string: 公表の実施状況"),
    ("prevention", "a string: 再発防止のための措置"),
    ("other", "a string: その他参考となる事項"),
    ("entrusted", "a string: 委託先の関与"),
    ("reportable", "a string: 報告対象事態の該当性"),
];

fn expected(field: &str) -> &'static str {
    FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, e)| *e)
        .unwrap_or("a known field")
}

/// The 1-based line where `key` is set (the first `key =` line), 0 when not found.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|n| n + 1)
        .unwrap_or(0)
}

/// Whether `s` has 12 digits in a row (ASCII or full-width): the shape of a My Number.
pub fn has_my_number_shape(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        if c.is_ascii_digit() || ('０'..='９').contains(&c) {
            run += 1;
            if run >= 12 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Reads and checks an incident file.
pub fn read(path: &Path) -> Result<IncidentFile, IncidentError> {
    let bytes = std::fs::read(path).map_err(|e| IncidentError::FileUnreadable {
        file: path.display().to_string(),
        error: e.kind().to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| IncidentError::FileInvalid {
        file: path.display().to_string(),
        line: 0,
        field: String::new(),
        expected: format!(
            "UTF-8 text (byte offset {} is not)",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses an incident file's text (`file` names it in errors).
pub fn parse(text: &str, file: &str) -> Result<IncidentFile, IncidentError> {
    let invalid = |line: usize, field: &str, expected: &str| IncidentError::FileInvalid {
        file: file.to_string(),
        line,
        field: field.to_string(),
        expected: expected.to_string(),
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // toml's message quotes the source line: only the line number is kept.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        invalid(line, "", "valid TOML")
    })?;
    for key in table.keys() {
        if key != "incident" {
            return Err(invalid(
                line_of(text, key),
                key,
                "only an [incident] table at the top level",
            ));
        }
    }
    let Some(toml::Value::Table(t)) = table.get("incident") else {
        return Err(invalid(0, "incident", "an [incident] table"));
    };
    let mut f = IncidentFile::default();
    for (key, value) in t {
        let line = line_of(text, key);
        let bad = || invalid(line, key, expected(key));
        let text_of = |v: &toml::Value| -> Result<String, IncidentError> {
            let s = v.as_str().ok_or_else(bad)?;
            if has_my_number_shape(s) {
                return Err(invalid(
                    line,
                    key,
                    "text without a 12-digit number (a My Number is never written in the report)",
                ));
            }
            Ok(s.trim().to_string())
        };
        let time_of = |v: &toml::Value| -> Result<DateTime<FixedOffset>, IncidentError> {
            let s = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Datetime(d) => d.to_string(),
                _ => return Err(bad()),
            };
            DateTime::parse_from_rfc3339(&s).map_err(|_| bad())
        };
        match key.as_str() {
            "id" => f.id = Some(text_of(value)?),
            "alert" => {
                let s = value.as_str().ok_or_else(bad)?;
                if !super::is_alert_id(s) {
                    return Err(bad());
                }
                f.alert = Some(s.to_string());
            }
            "summary" => f.summary = Some(text_of(value)?),
            "discovered_at" => f.discovered_at = Some(time_of(value)?),
            "occurred_from" => f.occurred_from = Some(time_of(value)?),
            "occurred_to" => f.occurred_to = Some(time_of(value)?),
            "data_items" => {
                let arr = value.as_array().ok_or_else(bad)?;
                let mut items = Vec::new();
                for v in arr {
                    let i = v.as_str().and_then(DataItem::from_key).ok_or_else(bad)?;
                    if !items.contains(&i) {
                        items.push(i);
                    }
                }
                items.sort();
                f.data_items = Some(items);
            }
            "people" => {
                let n = value.as_integer().filter(|n| *n >= 0).ok_or_else(bad)?;
                f.people = Some(n as u64);
            }
            "people_estimate" => f.people_estimate = Some(value.as_bool().ok_or_else(bad)?),
            "improper_purpose" => {
                f.improper_purpose = match value.as_str() {
                    Some("yes") => Tristate::Yes,
                    Some("no") => Tristate::No,
                    Some("unknown") => Tristate::Unknown,
                    _ => return Err(bad()),
                }
            }
            "cause" => f.cause = Some(text_of(value)?),
            "secondary_damage" => f.secondary_damage = Some(text_of(value)?),
            "response_to_individuals" => f.response_to_individuals = Some(text_of(value)?),
            "publication" => f.publication = Some(text_of(value)?),
            "prevention" => f.prevention = Some(text_of(value)?),
            "other" => f.other = Some(text_of(value)?),
            "entrusted" => f.entrusted = Some(text_of(value)?),
            "reportable" => f.reportable = Some(text_of(value)?),
            _ => {
                return Err(invalid(
                    line,
                    key,
                    "a known field (see runbooks/incident-report.md)",
                ))
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, String, String) {
        match parse(text, "inc.toml").unwrap_err() {
            IncidentError::FileInvalid {
                line,
                field,
                expected,
                ..
            } => (line, field, expected),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_full_file_is_read() {
        let f = parse(
            "[incident]\nid = \"INC-1\"\ndiscovered_at = \"2026-11-02T10:00:00+09:00\"\n\
             data_items = [\"name\", \"my_number\", \"name\"]\npeople = 12\nimproper_purpose = \"yes\"\n\
             cause = \"職員による持ち出し\"\n",
            "inc.toml",
        )
        .unwrap();
        assert_eq!(f.id.as_deref(), Some("INC-1"));
        assert_eq!(f.data_items, Some(vec![DataItem::MyNumber, DataItem::Name]));
        assert_eq!(f.people, Some(12));
        assert_eq!(f.improper_purpose, Tristate::Yes);
    }

    #[test]
    fn a_toml_datetime_is_a_time_too() {
        let f = parse(
            "[incident]\ndiscovered_at = 2026-11-02T10:00:00+09:00\n",
            "inc.toml",
        )
        .unwrap();
        assert_eq!(
            f.discovered_at.unwrap().to_rfc3339(),
            "2026-11-02T10:00:00+09:00"
        );
    }

    #[test]
    fn errors_name_line_and_field_never_the_value() {
        let (line, field, expected) = err("[incident]\n\npeople = \"SECRET-NAME\"\n");
        assert_eq!((line, field.as_str()), (3, "people"));
        assert!(expected.contains("integer"));
        let e = parse("[incident]\npeople = \"SECRET-NAME\"\n", "inc.toml").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let (line, field, _) = err("[incident]\ncolor = 1\n");
        assert_eq!((line, field.as_str()), (2, "color"));
        let (line, _, expected) = err("[incident]\nsummary = \"SECRET\n");
        assert_eq!(line, 2);
        assert_eq!(expected, "valid TOML");
        let (_, field, _) = err("[incident]\ndata_items = [\"shoe_size\"]\n");
        assert_eq!(field, "data_items");
        let (_, field, _) = err("[incident]\ndiscovered_at = \"yesterday\"\n");
        assert_eq!(field, "discovered_at");
        let (_, field, _) = err("[incident]\nimproper_purpose = \"maybe\"\n");
        assert_eq!(field, "improper_purpose");
        let (_, field, _) = err("top = 1\n");
        assert_eq!(field, "top");
    }

    #[test]
    fn a_my_number_in_text_is_refused() {
        let (_, field, expected) = err("[incident]\ncause = \"番号 123456789012 が\"\n");
        assert_eq!(field, "cause");
        assert!(expected.contains("12-digit"));
        assert!(has_my_number_shape("１２３４５６７８９０１２"));
        assert!(!has_my_number_shape("2026-11-02 10:00 412 人"));
    }
}
