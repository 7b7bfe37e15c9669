//! Where the records' data key comes from, and the check that it is the key the store's
//! tokens and ciphertexts were made with.
//!
//! - **Key file** (the local default): `DATA_DIR/keys/records.key`, 0600.
//! - **The stack's KMS key** (`[intake] kms_key_arn`, in the cluster from the HealthStack's
//!   `storage.kmsKeyArn`): envelope encryption. KMS generates the data key once, for an empty
//!   store; its wrapped form is stored beside the records (`kenko_meta.data_key_wrapped`) and
//!   unwrapped at every start, in memory only. No copy of the clear key is ever written, so
//!   scheduling the KMS key's deletion makes the database, its snapshots and its backups in
//!   Osaka unreadable at once.
//!
//! Either way the store records the key's public id (`kenko_meta.data_key_id`) with the first
//! data, and a start with any other key is refused: a lost key file silently recreated, or a
//! wrong key mounted, would otherwise return every following row as a mismatch.

use kenko_store::{Store, StoreError};
#[cfg(feature = "cloud")]
use zeroize::Zeroizing;

use crate::config::Config;
use crate::crypto::{DataKey, KeyError};

/// The metadata key of the data key's public id.
pub const META_KEY_ID: &str = "data_key_id";
/// The metadata key of the KMS-wrapped data key (hex).
pub const META_WRAPPED: &str = "data_key_wrapped";
/// The metadata key naming the KMS key that wrapped it.
pub const META_KMS_KEY: &str = "data_key_kms_key";

#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    NoCloud(#[from] crate::NoCloud),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stack's KMS key {key_arn} could not unwrap or make the data key: {message}")]
    Kms { key_arn: String, message: String },
    #[error("the store's data was made under data key {expected}, but this agent holds key {found}; refusing to start (runbooks/data-key.md)")]
    Mismatch { expected: String, found: String },
    #[error("the store holds data but no wrapped data key for KMS key {key_arn}; refusing to make a new key for data made under another (runbooks/data-key.md)")]
    WrappedMissing { key_arn: String },
    #[error("the store's data key was wrapped by KMS key {stored}, not {configured}; refusing to start (runbooks/data-key.md)")]
    OtherKmsKey { stored: String, configured: String },
    #[error("data key {path} is missing, and the store's data was made under key {expected}; restore that key file (a new key would make every stored My Number unreadable) (runbooks/data-key.md)")]
    FileMissing {
        path: std::path::PathBuf,
        expected: String,
    },
    #[error("the stored wrapped data key is not hex")]
    WrappedMalformed,
}

impl KeySourceError {
    pub fn reason(&self) -> &'static str {
        match self {
            KeySourceError::Key(e) => e.reason(),
            KeySourceError::NoCloud(e) => e.reason(),
            KeySourceError::Store(e) => e.reason(),
            KeySourceError::Kms { .. } => "datakey_unavailable",
            KeySourceError::Mismatch { .. } | KeySourceError::OtherKmsKey { .. } => {
                "datakey_mismatch"
            }
            KeySourceError::WrappedMissing { .. }
            | KeySourceError::WrappedMalformed
            | KeySourceError::FileMissing { .. } => "datakey_missing",
        }
    }
}

/// The data key for `store`, from the configured source, checked against the id the store
/// recorded (and recorded when the store has none yet).
pub fn data_key(config: &Config, store: &mut dyn Store) -> Result<DataKey, KeySourceError> {
    let key = match &config.kms_key_arn {
        None => {
            // A key file gone is restored, never silently replaced, once the store has data.
            if !config.data_key_file.exists() {
                if let Some(expected) = store.meta(META_KEY_ID)? {
                    return Err(KeySourceError::FileMissing {
                        path: config.data_key_file.clone(),
                        expected,
                    });
                }
            }
            config.load_key().map_err(|e| match e {
                crate::config::ConfigError::Key(k) => KeySourceError::Key(k),
                other => KeySourceError::Kms {
                    key_arn: String::new(),
                    message: other.to_string(),
                },
            })?
        }
        Some(arn) => from_kms(arn, &config.key_stack, store)?,
    };
    check_id(&key, store)?;
    Ok(key)
}

/// Compares the key's id with the store's, recording it for a store that has none: one
/// holding data made before ids were recorded is accepted only when its ciphertexts open.
pub fn check_id(key: &DataKey, store: &mut dyn Store) -> Result<(), KeySourceError> {
    let found = key.id_hex();
    let expected = match store.meta(META_KEY_ID)? {
        Some(id) => id,
        None => {
            if let Some((resident_no, ct)) = store.sample_ciphertexts(1)?.into_iter().next() {
                if key.open(resident_no, &ct).is_err() {
                    return Err(KeySourceError::Mismatch {
                        expected: "(not recorded; its ciphertexts do not open)".into(),
                        found,
                    });
                }
            }
            store.meta_insert(META_KEY_ID, &found)?
        }
    };
    if expected != found {
        return Err(KeySourceError::Mismatch { expected, found });
    }
    Ok(())
}

#[cfg(not(feature = "cloud"))]
fn from_kms(arn: &str, _stack: &str, _store: &mut dyn Store) -> Result<DataKey, KeySourceError> {
    Err(crate::NoCloud::new(format!("the data key wrapped by {arn}")).into())
}

#[cfg(feature = "cloud")]
fn from_kms(arn: &str, stack: &str, store: &mut dyn Store) -> Result<DataKey, KeySourceError> {
    let kms = |e: kenko_aws::AwsError| KeySourceError::Kms {
        key_arn: arn.to_string(),
        message: e.to_string(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KeySourceError::Kms {
            key_arn: arn.to_string(),
            message: e.to_string(),
        })?;
    let ep = kenko_api::aws::Endpoint::from_env();
    if let Some(stored) = store.meta(META_KMS_KEY)? {
        if stored != arn {
            return Err(KeySourceError::OtherKmsKey {
                stored,
                configured: arn.to_string(),
            });
        }
    }
    let wrapped = match store.meta(META_WRAPPED)? {
        Some(w) => w,
        None => {
            if store.holds_data()? {
                return Err(KeySourceError::WrappedMissing {
                    key_arn: arn.to_string(),
                });
            }
            let (clear, wrapped) = rt
                .block_on(kenko_aws::datakey::generate(&ep, arn, stack))
                .map_err(kms)?;
            store.meta_insert(META_KMS_KEY, arn)?;
            let ours = hex::encode(&wrapped);
            let stored = store.meta_insert(META_WRAPPED, &ours)?;
            if stored == ours {
                return Ok(DataKey::from_bytes(&clear));
            }
            // Another agent recorded its key first: use that one.
            stored
        }
    };
    let blob = Zeroizing::new(hex::decode(&wrapped).map_err(|_| KeySourceError::WrappedMalformed)?);
    let clear = rt
        .block_on(kenko_aws::datakey::unwrap(&ep, arn, stack, &blob))
        .map_err(kms)?;
    Ok(DataKey::from_bytes(&clear))
}
