//! Tamper evidence for the ingested logs: a SHA-256 chain over segments and a daily digest.
//!
//! A *segment* is a byte range of one input file (the agent cuts them at line ends as it reads)
//! with the SHA-256 of those bytes. Each [`SegmentRecord`] is a link: its `link` hashes the
//! previous link, its sequence number, the file name, the range, the content hash, a short
//! fingerprint of the segment's first bytes and the time it was taken in. Changing, removing or
//! reordering any segment or record breaks the chain. Each JST day gets a [`DailyDigest`]
//! (itself chained to the previous day's) that the agent publishes outside the node (an
//! Alertmanager annotation, a WORM bucket, the auditor's inbox): it covers the last records of a
//! day, which no later link protects yet.
//!
//! [`verify`] checks records, digests and segment contents (through a closure that returns a
//! segment's bytes, so it needs no I/O); [`verify_file`] re-finds the segments of one file in
//! its current bytes and tells which were changed, removed or moved. Findings name sequence
//! numbers, days and byte offsets, never content.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calendar::{jst_day, Date};

/// Bytes of a segment's start covered by its fingerprint.
pub const FINGERPRINT_BYTES: usize = 64;

/// One link of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    /// 1, 2, 3, … in the order segments were taken in.
    pub seq: u64,
    /// The input's name as the agent knows it (a path or a CloudTrail object key).
    pub file: String,
    /// Byte range `[start, end)` in the file.
    pub start: u64,
    pub end: u64,
    /// SHA-256 of the segment's bytes.
    pub sha256: [u8; 32],
    /// First 8 bytes of the SHA-256 of the segment's first (up to) 64 bytes: lets
    /// [`verify_file`] find a moved segment without hashing at every offset.
    pub fingerprint: [u8; 8],
    /// UTC epoch seconds when the segment was taken in.
    pub ingested_at: i64,
    /// The previous record's `link` (zeros for the first).
    pub prev: [u8; 32],
    pub link: [u8; 32],
}

impl SegmentRecord {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    fn compute_link(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"kenko-access-segment-v1\0");
        h.update(self.prev);
        h.update(self.seq.to_be_bytes());
        h.update((self.file.len() as u64).to_be_bytes());
        h.update(self.file.as_bytes());
        h.update(self.start.to_be_bytes());
        h.update(self.end.to_be_bytes());
        h.update(self.sha256);
        h.update(self.fingerprint);
        h.update(self.ingested_at.to_be_bytes());
        h.finalize().into()
    }

    /// One JSON line (hex hashes), the form the agent stores.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&RecordJson {
            seq: self.seq,
            file: Cow::Borrowed(&self.file),
            start: self.start,
            end: self.end,
            sha256: hex::encode(self.sha256),
            fingerprint: hex::encode(self.fingerprint),
            ingested_at: self.ingested_at,
            prev: hex::encode(self.prev),
            link: hex::encode(self.link),
        })
        .expect("a record serialises")
    }

    /// Reads [`SegmentRecord::to_json_line`]'s form. The error names the field.
    pub fn from_json_line(line: &str) -> Result<SegmentRecord, String> {
        let j: RecordJson<'_> = serde_json::from_str(line)
            .map_err(|e| format!("not a segment record (column {})", e.column()))?;
        fn hx<const N: usize>(s: &str, field: &str) -> Result<[u8; N], String> {
            let mut out = [0u8; N];
            hex::decode_to_slice(s, &mut out)
                .map_err(|_| format!("field `{field}`: expected {} hex digits", N * 2))?;
            Ok(out)
        }
        Ok(SegmentRecord {
            seq: j.seq,
            file: j.file.into_owned(),
            start: j.start,
            end: j.end,
            sha256: hx(&j.sha256, "sha256")?,
            fingerprint: hx(&j.fingerprint, "fingerprint")?,
            ingested_at: j.ingested_at,
            prev: hx(&j.prev, "prev")?,
            link: hx(&j.link, "link")?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct RecordJson<'a> {
    seq: u64,
    #[serde(borrow)]
    file: Cow<'a, str>,
    start: u64,
    end: u64,
    sha256: String,
    fingerprint: String,
    ingested_at: i64,
    prev: String,
    link: String,
}

fn fingerprint(bytes: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(&bytes[..bytes.len().min(FINGERPRINT_BYTES)]);
    d[..8].try_into().expect("a SHA-256 has 32 bytes")
}

/// A segment's SHA-256, fingerprint and length, computed piece by piece: a segment too long to
/// hold (a log line past the line limit) is chained without being held.
#[derive(Clone, Debug, Default)]
pub struct SegmentHasher {
    sha: Sha256,
    head: Vec<u8>,
    len: u64,
}

/// What [`SegmentHasher`] computed, for [`Chain::append_hashed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentDigest {
    pub sha256: [u8; 32],
    pub fingerprint: [u8; 8],
    pub len: u64,
}

impl SegmentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        let room = FINGERPRINT_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> SegmentDigest {
        SegmentDigest {
            sha256: self.sha.finalize().into(),
            fingerprint: fingerprint(&self.head),
            len: self.len,
        }
    }
}

