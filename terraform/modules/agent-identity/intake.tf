# Each HealthStack's intake (the Deployment NAME-intake that kenko-controller creates, with
# its ServiceAccount NAME-intake in the stack's namespace): it lists, reads, copies and
# deletes the stack's deliveries under its prefix of the intake bucket and writes its reports
# there. One role for every stack's intake, and one Pod Identity association per stack; the
# ServiceAccount name is kenko_api::names::StackNames::intake (tests/infra checks the two
# agree). Each stack with its own KMS key also wraps and unwraps its records' data key with
# that key, and no other stack's.

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

  # Retention deletes every version of an expired original through the erasure engine, which
  # asks the bucket's region first (GetBucketLocation: not a prefix-scoped action).
  statement {
    sid       = "TheBucketsRegion"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.intake_bucket_arn]
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

  # Each stack's own KMS key (var.stack_kms_key_arns, the storage module's stack_kms_key_arns):
  # the stack's intake wraps its records' data key once (kms:GenerateDataKey) and unwraps it at
  # each start (kms:Decrypt). One statement per stack, naming that stack's key only. This role
  # is shared by every stack's intake, so the conditions are what keep one stack's pod off
  # another stack's key:
  #   - aws:PrincipalTag/kubernetes-namespace and aws:PrincipalTag/kubernetes-service-account:
  #     session tags EKS Pod Identity puts on the role session (its "List of session tags
  #     added by EKS Pod Identity": eks-cluster-arn, eks-cluster-name, kubernetes-namespace,
  #     kubernetes-service-account, kubernetes-pod-name, kubernetes-pod-uid;
  #     https://docs.aws.amazon.com/eks/latest/userguide/pod-id-abac.html). The associations
  #     below leave session tags on (disableSessionTags unset); turned off, this allows nothing.
  #   - kms:EncryptionContext:kenko:stack: the agent sends the encryption context
  #     {"kenko:purpose": "record-data-key", "kenko:stack": "NAMESPACE/NAME"} on every call
  #     (crates/kenko-aws/src/datakey.rs). A context key may hold colons, as AWS's own do
  #     (kms:EncryptionContext:aws:s3:arn).
  dynamic "statement" {
    for_each = {
      for s in var.stacks : "${s.namespace}/${s.name}" => s
      if contains(keys(var.stack_kms_key_arns), "${s.namespace}/${s.name}")
    }

    content {
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.stack_kms_key_arns[statement.key]]

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalTag/kubernetes-namespace"
        values   = [statement.value.namespace]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalTag/kubernetes-service-account"
        values   = ["${statement.value.name}-intake"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kenko:stack"
        values   = [statement.key]
      }
    }
  }

  # The intake asks for its key's state before unwrapping (a key pending deletion or disabled
  # is named in one line). DescribeKey carries no encryption context: the session tags alone.
  dynamic "statement" {
    for_each = {
      for s in var.stacks : "${s.namespace}/${s.name}" => s
      if contains(keys(var.stack_kms_key_arns), "${s.namespace}/${s.name}")
    }

    content {
      actions   = ["kms:DescribeKey"]
      resources = [var.stack_kms_key_arns[statement.key]]

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalTag/kubernetes-namespace"
        values   = [statement.value.namespace]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalTag/kubernetes-service-account"
        values   = ["${statement.value.name}-intake"]
      }
    }
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
