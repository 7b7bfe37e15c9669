//! kenko's Terraform, parsed with hcl-rs and checked against the invariants the residency audit
//! relies on. The first test checks the real tree; the others show that each check can fail, by
//! running it on a small snippet that breaks one rule.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::PathBuf;

use kenko_infra_tests::{
    backups, buckets_protected, check_module, check_tree, cloudtrail, eks_private,
    endpoint_services, env_wiring, erase_covers_stack_keys, intake_stack_keys, load_tree,
    module_calls, no_internet_path, object_lock, policy_statements, provider_regions, regions_in,
    regions_in_japan, render, replication_to_osaka, required_presence, scp_guardrails,
    stack_kms_keys, vpc_endpoints, wired_modules, Module, StackNaming, Violation,
    REQUIRED_INTERFACE_ENDPOINTS,
};

fn terraform_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

fn tree() -> Vec<Module> {
    load_tree(&terraform_dir(), "terraform").unwrap_or_else(|err| panic!("{err}"))
}

fn module<'a>(modules: &'a [Module], dir: &str) -> &'a Module {
    modules
        .iter()
        .find(|m| m.dir == dir)
        .unwrap_or_else(|| panic!("no terraform/{dir}"))
}

fn rules(violations: &[Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.rule).collect()
}

/// Asserts that `violations` include `rule` (and prints them all if not).
#[track_caller]
fn assert_reported(violations: &[Violation], rule: &str) {
    assert!(
        violations.iter().any(|v| v.rule == rule),
        "expected a [{rule}] violation, got:\n{}",
        listing(violations)
    );
}

#[track_caller]
fn assert_clean(violations: &[Violation]) {
    assert!(
        violations.is_empty(),
        "unexpected violations:\n{}",
        listing(violations)
    );
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

// ---------------------------------------------------------------------------------------------
// The real tree

#[test]
fn every_invariant_holds_for_the_whole_tree() {
    let modules = tree();
    let violations = check_tree(&modules);
    assert!(
        violations.is_empty(),
        "{} Terraform invariant violation(s):\n{}",
        violations.len(),
        listing(&violations)
    );
}

#[test]
fn the_tree_has_every_module_and_the_production_environment() {
    let modules = tree();
    let dirs: Vec<&str> = modules.iter().map(|m| m.dir.as_str()).collect();
    for dir in [
        "modules/network",
        "modules/cluster",
        "modules/storage",
        "modules/backup",
        "modules/guardrails",
        "modules/audit-logging",
        "modules/agent-identity",
        "envs/production",
    ] {
        assert!(
            dirs.contains(&dir),
            "terraform/{dir} missing; found {dirs:?}"
        );
    }
    let files: usize = modules.iter().map(|m| m.files.len()).sum();
    assert!(files >= 25, "only {files} .tf files parsed");
}

#[test]
fn every_bucket_is_checked_and_the_expected_ones_exist() {
    let modules = tree();
    let mut buckets: Vec<String> = modules
        .iter()
        .flat_map(|m| {
            m.resources_of("aws_s3_bucket")
                .map(|b| format!("{}:{}:{}", m.dir, b.name, b.provider()))
        })
        .collect();
    buckets.sort();
    assert_eq!(
        buckets,
        [
            "modules/audit-logging:trail:aws",
            "modules/storage:certificates:aws",
            "modules/storage:certificates_replica:aws.osaka",
            "modules/storage:intake:aws",
            "modules/storage:records:aws",
            "modules/storage:records_replica:aws.osaka",
        ]
    );
}

#[test]
fn production_uses_tokyo_and_osaka_providers() {
    let modules = tree();
    let regions = provider_regions(module(&modules, "envs/production"));
    assert_eq!(regions["aws"].as_deref(), Some("ap-northeast-1"));
    assert_eq!(regions["aws.osaka"].as_deref(), Some("ap-northeast-3"));
    for (name, region) in &regions {
        let region = region.as_deref().unwrap_or("(unknown)");
        assert!(
            region == "ap-northeast-1" || region == "ap-northeast-3",
            "provider {name} in {region}"
        );
    }
}

#[test]
fn backups_are_kept_7305_days_as_production_wires_them() {
    let modules = tree();
    let env = module(&modules, "envs/production");
    let wired = wired_modules(env, &modules);
    let backup = wired
        .iter()
        .find(|m| m.dir == "modules/backup")
        .expect("production calls modules/backup");
    assert_eq!(
        backup.var("retention_years").and_then(|v| v.as_i64()),
        Some(20)
    );
    assert_eq!(
        backup.local("retention_days").and_then(|v| v.as_f64()),
        Some(7305.0)
    );
    // The module on its own defaults says the same.
    let defaults = module(&modules, "modules/backup");
    assert_eq!(
        defaults.local("retention_days").and_then(|v| v.as_f64()),
        Some(7305.0)
    );
}

#[test]
fn the_network_has_the_endpoints_the_cluster_needs() {
    let modules = tree();
    let network = module(&modules, "modules/network");
    assert!(endpoint_services(network, "Gateway").contains("s3"));
    let interface = endpoint_services(network, "Interface");
    for service in REQUIRED_INTERFACE_ENDPOINTS {
        assert!(
            interface.contains(service),
            "{service} missing from {interface:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Each check can fail: no internet path

#[test]
fn internet_nat_and_egress_only_gateways_are_reported() {
    let m = Module::snippet(
        "bad",
        r#"
resource "aws_internet_gateway" "igw" {
  vpc_id = aws_vpc.this.id
}
resource "aws_nat_gateway" "nat" {
  subnet_id = aws_subnet.a.id
}
resource "aws_egress_only_internet_gateway" "eigw" {
  vpc_id = aws_vpc.this.id
}
"#,
    );
    let violations = no_internet_path(&m);
    assert_eq!(
        rules(&violations),
        ["no-internet-gateway"; 3],
        "{}",
        listing(&violations)
    );
    assert!(violations
        .iter()
        .any(|v| v.address == "aws_internet_gateway.igw"));
}

#[test]
fn default_routes_are_reported_literal_inline_or_through_a_variable() {
    let m = Module::snippet(
        "bad",
        r#"
variable "everywhere" {
  default = "0.0.0.0/0"
}
resource "aws_route" "literal" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  transit_gateway_id     = "tgw-1"
}
resource "aws_route" "through_variable" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = var.everywhere
  transit_gateway_id     = "tgw-1"
}
resource "aws_route_table" "inline" {
  vpc_id = aws_vpc.this.id
  route {
    ipv6_cidr_block = "::/0"
    gateway_id      = "vgw-1"
  }
}
"#,
    );
    let violations = no_internet_path(&m);
    let addresses: Vec<&str> = violations
        .iter()
        .filter(|v| v.rule == "no-default-route")
        .map(|v| v.address.as_str())
        .collect();
    assert_eq!(
        addresses,
        [
            "aws_route.literal",
            "aws_route.through_variable",
            "aws_route_table.inline"
        ],
        "{}",
        listing(&violations)
    );
}

#[test]
fn a_route_to_the_closed_network_is_not_a_violation() {
    let m = Module::snippet(
        "ok",
        r#"
resource "aws_route" "closed_network" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "10.200.0.0/16"
  transit_gateway_id     = "tgw-1"
}
"#,
    );
    assert_clean(&no_internet_path(&m));
}

#[test]
fn public_ips_on_launch_are_reported() {
    let m = Module::snippet(
        "bad",
        r#"
resource "aws_subnet" "public" {
  vpc_id                  = aws_vpc.this.id
  cidr_block              = "10.0.0.0/24"
  map_public_ip_on_launch = true
}
"#,
    );
    assert_reported(&no_internet_path(&m), "no-public-ip");
}

// ---------------------------------------------------------------------------------------------
// Regions

#[test]
fn providers_outside_japan_or_without_a_region_are_reported() {
    let m = Module::snippet(
        "bad",
        r#"
variable "region" {
  default = "eu-west-1"
}
provider "aws" {
  region = "us-east-1"
}
provider "aws" {
  alias  = "osaka"
  region = var.region
}
provider "aws" {
  alias = "from_environment"
}
provider "aws" {
  alias  = "tokyo"
  region = "ap-northeast-1"
}
"#,
    );
    let violations: Vec<Violation> = regions_in_japan(&m)
        .into_iter()
        .filter(|v| v.rule == "provider-region-japan")
        .collect();
    let addresses: Vec<&str> = violations.iter().map(|v| v.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "provider.aws",
            "provider.aws.osaka",
            "provider.aws.from_environment"
        ],
        "{}",
        listing(&violations)
    );
}

