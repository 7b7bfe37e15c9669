//! Whether an overwrite can reach a file's data where it lies. On a copy-on-write file system
//! (Btrfs, ZFS, bcachefs) every write goes to new blocks and the old ones keep the data until
//! reused, so Clear by overwrite cannot be claimed there at all; on one with reflinks (XFS,
//! Btrfs) a file whose blocks are shared with a copy or a snapshot keeps its data in the copy's
//! blocks whatever is written to it. The first refuses the job, the second makes the file a
//! blocked item of the certificate.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::{EraseError, EraseTarget};

/// `statfs` magic numbers of the copy-on-write file systems (linux/magic.h).
const COPY_ON_WRITE: &[(i64, &str)] = &[
    (0x9123_683E, "Btrfs"),
    (0x2FC1_2FC1, "ZFS"),
    (0xCA45_1A4E, "bcachefs"),
];

/// Refuses an overwrite target on a copy-on-write file system, before anything is touched.
pub(super) fn refuse_copy_on_write(path: &Path, target: &EraseTarget) -> Result<(), EraseError> {
    let fs = nix::sys::statfs::statfs(path).map_err(|e| EraseError::Io {
        path: path.to_path_buf(),
        message: e.desc().to_string(),
    })?;
    #[allow(
        clippy::unnecessary_cast,
        reason = "the magic's type differs between libc targets"
    )]
    let magic = fs.filesystem_type().0 as i64;
    match COPY_ON_WRITE.iter().find(|(m, _)| *m == magic) {
        Some((_, name)) => Err(EraseError::CopyOnWrite {
            target: target.to_string(),
            filesystem: (*name).to_string(),
        }),
        None => Ok(()),
    }
}

/// One extent as FIEMAP reports it (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct Extent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

const EXTENTS: usize = 64;

/// `struct fiemap` followed by room for [`EXTENTS`] extents.
#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [Extent; EXTENTS],
}

const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

// FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap): the size in the request is the header's (32
// bytes), not the buffer's, so the request code is given as the kernel defines it.
nix::ioctl_readwrite_bad!(fs_ioc_fiemap, 0xC020_660B, Fiemap);

/// Whether any block of the file is shared with another file or a snapshot. A file system
/// without FIEMAP (tmpfs) has no reflinks: `false`.
pub(super) fn shares_blocks(path: &Path) -> std::io::Result<bool> {
    // O_NOFOLLOW: planning reads the entry itself, never what a link points to.
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path)?
    };
    shares_blocks_of(&f)
}

fn shares_blocks_of(f: &File) -> std::io::Result<bool> {
    let empty = Extent {
        logical: 0,
        physical: 0,
        length: 0,
        reserved64: [0; 2],
        flags: 0,
        reserved: [0; 3],
    };
    let mut start = 0u64;
    loop {
        let mut map = Box::new(Fiemap {
            start,
            length: u64::MAX - start,
            flags: FIEMAP_FLAG_SYNC,
            mapped_extents: 0,
            extent_count: EXTENTS as u32,
            reserved: 0,
            extents: [empty; EXTENTS],
        });
        // SAFETY: FS_IOC_FIEMAP reads the header and writes at most `extent_count` extents
        // into `extents`, all inside the boxed `Fiemap`, which lives across the call; the
        // descriptor is open.
        #[allow(unsafe_code)]
        let r = unsafe { fs_ioc_fiemap(f.as_raw_fd(), &mut *map) };
        match r {
            Ok(_) => {}
            Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOTTY) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let n = (map.mapped_extents as usize).min(EXTENTS);
        if n == 0 {
            return Ok(false);
        }
        let got = &map.extents[..n];
        if got.iter().any(|e| e.flags & FIEMAP_EXTENT_SHARED != 0) {
            return Ok(true);
        }
        let last = got[n - 1];
        if last.flags & FIEMAP_EXTENT_LAST != 0 {
            return Ok(false);
        }
        start = last.logical + last.length;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write fixtures")]
mod tests {
    use super::*;

    #[test]
    fn the_fiemap_layout_is_the_kernels() {
        assert_eq!(std::mem::size_of::<Extent>(), 56);
        assert_eq!(std::mem::size_of::<Fiemap>(), 32 + 56 * EXTENTS);
    }

    #[test]
    fn a_file_of_its_own_shares_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, vec![7u8; 1 << 20]).unwrap();
        assert!(!shares_blocks(&p).unwrap());
        refuse_copy_on_write(
            dir.path(),
            &EraseTarget::Dir {
                path: dir.path().display().to_string(),
            },
        )
        .unwrap();
    }
}
