terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
      # aws: the primary region (Tokyo, ap-northeast-1).
      # aws.osaka: the backup region (Osaka, ap-northeast-3), a different data centre.
      configuration_aliases = [aws.osaka]
    }
  }
}