/// Appends segments.
#[derive(Clone, Debug)]
pub struct Chain {
    head: [u8; 32],
    next_seq: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// An empty chain.
    pub fn new() -> Chain {
        Chain {
            head: [0; 32],
            next_seq: 1,
        }
    }

    /// Continues after the last stored record.
    pub fn resume(last: &SegmentRecord) -> Chain {
        Chain {
            head: last.link,
            next_seq: last.seq + 1,
        }
    }

    /// The latest link.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// Takes in the segment `bytes`, found at `start` in `file`.
    pub fn append(
        &mut self,
        file: &str,
        start: u64,
        bytes: &[u8],
        ingested_at: i64,
    ) -> SegmentRecord {
        let digest = SegmentDigest {
            sha256: Sha256::digest(bytes).into(),
            fingerprint: fingerprint(bytes),
            len: bytes.len() as u64,
        };
        self.append_hashed(file, start, digest, ingested_at)
    }

    /// Takes in a segment hashed piece by piece ([`SegmentHasher`]): the same record
    /// [`Chain::append`] makes of the same bytes.
    pub fn append_hashed(
        &mut self,
        file: &str,
        start: u64,
        digest: SegmentDigest,
        ingested_at: i64,
    ) -> SegmentRecord {
        let mut r = SegmentRecord {
            seq: self.next_seq,
            file: file.to_string(),
            start,
            end: start + digest.len,
            sha256: digest.sha256,
            fingerprint: digest.fingerprint,
            ingested_at,
            prev: self.head,
            link: [0; 32],
        };
        r.link = r.compute_link();
        self.head = r.link;
        self.next_seq += 1;
        r
    }
}

/// The digest of one JST day of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyDigest {
    /// `YYYY-MM-DD`, JST, of the records' `ingested_at`.
    pub day: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: u64,
    pub bytes: u64,
    /// The link of the day's last record (hex).
    pub head: String,
    /// The previous day's digest (hex; zeros for the first day).
    pub prev_digest: String,
    /// SHA-256 over all of the above (hex).
    pub digest: String,
}

