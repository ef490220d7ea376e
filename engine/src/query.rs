//! The DCB query model: a [`Query`] is a list of [`QueryItem`]s, OR-ed; an
//! item matches an event whose type is one of the item's types (any type
//! when the list is empty) AND which carries every one of the item's tags.
//! A query with no items — [`Query::all`] — matches every event, and so does
//! an item with neither types nor tags.

use crate::error::{Error, Result};
use crate::event::{MAX_NAME_LEN, MAX_TAGS};
use gesta_index::{ItemSpec, Key, QuerySpec};

/// One alternative of a query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryItem {
    /// The event must have one of these types (empty: any type).
    pub types: Vec<String>,
    /// The event must carry all of these tags (empty: no constraint).
    pub tags: Vec<String>,
}

impl QueryItem {
    /// An item that matches every event; narrow it with the builders.
    pub fn new() -> QueryItem {
        QueryItem::default()
    }

    /// Adds an accepted type.
    pub fn event_type(mut self, t: impl Into<String>) -> QueryItem {
        self.types.push(t.into());
        self
    }

    /// Adds accepted types.
    pub fn types<I, T>(mut self, types: I) -> QueryItem
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Adds a required tag.
    pub fn tag(mut self, t: impl Into<String>) -> QueryItem {
        self.tags.push(t.into());
        self
    }

    /// Adds required tags.
    pub fn tags<I, T>(mut self, tags: I) -> QueryItem
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Whether this item matches every event.
    pub fn is_all(&self) -> bool {
        self.types.is_empty() && self.tags.is_empty()
    }

    /// Whether an event of `event_type` carrying `tags` matches.
    pub fn matches(&self, event_type: &str, tags: &[String]) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self.tags.iter().all(|t| tags.contains(t))
    }
}

/// A DCB query: its items OR-ed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Query {
    /// The alternatives; empty matches every event.
    pub items: Vec<QueryItem>,
}

impl Query {
    /// The query that matches every event.
    pub fn all() -> Query {
        Query { items: Vec::new() }
    }

    /// A query of the given items.
    pub fn from_items(items: impl IntoIterator<Item = QueryItem>) -> Query {
        Query {
            items: items.into_iter().collect(),
        }
    }

    /// A query of one item.
    pub fn item(item: QueryItem) -> Query {
        Query { items: vec![item] }
    }

    /// Events of one type.
    pub fn event_type(t: impl Into<String>) -> Query {
        Query::item(QueryItem::new().event_type(t))
    }

    /// Events carrying one tag.
    pub fn tag(t: impl Into<String>) -> Query {
        Query::item(QueryItem::new().tag(t))
    }

    /// Adds an alternative.
    pub fn or(mut self, item: QueryItem) -> Query {
        self.items.push(item);
        self
    }

    /// Whether the query matches every event.
    pub fn is_all(&self) -> bool {
        self.items.is_empty() || self.items.iter().any(QueryItem::is_all)
    }

    /// Whether an event of `event_type` carrying `tags` matches.
    pub fn matches(&self, event_type: &str, tags: &[String]) -> bool {
        self.items.is_empty() || self.items.iter().any(|i| i.matches(event_type, tags))
    }

    /// Checks the query against the limits names have in events (a longer
    /// name could never match, and is almost certainly a mistake).
    pub(crate) fn validate(&self) -> Result<()> {
        for (i, item) in self.items.iter().enumerate() {
            if item.tags.len() > MAX_TAGS {
                return Err(Error::invalid(format!(
                    "query item {i}: {} tags, an event carries at most {MAX_TAGS}",
                    item.tags.len()
                )));
            }
            for name in item.types.iter().chain(&item.tags) {
                if name.is_empty() || name.len() > MAX_NAME_LEN {
                    return Err(Error::invalid(format!(
                        "query item {i}: type or tag must be 1 to {MAX_NAME_LEN} bytes"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A query in index keys; [`Query::all`] becomes one unconstrained item.
pub(crate) fn query_spec(query: &Query) -> QuerySpec {
    if query.items.is_empty() {
        return QuerySpec {
            items: vec![ItemSpec {
                types: Vec::new(),
                tags: Vec::new(),
            }],
        };
    }
    QuerySpec {
        items: query
            .items
            .iter()
            .map(|item| ItemSpec {
                types: item.types.iter().map(|t| Key::event_type(t)).collect(),
                tags: item.tags.iter().map(|t| Key::tag(t)).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matching_follows_the_dcb_rules() {
        let ev = ("A", tags(&["x", "y"]));
        let m = |q: &Query| q.matches(ev.0, &ev.1);
        assert!(m(&Query::all()));
        assert!(m(&Query::item(QueryItem::new())));
        assert!(m(&Query::event_type("A")));
        assert!(!m(&Query::event_type("B")));
        assert!(m(&Query::item(QueryItem::new().types(["B", "A"]))));
        assert!(m(&Query::tag("x")));
        assert!(m(&Query::item(QueryItem::new().tags(["x", "y"]))));
        assert!(!m(&Query::item(QueryItem::new().tags(["x", "z"]))));
        assert!(m(&Query::item(QueryItem::new().event_type("A").tag("y"))));
        assert!(!m(&Query::item(QueryItem::new().event_type("B").tag("y"))));
        assert!(m(&Query::tag("z").or(QueryItem::new().event_type("A"))));
        assert!(!m(&Query::tag("z").or(QueryItem::new().event_type("C"))));
    }

    #[test]
    fn validation_rejects_impossible_names() {
        assert!(Query::tag("").validate().is_err());
        let longest = crate::event::MAX_NAME_LEN;
        assert!(
            Query::event_type("x".repeat(longest + 1))
                .validate()
                .is_err()
        );
        assert!(Query::event_type("x".repeat(longest)).validate().is_ok());
        assert!(Query::tag("ok").validate().is_ok());
        assert!(Query::all().validate().is_ok());
    }
}
