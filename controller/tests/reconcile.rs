//! The reconciler against a scripted mock API server (the kube-rs controller-rs pattern): each
//! request the controller makes is checked against the script in order and answered; a request
//! the script does not expect fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

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
    run_with(stack, script, format!("127.0.0.1:{}", closed_port())).await
}

/// As [`run`], every stack's intake asked at `intake` (a loopback server of the test).
async fn run_with(
    stack: HealthStack,
    script: Vec<Step>,
    intake: String,
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
            namespace: "kenko-system".into(),
            agent_image: "kenko-agent".into(),
            intake_authority: Some(intake),
            published: Default::default(),
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

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Where generated Secrets are created (a POST to the collection; never read back).
const SECRETS: &str = "/api/v1/namespaces/city/secrets";

/// Where each planned child of [`stack`] is applied (its data key is wrapped by its KMS key:
/// one generated Secret, the database's credentials).
fn child_paths() -> Vec<String> {
    child_paths_with_secrets(1)
}

fn child_paths_with_secrets(secrets: usize) -> Vec<String> {
    let mut out: Vec<String> = [
        "/api/v1/namespaces/city/serviceaccounts/hachioji-app",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/city/roles/hachioji-app",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/city/rolebindings/hachioji-app",
        "/api/v1/namespaces/city/serviceaccounts/hachioji-intake",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    out.extend(std::iter::repeat_n(SECRETS.to_string(), secrets));
    out.extend(
        [
            "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-default-deny",
            "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-app",
            "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-db",
            "/apis/networking.k8s.io/v1/namespaces/city/networkpolicies/hachioji-intake",
            "/api/v1/namespaces/city/configmaps/hachioji-agent",
            "/api/v1/namespaces/city/persistentvolumeclaims/hachioji-data",
            "/api/v1/namespaces/city/services/hachioji-db",
            "/apis/apps/v1/namespaces/city/statefulsets/hachioji-db",
            "/apis/apps/v1/namespaces/city/deployments/hachioji-app",
            "/apis/apps/v1/namespaces/city/deployments/hachioji-intake",
            "/api/v1/namespaces/city/services/hachioji-intake",
            "/api/v1/namespaces/city/services/hachioji-app",
            "/apis/policy/v1/namespaces/city/poddisruptionbudgets/hachioji-app",
        ]
        .into_iter()
        .map(String::from),
    );
    out
}

fn apply_steps(available: i64) -> Vec<Step> {
    apply_steps_with(available, Reply::echo())
}

/// The children's steps, the Secrets' creates answered with `secrets`.
fn apply_steps_with(available: i64, secrets: Reply) -> Vec<Step> {
    steps_for(child_paths(), available, secrets)
}

fn steps_for(paths: Vec<String>, available: i64, secrets: Reply) -> Vec<Step> {
    paths
        .into_iter()
        .map(|p| {
            if p == SECRETS {
                return step("POST", p, secrets.clone());
            }
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

    // The finalizer first, as a JSON Patch that fails if the list changed meanwhile.
    assert_eq!(seen[0].content_type, "application/json-patch+json");
    assert_eq!(
        seen[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [plan::FINALIZER]},
        ])
    );
    // Every child by server-side apply, one field manager, forced (drift is overwritten).
    let children = &seen[3..3 + child_paths().len()];
    for s in children.iter().filter(|s| s.path != SECRETS) {
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
    // The generated Secret: created (never applied, never read back), immutable, owned, a
    // 32-character password. (The data key is wrapped by the stack's KMS key: no Secret.)
    let secrets: Vec<&Seen> = children.iter().filter(|s| s.path == SECRETS).collect();
    assert_eq!(secrets.len(), 1);
    for s in &secrets {
        assert_eq!(s.method, "POST");
        assert!(
            s.query.contains("fieldManager=kenko-controller"),
            "{}",
            s.query
        );
        assert_eq!(s.body["immutable"], true);
        assert_eq!(
            s.body["metadata"]["ownerReferences"][0]["kind"],
            "HealthStack"
        );
    }
    let decoded = |s: &Seen, key: &str| -> Vec<u8> {
        serde_json::from_value::<k8s_openapi::ByteString>(s.body["data"][key].clone())
            .unwrap()
            .0
    };
    assert_eq!(
        secrets[0].body["metadata"]["name"],
        "hachioji-db-credentials"
    );
    assert_eq!(decoded(secrets[0], "username"), b"kenko");
    let password = decoded(secrets[0], "password");
    assert_eq!(password.len(), 32);
    assert!(password.iter().all(u8::is_ascii_alphanumeric));
    let status = &seen[3 + child_paths().len()].body;
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
    // No account audit yet: the backups are not shown to exist, whatever the spec asks for.
    assert_eq!(
        status_of(condition(status, "BackupConfigured")),
        ("False".into(), "AuditIncomplete".into())
    );
    assert_eq!(
        status_of(condition(status, "Decommissioning")),
        ("False".into(), "NotDecommissioning".into())
    );
}

#[tokio::test]
async fn a_stack_without_a_kms_key_gets_its_data_key_as_a_generated_secret() {
    let mut s = stack();
    s.spec.storage.kms_key_arn = None;
    let mut script = vec![step(
        "PATCH",
        format!("{STACKS}/hachioji"),
        Reply::Json(serde_json::to_value(&s).unwrap()),
    )];
    script.extend(reads("ap-northeast-1a"));
    let paths = child_paths_with_secrets(2);
    let n = paths.len();
    script.extend(steps_for(paths, 0, Reply::echo()));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(&s).unwrap()),
    ));
    let (result, seen) = run(s, script).await;
    result.unwrap();
    let secrets: Vec<&Seen> = seen[3..3 + n]
        .iter()
        .filter(|s| s.path == SECRETS)
        .collect();
    assert_eq!(secrets.len(), 2);
    let decoded = |s: &Seen, key: &str| -> Vec<u8> {
        serde_json::from_value::<k8s_openapi::ByteString>(s.body["data"][key].clone())
            .unwrap()
            .0
    };
    assert_eq!(secrets[1].body["metadata"]["name"], "hachioji-data-key");
    assert_eq!(secrets[1].body["immutable"], true);
    let key = decoded(secrets[1], "records.key");
    assert_eq!(key.len(), 32);
    assert_ne!(key, decoded(secrets[0], "password"), "drawn independently");
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

/// The policy with an audit that checked `city/hachioji` just now and found `reason`.
fn policy_with_backup(reason: &str) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({
        "apiVersion": "kenko.io/v1alpha1",
        "kind": "ResidencyPolicy",
        "metadata": {"name": "default"},
        "spec": {"allowedRegions": ["ap-northeast-1", "ap-northeast-3"], "backupsInDifferentRegion": true, "minRetentionYears": 20},
        "status": {"audit": {
            "completedAt": now,
            "auditor": "kenko-agent-abcde",
            "regions": ["ap-northeast-1", "ap-northeast-3"],
            "compliant": 41, "violations": 0, "unknown": 0,
            "findings": [],
            "intervalSecs": 3600,
            "backups": [
                {"namespace": "city", "name": "hachioji", "reason": reason,
                 "message": format!("{reason} pvc:hachioji-data (vol-0abc): as found"), "checkedAt": now},
                {"namespace": "other", "name": "hachioji", "reason": "NoBackupPlan",
                 "message": "another namespace's stack", "checkedAt": now}
            ]
        }}
    })
}

