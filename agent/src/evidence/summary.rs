//! The page an auditor reads first (概要): what the bundle holds for the period, each finding
//! with its runbook page, as HTML and as a PDF drawn by the certificates' renderer
//! (`kenko_cert::pdf::report`). Both come from the same [`sections`], so they say the same.

use kenko_cert::pdf::{PdfError, ReportSection};

use super::period::Period;
use super::MANIFEST;

/// One finding: what was seen, and the runbook page that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A passed check (shown as such), not something to act on.
    pub ok: bool,
    pub text: String,
    pub runbook: String,
}

/// (month, files loaded, files returned, rows accepted, rows rejected).
pub type LedgerMonth = (String, i64, i64, i64, i64);

/// What the summary says. Counts, staff ids, times and rule names only.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub period: Option<Period>,
    pub built_at: String,
    pub signer: String,
    pub certificates: usize,
    /// `verified`, `failed` or `absent`.
    pub certificate_chain: String,
    pub residency: usize,
    /// Alerts opened in the period.
    pub alerts: usize,
    /// `verified`, `tampered`, `failed` or `absent`.
    pub chain: String,
    /// (staff id, month, exports, export records, prints, print records).
    pub exports: Vec<(String, String, u64, u64, u64, u64)>,
    /// People in the roster, when there is one.
    pub roster: Option<usize>,
    /// (staff id, retired on, last access, accesses on or after retirement).
    pub retirements: Vec<(String, String, String, usize)>,
    /// (month, files loaded, files returned, rows accepted, rows rejected); None: no store.
    pub ledger: Option<Vec<LedgerMonth>>,
    pub findings: Vec<Finding>,
}

impl Summary {
    pub fn new(period: Period) -> Summary {
        Summary {
            period: Some(period),
            ..Default::default()
        }
    }
}

pub const TITLE_JA: &str = "特定個人情報の取扱いに関する証跡 概要";
pub const TITLE_EN: &str = "kenko evidence pack: summary for the inspection and the audit";

/// The statement at the top of both renderings.
fn statement(s: &Summary) -> String {
    let (from, to) = s
        .period
        .map(|p| (p.from.to_string(), p.to.to_string()))
        .unwrap_or_default();
    format!(
        "対象期間 Period: {from} 〜 {to} (Asia/Tokyo). 作成 Built: {} UTC. \
         署名鍵 Signed by: {}. この概要は証跡の一覧であり、証拠は {MANIFEST} \
         (全ファイルの SHA-256 と署名) とそこに記載された各ファイルです。検証: \
         kenko-agent evidence verify BUNDLE --public-key KEY. \
         This page is a rendering; the signed manifest and the files it lists are the evidence. \
         No personal value (My Number, name, birth date, address) is in this bundle.",
        s.built_at, s.signer
    )
}

fn verdict(result: &str) -> &'static str {
    match result {
        "verified" => "検証済み verified",
        "failed" => "検証失敗 FAILED",
        "tampered" => "改ざんあり TAMPERED",
        "absent" => "この機器になし none on this machine",
        _ => "-",
    }
}

