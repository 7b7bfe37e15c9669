//! Erasure against careless and hostile targets, with the real binary: links, hard links,
//! FIFOs and device nodes inside a folder, a file written or swapped while it is erased or
//! while the job is stopped, an edited or deleted checkpoint, a reflinked copy on XFS and a
//! copy-on-write file system (Btrfs). Nothing outside the target is touched, and no
//! certificate claims data gone that is not.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

fn certificates(data: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(data.join("certificates")) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn certificate(data: &Path) -> serde_json::Value {
    let certs = certificates(data);
    assert_eq!(certs.len(), 1, "{certs:?}");
    serde_json::from_slice(&std::fs::read(&certs[0]).unwrap()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An erasure of `file` with a checkpoint every 64 MiB, stopped at its first checkpoint:
/// paused (`KENKO_TEST_PAUSE`) or waiting to be killed (`KENKO_TEST_CRASHPOINT`).
fn stopped_at_first_checkpoint(data: &Path, file: &Path, job: &str, pause: bool) -> Child {
    let var = if pause {
        "KENKO_TEST_PAUSE"
    } else {
        "KENKO_TEST_CRASHPOINT"
    };
    let mut child = agent(data)
        .env(var, "erase-checkpointed")
        .args([
            "erase",
            "--name",
            "越谷 花子",
            "--job-id",
            job,
            "--verify",
            "full",
            "--checkpoint-mib",
            "64",
            "--checkpoint-secs",
            "0",
            "--target",
        ])
        .arg(format!("file:{}", file.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mark = if pause {
        "kenko-pause: erase-checkpointed"
    } else {
        "kenko-crashpoint: erase-checkpointed"
    };
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap() == mark),
        "the erasure never reached its first checkpoint"
    );
    // The rest of its log, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Lets a paused erasure go on; whether it succeeded.
fn go(mut child: Child) -> bool {
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    child.wait().unwrap().success()
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn links_fifos_device_nodes_and_hard_links_in_a_folder_touch_nothing_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "the node's secret").unwrap();
    std::fs::write(outside.join("linked.txt"), "another system's file").unwrap();
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("a.bin"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), victim.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/path", victim.join("sub/dangling")).unwrap();
    std::os::unix::fs::symlink(&outside, victim.join("dirlink")).unwrap();
    std::fs::hard_link(outside.join("linked.txt"), victim.join("hard")).unwrap();
    nix::unistd::mkfifo(&victim.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A device node with /dev/null's numbers: removing the node leaves the device alone.
    nix::sys::stat::mknod(
        &victim.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let out = erase(&data, &["--target", &format!("dir:{}", victim.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!victim.exists());
    // Outside the target: unchanged.
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "the node's secret"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("linked.txt")).unwrap(),
        "another system's file"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
        .write_all(b"x")
        .unwrap();
    // The certificate says what was not overwritten, and why.
    let c = certificate(&data);
    let t = &c["targets"][0];
    assert_eq!(t["bytes_erased"], 100_000);
    let blocked = t["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{t:#}");
    assert!(blocked[0]["reason"].as_str().unwrap().contains("hard link"));
    assert!(!blocked[0]["item"].as_str().unwrap().contains("hard"));
    let details = t["verification"]["details"].as_str().unwrap();
    assert!(
        details.contains("3 symbolic link(s) and 2 FIFO, socket or device node(s)"),
        "{details}"
    );
}

#[test]
fn a_file_written_to_while_it_is_erased_is_not_certified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("big.bin");
    std::fs::write(&f, vec![0xABu8; 150 << 20]).unwrap();
    // Grown while erased: refused before it is verified.
    let child = stopped_at_first_checkpoint(&data, &f, "job-grow", true);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(&[0xCD; 4096])
        .unwrap();
    assert!(!go(child));
    let out = erase(
        &data,
        &[
            "--job-id",
            "job-grow",
            "--verify",
            "full",
            "--target",
            &format!("file:{}", f.display()),
        ],
    );
    assert!(
        stderr(&out).contains("[reason: erase_target_changed]"),
        "{}",
        stderr(&out)
    );
    assert!(certificates(&data).is_empty());
    assert!(f.exists());

    // Written in place where it was already overwritten: the verification reads it back.
    let g = dir.path().join("other.bin");
    std::fs::write(&g, vec![0xABu8; 150 << 20]).unwrap();
    let child = stopped_at_first_checkpoint(&data, &g, "job-inplace", true);
    {
        use std::os::unix::fs::FileExt;
        let h = std::fs::OpenOptions::new().write(true).open(&g).unwrap();
        h.write_all_at(&[0xEE; 4096], 0).unwrap();
        h.sync_all().unwrap();
    }
    assert!(!go(child));
    assert!(certificates(&data).is_empty());
    assert!(g.exists());
}

#[test]
fn a_file_swapped_while_the_job_was_stopped_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("big.bin");
    std::fs::write(&f, vec![0xABu8; 150 << 20]).unwrap();
    kill(stopped_at_first_checkpoint(&data, &f, "job-swap", false));
    // Another file under the name meanwhile (an application restored it).
    let tmp = dir.path().join("new.tmp");
    std::fs::write(&tmp, vec![0xCDu8; 150 << 20]).unwrap();
    std::fs::rename(&tmp, &f).unwrap();
    let out = erase(
        &data,
        &[
            "--job-id",
            "job-swap",
            "--verify",
            "full",
            "--target",
            &format!("file:{}", f.display()),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[reason: erase_target_changed]"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(&f).unwrap().iter().all(|&b| b == 0xCD));
    assert!(certificates(&data).is_empty());

    // Swapped for a link to a file outside: never followed.
    let h = dir.path().join("h.bin");
    std::fs::write(&h, vec![0xABu8; 150 << 20]).unwrap();
    kill(stopped_at_first_checkpoint(&data, &h, "job-link", false));
    let precious = dir.path().join("precious.bin");
    std::fs::write(&precious, vec![0x11u8; 150 << 20]).unwrap();
    std::fs::remove_file(&h).unwrap();
    std::os::unix::fs::symlink(&precious, &h).unwrap();
    let out = erase(
        &data,
        &[
            "--job-id",
            "job-link",
            "--verify",
            "full",
            "--target",
            &format!("file:{}", h.display()),
        ],
    );
    assert!(
        stderr(&out).contains("[reason: erase_target_changed]"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(&precious).unwrap().iter().all(|&b| b == 0x11));
}

#[test]
fn an_edited_or_deleted_checkpoint_is_refused_and_a_new_job_erases_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("big.bin");
    std::fs::write(&f, vec![0xABu8; 150 << 20]).unwrap();
    let target = format!("file:{}", f.display());
    kill(stopped_at_first_checkpoint(&data, &f, "job-e", false));
    // Edited to say the whole file was written and verified.
    let cp_path = data.join("erase/job-e/checkpoint.json");
    let text = std::fs::read_to_string(&cp_path).unwrap();
    let mut sealed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut cp: serde_json::Value =
        serde_json::from_str(sealed["checkpoint"].as_str().unwrap()).unwrap();
    let file = &mut cp["targets"][0]["files"][0];
    file["written"] = file["size"].clone();
    file["verified"] = serde_json::Value::Bool(true);
    sealed["checkpoint"] = serde_json::Value::String(cp.to_string());
    std::fs::write(&cp_path, sealed.to_string()).unwrap();
    let out = erase(
        &data,
        &["--job-id", "job-e", "--verify", "full", "--target", &target],
    );
    assert!(
        stderr(&out).contains("[reason: erase_checkpoint_tampered]"),
        "{}",
        stderr(&out)
    );
    assert!(certificates(&data).is_empty());
    // The end of the file still holds the data the edit claimed gone.
    let bytes = std::fs::read(&f).unwrap();
    assert!(bytes[bytes.len() - 4096..].iter().all(|&b| b == 0xAB));
    // Deleted.
    std::fs::remove_file(&cp_path).unwrap();
    let out = erase(
        &data,
        &["--job-id", "job-e", "--verify", "full", "--target", &target],
    );
    assert!(
        stderr(&out).contains("[reason: erase_checkpoint_missing]"),
        "{}",
        stderr(&out)
    );
    assert!(certificates(&data).is_empty());
    // A new job erases the file as it is now.
    let out = erase(
        &data,
        &[
            "--job-id", "job-e2", "--verify", "full", "--target", &target,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!f.exists());
    assert_eq!(
        certificate(&data)["targets"][0]["bytes_erased"],
        150u64 << 20
    );
}

fn try_run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A device test that cannot run here says so and passes; under `CI=true` the environment
/// promises loop devices, mounts and the file systems' tools, so a skip there is a failure.
fn skipped(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true promises loop devices and mkfs.xfs/mkfs.btrfs, but: {why}"
    );
    println!("SKIPPED: {why}");
}

/// A file system of `kind` on a loop device over a file, mounted; unmounted and detached when
/// dropped.
struct Mounted {
    dev: String,
    mnt: PathBuf,
}

impl Mounted {
    fn make(dir: &Path, kind: &str, mb: u64, mkfs: &[&str]) -> Option<Mounted> {
        let image = dir.join(format!("{kind}.img"));
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(mb << 20).unwrap();
        let dev = try_run("losetup", &["-f", "--show", image.to_str().unwrap()])?;
        let mnt = dir.join(format!("{kind}-mnt"));
        std::fs::create_dir_all(&mnt).unwrap();
        let mut args: Vec<&str> = mkfs[1..].to_vec();
        args.push(&dev);
        if try_run(mkfs[0], &args).is_none()
            || try_run("mount", &[&dev, mnt.to_str().unwrap()]).is_none()
        {
            let _ = try_run("losetup", &["-d", &dev]);
            return None;
        }
        Some(Mounted { dev, mnt })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = try_run("umount", &[self.mnt.to_str().unwrap()]);
        let _ = try_run("losetup", &["-d", &self.dev]);
    }
}

#[test]
fn a_reflinked_copy_is_blocked_and_a_copy_on_write_file_system_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(xfs) = Mounted::make(
        dir.path(),
        "xfs",
        320,
        &["mkfs.xfs", "-q", "-m", "reflink=1"],
    ) else {
        skipped("no loop device, mkfs.xfs or mount here; the reflink case was not exercised");
        return;
    };
    let victim = xfs.mnt.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("own.bin"), vec![0x22u8; 1 << 20]).unwrap();
    std::fs::write(victim.join("shared.bin"), vec![0x33u8; 1 << 20]).unwrap();
    assert!(
        try_run(
            "cp",
            &[
                "--reflink=always",
                victim.join("shared.bin").to_str().unwrap(),
                xfs.mnt.join("copy.bin").to_str().unwrap(),
            ],
        )
        .is_some(),
        "cp --reflink on XFS"
    );
    let out = erase(&data, &["--target", &format!("dir:{}", victim.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = certificate(&data);
    let t = &c["targets"][0];
    assert_eq!(t["bytes_erased"], 1 << 20, "{t:#}");
    let blocked = t["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{t:#}");
    assert!(blocked[0]["reason"]
        .as_str()
        .unwrap()
        .contains("reflinked copy"));
    // The copy outside the target is untouched.
    assert!(std::fs::read(xfs.mnt.join("copy.bin"))
        .unwrap()
        .iter()
        .all(|&b| b == 0x33));
    drop(xfs);

    let Some(btrfs) = Mounted::make(dir.path(), "btrfs", 128, &["mkfs.btrfs", "-q"]) else {
        skipped("no mkfs.btrfs or Btrfs mount here; the copy-on-write refusal was not exercised");
        return;
    };
    let f = btrfs.mnt.join("records.db");
    std::fs::write(&f, vec![0x44u8; 1 << 20]).unwrap();
    let out = erase(&data, &["--target", &format!("file:{}", f.display())]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[reason: erase_copy_on_write]"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(&f).unwrap().iter().all(|&b| b == 0x44));
}

#[test]
fn a_sparse_file_is_erased_where_it_holds_data_and_its_holes_are_not_filled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A 64 MiB file system, and a file of 1 TiB apparent size holding 1 MiB and 8 KiB: writing
    // its holes would need 16,000 times the disk.
    let Some(ext4) = Mounted::make(dir.path(), "ext4", 64, &["mkfs.ext4", "-q"]) else {
        skipped("no loop device, mkfs.ext4 or mount here; the sparse case was not exercised");
        return;
    };
    let f = ext4.mnt.join("sparse.db");
    {
        use std::os::unix::fs::FileExt;
        let h = std::fs::File::create(&f).unwrap();
        h.set_len(1 << 40).unwrap();
        h.write_all_at(&[0xABu8; 8192], 0).unwrap();
        h.write_all_at(&vec![0xABu8; 1 << 20], 512 << 30).unwrap();
        h.sync_all().unwrap();
    }
    let out = erase(
        &data,
        &[
            "--verify",
            "full",
            "--target",
            &format!("file:{}", f.display()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let c = certificate(&data);
    assert_eq!(c["targets"][0]["bytes_erased"], (1u64 << 20) + 8192);
    assert_eq!(c["targets"][0]["verification"]["passed"], true);
    assert!(!f.exists());
    // On the medium: the old bytes are gone.
    drop(ext4);
    let image = std::fs::read(dir.path().join("ext4.img")).unwrap();
    let left = image
        .windows(64)
        .filter(|w| w.iter().all(|&b| b == 0xAB))
        .count();
    assert_eq!(left, 0, "runs of the old bytes remain on the medium");
}

#[test]
fn text_a_reader_could_misread_is_made_visible_before_signing_and_the_certificate_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = dir.path().join("a.bin");
    std::fs::write(&f, vec![1u8; 10_000]).unwrap();
    let out = agent(&data)
        .args([
            "erase",
            "--name",
            "越谷\u{202E}花子",
            "--organization",
            "越谷市\n\u{1b}[2J",
            "--target",
        ])
        .arg(format!("file:{}", f.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cert = certificates(&data).pop().unwrap();
    let text = std::fs::read_to_string(&cert).unwrap();
    assert!(text.contains("越谷[U+202E]花子"), "{text}");
    assert!(text.contains("越谷市[U+000A][U+001B][2J"), "{text}");
    assert!(!text.contains('\u{202E}') && !text.contains('\u{1b}'));
    let out = agent(&data)
        .args(["certificate", "verify"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
