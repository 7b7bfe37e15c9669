//! Overwriting a file or device with the job's pattern (NIST SP 800-88 Rev.1 Clear): writes
//! that bypass the page cache (`O_DIRECT`, or synced and dropped from the cache where the file
//! system has no direct I/O), the pattern generated on other threads while this one waits on
//! the disk, progress checkpointed as it goes; then the file's name goes too (renamed to a
//! random name and unlinked, since names can be personal data).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::target::FileState;
use super::verify::verify_file;
use super::{io, save, Checkpoint, EraseError, JobSpec, Pattern, Seal, Timings};
use crate::{crashpoint, fsutil};

/// Block size for direct I/O alignment and sampling.
pub(super) const BLOCK: usize = 4096;
/// Bytes per write (and per read when verifying); 16 MiB measured slower than 4 MiB here.
pub(super) const CHUNK: usize = 4 << 20;

/// The keystream for one file, positioned at `offset` (a multiple of 4).
pub(super) fn stream(seed: &[u8; 32], file_index: (usize, usize), offset: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed);
    h.update((file_index.0 as u64).to_be_bytes());
    h.update((file_index.1 as u64).to_be_bytes());
    let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
    rng.set_word_pos(u128::from(offset / 4));
    rng
}

pub(super) fn fill(pattern: Pattern, rng: &mut ChaCha8Rng, buf: &mut [u8]) {
    match pattern {
        Pattern::Random => rng.fill_bytes(buf),
        Pattern::Zeros => buf.fill(0),
    }
}

/// A buffer aligned for direct I/O (safe: only the address is inspected).
pub(super) struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    pub(super) fn new(len: usize) -> Aligned {
        let storage = vec![0u8; len + BLOCK];
        let addr = storage.as_ptr() as usize;
        let start = (BLOCK - addr % BLOCK) % BLOCK;
        Aligned {
            storage,
            start,
            len,
        }
    }
    pub(super) fn slice(&mut self, n: usize) -> &mut [u8] {
        &mut self.storage[self.start..self.start + n.min(self.len)]
    }
}

/// Opens for direct I/O when the file system allows it, else normally (then the page cache
/// is flushed and dropped explicitly).
pub(super) fn open_direct(
    path: &Path,
    shown: &Path,
    write: bool,
) -> Result<(File, bool), EraseError> {
    // O_NOFOLLOW: a file swapped for a link after planning is never followed out of the
    // target (the identity check then refuses what was opened).
    let direct = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits() | nix::libc::O_NOFOLLOW)
        .open(path);
    match direct {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            let f = OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(opened(shown))?;
            Ok((f, false))
        }
        Err(e) => Err(opened(shown)(e)),
    }
}

/// An open that met a link where a file was planned is a changed target, not an I/O error.
fn opened(shown: &Path) -> impl FnOnce(std::io::Error) -> EraseError + '_ {
    move |e| {
        if e.raw_os_error() == Some(nix::libc::ELOOP) {
            EraseError::TargetChanged {
                target: shown.display().to_string(),
                what: "replaced by a symbolic link",
            }
        } else {
            io(shown)(e)
        }
    }
}

/// Checks that what was opened is the file the job planned: the same inode, a regular file,
/// the planned size. A file replaced, grown or cut since (by a writer while it was erased, or
/// while the job was stopped) is refused: overwriting or certifying it would be about another
/// file than the one planned.
pub(super) fn check_same(f: &File, state: &FileState, shown: &Path) -> Result<(), EraseError> {
    use std::os::unix::fs::MetadataExt;
    if state.device {
        return Ok(());
    }
    let meta = f.metadata().map_err(io(shown))?;
    let changed = |what| EraseError::TargetChanged {
        target: shown.display().to_string(),
        what,
    };
    if !meta.is_file() {
        return Err(changed("replaced by something that is not a regular file"));
    }
    if state
        .identity
        .is_some_and(|id| id != (meta.dev(), meta.ino()))
    {
        return Err(changed("replaced by another file"));
    }
    if meta.len() != state.size {
        return Err(changed("changed in size"));
    }
    Ok(())
}

/// The parts of `[from, size)` that hold data, block-aligned (the last may end at `size`):
/// a sparse file's holes hold nothing, and writing them would allocate the whole apparent
/// size (a 1 TiB sparse file on a small disk would end the erasure with ENOSPC). A file
/// system that cannot tell holes says all of it is data.
pub(super) fn data_ranges(f: &File, from: u64, size: u64) -> Result<Vec<(u64, u64)>, nix::Error> {
    use nix::unistd::{lseek, Whence};
    let fd = f.as_raw_fd();
    let block = BLOCK as u64;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = from;
    while pos < size {
        let data = match lseek(fd, pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e),
        };
        if data >= size {
            break;
        }
        let hole = (lseek(fd, data as i64, Whence::SeekHole)? as u64).min(size);
        let start = (data - data % block).max(from);
        let end = hole.div_ceil(block).saturating_mul(block).min(size);
        match out.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
        pos = end.max(data + 1);
    }
    Ok(out)
}

