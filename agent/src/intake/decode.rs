//! Streaming decode of an intake file: bytes → (UTF-8 or CP932, detected) → RFC 4180 records.
//!
//! Written on `encoding_rs` and `csv-core` rather than a convenience reader because we need
//! three things those don't give together: the byte offset and row of the first undecodable
//! sequence (not a silent U+FFFD), constant memory on any file size, and every buffer that
//! held personal data under our control so it is zeroized (`Zeroizing`) when dropped.

use std::io::Read;

use csv_core::ReadRecordResult;
use encoding_rs::{DecoderResult, SHIFT_JIS, UTF_8};
use zeroize::Zeroizing;

/// How much of the file decides the encoding.
const SNIFF_BYTES: usize = 64 * 1024;
const RAW_CHUNK: usize = 64 * 1024;

/// The longest record (row) in decoded UTF-8 bytes, and the most fields it may have. A longer
/// record is read through and discarded, never buffered, so memory stays flat whatever the
/// input (one 2 GB field, a line of commas). docs/intake-format.md states both.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
pub const MAX_FIELDS: usize = 256;

/// The encodings an intake file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    Utf8,
    Cp932,
}

impl FileEncoding {
    pub fn label(self) -> &'static str {
        match self {
            FileEncoding::Utf8 => "utf-8",
            FileEncoding::Cp932 => "cp932",
        }
    }

    /// Encodes text we write back (return reports) in this encoding. Our own text is always
    /// representable in CP932 (Japanese messages, column names, digits).
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            FileEncoding::Utf8 => text.as_bytes().to_vec(),
            FileEncoding::Cp932 => SHIFT_JIS.encode(text).0.into_owned(),
        }
    }
}

/// Problems that reject the whole file at the byte level, or stop reading it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("bytes not valid {encoding} at byte offset {offset} (line {line}, row {row})")]
    Undecodable {
        encoding: &'static str,
        offset: u64,
        line: u64,
        row: u64,
    },
    /// The record at `row` is longer than [`MAX_RECORD_BYTES`] or has more than
    /// [`MAX_FIELDS`] fields; it was skipped and reading can go on with the next one.
    #[error("row {row} is longer than {MAX_RECORD_BYTES} bytes or {MAX_FIELDS} fields")]
    TooLong { row: u64 },
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Picks the encoding from the first bytes: a BOM or valid UTF-8 means UTF-8 (a multi-byte
/// sequence cut by the end of the sample is fine), anything else CP932.
pub fn sniff(sample: &[u8]) -> FileEncoding {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return FileEncoding::Utf8;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => FileEncoding::Utf8,
        Err(e) if e.error_len().is_none() => FileEncoding::Utf8,
        Err(_) => FileEncoding::Cp932,
    }
}

