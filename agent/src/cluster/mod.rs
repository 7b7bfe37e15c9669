//! The agent in the cluster (`kenko-agent run --cluster`): watches ErasureRequests, erases
//! the targets that are its own (volumes and paths on its node; the elected agent takes cloud
//! objects, keys and detached EBS volumes), each target as its own job with the erasure
//! engine, writes each target's progress, reason and one-line message to the request's
//! status, and publishes each signed certificate as an ErasureCertificate labelled with the
//! stack's uid.

pub mod access;
pub mod audit;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kenko_api::{
    ErasureCertificate, ErasureCertificateSpec, ErasurePhase, ErasureRequest, Target, TargetResult,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use crate::erase::{self, EraseContext, JobSpec};
use plan::{Gate, Owner, Resolved, VolumeFacts};

/// Why handling a request failed. `reason()` is stable (Events, metrics, status).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("the erasure task stopped: {0}")]
    Task(String),
}

impl ClusterError {
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::Kube { .. } => "cluster_api_failed",
            ClusterError::Task(_) => "cluster_task_failed",
        }
    }
}

fn kube_err(
    action: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(kube::Error) -> ClusterError {
    let object = object.into();
    move |source| ClusterError::Kube {
        action,
        object,
        source,
    }
}

/// One agent's view of the cluster.
pub struct Worker {
    pub client: kube::Client,
    pub node: String,
    /// Set while this agent holds the `kenko-agent-cloud` Lease.
    pub cloud_leader: Arc<AtomicBool>,
    pub places: EraseContext,
    /// Prefix under which the node's file system is visible (e.g. `/host`), for `pvc:`
    /// volumes with a local or hostPath source.
    pub host_root: String,
    pub organization: String,
}

/// What the cluster says about a `pvc:` target: its claim and the volume bound to it.
async fn volume_facts(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<VolumeFacts, ClusterError> {
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(kube_err("read", format!("PersistentVolumeClaim/{name}")))?;
    let volume = match claim
        .as_ref()
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
    {
        Some(v) => Api::<PersistentVolume>::all(client.clone())
            .get_opt(&v)
            .await
            .map_err(kube_err("read", format!("PersistentVolume/{v}")))?,
        None => None,
    };
    Ok(VolumeFacts { claim, volume })
}

/// Reads the request, applies `change` to its status and writes it with the version it read
/// (a concurrent writer, another node's agent, makes this retry instead of overwriting). The
/// phase, reason and message follow from the targets, unless a decision (a refused
/// self-approval) stands.
async fn update_status(
    api: &Api<ErasureRequest>,
    name: &str,
    change: impl Fn(&ErasureRequest, &mut kenko_api::ErasureRequestStatus),
) -> Result<(), ClusterError> {
    for _ in 0..8 {
        let current = api
            .get(name)
            .await
            .map_err(kube_err("read", format!("ErasureRequest/{name}")))?;
        let mut status = current.status.clone().unwrap_or_default();
        change(&current, &mut status);
        let decided = status.phase == ErasurePhase::Failed
            && status.reason.is_some()
            && status.targets.is_empty();
        if !decided {
            status.phase = plan::overall(&current.spec.targets, &status.targets);
            match plan::summary(&current.spec.targets, &status.targets) {
                Some((reason, message)) => {
                    status.reason = Some(reason);
                    status.message = Some(message);
                }
                None => {
                    status.reason = None;
                    status.message = None;
                }
            }
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": current.resource_version()},
            "status": status,
        });
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(kube_err("status", format!("ErasureRequest/{name}"))(e)),
        }
    }
    Err(ClusterError::Task(format!(
        "ErasureRequest/{name}: status kept changing under concurrent writers"
    )))
}

fn set_result(status: &mut kenko_api::ErasureRequestStatus, result: TargetResult) {
    match status
        .targets
        .iter_mut()
        .find(|r| r.target == result.target)
    {
        Some(r) => *r = result,
        None => status.targets.push(result),
    }
    status.targets.sort_by(|a, b| a.target.cmp(&b.target));
}

