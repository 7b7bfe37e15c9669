//! The reconciler against a scripted mock API server (the kube-rs controller-rs pattern): each
//! request the controller makes is checked against the script in order and answered; a request
//! the script does not expect fails the test.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{TopologySelectorLabelRequirement, TopologySelectorTerm};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kenko_api::{
    ErasureCertificate, ErasureCertificateSpec, ErasurePhase, ErasureRequest, ErasureRequestStatus,
    HealthStack,
};
use kenko_controller::plan;
use kenko_controller::reconcile::{reconcile, Context};
use kenko_controller::telemetry::Metrics;
use kenko_test_support::{serve, step, Reply, Seen, Step};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};

async fn run(
    stack: HealthStack,
    script: Vec<Step>,
) -> (
    Result<kube::runtime::controller::Action, kenko_controller::reconcile::Error>,
    Vec<Seen>,
) {
    let (client, handle) = kenko_test_support::mock();
    let server = tokio::spawn(serve(handle, script));
    let result = {
        let ctx = Arc::new(Context {
            client: client.clone(),
            metrics: Metrics::default(),
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "kenko-controller".into(),
                    instance: Some("test".into()),
                },
            ),
            wait: Duration::from_secs(30),
        });
        reconcile(Arc::new(stack), ctx).await
    };
    // Every client is dropped now, so the server's loop ends.
    let seen = match server.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    (result, seen)
}

const STACKS: &str = "/apis/kenko.io/v1alpha1/namespaces/city/healthstacks";

fn stack() -> HealthStack {
    let mut s = kenko_api::samples::hachioji();
    s.metadata.namespace = Some("city".into());
    s.metadata.uid = Some("9b8c3d1e-0000-4000-8000-000000000001".into());
    s.metadata.generation = Some(1);
    s
}

fn with_finalizer(mut s: HealthStack) -> HealthStack {
    s.metadata.finalizers = Some(vec![plan::FINALIZER.into()]);
    s
}

fn storage_class(zone: &str) -> Value {
    serde_json::to_value(StorageClass {
        metadata: ObjectMeta {
            name: Some("gp3-tokyo".into()),
            ..Default::default()
        },
        provisioner: "ebs.csi.aws.com".into(),
        allowed_topologies: Some(vec![TopologySelectorTerm {
            match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
                key: "topology.ebs.csi.aws.com/zone".into(),
                values: vec![zone.into()],
            }]),
        }]),
        ..Default::default()
    })
    .unwrap()
}

/// Where each planned child is applied.
fn child_paths() -> Vec<String> {
    [
        "/api/v1/namespaces/city/serviceaccounts/hachioji-app",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/city/roles/hachioji-app",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/city/rolebindings/hachioji-app",
        "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-default-deny",
        "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-app",
        "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-db",
        "/api/v1/namespaces/city/configmaps/hachioji-agent",
        "/api/v1/namespaces/city/persistentvolumeclaims/hachioji-data",
        "/api/v1/namespaces/city/services/hachioji-db",
        "/apis/apps/v1/namespaces/city/statefulsets/hachioji-db",
        "/apis/apps/v1/namespaces/city/deployments/hachioji-app",
        "/api/v1/namespaces/city/services/hachioji-app",
        "/apis/policy/v1/namespaces/city/poddisruptionbudgets/hachioji-app",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn apply_steps(available: i64) -> Vec<Step> {
    child_paths()
        .into_iter()
        .map(|p| {
            let extra = if p.contains("/deployments/") {
                json!({"status": {"availableReplicas": available}})
            } else {
                json!({})
            };
            step("PATCH", p, Reply::Echo(extra))
        })
        .collect()
}

fn reads(zone: &str) -> Vec<Step> {
    vec![
        step(
            "GET",
            "/apis/kenko.io/v1alpha1/residencypolicies/default",
            Reply::NotFound,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/gp3-tokyo",
            Reply::Json(storage_class(zone)),
        ),
    ]
}

fn condition<'a>(status_patch: &'a Value, type_: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status_patch}"))
}

