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

use std::fmt::Debug;
use std::sync::Barrier;

use gesta::event::{MAX_BATCH_LEN, MAX_DATA_LEN, MAX_NAME_LEN, MAX_TAGS};
use gesta::{
    AppendOptions, Appended, Error, EventStore, ExpectedRevision, MemoryStore, NewEvent, Query,
    QueryItem, ReadOptions, RecordedEvent, Result,
};

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

// ---------------------------------------------------------------------------
// Helpers

/// What the store must hold: the suite's own, independent model of a log.
#[derive(Clone, Debug, Default)]
struct Log {
    events: Vec<RecordedEvent>,
}

impl Log {
    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    fn revision(&self, stream: &str) -> Option<u64> {
        self.events
            .iter()
            .rev()
            .find(|e| e.stream.as_deref() == Some(stream))
            .and_then(|e| e.revision)
    }

    /// Records `batch` as committed; returns the positions it must get.
    fn commit(&mut self, batch: &[NewEvent]) -> Appended {
        let first = self.head() + 1;
        for e in batch {
            let revision = e
                .stream
                .as_deref()
                .map(|s| self.revision(s).map_or(0, |r| r + 1));
            let position = self.head() + 1;
            self.events.push(recorded(position, e, revision));
        }
        Appended {
            first,
            last: self.head(),
        }
    }

    fn streams(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .events
            .iter()
            .filter_map(|e| e.stream.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The positions of the events matching `query`, oldest first.
    fn matching(&self, query: &Query) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| query.matches(&e.event_type, &e.tags))
            .map(|e| e.position)
            .collect()
    }

    fn get(&self, position: u64) -> &RecordedEvent {
        &self.events[(position - 1) as usize]
    }
}

/// The recorded form of `e` at `position` (timestamp 0: see [`strip`]).
fn recorded(position: u64, e: &NewEvent, revision: Option<u64>) -> RecordedEvent {
    RecordedEvent {
        position,
        event_type: e.event_type.clone(),
        tags: e.tags.clone(),
        data: e.data.clone(),
        metadata: e.metadata.clone(),
        id: e.id,
        stream: e.stream.clone(),
        revision,
        timestamp_micros: 0,
    }
}

/// `e` without its timestamp, which differs between stores.
fn strip(mut e: RecordedEvent) -> RecordedEvent {
    e.timestamp_micros = 0;
    e
}

fn ok<T>(what: &str, r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error {e:?}"))
}

fn err<T: Debug>(what: &str, r: Result<T>) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// Reads with timestamps kept.
fn read_raw<S: EventStore>(s: &S, query: &Query, options: ReadOptions) -> Vec<RecordedEvent> {
    let what = format!("read {query:?} {options:?}");
    ok(&what, s.read(query, options))
        .map(|r| ok(&what, r))
        .collect()
}

fn read<S: EventStore>(s: &S, query: &Query, options: ReadOptions) -> Vec<RecordedEvent> {
    read_raw(s, query, options).into_iter().map(strip).collect()
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

fn read_last<S: EventStore>(s: &S, query: &Query) -> Option<RecordedEvent> {
    ok(&format!("read_last {query:?}"), s.read_last(query)).map(strip)
}

fn head<S: EventStore>(s: &S) -> u64 {
    ok("head", s.head())
}

fn revision<S: EventStore>(s: &S, stream: &str) -> Option<u64> {
    ok(
        &format!("stream_revision {stream:?}"),
        s.stream_revision(stream),
    )
}

/// Appends `batch`, which must succeed, and checks its positions against
/// the log.
fn append<S: EventStore>(s: &S, log: &mut Log, batch: Vec<NewEvent>) -> Appended {
    append_with(s, log, batch, AppendOptions::new())
}

fn append_with<S: EventStore>(
    s: &S,
    log: &mut Log,
    batch: Vec<NewEvent>,
    options: AppendOptions,
) -> Appended {
    let want = log.commit(&batch);
    let what = format!("append of {} events with {options:?}", batch.len());
    let got = ok(&what, s.append_with(batch, options));
    assert_eq!(got, want, "{what}: positions");
    got
}

/// Checks that the store holds exactly what `log` says: every event, the
/// head and every stream's revision.
fn assert_contents<S: EventStore>(s: &S, log: &Log) {
    let all = read(s, &Query::all(), ReadOptions::forwards());
    assert_eq!(all.len(), log.events.len(), "number of events");
    for (got, want) in all.iter().zip(&log.events) {
        assert_eq!(got, want, "event at position {}", want.position);
    }
    assert_eq!(head(s), log.head(), "head");
    for stream in log.streams() {
        assert_eq!(
            revision(s, &stream),
            log.revision(&stream),
            "revision of stream {stream:?}"
        );
    }
    assert_eq!(
        revision(s, "never-used"),
        None,
        "revision of an unused stream"
    );
}

fn assert_invalid(what: &str, e: Error) {
    assert!(
        matches!(e, Error::InvalidInput { .. }),
        "{what}: expected InvalidInput, got {e:?}"
    );
}

fn assert_condition_failed(what: &str, e: Error, position: u64) {
    match e {
        Error::ConditionFailed { position: p } => {
            assert_eq!(p, position, "{what}: conflicting position")
        }
        other => panic!("{what}: expected ConditionFailed at {position}, got {other:?}"),
    }
}

fn assert_wrong_revision(
    what: &str,
    e: Error,
    stream: &str,
    expected: ExpectedRevision,
    actual: Option<u64>,
) {
    match e {
        Error::WrongExpectedRevision {
            stream: s,
            expected: x,
            actual: a,
        } => {
            assert_eq!(
                (s.as_str(), x, a),
                (stream, expected, actual),
                "{what}: (stream, expected, actual)"
            );
        }
        other => panic!("{what}: expected WrongExpectedRevision on {stream:?}, got {other:?}"),
    }
}

fn assert_duplicate(what: &str, e: Error, ids: &[u128]) {
    match e {
        Error::DuplicateEventId { id } => assert!(
            ids.contains(&id),
            "{what}: DuplicateEventId names {id:#x}, expected one of {ids:x?}"
        ),
        other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
    }
}

/// An event of `event_type` with `tags` and data saying `label`.
fn ev(event_type: &str, tags: &[&str], label: &str) -> NewEvent {
    NewEvent::new(event_type, label.to_owned()).tags(tags.iter().copied())
}

/// An event in `stream`.
fn sev(stream: &str, label: &str) -> NewEvent {
    NewEvent::new("StreamEvent", label.to_owned()).stream(stream)
}

fn fail_if(query: Query, after: Option<u64>) -> AppendOptions {
    AppendOptions::new().fail_if(query, after)
}

fn types(t: &[&str]) -> QueryItem {
    QueryItem::new().types(t.iter().copied())
}

fn tags(t: &[&str]) -> QueryItem {
    QueryItem::new().tags(t.iter().copied())
}

/// A few events with assorted types, tags, streams, ids and metadata,
/// committed in batches of 1, 2, 3 and 2 events:
///
/// | pos | type | tags       | stream |
/// |-----|------|------------|--------|
/// | 1   | A    | t1         |        |
/// | 2   | B    | t1 t2      | s1     |
/// | 3   | C    | t2         |        |
/// | 4   | A    |            | s1     |
/// | 5   | B    | t3         | s2     |
/// | 6   | A    | t1 t2 t3   |        |
/// | 7   | D    | t2 t3      | s1     |
/// | 8   | C    | t3 t1      |        |
fn fixture<S: EventStore>(s: &S, log: &mut Log) {
    append(s, log, vec![ev("A", &["t1"], "e1").id(0xA1)]);
    append(
        s,
        log,
        vec![
            ev("B", &["t1", "t2"], "e2").stream("s1").metadata("m2"),
            ev("C", &["t2"], "e3"),
        ],
    );
    append(
        s,
        log,
        vec![
            ev("A", &[], "e4").stream("s1").id(0xA4),
            ev("B", &["t3"], "e5").stream("s2").id(0xA5),
            ev("A", &["t1", "t2", "t3"], "e6").id(0xA6),
        ],
    );
    append(
        s,
        log,
        vec![
            ev("D", &["t2", "t3"], "e7").stream("s1"),
            ev("C", &["t3", "t1"], "").metadata(vec![0u8, 255, 7]),
        ],
    );
}

/// Checks `query` in every way a read can go: both directions, every start
/// from 0 to past the head, limits none/0/1/2, and `read_last` — against
/// `want` (the matching positions) and the log's contents.
fn check_query<S: EventStore>(s: &S, log: &Log, query: &Query, want: &[u64]) {
    assert_eq!(log.matching(query), want, "the test's own expectation");
    let full = read(s, query, ReadOptions::forwards());
    assert_eq!(positions(&full), want, "{query:?} forwards");
    for e in &full {
        assert_eq!(e, log.get(e.position), "{query:?}: event contents");
    }
    let mut back = want.to_vec();
    back.reverse();
    assert_eq!(
        positions(&read(s, query, ReadOptions::backwards())),
        back,
        "{query:?} backwards"
    );
    for start in 0..=log.head() + 2 {
        for limit in [None, Some(0), Some(1), Some(2)] {
            let take = limit.unwrap_or(usize::MAX);
            let fwd: Vec<u64> = want
                .iter()
                .copied()
                .filter(|&p| p > start)
                .take(take)
                .collect();
            let bwd: Vec<u64> = back
                .iter()
                .copied()
                .filter(|&p| p < start)
                .take(take)
                .collect();
            let mut fo = ReadOptions::forwards().start(start);
            let mut bo = ReadOptions::backwards().start(start);
            fo.limit = limit;
            bo.limit = limit;
            assert_eq!(positions(&read(s, query, fo)), fwd, "{query:?} {fo:?}");
            assert_eq!(positions(&read(s, query, bo)), bwd, "{query:?} {bo:?}");
        }
    }
    assert_eq!(
        read_last(s, query),
        want.last().map(|&p| log.get(p).clone()),
        "read_last {query:?}"
    );
}

/// Every query shape of the fixture, with the positions it must match.
fn fixture_queries() -> Vec<(Query, Vec<u64>)> {
    vec![
        (Query::all(), (1..=8).collect()),
        (Query::event_type("A"), vec![1, 4, 6]),
        (Query::item(types(&["A", "C"])), vec![1, 3, 4, 6, 8]),
        (Query::tag("t1"), vec![1, 2, 6, 8]),
        (Query::item(tags(&["t2", "t3"])), vec![6, 7]),
        (Query::item(tags(&["t1", "t2", "t3"])), vec![6]),
        (Query::item(types(&["A"]).tag("t1")), vec![1, 6]),
        (Query::item(types(&["B", "D"]).tag("t3")), vec![5, 7]),
        (
            Query::item(types(&["C"])).or(QueryItem::new().tag("t3")),
            vec![3, 5, 6, 7, 8],
        ),
        (Query::tag("t1").or(tags(&["t2"])), vec![1, 2, 3, 6, 7, 8]),
        (Query::event_type("Z"), vec![]),
        (Query::item(types(&["C"]).tag("t9")), vec![]),
        (Query::tag("nope"), vec![]),
        (
            Query::event_type("Z").or(QueryItem::new()),
            (1..=8).collect(),
        ),
    ]
}

fn check_fixture_queries<S: EventStore>(s: &S, log: &Log) {
    for (q, want) in fixture_queries() {
        check_query(s, log, &q, &want);
    }
}

// ---------------------------------------------------------------------------
// Positions and events

/// An empty store has head 0; the first event gets position 1.
pub fn positions_start_at_one<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    assert_eq!(head(&s), 0);
    assert_contents(&s, &log);
    let a = append(&s, &mut log, vec![ev("A", &[], "first")]);
    assert_eq!(a, Appended { first: 1, last: 1 });
    let b = append(&s, &mut log, vec![ev("B", &["x"], "second")]);
    assert_eq!(b, Appended { first: 2, last: 2 });
    assert_contents(&s, &log);
}