#[test]
fn a_state_backend_outside_japan_is_reported() {
    let m = Module::snippet(
        "bad",
        r#"
terraform {
  backend "s3" {
    region = "us-west-2"
  }
}
"#,
    );
    assert_reported(&regions_in_japan(&m), "provider-region-japan");
}

#[test]
fn a_region_outside_japan_named_anywhere_is_reported() {
    let m = Module::snippet(
        "bad",
        r#"
resource "aws_vpc_endpoint" "s3" {
  vpc_id       = aws_vpc.this.id
  service_name = "com.amazonaws.us-east-1.s3"
}
"#,
    );
    let violations = regions_in_japan(&m);
    assert_reported(&violations, "region-literal-japan");
    assert_eq!(
        regions_in("arn:aws:logs:ap-northeast-1:1:x us-gov-west-1a eu-central-2"),
        ["ap-northeast-1", "us-gov-west-1", "eu-central-2"]
    );
}

// ---------------------------------------------------------------------------------------------
// Buckets

/// A bucket that passes every bucket rule; tests break one thing at a time.
const GOOD_BUCKET: &str = r#"
resource "aws_kms_key" "data" {
  enable_key_rotation = true
}
resource "aws_kms_key" "data_osaka" {
  provider            = aws.osaka
  enable_key_rotation = true
}
resource "aws_s3_bucket" "records" {
  bucket = "records"
}
resource "aws_s3_bucket_versioning" "records" {
  bucket = aws_s3_bucket.records.id
  versioning_configuration {
    status = "Enabled"
  }
}
resource "aws_s3_bucket_server_side_encryption_configuration" "records" {
  bucket = aws_s3_bucket.records.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
  }
}
resource "aws_s3_bucket_public_access_block" "records" {
  bucket                  = aws_s3_bucket.records.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}
"#;

fn broken_bucket(from: &str, to: &str) -> Module {
    assert!(
        GOOD_BUCKET.contains(from),
        "{from:?} not in the good bucket"
    );
    Module::snippet("bad", &GOOD_BUCKET.replacen(from, to, 1))
}

#[test]
fn the_good_bucket_passes() {
    assert_clean(&buckets_protected(&Module::snippet("ok", GOOD_BUCKET)));
}

#[test]
fn a_bucket_without_versioning_is_reported() {
    let m = broken_bucket(
        "resource \"aws_s3_bucket_versioning\" \"records\" {\n  bucket = aws_s3_bucket.records.id",
        "resource \"aws_s3_bucket_versioning\" \"records\" {\n  bucket = aws_s3_bucket.other.id",
    );
    let violations = buckets_protected(&m);
    assert_eq!(
        rules(&violations),
        ["bucket-versioned"],
        "{}",
        listing(&violations)
    );
    assert_eq!(violations[0].address, "aws_s3_bucket.records");
    assert_eq!(violations[0].file, "bad/main.tf");
}

#[test]
fn suspended_versioning_is_reported() {
    let m = broken_bucket("status = \"Enabled\"", "status = \"Suspended\"");
    assert_reported(&buckets_protected(&m), "bucket-versioned");
}

#[test]
fn sse_s3_instead_of_kms_is_reported() {
    let m = broken_bucket(
        "sse_algorithm     = \"aws:kms\"\n      kms_master_key_id = aws_kms_key.data.arn",
        "sse_algorithm = \"AES256\"",
    );
    let violations = buckets_protected(&m);
    assert_eq!(
        rules(&violations),
        ["bucket-kms-encrypted", "bucket-kms-encrypted"],
        "{}",
        listing(&violations)
    );
}

#[test]
fn an_aws_managed_or_foreign_key_is_reported() {
    let m = broken_bucket("aws_kms_key.data.arn", "\"alias/aws/s3\"");
    assert_reported(&buckets_protected(&m), "bucket-kms-encrypted");
}

#[test]
fn a_key_from_the_other_region_is_reported() {
    let m = broken_bucket("aws_kms_key.data.arn", "aws_kms_key.data_osaka.arn");
    assert_reported(&buckets_protected(&m), "bucket-kms-key-same-region");
}

#[test]
fn a_key_without_rotation_is_reported() {
    let m = broken_bucket("enable_key_rotation = true", "enable_key_rotation = false");
    assert_reported(&buckets_protected(&m), "kms-key-rotation");
}

#[test]
fn a_bucket_with_one_public_access_block_off_is_reported() {
    let m = broken_bucket(
        "restrict_public_buckets = true",
        "restrict_public_buckets = false",
    );
    assert_reported(&buckets_protected(&m), "bucket-public-access-blocked");
    let m = broken_bucket("ignore_public_acls      = true\n", "");
    assert_reported(&buckets_protected(&m), "bucket-public-access-blocked");
}

// ---------------------------------------------------------------------------------------------
// Object Lock and replication

