variable "name" {
  description = "Name prefix of the service control policies (for example \"kenko-prod\")."
  type        = string
}

variable "target_ids" {
  description = "Organization root, organizational unit or account IDs the policies are attached to (the municipality's Government Cloud account or its OU)."
  type        = list(string)

  validation {
    condition     = length(var.target_ids) > 0 && alltrue([for id in var.target_ids : can(regex("^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|[0-9]{12})$", id))])
    error_message = "target_ids must be organization root (r-...), OU (ou-...) or 12-digit account IDs."
  }
}

variable "allowed_regions" {
  description = "The only regions in which regional AWS APIs may be called: Tokyo and Osaka."
  type        = list(string)
  default     = ["ap-northeast-1", "ap-northeast-3"]

  validation {
    condition     = length(var.allowed_regions) > 0 && alltrue([for region in var.allowed_regions : contains(["ap-northeast-1", "ap-northeast-3"], region)])
    error_message = "allowed_regions may only contain ap-northeast-1 (Tokyo) and ap-northeast-3 (Osaka)."
  }
}

variable "exempt_role_arns" {
  description = "IAM role ARN patterns exempt from the region restriction (for example an organization break-glass role). Empty by default."
  type        = list(string)
  default     = []
}

variable "administrator_role_arns" {
  description = "IAM role ARN patterns that may still delete or stop a CloudTrail trail (the organization's break-glass administrators)."
  type        = list(string)
  default     = ["arn:aws:iam::*:role/OrganizationAccountAccessRole"]

  validation {
    condition     = length(var.administrator_role_arns) > 0
    error_message = "administrator_role_arns must name at least one role pattern (an empty list would make ArnNotLike match everyone)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
