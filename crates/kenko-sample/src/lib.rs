//! Synthetic, deterministic data for demos, tests and benchmarks: a resident register extract
//! (the file `kenko-agent residents import` reads) and monthly intake files in the format of
//! `docs/intake-format.md`, with a chosen share of rows carrying one known error each.
//!
//! Everything comes from a seeded ChaCha8 generator, so a seed names a file exactly: the same
//! seed gives the same bytes on every machine and run. Names are common Japanese names and
//! addresses real Koshigaya town names, combined at random with random numbers; no row is a
//! real person. My Numbers are random 11 digits with a correct check digit.
//!
//! Intake files are written row by row, so a million-row benchmark file needs no more memory
//! than a small one (apart from a set of 8-byte keys that keeps valid rows unique).

mod csv;
mod intake;
mod names;
mod residents;
#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;

pub use intake::{
    write_intake, write_intake_observed, InjectedError, IntakeSpec, IntakeStats, SampleEncoding,
    INTAKE_HEADER,
};
pub use residents::{
    generate_residents, parse_residents, read_residents, write_resident_csv, write_residents,
    ResidentSpec, ResidentsError, SampleResident, DEFAULT_AS_OF, FIRST_RESIDENT_NO, LOSS_DECEASED,
    LOSS_MOVED_OUT, RESIDENT_HEADER,
};
