//! The printable PDF of a verified certificate: the same content as [`crate::render::html`]
//! (both are drawn from `render::sections`), on A4 pages, long values wrapped, as many pages as
//! it takes, every page footed with the job, the page number and the file's SHA-256.
//!
//! The caller passes the font's bytes (this crate does no I/O); it must cover every character
//! of the certificate (Japanese names and organisations: IPAGothic, Noto Sans CJK JP), else
//! rendering fails with `render_font_missing_glyphs` rather than print boxes for a name.
//! krilla embeds a subset of the font (only the glyphs used, so a certificate is tens of KiB)
//! as a CID font with a ToUnicode map, so the text can be searched and extracted. The output is
//! a function of the certificate and the font only: no dates, random ids or hash-map order, so
//! two renders are byte-identical.

use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::Document;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{charmap::Charmap, FontRef, MetadataProvider};

use crate::render::{sections, TITLE_EN, TITLE_JA};
use crate::Verified;

/// Why a certificate could not be rendered as PDF. Each has a stable `reason()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error(
        "the font is not a TrueType or OpenType font (or collection) that can be embedded: {0}"
    )]
    FontInvalid(String),
    #[error(
        "the font has no glyph for {count} character(s) of the field {field:?}; render with a \
         font that covers them (--font, e.g. IPAGothic or Noto Sans CJK JP)"
    )]
    MissingGlyphs { field: String, count: usize },
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

impl PdfError {
    pub fn reason(&self) -> &'static str {
        match self {
            PdfError::FontInvalid(_) => "render_font_invalid",
            PdfError::MissingGlyphs { .. } => "render_font_missing_glyphs",
            PdfError::Write(_) => "render_pdf_failed",
        }
    }
}

// A4 in points, and the page's geometry.
const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 48.0;
const TOP: f32 = 40.0;
/// The content ends here; the footer is below.
const BOTTOM: f32 = PAGE_H - 58.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
const LABEL_W: f32 = 165.0;
const PAD_X: f32 = 5.0;
const PAD_Y: f32 = 2.25;

const BODY: f32 = 8.5;
const BODY_LH: f32 = 11.0;
const HEADING: f32 = 10.5;
const HEADING_LH: f32 = 15.0;
const FOOT: f32 = 7.0;
const FOOT_LH: f32 = 10.0;

