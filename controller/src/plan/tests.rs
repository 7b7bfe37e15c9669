//! The pure plan: residency verdicts, children, data locations and conditions.

use super::*;
use k8s_openapi::api::core::v1::{TopologySelectorLabelRequirement, TopologySelectorTerm};
use kenko_api::samples::hachioji;

const AGENT_IMAGE: &str = "registry.city.example/kenko/kenko-agent@sha256:0123";

fn stack() -> HealthStack {
    let mut s = hachioji();
    s.metadata.namespace = Some("city".into());
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(3);
    s
}

fn class(name: &str, key: &str, values: &[&str]) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: "ebs.csi.aws.com".into(),
        allowed_topologies: Some(vec![TopologySelectorTerm {
            match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
                key: key.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }]),
        }]),
        ..Default::default()
    }
}

fn tokyo() -> StorageClass {
    class(
        "gp3-tokyo",
        "topology.ebs.csi.aws.com/zone",
        &["ap-northeast-1a", "ap-northeast-1c"],
    )
}

fn reason_of(r: &Residency) -> &'static str {
    match r {
        Residency::Compliant => "Compliant",
        Residency::Violation { reason, .. } => reason,
    }
}

#[test]
fn residency_verdicts() {
    let p = ResidencyPolicySpec::default();
    assert_eq!(
        residency(&stack(), &p, Some(&tokyo())),
        Residency::Compliant
    );
    let region = class(
        "gp3-tokyo",
        "topology.kubernetes.io/region",
        &["ap-northeast-1"],
    );
    assert_eq!(residency(&stack(), &p, Some(&region)), Residency::Compliant);

    let seoul = class(
        "gp3-tokyo",
        "topology.ebs.csi.aws.com/zone",
        &["ap-northeast-2a"],
    );
    assert_eq!(
        reason_of(&residency(&stack(), &p, Some(&seoul))),
        reason::STORAGE_CLASS_OUTSIDE_JAPAN
    );
    let osaka = class(
        "gp3-tokyo",
        "topology.ebs.csi.aws.com/zone",
        &["ap-northeast-3a"],
    );
    assert_eq!(
        reason_of(&residency(&stack(), &p, Some(&osaka))),
        reason::STORAGE_CLASS_OUTSIDE_JAPAN,
        "Japan, but not the stack's region"
    );
    let mut anywhere = tokyo();
    anywhere.allowed_topologies = None;
    assert_eq!(
        reason_of(&residency(&stack(), &p, Some(&anywhere))),
        reason::STORAGE_CLASS_OUTSIDE_JAPAN
    );
    assert_eq!(
        reason_of(&residency(&stack(), &p, None)),
        reason::STORAGE_CLASS_MISSING
    );

    let mut s = stack();
    s.spec.backup.region = "ap-northeast-1".into();
    assert_eq!(
        reason_of(&residency(&s, &p, Some(&tokyo()))),
        reason::BACKUP_SAME_REGION
    );

    let strict = ResidencyPolicySpec {
        min_retention_years: 30,
        ..Default::default()
    };
    assert_eq!(
        reason_of(&residency(&stack(), &strict, Some(&tokyo()))),
        reason::RETENTION_TOO_SHORT
    );
    let tokyo_only = ResidencyPolicySpec {
        allowed_regions: vec!["ap-northeast-1".into()],
        ..Default::default()
    };
    assert_eq!(
        reason_of(&residency(&stack(), &tokyo_only, Some(&tokyo()))),
        reason::REGION_NOT_ALLOWED
    );
    let classes = ResidencyPolicySpec {
        allowed_storage_classes: vec!["io2-tokyo".into()],
        ..Default::default()
    };
    assert_eq!(
        reason_of(&residency(&stack(), &classes, Some(&tokyo()))),
        reason::STORAGE_CLASS_NOT_ALLOWED
    );
}

