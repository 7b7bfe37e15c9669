//! A stack's intake in the cluster, defined once for the two parts that must agree: the
//! controller, which deploys `STACK-intake` and renders its configuration, and the agent,
//! which reads that configuration (a test parses the rendered file with the agent's own
//! loader). Paths, ports, Secret keys and environment names live here and nowhere else.

#[cfg(feature = "crd")]
use crate::names::StackNames;
#[cfg(feature = "crd")]
use crate::HealthStack;

/// The ConfigMap key (and file name) of the agent's configuration.
pub const CONFIG_FILE: &str = "kenko.toml";
/// The intake pods' annotation holding the SHA-256 of the configuration they were started
/// with: a changed configuration rolls the Deployment, and a new pod that refuses it never
/// becomes ready, so the pods with the last good one keep running (`maxUnavailable: 0`).
pub const CONFIG_HASH_ANNOTATION: &str = "kenko.io/config-sha256";
/// Where the configuration ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/kenko";
/// The agent's working directory: a memory-backed `emptyDir` (the bucket and the database
/// hold everything that must survive; a delivery is never written to a node's disk).
pub const WORK_DIR: &str = "/var/lib/kenko";
/// Where the data key Secret is mounted.
pub const DATA_KEY_DIR: &str = "/var/run/secrets/kenko";
/// The data key Secret's key (and file name).
pub const DATA_KEY_FILE: &str = "records.key";
/// The agent's metrics and probes (`/metrics`, `/healthz`, `/readyz`).
pub const METRICS_PORT: i32 = 9464;
/// The managed database's role and database name.
pub const DATABASE_USER: &str = "kenko";
pub const DATABASE_NAME: &str = "kenko";
/// Keys of a database credentials Secret (the managed one, or `database.external.secretName`).
pub const SECRET_USERNAME: &str = "username";
pub const SECRET_PASSWORD: &str = "password";
/// Environment the Deployment sets from the credentials Secret; the agent adds them to the
/// database URL, which carries none.
pub const ENV_DATABASE_USER: &str = "KENKO_DATABASE_USER";
pub const ENV_DATABASE_PASSWORD: &str = "KENKO_DATABASE_PASSWORD";
/// The stack's name, as metrics label it.
pub const ENV_STACK: &str = "KENKO_STACK";
/// Where the intake reports its state (on [`METRICS_PORT`], through the Service `NAME-intake`).
pub const STATUS_PATH: &str = "/intake/status";
/// The most the controller reads of a report: anything longer is not a report.
pub const MAX_REPORT_BYTES: usize = 4096;

/// What `NAME-intake` reports at [`STATUS_PATH`]: its last round, and the claim month's
/// counts from the stack's ledger (every replica and restart included). The controller
/// reads it into the HealthStack's status and the `IntakeHealthy` condition, and believes
/// only what it can check: a reason it knows, bounded counts, a one-line message.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntakeReport {
    /// One of [`crate::reasons::reason::INTAKE_REPORTED`].
    pub reason: String,
    /// One line: what is wrong, or what the last round did (never a personal value).
    pub message: String,
    /// When the last round ended (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round_at: Option<String>,
    /// When the last file was taken (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_file_at: Option<String>,
    /// The claim month the counts below are for (`YYYY-MM`), from the stack's ledger:
    /// files finished since the first of the month after it (Asia/Tokyo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_month: Option<String>,
    pub files_loaded: u64,
    pub files_returned: u64,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
}

#[cfg(feature = "crd")]
/// The stack's database, without credentials: the managed StatefulSet's Service, or the
/// external host.
pub fn database_url(stack: &HealthStack) -> String {
    let s = &stack.spec;
    let n = StackNames::of(&stack.metadata.name.clone().unwrap_or_default());
    match (&s.database.managed, &s.database.external) {
        (None, Some(ext)) => format!("postgres://{}:{}/{DATABASE_NAME}", ext.host, ext.port),
        _ => format!("postgres://{}:5432/{DATABASE_NAME}", n.db),
    }
}

#[cfg(feature = "crd")]
/// The agent's configuration file for the stack, in the agent's own format (no secrets, no
/// personal data). `intake.schedule` is when an S3 inbox is listed.
pub fn agent_config(stack: &HealthStack) -> String {
    let s = &stack.spec;
    let name = stack.metadata.name.clone().unwrap_or_default();
    let mut out = format!(
        "# kenko-agent configuration for the HealthStack {name}, written by kenko-controller.\n\
         data_dir = {data_dir}\n\
         database_url = {db}\n\
         metrics_addr = \"0.0.0.0:{METRICS_PORT}\"\n\
         log_format = \"json\"\n\
         [intake]\n\
         schedule = {schedule}\n",
        data_dir = toml_string(WORK_DIR),
        db = toml_string(&database_url(stack)),
        schedule = toml_string(&s.intake.schedule),
    );
    // The data key: wrapped by the stack's KMS key in its database (envelope encryption,
    // bound to `NAMESPACE/NAME`), or the Secret's file when the stack has no KMS key.
    match &s.storage.kms_key_arn {
        Some(arn) => out.push_str(&format!(
            "kms_key_arn = {}\nstack = {}\n",
            toml_string(arn),
            toml_string(&key_context(stack)),
        )),
        None => out.push_str(&format!(
            "data_key_file = {}\n",
            toml_string(&format!("{DATA_KEY_DIR}/{DATA_KEY_FILE}"))
        )),
    }
    if s.intake.inbox.starts_with("s3://") {
        out.push_str(&format!("inbox = {}\n", toml_string(&s.intake.inbox)));
    }
    // The stack's intake keeps its originals for the city's periods, not forever: its
    // retention runs daily (the defaults of `[retention]`: 13 months for deliveries, 20 years
    // for records) and keeps each certificate in the bucket beside the reports.
    out.push_str("[retention]\nenabled = true\n");
    out
}

#[cfg(feature = "crd")]
/// The stack as the KMS encryption context of its data key names it: `NAMESPACE/NAME`.
pub fn key_context(stack: &HealthStack) -> String {
    format!(
        "{}/{}",
        stack.metadata.namespace.as_deref().unwrap_or("default"),
        stack.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(feature = "crd")]
/// A TOML basic string (the values are validated by the CRD, but a quote or backslash must
/// never end the string early).
fn toml_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(all(test, feature = "crd"))]
mod tests {
    use super::*;

    #[test]
    fn the_managed_database_is_the_stacks_own_service_and_an_external_one_its_host() {
        let mut s = crate::samples::hachioji();
        assert_eq!(database_url(&s), "postgres://hachioji-db:5432/kenko");
        s.spec.database.managed = None;
        s.spec.database.external = Some(crate::health_stack::ExternalDatabase {
            host: "db.internal".into(),
            port: 6432,
            secret_name: "db".into(),
            cidrs: vec!["10.0.0.0/24".into()],
        });
        assert_eq!(database_url(&s), "postgres://db.internal:6432/kenko");
    }

    #[test]
    fn a_quote_in_a_value_cannot_end_the_string() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
