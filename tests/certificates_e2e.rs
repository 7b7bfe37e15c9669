//! The `kenko-agent certificate` commands an auditor runs, on real files: verify, tamper,
//! countersign, chains with a removed certificate.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::Path;
use std::process::{Command, Output};

use kenko_cert::{Certificate, Media, Person, Sanitization, Target, Verification, FORMAT};
use sha2::{Digest, Sha256};

fn agent(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kenko-agent"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn certificate(job: &str, sequence: u64, previous: Option<String>) -> Certificate {
    Certificate {
        format: FORMAT.into(),
        job_id: job.into(),
        sequence,
        previous_sha256: previous,
        sanitized_by: Person {
            name: "越谷 花子".into(),
            title: "主任".into(),
            organization: "越谷市 情報政策課".into(),
            location: "越谷市役所".into(),
            phone: "048-000-0000".into(),
        },
        sanitization: Sanitization {
            method_type: kenko_cert::MethodType::Clear,
            method_used: "overwrite".into(),
            tool: "kenko-agent".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            verification_method: kenko_cert::VerificationMethod::Full,
            ..Default::default()
        },
        targets: vec![Target {
            spec: "file:/srv/old/records.db".into(),
            location: None,
            media: Media {
                media_type: "file".into(),
                ..Default::default()
            },
            bytes_erased: 4096,
            objects_erased: 1,
            blocked: vec![],
            verification: Verification {
                method: kenko_cert::VerificationMethod::Full,
                passed: true,
                bytes_checked: 4096,
                locations_checked: 1,
                details: String::new(),
            },
        }],
        media_destination: "reused".into(),
        started_at: "2026-11-25T01:00:00Z".into(),
        finished_at: "2026-11-25T01:01:00Z".into(),
        resumptions: 0,
        host: "node-1".into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        authority: None,
        signature: None,
        validation: None,
    }
}

/// The agent's own signing key, as the erasure engine will use it.
fn agent_key(data: &Path) -> (ed25519_dalek::SigningKey, String) {
    let out = agent(data, &["certificate", "public-key"]);
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let path = data.join("keys/signing.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600,
        "the signing key is created 0600"
    );
    let seed: [u8; 32] = std::fs::read(&path).unwrap().try_into().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(hex::encode(key.verifying_key().as_bytes()), public);
    (key, public)
}

