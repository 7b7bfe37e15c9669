//! A static estimate of what the Kubernetes API server thinks a CRD's CEL rules cost.
//!
//! When a CustomResourceDefinition is created or updated, the API server estimates the
//! worst-case cost of every `x-kubernetes-validations` rule *from the schema alone* and refuses
//! the CRD if one rule exceeds [`STATIC_ESTIMATED_COST_LIMIT`] (10,000,000) or all rules
//! together exceed [`STATIC_ESTIMATED_CRD_COST_LIMIT`] (100,000,000). Client-side CEL (kube's,
//! used by [`crate::manifests`]) evaluates rules on real objects and never estimates, so a rule
//! that passes every test can still be refused by a real cluster. This module is the guard.
//!
//! It follows three pieces of Kubernetes and cel-go:
//!
//! - **Sizes from the schema** (`apiextensions-apiserver/.../cel/model/schemas.go`,
//!   `SchemaDeclType`, and `apiserver/pkg/cel/types.go`, `DeclType`): a string's size is
//!   `maxLength × 4` (bytes, a code point is at most 4), else the longest `enum` value, else
//!   `estimateMaxStringLengthPerRequest`: 3 MiB − 2 (a `date-time` is 32, a `date` 12, a
//!   `duration` 32, whatever their `maxLength`). A list's size is `maxItems`, else
//!   `estimateMaxArrayItemsFromMinSize`: (3 MiB − 2) / (item's min serialized size + 1); a map's
//!   `maxProperties`, else (3 MiB − 2) / (value's min size + 6). Objects, integers and booleans
//!   have size 0, as their `DeclType.MaxElements` is never set. The `enum` bound and
//!   `maxLength` on `x-kubernetes-int-or-string` are what current API servers do
//!   (`apiserver/pkg/cel/common/schemas.go`); older ones ignored both.
//! - **The cost of one evaluation** (cel-go `checker/cost.go`, and Kubernetes'
//!   `apiserver/pkg/cel/library/cost.go` for its own functions): identifiers and field selection
//!   1 (plus 1 for selecting a field of an object or map), literals 0, a list literal 10, an
//!   O(1) call 1 plus its arguments; `==`, `!=` and string ordering ⌈min(size) × 0.1⌉; `in` the
//!   list's size; `startsWith`/`endsWith` ⌈size(arg) × 0.1⌉; `matches`, `find`, `findAll`
//!   ⌈(size + 1) × 0.1⌉ × ⌈size(regex) × 0.25⌉; `isCIDR`, `cidr`, `isIP`, `ip`, `url`,
//!   `quantity` ⌈size × 0.1⌉; `prefixLength` and the other CIDR/IP accessors 1; `containsCIDR` 7
//!   and `containsIP` 4 (plus parsing a string argument); `&&`/`||` the sum of both sides; a
//!   ternary the condition plus the dearer branch; a comprehension (`all`, `exists`,
//!   `exists_one`, `map`, `filter`) its range plus the range's size × (loop condition + step).
//! - **Cardinality** (`apiextensions/validation/cel_validation.go`, `getExpressionCost`): a rule
//!   under lists and maps is evaluated once per element, so the API server multiplies its cost
//!   by the product of the enclosing `maxItems`/`maxProperties`; if any enclosing list or map is
//!   unbounded, by 3 MiB / (the rule node's min serialized size + 1) instead. That product is
//!   what it compares with the per-rule limit and adds to the CRD total, and so is
//!   [`RuleCost::cost`].
//!
//! On the two CRDs a Kubernetes 1.36 API server refused (kept in
//! `tests/infra/fixtures/crd-cost/`), this reproduces its numbers: erasurerequests'
//! `spec.targets` rule 442,919,042 (44.29×; the server said 44.3×) and healthstacks'
//! `spec.network.allowedEgressCIDRs` rule 20,132,898 (2.01×; the server said 2.0×).
//!
//! Where it is knowingly coarser than the API server:
//!
//! - There is no type checker. Types come from the schema along field paths, from literals and
//!   from the functions above; where the API server would pick among overloads by type (`+`,
//!   `<`, `in` on a map), this picks by the types it knows and otherwise takes the list/string
//!   overload, which is never cheaper. A value whose size nothing bounds (the result of an
//!   unknown function) has size `u64::MAX`, as in cel-go, so any traversal of it saturates.
//! - It follows the `checker/cost.go` Kubernetes vendors (a selection from an object or map
//!   costs 1 more, from anything else nothing more), not the reworked cost package of the
//!   newest cel-go. Global `isCIDR(s)`/`cidr(s)` are charged their parse although that source
//!   hands Kubernetes' estimator no target for a global call (which it needs to charge):
//!   the 1.36 server's 2.0× for `allowedEgressCIDRs` is exactly two parses per item, and
//!   Kubernetes' own tests price `isCIDR('192.168.0.0/16')` at 2, not 1.
//! - Functions it does not know cost 1 plus their arguments (cel-go's default). Kubernetes
//!   library functions outside the list above (`format`, `join`, `indexOf`, `isSorted`,
//!   `sum`, the authorizer, `sets`, `jsonpatch`) are not modelled; `replace` and `split` are
//!   charged their traversal but their result's size is taken as the target's, not
//!   Kubernetes' finer bound. A literal map's keys are unsized when iterated.
//! - `matches(s, re)` written as a global call is charged like `s.matches(re)` (cel-go charges
//!   the global overload 1); nobody writes it that way, and dearer is the safe side.
//! - `self == oldSelf` on a whole object costs 2, as on the API server (an object's size is
//!   0), although comparing two objects really walks them. This mirrors the server; it is not
//!   a safety margin.
//! - Property names are matched after undoing CEL escaping (`__dash__`, `__dot__`,
//!   `__slash__`, `__underscores__`, `__keyword__`) but unescapable names are not dropped.
//! - The CRD total is per version (as the API server validates each version's schema), and
//!   `messageExpression` costs are counted once, not per element, as the API server does.
//!
//! [`unbounded`] is the blunt companion: it lists every string, list and map that has no
//! bound at all, which is what makes the API server fall back to the 3 MiB worst case.