#[test]
fn a_compliant_stack_gets_exactly_its_children_and_a_violating_one_none() {
    let ids: Vec<String> = children(&stack(), &Residency::Compliant, AGENT_IMAGE)
        .iter()
        .map(Child::id)
        .collect();
    assert_eq!(
        ids,
        [
            "ServiceAccount/hachioji-app",
            "Role/hachioji-app",
            "RoleBinding/hachioji-app",
            "ServiceAccount/hachioji-intake",
            "Secret/hachioji-db-credentials",
            "NetworkPolicy/hachioji-default-deny",
            "NetworkPolicy/hachioji-app",
            "NetworkPolicy/hachioji-db",
            "NetworkPolicy/hachioji-intake",
            "ConfigMap/hachioji-agent",
            "PersistentVolumeClaim/hachioji-data",
            "Service/hachioji-db",
            "StatefulSet/hachioji-db",
            "Deployment/hachioji-app",
            "Deployment/hachioji-intake",
            "Service/hachioji-intake",
            "Service/hachioji-app",
            "PodDisruptionBudget/hachioji-app",
        ]
    );
    let v = Residency::Violation {
        reason: reason::STORAGE_CLASS_OUTSIDE_JAPAN,
        message: String::new(),
    };
    assert!(
        children(&stack(), &v, AGENT_IMAGE).is_empty(),
        "no PVC outside Japan"
    );
}

#[test]
fn every_pod_meets_the_restricted_profile_and_is_owned() {
    for child in children(&stack(), &Residency::Compliant, AGENT_IMAGE) {
        let (meta, spec) = match &child {
            Child::Deployment(d) => (&d.metadata, d.spec.as_ref().unwrap().template.spec.clone()),
            Child::StatefulSet(s) => (&s.metadata, s.spec.as_ref().unwrap().template.spec.clone()),
            _ => continue,
        };
        assert_eq!(
            meta.owner_references.as_ref().unwrap()[0].kind,
            "HealthStack"
        );
        let spec = spec.unwrap();
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert!(spec.volumes.iter().flatten().all(|v| v.host_path.is_none()));
        assert_ne!(spec.host_network, Some(true));
        for c in spec.containers {
            let sc = c.security_context.unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", child.id());
            assert_eq!(
                sc.capabilities.unwrap().drop.unwrap(),
                vec!["ALL".to_string()]
            );
            assert_ne!(sc.privileged, Some(true));
        }
    }
}

#[test]
fn network_policies_allow_nothing_to_the_internet() {
    for child in children(&stack(), &Residency::Compliant, AGENT_IMAGE) {
        let Child::NetworkPolicy(np) = child else {
            continue;
        };
        let spec = np.spec.unwrap();
        for rule in spec.egress.iter().flatten() {
            for peer in rule.to.iter().flatten() {
                if let Some(b) = &peer.ip_block {
                    assert_ne!(b.cidr, "0.0.0.0/0");
                    assert_eq!(b.cidr, "10.20.0.0/24", "only the listed VPC endpoints");
                }
            }
        }
    }
}

#[test]
fn suspend_scales_every_writer_to_zero() {
    let mut s = stack();
    s.spec.suspend = true;
    for child in children(&s, &Residency::Compliant, AGENT_IMAGE) {
        match child {
            Child::Deployment(d) => assert_eq!(d.spec.unwrap().replicas, Some(0)),
            Child::StatefulSet(st) => assert_eq!(st.spec.unwrap().replicas, Some(0)),
            _ => {}
        }
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let conds = conditions(&s, &Residency::Compliant, &Observed::default(), &now);
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::SUSPENDED)
    );
}

#[test]
fn the_image_is_pinned_by_digest() {
    let d = children(&stack(), &Residency::Compliant, AGENT_IMAGE)
        .into_iter()
        .find_map(|c| match c {
            Child::Deployment(d) => Some(d),
            _ => None,
        })
        .unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(
        image,
        format!(
            "registry.city.example/health/app:1.4.2@sha256:{}",
            "a".repeat(64)
        )
    );
}

