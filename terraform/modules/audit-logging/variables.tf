variable "name" {
  description = "Name prefix of the trail, its bucket and key (for example \"kenko-prod\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name))
    error_message = "name must be 3-16 lower-case letters, digits or hyphens, starting with a letter (bucket names are at most 63 characters)."
  }
}

variable "log_retention_years" {
  description = "Years every CloudTrail log file is locked (S3 Object Lock, COMPLIANCE mode) and kept."
  type        = number
  default     = 10

  validation {
    condition     = var.log_retention_years >= 1 && floor(var.log_retention_years) == var.log_retention_years
    error_message = "log_retention_years must be a whole number of at least 1."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
