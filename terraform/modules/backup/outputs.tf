output "vault_arns" {
  description = "Backup vaults by region: Tokyo takes the backups, Osaka keeps the copies."
  value = {
    (data.aws_region.primary.name) = aws_backup_vault.tokyo.arn
    (data.aws_region.osaka.name)   = aws_backup_vault.osaka.arn
  }
}

output "plan_id" {
  description = "ID of the daily backup plan."
  value       = aws_backup_plan.daily.id
}

output "retention_days" {
  description = "Days every recovery point and its copy are kept."
  value       = local.retention_days
}

output "selection_tag" {
  description = "Tag (value \"true\") that puts a resource into the backup plan."
  value       = var.selection_tag
}