/// One pass of a ready stack under `policy`: the Event it published, and its status.
async fn backup_pass(previous: HealthStack, policy: Value) -> (Value, Value) {
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
    let (result, seen) = run(previous, script).await;
    result.unwrap();
    (
        seen[seen.len() - 2].body.clone(),
        seen.last().unwrap().body.clone(),
    )
}

#[tokio::test]
async fn backup_configured_follows_the_audit_the_agent_published() {
    // Not shown before (no audit): the audit now covers every location of this stack.
    let (event, status) = backup_pass(ready_stack(), policy_with_backup("BackupCovered")).await;
    assert_eq!(
        status_of(condition(&status, "BackupConfigured")),
        ("True".into(), "BackupCovered".into())
    );
    let message = condition(&status, "BackupConfigured")["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("vol-0abc"), "{message}");
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Normal"), Some("BackupCovered"))
    );
    // The residency of the account is not what decides it, nor the reverse.
    assert_eq!(
        status_of(condition(&status, "ResidencyCompliant")),
        ("True".into(), "InJapan".into())
    );
    // Covered before; the next audit finds no copy in Osaka: False, with a Warning.
    let mut covered = ready_stack();
    covered.status.as_mut().unwrap().conditions =
        serde_json::from_value(status["status"]["conditions"].clone()).unwrap();
    let (event, status) = backup_pass(covered, policy_with_backup("NoCrossRegionCopy")).await;
    assert_eq!(
        status_of(condition(&status, "BackupConfigured")),
        ("False".into(), "NoCrossRegionCopy".into())
    );
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("NoCrossRegionCopy"))
    );
    assert!(event["note"].as_str().unwrap().contains("vol-0abc"));
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
        intake: None,
    });
    s
}

