//! Model-based property tests: random sequences of operations run against
//! a store under test and against the reference [`MemoryStore`] side by
//! side, every result compared.
//!
//! [`ops_strategy`] generates the sequences: appends of 1–4 events with
//! types and tags from small alphabets (so that queries hit), optional
//! streams, optional ids (fresh or from a small pool, so that they
//! collide), optional DCB conditions and expected revisions; re-sends of
//! earlier batches, exact or altered; reads, `read_last`, `head`,
//! `stream_revision`, stream reads, removals (by query, by positions,
//! stream deletion and truncation, retention by count), reopen and index
//! flushes; the contents compared after every reopen include the
//! listings. [`check_against_model`]
//! runs one sequence; [`model_tests!`](crate::model_tests) expands to a
//! proptest test over a harness:
//!
//! ```ignore
//! use gesta_tests::conformance::MemoryHarness;
//! gesta_tests::model_tests!(MemoryHarness, 64);
//! ```
//!
//! Positions that depend on the store's state (an append condition's
//! `after`, a read's `start`) and expected revisions relative to a stream's
//! current revision are generated symbolically ([`Pos`], [`Expect`]) and
//! resolved against the model's state just before the operation runs, so
//! that shrinking keeps them meaningful.

use gesta::{
    AppendOptions, Direction, Error, EventStore, ExpectedRevision, MemoryStore, NewEvent, Query,
    QueryItem, ReadOptions, RecordedEvent, Result,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::conformance::Harness;

/// Re-exported so that [`model_tests!`](crate::model_tests) works in crates
/// that do not depend on proptest themselves.
pub use proptest;

/// Event types: events use the first four, queries all five (the last never
/// matches).
pub const TYPES: [&str; 5] = ["A", "B", "C", "D", "Unused"];
/// Tags: events use the first four, queries all five (the last never
/// matches).
pub const TAGS: [&str; 5] = ["t0", "t1", "t2", "t3", "unknown"];
/// Streams: events use the first three; expectations and revision queries
/// also the last, which never has events.
pub const STREAMS: [&str; 4] = ["s0", "s1", "s2", "empty"];
/// Ids from this pool (1..=POOL) collide between batches on purpose.
pub const POOL: u128 = 8;

/// A position relative to the head at the moment an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pos {
    /// Position 0.
    Zero,
    /// `head - n` (not below 0).
    Back(u64),
    /// `head + n`.
    Past(u64),
    /// `(head + 1) * n / 255`: anywhere in the log.
    Frac(u8),
}

impl Pos {
    /// The concrete position for a store whose head is `head`.
    pub fn resolve(self, head: u64) -> u64 {
        match self {
            Pos::Zero => 0,
            Pos::Back(n) => head.saturating_sub(n),
            Pos::Past(n) => head + n,
            Pos::Frac(n) => (head + 1) * u64::from(n) / 255,
        }
    }
}

/// An expected revision, possibly relative to the stream's current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This expectation as is.
    Fixed(ExpectedRevision),
    /// What the stream is at now: `Exact(current)` or `NoStream` (holds).
    Current,
    /// Off by one from what the stream is at: `Exact(current - 1)`
    /// (wrapping), or `Exact(0)` for a stream without events (fails).
    Stale,
}

impl Expect {
    /// The concrete expectation for a stream whose last revision is
    /// `current`.
    pub fn resolve(self, current: Option<u64>) -> ExpectedRevision {
        match (self, current) {
            (Expect::Fixed(e), _) => e,
            (Expect::Current, None) => ExpectedRevision::NoStream,
            (Expect::Current, Some(r)) => ExpectedRevision::Exact(r),
            (Expect::Stale, None) => ExpectedRevision::Exact(0),
            (Expect::Stale, Some(r)) => ExpectedRevision::Exact(r.wrapping_sub(1)),
        }
    }
}

