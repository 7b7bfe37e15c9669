//! Shared by the test files: a real signed certificate (synthetic content, no real person).
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use kenko_cert::{Certificate, Media, Person, Sanitization, Target, Verification, FORMAT};

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn public_key_hex(seed: u8) -> String {
    hex::encode(key(seed).verifying_key().as_bytes())
}

/// The canonical signed bytes of a certificate for `job`, signed by `key(seed)`.
pub fn signed_certificate(job: &str, seed: u8) -> Vec<u8> {
    let mut c = Certificate {
        format: FORMAT.into(),
        job_id: job.into(),
        sequence: 1,
        previous_sha256: None,
        sanitized_by: Person {
            name: "Operator A".into(),
            title: "ASP maintainer".into(),
            organization: "Example City".into(),
            location: "Data centre 1".into(),
            phone: "000-0000-0000".into(),
        },
        sanitization: Sanitization {
            method_type: kenko_cert::MethodType::Clear,
            method_used: "overwrite".into(),
            method_details: "1 pass, ChaCha8 keystream, O_DIRECT".into(),
            tool: "kenko-agent".into(),
            tool_version: "0.1.0".into(),
            verification_method: kenko_cert::VerificationMethod::Full,
            post_sanitization_classification: "unclassified".into(),
            notes: String::new(),
        },
        targets: vec![Target {
            spec: "pvc:data".into(),
            location: None,
            media: Media {
                media_type: "block volume".into(),
                ..Default::default()
            },
            bytes_erased: 1 << 20,
            objects_erased: 1,
            blocked: vec![],
            verification: Verification {
                method: kenko_cert::VerificationMethod::Full,
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
    };
    c.sign(&key(seed), "2026-11-25T01:05:01Z");
    c.to_file_bytes()
}

/// The same certificate with one erased-byte count changed after signing (still canonical).
pub fn tampered(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let changed = text.replacen("\"bytes_erased\":1048576", "\"bytes_erased\":2097152", 1);
    assert_ne!(changed, text, "the tampering must change something");
    changed.into_bytes()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    kubectl_kenko::certificates::sha256_hex(bytes)
}
