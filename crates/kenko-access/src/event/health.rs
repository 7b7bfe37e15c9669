//! The health system's access log (`docs/access-log-format.md`): one JSON object per line.

use super::*;

#[derive(Deserialize)]
pub(super) struct RawHealth<'a> {
    #[serde(borrow)]
    pub(super) time: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) staff_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) role: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) terminal: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) action: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) subject: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) district: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) records: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) case_ref: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) outcome: Option<Scalar<'a>>,
}

/// Parses one line of the health system's access log (`docs/access-log-format.md`).
/// `line_no` is 1-based and only used in errors. A blank line is `Ok(None)`.
pub fn parse_health_line(line: &[u8], line_no: u64) -> Result<Option<Event<'_>>, ParseError> {
    if is_blank(line) {
        return Ok(None);
    }
    let raw = match fast::health(line) {
        Some(raw) => raw,
        None => serde_health(line, line_no)?,
    };
    build_health(raw, line_no).map(Some)
}

pub(super) fn serde_health(line: &[u8], line_no: u64) -> Result<RawHealth<'_>, ParseError> {
    object_line(line, Source::Health, line_no).map(|(raw, _)| raw)
}

pub(super) fn build_health(raw: RawHealth<'_>, line_no: u64) -> Result<Event<'_>, ParseError> {
    let src = Source::Health;
    let cx = Ctx {
        source: src,
        line: line_no,
        record: None,
    };
    let time = cx.time(raw.time, "time")?;
    let actor = cx.req_str(raw.staff_id, "staff_id")?;
    let action = match cx.req_str(raw.action, "action")?.as_ref() {
        "view" => Action::View,
        "search" => Action::Search,
        "update" => Action::Update,
        "export" => Action::Export,
        "print" => Action::Print,
        "login" => Action::Login,
        "login_failed" => Action::LoginFailed,
        _ => {
            return Err(cx.err(
                "action",
                Problem::Expected(
                    "one of view, search, update, export, print, login, login_failed",
                ),
            ))
        }
    };
    let outcome = match cx.opt_str(raw.outcome, "outcome")?.as_deref() {
        Some("success") => Outcome::Success,
        Some("denied") => Outcome::Denied,
        Some("error") => Outcome::Error,
        None => return Err(cx.err("outcome", Problem::Missing)),
        Some(_) => {
            return Err(cx.err(
                "outcome",
                Problem::Expected("one of success, denied, error"),
            ))
        }
    };
    let subject = cx.opt_str(raw.subject, "subject")?;
    if let Some(s) = &subject {
        check_token(s).map_err(|p| cx.err("subject", p))?;
    }
    let count = match raw.records {
        None | Some(Scalar::Null) => 1,
        Some(Scalar::U64(n)) if n <= u64::from(u32::MAX) => n as u32,
        Some(_) => {
            return Err(cx.err(
                "records",
                Problem::Expected("a whole number of records, 0 or more"),
            ))
        }
    };
    Ok(Event {
        source: src,
        time,
        actor,
        actor_kind: ActorKind::Staff,
        role: cx.opt_str(raw.role, "role")?,
        action,
        subject,
        district: cx.opt_str(raw.district, "district")?,
        count,
        case_ref: cx.opt_str(raw.case_ref, "case_ref")?,
        terminal: cx.opt_str(raw.terminal, "terminal")?,
        outcome,
        resource: None,
        object: None,
        stack: None,
    })
}

/// The fast path for the health log: a flat JSON object of strings without escapes, plain
/// non-negative integers, booleans and nulls, each key at most once. Anything else (an escape,
/// a nested value, a negative or fractional number, a syntax error) returns None and the line
/// goes through serde_json, which decides and reports.
pub(super) mod fast {
    use std::borrow::Cow;

    use super::{RawHealth, Scalar};

    struct Cur<'a> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        #[inline]
        fn ws(&mut self) {
            while let Some(c) = self.b.get(self.i) {
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }

        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        /// A string without escapes or control characters; the cursor is on the opening quote.
        #[inline]
        fn string(&mut self) -> Option<&'a str> {
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let start = self.i + 1;
            let mut j = start;
            // Eight bytes at a time: find the first quote, backslash or control character.
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = 0x8080_8080_8080_8080;
            while let Some(chunk) = self.b.get(j..j + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("an 8-byte slice"));
                let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
                let m = zero(w ^ (ONES * u64::from(b'"')))
                    | zero(w ^ (ONES * u64::from(b'\\')))
                    | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
                if m == 0 {
                    j += 8;
                } else {
                    j += (m.trailing_zeros() / 8) as usize;
                    break;
                }
            }
            loop {
                let c = *self.b.get(j)?;
                if c == b'"' {
                    break;
                }
                if c == b'\\' || c < 0x20 {
                    return None;
                }
                j += 1;
            }
            self.i = j + 1;
            Some(&self.s[start..j])
        }

        #[inline]
        fn value(&mut self) -> Option<Scalar<'a>> {
            self.ws();
            match *self.b.get(self.i)? {
                b'"' => self.string().map(|s| Scalar::Str(Cow::Borrowed(s))),
                b'0'..=b'9' => {
                    let start = self.i;
                    let mut v: u64 = 0;
                    while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                        self.i += 1;
                    }
                    let len = self.i - start;
                    if (len > 1 && self.b[start] == b'0')
                        || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
                    {
                        return None;
                    }
                    Some(Scalar::U64(v))
                }
                b't' => self.lit(b"true", Scalar::Bool),
                b'f' => self.lit(b"false", Scalar::Bool),
                b'n' => self.lit(b"null", Scalar::Null),
                _ => None,
            }
        }

        fn lit(&mut self, word: &[u8], v: Scalar<'a>) -> Option<Scalar<'a>> {
            self.b[self.i..].starts_with(word).then(|| {
                self.i += word.len();
                v
            })
        }
    }

    pub(in crate::event) fn health(line: &[u8]) -> Option<RawHealth<'_>> {
        let s = std::str::from_utf8(line).ok()?;
        let mut c = Cur { s, b: line, i: 0 };
        let mut raw = RawHealth {
            time: None,
            staff_id: None,
            role: None,
            terminal: None,
            action: None,
            subject: None,
            district: None,
            records: None,
            case_ref: None,
            outcome: None,
        };
        let mut seen = 0u16;
        c.eat(b'{')?;
        c.ws();
        if c.b.get(c.i) == Some(&b'}') {
            c.i += 1;
        } else {
            loop {
                c.ws();
                let key = c.string()?;
                c.eat(b':')?;
                let v = c.value()?;
                let (bit, slot) = match key {
                    "time" => (0, &mut raw.time),
                    "staff_id" => (1, &mut raw.staff_id),
                    "role" => (2, &mut raw.role),
                    "terminal" => (3, &mut raw.terminal),
                    "action" => (4, &mut raw.action),
                    "subject" => (5, &mut raw.subject),
                    "district" => (6, &mut raw.district),
                    "records" => (7, &mut raw.records),
                    "case_ref" => (8, &mut raw.case_ref),
                    "outcome" => (9, &mut raw.outcome),
                    _ => (15, &mut None),
                };
                if bit < 15 {
                    if seen & (1 << bit) != 0 {
                        return None;
                    }
                    seen |= 1 << bit;
                    // serde reads a null field as absent.
                    *slot = match v {
                        Scalar::Null => None,
                        v => Some(v),
                    };
                }
                c.ws();
                match c.b.get(c.i)? {
                    b',' => c.i += 1,
                    b'}' => {
                        c.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        c.ws();
        (c.i == line.len()).then_some(raw)
    }
}

pub(super) const TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

/// A resident token: 4–128 characters of `A-Z a-z 0-9 _ - .`, and not 12 digits.
pub(super) fn check_token(s: &str) -> Result<(), Problem> {
    let b = s.as_bytes();
    if b.len() == 12 && b.iter().all(u8::is_ascii_digit) {
        return Err(Problem::MyNumberInSubject);
    }
    let ok = (4..=128).contains(&b.len()) && b.iter().all(|&c| TOKEN_BYTE[c as usize]);
    if ok {
        Ok(())
    } else {
        Err(Problem::Expected(
            "a resident token (4 to 128 characters of A-Z, a-z, 0-9, _, -, .)",
        ))
    }
}