/// The condition and expectations of one append, before resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The DCB condition: its query and its `after` (`None`: no `after`).
    pub condition: Option<(Query, Option<Pos>)>,
    /// Expected revisions, in order.
    pub expected: Vec<(String, Expect)>,
}

impl Conditions {
    /// The concrete options, against the current state of `model`.
    pub fn resolve(&self, model: &MemoryStore) -> AppendOptions {
        let head = model.head().expect("model head");
        let mut options = AppendOptions::new();
        if let Some((query, after)) = &self.condition {
            options = options.fail_if(query.clone(), after.map(|p| p.resolve(head)));
        }
        for (stream, expect) in &self.expected {
            let current = model.stream_revision(stream).expect("model revision");
            options = options.expect(stream.clone(), expect.resolve(current));
        }
        options
    }
}

/// How a re-sent batch differs from the one it repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Not at all: an idempotent retry when the original was committed.
    Exact,
    /// Without its first event (the same when it has one event).
    DropFirst,
    /// With one more event at the end.
    AddEvent(NewEvent),
    /// The event at this index (modulo the length) has other data.
    ChangeData(usize),
    /// In reverse order.
    Reverse,
    /// The event at this index (modulo the length) gets this id.
    SetId(usize, u128),
}

impl Mutation {
    /// Applies the mutation to a copy of `batch`.
    pub fn apply(&self, batch: &[NewEvent]) -> Vec<NewEvent> {
        let mut out = batch.to_vec();
        match self {
            Mutation::Exact => {}
            Mutation::DropFirst => {
                if out.len() > 1 {
                    out.remove(0);
                }
            }
            Mutation::AddEvent(e) => out.push(e.clone()),
            Mutation::ChangeData(i) => {
                if !out.is_empty() {
                    let n = out.len();
                    let e = &mut out[i % n];
                    let mut data = e.data.to_vec();
                    data.push(0xEE);
                    e.data = data.into();
                }
            }
            Mutation::Reverse => out.reverse(),
            Mutation::SetId(i, id) => {
                if !out.is_empty() {
                    let n = out.len();
                    out[i % n].id = Some(*id);
                }
            }
        }
        out
    }
}

/// One operation of a generated sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Append these events (usually 1–4, rarely an invalid batch).
    Append {
        /// The batch.
        events: Vec<NewEvent>,
        /// Its condition and expectations.
        conditions: Conditions,
    },
    /// Re-send an earlier `Append`'s batch (the `batch`-th, modulo their
    /// number; nothing when there was none), altered by `mutation`.
    Resend {
        /// Which earlier batch.
        batch: usize,
        /// How the re-sent batch differs.
        mutation: Mutation,
        /// Its condition and expectations (the original's are not kept).
        conditions: Conditions,
    },
    /// Read a query.
    Read {
        /// The query.
        query: Query,
        /// The direction.
        direction: Direction,
        /// The exclusive start.
        start: Option<Pos>,
        /// The limit.
        limit: Option<usize>,
    },
    /// `read_last` of a query.
    ReadLast(Query),
    /// A stream's revision.
    StreamRevision(String),
    /// The head.
    Head,
    /// Read a stream, forwards and backwards.
    ReadStream(String),
    /// Remove the events a query matches.
    RemoveQuery(Query),
    /// Remove the events at positions relative to the head.
    RemovePositions(Vec<Pos>),
    /// Delete a stream.
    DeleteStream(String),
    /// Truncate a stream before a revision.
    TruncateStream(String, u64),
    /// Set a retention rule keeping a stream's newest `n` events (0: an
    /// invalid rule), then enforce the rules.
    RetainNewest(String, u64),
    /// Close and reopen the store under test.
    Reopen,
    /// Flush the store's index into an on-disk run.
    FlushIndex,
    /// The store's explicit compaction (on the engine, a merge of every
    /// run that purges removed events' postings).
    Compact,
}

