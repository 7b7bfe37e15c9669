//! What counts as evidence: every check a forged, foreign, stale or untrusted certificate
//! fails, and locations covered across earlier requests.

use super::*;
use ed25519_dalek::SigningKey;
use kenko_api::ErasureCertificateSpec;
use kenko_cert::{
    Authority, Certificate, Media, Person, Sanitization, StackRef, Target as CertTarget,
    Verification,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn hexkey(seed: u8) -> String {
    hex::encode(key(seed).verifying_key().as_bytes())
}

fn stack() -> StackId {
    StackId {
        namespace: "hachioji".into(),
        name: "hachioji".into(),
        uid: "uid-now".into(),
        deleted_at: Some("2026-12-01T00:00:00Z".into()),
    }
}

fn trusted(seeds: &[u8]) -> TrustedSigners {
    let data = seeds
        .iter()
        .map(|s| (format!("node-{s}"), hexkey(*s)))
        .collect();
    TrustedSigners::from_data(&data).0
}

/// A certificate of `locations` signed by `seed`, for stack `uid`, started at `started`.
fn cert(
    name: &str,
    seed: u8,
    uid: &str,
    started: &str,
    locations: &[(&str, bool)],
) -> ErasureCertificate {
    let mut c = Certificate {
        format: kenko_cert::FORMAT.into(),
        job_id: name.into(),
        sequence: 1,
        previous_sha256: None,
        sanitized_by: Person::default(),
        sanitization: Sanitization::default(),
        targets: locations
            .iter()
            .map(|(l, blocked)| CertTarget {
                spec: format!("engine-of-{l}"),
                location: Some(l.to_string()),
                media: Media::default(),
                bytes_erased: 1,
                objects_erased: 1,
                blocked: if *blocked {
                    vec![kenko_cert::Blocked {
                        item: "rp".into(),
                        reason: "Vault Lock".into(),
                        until: Some("2046-01-01T00:00:00Z".into()),
                    }]
                } else {
                    vec![]
                },
                verification: Verification {
                    method: kenko_cert::VerificationMethod::Listing,
                    passed: true,
                    bytes_checked: 0,
                    locations_checked: 1,
                    details: String::new(),
                },
            })
            .collect(),
        media_destination: String::new(),
        started_at: started.into(),
        finished_at: started.into(),
        resumptions: 0,
        host: "node".into(),
        agent_version: "0.1.0".into(),
        authority: Some(Authority {
            request: "hachioji/decommission-hachioji".into(),
            request_uid: "req".into(),
            requested_by: "a".into(),
            approved_by: "b".into(),
            stack: Some(StackRef {
                namespace: "hachioji".into(),
                name: "hachioji".into(),
                uid: uid.into(),
            }),
        }),
        signature: None,
        validation: None,
    };
    c.sign(&key(seed), started);
    let bytes = c.to_file_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    ErasureCertificate::new(
        name,
        ErasureCertificateSpec {
            job_id: name.into(),
            request: "hachioji/decommission-hachioji".into(),
            stack: Some("hachioji/hachioji".into()),
            // What the resource claims: never read by the judge.
            targets: vec!["pvc:hachioji-data".into()],
            target_count: 1,
            blocked_count: 0,
            signer: hexkey(seed),
            sha256: hex::encode(Sha256::digest(&bytes)),
            issued_at: started.into(),
            certificate: text,
        },
    )
}

const AFTER: &str = "2026-12-01T00:05:00Z";

fn reason(v: Verdict) -> &'static str {
    match v {
        Verdict::Rejected { reason, .. } => reason,
        Verdict::Counts { .. } => "counted",
    }
}

