//! The residency audit against the local AWS emulator (moto_server on 127.0.0.1, one per test
//! so tests run in parallel): an account built the way Terraform builds it passes, each
//! violation added to it on its own is found with the right rule, status and exit code, a region
//! that does not answer is Unknown (never compliant), `--remediate` removes exactly the
//! offending replication rule, and `kenko-agent run` exports the audit's metrics. A stack's
//! backup coverage (`--stacks`): its volumes found by their claim tags in moto, Unknown where
//! moto lacks AWS Backup's APIs, and decided on recorded AWS Backup answers.
//! Everything goes through the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use common::moto::{credentials, free_port, start_moto, Moto};

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kenko_aws::audit::Clients;
use kenko_aws::aws_sdk_ec2 as ec2;
use kenko_aws::aws_sdk_s3 as s3;
use kenko_aws::backup::aws_sdk_backup as backup;
use kenko_aws::Endpoint;
use serde_json::Value;

const TOKYO: &str = "ap-northeast-1";
const OSAKA: &str = "ap-northeast-3";
/// The sweep of most tests: Japan, and the regions the violations use.
const REGIONS: &str = "ap-northeast-1,ap-northeast-3,us-east-1,us-west-2,ap-southeast-1";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn agent(moto: &Moto) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kenko-agent"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", TOKYO)
        .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
        .env("KENKO_LOG", "warn");
    c
}

/// Runs `residency audit --json` with extra arguments; the report and the exit code.
fn audit(moto: &Moto, extra: &[&str], env: &[(&str, &str)]) -> (Value, i32, Output) {
    let mut c = agent(moto);
    c.args(["residency", "audit", "--json"]).args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let code = out.status.code().unwrap();
    (report, code, out)
}

/// The (rule, status, region, resource) of every finding that is not compliant.
fn problems(report: &Value) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "compliant")
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                f["region"].as_str().unwrap().to_string(),
                f["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn compliant_count(report: &Value, rule: &str) -> u64 {
    report["rules"][rule]["compliant"].as_u64().unwrap()
}

/// What the compliant account is made of.
struct Account {
    clients: Clients,
    account: String,
    tokyo_key: String,
    records: String,
    records_replica: String,
    tokyo_vault_arn: String,
    osaka_vault_arn: String,
    vpc_id: String,
    snapshot_id: String,
}