#[test]
fn data_locations_cover_volumes_buckets_replicas_backups_in_both_regions_and_the_key() {
    let locations: Vec<String> = data_locations(&stack())
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(
        locations,
        [
            "pvc:hachioji-data",
            "pvc:data-hachioji-db-0",
            "s3://kenko-prod-records-123456789012-ap-northeast-1",
            "s3://kenko-prod-records-123456789012-ap-northeast-3",
            "s3://kenko-prod-intake-123456789012-ap-northeast-1/hachioji/",
            "backup-vault:ap-northeast-1/kenko-prod-tokyo",
            "backup-vault:ap-northeast-3/kenko-prod-osaka",
            // The stack's multi-Region key: the Osaka replica, then the primary.
            "kms:arn:aws:kms:ap-northeast-3:123456789012:key/mrk-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "kms:arn:aws:kms:ap-northeast-1:123456789012:key/mrk-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ]
    );
    // A single-Region key has no replica.
    assert_eq!(
        osaka_replica("arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab"),
        None
    );
    assert!(
        !locations.iter().any(|l| l.starts_with("datakey:")),
        "never the agent's own data key"
    );
    // The S3 inbox is a location too; an external database has no volume of the stack's.
    let mut s = stack();
    s.spec.database.managed = None;
    s.spec.database.external = Some(kenko_api::ExternalDatabase {
        host: "db.internal".into(),
        port: 5432,
        secret_name: "db".into(),
        cidrs: vec!["10.40.64.0/24".into()],
    });
    let l: Vec<String> = data_locations(&s)
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert!(l.contains(&"s3://kenko-prod-intake-123456789012-ap-northeast-1/hachioji/".to_string()));
    assert!(!l.contains(&"pvc:data-hachioji-db-0".to_string()));
    // A location admitted under an older CRD that is not a target: an error, not a release.
    let mut bad = stack();
    bad.spec.storage.records_bucket = Some("s3://Not_A_Bucket".into());
    assert!(data_locations(&bad).is_err());
}

#[test]
fn an_external_database_is_reachable_on_its_port_without_endpoint_cidrs() {
    let mut s = stack();
    s.spec.database.managed = None;
    s.spec.network.allowed_egress_cidrs = vec![];
    s.spec.database.external = Some(kenko_api::ExternalDatabase {
        host: "db.internal".into(),
        port: 6432,
        secret_name: "db".into(),
        cidrs: vec!["10.40.64.0/24".into()],
    });
    let kids = children(&s, &Residency::Compliant, AGENT_IMAGE);
    let app = kids
        .iter()
        .find_map(|c| match c {
            Child::NetworkPolicy(n) if n.metadata.name.as_deref() == Some("hachioji-app") => {
                Some(n.clone())
            }
            _ => None,
        })
        .unwrap();
    let egress = app.spec.unwrap().egress.unwrap();
    let db = egress
        .iter()
        .find(|e| {
            e.to.iter().flatten().any(|p| {
                p.ip_block
                    .as_ref()
                    .is_some_and(|b| b.cidr == "10.40.64.0/24")
            })
        })
        .expect("an egress rule to the database's subnet");
    assert_eq!(
        db.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(6432))
    );
}

#[test]
fn a_public_egress_range_is_refused_before_anything_is_applied() {
    let mut s = stack();
    s.spec.network.allowed_egress_cidrs = vec!["8.0.0.0/8".into()];
    let v = residency(&s, &ResidencyPolicySpec::default(), Some(&tokyo()));
    assert_eq!(reason_of(&v), reason::EGRESS_NOT_PRIVATE);
    assert!(children(&s, &v, AGENT_IMAGE).is_empty());
}

#[test]
fn conditions_keep_their_transition_time_and_report_readiness() {
    let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
    let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_600).unwrap());
    let mut s = stack();
    let waiting = conditions(&s, &Residency::Compliant, &Observed::default(), &t0);
    let ready = waiting.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::APPLYING)
    );
    s.status = Some(kenko_api::HealthStackStatus {
        conditions: waiting,
        ..Default::default()
    });
    let up = Observed {
        app_available: 2,
        ..Default::default()
    };
    let now_ready = conditions(&s, &Residency::Compliant, &up, &t1);
    let ready = now_ready.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", reason::RECONCILED)
    );
    assert_eq!(ready.last_transition_time, t1);
    let residency = now_ready
        .iter()
        .find(|c| c.type_ == "ResidencyCompliant")
        .unwrap();
    assert_eq!(
        residency.last_transition_time, t0,
        "unchanged status keeps its time"
    );
    assert_eq!(ready.observed_generation, Some(3));
}

