//! `backup.coverage` on recorded answers (moto has no backup selections, recovery points or
//! copy jobs): each reason from the shape it names, each Unknown from the fact that could not
//! be read, the schedule's interval, the selection semantics, and the per-stack verdict.

use super::super::{evaluate, BackupFacts, PlanRuleFacts, RegionFacts, Status};
use super::*;

const TOKYO: &str = "ap-northeast-1";
const OSAKA: &str = "ap-northeast-3";
const ACCOUNT: &str = "123456789012";
/// The audit's "now": 2026-11-26T03:00:00Z.
const NOW: i64 = 1_795_662_000;
const HOUR: i64 = 3600;

fn vault_arn(region: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}")
}

fn volume_arn(id: &str) -> String {
    format!("arn:aws:ec2:{TOKYO}:{ACCOUNT}:volume/{id}")
}

/// Terraform's selection: STRINGEQUALS kenko:backup = true (ListOfTags).
fn tagged_selection() -> SelectionFacts {
    SelectionFacts {
        name: "kenko-prod-tagged".into(),
        list_of_tags: vec![("kenko:backup".into(), "true".into())],
        ..SelectionFacts::default()
    }
}

fn plan(schedule: &str, selections: Fact<Vec<SelectionFacts>>) -> PlanFacts {
    PlanFacts {
        id: "p1".into(),
        arn: format!("arn:aws:backup:{TOKYO}:{ACCOUNT}:backup-plan:p1"),
        rules: Ok(vec![PlanRuleFacts {
            name: "daily-copy-to-osaka".into(),
            delete_after_days: Some(7305),
            copies: vec![],
            schedule: Some(schedule.into()),
        }]),
        selections: Some(selections),
    }
}

fn region(name: &str, plans: Vec<PlanFacts>) -> RegionFacts {
    RegionFacts {
        region: name.into(),
        ec2: Ok(super::super::Ec2Facts {
            volumes: vec![],
            snapshots: vec![],
            vpcs: Ok(vec![]),
        }),
        kms: Ok(vec![]),
        backup: Ok(BackupFacts {
            vaults: vec![],
            plans,
        }),
    }
}

fn tags(backup: bool) -> BTreeMap<String, String> {
    let mut t = BTreeMap::from([
        (
            kenko_api::names::PVC_NAMESPACE_TAG.to_string(),
            "hachioji".to_string(),
        ),
        (
            kenko_api::names::PVC_NAME_TAG.to_string(),
            "hachioji-data".to_string(),
        ),
    ]);
    if backup {
        t.insert("kenko:backup".into(), "true".into());
    }
    t
}

fn point(arn: &str, vault: &str, age_hours: i64) -> PointFacts {
    PointFacts {
        arn: arn.into(),
        vault_arn: vault.into(),
        source_vault_arn: None,
        created: NOW - age_hours * HOUR,
        status: "COMPLETED".into(),
    }
}

/// A volume backed up 10 hours ago in Tokyo and copied to Osaka (the copy job completed).
fn covered_volume(id: &str) -> ResourceFacts {
    let rp = format!("arn:aws:ec2:{TOKYO}::snapshot/snap-{id}");
    ResourceFacts {
        arn: volume_arn(id),
        id: id.into(),
        region: TOKYO.into(),
        tags: Ok(tags(true)),
        points: Ok(vec![point(&rp, &vault_arn(TOKYO, "kenko-prod-tokyo"), 10)]),
        copies: Ok(vec![]),
        copy_jobs: Ok(vec![CopyJobFacts {
            source_point_arn: rp,
            destination_vault_arn: vault_arn(OSAKA, "kenko-prod-osaka"),
            state: "COMPLETED".into(),
        }]),
    }
}

fn stack() -> StackLocations {
    StackLocations {
        namespace: "hachioji".into(),
        name: "hachioji".into(),
        region: TOKYO.into(),
        backup_region: OSAKA.into(),
        vault: "kenko-prod-osaka".into(),
        source_vault: "kenko-prod-tokyo".into(),
        records_bucket: None,
        claims: vec!["hachioji-data".into()],
    }
}

/// One stack, one claim, one volume, a daily plan selecting by tag: covered.
fn inventory(resources: Fact<Vec<ResourceFacts>>) -> Inventory {
    Inventory {
        s3_region: TOKYO.into(),
        buckets: Ok(vec![]),
        regions: vec![
            region(
                TOKYO,
                vec![plan("cron(0 17 * * ? *)", Ok(vec![tagged_selection()]))],
            ),
            region(OSAKA, vec![]),
        ],
        coverage: CoverageFacts {
            now: NOW,
            stacks: Ok(vec![StackFacts {
                stack: stack(),
                locations: vec![LocationFacts {
                    location: "pvc:hachioji-data".into(),
                    resources,
                }],
            }]),
        },
    }
}

