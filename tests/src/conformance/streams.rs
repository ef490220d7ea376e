//! Streams: revisions, expected revisions, and the order of the checks.

use std::sync::Barrier;

use gesta::{AppendOptions, Appended, EventStore, ExpectedRevision, Query, ReadOptions, Result};

use super::Harness;
use super::helpers::*;

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
