//! The agent's handling of ErasureRequests in the cluster, against a scripted mock API server
//! (each expected request checked in order, anything else fails): a real folder on "this
//! node" is erased, its certificate published and the request's status written; a
//! self-approved or unapproved request erases nothing.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kenko_agent::cluster::{self, plan::NODE_ANNOTATION, Worker};
use kenko_api::{ErasureRequest, ErasureRequestSpec};
use kenko_test_support::{serve, step, Reply, Seen, Step};
use serde_json::json;

fn request(approved_by: Option<&str>, target: &str) -> ErasureRequest {
    let mut r = ErasureRequest::new(
        "decommission-hachioji",
        ErasureRequestSpec {
            targets: vec![target.to_string()],
            method: "clear".into(),
            verification: "full".into(),
            requested_by: "operator-a".into(),
            approved_by: approved_by.map(String::from),
            stack: Some("hachioji".into()),
        },
    );
    r.metadata.namespace = Some("city".into());
    r.metadata.resource_version = Some("41".into());
    r.metadata.annotations = Some([(NODE_ANNOTATION.to_string(), "node-a".to_string())].into());
    r
}

const REQ: &str = "/apis/kenko.io/v1alpha1/namespaces/city/erasurerequests/decommission-hachioji";

async fn handle(r: ErasureRequest, data: &std::path::Path, script: Vec<Step>) -> Vec<Seen> {
    let (client, mock) = kenko_test_support::mock();
    let server = tokio::spawn(serve(mock, script));
    {
        let worker = Arc::new(Worker {
            client,
            node: "node-a".into(),
            cloud_leader: Arc::new(AtomicBool::new(false)),
            places: kenko_agent::erase::Places {
                jobs: data.join("erase"),
                certificates: data.join("certificates"),
                signing_key: data.join("keys/signing.key"),
                data_key: data.join("keys/data.key"),
                database_url: format!("sqlite://{}", data.join("kenko.db").display()),
                aws: kenko_aws::Endpoint {
                    region: "ap-northeast-1".into(),
                    endpoint_url: None,
                },
                kms_pending_days: 7,
            },
            host_root: String::new(),
            organization: "八王子市 健康部".into(),
        });
        cluster::handle(Arc::new(r), worker).await.unwrap();
    }
    match server.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[tokio::test]
async fn an_approved_request_erases_this_nodes_folder_and_publishes_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let folder = dir.path().join("records");
    std::fs::create_dir_all(folder.join("2026-10")).unwrap();
    std::fs::write(folder.join("2026-10/受付.csv"), vec![b'x'; 100_000]).unwrap();
    let target = format!("dir:{}", folder.display());
    let r = request(Some("auditor-b"), &target);
    let rv = serde_json::to_value(&r).unwrap();
    let seen = handle(
        r,
        &data,
        vec![
            step("GET", REQ, Reply::Json(rv.clone())),
            step("PATCH", format!("{REQ}/status"), Reply::Json(rv.clone())),
            step(
                "POST",
                "/apis/kenko.io/v1alpha1/erasurecertificates",
                Reply::echo(),
            ),
            step("GET", REQ, Reply::Json(rv.clone())),
            step("PATCH", format!("{REQ}/status"), Reply::Json(rv)),
        ],
    )
    .await;
    assert!(!folder.exists(), "the folder was erased and removed");
    // Progress first, with the version read (a concurrent agent's write makes it retry).
    let running = &seen[1].body;
    assert_eq!(running["metadata"]["resourceVersion"], "41");
    assert_eq!(running["status"]["targets"][0]["phase"], "Running");
    assert_eq!(running["status"]["targets"][0]["node"], "node-a");
    // The certificate: the signed file itself, verifiable offline, hash as published.
    let cert = &seen[2].body;
    let text = cert["spec"]["certificate"].as_str().unwrap();
    let v = kenko_cert::verify(text.as_bytes(), None).unwrap();
    assert_eq!(cert["spec"]["sha256"], v.sha256.as_str());
    assert_eq!(cert["spec"]["signer"], v.signer.as_str());
    assert_eq!(cert["spec"]["targets"], json!([target]));
    assert_eq!(cert["spec"]["request"], "city/decommission-hachioji");
    assert_eq!(cert["spec"]["stack"], "city/hachioji");
    assert_eq!(cert["spec"]["blockedCount"], 0);
    assert!(v.certificate.sanitization.notes.contains("auditor-b"));
    let done = &seen[4].body;
    assert_eq!(done["status"]["phase"], "Certified");
    assert_eq!(done["status"]["targets"][0]["phase"], "Certified");
    assert_eq!(done["status"]["targets"][0]["bytesErased"], 100_000);
    assert_eq!(
        done["status"]["certificates"],
        json!([cert["metadata"]["name"].clone()])
    );
}

