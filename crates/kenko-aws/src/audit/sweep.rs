//! The sweep: S3's bucket list once, then every bucket and every (region, service) pair as
//! units of work run with bounded concurrency (`buffer_unordered`), then the replication
//! destinations' regions, then each stack's data locations and their backups
//! (`backup.coverage`, stacks in parallel), then evaluation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use futures::StreamExt;
use kenko_api::residency::StackLocations;

use super::clients::Clients;
use super::coverage::{
    other_japan, CoverageFacts, LocationFacts, ResourceFacts, StackFacts, LOOKBACK_SECS,
};
use super::{
    bucket_resource, evaluate, s3, BackupFacts, BucketFacts, Ec2Facts, Fact, Inventory, KeyFacts,
    Policy, RegionFacts, Report,
};

/// How to sweep.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub regions: Vec<String>,
    /// Units of work (a bucket, or one service in one region) in flight at once.
    pub concurrency: usize,
    pub policy: Policy,
    /// The stacks whose data locations `backup.coverage` checks (none: the rule is not
    /// evaluated), or why they could not be listed (every stack's coverage is then Unknown).
    pub stacks: Fact<Vec<StackLocations>>,
}

enum Unit {
    Bucket(String, Option<String>),
    Ec2(String),
    Kms(String),
    Backup(String),
}

enum Done {
    Bucket(Box<BucketFacts>),
    Ec2(String, Fact<Ec2Facts>),
    Kms(String, Fact<Vec<KeyFacts>>),
    Backup(String, Fact<BackupFacts>),
}