/// Checks that `path` still names the entry the job planned (for entries only removed).
fn check_entry(state: &FileState, shown: &Path) -> Result<(), EraseError> {
    use std::os::unix::fs::MetadataExt;
    let Some(id) = state.identity else {
        return Ok(());
    };
    match std::fs::symlink_metadata(&state.path) {
        Ok(m) if (m.dev(), m.ino()) == id => Ok(()),
        Ok(_) => Err(EraseError::TargetChanged {
            target: shown.display().to_string(),
            what: "replaced by another entry",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(shown)(e)),
    }
}

pub(super) fn drop_cache(f: &File) {
    let _ = nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// Overwrites file `fi` of target `ti` from where the checkpoint says, verifies it from the
/// media, then removes it under a random name.
#[allow(
    clippy::too_many_arguments,
    reason = "the job's parts, each used here; a struct of them would only rename them"
)]
pub(super) fn erase_file(
    cp: &mut Checkpoint,
    ti: usize,
    fi: usize,
    seed: &[u8; 32],
    spec: &JobSpec,
    cp_path: &Path,
    seal: &Seal,
    timings: &mut Timings,
) -> Result<(), EraseError> {
    let state = cp.targets[ti].files[fi].clone();
    if state.unlinked {
        return Ok(());
    }
    let path = state.path.clone();
    // Errors name the file by its place in the target, not by its name: names inside a folder
    // can be personal data too.
    let shown = PathBuf::from(format!("file #{} of {}", fi + 1, cp.targets[ti].spec));
    let size = state.size;
    if state.not_overwritten.is_some() {
        check_entry(&state, &shown)?;
    }
    if !state.verified {
        // 1. Overwrite from where the checkpoint says.
        let t = std::time::Instant::now();
        let (mut f, direct) = open_direct(&path, &shown, true)?;
        check_same(&f, &state, &shown)?;
        let aligned_end = size - size % BLOCK as u64;
        let resume_at = state.written - state.written % BLOCK as u64;
        // Only the parts that hold data, in pieces of at most a chunk.
        // A device has no holes (and SEEK_DATA means nothing there).
        let ranges = if state.device {
            vec![(resume_at, size)]
        } else {
            data_ranges(&f, resume_at, size).map_err(|e| EraseError::Io {
                path: shown.clone(),
                message: e.desc().to_string(),
            })?
        };
        let tail_from = ranges.last().filter(|r| r.1 == size).map(|_| aligned_end);
        let mut pieces: Vec<(u64, usize)> = Vec::new();
        for &(start, end) in &ranges {
            let mut pos = start;
            let end = end.min(aligned_end);
            while pos < end {
                let n = (end - pos).min(CHUNK as u64) as usize;
                pieces.push((pos, n));
                pos += n as u64;
            }
        }
        let mut offset = resume_at;
        let mut since_checkpoint = 0u64;
        // The pattern is generated on another thread while this one waits on the disk, so
        // the overwrite runs at the speed of the slower of the two, not their sum.
        let pattern = spec.pattern;
        let pieces = &pieces;
        let result: Result<u64, EraseError> = std::thread::scope(|s| {
            // Two workers fill alternate pieces (the keystream is addressable), so pattern
            // generation keeps ahead of a fast disk; the writer takes pieces in order.
            const WORKERS: usize = 2;
            let mut full = Vec::new();
            let mut free = Vec::new();
            for w in 0..WORKERS {
                let (full_tx, full_rx) = mpsc::sync_channel::<(Aligned, usize)>(2);
                let (free_tx, free_rx) = mpsc::sync_channel::<Aligned>(3);
                for _ in 0..2 {
                    let _ = free_tx.send(Aligned::new(CHUNK));
                }
                full.push(full_rx);
                free.push(free_tx);
                s.spawn(move || {
                    for &(off, n) in pieces.iter().skip(w).step_by(WORKERS) {
                        let Ok(mut buf) = free_rx.recv() else { return };
                        let mut rng = stream(seed, (ti, fi), off);
                        fill(pattern, &mut rng, buf.slice(n));
                        if full_tx.send((buf, n)).is_err() {
                            return;
                        }
                    }
                });
            }
            let mut last_checkpoint = std::time::Instant::now();
            let mut w = 0;
            for &(at, _) in pieces {
                let (mut buf, n) = full[w].recv().map_err(|_| EraseError::Io {
                    path: path.clone(),
                    message: "the pattern generator stopped".into(),
                })?;
                f.seek(SeekFrom::Start(at)).map_err(io(&shown))?;
                f.write_all(buf.slice(n)).map_err(io(&shown))?;
                let _ = free[w].send(buf);
                w = (w + 1) % WORKERS;
                offset = at + n as u64;
                since_checkpoint += n as u64;
                // A checkpoint costs a few device flushes: taken once enough was written and
                // enough time passed, which bounds both the flushes and the rework after a
                // crash.
                if since_checkpoint >= spec.checkpoint_bytes
                    && last_checkpoint.elapsed() >= spec.checkpoint_interval
                {
                    f.sync_data().map_err(io(&shown))?;
                    cp.targets[ti].files[fi].written = offset;
                    save(cp_path, cp, seal)?;
                    since_checkpoint = 0;
                    last_checkpoint = std::time::Instant::now();
                    crashpoint::hit("erase-checkpointed");
                    crashpoint::pause("erase-checkpointed");
                }
            }
            Ok(offset)
        });
        result?;
        if let Some(offset) = tail_from.filter(|&t| t < size) {
            let mut rng = stream(seed, (ti, fi), offset);
            // The tail shorter than a block: direct I/O cannot write it, so it goes through
            // the page cache and is synced.
            let tail = (size - offset) as usize;
            let mut bytes = vec![0u8; tail];
            fill(spec.pattern, &mut rng, &mut bytes);
            let mut g = OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(opened(&shown))?;
            check_same(&g, &state, &shown)?;
            g.seek(SeekFrom::Start(offset)).map_err(io(&shown))?;
            g.write_all(&bytes).map_err(io(&shown))?;
            g.sync_data().map_err(io(&shown))?;
            drop_cache(&g);
        }
        f.sync_all().map_err(io(&shown))?;
        if !direct {
            drop_cache(&f);
        }
        cp.targets[ti].files[fi].written = size;
        // What held data (all of it unless the file is sparse), for the certificate; on a
        // resumed job, what was before the resume point counts as planned.
        let before: u64 = if resume_at == 0 {
            0
        } else {
            state.overwritten.unwrap_or(resume_at)
        };
        let now: u64 = ranges.iter().map(|(s, e)| e - s).sum();
        cp.targets[ti].files[fi].overwritten = Some(before + now);
        save(cp_path, cp, seal)?;
        timings.overwrite += t.elapsed();

        // 2. Verify from the media.
        let t = std::time::Instant::now();
        let (checked, locations) = verify_file(&state, &shown, seed, (ti, fi), spec)?;
        timings.verify += t.elapsed();
        cp.targets[ti].bytes_checked += checked;
        cp.targets[ti].locations_checked += locations;
        cp.targets[ti].files[fi].verified = true;
        save(cp_path, cp, seal)?;
    }
    // 3. The name goes too: rename to random, sync the folder, unlink, sync again. (A device
    // stays: the device node is not the data.)
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !state.device && std::fs::symlink_metadata(&path).is_ok() {
        let random = dir.join(format!("{:016x}", rand::thread_rng().gen::<u64>()));
        #[allow(
            clippy::disallowed_methods,
            reason = "a rename to a random name so the old name goes with the data; the folder is synced after"
        )]
        std::fs::rename(&path, &random).map_err(io(&shown))?;
        fsutil::sync_dir(&dir).map_err(io(&dir))?;
        std::fs::remove_file(&random).map_err(io(&shown))?;
        fsutil::sync_dir(&dir).map_err(io(&dir))?;
    }
    cp.targets[ti].files[fi].unlinked = true;
    save(cp_path, cp, seal)
}

/// Removes an emptied folder under a random name (its name may be personal data too).
pub(super) fn remove_dir_renamed(dir: &Path) -> Result<(), EraseError> {
    if !dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    let random = parent.join(format!("{:016x}", rand::thread_rng().gen::<u64>()));
    #[allow(
        clippy::disallowed_methods,
        reason = "a rename to a random name so the old name goes with the data; the folder is synced after"
    )]
    std::fs::rename(dir, &random).map_err(io(Path::new(
        "a folder of the target (names are not shown)",
    )))?;
    std::fs::remove_dir(&random).map_err(io(&random))?;
    fsutil::sync_dir(&parent).map_err(io(&parent))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn the_keystream_is_addressable() {
        let mut whole = vec![0u8; 3 * BLOCK];
        stream(&[7; 32], (1, 2), 0).fill_bytes(&mut whole);
        let mut tail = vec![0u8; BLOCK];
        stream(&[7; 32], (1, 2), 2 * BLOCK as u64).fill_bytes(&mut tail);
        assert_eq!(&whole[2 * BLOCK..], &tail[..]);
    }
}
