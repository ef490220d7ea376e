//! Removing committed events — a stream deleted or truncated, events
//! removed by position or query, retention rules that remove what is too
//! old or too many — with the types every store shares, the input checks
//! and the rule that decides which events a retention rule removes.
//!
//! # Removal: the contract
//!
//! [`EventStore::remove`](crate::EventStore::remove)`(target)`,
//! [`delete_stream`](crate::EventStore::delete_stream)`(stream)`,
//! [`truncate_stream`](crate::EventStore::truncate_stream)`(stream, before)`
//! and [`enforce_retention`](crate::EventStore::enforce_retention) remove
//! committed events:
//!
//! - **Which events.** `remove` takes a [`Target`] resolved as for
//!   [`add_tags`](crate::EventStore::add_tags) (positions, or a query
//!   resolved when the operation commits). `truncate_stream` removes the
//!   stream's events with revisions below `before`; `delete_stream` all of
//!   the stream's events committed when it commits. Each removes at most
//!   [`MAX_TARGETED_EVENTS`] events. Events removed already are not
//!   targeted again, by this or any lifecycle operation (a position target
//!   naming one leaves it out).
//! - **Gone for every read.** From the moment the call returns, no read
//!   returns a removed event — by query, scan, stream, id, `read_last`,
//!   subscription — and listings do not count it. The global order keeps
//!   its holes visible: positions of the events that remain never change,
//!   and a read never invents an event to fill a hole. The head stays.
//! - **Conditions.** A DCB condition sees only events that exist when it
//!   is checked: a removed event no longer makes one fail.
//! - **Streams are soft-deleted.** A stream's revisions keep counting the
//!   events removed from it: after `delete_stream`,
//!   [`stream_revision`](crate::EventStore::stream_revision) still answers
//!   the last revision the stream reached, an expected revision is checked
//!   against it, and the next append to the stream continues from it — so
//!   one revision never names two events. A stream read skips the removed
//!   revisions (a deleted stream reads as empty; a truncated one starts at
//!   `before`).
//! - **Ids stay taken.** A removed event's id still answers a retry of its
//!   batch with the original positions (compared as for redaction: without
//!   data and metadata), and a new event with that id is a duplicate;
//!   [`event_by_id`](crate::EventStore::event_by_id) answers `None`.
//! - **Subscriptions are not replayed**; an event delivered before it was
//!   removed stays delivered.
//! - **Bytes.** On the engine, the removed events' data and metadata leave
//!   the log's files at the next [`Store::compact`](crate::Store::compact),
//!   as a redacted event's do (their records keep their place, so
//!   positions stay; a compressed segment holds the zeroed bytes in almost
//!   no space, and a plain one in which they reach
//!   [`Options::reclaim_share`](crate::Options::reclaim_share) is written
//!   compressed to give their space back); unlike redaction, snapshots are kept (what they folded
//!   happened). The index hides the removed events' postings at once;
//!   `compact` drops their type and tag postings from the index runs (a
//!   merge of every run), keeping stream postings (revisions) and id
//!   postings (retries).
//! - Removal cannot be undone. Every removal is recorded in the audit
//!   trail with what was asked and how many events it removed.
//!
//! # Retention rules
//!
//! [`set_retention`](crate::EventStore::set_retention)`(rule)` keeps a
//! [`RetentionRule`] — a scope (a stream, or a query) with a maximum age,
//! a maximum count or both — durably, replacing the rule of the same
//! scope; a rule without limits clears it.
//! [`enforce_retention`](crate::EventStore::enforce_retention) applies
//! every rule at once, each as one removal recorded in the audit trail:
//! of the scope's events (those not removed yet, oldest first), it
//! removes those committed more than `max_age_micros` before now, and all
//! but the newest `max_count`. On the engine,
//! [`Store::compact`](crate::Store::compact) enforces the rules first, and
//! so does the background compactor every
//! [`Options::retention_interval`](crate::Options::retention_interval).
//!
//! Checked first, each a typed [`Error::InvalidInput`] that changes
//! nothing: the target (as for `add_tags`), the stream name, a rule's
//! scope (a valid stream name or query), its limits (each at least 1), and
//! the number of rules (at most [`MAX_RETENTION_RULES`]).
//!
//! [`Error::InvalidInput`]: crate::Error::InvalidInput

