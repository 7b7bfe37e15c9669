//! The S3 inbox (`[intake] inbox = "s3://BUCKET/PREFIX/"`): a front to the local pipeline, so
//! every guarantee of the folder inbox (one pass, the ledger's exactly-once, crash recovery)
//! holds unchanged, with S3 as where deliveries arrive and results are picked up.
//!
//! A round: (1) *stage*: each object under `PREFIX/inbox/` is fetched by its current version
//! into the local inbox under a hidden name, hashed as written, with a sidecar naming its
//! origin (key, version id, ETag) and a `.done` marker, then renamed in; an object the ledger
//! already took (same SHA-256 and the same origin: a crash came after the commit) is finished
//! at once instead. (2) The local round takes the staged files; each file's reports are put
//! aside under `PREFIX/.kenko/pending/` before its commit, and fee summaries are put under
//! `PREFIX/reports/fees/` before their month stops being dirty. (3) *finish*: for each file the
//! round took, its pending reports move under `PREFIX/reports/`, the object version is copied
//! to `PREFIX/processed/...` or `PREFIX/returned/...` (the ledger's destination) and deleted
//! from `inbox/` by version; then the local copy of the input goes.
//!
//! The bucket and the store hold everything that must survive: the working directory may be
//! lost with its pod (an `emptyDir`) at any step. Every step is idempotent, so a crash
//! anywhere, with or without the working directory, ends after the next round as an
//! uninterrupted run would.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Env, Gate, IntakeError, RunSummary};
use crate::fsutil::PathError;
#[cfg(feature = "cloud")]
use {
    super::{inbox, run_round, Publish},
    crate::crashpoint,
    crate::fsutil::{self, at},
    sha2::{Digest, Sha256},
    std::collections::BTreeMap,
    std::io::Write,
};

/// Why the S3 inbox could not be worked (the round is tried again; nothing is lost).
#[derive(Debug, thiserror::Error)]
pub enum S3InboxError {
    #[cfg(feature = "cloud")]
    #[error("the S3 inbox: {0}")]
    Aws(#[from] kenko_aws::AwsError),
    #[error(transparent)]
    NoCloud(#[from] crate::NoCloud),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Register(#[from] crate::register::RegisterError),
    #[error("{object}: the delivery was deleted from the inbox before it was copied to its destination; the ledger has it, the bucket no longer does")]
    Vanished { object: String },
}

impl S3InboxError {
    pub fn reason(&self) -> &'static str {
        match self {
            #[cfg(feature = "cloud")]
            S3InboxError::Aws(_) => "inbox_unreachable",
            S3InboxError::NoCloud(e) => e.reason(),
            S3InboxError::Io(_) => "io_failed",
            S3InboxError::Intake(e) => e.reason(),
            S3InboxError::Register(e) => e.reason(),
            S3InboxError::Vanished { .. } => "inbox_delivery_vanished",
        }
    }
}

/// Where a staged file came from; kept beside it and, at the commit, in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `s3://BUCKET/KEY`.
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub etag: String,
}

impl Origin {
    /// The form the ledger stores (compact JSON, so equal origins are equal strings).
    pub fn to_ledger(&self) -> String {
        serde_json::to_string(self).expect("an origin serialises")
    }
}

/// The sidecar of a staged file: `inbox/.NAME.origin` (hidden, so no scan takes it).
pub fn origin_path(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    file.with_file_name(format!(".{name}.origin"))
}

/// The origin of a staged inbox file, if it came from S3 (`None` for a local delivery).
pub fn origin_of(file: &Path) -> Option<String> {
    let bytes = std::fs::read(origin_path(file)).ok()?;
    let o: Origin = serde_json::from_slice(&bytes).ok()?;
    Some(o.to_ledger())
}

/// What a round did with S3 (beside the local round's summary).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct S3Summary {
    /// Objects listed under `inbox/`.
    pub listed: u64,
    /// Fetched into the local inbox this round.
    pub staged: u64,
    /// Moved out of `inbox/` (to processed/ or returned/) this round.
    pub finished: u64,
    /// Of those, taken in an earlier run that stopped before finishing.
    pub recovered: u64,
}

/// Without the `cloud` feature there is no S3 client: opening an S3 inbox is a clear error, so
/// the type exists for its callers but never has a value.
#[cfg(not(feature = "cloud"))]
#[derive(Debug)]
pub struct S3Inbox(std::convert::Infallible);

