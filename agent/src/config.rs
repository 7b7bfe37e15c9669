//! The agent's configuration: built-in defaults, then a TOML file (`--config`), then the
//! environment (`KENKO_*`), then flags; later wins. Every path has a default under the data
//! directory, so the agent runs with no configuration at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use kenko_intake::VaccineMaster;
use serde::Deserialize;

use crate::crypto::{DataKey, KeyError};
use crate::intake::Dirs;

/// Flags shared by every subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalFlags {
    /// TOML configuration file.
    #[arg(long, global = true, env = "KENKO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Working directory: inbox/, processed/, returned/, reports/, keys/ [default: ./kenko-data]
    #[arg(long, global = true, env = "KENKO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... [default: sqlite://DATA_DIR/kenko.db]
    #[arg(long, global = true, env = "KENKO_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where `run` serves Prometheus metrics [default: 127.0.0.1:9464]
    #[arg(long, global = true, env = "KENKO_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds an inbox file must stay unchanged before it is taken (without a .done marker)
    /// [default: 10]
    #[arg(long, global = true, env = "KENKO_SETTLE_SECS")]
    pub settle_secs: Option<u64>,
    /// Vaccine master TOML replacing the built-in one.
    #[arg(long, global = true, env = "KENKO_VACCINE_MASTER")]
    pub vaccine_master: Option<PathBuf>,
    /// Data key file [default: DATA_DIR/keys/records.key]
    #[arg(long, global = true, env = "KENKO_DATA_KEY_FILE")]
    pub data_key_file: Option<PathBuf>,
    /// Certificate signing key (Ed25519 seed) [default: DATA_DIR/keys/signing.key]
    #[arg(long, global = true, env = "KENKO_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long, global = true, env = "KENKO_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Where deliveries arrive when not in DATA_DIR/inbox: s3://BUCKET/PREFIX/ (objects under
    /// PREFIX/inbox/; results go to PREFIX/processed/, returned/ and reports/).
    #[arg(long, global = true, env = "KENKO_INBOX")]
    pub inbox: Option<String>,
    /// Seconds between listings of an S3 inbox [default: 60]
    #[arg(long, global = true, env = "KENKO_INBOX_POLL_SECS")]
    pub inbox_poll_secs: Option<u64>,
    /// Overrides today's date (Asia/Tokyo) for the checks; for tests and replays.
    #[arg(long, global = true, env = "KENKO_TODAY", hide = true)]
    pub today: Option<NaiveDate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    metrics_addr: Option<SocketAddr>,
    log_format: Option<String>,
    signing_key_file: Option<PathBuf>,
    #[serde(default)]
    intake: IntakeSection,
    #[serde(default)]
    residency: crate::account_audit::ResidencyConfig,
    #[serde(default)]
    access: crate::access::settings::AccessSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeSection {
    settle_secs: Option<u64>,
    /// `s3://BUCKET/PREFIX/`; absent: the folder DATA_DIR/inbox.
    inbox: Option<String>,
    poll_secs: Option<u64>,
    /// When an S3 inbox is listed: a 5-field cron in Asia/Tokyo (instead of `poll_secs`).
    schedule: Option<String>,
    vaccine_master: Option<PathBuf>,
    data_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("vaccine master {path}: {message}")]
    Master { path: PathBuf, message: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("log format {0:?}: expected text or json")]
    LogFormat(String),
    #[error("intake inbox {0:?}: expected s3://BUCKET/PREFIX/ (the folder inbox is DATA_DIR/inbox and needs no setting)")]
    Inbox(String),
    #[error("intake schedule {schedule:?}: {message} (expected a 5-field cron such as \"*/10 * * * *\", in Asia/Tokyo)")]
    Schedule { schedule: String, message: String },
    #[error("database credentials from the environment need a postgres:// database URL without user or password")]
    Credentials,
}

impl ConfigError {
    pub fn reason(&self) -> &'static str {
        match self {
            ConfigError::File { .. } => "config_invalid",
            ConfigError::Master { .. } => "master_invalid",
            ConfigError::Key(k) => k.reason(),
            ConfigError::LogFormat(_)
            | ConfigError::Inbox(_)
            | ConfigError::Schedule { .. }
            | ConfigError::Credentials => "config_invalid",
        }
    }
}

/// The resolved configuration. Its `Debug` names the database without its password.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub metrics_addr: SocketAddr,
    pub settle: Duration,
    pub vaccine_master: Option<PathBuf>,
    pub data_key_file: PathBuf,
    pub signing_key_file: PathBuf,
    pub json_logs: bool,
    pub today: Option<NaiveDate>,
    /// `[intake] inbox`: the S3 inbox, when deliveries arrive in S3.
    pub s3_inbox: Option<String>,
    /// How often an S3 inbox is listed when idle (without a schedule).
    pub inbox_poll: Duration,
    /// When an S3 inbox is listed (`[intake] schedule`), instead of every `inbox_poll`.
    pub inbox_schedule: Option<crate::intake::schedule::Schedule>,
    /// `[residency]`: the scheduled AWS residency audit of `run` (off by default).
    pub residency: crate::account_audit::ResidencyConfig,
    /// The `[access]` section (resolved by `access::cli::settings`).
    pub access: crate::access::settings::AccessSection,
    /// What the Pod's environment says (downward API, manifests); empty outside a cluster.
    pub pod: PodEnv,
}

