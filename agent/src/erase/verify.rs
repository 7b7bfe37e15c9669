//! Verification from the media of what the overwrite wrote: every byte (`full`), or the
//! sample NIST SP 800-88 Rev.1 4.7.3 describes (`sample`). The expected bytes are regenerated
//! from the job's seed (the keystream is addressable), never stored.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::overwrite::{
    check_same, data_ranges, drop_cache, fill, open_direct, stream, Aligned, BLOCK, CHUNK,
};
use super::target::FileState;
use super::{io, EraseError, JobSpec, VerifyMode};

/// Reads back what was written. Full: every byte. Sample (NIST SP 800-88 Rev.1 4.7.3): the
/// first and last block plus two random blocks-runs in each of at least 1,000 subsections,
/// covering at least 10% of the media. Returns (bytes checked, locations checked).
pub(super) fn verify_file(
    state: &FileState,
    shown: &Path,
    seed: &[u8; 32],
    index: (usize, usize),
    spec: &JobSpec,
) -> Result<(u64, u64), EraseError> {
    let size = state.size;
    let (mut f, direct) = open_direct(&state.path, shown, false)?;
    // Still the planned file at the planned size: one grown or swapped while it was
    // overwritten is refused, not verified.
    check_same(&f, state, shown)?;
    if size == 0 {
        return Ok((0, 0));
    }
    if !direct {
        drop_cache(&f);
    }
    // What held data was overwritten; a sparse file's holes read as zeros and hold nothing.
    // A device has no holes.
    let data = if state.device {
        vec![(0, size)]
    } else {
        data_ranges(&f, 0, size).map_err(|e| EraseError::Io {
            path: shown.to_path_buf(),
            message: e.desc().to_string(),
        })?
    };
    let ranges = match spec.verify {
        VerifyMode::Full => data.iter().map(|&(s, e)| (s, e - s)).collect(),
        VerifyMode::Sample => intersect(&sample_ranges(size, seed, index), &data),
    };

    let aligned_end = size - size % BLOCK as u64;
    // Pieces of at most a chunk, in order; the expected bytes for each are generated on
    // another thread while this one reads.
    let mut pieces = Vec::new();
    for &(start, len) in &ranges {
        let mut pos = start;
        while pos < start + len {
            let n = (start + len - pos).min(CHUNK as u64) as usize;
            pieces.push((pos, n));
            pos += n as u64;
        }
    }
    let pattern = spec.pattern;
    let pieces_for_gen = pieces.clone();
    let pieces_for_cmp = pieces.clone();
    let mismatch: Result<u64, EraseError> = std::thread::scope(|s| {
        // Three stages so the disk never waits for the CPU: this thread reads, one thread
        // regenerates the expected bytes, one compares.
        let (exp_tx, exp_rx) = mpsc::sync_channel::<Vec<u8>>(2);
        let (exp_free_tx, exp_free_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (got_tx, got_rx) = mpsc::sync_channel::<Aligned>(2);
        let (got_free_tx, got_free_rx) = mpsc::sync_channel::<Aligned>(4);
        for _ in 0..3 {
            let _ = exp_free_tx.send(vec![0u8; CHUNK]);
            let _ = got_free_tx.send(Aligned::new(CHUNK));
        }
        s.spawn(move || {
            let mut rng: Option<(u64, ChaCha8Rng)> = None;
            for (pos, n) in pieces_for_gen {
                let Ok(mut buf) = exp_free_rx.recv() else {
                    return;
                };
                // Reuse the running generator when pieces are contiguous.
                let mut r = match rng.take() {
                    Some((next, r)) if next == pos => r,
                    _ => stream(seed, index, pos),
                };
                fill(pattern, &mut r, &mut buf[..n]);
                rng = Some((pos + n as u64, r));
                if exp_tx.send(buf).is_err() {
                    return;
                }
            }
        });
        let comparer = s.spawn(move || -> Result<u64, EraseError> {
            let mut checked = 0u64;
            for (pos, n) in pieces_for_cmp {
                let (Ok(mut got), Ok(expected)) = (got_rx.recv(), exp_rx.recv()) else {
                    return Err(EraseError::VerificationFailed {
                        target: format!("a file of target {}", index.0 + 1),
                        details: "verification stopped before the end".into(),
                    });
                };
                let same = got.slice(n)[..] == expected[..n];
                let _ = got_free_tx.send(got);
                let _ = exp_free_tx.send(expected);
                if !same {
                    return Err(EraseError::VerificationFailed {
                        target: format!("a file of target {}", index.0 + 1),
                        details: format!("bytes at offset {pos} differ from what was written"),
                    });
                }
                checked += n as u64;
            }
            Ok(checked)
        });
        for (pos, n) in pieces {
            let Ok(mut buf) = got_free_rx.recv() else {
                break;
            };
            if direct && pos + n as u64 <= aligned_end {
                f.seek(SeekFrom::Start(pos)).map_err(io(shown))?;
                f.read_exact(buf.slice(n)).map_err(io(shown))?;
            } else {
                // The unaligned tail, read through a normal handle after dropping its cache.
                let mut g = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(nix::libc::O_NOFOLLOW)
                        .open(&state.path)
                        .map_err(io(shown))?
                };
                check_same(&g, state, shown)?;
                drop_cache(&g);
                g.seek(SeekFrom::Start(pos)).map_err(io(shown))?;
                g.read_exact(buf.slice(n)).map_err(io(shown))?;
            }
            if got_tx.send(buf).is_err() {
                break;
            }
        }
        drop(got_tx);
        comparer.join().expect("the comparer does not panic")
    });
    let checked = mismatch?;
    Ok((checked, ranges.len() as u64))
}

