//! Retention (保存期間): personal data past its period is deleted on schedule, and each run ends
//! with a signed certificate of what went.
//!
//! What expires ([`RetentionConfig`]): the institutions' original deliveries in `processed/`
//! and `returned/` and the return reports in `reports/returns/` (they hold names, addresses and
//! My Numbers in clear, or 宛名番号) after `originals_months` (13 by default), counted from when
//! kenko wrote or moved them (the file's modification time, which the intake sets when it moves
//! a delivery out of the inbox); vaccination records in the store after `records_years` (20 at
//! least, as the city's assessment promises), counted from their 接種日.
//!
//! A run with `--apply` is a job that survives `kill -9`: its plan (the files and both
//! cut-off days) is written first and a rerun resumes that plan, never a new one. The records
//! go in one transaction that also records what it deleted, once per job; the files are erased
//! by the erasure engine (NIST SP 800-88 Clear: overwrite, verify, remove; its checkpoint
//! resumes a file half done), whose certificate — signed and chained like every other — is
//! issued only once every file is erased, and names the files and, in its notes, the records'
//! count and 接種日 range. Nothing is certified that was not erased.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{Months, NaiveDate};
use prometheus::{IntCounterVec, Opts};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::erase::{self, EraseContext, EraseError, EraseTarget, JobSpec};
use crate::fsutil;

pub mod cli;

/// The shortest retention of vaccination records the city promised (years).
pub const MIN_RECORDS_YEARS: u32 = 20;

/// The `[retention]` section of the agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Whether `run` applies retention on its schedule [default: false].
    pub enabled: bool,
    /// Seconds between scheduled runs [default: 86400].
    pub interval_secs: u64,
    /// Months the original deliveries and return reports are kept [default: 13].
    pub originals_months: u32,
    /// Years vaccination records are kept, from their 接種日 [default and minimum: 20].
    pub records_years: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: false,
            interval_secs: 86_400,
            originals_months: 13,
            records_years: MIN_RECORDS_YEARS,
        }
    }
}

impl RetentionConfig {
    /// The section, or what is wrong with it.
    pub fn checked(self) -> Result<RetentionConfig, String> {
        if self.records_years < MIN_RECORDS_YEARS {
            return Err(format!(
                "[retention] records_years = {}: vaccination records are kept at least {MIN_RECORDS_YEARS} years",
                self.records_years
            ));
        }
        if self.originals_months == 0 {
            return Err("[retention] originals_months = 0: expected at least 1".into());
        }
        if self.interval_secs < 60 {
            return Err("[retention] interval_secs: expected at least 60".into());
        }
        Ok(self)
    }
}

