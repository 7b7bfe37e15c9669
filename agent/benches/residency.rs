//! Residency audit benchmark: 500 buckets, 500 EBS snapshots and 50 backup plans across Tokyo
//! and Osaka in the local AWS emulator (moto_server), audited with concurrency 8 and with
//! concurrency 1, side by side in one run: wall time and API calls. Then the same through a
//! loopback proxy that holds every request about 10 ms, as a model of real AWS latency (where
//! bounded concurrency is what makes a sweep of a big account finish in reasonable time).
//!
//! `cargo bench -p kenko-agent --bench residency` (needs /var/tmp/kenko-venv/bin/moto_server, or
//! KENKO_MOTO_SERVER). KENKO_BENCH_SCALE=0.1 shrinks the account for a quick look.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark: a failure is the answer, and it sets up its files and clock directly"
)]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kenko_aws::audit::{self, AuditOptions, Clients, Policy};
use kenko_aws::aws_sdk_ec2 as ec2;
use kenko_aws::aws_sdk_s3 as s3;
use kenko_aws::backup::aws_sdk_backup as backup;
use kenko_aws::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGIONS: [&str; 2] = ["ap-northeast-1", "ap-northeast-3"];

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, u16) {
    let bin = std::env::var_os("KENKO_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kenko-venv/bin/moto_server"));
    assert!(
        bin.exists(),
        "{} is missing: run bash tests/run-all.sh first",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Moto(child), port)
}

/// A loopback TCP proxy that holds each chunk the client sends (in practice one request) for
/// `delay` before passing it on.
async fn latency_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

async fn populate(c: &Clients, buckets: usize, snapshots: usize, plans: usize) {
    // Keys and vaults, one set per region.
    let mut keys = BTreeMap::new();
    let mut vaults = BTreeMap::new();
    for r in REGIONS {
        let k = c.kms(r).create_key().send().await.unwrap();
        keys.insert(r, k.key_metadata().unwrap().arn().unwrap().to_string());
        let v = c
            .backup(r)
            .create_backup_vault()
            .backup_vault_name(format!("bench-{r}"))
            .send()
            .await
            .unwrap();
        vaults.insert(r, v.backup_vault_arn().unwrap().to_string());
    }
    let keys = &keys;
    futures::stream::iter(0..buckets)
        .map(|i| async move {
            let r = REGIONS[i % 2];
            let name = format!("bench-{i:04}-{r}");
            let s = c.s3(r);
            s.create_bucket()
                .bucket(&name)
                .create_bucket_configuration(
                    s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(s3::types::BucketLocationConstraint::from(r))
                        .build(),
                )
                .send()
                .await
                .unwrap();
            s.put_bucket_versioning()
                .bucket(&name)
                .versioning_configuration(
                    s3::types::VersioningConfiguration::builder()
                        .status(s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            s.put_bucket_encryption()
                .bucket(&name)
                .server_side_encryption_configuration(
                    s3::types::ServerSideEncryptionConfiguration::builder()
                        .rules(
                            s3::types::ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(
                                    s3::types::ServerSideEncryptionByDefault::builder()
                                        .sse_algorithm(s3::types::ServerSideEncryption::AwsKms)
                                        .kms_master_key_id(&keys[r])
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for r in REGIONS {
        let e = c.ec2(r);
        let vol = e
            .create_volume()
            .availability_zone(format!("{r}a"))
            .size(8)
            .send()
            .await
            .unwrap();
        let vol_id = vol.volume_id().unwrap().to_string();
        let e = &e;
        let vol_id = &vol_id;
        futures::stream::iter(0..snapshots / 2)
            .map(|_| async move {
                e.create_snapshot().volume_id(vol_id).send().await.unwrap();
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
    }
    // The stack's closed VPC in Tokyo with its endpoints, so the network rules have something
    // to check.
    let e = c.ec2(REGIONS[0]);
    let vpc = e
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .tag_specifications(
            ec2::types::TagSpecification::builder()
                .resource_type(ec2::types::ResourceType::Vpc)
                .tags(
                    ec2::types::Tag::builder()
                        .key("kenko:stack")
                        .value("bench")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    for s in audit::REQUIRED_ENDPOINT_SERVICES {
        e.create_vpc_endpoint()
            .vpc_id(&vpc_id)
            .service_name(format!("com.amazonaws.{}.{s}", REGIONS[0]))
            .send()
            .await
            .unwrap();
    }
    for i in 0..plans {
        let r = REGIONS[i % 2];
        let other = REGIONS[(i + 1) % 2];
        let life = backup::types::Lifecycle::builder()
            .delete_after_days(7305)
            .build();
        c.backup(r)
            .create_backup_plan()
            .backup_plan(
                backup::types::BackupPlanInput::builder()
                    .backup_plan_name(format!("bench-{i:03}"))
                    .rules(
                        backup::types::BackupRuleInput::builder()
                            .rule_name("daily")
                            .target_backup_vault_name(format!("bench-{r}"))
                            .lifecycle(life.clone())
                            .copy_actions(
                                backup::types::CopyAction::builder()
                                    .destination_backup_vault_arn(&vaults[other])
                                    .lifecycle(life)
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

async fn audit_once(port: u16, concurrency: usize) -> (f64, u64, u64, u64) {
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        service_urls: vec![],
    };
    let clients = Clients::new(&ep, BTreeMap::new()).await;
    let opts = AuditOptions {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        concurrency,
        policy: Policy::default(),
        stacks: Ok(Vec::new()),
    };
    let t = Instant::now();
    let (report, _) = audit::run(&clients, &opts, false).await;
    let secs = t.elapsed().as_secs_f64();
    (
        secs,
        report.api_calls,
        report.summary.compliant,
        report.summary.unknown,
    )
}

fn main() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::remove_var("AWS_PROFILE");
    let scale: f64 = std::env::var("KENKO_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: usize| ((x as f64 * scale).round() as usize).max(2);
    let (buckets, snapshots, plans) = (n(500), n(500), n(50));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_moto, port) = start_moto();
    let t = Instant::now();
    rt.block_on(async {
        let ep = Endpoint {
            region: "ap-northeast-1".into(),
            endpoint_url: Some(format!("http://127.0.0.1:{port}")),
            service_urls: vec![],
        };
        let c = Clients::new(&ep, BTreeMap::new()).await;
        populate(&c, buckets, snapshots, plans).await;
    });
    println!(
        "residency audit: {buckets} buckets, {snapshots} snapshots, {plans} backup plans in {} and {} (moto_server; set up in {:.1} s)",
        REGIONS[0],
        REGIONS[1],
        t.elapsed().as_secs_f64()
    );
    let proxy = rt.block_on(latency_proxy(port, Duration::from_millis(10)));
    // Once unmeasured: moto builds each region's backends on first use.
    rt.block_on(audit_once(port, 8));
    println!(
        "{:<34} {:>11} {:>9} {:>10} {:>9} {:>8}",
        "path", "concurrency", "wall s", "API calls", "compliant", "unknown"
    );
    for (label, p) in [
        ("moto direct (loopback)", port),
        ("moto + 10 ms per request proxy", proxy),
    ] {
        for conc in [8usize, 1] {
            let (secs, calls, ok, unknown) = rt.block_on(audit_once(p, conc));
            println!("{label:<34} {conc:>11} {secs:>9.2} {calls:>10} {ok:>9} {unknown:>8}");
        }
    }
}
