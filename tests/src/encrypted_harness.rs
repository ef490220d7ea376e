//! The harness that runs the conformance suite and the crypto-shredding
//! cases through [`Encrypted`], over any other harness's stores: each
//! store gets a key file of its own in a temporary directory of the
//! harness, and a reopen reopens the inner store and then the wrapper on
//! the same key file.

use std::path::{Path, PathBuf};

use gesta::encryption::{Encrypted, EncryptionOptions};

use crate::conformance::Harness;

/// Wraps the stores of harness `H` in [`Encrypted`].
#[derive(Debug)]
pub struct EncryptedHarness<H> {
    inner: H,
    keys: tempfile::TempDir,
    next: u64,
}

impl<H: Harness> EncryptedHarness<H> {
    /// The stores of `inner`, encrypted, subjects named by `subject:` tags.
    pub fn new(inner: H) -> EncryptedHarness<H> {
        EncryptedHarness {
            inner,
            keys: tempfile::tempdir().expect("a temporary directory for key files"),
            next: 0,
        }
    }

    /// The directory that holds the harness's key files.
    pub fn key_dir(&self) -> &Path {
        self.keys.path()
    }

    /// The harness inside.
    pub fn inner_harness(&mut self) -> &mut H {
        &mut self.inner
    }

    fn open(&self, store: H::Store, key_file: PathBuf) -> Encrypted<H::Store> {
        Encrypted::open(store, EncryptionOptions::new(key_file))
            .unwrap_or_else(|e| panic!("opening the encryption wrapper: {e}"))
    }
}

impl<H: Harness> Harness for EncryptedHarness<H> {
    type Store = Encrypted<H::Store>;

    fn create(&mut self) -> Self::Store {
        self.next += 1;
        let key_file = self.keys.path().join(format!("keys-{}", self.next));
        let store = self.inner.create();
        self.open(store, key_file)
    }

    fn reopen(&mut self, store: Self::Store) -> Self::Store {
        let key_file = store.key_file().to_owned();
        let inner = self.inner.reopen(store.into_inner());
        self.open(inner, key_file)
    }

    fn flush_index(&mut self, store: &Self::Store) {
        self.inner.flush_index(store.inner());
    }

    fn compact(&mut self, store: &Self::Store) {
        self.inner.compact(store.inner());
    }

    fn name(&self) -> &'static str {
        "encrypted"
    }
}