#[tokio::test]
async fn drift_is_corrected_by_applying_the_planned_children_again() {
    // Someone scaled the app to 5 and edited a NetworkPolicy: the next pass applies the
    // planned objects with force, taking the fields back.
    // The Secrets exist already: a create answered AlreadyExists is success, and nothing
    // reads or replaces them.
    let mut script = reads("ap-northeast-1a");
    script.extend(apply_steps_with(2, Reply::AlreadyExists));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run(ready_stack(), script).await;
    result.unwrap();
    assert!(
        !seen
            .iter()
            .any(|s| s.path.starts_with(SECRETS) && s.method != "POST"),
        "no Secret is read, patched or deleted"
    );
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

/// Serves one HTTP answer on loopback (the stack's intake as the controller meets it).
fn intake_server(answer: String) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(answer.as_bytes());
        }
    });
    addr
}

#[tokio::test]
async fn the_intakes_report_is_checked_into_the_status_and_intake_healthy() {
    let report = json!({"reason": "IntakeOk", "message": "3 file(s) loaded, 1 returned since the intake started",
        "lastRoundAt": "2026-12-06T09:00:00Z", "lastFileAt": "2026-12-06T08:50:00Z",
        "claimMonth": "2026-11", "filesLoaded": 3, "filesReturned": 1, "rowsAccepted": 2900, "rowsRejected": 100});
    let answer = format!("HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{report}");
    let mut script = reads("ap-northeast-1a");
    script.extend(apply_steps(2));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run_with(ready_stack(), script, intake_server(answer)).await;
    result.unwrap();
    let status = &seen.last().unwrap().body;
    assert_eq!(
        status_of(condition(status, "IntakeHealthy")),
        ("True".into(), "IntakeOk".into())
    );
    assert_eq!(status["status"]["intake"]["filesLoaded"], 3);
    assert_eq!(status["status"]["intake"]["claimMonth"], "2026-11");
    assert_eq!(status["status"]["intake"]["rowsRejected"], 100);
    assert_eq!(
        status["status"]["intake"]["lastFileAt"],
        "2026-12-06T08:50:00Z"
    );

    // An intake that says something kenko does not know is not believed.
    let forged = json!({"reason": "AllGood", "message": "trust me", "filesLoaded": 99,
        "filesReturned": 0, "rowsAccepted": 0, "rowsRejected": 0});
    let answer = format!("HTTP/1.0 200 OK\r\n\r\n{forged}");
    let mut script = reads("ap-northeast-1a");
    script.extend(apply_steps(2));
    script.push(step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    ));
    let (result, seen) = run_with(ready_stack(), script, intake_server(answer)).await;
    result.unwrap();
    let status = &seen.last().unwrap().body;
    assert_eq!(
        status_of(condition(status, "IntakeHealthy")),
        ("False".into(), "IntakeNotReporting".into())
    );
    assert!(status["status"].get("intake").is_none(), "{status}");
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
    for kind in [
        "/deployments/hachioji-app",
        "/deployments/hachioji-intake",
        "/statefulsets/hachioji-db",
    ] {
        let obj = seen.iter().find(|s| s.path.ends_with(kind)).unwrap();
        assert_eq!(obj.body["spec"]["replicas"], 0, "{kind}");
    }
    let event = seen.iter().find(|s| s.path.ends_with("/events")).unwrap();
    assert_eq!(event.body["reason"], "Suspended");
    assert_eq!(
        status_of(condition(&seen.last().unwrap().body, "Ready")),
        ("False".into(), "Suspended".into())
    );
}

fn deleted(s: HealthStack) -> HealthStack {
    let mut s = s;
    s.metadata.deletion_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(DELETED_AT).unwrap(),
    ));
    s
}

