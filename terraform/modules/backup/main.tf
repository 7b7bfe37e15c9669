# AWS Backup: a vault in Tokyo (where the backups are taken) and a vault in Osaka (a different
# Japanese data centre), each encrypted with a customer managed key of its region, and a plan
# that backs up every tagged resource daily, copies every recovery point to Osaka, moves both
# to cold storage and keeps them for at least 20 years.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "primary" {}

data "aws_region" "osaka" {
  provider = aws.osaka
}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  japan_regions = ["ap-northeast-1", "ap-northeast-3"]
  # Whole years, leap days included: 20 years = 7305 days (the audit's floor is 7300).
  retention_days = ceil(var.retention_years * 365.25)
}

# The account administers the vault keys through IAM; AWS Backup uses them through grants.
data "aws_iam_policy_document" "key_administration" {
  #checkov:skip=CKV_AWS_109:In a key policy, Resource "*" means this key only.
  #checkov:skip=CKV_AWS_111:In a key policy, Resource "*" means this key only.
  #checkov:skip=CKV_AWS_356:In a key policy, Resource "*" means this key only.

  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "backup" {
  description             = "${var.name}: AWS Backup vault (Tokyo)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "backup" {
  name          = "alias/${var.name}-backup"
  target_key_id = aws_kms_key.backup.key_id
}

resource "aws_kms_key" "backup_osaka" {
  provider = aws.osaka

  description             = "${var.name}: AWS Backup vault (Osaka copies)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "backup_osaka" {
  provider = aws.osaka

  name          = "alias/${var.name}-backup"
  target_key_id = aws_kms_key.backup_osaka.key_id
}

resource "aws_backup_vault" "tokyo" {
  name        = "${var.name}-tokyo"
  kms_key_arn = aws_kms_key.backup.arn

  tags = var.tags
}

resource "aws_backup_vault" "osaka" {
  provider = aws.osaka

  name        = "${var.name}-osaka"
  kms_key_arn = aws_kms_key.backup_osaka.arn

  tags = var.tags
}

resource "aws_backup_plan" "daily" {
  name = "${var.name}-daily"

  rule {
    rule_name         = "daily-copy-to-osaka"
    target_vault_name = aws_backup_vault.tokyo.name
    schedule          = var.schedule
    start_window      = 60
    completion_window = 360

    lifecycle {
      cold_storage_after                        = var.cold_storage_after_days
      delete_after                              = local.retention_days
      opt_in_to_archive_for_supported_resources = true
    }

    copy_action {
      destination_vault_arn = aws_backup_vault.osaka.arn

      lifecycle {
        cold_storage_after                        = var.cold_storage_after_days
        delete_after                              = local.retention_days
        opt_in_to_archive_for_supported_resources = true
      }
    }

    recovery_point_tags = merge(var.tags, { "kenko:backup-plan" = "${var.name}-daily" })
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.retention_days >= var.cold_storage_after_days + 90
      error_message = "AWS Backup keeps a recovery point at least 90 days in cold storage: retention must be at least cold_storage_after_days + 90 days."
    }

    precondition {
      condition     = contains(local.japan_regions, data.aws_region.primary.name) && contains(local.japan_regions, data.aws_region.osaka.name) && data.aws_region.primary.name != data.aws_region.osaka.name
      error_message = "Backups are copied from one Japanese region to the other: aws must be ap-northeast-1 or ap-northeast-3 and aws.osaka the other one."
    }
  }
}

data "aws_iam_policy_document" "backup_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["backup.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "backup" {
  name_prefix        = "${var.name}-backup-"
  assume_role_policy = data.aws_iam_policy_document.backup_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "backup" {
  for_each = toset([
    "service-role/AWSBackupServiceRolePolicyForBackup",
    "service-role/AWSBackupServiceRolePolicyForRestores",
    "AWSBackupServiceRolePolicyForS3Backup",
    "AWSBackupServiceRolePolicyForS3Restore",
  ])

  role       = aws_iam_role.backup.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_backup_selection" "tagged" {
  name         = "${var.name}-tagged"
  plan_id      = aws_backup_plan.daily.id
  iam_role_arn = aws_iam_role.backup.arn

  selection_tag {
    type  = "STRINGEQUALS"
    key   = var.selection_tag
    value = "true"
  }
}
