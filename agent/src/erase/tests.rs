//! The engine's events: a job that certifies and one that fails are each counted once, with
//! the failure's reason as the label (the log line and the metric come from one event).

use super::*;
use crate::metrics::METRICS;

fn job(id: &str, target: &Path) -> JobSpec {
    JobSpec {
        job_id: id.into(),
        targets: vec![format!("file:{}", target.display()).parse().unwrap()],
        method: ErasureMethod::Clear,
        pattern: Pattern::Random,
        verify: VerifyMode::Full,
        location: None,
        stack: None,
        authority: None,
        sanitized_by: Person {
            name: "tester".into(),
            ..Default::default()
        },
        classification: "test".into(),
        media_destination: "reused".into(),
        notes: String::new(),
        media: Default::default(),
        checkpoint_bytes: 1 << 30,
        checkpoint_interval: std::time::Duration::from_secs(5),
    }
}

#[test]
fn a_certified_job_and_a_failed_job_are_each_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ctx = EraseContext {
        jobs: data.join("erase"),
        certificates: data.join("certificates"),
        signing_key: data.join("keys/signing.key"),
        data_key: data.join("keys/records.key"),
        database_url: format!("sqlite://{}", data.join("kenko.db").display()),
        aws: kenko_api::aws::Endpoint::default(),
        kms_pending_days: 7,
    };
    let certified = || {
        METRICS
            .erase_certificates
            .with_label_values(&["certified"])
            .get()
    };
    let failed = || {
        METRICS
            .erase_failures
            .with_label_values(&["erase_io_failed"])
            .get()
    };
    let (c0, f0) = (certified(), failed());

    let file = dir.path().join("records.bin");
    std::fs::write(&file, vec![7u8; 8192]).unwrap();
    run(&job("ok", &file), &ctx).unwrap();
    assert_eq!((certified() - c0, failed() - f0), (1, 0));

    let missing = dir.path().join("not-there.bin");
    let e = run(&job("missing", &missing), &ctx).unwrap_err();
    assert_eq!(e.reason(), "erase_io_failed");
    assert_eq!((certified() - c0, failed() - f0), (1, 1));
}
