//! The conformance suite: the documented semantics of
//! [`EventStore`], checked case by case against any implementation.
//!
//! A store implementation plugs in through a [`Harness`], which creates
//! fresh stores and, for persistent stores, reopens them and forces their
//! in-memory index onto disk. Every case is a `pub fn` taking the harness;
//! [`run_all`] runs them all, and [`conformance_tests!`](crate::conformance_tests)
//! expands to one `#[test]` per case, so that failures are reported per case:
//!
//! ```ignore
//! use gesta_tests::conformance::MemoryHarness;
//! gesta_tests::conformance_tests!(MemoryHarness);
//! ```
//!
//! The cases do not compare against [`MemoryStore`]: they carry their own
//! expectations (a tiny log of what must have been committed), so that
//! the reference store is checked too. Every assertion compares actual
//! contents — positions, every field of every event, stream revisions,
//! error fields — not just `Ok`/`Err`.
//!
//! The cases live by what they cover: `positions` (numbering, batches,
//! fields), `queries` (query shapes and read options), `conditions` (DCB),
//! `streams` (revisions and the order of the checks), `idempotency`,
//! `lookups` (stream reads by revision, events by id), `listings`
//! (streams, types and tags with counts, paged), `reopen`, `bad_input`,
//! `state` (snapshots and tracking info) and `lifecycle` (retroactive tags
//! and redaction: what reads, queries, listings, conditions and
//! subscriptions see after `add_tags` and `redact`, persistence, the audit
//! trail, bad input), `removal` (removal, stream deletion and truncation,
//! retention rules; a store without them must answer `Unsupported`);
//! `helpers` holds the suite's model of a log, the
//! fixture and the assertions.

use std::fmt::Debug;

mod bad_input;
mod conditions;
mod helpers;
mod idempotency;
mod lifecycle;
mod listings;
mod lookups;
mod positions;
mod queries;
mod removal;
mod reopen;
mod state;
mod streams;

pub use bad_input::*;
pub use conditions::*;
pub use idempotency::*;
pub use lifecycle::*;
pub use listings::*;
pub use lookups::*;
pub use positions::*;
pub use queries::*;
pub use removal::*;
pub use reopen::*;
pub use state::*;
pub use streams::*;

use gesta::{EventStore, MemoryStore};

/// How the suite gets stores.
///
/// Persistent stores implement [`reopen`](Harness::reopen) (close, then open
/// the same directory) and [`flush_index`](Harness::flush_index) (force the
/// in-memory index into an on-disk run); the memory store returns itself and
/// does nothing.
pub trait Harness {
    /// The store under test.
    type Store: EventStore;

    /// A fresh, empty store.
    fn create(&mut self) -> Self::Store;

    /// Closes `store` and opens it again (a persistent store recovers from
    /// its files; an in-memory one returns itself).
    fn reopen(&mut self, store: Self::Store) -> Self::Store;

    /// Forces the store's in-memory index into an on-disk run (nothing for
    /// stores without one).
    fn flush_index(&mut self, store: &Self::Store);

    /// Runs the store's explicit compaction, where it has one (the engine's
    /// `compact`: runs merged and purged of removed events, retention
    /// enforced, erased bytes rewritten); nothing for the others.
    fn compact(&mut self, _store: &Self::Store) {}

    /// A short name for messages.
    fn name(&self) -> &'static str;
}

/// The harness of the in-memory reference store.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryHarness;

impl Harness for MemoryHarness {
    type Store = MemoryStore;

    fn create(&mut self) -> MemoryStore {
        MemoryStore::new()
    }

    fn reopen(&mut self, store: MemoryStore) -> MemoryStore {
        store
    }

