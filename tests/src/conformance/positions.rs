//! Positions and events: numbering, batches, fields, timestamps.

use gesta::{AppendOptions, Appended, EventStore, ExpectedRevision, NewEvent, Query, ReadOptions};

use super::Harness;
use super::helpers::*;

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
