//! The one certificate issuer. Every certificate a signer issues is chained to the one
//! before it (its sequence number and the SHA-256 of the previous file), so reading the
//! chain's tail, signing and writing the new file is one critical section: an exclusive lock
//! on the certificate folder (`flock` on `.issuer.lock`, which excludes other threads of this
//! process as well as other processes, such as a CLI `erase` beside `run --cluster`) is held
//! across the three. The lock file sits beside the folder (`certificates.lock`), so the folder
//! holds certificates only. Without it, two jobs finishing together take the same sequence number and
//! the same previous hash, and the chain forks.

use std::path::{Path, PathBuf};

use kenko_cert::Certificate;
use sha2::{Digest, Sha256};

use super::{io, now, sanitize, EraseError, Places};
use crate::fsutil;

/// The lock file beside a certificate folder.
pub fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    dir.with_file_name(name)
}

/// The signer's public key (hex), the key made first if there is none yet, under the chain's
/// lock like every issue. The agent logs it at start-up: the operator registers it in the
/// trusted signers (README, runbooks/certificate-invalid.md).
pub fn public_key(places: &Places) -> Result<String, EraseError> {
    let _lock = lock(&places.certificates)?;
    let key = crate::certs::signing_key(&places.signing_key)?;
    Ok(crate::certs::public_key_hex(&key))
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, EraseError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = lock_path(dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
        EraseError::Io {
            path: lock_path.clone(),
            message: format!("cannot lock the certificate chain: {errno}"),
        }
    })
}

/// Chains, signs and writes `cert` (its `sequence` and `previous_sha256` are set here) as
/// `SEQUENCE-JOB.json` in the signer's folder; returns the path and the signed certificate.
pub fn issue(places: &Places, mut cert: Certificate) -> Result<(PathBuf, Certificate), EraseError> {
    let dir = &places.certificates;
    // Released when `_lock` drops, after the rename below is durable.
    let _lock = lock(dir)?;
    // The key is read (or made, the first time) inside the lock too: two first certificates
    // must not make two keys.
    let key = crate::certs::signing_key(&places.signing_key)?;
    let (sequence, previous) = chain_tail(dir)?;
    cert.sequence = sequence;
    cert.previous_sha256 = previous;
    cert.sign(&key, &now());
    let path = dir.join(format!("{sequence:06}-{}.json", sanitize(&cert.job_id)));
    fsutil::atomic_write(&path, &cert.to_file_bytes()).map_err(io(&path))?;
    Ok((path, cert))
}

/// The next sequence number and the previous certificate's SHA-256 in the chain folder.
pub fn chain_tail(dir: &Path) -> Result<(u64, Option<String>), EraseError> {
    let mut last: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let Some(n) = p
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".json"))
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if last.as_ref().is_none_or(|(m, _)| n > *m) {
            last = Some((n, p));
        }
    }
    match last {
        None => Ok((1, None)),
        Some((n, p)) => {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            Ok((n + 1, Some(hex::encode(Sha256::digest(&bytes)))))
        }
    }
}
