//! CloudTrail log files from an S3 prefix, for the access monitor: the objects under the
//! prefix that are not yet in a local spool folder are downloaded into it, each whole (the
//! caller's crash-safe write), keeping the key's path. The monitor reads the spool
//! like any CloudTrail folder, so its checkpoint, chain and restart rules hold unchanged, and
//! the spool is the local copy an auditor can verify against.

use std::path::{Component, Path, PathBuf};

use aws_sdk_s3::Client;

use crate::{api, AwsError};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Log files listed under the prefix.
    pub listed: u64,
    /// Downloaded this pass (the rest were already in the spool).
    pub downloaded: u64,
    pub bytes: u64,
}

/// The spool path of a key, or `None` for a key that could escape the spool (`..`, absolute)
/// or is not a CloudTrail log file (digest files included).
pub fn spool_path(spool: &Path, key: &str) -> Option<PathBuf> {
    if !key.ends_with(".json.gz") {
        return None;
    }
    let rel = Path::new(key);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    // Digest files (CloudTrail's own integrity chain) share the suffix but are not logs.
    if rel
        .components()
        .any(|c| c.as_os_str() == "CloudTrail-Digest")
    {
        return None;
    }
    Some(spool.join(rel))
}

/// Downloads every `*.json.gz` object under `bucket/prefix` that the spool does not have,
/// handing each to `save` (the agent's crash-safe write: a hidden temporary name, synced, then
/// renamed, so the monitor never takes a half-written file).
pub async fn fetch_new(
    client: &Client,
    bucket: &str,
    prefix: &str,
    spool: &Path,
    mut save: impl FnMut(&Path, &[u8]) -> std::io::Result<()>,
) -> Result<Fetched, AwsError> {
    let resource = format!("s3://{bucket}/{prefix}");
    let mut out = Fetched::default();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(api("ListObjectsV2", &resource))?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            let Some(path) = spool_path(spool, key) else {
                continue;
            };
            out.listed += 1;
            if path.exists() {
                continue;
            }
            let got = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(api("GetObject", &format!("s3://{bucket}/{key}")))?;
            let bytes = got
                .body
                .collect()
                .await
                .map_err(|e| AwsError::Api {
                    operation: "GetObject",
                    resource: format!("s3://{bucket}/{key}"),
                    message: e.to_string(),
                })?
                .into_bytes();
            save(&path, &bytes).map_err(|e| AwsError::Api {
                operation: "write spool",
                resource: path.display().to_string(),
                message: e.to_string(),
            })?;
            out.downloaded += 1;
            out.bytes += bytes.len() as u64;
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_spool_and_only_log_files_are_taken() {
        let spool = Path::new("/spool");
        assert_eq!(
            spool_path(
                spool,
                "AWSLogs/1/CloudTrail/ap-northeast-1/2026/11/02/a.json.gz"
            ),
            Some(PathBuf::from(
                "/spool/AWSLogs/1/CloudTrail/ap-northeast-1/2026/11/02/a.json.gz"
            ))
        );
        assert_eq!(spool_path(spool, "AWSLogs/../../etc/x.json.gz"), None);
        assert_eq!(spool_path(spool, "/etc/x.json.gz"), None);
        assert_eq!(
            spool_path(spool, "AWSLogs/1/CloudTrail-Digest/a.json"),
            None
        );
    }
}
