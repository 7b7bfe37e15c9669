//! Erasure certificates an auditor can verify years later.
//!
//! A certificate carries every field of NIST SP 800-88 Rev.1 Appendix G (who sanitised, the
//! media, the sanitisation, its verification, the destination, signature and validation) plus
//! kenko's evidence (job, targets with bytes or objects erased, blocked items, verification
//! results, times, resumptions, host and agent version), and the SHA-256 of the previous
//! certificate by the same signer, so the certificates of a signer form a chain.
//!
//! **The file is its canonical form.** Canonical JSON here means: object keys sorted, no
//! insignificant white space, UTF-8, integers only (no floating point), then one `\n`. A
//! certificate file must be byte-identical to the canonical form of what it parses to, so any
//! change to any byte (even white space) fails verification: either it no longer parses, or it
//! is no longer canonical, or the signature no longer matches.
//!
//! Signatures are Ed25519. The signer signs the canonical form without `validation` and with
//! its own signature's `value` empty (so its key and signing time are covered); the second
//! person (Appendix G "validation") countersigns the whole signed certificate plus their own
//! name, key and time, i.e. vouches for the signed certificate.

use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format identifier of the certificates kenko issues: version 2 may carry the
/// [`Authority`] an erasure ran under and each target's request [`Target::location`].
pub const FORMAT: &str = "kenko-erasure-certificate/2";
/// The first format (no authority, no locations); still verified, byte for byte.
pub const FORMAT_V1: &str = "kenko-erasure-certificate/1";

/// The person who sanitised (Appendix G "Person Performing Sanitization") or validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    pub title: String,
    pub organization: String,
    pub location: String,
    pub phone: String,
}

/// Appendix G "Media Information", one per medium (a disk, a bucket, a key...). Every field
/// defaults to empty when read from an operator's details file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    pub manufacturer: String,
    pub model: String,
    pub serial_number: String,
    pub property_number: String,
    /// e.g. `magnetic`, `flash`, `cloud object storage`, `cryptographic key`.
    pub media_type: String,
    /// Where the media came from (a system, a contract, a user).
    pub source: String,
    /// Confidentiality category before sanitisation.
    pub classification: String,
    /// Whether the data was backed up, and where (Appendix G "Data Backed Up").
    pub backed_up: bool,
    pub backup_location: String,
}

/// NIST SP 800-88 Rev.1's sanitization categories (Appendix G "Method Type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MethodType {
    #[default]
    Clear,
    Purge,
    Destroy,
}

impl MethodType {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodType::Clear => "clear",
            MethodType::Purge => "purge",
            MethodType::Destroy => "destroy",
        }
    }
}

impl std::fmt::Display for MethodType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an erasure was checked. The serialised names are what certificates have always
/// carried, so a certificate's canonical bytes (and its signature) do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum VerificationMethod {
    /// Every byte read back from the media.
    #[default]
    #[serde(rename = "full")]
    Full,
    /// The NIST SP 800-88 Rev.1 4.7.3 sample, read back from the media.
    #[serde(rename = "sample")]
    Sample,
    /// The sample locations read before and after a device's own secure erase.
    #[serde(rename = "sample (before and after)")]
    SampleBeforeAfter,
    /// A cryptographic erase: the key's destruction (or scheduled deletion) checked.
    #[serde(rename = "crypto")]
    Crypto,
    /// A cloud deletion: the object listed or described again after.
    #[serde(rename = "listing")]
    Listing,
}

impl VerificationMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationMethod::Full => "full",
            VerificationMethod::Sample => "sample",
            VerificationMethod::SampleBeforeAfter => "sample (before and after)",
            VerificationMethod::Crypto => "crypto",
            VerificationMethod::Listing => "listing",
        }
    }
}

impl std::fmt::Display for VerificationMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appendix G "Sanitization Details".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Sanitization {
    pub method_type: MethodType,
    /// e.g. `overwrite`, `block erase`, `cryptographic erase`.
    pub method_used: String,
    /// Pattern, passes, generator, page-cache handling...
    pub method_details: String,
    pub tool: String,
    pub tool_version: String,
    pub verification_method: VerificationMethod,
    pub post_sanitization_classification: String,
    pub notes: String,
}

/// An item that could not be erased (e.g. an object version under Object Lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocked {
    pub item: String,
    pub reason: String,
    /// RFC 3339, when the item can be erased (Object Lock retain-until), if known.
    pub until: Option<String>,
}

