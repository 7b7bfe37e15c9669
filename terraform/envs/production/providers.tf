# aws        : production, Tokyo (ap-northeast-1).
# aws.osaka  : backups and replicas, Osaka (ap-northeast-3), a different Japanese data centre.
# aws.organization : the organization's management account (service control policies), Tokyo.
# Every provider refuses to touch any account but the one named.

provider "aws" {
  region              = var.primary_region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias               = "osaka"
  region              = var.backup_region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "organization"
  region = var.primary_region

  dynamic "assume_role" {
    for_each = var.organization_role_arn == null ? [] : [var.organization_role_arn]

    content {
      role_arn     = assume_role.value
      session_name = "kenko-guardrails"
    }
  }

  default_tags {
    tags = local.tags
  }
}