use std::collections::BTreeMap;

use kube::core::cel::cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue,
};
use kube::core::cel::cel::Program;
use serde_json::Value;

/// The largest request the API server accepts (3 MiB); every unbounded size derives from it.
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;
/// The most one rule may cost (`StaticEstimatedCostLimit`).
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// The most all rules of one CRD version may cost together (`StaticEstimatedCRDCostLimit`).
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;

// cel-go common/cost.go
const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const REGEX_STRING_LENGTH_COST_FACTOR: f64 = 0.25;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;
const STRUCT_CREATE_BASE_COST: u64 = 40;

// apiserver/pkg/cel/limits.go: serialized sizes of JSON scalars.
const MAX_DURATION_SIZE_JSON: u64 = 32;
const MAX_DATETIME_SIZE_JSON: u64 = 32;
const MIN_DURATION_SIZE_JSON: u64 = 3;
const JSON_DATE_SIZE: u64 = 12;
const MIN_DATETIME_SIZE_JSON: u64 = 21;
const MIN_STRING_SIZE: u64 = 2;
const MIN_BOOL_SIZE: u64 = 4;
const MIN_NUMBER_SIZE: u64 = 1;

// ---------------------------------------------------------------------------------------------
// Paths

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn items_path(path: &str) -> String {
    format!("{path}[*]")
}

