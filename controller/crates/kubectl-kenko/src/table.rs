//! Plain-text tables like kubectl's: upper-case headers, columns separated by at least three
//! spaces, left-aligned, no trailing white space; an empty cell shows as `-`, and a cell never
//! breaks a line.

/// Renders `rows` under `headers` (every row has as many cells as there are headers), each
/// line prefixed with `indent`.
pub fn table(indent: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| h.to_string()).collect())
        .chain(rows.iter().map(|r| r.iter().map(|c| cell(c)).collect()))
        .collect();
    let mut widths = vec![0usize; headers.len()];
    for row in &cells {
        for (i, c) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(display_width(c));
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::from(indent);
        for (i, c) in row.iter().enumerate().take(widths.len()) {
            line.push_str(c);
            if i + 1 < widths.len() {
                line.push_str(&" ".repeat(widths[i] - display_width(c) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cell(text: &str) -> String {
    let t = crate::one_line(text);
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// Columns a string takes in a terminal: East Asian wide characters (kana, kanji, full-width
/// forms) take two, so Japanese municipality names and messages line up.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = matches!(u,
                0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
                | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// The first `n` characters of a hash, as `git` shows short ids.
pub fn short(hash: &str, n: usize) -> String {
    hash.chars().take(n).collect()
}