/// The settings a Pod gets from its environment: the downward API's node, namespace and
/// Pod name, and what the DaemonSet's manifest sets. This is the one place the agent reads
/// environment variables (clippy's `disallowed-methods` keeps it so); clap reads the `KENKO_*`
/// flags' variables itself.
#[derive(Debug, Clone, Default)]
pub struct PodEnv {
    /// `NODE_NAME`: the node this agent runs on (needed by `run --cluster`).
    pub node_name: Option<String>,
    /// `POD_NAMESPACE`: where the agent's Leases live.
    pub namespace: Option<String>,
    /// `POD_NAME`: the Pod that Kubernetes Events about access alerts regard.
    pub pod_name: Option<String>,
    /// `KENKO_HOST_ROOT`: where the node's root file system is mounted in the Pod.
    pub host_root: String,
    /// `KENKO_ORGANIZATION`: the organisation named on erasure certificates.
    pub organization: String,
    /// The database user and password, from the stack's credentials Secret (the
    /// configuration's URL carries none).
    pub database_user: Option<String>,
    pub database_password: Option<Password>,
}

/// A password held in memory: zeroized on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct Password(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl PodEnv {
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration: the one place env is read"
    )]
    pub fn from_env() -> PodEnv {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        PodEnv {
            node_name: var("NODE_NAME"),
            namespace: var("POD_NAMESPACE"),
            pod_name: var("POD_NAME"),
            host_root: var("KENKO_HOST_ROOT").unwrap_or_default(),
            organization: var("KENKO_ORGANIZATION").unwrap_or_default(),
            database_user: var(kenko_api::intake::ENV_DATABASE_USER),
            database_password: var(kenko_api::intake::ENV_DATABASE_PASSWORD)
                .map(|p| Password(zeroize::Zeroizing::new(p))),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &kenko_store::redact_url(&self.database_url))
            .field("s3_inbox", &self.s3_inbox)
            .finish_non_exhaustive()
    }
}

/// The database URL with the user and password the Pod's environment gives (percent-encoded);
/// unchanged without them.
fn with_credentials(
    url: String,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<String, ConfigError> {
    if user.is_none() && password.is_none() {
        return Ok(url);
    }
    let Some(rest) = url.strip_prefix("postgres://") else {
        return Err(ConfigError::Credentials);
    };
    if rest.split('/').next().unwrap_or_default().contains('@') {
        return Err(ConfigError::Credentials);
    }
    let enc = |v: &str| {
        let mut out = String::with_capacity(v.len());
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let userinfo = match (user, password) {
        (None, None) => return Ok(url),
        (Some(u), Some(p)) => format!("{}:{}", enc(u), enc(p)),
        (Some(u), None) => enc(u),
        (None, Some(p)) => format!(":{}", enc(p)),
    };
    Ok(format!("postgres://{userinfo}@{rest}"))
}

/// `KENKO_STACK`: the HealthStack this agent works for (its intake Deployment sets it); every
/// metric carries it as the label `stack`.
#[allow(
    clippy::disallowed_methods,
    reason = "configuration: the one place env is read"
)]
pub fn stack_label() -> Option<String> {
    std::env::var(kenko_api::intake::ENV_STACK)
        .ok()
        .filter(|v| !v.is_empty())
}

/// `KENKO_AWS_REGION_ENDPOINTS`: per-region endpoint overrides of the residency audit (the
/// emulator in tests).
#[allow(
    clippy::disallowed_methods,
    reason = "configuration: the one place env is read"
)]
pub fn aws_region_endpoints() -> Option<String> {
    std::env::var("KENKO_AWS_REGION_ENDPOINTS").ok()
}

