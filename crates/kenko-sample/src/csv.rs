//! Just enough RFC 4180 for the generator: quoting on the way out, and a reader for the
//! resident extract the generator wrote earlier (and for the tests). The intake pipeline has
//! its own streaming reader; this one holds the whole text, which is fine for a register.

/// Appends `value` as one CSV field, quoted only when it has to be (a comma, a quote or a line
/// break), with quotes doubled.
pub(crate) fn push_field(line: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        line.push('"');
        for c in value.chars() {
            if c == '"' {
                line.push('"');
            }
            line.push(c);
        }
        line.push('"');
    } else {
        line.push_str(value);
    }
}

/// Why a text is not well-formed CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unterminated {
    /// 1-based line where the unterminated quoted field starts.
    pub line: usize,
}

/// A parsed record: its fields and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Splits `text` (no BOM) into records. CRLF and LF both end a record; a final line end is
/// optional; blank lines are skipped because a trailing empty line is a common editor
/// artefact, not a record.
pub(crate) fn parse_records(text: &str) -> Result<Vec<Record>, Unterminated> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quote_line = 0usize;
    let mut in_quotes = false;
    // Whether the current record has any content yet, so a blank line is not a record.
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quote_line = line;
                started = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if started {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                started = false;
                line += 1;
                record_line = line;
            }
            _ => {
                field.push(c);
                started = true;
            }
        }
    }
    if in_quotes {
        return Err(Unterminated { line: quote_line });
    }
    if started {
        fields.push(field);
        records.push(Record {
            line: record_line,
            fields,
        });
    }
    Ok(records)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        let values = ["plain", "a,b", "say \"hi\"", "two\nlines", "", "末尾,"];
        let mut line = String::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_field(&mut line, v);
        }
        line.push_str("\r\nx,y\n\n");
        let records = parse_records(&line).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].fields, values);
        assert_eq!(records[1].line, 3);
        assert_eq!(records[1].fields, ["x", "y"]);
    }

    #[test]
    fn an_open_quote_is_an_error() {
        assert_eq!(
            parse_records("a,\"b\nc").unwrap_err(),
            Unterminated { line: 1 }
        );
    }
}