/// The tables, with the runbook of each finding row.
pub fn sections(s: &Summary) -> Vec<(ReportSection, Vec<Option<String>>)> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut links = Vec::new();
    for f in &s.findings {
        rows.push((
            if f.ok { "可 OK" } else { "要確認 Finding" }.to_string(),
            format!("{} — runbook: {}", f.text, f.runbook),
        ));
        links.push(Some(f.runbook.clone()));
    }
    out.push((
        ReportSection {
            heading: "所見 Findings".into(),
            rows,
        },
        links,
    ));
    let plain = |heading: &str, rows: Vec<(String, String)>| {
        let n = rows.len();
        (
            ReportSection {
                heading: heading.into(),
                rows,
            },
            vec![None; n],
        )
    };
    out.push(plain(
        "収録内容 Contents",
        vec![
            (
                "消去証明書 Erasure certificates".into(),
                format!(
                    "{} (certificates/); 連鎖 chain: {}",
                    s.certificates,
                    verdict(&s.certificate_chain)
                ),
            ),
            (
                "居住性監査 Residency audits".into(),
                format!("{} (residency/)", s.residency),
            ),
            (
                "アクセス監視アラート Access alerts".into(),
                format!("{} opened (access/alerts.jsonl)", s.alerts),
            ),
            (
                "改ざん検知 Tamper evidence".into(),
                format!("{} (access/chain-verification.json)", verdict(&s.chain)),
            ),
            (
                "職員名簿 Staff roster".into(),
                match s.roster {
                    Some(n) => format!(
                        "{n} people; {} retirement(s) (access/roster-changes.json)",
                        s.retirements.len()
                    ),
                    None => "not configured on this machine".into(),
                },
            ),
            (
                "取込台帳 Intake ledger".into(),
                match &s.ledger {
                    Some(_) => "intake/ledger-summary.json".into(),
                    None => "no store on this machine".into(),
                },
            ),
        ],
    ));
    let mut rows: Vec<(String, String)> = s
        .exports
        .iter()
        .map(|(staff, month, e, er, p, pr)| {
            (
                format!("{staff} {month}"),
                format!("export {e} ({er} records), print {p} ({pr} records)"),
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push((
            "-".into(),
            "持ち出しなし no export or print recorded".into(),
        ));
    }
    out.push(plain(
        "持ち出し履歴 Exports and prints per staff id and month",
        rows,
    ));
    let mut rows: Vec<(String, String)> = s
        .retirements
        .iter()
        .map(|(id, on, last, after)| {
            (
                id.clone(),
                format!("退職日 retired on {on}; 最終アクセス last access {last}; 退職後のアクセス accesses after {after}"),
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push(("-".into(), "退職者なし no retirement".into()));
    }
    out.push(plain("職員名簿の変更 Retirements and end of access", rows));
    let mut rows: Vec<(String, String)> = s
        .ledger
        .iter()
        .flatten()
        .map(|(m, l, r, a, j)| {
            (
                m.clone(),
                format!(
                    "取込 loaded {l}, 返戻 returned {r} files; 受付 accepted {a}, 不受理 rejected {j} rows"
                ),
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push(("-".into(), "取込なし no intake in the period".into()));
    }
    out.push(plain("取込台帳 Intake ledger per month", rows));
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML page (UTF-8, self-contained, no script).
pub fn html(s: &Summary) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\n");
    o.push_str(&format!("<title>{}</title>\n", esc(TITLE_JA)));
    o.push_str("<style>body{font-family:\"Noto Sans CJK JP\",\"IPAexGothic\",sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.2em}th,td{border:1px solid #888;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee;width:16em}</style>\n</head><body>\n");
    o.push_str(&format!(
        "<h1>{}<br>{}</h1>\n<p>{}</p>\n",
        esc(TITLE_JA),
        esc(TITLE_EN),
        esc(&statement(s))
    ));
    for (section, links) in sections(s) {
        o.push_str(&format!("<h2>{}</h2><table>\n", esc(&section.heading)));
        for ((label, value), link) in section.rows.iter().zip(links) {
            let value = match link {
                Some(url) => {
                    let text = value
                        .rsplit_once(" — runbook: ")
                        .map_or(value.as_str(), |(t, _)| t);
                    format!(
                        "{} — <a href=\"{}\">{}</a>",
                        esc(text),
                        esc(&url),
                        esc(&url)
                    )
                }
                None => esc(value),
            };
            o.push_str(&format!(
                "<tr><th>{}</th><td>{value}</td></tr>\n",
                esc(label)
            ));
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

/// The A4 PDF, drawn with `font`.
pub fn pdf(s: &Summary, font: &[u8]) -> Result<Vec<u8>, PdfError> {
    let sections: Vec<ReportSection> = sections(s).into_iter().map(|(s, _)| s).collect();
    let period = s
        .period
        .map(|p| format!("{} – {}", p.from, p.to))
        .unwrap_or_default();
    kenko_cert::pdf::report(
        (TITLE_JA, TITLE_EN),
        &statement(s),
        &sections,
        (
            &format!("kenko evidence pack {period}"),
            &format!("signed manifest: {MANIFEST} — verify with kenko-agent evidence verify"),
        ),
        font,
    )
}
