//! Tamper evidence on disk: every segment the monitor takes in is appended to
//! `chain/segments.jsonl` as a [`SegmentRecord`] (a SHA-256 link to the one before), and each
//! finished JST day gets a [`DailyDigest`] in `chain/digests.jsonl` (also logged, so it leaves
//! the node with the logs). `kenko-agent audit-log verify DIR` re-reads the logs the records
//! name (finding rotated files by their identity) and reports any changed, removed or
//! reordered segment, and any altered, removed or reordered record or digest.
//!
//! Records after the last checkpoint are uncommitted: after a crash they are cut off and the
//! same bytes are taken in (and chained) again. A day is digested only once all its records
//! are committed, so a digest never covers a record a restart could drop.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use kenko_access::calendar::jst_day;
use kenko_access::chain::{
    self, digest_day, Chain, DailyDigest, Finding, SegmentDigest, SegmentRecord,
};

use super::input::{find_by_id, parse_chain_name};
use super::AccessError;

pub const SEGMENTS: &str = "segments.jsonl";
pub const DIGESTS: &str = "digests.jsonl";

/// The append-only chain log of a running monitor.
#[derive(Debug)]
pub struct ChainLog {
    dir: PathBuf,
    seg: File,
    chain: Chain,
    /// Bytes of `segments.jsonl` written.
    len: u64,
    /// Bytes written by the time of the last stored checkpoint.
    committed_len: u64,
    /// Records not yet covered by a digest: committed ones first, then `uncommitted` of them.
    undigested: Vec<SegmentRecord>,
    uncommitted: usize,
    last_digest: Option<DailyDigest>,
}

fn chain_err(path: &Path, message: impl Into<String>) -> AccessError {
    AccessError::Chain {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a chain directory's records and digests. Errors name the file and line.
pub fn read_dir(dir: &Path) -> Result<(Vec<SegmentRecord>, Vec<DailyDigest>), AccessError> {
    let seg_path = dir.join(SEGMENTS);
    let text = match std::fs::read_to_string(&seg_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(chain_err(&seg_path, e.to_string())),
    };
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            SegmentRecord::from_json_line(line)
                .map_err(|m| chain_err(&seg_path, format!("line {}: {m}", i + 1)))?,
        );
    }
    let dig_path = dir.join(DIGESTS);
    let text = match std::fs::read_to_string(&dig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(chain_err(&dig_path, e.to_string())),
    };
    let mut digests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        digests.push(serde_json::from_str::<DailyDigest>(line).map_err(|e| {
            chain_err(
                &dig_path,
                format!("line {}: not a daily digest (column {})", i + 1, e.column()),
            )
        })?);
    }
    Ok((records, digests))
}

