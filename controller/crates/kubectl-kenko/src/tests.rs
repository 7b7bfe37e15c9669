//! The pure parts: tables, the status verdict, the approval patch, public keys, messages.

use super::*;
use crate::status::{ConditionRow, ErasureSummary, StackReport, StatusReport};
use kenko_api::{ErasureCertificate, ErasureCertificateSpec, ErasureRequest, ErasureRequestSpec};

fn cond(t: &str, s: &str, r: &str, m: &str) -> ConditionRow {
    ConditionRow {
        type_: t.into(),
        status: s.into(),
        reason: r.into(),
        message: m.into(),
    }
}

fn stack(ns: &str, name: &str, conditions: Vec<ConditionRow>) -> StackReport {
    StackReport {
        namespace: ns.into(),
        name: name.into(),
        conditions,
        decommissioning: false,
        erasure: None,
    }
}

#[test]
fn a_table_aligns_columns_and_shows_empty_cells_as_dashes() {
    let t = table::table(
        "",
        &["NAME", "PHASE", "NOTE"],
        &[
            vec!["a".into(), "Pending".into(), "".into()],
            vec![
                "longer-name".into(),
                "Certified".into(),
                "two\nlines".into(),
            ],
        ],
    );
    assert_eq!(
        t,
        "NAME          PHASE       NOTE\n\
         a             Pending     -\n\
         longer-name   Certified   two lines\n"
    );
}

#[test]
fn wide_characters_count_twice_for_alignment() {
    assert_eq!(table::display_width("越谷市"), 6);
    assert_eq!(table::display_width("abc"), 3);
    let t = table::table("", &["A", "B"], &[vec!["越谷".into(), "x".into()]]);
    assert_eq!(t, "A      B\n越谷   x\n");
}

#[test]
fn a_stack_is_healthy_only_when_ready_and_residency_compliant_are_true() {
    let good = stack(
        "city-a",
        "one",
        vec![
            cond("Ready", "True", "Reconciled", ""),
            cond("ResidencyCompliant", "True", "InJapan", ""),
        ],
    );
    assert!(good.healthy());
    let not_ready = stack(
        "city-a",
        "two",
        vec![
            cond("Ready", "False", "Applying", "waiting"),
            cond("ResidencyCompliant", "True", "InJapan", ""),
        ],
    );
    assert_eq!(not_ready.problems(), vec!["Ready=False (Applying)"]);
    let unreported = stack("city-a", "three", vec![cond("Ready", "True", "", "")]);
    assert_eq!(
        unreported.problems(),
        vec!["ResidencyCompliant not reported"]
    );
    let unknown = stack(
        "city-a",
        "four",
        vec![
            cond("Ready", "Unknown", "", ""),
            cond("ResidencyCompliant", "False", "RegionNotAllowed", ""),
        ],
    );
    assert_eq!(
        unknown.problems(),
        vec![
            "Ready=Unknown",
            "ResidencyCompliant=False (RegionNotAllowed)"
        ]
    );
}

#[test]
fn the_status_output_lists_conditions_and_ends_with_a_summary() {
    let mut decom = stack(
        "city-b",
        "old",
        vec![
            cond("Ready", "False", "Suspended", "writes stopped"),
            cond("ResidencyCompliant", "True", "InJapan", "all in Japan"),
            cond(
                "Decommissioning",
                "True",
                "AwaitingApproval",
                "needs a second person",
            ),
        ],
    );
    decom.decommissioning = true;
    decom.erasure = Some(ErasureSummary {
        request: "city-b/old-erasure".into(),
        phase: Some("Pending".into()),
        certificates: vec![],
        reason: Some("AwaitingApproval".into()),
        message: None,
    });
    let report = StatusReport {
        scope: Scope::All,
        stacks: vec![
            stack(
                "city-a",
                "new",
                vec![
                    cond("Ready", "True", "Reconciled", "all available"),
                    cond("ResidencyCompliant", "True", "InJapan", ""),
                ],
            ),
            decom,
        ],
    };
    assert!(!report.healthy());
    assert_eq!(report.exit_code(), status::EXIT_UNHEALTHY);
    let out = status::format_status(&report);
    assert_eq!(
        out,
        "HealthStack city-a/new: Ready, ResidencyCompliant\n\
         \x20 TYPE                 STATUS   REASON       MESSAGE\n\
         \x20 Ready                True     Reconciled   all available\n\
         \x20 ResidencyCompliant   True     InJapan      -\n\
         \n\
         HealthStack city-b/old: NOT HEALTHY: Ready=False (Suspended)\n\
         \x20 TYPE                 STATUS   REASON             MESSAGE\n\
         \x20 Ready                False    Suspended          writes stopped\n\
         \x20 ResidencyCompliant   True     InJapan            all in Japan\n\
         \x20 Decommissioning      True     AwaitingApproval   needs a second person\n\
         \x20 decommissioning: ErasureRequest city-b/old-erasure is Pending (AwaitingApproval)\n\
         \n\
         1 of 2 HealthStack(s) not Ready or not ResidencyCompliant: city-b/old (Ready=False (Suspended))\n"
    );
}