/// An [`Error`] reduced to what must be equal between stores: the kind and
/// the fields, but not `InvalidInput`'s human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// [`Error::InvalidInput`].
    InvalidInput,
    /// [`Error::ConditionFailed`].
    ConditionFailed {
        /// The first conflicting position.
        position: u64,
    },
    /// [`Error::WrongExpectedRevision`].
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the append expected.
        expected: ExpectedRevision,
        /// The stream's last revision.
        actual: Option<u64>,
    },
    /// [`Error::DuplicateEventId`].
    DuplicateEventId {
        /// The offending id.
        id: u128,
    },
    /// Any other error, which the reference never returns.
    Other(String),
}

/// Maps an [`Error`] to a comparable [`Failure`].
pub fn failure(e: &Error) -> Failure {
    match e {
        Error::InvalidInput { .. } => Failure::InvalidInput,
        Error::ConditionFailed { position } => Failure::ConditionFailed {
            position: *position,
        },
        Error::WrongExpectedRevision {
            stream,
            expected,
            actual,
        } => Failure::WrongExpectedRevision {
            stream: stream.clone(),
            expected: *expected,
            actual: *actual,
        },
        Error::DuplicateEventId { id } => Failure::DuplicateEventId { id: *id },
        other => Failure::Other(other.to_string()),
    }
}

/// A result with its error made comparable.
pub fn comparable<T>(r: Result<T>) -> std::result::Result<T, Failure> {
    r.map_err(|e| failure(&e))
}

/// `e` without its timestamp, which differs between stores.
pub fn without_timestamp(mut e: RecordedEvent) -> RecordedEvent {
    e.timestamp_micros = 0;
    e
}

/// Reads everything `query` and `options` select, events without
/// timestamps, the first error (from `read` or from the iterator) made
/// comparable.
pub fn read_comparable<S: EventStore>(
    s: &S,
    query: &Query,
    options: ReadOptions,
) -> std::result::Result<Vec<RecordedEvent>, Failure> {
    let events = comparable(s.read(query, options))?;
    events
        .map(|r| comparable(r).map(without_timestamp))
        .collect()
}

fn read_last_comparable<S: EventStore>(
    s: &S,
    query: &Query,
) -> std::result::Result<Option<RecordedEvent>, Failure> {
    comparable(s.read_last(query)).map(|e| e.map(without_timestamp))
}

/// Compares the whole contents of `store` with `model`: every event, the
/// head and every stream's revision.
fn check_contents<S: EventStore>(name: &str, store: &S, model: &MemoryStore, when: &str) {
    let all = ReadOptions::forwards();
    assert_eq!(
        read_comparable(store, &Query::all(), all),
        read_comparable(model, &Query::all(), all),
        "{name}: contents {when}"
    );
    assert_eq!(
        comparable(store.head()),
        comparable(model.head()),
        "{name}: head {when}"
    );
    for stream in STREAMS {
        assert_eq!(
            comparable(store.stream_revision(stream)),
            comparable(model.stream_revision(stream)),
            "{name}: revision of {stream} {when}"
        );
    }
    for what in [
        gesta::Listing::Streams,
        gesta::Listing::Types,
        gesta::Listing::Tags,
    ] {
        assert_eq!(
            comparable(store.list(what, "", None, 1000)),
            comparable(model.list(what, "", None, 1000)),
            "{name}: listing of {what:?} {when}"
        );
    }
}

/// A stream read both ways, made comparable.
fn stream_comparable<S: EventStore>(
    s: &S,
    stream: &str,
) -> std::result::Result<Vec<RecordedEvent>, Failure> {
    let mut out = Vec::new();
    for options in [ReadOptions::forwards(), ReadOptions::backwards()] {
        let events = comparable(s.read_stream(stream, options))?;
        for e in events {
            out.push(comparable(e).map(without_timestamp)?);
        }
    }
    Ok(out)
}

