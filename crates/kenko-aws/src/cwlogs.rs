//! The Kubernetes audit log where EKS keeps it: CloudWatch Logs, log group
//! `/aws/eks/CLUSTER/cluster`, one stream per API server instance (`kube-apiserver-audit-…`),
//! one `audit.k8s.io/v1` Event (JSON) per log event. The access monitor's downloader
//! (`agent/src/access/cwinput.rs`) pages through each stream with forward tokens and appends
//! the messages to a local spool file it follows; this module is only the API calls.

use aws_sdk_cloudwatchlogs::Client;

use crate::{api, sdk_config, AwsError, Endpoint};

pub use aws_sdk_cloudwatchlogs;

/// The log group EKS writes a cluster's control plane logs to (the audit log among them).
pub fn eks_log_group(cluster: &str) -> String {
    format!("/aws/eks/{cluster}/cluster")
}

/// The prefix of the audit log's streams in [`eks_log_group`] (the other control plane
/// logs, `kube-apiserver-…`, `authenticator-…`, share the group).
pub const AUDIT_STREAM_PREFIX: &str = "kube-apiserver-audit";

/// A CloudWatch Logs client for `region` (`KENKO_AWS_ENDPOINT_URL_LOGS` or the common
/// endpoint override for an emulator).
pub async fn logs_client(ep: &Endpoint, region: &str) -> Client {
    Client::new(&sdk_config(ep, "logs", region).await)
}

/// The audit log streams of `group`, by name.
pub async fn audit_streams(client: &Client, group: &str) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    let mut pages = client
        .describe_log_streams()
        .log_group_name(group)
        .log_stream_name_prefix(AUDIT_STREAM_PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(api("DescribeLogStreams", group))?;
        out.extend(
            page.log_streams()
                .iter()
                .filter_map(|s| s.log_stream_name().map(str::to_string)),
        );
    }
    out.sort();
    Ok(out)
}

/// One page of a stream after `token` (from its start when None): the messages in order and
/// the token to continue from (the same token when nothing new was there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<String>,
    pub next_token: Option<String>,
}

/// Reads one page of `stream` after `token` (at most `limit` events).
pub async fn page(
    client: &Client,
    group: &str,
    stream: &str,
    token: Option<&str>,
    limit: i32,
) -> Result<Page, AwsError> {
    let out = client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .set_next_token(token.map(str::to_string))
        .limit(limit)
        .send()
        .await
        .map_err(api("GetLogEvents", &format!("{group}/{stream}")))?;
    Ok(Page {
        messages: out
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_string))
            .collect(),
        next_token: out.next_forward_token().map(str::to_string),
    })
}
