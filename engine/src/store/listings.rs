//! Listing the streams, event types and tags a store holds, with their
//! counts, from the index alone: every source of the index view (runs'
//! key directories, which record each list's count, and the memtables'
//! ordered key sets) is walked from the page's start key and merged, so a
//! page costs the keys it lists, never a scan of the log.

use gesta_index::Key;

use super::Store;
use crate::error::Result;
use crate::listing::{Listed, Listing, check_listing};

impl Store {
    /// One page of the names of `what` with their counts of events; see
    /// [`EventStore::list`](crate::EventStore::list) for the contract.
    pub fn list(
        &self,
        what: Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>> {
        check_listing(prefix, after, limit)?;
        let key: fn(&str) -> Key = match what {
            Listing::Streams => Key::stream,
            Listing::Types => Key::event_type,
            Listing::Tags => Key::tag,
        };
        // The head first: the view then holds every posting up to it, and
        // postings of a group still being published are left out.
        let head = self.head();
        let view = self.inner.indexes.view();
        let after = after.map(key);
        Ok(view
            .list(&key(prefix), after.as_ref(), limit, head)
            .into_iter()
            .map(|(key, count)| Listed {
                name: String::from_utf8_lossy(key.name()).into_owned(),
                count,
            })
            .collect())
    }
}