/// Why a retention run failed. Nothing is certified that was not erased.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention: {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("retention: the plan {path} cannot be read ({message}); it is kept for inspection: move it away to plan anew")]
    Plan { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] kenko_store::StoreError),
    #[error(transparent)]
    Erase(#[from] EraseError),
    #[error(transparent)]
    NoCloud(#[from] crate::NoCloud),
    #[cfg(feature = "cloud")]
    #[error("retention: the S3 inbox: {0}")]
    Aws(#[from] kenko_aws::AwsError),
}

impl RetentionError {
    pub fn reason(&self) -> &'static str {
        match self {
            RetentionError::Io { .. } => "retention_io_failed",
            RetentionError::Plan { .. } => "retention_plan_invalid",
            RetentionError::Store(e) => e.reason(),
            RetentionError::Erase(e) => e.reason(),
            RetentionError::NoCloud(e) => e.reason(),
            #[cfg(feature = "cloud")]
            RetentionError::Aws(e) => e.reason(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RetentionError + '_ {
    move |e| RetentionError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The folders whose files expire, relative to the data directory, and their kind.
pub const EXPIRING: [(&str, &str); 3] = [
    ("processed", "original delivery (loaded)"),
    ("returned", "original delivery (returned)"),
    ("reports/returns", "return report"),
];

/// One expired file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredFile {
    /// Relative to the data directory, or `s3://BUCKET/KEY` in the S3 inbox's bucket.
    pub path: String,
    pub bytes: u64,
    /// The day kenko wrote or moved it (Asia/Tokyo).
    pub day: NaiveDate,
}

/// A retention job: what it erases, decided once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub job_id: String,
    /// Files last written before this day expire.
    pub files_before: NaiveDate,
    /// Records with a 接種日 before this day expire.
    pub records_before: NaiveDate,
    pub files: Vec<ExpiredFile>,
}

/// What a run did, or (dry run) would do: counts, kinds and ranges, never a value.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub job_id: String,
    pub files_before: NaiveDate,
    pub records_before: NaiveDate,
    /// Per kind: (files, bytes, oldest day, newest day).
    pub files: Vec<KindCount>,
    pub records: kenko_store::RecordsDeleted,
    /// The certificate, when the run erased something.
    pub certificate: Option<PathBuf>,
    /// Whether this run resumed an interrupted one.
    pub resumed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KindCount {
    pub kind: &'static str,
    pub files: u64,
    pub bytes: u64,
    pub oldest: Option<NaiveDate>,
    pub newest: Option<NaiveDate>,
}

struct RetentionMetrics {
    files: IntCounterVec,
    records: prometheus::IntCounter,
    runs: IntCounterVec,
}

static METRICS: LazyLock<RetentionMetrics> = LazyLock::new(|| {
    let registry = &crate::metrics::METRICS.registry;
    let files = IntCounterVec::new(
        Opts::new(
            "kenko_retention_files_erased_total",
            "Expired files erased (NIST SP 800-88 Clear) by retention, by kind.",
        ),
        &["kind"],
    )
    .expect("metric");
    let records = prometheus::IntCounter::new(
        "kenko_retention_records_deleted_total",
        "Expired vaccination records deleted by retention.",
    )
    .expect("metric");
    let runs = IntCounterVec::new(
        Opts::new(
            "kenko_retention_runs_total",
            "Retention runs that applied, by outcome (ok or a reason code).",
        ),
        &["outcome"],
    )
    .expect("metric");
    registry
        .register(Box::new(files.clone()))
        .expect("register");
    registry
        .register(Box::new(records.clone()))
        .expect("register");
    registry.register(Box::new(runs.clone())).expect("register");
    RetentionMetrics {
        files,
        records,
        runs,
    }
});

/// Where the job's plan waits while the job runs.
fn plan_path(config: &Config) -> PathBuf {
    config.data_dir.join("retention").join("current.json")
}

/// The plan for today: every expired file, and both cut-off days.
pub fn plan(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, RetentionError> {
    let today = config.today();
    let r = &config.retention;
    let files_before = today
        .checked_sub_months(Months::new(r.originals_months))
        .unwrap_or(NaiveDate::MIN);
    let records_before = today
        .checked_sub_months(Months::new(r.records_years.saturating_mul(12)))
        .unwrap_or(NaiveDate::MIN);
    let tokyo = chrono::FixedOffset::east_opt(9 * 3600).expect("JST");
    let mut files = Vec::new();
    for (dir, _) in EXPIRING {
        let folder = config.data_dir.join(dir);
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&folder)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&folder))?;
            let meta = std::fs::symlink_metadata(e.path()).map_err(io(&e.path()))?;
            // Only regular files kenko wrote; a symlink is never followed to erase its target.
            if !meta.file_type().is_file() {
                continue;
            }
            let modified: chrono::DateTime<chrono::Utc> =
                meta.modified().map_err(io(&e.path()))?.into();
            let day = modified.with_timezone(&tokyo).date_naive();
            if day < files_before {
                let name = e.file_name().to_string_lossy().into_owned();
                files.push(ExpiredFile {
                    path: format!("{dir}/{name}"),
                    bytes: meta.len(),
                    day,
                });
            }
        }
    }
    if let Some(inbox) = &config.s3_inbox {
        files.extend(s3_expired(inbox, files_before)?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Plan {
        // Unique even for two runs in one second: a job's id keys its record in the store
        // and its certificate.
        job_id: format!(
            "retention-{}-{}",
            now.format("%Y%m%dT%H%M%SZ"),
            hex::encode(rand::random::<[u8; 4]>())
        ),
        files_before,
        records_before,
        files,
    })
}

/// The S3 inbox's originals and return reports past `before` (by their LastModified, which
/// is when kenko copied or wrote them), as `s3://BUCKET/KEY`. An expired key that is the
/// beginning of another key in its folder is left (the erasure of an S3 target takes a key
/// prefix: it would take the other object too) and said so.
#[cfg(feature = "cloud")]
fn s3_expired(inbox: &str, before: NaiveDate) -> Result<Vec<ExpiredFile>, RetentionError> {
    let (bucket, prefix) = kenko_aws::inbox::parse_inbox(inbox)?;
    let ep = kenko_api::aws::Endpoint::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("retention runtime")))?;
    let client = rt.block_on(kenko_aws::s3_client(&ep, &ep.region));
    let tokyo = chrono::FixedOffset::east_opt(9 * 3600).expect("JST");
    let mut out = Vec::new();
    for (dir, _) in EXPIRING {
        let listed = rt.block_on(kenko_aws::inbox::list_folder(
            &client, &bucket, &prefix, dir,
        ))?;
        for o in &listed {
            let Some(day) = o
                .last_modified
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.with_timezone(&tokyo).date_naive())
            else {
                continue;
            };
            if day >= before {
                continue;
            }
            if listed
                .iter()
                .any(|other| other.key != o.key && other.key.starts_with(&o.key))
            {
                tracing::warn!(folder = dir, "retention: an expired object's key begins another's; left for a person to remove");
                continue;
            }
            out.push(ExpiredFile {
                path: format!("s3://{bucket}/{}", o.key),
                bytes: o.size,
                day,
            });
        }
    }
    Ok(out)
}

