//! Every alert names a runbook page that exists, and every failure reason and file-level
//! rejection reason is explained in the runbooks.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runbook_text() -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(root().join("runbooks")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            all.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    all
}

/// (alert name, runbook_url) for every alert rule in manifests/.
fn alerts() -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let dir = root().join("manifests/monitoring");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        for block in text.split("- alert:").skip(1) {
            let name = block.lines().next().unwrap().trim().to_string();
            let url = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("runbook_url:"))
                .map(|u| u.trim().trim_matches('"').to_string());
            out.push((name, url));
        }
    }
    out
}

#[test]
fn every_alert_names_an_existing_runbook_page() {
    let alerts = alerts();
    assert!(alerts.len() >= 5, "alert rules found: {alerts:?}");
    for (name, url) in alerts {
        let url = url.unwrap_or_else(|| panic!("alert {name} has no runbook_url"));
        let page = root().join(&url);
        assert!(
            url.starts_with("runbooks/") && page.is_file(),
            "alert {name}: runbook {url} does not exist"
        );
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(
            text.contains(&name),
            "runbook {url} does not mention {name}"
        );
    }
}

#[test]
fn every_failure_reason_is_explained_in_a_runbook() {
    let text = runbook_text();
    for reason in kenko_agent::FAILURE_REASONS {
        assert!(
            text.contains(&format!("`{reason}`")),
            "no runbook explains `{reason}`"
        );
    }
    for r in kenko_intake::Reason::ALL
        .iter()
        .filter(|r| r.is_file_level())
    {
        assert!(
            text.contains(&format!("`{}`", r.code())),
            "no runbook explains `{}`",
            r.code()
        );
    }
}

#[test]
fn every_reason_code_is_in_the_intake_contract() {
    let doc = std::fs::read_to_string(root().join("docs/intake-format.md")).unwrap();
    for r in kenko_intake::Reason::ALL {
        assert!(
            doc.contains(&format!("`{}`", r.code())),
            "docs/intake-format.md lacks `{}`",
            r.code()
        );
    }
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(readme.contains("bash tests/run-all.sh"));
    assert!(ci.contains("tests/run-all.sh"));
    assert!(readme.contains("cargo run --release -p kenko-agent -- demo"));
}

/// Every reason of the BackupConfigured condition (the account audit's `backup.coverage`) has
/// its own section on the rule's runbook page, and every reason an operator acts on is
/// explained somewhere.
#[test]
fn every_backup_coverage_reason_has_its_section_on_the_rules_page() {
    let rule = kenko_aws::audit::Rule::BackupCoverage;
    let page = std::fs::read_to_string(root().join(rule.runbook())).unwrap();
    assert!(page.contains(&format!("## `{}`", rule.as_str())));
    for reason in kenko_api::reasons::reason::BACKUP_REPORTED {
        assert!(
            page.contains(&format!("## `{reason}`")),
            "{} has no section for `{reason}`",
            rule.runbook()
        );
    }
    for c in kenko_aws::audit::Coverage::ALL {
        assert!(kenko_api::reasons::reason::BACKUP_REPORTED.contains(&c.as_str()));
    }
    let text = runbook_text();
    for reason in kenko_api::reasons::reason::PROBLEMS {
        assert!(
            text.contains(&format!("`{reason}`")),
            "no runbook explains `{reason}`"
        );
    }
}
