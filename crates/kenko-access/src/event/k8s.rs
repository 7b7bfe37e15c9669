//! The Kubernetes audit log: `audit.k8s.io/v1` `Event` objects, one per line.

use super::*;

#[derive(Deserialize)]
pub(super) struct RawK8s<'a> {
    #[serde(borrow)]
    pub(super) stage: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) verb: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) user: Option<Obj<RawK8sUser<'a>>>,
    #[serde(borrow, rename = "objectRef")]
    pub(super) object_ref: Option<Obj<RawK8sObject<'a>>>,
    #[serde(borrow, rename = "responseStatus")]
    pub(super) response_status: Option<Obj<RawK8sStatus<'a>>>,
    #[serde(borrow, rename = "requestReceivedTimestamp")]
    pub(super) received: Option<Scalar<'a>>,
    #[serde(borrow, rename = "stageTimestamp")]
    pub(super) stage_time: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawK8sUser<'a> {
    #[serde(borrow)]
    pub(super) username: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawK8sObject<'a> {
    #[serde(borrow)]
    pub(super) resource: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) namespace: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) name: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) subresource: Option<Scalar<'a>>,
    #[serde(borrow, rename = "apiGroup")]
    pub(super) api_group: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawK8sStatus<'a> {
    #[serde(borrow)]
    pub(super) code: Option<Scalar<'a>>,
}

/// Parses one line of a Kubernetes audit log (an `audit.k8s.io/v1` `Event`). Only the
/// `ResponseComplete` and `Panic` stages make events (the other stages repeat the same request):
/// `Ok(None)` for the others and for blank lines.
pub fn parse_k8s_line<'a>(
    line: &'a [u8],
    line_no: u64,
    principals: &Principals,
) -> Result<Option<Event<'a>>, ParseError> {
    if is_blank(line) {
        return Ok(None);
    }
    let (raw, cx) = object_line::<RawK8s<'a>>(line, Source::K8sAudit, line_no)?;
    match cx.opt_str(raw.stage, "stage")?.as_deref() {
        None | Some("ResponseComplete") | Some("Panic") => {}
        Some(_) => return Ok(None),
    }
    let time = match raw.received {
        Some(Scalar::Str(_)) => cx.time(raw.received, "requestReceivedTimestamp")?,
        _ => cx.time(raw.stage_time, "stageTimestamp")?,
    };
    let user = match raw.user {
        Some(Obj::Is(u)) => u,
        Some(Obj::Not) => return Err(cx.err("user", Problem::Expected("an object"))),
        None => return Err(cx.err("user", Problem::Missing)),
    };
    let actor = cx.req_str(user.username, "username")?;
    let verb = cx.req_str(raw.verb, "verb")?;
    let obj = match raw.object_ref {
        Some(Obj::Is(o)) => Some(o),
        Some(Obj::Not) => return Err(cx.err("objectRef", Problem::Expected("an object"))),
        None => None,
    };
    let (mut resource_kind, mut ns, mut name, mut sub, mut group) = (None, None, None, None, None);
    if let Some(o) = obj {
        resource_kind = cx.opt_str(o.resource, "resource")?;
        ns = cx.opt_str(o.namespace, "namespace")?;
        name = cx.opt_str(o.name, "name")?;
        sub = cx.opt_str(o.subresource, "subresource")?;
        group = cx.opt_str(o.api_group, "apiGroup")?;
    }
    let outcome = match raw.response_status {
        Some(Obj::Is(s)) => match s.code {
            None | Some(Scalar::Null) => Outcome::Success,
            Some(Scalar::U64(c)) if c < 400 => Outcome::Success,
            Some(Scalar::U64(401 | 403)) => Outcome::Denied,
            Some(Scalar::U64(_)) => Outcome::Error,
            Some(_) => {
                return Err(cx.err("code", Problem::Expected("an HTTP status code")));
            }
        },
        Some(Obj::Not) => {
            return Err(cx.err("responseStatus", Problem::Expected("an object")));
        }
        None => Outcome::Success,
    };
    let rk = resource_kind.as_deref().unwrap_or("");
    let verb = verb.as_ref();
    let ns_name = || {
        Some(Cow::Owned(format!(
            "{}/{}",
            ns.as_deref().unwrap_or(""),
            name.as_deref().unwrap_or("")
        )))
    };
    let (action, resource) =
        if rk == "pods" && matches!(sub.as_deref(), Some("exec" | "attach" | "portforward")) {
            (Action::PodExec, ns_name())
        } else if group.as_deref() == Some("rbac.authorization.k8s.io")
            && matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection" | "bind" | "escalate"
            )
        {
            (
                Action::RbacChange,
                Some(Cow::Owned(format!(
                    "{rk}/{}",
                    name.as_deref().unwrap_or("")
                ))),
            )
        } else if rk == "secrets" && sub.is_none() && matches!(verb, "get" | "list" | "watch") {
            (Action::SecretRead, ns_name())
        } else {
            (Action::Other, None)
        };
    let actor_kind = if matches_any(&principals.k8s_service, &actor) {
        ActorKind::Service
    } else if matches_any(&principals.k8s_provider, &actor) {
        ActorKind::Provider
    } else {
        ActorKind::CloudOperator
    };
    Ok(Some(Event {
        source: Source::K8sAudit,
        time,
        actor,
        actor_kind,
        role: None,
        action,
        subject: None,
        district: None,
        count: 1,
        case_ref: None,
        terminal: None,
        outcome,
        resource,
        object: None,
        stack: None,
    }))
}
