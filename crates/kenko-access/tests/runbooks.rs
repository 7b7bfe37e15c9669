//! Every rule names a runbook page that exists and explains it; the log format documents every
//! rule and every reason code.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::{Path, PathBuf};

use kenko_access::{Rule, Severity, RULES};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_rule_names_an_existing_runbook_page() {
    assert_eq!(RULES.len(), Rule::ALL.len());
    for (id, severity, page) in RULES {
        let path = repo().join("runbooks").join(page);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("rule {id}: runbook {} unreadable: {e}", path.display()));
        assert!(
            text.contains(&format!("`{id}`")),
            "{page} does not mention `{id}`"
        );
        if *severity == Severity::Critical {
            assert!(
                text.contains("**critical**"),
                "{page} does not say critical"
            );
        }
        for heading in ["# ", "## "] {
            assert!(text.contains(heading), "{page} lacks sections");
        }
    }
    for r in Rule::ALL {
        assert!(repo().join(r.runbook()).is_file(), "{}", r.runbook());
    }
}

#[test]
fn the_log_format_documents_every_rule_and_reason() {
    let doc = std::fs::read_to_string(repo().join("docs/access-log-format.md")).unwrap();
    for (id, _, page) in RULES {
        assert!(doc.contains(&format!("`{id}`")), "docs lack `{id}`");
        assert!(doc.contains(page), "docs lack a link to {page}");
    }
    for reason in [
        "access_log_not_json",
        "access_log_invalid_field",
        "access_log_mynumber_in_subject",
        "roster_invalid",
        "segment_changed",
        "segment_removed",
        "segment_reordered",
        "chain_record_altered",
        "chain_records_removed",
        "chain_record_out_of_order",
        "chain_broken",
        "chain_tail_removed",
        "chain_day_removed",
        "chain_digest_mismatch",
        "chain_digest_altered",
    ] {
        assert!(doc.contains(&format!("`{reason}`")), "docs lack `{reason}`");
    }
    for action in [
        "view",
        "search",
        "update",
        "export",
        "print",
        "login",
        "login_failed",
    ] {
        assert!(
            doc.contains(&format!("`{action}`")),
            "docs lack action `{action}`"
        );
    }
}
