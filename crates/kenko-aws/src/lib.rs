//! kenko's AWS adapters, on aws-sdk-rust. The same code talks to AWS and, in tests, to the
//! local emulator through `endpoint_url`. Kept in its own crate because the SDK is the
//! slowest part of the build: nothing else rebuilds it.
//!
//! The residency and backup audit lives in [`audit`].
//!
//! Today: erasing an S3 bucket or prefix, every object version and delete marker, with versions
//! held by Object Lock (retention or legal hold) reported as blocked, never as erased.

pub use aws_sdk_s3;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ObjectLockEnabled, ObjectLockLegalHoldStatus};
use aws_sdk_s3::Client;

pub mod audit;
pub mod backup;
pub mod cloudtrail;
pub mod cwlogs;
pub mod datakey;
pub mod inbox;

/// Why an AWS operation failed. `reason()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation} on {resource}: {message}")]
    Api {
        operation: &'static str,
        resource: String,
        message: String,
    },
    #[error("{0}: expected s3://BUCKET[/PREFIX]")]
    BadTarget(String),
    #[error("{resource}: {problem}; refusing to erase it")]
    InUse { resource: String, problem: String },
}

impl AwsError {
    pub fn reason(&self) -> &'static str {
        match self {
            AwsError::Api { .. } => "aws_api_failed",
            AwsError::BadTarget(_) => "erase_target_unsupported",
            AwsError::InUse { .. } => "erase_volume_in_use",
        }
    }
}

/// Maps an SDK error to [`AwsError`] with the operation and resource named, the message on
/// one line: each cause's own message (the service's code and message, or the connection
/// error), never the SDK's debug dump of the response, which belongs in no status.
fn api<E: std::error::Error>(
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> AwsError {
    let resource = resource.to_string();
    move |e| AwsError::Api {
        operation,
        resource,
        message: causes(&e),
    }
}

/// An error and its sources, each once, joined with `: `, on one line.
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub use kenko_api::aws::{Endpoint, SERVICES};

/// The SDK configuration for one service in one region.
pub(crate) async fn sdk_config(
    ep: &Endpoint,
    service: &str,
    region: &str,
) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    if let Some(url) = ep.url_for(service) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client for `region` (path-style addressing when an endpoint override is set, as
/// emulators need).
pub async fn s3_client(ep: &Endpoint, region: &str) -> Client {
    let conf = sdk_config(ep, "s3", region).await;
    let s3 = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(ep.url_for("s3").is_some())
        .build();
    Client::from_conf(s3)
}

/// An object version kept by Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedVersion {
    pub key: String,
    pub version_id: String,
    /// `retention COMPLIANCE`, `retention GOVERNANCE` or `legal hold`.
    pub reason: String,
    /// RFC 3339 retain-until date, for retention.
    pub until: Option<String>,
}

/// What an S3 erasure did.
#[derive(Debug, Clone, Default)]
pub struct S3Erasure {
    pub bucket: String,
    pub region: String,
    pub versions_deleted: u64,
    pub delete_markers_deleted: u64,
    pub bytes_deleted: u64,
    pub blocked: Vec<BlockedVersion>,
    /// Versions and markers still listed afterwards that are not blocked (must be 0).
    pub remaining_after: u64,
    /// Versions and markers listed afterwards in all.
    pub listed_after: u64,
}

/// Splits `s3://bucket[/prefix]` ([`kenko_api::aws::parse_s3`]).
pub fn parse_s3(target: &str) -> Result<(String, String), AwsError> {
    kenko_api::aws::parse_s3(target).map_err(|_| AwsError::BadTarget(target.to_string()))
}

struct Listed {
    /// (key, version id, size, is delete marker)
    items: Vec<(String, String, i64, bool)>,
}

async fn list_all(client: &Client, bucket: &str, prefix: &str) -> Result<Listed, AwsError> {
    let mut items = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let out = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(api("ListObjectVersions", bucket))?;
        for v in out.versions() {
            items.push((
                v.key().unwrap_or_default().to_string(),
                v.version_id().unwrap_or("null").to_string(),
                v.size().unwrap_or(0),
                false,
            ));
        }
        for m in out.delete_markers() {
            items.push((
                m.key().unwrap_or_default().to_string(),
                m.version_id().unwrap_or("null").to_string(),
                0,
                true,
            ));
        }
        if out.is_truncated() == Some(true) {
            key_marker = out.next_key_marker().map(String::from);
            version_marker = out.next_version_id_marker().map(String::from);
        } else {
            break;
        }
    }
    Ok(Listed { items })
}