#[test]
fn a_genuine_certificate_of_this_stack_by_a_trusted_signer_counts_its_signed_locations() {
    let c = cert("c1", 1, "uid-now", AFTER, &[("pvc:hachioji-data", false)]);
    match judge(&c, &stack(), &trusted(&[1])) {
        Verdict::Counts {
            covered, signer, ..
        } => {
            assert_eq!(
                covered,
                vec!["pvc:hachioji-data".parse::<Target>().unwrap()]
            );
            assert_eq!(signer, "node-1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forged_altered_untrusted_foreign_and_stale_certificates_are_rejected() {
    let t = trusted(&[1]);
    // The text of the forgery: not a certificate at all, with a matching hash.
    let mut forged = cert("f", 1, "uid-now", AFTER, &[("pvc:hachioji-data", false)]);
    forged.spec.certificate = "not a real certificate".into();
    forged.spec.sha256 = hex::encode(Sha256::digest(b"not a real certificate"));
    assert_eq!(
        reason(judge(&forged, &stack(), &t)),
        "certificate_malformed"
    );
    // A genuine certificate's text with the resource's hash left as it was: refused first.
    let mut altered = cert("a", 1, "uid-now", AFTER, &[("pvc:hachioji-data", false)]);
    altered.spec.certificate = altered
        .spec
        .certificate
        .replace("pvc:hachioji-data", "pvc:other");
    assert_eq!(
        reason(judge(&altered, &stack(), &t)),
        "certificate_hash_mismatch"
    );
    // ... and with the hash recomputed: the signature no longer matches.
    altered.spec.sha256 = hex::encode(Sha256::digest(altered.spec.certificate.as_bytes()));
    assert_eq!(
        reason(judge(&altered, &stack(), &t)),
        "certificate_bad_signature"
    );
    // Signed by a key nobody registered (an agent's identity cannot add one).
    let other = cert("u", 2, "uid-now", AFTER, &[("pvc:hachioji-data", false)]);
    assert_eq!(
        reason(judge(&other, &stack(), &t)),
        "certificate_untrusted_signer"
    );
    assert_eq!(
        reason(judge(&other, &stack(), &TrustedSigners::default())),
        "certificate_untrusted_signer"
    );
    // An earlier stack of the same name.
    let old = cert("o", 1, "uid-before", AFTER, &[("pvc:hachioji-data", false)]);
    assert_eq!(reason(judge(&old, &stack(), &t)), "certificate_other_stack");
    // Erased while the stack could still write.
    let early = cert(
        "e",
        1,
        "uid-now",
        "2026-11-30T23:59:59Z",
        &[("pvc:hachioji-data", false)],
    );
    assert_eq!(
        reason(judge(&early, &stack(), &t)),
        "certificate_before_deletion"
    );
}

#[test]
fn locations_stay_covered_across_requests_and_blocked_ones_are_not_covered() {
    let locations: Vec<Target> = [
        "pvc:hachioji-data",
        "s3://kenko-prod-records-123456789012-ap-northeast-1",
        "backup-vault:ap-northeast-3/kenko-prod-osaka",
        "kms:arn:aws:kms:ap-northeast-1:123456789012:key/k1",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let first_request = cert(
        "c-first",
        1,
        "uid-now",
        AFTER,
        &[("pvc:hachioji-data", false)],
    );
    let retry = cert(
        "c-retry",
        2,
        "uid-now",
        "2026-12-02T00:00:00Z",
        &[
            ("s3://kenko-prod-records-123456789012-ap-northeast-1", false),
            ("backup-vault:ap-northeast-3/kenko-prod-osaka", true),
        ],
    );
    let rogue = cert(
        "c-rogue",
        9,
        "uid-now",
        AFTER,
        &[("kms:arn:aws:kms:ap-northeast-1:123456789012:key/k1", false)],
    );
    let cov = coverage(
        &locations,
        &[retry, rogue, first_request],
        &stack(),
        &trusted(&[1, 2]),
    );
    assert_eq!(cov.covered.len(), 2);
    assert_eq!(
        cov.covered[0].1, "c-first",
        "the first request's certificate still counts"
    );
    assert_eq!(cov.blocked, vec![locations[2].clone()]);
    assert_eq!(
        cov.missing,
        vec![locations[3].clone()],
        "the untrusted one covers nothing"
    );
    assert_eq!(cov.rejected.len(), 1);
    assert_eq!(cov.rejected[0].1, "certificate_untrusted_signer");
    assert_eq!(cov.certificates(), vec!["c-first", "c-retry"]);
}

#[test]
fn the_trusted_set_ignores_entries_that_are_not_keys() {
    let data = BTreeMap::from([
        (
            "node-a".to_string(),
            format!(" {}\n", hexkey(1).to_uppercase()),
        ),
        ("typo".to_string(), "abc".to_string()),
    ]);
    let (t, bad) = TrustedSigners::from_data(&data);
    assert_eq!(t.name_of(&hexkey(1)), Some("node-a"));
    assert_eq!(bad, vec!["typo"]);
}