impl DailyDigest {
    fn compute(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"kenko-access-day-v1\0");
        h.update(self.day.as_bytes());
        h.update(self.first_seq.to_be_bytes());
        h.update(self.last_seq.to_be_bytes());
        h.update(self.segments.to_be_bytes());
        h.update(self.bytes.to_be_bytes());
        h.update(self.head.as_bytes());
        h.update(self.prev_digest.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The daily digests of records (in sequence order), one per JST day that has records.
pub fn daily_digests(records: &[SegmentRecord]) -> Vec<DailyDigest> {
    let mut out: Vec<DailyDigest> = Vec::new();
    let mut prev = hex::encode([0u8; 32]);
    let mut i = 0;
    while i < records.len() {
        let day = jst_day(records[i].ingested_at);
        let mut j = i;
        while j + 1 < records.len() && jst_day(records[j + 1].ingested_at) == day {
            j += 1;
        }
        let mut d = DailyDigest {
            day: Date::from_days(day).to_string(),
            first_seq: records[i].seq,
            last_seq: records[j].seq,
            segments: (j - i + 1) as u64,
            bytes: records[i..=j].iter().map(SegmentRecord::len).sum(),
            head: hex::encode(records[j].link),
            prev_digest: prev.clone(),
            digest: String::new(),
        };
        d.digest = d.compute();
        prev = d.digest.clone();
        out.push(d);
        i = j + 1;
    }
    out
}

/// The digest of one JST day's records (in sequence order, all ingested that day) following
/// the previous day's digest (`prev`, hex; None for the first day): what [`daily_digests`]
/// yields for that day, without the earlier days' records.
pub fn digest_day(prev: Option<&str>, records: &[SegmentRecord]) -> Option<DailyDigest> {
    let (first, last) = (records.first()?, records.last()?);
    let mut d = DailyDigest {
        day: Date::from_days(jst_day(first.ingested_at)).to_string(),
        first_seq: first.seq,
        last_seq: last.seq,
        segments: records.len() as u64,
        bytes: records.iter().map(SegmentRecord::len).sum(),
        head: hex::encode(last.link),
        prev_digest: prev.map_or_else(|| hex::encode([0u8; 32]), str::to_string),
        digest: String::new(),
    };
    d.digest = d.compute();
    Some(d)
}

/// Something `verify` found. Names sequence numbers, days and offsets only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A record's fields no longer match its own link.
    RecordAltered { seq: u64 },
    /// Records with these sequence numbers are gone.
    RecordsRemoved { first_seq: u64, last_seq: u64 },
    /// A record is not where its sequence number puts it (reordered or duplicated).
    RecordOutOfOrder { seq: u64, position: usize },
    /// The record does not name its predecessor's link (a record rewritten with a new link).
    ChainBroken { seq: u64 },
    /// A published digest does not match its own fields or its predecessor.
    DigestAltered { day: String },
    /// The records of a day no longer produce the published digest.
    DigestMismatch { day: String },
    /// Every record of a day with a published digest is gone.
    DayRemoved { day: String },
    /// The last records of a day are gone (the day now ends before `last_seq`).
    TailRemoved { day: String, last_seq: u64 },
    /// The segment's bytes changed.
    SegmentChanged { seq: u64 },
    /// The segment's bytes are gone.
    SegmentRemoved { seq: u64 },
    /// The bytes in this segment's place are another segment's (reordered).
    SegmentHoldsOther { seq: u64, other_seq: u64 },
    /// The segment was found intact at another offset of its file, out of order.
    SegmentMoved { seq: u64, offset: u64 },
}

impl Finding {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Finding::RecordAltered { .. } => "chain_record_altered",
            Finding::RecordsRemoved { .. } => "chain_records_removed",
            Finding::RecordOutOfOrder { .. } => "chain_record_out_of_order",
            Finding::ChainBroken { .. } => "chain_broken",
            Finding::DigestAltered { .. } => "chain_digest_altered",
            Finding::DigestMismatch { .. } => "chain_digest_mismatch",
            Finding::DayRemoved { .. } => "chain_day_removed",
            Finding::TailRemoved { .. } => "chain_tail_removed",
            Finding::SegmentChanged { .. } => "segment_changed",
            Finding::SegmentRemoved { .. } => "segment_removed",
            Finding::SegmentHoldsOther { .. } | Finding::SegmentMoved { .. } => "segment_reordered",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::RecordAltered { seq } => write!(f, "record {seq}: altered"),
            Finding::RecordsRemoved {
                first_seq,
                last_seq,
            } => write!(f, "records {first_seq}..={last_seq}: removed"),
            Finding::RecordOutOfOrder { seq, position } => {
                write!(f, "record {seq}: out of order (at position {position})")
            }
            Finding::ChainBroken { seq } => {
                write!(f, "record {seq}: does not link to its predecessor")
            }
            Finding::DigestAltered { day } => write!(f, "digest of {day}: altered"),
            Finding::DigestMismatch { day } => {
                write!(f, "digest of {day}: the records no longer match it")
            }
            Finding::DayRemoved { day } => write!(f, "digest of {day}: every record removed"),
            Finding::TailRemoved { day, last_seq } => {
                write!(
                    f,
                    "digest of {day}: records up to {last_seq} removed from the end"
                )
            }
            Finding::SegmentChanged { seq } => write!(f, "segment {seq}: changed"),
            Finding::SegmentRemoved { seq } => write!(f, "segment {seq}: removed"),
            Finding::SegmentHoldsOther { seq, other_seq } => {
                write!(
                    f,
                    "segment {seq}: holds segment {other_seq}'s bytes (reordered)"
                )
            }
            Finding::SegmentMoved { seq, offset } => {
                write!(f, "segment {seq}: moved to byte {offset} (reordered)")
            }
        }
    }
}

