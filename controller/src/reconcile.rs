//! The HealthStack reconciler: reads the policy and the StorageClass, applies the planned
//! children with server-side apply (one field manager, forced, so drift is corrected every
//! pass), writes the conditions, and on deletion decommissions the stack: scale to zero, an
//! ErasureRequest listing every data location, and the finalizer held until certificates
//! cover all of them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kenko_api::reasons::{condition, reason};
use kenko_api::{
    AccountAudit, ErasureCertificate, ErasureMethod, ErasurePhase, ErasureRequest,
    ErasureRequestSpec, HealthStack, ResidencyPolicy, ResidencyPolicySpec, Target, VerifyMode,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::evidence::{self, Coverage, StackId, TrustedSigners};
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
    /// The controller's namespace, where the trusted signers' ConfigMap lives.
    pub namespace: String,
    /// The agent image each stack's intake runs (`KENKO_AGENT_IMAGE`, set by the manifests'
    /// kustomization from the agent DaemonSet's image).
    pub agent_image: String,
    /// Where to ask every stack's intake for its status instead of its Service (tests).
    pub intake_authority: Option<String>,
    /// The last Event published per stack and condition, so a reconcile that starts from a
    /// cached stack whose new status has not arrived yet does not publish it twice.
    pub published: Published,
}

/// The last Event published per (stack uid, topic): (reason, message).
#[derive(Debug, Default)]
pub struct Published(std::sync::Mutex<std::collections::HashMap<(String, String), String>>);

impl Published {
    /// Whether this Event is new for the stack and topic (and remembers it if so).
    pub fn first_time(&self, uid: &str, topic: &str, reason: &str, message: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (uid.to_string(), topic.to_string());
        let value = format!("{reason}\u{1f}{message}");
        if m.get(&key) == Some(&value) {
            return false;
        }
        m.insert(key, value);
        true
    }

    /// Forgets a stack (it is gone).
    pub fn forget(&self, uid: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(u, _), _| u != uid);
    }
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

/// Creates a generated Secret unless it exists. The answer to a create of an existing object
/// is 409 and carries nothing of it: the controller never reads a Secret, and a value once
/// generated (a password the database was initialised with, the data key of the records) is
/// never replaced.
async fn create_secret(api: Api<Secret>, generated: &plan::GeneratedSecret) -> Result<(), Error> {
    use rand::Rng;
    let name = generated.metadata.name.clone().unwrap_or_default();
    let mut data = std::collections::BTreeMap::new();
    for (k, v) in &generated.fixed {
        data.insert(k.clone(), k8s_openapi::ByteString(v.clone().into_bytes()));
    }
    let mut rng = rand::rngs::OsRng;
    for (k, kind) in &generated.random {
        let bytes = match kind {
            plan::Random::Password => (&mut rng)
                .sample_iter(rand::distributions::Alphanumeric)
                .take(32)
                .collect::<Vec<u8>>(),
            plan::Random::Key32 => {
                let mut b = vec![0u8; 32];
                rng.fill(&mut b[..]);
                b
            }
        };
        data.insert(k.clone(), k8s_openapi::ByteString(bytes));
    }
    let secret = Secret {
        metadata: generated.metadata.clone(),
        data: Some(data),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let result = api.create(&params, &secret).await;
    // The request body held the values; it is dropped here, and only the name is ever logged.
    drop(secret);
    match result {
        Ok(_) => {
            tracing::info!(secret = %name, "generated secret created");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_err("create", format!("Secret/{name}"))(e)),
    }
}

/// Asks a stack's intake for its report: one HTTP/1.0 GET, two seconds at most, a bounded
/// answer. What it says is checked by [`plan::intake_observation`]; this only fetches.
async fn read_intake_status(authority: &str) -> Result<kenko_api::intake::IntakeReport, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let host = authority.split(':').next().unwrap_or(authority);
        conn.write_all(
            format!(
                "GET {} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n",
                kenko_api::intake::STATUS_PATH
            )
            .as_bytes(),
        )
        .await
        .map_err(|e| format!("{authority}: {e}"))?;
        let limit = kenko_api::intake::MAX_REPORT_BYTES as u64 + 1024;
        let mut answer = Vec::new();
        (&mut conn)
            .take(limit + 1)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        if answer.len() as u64 > limit {
            return Err(format!("{authority}: the answer is longer than a report"));
        }
        Ok::<Vec<u8>, String>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| format!("{authority}: no answer within 2 s"))??;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{authority}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{authority}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_slice(&answer[split + 4..])
        .map_err(|e| format!("{authority}: not an intake report ({e})"))
}