fn audit(violations: u32, unknown: u32) -> kenko_api::AccountAudit {
    let mut findings = Vec::new();
    for i in 0..violations {
        findings.push(kenko_api::AuditFinding {
            rule: "s3.replication".into(),
            status: "Violation".into(),
            resource: format!("arn:aws:s3:::records-{i}"),
            region: "ap-northeast-1".into(),
        });
    }
    for _ in 0..unknown {
        findings.push(kenko_api::AuditFinding {
            rule: "audit.region_unreachable".into(),
            status: "Unknown".into(),
            resource: "region".into(),
            region: "ap-southeast-1".into(),
        });
    }
    kenko_api::AccountAudit {
        completed_at: "2026-11-26T03:00:00Z".into(),
        auditor: "kenko-agent-x".into(),
        regions: vec!["ap-northeast-1".into(), "ap-northeast-3".into()],
        compliant: 40,
        violations,
        unknown,
        findings,
        interval_secs: 3600,
        backups: vec![],
    }
}

/// 2026-11-26T03:00:00Z.
fn at_audit_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_795_662_000).unwrap())
}

/// An audit that checked `city/hachioji` at `checked_at` and found `reason`.
fn backup_audit(reason: &str, checked_at: &str) -> kenko_api::AccountAudit {
    let mut a = audit(0, 0);
    a.backups = vec![kenko_api::residency::StackBackup {
        namespace: "city".into(),
        name: "hachioji".into(),
        reason: reason.into(),
        message: format!("{reason} pvc:hachioji-data (vol-1): what the agent saw"),
        checked_at: checked_at.into(),
    }];
    a
}

fn backup_of(a: Option<kenko_api::AccountAudit>) -> (String, String, String) {
    let observed = Observed {
        app_available: 2,
        audit: a,
        ..Default::default()
    };
    let cs = conditions(&stack(), &Residency::Compliant, &observed, &at_audit_time());
    let (st, r, m) = status_of(&cs, "BackupConfigured");
    (st.to_string(), r.to_string(), m.to_string())
}

#[test]
fn backup_configured_follows_the_published_audit_of_the_stack() {
    // Covered, half an hour ago.
    let (st, r, m) = backup_of(Some(backup_audit("BackupCovered", "2026-11-26T02:30:00Z")));
    assert_eq!((st.as_str(), r.as_str()), ("True", reason::BACKUP_COVERED));
    assert!(
        m.contains("2026-11-26T02:30:00Z") && m.contains("what the agent saw"),
        "{m}"
    );
    // Each reason the audit reports is the condition's, False.
    for why in [
        reason::NO_BACKUP_PLAN,
        reason::NO_RECENT_RECOVERY_POINT,
        reason::NO_CROSS_REGION_COPY,
        reason::AUDIT_INCOMPLETE,
    ] {
        let (st, r, _) = backup_of(Some(backup_audit(why, "2026-11-26T02:30:00Z")));
        assert_eq!((st.as_str(), r.as_str()), ("False", why));
    }
    // What the spec asks for is never evidence: no audit, or one without this stack.
    let incomplete = |a: Option<kenko_api::AccountAudit>, needle: &str| {
        let (st, r, m) = backup_of(a);
        assert_eq!(
            (st.as_str(), r.as_str()),
            ("False", reason::AUDIT_INCOMPLETE),
            "{m}"
        );
        assert!(m.contains(needle), "{needle:?} in {m}");
        assert!(!m.contains('\n') && m.len() <= kenko_api::MAX_MESSAGE);
    };
    incomplete(None, "no account audit");
    let mut other = backup_audit("BackupCovered", "2026-11-26T02:30:00Z");
    other.backups[0].namespace = "fuchu".into();
    incomplete(Some(other), "did not check this stack");
    // Stale: older than twice the interval (one hour: two; two hours: four).
    incomplete(
        Some(backup_audit("BackupCovered", "2026-11-26T00:30:00Z")),
        "older than 120 minutes",
    );
    let mut slow = backup_audit("BackupCovered", "2026-11-26T00:30:00Z");
    slow.interval_secs = 7200;
    assert_eq!(backup_of(Some(slow)).1, reason::BACKUP_COVERED);
    // However long the interval it claims, two days at most.
    let mut forever = backup_audit("BackupCovered", "2026-11-23T03:00:00Z");
    forever.interval_secs = u32::MAX;
    incomplete(Some(forever), "older than 2880 minutes");
    // A malformed status is not believed.
    incomplete(
        Some(backup_audit("BackupCovered", "yesterday")),
        "not a time",
    );
    incomplete(
        Some(backup_audit("BackupCovered", "2026-11-27T03:00:00Z")),
        "in the future",
    );
    incomplete(
        Some(backup_audit("AllGood", "2026-11-26T02:30:00Z")),
        "does not know",
    );
    let mut long = backup_audit("NoBackupPlan", "2026-11-26T02:30:00Z");
    long.backups[0].message = format!("first line\n{}", "x".repeat(5000));
    let (_, r, m) = backup_of(Some(long));
    assert_eq!(r, reason::NO_BACKUP_PLAN);
    assert!(
        !m.contains('\n') && m.len() <= kenko_api::MAX_MESSAGE,
        "{m}"
    );
    // A spec that breaks the backup rules says so, whatever the audit found.
    let bad = Residency::Violation {
        reason: reason::BACKUP_SAME_REGION,
        message: "same region".into(),
    };
    let observed = Observed {
        audit: Some(backup_audit("BackupCovered", "2026-11-26T02:30:00Z")),
        ..Default::default()
    };
    let cs = conditions(&stack(), &bad, &observed, &at_audit_time());
    assert_eq!(
        status_of(&cs, "BackupConfigured").1,
        reason::BACKUP_SAME_REGION
    );
}