#[cfg(not(feature = "cloud"))]
impl S3Inbox {
    pub fn open(uri: &str, _endpoint: &kenko_api::aws::Endpoint) -> Result<S3Inbox, S3InboxError> {
        Err(crate::NoCloud::new(format!("the S3 inbox {uri}")).into())
    }

    pub fn round(
        &self,
        _env: &mut Env<'_>,
        _settle: std::time::Duration,
        _gate: &mut dyn Gate,
    ) -> Result<(RunSummary, S3Summary), S3InboxError> {
        match self.0 {}
    }

    pub fn sync_register(
        &self,
        _store: &mut dyn kenko_store::Store,
        _key: &crate::crypto::DataKey,
        _dirs: &super::Dirs,
        _shrink: crate::register::ShrinkGuard,
    ) -> Result<Option<usize>, S3InboxError> {
        match self.0 {}
    }
}

#[cfg(feature = "cloud")]
/// An open S3 inbox.
pub struct S3Inbox {
    bucket: String,
    prefix: String,
    client: kenko_aws::inbox::S3Client,
    rt: tokio::runtime::Runtime,
}

#[cfg(feature = "cloud")]
impl std::fmt::Debug for S3Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Inbox(s3://{}/{})", self.bucket, self.prefix)
    }
}

#[cfg(feature = "cloud")]
/// The staged object a file of the local inbox came from, kept for the finish step.
#[derive(Debug, Clone)]
struct Staged {
    key: String,
    version_id: Option<String>,
}

#[cfg(feature = "cloud")]
impl S3Inbox {
    /// Opens `uri` (`s3://BUCKET/PREFIX/`) with the agent's AWS endpoint; connects lazily.
    pub fn open(uri: &str, endpoint: &kenko_api::aws::Endpoint) -> Result<S3Inbox, S3InboxError> {
        let (bucket, prefix) = kenko_aws::inbox::parse_inbox(uri)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| at(Path::new("s3 inbox runtime"))(e))?;
        let client = rt.block_on(kenko_aws::s3_client(endpoint, &endpoint.region));
        Ok(S3Inbox {
            bucket,
            prefix,
            client,
            rt,
        })
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// One round: stage, the local round, finish.
    pub fn round(
        &self,
        env: &mut Env<'_>,
        settle: std::time::Duration,
        gate: &mut dyn Gate,
    ) -> Result<(RunSummary, S3Summary), S3InboxError> {
        let mut s3 = S3Summary::default();
        // The reports of this round go to the bucket too.
        let mut env = Env {
            store: &mut *env.store,
            register: env.register,
            master: env.master,
            key: env.key,
            dirs: env.dirs,
            today: env.today,
            publish: Some(self),
        };
        let staged = self.stage(&mut env, &mut s3)?;
        let summary = run_round(&mut env, settle, gate)?;
        for f in &summary.file_summaries {
            let Some(st) = staged.get(&f.file) else {
                continue;
            };
            self.finish(&env, st, &f.destination, &f.sha256, &f.file)?;
            s3.finished += 1;
        }
        Ok((summary, s3))
    }

    /// Fetches every inbox object into the local inbox (or finishes one the ledger already
    /// took from this very version); returns the staged files by name.
    fn stage(
        &self,
        env: &mut Env<'_>,
        s3: &mut S3Summary,
    ) -> Result<BTreeMap<String, Staged>, S3InboxError> {
        let listed = self.rt.block_on(kenko_aws::inbox::list(
            &self.client,
            &self.bucket,
            &self.prefix,
        ))?;
        s3.listed = listed.len() as u64;
        let mut staged = BTreeMap::new();
        for obj in listed {
            if !inbox::is_candidate_name(&obj.name) || obj.name.contains('\\') {
                continue;
            }
            let local = env.dirs.inbox.join(&obj.name);
            if let Some(o) = read_origin(&local) {
                if local.exists() && o.uri == self.uri(&obj.key) && o.etag == obj.etag {
                    // Staged by an earlier round that stopped before taking it.
                    staged.insert(
                        obj.name.clone(),
                        Staged {
                            key: obj.key.clone(),
                            version_id: o.version_id,
                        },
                    );
                    continue;
                }
            }
            let part = env.dirs.inbox.join(format!(".{}.s3part", obj.name));
            let Some((fetched, sha256)) = self.fetch_to(&obj.key, &part)? else {
                // Listed, then gone: another agent on this inbox finished it.
                continue;
            };
            let origin = Origin {
                uri: self.uri(&obj.key),
                version_id: fetched.version_id.clone(),
                etag: fetched.etag.clone(),
            };
            if let Some(entry) = env.store.ledger_get(&sha256).map_err(IntakeError::from)? {
                if entry.origin.as_deref() == Some(origin.to_ledger().as_str()) {
                    // This very version was committed; a crash stopped the finish.
                    std::fs::remove_file(&part).map_err(at(&part))?;
                    let st = Staged {
                        key: obj.key.clone(),
                        version_id: fetched.version_id,
                    };
                    self.finish(env, &st, &entry.destination, &sha256, &obj.name)?;
                    s3.finished += 1;
                    s3.recovered += 1;
                    continue;
                }
            }
            // Sidecar and marker first: once the file has its name, it is complete.
            let sidecar = origin_path(&local);
            fsutil::atomic_write(&sidecar, origin.to_ledger().as_bytes()).map_err(at(&sidecar))?;
            let marker = inbox::done_marker(&local);
            fsutil::atomic_write(&marker, b"").map_err(at(&marker))?;
            fsutil::move_file(&part, &local).map_err(at(&local))?;
            crashpoint::hit("s3-staged");
            s3.staged += 1;
            staged.insert(
                obj.name.clone(),
                Staged {
                    key: obj.key,
                    version_id: fetched.version_id,
                },
            );
        }
        Ok(staged)
    }