fn covered() -> Inventory {
    inventory(Ok(vec![covered_volume("vol-1")]))
}

fn volume(inv: &mut Inventory) -> &mut ResourceFacts {
    let stacks = inv.coverage.stacks.as_mut().unwrap();
    &mut stacks[0].locations[0].resources.as_mut().unwrap()[0]
}

fn tokyo_plan(inv: &mut Inventory) -> &mut PlanFacts {
    &mut inv.regions[0].backup.as_mut().unwrap().plans[0]
}

/// The one `backup.coverage` finding.
fn the_finding(inv: &Inventory) -> Finding {
    let f: Vec<Finding> = evaluate(inv, &super::super::Policy::default())
        .into_iter()
        .filter(|f| f.rule == Rule::BackupCoverage)
        .collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    f[0].clone()
}

fn reason_of(inv: &Inventory) -> (Coverage, Status, String) {
    let f = the_finding(inv);
    let b = f.backup.clone().unwrap();
    assert_eq!(b.stack, "hachioji/hachioji");
    assert_eq!(b.location, "pvc:hachioji-data");
    assert_eq!(f.status, b.reason.status());
    (b.reason, f.status, f.detail)
}

#[test]
fn a_selected_volume_with_a_recent_point_copied_to_osaka_is_covered() {
    let (r, st, d) = reason_of(&covered());
    assert_eq!((r, st), (Coverage::BackupCovered, Status::Compliant), "{d}");
    assert!(
        d.starts_with("stack hachioji/hachioji, pvc:hachioji-data (vol-1): "),
        "{d}"
    );
    assert!(
        d.contains("#selection/kenko-prod-tagged") && d.contains("kenko-prod-osaka"),
        "{d}"
    );
    let f = the_finding(&covered());
    assert_eq!(f.resource, volume_arn("vol-1"));
    // A copy found in the Osaka vault instead of by its copy job covers it too.
    let mut inv = covered();
    let v = volume(&mut inv);
    v.copy_jobs = Ok(vec![]);
    v.copies = Ok(vec![PointFacts {
        source_vault_arn: Some(vault_arn(TOKYO, "kenko-prod-tokyo")),
        ..point("arn:osaka-copy", &vault_arn(OSAKA, "kenko-prod-osaka"), 8)
    }]);
    assert_eq!(reason_of(&inv).0, Coverage::BackupCovered);
    // And when one evidence could not be read, the other is enough.
    volume(&mut inv).copy_jobs = Err("ListCopyJobs: AccessDenied".into());
    assert_eq!(reason_of(&inv).0, Coverage::BackupCovered);
}

#[test]
fn no_plan_selecting_it_is_no_backup_plan() {
    // Not tagged kenko:backup=true: the tag selection does not take it.
    let mut inv = covered();
    volume(&mut inv).tags = Ok(tags(false));
    let (r, st, d) = reason_of(&inv);
    assert_eq!((r, st), (Coverage::NoBackupPlan, Status::Violation));
    assert!(d.contains("kenko:backup=true"), "{d}");
    // Recovery points do not make up for it: an on-demand backup is not a plan.
    // Excluded by NotResources, though tagged.
    let mut inv = covered();
    tokyo_plan(&mut inv).selections = Some(Ok(vec![SelectionFacts {
        not_resources: vec![format!("arn:aws:ec2:*:*:volume/vol-1")],
        ..tagged_selection()
    }]));
    assert_eq!(reason_of(&inv).0, Coverage::NoBackupPlan);
    // No plan at all in the region.
    let mut inv = covered();
    inv.regions[0].backup.as_mut().unwrap().plans.clear();
    let (r, _, d) = reason_of(&inv);
    assert_eq!(r, Coverage::NoBackupPlan);
    assert!(d.contains("no backup plan in ap-northeast-1"), "{d}");
}