fn status_of<'a>(cs: &'a [Condition], t: &str) -> (&'a str, &'a str, &'a str) {
    let c = cs.iter().find(|c| c.type_ == t).unwrap();
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn the_account_audit_decides_residency_but_never_stops_the_app() {
    let t = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
    let s = stack();
    let up = |audit| Observed {
        app_available: 2,
        apply_error: None,
        audit,
        intake: None,
    };
    // No audit reported yet, or a clean one: the spec checks alone decide.
    for a in [None, Some(audit(0, 0))] {
        let cs = conditions(&s, &Residency::Compliant, &up(a), &t);
        assert_eq!(status_of(&cs, "ResidencyCompliant").1, reason::RESIDENCY_OK);
        assert_eq!(status_of(&cs, "Degraded").0, "False");
    }
    let cs = conditions(&s, &Residency::Compliant, &up(Some(audit(5, 1))), &t);
    let (st, r, m) = status_of(&cs, "ResidencyCompliant");
    assert_eq!((st, r), ("False", reason::AUDIT_VIOLATION));
    assert!(
        m.contains("5 violation(s)") && m.contains("s3.replication"),
        "{m}"
    );
    assert!(m.contains("(and 3 more)"), "three shown of six: {m}");
    assert_eq!(status_of(&cs, "Degraded").1, reason::AUDIT_VIOLATION);
    // The app keeps running: the stray copy is in the account. Its backups are what the audit
    // found for this stack (nothing here), never what the spec asks for.
    assert_eq!(status_of(&cs, "Ready").0, "True");
    assert_eq!(
        status_of(&cs, "BackupConfigured"),
        (
            "False",
            reason::AUDIT_INCOMPLETE,
            status_of(&cs, "BackupConfigured").2
        )
    );

    let cs = conditions(&s, &Residency::Compliant, &up(Some(audit(0, 2))), &t);
    assert_eq!(
        status_of(&cs, "ResidencyCompliant").1,
        reason::AUDIT_INCOMPLETE
    );

    // A spec violation keeps its own reason (and still deploys nothing).
    let bad = Residency::Violation {
        reason: reason::BACKUP_SAME_REGION,
        message: "same".into(),
    };
    let cs = conditions(&s, &bad, &up(Some(audit(1, 0))), &t);
    assert_eq!(
        status_of(&cs, "ResidencyCompliant").1,
        reason::BACKUP_SAME_REGION
    );
    assert_eq!(status_of(&cs, "Ready").0, "False");
}

fn intake_of(kids: &[Child]) -> (Deployment, NetworkPolicy) {
    let d = kids
        .iter()
        .find_map(|c| match c {
            Child::Deployment(d) if d.metadata.name.as_deref() == Some("hachioji-intake") => {
                Some(d.clone())
            }
            _ => None,
        })
        .expect("the intake Deployment");
    let n = kids
        .iter()
        .find_map(|c| match c {
            Child::NetworkPolicy(n) if n.metadata.name.as_deref() == Some("hachioji-intake") => {
                Some(n.clone())
            }
            _ => None,
        })
        .expect("the intake NetworkPolicy");
    (d, n)
}

#[test]
fn the_controller_reaches_an_intake_that_is_not_ready() {
    // A stuck or read-only intake answers /readyz with 503; its Service still routes to it, so
    // the controller reads why (IntakeHealthy) and Prometheus keeps scraping it.
    let kids = children(&stack(), &Residency::Compliant, AGENT_IMAGE);
    let svc = kids
        .iter()
        .find_map(|c| match c {
            Child::Service(s) if s.metadata.name.as_deref() == Some("hachioji-intake") => {
                Some(s.clone())
            }
            _ => None,
        })
        .expect("the intake Service");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let (d, _) = intake_of(&kids);
    let pod = d.spec.unwrap().template.spec.unwrap();
    let probe = pod.containers[0].readiness_probe.clone().unwrap();
    assert_eq!(
        probe.http_get.unwrap().path.as_deref(),
        Some("/readyz"),
        "the readiness the Service ignores is /readyz"
    );
    assert!(intake_authority(&stack()).starts_with("hachioji-intake."));
}

fn secret_ref(c: &Container, env: &str) -> (String, String) {
    let r = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == env)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{env} from a Secret"));
    (r.name.clone(), r.key.clone())
}