fn status_of(c: &Value) -> (String, String) {
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_new_stack_gets_its_finalizer_exactly_its_children_and_a_status() {
    let mut script = vec![step(
        "PATCH",
        format!("{STACKS}/hachioji"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    )];
    script.extend(reads("ap-northeast-1a"));
    script.extend(apply_steps(0));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(stack(), script).await;
    result.unwrap();

    // The finalizer first.
    assert_eq!(
        seen[0].body["metadata"]["finalizers"],
        json!([plan::FINALIZER])
    );
    // Every child by server-side apply, one field manager, forced (drift is overwritten).
    for s in &seen[3..16] {
        assert_eq!(s.content_type, "application/apply-patch+yaml", "{}", s.path);
        assert!(
            s.query.contains("fieldManager=kenko-controller"),
            "{}",
            s.query
        );
        assert!(s.query.contains("force=true"), "{}", s.query);
        assert_eq!(
            s.body["metadata"]["ownerReferences"][0]["kind"], "HealthStack",
            "{} is owned by the stack",
            s.path
        );
    }
    let status = &seen[16].body;
    assert_eq!(status["status"]["observedGeneration"], 1);
    assert_eq!(
        status_of(condition(status, "ResidencyCompliant")),
        ("True".into(), "InJapan".into())
    );
    assert_eq!(
        status_of(condition(status, "Ready")),
        ("False".into(), "Applying".into())
    );
    assert_eq!(
        status_of(condition(status, "Progressing")),
        ("True".into(), "Applying".into())
    );
    assert_eq!(
        status_of(condition(status, "BackupConfigured")),
        ("True".into(), "BackupPlanned".into())
    );
    assert_eq!(
        status_of(condition(status, "Decommissioning")),
        ("False".into(), "NotDecommissioning".into())
    );
}

#[tokio::test]
async fn a_storage_class_outside_japan_creates_nothing_and_says_why() {
    let mut script = reads("ap-northeast-2a");
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(with_finalizer(stack()), script).await;
    result.unwrap();
    assert!(
        seen.iter()
            .all(|s| !s.path.contains("persistentvolumeclaims")),
        "no PVC outside Japan"
    );
    let event = &seen[2].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "StorageClassOutsideJapan");
    assert!(event["note"].as_str().unwrap().contains("ap-northeast-2a"));
    let status = &seen[3].body;
    assert_eq!(
        status_of(condition(status, "ResidencyCompliant")),
        ("False".into(), "StorageClassOutsideJapan".into())
    );
    assert_eq!(
        status_of(condition(status, "Ready")),
        ("False".into(), "StorageClassOutsideJapan".into())
    );
}

#[tokio::test]
async fn a_violation_found_by_the_account_audit_shows_on_the_stack_without_stopping_it() {
    // The agent's audit found replication to us-west-2 and wrote it into the policy's status.
    let policy = json!({
        "apiVersion": "kenko.io/v1alpha1",
        "kind": "ResidencyPolicy",
        "metadata": {"name": "default"},
        "spec": {"allowedRegions": ["ap-northeast-1", "ap-northeast-3"], "backupsInDifferentRegion": true, "minRetentionYears": 20},
        "status": {"audit": {
            "completedAt": "2026-11-26T03:00:00Z",
            "auditor": "kenko-agent-abcde",
            "regions": ["ap-northeast-1", "ap-northeast-3", "us-west-2"],
            "compliant": 41, "violations": 1, "unknown": 0,
            "findings": [{"rule": "s3.replication", "status": "Violation", "resource": "arn:aws:s3:::kenko-prod-records", "region": "ap-northeast-1"}]
        }}
    });
    let mut script = vec![
        step(
            "GET",
            "/apis/kenko.io/v1alpha1/residencypolicies/default",
            Reply::Json(policy),
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/gp3-tokyo",
            Reply::Json(storage_class("ap-northeast-1a")),
        ),
    ];
    script.extend(apply_steps(2));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(ready_stack(), script).await;
    result.unwrap();
    let event = &seen[seen.len() - 2].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "AuditFoundViolation");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("s3.replication") && note.contains("kenko-prod-records"),
        "{note}"
    );
    let status = &seen.last().unwrap().body;
    assert_eq!(
        status_of(condition(status, "ResidencyCompliant")),
        ("False".into(), "AuditFoundViolation".into())
    );
    assert_eq!(
        status_of(condition(status, "Degraded")),
        ("True".into(), "AuditFoundViolation".into())
    );
    // The spec is compliant, so the app stays deployed and ready.
    assert_eq!(
        status_of(condition(status, "Ready")),
        ("True".into(), "Reconciled".into())
    );
}

fn ready_stack() -> HealthStack {
    let mut s = with_finalizer(stack());
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let observed = plan::Observed {
        app_available: 2,
        ..Default::default()
    };
    s.status = Some(kenko_api::HealthStackStatus {
        observed_generation: Some(1),
        conditions: plan::conditions(&s, &plan::Residency::Compliant, &observed, &now),
        erasure_request: None,
    });
    s
}

