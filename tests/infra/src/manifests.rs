//! Static checks of kenko's Kubernetes manifests (`manifests/`).
//!
//! [`kustomize`] builds a kustomization the way `kubectl apply -k` would, for the subset of
//! kustomize kenko uses (`resources`, `images`, `namespace`, `configMapGenerator`, and
//! `replacements` by kind, name and `[name=X]` field paths, after the images); any other
//! field is a violation, so no check ever runs on something other than what would be applied.
//! The result is a [`Build`]: the objects, and every file read to make them. Each check is a
//! function from objects (or a build) to [`Violation`]s, as for the Terraform, so a test prints
//! every problem at once and the negative tests run the same function on a snippet.
//!
//! Objects of kenko's own kinds (group `kenko.io`) are checked against the committed CRDs:
//! their structural schema ([`schema_errors`]: types, required and unknown fields, lengths,
//! ranges) and their CEL rules (kube's client-side CEL, defaults applied first, as the API
//! server does). ValidatingAdmissionPolicies are evaluated with the same CEL ([`admit`]).
//! Everything else is validated by `kubernetes-validate` against the Kubernetes schemas
//! ([`run_kubernetes_validate`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::core::cel::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, Validator, VapEvaluator,
    VapExpression,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{LoadError, Violation};

/// The Kubernetes release the manifests are written for (`kubernetes-validate -k`).
pub const KUBERNETES_VERSION: &str = "1.33.0";
/// The Pod Security Standards version every namespace pins.
pub const POD_SECURITY_VERSION: &str = "v1.33";
/// The group of kenko's own kinds, validated against the committed CRDs.
pub const KENKO_GROUP: &str = "kenko.io";
/// Files under `manifests/` that are not Kubernetes objects (a Prometheus rule file).
pub const NOT_OBJECTS: [&str; 1] = ["manifests/monitoring/prometheus-rules.yaml"];
/// The Python venv the test command installs `tests/requirements.txt` into.
pub const DEFAULT_VENV: &str = "/var/tmp/kenko-venv";

/// Kinds that are never namespaced (kustomize's `namespace:` leaves them alone).
const CLUSTER_SCOPED: [&str; 12] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "PersistentVolume",
    "PriorityClass",
    "Node",
    "ResidencyPolicy",
    "ErasureCertificate",
];

// ---------------------------------------------------------------------------------------------
// Objects

/// One Kubernetes object, and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The file, relative to the repository root (`manifests/controller/rbac.yaml`); for a
    /// generated object, the kustomization that generated it.
    pub file: String,
    pub value: Value,
}

impl Object {
    pub fn new(file: &str, value: Value) -> Object {
        Object {
            file: file.to_string(),
            value,
        }
    }

    pub fn api_version(&self) -> &str {
        str_at(&self.value, &["apiVersion"])
    }

    pub fn kind(&self) -> &str {
        str_at(&self.value, &["kind"])
    }

    pub fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"])
    }

    pub fn namespace(&self) -> Option<&str> {
        at(&self.value, &["metadata", "namespace"]).and_then(Value::as_str)
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        match self.api_version().split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `Kind namespace/name` or `Kind name`.
    pub fn address(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    pub fn is(&self, kind: &str, name: &str) -> bool {
        self.kind() == kind && self.name() == name
    }

    fn violation(&self, rule: &'static str, expected: impl Into<String>) -> Violation {
        Violation {
            file: self.file.clone(),
            address: self.address(),
            rule,
            expected: expected.into(),
        }
    }
}

/// The value at `path` (object keys; a number indexes an array).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = match cur {
            Value::Object(map) => map.get(*key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The string at `path`, or `""`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every document of a YAML file, skipping empty ones.
pub fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The objects of one file. `shown` is how the file is named in violations.
pub fn load_objects(path: &Path, shown: &str) -> Result<Vec<Object>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let docs = parse_yaml(&text).map_err(|reason| LoadError {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(docs.into_iter().map(|v| Object::new(shown, v)).collect())
}

/// Every file under `dir`, recursively, as paths relative to `dir` with `/` separators, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Kustomize (the subset kenko uses)

/// What one kustomization builds.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// The kustomization's directory, relative to the repository root (`manifests`).
    pub root: String,
    pub objects: Vec<Object>,
    /// Every file read to build it (kustomization files, resources, generator inputs),
    /// relative to the repository root.
    pub files: BTreeSet<String>,
    /// `images:` of every kustomization in the build: name → the image it becomes.
    pub images: BTreeMap<String, String>,
    /// Unsupported fields, missing resources, unparsable files.
    pub violations: Vec<Violation>,
}

impl Build {
    pub fn find(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.is(kind, name))
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects.iter().filter(move |o| o.kind() == kind)
    }
}

const KUSTOMIZATION_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "resources",
    "images",
    "namespace",
    "configMapGenerator",
    "replacements",
];

/// Builds the kustomization in `repo/dir` (`dir` relative to the repository root).
pub fn kustomize(repo: &Path, dir: &str) -> Build {
    let mut build = Build {
        root: dir.to_string(),
        ..Build::default()
    };
    let mut visiting = Vec::new();
    build.objects = build_dir(
        repo,
        dir,
        &mut build.files,
        &mut build.images,
        &mut build.violations,
        &mut visiting,
    );
    build
}

