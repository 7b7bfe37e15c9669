//! The draft as Japanese Markdown (people edit it in any editor, it reads as plain text, and
//! each item is pasted into the Commission's report form field by field) and as JSON (every
//! item with its value or null).

use std::fmt::Write as _;

use super::{Draft, Origin, Tristate, ITEMS, SECTIONS};

/// The mark of a blank people fill in.
pub const BLANK: &str = "【要記入】";

fn origin_label(o: Option<Origin>) -> &'static str {
    match o {
        Some(Origin::Alert) => "(kenko のアラートから記入)",
        Some(Origin::IncidentFile) => "(incident ファイルから記入)",
        None => "",
    }
}

/// The Markdown draft.
pub fn markdown(d: &Draft) -> String {
    let mut s = String::new();
    let dl = &d.deadlines;
    let _ = writeln!(s, "# 個人情報の漏えい等の報告(下書き)\n");
    let _ = writeln!(
        s,
        "> kenko-agent が kenko の記録(アラートの ID・規則・件数・時刻)と incident ファイルから作成した下書きです。\n\
         > {BLANK} の欄は担当者が事実を確認して記入してください。この下書きは事実を推測して埋めません。\n\
         > 個人の値(個人番号、氏名、生年月日、住所等)はこの報告に書かないでください。\n"
    );
    let _ = writeln!(s, "- 報告先: 個人情報保護委員会");
    let _ = writeln!(
        s,
        "- 報告の区分: 個人情報の保護に関する法律に基づく漏えい等の報告(行政機関等)。個人番号を含む場合は番号法に基づく特定個人情報の漏えい等の報告も行う。"
    );
    if let Some(id) = &d.incident_id {
        let _ = writeln!(s, "- 事案番号: {id}");
    }
    if let Some(id) = &d.alert_id {
        let _ = writeln!(s, "- kenko のアラート: {id}");
    }
    let _ = writeln!(s, "\n## 報告期限\n");
    let _ = writeln!(
        s,
        "発覚日: {}(この日を1日目として数える。日本時間)\n",
        dl.discovered_on
    );
    let _ = writeln!(s, "| 報告 | 期限 | 根拠 |\n|---|---|---|");
    let _ = writeln!(
        s,
        "| 速報 | {} を目標(遅くとも概ね {}) | 事態を知った後、速やかに(概ね3〜5日以内) |",
        dl.preliminary_target, dl.preliminary_outer
    );
    let (mark30, mark60) = match dl.improper_purpose {
        Tristate::No => ("(適用)", "(不適用)"),
        Tristate::Yes => ("(不適用)", "(適用)"),
        Tristate::Unknown => ("", ""),
    };
    let _ = writeln!(
        s,
        "| 確報(30日) | {}{mark30} | 事態を知った日から30日以内 |",
        dl.final_30
    );
    let _ = writeln!(
        s,
        "| 確報(60日) | {}{mark60} | 不正の目的をもって行われたおそれがある事態は60日以内 |",
        dl.final_60
    );
    match dl.final_deadline() {
        Some((days, date)) => {
            let _ = writeln!(s, "\n確報の期限: {date}({days}日以内)。");
        }
        None => {
            let _ = writeln!(
                s,
                "\n不正の目的の有無が未確定のため、確報期限は30日({})と60日({})の両方を示す。確定するまでは30日の期限を目標とする。",
                dl.final_30, dl.final_60
            );
        }
    }
    let _ = writeln!(
        s,
        "期限の日が閉庁日に当たる場合の扱いは反映していない(早い方の日付を示す)。"
    );
    for (n, heading) in SECTIONS {
        let _ = writeln!(s, "\n## {n}. {heading}");
        for item in d.items.iter().filter(|i| i.section == *n) {
            let _ = writeln!(s, "\n### {} {}\n", item.label, origin_label(item.origin));
            match &item.value {
                Some(v) if v.contains('\n') => {
                    for l in v.lines() {
                        let _ = writeln!(s, "- {l}");
                    }
                }
                Some(v) => {
                    let _ = writeln!(s, "{v}");
                }
                None => {
                    let _ = writeln!(s, "{BLANK}");
                }
            }
            if let Some(n) = &item.note {
                let _ = writeln!(s, "\n> {n}");
            }
        }
    }
    s
}

/// The JSON draft: every item (in `ITEMS` order) with its value or null.
pub fn json(d: &Draft) -> serde_json::Value {
    let dl = &d.deadlines;
    let items: Vec<serde_json::Value> = ITEMS
        .iter()
        .map(|(key, _, _)| {
            let i = d.item(key).expect("every item is built");
            serde_json::json!({
                "key": i.key,
                "section": i.section,
                "label": i.label,
                "value": i.value,
                "origin": i.origin,
                "blank": i.value.is_none(),
                "note": i.note,
            })
        })
        .collect();
    let final_deadline = dl
        .final_deadline()
        .map(|(days, date)| serde_json::json!({ "days": days, "date": date.to_string() }));
    serde_json::json!({
        "kind": "kenko-incident-report-draft",
        "version": 1,
        "authority": "個人情報保護委員会",
        "incident_id": d.incident_id,
        "alert_id": d.alert_id,
        "deadlines": {
            "discovered_at": dl.discovered_at.to_rfc3339(),
            "discovered_on": dl.discovered_on.to_string(),
            "preliminary_target": dl.preliminary_target.to_string(),
            "preliminary_outer": dl.preliminary_outer.to_string(),
            "final_30_days": dl.final_30.to_string(),
            "final_60_days": dl.final_60.to_string(),
            "improper_purpose": dl.improper_purpose,
            "final": final_deadline,
        },
        "items": items,
        "alert": d.alert,
    })
}