/// Puts a certificate under `PREFIX/reports/retention/` in the S3 inbox's bucket.
#[cfg(feature = "cloud")]
fn keep_in_bucket(inbox: &str, cert: &Path) -> Result<(), RetentionError> {
    let (bucket, prefix) = kenko_aws::inbox::parse_inbox(inbox)?;
    let bytes = std::fs::read(cert).map_err(io(cert))?;
    let name = cert.file_name().unwrap_or_default().to_string_lossy();
    let ep = kenko_api::aws::Endpoint::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("retention runtime")))?;
    let client = rt.block_on(kenko_aws::s3_client(&ep, &ep.region));
    rt.block_on(kenko_aws::inbox::put(
        &client,
        &bucket,
        &format!("{prefix}reports/retention/{name}"),
        bytes,
    ))?;
    Ok(())
}

#[cfg(not(feature = "cloud"))]
fn keep_in_bucket(inbox: &str, _cert: &Path) -> Result<(), RetentionError> {
    Err(crate::NoCloud::new(format!("retention of the S3 inbox {inbox}")).into())
}

#[cfg(not(feature = "cloud"))]
fn s3_expired(inbox: &str, _before: NaiveDate) -> Result<Vec<ExpiredFile>, RetentionError> {
    Err(crate::NoCloud::new(format!("retention of the S3 inbox {inbox}")).into())
}

fn counts(plan: &Plan) -> Vec<KindCount> {
    EXPIRING
        .iter()
        .map(|(dir, kind)| {
            let of: Vec<&ExpiredFile> = plan
                .files
                .iter()
                .filter(|f| {
                    f.path
                        .rsplit_once('/')
                        .is_some_and(|(d, _)| d == *dir || d.ends_with(&format!("/{dir}")))
                })
                .collect();
            KindCount {
                kind,
                files: of.len() as u64,
                bytes: of.iter().map(|f| f.bytes).sum(),
                oldest: of.iter().map(|f| f.day).min(),
                newest: of.iter().map(|f| f.day).max(),
            }
        })
        .collect()
}

/// What a run would erase, changing nothing.
pub fn dry_run(config: &Config) -> Result<Report, RetentionError> {
    let plan = match read_plan(config)? {
        Some(p) => p,
        None => plan(config, kenko_intake::clock::now())?,
    };
    let mut store = kenko_store::open(&config.database_url)?;
    let records = store.count_records_before(&plan.records_before.to_string())?;
    Ok(Report {
        dry_run: true,
        job_id: plan.job_id.clone(),
        files_before: plan.files_before,
        records_before: plan.records_before,
        files: counts(&plan),
        records,
        certificate: None,
        resumed: false,
    })
}

fn read_plan(config: &Config) -> Result<Option<Plan>, RetentionError> {
    let path = plan_path(config);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RetentionError::Plan {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Applies retention: resumes an interrupted job, or plans and runs a new one.
pub fn apply(config: &Config) -> Result<Report, RetentionError> {
    let result = apply_job(config);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    };
    METRICS.runs.with_label_values(&[outcome]).inc();
    result
}

fn apply_job(config: &Config) -> Result<Report, RetentionError> {
    let path = plan_path(config);
    let (plan, resumed) = match read_plan(config)? {
        Some(p) => (p, true),
        None => {
            let p = plan(config, kenko_intake::clock::now())?;
            let dir = path.parent().expect("a plan has a folder");
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let json = serde_json::to_vec_pretty(&p).expect("a plan serialises");
            fsutil::atomic_write(&path, &json).map_err(io(&path))?;
            (p, false)
        }
    };
    crate::crashpoint::hit("retention-planned");
    let mut store = kenko_store::open(&config.database_url)?;
    let records = store.delete_records_before(&plan.records_before.to_string(), &plan.job_id)?;
    crate::crashpoint::hit("retention-records-deleted");
    let ctx = EraseContext::from_config(config, 7);
    let certificate = if plan.files.is_empty() && records.count == 0 {
        None
    } else {
        Some(match certified(&ctx, &plan.job_id)? {
            // Certified by an earlier run that stopped before it could say so.
            Some(p) => p,
            None => erase::run(&job(config, &plan, &records), &ctx)?.certificate_path,
        })
    };
    // In the cluster the pod's folder is memory: the certificate is kept in the stack's
    // bucket beside the reports before the job counts as done (a failed upload leaves the
    // plan, and the rerun finds the certificate and uploads it again).
    if let (Some(inbox), Some(cert)) = (&config.s3_inbox, &certificate) {
        keep_in_bucket(inbox, cert)?;
    }
    if !resumed || certificate.is_some() {
        for (kind, n) in counts(&plan).iter().map(|c| (c.kind, c.files)) {
            METRICS.files.with_label_values(&[kind]).inc_by(n);
        }
        METRICS.records.inc_by(records.count);
    }
    // The job is done: a rerun plans anew.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    tracing::info!(
        job = %plan.job_id,
        files = plan.files.len(),
        records = records.count,
        resumed,
        certificate = ?certificate,
        "retention applied"
    );
    Ok(Report {
        dry_run: false,
        job_id: plan.job_id.clone(),
        files_before: plan.files_before,
        records_before: plan.records_before,
        files: counts(&plan),
        records,
        certificate,
        resumed,
    })
}

