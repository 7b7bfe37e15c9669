# Production: the stack in Tokyo, replicas and backup copies in Osaka, guardrails from the
# organization's management account. Apply from a terminal on the closed network.

data "aws_caller_identity" "current" {}

locals {
  tags = merge(var.tags, {
    "kenko:stack"       = var.name
    "kenko:environment" = "production"
    "kenko:managed-by"  = "terraform"
  })
}

module "network" {
  source = "../../modules/network"

  name               = var.name
  vpc_cidr           = var.vpc_cidr
  availability_zones = var.availability_zones
}

module "cluster" {
  source = "../../modules/cluster"

  name                 = var.name
  kubernetes_version   = var.kubernetes_version
  vpc_id               = module.network.vpc_id
  vpc_cidr             = module.network.vpc_cidr
  subnet_ids           = module.network.private_subnet_ids
  operator_cidrs       = var.operator_cidrs
  admin_principal_arns = var.cluster_admin_role_arns
}

module "storage" {
  source = "../../modules/storage"
  providers = {
    aws       = aws
    aws.osaka = aws.osaka
  }

  name                        = var.name
  certificate_retention_years = var.certificate_retention_years
  stacks                      = var.stacks
}

module "backup" {
  source = "../../modules/backup"
  providers = {
    aws       = aws
    aws.osaka = aws.osaka
  }

  name            = var.name
  retention_years = var.backup_retention_years
}

module "audit_logging" {
  source = "../../modules/audit-logging"

  name                = var.name
  log_retention_years = var.audit_log_retention_years
}

module "agent_identity" {
  source = "../../modules/agent-identity"

  name              = var.name
  cluster_name      = module.cluster.cluster_name
  trail_bucket_arn  = module.audit_logging.bucket_arn
  trail_kms_key_arn = module.audit_logging.kms_key_arn
  data_bucket_arns  = module.storage.bucket_arns
  data_kms_key_arns = values(module.storage.data_kms_key_arns)

  # The Kubernetes audit log the access monitor reads.
  audit_log_group_arn = module.cluster.control_plane_log_group_arn

  intake_bucket_arn  = module.storage.intake_bucket_arn
  intake_kms_key_arn = module.storage.data_kms_key_arns[var.primary_region]
  stacks             = var.stacks

  # Each stack's own key: its intake wraps the data key with the primary; an approved
  # decommissioning schedules both for deletion.
  stack_kms_key_arns         = { for k, key in module.storage.stack_kms_key_arns : k => key.primary }
  stack_replica_kms_key_arns = { for k, key in module.storage.stack_kms_key_arns : k => key.replica }
}

module "guardrails" {
  source = "../../modules/guardrails"
  providers = {
    aws = aws.organization
  }

  name       = var.name
  target_ids = var.scp_target_ids
}

# No bucket of the account can be made public, whatever a bucket's own settings say.
resource "aws_s3_account_public_access_block" "this" {
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}
