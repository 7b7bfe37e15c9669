//! What a HealthStack should look like in the cluster, as pure functions: the residency
//! verdict, the children to apply, the conditions, and every place the stack's data lives
//! (what decommissioning must erase). No I/O: the reconciler feeds these the objects it read.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kenko_api::intake;
use kenko_api::names::StackNames;
use kenko_api::reasons::{condition, reason};
use kenko_api::{AccountAudit, HealthStack, ResidencyPolicySpec, Target, JAPAN_REGIONS};
use kube::Resource;

/// The field manager of every server-side apply.
pub const MANAGER: &str = "kenko-controller";
/// Held on a HealthStack until every place its data lived is erased and certified.
pub const FINALIZER: &str = "kenko.io/decommission";

/// Whether a stack may have storage, and if not, why (a reason shared with Events and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Residency {
    Compliant,
    Violation {
        reason: &'static str,
        message: String,
    },
}

fn violation(reason: &'static str, message: String) -> Residency {
    Residency::Violation { reason, message }
}

/// The regions and zones a StorageClass pins its volumes to (`allowedTopologies`), if any.
fn storage_class_places(sc: &StorageClass) -> Vec<String> {
    let mut out = Vec::new();
    for term in sc.allowed_topologies.iter().flatten() {
        for req in term.match_label_expressions.iter().flatten() {
            if req.key.contains("region") || req.key.contains("zone") {
                out.extend(req.values.iter().cloned());
            }
        }
    }
    if let Some(region) = sc.parameters.as_ref().and_then(|p| p.get("region")) {
        out.push(region.clone());
    }
    out
}

/// In Japan: a Japanese region, or a zone of one (`ap-northeast-1a`; never ap-northeast-2,
/// which is Seoul).
fn in_region(place: &str, region: &str) -> bool {
    place == region
        || place
            .strip_prefix(region)
            .is_some_and(|z| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()))
}

/// Checks a stack against the cluster's policy and its StorageClass (as read; `None` when it
/// does not exist).
pub fn residency(
    stack: &HealthStack,
    policy: &ResidencyPolicySpec,
    storage_class: Option<&StorageClass>,
) -> Residency {
    let s = &stack.spec;
    for (what, region) in [("storage", &s.storage.region), ("backup", &s.backup.region)] {
        if !policy.allowed_regions.iter().any(|r| r == region)
            || !JAPAN_REGIONS.contains(&region.as_str())
        {
            return violation(
                reason::REGION_NOT_ALLOWED,
                format!(
                    "{what}.region {region} is not allowed by the ResidencyPolicy ({})",
                    policy.allowed_regions.join(", ")
                ),
            );
        }
    }
    if policy.backups_in_different_region && s.backup.region == s.storage.region {
        return violation(
            reason::BACKUP_SAME_REGION,
            format!(
                "backups are in {}, the production region; they must be in the other Japanese region",
                s.backup.region
            ),
        );
    }
    // The egress rules again (the CRD admits private ranges only; a stack admitted under an
    // older CRD, or written past admission, is checked here before anything is applied).
    let external = s.database.external.iter().flat_map(|e| e.cidrs.iter());
    if let Some(c) = s
        .network
        .allowed_egress_cidrs
        .iter()
        .chain(external)
        .find(|c| !kenko_api::is_private_cidr(c))
    {
        return violation(
            reason::EGRESS_NOT_PRIVATE,
            format!("egress to {c} is not a private range: the stack's network never reaches the internet"),
        );
    }
    if s.backup.retention_years < policy.min_retention_years {
        return violation(
            reason::RETENTION_TOO_SHORT,
            format!(
                "backup.retentionYears is {}; the ResidencyPolicy requires at least {}",
                s.backup.retention_years, policy.min_retention_years
            ),
        );
    }
    if !policy.allowed_storage_classes.is_empty()
        && !policy.allowed_storage_classes.contains(&s.storage.class)
    {
        return violation(
            reason::STORAGE_CLASS_NOT_ALLOWED,
            format!(
                "StorageClass {} is not one of the ResidencyPolicy's ({})",
                s.storage.class,
                policy.allowed_storage_classes.join(", ")
            ),
        );
    }
    let Some(sc) = storage_class else {
        return violation(
            reason::STORAGE_CLASS_MISSING,
            format!("StorageClass {} does not exist", s.storage.class),
        );
    };
    let places = storage_class_places(sc);
    if places.is_empty() {
        return violation(
            reason::STORAGE_CLASS_OUTSIDE_JAPAN,
            format!(
                "StorageClass {} pins no region or zone (allowedTopologies), so its volumes could be anywhere",
                s.storage.class
            ),
        );
    }
    if let Some(p) = places.iter().find(|p| !in_region(p, &s.storage.region)) {
        return violation(
            reason::STORAGE_CLASS_OUTSIDE_JAPAN,
            format!(
                "StorageClass {} places volumes in {p}, outside the stack's region {}",
                s.storage.class, s.storage.region
            ),
        );
    }
    Residency::Compliant
}

