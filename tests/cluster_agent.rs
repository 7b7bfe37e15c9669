//! The agent's handling of ErasureRequests in the cluster, against a scripted mock API server
//! (each expected request checked in order, anything else fails): a real folder on "this
//! node" is erased, its certificate published and the request's status written; a
//! self-approved or unapproved request erases nothing.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::collections::BTreeMap;
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
            method: kenko_api::ErasureMethod::Clear,
            verification: kenko_api::VerifyMode::Full,
            requested_by: "operator-a".into(),
            approved_by: approved_by.map(String::from),
            stack: Some("hachioji".into()),
            stack_uid: Some(STACK_UID.into()),
        },
    );
    r.metadata.namespace = Some("city".into());
    r.metadata.uid = Some("0b9c1d2e-3f4a-4b6c-8d7e-112233445566".into());
    r.metadata.resource_version = Some("41".into());
    r.metadata.annotations = Some([(NODE_ANNOTATION.to_string(), "node-a".to_string())].into());
    r
}

const REQ: &str = "/apis/kenko.io/v1alpha1/namespaces/city/erasurerequests/decommission-hachioji";
const STACK_UID: &str = "5f0c7d2e-8a1b-4c3d-9e8f-0a1b2c3d4e5f";

async fn handle(r: ErasureRequest, data: &std::path::Path, script: Vec<Step>) -> Vec<Seen> {
    handle_as(r, data, script, false, kenko_aws::Endpoint::default()).await
}