/// The certificate an earlier run of `job` issued, if any (`NNNNNN-JOB.json`).
fn certified(ctx: &EraseContext, job: &str) -> Result<Option<PathBuf>, RetentionError> {
    let dir = &ctx.certificates;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(dir)(e)),
    };
    let suffix = format!("-{job}.json");
    for e in entries {
        let e = e.map_err(io(dir))?;
        if e.file_name().to_string_lossy().ends_with(&suffix) {
            return Ok(Some(e.path()));
        }
    }
    Ok(None)
}

/// The erasure job of a plan: every expired file, cleared and verified; the records' part in
/// the notes, so the one certificate says all the job did.
fn job(config: &Config, plan: &Plan, records: &kenko_store::RecordsDeleted) -> JobSpec {
    let kinds: Vec<String> = counts(plan)
        .iter()
        .filter(|c| c.files > 0)
        .map(|c| format!("{} {}", c.files, c.kind))
        .collect();
    let range = match (&records.oldest, &records.newest) {
        (Some(a), Some(b)) => format!(" (接種日 {a} to {b})"),
        _ => String::new(),
    };
    let in_s3 = plan
        .files
        .iter()
        .filter(|f| f.path.starts_with("s3://"))
        .count();
    let notes = format!(
        "Retention job {job}: {files} files last written before {fb} overwritten, verified and removed, and {in_s3} objects of the S3 inbox with every version deleted ({kinds}); {n} vaccination records with 接種日 before {rb} deleted from the record store{range}.",
        job = plan.job_id,
        files = plan.files.len() - in_s3,
        fb = plan.files_before,
        kinds = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
        n = records.count,
        rb = plan.records_before,
    );
    JobSpec {
        job_id: plan.job_id.clone(),
        targets: plan
            .files
            .iter()
            .map(|f| {
                if let Some(rest) = f.path.strip_prefix("s3://") {
                    // Every version and delete marker of the object, listed again after.
                    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                    return EraseTarget::S3 {
                        bucket: bucket.to_string(),
                        prefix: key.to_string(),
                    };
                }
                let p = config.data_dir.join(&f.path);
                EraseTarget::File {
                    path: std::path::absolute(&p)
                        .unwrap_or(p)
                        .to_string_lossy()
                        .into_owned(),
                }
            })
            .collect(),
        method: kenko_api::ErasureMethod::Clear,
        pattern: kenko_api::Pattern::Random,
        verify: kenko_api::VerifyMode::Full,
        location: None,
        stack: None,
        authority: None,
        sanitized_by: kenko_cert::Person {
            name: "kenko-agent retention".into(),
            title: "scheduled retention".into(),
            organization: String::new(),
            location: String::new(),
            phone: String::new(),
        },
        classification: "特定個人情報".into(),
        media_destination: "removed (retention period ended)".into(),
        notes,
        media: kenko_cert::Media::default(),
        checkpoint_bytes: 64 << 20,
        checkpoint_interval: std::time::Duration::from_secs(5),
    }
}

/// `run`'s schedule: applies retention every `interval_secs` until `stop`.
pub fn run_scheduled(config: Config, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    let every = std::time::Duration::from_secs(config.retention.interval_secs);
    while !stop.load(Ordering::SeqCst) {
        match apply(&config) {
            Ok(r) => {
                tracing::info!(job = %r.job_id, records = r.records.count, "scheduled retention done")
            }
            Err(e) => {
                tracing::error!(reason = e.reason(), error = %e, "scheduled retention failed; tried again next time")
            }
        }
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}
