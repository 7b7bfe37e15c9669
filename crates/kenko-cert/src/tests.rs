//! Certificates: signing, canonical form, countersignature, chains and renderings.

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(crate) fn sample(job: &str, sequence: u64, previous: Option<String>) -> Certificate {
    Certificate {
        format: FORMAT.into(),
        job_id: job.into(),
        sequence,
        previous_sha256: previous,
        sanitized_by: Person {
            name: "越谷 花子".into(),
            title: "情報システム課 主任".into(),
            organization: "越谷市".into(),
            location: "埼玉県越谷市越ヶ谷四丁目2番1号".into(),
            phone: "048-000-0000".into(),
        },
        sanitization: Sanitization {
            method_type: crate::MethodType::Clear,
            method_used: "overwrite".into(),
            method_details: "1 pass, ChaCha20 keystream, O_DIRECT".into(),
            tool: "kenko-agent".into(),
            tool_version: "0.1.0".into(),
            verification_method: crate::VerificationMethod::Full,
            post_sanitization_classification: "unclassified".into(),
            notes: String::new(),
        },
        targets: vec![Target {
            spec: "file:/var/lib/old/records.db".into(),
            location: None,
            media: Media {
                media_type: "file".into(),
                classification: "特定個人情報".into(),
                ..Default::default()
            },
            bytes_erased: 1 << 20,
            objects_erased: 1,
            blocked: vec![],
            verification: Verification {
                method: crate::VerificationMethod::Full,
                passed: true,
                bytes_checked: 1 << 20,
                locations_checked: 1,
                details: String::new(),
            },
        }],
        media_destination: "reused".into(),
        started_at: "2026-11-25T01:00:00Z".into(),
        finished_at: "2026-11-25T01:05:00Z".into(),
        resumptions: 0,
        host: "node-1".into(),
        agent_version: "0.1.0".into(),
        authority: None,
        signature: None,
        validation: None,
    }
}

fn signed(job: &str, sequence: u64, previous: Option<String>) -> Vec<u8> {
    let mut c = sample(job, sequence, previous);
    c.sign(&key(1), "2026-11-25T01:05:01Z");
    c.to_file_bytes()
}

#[test]
fn a_signed_certificate_verifies_and_names_its_signer() {
    let bytes = signed("job-1", 1, None);
    let v = verify(&bytes, None).unwrap();
    assert_eq!(v.signer, hex::encode(key(1).verifying_key().as_bytes()));
    assert!(verify(&bytes, Some(&v.signer)).is_ok());
    let other = hex::encode(key(2).verifying_key().as_bytes());
    assert_eq!(
        verify(&bytes, Some(&other)).unwrap_err().reason(),
        "certificate_wrong_signer"
    );
}

#[test]
fn changing_any_byte_fails_verification() {
    let bytes = signed("job-1", 1, None);
    for i in 0..bytes.len() {
        for delta in [1u8, 0x20] {
            let mut t = bytes.clone();
            t[i] = t[i].wrapping_add(delta);
            assert!(
                verify(&t, None).is_err(),
                "a change at byte {i} went unnoticed"
            );
        }
    }
    // Removing or adding a byte too.
    assert!(verify(&bytes[..bytes.len() - 1], None).is_err());
    let mut longer = bytes.clone();
    longer.push(b'\n');
    assert_eq!(
        verify(&longer, None).unwrap_err().reason(),
        "certificate_not_canonical"
    );
}

#[test]
fn reformatted_json_with_the_same_content_is_refused() {
    let bytes = signed("job-1", 1, None);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert_eq!(
        verify(&pretty, None).unwrap_err().reason(),
        "certificate_not_canonical"
    );
}

#[test]
fn unsigned_and_failed_certificates_are_refused() {
    let c = sample("job-1", 1, None);
    assert_eq!(
        verify(&c.to_file_bytes(), None).unwrap_err().reason(),
        "certificate_unsigned"
    );
    let mut c = sample("job-2", 1, None);
    c.targets[0].verification.passed = false;
    c.sign(&key(1), "t");
    assert_eq!(
        verify(&c.to_file_bytes(), None).unwrap_err().reason(),
        "certificate_failed_verification"
    );
}

