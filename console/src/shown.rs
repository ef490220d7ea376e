//! [`ConsoleStore`]: the store a console shows, plain or through
//! crypto-shredding's wrapper (`gesta::encryption::Encrypted`), so that an
//! encrypted store's events are shown opened (a forgotten subject's
//! empty) and appended sealed, never shown as ciphertext.

use std::path::Path;
use std::sync::Arc;

use gesta::encryption::{Encrypted, EncryptionOptions, is_encrypted};

/// A store as a console shows it: a [`gesta::Store`], or one opened
/// through [`Encrypted`]. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleStore {
    /// The engine's store (the wrapper's inner store, when there is one).
    store: gesta::Store,
    encrypted: Option<Arc<Encrypted<gesta::Store>>>,
}

impl std::fmt::Debug for ConsoleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleStore")
            .field("path", &self.store.path())
            .field("encrypted", &self.encrypted.is_some())
            .finish()
    }
}

impl From<gesta::Store> for ConsoleStore {
    fn from(store: gesta::Store) -> ConsoleStore {
        ConsoleStore {
            store,
            encrypted: None,
        }
    }
}

impl From<Arc<Encrypted<gesta::Store>>> for ConsoleStore {
    fn from(encrypted: Arc<Encrypted<gesta::Store>>) -> ConsoleStore {
        ConsoleStore {
            store: encrypted.inner().clone(),
            encrypted: Some(encrypted),
        }
    }
}

impl From<Encrypted<gesta::Store>> for ConsoleStore {
    fn from(encrypted: Encrypted<gesta::Store>) -> ConsoleStore {
        Arc::new(encrypted).into()
    }
}

impl ConsoleStore {
    /// `store` through the wrapper if its directory holds the key file
    /// (`KEYS`: the store is encrypted), plain otherwise.
    pub fn wrap(store: gesta::Store) -> gesta::Result<ConsoleStore> {
        if !is_encrypted(store.path()) {
            return Ok(store.into());
        }
        let options = EncryptionOptions::in_dir(store.path());
        Ok(Encrypted::open(store, options)?.into())
    }

    /// Whether the store is shown through the wrapper.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.is_some()
    }

    /// The engine's store: its state (head, files, index shape) and
    /// closing it. Reading events from it bypasses the wrapper.
    pub fn engine(&self) -> &gesta::Store {
        &self.store
    }

    /// Where the store is.
    pub(crate) fn path(&self) -> &Path {
        self.store.path()
    }

    /// The store as the `EventStore` contract, for every read and write of
    /// events: the wrapper when the store is encrypted.
    pub(crate) fn events(&self) -> &dyn gesta::EventStore {
        match &self.encrypted {
            Some(e) => &**e,
            None => &self.store,
        }
    }
}
