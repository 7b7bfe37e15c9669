//! The draft of the report of a personal data incident (漏えい等) to the Personal Information
//! Protection Commission (個人情報保護委員会), and for 特定個人情報 under the My Number Act.
//!
//! A draft is built from an access-monitor alert (its record in the alert file: rule,
//! severity, actor id, stack, window, counts, runbook), from an incident file people write
//! (`file.rs`), or both (the file's fields win). It has every item of the 速報 and the 確報
//! (`ITEMS`); what kenko's records do not know stays a blank marked 【要記入】, never a guess.
//! Deadlines are counted from the 発覚日時 in Asia/Tokyo. No personal value is in it: the
//! alert carries ids, counts and times only, and the incident file's text is refused when it
//! holds a My Number's shape.
//!
//! `exposure.rs` is the one mapping from an alert's rule to the items of personal data at
//! risk; `render.rs` writes the Markdown and the JSON; `cli.rs` is `kenko-agent incident`.

pub mod cli;
pub mod exposure;
pub mod file;
pub mod render;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Days, FixedOffset, NaiveDate};

use crate::access::output::AlertRecord;
use exposure::{exposure, Exposure, Likelihood};
use file::IncidentFile;

/// What went wrong; each variant has a stable `reason()` (in `FAILURE_REASONS` and
/// `runbooks/incident-report.md`). Messages name files, lines, fields and ids, never a value.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no alert with id {id} in the alert file {file} ({lines} line(s) read)")]
    AlertUnknown {
        id: String,
        file: String,
        lines: usize,
    },
    #[error("the alert id given is not one (an alert id is 16 hexadecimal digits, as in the alert file or `access check --json`)")]
    AlertIdInvalid,
    #[error("cannot read the alert file {file}: {error}")]
    AlertFileUnreadable { file: String, error: String },
    #[error("cannot read the incident file {file}: {error}")]
    FileUnreadable { file: String, error: String },
    #[error("the incident file {file} is invalid: {}{}expected {expected}", if *line > 0 { format!("line {line}: ") } else { String::new() }, if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
    FileInvalid {
        file: String,
        /// 1-based; 0 when no line can be named.
        line: usize,
        field: String,
        expected: String,
    },
    #[error("cannot write the draft to {file}: {error}")]
    Output { file: String, error: String },
    #[error("{0}")]
    Settings(String),
}

impl IncidentError {
    pub fn reason(&self) -> &'static str {
        match self {
            IncidentError::AlertUnknown { .. } | IncidentError::AlertIdInvalid => {
                "incident_alert_unknown"
            }
            IncidentError::AlertFileUnreadable { .. } => "incident_alert_file_unreadable",
            IncidentError::FileUnreadable { .. } => "incident_file_unreadable",
            IncidentError::FileInvalid { .. } => "incident_file_invalid",
            IncidentError::Output { .. } => "incident_output_failed",
            IncidentError::Settings(_) => "config_invalid",
        }
    }
}

/// Every reason this module's errors carry.
pub const REASONS: &[&str] = &[
    "incident_alert_unknown",
    "incident_alert_file_unreadable",
    "incident_file_unreadable",
    "incident_file_invalid",
    "incident_output_failed",
];

/// Yes, no, or not known yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tristate {
    Yes,
    No,
    #[default]
    Unknown,
}

/// Whether `s` has the shape of an alert id (`access::output::alert_id`: 8 bytes in hex).
pub fn is_alert_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Asia/Tokyo (no daylight saving time).
pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is an offset")
}

/// Every item of the draft: (key, section number, label). Sections 1-9 are the items of the
/// 速報 and the 確報 (施行規則: 概要, 項目, 本人の数, 原因, 二次被害, 本人への対応, 公表, 再発防止,
/// その他); the 概要 has the 発覚日時, 発生日時 and the rest of what the Commission's form asks.
pub const ITEMS: &[(&str, u8, &str)] = &[
    ("summary", 1, "事案の概要"),
    ("discovered_at", 1, "発覚日時"),
    ("occurred_at", 1, "発生日時"),
    ("detection", 1, "発覚の経緯(kenko のアクセス監視の検知)"),
    ("reportable", 1, "報告対象事態の該当性"),
    ("entrusted", 1, "委託先の関与"),
    (
        "data_items",
        2,
        "漏えい等が発生し又は発生したおそれがある個人情報の項目",
    ),
    (
        "specific_personal_information",
        2,
        "特定個人情報(個人番号を含む個人情報)の該当性",
    ),
    (
        "people",
        3,
        "漏えい等が発生し又は発生したおそれがある個人情報に係る本人の数",
    ),
    ("cause", 4, "原因"),
    (
        "improper_purpose",
        4,
        "不正の目的をもって行われたおそれの有無",
    ),
    (
        "secondary_damage",
        5,
        "二次被害又はそのおそれの有無及びその内容",
    ),
    ("response_to_individuals", 6, "本人への対応の実施状況"),
    ("publication", 7, "公表の実施状況"),
    ("prevention", 8, "再発防止のための措置"),
    ("other", 9, "その他参考となる事項"),
];

