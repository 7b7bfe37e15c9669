//! `kubectl kenko certificates list|get|export|verify`, for auditors.
//!
//! An `ErasureCertificate` resource carries the certificate file itself (`spec.certificate`,
//! canonical signed JSON) and, for listing, fields copied from it. The file is the evidence:
//! `export` writes its exact bytes (refusing when they do not hash to `spec.sha256`), and
//! `verify` checks those bytes with kenko-cert against the auditor's own copy of the agent's
//! public key, then checks that the resource's copied fields say the same as the verified
//! file. `verify --file` needs no cluster.

use std::io::Write;
use std::path::Path;

use kenko_api::ErasureCertificate;
use kenko_cert::Verified;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};

use crate::table::{short, table};
use crate::{kube_error, PluginError};

/// Characters of the SHA-256 shown in the list.
pub const SHORT_SHA: usize = 12;

/// Every ErasureCertificate (cluster-scoped), oldest first.
pub async fn list(client: &Client) -> Result<Vec<ErasureCertificate>, PluginError> {
    let api: Api<ErasureCertificate> = Api::all(client.clone());
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(kube_error("list erasurecertificates"))?
        .items;
    items.sort_by(|a, b| (&a.spec.issued_at, a.name_any()).cmp(&(&b.spec.issued_at, b.name_any())));
    Ok(items)
}

/// The `certificates list` table: name, job, stack, targets, blocked, issued, short SHA-256.
pub fn format_list(items: &[ErasureCertificate]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            vec![
                c.name_any(),
                c.spec.job_id.clone(),
                c.spec.stack.clone().unwrap_or_default(),
                c.spec.target_count.to_string(),
                c.spec.blocked_count.to_string(),
                c.spec.issued_at.clone(),
                short(&c.spec.sha256, SHORT_SHA),
            ]
        })
        .collect();
    table(
        "",
        &[
            "NAME", "JOB", "STACK", "TARGETS", "BLOCKED", "ISSUED", "SHA256",
        ],
        &rows,
    )
}

/// One ErasureCertificate.
pub async fn get(client: &Client, name: &str) -> Result<ErasureCertificate, PluginError> {
    let api: Api<ErasureCertificate> = Api::all(client.clone());
    api.get(name)
        .await
        .map_err(kube_error(format!("erasurecertificate {name}")))
}

/// `certificates get NAME`: the resource's fields for people (the signed file itself is
/// what `export` writes).
pub fn format_get(c: &ErasureCertificate) -> String {
    let s = &c.spec;
    let mut out = String::new();
    let mut field = |k: &str, v: &str| {
        let v = if v.is_empty() { "-" } else { v };
        out.push_str(&format!("{:<13}{}\n", format!("{k}:"), crate::one_line(v)));
    };
    field("Name", &c.name_any());
    field("Job", &s.job_id);
    field("Request", &s.request);
    field("Stack", s.stack.as_deref().unwrap_or(""));
    field("Issued", &s.issued_at);
    field("Signer", &s.signer);
    field("SHA-256", &s.sha256);
    field("Targets", &s.target_count.to_string());
    field("Blocked", &s.blocked_count.to_string());
    for t in &s.targets {
        out.push_str(&format!("  - {}\n", crate::one_line(t)));
    }
    out
}

/// SHA-256 (hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The certificate file's exact bytes, refused unless they hash to the resource's
/// `spec.sha256`.
pub fn certificate_bytes(c: &ErasureCertificate) -> Result<&[u8], PluginError> {
    let bytes = c.spec.certificate.as_bytes();
    let computed = sha256_hex(bytes);
    if !computed.eq_ignore_ascii_case(c.spec.sha256.trim()) {
        return Err(PluginError::ResourceMismatch {
            subject: format!("erasurecertificate {}", c.name_any()),
            problem: format!(
                "the certificate text hashes to {computed}, not to the recorded sha256 {}; \
                 the resource was altered or truncated: obtain the original file from the \
                 certificate store",
                c.spec.sha256
            ),
        });
    }
    Ok(bytes)
}

/// `export`: the certificate's exact bytes (checked against `spec.sha256`).
pub async fn export(client: &Client, name: &str) -> Result<Vec<u8>, PluginError> {
    let c = get(client, name).await?;
    Ok(certificate_bytes(&c)?.to_vec())
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, synced, then
/// renamed), reads the file back and checks its SHA-256.
pub fn write_exact(path: &Path, bytes: &[u8]) -> Result<String, PluginError> {
    let io = |e: std::io::Error| PluginError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| PluginError::Io {
            path: path.to_path_buf(),
            message: "not a file name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        #[allow(
            clippy::disallowed_methods,
            reason = "the plugin's one atomic write: temporary name, synced, renamed"
        )]
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    let written = std::fs::read(path).map_err(io)?;
    let want = sha256_hex(bytes);
    let got = sha256_hex(&written);
    if got != want {
        return Err(PluginError::Io {
            path: path.to_path_buf(),
            message: format!("the file read back hashes to {got}, not {want}"),
        });
    }
    Ok(got)
}

