//! DCB conditions: `fail_if_events_match` with and without `after`, the
//! conflicting position, several items, concurrent appends.

use std::sync::Barrier;

use gesta::{Appended, Error, EventStore, Query, QueryItem, ReadOptions, Result};

use super::Harness;
use super::helpers::*;

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
