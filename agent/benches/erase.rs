//! The erasure benchmark: Clear of a 2 GiB file by `kenko-agent erase` (ChaCha8 pattern,
//! direct I/O, full verification from the media) side by side in one run with
//! `dd if=/dev/zero bs=4M oflag=direct conv=notrunc,fsync` (overwrite), a direct-I/O `dd` read
//! (verification), and `shred -n 1` (overwrite without verification). Best of
//! KENKO_BENCH_REPEAT runs (default 3). KENKO_BENCH_DIR (default /var/tmp/kenko-bench) must be
//! on a real disk, not tmpfs; KENKO_BENCH_MIB sets the size (default 2048).
//!
//!     cargo bench -p kenko-agent --bench erase
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark: a failure is the answer, and it sets up its files and clock directly"
)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const AGENT: &str = env!("CARGO_BIN_EXE_kenko-agent");

fn main() {
    let dir = std::path::PathBuf::from(
        std::env::var("KENKO_BENCH_DIR").unwrap_or_else(|_| "/var/tmp/kenko-bench".into()),
    );
    let mib: u64 = std::env::var("KENKO_BENCH_MIB")
        .ok()
        .map(|s| s.parse().expect("KENKO_BENCH_MIB: a number"))
        .unwrap_or(2048);
    let repeat: usize = std::env::var("KENKO_BENCH_REPEAT")
        .ok()
        .map(|s| s.parse().expect("KENKO_BENCH_REPEAT: a number"))
        .unwrap_or(3)
        .max(1);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("erase-target.bin");
    let bytes = mib << 20;
    let mb = bytes as f64 / 1e6;

    let mut dd_write = f64::MAX;
    let mut dd_read = f64::MAX;
    let mut shred = f64::MAX;
    let (mut k_write, mut k_verify, mut k_total) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut z_write, mut z_verify) = (f64::MAX, f64::MAX);
    for _ in 0..repeat {
        fresh(&file, mib);
        dd_write = dd_write.min(timed(Command::new("dd").args([
            "if=/dev/zero",
            &format!("of={}", file.display()),
            "bs=4M",
            &format!("count={}", mib / 4),
            "oflag=direct",
            "conv=notrunc,fsync",
        ])));
        dd_read = dd_read.min(timed(Command::new("dd").args([
            &format!("if={}", file.display()),
            "of=/dev/null",
            "bs=4M",
            "iflag=direct",
        ])));
        shred = shred.min(timed(Command::new("shred").args(["-n", "1"]).arg(&file)));

        for pattern in ["random", "zeros"] {
            fresh(&file, mib);
            let data = dir.join("erase-bench-data");
            let t = Instant::now();
            let out = Command::new(AGENT)
                .env("KENKO_LOG", "warn")
                .arg("--data-dir")
                .arg(&data)
                .args([
                    "erase",
                    "--name",
                    "bench",
                    "--verify",
                    "full",
                    "--pattern",
                    pattern,
                ])
                .arg("--target")
                .arg(format!("file:{}", file.display()))
                .output()
                .unwrap();
            let total = t.elapsed().as_secs_f64();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("overwrite "))
                .expect("timings");
            let nums: Vec<f64> = line
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter_map(|s| s.parse().ok())
                .collect();
            if pattern == "random" {
                k_write = k_write.min(nums[0]);
                k_verify = k_verify.min(nums[2]);
                k_total = k_total.min(total);
            } else {
                z_write = z_write.min(nums[0]);
                z_verify = z_verify.min(nums[2]);
            }
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    let _ = std::fs::remove_file(&file);

    println!(
        "\nerasure benchmark: {mib} MiB file in {}, best of {repeat}",
        dir.display()
    );
    println!(
        "{:<44} {:>8} {:>9} {:>8}",
        "variant", "seconds", "MB/s", "ratio"
    );
    let row = |name: &str, secs: f64, ratio: Option<f64>| {
        println!(
            "{name:<44} {secs:>8.3} {:>9.0} {:>8}",
            mb / secs,
            ratio.map(|r| format!("{r:.2}x")).unwrap_or_default()
        );
    };
    row(
        "kenko overwrite, zeros (O_DIRECT)",
        z_write,
        Some(dd_write / z_write),
    );
    row(
        "kenko overwrite, ChaCha8 (O_DIRECT)",
        k_write,
        Some(dd_write / k_write),
    );
    row("dd zeros oflag=direct conv=fsync", dd_write, None);
    row(
        "kenko full verification, zeros",
        z_verify,
        Some(dd_read / z_verify),
    );
    row(
        "kenko full verification, ChaCha8",
        k_verify,
        Some(dd_read / k_verify),
    );
    row("dd read iflag=direct", dd_read, None);
    row(
        "kenko clear+verify (ChaCha8), whole command",
        k_total,
        Some(shred / k_total),
    );
    row("shred -n 1 (no verification)", shred, None);
    println!("ratio = alternative's time / kenko's time (targets: 0.95x, 0.95x, above 1.00x)");
    println!(
        "(this VM's disk writes zeros faster than other data, so zeros is the like-for-like row)"
    );
}

/// A file of `mib` MiB with real (non-sparse) data, synced.
fn fresh(file: &Path, mib: u64) {
    let _ = std::fs::remove_file(file);
    let ok = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", file.display()),
            "bs=4M",
            &format!("count={}", mib / 4),
            "conv=fsync",
        ])
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
}

fn timed(c: &mut Command) -> f64 {
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}