/// Handles one request: erases the targets that are this agent's, each as its own job, once
/// approved by a second person. A target no agent can erase is reported Failed by the cloud
/// agent (so once); a failed target never stops the others.
pub async fn handle(request: Arc<ErasureRequest>, w: Arc<Worker>) -> Result<Action, ClusterError> {
    let ns = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let api = Api::<ErasureRequest>::namespaced(w.client.clone(), &ns);
    match plan::gate(&request) {
        Gate::AwaitingApproval | Gate::Finished => return Ok(Action::await_change()),
        Gate::SelfApproved => {
            tracing::warn!(request = %name, "refusing a self-approved erasure request");
            update_status(&api, &name, |_, s| {
                s.phase = ErasurePhase::Failed;
                s.targets.clear();
                s.reason = Some("SelfApprovalRefused".into());
                s.message = Some(
                    "approved by the person who requested it; a second person must approve".into(),
                );
            })
            .await?;
            return Ok(Action::await_change());
        }
        Gate::Run => {}
    }
    let done: Vec<String> = request
        .status
        .iter()
        .flat_map(|s| s.targets.iter())
        .filter(|r| {
            matches!(
                r.phase,
                ErasurePhase::Certified | ErasurePhase::Failed | ErasurePhase::Blocked
            )
        })
        .map(|r| r.target.clone())
        .collect();
    let leader = w.cloud_leader.load(Ordering::SeqCst);
    for t in request.spec.targets.iter().filter(|t| !done.contains(t)) {
        let resolved = match t.parse::<Target>() {
            Err(e) => Resolved::Refuse {
                reason: e.reason(),
                message: e.to_string(),
            },
            Ok(Target::Pvc { name: pvc }) => plan::resolve_volume(
                &pvc,
                &volume_facts(&w.client, &ns, &pvc).await?,
                &w.host_root,
                &w.places.aws.region,
            ),
            Ok(target) => plan::resolve(&request, &target),
        };
        match resolved {
            Resolved::Refuse { reason, message } if leader => {
                tracing::warn!(request = %name, target = %t, reason, "refusing an erasure target");
                let node = w.node.clone();
                update_status(&api, &name, |_, s| {
                    set_result(
                        s,
                        TargetResult {
                            target: t.clone(),
                            phase: ErasurePhase::Failed,
                            node: Some(node.clone()),
                            reason: Some(reason.into()),
                            message: Some(kenko_api::status_message(&message)),
                            ..Default::default()
                        },
                    );
                })
                .await?;
            }
            Resolved::Refuse { .. } => {}
            Resolved::Erase { owner, engine } => {
                let mine = match owner {
                    Owner::Node(n) => n == w.node,
                    Owner::Cloud => leader,
                };
                if mine {
                    erase_target(&w, &request, &api, t, engine).await?;
                }
            }
        }
    }
    Ok(Action::requeue(std::time::Duration::from_secs(60)))
}