/// Runs one pass of the agent's handler on node-a (the cloud agent when `leader`).
async fn handle_as(
    r: ErasureRequest,
    data: &std::path::Path,
    script: Vec<Step>,
    leader: bool,
    aws: kenko_aws::Endpoint,
) -> Vec<Seen> {
    let (client, mock) = kenko_test_support::mock();
    let server = tokio::spawn(serve(mock, script));
    {
        let worker = Arc::new(Worker {
            client,
            node: "node-a".into(),
            cloud_leader: Arc::new(AtomicBool::new(leader)),
            places: kenko_agent::erase::EraseContext {
                jobs: data.join("erase"),
                certificates: data.join("certificates"),
                signing_key: data.join("keys/signing.key"),
                data_key: data.join("keys/data.key"),
                database_url: format!("sqlite://{}", data.join("kenko.db").display()),
                aws: kenko_aws::Endpoint {
                    region: "ap-northeast-1".into(),
                    ..aws
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
    // The signed body binds the certificate to the request, its people and the stack's uid,
    // and names the request's target it erased.
    let auth = v.certificate.authority.as_ref().unwrap();
    assert_eq!(auth.request, "city/decommission-hachioji");
    assert_eq!(auth.approved_by, "auditor-b");
    assert_eq!(auth.stack.as_ref().unwrap().uid, STACK_UID);
    assert_eq!(
        v.certificate.targets[0].location.as_deref(),
        Some(target.as_str())
    );
    assert_eq!(cert["metadata"]["labels"]["kenko.io/stack-uid"], STACK_UID);
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
        interval_secs: 3600,
        backups: vec![kenko_api::residency::StackBackup {
            namespace: "hachioji".into(),
            name: "hachioji".into(),
            reason: "NoBackupPlan".into(),
            message: "NoBackupPlan pvc:hachioji-data: not tagged".into(),
            checked_at: "2026-11-26T03:00:00Z".into(),
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
    assert_eq!(
        body["status"]["audit"]["backups"][0],
        json!({"namespace": "hachioji", "name": "hachioji", "reason": "NoBackupPlan",
               "message": "NoBackupPlan pvc:hachioji-data: not tagged",
               "checkedAt": "2026-11-26T03:00:00Z"})
    );
    assert_eq!(body["status"]["audit"]["intervalSecs"], 3600);
}

/// Before each audit the Lease holder lists every HealthStack for `backup.coverage`: each
/// live stack's claims and records bucket, as the controller names them.
#[tokio::test]
async fn the_stacks_are_listed_for_the_backup_audit() {
    let mut live = serde_json::to_value(kenko_api::samples::hachioji()).unwrap();
    live["metadata"]["namespace"] = json!("hachioji");
    let mut deleting = live.clone();
    deleting["metadata"]["name"] = json!("fuchu");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z");
    let (got, _) = kenko_test_support::scenario(
        vec![step(
            "GET",
            "/apis/kenko.io/v1alpha1/healthstacks",
            Reply::Json(json!({
                "apiVersion": "kenko.io/v1alpha1",
                "kind": "HealthStackList",
                "metadata": {},
                "items": [live, deleting]
            })),
        )],
        |client| async move { cluster::audit::stack_locations(&client).await },
    )
    .await;
    let got = got.unwrap();
    assert_eq!(got.len(), 1, "the stack being deleted is left out: {got:?}");
    assert_eq!(got[0].id(), "hachioji/hachioji");
    assert_eq!(got[0].claims, ["hachioji-data", "data-hachioji-db-0"]);
    assert_eq!(
        got[0].records_bucket_name(),
        Some("kenko-prod-records-123456789012-ap-northeast-1")
    );
    // A list the API server refuses is an error (the audit's coverage is then Unknown).
    let (got, _) = kenko_test_support::scenario(
        vec![step(
            "GET",
            "/apis/kenko.io/v1alpha1/healthstacks",
            Reply::NotFound,
        )],
        |client| async move { cluster::audit::stack_locations(&client).await },
    )
    .await;
    assert_eq!(got.unwrap_err().reason(), "cluster_api_failed");
}

#[tokio::test]
async fn an_access_alert_becomes_a_warning_event_about_the_agents_pod() {
    use kenko_agent::access::kube_events::{EventSink, Regarding};
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
        stack: "hachioji/hachioji".into(),
        receivers: vec!["city-health".into()],
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
        "on stack hachioji/hachioji",
    ] {
        assert!(note.contains(want), "{want} not in {note}");
    }
}

#[tokio::test]
async fn a_target_that_cannot_be_erased_fails_alone_with_its_own_reason_and_the_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("records");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), vec![b'y'; 4096]).unwrap();
    let folder_target = format!("dir:{}", folder.display());
    let mut r = request(Some("auditor-b"), "pvc:gone");
    r.spec.targets = vec![
        "pvc:gone".into(),
        folder_target.clone(),
        "datakey:records".into(),
    ];
    let rv = serde_json::to_value(&r).unwrap();
    let get = || step("GET", REQ, Reply::Json(rv.clone()));
    let patch = || step("PATCH", format!("{REQ}/status"), Reply::Json(rv.clone()));
    let seen = handle_as(
        r,
        &dir.path().join("data"),
        vec![
            step(
                "GET",
                "/api/v1/namespaces/city/persistentvolumeclaims/gone",
                Reply::NotFound,
            ),
            get(),
            patch(),
            get(),
            patch(),
            step(
                "POST",
                "/apis/kenko.io/v1alpha1/erasurecertificates",
                Reply::echo(),
            ),
            get(),
            patch(),
            get(),
            patch(),
        ],
        true,
        kenko_aws::Endpoint::default(),
    )
    .await;
    let result = |i: usize| seen[i].body["status"]["targets"][0].clone();
    // The missing volume: its own reason, one line, and the request goes on.
    assert_eq!(result(2)["target"], "pvc:gone");
    assert_eq!(result(2)["phase"], "Failed");
    assert_eq!(result(2)["reason"], "erase_pvc_missing");
    assert!(!result(2)["message"].as_str().unwrap().contains('\n'));
    assert_eq!(
        seen[2].body["status"]["phase"], "Running",
        "two targets are still to do"
    );
    assert_eq!(seen[2].body["status"]["reason"], "erase_pvc_missing");
    // The folder was still erased and certified.
    assert!(!folder.exists());
    assert_eq!(result(7)["target"], folder_target);
    assert_eq!(result(7)["phase"], "Certified");
    // The agent's own data key is never erased for a stack.
    assert_eq!(result(9)["target"], "datakey:records");
    assert_eq!(result(9)["reason"], "erase_shared_key_refused");
}

#[tokio::test]
async fn the_requests_reason_is_its_first_failed_target_in_spec_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = request(Some("auditor-b"), "pvc:gone");
    r.spec.targets = vec![
        "pvc:gone".into(),
        "s3://kenko-prod-records-123456789012-ap-northeast-1".into(),
        "datakey:records".into(),
    ];
    r.status = Some(kenko_api::ErasureRequestStatus {
        phase: kenko_api::ErasurePhase::Running,
        targets: vec![
            kenko_api::TargetResult {
                target: "pvc:gone".into(),
                phase: kenko_api::ErasurePhase::Failed,
                reason: Some("erase_pvc_missing".into()),
                message: Some("PersistentVolumeClaim gone does not exist".into()),
                ..Default::default()
            },
            kenko_api::TargetResult {
                target: "s3://kenko-prod-records-123456789012-ap-northeast-1".into(),
                phase: kenko_api::ErasurePhase::Certified,
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let rv = serde_json::to_value(&r).unwrap();
    let seen = handle_as(
        r,
        &dir.path().join("data"),
        vec![
            step("GET", REQ, Reply::Json(rv.clone())),
            step("PATCH", format!("{REQ}/status"), Reply::Json(rv)),
        ],
        true,
        kenko_aws::Endpoint::default(),
    )
    .await;
    let status = &seen[1].body["status"];
    assert_eq!(
        status["phase"], "Failed",
        "every target is done, two failed"
    );
    assert_eq!(
        status["reason"], "erase_pvc_missing",
        "not the last one to fail"
    );
    assert_eq!(
        status["message"],
        "2 of 3 targets failed; first pvc:gone: PersistentVolumeClaim gone does not exist"
    );
}

/// The contract between the controller and the agent, over the real functions: the sample
/// HealthStack of manifests/samples (with the emulator's KMS key), its `data_locations` as
/// the controller plans them, a request approved by a second person, the agent's handler
/// against a mock API server that answers with the stack's volumes (one hostPath volume on
/// this node, one EBS CSI volume), moto for S3, KMS and EC2, and recorded AWS Backup answers
/// for the recovery points moto lacks. Every location ends Certified or Blocked (the Osaka
/// vault is under Vault Lock), and the controller's own judge, trusting this agent's key,
/// counts the certificates the agent published as covering every location but the blocked
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_location_the_controller_plans_for_the_sample_stack_the_agent_erases() {
    use common::backup_stub::{self, Point, Vault};
    use kenko_aws::aws_sdk_s3 as s3;
    common::moto::credentials();
    let moto = common::moto::start_moto();
    let ep = kenko_aws::Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    // The account as Terraform leaves it: the records bucket in Tokyo and its replica in
    // Osaka, and the intake bucket with the stack's processed deliveries under its prefix,
    // versioned, with data; the stack's KMS key; the database's EBS volume, detached now that
    // the stack is scaled to zero.
    let records = "kenko-prod-records-123456789012-ap-northeast-1";
    let replica = "kenko-prod-records-123456789012-ap-northeast-3";
    let intake = "kenko-prod-intake-123456789012-ap-northeast-1";
    for (bucket, region, under) in [
        (records, "ap-northeast-1", "records/2026-10"),
        (replica, "ap-northeast-3", "records/2026-10"),
        (intake, "ap-northeast-1", "hachioji/processed"),
    ] {
        let c = kenko_aws::s3_client(&ep, region).await;
        c.create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::from(region))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                s3::types::VersioningConfiguration::builder()
                    .status(s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for i in 0..3 {
            c.put_object()
                .bucket(bucket)
                .key(format!("{under}/{i}.parquet"))
                .body(s3::primitives::ByteStream::from(vec![b'r'; 1000]))
                .send()
                .await
                .unwrap();
        }
    }
    let kms = kenko_aws::kms_client(&ep, "ap-northeast-1").await;
    let key_arn = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let ec2 = kenko_aws::ec2_client(&ep, "ap-northeast-1").await;
    let volume = ec2
        .create_volume()
        .availability_zone("ap-northeast-1a")
        .size(1)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    // AWS Backup: the stack's recovery points (tagged by the EBS CSI driver) among another
    // stack's, in Tokyo; their copies in Osaka, under Vault Lock for 20 years.
    let point = |n: &str, pvc: &str, ns: &str| Point {
        arn: format!("arn:aws:ec2:ap-northeast-1::snapshot/snap-{n}"),
        created: kenko_intake::clock::now().timestamp() - 86_400,
        bytes: 1 << 20,
        tags: [
            (
                kenko_api::names::PVC_NAMESPACE_TAG.to_string(),
                ns.to_string(),
            ),
            (kenko_api::names::PVC_NAME_TAG.to_string(), pvc.to_string()),
        ]
        .into(),
    };
    let stub = backup_stub::start(
        [
            (
                "kenko-prod-tokyo".to_string(),
                Vault {
                    lock_days: None,
                    points: vec![
                        point("0a1", "hachioji-data", "hachioji"),
                        point("0a2", "data-hachioji-db-0", "hachioji"),
                        point("0b1", "hino-data", "hino"),
                    ],
                },
            ),
            (
                "kenko-prod-osaka".to_string(),
                Vault {
                    lock_days: Some(7305),
                    points: vec![point("0c1", "data-hachioji-db-0", "hachioji")],
                },
            ),
        ]
        .into(),
    )
    .await;

    // The sample stack, deleted, and the controller's plan for it.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/samples/healthstack.yaml"),
    )
    .unwrap();
    let mut stack: kenko_api::HealthStack = serde_yaml::from_str(&text).unwrap();
    stack.spec.storage.kms_key_arn = Some(key_arn.clone());
    stack.metadata.uid = Some(STACK_UID.into());
    let deleted_at = kenko_intake::clock::now() - chrono::Duration::seconds(5);
    let locations: Vec<String> = kenko_controller::plan::data_locations(&stack)
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(locations.len(), 8, "{locations:?}");
    let ns = "hachioji";
    let mut r = ErasureRequest::new(
        "decommission-hachioji",
        ErasureRequestSpec {
            targets: locations.clone(),
            method: kenko_api::ErasureMethod::Clear,
            verification: kenko_api::VerifyMode::Full,
            requested_by: "system:serviceaccount:kenko-system:kenko-controller".into(),
            approved_by: Some("auditor-b".into()),
            stack: Some("hachioji".into()),
            stack_uid: Some(STACK_UID.into()),
        },
    );
    r.metadata.namespace = Some(ns.into());
    r.metadata.uid = Some("7d6e5f40-1111-4222-8333-444455556666".into());
    let rv = serde_json::to_value(&r).unwrap();

    // The cluster's answers: the app's volume a hostPath volume on node-a, the database's an
    // EBS CSI volume in Tokyo's zone a.
    let dir = tempfile::tempdir().unwrap();
    let app_volume = dir.path().join("mnt/disks/hachioji-data");
    std::fs::create_dir_all(app_volume.join("uploads")).unwrap();
    std::fs::write(app_volume.join("uploads/接種記録.csv"), vec![b'z'; 50_000]).unwrap();
    let claim = |pv: &str| {
        Reply::Json(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": ns}, "spec": {"volumeName": pv}}))
    };
    let affinity = |key: &str, value: &str| {
        json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]}]}]}})
    };
    let pv_host = Reply::Json(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-app"},
        "spec": {"hostPath": {"path": app_volume.display().to_string()},
                 "nodeAffinity": affinity("kubernetes.io/hostname", "node-a")}}));
    let pv_ebs = Reply::Json(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-db"},
        "spec": {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume},
                 "nodeAffinity": affinity("topology.ebs.csi.aws.com/zone", "ap-northeast-1a")}}));
    let req =
        format!("/apis/kenko.io/v1alpha1/namespaces/{ns}/erasurerequests/decommission-hachioji");
    let get = || step("GET", req.clone(), Reply::Json(rv.clone()));
    let patch = || step("PATCH", format!("{req}/status"), Reply::Json(rv.clone()));
    let mut script = Vec::new();
    for t in &locations {
        match t.as_str() {
            "pvc:hachioji-data" => {
                script.push(step(
                    "GET",
                    format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/hachioji-data"),
                    claim("pv-app"),
                ));
                script.push(step(
                    "GET",
                    "/api/v1/persistentvolumes/pv-app",
                    pv_host.clone(),
                ));
            }
            "pvc:data-hachioji-db-0" => {
                script.push(step(
                    "GET",
                    format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data-hachioji-db-0"),
                    claim("pv-db"),
                ));
                script.push(step(
                    "GET",
                    "/api/v1/persistentvolumes/pv-db",
                    pv_ebs.clone(),
                ));
            }
            _ => {}
        }
        script.extend([
            get(),
            patch(),
            step(
                "POST",
                "/apis/kenko.io/v1alpha1/erasurecertificates",
                Reply::echo(),
            ),
            get(),
            patch(),
        ]);
    }
    let data = dir.path().join("data");
    let seen = handle_as(
        r,
        &data,
        script,
        true,
        kenko_aws::Endpoint {
            region: "ap-northeast-1".into(),
            endpoint_url: Some(moto.url.clone()),
            service_urls: vec![("backup".into(), stub.url.clone())],
        },
    )
    .await;

    // Every location ended Certified, but the copies Vault Lock keeps.
    let mut last: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.path.ends_with("/status")) {
        for t in s.body["status"]["targets"].as_array().unwrap() {
            last.insert(t["target"].as_str().unwrap().to_string(), t.clone());
        }
    }
    for l in &locations {
        let want = if l.contains("kenko-prod-osaka") {
            "Blocked"
        } else {
            "Certified"
        };
        assert_eq!(last[l]["phase"], want, "{l}: {}", last[l]);
    }
    assert!(
        !app_volume.exists(),
        "the app's volume was overwritten and removed"
    );
    assert_eq!(
        stub.deleted(),
        vec![
            "arn:aws:ec2:ap-northeast-1::snapshot/snap-0a1".to_string(),
            "arn:aws:ec2:ap-northeast-1::snapshot/snap-0a2".to_string(),
        ],
        "the stack's own recovery points only; another stack's and locked copies stay"
    );
    let gone = ec2.describe_volumes().volume_ids(&volume).send().await;
    assert!(
        gone.map(|o| o.volumes().is_empty()).unwrap_or(true),
        "the EBS volume was deleted"
    );

    // The controller, trusting this agent's key, counts what the agent published.
    let key = kenko_agent::certs::signing_key(&data.join("keys/signing.key")).unwrap();
    let trusted = kenko_controller::evidence::TrustedSigners::from_data(
        &[(
            "node-a".to_string(),
            kenko_agent::certs::public_key_hex(&key),
        )]
        .into(),
    )
    .0;
    let certs: Vec<kenko_api::ErasureCertificate> = seen
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| serde_json::from_value(s.body.clone()).unwrap())
        .collect();
    assert_eq!(certs.len(), locations.len(), "one certificate per location");
    let cov = kenko_controller::evidence::coverage(
        &kenko_controller::plan::data_locations(&stack).unwrap(),
        &certs,
        &kenko_controller::evidence::StackId {
            namespace: ns.into(),
            name: "hachioji".into(),
            uid: STACK_UID.into(),
            deleted_at: Some(deleted_at.to_rfc3339()),
        },
        &trusted,
    );
    assert!(cov.rejected.is_empty(), "{:?}", cov.rejected);
    assert!(cov.missing.is_empty(), "{:?}", cov.missing);
    assert_eq!(
        cov.blocked
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
        vec!["backup-vault:ap-northeast-3/kenko-prod-osaka"]
    );
}