impl ChainLog {
    /// Opens (or creates) the chain in `dir`. With a checkpoint, records after its
    /// `committed_len` are cut off (uncommitted: their bytes will be read again).
    pub fn open(dir: &Path, committed_len: Option<u64>) -> Result<ChainLog, AccessError> {
        std::fs::create_dir_all(dir).map_err(|e| chain_err(dir, e.to_string()))?;
        let seg_path = dir.join(SEGMENTS);
        let seg = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&seg_path)
            .map_err(|e| chain_err(&seg_path, e.to_string()))?;
        let mut len = seg
            .metadata()
            .map_err(|e| chain_err(&seg_path, e.to_string()))?
            .len();
        match committed_len {
            Some(c) if c < len => {
                seg.set_len(c)
                    .and_then(|_| seg.sync_all())
                    .map_err(|e| chain_err(&seg_path, e.to_string()))?;
                tracing::info!(
                    dropped_bytes = len - c,
                    "access monitor: uncommitted chain records after the checkpoint dropped"
                );
                len = c;
            }
            Some(c) if c > len => {
                return Err(chain_err(
                    &seg_path,
                    format!("shorter ({len} bytes) than the checkpoint says ({c} bytes): records were removed"),
                ));
            }
            _ => {}
        }
        let (records, digests) = read_dir(dir)?;
        let chain = records.last().map_or_else(Chain::new, Chain::resume);
        let last_digest = digests.last().cloned();
        let digested = last_digest.as_ref().map_or(0, |d| d.last_seq);
        let undigested: Vec<SegmentRecord> =
            records.into_iter().filter(|r| r.seq > digested).collect();
        Ok(ChainLog {
            dir: dir.to_path_buf(),
            seg,
            chain,
            len,
            committed_len: len,
            undigested,
            uncommitted: 0,
            last_digest,
        })
    }

    /// Chains a segment and appends its record (not yet synced).
    pub fn append(
        &mut self,
        name: &str,
        start: u64,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), AccessError> {
        let r = self.chain.append(name, start, bytes, now);
        self.write_record(r)
    }

    fn write_record(&mut self, r: SegmentRecord) -> Result<(), AccessError> {
        let mut line = r.to_json_line();
        line.push('\n');
        self.seg
            .write_all(line.as_bytes())
            .map_err(|e| chain_err(&self.dir.join(SEGMENTS), e.to_string()))?;
        self.len += line.len() as u64;
        self.undigested.push(r);
        self.uncommitted += 1;
        Ok(())
    }

    /// Chains a segment hashed piece by piece (a line past the limit, read through).
    pub fn append_hashed(
        &mut self,
        name: &str,
        start: u64,
        digest: SegmentDigest,
        now: i64,
    ) -> Result<(), AccessError> {
        let r = self.chain.append_hashed(name, start, digest, now);
        self.write_record(r)
    }

    /// Syncs the records; returns the length to store in the checkpoint. Digests the finished
    /// days whose records were all committed by an earlier checkpoint.
    pub fn sync(&mut self, now: i64) -> Result<u64, AccessError> {
        self.seg
            .sync_data()
            .map_err(|e| chain_err(&self.dir.join(SEGMENTS), e.to_string()))?;
        let today = jst_day(now);
        let committed = self.undigested.len() - self.uncommitted;
        let mut done = 0;
        let mut out = String::new();
        while done < committed {
            let day = jst_day(self.undigested[done].ingested_at);
            if day >= today {
                break;
            }
            let mut end = done;
            while end < self.undigested.len() && jst_day(self.undigested[end].ingested_at) == day {
                end += 1;
            }
            if end > committed {
                break;
            }
            let d = digest_day(
                self.last_digest.as_ref().map(|d| d.digest.as_str()),
                &self.undigested[done..end],
            )
            .expect("a day has records");
            tracing::info!(
                day = %d.day,
                digest = %d.digest,
                segments = d.segments,
                "access monitor: daily digest of the ingested logs"
            );
            out.push_str(&serde_json::to_string(&d).expect("a digest serialises"));
            out.push('\n');
            self.last_digest = Some(d);
            done = end;
        }
        if !out.is_empty() {
            let path = self.dir.join(DIGESTS);
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| chain_err(&path, e.to_string()))?;
            f.write_all(out.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(|e| chain_err(&path, e.to_string()))?;
            crate::fsutil::sync_dir(&self.dir).map_err(|e| chain_err(&self.dir, e.to_string()))?;
            self.undigested.drain(..done);
        }
        Ok(self.len)
    }

    /// The checkpoint holding the length returned by [`ChainLog::sync`] is stored.
    pub fn committed(&mut self, len: u64) {
        if len == self.len {
            self.uncommitted = 0;
        }
        self.committed_len = len;
    }

    /// Records not covered by a published digest yet.
    pub fn undigested(&self) -> usize {
        self.undigested.len()
    }
}

/// What `audit-log verify` found.
#[derive(Debug)]
pub struct Verification {
    pub records: usize,
    pub digests: usize,
    pub files: usize,
    pub bytes: u64,
    /// (finding, the log file it concerns when it is about a segment).
    pub findings: Vec<(Finding, Option<String>)>,
}

