variable "name" {
  description = "Name prefix for every resource of the network (for example \"kenko-prod\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Reached only over the closed network (Direct Connect or VPN attached by the account's network team), never the internet."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR block of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones for the private subnets: all in the VPC's Japanese region (Tokyo ap-northeast-1 or Osaka ap-northeast-3)."
  type        = list(string)
  default     = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]

  validation {
    condition = length(var.availability_zones) >= 2 && alltrue([
      for az in var.availability_zones :
      startswith(az, "ap-northeast-1") || startswith(az, "ap-northeast-3")
    ])
    error_message = "availability_zones must name at least two zones, all in ap-northeast-1 (Tokyo) or ap-northeast-3 (Osaka)."
  }
}

variable "interface_endpoint_services" {
  description = "AWS services reached through interface VPC endpoints (PrivateLink), as the last part of com.amazonaws.REGION.SERVICE. These are what an EKS cluster, its nodes, the kenko agent and AWS Backup need when there is no internet path."
  type        = list(string)
  default = [
    "autoscaling",
    "backup",
    "ec2",
    "ec2messages",
    "ecr.api",
    "ecr.dkr",
    "eks",
    "eks-auth",
    "elasticloadbalancing",
    "kms",
    "logs",
    "monitoring",
    "ssm",
    "ssmmessages",
    "sts",
  ]

  validation {
    condition = length(setsubtract(
      ["ecr.api", "ecr.dkr", "sts", "ec2", "logs", "kms", "elasticloadbalancing", "autoscaling", "backup"],
      var.interface_endpoint_services,
    )) == 0
    error_message = "interface_endpoint_services must include at least ecr.api, ecr.dkr, sts, ec2, logs, kms, elasticloadbalancing, autoscaling and backup: the cluster cannot run without them."
  }
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch Logs (network activity monitoring)."
  type        = number
  default     = 3653

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be one of the values CloudWatch Logs accepts (1 ... 3653)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
