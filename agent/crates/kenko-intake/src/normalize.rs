//! Text normalisation for comparisons with the register: Unicode NFKC (full-width letters and
//! digits to ASCII, half-width katakana to full-width) and removal of all white space
//! (ASCII and the ideographic space U+3000). Names and addresses are compared this way.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Appends the NFKC form of `s`, with every white-space character removed, to `out`.
/// `out` is the caller's (reused, zeroized) buffer.
pub fn compact_into(s: &str, out: &mut String) {
    // White space is dropped after NFKC, so compatibility spaces (U+3000 and friends) that
    // normalise to U+0020 go too.
    out.extend(s.nfkc().filter(|c| !c.is_whitespace()));
}

/// NFKC form of `s` with leading and trailing white space trimmed; borrows when `s` is already
/// normal (the common, ASCII case) so the hot path does not allocate.
pub fn nfkc_trim(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim();
    // ASCII is NFKC-stable, and the quick check settles most Japanese text without a copy.
    if trimmed.is_ascii() || is_nfkc_quick(trimmed.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(trimmed);
    }
    let normal: String = trimmed.nfkc().collect();
    // NFKC can produce white space at the ends (e.g. U+00A8 becomes a space and a combining mark).
    let again = normal.trim();
    if again.len() == normal.len() {
        Cow::Owned(normal)
    } else {
        Cow::Owned(again.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_removes_all_white_space_after_nfkc() {
        let mut out = String::new();
        compact_into(" 山田\u{3000}太郎 \t", &mut out);
        assert_eq!(out, "山田太郎");
        out.clear();
        compact_into("ＡＢＣ　１２３ ｶﾅ", &mut out);
        assert_eq!(out, "ABC123カナ");
    }

    #[test]
    fn compact_appends() {
        let mut out = String::from("x");
        compact_into("ｙ", &mut out);
        assert_eq!(out, "xy");
    }

    #[test]
    fn nfkc_trim_borrows_when_normal() {
        assert!(matches!(nfkc_trim("  1001 "), Cow::Borrowed("1001")));
        assert!(matches!(nfkc_trim("接種"), Cow::Borrowed("接種")));
        assert!(matches!(
            nfkc_trim("\u{3000}予診のみ\u{3000}"),
            Cow::Borrowed("予診のみ")
        ));
    }

    #[test]
    fn nfkc_trim_normalises_when_needed() {
        let v = nfkc_trim(" １２３４ ");
        assert!(matches!(v, Cow::Owned(_)));
        assert_eq!(v, "1234");
        assert_eq!(nfkc_trim("ＬＯＴ－ＮＯ"), "LOT-NO");
        assert_eq!(nfkc_trim("ｱｲｳ"), "アイウ");
        assert_eq!(nfkc_trim("\u{a8}x"), "\u{308}x");
    }
}
