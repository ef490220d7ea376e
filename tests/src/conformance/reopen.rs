//! Reopen: what a persistent store holds after close and open, with and
//! without an index flush.

use gesta::{Appended, EventStore, Query};

use super::Harness;
use super::helpers::*;

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
