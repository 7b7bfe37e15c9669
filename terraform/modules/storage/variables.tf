variable "name" {
  description = "Name prefix of the buckets and keys (for example \"kenko-prod\"). Bucket names add the purpose, the account ID and the region."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name))
    error_message = "name must be 3-16 lower-case letters, digits or hyphens, starting with a letter (bucket names are at most 63 characters)."
  }
}

variable "certificate_retention_years" {
  description = "Years every erasure certificate is kept under S3 Object Lock in COMPLIANCE mode: nobody, not even the account root, can delete or overwrite it before then."
  type        = number
  default     = 20

  validation {
    condition     = var.certificate_retention_years >= 20 && var.certificate_retention_years <= 100 && floor(var.certificate_retention_years) == var.certificate_retention_years
    error_message = "certificate_retention_years must be a whole number from 20 to 100."
  }
}

variable "intake_noncurrent_days" {
  description = "Days a replaced or deleted intake delivery is kept as a noncurrent version before S3 expires it."
  type        = number
  default     = 30

  validation {
    condition     = var.intake_noncurrent_days >= 1
    error_message = "intake_noncurrent_days must be at least 1."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "stacks" {
  description = "The HealthStacks of the cluster: name and namespace of the HealthStack, and its prefix of the intake bucket (the same list as agent-identity's). Each gets its own multi-Region KMS key (stack_kms_key_arns) for its records' data key."
  type = list(object({
    name      = string
    namespace = string
    prefix    = string
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.stacks : can(regex("^[a-z0-9][a-z0-9-]*$", s.prefix))])
    error_message = "Each stack's prefix is one path segment of lower-case letters, digits and '-' (no slash, no wildcard)."
  }
}