const CERTIFICATE_BUCKET: &str = r#"
resource "aws_s3_bucket" "certificates" {
  bucket              = "certificates"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id
  rule {
    default_retention {
      mode  = "COMPLIANCE"
      years = 20
    }
  }
}
resource "aws_s3_bucket_replication_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id
  role   = aws_iam_role.replication.arn
  rule {
    id     = "to-osaka"
    status = "Enabled"
    filter {}
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket = aws_s3_bucket.certificates_replica.arn
      encryption_configuration {
        replica_kms_key_id = aws_kms_key.osaka.arn
      }
    }
  }
}
resource "aws_s3_bucket" "certificates_replica" {
  provider            = aws.osaka
  bucket              = "certificates-replica"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "certificates_replica" {
  provider = aws.osaka
  bucket   = aws_s3_bucket.certificates_replica.id
  rule {
    default_retention {
      mode  = "COMPLIANCE"
      years = 20
    }
  }
}
resource "aws_s3_bucket" "tokyo_copy" {
  bucket = "not-osaka"
}
resource "aws_kms_key" "osaka" {
  provider            = aws.osaka
  enable_key_rotation = true
}
resource "aws_kms_key" "tokyo" {
  enable_key_rotation = true
}
"#;

fn broken_certificates(from: &str, to: &str) -> Module {
    assert!(
        CERTIFICATE_BUCKET.contains(from),
        "{from:?} not in the certificate snippet"
    );
    Module::snippet("bad", &CERTIFICATE_BUCKET.replacen(from, to, 1))
}

#[test]
fn the_good_certificate_bucket_passes() {
    let m = Module::snippet("ok", CERTIFICATE_BUCKET);
    assert_clean(&object_lock(&m));
    assert_clean(&replication_to_osaka(&m));
}

#[test]
fn a_certificate_bucket_without_object_lock_is_reported() {
    let m = broken_certificates(
        "bucket              = \"certificates\"\n  object_lock_enabled = true",
        "bucket = \"certificates\"",
    );
    let violations = object_lock(&m);
    assert_reported(&violations, "bucket-object-lock");
    assert!(violations
        .iter()
        .any(|v| v.address == "aws_s3_bucket.certificates"));
}

#[test]
fn governance_mode_is_reported() {
    let m = broken_certificates("mode  = \"COMPLIANCE\"", "mode  = \"GOVERNANCE\"");
    let violations = object_lock(&m);
    assert_reported(&violations, "bucket-object-lock");
    assert!(
        violations[0].expected.contains("GOVERNANCE"),
        "{}",
        listing(&violations)
    );
}

#[test]
fn an_unreplicated_certificate_bucket_is_reported() {
    let m = broken_certificates(
        "bucket = aws_s3_bucket.certificates.id\n  role",
        "bucket = aws_s3_bucket.tokyo_copy.id\n  role",
    );
    assert_reported(&object_lock(&m), "certificate-bucket-replicated");
}

#[test]
fn replication_to_a_tokyo_bucket_is_reported() {
    let m = broken_certificates(
        "bucket = aws_s3_bucket.certificates_replica.arn",
        "bucket = aws_s3_bucket.tokyo_copy.arn",
    );
    let violations = replication_to_osaka(&m);
    assert_eq!(
        rules(&violations),
        ["replication-to-osaka"],
        "{}",
        listing(&violations)
    );
    assert!(violations[0].expected.contains("aws_s3_bucket.tokyo_copy"));
}

#[test]
fn replication_to_a_bucket_outside_the_module_is_reported() {
    let m = broken_certificates(
        "bucket = aws_s3_bucket.certificates_replica.arn",
        "bucket = \"arn:aws:s3:::somewhere-else\"",
    );
    assert_reported(&replication_to_osaka(&m), "replication-to-osaka");
}

#[test]
fn replicas_encrypted_with_a_tokyo_key_or_skipping_kms_objects_are_reported() {
    let m = broken_certificates("aws_kms_key.osaka.arn", "aws_kms_key.tokyo.arn");
    assert_reported(&replication_to_osaka(&m), "replication-to-osaka");
    let m = broken_certificates(
        "sse_kms_encrypted_objects {\n        status = \"Enabled\"",
        "sse_kms_encrypted_objects {\n        status = \"Disabled\"",
    );
    assert_reported(&replication_to_osaka(&m), "replication-to-osaka");
}

// ---------------------------------------------------------------------------------------------
// Backups

const GOOD_BACKUP: &str = r#"
variable "retention_years" {
  default = 20
}
locals {
  retention_days = ceil(var.retention_years * 365.25)
}
resource "aws_kms_key" "tokyo" {
  enable_key_rotation = true
}
resource "aws_kms_key" "osaka" {
  provider            = aws.osaka
  enable_key_rotation = true
}
resource "aws_backup_vault" "tokyo" {
  name        = "tokyo"
  kms_key_arn = aws_kms_key.tokyo.arn
}
resource "aws_backup_vault" "osaka" {
  provider    = aws.osaka
  name        = "osaka"
  kms_key_arn = aws_kms_key.osaka.arn
}
resource "aws_backup_plan" "daily" {
  name = "daily"
  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.tokyo.name
    schedule          = "cron(0 17 * * ? *)"
    lifecycle {
      cold_storage_after = 90
      delete_after       = local.retention_days
    }
    copy_action {
      destination_vault_arn = aws_backup_vault.osaka.arn
      lifecycle {
        cold_storage_after = 90
        delete_after       = local.retention_days
      }
    }
  }
}
"#;

fn broken_backup(from: &str, to: &str) -> Module {
    assert!(
        GOOD_BACKUP.contains(from),
        "{from:?} not in the backup snippet"
    );
    Module::snippet("bad", &GOOD_BACKUP.replacen(from, to, 1))
}

#[test]
fn the_good_backup_passes() {
    assert_clean(&backups(&Module::snippet("ok", GOOD_BACKUP)));
}

#[test]
fn a_backup_rule_kept_365_days_is_reported() {
    let m = broken_backup(
        "delete_after       = local.retention_days",
        "delete_after       = 365",
    );
    let violations = backups(&m);
    assert_eq!(
        rules(&violations),
        ["backup-retention-20y"],
        "{}",
        listing(&violations)
    );
    assert!(violations[0].expected.contains("365"));
}

#[test]
fn a_retention_variable_below_20_years_is_reported() {
    let m = broken_backup("default = 20", "default = 5");
    let violations = backups(&m);
    // Both the rule and its copy keep the recovery points 1827 days.
    assert_eq!(
        rules(&violations),
        ["backup-retention-20y", "backup-retention-20y"],
        "{}",
        listing(&violations)
    );
}

#[test]
fn a_backup_rule_without_a_copy_is_reported() {
    let start = GOOD_BACKUP.find("    copy_action {").unwrap();
    let end = start + GOOD_BACKUP[start..].find("\n    }\n").unwrap() + "\n    }\n".len();
    let text = format!("{}{}", &GOOD_BACKUP[..start], &GOOD_BACKUP[end..]);
    let violations = backups(&Module::snippet("bad", &text));
    assert_eq!(
        rules(&violations),
        ["backup-copy-to-osaka"],
        "{}",
        listing(&violations)
    );
}

