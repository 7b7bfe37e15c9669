//! Text normalisation for comparisons with the register: Unicode NFKC (full-width letters and
//! digits to ASCII, half-width katakana to full-width) and removal of all white space
//! (ASCII and the ideographic space U+3000). Names and addresses are compared this way.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Appends the NFKC form of `s`, with every white-space character removed, to `out`.
/// `out` is the caller's (reused, zeroized) buffer.
/// Characters that NFKC leaves alone and that never combine with a neighbour: ASCII, the
/// common kana and kanji blocks. A string made only of these (and white space) needs no
/// normalisation, which a range test settles far faster than the Unicode tables.
fn is_plain(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7E}'
        | '\u{3005}'..='\u{3007}'   // 々 〆 〇
        | '\u{3041}'..='\u{3096}'   // hiragana (precomposed; U+3099/309A excluded)
        | '\u{30A1}'..='\u{30FA}'   // katakana
        | '\u{30FC}'                 // ー
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}') // CJK unified ideographs (not the compatibility block)
}

pub fn compact_into(s: &str, out: &mut String) {
    if s.chars()
        .all(|c| is_plain(c) || c == '\u{3000}' || c.is_ascii_whitespace())
    {
        out.extend(s.chars().filter(|c| !c.is_whitespace()));
        return;
    }
    let visible = || s.chars().filter(|c| !c.is_whitespace());
    // Most names and addresses are already NFKC apart from their spaces (U+3000 is not
    // NFKC-stable): when what remains without white space passes the quick check, it is its
    // own normal form and the full decomposition is skipped. Otherwise white space is
    // dropped after NFKC, so compatibility characters that normalise to a space go too.
    if is_nfkc_quick(visible()) == IsNormalized::Yes {
        out.extend(visible());
    } else {
        out.extend(s.nfkc().filter(|c| !c.is_whitespace()));
    }
}

/// NFKC form of `s` with leading and trailing white space trimmed; borrows when `s` is already
/// normal (the common, ASCII case) so the hot path does not allocate.
pub fn nfkc_trim(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim();
    // ASCII is NFKC-stable, and the quick check settles most Japanese text without a copy.
    if trimmed.is_ascii()
        || trimmed.chars().all(is_plain)
        || is_nfkc_quick(trimmed.chars()) == IsNormalized::Yes
    {
        return Cow::Borrowed(trimmed);
    }
    // Plain text with ideographic spaces (a doctor's name written 村上　湊): NFKC only turns
    // U+3000 into U+0020.
    if trimmed.chars().all(|c| is_plain(c) || c == '\u{3000}') {
        return Cow::Owned(trimmed.replace('\u{3000}', " "));
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
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
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
    fn compact_fast_path_agrees_with_full_normalisation() {
        for s in [
            "山田\u{3000}太郎",
            "ｶﾞｯｺｳ",
            "か\u{3000}\u{3099}",
            "埼玉県越谷市越ヶ谷１丁目２番３号",
            "Ａ\u{00A8}Ｂ",
            "髙橋　一郎",
            "がっこう\u{3099}",
            "ヿ々〇",
            "\u{F900}豈",
        ] {
            let mut fast = String::new();
            compact_into(s, &mut fast);
            let full: String = s.nfkc().filter(|c| !c.is_whitespace()).collect();
            assert_eq!(fast, full, "{s:?}");
        }
    }

    #[test]
    fn plain_characters_are_their_own_nfkc() {
        for c in ('\u{20}'..='\u{9FFF}').filter(|&c| is_plain(c)) {
            let s = c.to_string();
            assert_eq!(s.nfkc().collect::<String>(), s, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn nfkc_trim_agrees_with_full_normalisation() {
        for s in ["村上　湊", "　山田　", "ＡＢ　ｶﾅ", "がっこう\u{3099}"] {
            let full: String = s.trim().nfkc().collect();
            assert_eq!(nfkc_trim(s), full.trim(), "{s:?}");
        }
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
