//! The chain: appends, digests, and every kind of tampering found by name.

use super::*;

/// A file of 10 segments of 3 lines each, taken in over two days.
fn setup() -> (Vec<u8>, Vec<SegmentRecord>) {
    let mut file = Vec::new();
    let mut recs = Vec::new();
    let mut chain = Chain::new();
    let day1 = Date::new(2026, 11, 2).unwrap().jst_midnight_epoch() + 3600;
    for s in 0..10u32 {
        let start = file.len() as u64;
        let mut seg = Vec::new();
        for l in 0..3 {
            seg.extend_from_slice(
                format!(
                    "{{\"time\":\"2026-11-02T09:00:0{l}+09:00\",\"staff_id\":\"S{s:04}\",\"action\":\"view\",\"n\":{}}}\n",
                    s * 3 + l
                )
                .as_bytes(),
            );
        }
        let t = day1 + i64::from(s) * 6 * 3600; // four a day: seq 1-4, 5-8, 9-10
        recs.push(chain.append("health.jsonl", start, &seg, t));
        file.extend_from_slice(&seg);
    }
    (file, recs)
}

fn fetch<'f>(file: &'f [u8]) -> impl FnMut(&SegmentRecord) -> Option<Cow<'f, [u8]>> {
    move |r| {
        let (s, e) = (r.start as usize, r.end as usize);
        (e <= file.len()).then(|| Cow::Borrowed(&file[s..e]))
    }
}

#[test]
fn intact_chain_verifies() {
    let (file, recs) = setup();
    let digests = daily_digests(&recs);
    assert_eq!(digests.len(), 3);
    assert_eq!(digests[0].first_seq, 1);
    assert!(verify(&recs, &digests, fetch(&file)).is_empty());
    assert!(verify_file(&recs, &file).is_empty());
    // Records round-trip through their JSON line; resuming continues the chain.
    for r in &recs {
        assert_eq!(
            &SegmentRecord::from_json_line(&r.to_json_line()).unwrap(),
            r
        );
    }
    let mut c = Chain::resume(recs.last().unwrap());
    let more = c.append(
        "health.jsonl",
        file.len() as u64,
        b"x\n",
        recs[9].ingested_at,
    );
    let mut all = recs.clone();
    all.push(more);
    let mut file2 = file.clone();
    file2.extend_from_slice(b"x\n");
    assert!(verify(&all, &digests, fetch(&file2)).is_empty());
    // A line appended but not yet taken in is not judged.
    file2.extend_from_slice(b"pending\n");
    assert!(verify_file(&all, &file2).is_empty());
}

#[test]
fn digest_day_matches_daily_digests() {
    let (_, recs) = setup();
    let all = daily_digests(&recs);
    let mut prev: Option<String> = None;
    let mut i = 0;
    for d in &all {
        let n = d.segments as usize;
        let one = digest_day(prev.as_deref(), &recs[i..i + n]).unwrap();
        assert_eq!(&one, d);
        prev = Some(one.digest);
        i += n;
    }
}

#[test]
fn changed_segment() {
    let (mut file, recs) = setup();
    let digests = daily_digests(&recs);
    let p = recs[4].start as usize + 30;
    file[p] = if file[p] == b'1' { b'2' } else { b'1' };
    assert_eq!(
        verify(&recs, &digests, fetch(&file)),
        [Finding::SegmentChanged { seq: 5 }]
    );
    assert_eq!(
        verify_file(&recs, &file),
        [Finding::SegmentChanged { seq: 5 }]
    );
    // A line inserted into a segment: that one changed, the rest are found shifted.
    let (mut file, recs) = setup();
    let at = recs[2].start as usize + 5;
    file.splice(at..at, b"{\"x\":1}\n".iter().copied());
    assert_eq!(
        verify_file(&recs, &file),
        [Finding::SegmentChanged { seq: 3 }]
    );
}

#[test]
fn removed_segment() {
    let (file, recs) = setup();
    let digests = daily_digests(&recs);
    let mut cut = file.clone();
    cut.drain(recs[6].start as usize..recs[6].end as usize);
    assert_eq!(
        verify_file(&recs, &cut),
        [Finding::SegmentRemoved { seq: 7 }]
    );
    // Through the closure: the archive has no segment 7.
    let found = verify(&recs, &digests, |r| {
        (r.seq != 7).then(|| Cow::Borrowed(&file[r.start as usize..r.end as usize]))
    });
    assert_eq!(found, [Finding::SegmentRemoved { seq: 7 }]);
    // The record removed too: the gap shows, and the digest of its day.
    let mut fewer = recs.clone();
    fewer.remove(6);
    let found = verify(&fewer, &digests, fetch(&file));
    assert!(
        found.contains(&Finding::RecordsRemoved {
            first_seq: 7,
            last_seq: 7
        }),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| matches!(
            f,
            Finding::DigestMismatch { .. } | Finding::TailRemoved { .. }
        )),
        "{found:?}"
    );
    // The last records removed: only the published digest can tell.
    let mut tail = recs.clone();
    tail.truncate(9);
    let found = verify(&tail, &digests, fetch(&file));
    assert_eq!(
        found,
        [Finding::TailRemoved {
            day: digests[2].day.clone(),
            last_seq: 10
        }]
    );
    // The whole last day removed.
    let last_day_first = digests[2].first_seq as usize;
    let mut day_gone = recs.clone();
    day_gone.truncate(last_day_first - 1);
    let found = verify(&day_gone, &digests, fetch(&file));
    assert_eq!(
        found,
        [Finding::DayRemoved {
            day: digests[2].day.clone()
        }]
    );
}

