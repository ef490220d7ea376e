//! What the cases share: the suite's own model of a log, the fixture, and
//! the assertions.

use std::fmt::Debug;
use std::ops::ControlFlow;

use gesta::{
    AppendOptions, Appended, Error, EventStore, ExpectedRevision, NewEvent, Query, QueryItem,
    ReadOptions, RecordedEvent, Result,
};

/// What the store must hold: the suite's own, independent model of a log.
#[derive(Clone, Debug, Default)]
pub(super) struct Log {
    pub(super) events: Vec<RecordedEvent>,
}

impl Log {
    pub(super) fn head(&self) -> u64 {
        self.events.len() as u64
    }

    pub(super) fn revision(&self, stream: &str) -> Option<u64> {
        self.events
            .iter()
            .rev()
            .find(|e| e.stream.as_deref() == Some(stream))
            .and_then(|e| e.revision)
    }

    /// Records `batch` as committed; returns the positions it must get.
    pub(super) fn commit(&mut self, batch: &[NewEvent]) -> Appended {
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

    pub(super) fn streams(&self) -> Vec<String> {
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
    pub(super) fn matching(&self, query: &Query) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| query.matches(&e.event_type, &e.tags))
            .map(|e| e.position)
            .collect()
    }

    pub(super) fn get(&self, position: u64) -> &RecordedEvent {
        &self.events[(position - 1) as usize]
    }
}

/// The recorded form of `e` at `position` (timestamp 0: see [`strip`]).
pub(super) fn recorded(position: u64, e: &NewEvent, revision: Option<u64>) -> RecordedEvent {
    e.clone().into_recorded(position, revision, 0)
}

/// `e` without its timestamp, which differs between stores.
pub(super) fn strip(mut e: RecordedEvent) -> RecordedEvent {
    e.timestamp_micros = 0;
    e
}

pub(super) fn ok<T>(what: &str, r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error {e:?}"))
}

