//! Text normalisation for comparisons with the register: Unicode NFKC (full-width letters and
//! digits to ASCII, half-width katakana to full-width) and removal of all white space
//! (ASCII and the ideographic space U+3000). Names and addresses are compared this way.

/// Appends the NFKC form of `s`, with every white-space character removed, to `out`.
/// `out` is the caller's (reused, zeroized) buffer.
pub fn compact_into(s: &str, out: &mut String) {
    let _ = (s, out);
    todo!()
}

/// NFKC form of `s` with leading and trailing white space trimmed; borrows when `s` is already
/// normal (the common, ASCII case) so the hot path does not allocate.
pub fn nfkc_trim(s: &str) -> std::borrow::Cow<'_, str> {
    let _ = s;
    todo!()
}
