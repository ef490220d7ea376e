//! Looking at a store directory without opening it: [`verify()`] checks every
//! record of the log, every sealed segment's offset table and every index
//! run against it, and reports every problem it finds; [`stats()`] counts
//! what the store holds. Both read the files read-only and take no lock, so they
//! work on a store another process has open (they then see what was written
//! when they read each file) and never change a byte — not even the torn
//! tail that recovery would cut off, which they report instead.
//!
//! [`Follower`] tails the log of a store another process has open.
//!
//! [`repair()`] is the one operation here that writes: it rebuilds, from the
//! log and under the store's lock, what [`verify()`] found damaged or lost
//! in the index and the sealed segments' offset tables.
//!
//! `scan` is the read-only walk over the segments that both share; it
//! applies recovery's rules (see `docs/FORMAT.md`) without repairing
//! anything.

pub mod follow;
pub mod repair;
mod scan;
pub mod stats;
pub mod verify;

pub use follow::Follower;
pub use repair::{RepairReport, is_index_damage, repair, repair_index};
pub use stats::{StoreStats, stats};
pub use verify::{Finding, Part, VerifyReport, listed_index_runs, verify};

#[cfg(test)]
mod tests;