#[test]
fn changing_any_byte_of_a_countersigned_certificate_fails_verification() {
    let mut c = sample("job-1", 1, None);
    c.sign(&key(1), "2026-11-25T01:05:01Z");
    c.countersign(
        Person {
            name: "検証 太郎".into(),
            ..Default::default()
        },
        &key(2),
        "2026-11-26T09:00:00Z",
    )
    .unwrap();
    let bytes = c.to_file_bytes();
    assert!(verify(&bytes, None).is_ok());
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(
            verify(&t, None).is_err(),
            "a change at byte {i} went unnoticed"
        );
    }
}

#[test]
fn countersignature_covers_the_signed_certificate() {
    let mut c = sample("job-1", 1, None);
    let validator = Person {
        name: "検証 太郎".into(),
        ..Default::default()
    };
    assert_eq!(
        c.countersign(validator.clone(), &key(2), "t")
            .unwrap_err()
            .reason(),
        "certificate_unsigned"
    );
    c.sign(&key(1), "t1");
    c.countersign(validator, &key(2), "t2").unwrap();
    let v = verify(&c.to_file_bytes(), None).unwrap();
    assert_eq!(
        v.validated_by,
        Some(hex::encode(key(2).verifying_key().as_bytes()))
    );
    // A validation moved onto another signed certificate does not verify.
    let mut other = sample("job-9", 1, None);
    other.sign(&key(1), "t1");
    other.validation = c.validation.clone();
    assert_eq!(
        verify(&other.to_file_bytes(), None).unwrap_err().reason(),
        "certificate_bad_validation"
    );
}

fn chain(n: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut prev = None;
    for i in 1..=n {
        let bytes = signed(&format!("job-{i}"), i, prev.clone());
        prev = Some(hex::encode(Sha256::digest(&bytes)));
        out.push((format!("{i}.json"), bytes));
    }
    out
}

#[test]
fn a_chain_verifies_and_a_removed_or_replaced_link_is_found() {
    let files = chain(4);
    let counts = verify_chain(&files, &[]).unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].1, 4);

    let mut removed = files.clone();
    removed.remove(1);
    let (_, e) = verify_chain(&removed, &[]).unwrap_err();
    assert_eq!(e.reason(), "certificate_chain_broken");
    assert!(e.to_string().contains("certificate 2 is missing"), "{e}");

    // A certificate re-signed by the key holder with other content breaks the next link.
    let mut replaced = files.clone();
    replaced[1].1 = signed(
        "job-forged",
        2,
        Some(hex::encode(Sha256::digest(&files[0].1))),
    );
    let (_, e) = verify_chain(&replaced, &[]).unwrap_err();
    assert!(
        e.to_string().contains("does not follow certificate 2"),
        "{e}"
    );

    // A removed tail is found only against the recorded head.
    let signer = hex::encode(key(1).verifying_key().as_bytes());
    let head = hex::encode(Sha256::digest(&files[3].1));
    assert!(verify_chain(&files, &[(signer.clone(), head.clone())]).is_ok());
    let (_, e) = verify_chain(&files[..3], &[(signer, head)]).unwrap_err();
    assert!(e.to_string().contains("not the recorded head"), "{e}");

    // An altered file is named.
    let mut altered = files;
    let last = altered[2].1.len() - 3;
    altered[2].1[last] ^= 1;
    let (name, _) = verify_chain(&altered, &[]).unwrap_err();
    assert_eq!(name, "3.json");
}

#[test]
fn japanese_text_survives_canonicalisation() {
    let bytes = signed("job-1", 1, None);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.contains("越谷 花子") && text.contains("特定個人情報"));
    assert!(text.ends_with("}\n"));
}

