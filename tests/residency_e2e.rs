//! The residency audit against the local AWS emulator (moto_server on 127.0.0.1, one per test
//! so tests run in parallel): an account built the way Terraform builds it passes, each
//! violation added to it on its own is found with the right rule, status and exit code, a region
//! that does not answer is Unknown (never compliant), `--remediate` removes exactly the
//! offending replication rule, and `kenko-agent run` exports the audit's metrics.
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
