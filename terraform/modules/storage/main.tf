# The stack's buckets. Every bucket is versioned, encrypted with a customer managed KMS key of
# its own region (rotated yearly), private (all four public access blocks), owner-enforced and
# TLS-only. One versioning, encryption and public access block resource per bucket is written
# out so a reviewer (and tests/infra) can see each.
#
#   Tokyo (aws)                          Osaka (aws.osaka)
#   records       --replication-->       records-replica
#   certificates  --replication-->       certificates-replica   (both Object Lock, COMPLIANCE)
#   intake        (the delivery inbox; transient, not replicated)
#
# Records and certificates have separate keys: crypto-erasing the records (scheduling their
# keys for deletion) must never destroy the certificates that prove the erasure.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "primary" {}

data "aws_region" "osaka" {
  provider = aws.osaka
}

locals {
  account_id     = data.aws_caller_identity.current.account_id
  partition      = data.aws_partition.current.partition
  primary_region = data.aws_region.primary.name
  osaka_region   = data.aws_region.osaka.name
  japan_regions  = ["ap-northeast-1", "ap-northeast-3"]
}

# ---------------------------------------------------------------------------------------------
# KMS keys, one per data set and region. The account administers them through IAM; S3 and the
# replication role use them through IAM policies.

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

resource "aws_kms_key" "data" {
  description             = "${var.name}: health records and intake deliveries (Tokyo)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

resource "aws_kms_key" "data_osaka" {
  provider = aws.osaka

  description             = "${var.name}: replicated health records (Osaka)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "data_osaka" {
  provider = aws.osaka

  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data_osaka.key_id
}

resource "aws_kms_key" "certificates" {
  description             = "${var.name}: erasure certificates (Tokyo)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "certificates" {
  name          = "alias/${var.name}-certificates"
  target_key_id = aws_kms_key.certificates.key_id
}

resource "aws_kms_key" "certificates_osaka" {
  provider = aws.osaka

  description             = "${var.name}: replicated erasure certificates (Osaka)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = var.tags
}

resource "aws_kms_alias" "certificates_osaka" {
  provider = aws.osaka

  name          = "alias/${var.name}-certificates"
  target_key_id = aws_kms_key.certificates_osaka.key_id
}

# ---------------------------------------------------------------------------------------------
# One KMS key per HealthStack, its own: it wraps the stack's record data key (envelope
# encryption; the agent calls kms:GenerateDataKey once and kms:Decrypt at each start, with the
# encryption context {"kenko:purpose": "record-data-key", "kenko:stack": "NAMESPACE/NAME"}).
# Its primary ARN goes into the HealthStack's spec.storage.kmsKeyArn (output
# stack_kms_key_arns). Decommissioning the stack schedules deletion of the primary and its
# Osaka replica: that crypto-erases the stack (its database, snapshots and Osaka backups) and
# no other stack, unlike the shared data key above, which encrypts every stack's buckets.
#
# Multi-Region, so that the stack's Osaka backups can be restored in Osaka if Tokyo is lost:
# the replica has the same key material and unwraps the same data key there.

locals {
  stacks = { for s in var.stacks : "${s.namespace}/${s.name}" => s }
}

resource "aws_kms_key" "stack" {
  for_each = local.stacks

  description             = "${var.name}: HealthStack ${each.key}'s own key, wrapping its records' data key (Tokyo primary; deleting it and its replica crypto-erases the stack)"
  multi_region            = true
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = merge(var.tags, {
    "kenko:stack"     = each.value.name
    "kenko:namespace" = each.value.namespace
    "kenko:data"      = "stack-data-key"
  })
}

# Alias names take '/', which a namespace or name cannot contain, so no two stacks collide.
resource "aws_kms_alias" "stack" {
  for_each = local.stacks

  name          = "alias/${var.name}-stack/${each.value.namespace}/${each.value.name}"
  target_key_id = aws_kms_key.stack[each.key].key_id
}

resource "aws_kms_replica_key" "stack" {
  for_each = local.stacks
  provider = aws.osaka

  description             = "${var.name}: HealthStack ${each.key}'s own key (Osaka replica, restores its Osaka backups)"
  primary_key_arn         = aws_kms_key.stack[each.key].arn
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_administration.json

  tags = merge(var.tags, {
    "kenko:stack"      = each.value.name
    "kenko:namespace"  = each.value.namespace
    "kenko:data"       = "stack-data-key"
    "kenko:replica-of" = "stack-data-key"
  })
}

resource "aws_kms_alias" "stack_osaka" {
  for_each = local.stacks
  provider = aws.osaka

  name          = "alias/${var.name}-stack/${each.value.namespace}/${each.value.name}"
  target_key_id = aws_kms_replica_key.stack[each.key].key_id
}

# ---------------------------------------------------------------------------------------------
# records (Tokyo): exports and files of the health management system.

resource "aws_s3_bucket" "records" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by the CloudTrail S3 data events (modules/audit-logging).
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications; the agent lists the bucket.
  bucket = "${var.name}-records-${local.account_id}-${local.primary_region}"

  # kenko:backup = true puts it into the backup module's plan (its selection_tag): daily
  # recovery points, copied to Osaka.
  tags = merge(var.tags, { "kenko:data" = "records", "kenko:backup" = "true" })
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
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "records" {
  bucket = aws_s3_bucket.records.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "records" {
  bucket = aws_s3_bucket.records.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.records]
}

# ---------------------------------------------------------------------------------------------
# intake (Tokyo): the inbox medical institutions deliver the monthly CSV files into.

resource "aws_s3_bucket" "intake" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by the CloudTrail S3 data events (modules/audit-logging).
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications; the agent lists the bucket.
  #checkov:skip=CKV_AWS_144:Deliveries are transient (taken in and moved within minutes); they stay in Tokyo on purpose.
  bucket = "${var.name}-intake-${local.account_id}-${local.primary_region}"

  tags = merge(var.tags, { "kenko:data" = "intake" })
}