/// Erases one target of a request as its own job (one certificate), and reports it.
async fn erase_target(
    w: &Worker,
    request: &ErasureRequest,
    api: &Api<ErasureRequest>,
    target: &str,
    engine: Target,
) -> Result<(), ClusterError> {
    let ns = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let node = w.node.clone();
    update_status(api, &name, |_, s| {
        set_result(
            s,
            TargetResult {
                target: target.to_string(),
                phase: ErasurePhase::Running,
                node: Some(node.clone()),
                ..Default::default()
            },
        );
    })
    .await?;
    let class = engine.class();
    let stack = match engine {
        Target::BackupVault { .. } => plan::stack_selector(request),
        _ => None,
    };
    let authority = kenko_cert::Authority {
        request: format!("{ns}/{name}"),
        request_uid: request.metadata.uid.clone().unwrap_or_default(),
        requested_by: request.spec.requested_by.clone(),
        approved_by: request.spec.approved_by.clone().unwrap_or_default(),
        stack: request.spec.stack.as_ref().map(|s| kenko_cert::StackRef {
            namespace: ns.clone(),
            name: s.clone(),
            uid: request.spec.stack_uid.clone().unwrap_or_default(),
        }),
    };
    let spec = JobSpec {
        job_id: plan::job_id(request, target),
        targets: vec![engine],
        method: request.spec.method.for_class(class),
        pattern: erase::Pattern::Random,
        verify: request.spec.verification,
        location: Some(target.to_string()),
        stack,
        authority: Some(authority),
        sanitized_by: kenko_cert::Person {
            name: request.spec.requested_by.clone(),
            title: "requester".into(),
            organization: w.organization.clone(),
            location: format!("node {}", w.node),
            phone: String::new(),
        },
        classification: "personal data (vaccination records)".into(),
        media_destination: "reuse or release to the cloud provider after erasure".into(),
        notes: format!(
            "ErasureRequest {ns}/{name}, approved by {}",
            request.spec.approved_by.clone().unwrap_or_default()
        ),
        media: Default::default(),
        checkpoint_bytes: 1 << 30,
        checkpoint_interval: std::time::Duration::from_secs(5),
    };
    let places = w.places.clone();
    let outcome = tokio::task::spawn_blocking(move || erase::run(&spec, &places))
        .await
        .map_err(|e| ClusterError::Task(e.to_string()))?;
    let published = match outcome {
        Ok(o) => publish(w, request, target, &o).await,
        Err(e) => Err((e.reason(), e.to_string())),
    };
    match published {
        Ok((cert_name, result)) => {
            update_status(api, &name, |_, s| {
                set_result(s, result.clone());
                if !s.certificates.contains(&cert_name) {
                    s.certificates.push(cert_name.clone());
                }
            })
            .await
        }
        Err((reason, message)) => {
            // The whole error in the log; one line for people in the status.
            tracing::warn!(request = %name, target, reason, error = %message, "erasure failed");
            update_status(api, &name, |_, s| {
                set_result(
                    s,
                    TargetResult {
                        target: target.to_string(),
                        phase: ErasurePhase::Failed,
                        node: Some(node.clone()),
                        reason: Some(reason.into()),
                        message: Some(kenko_api::status_message(&message)),
                        ..Default::default()
                    },
                );
            })
            .await
        }
    }
}