/// The sections: (number, heading).
pub const SECTIONS: &[(u8, &str)] = &[
    (1, "概要"),
    (2, "漏えい等が発生し又は発生したおそれがある個人情報の項目"),
    (3, "本人の数"),
    (4, "原因"),
    (5, "二次被害又はそのおそれの有無及びその内容"),
    (6, "本人への対応の実施状況"),
    (7, "公表の実施状況"),
    (8, "再発防止のための措置"),
    (9, "その他参考となる事項"),
];

/// Where an item's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// kenko's alert record.
    Alert,
    /// The incident file people wrote.
    IncidentFile,
}

/// One item: its value when known (None: a blank for people to fill in).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub key: &'static str,
    pub section: u8,
    pub label: &'static str,
    pub value: Option<String>,
    pub origin: Option<Origin>,
    /// What kenko adds: how the value was found, or what to fill in.
    pub note: Option<String>,
}

/// The report's deadlines, from the 発覚日時.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Deadlines {
    /// The 発覚日時, Asia/Tokyo.
    pub discovered_at: DateTime<FixedOffset>,
    /// Its day in Asia/Tokyo: day 1 of the count.
    pub discovered_on: NaiveDate,
    /// 速報: 速やかに; the target, 3 days after the 発覚日.
    pub preliminary_target: NaiveDate,
    /// 速報: the outer end of the Commission's 概ね3-5日.
    pub preliminary_outer: NaiveDate,
    /// 確報 within 30 days (the 発覚日 counted as day 1).
    pub final_30: NaiveDate,
    /// 確報 within 60 days, when the leak was by an improper purpose.
    pub final_60: NaiveDate,
    pub improper_purpose: Tristate,
}

impl Deadlines {
    pub fn from(discovered_at: DateTime<FixedOffset>, improper_purpose: Tristate) -> Deadlines {
        let at = discovered_at.with_timezone(&jst());
        let day = at.date_naive();
        let plus = |n: u64| day.checked_add_days(Days::new(n)).unwrap_or(NaiveDate::MAX);
        Deadlines {
            discovered_at: at,
            discovered_on: day,
            preliminary_target: plus(3),
            preliminary_outer: plus(5),
            final_30: plus(29),
            final_60: plus(59),
            improper_purpose,
        }
    }

    /// The 確報 deadline that applies; None while the purpose is unknown (both are shown).
    pub fn final_deadline(&self) -> Option<(u32, NaiveDate)> {
        match self.improper_purpose {
            Tristate::Yes => Some((60, self.final_60)),
            Tristate::No => Some((30, self.final_30)),
            Tristate::Unknown => None,
        }
    }
}

/// An alert as the alert file has it: its first line (when it opened) and its last (the final
/// counts when it resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertHistory {
    pub first: AlertRecord,
    pub last: AlertRecord,
    /// Whether a `firing` line was written (the monitor's detection); `access check --json`
    /// writes only `resolved` lines.
    pub fired: bool,
}

/// Finds alert `id` in a JSON-lines alert file (the monitor's, or `access check --json`'s).
pub fn find_alert(path: &Path, id: &str) -> Result<AlertHistory, IncidentError> {
    if !is_alert_id(id) {
        return Err(IncidentError::AlertIdInvalid);
    }
    let text = std::fs::read(path).map_err(|e| IncidentError::AlertFileUnreadable {
        file: path.display().to_string(),
        error: e.kind().to_string(),
    })?;
    let mut found: Vec<AlertRecord> = Vec::new();
    let mut lines = 0;
    for line in text.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        // A torn last line (a crash mid-append) is not an alert; the monitor cuts it off.
        if let Ok(r) = serde_json::from_slice::<AlertRecord>(line) {
            if r.id.eq_ignore_ascii_case(id) {
                found.push(r);
            }
        }
    }
    let (Some(first), Some(last)) = (found.first(), found.last()) else {
        return Err(IncidentError::AlertUnknown {
            id: id.to_ascii_lowercase(),
            file: path.display().to_string(),
            lines,
        });
    };
    let mut last = last.clone();
    // The highest count and the latest end over every line of the alert.
    for r in &found {
        last.count = last.count.max(r.count);
        last.firings = last.firings.max(r.firings);
        if r.window_end > last.window_end {
            last.window_end = r.window_end.clone();
        }
    }
    Ok(AlertHistory {
        first: first.clone(),
        fired: found.iter().any(|r| !r.resolved()),
        last,
    })
}

