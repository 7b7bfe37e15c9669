//! What an intake needs, opened once from the configuration: the store connection, the register
//! index the checks use, the vaccine master, the data key, the folders and today's date. Every
//! command and the watcher open it the same way (`Session::open`) and lend it to the pipeline as
//! an [`Env`].

use chrono::NaiveDate;
use kenko_intake::VaccineMaster;
use kenko_store::{Store, StoreError};

use super::{Dirs, Env};
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
}

impl OpenError {
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::Config(e) => e.reason(),
            OpenError::Store(e) => e.reason(),
            OpenError::Register(e) => e.reason(),
        }
    }

    /// A store that is down or a register being replaced can come back; a broken master or
    /// key file will not until someone fixes it.
    pub fn is_transient(&self) -> bool {
        !matches!(self, OpenError::Config(_))
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
        let key = config.load_key()?;
        let master = config.load_master()?;
        let mut store = kenko_store::open(&config.database_url)?;
        let register = match register {
            Register::Load => load_register(store.as_mut())?,
            Register::Skip => RegisterIndex::default(),
        };
        Ok(Session {
            store,
            register,
            master,
            key,
            dirs: config.dirs(),
            today: config.today(),
        })
    }

    /// Reloads the register when the store holds a newer one (a `residents import` since).
    pub fn refresh_register(&mut self) -> Result<(), OpenError> {
        let generation = self.store.register_generation()?;
        if self.register.generation() != generation {
            self.register = load_register(self.store.as_mut())?;
        }
        Ok(())
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
        }
    }
}

fn load_register(store: &mut dyn Store) -> Result<RegisterIndex, RegisterError> {
    let idx = RegisterIndex::load(store)?;
    Event::RegisterLoaded {
        residents: idx.len(),
    }
    .emit();
    Ok(idx)
}
