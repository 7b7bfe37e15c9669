output "policy_ids" {
  description = "IDs of the service control policies."
  value = {
    japan_only     = aws_organizations_policy.japan_only.id
    closed_network = aws_organizations_policy.closed_network.id
  }
}
