terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # State lives in Tokyo, encrypted, with S3-native locking. The bucket, key and KMS key are
  # given at init time: terraform init -backend-config=backend.hcl (see backend.hcl.example).
  backend "s3" {
    region       = "ap-northeast-1"
    encrypt      = true
    use_lockfile = true
  }
}
