//! `kubectl kenko status`: every HealthStack with its conditions, the erasure of a stack being
//! decommissioned, and whether every stack is `Ready` and `ResidencyCompliant`.

use kenko_api::reasons::condition;
use kenko_api::{ErasureRequest, HealthStack};
use kube::api::ListParams;
use kube::{Client, ResourceExt};

use crate::table::table;
use crate::{kube_error, PluginError, Scope};

/// Exit code of `status` when a stack is not Ready or not ResidencyCompliant (1 is kept for
/// "the command itself failed", e.g. the cluster could not be reached).
pub const EXIT_UNHEALTHY: u8 = 2;

/// One condition as the controller reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRow {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The ErasureRequest of a stack being decommissioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureSummary {
    /// `namespace/name`.
    pub request: String,
    /// `None` when the request does not exist (any more).
    pub phase: Option<String>,
    /// The ErasureCertificates issued for it (one per erasure method).
    pub certificates: Vec<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// One HealthStack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackReport {
    pub namespace: String,
    pub name: String,
    pub conditions: Vec<ConditionRow>,
    pub decommissioning: bool,
    pub erasure: Option<ErasureSummary>,
}

impl StackReport {
    pub fn condition(&self, type_: &str) -> Option<&ConditionRow> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// What keeps the stack from being healthy: `Ready` and `ResidencyCompliant` must both be
    /// reported `True`.
    pub fn problems(&self) -> Vec<String> {
        [condition::READY, condition::RESIDENCY_COMPLIANT]
            .iter()
            .filter_map(|t| match self.condition(t) {
                Some(c) if c.status == "True" => None,
                Some(c) if c.reason.is_empty() => Some(format!("{t}={}", c.status)),
                Some(c) => Some(format!("{t}={} ({})", c.status, c.reason)),
                None => Some(format!("{t} not reported")),
            })
            .collect()
    }

    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Every stack in the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub scope: Scope,
    pub stacks: Vec<StackReport>,
}

impl StatusReport {
    pub fn healthy(&self) -> bool {
        self.stacks.iter().all(StackReport::healthy)
    }

    /// 0 when every stack is Ready and ResidencyCompliant (or there is none), else
    /// [`EXIT_UNHEALTHY`].
    pub fn exit_code(&self) -> u8 {
        if self.healthy() {
            0
        } else {
            EXIT_UNHEALTHY
        }
    }

    /// The last line of the output: how many stacks, and which are not healthy and why.
    pub fn summary(&self) -> String {
        let n = self.stacks.len();
        let bad: Vec<&StackReport> = self.stacks.iter().filter(|s| !s.healthy()).collect();
        if n == 0 {
            return match &self.scope {
                Scope::All => "no HealthStacks in any namespace".into(),
                Scope::Namespace(ns) => format!("no HealthStacks in namespace {ns}"),
            };
        }
        if bad.is_empty() {
            return format!("all {n} HealthStack(s) Ready and ResidencyCompliant");
        }
        format!(
            "{} of {n} HealthStack(s) not Ready or not ResidencyCompliant: {}",
            bad.len(),
            bad.iter()
                .map(|s| format!("{} ({})", s.id(), s.problems().join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// Reads every HealthStack in the scope and, for those being decommissioned, their
/// ErasureRequest.
pub async fn status(client: &Client, scope: &Scope) -> Result<StatusReport, PluginError> {
    let stacks = scope
        .api::<HealthStack>(client)
        .list(&ListParams::default())
        .await
        .map_err(kube_error(match scope {
            Scope::All => "list healthstacks in all namespaces".to_string(),
            Scope::Namespace(ns) => format!("list healthstacks in namespace {ns}"),
        }))?;
    let mut out = Vec::new();
    for hs in stacks.items {
        let namespace = hs.namespace().unwrap_or_default();
        let name = hs.name_any();
        let status = hs.status.clone().unwrap_or_default();
        let conditions: Vec<ConditionRow> = status
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .collect();
        let decommissioning = hs.metadata.deletion_timestamp.is_some()
            || status.erasure_request.is_some()
            || conditions
                .iter()
                .any(|c| c.type_ == condition::DECOMMISSIONING && c.status == "True");
        let erasure = match &status.erasure_request {
            Some(er) => Some(erasure_summary(client, &namespace, er).await?),
            None => None,
        };
        out.push(StackReport {
            namespace,
            name,
            conditions,
            decommissioning,
            erasure,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(StatusReport {
        scope: scope.clone(),
        stacks: out,
    })
}

/// `reference` is `name` (in the stack's namespace) or `namespace/name`.
async fn erasure_summary(
    client: &Client,
    stack_namespace: &str,
    reference: &str,
) -> Result<ErasureSummary, PluginError> {
    let (ns, name) = reference
        .split_once('/')
        .unwrap_or((stack_namespace, reference));
    let request = format!("{ns}/{name}");
    let api: kube::Api<ErasureRequest> = kube::Api::namespaced(client.clone(), ns);
    let er = api
        .get_opt(name)
        .await
        .map_err(kube_error(format!("get erasurerequest {request}")))?;
    Ok(match er {
        None => ErasureSummary {
            request,
            phase: None,
            certificates: vec![],
            reason: None,
            message: None,
        },
        Some(er) => {
            let st = er.status.unwrap_or_default();
            ErasureSummary {
                request,
                phase: Some(st.phase.as_str().to_string()),
                certificates: st.certificates,
                reason: st.reason,
                message: st.message,
            }
        }
    })
}

/// The whole `status` output: per stack its conditions table, then the summary line.
pub fn format_status(report: &StatusReport) -> String {
    let mut out = String::new();
    for s in &report.stacks {
        let verdict = if s.healthy() {
            "Ready, ResidencyCompliant".to_string()
        } else {
            format!("NOT HEALTHY: {}", s.problems().join(", "))
        };
        out.push_str(&format!("HealthStack {}: {verdict}\n", s.id()));
        if s.conditions.is_empty() {
            out.push_str("  no conditions reported yet\n");
        } else {
            let rows: Vec<Vec<String>> = s
                .conditions
                .iter()
                .map(|c| {
                    vec![
                        c.type_.clone(),
                        c.status.clone(),
                        c.reason.clone(),
                        c.message.clone(),
                    ]
                })
                .collect();
            out.push_str(&table(
                "  ",
                &["TYPE", "STATUS", "REASON", "MESSAGE"],
                &rows,
            ));
        }
        if s.decommissioning {
            out.push_str(&format_erasure_line(s.erasure.as_ref()));
        }
        out.push('\n');
    }
    out.push_str(&report.summary());
    out.push('\n');
    out
}

fn format_erasure_line(e: Option<&ErasureSummary>) -> String {
    let Some(e) = e else {
        return "  decommissioning: no ErasureRequest yet\n".into();
    };
    let Some(phase) = &e.phase else {
        return format!(
            "  decommissioning: ErasureRequest {} not found\n",
            e.request
        );
    };
    let mut line = format!("  decommissioning: ErasureRequest {} is {phase}", e.request);
    if !e.certificates.is_empty() {
        line.push_str(&format!(", certificates {}", e.certificates.join(", ")));
    }
    match (&e.reason, &e.message) {
        (Some(r), Some(m)) => line.push_str(&format!(" ({r}: {})", crate::one_line(m))),
        (Some(r), None) => line.push_str(&format!(" ({r})")),
        (None, Some(m)) => line.push_str(&format!(" ({})", crate::one_line(m))),
        (None, None) => {}
    }
    line.push('\n');
    line
}
