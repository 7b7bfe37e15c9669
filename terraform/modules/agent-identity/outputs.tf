output "role_arn" {
  description = "The agent's IAM role (EKS Pod Identity for namespace/service account)."
  value       = aws_iam_role.agent.arn
}
