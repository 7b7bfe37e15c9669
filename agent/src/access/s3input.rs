//! CloudTrail from its S3 prefix (`[access] cloudtrail_s3`): a thread that lists the prefix
//! every `cloudtrail_s3_poll_secs` and downloads new log files into the CloudTrail folder the
//! monitor reads (`kenko_aws::cloudtrail`). Downloading apart from reading keeps the monitor's
//! checkpoint and chain rules as they are for a local folder, and a slow or failing S3 never
//! stalls the other two logs.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};

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
    LazyLock::force(&DOWNLOADS);
    super::spawn_cloud_reader(
        "cloudtrail-s3",
        s,
        s.cloudtrail_s3_poll,
        stop,
        |rt| {
            let ep = kenko_aws::Endpoint::from_env();
            rt.block_on(kenko_aws::s3_client(&ep, &ep.region))
        },
        move |rt, client, reading| {
            if !reading {
                return;
            }
            match rt.block_on(kenko_aws::cloudtrail::fetch_new(
                client,
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
                Err(e) => AccessEvent::CloudTrailS3Failed { error: &e }.emit(),
            }
        },
    )
}
