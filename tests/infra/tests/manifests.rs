//! kenko's Kubernetes manifests (`manifests/`), checked offline. The first tests check the real
//! tree: every object against the Kubernetes 1.33 schemas (`kubernetes-validate --strict`) or,
//! for kenko's own kinds, against the committed CRDs; every file reachable from its
//! kustomization; Pod Security; RBAC exactly as the binaries call the API; network policy;
//! the admission policies evaluated with kube's CEL; the wiring the binaries expect. The last
//! tests show that each check can fail, on a snippet that breaks one rule.
//!
//! Alerts naming an existing runbook page is `tests/runbooks.rs` (every alert in
//! `manifests/monitoring/`, so new alerts are covered there).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use kenko_infra_tests::manifests::{
    admission_policies, admit, containers, custom_object, files_under, grants, images_overridable,
    ip_blocks, kenko_hardening, kubernetes_validate_binary, kustomize, load_objects, missing_from,
    namespaces_exist, namespaces_pod_security, network_policies, parse_yaml,
    pod_security_restricted, pod_spec, rbac_bindings, rbac_no_wildcards, reachability,
    run_kubernetes_validate, schema_errors, str_at, Admission, Build, Object, KENKO_GROUP,
    NOT_OBJECTS,
};
use kenko_infra_tests::Violation;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl apply -k manifests/`
fn top() -> &'static Build {
    static BUILD: OnceLock<Build> = OnceLock::new();
    BUILD.get_or_init(|| kustomize(&repo(), "manifests"))
}

/// `kubectl apply -k manifests/samples/`
fn samples() -> &'static Build {
    static BUILD: OnceLock<Build> = OnceLock::new();
    BUILD.get_or_init(|| kustomize(&repo(), "manifests/samples"))
}

/// `kubectl apply -k manifests/monitoring/`
fn monitoring() -> &'static Build {
    static BUILD: OnceLock<Build> = OnceLock::new();
    BUILD.get_or_init(|| kustomize(&repo(), "manifests/monitoring"))
}

fn crds() -> Vec<Object> {
    let dir = repo().join("manifests/crds");
    let mut out = Vec::new();
    for rel in files_under(&dir) {
        let shown = format!("manifests/crds/{rel}");
        out.extend(load_objects(&dir.join(&rel), &shown).unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(
        out.len(),
        4,
        "manifests/crds/ should hold kenko's four CRDs"
    );
    out
}

fn listing(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return "  (none)".to_string();
    }
    violations
        .iter()
        .map(|v| format!("  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_clean(what: &str, violations: &[Violation]) {
    assert!(
        violations.is_empty(),
        "{what}: {} violation(s):\n{}",
        violations.len(),
        listing(violations)
    );
}

#[track_caller]
fn assert_reported(violations: &[Violation], rule: &str) {
    assert!(
        violations.iter().any(|v| v.rule == rule),
        "expected a [{rule}] violation, got:\n{}",
        listing(violations)
    );
}

fn object(build: &Build, kind: &str, name: &str) -> Object {
    build
        .find(kind, name)
        .unwrap_or_else(|| panic!("{} builds no {kind} {name}", build.root))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// (a) Every object is valid: Kubernetes kinds by kubernetes-validate, kenko's by its CRDs

/// Every YAML file under manifests/ that holds Kubernetes objects (kustomization files and
/// the Prometheus rule file are not objects).
fn object_files() -> Vec<String> {
    files_under(&repo().join("manifests"))
        .into_iter()
        .map(|rel| format!("manifests/{rel}"))
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .filter(|f| !f.ends_with("/kustomization.yaml"))
        .filter(|f| !NOT_OBJECTS.contains(&f.as_str()))
        .collect()
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    let binary = kubernetes_validate_binary().unwrap_or_else(|e| panic!("{e}"));
    let files = object_files();
    let mut kubernetes = BTreeSet::new();
    let mut kenko = BTreeSet::new();
    for f in &files {
        for o in load_objects(&repo().join(f), f).unwrap_or_else(|e| panic!("{e}")) {
            assert!(
                !o.api_version().is_empty() && !o.kind().is_empty() && !o.name().is_empty(),
                "{f}: every document is a Kubernetes object with apiVersion, kind and metadata.name"
            );
            if o.group() == KENKO_GROUP {
                kenko.insert((f.clone(), o.kind().to_string(), o.api_version().to_string()));
            } else {
                kubernetes.insert(format!("{f} {}/{}", o.kind().to_lowercase(), o.name()));
            }
        }
    }
    let run = run_kubernetes_validate(&binary, &repo(), &files).unwrap_or_else(|e| panic!("{e}"));
    let shown = format!(
        "`{} --strict -k 1.33.0 {}` printed:\n{}",
        binary.display(),
        files.join(" "),
        run.output
    );
    assert!(
        run.success && run.errors.is_empty(),
        "kubernetes-validate failed. {shown}"
    );
    let passed: BTreeSet<String> = run.passed.iter().cloned().collect();
    assert_eq!(
        passed, kubernetes,
        "every Kubernetes object should be validated, and only those. {shown}"
    );
    let unknown: BTreeSet<_> = run.no_schema.iter().cloned().collect();
    assert_eq!(
        unknown, kenko,
        "kubernetes-validate may lack a schema only for kenko.io kinds (checked against the CRDs \
         in kenko_objects_match_the_committed_crds); any other is a typo in apiVersion or kind. {shown}"
    );
    assert!(
        kubernetes.len() >= 30,
        "only {} objects validated. {shown}",
        kubernetes.len()
    );
}

#[test]
fn the_files_that_are_not_objects_are_what_they_claim() {
    for f in NOT_OBJECTS {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        let docs = parse_yaml(&text).unwrap();
        assert!(
            docs.iter()
                .all(|d| d.get("apiVersion").is_none() && d.get("groups").is_some()),
            "{f} is listed as a Prometheus rule file, not a Kubernetes object"
        );
    }
}

fn kenko_objects() -> Vec<Object> {
    let mut out = Vec::new();
    for f in object_files() {
        for o in load_objects(&repo().join(&f), &f).unwrap() {
            if o.group() == KENKO_GROUP {
                out.push(o);
            }
        }
    }
    out
}

/// The object through kenko-api's Rust type: it deserialises (the controller can read it),
/// keeps every field (nothing unknown to the type), and passes the type's CEL rules.
fn typed_round_trip(o: &Object) -> Result<Value, String> {
    fn through<T>(o: &Object, validate: impl Fn(&T) -> Result<(), String>) -> Result<Value, String>
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let typed: T = serde_json::from_value(o.value.clone()).map_err(|e| e.to_string())?;
        validate(&typed)?;
        serde_json::to_value(&typed).map_err(|e| e.to_string())
    }
    let cel = |e: kube::core::cel::ValidationErrors| e.to_string();
    match o.kind() {
        "HealthStack" => through::<kenko_api::HealthStack>(o, |t| t.validate_cel().map_err(cel)),
        "ResidencyPolicy" => {
            through::<kenko_api::ResidencyPolicy>(o, |t| t.validate_cel().map_err(cel))
        }
        "ErasureRequest" => {
            through::<kenko_api::ErasureRequest>(o, |t| t.validate_cel().map_err(cel))
        }
        "ErasureCertificate" => {
            through::<kenko_api::ErasureCertificate>(o, |t| t.validate_cel().map_err(cel))
        }
        other => Err(format!("no kenko-api type for kind {other}")),
    }
}

#[test]
fn kenko_objects_match_the_committed_crds() {
    let crds = crds();
    let objects = kenko_objects();
    let kinds: BTreeSet<&str> = objects.iter().map(Object::kind).collect();
    assert!(
        kinds.contains("HealthStack") && kinds.contains("ResidencyPolicy"),
        "the samples should hold a HealthStack and a ResidencyPolicy; found {kinds:?}"
    );
    let mut violations = Vec::new();
    for o in &objects {
        violations.extend(custom_object(&crds, o));
        match typed_round_trip(o) {
            Ok(round) => {
                for diff in missing_from(&o.value, &round) {
                    violations.push(Violation {
                        file: o.file.clone(),
                        address: o.address(),
                        rule: "typed-round-trip",
                        expected: format!("every field known to kenko-api's type ({diff})"),
                    });
                }
            }
            Err(e) => violations.push(Violation {
                file: o.file.clone(),
                address: o.address(),
                rule: "typed-round-trip",
                expected: format!(
                    "to deserialise into kenko-api's type and pass its CEL rules: {e}"
                ),
            }),
        }
    }
    assert_clean("kenko.io objects", &violations);
}

#[test]
fn the_sample_is_hachioji_in_tokyo_with_backups_in_osaka() {
    let stack = object(samples(), "HealthStack", "hachioji");
    let s = &stack.value["spec"];
    assert_eq!(
        s["municipality"],
        json!({"code": "132012", "name": "八王子市"})
    );
    assert_eq!(s["storage"]["region"], "ap-northeast-1");
    assert_eq!(s["storage"]["class"], "gp3-tokyo");
    assert_eq!(s["backup"]["region"], "ap-northeast-3");
    assert_eq!(s["backup"]["vault"], "kenko-prod-osaka");
    assert_eq!(s["backup"]["sourceVault"], "kenko-prod-tokyo");
    assert_eq!(s["backup"]["retentionYears"], 20);
    assert!(s["database"]["managed"].is_object());
    assert!(!s["network"]["allowedEgressCIDRs"]
        .as_array()
        .unwrap()
        .is_empty());
    let policy = object(samples(), "ResidencyPolicy", "default");
    assert_eq!(
        policy.value["spec"]["allowedStorageClasses"],
        json!(["gp3-tokyo"])
    );
    let sc = object(samples(), "StorageClass", "gp3-tokyo");
    assert_eq!(sc.value["provisioner"], "ebs.csi.aws.com");
    assert_eq!(sc.value["parameters"]["encrypted"], "true");
    let zones: Vec<String> = sc.value["allowedTopologies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["matchLabelExpressions"].as_array().unwrap().clone())
        .flat_map(|e| e["values"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!zones.is_empty());
    for z in &zones {
        assert!(
            z.starts_with("ap-northeast-1"),
            "gp3-tokyo may place volumes in {z}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Every file reachable, every listed resource present

#[test]
fn kustomizations_build_and_reach_every_file() {
    for b in [top(), samples(), monitoring()] {
        assert_clean(&format!("kustomize {}", b.root), &b.violations);
    }
    assert_clean(
        "reachability",
        &reachability(&repo(), "manifests", &[top(), samples(), monitoring()]),
    );
    let kinds: BTreeSet<&str> = top().objects.iter().map(Object::kind).collect();
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "DaemonSet",
        "ClusterRole",
    ] {
        assert!(kinds.contains(kind), "manifests/ builds no {kind}");
    }
    assert_eq!(top().of_kind("CustomResourceDefinition").count(), 4);
    assert!(
        top().objects.iter().all(|o| o.group() != KENKO_GROUP),
        "the samples (kenko.io objects) are not part of `kubectl apply -k manifests/`"
    );
    assert!(top()
        .files
        .iter()
        .all(|f| !f.starts_with("manifests/samples/")));
    // Names are unique per kind and namespace, as the API server requires.
    let mut seen = BTreeSet::new();
    for o in top().objects.iter().chain(&samples().objects) {
        assert!(
            seen.insert((
                o.kind().to_string(),
                o.namespace().map(str::to_string),
                o.name().to_string()
            )),
            "{} is defined twice",
            o.address()
        );
    }
}

/// `65535.0` and `65535` are the same number to the API server; kustomize writes the latter.
fn integral_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                json!(f as i64)
            }
            _ => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), integral_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn kubectl() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// The kustomize subset these checks build with gives exactly what `kubectl kustomize` gives.
/// kubectl is not part of the test set-up (no registry this project uses carries it), so this
/// cross-check runs where it is installed and says so where it is not.
#[test]
fn the_kustomize_subset_matches_kubectl_kustomize() {
    let Some(kubectl) = kubectl() else {
        eprintln!("kubectl not on PATH: cross-check with `kubectl kustomize` not run (the checks above do not need it)");
        return;
    };
    for b in [top(), samples(), monitoring()] {
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(repo().join(&b.root))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {} failed:\n{}",
            b.root,
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<Value> = parse_yaml(&String::from_utf8_lossy(&out.stdout))
            .unwrap()
            .iter()
            .map(integral_numbers)
            .collect();
        let mut unmatched: Vec<&Value> = theirs.iter().collect();
        for o in &b.objects {
            let ours = integral_numbers(&o.value);
            let Some(i) = unmatched.iter().position(|t| **t == ours) else {
                let same = theirs.iter().find(|t| {
                    str_at(t, &["kind"]) == o.kind() && str_at(t, &["metadata", "name"]) == o.name()
                });
                let diff = same.map_or_else(
                    || vec!["kubectl kustomize does not build it".to_string()],
                    |t| [missing_from(&ours, t), missing_from(t, &ours)].concat(),
                );
                panic!(
                    "{}: {} differs from kubectl kustomize's:\n  {}",
                    b.root,
                    o.address(),
                    diff.join("\n  ")
                );
            };
            unmatched.remove(i);
        }
        assert!(
            unmatched.is_empty(),
            "{}: kubectl kustomize builds objects these checks miss: {unmatched:?}",
            b.root
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Pod Security

const AGENT_NAMESPACE: &str = "kenko-node";

#[test]
fn every_pod_outside_the_agent_namespace_meets_pod_security_restricted() {
    let mut checked = Vec::new();
    let mut violations = Vec::new();
    for o in top().objects.iter().chain(&samples().objects) {
        if pod_spec(&o.value).is_none() || o.namespace() == Some(AGENT_NAMESPACE) {
            continue;
        }
        checked.push(o.address());
        violations.extend(pod_security_restricted(o));
        violations.extend(kenko_hardening(o));
    }
    assert!(
        checked.contains(&"Deployment kenko-system/kenko-controller".to_string()),
        "checked {checked:?}"
    );
    assert_clean("Pod Security restricted", &violations);
    let controller = object(top(), "Deployment", "kenko-controller");
    let c = containers(&controller.value)[0];
    assert_eq!(c["securityContext"]["runAsUser"], 65532);
}

#[test]
fn only_the_agent_runs_privileged_and_alone_in_its_namespace() {
    assert_clean(
        "namespaces (top)",
        &namespaces_pod_security(&top().objects, &[AGENT_NAMESPACE]),
    );
    assert_clean(
        "namespaces (samples)",
        &namespaces_pod_security(&samples().objects, &[]),
    );
    let ns = object(top(), "Namespace", AGENT_NAMESPACE);
    assert_eq!(
        ns.value["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    assert_eq!(
        object(top(), "Namespace", "kenko-system").value["metadata"]["labels"]
            ["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let in_agent_ns: Vec<String> = top()
        .objects
        .iter()
        .filter(|o| pod_spec(&o.value).is_some() && o.namespace() == Some(AGENT_NAMESPACE))
        .map(Object::address)
        .collect();
    assert_eq!(in_agent_ns, ["DaemonSet kenko-node/kenko-agent"]);
    let agent = object(top(), "DaemonSet", "kenko-agent");
    // It is privileged (that is why it has its own namespace), but no more than it needs.
    assert_reported(&pod_security_restricted(&agent), "psa-privileged");
    let spec = pod_spec(&agent.value).unwrap();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec.get(host).is_none(), "the agent needs no {host}");
    }
    assert_clean("agent hardening", &kenko_hardening(&agent));
}

#[test]
fn every_namespaced_object_lives_in_a_namespace_its_build_creates() {
    assert_clean("top", &namespaces_exist(&top().objects, &[]));
    assert_clean("samples", &namespaces_exist(&samples().objects, &[]));
    assert_clean(
        "monitoring",
        &namespaces_exist(&monitoring().objects, &["monitoring"]),
    );
}

// ---------------------------------------------------------------------------------------------
// (d) RBAC: exactly the calls the binaries make

/// The controller (controller/src/run.rs, reconcile.rs): one line per group, resource and verb.
const CONTROLLER_CLUSTER_ROLE: &[&str] = &[
    "kenko.io healthstacks get",
    "kenko.io healthstacks list",
    "kenko.io healthstacks watch",
    "kenko.io healthstacks patch",
    "kenko.io healthstacks update",
    "kenko.io healthstacks/status get",
    "kenko.io healthstacks/status patch",
    "kenko.io healthstacks/finalizers update",
    "kenko.io residencypolicies get",
    "kenko.io residencypolicies list",
    "kenko.io residencypolicies watch",
    "kenko.io erasurerequests get",
    "kenko.io erasurerequests list",
    "kenko.io erasurerequests watch",
    "kenko.io erasurerequests create",
    "kenko.io erasurerequests patch",
    "kenko.io erasurecertificates get",
    "kenko.io erasurecertificates list",
    "kenko.io erasurecertificates watch",
    "apps deployments get",
    "apps deployments list",
    "apps deployments watch",
    "apps deployments create",
    "apps deployments patch",
    "apps deployments delete",
    "apps statefulsets get",
    "apps statefulsets list",
    "apps statefulsets watch",
    "apps statefulsets create",
    "apps statefulsets patch",
    "apps statefulsets delete",
    "core services get",
    "core services list",
    "core services watch",
    "core services create",
    "core services patch",
    "core services delete",
    "core configmaps get",
    "core configmaps list",
    "core configmaps watch",
    "core configmaps create",
    "core configmaps patch",
    "core configmaps delete",
    "core serviceaccounts get",
    "core serviceaccounts list",
    "core serviceaccounts watch",
    "core serviceaccounts create",
    "core serviceaccounts patch",
    "core serviceaccounts delete",
    "core persistentvolumeclaims get",
    "core persistentvolumeclaims list",
    "core persistentvolumeclaims watch",
    "core persistentvolumeclaims create",
    "core persistentvolumeclaims patch",
    "core persistentvolumeclaims delete",
    "core secrets create",
    "networking.k8s.io networkpolicies get",
    "networking.k8s.io networkpolicies list",
    "networking.k8s.io networkpolicies watch",
    "networking.k8s.io networkpolicies create",
    "networking.k8s.io networkpolicies patch",
    "networking.k8s.io networkpolicies delete",
    "policy poddisruptionbudgets get",
    "policy poddisruptionbudgets list",
    "policy poddisruptionbudgets watch",
    "policy poddisruptionbudgets create",
    "policy poddisruptionbudgets patch",
    "policy poddisruptionbudgets delete",
    "rbac.authorization.k8s.io roles get",
    "rbac.authorization.k8s.io roles list",
    "rbac.authorization.k8s.io roles watch",
    "rbac.authorization.k8s.io roles create",
    "rbac.authorization.k8s.io roles patch",
    "rbac.authorization.k8s.io roles delete",
    "rbac.authorization.k8s.io rolebindings get",
    "rbac.authorization.k8s.io rolebindings list",
    "rbac.authorization.k8s.io rolebindings watch",
    "rbac.authorization.k8s.io rolebindings create",
    "rbac.authorization.k8s.io rolebindings patch",
    "rbac.authorization.k8s.io rolebindings delete",
    "storage.k8s.io storageclasses get",
    "storage.k8s.io storageclasses list",
    "storage.k8s.io storageclasses watch",
    "events.k8s.io events create",
    "events.k8s.io events patch",
];

/// Leader election through kube-lease-manager: get, create, and patch (it never updates).
const CONTROLLER_LEASE_ROLE: &[&str] = &[
    "coordination.k8s.io leases create",
    "coordination.k8s.io leases[kenko-controller] get",
    "coordination.k8s.io leases[kenko-controller] patch",
];

const AGENT_CLUSTER_ROLE: &[&str] = &[
    "kenko.io erasurerequests get",
    "kenko.io erasurerequests list",
    "kenko.io erasurerequests watch",
    "kenko.io erasurerequests/status get",
    "kenko.io erasurerequests/status patch",
    "kenko.io erasurecertificates get",
    "kenko.io erasurecertificates list",
    "kenko.io erasurecertificates create",
    "kenko.io residencypolicies/status patch",
    "kenko.io healthstacks list",
    "core persistentvolumeclaims get",
    "core persistentvolumes get",
    "core nodes get",
    "events.k8s.io events create",
    "events.k8s.io events patch",
];

/// The people who approve erasures (`kubectl kenko status`, `erasure list|approve`).
const APPROVER_ROLE: &[&str] = &[
    "kenko.io healthstacks get",
    "kenko.io healthstacks list",
    "kenko.io erasurerequests get",
    "kenko.io erasurerequests list",
    "kenko.io erasurerequests watch",
    "kenko.io erasurerequests patch",
    "kenko.io erasurecertificates get",
    "kenko.io erasurecertificates list",
];

/// Auditors (`kubectl kenko certificates ...`, `signers list`): read only.
const AUDITOR_ROLE: &[&str] = &[
    "kenko.io erasurecertificates get",
    "kenko.io erasurecertificates list",
    "kenko.io erasurecertificates watch",
    "kenko.io erasurerequests get",
    "kenko.io erasurerequests list",
    "kenko.io healthstacks get",
    "kenko.io healthstacks list",
    "kenko.io residencypolicies get",
    "kenko.io residencypolicies list",
    "core configmaps[kenko-erasure-signers] get",
];

const AGENT_LEASE_ROLE: &[&str] = &[
    "coordination.k8s.io leases create",
    "coordination.k8s.io leases[kenko-agent-cloud] get",
    "coordination.k8s.io leases[kenko-agent-cloud] patch",
];

/// The difference between what a role grants and what the table says it should, or `None`.
fn grant_diff(role: &Object, expected: &[&str]) -> Option<String> {
    let got = grants(role);
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let extra: Vec<&String> = got.difference(&want).collect();
    let missing: Vec<&String> = want.difference(&got).collect();
    if extra.is_empty() && missing.is_empty() {
        None
    } else {
        Some(format!(
            "{} ({}):\n  granted but not in the table: {extra:?}\n  in the table but not granted: {missing:?}",
            role.address(),
            role.file
        ))
    }
}

#[test]
fn roles_grant_exactly_the_calls_the_binaries_make() {
    let roles: BTreeMap<String, Object> = top()
        .objects
        .iter()
        .filter(|o| o.kind() == "ClusterRole" || o.kind() == "Role")
        .map(|o| (o.address(), o.clone()))
        .collect();
    let table: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("ClusterRole kenko-controller", CONTROLLER_CLUSTER_ROLE),
        (
            "Role kenko-system/kenko-controller-leader-election",
            CONTROLLER_LEASE_ROLE,
        ),
        ("ClusterRole kenko-agent", AGENT_CLUSTER_ROLE),
        ("ClusterRole kenko-erasure-approver", APPROVER_ROLE),
        ("ClusterRole kenko-auditor", AUDITOR_ROLE),
        (
            "Role kenko-node/kenko-agent-leader-election",
            AGENT_LEASE_ROLE,
        ),
    ]);
    assert_eq!(
        roles.keys().map(String::as_str).collect::<Vec<_>>(),
        table.keys().copied().collect::<Vec<_>>(),
        "the roles manifests/ defines"
    );
    let diffs: Vec<String> = table
        .iter()
        .filter_map(|(address, expected)| grant_diff(&roles[*address], expected))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_clean("rbac", &rbac_no_wildcards(&top().objects));
}

#[test]
fn each_role_is_bound_to_its_own_service_account_only() {
    let (violations, bound) = rbac_bindings(&top().objects);
    assert_clean("bindings", &violations);
    assert_eq!(
        bound.into_iter().collect::<Vec<_>>(),
        [
            "ClusterRoleBinding ClusterRole kenko-agent -> kenko-node/kenko-agent",
            "ClusterRoleBinding ClusterRole kenko-controller -> kenko-system/kenko-controller",
            "RoleBinding kenko-node/Role kenko-agent-leader-election -> kenko-node/kenko-agent",
            "RoleBinding kenko-system/Role kenko-controller-leader-election -> kenko-system/kenko-controller",
        ]
    );
    // Each rule in the RBAC files says why it is there.
    for f in [
        "manifests/controller/rbac.yaml",
        "manifests/agent/rbac.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("- apiGroups:") {
                assert!(
                    i > 0 && lines[i - 1].trim_start().starts_with('#'),
                    "{f}:{}: a rule without a comment saying why",
                    i + 1
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Images, network, wiring

#[test]
fn images_are_chosen_in_one_place() {
    assert_clean("images", &images_overridable(top()));
    assert_eq!(
        top().images,
        BTreeMap::from([
            (
                "kenko-agent".to_string(),
                "ghcr.io/kenko/kenko-agent:0.1.0".to_string()
            ),
            (
                "kenko-controller".to_string(),
                "ghcr.io/kenko/kenko-controller:0.1.0".to_string()
            ),
        ])
    );
    for f in &top().files {
        if f.ends_with("/kustomization.yaml") && f != "manifests/kustomization.yaml" {
            let k = &parse_yaml(&std::fs::read_to_string(repo().join(f)).unwrap()).unwrap()[0];
            assert!(
                k.get("images").is_none(),
                "{f}: images are set only in manifests/kustomization.yaml"
            );
        }
    }
    // The files name the images by their bare names, which the images: entries replace.
    for (f, want) in [
        ("manifests/controller/deployment.yaml", "kenko-controller"),
        ("manifests/agent/daemonset.yaml", "kenko-agent"),
    ] {
        let raw = load_objects(&repo().join(f), f).unwrap();
        let images: Vec<&str> = raw
            .iter()
            .flat_map(|o| containers(&o.value))
            .map(|c| str_at(c, &["image"]))
            .collect();
        assert_eq!(images, [want], "{f}");
    }
}

#[test]
fn network_policies_deny_by_default_and_never_reach_the_internet() {
    assert_clean("network policies", &network_policies(&top().objects));
    // One VPC CIDR, the same in both namespaces.
    let blocks = ip_blocks(&top().objects);
    let cidrs: BTreeSet<&String> = blocks.values().flatten().collect();
    assert_eq!(cidrs.len(), 1, "ipBlocks: {blocks:?}");
    assert_eq!(blocks.len(), 2, "ipBlocks: {blocks:?}");
    // Ingress only from the monitoring namespace, only to the metrics ports.
    let mut ingress = BTreeSet::new();
    for p in top().of_kind("NetworkPolicy") {
        for rule in p.value["spec"]["ingress"].as_array().into_iter().flatten() {
            for from in rule["from"].as_array().unwrap() {
                for port in rule["ports"].as_array().unwrap() {
                    ingress.insert(format!(
                        "{} <- {} {}",
                        p.namespace().unwrap(),
                        from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                        port["port"]
                    ));
                }
            }
        }
    }
    assert_eq!(
        ingress.into_iter().collect::<Vec<_>>(),
        [
            "kenko-node <- \"monitoring\" 9464",
            "kenko-system <- \"monitoring\" 8080"
        ]
    );
    // DNS is kube-system's, on 53 over UDP and TCP.
    for ns in ["kenko-system", "kenko-node"] {
        let dns = top().of_kind("NetworkPolicy").any(|p| {
            p.namespace() == Some(ns)
                && p.value["spec"]["egress"].as_array().into_iter().flatten().any(|r| {
                    r["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        == "kube-system"
                        && r["ports"] == json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
                })
        });
        assert!(
            dns,
            "{ns}: egress to DNS in kube-system on 53/UDP and 53/TCP"
        );
    }
}

fn env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = e["value"].as_str().map(str::to_string).unwrap_or_else(|| {
                format!(
                    "fieldRef:{}",
                    str_at(e, &["valueFrom", "fieldRef", "fieldPath"])
                )
            });
            (str_at(e, &["name"]).to_string(), value)
        })
        .collect()
}

fn probe_paths(container: &Value) -> (String, String) {
    (
        format!(
            "{} {}",
            str_at(container, &["livenessProbe", "httpGet", "path"]),
            str_at(container, &["livenessProbe", "httpGet", "port"])
        ),
        format!(
            "{} {}",
            str_at(container, &["readinessProbe", "httpGet", "path"]),
            str_at(container, &["readinessProbe", "httpGet", "port"])
        ),
    )
}

#[test]
fn the_controller_is_wired_as_kenko_controller_run_expects() {
    let d = object(top(), "Deployment", "kenko-controller");
    assert_eq!(d.namespace(), Some("kenko-system"));
    assert_eq!(d.value["spec"]["replicas"], 2);
    let pod = pod_spec(&d.value).unwrap();
    assert_eq!(pod["serviceAccountName"], "kenko-controller");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let c = containers(&d.value)[0];
    assert_eq!(c["args"], json!(["run"]));
    let env = env(c);
    assert_eq!(env["POD_NAME"], "fieldRef:metadata.name");
    assert_eq!(env["POD_NAMESPACE"], "fieldRef:metadata.namespace");
    assert_eq!(env["KENKO_METRICS_ADDR"], "0.0.0.0:8080");
    assert_eq!(
        c["ports"],
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        probe_paths(c),
        (
            "/healthz http-metrics".to_string(),
            "/readyz http-metrics".to_string()
        )
    );
    let labels = &d.value["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(selects(&d.value["spec"]["selector"]["matchLabels"]));
    let svc = object(top(), "Service", "kenko-controller-metrics");
    assert!(selects(&svc.value["spec"]["selector"]));
    assert_eq!(svc.value["spec"]["ports"][0]["targetPort"], "http-metrics");
    let pdb = object(top(), "PodDisruptionBudget", "kenko-controller");
    assert_eq!(pdb.value["spec"]["minAvailable"], 1);
    assert!(selects(&pdb.value["spec"]["selector"]["matchLabels"]));
    // The Lease the controller takes is the one its Role names, in its own namespace.
    let lease_role = object(top(), "Role", "kenko-controller-leader-election");
    assert_eq!(lease_role.namespace(), Some("kenko-system"));
    assert!(grants(&lease_role).contains("coordination.k8s.io leases[kenko-controller] patch"));
}

#[test]
fn the_agent_is_wired_as_kenko_agent_run_cluster_expects() {
    let ds = object(top(), "DaemonSet", "kenko-agent");
    assert_eq!(ds.namespace(), Some(AGENT_NAMESPACE));
    let pod = pod_spec(&ds.value).unwrap();
    assert_eq!(pod["serviceAccountName"], "kenko-agent");
    let c = containers(&ds.value)[0];
    assert_eq!(c["args"], json!(["run", "--cluster"]));
    let env = env(c);
    assert_eq!(env["NODE_NAME"], "fieldRef:spec.nodeName");
    assert_eq!(env["POD_NAME"], "fieldRef:metadata.name");
    assert_eq!(env["POD_NAMESPACE"], "fieldRef:metadata.namespace");
    assert_eq!(env["KENKO_DATA_DIR"], "/var/lib/kenko");
    assert_eq!(env["KENKO_METRICS_ADDR"], "0.0.0.0:9464");
    assert_eq!(
        c["ports"],
        json!([{"name": "http-metrics", "containerPort": 9464, "protocol": "TCP"}])
    );
    assert_eq!(
        probe_paths(c),
        (
            "/healthz http-metrics".to_string(),
            "/readyz http-metrics".to_string()
        )
    );
    let host_paths: BTreeMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| (str_at(v, &["name"]), str_at(v, &["hostPath", "path"])))
        .collect();
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (str_at(m, &["name"]), str_at(m, &["mountPath"])))
        .collect();
    for (host, inside) in [
        ("/dev", "/dev"),
        ("/var/lib/kenko", "/var/lib/kenko"),
        (
            kenko_api::access::POD_LOG_DIR,
            kenko_api::access::POD_LOG_DIR,
        ),
    ] {
        let vol = host_paths
            .iter()
            .find(|(_, p)| **p == host)
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("no hostPath {host}"));
        assert_eq!(mounts.get(vol), Some(&inside), "hostPath {host}");
    }
    // Its configuration and the roster, where kenko_api::access says they are.
    let config_maps: BTreeMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("configMap").is_some())
        .map(|v| (str_at(v, &["name"]), str_at(v, &["configMap", "name"])))
        .collect();
    for (cm, dir) in [
        (
            kenko_api::access::NODE_CONFIGMAP,
            kenko_api::access::NODE_CONFIG_DIR,
        ),
        (
            kenko_api::access::ROSTER_CONFIGMAP,
            kenko_api::access::ROSTER_DIR,
        ),
    ] {
        let vol = config_maps
            .iter()
            .find(|(_, n)| **n == cm)
            .map(|(v, _)| *v)
            .unwrap_or_else(|| panic!("no volume of ConfigMap {cm}"));
        assert_eq!(mounts.get(vol), Some(&dir), "ConfigMap {cm}");
    }
    assert_eq!(
        env["KENKO_CONFIG"],
        format!(
            "{}/{}",
            kenko_api::access::NODE_CONFIG_DIR,
            kenko_api::access::NODE_CONFIG_KEY
        )
    );
    let cm = object(top(), "ConfigMap", kenko_api::access::NODE_CONFIGMAP);
    assert_eq!(cm.namespace(), Some(AGENT_NAMESPACE));
    assert!(cm.value["data"][kenko_api::access::NODE_CONFIG_KEY].is_string());
    let lease_role = object(top(), "Role", "kenko-agent-leader-election");
    assert_eq!(lease_role.namespace(), Some(AGENT_NAMESPACE));
    assert!(grants(&lease_role).contains("coordination.k8s.io leases[kenko-agent-cloud] patch"));
}

// ---------------------------------------------------------------------------------------------
// Admission: erasure requests and certificates tied to authenticated identities

const CONTROLLER_SA: &str = "system:serviceaccount:kenko-system:kenko-controller";
const AGENT_SA: &str = "system:serviceaccount:kenko-node:kenko-agent";

fn erasure_request(requested_by: &str, approved_by: Option<&str>, stack: Option<&str>) -> Value {
    let mut spec = json!({
        "targets": ["pvc:data-hachioji-db-0", "datakey:records"],
        "method": "clear",
        "verification": "full",
        "requestedBy": requested_by,
    });
    if let Some(a) = approved_by {
        spec["approvedBy"] = json!(a);
    }
    if let Some(s) = stack {
        spec["stack"] = json!(s);
    }
    json!({
        "apiVersion": "kenko.io/v1alpha1",
        "kind": "ErasureRequest",
        "metadata": {"name": "decommission-hachioji", "namespace": "hachioji"},
        "spec": spec,
    })
}

fn request_admission(
    operation: &'static str,
    user: &str,
    object: Value,
    old: Option<Value>,
) -> Admission {
    Admission {
        operation,
        username: user.to_string(),
        group: "kenko.io".into(),
        version: "v1alpha1".into(),
        resource: "erasurerequests".into(),
        object,
        old_object: old,
    }
}

fn certificate() -> Value {
    json!({
        "apiVersion": "kenko.io/v1alpha1",
        "kind": "ErasureCertificate",
        "metadata": {"name": "000001-decommission-hachioji"},
        "spec": {
            "jobId": "decommission-hachioji",
            "request": "hachioji/decommission-hachioji",
            "stack": "hachioji/hachioji",
            "targets": ["datakey:records"],
            "targetCount": 1,
            "blockedCount": 0,
            "signer": "ab".repeat(32),
            "sha256": "cd".repeat(32),
            "issuedAt": "2026-11-26T00:00:00Z",
            "certificate": "{}\n",
        }
    })
}

#[track_caller]
fn assert_admitted(req: &Admission) {
    let denials = admit(&top().objects, req);
    assert!(
        denials.is_empty(),
        "{} by {} should be admitted; denied: {denials:?}",
        req.operation,
        req.username
    );
}

#[track_caller]
fn assert_denied(req: &Admission, needle: &str) {
    let denials = admit(&top().objects, req);
    assert!(
        denials.iter().any(|d| d.contains(needle)),
        "{} by {} should be denied with {needle:?}; got {denials:?}",
        req.operation,
        req.username
    );
}

#[test]
fn the_admission_policies_compile_fail_closed_and_are_bound() {
    assert_clean("admission policies", &admission_policies(&top().objects));
    assert_eq!(top().of_kind("ValidatingAdmissionPolicy").count(), 4);
    // The objects the scenarios below use are ones the CRDs admit.
    let crds = crds();
    for v in [
        erasure_request("alice", None, Some("hachioji")),
        erasure_request("alice", Some("bob"), None),
    ] {
        assert_clean(
            "scenario object",
            &custom_object(&crds, &Object::new("(test)", v)),
        );
    }
    assert_clean(
        "scenario object",
        &custom_object(&crds, &Object::new("(test)", certificate())),
    );
}

#[test]
fn an_erasure_is_requested_in_ones_own_name_and_unapproved() {
    let alice = erasure_request("alice", None, None);
    assert_admitted(&request_admission("CREATE", "alice", alice.clone(), None));
    assert_denied(
        &request_admission("CREATE", "mallory", alice, None),
        "spec.requestedBy must be your own user name",
    );
    assert_denied(
        &request_admission(
            "CREATE",
            "alice",
            erasure_request("alice", Some("bob"), None),
            None,
        ),
        "created unapproved",
    );
    // The controller asks in a stack's name when the stack is deleted, and only then.
    let decommission = erasure_request("alice", None, Some("hachioji"));
    assert_admitted(&request_admission(
        "CREATE",
        CONTROLLER_SA,
        decommission,
        None,
    ));
    assert_denied(
        &request_admission(
            "CREATE",
            CONTROLLER_SA,
            erasure_request("alice", None, None),
            None,
        ),
        "spec.requestedBy must be your own user name",
    );
    assert_denied(
        &request_admission(
            "CREATE",
            CONTROLLER_SA,
            erasure_request("alice", Some("bob"), Some("hachioji")),
            None,
        ),
        "created unapproved",
    );
}

#[test]
fn an_erasure_is_approved_by_a_second_person_in_their_own_name() {
    let pending = erasure_request("alice", None, Some("hachioji"));
    let approved_by_bob = erasure_request("alice", Some("bob"), Some("hachioji"));
    assert_admitted(&request_admission(
        "UPDATE",
        "bob",
        approved_by_bob.clone(),
        Some(pending.clone()),
    ));
    assert_denied(
        &request_admission(
            "UPDATE",
            "mallory",
            approved_by_bob.clone(),
            Some(pending.clone()),
        ),
        "spec.approvedBy must be your own user name",
    );
    assert_denied(
        &request_admission(
            "UPDATE",
            "alice",
            erasure_request("alice", Some("alice"), Some("hachioji")),
            Some(pending.clone()),
        ),
        "someone other than the person who requested it",
    );
    let by_controller = erasure_request("alice", Some(CONTROLLER_SA), Some("hachioji"));
    assert_denied(
        &request_admission(
            "UPDATE",
            CONTROLLER_SA,
            by_controller,
            Some(pending.clone()),
        ),
        "approved by a person",
    );
    // Updates that leave the approval as it is (labels, owner references) are not this
    // policy's concern, whoever makes them.
    let mut labelled = approved_by_bob.clone();
    labelled["metadata"]["labels"] = json!({"kenko.io/stack": "hachioji"});
    assert_admitted(&request_admission(
        "UPDATE",
        CONTROLLER_SA,
        labelled,
        Some(approved_by_bob),
    ));
    let mut labelled = pending.clone();
    labelled["metadata"]["labels"] = json!({"kenko.io/stack": "hachioji"});
    assert_admitted(&request_admission(
        "UPDATE",
        CONTROLLER_SA,
        labelled,
        Some(pending.clone()),
    ));
    // The agent's status reports go to the status subresource, which these policies leave alone.
    let mut status = request_admission("UPDATE", AGENT_SA, pending.clone(), Some(pending));
    status.resource = "erasurerequests/status".into();
    assert_admitted(&status);
}

#[test]
fn only_the_agent_issues_erasure_certificates() {
    let create = |user: &str| Admission {
        operation: "CREATE",
        username: user.to_string(),
        group: "kenko.io".into(),
        version: "v1alpha1".into(),
        resource: "erasurecertificates".into(),
        object: certificate(),
        old_object: None,
    };
    assert_admitted(&create(AGENT_SA));
    for user in [
        CONTROLLER_SA,
        "alice",
        "system:serviceaccount:default:kenko-agent",
        "system:serviceaccount:kenko-system:kenko-agent",
    ] {
        assert_denied(&create(user), "issued only by the kenko agent");
    }
}

fn signers_admission(
    operation: &'static str,
    user: &str,
    namespace: &str,
    name: &str,
) -> Admission {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"node-a": "ab".repeat(32)},
    });
    Admission {
        operation,
        username: user.to_string(),
        group: "".into(),
        version: "v1".into(),
        resource: "configmaps".into(),
        object: cm.clone(),
        old_object: (operation == "UPDATE").then_some(cm),
    }
}

#[test]
fn only_people_register_trusted_signers_and_the_agent_cannot_at_all() {
    for op in ["CREATE", "UPDATE"] {
        assert_admitted(&signers_admission(
            op,
            "alice",
            "kenko-system",
            "kenko-erasure-signers",
        ));
        for sa in [
            AGENT_SA,
            CONTROLLER_SA,
            "system:serviceaccount:hachioji:default",
        ] {
            assert_denied(
                &signers_admission(op, sa, "kenko-system", "kenko-erasure-signers"),
                "registered by people",
            );
        }
    }
    // Other ConfigMaps, and one of the same name elsewhere, are not this policy's business.
    assert_admitted(&signers_admission(
        "CREATE",
        AGENT_SA,
        "kenko-system",
        "other",
    ));
    assert_admitted(&signers_admission(
        "CREATE",
        CONTROLLER_SA,
        "hachioji",
        "kenko-erasure-signers",
    ));
    // And RBAC gives the agent no way to write any ConfigMap in the first place.
    assert!(
        !AGENT_CLUSTER_ROLE
            .iter()
            .any(|g| g.starts_with("core configmaps")),
        "the agent writes no ConfigMap"
    );
}

// ---------------------------------------------------------------------------------------------
// Alert rules

#[test]
fn alert_rules_follow_one_style_and_cover_the_controller() {
    let f = "manifests/monitoring/prometheus-rules.yaml";
    let doc = &parse_yaml(&std::fs::read_to_string(repo().join(f)).unwrap()).unwrap()[0];
    let mut exprs = BTreeMap::new();
    for group in doc["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = str_at(rule, &["alert"]);
            assert!(!name.is_empty(), "{f}: a rule without an alert name");
            assert!(
                ["critical", "warning", "info"].contains(&str_at(rule, &["labels", "severity"])),
                "{f}: {name}: labels.severity critical, warning or info"
            );
            assert!(
                !str_at(rule, &["annotations", "summary"]).is_empty(),
                "{f}: {name}: summary"
            );
            assert!(
                str_at(rule, &["annotations", "runbook_url"]).starts_with("runbooks/"),
                "{f}: {name}: runbook_url into runbooks/"
            );
            let expr = str_at(rule, &["expr"]).trim().to_string();
            let r#for = str_at(rule, &["for"]).to_string();
            exprs.insert(name.to_string(), (expr, r#for));
        }
    }
    let want = [
        (
            "KenkoControllerDown",
            r#"sum(up{job="kenko-controller"}) == 0 or absent(up{job="kenko-controller"})"#,
            "5m",
        ),
        (
            "KenkoStackResidencyViolation",
            r#"kenko_controller_stack_condition{type="ResidencyCompliant",status="False"} == 1"#,
            "5m",
        ),
        (
            "KenkoStackDecommissionStuck",
            r#"kenko_controller_stack_condition{type="Decommissioning",status="True"} == 1"#,
            "24h",
        ),
        (
            "KenkoControllerReconcileErrors",
            "rate(kenko_controller_reconcile_errors_total[10m]) > 0",
            "30m",
        ),
        (
            "KenkoStackBackupNotCovered",
            r#"kenko_controller_stack_condition{type="BackupConfigured",status="False"} == 1"#,
            "2h",
        ),
    ];
    for (name, expr, r#for) in want {
        assert_eq!(
            exprs.get(name),
            Some(&(expr.to_string(), r#for.to_string())),
            "{f}: {name}"
        );
    }
    assert!(
        exprs.contains_key("KenkoAgentDown"),
        "the agent's alerts stay"
    );
}

// ---------------------------------------------------------------------------------------------
// Each check can fail

fn deployment(container_security: Value, pod_extra: Value) -> Object {
    let mut pod = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app",
            "image": "app",
            "securityContext": container_security,
        }],
    });
    for (k, v) in pod_extra.as_object().unwrap() {
        pod[k] = v.clone();
    }
    Object::new(
        "(snippet)",
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "namespace": "kenko-system"},
            "spec": {"template": {"spec": pod}},
        }),
    )
}

fn locked_down() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
}

#[test]
fn pod_security_catches_each_loosening() {
    assert_clean(
        "locked down",
        &pod_security_restricted(&deployment(locked_down(), json!({}))),
    );
    let cases: [(Value, Value, &str); 9] = [
        (
            json!({"capabilities": {"drop": ["ALL"]}}),
            json!({}),
            "psa-privilege-escalation",
        ),
        (
            json!({"allowPrivilegeEscalation": false}),
            json!({}),
            "psa-capabilities",
        ),
        (
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}),
            json!({}),
            "psa-capabilities",
        ),
        (
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": true}),
            json!({}),
            "psa-privileged",
        ),
        (
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsUser": 0}),
            json!({}),
            "psa-run-as-non-root",
        ),
        (
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Unconfined"}}),
            json!({}),
            "psa-seccomp",
        ),
        (
            locked_down(),
            json!({"hostNetwork": true}),
            "psa-host-namespaces",
        ),
        (
            locked_down(),
            json!({"volumes": [{"name": "dev", "hostPath": {"path": "/dev"}}]}),
            "psa-volume-types",
        ),
        (
            locked_down(),
            json!({"securityContext": {}}),
            "psa-run-as-non-root",
        ),
    ];
    for (container, pod, rule) in cases {
        assert_reported(&pod_security_restricted(&deployment(container, pod)), rule);
    }
    // No seccomp profile at either level.
    assert_reported(
        &pod_security_restricted(&deployment(
            locked_down(),
            json!({"securityContext": {"runAsNonRoot": true}}),
        )),
        "psa-seccomp",
    );
    let bare = deployment(locked_down(), json!({}));
    assert_reported(&kenko_hardening(&bare), "read-only-root");
    assert_reported(&kenko_hardening(&bare), "resources");
    assert_reported(&kenko_hardening(&bare), "probes");
}

#[test]
fn the_grant_table_catches_an_extra_verb_or_resource() {
    let mut role = object(top(), "ClusterRole", "kenko-agent");
    assert!(grant_diff(&role, AGENT_CLUSTER_ROLE).is_none());
    role.value["rules"][0]["verbs"]
        .as_array_mut()
        .unwrap()
        .push(json!("delete"));
    let diff = grant_diff(&role, AGENT_CLUSTER_ROLE).expect("an extra verb is reported");
    assert!(diff.contains("kenko.io erasurerequests delete"), "{diff}");
    let mut role = object(top(), "ClusterRole", "kenko-agent");
    role.value["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
    let diff = grant_diff(&role, AGENT_CLUSTER_ROLE).expect("an extra resource is reported");
    assert!(diff.contains("core secrets get"), "{diff}");
    role.value["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
    assert_reported(&rbac_no_wildcards(&[role]), "rbac-explicit");
}

#[test]
fn reachability_catches_an_unlisted_file_and_a_missing_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: x\n";
    write(
        "manifests/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - a.yaml\n  - missing.yaml\ncommonLabels:\n  x: y\n",
    );
    write("manifests/a.yaml", sa);
    write("manifests/forgotten/b.yaml", sa);
    let build = kustomize(tmp.path(), "manifests");
    assert_reported(&build.violations, "resource-exists");
    assert_reported(&build.violations, "kustomize-supported");
    let r = reachability(tmp.path(), "manifests", &[&build]);
    assert_reported(&r, "reachable");
    assert!(
        r.iter().any(|v| v.file == "manifests/forgotten/b.yaml"),
        "{}",
        listing(&r)
    );
    assert!(
        !r.iter().any(|v| v.file == "manifests/a.yaml"),
        "{}",
        listing(&r)
    );
}

#[test]
fn network_policy_checks_catch_the_internet_and_a_missing_default_deny() {
    let mut objects = top().objects.clone();
    let egress = objects
        .iter_mut()
        .find(|o| o.is("NetworkPolicy", "kenko-agent-egress"))
        .unwrap();
    egress.value["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = json!("0.0.0.0/0");
    assert_reported(&network_policies(&objects), "network-egress");
    let mut objects = top().objects.clone();
    objects.retain(|o| {
        !(o.is("NetworkPolicy", "default-deny") && o.namespace() == Some("kenko-system"))
    });
    assert_reported(&network_policies(&objects), "network-default-deny");
}

#[test]
fn crd_checks_catch_unknown_fields_wrong_types_missing_fields_and_cel() {
    let crds = crds();
    let good = object(samples(), "HealthStack", "hachioji");
    assert_clean("sample", &custom_object(&crds, &good));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut o = good.clone();
        f(&mut o.value);
        custom_object(&crds, &o)
    };
    let typo = broken(&|v| {
        v["spec"]["network"]["allowedEgressCidrs"] = json!(["10.0.0.0/16"]);
    });
    assert!(
        typo.iter().any(|x| x
            .expected
            .contains("spec.network.allowedEgressCidrs: unknown field")),
        "{}",
        listing(&typo)
    );
    assert_reported(
        &broken(&|v| v["spec"]["backup"]["retentionYears"] = json!("20")),
        "crd-schema",
    );
    assert_reported(
        &broken(&|v| {
            v["spec"]["backup"].as_object_mut().unwrap().remove("vault");
        }),
        "crd-schema",
    );
    assert_reported(
        &broken(&|v| v["spec"]["backup"]["region"] = json!("ap-northeast-1")),
        "crd-cel",
    );
    assert_reported(
        &broken(&|v| v["spec"]["backup"]["retentionYears"] = json!(10)),
        "crd-cel",
    );
    assert_reported(
        &broken(&|v| v["spec"]["network"]["allowedEgressCIDRs"] = json!(["0.0.0.0/0"])),
        "crd-cel",
    );
    assert_reported(
        &broken(&|v| {
            v["metadata"].as_object_mut().unwrap().remove("namespace");
        }),
        "crd-scope",
    );
    assert_reported(
        &broken(&|v| v["kind"] = json!("HealthStacks")),
        "crd-exists",
    );
    // A schema keyword the check does not know is an error, never skipped.
    let odd = schema_errors(&json!({"type": "string", "pattern": "^a$"}), &json!("a"));
    assert!(odd.iter().any(|e| e.contains("pattern")), "{odd:?}");
}

#[test]
fn kubernetes_validate_refuses_an_unknown_field() {
    let binary = kubernetes_validate_binary().unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("manifests/controller/deployment.yaml"))
        .unwrap()
        .replace("  replicas: 2\n", "  replicas: 2\n  replica: 2\n");
    std::fs::write(tmp.path().join("deployment.yaml"), text).unwrap();
    let run =
        run_kubernetes_validate(&binary, tmp.path(), &["deployment.yaml".to_string()]).unwrap();
    assert!(
        !run.success
            && run
                .errors
                .iter()
                .any(|e| e.contains("'replica' was unexpected")),
        "kubernetes-validate --strict should refuse spec.replica:\n{}",
        run.output
    );
}

#[test]
fn the_image_transform_handles_tags_and_digests() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("k")).unwrap();
    let write =
        |rel: &str, text: &str| std::fs::write(tmp.path().join("k").join(rel), text).unwrap();
    write(
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - d.yaml\n\
         images:\n  - name: kenko-controller\n    newName: registry.internal/kenko/kenko-controller\n    \
         digest: sha256:0123\n  - name: sidecar\n    newTag: \"2\"\n",
    );
    write(
        "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      \
         containers:\n        - name: a\n          image: kenko-controller\n        - name: b\n          \
         image: sidecar:1\n        - name: c\n          image: other/sidecar:1\n",
    );
    let build = kustomize(tmp.path(), "k");
    assert_clean("build", &build.violations);
    let images: Vec<&str> = containers(&build.objects[0].value)
        .iter()
        .map(|c| str_at(c, &["image"]))
        .collect();
    assert_eq!(
        images,
        [
            "registry.internal/kenko/kenko-controller@sha256:0123",
            "sidecar:2",
            "other/sidecar:1"
        ]
    );
    assert_reported(&images_overridable(&build), "image-overridable");
}

/// The controller deploys each stack's intake with the agent image: the image it is told
/// (KENKO_AGENT_IMAGE) is, after the kustomization, exactly the agent DaemonSet's.
#[test]
fn the_intake_the_controller_deploys_runs_the_same_agent_image_as_the_daemonset() {
    let ds = object(top(), "DaemonSet", "kenko-agent");
    let containers = |o: &Object| {
        o.value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone()
    };
    let agent = containers(&ds)
        .into_iter()
        .find(|c| c["name"] == "agent")
        .unwrap();
    let image = agent["image"].as_str().unwrap().to_string();
    assert_eq!(Some(&image), top().images.get("kenko-agent"));
    let controller = containers(&object(top(), "Deployment", "kenko-controller"))
        .into_iter()
        .find(|c| c["name"] == "controller")
        .unwrap();
    let told = controller["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KENKO_AGENT_IMAGE")
        .expect("the controller is told the agent image")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(told, image);
}