/// Applies one child; returns a Deployment's available replicas when it is one.
async fn apply_child(client: &kube::Client, ns: &str, child: &Child) -> Result<Option<i32>, Error> {
    let c = client.clone();
    match child {
        Child::Secret(o) => create_secret(Api::<Secret>::namespaced(c, ns), o)
            .await
            .map(|_| None),
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
    write_status_with(api, stack, conditions, erasure_request, None).await
}

async fn write_status_with(
    api: &Api<HealthStack>,
    stack: &HealthStack,
    conditions: Vec<Condition>,
    erasure_request: Option<String>,
    intake: Option<&kenko_api::IntakeStatus>,
) -> Result<(), Error> {
    let mut status = serde_json::json!({
        "status": {
            "observedGeneration": stack.metadata.generation,
            "conditions": conditions,
            "erasureRequest": erasure_request,
        }
    });
    if let Some(i) = intake {
        status["status"]["intake"] = serde_json::to_value(i).expect("a status serialises");
    }
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
    let note = kenko_api::status_message(&note);
    let uid = stack.metadata.uid.clone().unwrap_or_default();
    if !ctx.published.first_time(&uid, action, reason, &note) {
        return;
    }
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

/// The JSON Patch that adds kenko's finalizer, as kube-runtime's finalizer helper writes it:
/// `test` the list as read, then `add`, so a finalizer someone else added in between is never
/// dropped (the patch fails instead and the reconcile retries). `None` when it is there.
pub fn add_finalizer(current: &[String]) -> Option<json_patch::Patch> {
    if current.iter().any(|f| f == FINALIZER) {
        return None;
    }
    let ops = if current.is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    Some(serde_json::from_value(ops).expect("a JSON Patch"))
}

/// The JSON Patch that removes kenko's finalizer and nothing else: `test` that the entry at
/// its index is still kenko's, then `remove` it.
pub fn remove_finalizer(current: &[String]) -> Option<json_patch::Patch> {
    let i = current.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(
        serde_json::from_value(serde_json::json!([
            {"op": "test", "path": path, "value": FINALIZER},
            {"op": "remove", "path": path},
        ]))
        .expect("a JSON Patch"),
    )
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
    if let Some(patch) = add_finalizer(stack.finalizers()) {
        stacks
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
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
    let app = format!("Deployment/{}", plan::names(stack).app);
    for child in plan::children(stack, &verdict, &ctx.agent_image) {
        match apply_child(&ctx.client, &ns, &child).await {
            Ok(Some(available)) if child.id() == app => observed.app_available = available,
            Ok(_) => {}
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
    if verdict == Residency::Compliant && !stack.spec.suspend {
        let authority = ctx
            .intake_authority
            .clone()
            .unwrap_or_else(|| plan::intake_authority(stack));
        observed.intake = Some(plan::intake_observation(
            read_intake_status(&authority).await,
        ));
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
    // The backups' coverage changed (after a first observation): an Event with its reason.
    let had_backup = previous
        .iter()
        .any(|c| c.type_ == condition::BACKUP_CONFIGURED);
    if had_backup && changed(condition::BACKUP_CONFIGURED) {
        if let Some(b) = conditions
            .iter()
            .find(|c| c.type_ == condition::BACKUP_CONFIGURED)
        {
            let type_ = if b.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            event(
                ctx,
                stack,
                type_,
                &b.reason.clone(),
                b.message.clone(),
                "CheckBackup",
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
    let intake = observed.intake.as_ref().and_then(|i| i.status.as_ref());
    write_status_with(&stacks, stack, conditions, None, intake).await?;
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
    /// Every location is covered by verified certificates: the finalizer may go.
    Certified(Vec<String>),
    /// The request finished, but verified certificates do not cover these locations.
    Incomplete(Vec<String>),
}

/// Pure: the decommissioning state from what verified certificates cover and the current
/// request (`None` when every location is covered, or no request was needed).
pub fn decommission_state(coverage: &Coverage, request: Option<&ErasureRequest>) -> Decommission {
    if coverage.missing.is_empty() && coverage.blocked.is_empty() {
        return Decommission::Certified(coverage.certificates());
    }
    let Some(request) = request else {
        return Decommission::AwaitingApproval;
    };
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
        ErasurePhase::Certified => Decommission::Incomplete(
            coverage
                .missing
                .iter()
                .chain(coverage.blocked.iter())
                .map(|t| t.to_string())
                .collect(),
        ),
        phase => Decommission::Erasing(phase),
    }
}

/// Pure: the locations of `stack` another live stack also uses (the same bucket, one prefix
/// inside the other, or the same KMS key): erasing them would destroy that stack's data.
pub fn shared_locations(
    stack: &HealthStack,
    locations: &[Target],
    others: &[HealthStack],
) -> Vec<(Target, String)> {
    let overlaps = |a: &Target, b: &Target| match (a, b) {
        (
            Target::S3 {
                bucket: b1,
                prefix: p1,
            },
            Target::S3 {
                bucket: b2,
                prefix: p2,
            },
        ) => b1 == b2 && (p1.starts_with(p2.as_str()) || p2.starts_with(p1.as_str())),
        (Target::Kms { key: k1 }, Target::Kms { key: k2 }) => k1 == k2,
        _ => false,
    };
    let mut out = Vec::new();
    for other in others {
        if other.metadata.uid == stack.metadata.uid || other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(theirs) = plan::data_locations(other) else {
            continue;
        };
        for l in locations {
            if theirs.iter().any(|t| overlaps(l, t)) {
                out.push((
                    l.clone(),
                    format!(
                        "{}/{}",
                        other.namespace().unwrap_or_default(),
                        other.name_any()
                    ),
                ));
            }
        }
    }
    out
}

fn stack_id(stack: &HealthStack) -> StackId {
    StackId {
        namespace: stack.namespace().unwrap_or_default(),
        name: stack.name_any(),
        uid: stack.metadata.uid.clone().unwrap_or_default(),
        deleted_at: stack
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

/// The trusted signers, from the ConfigMap in the controller's namespace (none when absent).
async fn trusted_signers(ctx: &Context) -> Result<TrustedSigners, Error> {
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = kenko_api::TRUSTED_SIGNERS_CONFIGMAP;
    let cm = api
        .get_opt(name)
        .await
        .map_err(kube_err("read", format!("ConfigMap/{name}")))?;
    let (trusted, bad) = TrustedSigners::from_data(&cm.and_then(|c| c.data).unwrap_or_default());
    if !bad.is_empty() {
        tracing::warn!(entries = ?bad, "trusted signers: entries that are not 64 hex characters are ignored");
    }
    Ok(trusted)
}

async fn decommission(
    stack: &HealthStack,
    ctx: &Context,
    stacks: &Api<HealthStack>,
    ns: &str,
) -> Result<Action, Error> {
    let name = stack.name_any();
    if !stack.finalizers().iter().any(|f| f == FINALIZER) {
        ctx.published
            .forget(stack.metadata.uid.as_deref().unwrap_or_default());
        return Ok(Action::await_change());
    }
    // 1. No more writes: the app and the database scale to zero.
    let mut stopped = stack.clone();
    stopped.spec.suspend = true;
    for child in plan::children(&stopped, &Residency::Compliant, &ctx.agent_image) {
        if matches!(child, Child::Deployment(_) | Child::StatefulSet(_)) {
            apply_child(&ctx.client, ns, &child).await?;
        }
    }
    let er_name = erasure_request_name(stack);
    let id = stack_id(stack);
    // 2. Every location, and what verified certificates of this stack already prove erased
    //    (those of earlier requests too: a retry erases only what is left).
    let (state, why, message) = match plan::data_locations(stack) {
        Err(e) => (
            None,
            reason::LOCATIONS_INVALID,
            format!("the stack names a data location kenko cannot erase ({e}); fix the spec, nothing was requested"),
        ),
        Ok(locations) => {
            let all = Api::<HealthStack>::all(ctx.client.clone())
                .list(&ListParams::default())
                .await
                .map_err(kube_err("read", "HealthStacks"))?
                .items;
            let shared = shared_locations(stack, &locations, &all);
            if let Some((l, other)) = shared.first() {
                (
                    None,
                    reason::LOCATION_SHARED,
                    format!("{l} is also used by stack {other}: erasing it would destroy that stack's data; give each stack its own bucket prefix and key, or decommission both"),
                )
            } else {
                let trusted = trusted_signers(ctx).await?;
                let certs = Api::<ErasureCertificate>::all(ctx.client.clone())
                    .list(&ListParams::default().labels(&format!(
                        "{}={}",
                        kenko_api::STACK_UID_LABEL,
                        id.uid
                    )))
                    .await
                    .map_err(kube_err("read", "ErasureCertificates"))?
                    .items;
                let cov = evidence::coverage(&locations, &certs, &id, &trusted);
                for (cert, reason, why) in &cov.rejected {
                    tracing::warn!(stack = %name, certificate = %cert, reason, why = %why, "certificate not counted");
                }
                let requests = Api::<ErasureRequest>::namespaced(ctx.client.clone(), ns);
                let mut request = None;
                if !cov.missing.is_empty() || !cov.blocked.is_empty() {
                    request = match requests
                        .get_opt(&er_name)
                        .await
                        .map_err(kube_err("erasure", format!("ErasureRequest/{er_name}")))?
                    {
                        Some(r) => Some(r),
                        None if cov.missing.is_empty() => None,
                        None => {
                            let mut r = ErasureRequest::new(
                                &er_name,
                                ErasureRequestSpec {
                                    targets: cov.missing.iter().map(|t| t.to_string()).collect(),
                                    method: ErasureMethod::Clear,
                                    verification: VerifyMode::Full,
                                    requested_by: format!(
                                        "system:serviceaccount:{}:{MANAGER}",
                                        ctx.namespace
                                    ),
                                    approved_by: None,
                                    stack: Some(name.clone()),
                                    stack_uid: Some(id.uid.clone()),
                                },
                            );
                            r.metadata.labels =
                                Some([("kenko.io/stack".to_string(), name.clone())].into());
                            Some(
                                requests
                                    .create(&PostParams::default(), &r)
                                    .await
                                    .map_err(kube_err(
                                        "erasure",
                                        format!("ErasureRequest/{er_name}"),
                                    ))?,
                            )
                        }
                    };
                }
                let foreign = request
                    .as_ref()
                    .is_some_and(|r| r.spec.stack_uid.as_deref() != Some(id.uid.as_str()));
                let state = decommission_state(&cov, request.as_ref());
                let rejected = match cov.rejected.first() {
                    Some((c, r, w)) => format!(
                        "; {} certificate(s) not counted, first {c} [{r}]: {w}",
                        cov.rejected.len()
                    ),
                    None => String::new(),
                };
                let (why, message) = if foreign {
                    (
                        reason::ERASURE_FAILED,
                        format!("ErasureRequest {er_name} was made for an earlier stack of the same name; save it as evidence, then delete it so a new one is made"),
                    )
                } else {
                    match &state {
                        Decommission::AwaitingApproval => (
                            reason::AWAITING_APPROVAL,
                            format!(
                                "ErasureRequest {er_name} waits for approval by a second person ({} of {} locations left)",
                                cov.missing.len(),
                                locations.len()
                            ),
                        ),
                        Decommission::Erasing(p) => (
                            reason::ERASING,
                            format!("ErasureRequest {er_name} is {}", p.as_str()),
                        ),
                        Decommission::Failed(d) => (
                            reason::ERASURE_FAILED,
                            format!("ErasureRequest {er_name} failed: {d}; the stack is kept{rejected}"),
                        ),
                        Decommission::Blocked(d) => (
                            reason::ERASURE_BLOCKED,
                            format!("ErasureRequest {er_name} is blocked: {d}; the stack is kept"),
                        ),
                        Decommission::Incomplete(missing) if trusted.is_empty() => (
                            reason::NO_TRUSTED_SIGNERS,
                            format!("no trusted signer is registered (ConfigMap {}/{}), so no certificate counts; {} location(s) unproven: {}", ctx.namespace, kenko_api::TRUSTED_SIGNERS_CONFIGMAP, missing.len(), missing.join(", ")),
                        ),
                        Decommission::Incomplete(missing) => (
                            reason::ERASURE_FAILED,
                            format!(
                                "verified certificates do not cover {}; the stack is kept{rejected}",
                                missing.join(", ")
                            ),
                        ),
                        Decommission::Certified(names) => (
                            reason::CERTIFIED,
                            format!("every location certified by {}", names.join(", ")),
                        ),
                    }
                };
                (Some(state), why, message)
            }
        }
    };
    let message = kenko_api::status_message(&message);
    let previous = stack
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| {
            c.type_ != condition::DECOMMISSIONING
                && c.type_ != condition::READY
                && c.type_ != condition::PROGRESSING
        })
        .cloned()
        .collect();
    let t = now();
    let set = |conditions: &mut Vec<Condition>, type_: &str, status: bool, m: String| {
        conditions.push(plan::condition(
            &previous,
            type_,
            status,
            why,
            m,
            stack.metadata.generation,
            &t,
        ));
    };
    set(
        &mut conditions,
        condition::READY,
        false,
        "the stack is being decommissioned".into(),
    );
    // Nothing is being rolled out any more: the stack only waits for its erasure.
    set(
        &mut conditions,
        condition::PROGRESSING,
        false,
        String::new(),
    );
    set(
        &mut conditions,
        condition::DECOMMISSIONING,
        true,
        message.clone(),
    );
    if reason_of(&previous, condition::DECOMMISSIONING)
        != reason_of(&conditions, condition::DECOMMISSIONING)
    {
        let type_ = match (&state, why) {
            (Some(Decommission::AwaitingApproval | Decommission::Erasing(_)), _) => {
                EventType::Normal
            }
            (Some(Decommission::Certified(_)), _) => EventType::Normal,
            _ => EventType::Warning,
        };
        event(ctx, stack, type_, why, message, "Decommission").await;
    }
    ctx.metrics.set_conditions(stack, &conditions);
    write_status(stacks, stack, conditions, Some(er_name)).await?;
    if let Some(Decommission::Certified(_)) = state {
        // 3. The rest goes: the database's volume (not owned by the stack: the StatefulSet
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
        if let Some(patch) = remove_finalizer(stack.finalizers()) {
            stacks
                .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
                .await
                .map_err(kube_err("finalizer", format!("HealthStack/{name}")))?;
        }
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
