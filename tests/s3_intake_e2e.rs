//! The S3 inbox against the local AWS emulator (moto_server on 127.0.0.1): deliveries put
//! under `PREFIX/inbox/` of a versioned intake bucket are loaded or returned, their reports
//! and the originals land under `reports/`, `processed/` and `returned/` in the bucket, the
//! ledger records each object's version and ETag, and a kill -9 of the real binary at every
//! step ends, after a rerun, exactly as an uninterrupted run.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::moto::{credentials, start_moto, Moto};
use common::{generate, Workspace};
use kenko_aws::aws_sdk_s3 as s3;
use kenko_aws::Endpoint;
use kenko_sample::SampleEncoding;

const BUCKET: &str = "koshigaya-intake-123456789012-ap-northeast-1";
const INBOX: &str = "s3://koshigaya-intake-123456789012-ap-northeast-1/health/";

struct Bucket {
    rt: tokio::runtime::Runtime,
    client: s3::Client,
}

impl Bucket {
    fn create(moto: &Moto) -> Bucket {
        credentials();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ep = Endpoint {
            region: "ap-northeast-1".into(),
            endpoint_url: Some(moto.url.clone()),
            service_urls: vec![],
        };
        let client = rt.block_on(async {
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
            c
        });
        Bucket { rt, client }
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        self.rt.block_on(async {
            self.client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(s3::primitives::ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .unwrap();
        });
    }

    /// Every key with a version or a delete marker left.
    fn versioned_keys(&self) -> Vec<String> {
        self.rt.block_on(async {
            let list = self
                .client
                .list_object_versions()
                .bucket(BUCKET)
                .send()
                .await
                .unwrap();
            let mut keys: Vec<String> = list
                .versions()
                .iter()
                .filter_map(|v| v.key().map(String::from))
                .chain(
                    list.delete_markers()
                        .iter()
                        .filter_map(|m| m.key().map(String::from)),
                )
                .collect();
            keys.sort();
            keys.dedup();
            keys
        })
    }

    /// Every current object: key → bytes.
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let list = self
                .client
                .list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .unwrap();
            for o in list.contents() {
                let key = o.key().unwrap().to_string();
                let got = self
                    .client
                    .get_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let bytes = got.body.collect().await.unwrap().into_bytes().to_vec();
                out.insert(key, bytes);
            }
            out
        })
    }
}

fn agent(ws: &Workspace, moto: &Moto) -> Command {
    let mut c = ws.cmd();
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
        .env("KENKO_INBOX", INBOX);
    c
}

