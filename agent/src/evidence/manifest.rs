//! The manifest: every file of the bundle with its SHA-256 and size, in the certificates'
//! canonical JSON (`kenko_cert::canonical_bytes`), signed with Ed25519 the way a certificate is
//! signed (the signature's key and time are covered, its value empty while signing), and
//! `evidence verify`: the signature, then every file, then nothing added.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use kenko_cert::{canonical_bytes, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EvidenceError, FORMAT, MANIFEST};

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the bundle, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The period as the manifest records it (JST dates, both included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodRef {
    pub from: String,
    pub to: String,
    pub time_zone: String,
}

/// The signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub period: PeriodRef,
    /// RFC 3339 UTC.
    pub built_at: String,
    pub agent_version: String,
    /// Sorted by path.
    pub files: Vec<FileEntry>,
    pub signature: Option<Signature>,
}

impl Manifest {
    /// The bytes signed: the canonical form with the signature's key and time but an empty
    /// value (as `kenko_cert::Certificate::signing_bytes`).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        if let Some(s) = m.signature.as_mut() {
            s.value.clear();
        }
        canonical_bytes(&m)
    }

    pub fn sign(&mut self, key: &SigningKey, signed_at: &str) {
        self.signature = Some(Signature {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signed_at: signed_at.to_string(),
            value: String::new(),
        });
        let sig = key.sign(&self.signing_bytes());
        if let Some(s) = self.signature.as_mut() {
            s.value = hex::encode(sig.to_bytes());
        }
    }

    pub fn to_file_bytes(&self) -> Vec<u8> {
        canonical_bytes(self)
    }
}

/// SHA-256 (hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file under `dir` (relative, `/`-separated, sorted); anything else (a
/// symbolic link, a device) is returned in the second list.
pub fn walk(dir: &Path) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    let mut other = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push((e.path(), rel));
            } else if t.is_file() {
                files.push(rel);
            } else {
                other.push(rel);
            }
        }
    }
    files.sort();
    other.sort();
    Ok((files, other))
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    pub signer: String,
    /// SHA-256 of `manifest.json`.
    pub sha256: String,
}

fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p != MANIFEST
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