/// The font as skrifa sees it: characters to glyphs, and their advances.
struct Face<'a> {
    charmap: Charmap<'a>,
    metrics: GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Face<'a> {
    fn new(bytes: &'a [u8]) -> Result<Face<'a>, PdfError> {
        let font = FontRef::from_index(bytes, 0)
            .map_err(|e| PdfError::FontInvalid(format!("cannot be read ({e})")))?;
        let upem = f32::from(
            font.metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if upem <= 0.0 {
            return Err(PdfError::FontInvalid("no units per em".into()));
        }
        Ok(Face {
            charmap: font.charmap(),
            metrics: font.glyph_metrics(Size::unscaled(), LocationRef::default()),
            upem,
        })
    }

    /// The glyph and its advance (in em) of a character, if the font has one.
    fn glyph(&self, c: char) -> Option<(GlyphId, f32)> {
        let gid = self.charmap.map(c)?;
        if gid.to_u32() == 0 {
            return None;
        }
        let advance = self.metrics.advance_width(gid).unwrap_or(0.0) / self.upem;
        Some((GlyphId::new(gid.to_u32()), advance))
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .map(|c| self.glyph(c).map_or(0.0, |g| g.1))
            .sum::<f32>()
            * size
    }

    /// Fails when a character (other than a line break) has no glyph.
    fn check(&self, field: &str, text: &str) -> Result<(), PdfError> {
        let count = clean(text)
            .chars()
            .filter(|&c| c != '\n' && self.glyph(c).is_none())
            .count();
        if count == 0 {
            Ok(())
        } else {
            Err(PdfError::MissingGlyphs {
                field: field.to_string(),
                count,
            })
        }
    }

    /// Breaks `text` into lines no wider than `width` at `size`: at spaces, around CJK
    /// characters (not before closing punctuation), after `/` and `,`; a run with no break
    /// opportunity (a hash, a key) is cut where it reaches the edge. `\n` starts a new line.
    fn wrap(&self, text: &str, width: f32, size: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in clean(text).split('\n') {
            let mut line = String::new();
            let mut line_w = 0.0f32;
            // Byte offset in `line` where it may be broken.
            let mut opportunity: Option<usize> = None;
            let mut prev: Option<char> = None;
            for c in para.chars() {
                let w = self.glyph(c).map_or(0.0, |g| g.1) * size;
                if c == ' ' {
                    if !line.is_empty() {
                        opportunity = Some(line.len());
                        line.push(' ');
                        line_w += w;
                    }
                    prev = Some(c);
                    continue;
                }
                if prev.is_some_and(|p| breakable_between(p, c)) && !line.is_empty() {
                    opportunity = Some(line.len());
                }
                if line_w + w > width && !line.trim_end().is_empty() {
                    let cut = opportunity.filter(|&o| o > 0).unwrap_or(line.len());
                    let rest = line.split_off(cut);
                    lines.push(line.trim_end().to_string());
                    line = rest.trim_start().to_string();
                    line_w = self.width(&line, size);
                    opportunity = None;
                }
                line.push(c);
                line_w += w;
                prev = Some(c);
            }
            lines.push(line.trim_end().to_string());
        }
        lines
    }

    /// The glyphs of one line, as krilla draws them (with each glyph's place in the text, for
    /// the ToUnicode map).
    fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .filter_map(|(i, c)| {
                let (gid, advance) = self.glyph(c)?;
                Some(KrillaGlyph::new(
                    gid,
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                ))
            })
            .collect()
    }
}

/// Tabs and other control characters become spaces; line breaks stay; bidirectional controls
/// and invisible characters are shown as `[U+XXXX]` (a verified certificate holds none, and the
/// PDF never lets one act).
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        if c.is_control() && c != '\n' {
            out.push(' ');
        } else if let Some(shown) = crate::text::visible(c).filter(|_| !c.is_control()) {
            out.push_str(&shown);
        } else {
            out.push(c);
        }
    }
    out
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

/// Characters a line must not start with (a light 禁則).
fn no_line_start(c: char) -> bool {
    "、。，．・：；？！）」』】〕〉》ー々ゝゞヽヾぁぃぅぇぉっゃゅょァィゥェォッャュョ,.;:!?)]}"
        .contains(c)
}

fn breakable_between(prev: char, next: char) -> bool {
    if no_line_start(next) {
        return false;
    }
    is_wide(prev) || is_wide(next) || prev == '/' || prev == ','
}

/// What is drawn on a page, laid out before drawing so every footer knows the page count.
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Cell {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        shade: bool,
    },
}

