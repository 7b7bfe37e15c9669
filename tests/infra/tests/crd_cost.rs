//! The CEL cost of kenko's CRDs as the API server estimates it (`kenko_infra_tests::celcost`).
//!
//! A real API server refuses a CRD whose rules it estimates too dear, which client-side CEL in
//! the other tests never notices. The first test shows the estimator reproduces two refusals
//! we got from Kubernetes 1.36 (the CRDs as they were, in `fixtures/crd-cost/`); the next two
//! check the committed CRDs; the rest pin the model on small hand-written schemas, with the
//! numbers worked out by hand from cel-go's and Kubernetes' cost functions.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::{Path, PathBuf};

use kenko_infra_tests::celcost::{
    rule_costs, unbounded, version_totals, RuleCost, MAX_REQUEST_SIZE_BYTES,
    STATIC_ESTIMATED_COST_LIMIT, STATIC_ESTIMATED_CRD_COST_LIMIT,
};
use kenko_infra_tests::manifests::parse_yaml;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_crds(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let docs = parse_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .collect()
}

fn fixture(name: &str) -> Value {
    let path = repo().join("tests/infra/fixtures/crd-cost").join(name);
    let mut crds = load_crds(&path);
    assert_eq!(crds.len(), 1, "{name} should hold one CRD");
    crds.remove(0)
}

/// `manifests/crds/*.yaml`, with the file each CRD came from.
fn committed_crds() -> Vec<(String, Value)> {
    let dir = repo().join("manifests/crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let shown = format!(
            "manifests/crds/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        for crd in load_crds(&file) {
            out.push((shown.clone(), crd));
        }
    }
    assert!(
        out.len() >= 4,
        "manifests/crds/ should hold kenko's CRDs, found {}",
        out.len()
    );
    out
}

fn describe(c: &RuleCost) -> String {
    let error = c
        .error
        .as_deref()
        .map(|e| format!(" [cannot estimate: {e}]"))
        .unwrap_or_default();
    format!(
        "{} {}: cost {} ({:.2}x; {} per evaluation x {} evaluations): {}{error}",
        c.version, c.path, c.cost, c.factor, c.per_evaluation, c.cardinality, c.rule
    )
}

fn the_rule<'a>(costs: &'a [RuleCost], path: &str) -> &'a RuleCost {
    let at: Vec<&RuleCost> = costs.iter().filter(|c| c.path == path).collect();
    assert_eq!(at.len(), 1, "expected one rule at {path}, found {at:#?}");
    at[0]
}

fn within(factor: f64, wanted: f64, tolerance: f64) -> bool {
    (factor - wanted).abs() <= wanted * tolerance
}

#[test]
fn the_estimator_reproduces_the_api_servers_refusals() {
    // erasurerequests.kenko.io: "properties[targets].x-kubernetes-validations[0].rule:
    // Forbidden: estimated rule cost exceeds budget by factor of 44.3x"
    let costs = rule_costs(&fixture("erasurerequests-unbounded.yaml"));
    let targets = the_rule(&costs, "spec.targets");
    println!("{}", describe(targets));
    assert!(targets.rule.contains("matches"), "{}", describe(targets));
    assert!(
        targets.cost > STATIC_ESTIMATED_COST_LIMIT,
        "{}",
        describe(targets)
    );
    assert!(
        within(targets.factor, 44.3, 0.15),
        "the API server said 44.3x: {}",
        describe(targets)
    );

    // healthstacks.kenko.io: "properties[allowedEgressCIDRs] ... exceeds budget by factor of 2.0x"
    let costs = rule_costs(&fixture("healthstacks-unbounded.yaml"));
    let cidrs = the_rule(&costs, "spec.network.allowedEgressCIDRs");
    println!("{}", describe(cidrs));
    assert!(cidrs.rule.contains("isCIDR"), "{}", describe(cidrs));
    assert!(
        cidrs.cost > STATIC_ESTIMATED_COST_LIMIT,
        "{}",
        describe(cidrs)
    );
    assert!(
        within(cidrs.factor, 2.0, 0.15),
        "the API server said 2.0x: {}",
        describe(cidrs)
    );

    // The server refused nothing else in these two CRDs.
    for name in [
        "erasurerequests-unbounded.yaml",
        "healthstacks-unbounded.yaml",
    ] {
        let over: Vec<String> = rule_costs(&fixture(name))
            .iter()
            .filter(|c| c.cost > STATIC_ESTIMATED_COST_LIMIT)
            .filter(|c| c.path != "spec.targets" && c.path != "spec.network.allowedEgressCIDRs")
            .map(describe)
            .collect();
        assert!(
            over.is_empty(),
            "{name}: more rules over budget than the server reported:\n{}",
            over.join("\n")
        );
    }
}