use crate::error::{Error, Result};
use crate::query::Query;
use crate::target::{MAX_TARGETED_EVENTS, Target};

/// Most retention rules a store keeps.
pub const MAX_RETENTION_RULES: usize = 1_000;

/// What a removal was asked to remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// [`remove`](crate::EventStore::remove): these events.
    Target(Target),
    /// [`truncate_stream`](crate::EventStore::truncate_stream) (`before`
    /// the first revision kept) or
    /// [`delete_stream`](crate::EventStore::delete_stream) (`before` None:
    /// every event of the stream).
    Stream {
        /// The stream.
        stream: String,
        /// Revisions below this one are removed; None: all.
        before: Option<u64>,
    },
    /// [`enforce_retention`](crate::EventStore::enforce_retention): what
    /// this rule removed.
    Retention(RetentionRule),
}

/// What a removal did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// How many events it named.
    pub targeted: u64,
    /// How many of them were not removed before.
    pub removed: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.targeted += other.targeted;
        self.removed += other.removed;
    }
}

/// The events a retention rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetentionScope {
    /// The events of one stream.
    Stream(String),
    /// The events matching a query (`Query::all()`: every event).
    Query(Query),
}

/// A retention rule: of its scope's events, remove those older than
/// `max_age_micros` and all but the newest `max_count`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRule {
    /// The events it applies to.
    pub scope: RetentionScope,
    /// Events committed longer ago than this (µs) are removed.
    pub max_age_micros: Option<u64>,
    /// At most this many of the scope's events are kept, the newest.
    pub max_count: Option<u64>,
}

impl RetentionRule {
    /// A rule for `scope` without limits: set, it clears the scope's rule.
    pub fn new(scope: RetentionScope) -> RetentionRule {
        RetentionRule {
            scope,
            max_age_micros: None,
            max_count: None,
        }
    }

    /// A rule for the events of `stream`.
    pub fn stream(stream: impl Into<String>) -> RetentionRule {
        RetentionRule::new(RetentionScope::Stream(stream.into()))
    }

    /// A rule for the events matching `query`.
    pub fn query(query: Query) -> RetentionRule {
        RetentionRule::new(RetentionScope::Query(query))
    }

    /// Removes events committed more than `age` ago.
    pub fn max_age(mut self, age: std::time::Duration) -> RetentionRule {
        self.max_age_micros = Some(u64::try_from(age.as_micros()).unwrap_or(u64::MAX));
        self
    }

    /// Keeps at most the newest `n` events.
    pub fn max_count(mut self, n: u64) -> RetentionRule {
        self.max_count = Some(n);
        self
    }

    /// Whether it has no limit (setting it clears the scope's rule).
    pub fn is_clear(&self) -> bool {
        self.max_age_micros.is_none() && self.max_count.is_none()
    }
}

/// Checks a rule: its scope and its limits.
pub fn check_rule(rule: &RetentionRule) -> Result<()> {
    match &rule.scope {
        RetentionScope::Stream(s) => crate::event::check_stream_name(s)?,
        RetentionScope::Query(q) => q.validate()?,
    }
    if rule.max_age_micros == Some(0) || rule.max_count == Some(0) {
        return Err(Error::invalid(
            "a retention limit must be at least 1 (delete_stream or remove removes everything)",
        ));
    }
    Ok(())
}

/// The rules after `rule` is set on `rules`: it replaces the rule of the
/// same scope, or is added, or (without limits) clears it. Refuses a
/// rule past [`MAX_RETENTION_RULES`].
pub fn with_rule(rules: &[RetentionRule], rule: &RetentionRule) -> Result<Vec<RetentionRule>> {
    let mut out: Vec<RetentionRule> = rules
        .iter()
        .filter(|r| r.scope != rule.scope)
        .cloned()
        .collect();
    if !rule.is_clear() {
        if out.len() >= MAX_RETENTION_RULES {
            return Err(Error::invalid(format!(
                "a store keeps at most {MAX_RETENTION_RULES} retention rules"
            )));
        }
        out.push(rule.clone());
    }
    Ok(out)
}

