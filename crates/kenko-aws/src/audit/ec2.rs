//! EC2 facts of one region: EBS volumes, the snapshots this account owns, and the stack's
//! VPCs (read by `network.rs`).

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
