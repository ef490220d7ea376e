//! Query shapes and read options: types, tags, items, directions, starts,
//! limits, `read_last`.

use gesta::{EventStore, Query, QueryItem, ReadOptions};

use super::Harness;
use super::helpers::*;

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

/// A query of hundreds of types, or of hundreds of items, is answered as
/// a small one is (the SQL stores build one arm per type of a tag-less
/// item and per tagged item; SQLite refuses a compound of more than 500),
/// by reads, `read_last` and a condition alike.
pub fn queries_of_hundreds_of_arms<H: Harness>(h: &mut H) {
    queries_of_absent_names(h, 600);
}

/// A query of more names than a SQL statement may bind (SQLite allows
/// 32,766 variables, PostgreSQL 65,535 parameters) answers as a small one
/// does: in a read, a `read_last` and a condition.
pub fn queries_of_more_names_than_a_statement_binds<H: Harness>(h: &mut H) {
    queries_of_absent_names(h, 40_000);
}

/// One item of the fixture's types "A" and "C" and `names` absent ones,
/// and tag "t3" OR-ed with `names` items of one absent tag each, in reads,
/// a `read_last` and a condition.
fn queries_of_absent_names<H: Harness>(h: &mut H, names: usize) {
    let many_types = Query::item(
        QueryItem::new().types(
            ["A", "C"]
                .into_iter()
                .map(str::to_owned)
                .chain((0..names).map(|i| format!("absent-{i}"))),
        ),
    );
    query_case(h, many_types.clone(), &[1, 3, 4, 6, 8]);
    let mut many_items = Query::tag("t3");
    for i in 0..names {
        many_items = many_items.or(QueryItem::new().tag(format!("absent-{i}")));
    }
    query_case(h, many_items.clone(), &[5, 6, 7, 8]);
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    assert_eq!(
        ok("read_last", s.read_last(&many_items)).map(|e| e.position),
        Some(8)
    );
    let failed = s.append_with(
        vec![gesta::NewEvent::new("E", "{}")],
        gesta::AppendOptions::new().fail_if(many_types, Some(7)),
    );
    assert!(
        matches!(failed, Err(gesta::Error::ConditionFailed { position: 8 })),
        "{failed:?}"
    );
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

/// `read_each` lends what `read` yields (every read of the suite checks
/// that), stops when the callback breaks, and (`invalid_query_in_read_rejected`) refuses what `read` refuses.
pub fn read_each_lends_until_break<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    fixture(&s, &mut log);
    h.flush_index(&s);
    append(&s, &mut log, vec![ev("A", &["t1"], "e9").stream("s1")]);
    for (query, want) in fixture_queries() {
        for options in [ReadOptions::forwards(), ReadOptions::backwards()] {
            let mut expected = want.clone();
            if query.matches("A", &["t1".to_owned()]) {
                expected.push(9);
            }
            if options.direction == gesta::Direction::Backwards {
                expected.reverse();
            }
            for stop in 0..=expected.len() {
                let mut seen = Vec::new();
                let r = s.read_each(&query, options, &mut |e| {
                    seen.push(e.position);
                    if seen.len() > stop {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                });
                ok("read_each", r);
                let lent = expected.len().min(stop + 1);
                assert_eq!(
                    seen,
                    expected[..lent],
                    "{query:?} {options:?} break after {stop}"
                );
            }
        }
    }
    assert_contents(&s, &log);
}

/// Reads longer than the pages a SQL store fetches (512 rows): `read` and
/// `read_each` agree across page boundaries, both ways, with limits that
/// end inside and at the edge of a page.
pub fn reads_across_pages<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for b in 0..13u64 {
        let batch = (0..100u64)
            .map(|i| {
                let n = b * 100 + i;
                ev(
                    if n % 3 == 0 { "A" } else { "B" },
                    &[&format!("t{}", n % 2)],
                    "x",
                )
            })
            .collect();
        append(&s, &mut log, batch);
    }
    let all = Query::all();
    let t0 = Query::tag("t0");
    for query in [&all, &t0] {
        for limit in [None, Some(511), Some(512), Some(513), Some(1025)] {
            for mut options in [ReadOptions::forwards(), ReadOptions::backwards()] {
                options.limit = limit;
                let got = read(&s, query, options);
                let mut want = log.matching(query);
                if options.direction == gesta::Direction::Backwards {
                    want.reverse();
                }
                want.truncate(limit.unwrap_or(usize::MAX));
                assert_eq!(positions(&got), want, "{query:?} {options:?}");
            }
        }
    }
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
