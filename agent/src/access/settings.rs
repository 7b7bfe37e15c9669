//! The `[access]` section of the agent's configuration: where the three logs, the roster and
//! the outputs are, and the detection thresholds. Disabled by default, so the embedded default
//! `run` is unchanged; `kenko-agent access run` and `access check` use it whether enabled or not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kenko_access::{Calendar, Config as DetectConfig, OfficeHours, Principals};
use serde::Deserialize;

/// The section as written in the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// Also run the access monitor inside `kenko-agent run` [default: off on one machine; on
    /// in the cluster (`run --cluster`), where `enabled = false` turns it off].
    pub enabled: Option<bool>,
    /// The health system's access log (JSON lines), followed as it grows and rotates.
    pub health_log: Option<PathBuf>,
    /// The kubelet's container logs (`/var/log/pods` on a node): the `app` container of each
    /// stack's app pods (`[[access.stacks]]`) is followed there, in the CRI log format, as
    /// that stack's health access log. Set by the cluster agent.
    pub pod_logs: Option<PathBuf>,
    /// The HealthStacks watched (in the cluster: one per HealthStack, derived from it by
    /// `kenko_api::access::stack_access`; by hand elsewhere).
    #[serde(default)]
    pub stacks: Vec<kenko_api::access::StackAccess>,
    /// The Kubernetes audit log (JSON lines). With `k8s_audit_cloudwatch` it is the spool
    /// the downloader writes [default then: STATE_DIR/k8s-audit-cloudwatch/audit.jsonl].
    pub k8s_audit_log: Option<PathBuf>,
    /// The CloudWatch Logs group of the Kubernetes audit log: on EKS `/aws/eks/CLUSTER/cluster`
    /// (streams `kube-apiserver-audit-…`). Credentials the usual AWS way;
    /// `KENKO_AWS_ENDPOINT_URL` for an emulator.
    pub k8s_audit_cloudwatch: Option<String>,
    /// Seconds between reads of `k8s_audit_cloudwatch` [default: 30].
    pub k8s_audit_cloudwatch_poll_secs: Option<u64>,
    /// A folder of CloudTrail log files (`*.json.gz`, searched recursively).
    pub cloudtrail_dir: Option<PathBuf>,
    /// CloudTrail's S3 prefix (`s3://BUCKET/AWSLogs/ACCOUNT/CloudTrail/`): new log files are
    /// downloaded into `cloudtrail_dir` [default for it then: STATE_DIR/cloudtrail-s3], which
    /// the monitor reads. Credentials the usual AWS way; `KENKO_AWS_ENDPOINT_URL` for an
    /// emulator.
    pub cloudtrail_s3: Option<String>,
    /// Seconds between listings of `cloudtrail_s3` [default: 60].
    pub cloudtrail_s3_poll_secs: Option<u64>,
    /// The staff roster (CSV or TOML).
    pub roster: Option<PathBuf>,
    /// Office hours in Asia/Tokyo, `HH:MM-HH:MM` [default: 08:30-17:15].
    pub office_hours: Option<String>,
    /// State: checkpoint and tamper-evidence chain [default: DATA_DIR/access].
    pub state_dir: Option<PathBuf>,
    /// The JSON-lines alert file [default: STATE_DIR/alerts.jsonl].
    pub alert_file: Option<PathBuf>,
    /// Alertmanager base URL (`http://host:9093`); no Alertmanager output when absent.
    pub alertmanager_url: Option<String>,
    /// Base of the `runbook_url` annotation (e.g. a Git web URL of the repository) [default:
    /// none: the repository-relative path `runbooks/…`].
    pub runbook_base_url: Option<String>,
    /// Seconds between checkpoints [default: 5].
    pub checkpoint_secs: Option<u64>,
    /// Milliseconds between looks at the inputs when `notify` says nothing [default: 1000].
    pub poll_ms: Option<u64>,
    #[serde(default)]
    pub thresholds: Thresholds,
}