#[test]
fn reordered_segments() {
    let (file, recs) = setup();
    let digests = daily_digests(&recs);
    // Segments 3 and 4 swapped in the file (different lengths, so offsets shift).
    let (a, b) = (&recs[2], &recs[3]);
    let mut sw = file[..a.start as usize].to_vec();
    sw.extend_from_slice(&file[b.start as usize..b.end as usize]);
    sw.extend_from_slice(&file[a.start as usize..a.end as usize]);
    sw.extend_from_slice(&file[b.end as usize..]);
    let found = verify_file(&recs, &sw);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(found[0], Finding::SegmentMoved { seq: 3 | 4, .. }),
        "{found:?}"
    );
    // Same-length segments swapped: each place holds the other's bytes.
    let found = verify(&recs, &digests, |r| {
        let src = match r.seq {
            3 => &recs[3],
            4 => &recs[2],
            _ => r,
        };
        Some(Cow::Borrowed(&file[src.start as usize..src.end as usize]))
    });
    assert_eq!(
        found,
        [
            Finding::SegmentHoldsOther {
                seq: 3,
                other_seq: 4
            },
            Finding::SegmentHoldsOther {
                seq: 4,
                other_seq: 3
            },
        ]
    );
    // Records stored out of order.
    let mut rec2 = recs.clone();
    rec2.swap(5, 8);
    let found = verify(&rec2, &digests, fetch(&file));
    let out_of_order: Vec<_> = found
        .iter()
        .filter(|f| matches!(f, Finding::RecordOutOfOrder { .. }))
        .collect();
    assert!(
        !out_of_order.is_empty() && out_of_order.len() <= 2,
        "{found:?}"
    );
    assert!(!found
        .iter()
        .any(|f| matches!(f, Finding::SegmentChanged { .. })));
    // A segment moved to the end of the file.
    let m = &recs[1];
    let mut moved = file[..m.start as usize].to_vec();
    moved.extend_from_slice(&file[m.end as usize..]);
    moved.extend_from_slice(&file[m.start as usize..m.end as usize]);
    assert_eq!(
        verify_file(&recs, &moved),
        [Finding::SegmentMoved {
            seq: 2,
            offset: (file.len() - m.len() as usize) as u64
        }]
    );
}

#[test]
fn altered_records_and_digests() {
    let (file, recs) = setup();
    let digests = daily_digests(&recs);
    // A record's range edited to hide a segment: its link no longer matches.
    let mut r2 = recs.clone();
    r2[3].end -= 1;
    let found = verify(&r2, &digests, fetch(&file));
    assert!(
        found.contains(&Finding::RecordAltered { seq: 4 }),
        "{found:?}"
    );
    // ... and relinked: the next record's link to it breaks.
    let mut r3 = recs.clone();
    r3[3].sha256 = [7; 32];
    r3[3].link = r3[3].compute_link();
    let found = verify(&r3, &digests, fetch(&file));
    assert!(
        found.contains(&Finding::ChainBroken { seq: 5 }),
        "{found:?}"
    );
    // A published digest edited.
    let mut d2 = digests.clone();
    d2[1].segments += 1;
    let found = verify(&recs, &d2, fetch(&file));
    assert!(
        found.contains(&Finding::DigestAltered {
            day: d2[1].day.clone()
        }),
        "{found:?}"
    );
    // Findings never show content.
    for f in found {
        assert!(!f.to_string().contains("S00"));
    }
}

#[test]
fn a_segment_hashed_in_pieces_is_the_record_of_its_bytes() {
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for cut in [0, 1, 63, 64, 65, 9_999] {
        let mut h = SegmentHasher::default();
        h.update(&bytes[..cut]);
        for piece in bytes[cut..].chunks(7) {
            h.update(piece);
        }
        let mut a = Chain::new();
        let mut b = Chain::new();
        assert_eq!(
            a.append("f", 5, &bytes, 9),
            b.append_hashed("f", 5, h.finish(), 9)
        );
    }
}