fn values_path(path: &str) -> String {
    child_path(path, "*")
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

/// `(version name, openAPIV3Schema)` of every version of a CRD.
fn version_schemas(crd: &Value) -> Vec<(String, &Value)> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|versions| {
            versions
                .iter()
                .filter_map(|v| {
                    let schema = v.pointer("/schema/openAPIV3Schema")?;
                    let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
                    Some((name.to_string(), schema))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn uint(schema: &Value, key: &str) -> Option<u64> {
    let v = schema.get(key)?;
    // A negative bound counts as 0, as zeroIfNegative does.
    v.as_u64()
        .or_else(|| v.as_i64().map(|_| 0))
        .or_else(|| v.as_f64().map(|f| if f < 0.0 { 0 } else { f as u64 }))
}

fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The schema of a map's values: `additionalProperties` when it is a schema (not `true`).
fn additional_properties(schema: &Value) -> Option<&Value> {
    schema
        .get("additionalProperties")
        .filter(|ap| ap.is_object())
}

// ---------------------------------------------------------------------------------------------
// Unbounded strings, lists and maps

/// Every string, list and map in every version's schema (spec and status alike) that has no
/// bound, as `path: what is missing` (`spec.targets[*]: string without maxLength`). A string is
/// bounded by `maxLength` or `enum` (a `date-time`, `date` or `duration` string still needs
/// `maxLength`), a list by `maxItems`, a map (`additionalProperties`) by `maxProperties`, an
/// `x-kubernetes-int-or-string` by `maxLength`. With more than one version each entry starts
/// with the version's name.
pub fn unbounded(crd: &Value) -> Vec<String> {
    let versions = version_schemas(crd);
    let mut out = Vec::new();
    for (name, schema) in &versions {
        let mut found = Vec::new();
        walk_bounds(schema, "", &mut found);
        for entry in found {
            if versions.len() > 1 {
                out.push(format!("{name}: {entry}"));
            } else {
                out.push(entry);
            }
        }
    }
    out
}

fn walk_bounds(schema: &Value, path: &str, out: &mut Vec<String>) {
    let at = shown(path);
    if is_true(schema, "x-kubernetes-int-or-string") {
        if schema.get("maxLength").is_none() {
            out.push(format!("{at}: int-or-string without maxLength"));
        }
    } else {
        match type_of(schema) {
            "string" if schema.get("maxLength").is_none() && schema.get("enum").is_none() => {
                let what = match schema.get("format").and_then(Value::as_str) {
                    Some(format) => format!("string ({format}) without maxLength"),
                    None => "string without maxLength or enum".to_string(),
                };
                out.push(format!("{at}: {what}"));
            }
            "array" if schema.get("maxItems").is_none() => {
                out.push(format!("{at}: array without maxItems"));
            }
            "object"
                if additional_properties(schema).is_some()
                    && schema.get("maxProperties").is_none() =>
            {
                out.push(format!("{at}: map without maxProperties"));
            }
            _ => {}
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            walk_bounds(prop, &child_path(path, name), out);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        walk_bounds(items, &items_path(path), out);
    }
    if let Some(values) = additional_properties(schema) {
        walk_bounds(values, &values_path(path), out);
    }
}

// ---------------------------------------------------------------------------------------------
// Schema → CEL declarations (SchemaDeclType)

/// What the API server's `DeclType` keeps of a schema node: its shape, its size
/// (`MaxElements`: characters, items or entries) and the smallest JSON it serializes to.
#[derive(Debug, Clone)]
struct Decl {
    kind: Kind,
    max_elements: u64,
    min_size: u64,
}

#[derive(Debug, Clone)]
enum Kind {
    String,
    Bytes,
    Timestamp,
    Duration,
    Int,
    Double,
    Bool,
    /// `x-kubernetes-int-or-string`.
    Dyn,
    List(Box<Decl>),
    Map(Box<Decl>),
    Object(BTreeMap<String, Decl>),
}

/// A map's keys: the API server declares them as its plain `StringType`, whose size is 0.
static MAP_KEY: Decl = Decl {
    kind: Kind::String,
    max_elements: 0,
    min_size: MIN_STRING_SIZE,
};

impl Decl {
    fn scalar(kind: Kind, max_elements: u64, min_size: u64) -> Decl {
        Decl {
            kind,
            max_elements,
            min_size,
        }
    }
}

/// `estimateMaxStringLengthPerRequest`.
fn max_string_length_per_request(schema: &Value) -> u64 {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return MAX_REQUEST_SIZE_BYTES - 2;
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("duration") => MAX_DURATION_SIZE_JSON,
        Some("date") => JSON_DATE_SIZE,
        Some("date-time") => MAX_DATETIME_SIZE_JSON,
        // minus the two quotes
        _ => MAX_REQUEST_SIZE_BYTES - 2,
    }
}

/// `estimateMaxStringEnumLength`: the longest value, in bytes.
fn max_enum_length(schema: &Value) -> Option<u64> {
    let values = schema.get("enum")?.as_array()?;
    Some(
        values
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.len() as u64)
            .max()
            .unwrap_or(0),
    )
}

/// `WithTypeAndObjectMeta`: the root of a resource always has `apiVersion`, `kind` and
/// `metadata.name`/`generateName`, declared or not.
fn with_type_and_object_meta(schema: &Value) -> Value {
    let props = schema.get("properties");
    let is = |name: &str, t: &str| props.and_then(|p| p.get(name)).map(type_of) == Some(t);
    let meta_is = |name: &str| {
        props
            .and_then(|p| p.pointer(&format!("/metadata/properties/{name}")))
            .map(type_of)
            == Some("string")
    };
    if is("kind", "string")
        && is("apiVersion", "string")
        && is("metadata", "object")
        && meta_is("name")
        && meta_is("generateName")
    {
        return schema.clone();
    }
    let mut out = schema.clone();
    let string = serde_json::json!({ "type": "string" });
    if let Some(obj) = out.as_object_mut() {
        let props = obj
            .entry("properties")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(props) = props.as_object_mut() {
            props.insert("kind".to_string(), string.clone());
            props.insert("apiVersion".to_string(), string.clone());
            props.insert(
                "metadata".to_string(),
                serde_json::json!({
                    "type": "object",
                    "properties": { "name": string, "generateName": string },
                }),
            );
        }
    }
    out
}

/// `SchemaDeclType`: `None` where the API server exposes nothing to CEL.
fn decl_type(schema: &Value, resource_root: bool) -> Option<Decl> {
    if is_true(schema, "x-kubernetes-int-or-string") {
        let max = match uint(schema, "maxLength") {
            Some(max) => max.saturating_mul(4),
            None => max_string_length_per_request(schema),
        };
        return Some(Decl::scalar(Kind::Dyn, max, 1));
    }
    let rooted;
    let schema = if resource_root {
        rooted = with_type_and_object_meta(schema);
        &rooted
    } else {
        schema
    };
    match type_of(schema) {
        "array" => {
            let items = schema.get("items").filter(|i| i.is_object())?;
            let item = decl_type(items, is_true(items, "x-kubernetes-embedded-resource"))?;
            let max = uint(schema, "maxItems")
                // estimateMaxArrayItemsFromMinSize: minus [ and ], one comma per item
                .unwrap_or((MAX_REQUEST_SIZE_BYTES - 2) / (item.min_size + 1));
            Some(Decl {
                kind: Kind::List(Box::new(item)),
                max_elements: max,
                min_size: 2,
            })
        }
        "object" => {
            if let Some(values) = additional_properties(schema) {
                let value = decl_type(values, is_true(values, "x-kubernetes-embedded-resource"))?;
                let max = uint(schema, "maxProperties")
                    // estimateMaxAdditionalPropertiesFromMinSize: "k":v, per entry
                    .unwrap_or((MAX_REQUEST_SIZE_BYTES - 2) / (value.min_size + 6));
                return Some(Decl {
                    kind: Kind::Map(Box::new(value)),
                    max_elements: max,
                    min_size: 2,
                });
            }
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut fields = BTreeMap::new();
            // {} plus every required property without a default ("name":value)
            let mut min_size = 2u64;
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let Some(field) =
                        decl_type(prop, is_true(prop, "x-kubernetes-embedded-resource"))
                    else {
                        continue;
                    };
                    if required.contains(&name.as_str()) && prop.get("default").is_none() {
                        min_size = min_size.saturating_add(name.len() as u64 + field.min_size + 4);
                    }
                    fields.insert(name.clone(), field);
                }
            }
            Some(Decl {
                kind: Kind::Object(fields),
                max_elements: 0,
                min_size,
            })
        }
        "string" => {
            let format = schema.get("format").and_then(Value::as_str);
            let per_request = max_string_length_per_request(schema);
            Some(match format {
                Some("byte") => Decl::scalar(
                    Kind::Bytes,
                    uint(schema, "maxLength").unwrap_or(per_request),
                    MIN_STRING_SIZE,
                ),
                // The API server bounds these by their format, never by maxLength.
                Some("duration") => {
                    Decl::scalar(Kind::Duration, per_request, MIN_DURATION_SIZE_JSON)
                }
                Some("date") => Decl::scalar(Kind::Timestamp, per_request, JSON_DATE_SIZE),
                Some("date-time") => {
                    Decl::scalar(Kind::Timestamp, per_request, MIN_DATETIME_SIZE_JSON)
                }
                _ => {
                    let max = match uint(schema, "maxLength") {
                        // maxLength counts code points; sizes are bytes
                        Some(max) => max.saturating_mul(4),
                        None => max_enum_length(schema).unwrap_or(per_request),
                    };
                    Decl::scalar(Kind::String, max, MIN_STRING_SIZE)
                }
            })
        }
        "boolean" => Some(Decl::scalar(Kind::Bool, 0, MIN_BOOL_SIZE)),
        "number" => Some(Decl::scalar(Kind::Double, 0, MIN_NUMBER_SIZE)),
        "integer" => Some(Decl::scalar(Kind::Int, 0, MIN_NUMBER_SIZE)),
        _ => None,
    }
}

/// `extractMaxElements`: how many times each child of this node can occur per occurrence of
/// the node; `None` when unbounded.
fn max_children(schema: &Value) -> Option<u64> {
    match type_of(schema) {
        "object" if additional_properties(schema).is_some() => uint(schema, "maxProperties"),
        "array" => uint(schema, "maxItems"),
        _ => Some(1),
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

/// The estimated cost of one `x-kubernetes-validations` rule (or its `messageExpression`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCost {
    /// The CRD version whose schema holds the rule.
    pub version: String,
    /// Where the rule sits in the schema (`spec.targets`, `status.conditions[*]`, `(root)`).
    pub path: String,
    /// The rule's CEL (a message expression is shown as `messageExpression: ...`).
    pub rule: String,
    /// What the API server compares with [`STATIC_ESTIMATED_COST_LIMIT`] and adds to the CRD
    /// total: [`Self::per_evaluation`] × [`Self::cardinality`].
    pub cost: u64,
    /// `cost / 10_000_000`, the API server's "exceeds budget by factor of" number.
    pub factor: f64,
    /// The cel-go estimate of evaluating the rule once.
    pub per_evaluation: u64,
    /// How many times the rule can be evaluated for one object (1 outside lists and maps).
    pub cardinality: u64,
    /// Why the rule could not be estimated (it does not parse, or its node has no CEL type);
    /// the cost is then `u64::MAX`.
    pub error: Option<String>,
}

impl RuleCost {
    fn new(
        version: &str,
        path: &str,
        rule: String,
        estimate: Result<u64, String>,
        cardinality: u64,
    ) -> RuleCost {
        let (per_evaluation, error) = match estimate {
            Ok(cost) => (cost, None),
            Err(err) => (u64::MAX, Some(err)),
        };
        let cost = per_evaluation.saturating_mul(cardinality);
        RuleCost {
            version: version.to_string(),
            path: shown(path).to_string(),
            rule,
            cost,
            factor: cost as f64 / STATIC_ESTIMATED_COST_LIMIT as f64,
            per_evaluation,
            cardinality,
            error,
        }
    }
}

/// The worst-case cost of every rule of every version, as the API server estimates it when
/// the CRD is applied (see the module documentation for the model).
pub fn rule_costs(crd: &Value) -> Vec<RuleCost> {
    let mut out = Vec::new();
    for (version, schema) in version_schemas(crd) {
        walk_rules(schema, "", Some(1), true, &version, &mut out);
    }
    out
}

/// The total of each version's rules (what the API server compares with
/// [`STATIC_ESTIMATED_CRD_COST_LIMIT`]), by version name.
pub fn version_totals(costs: &[RuleCost]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for cost in costs {
        let total: &mut u64 = totals.entry(cost.version.clone()).or_default();
        *total = total.saturating_add(cost.cost);
    }
    totals
}

fn walk_rules(
    schema: &Value,
    path: &str,
    cardinality: Option<u64>,
    root: bool,
    version: &str,
    out: &mut Vec<RuleCost>,
) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty());
    if let Some(rules) = rules {
        let decl = decl_type(
            schema,
            root || is_true(schema, "x-kubernetes-embedded-resource"),
        );
        // Under an unbounded list or map, the worst case is as many copies of this node as
        // fit in one request.
        let min_size = decl.as_ref().map_or(1, |d| d.min_size);
        let times = cardinality.unwrap_or(MAX_REQUEST_SIZE_BYTES / (min_size + 1));
        for rule in rules {
            if let Some(text) = rule.get("rule").and_then(Value::as_str) {
                let estimate = estimate(text, decl.as_ref());
                out.push(RuleCost::new(
                    version,
                    path,
                    text.to_string(),
                    estimate,
                    times,
                ));
            }
            if let Some(text) = rule.get("messageExpression").and_then(Value::as_str) {
                // The API server adds a message expression's cost once, never per element.
                let estimate = estimate(text, decl.as_ref());
                let shown_rule = format!("messageExpression: {text}");
                out.push(RuleCost::new(version, path, shown_rule, estimate, 1));
            }
        }
    }
    let child_cardinality =
        cardinality.and_then(|c| max_children(schema).map(|m| c.saturating_mul(m)));
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = child_path(path, name);
            walk_rules(prop, &p, child_cardinality, false, version, out);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        walk_rules(
            items,
            &items_path(path),
            child_cardinality,
            false,
            version,
            out,
        );
    }
    if let Some(values) = additional_properties(schema) {
        walk_rules(
            values,
            &values_path(path),
            child_cardinality,
            false,
            version,
            out,
        );
    }
}