/// A batch gets consecutive positions, the next batch starts right after.
pub fn batch_positions_are_consecutive<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let a = append(
        &s,
        &mut log,
        (0..5).map(|i| ev("A", &[], &format!("a{i}"))).collect(),
    );
    assert_eq!(a, Appended { first: 1, last: 5 });
    let b = append(&s, &mut log, vec![ev("B", &[], "b")]);
    assert_eq!(b, Appended { first: 6, last: 6 });
    let c = append(
        &s,
        &mut log,
        (0..3).map(|i| ev("C", &["t"], &format!("c{i}"))).collect(),
    );
    assert_eq!(c, Appended { first: 7, last: 9 });
    assert_contents(&s, &log);
}

/// No failure of any kind consumes a position, and a successful idempotent
/// retry does not either.
pub fn failed_appends_consume_no_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![ev("A", &["t"], "a").id(1).stream("s")]);
    let failures: Vec<(&str, Vec<NewEvent>, AppendOptions)> = vec![
        ("empty batch", vec![], AppendOptions::new()),
        ("empty type", vec![ev("", &[], "x")], AppendOptions::new()),
        (
            "condition",
            vec![ev("B", &[], "x")],
            fail_if(Query::tag("t"), None),
        ),
        (
            "revision",
            vec![ev("B", &[], "x")],
            AppendOptions::new().expect("s", ExpectedRevision::NoStream),
        ),
        (
            "duplicate id",
            vec![ev("B", &[], "x").id(1), ev("B", &[], "y").id(2)],
            AppendOptions::new(),
        ),
        (
            "repeated id",
            vec![ev("B", &[], "x").id(3), ev("B", &[], "y").id(3)],
            AppendOptions::new(),
        ),
    ];
    for (what, batch, options) in failures {
        err(what, s.append_with(batch, options));
        assert_contents(&s, &log);
    }
    // A retry returns the original positions and consumes none.
    let retry = ok(
        "retry",
        s.append(vec![ev("A", &["t"], "a").id(1).stream("s")]),
    );
    assert_eq!(retry, Appended { first: 1, last: 1 });
    let next = append(&s, &mut log, vec![ev("C", &[], "c"), ev("C", &[], "d")]);
    assert_eq!(next, Appended { first: 2, last: 3 });
    assert_contents(&s, &log);
}

/// Every field comes back as written: type, tags in order, data (empty,
/// binary), metadata, id, stream and revision.
pub fn event_fields_round_trip<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let binary: Vec<u8> = (0..=255u8).collect();
    append(
        &s,
        &mut log,
        vec![
            NewEvent::new("Plain", Vec::new()),
            NewEvent::new("Tagged", binary.clone())
                .tags(["z:last", "a:first", "m:middle"])
                .metadata(binary.clone())
                .id(u128::MAX)
                .stream("stream-ü"),
            NewEvent::new("Ünïcödé type", "{\"json\":true}")
                .id(0)
                .stream("stream-ü"),
            NewEvent::new("Meta", "d").metadata("only metadata"),
        ],
    );
    assert_contents(&s, &log);
    let got = read(&s, &Query::event_type("Tagged"), ReadOptions::forwards());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tags, ["z:last", "a:first", "m:middle"]);
    assert_eq!(&got[0].data[..], &binary[..]);
    assert_eq!(got[0].id, Some(u128::MAX));
    assert_eq!(got[0].revision, Some(0));
    let third = read(&s, &Query::all(), ReadOptions::forwards().start(2).limit(1));
    assert_eq!(third[0].id, Some(0));
    assert_eq!(third[0].revision, Some(1));
}

/// The events of one batch share their commit timestamp.
pub fn batch_events_share_a_timestamp<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![ev("A", &[], "1")]);
    append(
        &s,
        &mut log,
        vec![ev("A", &[], "2"), ev("A", &[], "3"), ev("A", &[], "4")],
    );
    let all = read_raw(&s, &Query::all(), ReadOptions::forwards());
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].timestamp_micros, all[2].timestamp_micros);
    assert_eq!(all[2].timestamp_micros, all[3].timestamp_micros);
}

/// Reading an empty store gives nothing, in every direction and from any
/// start; `read_last` gives `None`.
pub fn empty_store_reads_nothing<H: Harness>(h: &mut H) {
    let s = h.create();
    let log = Log::default();
    for q in [Query::all(), Query::event_type("A"), Query::tag("t")] {
        check_query(&s, &log, &q, &[]);
    }
    assert_eq!(revision(&s, "s"), None);
}

// ---------------------------------------------------------------------------
// Query shapes

fn query_case<H: Harness>(h: &mut H, query: Query, want: &[u64]) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    assert_contents(&s, &log);
    check_query(&s, &log, &query, want);
}

/// `Query::all()` matches everything.
pub fn query_all<H: Harness>(h: &mut H) {
    query_case(h, Query::all(), &[1, 2, 3, 4, 5, 6, 7, 8]);
}

/// One type.
pub fn query_one_type<H: Harness>(h: &mut H) {
    query_case(h, Query::event_type("A"), &[1, 4, 6]);
}

/// An item with several types matches any of them.
pub fn query_several_types<H: Harness>(h: &mut H) {
    query_case(h, Query::item(types(&["A", "C"])), &[1, 3, 4, 6, 8]);
}

/// One tag.
pub fn query_one_tag<H: Harness>(h: &mut H) {
    query_case(h, Query::tag("t1"), &[1, 2, 6, 8]);
}

/// An item with several tags needs all of them.
pub fn query_several_tags<H: Harness>(h: &mut H) {
    query_case(h, Query::item(tags(&["t2", "t3"])), &[6, 7]);
    query_case(h, Query::item(tags(&["t3", "t1"])), &[6, 8]);
    query_case(h, Query::item(tags(&["t1", "t2", "t3"])), &[6]);
}

/// Types and tags in one item: one of the types AND all the tags.
pub fn query_type_and_tags<H: Harness>(h: &mut H) {
    query_case(h, Query::item(types(&["A"]).tag("t1")), &[1, 6]);
    query_case(h, Query::item(types(&["B", "D"]).tag("t3")), &[5, 7]);
    query_case(h, Query::item(types(&["A", "C"]).tags(["t1", "t2"])), &[6]);
}