#[test]
fn no_stacks_is_healthy_and_says_where_it_looked() {
    let r = StatusReport {
        scope: Scope::Namespace("city-z".into()),
        stacks: vec![],
    };
    assert_eq!(r.exit_code(), 0);
    assert_eq!(
        status::format_status(&r),
        "no HealthStacks in namespace city-z\n"
    );
}

#[test]
fn scope_follows_kubectl_flags() {
    assert_eq!(Scope::from_flags(None, true, "d"), Scope::All);
    assert_eq!(
        Scope::from_flags(Some("x"), false, "d"),
        Scope::Namespace("x".into())
    );
    assert_eq!(
        Scope::from_flags(None, false, "d"),
        Scope::Namespace("d".into())
    );
}

fn request(name: &str, requested_by: &str, approved_by: Option<&str>) -> ErasureRequest {
    let mut er = ErasureRequest::new(
        name,
        ErasureRequestSpec {
            targets: vec!["pvc:data".into(), "s3://bucket/prefix".into()],
            method: kenko_api::ErasureMethod::Clear,
            verification: kenko_api::VerifyMode::Full,
            requested_by: requested_by.into(),
            approved_by: approved_by.map(str::to_string),
            stack: Some("old".into()),
            stack_uid: None,
        },
    );
    er.metadata.namespace = Some("city-b".into());
    er
}

#[test]
fn the_erasure_list_shows_phase_requester_and_approver() {
    let mut certified = request("b-erasure", "operator-a", Some("auditor-b"));
    certified.status = Some(kenko_api::ErasureRequestStatus {
        phase: kenko_api::ErasurePhase::Certified,
        certificates: vec!["cert-b".into()],
        ..Default::default()
    });
    let items = vec![request("a-erasure", "operator-a", None), certified];
    assert_eq!(
        erasure::format_list(&items, false),
        "NAME        PHASE       METHOD   TARGETS   REQUESTED-BY   APPROVED-BY   STACK   CERTIFICATES\n\
         a-erasure   Pending     clear    2         operator-a     -             old     -\n\
         b-erasure   Certified   clear    2         operator-a     auditor-b     old     cert-b\n"
    );
    assert!(erasure::format_list(&items, true).starts_with("NAMESPACE   NAME"));
}

#[test]
fn the_approval_patch_sets_approved_by_and_guards_the_resource_version() {
    assert_eq!(
        erasure::approval_patch("auditor-b", Some("42")),
        serde_json::json!({"spec": {"approvedBy": "auditor-b"}, "metadata": {"resourceVersion": "42"}})
    );
    assert_eq!(
        erasure::approval_patch("auditor-b", None),
        serde_json::json!({"spec": {"approvedBy": "auditor-b"}})
    );
}

fn certificate(name: &str, text: &str, sha: &str) -> ErasureCertificate {
    ErasureCertificate::new(
        name,
        ErasureCertificateSpec {
            job_id: "job-7".into(),
            request: "city-b/old-erasure".into(),
            stack: Some("city-b/old".into()),
            targets: vec!["pvc:data".into()],
            target_count: 1,
            blocked_count: 0,
            signer: "ab".repeat(32),
            sha256: sha.into(),
            issued_at: "2026-11-25T01:05:01Z".into(),
            certificate: text.into(),
        },
    )
}

#[test]
fn the_certificate_list_shows_a_short_sha256() {
    let sha = certificates::sha256_hex(b"x\n");
    let items = vec![certificate("cert-7", "x\n", &sha)];
    let out = certificates::format_list(&items);
    assert_eq!(
        out,
        format!(
            "NAME     JOB     STACK        TARGETS   BLOCKED   ISSUED                 SHA256\n\
             cert-7   job-7   city-b/old   1         0         2026-11-25T01:05:01Z   {}\n",
            &sha[..12]
        )
    );
}