/// Detection thresholds (each defaults to the value documented in `kenko_access::detect`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub bulk_window_minutes: Option<u32>,
    pub bulk_threshold: Option<u32>,
    pub export_records_per_day: Option<u64>,
    pub off_hours_grace_before_min: Option<u32>,
    pub off_hours_grace_after_min: Option<u32>,
    pub failed_login_count: Option<u32>,
    pub failed_login_window_secs: Option<i64>,
    pub volume_warmup_days: Option<u32>,
    pub group_interval_secs: Option<i64>,
    pub records_buckets: Option<Vec<String>>,
    pub records_kms_keys: Option<Vec<String>>,
    pub db_pods: Option<Vec<String>>,
    /// AWS accounts of the municipality: principals of any other account are the provider's.
    pub home_accounts: Option<Vec<String>>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    pub enabled: bool,
    pub health_log: Option<PathBuf>,
    pub pod_logs: Option<PathBuf>,
    pub stacks: Vec<kenko_api::access::StackAccess>,
    pub k8s_audit_log: Option<PathBuf>,
    pub k8s_audit_cloudwatch: Option<String>,
    pub k8s_audit_cloudwatch_poll: Duration,
    pub cloudtrail_dir: Option<PathBuf>,
    /// (bucket, prefix) of CloudTrail's S3 prefix, downloaded into `cloudtrail_dir`.
    pub cloudtrail_s3: Option<(String, String)>,
    pub cloudtrail_s3_poll: Duration,
    pub roster: Option<PathBuf>,
    pub office_hours: OfficeHours,
    pub state_dir: PathBuf,
    pub alert_file: PathBuf,
    pub alertmanager_url: Option<String>,
    pub runbook_base_url: Option<String>,
    pub checkpoint_interval: Duration,
    pub poll_interval: Duration,
    pub detect: DetectConfig,
    pub principals: Principals,
    /// In the cluster: set while this agent holds the cloud Lease. The cloud inputs
    /// (CloudWatch Logs, CloudTrail's bucket) are read only while it is set, so one agent
    /// reads them, not one per node; None on one machine (always read).
    pub cloud_gate: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A setting that cannot be used (`config_invalid`).
#[derive(Debug, thiserror::Error)]
#[error("[access] {field}: {message}")]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

impl SettingsError {
    pub fn reason(&self) -> &'static str {
        "config_invalid"
    }
}

/// The detector's view of the stacks (their office hours checked).
fn scopes(
    stacks: &[kenko_api::access::StackAccess],
) -> Result<Vec<kenko_access::StackScope>, SettingsError> {
    let mut out = Vec::with_capacity(stacks.len());
    for st in stacks {
        let bad = |message: String| SettingsError {
            field: "stacks",
            message,
        };
        let hours = OfficeHours::parse(&st.office_hours).ok_or_else(|| {
            bad(format!(
                "{}: office_hours: expected HH:MM-HH:MM (Asia/Tokyo), e.g. 08:30-17:15",
                st.stack
            ))
        })?;
        if st.namespace.is_empty() || st.stack.split_once('/').is_none() {
            return Err(bad(
                "expected stack = \"NAMESPACE/NAME\" and its namespace".to_string()
            ));
        }
        out.push(kenko_access::StackScope {
            stack: st.stack.clone(),
            namespace: st.namespace.clone(),
            db_pods: st.db_pods.clone(),
            records: st.records.clone(),
            kms_keys: st.kms_keys.clone(),
            office_hours: Some(hours),
        });
    }
    Ok(out)
}

impl AccessSection {
    /// The section as the node agent in the cluster uses it: on unless `enabled = false`,
    /// following the kubelet's container logs of the stacks' app pods, with the roster from
    /// its ConfigMap (`kenko_api::access::ROSTER_CONFIGMAP`); what the file sets stays.
    pub fn in_cluster(&self) -> AccessSection {
        use kenko_api::access::{POD_LOG_DIR, ROSTER_DIR, ROSTER_KEY};
        let mut s = self.clone();
        s.enabled.get_or_insert(true);
        s.pod_logs.get_or_insert_with(|| POD_LOG_DIR.into());
        s.roster
            .get_or_insert_with(|| Path::new(ROSTER_DIR).join(ROSTER_KEY));
        s
    }

