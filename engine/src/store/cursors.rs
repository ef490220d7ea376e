//! The engine's durable subscription cursors: a file each (see
//! `cursors`), saved only once the log is durable up to the position, so
//! a cursor never runs ahead of what a crash keeps.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use crate::cursors::Cursors;
use crate::durable::CursorStore;
use crate::error::{Error, Result};

use super::Inner;

/// The engine's cursors: a file each (see `cursors`), acknowledged only
/// once the log is durable up to the position.
pub(crate) struct FileCursors {
    pub(crate) cursors: Cursors,
    pub(crate) store: Weak<Inner>,
}

impl CursorStore for FileCursors {
    fn head(&self) -> Result<u64> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        if inner.shared.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(inner.shared.head.load(Ordering::Acquire))
    }

    fn load(&self, name: &str) -> Result<Option<u64>> {
        self.cursors.load(name)
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        inner.make_durable(position)?;
        self.cursors.store(name, position)
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        self.cursors.list()
    }

    fn remove(&self, name: &str) -> Result<bool> {
        self.cursors.delete(name)
    }

    fn place(&self) -> std::path::PathBuf {
        self.cursors.dir().to_owned()
    }
}
