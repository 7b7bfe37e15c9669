# The kenko agent's AWS identity, through EKS Pod Identity (the eks-auth VPC endpoint of the
# network module serves it without an internet path). Three policies, each the least its job
# needs:
#   - audit: the read-only calls of `kenko-agent residency audit` across every region (the
#     audit must see a bucket or snapshot wherever it is, so these are not limited to Japan),
#     and those of its backup coverage (selections, recovery points, copy jobs);
#   - trail: reading CloudTrail's log files for access monitoring;
#   - erase: deleting object versions of the stack's buckets, its tagged snapshots and recovery
#     points, and scheduling deletion of its KMS keys, which the agent does only for an
#     approved ErasureRequest, with a certificate.
# Remediation (`--remediate`) is deliberately not granted: a person runs it with their own role.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "EksPodIdentity"
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "agent" {
  name               = "${var.name}-kenko-agent"
  description        = "kenko agent: residency audit (read-only), CloudTrail reading, approved erasures"
  assume_role_policy = data.aws_iam_policy_document.trust.json

  tags = var.tags
}

data "aws_iam_policy_document" "audit" {
  #checkov:skip=CKV_AWS_356:The audit lists and describes every resource of its kind in every region to find the copy that should not exist; these read-only actions cannot be limited to known ARNs.
  statement {
    sid = "ListEverything"
    actions = [
      "s3:ListAllMyBuckets",
      "backup:ListBackupVaults",
      "backup:ListBackupPlans",
      "backup:ListCopyJobs",
      "ec2:DescribeVolumes",
      "ec2:DescribeSnapshots",
      "ec2:DescribeVpcs",
      "ec2:DescribeInternetGateways",
      "ec2:DescribeEgressOnlyInternetGateways",
      "ec2:DescribeNatGateways",
      "ec2:DescribeVpcEndpoints",
      "kms:ListKeys",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ReadBucketSettings"
    actions = [
      "s3:GetBucketLocation",
      "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration",
      "s3:GetReplicationConfiguration",
      "s3:GetBucketObjectLockConfiguration",
      "s3:GetBucketTagging",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::*"]
  }

  statement {
    sid = "ReadBackupAndKeys"
    actions = [
      "backup:GetBackupPlan",
      "backup:ListBackupSelections",
      "backup:GetBackupSelection",
      "backup:DescribeBackupVault",
      "backup:ListRecoveryPointsByBackupVault",
      "kms:DescribeKey",
    ]
    resources = [
      "arn:${data.aws_partition.current.partition}:backup:*:*:backup-plan:*",
      "arn:${data.aws_partition.current.partition}:backup:*:*:backup-vault:*",
      "arn:${data.aws_partition.current.partition}:kms:*:*:key/*",
    ]
  }
}

resource "aws_iam_role_policy" "audit" {
  name   = "residency-audit"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.audit.json
}

data "aws_iam_policy_document" "trail" {
  statement {
    sid       = "ListTrailLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.trail_bucket_arn]
  }

  statement {
    sid       = "ReadTrailLogs"
    actions   = ["s3:GetObject"]
    resources = ["${var.trail_bucket_arn}/AWSLogs/*"]
  }

  statement {
    sid       = "DecryptTrailLogs"
    actions   = ["kms:Decrypt"]
    resources = [var.trail_kms_key_arn]
  }
}

# The Kubernetes audit log in CloudWatch Logs (EKS's control plane log group): the access
# monitor lists its streams and reads their events; CloudWatch decrypts them itself.
data "aws_iam_policy_document" "k8s_audit" {
  statement {
    sid       = "ReadKubernetesAuditLog"
    actions   = ["logs:DescribeLogStreams", "logs:GetLogEvents"]
    resources = ["${var.audit_log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "k8s_audit" {
  name   = "k8s-audit-read"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.k8s_audit.json
}

resource "aws_iam_role_policy" "trail" {
  name   = "cloudtrail-read"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.trail.json
}

data "aws_iam_policy_document" "erase" {
  statement {
    sid       = "ListVersions"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration"]
    resources = var.data_bucket_arns
  }

  statement {
    sid = "DeleteVersions"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:GetObjectRetention",
      "s3:GetObjectLegalHold",
    ]
    resources = [for arn in var.data_bucket_arns : "${arn}/*"]
  }

  statement {
    sid       = "DeleteStackCopies"
    actions   = ["ec2:DeleteSnapshot", "backup:DeleteRecoveryPoint", "backup:DescribeRecoveryPoint"]
    resources = ["arn:${data.aws_partition.current.partition}:ec2:*::snapshot/*", "arn:${data.aws_partition.current.partition}:backup:*:*:recovery-point:*"]

    # Only the stack's own snapshots and recovery points (tagged by Terraform's default tags
    # and copied onto backups by the plan).
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/kenko:stack"
      values   = [var.name]
    }
  }

  # The data keys, and each stack's own key in both regions (a multi-Region primary is
  # deleted only after its replica, so decommissioning a stack schedules both).
  statement {
    sid     = "CryptoErase"
    actions = ["kms:ScheduleKeyDeletion", "kms:DescribeKey"]
    resources = concat(
      var.data_kms_key_arns,
      values(var.stack_kms_key_arns),
      values(var.stack_replica_kms_key_arns),
    )
  }
}

resource "aws_iam_role_policy" "erase" {
  name   = "approved-erasure"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.erase.json
}

resource "aws_eks_addon" "pod_identity" {
  cluster_name = var.cluster_name
  addon_name   = "eks-pod-identity-agent"

  tags = var.tags
}

resource "aws_eks_pod_identity_association" "agent" {
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.agent.arn

  tags = var.tags

  depends_on = [aws_eks_addon.pod_identity]
}