/// Verifies a bundle offline: the manifest is canonical and signed (by `expected_signer`
/// when given), every listed file has its size and SHA-256, and no file was added.
pub fn verify(bundle: &Path, expected_signer: Option<&str>) -> Result<Verified, EvidenceError> {
    let b = bundle.to_path_buf();
    let manifest_err = |message: String| EvidenceError::Manifest {
        bundle: b.clone(),
        message,
    };
    if !bundle.is_dir() {
        return Err(EvidenceError::Unreadable {
            bundle: b.clone(),
            message: "not a directory (expected the folder `evidence build` wrote)".into(),
        });
    }
    let bytes = match std::fs::read(bundle.join(MANIFEST)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(manifest_err(
                "missing: this is not an evidence pack, or its manifest was removed".into(),
            ))
        }
        Err(e) => return Err(manifest_err(format!("cannot be read ({e})"))),
    };
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| manifest_err(format!("not a manifest ({e}): a byte of it was changed")))?;
    if m.to_file_bytes() != bytes {
        return Err(manifest_err(
            "not in canonical form: it was edited after signing".into(),
        ));
    }
    if m.format != FORMAT {
        return Err(manifest_err(format!(
            "unknown format {:?}; expected {FORMAT}",
            m.format
        )));
    }
    let sig = m
        .signature
        .as_ref()
        .ok_or_else(|| manifest_err("not signed".into()))?;
    if let Some(expected) = expected_signer {
        if !sig.public_key.eq_ignore_ascii_case(expected) {
            return Err(EvidenceError::WrongSigner {
                bundle: b.clone(),
                expected: expected.to_string(),
                found: sig.public_key.clone(),
            });
        }
    }
    let key: Option<VerifyingKey> = hex::decode(&sig.public_key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .and_then(|k| VerifyingKey::from_bytes(&k).ok());
    let value: Option<[u8; 64]> = hex::decode(&sig.value).ok().and_then(|v| v.try_into().ok());
    let ok = match (key, value) {
        (Some(key), Some(value)) => key
            .verify_strict(
                &m.signing_bytes(),
                &ed25519_dalek::Signature::from_bytes(&value),
            )
            .is_ok(),
        _ => false,
    };
    if !ok {
        return Err(EvidenceError::Signature { bundle: b.clone() });
    }
    // The signed list itself: safe, sorted, unique paths.
    let mut seen = BTreeSet::new();
    for f in &m.files {
        if !safe_path(&f.path) || !seen.insert(f.path.as_str()) {
            return Err(manifest_err(format!(
                "lists an unusable or repeated path {:?}",
                f.path
            )));
        }
    }
    for f in &m.files {
        let p: PathBuf = bundle.join(&f.path);
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => {
                return Err(EvidenceError::Tampered {
                    bundle: b.clone(),
                    file: f.path.clone(),
                    message: "is no longer a regular file".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EvidenceError::Missing {
                    bundle: b.clone(),
                    file: f.path.clone(),
                })
            }
            Err(e) => {
                return Err(EvidenceError::Unreadable {
                    bundle: p,
                    message: e.to_string(),
                })
            }
        };
        if meta.len() != f.size {
            return Err(EvidenceError::Tampered {
                bundle: b.clone(),
                file: f.path.clone(),
                message: format!(
                    "{} bytes, the manifest says {}: the file was changed",
                    meta.len(),
                    f.size
                ),
            });
        }
        let content = std::fs::read(&p).map_err(|e| EvidenceError::Unreadable {
            bundle: p.clone(),
            message: e.to_string(),
        })?;
        if sha256_hex(&content) != f.sha256 {
            return Err(EvidenceError::Tampered {
                bundle: b.clone(),
                file: f.path.clone(),
                message: "SHA-256 differs from the manifest: the file was changed".into(),
            });
        }
    }
    let (files, other) = walk(bundle).map_err(|e| EvidenceError::Unreadable {
        bundle: b.clone(),
        message: e.to_string(),
    })?;
    if let Some(extra) = files
        .iter()
        .chain(other.iter())
        .find(|f| f.as_str() != MANIFEST && !seen.contains(f.as_str()))
    {
        return Err(EvidenceError::Added {
            bundle: b.clone(),
            file: extra.clone(),
        });
    }
    Ok(Verified {
        signer: sig.public_key.clone(),
        sha256: sha256_hex(&bytes),
        manifest: m,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write fixtures directly")]
mod tests {
    use super::*;

    fn bundle() -> (tempfile::TempDir, SigningKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/one.json"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("summary.html"), b"<p>x</p>\n").unwrap();
        let mut m = Manifest {
            format: FORMAT.into(),
            period: PeriodRef {
                from: "2026-01-01".into(),
                to: "2026-12-31".into(),
                time_zone: "Asia/Tokyo".into(),
            },
            built_at: "2026-12-07T00:00:00Z".into(),
            agent_version: "0".into(),
            files: ["a/one.json", "summary.html"]
                .iter()
                .map(|p| {
                    let b = std::fs::read(dir.path().join(p)).unwrap();
                    FileEntry {
                        path: p.to_string(),
                        sha256: sha256_hex(&b),
                        size: b.len() as u64,
                    }
                })
                .collect(),
            signature: None,
        };
        m.sign(&key, "2026-12-07T00:00:00Z");
        std::fs::write(dir.path().join(MANIFEST), m.to_file_bytes()).unwrap();
        (dir, key)
    }

    #[test]
    fn a_signed_bundle_verifies_and_each_change_has_its_reason() {
        let (dir, key) = bundle();
        let public = hex::encode(key.verifying_key().as_bytes());
        let v = verify(dir.path(), Some(&public)).unwrap();
        assert_eq!(v.manifest.files.len(), 2);
        let other = hex::encode(SigningKey::from_bytes(&[8; 32]).verifying_key().as_bytes());
        let e = verify(dir.path(), Some(&other)).unwrap_err();
        assert_eq!(e.reason(), "evidence_wrong_signer");

        std::fs::write(dir.path().join("extra.txt"), b"x").unwrap();
        let e = verify(dir.path(), None).unwrap_err();
        assert_eq!(e.reason(), "evidence_file_added");
        assert!(e.to_string().contains("extra.txt"), "{e}");
        std::fs::remove_file(dir.path().join("extra.txt")).unwrap();

        std::fs::write(dir.path().join("a/one.json"), b"{]\n").unwrap();
        let e = verify(dir.path(), None).unwrap_err();
        assert_eq!(e.reason(), "evidence_tampered");
        assert!(e.to_string().contains("a/one.json"), "{e}");
        std::fs::remove_file(dir.path().join("a/one.json")).unwrap();
        let e = verify(dir.path(), None).unwrap_err();
        assert_eq!(e.reason(), "evidence_file_missing");

        // A manifest re-signed after a change, by the key inside it, is still that key's:
        // only the expected key (--public-key) tells it from kenko's.
        let mut m: Manifest =
            serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST)).unwrap()).unwrap();
        m.built_at = "2026-12-08T00:00:00Z".into();
        std::fs::write(dir.path().join(MANIFEST), m.to_file_bytes()).unwrap();
        let e = verify(dir.path(), None).unwrap_err();
        assert_eq!(e.reason(), "evidence_signature_invalid");
        assert!(e.to_string().contains(MANIFEST), "{e}");
    }

    #[test]
    fn a_manifest_naming_a_path_outside_the_bundle_is_refused() {
        for p in ["../x", "/etc/passwd", "a//b", "manifest.json", ""] {
            assert!(!safe_path(p), "{p}");
        }
        assert!(safe_path("certificates/job-1.json"));
    }
}
