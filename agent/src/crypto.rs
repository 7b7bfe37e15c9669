//! The record store's data key: AES-256-GCM encryption of My Numbers and HMAC-SHA-256 tokens
//! for matching names, addresses and My Numbers against the register without keeping them.
//!
//! One 32-byte key file (0600, created on first use) is the root of both; destroying every
//! copy of it (crypto-erase: a `datakey:NAME` erasure target) makes every stored
//! ciphertext unreadable and every token unlinkable. Encryption and token keys are derived
//! from it with HMAC so the two uses never share a key.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use kenko_intake::{Domain, Token, Tokenizer};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Ciphertext layout version (first byte of every stored ciphertext).
const CT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("data key {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("data key {path}: expected 32 bytes, found {len}")]
    Length { path: PathBuf, len: usize },
    #[error("data key {path}: permissions {mode:o} let others read it; expected 0600 (or 0400/0440 for a key mounted from a Secret)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("ciphertext was made under another key or has been altered")]
    Decrypt,
}

impl KeyError {
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Io { .. } => "datakey_unreadable",
            KeyError::Length { .. } => "datakey_malformed",
            KeyError::Permissions { .. } => "datakey_permissions",
            KeyError::Decrypt => "datakey_mismatch",
        }
    }
}

/// The data key and the keys derived from it. Key material is zeroized on drop (the AES key
/// schedule by `aes-gcm`'s `zeroize` feature, the raw and derived bytes by `Zeroizing`).
pub struct DataKey {
    id: [u8; 8],
    aead: Aes256Gcm,
    mac: HmacSha256,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id_hex())
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl DataKey {
    /// Loads the key file, creating it (32 random bytes, mode 0600, synced) when absent.
    pub fn load_or_create(path: &Path) -> Result<DataKey, KeyError> {
        let raw = load_or_create_secret(path)?;
        Ok(DataKey::from_bytes(&raw))
    }

    /// Builds the key from raw bytes (tests and benchmarks).
    pub fn from_bytes(raw: &[u8; 32]) -> DataKey {
        let derive = |label: &[u8]| -> Zeroizing<[u8; 32]> {
            let mut m = <HmacSha256 as Mac>::new_from_slice(raw).expect("any key length");
            m.update(label);
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(&m.finalize().into_bytes());
            out
        };
        let enc = derive(b"kenko/v1/record-encryption");
        let mac = derive(b"kenko/v1/matching-token");
        let id_full = Sha256::digest([&b"kenko/v1/key-id"[..], &raw[..]].concat());
        let mut id = [0u8; 8];
        id.copy_from_slice(&id_full[..8]);
        DataKey {
            id,
            aead: Aes256Gcm::new_from_slice(&enc[..]).expect("32-byte key"),
            mac: <HmacSha256 as Mac>::new_from_slice(&mac[..]).expect("any key length"),
        }
    }

    /// A public identifier of the key (not secret): recorded with ciphertexts and on erasure
    /// certificates.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Encrypts a My Number for one resident: `version | key id | nonce | ciphertext+tag`.
    /// The resident number is bound as associated data, so a ciphertext moved to another
    /// row does not decrypt.
    pub fn seal(&self, resident_no: i64, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = resident_no.to_be_bytes();
        let ct = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = Vec::with_capacity(1 + 8 + 12 + ct.len());
        out.push(CT_VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// [`seal`](Self::seal) into a reused buffer (the intake's hot path).
    pub fn seal_into(&self, resident_no: i64, plaintext: &[u8], out: &mut Vec<u8>) {
        use aes_gcm::aead::AeadInPlace;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        out.clear();
        out.push(CT_VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &resident_no.to_be_bytes(),
                &mut out[start..],
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        out.extend_from_slice(&tag);
    }

    /// Decrypts what [`seal`](Self::seal) produced.
    pub fn open(&self, resident_no: i64, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < 1 + 8 + 12 + 16 || sealed[0] != CT_VERSION || sealed[1..9] != self.id {
            return Err(KeyError::Decrypt);
        }
        let aad = resident_no.to_be_bytes();
        self.aead
            .decrypt(
                Nonce::from_slice(&sealed[9..21]),
                Payload {
                    msg: &sealed[21..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Decrypt)
    }
}

/// Reads a 32-byte secret key file, or creates one (random, mode 0600, written under a
/// temporary name, synced, renamed) when it does not exist. Refuses a file others can read or
/// its group can change; a read-only file its group may read (0440: a key mounted from a
/// Kubernetes Secret, group-owned by the pod's `fsGroup`) is accepted.
pub fn load_or_create_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let group_read_of_read_only = mode & 0o070 == 0o040 && mode & 0o200 == 0;
            if mode & 0o007 != 0 || (mode & 0o070 != 0 && !group_read_of_read_only) {
                return Err(KeyError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| io_err(path, e))?);
            if bytes.len() != 32 {
                return Err(KeyError::Length {
                    path: path.to_path_buf(),
                    len: bytes.len(),
                });
            }
            let mut raw = Zeroizing::new([0u8; 32]);
            raw.copy_from_slice(&bytes);
            Ok(raw)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            let mut raw = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(&mut raw[..]).map_err(|e| io_err(path, e))?;
            // Written whole under a name of its own, then linked into place: a crash never
            // leaves a short key file, and of two processes creating the key at once (two
            // jobs, two agents starting on a fresh data directory) exactly one key wins and
            // the other process uses it, never a key of its own that is then overwritten.
            let mut nonce = [0u8; 8];
            getrandom::getrandom(&mut nonce).map_err(|e| io_err(path, e))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let tmp = dir.join(format!(".{name}.{}.new", hex::encode(nonce)));
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| {
                    f.write_all(&raw[..])?;
                    f.sync_all()
                });
            let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    crate::fsutil::sync_dir(dir).map_err(|e| io_err(dir, e))?;
                    Ok(raw)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(io_err(path, e)),
            }
        }
        Err(e) => Err(io_err(path, e)),
    }
}

