//! A printable rendering of a verified certificate for people (HTML, UTF-8, so Japanese names
//! and organisations appear as written). Generated from the signed JSON, which stays the
//! evidence: the page says so and carries the file's SHA-256.

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
            c => out.push(c),
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

fn person(out: &mut String, p: &Person) {
    row(out, "氏名 Name", &p.name);
    row(out, "役職 Title", &p.title);
    row(out, "所属 Organization", &p.organization);
    row(out, "所在地 Location", &p.location);
    row(out, "電話 Phone", &p.phone);
}

/// The HTML page of a verified certificate.
pub fn html(v: &Verified) -> String {
    let c: &Certificate = &v.certificate;
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\n");
    o.push_str(&format!(
        "<title>データ消去証明書 Certificate of Sanitization — {}</title>\n",
        esc(&c.job_id)
    ));
    o.push_str("<style>body{font-family:\"Noto Sans CJK JP\",\"IPAexGothic\",sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.2em}th,td{border:1px solid #888;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee;width:16em}</style>\n</head><body>\n");
    o.push_str("<h1>データ消去証明書<br>Certificate of Sanitization (NIST SP 800-88 Rev.1 Appendix G)</h1>\n");
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
    o.push_str("<h2>消去実施者 Person Performing Sanitization</h2><table>\n");
    person(&mut o, &c.sanitized_by);
    o.push_str("</table>\n<h2>消去の詳細 Sanitization Details</h2><table>\n");
    let s = &c.sanitization;
    row(&mut o, "Method Type", &s.method_type);
    row(&mut o, "Method Used", &s.method_used);
    row(&mut o, "Method Details", &s.method_details);
    row(
        &mut o,
        "Tool Used (version)",
        &format!("{} {}", s.tool, s.tool_version),
    );
    row(&mut o, "Verification Method", &s.verification_method);
    row(
        &mut o,
        "Post-Sanitization Classification",
        &s.post_sanitization_classification,
    );
    row(&mut o, "Notes", &s.notes);
    row(&mut o, "Media Destination", &c.media_destination);
    row(&mut o, "Job", &c.job_id);
    row(
        &mut o,
        "Started / Finished (UTC)",
        &format!("{} / {}", c.started_at, c.finished_at),
    );
    row(&mut o, "Resumptions", &c.resumptions.to_string());
    row(
        &mut o,
        "Host / Agent",
        &format!("{} / kenko-agent {}", c.host, c.agent_version),
    );
    row(
        &mut o,
        "Chain",
        &format!(
            "sequence {}, previous {}",
            c.sequence,
            c.previous_sha256.as_deref().unwrap_or("(first)")
        ),
    );
    o.push_str("</table>\n");
    for (i, t) in c.targets.iter().enumerate() {
        o.push_str(&format!(
            "<h2>媒体 {} Media Information</h2><table>\n",
            i + 1
        ));
        row(&mut o, "Target", &t.spec);
        row(&mut o, "Manufacturer", &t.media.manufacturer);
        row(&mut o, "Model", &t.media.model);
        row(&mut o, "Serial Number", &t.media.serial_number);
        row(&mut o, "Property Number", &t.media.property_number);
        row(&mut o, "Media Type", &t.media.media_type);
        row(&mut o, "Source", &t.media.source);
        row(&mut o, "Classification", &t.media.classification);
        row(
            &mut o,
            "Data Backed Up",
            &if t.media.backed_up {
                format!("yes: {}", t.media.backup_location)
            } else {
                "no".into()
            },
        );
        row(
            &mut o,
            "Bytes / Objects Erased",
            &format!("{} / {}", t.bytes_erased, t.objects_erased),
        );
        row(
            &mut o,
            "Verification",
            &format!(
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
        );
        for b in &t.blocked {
            row(
                &mut o,
                "Blocked (not erased)",
                &format!(
                    "{} — {} {}",
                    b.item,
                    b.reason,
                    b.until.as_deref().unwrap_or("")
                ),
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h2>署名 Signature</h2><table>\n");
    if let Some(sig) = &c.signature {
        row(&mut o, "Signed at (UTC)", &sig.signed_at);
        row(&mut o, "Public key", &sig.public_key);
    }
    o.push_str("</table>\n<h2>検証者 Validation</h2><table>\n");
    match &c.validation {
        Some(val) => {
            person(&mut o, &val.person);
            row(&mut o, "Signed at (UTC)", &val.signature.signed_at);
            row(&mut o, "Public key", &val.signature.public_key);
        }
        None => row(&mut o, "Validation", "not yet validated"),
    }
    o.push_str("</table>\n</body></html>\n");
    o
}
