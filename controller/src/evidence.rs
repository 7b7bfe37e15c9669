//! Which of a stack's data locations are proven erased, judged only from what the controller
//! can verify itself (pure: the reconciler feeds it the resources it read).
//!
//! An ErasureCertificate is written by the agent's identity, and whoever holds that identity
//! (or any other that can create the resource) could write anything into it. So nothing in a
//! resource is believed but the signed certificate file it carries, and only when:
//! - its bytes hash to the resource's `sha256`, are in canonical form and carry a valid
//!   Ed25519 signature ([`kenko_cert::verify`]: every target's verification passed too);
//! - the signer is one the operator trusts ([`TrustedSigners`], a ConfigMap only people may
//!   write);
//! - its signed authority names this stack exactly (namespace, name and uid: a stack made
//!   again under the same name is another stack) and a request in the stack's namespace;
//! - it was started after the stack was deleted (when its writers were already stopped), so
//!   an erasure of a live stack never counts for data written after it.
//!
//! The locations it covers are read from the signed body (each target's `location`), never
//! from the resource's copied fields. A location covered once stays covered: a retried
//! decommissioning counts the certificates of every earlier request of the stack.

use std::collections::BTreeMap;

use kenko_api::{ErasureCertificate, Target};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

/// Every reason a certificate is not counted (besides kenko-cert's own verification reasons).
pub const REASONS: &[&str] = &[
    "certificate_hash_mismatch",
    "certificate_untrusted_signer",
    "certificate_no_authority",
    "certificate_other_stack",
    "certificate_before_deletion",
];

/// The signers the operator trusts: public key (hex, lower case) → the name given to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedSigners {
    keys: BTreeMap<String, String>,
}

impl TrustedSigners {
    /// From the ConfigMap's data (name → hex key). Entries that are not 32-byte hex keys are
    /// returned by name (never trusted).
    pub fn from_data(data: &BTreeMap<String, String>) -> (TrustedSigners, Vec<String>) {
        let mut keys = BTreeMap::new();
        let mut bad = Vec::new();
        for (name, value) in data {
            let k = value.trim().to_ascii_lowercase();
            if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
                keys.insert(k, name.clone());
            } else {
                bad.push(name.clone());
            }
        }
        (TrustedSigners { keys }, bad)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name a trusted key was registered under.
    pub fn name_of(&self, key: &str) -> Option<&str> {
        self.keys.get(&key.to_ascii_lowercase()).map(|s| s.as_str())
    }
}

/// The stack whose decommissioning is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackId {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `metadata.deletionTimestamp`, RFC 3339.
    pub deleted_at: Option<String>,
}

/// What one certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Genuine, trusted and this stack's: the locations it erased, and those it left blocked.
    Counts {
        name: String,
        signer: String,
        covered: Vec<Target>,
        blocked: Vec<Target>,
    },
    /// Not evidence for this stack, and why (a stable reason and one line).
    Rejected {
        name: String,
        reason: &'static str,
        why: String,
    },
}

