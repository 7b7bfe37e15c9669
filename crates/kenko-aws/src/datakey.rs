//! Envelope encryption of a stack's data key with the stack's KMS key (`storage.kmsKeyArn`):
//! KMS generates the 32-byte data key and returns it twice, in clear (kept in memory only,
//! zeroized) and wrapped under the KMS key (stored beside the records). Unwrapping needs the
//! KMS key, so scheduling that key's deletion makes every copy of the wrapped key (the
//! database, its snapshots, its backups in Osaka) useless: a crypto-erase of the stack.
//!
//! Every call binds an encryption context naming what the key is for and which stack it
//! belongs to, so a wrapped key copied into another stack's database does not unwrap there.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::{api, AwsError, Endpoint};

/// The encryption context of a stack's data key.
pub fn context(stack: &str) -> [(&'static str, String); 2] {
    [
        ("kenko:purpose", "record-data-key".to_string()),
        ("kenko:stack", stack.to_string()),
    ]
}

/// The region of a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
pub fn key_region(arn: &str) -> Result<&str, AwsError> {
    kenko_api::aws::key_region(arn).map_err(|e| AwsError::BadTarget(e.0))
}

/// A new data key under `key_arn`: the clear key (zeroized on drop) and its wrapped form.
pub async fn generate(
    ep: &Endpoint,
    key_arn: &str,
    stack: &str,
) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), AwsError> {
    let kms = crate::kms_client(ep, key_region(key_arn)?).await;
    let mut req = kms
        .generate_data_key()
        .key_id(key_arn)
        .key_spec(DataKeySpec::Aes256);
    for (k, v) in context(stack) {
        req = req.encryption_context(k, v);
    }
    let out = req.send().await.map_err(api("GenerateDataKey", key_arn))?;
    let clear = out
        .plaintext()
        .ok_or_else(|| missing("GenerateDataKey", key_arn, "Plaintext"))?;
    let key = to_key(clear.as_ref(), "GenerateDataKey", key_arn)?;
    let wrapped = out
        .ciphertext_blob()
        .ok_or_else(|| missing("GenerateDataKey", key_arn, "CiphertextBlob"))?
        .as_ref()
        .to_vec();
    Ok((key, wrapped))
}

/// Unwraps a stored data key. The KMS key is named, so a blob made under another key is
/// refused by KMS rather than decrypted with whatever key it names.
pub async fn unwrap(
    ep: &Endpoint,
    key_arn: &str,
    stack: &str,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; 32]>, AwsError> {
    let kms = crate::kms_client(ep, key_region(key_arn)?).await;
    // KMS refuses to decrypt under a disabled key or one pending deletion; asking first
    // gives the operator the key's state in one line (and the emulator, which does not
    // enforce key states on Decrypt, the same answer as KMS).
    let described = kms
        .describe_key()
        .key_id(key_arn)
        .send()
        .await
        .map_err(api("DescribeKey", key_arn))?;
    let state = described
        .key_metadata()
        .and_then(|m| m.key_state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if state != "Enabled" {
        return Err(AwsError::Api {
            operation: "Decrypt",
            resource: key_arn.to_string(),
            message: format!(
                "the key is {state}, not Enabled: nothing it wrapped can be unwrapped"
            ),
        });
    }
    let mut req = kms
        .decrypt()
        .key_id(key_arn)
        .ciphertext_blob(Blob::new(wrapped.to_vec()));
    for (k, v) in context(stack) {
        req = req.encryption_context(k, v);
    }
    let out = req.send().await.map_err(api("Decrypt", key_arn))?;
    let clear = out
        .plaintext()
        .ok_or_else(|| missing("Decrypt", key_arn, "Plaintext"))?;
    to_key(clear.as_ref(), "Decrypt", key_arn)
}

fn to_key(bytes: &[u8], op: &'static str, key_arn: &str) -> Result<Zeroizing<[u8; 32]>, AwsError> {
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(AwsError::Api {
            operation: op,
            resource: key_arn.to_string(),
            message: format!("the data key is {} bytes, expected 32", bytes.len()),
        });
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

fn missing(op: &'static str, key_arn: &str, field: &str) -> AwsError {
    AwsError::Api {
        operation: op,
        resource: key_arn.to_string(),
        message: format!("the answer has no {field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_arn() {
        assert_eq!(
            key_region("arn:aws:kms:ap-northeast-3:123456789012:key/mrk-1").unwrap(),
            "ap-northeast-3"
        );
        assert!(key_region("arn:aws:kms::123456789012:key/1").is_err());
        assert!(key_region("arn:aws:s3:::bucket").is_err());
        assert!(key_region("alias/kenko").is_err());
    }
}
