//! Static checks of kenko's Terraform (`terraform/`).
//!
//! Every `.tf` file is parsed with `hcl-rs`; the files of one directory form a [`Module`]. Each
//! check is a function that takes a module (or the whole tree) and returns the [`Violation`]s
//! it finds, so a test can print every problem at once and the negative tests can run the same
//! function on a small snippet that breaks one rule.
//!
//! Values are worked out the way Terraform would where that is possible without a provider:
//! `var.*` from the variables' defaults (or from the arguments an environment passes to a module
//! call), `local.*` from the locals, and a few pure functions (`ceil`, `floor`, `max`, `min`,
//! `toset`, `concat`, `keys`, `values`, `contains`, `merge`), with `each.*` for one element of a
//! `for_each`. Anything that depends on a provider (`data.*`, resource attributes) is unknown;
//! a rule that needs such a value reports that it cannot be checked statically rather than
//! passing.
//!
//! Provider convention in modules: `aws` is the primary region (Tokyo, ap-northeast-1) and
//! `aws.osaka` the backup region (Osaka, ap-northeast-3); [`env_wiring`] checks that every
//! environment passes providers in exactly those regions.
//!
//! The Kubernetes manifests (`manifests/`) have their own checks in [`manifests`].
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Value};

pub mod celcost;
pub mod manifests;

/// Tokyo: production.
pub const TOKYO: &str = "ap-northeast-1";
/// Osaka: backups and replicas.
pub const OSAKA: &str = "ap-northeast-3";
/// The only regions data may live in.
pub const JAPAN_REGIONS: [&str; 2] = [TOKYO, OSAKA];
/// The provider of the primary region inside a module.
pub const PRIMARY_PROVIDER: &str = "aws";
/// The provider of the backup region inside a module.
pub const OSAKA_PROVIDER: &str = "aws.osaka";
/// 20 years, the city's retention promise, as the audit counts it.
pub const MIN_RETENTION_DAYS: f64 = 7300.0;
/// AWS Backup keeps a recovery point at least this long in cold storage.
pub const MIN_COLD_STORAGE_DAYS: f64 = 90.0;

/// Resource types that give a VPC a path to the internet.
pub const INTERNET_PATH_TYPES: [&str; 4] = [
    "aws_internet_gateway",
    "aws_internet_gateway_attachment",
    "aws_egress_only_internet_gateway",
    "aws_nat_gateway",
];

/// Interface endpoints an EKS cluster (and the kenko agent) needs when there is no internet.
pub const REQUIRED_INTERFACE_ENDPOINTS: [&str; 9] = [
    "autoscaling",
    "backup",
    "ec2",
    "ecr.api",
    "ecr.dkr",
    "elasticloadbalancing",
    "kms",
    "logs",
    "sts",
];

/// EC2 actions a service control policy must deny outright (no internet path can be opened).
pub const DENIED_INTERNET_ACTIONS: [&str; 4] = [
    "ec2:CreateInternetGateway",
    "ec2:AttachInternetGateway",
    "ec2:CreateEgressOnlyInternetGateway",
    "ec2:CreateNatGateway",
];

/// Services a region-restricting SCP may exempt (global services served from us-east-1).
pub const GLOBAL_SERVICES: [&str; 17] = [
    "account",
    "aws-portal",
    "billing",
    "budgets",
    "ce",
    "cloudfront",
    "health",
    "iam",
    "organizations",
    "route53",
    "route53domains",
    "shield",
    "sts",
    "support",
    "trustedadvisor",
    "waf",
    "wafv2",
];

/// The modules every environment must wire.
pub const REQUIRED_MODULES: [&str; 6] = [
    "modules/network",
    "modules/cluster",
    "modules/storage",
    "modules/backup",
    "modules/guardrails",
    "modules/audit-logging",
];

// ---------------------------------------------------------------------------------------------
// Violations and errors

/// One broken rule: where, which resource, which rule, and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The file (relative to the repository root, e.g. `terraform/modules/storage/main.tf`).
    pub file: String,
    /// The resource address (`aws_s3_bucket.records`, `provider.aws.osaka`, ...), prefixed with
    /// the module call when the module was checked as an environment wires it.
    pub address: String,
    /// Stable rule name (`bucket-versioned`, `backup-retention-20y`, ...).
    pub rule: &'static str,
    /// What the rule expected.
    pub expected: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: [{}] expected {}",
            self.file, self.address, self.rule, self.expected
        )
    }
}

/// A file that could not be read or parsed.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

// ---------------------------------------------------------------------------------------------
// Modules

/// One parsed `.tf` file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path shown in violations.
    pub path: String,
    pub body: Body,
}

/// The `.tf` files of one directory, with the values its variables and locals take.
#[derive(Debug, Clone)]
pub struct Module {
    /// Directory relative to `terraform/` (`modules/storage`, `envs/production`).
    pub dir: String,
    pub files: Vec<SourceFile>,
    /// Prefix of every address (`module.backup (envs/production) `), empty when the module is
    /// checked on its own defaults.
    pub address_prefix: String,
    vars: hcl::Map<String, Value>,
    locals: hcl::Map<String, Value>,
}

/// A `resource` or `data` block.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub module: &'a Module,
    pub file: &'a str,
    pub data: bool,
    pub rtype: &'a str,
    pub name: &'a str,
    pub body: &'a Body,
}

impl<'a> Resource<'a> {
    /// `aws_s3_bucket.records` or `data.aws_region.current`, with the module prefix.
    pub fn address(&self) -> String {
        let data = if self.data { "data." } else { "" };
        format!(
            "{}{data}{}.{}",
            self.module.address_prefix, self.rtype, self.name
        )
    }

    /// An attribute's expression.
    pub fn attr(&self, key: &str) -> Option<&'a Expression> {
        attr(self.body, key)
    }

    /// An attribute's value, where it can be worked out statically.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.attr(key).and_then(|expr| self.module.eval(expr))
    }

    /// A string attribute's value, where it can be worked out statically.
    pub fn string(&self, key: &str) -> Option<String> {
        self.module.string(self.body, key)
    }

    /// The provider the resource is created with (`aws` unless `provider = aws.ALIAS`).
    pub fn provider(&self) -> String {
        self.attr("provider")
            .map(render)
            .unwrap_or_else(|| PRIMARY_PROVIDER.to_string())
    }

    fn violation(&self, rule: &'static str, expected: impl Into<String>) -> Violation {
        Violation {
            file: self.file.to_string(),
            address: self.address(),
            rule,
            expected: expected.into(),
        }
    }
}

impl Module {
    /// Parses the files of one directory: `(file name shown in violations, HCL text)`.
    pub fn parse(dir: &str, files: &[(String, String)]) -> Result<Module, LoadError> {
        let mut parsed = Vec::new();
        for (path, text) in files {
            let body = hcl::parse(text).map_err(|err| LoadError {
                path: PathBuf::from(path),
                reason: err.to_string(),
            })?;
            parsed.push(SourceFile {
                path: path.clone(),
                body,
            });
        }
        Ok(Module::build(
            dir.to_string(),
            parsed,
            String::new(),
            &hcl::Map::new(),
        ))
    }

    /// A module made of one snippet (for tests).
    pub fn snippet(dir: &str, text: &str) -> Module {
        Module::parse(dir, &[(format!("{dir}/main.tf"), text.to_string())])
            .unwrap_or_else(|err| panic!("snippet does not parse: {err}"))
    }

    fn build(
        dir: String,
        files: Vec<SourceFile>,
        address_prefix: String,
        overrides: &hcl::Map<String, Value>,
    ) -> Module {
        let mut vars = hcl::Map::new();
        let empty = context(&hcl::Map::new(), &hcl::Map::new());
        for file in &files {
            for block in blocks(&file.body, "variable") {
                let Some(name) = label(block, 0) else {
                    continue;
                };
                if let Some(value) = overrides.get(name) {
                    vars.insert(name.to_string(), value.clone());
                } else if let Some(default) = attr(block.body(), "default") {
                    if let Ok(value) = default.evaluate(&empty) {
                        vars.insert(name.to_string(), value);
                    }
                }
            }
        }
        let local_exprs: Vec<(String, Expression)> = files
            .iter()
            .flat_map(|file| blocks(&file.body, "locals"))
            .flat_map(|block| block.body().attributes())
            .map(|attribute| (attribute.key().to_string(), attribute.expr().clone()))
            .collect();
        let mut locals = hcl::Map::new();
        loop {
            let ctx = context(&vars, &locals);
            let found: Vec<(String, Value)> = local_exprs
                .iter()
                .filter(|(name, _)| !locals.contains_key(name))
                .filter_map(|(name, expr)| expr.evaluate(&ctx).ok().map(|v| (name.clone(), v)))
                .collect();
            if found.is_empty() {
                break;
            }
            locals.extend(found);
        }
        Module {
            dir,
            files,
            address_prefix,
            vars,
            locals,
        }
    }

    /// The same module with some variables set, as a module call sets them.
    pub fn with_overrides(
        &self,
        address_prefix: String,
        overrides: &hcl::Map<String, Value>,
    ) -> Module {
        Module::build(
            self.dir.clone(),
            self.files.clone(),
            address_prefix,
            overrides,
        )
    }

    /// The value of an expression, if it can be worked out without a provider.
    pub fn eval(&self, expr: &Expression) -> Option<Value> {
        expr.evaluate(&context(&self.vars, &self.locals)).ok()
    }