/// The verification of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    pub method: VerificationMethod,
    pub passed: bool,
    pub bytes_checked: u64,
    pub locations_checked: u64,
    pub details: String,
}

/// One erased target and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The target as given: `file:PATH`, `device:PATH`, `s3://bucket/prefix`, `kms:ARN`...
    pub spec: String,
    /// The location of the request this target erased, when it differs from `spec` or the
    /// erasure ran for a request (`pvc:NAME` erased as the folder or volume it resolved to,
    /// `backup-vault:REGION/VAULT` as its recovery points). What the controller counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub media: Media,
    pub bytes_erased: u64,
    pub objects_erased: u64,
    pub blocked: Vec<Blocked>,
    pub verification: Verification,
}

/// What authorised an erasure in a cluster: the ErasureRequest, its two people, and the
/// HealthStack it decommissioned. Signed with the rest, so a certificate cannot be claimed
/// for another request or another stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authority {
    /// `namespace/name` of the ErasureRequest.
    pub request: String,
    /// Its `metadata.uid`.
    pub request_uid: String,
    pub requested_by: String,
    pub approved_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackRef>,
}

/// A HealthStack, exactly: a stack deleted and made again under the same name has another uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A signature over a certificate's canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
    /// RFC 3339 UTC.
    pub signed_at: String,
    /// Ed25519 signature, hex.
    pub value: String,
}

/// Appendix G "Validation": the second person's countersignature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub person: Person,
    pub signature: Signature,
}

/// An erasure certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub format: String,
    pub job_id: String,
    /// Position in the signer's chain, from 1.
    pub sequence: u64,
    /// SHA-256 (hex) of the signer's previous certificate file; `None` for the first.
    pub previous_sha256: Option<String>,
    pub sanitized_by: Person,
    pub sanitization: Sanitization,
    pub targets: Vec<Target>,
    /// Appendix G "Media Destination" (reused, returned to vendor, destroyed...).
    pub media_destination: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    /// How many times the job was interrupted and resumed.
    pub resumptions: u32,
    pub host: String,
    pub agent_version: String,
    /// Set when the erasure ran for an ErasureRequest (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<Authority>,
    pub signature: Option<Signature>,
    pub validation: Option<Validation>,
}

/// Why a certificate is not genuine and complete. Each has a stable `reason()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a certificate: {0}")]
    Malformed(String),
    #[error(
        "the file is not in canonical form (it was edited after signing, or not written by kenko)"
    )]
    NotCanonical,
    #[error("unknown format {0:?}; expected {FORMAT} or {FORMAT_V1}")]
    Format(String),
    #[error("the certificate is not signed")]
    Unsigned,
    #[error("the signature does not match the certificate's content")]
    BadSignature,
    #[error("signed by key {found}, not by the expected key {expected}")]
    WrongSigner { expected: String, found: String },
    #[error("the validation (countersignature) does not match the signed certificate")]
    BadValidation,
    #[error("the certificate lists a target whose verification did not pass: {0}")]
    FailedVerification(String),
    #[error("chain of {signer}: {problem}")]
    Chain { signer: String, problem: String },
    #[error("the file starts with a byte order mark (U+FEFF); a certificate is UTF-8 without one")]
    ByteOrderMark,
    #[error("not UTF-8 at byte {offset} (an invalid or overlong sequence)")]
    NotUtf8 { offset: usize },
    #[error("an escaped character at byte {offset}; the canonical form writes every character as itself")]
    EscapedCharacter { offset: usize },
    #[error("the key `{field}` appears twice in its object; which one was signed cannot be told")]
    DuplicateKey { field: String },
    #[error("{field} holds a control character ({code_point})")]
    ControlCharacter { field: String, code_point: String },
    #[error("{field} holds a bidirectional control character ({code_point}) that reorders what a reader sees")]
    BidiControl { field: String, code_point: String },
    #[error("{field} holds an invisible character ({code_point})")]
    InvisibleCharacter { field: String, code_point: String },
    #[error(
        "{field} is not in Unicode Normalization Form C (the same text can be written another way)"
    )]
    NotNfc { field: String },
    #[error("`{field}` holds a character outside printable ASCII (a look-alike letter?); this field is compared by machines")]
    NonAsciiIdentifier { field: String },
}