/// The cost of evaluating `rule` once with `self` (and `oldSelf`) of type `decl`.
fn estimate(rule: &str, decl: Option<&Decl>) -> Result<u64, String> {
    let decl = decl.ok_or("the schema node has no CEL type (the API server would refuse it)")?;
    let program = Program::compile(rule).map_err(|err| format!("does not parse: {err}"))?;
    let mut estimator = Estimator {
        self_decl: decl,
        locals: Vec::new(),
    };
    Ok(estimator.expr(program.expression()).cost)
}

// ---------------------------------------------------------------------------------------------
// The estimator (cel-go checker/cost.go with Kubernetes' library costs)

/// The CEL types the estimator needs to tell apart.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Ty>),
    Map(Box<Ty>),
    Object,
    Cidr,
    Ip,
    Dyn,
}

impl Ty {
    fn of(decl: &Decl) -> Ty {
        match &decl.kind {
            Kind::String => Ty::String,
            Kind::Bytes => Ty::Bytes,
            Kind::Timestamp => Ty::Timestamp,
            Kind::Duration => Ty::Duration,
            Kind::Int => Ty::Int,
            Kind::Double => Ty::Double,
            Kind::Bool => Ty::Bool,
            Kind::Dyn => Ty::Dyn,
            Kind::List(item) => Ty::List(Box::new(Ty::of(item))),
            Kind::Map(value) => Ty::Map(Box::new(Ty::of(value))),
            Kind::Object(_) => Ty::Object,
        }
    }

