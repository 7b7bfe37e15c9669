//! The pure evaluation: each rule's Compliant, Violation and Unknown cases on hand-made facts,
//! the report's counts, JSON and exit codes, the remediation plan, and the runbook pages.

use super::*;

const TOKYO: &str = "ap-northeast-1";
const OSAKA: &str = "ap-northeast-3";

fn key(region: &str) -> Option<String> {
    Some(format!("arn:aws:kms:{region}:123456789012:key/k"))
}

fn bucket(name: &str, region: &str) -> BucketFacts {
    BucketFacts {
        name: name.into(),
        region: Ok(region.into()),
        versioning: Ok(Some("Enabled".into())),
        encryption: Ok(vec![("aws:kms".into(), key(region))]),
        replication: Ok(vec![]),
        data_tag: Ok(None),
        object_lock: None,
    }
}

fn replication(id: &str, dest: &str, region: Fact<String>) -> ReplicationRuleFacts {
    ReplicationRuleFacts {
        id: id.into(),
        enabled: true,
        destination_bucket: dest.into(),
        destination_region: region,
    }
}

fn vault_arn(region: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:123456789012:backup-vault:{name}")
}

fn plan(region: &str, copies: Vec<(&str, Option<i64>)>, keep: Option<i64>) -> PlanFacts {
    PlanFacts {
        id: "p1".into(),
        arn: format!("arn:aws:backup:{region}:123456789012:backup-plan:p1"),
        rules: Ok(vec![PlanRuleFacts {
            name: "daily".into(),
            delete_after_days: keep,
            copies: copies
                .into_iter()
                .map(|(arn, d)| CopyFacts {
                    destination_vault_arn: arn.into(),
                    delete_after_days: d,
                })
                .collect(),
            schedule: Some("cron(0 17 * * ? *)".into()),
        }]),
        selections: Some(Ok(vec![coverage::SelectionFacts {
            name: "tagged".into(),
            list_of_tags: vec![("kenko:backup".into(), "true".into())],
            ..Default::default()
        }])),
    }
}

fn vpc(id: &str) -> VpcFacts {
    VpcFacts {
        id: id.into(),
        internet_gateways: Ok(vec![]),
        egress_only_gateways: Ok(vec![]),
        nat_gateways: Ok(vec![]),
        endpoint_services: Ok(REQUIRED_ENDPOINT_SERVICES
            .iter()
            .map(|s| s.to_string())
            .collect()),
    }
}

fn region(name: &str) -> RegionFacts {
    RegionFacts {
        region: name.into(),
        ec2: Ok(Ec2Facts {
            volumes: vec![],
            snapshots: vec![],
            vpcs: Ok(vec![]),
        }),
        kms: Ok(vec![]),
        backup: Ok(BackupFacts::default()),
    }
}

/// The shape Terraform builds: records replicated Tokyo -> Osaka, a locked certificate bucket,
/// vaults in both regions, a plan copying to Osaka for 7305 days, a closed VPC, a volume and a
/// snapshot, keys in both regions.
fn compliant() -> Inventory {
    let mut records = bucket("records", TOKYO);
    records.replication = Ok(vec![replication(
        "to-osaka",
        "records-replica",
        Ok(OSAKA.into()),
    )]);
    let mut certs = bucket("certificates", TOKYO);
    certs.data_tag = Ok(Some("certificates".into()));
    certs.object_lock = Some(Ok(true));
    let mut tokyo = region(TOKYO);
    tokyo.ec2 = Ok(Ec2Facts {
        volumes: vec!["vol-1".into()],
        snapshots: vec!["snap-1".into()],
        vpcs: Ok(vec![vpc("vpc-1")]),
    });
    tokyo.kms = Ok(vec![KeyFacts {
        arn: key(TOKYO).unwrap(),
        described: None,
    }]);
    tokyo.backup = Ok(BackupFacts {
        vaults: vec![VaultFacts {
            arn: vault_arn(TOKYO, "kenko-tokyo"),
            name: "kenko-tokyo".into(),
            recovery_points: 3,
        }],
        plans: vec![plan(
            TOKYO,
            vec![(&vault_arn(OSAKA, "kenko-osaka"), Some(7305))],
            Some(7305),
        )],
    });
    let mut osaka = region(OSAKA);
    osaka.backup = Ok(BackupFacts {
        vaults: vec![VaultFacts {
            arn: vault_arn(OSAKA, "kenko-osaka"),
            name: "kenko-osaka".into(),
            recovery_points: 3,
        }],
        plans: vec![],
    });
    Inventory {
        s3_region: TOKYO.into(),
        buckets: Ok(vec![records, certs, bucket("records-replica", OSAKA)]),
        regions: vec![tokyo, osaka, region("us-east-1")],
        coverage: covered_stack(),
    }
}