async fn create_bucket(c: &Clients, region: &str, name: &str, lock: bool) {
    let mut req = c.s3(region).create_bucket().bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            s3::types::CreateBucketConfiguration::builder()
                .location_constraint(s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    if lock {
        req = req.object_lock_enabled_for_bucket(true);
    }
    req.send().await.unwrap();
}

/// A bucket as `terraform/modules/storage` makes it: versioned, KMS-encrypted with a key of
/// its region, tagged.
async fn storage_bucket(
    c: &Clients,
    region: &str,
    name: &str,
    key_arn: &str,
    data: &str,
    lock: bool,
) {
    create_bucket(c, region, name, lock).await;
    let s3c = c.s3(region);
    s3c.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            s3::types::VersioningConfiguration::builder()
                .status(s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3c.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(s3::types::ServerSideEncryption::AwsKms)
                                .kms_master_key_id(key_arn)
                                .build()
                                .unwrap(),
                        )
                        .bucket_key_enabled(true)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    s3c.put_bucket_tagging()
        .bucket(name)
        .tagging(
            s3::types::Tagging::builder()
                .tag_set(
                    s3::types::Tag::builder()
                        .key("kenko:data")
                        .value(data)
                        .build()
                        .unwrap(),
                )
                .tag_set(
                    s3::types::Tag::builder()
                        .key("kenko:stack")
                        .value("kenko-prod")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    if lock {
        s3c.put_object_lock_configuration()
            .bucket(name)
            .object_lock_configuration(
                s3::types::ObjectLockConfiguration::builder()
                    .object_lock_enabled(s3::types::ObjectLockEnabled::Enabled)
                    .rule(
                        s3::types::ObjectLockRule::builder()
                            .default_retention(
                                s3::types::DefaultRetention::builder()
                                    .mode(s3::types::ObjectLockRetentionMode::Compliance)
                                    .years(20)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

fn replication_rule(
    id: &str,
    priority: i32,
    dest_bucket: &str,
    dest_key: Option<&str>,
) -> s3::types::ReplicationRule {
    let mut dest = s3::types::Destination::builder().bucket(format!("arn:aws:s3:::{dest_bucket}"));
    if let Some(k) = dest_key {
        dest = dest.encryption_configuration(
            s3::types::EncryptionConfiguration::builder()
                .replica_kms_key_id(k)
                .build(),
        );
    }
    s3::types::ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .status(s3::types::ReplicationRuleStatus::Enabled)
        .filter(
            s3::types::ReplicationRuleFilter::builder()
                .prefix("")
                .build(),
        )
        .delete_marker_replication(
            s3::types::DeleteMarkerReplication::builder()
                .status(s3::types::DeleteMarkerReplicationStatus::Enabled)
                .build(),
        )
        .destination(dest.build().unwrap())
        .build()
        .unwrap()
}

async fn put_replication(
    c: &Clients,
    region: &str,
    bucket: &str,
    account: &str,
    rules: Vec<s3::types::ReplicationRule>,
) {
    c.s3(region)
        .put_bucket_replication()
        .bucket(bucket)
        .replication_configuration(
            s3::types::ReplicationConfiguration::builder()
                .role(format!(
                    "arn:aws:iam::{account}:role/kenko-prod-s3-replication"
                ))
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn kms_key(c: &Clients, region: &str) -> String {
    c.kms(region)
        .create_key()
        .description("kenko-prod")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

async fn vault(c: &Clients, region: &str, name: &str, key: &str) -> String {
    c.backup(region)
        .create_backup_vault()
        .backup_vault_name(name)
        .encryption_key_arn(key)
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string()
}

fn lifecycle(days: i64) -> backup::types::Lifecycle {
    backup::types::Lifecycle::builder()
        .move_to_cold_storage_after_days(90)
        .delete_after_days(days)
        .build()
}

/// A plan rule as `terraform/modules/backup` makes it (copies optional, to test their absence).
async fn plan(
    c: &Clients,
    region: &str,
    name: &str,
    target_vault: &str,
    copies: &[&str],
    days: i64,
) -> String {
    let mut rule = backup::types::BackupRuleInput::builder()
        .rule_name("daily-copy-to-osaka")
        .target_backup_vault_name(target_vault)
        .schedule_expression("cron(0 17 * * ? *)")
        .start_window_minutes(60)
        .completion_window_minutes(360)
        .lifecycle(lifecycle(days));
    for d in copies {
        rule = rule.copy_actions(
            backup::types::CopyAction::builder()
                .destination_backup_vault_arn(*d)
                .lifecycle(lifecycle(days))
                .build()
                .unwrap(),
        );
    }
    c.backup(region)
        .create_backup_plan()
        .backup_plan(
            backup::types::BackupPlanInput::builder()
                .backup_plan_name(name)
                .rules(rule.build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string()
}

const ENDPOINT_SERVICES: &[&str] = &[
    "autoscaling",
    "backup",
    "ec2",
    "ec2messages",
    "ecr.api",
    "ecr.dkr",
    "eks",
    "eks-auth",
    "elasticloadbalancing",
    "kms",
    "logs",
    "monitoring",
    "ssm",
    "ssmmessages",
    "sts",
];

/// The network module's shape: a tagged VPC, a private subnet and route table, the S3 gateway
/// endpoint and the interface endpoints; no internet gateway, no NAT.
async fn network(c: &Clients, region: &str) -> String {
    let e = c.ec2(region);
    let tag = |rt: ec2::types::ResourceType| {
        ec2::types::TagSpecification::builder()
            .resource_type(rt)
            .tags(
                ec2::types::Tag::builder()
                    .key("kenko:stack")
                    .value("kenko-prod")
                    .build(),
            )
            .tags(
                ec2::types::Tag::builder()
                    .key("Name")
                    .value("kenko-prod")
                    .build(),
            )
            .build()
    };
    let vpc = e
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .tag_specifications(tag(ec2::types::ResourceType::Vpc))
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = e
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.20.0.0/20")
        .availability_zone(format!("{region}a"))
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let table = e.create_route_table().vpc_id(&vpc_id).send().await.unwrap();
    let table_id = table
        .route_table()
        .unwrap()
        .route_table_id()
        .unwrap()
        .to_string();
    e.create_vpc_endpoint()
        .vpc_id(&vpc_id)
        .service_name(format!("com.amazonaws.{region}.s3"))
        .vpc_endpoint_type(ec2::types::VpcEndpointType::Gateway)
        .route_table_ids(&table_id)
        .send()
        .await
        .unwrap();
    for s in ENDPOINT_SERVICES {
        e.create_vpc_endpoint()
            .vpc_id(&vpc_id)
            .service_name(format!("com.amazonaws.{region}.{s}"))
            .vpc_endpoint_type(ec2::types::VpcEndpointType::Interface)
            .subnet_ids(&subnet_id)
            .private_dns_enabled(true)
            .send()
            .await
            .unwrap();
    }
    vpc_id
}

/// Builds the compliant account: the shape `terraform/envs/production` builds, in Tokyo with
/// backups and replicas in Osaka.
async fn build_compliant(moto: &Moto) -> Account {
    let ep = Endpoint {
        region: TOKYO.into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    let c = Clients::new(&ep, BTreeMap::new()).await;
    let account = "123456789012".to_string();
    let tokyo_key = kms_key(&c, TOKYO).await;
    let osaka_key = kms_key(&c, OSAKA).await;
    let certs_key = kms_key(&c, TOKYO).await;
    let certs_osaka_key = kms_key(&c, OSAKA).await;
    let records = format!("kenko-prod-records-{account}-{TOKYO}");
    let records_replica = format!("kenko-prod-records-{account}-{OSAKA}");
    let intake = format!("kenko-prod-intake-{account}-{TOKYO}");
    let certs = format!("kenko-prod-certificates-{account}-{TOKYO}");
    let certs_replica = format!("kenko-prod-certificates-{account}-{OSAKA}");
    storage_bucket(&c, TOKYO, &records, &tokyo_key, "records", false).await;
    storage_bucket(&c, TOKYO, &intake, &tokyo_key, "intake", false).await;
    storage_bucket(&c, OSAKA, &records_replica, &osaka_key, "records", false).await;
    storage_bucket(&c, TOKYO, &certs, &certs_key, "certificates", true).await;
    storage_bucket(
        &c,
        OSAKA,
        &certs_replica,
        &certs_osaka_key,
        "certificates",
        true,
    )
    .await;
    put_replication(
        &c,
        TOKYO,
        &records,
        &account,
        vec![replication_rule(
            "records-to-osaka",
            1,
            &records_replica,
            Some(&osaka_key),
        )],
    )
    .await;
    put_replication(
        &c,
        TOKYO,
        &certs,
        &account,
        vec![replication_rule(
            "certificates-to-osaka",
            1,
            &certs_replica,
            Some(&certs_osaka_key),
        )],
    )
    .await;

    let backup_key = kms_key(&c, TOKYO).await;
    let backup_osaka_key = kms_key(&c, OSAKA).await;
    let tokyo_vault_arn = vault(&c, TOKYO, "kenko-prod-tokyo", &backup_key).await;
    let osaka_vault_arn = vault(&c, OSAKA, "kenko-prod-osaka", &backup_osaka_key).await;
    plan(
        &c,
        TOKYO,
        "kenko-prod-daily",
        "kenko-prod-tokyo",
        &[&osaka_vault_arn],
        7305,
    )
    .await;

    let vpc_id = network(&c, TOKYO).await;
    let e = c.ec2(TOKYO);
    let vol = e
        .create_volume()
        .availability_zone(format!("{TOKYO}a"))
        .size(8)
        .encrypted(true)
        .kms_key_id(&tokyo_key)
        .send()
        .await
        .unwrap();
    let snap = e
        .create_snapshot()
        .volume_id(vol.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    Account {
        clients: c,
        account,
        tokyo_key,
        records,
        records_replica,
        tokyo_vault_arn,
        osaka_vault_arn,
        vpc_id,
        snapshot_id: snap.snapshot_id().unwrap().to_string(),
    }
}

#[test]
fn the_account_terraform_builds_passes_in_every_region() {
    credentials();
    let moto = start_moto();
    rt().block_on(build_compliant(&moto));
    // No --regions: every public region is swept.
    let (report, code, out) = audit(&moto, &[], &[]);
    assert_eq!(
        code,
        0,
        "{:#?}\n{}",
        problems(&report),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(problems(&report).is_empty());
    assert_eq!(report["schema"], "kenko.residency-report/v1");
    assert_eq!(report["complete"], true);
    assert_eq!(report["regions"].as_array().unwrap().len(), 34);
    // Every rule was actually evaluated on something, not passed for lack of resources.
    for (rule, n) in [
        ("s3.bucket_region", 5),
        ("s3.versioning", 5),
        ("s3.encryption", 5),
        ("s3.certificate_object_lock", 2),
        ("backup.vault_region", 2),
        ("backup.recovery_point_region", 2),
        ("backup.plan_copy", 1),
        ("backup.retention", 1),
        ("ec2.volume_region", 1),
        ("ec2.snapshot_region", 1),
        ("network.internet_gateway", 1),
        ("network.egress_only_gateway", 1),
        ("network.nat_gateway", 1),
        ("network.vpc_endpoints", 1),
    ] {
        assert_eq!(compliant_count(&report, rule), n, "{rule}");
    }
    // Two replication rules plus three buckets without any.
    assert_eq!(compliant_count(&report, "s3.replication"), 5);
    // Six keys made here (moto adds none of its own).
    assert_eq!(compliant_count(&report, "kms.key_region"), 6);
    assert!(report["api_calls"].as_u64().unwrap() > 34 * 3);

    // The text report says the same, and the exit code does not depend on --json.
    let out = agent(&moto)
        .args(["residency", "audit", "--regions", REGIONS])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("COMPLIANT") && text.contains("0 violation(s)"),
        "{text}"
    );
}

/// The compliant account in a fresh emulator.
fn setup() -> (Moto, tokio::runtime::Runtime, Account) {
    credentials();
    let moto = start_moto();
    let rt = rt();
    let a = rt.block_on(build_compliant(&moto));
    (moto, rt, a)
}

/// Audits and checks that exactly the expected problems are reported (so the one change made
/// broke that rule and nothing else), with the exit code.
fn expect(
    moto: &Moto,
    expected: &[(&str, &str, &str)],
    want_code: i32,
    env: &[(&str, &str)],
) -> Value {
    let (report, code, out) = audit(moto, &["--regions", REGIONS], env);
    let got: Vec<(String, String, String)> = problems(&report)
        .into_iter()
        .map(|(rule, status, region, _)| (rule, status, region))
        .collect();
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(
        got,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code, want_code);
    report
}

fn first_problem(report: &Value) -> Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] != "compliant")
        .unwrap()
        .clone()
}

#[test]
fn a_bucket_in_us_east_1_is_a_bucket_region_violation() {
    let (moto, rt, a) = setup();
    // Versioned and encrypted with a Tokyo key: only its region is wrong.
    rt.block_on(storage_bucket(
        &a.clients,
        "us-east-1",
        "kenko-prod-stray",
        &a.tokyo_key,
        "records",
        false,
    ));
    let report = expect(
        &moto,
        &[("s3.bucket_region", "violation", "us-east-1")],
        1,
        &[],
    );
    assert_eq!(
        first_problem(&report)["resource"],
        "arn:aws:s3:::kenko-prod-stray"
    );
}

#[test]
fn replication_to_us_west_2_is_a_replication_violation() {
    let (moto, rt, a) = setup();
    rt.block_on(async {
        storage_bucket(
            &a.clients,
            "us-west-2",
            "kenko-prod-oregon",
            &a.tokyo_key,
            "records",
            false,
        )
        .await;
        put_replication(
            &a.clients,
            TOKYO,
            &a.records,
            &a.account,
            vec![
                replication_rule("records-to-osaka", 1, &a.records_replica, None),
                replication_rule("records-to-oregon", 2, "kenko-prod-oregon", None),
            ],
        )
        .await;
    });
    let report = expect(
        &moto,
        // The destination bucket itself is outside Japan too.
        &[
            ("s3.bucket_region", "violation", "us-west-2"),
            ("s3.replication", "violation", TOKYO),
        ],
        1,
        &[],
    );
    let resources: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "violation")
        .map(|f| f["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"arn:aws:s3:::kenko-prod-records-123456789012-ap-northeast-1#replication/records-to-oregon"),
        "{resources:?}"
    );
    // Dry run: the action is planned, not taken.
    assert_eq!(report["actions"][0]["kind"], "remove_replication_rules");
    assert_eq!(report["actions"][0]["outcome"], "planned");
    assert_eq!(report["actions"][0]["removes"][0], "records-to-oregon");
}

#[test]
fn a_backup_plan_without_a_copy_is_a_plan_copy_violation() {
    let (moto, rt, a) = setup();
    rt.block_on(plan(
        &a.clients,
        TOKYO,
        "kenko-prod-nocopy",
        "kenko-prod-tokyo",
        &[],
        7305,
    ));
    let report = expect(&moto, &[("backup.plan_copy", "violation", TOKYO)], 1, &[]);
    assert!(first_problem(&report)["detail"]
        .as_str()
        .unwrap()
        .contains("no copy action"));
}

#[test]
fn a_copy_to_a_vault_in_the_same_region_is_a_plan_copy_violation() {
    let (moto, rt, a) = setup();
    rt.block_on(async {
        let other = vault(&a.clients, TOKYO, "kenko-prod-tokyo-2", &a.tokyo_key).await;
        plan(
            &a.clients,
            TOKYO,
            "kenko-prod-samecopy",
            "kenko-prod-tokyo",
            &[&other],
            7305,
        )
        .await;
    });
    let report = expect(&moto, &[("backup.plan_copy", "violation", TOKYO)], 1, &[]);
    let f = first_problem(&report);
    assert!(f["detail"].as_str().unwrap().contains("same region"), "{f}");
    // A same-region copy is not removed automatically: it needs a person to repoint it.
    assert!(report["actions"].as_array().unwrap().is_empty());
}

#[test]
fn a_snapshot_copied_to_singapore_is_a_snapshot_region_violation() {
    let (moto, rt, a) = setup();
    rt.block_on(
        a.clients
            .ec2("ap-southeast-1")
            .copy_snapshot()
            .source_region(TOKYO)
            .source_snapshot_id(&a.snapshot_id)
            .send(),
    )
    .unwrap();
    let report = expect(
        &moto,
        &[("ec2.snapshot_region", "violation", "ap-southeast-1")],
        1,
        &[],
    );
    let f = first_problem(&report);
    assert!(
        f["resource"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ec2:ap-southeast-1::snapshot/snap-"),
        "{f}"
    );
}

#[test]
fn an_internet_gateway_attached_is_an_internet_gateway_violation() {
    let (moto, rt, a) = setup();
    rt.block_on(async {
        let e = a.clients.ec2(TOKYO);
        let igw = e.create_internet_gateway().send().await.unwrap();
        e.attach_internet_gateway()
            .internet_gateway_id(
                igw.internet_gateway()
                    .unwrap()
                    .internet_gateway_id()
                    .unwrap(),
            )
            .vpc_id(&a.vpc_id)
            .send()
            .await
            .unwrap();
    });
    let report = expect(
        &moto,
        &[("network.internet_gateway", "violation", TOKYO)],
        1,
        &[],
    );
    let f = first_problem(&report);
    assert!(
        f["resource"]
            .as_str()
            .unwrap()
            .contains(":internet-gateway/igw-"),
        "{f}"
    );
    assert!(f["detail"].as_str().unwrap().contains(&a.vpc_id), "{f}");
}

#[test]
fn a_region_that_does_not_answer_is_unknown_and_exits_2() {
    let (moto, _rt, _a) = setup();
    // Nothing listens on port 1: every call to Singapore fails to connect.
    let report = expect(
        &moto,
        &[
            ("audit.region_unreachable", "unknown", "ap-southeast-1"),
            ("audit.region_unreachable", "unknown", "ap-southeast-1"),
            ("audit.region_unreachable", "unknown", "ap-southeast-1"),
        ],
        2,
        &[(
            "KENKO_AWS_REGION_ENDPOINTS",
            "ap-southeast-1=http://127.0.0.1:1",
        )],
    );
    assert_eq!(report["complete"], false);
    let services: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "unknown")
        .map(|f| f["resource"].as_str().unwrap())
        .collect();
    assert_eq!(services, vec!["backup", "ec2", "kms"]);
}

/// Everything the remediation must leave alone: each bucket's replication, versioning,
/// encryption and tags, and the backup plans.
async fn state(c: &Clients, buckets: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (region, b) in buckets {
        let s = c.s3(region);
        let repl = s.get_bucket_replication().bucket(*b).send().await;
        m.insert(
            format!("{b} replication"),
            match repl {
                Ok(o) => format!("{:?}", o.replication_configuration()),
                Err(e) => format!("error {:?}", s3::error::ProvideErrorMetadata::code(&e)),
            },
        );
        let v = s.get_bucket_versioning().bucket(*b).send().await.unwrap();
        m.insert(format!("{b} versioning"), format!("{:?}", v.status()));
        let enc = s.get_bucket_encryption().bucket(*b).send().await.unwrap();
        m.insert(
            format!("{b} encryption"),
            format!("{:?}", enc.server_side_encryption_configuration()),
        );
        let tags = s.get_bucket_tagging().bucket(*b).send().await.unwrap();
        m.insert(format!("{b} tags"), format!("{:?}", tags.tag_set()));
    }
    for region in [TOKYO, OSAKA] {
        let bc = c.backup(region);
        let plans = bc.list_backup_plans().send().await.unwrap();
        for p in plans.backup_plans_list() {
            let got = bc
                .get_backup_plan()
                .backup_plan_id(p.backup_plan_id().unwrap())
                .send()
                .await
                .unwrap();
            m.insert(
                format!("plan {}", p.backup_plan_name().unwrap()),
                format!("{:?}", got.backup_plan()),
            );
        }
    }
    m
}

#[test]
fn remediation_removes_the_offending_replication_rule_and_nothing_else() {
    credentials();
    let moto = start_moto();
    let rt = rt();
    let oregon = "kenko-prod-oregon";
    let (before, records, buckets) = rt.block_on(async {
        let a = build_compliant(&moto).await;
        storage_bucket(
            &a.clients,
            "us-west-2",
            oregon,
            &a.tokyo_key,
            "records",
            false,
        )
        .await;
        put_replication(
            &a.clients,
            TOKYO,
            &a.records,
            &a.account,
            vec![
                replication_rule("records-to-osaka", 1, &a.records_replica, None),
                replication_rule("records-to-oregon", 2, oregon, None),
            ],
        )
        .await;
        // The intake bucket's only rule points outside Japan: its whole configuration goes.
        put_replication(
            &a.clients,
            TOKYO,
            &format!("kenko-prod-intake-{}-{TOKYO}", a.account),
            &a.account,
            vec![replication_rule("intake-to-oregon", 1, oregon, None)],
        )
        .await;
        // A copy action outside Japan too: moto has no UpdateBackupPlan, so that action must be
        // reported failed with the service's reason, and the plan left as it was.
        let sg_key = kms_key(&a.clients, "ap-southeast-1").await;
        let sg_vault = vault(&a.clients, "ap-southeast-1", "kenko-prod-sg", &sg_key).await;
        plan(
            &a.clients,
            TOKYO,
            "kenko-prod-to-sg",
            "kenko-prod-tokyo",
            &[&a.osaka_vault_arn, &sg_vault],
            7305,
        )
        .await;
        assert!(a.tokyo_vault_arn.contains(TOKYO));
        let buckets: Vec<(String, String)> = [
            (TOKYO, a.records.clone()),
            (OSAKA, a.records_replica.clone()),
            (
                TOKYO,
                format!("kenko-prod-certificates-{}-{TOKYO}", a.account),
            ),
            (
                OSAKA,
                format!("kenko-prod-certificates-{}-{OSAKA}", a.account),
            ),
            (TOKYO, format!("kenko-prod-intake-{}-{TOKYO}", a.account)),
            ("us-west-2", oregon.to_string()),
        ]
        .into_iter()
        .map(|(r, b)| (r.to_string(), b))
        .collect();
        let refs: Vec<(&str, &str)> = buckets
            .iter()
            .map(|(r, b)| (r.as_str(), b.as_str()))
            .collect();
        (state(&a.clients, &refs).await, a.records.clone(), buckets)
    });

    // Without --remediate nothing changes.
    let (dry, code, _) = audit(&moto, &["--regions", REGIONS], &[]);
    assert_eq!(code, 1);
    assert!(dry["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["outcome"] == "planned"));
    let refs: Vec<(&str, &str)> = buckets
        .iter()
        .map(|(r, b)| (r.as_str(), b.as_str()))
        .collect();
    let c = rt.block_on(Clients::new(
        &Endpoint {
            region: TOKYO.into(),
            endpoint_url: Some(moto.url.clone()),
            service_urls: vec![],
        },
        BTreeMap::new(),
    ));
    assert_eq!(rt.block_on(state(&c, &refs)), before);

    let (report, code, out) = audit(&moto, &["--regions", REGIONS, "--remediate"], &[]);
    assert_eq!(code, 1, "findings are as found before remediating");
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{actions:#?}");
    let s3a = actions
        .iter()
        .find(|a| {
            a["kind"] == "remove_replication_rules"
                && a["resource"] == format!("arn:aws:s3:::{records}")
        })
        .unwrap();
    assert_eq!(s3a["outcome"], "done", "{s3a}");
    assert_eq!(s3a["removes"], serde_json::json!(["records-to-oregon"]));
    let intake = format!("kenko-prod-intake-123456789012-{TOKYO}");
    let s3b = actions
        .iter()
        .find(|a| a["resource"] == format!("arn:aws:s3:::{intake}"))
        .unwrap();
    assert_eq!(s3b["outcome"], "done", "{s3b}");
    assert_eq!(s3b["removes"], serde_json::json!(["intake-to-oregon"]));
    let ba = actions
        .iter()
        .find(|a| a["kind"] == "remove_copy_actions")
        .unwrap();
    assert_eq!(ba["outcome"], "failed", "{ba}");
    assert!(
        ba["error"].as_str().unwrap().contains("UpdateBackupPlan"),
        "{ba}"
    );
    // Each action taken is logged.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("records-to-oregon") && log.contains("residency remediation"),
        "{log}"
    );

    let after = rt.block_on(state(&c, &refs));
    for (k, v) in &before {
        if k == &format!("{records} replication") || k == &format!("{intake} replication") {
            continue;
        }
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    assert_eq!(after.len(), before.len());
    // The records bucket keeps exactly its Osaka rule, as it was.
    let repl = rt
        .block_on(c.s3(TOKYO).get_bucket_replication().bucket(&records).send())
        .unwrap();
    let conf = repl.replication_configuration().unwrap();
    let ids: Vec<&str> = conf.rules().iter().map(|r| r.id().unwrap()).collect();
    assert_eq!(ids, vec!["records-to-osaka"]);
    assert!(before[&format!("{records} replication")].contains(&format!("{:?}", conf.rules()[0])));
    // The intake bucket had no other rule: DeleteBucketReplication, not an empty configuration.
    assert_eq!(
        after[&format!("{intake} replication")],
        "error Some(\"ReplicationConfigurationNotFoundError\")"
    );

    // The next audit no longer finds the replication violation (the Oregon bucket itself is
    // still there, for a person to erase).
    let (again, _, _) = audit(&moto, &["--regions", REGIONS], &[]);
    let rules: Vec<String> = problems(&again).into_iter().map(|p| p.0).collect();
    assert!(!rules.contains(&"s3.replication".to_string()), "{rules:?}");
    assert!(rules.contains(&"s3.bucket_region".to_string()));
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_running_agent_audits_on_schedule_and_exports_metrics() {
    credentials();
    let moto = start_moto();
    rt().block_on(async {
        let a = build_compliant(&moto).await;
        storage_bucket(
            &a.clients,
            "us-east-1",
            "kenko-prod-stray",
            &a.tokyo_key,
            "records",
            false,
        )
        .await;
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[residency]\nenabled = true\ninterval_secs = 1\nregions = [\"ap-northeast-1\", \"ap-northeast-3\", \"us-east-1\"]\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = agent(&moto)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut text = String::new();
    // Two audits at least: the schedule repeats.
    while metric(&text, "kenko_residency_audits_total{result=\"violation\"}").unwrap_or(0.0) < 2.0 {
        assert!(Instant::now() < deadline, "no scheduled audits: {text}");
        std::thread::sleep(Duration::from_millis(100));
        text = http_get(port, "/metrics").unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        metric(
            &text,
            "kenko_residency_findings{rule=\"s3.bucket_region\",status=\"violation\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "kenko_residency_findings{rule=\"s3.bucket_region\",status=\"compliant\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        metric(
            &text,
            "kenko_residency_findings{rule=\"audit.region_unreachable\",status=\"unknown\"}"
        ),
        Some(0.0)
    );
    let last = metric(
        &text,
        "kenko_residency_last_complete_audit_timestamp_seconds",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - last < 120.0 && last > 0.0, "{last}");
    assert!(metric(&text, "kenko_residency_api_calls_total").unwrap() > 0.0);
}

// ---------------------------------------------------------------------------------------------
// backup.coverage: a stack's volumes (by the EBS CSI driver's claim tags) and records bucket

const STACK_NS: &str = "hachioji";

/// A volume the EBS CSI driver made for `claim` of namespace `hachioji` (its claim tags),
/// tagged for the backup plan or not. Returns its id.
async fn claim_volume(c: &Clients, claim: &str, for_backup: bool) -> String {
    let mut tags = ec2::types::TagSpecification::builder()
        .resource_type(ec2::types::ResourceType::Volume)
        .tags(
            ec2::types::Tag::builder()
                .key(kenko_api::names::PVC_NAMESPACE_TAG)
                .value(STACK_NS)
                .build(),
        )
        .tags(
            ec2::types::Tag::builder()
                .key(kenko_api::names::PVC_NAME_TAG)
                .value(claim)
                .build(),
        );
    if for_backup {
        let (k, v) = kenko_api::names::BACKUP_SELECTION_TAG;
        tags = tags.tags(ec2::types::Tag::builder().key(k).value(v).build());
    }
    c.ec2(TOKYO)
        .create_volume()
        .availability_zone(format!("{TOKYO}a"))
        .size(8)
        .tag_specifications(tags.build())
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string()
}

/// The records bucket as Terraform tags it (`kenko:backup = true` added).
async fn tag_records_for_backup(c: &Clients, bucket: &str) {
    let (k, v) = kenko_api::names::BACKUP_SELECTION_TAG;
    let tag = |k: &str, v: &str| s3::types::Tag::builder().key(k).value(v).build().unwrap();
    c.s3(TOKYO)
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(
            s3::types::Tagging::builder()
                .tag_set(tag("kenko:data", "records"))
                .tag_set(tag("kenko:stack", "kenko-prod"))
                .tag_set(tag(k, v))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The stack `hachioji/hachioji` with both claims and the account's records bucket, in a
/// `--stacks` file (as `kenko_api::residency::StackLocations`).
fn stacks_file(dir: &std::path::Path, records: &str) -> std::path::PathBuf {
    let path = dir.join("stacks.json");
    std::fs::write(
        &path,
        serde_json::json!([{
            "namespace": STACK_NS,
            "name": "hachioji",
            "region": TOKYO,
            "backupRegion": OSAKA,
            "vault": "kenko-prod-osaka",
            "sourceVault": "kenko-prod-tokyo",
            "recordsBucket": format!("s3://{records}/hachioji"),
            "claims": ["hachioji-data", "data-hachioji-db-0"]
        }])
        .to_string(),
    )
    .unwrap();
    path
}

/// The (location, status, reason, resource, detail) of every `backup.coverage` finding, by
/// location.
fn coverage(report: &Value) -> Vec<(String, String, String, String, String)> {
    let mut v: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "backup.coverage")
        .map(|f| {
            assert_eq!(f["backup"]["stack"], "hachioji/hachioji", "{f}");
            (
                f["backup"]["location"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                f["backup"]["reason"].as_str().unwrap().to_string(),
                f["resource"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// moto has volumes with tags, bucket tags and plans, but no backup selections, recovery
/// points or copy jobs: what needs them is Unknown (never covered), and the sweep goes on. A
/// claim with no volume at all is still a violation.
#[test]
fn against_the_emulator_backup_coverage_is_unknown_where_it_lacks_the_api() {
    let (moto, rt, a) = setup();
    let data = rt.block_on(async {
        let data = claim_volume(&a.clients, "hachioji-data", true).await;
        // A volume of another stack's claim is not this stack's.
        claim_volume(&a.clients, "fuchu-data", true).await;
        tag_records_for_backup(&a.clients, &a.records).await;
        data
    });
    let dir = tempfile::tempdir().unwrap();
    let stacks = stacks_file(dir.path(), &a.records);
    let (report, code, out) = audit(
        &moto,
        &["--regions", REGIONS, "--stacks", stacks.to_str().unwrap()],
        &[],
    );
    let got = coverage(&report);
    let brief: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .map(|(l, s, r, res, _)| (l.as_str(), s.as_str(), r.as_str(), res.as_str()))
        .collect();
    let volume = format!("arn:aws:ec2:{TOKYO}:{}:volume/{data}", a.account);
    let bucket = format!("arn:aws:s3:::{}", a.records);
    let records = format!("s3://{}/hachioji", a.records);
    let mut want = vec![
        (
            "pvc:data-hachioji-db-0",
            "violation",
            "NoBackupPlan",
            "pvc:data-hachioji-db-0",
        ),
        (
            "pvc:hachioji-data",
            "unknown",
            "AuditIncomplete",
            volume.as_str(),
        ),
        (
            records.as_str(),
            "unknown",
            "AuditIncomplete",
            bucket.as_str(),
        ),
    ];
    want.sort();
    assert_eq!(
        brief,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (l, _, _, _, detail) in &got {
        if l == "pvc:data-hachioji-db-0" {
            assert!(detail.contains("claim tags"), "{detail}");
        } else {
            assert!(detail.contains("ListBackupSelections"), "{detail}");
        }
    }
    // The rest of the account is audited as before: only the coverage findings are problems.
    assert!(problems(&report)
        .iter()
        .all(|(rule, ..)| rule == "backup.coverage"));
    assert_eq!(code, 1);
}

/// The whole collector path through the real SDK, with AWS Backup's answers recorded
/// (`tests/common/backup_audit_stub.rs`) and EC2 and S3 in moto: the tagged volume with a
/// recent point copied to Osaka is covered, the untagged one is not selected, and the records
/// bucket's recent point has no copy.
#[test]
fn recorded_backup_answers_decide_each_location_of_the_stack() {
    use common::backup_audit_stub;
    let (moto, rt, a) = setup();
    let (data, db) = rt.block_on(async {
        let data = claim_volume(&a.clients, "hachioji-data", true).await;
        let db = claim_volume(&a.clients, "data-hachioji-db-0", false).await;
        tag_records_for_backup(&a.clients, &a.records).await;
        (data, db)
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let acct = &a.account;
    let tokyo_vault = format!("arn:aws:backup:{TOKYO}:{acct}:backup-vault:kenko-prod-tokyo");
    let osaka_vault = format!("arn:aws:backup:{OSAKA}:{acct}:backup-vault:kenko-prod-osaka");
    let plan_arn = format!("arn:aws:backup:{TOKYO}:{acct}:backup-plan:p1");
    let volume = format!("arn:aws:ec2:{TOKYO}:{acct}:volume/{data}");
    let bucket = format!("arn:aws:s3:::{}", a.records);
    let snap = format!("arn:aws:ec2:{TOKYO}::snapshot/snap-0data");
    let records_point = format!("arn:aws:backup:{TOKYO}:{acct}:recovery-point:records-1");
    let lifecycle = serde_json::json!({"MoveToColdStorageAfterDays": 90, "DeleteAfterDays": 7305});
    let key = |r: &str, p: &str| (r.to_string(), p.to_string());
    let answers: backup_audit_stub::Answers = [
        (key(TOKYO, "/backup-vaults"), serde_json::json!({"BackupVaultList": [
            {"BackupVaultName": "kenko-prod-tokyo", "BackupVaultArn": tokyo_vault, "NumberOfRecoveryPoints": 2}]})),
        (key(OSAKA, "/backup-vaults"), serde_json::json!({"BackupVaultList": [
            {"BackupVaultName": "kenko-prod-osaka", "BackupVaultArn": osaka_vault, "NumberOfRecoveryPoints": 1}]})),
        (key(TOKYO, "/backup/plans"), serde_json::json!({"BackupPlansList": [
            {"BackupPlanId": "p1", "BackupPlanArn": plan_arn, "BackupPlanName": "kenko-prod-daily"}]})),
        (key(TOKYO, "/backup/plans/p1"), serde_json::json!({
            "BackupPlanId": "p1", "BackupPlanArn": plan_arn,
            "BackupPlan": {"BackupPlanName": "kenko-prod-daily", "Rules": [{
                "RuleName": "daily-copy-to-osaka", "TargetBackupVaultName": "kenko-prod-tokyo",
                "ScheduleExpression": "cron(0 17 * * ? *)", "Lifecycle": lifecycle,
                "CopyActions": [{"DestinationBackupVaultArn": osaka_vault, "Lifecycle": lifecycle}]}]}})),
        (key(TOKYO, "/backup/plans/p1/selections"), serde_json::json!({"BackupSelectionsList": [
            {"SelectionId": "s1", "SelectionName": "kenko-prod-tagged", "BackupPlanId": "p1",
             "IamRoleArn": format!("arn:aws:iam::{acct}:role/kenko-prod-backup")}]})),
        (key(TOKYO, "/backup/plans/p1/selections/s1"), serde_json::json!({
            "BackupPlanId": "p1", "SelectionId": "s1",
            "BackupSelection": {"SelectionName": "kenko-prod-tagged",
                "IamRoleArn": format!("arn:aws:iam::{acct}:role/kenko-prod-backup"),
                "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "kenko:backup", "ConditionValue": "true"}]}})),
        (key(TOKYO, "/backup-vaults/kenko-prod-tokyo/recovery-points"), serde_json::json!({"RecoveryPoints": [
            {"RecoveryPointArn": snap, "BackupVaultName": "kenko-prod-tokyo", "BackupVaultArn": tokyo_vault,
             "ResourceArn": volume, "ResourceType": "EBS", "CreationDate": now - 3 * 3600, "Status": "COMPLETED"},
            {"RecoveryPointArn": records_point, "BackupVaultName": "kenko-prod-tokyo", "BackupVaultArn": tokyo_vault,
             "ResourceArn": bucket, "ResourceType": "S3", "CreationDate": now - 3 * 3600, "Status": "COMPLETED"}]})),
        (key(OSAKA, "/backup-vaults/kenko-prod-osaka/recovery-points"), serde_json::json!({"RecoveryPoints": []})),
        (key(TOKYO, "/copy-jobs"), serde_json::json!({"CopyJobs": [
            {"CopyJobId": "c1", "SourceRecoveryPointArn": snap, "DestinationBackupVaultArn": osaka_vault,
             "ResourceArn": volume, "State": "COMPLETED"}]})),
    ]
    .into_iter()
    .collect();
    // A runtime with a worker thread: it serves while this thread waits for the binary.
    let served = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stub = served.block_on(backup_audit_stub::start(answers));
    let dir = tempfile::tempdir().unwrap();
    let stacks = stacks_file(dir.path(), &a.records);
    let (report, code, out) = audit(
        &moto,
        &["--regions", REGIONS, "--stacks", stacks.to_str().unwrap()],
        &[("KENKO_AWS_ENDPOINT_URL_BACKUP", &stub.url)],
    );
    let got = coverage(&report);
    let brief: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .map(|(l, s, r, res, _)| (l.as_str(), s.as_str(), r.as_str(), res.as_str()))
        .collect();
    let db_volume = format!("arn:aws:ec2:{TOKYO}:{acct}:volume/{db}");
    let records = format!("s3://{}/hachioji", a.records);
    let mut want = vec![
        (
            "pvc:data-hachioji-db-0",
            "violation",
            "NoBackupPlan",
            db_volume.as_str(),
        ),
        (
            "pvc:hachioji-data",
            "compliant",
            "BackupCovered",
            volume.as_str(),
        ),
        (
            records.as_str(),
            "violation",
            "NoCrossRegionCopy",
            bucket.as_str(),
        ),
    ];
    want.sort();
    assert_eq!(
        brief,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let covered = &got.iter().find(|g| g.0 == "pvc:hachioji-data").unwrap().4;
    assert!(
        covered.contains("#selection/kenko-prod-tagged") && covered.contains(&osaka_vault),
        "{covered}"
    );
    // The recorded plan and vaults pass the residency rules too: nothing else is a problem.
    let others: Vec<_> = problems(&report)
        .into_iter()
        .filter(|(rule, ..)| rule != "backup.coverage")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    assert_eq!(compliant_count(&report, "backup.plan_copy"), 1);
    assert_eq!(code, 1);
    drop(served);
}
