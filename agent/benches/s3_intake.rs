//! A month of deliveries from S3: 200 CP932 files (one per institution) put under
//! `PREFIX/inbox/` of a versioned bucket on the local AWS emulator (moto_server on loopback),
//! taken in by one `kenko-agent intake run-once` into PostgreSQL: list, fetch, check, load,
//! copy to `processed/`, delete by version, reports into the bucket. Side by side in one run
//! with the same 200 files from a local folder inbox into PostgreSQL, so the S3 part shows as
//! the difference.
//!
//!     cargo bench -p kenko-agent --bench s3_intake
//!
//! Environment: KENKO_BENCH_FILES (default 200), KENKO_BENCH_FILE_ROWS (rows per file,
//! default 2000), KENKO_BENCH_RESIDENTS (default 100000), KENKO_BENCH_POSTGRES (default
//! postgres://postgres@127.0.0.1:5432), KENKO_MOTO_SERVER (default the test venv's).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark: a failure is the answer, and it sets up its files and clock directly"
)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use kenko_aws::aws_sdk_s3 as s3;

#[path = "../../tests/common/moto.rs"]
mod moto;
use kenko_intake::YearMonth;
use kenko_sample::{self as sample, IntakeSpec, SampleEncoding};

const AGENT: &str = env!("CARGO_BIN_EXE_kenko-agent");
const TODAY: &str = "2024-11-15";
const BUCKET: &str = "kenko-bench-intake-123456789012-ap-northeast-1";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let files = env_num("KENKO_BENCH_FILES", 200);
    let rows = env_num("KENKO_BENCH_FILE_ROWS", 2000);
    let residents_n = env_num("KENKO_BENCH_RESIDENTS", 100_000);
    let pg = std::env::var("KENKO_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    // Started first: a missing emulator fails before minutes of generation.
    let moto = moto::start_moto();
    moto::credentials();
    let dir = tempfile::tempdir().unwrap();

    // The register and the month's deliveries, generated once.
    let residents = sample::generate_residents(residents_n, 1);
    let register = dir.path().join("residents.csv");
    let mut f = std::fs::File::create(&register).unwrap();
    sample::write_resident_csv(&mut f, &residents).unwrap();
    drop(f);
    let month = YearMonth::new(2024, 10).unwrap();
    let today = chrono::NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").unwrap();
    let deliveries: Vec<(String, Vec<u8>)> = (0..files)
        .map(|i| {
            let mut spec = IntakeSpec::new(rows, month, today);
            spec.encoding = SampleEncoding::Cp932;
            spec.error_rate = 0.02;
            spec.seed = 1000 + i as u64;
            let mut bytes = Vec::new();
            sample::write_intake(&mut bytes, &residents, &spec).unwrap();
            (format!("23{:08}_202410_1.csv", i), bytes)
        })
        .collect();
    let mb: usize = deliveries.iter().map(|(_, b)| b.len()).sum::<usize>() / 1_000_000;
    eprintln!("{files} deliveries of {rows} rows ({mb} MB CP932), {residents_n} residents");

    // The emulator, the bucket, the deliveries.
    let url = moto.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = kenko_aws::Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(url.clone()),
        service_urls: vec![],
    };
    let put_secs = rt.block_on(async {
        let c = kenko_aws::s3_client(&ep, "ap-northeast-1").await;
        c.create_bucket()
            .bucket(BUCKET)
            .create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::ApNortheast1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(
                s3::types::VersioningConfiguration::builder()
                    .status(s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let t = Instant::now();
        for (name, bytes) in &deliveries {
            c.put_object()
                .bucket(BUCKET)
                .key(format!("city/inbox/{name}"))
                .body(s3::primitives::ByteStream::from(bytes.clone()))
                .send()
                .await
                .unwrap();
        }
        t.elapsed().as_secs_f64()
    });

    // From S3.
    let (s3_secs, s3_summary) = {
        let ws = dir.path().join("ws-s3");
        let db = fresh_db(&pg, "kenko_bench_s3");
        import(&ws, &db, &register);
        let t = Instant::now();
        let out = agent(&ws, &db)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "ap-northeast-1")
            .env("KENKO_AWS_ENDPOINT_URL", &url)
            .env("KENKO_INBOX", format!("s3://{BUCKET}/city/"))
            .args(["intake", "run-once", "--json"])
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop_db(&pg, "kenko_bench_s3");
        (secs, summary(&out.stdout))
    };
    let left = rt.block_on(async {
        let c = kenko_aws::s3_client(&ep, "ap-northeast-1").await;
        c.list_objects_v2()
            .bucket(BUCKET)
            .prefix("city/inbox/")
            .send()
            .await
            .unwrap()
            .key_count()
            .unwrap_or(0)
    });
    assert_eq!(left, 0, "every delivery left the inbox");

    // The same files from a local folder.
    let (local_secs, local_summary) = {
        let ws = dir.path().join("ws-local");
        let db = fresh_db(&pg, "kenko_bench_local");
        import(&ws, &db, &register);
        let inbox = ws.join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        for (name, bytes) in &deliveries {
            std::fs::write(inbox.join(name), bytes).unwrap();
        }
        let t = Instant::now();
        let out = agent(&ws, &db)
            .args(["intake", "run-once", "--json"])
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop_db(&pg, "kenko_bench_local");
        (secs, summary(&out.stdout))
    };
    drop(moto);

    let total = (files * rows) as f64;
    println!("\nS3 intake benchmark: {files} CP932 deliveries of {rows} rows ({mb} MB), {residents_n}-resident register, PostgreSQL");
    println!(
        "{:<44} {:>8} {:>9} {:>11} {:>10}",
        "variant", "seconds", "files/s", "rows/s", "peak RSS"
    );
    for (what, secs, s) in [
        (
            "S3 inbox (list, fetch, load, copy, delete)",
            s3_secs,
            &s3_summary,
        ),
        (
            "local folder inbox (load, move)",
            local_secs,
            &local_summary,
        ),
    ] {
        println!(
            "{:<44} {:>8.2} {:>9.1} {:>11.0} {:>10}   loaded {}, returned {}",
            what,
            secs,
            files as f64 / secs,
            total / secs,
            s["peak_rss_kib"]
                .as_u64()
                .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_default(),
            s["loaded"],
            s["returned"],
        );
    }
    println!(
        "S3 overhead: {:.2} s for {files} files ({:.0} ms per file); putting them took {put_secs:.2} s",
        s3_secs - local_secs,
        (s3_secs - local_secs) * 1000.0 / files as f64
    );
}

fn summary(stdout: &[u8]) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("run-once --json");
    assert_eq!(v["failed"], 0, "{v}");
    v
}

fn agent(ws: &Path, db: &str) -> Command {
    let mut c = Command::new(AGENT);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KENKO_TODAY", TODAY)
        .env("KENKO_SETTLE_SECS", "0")
        .env("KENKO_LOG", "warn")
        .arg("--data-dir")
        .arg(ws)
        .arg("--database-url")
        .arg(db);
    c
}

fn import(ws: &Path, db: &str, register: &Path) {
    let out = agent(ws, db)
        .args(["residents", "import"])
        .arg(register)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fresh_db(base: &str, name: &str) -> String {
    drop_db(base, name);
    let out = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{base}/{name}")
}

fn drop_db(base: &str, name: &str) {
    let _ = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-q", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .output();
}
