//! What an intake needs, opened once from the configuration: the store connection, the register
//! index the checks use, the vaccine master, the data key, the folders and today's date. Every
//! command and the watcher open it the same way (`Session::open`) and lend it to the pipeline as
//! an [`Env`].

use chrono::NaiveDate;
use kenko_intake::VaccineMaster;
use kenko_store::{Store, StoreError};

use super::s3inbox::{S3Inbox, S3InboxError, S3Summary};
use super::{run_round, Dirs, Env, Gate, RunSummary};
use crate::config::{Config, ConfigError};
use crate::crypto::DataKey;
use crate::register::{RegisterError, RegisterIndex};
use crate::telemetry::Event;

/// Why an intake session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Inbox(#[from] S3InboxError),
    #[error(transparent)]
    Key(#[from] crate::keysource::KeySourceError),
}

impl OpenError {
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::Config(e) => e.reason(),
            OpenError::Store(e) => e.reason(),
            OpenError::Register(e) => e.reason(),
            OpenError::Inbox(e) => e.reason(),
            OpenError::Key(e) => e.reason(),
        }
    }

    /// A store that is down or a register being replaced can come back; a broken master or
    /// key file will not until someone fixes it.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenError::Config(_) => false,
            // KMS out of reach can come back; a key that is not the store's will not.
            OpenError::Key(e) => e.reason() == "datakey_unavailable",
            _ => true,
        }
    }
}

/// Whether the session loads the resident register (the checks need it; `intake retry` does
/// not look at rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Load,
    Skip,
}

/// An open intake session.
pub struct Session {
    pub store: Box<dyn Store>,
    pub register: RegisterIndex,
    pub master: VaccineMaster,
    pub key: DataKey,
    pub dirs: Dirs,
    pub today: NaiveDate,
    /// The S3 inbox in front of `dirs.inbox`, when deliveries arrive in S3.
    pub s3: Option<S3Inbox>,
    /// The shrink guard of the extracts the S3 inbox imports (never `--allow-shrink`).
    pub shrink: crate::register::ShrinkGuard,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("residents", &self.register.len())
            .field("dirs", &self.dirs)
            .field("today", &self.today)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens the store and reads the key, the master and (if asked) the register.
    pub fn open(config: &Config, register: Register) -> Result<Session, OpenError> {
        let master = config.load_master()?;
        let mut store = kenko_store::open(&config.database_url)?;
        if let Ok(Some(encrypted)) = store.connection_encrypted() {
            tracing::info!(
                database = %kenko_store::redact_url(&config.database_url),
                tls = encrypted,
                "database connected"
            );
        }
        let key = crate::keysource::data_key(config, store.as_mut())?;
        let s3 = config
            .s3_inbox
            .as_deref()
            .map(|uri| S3Inbox::open(uri, &kenko_api::aws::Endpoint::from_env()))
            .transpose()?;
        let dirs = config.dirs();
        let shrink = crate::register::ShrinkGuard {
            max_percent: config.register_max_shrink_percent,
            allow: false,
        };
        // In the cluster the register arrives in the bucket, before anything needs it.
        if let (Some(inbox), Register::Load) = (&s3, register) {
            inbox.sync_register(store.as_mut(), &key, &dirs, shrink)?;
        }
        let register = match register {
            Register::Load => load_register(store.as_mut(), &key)?,
            Register::Skip => RegisterIndex::default(),
        };
        Ok(Session {
            store,
            register,
            master,
            key,
            dirs,
            today: config.today(),
            s3,
            shrink,
        })
    }

    /// Imports a register extract waiting in the S3 inbox's bucket, then reloads the register
    /// when the store holds a newer one (an import since).
    pub fn refresh_register(&mut self) -> Result<(), OpenError> {
        if let Some(inbox) = &self.s3 {
            inbox.sync_register(self.store.as_mut(), &self.key, &self.dirs, self.shrink)?;
        }
        let generation = self.store.register_generation()?;
        if self.register.generation() != generation {
            self.register = load_register(self.store.as_mut(), &self.key)?;
        }
        Ok(())
    }

    /// One round over the inbox: the S3 inbox's stage and finish around the local round when
    /// there is one.
    pub fn round(
        &mut self,
        settle: std::time::Duration,
        gate: &mut dyn Gate,
    ) -> Result<(RunSummary, Option<S3Summary>), S3InboxError> {
        let s3 = self.s3.take();
        let result = match &s3 {
            Some(inbox) => inbox
                .round(&mut self.env(), settle, gate)
                .map(|(r, s)| (r, Some(s))),
            None => run_round(&mut self.env(), settle, gate)
                .map(|r| (r, None))
                .map_err(S3InboxError::from),
        };
        self.s3 = s3;
        result
    }

    /// The pipeline's view of this session.
    pub fn env(&mut self) -> Env<'_> {
        Env {
            store: self.store.as_mut(),
            register: &self.register,
            master: &self.master,
            key: &self.key,
            dirs: &self.dirs,
            today: self.today,
            publish: None,
        }
    }
}

fn load_register(store: &mut dyn Store, key: &DataKey) -> Result<RegisterIndex, RegisterError> {
    let rewritten = crate::register::tokenize_stored_births(store, key)?;
    if rewritten > 0 {
        tracing::info!(
            residents = rewritten,
            "birth dates an earlier version stored in clear are now tokens"
        );
    }
    let idx = RegisterIndex::load(store, key)?;
    Event::RegisterLoaded {
        residents: idx.len(),
    }
    .emit();
    Ok(idx)
}