    /// Resolves defaults against the data directory.
    pub fn resolve(&self, data_dir: &Path) -> Result<AccessSettings, SettingsError> {
        let office_hours = match &self.office_hours {
            None => OfficeHours::default(),
            Some(s) => OfficeHours::parse(s).ok_or_else(|| SettingsError {
                field: "office_hours",
                message: "expected HH:MM-HH:MM (Asia/Tokyo), e.g. 08:30-17:15".into(),
            })?,
        };
        if let Some(url) = &self.alertmanager_url {
            if !url.starts_with("http://") {
                return Err(SettingsError {
                    field: "alertmanager_url",
                    message: "expected http://HOST:PORT (in-cluster, plain HTTP)".into(),
                });
            }
        }
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("access"));
        let cloudtrail_s3 = match &self.cloudtrail_s3 {
            None => None,
            Some(url) => Some(kenko_api::aws::parse_s3(url).map_err(|_| SettingsError {
                field: "cloudtrail_s3",
                message: "expected s3://BUCKET/PREFIX (CloudTrail's log prefix)".into(),
            })?),
        };
        if let Some(g) = &self.k8s_audit_cloudwatch {
            let ok = g.starts_with('/')
                && g.len() <= 512
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.#".contains(&b));
            if !ok {
                return Err(SettingsError {
                    field: "k8s_audit_cloudwatch",
                    message: "expected a CloudWatch Logs group, e.g. /aws/eks/CLUSTER/cluster"
                        .into(),
                });
            }
        }
        #[cfg(not(feature = "cloud"))]
        for (field, set) in [
            ("cloudtrail_s3", self.cloudtrail_s3.is_some()),
            ("k8s_audit_cloudwatch", self.k8s_audit_cloudwatch.is_some()),
        ] {
            if set {
                return Err(SettingsError {
                    field,
                    message: crate::NoCloud::new("reading it").to_string(),
                });
            }
        }
        let k8s_audit_log = match (&self.k8s_audit_log, &self.k8s_audit_cloudwatch) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(_)) => Some(state_dir.join("k8s-audit-cloudwatch").join("audit.jsonl")),
            (None, None) => None,
        };
        let cloudtrail_dir = match (&self.cloudtrail_dir, &cloudtrail_s3) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(_)) => Some(state_dir.join("cloudtrail-s3")),
            (None, None) => None,
        };
        let t = &self.thresholds;
        let mut detect = DetectConfig::default();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = t.$f.clone() { detect.$f = v; } )* };
        }
        set!(
            bulk_window_minutes,
            bulk_threshold,
            export_records_per_day,
            off_hours_grace_before_min,
            off_hours_grace_after_min,
            failed_login_count,
            failed_login_window_secs,
            volume_warmup_days,
            group_interval_secs,
            records_buckets,
            records_kms_keys,
            db_pods
        );
        detect.stacks = scopes(&self.stacks)?;
        let mut principals = Principals::default();
        if let Some(h) = &t.home_accounts {
            principals.home_accounts = h.clone();
        }
        Ok(AccessSettings {
            enabled: self.enabled.unwrap_or(false),
            health_log: self.health_log.clone(),
            pod_logs: self.pod_logs.clone(),
            stacks: self.stacks.clone(),
            k8s_audit_log,
            k8s_audit_cloudwatch: self.k8s_audit_cloudwatch.clone(),
            k8s_audit_cloudwatch_poll: Duration::from_secs(
                self.k8s_audit_cloudwatch_poll_secs.unwrap_or(30).max(1),
            ),
            cloudtrail_dir,
            cloudtrail_s3,
            cloudtrail_s3_poll: Duration::from_secs(
                self.cloudtrail_s3_poll_secs.unwrap_or(60).max(1),
            ),
            roster: self.roster.clone(),
            office_hours,
            alert_file: self
                .alert_file
                .clone()
                .unwrap_or_else(|| state_dir.join("alerts.jsonl")),
            state_dir,
            alertmanager_url: self
                .alertmanager_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            runbook_base_url: self.runbook_base_url.clone(),
            checkpoint_interval: Duration::from_secs(self.checkpoint_secs.unwrap_or(5)),
            poll_interval: Duration::from_millis(self.poll_ms.unwrap_or(1000).max(10)),
            detect,
            principals,
            cloud_gate: None,
        })
    }
}