/// Deletes every object version and delete marker under `s3://bucket/prefix`, in whichever
/// region the bucket lives, except versions held by Object Lock (reported as blocked), then
/// lists again to verify nothing else is left.
pub async fn erase_s3(
    ep: &Endpoint,
    bucket: &str,
    prefix: &str,
    now_rfc3339: &str,
) -> Result<S3Erasure, AwsError> {
    let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
    let first = s3_client(ep, &ep.region).await;
    let location = first
        .get_bucket_location()
        .bucket(&bucket)
        .send()
        .await
        .map_err(api("GetBucketLocation", &bucket))?;
    let region = location
        .location_constraint()
        .map(|c| c.as_str().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "us-east-1".to_string());
    let client = if region == ep.region {
        first
    } else {
        s3_client(ep, &region).await
    };
    // Some S3 implementations omit ObjectLockEnabled when no default retention is set, so
    // any lock configuration counts.
    let locked = client
        .get_object_lock_configuration()
        .bucket(&bucket)
        .send()
        .await
        .ok()
        .and_then(|o| o.object_lock_configuration().cloned())
        .is_some_and(|c| {
            c.object_lock_enabled().is_none()
                || c.object_lock_enabled() == Some(&ObjectLockEnabled::Enabled)
        });

    let listed = list_all(&client, &bucket, &prefix).await?;
    let mut result = S3Erasure {
        bucket: bucket.clone(),
        region: region.clone(),
        ..Default::default()
    };
    let mut to_delete = Vec::new();
    for (key, version, size, marker) in &listed.items {
        if locked && !marker {
            if let Some(b) = lock_of(&client, &bucket, key, version, now_rfc3339).await? {
                result.blocked.push(b);
                continue;
            }
        }
        to_delete.push((key.clone(), version.clone(), *size, *marker));
    }
    for chunk in to_delete.chunks(1000) {
        let objects: Vec<ObjectIdentifier> = chunk
            .iter()
            .map(|(k, v, _, _)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .version_id(v)
                    .build()
                    .expect("key is set")
            })
            .collect();
        let out = client
            .delete_objects()
            .bucket(&bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(false)
                    .build()
                    .expect("objects are set"),
            )
            .send()
            .await
            .map_err(api("DeleteObjects", &bucket))?;
        for d in out.deleted() {
            let key = d.key().unwrap_or_default();
            let version = d.version_id().unwrap_or("null");
            if let Some((_, _, size, marker)) =
                chunk.iter().find(|(k, v, _, _)| k == key && v == version)
            {
                if *marker {
                    result.delete_markers_deleted += 1;
                } else {
                    result.versions_deleted += 1;
                    result.bytes_deleted += *size as u64;
                }
            }
        }
        for e in out.errors() {
            // A lock we did not see before deleting is a block, anything else a failure.
            let code = e.code().unwrap_or_default();
            if code == "AccessDenied" || code == "ObjectLocked" || code == "InvalidRequest" {
                let key = e.key().unwrap_or_default().to_string();
                // Not every implementation echoes the version id in the error.
                let version = e
                    .version_id()
                    .filter(|v| !v.is_empty())
                    .map(String::from)
                    .or_else(|| {
                        chunk
                            .iter()
                            .find(|(k, _, _, _)| *k == key)
                            .map(|(_, v, _, _)| v.clone())
                    })
                    .unwrap_or_default();
                let found = lock_of(&client, &bucket, &key, &version, now_rfc3339).await?;
                result.blocked.push(found.unwrap_or(BlockedVersion {
                    key,
                    version_id: version,
                    reason: format!("refused by S3 ({code})"),
                    until: None,
                }));
            } else {
                return Err(AwsError::Api {
                    operation: "DeleteObjects",
                    resource: bucket.clone(),
                    message: format!("{code}: {}", e.message().unwrap_or_default()),
                });
            }
        }
    }
    let after = list_all(&client, &bucket, &prefix).await?;
    result.listed_after = after.items.len() as u64;
    result.remaining_after = after
        .items
        .iter()
        .filter(|(k, v, _, _)| {
            !result
                .blocked
                .iter()
                .any(|b| &b.key == k && &b.version_id == v)
        })
        .count() as u64;
    Ok(result)
}

