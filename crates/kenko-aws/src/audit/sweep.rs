//! The sweep: S3's bucket list once, then every bucket and every (region, service) pair as
//! units of work run with bounded concurrency (`buffer_unordered`), then the replication
//! destinations' regions, then evaluation.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::StreamExt;

use super::clients::Clients;
use super::{
    evaluate, s3, BackupFacts, BucketFacts, Ec2Facts, Fact, Inventory, KeyFacts, Policy,
    RegionFacts, Report,
};

/// How to sweep.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub regions: Vec<String>,
    /// Units of work (a bucket, or one service in one region) in flight at once.
    pub concurrency: usize,
    pub policy: Policy,
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
                    let f = super::backup::collect(c, &r).await;
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
    Inventory {
        s3_region: c.home_region().to_string(),
        buckets: listed.map(|_| buckets),
        regions,
    }
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
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    aws_sdk_s3::primitives::DateTime::from_secs(secs)
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
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