/// Several items are OR-ed, and an event matching several items comes once.
pub fn query_several_items<H: Harness>(h: &mut H) {
    query_case(
        h,
        Query::item(types(&["C"])).or(QueryItem::new().tag("t3")),
        &[3, 5, 6, 7, 8],
    );
    query_case(h, Query::tag("t1").or(tags(&["t2"])), &[1, 2, 3, 6, 7, 8]);
    query_case(
        h,
        Query::item(types(&["A"]).tag("t2"))
            .or(types(&["B"]).tag("t3"))
            .or(types(&["D"])),
        &[5, 6, 7],
    );
}

/// Queries that match nothing.
pub fn query_no_match<H: Harness>(h: &mut H) {
    query_case(h, Query::event_type("Z"), &[]);
    query_case(h, Query::item(types(&["C"]).tag("t1").tag("t2")), &[]);
    query_case(h, Query::item(types(&["D"]).tag("t1")), &[]);
    query_case(h, Query::event_type("Z").or(tags(&["t1", "nope"])), &[]);
}

/// Tags and types no event ever carried.
pub fn query_unknown_tag_or_type<H: Harness>(h: &mut H) {
    query_case(h, Query::tag("nope"), &[]);
    query_case(h, Query::item(tags(&["t1", "nope"])), &[]);
    query_case(h, Query::item(types(&["Nope", "B"])), &[2, 5]);
    query_case(h, Query::tag("nope").or(tags(&["t2"])), &[2, 3, 6, 7]);
}

/// An item with neither types nor tags makes a multi-item query match
/// everything.
pub fn query_match_all_item_inside_multi_item_query<H: Harness>(h: &mut H) {
    query_case(
        h,
        Query::event_type("Z").or(QueryItem::new()),
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
    query_case(
        h,
        Query::item(QueryItem::new()).or(tags(&["t1"])),
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
}

/// An event carrying the same tag twice is found once.
pub fn query_event_with_repeated_tag<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![
            ev("A", &["x", "x"], "twice"),
            ev("A", &["y"], "other"),
            ev("B", &["x", "y", "x"], "mixed"),
        ],
    );
    assert_contents(&s, &log);
    check_query(&s, &log, &Query::tag("x"), &[1, 3]);
    check_query(&s, &log, &Query::item(tags(&["x", "x"])), &[1, 3]);
    check_query(&s, &log, &Query::item(tags(&["x", "y"])), &[3]);
    check_query(&s, &log, &Query::item(types(&["A", "A"])), &[1, 2]);
}

// ---------------------------------------------------------------------------
// Read options

/// Forwards gives oldest first, backwards newest first, with full contents.
pub fn read_directions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let fwd = read(&s, &Query::all(), ReadOptions::forwards());
    assert_eq!(fwd, log.events);
    let mut bwd = read(&s, &Query::all(), ReadOptions::backwards());
    bwd.reverse();
    assert_eq!(bwd, log.events);
}

/// `start` is exclusive in both directions: 0, inside, at the head and
/// past the head.
pub fn read_start_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let all = Query::all();
    let fwd = |start: u64| positions(&read(&s, &all, ReadOptions::forwards().start(start)));
    let bwd = |start: u64| positions(&read(&s, &all, ReadOptions::backwards().start(start)));
    assert_eq!(fwd(0), (1..=8).collect::<Vec<_>>());
    assert_eq!(fwd(1), (2..=8).collect::<Vec<_>>());
    assert_eq!(fwd(5), vec![6, 7, 8]);
    assert_eq!(fwd(7), vec![8]);
    assert_eq!(fwd(8), Vec::<u64>::new());
    assert_eq!(fwd(9), Vec::<u64>::new());
    assert_eq!(fwd(u64::MAX), Vec::<u64>::new());
    assert_eq!(bwd(0), Vec::<u64>::new());
    assert_eq!(bwd(1), Vec::<u64>::new());
    assert_eq!(bwd(2), vec![1]);
    assert_eq!(bwd(5), vec![4, 3, 2, 1]);
    assert_eq!(bwd(8), vec![7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bwd(9), vec![8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bwd(100), vec![8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bwd(u64::MAX), vec![8, 7, 6, 5, 4, 3, 2, 1]);
    // Starting inside a batch.
    let mid = read(&s, &all, ReadOptions::forwards().start(4).limit(1));
    assert_eq!(mid, vec![log.get(5).clone()]);
    let mid = read(&s, &all, ReadOptions::backwards().start(6).limit(1));
    assert_eq!(mid, vec![log.get(5).clone()]);
}

/// Limits 0, 1, many, more than there is.
pub fn read_limits<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let all = Query::all();
    for (limit, fwd, bwd) in [
        (0usize, vec![], vec![]),
        (1, vec![1], vec![8]),
        (3, vec![1, 2, 3], vec![8, 7, 6]),
        (8, (1..=8).collect(), (1..=8).rev().collect()),
        (100, (1..=8).collect(), (1..=8).rev().collect()),
        (usize::MAX, (1..=8).collect(), (1..=8).rev().collect()),
    ] {
        assert_eq!(
            positions(&read(&s, &all, ReadOptions::forwards().limit(limit))),
            fwd,
            "forwards limit {limit}"
        );
        assert_eq!(
            positions(&read(&s, &all, ReadOptions::backwards().limit(limit))),
            bwd,
            "backwards limit {limit}"
        );
    }
}

/// Start and limit combined with a filtering query, starting at matching
/// and non-matching positions.
pub fn read_start_and_limit_with_query<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let q = Query::tag("t1"); // 1, 2, 6, 8
    let r = |o: ReadOptions| positions(&read(&s, &q, o));
    assert_eq!(r(ReadOptions::forwards().start(2).limit(1)), vec![6]);
    assert_eq!(r(ReadOptions::forwards().start(3).limit(5)), vec![6, 8]);
    assert_eq!(r(ReadOptions::forwards().start(6)), vec![8]);
    assert_eq!(r(ReadOptions::backwards().start(6).limit(1)), vec![2]);
    assert_eq!(r(ReadOptions::backwards().start(7)), vec![6, 2, 1]);
    assert_eq!(r(ReadOptions::backwards().start(8).limit(2)), vec![6, 2]);
    assert_eq!(r(ReadOptions::backwards().start(1)), Vec::<u64>::new());
    check_fixture_queries(&s, &log);
}

/// `read_last` returns the newest matching event, whole.
pub fn read_last_match<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    assert_eq!(read_last(&s, &Query::all()), Some(log.get(8).clone()));
    assert_eq!(
        read_last(&s, &Query::event_type("A")),
        Some(log.get(6).clone())
    );
    assert_eq!(
        read_last(&s, &Query::event_type("B")),
        Some(log.get(5).clone())
    );
    assert_eq!(
        read_last(&s, &Query::item(tags(&["t1", "t2"]))),
        Some(log.get(6).clone())
    );
    append(&s, &mut log, vec![ev("B", &["t9"], "new")]);
    assert_eq!(
        read_last(&s, &Query::event_type("B")),
        Some(log.get(9).clone())
    );
}

/// `read_last` of a query that matches nothing is `None`.
pub fn read_last_no_match<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    assert_eq!(read_last(&s, &Query::all()), None);
    fixture(&s, &mut log);
    assert_eq!(read_last(&s, &Query::event_type("Z")), None);
    assert_eq!(read_last(&s, &Query::tag("nope")), None);
    assert_eq!(read_last(&s, &Query::item(types(&["D"]).tag("t1"))), None);
}

/// `read_last` with several items: the newest event matching any of them.
pub fn read_last_several_items<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let q = Query::event_type("B").or(types(&["A"]).tag("t3"));
    assert_eq!(read_last(&s, &q), Some(log.get(6).clone()));
    let q = Query::event_type("Z").or(tags(&["t2", "t3"]));
    assert_eq!(read_last(&s, &q), Some(log.get(7).clone()));
    let q = Query::event_type("Z").or(tags(&["nope"]));
    assert_eq!(read_last(&s, &q), None);
}

// ---------------------------------------------------------------------------
// DCB conditions

/// On an empty store any condition holds, and a batch never conflicts with
/// its own events.
pub fn condition_on_empty_store_and_own_batch<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(
        &s,
        &mut log,
        vec![ev("A", &["x"], "1"), ev("A", &["x"], "2")],
        fail_if(Query::tag("x"), None),
    );
    append_with(
        &s,
        &mut log,
        vec![ev("B", &["y"], "3")],
        fail_if(Query::all(), Some(2)),
    );
    assert_contents(&s, &log);
}

/// A condition that nothing matches lets the append through.
pub fn condition_success<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    for (q, after) in [
        (Query::event_type("Z"), None),
        (Query::tag("nope"), None),
        (Query::item(types(&["D"]).tag("t1")), None),
        (Query::event_type("B"), Some(5)),
    ] {
        let what = format!("{q:?} after {after:?}");
        let batch = vec![ev("New", &["n"], &what)];
        append_with(&s, &mut log, batch, fail_if(q, after));
    }
    // After the head itself: nothing can match.
    let after = Some(log.head());
    let batch = vec![ev("New", &["n"], "all")];
    append_with(&s, &mut log, batch, fail_if(Query::all(), after));
    assert_contents(&s, &log);
}