#[test]
fn the_html_rendering_shows_every_appendix_g_field_and_escapes_text() {
    let mut c = sample("job-<1>", 1, None);
    c.sanitized_by.organization = "越谷市 & <情報政策課>".into();
    c.sign(&key(1), "2026-11-25T01:05:01Z");
    let v = verify(&c.to_file_bytes(), None).unwrap();
    let page = render::html(&v);
    for label in [
        "Person Performing Sanitization",
        "Manufacturer",
        "Model",
        "Serial Number",
        "Property Number",
        "Media Type",
        "Source",
        "Classification",
        "Data Backed Up",
        "Method Type",
        "Method Used",
        "Method Details",
        "Tool Used",
        "Verification Method",
        "Post-Sanitization Classification",
        "Notes",
        "Media Destination",
        "Validation",
    ] {
        assert!(page.contains(label), "{label} missing");
    }
    assert!(page.contains("越谷 花子"));
    assert!(page.contains("越谷市 &amp; &lt;情報政策課&gt;"));
    assert!(page.contains("job-&lt;1&gt;"));
    assert!(page.contains(&v.sha256));
    assert!(page.contains("not yet validated by a second person"));
}

#[test]
fn first_format_certificates_still_verify_and_the_authority_is_signed() {
    // A certificate of format 1 (no authority, no locations), byte for byte as issued then.
    let mut v1 = sample("job-v1", 1, None);
    v1.format = FORMAT_V1.into();
    v1.sign(&key(1), "2026-11-25T01:05:01Z");
    let bytes = v1.to_file_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("authority"));
    assert!(verify(&bytes, None).is_ok());

    // Format 2 signs the request, its people and the stack (uid included) with the rest.
    let mut v2 = sample("job-v2", 2, None);
    v2.authority = Some(Authority {
        request: "hachioji/decommission-hachioji".into(),
        request_uid: "0b9c-request".into(),
        requested_by: "system:serviceaccount:kenko-system:kenko-controller".into(),
        approved_by: "auditor-b".into(),
        stack: Some(StackRef {
            namespace: "hachioji".into(),
            name: "hachioji".into(),
            uid: "5f0c-stack".into(),
        }),
    });
    v2.targets[0].location = Some("pvc:hachioji-data".into());
    v2.sign(&key(1), "2026-11-25T01:05:01Z");
    let bytes = v2.to_file_bytes();
    let v = verify(&bytes, None).unwrap();
    assert_eq!(
        v.certificate
            .authority
            .as_ref()
            .unwrap()
            .stack
            .as_ref()
            .unwrap()
            .uid,
        "5f0c-stack"
    );
    let forged = String::from_utf8(bytes)
        .unwrap()
        .replace("5f0c-stack", "9999-other");
    assert_eq!(
        verify(forged.as_bytes(), None).unwrap_err().reason(),
        "certificate_bad_signature"
    );

    // Format 1 cannot carry format 2's fields.
    let mut mixed = v2.clone();
    mixed.format = FORMAT_V1.into();
    mixed.sign(&key(1), "2026-11-25T01:05:01Z");
    assert_eq!(
        verify(&mixed.to_file_bytes(), None).unwrap_err().reason(),
        "certificate_unknown_format"
    );
}

#[test]
fn typed_methods_serialise_to_the_strings_certificates_always_carried() {
    use crate::{MethodType, VerificationMethod};
    for m in [
        VerificationMethod::Full,
        VerificationMethod::Sample,
        VerificationMethod::SampleBeforeAfter,
        VerificationMethod::Crypto,
        VerificationMethod::Listing,
    ] {
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{}\"", m.as_str()));
        assert_eq!(
            serde_json::from_str::<VerificationMethod>(&json).unwrap(),
            m
        );
    }
    assert_eq!(
        serde_json::from_str::<VerificationMethod>("\"sample (before and after)\"").unwrap(),
        VerificationMethod::SampleBeforeAfter
    );
    for m in [MethodType::Clear, MethodType::Purge, MethodType::Destroy] {
        assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
    }
    // A value no certificate carries is refused, not read as something else.
    assert!(serde_json::from_str::<VerificationMethod>("\"sampled\"").is_err());
}

