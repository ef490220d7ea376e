//! Opening a store through crypto-shredding's wrapper
//! (`gesta::encryption::Encrypted`) when it is encrypted: its directory
//! holds the key file (`KEYS`), which `gesta append --encrypt` creates and
//! which records the subject prefix. So the store remembers: `append`,
//! `read`, `get` and `forget` seal and open its subjects' events without
//! a flag, and no command writes a subject's data in clear into a store
//! that seals them.

use std::ops::Deref;

use gesta::encryption::{Encrypted, EncryptionOptions, KEY_FILE_NAME};
use gesta::{EventStore, Store};

use crate::failure::Failure;

/// A store, through the wrapper when it is encrypted.
pub enum Opened {
    /// A store without a key file.
    Plain(Store),
    /// A store whose directory holds a key file.
    Encrypted(Encrypted<Store>),
}

impl Opened {
    /// `store` through the wrapper if its directory holds a key file, or
    /// if `encrypt` (which creates the key file).
    pub fn wrap(store: Store, encrypt: bool) -> Result<Opened, Failure> {
        if !encrypt && !is_encrypted(store.path()) {
            return Ok(Opened::Plain(store));
        }
        let options = EncryptionOptions::in_dir(store.path());
        match Encrypted::open(store, options) {
            Ok(s) => Ok(Opened::Encrypted(s)),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the store (waiting for its background work).
    pub fn close(self) -> Result<(), Failure> {
        match self {
            Opened::Plain(s) => s.close()?,
            Opened::Encrypted(s) => s.into_inner().close()?,
        }
        Ok(())
    }
}

impl Deref for Opened {
    type Target = dyn EventStore;

    fn deref(&self) -> &(dyn EventStore + 'static) {
        match self {
            Opened::Plain(s) => s,
            Opened::Encrypted(s) => s,
        }
    }
}

/// Whether the store in `dir` is encrypted (holds a key file).
pub fn is_encrypted(dir: &std::path::Path) -> bool {
    dir.join(KEY_FILE_NAME).is_file()
}