#[test]
fn an_auditor_verifies_a_certificate_and_any_tampering_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, public) = agent_key(&data);
    let mut c = certificate("job-1", 1, None);
    c.sign(&key, "2026-11-25T01:01:01Z");
    let file = dir.path().join("cert.json");
    std::fs::write(&file, c.to_file_bytes()).unwrap();

    let pubfile = dir.path().join("kenko.pub");
    assert!(agent(
        &data,
        &[
            "certificate",
            "public-key",
            "--out",
            pubfile.to_str().unwrap()
        ]
    )
    .status
    .success());
    let out = agent(
        &data,
        &[
            "certificate",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            pubfile.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("genuine and complete") && text.contains(&public),
        "{text}"
    );

    // Rendered for people, from the verified file.
    let out = agent(&data, &["certificate", "render", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("cert.html")).unwrap();
    assert!(page.contains("越谷 花子"));
    assert!(page.contains("Certificate of Sanitization"));

    // One changed digit in the bytes erased: refused, with the reason.
    let original = std::fs::read(&file).unwrap();
    let at = String::from_utf8_lossy(&original)
        .find("\"bytes_erased\":4096")
        .unwrap()
        + 16;
    let mut tampered = original.clone();
    tampered[at] = b'9';
    std::fs::write(&file, &tampered).unwrap();
    let out = agent(&data, &["certificate", "verify", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate_bad_signature"), "{err}");
    let out = agent(&data, &["certificate", "render", file.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "a tampered certificate is not rendered"
    );

    // Pretty-printed by someone's editor: not canonical.
    let v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let out = agent(&data, &["certificate", "verify", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate_not_canonical"));

    // Genuine, but signed by another key than the one the auditor expects.
    std::fs::write(&file, &original).unwrap();
    let other = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .as_bytes(),
    );
    let out = agent(
        &data,
        &[
            "certificate",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            &other,
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate_wrong_signer"));
}

#[test]
fn a_second_person_countersigns_and_the_chain_finds_a_removed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, public) = agent_key(&data);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let mut previous = None;
    let mut last_sha = String::new();
    for i in 1..=3u64 {
        let mut c = certificate(&format!("job-{i}"), i, previous.clone());
        c.sign(&key, "2026-11-25T02:00:00Z");
        let bytes = c.to_file_bytes();
        last_sha = hex::encode(Sha256::digest(&bytes));
        previous = Some(last_sha.clone());
        std::fs::write(certs.join(format!("{i:06}-job-{i}.json")), bytes).unwrap();
    }
    let validator_key = dir.path().join("validator.key");
    let second = certs.join("000002-job-2.json");
    let out = agent(
        &data,
        &[
            "certificate",
            "countersign",
            second.to_str().unwrap(),
            "--key",
            validator_key.to_str().unwrap(),
            "--name",
            "検証 太郎",
            "--title",
            "課長",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent(&data, &["certificate", "verify", second.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("validated by"));

    // Countersigning changed certificate 2's bytes, so certificate 3 no longer follows it:
    // validation belongs before the next certificate is chained. The chain says so.
    let out = agent(
        &data,
        &["certificate", "verify-chain", certs.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not follow certificate 2"));

    // A fresh chain, verified whole, then with a certificate removed, then with its tail cut.
    std::fs::remove_dir_all(&certs).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    let mut previous = None;
    for i in 1..=3u64 {
        let mut c = certificate(&format!("job-{i}"), i, previous.clone());
        c.sign(&key, "2026-11-25T02:00:00Z");
        let bytes = c.to_file_bytes();
        last_sha = hex::encode(Sha256::digest(&bytes));
        previous = Some(last_sha.clone());
        std::fs::write(certs.join(format!("{i:06}.json")), bytes).unwrap();
    }
    let head = format!("{public}={last_sha}");
    let out = agent(
        &data,
        &[
            "certificate",
            "verify-chain",
            certs.to_str().unwrap(),
            "--head",
            &head,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 certificate(s), unbroken"));
    std::fs::remove_file(certs.join("000003.json")).unwrap();
    let out = agent(
        &data,
        &[
            "certificate",
            "verify-chain",
            certs.to_str().unwrap(),
            "--head",
            &head,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate_chain_broken"));
    std::fs::remove_file(certs.join("000002.json")).unwrap();
    std::fs::write(certs.join("000003.json"), b"{}").unwrap();
    let out = agent(
        &data,
        &["certificate", "verify-chain", certs.to_str().unwrap()],
    );
    assert!(!out.status.success());
}

/// The agent with extra environment variables (e.g. `KENKO_RENDER_FONT`).
fn agent_env(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kenko-agent"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

/// A poppler-utils tool's output (`pdftotext`, `pdffonts`).
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install the Debian package poppler-utils)"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A signed certificate by a person of 健康市, written to `dir/cert.json`.
fn japanese_certificate(dir: &Path, data: &Path, job: &str) -> std::path::PathBuf {
    let (key, _) = agent_key(data);
    let mut c = certificate(job, 1, None);
    c.sanitized_by.name = "山田 太郎".into();
    c.sanitized_by.organization = "健康市 健康推進課".into();
    c.sanitized_by.location = "健康市役所".into();
    c.targets[0].media.classification = "特定個人情報".into();
    c.sign(&key, "2026-11-25T01:01:01Z");
    let file = dir.join("cert.json");
    std::fs::write(&file, c.to_file_bytes()).unwrap();
    file
}

#[test]
fn a_certificate_renders_as_a_pdf_whose_japanese_text_can_be_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = japanese_certificate(dir.path(), &data, "job-pdf-20261125-1");
    // The second person's validation shows on the PDF too.
    let out = agent(
        &data,
        &[
            "certificate",
            "countersign",
            file.to_str().unwrap(),
            "--key",
            dir.path().join("validator.key").to_str().unwrap(),
            "--name",
            "検証 次郎",
            "--organization",
            "健康市 監査委員事務局",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&file).unwrap()));

    let out = agent(
        &data,
        &[
            "certificate",
            "render",
            file.to_str().unwrap(),
            "--format",
            "pdf",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdf_path = dir.path().join("cert.pdf");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pdf_path.display().to_string()
    );
    let pdf = std::fs::read(&pdf_path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // A subset of the 6 MB font: tens of KiB.
    assert!(pdf.len() < 64 * 1024, "{} bytes", pdf.len());

    let text = poppler(
        "pdftotext",
        &["-enc", "UTF-8", pdf_path.to_str().unwrap(), "-"],
    );
    for expected in [
        "データ消去証明書",
        "Certificate of Sanitization",
        "山田 太郎",
        "健康市 健康推進課",
        "検証 次郎",
        "健康市 監査委員事務局",
        "job-pdf-20261125-1",
        "特定個人情報",
        sha.as_str(),
        "the signed JSON file is the evidence",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the PDF's text:\n{text}"
        );
    }
    // The font is embedded as a subset, with a ToUnicode map (emb, sub, uni: yes yes yes).
    let fonts = poppler("pdffonts", &[pdf_path.to_str().unwrap()]);
    let line = fonts.lines().nth(2).unwrap_or_default();
    assert!(
        line.contains("CID TrueType") && line.contains("yes yes yes"),
        "{fonts}"
    );

    // The same certificate renders to the same bytes (named with --out, font named by env).
    let again = dir.path().join("again.pdf");
    let out = agent_env(
        &data,
        &[(
            "KENKO_RENDER_FONT",
            "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
        )],
        &[
            "certificate",
            "render",
            file.to_str().unwrap(),
            "--format",
            "pdf",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&again).unwrap(), pdf, "two renders differ");
}

#[test]
fn a_tampered_certificate_is_not_rendered_as_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = japanese_certificate(dir.path(), &data, "job-pdf-2");
    let original = std::fs::read(&file).unwrap();
    let at = String::from_utf8_lossy(&original)
        .find("\"bytes_erased\":4096")
        .unwrap()
        + 16;
    let mut tampered = original;
    tampered[at] = b'9';
    std::fs::write(&file, &tampered).unwrap();
    let out = agent(
        &data,
        &[
            "certificate",
            "render",
            file.to_str().unwrap(),
            "--format",
            "pdf",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate_bad_signature"), "{err}");
    assert!(!dir.path().join("cert.pdf").exists(), "no PDF is written");
}

#[test]
fn without_a_usable_font_the_pdf_is_refused_with_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = japanese_certificate(dir.path(), &data, "job-pdf-3");
    let missing = dir.path().join("fonts/none.ttf");
    let missing = missing.to_str().unwrap();
    for out in [
        agent(
            &data,
            &[
                "certificate",
                "render",
                file.to_str().unwrap(),
                "--format",
                "pdf",
                "--font",
                missing,
            ],
        ),
        agent_env(
            &data,
            &[("KENKO_RENDER_FONT", missing)],
            &[
                "certificate",
                "render",
                file.to_str().unwrap(),
                "--format",
                "pdf",
            ],
        ),
    ] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("render_font_missing"), "{err}");
        assert!(err.contains(&format!("{missing} (not found)")), "{err}");
        assert!(err.contains("fonts-ipafont-gothic"), "{err}");
        assert!(!err.contains("山田"), "no personal data in errors: {err}");
        assert!(!dir.path().join("cert.pdf").exists());
    }

    // A file that is not a font (the certificate itself).
    let out = agent(
        &data,
        &[
            "certificate",
            "render",
            file.to_str().unwrap(),
            "--format",
            "pdf",
            "--font",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("render_font_invalid"), "{err}");
    assert!(!dir.path().join("cert.pdf").exists());
}

/// `certificate verify` with the real binary on files that would read one way to a person and
/// another to a lenient parser: each is refused with one line and its own reason, signed by
/// the agent's own key or not, never shown as genuine; render refuses them too, and a
/// validator's name with a right-to-left override is not countersigned.
#[test]
fn duplicate_keys_and_unicode_tricks_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, _) = agent_key(&data);
    let signed = |edit: &dyn Fn(&mut Certificate)| {
        let mut c = certificate("job-u", 1, None);
        edit(&mut c);
        c.sign(&key, "2026-11-25T01:01:01Z");
        c.to_file_bytes()
    };
    let good = signed(&|_| {});
    let text = String::from_utf8(good.clone()).unwrap();
    let overlong = {
        let mut b = good.clone();
        let at = text.find("file:/srv").unwrap() + 5;
        b.splice(at..at + 1, [0xC0, 0xAF]);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a second result a lenient parser would keep",
            text.replacen("\"passed\":true", "\"passed\":true,\"passed\":false", 1)
                .into_bytes(),
            "certificate_duplicate_key",
        ),
        (
            "a byte order mark",
            [b"\xEF\xBB\xBF".as_slice(), &good].concat(),
            "certificate_byte_order_mark",
        ),
        ("an overlong /", overlong, "certificate_not_utf8"),
        (
            "an escaped letter",
            text.replacen("\"reused\"", "\"\\u0072eused\"", 1)
                .into_bytes(),
            "certificate_escaped_character",
        ),
        (
            "a NUL, signed",
            signed(&|c| c.sanitization.notes = "passed\0 not really".into()),
            "certificate_control_character",
        ),
        (
            "a right-to-left override, signed",
            signed(&|c| c.targets[0].spec = "file:/srv/old/\u{202E}bd.sdrocer".into()),
            "certificate_bidi_control",
        ),
        (
            "a decomposed accent, signed",
            signed(&|c| c.sanitized_by.organization = "Cafe\u{301} municipal".into()),
            "certificate_not_nfc",
        ),
        (
            "a Cyrillic letter in a bucket, signed",
            signed(&|c| c.targets[0].spec = "s3://kenko-r\u{435}cords/2026".into()),
            "certificate_non_ascii_identifier",
        ),
    ];
    let file = dir.path().join("cert.json");
    for (what, bytes, reason) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let out = agent(&data, &["certificate", "verify", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{what}: {stdout}");
        assert!(!stdout.contains("genuine"), "{what}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(
            stderr.starts_with("INVALID: ")
                && stderr.trim_end().ends_with(&format!("[reason: {reason}]")),
            "{what}: {stderr}"
        );
        for value in ["sdrocer", "Cafe", "cords", "not really"] {
            assert!(
                !stderr.contains(value),
                "{what}: the value is not shown: {stderr}"
            );
        }
        let out = agent(&data, &["certificate", "render", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: not rendered");
        assert!(!dir.path().join("cert.html").exists(), "{what}");
    }
    // A validator whose name carries an override is refused before anything is signed.
    std::fs::write(&file, &good).unwrap();
    let out = agent(
        &data,
        &[
            "certificate",
            "countersign",
            file.to_str().unwrap(),
            "--key",
            dir.path().join("validator.key").to_str().unwrap(),
            "--name",
            "\u{202E}ihsoroaT",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("[reason: certificate_bidi_control]"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), good, "the file is unchanged");
}