    /// cel-go's `isScalar`: a value whose size is 1 whatever it holds.
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Bool | Ty::Int | Ty::Uint | Ty::Double | Ty::Duration | Ty::Timestamp
        )
    }

    fn is_text(&self) -> bool {
        matches!(self, Ty::String | Ty::Bytes)
    }

    fn elem(&self) -> Ty {
        match self {
            Ty::List(t) | Ty::Map(t) => (**t).clone(),
            _ => Ty::Dyn,
        }
    }
}

/// What the estimator knows of one expression: its cost, and what it needs to size it.
#[derive(Debug, Clone)]
struct Est<'d> {
    /// The worst-case cost of evaluating it.
    cost: u64,
    /// Its size where the expression itself fixes it (a literal, a call's result).
    size: Option<u64>,
    /// The size of its elements, for a list or map literal (cel-go's entry size).
    elem_size: Option<u64>,
    /// The schema node it reads, where it is a field path from `self` (cel-go's path).
    decl: Option<&'d Decl>,
    ty: Ty,
}

impl<'d> Est<'d> {
    fn new(cost: u64, ty: Ty) -> Est<'d> {
        Est {
            cost,
            size: None,
            elem_size: None,
            decl: None,
            ty,
        }
    }

    fn sized(mut self, size: u64) -> Est<'d> {
        self.size = Some(size);
        self
    }

    fn of_decl(cost: u64, decl: Option<&'d Decl>, fallback: Ty) -> Est<'d> {
        Est {
            cost,
            size: None,
            elem_size: None,
            ty: decl.map_or(fallback, Ty::of),
            decl,
        }
    }

    /// cel-go's `sizeOrUnknown`: computed size, else the schema's, else 1 for a scalar, else
    /// unknown (`u64::MAX`).
    fn size(&self) -> u64 {
        if let Some(size) = self.size {
            return size;
        }
        if let Some(decl) = self.decl {
            return decl.max_elements;
        }
        if self.ty.is_scalar() {
            return 1;
        }
        u64::MAX
    }

    /// The schema node of an element (list item or map value).
    fn elem_decl(&self) -> Option<&'d Decl> {
        match &self.decl?.kind {
            Kind::List(item) => Some(item),
            Kind::Map(value) => Some(value),
            _ => None,
        }
    }
}

/// `multiplyByCostFactor`: ⌈x × factor⌉, saturating; the same IEEE arithmetic as Go's.
fn by_factor(x: u64, factor: f64) -> u64 {
    let product = x as f64 * factor;
    if product >= u64::MAX as f64 {
        u64::MAX
    } else {
        product.ceil() as u64
    }
}

fn sum(costs: impl IntoIterator<Item = u64>) -> u64 {
    costs.into_iter().fold(0, u64::saturating_add)
}

