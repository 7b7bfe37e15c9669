//! AWS addresses as kenko's configuration files and targets write them, read without the AWS
//! SDK: the endpoint settings every command shares, `s3://` locations and KMS key ARNs. The
//! adapters in `kenko-aws` connect with them; configuration is checked with them even in a
//! build without the SDK, so a mistyped address is the same clear error everywhere.

/// Connection settings: the region to start in, and the endpoint of an emulator if any.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub region: String,
    pub endpoint_url: Option<String>,
    /// Per-service endpoints (service id `s3`, `kms`, `ec2`, `backup`...), where one service
    /// is reached elsewhere than the rest (a closed network's VPC endpoint with its own name,
    /// or an emulator that lacks one API).
    pub service_urls: Vec<(String, String)>,
}

/// The services that can have their own endpoint (`KENKO_AWS_ENDPOINT_URL_<ID>`).
pub const SERVICES: [&str; 6] = ["s3", "kms", "ec2", "backup", "cloudtrail", "logs"];

impl Endpoint {
    /// What every kenko command uses: `AWS_REGION` (default Tokyo), the emulator's
    /// `KENKO_AWS_ENDPOINT_URL`, if set, and `KENKO_AWS_ENDPOINT_URL_BACKUP` (and the other
    /// [`SERVICES`]) for one service.
    #[allow(
        clippy::disallowed_methods,
        reason = "the AWS endpoint's configuration is the SDK's own environment variables"
    )]
    pub fn from_env() -> Endpoint {
        Endpoint {
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "ap-northeast-1".into()),
            endpoint_url: std::env::var("KENKO_AWS_ENDPOINT_URL").ok(),
            service_urls: SERVICES
                .iter()
                .filter_map(|s| {
                    std::env::var(format!("KENKO_AWS_ENDPOINT_URL_{}", s.to_ascii_uppercase()))
                        .ok()
                        .map(|url| (s.to_string(), url))
                })
                .collect(),
        }
    }

    /// The endpoint for one service: its own, else the common one, else AWS's.
    pub fn url_for(&self, service: &str) -> Option<&str> {
        self.service_urls
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, u)| u.as_str())
            .or(self.endpoint_url.as_deref())
    }
}

/// An address that is not what its place expects; the message names it and the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadAddress(pub String);

/// Splits `s3://bucket[/prefix]`.
pub fn parse_s3(target: &str) -> Result<(String, String), BadAddress> {
    let bad = || BadAddress(format!("{target}: expected s3://BUCKET[/PREFIX]"));
    let rest = target.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad());
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// `s3://BUCKET/PREFIX/` → (bucket, prefix with a trailing `/`, or empty).
pub fn parse_inbox(uri: &str) -> Result<(String, String), BadAddress> {
    let (bucket, prefix) = parse_s3(uri)?;
    let prefix = prefix.trim_matches('/');
    Ok((
        bucket,
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
    ))
}

/// The region of a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
pub fn key_region(arn: &str) -> Result<&str, BadAddress> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "kms", region, _, rest] if !region.is_empty() && rest.starts_with("key/") => {
            Ok(region)
        }
        _ => Err(BadAddress(format!(
            "{arn}: expected a KMS key ARN arn:aws:kms:REGION:ACCOUNT:key/ID"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_or_say_what_was_expected() {
        assert_eq!(
            parse_s3("s3://b/p/q").unwrap(),
            ("b".to_string(), "p/q".to_string())
        );
        assert_eq!(
            parse_inbox("s3://b/p").unwrap(),
            ("b".to_string(), "p/".to_string())
        );
        assert_eq!(parse_inbox("s3://b").unwrap().1, "");
        let e = parse_s3("/srv/inbox").unwrap_err();
        assert_eq!(e.to_string(), "/srv/inbox: expected s3://BUCKET[/PREFIX]");
        assert!(parse_s3("s3:///p").is_err());
        assert_eq!(
            key_region("arn:aws:kms:ap-northeast-3:111122223333:key/mrk-1").unwrap(),
            "ap-northeast-3"
        );
        assert!(key_region("arn:aws:s3:::bucket")
            .unwrap_err()
            .to_string()
            .contains("expected a KMS key ARN"));
    }
}