#[test]
fn certificate_bytes_are_refused_unless_they_hash_to_the_recorded_sha256() {
    let sha = certificates::sha256_hex(b"{}\n");
    let good = certificate("c", "{}\n", &sha);
    assert_eq!(certificates::certificate_bytes(&good).unwrap(), b"{}\n");
    assert_eq!(
        certificates::certificate_bytes(&certificate("c", "{}\n", &sha.to_uppercase())).unwrap(),
        b"{}\n"
    );
    let bad = certificate("c", "{} \n", &sha);
    let e = certificates::certificate_bytes(&bad).unwrap_err();
    assert_eq!(e.reason(), "certificate_resource_mismatch");
    assert!(e.to_string().contains("not to the recorded sha256"), "{e}");
}

#[test]
fn the_get_output_names_every_field() {
    let out = certificates::format_get(&certificate("cert-7", "x", "00ff"));
    assert!(
        out.starts_with("Name:        cert-7\nJob:         job-7\n"),
        "{out}"
    );
    assert!(out.contains("SHA-256:     00ff\n"), "{out}");
    assert!(out.ends_with("Blocked:     0\n  - pvc:data\n"), "{out}");
}

#[test]
fn public_keys_are_64_hex_characters() {
    let k = "AB".repeat(32);
    assert_eq!(
        certificates::parse_public_key(&format!("  {k}\n")),
        Some("ab".repeat(32))
    );
    assert_eq!(certificates::parse_public_key("abc"), None);
    assert_eq!(certificates::parse_public_key(&"zz".repeat(32)), None);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pub");
    std::fs::write(&bad, "not a key\n").unwrap();
    assert_eq!(
        certificates::read_public_key(&bad).unwrap_err().reason(),
        "certificate_public_key_invalid"
    );
    assert_eq!(
        certificates::read_public_key(&dir.path().join("missing.pub"))
            .unwrap_err()
            .reason(),
        "certificate_unreadable"
    );
}

#[test]
fn an_unreachable_cluster_is_named_in_one_line() {
    let e = PluginError::Unreachable {
        cause: "tcp connect error: Connection refused (os error 111)".into(),
    };
    let t = ClusterTarget {
        context: "kenko-dev".into(),
        cluster: "dev".into(),
        server: "https://127.0.0.1:1".into(),
    };
    assert_eq!(
        e.explain(Some(&t)),
        "cannot reach the Kubernetes API server of cluster \"dev\" at https://127.0.0.1:1 \
         (context \"kenko-dev\"): tcp connect error: Connection refused (os error 111)"
    );
    assert_eq!(one_line("a\n  b\r\nc"), "a b c");
}

#[test]
fn the_root_cause_keeps_the_last_two_distinct_messages() {
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }
    let e = E(
        "ServiceError: client error (Connect)",
        Some(Box::new(E(
            "client error (Connect)",
            Some(Box::new(E(
                "tcp connect error",
                Some(Box::new(E("Connection refused (os error 111)", None))),
            ))),
        ))),
    );
    assert_eq!(
        root_cause(&e),
        "tcp connect error: Connection refused (os error 111)"
    );
}

#[test]
fn an_exported_set_of_trusted_signers_reads_back_as_the_same_keys() {
    let signers = vec![
        ("node-a".to_string(), "AB".repeat(32)),
        ("node-b".to_string(), "cd".repeat(32)),
    ];
    let text = certificates::format_signers("kenko-system", &signers);
    assert!(text.contains("ConfigMap kenko-system/kenko-erasure-signers"));
    assert!(text.contains(&format!("node-a: {}\n", "ab".repeat(32))));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("trusted-signers.txt");
    std::fs::write(&f, &text).unwrap();
    assert_eq!(
        certificates::read_public_keys(&f).unwrap(),
        vec!["ab".repeat(32), "cd".repeat(32)]
    );
    // One key alone, as `kenko-agent certificate public-key` writes it, is a set of one.
    let one = dir.path().join("agent.pub");
    std::fs::write(&one, format!("{}\n", "ef".repeat(32))).unwrap();
    assert_eq!(
        certificates::read_public_keys(&one).unwrap(),
        vec!["ef".repeat(32)]
    );
    // An entry that is not a key makes the whole file refused (never a silently smaller set).
    std::fs::write(&f, format!("{text}node-c: not-a-key\n")).unwrap();
    assert_eq!(
        certificates::read_public_keys(&f).unwrap_err().reason(),
        "certificate_public_key_invalid"
    );
}