#[tokio::test]
async fn drift_is_corrected_by_applying_the_planned_children_again() {
    // Someone scaled the app to 5 and edited a NetworkPolicy: the next pass applies the
    // planned objects with force, taking the fields back.
    let mut script = reads("ap-northeast-1a");
    script.extend(apply_steps(2));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(ready_stack(), script).await;
    result.unwrap();
    let deployment = seen
        .iter()
        .find(|s| s.path.ends_with("/deployments/hachioji-app"))
        .unwrap();
    assert_eq!(deployment.body["spec"]["replicas"], 2);
    let np = seen
        .iter()
        .find(|s| s.path.ends_with("/networkpolicies/hachioji-default-deny"))
        .unwrap();
    assert_eq!(np.body["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        status_of(condition(&seen.last().unwrap().body, "Ready")),
        ("True".into(), "Reconciled".into())
    );
}

#[tokio::test]
async fn suspend_scales_writers_to_zero_and_shows_as_a_condition() {
    let mut s = ready_stack();
    s.spec.suspend = true;
    let mut script = reads("ap-northeast-1a");
    script.extend(apply_steps(0));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(s, script).await;
    result.unwrap();
    for kind in ["/deployments/hachioji-app", "/statefulsets/hachioji-db"] {
        let obj = seen.iter().find(|s| s.path.ends_with(kind)).unwrap();
        assert_eq!(obj.body["spec"]["replicas"], 0, "{kind}");
    }
    let cm = seen
        .iter()
        .find(|s| s.path.ends_with("/configmaps/hachioji-agent"))
        .unwrap();
    assert!(cm.body["data"]["kenko.toml"]
        .as_str()
        .unwrap()
        .contains("suspended = true"));
    let event = seen.iter().find(|s| s.path.ends_with("/events")).unwrap();
    assert_eq!(event.body["reason"], "Suspended");
    assert_eq!(
        status_of(condition(&seen.last().unwrap().body, "Ready")),
        ("False".into(), "Suspended".into())
    );
}

fn deleted(s: HealthStack) -> HealthStack {
    let mut s = s;
    s.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    s
}

const REQUESTS: &str = "/apis/kenko.io/v1alpha1/namespaces/city/erasurerequests";

fn scale_down_steps() -> Vec<Step> {
    vec![
        step(
            "PATCH",
            "/apis/apps/v1/namespaces/city/statefulsets/hachioji-db",
            Reply::Echo(json!({})),
        ),
        step(
            "PATCH",
            "/apis/apps/v1/namespaces/city/deployments/hachioji-app",
            Reply::Echo(json!({})),
        ),
    ]
}

fn existing_request(phase: ErasurePhase, approved: bool, certificates: &[&str]) -> ErasureRequest {
    let s = stack();
    let mut r = ErasureRequest::new(
        "decommission-hachioji",
        kenko_api::ErasureRequestSpec {
            targets: plan::data_locations(&s),
            method: "clear".into(),
            verification: "full".into(),
            requested_by: "system:serviceaccount:kenko-system:kenko-controller".into(),
            approved_by: approved.then(|| "auditor-b".to_string()),
            stack: Some("hachioji".into()),
        },
    );
    r.metadata.namespace = Some("city".into());
    r.status = Some(ErasureRequestStatus {
        phase,
        certificates: certificates.iter().map(|c| c.to_string()).collect(),
        reason: (phase == ErasurePhase::Failed).then(|| "erase_verification_failed".into()),
        message: (phase == ErasurePhase::Failed)
            .then(|| "pvc:data-hachioji-db-0: bytes at offset 4096 differ".into()),
        ..Default::default()
    });
    r
}

fn certificate(name: &str, targets: &[String], blocked: i64) -> Value {
    serde_json::to_value(ErasureCertificate::new(
        name,
        ErasureCertificateSpec {
            job_id: name.into(),
            request: "city/decommission-hachioji".into(),
            stack: Some("city/hachioji".into()),
            targets: targets.to_vec(),
            target_count: targets.len() as i64,
            blocked_count: blocked,
            signer: "ab".repeat(32),
            sha256: "cd".repeat(32),
            issued_at: "2026-11-26T00:00:00Z".into(),
            certificate: "{}\n".into(),
        },
    ))
    .unwrap()
}

#[tokio::test]
async fn deleting_a_stack_stops_writes_and_asks_for_an_erasure_of_every_location() {
    let mut script = scale_down_steps();
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::NotFound,
    ));
    script.push(step("POST", REQUESTS, Reply::Echo(json!({}))));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[0].body["spec"]["replicas"], 0);
    assert_eq!(seen[1].body["spec"]["replicas"], 0);
    let request = &seen[3].body;
    assert_eq!(
        request["spec"]["targets"],
        json!(plan::data_locations(&stack())),
        "every data location"
    );
    assert_eq!(request["spec"]["stack"], "hachioji");
    assert!(request["spec"]["approvedBy"].is_null());
    assert_eq!(seen[4].body["reason"], "AwaitingApproval");
    let status = &seen[5].body;
    assert_eq!(
        status_of(condition(status, "Decommissioning")),
        ("True".into(), "AwaitingApproval".into())
    );
    assert_eq!(status["status"]["erasureRequest"], "decommission-hachioji");
    assert!(
        seen.iter()
            .all(|s| !s.path.contains("finalizers") && s.method != "DELETE"),
        "the finalizer is held"
    );
}

