//! Every CEL admission rule, accepting and rejecting, evaluated with kube's CEL support (the
//! rules as the API server would run them, from the generated CRD); and the committed CRDs
//! match the types.

use super::*;

fn stack() -> HealthStack {
    samples::hachioji()
}

/// The messages of the rules an object breaks (empty when admitted).
fn refused(s: &HealthStack) -> Vec<String> {
    match s.validate_cel() {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[track_caller]
fn assert_refused(s: &HealthStack, needle: &str) {
    let r = refused(s);
    assert!(
        r.iter().any(|m| m.contains(needle)),
        "expected a refusal mentioning {needle:?}, got {r:?}"
    );
}

#[test]
fn a_stack_in_tokyo_with_backups_in_osaka_is_admitted() {
    assert_eq!(refused(&stack()), Vec::<String>::new());
    let mut osaka = stack();
    osaka.spec.storage.region = "ap-northeast-3".into();
    osaka.spec.backup.region = "ap-northeast-1".into();
    assert_eq!(refused(&osaka), Vec::<String>::new());
}

#[test]
fn regions_outside_japan_are_refused() {
    for bad in ["us-east-1", "ap-northeast-2", "ap-southeast-1", ""] {
        let mut s = stack();
        s.spec.storage.region = bad.into();
        assert_refused(&s, "storage.region must be in Japan");
        let mut s = stack();
        s.spec.backup.region = bad.into();
        assert_refused(&s, "backup.region must be in Japan");
    }
}

#[test]
fn backups_in_the_production_region_are_refused() {
    let mut s = stack();
    s.spec.backup.region = "ap-northeast-1".into();
    assert_refused(&s, "different region");
}

#[test]
fn retention_below_twenty_years_is_refused() {
    let mut s = stack();
    s.spec.backup.retention_years = 19;
    assert_refused(&s, "at least 20");
    s.spec.backup.retention_years = 30;
    assert!(refused(&s).is_empty());
}

#[test]
fn exactly_one_database_kind() {
    let mut s = stack();
    s.spec.database.external = Some(ExternalDatabase {
        host: "db.internal".into(),
        port: 5432,
        secret_name: "db".into(),
        cidrs: vec!["10.40.64.0/24".into()],
    });
    assert_refused(&s, "exactly one of managed or external");
    s.spec.database.managed = None;
    assert!(refused(&s).is_empty());
    s.spec.database.external = None;
    assert_refused(&s, "exactly one of managed or external");
}

#[test]
fn municipality_code_digest_and_office_hours_formats() {
    let mut s = stack();
    s.spec.municipality.code = "13201".into();
    assert_refused(&s, "six-digit");
    let mut s = stack();
    s.spec.app.digest = Some("sha256:XYZ".into());
    assert_refused(&s, "app.digest");
    let mut s = stack();
    s.spec.app.digest = None;
    assert!(refused(&s).is_empty(), "the digest is optional");
    let mut s = stack();
    s.spec.monitoring.office_hours = "9 to 5".into();
    assert_refused(&s, "officeHours");
}

#[test]
fn the_kms_key_is_in_japan() {
    let mut s = stack();
    s.spec.storage.kms_key_arn =
        Some("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".into());
    assert_refused(&s, "kmsKeyArn");
    let mut s = stack();
    s.spec.storage.records_bucket = Some("https://bucket".into());
    assert_refused(&s, "recordsBucket");
}

#[test]
fn egress_to_the_internet_is_refused() {
    for bad in ["0.0.0.0/0", "::/0", "10.0.0.0/4", "not-a-cidr"] {
        let mut s = stack();
        s.spec.network.allowed_egress_cidrs = vec!["10.20.0.0/24".into(), bad.into()];
        assert_refused(&s, "allowedEgressCIDRs");
    }
}

#[test]
fn residency_policy_floor() {
    let ok = ResidencyPolicy::new("default", ResidencyPolicySpec::default());
    assert!(ok.validate_cel().is_ok());
    let mut p = ok.clone();
    p.spec.allowed_regions = vec!["ap-northeast-1".into(), "us-west-2".into()];
    assert!(p.validate_cel().is_err());
    let mut p = ok.clone();
    p.spec.allowed_regions = vec![];
    assert!(p.validate_cel().is_err());
    let mut p = ok.clone();
    p.spec.min_retention_years = 10;
    assert!(p.validate_cel().is_err());
    let mut p = ok.clone();
    p.spec.backups_in_different_region = false;
    assert!(p.validate_cel().is_err());
    let mut p = ok;
    p.spec.allowed_regions = vec!["ap-northeast-1".into()];
    p.spec.min_retention_years = 30;
    assert!(p.validate_cel().is_ok(), "a stricter policy is fine");
}

fn request() -> ErasureRequest {
    ErasureRequest::new(
        "decommission-hachioji",
        ErasureRequestSpec {
            targets: vec!["pvc:data-hachioji-db-0".into(), "datakey:records".into()],
            method: ErasureMethod::Clear,
            verification: VerifyMode::Full,
            requested_by: "operator-a".into(),
            approved_by: None,
            stack: Some("hachioji".into()),
            stack_uid: Some("5f0c7d2e-8a1b-4c3d-9e8f-0a1b2c3d4e5f".into()),
        },
    )
}

#[test]
fn an_erasure_cannot_be_approved_by_its_requester() {
    let r = request();
    assert!(r.validate_cel().is_ok());
    let mut approved = r.clone();
    approved.spec.approved_by = Some("auditor-b".into());
    assert!(approved.validate_cel_update(&r).is_ok());
    let mut own = r.clone();
    own.spec.approved_by = Some("operator-a".into());
    let e = own.validate_cel_update(&r).unwrap_err().to_string();
    assert!(e.contains("someone other than"), "{e}");
}

#[test]
fn an_erasure_request_cannot_change_after_it_is_made() {
    let r = request();
    let mut more = r.clone();
    more.spec.targets.push("s3://other-city-records".into());
    assert!(more.validate_cel_update(&r).is_err());
    let mut m = r.clone();
    m.spec.method = ErasureMethod::Crypto;
    assert!(m.validate_cel_update(&r).is_err());
    // An approval stays.
    let mut approved = r.clone();
    approved.spec.approved_by = Some("auditor-b".into());
    let mut changed = approved.clone();
    changed.spec.approved_by = Some("auditor-c".into());
    assert!(changed.validate_cel_update(&approved).is_err());
    assert!(r.validate_cel_update(&approved).is_err(), "withdrawn");
    assert!(approved.validate_cel_update(&approved).is_ok());
}

#[test]
fn erasure_request_fields() {
    // Method and verification are enums: the schema lists exactly their values, and nothing
    // else deserialises.
    let crd = serde_json::to_value(<ErasureRequest as kube::CustomResourceExt>::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    assert_eq!(
        spec["method"]["enum"],
        serde_json::json!(["clear", "purge", "crypto"])
    );
    assert_eq!(
        spec["verification"]["enum"],
        serde_json::json!(["full", "sample"])
    );
    assert!(serde_json::from_str::<ErasureMethod>("\"shred\"").is_err());
    assert!(serde_json::from_str::<VerifyMode>("\"none\"").is_err());
    let mut r = request();
    r.spec.targets = vec!["nfs:/x".into()];
    assert!(r.validate_cel().is_err());
}

#[test]
fn every_kind_of_target_is_admitted_and_nothing_else() {
    for (_, t) in crate::target::tests::examples() {
        let mut r = request();
        r.spec.targets = vec![t.to_string()];
        assert!(
            r.validate_cel().is_ok(),
            "{t} refused: {:?}",
            r.validate_cel()
        );
    }
    for bad in [
        "nfs:/x",
        "pvc:",
        "pvc:Data_1",
        "backup-vault:ap-northeast-3",
        "backup-vault:ap-northeast-3/v",
        "file:relative",
        "device:/tmp/x",
        "s3://",
        "ebs-volume:ap-northeast-1/snap-1",
        "kms:arn:aws:kms:ap-northeast-1:1:key/k",
        "datakey:../x",
        "dir:",
    ] {
        let mut r = request();
        r.spec.targets = vec!["pvc:hachioji-data".into(), bad.into()];
        let e = r.validate_cel().unwrap_err().to_string();
        assert!(e.contains("every target must be one of"), "{bad}: {e}");
        assert!(
            bad.parse::<Target>().is_err(),
            "the agent refuses {bad} too"
        );
    }
}

#[test]
fn the_crds_target_rule_names_exactly_the_kinds_the_agent_knows() {
    let crd = serde_json::to_value(<ErasureRequest as kube::CustomResourceExt>::crd()).unwrap();
    let targets = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["targets"];
    let rule = targets["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .unwrap();
    // The alternatives of the one regular expression, and the prefix each begins with.
    let body = rule
        .split_once("'^(")
        .and_then(|(_, r)| r.rsplit_once(")$'"))
        .map(|(b, _)| b)
        .unwrap();
    let mut prefixes: Vec<String> = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '|' if depth == 0 => {
                prefixes.push(body[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    prefixes.push(body[start..].to_string());
    let named: Vec<&str> = prefixes
        .iter()
        .map(|alt| {
            TargetKind::ALL
                .iter()
                .map(|k| k.prefix())
                .find(|p| alt.starts_with(p))
                .unwrap_or_else(|| panic!("the rule admits {alt}, a kind the agent does not know"))
        })
        .collect();
    let known: Vec<&str> = TargetKind::ALL.iter().map(|k| k.prefix()).collect();
    assert_eq!(named, known);
}

#[test]
fn egress_and_the_external_database_are_private_ranges_only() {
    for bad in [
        "8.0.0.0/8",
        "0.0.0.0/0",
        "1.2.3.0/24",
        "2001:db8::/32",
        "::/0",
        "10.0.0.0/4",
    ] {
        let mut s = stack();
        s.spec.network.allowed_egress_cidrs = vec!["10.20.0.0/24".into(), bad.into()];
        assert_refused(&s, "allowedEgressCIDRs");
        assert!(!is_private_cidr(bad), "{bad}");
    }
    for good in [
        "10.40.0.0/20",
        "172.16.5.0/24",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fd00:1::/64",
    ] {
        let mut s = stack();
        s.spec.network.allowed_egress_cidrs = vec![good.into()];
        assert_eq!(refused(&s), Vec::<String>::new(), "{good}");
        assert!(is_private_cidr(good), "{good}");
    }
    assert!(!is_private_cidr("172.32.0.0/16"), "outside 172.16.0.0/12");
    assert!(!is_private_cidr("not-a-cidr"));
    let mut s = stack();
    s.spec.database.managed = None;
    s.spec.database.external = Some(ExternalDatabase {
        host: "db.internal".into(),
        port: 5432,
        secret_name: "db".into(),
        cidrs: vec!["52.0.0.0/8".into()],
    });
    assert_refused(&s, "database.external.cidrs");
}

#[test]
fn condition_messages_fit_on_one_line_within_the_bound() {
    let long = format!("line one\n\tline two {}", "あ".repeat(2000));
    let m = status_message(&long);
    assert!(m.len() <= MAX_MESSAGE);
    assert!(!m.contains('\n') && !m.contains('\t'));
    assert!(m.starts_with("line one line two"));
    assert!(m.ends_with('…'));
    assert_eq!(one_line("a  b\nc", 100), "a b c");
}

#[test]
fn an_erasure_certificate_is_immutable() {
    let c = ErasureCertificate::new(
        "000001-decommission-hachioji",
        ErasureCertificateSpec {
            job_id: "decommission-hachioji".into(),
            request: "city/decommission-hachioji".into(),
            stack: Some("city/hachioji".into()),
            targets: vec!["datakey:records".into()],
            target_count: 1,
            blocked_count: 0,
            signer: "ab".repeat(32),
            sha256: "cd".repeat(32),
            issued_at: "2026-11-26T00:00:00Z".into(),
            certificate: "{}\n".into(),
        },
    );
    assert!(c.validate_cel_update(&c).is_ok());
    let mut changed = c.clone();
    changed.spec.sha256 = "ef".repeat(32);
    assert!(changed.validate_cel_update(&c).is_err());
}

#[test]
fn the_committed_crds_are_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds");
    for (name, yaml) in crd_files() {
        let path = dir.join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{} differs from the types in crates/kenko-api: run `cargo run -p kenko-controller -- crdgen` and commit manifests/crds/",
            path.display()
        );
    }
}

#[test]
fn every_message_field_of_a_status_holds_what_kenko_writes_into_it() {
    // kenko cuts every status and condition message to MAX_MESSAGE (one_line); the API server
    // refuses a whole status patch when one field is longer than its schema allows.
    let crds: Vec<serde_json::Value> = [
        serde_json::to_value(<ErasureRequest as kube::CustomResourceExt>::crd()).unwrap(),
        serde_json::to_value(<HealthStack as kube::CustomResourceExt>::crd()).unwrap(),
        serde_json::to_value(<ResidencyPolicy as kube::CustomResourceExt>::crd()).unwrap(),
    ]
    .into();
    let mut found = 0;
    fn walk(v: &serde_json::Value, path: &str, found: &mut usize) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, child) in props {
                let p = format!("{path}.{k}");
                if k == "message" {
                    let max = child["maxLength"].as_u64().unwrap_or(0);
                    assert!(
                        max as usize >= MAX_MESSAGE,
                        "{p}: maxLength {max} < {MAX_MESSAGE}"
                    );
                    *found += 1;
                }
                walk(child, &p, found);
            }
        }
        if let Some(items) = v.get("items") {
            walk(items, &format!("{path}[*]"), found);
        }
    }
    for crd in &crds {
        let status =
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        walk(status, "status", &mut found);
    }
    assert!(
        found >= 5,
        "status.message, targets[*].message, both conditions' messages and audit.backups[*].message"
    );
}

#[test]
fn a_stacks_backup_locations_are_its_claims_and_its_records_bucket() {
    let mut s = stack();
    s.metadata.namespace = Some("hachioji".into());
    let l = residency::StackLocations::of(&s);
    assert_eq!(l.id(), "hachioji/hachioji");
    assert_eq!(l.claims, ["hachioji-data", "data-hachioji-db-0"]);
    assert_eq!(
        l.records_bucket_name(),
        Some("kenko-prod-records-123456789012-ap-northeast-1")
    );
    assert_eq!(
        (l.region.as_str(), l.backup_region.as_str()),
        ("ap-northeast-1", "ap-northeast-3")
    );
    assert_eq!(
        (l.source_vault.as_str(), l.vault.as_str()),
        ("kenko-prod-tokyo", "kenko-prod-osaka")
    );
    // An external database has no claim of kenko's; a prefix is not part of the bucket.
    s.spec.database.managed = None;
    s.spec.storage.records_bucket = Some("s3://records/hachioji/".into());
    let l = residency::StackLocations::of(&s);
    assert_eq!(l.claims, ["hachioji-data"]);
    assert_eq!(l.records_bucket_name(), Some("records"));
    // The JSON `residency audit --stacks` reads, and nothing else.
    let back: residency::StackLocations =
        serde_json::from_value(serde_json::to_value(&l).unwrap()).unwrap();
    assert_eq!(back, l);
    let mut v = serde_json::to_value(&l).unwrap();
    v["claim"] = serde_json::json!("x");
    assert!(serde_json::from_value::<residency::StackLocations>(v).is_err());
}
