//! The built binary: a clear one-line error when the cluster cannot be reached, and offline
//! verification of a certificate file with no cluster and no kubeconfig at all.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn kubectl_kenko(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-kenko"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", home)
        // A backtrace must not appear even when asked for.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn an_unreachable_cluster_is_one_clear_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: kenko-test\n\
             clusters:\n- name: kenko-test-cluster\n  cluster:\n    server: {server}\n\
             contexts:\n- name: kenko-test\n  context:\n    cluster: kenko-test-cluster\n    user: tester\n    namespace: city-a\n\
             users:\n- name: tester\n  user:\n    token: not-a-real-token\n"
        ),
    )
    .unwrap();
    let k = kubeconfig.to_str().unwrap();
    for args in [
        vec!["--kubeconfig", k, "status"],
        vec![
            "--kubeconfig",
            k,
            "erasure",
            "approve",
            "old-erasure",
            "-n",
            "city-b",
        ],
        vec![
            "certificates",
            "list",
            "--kubeconfig",
            k,
            "--context",
            "kenko-test",
        ],
    ] {
        let out = kubectl_kenko(dir.path(), &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line, got {stderr:?}"
        );
        let line = stderr.trim_end();
        assert!(
            line.starts_with(&format!(
                "error: cannot reach the Kubernetes API server of cluster \"kenko-test-cluster\" \
                 at {server} (context \"kenko-test\"): "
            )),
            "{args:?}: {line}"
        );
        assert!(
            line.to_lowercase().contains("refused"),
            "{args:?}: names the cause: {line}"
        );
        assert!(!line.contains("panicked") && !line.to_lowercase().contains("backtrace"));
        assert!(
            !line.contains("not-a-real-token"),
            "no credentials in errors"
        );
    }
}

#[test]
fn an_unknown_context_and_a_missing_kubeconfig_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = kubectl_kenko(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: no kubeconfig found"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: a\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    let out = kubectl_kenko(
        dir.path(),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "nope",
            "status",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: context \"nope\" is not in the kubeconfig\n"
    );
}

#[test]
fn verify_file_needs_no_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = common::signed_certificate("job-7", 7);
    let cert = dir.path().join("cert.json");
    std::fs::write(&cert, &bytes).unwrap();
    let key = dir.path().join("kenko.pub");
    std::fs::write(&key, format!("{}\n", common::public_key_hex(7))).unwrap();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // No kubeconfig anywhere ($HOME is empty, $KUBECONFIG unset): still works.
    let out = kubectl_kenko(
        dir.path(),
        &[
            "certificates",
            "verify",
            "--file",
            cert_s,
            "--public-key",
            key_s,
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("OK: {cert_s} is genuine and complete: job job-7")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sha256 {}\n", common::sha256_hex(&bytes))),
        "{stdout}"
    );

    std::fs::write(&cert, common::tampered(&bytes)).unwrap();
    let out = kubectl_kenko(
        dir.path(),
        &[
            "certificates",
            "verify",
            "--file",
            cert_s,
            "--public-key",
            key_s,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "INVALID: {cert_s}: the signature does not match the certificate's content \
             [reason: certificate_bad_signature]\n"
        )
    );

    // The auditor's key is another agent's.
    std::fs::write(&cert, &bytes).unwrap();
    std::fs::write(&key, common::public_key_hex(8)).unwrap();
    let out = kubectl_kenko(
        dir.path(),
        &[
            "certificates",
            "verify",
            "--file",
            cert_s,
            "--public-key",
            key_s,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with("[reason: certificate_wrong_signer]\n"),
        "{}",
        text(&out.stderr)
    );
}