/// The Object Lock state of one version, from HeadObject (one call gives retention mode,
/// retain-until date and legal hold; GetObjectRetention with a version id is not implemented
/// by every S3-compatible service).
async fn lock_of(
    client: &Client,
    bucket: &str,
    key: &str,
    version: &str,
    now: &str,
) -> Result<Option<BlockedVersion>, AwsError> {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .map_err(api("HeadObject", bucket))?;
    if head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On) {
        return Ok(Some(BlockedVersion {
            key: key.to_string(),
            version_id: version.to_string(),
            reason: "legal hold".into(),
            until: None,
        }));
    }
    let until = head
        .object_lock_retain_until_date()
        .and_then(|d| d.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok());
    // RFC 3339 UTC strings of the same shape compare in time order.
    if let (Some(mode), Some(u)) = (head.object_lock_mode(), until.as_deref()) {
        if u > now {
            return Ok(Some(BlockedVersion {
                key: key.to_string(),
                version_id: version.to_string(),
                reason: format!("retention {}", mode.as_str()),
                until,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn s3_targets_parse() {
        assert_eq!(parse_s3("s3://b").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_s3("s3://b/p/q").unwrap(), ("b".into(), "p/q".into()));
        assert!(parse_s3("s3:///x").is_err());
        assert!(parse_s3("file:/x").is_err());
    }
}

pub use aws_sdk_kms;

/// A KMS client for `region`.
pub async fn kms_client(ep: &Endpoint, region: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config(ep, "kms", region).await)
}

/// A KMS key scheduled for deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsScheduled {
    pub key_id: String,
    pub region: String,
    pub state_before: String,
    /// RFC 3339.
    pub deletion_date: String,
    pub pending_days: i32,
}

/// Schedules a key's deletion (cryptographic erase of everything it protects) and checks
/// the key is now pending deletion. A key already pending keeps its date.
pub async fn schedule_key_deletion(
    ep: &Endpoint,
    key: &str,
    region: &str,
    pending_days: i32,
) -> Result<KmsScheduled, AwsError> {
    let (id, region) = (key.to_string(), region.to_string());
    let kms = kms_client(ep, &region).await;
    let before = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .map_err(api("DescribeKey", &id))?;
    let meta = before.key_metadata().ok_or_else(|| AwsError::Api {
        operation: "DescribeKey",
        resource: id.clone(),
        message: "no key metadata".into(),
    })?;
    let state_before = meta
        .key_state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let fmt = |d: &aws_sdk_kms::primitives::DateTime| {
        d.fmt(aws_sdk_kms::primitives::DateTimeFormat::DateTime)
            .unwrap_or_default()
    };
    // The bare key id from DescribeKey: accepted everywhere, where some implementations of
    // ScheduleKeyDeletion refuse an ARN.
    let bare_id = meta.key_id().to_string();
    let deletion_date = if state_before == "PendingDeletion" {
        meta.deletion_date().map(fmt).unwrap_or_default()
    } else {
        let out = kms
            .schedule_key_deletion()
            .key_id(&bare_id)
            .pending_window_in_days(pending_days)
            .send()
            .await
            .map_err(api("ScheduleKeyDeletion", &id))?;
        out.deletion_date().map(fmt).unwrap_or_default()
    };
    let after = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .map_err(api("DescribeKey", &id))?;
    let state = after
        .key_metadata()
        .and_then(|m| m.key_state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if state != "PendingDeletion" {
        return Err(AwsError::Api {
            operation: "DescribeKey",
            resource: id,
            message: format!("key state is {state} after scheduling deletion, not PendingDeletion"),
        });
    }
    Ok(KmsScheduled {
        key_id: id,
        region,
        state_before,
        deletion_date,
        pending_days,
    })
}

/// Where a scheduled key stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// KMS no longer knows the key: every copy is gone.
    Gone,
    /// Still pending deletion, until the date.
    Pending(String),
    /// Anything else (deletion was cancelled!).
    Other(String),
}

/// The current state of a key.
pub async fn key_state(ep: &Endpoint, key: &str, region: &str) -> Result<KeyState, AwsError> {
    let id = key.to_string();
    let kms = kms_client(ep, region).await;
    match kms.describe_key().key_id(&id).send().await {
        Ok(out) => {
            let meta = out.key_metadata();
            let state = meta
                .and_then(|m| m.key_state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if state == "PendingDeletion" {
                let until = meta
                    .and_then(|m| m.deletion_date())
                    .and_then(|d| {
                        d.fmt(aws_sdk_kms::primitives::DateTimeFormat::DateTime)
                            .ok()
                    })
                    .unwrap_or_default();
                Ok(KeyState::Pending(until))
            } else {
                Ok(KeyState::Other(state))
            }
        }
        Err(e) => {
            let not_found = e
                .as_service_error()
                .is_some_and(|s| s.is_not_found_exception());
            if not_found {
                Ok(KeyState::Gone)
            } else {
                Err(api("DescribeKey", &id)(e))
            }
        }
    }
}

pub use aws_sdk_ec2;

/// An EC2 client for `region`.
pub async fn ec2_client(ep: &Endpoint, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config(ep, "ec2", region).await)
}

/// A deleted EBS snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDeleted {
    pub region: String,
    pub snapshot_id: String,
    /// Size of the volume the snapshot was taken of, GiB.
    pub volume_gib: i32,
    /// DescribeSnapshots no longer finds it.
    pub gone_after: bool,
}

/// Deletes an EBS snapshot in its region and checks it is gone.
pub async fn delete_snapshot(
    ep: &Endpoint,
    region: &str,
    snapshot_id: &str,
) -> Result<SnapshotDeleted, AwsError> {
    let (region, id) = (region.to_string(), snapshot_id.to_string());
    let ec2 = ec2_client(ep, &region).await;
    let found = ec2
        .describe_snapshots()
        .snapshot_ids(&id)
        .send()
        .await
        .map_err(api("DescribeSnapshots", &id))?;
    let volume_gib = found
        .snapshots()
        .first()
        .and_then(|s| s.volume_size())
        .unwrap_or(0);
    ec2.delete_snapshot()
        .snapshot_id(&id)
        .send()
        .await
        .map_err(api("DeleteSnapshot", &id))?;
    let gone_after = match ec2.describe_snapshots().snapshot_ids(&id).send().await {
        Ok(out) => out.snapshots().is_empty(),
        Err(e) => aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
            .is_some_and(|c| c == "InvalidSnapshot.NotFound"),
    };
    Ok(SnapshotDeleted {
        region,
        snapshot_id: id,
        volume_gib,
        gone_after,
    })
}

/// A deleted EBS volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDeleted {
    pub region: String,
    pub volume_id: String,
    pub size_gib: i32,
    /// Encrypted, and with which KMS key (a crypto-erase of that key makes every copy
    /// unreadable, snapshots included).
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// DescribeVolumes no longer finds it (or reports it deleting or deleted).
    pub gone_after: bool,
}