#[tokio::test]
async fn a_self_approved_request_is_refused_and_erases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("records");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), b"data").unwrap();
    let r = request(Some("operator-a"), &format!("dir:{}", folder.display()));
    let rv = serde_json::to_value(&r).unwrap();
    let seen = handle(
        r,
        &dir.path().join("data"),
        vec![
            step("GET", REQ, Reply::Json(rv.clone())),
            step("PATCH", format!("{REQ}/status"), Reply::Json(rv)),
        ],
    )
    .await;
    assert_eq!(std::fs::read(folder.join("a.csv")).unwrap(), b"data");
    assert_eq!(seen[1].body["status"]["phase"], "Failed");
    assert_eq!(seen[1].body["status"]["reason"], "SelfApprovalRefused");
}

#[tokio::test]
async fn unapproved_requests_and_other_agents_targets_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("records");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), b"data").unwrap();
    // Not approved: no call at all.
    let seen = handle(
        request(None, &format!("dir:{}", folder.display())),
        &dir.path().join("data"),
        vec![],
    )
    .await;
    assert!(seen.is_empty());
    // Approved, but a cloud target and this agent does not hold the cloud Lease.
    let seen = handle(
        request(Some("auditor-b"), "s3://hachioji-records"),
        &dir.path().join("data"),
        vec![],
    )
    .await;
    assert!(seen.is_empty());
    // Approved, but the folder is on another node.
    let mut r = request(Some("auditor-b"), &format!("dir:{}", folder.display()));
    r.metadata.annotations = Some([(NODE_ANNOTATION.to_string(), "node-b".to_string())].into());
    assert!(handle(r, &dir.path().join("data"), vec![]).await.is_empty());
    assert_eq!(std::fs::read(folder.join("a.csv")).unwrap(), b"data");
}

#[tokio::test]
async fn the_account_audit_is_published_in_the_residency_policys_status() {
    let (client, mock) = kenko_test_support::mock();
    let server = tokio::spawn(serve(
        mock,
        vec![step(
            "PATCH",
            "/apis/kenko.io/v1alpha1/residencypolicies/default/status",
            Reply::Json(json!({
                "apiVersion": "kenko.io/v1alpha1",
                "kind": "ResidencyPolicy",
                "metadata": {"name": "default"},
                "spec": {}
            })),
        )],
    ));
    let audit = kenko_api::AccountAudit {
        completed_at: "2026-11-26T03:00:00Z".into(),
        auditor: "node-a".into(),
        regions: vec!["ap-northeast-1".into(), "ap-northeast-3".into()],
        compliant: 12,
        violations: 1,
        unknown: 0,
        findings: vec![kenko_api::AuditFinding {
            rule: "network.internet_gateway".into(),
            status: "Violation".into(),
            resource: "igw-0abc".into(),
            region: "ap-northeast-1".into(),
        }],
    };
    assert!(cluster::audit::publish(&client, &audit).await.unwrap());
    drop(client);
    let seen = match server.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let body = &seen[0].body;
    assert_eq!(body["status"]["audit"]["violations"], 1);
    assert_eq!(
        body["status"]["audit"]["findings"][0]["rule"],
        "network.internet_gateway"
    );
    // Exactly the status: a merge patch never touches the spec.
    assert!(body.get("spec").is_none(), "{body}");
}

#[tokio::test]
async fn an_access_alert_becomes_a_warning_event_about_the_agents_pod() {
    use kenko_agent::access::events::{EventSink, Regarding};
    use kenko_agent::access::output::AlertRecord;
    let (client, mock) = kenko_test_support::mock();
    let server = tokio::spawn(serve(
        mock,
        vec![step(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/kenko-node/events",
            Reply::echo(),
        )],
    ));
    let sink = EventSink::start(
        &tokio::runtime::Handle::current(),
        client,
        Regarding {
            namespace: "kenko-node".into(),
            pod: "kenko-agent-x7k2p".into(),
        },
    );
    let firing = AlertRecord {
        id: "3f2a9c0d1e4b5a6f".into(),
        status: "firing".into(),
        rule: "access.bulk_read".into(),
        severity: "warning".into(),
        actor: "S0123".into(),
        detail: "distinct residents".into(),
        window_start: "2026-11-02T00:00:00Z".into(),
        window_end: "2026-11-02T01:00:00Z".into(),
        count: 312,
        threshold: 200,
        firings: 1,
        runbook_url: "https://runbooks.example/access-bulk-read.md".into(),
    };
    sink.send(&firing);
    // A resolved alert is not an Event (the Event stream says when something happened).
    sink.send(&AlertRecord {
        status: "resolved".into(),
        ..firing.clone()
    });
    drop(sink);
    let seen = match server.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let ev = &seen[0].body;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "KenkoAccessBulkRead");
    assert_eq!(ev["regarding"]["kind"], "Pod");
    assert_eq!(ev["regarding"]["name"], "kenko-agent-x7k2p");
    let note = ev["note"].as_str().unwrap();
    for want in [
        "access.bulk_read",
        "S0123",
        "312",
        "threshold 200",
        "access-bulk-read.md",
    ] {
        assert!(note.contains(want), "{want} not in {note}");
    }
}