/// Runs `ops` against a fresh store from `h` and a [`MemoryStore`] side by
/// side, asserting that every result is equal (events compared without
/// their timestamps, errors as [`Failure`]s), and that the whole contents
/// are equal after every reopen and at the end.
pub fn check_against_model<H: Harness>(h: &mut H, ops: &[Op]) {
    let name = h.name();
    let model = MemoryStore::new();
    let mut store = h.create();
    let mut sent: Vec<Vec<NewEvent>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let at = format!("op {i} ({op:?})");
        match op {
            Op::Append { events, conditions } => {
                sent.push(events.clone());
                let options = conditions.resolve(&model);
                let want = comparable(model.append_with(events.clone(), options.clone()));
                let got = comparable(store.append_with(events.clone(), options.clone()));
                assert_eq!(got, want, "{name}: {at} with {options:?}");
            }
            Op::Resend {
                batch,
                mutation,
                conditions,
            } => {
                if sent.is_empty() {
                    continue;
                }
                let events = mutation.apply(&sent[batch % sent.len()]);
                let options = conditions.resolve(&model);
                let want = comparable(model.append_with(events.clone(), options.clone()));
                let got = comparable(store.append_with(events.clone(), options.clone()));
                assert_eq!(got, want, "{name}: {at}: {events:?} with {options:?}");
            }
            Op::Read {
                query,
                direction,
                start,
                limit,
            } => {
                let head = model.head().expect("model head");
                let options = ReadOptions {
                    direction: *direction,
                    start: start.map(|p| p.resolve(head)),
                    limit: *limit,
                };
                assert_eq!(
                    read_comparable(&store, query, options),
                    read_comparable(&model, query, options),
                    "{name}: {at} as {options:?}"
                );
            }
            Op::ReadLast(query) => {
                assert_eq!(
                    read_last_comparable(&store, query),
                    read_last_comparable(&model, query),
                    "{name}: {at}"
                );
            }
            Op::StreamRevision(stream) => {
                assert_eq!(
                    comparable(store.stream_revision(stream)),
                    comparable(model.stream_revision(stream)),
                    "{name}: {at}"
                );
            }
            Op::Head => {
                assert_eq!(
                    comparable(store.head()),
                    comparable(model.head()),
                    "{name}: {at}"
                );
            }
            Op::ReadStream(stream) => {
                assert_eq!(
                    stream_comparable(&store, stream),
                    stream_comparable(&model, stream),
                    "{name}: {at}"
                );
            }
            Op::RemoveQuery(query) => {
                let target = gesta::lifecycle::Target::Query(query.clone());
                assert_eq!(
                    comparable(store.remove(&target)),
                    comparable(model.remove(&target)),
                    "{name}: {at}"
                );
            }
            Op::RemovePositions(positions) => {
                let head = model.head().expect("model head");
                let target = gesta::lifecycle::Target::Positions(
                    positions.iter().map(|p| p.resolve(head)).collect(),
                );
                assert_eq!(
                    comparable(store.remove(&target)),
                    comparable(model.remove(&target)),
                    "{name}: {at}: {target:?}"
                );
            }
            Op::DeleteStream(stream) => {
                assert_eq!(
                    comparable(store.delete_stream(stream)),
                    comparable(model.delete_stream(stream)),
                    "{name}: {at}"
                );
            }
            Op::TruncateStream(stream, before) => {
                assert_eq!(
                    comparable(store.truncate_stream(stream, *before)),
                    comparable(model.truncate_stream(stream, *before)),
                    "{name}: {at}"
                );
            }
            Op::RetainNewest(stream, n) => {
                let rule = gesta::RetentionRule::stream(stream.clone()).max_count(*n);
                assert_eq!(
                    comparable(store.set_retention(&rule)),
                    comparable(model.set_retention(&rule)),
                    "{name}: {at}"
                );
                assert_eq!(
                    comparable(store.enforce_retention()),
                    comparable(model.enforce_retention()),
                    "{name}: {at}: enforced"
                );
                assert_eq!(
                    comparable(store.retention_rules()),
                    comparable(model.retention_rules()),
                    "{name}: {at}: rules"
                );
            }
            Op::Reopen => {
                store = h.reopen(store);
                check_contents(name, &store, &model, &format!("after {at}"));
            }
            Op::FlushIndex => h.flush_index(&store),
            Op::Compact => {
                // The engine's compaction enforces the retention rules
                // first: so do both stores, which leaves it nothing to do.
                assert_eq!(
                    comparable(store.enforce_retention()),
                    comparable(model.enforce_retention()),
                    "{name}: {at}: retention before compacting"
                );
                h.compact(&store);
                check_contents(name, &store, &model, &format!("after {at}"));
            }
        }
    }
    check_contents(name, &store, &model, "at the end");
}