fn join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn build_dir(
    repo: &Path,
    dir: &str,
    files: &mut BTreeSet<String>,
    images: &mut BTreeMap<String, String>,
    violations: &mut Vec<Violation>,
    visiting: &mut Vec<String>,
) -> Vec<Object> {
    let shown = format!("{dir}/kustomization.yaml");
    let bad = |rule: &'static str, expected: String| Violation {
        file: shown.clone(),
        address: "Kustomization".into(),
        rule,
        expected,
    };
    if visiting.contains(&dir.to_string()) {
        violations.push(bad("kustomize-cycle", format!("no cycle through {dir}")));
        return vec![];
    }
    let path = repo.join(&shown);
    let docs = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_yaml(&t))
    {
        Ok(docs) => docs,
        Err(e) => {
            violations.push(bad(
                "resource-exists",
                format!("a readable kustomization.yaml ({e})"),
            ));
            return vec![];
        }
    };
    files.insert(shown.clone());
    let [k] = docs.as_slice() else {
        violations.push(bad("kustomize-supported", "exactly one document".into()));
        return vec![];
    };
    if str_at(k, &["apiVersion"]) != "kustomize.config.k8s.io/v1beta1"
        || str_at(k, &["kind"]) != "Kustomization"
    {
        violations.push(bad(
            "kustomize-supported",
            "apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization".into(),
        ));
    }
    for key in k
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !KUSTOMIZATION_FIELDS.contains(&key.as_str()) {
            violations.push(bad(
                "kustomize-supported",
                format!(
                    "only the fields {KUSTOMIZATION_FIELDS:?} (this check does not model `{key}`)"
                ),
            ));
        }
    }
    visiting.push(dir.to_string());
    let mut objects = Vec::new();
    for entry in strings(k.get("resources")) {
        let target = join(dir, &entry);
        let target_path = repo.join(&target);
        if target_path.is_dir() {
            objects.extend(build_dir(
                repo, &target, files, images, violations, visiting,
            ));
        } else if target_path.is_file() {
            match load_objects(&target_path, &target) {
                Ok(found) => {
                    files.insert(target.clone());
                    objects.extend(found);
                }
                Err(e) => {
                    violations.push(bad("resource-exists", format!("a parsable {target} ({e})")))
                }
            }
        } else {
            violations.push(bad(
                "resource-exists",
                format!("resource {entry} to exist ({target})"),
            ));
        }
    }
    for generator in k
        .get("configMapGenerator")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match config_map(repo, dir, generator, files) {
            Ok(cm) => objects.push(Object::new(&shown, cm)),
            Err(e) => violations.push(bad("kustomize-supported", e)),
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for o in &mut objects {
            if !CLUSTER_SCOPED.contains(&o.kind()) {
                if let Some(meta) = o.value.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        }
    }
    for image in k
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(image, &["name"]);
        let unknown: Vec<&String> = image
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| !["name", "newName", "newTag", "digest"].contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if name.is_empty() || !unknown.is_empty() {
            violations.push(bad(
                "kustomize-supported",
                format!("images entries with name and newName/newTag/digest only (found {image})"),
            ));
            continue;
        }
        for o in &mut objects {
            for_each_container_mut(&mut o.value, |c| {
                if let Some(current) = c.get("image").and_then(Value::as_str) {
                    if let Some(new) = retag(current, image) {
                        c.insert("image".into(), json!(new));
                    }
                }
            });
        }
        if let Some(new) = retag(name, image) {
            images.insert(name.to_string(), new);
        }
    }
    // Replacements run after the images, as kustomize runs them.
    for r in k
        .get("replacements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Err(e) = replace(&mut objects, r) {
            violations.push(bad("kustomize-supported", e));
        }
    }
    visiting.pop();
    objects
}

/// One `replacements:` entry: `source: {kind, name, fieldPath}`, `targets: [{select: {kind,
/// name}, fieldPaths: [...]}]`. A path is dot-separated; `[name=X]` picks the element of a
/// list whose `name` is X. A source or target path that does not resolve is an error, as it
/// is for kustomize.
fn replace(objects: &mut [Object], r: &Value) -> Result<(), String> {
    let pick = |objects: &[Object], sel: &Value| -> Option<usize> {
        objects
            .iter()
            .position(|o| o.kind() == str_at(sel, &["kind"]) && o.name() == str_at(sel, &["name"]))
    };
    let source = r.get("source").ok_or("a replacement with a source")?;
    let from =
        pick(objects, source).ok_or_else(|| format!("the replacement source {source} to exist"))?;
    let value = resolve(
        &mut objects[from].value.clone(),
        str_at(source, &["fieldPath"]),
    )
    .cloned()
    .ok_or_else(|| format!("the replacement source path of {source} to resolve"))?;
    for target in r
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sel = target
            .get("select")
            .ok_or("a replacement target with select")?;
        let to =
            pick(objects, sel).ok_or_else(|| format!("the replacement target {sel} to exist"))?;
        for path in strings(target.get("fieldPaths")) {
            let slot = resolve(&mut objects[to].value, &path)
                .ok_or_else(|| format!("the replacement target path {path} to resolve"))?;
            *slot = value.clone();
        }
    }
    Ok(())
}

fn resolve<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match seg.strip_prefix("[name=").and_then(|s| s.strip_suffix(']')) {
            Some(name) => cur
                .as_array_mut()?
                .iter_mut()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?,
            None => cur.get_mut(seg)?,
        };
    }
    Some(cur)
}

/// The image `current` becomes under one `images:` entry, if the entry names it.
fn retag(current: &str, entry: &Value) -> Option<String> {
    let (no_digest, digest) = match current.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (current, None),
    };
    let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match no_digest[slash..].rfind(':') {
        Some(i) => (&no_digest[..slash + i], Some(&no_digest[slash + i + 1..])),
        None => (no_digest, None),
    };
    if name != str_at(entry, &["name"]) {
        return None;
    }
    let new_name = entry.get("newName").and_then(Value::as_str).unwrap_or(name);
    if let Some(d) = entry.get("digest").and_then(Value::as_str) {
        return Some(format!("{new_name}@{d}"));
    }
    match (entry.get("newTag").and_then(Value::as_str), tag, digest) {
        (Some(t), _, _) => Some(format!("{new_name}:{t}")),
        (None, _, Some(d)) => Some(format!("{new_name}@{d}")),
        (None, Some(t), None) => Some(format!("{new_name}:{t}")),
        (None, None, None) => Some(new_name.to_string()),
    }
}

fn config_map(
    repo: &Path,
    dir: &str,
    generator: &Value,
    files: &mut BTreeSet<String>,
) -> Result<Value, String> {
    let known = ["name", "files", "options"];
    let fields: Vec<&String> = generator
        .as_object()
        .map(|m| m.keys().filter(|k| !known.contains(&k.as_str())).collect())
        .unwrap_or_default();
    if !fields.is_empty() {
        return Err(format!(
            "configMapGenerator with {known:?} only (found {fields:?})"
        ));
    }
    let options = generator.get("options").cloned().unwrap_or(json!({}));
    for key in options
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if key != "disableNameSuffixHash" && key != "labels" {
            return Err(format!(
                "configMapGenerator options disableNameSuffixHash and labels only (found {key})"
            ));
        }
    }
    if options.get("disableNameSuffixHash") != Some(&json!(true)) {
        return Err("configMapGenerator with options.disableNameSuffixHash: true (the name hash is not modelled)".into());
    }
    let mut data = Map::new();
    for entry in strings(generator.get("files")) {
        let (key, rel) = match entry.split_once('=') {
            Some((k, p)) => (k.to_string(), p.to_string()),
            None => (
                entry.rsplit('/').next().unwrap_or(&entry).to_string(),
                entry.clone(),
            ),
        };
        let target = join(dir, &rel);
        let text = std::fs::read_to_string(repo.join(&target))
            .map_err(|e| format!("configMapGenerator file {target} to exist ({e})"))?;
        files.insert(target);
        data.insert(key, json!(text));
    }
    let mut metadata = Map::new();
    if let Some(labels) = options.get("labels") {
        metadata.insert("labels".into(), labels.clone());
    }
    metadata.insert("name".into(), json!(str_at(generator, &["name"])));
    Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}))
}

