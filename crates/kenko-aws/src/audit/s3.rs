//! S3 facts: buckets are global, so they are listed once, then each bucket is read in its own
//! region (versioning, default encryption, replication, the `kenko:data` tag, and Object Lock
//! for certificate buckets). A configuration that does not exist is a fact (no encryption, no
//! replication), an error reading it is not. A stack's records bucket has its whole tag set
//! read as well, to match it against the backup selections (`backup.coverage`).

use aws_sdk_s3::error::ProvideErrorMetadata;

use super::clients::{err_text, Clients};
use super::{BucketFacts, Fact, Policy, ReplicationRuleFacts, DATA_TAG};

/// Every bucket name of the account (and the region S3 reported with it, when it did).
pub(super) async fn list_buckets(c: &Clients) -> Fact<Vec<(String, Option<String>)>> {
    let s3 = c.s3(c.home_region());
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_buckets()
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("ListBuckets", e))?;
        for b in page.buckets() {
            if let Some(name) = b.name() {
                out.push((name.to_string(), b.bucket_region().map(String::from)));
            }
        }
        match page.continuation_token() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// A bucket's region from GetBucketLocation (empty means us-east-1, `EU` eu-west-1).
pub(super) async fn bucket_region(c: &Clients, name: &str) -> Fact<String> {
    let out = c
        .s3(c.home_region())
        .get_bucket_location()
        .bucket(name)
        .send()
        .await
        .map_err(|e| err_text("GetBucketLocation", e))?;
    Ok(match out.location_constraint().map(|l| l.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    })
}

fn bucket_of_arn(arn: &str) -> String {
    arn.strip_prefix("arn:aws:s3:::")
        .or_else(|| arn.rsplit(":::").next())
        .unwrap_or(arn)
        .to_string()
}

/// Reads one bucket. Replication destinations' regions are filled in later, once every
/// bucket's region is known.
pub(super) async fn bucket(
    c: &Clients,
    name: String,
    listed_region: Option<String>,
    policy: &Policy,
) -> BucketFacts {
    let region = match listed_region {
        Some(r) if !r.is_empty() => Ok(r),
        _ => bucket_region(c, &name).await,
    };
    let mut facts = BucketFacts {
        name: name.clone(),
        region: region.clone(),
        versioning: Err("not read".into()),
        encryption: Err("not read".into()),
        replication: Err("not read".into()),
        data_tag: Err("not read".into()),
        object_lock: None,
    };
    let Ok(region) = region else { return facts };
    let s3 = c.s3(&region);
    facts.versioning = s3
        .get_bucket_versioning()
        .bucket(&name)
        .send()
        .await
        .map(|o| o.status().map(|s| s.as_str().to_string()))
        .map_err(|e| err_text("GetBucketVersioning", e));
    facts.encryption = match s3.get_bucket_encryption().bucket(&name).send().await {
        Ok(o) => Ok(o
            .server_side_encryption_configuration()
            .map(|c| {
                c.rules()
                    .iter()
                    .filter_map(|r| r.apply_server_side_encryption_by_default())
                    .map(|d| {
                        (
                            d.sse_algorithm().as_str().to_string(),
                            d.kms_master_key_id().map(String::from),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Err(e) if e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") => {
            Ok(Vec::new())
        }
        Err(e) => Err(err_text("GetBucketEncryption", e)),
    };
    facts.replication = match s3.get_bucket_replication().bucket(&name).send().await {
        Ok(o) => Ok(o
            .replication_configuration()
            .map(|conf| {
                conf.rules()
                    .iter()
                    .enumerate()
                    .map(|(i, r)| ReplicationRuleFacts {
                        id: rule_id(r.id(), i),
                        enabled: r.status().as_str() == "Enabled",
                        destination_bucket: r
                            .destination()
                            .map(|d| bucket_of_arn(d.bucket()))
                            .unwrap_or_default(),
                        destination_region: Err("not resolved".into()),
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Err(e) if e.code() == Some("ReplicationConfigurationNotFoundError") => Ok(Vec::new()),
        Err(e) => Err(err_text("GetBucketReplication", e)),
    };
    facts.data_tag = match s3.get_bucket_tagging().bucket(&name).send().await {
        Ok(o) => Ok(o
            .tag_set()
            .iter()
            .find(|t| t.key() == DATA_TAG)
            .map(|t| t.value().to_string())),
        Err(e) if e.code() == Some("NoSuchTagSet") || e.code() == Some("NoSuchTagSetError") => {
            Ok(None)
        }
        Err(e) => Err(err_text("GetBucketTagging", e)),
    };
    if super::needs_object_lock(&facts, policy) {
        facts.object_lock = Some(
            match s3
                .get_object_lock_configuration()
                .bucket(&name)
                .send()
                .await
            {
                Ok(o) => Ok(o
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| e.as_str() == "Enabled")),
                Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
                Err(e) => Err(err_text("GetObjectLockConfiguration", e)),
            },
        );
    }
    facts
}

/// The id a replication rule is known by: its ID, or its position when it has none.
pub(super) fn rule_id(id: Option<&str>, index: usize) -> String {
    match id {
        Some(i) if !i.is_empty() => i.to_string(),
        _ => format!("#{}", index + 1),
    }
}

/// Every tag of a bucket, for matching backup selections (`backup.coverage`) only: never shown.
pub(super) async fn bucket_tags(
    c: &Clients,
    region: &str,
    name: &str,
) -> Fact<std::collections::BTreeMap<String, String>> {
    match c.s3(region).get_bucket_tagging().bucket(name).send().await {
        Ok(o) => Ok(o
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()),
        Err(e) if e.code() == Some("NoSuchTagSet") || e.code() == Some("NoSuchTagSetError") => {
            Ok(Default::default())
        }
        Err(e) => Err(err_text("GetBucketTagging", e)),
    }
}