/// Without `after`, any matching event fails the append.
pub fn condition_failure_without_after<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    for (q, first) in [
        (Query::all(), 1),
        (Query::event_type("B"), 2),
        (Query::tag("t3"), 5),
        (Query::item(tags(&["t2", "t3"])), 6),
        (Query::item(types(&["D", "C"]).tag("t1")), 8),
    ] {
        let what = format!("{q:?}");
        let e = err(
            &what,
            s.append_with(vec![ev("New", &[], "x")], fail_if(q, None)),
        );
        assert_condition_failed(&what, e, first);
        assert_contents(&s, &log);
    }
}

/// `after` before the conflicting event fails; at or after it succeeds.
pub fn condition_after_around_the_conflict<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    // Type D only at position 7.
    let q = Query::event_type("D");
    for after in [0, 1, 6] {
        let what = format!("after {after}");
        let e = err(
            &what,
            s.append_with(vec![ev("New", &[], "x")], fail_if(q.clone(), Some(after))),
        );
        assert_condition_failed(&what, e, 7);
        assert_contents(&s, &log);
    }
    append_with(
        &s,
        &mut log,
        vec![ev("New", &[], "at")],
        fail_if(q.clone(), Some(7)),
    );
    append_with(
        &s,
        &mut log,
        vec![ev("New", &[], "after")],
        fail_if(q.clone(), Some(8)),
    );
    // A new conflicting event moves the conflict.
    append(&s, &mut log, vec![ev("D", &[], "d2")]); // 11
    let e = err(
        "after 7",
        s.append_with(vec![ev("New", &[], "x")], fail_if(q.clone(), Some(7))),
    );
    assert_condition_failed("after 7", e, 11);
    append_with(
        &s,
        &mut log,
        vec![ev("New", &[], "x")],
        fail_if(q, Some(11)),
    );
    assert_contents(&s, &log);
}

/// A condition whose `after` is beyond the head is a decision made on
/// positions the store never had: refused as invalid input, whether or not
/// anything would match, and nothing is appended. `after` equal to the
/// head is fine, also on an empty store.
pub fn condition_after_beyond_head_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(
        &s,
        &mut log,
        vec![ev("A", &["t"], "first")],
        fail_if(Query::tag("t"), Some(0)),
    );
    append(&s, &mut log, vec![ev("A", &["t"], "a"), ev("B", &[], "b")]);
    for (after, query) in [
        (4, Query::tag("t")),
        (100, Query::event_type("Nothing")),
        (u64::MAX, Query::all()),
    ] {
        let what = format!("after {after}");
        match err(
            &what,
            s.append_with(vec![ev("New", &[], "x")], fail_if(query, Some(after))),
        ) {
            Error::InvalidInput { reason } => assert_eq!(
                reason,
                format!("the condition's after {after} is beyond the head 3"),
                "{what}"
            ),
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert_contents(&s, &log);
    }
    let s = h.reopen(s);
    assert!(
        s.append_with(vec![ev("New", &[], "x")], fail_if(Query::all(), Some(4)))
            .is_err()
    );
    append_with(
        &s,
        &mut log,
        vec![ev("New", &[], "at the head")],
        fail_if(Query::tag("t"), Some(3)),
    );
    assert_contents(&s, &log);
}

/// The error names the first conflicting position after `after`.
pub fn condition_names_first_conflicting_position<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let q = Query::tag("t1"); // 1, 2, 6, 8
    for (after, first) in [
        (None, 1),
        (Some(0), 1),
        (Some(1), 2),
        (Some(2), 6),
        (Some(5), 6),
        (Some(6), 8),
    ] {
        let what = format!("after {after:?}");
        let e = err(
            &what,
            s.append_with(vec![ev("X", &[], "x")], fail_if(q.clone(), after)),
        );
        assert_condition_failed(&what, e, first);
    }
    assert_contents(&s, &log);
}

/// A condition with several items fails on the first event matching any
/// of them.
pub fn condition_with_several_items<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let q = Query::event_type("D").or(tags(&["t2", "t1"]));
    for (after, first) in [(None, 2), (Some(2), 6), (Some(6), 7)] {
        let what = format!("after {after:?}");
        let e = err(
            &what,
            s.append_with(vec![ev("X", &[], "x")], fail_if(q.clone(), after)),
        );
        assert_condition_failed(&what, e, first);
    }
    append_with(
        &s,
        &mut log,
        vec![ev("X", &[], "x")],
        fail_if(q.clone(), Some(7)),
    );
    let q = Query::event_type("Z").or(QueryItem::new());
    let e = err(
        "match-all item",
        s.append_with(vec![ev("X", &[], "y")], fail_if(q, Some(3))),
    );
    assert_condition_failed("match-all item", e, 4);
    assert_contents(&s, &log);
}

const THREADS: usize = 8;
const ROUNDS: usize = 6;

/// Many threads append conditionally on the same tag at once, each after
/// the last event it read: in every round exactly one wins and every other
/// gets `ConditionFailed` naming the winner's position — even when they all
/// land in one commit group.
pub fn concurrent_conditional_appends_one_wins_per_round<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![ev("Other", &["other"], "noise")]);
    let tag = "course:c1";
    let q = Query::tag(tag);
    for round in 0..ROUNDS {
        let before = read_last(&s, &q).map(|e| e.position);
        let read_barrier = Barrier::new(THREADS);
        let append_barrier = Barrier::new(THREADS);
        let results: Vec<(usize, Result<Appended>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (s, q) = (&s, &q);
                    let (read_barrier, append_barrier) = (&read_barrier, &append_barrier);
                    scope.spawn(move || {
                        read_barrier.wait();
                        let last = s.read_last(q).expect("read_last").map(|e| e.position);
                        append_barrier.wait();
                        let batch = vec![ev("Enrolled", &[tag], &format!("r{round}t{t}"))];
                        (t, s.append_with(batch, fail_if(q.clone(), last)))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread panicked"))
                .collect()
        });
        let winners: Vec<(usize, Appended)> = results
            .iter()
            .filter_map(|(t, r)| r.as_ref().ok().map(|a| (*t, *a)))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {results:?}");
        let (winner, appended) = winners[0];
        let want = log.commit(&[ev("Enrolled", &[tag], &format!("r{round}t{winner}"))]);
        assert_eq!(appended, want, "round {round}: the winner's position");
        for (t, r) in results {
            if t != winner {
                let e = r.expect_err("only one winner");
                assert_condition_failed(&format!("round {round} thread {t}"), e, want.first);
            }
        }
        assert_eq!(
            read_last(&s, &q).map(|e| e.position),
            Some(want.first),
            "round {round}, previous {before:?}"
        );
        assert_contents(&s, &log);
    }
    assert_eq!(
        positions(&read(&s, &q, ReadOptions::forwards())),
        (2..=ROUNDS as u64 + 1).collect::<Vec<_>>()
    );
}

/// Many threads append conditionally, each on its own tag, at once, round
/// after round: all succeed, with distinct gap-free positions.
pub fn concurrent_conditional_appends_on_distinct_tags_all_succeed<H: Harness>(h: &mut H) {
    let s = h.create();
    let barrier = Barrier::new(THREADS);
    let results: Vec<Vec<Appended>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, barrier) = (&s, &barrier);
                scope.spawn(move || {
                    let tag = format!("thread:{t}");
                    let q = Query::tag(tag.clone());
                    let mut out = Vec::new();
                    for round in 0..ROUNDS {
                        barrier.wait();
                        let last = s.read_last(&q).expect("read_last").map(|e| e.position);
                        let batch = vec![
                            ev("Step", &[&tag], &format!("{t}:{round}:0")),
                            ev("Step", &[&tag, "shared"], &format!("{t}:{round}:1")),
                        ];
                        let what = format!("thread {t} round {round}");
                        out.push(ok(&what, s.append_with(batch, fail_if(q.clone(), last))));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    });
    let total = (THREADS * ROUNDS * 2) as u64;
    assert_eq!(head(&s), total);
    let mut all_positions: Vec<u64> = Vec::new();
    for (t, appended) in results.iter().enumerate() {
        let tag = format!("thread:{t}");
        let events = read(&s, &Query::tag(tag), ReadOptions::forwards());
        let mut want = Vec::new();
        for (round, a) in appended.iter().enumerate() {
            assert_eq!(a.last, a.first + 1, "thread {t} round {round}");
            want.extend([a.first, a.last]);
            assert_eq!(
                events[2 * round].data,
                format!("{t}:{round}:0").into_bytes(),
                "thread {t} round {round}"
            );
            assert_eq!(
                events[2 * round + 1].data,
                format!("{t}:{round}:1").into_bytes()
            );
        }
        assert_eq!(positions(&events), want, "thread {t}");
        all_positions.extend(want);
    }
    all_positions.sort_unstable();
    assert_eq!(all_positions, (1..=total).collect::<Vec<_>>());
    assert_eq!(
        read(&s, &Query::tag("shared"), ReadOptions::forwards()).len(),
        THREADS * ROUNDS
    );
}

// ---------------------------------------------------------------------------
// Streams

