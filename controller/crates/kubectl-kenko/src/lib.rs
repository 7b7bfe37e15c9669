//! `kubectl kenko`: the kubectl plugin for ASP maintainers and auditors.
//!
//! - [`status`]: every HealthStack's conditions, and the erasure of a stack being
//!   decommissioned; unhealthy when a stack is not `Ready` or not `ResidencyCompliant`.
//! - [`erasure`]: list ErasureRequests, and approve one as the current user (found with a
//!   SelfSubjectReview), never as its requester.
//! - [`certificates`]: list, read, export (the exact signed bytes) and verify erasure
//!   certificates, against the cluster's resource or a local file with no cluster at all.
//!
//! Every command is a function taking a [`kube::Client`] (so tests drive it against a scripted
//! API server) and returning data; the tables are pure functions of that data ([`table`]).
//! `main.rs` only parses flags, connects ([`connect`]) and prints.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub mod certificates;
pub mod erasure;
pub mod status;
pub mod table;

/// The field manager kenko's plugin writes with.
pub const FIELD_MANAGER: &str = "kubectl-kenko";

/// Where a namespaced command looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    /// kubectl's rules: `-A` is every namespace, `-n NS` one, otherwise the context's namespace.
    pub fn from_flags(namespace: Option<&str>, all_namespaces: bool, default: &str) -> Scope {
        match (all_namespaces, namespace) {
            (true, _) => Scope::All,
            (false, Some(ns)) => Scope::Namespace(ns.to_string()),
            (false, None) => Scope::Namespace(default.to_string()),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// The namespace a command on one named object uses (`-A` makes no sense there: the
    /// client's default namespace is used).
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        match self {
            Scope::Namespace(ns) => ns,
            Scope::All => default,
        }
    }

    fn api<K>(&self, client: &Client) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match self {
            Scope::Namespace(ns) => kube::Api::namespaced(client.clone(), ns),
            Scope::All => kube::Api::all(client.clone()),
        }
    }
}

/// Which cluster a command talks to, for messages: the kubeconfig context, its cluster and
/// the API server's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub context: String,
    pub cluster: String,
    pub server: String,
}

/// A client and the cluster it talks to.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub target: ClusterTarget,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why a command failed. Each variant has a stable [`PluginError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API server: {cause}")]
    Unreachable { cause: String },
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: the API server refused ({code}): {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    #[error("{what}: {message}")]
    Client { what: String, message: String },
    #[error(
        "refused: you are signed in as the requester of erasure request {request}; an erasure \
         must be approved by someone other than the person who requested it (ask a second \
         person to approve it)"
    )]
    SelfApproval { request: String },
    #[error(
        "erasure request {request} is already approved by {by}; an approval cannot be changed \
         or withdrawn (delete the request instead)"
    )]
    AlreadyApproved { request: String, by: String },
    #[error("the API server refused the approval of erasure request {request}: {message}")]
    ApprovalRefused { request: String, message: String },
    #[error("the API server's SelfSubjectReview did not name the current user; cannot approve")]
    UnknownUser,
    #[error("{subject}: {source}")]
    Invalid {
        subject: String,
        #[source]
        source: kenko_cert::CertError,
    },
    #[error("{subject}: {problem}")]
    ResourceMismatch { subject: String, problem: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "{0}: expected a 64-character hex Ed25519 public key (the file written by \
         `kenko-agent certificate public-key`)"
    )]
    PublicKey(PathBuf),
}

impl PluginError {
    /// A stable name for the failure (certificate failures use kenko-cert's reasons).
    pub fn reason(&self) -> &'static str {
        match self {
            PluginError::Kubeconfig(_) => "kubeconfig_invalid",
            PluginError::Unreachable { .. } => "cluster_unreachable",
            PluginError::NotFound { .. } => "not_found",
            PluginError::Api { .. } => "api_refused",
            PluginError::Client { .. } => "api_client_error",
            PluginError::SelfApproval { .. } => "self_approval_refused",
            PluginError::AlreadyApproved { .. } => "already_approved",
            PluginError::ApprovalRefused { .. } => "approval_refused",
            PluginError::UnknownUser => "current_user_unknown",
            PluginError::Invalid { source, .. } => source.reason(),
            PluginError::ResourceMismatch { .. } => "certificate_resource_mismatch",
            PluginError::Io { .. } => "certificate_unreadable",
            PluginError::PublicKey(_) => "certificate_public_key_invalid",
        }
    }

    /// Whether the failure says a certificate is not genuine and complete (as opposed to the
    /// command not being able to check).
    pub fn is_invalid_certificate(&self) -> bool {
        matches!(
            self,
            PluginError::Invalid { .. } | PluginError::ResourceMismatch { .. }
        )
    }

    /// The one-line message for people, naming the cluster when it could not be reached.
    pub fn explain(&self, target: Option<&ClusterTarget>) -> String {
        let text = match (self, target) {
            (PluginError::Unreachable { cause }, Some(t)) => format!(
                "cannot reach the Kubernetes API server of cluster {:?} at {} (context {:?}): {cause}",
                t.cluster, t.server, t.context
            ),
            _ => self.to_string(),
        };
        one_line(&text)
    }
}