/// One stack whose volume is tagged for the plan, backed up an hour ago and copied to Osaka.
fn covered_stack() -> CoverageFacts {
    let now = 1_795_662_000;
    let point = "arn:aws:ec2:ap-northeast-1::snapshot/snap-1";
    CoverageFacts {
        now,
        stacks: Ok(vec![coverage::StackFacts {
            stack: kenko_api::residency::StackLocations {
                namespace: "hachioji".into(),
                name: "hachioji".into(),
                region: TOKYO.into(),
                backup_region: OSAKA.into(),
                vault: "kenko-osaka".into(),
                source_vault: "kenko-tokyo".into(),
                records_bucket: None,
                claims: vec!["hachioji-data".into()],
            },
            locations: vec![coverage::LocationFacts {
                location: "pvc:hachioji-data".into(),
                resources: Ok(vec![coverage::ResourceFacts {
                    arn: "arn:aws:ec2:ap-northeast-1:123456789012:volume/vol-1".into(),
                    id: "vol-1".into(),
                    region: TOKYO.into(),
                    tags: Ok(BTreeMap::from([("kenko:backup".into(), "true".into())])),
                    points: Ok(vec![coverage::PointFacts {
                        arn: point.into(),
                        vault_arn: vault_arn(TOKYO, "kenko-tokyo"),
                        source_vault_arn: None,
                        created: now - 3600,
                        status: "COMPLETED".into(),
                    }]),
                    copies: Ok(vec![]),
                    copy_jobs: Ok(vec![coverage::CopyJobFacts {
                        source_point_arn: point.into(),
                        destination_vault_arn: vault_arn(OSAKA, "kenko-osaka"),
                        state: "COMPLETED".into(),
                    }]),
                }]),
            }],
        }]),
    }
}

fn only(findings: &[Finding], status: Status) -> Vec<&Finding> {
    findings.iter().filter(|f| f.status == status).collect()
}

fn the_one(inv: &Inventory, policy: &Policy, status: Status) -> Finding {
    let f = evaluate(inv, policy);
    let hits = only(&f, status);
    assert_eq!(hits.len(), 1, "expected one {status:?}: {f:#?}");
    hits[0].clone()
}

#[test]
fn the_terraform_shape_is_compliant_and_every_rule_is_checked() {
    let f = evaluate(&compliant(), &Policy::default());
    assert!(
        f.iter().all(|f| f.status == Status::Compliant),
        "{:#?}",
        only(&f, Status::Violation)
    );
    let checked: BTreeSet<Rule> = f.iter().map(|f| f.rule).collect();
    for rule in Rule::ALL
        .iter()
        .filter(|r| **r != Rule::AuditRegionUnreachable)
    {
        assert!(checked.contains(rule), "{rule} was never evaluated");
    }
    let report = Report::new(f, vec![TOKYO.into()], &Policy::default());
    assert_eq!(report.exit_code(), 0);
    assert!(report.complete);
}

