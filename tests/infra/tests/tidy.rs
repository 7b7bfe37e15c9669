//! House rules a machine keeps, over the source tree: every Rust file says what it is for
//! (`//!`), the paths ARCHITECTURE.md's code map names exist, no doc or comment refers to an
//! issue by number (issues end, and a pointer to one rots), and the agent's reason registry
//! (`FAILURE_REASONS`) is exactly what its errors' `reason()`s return.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under `dir` with one of `exts`, skipping build output, dependencies and the
/// recorded fixtures (copies of other people's files, kept as they were).
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            if !["target", ".git", "fixtures", "node_modules", ".terraform"]
                .contains(&name.as_str())
            {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .display()
        .to_string()
        .replace("../", "")
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let mut rs = Vec::new();
    files(&root(), &[".rs"], &mut rs);
    assert!(rs.len() > 50, "found {} files", rs.len());
    let missing: Vec<String> = rs
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| rel(p))
        .collect();
    assert!(missing.is_empty(), "no //! doc at the top of: {missing:?}");
}

/// `a/{b,c}.rs` → `a/b.rs`, `a/c.rs`.
fn expand(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(i), Some(j)) if i < j => path[i + 1..j]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{}{}", &path[..i], alt, &path[j + 1..])))
            .collect(),
        _ => vec![path.to_string()],
    }
}

