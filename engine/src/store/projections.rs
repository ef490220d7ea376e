//! The store's projection methods; the projections themselves are
//! `crate::projections`', their background pass `crate::compactor`'s.

use super::Store;
use crate::error::{Error, Result};
use crate::projections::Projection;

impl Store {
    /// Registers `projection`, replacing one of the same name. A new
    /// version starts from its initial state (its snapshots are under their
    /// own key, and those of every other version are deleted); the same
    /// version resumes from its newest snapshot. Starts the background
    /// projector on first use. Snapshot keys starting with `projection:`
    /// are the projections'. A name longer than
    /// [`MAX_PROJECTION_NAME_LEN`](crate::MAX_PROJECTION_NAME_LEN) bytes,
    /// or empty, is [`Error::InvalidInput`].
    ///
    /// Closing the store (explicitly or by dropping its last handle) waits
    /// for a projector pass in flight.
    pub fn register_projection<S: Clone + Send + Sync + 'static>(
        &self,
        projection: Projection<S>,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // The projector saves snapshots: a replica's are its writer's.
        self.writable()?;
        let source = self.projection_source();
        self.inner.projections.register(&source, projection)?;
        self.inner
            .projector
            .ensure(
                &self.inner.projections,
                &source,
                self.inner.indexes.projection_interval(),
            )
            .map_err(|source| Error::Io {
                path: self.path().to_owned(),
                source,
            })
    }

    /// The state of the projection registered as `name` at the current
    /// head: the newest folded state (the background copy or the newest
    /// snapshot) plus a fold of the matching events after it. `S` must be
    /// the type it was registered with.
    pub fn project<S: Clone + Send + Sync + 'static>(&self, name: &str) -> Result<S> {
        self.inner
            .projections
            .project(&self.projection_source(), name)
    }
}