/// A stream's events get revisions 0, 1, 2, … carried on read events.
pub fn stream_revisions_start_at_zero<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    assert_eq!(revision(&s, "s"), None);
    append(&s, &mut log, vec![sev("s", "0")]);
    assert_eq!(revision(&s, "s"), Some(0));
    append(&s, &mut log, vec![ev("Unstreamed", &[], "x")]);
    append(&s, &mut log, vec![sev("s", "1")]);
    append(&s, &mut log, vec![sev("s", "2")]);
    assert_eq!(revision(&s, "s"), Some(2));
    let got: Vec<Option<u64>> = read(&s, &Query::all(), ReadOptions::forwards())
        .iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(got, [Some(0), None, Some(1), Some(2)]);
    assert_contents(&s, &log);
}

/// Inside a batch, each event of a stream takes the next revision.
pub fn stream_revisions_inside_a_batch<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![
            sev("s", "0"),
            sev("s", "1"),
            ev("X", &[], "x"),
            sev("s", "2"),
        ],
    );
    assert_eq!(revision(&s, "s"), Some(2));
    append(&s, &mut log, vec![sev("s", "3"), sev("s", "4")]);
    let got: Vec<Option<u64>> = read(&s, &Query::all(), ReadOptions::backwards())
        .iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(got, [Some(4), Some(3), Some(2), None, Some(1), Some(0)]);
    assert_contents(&s, &log);
}

/// Streams interleaved in and across batches count independently.
pub fn stream_revisions_interleaved<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![sev("a", "a0"), sev("b", "b0"), sev("a", "a1")],
    );
    append(&s, &mut log, vec![sev("c", "c0")]);
    append(
        &s,
        &mut log,
        vec![
            sev("b", "b1"),
            sev("a", "a2"),
            sev("c", "c1"),
            sev("b", "b2"),
        ],
    );
    assert_eq!(revision(&s, "a"), Some(2));
    assert_eq!(revision(&s, "b"), Some(2));
    assert_eq!(revision(&s, "c"), Some(1));
    let got: Vec<(String, Option<u64>)> = read(&s, &Query::all(), ReadOptions::forwards())
        .into_iter()
        .map(|e| (e.stream.unwrap_or_default(), e.revision))
        .collect();
    let want: Vec<(String, Option<u64>)> = [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("c", 0),
        ("b", 1),
        ("a", 2),
        ("c", 1),
        ("b", 2),
    ]
    .iter()
    .map(|&(s, r)| (s.to_owned(), Some(r)))
    .collect();
    assert_eq!(got, want);
    assert_contents(&s, &log);
}

fn expect(stream: &str, r: ExpectedRevision) -> AppendOptions {
    AppendOptions::new().expect(stream, r)
}

/// `Any` accepts a missing and an existing stream.
pub fn expected_revision_any<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(
        &s,
        &mut log,
        vec![sev("s", "0")],
        expect("s", ExpectedRevision::Any),
    );
    append_with(
        &s,
        &mut log,
        vec![sev("s", "1")],
        expect("s", ExpectedRevision::Any),
    );
    assert_contents(&s, &log);
}

/// `NoStream` accepts only a stream without events.
pub fn expected_revision_no_stream<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![sev("other", "o")]);
    append_with(
        &s,
        &mut log,
        vec![sev("s", "0")],
        expect("s", ExpectedRevision::NoStream),
    );
    let e = err(
        "NoStream",
        s.append_with(vec![sev("s", "1")], expect("s", ExpectedRevision::NoStream)),
    );
    assert_wrong_revision("NoStream", e, "s", ExpectedRevision::NoStream, Some(0));
    append(&s, &mut log, vec![sev("s", "1")]);
    let e = err(
        "NoStream",
        s.append_with(vec![sev("s", "2")], expect("s", ExpectedRevision::NoStream)),
    );
    assert_wrong_revision("NoStream", e, "s", ExpectedRevision::NoStream, Some(1));
    assert_contents(&s, &log);
}

/// `Exists` accepts only a stream with events.
pub fn expected_revision_exists<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let e = err(
        "Exists",
        s.append_with(vec![sev("s", "0")], expect("s", ExpectedRevision::Exists)),
    );
    assert_wrong_revision("Exists", e, "s", ExpectedRevision::Exists, None);
    assert_contents(&s, &log);
    append(&s, &mut log, vec![sev("s", "0")]);
    append_with(
        &s,
        &mut log,
        vec![sev("s", "1")],
        expect("s", ExpectedRevision::Exists),
    );
    append_with(
        &s,
        &mut log,
        vec![sev("s", "2")],
        expect("s", ExpectedRevision::Exists),
    );
    assert_contents(&s, &log);
}

/// `Exact(n)` accepts only a stream whose last revision is `n`.
pub fn expected_revision_exact<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let x = ExpectedRevision::Exact;
    let e = err(
        "Exact(0) on nothing",
        s.append_with(vec![sev("s", "0")], expect("s", x(0))),
    );
    assert_wrong_revision("Exact(0) on nothing", e, "s", x(0), None);
    append_with(
        &s,
        &mut log,
        vec![sev("s", "0")],
        expect("s", ExpectedRevision::NoStream),
    );
    append_with(
        &s,
        &mut log,
        vec![sev("s", "1"), sev("s", "2")],
        expect("s", x(0)),
    );
    for wrong in [0, 1, 3, u64::MAX] {
        let what = format!("Exact({wrong})");
        let e = err(
            &what,
            s.append_with(vec![sev("s", "3")], expect("s", x(wrong))),
        );
        assert_wrong_revision(&what, e, "s", x(wrong), Some(2));
    }
    append_with(&s, &mut log, vec![sev("s", "3")], expect("s", x(2)));
    assert_contents(&s, &log);
}

/// Expectations on several streams: all must hold; the first failing one,
/// in the order given, is reported.
pub fn expected_revisions_on_several_streams<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let x = ExpectedRevision::Exact;
    append(
        &s,
        &mut log,
        vec![sev("a", "a0"), sev("b", "b0"), sev("b", "b1")],
    );
    append_with(
        &s,
        &mut log,
        vec![sev("a", "a1"), sev("b", "b2"), sev("c", "c0")],
        AppendOptions::new()
            .expect("a", x(0))
            .expect("b", x(1))
            .expect("c", ExpectedRevision::NoStream),
    );
    // a at 1, b at 2, c at 0.
    let cases: Vec<(AppendOptions, &str, ExpectedRevision, Option<u64>)> = vec![
        (
            AppendOptions::new()
                .expect("a", x(1))
                .expect("b", x(1))
                .expect("c", x(0)),
            "b",
            x(1),
            Some(2),
        ),
        (
            AppendOptions::new().expect("a", x(0)).expect("b", x(9)),
            "a",
            x(0),
            Some(1),
        ),
        (
            AppendOptions::new()
                .expect("c", ExpectedRevision::Exists)
                .expect("d", ExpectedRevision::Exists)
                .expect("a", x(7)),
            "d",
            ExpectedRevision::Exists,
            None,
        ),
    ];
    for (options, stream, expected, actual) in cases {
        let what = format!("{options:?}");
        let e = err(&what, s.append_with(vec![sev("a", "no")], options));
        assert_wrong_revision(&what, e, stream, expected, actual);
        assert_contents(&s, &log);
    }
    append_with(
        &s,
        &mut log,
        vec![sev("c", "c1")],
        AppendOptions::new()
            .expect("a", x(1))
            .expect("b", ExpectedRevision::Exists)
            .expect("c", x(0))
            .expect("d", ExpectedRevision::NoStream)
            .expect("e", ExpectedRevision::Any),
    );
    assert_contents(&s, &log);
}

/// An expectation may name a stream the batch does not write to.
pub fn expected_revision_of_stream_outside_the_batch<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![sev("guard", "g0")]);
    append_with(
        &s,
        &mut log,
        vec![ev("Free", &["x"], "1"), sev("other", "o0")],
        expect("guard", ExpectedRevision::Exact(0)),
    );
    append(&s, &mut log, vec![sev("guard", "g1")]);
    let e = err(
        "guard moved",
        s.append_with(
            vec![ev("Free", &[], "2")],
            expect("guard", ExpectedRevision::Exact(0)),
        ),
    );
    assert_wrong_revision(
        "guard moved",
        e,
        "guard",
        ExpectedRevision::Exact(0),
        Some(1),
    );
    assert_contents(&s, &log);
}

/// Many threads append to one stream at once, each expecting the revision
/// it read: exactly one wins per round.
pub fn concurrent_expected_revision_one_wins<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for round in 0..ROUNDS {
        let read_barrier = Barrier::new(THREADS);
        let append_barrier = Barrier::new(THREADS);
        let results: Vec<(usize, ExpectedRevision, Result<Appended>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let s = &s;
                        let (read_barrier, append_barrier) = (&read_barrier, &append_barrier);
                        scope.spawn(move || {
                            read_barrier.wait();
                            let expected = match s.stream_revision("race").expect("revision") {
                                None => ExpectedRevision::NoStream,
                                Some(r) => ExpectedRevision::Exact(r),
                            };
                            append_barrier.wait();
                            let batch = vec![sev("race", &format!("r{round}t{t}"))];
                            (t, expected, s.append_with(batch, expect("race", expected)))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread panicked"))
                    .collect()
            });
        let winners: Vec<(usize, Appended)> = results
            .iter()
            .filter_map(|(t, _, r)| r.as_ref().ok().map(|a| (*t, *a)))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let (winner, appended) = winners[0];
        let want = log.commit(&[sev("race", &format!("r{round}t{winner}"))]);
        assert_eq!(appended, want);
        for (t, expected, r) in results {
            if t != winner {
                let what = format!("round {round} thread {t}");
                let e = r.expect_err("one winner");
                assert_wrong_revision(&what, e, "race", expected, Some(round as u64));
            }
        }
        assert_contents(&s, &log);
    }
}

