//! A known-good stack (八王子市, Tokyo with backups in Osaka), for tests and examples.

use crate::*;

/// A compliant HealthStack `hachioji` (namespace unset).
pub fn hachioji() -> HealthStack {
    HealthStack::new(
        "hachioji",
        HealthStackSpec {
            municipality: Municipality {
                code: "132012".into(),
                name: "八王子市".into(),
            },
            app: AppSpec {
                image: "registry.city.example/health/app:1.4.2".into(),
                digest: Some(format!("sha256:{}", "a".repeat(64))),
                replicas: 2,
                resources: None,
            },
            database: DatabaseSpec {
                managed: Some(ManagedDatabase {
                    image: "postgres:16".into(),
                    storage_size: "100Gi".into(),
                }),
                external: None,
            },
            storage: StorageSpec {
                class: "gp3-tokyo".into(),
                size: "50Gi".into(),
                region: "ap-northeast-1".into(),
                records_bucket: Some("s3://kenko-prod-records-123456789012-ap-northeast-1".into()),
                records_replica_bucket: Some(
                    "s3://kenko-prod-records-123456789012-ap-northeast-3".into(),
                ),
                kms_key_arn: Some(
                    "arn:aws:kms:ap-northeast-1:123456789012:key/mrk-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
                        .into(),
                ),
            },
            backup: BackupSpec {
                region: "ap-northeast-3".into(),
                vault: "kenko-prod-osaka".into(),
                source_vault: "kenko-prod-tokyo".into(),
                schedule: "0 18 * * *".into(),
                retention_years: 20,
            },
            intake: IntakeSpec {
                schedule: "*/10 * * * *".into(),
                inbox: "s3://kenko-prod-intake-123456789012-ap-northeast-1/hachioji/".into(),
            },
            monitoring: MonitoringSpec::default(),
            network: NetworkSpec {
                allowed_egress_cidrs: vec!["10.20.0.0/24".into()],
            },
            suspend: false,
        },
    )
}