#[test]
fn every_committed_crd_rule_is_within_budget() {
    let mut problems = Vec::new();
    let mut rules = 0;
    for (file, crd) in committed_crds() {
        let costs = rule_costs(&crd);
        rules += costs.len();
        for c in &costs {
            println!("{file}: {}", describe(c));
            if c.cost > STATIC_ESTIMATED_COST_LIMIT || c.error.is_some() {
                problems.push(format!("{file}: {}", describe(c)));
            }
        }
        for (version, total) in version_totals(&costs) {
            println!("{file}: {version} total {total}");
            if total > STATIC_ESTIMATED_CRD_COST_LIMIT {
                problems.push(format!(
                    "{file}: {version}: the rules together cost {total} \
                     ({:.2}x the CRD budget of {STATIC_ESTIMATED_CRD_COST_LIMIT})",
                    total as f64 / STATIC_ESTIMATED_CRD_COST_LIMIT as f64
                ));
            }
        }
    }
    assert!(
        rules > 0,
        "no x-kubernetes-validations rule found in manifests/crds/"
    );
    assert!(
        problems.is_empty(),
        "a Kubernetes API server would refuse these \
         (per-rule budget {STATIC_ESTIMATED_COST_LIMIT}):\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_committed_crd_has_an_unbounded_string_list_or_map() {
    let mut found = Vec::new();
    for (file, crd) in committed_crds() {
        for entry in unbounded(&crd) {
            found.push(format!("{file}: {entry}"));
        }
    }
    assert!(
        found.is_empty(),
        "{} strings, lists or maps have no bound (the API server then assumes 3 MiB):\n{}",
        found.len(),
        found.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The model on small schemas

/// A CRD whose `spec` has the given schema.
fn crd_with_spec(spec: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "things.example.com" },
        "spec": {
            "group": "example.com",
            "versions": [{
                "name": "v1",
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": spec },
                }},
            }],
        },
    })
}

fn rule(text: &str) -> Value {
    json!([{ "rule": text }])
}

fn cost_at(spec: Value, path: &str) -> RuleCost {
    let costs = rule_costs(&crd_with_spec(spec));
    the_rule(&costs, path).clone()
}

/// `MAX_REQUEST_SIZE_BYTES - 2`: an unbounded string's size.
const UNBOUNDED_STRING: u64 = MAX_REQUEST_SIZE_BYTES - 2;

