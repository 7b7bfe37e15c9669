//! The agent in the cluster (`kenko-agent run --cluster`): watches ErasureRequests, runs the
//! targets that are its own (volumes and paths on its node; the elected agent takes cloud
//! objects and keys) with the erasure engine, writes per-target progress to the request's
//! status, and publishes each signed certificate as an ErasureCertificate.

pub mod audit;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kenko_api::{
    ErasureCertificate, ErasureCertificateSpec, ErasurePhase, ErasureRequest, TargetResult,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use crate::erase::{self, JobSpec, Places};
use plan::{Gate, Group, Owner};

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
    pub places: Places,
    /// Prefix under which the node's file system is visible (e.g. `/host`), for `pvc:`
    /// volumes with a local or hostPath source.
    pub host_root: String,
    pub organization: String,
}

/// Where a `pvc:` volume lives: its node and its path (local and hostPath volumes only).
async fn resolve_pvc(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, String)>, ClusterError> {
    let Some(pvc) = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(kube_err("read", format!("PersistentVolumeClaim/{name}")))?
    else {
        return Ok(None);
    };
    let Some(volume) = pvc.spec.and_then(|s| s.volume_name) else {
        return Ok(None);
    };
    let Some(pv) = Api::<PersistentVolume>::all(client.clone())
        .get_opt(&volume)
        .await
        .map_err(kube_err("read", format!("PersistentVolume/{volume}")))?
    else {
        return Ok(None);
    };
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .local
        .map(|l| l.path)
        .or(spec.host_path.map(|h| h.path));
    let node = spec.node_affinity.and_then(|a| a.required).and_then(|r| {
        r.node_selector_terms.into_iter().find_map(|t| {
            t.match_expressions?
                .into_iter()
                .find(|e| e.key == "kubernetes.io/hostname")
                .and_then(|e| e.values?.into_iter().next())
        })
    });
    Ok(node.zip(path))
}

/// Reads the request, applies `change` to its status and writes it with the version it read
/// (a concurrent writer, another node's agent, makes this retry instead of overwriting).
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
        status.phase = match status.phase {
            // A decision (refusal) stands; otherwise the targets decide.
            ErasurePhase::Failed if status.reason.is_some() && status.targets.is_empty() => {
                ErasurePhase::Failed
            }
            _ => plan::overall(&current.spec.targets, &status.targets),
        };
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

/// Handles one request: runs what is this agent's, once approved by a second person.
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
    // Mine, by group, with what the engine erases for each (a volume becomes its path).
    let leader = w.cloud_leader.load(Ordering::SeqCst);
    let mut groups: BTreeMap<Group, Vec<(String, String)>> = BTreeMap::new();
    for t in request.spec.targets.iter().filter(|t| !done.contains(t)) {
        let (node_of_pvc, engine_target) = match t.strip_prefix("pvc:") {
            Some(pvc) => match resolve_pvc(&w.client, &ns, pvc).await? {
                Some((node, path)) => (Some(node), format!("dir:{}{}", w.host_root, path)),
                None => (None, t.clone()),
            },
            None => (None, t.clone()),
        };
        let mine = match plan::owner(&request, t, node_of_pvc.as_deref()) {
            Some(Owner::Node(n)) => n == w.node,
            Some(Owner::Cloud) => leader,
            None => false,
        };
        if mine {
            groups
                .entry(plan::group(t))
                .or_default()
                .push((t.clone(), engine_target));
        }
    }
    for (group, targets) in groups {
        let node = w.node.clone();
        update_status(&api, &name, |_, s| {
            for (t, _) in &targets {
                set_result(
                    s,
                    TargetResult {
                        target: t.clone(),
                        phase: ErasurePhase::Running,
                        node: Some(node.clone()),
                        ..Default::default()
                    },
                );
            }
        })
        .await?;
        let spec = JobSpec {
            job_id: plan::job_id(&request, group, &w.node),
            targets: targets.iter().map(|(_, e)| e.clone()).collect(),
            method: group.method(&request.spec.method),
            pattern: erase::Pattern::Random,
            verify: if request.spec.verification == "sample" {
                erase::VerifyMode::Sample
            } else {
                erase::VerifyMode::Full
            },
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
        match outcome {
            Ok(o) => {
                let bytes = std::fs::read(&o.certificate_path)
                    .map_err(|e| ClusterError::Task(format!("reading the certificate: {e}")))?;
                let verified = kenko_cert::verify(&bytes, None)
                    .map_err(|e| ClusterError::Task(format!("the new certificate: {e}")))?;
                let file_name = o
                    .certificate_path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let cert_name = plan::certificate_resource_name(&file_name);
                let blocked: usize = o.certificate.targets.iter().map(|t| t.blocked.len()).sum();
                let resource = ErasureCertificate::new(
                    &cert_name,
                    ErasureCertificateSpec {
                        job_id: o.certificate.job_id.clone(),
                        request: format!("{ns}/{name}"),
                        stack: request.spec.stack.as_ref().map(|s| format!("{ns}/{s}")),
                        targets: targets.iter().map(|(t, _)| t.clone()).collect(),
                        target_count: targets.len() as i64,
                        blocked_count: blocked as i64,
                        signer: verified.signer.clone(),
                        sha256: verified.sha256.clone(),
                        issued_at: o.certificate.finished_at.clone(),
                        certificate: String::from_utf8_lossy(&bytes).into_owned(),
                    },
                );
                let certs = Api::<ErasureCertificate>::all(w.client.clone());
                match certs.create(&PostParams::default(), &resource).await {
                    Ok(_) => {}
                    // Published by an earlier run that stopped before the status: immutable, so
                    // the existing one is the same certificate.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        return Err(kube_err(
                            "create",
                            format!("ErasureCertificate/{cert_name}"),
                        )(e))
                    }
                }
                let by_spec: BTreeMap<&str, &kenko_cert::Target> = o
                    .certificate
                    .targets
                    .iter()
                    .map(|t| (t.spec.as_str(), t))
                    .collect();
                update_status(&api, &name, |_, s| {
                    for (t, engine) in &targets {
                        let ct = by_spec.get(engine.as_str());
                        let blocked = ct.is_some_and(|c| !c.blocked.is_empty());
                        set_result(
                            s,
                            TargetResult {
                                target: t.clone(),
                                phase: if blocked {
                                    ErasurePhase::Blocked
                                } else {
                                    ErasurePhase::Certified
                                },
                                node: Some(node.clone()),
                                bytes_erased: ct.map_or(0, |c| c.bytes_erased as i64),
                                objects_erased: ct.map_or(0, |c| c.objects_erased as i64),
                                message: blocked.then(|| {
                                    "some items are kept by Object Lock or Vault Lock; see the certificate".into()
                                }),
                            },
                        );
                    }
                    if !s.certificates.contains(&cert_name) {
                        s.certificates.push(cert_name.clone());
                    }
                })
                .await?;
            }
            Err(e) => {
                let reason = e.reason();
                let message = e.to_string();
                tracing::warn!(request = %name, group = group.label(), reason, "erasure failed");
                update_status(&api, &name, |_, s| {
                    for (t, _) in &targets {
                        set_result(
                            s,
                            TargetResult {
                                target: t.clone(),
                                phase: ErasurePhase::Failed,
                                node: Some(node.clone()),
                                message: Some(format!("[{reason}] {message}")),
                                ..Default::default()
                            },
                        );
                    }
                    s.reason = Some(reason.into());
                    s.message = Some(message.clone());
                })
                .await?;
            }
        }
    }
    Ok(Action::requeue(std::time::Duration::from_secs(60)))
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