#[test]
fn the_intake_runs_the_agent_image_with_the_rendered_config_its_secrets_and_memory_only() {
    let kids = children(&stack(), &Residency::Compliant, AGENT_IMAGE);
    let (d, _) = intake_of(&kids);
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("hachioji-intake"));
    assert_eq!(
        pod.automount_service_account_token,
        Some(false),
        "no API access"
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(AGENT_IMAGE));
    assert_eq!(
        c.args.clone().unwrap(),
        ["run", "--config", "/etc/kenko/kenko.toml"]
    );
    assert_eq!(
        secret_ref(c, intake::ENV_DATABASE_PASSWORD),
        ("hachioji-db-credentials".into(), "password".into())
    );
    let volumes = pod.volumes.unwrap();
    let by_name = |n: &str| volumes.iter().find(|v| v.name == n).unwrap().clone();
    assert_eq!(
        by_name("config").config_map.unwrap().name,
        "hachioji-agent",
        "the ConfigMap the controller renders"
    );
    // The stack has a KMS key: the data key is wrapped in its database, and no Secret or
    // file holds it in clear.
    assert!(volumes.iter().all(|v| v.name != "data-key"), "{volumes:?}");
    let work = by_name("work").empty_dir.unwrap();
    assert_eq!(
        work.medium.as_deref(),
        Some("Memory"),
        "no delivery on a node's disk"
    );
    // The rendered configuration is the one mounted, with the S3 inbox of the spec.
    let cm = kids
        .iter()
        .find_map(|k| match k {
            Child::ConfigMap(cm) => Some(cm.clone()),
            _ => None,
        })
        .unwrap();
    let toml = &cm.data.unwrap()[intake::CONFIG_FILE];
    assert!(
        toml.contains(&format!("inbox = \"{}\"", stack().spec.intake.inbox)),
        "{toml}"
    );
    assert!(!toml.to_lowercase().contains("password"), "{toml}");
    assert!(
        toml.contains(&format!(
            "kms_key_arn = \"{}\"\nstack = \"city/hachioji\"",
            stack().spec.storage.kms_key_arn.unwrap()
        )),
        "{toml}"
    );
    assert!(!toml.contains("data_key_file"), "{toml}");

    // Without a KMS key: the generated Secret, mounted read-only, owner-only.
    let mut s = stack();
    s.spec.storage.kms_key_arn = None;
    let kids = children(&s, &Residency::Compliant, AGENT_IMAGE);
    assert!(kids.iter().any(|k| k.id() == "Secret/hachioji-data-key"));
    let (d, _) = intake_of(&kids);
    let pod = d.spec.unwrap().template.spec.unwrap();
    let key = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "data-key")
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(key.secret_name.as_deref(), Some("hachioji-data-key"));
    assert_eq!(key.default_mode, Some(0o400));

    // An external database: its own Secret, and no generated credentials.
    let mut s = stack();
    s.spec.database.managed = None;
    s.spec.database.external = Some(kenko_api::ExternalDatabase {
        host: "db.internal".into(),
        port: 6432,
        secret_name: "city-db".into(),
        cidrs: vec!["10.40.64.0/24".into()],
    });
    let kids = children(&s, &Residency::Compliant, AGENT_IMAGE);
    assert!(!kids
        .iter()
        .any(|k| k.id() == "Secret/hachioji-db-credentials"));
    let (d, np) = intake_of(&kids);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        secret_ref(&pod.containers[0], intake::ENV_DATABASE_USER),
        ("city-db".into(), "username".into())
    );
    let ports: Vec<_> = np
        .spec
        .unwrap()
        .egress
        .unwrap()
        .iter()
        .flat_map(|e| e.ports.clone().unwrap_or_default())
        .filter_map(|p| p.port)
        .collect();
    assert!(ports.contains(&IntOrString::Int(6432)), "{ports:?}");
}