struct Layout<'f, 'a> {
    face: &'f Face<'a>,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_, '_> {
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    fn op(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn text(&mut self, x: f32, size: f32, line_height: f32, text: String) {
        // The baseline sits about 0.8 em below the line's top, centred in its height.
        let y = self.y + (line_height - size) / 2.0 + size * 0.88;
        self.op(Op::Text { x, y, size, text });
        self.y += line_height;
    }

    fn paragraph(&mut self, text: &str, size: f32, line_height: f32) {
        for line in self.face.wrap(text, CONTENT_W, size) {
            if self.y + line_height > BOTTOM {
                self.new_page();
            }
            self.text(MARGIN_X, size, line_height, line);
        }
    }

    fn heading(&mut self, text: &str) {
        self.y += 6.0;
        self.paragraph(text, HEADING, HEADING_LH);
        self.y += 2.0;
    }

    /// One table row; a row taller than what is left of the page goes on to the next page,
    /// and one taller than a page is split, the heading repeated above its continuation.
    fn row(&mut self, heading: &str, label: &str, value: &str) {
        let labels = self.face.wrap(label, LABEL_W - 2.0 * PAD_X, BODY);
        let values = self
            .face
            .wrap(value, CONTENT_W - LABEL_W - 2.0 * PAD_X, BODY);
        let n = labels.len().max(values.len());
        let whole_page = ((BOTTOM - TOP - HEADING_LH - 8.0 - 2.0 * PAD_Y) / BODY_LH) as usize;
        let mut i = 0;
        let mut fresh = false;
        while i < n {
            let fit = ((BOTTOM - self.y - 2.0 * PAD_Y) / BODY_LH).floor().max(0.0) as usize;
            // Start a new page when nothing fits, or when the rest would fit whole there.
            if !fresh && (fit == 0 || (fit < n - i && n - i <= whole_page)) {
                self.new_page();
                self.heading(&format!("{heading} (続き continued)"));
                fresh = true;
                continue;
            }
            fresh = false;
            let take = fit.clamp(1, n - i);
            let h = take as f32 * BODY_LH + 2.0 * PAD_Y;
            let top = self.y;
            self.op(Op::Cell {
                x: MARGIN_X,
                y: top,
                w: LABEL_W,
                h,
                shade: true,
            });
            self.op(Op::Cell {
                x: MARGIN_X + LABEL_W,
                y: top,
                w: CONTENT_W - LABEL_W,
                h,
                shade: false,
            });
            for k in i..i + take {
                self.y = top + PAD_Y + (k - i) as f32 * BODY_LH;
                if let Some(l) = labels.get(k) {
                    self.text(MARGIN_X + PAD_X, BODY, BODY_LH, l.clone());
                }
                self.y = top + PAD_Y + (k - i) as f32 * BODY_LH;
                if let Some(v) = values.get(k) {
                    self.text(MARGIN_X + LABEL_W + PAD_X, BODY, BODY_LH, v.clone());
                }
            }
            self.y = top + h;
            i += take;
        }
    }
}

/// The fixed text of continuation headings and footers (checked against the font).
const FIXED: &str =
    "(続き continued) Job 0123456789/ file SHA-256 — the signed JSON file is the evidence...";

/// The sentence that says what was verified and that the JSON, not this PDF, is the evidence.
fn verified_statement(v: &Verified) -> String {
    format!(
        "検証済み Verified: signature by {}{}; file SHA-256 {}. This document is a rendering; \
         the signed JSON file is the evidence.",
        v.signer,
        v.validated_by
            .as_ref()
            .map(|k| format!(", validated by {k}"))
            .unwrap_or_else(|| ", not yet validated by a second person".into()),
        v.sha256
    )
}

/// Lays the certificate out in pages of drawing operations.
fn layout(v: &Verified, face: &Face) -> Result<Vec<Vec<Op>>, PdfError> {
    let c = &v.certificate;
    let sections = sections(c);
    let statement = verified_statement(v);
    // Every character must have a glyph: a name must not print as boxes.
    face.check("title", &format!("{TITLE_JA}{TITLE_EN}{FIXED}"))?;
    face.check("verification", &statement)?;
    face.check("job", &c.job_id)?;
    for s in &sections {
        face.check(&s.heading, &s.heading)?;
        for (label, value) in &s.rows {
            face.check(label, label)?;
            face.check(label, value)?;
        }
    }

    let mut l = Layout {
        face,
        pages: Vec::new(),
        y: TOP,
    };
    l.new_page();
    l.paragraph(TITLE_JA, 16.0, 21.0);
    l.paragraph(TITLE_EN, 11.0, 15.0);
    l.y += 6.0;
    l.paragraph(&statement, BODY, BODY_LH);
    l.y += 4.0;
    for s in &sections {
        // Keep a heading with at least its first row.
        if l.y + 6.0 + HEADING_LH + 2.0 + BODY_LH + 2.0 * PAD_Y > BOTTOM {
            l.new_page();
        }
        l.heading(&s.heading);
        for (label, value) in &s.rows {
            l.row(&s.heading, label, value);
        }
        l.y += 4.0;
    }
    Ok(l.pages)
}

fn draw_text(
    surface: &mut Surface,
    face: &Face,
    font: &Font,
    x: f32,
    y: f32,
    size: f32,
    text: &str,
) {
    let glyphs = face.glyphs(text);
    if !glyphs.is_empty() {
        surface.draw_glyphs(
            Point::from_xy(x, y),
            &glyphs,
            font.clone(),
            text,
            size,
            false,
        );
    }
}

/// Shortens `text` (at a character boundary, with "...") to fit `width`.
fn fit(face: &Face, text: &str, width: f32, size: f32) -> String {
    if face.width(text, size) <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        if face.width(&out, size) + face.width(&format!("{c}..."), size) > width {
            break;
        }
        out.push(c);
    }
    out.push_str("...");
    out
}

