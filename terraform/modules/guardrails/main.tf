# Service control policies (applied from the organization's management account): regional APIs
# only in Japan, and no way to open a path to the internet or to switch off the audit trail,
# whatever an IAM policy inside the account allows.

locals {
  # Global services whose API calls are served from us-east-1 (or have no region) and must keep
  # working; everything else is denied outside allowed_regions.
  global_services = [
    "account:*",
    "budgets:*",
    "ce:*",
    "cloudfront:*",
    "health:*",
    "iam:*",
    "organizations:*",
    "route53:*",
    "route53domains:*",
    "sts:*",
    "support:*",
    "trustedadvisor:*",
    "waf:*",
  ]
}

data "aws_iam_policy_document" "japan_only" {
  statement {
    sid         = "DenyRegionsOutsideJapan"
    effect      = "Deny"
    not_actions = local.global_services
    resources   = ["*"]

    condition {
      test     = "StringNotEquals"
      variable = "aws:RequestedRegion"
      values   = var.allowed_regions
    }

    dynamic "condition" {
      for_each = length(var.exempt_role_arns) > 0 ? [1] : []

      content {
        test     = "ArnNotLike"
        variable = "aws:PrincipalArn"
        values   = var.exempt_role_arns
      }
    }
  }
}

data "aws_iam_policy_document" "closed_network" {
  statement {
    sid    = "DenyInternetPaths"
    effect = "Deny"
    actions = [
      "ec2:CreateInternetGateway",
      "ec2:AttachInternetGateway",
      "ec2:CreateEgressOnlyInternetGateway",
      "ec2:CreateNatGateway",
      "ec2:CreateCarrierGateway",
      "globalaccelerator:Create*",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "DenyPublicEksEndpoint"
    effect = "Deny"
    actions = [
      "eks:CreateCluster",
      "eks:UpdateClusterConfig",
    ]
    resources = ["*"]

    condition {
      test     = "Bool"
      variable = "eks:endpointPublicAccess"
      values   = ["true"]
    }
  }

  statement {
    sid    = "DenyAuditTrailShutdown"
    effect = "Deny"
    actions = [
      "cloudtrail:DeleteTrail",
      "cloudtrail:StopLogging",
    ]
    resources = ["*"]

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = var.administrator_role_arns
    }
  }
}

resource "aws_organizations_policy" "japan_only" {
  name        = "${var.name}-japan-only"
  description = "Deny regional AWS APIs outside Tokyo and Osaka"
  type        = "SERVICE_CONTROL_POLICY"
  content     = data.aws_iam_policy_document.japan_only.minified_json

  tags = var.tags
}

resource "aws_organizations_policy" "closed_network" {
  name        = "${var.name}-closed-network"
  description = "Deny internet gateways, NAT, public EKS endpoints and switching off the audit trail"
  type        = "SERVICE_CONTROL_POLICY"
  content     = data.aws_iam_policy_document.closed_network.minified_json

  tags = var.tags
}

resource "aws_organizations_policy_attachment" "japan_only" {
  for_each = toset(var.target_ids)

  policy_id = aws_organizations_policy.japan_only.id
  target_id = each.value
}

resource "aws_organizations_policy_attachment" "closed_network" {
  for_each = toset(var.target_ids)

  policy_id = aws_organizations_policy.closed_network.id
  target_id = each.value
}