resource "aws_s3_bucket_versioning" "intake" {
  bucket = aws_s3_bucket.intake.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "intake" {
  bucket = aws_s3_bucket.intake.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "intake" {
  bucket = aws_s3_bucket.intake.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "intake" {
  bucket = aws_s3_bucket.intake.id

  rule {
    id     = "expire-replaced-deliveries"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.intake_noncurrent_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.intake]
}

# ---------------------------------------------------------------------------------------------
# certificates (Tokyo): erasure certificates, WORM (Object Lock, COMPLIANCE mode).

resource "aws_s3_bucket" "certificates" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by the CloudTrail S3 data events (modules/audit-logging).
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications; the agent lists the bucket.
  #checkov:skip=CKV2_AWS_61:Every version is kept (Object Lock or replica of a versioned source); nothing to expire.
  bucket              = "${var.name}-certificates-${local.account_id}-${local.primary_region}"
  object_lock_enabled = true

  tags = merge(var.tags, { "kenko:data" = "certificates" })
}

resource "aws_s3_bucket_versioning" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.certificates.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_object_lock_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  rule {
    default_retention {
      mode  = "COMPLIANCE"
      years = var.certificate_retention_years
    }
  }

  depends_on = [aws_s3_bucket_versioning.certificates]
}

# ---------------------------------------------------------------------------------------------
# records-replica (Osaka)

resource "aws_s3_bucket" "records_replica" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by the CloudTrail S3 data events (modules/audit-logging).
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications; the agent lists the bucket.
  #checkov:skip=CKV2_AWS_61:Every version is kept (Object Lock or replica of a versioned source); nothing to expire.
  provider = aws.osaka

  bucket = "${var.name}-records-${local.account_id}-${local.osaka_region}"

  tags = merge(var.tags, { "kenko:data" = "records", "kenko:replica-of" = "records" })
}

resource "aws_s3_bucket_versioning" "records_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.records_replica.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "records_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.records_replica.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data_osaka.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "records_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.records_replica.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ---------------------------------------------------------------------------------------------
# certificates-replica (Osaka): WORM as well, so a replicated certificate keeps its lock.

resource "aws_s3_bucket" "certificates_replica" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by the CloudTrail S3 data events (modules/audit-logging).
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications; the agent lists the bucket.
  #checkov:skip=CKV2_AWS_61:Every version is kept (Object Lock or replica of a versioned source); nothing to expire.
  provider = aws.osaka

  bucket              = "${var.name}-certificates-${local.account_id}-${local.osaka_region}"
  object_lock_enabled = true

  tags = merge(var.tags, { "kenko:data" = "certificates", "kenko:replica-of" = "certificates" })
}

resource "aws_s3_bucket_versioning" "certificates_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.certificates_replica.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "certificates_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.certificates_replica.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.certificates_osaka.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "certificates_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.certificates_replica.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_object_lock_configuration" "certificates_replica" {
  provider = aws.osaka

  bucket = aws_s3_bucket.certificates_replica.id

  rule {
    default_retention {
      mode  = "COMPLIANCE"
      years = var.certificate_retention_years
    }
  }

  depends_on = [aws_s3_bucket_versioning.certificates_replica]
}

