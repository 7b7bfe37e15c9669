//! NIST SP 800-88 Rev.1 Purge of a whole block device, by the device's own secure erase
//! (the kernel's `BLKSECDISCARD`). Overwriting is Clear, never Purge: on flash, spare and
//! remapped blocks keep old data that no write through the block interface reaches, so a
//! device without a sanitize command of its own gets a clear refusal, not a weaker erase
//! under a stronger name.
//!
//! Verification: the content at the NIST sample locations (4.7.3) is digested before the
//! erase and read again, from the media, after; every location must have changed or read
//! as zeros (what a secure discard leaves on most devices).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::overwrite::{drop_cache, open_direct, Aligned, BLOCK};
use super::target::Progress;
use super::verify::sample_ranges;
use super::{io, save, Checkpoint, EraseError, Seal};

/// What the purge of a device did (kept in the checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct PurgeDone {
    pub mechanism: String,
    /// Sample locations (offset, length).
    pub ranges: Vec<(u64, u64)>,
    /// First 16 bytes of the SHA-256 of each location before the erase, hex.
    pub before: Vec<String>,
    pub erased: bool,
    /// After the erase: locations that read the same as before (and are not zeros).
    pub unchanged: Option<u64>,
    pub zeros_after: u64,
}

/// One location's digest and whether it was all zeros.
fn digest(bytes: &[u8]) -> (String, bool) {
    (
        hex::encode(&Sha256::digest(bytes)[..16]),
        bytes.iter().all(|&b| b == 0),
    )
}

/// Reads each location from the media (direct I/O) and digests it.
pub(super) fn read_locations(
    path: &Path,
    shown: &Path,
    ranges: &[(u64, u64)],
) -> Result<Vec<(String, bool)>, EraseError> {
    let (mut f, direct) = open_direct(path, shown, false)?;
    if !direct {
        drop_cache(&f);
    }
    let longest = ranges.iter().map(|r| r.1).max().unwrap_or(0) as usize;
    let mut buf = Aligned::new(longest.div_ceil(BLOCK) * BLOCK);
    let mut out = Vec::with_capacity(ranges.len());
    for &(pos, len) in ranges {
        let b = buf.slice(len as usize);
        f.seek(SeekFrom::Start(pos)).map_err(io(shown))?;
        f.read_exact(b).map_err(io(shown))?;
        out.push(digest(b));
    }
    Ok(out)
}

/// The verdict: how many locations still hold what they held before (zeros excepted: a
/// region that was never written reads as zeros before and after).
pub(super) fn unchanged(before: &[String], after: &[(String, bool)]) -> u64 {
    before
        .iter()
        .zip(after)
        .filter(|(b, (a, zero))| *b == a && !zero)
        .count() as u64
}

// BLKSECDISCARD = _IO(0x12, 125): discard a byte range [start, len) so that the data, and any
// copy the device made of it, is gone.
nix::ioctl_write_ptr_bad!(blksecdiscard, nix::request_code_none!(0x12, 125), [u64; 2]);

/// Issues the device's secure erase over `[0, size)`. An unsupported device returns before
/// anything on it changed.
pub(super) fn secure_discard(f: &File, shown: &Path, size: u64) -> Result<(), PurgeFailure> {
    let range: [u64; 2] = [0, size];
    // SAFETY: BLKSECDISCARD reads a `[u64; 2]` (start, length) through the pointer and writes
    // nothing back; `range` lives on this stack frame for the whole call and `f` is an open
    // block device.
    #[allow(unsafe_code)]
    let r = unsafe { blksecdiscard(f.as_raw_fd(), &range) };
    match r {
        Ok(_) => Ok(()),
        Err(e @ (nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOTTY)) => {
            Err(PurgeFailure::Unsupported(e))
        }
        Err(e) => Err(PurgeFailure::Io(io(shown)(std::io::Error::from(e)))),
    }
}

