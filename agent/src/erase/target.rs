//! What a job erases and how far it got: each target of the job planned into the files it
//! overwrites (a file, a folder's files, a device, a data key's file) and one [`Progress`] for
//! what its kind does beyond them (a cloud deletion and its check, a purge, a key's evidence).
//! Both live in the checkpoint, so a resumed job knows what is done; `Progress` is one enum so
//! a target can hold only one kind's record (never an S3 deletion beside a KMS schedule).
//! Planning reads the media (sizes, sysfs, mounts) but writes nothing.

use std::path::{Path, PathBuf};

use kenko_cert::Media;
use serde::{Deserialize, Serialize};

use super::purge::PurgeDone;
use super::{hostname, io, EraseContext, EraseError, EraseTarget};

/// One file of a target, as the checkpoint tracks it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct FileState {
    pub path: PathBuf,
    /// A whole block device: overwritten and verified, but not renamed or unlinked.
    #[serde(default)]
    pub device: bool,
    pub size: u64,
    /// Bytes overwritten and synced so far.
    pub written: u64,
    pub verified: bool,
    pub unlinked: bool,
    /// The file's identity when planned (device, inode): whatever is opened, overwritten,
    /// verified or unlinked later must still be this file, not one swapped in since.
    #[serde(default)]
    pub identity: Option<(u64, u64)>,
    /// Bytes that held data and were overwritten (less than `size` for a sparse file, whose
    /// holes hold nothing and are not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwritten: Option<u64>,
    /// Why this entry is removed without being overwritten, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_overwritten: Option<NotOverwritten>,
}

/// An entry of a target that is not overwritten. The first two hold no data of their own and
/// are only removed; the last two hold data an overwrite cannot reach without changing
/// something outside the target, so the certificate lists them as blocked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum NotOverwritten {
    /// A symbolic link: the link is removed; what it points to is never followed.
    Link,
    /// A FIFO, socket or device node: removed, never opened.
    Special,
    /// A file with another name (a hard link), maybe outside the target: overwriting it
    /// would change that file too. Its name here is removed; its data remains.
    HardLinked,
    /// A file whose blocks are shared with another file or a snapshot (a reflinked copy):
    /// an overwrite writes new blocks and leaves the shared ones. Its name here is removed;
    /// its data remains in the blocks the copy shares.
    SharedBlocks,
}

impl NotOverwritten {
    /// Whether data remains after the entry is removed (the certificate's blocked items).
    pub(super) fn data_remains(self) -> bool {
        matches!(
            self,
            NotOverwritten::HardLinked | NotOverwritten::SharedBlocks
        )
    }

    /// What the certificate says about it.
    pub(super) fn explain(self) -> &'static str {
        match self {
            NotOverwritten::Link => "a symbolic link: removed; what it points to was not followed",
            NotOverwritten::Special => "a FIFO, socket or device node: removed, never opened",
            NotOverwritten::HardLinked => {
                "a file with another name (a hard link): not overwritten, since that would change the file under its other name, which may be outside the target; its name here was removed and its data remains under the other name"
            }
            NotOverwritten::SharedBlocks => {
                "a file whose blocks are shared with another file or a snapshot (a reflinked copy): an overwrite would write new blocks and leave the shared ones, so it was not overwritten; its name here was removed and its data remains in the blocks the copy holds"
            }
        }
    }
}

impl FileState {
    fn new(path: PathBuf, device: bool, size: u64) -> FileState {
        FileState {
            path,
            device,
            size,
            written: 0,
            verified: false,
            unlinked: false,
            identity: None,
            overwritten: None,
            not_overwritten: None,
        }
    }

