//! Container logs as the kubelet keeps them (`/var/log/pods/NS_POD_UID/CONTAINER/N.log`): the
//! CRI log format wraps every line the container wrote as
//! `TIMESTAMP STREAM TAG CONTENT`, where STREAM is `stdout` or `stderr` and TAG is `F` (a full
//! line, or the last part of one) or `P` (a part: the runtime splits lines longer than its
//! buffer, 16 KiB in containerd, into P parts and a final F).
//!
//! [`unwrap`] turns a run of CRI lines into the lines the app wrote, one output line for each
//! input line, so line numbers in errors stay those of the file: a joined line is output at its
//! F line, its P parts and every stderr line as blank lines (which the parsers skip).
//! [`complete_end`] says how much of a buffer can be taken without cutting a line in parts.

/// The byte length of the longest prefix of `buf` that ends after a complete record: an F
/// line (with its P parts before it), or a line that is not CRI at all. Bytes after it (P parts
/// whose F has not been written yet, or a line without its newline) wait for the next read.
pub fn complete_end(buf: &[u8]) -> usize {
    let mut end = 0;
    let mut pos = 0;
    while let Some(i) = buf[pos..].iter().position(|&b| b == b'\n') {
        let line = &buf[pos..pos + i];
        pos += i + 1;
        if !matches!(split(line), Some((_, _, Tag::P))) {
            end = pos;
        }
    }
    end
}

/// Whether a CRI line whose first bytes are `head` (at least its timestamp, stream and tag) is
/// a P part, i.e. its record goes on in the next line. Lets a reader that does not hold a long
/// line find where its record ends.
pub fn is_part(head: &[u8]) -> bool {
    let head = head.split(|&b| b == b'\n').next().unwrap_or_default();
    matches!(split(head), Some((_, _, Tag::P)))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    P,
    F,
}

/// (content, is stdout, tag) of a CRI line; None when the line is not in the CRI format.
fn split(line: &[u8]) -> Option<(&[u8], bool, Tag)> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let ts = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    // RFC 3339 with a `T`: enough to tell the format from a JSON line.
    if ts.len() < 20 || ts.get(10) != Some(&b'T') || !ts[0].is_ascii_digit() {
        return None;
    }
    let stdout = match stream {
        b"stdout" => true,
        b"stderr" => false,
        _ => return None,
    };
    // The tag may carry more flags after a `:` (reserved by the format).
    let tag = match tag.split(|&b| b == b':').next() {
        Some(b"F") => Tag::F,
        Some(b"P") => Tag::P,
        _ => return None,
    };
    Some((content, stdout, tag))
}

/// The app's stdout lines in `buf` (complete records, as [`complete_end`] cut it), one output
/// line per input line. A line that is not CRI is passed through as it is (a log file the app
/// writes itself, on a volume).
pub fn unwrap(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_lines = 0usize;
    for line in buf.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match split(body) {
            None => {
                out.extend_from_slice(body);
                out.push(b'\n');
            }
            Some((_, false, _)) => out.push(b'\n'),
            Some((content, true, Tag::P)) => {
                pending.extend_from_slice(content);
                pending_lines += 1;
            }
            Some((content, true, Tag::F)) => {
                // The P parts' own lines first (blank), then the whole line at the F.
                out.extend(std::iter::repeat_n(b'\n', pending_lines));
                out.extend_from_slice(&pending);
                out.extend_from_slice(content);
                out.push(b'\n');
                pending.clear();
                pending_lines = 0;
            }
        }
    }
    // P parts without their F (only at the very end of a rotated file): kept as a line.
    if pending_lines > 0 {
        out.extend(std::iter::repeat_n(b'\n', pending_lines - 1));
        out.extend_from_slice(&pending);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"ts":"2026-11-10T10:00:00+09:00","user":"N1"}"#;

    #[test]
    fn full_lines_are_unwrapped_one_for_one() {
        let buf = format!(
            "2026-11-10T01:00:00.123456789Z stdout F {A}\n\
             2026-11-10T01:00:00.2Z stderr F a warning of the app\n\
             2026-11-10T01:00:01.5Z stdout F {A}\n"
        );
        assert_eq!(complete_end(buf.as_bytes()), buf.len());
        let out = String::from_utf8(unwrap(buf.as_bytes())).unwrap();
        assert_eq!(out, format!("{A}\n\n{A}\n"));
    }

    #[test]
    fn parts_are_joined_at_their_full_line_and_wait_for_it() {
        let (a, b) = A.split_at(20);
        let head = format!("2026-11-10T01:00:00Z stdout P {a}\n");
        let buf = format!("{head}2026-11-10T01:00:00Z stdout F {b}\n");
        // Only the part is there yet: nothing can be taken.
        assert_eq!(complete_end(head.as_bytes()), 0);
        assert_eq!(complete_end(buf.as_bytes()), buf.len());
        let out = String::from_utf8(unwrap(buf.as_bytes())).unwrap();
        assert_eq!(out, format!("\n{A}\n"), "two input lines, two output lines");
        // An unterminated last line waits too.
        let torn = format!("{buf}2026-11-10T01:00:02Z stdout F {{\"ts");
        assert_eq!(complete_end(torn.as_bytes()), buf.len());
    }

    #[test]
    fn a_file_the_app_writes_itself_passes_through() {
        let buf = format!("{A}\n{A}\n");
        assert_eq!(complete_end(buf.as_bytes()), buf.len());
        assert_eq!(unwrap(buf.as_bytes()), buf.as_bytes());
    }
}