/// The field name a CEL identifier stands for (Kubernetes escapes property names that are not
/// CEL identifiers).
fn unescape(name: &str) -> String {
    if let Some(inner) = name.strip_prefix("__").and_then(|n| n.strip_suffix("__")) {
        if !inner.contains("__") && !inner.is_empty() {
            match inner {
                "dash" => return "-".to_string(),
                "dot" => return ".".to_string(),
                "slash" => return "/".to_string(),
                "underscores" => return "__".to_string(),
                keyword => return keyword.to_string(),
            }
        }
    }
    name.replace("__underscores__", "__")
        .replace("__dot__", ".")
        .replace("__dash__", "-")
        .replace("__slash__", "/")
}

struct Estimator<'d> {
    /// The type of `self` and `oldSelf`: the schema node the rule sits on.
    self_decl: &'d Decl,
    /// Comprehension variables in scope, innermost last.
    locals: Vec<(String, Est<'d>)>,
}

impl<'d> Estimator<'d> {
    fn expr(&mut self, e: &IdedExpr) -> Est<'d> {
        match &e.expr {
            Expr::Literal(literal) => literal_est(literal),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.expr(&select.operand);
                if select.test {
                    // has(): the presence test costs 1, the operand what it costs
                    return Est::new(operand.cost.saturating_add(1), Ty::Bool);
                }
                // Selecting a field of an object or a map is one more qualification.
                let select_cost = u64::from(matches!(operand.ty, Ty::Object | Ty::Map(_)));
                let cost = operand.cost.saturating_add(select_cost);
                let decl = match operand.decl.map(|d| &d.kind) {
                    Some(Kind::Object(fields)) => fields.get(&unescape(&select.field)),
                    Some(Kind::Map(value)) => Some(&**value),
                    _ => None,
                };
                let fallback = match &operand.ty {
                    Ty::Map(value) => (**value).clone(),
                    _ => Ty::Dyn,
                };
                Est::of_decl(cost, decl, fallback)
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => {
                let elems: Vec<Est<'d>> = list.elements.iter().map(|x| self.expr(x)).collect();
                let elem_ty = elems.first().map_or(Ty::Dyn, |x| x.ty.clone());
                let mut est = Est::new(
                    sum(elems.iter().map(|x| x.cost)).saturating_add(LIST_CREATE_BASE_COST),
                    Ty::List(Box::new(elem_ty)),
                )
                .sized(elems.len() as u64);
                est.elem_size = Some(elems.iter().map(Est::size).max().unwrap_or(0));
                est
            }
            Expr::Map(map) => {
                let mut cost = MAP_CREATE_BASE_COST;
                let mut value_ty = Ty::Dyn;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        cost = cost.saturating_add(self.expr(&entry.key).cost);
                        let value = self.expr(&entry.value);
                        cost = cost.saturating_add(value.cost);
                        value_ty = value.ty;
                    }
                }
                Est::new(cost, Ty::Map(Box::new(value_ty))).sized(map.entries.len() as u64)
            }
            Expr::Struct(st) => {
                let mut cost = STRUCT_CREATE_BASE_COST;
                for entry in &st.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        cost = cost.saturating_add(self.expr(&field.value).cost);
                    }
                }
                Est::new(cost, Ty::Object)
            }
            Expr::Comprehension(comp) => self.comprehension(comp),
            Expr::Unspecified => Est::new(0, Ty::Dyn),
        }
    }

    fn ident(&self, name: &str) -> Est<'d> {
        if let Some((_, local)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            let mut est = local.clone();
            est.cost = 1;
            return est;
        }
        match name {
            "self" | "oldSelf" => Est::of_decl(1, Some(self.self_decl), Ty::Dyn),
            _ => Est::new(1, Ty::Dyn),
        }
    }

    /// A comprehension costs its range, its initial value and its result once, and its loop
    /// condition and step once per element of the range.
    fn comprehension(&mut self, comp: &ComprehensionExpr) -> Est<'d> {
        let range = self.expr(&comp.iter_range);
        let init = self.expr(&comp.accu_init);
        let mut accu = Est::new(1, init.ty.clone()).sized(init.size());
        accu.elem_size = init.elem_size;
        self.locals.push((comp.accu_var.clone(), accu));

        let is_map = matches!(range.ty, Ty::Map(_));
        // An element of the range: a list item or a map value, from the schema when the range
        // is a field, else from the literal's entries.
        let element = {
            let mut e = Est::of_decl(1, range.elem_decl(), range.ty.elem());
            if e.decl.is_none() {
                e.size = range.elem_size;
            }
            e
        };
        // A map key: the API server declares keys with size 0.
        let key = if range.decl.is_some() {
            Est::of_decl(1, Some(&MAP_KEY), Ty::String)
        } else {
            Est::new(1, Ty::String)
        };
        let mut pushed = 1;
        match &comp.iter_var2 {
            None if is_map => self.locals.push((comp.iter_var.clone(), key)),
            None => self.locals.push((comp.iter_var.clone(), element)),
            Some(second) => {
                let first = if is_map { key } else { Est::new(1, Ty::Int) };
                self.locals.push((comp.iter_var.clone(), first));
                self.locals.push((second.clone(), element));
                pushed = 2;
            }
        }
        let cond = self.expr(&comp.loop_cond);
        let step = self.expr(&comp.loop_step);
        for _ in 0..pushed {
            self.locals.pop();
        }
        let result = self.expr(&comp.result);
        self.locals.pop();

        let count = range.size();
        let per_element = step.cost.saturating_add(cond.cost);
        let cost = sum([
            range.cost,
            init.cost,
            result.cost,
            count.saturating_mul(per_element),
        ]);
        let mut est = Est::new(cost, result.ty.clone());
        match &comp.accu_init.expr {
            Expr::Literal(_) => est.size = Some(init.size()),
            Expr::List(_) | Expr::Map(_) => {
                // map() and filter() build at most one entry per element
                est.size = Some(count);
                est.elem_size = step.elem_size;
            }
            _ => {}
        }
        est
    }

    fn call(&mut self, call: &CallExpr) -> Est<'d> {
        let target = call.target.as_ref().map(|t| self.expr(t));
        let args: Vec<Est<'d>> = call.args.iter().map(|a| self.expr(a)).collect();
        let args_cost = sum(args.iter().map(|a| a.cost));
        let target_cost = target.as_ref().map_or(0, |t| t.cost);
        // Most calls cost their operands plus what the function itself costs.
        let plus = |own: u64| sum([own, target_cost, args_cost]);
        let arg = |i: usize| args.get(i);
        let arg_size = |i: usize| arg(i).map_or(u64::MAX, Est::size);
        let target_size = target.as_ref().map_or(u64::MAX, Est::size);

        match (call.func_name.as_str(), args.len()) {
            // Short-circuiting: the worst case evaluates both sides, and nothing more.
            ("_&&_" | "_||_", _) => Est::new(args_cost, Ty::Bool),
            ("_?_:_", 3) => {
                let cost = args[0].cost.saturating_add(args[1].cost.max(args[2].cost));
                let mut est =
                    Est::new(cost, args[1].ty.clone()).sized(arg_size(1).max(arg_size(2)));
                est.elem_size = match (args[1].elem_size, args[2].elem_size) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                est
            }
            ("_==_", 2) if is_net(&args[0].ty) && args[0].ty == args[1].ty => {
                // Kubernetes compares IPs and CIDRs in O(1).
                Est::new(plus(1), Ty::Bool)
            }
            ("_==_" | "_!=_", 2) => {
                let smallest = arg_size(0).min(arg_size(1));
                Est::new(
                    plus(by_factor(smallest, STRING_TRAVERSAL_COST_FACTOR)),
                    Ty::Bool,
                )
            }
            ("_<_" | "_<=_" | "_>_" | "_>=_", 2) => {
                if args[0].ty.is_text() || args[1].ty.is_text() {
                    let smallest = arg_size(0).min(arg_size(1));
                    Est::new(
                        plus(by_factor(smallest, STRING_TRAVERSAL_COST_FACTOR)),
                        Ty::Bool,
                    )
                } else {
                    Est::new(plus(1), Ty::Bool)
                }
            }
            ("@in", 2) => {
                // `in` a list walks it; `in` a map is a lookup.
                let own = if matches!(args[1].ty, Ty::Map(_)) {
                    1
                } else {
                    arg_size(1)
                };
                Est::new(plus(own), Ty::Bool)
            }
            ("_+_", 2) => match (&args[0].ty, &args[1].ty) {
                (Ty::String, _) | (_, Ty::String) | (Ty::Bytes, _) | (_, Ty::Bytes) => {
                    let size = arg_size(0).saturating_add(arg_size(1));
                    let ty = args[0].ty.clone();
                    Est::new(plus(by_factor(size, STRING_TRAVERSAL_COST_FACTOR)), ty).sized(size)
                }
                (Ty::List(_), _) | (_, Ty::List(_)) => {
                    let size = arg_size(0).saturating_add(arg_size(1));
                    let ty = match &args[0].ty {
                        Ty::List(_) => args[0].ty.clone(),
                        _ => args[1].ty.clone(),
                    };
                    let mut est = Est::new(plus(1), ty).sized(size);
                    est.elem_size = match (args[0].elem_size, args[1].elem_size) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    est
                }
                (ty, _) => Est::new(plus(1), ty.clone()),
            },
            ("_[_]", 2) => {
                let container = &args[0];
                let mut est = Est::of_decl(plus(1), container.elem_decl(), container.ty.elem());
                if est.decl.is_none() && container.decl.is_none() {
                    est.size = container.elem_size;
                }
                est
            }
            ("!_" | "@not_strictly_false", _) => Est::new(plus(1), Ty::Bool),
            ("size", _) => Est::new(plus(1), Ty::Int),
            ("startsWith" | "endsWith", 1) => Est::new(
                plus(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR)),
                Ty::Bool,
            ),
            ("contains", 1) if target.is_some() => {
                let own = by_factor(target_size, STRING_TRAVERSAL_COST_FACTOR)
                    .saturating_mul(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR));
                Est::new(plus(own), Ty::Bool)
            }
            // RE2: linear in the string, times the size of the regex.
            ("matches", 1) if target.is_some() => {
                Est::new(plus(regex_cost(target_size, arg_size(0))), Ty::Bool)
            }
            ("matches", 2) => Est::new(plus(regex_cost(arg_size(0), arg_size(1))), Ty::Bool),
            ("find", 1) if target.is_some() => {
                Est::new(plus(regex_cost(target_size, arg_size(0))), Ty::String).sized(target_size)
            }
            ("findAll", _) if target.is_some() && !args.is_empty() => Est::new(
                plus(regex_cost(target_size, arg_size(0))),
                Ty::List(Box::new(Ty::String)),
            )
            .sized(target_size),
            // Parsing an address is a traversal of the string.
            ("isCIDR" | "isIP", 1) => Est::new(
                plus(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR)),
                Ty::Bool,
            ),
            ("cidr", 1) => Est::new(
                plus(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR)),
                Ty::Cidr,
            ),
            ("ip", 1) if target.is_none() => Est::new(
                plus(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR)),
                Ty::Ip,
            ),
            ("ip", 0) => Est::new(plus(1), Ty::Ip),
            ("isCanonical", 1) => {
                // ip.isCanonical(s): parse, then compare with the original
                Est::new(
                    plus(by_factor(arg_size(0), 2.0 * STRING_TRAVERSAL_COST_FACTOR)),
                    Ty::Bool,
                )
            }
            ("prefixLength" | "family", _) => Est::new(plus(1), Ty::Int),
            ("masked", _) => Est::new(plus(1), Ty::Cidr),
            (
                "isUnspecified"
                | "isLoopback"
                | "isLinkLocalMulticast"
                | "isLinkLocalUnicast"
                | "isGlobalUnicast",
                _,
            ) => Est::new(plus(1), Ty::Bool),
            ("containsIP" | "containsCIDR", 1) => {
                // Comparing two address byte lists (4 to 16 bytes); containsCIDR also masks.
                let compare = by_factor(16 + 16, STRING_TRAVERSAL_COST_FACTOR);
                let mut own = compare;
                if call.func_name == "containsCIDR" {
                    own = sum([own, by_factor(16, STRING_TRAVERSAL_COST_FACTOR), 1]);
                }
                if args[0].ty == Ty::String {
                    own = own.saturating_add(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR));
                }
                Est::new(plus(own), Ty::Bool)
            }
            ("lowerAscii" | "upperAscii" | "trim" | "substring", _) if target.is_some() => {
                Est::new(
                    plus(by_factor(target_size, STRING_TRAVERSAL_COST_FACTOR)),
                    Ty::String,
                )
                .sized(target_size)
            }
            ("replace", _) if target.is_some() => Est::new(
                plus(by_factor(target_size, 2.0 * STRING_TRAVERSAL_COST_FACTOR)),
                Ty::String,
            )
            .sized(target_size),
            ("split", _) if target.is_some() => Est::new(
                plus(by_factor(target_size, 2.0 * STRING_TRAVERSAL_COST_FACTOR)),
                Ty::List(Box::new(Ty::String)),
            )
            .sized(target_size),
            ("url" | "quantity" | "isQuantity" | "semver" | "isSemver", 1) => {
                let ty = if call.func_name.starts_with("is") {
                    Ty::Bool
                } else {
                    Ty::Dyn
                };
                Est::new(
                    plus(by_factor(arg_size(0), STRING_TRAVERSAL_COST_FACTOR)),
                    ty,
                )
            }
            ("dyn", 1) => {
                let size = arg_size(0);
                Est::new(args_cost.saturating_add(1), Ty::Dyn).sized(size)
            }
            (
                "int" | "uint" | "double" | "bool" | "string" | "bytes" | "timestamp" | "duration"
                | "type",
                1,
            ) => {
                let ty = match call.func_name.as_str() {
                    "int" => Ty::Int,
                    "uint" => Ty::Uint,
                    "double" => Ty::Double,
                    "bool" => Ty::Bool,
                    "string" => Ty::String,
                    "bytes" => Ty::Bytes,
                    "timestamp" => Ty::Timestamp,
                    "duration" => Ty::Duration,
                    _ => Ty::Dyn,
                };
                Est::new(plus(1), ty)
            }
            ("_-_" | "_*_" | "_/_" | "_%_" | "-_", _) => {
                let ty = args.first().map_or(Ty::Dyn, |a| a.ty.clone());
                Est::new(plus(1), ty)
            }
            // Anything else: an O(1) call, cel-go's default.
            _ => Est::new(plus(1), Ty::Dyn),
        }
    }
}