/// When the stack was deleted (2026-12-01T00:00:00Z), and a time after it.
const DELETED_AT: i64 = 1_796_083_200;
const AFTER: &str = "2026-12-01T00:05:00Z";

const REQUESTS: &str = "/apis/kenko.io/v1alpha1/namespaces/city/erasurerequests";
const CERTS: &str = "/apis/kenko.io/v1alpha1/erasurecertificates";
const SIGNERS: &str = "/api/v1/namespaces/kenko-system/configmaps/kenko-erasure-signers";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/city/events";

fn locations() -> Vec<String> {
    plan::data_locations(&stack())
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect()
}

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
        step(
            "PATCH",
            "/apis/apps/v1/namespaces/city/deployments/hachioji-intake",
            Reply::Echo(json!({})),
        ),
    ]
}

fn signer(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn public(seed: u8) -> String {
    hex::encode(signer(seed).verifying_key().as_bytes())
}

/// The ConfigMap of trusted signers, trusting the keys of `seeds`.
fn trusted(seeds: &[u8]) -> Reply {
    let data: serde_json::Map<String, Value> = seeds
        .iter()
        .map(|s| (format!("node-{s}"), json!(public(*s))))
        .collect();
    Reply::Json(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kenko-erasure-signers", "namespace": "kenko-system"},
        "data": data,
    }))
}

/// The reads of a decommissioning pass: every stack (for shared locations), the trusted
/// signers, this stack's certificates by its uid label.
fn evidence_steps(stacks: Vec<HealthStack>, signers: Reply, certs: Vec<Value>) -> Vec<Step> {
    let mut certs_step = step(
        "GET",
        CERTS,
        Reply::Json(json!({
            "apiVersion": "kenko.io/v1alpha1", "kind": "ErasureCertificateList",
            "metadata": {}, "items": certs,
        })),
    );
    certs_step.query =
        vec!["labelSelector=kenko.io%2Fstack-uid%3D9b8c3d1e-0000-4000-8000-000000000001"];
    vec![
        step(
            "GET",
            "/apis/kenko.io/v1alpha1/healthstacks",
            Reply::Json(json!({
                "apiVersion": "kenko.io/v1alpha1", "kind": "HealthStackList",
                "metadata": {}, "items": stacks,
            })),
        ),
        step("GET", SIGNERS, signers),
        certs_step,
    ]
}

/// A signed certificate resource (signed by `seed`) erasing `locations` of the stack with
/// `uid`, started at `started`.
fn certificate(name: &str, seed: u8, uid: &str, started: &str, locations: &[String]) -> Value {
    use kenko_cert::*;
    let mut c = Certificate {
        format: FORMAT.into(),
        job_id: name.into(),
        sequence: 1,
        previous_sha256: None,
        sanitized_by: Person::default(),
        sanitization: Sanitization::default(),
        targets: locations
            .iter()
            .map(|l| kenko_cert::Target {
                spec: format!("engine:{l}"),
                location: Some(l.clone()),
                media: Media::default(),
                bytes_erased: 1,
                objects_erased: 1,
                blocked: vec![],
                verification: Verification {
                    method: kenko_cert::VerificationMethod::Full,
                    passed: true,
                    bytes_checked: 1,
                    locations_checked: 1,
                    details: String::new(),
                },
            })
            .collect(),
        media_destination: String::new(),
        started_at: started.into(),
        finished_at: started.into(),
        resumptions: 0,
        host: "node-1".into(),
        agent_version: "0.1.0".into(),
        authority: Some(Authority {
            request: "city/decommission-hachioji".into(),
            request_uid: "req-1".into(),
            requested_by: "system:serviceaccount:kenko-system:kenko-controller".into(),
            approved_by: "auditor-b".into(),
            stack: Some(StackRef {
                namespace: "city".into(),
                name: "hachioji".into(),
                uid: uid.into(),
            }),
        }),
        signature: None,
        validation: None,
    };
    c.sign(&signer(seed), started);
    let bytes = c.to_file_bytes();
    let mut r = ErasureCertificate::new(
        name,
        ErasureCertificateSpec {
            job_id: name.into(),
            request: "city/decommission-hachioji".into(),
            stack: Some("city/hachioji".into()),
            targets: locations.to_vec(),
            target_count: locations.len() as i64,
            blocked_count: 0,
            signer: public(seed),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            issued_at: started.into(),
            certificate: String::from_utf8(bytes).unwrap(),
        },
    );
    r.metadata.labels = Some([("kenko.io/stack-uid".to_string(), uid.to_string())].into());
    serde_json::to_value(r).unwrap()
}

