//! The access monitor's checkpoint: per input, the exact file and byte offset of the last
//! complete line taken in, the detector's learned state, how far the chain and the alert file
//! had been written, and event counts. Written atomically (temporary file, fsync, rename, fsync
//! of the directory) at intervals and at shutdown. After a crash the monitor restarts from it:
//! the bytes after it are read again into the restored detector, so no event is counted twice
//! and none is missed; chain records written after it are uncommitted and dropped; alerts
//! already in the alert file after it are recognised by their id and not written again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kenko_access::DetectorState;
use serde::{Deserialize, Serialize};

use super::input::LinePosition;
use super::AccessError;

/// Bumped when the format changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// UTC epoch seconds when written.
    pub written_at: i64,
    /// Health access log and Kubernetes audit log positions, by source name.
    pub lines: BTreeMap<String, LinePosition>,
    /// The path each line input had (a changed path starts that input afresh).
    pub paths: BTreeMap<String, String>,
    /// Stacks' app pod logs (container logs under `pod_logs`), by path.
    #[serde(default)]
    pub pod_logs: BTreeMap<String, LinePosition>,
    /// CloudTrail files taken in (relative to the folder).
    pub cloudtrail_done: BTreeSet<String>,
    /// Events taken in, by source name, since the first start.
    pub events: BTreeMap<String, u64>,
    /// Lines or records that could not be read, by source name.
    pub errors: BTreeMap<String, u64>,
    /// Bytes of the chain's segment log that are committed.
    pub chain_len: u64,
    /// Bytes of the alert file written when the checkpoint was taken.
    pub alert_file_len: u64,
    /// The detector.
    pub detector: Option<DetectorState>,
}

impl Checkpoint {
    /// Reads the checkpoint; None when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, AccessError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AccessError::Checkpoint {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let c: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| AccessError::Checkpoint {
                path: path.display().to_string(),
                message: format!(
                    "not a checkpoint (line {} column {}); move it away to start from the beginning of every log",
                    e.line(),
                    e.column()
                ),
            })?;
        if c.format != FORMAT {
            return Err(AccessError::Checkpoint {
                path: path.display().to_string(),
                message: format!("format {} (this agent reads {FORMAT})", c.format),
            });
        }
        Ok(Some(c))
    }

    /// Writes it atomically.
    pub fn store(&self, path: &Path) -> Result<(), AccessError> {
        let bytes = serde_json::to_vec(self).expect("a checkpoint serialises");
        crate::fsutil::atomic_write(path, &bytes).map_err(|e| AccessError::Checkpoint {
            path: path.display().to_string(),
            message: e.to_string(),
        })
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
    fn round_trip_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.json");
        assert_eq!(Checkpoint::load(&p).unwrap(), None);
        let mut c = Checkpoint {
            format: FORMAT,
            ..Default::default()
        };
        c.events.insert("health".into(), 42);
        c.store(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap(), Some(c));
        std::fs::write(&p, b"{\"format\":").unwrap();
        let e = Checkpoint::load(&p).unwrap_err();
        assert_eq!(e.reason(), "access_checkpoint_invalid");
        assert!(e.to_string().contains("checkpoint.json"), "{e}");
    }
}