#[test]
fn a_copy_to_the_same_region_is_reported() {
    let m = broken_backup(
        "destination_vault_arn = aws_backup_vault.osaka.arn",
        "destination_vault_arn = aws_backup_vault.tokyo.arn",
    );
    assert_reported(&backups(&m), "backup-copy-to-osaka");
}

#[test]
fn a_backup_rule_without_cold_storage_is_reported() {
    let m = broken_backup("      cold_storage_after = 90\n", "");
    assert_reported(&backups(&m), "backup-cold-storage");
}

#[test]
fn cold_storage_shorter_than_90_days_before_deletion_is_reported() {
    let m = broken_backup("cold_storage_after = 90", "cold_storage_after = 7250");
    assert_reported(&backups(&m), "backup-cold-storage");
}

#[test]
fn a_vault_with_a_key_of_the_other_region_is_reported() {
    let m = broken_backup(
        "kms_key_arn = aws_kms_key.osaka.arn",
        "kms_key_arn = aws_kms_key.tokyo.arn",
    );
    assert_reported(&backups(&m), "backup-vault-encrypted");
}

#[test]
fn a_vault_with_another_provider_is_reported() {
    let m = broken_backup("provider    = aws.osaka", "provider    = aws.virginia");
    let violations = backups(&m);
    assert_reported(&violations, "backup-vault-japan");
    assert_reported(&violations, "backup-copy-to-osaka");
}

// ---------------------------------------------------------------------------------------------
// EKS

#[test]
fn a_public_eks_endpoint_is_reported() {
    let m = Module::snippet(
        "bad",
        r#"
resource "aws_eks_cluster" "public" {
  name     = "x"
  role_arn = "arn"
  vpc_config {
    subnet_ids              = ["a", "b"]
    endpoint_private_access = true
    endpoint_public_access  = true
  }
}
resource "aws_eks_cluster" "defaults" {
  name     = "y"
  role_arn = "arn"
  vpc_config {
    subnet_ids = ["a", "b"]
  }
}
"#,
    );
    let violations = eks_private(&m);
    let found: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.address.as_str(), v.expected.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "aws_eks_cluster.public",
                "vpc_config.endpoint_public_access = false"
            ),
            (
                "aws_eks_cluster.defaults",
                "vpc_config.endpoint_public_access = false"
            ),
            (
                "aws_eks_cluster.defaults",
                "vpc_config.endpoint_private_access = true"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Service control policies

const GOOD_SCP: &str = r#"
variable "allowed_regions" {
  default = ["ap-northeast-1", "ap-northeast-3"]
}
data "aws_iam_policy_document" "japan_only" {
  statement {
    effect      = "Deny"
    not_actions = ["iam:*", "sts:*", "organizations:*"]
    resources   = ["*"]
    condition {
      test     = "StringNotEquals"
      variable = "aws:RequestedRegion"
      values   = var.allowed_regions
    }
  }
}
data "aws_iam_policy_document" "closed" {
  statement {
    effect    = "Deny"
    actions = [
      "ec2:CreateInternetGateway",
      "ec2:AttachInternetGateway",
      "ec2:CreateEgressOnlyInternetGateway",
      "ec2:CreateNatGateway",
    ]
    resources = ["*"]
  }
}
resource "aws_organizations_policy" "japan_only" {
  name    = "japan-only"
  type    = "SERVICE_CONTROL_POLICY"
  content = data.aws_iam_policy_document.japan_only.json
}
resource "aws_organizations_policy" "closed" {
  name    = "closed"
  content = data.aws_iam_policy_document.closed.minified_json
}
resource "aws_organizations_policy_attachment" "japan_only" {
  policy_id = aws_organizations_policy.japan_only.id
  target_id = "123456789012"
}
resource "aws_organizations_policy_attachment" "closed" {
  policy_id = aws_organizations_policy.closed.id
  target_id = "123456789012"
}
"#;

fn broken_scp(from: &str, to: &str) -> Module {
    assert!(GOOD_SCP.contains(from), "{from:?} not in the SCP snippet");
    Module::snippet("bad", &GOOD_SCP.replacen(from, to, 1))
}

#[test]
fn the_good_scp_passes() {
    assert_clean(&scp_guardrails(&Module::snippet("ok", GOOD_SCP)));
}

#[test]
fn an_scp_allowing_a_region_outside_japan_is_reported() {
    let m = broken_scp("\"ap-northeast-3\"]", "\"ap-northeast-3\", \"us-east-1\"]");
    assert_eq!(rules(&scp_guardrails(&m)), ["scp-japan-only"]);
}

#[test]
fn an_scp_without_the_region_condition_is_reported() {
    let m = broken_scp(
        "variable = \"aws:RequestedRegion\"",
        "variable = \"aws:PrincipalTag/team\"",
    );
    assert_eq!(rules(&scp_guardrails(&m)), ["scp-japan-only"]);
}

#[test]
fn an_scp_exempting_a_regional_service_is_reported() {
    let m = broken_scp("\"iam:*\",", "\"iam:*\", \"s3:*\",");
    assert_eq!(rules(&scp_guardrails(&m)), ["scp-japan-only"]);
}

#[test]
fn an_scp_that_lets_internet_gateways_be_attached_is_reported() {
    let m = broken_scp("      \"ec2:AttachInternetGateway\",\n", "");
    let violations = scp_guardrails(&m);
    assert_eq!(
        rules(&violations),
        ["scp-no-internet-gateway"],
        "{}",
        listing(&violations)
    );
    assert!(violations[0].expected.contains("ec2:AttachInternetGateway"));
}

#[test]
fn an_scp_that_is_not_attached_is_reported() {
    let m = broken_scp(
        "policy_id = aws_organizations_policy.closed.id",
        "policy_id = \"p-123\"",
    );
    assert_eq!(rules(&scp_guardrails(&m)), ["scp-attached"]);
}

#[test]
fn an_scp_whose_content_cannot_be_read_is_reported() {
    let m = broken_scp(
        "content = data.aws_iam_policy_document.japan_only.json",
        "content = file(\"policy.json\")",
    );
    let violations = scp_guardrails(&m);
    assert_reported(&violations, "scp-japan-only");
}

// ---------------------------------------------------------------------------------------------
// CloudTrail

const GOOD_TRAIL: &str = r#"
resource "aws_s3_bucket" "trail" {
  bucket              = "trail"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "trail" {
  bucket = aws_s3_bucket.trail.id
  rule {
    default_retention {
      mode  = "COMPLIANCE"
      years = 10
    }
  }
}
resource "aws_cloudtrail" "this" {
  name                       = "audit"
  s3_bucket_name             = aws_s3_bucket.trail.id
  kms_key_id                 = aws_kms_key.trail.arn
  is_multi_region_trail      = true
  enable_log_file_validation = true
  advanced_event_selector {
    name = "management"
    field_selector {
      field  = "eventCategory"
      equals = ["Management"]
    }
  }
  advanced_event_selector {
    name = "s3 data"
    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }
    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }
  }
}
"#;