#[test]
fn a_bucket_outside_japan_is_a_violation() {
    let mut inv = compliant();
    inv.buckets
        .as_mut()
        .unwrap()
        .push(bucket("stray", "us-east-1"));
    let f = evaluate(&inv, &Policy::default());
    let v = only(&f, Status::Violation);
    // Its own key is in us-east-1 too: the encryption rule sees that as well.
    assert_eq!(
        v.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec![Rule::S3BucketRegion, Rule::S3Encryption]
    );
    assert!(v
        .iter()
        .all(|f| f.resource == "arn:aws:s3:::stray" && f.region == "us-east-1"));
}

#[test]
fn versioning_and_encryption() {
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].versioning = Ok(Some("Suspended".into()));
    assert_eq!(
        the_one(&inv, &Policy::default(), Status::Violation).rule,
        Rule::S3Versioning
    );
    inv.buckets.as_mut().unwrap()[0].versioning = Ok(None);
    assert!(the_one(&inv, &Policy::default(), Status::Violation)
        .detail
        .contains("never enabled"));

    for (enc, want) in [
        (vec![], "no default encryption"),
        (vec![("AES256".to_string(), None)], "AES256"),
        (vec![("aws:kms".to_string(), None)], "AWS managed key"),
        (
            vec![("aws:kms".to_string(), key("us-west-2"))],
            "outside Japan",
        ),
    ] {
        let mut inv = compliant();
        inv.buckets.as_mut().unwrap()[0].encryption = Ok(enc);
        let v = the_one(&inv, &Policy::default(), Status::Violation);
        assert_eq!(v.rule, Rule::S3Encryption);
        assert!(v.detail.contains(want), "{v:?}");
    }
    // A bare key id is the bucket's own region's key.
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].encryption =
        Ok(vec![("aws:kms".into(), Some("1234-abcd".into()))]);
    assert!(only(&evaluate(&inv, &Policy::default()), Status::Violation).is_empty());
    inv.buckets.as_mut().unwrap()[0].encryption = Err("GetBucketEncryption: AccessDenied".into());
    assert_eq!(
        the_one(&inv, &Policy::default(), Status::Unknown).rule,
        Rule::S3Encryption
    );
}

#[test]
fn replication_must_leave_the_region_and_stay_in_japan() {
    for (dest, detail) in [
        (Ok("us-west-2".to_string()), "outside Japan"),
        (Ok(TOKYO.to_string()), "same region"),
    ] {
        let mut inv = compliant();
        inv.buckets.as_mut().unwrap()[0].replication = Ok(vec![
            replication("to-osaka", "records-replica", Ok(OSAKA.into())),
            replication("bad", "elsewhere", dest),
        ]);
        let v = the_one(&inv, &Policy::default(), Status::Violation);
        assert_eq!(v.rule, Rule::S3Replication);
        assert_eq!(v.resource, "arn:aws:s3:::records#replication/bad");
        assert!(v.detail.contains(detail), "{v:?}");
    }
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].replication = Ok(vec![replication(
        "r",
        "other-account",
        Err("AccessDenied".into()),
    )]);
    assert_eq!(
        the_one(&inv, &Policy::default(), Status::Unknown).rule,
        Rule::S3Replication
    );
}

#[test]
fn certificate_buckets_need_object_lock() {
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[1].object_lock = Some(Ok(false));
    assert_eq!(
        the_one(&inv, &Policy::default(), Status::Violation).rule,
        Rule::S3CertificateObjectLock
    );
    // Named on the command line instead of tagged.
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].object_lock = Some(Ok(false));
    let policy = Policy {
        certificate_bucket: Some("records".into()),
        ..Policy::default()
    };
    assert_eq!(
        the_one(&inv, &policy, Status::Violation).resource,
        "arn:aws:s3:::records"
    );
    // Named but missing.
    let policy = Policy {
        certificate_bucket: Some("nowhere".into()),
        ..Policy::default()
    };
    assert!(the_one(&compliant(), &policy, Status::Violation)
        .detail
        .contains("does not exist"));
    // Tags unreadable: whether it holds certificates is unknown.
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].data_tag = Err("AccessDenied".into());
    assert_eq!(
        the_one(&inv, &Policy::default(), Status::Unknown).rule,
        Rule::S3CertificateObjectLock
    );
}