#[tokio::test]
async fn the_finalizer_is_released_only_when_certificates_cover_every_location() {
    let locations = plan::data_locations(&stack());
    let (media, keys): (Vec<String>, Vec<String>) = locations
        .iter()
        .cloned()
        .partition(|l| !l.starts_with("kms:") && !l.starts_with("datakey:"));
    let request = existing_request(
        ErasurePhase::Certified,
        true,
        &["000007-media", "000008-keys"],
    );
    let mut script = scale_down_steps();
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::Json(serde_json::to_value(&request).unwrap()),
    ));
    script.push(step(
        "GET",
        "/apis/kenko.io/v1alpha1/erasurecertificates/000007-media",
        Reply::Json(certificate("000007-media", &media, 0)),
    ));
    script.push(step(
        "GET",
        "/apis/kenko.io/v1alpha1/erasurecertificates/000008-keys",
        Reply::Json(certificate("000008-keys", &keys, 0)),
    ));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    script.push(step(
        "DELETE",
        "/api/v1/namespaces/city/persistentvolumeclaims/data-hachioji-db-0",
        Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[5].body["reason"], "Certified");
    assert_eq!(
        status_of(condition(&seen[6].body, "Decommissioning")),
        ("True".into(), "Certified".into())
    );
    assert_eq!(
        seen.last().unwrap().body["metadata"]["finalizers"],
        json!([])
    );
}

#[tokio::test]
async fn a_partial_or_failed_erasure_keeps_the_stack_and_says_why() {
    // Certified, but the key certificate is missing: the stack stays.
    let locations = plan::data_locations(&stack());
    let media: Vec<String> = locations
        .iter()
        .filter(|l| !l.starts_with("kms:") && !l.starts_with("datakey:"))
        .cloned()
        .collect();
    let request = existing_request(ErasurePhase::Certified, true, &["000007-media"]);
    let mut script = scale_down_steps();
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::Json(serde_json::to_value(&request).unwrap()),
    ));
    script.push(step(
        "GET",
        "/apis/kenko.io/v1alpha1/erasurecertificates/000007-media",
        Reply::Json(certificate("000007-media", &media, 0)),
    ));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    let c = condition(&seen.last().unwrap().body, "Decommissioning");
    assert_eq!(status_of(c), ("True".into(), "ErasureFailed".into()));
    assert!(c["message"].as_str().unwrap().contains("datakey:records"));

    // Failed: the reason from the request is shown, the finalizer kept.
    let request = existing_request(ErasurePhase::Failed, true, &[]);
    let mut script = scale_down_steps();
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::Json(serde_json::to_value(&request).unwrap()),
    ));
    script.push(step(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/city/events",
        Reply::Echo(json!({})),
    ));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[3].body["type"], "Warning");
    let c = condition(&seen.last().unwrap().body, "Decommissioning");
    assert_eq!(status_of(c), ("True".into(), "ErasureFailed".into()));
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("erase_verification_failed"));
}

#[test]
fn decommission_states() {
    use kenko_controller::reconcile::{decommission_state, Decommission};
    let locations = plan::data_locations(&stack());
    let pending = existing_request(ErasurePhase::Pending, false, &[]);
    assert_eq!(
        decommission_state(&locations, &pending, &[]),
        Decommission::AwaitingApproval
    );
    let approved = existing_request(ErasurePhase::Pending, true, &[]);
    assert_eq!(
        decommission_state(&locations, &approved, &[]),
        Decommission::Erasing(ErasurePhase::Pending)
    );
    let blocked = existing_request(ErasurePhase::Blocked, true, &[]);
    assert!(matches!(
        decommission_state(&locations, &blocked, &[]),
        Decommission::Blocked(_)
    ));
    // A certificate with blocked items does not cover its targets.
    let certified = existing_request(ErasurePhase::Certified, true, &["c"]);
    let cert: ErasureCertificate = serde_json::from_value(certificate("c", &locations, 1)).unwrap();
    assert!(matches!(
        decommission_state(&locations, &certified, &[cert]),
        Decommission::Incomplete(_)
    ));
}