fn alert_time(a: &str, file: &Path) -> Result<DateTime<FixedOffset>, IncidentError> {
    DateTime::parse_from_rfc3339(a)
        .map(|t| t.with_timezone(&jst()))
        .map_err(|_| IncidentError::AlertFileUnreadable {
            file: file.display().to_string(),
            error: "the alert's window is not an RFC 3339 time".into(),
        })
}

/// A time as the report writes it.
pub fn jst_text(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&jst())
        .format("%Y-%m-%d %H:%M:%S (日本時間)")
        .to_string()
}

/// What the draft is built from.
#[derive(Debug, Default)]
pub struct Sources {
    pub alert: Option<(PathBuf, AlertHistory)>,
    pub file: Option<(PathBuf, IncidentFile)>,
}

/// The draft.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Draft {
    pub alert_id: Option<String>,
    pub incident_id: Option<String>,
    pub items: Vec<Item>,
    pub deadlines: Deadlines,
    /// The alert as kenko recorded it (ids, counts, times).
    pub alert: Option<AlertRecord>,
}

impl Draft {
    pub fn item(&self, key: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.key == key)
    }
}

fn text(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// Builds the draft: the incident file's values where it has them, then what the alert
/// knows, then blanks.
pub fn build(src: &Sources) -> Result<Draft, IncidentError> {
    let file = src.file.as_ref().map(|(_, f)| f);
    let alert = src.alert.as_ref();
    let (from_file, alert_fields) = (file.cloned().unwrap_or_default(), alert);
    let ex: Option<Exposure> = alert.map(|(_, a)| exposure(&a.last.rule, &a.last.detail));

    // 発覚日時: the file's, or the alert's detection.
    let detected = match alert {
        Some((path, a)) => {
            let t = if a.fired {
                alert_time(&a.first.window_end, path)?
            } else {
                alert_time(&a.first.window_start, path)?
            };
            Some(t)
        }
        None => None,
    };
    let discovered = match (from_file.discovered_at, detected) {
        (Some(t), _) => (t.with_timezone(&jst()), Origin::IncidentFile),
        (None, Some(t)) => (t, Origin::Alert),
        (None, None) => {
            let path = src
                .file
                .as_ref()
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_default();
            return Err(IncidentError::FileInvalid {
                file: path,
                line: 0,
                field: "discovered_at".into(),
                expected:
                    "the 発覚日時 (an RFC 3339 time with its offset), required without --alert"
                        .into(),
            });
        }
    };
    let deadlines = Deadlines::from(discovered.0, from_file.improper_purpose);

    let mut items = Vec::new();
    let mut push =
        |key: &'static str, value: Option<String>, origin: Option<Origin>, note: Option<String>| {
            let (_, section, label) = ITEMS
                .iter()
                .find(|(k, _, _)| *k == key)
                .copied()
                .expect("every item is in ITEMS");
            let origin = value.as_ref().and(origin);
            items.push(Item {
                key,
                section,
                label,
                value,
                origin,
                note,
            });
        };
    let from = |v: Option<String>| {
        let o = v.as_ref().map(|_| Origin::IncidentFile);
        (v, o)
    };

    // 1. 概要
    let (v, o) = from(text(&from_file.summary));
    push(
        "summary",
        v,
        o,
        Some("何が起きたかを事実のみで記入する(いつ、誰が、何を、どうしたか、発見者、事実経過)。個人の氏名・個人番号等は書かない。".into()),
    );
    push(
        "discovered_at",
        Some(deadlines.discovered_at.to_rfc3339()),
        Some(discovered.1),
        Some(match discovered.1 {
            Origin::IncidentFile => "incident ファイルの discovered_at。報告期限はこの日を1日目として数える。".into(),
            Origin::Alert if alert.is_some_and(|(_, a)| a.fired) => "kenko のアクセス監視がアラートを発した時刻(閾値を超えた事象の時刻)。組織として事態を知った日時が異なる場合は incident ファイルの discovered_at で上書きする。".into(),
            Origin::Alert => "アラートの発火記録がないため、アラート期間の始まり(最も早い可能性)を採った。実際に知った日時を incident ファイルの discovered_at で記入する。".into(),
        }),
    );
    match (from_file.occurred_from, from_file.occurred_to, alert_fields) {
        (Some(_), _, _) | (_, Some(_), _) => {
            let side = |t: Option<DateTime<FixedOffset>>| t.map(jst_text).unwrap_or_else(|| "【要記入】".into());
            push(
                "occurred_at",
                Some(format!("{} 〜 {}", side(from_file.occurred_from), side(from_file.occurred_to))),
                Some(Origin::IncidentFile),
                None,
            );
        }
        (None, None, Some((path, a))) => {
            let start = alert_time(&a.first.window_start, path)?;
            let end = alert_time(&a.last.window_end, path)?;
            push(
                "occurred_at",
                Some(format!("{} 〜 {}", jst_text(start), jst_text(end))),
                Some(Origin::Alert),
                Some("アラートの期間(規則の時間窓の始まりから最後の事象まで)。これより前から発生していた可能性があるため、アクセスログで確認する。".into()),
            );
        }
        (None, None, None) => push(
            "occurred_at",
            None,
            None,
            Some("発生した日時(又は期間)を記入する。不明なら「不明」と書き、判明した時点で確報に記入する。".into()),
        ),
    }
    match alert {
        Some((path, a)) => {
            let r = &a.last;
            let mut lines = vec![
                format!("アラート ID: {}", r.id),
                format!("規則: {} (重大度 {})", r.rule, r.severity),
                format!("内容: {}", r.detail),
                format!("操作者 ID(職員又は主体の ID): {}", r.actor),
            ];
            if !r.stack.is_empty() {
                lines.push(format!("対象スタック: {}", r.stack));
            }
            lines.push(format!(
                "期間: {} 〜 {}",
                jst_text(alert_time(&a.first.window_start, path)?),
                jst_text(alert_time(&r.window_end, path)?)
            ));
            lines.push(format!(
                "件数: {}({})、閾値 {}、発火回数 {}",
                r.count,
                ex.as_ref().map(|e| e.count.what()).unwrap_or(""),
                r.threshold,
                r.firings
            ));
            lines.push(format!(
                "状態: {}",
                if r.resolved() {
                    "resolved(終了、最終の件数)"
                } else {
                    "firing(継続中)"
                }
            ));
            lines.push(format!("runbook: {}", r.runbook_url));
            push(
                "detection",
                Some(lines.join("\n")),
                Some(Origin::Alert),
                Some(format!("アラートファイル {} の記録から。", path.display())),
            );
        }
        None => push(
            "detection",
            None,
            None,
            Some(
                "どのように発覚したか(監視の検知、職員の報告、外部からの連絡等)を記入する。".into(),
            ),
        ),
    }
    let reportable_note = {
        let mut n = String::from("該当する事態を記入する: 要配慮個人情報の漏えい等、不正の目的をもって行われたおそれがある漏えい等、財産的被害のおそれ、本人の数が100人を超える漏えい等(行政機関等)、条例要配慮個人情報(地方公共団体)、特定個人情報の重大な事態(番号法)。");
        if let (Some((_, a)), Some(e)) = (alert, &ex) {
            if e.count.estimate(a.last.count).is_some() && a.last.count > 100 {
                n.push_str(&format!(
                    " kenko の件数({})からは本人の数が100人を超えるおそれがある(要確認)。",
                    a.last.count
                ));
            }
        }
        n
    };
    let (v, o) = from(text(&from_file.reportable));
    push("reportable", v, o, Some(reportable_note));
    let (v, o) = from(text(&from_file.entrusted));
    push(
        "entrusted",
        v,
        o,
        Some(
            "委託先(ASP・運用事業者等)が関与したか、委託元・委託先の名称と役割を記入する。".into(),
        ),
    );

    // 2. 項目
    match (&from_file.data_items, &ex) {
        (Some(list), _) => {
            let v = if list.is_empty() {
                "なし".to_string()
            } else {
                list.iter()
                    .map(|i| i.label())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            push("data_items", Some(v), Some(Origin::IncidentFile), None);
        }
        (None, Some(e)) if !e.items.is_empty() => {
            let v = e
                .items
                .iter()
                .map(|(i, l)| format!("{}: {}", i.label(), l.label()))
                .collect::<Vec<_>>()
                .join("\n");
            push(
                "data_items",
                Some(v),
                Some(Origin::Alert),
                Some(format!(
                    "アラートの規則から見た対象: {}。{} 「要確認」の項目は確認のうえ確定させる。",
                    e.source, e.note
                )),
            );
        }
        (None, Some(e)) => push(
            "data_items",
            None,
            None,
            Some(format!(
                "kenko の記録では個人情報の閲覧等は検知されていない: {}",
                e.note
            )),
        ),
        (None, None) => push(
            "data_items",
            None,
            None,
            Some("項目を記入する(例: 氏名、生年月日、住所、個人番号、予防接種記録)。".into()),
        ),
    }
    let my_number = match (&from_file.data_items, &ex) {
        (Some(list), _) => Some(if list.contains(&exposure::DataItem::MyNumber) {
            (Likelihood::Likely, Origin::IncidentFile)
        } else {
            (Likelihood::Possible, Origin::IncidentFile)
        }),
        (None, Some(e)) => e.my_number().map(|l| (l, Origin::Alert)),
        (None, None) => None,
    };
    match my_number {
        Some((Likelihood::Likely, o)) => push(
            "specific_personal_information",
            Some("該当する(個人番号を含む)。番号法に基づく報告(特定個人情報の漏えい等)も要する。".into()),
            Some(o),
            Some("個人情報の保護に関する法律による報告とあわせて、特定個人情報の漏えい等に関する報告として個人情報保護委員会へ報告する。".into()),
        ),
        Some((Likelihood::Possible, Origin::IncidentFile)) => push(
            "specific_personal_information",
            Some("該当しない(個人番号を含まない)".into()),
            Some(Origin::IncidentFile),
            None,
        ),
        Some((Likelihood::Possible, _)) => push(
            "specific_personal_information",
            None,
            None,
            Some("個人番号が含まれたか確認して記入する(画面・帳票・ファイルに個人番号が表示・出力されたか)。含まれるなら番号法に基づく報告も要する。".into()),
        ),
        None => push(
            "specific_personal_information",
            None,
            None,
            Some("個人番号が含まれたか記入する。含まれるなら番号法に基づく報告も要する。".into()),
        ),
    }

    // 3. 本人の数
    match (from_file.people, alert, &ex) {
        (Some(n), _, _) => push(
            "people",
            Some(if from_file.people_estimate.unwrap_or(false) {
                format!("約 {n} 人(概数)")
            } else {
                format!("{n} 人")
            }),
            Some(Origin::IncidentFile),
            None,
        ),
        (None, Some((_, a)), Some(e)) => {
            let est = e.count.estimate(a.last.count);
            let note = match &est {
                Some(_) => "kenko が数えられるのは件数であり、本人の一覧ではない。確定した数は確報で記入する。".to_string(),
                None => format!(
                    "アラートの件数 {} は{}であり、本人の数の推計にならない。アクセスログ等で確認して記入する。",
                    a.last.count,
                    e.count.what()
                ),
            };
            let o = est.as_ref().map(|_| Origin::Alert);
            push("people", est, o, Some(note));
        }
        _ => push(
            "people",
            None,
            None,
            Some("本人の数を記入する(不明なら概数と「以上」等を付す)。".into()),
        ),
    }

    // 4. 原因
    let (v, o) = from(text(&from_file.cause));
    push(
        "cause",
        v,
        o,
        Some(
            "原因(人為的な誤り、不正アクセス、内部不正等)と、判明している範囲の事実を記入する。"
                .into(),
        ),
    );
    let purpose = match from_file.improper_purpose {
        Tristate::Yes => Some("あり(不正アクセス、内部不正による持ち出し等、不正の目的をもって行われたおそれ): 確報は60日以内".to_string()),
        Tristate::No => Some("なし: 確報は30日以内".to_string()),
        Tristate::Unknown => None,
    };
    let o = purpose.as_ref().map(|_| Origin::IncidentFile);
    push(
        "improper_purpose",
        purpose,
        o,
        Some("不正の目的をもって行われたおそれがあるかを記入する(incident ファイルの improper_purpose)。未確定の間、確報期限は30日と60日の両方を示す。".into()),
    );

    // 5-8.
    for (key, value, note) in [
        (
            "secondary_damage",
            &from_file.secondary_damage,
            "二次被害(なりすまし、詐欺の連絡、不正利用等)又はそのおそれの有無と内容を記入する。",
        ),
        (
            "response_to_individuals",
            &from_file.response_to_individuals,
            "本人への通知の実施状況(通知済みの人数、方法、予定日)を記入する。",
        ),
        (
            "publication",
            &from_file.publication,
            "公表の実施状況(公表の有無、日付、方法)を記入する。",
        ),
        (
            "prevention",
            &from_file.prevention,
            "講じた又は講じる予定の再発防止の措置を記入する。",
        ),
    ] {
        let (v, o) = from(text(value));
        push(key, v, o, Some(note.into()));
    }

    // 9. その他
    let mut other_note = String::from("その他参考となる事項を記入する。");
    if let Some((path, a)) = alert {
        other_note.push_str(&format!(
            " kenko の記録: アラートファイル {}(アラート {})、対応手順 {}。アクセスログが改ざんされていないことは `kenko-agent audit-log verify` で確認できる。",
            path.display(),
            a.last.id,
            a.last.runbook_url
        ));
    }
    let (v, o) = from(text(&from_file.other));
    push("other", v, o, Some(other_note));

    debug_assert_eq!(items.len(), ITEMS.len());
    Ok(Draft {
        alert_id: alert.map(|(_, a)| a.last.id.clone()),
        incident_id: from_file.id.clone(),
        items,
        deadlines,
        alert: alert.map(|(_, a)| a.last.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn deadlines_count_from_the_discovery_day_in_tokyo() {
        // 20:00 UTC on the 1st is 05:00 on the 2nd in Tokyo.
        let t = DateTime::parse_from_rfc3339("2026-11-01T20:00:00Z").unwrap();
        let dl = Deadlines::from(t, Tristate::Unknown);
        assert_eq!(dl.discovered_on, d("2026-11-02"));
        assert_eq!(dl.preliminary_target, d("2026-11-05"));
        assert_eq!(dl.preliminary_outer, d("2026-11-07"));
        assert_eq!(dl.final_30, d("2026-12-01"));
        assert_eq!(dl.final_60, d("2026-12-31"));
        assert_eq!(dl.final_deadline(), None);
        assert_eq!(
            Deadlines::from(t, Tristate::No).final_deadline(),
            Some((30, d("2026-12-01")))
        );
        assert_eq!(
            Deadlines::from(t, Tristate::Yes).final_deadline(),
            Some((60, d("2026-12-31")))
        );
    }

    #[test]
    fn alert_ids_are_sixteen_hex_digits() {
        assert!(is_alert_id("0123456789abcdef"));
        assert!(!is_alert_id("0123456789abcde"));
        assert!(!is_alert_id("0123456789abcdeg"));
    }

    #[test]
    fn a_file_without_a_discovery_time_and_no_alert_is_refused() {
        let f = file::parse("[incident]\nsummary = \"x\"\n", "inc.toml").unwrap();
        let e = build(&Sources {
            alert: None,
            file: Some((PathBuf::from("inc.toml"), f)),
        })
        .unwrap_err();
        assert_eq!(e.reason(), "incident_file_invalid");
        assert!(e.to_string().contains("discovered_at"), "{e}");
    }

    #[test]
    fn every_item_is_built_and_blanks_have_no_origin() {
        let f = file::parse(
            "[incident]\ndiscovered_at = \"2026-11-02T10:00:00+09:00\"\n",
            "inc.toml",
        )
        .unwrap();
        let draft = build(&Sources {
            alert: None,
            file: Some((PathBuf::from("inc.toml"), f)),
        })
        .unwrap();
        let keys: Vec<_> = draft.items.iter().map(|i| i.key).collect();
        let want: Vec<_> = ITEMS.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, want);
        for i in &draft.items {
            assert_eq!(i.value.is_none(), i.origin.is_none(), "{}", i.key);
        }
        assert!(draft.item("cause").unwrap().value.is_none());
    }

    #[test]
    fn every_reason_is_listed() {
        let errors = [
            IncidentError::AlertIdInvalid,
            IncidentError::AlertUnknown {
                id: String::new(),
                file: String::new(),
                lines: 0,
            },
            IncidentError::AlertFileUnreadable {
                file: String::new(),
                error: String::new(),
            },
            IncidentError::FileUnreadable {
                file: String::new(),
                error: String::new(),
            },
            IncidentError::FileInvalid {
                file: String::new(),
                line: 0,
                field: String::new(),
                expected: String::new(),
            },
            IncidentError::Output {
                file: String::new(),
                error: String::new(),
            },
        ];
        for e in errors {
            assert!(REASONS.contains(&e.reason()), "{}", e.reason());
        }
    }
}