/// Reads the auditor's trusted keys: a file holding one agent's public key (64 hex
/// characters, as `kenko-agent certificate public-key --out` writes it), a file of several
/// (`NAME: KEY` lines, as `kubectl kenko signers export` writes them; `#` comments), or the
/// 64 characters themselves.
pub fn read_public_keys(arg: &Path) -> Result<Vec<String>, PluginError> {
    if arg.is_file() {
        let text = std::fs::read_to_string(arg).map_err(|e| PluginError::Io {
            path: arg.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(k) = parse_public_key(&text) {
            return Ok(vec![k]);
        }
        let keys: Option<Vec<String>> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(|l| parse_public_key(l.rsplit([':', '=', ' ']).next().unwrap_or(l)))
            .collect();
        return match keys {
            Some(k) if !k.is_empty() => Ok(k),
            _ => Err(PluginError::PublicKey(arg.to_path_buf())),
        };
    }
    read_public_key(arg).map(|k| vec![k])
}

/// One public key: a file holding 64 hex characters, or those characters themselves.
pub fn read_public_key(arg: &Path) -> Result<String, PluginError> {
    let text = if arg.is_file() {
        std::fs::read_to_string(arg).map_err(|e| PluginError::Io {
            path: arg.to_path_buf(),
            message: e.to_string(),
        })?
    } else {
        let s = arg.to_string_lossy().into_owned();
        if parse_public_key(&s).is_none() {
            return Err(PluginError::Io {
                path: arg.to_path_buf(),
                message: "no such file (expected the agent's public key file)".into(),
            });
        }
        s
    };
    parse_public_key(&text).ok_or_else(|| PluginError::PublicKey(arg.to_path_buf()))
}

/// 64 hex characters (white space around them ignored), lower-cased.
pub fn parse_public_key(text: &str) -> Option<String> {
    let k = text.trim().to_ascii_lowercase();
    (k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())).then_some(k)
}

/// Verifies certificate bytes, signed by one of the trusted keys.
pub fn verify_bytes(
    subject: &str,
    bytes: &[u8],
    trusted: &[String],
) -> Result<Verified, PluginError> {
    let invalid = |source| PluginError::Invalid {
        subject: subject.to_string(),
        source,
    };
    let v = kenko_cert::verify(bytes, None).map_err(invalid)?;
    if !trusted.iter().any(|k| k.eq_ignore_ascii_case(&v.signer)) {
        return Err(invalid(kenko_cert::CertError::WrongSigner {
            expected: match trusted {
                [one] => one.clone(),
                many => format!("one of the {} trusted keys", many.len()),
            },
            found: v.signer.clone(),
        }));
    }
    Ok(v)
}

/// `verify --file`: a local certificate file, no cluster.
pub fn verify_file(path: &Path, public_key: &[String]) -> Result<Verified, PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    verify_bytes(&path.display().to_string(), &bytes, public_key)
}

/// `verify NAME`: the resource's certificate bytes verify against the public key, and the
/// resource's `sha256`, `signer` and `jobId` are those of the verified file.
pub fn verify_resource(
    c: &ErasureCertificate,
    public_key: &[String],
) -> Result<Verified, PluginError> {
    let subject = format!("erasurecertificate {}", c.name_any());
    let v = verify_bytes(&subject, c.spec.certificate.as_bytes(), public_key)?;
    let mismatch = |field: &str, resource: &str, file: &str| PluginError::ResourceMismatch {
        subject: subject.clone(),
        problem: format!(
            "the resource's {field} ({resource}) is not the verified certificate's ({file}); \
             the resource was altered: trust the verified file, not the resource's fields"
        ),
    };
    if !v.sha256.eq_ignore_ascii_case(c.spec.sha256.trim()) {
        return Err(mismatch("sha256", &c.spec.sha256, &v.sha256));
    }
    if !v.signer.eq_ignore_ascii_case(c.spec.signer.trim()) {
        return Err(mismatch("signer", &c.spec.signer, &v.signer));
    }
    if v.certificate.job_id != c.spec.job_id {
        return Err(mismatch("jobId", &c.spec.job_id, &v.certificate.job_id));
    }
    Ok(v)
}

/// `verify` on the cluster's resource.
pub async fn verify(
    client: &Client,
    name: &str,
    public_key: &[String],
) -> Result<Verified, PluginError> {
    let c = get(client, name).await?;
    verify_resource(&c, public_key)
}

/// The success output of `verify`.
pub fn format_verified(subject: &str, v: &Verified) -> String {
    let c = &v.certificate;
    let blocked: usize = c.targets.iter().map(|t| t.blocked.len()).sum();
    format!(
        "OK: {subject} is genuine and complete: job {}, sequence {}, {} target(s), {blocked} \
         blocked item(s), signed by {}{}\nsha256 {}\n",
        c.job_id,
        c.sequence,
        c.targets.len(),
        v.signer,
        match &v.validated_by {
            Some(k) => format!(", validated by {k}"),
            None => ", not yet validated by a second person".into(),
        },
        v.sha256
    )
}

/// The trusted signers the controller uses (name, key), from the ConfigMap in the
/// controller's namespace.
pub async fn signers(
    client: &Client,
    namespace: &str,
) -> Result<Vec<(String, String)>, PluginError> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let name = kenko_api::TRUSTED_SIGNERS_CONFIGMAP;
    let cm = api
        .get_opt(name)
        .await
        .map_err(kube_error(format!("configmap {namespace}/{name}")))?;
    Ok(cm
        .and_then(|c| c.data)
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// `signers export`: one `NAME: KEY` line per trusted signer (what `verify --public-key`
/// reads), with a header saying where it came from.
pub fn format_signers(namespace: &str, signers: &[(String, String)]) -> String {
    let mut out = format!(
        "# Trusted erasure certificate signers, from ConfigMap {namespace}/{}.\n\
         # Compare each key with the one the city recorded when the signer was registered.\n",
        kenko_api::TRUSTED_SIGNERS_CONFIGMAP
    );
    for (name, key) in signers {
        let shown =
            parse_public_key(key).unwrap_or_else(|| format!("INVALID {}", crate::one_line(key)));
        out.push_str(&format!("{}: {shown}\n", crate::one_line(name)));
    }
    out
}