fn broken_trail(from: &str, to: &str) -> Module {
    assert!(
        GOOD_TRAIL.contains(from),
        "{from:?} not in the trail snippet"
    );
    Module::snippet("bad", &GOOD_TRAIL.replacen(from, to, 1))
}

#[test]
fn the_good_trail_passes() {
    assert_clean(&cloudtrail(&Module::snippet("ok", GOOD_TRAIL)));
}

#[test]
fn a_trail_without_s3_data_events_is_reported() {
    let m = broken_trail(
        "equals = [\"AWS::S3::Object\"]",
        "equals = [\"AWS::DynamoDB::Table\"]",
    );
    assert_eq!(rules(&cloudtrail(&m)), ["cloudtrail-s3-data-events"]);
}

#[test]
fn the_classic_event_selector_counts_as_s3_data_events() {
    let start = GOOD_TRAIL
        .find("  advanced_event_selector {\n    name = \"s3 data\"")
        .unwrap();
    let text = format!(
        "{}  event_selector {{
    data_resource {{
      type   = \"AWS::S3::Object\"
      values = [\"arn:aws:s3\"]
    }}
  }}
}}
",
        &GOOD_TRAIL[..start]
    );
    assert_clean(&cloudtrail(&Module::snippet("ok", &text)));
}

#[test]
fn a_trail_bucket_without_object_lock_is_reported() {
    let m = broken_trail("object_lock_enabled = true", "object_lock_enabled = false");
    assert_eq!(rules(&cloudtrail(&m)), ["cloudtrail-locked-bucket"]);
}

#[test]
fn a_trail_without_log_validation_or_only_in_one_region_is_reported() {
    let m = broken_trail(
        "enable_log_file_validation = true",
        "enable_log_file_validation = false",
    );
    assert_eq!(rules(&cloudtrail(&m)), ["cloudtrail-integrity"]);
    let m = broken_trail(
        "is_multi_region_trail      = true",
        "is_multi_region_trail      = false",
    );
    assert_eq!(rules(&cloudtrail(&m)), ["cloudtrail-all-regions"]);
}

// ---------------------------------------------------------------------------------------------
// VPC endpoints

#[test]
fn a_vpc_missing_endpoints_is_reported() {
    let m = Module::snippet(
        "bad",
        r#"
resource "aws_vpc" "this" {
  cidr_block = "10.0.0.0/16"
}
resource "aws_vpc_endpoint" "interface" {
  for_each            = toset(["ecr.api", "ecr.dkr", "sts"])
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
}
"#,
    );
    let violations = vpc_endpoints(&m);
    let missing: Vec<&str> = violations.iter().map(|v| v.expected.as_str()).collect();
    assert_eq!(
        missing,
        [
            "an S3 gateway VPC endpoint (com.amazonaws.REGION.s3, vpc_endpoint_type Gateway)",
            "an interface VPC endpoint for com.amazonaws.REGION.autoscaling",
            "an interface VPC endpoint for com.amazonaws.REGION.backup",
            "an interface VPC endpoint for com.amazonaws.REGION.ec2",
            "an interface VPC endpoint for com.amazonaws.REGION.elasticloadbalancing",
            "an interface VPC endpoint for com.amazonaws.REGION.kms",
            "an interface VPC endpoint for com.amazonaws.REGION.logs",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Environments

fn env_snippet(text: &str) -> Module {
    Module::parse(
        "envs/test",
        &[("terraform/envs/test/main.tf".to_string(), text.to_string())],
    )
    .unwrap()
}

const GOOD_ENV: &str = r#"
variable "primary_region" {
  default = "ap-northeast-1"
}
provider "aws" {
  region = var.primary_region
}
provider "aws" {
  alias  = "osaka"
  region = "ap-northeast-3"
}
module "network" {
  source = "../../modules/network"
  name   = "t"
}
module "cluster" {
  source = "../../modules/cluster"
  name   = "t"
}
module "storage" {
  source = "../../modules/storage"
  providers = {
    aws       = aws
    aws.osaka = aws.osaka
  }
  name = "t"
}
module "backup" {
  source = "../../modules/backup"
  providers = {
    aws       = aws
    aws.osaka = aws.osaka
  }
  name            = "t"
  retention_years = 20
}
module "guardrails" {
  source = "../../modules/guardrails"
  name   = "t"
}
module "audit_logging" {
  source = "../../modules/audit-logging"
  name   = "t"
}
"#;

fn broken_env(from: &str, to: &str) -> Module {
    assert!(GOOD_ENV.contains(from), "{from:?} not in the env snippet");
    env_snippet(&GOOD_ENV.replacen(from, to, 1))
}

#[test]
fn the_good_environment_passes() {
    let modules = tree();
    let env = env_snippet(GOOD_ENV);
    assert_clean(&env_wiring(&env, &modules));
    for wired in wired_modules(&env, &modules) {
        assert_clean(&check_module(&wired));
    }
}

#[test]
fn an_osaka_provider_in_another_region_is_reported() {
    let modules = tree();
    let env = broken_env("region = \"ap-northeast-3\"", "region = \"ap-northeast-1\"");
    let violations = env_wiring(&env, &modules);
    assert_reported(&violations, "env-providers");
    assert_reported(&violations, "env-wiring");
}

#[test]
fn a_module_given_the_tokyo_provider_as_osaka_is_reported() {
    let modules = tree();
    let env = broken_env(
        "aws.osaka = aws.osaka\n  }\n  name = \"t\"",
        "aws.osaka = aws\n  }\n  name = \"t\"",
    );
    let violations = env_wiring(&env, &modules);
    assert_eq!(
        rules(&violations),
        ["env-wiring"],
        "{}",
        listing(&violations)
    );
    assert_eq!(violations[0].address, "module.storage");
}

#[test]
fn a_module_missing_its_osaka_provider_is_reported() {
    let modules = tree();
    let env = broken_env(
        "  providers = {\n    aws       = aws\n    aws.osaka = aws.osaka\n  }\n  name = \"t\"",
        "  name = \"t\"",
    );
    let violations = env_wiring(&env, &modules);
    assert!(
        violations
            .iter()
            .any(|v| v.rule == "env-wiring" && v.address == "module.storage"),
        "{}",
        listing(&violations)
    );
}

#[test]
fn an_environment_without_a_required_module_is_reported() {
    let modules = tree();
    let env = broken_env(
        "source = \"../../modules/guardrails\"",
        "source = \"../../modules/elsewhere\"",
    );
    let violations = env_wiring(&env, &modules);
    assert!(violations
        .iter()
        .any(|v| v.rule == "env-wiring" && v.expected.contains("modules/guardrails")));
}

#[test]
fn an_environment_shortening_the_retention_is_reported_as_wired() {
    let modules = tree();
    let env = broken_env("retention_years = 20", "retention_years = 5");
    let violations: Vec<Violation> = wired_modules(&env, &modules)
        .iter()
        .flat_map(check_module)
        .collect();
    assert_reported(&violations, "backup-retention-20y");
    assert!(
        violations[0]
            .address
            .starts_with("module.backup (envs/test)/aws_backup_plan.daily"),
        "{}",
        listing(&violations)
    );
}

#[test]
fn an_empty_tree_is_reported_as_missing_everything() {
    let violations = required_presence(&[]);
    assert_eq!(violations.len(), 10, "{}", listing(&violations));
    assert!(violations.iter().all(|v| v.rule == "present"));
}

#[test]
fn the_agent_role_reads_widely_but_writes_only_what_an_approved_erasure_needs() {
    let modules = tree();
    let m = module(&modules, "modules/agent-identity");
    let mut actions = std::collections::BTreeSet::new();
    for doc in ["audit", "trail", "erase"] {
        for s in policy_statements(m, doc).unwrap_or_else(|| panic!("policy document {doc}")) {
            assert_eq!(s.effect, "Allow", "{doc}: {s:?}");
            assert!(s.not_actions.is_empty(), "{doc}: {s:?}");
            actions.extend(s.actions);
        }
    }
    assert!(
        actions.iter().all(|a| !a.contains('*')),
        "no wildcard actions: {actions:?}"
    );
    let not_read = |a: &&String| {
        let verb = a.split(':').nth(1).unwrap_or_default();
        !["List", "Get", "Describe"]
            .iter()
            .any(|p| verb.starts_with(p))
    };
    let writes: Vec<&str> = actions
        .iter()
        .filter(not_read)
        .map(String::as_str)
        .collect();
    // Deleting versions and scheduling key deletion (an approved erasure, with a certificate),
    // and decrypting CloudTrail's log files. Never remediation, which is a person's decision.
    assert_eq!(
        writes,
        [
            "backup:DeleteRecoveryPoint",
            "ec2:DeleteSnapshot",
            "kms:Decrypt",
            "kms:ScheduleKeyDeletion",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion"
        ]
    );
    let env = module(&modules, "envs/production");
    assert!(
        module_calls(env)
            .iter()
            .any(|c| c.target.as_deref() == Some("modules/agent-identity")),
        "production gives the agent its role"
    );
}

/// Each stack's intake gets its AWS role through the ServiceAccount the controller creates:
/// the Pod Identity association names it as kenko_api names it.
#[test]
fn the_intake_role_is_associated_with_the_service_account_the_controller_creates() {
    let text = std::fs::read_to_string(terraform_dir().join("modules/agent-identity/intake.tf"))
        .expect("the intake identity");
    let suffix = kenko_api::names::StackNames::of("STACK")
        .intake
        .strip_prefix("STACK")
        .expect("the intake's name is the stack's name and a suffix")
        .to_string();
    let want = format!("service_account = \"${{each.value.name}}{suffix}\"");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == want),
        "intake.tf associates `{want}`"
    );
}

// ---------------------------------------------------------------------------------------------
// Each HealthStack's own KMS key: the envelope of its records' data key. Decommissioning a
// stack schedules that key's deletion (primary and Osaka replica), so it must be the stack's
// alone, and only the stack's own intake may use it.

/// Two stacks, one whose namespace differs from its name, as an environment passes them.
const STACKS: &str = r#"[
  { "name": "hachioji", "namespace": "hachioji", "prefix": "hachioji" },
  { "name": "tama", "namespace": "health", "prefix": "tama" }
]"#;