const UID: &str = "9b8c3d1e-0000-4000-8000-000000000001";

fn existing_request(phase: ErasurePhase, approved: bool, targets: Vec<String>) -> ErasureRequest {
    let mut r = ErasureRequest::new(
        "decommission-hachioji",
        kenko_api::ErasureRequestSpec {
            targets,
            method: kenko_api::ErasureMethod::Clear,
            verification: kenko_api::VerifyMode::Full,
            requested_by: "system:serviceaccount:kenko-system:kenko-controller".into(),
            approved_by: approved.then(|| "auditor-b".to_string()),
            stack: Some("hachioji".into()),
            stack_uid: Some(UID.into()),
        },
    );
    r.metadata.namespace = Some("city".into());
    r.status = Some(ErasureRequestStatus {
        phase,
        reason: (phase == ErasurePhase::Failed).then(|| "erase_verification_failed".into()),
        message: (phase == ErasurePhase::Failed).then(|| {
            "1 of 8 targets failed; first pvc:data-hachioji-db-0: bytes at offset 4096 differ"
                .into()
        }),
        ..Default::default()
    });
    r
}

fn status_step() -> Step {
    step(
        "PATCH",
        format!("{STACKS}/hachioji/status"),
        Reply::Json(serde_json::to_value(stack()).unwrap()),
    )
}

#[tokio::test]
async fn deleting_a_stack_stops_writes_and_asks_for_an_erasure_of_every_location() {
    let mut script = scale_down_steps();
    script.extend(evidence_steps(vec![stack()], Reply::NotFound, vec![]));
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::NotFound,
    ));
    script.push(step("POST", REQUESTS, Reply::Echo(json!({}))));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[0].body["spec"]["replicas"], 0);
    assert_eq!(seen[1].body["spec"]["replicas"], 0);
    assert_eq!(seen[2].body["spec"]["replicas"], 0, "the intake stops too");
    let request = &seen[7].body;
    assert_eq!(
        request["spec"]["targets"],
        json!(locations()),
        "every data location"
    );
    assert_eq!(request["spec"]["stack"], "hachioji");
    assert_eq!(request["spec"]["stackUid"], UID);
    assert!(request["spec"]["approvedBy"].is_null());
    assert_eq!(seen[8].body["reason"], "AwaitingApproval");
    let status = &seen[9].body;
    assert_eq!(
        status_of(condition(status, "Decommissioning")),
        ("True".into(), "AwaitingApproval".into())
    );
    assert_eq!(
        status_of(condition(status, "Progressing")),
        ("False".into(), "AwaitingApproval".into()),
        "nothing is rolled out while the stack is decommissioned"
    );
    assert_eq!(status["status"]["erasureRequest"], "decommission-hachioji");
    assert!(
        seen.iter()
            .all(|s| !s.path.ends_with("/healthstacks/hachioji") && s.method != "DELETE"),
        "the finalizer is held"
    );
}

#[tokio::test]
async fn the_finalizer_is_released_only_when_verified_certificates_cover_every_location() {
    let all = locations();
    let (media, rest) = all.split_at(2);
    let certs = vec![
        certificate("000007-media", 1, UID, AFTER, media),
        certificate("000003-cloud", 2, UID, AFTER, rest),
    ];
    let mut script = scale_down_steps();
    script.extend(evidence_steps(vec![stack()], trusted(&[1, 2]), certs));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
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
    let mut s = deleted(ready_stack());
    s.metadata.finalizers = Some(vec!["other.example/keep".into(), plan::FINALIZER.into()]);
    let (result, seen) = run(s, script).await;
    result.unwrap();
    assert_eq!(seen[6].body["reason"], "Certified");
    assert!(seen[6].body["note"]
        .as_str()
        .unwrap()
        .contains("000003-cloud, 000007-media"));
    assert_eq!(
        status_of(condition(&seen[7].body, "Decommissioning")),
        ("True".into(), "Certified".into())
    );
    // Only kenko's finalizer goes, and only if it is still where it was read.
    let last = seen.last().unwrap();
    assert_eq!(last.content_type, "application/json-patch+json");
    assert_eq!(
        last.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": plan::FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/1"},
        ])
    );
}