/// The PDF of a verified certificate, drawn with `font` (TrueType/OpenType bytes, or a
/// collection whose first font is used).
pub fn pdf(v: &Verified, font: &[u8]) -> Result<Vec<u8>, PdfError> {
    let face = Face::new(font)?;
    let pages = layout(v, &face)?;
    let c = &v.certificate;
    draw(
        &face,
        font,
        &pages,
        format!("{TITLE_JA} Certificate of Sanitization {}", c.job_id),
        &format!("{TITLE_JA} Job {}", c.job_id),
        &format!(
            "file SHA-256 {} — the signed JSON file is the evidence",
            v.sha256
        ),
    )
}

/// One table of a [`report`]: a heading and its (label, value) rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSection {
    pub heading: String,
    pub rows: Vec<(String, String)>,
}

/// A printable A4 report drawn like a certificate (the same font handling, tables, wrapping,
/// page breaks and footers): a title in two lines, a statement, then the sections. Every
/// page is footed with `footer` (left, shortened to fit) and `footer2`, and its number.
/// Deterministic: a function of its arguments and the font only.
pub fn report(
    title: (&str, &str),
    statement: &str,
    sections: &[ReportSection],
    footer: (&str, &str),
    font: &[u8],
) -> Result<Vec<u8>, PdfError> {
    let face = Face::new(font)?;
    face.check("title", &format!("{}{}{FIXED}", title.0, title.1))?;
    face.check("statement", statement)?;
    face.check("footer", &format!("{}{}", footer.0, footer.1))?;
    for s in sections {
        face.check(&s.heading, &s.heading)?;
        for (label, value) in &s.rows {
            face.check(label, label)?;
            face.check(label, value)?;
        }
    }
    let mut l = Layout {
        face: &face,
        pages: Vec::new(),
        y: TOP,
    };
    l.new_page();
    l.paragraph(title.0, 16.0, 21.0);
    l.paragraph(title.1, 11.0, 15.0);
    l.y += 6.0;
    l.paragraph(statement, BODY, BODY_LH);
    l.y += 4.0;
    for s in sections {
        if l.y + 6.0 + HEADING_LH + 2.0 + BODY_LH + 2.0 * PAD_Y > BOTTOM {
            l.new_page();
        }
        l.heading(&s.heading);
        for (label, value) in &s.rows {
            l.row(&s.heading, label, value);
        }
        l.y += 4.0;
    }
    let pages = l.pages;
    draw(
        &face,
        font,
        &pages,
        format!("{} {}", title.0, title.1),
        footer.0,
        footer.1,
    )
}