// ---------------------------------------------------------------------------
// Strategies

fn names(all: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(all).prop_map(str::to_owned)
}

fn id() -> impl Strategy<Value = u128> {
    prop_oneof![
        3 => (POOL as u64 + 1..).prop_map(u128::from),
        1 => (1..=POOL as u64).prop_map(u128::from),
    ]
}

/// One valid event, without an id.
fn event() -> impl Strategy<Value = NewEvent> {
    (
        names(&TYPES[..4]),
        vec(names(&TAGS[..4]), 0..=3),
        option::weighted(0.4, names(&STREAMS[..3])),
        vec(any::<u8>(), 0..6),
        prop_oneof![3 => Just(Vec::new()), 1 => vec(any::<u8>(), 1..4)],
    )
        .prop_map(|(event_type, tags, stream, data, metadata)| NewEvent {
            event_type,
            tags,
            data: data.into(),
            metadata: metadata.into(),
            id: None,
            stream,
        })
}

/// Which events of a batch get ids.
#[derive(Clone, Copy, Debug)]
enum IdMode {
    None,
    All,
    Some,
}

/// A batch of 1–4 valid events; ids on none, all or some of them.
fn valid_batch() -> impl Strategy<Value = Vec<NewEvent>> {
    (
        prop_oneof![
            2 => Just(IdMode::None),
            3 => Just(IdMode::All),
            1 => Just(IdMode::Some),
        ],
        vec(event(), 1..=4),
        vec((id(), any::<bool>()), 4),
    )
        .prop_map(|(mode, mut events, ids)| {
            for (e, (id, pick)) in events.iter_mut().zip(ids) {
                e.id = match mode {
                    IdMode::None => None,
                    IdMode::All => Some(id),
                    IdMode::Some => pick.then_some(id),
                };
            }
            events
        })
}

/// Usually a valid batch; rarely an empty one or one with an empty tag.
fn batch() -> impl Strategy<Value = Vec<NewEvent>> {
    prop_oneof![
        40 => valid_batch(),
        1 => Just(Vec::new()),
        1 => valid_batch().prop_map(|mut events| {
            events[0].tags.push(String::new());
            events
        }),
    ]
}

fn query_item() -> impl Strategy<Value = QueryItem> {
    (vec(names(&TYPES), 0..=2), vec(names(&TAGS), 0..=2))
        .prop_map(|(types, tags)| QueryItem { types, tags })
}

/// A query of 0–3 items; rarely one with an invalid (empty) tag.
pub fn query_strategy() -> impl Strategy<Value = Query> {
    prop_oneof![
        40 => vec(query_item(), 0..=3).prop_map(Query::from_items),
        1 => Just(Query::tag("")),
    ]
}

/// A position anywhere from 0 to a little past the head.
fn read_pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        Just(Pos::Zero),
        (0..4u64).prop_map(Pos::Back),
        (1..3u64).prop_map(Pos::Past),
        any::<u8>().prop_map(Pos::Frac),
    ]
}