impl Tokenizer for DataKey {
    fn token(&self, domain: Domain, normalized: &[u8]) -> Token {
        let mut m = self.mac.clone();
        m.update(&[match domain {
            Domain::MyNumber => 1u8,
            Domain::Name => 2,
            Domain::Address => 3,
            Domain::BirthDate => 4,
        }]);
        m.update(normalized);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; 16];
        t.copy_from_slice(&full[..16]);
        t
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn processes_creating_a_key_at_once_all_get_the_one_that_is_on_disk() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys/signing.key");
            let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| *load_or_create_secret(&path).unwrap()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let on_disk = std::fs::read(&path).unwrap();
            assert!(keys.iter().all(|k| k[..] == on_disk[..]));
            assert_eq!(
                std::fs::read_dir(dir.path().join("keys")).unwrap().count(),
                1
            );
        }
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_resident() {
        let k = DataKey::from_bytes(&[7u8; 32]);
        let ct = k.seal(42, b"123456789018");
        assert_eq!(&k.open(42, &ct).unwrap()[..], b"123456789018");
        let mut reused = vec![0xAA; 80];
        k.seal_into(42, b"123456789018", &mut reused);
        assert_eq!(reused.len(), ct.len());
        assert_eq!(&k.open(42, &reused).unwrap()[..], b"123456789018");
        assert!(matches!(k.open(43, &ct), Err(KeyError::Decrypt)));
        let other = DataKey::from_bytes(&[8u8; 32]);
        assert!(matches!(other.open(42, &ct), Err(KeyError::Decrypt)));
        let mut tampered = ct.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(k.open(42, &tampered), Err(KeyError::Decrypt)));
    }

    #[test]
    fn tokens_are_keyed_and_separated_by_domain() {
        let k = DataKey::from_bytes(&[7u8; 32]);
        let other = DataKey::from_bytes(&[9u8; 32]);
        let a = k.token(Domain::Name, "山田太郎".as_bytes());
        assert_eq!(a, k.token(Domain::Name, "山田太郎".as_bytes()));
        assert_ne!(a, k.token(Domain::Address, "山田太郎".as_bytes()));
        assert_ne!(a, other.token(Domain::Name, "山田太郎".as_bytes()));
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/records.key");
        let k1 = DataKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = DataKey::load_or_create(&path).unwrap();
        assert_eq!(k1.id_hex(), k2.id_hex());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            DataKey::load_or_create(&path),
            Err(KeyError::Permissions { .. })
        ));
        for refused in [0o640, 0o460, 0o444] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(refused)).unwrap();
            assert!(
                matches!(
                    DataKey::load_or_create(&path),
                    Err(KeyError::Permissions { .. })
                ),
                "{refused:o}"
            );
        }
        // A key mounted from a Secret: read-only, its group the pod's fsGroup.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        assert_eq!(
            DataKey::load_or_create(&path).unwrap().id_hex(),
            k1.id_hex()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            DataKey::load_or_create(&path),
            Err(KeyError::Length { len: 5, .. })
        ));
    }
}