/// The latest commit time a rule's `max_age_micros` removes at
/// `now_micros` (events committed at or before it are too old), if any.
pub fn too_old_at_or_before(rule: &RetentionRule, now_micros: u64) -> Option<u64> {
    now_micros.checked_sub(rule.max_age_micros?)?.checked_sub(1)
}

/// How many of a scope's events (`positions`, ascending) a rule removes: a
/// prefix, the longer of the events too old (those at or before position
/// `too_old_through`, 0 for none) and those beyond the count, at most
/// [`MAX_TARGETED_EVENTS`].
pub fn removed_prefix(rule: &RetentionRule, positions: &[u64], too_old_through: u64) -> usize {
    let by_count = rule.max_count.map_or(0, |n| {
        positions
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX))
    });
    let by_age = positions.partition_point(|&p| p <= too_old_through);
    by_count.max(by_age).min(MAX_TARGETED_EVENTS)
}

/// Which of `positions` (ascending) a removal removes, skipping those
/// `is_removed` answers for, and its result.
pub fn plan_remove(
    positions: &[u64],
    mut is_removed: impl FnMut(u64) -> bool,
) -> (Vec<u64>, Removed) {
    let removed: Vec<u64> = positions
        .iter()
        .copied()
        .filter(|&p| !is_removed(p))
        .collect();
    let result = Removed {
        targeted: positions.len() as u64,
        removed: removed.len() as u64,
    };
    (removed, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_replace_by_scope_and_clear_without_limits() {
        let a = RetentionRule::stream("a").max_count(3);
        let b = RetentionRule::query(Query::all()).max_age(std::time::Duration::from_secs(60));
        let rules = with_rule(&[], &a).unwrap();
        let rules = with_rule(&rules, &b).unwrap();
        let a2 = RetentionRule::stream("a").max_count(5);
        let rules = with_rule(&rules, &a2).unwrap();
        assert_eq!(rules, vec![b.clone(), a2]);
        let rules = with_rule(&rules, &RetentionRule::stream("a")).unwrap();
        assert_eq!(rules, vec![b]);
        assert!(check_rule(&RetentionRule::stream("a").max_count(0)).is_err());
        assert!(check_rule(&RetentionRule::stream("").max_count(1)).is_err());
        assert!(check_rule(&RetentionRule::stream("s").max_count(1)).is_ok());
    }

    #[test]
    fn a_rule_removes_the_longer_prefix() {
        let positions = [10, 20, 30, 40, 50];
        let count = RetentionRule::stream("s").max_count(2);
        assert_eq!(removed_prefix(&count, &positions, 0), 3);
        assert_eq!(too_old_at_or_before(&count, 100), None);
        let age = RetentionRule::stream("s").max_age(std::time::Duration::from_micros(25));
        // Older than 25 µs at 60: committed at 34 or before.
        assert_eq!(too_old_at_or_before(&age, 60), Some(34));
        assert_eq!(too_old_at_or_before(&age, 25), None);
        assert_eq!(removed_prefix(&age, &positions, 30), 3);
        assert_eq!(removed_prefix(&age, &positions, 0), 0);
        let both = RetentionRule {
            max_count: Some(4),
            ..age
        };
        assert_eq!(removed_prefix(&both, &positions, 35), 3);
        assert_eq!(removed_prefix(&both, &positions, 5), 1);
        assert_eq!(
            removed_prefix(&RetentionRule::stream("s").max_count(9), &positions, 0),
            0
        );
        let (removed, result) = plan_remove(&[1, 2, 3], |p| p == 2);
        assert_eq!(removed, [1, 3]);
        assert_eq!(
            result,
            Removed {
                targeted: 3,
                removed: 2
            }
        );
    }
}