/// A condition's `after`: from 0 to head + 1.
fn after_pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        1 => Just(Pos::Zero),
        3 => (0..4u64).prop_map(Pos::Back),
        1 => Just(Pos::Past(1)),
        2 => any::<u8>().prop_map(Pos::Frac),
    ]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        1 => Just(Expect::Fixed(ExpectedRevision::Any)),
        1 => Just(Expect::Fixed(ExpectedRevision::NoStream)),
        1 => Just(Expect::Fixed(ExpectedRevision::Exists)),
        1 => (0..4u64).prop_map(|n| Expect::Fixed(ExpectedRevision::Exact(n))),
        4 => Just(Expect::Current),
        1 => Just(Expect::Stale),
    ]
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        option::weighted(0.4, (query_strategy(), option::weighted(0.8, after_pos()))),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => vec((names(&STREAMS), expect()), 1..=2),
        ],
    )
        .prop_map(|(condition, expected)| Conditions {
            condition,
            expected,
        })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => Just(Mutation::Exact),
        1 => Just(Mutation::DropFirst),
        1 => event()
            .prop_flat_map(|e| id().prop_map(move |id| e.clone().id(id)))
            .prop_map(Mutation::AddEvent),
        1 => (0..4usize).prop_map(Mutation::ChangeData),
        1 => Just(Mutation::Reverse),
        1 => (0..4usize, id()).prop_map(|(i, id)| Mutation::SetId(i, id)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (batch(), conditions())
            .prop_map(|(events, conditions)| Op::Append { events, conditions }),
        3 => (any::<usize>(), mutation(), conditions()).prop_map(
            |(batch, mutation, conditions)| Op::Resend {
                batch,
                mutation,
                conditions,
            }
        ),
        4 => (
            query_strategy(),
            prop_oneof![Just(Direction::Forwards), Just(Direction::Backwards)],
            option::weighted(0.6, read_pos()),
            option::weighted(0.5, 0..5usize),
        )
            .prop_map(|(query, direction, start, limit)| Op::Read {
                query,
                direction,
                start,
                limit,
            }),
        2 => query_strategy().prop_map(Op::ReadLast),
        1 => names(&STREAMS).prop_map(Op::StreamRevision),
        1 => Just(Op::Head),
        1 => names(&STREAMS).prop_map(Op::ReadStream),
        1 => query_strategy().prop_map(Op::RemoveQuery),
        1 => vec(read_pos(), 1..=3).prop_map(Op::RemovePositions),
        1 => names(&STREAMS).prop_map(Op::DeleteStream),
        1 => (names(&STREAMS), 0..4u64).prop_map(|(s, b)| Op::TruncateStream(s, b)),
        1 => (names(&STREAMS), 0..4u64).prop_map(|(s, n)| Op::RetainNewest(s, n)),
        1 => Just(Op::Reopen),
        1 => Just(Op::FlushIndex),
        1 => Just(Op::Compact),
    ]
}

/// Sequences of 1–40 operations.
pub fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 1..=40)
}

/// The proptest configuration of [`model_tests!`](crate::model_tests):
/// `cases` cases, unless `PROPTEST_CASES` is set, which wins.
pub fn config(cases: u32) -> proptest::test_runner::Config {
    let default = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        proptest::test_runner::Config { cases, ..default }
    }
}

/// Expands to a proptest test, `model_matches_memory_store`, that runs
/// `$cases` random operation sequences ([`ops_strategy`]) through
/// [`check_against_model`] on a harness made by evaluating `$harness` for
/// each case.
///
/// ```ignore
/// gesta_tests::model_tests!(StoreHarness::new(), 64);
/// ```
#[macro_export]
macro_rules! model_tests {
    ($harness:expr, $cases:expr) => {
        $crate::model::proptest::proptest! {
            #![proptest_config($crate::model::config($cases))]
            #[test]
            fn model_matches_memory_store(ops in $crate::model::ops_strategy()) {
                let mut harness = $harness;
                $crate::model::check_against_model(&mut harness, &ops);
            }
        }
    };
}
