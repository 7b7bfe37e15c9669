//! CloudTrail from its S3 prefix (`[access] cloudtrail_s3`): a thread that lists the prefix
//! every `cloudtrail_s3_poll_secs` and downloads new log files into the CloudTrail folder the
//! monitor reads (`kenko_aws::cloudtrail`). Downloading apart from reading keeps the monitor's
//! checkpoint and chain rules as they are for a local folder, and a slow or failing S3 never
//! stalls the other two logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, Opts};

use super::settings::AccessSettings;
use super::telemetry::AccessEvent;

static DOWNLOADS: LazyLock<IntCounter> = LazyLock::new(|| {
    let c = IntCounter::with_opts(Opts::new(
        "kenko_access_cloudtrail_s3_downloads_total",
        "CloudTrail log files downloaded from the S3 prefix into the monitor's folder.",
    ))
    .expect("metric");
    crate::metrics::METRICS
        .registry
        .register(Box::new(c.clone()))
        .expect("register");
    c
});

/// Starts the downloader when `cloudtrail_s3` is set.
pub fn spawn(s: &AccessSettings, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    let (bucket, prefix) = s.cloudtrail_s3.clone()?;
    let spool = s.cloudtrail_dir.clone()?;
    let gate = s.clone();
    let poll = s.cloudtrail_s3_poll;
    LazyLock::force(&DOWNLOADS);
    let handle = std::thread::Builder::new()
        .name("cloudtrail-s3".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cloudtrail_s3: cannot start its runtime");
                    return;
                }
            };
            let ep = kenko_aws::Endpoint::from_env();
            let client = rt.block_on(kenko_aws::s3_client(&ep, &ep.region));
            while !stop.load(Ordering::SeqCst) {
                if !gate.reads_cloud() {
                    // Another node's agent holds the cloud Lease and reads it; look again
                    // shortly (this agent takes over where its own cursor stands).
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                match rt.block_on(kenko_aws::cloudtrail::fetch_new(
                    &client,
                    &bucket,
                    &prefix,
                    &spool,
                    crate::fsutil::atomic_write,
                )) {
                    Ok(f) => {
                        DOWNLOADS.inc_by(f.downloaded);
                        if f.downloaded > 0 {
                            tracing::info!(
                                downloaded = f.downloaded,
                                bytes = f.bytes,
                                listed = f.listed,
                                "cloudtrail_s3: new log files"
                            );
                        }
                    }
                    Err(e) => {
                        AccessEvent::CloudTrailS3Failed { error: &e }.emit();
                    }
                }
                let until = Instant::now() + poll;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100).min(poll));
                }
            }
        })
        .ok()?;
    Some(handle)
}
