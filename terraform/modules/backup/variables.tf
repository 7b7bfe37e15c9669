variable "name" {
  description = "Name prefix of the vaults, the plan and the keys (for example \"kenko-prod\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "retention_years" {
  description = "Years every recovery point (and its Osaka copy) is kept. The city's promise is at least 20 years."
  type        = number
  default     = 20

  validation {
    condition     = var.retention_years >= 20 && floor(var.retention_years) == var.retention_years
    error_message = "retention_years must be a whole number of at least 20."
  }
}

variable "cold_storage_after_days" {
  description = "Days after which a recovery point moves to cold storage (for the resource types that support it). AWS requires the retention to be at least 90 days longer."
  type        = number
  default     = 90

  validation {
    condition     = var.cold_storage_after_days >= 1 && floor(var.cold_storage_after_days) == var.cold_storage_after_days
    error_message = "cold_storage_after_days must be a whole number of at least 1."
  }
}

variable "schedule" {
  description = "When the daily backup starts (AWS cron expression, UTC). The default is 02:00 in Japan (17:00 UTC)."
  type        = string
  default     = "cron(0 17 * * ? *)"

  validation {
    condition     = startswith(var.schedule, "cron(") || startswith(var.schedule, "rate(")
    error_message = "schedule must be an AWS cron(...) or rate(...) expression."
  }
}

variable "selection_tag" {
  description = "Resources carrying this tag with the value \"true\" are backed up (EBS volumes, RDS, EFS, DynamoDB, S3, ...)."
  type        = string
  default     = "kenko:backup"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
