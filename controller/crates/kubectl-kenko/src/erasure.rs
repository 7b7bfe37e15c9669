//! `kubectl kenko erasure list|approve`. An approval is the second person's: the plugin asks
//! the API server who the caller is (a SelfSubjectReview, so the name is the authenticated
//! one, not a flag), refuses locally when that is the requester, and otherwise sets
//! `spec.approvedBy` with a JSON merge patch guarded by the resourceVersion it read. The
//! CRD's admission rule refuses a self-approval too; its message is shown as it is.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kenko_api::ErasureRequest;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::table::table;
use crate::{kube_error, PluginError, Scope, FIELD_MANAGER};

/// Every ErasureRequest in the scope, by namespace and name.
pub async fn list(client: &Client, scope: &Scope) -> Result<Vec<ErasureRequest>, PluginError> {
    let mut items = scope
        .api::<ErasureRequest>(client)
        .list(&ListParams::default())
        .await
        .map_err(kube_error(match scope {
            Scope::All => "list erasurerequests in all namespaces".to_string(),
            Scope::Namespace(ns) => format!("list erasurerequests in namespace {ns}"),
        }))?
        .items;
    items.sort_by_key(|e| (e.namespace().unwrap_or_default(), e.name_any()));
    Ok(items)
}

/// The `erasure list` table.
pub fn format_list(items: &[ErasureRequest], show_namespace: bool) -> String {
    let mut headers = vec![];
    if show_namespace {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "NAME",
        "PHASE",
        "METHOD",
        "TARGETS",
        "REQUESTED-BY",
        "APPROVED-BY",
        "STACK",
        "CERTIFICATES",
    ]);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            let st = e.status.clone().unwrap_or_default();
            let mut row = vec![];
            if show_namespace {
                row.push(e.namespace().unwrap_or_default());
            }
            let phase = match &st.reason {
                Some(r) => format!("{} ({r})", st.phase.as_str()),
                None => st.phase.as_str().to_string(),
            };
            row.extend([
                e.name_any(),
                phase,
                e.spec.method.to_string(),
                e.spec.targets.len().to_string(),
                e.spec.requested_by.clone(),
                e.spec.approved_by.clone().unwrap_or_default(),
                e.spec.stack.clone().unwrap_or_default(),
                st.certificates.join(","),
            ]);
            row
        })
        .collect();
    table("", &headers, &rows)
}

/// The user name the API server authenticated this client as (SelfSubjectReview,
/// authentication.k8s.io/v1).
pub async fn current_user(client: &Client) -> Result<String, PluginError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(kube_error(
            "ask the API server who you are (SelfSubjectReview)",
        ))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or(PluginError::UnknownUser)
}

/// The outcome of `erasure approve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// `namespace/name`.
    pub request: String,
    pub approved_by: String,
    /// The current user had already approved it: nothing was changed.
    pub already: bool,
}

/// Approves `namespace/name` as the current user.
pub async fn approve(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Approval, PluginError> {
    let request = format!("{namespace}/{name}");
    let me = current_user(client).await?;
    let api: Api<ErasureRequest> = Api::namespaced(client.clone(), namespace);
    let er = api
        .get(name)
        .await
        .map_err(kube_error(format!("get erasurerequest {request}")))?;
    if let Some(by) = &er.spec.approved_by {
        if *by == me {
            return Ok(Approval {
                request,
                approved_by: me,
                already: true,
            });
        }
        return Err(PluginError::AlreadyApproved {
            request,
            by: by.clone(),
        });
    }
    if er.spec.requested_by == me {
        return Err(PluginError::SelfApproval { request });
    }
    let patch = approval_patch(&me, er.resource_version().as_deref());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patched = api
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if !status.is_not_found() => PluginError::ApprovalRefused {
                request: request.clone(),
                message: crate::one_line(&status.message),
            },
            other => kube_error(format!("patch erasurerequest {request}"))(other),
        })?;
    Ok(Approval {
        request,
        approved_by: patched.spec.approved_by.unwrap_or(me),
        already: false,
    })
}

/// The JSON merge patch that approves: `spec.approvedBy`, and the resourceVersion read, so a
/// request changed in between (e.g. approved by someone else) is refused with a conflict
/// instead of being overwritten.
pub fn approval_patch(user: &str, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = serde_json::json!({ "spec": { "approvedBy": user } });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    patch
}
