//! AWS targets against the local AWS emulator (moto_server on 127.0.0.1, from the venv the
//! test command creates): the same aws-sdk-rust code the product runs, with `endpoint_url`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use common::moto::{credentials, start_moto, Moto};

use std::path::{Path, PathBuf};
use std::process::Command;

use kenko_aws::aws_sdk_s3 as s3;
use kenko_aws::Endpoint;

/// The one certificate a test's job wrote.
fn only_certificate(data: &Path) -> PathBuf {
    let mut certs: Vec<PathBuf> = std::fs::read_dir(data.join("certificates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(certs.len(), 1, "{certs:?}");
    certs.pop().unwrap()
}

fn agent(data: &Path, moto: &Moto) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kenko-agent"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
        .env("KENKO_LOG", "info")
        .arg("--data-dir")
        .arg(data);
    c
}

#[test]
fn s3_erasure_deletes_every_version_and_marker_and_lists_locked_ones_as_blocked() {
    credentials();
    let moto = start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    rt.block_on(async {
        // A versioned records bucket in Tokyo: two versions of one object, one deleted object.
        let tokyo = kenko_aws::s3_client(&ep, "ap-northeast-1").await;
        tokyo
            .create_bucket()
            .bucket("kenko-records")
            .create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::ApNortheast1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        tokyo
            .put_bucket_versioning()
            .bucket("kenko-records")
            .versioning_configuration(
                s3::types::VersioningConfiguration::builder()
                    .status(s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for (key, body) in [
            ("2024-10/a.csv", "v1"),
            ("2024-10/a.csv", "v2 longer"),
            ("2024-10/b.csv", "b"),
        ] {
            tokyo
                .put_object()
                .bucket("kenko-records")
                .key(key)
                .body(s3::primitives::ByteStream::from(body.as_bytes().to_vec()))
                .send()
                .await
                .unwrap();
        }
        tokyo
            .delete_object()
            .bucket("kenko-records")
            .key("2024-10/b.csv")
            .send()
            .await
            .unwrap();

        // An Object Lock bucket in Osaka: one object under compliance retention.
        let osaka = kenko_aws::s3_client(&ep, "ap-northeast-3").await;
        osaka
            .create_bucket()
            .bucket("kenko-backup-osaka")
            .object_lock_enabled_for_bucket(true)
            .create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::ApNortheast3)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        osaka
            .put_object()
            .bucket("kenko-backup-osaka")
            .key("locked.dump")
            .body(s3::primitives::ByteStream::from_static(b"locked"))
            .object_lock_mode(s3::types::ObjectLockMode::Compliance)
            .object_lock_retain_until_date(s3::primitives::DateTime::from_secs(1_924_992_000)) // 2031-01-01
            .send()
            .await
            .unwrap();
        osaka
            .put_object()
            .bucket("kenko-backup-osaka")
            .key("free.dump")
            .body(s3::primitives::ByteStream::from_static(b"free"))
            .send()
            .await
            .unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = agent(&data, &moto)
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--target",
            "s3://kenko-records",
            "--target",
            "s3://kenko-backup-osaka",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let cert = only_certificate(&data);
    let verify = agent(&data, &moto)
        .args(["certificate", "verify"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&verify.stderr),
        String::from_utf8_lossy(&std::fs::read(&cert).unwrap())
    );
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let records = &c["targets"][0];
    assert_eq!(
        records["objects_erased"], 4,
        "3 versions and 1 delete marker: {records}"
    );
    assert_eq!(records["bytes_erased"], 2 + 9 + 1);
    assert_eq!(records["verification"]["passed"], true);
    assert!(records["media"]["media_type"]
        .as_str()
        .unwrap()
        .contains("ap-northeast-1"));
    let osaka = &c["targets"][1];
    assert!(osaka["media"]["media_type"]
        .as_str()
        .unwrap()
        .contains("ap-northeast-3"));
    assert_eq!(osaka["objects_erased"], 1);
    let blocked = osaka["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{osaka}");
    assert!(blocked[0]["item"].as_str().unwrap().contains("locked.dump"));
    assert!(blocked[0]["reason"]
        .as_str()
        .unwrap()
        .contains("COMPLIANCE"));
    assert!(blocked[0]["until"]
        .as_str()
        .unwrap()
        .starts_with("2031-01-01"));
    assert_eq!(osaka["verification"]["passed"], true);

    // Nothing is left in the records bucket; the locked version is still there.
    rt.block_on(async {
        let tokyo = kenko_aws::s3_client(&ep, "ap-northeast-1").await;
        let left = tokyo
            .list_object_versions()
            .bucket("kenko-records")
            .send()
            .await
            .unwrap();
        assert!(left.versions().is_empty() && left.delete_markers().is_empty());
        let osaka = kenko_aws::s3_client(&ep, "ap-northeast-3").await;
        let left = osaka
            .list_object_versions()
            .bucket("kenko-backup-osaka")
            .send()
            .await
            .unwrap();
        assert_eq!(left.versions().len(), 1);
    });
}

#[test]
fn a_kms_key_is_scheduled_for_deletion_and_finalize_waits_for_it() {
    credentials();
    let moto = start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    let arn = rt.block_on(async {
        let kms = kenko_aws::kms_client(&ep, "ap-northeast-3").await;
        let key = kms
            .create_key()
            .description("kenko backups")
            .send()
            .await
            .unwrap();
        key.key_metadata().unwrap().arn().unwrap().to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = format!("kms:{arn}");
    // A key is not erased by overwriting.
    let out = agent(&data, &moto)
        .args(["erase", "--name", "越谷 花子", "--target", &target])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_method_unsupported"));

    let out = agent(&data, &moto)
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--method",
            "crypto",
            "--kms-pending-days",
            "7",
            "--target",
            &target,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = rt
        .block_on(kenko_aws::key_state(
            &ep,
            &arn,
            arn.split(':').nth(3).unwrap(),
        ))
        .unwrap();
    assert!(
        matches!(state, kenko_aws::KeyState::Pending(_)),
        "{state:?}"
    );

    let cert = only_certificate(&data);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let t = &c["targets"][0];
    assert!(t["media"]["media_type"]
        .as_str()
        .unwrap()
        .contains("AWS KMS, ap-northeast-3"));
    assert_eq!(t["verification"]["method"], "crypto");
    assert!(t["verification"]["details"]
        .as_str()
        .unwrap()
        .contains("PendingDeletion"));
    assert_eq!(c["sanitization"]["method_used"], "cryptographic erase");

    // The key still exists (pending): finalize says so and issues nothing.
    let out = agent(&data, &moto)
        .args(["certificate", "finalize"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate_finalize_pending"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(data.join("certificates"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn an_ebs_snapshot_in_osaka_is_deleted_and_gone() {
    credentials();
    let moto = start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    let (keep, gone) = rt.block_on(async {
        let mut ids = Vec::new();
        for region in ["ap-northeast-1", "ap-northeast-3"] {
            let ec2 = kenko_aws::ec2_client(&ep, region).await;
            let vol = ec2
                .create_volume()
                .availability_zone(format!("{region}a"))
                .size(8)
                .send()
                .await
                .unwrap();
            let snap = ec2
                .create_snapshot()
                .volume_id(vol.volume_id().unwrap())
                .send()
                .await
                .unwrap();
            ids.push(snap.snapshot_id().unwrap().to_string());
        }
        (ids[0].clone(), ids[1].clone())
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = agent(&data, &moto)
        .args(["erase", "--name", "越谷 花子", "--target"])
        .arg(format!("ebs-snapshot:ap-northeast-3/{gone}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = only_certificate(&data);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let t = &c["targets"][0];
    assert!(t["media"]["media_type"]
        .as_str()
        .unwrap()
        .contains("Amazon EBS, ap-northeast-3"));
    assert_eq!(t["verification"]["passed"], true);
    assert!(t["verification"]["details"]
        .as_str()
        .unwrap()
        .contains("8 GiB"));
    rt.block_on(async {
        let osaka = kenko_aws::ec2_client(&ep, "ap-northeast-3").await;
        let left = osaka
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap();
        assert!(left
            .snapshots()
            .iter()
            .all(|s| s.snapshot_id() != Some(gone.as_str())));
        let tokyo = kenko_aws::ec2_client(&ep, "ap-northeast-1").await;
        let left = tokyo
            .describe_snapshots()
            .snapshot_ids(&keep)
            .send()
            .await
            .unwrap();
        assert_eq!(
            left.snapshots().len(),
            1,
            "the other region's snapshot is untouched"
        );
    });
}

#[test]
fn a_backup_recovery_point_is_sought_in_its_vaults_region_and_never_certified_unchecked() {
    use kenko_aws::backup::aws_sdk_backup;
    credentials();
    let moto = start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    let osaka_vault_arn = rt.block_on(async {
        let tokyo = kenko_aws::backup::backup_client(&ep, "ap-northeast-1").await;
        tokyo
            .create_backup_vault()
            .backup_vault_name("kenko-tokyo")
            .send()
            .await
            .unwrap();
        let osaka = kenko_aws::backup::backup_client(&ep, "ap-northeast-3").await;
        let out: aws_sdk_backup::operation::create_backup_vault::CreateBackupVaultOutput = osaka
            .create_backup_vault()
            .backup_vault_name("kenko-osaka")
            .send()
            .await
            .unwrap();
        out.backup_vault_arn().unwrap().to_string()
    });
    assert!(osaka_vault_arn.contains(":ap-northeast-3:"));
    let account = osaka_vault_arn.split(':').nth(4).unwrap().to_string();
    let point = "arn:aws:ec2:ap-northeast-3::snapshot/snap-0123456789abcdef0";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The Tokyo vault's name with an Osaka ARN: looked up in Osaka, where it does not exist.
    let out = agent(&data, &moto)
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--job-id",
            "rp-1",
            "--target",
        ])
        .arg(format!(
            "backup-rp:arn:aws:backup:ap-northeast-3:{account}:backup-vault:kenko-tokyo/{point}"
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("aws_api_failed"), "{stderr}");
    assert!(stderr.contains("DescribeBackupVault"), "{stderr}");
    assert!(stderr.contains("kenko-tokyo"), "{stderr}");

    // The Osaka vault exists; its recovery point cannot be described by this endpoint (the
    // emulator has no recovery point API), so nothing is deleted blind and nothing certified.
    let out = agent(&data, &moto)
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--job-id",
            "rp-2",
            "--target",
        ])
        .arg(format!("backup-rp:{osaka_vault_arn}/{point}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("aws_api_failed"), "{stderr}");
    assert!(stderr.contains("DescribeRecoveryPoint"), "{stderr}");
    assert!(
        !data.join("certificates").exists()
            || std::fs::read_dir(data.join("certificates"))
                .unwrap()
                .next()
                .is_none(),
        "no certificate without a checked erasure"
    );

    // A malformed recovery point target is refused before any call.
    let out = agent(&data, &moto)
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--job-id",
            "rp-3",
            "--target",
        ])
        .arg("backup-rp:kenko-osaka/snap-1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_target_unsupported"));
}