#[test]
fn the_intake_reaches_only_its_database_dns_and_the_endpoints() {
    let (_, np) = intake_of(&children(&stack(), &Residency::Compliant, AGENT_IMAGE));
    let spec = np.spec.unwrap();
    let egress = spec.egress.unwrap();
    let mut allowed: Vec<String> = egress
        .iter()
        .map(|e| {
            let to: Vec<String> =
                e.to.iter()
                    .flatten()
                    .map(|p| match (&p.ip_block, &p.pod_selector) {
                        (Some(b), _) => b.cidr.clone(),
                        (None, Some(sel)) => sel
                            .match_labels
                            .as_ref()
                            .and_then(|l| {
                                l.get("app.kubernetes.io/component")
                                    .or_else(|| l.get("k8s-app"))
                                    .cloned()
                            })
                            .unwrap_or_else(|| "any pod".into()),
                        (None, None) => "namespace".into(),
                    })
                    .collect();
            let ports: Vec<String> = e
                .ports
                .iter()
                .flatten()
                .map(|p| format!("{:?}", p.port))
                .collect();
            format!("{to:?} {ports:?}")
        })
        .collect();
    allowed.sort();
    assert_eq!(
        allowed,
        [
            r#"["10.20.0.0/24"] ["Some(Int(443))"]"#,
            r#"["database"] ["Some(Int(5432))"]"#,
            r#"["kube-dns"] ["Some(Int(53))", "Some(Int(53))"]"#,
        ],
        "DNS, the stack's database, the VPC endpoints: nothing else"
    );
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(intake::METRICS_PORT)),
        "only metrics scrapes come in"
    );
}

