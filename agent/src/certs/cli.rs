//! `kenko-agent certificate verify|verify-chain|countersign|render|finalize|public-key`: the
//! commands' arguments and bodies, beside the certificate checks they run. `main.rs` only
//! dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::certs;
use crate::config::Config;
use crate::erase::EraseContext;

#[derive(Debug, clap::Subcommand)]
pub enum CertificateCommand {
    /// Check a certificate file: canonical form, signature, validation, every target verified.
    /// Exits non-zero with the reason on any change to any byte.
    Verify {
        file: PathBuf,
        /// The signer's public key (hex, or a file holding it) the certificate must carry.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Check every certificate in a directory as chains per signer (a removed, reordered or
    /// altered certificate is found).
    VerifyChain {
        dir: PathBuf,
        /// The last certificate's SHA-256 expected for a signer (finds a removed tail).
        #[arg(long = "head", value_name = "PUBLIC_KEY=SHA256")]
        heads: Vec<String>,
    },
    /// Add the second person's validation (Appendix G), signed with their own key.
    Countersign {
        file: PathBuf,
        /// The validator's key file (created, 0600, if it does not exist).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value = "")]
        organization: String,
        #[arg(long, default_value = "")]
        location: String,
        #[arg(long, default_value = "")]
        phone: String,
    },
    /// Render a verified certificate for people: HTML, or a printable A4 PDF (Japanese text
    /// as written, extractable). Refuses a certificate that does not verify.
    Render {
        file: PathBuf,
        #[arg(long, default_value = "html", value_parser = ["html", "pdf"])]
        format: String,
        /// Where to write it [default: FILE with .html or .pdf].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The font for the PDF: TrueType/OpenType (or a collection, first font) covering
        /// Japanese [default: the first that exists of IPAGothic (Debian package
        /// fonts-ipafont-gothic), fonts-japanese-gothic.ttf, Noto Sans CJK JP].
        #[arg(long, env = "KENKO_RENDER_FONT")]
        font: Option<PathBuf>,
    },
    /// Once KMS has deleted the keys a certificate scheduled for deletion, issue the
    /// certificate that confirms it (exits non-zero while they are still pending).
    Finalize { file: PathBuf },
    /// Print (or write) this agent's certificate-signing public key, for auditors.
    PublicKey {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs one `kenko-agent certificate` command; an invalid certificate exits 1 with its reason.
pub fn certificate(command: CertificateCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let report = |e: certs::CertCommandError| {
        eprintln!("INVALID: {e} [reason: {}]", e.reason());
        Ok(ExitCode::FAILURE)
    };
    match command {
        CertificateCommand::Verify { file, public_key } => {
            let expected = public_key
                .as_deref()
                .map(certs::parse_public_key)
                .transpose()?;
            match certs::verify_file(&file, expected.as_deref()) {
                Ok(v) => {
                    let c = &v.certificate;
                    println!(
                        "OK: {} is genuine and complete: job {}, sequence {}, {} target(s), signed by {}{}",
                        file.display(),
                        c.job_id,
                        c.sequence,
                        c.targets.len(),
                        v.signer,
                        v.validated_by
                            .map(|k| format!(", validated by {k}"))
                            .unwrap_or_else(|| ", not yet validated by a second person".into())
                    );
                    println!("sha256 {}", v.sha256);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::VerifyChain { dir, heads } => {
            let heads = heads
                .iter()
                .map(|h| {
                    h.split_once('=')
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
                        .ok_or_else(|| anyhow::anyhow!("--head {h:?}: expected PUBLIC_KEY=SHA256"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            match certs::verify_dir(&dir, &heads) {
                Ok(chains) => {
                    for (signer, n) in chains {
                        println!("OK: chain of {signer}: {n} certificate(s), unbroken");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::Countersign {
            file,
            key,
            name,
            title,
            organization,
            location,
            phone,
        } => {
            let key = certs::signing_key(&key)?;
            let person = kenko_cert::Person {
                name,
                title,
                organization,
                location,
                phone,
            };
            match certs::countersign_file(&file, person, &key) {
                Ok(v) => {
                    println!("validated: {} (sha256 {})", file.display(), v.sha256);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::Render {
            file,
            format,
            out,
            font,
        } => {
            let format = match format.as_str() {
                "pdf" => certs::RenderFormat::Pdf,
                _ => certs::RenderFormat::Html,
            };
            match certs::render_file(&file, format, out.as_deref(), font.as_deref()) {
                Ok(out) => {
                    println!("{}", out.display());
                    Ok(ExitCode::SUCCESS)
                }
                // The certificate does not verify.
                Err(e @ certs::CertCommandError::Invalid { .. }) => report(e),
                // A file that cannot be read or written, no usable font, or no PDF.
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CertificateCommand::Finalize { file } => {
            let ctx = EraseContext::from_config(config, 7);
            match crate::erase::finalize(&file, &ctx) {
                Ok(o) => {
                    println!("finalized: {}", o.certificate_path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CertificateCommand::PublicKey { out } => {
            let key = certs::signing_key(&config.signing_key_file)?;
            let hex_key = certs::public_key_hex(&key);
            if let Some(out) = out {
                crate::fsutil::atomic_write(&out, format!("{hex_key}\n").as_bytes())?;
            }
            println!("{hex_key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
