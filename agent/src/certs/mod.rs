//! The agent's side of erasure certificates: the signing key (created on first use, 0600,
//! zeroized in memory), writing certificates into the chain directory, and the `certificate`
//! commands auditors run. The certificate format and its checks are `kenko-cert`.

pub mod cli;

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
    #[error(
        "no font to render the PDF with: tried {}; install the Debian package {FONT_PACKAGE} \
         (apt-get install {FONT_PACKAGE}), or name a TrueType/OpenType font covering Japanese \
         with --font FILE or KENKO_RENDER_FONT",
        tried.iter().map(|(p, why)| format!("{} ({why})", p.display())).collect::<Vec<_>>().join(", ")
    )]
    FontMissing { tried: Vec<(PathBuf, String)> },
    #[error("{path}: {source}")]
    Pdf {
        path: PathBuf,
        #[source]
        source: kenko_cert::pdf::PdfError,
    },
}

impl CertCommandError {
    pub fn reason(&self) -> &'static str {
        match self {
            CertCommandError::Io { .. } => "certificate_unreadable",
            CertCommandError::Invalid { source, .. } => source.reason(),
            CertCommandError::Key(k) => k.reason(),
            CertCommandError::PublicKey(_) => "certificate_public_key_invalid",
            CertCommandError::FontMissing { .. } => "render_font_missing",
            CertCommandError::Pdf { source, .. } => source.reason(),
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
    // Details the verification would refuse are refused before anything is signed.
    kenko_cert::check_person(&person).map_err(|source| CertCommandError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cert: Certificate = verified.certificate;
    let now = kenko_intake::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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

/// The Debian package that provides the first default font.
pub const FONT_PACKAGE: &str = "fonts-ipafont-gothic";

/// Where `certificate render --format pdf` looks for a font covering Japanese when neither
/// `--font` nor `KENKO_RENDER_FONT` names one; the first that exists is used (IPAGothic from
/// fonts-ipafont-gothic, the Debian alternative, Noto Sans CJK JP from fonts-noto-cjk).
pub const DEFAULT_FONTS: &[&str] = &[
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
];

/// What `certificate render` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderFormat {
    Html,
    Pdf,
}

impl RenderFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RenderFormat::Html => "html",
            RenderFormat::Pdf => "pdf",
        }
    }
}

/// Reads the font for PDF rendering: `explicit` (from `--font` or `KENKO_RENDER_FONT`) if
/// given, else the first of `candidates` that exists. Fails naming every path tried.
pub fn load_font(
    explicit: Option<&Path>,
    candidates: &[&str],
) -> Result<(PathBuf, Vec<u8>), CertCommandError> {
    let paths: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => candidates.iter().map(PathBuf::from).collect(),
    };
    let mut tried = Vec::new();
    for path in paths {
        match std::fs::read(&path) {
            Ok(bytes) => return Ok((path, bytes)),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "not found".to_string()
                } else {
                    e.to_string()
                };
                tried.push((path, why));
            }
        }
    }
    Err(CertCommandError::FontMissing { tried })
}

/// Renders a certificate file for people, only once it verifies: HTML, or PDF drawn with
/// `font` (or the first of [`DEFAULT_FONTS`]). Writes atomically to `out` (default: the
/// certificate's path with `.html` or `.pdf`) and returns where.
pub fn render_file(
    file: &Path,
    format: RenderFormat,
    out: Option<&Path>,
    font: Option<&Path>,
) -> Result<PathBuf, CertCommandError> {
    let verified = verify_file(file, None)?;
    let bytes = match format {
        RenderFormat::Html => kenko_cert::render::html(&verified).into_bytes(),
        RenderFormat::Pdf => {
            let (_, font) = load_font(font, DEFAULT_FONTS)?;
            kenko_cert::pdf::pdf(&verified, &font).map_err(|source| CertCommandError::Pdf {
                path: file.to_path_buf(),
                source,
            })?
        }
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| file.with_extension(format.extension()));
    fsutil::atomic_write(&out, &bytes).map_err(io(&out))?;
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_font_names_every_path_tried_and_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.ttf");
        let b = dir.path().join("b.ttc");
        let candidates = [a.to_str().unwrap(), b.to_str().unwrap()];
        let e = load_font(None, &candidates).unwrap_err();
        assert_eq!(e.reason(), "render_font_missing");
        let message = e.to_string();
        for p in candidates {
            assert!(message.contains(&format!("{p} (not found)")), "{message}");
        }
        assert!(message.contains("fonts-ipafont-gothic") && message.contains("--font"));

        // The first that exists wins; an explicit font is the only one tried.
        std::fs::write(&b, b"font bytes").unwrap();
        let (path, bytes) = load_font(None, &candidates).unwrap();
        assert_eq!((path, bytes), (b.clone(), b"font bytes".to_vec()));
        let e = load_font(Some(&a), &candidates).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("a.ttf") && !message.contains("b.ttc"),
            "{message}"
        );
    }
}