/// Indices (into `v`) of one longest strictly increasing subsequence.
fn lis(v: &[u64]) -> Vec<usize> {
    let mut tails: Vec<usize> = Vec::new();
    let mut parent = vec![usize::MAX; v.len()];
    for i in 0..v.len() {
        let pos = tails.partition_point(|&t| v[t] < v[i]);
        if pos > 0 {
            parent[i] = tails[pos - 1];
        }
        if pos == tails.len() {
            tails.push(i);
        } else {
            tails[pos] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut k = tails.last().copied().unwrap_or(usize::MAX);
    while k != usize::MAX {
        out.push(k);
        k = parent[k];
    }
    out.reverse();
    out
}

/// Checks the records (as stored, in stored order), the published digests, and every
/// segment's bytes (`bytes` returns them, or None when they are gone). The chain starts at
/// sequence 1. Returns nothing when all is intact.
pub fn verify<'b>(
    records: &[SegmentRecord],
    digests: &[DailyDigest],
    mut bytes: impl FnMut(&SegmentRecord) -> Option<Cow<'b, [u8]>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Each record against its own link.
    for r in records {
        if r.compute_link() != r.link {
            out.push(Finding::RecordAltered { seq: r.seq });
        }
    }
    // Order: the records not on a longest increasing run of sequence numbers are out of place.
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    let keep = lis(&seqs);
    let mut in_order = vec![false; records.len()];
    for &i in &keep {
        in_order[i] = true;
    }
    for (i, r) in records.iter().enumerate() {
        if !in_order[i] {
            out.push(Finding::RecordOutOfOrder {
                seq: r.seq,
                position: i,
            });
        }
    }
    // Gaps, and links between consecutive sequence numbers.
    let mut sorted: Vec<&SegmentRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    sorted.dedup_by_key(|r| r.seq);
    let mut expected = 1u64;
    let mut prev_link: Option<[u8; 32]> = Some([0; 32]);
    for r in &sorted {
        if r.seq > expected {
            out.push(Finding::RecordsRemoved {
                first_seq: expected,
                last_seq: r.seq - 1,
            });
            prev_link = None;
        }
        if let Some(p) = prev_link {
            if r.prev != p {
                out.push(Finding::ChainBroken { seq: r.seq });
            }
        }
        prev_link = Some(r.link);
        expected = r.seq + 1;
    }
    // Digests: each against itself and its predecessor, then against the records.
    let mut prev = hex::encode([0u8; 32]);
    for d in digests {
        if d.compute() != d.digest || d.prev_digest != prev {
            out.push(Finding::DigestAltered { day: d.day.clone() });
        }
        prev = d.digest.clone();
    }
    // A digest covers its day up to `last_seq` (records taken in later that day are not
    // judged by it).
    for d in digests {
        let day_no = Date::parse(&d.day).map(Date::days);
        let day: Vec<&&SegmentRecord> = sorted
            .iter()
            .filter(|r| r.seq <= d.last_seq && Some(jst_day(r.ingested_at)) == day_no)
            .collect();
        let Some(last) = day.last() else {
            out.push(Finding::DayRemoved { day: d.day.clone() });
            continue;
        };
        if last.seq < d.last_seq {
            out.push(Finding::TailRemoved {
                day: d.day.clone(),
                last_seq: d.last_seq,
            });
            continue;
        }
        let same = day[0].seq == d.first_seq
            && day.len() as u64 == d.segments
            && day.iter().map(|r| r.len()).sum::<u64>() == d.bytes
            && hex::encode(last.link) == d.head;
        if !same {
            out.push(Finding::DigestMismatch { day: d.day.clone() });
        }
    }
    // Contents.
    let by_hash: FxHashMap<[u8; 32], u64> = sorted.iter().map(|r| (r.sha256, r.seq)).collect();
    for r in &sorted {
        match bytes(r) {
            None => out.push(Finding::SegmentRemoved { seq: r.seq }),
            Some(b) => {
                let h: [u8; 32] = Sha256::digest(&b).into();
                if h != r.sha256 {
                    match by_hash.get(&h) {
                        Some(&other) if other != r.seq => out.push(Finding::SegmentHoldsOther {
                            seq: r.seq,
                            other_seq: other,
                        }),
                        _ => out.push(Finding::SegmentChanged { seq: r.seq }),
                    }
                }
            }
        }
    }
    out
}

/// Re-finds the segments of one file (its records, any order) in the file's current bytes:
/// a segment in place is fine; one found intact elsewhere but out of order is
/// [`Finding::SegmentMoved`]; one not found is [`Finding::SegmentChanged`] when unexplained
/// bytes sit where it belongs, else [`Finding::SegmentRemoved`]. Bytes after the last segment
/// (not yet taken in) are not judged.
pub fn verify_file(records: &[SegmentRecord], file: &[u8]) -> Vec<Finding> {
    let mut recs: Vec<&SegmentRecord> = records.iter().collect();
    recs.sort_by_key(|r| r.seq);
    if recs.is_empty() {
        return Vec::new();
    }
    let len = file.len() as u64;
    let at = |r: &SegmentRecord, p: u64| {
        p + r.len() <= len
            && <[u8; 32]>::from(Sha256::digest(&file[p as usize..(p + r.len()) as usize]))
                == r.sha256
    };
    // Fast path: everything in place.
    let mut loc: Vec<Option<u64>> = recs
        .iter()
        .map(|r| at(r, r.start).then_some(r.start))
        .collect();
    if loc.iter().all(Option::is_some) {
        return Vec::new();
    }
    // Slow path: look for the others at line starts, by fingerprint.
    let base = recs.iter().map(|r| r.start).min().unwrap_or(0);
    let starts: Vec<u64> = std::iter::once(base)
        .chain(
            file.iter()
                .enumerate()
                .skip(base as usize)
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i as u64 + 1),
        )
        .filter(|&p| p < len)
        .collect();
    let mut index: FxHashMap<[u8; 8], Vec<u64>> = FxHashMap::default();
    for &p in &starts {
        let end = (p as usize + FINGERPRINT_BYTES).min(file.len());
        index
            .entry(fingerprint(&file[p as usize..end]))
            .or_default()
            .push(p);
    }
    let mut used: Vec<(u64, u64)> = recs
        .iter()
        .zip(&loc)
        .filter_map(|(r, l)| l.map(|p| (p, p + r.len())))
        .collect();
    let overlaps = |used: &[(u64, u64)], a: u64, b: u64| used.iter().any(|&(x, y)| a < y && x < b);
    for (i, r) in recs.iter().enumerate() {
        if loc[i].is_some() {
            continue;
        }
        let short = (r.len() as usize) < FINGERPRINT_BYTES;
        let candidates: Vec<u64> = if short {
            starts.clone()
        } else {
            index.get(&r.fingerprint).cloned().unwrap_or_default()
        };
        for p in candidates {
            if !overlaps(&used, p, p + r.len()) && at(r, p) {
                loc[i] = Some(p);
                used.push((p, p + r.len()));
                break;
            }
        }
    }
    // Order of the found ones.
    let mut found: Vec<(u64, usize)> = loc
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|p| (p, i)))
        .collect();
    found.sort_unstable();
    let seqs: Vec<u64> = found.iter().map(|&(_, i)| recs[i].seq).collect();
    let keep = lis(&seqs);
    let mut in_order = vec![false; recs.len()];
    for &k in &keep {
        in_order[found[k].1] = true;
    }
    let mut out = Vec::new();
    for &(p, i) in &found {
        if !in_order[i] {
            out.push(Finding::SegmentMoved {
                seq: recs[i].seq,
                offset: p,
            });
        }
    }
    // The missing ones: changed if unexplained bytes lie between their in-order neighbours.
    for i in 0..recs.len() {
        if loc[i].is_some() {
            continue;
        }
        let before = (0..i).rev().find(|&j| in_order[j]).map_or(base, |j| {
            loc[j].expect("in order, so located") + recs[j].len()
        });
        let after = (i + 1..recs.len())
            .find(|&j| in_order[j])
            .map_or(len, |j| loc[j].expect("in order, so located"));
        let moved_inside: u64 = found
            .iter()
            .filter(|&&(p, j)| !in_order[j] && p >= before && p < after)
            .map(|&(_, j)| recs[j].len())
            .sum();
        let unexplained = after.saturating_sub(before).saturating_sub(moved_inside);
        out.push(if unexplained > 0 {
            Finding::SegmentChanged { seq: recs[i].seq }
        } else {
            Finding::SegmentRemoved { seq: recs[i].seq }
        });
    }
    out.sort_by_key(|f| match f {
        Finding::SegmentMoved { seq, .. }
        | Finding::SegmentChanged { seq }
        | Finding::SegmentRemoved { seq } => *seq,
        _ => 0,
    });
    out
}

#[cfg(test)]
mod tests;