    /// A regular file as planned from its metadata: its identity, and whether an overwrite
    /// can reach its data.
    fn regular(path: PathBuf, meta: &std::fs::Metadata) -> Result<FileState, EraseError> {
        use std::os::unix::fs::MetadataExt;
        let shared = if meta.nlink() > 1 {
            Some(NotOverwritten::HardLinked)
        } else if super::extents::shares_blocks(&path)
            .map_err(io(Path::new("a file of the target (names are not shown)")))?
        {
            Some(NotOverwritten::SharedBlocks)
        } else {
            None
        };
        Ok(FileState {
            identity: Some((meta.dev(), meta.ino())),
            verified: shared.is_some(),
            not_overwritten: shared,
            ..FileState::new(path, false, meta.len())
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct TargetState {
    pub spec: EraseTarget,
    pub files: Vec<FileState>,
    /// Folders to remove (deepest first) once their files are gone.
    pub dirs: Vec<PathBuf>,
    pub bytes_checked: u64,
    pub locations_checked: u64,
    /// What the target's kind did beyond its files, once done.
    pub progress: Progress,
}

/// What a target's kind did beyond overwriting its files, saved once done so a resumed job
/// does not do it twice. Which variant a kind reaches: `s3://` → `S3`, `kms:` → `Kms`,
/// `ebs-snapshot:` → `Snapshot`, `ebs-volume:` → `Volume`, `backup-rp:` → `RecoveryPoint`,
/// `backup-vault:` → `Vault`, `datakey:` → `DataKey` (from planning), a purged `device:` →
/// `Purge`; files, folders and cleared devices stay `Planned`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum Progress {
    /// Planned: nothing beyond the files (which track their own progress) is done yet; where
    /// the kind has nothing beyond its files, it stays here.
    Planned,
    /// Evidence for a cryptographic erase of a data key, taken before the key is touched.
    DataKey(CryptoEvidence),
    Purge(PurgeDone),
    S3(S3Done),
    Kms(KmsDone),
    Snapshot(SnapDone),
    RecoveryPoint(RecoveryPointDone),
    Volume(VolumeDone),
    Vault(VaultDone),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct VolumeDone {
    pub region: String,
    pub volume_id: String,
    pub size_gib: i32,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct VaultDone {
    pub region: String,
    pub vault_name: String,
    pub points: Vec<RecoveryPointDone>,
    pub others: u64,
    pub remaining_after: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct RecoveryPointDone {
    pub region: String,
    pub vault_name: String,
    pub recovery_point_arn: String,
    pub bytes: u64,
    pub blocked_until: Option<String>,
    pub gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct SnapDone {
    pub region: String,
    pub snapshot_id: String,
    pub volume_gib: i32,
    pub gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct KmsDone {
    pub key_id: String,
    pub region: String,
    pub state_before: String,
    pub deletion_date: String,
    pub pending_days: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct S3Done {
    pub region: String,
    pub versions: u64,
    pub markers: u64,
    pub bytes: u64,
    /// (key, version id, reason, retain-until)
    pub blocked: Vec<(String, String, String, Option<String>)>,
    pub remaining_after: u64,
    pub listed_after: u64,
}

/// Evidence for a cryptographic erase, taken before the key is touched (kept in the
/// checkpoint, so a resumed job still has it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct CryptoEvidence {
    pub key_id: String,
    /// Ciphertext locations sampled from the store.
    pub sampled: u64,
    /// How many of them the key decrypted before the erase.
    pub decrypted_before: u64,
}

impl TargetState {
    /// A target with nothing done yet; kinds fill in their own part.
    fn new(spec: &EraseTarget) -> TargetState {
        TargetState {
            spec: spec.clone(),
            files: vec![],
            dirs: vec![],
            bytes_checked: 0,
            locations_checked: 0,
            progress: Progress::Planned,
        }
    }

    /// The purge record of a purged device, once its samples were taken.
    pub(super) fn purge(&self) -> Option<&PurgeDone> {
        match &self.progress {
            Progress::Purge(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn purge_mut(&mut self) -> Option<&mut PurgeDone> {
        match &mut self.progress {
            Progress::Purge(p) => Some(p),
            _ => None,
        }
    }
}

/// The files of a target as they are on disk now (or, for a data key, with the evidence that
/// the store's ciphertexts decrypt under it).
pub(super) fn plan(spec: &EraseTarget, ctx: &EraseContext) -> Result<TargetState, EraseError> {
    let (files, dirs) = match spec {
        EraseTarget::DataKey { name } => return plan_datakey(spec, name, ctx),
        // Cloud objects and KMS keys: what they hold is read when they are erased.
        EraseTarget::EbsSnapshot { .. }
        | EraseTarget::EbsVolume { .. }
        | EraseTarget::BackupRecoveryPoint { .. }
        | EraseTarget::BackupVault { .. }
        | EraseTarget::Kms { .. }
        | EraseTarget::S3 { .. } => return Ok(TargetState::new(spec)),
        EraseTarget::Pvc { .. } => return Err(EraseError::ClusterTarget(spec.to_string())),
        EraseTarget::File { path } => {
            let path = PathBuf::from(path);
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if !meta.is_file() {
                return Err(EraseError::Io {
                    path,
                    message: "not a regular file".into(),
                });
            }
            super::extents::refuse_copy_on_write(&path, spec)?;
            (vec![FileState::regular(path, &meta)?], vec![])
        }
        EraseTarget::Device { path } => {
            let (path, size) = block_device(Path::new(path))?;
            (vec![FileState::new(path, true, size)], vec![])
        }
        EraseTarget::Dir { path } => {
            let mut files = Vec::new();
            let mut dirs = Vec::new();
            super::extents::refuse_copy_on_write(Path::new(path), spec)?;
            walk(Path::new(path), &mut files, &mut dirs)?;
            dirs.reverse();
            (files, dirs)
        }
    };
    Ok(TargetState {
        files,
        dirs,
        ..TargetState::new(spec)
    })
}

/// A data key: the evidence first (the store's ciphertexts decrypt under it now), then the
/// key file is cleared like any file. Reading the key never creates one.
fn plan_datakey(
    spec: &EraseTarget,
    name: &str,
    ctx: &EraseContext,
) -> Result<TargetState, EraseError> {
    let path = ctx.data_key_path(name);
    let raw = std::fs::read(&path).map_err(io(&path))?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| EraseError::Io {
        path: path.clone(),
        message: "not a 32-byte data key".into(),
    })?;
    let key = crate::crypto::DataKey::from_bytes(&raw);
    let mut store = kenko_store::open(&ctx.database_url).map_err(|e| EraseError::Io {
        path: PathBuf::from(kenko_store::redact_url(&ctx.database_url)),
        message: e.to_string(),
    })?;
    let sample = store.sample_ciphertexts(1000).map_err(|e| EraseError::Io {
        path: PathBuf::from(kenko_store::redact_url(&ctx.database_url)),
        message: e.to_string(),
    })?;
    let decrypted = sample
        .iter()
        .filter(|(no, ct)| key.open(*no, ct).is_ok())
        .count() as u64;
    let size = std::fs::metadata(&path).map_err(io(&path))?.len();
    Ok(TargetState {
        files: vec![FileState::new(path, false, size)],
        progress: Progress::DataKey(CryptoEvidence {
            key_id: key.id_hex(),
            sampled: sample.len() as u64,
            decrypted_before: decrypted,
        }),
        ..TargetState::new(spec)
    })
}

/// A whole block device's canonical path and size (from sysfs, no ioctl needed), refused when
/// it, or a partition of it, is mounted or held by another device (LVM, RAID, dm-crypt).
fn block_device(p: &Path) -> Result<(PathBuf, u64), EraseError> {
    use std::os::unix::fs::FileTypeExt;
    let path = std::fs::canonicalize(p).map_err(io(p))?;
    let meta = std::fs::metadata(&path).map_err(io(&path))?;
    if !meta.file_type().is_block_device() {
        return Err(EraseError::Io {
            path,
            message: "not a block device".into(),
        });
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let sys = Path::new("/sys/class/block").join(&name);
    let sectors: u64 = std::fs::read_to_string(sys.join("size"))
        .map_err(io(&sys))?
        .trim()
        .parse()
        .map_err(|_| EraseError::Io {
            path: sys.join("size"),
            message: "unreadable size".into(),
        })?;
    let in_use = |problem: String| EraseError::DeviceInUse {
        path: path.clone(),
        problem,
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let source = line.split_whitespace().next().unwrap_or_default();
        let source_name = Path::new(source)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if source.starts_with("/dev/") && source_name.starts_with(&name) {
            return Err(in_use(format!("{source} is mounted")));
        }
    }
    if std::fs::read_dir(sys.join("holders")).is_ok_and(|mut d| d.next().is_some()) {
        return Err(in_use(
            "it is held by another device (LVM, RAID or dm-crypt)".into(),
        ));
    }
    Ok((path, sectors * 512))
}

/// Where the certificate's media description comes from for a device (sysfs, when present).
fn device_media(path: &Path) -> (String, String, String) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let read = |f: &str| {
        std::fs::read_to_string(Path::new("/sys/class/block").join(&name).join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let rotational = read("queue/rotational");
    let kind = match (name.starts_with("loop"), rotational.as_str()) {
        (true, _) => "block device (loop)".to_string(),
        (_, "1") => "block device (magnetic)".to_string(),
        (_, "0") => "block device (flash)".to_string(),
        _ => "block device".to_string(),
    };
    (read("device/vendor"), read("device/model"), kind)
}

fn walk(dir: &Path, files: &mut Vec<FileState>, dirs: &mut Vec<PathBuf>) -> Result<(), EraseError> {
    dirs.push(dir.to_path_buf());
    let shown = Path::new("a folder of the target (names are not shown)");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(shown))?
        .collect::<Result<_, _>>()
        .map_err(io(shown))?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).map_err(io(Path::new(
            "an entry of the folder target (names are not shown)",
        )))?;
        if meta.is_dir() {
            walk(&p, files, dirs)?;
        } else if meta.is_file() {
            files.push(FileState::regular(p, &meta)?);
        } else {
            use std::os::unix::fs::MetadataExt;
            // A symlink or special file holds no data of its own: removed, not overwritten,
            // never opened or followed.
            let kind = if meta.file_type().is_symlink() {
                NotOverwritten::Link
            } else {
                NotOverwritten::Special
            };
            files.push(FileState {
                verified: true,
                identity: Some((meta.dev(), meta.ino())),
                not_overwritten: Some(kind),
                ..FileState::new(p, false, 0)
            });
        }
    }
    Ok(())
}

/// What kenko knows about a target's medium (Appendix G "Media Information").
pub(super) fn media_of(t: &TargetState, classification: &str) -> Media {
    let cloud = |kind: String| (kind, t.spec.to_string(), String::new(), String::new());
    let (media_type, source, manufacturer, model) = match &t.progress {
        Progress::Vault(v) => cloud(format!("backup recovery points (AWS Backup, {})", v.region)),
        Progress::Volume(v) => cloud(format!("block storage volume (Amazon EBS, {})", v.region)),
        Progress::RecoveryPoint(rp) => {
            cloud(format!("backup recovery point (AWS Backup, {})", rp.region))
        }
        Progress::Snapshot(d) => {
            cloud(format!("block storage snapshot (Amazon EBS, {})", d.region))
        }
        Progress::Kms(k) => cloud(format!("cryptographic key (AWS KMS, {})", k.region)),
        Progress::S3(d) => cloud(format!("cloud object storage (Amazon S3, {})", d.region)),
        Progress::DataKey(_) => (
            "cryptographic key (AES-256-GCM data key of the record store)".to_string(),
            hostname(),
            String::new(),
            String::new(),
        ),
        Progress::Planned | Progress::Purge(_) => match t.files.first().filter(|f| f.device) {
            Some(f) => {
                let (manufacturer, model, kind) = device_media(&f.path);
                (kind, hostname(), manufacturer, model)
            }
            None => {
                let kind = if matches!(t.spec, EraseTarget::Dir { .. }) {
                    "folder on a file system"
                } else {
                    "file"
                };
                (kind.to_string(), hostname(), String::new(), String::new())
            }
        },
    };
    Media {
        manufacturer,
        model,
        media_type,
        source,
        classification: classification.to_string(),
        ..Default::default()
    }
}

/// Overrides detected media fields with what the operator gave (non-empty fields only).
pub(super) fn apply_media(m: &mut Media, given: &Media) {
    for (dst, src) in [
        (&mut m.manufacturer, &given.manufacturer),
        (&mut m.model, &given.model),
        (&mut m.serial_number, &given.serial_number),
        (&mut m.property_number, &given.property_number),
        (&mut m.media_type, &given.media_type),
        (&mut m.source, &given.source),
        (&mut m.classification, &given.classification),
    ] {
        if !src.is_empty() {
            dst.clone_from(src);
        }
    }
    if given.backed_up {
        m.backed_up = true;
        m.backup_location.clone_from(&given.backup_location);
    }
}
