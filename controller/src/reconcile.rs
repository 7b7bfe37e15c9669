//! The HealthStack reconciler: reads the policy and the StorageClass, applies the planned
//! children with server-side apply (one field manager, forced, so drift is corrected every
//! pass), writes the conditions, and on deletion decommissions the stack: scale to zero, an
//! ErasureRequest listing every data location, and the finalizer held until certificates
//! cover all of them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kenko_api::reasons::{condition, reason};
use kenko_api::{
    AccountAudit, ErasureCertificate, ErasurePhase, ErasureRequest, ErasureRequestSpec,
    HealthStack, ResidencyPolicy, ResidencyPolicySpec,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::plan::{self, Child, Residency, FINALIZER, MANAGER};
use crate::telemetry::Metrics;

/// Why a reconcile failed. `reason()` is the metric label and Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("the object has no namespace or name")]
    Unnamed,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { action, .. } => match *action {
                "apply" => "ApplyFailed",
                "status" => "StatusFailed",
                "finalizer" => "FinalizerFailed",
                "erasure" => "ErasureRequestFailed",
                _ => "ApiFailed",
            },
            Error::Unnamed => "Unnamed",
        }
    }
}

fn kube_err(action: &'static str, object: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let object = object.into();
    move |source| Error::Kube {
        action,
        object,
        source,
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// Requeue after this when waiting (erasure, pods): jittered per object.
    pub wait: Duration,
}

/// Name of the policy the controller reads (cluster-scoped); defaults apply without one.
pub const POLICY: &str = "default";

pub fn erasure_request_name(stack: &HealthStack) -> String {
    format!("decommission-{}", stack.name_any())
}

async fn apply<K>(api: Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(kube_err("apply", name))
}

/// Applies one child; returns the app Deployment's available replicas when it is that.
async fn apply_child(client: &kube::Client, ns: &str, child: &Child) -> Result<Option<i32>, Error> {
    let c = client.clone();
    match child {
        Child::ServiceAccount(o) => apply(Api::<ServiceAccount>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::Role(o) => apply(Api::<Role>::namespaced(c, ns), o).await.map(|_| None),
        Child::RoleBinding(o) => apply(Api::<RoleBinding>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::ConfigMap(o) => apply(Api::<ConfigMap>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::PersistentVolumeClaim(o) => {
            apply(Api::<PersistentVolumeClaim>::namespaced(c, ns), o)
                .await
                .map(|_| None)
        }
        Child::StatefulSet(o) => apply(Api::<StatefulSet>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::Service(o) => apply(Api::<Service>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::Deployment(o) => {
            let d = apply(Api::<Deployment>::namespaced(c, ns), o).await?;
            Ok(Some(
                d.status.and_then(|s| s.available_replicas).unwrap_or(0),
            ))
        }
        Child::NetworkPolicy(o) => apply(Api::<NetworkPolicy>::namespaced(c, ns), o)
            .await
            .map(|_| None),
        Child::PodDisruptionBudget(o) => apply(Api::<PodDisruptionBudget>::namespaced(c, ns), o)
            .await
            .map(|_| None),
    }
}

/// The cluster's policy (the default one when none exists) and the last account audit the
/// agent reported in its status.
async fn policy(
    client: &kube::Client,
) -> Result<(ResidencyPolicySpec, Option<AccountAudit>), Error> {
    let api = Api::<ResidencyPolicy>::all(client.clone());
    Ok(api
        .get_opt(POLICY)
        .await
        .map_err(kube_err("read", format!("ResidencyPolicy/{POLICY}")))?
        .map(|p| (p.spec, p.status.and_then(|s| s.audit)))
        .unwrap_or_default())
}

async fn write_status(
    api: &Api<HealthStack>,
    stack: &HealthStack,
    conditions: Vec<Condition>,
    erasure_request: Option<String>,
) -> Result<(), Error> {
    let status = serde_json::json!({
        "status": {
            "observedGeneration": stack.metadata.generation,
            "conditions": conditions,
            "erasureRequest": erasure_request,
        }
    });
    api.patch_status(
        &stack.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map_err(kube_err(
        "status",
        format!("HealthStack/{}", stack.name_any()),
    ))?;
    Ok(())
}

async fn event(
    ctx: &Context,
    stack: &HealthStack,
    type_: EventType,
    reason: &str,
    note: String,
    action: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    // An Event that cannot be written must not stop the reconcile; it is logged instead.
    if let Err(e) = ctx.recorder.publish(&ev, &stack.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an Event");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn reason_of(conditions: &[Condition], type_: &str) -> Option<String> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| format!("{}/{}", c.status, c.reason))
}

/// One reconcile of one stack.
pub async fn reconcile(stack: Arc<HealthStack>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&stack, &ctx).await;
    ctx.metrics.observe(&stack, &result, started.elapsed());
    result
}

async fn reconcile_inner(stack: &HealthStack, ctx: &Context) -> Result<Action, Error> {
    let ns = stack.namespace().ok_or(Error::Unnamed)?;
    let name = stack.name_any();
    let stacks = Api::<HealthStack>::namespaced(ctx.client.clone(), &ns);
    if stack.metadata.deletion_timestamp.is_some() {
        return decommission(stack, ctx, &stacks, &ns).await;
    }
    // The finalizer first: a stack must never go without its erasure.
    if !stack.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = stack.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        stacks
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("finalizer", format!("HealthStack/{name}")))?;
    }
    let (policy, audit) = policy(&ctx.client).await?;
    let class = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(&stack.spec.storage.class)
        .await
        .map_err(kube_err(
            "read",
            format!("StorageClass/{}", stack.spec.storage.class),
        ))?;
    let verdict = plan::residency(stack, &policy, class.as_ref());
    let mut observed = plan::Observed {
        audit,
        ..Default::default()
    };
    for child in plan::children(stack, &verdict) {
        match apply_child(&ctx.client, &ns, &child).await {
            Ok(Some(available)) => observed.app_available = available,
            Ok(None) => {}
            Err(e) => {
                // The first failure stops the pass (later children may depend on it) and is
                // reported as Degraded; the error policy retries with backoff.
                observed.apply_error = Some(format!("{}: {e}", child.id()));
                let conditions = plan::conditions(stack, &verdict, &observed, &now());
                write_status(&stacks, stack, conditions, None).await?;
                event(
                    ctx,
                    stack,
                    EventType::Warning,
                    reason::APPLY_FAILED,
                    format!("{}: {e}", child.id()),
                    "Apply",
                )
                .await;
                return Err(e);
            }
        }
    }
    let conditions = plan::conditions(stack, &verdict, &observed, &now());
    let previous = stack
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = |t: &str| reason_of(&previous, t) != reason_of(&conditions, t);
    if changed(condition::RESIDENCY_COMPLIANT) {
        let why = match &verdict {
            Residency::Violation { reason, message } => Some((*reason, message.clone())),
            Residency::Compliant => plan::audit_verdict(observed.audit.as_ref()),
        };
        if let Some((reason, message)) = why {
            event(
                ctx,
                stack,
                EventType::Warning,
                reason,
                message,
                "CheckResidency",
            )
            .await;
        }
    }
    // A residency violation has its own Event above; Ready only repeats it.
    if changed(condition::READY) && verdict == Residency::Compliant {
        let ready = conditions
            .iter()
            .find(|c| c.type_ == condition::READY)
            .expect("planned");
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        if ready.reason != reason::APPLYING {
            event(
                ctx,
                stack,
                type_,
                &ready.reason.clone(),
                ready.message.clone(),
                "Reconcile",
            )
            .await;
        }
    }
    let ready = conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    ctx.metrics.set_conditions(stack, &conditions);
    write_status(&stacks, stack, conditions, None).await?;
    Ok(
        if ready || stack.spec.suspend || verdict != Residency::Compliant {
            Action::requeue(Duration::from_secs(300))
        } else {
            Action::requeue(ctx.wait)
        },
    )
}

/// Where a deleted stack's decommissioning stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decommission {
    AwaitingApproval,
    Erasing(ErasurePhase),
    Failed(String),
    Blocked(String),
    /// Every location is covered by certificates: the finalizer may go.
    Certified(Vec<String>),
    /// Certified, but the certificates do not cover every location.
    Incomplete(Vec<String>),
}

/// Pure: the decommissioning state from the request and the certificates it names.
pub fn decommission_state(
    locations: &[String],
    request: &ErasureRequest,
    certificates: &[ErasureCertificate],
) -> Decommission {
    let status = request.status.clone().unwrap_or_default();
    let detail = || {
        format!(
            "{}{}",
            status
                .reason
                .clone()
                .map(|r| format!("[{r}] "))
                .unwrap_or_default(),
            status.message.clone().unwrap_or_default()
        )
    };
    match status.phase {
        ErasurePhase::Pending if request.spec.approved_by.is_none() => {
            Decommission::AwaitingApproval
        }
        ErasurePhase::Failed => Decommission::Failed(detail()),
        ErasurePhase::Blocked => Decommission::Blocked(detail()),
        ErasurePhase::Certified => {
            let covered: Vec<&String> = certificates
                .iter()
                .filter(|c| c.spec.blocked_count == 0)
                .flat_map(|c| c.spec.targets.iter())
                .collect();
            let missing: Vec<String> = locations
                .iter()
                .filter(|l| !covered.contains(l))
                .cloned()
                .collect();
            if missing.is_empty() {
                Decommission::Certified(certificates.iter().map(|c| c.name_any()).collect())
            } else {
                Decommission::Incomplete(missing)
            }
        }
        phase => Decommission::Erasing(phase),
    }
}

async fn decommission(
    stack: &HealthStack,
    ctx: &Context,
    stacks: &Api<HealthStack>,
    ns: &str,
) -> Result<Action, Error> {
    let name = stack.name_any();
    if !stack.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    // 1. No more writes: the app and the database scale to zero.
    let mut stopped = stack.clone();
    stopped.spec.suspend = true;
    for child in plan::children(&stopped, &Residency::Compliant) {
        if matches!(child, Child::Deployment(_) | Child::StatefulSet(_)) {
            apply_child(&ctx.client, ns, &child).await?;
        }
    }
    // 2. The ErasureRequest listing every data location.
    let locations = plan::data_locations(stack);
    let requests = Api::<ErasureRequest>::namespaced(ctx.client.clone(), ns);
    let er_name = erasure_request_name(stack);
    let request = match requests
        .get_opt(&er_name)
        .await
        .map_err(kube_err("erasure", format!("ErasureRequest/{er_name}")))?
    {
        Some(r) => r,
        None => {
            let mut r = ErasureRequest::new(
                &er_name,
                ErasureRequestSpec {
                    targets: locations.clone(),
                    method: "clear".into(),
                    verification: "full".into(),
                    requested_by: format!("system:serviceaccount:kenko-system:{MANAGER}"),
                    approved_by: None,
                    stack: Some(name.clone()),
                },
            );
            r.metadata.labels = Some([("kenko.io/stack".to_string(), name.clone())].into());
            let created = requests
                .create(&PostParams::default(), &r)
                .await
                .map_err(kube_err("erasure", format!("ErasureRequest/{er_name}")))?;
            created
        }
    };
    // 3. The certificates it names.
    let certs_api = Api::<ErasureCertificate>::all(ctx.client.clone());
    let mut certificates = Vec::new();
    for c in request.status.iter().flat_map(|s| s.certificates.iter()) {
        if let Some(cert) = certs_api
            .get_opt(c)
            .await
            .map_err(kube_err("read", format!("ErasureCertificate/{c}")))?
        {
            certificates.push(cert);
        }
    }
    let state = decommission_state(&locations, &request, &certificates);
    let (status, why, message) = match &state {
        Decommission::AwaitingApproval => (
            true,
            reason::AWAITING_APPROVAL,
            format!("ErasureRequest {er_name} waits for approval by a second person"),
        ),
        Decommission::Erasing(p) => (
            true,
            reason::ERASING,
            format!("ErasureRequest {er_name} is {}", p.as_str()),
        ),
        Decommission::Failed(d) => (
            true,
            reason::ERASURE_FAILED,
            format!("ErasureRequest {er_name} failed: {d}; the stack is kept"),
        ),
        Decommission::Blocked(d) => (
            true,
            reason::ERASURE_BLOCKED,
            format!("ErasureRequest {er_name} is blocked: {d}; the stack is kept"),
        ),
        Decommission::Incomplete(missing) => (
            true,
            reason::ERASURE_FAILED,
            format!(
                "the certificates do not cover {}; the stack is kept",
                missing.join(", ")
            ),
        ),
        Decommission::Certified(names) => (
            true,
            reason::CERTIFIED,
            format!("every location certified by {}", names.join(", ")),
        ),
    };
    let previous = stack
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != condition::DECOMMISSIONING && c.type_ != condition::READY)
        .cloned()
        .collect();
    let t = now();
    conditions.push(plan::condition(
        &previous,
        condition::READY,
        false,
        why,
        "the stack is being decommissioned".into(),
        stack.metadata.generation,
        &t,
    ));
    conditions.push(plan::condition(
        &previous,
        condition::DECOMMISSIONING,
        status,
        why,
        message.clone(),
        stack.metadata.generation,
        &t,
    ));
    if reason_of(&previous, condition::DECOMMISSIONING)
        != reason_of(&conditions, condition::DECOMMISSIONING)
    {
        let type_ = match state {
            Decommission::Failed(_) | Decommission::Blocked(_) | Decommission::Incomplete(_) => {
                EventType::Warning
            }
            _ => EventType::Normal,
        };
        event(ctx, stack, type_, why, message, "Decommission").await;
    }
    ctx.metrics.set_conditions(stack, &conditions);
    write_status(stacks, stack, conditions, Some(er_name)).await?;
    if let Decommission::Certified(_) = state {
        // 4. The rest goes: the database's volume (not owned by the stack: the StatefulSet
        // made it), then the finalizer; owned children follow by garbage collection.
        let pvcs = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns);
        let db_pvc = plan::names(stack).db_pvc;
        if stack.spec.database.managed.is_some() {
            match pvcs.delete(&db_pvc, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(kube_err(
                        "delete",
                        format!("PersistentVolumeClaim/{db_pvc}"),
                    )(e))
                }
            }
        }
        let finalizers: Vec<String> = stack
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        stacks
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("finalizer", format!("HealthStack/{name}")))?;
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(ctx.wait))
}

/// Per-object exponential backoff with jitter: 5 s doubling to 5 min, ±20%.
pub fn backoff(failures: u32) -> Duration {
    let base = 5u64.saturating_mul(1 << failures.min(6)).min(300);
    let jitter = rand::random::<f64>() * 0.4 + 0.8;
    Duration::from_secs_f64(base as f64 * jitter)
}