/// Deletes a detached EBS volume in its region and checks it is gone. EBS wipes a deleted
/// volume's blocks before they are given to anyone else; a volume still attached to an
/// instance is refused (its pod may still be writing).
pub async fn delete_volume(
    ep: &Endpoint,
    region: &str,
    volume_id: &str,
) -> Result<VolumeDeleted, AwsError> {
    let ec2 = ec2_client(ep, region).await;
    let found = ec2
        .describe_volumes()
        .volume_ids(volume_id)
        .send()
        .await
        .map_err(api("DescribeVolumes", volume_id))?;
    let v = found.volumes().first().ok_or_else(|| AwsError::Api {
        operation: "DescribeVolumes",
        resource: volume_id.to_string(),
        message: "no such volume".into(),
    })?;
    let state = v
        .state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if state == "in-use" || !v.attachments().is_empty() {
        let to: Vec<&str> = v
            .attachments()
            .iter()
            .filter_map(|a| a.instance_id())
            .collect();
        return Err(AwsError::InUse {
            resource: format!("EBS volume {volume_id} ({region})"),
            problem: format!("it is attached to {}", to.join(", ")),
        });
    }
    let out = VolumeDeleted {
        region: region.to_string(),
        volume_id: volume_id.to_string(),
        size_gib: v.size().unwrap_or(0),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(String::from),
        gone_after: false,
    };
    ec2.delete_volume()
        .volume_id(volume_id)
        .send()
        .await
        .map_err(api("DeleteVolume", volume_id))?;
    let gone_after = match ec2.describe_volumes().volume_ids(volume_id).send().await {
        Ok(o) => o.volumes().iter().all(|v| {
            v.state()
                .is_some_and(|s| matches!(s.as_str(), "deleting" | "deleted"))
        }),
        Err(e) => aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
            .is_some_and(|c| c == "InvalidVolume.NotFound"),
    };
    Ok(VolumeDeleted { gone_after, ..out })
}
