//! The one input merge: log lines of each source, parsed and fed to the [`Detector`] in time
//! order (a k-way merge of inputs each in time order themselves). The agent's follower feeds
//! each step's new lines through it, `access check` whole files, and the tests generated logs;
//! a line that cannot be parsed is handed to the caller and skipped.

use crate::event::{parse_cloudtrail_line, parse_health_line, parse_k8s_line, Problem};
use crate::{Detector, Event, ParseError, Principals, Source};

/// The longest line (newline included) any input may have: 4 MiB, above the largest
/// Kubernetes audit event (a request and response of etcd's 1.5 MiB object limit) and far above
/// a health log line or a CloudTrail record. A longer line is refused unparsed
/// ([`Problem::LineTooLong`]); the agent's follower reads such a line through in small pieces
/// without holding it, so memory stays bounded whatever a log holds.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// A line input of a step: its source, bytes and the line number before them.
pub struct LineBatch<'a> {
    pub source: Source,
    pub bytes: &'a [u8],
    pub first_line: u64,
    /// The HealthStack (`namespace/name`) the input belongs to (a stack's app pod log).
    pub stack: Option<&'a str>,
}

/// Events taken in, and unreadable lines, by source (indexed by `Source as usize`).
#[derive(Debug, Default, Clone, Copy)]
pub struct FeedCounts {
    pub events: [u64; 3],
    pub errors: [u64; 3],
}

/// The index of a source in [`FeedCounts`] and [`SOURCES`].
pub fn src_index(s: Source) -> usize {
    match s {
        Source::Health => 0,
        Source::K8sAudit => 1,
        Source::CloudTrail => 2,
    }
}

/// Every source, in index order.
pub const SOURCES: [Source; 3] = [Source::Health, Source::K8sAudit, Source::CloudTrail];

/// Parses the line batches and the (already parsed) CloudTrail events and feeds them to the
/// detector in time order (a k-way merge; each input is in time order itself). A line that
/// cannot be read is passed to `on_error` and skipped.
pub fn feed<'a>(
    det: &mut Detector,
    principals: &Principals,
    batches: &[LineBatch<'a>],
    mut cloudtrail: Vec<Event<'a>>,
    mut on_error: impl FnMut(&ParseError),
) -> FeedCounts {
    struct Stream<'a> {
        source: Source,
        stack: Option<&'a str>,
        rest: &'a [u8],
        line_no: u64,
        head: Option<Event<'a>>,
    }
    fn advance<'a>(
        s: &mut Stream<'a>,
        p: &Principals,
        counts: &mut FeedCounts,
        on_error: &mut impl FnMut(&ParseError),
    ) {
        s.head = None;
        while !s.rest.is_empty() {
            let end = memchr_nl(s.rest).map_or(s.rest.len(), |i| i + 1);
            let (line, rest) = s.rest.split_at(end);
            s.rest = rest;
            s.line_no += 1;
            if line.len() > MAX_LINE_BYTES {
                counts.errors[src_index(s.source)] += 1;
                on_error(&ParseError {
                    source: s.source,
                    line: s.line_no,
                    record: None,
                    field: None,
                    problem: Problem::LineTooLong,
                });
                continue;
            }
            let parsed = match s.source {
                Source::Health => parse_health_line(line, s.line_no),
                Source::K8sAudit => parse_k8s_line(line, s.line_no, p),
                Source::CloudTrail => parse_cloudtrail_line(line, s.line_no, p),
            };
            match parsed {
                Ok(Some(mut ev)) => {
                    if let Some(stack) = s.stack {
                        ev.stack = Some(std::borrow::Cow::Borrowed(stack));
                    }
                    s.head = Some(ev);
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    counts.errors[src_index(s.source)] += 1;
                    on_error(&e);
                }
            }
        }
    }
    let mut counts = FeedCounts::default();
    let mut streams: Vec<Stream<'a>> = batches
        .iter()
        .map(|b| Stream {
            source: b.source,
            stack: b.stack,
            rest: b.bytes,
            line_no: b.first_line,
            head: None,
        })
        .collect();
    for s in &mut streams {
        advance(s, principals, &mut counts, &mut on_error);
    }
    cloudtrail.sort_by_key(|e| e.time);
    let mut ct = cloudtrail.into_iter().peekable();
    if streams.len() == 1 && ct.peek().is_none() {
        // One input (the common case while following): no merge.
        let s = &mut streams[0];
        let i = src_index(s.source);
        while let Some(ev) = s.head.take() {
            det.observe(&ev);
            counts.events[i] += 1;
            advance(s, principals, &mut counts, &mut on_error);
        }
        return counts;
    }
    loop {
        let next = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|e| (e.time, i)))
            .min();
        let ct_time = ct.peek().map(|e| e.time);
        match (next, ct_time) {
            (Some((t, _)), Some(c)) if c < t => {
                det.observe(&ct.next().expect("peeked"));
                counts.events[2] += 1;
            }
            (None, Some(_)) => {
                det.observe(&ct.next().expect("peeked"));
                counts.events[2] += 1;
            }
            (Some((_, i)), _) => {
                let s = &mut streams[i];
                det.observe(s.head.as_ref().expect("has a head"));
                counts.events[src_index(s.source)] += 1;
                advance(s, principals, &mut counts, &mut on_error);
            }
            (None, None) => break,
        }
    }
    counts
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