/// Reads records one at a time. Rows are numbered as a spreadsheet shows them: the header is
/// row 1.
pub struct RecordReader<R: Read> {
    src: R,
    src_eof: bool,
    encoding: FileEncoding,
    crlf: bool,
    decoder: encoding_rs::Decoder,
    decoder_done: bool,
    raw: Zeroizing<Vec<u8>>,
    raw_pos: usize,
    raw_consumed: u64,
    raw_newlines: u64,
    pending_error: Option<(u64, u64)>,
    utf8: Zeroizing<Vec<u8>>,
    utf8_pos: usize,
    utf8_end: usize,
    csv: csv_core::Reader,
    out: Zeroizing<Vec<u8>>,
    ends: Vec<usize>,
    nfields: usize,
    rows: u64,
    bytes_total: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads the first bytes to detect the encoding and line ends.
    pub fn new(mut src: R) -> Result<Self, DecodeError> {
        let mut raw = Zeroizing::new(Vec::with_capacity(SNIFF_BYTES.max(RAW_CHUNK)));
        raw.resize(SNIFF_BYTES, 0);
        let mut filled = 0;
        let mut src_eof = false;
        while filled < SNIFF_BYTES {
            let n = src.read(&mut raw[filled..])?;
            if n == 0 {
                src_eof = true;
                break;
            }
            filled += n;
        }
        raw.truncate(filled);
        let encoding = sniff(&raw);
        let crlf = raw
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && raw[i - 1] == b'\r');
        let decoder = match encoding {
            FileEncoding::Utf8 => UTF_8.new_decoder_with_bom_removal(),
            FileEncoding::Cp932 => SHIFT_JIS.new_decoder_without_bom_handling(),
        };
        Ok(RecordReader {
            src,
            src_eof,
            encoding,
            crlf,
            decoder,
            decoder_done: false,
            bytes_total: filled as u64,
            raw,
            raw_pos: 0,
            raw_consumed: 0,
            raw_newlines: 0,
            pending_error: None,
            utf8: Zeroizing::new(vec![0u8; RAW_CHUNK * 3 + 16]),
            utf8_pos: 0,
            utf8_end: 0,
            csv: csv_core::Reader::new(),
            out: Zeroizing::new(vec![0u8; 4096]),
            ends: vec![0usize; 64],
            nfields: 0,
            rows: 0,
        })
    }

    pub fn encoding(&self) -> FileEncoding {
        self.encoding
    }

    /// Whether the file uses CRLF line ends (so the return report can too).
    pub fn crlf(&self) -> bool {
        self.crlf
    }

    /// True when the file had no bytes at all.
    pub fn is_empty_file(&self) -> bool {
        self.bytes_total == 0
    }

    /// Number of the last record read (header = 1).
    pub fn row(&self) -> u64 {
        self.rows
    }

    /// Advances to the next record. `Ok(false)` at the end of the file.
    pub fn advance(&mut self) -> Result<bool, DecodeError> {
        let mut out_len = 0;
        let mut ends_len = 0;
        // Past a bound the record is read through into the same buffers, overwritten.
        let mut too_long = false;
        loop {
            // csv-core takes an empty input to mean the end of the data, so only hand it one
            // once the decoder has finished.
            if self.utf8_pos == self.utf8_end
                && (!self.decoder_done || self.pending_error.is_some())
            {
                self.refill()?;
            }
            let input = &self.utf8[self.utf8_pos..self.utf8_end];
            let (res, nin, nout, nend) =
                self.csv
                    .read_record(input, &mut self.out[out_len..], &mut self.ends[ends_len..]);
            self.utf8_pos += nin;
            // csv-core writes `ends` as offsets into the whole record's output already.
            out_len += nout;
            ends_len += nend;
            match res {
                ReadRecordResult::InputEmpty => {}
                // The buffers hold one more than the bound, so a record of exactly the bound
                // is told from a longer one by its length, not by a full buffer.
                ReadRecordResult::OutputFull => {
                    if self.out.len() > MAX_RECORD_BYTES {
                        too_long = true;
                        out_len = 0;
                    } else {
                        let n = (self.out.len() * 2).min(MAX_RECORD_BYTES + 1);
                        grow_zeroizing(&mut self.out, n);
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() > MAX_FIELDS {
                        too_long = true;
                        ends_len = 0;
                    } else {
                        let n = (self.ends.len() * 2).min(MAX_FIELDS + 1);
                        self.ends.resize(n, 0);
                    }
                }
                ReadRecordResult::Record
                    if too_long
                        || ends_len > MAX_FIELDS
                        || ends_len
                            .checked_sub(1)
                            .is_some_and(|i| self.ends[i] > MAX_RECORD_BYTES) =>
                {
                    self.rows += 1;
                    self.nfields = 0;
                    return Err(DecodeError::TooLong { row: self.rows });
                }
                ReadRecordResult::Record => {
                    self.rows += 1;
                    self.nfields = ends_len;
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }

    /// The fields of the current record, into a caller's array when they fit (no allocation
    /// per row); the slice returned is the record's fields.
    pub fn fields_into<'s, const N: usize>(&'s self, buf: &'s mut [&'s str; N]) -> FieldsRef<'s> {
        let end = self.ends[..self.nfields].last().copied().unwrap_or(0);
        let record = std::str::from_utf8(&self.out[..end]).unwrap_or("");
        if self.nfields > N {
            return FieldsRef::Heap(self.fields());
        }
        let mut start = 0;
        for (slot, &end) in buf.iter_mut().zip(&self.ends[..self.nfields]) {
            *slot = record.get(start..end).unwrap_or("\u{FFFD}");
            start = end;
        }
        FieldsRef::Stack(&buf[..self.nfields])
    }

    /// The fields of the current record.
    pub fn fields(&self) -> Vec<&str> {
        let end = self.ends[..self.nfields].last().copied().unwrap_or(0);
        // The decoder produced valid UTF-8 and csv-core splits only at ASCII bytes, so this
        // cannot fail; validating the record once is cheaper than field by field.
        let record = std::str::from_utf8(&self.out[..end]).unwrap_or("");
        let mut start = 0;
        self.ends[..self.nfields]
            .iter()
            .map(|&end| {
                let s = record.get(start..end).unwrap_or("\u{FFFD}");
                start = end;
                s
            })
            .collect()
    }

    /// Reads the rest of the file (after a file-level error) so its hash covers every byte.
    pub fn into_inner(self) -> R {
        self.src
    }

    fn refill(&mut self) -> Result<(), DecodeError> {
        // Everything decoded before a malformed sequence has now been parsed, so the row
        // number is exact.
        if let Some((offset, line)) = self.pending_error.take() {
            return Err(DecodeError::Undecodable {
                encoding: self.encoding.label(),
                offset,
                line,
                row: self.rows + 1,
            });
        }
        if self.decoder_done {
            return Ok(());
        }
        // Unconsumed decoded bytes move to the front (csv-core consumed what it could).
        self.utf8.copy_within(self.utf8_pos..self.utf8_end, 0);
        self.utf8_end -= self.utf8_pos;
        self.utf8_pos = 0;
        loop {
            if self.raw_pos == self.raw.len() && !self.src_eof {
                self.raw.resize(RAW_CHUNK, 0);
                let n = loop {
                    match self.src.read(&mut self.raw[..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    }
                };
                self.raw.truncate(n);
                self.raw_pos = 0;
                self.bytes_total += n as u64;
                if n == 0 {
                    self.src_eof = true;
                }
            }
            let last = self.src_eof;
            let input = &self.raw[self.raw_pos..];
            let (res, read, written) = self.decoder.decode_to_utf8_without_replacement(
                input,
                &mut self.utf8[self.utf8_end..],
                last,
            );
            let consumed = &self.raw[self.raw_pos..self.raw_pos + read];
            let newlines = consumed.iter().filter(|&&b| b == b'\n').count() as u64;
            self.raw_pos += read;
            self.utf8_end += written;
            match res {
                DecoderResult::InputEmpty => {
                    self.raw_consumed += read as u64;
                    self.raw_newlines += newlines;
                    if last {
                        self.decoder_done = true;
                        return Ok(());
                    }
                    if self.utf8_end > 0 {
                        return Ok(());
                    }
                }
                DecoderResult::OutputFull => {
                    self.raw_consumed += read as u64;
                    self.raw_newlines += newlines;
                    return Ok(());
                }
                DecoderResult::Malformed(bad, after) => {
                    let bad_start = read - after as usize - bad as usize;
                    let offset = self.raw_consumed + bad_start as u64;
                    let before = &consumed[..bad_start];
                    let line =
                        self.raw_newlines + before.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.pending_error = Some((offset, line + 1));
                    self.decoder_done = true;
                    if self.utf8_end > 0 {
                        return Ok(());
                    }
                    return self.refill();
                }
            }
        }
    }
}

/// Fields lent by [`RecordReader::fields_into`].
pub enum FieldsRef<'s> {
    Stack(&'s [&'s str]),
    Heap(Vec<&'s str>),
}