fn primary_arn(n: u8) -> String {
    format!(
        "arn:aws:kms:ap-northeast-1:123456789012:key/mrk-{}",
        n.to_string().repeat(32)
    )
}

fn replica_arn(n: u8) -> String {
    format!(
        "arn:aws:kms:ap-northeast-3:123456789012:key/mrk-{}",
        n.to_string().repeat(32)
    )
}

/// The `.tf` files of one directory, with `from` replaced by `to` in `file` (when given).
fn module_edited(dir: &str, edit: Option<(&str, &str, &str)>) -> Module {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(terraform_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    paths.sort();
    let mut edited = false;
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let mut text = std::fs::read_to_string(p).unwrap();
            if let Some((file, from, to)) = edit {
                if file == name {
                    assert!(text.contains(from), "{from:?} not in {dir}/{file}");
                    text = text.replacen(from, to, 1);
                    edited = true;
                }
            }
            (format!("terraform/{dir}/{name}"), text)
        })
        .collect();
    assert!(edit.is_none() || edited, "no file {edit:?} in {dir}");
    Module::parse(dir, &files).unwrap_or_else(|err| panic!("{err}"))
}

fn overrides(json: serde_json::Value) -> hcl::Map<String, hcl::Value> {
    match hcl::to_value(json).unwrap() {
        hcl::Value::Object(map) => map,
        other => panic!("not an object: {other:?}"),
    }
}

fn storage_with_stacks(edit: Option<(&str, &str, &str)>) -> Module {
    let stacks: serde_json::Value = serde_json::from_str(STACKS).unwrap();
    module_edited("modules/storage", edit).with_overrides(
        "module.storage (stacks)/".to_string(),
        &overrides(serde_json::json!({ "name": "kenko-prod", "stacks": stacks })),
    )
}

fn agent_identity_with_stacks(edit: Option<(&str, &str, &str)>) -> Module {
    let stacks: serde_json::Value = serde_json::from_str(STACKS).unwrap();
    module_edited("modules/agent-identity", edit).with_overrides(
        "module.agent_identity (stacks)/".to_string(),
        &overrides(serde_json::json!({
            "name": "kenko-prod",
            "cluster_name": "kenko-prod",
            "trail_bucket_arn": "arn:aws:s3:::kenko-prod-trail",
            "trail_kms_key_arn": "arn:aws:kms:ap-northeast-1:123456789012:key/trail",
            "audit_log_group_arn": "arn:aws:logs:ap-northeast-1:123456789012:log-group:/aws/eks/kenko-prod/cluster",
            "data_bucket_arns": ["arn:aws:s3:::kenko-prod-records"],
            "data_kms_key_arns": [
                "arn:aws:kms:ap-northeast-1:123456789012:key/data",
                "arn:aws:kms:ap-northeast-3:123456789012:key/data-osaka"
            ],
            "intake_bucket_arn": "arn:aws:s3:::kenko-prod-intake",
            "intake_kms_key_arn": "arn:aws:kms:ap-northeast-1:123456789012:key/data",
            "stacks": stacks,
            "stack_kms_key_arns": {
                "hachioji/hachioji": primary_arn(1),
                "health/tama": primary_arn(2)
            },
            "stack_replica_kms_key_arns": {
                "hachioji/hachioji": replica_arn(1),
                "health/tama": replica_arn(2)
            }
        })),
    )
}

