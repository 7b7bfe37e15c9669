//! The stack's VPCs in one region (by tag: `kenko:stack` as Terraform sets it, or
//! `--vpc-tag KEY=VALUE`) and what could give them a path to the internet: internet gateways,
//! egress-only internet gateways and NAT gateways attached to them; and the VPC endpoints they
//! need to reach AWS without one. One call per kind for all the region's stack VPCs.

use std::collections::BTreeMap;

use super::clients::err_text;
use super::ec2::filter;
use super::{Fact, Policy, VpcFacts};

pub(super) async fn collect(ec2: &aws_sdk_ec2::Client, policy: &Policy) -> Fact<Vec<VpcFacts>> {
    let (key, value) = &policy.vpc_tag;
    let f = match value {
        Some(v) => filter(&format!("tag:{key}"), std::slice::from_ref(v)),
        None => filter("tag-key", std::slice::from_ref(key)),
    };
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_vpcs()
            .filters(f.clone())
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("DescribeVpcs", e))?;
        ids.extend(
            page.vpcs()
                .iter()
                .filter_map(|v| v.vpc_id().map(String::from)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    ids.sort();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let by_vpc = |pairs: Vec<(String, String)>| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (vpc, id) in pairs {
            m.entry(vpc).or_default().push(id);
        }
        m
    };
    let igws: Fact<BTreeMap<String, Vec<String>>> = ec2
        .describe_internet_gateways()
        .filters(filter("attachment.vpc-id", &ids))
        .send()
        .await
        .map_err(|e| err_text("DescribeInternetGateways", e))
        .map(|o| {
            by_vpc(
                o.internet_gateways()
                    .iter()
                    .flat_map(|g| {
                        let id = g.internet_gateway_id().unwrap_or_default().to_string();
                        g.attachments()
                            .iter()
                            .filter_map(move |a| a.vpc_id().map(|v| (v.to_string(), id.clone())))
                    })
                    .collect(),
            )
        });
    // Filtering egress-only gateways by attachment is not supported everywhere: list them all.
    let eigws: Fact<BTreeMap<String, Vec<String>>> = ec2
        .describe_egress_only_internet_gateways()
        .send()
        .await
        .map_err(|e| err_text("DescribeEgressOnlyInternetGateways", e))
        .map(|o| {
            by_vpc(
                o.egress_only_internet_gateways()
                    .iter()
                    .flat_map(|g| {
                        let id = g
                            .egress_only_internet_gateway_id()
                            .unwrap_or_default()
                            .to_string();
                        g.attachments()
                            .iter()
                            .filter_map(move |a| a.vpc_id().map(|v| (v.to_string(), id.clone())))
                    })
                    .collect(),
            )
        });
    let nats: Fact<BTreeMap<String, Vec<String>>> = ec2
        .describe_nat_gateways()
        .filter(filter("vpc-id", &ids))
        .send()
        .await
        .map_err(|e| err_text("DescribeNatGateways", e))
        .map(|o| {
            by_vpc(
                o.nat_gateways()
                    .iter()
                    .filter(|n| {
                        !matches!(
                            n.state().map(|s| s.as_str()),
                            Some("deleted") | Some("deleting")
                        )
                    })
                    .filter_map(|n| {
                        Some((n.vpc_id()?.to_string(), n.nat_gateway_id()?.to_string()))
                    })
                    .collect(),
            )
        });
    let endpoints: Fact<BTreeMap<String, Vec<String>>> = ec2
        .describe_vpc_endpoints()
        .filters(filter("vpc-id", &ids))
        .send()
        .await
        .map_err(|e| err_text("DescribeVpcEndpoints", e))
        .map(|o| {
            by_vpc(
                o.vpc_endpoints()
                    .iter()
                    .filter(|e| {
                        !matches!(
                            e.state()
                                .map(|s| s.as_str().to_ascii_lowercase())
                                .as_deref(),
                            Some("deleted") | Some("deleting") | Some("failed") | Some("rejected")
                        )
                    })
                    .filter_map(|e| {
                        let service = e.service_name()?;
                        Some((e.vpc_id()?.to_string(), service_suffix(service)))
                    })
                    .collect(),
            )
        });
    let pick = |f: &Fact<BTreeMap<String, Vec<String>>>, vpc: &str| -> Fact<Vec<String>> {
        f.as_ref()
            .map(|m| {
                let mut v = m.get(vpc).cloned().unwrap_or_default();
                v.sort();
                v.dedup();
                v
            })
            .map_err(Clone::clone)
    };
    Ok(ids
        .iter()
        .map(|id| VpcFacts {
            id: id.clone(),
            internet_gateways: pick(&igws, id),
            egress_only_gateways: pick(&eigws, id),
            nat_gateways: pick(&nats, id),
            endpoint_services: pick(&endpoints, id),
        })
        .collect())
}

/// `com.amazonaws.ap-northeast-1.ecr.api` -> `ecr.api`.
pub(super) fn service_suffix(name: &str) -> String {
    let parts: Vec<&str> = name.splitn(3, '.').collect();
    match parts.as_slice() {
        [_, _, rest] => rest
            .split_once('.')
            .map(|(_, s)| s.to_string())
            .unwrap_or_default(),
        _ => name.to_string(),
    }
}