/// An append is checked in the documented order: input limits, ids,
/// expected revisions, then the condition.
pub fn check_order<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![sev("s", "0").id(1).tag("t"), sev("s", "1").id(2)];
    append(&s, &mut log, batch.clone());
    let failing_revision = || expect("s", ExpectedRevision::NoStream);
    let failing_all = || failing_revision().fail_if(Query::tag("t"), None);

    // Invalid input first, even in a retry of a committed batch.
    let mut bad_retry = batch.clone();
    bad_retry[1].tags.push(String::new());
    let e = err("invalid retry", s.append_with(bad_retry, failing_all()));
    assert_invalid("invalid retry", e);
    let e = err(
        "invalid condition on a retry",
        s.append_with(batch.clone(), fail_if(Query::tag(""), None)),
    );
    assert_invalid("invalid condition on a retry", e);
    let e = err(
        "condition after the head on a retry",
        s.append_with(batch.clone(), fail_if(Query::tag("t"), Some(100))),
    );
    assert_invalid("condition after the head on a retry", e);
    let e = err(
        "invalid expected stream on a retry",
        s.append_with(batch.clone(), expect("", ExpectedRevision::Any)),
    );
    assert_invalid("invalid expected stream on a retry", e);

    // Then ids: a duplicate beats the failing revision and condition.
    let e = err(
        "partial duplicate",
        s.append_with(vec![sev("s", "x").id(1)], failing_all()),
    );
    assert_duplicate("partial duplicate", e, &[1]);
    // An id repeated within the batch is bad input, refused first.
    let e = err(
        "repeated id",
        s.append_with(
            vec![sev("s", "a").id(1), ev("X", &[], "b").id(1)],
            failing_all(),
        ),
    );
    assert_invalid("repeated id", e);

    // Then revisions, before the condition.
    let e = err(
        "revision and condition",
        s.append_with(vec![ev("X", &[], "x")], failing_all()),
    );
    assert_wrong_revision(
        "revision and condition",
        e,
        "s",
        ExpectedRevision::NoStream,
        Some(1),
    );

    // Then the condition.
    let e = err(
        "condition",
        s.append_with(
            vec![ev("X", &[], "x")],
            expect("s", ExpectedRevision::Exact(1)).fail_if(Query::tag("t"), None),
        ),
    );
    assert_condition_failed("condition", e, 1);

    // An idempotent retry passes before revisions and condition.
    let retry = ok("retry", s.append_with(batch, failing_all()));
    assert_eq!(retry, Appended { first: 1, last: 2 });
    assert_contents(&s, &log);
}

// ---------------------------------------------------------------------------
// Idempotency

fn id_batch(ids: &[u128], label: &str) -> Vec<NewEvent> {
    ids.iter()
        .map(|&id| ev("Idem", &["idem"], &format!("{label}-{id}")).id(id))
        .collect()
}

/// Re-sending a committed batch with the same ids returns its original
/// positions and appends nothing; a single-event batch too.
pub fn idempotent_retry_returns_original_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![ev("Before", &[], "b")]);
    let batch = id_batch(&[10, 11, 12], "x");
    let first = append(&s, &mut log, batch.clone());
    let single = vec![sev("s", "one").id(20).metadata("m")];
    let one = append(&s, &mut log, single.clone());
    append(&s, &mut log, vec![ev("After", &[], "a")]);
    for _ in 0..3 {
        assert_eq!(ok("retry", s.append(batch.clone())), first);
        assert_eq!(ok("retry one", s.append(single.clone())), one);
        assert_contents(&s, &log);
    }
    let next = append(&s, &mut log, vec![ev("Next", &[], "n")]);
    assert_eq!(next.first, 7);
    assert_contents(&s, &log);
}

/// A retry succeeds with the original positions even when its own
/// condition or expected revisions would now fail.
pub fn idempotent_retry_ignores_failing_condition_and_expectations<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![sev("s", "0").id(1).tag("course:1"), sev("s", "1").id(2)];
    let options = AppendOptions::new()
        .expect("s", ExpectedRevision::NoStream)
        .fail_if(Query::tag("course:1"), None);
    let first = append_with(&s, &mut log, batch.clone(), options.clone());
    append(&s, &mut log, vec![sev("s", "2").tag("course:1")]);
    assert_eq!(ok("retry", s.append_with(batch.clone(), options)), first);
    let options = AppendOptions::new()
        .expect("s", ExpectedRevision::Exact(0))
        .expect("t", ExpectedRevision::Exists)
        .fail_if(Query::all(), Some(0));
    assert_eq!(ok("retry", s.append_with(batch, options)), first);
    assert_contents(&s, &log);
}

fn retry_survives<H: Harness>(h: &mut H, flush: bool) {
    let s = h.create();
    let mut log = Log::default();
    let a = id_batch(&[1, 2], "a");
    let b = vec![sev("s", "b").id(3)];
    let pa = append(&s, &mut log, a.clone());
    let pb = append(&s, &mut log, b.clone());
    if flush {
        h.flush_index(&s);
    }
    let c = id_batch(&[4, 5, 6], "c");
    let pc = append(&s, &mut log, c.clone());
    if flush {
        h.flush_index(&s);
        assert_eq!(ok("retry after flush", s.append(a.clone())), pa);
    }
    let s = h.reopen(s);
    assert_contents(&s, &log);
    for (batch, want) in [(&a, pa), (&b, pb), (&c, pc)] {
        assert_eq!(ok("retry after reopen", s.append(batch.clone())), want);
    }
    let e = err("partial after reopen", s.append(id_batch(&[2, 7], "a")));
    assert_duplicate("partial after reopen", e, &[2]);
    let e = err(
        "changed after reopen",
        s.append(id_batch(&[4, 5, 6], "changed")),
    );
    assert_duplicate("changed after reopen", e, &[4, 5, 6]);
    append(&s, &mut log, id_batch(&[7], "d"));
    assert_contents(&s, &log);
}

/// Retries still return the original positions after a reopen.
pub fn idempotent_retry_after_reopen<H: Harness>(h: &mut H) {
    retry_survives(h, false);
}

/// Retries still return the original positions after the index was
/// flushed to disk, and after a reopen then.
pub fn idempotent_retry_after_flush_index<H: Harness>(h: &mut H) {
    retry_survives(h, true);
}

/// A batch whose ids overlap a committed batch without being exactly it —
/// a subset, a superset, a mix with new ids, a reordering, a spread over
/// two batches — is rejected.
pub fn partial_duplicate_ids_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, id_batch(&[1, 2, 3], "x"));
    append(&s, &mut log, id_batch(&[4], "x"));
    let cases: Vec<(&str, Vec<NewEvent>, Vec<u128>)> = vec![
        ("prefix", id_batch(&[1, 2], "x"), vec![1, 2]),
        ("suffix", id_batch(&[2, 3], "x"), vec![2, 3]),
        ("middle", id_batch(&[2], "x"), vec![2]),
        ("superset", id_batch(&[1, 2, 3, 9], "x"), vec![1, 2, 3]),
        ("new first", id_batch(&[9, 1, 2, 3], "x"), vec![1, 2, 3]),
        ("mixed", id_batch(&[8, 3], "x"), vec![3]),
        ("reordered", id_batch(&[3, 2, 1], "x"), vec![1, 2, 3]),
        ("two batches", id_batch(&[3, 4], "x"), vec![3, 4]),
        (
            "two whole batches",
            id_batch(&[1, 2, 3, 4], "x"),
            vec![1, 2, 3, 4],
        ),
    ];
    for (what, batch, offending) in cases {
        let e = err(what, s.append(batch));
        assert_duplicate(what, e, &offending);
        assert_contents(&s, &log);
    }
    // New ids only are fine.
    append(&s, &mut log, id_batch(&[8, 9], "x"));
    assert_contents(&s, &log);
}

/// The same ids with different content (any field) are rejected.
pub fn same_ids_different_content_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let original = vec![
        NewEvent::new("T", "data")
            .tag("a")
            .metadata("m")
            .stream("s")
            .id(1),
        NewEvent::new("T", "data2").id(2),
    ];
    append(&s, &mut log, original.clone());
    type Change = fn(&mut NewEvent);
    let changes: [(&str, Change); 7] = [
        ("type", |e| e.event_type = "U".into()),
        ("data", |e| e.data = "other".into()),
        ("metadata", |e| e.metadata = "other".into()),
        ("no metadata", |e| e.metadata = Default::default()),
        ("tags", |e| e.tags.push("b".into())),
        ("stream", |e| e.stream = Some("other".into())),
        ("no stream", |e| e.stream = None),
    ];
    for (what, change) in changes {
        let mut batch = original.clone();
        change(&mut batch[0]);
        let e = err(what, s.append(batch));
        assert_duplicate(what, e, &[1, 2]);
        assert_contents(&s, &log);
    }
    let mut batch = original.clone();
    batch[1].data = "changed".into();
    let e = err("second event", s.append(batch));
    assert_duplicate("second event", e, &[1, 2]);
    assert_contents(&s, &log);
    assert_eq!(
        ok("retry", s.append(original)),
        Appended { first: 1, last: 2 }
    );
}