/// Publishes a finished job's certificate as an ErasureCertificate; returns its name and the
/// target's result, or the reason and message of why it could not be published.
async fn publish(
    w: &Worker,
    request: &ErasureRequest,
    target: &str,
    o: &erase::Outcome,
) -> Result<(String, TargetResult), (&'static str, String)> {
    let ns = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let bytes = std::fs::read(&o.certificate_path).map_err(|e| {
        (
            "cluster_task_failed",
            format!("reading the certificate: {e}"),
        )
    })?;
    let verified = kenko_cert::verify(&bytes, None)
        .map_err(|e| (e.reason(), format!("the new certificate: {e}")))?;
    if bytes.len() > kenko_api::MAX_CERTIFICATE_BYTES {
        return Err((
            "certificate_too_large",
            format!(
                "the certificate is {} bytes, more than an ErasureCertificate holds ({}); it is kept at {}",
                bytes.len(),
                kenko_api::MAX_CERTIFICATE_BYTES,
                o.certificate_path.display()
            ),
        ));
    }
    let file_name = o
        .certificate_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let cert_name = plan::certificate_resource_name(&file_name);
    let blocked: usize = o.certificate.targets.iter().map(|t| t.blocked.len()).sum();
    let mut resource = ErasureCertificate::new(
        &cert_name,
        ErasureCertificateSpec {
            job_id: o.certificate.job_id.clone(),
            request: format!("{ns}/{name}"),
            stack: request.spec.stack.as_ref().map(|s| format!("{ns}/{s}")),
            targets: vec![target.to_string()],
            target_count: 1,
            blocked_count: blocked as i64,
            signer: verified.signer.clone(),
            sha256: verified.sha256.clone(),
            issued_at: o.certificate.finished_at.clone(),
            certificate: String::from_utf8_lossy(&bytes).into_owned(),
        },
    );
    let mut labels = BTreeMap::new();
    if let Some(uid) = &request.spec.stack_uid {
        labels.insert(kenko_api::STACK_UID_LABEL.to_string(), uid.clone());
    }
    if let Some(stack) = &request.spec.stack {
        labels.insert("kenko.io/stack".to_string(), stack.clone());
    }
    resource.metadata.labels = Some(labels);
    let certs = Api::<ErasureCertificate>::all(w.client.clone());
    match certs.create(&PostParams::default(), &resource).await {
        Ok(_) => {}
        // Published by an earlier run that stopped before the status: immutable, and the
        // name holds the signer's sequence number and the job, so it is this certificate.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            tracing::warn!(request = %name, certificate = %cert_name, error = %e, "publishing the certificate failed");
            return Err((
                "cluster_api_failed",
                format!("creating ErasureCertificate/{cert_name}: {e}"),
            ));
        }
    }
    let ct = o.certificate.targets.first();
    let is_blocked = blocked > 0;
    Ok((
        cert_name,
        TargetResult {
            target: target.to_string(),
            phase: if is_blocked {
                ErasurePhase::Blocked
            } else {
                ErasurePhase::Certified
            },
            node: Some(w.node.clone()),
            bytes_erased: ct.map_or(0, |c| c.bytes_erased as i64),
            objects_erased: ct.map_or(0, |c| c.objects_erased as i64),
            reason: is_blocked.then(|| "erase_blocked".to_string()),
            message: is_blocked.then(|| {
                kenko_api::status_message(&format!(
                    "{blocked} item(s) kept by Object Lock or Vault Lock, the first until {}; see the certificate",
                    ct.and_then(|c| c.blocked.first())
                        .and_then(|b| b.until.clone())
                        .unwrap_or_else(|| "an unknown date".into())
                ))
            }),
        },
    ))
}

fn error_policy(request: Arc<ErasureRequest>, error: &ClusterError, _w: Arc<Worker>) -> Action {
    tracing::warn!(request = %request.name_any(), reason = error.reason(), error = %error, "erasure request handling failed");
    Action::requeue(std::time::Duration::from_secs(30))
}

/// Runs the in-cluster worker until `stop` resolves: the cloud Lease in `lease_namespace`
/// (the holder takes cloud objects and keys), and the ErasureRequest controller.
pub async fn run(
    worker: Worker,
    lease_namespace: String,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ClusterError> {
    use futures::StreamExt;
    let client = worker.client.clone();
    let leader = worker.cloud_leader.clone();
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "kenko-agent-cloud")
        .with_namespace(&lease_namespace)
        .with_identity(&worker.node)
        .with_duration(30)
        .with_grace(10)
        .build()
        .await
        .map_err(|e| ClusterError::Task(format!("the kenko-agent-cloud Lease: {e}")))?;
    let (mut leading, lease_task) = lease.watch().await;
    let flag = leader.clone();
    let watch_lease = tokio::spawn(async move {
        loop {
            flag.store(*leading.borrow_and_update(), Ordering::SeqCst);
            if leading.changed().await.is_err() {
                flag.store(false, Ordering::SeqCst);
                return;
            }
        }
    });
    let requests = Api::<ErasureRequest>::all(client);
    kube::runtime::Controller::new(requests, kube::runtime::watcher::Config::default())
        .graceful_shutdown_on(stop)
        .run(handle, error_policy, Arc::new(worker))
        .for_each(|_| async {})
        .await;
    watch_lease.abort();
    lease_task.abort();
    leader.store(false, Ordering::SeqCst);
    Ok(())
}