#[test]
fn a_location_without_any_resource_is_still_reported() {
    // The claim's volume carries no claim tags, so no volume is found for it at all.
    let inv = inventory(Ok(vec![]));
    let f = the_finding(&inv);
    let (r, st, d) = reason_of(&inv);
    assert_eq!((r, st), (Coverage::NoBackupPlan, Status::Violation));
    assert_eq!(f.resource, "pvc:hachioji-data");
    assert!(
        d.contains("kubernetes.io/created-for/pvc/namespace=hachioji")
            && d.contains("kubernetes.io/created-for/pvc/name=hachioji-data"),
        "{d}"
    );
    // A records bucket that does not exist, likewise.
    let mut inv = covered();
    inv.coverage.stacks.as_mut().unwrap()[0]
        .locations
        .push(LocationFacts {
            location: "s3://kenko-prod-records".into(),
            resources: Ok(vec![]),
        });
    let f = evaluate(&inv, &super::super::Policy::default());
    let bucket = f
        .iter()
        .find(|f| f.resource == "s3://kenko-prod-records")
        .unwrap();
    assert_eq!(bucket.status, Status::Violation);
    assert!(
        bucket.detail.contains("does not exist"),
        "{}",
        bucket.detail
    );
}

#[test]
fn a_point_older_than_the_schedule_and_its_margin_is_no_recent_recovery_point() {
    // Daily: 24h + 6h. 29 hours is recent, 31 is not.
    let mut inv = covered();
    volume(&mut inv).points.as_mut().unwrap()[0].created = NOW - 29 * HOUR;
    assert_eq!(reason_of(&inv).0, Coverage::BackupCovered);
    volume(&mut inv).points.as_mut().unwrap()[0].created = NOW - 31 * HOUR;
    let (r, st, d) = reason_of(&inv);
    assert_eq!(
        (r, st),
        (Coverage::NoRecentRecoveryPoint, Status::Violation)
    );
    assert!(
        d.contains("last 30h") && d.contains("2026-11-24T20:00:00Z"),
        "{d}"
    );
    // A weekly plan (Mondays and Thursdays: the longest gap is 4 days) accepts it.
    tokyo_plan(&mut inv).rules.as_mut().unwrap()[0].schedule =
        Some("cron(0 17 ? * MON,THU *)".into());
    assert_eq!(reason_of(&inv).0, Coverage::BackupCovered);
    // A point that did not complete does not count.
    let mut inv = covered();
    volume(&mut inv).points.as_mut().unwrap()[0].status = "PARTIAL".into();
    let (r, _, d) = reason_of(&inv);
    assert_eq!(r, Coverage::NoRecentRecoveryPoint);
    assert!(d.contains("none in the last 40d"), "{d}");
    // No point at all.
    let mut inv = covered();
    volume(&mut inv).points = Ok(vec![]);
    assert_eq!(reason_of(&inv).0, Coverage::NoRecentRecoveryPoint);
}

#[test]
fn a_recent_point_without_a_copy_in_the_other_region_is_no_cross_region_copy() {
    let no_copy = |f: fn(&mut ResourceFacts)| {
        let mut inv = covered();
        f(volume(&mut inv));
        let (r, st, d) = reason_of(&inv);
        assert_eq!(
            (r, st),
            (Coverage::NoCrossRegionCopy, Status::Violation),
            "{d}"
        );
        d
    };
    let d = no_copy(|v| v.copy_jobs = Ok(vec![]));
    assert!(d.contains("ap-northeast-3"), "{d}");
    // Copied, but within Tokyo.
    no_copy(|v| v.copy_jobs.as_mut().unwrap()[0].destination_vault_arn = vault_arn(TOKYO, "other"));
    // A copy job that failed.
    no_copy(|v| v.copy_jobs.as_mut().unwrap()[0].state = "FAILED".into());
    // A copy of another (older) recovery point.
    no_copy(|v| v.copy_jobs.as_mut().unwrap()[0].source_point_arn = "arn:older".into());
    // An Osaka point that is an old copy, or not a copy of Tokyo's.
    no_copy(|v| {
        v.copy_jobs = Ok(vec![]);
        v.copies = Ok(vec![
            PointFacts {
                source_vault_arn: Some(vault_arn(TOKYO, "kenko-prod-tokyo")),
                ..point("arn:old", &vault_arn(OSAKA, "kenko-prod-osaka"), 200)
            },
            point("arn:own", &vault_arn(OSAKA, "kenko-prod-osaka"), 2),
        ]);
    });
}