/// An id repeated inside one batch is rejected, whether or not it was
/// committed before.
pub fn id_repeated_in_batch_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, id_batch(&[1], "x"));
    // (what, batch, the repeated id, the indices where it appears)
    type Case = (&'static str, Vec<NewEvent>, u128, (usize, usize));
    let cases: Vec<Case> = vec![
        ("new id twice", id_batch(&[5, 5], "x"), 5, (0, 1)),
        ("new id twice apart", id_batch(&[5, 6, 5], "x"), 5, (0, 2)),
        (
            "new id twice, one event without id",
            vec![
                ev("A", &[], "a").id(5),
                ev("A", &[], "b"),
                ev("A", &[], "c").id(5),
            ],
            5,
            (0, 2),
        ),
        ("committed id twice", id_batch(&[1, 1], "x"), 1, (0, 1)),
    ];
    for (what, batch, id, (i, j)) in cases {
        match err(what, s.append(batch)) {
            Error::InvalidInput { reason } => {
                let uuid = format!("{id:032x}");
                let uuid = format!(
                    "{}-{}-{}-{}-{}",
                    &uuid[0..8],
                    &uuid[8..12],
                    &uuid[12..16],
                    &uuid[16..20],
                    &uuid[20..]
                );
                assert_eq!(
                    reason,
                    format!("event id {uuid} appears twice in the batch (at indices {i} and {j})"),
                    "{what}"
                );
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert_contents(&s, &log);
    }
    append(&s, &mut log, id_batch(&[5, 6], "x"));
    assert_contents(&s, &log);
}

/// A committed batch where only some events have ids is not retried: its
/// ids are committed, so re-sending it is `DuplicateEventId`.
pub fn batch_with_some_ids_is_not_a_retry<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![ev("A", &[], "a").id(1), ev("A", &[], "b")];
    append(&s, &mut log, batch.clone());
    let e = err("resend", s.append(batch));
    assert_duplicate("resend", e, &[1]);
    let batch = vec![ev("A", &[], "c"), ev("A", &[], "d").id(2)];
    append(&s, &mut log, batch.clone());
    let e = err("resend", s.append(batch));
    assert_duplicate("resend", e, &[2]);
    assert_contents(&s, &log);
}

/// Batches without ids are appended every time they are sent.
pub fn batches_without_ids_never_deduplicated<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![ev("A", &["t"], "same"), sev("s", "same")];
    for i in 0..3u64 {
        let a = append(&s, &mut log, batch.clone());
        assert_eq!(
            a,
            Appended {
                first: 2 * i + 1,
                last: 2 * i + 2
            }
        );
    }
    assert_eq!(revision(&s, "s"), Some(2));
    assert_contents(&s, &log);
}

/// The same batch with ids sent by many threads at once is committed once;
/// every sender gets its positions.
pub fn concurrent_identical_retries_commit_once<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for round in 0..ROUNDS as u128 {
        let batch = vec![
            ev("Pay", &["pay"], &format!("p{round}")).id(100 + 2 * round),
            sev("pay", &format!("q{round}")).id(101 + 2 * round),
        ];
        let barrier = Barrier::new(THREADS);
        let results: Vec<Result<Appended>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (s, barrier, batch) = (&s, &barrier, batch.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        s.append(batch)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread panicked"))
                .collect()
        });
        let want = log.commit(&batch);
        for r in results {
            assert_eq!(ok(&format!("round {round}"), r), want);
        }
        assert_contents(&s, &log);
    }
}

// ---------------------------------------------------------------------------
// Reopen

/// An empty store reopens empty and starts at position 1.
pub fn reopen_empty_store<H: Harness>(h: &mut H) {
    let s = h.create();
    let s = h.reopen(s);
    let mut log = Log::default();
    assert_contents(&s, &log);
    h.flush_index(&s);
    let s = h.reopen(s);
    assert_contents(&s, &log);
    assert_eq!(append(&s, &mut log, vec![ev("A", &[], "a")]).first, 1);
    assert_contents(&s, &log);
}

fn check_everything<S: EventStore>(s: &S, log: &Log) {
    assert_contents(s, log);
    check_fixture_queries(s, log);
    assert_eq!(revision(s, "s1"), Some(2));
    assert_eq!(revision(s, "s2"), Some(0));
}

/// Contents, queries, revisions and ids survive a reopen; appends continue
/// at head + 1 and revisions continue.
pub fn reopen_without_flush<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    let s = h.reopen(s);
    check_everything(&s, &log);
    let a = append(
        &s,
        &mut log,
        vec![sev("s1", "s1-3"), ev("A", &["t1"], "new")],
    );
    assert_eq!(a, Appended { first: 9, last: 10 });
    assert_eq!(revision(&s, "s1"), Some(3));
    assert_eq!(
        ok(
            "retry of fixture batch",
            s.append(vec![ev("A", &["t1"], "e1").id(0xA1)])
        ),
        Appended { first: 1, last: 1 }
    );
    let s = h.reopen(s);
    assert_contents(&s, &log);
    check_query(&s, &log, &Query::tag("t1"), &[1, 2, 6, 8, 10]);
}

/// The same after the index was flushed into an on-disk run.
pub fn reopen_after_flush_index<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    h.flush_index(&s);
    check_everything(&s, &log);
    let s = h.reopen(s);
    check_everything(&s, &log);
    let a = append(&s, &mut log, vec![sev("s2", "s2-1")]);
    assert_eq!(a, Appended { first: 9, last: 9 });
    assert_eq!(revision(&s, "s2"), Some(1));
    let e = err(
        "partial duplicate of a flushed batch",
        s.append(vec![ev("A", &[], "e4").stream("s1").id(0xA4)]),
    );
    assert_duplicate("partial duplicate of a flushed batch", e, &[0xA4]);
    assert_contents(&s, &log);
}

/// Events split between flushed runs and the unflushed tail, across several
/// flushes and reopens, are all found, in order.
pub fn reopen_with_flushed_and_unflushed_events<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![ev("A", &["t1"], "1").stream("s"), ev("B", &["t2"], "2")],
    );
    h.flush_index(&s);
    append(&s, &mut log, vec![ev("A", &["t2"], "3").stream("s").id(3)]);
    h.flush_index(&s);
    append(
        &s,
        &mut log,
        vec![ev("B", &["t1", "t2"], "4"), ev("A", &[], "5").stream("s")],
    );
    let s = h.reopen(s);
    let check = |s: &H::Store, log: &Log| {
        assert_contents(s, log);
        check_query(
            s,
            log,
            &Query::event_type("A"),
            &log.matching(&Query::event_type("A")),
        );
        check_query(s, log, &Query::tag("t2"), &log.matching(&Query::tag("t2")));
        check_query(
            s,
            log,
            &Query::item(tags(&["t1", "t2"])),
            &log.matching(&Query::item(tags(&["t1", "t2"]))),
        );
        check_query(
            s,
            log,
            &Query::event_type("B").or(tags(&["t1"])),
            &log.matching(&Query::event_type("B").or(tags(&["t1"]))),
        );
    };
    check(&s, &log);
    assert_eq!(revision(&s, "s"), Some(2));
    append(&s, &mut log, vec![ev("A", &["t1"], "6").stream("s")]);
    h.flush_index(&s);
    append(&s, &mut log, vec![ev("C", &["t2"], "7")]);
    check(&s, &log);
    let s = h.reopen(s);
    check(&s, &log);
    assert_eq!(revision(&s, "s"), Some(3));
    let e = err(
        "condition over flushed and unflushed",
        s.append_with(vec![ev("X", &[], "x")], fail_if(Query::tag("t1"), Some(4))),
    );
    assert_condition_failed("condition over flushed and unflushed", e, 6);
    assert_eq!(
        ok(
            "retry",
            s.append(vec![ev("A", &["t2"], "3").stream("s").id(3)])
        ),
        Appended { first: 3, last: 3 }
    );
    let a = append(&s, &mut log, vec![ev("D", &[], "8")]);
    assert_eq!(a.first, 8);
    check(&s, &log);
}

// ---------------------------------------------------------------------------
// Bad input

/// A store with a few events, for the bad-input cases.
fn bad_input_store<H: Harness>(h: &mut H) -> (H::Store, Log) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![ev("A", &["t"], "a").id(1).stream("s"), ev("B", &[], "b")],
    );
    (s, log)
}