// ---------------------------------------------------------------------------------------------
// Reachability

/// Every file under `manifests/` (but `*.md`) is read by the build of the nearest enclosing
/// kustomization root among `builds` (`manifests/samples/x.yaml` by the samples' build,
/// `manifests/controller/x.yaml` by the top one), and no build reads another root's files.
pub fn reachability(repo: &Path, manifests: &str, builds: &[&Build]) -> Vec<Violation> {
    let mut out = Vec::new();
    let owner = |file: &str| -> Option<&Build> {
        builds
            .iter()
            .filter(|b| file.starts_with(&format!("{}/", b.root)))
            .max_by_key(|b| b.root.len())
            .copied()
    };
    for rel in files_under(&repo.join(manifests)) {
        if rel.ends_with(".md") {
            continue;
        }
        let file = format!("{manifests}/{rel}");
        match owner(&file) {
            Some(b) if b.files.contains(&file) => {}
            Some(b) => out.push(Violation {
                file: file.clone(),
                address: "(file)".into(),
                rule: "reachable",
                expected: format!("to be listed, directly or through another kustomization, in {}/kustomization.yaml", b.root),
            }),
            None => out.push(Violation {
                file: file.clone(),
                address: "(file)".into(),
                rule: "reachable",
                expected: "to be under a kustomization root".into(),
            }),
        }
    }
    for b in builds {
        for file in &b.files {
            if let Some(o) = owner(file) {
                if o.root != b.root {
                    out.push(Violation {
                        file: file.clone(),
                        address: "(file)".into(),
                        rule: "separate-root",
                        expected: format!(
                            "not to be part of {} (it belongs to {})",
                            b.root, o.root
                        ),
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pods

/// The pod spec of a workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
/// CronJob).
pub fn pod_spec(o: &Value) -> Option<&Value> {
    match str_at(o, &["kind"]) {
        "Pod" => at(o, &["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            at(o, &["spec", "template", "spec"])
        }
        "CronJob" => at(o, &["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn pod_spec_mut(o: &mut Value) -> Option<&mut Value> {
    let path: &[&str] = match str_at(o, &["kind"]) {
        "Pod" => &["spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &["spec", "template", "spec"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    };
    let mut cur = o;
    for key in path {
        cur = cur.get_mut(*key)?;
    }
    Some(cur)
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every container (init and ephemeral included) of a workload.
pub fn containers(o: &Value) -> Vec<&Value> {
    let Some(spec) = pod_spec(o) else {
        return vec![];
    };
    CONTAINER_LISTS
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn for_each_container_mut(o: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    let Some(spec) = pod_spec_mut(o) else {
        return;
    };
    for list in CONTAINER_LISTS {
        if let Some(items) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in items.iter_mut().filter_map(Value::as_object_mut) {
                f(c);
            }
        }
    }
}

/// Volume types Pod Security "restricted" allows.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The Pod Security Standards' "restricted" profile (v1.33), for one workload: no host
/// namespaces, ports or paths, not privileged, no privilege escalation, non-root, every
/// capability dropped (NET_BIND_SERVICE alone may be added back), seccomp RuntimeDefault or
/// Localhost, default /proc mount, no unsafe sysctls, SELinux and AppArmor not loosened.
pub fn pod_security_restricted(o: &Object) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(spec) = pod_spec(&o.value) else {
        return out;
    };
    let mut v = |rule: &'static str, expected: String| out.push(o.violation(rule, expected));
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(field).and_then(Value::as_bool) == Some(true) {
            v("psa-host-namespaces", format!("{field} unset or false"));
        }
    }
    for vol in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(vol, &["name"]);
        let types: Vec<&String> = vol
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        for t in types {
            if !RESTRICTED_VOLUMES.contains(&t.as_str()) {
                v(
                    "psa-volume-types",
                    format!("volume {name} of a restricted type ({RESTRICTED_VOLUMES:?}), not {t}"),
                );
            }
        }
    }
    let pod_sc = spec.get("securityContext").cloned().unwrap_or(json!({}));
    if !pod_sc
        .get("sysctls")
        .and_then(Value::as_array)
        .is_none_or(|s| s.is_empty())
    {
        v("psa-sysctls", "no sysctls".into());
    }
    if str_at(&pod_sc, &["seccompProfile", "type"]) == "Unconfined" {
        v("psa-seccomp", "pod seccompProfile not Unconfined".into());
    }
    if str_at(&pod_sc, &["appArmorProfile", "type"]) == "Unconfined" {
        v("psa-apparmor", "pod appArmorProfile not Unconfined".into());
    }
    if at(&pod_sc, &["runAsUser"]).and_then(Value::as_i64) == Some(0) {
        v("psa-run-as-non-root", "pod runAsUser not 0".into());
    }
    if at(&pod_sc, &["seLinuxOptions", "user"]).is_some()
        || at(&pod_sc, &["seLinuxOptions", "role"]).is_some()
    {
        v("psa-selinux", "no SELinux user or role".into());
    }
    let pod_non_root = pod_sc.get("runAsNonRoot").and_then(Value::as_bool);
    let pod_seccomp = str_at(&pod_sc, &["seccompProfile", "type"]).to_string();
    for c in containers(&o.value) {
        let name = str_at(c, &["name"]);
        let sc = c.get("securityContext").cloned().unwrap_or(json!({}));
        if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
            v("psa-privileged", format!("container {name} not privileged"));
        }
        if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
            v(
                "psa-privilege-escalation",
                format!("container {name}: allowPrivilegeEscalation: false"),
            );
        }
        let non_root = sc
            .get("runAsNonRoot")
            .and_then(Value::as_bool)
            .or(pod_non_root);
        if non_root != Some(true) {
            v(
                "psa-run-as-non-root",
                format!("container {name}: runAsNonRoot: true (container or pod)"),
            );
        }
        if at(&sc, &["runAsUser"]).and_then(Value::as_i64) == Some(0) {
            v(
                "psa-run-as-non-root",
                format!("container {name}: runAsUser not 0"),
            );
        }
        let drops = strings(at(&sc, &["capabilities", "drop"]));
        if !drops.iter().any(|d| d == "ALL") {
            v(
                "psa-capabilities",
                format!("container {name}: capabilities.drop [ALL]"),
            );
        }
        for add in strings(at(&sc, &["capabilities", "add"])) {
            if add != "NET_BIND_SERVICE" {
                v(
                    "psa-capabilities",
                    format!(
                        "container {name}: no added capability but NET_BIND_SERVICE (found {add})"
                    ),
                );
            }
        }
        let seccomp = match str_at(&sc, &["seccompProfile", "type"]) {
            "" => pod_seccomp.clone(),
            t => t.to_string(),
        };
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            v("psa-seccomp", format!("container {name}: seccompProfile RuntimeDefault or Localhost (container or pod)"));
        }
        if str_at(&sc, &["appArmorProfile", "type"]) == "Unconfined" {
            v(
                "psa-apparmor",
                format!("container {name}: appArmorProfile not Unconfined"),
            );
        }
        if sc
            .get("procMount")
            .and_then(Value::as_str)
            .is_some_and(|p| p != "Default")
        {
            v(
                "psa-proc-mount",
                format!("container {name}: default procMount"),
            );
        }
        if at(&sc, &["seLinuxOptions", "user"]).is_some()
            || at(&sc, &["seLinuxOptions", "role"]).is_some()
        {
            v(
                "psa-selinux",
                format!("container {name}: no SELinux user or role"),
            );
        }
        for port in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if port
                .get("hostPort")
                .and_then(Value::as_i64)
                .is_some_and(|p| p != 0)
            {
                v("psa-host-ports", format!("container {name}: no hostPort"));
            }
        }
    }
    out
}

/// kenko's own rules on top of "restricted", for every container it runs: a read-only root
/// filesystem, resource requests and limits (CPU and memory), liveness and readiness probes.
pub fn kenko_hardening(o: &Object) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in containers(&o.value) {
        let name = str_at(c, &["name"]);
        if at(c, &["securityContext", "readOnlyRootFilesystem"]).and_then(Value::as_bool)
            != Some(true)
        {
            out.push(o.violation(
                "read-only-root",
                format!("container {name}: readOnlyRootFilesystem: true"),
            ));
        }
        for kind in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                if at(c, &["resources", kind, res]).is_none() {
                    out.push(o.violation(
                        "resources",
                        format!("container {name}: resources.{kind}.{res}"),
                    ));
                }
            }
        }
        for probe in ["livenessProbe", "readinessProbe"] {
            if c.get(probe).is_none() {
                out.push(o.violation("probes", format!("container {name}: {probe}")));
            }
        }
    }
    out
}

/// Every Namespace pins Pod Security enforce, audit and warn to [`POD_SECURITY_VERSION`];
/// enforce is "restricted" except in `privileged_ok` (where it may be "privileged").
pub fn namespaces_pod_security(objects: &[Object], privileged_ok: &[&str]) -> Vec<Violation> {
    let mut out = Vec::new();
    for ns in objects.iter().filter(|o| o.kind() == "Namespace") {
        let label = |k: &str| str_at(&ns.value, &["metadata", "labels", k]).to_string();
        for mode in ["enforce", "audit", "warn"] {
            let level = label(&format!("pod-security.kubernetes.io/{mode}"));
            let version = label(&format!("pod-security.kubernetes.io/{mode}-version"));
            if !["restricted", "baseline", "privileged"].contains(&level.as_str()) {
                out.push(ns.violation(
                    "pod-security-labels",
                    format!("label pod-security.kubernetes.io/{mode}"),
                ));
            }
            if version != POD_SECURITY_VERSION {
                out.push(ns.violation(
                    "pod-security-labels",
                    format!("pod-security.kubernetes.io/{mode}-version: {POD_SECURITY_VERSION}"),
                ));
            }
        }
        let enforce = label("pod-security.kubernetes.io/enforce");
        let allowed = if privileged_ok.contains(&ns.name()) {
            enforce == "restricted" || enforce == "privileged"
        } else {
            enforce == "restricted"
        };
        if !allowed {
            out.push(ns.violation(
                "pod-security-restricted",
                "pod-security.kubernetes.io/enforce: restricted",
            ));
        }
    }
    out
}

/// Every namespaced object names a namespace the same build creates (or one of `external`).
pub fn namespaces_exist(objects: &[Object], external: &[&str]) -> Vec<Violation> {
    let created: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind() == "Namespace")
        .map(Object::name)
        .collect();
    let mut out = Vec::new();
    for o in objects {
        let scoped = CLUSTER_SCOPED.contains(&o.kind());
        match (scoped, o.namespace()) {
            (true, Some(ns)) => out.push(o.violation(
                "namespace",
                format!("no namespace on a cluster-scoped {} (found {ns})", o.kind()),
            )),
            (false, None) => out.push(o.violation("namespace", "metadata.namespace")),
            (false, Some(ns)) if !created.contains(ns) && !external.contains(&ns) => {
                out.push(o.violation(
                    "namespace",
                    format!("namespace {ns} created by the same kustomization"),
                ))
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// A Role's or ClusterRole's rules, one line per (group, resource, names, verb):
/// `kenko.io healthstacks get`, `coordination.k8s.io leases[kenko-controller] patch`
/// (the core group is written `core`). Non-resource URLs are `url /healthz get`.
pub fn grants(role: &Object) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in role
        .value
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let names = strings(rule.get("resourceNames"));
        let suffix = if names.is_empty() {
            String::new()
        } else {
            format!("[{}]", names.join(","))
        };
        for verb in strings(rule.get("verbs")) {
            for url in strings(rule.get("nonResourceURLs")) {
                out.insert(format!("url {url} {verb}"));
            }
            for group in strings(rule.get("apiGroups")) {
                let group = if group.is_empty() {
                    "core".to_string()
                } else {
                    group
                };
                for resource in strings(rule.get("resources")) {
                    out.insert(format!("{group} {resource}{suffix} {verb}"));
                }
            }
        }
    }
    out
}

/// No `*` anywhere in a role's rules, no `escalate`, `bind` or `impersonate`, no
/// aggregationRule.
pub fn rbac_no_wildcards(objects: &[Object]) -> Vec<Violation> {
    let mut out = Vec::new();
    for role in objects
        .iter()
        .filter(|o| o.kind() == "ClusterRole" || o.kind() == "Role")
    {
        if role.value.get("aggregationRule").is_some() {
            out.push(role.violation("rbac-explicit", "no aggregationRule"));
        }
        for g in grants(role) {
            if g.contains('*') {
                out.push(role.violation("rbac-explicit", format!("no wildcard (found `{g}`)")));
            }
            for verb in ["escalate", "bind", "impersonate"] {
                if g.ends_with(&format!(" {verb}")) {
                    out.push(role.violation("rbac-explicit", format!("no {verb} (found `{g}`)")));
                }
            }
        }
    }
    out
}

/// Every binding names a role and ServiceAccounts of the same build, and every role is bound.
/// Returns the violations and the bindings as `Kind role -> namespace/serviceaccount`.
/// The label (value `operator`) on roles for people, which the operator binds to named users
/// or groups; every other role must be bound in the build.
pub const PEOPLE_ROLE_LABEL: &str = "kenko.io/bound-by";

pub fn rbac_bindings(objects: &[Object]) -> (Vec<Violation>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut bound = BTreeSet::new();
    let mut used = BTreeSet::new();
    for b in objects
        .iter()
        .filter(|o| o.kind() == "ClusterRoleBinding" || o.kind() == "RoleBinding")
    {
        let role_kind = str_at(&b.value, &["roleRef", "kind"]);
        let role_name = str_at(&b.value, &["roleRef", "name"]);
        let role = objects.iter().find(|r| {
            r.is(role_kind, role_name)
                && (role_kind == "ClusterRole" || r.namespace() == b.namespace())
        });
        if role.is_none() {
            out.push(b.violation(
                "rbac-binding",
                format!("{role_kind} {role_name} in the same build"),
            ));
        }
        if b.kind() == "ClusterRoleBinding" && role_kind != "ClusterRole" {
            out.push(b.violation("rbac-binding", "a ClusterRoleBinding of a ClusterRole"));
        }
        used.insert((
            role_kind.to_string(),
            b.namespace().map(str::to_string),
            role_name.to_string(),
        ));
        for s in b
            .value
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (kind, name, ns) = (
                str_at(s, &["kind"]),
                str_at(s, &["name"]),
                str_at(s, &["namespace"]),
            );
            let exists = objects
                .iter()
                .any(|o| o.is("ServiceAccount", name) && o.namespace() == Some(ns));
            if kind != "ServiceAccount" || !exists {
                out.push(b.violation("rbac-binding", format!("only ServiceAccounts of the same build as subjects (found {kind} {ns}/{name})")));
            }
            let scope = match b.namespace() {
                Some(n) => format!("RoleBinding {n}/{role_kind} {role_name}"),
                None => format!("ClusterRoleBinding {role_kind} {role_name}"),
            };
            bound.insert(format!("{scope} -> {ns}/{name}"));
        }
    }
    for r in objects
        .iter()
        .filter(|o| o.kind() == "ClusterRole" || o.kind() == "Role")
    {
        let key = (
            r.kind().to_string(),
            r.namespace().map(str::to_string),
            r.name().to_string(),
        );
        // Roles for people are bound by the operator to the city's users (README).
        let for_people = str_at(&r.value, &["metadata", "labels", PEOPLE_ROLE_LABEL]) == "operator";
        if !used.contains(&key) && !for_people {
            out.push(r.violation(
                "rbac-binding",
                "to be bound (an unbound role is dead weight or a mistake)",
            ));
        }
    }
    (out, bound)
}

// ---------------------------------------------------------------------------------------------
// Images

/// Every container's image, after the build, is one that the build's `images:` produced (so
/// the top kustomization's `images:` is the one place to change it).
pub fn images_overridable(build: &Build) -> Vec<Violation> {
    let produced: BTreeSet<&String> = build.images.values().collect();
    let mut out = Vec::new();
    for o in &build.objects {
        for c in containers(&o.value) {
            let image = str_at(c, &["image"]).to_string();
            if !produced.contains(&image) {
                out.push(o.violation(
                    "image-overridable",
                    format!("container {}: an image named in {}/kustomization.yaml images: (found {image:?})", str_at(c, &["name"]), build.root),
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Network policies

/// Parses `a.b.c.d/n` (or an IPv6 `x::/n`) into its prefix length.
fn prefix_len(cidr: &str) -> Option<u32> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    if addr.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    Some(len)
}

/// Every namespace with pods has a default-deny policy (all pods, Ingress and Egress, no
/// rules); every egress rule names its destinations and ports, and no ipBlock is wider than
/// /8 (the internet is never allowed); every ingress rule names its sources and ports and
/// admits namespaces or pods only, never addresses.
pub fn network_policies(objects: &[Object]) -> Vec<Violation> {
    let mut out = Vec::new();
    let policies: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind() == "NetworkPolicy")
        .collect();
    let with_pods: BTreeSet<&str> = objects
        .iter()
        .filter(|o| pod_spec(&o.value).is_some())
        .filter_map(Object::namespace)
        .collect();
    for ns in with_pods {
        let denied = policies.iter().any(|p| {
            p.namespace() == Some(ns)
                && at(&p.value, &["spec", "podSelector"]) == Some(&json!({}))
                && strings(at(&p.value, &["spec", "policyTypes"])).len() == 2
                && at(&p.value, &["spec", "ingress"]).is_none()
                && at(&p.value, &["spec", "egress"]).is_none()
        });
        if !denied {
            out.push(Violation {
                file: "(build)".into(),
                address: format!("Namespace {ns}"),
                rule: "network-default-deny",
                expected: "a NetworkPolicy denying all ingress and egress of every pod".into(),
            });
        }
    }
    for p in policies {
        for rule in at(&p.value, &["spec", "egress"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let to = rule.get("to").and_then(Value::as_array);
            if to.is_none_or(|t| t.is_empty()) {
                out.push(p.violation(
                    "network-egress",
                    "every egress rule names its destinations (to:)",
                ));
            }
            if rule
                .get("ports")
                .and_then(Value::as_array)
                .is_none_or(|t| t.is_empty())
            {
                out.push(p.violation("network-egress", "every egress rule names its ports"));
            }
            for peer in to.into_iter().flatten() {
                if let Some(block) = peer.get("ipBlock") {
                    let cidr = str_at(block, &["cidr"]);
                    if prefix_len(cidr).is_none_or(|l| l < 8) {
                        out.push(p.violation(
                            "network-egress",
                            format!("ipBlocks no wider than /8 (found {cidr})"),
                        ));
                    }
                }
            }
        }
        for rule in at(&p.value, &["spec", "ingress"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let from = rule.get("from").and_then(Value::as_array);
            if from.is_none_or(|t| t.is_empty()) {
                out.push(p.violation(
                    "network-ingress",
                    "every ingress rule names its sources (from:)",
                ));
            }
            if rule
                .get("ports")
                .and_then(Value::as_array)
                .is_none_or(|t| t.is_empty())
            {
                out.push(p.violation("network-ingress", "every ingress rule names its ports"));
            }
            for peer in from.into_iter().flatten() {
                if peer.get("ipBlock").is_some() {
                    out.push(p.violation(
                        "network-ingress",
                        "ingress from namespaces or pods, not addresses",
                    ));
                }
            }
        }
    }
    out
}

/// Every ipBlock CIDR of every NetworkPolicy, by policy address.
pub fn ip_blocks(objects: &[Object]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in objects.iter().filter(|o| o.kind() == "NetworkPolicy") {
        let mut cidrs = Vec::new();
        for dir in ["egress", "ingress"] {
            for rule in at(&p.value, &["spec", dir])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for peer in ["to", "from"]
                    .iter()
                    .filter_map(|k| rule.get(*k))
                    .filter_map(Value::as_array)
                    .flatten()
                {
                    if let Some(c) = at(peer, &["ipBlock", "cidr"]).and_then(Value::as_str) {
                        cidrs.push(c.to_string());
                    }
                }
            }
        }
        if !cidrs.is_empty() {
            out.insert(p.address(), cidrs);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// kenko's own kinds, against the committed CRDs

/// The CRD serving `group`/`kind`, and its schema for `version`.
pub fn crd_schema<'a>(
    crds: &'a [Object],
    api_version: &str,
    kind: &str,
) -> Option<(&'a Object, &'a Value)> {
    let (group, version) = api_version.split_once('/')?;
    let crd = crds.iter().find(|c| {
        c.kind() == "CustomResourceDefinition"
            && str_at(&c.value, &["spec", "group"]) == group
            && str_at(&c.value, &["spec", "names", "kind"]) == kind
    })?;
    let v = at(&crd.value, &["spec", "versions"])?
        .as_array()?
        .iter()
        .find(|v| str_at(v, &["name"]) == version && at(v, &["served"]) == Some(&json!(true)))?;
    Some((crd, at(v, &["schema", "openAPIV3Schema"])?))
}

const SCHEMA_KEYWORDS: [&str; 24] = [
    "description",
    "title",
    "default",
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "nullable",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "maxProperties",
    // Only as the int-or-string pair `[{type: integer}, {type: string}]`, checked as such.
    "anyOf",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
];

/// Structural validation of `value` against an OpenAPI v3 schema as CRDs use it: types
/// (with `nullable` and `x-kubernetes-int-or-string`), required fields, unknown fields
/// (pruned by the API server, so a typo would silently vanish: refused here), enums, lengths,
/// item counts, numeric ranges and int32/int64 formats. A schema keyword this check does not
/// know is itself an error, so nothing is skipped silently. At the root, `apiVersion`, `kind`
/// and `metadata` are the API server's and always allowed.
pub fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_schema(schema, value, "", &mut out);
    out
}

fn walk_schema(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let here = if path.is_empty() { "(root)" } else { path };
    if let Some(map) = schema.as_object() {
        for key in map.keys() {
            if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
                out.push(format!(
                    "{here}: schema keyword {key} is not understood by this check"
                ));
            }
        }
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&json!(true)) {
            out.push(format!("{here}: null is not allowed"));
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            out.push(format!(
                "{here}: expected an integer or a string, found {value}"
            ));
        }
        let max = schema.get("maxLength").and_then(Value::as_u64);
        if let (Some(m), Some(s)) = (max, value.as_str()) {
            if s.chars().count() as u64 > m {
                out.push(format!("{here}: longer than {m} characters"));
            }
        }
        return;
    }
    if schema.get("anyOf").is_some() {
        out.push(format!(
            "{here}: anyOf is understood only with x-kubernetes-int-or-string"
        ));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            out.push(format!(
                "{here}: {value} is not one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    let ty = str_at(schema, &["type"]);
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    match ty {
        "object" => {
            let Some(obj) = value.as_object() else {
                out.push(format!("{here}: expected an object, found {value}"));
                return;
            };
            if number("maxProperties").is_some_and(|m| (obj.len() as f64) > m) {
                out.push(format!(
                    "{here}: more than {} properties",
                    schema["maxProperties"]
                ));
            }
            for req in strings(schema.get("required")) {
                if !obj.contains_key(&req) {
                    out.push(format!("{here}: required field {req} is missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            for (key, child) in obj {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(key)) {
                    walk_schema(s, child, &child_path, out);
                } else if let Some(s) = additional {
                    walk_schema(s, child, &child_path, out);
                } else if !preserve {
                    out.push(format!(
                        "{child_path}: unknown field (the API server would drop it)"
                    ));
                }
            }
        }
        "array" => {
            let Some(items) = value.as_array() else {
                out.push(format!("{here}: expected an array, found {value}"));
                return;
            };
            if number("minItems").is_some_and(|m| (items.len() as f64) < m) {
                out.push(format!("{here}: fewer than {} items", schema["minItems"]));
            }
            if number("maxItems").is_some_and(|m| (items.len() as f64) > m) {
                out.push(format!("{here}: more than {} items", schema["maxItems"]));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk_schema(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        "string" => {
            let Some(s) = value.as_str() else {
                out.push(format!("{here}: expected a string, found {value}"));
                return;
            };
            let chars = s.chars().count() as f64;
            if number("minLength").is_some_and(|m| chars < m) {
                out.push(format!(
                    "{here}: shorter than {} characters",
                    schema["minLength"]
                ));
            }
            if number("maxLength").is_some_and(|m| chars > m) {
                out.push(format!(
                    "{here}: longer than {} characters",
                    schema["maxLength"]
                ));
            }
        }
        "integer" | "number" => {
            let ok = if ty == "integer" {
                value.is_i64() || value.is_u64()
            } else {
                value.is_number()
            };
            if !ok {
                out.push(format!("{here}: expected {ty}, found {value}"));
                return;
            }
            let n = value.as_f64().unwrap_or_default();
            let (lo, hi) = match str_at(schema, &["format"]) {
                "int32" => (f64::from(i32::MIN), f64::from(i32::MAX)),
                _ => (f64::MIN, f64::MAX),
            };
            if n < lo || n > hi {
                out.push(format!(
                    "{here}: {n} is out of range for {}",
                    str_at(schema, &["format"])
                ));
            }
            if number("minimum").is_some_and(|m| n < m) {
                out.push(format!("{here}: less than {}", schema["minimum"]));
            }
            if number("maximum").is_some_and(|m| n > m) {
                out.push(format!("{here}: more than {}", schema["maximum"]));
            }
        }
        "boolean" => {
            if !value.is_boolean() {
                out.push(format!("{here}: expected a boolean, found {value}"));
            }
        }
        "" => {
            if schema.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true)) {
                out.push(format!("{here}: schema has no type"));
            }
        }
        other => out.push(format!(
            "{here}: schema type {other} is not understood by this check"
        )),
    }
}

const METADATA_FIELDS: [&str; 4] = ["name", "namespace", "labels", "annotations"];

/// One object of a custom kind, as the API server would admit it: the CRD exists and serves
/// its version, the scope matches (a namespace exactly when namespaced), metadata carries only
/// name, namespace, labels and annotations, the structural schema holds ([`schema_errors`])
/// and every CEL rule of the CRD passes (defaults applied first).
pub fn custom_object(crds: &[Object], o: &Object) -> Vec<Violation> {
    let Some((crd, schema)) = crd_schema(crds, o.api_version(), o.kind()) else {
        return vec![o.violation(
            "crd-exists",
            format!("a committed CRD serving {} {}", o.api_version(), o.kind()),
        )];
    };
    let mut out = Vec::new();
    let namespaced = str_at(&crd.value, &["spec", "scope"]) == "Namespaced";
    if namespaced != o.namespace().is_some() {
        out.push(o.violation(
            "crd-scope",
            if namespaced {
                "metadata.namespace (the kind is namespaced)"
            } else {
                "no metadata.namespace (the kind is cluster-scoped)"
            },
        ));
    }
    if o.name().is_empty() {
        out.push(o.violation("crd-schema", "metadata.name"));
    }
    for key in o
        .value
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            out.push(o.violation(
                "crd-schema",
                format!("metadata with {METADATA_FIELDS:?} only (found {key})"),
            ));
        }
    }
    for e in schema_errors(schema, &o.value) {
        out.push(o.violation("crd-schema", e));
    }
    if let Err(errors) = Validator::new().validate(schema, &o.value, None) {
        for e in errors.iter() {
            out.push(o.violation(
                "crd-cel",
                format!("{}: {} (rule: {})", e.field_path, e.message, e.rule),
            ));
        }
    }
    out
}

/// Where `sample` has a value that `other` does not (a path per difference); used to show that
/// a typed round trip kept every field of a sample.
pub fn missing_from(sample: &Value, other: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, v) in x {
                    let p = format!("{path}.{k}");
                    match y.get(k) {
                        Some(w) => walk(v, w, &p, out),
                        None => out.push(format!("{p}: dropped")),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (v, w)) in x.iter().zip(y).enumerate() {
                    walk(v, w, &format!("{path}[{i}]"), out);
                }
            }
            (x, y) if x == y => {}
            (x, y) => out.push(format!("{path}: {x} became {y}")),
        }
    }
    walk(sample, other, "", &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// ValidatingAdmissionPolicy

/// One request to the API server, as a ValidatingAdmissionPolicy sees it.
#[derive(Debug, Clone)]
pub struct Admission {
    pub operation: &'static str,
    pub username: String,
    pub group: String,
    pub version: String,
    /// The plural resource (`erasurerequests`).
    pub resource: String,
    pub object: Value,
    pub old_object: Option<Value>,
}

/// The denials the build's ValidatingAdmissionPolicies give `req` (empty: admitted), as
/// `policy: message`. A policy applies when a binding with the Deny action names it, a
/// resource rule matches, and every matchCondition holds; an expression that fails to
/// compile or evaluate denies (failurePolicy Fail). Fields this evaluator does not model
/// (params, variables, exclusions, namespace selectors) make it deny, not pass.
pub fn admit(objects: &[Object], req: &Admission) -> Vec<String> {
    let mut denials = Vec::new();
    let evaluator = VapEvaluator::builder()
        .object(req.object.clone())
        .request(AdmissionRequest {
            operation: req.operation.to_string(),
            username: req.username.clone(),
            name: str_at(&req.object, &["metadata", "name"]).to_string(),
            namespace: str_at(&req.object, &["metadata", "namespace"]).to_string(),
            kind: GroupVersionKind {
                group: req.group.clone(),
                version: req.version.clone(),
                kind: str_at(&req.object, &["kind"]).to_string(),
            },
            resource: GroupVersionResource {
                group: req.group.clone(),
                version: req.version.clone(),
                resource: req.resource.clone(),
            },
            ..AdmissionRequest::default()
        });
    let evaluator = match &req.old_object {
        Some(old) => evaluator.old_object(old.clone()),
        None => evaluator,
    }
    .build();
    let matches = |list: Vec<String>, want: &str| list.iter().any(|x| x == want || x == "*");
    for policy in objects
        .iter()
        .filter(|o| o.kind() == "ValidatingAdmissionPolicy")
    {
        let name = policy.name();
        let bound = objects.iter().any(|b| {
            b.kind() == "ValidatingAdmissionPolicyBinding"
                && str_at(&b.value, &["spec", "policyName"]) == name
                && strings(at(&b.value, &["spec", "validationActions"]))
                    .iter()
                    .any(|a| a == "Deny")
        });
        if !bound {
            continue;
        }
        let spec = &policy.value["spec"];
        let rules = at(spec, &["matchConstraints", "resourceRules"]).and_then(Value::as_array);
        let applies = rules.into_iter().flatten().any(|r| {
            matches(strings(r.get("apiGroups")), &req.group)
                && matches(strings(r.get("apiVersions")), &req.version)
                && matches(strings(r.get("operations")), req.operation)
                && matches(strings(r.get("resources")), &req.resource)
        });
        if !applies {
            continue;
        }
        for unmodelled in ["paramKind", "variables"] {
            if spec.get(unmodelled).is_some() {
                denials.push(format!(
                    "{name}: {unmodelled} is not modelled by this evaluator"
                ));
            }
        }
        for unmodelled in [
            "excludeResourceRules",
            "namespaceSelector",
            "objectSelector",
        ] {
            if at(spec, &["matchConstraints", unmodelled]).is_some() {
                denials.push(format!(
                    "{name}: matchConstraints.{unmodelled} is not modelled by this evaluator"
                ));
            }
        }
        let conditions: Vec<VapExpression> = spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| VapExpression {
                expression: str_at(c, &["expression"]).to_string(),
                message: Some(format!("matchCondition {}", str_at(c, &["name"]))),
                message_expression: None,
            })
            .collect();
        let mut skip = false;
        for r in evaluator.evaluate(&conditions) {
            if !r.passed {
                match r.message.as_deref() {
                    Some(m) if m.starts_with("matchCondition ") => skip = true,
                    m => denials.push(format!("{name}: {}", m.unwrap_or("matchCondition failed"))),
                }
            }
        }
        if skip {
            continue;
        }
        let validations: Vec<VapExpression> = spec
            .get("validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| VapExpression {
                expression: str_at(v, &["expression"]).to_string(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" ")),
                message_expression: v
                    .get("messageExpression")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
            .collect();
        for r in evaluator.evaluate(&validations) {
            if !r.passed {
                denials.push(format!("{name}: {}", r.message.unwrap_or_default()));
            }
        }
    }
    denials
}

/// Every ValidatingAdmissionPolicy fails closed, is bound with the Deny action, and every
/// expression in it compiles; every binding names a policy of the build.
pub fn admission_policies(objects: &[Object]) -> Vec<Violation> {
    let mut out = Vec::new();
    let evaluator = VapEvaluator::builder().build();
    for p in objects
        .iter()
        .filter(|o| o.kind() == "ValidatingAdmissionPolicy")
    {
        if str_at(&p.value, &["spec", "failurePolicy"]) != "Fail" {
            out.push(p.violation("admission-fail-closed", "failurePolicy: Fail"));
        }
        let bound = objects.iter().any(|b| {
            b.kind() == "ValidatingAdmissionPolicyBinding"
                && str_at(&b.value, &["spec", "policyName"]) == p.name()
                && strings(at(&b.value, &["spec", "validationActions"]))
                    .iter()
                    .any(|a| a == "Deny")
        });
        if !bound {
            out.push(p.violation(
                "admission-bound",
                "a ValidatingAdmissionPolicyBinding with validationActions [Deny]",
            ));
        }
        let mut exprs = Vec::new();
        for list in ["matchConditions", "validations"] {
            for e in at(&p.value, &["spec", list])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                exprs.push(VapExpression {
                    expression: str_at(e, &["expression"]).to_string(),
                    message: None,
                    message_expression: e
                        .get("messageExpression")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
        }
        if exprs.is_empty() {
            out.push(p.violation("admission-compiles", "at least one validation"));
        }
        for r in evaluator.compile_expressions(&exprs) {
            if let Err(e) = r {
                out.push(p.violation(
                    "admission-compiles",
                    format!("an expression that compiles ({e})"),
                ));
            }
        }
    }
    for b in objects
        .iter()
        .filter(|o| o.kind() == "ValidatingAdmissionPolicyBinding")
    {
        let target = str_at(&b.value, &["spec", "policyName"]);
        if !objects
            .iter()
            .any(|p| p.is("ValidatingAdmissionPolicy", target))
        {
            out.push(b.violation(
                "admission-bound",
                format!("policy {target} in the same build"),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// kubernetes-validate

/// Where `kubernetes-validate` is: `$KENKO_VENV/bin` (default [`DEFAULT_VENV`]), else `PATH`.
pub fn kubernetes_validate_binary() -> Result<PathBuf, String> {
    let venv = std::env::var("KENKO_VENV").unwrap_or_else(|_| DEFAULT_VENV.to_string());
    let in_venv = Path::new(&venv).join("bin/kubernetes-validate");
    if in_venv.is_file() {
        return Ok(in_venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("kubernetes-validate");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "kubernetes-validate is not installed: neither {} nor `kubernetes-validate` on PATH.\n\
         Install it into the test venv: `{venv}/bin/pip install -r tests/requirements.txt` \
         (`bash tests/run-all.sh` does this), then run \
         `cargo test -p kenko-infra-tests --test manifests`.",
        in_venv.display()
    ))
}

/// What one run of `kubernetes-validate` said.
#[derive(Debug, Clone, Default)]
pub struct ValidateRun {
    pub success: bool,
    /// Everything it printed (stdout, then stderr).
    pub output: String,
    /// `file kind/name` of every object that passed.
    pub passed: Vec<String>,
    /// `(file, kind, apiVersion)` of every object it has no schema for.
    pub no_schema: Vec<(String, String, String)>,
    /// Every ERROR or FATAL line.
    pub errors: Vec<String>,
}

/// Runs `kubernetes-validate --strict -k KUBERNETES_VERSION FILES` in `cwd`.
pub fn run_kubernetes_validate(
    binary: &Path,
    cwd: &Path,
    files: &[String],
) -> Result<ValidateRun, String> {
    let output = Command::new(binary)
        .current_dir(cwd)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let mut run = ValidateRun {
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        ..ValidateRun::default()
    };
    for line in run.output.lines() {
        if let Some(rest) = line.strip_prefix("INFO ") {
            if let Some((file, tail)) = rest.split_once(" passed for resource ") {
                let resource = tail.split(" against version").next().unwrap_or(tail);
                run.passed.push(format!("{file} {resource}"));
            }
        } else if let Some(rest) = line.strip_prefix("WARN ") {
            // WARN FILE Couldn't find schema for kind KIND with api version API for kubernetes ...
            let parsed =
                rest.split_once(" Couldn't find schema for kind ")
                    .and_then(|(file, tail)| {
                        let (kind, tail) = tail.split_once(" with api version ")?;
                        let api = tail.split(" for kubernetes version").next()?;
                        Some((file.to_string(), kind.to_string(), api.to_string()))
                    });
            match parsed {
                Some(p) => run.no_schema.push(p),
                None => run.errors.push(line.to_string()),
            }
        } else if line.starts_with("ERROR")
            || line.starts_with("FATAL")
            || line.starts_with("Couldn't")
        {
            run.errors.push(line.to_string());
        }
    }
    Ok(run)
}