/// A pass over a stack whose request is Certified, with these certificates and signers: the
/// stack must be kept; returns the Decommissioning condition.
async fn kept(signers: Reply, certs: Vec<Value>) -> Value {
    let request = existing_request(ErasurePhase::Certified, true, locations());
    let mut script = scale_down_steps();
    script.extend(evidence_steps(vec![stack()], signers, certs));
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::Json(serde_json::to_value(&request).unwrap()),
    ));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[7].body["type"], "Warning");
    condition(&seen.last().unwrap().body, "Decommissioning").clone()
}

#[tokio::test]
async fn a_forged_foreign_stale_or_untrusted_certificate_never_releases_the_stack() {
    // The forgery: the agent's identity writes "not a real certificate" and a status that
    // says Certified.
    let mut forged = certificate("000009-forged", 1, UID, AFTER, &locations());
    forged["spec"]["certificate"] = json!("not a real certificate");
    forged["spec"]["sha256"] = json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        b"not a real certificate"
    )));
    let c = kept(trusted(&[1]), vec![forged]).await;
    assert_eq!(status_of(&c), ("True".into(), "ErasureFailed".into()));
    let m = c["message"].as_str().unwrap();
    assert!(m.contains("000009-forged [certificate_malformed]"), "{m}");
    assert!(m.contains("pvc:hachioji-data"), "{m}");

    // Genuine, but signed by a key the operator never trusted.
    let c = kept(
        trusted(&[1]),
        vec![certificate("c", 7, UID, AFTER, &locations())],
    )
    .await;
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("certificate_untrusted_signer"));
    // No trusted signer at all: said so.
    let c = kept(
        Reply::NotFound,
        vec![certificate("c", 1, UID, AFTER, &locations())],
    )
    .await;
    assert_eq!(status_of(&c), ("True".into(), "NoTrustedSigners".into()));
    // An earlier stack of the same name.
    let c = kept(
        trusted(&[1]),
        vec![certificate(
            "c",
            1,
            "uid-of-an-old-stack",
            AFTER,
            &locations(),
        )],
    )
    .await;
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("certificate_other_stack"));
    // Erased before the stack was deleted.
    let c = kept(
        trusted(&[1]),
        vec![certificate(
            "c",
            1,
            UID,
            "2026-11-30T00:00:00Z",
            &locations(),
        )],
    )
    .await;
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("certificate_before_deletion"));
}

#[tokio::test]
async fn a_retried_decommission_asks_only_for_what_no_certificate_covers() {
    // The first request erased the volumes and the bucket, then failed; the operator
    // deleted it. Its certificate still counts, and the new request lists only the rest.
    let all = locations();
    let done: Vec<String> = all[..3].to_vec();
    let mut script = scale_down_steps();
    script.extend(evidence_steps(
        vec![stack()],
        trusted(&[1]),
        vec![certificate("000004-first", 1, UID, AFTER, &done)],
    ));
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::NotFound,
    ));
    script.push(step("POST", REQUESTS, Reply::Echo(json!({}))));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[7].body["spec"]["targets"], json!(all[3..].to_vec()));
    let c = condition(&seen.last().unwrap().body, "Decommissioning");
    assert!(c["message"].as_str().unwrap().contains(&format!(
        "{} of {} locations left",
        all.len() - 3,
        all.len()
    )));
}

#[tokio::test]
async fn a_failed_erasure_keeps_the_stack_and_says_why() {
    let request = existing_request(ErasurePhase::Failed, true, locations());
    let mut script = scale_down_steps();
    script.extend(evidence_steps(vec![stack()], trusted(&[1]), vec![]));
    script.push(step(
        "GET",
        format!("{REQUESTS}/decommission-hachioji"),
        Reply::Json(serde_json::to_value(&request).unwrap()),
    ));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    assert_eq!(seen[7].body["type"], "Warning");
    let c = condition(&seen.last().unwrap().body, "Decommissioning");
    assert_eq!(status_of(c), ("True".into(), "ErasureFailed".into()));
    let m = c["message"].as_str().unwrap();
    assert!(m.contains("erase_verification_failed"), "{m}");
    assert_eq!(
        seen[7].body["note"].as_str().unwrap(),
        m,
        "the Event says what the condition says"
    );
}