#[test]
fn every_path_in_the_code_map_exists() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let tops = [
        "agent/",
        "crates/",
        "controller/",
        "tests/",
        "manifests/",
        "docs/",
        "runbooks/",
        "terraform/",
    ];
    let mut named = BTreeSet::new();
    // Backticked paths in the prose and the table.
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && tops.iter().any(|t| part.starts_with(t)) {
            named.insert(part.split_whitespace().next().unwrap().to_string());
        }
    }
    // The first column of the code block (`crates/` and its indented members).
    let block = text.split("```").nth(1).unwrap();
    let mut parent = String::new();
    for line in block.lines() {
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        if line.starts_with("  ") && !line.starts_with("                ") {
            named.insert(format!("{parent}{first}"));
        } else if !line.starts_with(' ') {
            if first.ends_with('/') {
                parent = first.to_string();
            }
            if tops.iter().any(|t| first.starts_with(t)) {
                named.insert(first.to_string());
            }
        }
    }
    assert!(named.len() > 30, "found {} paths: {named:?}", named.len());
    let missing: Vec<String> = named
        .iter()
        .flat_map(|p| expand(p))
        .filter(|p| !root().join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn no_doc_or_comment_names_an_issue_by_number() {
    let mut all = Vec::new();
    files(
        &root(),
        &[".rs", ".md", ".toml", ".yaml", ".tf", ".sh"],
        &mut all,
    );
    let pattern = |line: &str| {
        let l = line.to_ascii_lowercase();
        let words: Vec<&str> = l
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '#')
            .collect();
        words
            .windows(2)
            .any(|w| w[0] == "issue" && (w[1].starts_with('#') || w[1].parse::<u32>().is_ok()))
            || words
                .windows(3)
                .any(|w| w[0] == "the" && w[2] == "issue" && !w[1].is_empty())
    };
    let mut found = Vec::new();
    for p in &all {
        for (n, line) in std::fs::read_to_string(p).unwrap().lines().enumerate() {
            if pattern(line) {
                found.push(format!("{}:{}: {}", rel(p), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "issue references rot; say what the code does instead:\n{}",
        found.join("\n")
    );
}

/// The string literals inside every `fn reason(&self)` body of the agent and the shared
/// crates (the controller's reasons are its own: condition reasons in kenko-api).
fn returned_reasons() -> BTreeMap<String, String> {
    let mut rs = Vec::new();
    files(&root().join("agent"), &[".rs"], &mut rs);
    files(&root().join("crates"), &[".rs"], &mut rs);
    let mut out = BTreeMap::new();
    for p in rs {
        let s = std::fs::read_to_string(&p).unwrap();
        let mut rest = s.as_str();
        while let Some(i) = rest.find("fn reason(&self)") {
            let after = &rest[i..];
            let open = after.find('{').unwrap();
            let mut depth = 0;
            let mut end = open;
            for (j, c) in after[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // Attributes (`#[cfg(feature = "cloud")]` on an arm) hold no reason.
            let body: Vec<&str> = after[open..end]
                .lines()
                .filter(|l| !l.trim_start().starts_with("#["))
                .collect();
            for lit in body.join("\n").split('"').skip(1).step_by(2) {
                if !lit.is_empty() && lit.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    out.entry(lit.to_string()).or_insert_with(|| rel(&p));
                }
            }
            rest = &after[end..];
        }
    }
    out
}

fn registry() -> Vec<String> {
    let lib = std::fs::read_to_string(root().join("agent/src/lib.rs")).unwrap();
    let body = lib
        .split("pub const FAILURE_REASONS: &[&str] = &[")
        .nth(1)
        .unwrap()
        .split("];")
        .next()
        .unwrap();
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn the_reason_registry_is_exactly_what_the_errors_return() {
    let returned = returned_reasons();
    let registry = registry();
    assert!(returned.len() > 50, "found {} reasons", returned.len());
    let missing: Vec<String> = returned
        .iter()
        .filter(|(r, _)| !registry.contains(r))
        .map(|(r, f)| format!("{r} ({f})"))
        .collect();
    assert!(
        missing.is_empty(),
        "reason() returns these, FAILURE_REASONS lacks them: {missing:?}"
    );
    // An entry comes from somewhere: a reason() body, or a reason literal elsewhere in the
    // agent's source (the cluster worker's per-target refusals, the access outputs' counters).
    let mut rs = Vec::new();
    files(&root().join("agent/src"), &[".rs"], &mut rs);
    files(&root().join("crates"), &[".rs"], &mut rs);
    let sources: String = rs
        .iter()
        .filter(|p| !p.ends_with("agent/src/lib.rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let stale: Vec<&String> = registry
        .iter()
        .filter(|r| !returned.contains_key(*r) && !sources.contains(r.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "FAILURE_REASONS entries no code can produce: {stale:?}"
    );
    let mut seen = BTreeSet::new();
    let dup: Vec<&String> = registry.iter().filter(|r| !seen.insert(*r)).collect();
    assert!(dup.is_empty(), "listed twice: {dup:?}");
}

/// The workspace's members, from the root manifest.
fn members() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    doc["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Feature unification: every member depends on `kenko-workspace-hack` except the light ones
/// hakari's config excludes (they must build without the Kubernetes client and the AWS SDK), so
/// `cargo test -p CRATE` does not rebuild the heavy dependencies with another feature set.
#[test]
fn every_heavy_member_depends_on_the_workspace_hack() {
    let cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join(".config/hakari.toml")).unwrap())
            .unwrap();
    let excluded: BTreeSet<String> = cfg["final-excludes"]["workspace-members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let mut missing = Vec::new();
    let mut wrongly = Vec::new();
    for m in members() {
        let manifest: toml::Value =
            toml::from_str(&std::fs::read_to_string(root().join(&m).join("Cargo.toml")).unwrap())
                .unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        if name == "kenko-workspace-hack" {
            continue;
        }
        let has = manifest
            .get("dependencies")
            .and_then(|d| d.get("kenko-workspace-hack"))
            .is_some();
        match (excluded.contains(&name), has) {
            (false, false) => missing.push(name),
            (true, true) => wrongly.push(name),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "members without kenko-workspace-hack (run `cargo hakari manage-deps`): {missing:?}"
    );
    assert!(
        wrongly.is_empty(),
        "light members that must not depend on the hack (they would pull in kube and the AWS SDK): {wrongly:?}"
    );
    for light in &excluded {
        assert!(
            members().iter().any(|m| m.ends_with(light.as_str())),
            "hakari excludes {light}, which is not a member"
        );
    }
}

/// Long unit tests live in a sibling `tests.rs` (`#[cfg(test)] mod tests;`), so a reader of a
/// module sees its code first: an inline `mod tests { ... }` may hold ~200 lines at most.
#[test]
fn inline_test_modules_are_short() {
    let mut all = Vec::new();
    for dir in ["agent", "controller", "crates", "tests"] {
        files(&root().join(dir), &["rs"], &mut all);
    }
    let mut long = Vec::new();
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if *l == "mod tests {" && i > 0 && lines[i - 1] == "#[cfg(test)]" {
                let len = lines[i + 1..]
                    .iter()
                    .position(|l| *l == "}")
                    .unwrap_or(lines.len() - i);
                if len > 220 {
                    long.push(format!("{}:{} ({len} lines)", rel(&f), i + 1));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "inline test modules over ~200 lines; move them to a sibling tests.rs: {long:#?}"
    );
}

/// The crates `cargo tree` lists for `args` (normal and build dependencies, each once).
fn dependency_names(args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args(["tree", "--locked", "--offline", "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The crates of the AWS SDK and the Kubernetes client: what the default agent build (the
/// README's first command) must not compile.
fn is_cloud_crate(name: &str) -> bool {
    name.starts_with("aws-")
        || name.starts_with("kube")
        || name.starts_with("k8s-")
        || [
            "kenko-aws",
            "kenko-workspace-hack",
            "schemars",
            "hyper-rustls",
        ]
        .contains(&name)
}

/// The first demo builds in minutes because the default `kenko-agent` compiles neither the AWS
/// SDK nor the Kubernetes client; the `cloud` feature (the images, the tests) has both. A
/// dependency that pulls one of them into the default build fails here, by name.
#[test]
fn the_default_agent_build_has_no_aws_or_kubernetes_crate() {
    let light = dependency_names(&["-p", "kenko-agent"]);
    let heavy: Vec<_> = light.iter().filter(|n| is_cloud_crate(n)).collect();
    assert!(
        heavy.is_empty(),
        "the default kenko-agent build depends on {heavy:?}; put what needs them behind the `cloud` feature"
    );
    let full = dependency_names(&["-p", "kenko-agent", "--features", "cloud"]);
    for needed in ["kenko-aws", "aws-sdk-s3", "kube", "kube-lease-manager"] {
        assert!(
            full.contains(needed),
            "the cloud build lacks {needed}: the check above proves nothing"
        );
    }
}
