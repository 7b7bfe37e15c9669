//! SDK clients for the sweep: one shared configuration (so credentials are resolved once, not
//! once per region), a client per region and service on demand, an endpoint per region
//! (the emulator, or a test's unreachable address), and an interceptor counting every HTTP
//! attempt (retries included) so the report and the benchmark can say how many calls the
//! audit cost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::Endpoint;

/// Counts attempts. The interceptor traits are the same `aws-smithy-runtime-api` ones for every
/// service crate, so one type serves S3, EC2, KMS and Backup.
#[derive(Debug, Clone, Default)]
struct CountAttempts(Arc<AtomicU64>);

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "kenko-count-attempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Clients for every region of a sweep.
#[derive(Debug, Clone)]
pub struct Clients {
    conf: SdkConfig,
    endpoint: Endpoint,
    overrides: BTreeMap<String, String>,
    calls: CountAttempts,
}

/// Parses `REGION=URL[,REGION=URL...]` (the hidden `KENKO_AWS_REGION_ENDPOINTS`).
pub fn parse_endpoint_overrides(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, url) = part
            .split_once('=')
            .filter(|(r, u)| {
                !r.is_empty() && (u.starts_with("http://") || u.starts_with("https://"))
            })
            .ok_or_else(|| format!("{part:?}: expected REGION=http(s)://HOST:PORT"))?;
        out.insert(region.to_string(), url.to_string());
    }
    Ok(out)
}

impl Clients {
    pub async fn new(endpoint: &Endpoint, overrides: BTreeMap<String, String>) -> Clients {
        // Bounded waits: a region that does not answer becomes Unknown in minutes, not never.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(endpoint.region.clone()))
            .timeout_config(timeouts)
            .load()
            .await;
        Clients {
            conf,
            endpoint: endpoint.clone(),
            overrides,
            calls: CountAttempts::default(),
        }
    }

    /// HTTP attempts made so far by every client of this set.
    pub fn api_calls(&self) -> u64 {
        self.calls.0.load(Ordering::Relaxed)
    }

    /// The region S3's global calls (ListBuckets) go to.
    pub fn home_region(&self) -> &str {
        &self.endpoint.region
    }

    /// A region's override first (a test's unreachable region), then the service's own
    /// endpoint (`KENKO_AWS_ENDPOINT_URL_BACKUP`...), then the common one.
    fn url(&self, region: &str, service: &str) -> Option<&str> {
        self.overrides
            .get(region)
            .map(String::as_str)
            .or(self.endpoint.url_for(service))
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let url = self.url(region, "s3");
        let mut b = aws_sdk_s3::config::Builder::from(&self.conf)
            .region(Region::new(region.to_string()))
            .force_path_style(url.is_some())
            .interceptor(self.calls.clone());
        if let Some(u) = url {
            b = b.endpoint_url(u);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut b = aws_sdk_ec2::config::Builder::from(&self.conf)
            .region(Region::new(region.to_string()))
            .interceptor(self.calls.clone());
        if let Some(u) = self.url(region, "ec2") {
            b = b.endpoint_url(u);
        }
        aws_sdk_ec2::Client::from_conf(b.build())
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let mut b = aws_sdk_kms::config::Builder::from(&self.conf)
            .region(Region::new(region.to_string()))
            .interceptor(self.calls.clone());
        if let Some(u) = self.url(region, "kms") {
            b = b.endpoint_url(u);
        }
        aws_sdk_kms::Client::from_conf(b.build())
    }

    pub fn backup(&self, region: &str) -> aws_sdk_backup::Client {
        let mut b = aws_sdk_backup::config::Builder::from(&self.conf)
            .region(Region::new(region.to_string()))
            .interceptor(self.calls.clone());
        if let Some(u) = self.url(region, "backup") {
            b = b.endpoint_url(u);
        }
        aws_sdk_backup::Client::from_conf(b.build())
    }
}

/// An SDK error as one line: the operation, then each cause's message (the service's code and
/// message, or the connection error), without the SDK's debug dump.
/// The HTTP status comes first when there is one: an endpoint without the API (an emulator)
/// answers 404 with a page the SDK cannot parse, and the status says more than the parse error.
pub(crate) fn err_text<E: std::error::Error + 'static>(
    operation: &str,
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    let status = e
        .raw_response()
        .map(|r| format!("HTTP {}: ", r.status().as_u16()))
        .unwrap_or_default();
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    format!("{operation}: {status}{}", parts.join(": "))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_parse() {
        let m = parse_endpoint_overrides("ap-southeast-1=http://127.0.0.1:1, us-east-1=https://x")
            .unwrap();
        assert_eq!(m["ap-southeast-1"], "http://127.0.0.1:1");
        assert_eq!(m["us-east-1"], "https://x");
        assert!(parse_endpoint_overrides("").unwrap().is_empty());
        assert!(parse_endpoint_overrides("ap-southeast-1").is_err());
        assert!(parse_endpoint_overrides("=http://x").is_err());
        assert!(parse_endpoint_overrides("r=ftp://x").is_err());
    }
}