/// Text that would read one way to a person and another to the verifier is refused with its
/// own reason, naming the field and the code point, never the value; signed or not.
#[test]
fn text_a_reader_could_misread_is_refused_with_its_own_reason() {
    let k = key(1);
    let signed_with = |edit: &dyn Fn(&mut Certificate)| {
        let mut c = sample("job-t", 1, None);
        edit(&mut c);
        c.sign(&k, "2026-11-25T01:06:00Z");
        c.to_file_bytes()
    };
    let good = signed_with(&|_| {});
    verify(&good, None).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            [b"\xEF\xBB\xBF".as_slice(), &good].concat(),
            "certificate_byte_order_mark",
        ),
        (
            text.replacen(
                "\"media_destination\":\"reused\"",
                "\"media_destination\":\"reused\",\"media_destination\":\"destroyed\"",
                1,
            )
            .into_bytes(),
            "certificate_duplicate_key",
        ),
        (
            text.replacen("\"passed\":true", "\"passed\":true,\"passed\":false", 1)
                .into_bytes(),
            "certificate_duplicate_key",
        ),
        (
            text.replacen("file:/var", "file:\\/var", 1).into_bytes(),
            "certificate_escaped_character",
        ),
        (
            text.replacen("\"reused\"", "\"\\u0072eused\"", 1)
                .into_bytes(),
            "certificate_escaped_character",
        ),
        (
            {
                let mut b = good.clone();
                let at = text.find("file:/var").unwrap() + 5;
                b.splice(at..at + 1, [0xC0, 0xAF]);
                b
            },
            "certificate_not_utf8",
        ),
        (
            signed_with(&|c| c.sanitization.notes = "a\0b".into()),
            "certificate_control_character",
        ),
        (
            signed_with(&|c| c.targets[0].spec = "file:/srv/\u{202E}gpj.exe".into()),
            "certificate_bidi_control",
        ),
        (
            signed_with(&|c| c.sanitized_by.name = "越谷\u{200B}花子".into()),
            "certificate_invisible_character",
        ),
        (
            signed_with(&|c| c.sanitized_by.organization = "Cafe\u{301}".into()),
            "certificate_not_nfc",
        ),
        (
            signed_with(&|c| c.targets[0].spec = "s3://kenko-r\u{435}cords/x".into()),
            "certificate_non_ascii_identifier",
        ),
    ];
    for (bytes, reason) in cases {
        let e = verify(&bytes, None).unwrap_err();
        assert_eq!(e.reason(), reason, "{e}");
        let m = e.to_string();
        assert!(!m.contains('\n') && m.len() < 200, "one short line: {m}");
        for value in ["gpj", "花子", "Cafe", "cords", "destroyed"] {
            assert!(!m.contains(value), "the value is not shown: {m}");
        }
    }
    // Where it is: the field and the code point.
    let e = verify(
        &signed_with(&|c| c.targets[0].spec = "file:/srv/\u{202E}gpj.exe".into()),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`targets[0].spec` holds a bidirectional control character (U+202E) that reorders what a reader sees"
    );
    // Japanese text in NFC, full-width letters and a Japanese file name are all fine.
    verify(
        &signed_with(&|c| {
            c.sanitized_by.organization = "ＫＥＮＫＯ 越谷市 情報政策課".into();
            c.targets[0].spec = "file:/srv/旧記録/records.db".into();
        }),
        None,
    )
    .unwrap();
    // A validator's details are checked before they are signed.
    let p = Person {
        name: "\u{202E}eno rehtona".into(),
        ..Person::default()
    };
    assert_eq!(
        check_person(&p).unwrap_err().reason(),
        "certificate_bidi_control"
    );
}

#[test]
fn the_renderings_show_bidi_and_invisible_characters_never_obey_them() {
    let mut c = sample("job-r", 1, None);
    c.sanitized_by.name = "越谷\u{202E}花子\u{200B}".into();
    let v = Verified {
        certificate: c,
        sha256: "00".repeat(32),
        signer: "11".repeat(32),
        validated_by: None,
    };
    let page = render::html(&v);
    assert!(!page.contains('\u{202E}') && !page.contains('\u{200B}'));
    assert!(
        page.contains("越谷[U+202E]花子[U+200B]"),
        "shown as code points"
    );
}

#[test]
fn names_of_files_folders_and_objects_may_be_in_any_script() {
    for spec in [
        "s3://kenko-records/health/processed/2024-10_越谷クリニック.csv",
        "dir:/srv/旧システム/記録",
        "device:/dev/disk/by-id/ata-メーカー",
    ] {
        let mut c = sample("job-s", 1, None);
        c.targets[0].spec = spec.into();
        c.sign(&key(1), "2026-11-25T01:06:00Z");
        verify(&c.to_file_bytes(), None).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}