pub(super) fn err<T: Debug>(what: &str, r: Result<T>) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// Reads with timestamps kept; every read also checks that
/// [`EventStore::read_each`] lends exactly what `read` yields.
pub(super) fn read_raw<S: EventStore>(
    s: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<RecordedEvent> {
    let what = format!("read {query:?} {options:?}");
    let events: Vec<RecordedEvent> = ok(&what, s.read(query, options))
        .map(|r| ok(&what, r))
        .collect();
    assert_eq!(read_each(s, query, options), events, "{what}: read_each");
    events
}

/// `read_stream`, timestamps cleared; checks that `read_stream_each` lends
/// the same events (every stream read of the suite goes through here).
pub(super) fn stream<S: EventStore>(s: &S, name: &str, options: ReadOptions) -> Vec<RecordedEvent> {
    let what = format!("read_stream {name:?} {options:?}");
    let events: Vec<RecordedEvent> = ok(&what, s.read_stream(name, options))
        .map(|r| ok(&what, r))
        .collect();
    let mut lent = Vec::new();
    ok(
        &what,
        s.read_stream_each(name, options, &mut |e| {
            lent.push(e.to_owned());
            ControlFlow::Continue(())
        }),
    );
    assert_eq!(lent, events, "{what}: read_stream_each");
    events.into_iter().map(strip).collect()
}

/// `event_by_id`, timestamps kept; checks that `event_by_id_with` lends
/// the same event, once, and says so (every lookup by id of the suite goes
/// through here).
pub(super) fn by_id_raw<S: EventStore>(s: &S, id: u128) -> Option<RecordedEvent> {
    let what = format!("event_by_id {id:#x}");
    let found = ok(&what, s.event_by_id(id));
    let mut lent = Vec::new();
    let said = ok(
        &what,
        s.event_by_id_with(id, &mut |e| {
            assert_eq!(e.tags.len(), e.tags.count(), "{what}: tag count");
            lent.push(e.to_owned());
        }),
    );
    assert_eq!(
        lent,
        Vec::from_iter(found.clone()),
        "{what}: event_by_id_with"
    );
    assert_eq!(said, found.is_some(), "{what}: event_by_id_with's answer");
    found
}

/// The events [`EventStore::read_each`] lends, made owned.
pub(super) fn read_each<S: EventStore>(
    s: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<RecordedEvent> {
    let mut lent = Vec::new();
    let what = format!("read_each {query:?} {options:?}");
    ok(
        &what,
        s.read_each(query, options, &mut |e| {
            assert_eq!(e.tags.len(), e.tags.count(), "{what}: tag count");
            lent.push(e.to_owned());
            ControlFlow::Continue(())
        }),
    );
    lent
}

pub(super) fn read<S: EventStore>(
    s: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<RecordedEvent> {
    read_raw(s, query, options).into_iter().map(strip).collect()
}

pub(super) fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

pub(super) fn read_last<S: EventStore>(s: &S, query: &Query) -> Option<RecordedEvent> {
    ok(&format!("read_last {query:?}"), s.read_last(query)).map(strip)
}

pub(super) fn head<S: EventStore>(s: &S) -> u64 {
    ok("head", s.head())
}

pub(super) fn revision<S: EventStore>(s: &S, stream: &str) -> Option<u64> {
    ok(
        &format!("stream_revision {stream:?}"),
        s.stream_revision(stream),
    )
}

/// Appends `batch`, which must succeed, and checks its positions against
/// the log.
pub(super) fn append<S: EventStore>(s: &S, log: &mut Log, batch: Vec<NewEvent>) -> Appended {
    append_with(s, log, batch, AppendOptions::new())
}

pub(super) fn append_with<S: EventStore>(
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
pub(super) fn assert_contents<S: EventStore>(s: &S, log: &Log) {
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

pub(super) fn assert_invalid(what: &str, e: Error) {
    assert!(
        matches!(e, Error::InvalidInput { .. }),
        "{what}: expected InvalidInput, got {e:?}"
    );
}

pub(super) fn assert_condition_failed(what: &str, e: Error, position: u64) {
    match e {
        Error::ConditionFailed { position: p } => {
            assert_eq!(p, position, "{what}: conflicting position")
        }
        other => panic!("{what}: expected ConditionFailed at {position}, got {other:?}"),
    }
}

pub(super) fn assert_wrong_revision(
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

pub(super) fn assert_duplicate(what: &str, e: Error, ids: &[u128]) {
    match e {
        Error::DuplicateEventId { id } => assert!(
            ids.contains(&id),
            "{what}: DuplicateEventId names {id:#x}, expected one of {ids:x?}"
        ),
        other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
    }
}

/// An event of `event_type` with `tags` and data saying `label`.
pub(super) fn ev(event_type: &str, tags: &[&str], label: &str) -> NewEvent {
    NewEvent::new(event_type, label.to_owned()).tags(tags.iter().copied())
}

/// An event in `stream`.
pub(super) fn sev(stream: &str, label: &str) -> NewEvent {
    NewEvent::new("StreamEvent", label.to_owned()).stream(stream)
}

pub(super) fn fail_if(query: Query, after: Option<u64>) -> AppendOptions {
    AppendOptions::new().fail_if(query, after)
}

pub(super) fn types(t: &[&str]) -> QueryItem {
    QueryItem::new().types(t.iter().copied())
}

pub(super) fn tags(t: &[&str]) -> QueryItem {
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
pub(super) fn fixture<S: EventStore>(s: &S, log: &mut Log) {
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
pub(super) fn check_query<S: EventStore>(s: &S, log: &Log, query: &Query, want: &[u64]) {
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
pub(super) fn fixture_queries() -> Vec<(Query, Vec<u64>)> {
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

pub(super) fn check_fixture_queries<S: EventStore>(s: &S, log: &Log) {
    for (q, want) in fixture_queries() {
        check_query(s, log, &q, &want);
    }
}

pub(super) fn expect(stream: &str, r: ExpectedRevision) -> AppendOptions {
    AppendOptions::new().expect(stream, r)
}

pub(super) const THREADS: usize = 8;

pub(super) const ROUNDS: usize = 6;
