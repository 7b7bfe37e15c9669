variable "account_id" {
  description = "The municipality's Government Cloud AWS account ID (the providers refuse any other)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account ID."
  }
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "kenko-prod"
}

variable "primary_region" {
  description = "Production region. Always Tokyo."
  type        = string
  default     = "ap-northeast-1"

  validation {
    condition     = var.primary_region == "ap-northeast-1"
    error_message = "primary_region must be ap-northeast-1 (Tokyo): data stays in Japan and production runs in Tokyo."
  }
}

variable "backup_region" {
  description = "Region of the backup copies and replicas: a different Japanese data centre. Always Osaka."
  type        = string
  default     = "ap-northeast-3"

  validation {
    condition     = var.backup_region == "ap-northeast-3" && var.backup_region != var.primary_region
    error_message = "backup_region must be ap-northeast-3 (Osaka): backups stay in Japan, in a different region from production."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the production VPC (must not overlap the closed network)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Tokyo availability zones of the private subnets."
  type        = list(string)
  default     = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]

  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, "ap-northeast-1")])
    error_message = "availability_zones must all be in ap-northeast-1 (Tokyo)."
  }
}

variable "operator_cidrs" {
  description = "Closed-network CIDR blocks of the operators' terminals allowed to reach the private Kubernetes API."
  type        = list(string)
  default     = []
}

variable "cluster_admin_role_arns" {
  description = "IAM roles of the operators who administer the EKS cluster (access entries with AmazonEKSClusterAdminPolicy)."
  type        = list(string)
  default     = []
}

variable "kubernetes_version" {
  description = "Kubernetes version of the EKS cluster."
  type        = string
  default     = "1.33"
}

variable "backup_retention_years" {
  description = "Years every backup and its Osaka copy are kept (at least 20)."
  type        = number
  default     = 20

  validation {
    condition     = var.backup_retention_years >= 20
    error_message = "backup_retention_years must be at least 20."
  }
}

variable "certificate_retention_years" {
  description = "Years every erasure certificate is locked (Object Lock COMPLIANCE)."
  type        = number
  default     = 20

  validation {
    condition     = var.certificate_retention_years >= 20
    error_message = "certificate_retention_years must be at least 20."
  }
}

variable "audit_log_retention_years" {
  description = "Years every CloudTrail log file is locked (Object Lock COMPLIANCE)."
  type        = number
  default     = 10

  validation {
    condition     = var.audit_log_retention_years >= 1
    error_message = "audit_log_retention_years must be at least 1."
  }
}

variable "scp_target_ids" {
  description = "Organization root, OU or account IDs the service control policies are attached to (usually the production account)."
  type        = list(string)
}

variable "organization_role_arn" {
  description = "Role in the organization's management account to assume for the service control policies; null to use the current credentials (when they already are the management account's)."
  type        = string
  default     = null
}

variable "stacks" {
  description = "The HealthStacks of the cluster (name, namespace, and prefix of the intake bucket): each one's intake gets the intake role through EKS Pod Identity, and each gets its own KMS key (output stack_kms_key_arns)."
  type = list(object({
    name      = string
    namespace = string
    prefix    = string
  }))
  default = []
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
