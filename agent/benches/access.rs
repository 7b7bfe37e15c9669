//! The agent's access-monitoring pipeline over a large health access log: the real
//! [`Monitor`] (read complete lines from the file, chain every segment with SHA-256, parse,
//! every detector, alert file, checkpoint) against `jq -c` doing only a per-actor count of the
//! same file, in one run. Prints events/s per core and peak RSS side by side, plus what the
//! pieces cost alone (reading, SHA-256) to show where the time goes.
//!
//!     cargo bench -p kenko-agent --bench access
//!
//! Environment: KENKO_BENCH_EVENTS (mean events per staff per working day, default 1000: about
//! 5 million lines, 1 GB), KENKO_BENCH_JQ_LINES (jq reads the first N lines, default 1,000,000;
//! 0 = all), KENKO_BENCH_DIR (default /var/tmp/kenko-bench/agent-access; the log is generated
//! once per size and reused).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark: a failure is the answer, and it sets up its files and clock directly"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use kenko_access::generate::{generate, Spec};
use kenko_agent::access::settings::AccessSection;
use kenko_agent::access::Monitor;
use sha2::{Digest, Sha256};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        measure(Path::new(&args[i + 1]), &args[i + 2]);
        return;
    }
    let per_day = env_u64("KENKO_BENCH_EVENTS", 1000) as u32;
    let jq_lines = env_u64("KENKO_BENCH_JQ_LINES", 1_000_000);
    let base = PathBuf::from(
        std::env::var("KENKO_BENCH_DIR")
            .unwrap_or_else(|_| "/var/tmp/kenko-bench/agent-access".into()),
    );
    let dir = base.join(format!(
        "v{}-events-{per_day}",
        kenko_access::generate::VERSION
    ));
    let log = dir.join("health-access.jsonl");
    if !dir.join("roster.csv").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let t = Instant::now();
        let mut h = BufWriter::with_capacity(1 << 20, File::create(&log).unwrap());
        let g = generate(
            &Spec {
                events_per_staff_day: per_day,
                ..Spec::city(20_261_101)
            },
            &mut h,
            &mut std::io::sink(),
            &mut std::io::sink(),
        )
        .unwrap();
        h.flush().unwrap();
        std::fs::write(dir.join("roster.csv"), g.roster.to_csv()).unwrap();
        eprintln!(
            "generated {} lines in {:.1} s",
            g.health_events,
            t.elapsed().as_secs_f64()
        );
    }
    let bytes = std::fs::metadata(&log).unwrap().len();

    // The pieces alone (page cache warm): reading, and SHA-256 of every byte.
    let t = Instant::now();
    let mut f = File::open(&log).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let mut h = Sha256::new();
    let mut read_secs = 0.0;
    loop {
        let r = Instant::now();
        let n = f.read(&mut buf).unwrap();
        read_secs += r.elapsed().as_secs_f64();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    std::hint::black_box(h.finalize());
    let sha_secs = t.elapsed().as_secs_f64() - read_secs;

    // The agent's pipeline, in a child (its own RSS), best of two.
    let mut best: Option<serde_json::Value> = None;
    for _ in 0..2 {
        let state = tempfile::tempdir_in(&base).unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .arg("--measure")
            .arg(&dir)
            .arg(state.path())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "measurement failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if best
            .as_ref()
            .is_none_or(|b| v["secs"].as_f64() < b["secs"].as_f64())
        {
            best = Some(v);
        }
    }
    let m = best.unwrap();
    let events = m["events"].as_u64().unwrap();
    let secs = m["secs"].as_f64().unwrap();
    let rate = events as f64 / secs;

    // jq -c: a per-actor count only.
    let jq_file = if jq_lines > 0 {
        let slice = dir.join(format!("first-{jq_lines}.jsonl"));
        if !slice.exists() {
            let mut w = BufWriter::new(File::create(&slice).unwrap());
            for l in BufReader::new(File::open(&log).unwrap())
                .lines()
                .take(jq_lines as usize)
            {
                writeln!(w, "{}", l.unwrap()).unwrap();
            }
            w.flush().unwrap();
        }
        slice
    } else {
        log.clone()
    };
    let jq_n = if jq_lines > 0 {
        jq_lines.min(events)
    } else {
        events
    };
    let t = Instant::now();
    let jq = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .args([
            "jq",
            "-c",
            "-n",
            "reduce inputs as $e ({}; .[$e.staff_id] += 1)",
        ])
        .arg(&jq_file)
        .output();
    let jq_secs = t.elapsed().as_secs_f64();
    let (jq_ok, jq_rss) = match &jq {
        Ok(o) if o.status.success() => (
            true,
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(0),
        ),
        _ => (false, 0),
    };
    let jq_rate = jq_n as f64 / jq_secs;

    println!();
    println!(
        "agent access pipeline: {} lines ({:.0} MiB) of a generated month, one thread",
        thousands(events),
        bytes as f64 / 1048576.0
    );
    println!();
    println!("| | lines | seconds | events/s (1 core) | peak RSS | vs jq |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| kenko-agent Monitor: read + SHA-256 chain + parse + all 11 detectors + alert file + checkpoint | {} | {:.2} | {} | {:.1} MiB | {:.1}x |",
        thousands(events),
        secs,
        thousands(rate as u64),
        m["rss_kib"].as_u64().unwrap() as f64 / 1024.0,
        rate / jq_rate
    );
    println!(
        "| `jq -c -n 'reduce inputs as $e ({{}}; .[$e.staff_id] += 1)'`{} | {} | {:.2} | {} | {:.1} MiB | 1.0x |",
        if jq_lines > 0 { " (first lines)" } else { "" },
        thousands(jq_n),
        jq_secs,
        thousands(jq_rate as u64),
        jq_rss as f64 / 1024.0
    );
    if !jq_ok {
        println!("(jq failed or is not installed: its row is not a measurement)");
    }
    println!();
    println!(
        "where the time goes: reading the file {:.2} s, SHA-256 of every byte {:.2} s ({:.0} MB/s), the rest (parse + detect + outputs) {:.2} s",
        read_secs,
        sha_secs,
        bytes as f64 / 1e6 / sha_secs,
        (secs - read_secs - sha_secs).max(0.0)
    );
    println!(
        "alerts opened: {}; segments chained: {}",
        m["alerts"], m["segments"]
    );
    println!(
        "throughput target 1,000,000 events/s per core: {}; RSS limit 256 MiB: {}",
        if rate >= 1e6 { "met" } else { "NOT met" },
        if m["rss_kib"].as_u64().unwrap() < 256 * 1024 {
            "ok"
        } else {
            "OVER"
        }
    );
}

fn measure(dir: &Path, state: &str) {
    let section: AccessSection = toml::from_str(&format!(
        "health_log = \"{}\"\nroster = \"{}\"\nstate_dir = \"{}\"\n",
        dir.join("health-access.jsonl").display(),
        dir.join("roster.csv").display(),
        state
    ))
    .unwrap();
    let settings = section.resolve(Path::new(state)).unwrap();
    let t = Instant::now();
    let mut m = Monitor::open(settings).unwrap();
    while m.step().unwrap() {}
    m.checkpoint().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(state).join("checkpoint.json")).unwrap())
            .unwrap();
    let alerts = std::fs::read_to_string(Path::new(state).join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    let segments = std::fs::read_to_string(Path::new(state).join("chain/segments.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    println!(
        "{}",
        serde_json::json!({
            "events": cp["events"]["health"],
            "secs": secs,
            "rss_kib": rss_kib(),
            "alerts": alerts,
            "segments": segments,
        })
    );
}
