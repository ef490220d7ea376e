//! Bad input: every limit refused with `InvalidInput`, the store untouched;
//! the limits themselves accepted.

use gesta::event::{MAX_BATCH_LEN, MAX_DATA_LEN, MAX_NAME_LEN, MAX_TAGS};
use gesta::{
    AppendOptions, Appended, Error, EventStore, ExpectedRevision, NewEvent, Query, QueryItem,
    ReadOptions,
};

use super::Harness;
use super::helpers::*;

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
        let lent = s.read_each(&q, ReadOptions::forwards(), &mut |e| {
            panic!("{what}: read_each lent position {}", e.position)
        });
        assert_invalid(what, err(what, lent));
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

/// Names of exactly 1,024 bytes, 255 tags, and data and metadata of exactly
/// the limit are accepted and come back whole.
pub fn limits_at_the_edge_accepted<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let name = "n".repeat(MAX_NAME_LEN);
    // Two-byte chars up to the limit.
    let multi = format!(
        "{}{}",
        "é".repeat(MAX_NAME_LEN / 2),
        "x".repeat(MAX_NAME_LEN % 2)
    );
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