impl AccessSettings {
    /// The same settings watching these stacks (the cluster agent's, from the HealthStacks).
    pub fn with_stacks(
        &self,
        stacks: Vec<kenko_api::access::StackAccess>,
    ) -> Result<AccessSettings, SettingsError> {
        let mut s = self.clone();
        s.detect.stacks = scopes(&stacks)?;
        s.stacks = stacks;
        Ok(s)
    }

    pub fn calendar(&self) -> Calendar {
        Calendar::new(self.office_hours)
    }

    /// The checkpoint file.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.state_dir.join("checkpoint.json")
    }

    /// The tamper-evidence chain's directory (what `audit-log verify` takes).
    pub fn chain_dir(&self) -> PathBuf {
        self.state_dir.join("chain")
    }

    /// Whether this agent reads the cloud inputs now (see `cloud_gate`).
    pub fn reads_cloud(&self) -> bool {
        self.cloud_gate
            .as_ref()
            .is_none_or(|g| g.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The Alertmanager receivers of a stack's alerts (none for alerts of no stack).
    pub fn receivers(&self, stack: &str) -> &[String] {
        self.stacks
            .iter()
            .find(|s| s.stack == stack)
            .map_or(&[], |s| s.alert_receivers.as_slice())
    }

    /// The `runbook_url` of a runbook path (`runbooks/…`).
    pub fn runbook_url(&self, runbook: &str) -> String {
        match &self.runbook_base_url {
            Some(base) => format!("{}/{runbook}", base.trim_end_matches('/')),
            None => runbook.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_thresholds() {
        let s: AccessSection = toml::from_str(
            "health_log = \"/var/log/h.jsonl\"\nroster = \"/etc/kenko/roster.csv\"\n[thresholds]\nbulk_threshold = 50\n",
        )
        .unwrap();
        let r = s.resolve(Path::new("/srv/kenko")).unwrap();
        assert!(!r.enabled);
        assert_eq!(r.state_dir, PathBuf::from("/srv/kenko/access"));
        assert_eq!(
            r.alert_file,
            PathBuf::from("/srv/kenko/access/alerts.jsonl")
        );
        assert_eq!(r.detect.bulk_threshold, 50);
        assert_eq!(r.detect.export_records_per_day, 1000);
        let bad: AccessSection = toml::from_str("office_hours = \"9-5\"\n").unwrap();
        let e = bad.resolve(Path::new("/x")).unwrap_err().to_string();
        assert!(e.contains("office_hours"), "{e}");
        assert!(toml::from_str::<AccessSection>("health_lgo = \"x\"\n").is_err());
        let s3: AccessSection =
            toml::from_str("cloudtrail_s3 = \"s3://trail/AWSLogs/111122223333/\"\n").unwrap();
        let r = s3.resolve(Path::new("/srv/kenko")).unwrap();
        assert_eq!(
            r.cloudtrail_s3,
            Some(("trail".into(), "AWSLogs/111122223333/".into()))
        );
        assert_eq!(
            r.cloudtrail_dir,
            Some(PathBuf::from("/srv/kenko/access/cloudtrail-s3"))
        );
        let bad: AccessSection = toml::from_str("cloudtrail_s3 = \"trail/x\"\n").unwrap();
        let e = bad.resolve(Path::new("/x")).unwrap_err().to_string();
        assert!(e.contains("cloudtrail_s3"), "{e}");
    }

    #[test]
    fn the_cloud_inputs_are_read_on_one_machine_and_by_the_lease_holder_only_in_the_cluster() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut s = AccessSection::default().resolve(Path::new("/x")).unwrap();
        assert!(s.reads_cloud(), "one machine: always");
        let leader = std::sync::Arc::new(AtomicBool::new(false));
        s.cloud_gate = Some(leader.clone());
        assert!(!s.reads_cloud(), "another node holds the Lease");
        leader.store(true, Ordering::SeqCst);
        assert!(s.reads_cloud());
    }
}