fn ts(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// Judges one ErasureCertificate for `stack`.
pub fn judge(c: &ErasureCertificate, stack: &StackId, trusted: &TrustedSigners) -> Verdict {
    let name = c.name_any();
    let reject = |reason: &'static str, why: String| Verdict::Rejected {
        name: name.clone(),
        reason,
        why,
    };
    let bytes = c.spec.certificate.as_bytes();
    let computed = hex::encode(Sha256::digest(bytes));
    if !computed.eq_ignore_ascii_case(c.spec.sha256.trim()) {
        return reject(
            "certificate_hash_mismatch",
            format!(
                "its certificate text hashes to {computed}, not to the recorded sha256 {}",
                c.spec.sha256
            ),
        );
    }
    let v = match kenko_cert::verify(bytes, None) {
        Ok(v) => v,
        Err(e) => return reject(e.reason(), e.to_string()),
    };
    let Some(signer_name) = trusted.name_of(&v.signer) else {
        return reject(
            "certificate_untrusted_signer",
            format!(
                "signed by {}, which is not in the trusted signers (ConfigMap {})",
                v.signer,
                kenko_api::TRUSTED_SIGNERS_CONFIGMAP
            ),
        );
    };
    let Some(auth) = &v.certificate.authority else {
        return reject(
            "certificate_no_authority",
            "it names no request or stack in its signed body".into(),
        );
    };
    let ours = auth.stack.as_ref().is_some_and(|s| {
        s.namespace == stack.namespace && s.name == stack.name && s.uid == stack.uid
    });
    if !ours {
        return reject(
            "certificate_other_stack",
            format!(
                "its signed body names {}, not this stack {}/{} (uid {})",
                auth.stack
                    .as_ref()
                    .map(|s| format!("stack {}/{} (uid {})", s.namespace, s.name, s.uid))
                    .unwrap_or_else(|| "no stack".into()),
                stack.namespace,
                stack.name,
                stack.uid
            ),
        );
    }
    if auth.request.split_once('/').map(|(ns, _)| ns) != Some(stack.namespace.as_str()) {
        return reject(
            "certificate_other_stack",
            format!(
                "its request {} is not in the stack's namespace {}",
                auth.request, stack.namespace
            ),
        );
    }
    if let Some(deleted) = stack.deleted_at.as_deref().and_then(ts) {
        match ts(&v.certificate.started_at) {
            Some(started) if started >= deleted => {}
            _ => {
                return reject(
                    "certificate_before_deletion",
                    format!(
                        "its erasure started at {}, before the stack was deleted ({}), while the stack could still write",
                        v.certificate.started_at,
                        stack.deleted_at.clone().unwrap_or_default()
                    ),
                )
            }
        }
    }
    let mut covered = Vec::new();
    let mut blocked = Vec::new();
    for t in &v.certificate.targets {
        let Some(location) = t.location.as_deref().and_then(|l| l.parse::<Target>().ok()) else {
            continue;
        };
        let list = if t.blocked.is_empty() {
            &mut covered
        } else {
            &mut blocked
        };
        if !list.contains(&location) {
            list.push(location);
        }
    }
    Verdict::Counts {
        name,
        signer: signer_name.to_string(),
        covered,
        blocked,
    }
}

/// Where a stack's locations stand, by the certificates judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Locations erased, each with the first certificate proving it.
    pub covered: Vec<(Target, String)>,
    /// Locations a certificate found blocked (Object Lock, Vault Lock) and none covers.
    pub blocked: Vec<Target>,
    /// Locations nothing proves erased yet, in the stack's order.
    pub missing: Vec<Target>,
    /// Certificates that were not counted: (name, reason, why).
    pub rejected: Vec<(String, &'static str, String)>,
}

impl Coverage {
    /// The certificates that together cover every location.
    pub fn certificates(&self) -> Vec<String> {
        let mut names: Vec<String> = self.covered.iter().map(|(_, n)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Judges every certificate and sorts the stack's locations into covered, blocked and missing.
pub fn coverage(
    locations: &[Target],
    certificates: &[ErasureCertificate],
    stack: &StackId,
    trusted: &TrustedSigners,
) -> Coverage {
    let mut out = Coverage::default();
    let mut proofs: Vec<(Vec<Target>, Vec<Target>, String)> = Vec::new();
    let mut sorted: Vec<&ErasureCertificate> = certificates.iter().collect();
    sorted.sort_by_key(|c| c.name_any());
    for c in sorted {
        match judge(c, stack, trusted) {
            Verdict::Counts {
                name,
                covered,
                blocked,
                ..
            } => proofs.push((covered, blocked, name)),
            Verdict::Rejected { name, reason, why } => out.rejected.push((name, reason, why)),
        }
    }
    for l in locations {
        if let Some((_, _, name)) = proofs.iter().find(|(c, _, _)| c.contains(l)) {
            out.covered.push((l.clone(), name.clone()));
        } else if proofs.iter().any(|(_, b, _)| b.contains(l)) {
            out.blocked.push(l.clone());
        } else {
            out.missing.push(l.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
