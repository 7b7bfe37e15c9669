//! A printable rendering of a verified certificate for people (HTML, UTF-8, so Japanese names
//! and organisations appear as written). Generated from the signed JSON, which stays the
//! evidence: the page says so and carries the file's SHA-256. The PDF (`crate::pdf`) is drawn
//! from the same `sections`, so both carry the same content.

use crate::{Certificate, Person, Verified};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // A verified certificate holds none; shown, never obeyed, should one get here.
            c => match crate::text::visible(c) {
                Some(shown) => out.push_str(&shown),
                None => out.push(c),
            },
        }
    }
    out
}

fn row(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!(
        "<tr><th>{}</th><td>{}</td></tr>\n",
        esc(label),
        esc(value)
    ));
}

/// One table of the rendering: a heading and its (label, value) rows. The HTML page and the
/// PDF (`crate::pdf`) are both drawn from these, so they carry the same content.
pub(crate) struct Section {
    pub heading: String,
    pub rows: Vec<(&'static str, String)>,
}

/// The title, in Japanese and English.
pub(crate) const TITLE_JA: &str = "データ消去証明書";
pub(crate) const TITLE_EN: &str = "Certificate of Sanitization (NIST SP 800-88 Rev.1 Appendix G)";

fn person(rows: &mut Vec<(&'static str, String)>, p: &Person) {
    rows.push(("氏名 Name", p.name.clone()));
    rows.push(("役職 Title", p.title.clone()));
    rows.push(("所属 Organization", p.organization.clone()));
    rows.push(("所在地 Location", p.location.clone()));
    rows.push(("電話 Phone", p.phone.clone()));
}

/// Every Appendix G field and kenko's evidence, table by table.
pub(crate) fn sections(c: &Certificate) -> Vec<Section> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    person(&mut rows, &c.sanitized_by);
    out.push(Section {
        heading: "消去実施者 Person Performing Sanitization".into(),
        rows,
    });
    let s = &c.sanitization;
    out.push(Section {
        heading: "消去の詳細 Sanitization Details".into(),
        rows: vec![
            ("Method Type", s.method_type.to_string()),
            ("Method Used", s.method_used.clone()),
            ("Method Details", s.method_details.clone()),
            (
                "Tool Used (version)",
                format!("{} {}", s.tool, s.tool_version),
            ),
            ("Verification Method", s.verification_method.to_string()),
            (
                "Post-Sanitization Classification",
                s.post_sanitization_classification.clone(),
            ),
            ("Notes", s.notes.clone()),
            ("Media Destination", c.media_destination.clone()),
            ("Job", c.job_id.clone()),
            (
                "Started / Finished (UTC)",
                format!("{} / {}", c.started_at, c.finished_at),
            ),
            ("Resumptions", c.resumptions.to_string()),
            (
                "Host / Agent",
                format!("{} / kenko-agent {}", c.host, c.agent_version),
            ),
            (
                "Chain",
                format!(
                    "sequence {}, previous {}",
                    c.sequence,
                    c.previous_sha256.as_deref().unwrap_or("(first)")
                ),
            ),
        ],
    });
    for (i, t) in c.targets.iter().enumerate() {
        let mut rows = vec![
            ("Target", t.spec.clone()),
            ("Manufacturer", t.media.manufacturer.clone()),
            ("Model", t.media.model.clone()),
            ("Serial Number", t.media.serial_number.clone()),
            ("Property Number", t.media.property_number.clone()),
            ("Media Type", t.media.media_type.clone()),
            ("Source", t.media.source.clone()),
            ("Classification", t.media.classification.clone()),
            (
                "Data Backed Up",
                if t.media.backed_up {
                    format!("yes: {}", t.media.backup_location)
                } else {
                    "no".into()
                },
            ),
            (
                "Bytes / Objects Erased",
                format!("{} / {}", t.bytes_erased, t.objects_erased),
            ),
            (
                "Verification",
                format!(
                    "{} — {} ({} bytes, {} locations checked) {}",
                    t.verification.method,
                    if t.verification.passed {
                        "passed"
                    } else {
                        "FAILED"
                    },
                    t.verification.bytes_checked,
                    t.verification.locations_checked,
                    t.verification.details
                ),
            ),
        ];
        for b in &t.blocked {
            rows.push((
                "Blocked (not erased)",
                format!(
                    "{} — {} {}",
                    b.item,
                    b.reason,
                    b.until.as_deref().unwrap_or("")
                ),
            ));
        }
        out.push(Section {
            heading: format!("媒体 {} Media Information", i + 1),
            rows,
        });
    }
    let mut rows = Vec::new();
    if let Some(sig) = &c.signature {
        rows.push(("Signed at (UTC)", sig.signed_at.clone()));
        rows.push(("Public key", sig.public_key.clone()));
    }
    out.push(Section {
        heading: "署名 Signature".into(),
        rows,
    });
    let mut rows = Vec::new();
    match &c.validation {
        Some(val) => {
            person(&mut rows, &val.person);
            rows.push(("Signed at (UTC)", val.signature.signed_at.clone()));
            rows.push(("Public key", val.signature.public_key.clone()));
        }
        None => rows.push(("Validation", "not yet validated".into())),
    }
    out.push(Section {
        heading: "検証者 Validation".into(),
        rows,
    });
    out
}

/// The HTML page of a verified certificate.
pub fn html(v: &Verified) -> String {
    let c: &Certificate = &v.certificate;
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\n");
    o.push_str(&format!(
        "<title>{TITLE_JA} Certificate of Sanitization — {}</title>\n",
        esc(&c.job_id)
    ));
    o.push_str("<style>body{font-family:\"Noto Sans CJK JP\",\"IPAexGothic\",sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.2em}th,td{border:1px solid #888;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee;width:16em}</style>\n</head><body>\n");
    o.push_str(&format!("<h1>{TITLE_JA}<br>{TITLE_EN}</h1>\n"));
    o.push_str(&format!(
        "<p><strong>検証済み Verified</strong>: signature by <code>{}</code>{}; file SHA-256 <code>{}</code>. \
         This page is a rendering; the signed JSON file is the evidence.</p>\n",
        esc(&v.signer),
        v.validated_by
            .as_ref()
            .map(|k| format!(", validated by <code>{}</code>", esc(k)))
            .unwrap_or_else(|| ", <strong>not yet validated by a second person</strong>".into()),
        esc(&v.sha256)
    ));
    for s in sections(c) {
        o.push_str(&format!("<h2>{}</h2><table>\n", esc(&s.heading)));
        for (label, value) in &s.rows {
            row(&mut o, label, value);
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}