# ---------------------------------------------------------------------------------------------
# Ownership and transport, the same for every bucket: ACLs disabled, TLS required.

locals {
  tokyo_buckets = {
    records      = aws_s3_bucket.records
    intake       = aws_s3_bucket.intake
    certificates = aws_s3_bucket.certificates
  }
  osaka_buckets = {
    records_replica      = aws_s3_bucket.records_replica
    certificates_replica = aws_s3_bucket.certificates_replica
  }
}

resource "aws_s3_bucket_ownership_controls" "tokyo" {
  for_each = local.tokyo_buckets

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_ownership_controls" "osaka" {
  for_each = local.osaka_buckets
  provider = aws.osaka

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = merge(local.tokyo_buckets, local.osaka_buckets)

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tokyo" {
  for_each = local.tokyo_buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.records, aws_s3_bucket_public_access_block.intake, aws_s3_bucket_public_access_block.certificates]
}

resource "aws_s3_bucket_policy" "osaka" {
  for_each = local.osaka_buckets
  provider = aws.osaka

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.records_replica, aws_s3_bucket_public_access_block.certificates_replica]
}

# ---------------------------------------------------------------------------------------------
# Replication Tokyo -> Osaka (a different Japanese region; checked before anything is changed).

data "aws_iam_policy_document" "replication_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  name_prefix        = "${var.name}-s3-replication-"
  assume_role_policy = data.aws_iam_policy_document.replication_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadSourceConfiguration"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket", "s3:GetObjectLockConfiguration"]
    resources = [aws_s3_bucket.records.arn, aws_s3_bucket.certificates.arn]
  }

  statement {
    sid = "ReadSourceVersions"
    actions = [
      "s3:GetObjectVersionForReplication",
      "s3:GetObjectVersionAcl",
      "s3:GetObjectVersionTagging",
      "s3:GetObjectRetention",
      "s3:GetObjectLegalHold",
    ]
    resources = ["${aws_s3_bucket.records.arn}/*", "${aws_s3_bucket.certificates.arn}/*"]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner"]
    resources = ["${aws_s3_bucket.records_replica.arn}/*", "${aws_s3_bucket.certificates_replica.arn}/*"]
  }

  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn, aws_kms_key.certificates.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.primary_region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "EncryptReplicas"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data_osaka.arn, aws_kms_key.certificates_osaka.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.osaka_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  name   = "replicate-to-osaka"
  role   = aws_iam_role.replication.id
  policy = data.aws_iam_policy_document.replication.json
}

resource "aws_s3_bucket_replication_configuration" "records" {
  bucket = aws_s3_bucket.records.id
  role   = aws_iam_role.replication.arn

  rule {
    id       = "records-to-osaka"
    status   = "Enabled"
    priority = 1

    filter {}

    delete_marker_replication {
      status = "Enabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = aws_s3_bucket.records_replica.arn
      storage_class = "STANDARD_IA"

      encryption_configuration {
        replica_kms_key_id = aws_kms_key.data_osaka.arn
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(local.japan_regions, local.primary_region) && contains(local.japan_regions, local.osaka_region) && local.primary_region != local.osaka_region
      error_message = "Replication must go from one Japanese region to the other: aws must be ap-northeast-1 or ap-northeast-3 and aws.osaka the other one."
    }
  }

  depends_on = [aws_s3_bucket_versioning.records, aws_s3_bucket_versioning.records_replica]
}

resource "aws_s3_bucket_replication_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id
  role   = aws_iam_role.replication.arn

  rule {
    id       = "certificates-to-osaka"
    status   = "Enabled"
    priority = 1

    filter {}

    delete_marker_replication {
      status = "Enabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = aws_s3_bucket.certificates_replica.arn
      storage_class = "STANDARD_IA"

      encryption_configuration {
        replica_kms_key_id = aws_kms_key.certificates_osaka.arn
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(local.japan_regions, local.primary_region) && contains(local.japan_regions, local.osaka_region) && local.primary_region != local.osaka_region
      error_message = "Replication must go from one Japanese region to the other: aws must be ap-northeast-1 or ap-northeast-3 and aws.osaka the other one."
    }
  }

  depends_on = [
    aws_s3_bucket_versioning.certificates,
    aws_s3_bucket_versioning.certificates_replica,
    aws_s3_bucket_object_lock_configuration.certificates_replica,
  ]
}