    fn flush_index(&mut self, _store: &MemoryStore) {}

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// Calls `$callback!` with the harness argument and the list of every case
/// of the suite, so that [`run_all`] and
/// [`conformance_tests!`](crate::conformance_tests) share one list.
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_conformance_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            positions_start_at_one,
            batch_positions_are_consecutive,
            failed_appends_consume_no_positions,
            event_fields_round_trip,
            batch_events_share_a_timestamp,
            empty_store_reads_nothing,
            query_all,
            query_one_type,
            query_several_types,
            query_one_tag,
            query_several_tags,
            queries_of_hundreds_of_arms,
            queries_of_more_names_than_a_statement_binds,
            query_type_and_tags,
            query_several_items,
            query_no_match,
            query_unknown_tag_or_type,
            query_match_all_item_inside_multi_item_query,
            query_event_with_repeated_tag,
            read_directions,
            read_start_positions,
            read_limits,
            read_start_and_limit_with_query,
            read_each_lends_until_break,
            reads_across_pages,
            read_last_match,
            read_last_no_match,
            read_last_several_items,
            condition_on_empty_store_and_own_batch,
            condition_success,
            condition_failure_without_after,
            condition_after_around_the_conflict,
            condition_after_beyond_head_rejected,
            condition_names_first_conflicting_position,
            condition_with_several_items,
            concurrent_conditional_appends_one_wins_per_round,
            concurrent_conditional_appends_on_distinct_tags_all_succeed,
            stream_revisions_start_at_zero,
            stream_revisions_inside_a_batch,
            stream_revisions_interleaved,
            expected_revision_any,
            expected_revision_no_stream,
            expected_revision_exists,
            expected_revision_exact,
            expected_revisions_on_several_streams,
            expected_revision_of_stream_outside_the_batch,
            concurrent_expected_revision_one_wins,
            check_order,
            idempotent_retry_returns_original_positions,
            idempotent_retry_ignores_failing_condition_and_expectations,
            idempotent_retry_after_reopen,
            idempotent_retry_after_flush_index,
            partial_duplicate_ids_rejected,
            same_ids_different_content_rejected,
            id_repeated_in_batch_rejected,
            batch_with_some_ids_is_not_a_retry,
            batches_without_ids_never_deduplicated,
            concurrent_identical_retries_commit_once,
            reopen_empty_store,
            reopen_without_flush,
            reopen_after_flush_index,
            reopen_with_flushed_and_unflushed_events,
            empty_batch_rejected,
            invalid_event_type_rejected,
            invalid_tag_rejected,
            invalid_stream_rejected,
            too_many_tags_rejected,
            oversize_data_rejected,
            oversize_metadata_rejected,
            oversize_batch_rejected,
            invalid_query_in_condition_rejected,
            invalid_query_in_read_rejected,
            invalid_expected_stream_rejected,
            invalid_stream_revision_name_rejected,
            limits_at_the_edge_accepted,
            stream_read_by_revision,
            event_by_id_lookup,
            position_at_commit_time,
            // state: snapshots and tracking info
            snapshot_save_load_list_delete,
            snapshots_keep_the_newest_per_key,
            snapshot_bad_input_rejected,
            snapshots_survive_reopen,
            tracking_first_and_advance,
            tracking_conflict_appends_nothing,
            tracking_with_failing_checks_stores_nothing,
            tracking_ignored_by_idempotent_retry,
            tracking_sources_are_independent,
            tracking_survives_reopen,
            tracking_invalid_source_rejected,
            concurrent_tracking_one_wins,
            // Listings of streams, event types and tags.
            listings_of_an_empty_store,
            listings_count_events,
            listings_by_prefix_and_after,
            listings_paginate,
            listings_in_byte_order,
            listings_after_flush_and_reopen,
            listing_bad_input_rejected,
            // Lifecycle: retroactive tags and the audit trail.
            add_tags_by_positions,
            add_tags_by_query,
            queries_see_added_tags,
            reads_and_lookups_return_added_tags,
            subscriptions_are_not_replayed,
            listings_count_added_tags,
            conditions_see_added_tags,
            added_tags_survive_flush_and_reopen,
            audit_log_records_each_operation,
            add_tags_bad_input_rejected,
            second_add_of_the_same_tags_is_recorded,
            // Lifecycle: redaction.
            redact_by_positions,
            redact_by_query,
            reads_and_lookups_return_redacted_events,
            redaction_keeps_the_shape_of_the_history,
            second_redaction_counts_none,
            redacted_events_survive_flush_and_reopen,
            added_tags_stay_on_redacted_events,
            audit_log_records_redactions,
            redact_bad_input_rejected,
            redaction_deletes_the_snapshots_that_may_hold_the_data,
            a_retry_of_an_amended_batch_is_recognised,
            // Removal: streams deleted and truncated, retention rules.
            remove_by_positions_and_query,
            removed_events_are_gone_for_every_read,
            delete_and_truncate_streams,
            conditions_ignore_removed_events,
            position_targets_leave_removed_events_out,
            ids_of_removed_events_stay_taken,
            retention_by_count,
            removal_survives_flush_and_reopen,
            audit_log_records_removals,
            removal_bad_input_rejected,
        }
    };
}

/// Expands to one `#[test]` per conformance case, each running the case on
/// a harness made by evaluating `$harness` (an expression of a type that
/// implements [`Harness`]).
///
/// ```ignore
/// gesta_tests::conformance_tests!(StoreHarness::new());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__gesta_conformance_cases!(__gesta_conformance_tests!($harness));
    };
}

/// The per-case test functions of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_conformance_tests {
    (($harness:expr) $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $harness;
                $crate::conformance::$case(&mut harness);
            }
        )*
    };
}

/// The body of [`run_all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_conformance_run_all {
    (($harness:expr) $($case:ident,)*) => {
        $(
            $crate::conformance::$case($harness);
        )*
    };
}

/// Runs every case of the suite on stores from `h`.
pub fn run_all<H: Harness>(h: &mut H) {
    crate::__gesta_conformance_cases!(__gesta_conformance_run_all!(h));
}
