//! The auditor's evidence pack (維持管理点検・外部監査): one folder holding a period's evidence
//! that kenko has on this machine, with a manifest (every file's SHA-256 and size) signed by the
//! agent's Ed25519 certificate-signing key in the certificates' canonical JSON, and a Japanese
//! summary (HTML and PDF) an auditor reads first.
//!
//! - [`period`]: the period (a year, or two dates, Asia/Tokyo);
//! - [`build`]: what goes in (certificates and their chain, residency reports, alerts and the
//!   tamper-evidence chain, exports and prints per staff id and month, retirements, the intake
//!   ledger per month) and the summary;
//! - [`manifest`]: the manifest, its signature, and `evidence verify`;
//! - [`cli`]: `kenko-agent evidence build|verify`.
//!
//! Nothing personal goes in: counts, staff ids, hashes, times and rule names only. The bundle's
//! certificates are copied byte for byte (they are the signed evidence); they name the staff
//! member who erased, never a resident.

pub mod build;
pub mod cli;
pub mod manifest;
pub mod period;
pub mod summary;

use std::path::PathBuf;

/// The name of the signed manifest at the bundle's root.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's format.
pub const FORMAT: &str = "kenko-evidence-pack/1";
/// The runbook of the evidence pack itself.
pub const RUNBOOK: &str = "runbooks/evidence-pack.md";

/// Why an evidence pack could not be built or does not verify. Each has a stable `reason()`;
/// messages are one line, name the file, and never carry a personal value.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("period: {0}")]
    Period(String),
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    #[error("residency report {path}: {message}")]
    Residency { path: PathBuf, message: String },
    #[error("intake ledger: {0}")]
    Ledger(String),
    #[error("writing the evidence pack {path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    #[error(transparent)]
    Render(#[from] crate::certs::CertCommandError),
    #[error("{0}: expected a 64-character hex Ed25519 public key, or a file holding one")]
    PublicKey(String),
    #[error("{bundle}: cannot be read: {message}")]
    Unreadable { bundle: PathBuf, message: String },
    #[error("{bundle}: {MANIFEST}: {message}")]
    Manifest { bundle: PathBuf, message: String },
    #[error("{bundle}: {MANIFEST}: the signature does not match the manifest (a byte of it was changed, or it was not signed by kenko)")]
    Signature { bundle: PathBuf },
    #[error("{bundle}: {MANIFEST}: signed by key {found}, not by the expected key {expected}")]
    WrongSigner {
        bundle: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{bundle}: {file}: {message}")]
    Tampered {
        bundle: PathBuf,
        file: String,
        message: String,
    },
    #[error("{bundle}: {file}: listed in the manifest but missing from the bundle")]
    Missing { bundle: PathBuf, file: String },
    #[error("{bundle}: {file}: in the bundle but not in the manifest (added after signing)")]
    Added { bundle: PathBuf, file: String },
}

/// Every reason an evidence error can have of its own (the others are the signing key's and
/// the renderer's, already listed).
pub const REASONS: &[&str] = &[
    "evidence_period_invalid",
    "evidence_source_unreadable",
    "evidence_residency_invalid",
    "evidence_ledger_unavailable",
    "evidence_output_failed",
    "evidence_public_key_invalid",
    "evidence_unreadable",
    "evidence_manifest_invalid",
    "evidence_signature_invalid",
    "evidence_wrong_signer",
    "evidence_tampered",
    "evidence_file_missing",
    "evidence_file_added",
];

impl EvidenceError {
    pub fn reason(&self) -> &'static str {
        match self {
            EvidenceError::Period(_) => "evidence_period_invalid",
            EvidenceError::Source { .. } => "evidence_source_unreadable",
            EvidenceError::Residency { .. } => "evidence_residency_invalid",
            EvidenceError::Ledger(_) => "evidence_ledger_unavailable",
            EvidenceError::Output { .. } => "evidence_output_failed",
            EvidenceError::Key(k) => k.reason(),
            EvidenceError::Render(r) => r.reason(),
            EvidenceError::PublicKey(_) => "evidence_public_key_invalid",
            EvidenceError::Unreadable { .. } => "evidence_unreadable",
            EvidenceError::Manifest { .. } => "evidence_manifest_invalid",
            EvidenceError::Signature { .. } => "evidence_signature_invalid",
            EvidenceError::WrongSigner { .. } => "evidence_wrong_signer",
            EvidenceError::Tampered { .. } => "evidence_tampered",
            EvidenceError::Missing { .. } => "evidence_file_missing",
            EvidenceError::Added { .. } => "evidence_file_added",
        }
    }

    /// Whether the error says the bundle is not genuine and complete (verify exits 1), as
    /// opposed to a bundle or key that could not be read at all (exit 3).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            EvidenceError::Manifest { .. }
                | EvidenceError::Signature { .. }
                | EvidenceError::WrongSigner { .. }
                | EvidenceError::Tampered { .. }
                | EvidenceError::Missing { .. }
                | EvidenceError::Added { .. }
        )
    }
}

pub use manifest::{verify, Manifest, Verified};
pub use period::Period;
