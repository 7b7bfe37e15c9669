//! EC2 facts of one region: EBS volumes, the snapshots this account owns, and the stack's
//! VPCs (read by `network.rs`); and the volumes of a stack's claims, with their tags, for
//! `backup.coverage`.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::clients::{err_text, Clients};
use super::{Ec2Facts, Fact, Policy};

pub(super) async fn collect(c: &Clients, region: &str, policy: &Policy) -> Fact<Ec2Facts> {
    let ec2 = c.ec2(region);
    let mut volumes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_volumes()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("DescribeVolumes", e))?;
        volumes.extend(
            page.volumes()
                .iter()
                .filter_map(|v| v.volume_id().map(String::from)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut snapshots = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // Only this account's own snapshots: public and shared ones are not our data.
        let page = ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("DescribeSnapshots", e))?;
        snapshots.extend(
            page.snapshots()
                .iter()
                .filter_map(|s| s.snapshot_id().map(String::from)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    volumes.sort();
    snapshots.sort();
    let vpcs = super::network::collect(&ec2, policy).await;
    Ok(Ec2Facts {
        volumes,
        snapshots,
        vpcs,
    })
}

pub(super) fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// A volume the EBS CSI driver created for one of `claims` in `namespace` (by its claim tags,
/// `kenko_api::names::PVC_NAMESPACE_TAG` and `PVC_NAME_TAG`): (claim, volume id, every tag).
pub(super) type ClaimVolume = (String, String, BTreeMap<String, String>);

/// The volumes of a stack's claims in `region` (DescribeVolumes filtered by the claim tags).
pub(super) async fn claim_volumes(
    c: &Clients,
    region: &str,
    namespace: &str,
    claims: &[String],
) -> Fact<Vec<ClaimVolume>> {
    use kenko_api::names::{PVC_NAMESPACE_TAG, PVC_NAME_TAG};
    let ec2 = c.ec2(region);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_volumes()
            .filters(filter(
                &format!("tag:{PVC_NAMESPACE_TAG}"),
                &[namespace.to_string()],
            ))
            .filters(filter(&format!("tag:{PVC_NAME_TAG}"), claims))
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("DescribeVolumes", e))?;
        for v in page.volumes() {
            let tags: BTreeMap<String, String> = v
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            // The filter is the API's; the match is checked here again, so an endpoint that
            // ignores filters cannot put another stack's volume under this one.
            let (Some(id), Some(claim)) = (v.volume_id(), tags.get(PVC_NAME_TAG)) else {
                continue;
            };
            if tags.get(PVC_NAMESPACE_TAG).map(String::as_str) == Some(namespace)
                && claims.contains(claim)
            {
                out.push((claim.clone(), id.to_string(), tags.clone()));
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort();
    Ok(out)
}