    /// Streams an object version into `path` (synced), hashing it as written.
    fn fetch_to(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<Option<(kenko_aws::inbox::Fetched, String)>, S3InboxError> {
        struct Hashing<W> {
            inner: W,
            hasher: Sha256,
        }
        impl<W: Write> Write for Hashing<W> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let n = self.inner.write(buf)?;
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.inner.flush()
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(at(path))?;
        let mut w = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 16, file),
            hasher: Sha256::new(),
        };
        let Some(fetched) = self.rt.block_on(kenko_aws::inbox::fetch(
            &self.client,
            &self.bucket,
            key,
            &mut w,
        ))?
        else {
            drop(w);
            std::fs::remove_file(path).map_err(at(path))?;
            return Ok(None);
        };
        let sha256 = hex::encode(std::mem::take(&mut w.hasher).finalize());
        let file = w.inner.into_inner().map_err(|e| at(path)(e.into_error()))?;
        file.sync_all().map_err(at(path))?;
        Ok(Some((fetched, sha256)))
    }

    /// Reports up, the object version to its destination, then out of `inbox/`; the local
    /// copy of the input last (the bucket keeps the original).
    fn finish(
        &self,
        env: &Env<'_>,
        st: &Staged,
        destination: &str,
        sha256: &str,
        name: &str,
    ) -> Result<(), S3InboxError> {
        let short = &sha256[..sha256.len().min(12)];
        let stem = Path::new(name)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // The reports kept aside before the commit become visible: the commit is known now.
        // They come from the bucket, not the working directory, which a restarted pod lost.
        for report in [
            format!("reports/returns/{stem}.{short}.return.csv"),
            format!("reports/intake/{stem}.{short}.json"),
        ] {
            let pending = self.pending_key(&report);
            let kept = self.rt.block_on(kenko_aws::inbox::get_small(
                &self.client,
                &self.bucket,
                &pending,
            ))?;
            if let Some(bytes) = kept {
                self.put(&report, bytes)?;
                self.rt.block_on(kenko_aws::inbox::delete(
                    &self.client,
                    &self.bucket,
                    &pending,
                    None,
                ))?;
            }
        }
        crashpoint::hit("s3-reported");
        let to = format!("{}{destination}", self.prefix);
        let copied = self.rt.block_on(kenko_aws::inbox::copy(
            &self.client,
            &self.bucket,
            &st.key,
            st.version_id.as_deref(),
            &to,
        ))?;
        // The version is gone only when another agent copied and deleted it: its copy must
        // be there, or the delivery was removed by someone else and that is said.
        if !copied
            && !self
                .rt
                .block_on(kenko_aws::inbox::exists(&self.client, &self.bucket, &to))?
        {
            return Err(S3InboxError::Vanished {
                object: self.uri(&st.key),
            });
        }
        crashpoint::hit("s3-copied");
        self.rt.block_on(kenko_aws::inbox::delete(
            &self.client,
            &self.bucket,
            &st.key,
            st.version_id.as_deref(),
        ))?;
        crashpoint::hit("s3-deleted");
        let local = env.dirs.root.join(destination);
        match std::fs::remove_file(&local) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&local)(e).into()),
        }
        tracing::info!(object = %to, "s3 inbox: delivery moved out of inbox/");
        Ok(())
    }

    /// Imports the resident register extract waiting under `PREFIX/register/`, if any: the
    /// last in key order (name extracts by date, `2024-10-01.csv`); older ones waiting beside
    /// it are superseded. The import replaces the stored register in one transaction, never
    /// half. An extract that is refused (its error names row and field, never a value) goes to
    /// `register/rejected/` with a report under `reports/register/`, and the register in use
    /// stays. Imported or refused, the extract then leaves `register/` (deleted by version;
    /// the versioned bucket keeps it as noncurrent until its lifecycle expires it), and the
    /// local copy, which holds every resident's data, is removed at once. A crash before the
    /// delete imports the same extract again: the same state. Then the deltas waiting under
    /// `register-deltas/` are applied ([`Self::sync_deltas`]). Returns the residents imported.
    pub fn sync_register(
        &self,
        store: &mut dyn kenko_store::Store,
        key: &crate::crypto::DataKey,
        dirs: &super::Dirs,
        shrink: crate::register::ShrinkGuard,
    ) -> Result<Option<usize>, S3InboxError> {
        let waiting: Vec<_> = self
            .rt
            .block_on(kenko_aws::inbox::list_folder(
                &self.client,
                &self.bucket,
                &self.prefix,
                "register",
            ))?
            .into_iter()
            .filter(|o| inbox::is_candidate_name(&o.name))
            .collect();
        let Some(latest) = waiting.last() else {
            self.sync_deltas(store, key, dirs)?;
            return Ok(None);
        };
        std::fs::create_dir_all(&dirs.root).map_err(at(&dirs.root))?;
        let local = dirs.root.join(".register.s3part");
        let fetched = self.fetch_to(&latest.key, &local);
        let result = match fetched {
            Ok(Some((f, _))) => {
                let imported =
                    crate::register::import(store, key, &local, shrink).map(|s| s.residents);
                Some((f, imported))
            }
            Ok(None) => None,
            Err(e) => {
                let _ = std::fs::remove_file(&local);
                return Err(e);
            }
        };
        // Every resident's data: gone from the working directory before anything else.
        match std::fs::remove_file(&local) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&local)(e).into()),
        }
        let Some((fetched, imported)) = result else {
            // Taken by another agent meanwhile.
            self.sync_deltas(store, key, dirs)?;
            return Ok(None);
        };
        let count = match imported {
            Ok(n) => {
                tracing::info!(
                    extract = %self.uri(&latest.key),
                    residents = n,
                    "s3 inbox: register extract imported"
                );
                Some(n)
            }
            // The store failed, not the extract: it stays in register/ for the next round.
            Err(e @ crate::register::RegisterError::Store(_)) => return Err(e.into()),
            Err(e) => {
                let reason = e.reason();
                // The error names the local copy; the operator knows the object.
                let message = e
                    .to_string()
                    .replace(&local.display().to_string(), &self.uri(&latest.key));
                tracing::error!(extract = %self.uri(&latest.key), reason, error = %message, "s3 inbox: register extract refused; the register in use stays");
                let report = serde_json::json!({
                    "extract": self.uri(&latest.key),
                    "imported": false,
                    "reason": reason,
                    "error": message,
                });
                self.put(
                    &format!("reports/register/{}.json", latest.name),
                    serde_json::to_vec_pretty(&report).expect("json"),
                )?;
                self.rt.block_on(kenko_aws::inbox::copy(
                    &self.client,
                    &self.bucket,
                    &latest.key,
                    fetched.version_id.as_deref(),
                    &format!("{}register/rejected/{}", self.prefix, latest.name),
                ))?;
                None
            }
        };
        for o in &waiting {
            let version = if o.key == latest.key {
                fetched.version_id.clone()
            } else {
                None
            };
            self.rt.block_on(kenko_aws::inbox::delete(
                &self.client,
                &self.bucket,
                &o.key,
                version.as_deref(),
            ))?;
        }
        self.sync_deltas(store, key, dirs)?;
        Ok(count)
    }

    /// Applies the register deltas (異動データ) waiting under `PREFIX/register-deltas/`, in key
    /// order (name them so that order is their 連番's, `000123.csv`), after the extract. An
    /// applied delta leaves the folder (deleted by version); one the register is not ready for
    /// (a gap: an earlier delta has not arrived) or that raced another agent stays for the
    /// next round, and the later ones wait behind it; a refused one goes to
    /// `register-deltas/rejected/` with a report under `reports/register/`. The local copy
    /// is removed at once. Returns the deltas applied.
    fn sync_deltas(
        &self,
        store: &mut dyn kenko_store::Store,
        key: &crate::crypto::DataKey,
        dirs: &super::Dirs,
    ) -> Result<usize, S3InboxError> {
        use crate::register::RegisterError;
        let waiting: Vec<_> = self
            .rt
            .block_on(kenko_aws::inbox::list_folder(
                &self.client,
                &self.bucket,
                &self.prefix,
                "register-deltas",
            ))?
            .into_iter()
            .filter(|o| inbox::is_candidate_name(&o.name))
            .collect();
        let mut applied = 0;
        for obj in waiting {
            let local = dirs.root.join(".register-delta.s3part");
            std::fs::create_dir_all(&dirs.root).map_err(at(&dirs.root))?;
            let fetched = self.fetch_to(&obj.key, &local);
            let result = match fetched {
                Ok(Some((f, _))) => Some((f, crate::register::delta::apply(store, key, &local))),
                Ok(None) => None,
                Err(e) => {
                    let _ = std::fs::remove_file(&local);
                    return Err(e);
                }
            };
            match std::fs::remove_file(&local) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&local)(e).into()),
            }
            // Taken by another agent meanwhile.
            let Some((fetched, result)) = result else {
                continue;
            };
            let uri = self.uri(&obj.key);
            match result {
                Ok(s) => {
                    tracing::info!(delta = %uri, rows = s.rows, already_applied = s.already_applied, residents = s.residents, seq = s.seq, "s3 inbox: register delta applied");
                    applied += 1;
                }
                Err(e @ (RegisterError::DeltaGap { .. } | RegisterError::DeltaRaced { .. })) => {
                    let message = e.to_string().replace(&local.display().to_string(), &uri);
                    tracing::warn!(delta = %uri, reason = e.reason(), error = %message, "s3 inbox: register delta waits for the next round");
                    break;
                }
                Err(e @ RegisterError::Store(_)) => return Err(e.into()),
                Err(e) => {
                    let reason = e.reason();
                    let message = e.to_string().replace(&local.display().to_string(), &uri);
                    tracing::error!(delta = %uri, reason, error = %message, "s3 inbox: register delta refused; the register in use stays");
                    let report = serde_json::json!({
                        "delta": uri,
                        "applied": false,
                        "reason": reason,
                        "error": message,
                    });
                    self.put(
                        &format!("reports/register/{}.json", obj.name),
                        serde_json::to_vec_pretty(&report).expect("json"),
                    )?;
                    self.rt.block_on(kenko_aws::inbox::copy(
                        &self.client,
                        &self.bucket,
                        &obj.key,
                        fetched.version_id.as_deref(),
                        &format!("{}register-deltas/rejected/{}", self.prefix, obj.name),
                    ))?;
                }
            }
            self.rt.block_on(kenko_aws::inbox::delete(
                &self.client,
                &self.bucket,
                &obj.key,
                fetched.version_id.as_deref(),
            ))?;
        }
        Ok(applied)
    }

    /// Where a report waits for its file's commit: outside `reports/`, where institutions
    /// look.
    fn pending_key(&self, relative: &str) -> String {
        format!("{}.kenko/pending/{relative}", self.prefix)
    }

    /// Puts `bytes` at `relative` (a data-directory path) under the prefix.
    fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), kenko_aws::AwsError> {
        self.rt.block_on(kenko_aws::inbox::put(
            &self.client,
            &self.bucket,
            &format!("{}{relative}", self.prefix),
            bytes,
        ))
    }
}

#[cfg(feature = "cloud")]
impl Publish for S3Inbox {
    fn pending(&self, relative: &str, bytes: &[u8]) -> Result<(), IntakeError> {
        self.rt
            .block_on(kenko_aws::inbox::put(
                &self.client,
                &self.bucket,
                &self.pending_key(relative),
                bytes.to_vec(),
            ))
            .map_err(|e| IntakeError::Publish(e.to_string()))
    }

    fn fee_report(&self, relative: &str, bytes: &[u8]) -> Result<(), IntakeError> {
        self.put(relative, bytes.to_vec())
            .map_err(|e| IntakeError::Publish(e.to_string()))
    }
}

#[cfg(feature = "cloud")]
fn read_origin(file: &Path) -> Option<Origin> {
    let bytes = std::fs::read(origin_path(file)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
