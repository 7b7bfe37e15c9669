output "records_bucket" {
  description = "Name of the records bucket (Tokyo)."
  value       = aws_s3_bucket.records.id
}

output "intake_bucket" {
  description = "Name of the intake inbox bucket (Tokyo)."
  value       = aws_s3_bucket.intake.id
}

output "intake_bucket_arn" {
  description = "ARN of the intake inbox bucket (Tokyo)."
  value       = aws_s3_bucket.intake.arn
}

output "certificates_bucket" {
  description = "Name of the erasure certificate bucket (Tokyo, Object Lock COMPLIANCE)."
  value       = aws_s3_bucket.certificates.id
}

output "records_replica_bucket" {
  description = "Name of the records replica bucket (Osaka)."
  value       = aws_s3_bucket.records_replica.id
}

output "certificates_replica_bucket" {
  description = "Name of the certificate replica bucket (Osaka, Object Lock COMPLIANCE)."
  value       = aws_s3_bucket.certificates_replica.id
}

output "bucket_arns" {
  description = "ARNs of every bucket of the module (both regions)."
  value = [
    aws_s3_bucket.records.arn,
    aws_s3_bucket.intake.arn,
    aws_s3_bucket.certificates.arn,
    aws_s3_bucket.records_replica.arn,
    aws_s3_bucket.certificates_replica.arn,
  ]
}

output "data_kms_key_arns" {
  description = "KMS keys of the records and intake data, by region (scheduling them for deletion crypto-erases every copy)."
  value = {
    (data.aws_region.primary.name) = aws_kms_key.data.arn
    (data.aws_region.osaka.name)   = aws_kms_key.data_osaka.arn
  }
}

output "certificate_kms_key_arns" {
  description = "KMS keys of the erasure certificates, by region."
  value = {
    (data.aws_region.primary.name) = aws_kms_key.certificates.arn
    (data.aws_region.osaka.name)   = aws_kms_key.certificates_osaka.arn
  }
}

output "stack_kms_key_arns" {
  description = "Each HealthStack's own multi-Region KMS key, by \"namespace/name\": primary (Tokyo) goes into the HealthStack's spec.storage.kmsKeyArn; replica (Osaka) has the same key material. Scheduling deletion of both crypto-erases the stack (its database, snapshots and Osaka backups) and no other stack."
  value = {
    for k, key in aws_kms_key.stack : k => {
      primary = key.arn
      replica = aws_kms_replica_key.stack[k].arn
    }
  }
}