    /// The value of a string attribute of a block body, if known statically.
    pub fn string(&self, body: &Body, key: &str) -> Option<String> {
        attr(body, key)
            .and_then(|e| self.eval(e))
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// The value a variable takes (default or override).
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    /// The value of a local, if known statically.
    pub fn local(&self, name: &str) -> Option<&Value> {
        self.locals.get(name)
    }

    /// The `(each.key, each.value)` pairs of a `for_each` expression (a map, or a set of
    /// strings), if it can be worked out statically.
    pub fn for_each_elements(&self, expr: &Expression) -> Option<Vec<(Value, Value)>> {
        match self.eval(expr)? {
            Value::Object(map) => Some(map.into_iter().map(|(k, v)| (Value::from(k), v)).collect()),
            Value::Array(items) => Some(items.into_iter().map(|v| (v.clone(), v)).collect()),
            _ => None,
        }
    }

    /// The value of an expression for one element of a `for_each` (`each.key`, `each.value`).
    pub fn eval_each(&self, expr: &Expression, key: &Value, value: &Value) -> Option<Value> {
        let mut ctx = context(&self.vars, &self.locals);
        let mut each = hcl::Map::new();
        each.insert("key".to_string(), key.clone());
        each.insert("value".to_string(), value.clone());
        ctx.declare_var("each", Value::Object(each));
        expr.evaluate(&ctx).ok()
    }

    /// Every `resource` (not `data`) block.
    pub fn resources(&self) -> impl Iterator<Item = Resource<'_>> {
        self.all_blocks("resource", false)
    }

    /// Every `resource` block of one type.
    pub fn resources_of<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = Resource<'a>> {
        self.resources().filter(move |r| r.rtype == rtype)
    }

    /// Every `data` block of one type.
    pub fn data_of<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = Resource<'a>> {
        self.all_blocks("data", true)
            .filter(move |r| r.rtype == rtype)
    }

    /// The resource `rtype.name`, if the module has it.
    pub fn find(&self, rtype: &str, name: &str) -> Option<Resource<'_>> {
        self.resources()
            .find(|r| r.rtype == rtype && r.name == name)
    }

    fn all_blocks(&self, ident: &'static str, data: bool) -> impl Iterator<Item = Resource<'_>> {
        self.files.iter().flat_map(move |file| {
            blocks(&file.body, ident).filter_map(move |block| {
                Some(Resource {
                    module: self,
                    file: &file.path,
                    data,
                    rtype: label(block, 0)?,
                    name: label(block, 1)?,
                    body: block.body(),
                })
            })
        })
    }

    /// Top-level blocks with an identifier (`provider`, `module`, `terraform`), with their file.
    pub fn top_blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> {
        self.files
            .iter()
            .flat_map(move |file| blocks(&file.body, ident).map(move |b| (file.path.as_str(), b)))
    }

    /// The resources of `rtype` of this module that `expr` refers to.
    pub fn referenced<'a>(&'a self, expr: &Expression, rtype: &str) -> Vec<Resource<'a>> {
        references(expr, rtype)
            .iter()
            .filter_map(|name| self.find(rtype, name))
            .collect()
    }

    /// The companion resources of `rtype` whose `bucket` (or other `key`) refers to `target`.
    fn companions<'a>(
        &'a self,
        rtype: &'a str,
        key: &str,
        target: &Resource<'_>,
    ) -> Vec<Resource<'a>> {
        self.resources_of(rtype)
            .filter(|r| {
                r.attr(key).is_some_and(|expr| {
                    references(expr, target.rtype)
                        .iter()
                        .any(|n| n == target.name)
                })
            })
            .collect()
    }

    fn violation(
        &self,
        file: &str,
        address: &str,
        rule: &'static str,
        expected: impl Into<String>,
    ) -> Violation {
        Violation {
            file: file.to_string(),
            address: format!("{}{address}", self.address_prefix),
            rule,
            expected: expected.into(),
        }
    }

    fn first_file(&self) -> String {
        self.files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_else(|| self.dir.clone())
    }
}

