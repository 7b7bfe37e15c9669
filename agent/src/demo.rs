//! `kenko-agent demo`: the main job on embedded defaults, for someone trying kenko on one
//! machine. It makes a workspace, a synthetic register and a month of deliveries (one with
//! row errors in CP932, one from the doctors' association in UTF-8, one with a broken
//! header), takes them in exactly as the agent would, and prints what happened and where
//! everything is. Run it twice and the second run shows duplicate deliveries being skipped.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use kenko_intake::YearMonth;

use crate::config::Config;
use crate::intake::{self, Env, RunSummary};
use crate::register::{self, RegisterIndex};
use kenko_sample::{self as sample, IntakeSpec, SampleEncoding};

/// Demo size.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    pub residents: usize,
    pub records: usize,
    pub seed: u64,
}

/// Runs the demo and prints its report to `out`.
pub fn run(config: &Config, size: DemoSize, out: &mut dyn Write) -> anyhow::Result<RunSummary> {
    let dirs = config.dirs();
    dirs.create_all()
        .with_context(|| format!("creating {}", dirs.root.display()))?;
    let samples = dirs.root.join("samples");
    std::fs::create_dir_all(&samples)?;
    let master = config.load_master()?;
    let mut store = kenko_store::open(&config.database_url)?;
    let key = crate::keysource::data_key(config, store.as_mut())?;

    // 1. The register.
    let register_csv = samples.join("residents.csv");
    // Ages as of today, so the register has this year's infants too.
    let today = config.today();
    let residents = sample::ResidentSpec {
        count: size.residents,
        seed: size.seed,
        as_of: today,
    }
    .generate();
    write_atomically(&register_csv, |w| sample::write_resident_csv(w, &residents))?;
    let n = register::import(
        store.as_mut(),
        &key,
        &register_csv,
        register::ShrinkGuard::default(),
    )?
    .residents;
    writeln!(
        out,
        "resident register: {n} synthetic residents imported from {}",
        register_csv.display()
    )?;

    // 2. Last month's deliveries, dropped into the inbox the way an uploader would.
    let month = previous_month(today);
    let files = [
        (
            "2301234567",
            SampleEncoding::Cp932,
            size.records / 4,
            0.06,
            "clinic-2301234567",
        ),
        (
            "2309876543",
            SampleEncoding::Utf8,
            size.records,
            0.02,
            "ishikai-batch",
        ),
    ];
    for (i, (inst, enc, records, error_rate, stem)) in files.iter().enumerate() {
        let mut spec = IntakeSpec::new((*records).max(1), month, today);
        spec.encoding = *enc;
        spec.error_rate = *error_rate;
        spec.seed = size.seed.wrapping_add(i as u64 + 1);
        spec.institution = (i == 0).then(|| inst.to_string());
        let name = format!("{month}_{stem}.csv");
        let path = dirs.inbox.join(&name);
        write_atomically(&path, |w| {
            sample::write_intake(w, &residents, &spec).map(|_| ())
        })?;
    }
    // A delivery whose header was edited by hand: returned whole.
    let broken = dirs
        .inbox
        .join(format!("{month}_clinic-2305555555-edited.csv"));
    let mut buf = Vec::new();
    let mut spec = IntakeSpec::new(20, month, today);
    spec.seed = size.seed.wrapping_add(99);
    sample::write_intake(&mut buf, &residents, &spec)?;
    let text = String::from_utf8(buf)?.replacen("接種日", "接種年月日", 1);
    write_atomically(&broken, |w| w.write_all(text.as_bytes()))?;

    // 3. The intake, as `intake run-once` does it.
    let index = RegisterIndex::load(store.as_mut(), &key)?;
    let mut env = Env {
        store: store.as_mut(),
        register: &index,
        master: &master,
        key: &key,
        dirs: &dirs,
        today,
        publish: None,
    };
    let summary = intake::run_once(&mut env, Duration::ZERO)?;

    // 4. What happened.
    writeln!(
        out,
        "\nintake of claim month {month} (today {today}, Asia/Tokyo):"
    )?;
    for s in &summary.file_summaries {
        writeln!(
            out,
            "  {:<44} {:<9} rows {:>6}  accepted {:>6}  returned {:>5}",
            s.file, s.disposition, s.rows, s.accepted, s.rejected
        )?;
        if let Some(r) = &s.return_report {
            writeln!(
                out,
                "      return report (返戻): {}",
                dirs.root.join(r).display()
            )?;
        }
        for e in &s.file_errors {
            writeln!(
                out,
                "      file rejected: {} {}",
                e.reason.code(),
                e.column.as_deref().unwrap_or("")
            )?;
        }
    }
    if !summary.reasons.is_empty() {
        writeln!(out, "\nreturned rows by reason:")?;
        for (reason, n) in &summary.reasons {
            writeln!(out, "  {reason:<32} {n:>6}")?;
        }
    }
    let fees = env.store.fee_summary(&month.to_string())?;
    writeln!(out, "\nfee summary {month} (委託料):")?;
    writeln!(
        out,
        "  {:<12} {:<12} {:>7} {:>12}",
        "institution", "vaccine", "count", "total (JPY)"
    )?;
    let mut total = 0;
    for l in &fees {
        writeln!(
            out,
            "  {:<12} {:<12} {:>7} {:>12}",
            l.institution, l.vaccine, l.count, l.total_fee
        )?;
        total += l.total_fee;
    }
    writeln!(
        out,
        "  {:<12} {:<12} {:>7} {:>12}",
        "total",
        "",
        fees.iter().map(|l| l.count).sum::<i64>(),
        total
    )?;
    writeln!(
        out,
        "\nfiles:\n  data dir        {}\n  database        {}\n  loaded inputs   {}\n  returned inputs {}\n  reports         {}\n  data key        {}",
        dirs.root.display(),
        kenko_store::redact_url(&config.database_url),
        dirs.processed.display(),
        dirs.returned.display(),
        dirs.reports.display(),
        config.data_key_file.display(),
    )?;
    if summary.duplicates > 0 {
        writeln!(out, "\n{} delivery(ies) were already loaded by an earlier run and were skipped as duplicates.", summary.duplicates)?;
    }
    Ok(summary)
}

/// The month before the one `today` is in.
pub fn previous_month(today: chrono::NaiveDate) -> YearMonth {
    use chrono::Datelike;
    let (y, m) = if today.month() == 1 {
        (today.year() - 1, 12)
    } else {
        (today.year(), today.month() - 1)
    };
    YearMonth::new(y, m).expect("valid month")
}

fn write_atomically(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    crate::fsutil::atomic_write_with(path, 0o644, f)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a file under a temporary name and renames it into place (for `sample --out`, so a
/// file generated straight into an inbox is never taken half-written).
pub fn write_file_atomically(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    write_atomically(path, f)
}