impl<'s> std::ops::Deref for FieldsRef<'s> {
    type Target = [&'s str];
    fn deref(&self) -> &Self::Target {
        match self {
            FieldsRef::Stack(s) => s,
            FieldsRef::Heap(v) => v,
        }
    }
}

fn grow_zeroizing(buf: &mut Zeroizing<Vec<u8>>, new_len: usize) {
    // A plain resize could reallocate and leave the old contents in freed memory.
    let mut bigger = Zeroizing::new(vec![0u8; new_len]);
    bigger[..buf.len()].copy_from_slice(buf);
    *buf = bigger;
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    fn records(bytes: &[u8]) -> Result<Vec<Vec<String>>, DecodeError> {
        let mut r = RecordReader::new(bytes)?;
        let mut out = Vec::new();
        while r.advance()? {
            out.push(r.fields().into_iter().map(String::from).collect());
        }
        Ok(out)
    }

    #[test]
    fn utf8_with_bom_crlf_and_quotes() {
        let data = "\u{FEFF}宛名番号,備考1\r\n1,\"a,b\"\"c\"\r\n2,\"line\nbreak\"\r\n";
        let recs = records(data.as_bytes()).unwrap();
        assert_eq!(recs[0], ["宛名番号", "備考1"]);
        assert_eq!(recs[1], ["1", "a,b\"c"]);
        assert_eq!(recs[2], ["2", "line\nbreak"]);
        let r = RecordReader::new(data.as_bytes()).unwrap();
        assert!(r.crlf());
        assert_eq!(r.encoding(), FileEncoding::Utf8);
    }

    #[test]
    fn cp932_is_detected_and_decoded() {
        let text = "宛名番号,氏名\r\n1,山田　太郎\r\n2,髙橋　一郎\r\n";
        let bytes = SHIFT_JIS.encode(text).0.into_owned();
        let r = RecordReader::new(&bytes[..]).unwrap();
        assert_eq!(r.encoding(), FileEncoding::Cp932);
        let recs = records(&bytes).unwrap();
        assert_eq!(recs[1], ["1", "山田　太郎"]);
        assert_eq!(recs.len(), 3);
    }

    #[test]
    fn a_record_past_the_bounds_is_skipped_without_being_held() {
        // One 8 MiB field (an unclosed quote swallows the rest of a file the same way), a line
        // of 10,000 commas, then a good row: the reader names the two rows, keeps its buffers
        // at the bound and goes on.
        let mut data = b"a,b\n1,".to_vec();
        data.extend(std::iter::repeat_n(b'x', 8 << 20));
        data.extend_from_slice(b"\n");
        data.extend(std::iter::repeat_n(b',', 10_000));
        data.extend_from_slice(b"\n2,\"ok\"\n");
        let mut r = RecordReader::new(&data[..]).unwrap();
        assert!(r.advance().unwrap());
        assert!(matches!(r.advance(), Err(DecodeError::TooLong { row: 2 })));
        assert!(matches!(r.advance(), Err(DecodeError::TooLong { row: 3 })));
        assert!(r.advance().unwrap());
        assert_eq!(r.row(), 4);
        assert_eq!(r.fields(), ["2", "ok"]);
        assert!(!r.advance().unwrap());
        assert!(r.out.len() <= MAX_RECORD_BYTES + 1 && r.ends.len() <= MAX_FIELDS + 1);
        // A record of exactly the bound is a record.
        let mut data = b"a\n".to_vec();
        data.extend(std::iter::repeat_n(b'y', MAX_RECORD_BYTES));
        data.push(b'\n');
        let recs = records(&data).unwrap();
        assert_eq!(recs[1][0].len(), MAX_RECORD_BYTES);
        data.insert(2, b'y');
        assert!(matches!(
            records(&data),
            Err(DecodeError::TooLong { row: 2 })
        ));
        let fields = vec![","; MAX_FIELDS - 1].concat();
        assert_eq!(
            records(format!("{fields}\n").as_bytes()).unwrap()[0].len(),
            MAX_FIELDS
        );
        assert!(matches!(
            records(format!(",{fields}\n").as_bytes()),
            Err(DecodeError::TooLong { row: 1 })
        ));
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let recs = records(b"a,b\n1,2").unwrap();
        assert_eq!(recs, vec![vec!["a", "b"], vec!["1", "2"]]);
    }

    #[test]
    fn undecodable_cp932_reports_offset_line_and_row() {
        // 0x81 0x20 is not a valid Shift_JIS pair.
        let mut bytes = SHIFT_JIS
            .encode("宛名番号,氏名\r\n1,山田\r\n")
            .0
            .into_owned();
        let offset = bytes.len() + 2;
        bytes.extend_from_slice(b"2,\x81\x20x\r\n3,z\r\n");
        match records(&bytes) {
            Err(DecodeError::Undecodable {
                offset: o,
                line,
                row,
                ..
            }) => {
                assert_eq!(o, offset as u64);
                assert_eq!(line, 3);
                assert_eq!(row, 3);
            }
            other => panic!("expected an undecodable error, got {other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_after_the_sniffed_part_is_an_error_far_into_the_file() {
        let mut bytes = "宛名番号,氏名\n".as_bytes().to_vec();
        for i in 0..20_000 {
            bytes.extend_from_slice(format!("{i},名前\n").as_bytes());
        }
        let offset = bytes.len() + 2;
        bytes.extend_from_slice(b"x,\xff\n");
        match records(&bytes) {
            Err(DecodeError::Undecodable {
                offset: o,
                row,
                line,
                encoding,
            }) => {
                assert_eq!(encoding, "utf-8");
                assert_eq!(o, offset as u64);
                assert_eq!(row, 20_002);
                assert_eq!(line, 20_002);
            }
            other => panic!("expected an undecodable error, got {other:?}"),
        }
    }

    #[test]
    fn empty_input() {
        let r = RecordReader::new(&b""[..]).unwrap();
        assert!(r.is_empty_file());
        assert!(records(b"").unwrap().is_empty());
    }
}
