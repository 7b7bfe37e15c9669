//! KMS facts of one region: every key. Keys outside Japan are described (who manages them and
//! their state) so the finding says what was found; keys in Japan need no further call.

use super::clients::{err_text, Clients};
use super::{in_japan, Fact, KeyFacts};

pub(super) async fn collect(c: &Clients, region: &str) -> Fact<Vec<KeyFacts>> {
    let kms = c.kms(region);
    let mut keys = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_keys()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| err_text("ListKeys", e))?;
        for k in page.keys() {
            let arn = k.key_arn().map(String::from).unwrap_or_else(|| {
                format!(
                    "arn:aws:kms:{region}::key/{}",
                    k.key_id().unwrap_or_default()
                )
            });
            keys.push(KeyFacts {
                arn,
                described: None,
            });
        }
        match (page.truncated(), page.next_marker()) {
            (true, Some(m)) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    if !in_japan(region) {
        for k in &mut keys {
            k.described = Some(
                kms.describe_key()
                    .key_id(&k.arn)
                    .send()
                    .await
                    .map_err(|e| err_text("DescribeKey", e))
                    .map(|o| {
                        let m = o.key_metadata();
                        (
                            m.and_then(|m| m.key_manager())
                                .map(|x| x.as_str().to_string())
                                .unwrap_or_default(),
                            m.and_then(|m| m.key_state())
                                .map(|x| x.as_str().to_string())
                                .unwrap_or_default(),
                        )
                    }),
            );
        }
    }
    Ok(keys)
}
