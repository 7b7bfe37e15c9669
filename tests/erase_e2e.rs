//! Erasure of real files and folders by the real binary: overwritten, verified, renamed and
//! unlinked, with a certificate that verifies; and a `kill -9` mid-overwrite that resumes.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn agent(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kenko-agent"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KENKO_LOG", "info")
        .arg("--data-dir")
        .arg(data);
    c
}

fn erase(data: &Path, extra: &[&str]) -> Output {
    agent(data)
        .args(["erase", "--name", "越谷 花子", "--organization", "越谷市"])
        .args(extra)
        .output()
        .unwrap()
}

fn only_certificate(data: &Path) -> std::path::PathBuf {
    let mut certs: Vec<_> = std::fs::read_dir(data.join("certificates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    certs.sort();
    certs.pop().expect("a certificate")
}

#[test]
fn a_folder_is_overwritten_verified_removed_and_certified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let victim = dir.path().join("old-system");
    std::fs::create_dir_all(victim.join("山田太郎の記録")).unwrap();
    std::fs::write(victim.join("empty.txt"), b"").unwrap();
    std::fs::write(victim.join("odd-size.bin"), vec![7u8; 5000]).unwrap();
    std::fs::write(victim.join("山田太郎の記録/records.db"), vec![1u8; 3 << 20]).unwrap();
    let out = erase(
        &data,
        &[
            "--target",
            &format!("dir:{}", victim.display()),
            "--job-id",
            "job-a",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!victim.exists(), "the folder and every name in it are gone");

    let cert = only_certificate(&data);
    let out = agent(&data)
        .args(["certificate", "verify"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let t = &c["targets"][0];
    assert_eq!(t["bytes_erased"], 5000 + (3 << 20));
    assert_eq!(t["objects_erased"], 3);
    assert_eq!(t["verification"]["passed"], true);
    assert_eq!(t["verification"]["bytes_checked"], 5000 + (3 << 20));
    assert_eq!(c["sanitization"]["method_type"], "clear");
    assert_eq!(c["resumptions"], 0);
    assert_eq!(c["sequence"], 1);
    let text = String::from_utf8_lossy(&std::fs::read(&cert).unwrap()).into_owned();
    assert!(
        !text.contains("山田太郎"),
        "file names inside the folder are not on the certificate"
    );

    // A second job chains after the first.
    let f = dir.path().join("one.bin");
    std::fs::write(&f, vec![3u8; 10_000]).unwrap();
    let out = erase(
        &data,
        &[
            "--target",
            &format!("file:{}", f.display()),
            "--verify",
            "sample",
        ],
    );
    assert!(out.status.success());
    let out = agent(&data)
        .args(["certificate", "verify-chain"])
        .arg(data.join("certificates"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 certificate(s)"));
}

#[test]
fn unsupported_methods_and_targets_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("x.bin");
    std::fs::write(&f, b"data").unwrap();
    let out = erase(
        &data,
        &[
            "--target",
            &format!("file:{}", f.display()),
            "--method",
            "purge",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_method_unsupported"));
    let out = erase(&data, &["--target", "nfs:/somewhere"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_target_unsupported"));
    assert_eq!(std::fs::read(&f).unwrap(), b"data", "nothing was touched");
    assert!(
        !data.join("certificates").exists()
            || std::fs::read_dir(data.join("certificates"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn kill_9_mid_overwrite_then_the_same_job_resumes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("big.bin");
    let size = 150usize << 20;
    std::fs::write(&f, vec![0xABu8; size]).unwrap();
    let mut child = agent(&data)
        .env("KENKO_TEST_CRASHPOINT", "erase-checkpointed")
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--job-id",
            "job-k",
            "--checkpoint-mib",
            "64",
            "--checkpoint-secs",
            "0",
            "--target",
        ])
        .arg(format!("file:{}", f.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .any(|l| l.unwrap() == "kenko-crashpoint: erase-checkpointed");
    assert!(reached, "the erasure never reached its first checkpoint");
    child.kill().unwrap();
    child.wait().unwrap();

    // On disk: the first checkpointed 64 MiB are overwritten, the end still holds the data.
    let bytes = std::fs::read(&f).unwrap();
    assert_eq!(bytes.len(), size);
    assert!(bytes[..64 << 20].iter().filter(|&&b| b == 0xAB).count() < (64 << 20) / 100);
    assert!(bytes[size - 4096..].iter().all(|&b| b == 0xAB));
    let checkpoint = data.join("erase/job-k/checkpoint.json");
    assert!(checkpoint.exists());

    // The same job id resumes; a different definition under that id is refused.
    let out = erase(&data, &["--job-id", "job-k", "--target", "file:/elsewhere"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_checkpoint_mismatch"));
    let out = erase(
        &data,
        &[
            "--job-id",
            "job-k",
            "--target",
            &format!("file:{}", f.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.exists());
    assert!(!checkpoint.exists());
    let cert = only_certificate(&data);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(c["resumptions"], 1);
    assert_eq!(c["targets"][0]["bytes_erased"], size as u64);
    assert_eq!(c["targets"][0]["verification"]["passed"], true);
}

/// Runs a command, returning its stdout when it succeeded.
fn try_run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A device test that cannot run here says so and passes; under `CI=true` the environment
/// promises loop devices and mounts (`.ci/run` sets it), so a skip there is a failure.
fn skipped(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true promises loop devices, but: {why}"
    );
    println!("SKIPPED: {why}");
}

#[test]
fn a_loop_device_is_cleared_and_a_mounted_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = dir.path().join("disk.img");
    std::fs::write(&image, vec![0xABu8; 40 << 20]).unwrap();
    let Some(dev) = try_run("losetup", &["-f", "--show", image.to_str().unwrap()]) else {
        skipped("this kernel or sandbox does not let the test create a loop device (losetup failed); device erasure was not exercised");
        return;
    };
    let out = erase(
        &data,
        &["--target", &format!("device:{dev}"), "--verify", "sample"],
    );
    let _ = try_run("losetup", &["-d", &dev]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = only_certificate(&data);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(
        c["targets"][0]["media"]["media_type"],
        "block device (loop)"
    );
    assert_eq!(c["targets"][0]["bytes_erased"], 40u64 << 20);
    assert_eq!(c["targets"][0]["verification"]["passed"], true);
    // The device's backing bytes no longer hold the old pattern.
    let bytes = std::fs::read(&image).unwrap();
    let old = bytes.iter().filter(|&&b| b == 0xAB).count();
    assert!(
        old < bytes.len() / 100,
        "{old} of {} bytes still 0xAB",
        bytes.len()
    );

    // A mounted device is refused, untouched.
    let image2 = dir.path().join("fs.img");
    std::fs::write(&image2, vec![0u8; 16 << 20]).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(dev2) = try_run("losetup", &["-f", "--show", image2.to_str().unwrap()]) else {
        skipped("second loop device unavailable; the mounted-device refusal was not exercised");
        return;
    };
    let mounted = try_run("mkfs.ext4", &["-q", &dev2]).is_some()
        && try_run("mount", &[&dev2, mnt.to_str().unwrap()]).is_some();
    if !mounted {
        let _ = try_run("losetup", &["-d", &dev2]);
        skipped("could not make and mount a file system here; the mounted-device refusal was not exercised");
        return;
    }
    let out = erase(&data, &["--target", &format!("device:{dev2}")]);
    let _ = try_run("umount", &[mnt.to_str().unwrap()]);
    let _ = try_run("losetup", &["-d", &dev2]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("erase_device_in_use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn destroying_the_data_key_is_a_certified_cryptographic_erase() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A register with My Numbers: ciphertexts under the data key.
    let residents = kenko_sample::generate_residents(200, 3);
    let csv = dir.path().join("residents.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    kenko_sample::write_resident_csv(&mut f, &residents).unwrap();
    let out = agent(&data)
        .args(["residents", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = data.join("keys/records.key");
    assert!(key.exists());

    // Mixing an overwrite target into a crypto job is refused.
    let other = dir.path().join("x.bin");
    std::fs::write(&other, b"x").unwrap();
    let out = erase(
        &data,
        &[
            "--method",
            "crypto",
            "--target",
            "datakey:records",
            "--target",
            &format!("file:{}", other.display()),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("erase_method_unsupported"));
    assert!(key.exists(), "nothing was destroyed");

    let out = erase(
        &data,
        &["--method", "crypto", "--target", "datakey:records"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!key.exists(), "the key file is gone");
    let cert = only_certificate(&data);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(c["sanitization"]["method_type"], "purge");
    assert_eq!(c["sanitization"]["method_used"], "cryptographic erase");
    let v = &c["targets"][0]["verification"];
    assert_eq!(v["method"], "crypto");
    assert_eq!(v["passed"], true);
    let sampled = v["locations_checked"].as_u64().unwrap();
    assert!(sampled > 50, "ciphertexts were sampled: {v}");
    assert!(v["details"]
        .as_str()
        .unwrap()
        .contains(&format!("{sampled} of {sampled} sampled")));
    let out = agent(&data)
        .args(["certificate", "verify"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn people_and_media_details_come_from_a_toml_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("old.db");
    std::fs::write(&f, vec![5u8; 8192]).unwrap();
    let details = dir.path().join("details.toml");
    std::fs::write(
        &details,
        r#"
media_destination = "returned to the lessor"
notes = "旧システム撤去"
[sanitized_by]
name = "越谷 花子"
title = "主任"
organization = "越谷市 情報政策課"
location = "越谷市役所 本庁舎"
phone = "048-000-0000"
[media]
manufacturer = "ExampleDisk"
model = "ED-2000"
serial_number = "SN-12345"
property_number = "KOSHI-0042"
backed_up = true
backup_location = "Osaka vault, recovery point 2026-10-31"
"#,
    )
    .unwrap();
    let out = agent(&data)
        .args(["erase", "--details"])
        .arg(&details)
        .args(["--title", "課長", "--target"])
        .arg(format!("file:{}", f.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(only_certificate(&data)).unwrap()).unwrap();
    assert_eq!(c["sanitized_by"]["name"], "越谷 花子");
    assert_eq!(
        c["sanitized_by"]["title"], "課長",
        "the flag wins over the file"
    );
    assert_eq!(c["media_destination"], "returned to the lessor");
    let m = &c["targets"][0]["media"];
    assert_eq!(m["serial_number"], "SN-12345");
    assert_eq!(m["property_number"], "KOSHI-0042");
    assert_eq!(m["backed_up"], true);
    assert_eq!(
        m["media_type"], "file",
        "detected values stay where none was given"
    );

    // Without any name for the person, nothing is erased.
    let g = dir.path().join("other.db");
    std::fs::write(&g, b"x").unwrap();
    let out = agent(&data)
        .args(["erase", "--target"])
        .arg(format!("file:{}", g.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(g.exists());
}

#[test]
fn purge_is_refused_on_a_device_without_secure_erase_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = dir.path().join("disk.img");
    std::fs::write(&image, vec![0xCDu8; 24 << 20]).unwrap();
    let Some(dev) = try_run("losetup", &["-f", "--show", image.to_str().unwrap()]) else {
        skipped("this kernel or sandbox does not let the test create a loop device (losetup failed); the purge refusal was not exercised");
        return;
    };
    let out = erase(
        &data,
        &[
            "--target",
            &format!("device:{dev}"),
            "--method",
            "purge",
            "--job-id",
            "purge-1",
        ],
    );
    let _ = try_run("losetup", &["-d", &dev]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a loop device has no secure erase");
    assert!(stderr.contains("erase_purge_unsupported"), "{stderr}");
    assert!(stderr.contains("Clear, not Purge"), "{stderr}");
    // Nothing was written, nothing certified, and no job is left to block a Clear.
    let bytes = std::fs::read(&image).unwrap();
    assert!(bytes.iter().all(|&b| b == 0xCD), "the device was changed");
    assert!(!data.join("erase").join("purge-1").exists());
    assert!(
        !data.join("certificates").exists()
            || std::fs::read_dir(data.join("certificates"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Jobs finishing together (the cluster agent runs requests concurrently) and CLI runs beside
/// each other never fork a signer's chain: one issuer holds the chain's lock from reading its
/// tail to writing the new certificate, so the sequences run 1..N, each naming the one before.
#[test]
fn parallel_jobs_and_processes_never_fork_the_certificate_chain() {
    use kenko_agent::erase::{self, JobSpec};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let places = erase::EraseContext {
        jobs: data.join("erase"),
        certificates: data.join("certificates"),
        signing_key: data.join("keys/signing.key"),
        data_key: data.join("keys/records.key"),
        database_url: format!("sqlite://{}", data.join("kenko.db").display()),
        aws: kenko_aws::Endpoint::default(),
        kms_pending_days: 7,
    };
    const THREADS: usize = 12;
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let (places, barrier, dir) = (&places, &barrier, dir.path());
            s.spawn(move || {
                let f = dir.join(format!("t{i}.bin"));
                std::fs::write(&f, vec![b'x'; 4096]).unwrap();
                let spec = JobSpec {
                    job_id: format!("thread-{i}"),
                    targets: vec![format!("file:{}", f.display()).parse().unwrap()],
                    method: erase::ErasureMethod::Clear,
                    pattern: erase::Pattern::Random,
                    verify: erase::VerifyMode::Full,
                    location: None,
                    stack: None,
                    authority: None,
                    sanitized_by: kenko_cert::Person {
                        name: "越谷 花子".into(),
                        ..Default::default()
                    },
                    classification: "特定個人情報".into(),
                    media_destination: "reused".into(),
                    notes: String::new(),
                    media: Default::default(),
                    checkpoint_bytes: 1 << 30,
                    checkpoint_interval: std::time::Duration::from_secs(5),
                };
                barrier.wait();
                erase::run(&spec, places).unwrap();
            });
        }
    });
    // And processes: CLI erasures started together on the same data directory.
    let children: Vec<_> = (0..4)
        .map(|i| {
            let f = dir.path().join(format!("p{i}.bin"));
            std::fs::write(&f, vec![b'y'; 4096]).unwrap();
            agent(&data)
                .args([
                    "erase",
                    "--name",
                    "越谷 花子",
                    "--job-id",
                    &format!("process-{i}"),
                ])
                .arg("--target")
                .arg(format!("file:{}", f.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(data.join("certificates"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    assert_eq!(
        files.len(),
        THREADS + 4,
        "every job issued exactly one certificate"
    );
    let chains = kenko_cert::verify_chain(&files, &[]).unwrap_or_else(|(f, e)| panic!("{f}: {e}"));
    assert_eq!(chains.len(), 1, "one signer");
    assert_eq!(chains[0].1, THREADS + 4, "one chain, no fork");
}