/// Reads every fact the rules need.
pub async fn collect(c: &Clients, opts: &AuditOptions) -> Inventory {
    let listed = s3::list_buckets(c).await;
    // Selections are read only where a stack's data is.
    let stack_regions: BTreeSet<&str> = opts
        .stacks
        .iter()
        .flatten()
        .map(|s| s.region.as_str())
        .collect();
    let mut units: Vec<Unit> = Vec::new();
    // Regions first: they are few and slow, buckets many and quick.
    for r in &opts.regions {
        units.push(Unit::Ec2(r.clone()));
        units.push(Unit::Kms(r.clone()));
        units.push(Unit::Backup(r.clone()));
    }
    if let Ok(names) = &listed {
        for (name, region) in names {
            units.push(Unit::Bucket(name.clone(), region.clone()));
        }
    }
    let policy = &opts.policy;
    let stack_regions = &stack_regions;
    let results: Vec<Done> = futures::stream::iter(units)
        .map(|u| async move {
            match u {
                Unit::Bucket(name, region) => {
                    Done::Bucket(Box::new(s3::bucket(c, name, region, policy).await))
                }
                Unit::Ec2(r) => {
                    let f = super::ec2::collect(c, &r, policy).await;
                    Done::Ec2(r, f)
                }
                Unit::Kms(r) => {
                    let f = super::kms::collect(c, &r).await;
                    Done::Kms(r, f)
                }
                Unit::Backup(r) => {
                    let f = super::backup::collect(c, &r, stack_regions.contains(r.as_str())).await;
                    Done::Backup(r, f)
                }
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut buckets = Vec::new();
    let mut ec2 = BTreeMap::new();
    let mut kms = BTreeMap::new();
    let mut backup = BTreeMap::new();
    for d in results {
        match d {
            Done::Bucket(b) => buckets.push(*b),
            Done::Ec2(r, f) => {
                ec2.insert(r, f);
            }
            Done::Kms(r, f) => {
                kms.insert(r, f);
            }
            Done::Backup(r, f) => {
                backup.insert(r, f);
            }
        }
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    resolve_destinations(c, &mut buckets).await;
    let regions = opts
        .regions
        .iter()
        .map(|r| RegionFacts {
            region: r.clone(),
            ec2: ec2.remove(r).unwrap_or_else(|| Err("not swept".into())),
            kms: kms.remove(r).unwrap_or_else(|| Err("not swept".into())),
            backup: backup.remove(r).unwrap_or_else(|| Err("not swept".into())),
        })
        .collect();
    let mut inv = Inventory {
        s3_region: c.home_region().to_string(),
        buckets: listed.map(|_| buckets),
        regions,
        coverage: CoverageFacts::default(),
    };
    inv.coverage = collect_coverage(c, opts, &inv).await;
    inv
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The vault names of a region, from its swept backup facts.
fn vault_names(inv: &Inventory, region: &str) -> Fact<Vec<String>> {
    match inv.regions.iter().find(|r| r.region == region) {
        None => Err(format!("{region} was not swept")),
        Some(r) => match &r.backup {
            Ok(b) => Ok(b.vaults.iter().map(|v| v.name.clone()).collect()),
            Err(e) => Err(format!("AWS Backup in {region} did not answer: {e}")),
        },
    }
}

/// `arn:PARTITION:backup:REGION:ACCOUNT:...` of the region's plans (or vaults): the partition
/// and account the resources' ARNs are written with. None when the region has no plan or vault.
fn partition_account(inv: &Inventory, region: &str) -> Option<(String, String)> {
    let b = inv
        .regions
        .iter()
        .find(|r| r.region == region)?
        .backup
        .as_ref()
        .ok()?;
    b.plans
        .iter()
        .map(|p| p.arn.as_str())
        .chain(b.vaults.iter().map(|v| v.arn.as_str()))
        .find_map(|arn| {
            let parts: Vec<&str> = arn.split(':').collect();
            match parts.as_slice() {
                ["arn", partition, _, _, account, ..] if !account.is_empty() => {
                    Some((partition.to_string(), account.to_string()))
                }
                _ => None,
            }
        })
}

/// Whether the region has any backup plan (else there is nothing that could select a
/// resource, and its recovery points are not read).
fn has_plans(inv: &Inventory, region: &str) -> bool {
    inv.regions
        .iter()
        .find(|r| r.region == region)
        .and_then(|r| r.backup.as_ref().ok())
        .is_some_and(|b| !b.plans.is_empty())
}

/// One resource's recovery points, copies and copy jobs, read back [`LOOKBACK_SECS`].
async fn resource(
    c: &Clients,
    inv: &Inventory,
    now: i64,
    region: &str,
    arn: String,
    id: String,
    tags: Fact<BTreeMap<String, String>>,
) -> ResourceFacts {
    let since = now - LOOKBACK_SECS;
    let mut r = ResourceFacts {
        arn,
        id,
        region: region.to_string(),
        tags,
        points: Err(format!("not read: no backup plan in {region}")),
        copies: Err(format!("not read: no backup plan in {region}")),
        copy_jobs: Err(format!("not read: no backup plan in {region}")),
    };
    if !has_plans(inv, region) {
        return r;
    }
    r.points = match vault_names(inv, region) {
        Ok(v) => super::backup::resource_points(c, region, &v, &r.arn, since).await,
        Err(e) => Err(e),
    };
    r.copies = match other_japan(region).map(|o| (o, vault_names(inv, o))) {
        None => Err(format!("{region} has no other Japanese region")),
        Some((_, Err(e))) => Err(e),
        Some((o, Ok(v))) => super::backup::resource_points(c, o, &v, &r.arn, since).await,
    };
    r.copy_jobs = super::backup::copy_jobs(c, region, &r.arn, since).await;
    r
}

/// One stack's locations: its claims' volumes (by the CSI driver's claim tags) and its
/// records bucket, each with its backups.
async fn stack_facts(c: &Clients, inv: &Inventory, now: i64, s: &StackLocations) -> StackFacts {
    let region = s.region.as_str();
    let (partition, account) =
        partition_account(inv, region).unwrap_or_else(|| ("aws".into(), String::new()));
    let volumes = super::ec2::claim_volumes(c, region, &s.namespace, &s.claims).await;
    let mut locations = Vec::new();
    for claim in &s.claims {
        let resources = match &volumes {
            Err(e) => Err(e.clone()),
            Ok(vs) => {
                let mut out = Vec::new();
                for (_, id, tags) in vs.iter().filter(|(c, _, _)| c == claim) {
                    let arn = format!("arn:{partition}:ec2:{region}:{account}:volume/{id}");
                    out.push(
                        resource(c, inv, now, region, arn, id.clone(), Ok(tags.clone())).await,
                    );
                }
                Ok(out)
            }
        };
        locations.push(LocationFacts {
            location: format!("pvc:{claim}"),
            resources,
        });
    }
    if let (Some(location), Some(name)) = (&s.records_bucket, s.records_bucket_name()) {
        let resources = match &inv.buckets {
            Err(e) => Err(format!("the buckets could not be listed: {e}")),
            Ok(buckets) => match buckets.iter().find(|b| b.name == name) {
                None => Ok(Vec::new()),
                Some(b) => match &b.region {
                    Err(e) => Err(format!("the bucket's region could not be read: {e}")),
                    Ok(bregion) => {
                        let tags = s3::bucket_tags(c, bregion, name).await;
                        Ok(vec![
                            resource(
                                c,
                                inv,
                                now,
                                bregion,
                                bucket_resource(name),
                                name.to_string(),
                                tags,
                            )
                            .await,
                        ])
                    }
                },
            },
        };
        locations.push(LocationFacts {
            location: location.clone(),
            resources,
        });
    }
    StackFacts {
        stack: s.clone(),
        locations,
    }
}

/// The facts of `backup.coverage`: every stack, with bounded concurrency.
async fn collect_coverage(c: &Clients, opts: &AuditOptions, inv: &Inventory) -> CoverageFacts {
    let now = unix_now();
    let stacks = match &opts.stacks {
        Err(e) => Err(e.clone()),
        // Owned items: a stream of references makes the future not Send for every lifetime.
        Ok(list) => Ok(futures::stream::iter(list.clone())
            .map(|s| async move { stack_facts(c, inv, now, &s).await })
            .buffered(opts.concurrency.max(1))
            .collect()
            .await),
    };
    CoverageFacts { now, stacks }
}

/// Each replication destination's region: from the account's own bucket list, else asked
/// (a bucket of another account may refuse: then it stays unknown).
async fn resolve_destinations(c: &Clients, buckets: &mut [BucketFacts]) {
    let mut known: BTreeMap<String, Fact<String>> = buckets
        .iter()
        .filter_map(|b| {
            b.region
                .as_ref()
                .ok()
                .map(|r| (b.name.clone(), Ok(r.clone())))
        })
        .collect();
    for b in buckets.iter_mut() {
        let Ok(rules) = &mut b.replication else {
            continue;
        };
        for r in rules.iter_mut() {
            if !known.contains_key(&r.destination_bucket) {
                let region = s3::bucket_region(c, &r.destination_bucket).await;
                known.insert(r.destination_bucket.clone(), region);
            }
            r.destination_region = known[&r.destination_bucket].clone();
        }
    }
}

/// RFC 3339 UTC, seconds.
pub(crate) fn now_rfc3339() -> String {
    super::coverage::rfc3339(unix_now())
}

/// One audit: collect, evaluate, and (with `remediate`) carry out the planned actions.
/// Returns the inventory too, for callers that compare before and after.
pub async fn run(c: &Clients, opts: &AuditOptions, remediate: bool) -> (Report, Inventory) {
    let started = now_rfc3339();
    let calls_before = c.api_calls();
    let inv = collect(c, opts).await;
    let findings = evaluate(&inv, &opts.policy);
    let mut report = Report::new(findings, opts.regions.clone(), &opts.policy);
    report.started_at = started;
    report.remediate = remediate;
    report.actions = super::plan_remediation(&inv);
    if remediate {
        super::remediate(c, &mut report.actions).await;
    }
    report.api_calls = c.api_calls() - calls_before;
    report.finished_at = now_rfc3339();
    (report, inv)
}
