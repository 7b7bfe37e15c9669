//! Every log line is one line, whatever it quotes. A file name is chosen by the institution's
//! software (or by whoever can write into the inbox); a newline or an escape code in it must
//! not forge a log line or repaint an operator's terminal. The writer under every log format
//! escapes control characters, so no call site can forget to.

use std::borrow::Cow;
use std::io::Write;

/// `s` with control characters escaped: `\n`, `\r`, `\t` and `\u{1b}`-style for the rest
/// (C0, DEL and C1). Text without any is returned as it is.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that gets one formatted event per `write` (as `tracing_subscriber::fmt` writes
/// them) and passes it on with every control byte escaped but the line's final newline.
#[derive(Debug)]
pub struct OneLine<W>(pub W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, newline) = match buf.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (buf, false),
        };
        let mut out = Vec::with_capacity(buf.len() + 8);
        let mut i = 0;
        while i < body.len() {
            let b = body[i];
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
                // C1 controls are two bytes in UTF-8 (C2 80..=C2 9F).
                0xc2 if body.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => {
                    out.extend_from_slice(format!("\\u{{{:x}}}", body[i + 1]).as_bytes());
                    i += 1;
                }
                _ => out.push(b),
            }
            i += 1;
        }
        if newline {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_and_escape_codes_stay_on_one_line() {
        let mut w = OneLine(Vec::new());
        let line =
            "INFO intake: file=a\n2026-12-07T00:00:00Z ERROR forged\u{1b}[2J\u{9b}31m.csv done\n";
        w.write_all(line.as_bytes()).unwrap();
        let out = String::from_utf8(w.0).unwrap();
        assert_eq!(
            out,
            "INFO intake: file=a\\n2026-12-07T00:00:00Z ERROR forged\\u{1b}[2J\\u{9b}31m.csv done\n"
        );
        assert_eq!(out.lines().count(), 1);
        // Japanese text and JSON's own escapes pass unchanged.
        let mut w = OneLine(Vec::new());
        w.write_all("{\"file\":\"令和6年10月.csv\",\"m\":\"a\\nb\"}\n".as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "{\"file\":\"令和6年10月.csv\",\"m\":\"a\\nb\"}\n"
        );
    }

    #[test]
    fn escape_controls_leaves_plain_text_alone() {
        assert!(matches!(escape_controls("令和6年.csv"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }
}
