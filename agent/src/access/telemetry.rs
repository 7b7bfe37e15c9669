//! What the access monitor does that an operator watches, as typed events: `emit` moves the
//! metric and writes the log line together, so the two cannot disagree. Fields are reason
//! codes, source names, counts, CloudTrail file keys and rule names; never a log line's
//! content (a line can hold a resident's data).

use std::fmt::Display;
use std::time::Duration;

use super::output::ACCESS_METRICS;

/// One thing that happened in the access monitor.
pub enum AccessEvent<'a> {
    /// A line of a followed log could not be parsed and was skipped. `log` is false once a
    /// step has logged its share (the rest are only counted).
    LineSkipped {
        source: &'static str,
        reason: &'static str,
        error: &'a dyn Display,
        log: bool,
    },
    /// A CloudTrail record (or a whole file that cannot be read) was skipped.
    CloudTrailSkipped {
        file: &'a str,
        reason: &'static str,
        error: &'a dyn Display,
        whole_file: bool,
    },
    /// An alert could not be written to the alert file (it still goes to Alertmanager).
    AlertNotWritten {
        reason: &'static str,
        error: &'a dyn Display,
    },
    /// Alertmanager refused a batch (`status`), which is dropped, or a post failed and is
    /// retried after `retry_in`.
    AlertmanagerFailed {
        status: Option<u16>,
        alerts: usize,
        error: &'a dyn Display,
        retry_in: Option<Duration>,
    },
    /// An alert could not be published as a Kubernetes Event.
    KubeEventFailed {
        rule: &'a str,
        error: &'a dyn Display,
    },
    /// The Events queue was full: the alert is not published as an Event (it is in the alert
    /// file and goes to Alertmanager). Counted, logged only at debug level: it comes in floods.
    KubeEventDropped,
    /// Listing or downloading the trail's S3 prefix failed; tried again at the next poll.
    CloudTrailS3Failed { error: &'a dyn Display },
    /// Reading the Kubernetes audit log from CloudWatch Logs, or writing it to its spool,
    /// failed; tried again at the next poll from the last committed position.
    CloudWatchFailed { error: &'a dyn Display },
    /// The monitor stopped on an error and reopens from its checkpoint after `retry_in`.
    MonitorFailed {
        reason: &'static str,
        error: &'a dyn Display,
        retry_in: Duration,
    },
}

/// The reasons the events above put on `kenko_access_failures_total` by themselves (the
/// others carry the error's own `reason()`).
pub const ALERTMANAGER_FAILED: &str = "access_alertmanager_failed";
pub const KUBE_EVENTS_FAILED: &str = "access_events_failed";
pub const CLOUDTRAIL_S3_FAILED: &str = "access_cloudtrail_s3_failed";
pub const CLOUDWATCH_FAILED: &str = "access_cloudwatch_failed";

fn failed(reason: &str) {
    ACCESS_METRICS.failures.with_label_values(&[reason]).inc();
}

impl AccessEvent<'_> {
    /// Logs the event and updates its metrics.
    pub fn emit(&self) {
        match self {
            AccessEvent::LineSkipped {
                source,
                reason,
                error,
                log,
            } => {
                ACCESS_METRICS
                    .parse_errors
                    .with_label_values(&[source, reason])
                    .inc();
                if *log {
                    tracing::warn!(error = %error, reason, "access monitor: line skipped");
                }
            }
            AccessEvent::CloudTrailSkipped {
                file,
                reason,
                error,
                whole_file,
            } => {
                ACCESS_METRICS
                    .parse_errors
                    .with_label_values(&["cloudtrail", reason])
                    .inc();
                if *whole_file {
                    tracing::warn!(file, error = %error, reason, "access monitor: CloudTrail file skipped");
                } else {
                    tracing::warn!(file, error = %error, reason, "access monitor: CloudTrail record skipped");
                }
            }
            AccessEvent::AlertNotWritten { reason, error } => {
                failed(reason);
                tracing::error!(error = %error, reason, "access monitor: alert not written");
            }
            AccessEvent::AlertmanagerFailed {
                status,
                alerts,
                error,
                retry_in,
            } => {
                let outcome = if retry_in.is_some() {
                    "failed"
                } else {
                    "rejected"
                };
                ACCESS_METRICS
                    .alertmanager
                    .with_label_values(&[outcome])
                    .inc();
                failed(ALERTMANAGER_FAILED);
                match retry_in {
                    Some(r) => tracing::warn!(
                        error = %error,
                        retry_in_secs = r.as_secs(),
                        reason = ALERTMANAGER_FAILED,
                        "posting to Alertmanager failed; retrying"
                    ),
                    None => tracing::error!(
                        status = status.unwrap_or_default(),
                        alerts,
                        reason = ALERTMANAGER_FAILED,
                        "Alertmanager refused the alerts"
                    ),
                }
            }
            AccessEvent::KubeEventFailed { rule, error } => {
                failed(KUBE_EVENTS_FAILED);
                tracing::warn!(error = %error, reason = KUBE_EVENTS_FAILED, rule, "could not publish the access alert as a Kubernetes Event");
            }
            AccessEvent::KubeEventDropped => {
                failed(KUBE_EVENTS_FAILED);
                tracing::debug!(
                    reason = KUBE_EVENTS_FAILED,
                    "the Kubernetes Events queue is full; alert not published as an Event"
                );
            }
            AccessEvent::CloudTrailS3Failed { error } => {
                failed(CLOUDTRAIL_S3_FAILED);
                tracing::warn!(error = %error, reason = CLOUDTRAIL_S3_FAILED, "cloudtrail_s3: listing or download failed; trying again at the next poll");
            }
            AccessEvent::CloudWatchFailed { error } => {
                failed(CLOUDWATCH_FAILED);
                tracing::warn!(error = %error, reason = CLOUDWATCH_FAILED, "k8s_audit_cloudwatch: reading the audit log failed; trying again at the next poll");
            }
            AccessEvent::MonitorFailed {
                reason,
                error,
                retry_in,
            } => {
                failed(reason);
                tracing::error!(error = %error, reason, retry_in_secs = retry_in.as_secs(), "access monitor failed; reopening from the last checkpoint");
            }
        }
    }
}
