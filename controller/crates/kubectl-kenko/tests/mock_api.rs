//! The commands against a scripted API server (the kube-rs controller-rs pattern): a scenario
//! task takes each request the client sends, checks its method, path, query and (where it
//! matters) body, and replies with JSON; any request beyond the script fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use http::Method;
use kenko_test_support::{scenario, step, Step};
use kubectl_kenko::{certificates, erasure, status, Scope};
use serde_json::{json, Value};

fn condition(t: &str, s: &str, reason: &str, message: &str) -> Value {
    json!({"type": t, "status": s, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-25T01:00:00Z"})
}

fn health_stack(ns: &str, name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "kenko.io/v1alpha1", "kind": "HealthStack",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "5", "uid": format!("uid-{name}")},
        "spec": {
            "municipality": {"code": "132012", "name": "八王子市"},
            "app": {"image": "registry.example/health:1.0"},
            "database": {"managed": {"storageSize": "100Gi"}},
            "storage": {"class": "gp3-tokyo", "size": "50Gi", "region": "ap-northeast-1"},
            "backup": {"region": "ap-northeast-3", "vault": "kenko-prod-osaka", "sourceVault": "kenko-prod-tokyo"}
        },
        "status": status
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "kenko.io/v1alpha1", "kind": kind,
           "metadata": {"resourceVersion": "100"}, "items": items})
}

fn erasure_request(
    ns: &str,
    name: &str,
    requested_by: &str,
    approved_by: Option<&str>,
    phase: &str,
) -> Value {
    let mut spec = json!({"targets": ["pvc:data", "s3://kenko-old/records"], "method": "clear",
                          "verification": "full", "requestedBy": requested_by, "stack": "old"});
    if let Some(a) = approved_by {
        spec["approvedBy"] = json!(a);
    }
    json!({
        "apiVersion": "kenko.io/v1alpha1", "kind": "ErasureRequest",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "17", "uid": "uid-er"},
        "spec": spec,
        "status": {"phase": phase, "reason": "AwaitingApproval"}
    })
}

fn self_subject_review(user: &str) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
           "metadata": {},
           "status": {"userInfo": {"username": user, "groups": ["kenko:staff", "system:authenticated"]}}})
}

const SSR: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
const ER_PATH: &str = "/apis/kenko.io/v1alpha1/namespaces/city-b/erasurerequests/old-erasure";

#[tokio::test]
async fn status_of_two_stacks_names_the_one_not_ready_and_exits_non_zero() {
    let ready = health_stack(
        "city-a",
        "hachioji",
        json!({"conditions": [
            condition("Ready", "True", "Reconciled", "all children available"),
            condition("ResidencyCompliant", "True", "InJapan", "storage and backups in Japan"),
            condition("BackupConfigured", "True", "BackupCovered", "daily to ap-northeast-3"),
        ]}),
    );
    let decommissioning = health_stack(
        "city-b",
        "old",
        json!({"conditions": [
            condition("Ready", "False", "Suspended", "writes stopped for decommissioning"),
            condition("ResidencyCompliant", "True", "InJapan", "storage and backups in Japan"),
            condition("Decommissioning", "True", "AwaitingApproval", "waiting for a second person"),
        ], "erasureRequest": "old-erasure"}),
    );
    let steps = vec![
        step(
            Method::GET,
            "/apis/kenko.io/v1alpha1/healthstacks",
            list("HealthStackList", vec![decommissioning, ready]),
        ),
        step(
            Method::GET,
            ER_PATH,
            erasure_request("city-b", "old-erasure", "operator-a", None, "Pending"),
        ),
    ];
    let (report, _) = scenario(steps, |client| async move {
        status::status(&client, &Scope::All).await
    })
    .await;
    let report = report.unwrap();
    assert_eq!(report.stacks.len(), 2);
    assert!(!report.healthy());
    assert_eq!(report.exit_code(), 2);
    assert_eq!(
        report.summary(),
        "1 of 2 HealthStack(s) not Ready or not ResidencyCompliant: city-b/old (Ready=False (Suspended))"
    );
    let out = status::format_status(&report);
    assert!(
        out.starts_with("HealthStack city-a/hachioji: Ready, ResidencyCompliant\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  decommissioning: ErasureRequest city-b/old-erasure is Pending (AwaitingApproval)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("BackupConfigured     True     BackupCovered   daily to ap-northeast-3"),
        "{out}"
    );
}

#[tokio::test]
async fn status_in_one_namespace_with_every_stack_ready_exits_zero() {
    let steps = vec![step(
        Method::GET,
        "/apis/kenko.io/v1alpha1/namespaces/city-a/healthstacks",
        list(
            "HealthStackList",
            vec![health_stack(
                "city-a",
                "hachioji",
                json!({"conditions": [
                    condition("Ready", "True", "Reconciled", ""),
                    condition("ResidencyCompliant", "True", "InJapan", ""),
                ]}),
            )],
        ),
    )];
    let (report, _) = scenario(steps, |client| async move {
        status::status(&client, &Scope::Namespace("city-a".into())).await
    })
    .await;
    let report = report.unwrap();
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.summary(),
        "all 1 HealthStack(s) Ready and ResidencyCompliant"
    );
}

