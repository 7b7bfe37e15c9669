//! Kubernetes Events for access alerts, in the cluster (`kenko-agent run --cluster` with
//! `[access] enabled`): each alert that opens becomes a Warning Event regarding the agent's Pod,
//! with the rule's Alertmanager name as its reason, so `kubectl get events -n kenko-node` and
//! every tool that watches Events see it. Like every output, it carries the rule, severity,
//! actor (a staff or principal id), window, counts and runbook, never a resident's value.
//!
//! The monitor runs on its own thread and must never wait for the API server: records go
//! through a bounded queue to a task on the agent's runtime; when the queue is full the Event
//! is dropped and counted (the alert file and Alertmanager still have it).

//!
//! The queue's sending side needs no Kubernetes crate; only [`EventSink::start`] and what posts
//! the Events do, so a build without the `cloud` feature has the type but never a value of it.

#[cfg(feature = "cloud")]
use k8s_openapi::api::core::v1::ObjectReference;
#[cfg(feature = "cloud")]
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

#[cfg(feature = "cloud")]
use super::output::alertname;
use super::output::AlertRecord;
use super::telemetry::AccessEvent;

#[cfg(feature = "cloud")]
/// Alerts waiting to be posted; more are dropped (and counted).
const QUEUE: usize = 256;

#[cfg(feature = "cloud")]
/// Where the Events are about: the agent's own Pod.
#[derive(Debug, Clone)]
pub struct Regarding {
    pub namespace: String,
    pub pod: String,
}

#[cfg(feature = "cloud")]
impl Regarding {
    fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(self.pod.clone()),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        }
    }
}

/// The sending side, held by the monitor (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::Sender<AlertRecord>,
}

impl EventSink {
    #[cfg(feature = "cloud")]
    /// Starts the poster on `rt`.
    pub fn start(rt: &tokio::runtime::Handle, client: kube::Client, regarding: Regarding) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        rt.spawn(post_all(client, regarding, rx));
        EventSink { tx }
    }

    /// Queues an alert that has just opened (resolved ones are not posted: the Event stream
    /// says when something happened, Alertmanager tracks what is still open).
    pub fn send(&self, r: &AlertRecord) {
        if r.resolved() {
            return;
        }
        if self.tx.try_send(r.clone()).is_err() {
            AccessEvent::KubeEventDropped.emit();
        }
    }
}

#[cfg(feature = "cloud")]
/// The Event of one alert.
pub fn event_for(r: &AlertRecord) -> Event {
    Event {
        type_: EventType::Warning,
        reason: alertname(&r.rule),
        note: Some(format!(
            "{} ({}) by {}{}: {} {} from {} to {} (threshold {}); alert {}; runbook {}",
            r.rule,
            r.severity,
            r.actor,
            if r.stack.is_empty() {
                String::new()
            } else {
                format!(" on stack {}", r.stack)
            },
            r.count,
            r.detail,
            r.window_start,
            r.window_end,
            r.threshold,
            r.id,
            r.runbook_url
        )),
        action: "DetectAccessPattern".into(),
        secondary: None,
    }
}

#[cfg(feature = "cloud")]
async fn post_all(
    client: kube::Client,
    regarding: Regarding,
    mut rx: tokio::sync::mpsc::Receiver<AlertRecord>,
) {
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "kenko-agent".into(),
            instance: Some(regarding.pod.clone()),
        },
    );
    let object = regarding.object_ref();
    while let Some(r) = rx.recv().await {
        if let Err(e) = recorder.publish(&event_for(&r), &object).await {
            AccessEvent::KubeEventFailed {
                rule: &r.rule,
                error: &e,
            }
            .emit();
        }
    }
}