/// Loads every directory under `root` that holds `.tf` files (skipping `.terraform/`).
/// `shown_root` is how `root` is named in violations (e.g. `terraform`).
pub fn load_tree(root: &Path, shown_root: &str) -> Result<Vec<Module>, LoadError> {
    let mut by_dir: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| LoadError {
            path: dir.clone(),
            reason: err.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|err| LoadError {
                path: dir.clone(),
                reason: err.to_string(),
            })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') {
                    pending.push(path);
                }
                continue;
            }
            if !name.ends_with(".tf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|err| LoadError {
                path: path.clone(),
                reason: err.to_string(),
            })?;
            let rel_dir = dir
                .strip_prefix(root)
                .unwrap_or(&dir)
                .to_string_lossy()
                .replace('\\', "/");
            let shown = if rel_dir.is_empty() {
                format!("{shown_root}/{name}")
            } else {
                format!("{shown_root}/{rel_dir}/{name}")
            };
            by_dir.entry(rel_dir).or_default().push((shown, text));
        }
    }
    by_dir
        .into_iter()
        .map(|(dir, mut files)| {
            files.sort();
            Module::parse(&dir, &files)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HCL helpers

pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn blocks<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks().filter(move |b| b.identifier() == ident)
}

/// The bodies reached by following nested block identifiers (`rule`, `destination`, ...).
fn nested<'a>(body: &'a Body, path: &[&'a str]) -> Vec<&'a Body> {
    let mut current = vec![body];
    for ident in path {
        current = current
            .into_iter()
            .flat_map(|b| blocks(b, ident).map(Block::body))
            .collect();
    }
    current
}

fn label(block: &Block, index: usize) -> Option<&str> {
    block.labels().get(index).map(|l| l.as_str())
}

/// An expression as HCL text (`aws.osaka`, `aws_kms_key.data.arn`).
pub fn render(expr: &Expression) -> String {
    expr.to_string()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Names of the `rtype` resources an expression refers to: `aws_kms_key.data.arn` and
/// `"${aws_kms_key.data.arn}/*"` both give `data`. A `data.rtype.name` reference is not a
/// resource reference; pass `data.rtype` as `rtype` to find data sources.
pub fn references(expr: &Expression, rtype: &str) -> Vec<String> {
    let text = render(expr);
    let pattern = format!("{rtype}.");
    let mut names = Vec::new();
    let mut start = 0;
    while let Some(pos) = text[start..].find(&pattern) {
        let at = start + pos;
        let before = text[..at].chars().last();
        let boundary = before.is_none_or(|c| !is_ident_char(c) && c != '.');
        let name: String = text[at + pattern.len()..]
            .chars()
            .take_while(|c| is_ident_char(*c))
            .collect();
        if boundary && !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        start = at + pattern.len();
    }
    names
}

fn as_str(value: &Value) -> Option<&str> {
    value.as_str()
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn is_true(value: Option<Value>) -> bool {
    value.and_then(|v| v.as_bool()) == Some(true)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn context<'a>(vars: &hcl::Map<String, Value>, locals: &hcl::Map<String, Value>) -> Context<'a> {
    let mut ctx = Context::new();
    ctx.declare_var("var", Value::Object(vars.clone()));
    ctx.declare_var("local", Value::Object(locals.clone()));
    let number = || FuncDef::builder().param(ParamType::Number);
    ctx.declare_func("ceil", number().build(|args| round(&args, f64::ceil)));
    ctx.declare_func("floor", number().build(|args| round(&args, f64::floor)));
    ctx.declare_func(
        "max",
        FuncDef::builder()
            .variadic_param(ParamType::Number)
            .build(|args| fold(&args, f64::max)),
    );
    ctx.declare_func(
        "min",
        FuncDef::builder()
            .variadic_param(ParamType::Number)
            .build(|args| fold(&args, f64::min)),
    );
    ctx.declare_func(
        "toset",
        FuncDef::builder()
            .param(ParamType::array_of(ParamType::Any))
            .build(|args| {
                let mut out: Vec<Value> = Vec::new();
                for value in args[0].as_array().into_iter().flatten() {
                    if !out.contains(value) {
                        out.push(value.clone());
                    }
                }
                Ok(Value::Array(out))
            }),
    );
    ctx.declare_func(
        "merge",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(|args| {
                let mut out = hcl::Map::new();
                for arg in args.iter() {
                    match arg {
                        Value::Object(map) => out.extend(map.clone()),
                        Value::Null => {}
                        _ => return Err("merge: not a map".to_string()),
                    }
                }
                Ok(Value::Object(out))
            }),
    );
    ctx.declare_func(
        "keys",
        FuncDef::builder()
            .param(ParamType::Any)
            .build(|args| match &args[0] {
                Value::Object(map) => Ok(Value::Array(
                    map.keys().map(|k| Value::from(k.clone())).collect(),
                )),
                _ => Err("keys: not a map".to_string()),
            }),
    );
    ctx.declare_func(
        "values",
        FuncDef::builder()
            .param(ParamType::Any)
            .build(|args| match &args[0] {
                Value::Object(map) => Ok(Value::Array(map.values().cloned().collect())),
                _ => Err("values: not a map".to_string()),
            }),
    );
    ctx.declare_func(
        "contains",
        FuncDef::builder()
            .param(ParamType::array_of(ParamType::Any))
            .param(ParamType::Any)
            .build(|args| {
                let list = args[0].as_array().cloned().unwrap_or_default();
                Ok(Value::Bool(list.contains(&args[1])))
            }),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::array_of(ParamType::Any))
            .build(|args| {
                Ok(Value::Array(
                    args.iter()
                        .flat_map(|a| a.as_array().cloned().unwrap_or_default())
                        .collect(),
                ))
            }),
    );
    ctx
}

fn number_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        // Whole numbers stay integers, as Terraform prints them.
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn round(args: &FuncArgs, f: fn(f64) -> f64) -> Result<Value, String> {
    let x = args[0].as_f64().ok_or("not a number")?;
    Ok(number_value(f(x)))
}

fn fold(args: &FuncArgs, f: fn(f64, f64) -> f64) -> Result<Value, String> {
    let mut numbers = args.iter().map(|v| v.as_f64().ok_or("not a number"));
    let first = numbers.next().ok_or("no arguments")??;
    let result = numbers.try_fold(first, |acc, x| x.map(|x| f(acc, x)))?;
    Ok(number_value(result))
}

// ---------------------------------------------------------------------------------------------
// Regions

/// The AWS region names (`us-east-1`) a text mentions, availability zones cut to their region.
pub fn regions_in(text: &str) -> Vec<String> {
    const PREFIXES: [&str; 10] = ["af", "ap", "ca", "cn", "eu", "il", "me", "mx", "sa", "us"];
    const DIRECTIONS: [&str; 9] = [
        "central",
        "east",
        "north",
        "northeast",
        "northwest",
        "south",
        "southeast",
        "southwest",
        "west",
    ];
    let mut found = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let parts: Vec<&str> = word.split('-').collect();
        for i in 0..parts.len() {
            if !PREFIXES.contains(&parts[i]) {
                continue;
            }
            let mut j = i + 1;
            if parts.get(j) == Some(&"gov") || parts.get(j) == Some(&"iso") {
                j += 1;
            }
            let (Some(direction), Some(number)) = (parts.get(j), parts.get(j + 1)) else {
                continue;
            };
            let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
            if DIRECTIONS.contains(direction) && !digits.is_empty() {
                let mut name = parts[i..=j].join("-");
                name.push('-');
                name.push_str(&digits);
                if !found.contains(&name) {
                    found.push(name);
                }
            }
        }
    }
    found
}

fn is_japan(region: &str) -> bool {
    JAPAN_REGIONS.contains(&region)
}

/// Every attribute of a body, nested blocks included, with a path for messages.
fn all_attributes<'a>(body: &'a Body, path: &str, out: &mut Vec<(String, &'a Expression)>) {
    for attribute in body.attributes() {
        out.push((format!("{path}{}", attribute.key()), attribute.expr()));
    }
    for block in body.blocks() {
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        let mut inner = format!("{path}{}", block.identifier());
        for l in labels {
            inner.push('.');
            inner.push_str(l);
        }
        inner.push('.');
        all_attributes(block.body(), &inner, out);
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// No internet gateway, egress-only gateway or NAT gateway; no route to 0.0.0.0/0 or ::/0; no
/// public IP address on launch.
pub fn no_internet_path(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for r in m.resources() {
        if INTERNET_PATH_TYPES.contains(&r.rtype) {
            out.push(r.violation(
                "no-internet-gateway",
                format!("no {}: the VPC must have no path to the internet", r.rtype),
            ));
        }
        let mut routes: Vec<(&str, &Expression)> = Vec::new();
        if r.rtype == "aws_route" {
            for key in ["destination_cidr_block", "destination_ipv6_cidr_block"] {
                if let Some(expr) = r.attr(key) {
                    routes.push((key, expr));
                }
            }
        }
        if r.rtype == "aws_route_table" || r.rtype == "aws_default_route_table" {
            for route in nested(r.body, &["route"]) {
                for key in ["cidr_block", "ipv6_cidr_block"] {
                    if let Some(expr) = attr(route, key) {
                        routes.push((key, expr));
                    }
                }
            }
            if let Some(expr) = r.attr("route") {
                routes.push(("route", expr));
            }
        }
        for (key, expr) in routes {
            let text = match m.eval(expr) {
                Some(value) => value.to_string(),
                None if r.rtype == "aws_route" => {
                    out.push(r.violation(
                        "no-default-route",
                        format!("{key} that can be checked statically (not 0.0.0.0/0 or ::/0)"),
                    ));
                    continue;
                }
                None => render(expr),
            };
            if text.contains("0.0.0.0/0") || text.contains("::/0") {
                out.push(r.violation(
                    "no-default-route",
                    format!("no route to 0.0.0.0/0 or ::/0 ({key})"),
                ));
            }
        }
        let mut attributes = Vec::new();
        all_attributes(r.body, "", &mut attributes);
        for (path, expr) in attributes {
            let key = path.rsplit('.').next().unwrap_or(&path);
            if (key == "map_public_ip_on_launch" || key == "associate_public_ip_address")
                && is_true(m.eval(expr))
            {
                out.push(r.violation("no-public-ip", format!("{path} = false")));
            }
        }
    }
    out
}

/// Every `provider "aws"` and the S3 backend name a Japanese region, and no region outside Japan
/// is named anywhere.
pub fn regions_in_japan(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, block) in m.top_blocks("provider") {
        if label(block, 0) != Some("aws") {
            continue;
        }
        let alias = m.string(block.body(), "alias");
        let address = match &alias {
            Some(alias) => format!("provider.aws.{alias}"),
            None => "provider.aws".to_string(),
        };
        let region = attr(block.body(), "region").and_then(|e| m.eval(e));
        match region.as_ref().and_then(as_str) {
            Some(region) if is_japan(region) => {}
            Some(region) => out.push(m.violation(
                file,
                &address,
                "provider-region-japan",
                format!("region ap-northeast-1 or ap-northeast-3, not {region}"),
            )),
            None => out.push(m.violation(
                file,
                &address,
                "provider-region-japan",
                "an explicit region that is ap-northeast-1 or ap-northeast-3 (not taken from \
                    the environment)",
            )),
        }
    }
    for (file, block) in m.top_blocks("terraform") {
        for backend in blocks(block.body(), "backend") {
            if label(backend, 0) != Some("s3") {
                continue;
            }
            let region = attr(backend.body(), "region").and_then(|e| m.eval(e));
            if !region.as_ref().and_then(as_str).is_some_and(is_japan) {
                out.push(m.violation(
                    file,
                    "terraform.backend.s3",
                    "provider-region-japan",
                    "the state bucket's region set to ap-northeast-1 or ap-northeast-3",
                ));
            }
        }
    }
    for file in &m.files {
        for block in file.body.blocks() {
            let mut address = block.identifier().to_string();
            for l in block.labels() {
                address.push('.');
                address.push_str(l.as_str());
            }
            let mut attributes = Vec::new();
            all_attributes(block.body(), "", &mut attributes);
            for (path, expr) in attributes {
                for region in regions_in(&render(expr)) {
                    if !is_japan(&region) {
                        out.push(m.violation(
                            &file.path,
                            &address,
                            "region-literal-japan",
                            format!("no region outside Japan, but {path} names {region}"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Every bucket: versioning Enabled, default encryption aws:kms with a customer managed key of
/// this module in the bucket's own region (rotated), all four public access blocks. Every KMS key
/// is rotated.
pub fn buckets_protected(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for key in m.resources_of("aws_kms_key") {
        if !is_true(key.value("enable_key_rotation")) {
            out.push(key.violation("kms-key-rotation", "enable_key_rotation = true"));
        }
    }
    for bucket in m.resources_of("aws_s3_bucket") {
        // Versioning.
        let versioning = m.companions("aws_s3_bucket_versioning", "bucket", &bucket);
        let enabled = versioning.iter().any(|v| {
            nested(v.body, &["versioning_configuration"])
                .iter()
                .any(|c| {
                    attr(c, "status")
                        .and_then(|e| m.eval(e))
                        .is_some_and(|s| s.as_str() == Some("Enabled"))
                })
        });
        if !enabled {
            out.push(bucket.violation(
                "bucket-versioned",
                "an aws_s3_bucket_versioning with versioning_configuration.status = \"Enabled\"",
            ));
        }

        // Encryption with a key of this module, in the bucket's region.
        let sse = m.companions(
            "aws_s3_bucket_server_side_encryption_configuration",
            "bucket",
            &bucket,
        );
        let defaults: Vec<&Body> = sse
            .iter()
            .flat_map(|s| nested(s.body, &["rule", "apply_server_side_encryption_by_default"]))
            .collect();
        if defaults.is_empty() {
            out.push(bucket.violation(
                "bucket-kms-encrypted",
                "an aws_s3_bucket_server_side_encryption_configuration with sse_algorithm aws:kms",
            ));
        }
        for default in defaults {
            let algorithm = attr(default, "sse_algorithm").and_then(|e| m.eval(e));
            if !matches!(
                algorithm.as_ref().and_then(as_str),
                Some("aws:kms" | "aws:kms:dsse")
            ) {
                out.push(bucket.violation(
                    "bucket-kms-encrypted",
                    "sse_algorithm = \"aws:kms\" (a customer managed key, not SSE-S3)",
                ));
            }
            let keys = attr(default, "kms_master_key_id")
                .map(|e| m.referenced(e, "aws_kms_key"))
                .unwrap_or_default();
            if keys.is_empty() {
                out.push(bucket.violation(
                    "bucket-kms-encrypted",
                    "kms_master_key_id referring to an aws_kms_key of this module",
                ));
            }
            for key in keys {
                if key.provider() != bucket.provider() {
                    out.push(bucket.violation(
                        "bucket-kms-key-same-region",
                        format!(
                            "a key created with the bucket's provider {}, not {} ({})",
                            bucket.provider(),
                            key.provider(),
                            key.address()
                        ),
                    ));
                }
            }
        }

        // Public access.
        let blocks_found = m.companions("aws_s3_bucket_public_access_block", "bucket", &bucket);
        let all_blocked = blocks_found.iter().any(|b| {
            [
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ]
            .iter()
            .all(|key| is_true(b.value(key)))
        });
        if !all_blocked {
            out.push(bucket.violation(
                "bucket-public-access-blocked",
                "an aws_s3_bucket_public_access_block with block_public_acls, \
                    block_public_policy, ignore_public_acls and restrict_public_buckets all true",
            ));
        }
        for acl in m.companions("aws_s3_bucket_acl", "bucket", &bucket) {
            let value = acl.value("acl").map(|v| v.to_string()).unwrap_or_default();
            if value.contains("public") || value.contains("authenticated") {
                out.push(acl.violation("bucket-public-access-blocked", "no public canned ACL"));
            }
        }
        if let Some(value) = bucket.value("acl") {
            if value.to_string().contains("public") {
                out.push(bucket.violation("bucket-public-access-blocked", "no public canned ACL"));
            }
        }
    }
    out
}

fn object_lock_enabled(bucket: &Resource<'_>) -> bool {
    is_true(bucket.value("object_lock_enabled"))
}

fn lock_mode(m: &Module, bucket: &Resource<'_>) -> Option<String> {
    m.companions("aws_s3_bucket_object_lock_configuration", "bucket", bucket)
        .iter()
        .flat_map(|c| nested(c.body, &["rule", "default_retention"]))
        .find_map(|retention| m.string(retention, "mode"))
}

/// Certificate buckets (resource name containing `certificate`) are WORM: Object Lock enabled
/// with a COMPLIANCE default retention, and those of the primary region are replicated. Every
/// bucket with Object Lock has a COMPLIANCE default retention.
pub fn object_lock(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for bucket in m.resources_of("aws_s3_bucket") {
        let certificate = bucket.name.contains("certificate");
        let enabled = object_lock_enabled(&bucket);
        if certificate && !enabled {
            out.push(bucket.violation(
                "bucket-object-lock",
                "object_lock_enabled = true on the certificate bucket (WORM)",
            ));
        }
        if enabled || certificate {
            match lock_mode(m, &bucket) {
                Some(mode) if mode == "COMPLIANCE" => {}
                Some(mode) => out.push(bucket.violation(
                    "bucket-object-lock",
                    format!("default retention mode COMPLIANCE, not {mode}"),
                )),
                None => out.push(bucket.violation(
                    "bucket-object-lock",
                    "an aws_s3_bucket_object_lock_configuration with a default_retention in \
                        COMPLIANCE mode",
                )),
            }
        }
        if certificate
            && bucket.provider() == PRIMARY_PROVIDER
            && m.companions("aws_s3_bucket_replication_configuration", "bucket", &bucket)
                .is_empty()
        {
            out.push(bucket.violation(
                "certificate-bucket-replicated",
                "an aws_s3_bucket_replication_configuration copying the certificates to Osaka",
            ));
        }
    }
    out
}

/// Every replication rule copies from a primary-region bucket to a bucket of this module made
/// with the Osaka provider, encrypted with an Osaka key, KMS-encrypted objects included.
pub fn replication_to_osaka(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for rc in m.resources_of("aws_s3_bucket_replication_configuration") {
        let sources = rc
            .attr("bucket")
            .map(|e| m.referenced(e, "aws_s3_bucket"))
            .unwrap_or_default();
        let source_provider = match sources.first() {
            Some(source) => source.provider(),
            None => {
                out.push(rc.violation(
                    "replication-to-osaka",
                    "bucket referring to an aws_s3_bucket of this module",
                ));
                continue;
            }
        };
        if source_provider != PRIMARY_PROVIDER || rc.provider() != PRIMARY_PROVIDER {
            out.push(rc.violation(
                "replication-to-osaka",
                format!(
                    "replication from the primary region (provider aws), not {source_provider}"
                ),
            ));
        }
        let rules: Vec<&Body> = nested(rc.body, &["rule"]);
        if rules.is_empty() {
            out.push(rc.violation("replication-to-osaka", "at least one rule"));
        }
        for rule in rules {
            let id = m
                .string(rule, "id")
                .unwrap_or_else(|| "(no id)".to_string());
            if m.string(rule, "status").as_deref() != Some("Enabled") {
                out.push(rc.violation(
                    "replication-to-osaka",
                    format!("rule {id}: status = \"Enabled\""),
                ));
            }
            let sse_objects = nested(
                rule,
                &["source_selection_criteria", "sse_kms_encrypted_objects"],
            )
            .iter()
            .any(|b| m.string(b, "status").as_deref() == Some("Enabled"));
            if !sse_objects {
                out.push(rc.violation(
                    "replication-to-osaka",
                    format!(
                        "rule {id}: \
                        source_selection_criteria.sse_kms_encrypted_objects.status = \
                        \"Enabled\" (KMS-encrypted objects are skipped otherwise)"
                    ),
                ));
            }
            let destinations = nested(rule, &["destination"]);
            if destinations.is_empty() {
                out.push(rc.violation("replication-to-osaka", format!("rule {id}: a destination")));
            }
            for destination in destinations {
                let targets = attr(destination, "bucket")
                    .map(|e| m.referenced(e, "aws_s3_bucket"))
                    .unwrap_or_default();
                match targets.first() {
                    Some(target)
                        if target.provider() == OSAKA_PROVIDER
                            && target.provider() != source_provider => {}
                    Some(target) => out.push(rc.violation(
                        "replication-to-osaka",
                        format!(
                            "rule {id}: destination bucket created with provider aws.osaka \
                                (Osaka), not {} ({})",
                            target.provider(),
                            target.address()
                        ),
                    )),
                    None => out.push(rc.violation(
                        "replication-to-osaka",
                        format!(
                            "rule {id}: destination bucket referring to an aws_s3_bucket of \
                            this module in Osaka"
                        ),
                    )),
                }
                let keys: Vec<Resource<'_>> = nested(destination, &["encryption_configuration"])
                    .iter()
                    .filter_map(|b| attr(b, "replica_kms_key_id"))
                    .flat_map(|e| m.referenced(e, "aws_kms_key"))
                    .collect();
                if !keys.iter().any(|k| k.provider() == OSAKA_PROVIDER) {
                    out.push(rc.violation(
                        "replication-to-osaka",
                        format!(
                            "rule {id}: encryption_configuration.replica_kms_key_id \
                            referring to an aws_kms_key created with provider aws.osaka"
                        ),
                    ));
                }
            }
        }
    }
    out
}

fn check_lifecycle(
    m: &Module,
    r: &Resource<'_>,
    lifecycle: Option<&Body>,
    what: &str,
    out: &mut Vec<Violation>,
) {
    let Some(lifecycle) = lifecycle else {
        out.push(r.violation(
            "backup-retention-20y",
            format!(
                "{what}: a lifecycle with delete_after >= {MIN_RETENTION_DAYS} days and \
                cold_storage_after"
            ),
        ));
        return;
    };
    let number = |key: &str| {
        attr(lifecycle, key)
            .and_then(|e| m.eval(e))
            .and_then(|v| v.as_f64())
    };
    let delete_after = number("delete_after");
    let cold = number("cold_storage_after");
    match delete_after {
        Some(days) if days >= MIN_RETENTION_DAYS => {}
        Some(days) => out.push(r.violation(
            "backup-retention-20y",
            format!("{what}: delete_after >= {MIN_RETENTION_DAYS} days (20 years), not {days}"),
        )),
        None => out.push(r.violation(
            "backup-retention-20y",
            format!(
                "{what}: delete_after set to at least {MIN_RETENTION_DAYS} days and known \
                statically"
            ),
        )),
    }
    match cold {
        Some(cold) => {
            if let Some(days) = delete_after {
                if days < cold + MIN_COLD_STORAGE_DAYS {
                    out.push(r.violation(
                        "backup-cold-storage",
                        format!(
                            "{what}: delete_after ({days}) >= cold_storage_after ({cold}) + 90"
                        ),
                    ));
                }
            }
        }
        None => out.push(r.violation(
            "backup-cold-storage",
            format!("{what}: cold_storage_after set (a transition to cold storage)"),
        )),
    }
}

/// Vaults only with the Tokyo or Osaka provider, encrypted with a key of their region; every
/// plan rule backs up into a vault of the plan's region, copies to an Osaka vault, and keeps both
/// at least 20 years with a cold-storage transition.
pub fn backups(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for vault in m.resources_of("aws_backup_vault") {
        let provider = vault.provider();
        if provider != PRIMARY_PROVIDER && provider != OSAKA_PROVIDER {
            out.push(vault.violation(
                "backup-vault-japan",
                format!("provider aws (Tokyo) or aws.osaka (Osaka), not {provider}"),
            ));
        }
        let keys = vault
            .attr("kms_key_arn")
            .map(|e| m.referenced(e, "aws_kms_key"))
            .unwrap_or_default();
        if !keys.iter().any(|k| k.provider() == provider) {
            out.push(vault.violation(
                "backup-vault-encrypted",
                "kms_key_arn referring to an aws_kms_key of this module in the vault's region",
            ));
        }
    }
    for plan in m.resources_of("aws_backup_plan") {
        let plan_provider = plan.provider();
        let rules = nested(plan.body, &["rule"]);
        if rules.is_empty() {
            out.push(plan.violation("backup-copy-to-osaka", "at least one rule"));
        }
        for rule in rules {
            let name = m
                .string(rule, "rule_name")
                .unwrap_or_else(|| "(unnamed)".to_string());
            let what = format!("rule {name}");
            let targets = attr(rule, "target_vault_name")
                .map(|e| m.referenced(e, "aws_backup_vault"))
                .unwrap_or_default();
            if !targets.iter().any(|v| v.provider() == plan_provider) {
                out.push(plan.violation(
                    "backup-vault-local",
                    format!(
                        "{what}: target_vault_name referring to an aws_backup_vault of this \
                        module in the plan's region"
                    ),
                ));
            }
            check_lifecycle(
                m,
                &plan,
                nested(rule, &["lifecycle"]).first().copied(),
                &what,
                &mut out,
            );
            let copies = nested(rule, &["copy_action"]);
            let mut to_osaka = false;
            for copy in &copies {
                let vaults = attr(copy, "destination_vault_arn")
                    .map(|e| m.referenced(e, "aws_backup_vault"))
                    .unwrap_or_default();
                if vaults
                    .iter()
                    .any(|v| v.provider() == OSAKA_PROVIDER && v.provider() != plan_provider)
                {
                    to_osaka = true;
                }
                check_lifecycle(
                    m,
                    &plan,
                    nested(copy, &["lifecycle"]).first().copied(),
                    &format!("{what} copy_action"),
                    &mut out,
                );
            }
            if !to_osaka {
                out.push(plan.violation(
                    "backup-copy-to-osaka",
                    format!(
                        "{what}: a copy_action whose destination_vault_arn refers to an \
                        aws_backup_vault created with provider aws.osaka (a different region \
                        from the plan)"
                    ),
                ));
            }
        }
    }
    out
}

/// EKS: the Kubernetes API only on the private endpoint.
pub fn eks_private(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for cluster in m.resources_of("aws_eks_cluster") {
        let configs = nested(cluster.body, &["vpc_config"]);
        let value = |key: &str| {
            configs
                .iter()
                .find_map(|c| attr(c, key))
                .and_then(|e| m.eval(e))
                .and_then(|v| v.as_bool())
        };
        // AWS defaults: public on, private off.
        if value("endpoint_public_access").unwrap_or(true) {
            out.push(cluster.violation(
                "eks-private-endpoint",
                "vpc_config.endpoint_public_access = false",
            ));
        }
        if !value("endpoint_private_access").unwrap_or(false) {
            out.push(cluster.violation(
                "eks-private-endpoint",
                "vpc_config.endpoint_private_access = true",
            ));
        }
    }
    out
}

/// A statement of an `aws_iam_policy_document`.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: String,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    /// The ARNs, where they can be worked out statically (empty otherwise).
    pub resources: Vec<String>,
    /// (test, variable, values)
    pub conditions: Vec<(String, String, Vec<String>)>,
}

fn statement(body: &Body, ctx: &Context<'_>) -> Statement {
    let text = |body: &Body, key: &str| {
        attr(body, key)
            .and_then(|e| e.evaluate(ctx).ok())
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let list = |body: &Body, key: &str| {
        attr(body, key)
            .and_then(|e| e.evaluate(ctx).ok())
            .and_then(|v| strings(&v))
            .unwrap_or_default()
    };
    // The written-out `condition` blocks.
    let conditions = nested(body, &["condition"])
        .into_iter()
        .map(|c| {
            (
                text(c, "test").unwrap_or_default(),
                text(c, "variable").unwrap_or_default(),
                list(c, "values"),
            )
        })
        .collect();
    Statement {
        sid: text(body, "sid"),
        effect: text(body, "effect").unwrap_or_else(|| "Allow".to_string()),
        actions: list(body, "actions"),
        not_actions: list(body, "not_actions"),
        resources: list(body, "resources"),
        conditions,
    }
}

/// The statements of `data "aws_iam_policy_document" NAME`, values worked out statically.
/// A `dynamic "statement"` block gives one statement per element of its `for_each` (none
/// when `for_each` cannot be worked out).
pub fn policy_statements(m: &Module, name: &str) -> Option<Vec<Statement>> {
    let doc = m
        .data_of("aws_iam_policy_document")
        .find(|d| d.name == name)?;
    let ctx = context(&m.vars, &m.locals);
    let mut out: Vec<Statement> = nested(doc.body, &["statement"])
        .into_iter()
        .map(|s| statement(s, &ctx))
        .collect();
    for dynamic in blocks(doc.body, "dynamic").filter(|b| label(b, 0) == Some("statement")) {
        let iterator = attr(dynamic.body(), "iterator")
            .map(render)
            .unwrap_or_else(|| "statement".to_string());
        let elements: Vec<(Value, Value)> = match attr(dynamic.body(), "for_each")
            .and_then(|e| e.evaluate(&ctx).ok())
        {
            Some(Value::Object(map)) => map.into_iter().map(|(k, v)| (Value::from(k), v)).collect(),
            Some(Value::Array(items)) => items.into_iter().map(|v| (v.clone(), v)).collect(),
            _ => Vec::new(),
        };
        for content in nested(dynamic.body(), &["content"]) {
            for (key, value) in &elements {
                let mut inner = context(&m.vars, &m.locals);
                let mut each = hcl::Map::new();
                each.insert("key".to_string(), key.clone());
                each.insert("value".to_string(), value.clone());
                inner.declare_var(iterator.clone(), Value::Object(each));
                out.push(statement(content, &inner));
            }
        }
    }
    Some(out)
}

fn denies_outside_japan(s: &Statement) -> bool {
    let covers_everything = s.actions.iter().any(|a| a == "*")
        || (!s.not_actions.is_empty()
            && s.not_actions.iter().all(|a| {
                let service = a.split(':').next().unwrap_or_default();
                GLOBAL_SERVICES.contains(&service)
            }));
    s.effect == "Deny"
        && covers_everything
        && s.conditions.iter().any(|(test, variable, values)| {
            matches!(
                test.as_str(),
                "StringNotEquals" | "StringNotEqualsIgnoreCase" | "StringNotLike"
            ) && variable.eq_ignore_ascii_case("aws:RequestedRegion")
                && !values.is_empty()
                && values.iter().all(|v| is_japan(v))
        })
}

fn action_denied(statements: &[Statement], action: &str) -> bool {
    let service = action.split(':').next().unwrap_or_default();
    statements.iter().any(|s| {
        s.effect == "Deny"
            && s.conditions.is_empty()
            && s.actions
                .iter()
                .any(|a| a == "*" || a == action || *a == format!("{service}:*"))
    })
}

/// Service control policies deny every regional API outside Japan (aws:RequestedRegion) and
/// creating or attaching internet, egress-only and NAT gateways; each is attached.
pub fn scp_guardrails(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    let scps: Vec<Resource<'_>> = m
        .resources_of("aws_organizations_policy")
        .filter(|p| {
            p.value("type")
                .is_none_or(|t| t.as_str() == Some("SERVICE_CONTROL_POLICY"))
        })
        .collect();
    let Some(first) = scps.first() else {
        return out;
    };
    let mut statements = Vec::new();
    for scp in &scps {
        let docs = scp
            .attr("content")
            .map(|e| references(e, "data.aws_iam_policy_document"))
            .unwrap_or_default();
        let found: Vec<Statement> = docs
            .iter()
            .filter_map(|name| policy_statements(m, name))
            .flatten()
            .collect();
        if found.is_empty() {
            out.push(scp.violation(
                "scp-japan-only",
                "content from a data.aws_iam_policy_document of this module (so it can be checked)",
            ));
        }
        statements.extend(found);
        let attached = m
            .resources_of("aws_organizations_policy_attachment")
            .any(|a| {
                a.attr("policy_id").is_some_and(|e| {
                    references(e, "aws_organizations_policy")
                        .iter()
                        .any(|n| n == scp.name)
                })
            });
        if !attached {
            out.push(scp.violation(
                "scp-attached",
                "an aws_organizations_policy_attachment for the policy",
            ));
        }
    }
    if !statements.iter().any(denies_outside_japan) {
        out.push(first.violation(
            "scp-japan-only",
            "a Deny of every regional action (actions [\"*\"], or not_actions of global \
                services only) with condition StringNotEquals aws:RequestedRegion \
                [ap-northeast-1, ap-northeast-3]",
        ));
    }
    for action in DENIED_INTERNET_ACTIONS {
        if !action_denied(&statements, action) {
            out.push(first.violation(
                "scp-no-internet-gateway",
                format!("an unconditional Deny of {action}"),
            ));
        }
    }
    out
}

/// CloudTrail: S3 object data events, all regions, validated log files encrypted with KMS,
/// delivered to a bucket of this module with Object Lock.
pub fn cloudtrail(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    for trail in m.resources_of("aws_cloudtrail") {
        let equals = |selector: &Body, field: &str, wanted: &str| {
            nested(selector, &["field_selector"]).iter().any(|f| {
                attr(f, "field")
                    .and_then(|e| m.eval(e))
                    .is_some_and(|v| v.as_str() == Some(field))
                    && attr(f, "equals")
                        .and_then(|e| m.eval(e))
                        .and_then(|v| strings(&v))
                        .is_some_and(|values| values.iter().any(|v| v == wanted))
            })
        };
        let advanced = nested(trail.body, &["advanced_event_selector"])
            .into_iter()
            .any(|s| {
                equals(s, "eventCategory", "Data") && equals(s, "resources.type", "AWS::S3::Object")
            });
        let basic = nested(trail.body, &["event_selector", "data_resource"])
            .into_iter()
            .any(|d| {
                attr(d, "type")
                    .and_then(|e| m.eval(e))
                    .is_some_and(|v| v.as_str() == Some("AWS::S3::Object"))
            });
        if !advanced && !basic {
            out.push(trail.violation(
                "cloudtrail-s3-data-events",
                "an advanced_event_selector with eventCategory = Data and resources.type = \
                    AWS::S3::Object (or an event_selector data_resource of type AWS::S3::Object)",
            ));
        }
        let buckets = trail
            .attr("s3_bucket_name")
            .map(|e| m.referenced(e, "aws_s3_bucket"))
            .unwrap_or_default();
        match buckets.first() {
            Some(bucket) if object_lock_enabled(bucket) && lock_mode(m, bucket).is_some() => {}
            Some(bucket) => out.push(trail.violation(
                "cloudtrail-locked-bucket",
                format!(
                    "the trail's bucket {} with object_lock_enabled = true and a default retention",
                    bucket.address()
                ),
            )),
            None => out.push(trail.violation(
                "cloudtrail-locked-bucket",
                "s3_bucket_name referring to an aws_s3_bucket of this module (with Object Lock)",
            )),
        }
        if !is_true(trail.value("enable_log_file_validation")) {
            out.push(trail.violation("cloudtrail-integrity", "enable_log_file_validation = true"));
        }
        if trail.attr("kms_key_id").is_none() {
            out.push(trail.violation(
                "cloudtrail-integrity",
                "kms_key_id (log files encrypted with a customer managed key)",
            ));
        }
        if !is_true(trail.value("is_multi_region_trail")) {
            out.push(trail.violation(
                "cloudtrail-all-regions",
                "is_multi_region_trail = true (a call in any region is recorded)",
            ));
        }
    }
    out
}

/// The AWS service names (`ecr.api`) of a module's VPC endpoints of one type.
pub fn endpoint_services(m: &Module, endpoint_type: &str) -> BTreeSet<String> {
    let mut services = BTreeSet::new();
    for endpoint in m.resources_of("aws_vpc_endpoint") {
        let kind = endpoint
            .string("vpc_endpoint_type")
            .unwrap_or_else(|| "Gateway".to_string());
        if kind != endpoint_type {
            continue;
        }
        let Some(expr) = endpoint.attr("service_name") else {
            continue;
        };
        let template = match expr {
            Expression::String(s) => s.clone(),
            Expression::TemplateExpr(t) => t.to_string(),
            _ => continue,
        };
        let each: Vec<String> = match endpoint.value("for_each") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let names: Vec<String> = if template.contains("${each.") {
            each.iter()
                .map(|item| {
                    template
                        .replace("${each.value}", item)
                        .replace("${each.key}", item)
                })
                .collect()
        } else {
            vec![template]
        };
        for name in names {
            if let Some(service) = service_of(&name) {
                services.insert(service);
            }
        }
    }
    services
}

/// `com.amazonaws.${local.region}.ecr.api` → `ecr.api`.
fn service_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("com.amazonaws.")?;
    let after_region = if let Some(interpolated) = rest.strip_prefix("${") {
        let end = interpolated.find('}')?;
        interpolated[end + 1..].strip_prefix('.')?
    } else {
        rest.split_once('.')?.1
    };
    Some(after_region.to_string())
}

/// A module with a VPC has an S3 gateway endpoint and the interface endpoints the stack needs.
pub fn vpc_endpoints(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(vpc) = m.resources_of("aws_vpc").next() else {
        return out;
    };
    if !endpoint_services(m, "Gateway").contains("s3") {
        out.push(vpc.violation(
            "vpc-endpoints",
            "an S3 gateway VPC endpoint (com.amazonaws.REGION.s3, vpc_endpoint_type Gateway)",
        ));
    }
    let interface = endpoint_services(m, "Interface");
    for service in REQUIRED_INTERFACE_ENDPOINTS {
        if !interface.contains(service) {
            out.push(vpc.violation(
                "vpc-endpoints",
                format!("an interface VPC endpoint for com.amazonaws.REGION.{service}"),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Each HealthStack's own KMS key (the data key's envelope; deleting it crypto-erases the stack)

/// The `(namespace, name)` of each stack in a module's `var.stacks`.
pub fn stacks_of(m: &Module) -> Vec<(String, String)> {
    m.var("stacks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let s = s.as_object()?;
            Some((
                s.get("namespace")?.as_str()?.to_string(),
                s.get("name")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A `map(string)` variable's value.
fn string_map(m: &Module, name: &str) -> BTreeMap<String, String> {
    m.var(name)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn for_each_keys(m: &Module, r: &Resource<'_>) -> Option<BTreeSet<String>> {
    let elements = m.for_each_elements(r.attr("for_each")?)?;
    elements
        .iter()
        .map(|(k, _)| k.as_str().map(str::to_string))
        .collect()
}

/// The storage module, with `var.stacks` set: each stack (`for_each` keyed `namespace/name`)
/// has its own `aws_kms_key` in the primary region, multi-Region, rotated, described and tagged
/// `kenko:stack` with the stack's name; an `aws_kms_replica_key` of it in Osaka; an alias in
/// both regions, no two stacks sharing one; and the output `stack_kms_key_arns` gives both ARNs.
pub fn stack_kms_keys(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    let file = m.first_file();
    let want: BTreeSet<String> = stacks_of(m)
        .iter()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    if want.is_empty() {
        out.push(m.violation(
            &file,
            "var.stacks",
            "stack-kms-key",
            "at least one stack in var.stacks (the per-stack keys cannot be checked without)",
        ));
        return out;
    }
    let per_stack = |r: &Resource<'_>| for_each_keys(m, r).is_some_and(|keys| keys == want);
    let primaries: Vec<Resource<'_>> = m.resources_of("aws_kms_key").filter(per_stack).collect();
    let [primary] = primaries.as_slice() else {
        out.push(m.violation(
            &file,
            "aws_kms_key",
            "stack-kms-key",
            format!(
                "exactly one aws_kms_key with for_each keyed \"namespace/name\" over var.stacks \
                    ({want:?}), found {}",
                primaries.len()
            ),
        ));
        return out;
    };
    if primary.provider() != PRIMARY_PROVIDER {
        out.push(primary.violation(
            "stack-kms-key",
            format!("the primary region's provider {PRIMARY_PROVIDER}"),
        ));
    }
    if !is_true(primary.value("multi_region")) {
        out.push(primary.violation(
            "stack-kms-key",
            "multi_region = true (the Osaka backups are restored with its replica)",
        ));
    }
    if !is_true(primary.value("enable_key_rotation")) {
        out.push(primary.violation("stack-kms-key", "enable_key_rotation = true"));
    }
    let elements = primary
        .attr("for_each")
        .and_then(|e| m.for_each_elements(e))
        .unwrap_or_default();
    for (key, value) in &elements {
        let stack = key.as_str().unwrap_or_default();
        let name = value
            .as_object()
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let description = primary
            .attr("description")
            .and_then(|e| m.eval_each(e, key, value))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if !description.contains(stack) {
            out.push(primary.violation(
                "stack-kms-key",
                format!("a description naming the stack {stack}, not {description:?}"),
            ));
        }
        let tag = primary
            .attr("tags")
            .and_then(|e| m.eval_each(e, key, value))
            .and_then(|t| {
                t.as_object()?
                    .get("kenko:stack")?
                    .as_str()
                    .map(str::to_string)
            });
        if tag.as_deref() != Some(name) {
            out.push(primary.violation(
                "stack-kms-key",
                format!("tags with \"kenko:stack\" = {name:?} for {stack}, not {tag:?}"),
            ));
        }
    }

    // The Osaka replica of each.
    let replicas: Vec<Resource<'_>> = m
        .resources_of("aws_kms_replica_key")
        .filter(per_stack)
        .filter(|r| {
            r.attr("primary_key_arn").is_some_and(|e| {
                references(e, "aws_kms_key").contains(&primary.name.to_string())
                    && render(e).contains("[each.key]")
            })
        })
        .collect();
    let [replica] = replicas.as_slice() else {
        out.push(m.violation(
            &file,
            "aws_kms_replica_key",
            "stack-kms-key-replica",
            format!(
                "exactly one aws_kms_replica_key per stack (for_each over the same stacks) with \
                    primary_key_arn = {}[each.key].arn, found {}",
                primary.address(),
                replicas.len()
            ),
        ));
        return out;
    };
    if replica.provider() != OSAKA_PROVIDER {
        out.push(replica.violation(
            "stack-kms-key-replica",
            format!("provider = {OSAKA_PROVIDER}, not {}", replica.provider()),
        ));
    }

    // Aliases in both regions, one per stack.
    for (key, provider) in [(primary, PRIMARY_PROVIDER), (replica, OSAKA_PROVIDER)] {
        let aliases: Vec<Resource<'_>> = m
            .resources_of("aws_kms_alias")
            .filter(per_stack)
            .filter(|a| a.provider() == provider)
            .filter(|a| {
                a.attr("target_key_id")
                    .is_some_and(|e| references(e, key.rtype).contains(&key.name.to_string()))
            })
            .collect();
        let [alias] = aliases.as_slice() else {
            out.push(key.violation(
                "stack-kms-key",
                format!("one aws_kms_alias per stack ({provider}) targeting this key"),
            ));
            continue;
        };
        let names: BTreeSet<String> = elements
            .iter()
            .filter_map(|(k, v)| {
                let name = m.eval_each(alias.attr("name")?, k, v)?;
                name.as_str().map(str::to_string)
            })
            .collect();
        if names.len() != elements.len() {
            out.push(alias.violation(
                "stack-kms-key",
                format!("a different alias name for each stack, got {names:?}"),
            ));
        }
    }

    // The output the HealthStacks' spec.storage.kmsKeyArn comes from.
    let output = m
        .top_blocks("output")
        .find(|(_, b)| label(b, 0) == Some("stack_kms_key_arns"));
    match output {
        Some((out_file, block)) => {
            let value = attr(block.body(), "value").map(render).unwrap_or_default();
            let description = m.string(block.body(), "description").unwrap_or_default();
            for (what, ok) in [
                (
                    format!("its value naming {} as primary", primary.address()),
                    value.contains("primary")
                        && value.contains(&format!("aws_kms_key.{}", primary.name)),
                ),
                (
                    format!("its value naming {} as replica", replica.address()),
                    value.contains("replica")
                        && value.contains(&format!("aws_kms_replica_key.{}", replica.name)),
                ),
                (
                    "a description saying the primary goes into spec.storage.kmsKeyArn".to_string(),
                    description.contains("spec.storage.kmsKeyArn"),
                ),
            ] {
                if !ok {
                    out.push(m.violation(
                        out_file,
                        "output.stack_kms_key_arns",
                        "stack-kms-key-output",
                        what,
                    ));
                }
            }
        }
        None => out.push(m.violation(
            &file,
            "output.stack_kms_key_arns",
            "stack-kms-key-output",
            "an output stack_kms_key_arns: \"namespace/name\" => { primary, replica }",
        )),
    }
    out
}

/// How kenko names what the intake's key statements must match. The tests fill it in from
/// `kenko_api` and the agent's code, which this crate does not depend on.
#[derive(Debug, Clone)]
pub struct StackNaming {
    /// The ServiceAccount of stack NAME's intake (`NAME-intake`).
    pub intake_service_account: fn(&str) -> String,
    /// The encryption context key naming the stack (`kenko:stack`).
    pub context_key: String,
    /// That key's value for the stack NAMESPACE/NAME.
    pub context_value: fn(&str, &str) -> String,
}

/// The agent-identity module, with `var.stacks` and `var.stack_kms_key_arns` set: for each
/// stack with a key, exactly one statement of the intake policy grants on that key, naming
/// only it, allowing kms:GenerateDataKey and kms:Decrypt and nothing else (and one more
/// allows kms:DescribeKey, with the session-tag conditions only), and only to the
/// stack's own intake (StringEquals on the Pod Identity session tags kubernetes-namespace and
/// kubernetes-service-account) for the stack's own encryption context.
pub fn intake_stack_keys(m: &Module, naming: &StackNaming) -> Vec<Violation> {
    let mut out = Vec::new();
    let file = m.first_file();
    let keys = string_map(m, "stack_kms_key_arns");
    let stacks: Vec<(String, String, String)> = stacks_of(m)
        .into_iter()
        .filter_map(|(ns, name)| {
            let arn = keys.get(&format!("{ns}/{name}"))?.clone();
            Some((ns, name, arn))
        })
        .collect();
    let address = "data.aws_iam_policy_document.intake";
    if stacks.is_empty() {
        out.push(m.violation(
            &file,
            address,
            "intake-stack-key",
            "at least one stack in var.stacks with its key in var.stack_kms_key_arns (cannot \
                be checked without)",
        ));
        return out;
    }
    let Some(statements) = policy_statements(m, "intake") else {
        out.push(m.violation(
            &file,
            address,
            "intake-stack-key",
            "a policy document intake",
        ));
        return out;
    };
    for s in &statements {
        let kms = s.actions.iter().any(|a| a.starts_with("kms:") || a == "*");
        if kms && s.resources.is_empty() {
            out.push(m.violation(
                &file,
                address,
                "intake-stack-key",
                format!("KMS statements whose resources can be worked out, not {s:?}"),
            ));
        }
    }
    for (ns, name, arn) in &stacks {
        let stack = format!("{ns}/{name}");
        let (describing, granting): (Vec<&Statement>, Vec<&Statement>) = statements
            .iter()
            .filter(|s| s.resources.iter().any(|r| r == arn || r == "*"))
            .partition(|s| s.actions == ["kms:DescribeKey"]);
        // kms:DescribeKey carries no encryption context: its own statement, the same two
        // session-tag conditions, the stack's key only.
        match describing.as_slice() {
            [d] => {
                let tags = [
                    ("aws:PrincipalTag/kubernetes-namespace", ns.clone()),
                    (
                        "aws:PrincipalTag/kubernetes-service-account",
                        (naming.intake_service_account)(name),
                    ),
                ];
                let ok = d.effect == "Allow"
                    && d.resources == [arn.clone()]
                    && d.conditions.len() == tags.len()
                    && tags.iter().all(|(variable, value)| {
                        d.conditions.iter().any(|(test, v, values)| {
                            test == "StringEquals"
                                && v == variable
                                && values == std::slice::from_ref(value)
                        })
                    });
                if !ok {
                    out.push(m.violation(
                        &file,
                        address,
                        "intake-stack-key",
                        format!(
                            "the kms:DescribeKey statement on {stack}'s key: resources = [{arn}] \
                             only, StringEquals on kubernetes-namespace and \
                             kubernetes-service-account (got {d:?})"
                        ),
                    ));
                }
            }
            found => out.push(m.violation(
                &file,
                address,
                "intake-stack-key",
                format!(
                    "exactly one kms:DescribeKey statement on {stack}'s key {arn} (the intake \
                     checks the key's state before unwrapping), found {}",
                    found.len()
                ),
            )),
        }
        let [s] = granting.as_slice() else {
            out.push(m.violation(
                &file,
                address,
                "intake-stack-key",
                format!(
                    "exactly one statement granting on {stack}'s key {arn}, found {}",
                    granting.len()
                ),
            ));
            continue;
        };
        let mut problems = Vec::new();
        if s.effect != "Allow" || !s.not_actions.is_empty() {
            problems.push("Effect Allow with actions".to_string());
        }
        if s.resources != [arn.clone()] {
            problems.push(format!("resources = [{arn}] only, not {:?}", s.resources));
        }
        let actions: BTreeSet<&str> = s.actions.iter().map(String::as_str).collect();
        if actions != BTreeSet::from(["kms:Decrypt", "kms:GenerateDataKey"]) {
            problems.push(format!(
                "actions kms:GenerateDataKey and kms:Decrypt only, not {actions:?}"
            ));
        }
        let wanted = [
            (
                "aws:PrincipalTag/kubernetes-namespace".to_string(),
                ns.clone(),
            ),
            (
                "aws:PrincipalTag/kubernetes-service-account".to_string(),
                (naming.intake_service_account)(name),
            ),
            (
                format!("kms:EncryptionContext:{}", naming.context_key),
                (naming.context_value)(ns, name),
            ),
        ];
        for (variable, value) in &wanted {
            let found = s.conditions.iter().any(|(test, v, values)| {
                test == "StringEquals" && v == variable && values == std::slice::from_ref(value)
            });
            if !found {
                problems.push(format!("condition StringEquals {variable} = [{value:?}]"));
            }
        }
        for problem in problems {
            out.push(m.violation(
                &file,
                address,
                "intake-stack-key",
                format!("the statement on {stack}'s key: {problem} (got {s:?})"),
            ));
        }
    }
    out
}

/// The agent-identity module, with the stacks' keys set: the erase policy may schedule the
/// deletion of every stack's key, the primary and the Osaka replica.
pub fn erase_covers_stack_keys(m: &Module) -> Vec<Violation> {
    let mut out = Vec::new();
    let file = m.first_file();
    let address = "data.aws_iam_policy_document.erase";
    let primaries = string_map(m, "stack_kms_key_arns");
    let replicas = string_map(m, "stack_replica_kms_key_arns");
    if primaries.is_empty() || replicas.is_empty() {
        out.push(m.violation(
            &file,
            address,
            "erase-stack-keys",
            "var.stack_kms_key_arns and var.stack_replica_kms_key_arns set (cannot be checked \
                without)",
        ));
        return out;
    }
    let statements = policy_statements(m, "erase").unwrap_or_default();
    let erasable: BTreeSet<&str> = statements
        .iter()
        .filter(|s| s.effect == "Allow" && s.actions.iter().any(|a| a == "kms:ScheduleKeyDeletion"))
        .flat_map(|s| s.resources.iter().map(String::as_str))
        .collect();
    for (kind, keys) in [("primary", &primaries), ("replica", &replicas)] {
        for (stack, arn) in keys {
            if !erasable.contains(arn.as_str()) {
                out.push(m.violation(
                    &file,
                    address,
                    "erase-stack-keys",
                    format!("kms:ScheduleKeyDeletion on {stack}'s {kind} key {arn}"),
                ));
            }
        }
    }
    if !primaries.keys().eq(replicas.keys()) {
        out.push(m.violation(
            &file,
            address,
            "erase-stack-keys",
            "a replica for every stack's primary key",
        ));
    }
    out
}

/// Every per-module check.
pub fn check_module(m: &Module) -> Vec<Violation> {
    let checks: [fn(&Module) -> Vec<Violation>; 10] = [
        no_internet_path,
        regions_in_japan,
        buckets_protected,
        object_lock,
        replication_to_osaka,
        backups,
        eks_private,
        scp_guardrails,
        cloudtrail,
        vpc_endpoints,
    ];
    checks.iter().flat_map(|check| check(m)).collect()
}

// ---------------------------------------------------------------------------------------------
// Environments

fn object_entries(expr: &Expression) -> Vec<(String, String)> {
    match expr {
        Expression::Object(object) => object
            .iter()
            .map(|(key, value)| (key.to_string(), render(value)))
            .collect(),
        _ => Vec::new(),
    }
}

fn normalize(dir: &str, source: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// A `module` block of an environment and the module directory it calls.
#[derive(Debug, Clone)]
pub struct ModuleCall<'a> {
    pub file: &'a str,
    pub name: &'a str,
    pub block: &'a Block,
    /// The called directory relative to `terraform/`, for a local source.
    pub target: Option<String>,
}

/// The module calls of a module (an environment).
pub fn module_calls<'a>(env: &'a Module) -> Vec<ModuleCall<'a>> {
    env.top_blocks("module")
        .filter_map(|(file, block)| {
            let name = label(block, 0)?;
            let target = env
                .string(block.body(), "source")
                .filter(|s| s.starts_with("./") || s.starts_with("../"))
                .map(|s| normalize(&env.dir, &s));
            Some(ModuleCall {
                file,
                name,
                block,
                target,
            })
        })
        .collect()
}

/// The region of each of an environment's AWS providers (`aws`, `aws.osaka`, ...).
pub fn provider_regions(env: &Module) -> BTreeMap<String, Option<String>> {
    env.top_blocks("provider")
        .filter(|(_, b)| label(b, 0) == Some("aws"))
        .map(|(_, block)| {
            let alias = env.string(block.body(), "alias");
            let name = match alias {
                Some(alias) => format!("aws.{alias}"),
                None => "aws".to_string(),
            };
            let region = env.string(block.body(), "region");
            (name, region)
        })
        .collect()
}

fn declares_osaka_alias(module: &Module) -> bool {
    module.top_blocks("terraform").any(|(_, block)| {
        nested(block.body(), &["required_providers"])
            .iter()
            .filter_map(|b| attr(b, "aws"))
            .any(|aws| render(aws).contains(OSAKA_PROVIDER))
    })
}

/// An environment: `aws` in Tokyo and `aws.osaka` in Osaka; every required module called;
/// modules that take `aws.osaka` get the Osaka provider and `aws` the Tokyo one; every
/// provider handed to a module is in Japan.
pub fn env_wiring(env: &Module, modules: &[Module]) -> Vec<Violation> {
    let mut out = Vec::new();
    let file = env.first_file();
    let regions = provider_regions(env);
    for (name, wanted) in [(PRIMARY_PROVIDER, TOKYO), (OSAKA_PROVIDER, OSAKA)] {
        match regions.get(name) {
            Some(Some(region)) if region == wanted => {}
            Some(region) => out.push(env.violation(
                &file,
                &format!("provider.{name}"),
                "env-providers",
                format!(
                    "region {wanted}, not {}",
                    region.as_deref().unwrap_or("(unknown)")
                ),
            )),
            None => out.push(env.violation(
                &file,
                &format!("provider.{name}"),
                "env-providers",
                format!(
                    "a provider \"aws\" {} in {wanted}",
                    if name == PRIMARY_PROVIDER {
                        "without alias".to_string()
                    } else {
                        "with alias \"osaka\"".to_string()
                    }
                ),
            )),
        }
    }
    let calls = module_calls(env);
    for required in REQUIRED_MODULES {
        if !calls.iter().any(|c| c.target.as_deref() == Some(required)) {
            out.push(env.violation(
                &file,
                &format!("module ({required})"),
                "env-wiring",
                format!("a module block with source pointing at {required}"),
            ));
        }
    }
    for call in &calls {
        let address = format!("module.{}", call.name);
        let Some(target) = &call.target else { continue };
        let Some(module) = modules.iter().find(|m| &m.dir == target) else {
            out.push(env.violation(
                call.file,
                &address,
                "env-wiring",
                format!("a module directory {target}"),
            ));
            continue;
        };
        let mapping = attr(call.block.body(), "providers")
            .map(object_entries)
            .unwrap_or_default();
        for (inner, outer) in &mapping {
            match regions.get(outer) {
                Some(Some(region)) if is_japan(region) => {}
                _ => out.push(env.violation(
                    call.file,
                    &address,
                    "env-providers",
                    format!(
                        "providers.{inner} = a provider of this environment in Japan, not {outer}"
                    ),
                )),
            }
        }
        if declares_osaka_alias(module) {
            let region_of = |inner: &str| {
                let outer = mapping
                    .iter()
                    .find(|(k, _)| k == inner)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| inner.to_string());
                regions.get(&outer).cloned().flatten()
            };
            if !mapping.iter().any(|(k, _)| k == OSAKA_PROVIDER) {
                out.push(env.violation(
                    call.file,
                    &address,
                    "env-wiring",
                    "providers = { aws = aws, aws.osaka = aws.osaka } (the module takes the \
                        Osaka provider)",
                ));
            }
            if region_of(PRIMARY_PROVIDER).as_deref() != Some(TOKYO) {
                out.push(env.violation(
                    call.file,
                    &address,
                    "env-wiring",
                    format!("providers.aws in {TOKYO}"),
                ));
            }
            if region_of(OSAKA_PROVIDER).as_deref() != Some(OSAKA) {
                out.push(env.violation(
                    call.file,
                    &address,
                    "env-wiring",
                    format!("providers.aws.osaka in {OSAKA}"),
                ));
            }
        }
    }
    out
}

/// Each module an environment calls, with the variables its arguments set (where they can be
/// worked out), for checking the module as it is actually deployed.
pub fn wired_modules(env: &Module, modules: &[Module]) -> Vec<Module> {
    const META: [&str; 7] = [
        "source",
        "version",
        "providers",
        "count",
        "for_each",
        "depends_on",
        "lifecycle",
    ];
    module_calls(env)
        .into_iter()
        .filter_map(|call| {
            let target = call.target.as_ref()?;
            let module = modules.iter().find(|m| &m.dir == target)?;
            let mut overrides = hcl::Map::new();
            for attribute in call.block.body().attributes() {
                if META.contains(&attribute.key()) {
                    continue;
                }
                if let Some(value) = env.eval(attribute.expr()) {
                    overrides.insert(attribute.key().to_string(), value);
                }
            }
            Some(module.with_overrides(format!("module.{} ({})/", call.name, env.dir), &overrides))
        })
        .collect()
}

type Probe = fn(&Module) -> bool;

/// Things the tree must have at all, so that the other checks cannot pass by finding nothing.
pub fn required_presence(modules: &[Module]) -> Vec<Violation> {
    let mut out = Vec::new();
    let wanted: [(&str, Probe); 10] = [
        ("an aws_vpc", |m| m.resources_of("aws_vpc").next().is_some()),
        ("an aws_eks_cluster", |m| {
            m.resources_of("aws_eks_cluster").next().is_some()
        }),
        ("a certificate aws_s3_bucket with Object Lock", |m| {
            m.resources_of("aws_s3_bucket")
                .any(|b| b.name.contains("certificate") && object_lock_enabled(&b))
        }),
        ("an aws_s3_bucket_replication_configuration", |m| {
            m.resources_of("aws_s3_bucket_replication_configuration")
                .next()
                .is_some()
        }),
        ("an aws_backup_vault with provider aws.osaka", |m| {
            m.resources_of("aws_backup_vault")
                .any(|v| v.provider() == OSAKA_PROVIDER)
        }),
        ("an aws_backup_plan", |m| {
            m.resources_of("aws_backup_plan").next().is_some()
        }),
        ("an aws_organizations_policy", |m| {
            m.resources_of("aws_organizations_policy").next().is_some()
        }),
        ("an aws_cloudtrail", |m| {
            m.resources_of("aws_cloudtrail").next().is_some()
        }),
        ("an aws_vpc_endpoint", |m| {
            m.resources_of("aws_vpc_endpoint").next().is_some()
        }),
        ("an environment under envs/", |m| m.dir.starts_with("envs/")),
    ];
    for (what, test) in wanted {
        if !modules.iter().any(test) {
            out.push(Violation {
                file: "terraform/".to_string(),
                address: "(tree)".to_string(),
                rule: "present",
                expected: what.to_string(),
            });
        }
    }
    out
}

/// Every check over a loaded tree: each module on its defaults, each module as each environment
/// wires it, each environment's providers and calls, and the presence of what must exist.
pub fn check_tree(modules: &[Module]) -> Vec<Violation> {
    let mut out: Vec<Violation> = modules.iter().flat_map(check_module).collect();
    for env in modules.iter().filter(|m| m.dir.starts_with("envs/")) {
        out.extend(env_wiring(env, modules));
        for wired in wired_modules(env, modules) {
            out.extend(check_module(&wired));
        }
    }
    out.extend(required_presence(modules));
    out.sort();
    out.dedup();
    out
}

/// The backup selection tag `want` (`kenko_api::names::BACKUP_SELECTION_TAG`), in the three
/// places that must agree on it: Terraform's backup selection (a `selection_tag` block with
/// `STRINGEQUALS`, `key` and `value` as `want`, in `backup`), the records bucket's tags (in
/// `storage`), and the StorageClass's EBS CSI parameters (`tagSpecification_N: "KEY=VALUE"`,
/// which tag every volume it creates). A mismatch in any of them means the volumes or the
/// bucket are not backed up.
pub fn backup_selection_tag(
    backup: &Module,
    storage: &Module,
    storage_class: (&str, &serde_json::Value),
    want: (&str, &str),
) -> Vec<Violation> {
    let (key, value) = want;
    let mut out = Vec::new();
    let selections: Vec<Resource<'_>> = backup.resources_of("aws_backup_selection").collect();
    if selections.is_empty() {
        out.push(Violation {
            file: format!("terraform/{}", backup.dir),
            address: format!("{}aws_backup_selection", backup.address_prefix),
            rule: "backup-selection-tag",
            expected: format!("a backup selection of resources tagged {key} = {value}"),
        });
    }
    for sel in &selections {
        let matches = nested(sel.body, &["selection_tag"]).iter().any(|b| {
            backup.string(b, "type").as_deref() == Some("STRINGEQUALS")
                && backup.string(b, "key").as_deref() == Some(key)
                && backup.string(b, "value").as_deref() == Some(value)
        });
        if !matches {
            out.push(sel.violation(
                "backup-selection-tag",
                format!("selection_tag {{ type = \"STRINGEQUALS\", key = \"{key}\", value = \"{value}\" }}"),
            ));
        }
    }
    match storage.find("aws_s3_bucket", "records") {
        None => out.push(Violation {
            file: format!("terraform/{}", storage.dir),
            address: format!("{}aws_s3_bucket.records", storage.address_prefix),
            rule: "records-backup-tag",
            expected: "the records bucket".into(),
        }),
        Some(b) => {
            let tagged = b
                .value("tags")
                .and_then(|t| t.as_object().and_then(|o| o.get(key)).cloned())
                .is_some_and(|v| v.as_str() == Some(value));
            if !tagged {
                out.push(b.violation(
                    "records-backup-tag",
                    format!(
                        "tags including \"{key}\" = \"{value}\" (so the backup plan selects it)"
                    ),
                ));
            }
        }
    }
    let (file, sc) = storage_class;
    let wanted = format!("{key}={value}");
    let tagged = sc["parameters"].as_object().is_some_and(|p| {
        p.iter().any(|(k, v)| {
            k.to_ascii_lowercase().starts_with("tagspecification") && v.as_str() == Some(&wanted)
        })
    });
    if !tagged {
        out.push(Violation {
            file: file.to_string(),
            address: format!(
                "StorageClass {}",
                sc["metadata"]["name"].as_str().unwrap_or_default()
            ),
            rule: "storageclass-backup-tag",
            expected: format!("parameters.tagSpecification_N: \"{wanted}\" (the EBS CSI driver tags every volume it creates)"),
        });
    }
    out
}