#[test]
fn backup_plans_copy_to_the_other_japanese_region_and_keep_twenty_years() {
    type Case = (Vec<(String, Option<i64>)>, Option<i64>, Rule, &'static str);
    let cases: Vec<Case> = vec![
        (vec![], Some(7305), Rule::BackupPlanCopy, "no copy action"),
        (
            vec![(vault_arn(TOKYO, "v"), Some(7305))],
            Some(7305),
            Rule::BackupPlanCopy,
            "same region",
        ),
        (
            vec![(vault_arn("ap-southeast-1", "v"), Some(7305))],
            Some(7305),
            Rule::BackupPlanCopy,
            "outside Japan",
        ),
        (
            vec![(vault_arn(OSAKA, "v"), Some(7305))],
            Some(35),
            Rule::BackupRetention,
            "after 35 days",
        ),
        (
            vec![(vault_arn(OSAKA, "v"), Some(7299))],
            Some(7305),
            Rule::BackupRetention,
            "copies to",
        ),
    ];
    for (copies, keep, rule, detail) in cases {
        let mut inv = compliant();
        let copies = copies.iter().map(|(a, d)| (a.as_str(), *d)).collect();
        inv.regions[0].backup.as_mut().unwrap().plans = vec![plan(TOKYO, copies, keep)];
        let v = the_one(&inv, &Policy::default(), Status::Violation);
        assert_eq!(v.rule, rule, "{v:?}");
        assert!(v.detail.contains(detail), "{v:?}");
        assert!(v.resource.ends_with("backup-plan:p1#rule/daily"));
    }
    // Exactly 20 x 365 days is the floor; kept forever passes.
    let mut inv = compliant();
    inv.regions[0].backup.as_mut().unwrap().plans = vec![plan(
        TOKYO,
        vec![(&vault_arn(OSAKA, "v"), None)],
        Some(7300),
    )];
    assert!(only(&evaluate(&inv, &Policy::default()), Status::Violation).is_empty());
    let stricter = Policy {
        retention_years: 30,
        ..Policy::default()
    };
    assert_eq!(
        the_one(&inv, &stricter, Status::Violation).rule,
        Rule::BackupRetention
    );
}

#[test]
fn vaults_recovery_points_volumes_snapshots_and_keys_outside_japan() {
    let mut inv = compliant();
    let sg = &mut inv.regions[2];
    sg.region = "ap-southeast-1".into();
    sg.ec2 = Ok(Ec2Facts {
        volumes: vec!["vol-9".into()],
        snapshots: vec!["snap-9".into()],
        vpcs: Ok(vec![]),
    });
    sg.kms = Ok(vec![KeyFacts {
        arn: key("ap-southeast-1").unwrap(),
        described: Some(Ok(("CUSTOMER".into(), "Enabled".into()))),
    }]);
    sg.backup = Ok(BackupFacts {
        vaults: vec![VaultFacts {
            arn: vault_arn("ap-southeast-1", "x"),
            name: "x".into(),
            recovery_points: 2,
        }],
        plans: vec![],
    });
    let f = evaluate(&inv, &Policy::default());
    let v: BTreeSet<Rule> = only(&f, Status::Violation).iter().map(|f| f.rule).collect();
    assert_eq!(
        v,
        BTreeSet::from([
            Rule::Ec2VolumeRegion,
            Rule::Ec2SnapshotRegion,
            Rule::KmsKeyRegion,
            Rule::BackupVaultRegion,
            Rule::BackupRecoveryPointRegion
        ])
    );
    assert!(only(&f, Status::Violation)
        .iter()
        .all(|f| f.region == "ap-southeast-1"));
    // An empty vault outside Japan breaks the vault rule, not the recovery-point rule.
    inv.regions[2].backup.as_mut().unwrap().vaults[0].recovery_points = 0;
    let f = evaluate(&inv, &Policy::default());
    assert!(!only(&f, Status::Violation)
        .iter()
        .any(|f| f.rule == Rule::BackupRecoveryPointRegion));
}

#[test]
fn the_stack_vpc_has_no_path_to_the_internet_and_all_its_endpoints() {
    let set = |f: fn(&mut VpcFacts)| {
        let mut inv = compliant();
        let ec2 = inv.regions[0].ec2.as_mut().unwrap();
        f(&mut ec2.vpcs.as_mut().unwrap()[0]);
        inv
    };
    let v = the_one(
        &set(|v| v.internet_gateways = Ok(vec!["igw-1".into()])),
        &Policy::default(),
        Status::Violation,
    );
    assert_eq!(
        (v.rule, v.resource.as_str()),
        (
            Rule::NetworkInternetGateway,
            "arn:aws:ec2:ap-northeast-1::internet-gateway/igw-1"
        )
    );
    let v = the_one(
        &set(|v| v.egress_only_gateways = Ok(vec!["eigw-1".into()])),
        &Policy::default(),
        Status::Violation,
    );
    assert_eq!(v.rule, Rule::NetworkEgressOnlyGateway);
    let v = the_one(
        &set(|v| v.nat_gateways = Ok(vec!["nat-1".into()])),
        &Policy::default(),
        Status::Violation,
    );
    assert_eq!(v.rule, Rule::NetworkNatGateway);
    let v = the_one(
        &set(|v| {
            v.endpoint_services
                .as_mut()
                .unwrap()
                .retain(|s| s != "sts" && s != "s3")
        }),
        &Policy::default(),
        Status::Violation,
    );
    assert_eq!(v.rule, Rule::NetworkVpcEndpoints);
    assert!(v.detail.contains("s3, sts"), "{v:?}");
    let u = the_one(
        &set(|v| v.nat_gateways = Err("DescribeNatGateways: boom".into())),
        &Policy::default(),
        Status::Unknown,
    );
    assert_eq!(u.rule, Rule::NetworkNatGateway);

    // No VPC with the tag anywhere: nothing was checked, which is not a pass.
    let mut inv = compliant();
    inv.regions[0].ec2.as_mut().unwrap().vpcs = Ok(vec![]);
    let f = evaluate(&inv, &Policy::default());
    let unknown: BTreeSet<Rule> = only(&f, Status::Unknown).iter().map(|f| f.rule).collect();
    assert_eq!(unknown, BTreeSet::from(NETWORK_RULES));
}

#[test]
fn a_region_that_does_not_answer_is_unknown_never_compliant() {
    let mut inv = compliant();
    inv.regions[2].region = "ap-southeast-1".into();
    inv.regions[2].ec2 = Err("DescribeVolumes: dispatch failure: connection refused".into());
    inv.regions[2].kms = Err("ListKeys: dispatch failure".into());
    let f = evaluate(&inv, &Policy::default());
    let unknown = only(&f, Status::Unknown);
    assert_eq!(unknown.len(), 2, "{unknown:#?}");
    assert!(unknown
        .iter()
        .all(|f| f.rule == Rule::AuditRegionUnreachable && f.region == "ap-southeast-1"));
    let report = Report::new(f, vec![], &Policy::default());
    assert_eq!(report.exit_code(), 2);
    assert!(!report.complete);
    assert_eq!(report.rules[&Rule::AuditRegionUnreachable].unknown, 2);

    let mut inv = compliant();
    inv.buckets = Err("ListBuckets: AccessDenied".into());
    let u = the_one(&inv, &Policy::default(), Status::Unknown);
    assert_eq!(
        (u.rule, u.resource.as_str()),
        (Rule::AuditRegionUnreachable, "s3")
    );
}

#[test]
fn violations_outrank_unknowns_in_the_exit_code() {
    let mut inv = compliant();
    inv.regions[2].ec2 = Err("down".into());
    inv.buckets
        .as_mut()
        .unwrap()
        .push(bucket("stray", "us-east-1"));
    let report = Report::new(
        evaluate(&inv, &Policy::default()),
        vec![],
        &Policy::default(),
    );
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.summary.violation, 2);
    assert_eq!(report.summary.unknown, 1);
    let text = report.to_text();
    assert!(
        text.contains("VIOLATIONS FOUND") && text.contains("s3.bucket_region"),
        "{text}"
    );
}

