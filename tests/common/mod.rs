//! Helpers for the end-to-end tests: a workspace per test, the real `kenko-agent` binary,
//! synthetic files from the same generator the CLI uses, fresh PostgreSQL databases, and
//! snapshots of everything an intake leaves behind (store, ledger, files) for comparison.
#![allow(dead_code)]

pub mod backup_audit_stub;
pub mod backup_stub;
pub mod moto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kenko_intake::YearMonth;
use kenko_sample::{self as sample, IntakeSpec, IntakeStats, SampleEncoding, SampleResident};

/// The business date the tests run on (vaccinations in October 2024 are in the past).
pub const TODAY: &str = "2024-11-15";

pub fn month() -> YearMonth {
    YearMonth::new(2024, 10).unwrap()
}

pub fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").unwrap()
}

/// The agent binary Cargo built for this test target.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kenko-agent"))
}

/// One test's data directory and store.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub database_url: String,
    _pg: Option<PgDatabase>,
}

impl Workspace {
    pub fn sqlite() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let database_url = format!("sqlite://{}", data.join("kenko.db").display());
        Workspace {
            dir,
            data,
            database_url,
            _pg: None,
        }
    }

    pub fn postgres() -> Workspace {
        let pg = PgDatabase::create();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Workspace {
            dir,
            data,
            database_url: pg.url.clone(),
            _pg: Some(pg),
        }
    }

    /// Another agent on this workspace's store (another pod of the same stack): its own data
    /// directory, the same database and the same data key.
    #[allow(dead_code, reason = "not every test binary runs two agents")]
    pub fn another_agent(&self) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("keys")).unwrap();
        std::fs::copy(
            self.data.join("keys/records.key"),
            data.join("keys/records.key"),
        )
        .unwrap();
        Workspace {
            dir,
            data,
            database_url: self.database_url.clone(),
            _pg: None,
        }
    }

    /// A data directory of its own on this workspace's database, with nothing copied (no
    /// key file).
    #[allow(dead_code, reason = "not every test binary needs it")]
    pub fn on_same_database(&self) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Workspace {
            dir,
            data,
            database_url: self.database_url.clone(),
            _pg: None,
        }
    }

    /// The agent with this workspace's flags and a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(agent_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KENKO_TODAY", TODAY)
            .env("KENKO_SETTLE_SECS", "0")
            .env("KENKO_LOG", "info")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--database-url")
            .arg(&self.database_url);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        out
    }

    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kenko-agent {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn inbox(&self) -> PathBuf {
        self.data.join("inbox")
    }

    /// Imports a synthetic register of `count` residents; returns them.
    pub fn import_residents(&self, count: usize, seed: u64) -> Vec<SampleResident> {
        let residents = sample::generate_residents(count, seed);
        let path = self.dir.path().join("residents.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        sample::write_resident_csv(&mut f, &residents).unwrap();
        self.run_ok(&["residents", "import", path.to_str().unwrap()]);
        residents
    }

    /// Writes an intake file into the inbox the way an uploader should: under a temporary
    /// name, then renamed.
    pub fn deliver(&self, name: &str, bytes: &[u8]) -> PathBuf {
        std::fs::create_dir_all(self.inbox()).unwrap();
        let tmp = self.inbox().join(format!("{name}.part"));
        std::fs::write(&tmp, bytes).unwrap();
        let path = self.inbox().join(name);
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    pub fn run_once_json(&self) -> serde_json::Value {
        let out = self.run_ok(&["intake", "run-once", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run-once --json printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Records and ledger as canonical text, plus every file under reports/, processed/ and
    /// returned/ (names and bytes), and what is left in the inbox.
    pub fn snapshot(&self) -> Snapshot {
        let mut store = kenko_store::open(&self.database_url).unwrap();
        let records = store.record_lines().unwrap();
        let ledger = store
            .ledger_all()
            .unwrap()
            .into_iter()
            // The holder is a random id per data directory: only whether there is one counts.
            .map(|mut e| {
                e.holder = e.holder.map(|_| "a holder".into());
                format!("{e:?}")
            })
            .collect();
        let dirty = store.dirty_months().unwrap();
        let mut files = BTreeMap::new();
        for sub in ["reports", "processed", "returned", "inbox"] {
            collect_files(&self.data.join(sub), &self.data, &mut files);
        }
        Snapshot {
            records,
            ledger,
            dirty,
            files,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub records: Vec<String>,
    pub ledger: Vec<String>,
    pub dirty: Vec<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

fn collect_files(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, root, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

/// An intake file from the shared generator, with what was injected row by row.
pub struct Generated {
    pub bytes: Vec<u8>,
    pub stats: IntakeStats,
    /// Data row number (header = 1) → injected reason code.
    pub injected: BTreeMap<u64, &'static str>,
}

pub fn generate(
    residents: &[SampleResident],
    records: usize,
    encoding: SampleEncoding,
    error_rate: f64,
    seed: u64,
) -> Generated {
    let mut spec = IntakeSpec::new(records, month(), today());
    spec.encoding = encoding;
    spec.error_rate = error_rate;
    spec.seed = seed;
    let mut bytes = Vec::new();
    let mut injected = BTreeMap::new();
    let stats = sample::write_intake_observed(&mut bytes, residents, &spec, |row, e| {
        if let Some(e) = e {
            injected.insert(row + 1, e.code());
        }
    })
    .unwrap();
    Generated {
        bytes,
        stats,
        injected,
    }
}

/// A database of its own on the local PostgreSQL, dropped afterwards.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

pub fn pg_base() -> String {
    std::env::var("KENKO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "kenko_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
                .expect("PostgreSQL on 127.0.0.1:5432 (the test command starts it)");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        PgDatabase {
            url: format!("{}/{name}", pg_base()),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A free TCP port on loopback for an agent's metrics server.
#[allow(
    dead_code,
    reason = "only the test binaries that run `kenko-agent run` use it"
)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET on loopback: the whole response, status line first.
#[allow(
    dead_code,
    reason = "only the test binaries that run `kenko-agent run` use it"
)]
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Waits for a condition with a deadline (the agent works asynchronously; this is not a sleep
/// standing in for synchronisation, it polls for the observable outcome).
#[allow(
    dead_code,
    reason = "only the test binaries that run `kenko-agent run` use it"
)]
pub fn wait_for(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