pub(super) enum PurgeFailure {
    /// The device has no secure erase the kernel can issue.
    Unsupported(nix::errno::Errno),
    Io(EraseError),
}

/// Purges the device of target `ti` (one file state, the device), resuming from the
/// checkpoint: sample before, secure erase, sample after.
pub(super) fn run(
    cp: &mut Checkpoint,
    ti: usize,
    seed: &[u8; 32],
    cp_path: &Path,
    job_dir: &Path,
    seal: &Seal,
) -> Result<(), EraseError> {
    let dev = cp.targets[ti].files[0].clone();
    let shown = dev.path.clone();
    if cp.targets[ti].purge().is_none() {
        let ranges = sample_ranges(dev.size, seed, (ti, 0));
        let before = read_locations(&dev.path, &shown, &ranges)?;
        cp.targets[ti].progress = Progress::Purge(PurgeDone {
            mechanism: "BLKSECDISCARD".into(),
            ranges,
            before: before.into_iter().map(|d| d.0).collect(),
            erased: false,
            unchanged: None,
            zeros_after: 0,
        });
        save(cp_path, cp, seal)?;
    }
    let done = cp.targets[ti].purge().cloned().expect("set above");
    if !done.erased {
        let f = OpenOptions::new()
            .write(true)
            .open(&dev.path)
            .map_err(io(&shown))?;
        match secure_discard(&f, &shown, dev.size) {
            Ok(()) => {}
            Err(PurgeFailure::Unsupported(errno)) => {
                // Nothing on the device changed, so nothing is left to resume: the job goes,
                // and the operator may run a Clear under a new or the same job id.
                let _ = std::fs::remove_dir_all(job_dir);
                return Err(EraseError::PurgeUnsupported {
                    path: dev.path.clone(),
                    detail: format!(
                        "the kernel reports no secure erase for it ({}: {})",
                        errno,
                        errno.desc()
                    ),
                });
            }
            Err(PurgeFailure::Io(e)) => return Err(e),
        }
        f.sync_all().map_err(io(&shown))?;
        let t = &mut cp.targets[ti];
        t.files[0].written = dev.size;
        t.purge_mut().expect("set above").erased = true;
        save(cp_path, cp, seal)?;
    }
    if cp.targets[ti]
        .purge()
        .expect("set above")
        .unchanged
        .is_none()
    {
        let ranges = done.ranges.clone();
        let after = read_locations(&dev.path, &shown, &ranges)?;
        let left = unchanged(&done.before, &after);
        let t = &mut cp.targets[ti];
        let p = t.purge_mut().expect("set above");
        p.unchanged = Some(left);
        p.zeros_after = after.iter().filter(|a| a.1).count() as u64;
        t.bytes_checked = ranges.iter().map(|r| r.1).sum();
        t.locations_checked = ranges.len() as u64;
        t.files[0].verified = left == 0;
        let target = t.spec.clone();
        save(cp_path, cp, seal)?;
        if left > 0 {
            return Err(EraseError::VerificationFailed {
                target: target.to_string(),
                details: format!(
                    "{left} of {} sampled locations still hold what they held before the secure erase",
                    ranges.len()
                ),
            });
        }
    }
    cp.targets[ti].files[0].unlinked = true;
    save(cp_path, cp, seal)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn a_location_that_kept_its_data_fails_and_zeros_pass() {
        let data = digest(b"resident records");
        let zeros = digest(&[0u8; 16]);
        let other = digest(b"something else!!");
        let before = vec![data.0.clone(), data.0.clone(), zeros.0.clone()];
        // Changed, zeroed, zeros before and after: nothing unchanged.
        assert_eq!(
            unchanged(&before, &[other.clone(), zeros.clone(), zeros.clone()]),
            0
        );
        // The first location still holds its data.
        assert_eq!(unchanged(&before, &[data.clone(), zeros.clone(), zeros]), 1);
    }
}