fn run_once(ws: &Workspace, moto: &Moto) -> serde_json::Value {
    let out = agent(ws, moto)
        .args(["intake", "run-once", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run-once failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ledger with each origin's version id and ETag replaced by whether they are there
/// (version ids differ from run to run).
fn ledger(ws: &Workspace) -> Vec<String> {
    let mut store = kenko_store::open(&ws.database_url).unwrap();
    store
        .ledger_all()
        .unwrap()
        .into_iter()
        .map(|mut e| {
            // A new pod has a new data directory, so a new holder id: only its presence counts.
            e.holder = e.holder.map(|_| "a holder".into());
            let origin: Option<serde_json::Value> =
                e.origin.take().map(|o| serde_json::from_str(&o).unwrap());
            let origin = origin.map(|o| {
                format!(
                    "{} version={} etag={}",
                    o["uri"].as_str().unwrap(),
                    o["version_id"].as_str().is_some_and(|v| !v.is_empty()),
                    o["etag"].as_str().is_some_and(|v| !v.is_empty()),
                )
            });
            format!("{e:?} origin={origin:?}")
        })
        .collect()
}

struct Month {
    good: Vec<u8>,
    broken: Vec<u8>,
}

fn month() -> Month {
    let residents = kenko_sample::generate_residents(1_000, 14);
    let good = generate(&residents, 2_000, SampleEncoding::Cp932, 0.1, 31).bytes;
    // A file whose header names no column of the contract: returned whole.
    let broken = "列1,列2\r\n1,2\r\n".as_bytes().to_vec();
    Month { good, broken }
}

fn deliver(bucket: &Bucket, m: &Month) {
    bucket.put("health/inbox/2024-10_越谷クリニック.csv", &m.good);
    bucket.put("health/inbox/2024-10_b.csv", &m.broken);
}

#[test]
fn deliveries_in_s3_are_loaded_returned_reported_and_moved_out_of_the_inbox() {
    let moto = start_moto();
    let bucket = Bucket::create(&moto);
    let ws = Workspace::sqlite();
    ws.import_residents(1_000, 14);
    let m = month();
    deliver(&bucket, &m);

    let s = run_once(&ws, &moto);
    assert_eq!(
        (s["loaded"].as_u64(), s["returned"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let objects = bucket.objects();
    let keys: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert!(
        !keys.iter().any(|k| k.starts_with("health/inbox/")),
        "the inbox is empty: {keys:?}"
    );
    assert_eq!(
        objects["health/processed/2024-10_越谷クリニック.csv"], m.good,
        "the original, byte for byte"
    );
    assert_eq!(objects["health/returned/2024-10_b.csv"], m.broken);
    for prefix in [
        "health/reports/intake/2024-10_越谷クリニック.",
        "health/reports/returns/2024-10_越谷クリニック.",
        "health/reports/intake/2024-10_b.",
        "health/reports/returns/2024-10_b.",
        "health/reports/fees/fees-",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(prefix)),
            "{prefix}* in the bucket: {keys:?}"
        );
    }
    // The ledger knows which object version it took.
    let l = ledger(&ws);
    assert_eq!(l.len(), 2);
    for e in &l {
        assert!(
            e.contains("s3://koshigaya-intake-123456789012-ap-northeast-1/health/inbox/")
                && e.contains("version=true etag=true"),
            "{e}"
        );
    }
    // The pod keeps no clear copy of the originals; the bucket does.
    assert!(!ws
        .data
        .join("processed/2024-10_越谷クリニック.csv")
        .exists());

    // A second round finds nothing; the same bytes delivered again are a duplicate.
    let s = run_once(&ws, &moto);
    assert_eq!(s["files"].as_u64(), Some(0), "{s}");
    bucket.put("health/inbox/again.csv", &m.good);
    let s = run_once(&ws, &moto);
    assert_eq!(s["duplicates"].as_u64(), Some(1), "{s}");
    let objects = bucket.objects();
    assert!(objects
        .keys()
        .any(|k| k.starts_with("health/processed/duplicates/again")));
    assert!(!objects.keys().any(|k| k.starts_with("health/inbox/")));
    assert_eq!(
        ledger(&ws).len(),
        2,
        "a duplicate is not a new ledger entry"
    );
}

/// Runs the agent until it stops at `point`, kills it with SIGKILL.
fn kill_at(ws: &Workspace, moto: &Moto, point: &str) {
    let mut child = agent(ws, moto)
        .env("KENKO_TEST_CRASHPOINT", point)
        .args(["intake", "run-once"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .any(|l| l.unwrap() == format!("kenko-crashpoint: {point}"));
    assert!(reached, "the agent never reached crash point {point}");
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}

#[test]
fn kill_9_at_every_s3_step_then_rerun_ends_like_an_uninterrupted_run() {
    let m = month();
    let reference = {
        let moto = start_moto();
        let bucket = Bucket::create(&moto);
        let ws = Workspace::sqlite();
        ws.import_residents(1_000, 14);
        deliver(&bucket, &m);
        run_once(&ws, &moto);
        let records = kenko_store::open(&ws.database_url)
            .unwrap()
            .record_lines()
            .unwrap();
        (bucket.objects(), ledger(&ws), records)
    };
    assert!(reference.2.len() > 1_500);
    assert!(
        !reference.0.keys().any(|k| k.contains(".kenko/pending/")),
        "no report is left aside after a clean run"
    );

    // Each step, with the working directory kept (a restarted process) and lost (a new pod
    // with a fresh emptyDir): the bucket and the store must hold all that matters.
    let points = [
        "s3-staged",
        "after-reports",
        "rows-inserted",
        "after-commit",
        "after-move",
        "s3-reported",
        "s3-copied",
        "s3-deleted",
    ];
    for (point, new_pod) in points.iter().flat_map(|p| [(*p, false), (*p, true)]) {
        let moto = start_moto();
        let bucket = Bucket::create(&moto);
        let ws = Workspace::sqlite();
        ws.import_residents(1_000, 14);
        deliver(&bucket, &m);
        kill_at(&ws, &moto, point);
        if new_pod {
            for dir in ["inbox", "processed", "returned", "reports"] {
                let _ = std::fs::remove_dir_all(ws.data.join(dir));
            }
        }
        let point = if new_pod {
            format!("{point} (new pod)")
        } else {
            point.to_string()
        };
        let s = run_once(&ws, &moto);
        assert_eq!(
            s["failed"].as_u64(),
            Some(0),
            "after a crash at {point}: {s}"
        );
        let objects = bucket.objects();
        assert_eq!(
            objects.keys().collect::<Vec<_>>(),
            reference.0.keys().collect::<Vec<_>>(),
            "bucket keys after a crash at {point}"
        );
        assert!(
            objects == reference.0,
            "bucket contents after a crash at {point}"
        );
        assert_eq!(ledger(&ws), reference.1, "ledger after a crash at {point}");
        let records = kenko_store::open(&ws.database_url)
            .unwrap()
            .record_lines()
            .unwrap();
        assert!(records == reference.2, "records after a crash at {point}");
    }
}

#[test]
fn two_agents_racing_on_one_inbox_and_one_postgresql_end_like_one_clean_run() {
    let m = month();
    let snapshot = |ws: &Workspace, bucket: &Bucket| {
        let records = kenko_store::open(&ws.database_url)
            .unwrap()
            .record_lines()
            .unwrap();
        (bucket.objects(), ledger(ws), records)
    };
    let reference = {
        let moto = start_moto();
        let bucket = Bucket::create(&moto);
        let ws = Workspace::postgres();
        ws.import_residents(1_000, 14);
        deliver(&bucket, &m);
        run_once(&ws, &moto);
        snapshot(&ws, &bucket)
    };
    let moto = start_moto();
    let bucket = Bucket::create(&moto);
    let a = Workspace::postgres();
    a.import_residents(1_000, 14);
    let b = a.another_agent();
    for round in 0..3 {
        // Each round delivers the month again under new names, so both agents find work.
        for (name, bytes) in [("g", &m.good), ("b", &m.broken)] {
            bucket.put(&format!("health/inbox/r{round}-{name}.csv"), bytes);
        }
        let mut both: Vec<_> = [&a, &b]
            .into_iter()
            .map(|ws| {
                agent(ws, &moto)
                    .args(["intake", "run-once", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in both.drain(..) {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: an agent failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let (objects, ledger_after, records) = snapshot(&a, &bucket);
    assert!(records == reference.2, "each row loaded once");
    assert!(
        !objects
            .keys()
            .any(|k| k.starts_with("health/inbox/") || k.contains(".kenko/pending/")),
        "every delivery finished: {:?}",
        objects.keys().collect::<Vec<_>>()
    );
    // Round 0's files are taken once; every later copy of the same bytes is a duplicate,
    // once: no agent took the other's commit for a re-delivery.
    assert_eq!(ledger_after.len(), 2, "{ledger_after:#?}");
    let moved: Vec<&str> = objects
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("health/processed/") || k.starts_with("health/returned/"))
        .collect();
    assert_eq!(
        moved,
        [
            "health/processed/duplicates/r1-b.csv",
            "health/processed/duplicates/r1-g.csv",
            "health/processed/duplicates/r2-b.csv",
            "health/processed/duplicates/r2-g.csv",
            "health/processed/r0-g.csv",
            "health/returned/r0-b.csv",
        ]
    );
    assert_eq!(
        objects["health/processed/r0-g.csv"], m.good,
        "the first delivery is the processed one"
    );
}

#[test]
fn the_register_arrives_in_the_bucket_and_is_imported_whole_before_the_deliveries() {
    let m = month();
    let reference = {
        let moto = start_moto();
        let bucket = Bucket::create(&moto);
        let ws = Workspace::sqlite();
        ws.import_residents(1_000, 14);
        deliver(&bucket, &m);
        run_once(&ws, &moto);
        kenko_store::open(&ws.database_url)
            .unwrap()
            .record_lines()
            .unwrap()
    };
    let moto = start_moto();
    let bucket = Bucket::create(&moto);
    let ws = Workspace::sqlite();

    // A refused extract (a data row where the header belongs): reported by position and
    // field, never by value; nothing imported; the extract leaves register/ for rejected/.
    let residents = kenko_sample::generate_residents(1_000, 14);
    let mut good = Vec::new();
    kenko_sample::write_resident_csv(&mut good, &residents).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let headerless = text.lines().skip(1).collect::<Vec<_>>().join("\r\n");
    let first_row = text.lines().nth(1).unwrap().to_string();
    bucket.put("health/register/2024-10-01.csv", headerless.as_bytes());
    let out = agent(&ws, &moto)
        .args(["intake", "run-once", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no register, no intake");
    assert!(stderr.contains("register is empty"), "{stderr}");
    let objects = bucket.objects();
    let report =
        String::from_utf8(objects["health/reports/register/2024-10-01.csv.json"].clone()).unwrap();
    assert!(report.contains("register_bad_header"), "{report}");
    assert!(
        report.contains("s3://koshigaya-intake-123456789012-ap-northeast-1/health/register/2024-10-01.csv: the header"),
        "the error names the object: {report}"
    );
    for cell in first_row.split(',').filter(|c| c.len() > 2) {
        assert!(
            !report.contains(cell) && !stderr.contains(cell),
            "a value leaked: {cell}"
        );
    }
    assert!(objects.contains_key("health/register/rejected/2024-10-01.csv"));
    assert!(!objects.contains_key("health/register/2024-10-01.csv"));

    // The next extract is imported whole before the month's deliveries are checked, and the
    // pod keeps no copy of it.
    bucket.put("health/register/2024-10-02.csv", &good);
    deliver(&bucket, &m);
    let s = run_once(&ws, &moto);
    assert_eq!(
        (s["loaded"].as_u64(), s["returned"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let records = kenko_store::open(&ws.database_url)
        .unwrap()
        .record_lines()
        .unwrap();
    assert!(
        records == reference,
        "the same records as with a local import"
    );
    let objects = bucket.objects();
    assert!(
        !objects
            .keys()
            .any(|k| k.starts_with("health/register/")
                && !k.starts_with("health/register/rejected/")),
        "{:?}",
        objects.keys().collect::<Vec<_>>()
    );
    assert!(!ws.data.join(".register.s3part").exists());
}

/// Register deltas (異動データ) arrive in the bucket under `register-deltas/` and are applied in
/// key order each round: one whose predecessor has not arrived waits (it is not skipped, nor
/// deleted), and is applied once the missing one comes; a refused one goes to `rejected/` with
/// a report naming row and field, and changes nothing.
#[test]
fn register_deltas_in_the_bucket_are_applied_in_order_and_a_gap_waits() {
    let moto = start_moto();
    let bucket = Bucket::create(&moto);
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(50, 3);
    let header = "連番,異動区分,異動日,宛名番号,個人番号,氏名,性別,生年月日,住所";
    let died = |seq: u64, who: usize| {
        format!(
            "{header}\n{seq},死亡,20241020,{},,,,,\n",
            residents[who].resident_no
        )
    };
    let seq = |ws: &Workspace| {
        kenko_store::open(&ws.database_url)
            .unwrap()
            .register_delta_seq()
            .unwrap()
    };
    bucket.put("health/register-deltas/000001.csv", died(1, 0).as_bytes());
    bucket.put("health/register-deltas/000003.csv", died(3, 2).as_bytes());
    run_once(&ws, &moto);
    assert_eq!(seq(&ws), Some(1));
    let keys = |b: &Bucket| b.objects().into_keys().collect::<Vec<_>>();
    assert_eq!(
        keys(&bucket)
            .into_iter()
            .filter(|k| k.starts_with("health/register-deltas/"))
            .collect::<Vec<_>>(),
        vec!["health/register-deltas/000003.csv".to_string()],
        "the applied delta left, the one after a gap waits"
    );

    bucket.put("health/register-deltas/000002.csv", died(2, 1).as_bytes());
    run_once(&ws, &moto);
    assert_eq!(seq(&ws), Some(3));
    assert!(!keys(&bucket)
        .iter()
        .any(|k| k.starts_with("health/register-deltas/")));

    let broken = format!(
        "{header}\n4,引越,20241020,{},,,,,\n",
        residents[3].resident_no
    );
    bucket.put("health/register-deltas/000004.csv", broken.as_bytes());
    run_once(&ws, &moto);
    assert_eq!(seq(&ws), Some(3), "a refused delta changes nothing");
    let objects = bucket.objects();
    let report =
        String::from_utf8(objects["health/reports/register/000004.csv.json"].clone()).unwrap();
    assert!(report.contains("row 2, field 異動区分"), "{report}");
    assert!(objects.contains_key("health/register-deltas/rejected/000004.csv"));
    assert!(!objects.contains_key("health/register-deltas/000004.csv"));
    assert!(!ws.data.join(".register-delta.s3part").exists());
}

/// Retention in the cluster, where the originals live in the bucket: after their 13 months the
/// objects under processed/, returned/ and reports/returns/ lose every version (listed again:
/// none left), the reports of counts stay, the records past 20 years go, and one certificate
/// that verifies names each object.
#[test]
fn retention_deletes_every_version_of_the_expired_originals_in_the_bucket() {
    let moto = start_moto();
    let bucket = Bucket::create(&moto);
    let ws = Workspace::sqlite();
    ws.import_residents(1_000, 14);
    deliver(&bucket, &month());
    run_once(&ws, &moto);
    let originals: Vec<String> = bucket
        .versioned_keys()
        .into_iter()
        .filter(|k| {
            [
                "health/processed/",
                "health/returned/",
                "health/reports/returns/",
            ]
            .iter()
            .any(|p| k.starts_with(p))
        })
        .collect();
    assert!(originals.len() >= 3, "{originals:?}");
    let out = agent(&ws, &moto)
        .env("KENKO_TODAY", "2047-12-01")
        .args(["retention", "run", "--apply", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let left = bucket.versioned_keys();
    for k in &originals {
        assert!(!left.contains(k), "{k} still has a version: {left:?}");
    }
    assert!(
        left.iter().any(|k| k.starts_with("health/reports/intake/")),
        "the per-file summaries (counts only) stay: {left:?}"
    );
    assert!(report["records"]["count"].as_u64().unwrap() > 0, "{report}");
    let cert = std::path::PathBuf::from(report["certificate"].as_str().unwrap());
    let verified = ws.run(&["certificate", "verify", cert.to_str().unwrap()]);
    assert!(verified.status.success());
    let text = std::fs::read_to_string(&cert).unwrap();
    for k in &originals {
        assert!(
            text.contains(k.as_str()),
            "the certificate does not name {k}"
        );
    }
    // The pod's folder is memory: the certificate is kept in the bucket too.
    let kept = format!(
        "health/reports/retention/{}",
        cert.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(
        bucket.objects().get(&kept).map(Vec::as_slice),
        Some(text.as_bytes()),
        "{kept}"
    );
}
