//! What a certificate file may hold beyond parsing as JSON: text a person reads as the machine
//! does. A lenient reading could let a verified certificate say one thing to the verifier and
//! another to its reader (a second `result` the parser keeps instead of the signed first, a
//! right-to-left override turning `exe.txt` around, a NUL a viewer stops at, a character
//! written as an escape a diff does not show), so [`check_file`] refuses, before anything else
//! is believed:
//!
//! - a byte order mark, bytes that are not UTF-8 (overlong forms included), any escape other
//!   than `\"` and `\\` (the canonical form writes every other character as itself);
//! - a key twice in one object, at any depth;
//! - in any key or string: a control character (C0, DEL, C1: NUL, line breaks and tabs
//!   too), a bidirectional control (U+061C, U+200E/F, U+202A-E, U+2066-9), an invisible format
//!   character (soft hyphen, zero-width characters, word joiners, U+FEFF, tags), or text that
//!   is not in Unicode Normalization Form C.
//!
//! [`check_identifiers`] then keeps the fields a machine compares (keys, hashes, times, the
//! request and stack names, cloud targets) to printable ASCII, so a look-alike letter cannot
//! pass for the name a reader expects. Free text (names, organisations, notes) may be any
//! script. Errors name the field and the code point, never the value.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{CertError, Certificate, Person};

/// A bidirectional control character: reorders what a reader sees.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An invisible format character (not a bidi control): shows nothing, or splits what looks like
/// one word.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// How a rendering shows a character a reader must not be fooled by: `[U+202E]` for a control,
/// bidi or invisible character, None for any other (drawn as itself).
pub(crate) fn visible(c: char) -> Option<String> {
    (c.is_control() || is_bidi_control(c) || is_invisible(c))
        .then(|| format!("[U+{:04X}]", u32::from(c)))
}

/// `s` as a certificate may hold it: in NFC, with every control, bidi and invisible character
/// written as `[U+XXXX]` (a line break in an AWS error, a U+202E in a name given on the command
/// line). The issuer passes every string through this before signing, so what it signs is
/// what [`check_file`] accepts.
pub fn presentable(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    for c in s.nfc() {
        match visible(c) {
            Some(v) => out.push_str(&v),
            None => out.push(c),
        }
    }
    out
}

/// The checks on the raw bytes and every key and string, before the typed parse.
pub(crate) fn check_file(bytes: &[u8]) -> Result<(), CertError> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(CertError::ByteOrderMark);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| CertError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    check_escapes(text)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Walk {
        path: String::new(),
    }
    .deserialize(&mut de);
    match walked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        // Not JSON: the typed parse reports it.
        Err(_) => Ok(()),
    }
}