/// The encryption context key by which the agent names the stack on every KMS call: the key
/// of `kenko_aws::datakey::context` whose value is the `stack` argument (read from the source,
/// as this crate does not build the AWS SDK).
fn stack_context_key() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("crates/kenko-aws/src/datakey.rs"))
        .expect("the agent's data key code");
    let start = text
        .find("pub fn context(stack: &str)")
        .expect("kenko_aws::datakey::context(stack)");
    let body = &text[start..start + text[start..].find("\n}\n").expect("its end")];
    let entries: Vec<(&str, &str)> = body
        .split("(\"")
        .skip(1)
        .filter_map(|entry| {
            let (key, rest) = entry.split_once("\", ")?;
            Some((key, rest.split(')').next()?.trim()))
        })
        .collect();
    let stack: Vec<&str> = entries
        .iter()
        .filter(|(_, value)| value.starts_with("stack.") || *value == "stack")
        .map(|(key, _)| *key)
        .collect();
    assert_eq!(
        stack.len(),
        1,
        "one context entry carries the stack: {entries:?}"
    );
    stack[0].to_string()
}

fn naming() -> StackNaming {
    StackNaming {
        intake_service_account: |name| kenko_api::names::StackNames::of(name).intake,
        context_key: stack_context_key(),
        context_value: |namespace, name| {
            let mut stack = kenko_api::samples::hachioji();
            stack.metadata.namespace = Some(namespace.to_string());
            stack.metadata.name = Some(name.to_string());
            kenko_api::intake::key_context(&stack)
        },
    }
}

#[test]
fn the_names_the_key_statements_must_match_are_kenkos() {
    let naming = naming();
    assert_eq!(naming.context_key, "kenko:stack");
    assert_eq!((naming.context_value)("health", "tama"), "health/tama");
    assert_eq!((naming.intake_service_account)("tama"), "tama-intake");
}

#[test]
fn each_stack_gets_its_own_multi_region_key_with_an_osaka_replica() {
    let storage = storage_with_stacks(None);
    assert_clean(&stack_kms_keys(&storage));
    // Still every bucket and key rule, with the stacks' keys in.
    assert_clean(&check_module(&storage));
    // Nothing to check on the defaults (no stacks) is said, not passed.
    let defaults = module_edited("modules/storage", None);
    assert_eq!(rules(&stack_kms_keys(&defaults)), ["stack-kms-key"]);
}

#[test]
fn a_stack_key_that_is_not_multi_region_or_not_the_stacks_is_reported() {
    let m = storage_with_stacks(Some(("main.tf", "multi_region            = true", "")));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key");
    // One shared key for every stack.
    let m = storage_with_stacks(Some((
        "main.tf",
        "resource \"aws_kms_key\" \"stack\" {\n  for_each = local.stacks\n",
        "resource \"aws_kms_key\" \"stack\" {\n",
    )));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key");
    let m = storage_with_stacks(Some((
        "main.tf",
        "\"kenko:stack\"     = each.value.name",
        "\"kenko:stack\"     = var.name",
    )));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key");
}

#[test]
fn a_stack_key_without_its_osaka_replica_is_reported() {
    let m = storage_with_stacks(Some((
        "main.tf",
        "resource \"aws_kms_replica_key\" \"stack\" {\n  for_each = local.stacks\n  provider = aws.osaka\n",
        "resource \"aws_kms_replica_key\" \"stack\" {\n  for_each = local.stacks\n",
    )));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key-replica");
    let m = storage_with_stacks(Some((
        "main.tf",
        "primary_key_arn         = aws_kms_key.stack[each.key].arn",
        "primary_key_arn         = aws_kms_key.data.arn",
    )));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key-replica");
    let m = storage_with_stacks(Some((
        "outputs.tf",
        "replica = aws_kms_replica_key.stack[k].arn",
        "replica = key.arn",
    )));
    assert_reported(&stack_kms_keys(&m), "stack-kms-key-output");
}

#[test]
fn each_stacks_intake_may_use_its_own_key_only() {
    let m = agent_identity_with_stacks(None);
    assert_clean(&intake_stack_keys(&m, &naming()));
    let statements = policy_statements(&m, "intake").unwrap();
    let on_stack_keys: Vec<_> = statements
        .iter()
        .filter(|s| s.resources.iter().any(|r| r.contains(":key/mrk-")))
        .collect();
    // Two stacks, each: use (GenerateDataKey, Decrypt) and DescribeKey.
    assert_eq!(on_stack_keys.len(), 4, "{statements:#?}");
    // Without keys there is nothing to check, and that is said.
    let defaults = module_edited("modules/agent-identity", None);
    assert_eq!(
        rules(&intake_stack_keys(&defaults, &naming())),
        ["intake-stack-key"]
    );
}

#[test]
fn an_intake_key_statement_without_its_conditions_is_reported() {
    let naming = naming();
    for (from, to) in [
        (
            "variable = \"aws:PrincipalTag/kubernetes-namespace\"",
            "variable = \"aws:PrincipalTag/eks-cluster-name\"",
        ),
        (
            "values   = [\"${statement.value.name}-intake\"]",
            "values   = [\"${statement.value.name}\"]",
        ),
        (
            "variable = \"kms:EncryptionContext:kenko:stack\"",
            "variable = \"kms:EncryptionContext:stack\"",
        ),
        (
            "values   = [statement.key]",
            "values   = [statement.value.name]",
        ),
        ("test     = \"StringEquals\"\n        variable = \"aws:PrincipalTag/kubernetes-service-account\"",
         "test     = \"StringLike\"\n        variable = \"aws:PrincipalTag/kubernetes-service-account\""),
    ] {
        let m = agent_identity_with_stacks(Some(("intake.tf", from, to)));
        let violations = intake_stack_keys(&m, &naming);
        assert_eq!(
            rules(&violations),
            ["intake-stack-key", "intake-stack-key"],
            "{from} -> {to}: {}",
            listing(&violations)
        );
    }
}