#[tokio::test]
async fn a_location_another_stack_uses_is_never_erased_for_this_one() {
    let mut other = kenko_api::samples::hachioji();
    other.metadata.name = Some("hino".into());
    other.metadata.namespace = Some("hino".into());
    other.metadata.uid = Some("another-uid".into());
    let mut script = scale_down_steps();
    script.push(step(
        "GET",
        "/apis/kenko.io/v1alpha1/healthstacks",
        Reply::Json(json!({
            "apiVersion": "kenko.io/v1alpha1", "kind": "HealthStackList",
            "metadata": {}, "items": [stack(), other],
        })),
    ));
    script.push(step("POST", EVENTS, Reply::Echo(json!({}))));
    script.push(status_step());
    let (result, seen) = run(deleted(ready_stack()), script).await;
    result.unwrap();
    let c = condition(&seen.last().unwrap().body, "Decommissioning");
    assert_eq!(status_of(c), ("True".into(), "LocationShared".into()));
    assert!(c["message"].as_str().unwrap().contains("hino/hino"));
    assert!(
        seen.iter().all(|s| s.path != REQUESTS),
        "nothing is requested"
    );
}

#[test]
fn decommission_states() {
    use kenko_controller::evidence::Coverage;
    use kenko_controller::reconcile::{decommission_state, Decommission};
    let missing = Coverage {
        missing: plan::data_locations(&stack()).unwrap(),
        ..Default::default()
    };
    assert_eq!(
        decommission_state(&missing, None),
        Decommission::AwaitingApproval
    );
    let pending = existing_request(ErasurePhase::Pending, false, locations());
    assert_eq!(
        decommission_state(&missing, Some(&pending)),
        Decommission::AwaitingApproval
    );
    let approved = existing_request(ErasurePhase::Running, true, locations());
    assert_eq!(
        decommission_state(&missing, Some(&approved)),
        Decommission::Erasing(ErasurePhase::Running)
    );
    let blocked = existing_request(ErasurePhase::Blocked, true, locations());
    assert!(matches!(
        decommission_state(&missing, Some(&blocked)),
        Decommission::Blocked(_)
    ));
    // The request says Certified; what its certificates prove decides.
    let certified = existing_request(ErasurePhase::Certified, true, locations());
    assert!(matches!(
        decommission_state(&missing, Some(&certified)),
        Decommission::Incomplete(_)
    ));
    assert!(matches!(
        decommission_state(&Coverage::default(), Some(&certified)),
        Decommission::Certified(_)
    ));
}

#[test]
fn finalizer_patches_test_before_they_change_the_list() {
    use kenko_controller::reconcile::{add_finalizer, remove_finalizer};
    let other = vec!["other.example/keep".to_string()];
    assert_eq!(
        serde_json::to_value(add_finalizer(&other).unwrap()).unwrap(),
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["other.example/keep"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": plan::FINALIZER},
        ])
    );
    assert!(add_finalizer(&[plan::FINALIZER.to_string()]).is_none());
    assert!(remove_finalizer(&other).is_none());
}

#[test]
fn a_storage_class_change_reaches_the_stacks_that_use_it() {
    let mut other = stack();
    other.metadata.name = Some("hino".into());
    other.spec.storage.class = "gp3-osaka".into();
    let refs = kenko_controller::run::stacks_using_class(&[stack(), other], "gp3-tokyo");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "hachioji");
}

#[test]
fn an_event_is_published_once_per_change_even_from_a_stale_cache() {
    let p = kenko_controller::reconcile::Published::default();
    assert!(p.first_time("uid", "Reconcile", "Reconciled", "2/2"));
    assert!(!p.first_time("uid", "Reconcile", "Reconciled", "2/2"));
    assert!(p.first_time("uid", "Reconcile", "ApplyFailed", "x"));
    assert!(
        p.first_time("uid", "Reconcile", "Reconciled", "2/2"),
        "a real change back"
    );
    assert!(p.first_time("uid-2", "Reconcile", "Reconciled", "2/2"));
}

#[test]
fn every_reason_an_operator_acts_on_has_a_runbook() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let mut text = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for r in kenko_api::reasons::reason::PROBLEMS
        .iter()
        .chain(kenko_controller::evidence::REASONS)
    {
        assert!(
            text.contains(&format!("`{r}`")),
            "no runbook explains `{r}`"
        );
    }
}