#[test]
fn a_regex_costs_the_string_times_the_pattern() {
    let with = |bound: Value| {
        let mut schema = json!({
            "type": "string",
            "x-kubernetes-validations": rule("self.matches('^[a-z]+$')"),
        });
        for (k, v) in bound.as_object().unwrap() {
            schema[k] = v.clone();
        }
        cost_at(
            json!({ "type": "object", "properties": { "code": schema } }),
            "spec.code",
        )
    };
    // maxLength 10 is 40 bytes: ceil(41 x 0.1) = 5 times ceil(8 x 0.25) = 2, plus `self`.
    let bounded = with(json!({ "maxLength": 10 }));
    assert_eq!(bounded.cost, 5 * 2 + 1);
    // An enum is as long as its longest value (3): ceil(4 x 0.1) = 1.
    let enumerated = with(json!({ "enum": ["abc", "de"] }));
    assert_eq!(enumerated.cost, 2 + 1);
    // Unbounded: 3 MiB - 2 bytes, ceil(3,145,727 x 0.1) = 314,573.
    let unbounded_string = with(json!({}));
    assert_eq!(unbounded_string.cost, 314_573 * 2 + 1);
    assert_eq!(unbounded_string.per_evaluation, unbounded_string.cost);
    assert_eq!(unbounded_string.cardinality, 1);
    assert!((unbounded_string.factor - 629_147.0 / 10_000_000.0).abs() < 1e-12);
}

#[test]
fn a_list_comprehension_costs_its_body_once_per_item() {
    let tags = |bound: Option<u64>| {
        let mut list = json!({
            "type": "array",
            "items": { "type": "string", "maxLength": 5 },
            "x-kubernetes-validations": rule("self.all(t, t.startsWith('a'))"),
        });
        if let Some(max) = bound {
            list["maxItems"] = json!(max);
        }
        cost_at(
            json!({ "type": "object", "properties": { "tags": list } }),
            "spec.tags",
        )
    };
    // Per item: the loop condition @not_strictly_false(@result) 2, the step
    // `@result && t.startsWith('a')` 1 + (1 + ceil(1 x 0.1)) = 3; plus `self` and the result.
    assert_eq!(tags(Some(10)).cost, 10 * (2 + 3) + 2);
    // Unbounded: as many "" items as fit in a request, (3 MiB - 2) / 3.
    assert_eq!(tags(None).cost, (UNBOUNDED_STRING / 3) * (2 + 3) + 2);
}

#[test]
fn nested_lists_multiply_the_cardinality() {
    let spec = |outer: Option<u64>| {
        let mut groups = json!({
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "members": {
                        "type": "array",
                        "maxItems": 8,
                        "items": {
                            "type": "string",
                            "maxLength": 3,
                            "x-kubernetes-validations": rule("self.matches('^a')"),
                        },
                    },
                },
            },
            "x-kubernetes-validations": rule("self.all(g, g.members.all(m, m.startsWith('a')))"),
        });
        if let Some(max) = outer {
            groups["maxItems"] = json!(max);
        }
        json!({ "type": "object", "properties": { "groups": groups } })
    };

    // The rule on each member: ceil(13 x 0.1) = 2 times ceil(2 x 0.25) = 1, plus `self`: 3,
    // evaluated for each of 8 members of each of 4 groups.
    let member = cost_at(spec(Some(4)), "spec.groups[*].members[*]");
    assert_eq!(member.per_evaluation, 3);
    assert_eq!(member.cardinality, 4 * 8);
    assert_eq!(member.cost, 3 * 32);
    // Under an unbounded list, as many copies of the node ("") as fit in a request.
    let member = cost_at(spec(None), "spec.groups[*].members[*]");
    assert_eq!(member.cardinality, MAX_REQUEST_SIZE_BYTES / 3);
    assert_eq!(member.cost, 3 * (MAX_REQUEST_SIZE_BYTES / 3));

    // Nested comprehensions multiply too: the inner loop (g.members 2, result 1, 8 x (2 + 3))
    // is 43, the outer step 1 + 43; the whole 1 + 1 + 4 x (2 + 44).
    let groups = cost_at(spec(Some(4)), "spec.groups");
    assert_eq!(groups.cost, 2 + 4 * (2 + 1 + 43));
    assert_eq!(groups.cardinality, 1);

    // Both rules count towards the CRD total.
    let costs = rule_costs(&crd_with_spec(spec(Some(4))));
    assert_eq!(version_totals(&costs).get("v1"), Some(&(96 + 186)));
}