/// Names of a stack's children (defined in kenko-api: the agent finds the stack's volumes
/// by them).
pub fn names(stack: &HealthStack) -> StackNames {
    StackNames::of(&stack.metadata.name.clone().unwrap_or_default())
}

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    /// Created once, never read back or replaced (the controller may not read Secrets).
    Secret(GeneratedSecret),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    StatefulSet(StatefulSet),
    Service(Service),
    Deployment(Deployment),
    NetworkPolicy(NetworkPolicy),
    PodDisruptionBudget(PodDisruptionBudget),
}

impl Child {
    /// `Kind/name`, for logs and tests.
    pub fn id(&self) -> String {
        fn id<K: Resource<DynamicType = ()>>(k: &K) -> String {
            format!(
                "{}/{}",
                K::kind(&()),
                k.meta().name.clone().unwrap_or_default()
            )
        }
        match self {
            Child::Secret(o) => format!("Secret/{}", o.metadata.name.clone().unwrap_or_default()),
            Child::ServiceAccount(o) => id(o),
            Child::Role(o) => id(o),
            Child::RoleBinding(o) => id(o),
            Child::ConfigMap(o) => id(o),
            Child::PersistentVolumeClaim(o) => id(o),
            Child::StatefulSet(o) => id(o),
            Child::Service(o) => id(o),
            Child::Deployment(o) => id(o),
            Child::NetworkPolicy(o) => id(o),
            Child::PodDisruptionBudget(o) => id(o),
        }
    }
}

/// A Secret the controller creates once with values it generates (the plan stays pure: the
/// reconciler draws the random values at creation). It is never read back, so a value once
/// created is never changed, and the controller needs only `create` on Secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSecret {
    pub metadata: ObjectMeta,
    /// Values that are not secret (a user name).
    pub fixed: BTreeMap<String, String>,
    /// Keys whose values are generated at creation.
    pub random: Vec<(String, Random)>,
}

/// What a generated value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Random {
    /// 32 random alphanumerics (~190 bits; no character a connection string must escape).
    Password,
    /// 32 random bytes (a data key).
    Key32,
}

/// An environment variable from a Secret's key.
fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn labels(stack: &HealthStack, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "kenko-health-stack".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            stack.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
    ])
}

fn selector(stack: &HealthStack, component: &str) -> BTreeMap<String, String> {
    let mut l = labels(stack, component);
    l.remove("app.kubernetes.io/managed-by");
    l.remove("app.kubernetes.io/name");
    l
}

fn meta(stack: &HealthStack, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: stack.metadata.namespace.clone(),
        labels: Some(labels(stack, component)),
        owner_references: stack.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The owner reference every child carries (so deleting the stack collects them).
pub fn owner(stack: &HealthStack) -> Option<OwnerReference> {
    stack.controller_owner_ref(&())
}

/// The Pod Security "restricted" profile, for every container.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

fn pvc(stack: &HealthStack, name: &str, component: &str, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(stack, name, component),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(stack.spec.storage.class.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.to_string()),
                )])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn peer_labels(stack: &HealthStack, component: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector(stack, component)),
            match_expressions: None,
        }),
        ..Default::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        end_port: None,
    }
}

/// DNS: kube-system's resolvers only.
fn dns_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "kube-system".to_string(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "k8s-app".to_string(),
                    "kube-dns".to_string(),
                )])),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: Some(vec![
            NetworkPolicyPort {
                port: Some(IntOrString::Int(53)),
                protocol: Some("UDP".into()),
                end_port: None,
            },
            tcp(53),
        ]),
    }
}