/// The append must fail with `InvalidInput`, leave the store unchanged and
/// usable.
fn rejected<H: Harness>(h: &mut H, cases: Vec<(&str, Vec<NewEvent>, AppendOptions)>) {
    let (s, mut log) = bad_input_store(h);
    for (what, batch, options) in cases {
        let e = err(what, s.append_with(batch, options));
        assert_invalid(what, e);
        assert_contents(&s, &log);
    }
    let a = append(&s, &mut log, vec![sev("s", "after").tag("t")]);
    assert_eq!(a, Appended { first: 3, last: 3 });
    assert_contents(&s, &log);
}

fn plain(events: Vec<NewEvent>) -> (Vec<NewEvent>, AppendOptions) {
    (events, AppendOptions::new())
}

/// An empty batch is rejected, whatever the options.
pub fn empty_batch_rejected<H: Harness>(h: &mut H) {
    rejected(
        h,
        vec![
            ("empty", vec![], AppendOptions::new()),
            (
                "empty with condition",
                vec![],
                fail_if(Query::all(), Some(100)),
            ),
            (
                "empty with expectation",
                vec![],
                expect("s", ExpectedRevision::Any),
            ),
        ],
    );
}

/// An empty or overlong event type is rejected, anywhere in the batch.
pub fn invalid_event_type_rejected<H: Harness>(h: &mut H) {
    let long = "T".repeat(MAX_NAME_LEN + 1);
    let (b1, o1) = plain(vec![ev("", &[], "x")]);
    let (b2, o2) = plain(vec![ev("ok", &[], "x"), ev(&long, &[], "y")]);
    let multi = "é".repeat(MAX_NAME_LEN / 2 + 1); // 256 bytes, 128 chars
    let (b3, o3) = plain(vec![ev(&multi, &[], "x")]);
    rejected(
        h,
        vec![
            ("empty", b1, o1),
            ("overlong", b2, o2),
            ("overlong bytes", b3, o3),
        ],
    );
}

/// An empty or overlong tag is rejected.
pub fn invalid_tag_rejected<H: Harness>(h: &mut H) {
    let long = "t".repeat(MAX_NAME_LEN + 1);
    let (b1, o1) = plain(vec![ev("A", &["ok", ""], "x")]);
    let (b2, o2) = plain(vec![
        ev("A", &[], "x"),
        ev("A", &["ok"], "y"),
        ev("A", &[&long], "z"),
    ]);
    rejected(h, vec![("empty tag", b1, o1), ("overlong tag", b2, o2)]);
}

/// An empty or overlong stream name is rejected.
pub fn invalid_stream_rejected<H: Harness>(h: &mut H) {
    let long = "s".repeat(MAX_NAME_LEN + 1);
    let (b1, o1) = plain(vec![sev("", "x")]);
    let (b2, o2) = plain(vec![sev("s", "x"), sev(&long, "y")]);
    rejected(
        h,
        vec![("empty stream", b1, o1), ("overlong stream", b2, o2)],
    );
}

/// More than the allowed number of tags is rejected.
pub fn too_many_tags_rejected<H: Harness>(h: &mut H) {
    let tags: Vec<String> = (0..=MAX_TAGS).map(|i| format!("tag{i}")).collect();
    let (b1, o1) = plain(vec![NewEvent::new("A", "x").tags(tags)]);
    rejected(h, vec![("too many tags", b1, o1)]);
}

/// Data over the limit is rejected.
pub fn oversize_data_rejected<H: Harness>(h: &mut H) {
    let (b1, o1) = plain(vec![
        ev("A", &[], "x"),
        NewEvent::new("A", vec![0u8; MAX_DATA_LEN + 1]),
    ]);
    rejected(h, vec![("oversize data", b1, o1)]);
}

/// Metadata over the limit is rejected.
pub fn oversize_metadata_rejected<H: Harness>(h: &mut H) {
    let (b1, o1) = plain(vec![
        ev("A", &[], "x").metadata(vec![1u8; MAX_DATA_LEN + 1]),
    ]);
    rejected(h, vec![("oversize metadata", b1, o1)]);
}

/// A batch of valid events that together exceed the batch limit is
/// rejected.
pub fn oversize_batch_rejected<H: Harness>(h: &mut H) {
    let big = NewEvent::new("Big", vec![7u8; MAX_DATA_LEN]);
    let n = MAX_BATCH_LEN / MAX_DATA_LEN + 1;
    let batch: Vec<NewEvent> = (0..n).map(|_| big.clone()).collect();
    let with_meta: Vec<NewEvent> = (0..n / 2 + 1)
        .map(|_| big.clone().metadata(big.data.clone()))
        .collect();
    rejected(
        h,
        vec![
            ("oversize batch", batch, AppendOptions::new()),
            (
                "oversize batch with metadata",
                with_meta,
                AppendOptions::new(),
            ),
        ],
    );
}

fn bad_queries() -> Vec<(&'static str, Query)> {
    vec![
        ("empty type", Query::event_type("")),
        ("empty tag", Query::tag("")),
        (
            "overlong type",
            Query::event_type("T".repeat(MAX_NAME_LEN + 1)),
        ),
        ("overlong tag", Query::tag("t".repeat(MAX_NAME_LEN + 1))),
        (
            "too many tags",
            Query::item(QueryItem::new().tags((0..=MAX_TAGS).map(|i| format!("t{i}")))),
        ),
        (
            "bad second item",
            Query::tag("ok").or(QueryItem::new().tag("")),
        ),
    ]
}

/// A condition whose query has an impossible name is rejected.
pub fn invalid_query_in_condition_rejected<H: Harness>(h: &mut H) {
    let cases = bad_queries()
        .into_iter()
        .map(|(what, q)| (what, vec![ev("A", &[], "x")], fail_if(q, None)))
        .collect();
    rejected(h, cases);
}

/// A read or `read_last` of a query with an impossible name is rejected.
pub fn invalid_query_in_read_rejected<H: Harness>(h: &mut H) {
    let (s, mut log) = bad_input_store(h);
    for (what, q) in bad_queries() {
        for options in [ReadOptions::forwards(), ReadOptions::backwards().limit(1)] {
            let e = match s.read(&q, options) {
                Ok(mut it) => match it.next() {
                    Some(Err(e)) => e,
                    other => panic!("{what}: expected InvalidInput, got {other:?}"),
                },
                Err(e) => e,
            };
            assert_invalid(what, e);
        }
        let e = err(what, s.read_last(&q));
        assert_invalid(what, e);
    }
    assert_contents(&s, &log);
    append(&s, &mut log, vec![ev("C", &[], "c")]);
    assert_contents(&s, &log);
}

/// An expectation on an empty or overlong stream name is rejected.
pub fn invalid_expected_stream_rejected<H: Harness>(h: &mut H) {
    let long = "s".repeat(MAX_NAME_LEN + 1);
    rejected(
        h,
        vec![
            (
                "empty",
                vec![ev("A", &[], "x")],
                expect("", ExpectedRevision::Any),
            ),
            (
                "overlong",
                vec![ev("A", &[], "x")],
                AppendOptions::new()
                    .expect("s", ExpectedRevision::Any)
                    .expect(&long, ExpectedRevision::NoStream),
            ),
        ],
    );
}

/// Asking for the revision of a stream whose name no event could carry is
/// invalid input, not an empty stream.
pub fn invalid_stream_revision_name_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    s.append(vec![ev("A", &[], "x").stream("s")])
        .expect("append");
    for name in [String::new(), "s".repeat(MAX_NAME_LEN + 1)] {
        match s.stream_revision(&name) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("stream_revision of a {}-byte name: {other:?}", name.len()),
        }
    }
    assert_eq!(s.stream_revision("s").expect("revision"), Some(0));
}

/// Names of exactly 255 bytes, 64 tags, and data and metadata of exactly
/// the limit are accepted and come back whole.
pub fn limits_at_the_edge_accepted<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let name = "n".repeat(MAX_NAME_LEN);
    let multi = format!("{}x", "é".repeat((MAX_NAME_LEN - 1) / 2)); // 255 bytes
    assert_eq!(multi.len(), MAX_NAME_LEN);
    let tags: Vec<String> = (0..MAX_TAGS).map(|i| format!("tag{i}")).collect();
    append(
        &s,
        &mut log,
        vec![
            NewEvent::new(name.clone(), "x")
                .tag(name.clone())
                .stream(name.clone()),
            NewEvent::new(multi.clone(), "y")
                .tag(multi.clone())
                .stream(multi.clone()),
            NewEvent::new("Tags", "z").tags(tags.clone()),
        ],
    );
    let big: Vec<u8> = (0..MAX_DATA_LEN).map(|i| (i % 251) as u8).collect();
    append(
        &s,
        &mut log,
        vec![NewEvent::new("Big", big.clone()).metadata(big)],
    );
    assert_contents(&s, &log);
    check_query(&s, &log, &Query::item(types(&[&name]).tag(&name)), &[1]);
    check_query(&s, &log, &Query::tag(multi.clone()), &[2]);
    check_query(&s, &log, &Query::item(QueryItem::new().tags(tags)), &[3]);
    append_with(
        &s,
        &mut log,
        vec![ev("After", &[], "a")],
        expect(&name, ExpectedRevision::Exact(0)).fail_if(Query::tag(name.clone()), Some(1)),
    );
    assert_contents(&s, &log);
}