/// Draws laid-out pages into a PDF, each footed with `footer1` and its page number, then
/// `footer2`.
fn draw(
    face: &Face,
    font: &[u8],
    pages: &[Vec<Op>],
    title: String,
    footer1: &str,
    footer2: &str,
) -> Result<Vec<u8>, PdfError> {
    let kfont = Font::new(font.to_vec().into(), 0)
        .ok_or_else(|| PdfError::FontInvalid("cannot be embedded".into()))?;
    let mut doc = Document::new();
    doc.set_metadata(Metadata::new().title(title).language("ja".into()));
    let total = pages.len();
    let settings =
        PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError::Write("page size".into()))?;
    let shade = Fill {
        paint: luma::Color::new(235).into(),
        ..Default::default()
    };
    let border = Stroke {
        paint: luma::Color::new(136).into(),
        width: 0.6,
        ..Default::default()
    };
    for (n, ops) in pages.iter().enumerate() {
        let mut page = doc.start_page_with(settings.clone());
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Cell {
                    x,
                    y,
                    w,
                    h,
                    shade: s,
                } => {
                    let mut pb = PathBuilder::new();
                    if let Some(r) = Rect::from_xywh(*x, *y, *w, *h) {
                        pb.push_rect(r);
                    }
                    if let Some(path) = pb.finish() {
                        surface.set_fill(s.then(|| shade.clone()));
                        surface.set_stroke(Some(border.clone()));
                        surface.draw_path(&path);
                    }
                }
                Op::Text { x, y, size, text } => {
                    surface.set_fill(Some(Fill::default()));
                    surface.set_stroke(None);
                    draw_text(&mut surface, face, &kfont, *x, *y, *size, text);
                }
            }
        }
        // Footer: the first line and page number, then the second line, on every page.
        surface.set_fill(Some(Fill::default()));
        surface.set_stroke(None);
        let number = format!("{} / {total}", n + 1);
        let number_w = face.width(&number, FOOT);
        let first = fit(face, footer1, CONTENT_W - number_w - 12.0, FOOT);
        let y1 = BOTTOM + 22.0;
        draw_text(&mut surface, face, &kfont, MARGIN_X, y1, FOOT, &first);
        draw_text(
            &mut surface,
            face,
            &kfont,
            PAGE_W - MARGIN_X - number_w,
            y1,
            FOOT,
            &number,
        );
        draw_text(
            &mut surface,
            face,
            &kfont,
            MARGIN_X,
            y1 + FOOT_LH,
            FOOT,
            footer2,
        );
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| match e {
        krilla::error::KrillaError::Font(_, m) => PdfError::FontInvalid(m),
        other => PdfError::Write(other.to_string()),
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use crate::{verify, Blocked, Person};
    use ed25519_dalek::SigningKey;

    const IPA_GOTHIC: &str = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf";

    fn font() -> Vec<u8> {
        std::fs::read(IPA_GOTHIC).unwrap_or_else(|e| {
            panic!("{IPA_GOTHIC}: {e} (install the Debian package fonts-ipafont-gothic)")
        })
    }

    fn verified(edit: impl FnOnce(&mut crate::Certificate)) -> Verified {
        let mut c = sample("job-2026-11-25-0001", 3, Some("ab".repeat(32)));
        c.sanitized_by = Person {
            name: "山田 太郎".into(),
            title: "主査".into(),
            organization: "健康市 健康推進課".into(),
            location: "健康市役所 3階".into(),
            phone: "000-0000-0000".into(),
        };
        edit(&mut c);
        c.sign(&SigningKey::from_bytes(&[1; 32]), "2026-11-25T01:05:01Z");
        verify(&c.to_file_bytes(), None).unwrap()
    }

    fn long() -> Verified {
        verified(|c| {
            for i in 0..40 {
                c.targets[0].blocked.push(Blocked {
                    item: format!(
                        "s3://kenko-records-backup/2026/11/{i:04}/records.parquet?versionId={}",
                        "x".repeat(i * 3)
                    ),
                    reason: "Object Lock (compliance)".into(),
                    until: Some("2033-04-01T00:00:00Z".into()),
                });
            }
            c.sanitization.notes = "長い備考。".repeat(60);
        })
    }

    /// The number of pages, from the page tree.
    fn pages(pdf: &[u8]) -> usize {
        let text = String::from_utf8_lossy(pdf);
        let at = text.find("/Type/Pages/Count ").unwrap() + "/Type/Pages/Count ".len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_certificate_renders_as_a_small_deterministic_a4_pdf_with_a_font_subset() {
        let font = font();
        let v = verified(|_| {});
        let a = pdf(&v, &font).unwrap();
        assert!(a.starts_with(b"%PDF-"));
        assert!(a.trim_ascii_end().ends_with(b"%%EOF"));
        assert_eq!(a, pdf(&v, &font).unwrap(), "two renders differ");
        // Only the glyphs used are embedded: tens of KiB, not the 6 MB font.
        assert!(a.len() < 64 * 1024, "{} bytes", a.len());
        assert!(font.len() > 50 * a.len());
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("/MediaBox[0 0 595.276 841.89]"), "A4");
        // A CID font (Identity-H) with a ToUnicode map, so the text can be extracted; its
        // name carries a subset tag (ABCDEF+).
        assert!(text.contains("/Subtype/Type0") && text.contains("/Identity-H"));
        assert!(text.contains("/CIDFontType2") && text.contains("/ToUnicode"));
        let at = text.find("/BaseFont/").unwrap() + "/BaseFont/".len();
        let tag = &text[at..at + 7];
        assert!(
            tag.ends_with('+') && tag[..6].bytes().all(|b| b.is_ascii_uppercase()),
            "{tag}"
        );
        assert_eq!(pages(&a), 1, "a typical certificate is one page");
        // Another certificate gives another document.
        assert_ne!(
            a,
            pdf(&verified(|c| c.job_id = "job-2".into()), &font).unwrap()
        );
    }

    #[test]
    fn a_long_certificate_runs_over_several_pages() {
        let font = font();
        let v = long();
        let a = pdf(&v, &font).unwrap();
        assert!(pages(&a) >= 3, "{} pages", pages(&a));
        assert_eq!(a, pdf(&v, &font).unwrap());
        assert!(a.len() < 96 * 1024, "{} bytes", a.len());
    }

    #[test]
    fn a_character_the_font_lacks_is_refused_without_printing_it() {
        let v = verified(|c| c.sanitized_by.name = "山田 太郎\u{1F600}".into());
        let e = pdf(&v, &font()).unwrap_err();
        assert_eq!(e.reason(), "render_font_missing_glyphs");
        let message = e.to_string();
        assert!(
            message.contains("Name") && message.contains("1 character"),
            "{message}"
        );
        assert!(
            !message.contains("山田"),
            "no personal data in errors: {message}"
        );
    }

    #[test]
    fn bytes_that_are_not_a_font_are_refused() {
        let v = verified(|_| {});
        for bytes in [&b""[..], b"not a font at all", &[0u8; 4096]] {
            assert_eq!(pdf(&v, bytes).unwrap_err().reason(), "render_font_invalid");
        }
    }

    #[test]
    fn long_values_wrap_at_spaces_around_cjk_and_anywhere_in_a_hash() {
        let font = font();
        let face = Face::new(&font).unwrap();
        // IPAGothic: half-width characters are 0.5 em, so 10 of them fill 5 em.
        let w = 5.0 * BODY + 0.01;
        assert_eq!(
            face.wrap("abc def ghi jkl", w, BODY),
            ["abc def", "ghi jkl"]
        );
        assert_eq!(
            face.wrap(&"a".repeat(25), w, BODY),
            ["a".repeat(10), "a".repeat(10), "a".repeat(5)]
        );
        // Five full-width characters a line; a line never starts with 。
        assert_eq!(
            face.wrap("健康市健康推進課", w, BODY),
            ["健康市健康", "推進課"]
        );
        assert_eq!(face.wrap("長い備考長。い", w, BODY), ["長い備考", "長。い"]);
        assert_eq!(face.wrap("a\nb\tc", w, BODY), ["a", "b c"]);
        assert_eq!(face.wrap("", w, BODY), [""]);
    }
}
