output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, one per availability zone."
  value       = [for subnet in aws_subnet.private : subnet.id]
}

output "private_route_table_id" {
  description = "ID of the private route table (local route and the S3 gateway endpoint only)."
  value       = aws_route_table.private.id
}

output "endpoint_security_group_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.endpoints.id
}

output "interface_endpoint_services" {
  description = "Services reachable through interface VPC endpoints."
  value       = sort(keys(aws_vpc_endpoint.interface))
}
