//! gesta-index: the indices that answer Gesta's queries and conditional
//! appends without scanning the log.
//!
//! It owns posting lists of positions keyed by event type, tag, stream and
//! event id ([`Key`]): recent entries in an in-memory [`Memtable`], older
//! ones in immutable on-disk index runs ([`write_run`], [`Run`]), and the
//! evaluation of queries over both ([`IndexView`], [`QuerySpec`],
//! [`Positions`]). Every list is read through a lazy [`Cursor`], and queries
//! are cursors built from cursors, so a read with a limit does only the work
//! the limit needs, in either direction.
//!
//! It knows nothing of the log or of files: runs arrive as bytes (a mapped
//! file, to the engine) and are written out by whoever asked for them.
//!
//! Modules:
//! - `key`: the key encoding;
//! - `cursor`, `combine`: the cursor trait, `All`/`Empty`/`ListCursor`, and
//!   `Union`, `Intersection`, `Chain`;
//! - `memtable`: the concurrent in-memory lists;
//! - `run`: the run format, writer, reader and cursor; `filter`: its Bloom
//!   filter;
//! - `overlay`: postings added after the fact (retroactive tags);
//! - `view`, `query`: the snapshot of sources and query evaluation.
#![deny(missing_docs)]
// Decoding must never panic on malformed bytes: outside tests, no unwrap,
// no panic, and no indexing that could go out of bounds.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod combine;
mod cursor;
mod filter;
mod hidden;
mod key;
mod memtable;
mod overlay;
mod query;
mod run;
mod view;

pub use combine::{Chain, Intersection, Segment, Union};
pub use cursor::{All, Cursor, Empty, ListCursor};
pub use hidden::{Hidden, Minus, purgeable};
pub use key::{Key, KeyHasher, KeyKind};
pub use memtable::Memtable;
pub use overlay::Overlay;
pub use query::{Direction, ItemSpec, Positions, QuerySpec};
pub use run::{Run, RunError, RunIter, RunKey, RunKeys, write_run, write_run_v1};
pub use view::IndexView;
