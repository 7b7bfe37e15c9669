output "vpc_id" {
  description = "The production VPC (no internet path)."
  value       = module.network.vpc_id
}

output "cluster_name" {
  description = "The EKS cluster (private endpoint only)."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "Private Kubernetes API endpoint."
  value       = module.cluster.cluster_endpoint
}

output "buckets" {
  description = "The stack's buckets."
  value = {
    records              = module.storage.records_bucket
    intake               = module.storage.intake_bucket
    certificates         = module.storage.certificates_bucket
    records_replica      = module.storage.records_replica_bucket
    certificates_replica = module.storage.certificates_replica_bucket
    audit_log            = module.audit_logging.bucket
  }
}

output "backup_vault_arns" {
  description = "Backup vaults by region."
  value       = module.backup.vault_arns
}

output "backup_retention_days" {
  description = "Days every backup and its Osaka copy are kept."
  value       = module.backup.retention_days
}

output "trail_arn" {
  description = "The CloudTrail trail."
  value       = module.audit_logging.trail_arn
}

output "agent_role_arn" {
  description = "The kenko agent's IAM role (EKS Pod Identity for kenko-node/kenko-agent)."
  value       = module.agent_identity.role_arn
}

output "stack_kms_key_arns" {
  description = "Each HealthStack's spec.storage.kmsKeyArn, by \"namespace/name\": the primary (Tokyo) of the stack's own multi-Region key (storage module's stack_kms_key_arns), never the shared data key."
  value       = { for k, key in module.storage.stack_kms_key_arns : k => key.primary }
}

output "agent_config" {
  description = "The node agents' configuration: the kenko.toml of manifests/agent/configmap.yaml (the audit log group and the trail's prefix, as this environment names them)."
  value = templatefile("${path.module}/agent-config.toml.tftpl", {
    name         = var.name
    account_id   = data.aws_caller_identity.current.account_id
    log_group    = module.cluster.control_plane_log_group
    trail_bucket = module.audit_logging.bucket
  })
}
