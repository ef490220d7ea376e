//! gesta-index: the indices that answer Gesta's queries and conditional
//! appends without scanning the log.
//!
//! It owns posting lists of positions keyed by event type, tag, stream and
//! event id: recent entries in an in-memory memtable, older ones in immutable
//! on-disk index runs, and the evaluation of queries over both. It knows
//! nothing of the log or of files beyond the bytes it is handed.
//!
//! The foundation holds only the key vocabulary; posting lists, runs and
//! query evaluation follow with the query work.
#![deny(missing_docs)]

/// What a posting list is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndexKey {
    /// Events of one type.
    Type(Box<[u8]>),
    /// Events carrying one tag.
    Tag(Box<[u8]>),
    /// Events of one stream.
    Stream(Box<[u8]>),
    /// The event with one id.
    Id(u128),
}