impl CertError {
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Malformed(_) => "certificate_malformed",
            CertError::NotCanonical => "certificate_not_canonical",
            CertError::Format(_) => "certificate_unknown_format",
            CertError::Unsigned => "certificate_unsigned",
            CertError::BadSignature => "certificate_bad_signature",
            CertError::WrongSigner { .. } => "certificate_wrong_signer",
            CertError::BadValidation => "certificate_bad_validation",
            CertError::FailedVerification(_) => "certificate_failed_verification",
            CertError::Chain { .. } => "certificate_chain_broken",
            CertError::ByteOrderMark => "certificate_byte_order_mark",
            CertError::NotUtf8 { .. } => "certificate_not_utf8",
            CertError::EscapedCharacter { .. } => "certificate_escaped_character",
            CertError::DuplicateKey { .. } => "certificate_duplicate_key",
            CertError::ControlCharacter { .. } => "certificate_control_character",
            CertError::BidiControl { .. } => "certificate_bidi_control",
            CertError::InvisibleCharacter { .. } => "certificate_invisible_character",
            CertError::NotNfc { .. } => "certificate_not_nfc",
            CertError::NonAsciiIdentifier { .. } => "certificate_non_ascii_identifier",
        }
    }
}

/// Canonical JSON bytes of any serialisable value (keys sorted, compact, trailing newline).
pub fn canonical_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // serde_json's `Value` keeps object keys in a BTreeMap (the `preserve_order` feature is
    // off), so going through it sorts every object's keys.
    let v = serde_json::to_value(value).expect("certificates serialise");
    let mut out = serde_json::to_vec(&v).expect("values serialise");
    out.push(b'\n');
    out
}

impl Certificate {
    /// The bytes the signer signs: the canonical form without the validation, with the
    /// signature's own fields (key, time) but an empty value, so the signing time and key are
    /// covered too.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut c = self.clone();
        c.validation = None;
        if let Some(sig) = c.signature.as_mut() {
            sig.value.clear();
        }
        canonical_bytes(&c)
    }

    /// The bytes the validator signs: the whole signed certificate and the validation's own
    /// fields (person, key, time), with an empty validation value.
    pub fn validation_bytes(&self) -> Vec<u8> {
        let mut c = self.clone();
        if let Some(v) = c.validation.as_mut() {
            v.signature.value.clear();
        }
        canonical_bytes(&c)
    }

    /// Signs the certificate (replacing any earlier signature and validation).
    pub fn sign(&mut self, key: &SigningKey, signed_at: &str) {
        self.validation = None;
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

    /// Adds the second person's validation (Appendix G), signed by their own key.
    pub fn countersign(
        &mut self,
        person: Person,
        key: &SigningKey,
        signed_at: &str,
    ) -> Result<(), CertError> {
        if self.signature.is_none() {
            return Err(CertError::Unsigned);
        }
        self.validation = Some(Validation {
            person,
            signature: Signature {
                public_key: hex::encode(key.verifying_key().as_bytes()),
                signed_at: signed_at.to_string(),
                value: String::new(),
            },
        });
        let sig = key.sign(&self.validation_bytes());
        if let Some(v) = self.validation.as_mut() {
            v.signature.value = hex::encode(sig.to_bytes());
        }
        Ok(())
    }

    /// The file content: canonical bytes of the whole certificate.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        canonical_bytes(self)
    }

    /// The signer's public key (hex), if signed.
    pub fn signer(&self) -> Option<&str> {
        self.signature.as_ref().map(|s| s.public_key.as_str())
    }
}

fn verifying_key(hex_key: &str) -> Result<VerifyingKey, CertError> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CertError::Malformed("a public key is not 32 bytes of hex".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| CertError::Malformed("a public key is not a valid Ed25519 point".into()))
}

fn check_signature(sig: &Signature, message: &[u8]) -> Result<bool, CertError> {
    let key = verifying_key(&sig.public_key)?;
    let bytes: [u8; 64] = hex::decode(&sig.value)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CertError::Malformed("a signature is not 64 bytes of hex".into()))?;
    // Strict verification rejects the malleable and small-order forms plain Ed25519 accepts.
    Ok(key
        .verify_strict(message, &EdSignature::from_bytes(&bytes))
        .is_ok())
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub certificate: Certificate,
    pub sha256: String,
    pub signer: String,
    pub validated_by: Option<String>,
}

