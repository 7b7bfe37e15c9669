//! The agent's side of erasure certificates: the signing key (created on first use, 0600,
//! zeroized in memory), writing certificates into the chain directory, and the `certificate`
//! commands auditors run. The certificate format and its checks are `kenko-cert`.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use kenko_cert::{CertError, Certificate, Person};
use sha2::{Digest, Sha256};

use crate::crypto::{load_or_create_secret, KeyError};
use crate::fsutil;

#[derive(Debug, thiserror::Error)]
pub enum CertCommandError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: CertError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}: expected a 64-character hex Ed25519 public key, or a file holding one")]
    PublicKey(String),
}

impl CertCommandError {
    pub fn reason(&self) -> &'static str {
        match self {
            CertCommandError::Io { .. } => "certificate_unreadable",
            CertCommandError::Invalid { source, .. } => source.reason(),
            CertCommandError::Key(k) => k.reason(),
            CertCommandError::PublicKey(_) => "certificate_public_key_invalid",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertCommandError + '_ {
    move |e| CertCommandError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Loads (or creates) an Ed25519 signing key from a 32-byte seed file. `SigningKey` zeroizes
/// its secret when dropped; the seed buffer is `Zeroizing`.
pub fn signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let seed = load_or_create_secret(path)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The hex public key of a signing key.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// Accepts a public key as hex, or as a path to a file holding the hex.
pub fn parse_public_key(arg: &str) -> Result<String, CertCommandError> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(io(Path::new(arg)))?
    } else {
        arg.to_string()
    };
    let hex_key = text.trim().to_ascii_lowercase();
    if hex_key.len() == 64 && hex_key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex_key)
    } else {
        Err(CertCommandError::PublicKey(arg.to_string()))
    }
}

/// Verifies one certificate file.
pub fn verify_file(
    path: &Path,
    expected_signer: Option<&str>,
) -> Result<kenko_cert::Verified, CertCommandError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    kenko_cert::verify(&bytes, expected_signer).map_err(|source| CertCommandError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Verifies every `*.json` certificate in a directory as chains per signer.
pub fn verify_dir(
    dir: &Path,
    heads: &[(String, String)],
) -> Result<Vec<(String, usize)>, CertCommandError> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            files.push((p.display().to_string(), bytes));
        }
    }
    files.sort();
    kenko_cert::verify_chain(&files, heads).map_err(|(name, source)| CertCommandError::Invalid {
        path: PathBuf::from(name),
        source,
    })
}

/// Adds the second person's validation to a signed certificate, in place (atomically).
pub fn countersign_file(
    path: &Path,
    person: Person,
    key: &SigningKey,
) -> Result<kenko_cert::Verified, CertCommandError> {
    let verified = verify_file(path, None)?;
    let mut cert: Certificate = verified.certificate;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    cert.countersign(person, key, &now)
        .map_err(|source| CertCommandError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
    fsutil::atomic_write(path, &cert.to_file_bytes()).map_err(io(path))?;
    verify_file(path, None)
}

/// SHA-256 (hex) of a file's bytes, as `previous_sha256` records it.
pub fn file_sha256(path: &Path) -> Result<String, CertCommandError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