fn is_net(ty: &Ty) -> bool {
    matches!(ty, Ty::Cidr | Ty::Ip)
}

/// `matches`: ⌈(size + 1) × 0.1⌉ × ⌈size(regex) × 0.25⌉ (the +1 keeps an empty string's
/// match from costing nothing).
fn regex_cost(string_size: u64, regex_size: u64) -> u64 {
    let string_cost = by_factor(string_size.saturating_add(1), STRING_TRAVERSAL_COST_FACTOR);
    let regex_cost = by_factor(regex_size, REGEX_STRING_LENGTH_COST_FACTOR);
    string_cost.saturating_mul(regex_cost)
}

fn literal_est<'d>(literal: &LiteralValue) -> Est<'d> {
    match literal {
        LiteralValue::String(s) => Est::new(0, Ty::String).sized(s.inner().chars().count() as u64),
        LiteralValue::Bytes(b) => Est::new(0, Ty::Bytes).sized(b.inner().len() as u64),
        LiteralValue::Boolean(_) => Est::new(0, Ty::Bool).sized(1),
        LiteralValue::Int(_) => Est::new(0, Ty::Int).sized(1),
        LiteralValue::UInt(_) => Est::new(0, Ty::Uint).sized(1),
        LiteralValue::Double(_) => Est::new(0, Ty::Double).sized(1),
        LiteralValue::Null => Est::new(0, Ty::Null).sized(1),
    }
}