#[test]
fn what_could_not_be_read_is_audit_incomplete_never_covered() {
    let unknown = |inv: &Inventory, needle: &str| {
        let (r, st, d) = reason_of(inv);
        assert_eq!((r, st), (Coverage::AuditIncomplete, Status::Unknown), "{d}");
        assert!(d.contains(needle), "{needle:?} in {d}");
    };
    // The selections (moto has none: ListBackupSelections answers 404).
    let mut inv = covered();
    tokyo_plan(&mut inv).selections = Some(Err("ListBackupSelections: HTTP 404".into()));
    unknown(&inv, "HTTP 404");
    let mut inv = covered();
    tokyo_plan(&mut inv).selections = None;
    unknown(&inv, "not read");
    // The tags, when the selection is by tag.
    let mut inv = covered();
    volume(&mut inv).tags = Err("DescribeVolumes: AccessDenied".into());
    unknown(&inv, "AccessDenied");
    // ...but a selection by ARN does not need them.
    tokyo_plan(&mut inv).selections = Some(Ok(vec![SelectionFacts {
        name: "by-arn".into(),
        resources: vec!["arn:aws:ec2:ap-northeast-1:*:volume/*".into()],
        ..SelectionFacts::default()
    }]));
    assert_eq!(reason_of(&inv).0, Coverage::BackupCovered);
    // The recovery points.
    let mut inv = covered();
    volume(&mut inv).points = Err("ListRecoveryPointsByBackupVault: HTTP 404".into());
    unknown(&inv, "recovery points could not be read");
    // Whether it was copied: neither evidence answered, or one answered "none" and the other
    // did not answer.
    let mut inv = covered();
    volume(&mut inv).copy_jobs = Err("ListCopyJobs: HTTP 404".into());
    unknown(&inv, "ListCopyJobs");
    volume(&mut inv).copies = Err("ap-northeast-3 was not swept".into());
    unknown(&inv, "not swept");
    // A schedule it cannot read is not guessed at.
    let mut inv = covered();
    tokyo_plan(&mut inv).rules.as_mut().unwrap()[0].schedule = Some("cron(0 17 L * ? *)".into());
    unknown(&inv, "not understood");
    // AWS Backup in the region did not answer, or the region was not swept.
    let mut inv = covered();
    inv.regions[0].backup = Err("ListBackupPlans: dispatch failure".into());
    unknown(&inv, "dispatch failure");
    let mut inv = covered();
    inv.regions.remove(0);
    unknown(&inv, "not swept");
    // What holds the location could not be read.
    let inv = inventory(Err("DescribeVolumes: throttled".into()));
    unknown(&inv, "throttled");
    // The stacks could not be listed: one Unknown, no stack's backups checked.
    let mut inv = covered();
    inv.coverage.stacks = Err("list HealthStacks: 403".into());
    let f = the_finding(&inv);
    assert_eq!(
        (f.status, f.backup.unwrap().reason),
        (Status::Unknown, Coverage::AuditIncomplete)
    );
}

#[test]
fn no_stacks_no_findings() {
    let mut inv = covered();
    inv.coverage = CoverageFacts::default();
    assert!(!evaluate(&inv, &super::super::Policy::default())
        .iter()
        .any(|f| f.rule == Rule::BackupCoverage));
}

#[test]
fn the_interval_of_a_schedule_is_its_longest_gap() {
    let h = |e: &str| max_gap_secs(e).map(|s| s / 3600);
    assert_eq!(h("cron(0 17 * * ? *)"), Ok(24));
    assert_eq!(h("cron(0 18 * * ? *)"), Ok(24));
    assert_eq!(h("cron(0 0/12 * * ? *)"), Ok(12));
    assert_eq!(h("cron(0 5,8 * * ? *)"), Ok(21));
    assert_eq!(h("cron(0 * * * ? *)"), Ok(1));
    assert_eq!(h("cron(0 17 ? * MON,THU *)"), Ok(4 * 24));
    assert_eq!(
        h("cron(0 17 ? * 2-6 *)"),
        Ok(3 * 24),
        "weekdays: Friday to Monday"
    );
    assert_eq!(h("cron(0 17 ? * SUN *)"), Ok(7 * 24));
    assert_eq!(h("cron(0 17 1 * ? *)"), Ok(31 * 24));
    assert_eq!(h("cron(0 17 1,15 * ? *)"), Ok(17 * 24));
    assert_eq!(h("rate(12 hours)"), Ok(12));
    assert_eq!(h("rate(1 day)"), Ok(24));
    for bad in [
        "cron(0 17 L * ? *)",
        "cron(0 17 ? * 6#3 *)",
        "cron(0 17 30 * ? *)",
        "cron(0 17 1 1 ? *)",
        "cron(0 17 * * ? 2027)",
        "cron(0 17 1 * MON *)",
        "cron(0 25 * * ? *)",
        "cron(0 17 * * ?)",
        "0 17 * * *",
        "rate(0 days)",
        "rate(2 weeks)",
    ] {
        assert!(max_gap_secs(bad).is_err(), "{bad} was read");
    }
}