impl Config {
    pub fn resolve(flags: &GlobalFlags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("kenko-data"));
        let database_url = flags
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("kenko.db").display()));
        let log_format = flags
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        let json_logs = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => return Err(ConfigError::LogFormat(other.to_string())),
        };
        let pod = PodEnv::from_env();
        let database_url = with_credentials(
            database_url,
            pod.database_user.as_deref(),
            pod.database_password.as_ref().map(|p| p.0.as_str()),
        )?;
        let inbox_schedule = match &file.intake.schedule {
            Some(cron) => Some(crate::intake::schedule::Schedule::parse(cron).map_err(
                |message| ConfigError::Schedule {
                    schedule: cron.clone(),
                    message,
                },
            )?),
            None => None,
        };
        let s3_inbox = flags.inbox.clone().or(file.intake.inbox);
        if let Some(uri) = &s3_inbox {
            if kenko_aws::inbox::parse_inbox(uri).is_err() {
                return Err(ConfigError::Inbox(uri.clone()));
            }
        }
        Ok(Config {
            s3_inbox,
            inbox_schedule,
            inbox_poll: Duration::from_secs(
                flags
                    .inbox_poll_secs
                    .or(file.intake.poll_secs)
                    .unwrap_or(60)
                    .max(1),
            ),
            database_url,
            metrics_addr: flags
                .metrics_addr
                .or(file.metrics_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9464))),
            settle: Duration::from_secs(
                flags.settle_secs.or(file.intake.settle_secs).unwrap_or(10),
            ),
            vaccine_master: flags.vaccine_master.clone().or(file.intake.vaccine_master),
            data_key_file: flags
                .data_key_file
                .clone()
                .or(file.intake.data_key_file)
                .unwrap_or_else(|| data_dir.join("keys").join("records.key")),
            signing_key_file: flags
                .signing_key_file
                .clone()
                .or(file.signing_key_file)
                .unwrap_or_else(|| data_dir.join("keys").join("signing.key")),
            json_logs,
            today: flags.today,
            residency: file.residency,
            access: file.access,
            pod,
            data_dir,
        })
    }

    pub fn dirs(&self) -> Dirs {
        Dirs::new(&self.data_dir)
    }

    pub fn load_master(&self) -> Result<VaccineMaster, ConfigError> {
        match &self.vaccine_master {
            None => Ok(VaccineMaster::default_master()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Master {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                VaccineMaster::from_toml(&text, &path.display().to_string()).map_err(|e| {
                    ConfigError::Master {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })
            }
        }
    }

    pub fn load_key(&self) -> Result<DataKey, ConfigError> {
        Ok(DataKey::load_or_create(&self.data_key_file)?)
    }

    /// Today in Asia/Tokyo (UTC+9, no daylight saving), unless overridden.
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(today_in_tokyo)
    }
}

pub use kenko_intake::clock::today_in_tokyo;

/// Resolves a path against the data directory when relative (for report paths we print).
pub fn display_path(base: &Path, p: &str) -> String {
    base.join(p).display().to_string()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_the_controller_renders_for_a_stack_is_one_the_agent_reads() {
        use kenko_api::intake;
        let stack = kenko_api::samples::hachioji();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(intake::CONFIG_FILE);
        std::fs::write(&path, intake::agent_config(&stack)).unwrap();
        let flags = GlobalFlags {
            config: Some(path),
            ..Default::default()
        };
        let c = Config::resolve(&flags).unwrap();
        assert_eq!(
            c.s3_inbox.as_deref(),
            Some(stack.spec.intake.inbox.as_str())
        );
        assert_eq!(c.database_url, intake::database_url(&stack));
        assert_eq!(c.data_dir, PathBuf::from(intake::WORK_DIR));
        assert_eq!(
            c.data_key_file,
            PathBuf::from(intake::DATA_KEY_DIR).join(intake::DATA_KEY_FILE)
        );
        assert_eq!(
            c.inbox_schedule.as_ref().map(|s| s.pattern()),
            Some(stack.spec.intake.schedule.as_str())
        );
        assert_eq!(c.metrics_addr.port() as i32, intake::METRICS_PORT);
        assert!(c.json_logs);
    }

    #[test]
    fn credentials_from_the_secret_join_the_url_encoded_and_never_show_in_debug() {
        let url = with_credentials(
            "postgres://db:5432/kenko".into(),
            Some("kenko"),
            Some("p@ss/w:rd"),
        )
        .unwrap();
        assert_eq!(url, "postgres://kenko:p%40ss%2Fw%3Ard@db:5432/kenko");
        assert_eq!(
            with_credentials("postgres://db/kenko".into(), None, None).unwrap(),
            "postgres://db/kenko"
        );
        assert!(matches!(
            with_credentials("postgres://a:b@db/kenko".into(), Some("u"), Some("p")),
            Err(ConfigError::Credentials)
        ));
        let mut c = Config::resolve(&GlobalFlags::default()).unwrap();
        c.database_url = url;
        assert!(!format!("{c:?}").contains("p%40ss"), "{c:?}");
    }

    #[test]
    fn defaults_live_under_the_data_dir() {
        let c = Config::resolve(&GlobalFlags::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("kenko-data"));
        assert_eq!(c.database_url, "sqlite://kenko-data/kenko.db");
        assert_eq!(
            c.data_key_file,
            PathBuf::from("kenko-data/keys/records.key")
        );
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(c.settle, Duration::from_secs(10));
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/kenko\"\n[intake]\nsettle_secs = 3\n",
        )
        .unwrap();
        let flags = GlobalFlags {
            config: Some(path.clone()),
            settle_secs: Some(1),
            ..Default::default()
        };
        let c = Config::resolve(&flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/kenko"));
        assert_eq!(c.settle, Duration::from_secs(1));
        std::fs::write(&path, "data_dri = \"/x\"\n").unwrap();
        let err = Config::resolve(&flags).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml") && err.contains("data_dri"),
            "{err}"
        );
    }
}