/// Every child of a compliant stack, in apply order (identities and policy first, storage
/// before the workloads that mount it). A non-compliant stack gets none: no volume is
/// created where its data could leave Japan.
#[allow(
    clippy::vec_init_then_push,
    reason = "children in apply order, some of them conditional: one push per child reads as the list"
)]
pub fn children(stack: &HealthStack, residency: &Residency, agent_image: &str) -> Vec<Child> {
    if *residency != Residency::Compliant {
        return vec![];
    }
    let s = &stack.spec;
    let n = names(stack);
    let stack_name = stack.metadata.name.clone().unwrap_or_default();
    let managed = s.database.managed.as_ref();
    let writes = if s.suspend { 0 } else { 1 };
    let mut out = Vec::new();

    // Identity and least privilege: the app reads its own ConfigMap, nothing else.
    out.push(Child::ServiceAccount(ServiceAccount {
        metadata: meta(stack, &n.app, "app"),
        automount_service_account_token: Some(false),
        ..Default::default()
    }));
    out.push(Child::Role(Role {
        metadata: meta(stack, &n.app, "app"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![n.agent_config.clone()]),
            verbs: vec!["get".into()],
            non_resource_urls: None,
        }]),
    }));
    out.push(Child::RoleBinding(RoleBinding {
        metadata: meta(stack, &n.app, "app"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: n.app.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: n.app.clone(),
            namespace: stack.metadata.namespace.clone(),
            api_group: None,
        }]),
    }));

    // The intake's identity: no Kubernetes API access at all (its AWS role comes from the
    // EKS Pod Identity association Terraform makes for this ServiceAccount).
    out.push(Child::ServiceAccount(ServiceAccount {
        metadata: meta(stack, &n.intake, "intake"),
        automount_service_account_token: Some(false),
        ..Default::default()
    }));
    // Secrets, created once: the managed database's credentials and the stack's data key.
    if managed.is_some() {
        out.push(Child::Secret(GeneratedSecret {
            metadata: meta(stack, &n.db_credentials, "database"),
            fixed: BTreeMap::from([(
                intake::SECRET_USERNAME.to_string(),
                intake::DATABASE_USER.to_string(),
            )]),
            random: vec![(intake::SECRET_PASSWORD.to_string(), Random::Password)],
        }));
    }
    // Without a KMS key the data key is a Secret; with one there is no clear copy anywhere
    // but the intake's memory (the wrapped key lives in the stack's database).
    if stack.spec.storage.kms_key_arn.is_none() {
        out.push(Child::Secret(GeneratedSecret {
            metadata: meta(stack, &n.data_key, "intake"),
            fixed: BTreeMap::new(),
            random: vec![(intake::DATA_KEY_FILE.to_string(), Random::Key32)],
        }));
    }

    // Network: deny everything, then allow app → database, DNS, and the VPC endpoints.
    out.push(Child::NetworkPolicy(NetworkPolicy {
        metadata: meta(stack, &format!("{stack_name}-default-deny"), "network"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/instance".to_string(),
                    stack_name.clone(),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }));
    let mut app_egress = vec![dns_egress()];
    if managed.is_some() {
        app_egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer_labels(stack, "database")]),
            ports: Some(vec![tcp(5432)]),
        });
    }
    let blocks = |cidrs: &[String]| -> Vec<NetworkPolicyPeer> {
        cidrs
            .iter()
            .map(|c| NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: c.clone(),
                    except: None,
                }),
                ..Default::default()
            })
            .collect()
    };
    // The VPC endpoints speak HTTPS.
    if !s.network.allowed_egress_cidrs.is_empty() {
        app_egress.push(NetworkPolicyEgressRule {
            to: Some(blocks(&s.network.allowed_egress_cidrs)),
            ports: Some(vec![tcp(443)]),
        });
    }
    // An external database: its own subnets, its own port, whatever the endpoints are.
    if let Some(ext) = &s.database.external {
        app_egress.push(NetworkPolicyEgressRule {
            to: Some(blocks(&ext.cidrs)),
            ports: Some(vec![tcp(ext.port)]),
        });
    }
    out.push(Child::NetworkPolicy(NetworkPolicy {
        metadata: meta(stack, &n.app, "network"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(stack, "app")),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "kubernetes.io/metadata.name".to_string(),
                            stack.metadata.namespace.clone().unwrap_or_default(),
                        )])),
                        match_expressions: None,
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(8080)]),
            }]),
            egress: Some(app_egress),
        }),
    }));
    if managed.is_some() {
        out.push(Child::NetworkPolicy(NetworkPolicy {
            metadata: meta(stack, &n.db, "network"),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(selector(stack, "database")),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![
                        peer_labels(stack, "app"),
                        peer_labels(stack, "intake"),
                    ]),
                    ports: Some(vec![tcp(5432)]),
                }]),
                egress: Some(vec![dns_egress()]),
            }),
        }));
    }

    // The intake's network: the database, DNS and the VPC endpoints (S3) out; in, only
    // metrics scrapes from the stack's namespace and kenko-system.
    let mut intake_egress = vec![dns_egress()];
    if managed.is_some() {
        intake_egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer_labels(stack, "database")]),
            ports: Some(vec![tcp(5432)]),
        });
    }
    if !s.network.allowed_egress_cidrs.is_empty() {
        intake_egress.push(NetworkPolicyEgressRule {
            to: Some(blocks(&s.network.allowed_egress_cidrs)),
            ports: Some(vec![tcp(443)]),
        });
    }
    if let Some(ext) = &s.database.external {
        intake_egress.push(NetworkPolicyEgressRule {
            to: Some(blocks(&ext.cidrs)),
            ports: Some(vec![tcp(ext.port)]),
        });
    }
    let namespace_peer = |ns: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                ns.to_string(),
            )])),
            match_expressions: None,
        }),
        ..Default::default()
    };
    out.push(Child::NetworkPolicy(NetworkPolicy {
        metadata: meta(stack, &n.intake, "network"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(stack, "intake")),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    namespace_peer(&stack.metadata.namespace.clone().unwrap_or_default()),
                    namespace_peer(CONTROL_NAMESPACE),
                ]),
                ports: Some(vec![tcp(intake::METRICS_PORT)]),
            }]),
            egress: Some(intake_egress),
        }),
    }));

    // The agent's configuration for this stack, in the agent's own format (no secrets, no
    // personal data).
    out.push(Child::ConfigMap(ConfigMap {
        metadata: meta(stack, &n.agent_config, "agent"),
        data: Some(BTreeMap::from([(
            intake::CONFIG_FILE.to_string(),
            intake::agent_config(stack),
        )])),
        ..Default::default()
    }));

    // Storage, then the workloads.
    out.push(Child::PersistentVolumeClaim(pvc(
        stack,
        &n.data_pvc,
        "app",
        &s.storage.size,
    )));
    if let Some(db) = managed {
        let mut template = pvc(stack, "data", "database", &db.storage_size);
        template.metadata.owner_references = None;
        template.metadata.namespace = None;
        out.push(Child::Service(Service {
            metadata: meta(stack, &n.db, "database"),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                selector: Some(selector(stack, "database")),
                ports: Some(vec![ServicePort {
                    name: Some("postgres".into()),
                    port: 5432,
                    target_port: Some(IntOrString::Int(5432)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }));
        out.push(Child::StatefulSet(StatefulSet {
            metadata: meta(stack, &n.db, "database"),
            spec: Some(StatefulSetSpec {
                replicas: Some(writes),
                service_name: Some(n.db.clone()),
                selector: LabelSelector {
                    match_labels: Some(selector(stack, "database")),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(stack, "database")),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        automount_service_account_token: Some(false),
                        security_context: Some(pod_security(999)),
                        containers: vec![Container {
                            name: "postgres".into(),
                            image: Some(db.image.clone()),
                            ports: Some(vec![port("postgres", 5432)]),
                            // The image initialises the database with the generated
                            // credentials on first start (and refuses to start without).
                            env: Some(vec![
                                plain_env("PGDATA", "/var/lib/postgresql/data/pgdata"),
                                plain_env("POSTGRES_DB", intake::DATABASE_NAME),
                                secret_env(
                                    "POSTGRES_USER",
                                    &n.db_credentials,
                                    intake::SECRET_USERNAME,
                                ),
                                secret_env(
                                    "POSTGRES_PASSWORD",
                                    &n.db_credentials,
                                    intake::SECRET_PASSWORD,
                                ),
                            ]),
                            security_context: Some(SecurityContext {
                                // PostgreSQL writes its socket and pid under /var/run.
                                read_only_root_filesystem: Some(false),
                                ..restricted()
                            }),
                            volume_mounts: Some(vec![VolumeMount {
                                name: "data".into(),
                                mount_path: "/var/lib/postgresql/data".into(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                volume_claim_templates: Some(vec![template]),
                ..Default::default()
            }),
            status: None,
        }));
    }
    let mut app_env = vec![EnvVar {
        name: "KENKO_MUNICIPALITY_CODE".into(),
        value: Some(s.municipality.code.clone()),
        value_from: None,
    }];
    match (&managed, &s.database.external) {
        (Some(_), _) => app_env.push(EnvVar {
            name: "DATABASE_HOST".into(),
            value: Some(n.db.clone()),
            value_from: None,
        }),
        (None, Some(ext)) => app_env.push(EnvVar {
            name: "DATABASE_HOST".into(),
            value: Some(ext.host.clone()),
            value_from: None,
        }),
        _ => {}
    }
    let image = match &s.app.digest {
        Some(d) => format!(
            "{}@{d}",
            s.app.image.split('@').next().unwrap_or(&s.app.image)
        ),
        None => s.app.image.clone(),
    };
    out.push(Child::Deployment(Deployment {
        metadata: meta(stack, &n.app, "app"),
        spec: Some(DeploymentSpec {
            replicas: Some(if s.suspend { 0 } else { s.app.replicas }),
            selector: LabelSelector {
                match_labels: Some(selector(stack, "app")),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(stack, "app")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(n.app.clone()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security(65532)),
                    containers: vec![Container {
                        name: kenko_api::access::APP_CONTAINER.into(),
                        image: Some(image),
                        ports: Some(vec![port("http", 8080)]),
                        env: Some(app_env),
                        resources: s.app.resources.clone(),
                        security_context: Some(restricted()),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "data".into(),
                            mount_path: "/var/lib/health".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "data".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: n.data_pvc.clone(),
                            read_only: Some(false),
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }));
    out.push(Child::Deployment(intake_deployment(stack, agent_image)));
    // Where the controller reads the intake's status and Prometheus its metrics. A stuck or
    // read-only intake answers /readyz with 503, and that is when its status matters most:
    // the Service keeps not-ready pods, so the controller and Prometheus still reach them.
    out.push(Child::Service(Service {
        metadata: meta(stack, &n.intake, "intake"),
        spec: Some(ServiceSpec {
            publish_not_ready_addresses: Some(true),
            selector: Some(selector(stack, "intake")),
            ports: Some(vec![ServicePort {
                name: Some("metrics".into()),
                port: intake::METRICS_PORT,
                target_port: Some(IntOrString::Int(intake::METRICS_PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }));
    out.push(Child::Service(Service {
        metadata: meta(stack, &n.app, "app"),
        spec: Some(ServiceSpec {
            selector: Some(selector(stack, "app")),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 8080,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }));
    out.push(Child::PodDisruptionBudget(PodDisruptionBudget {
        metadata: meta(stack, &n.app, "app"),
        spec: Some(PodDisruptionBudgetSpec {
            // One pod may go at a time; with a single replica (or suspended) nothing blocks a
            // node drain.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(stack, "app")),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    }));
    out
}

/// The namespace of kenko's controller and its monitoring (metrics scrapes come from there).
pub const CONTROL_NAMESPACE: &str = "kenko-system";

/// `NAME-intake`: `kenko-agent run` with the configuration the controller rendered, one
/// replica (zero when suspended or decommissioning). A second replica or a restart mid-file
/// never loads a file twice: the ledger is in the stack's database, and everything that must
/// survive is in the bucket or the database, so the working directory is memory
/// (`emptyDir`, `medium: Memory`): a delivery never touches a node's disk.
fn intake_deployment(stack: &HealthStack, agent_image: &str) -> Deployment {
    let s = &stack.spec;
    let n = names(stack);
    let quantity = |q: &str| Quantity(q.to_string());
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: intake::CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "work".into(),
            mount_path: intake::WORK_DIR.into(),
            ..Default::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: n.agent_config.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "work".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(quantity("1Gi")),
            }),
            ..Default::default()
        },
    ];
    // The data key file only without a KMS key (with one, the wrapped key is in the database).
    if s.storage.kms_key_arn.is_none() {
        mounts.push(VolumeMount {
            name: "data-key".into(),
            mount_path: intake::DATA_KEY_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "data-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(n.data_key.clone()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let stack_name = stack.metadata.name.clone().unwrap_or_default();
    let mut env = vec![
        plain_env(intake::ENV_STACK, &stack_name),
        plain_env("AWS_REGION", &s.storage.region),
        plain_env("TZ", "Asia/Tokyo"),
    ];
    let credentials = match (&s.database.managed, &s.database.external) {
        (None, Some(ext)) => ext.secret_name.clone(),
        _ => n.db_credentials.clone(),
    };
    env.push(secret_env(
        intake::ENV_DATABASE_USER,
        &credentials,
        intake::SECRET_USERNAME,
    ));
    env.push(secret_env(
        intake::ENV_DATABASE_PASSWORD,
        &credentials,
        intake::SECRET_PASSWORD,
    ));
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(intake::METRICS_PORT),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    // The configuration's hash in the pod template: a changed configuration rolls the pods,
    // and a new pod the agent refuses (it exits saying why) never becomes ready while the
    // old one, with the last good configuration, keeps taking deliveries.
    let config_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(intake::agent_config(stack).as_bytes()))
    };
    Deployment {
        metadata: meta(stack, &n.intake, "intake"),
        spec: Some(DeploymentSpec {
            replicas: Some(if s.suspend { 0 } else { 1 }),
            selector: LabelSelector {
                match_labels: Some(selector(stack, "intake")),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(stack, "intake")),
                    annotations: Some(BTreeMap::from([(
                        intake::CONFIG_HASH_ANNOTATION.to_string(),
                        config_hash,
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(n.intake.clone()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security(65532)),
                    containers: vec![Container {
                        name: "intake".into(),
                        image: Some(agent_image.to_string()),
                        args: Some(vec![
                            "run".into(),
                            "--config".into(),
                            format!("{}/{}", intake::CONFIG_DIR, intake::CONFIG_FILE),
                        ]),
                        ports: Some(vec![port("metrics", intake::METRICS_PORT)]),
                        env: Some(env),
                        liveness_probe: Some(probe("/healthz")),
                        readiness_probe: Some(probe("/readyz")),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_string(), quantity("250m")),
                                ("memory".to_string(), quantity("256Mi")),
                            ])),
                            // The working directory is memory: the largest delivery plus
                            // the agent's own flat ~128 MiB.
                            limits: Some(BTreeMap::from([(
                                "memory".to_string(),
                                quantity("1536Mi"),
                            )])),
                            ..Default::default()
                        }),
                        security_context: Some(restricted()),
                        volume_mounts: Some(mounts),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Every place the stack's data lives: what its decommissioning ErasureRequest lists. Each is
/// a [`Target`] the agent knows how to erase (the contract test feeds these to the agent).
/// Locations the spec names but that are not valid targets (admitted under an older CRD) are
/// returned as errors, so the stack is kept and says why instead of being released unerased.
pub fn data_locations(stack: &HealthStack) -> Result<Vec<Target>, String> {
    let s = &stack.spec;
    let n = names(stack);
    let mut out: Vec<String> = n
        .pvcs(s.database.managed.is_some())
        .into_iter()
        .map(|p| format!("pvc:{p}"))
        .collect();
    out.extend(s.storage.records_bucket.iter().cloned());
    out.extend(s.storage.records_replica_bucket.iter().cloned());
    if s.intake.inbox.starts_with("s3://") {
        out.push(s.intake.inbox.clone());
    }
    // Recovery points where they are taken and where they are copied: both regions.
    out.push(format!(
        "backup-vault:{}/{}",
        s.storage.region, s.backup.source_vault
    ));
    out.push(format!(
        "backup-vault:{}/{}",
        s.backup.region, s.backup.vault
    ));
    // The stack's own key, last: its deletion makes every copy unreadable, backups included.
    // (Never the agent's own data key: the agent serves every stack with it.)
    if let Some(k) = &s.storage.kms_key_arn {
        // A multi-Region key (Terraform's per-stack key, `mrk-`) has its replica in the other
        // Japanese region, where the Osaka backups can be restored: it goes first, then the
        // primary, so no copy of the key outlives the erasure.
        if let Some(replica) = osaka_replica(k) {
            out.push(format!("kms:{replica}"));
        }
        out.push(format!("kms:{k}"));
    }
    let mut targets = Vec::new();
    for t in out {
        let parsed = t.parse::<Target>().map_err(|e| e.to_string())?;
        if !targets.contains(&parsed) {
            targets.push(parsed);
        }
    }
    Ok(targets)
}

/// The ARN of a multi-Region key's replica in the other Japanese region (the same key id).
pub fn osaka_replica(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "kms", region, account, key] = parts.as_slice() else {
        return None;
    };
    let other = match *region {
        "ap-northeast-1" => "ap-northeast-3",
        "ap-northeast-3" => "ap-northeast-1",
        _ => return None,
    };
    key.starts_with("key/mrk-")
        .then(|| format!("arn:{partition}:kms:{other}:{account}:{key}"))
}

/// A condition with the given fields, keeping the transition time when the status did not
/// change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        // One line, within the CRD's bound: details are in the controller's log.
        message: kenko_api::status_message(&message),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// What the reconciler saw after applying.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Available replicas of the app Deployment.
    pub app_available: i32,
    /// An apply that failed: (child, reason text).
    pub apply_error: Option<String>,
    /// The last account audit, from the ResidencyPolicy's status (`None`: none reported yet).
    pub audit: Option<AccountAudit>,
    /// What the stack's intake reported, checked ([`intake_observation`]); `None` when it was
    /// not asked (suspended, nothing deployed).
    pub intake: Option<IntakeObserved>,
}

/// The stack's intake as the controller believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeObserved {
    pub healthy: bool,
    pub reason: &'static str,
    pub message: String,
    /// The counts and times, when a report was read.
    pub status: Option<kenko_api::IntakeStatus>,
}

/// Checks what `NAME-intake` answered (or why it could not be read). The intake is another
/// identity: a reason outside the known set, a time that is not RFC 3339, or a message that is
/// not one line is not believed as given.
pub fn intake_observation(
    answer: Result<kenko_api::intake::IntakeReport, String>,
) -> IntakeObserved {
    let report = match answer {
        Ok(r) => r,
        Err(why) => {
            return IntakeObserved {
                healthy: false,
                reason: reason::INTAKE_NOT_REPORTING,
                message: kenko_api::status_message(&format!(
                    "the intake's status could not be read: {why}"
                )),
                status: None,
            }
        }
    };
    let Some(known) = reason::INTAKE_REPORTED
        .iter()
        .find(|r| **r == report.reason)
    else {
        return IntakeObserved {
            healthy: false,
            reason: reason::INTAKE_NOT_REPORTING,
            message: "the intake reported a reason kenko does not know".into(),
            status: None,
        };
    };
    let time = |t: &Option<String>| {
        t.as_ref()
            .filter(|t| t.len() <= 40 && chrono::DateTime::parse_from_rfc3339(t).is_ok())
            .cloned()
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let month = report.claim_month.as_ref().filter(|m| {
        m.len() == 7 && chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok()
    });
    IntakeObserved {
        healthy: *known == reason::INTAKE_OK,
        reason: known,
        message: kenko_api::status_message(&report.message),
        status: Some(kenko_api::IntakeStatus {
            claim_month: month.cloned(),
            last_round_at: time(&report.last_round_at),
            last_file_at: time(&report.last_file_at),
            files_loaded: count(report.files_loaded),
            files_returned: count(report.files_returned),
            rows_accepted: count(report.rows_accepted),
            rows_rejected: count(report.rows_rejected),
        }),
    }
}

/// Where the controller asks a stack's intake for its status: its Service.
pub fn intake_authority(stack: &HealthStack) -> String {
    format!(
        "{}.{}.svc:{}",
        names(stack).intake,
        stack.metadata.namespace.clone().unwrap_or_default(),
        intake::METRICS_PORT
    )
}

/// What the last account audit means for a stack: `None` when it found nothing wrong (or no
/// audit has been reported: the spec checks alone decide then), else the reason and message
/// of a ResidencyCompliant=False. The audit covers the whole account the stack lives in: a
/// bucket abroad or an internet gateway concerns every stack's data, so every stack shows it.
pub fn audit_verdict(audit: Option<&AccountAudit>) -> Option<(&'static str, String)> {
    let a = audit?;
    let (reason, what) = if a.violations > 0 {
        (
            reason::AUDIT_VIOLATION,
            format!("{} violation(s)", a.violations),
        )
    } else if a.unknown > 0 {
        (
            reason::AUDIT_INCOMPLETE,
            format!("{} check(s) it could not make", a.unknown),
        )
    } else {
        return None;
    };
    let shown: Vec<String> = a
        .findings
        .iter()
        .take(3)
        .map(|f| format!("{} {} on {} in {}", f.status, f.rule, f.resource, f.region))
        .collect();
    let more = ((a.violations + a.unknown) as usize).saturating_sub(shown.len());
    let mut message = format!(
        "the account audit of {} found {what}: {}",
        a.completed_at,
        shown.join("; ")
    );
    if more > 0 {
        message.push_str(&format!(" (and {more} more)"));
    }
    message.push_str("; see kubectl get residencypolicy default -o yaml and runbooks/residency-audit-incomplete.md or the rule's page");
    Some((reason, message))
}

/// The audit interval assumed when the audit does not say (the agent's default).
pub const DEFAULT_AUDIT_INTERVAL_SECS: i64 = 3600;
/// An audit is stale after twice its interval, and never believed longer than this.
pub const MAX_AUDIT_AGE_SECS: i64 = 2 * 86_400;

/// What the last account audit says about the stack's backups (`backup.coverage`), as
/// (covered, reason, message) for BackupConfigured. Only a recent audit that checked the stack
/// and answered with a reason kenko knows is believed: no audit, an audit older than twice its
/// interval (at most two days), a stack missing from it, a time that is not RFC 3339 or lies
/// in the future, or an unknown reason is `AuditIncomplete`. The agent is another identity: its
/// message is cut to one bounded line.
pub fn backup_verdict(
    stack: &HealthStack,
    audit: Option<&AccountAudit>,
    now: &Time,
) -> (bool, &'static str, String) {
    let incomplete = |m: String| (false, reason::AUDIT_INCOMPLETE, m);
    let Some(a) = audit else {
        return incomplete(
            "no account audit has been published (ResidencyPolicy default, status.audit): the stack's backups are not shown to exist"
                .into(),
        );
    };
    let ns = stack.metadata.namespace.as_deref().unwrap_or_default();
    let name = stack.metadata.name.as_deref().unwrap_or_default();
    let Some(b) = a
        .backups
        .iter()
        .find(|b| b.namespace == ns && b.name == name)
    else {
        return incomplete(format!(
            "the last account audit ({}) did not check this stack's backups",
            kenko_api::one_line(&a.completed_at, 64)
        ));
    };
    let Some(checked) = chrono::DateTime::parse_from_rfc3339(&b.checked_at)
        .ok()
        .filter(|_| b.checked_at.len() <= 64)
        .map(|t| t.timestamp())
    else {
        return incomplete("the account audit's time of this stack is not a time".into());
    };
    let interval = match i64::from(a.interval_secs) {
        0 => DEFAULT_AUDIT_INTERVAL_SECS,
        i => i,
    };
    let max_age = (2 * interval).min(MAX_AUDIT_AGE_SECS);
    let age = now.0.as_second() - checked;
    if age < -300 {
        return incomplete(format!(
            "the account audit of this stack is dated {}, in the future: not believed",
            b.checked_at
        ));
    }
    if age > max_age {
        return incomplete(format!(
            "the last account audit of this stack ({}) is older than {} minutes (twice the audit interval): its backups are not shown to exist now",
            b.checked_at,
            max_age / 60
        ));
    }
    let Some(known) = reason::BACKUP_REPORTED.iter().find(|r| **r == b.reason) else {
        return incomplete("the account audit reported a reason kenko does not know".into());
    };
    (
        *known == reason::BACKUP_COVERED,
        known,
        format!(
            "account audit of {}: {}",
            b.checked_at,
            kenko_api::one_line(&b.message, kenko_api::MAX_MESSAGE)
        ),
    )
}

/// The stack's conditions outside decommissioning.
pub fn conditions(
    stack: &HealthStack,
    residency: &Residency,
    observed: &Observed,
    now: &Time,
) -> Vec<Condition> {
    let prev = stack
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let generation = stack.metadata.generation;
    let c = |t: &str, ok: bool, r: &str, m: String| condition(&prev, t, ok, r, m, generation, now);
    let s = &stack.spec;
    let want = if s.suspend { 0 } else { s.app.replicas };
    let (res_ok, res_reason, res_msg) = match residency {
        Residency::Compliant => (
            true,
            reason::RESIDENCY_OK,
            format!(
                "storage in {}, backups in {}, StorageClass {} pinned to Japan",
                s.storage.region, s.backup.region, s.storage.class
            ),
        ),
        Residency::Violation { reason, message } => (false, *reason, message.clone()),
    };
    // The spec's own verdict comes first (it also stops deployment); the audit's can only
    // make a compliant spec non-compliant, never the reverse, and never stops the app: the
    // stray copy is in the account, not in what this stack deploys.
    let audit = audit_verdict(observed.audit.as_ref());
    let (res_ok, res_reason, res_msg) = match (&audit, res_ok) {
        (Some((r, m)), true) => (false, *r, m.clone()),
        _ => (res_ok, res_reason, res_msg),
    };
    let spec_ok = *residency == Residency::Compliant;
    let ready =
        spec_ok && observed.apply_error.is_none() && !s.suspend && observed.app_available >= want;
    let (ready_reason, ready_msg) = if !spec_ok {
        (res_reason, format!("nothing was deployed: {res_msg}"))
    } else if let Some(e) = &observed.apply_error {
        (reason::APPLY_FAILED, e.clone())
    } else if s.suspend {
        (
            reason::SUSPENDED,
            "suspended: the app and the database are scaled to zero; no writes".to_string(),
        )
    } else if ready {
        (
            reason::RECONCILED,
            format!("{}/{} app replicas available", observed.app_available, want),
        )
    } else {
        (
            reason::APPLYING,
            format!(
                "waiting for the app: {}/{} replicas available",
                observed.app_available, want
            ),
        )
    };
    let progressing = spec_ok && observed.apply_error.is_none() && !ready && !s.suspend;
    // A spec that breaks the backup rules says so first; otherwise the backups are what the
    // last account audit found, never what the spec asks for.
    let (backup_ok, backup_reason, backup_msg) = match residency {
        Residency::Violation { reason, message }
            if *reason == reason::BACKUP_SAME_REGION
                || *reason == reason::RETENTION_TOO_SHORT
                || *reason == reason::REGION_NOT_ALLOWED =>
        {
            (false, *reason, message.clone())
        }
        _ => backup_verdict(stack, observed.audit.as_ref(), now),
    };
    vec![
        c(condition::READY, ready, ready_reason, ready_msg.clone()),
        c(
            condition::PROGRESSING,
            progressing,
            if progressing {
                reason::APPLYING
            } else {
                ready_reason
            },
            if progressing {
                ready_msg.clone()
            } else {
                String::new()
            },
        ),
        match (&observed.apply_error, &audit) {
            (Some(e), _) => c(condition::DEGRADED, true, reason::APPLY_FAILED, e.clone()),
            (None, Some((r, m))) => c(condition::DEGRADED, true, r, m.clone()),
            (None, None) => c(
                condition::DEGRADED,
                false,
                reason::RECONCILED,
                String::new(),
            ),
        },
        c(condition::RESIDENCY_COMPLIANT, res_ok, res_reason, res_msg),
        c(
            condition::BACKUP_CONFIGURED,
            backup_ok,
            backup_reason,
            backup_msg,
        ),
        c(
            condition::DECOMMISSIONING,
            false,
            reason::NOT_DECOMMISSIONING,
            String::new(),
        ),
        match (&observed.intake, s.suspend) {
            (_, true) => c(
                condition::INTAKE_HEALTHY,
                false,
                reason::SUSPENDED,
                "the intake is scaled to zero".into(),
            ),
            (Some(i), false) => c(
                condition::INTAKE_HEALTHY,
                i.healthy,
                i.reason,
                i.message.clone(),
            ),
            (None, false) => c(
                condition::INTAKE_HEALTHY,
                false,
                reason::INTAKE_NOT_REPORTING,
                "the intake has not been asked yet".into(),
            ),
        },
    ]
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
