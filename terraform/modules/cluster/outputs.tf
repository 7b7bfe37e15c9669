output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Private endpoint of the Kubernetes API (resolvable only inside the VPC and the closed network)."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority" {
  description = "Base64 certificate authority data of the cluster."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_role_arn" {
  description = "IAM role of the managed nodes."
  value       = aws_iam_role.node.arn
}

output "secrets_kms_key_arn" {
  description = "KMS key encrypting Kubernetes secrets and the control plane logs."
  value       = aws_kms_key.cluster.arn
}

output "control_plane_log_group" {
  description = "CloudWatch Logs group of the control plane logs: the Kubernetes audit log the agents read (streams kube-apiserver-audit-*)."
  value       = aws_cloudwatch_log_group.control_plane.name
}

output "control_plane_log_group_arn" {
  description = "ARN of the control plane log group."
  value       = aws_cloudwatch_log_group.control_plane.arn
}
