variable "name" {
  description = "Name of the EKS cluster (for example \"kenko-prod\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version of the control plane and the managed node group."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33."
  }
}

variable "vpc_id" {
  description = "ID of the VPC (from the network module)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; the only source allowed to reach the private API endpoint."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane's network interfaces and the nodes (at least two availability zones)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids must name at least two private subnets."
  }
}

variable "operator_cidrs" {
  description = "Closed-network CIDR blocks of the operators' terminals allowed to reach the private API endpoint (in addition to the VPC)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for cidr in var.operator_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"
    ])
    error_message = "operator_cidrs must be IPv4 CIDR blocks of the closed network, never 0.0.0.0/0."
  }
}

variable "admin_principal_arns" {
  description = "IAM role ARNs given cluster-admin access entries (the operators' roles on the closed network). Nobody else, not even the creator, administers the cluster."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws:iam::[0-9]{12}:role/", arn))])
    error_message = "admin_principal_arns must be IAM role ARNs."
  }
}

variable "node_instance_types" {
  description = "EC2 instance types of the managed node group."
  type        = list(string)
  default     = ["m7i.large"]
}

variable "node_count" {
  description = "Desired, minimum and maximum number of nodes."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = {
    desired = 2
    min     = 2
    max     = 4
  }

  validation {
    condition     = var.node_count.min >= 1 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "node_count must satisfy 1 <= min <= desired <= max."
  }
}

variable "control_plane_log_retention_days" {
  description = "Days the control plane logs (including the Kubernetes audit log) are kept in CloudWatch Logs."
  type        = number
  default     = 3653

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.control_plane_log_retention_days)
    error_message = "control_plane_log_retention_days must be one of the values CloudWatch Logs accepts (1 ... 3653)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