/// Sample locations per NIST SP 800-88 Rev.1 4.7.3, aligned to blocks.
/// The parts of `ranges` (start, length) inside `data` (start, end).
fn intersect(ranges: &[(u64, u64)], data: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(start, len) in ranges {
        for &(ds, de) in data {
            let s = start.max(ds);
            let e = (start + len).min(de);
            if s < e {
                out.push((s, e - s));
            }
        }
    }
    out
}

pub(super) fn sample_ranges(size: u64, seed: &[u8; 32], index: (usize, usize)) -> Vec<(u64, u64)> {
    let blocks = size.div_ceil(BLOCK as u64);
    // Small media: a full read is cheaper than sampling and proves more.
    if blocks < 20_000 {
        return vec![(0, size)];
    }
    let subsections = 1000u64;
    let per = blocks / subsections;
    // Two samples per subsection covering at least 10% together: each 5% (at least a block).
    let sample_blocks = per.div_ceil(20).max(1);
    let mut rng = stream(seed, (usize::MAX, index.0 ^ (index.1 << 16)), 0);
    let mut out = vec![(0, BLOCK as u64)];
    for s in 0..subsections {
        let base = s * per;
        for _ in 0..2 {
            let within = rng.gen_range(0..=per.saturating_sub(sample_blocks));
            out.push(((base + within) * BLOCK as u64, sample_blocks * BLOCK as u64));
        }
    }
    let last = (blocks - 1) * BLOCK as u64;
    out.push((last, size - last));
    out
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn sampling_meets_nist_4_7_3() {
        let size = 1u64 << 30;
        let ranges = sample_ranges(size, &[1; 32], (0, 0));
        let covered: u64 = ranges.iter().map(|r| r.1).sum();
        assert!(ranges.len() >= 2 * 1000 + 2);
        assert!(covered * 10 >= size, "covers {covered} of {size}");
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().0 + ranges.last().unwrap().1, size);
        assert!(ranges
            .iter()
            .all(|(s, l)| s + l <= size && s % BLOCK as u64 == 0));
    }
}