#[test]
fn equality_costs_the_smaller_side_and_transition_rules_cost_the_same() {
    let spec = json!({
        "type": "object",
        "properties": {
            "targets": {
                "type": "array",
                "maxItems": 64,
                "items": { "type": "string", "maxLength": 8 },
            },
            "method": { "type": "string", "maxLength": 8 },
        },
        "x-kubernetes-validations": rule(
            "self.targets == oldSelf.targets && self.method == oldSelf.method && self == oldSelf"
        ),
    });
    // Lists compare ceil(64 x 0.1) = 7, strings ceil(32 x 0.1) = 4, each plus four selections;
    // a whole object is size 0 to the API server: just its two identifiers.
    assert_eq!(cost_at(spec, "spec").cost, (7 + 4) + (4 + 4) + 2);
}

#[test]
fn a_cidr_check_parses_the_string_twice() {
    let spec = |max_length: Option<u64>| {
        let mut item = json!({ "type": "string" });
        if let Some(max) = max_length {
            item["maxLength"] = json!(max);
        }
        json!({
            "type": "object",
            "properties": { "cidrs": {
                "type": "array",
                "maxItems": 32,
                "items": item,
                "x-kubernetes-validations":
                    rule("self.all(c, isCIDR(c) && cidr(c).prefixLength() >= 8)"),
            }},
        })
    };
    // maxLength 43 (the longest IPv6 CIDR) is 172 bytes: each parse ceil(17.2) = 18.
    // Per item: condition 2; step 1 + (1 + 18) + (1 + (1 + 1 + 18)) = 41.
    assert_eq!(
        cost_at(spec(Some(43)), "spec.cidrs").cost,
        32 * (2 + 41) + 2
    );
    // Unbounded strings: ceil(3,145,726 x 0.1) = 314,573 per parse.
    let parse = 314_573;
    assert_eq!(
        cost_at(spec(None), "spec.cidrs").cost,
        32 * (2 + 1 + (1 + parse) + (1 + 1 + 1 + parse)) + 2
    );
}

#[test]
fn a_rule_that_does_not_parse_is_reported_not_priced() {
    let spec = json!({
        "type": "object",
        "properties": { "name": {
            "type": "string",
            "maxLength": 5,
            "x-kubernetes-validations": rule("self.size( > 0"),
        }},
    });
    let c = cost_at(spec, "spec.name");
    assert_eq!(c.cost, u64::MAX);
    assert!(
        c.error
            .as_deref()
            .is_some_and(|e| e.contains("does not parse")),
        "{c:?}"
    );
}

#[test]
fn unbounded_names_every_string_list_and_map_without_a_bound() {
    let crd = crd_with_spec(json!({
        "type": "object",
        "properties": {
            "bounded": { "type": "string", "maxLength": 5 },
            "enumerated": { "type": "string", "enum": ["a", "b"] },
            "name": { "type": "string" },
            "when": { "type": "string", "format": "date-time" },
            "tags": { "type": "array", "maxItems": 4, "items": { "type": "string" } },
            "list": { "type": "array", "items": { "type": "string", "maxLength": 3 } },
            "labels": {
                "type": "object",
                "additionalProperties": { "type": "string", "maxLength": 3 },
            },
            "limits": {
                "type": "object",
                "maxProperties": 3,
                "additionalProperties": { "x-kubernetes-int-or-string": true },
            },
            "port": { "x-kubernetes-int-or-string": true, "maxLength": 5 },
            "count": { "type": "integer" },
        },
    }));
    let mut found = unbounded(&crd);
    found.sort();
    assert_eq!(
        found,
        vec![
            "spec.labels: map without maxProperties",
            "spec.limits.*: int-or-string without maxLength",
            "spec.list: array without maxItems",
            "spec.name: string without maxLength or enum",
            "spec.tags[*]: string without maxLength or enum",
            "spec.when: string (date-time) without maxLength",
        ]
    );
}