/// Verifies a chain directory against the logs its records name (`dir` may also be the
/// monitor's state directory holding `chain/`).
pub fn verify_dir(dir: &Path) -> Result<Verification, AccessError> {
    let dir = if dir.join("chain").join(SEGMENTS).exists() {
        dir.join("chain")
    } else {
        dir.to_path_buf()
    };
    if !dir.join(SEGMENTS).exists() {
        return Err(chain_err(
            &dir.join(SEGMENTS),
            "no chain here (expected the access monitor's state or chain directory)",
        ));
    }
    let (records, digests) = read_dir(&dir)?;
    // The logs, each read once, found by identity (a rotated file is found next to its path).
    let mut files: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    // How findings name a file: where it is now (a rotated file under its new name), or the
    // recorded path and identity when it is gone.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for r in &records {
        if !files.contains_key(&r.file) {
            let (path, gone) = match parse_chain_name(&r.file) {
                Some((p, id)) => (
                    find_by_id(&p, id),
                    format!(
                        "{} (device {} inode {}, not found)",
                        p.display(),
                        id.dev,
                        id.ino
                    ),
                ),
                None => (Some(PathBuf::from(&r.file)), r.file.clone()),
            };
            let content = path.as_ref().and_then(|p| std::fs::read(p).ok());
            let name = match (&path, &content) {
                (Some(p), Some(_)) => p.display().to_string(),
                _ => gone,
            };
            names.insert(r.file.clone(), name);
            files.insert(r.file.clone(), content);
        }
    }
    let mut findings: Vec<(Finding, Option<String>)> = chain::verify(&records, &digests, |r| {
        let f = files.get(&r.file)?.as_ref()?;
        let (s, e) = (r.start as usize, r.end as usize);
        Some(Cow::Borrowed(f.get(s..e.min(f.len()))?))
    })
    .into_iter()
    // Segments are judged per file below, where a moved segment can be told from a changed one.
    .filter(|f| {
        !matches!(
            f,
            Finding::SegmentChanged { .. }
                | Finding::SegmentRemoved { .. }
                | Finding::SegmentHoldsOther { .. }
                | Finding::SegmentMoved { .. }
        )
    })
    .map(|f| (f, None))
    .collect();
    let mut bytes = 0;
    for (name, content) in &files {
        let recs: Vec<SegmentRecord> = records
            .iter()
            .filter(|r| &r.file == name)
            .cloned()
            .collect();
        let display = names[name].clone();
        match content {
            Some(b) => {
                bytes += b.len() as u64;
                for f in chain::verify_file(&recs, b) {
                    findings.push((f, Some(display.clone())));
                }
            }
            None => {
                let mut seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
                seqs.sort_unstable();
                for seq in seqs {
                    findings.push((Finding::SegmentRemoved { seq }, Some(display.clone())));
                }
            }
        }
    }
    Ok(Verification {
        records: records.len(),
        digests: digests.len(),
        files: files.len(),
        bytes,
        findings,
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn days_are_digested_once_committed_and_uncommitted_records_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let day1 = kenko_access::Date::new(2026, 11, 2)
            .unwrap()
            .jst_midnight_epoch()
            + 3600;
        let day2 = day1 + 86_400;
        let seg = |i: u64| format!("{{\"n\":{i}}}\n").into_bytes();
        let mut c = ChainLog::open(dir.path(), None).unwrap();
        c.append("f", 0, &seg(1), day1).unwrap();
        c.append("f", 8, &seg(2), day1 + 60).unwrap();
        // Day 1 is over, but its records are not committed yet: no digest.
        let len = c.sync(day2).unwrap();
        assert!(!dir.path().join(DIGESTS).exists());
        c.committed(len);
        c.append("f", 16, &seg(3), day2).unwrap();
        let len = c.sync(day2 + 1).unwrap();
        c.committed(len);
        let (records, digests) = read_dir(dir.path()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(digests.len(), 1);
        assert_eq!((digests[0].first_seq, digests[0].last_seq), (1, 2));
        assert_eq!(digests, chain::daily_digests(&records)[..1]);
        // A record after the checkpoint is dropped on reopening, and the chain continues.
        c.append("f", 24, &seg(4), day2 + 2).unwrap();
        c.sync(day2 + 2).unwrap();
        drop(c);
        let mut c = ChainLog::open(dir.path(), Some(len)).unwrap();
        assert_eq!(read_dir(dir.path()).unwrap().0.len(), 3);
        c.append("f", 24, &seg(4), day2 + 3).unwrap();
        c.sync(day2 + 3).unwrap();
        let (records, digests) = read_dir(dir.path()).unwrap();
        let bytes: Vec<Vec<u8>> = (1..=4).map(seg).collect();
        let found = chain::verify(&records, &digests, |r| {
            Some(Cow::Owned(bytes[(r.seq - 1) as usize].clone()))
        });
        assert!(found.is_empty(), "{found:?}");
        // A chain shorter than its checkpoint is refused.
        let e = ChainLog::open(dir.path(), Some(10_000_000)).unwrap_err();
        assert_eq!(e.reason(), "access_chain_failed");
    }
}
