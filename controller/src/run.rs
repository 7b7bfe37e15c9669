//! `kenko-controller run`: leader election through a Lease, the HealthStack controller with
//! watches on every child kind (drift triggers a reconcile), per-object backoff with jitter,
//! metrics and probes, and a graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kenko_api::{ErasureCertificate, ErasureRequest, HealthStack, ResidencyPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

use crate::reconcile::{self, Context};
use crate::telemetry::{self, Health, Metrics};

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub metrics_addr: SocketAddr,
    pub lease_namespace: String,
    pub identity: String,
    /// The agent image each stack's intake runs.
    pub agent_image: String,
}

/// Why the controller could not start. `reason()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no Kubernetes cluster is reachable ({context}): {message}")]
    NoCluster { context: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election through Lease {namespace}/kenko-controller failed: {message}")]
    Lease { namespace: String, message: String },
}

impl StartError {
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::NoCluster { .. } => "NoCluster",
            StartError::Listen { .. } => "ListenFailed",
            StartError::Lease { .. } => "LeaseFailed",
        }
    }
}

/// A client for the configured cluster, checked by asking the API server its version (with a
/// deadline), so an unreachable cluster is one clear error at start-up, not a retry loop.
pub async fn connect() -> Result<Client, StartError> {
    // With both aws-lc-rs (AWS SDK) and ring (kube) in the build, rustls needs to be told.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let no_cluster = |context: &str, message: String| StartError::NoCluster {
        context: context.to_string(),
        message,
    };
    let config = kube::Config::infer()
        .await
        .map_err(|e| no_cluster("no kubeconfig or in-cluster configuration", e.to_string()))?;
    let context = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| no_cluster(&context, e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(no_cluster(&context, e.to_string())),
        Err(_) => Err(no_cluster(&context, "no answer within 10 seconds".into())),
    }
}

fn error_policy(stack: Arc<HealthStack>, error: &reconcile::Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(stack = %kube::ResourceExt::name_any(stack.as_ref()), reason = error.reason(), error = %error, "reconcile failed");
    Action::requeue(reconcile::backoff(ctx.metrics.failures(&stack)))
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = connect().await?;
    let metrics = Metrics::default();
    let health = Health::default();
    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.metrics_addr,
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_server = stop_rx.clone();
    let server = tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        async move {
            let _ = stop_server.wait_for(|s| *s).await;
        },
    ));

    // Only the leader reconciles; the others wait, not ready, until they lead.
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "kenko-controller")
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .map_err(|e| StartError::Lease {
            namespace: settings.lease_namespace.clone(),
            message: e.to_string(),
        })?;
    let (mut leading, lease_task) = lease.watch().await;
    tracing::info!(identity = %settings.identity, "waiting to lead");
    tokio::select! {
        r = leading.wait_for(|l| *l) => { r?; }
        _ = shutdown_signal() => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Ok(());
        }
    }
    tracing::info!("leading: starting the HealthStack controller");
    health.ready.store(true, Ordering::Relaxed);

    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: metrics.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "kenko-controller".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        wait: Duration::from_secs(30),
        namespace: settings.lease_namespace.clone(),
        agent_image: settings.agent_image.clone(),
        intake_authority: None,
        published: Default::default(),
    });
    let stacks = Api::<HealthStack>::all(client.clone());
    let cfg = watcher::Config::default();
    // A new account audit (or policy) in the ResidencyPolicy concerns every stack: the
    // agent's audit covers the whole account.
    // So does a change of the trusted signers (a stack waiting for a signer to be trusted is
    // released as soon as it is).
    let (policy_tx, policy_rx) = futures::channel::mpsc::channel::<()>(1);
    let signers_tx = policy_tx.clone();
    let policy_watch = tokio::spawn(
        watcher(Api::<ResidencyPolicy>::all(client.clone()), cfg.clone())
            .touched_objects()
            .for_each(move |r| {
                let mut tx = policy_tx.clone();
                async move {
                    if r.is_ok() {
                        // A full channel already holds a pending "reconcile all".
                        let _ = tx.try_send(());
                    }
                }
            }),
    );
    let signers_watch = tokio::spawn(
        watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &settings.lease_namespace),
            watcher::Config::default().fields(&format!(
                "metadata.name={}",
                kenko_api::TRUSTED_SIGNERS_CONFIGMAP
            )),
        )
        .touched_objects()
        .for_each(move |r| {
            let mut tx = signers_tx.clone();
            async move {
                if r.is_ok() {
                    let _ = tx.try_send(());
                }
            }
        }),
    );
    let controller = Controller::new(stacks, cfg.clone());
    // A StorageClass is not owned by a stack: a change to one (or one made after the stack)
    // concerns the stacks that name it.
    let store = controller.store();
    let controller = controller
        .owns(Api::<Deployment>::all(client.clone()), cfg.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), cfg.clone())
        .owns(Api::<Service>::all(client.clone()), cfg.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), cfg.clone())
        .owns(Api::<ServiceAccount>::all(client.clone()), cfg.clone())
        .owns(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            cfg.clone(),
        )
        .owns(Api::<NetworkPolicy>::all(client.clone()), cfg.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), cfg.clone())
        .owns(Api::<Role>::all(client.clone()), cfg.clone())
        .owns(Api::<RoleBinding>::all(client.clone()), cfg.clone())
        .watches(
            Api::<StorageClass>::all(client.clone()),
            cfg.clone(),
            move |sc: StorageClass| {
                let stacks: Vec<HealthStack> =
                    store.state().iter().map(|s| s.as_ref().clone()).collect();
                stacks_using_class(&stacks, &sc.name_any())
            },
        )
        // A new certificate of a stack being decommissioned: judged at once.
        .watches(
            Api::<ErasureCertificate>::all(client.clone()),
            cfg.clone(),
            |c: ErasureCertificate| {
                let (ns, name) = c.spec.stack.as_deref()?.split_once('/')?;
                Some(ObjectRef::<HealthStack>::new(name).within(ns))
            },
        )
        .watches(
            Api::<ErasureRequest>::all(client.clone()),
            cfg.clone(),
            |r: ErasureRequest| {
                let stack = r.spec.stack.clone()?;
                let ns = r.metadata.namespace.clone()?;
                Some(ObjectRef::<HealthStack>::new(&stack).within(&ns))
            },
        )
        .reconcile_all_on(policy_rx)
        .graceful_shutdown_on(async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                // Losing the lease stops reconciling at once: another replica leads now.
                _ = leading.wait_for(|l| !*l) => {
                    tracing::warn!("lost the lease: stopping");
                }
            }
        })
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        });
    controller.await;
    policy_watch.abort();
    signers_watch.abort();
    health.ready.store(false, Ordering::Relaxed);
    // Every receiver of the lease's channel is gone with the controller: the lease task
    // releases the Lease and ends, so the standby takes over at once, not after it expires.
    release_lease(lease_task).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// The stacks whose spec names StorageClass `class`.
pub fn stacks_using_class(stacks: &[HealthStack], class: &str) -> Vec<ObjectRef<HealthStack>> {
    stacks
        .iter()
        .filter(|s| s.spec.storage.class == class)
        .map(ObjectRef::from_obj)
        .collect()
}

/// Waits (a few seconds at most) for the lease task to release the Lease once its channel's
/// receivers are dropped.
pub async fn release_lease(
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) {
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the lease task failed"),
        Err(_) => tracing::warn!("the lease was not released within 5 s; it expires"),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