#[tokio::test]
async fn erasure_list_reads_the_namespace() {
    let steps = vec![step(
        Method::GET,
        "/apis/kenko.io/v1alpha1/namespaces/city-b/erasurerequests",
        list(
            "ErasureRequestList",
            vec![erasure_request(
                "city-b",
                "old-erasure",
                "operator-a",
                None,
                "Pending",
            )],
        ),
    )];
    let (items, _) = scenario(steps, |client| async move {
        erasure::list(&client, &Scope::Namespace("city-b".into())).await
    })
    .await;
    let out = erasure::format_list(&items.unwrap(), false);
    assert!(
        out.lines().nth(1).unwrap().starts_with(
            "old-erasure   Pending (AwaitingApproval)   clear    2         operator-a"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn approve_by_a_second_person_patches_approved_by_with_the_authenticated_user() {
    let mut approved = erasure_request(
        "city-b",
        "old-erasure",
        "operator-a",
        Some("auditor-b"),
        "Pending",
    );
    approved["metadata"]["resourceVersion"] = json!("18");
    let steps = vec![
        step(Method::POST, SSR, self_subject_review("auditor-b")),
        step(
            Method::GET,
            ER_PATH,
            erasure_request("city-b", "old-erasure", "operator-a", None, "Pending"),
        ),
        Step {
            query: vec!["fieldManager=kubectl-kenko"],
            body: Some(json!({
                "spec": {"approvedBy": "auditor-b"},
                "metadata": {"resourceVersion": "17"}
            })),
            ..step(Method::PATCH, ER_PATH, approved)
        },
    ];
    let (result, seen) = scenario(steps, |client| async move {
        erasure::approve(&client, "city-b", "old-erasure").await
    })
    .await;
    let approval = result.unwrap();
    assert_eq!(approval.approved_by, "auditor-b");
    assert_eq!(approval.request, "city-b/old-erasure");
    assert!(!approval.already);
    let requests: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.uri.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews?"),
            ("GET", ER_PATH),
            (
                "PATCH",
                "/apis/kenko.io/v1alpha1/namespaces/city-b/erasurerequests/old-erasure?&fieldManager=kubectl-kenko"
            ),
        ]
    );
    assert_eq!(
        seen[2].content_type, "application/merge-patch+json",
        "{:?}",
        seen[2]
    );
}

#[tokio::test]
async fn approve_is_refused_locally_when_the_reviewer_is_the_requester() {
    let steps = vec![
        step(Method::POST, SSR, self_subject_review("operator-a")),
        step(
            Method::GET,
            ER_PATH,
            erasure_request("city-b", "old-erasure", "operator-a", None, "Pending"),
        ),
        // No PATCH: `serve` fails the test on any further request.
    ];
    let (result, seen) = scenario(steps, |client| async move {
        erasure::approve(&client, "city-b", "old-erasure").await
    })
    .await;
    let e = result.unwrap_err();
    assert_eq!(e.reason(), "self_approval_refused");
    assert!(
        e.to_string()
            .contains("must be approved by someone other than the person who requested it"),
        "{e}"
    );
    assert!(seen.iter().all(|s| s.method != "PATCH"));
}

#[tokio::test]
async fn approve_surfaces_the_admission_refusal_message() {
    let message = "ErasureRequest.kenko.io \"old-erasure\" is invalid: spec: Invalid value: \
                   \"object\": an erasure must be approved by someone other than the person \
                   who requested it";
    let steps = vec![
        step(Method::POST, SSR, self_subject_review("auditor-b")),
        step(
            Method::GET,
            ER_PATH,
            erasure_request("city-b", "old-erasure", "operator-a", None, "Pending"),
        ),
        Step {
            status: 422,
            ..step(
                Method::PATCH,
                ER_PATH,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": "Invalid", "code": 422}),
            )
        },
    ];
    let (result, _) = scenario(steps, |client| async move {
        erasure::approve(&client, "city-b", "old-erasure").await
    })
    .await;
    let e = result.unwrap_err();
    assert_eq!(e.reason(), "approval_refused");
    assert_eq!(
        e.to_string(),
        format!(
            "the API server refused the approval of erasure request city-b/old-erasure: {message}"
        )
    );
}

#[tokio::test]
async fn approve_refuses_to_change_someone_elses_approval() {
    let steps = vec![
        step(Method::POST, SSR, self_subject_review("auditor-c")),
        step(
            Method::GET,
            ER_PATH,
            erasure_request(
                "city-b",
                "old-erasure",
                "operator-a",
                Some("auditor-b"),
                "Running",
            ),
        ),
    ];
    let (result, _) = scenario(steps, |client| async move {
        erasure::approve(&client, "city-b", "old-erasure").await
    })
    .await;
    assert_eq!(result.unwrap_err().reason(), "already_approved");
}

fn certificate_resource(name: &str, text: &[u8], sha256: &str, signer: &str) -> Value {
    json!({
        "apiVersion": "kenko.io/v1alpha1", "kind": "ErasureCertificate",
        "metadata": {"name": name, "resourceVersion": "9", "uid": "uid-cert"},
        "spec": {
            "jobId": "job-7", "request": "city-b/old-erasure", "stack": "city-b/old",
            "targets": ["pvc:data"], "targetCount": 1, "blockedCount": 0,
            "signer": signer, "sha256": sha256, "issuedAt": "2026-11-25T01:05:01Z",
            "certificate": String::from_utf8(text.to_vec()).unwrap()
        }
    })
}

const CERT_PATH: &str = "/apis/kenko.io/v1alpha1/erasurecertificates/cert-job-7";

#[tokio::test]
async fn certificate_export_and_verify_round_trip() {
    let bytes = common::signed_certificate("job-7", 7);
    let sha = common::sha256_hex(&bytes);
    let signer = common::public_key_hex(7);
    let resource = certificate_resource("cert-job-7", &bytes, &sha, &signer);
    let steps = vec![
        step(
            Method::GET,
            "/apis/kenko.io/v1alpha1/erasurecertificates",
            list("ErasureCertificateList", vec![resource.clone()]),
        ),
        step(Method::GET, CERT_PATH, resource.clone()),
        step(Method::GET, CERT_PATH, resource.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cert-job-7.json");
    let key = signer.clone();
    let out2 = out.clone();
    let (result, _) = scenario(steps, |client| async move {
        let listed = certificates::list(&client).await.unwrap();
        let exported = certificates::export(&client, "cert-job-7").await.unwrap();
        let written = certificates::write_exact(&out2, &exported).unwrap();
        let verified = certificates::verify(&client, "cert-job-7", std::slice::from_ref(&key))
            .await
            .unwrap();
        (listed, written, verified)
    })
    .await;
    let (listed, written, verified) = result;
    let table = certificates::format_list(&listed);
    assert!(
        table.contains(&format!(
            "cert-job-7   job-7   city-b/old   1         0         2026-11-25T01:05:01Z   {}",
            &sha[..12]
        )),
        "{table}"
    );
    // The file is the exact certificate: same bytes, same SHA-256 as the resource says.
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(written, sha);
    assert_eq!(verified.sha256, sha);
    let text = certificates::format_verified("erasurecertificate cert-job-7", &verified);
    assert!(
        text.starts_with("OK: erasurecertificate cert-job-7 is genuine and complete: job job-7"),
        "{text}"
    );
    // And the exported file verifies offline, with no cluster.
    let offline = certificates::verify_file(&out, std::slice::from_ref(&signer)).unwrap();
    assert_eq!(offline.sha256, sha);
}

#[tokio::test]
async fn a_tampered_certificate_is_refused() {
    let bytes = common::signed_certificate("job-7", 7);
    let signer = common::public_key_hex(7);
    let forged = common::tampered(&bytes);
    // Someone changed the content and recomputed the resource's sha256 to match: the export
    // check passes, the signature does not.
    let forged_resource =
        certificate_resource("cert-job-7", &forged, &common::sha256_hex(&forged), &signer);
    // The content is genuine but the resource's sha256 field was edited: export refuses, and
    // verify says the resource does not match the verified file.
    let edited_field = certificate_resource("cert-job-7", &bytes, &"0".repeat(64), &signer);
    // Genuine, but the resource names another signer.
    let other_signer = certificate_resource(
        "cert-job-7",
        &bytes,
        &common::sha256_hex(&bytes),
        &common::public_key_hex(8),
    );
    let steps = vec![
        step(Method::GET, CERT_PATH, forged_resource),
        step(Method::GET, CERT_PATH, edited_field.clone()),
        step(Method::GET, CERT_PATH, edited_field),
        step(Method::GET, CERT_PATH, other_signer.clone()),
        step(Method::GET, CERT_PATH, other_signer),
    ];
    let key = signer.clone();
    let (results, _) = scenario(steps, |client| async move {
        vec![
            certificates::verify(&client, "cert-job-7", std::slice::from_ref(&key))
                .await
                .unwrap_err(),
            certificates::export(&client, "cert-job-7")
                .await
                .unwrap_err(),
            certificates::verify(&client, "cert-job-7", std::slice::from_ref(&key))
                .await
                .unwrap_err(),
            certificates::verify(&client, "cert-job-7", std::slice::from_ref(&key))
                .await
                .unwrap_err(),
            // The auditor's key is not the one that signed.
            certificates::verify(&client, "cert-job-7", &[common::public_key_hex(9).clone()])
                .await
                .unwrap_err(),
        ]
    })
    .await;
    let reasons: Vec<&str> = results.iter().map(|e| e.reason()).collect();
    assert_eq!(
        reasons,
        [
            "certificate_bad_signature",
            "certificate_resource_mismatch",
            "certificate_resource_mismatch",
            "certificate_resource_mismatch",
            "certificate_wrong_signer",
        ]
    );
    assert!(results.iter().all(|e| e.is_invalid_certificate()));
    assert!(
        results[2].to_string().contains("the resource's sha256"),
        "{}",
        results[2]
    );
    assert!(
        results[3].to_string().contains("the resource's signer"),
        "{}",
        results[3]
    );
}

#[tokio::test]
async fn a_missing_certificate_is_not_found() {
    let steps = vec![Step {
        status: 404,
        ..step(
            Method::GET,
            CERT_PATH,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "erasurecertificates.kenko.io \"cert-job-7\" not found",
                   "reason": "NotFound", "code": 404}),
        )
    }];
    let (result, _) = scenario(steps, |client| async move {
        certificates::get(&client, "cert-job-7").await
    })
    .await;
    let e = result.unwrap_err();
    assert_eq!(e.reason(), "not_found");
    assert_eq!(e.to_string(), "erasurecertificate cert-job-7: not found");
}

#[test]
fn verify_file_works_offline_and_refuses_a_tampered_file() {
    let bytes = common::signed_certificate("job-7", 7);
    let signer = common::public_key_hex(7);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, &bytes).unwrap();
    let v = certificates::verify_file(&good, std::slice::from_ref(&signer)).unwrap();
    assert_eq!(v.certificate.job_id, "job-7");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, common::tampered(&bytes)).unwrap();
    assert_eq!(
        certificates::verify_file(&bad, std::slice::from_ref(&signer))
            .unwrap_err()
            .reason(),
        "certificate_bad_signature"
    );
    let spaced = dir.path().join("spaced.json");
    std::fs::write(&spaced, [&bytes[..], b" "].concat()).unwrap();
    assert_eq!(
        certificates::verify_file(&spaced, std::slice::from_ref(&signer))
            .unwrap_err()
            .reason(),
        "certificate_not_canonical"
    );
}
