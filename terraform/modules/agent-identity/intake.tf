# Each HealthStack's intake (the Deployment NAME-intake that kenko-controller creates, with
# its ServiceAccount NAME-intake in the stack's namespace): it lists, reads, copies and
# deletes the stack's deliveries under its prefix of the intake bucket and writes its reports
# there. One role for every stack's intake, and one Pod Identity association per stack; the
# ServiceAccount name is kenko_api::names::StackNames::intake (tests/infra checks the two
# agree).

resource "aws_iam_role" "intake" {
  name               = "${var.name}-kenko-intake"
  description        = "kenko intake: each HealthStack's deliveries in the intake bucket"
  assume_role_policy = data.aws_iam_policy_document.trust.json

  tags = var.tags
}

data "aws_iam_policy_document" "intake" {
  statement {
    sid       = "ListTheStacksPrefixes"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [var.intake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for s in var.stacks : ["${s.prefix}/*", "${s.prefix}/"]])
    }
  }

  statement {
    sid = "DeliveriesAndReports"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
    ]
    resources = [for s in var.stacks : "${var.intake_bucket_arn}/${s.prefix}/*"]
  }

  statement {
    sid       = "TheBucketsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.intake_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "intake" {
  name   = "intake"
  role   = aws_iam_role.intake.id
  policy = data.aws_iam_policy_document.intake.json
}

resource "aws_eks_pod_identity_association" "intake" {
  for_each = { for s in var.stacks : "${s.namespace}/${s.name}" => s }

  cluster_name    = var.cluster_name
  namespace       = each.value.namespace
  service_account = "${each.value.name}-intake"
  role_arn        = aws_iam_role.intake.arn

  tags = var.tags

  depends_on = [aws_eks_addon.pod_identity]
}
