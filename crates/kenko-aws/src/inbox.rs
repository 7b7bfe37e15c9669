//! The intake's S3 inbox: the objects under `PREFIX/inbox/` of the stack's intake bucket are
//! deliveries (a PUT is complete once visible; a multipart upload is invisible until it is
//! completed). Objects are fetched by version, copied to `processed/` or `returned/` and
//! deleted by version, and reports are put under `reports/` in the same bucket. Every call
//! names its operation and object; nothing here reads an object's content.

use std::io::Write;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

/// The S3 client the inbox functions take (from [`crate::s3_client`]).
pub type S3Client = Client;

use crate::{api, AwsError};

/// An inbox object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// The file name: the key below `inbox/`.
    pub name: String,
    pub etag: String,
    pub size: u64,
    /// When the object was written (seconds since the epoch): a copy's is the copy's.
    pub last_modified: Option<i64>,
}

/// The object version a fetch got (what the ledger records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `None` in a bucket without versioning.
    pub version_id: Option<String>,
    pub etag: String,
    pub bytes: u64,
}

/// `s3://BUCKET/PREFIX/` → (bucket, prefix with a trailing `/`, or empty)
/// ([`kenko_api::aws::parse_inbox`]).
pub fn parse_inbox(uri: &str) -> Result<(String, String), AwsError> {
    kenko_api::aws::parse_inbox(uri).map_err(|_| AwsError::BadTarget(uri.to_string()))
}

/// The objects directly under `PREFIX/inbox/` (no deeper folders), in key order.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<Listed>, AwsError> {
    list_folder(client, bucket, prefix, "inbox").await
}

/// The objects directly under `PREFIX/FOLDER/` (no deeper folders), in key order.
pub async fn list_folder(
    client: &Client,
    bucket: &str,
    prefix: &str,
    folder: &str,
) -> Result<Vec<Listed>, AwsError> {
    let inbox = format!("{prefix}{folder}/");
    let resource = format!("s3://{bucket}/{inbox}");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&inbox)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(api("ListObjectsV2", &resource))?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            let name = &key[inbox.len()..];
            if name.is_empty() || name.contains('/') {
                continue;
            }
            out.push(Listed {
                key: key.to_string(),
                name: name.to_string(),
                etag: obj.e_tag().unwrap_or_default().to_string(),
                size: obj.size().unwrap_or(0).max(0) as u64,
                last_modified: obj.last_modified().map(|t| t.secs()),
            });
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Streams the current version of `key` into `out` (the caller's file, hashed as written);
/// returns the version it got, or `None` when the object is gone (another agent took it).
pub async fn fetch(
    client: &Client,
    bucket: &str,
    key: &str,
    out: &mut dyn Write,
) -> Result<Option<Fetched>, AwsError> {
    let resource = format!("s3://{bucket}/{key}");
    let got = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => got,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(api("GetObject", &resource)(e)),
    };
    let version_id = got.version_id().map(str::to_string);
    let etag = got.e_tag().unwrap_or_default().to_string();
    let mut body = got.body;
    let mut bytes = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| AwsError::Api {
        operation: "GetObject",
        resource: resource.clone(),
        message: crate::causes(&e),
    })? {
        out.write_all(&chunk).map_err(|e| AwsError::Api {
            operation: "GetObject (writing the local copy)",
            resource: resource.clone(),
            message: e.to_string(),
        })?;
        bytes += chunk.len() as u64;
    }
    Ok(Some(Fetched {
        version_id,
        etag,
        bytes,
    }))
}

/// Copies one version of `from` to `to` in the same bucket (server side). Returns false when
/// that version is gone (another agent finished the delivery and deleted it).
pub async fn copy(
    client: &Client,
    bucket: &str,
    from: &str,
    version_id: Option<&str>,
    to: &str,
) -> Result<bool, AwsError> {
    let source = match version_id {
        Some(v) => format!("{bucket}/{}?versionId={v}", encode_key(from)),
        None => format!("{bucket}/{}", encode_key(from)),
    };
    match client
        .copy_object()
        .bucket(bucket)
        .key(to)
        .copy_source(source)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => Ok(false),
        Err(e) => Err(api("CopyObject", &format!("s3://{bucket}/{to}"))(e)),
    }
}

/// Whether `key` exists.
pub async fn exists(client: &Client, bucket: &str, key: &str) -> Result<bool, AwsError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
        Err(e) => Err(api("HeadObject", &format!("s3://{bucket}/{key}"))(e)),
    }
}

/// Deletes one version of `key` (so a delivery re-sent under the same name meanwhile stays),
/// or the key in a bucket without versioning.
pub async fn delete(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(), AwsError> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(api("DeleteObject", &format!("s3://{bucket}/{key}")))?;
    Ok(())
}

/// Puts a report (small: return reports, summaries, fee summaries).
pub async fn put(client: &Client, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<(), AwsError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(api("PutObject", &format!("s3://{bucket}/{key}")))?;
    Ok(())
}

/// Reads a small object (a report kept aside), or `None` when there is none.
pub async fn get_small(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, AwsError> {
    let resource = format!("s3://{bucket}/{key}");
    let got = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => got,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(api("GetObject", &resource)(e)),
    };
    let bytes = got.body.collect().await.map_err(|e| AwsError::Api {
        operation: "GetObject",
        resource,
        message: crate::causes(&e),
    })?;
    Ok(Some(bytes.into_bytes().to_vec()))
}

/// A key as a copy source wants it: each byte outside the unreserved set and `/` escaped
/// (institutions' file names are often Japanese).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_uri_gives_bucket_and_prefix() {
        assert_eq!(
            parse_inbox("s3://city-intake/koshigaya/").unwrap(),
            ("city-intake".to_string(), "koshigaya/".to_string())
        );
        assert_eq!(
            parse_inbox("s3://city-intake").unwrap(),
            ("city-intake".to_string(), String::new())
        );
        assert!(parse_inbox("/var/lib/kenko/inbox").is_err());
    }

    #[test]
    fn copy_sources_escape_japanese_names() {
        assert_eq!(encode_key("inbox/a b.csv"), "inbox/a%20b.csv");
        assert_eq!(
            encode_key("inbox/予防接種.csv"),
            "inbox/%E4%BA%88%E9%98%B2%E6%8E%A5%E7%A8%AE.csv"
        );
    }
}
