variable "name" {
  description = "Name prefix of the role (for example \"kenko-prod\")."
  type        = string
}

variable "cluster_name" {
  description = "The EKS cluster whose kenko agents get the role (from the cluster module)."
  type        = string
}

variable "namespace" {
  description = "Namespace of the agent's ServiceAccount (manifests/agent)."
  type        = string
  default     = "kenko-node"
}

variable "service_account" {
  description = "The agent's ServiceAccount (manifests/agent)."
  type        = string
  default     = "kenko-agent"
}

variable "trail_bucket_arn" {
  description = "ARN of the CloudTrail bucket (audit-logging module): the access monitor reads its log files ([access] cloudtrail_s3)."
  type        = string
}

variable "audit_log_group_arn" {
  description = "ARN of the CloudWatch Logs group holding the Kubernetes audit log (the cluster module's control_plane_log_group_arn)."
  type        = string
}

variable "trail_kms_key_arn" {
  description = "KMS key of the CloudTrail log files (audit-logging module)."
  type        = string
}

variable "data_bucket_arns" {
  description = "Buckets whose object versions the agent may erase, with a certificate, once an ErasureRequest is approved (storage module)."
  type        = list(string)
}

variable "data_kms_key_arns" {
  description = "KMS keys the agent may schedule for deletion (crypto-erase) once an ErasureRequest is approved (storage module)."
  type        = list(string)
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "intake_bucket_arn" {
  description = "ARN of the intake bucket (storage module): each stack's intake works under its prefix."
  type        = string
}

variable "intake_kms_key_arn" {
  description = "KMS key of the intake bucket (storage module's Tokyo data key)."
  type        = string
}

variable "stacks" {
  description = "The HealthStacks whose intake gets the intake role: name and namespace of the HealthStack, and its prefix of the intake bucket (spec.intake.inbox = s3://BUCKET/PREFIX/)."
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

variable "stack_kms_key_arns" {
  description = "Each stack's own KMS key, by \"namespace/name\" (the primary ARNs of the storage module's stack_kms_key_arns, as in the HealthStack's spec.storage.kmsKeyArn): that stack's intake, and only it, wraps and unwraps the stack's data key with it. A stack without an entry has no KMS key (its data key is a Secret)."
  type        = map(string)
  default     = {}
}

variable "stack_replica_kms_key_arns" {
  description = "The Osaka replicas of the stacks' keys, by \"namespace/name\" (the replica ARNs of the storage module's stack_kms_key_arns): the agent schedules them for deletion, with the primaries, to crypto-erase a decommissioned stack."
  type        = map(string)
  default     = {}
}