/// In the cluster the access monitor is configured from the HealthStacks the API server
/// lists, with the names the controller gives (no pattern by hand): the app pods' logs of
/// this node, the database pods, the records bucket and prefix, the KMS key, office hours and
/// receivers; on by default, reading the roster from its ConfigMap's mount.
#[tokio::test]
async fn the_cluster_agents_access_monitor_is_configured_from_the_healthstacks() {
    let mut stack = kenko_api::samples::hachioji();
    stack.metadata.namespace = Some("health-hachioji".into());
    stack.spec.storage.records_bucket =
        Some("s3://kenko-prod-records-111122223333-ap-northeast-1/hachioji".into());
    stack.spec.monitoring.office_hours = "09:00-17:00".into();
    stack.spec.monitoring.alert_receivers = vec!["hachioji-health".into()];
    let list = json!({
        "apiVersion": "kenko.io/v1alpha1",
        "kind": "HealthStackList",
        "metadata": {"resourceVersion": "7"},
        "items": [serde_json::to_value(&stack).unwrap()],
    });
    let (stacks, _) = kenko_test_support::scenario(
        vec![step(
            "GET",
            "/apis/kenko.io/v1alpha1/healthstacks",
            Reply::Json(list),
        )],
        |client| async move { cluster::access::stacks(&client).await },
    )
    .await;
    let stacks = stacks.unwrap();
    assert_eq!(stacks, vec![kenko_api::access::stack_access(&stack)]);
    let section = kenko_agent::access::settings::AccessSection::default().in_cluster();
    let base = section
        .resolve(std::path::Path::new("/var/lib/kenko"))
        .unwrap();
    assert!(base.enabled, "on by default in the cluster");
    assert_eq!(
        base.pod_logs.as_deref(),
        Some(std::path::Path::new(kenko_api::access::POD_LOG_DIR))
    );
    assert_eq!(
        base.roster.as_deref(),
        Some(
            std::path::Path::new(kenko_api::access::ROSTER_DIR)
                .join(kenko_api::access::ROSTER_KEY)
                .as_path()
        )
    );
    let s = base.with_stacks(stacks.clone()).unwrap();
    let scope = &s.detect.stacks[0];
    assert_eq!(scope.stack, "health-hachioji/hachioji");
    let db_pod = format!(
        "health-hachioji/{}-0",
        kenko_api::names::StackNames::of("hachioji").db
    );
    assert!(scope
        .db_pods
        .iter()
        .any(|p| kenko_access::event::glob(p, &db_pod)));
    assert_eq!(
        s.receivers("health-hachioji/hachioji"),
        ["hachioji-health".to_string()]
    );
    // A stack the API server lists again unchanged reopens nothing; a change does.
    let feed = kenko_agent::access::StackFeed::default();
    assert!(feed.set(stacks.clone()));
    let g = feed.generation();
    assert!(!feed.set(stacks.clone()));
    assert_eq!(feed.generation(), g);
    assert!(feed.set(vec![]));
    assert_ne!(feed.generation(), g);
    // Off when the operator's file says so.
    let off: kenko_agent::access::settings::AccessSection =
        toml::from_str("enabled = false\n").unwrap();
    assert!(
        !off.in_cluster()
            .resolve(std::path::Path::new("/x"))
            .unwrap()
            .enabled
    );
}