#[test]
fn the_json_report_uses_the_documented_ids() {
    let mut inv = compliant();
    inv.buckets
        .as_mut()
        .unwrap()
        .push(bucket("stray", "us-east-1"));
    let report = Report::new(
        evaluate(&inv, &Policy::default()),
        vec![TOKYO.into()],
        &Policy::default(),
    );
    let v: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(v["schema"], "kenko.residency-report/v1");
    assert_eq!(v["summary"]["violation"], 2);
    assert_eq!(v["rules"]["s3.bucket_region"]["violation"], 1);
    assert_eq!(v["rules"].as_object().unwrap().len(), Rule::ALL.len());
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "violation" && f["rule"] == "s3.bucket_region")
        .unwrap();
    assert_eq!(f["resource"], "arn:aws:s3:::stray");
    assert_eq!(f["region"], "us-east-1");
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.findings, report.findings);
    for r in Rule::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
}

#[test]
fn remediation_removes_only_what_points_outside_japan() {
    let mut inv = compliant();
    inv.buckets.as_mut().unwrap()[0].replication = Ok(vec![
        replication("to-osaka", "records-replica", Ok(OSAKA.into())),
        replication("to-oregon", "x", Ok("us-west-2".into())),
        replication("same", "y", Ok(TOKYO.into())),
        replication("unknown", "z", Err("AccessDenied".into())),
    ]);
    inv.regions[0].backup.as_mut().unwrap().plans = vec![plan(
        TOKYO,
        vec![
            (&vault_arn(OSAKA, "o"), None),
            (&vault_arn("us-east-1", "u"), None),
        ],
        None,
    )];
    let actions = plan_remediation(&inv);
    assert_eq!(actions.len(), 2, "{actions:#?}");
    assert_eq!(actions[0].kind, "remove_replication_rules");
    assert_eq!(actions[0].resource, "arn:aws:s3:::records");
    assert_eq!(actions[0].removes, vec!["to-oregon".to_string()]);
    assert_eq!(actions[1].kind, "remove_copy_actions");
    assert_eq!(
        actions[1].removes,
        vec![format!("daily -> {}", vault_arn("us-east-1", "u"))]
    );
    assert!(actions.iter().all(|a| a.outcome == "planned"));
    assert!(plan_remediation(&compliant()).is_empty());
}

#[test]
fn arn_regions() {
    assert_eq!(
        arn_region("arn:aws:kms:ap-northeast-3:1:key/x"),
        Some("ap-northeast-3")
    );
    assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    assert_eq!(arn_region("1234-abcd"), None);
    assert_eq!(
        network::service_suffix("com.amazonaws.ap-northeast-1.ecr.api"),
        "ecr.api"
    );
    assert_eq!(
        network::service_suffix("com.amazonaws.ap-northeast-1.s3"),
        "s3"
    );
}

#[test]
fn every_rule_has_a_runbook_page_that_explains_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for rule in Rule::ALL {
        let page = root.join(rule.runbook());
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{rule}: runbook {} unreadable: {e}", page.display()));
        assert!(
            text.contains(&format!("`{}`", rule.as_str())),
            "{} does not explain `{rule}`",
            rule.runbook()
        );
    }
    let doc = std::fs::read_to_string(root.join("docs/residency-report.md")).unwrap();
    for rule in Rule::ALL {
        assert!(
            doc.contains(&format!("`{}`", rule.as_str())),
            "docs/residency-report.md lacks `{rule}`"
        );
    }
}