#[test]
fn the_database_lets_in_the_app_and_the_intake_only() {
    let kids = children(&stack(), &Residency::Compliant, AGENT_IMAGE);
    let np = kids
        .iter()
        .find_map(|c| match c {
            Child::NetworkPolicy(n) if n.metadata.name.as_deref() == Some("hachioji-db") => {
                Some(n.clone())
            }
            _ => None,
        })
        .unwrap();
    let from: Vec<String> = np.spec.unwrap().ingress.unwrap()[0]
        .from
        .iter()
        .flatten()
        .filter_map(|p| p.pod_selector.as_ref())
        .filter_map(|s| s.match_labels.as_ref())
        .filter_map(|l| l.get("app.kubernetes.io/component").cloned())
        .collect();
    assert_eq!(from, ["app", "intake"]);
    // The managed database starts with the generated credentials.
    let st = kids
        .iter()
        .find_map(|c| match c {
            Child::StatefulSet(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let c = &st.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        secret_ref(c, "POSTGRES_PASSWORD"),
        ("hachioji-db-credentials".into(), "password".into())
    );
}

#[test]
fn what_the_intake_reports_is_checked_before_it_is_believed() {
    use kenko_api::intake::IntakeReport;
    let good = IntakeReport {
        reason: "IntakeOk".into(),
        message: "3 file(s) loaded".into(),
        last_round_at: Some("2026-12-06T09:00:00Z".into()),
        last_file_at: Some("not a time".into()),
        claim_month: Some("2026-11".into()),
        files_loaded: 3,
        files_returned: 1,
        rows_accepted: u64::MAX,
        rows_rejected: 2,
    };
    let o = intake_observation(Ok(good.clone()));
    assert!(o.healthy);
    let st = o.status.unwrap();
    assert_eq!(st.last_round_at.as_deref(), Some("2026-12-06T09:00:00Z"));
    assert_eq!(st.last_file_at, None, "a time that is not one is dropped");
    assert_eq!(st.rows_accepted, i64::MAX, "bounded");
    assert_eq!(st.claim_month.as_deref(), Some("2026-11"));
    let o = intake_observation(Ok(IntakeReport {
        claim_month: Some("2026-11; DROP".into()),
        ..good.clone()
    }));
    assert_eq!(
        o.status.unwrap().claim_month,
        None,
        "a month that is not one is dropped"
    );

    let o = intake_observation(Ok(IntakeReport {
        reason: "Ready".into(),
        ..good.clone()
    }));
    assert_eq!((o.healthy, o.reason), (false, reason::INTAKE_NOT_REPORTING));
    assert!(o.status.is_none(), "nothing of an unknown report is shown");

    let o = intake_observation(Ok(IntakeReport {
        reason: "RegisterMissing".into(),
        message: "line one\nline two".into(),
        ..good
    }));
    assert_eq!((o.healthy, o.reason), (false, reason::REGISTER_MISSING));
    assert!(!o.message.contains('\n'), "{}", o.message);

    let o = intake_observation(Err("connection refused".into()));
    assert_eq!(o.reason, reason::INTAKE_NOT_REPORTING);
    assert!(o.message.contains("connection refused"));

    // The condition: the intake's own reason, or Suspended.
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let observed = Observed {
        intake: Some(o),
        ..Default::default()
    };
    let cs = conditions(&stack(), &Residency::Compliant, &observed, &now);
    assert_eq!(
        status_of(&cs, "IntakeHealthy").1,
        reason::INTAKE_NOT_REPORTING
    );
    let mut s = stack();
    s.spec.suspend = true;
    let cs = conditions(&s, &Residency::Compliant, &observed, &now);
    assert_eq!(status_of(&cs, "IntakeHealthy").1, reason::SUSPENDED);
}

/// A changed configuration rolls the intake, and the pod with the last good one keeps
/// running until a new one is ready: the template carries the rendered file's SHA-256 and the
/// rollout never takes a pod away first.
#[test]
fn a_changed_configuration_rolls_the_intake_and_keeps_the_last_good_pod_until_the_new_one_is_ready()
{
    use sha2::Digest;
    let hash_of = |s: &HealthStack| {
        let kids = children(s, &Residency::Compliant, AGENT_IMAGE);
        let (d, _) = intake_of(&kids);
        let cm = kids
            .iter()
            .find_map(|k| match k {
                Child::ConfigMap(cm) => Some(cm.clone()),
                _ => None,
            })
            .unwrap();
        let rendered = cm.data.unwrap()[intake::CONFIG_FILE].clone();
        let spec = d.spec.unwrap();
        let strategy = spec.strategy.unwrap();
        let ru = strategy.rolling_update.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
        let annotations = spec.template.metadata.unwrap().annotations.unwrap();
        let hash = annotations[intake::CONFIG_HASH_ANNOTATION].clone();
        assert_eq!(
            hash,
            hex::encode(sha2::Sha256::digest(rendered.as_bytes())),
            "the hash of the ConfigMap the pods mount"
        );
        hash
    };
    let mut s = stack();
    let before = hash_of(&s);
    assert_eq!(hash_of(&s), before, "the same spec, the same pods");
    s.spec.intake.schedule = "*/5 * * * *".into();
    assert_ne!(hash_of(&s), before, "a new schedule rolls the pods");
}