#[test]
fn selections_follow_aws_backups_semantics() {
    let arn = volume_arn("vol-1");
    let t = Ok(tags(true));
    let cond = |op, k: &str, v: &str| TagCondition {
        op,
        key: condition_key(k),
        value: v.into(),
    };
    let sel = |f: fn(&mut SelectionFacts)| {
        let mut s = SelectionFacts::default();
        f(&mut s);
        s
    };
    // ListOfTags: any of them.
    let s = sel(|s| {
        s.list_of_tags = vec![
            ("x".into(), "y".into()),
            ("kenko:backup".into(), "true".into()),
        ]
    });
    assert_eq!(selects(&s, &arn, &t), Some(true));
    // Conditions: all of them; aws:ResourceTag/ is the tag's key.
    let mut s = SelectionFacts {
        conditions: vec![
            cond(
                ConditionOp::StringEquals,
                "aws:ResourceTag/kenko:backup",
                "true",
            ),
            cond(
                ConditionOp::StringLike,
                "aws:ResourceTag/kubernetes.io/created-for/pvc/name",
                "hachioji-*",
            ),
        ],
        ..SelectionFacts::default()
    };
    assert_eq!(selects(&s, &arn, &t), Some(true));
    s.conditions
        .push(cond(ConditionOp::StringNotEquals, "kenko:backup", "true"));
    assert_eq!(selects(&s, &arn, &t), Some(false));
    s.conditions.pop();
    s.conditions.push(cond(
        ConditionOp::StringNotLike,
        "kubernetes.io/created-for/pvc/name",
        "*-data",
    ));
    assert_eq!(selects(&s, &arn, &t), Some(false));
    // Resources with tags: both must hold (never looser than AWS).
    let s = sel(|s| {
        s.resources = vec!["arn:aws:ec2:*:*:volume/*".into()];
        s.list_of_tags = vec![("kenko:backup".into(), "true".into())];
    });
    assert_eq!(selects(&s, &arn, &t), Some(true));
    assert_eq!(selects(&s, &arn, &Ok(tags(false))), Some(false));
    assert_eq!(selects(&s, "arn:aws:s3:::bucket", &t), Some(false));
    // A selection of nothing at all is not taken as selecting (the opt-in decides).
    assert_eq!(selects(&SelectionFacts::default(), &arn, &t), Some(false));
    // Globs.
    assert!(glob("arn:aws:s3:::kenko-*", "arn:aws:s3:::kenko-records"));
    assert!(!glob("arn:aws:s3:::kenko-*", "arn:aws:s3:::other"));
    assert!(glob("a?c*", "abcdef") && !glob("a?c", "abcd") && glob("*", ""));
}

#[test]
fn a_stacks_verdict_is_its_worst_location_in_one_line() {
    let mut inv = covered();
    let s = &mut inv.coverage.stacks.as_mut().unwrap()[0];
    s.stack.claims.push("data-hachioji-db-0".into());
    s.locations.push(LocationFacts {
        location: "pvc:data-hachioji-db-0".into(),
        resources: Ok(vec![ResourceFacts {
            copy_jobs: Err("ListCopyJobs: HTTP 404".into()),
            copies: Ok(vec![]),
            ..covered_volume("vol-2")
        }]),
    });
    let findings = evaluate(&inv, &super::super::Policy::default());
    let v = stack_coverage(&findings);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].namespace.as_str(), v[0].name.as_str()),
        ("hachioji", "hachioji")
    );
    assert_eq!(v[0].reason, Coverage::AuditIncomplete);
    assert_eq!(v[0].checked, 2);
    let m = v[0].message();
    assert!(
        m.starts_with("AuditIncomplete pvc:data-hachioji-db-0 (vol-2): "),
        "{m}"
    );
    assert!(
        !m.contains('\n') && !m.contains("stack hachioji/hachioji"),
        "{m}"
    );
    // A violation outranks an unknown.
    volume(&mut inv).tags = Ok(tags(false));
    let v = stack_coverage(&evaluate(&inv, &super::super::Policy::default()));
    assert_eq!(v[0].reason, Coverage::NoBackupPlan);
    assert!(
        v[0].message().starts_with("NoBackupPlan pvc:hachioji-data"),
        "{}",
        v[0].message()
    );
    // Covered: one line saying so.
    let v = stack_coverage(&evaluate(&covered(), &super::super::Policy::default()));
    assert_eq!(v[0].reason, Coverage::BackupCovered);
    assert!(v[0].problems.is_empty() && v[0].message().contains("1 resource(s)"));
    // The names are the condition's reasons.
    for c in Coverage::ALL {
        assert!(kenko_api::reasons::reason::BACKUP_REPORTED.contains(&c.as_str()));
    }
}