/// Refuses every escape but `\"` and `\\` inside strings: the canonical form writes any other
/// character as itself, and the controls it would escape are refused anyway.
fn check_escapes(text: &str) -> Result<(), CertError> {
    let b = text.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => in_str = !in_str,
            b'\\' if in_str => {
                let control = match b.get(i + 1).copied() {
                    Some(b'"' | b'\\') => {
                        i += 2;
                        continue;
                    }
                    Some(b'b') => Some(0x08),
                    Some(b't') => Some(0x09),
                    Some(b'n') => Some(0x0A),
                    Some(b'f') => Some(0x0C),
                    Some(b'r') => Some(0x0D),
                    Some(b'u') => text
                        .get(i + 2..i + 6)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|&cp| cp < 0x20 || (0x7F..=0x9F).contains(&cp)),
                    _ => None,
                };
                return Err(match control {
                    Some(cp) => CertError::ControlCharacter {
                        field: format!("the string at byte {i}"),
                        code_point: format!("U+{cp:04X}"),
                    },
                    None => CertError::EscapedCharacter { offset: i },
                });
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// One key or string value's checks; `field` names where it is.
fn check_str(field: &str, s: &str) -> Result<(), CertError> {
    for c in s.chars() {
        let code_point = format!("U+{:04X}", u32::from(c));
        if c.is_control() {
            return Err(CertError::ControlCharacter {
                field: field.to_string(),
                code_point,
            });
        }
        if is_bidi_control(c) {
            return Err(CertError::BidiControl {
                field: field.to_string(),
                code_point,
            });
        }
        if is_invisible(c) {
            return Err(CertError::InvisibleCharacter {
                field: field.to_string(),
                code_point,
            });
        }
    }
    if !unicode_normalization::is_nfc(s) {
        return Err(CertError::NotNfc {
            field: field.to_string(),
        });
    }
    Ok(())
}

/// A key as it may appear in a path shown to people: a name of kenko's format, or `?`.
fn shown_key(k: &str) -> &str {
    if !k.is_empty()
        && k.len() <= 40
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
    {
        k
    } else {
        "?"
    }
}

/// Walks any JSON value checking every key and string; the outer `Result` is serde's (syntax
/// and serde_json's recursion limit, which bounds the depth), the inner one the first refusal.
struct Walk {
    path: String,
}

impl Walk {
    fn field(&self) -> String {
        if self.path.is_empty() {
            "the top level".into()
        } else {
            format!("`{}`", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Result<(), CertError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Result<(), CertError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(check_str(&self.field(), v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first = Ok(());
        let mut i = 0usize;
        loop {
            let path = format!("{}[{i}]", self.path);
            match seq.next_element_seed(Walk { path })? {
                None => return Ok(first),
                Some(r) => {
                    if first.is_ok() {
                        first = r;
                    }
                }
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut first = Ok(());
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                shown_key(&key).to_string()
            } else {
                format!("{}.{}", self.path, shown_key(&key))
            };
            if first.is_ok() {
                first = check_str(&format!("a key in {}", self.field()), &key);
            }
            if !keys.insert(key) && first.is_ok() {
                first = Err(CertError::DuplicateKey {
                    field: path.clone(),
                });
            }
            let r = map.next_value_seed(Walk { path })?;
            if first.is_ok() {
                first = r;
            }
        }
        Ok(first)
    }
}

/// The part of a target a machine compares with a name of its own: none of a local path (a
/// folder or file name may be in any script), the bucket of an `s3://` location (its keys are
/// the institutions' file names, often Japanese), the whole of any other (IDs, ARNs, a PVC's
/// name).
fn compared_part(spec: &str) -> &str {
    if ["file:", "dir:", "device:"]
        .iter()
        .any(|k| spec.starts_with(k))
    {
        return "";
    }
    match spec.strip_prefix("s3://") {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => spec,
    }
}

/// The fields a machine compares are printable ASCII: hashes, keys, times, the request and the
/// stack, and every target but a `file:` path.
pub(crate) fn check_identifiers(c: &Certificate) -> Result<(), CertError> {
    let mut fields: Vec<(String, &str)> = vec![
        ("format".into(), c.format.as_str()),
        ("started_at".into(), c.started_at.as_str()),
        ("finished_at".into(), c.finished_at.as_str()),
    ];
    if let Some(p) = &c.previous_sha256 {
        fields.push(("previous_sha256".into(), p));
    }
    let mut sigs = Vec::new();
    if let Some(s) = &c.signature {
        sigs.push(("signature", s));
    }
    if let Some(v) = &c.validation {
        sigs.push(("validation.signature", &v.signature));
    }
    for (at, s) in sigs {
        fields.push((format!("{at}.public_key"), &s.public_key));
        fields.push((format!("{at}.signed_at"), &s.signed_at));
        fields.push((format!("{at}.value"), &s.value));
    }
    if let Some(a) = &c.authority {
        fields.push(("authority.request".into(), &a.request));
        fields.push(("authority.request_uid".into(), &a.request_uid));
        if let Some(s) = &a.stack {
            fields.push(("authority.stack.namespace".into(), &s.namespace));
            fields.push(("authority.stack.name".into(), &s.name));
            fields.push(("authority.stack.uid".into(), &s.uid));
        }
    }
    for (i, t) in c.targets.iter().enumerate() {
        fields.push((format!("targets[{i}].spec"), compared_part(&t.spec)));
        if let Some(l) = t.location.as_deref() {
            fields.push((format!("targets[{i}].location"), compared_part(l)));
        }
        for (j, b) in t.blocked.iter().enumerate() {
            if let Some(u) = &b.until {
                fields.push((format!("targets[{i}].blocked[{j}].until"), u));
            }
        }
    }
    match fields
        .into_iter()
        .find(|(_, v)| !v.bytes().all(|b| (0x20..0x7F).contains(&b)))
    {
        Some((field, _)) => Err(CertError::NonAsciiIdentifier { field }),
        None => Ok(()),
    }
}

/// A person's details, checked as [`check_file`] checks every string.
pub(crate) fn check_person(p: &Person) -> Result<(), CertError> {
    for (field, v) in [
        ("`name`", &p.name),
        ("`title`", &p.title),
        ("`organization`", &p.organization),
        ("`location`", &p.location),
        ("`phone`", &p.phone),
    ] {
        check_str(field, v)?;
    }
    Ok(())
}