/// Replaces line breaks so a message stays on one line.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The innermost causes of an error (the last two distinct messages of its source chain):
/// e.g. `tcp connect error: Connection refused (os error 111)`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if chain.last() != Some(&m) {
            chain.push(m);
        }
        cur = s.source();
    }
    let n = chain.len();
    let tail = &chain[n.saturating_sub(2)..];
    let text = if tail.len() == 2 && tail[0].ends_with(&tail[1]) {
        tail[0].clone()
    } else {
        tail.join(": ")
    };
    one_line(&text)
}

/// Maps a kube error for the operation `what` (e.g. `erasurerequest ns/name`).
pub(crate) fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> PluginError {
    move |e| {
        let what = what.into();
        match e {
            kube::Error::Api(status) if status.is_not_found() => PluginError::NotFound { what },
            kube::Error::Api(status) => PluginError::Api {
                what,
                code: status.code,
                message: one_line(&status.message),
            },
            kube::Error::SerdeError(e) => PluginError::Client {
                what,
                message: format!("unexpected response from the API server: {e}"),
            },
            kube::Error::BuildRequest(e) => PluginError::Client {
                what,
                message: format!("cannot build the request: {e}"),
            },
            other => PluginError::Unreachable {
                cause: root_cause(&other),
            },
        }
    }
}

/// Connects like kubectl: `kubeconfig` (else `$KUBECONFIG` or `~/.kube/config`, else the
/// in-cluster service account), `context` (else the current context). Nothing is sent yet:
/// an unreachable server shows up as [`PluginError::Unreachable`] on the first request.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Connection, PluginError> {
    let kc = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|e| {
            PluginError::Kubeconfig(format!(
                "cannot load kubeconfig {}: {}",
                path.display(),
                root_cause(&e)
            ))
        })?,
        None => match Kubeconfig::read() {
            Ok(kc) => kc,
            Err(e) => {
                if context.is_none() {
                    if let Ok(config) = Config::incluster() {
                        let target = ClusterTarget {
                            context: "in-cluster".into(),
                            cluster: "in-cluster".into(),
                            server: config.cluster_url.to_string(),
                        };
                        return client_for(config, target);
                    }
                }
                return Err(PluginError::Kubeconfig(format!(
                    "no kubeconfig found (pass --kubeconfig FILE or set KUBECONFIG): {}",
                    root_cause(&e)
                )));
            }
        },
    };
    let context_name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| {
            PluginError::Kubeconfig(
                "the kubeconfig has no current-context; pass --context NAME".into(),
            )
        })?;
    let named = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .ok_or_else(|| {
            PluginError::Kubeconfig(format!("context {context_name:?} is not in the kubeconfig"))
        })?;
    let cluster = named
        .context
        .as_ref()
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let server = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| "(no server)".into());
    let target = ClusterTarget {
        context: context_name.clone(),
        cluster,
        server,
    };
    let options = KubeConfigOptions {
        context: Some(context_name),
        cluster: None,
        user: None,
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| {
            PluginError::Kubeconfig(format!(
                "context {:?} (cluster {:?}): {}",
                target.context,
                target.cluster,
                root_cause(&e)
            ))
        })?;
    client_for(config, target)
}

fn client_for(config: Config, target: ClusterTarget) -> Result<Connection, PluginError> {
    // With both aws-lc-rs (AWS SDK) and ring (kube) in the build, rustls needs to be told.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_from(config).map_err(|e| {
        PluginError::Kubeconfig(format!(
            "context {:?} (cluster {:?}): cannot make a client: {}",
            target.context,
            target.cluster,
            root_cause(&e)
        ))
    })?;
    Ok(Connection { client, target })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
