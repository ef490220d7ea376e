//! Which committed events a lifecycle operation — retroactive tags,
//! redaction, removal — applies to: a [`Target`] (positions, or a query
//! resolved when the operation commits), the bound on how many events one
//! operation may target, and the checks every store applies to a target.

use crate::error::{Error, Result};
use crate::query::Query;

/// Most events one lifecycle operation may target, so that one operation's
/// record (and the memory to apply it) stays bounded: change more in several
/// operations.
pub const MAX_TARGETED_EVENTS: usize = 1_000_000;

/// The events a lifecycle operation applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// These positions (in any order; repeats count once).
    Positions(Vec<u64>),
    /// The events matching this query when the operation commits.
    Query(Query),
}

/// Checks a target's shape (a valid query, or 1 to
/// [`MAX_TARGETED_EVENTS`] positions) before anything is read.
pub fn check_target(target: &Target) -> Result<()> {
    match target {
        Target::Query(q) => q.validate(),
        Target::Positions(p) if p.is_empty() => Err(Error::invalid("the target names no position")),
        Target::Positions(p) if p.len() > MAX_TARGETED_EVENTS => Err(Error::invalid(format!(
            "the target names {} positions, the limit is {MAX_TARGETED_EVENTS}",
            p.len()
        ))),
        Target::Positions(_) => Ok(()),
    }
}

/// A position target's positions, sorted and each once, checked against
/// the store's `head`: each must be a committed position.
pub fn check_positions(positions: &[u64], head: u64) -> Result<Vec<u64>> {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if let Some(&p) = sorted.iter().find(|&&p| p == 0 || p > head) {
        return Err(Error::invalid(format!(
            "position {p} is not a committed position (the head is {head})"
        )));
    }
    Ok(sorted)
}

/// Refuses a query target that matched more than [`MAX_TARGETED_EVENTS`].
pub fn check_targeted(count: usize) -> Result<()> {
    if count > MAX_TARGETED_EVENTS {
        return Err(Error::invalid(format!(
            "the target matches more than {MAX_TARGETED_EVENTS} events; change them in several operations"
        )));
    }
    Ok(())
}