/// Verifies a certificate file's bytes: text a reader sees as the verifier does (no
/// byte order mark, UTF-8, no escapes, no key twice, no control, bidi or invisible character,
/// NFC, ASCII identifiers), canonical form, format, signature (by `expected_signer` when given),
/// validation if present, and that every target's verification passed.
pub fn verify(bytes: &[u8], expected_signer: Option<&str>) -> Result<Verified, CertError> {
    text::check_file(bytes)?;
    let cert: Certificate =
        serde_json::from_slice(bytes).map_err(|e| CertError::Malformed(e.to_string()))?;
    if cert.to_file_bytes() != bytes {
        return Err(CertError::NotCanonical);
    }
    text::check_identifiers(&cert)?;
    let v1 = cert.format == FORMAT_V1;
    if cert.format != FORMAT && !v1 {
        return Err(CertError::Format(cert.format.clone()));
    }
    if v1 && (cert.authority.is_some() || cert.targets.iter().any(|t| t.location.is_some())) {
        return Err(CertError::Format(format!(
            "{} with fields of {FORMAT}",
            cert.format
        )));
    }
    let sig = cert.signature.as_ref().ok_or(CertError::Unsigned)?;
    if let Some(expected) = expected_signer {
        if !sig.public_key.eq_ignore_ascii_case(expected) {
            return Err(CertError::WrongSigner {
                expected: expected.to_string(),
                found: sig.public_key.clone(),
            });
        }
    }
    if !check_signature(sig, &cert.signing_bytes())? {
        return Err(CertError::BadSignature);
    }
    let validated_by = match &cert.validation {
        Some(v) => {
            if !check_signature(&v.signature, &cert.validation_bytes())? {
                return Err(CertError::BadValidation);
            }
            Some(v.signature.public_key.clone())
        }
        None => None,
    };
    if let Some(t) = cert.targets.iter().find(|t| !t.verification.passed) {
        return Err(CertError::FailedVerification(t.spec.clone()));
    }
    Ok(Verified {
        signer: sig.public_key.clone(),
        sha256: hex::encode(Sha256::digest(bytes)),
        certificate: cert,
        validated_by,
    })
}

/// Verifies a set of certificate files (name, bytes) as chains, one per signer: each file
/// verifies, sequences run 1, 2, 3... without gaps or repeats, and each certificate names the
/// SHA-256 of its predecessor. Detects a removed, reordered, altered or inserted certificate.
/// `heads` optionally gives the expected last SHA-256 per signer (detects a removed tail).
/// Returns the number of certificates per signer.
pub fn verify_chain(
    files: &[(String, Vec<u8>)],
    heads: &[(String, String)],
) -> Result<Vec<(String, usize)>, (String, CertError)> {
    let mut by_signer: std::collections::BTreeMap<String, Vec<Verified>> = Default::default();
    for (name, bytes) in files {
        let v = verify(bytes, None).map_err(|e| (name.clone(), e))?;
        by_signer.entry(v.signer.clone()).or_default().push(v);
    }
    let mut out = Vec::new();
    for (signer, mut certs) in by_signer {
        certs.sort_by_key(|v| v.certificate.sequence);
        let short = signer.chars().take(16).collect::<String>();
        let chain_err = |problem: String| {
            (
                format!("signer {short}"),
                CertError::Chain {
                    signer: short.clone(),
                    problem,
                },
            )
        };
        let mut previous: Option<&Verified> = None;
        for (i, v) in certs.iter().enumerate() {
            let want = i as u64 + 1;
            let c = &v.certificate;
            if c.sequence != want {
                return Err(chain_err(format!(
                    "certificate {want} is missing (found {} next, job {})",
                    c.sequence, c.job_id
                )));
            }
            let expected_prev = previous.map(|p| p.sha256.clone());
            if c.previous_sha256 != expected_prev {
                return Err(chain_err(format!(
                    "certificate {} (job {}) does not follow certificate {}: its previous_sha256 differs",
                    c.sequence,
                    c.job_id,
                    c.sequence - 1
                )));
            }
            previous = Some(v);
        }
        if let Some((_, head)) = heads.iter().find(|(s, _)| s.eq_ignore_ascii_case(&signer)) {
            if previous.map(|p| &p.sha256) != Some(head) {
                return Err(chain_err(
                    "the last certificate is not the recorded head: certificates after it are missing"
                        .into(),
                ));
            }
        }
        out.push((signer, certs.len()));
    }
    Ok(out)
}

/// Checks what a person adds to a certificate (a validator's details) as [`verify`] will:
/// no control, bidi or invisible character, NFC.
pub fn check_person(p: &Person) -> Result<(), CertError> {
    text::check_person(p)
}

pub mod pdf;
pub mod render;
mod text;
pub use text::presentable;

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