#[test]
fn an_intake_key_statement_naming_every_stacks_key_is_reported() {
    let naming = naming();
    let m = agent_identity_with_stacks(Some((
        "intake.tf",
        "resources = [var.stack_kms_key_arns[statement.key]]",
        "resources = values(var.stack_kms_key_arns)",
    )));
    assert_reported(&intake_stack_keys(&m, &naming), "intake-stack-key");
    let m = agent_identity_with_stacks(Some((
        "intake.tf",
        "actions   = [\"kms:GenerateDataKey\", \"kms:Decrypt\"]",
        "actions   = [\"kms:GenerateDataKey\", \"kms:Decrypt\", \"kms:ScheduleKeyDeletion\"]",
    )));
    assert_reported(&intake_stack_keys(&m, &naming), "intake-stack-key");
    // DescribeKey widened to any key: reported.
    let m = agent_identity_with_stacks(Some((
        "intake.tf",
        "actions   = [\"kms:DescribeKey\"]\n      resources = [var.stack_kms_key_arns[statement.key]]",
        "actions   = [\"kms:DescribeKey\"]\n      resources = values(var.stack_kms_key_arns)",
    )));
    assert_reported(&intake_stack_keys(&m, &naming), "intake-stack-key");
    // The statements deleted: no stack's intake can unwrap its data key.
    let m = agent_identity_with_stacks(Some((
        "intake.tf",
        "dynamic \"statement\" {",
        "dynamic \"unused\" {",
    )));
    assert_reported(&intake_stack_keys(&m, &naming), "intake-stack-key");
}

#[test]
fn the_erase_role_may_schedule_both_keys_of_every_stack_for_deletion() {
    let m = agent_identity_with_stacks(None);
    assert_clean(&erase_covers_stack_keys(&m));
    let m = agent_identity_with_stacks(Some((
        "main.tf",
        "      values(var.stack_replica_kms_key_arns),\n",
        "",
    )));
    let violations = erase_covers_stack_keys(&m);
    assert_eq!(
        rules(&violations),
        ["erase-stack-keys"; 2],
        "{}",
        listing(&violations)
    );
    assert!(violations.iter().all(|v| v.expected.contains("replica")));
}

/// Production hands the same stacks to storage and agent-identity, the stacks' keys from one
/// to the other, and the primaries out for the HealthStacks' spec.storage.kmsKeyArn.
#[test]
fn production_wires_each_stacks_key_from_storage_to_its_intake_and_out() {
    let modules = tree();
    let env = module(&modules, "envs/production");
    let calls = module_calls(env);
    let argument = |call: &str, key: &str| {
        let call = calls
            .iter()
            .find(|c| c.name == call)
            .unwrap_or_else(|| panic!("module.{call}"));
        call.block
            .body()
            .attributes()
            .find(|a| a.key() == key)
            .map(|a| {
                render(a.expr())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| panic!("module.{} sets {key}", call.name))
    };
    assert_eq!(argument("storage", "stacks"), "var.stacks");
    assert_eq!(argument("agent_identity", "stacks"), "var.stacks");
    let primary = argument("agent_identity", "stack_kms_key_arns");
    assert!(
        primary.contains("module.storage.stack_kms_key_arns") && primary.contains(".primary"),
        "{primary}"
    );
    let replica = argument("agent_identity", "stack_replica_kms_key_arns");
    assert!(
        replica.contains("module.storage.stack_kms_key_arns") && replica.contains(".replica"),
        "{replica}"
    );
    let output = env
        .top_blocks("output")
        .find(|(_, b)| b.labels().first().map(|l| l.as_str()) == Some("stack_kms_key_arns"))
        .and_then(|(_, b)| b.body().attributes().find(|a| a.key() == "value"))
        .map(|a| render(a.expr()))
        .expect("production outputs stack_kms_key_arns");
    assert!(
        output.contains("module.storage.stack_kms_key_arns") && output.contains(".primary"),
        "{output}"
    );
}

/// The node agents' configuration names what Terraform creates: `terraform output
/// agent_config` renders `envs/production/agent-config.toml.tftpl` with the cluster module's
/// log group and the audit-logging module's trail bucket, and the sample ConfigMap
/// (`manifests/agent/configmap.yaml`) is that rendering for the example account; the agent
/// may read both the log group and the trail.
#[test]
fn the_agents_configuration_names_the_log_group_and_trail_terraform_creates() {
    let modules = tree();
    let account = "123456789012";
    let sub = |text: &str| {
        text.replace("${var.name}", "kenko-prod")
            .replace("${local.account_id}", account)
            .replace("${local.region}", "ap-northeast-1")
    };
    let local_text = |dir: &str, name: &str| -> String {
        let m = module(&modules, dir);
        let expr = m
            .top_blocks("locals")
            .find_map(|(_, b)| kenko_infra_tests::attr(&b.body, name))
            .unwrap_or_else(|| panic!("no local.{name} in {dir}"));
        sub(kenko_infra_tests::render(expr).trim_matches('"'))
    };
    let log_group = local_text("modules/cluster", "log_group");
    assert_eq!(log_group, "/aws/eks/kenko-prod/cluster");
    let trail_bucket = local_text("modules/audit-logging", "bucket_name");
    // The outputs the template is fed are those very names.
    let outputs =
        std::fs::read_to_string(terraform_dir().join("modules/cluster/outputs.tf")).unwrap();
    assert!(outputs.contains("aws_cloudwatch_log_group.control_plane.name"));
    let outputs =
        std::fs::read_to_string(terraform_dir().join("modules/audit-logging/outputs.tf")).unwrap();
    assert!(outputs.contains("aws_s3_bucket.trail.id"));
    let env = std::fs::read_to_string(terraform_dir().join("envs/production/outputs.tf")).unwrap();
    for wire in [
        "log_group    = module.cluster.control_plane_log_group",
        "trail_bucket = module.audit_logging.bucket",
    ] {
        assert!(env.contains(wire), "agent_config is not fed {wire}");
    }
    let template =
        std::fs::read_to_string(terraform_dir().join("envs/production/agent-config.toml.tftpl"))
            .unwrap();
    let rendered = template
        .replace("${name}", "kenko-prod")
        .replace("${account_id}", account)
        .replace("${log_group}", &log_group)
        .replace("${trail_bucket}", &trail_bucket);
    assert!(
        !rendered.contains("${"),
        "a placeholder the test does not know: {rendered}"
    );
    let cm_text =
        std::fs::read_to_string(terraform_dir().join("../manifests/agent/configmap.yaml")).unwrap();
    let cm: serde_yaml::Value = serde_yaml::from_str(&cm_text).unwrap();
    let sample = cm["data"][kenko_api::access::NODE_CONFIG_KEY]
        .as_str()
        .unwrap();
    assert_eq!(
        sample, rendered,
        "manifests/agent/configmap.yaml is not what Terraform renders"
    );
    // The agent's role may read that log group.
    let id =
        std::fs::read_to_string(terraform_dir().join("modules/agent-identity/main.tf")).unwrap();
    assert!(id.contains("\"logs:GetLogEvents\"") && id.contains("\"logs:DescribeLogStreams\""));
    let prod = std::fs::read_to_string(terraform_dir().join("envs/production/main.tf")).unwrap();
    assert!(prod.contains("audit_log_group_arn = module.cluster.control_plane_log_group_arn"));
}
