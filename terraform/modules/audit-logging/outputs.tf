output "trail_arn" {
  description = "ARN of the CloudTrail trail."
  value       = aws_cloudtrail.this.arn
}

output "bucket" {
  description = "Name of the locked CloudTrail bucket."
  value       = aws_s3_bucket.trail.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the log files."
  value       = aws_kms_key.trail.arn
}

output "bucket_arn" {
  description = "ARN of the locked CloudTrail bucket (the agent reads its log files)."
  value       = aws_s3_bucket.trail.arn
}
