//! Listings of what a store holds: its streams, event types and tags, each
//! with a count of events, a page at a time (see
//! [`EventStore::list`](crate::EventStore::list) for the contract). This
//! module owns the request's checks, shared by every store, and the
//! reference paging that [`MemoryStore`](crate::MemoryStore) applies to
//! counts it gathers by scanning.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::event::MAX_NAME_LEN;

/// The largest page a listing returns.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// What a listing lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Listing {
    /// Stream names; a stream's count is its number of events not removed
    /// (its last revision + 1 until one is removed: truncated, deleted, by
    /// retention).
    Streams,
    /// Event types; the count is the number of events of the type.
    Types,
    /// Tags; the count is the number of events carrying the tag (an event
    /// that carries a tag twice counts once).
    Tags,
}

impl Listing {
    /// The plural noun, for messages and the command line.
    pub fn noun(self) -> &'static str {
        match self {
            Listing::Streams => "streams",
            Listing::Types => "event types",
            Listing::Tags => "tags",
        }
    }
}

/// One name a store holds, with its count of events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listed {
    /// The stream name, event type or tag.
    pub name: String,
    /// How many committed events it has (always at least 1).
    pub count: u64,
}

impl Listed {
    /// A listed name with its count.
    pub fn new(name: impl Into<String>, count: u64) -> Listed {
        Listed {
            name: name.into(),
            count,
        }
    }
}

/// Checks a listing request: `prefix` and `after` at most
/// [`MAX_NAME_LEN`] bytes (no name is longer), `limit` from 1 to
/// [`MAX_LIST_LIMIT`].
pub fn check_listing(prefix: &str, after: Option<&str>, limit: usize) -> Result<()> {
    if prefix.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "listing prefix is {} bytes, the limit is {MAX_NAME_LEN}",
            prefix.len()
        )));
    }
    if let Some(after) = after
        && after.len() > MAX_NAME_LEN
    {
        return Err(Error::invalid(format!(
            "listing after is {} bytes, the limit is {MAX_NAME_LEN}",
            after.len()
        )));
    }
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(Error::invalid(format!(
            "listing limit must be 1 to {MAX_LIST_LIMIT}, got {limit}"
        )));
    }
    Ok(())
}

/// Where a page starts: the first name to consider, and whether that name
/// itself is excluded (it is `after`). Whichever of `prefix` (inclusive)
/// and `after` (exclusive) lies further is the bound; a name equal to
/// `after` is excluded, and every name extending `prefix` is at or above
/// it, so starting at the larger of the two loses nothing.
pub fn page_start<'a>(prefix: &'a str, after: Option<&'a str>) -> (&'a str, bool) {
    match after {
        Some(after) if after.as_bytes() >= prefix.as_bytes() => (after, true),
        _ => (prefix, false),
    }
}

/// One page of `counts` (names in byte order, as `BTreeMap<String, _>`
/// keeps them): names starting with `prefix`, after `after`, at most
/// `limit` of them, those with a zero count left out.
pub(crate) fn page(
    counts: &BTreeMap<String, u64>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<Listed> {
    let (start, exclusive) = page_start(prefix, after);
    counts
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .filter(|(name, _)| !(exclusive && name.as_str() == start))
        .take_while(|(name, _)| name.starts_with(prefix))
        .filter(|(_, count)| **count > 0)
        .take(limit)
        .map(|(name, count)| Listed::new(name.clone(), *count))
        .collect()
}

/// The count of every name of `what` in `events`, by a scan: the
/// reference store's way, simple enough to believe.
pub(crate) fn count_events<'a>(
    events: impl IntoIterator<Item = &'a crate::event::RecordedEvent>,
    what: Listing,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in events {
        match what {
            Listing::Streams => {
                if let Some(stream) = &e.stream {
                    *counts.entry(stream.clone()).or_default() += 1;
                }
            }
            Listing::Types => *counts.entry(e.event_type.clone()).or_default() += 1,
            Listing::Tags => {
                let mut seen: Vec<&String> = Vec::with_capacity(e.tags.len());
                for tag in &e.tags {
                    if !seen.contains(&tag) {
                        seen.push(tag);
                        *counts.entry(tag.clone()).or_default() += 1;
                    }
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(names: &[(&str, u64)]) -> BTreeMap<String, u64> {
        names.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn pages_by_prefix_and_after() {
        let c = counts(&[("a", 1), ("ab", 2), ("abc", 3), ("b", 4), ("é", 5)]);
        let names = |v: Vec<Listed>| v.into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(page(&c, "", None, 10)), ["a", "ab", "abc", "b", "é"]);
        assert_eq!(names(page(&c, "ab", None, 10)), ["ab", "abc"]);
        assert_eq!(names(page(&c, "ab", Some("ab"), 10)), ["abc"]);
        assert_eq!(names(page(&c, "ab", Some("a"), 10)), ["ab", "abc"]);
        assert_eq!(names(page(&c, "ab", Some("b"), 10)), Vec::<String>::new());
        assert_eq!(names(page(&c, "", Some("abc"), 1)), ["b"]);
        assert_eq!(page(&c, "", Some("b"), 10), [Listed::new("é", 5)]);
    }

    #[test]
    fn checks_refuse_out_of_range_input() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(check_listing("", None, 1).is_ok());
        assert!(check_listing(&long[1..], Some(&long[1..]), MAX_LIST_LIMIT).is_ok());
        for (prefix, after, limit) in [
            (long.as_str(), None, 1),
            ("", Some(long.as_str()), 1),
            ("", None, 0),
            ("", None, MAX_LIST_LIMIT + 1),
        ] {
            assert!(matches!(
                check_listing(prefix, after, limit),
                Err(Error::InvalidInput { .. })
            ));
        }
    }
}
