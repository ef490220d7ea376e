//! Retroactive tags, redaction and the audit trail (the lifecycle
//! contract): `add_tags` and `redact` by positions and by query, what
//! reads, lookups, queries, listings, conditions and subscriptions see
//! afterwards, persistence through index flushes and reopening, the audit
//! trail and its pages, and bad input.
//!
//! The cases keep their own model of what an operation must do (the
//! suite's [`Log`], the positions redacted, and the audit entries they
//! imply), and most also spell out the resulting tags or data by hand, so
//! that the model is checked too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use gesta::event::{MAX_NAME_LEN, MAX_TAGS};
use gesta::lifecycle::MAX_TARGETED_EVENTS;
use gesta::listing::MAX_LIST_LIMIT;
use gesta::{
    AuditEntry, Error, EventStore, ExpectedRevision, Listed, Listing, NewEvent, Operation, Query,
    ReadOptions, RecordedEvent, Redacted, Subscription, TagsAdded, Target,
};

use super::Harness;
use super::helpers::*;

/// What the store must hold: the events, the audit trail (timestamps 0:
/// see [`strip_entry`]) and which events are redacted.
#[derive(Clone, Debug, Default)]
struct Model {
    log: Log,
    audit: Vec<AuditEntry>,
    redacted: BTreeSet<u64>,
}

impl Model {
    /// Applies `add_tags` as the contract says and records its audit
    /// entry; returns what the store must answer.
    fn add_tags(&mut self, target: &Target, tags: &[String]) -> TagsAdded {
        let mut positions = match target {
            Target::Positions(p) => p.clone(),
            Target::Query(q) => self.log.matching(q),
        };
        positions.sort_unstable();
        positions.dedup();
        let mut unique: Vec<String> = Vec::new();
        for t in tags {
            if !unique.contains(t) {
                unique.push(t.clone());
            }
        }
        let mut tagged = 0;
        for &p in &positions {
            let event = &mut self.log.events[(p - 1) as usize];
            let before = event.tags.len();
            for t in &unique {
                if !event.tags.contains(t) {
                    event.tags.push(t.clone());
                }
            }
            tagged += u64::from(event.tags.len() > before);
        }
        let result = added(positions.len() as u64, tagged);
        self.audit.push(AuditEntry {
            sequence: self.audit.len() as u64 + 1,
            timestamp_micros: 0,
            head: self.log.head(),
            operation: Operation::AddTags {
                tags: unique,
                target: target.clone(),
                result,
            },
        });
        result
    }

    /// Applies `redact` as the contract says — the targeted events not
    /// redacted yet lose their data and metadata — and records its audit
    /// entry; returns what the store must answer.
    fn redact(&mut self, target: &Target) -> Redacted {
        let mut positions = match target {
            Target::Positions(p) => p.clone(),
            Target::Query(q) => self.log.matching(q),
        };
        positions.sort_unstable();
        positions.dedup();
        let mut erased = 0;
        for &p in &positions {
            if self.redacted.insert(p) {
                let event = &mut self.log.events[(p - 1) as usize];
                event.data = Default::default();
                event.metadata = Default::default();
                erased += 1;
            }
        }
        let result = redacted(positions.len() as u64, erased);
        self.audit.push(AuditEntry {
            sequence: self.audit.len() as u64 + 1,
            timestamp_micros: 0,
            head: self.log.head(),
            operation: Operation::Redact {
                target: target.clone(),
                result,
            },
        });
        result
    }
}

fn added(targeted: u64, tagged: u64) -> TagsAdded {
    TagsAdded { targeted, tagged }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

pub(super) fn at(positions: &[u64]) -> Target {
    Target::Positions(positions.to_vec())
}

pub(super) fn matching(query: Query) -> Target {
    Target::Query(query)
}

/// `(position, commit time)` of every event.
fn stamps(events: &[RecordedEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .map(|e| (e.position, e.timestamp_micros))
        .collect()
}

/// Adds `tags` to `target`'s events in the store and in the model. The
/// store must answer what the model does, keep every position, commit
/// time and the head, and hold what the model holds afterwards, audit
/// trail included.
fn add_tags<S: EventStore>(s: &S, m: &mut Model, target: &Target, tags: &[&str]) -> TagsAdded {
    let tags = strings(tags);
    let what = format!("add_tags {target:?} {tags:?}");
    let before = read_raw(s, &Query::all(), ReadOptions::forwards());
    let got = ok(&what, s.add_tags(target, &tags));
    let want = m.add_tags(target, &tags);
    assert_eq!(got, want, "{what}: result");
    let after = read_raw(s, &Query::all(), ReadOptions::forwards());
    assert_eq!(
        stamps(&after),
        stamps(&before),
        "{what}: positions and commit times never move"
    );
    assert_contents(s, &m.log);
    check_audit(s, &m.audit);
    got
}

/// The tags of every event, oldest first.
fn all_tags<S: EventStore>(s: &S) -> Vec<Vec<String>> {
    read(s, &Query::all(), ReadOptions::forwards())
        .into_iter()
        .map(|e| e.tags)
        .collect()
}

/// `e` without its timestamp, which differs between stores.
pub(super) fn strip_entry(mut e: AuditEntry) -> AuditEntry {
    e.timestamp_micros = 0;
    e
}

pub(super) fn audit<S: EventStore>(s: &S, after: u64, limit: usize) -> Vec<AuditEntry> {
    ok(
        &format!("audit_log after {after} limit {limit}"),
        s.audit_log(after, limit),
    )
}

/// Checks the audit trail against `want` (timestamps aside): whole, their
/// timestamps never decreasing, and page by page from every `after` with
/// small limits. Returns the trail as the store gave it.
fn check_audit<S: EventStore>(s: &S, want: &[AuditEntry]) -> Vec<AuditEntry> {
    let all = audit(s, 0, MAX_LIST_LIMIT);
    assert!(
        all.windows(2)
            .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros),
        "audit timestamps never decrease: {all:?}"
    );
    let stripped: Vec<AuditEntry> = all.iter().cloned().map(strip_entry).collect();
    assert_eq!(stripped, want, "the audit trail");
    for after in 0..=all.len() as u64 + 1 {
        for limit in [1, 2, 3, MAX_LIST_LIMIT] {
            let page: Vec<AuditEntry> = all
                .iter()
                .filter(|e| e.sequence > after)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(
                audit(s, after, limit),
                page,
                "audit_log after {after} limit {limit}"
            );
        }
    }
    assert_eq!(audit(s, u64::MAX, MAX_LIST_LIMIT), [], "after u64::MAX");
    all
}

/// The tag listing the log implies: each tag with the number of events
/// carrying it, in byte order.
fn tag_counts(log: &Log) -> Vec<Listed> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &log.events {
        let mut names: Vec<&str> = e.tags.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            *counts.entry(name).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(name, count)| Listed::new(name, count))
        .collect()
}

fn list_tags<S: EventStore>(s: &S, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Listed> {
    ok(
        &format!("list_tags {prefix:?} after {after:?} limit {limit}"),
        s.list_tags(prefix, after, limit),
    )
}

fn stream_in_log(log: &Log, name: &str) -> Vec<RecordedEvent> {
    log.events
        .iter()
        .filter(|e| e.stream.as_deref() == Some(name))
        .cloned()
        .collect()
}

pub(super) fn by_id<S: EventStore>(s: &S, id: u128) -> Option<RecordedEvent> {
    by_id_raw(s, id).map(strip)
}

const WAIT: Duration = Duration::from_secs(20);

pub(super) fn subscribe<S: EventStore>(s: &S, query: &Query, after: u64) -> Subscription {
    ok(
        &format!("subscribe {query:?} after {after}"),
        s.subscribe(query, after),
    )
}

/// Receives until the subscription has looked at `upto`; the events
/// delivered, timestamps cleared.
pub(super) fn receive_until(sub: &mut Subscription, upto: u64) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while sub.checkpoint() < upto {
        assert!(
            Instant::now() < deadline,
            "subscription to {:?} stuck at {} waiting for {upto}",
            sub.query(),
            sub.checkpoint()
        );
        if let Some(batch) = ok("recv_timeout", sub.recv_timeout(Duration::from_millis(100))) {
            out.extend(batch.into_iter().map(strip));
        }
    }
    out
}

/// The subscription delivers nothing and stays at `head`.
fn assert_nothing_delivered(sub: &mut Subscription, head: u64) {
    let what = format!("subscription to {:?}", sub.query());
    let got = ok(&what, sub.recv_timeout(Duration::from_millis(100)));
    assert_eq!(got, None, "{what}: delivered something without an append");
    assert_eq!(sub.checkpoint(), head, "{what}: checkpoint");
}

/// Positions may come in any order and repeat (each counts once), a tag
/// repeated in the list counts once; the tags go after the event's own
/// tags, in the order given; a tag the event carries already stays where
/// it is, once; `targeted` counts distinct positions, `tagged` the events
/// that gained a tag. Nothing else about the events changes.
pub fn add_tags_by_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(
        add_tags(&s, &mut m, &at(&[6, 1, 6, 3]), &["n1", "n2", "n1"]),
        added(3, 3)
    );
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1", "n1", "n2"],
            vec!["t1", "t2"],
            vec!["t2", "n1", "n2"],
            vec![],
            vec!["t3"],
            vec!["t1", "t2", "t3", "n1", "n2"],
            vec!["t2", "t3"],
            vec!["t3", "t1"],
        ]
    );
    // In the order given, not sorted.
    assert_eq!(
        add_tags(&s, &mut m, &at(&[4]), &["z", "a", "m"]),
        added(1, 1)
    );
    // Carried already: kept in place, once.
    assert_eq!(
        add_tags(&s, &mut m, &at(&[8, 1]), &["t1", "b"]),
        added(2, 2)
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[5, 5, 5]), &["c"]), added(1, 1));
    // The head itself.
    assert_eq!(add_tags(&s, &mut m, &at(&[8]), &["n1"]), added(1, 1));
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1", "n1", "n2", "b"],
            vec!["t1", "t2"],
            vec!["t2", "n1", "n2"],
            vec!["z", "a", "m"],
            vec!["t3", "c"],
            vec!["t1", "t2", "t3", "n1", "n2"],
            vec!["t2", "t3"],
            vec!["t3", "t1", "b", "n1"],
        ]
    );
    assert_eq!(head(&s), 8);
}

/// A query target is resolved when the operation commits, against the
/// tags the events carry then (added ones included) and the events
/// appended since; events that carry every tag already count as targeted,
/// not as tagged; `Query::all()` targets every event.
pub fn add_tags_by_query<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    // t3: 5, 6, 7, 8; 6 and 8 carry t1.
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("t3")), &["t1"]),
        added(4, 2)
    );
    // t1 now: 1, 2, 5, 6, 7, 8.
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("t1")), &["q"]),
        added(6, 6)
    );
    append(&s, &mut m.log, vec![ev("E", &["t1"], "late")]);
    // A or E with t1: 1, 6 (carrying q) and 9.
    let q = Query::item(types(&["A", "E"]).tag("t1"));
    assert_eq!(add_tags(&s, &mut m, &matching(q), &["q"]), added(3, 1));
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::all()), &["all"]),
        added(9, 9)
    );
    // Only 3 and 4 lack q.
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::all()), &["q", "all"]),
        added(9, 2)
    );
    // Several items, OR-ed; D: 7, t2 and t3 both: 6, 7.
    let q = Query::event_type("D").or(tags(&["t2", "t3"]));
    assert_eq!(add_tags(&s, &mut m, &matching(q), &["d"]), added(2, 2));
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1", "q", "all"],
            vec!["t1", "t2", "q", "all"],
            vec!["t2", "all", "q"],
            vec!["all", "q"],
            vec!["t3", "t1", "q", "all"],
            vec!["t1", "t2", "t3", "q", "all", "d"],
            vec!["t2", "t3", "t1", "q", "all", "d"],
            vec!["t3", "t1", "q", "all"],
            vec!["t1", "q", "all"],
        ]
    );
    assert_eq!(head(&s), 9);
}

/// From the moment `add_tags` returns, queries find events by the added
/// tags: alone, with a type, with an original tag or another added one,
/// OR-ed, in both directions, from every start, with limits, and
/// `read_last`; an original tag added to more events finds them too.
pub fn queries_see_added_tags<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(add_tags(&s, &mut m, &at(&[2, 5, 7]), &["n"]), added(3, 3));
    assert_eq!(add_tags(&s, &mut m, &at(&[3, 4]), &["t1"]), added(2, 2));
    assert_eq!(add_tags(&s, &mut m, &at(&[4]), &["n"]), added(1, 1));
    let queries = |extra: &[u64]| -> Vec<(Query, Vec<u64>)> {
        let with = |p: &[u64]| [p, extra].concat();
        vec![
            (Query::tag("n"), with(&[2, 4, 5, 7])),
            (Query::item(types(&["B"]).tag("n")), vec![2, 5]),
            (Query::item(types(&["A"]).tag("n")), with(&[4])),
            (Query::item(tags(&["t1", "n"])), with(&[2, 4])),
            (Query::item(tags(&["t3", "n"])), vec![5, 7]),
            (Query::item(tags(&["t2", "t3", "n"])), vec![7]),
            (Query::tag("t1"), with(&[1, 2, 3, 4, 6, 8])),
            (Query::item(types(&["C"]).tag("t1")), vec![3, 8]),
            (Query::tag("n").or(types(&["C"])), with(&[2, 3, 4, 5, 7, 8])),
            (Query::item(types(&["D"]).tag("t1")), vec![]),
        ]
    };
    for (q, want) in queries(&[]) {
        check_query(&s, &m.log, &q, &want);
    }
    // An appended event with the tags mixes with the added ones.
    append(&s, &mut m.log, vec![ev("A", &["t1", "n"], "9")]);
    for (q, want) in queries(&[9]) {
        check_query(&s, &m.log, &q, &want);
    }
}

/// `read` and `read_each` (through the suite's read helper),
/// `read_stream`, `read_stream_last`, `event_by_id` and a subscription's
/// catch-up return the added tags.
pub fn reads_and_lookups_return_added_tags<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(
        add_tags(&s, &mut m, &at(&[1, 2, 4, 6]), &["n"]),
        added(4, 4)
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[4, 5]), &["m"]), added(2, 2));
    let lent = read_each(&s, &Query::tag("n"), ReadOptions::backwards());
    assert_eq!(
        lent.into_iter().map(|e| e.tags).collect::<Vec<_>>(),
        [
            vec!["t1", "t2", "t3", "n"],
            vec!["n", "m"],
            vec!["t1", "t2", "n"],
            vec!["t1", "n"],
        ],
        "read_each"
    );
    // Stream s1: 2, 4 and 7; s2: 5.
    let s1 = stream(&s, "s1", ReadOptions::forwards());
    assert_eq!(s1, stream_in_log(&m.log, "s1"));
    assert_eq!(
        s1.iter().map(|e| e.tags.clone()).collect::<Vec<_>>(),
        [vec!["t1", "t2", "n"], vec!["n", "m"], vec!["t2", "t3"]]
    );
    let mut back = s1.clone();
    back.reverse();
    assert_eq!(stream(&s, "s1", ReadOptions::backwards()), back);
    assert_eq!(stream(&s, "s1", ReadOptions::forwards().limit(2)), s1[..2]);
    assert_eq!(stream(&s, "s1", ReadOptions::forwards().start(0)), s1[1..]);
    assert_eq!(
        ok("read_stream_last", s.read_stream_last("s2")).map(strip),
        Some(m.log.get(5).clone())
    );
    assert_eq!(m.log.get(5).tags, ["t3", "m"]);
    for (id, position) in [(0xA1, 1), (0xA4, 4), (0xA5, 5), (0xA6, 6)] {
        assert_eq!(
            by_id(&s, id).as_ref(),
            Some(m.log.get(position)),
            "event_by_id {id:#x}"
        );
    }
    assert_eq!(by_id(&s, 0xA4).unwrap().tags, ["n", "m"]);
    for (q, after, want) in [
        (Query::all(), 0, (1..=8).collect::<Vec<u64>>()),
        (Query::tag("n"), 0, vec![1, 2, 4, 6]),
        (Query::tag("m"), 3, vec![4, 5]),
        (Query::item(types(&["B"]).tag("m")), 0, vec![5]),
    ] {
        let mut sub = subscribe(&s, &q, after);
        let got = receive_until(&mut sub, 8);
        let want: Vec<RecordedEvent> = want.iter().map(|&p| m.log.get(p).clone()).collect();
        assert_eq!(got, want, "catch-up of {q:?} after {after}");
        assert_eq!(ok("try_recv", sub.try_recv()), None, "{q:?}: nothing more");
    }
}

/// Subscriptions are not replayed: `add_tags` delivers nothing, neither
/// to a subscription that delivered the events already nor to one opened
/// at the head whose query the old events now match; the next append
/// matching them is delivered, once, at its position.
pub fn subscriptions_are_not_replayed<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let mut seen = subscribe(&s, &Query::all(), 0);
    assert_eq!(receive_until(&mut seen, 8), m.log.events, "catch-up");
    let mut new_tag = subscribe(&s, &Query::tag("n"), 8);
    let mut new_and_type = subscribe(&s, &Query::item(types(&["A"]).tag("n")), 8);
    let mut old_tag = subscribe(&s, &Query::tag("t1"), 8);
    let mut live = subscribe(&s, &Query::all(), 8);
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::all()), &["n"]),
        added(8, 8)
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[3, 4]), &["t1"]), added(2, 2));
    for sub in [
        &mut seen,
        &mut new_tag,
        &mut new_and_type,
        &mut old_tag,
        &mut live,
    ] {
        assert_nothing_delivered(sub, 8);
    }
    append(
        &s,
        &mut m.log,
        vec![ev("B", &[], "9"), ev("A", &["n", "t1"], "10")],
    );
    let ten = vec![m.log.get(10).clone()];
    assert_eq!(ten[0].tags, ["n", "t1"]);
    let both = m.log.events[8..].to_vec();
    assert_eq!(receive_until(&mut seen, 10), both, "the catch-up one");
    assert_eq!(receive_until(&mut live, 10), both, "the live one on all");
    assert_eq!(receive_until(&mut new_tag, 10), ten, "the live one on n");
    assert_eq!(receive_until(&mut new_and_type, 10), ten, "on A and n");
    assert_eq!(receive_until(&mut old_tag, 10), ten, "the live one on t1");
    for sub in [
        &mut seen,
        &mut new_tag,
        &mut new_and_type,
        &mut old_tag,
        &mut live,
    ] {
        assert_eq!(ok("try_recv", sub.try_recv()), None, "nothing more");
    }
}

/// The tag listing counts the added tags, an event once per tag (a tag
/// it carried already does not count again); types and streams are
/// unchanged; the same after an index flush and a reopen.
pub fn listings_count_added_tags<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let l = |n: &str, c: u64| Listed::new(n, c);
    assert_eq!(
        list_tags(&s, "", None, 100),
        [l("t1", 4), l("t2", 4), l("t3", 4)]
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[1, 2, 3]), &["n"]), added(3, 3));
    assert_eq!(add_tags(&s, &mut m, &at(&[3, 4, 1]), &["t1"]), added(3, 2));
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("t3")), &["n", "t3"]),
        added(4, 4)
    );
    let check = |s: &H::Store, n: u64, a: u64| {
        assert_eq!(
            list_tags(s, "", None, 100),
            [l("n", n), l("t1", 6), l("t2", 4), l("t3", 4)]
        );
        assert_eq!(list_tags(s, "n", None, 10), [l("n", n)]);
        assert_eq!(list_tags(s, "", Some("n"), 1), [l("t1", 6)]);
        assert_eq!(
            ok("list", s.list(Listing::Tags, "", Some("m"), 1)),
            [l("n", n)]
        );
        assert_eq!(
            ok("list_types", s.list_types("", None, 100)),
            [l("A", a), l("B", 2), l("C", 2), l("D", 1)]
        );
        assert_eq!(
            ok("list_streams", s.list_streams("", None, 100)),
            [l("s1", 3), l("s2", 1)]
        );
    };
    check(&s, 7, 3);
    h.flush_index(&s);
    check(&s, 7, 3);
    let s = h.reopen(s);
    check(&s, 7, 3);
    append(&s, &mut m.log, vec![ev("A", &["n"], "9")]);
    check(&s, 8, 4);
    assert_eq!(list_tags(&s, "", None, 100), tag_counts(&m.log));
}

/// A DCB condition sees the added tags on events after its `after`: it
/// fails naming the first such event, alone or combined with a type or
/// an original tag; with `after` at or beyond the tagged events it holds,
/// and tagging an event at or before `after` does not make it fail.
/// `add_tags` moves no position: the next append gets head + 1.
pub fn conditions_see_added_tags<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let n = || Query::tag("n");
    let new = |label: &str| vec![ev("New", &[], label)];
    let fails = |s: &H::Store, m: &Model, q: Query, after: Option<u64>, position: u64| {
        let what = format!("{q:?} after {after:?}");
        let e = err(&what, s.append_with(new("x"), fail_if(q, after)));
        assert_condition_failed(&what, e, position);
        assert_contents(s, &m.log);
    };
    assert_eq!(add_tags(&s, &mut m, &at(&[3, 6]), &["n"]), added(2, 2));
    for (after, position) in [
        (None, 3),
        (Some(0), 3),
        (Some(2), 3),
        (Some(3), 6),
        (Some(5), 6),
    ] {
        fails(&s, &m, n(), after, position);
    }
    fails(&s, &m, Query::item(types(&["C"]).tag("n")), None, 3);
    fails(&s, &m, Query::item(tags(&["t1", "n"])), None, 6);
    fails(&s, &m, Query::event_type("Z").or(tags(&["n"])), Some(4), 6);
    let a = append_with(&s, &mut m.log, new("9"), fail_if(n(), Some(6)));
    assert_eq!((a.first, a.last), (9, 9), "the append after add_tags");
    // Tagging at or before `after` leaves the condition holding.
    assert_eq!(add_tags(&s, &mut m, &at(&[2, 9]), &["n"]), added(2, 2));
    fails(&s, &m, n(), Some(1), 2);
    fails(&s, &m, n(), Some(8), 9);
    let a = append_with(&s, &mut m.log, new("10"), fail_if(n(), Some(9)));
    assert_eq!((a.first, a.last), (10, 10));
    append_with(
        &s,
        &mut m.log,
        new("11"),
        fail_if(Query::tag("never"), None),
    );
    assert_eq!(head(&s), 11);
}

/// Added tags and the audit trail are durable: on events in on-disk index
/// runs and in the in-memory index alike, through index flushes and
/// reopens in either order; appends and operations after a reopen carry
/// on at the head and the next audit sequence.
pub fn added_tags_survive_flush_and_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    append(
        &s,
        &mut m.log,
        vec![ev("A", &["t1"], "1").stream("s").id(1), ev("B", &[], "2")],
    );
    h.flush_index(&s);
    append(
        &s,
        &mut m.log,
        vec![
            ev("C", &["t2"], "3").id(3),
            ev("A", &["t1"], "4").stream("s"),
        ],
    );
    // Events 1 and 2 are in an index run, 3 and 4 in the memtable.
    assert_eq!(
        add_tags(&s, &mut m, &at(&[4, 2, 3, 1]), &["n"]),
        added(4, 4)
    );
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("t1")), &["m"]),
        added(2, 2)
    );
    let stage1 = vec![
        (Query::tag("n"), vec![1, 2, 3, 4]),
        (Query::tag("m"), vec![1, 4]),
        (Query::item(types(&["A"]).tag("n")), vec![1, 4]),
        (Query::item(types(&["B"]).tag("n")), vec![2]),
        (Query::item(tags(&["t2", "n"])), vec![3]),
        (Query::item(tags(&["t1", "m"])), vec![1, 4]),
        (Query::tag("k"), vec![]),
    ];
    let check = |s: &H::Store, m: &Model, queries: &[(Query, Vec<u64>)]| {
        assert_contents(s, &m.log);
        for (q, want) in queries {
            check_query(s, &m.log, q, want);
        }
        assert_eq!(list_tags(s, "", None, 100), tag_counts(&m.log));
        for id in [1, 3] {
            let e = m.log.events.iter().find(|e| e.id == Some(id));
            assert_eq!(by_id(s, id).as_ref(), e, "event_by_id {id}");
        }
        assert_eq!(
            stream(s, "s", ReadOptions::forwards()),
            stream_in_log(&m.log, "s")
        );
        check_audit(s, &m.audit)
    };
    let trail = check(&s, &m, &stage1);
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1", "n", "m"],
            vec!["n"],
            vec!["t2", "n"],
            vec!["t1", "n", "m"]
        ]
    );
    h.flush_index(&s);
    assert_eq!(check(&s, &m, &stage1), trail, "after flush_index");
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &stage1), trail, "after reopen");

    // Tags added after the reopen, on events in runs and in the memtable.
    append(&s, &mut m.log, vec![ev("D", &["t1"], "5")]);
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("t1")), &["m"]),
        added(3, 1)
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[2, 5]), &["k"]), added(2, 2));
    let stage2 = vec![
        (Query::tag("n"), vec![1, 2, 3, 4]),
        (Query::tag("m"), vec![1, 4, 5]),
        (Query::tag("k"), vec![2, 5]),
        (Query::item(types(&["A"]).tag("n")), vec![1, 4]),
        (Query::item(types(&["D"]).tag("k")), vec![5]),
        (Query::item(tags(&["t1", "m"])), vec![1, 4, 5]),
        (Query::item(tags(&["n", "k"])), vec![2]),
    ];
    let trail = check(&s, &m, &stage2);
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &stage2), trail, "reopen without a flush");

    h.flush_index(&s);
    append(&s, &mut m.log, vec![ev("E", &["n"], "6")]);
    assert_eq!(add_tags(&s, &mut m, &at(&[6, 3]), &["k"]), added(2, 2));
    let stage3 = vec![
        (Query::tag("n"), vec![1, 2, 3, 4, 6]),
        (Query::tag("k"), vec![2, 3, 5, 6]),
        (Query::item(tags(&["n", "k"])), vec![2, 3, 6]),
        (Query::item(types(&["C", "E"]).tag("k")), vec![3, 6]),
        (Query::tag("m"), vec![1, 4, 5]),
    ];
    let trail = check(&s, &m, &stage3);
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &stage3), trail, "reopen");
    h.flush_index(&s);
    assert_eq!(check(&s, &m, &stage3), trail, "flush after reopen");
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1", "n", "m"],
            vec!["n", "k"],
            vec!["t2", "n", "k"],
            vec!["t1", "n", "m"],
            vec!["t1", "m", "k"],
            vec!["n", "k"],
        ]
    );
    let a = append(&s, &mut m.log, vec![ev("F", &[], "7")]);
    assert_eq!((a.first, a.last), (7, 7));
    assert_eq!(add_tags(&s, &mut m, &at(&[7]), &["n"]), added(1, 1));
    let trail = check_audit(&s, &m.audit);
    assert_eq!(trail.len(), 6);
    let s = h.reopen(s);
    assert_eq!(check_audit(&s, &m.audit), trail);
    assert_contents(&s, &m.log);
}

/// Each operation is recorded: sequence 1, 2, …, the head when it
/// committed, the tags each once in the order given, the target exactly
/// as given (positions unsorted and repeated, the query as it was), and
/// the result — also an operation that changed nothing (on an empty
/// store, with tags carried already, with a query matching nothing).
/// Appends are not recorded. Pages follow `after` and `limit`;
/// timestamps never decrease.
pub fn audit_log_records_each_operation<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    assert_eq!(audit(&s, 0, MAX_LIST_LIMIT), []);
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::all()), &["e"]),
        added(0, 0)
    );
    fixture(&s, &mut m.log);
    check_audit(&s, &m.audit);
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(
        add_tags(&s, &mut m, &at(&[3, 1, 3]), &["a", "b", "a"]),
        added(2, 2)
    );
    append(&s, &mut m.log, vec![ev("X", &[], "9")]);
    let q = Query::tag("a").or(types(&["X"]));
    assert_eq!(
        add_tags(&s, &mut m, &matching(q.clone()), &["c"]),
        added(3, 3)
    );
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(add_tags(&s, &mut m, &at(&[1]), &["a"]), added(1, 0));
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("zzz")), &["d"]),
        added(0, 0)
    );
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::all()), &["e", "c"]),
        added(9, 9)
    );
    let entry = |sequence, head, tags: &[&str], target, result| AuditEntry {
        sequence,
        timestamp_micros: 0,
        head,
        operation: Operation::AddTags {
            tags: strings(tags),
            target,
            result,
        },
    };
    let want = vec![
        entry(1, 0, &["e"], matching(Query::all()), added(0, 0)),
        entry(2, 8, &["a", "b"], at(&[3, 1, 3]), added(2, 2)),
        entry(3, 9, &["c"], matching(q), added(3, 3)),
        entry(4, 9, &["a"], at(&[1]), added(1, 0)),
        entry(5, 9, &["d"], matching(Query::tag("zzz")), added(0, 0)),
        entry(6, 9, &["e", "c"], matching(Query::all()), added(9, 9)),
    ];
    assert_eq!(m.audit, want, "the test's own expectation");
    check_audit(&s, &want);
    let page =
        |after, limit| -> Vec<u64> { audit(&s, after, limit).iter().map(|e| e.sequence).collect() };
    assert_eq!(page(0, 1), [1]);
    assert_eq!(page(1, 2), [2, 3]);
    assert_eq!(page(3, 10), [4, 5, 6]);
    assert_eq!(page(5, MAX_LIST_LIMIT), [6]);
    assert_eq!(page(6, 10), [] as [u64; 0]);
    assert_eq!(page(100, 10), [] as [u64; 0]);
    assert_eq!(head(&s), 9);
}

/// Bad input is refused with `InvalidInput` and changes nothing — no
/// event, not the head, not the audit trail: no tags, an empty or
/// overlong tag, more tags than an event may carry, position 0, a
/// position beyond the head, no position, an invalid query, and an
/// operation that would give an event more than `MAX_TAGS` tags (whatever
/// it would do to other events); an audit page of 0 or too many entries.
/// The limits themselves are accepted, and the store stays usable.
pub fn add_tags_bad_input_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let crowded: Vec<String> = (0..MAX_TAGS - 2).map(|i| format!("m{i}")).collect();
    append(&s, &mut m.log, vec![NewEvent::new("M", "9").tags(crowded)]);
    assert_eq!(add_tags(&s, &mut m, &at(&[1]), &["ok"]), added(1, 1));
    let long = "t".repeat(MAX_NAME_LEN + 1);
    let wide = "é".repeat(MAX_NAME_LEN / 2 + 1);
    let too_many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("x{i}")).collect();
    let x = strings(&["x"]);
    let three = strings(&["y1", "y2", "y3"]);
    let not_committed = |p: u64| {
        Some(format!(
            "position {p} is not a committed position (the head is 9)"
        ))
    };
    let crowded_at_9 = Some(format!(
        "the event at position 9 would carry {} tags, the limit is {MAX_TAGS}",
        MAX_TAGS + 1
    ));
    let cases: Vec<(&str, Target, Vec<String>, Option<String>)> = vec![
        ("no tags", at(&[1]), vec![], None),
        ("an empty tag", at(&[1]), strings(&["fine", ""]), None),
        ("an overlong tag", at(&[1]), vec![long.clone()], None),
        ("a tag overlong in bytes", at(&[1]), vec![wide], None),
        ("more tags than an event carries", at(&[4]), too_many, None),
        ("position 0", at(&[0]), x.clone(), not_committed(0)),
        (
            "position 0 among others",
            at(&[2, 0, 1]),
            x.clone(),
            not_committed(0),
        ),
        ("beyond the head", at(&[10]), x.clone(), not_committed(10)),
        (
            "beyond among others",
            at(&[3, 10, 1]),
            x.clone(),
            not_committed(10),
        ),
        (
            "u64::MAX",
            at(&[1, u64::MAX]),
            x.clone(),
            not_committed(u64::MAX),
        ),
        ("no position", at(&[]), x.clone(), None),
        ("no tags, no position", at(&[]), vec![], None),
        (
            "an invalid query",
            matching(Query::tag("")),
            x.clone(),
            None,
        ),
        (
            "an overlong query tag",
            matching(Query::tag(long.clone())),
            x.clone(),
            None,
        ),
        (
            "over MAX_TAGS by positions",
            at(&[1, 9]),
            three.clone(),
            crowded_at_9.clone(),
        ),
        (
            "over MAX_TAGS by query",
            matching(Query::all()),
            three.clone(),
            crowded_at_9.clone(),
        ),
    ];
    let rejected = |s: &H::Store,
                    m: &Model,
                    what: &str,
                    target: &Target,
                    tags: &[String],
                    reason: Option<String>| {
        let what = format!("{what}: add_tags {target:?}, {} tags", tags.len());
        match (err(&what, s.add_tags(target, tags)), reason) {
            (Error::InvalidInput { reason }, Some(want)) => {
                assert_eq!(reason, want, "{what}: reason")
            }
            (e, _) => assert_invalid(&what, e),
        }
        assert_contents(s, &m.log);
        check_audit(s, &m.audit);
    };
    for (what, target, tags, reason) in cases {
        rejected(&s, &m, what, &target, &tags, reason);
    }
    for (after, limit) in [(0, 0), (3, 0), (0, MAX_LIST_LIMIT + 1), (0, usize::MAX)] {
        let what = format!("audit_log after {after} limit {limit}");
        assert_invalid(&what, err(&what, s.audit_log(after, limit)));
    }
    check_audit(&s, &m.audit);
    // The limits: an event may reach MAX_TAGS (a repeated tag counting
    // once, a carried one not at all), a tag may be MAX_NAME_LEN bytes, an
    // operation may add MAX_TAGS tags.
    assert_eq!(
        add_tags(&s, &mut m, &at(&[9, 1]), &["y1", "y2", "y1"]),
        added(2, 2)
    );
    assert_eq!(m.log.get(9).tags.len(), MAX_TAGS);
    assert_eq!(add_tags(&s, &mut m, &at(&[9]), &["m0", "y2"]), added(1, 0));
    let one_more = strings(&["y3"]);
    rejected(&s, &m, "the 256th tag", &at(&[9]), &one_more, crowded_at_9);
    let edge = "t".repeat(MAX_NAME_LEN);
    assert_eq!(
        add_tags(&s, &mut m, &at(&[2]), &[edge.as_str()]),
        added(1, 1)
    );
    let most: Vec<String> = (0..MAX_TAGS).map(|i| format!("z{i}")).collect();
    let most: Vec<&str> = most.iter().map(String::as_str).collect();
    assert_eq!(add_tags(&s, &mut m, &at(&[4]), &most), added(1, 1));
    assert_eq!(m.log.get(4).tags, most);
    assert_eq!(head(&s), 9);
    assert_eq!(m.audit.len(), 5);
}

/// Adding the same tags again changes nothing — no tag twice, `tagged`
/// 0, by positions or by query — and is recorded all the same.
pub fn second_add_of_the_same_tags_is_recorded<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(add_tags(&s, &mut m, &at(&[1, 2]), &["n", "m"]), added(2, 2));
    let tagged = all_tags(&s);
    assert_eq!(add_tags(&s, &mut m, &at(&[2, 1]), &["n", "m"]), added(2, 0));
    assert_eq!(
        add_tags(&s, &mut m, &matching(Query::tag("n")), &["m", "n"]),
        added(2, 0)
    );
    assert_eq!(all_tags(&s), tagged);
    assert_eq!(
        tagged[..2],
        [vec!["t1", "n", "m"], vec!["t1", "t2", "n", "m"]]
    );
    let results: Vec<(u64, TagsAdded)> = check_audit(&s, &m.audit)
        .into_iter()
        .map(|e| match e.operation {
            Operation::AddTags { result, .. } => (e.sequence, result),
            other => panic!("not an add_tags entry: {other:?}"),
        })
        .collect();
    assert_eq!(
        results,
        [(1, added(2, 2)), (2, added(2, 0)), (3, added(2, 0))]
    );
    let s = h.reopen(s);
    assert_contents(&s, &m.log);
    check_audit(&s, &m.audit);
    assert_eq!(add_tags(&s, &mut m, &at(&[1]), &["n"]), added(1, 0));
    assert_eq!(head(&s), 8);
}

// ---- Redaction ----

fn redacted(targeted: u64, redacted: u64) -> Redacted {
    Redacted { targeted, redacted }
}

/// Redacts `target`'s events in the store and in the model. The store
/// must answer what the model does, keep every position, commit time and
/// the head, and hold what the model holds afterwards (every field of
/// every event, through `read` and `read_each`), audit trail included.
fn redact<S: EventStore>(s: &S, m: &mut Model, target: &Target) -> Redacted {
    let what = format!("redact {target:?}");
    let before = read_raw(s, &Query::all(), ReadOptions::forwards());
    let got = ok(&what, s.redact(target));
    let want = m.redact(target);
    assert_eq!(got, want, "{what}: result");
    let after = read_raw(s, &Query::all(), ReadOptions::forwards());
    assert_eq!(
        stamps(&after),
        stamps(&before),
        "{what}: positions and commit times never move"
    );
    assert_contents(s, &m.log);
    check_audit(s, &m.audit);
    got
}

/// Every event's data and metadata, oldest first.
fn payloads<S: EventStore>(s: &S) -> Vec<(Vec<u8>, Vec<u8>)> {
    read(s, &Query::all(), ReadOptions::forwards())
        .into_iter()
        .map(|e| (e.data.to_vec(), e.metadata.to_vec()))
        .collect()
}

fn payload(data: &str, metadata: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (data.as_bytes().to_vec(), metadata.to_vec())
}

/// What no redaction may change: every listing, every stream's revision
/// and the position at each commit time.
fn shape<S: EventStore>(s: &S, log: &Log) -> (Vec<Listed>, Vec<Listed>, Vec<Listed>, Vec<u64>) {
    let at: Vec<u64> = read_raw(s, &Query::all(), ReadOptions::forwards())
        .iter()
        .map(|e| ok("position_at", s.position_at(e.timestamp_micros)))
        .collect();
    let revisions: Vec<u64> = log
        .streams()
        .iter()
        .map(|n| revision(s, n).unwrap_or(u64::MAX))
        .collect();
    (
        list_tags(s, "", None, 100),
        ok("list_types", s.list_types("", None, 100)),
        ok("list_streams", s.list_streams("", None, 100)),
        [at, revisions].concat(),
    )
}

/// Positions may come in any order and repeat (each counts once);
/// `targeted` counts distinct positions, `redacted` the events not
/// redacted before; the first event, the head, and an event with empty
/// data but metadata are erased like any other. Nothing else changes.
pub fn redact_by_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(redact(&s, &mut m, &at(&[6, 1, 6, 3])), redacted(3, 3));
    assert_eq!(
        payloads(&s),
        [
            payload("", b""),
            payload("e2", b"m2"),
            payload("", b""),
            payload("e4", b""),
            payload("e5", b""),
            payload("", b""),
            payload("e7", b""),
            payload("", &[0, 255, 7]),
        ]
    );
    // The head, whose data is empty already.
    assert_eq!(redact(&s, &mut m, &at(&[8])), redacted(1, 1));
    assert_eq!(redact(&s, &mut m, &at(&[2, 8, 2, 7])), redacted(3, 2));
    assert_eq!(
        payloads(&s),
        [
            payload("", b""),
            payload("", b""),
            payload("", b""),
            payload("e4", b""),
            payload("e5", b""),
            payload("", b""),
            payload("", b""),
            payload("", b""),
        ]
    );
    assert_eq!(
        all_tags(&s),
        [
            vec!["t1"],
            vec!["t1", "t2"],
            vec!["t2"],
            vec![],
            vec!["t3"],
            vec!["t1", "t2", "t3"],
            vec!["t2", "t3"],
            vec!["t3", "t1"],
        ],
        "tags stay"
    );
    assert_eq!(head(&s), 8);
}

/// A query target is resolved when the operation commits: against the
/// tags the events carry then (added ones included) and the events
/// appended since; events redacted before count as targeted, not as
/// redacted; `Query::all()` targets every event, a query matching
/// nothing none.
pub fn redact_by_query<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    // t3: 5, 6, 7, 8.
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t3"))),
        redacted(4, 4)
    );
    // t1: 1, 2, 6, 8; 6 and 8 are redacted.
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t1"))),
        redacted(4, 2)
    );
    // By an added tag.
    assert_eq!(add_tags(&s, &mut m, &at(&[3]), &["n"]), added(1, 1));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("n"))),
        redacted(1, 1)
    );
    append(
        &s,
        &mut m.log,
        vec![ev("E", &["t1"], "late").metadata("ml")],
    );
    assert_eq!(payloads(&s)[8], payload("late", b"ml"));
    // t1 again: 1, 2, 6, 8 and the new 9.
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t1"))),
        redacted(5, 1)
    );
    // Several items, OR-ed: A (1, 4, 6) or t2 (2, 3, 6, 7); 4 is new.
    let q = Query::event_type("A").or(tags(&["t2"]));
    assert_eq!(redact(&s, &mut m, &matching(q)), redacted(6, 1));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("zzz"))),
        redacted(0, 0)
    );
    assert_eq!(redact(&s, &mut m, &matching(Query::all())), redacted(9, 0));
    assert!(
        payloads(&s)
            .iter()
            .all(|(d, md)| d.is_empty() && md.is_empty()),
        "every event is erased"
    );
    assert_eq!(head(&s), 9);
}

/// Every read returns a redacted event with empty data and metadata and
/// every other field as it was: `read` by every query shape in both
/// directions from every start with limits, `read_each`, `read_last`,
/// `read_stream` (both directions, limits), `read_stream_last`,
/// `event_by_id` and a subscription's catch-up. A subscription live at
/// the head is not fed by the redaction; the next append reaches it with
/// its data.
pub fn reads_and_lookups_return_redacted_events<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let mut live = subscribe(&s, &Query::all(), 8);
    assert_eq!(redact(&s, &mut m, &at(&[1, 2, 4, 5, 8])), redacted(5, 5));
    assert_nothing_delivered(&mut live, 8);
    check_fixture_queries(&s, &m.log);
    let lent = read_each(&s, &Query::tag("t1"), ReadOptions::backwards());
    let want: Vec<RecordedEvent> = [8, 6, 2, 1]
        .iter()
        .map(|&p| m.log.get(p))
        .cloned()
        .collect();
    assert_eq!(
        lent.into_iter().map(strip).collect::<Vec<_>>(),
        want,
        "read_each"
    );
    assert_eq!(
        want.iter()
            .map(|e| (e.position, e.data.len(), e.metadata.len()))
            .collect::<Vec<_>>(),
        [(8, 0, 0), (6, 2, 0), (2, 0, 0), (1, 0, 0)]
    );
    // Stream s1: 2, 4 and 7; s2: 5.
    let s1 = stream(&s, "s1", ReadOptions::forwards());
    assert_eq!(s1, stream_in_log(&m.log, "s1"));
    assert_eq!(
        s1.iter()
            .map(|e| (e.position, e.revision, e.data.to_vec()))
            .collect::<Vec<_>>(),
        [
            (2, Some(0), vec![]),
            (4, Some(1), vec![]),
            (7, Some(2), b"e7".to_vec())
        ]
    );
    let mut back = s1.clone();
    back.reverse();
    assert_eq!(stream(&s, "s1", ReadOptions::backwards()), back);
    assert_eq!(stream(&s, "s1", ReadOptions::forwards().limit(2)), s1[..2]);
    assert_eq!(stream(&s, "s1", ReadOptions::forwards().start(0)), s1[1..]);
    let last = ok("read_stream_last", s.read_stream_last("s2")).map(strip);
    assert_eq!(last.as_ref(), Some(m.log.get(5)));
    assert_eq!(last.map(|e| e.data.len()), Some(0));
    for (id, position) in [(0xA1, 1), (0xA4, 4), (0xA5, 5), (0xA6, 6)] {
        assert_eq!(
            by_id(&s, id).as_ref(),
            Some(m.log.get(position)),
            "event_by_id {id:#x}"
        );
    }
    let e1 = by_id(&s, 0xA1).unwrap();
    assert_eq!(
        (e1.event_type.as_str(), e1.tags.clone(), e1.data.len()),
        ("A", vec!["t1".to_owned()], 0)
    );
    assert_eq!(by_id(&s, 0xA6).unwrap().data, "e6");
    for (q, after, want) in [
        (Query::all(), 0, (1..=8).collect::<Vec<u64>>()),
        (Query::tag("t1"), 1, vec![2, 6, 8]),
        (Query::item(types(&["B"])), 0, vec![2, 5]),
    ] {
        let mut sub = subscribe(&s, &q, after);
        let got = receive_until(&mut sub, 8);
        let want: Vec<RecordedEvent> = want.iter().map(|&p| m.log.get(p).clone()).collect();
        assert_eq!(got, want, "catch-up of {q:?} after {after}");
        assert_eq!(ok("try_recv", sub.try_recv()), None, "{q:?}: nothing more");
    }
    append(&s, &mut m.log, vec![ev("B", &["t1"], "9").metadata("m9")]);
    let nine = vec![m.log.get(9).clone()];
    assert_eq!(
        (nine[0].data.to_vec(), nine[0].metadata.to_vec()),
        payload("9", b"m9")
    );
    assert_eq!(receive_until(&mut live, 9), nine, "the live one");
    assert_eq!(ok("try_recv", live.try_recv()), None, "nothing more");
}

/// The history keeps its shape: after everything is redacted every query
/// matches what it did, listings, stream revisions and the position at
/// each commit time are unchanged, a condition fails at the same
/// position, an expected revision is checked against the same revision,
/// and the next append gets head + 1.
pub fn redaction_keeps_the_shape_of_the_history<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    let before = shape(&s, &m.log);
    assert_eq!(redact(&s, &mut m, &matching(Query::all())), redacted(8, 8));
    assert_eq!(shape(&s, &m.log), before);
    check_fixture_queries(&s, &m.log);
    let new = |label: &str| vec![ev("New", &[], label)];
    for (q, after, position) in [
        (Query::tag("t3"), Some(6), 7),
        (Query::event_type("D"), None, 7),
        (Query::item(tags(&["t1", "t2"])), Some(2), 6),
    ] {
        let what = format!("{q:?} after {after:?}");
        let e = err(&what, s.append_with(new("x"), fail_if(q, after)));
        assert_condition_failed(&what, e, position);
    }
    let what = "expected s2 at 5";
    let e = err(
        what,
        s.append_with(
            vec![sev("s2", "x")],
            expect("s2", ExpectedRevision::Exact(5)),
        ),
    );
    assert_wrong_revision(what, e, "s2", ExpectedRevision::Exact(5), Some(0));
    assert_contents(&s, &m.log);
    let a = append_with(&s, &mut m.log, new("9"), fail_if(Query::tag("t1"), Some(8)));
    assert_eq!((a.first, a.last), (9, 9));
    let a = append_with(
        &s,
        &mut m.log,
        vec![sev("s1", "10")],
        expect("s1", ExpectedRevision::Exact(2)),
    );
    assert_eq!((a.first, a.last), (10, 10));
    assert_eq!(revision(&s, "s1"), Some(3));
    assert_eq!(payloads(&s)[9], payload("10", b""));
    assert_contents(&s, &m.log);
}

/// Redacting an event redacted already changes nothing and counts it as
/// targeted, not redacted — by positions or by query — and is recorded
/// all the same. What counts is whether it was redacted, not whether its
/// data and metadata are empty: an event appended with both empty counts
/// as redacted the first time.
pub fn second_redaction_counts_none<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    append(&s, &mut m.log, vec![ev("E", &["t9"], "")]);
    assert_eq!(payloads(&s)[8], payload("", b""));
    assert_eq!(redact(&s, &mut m, &at(&[9])), redacted(1, 1));
    assert_eq!(redact(&s, &mut m, &at(&[9])), redacted(1, 0));
    assert_eq!(redact(&s, &mut m, &at(&[1, 2])), redacted(2, 2));
    assert_eq!(redact(&s, &mut m, &at(&[2, 1, 2])), redacted(2, 0));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t1"))),
        redacted(4, 2)
    );
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t1"))),
        redacted(4, 0)
    );
    let results: Vec<(u64, Redacted)> = check_audit(&s, &m.audit)
        .into_iter()
        .map(|e| match e.operation {
            Operation::Redact { result, .. } => (e.sequence, result),
            other => panic!("not a redact entry: {other:?}"),
        })
        .collect();
    assert_eq!(
        results,
        [
            (1, redacted(1, 1)),
            (2, redacted(1, 0)),
            (3, redacted(2, 2)),
            (4, redacted(2, 0)),
            (5, redacted(4, 2)),
            (6, redacted(4, 0)),
        ]
    );
    assert_eq!(payloads(&s)[2], payload("e3", b""), "others untouched");
    assert_eq!(head(&s), 9);
}

/// A redaction deletes, of every key, the snapshots that may hold state
/// folded from the erased data: those at or after the erased event's
/// position, and, since a snapshot's number may be a stream revision,
/// those at or after its revision; the others stay. On the engine when
/// `compact` erases the bytes; on the other stores in the redaction.
pub fn redaction_deletes_the_snapshots_that_may_hold_the_data<H: Harness>(h: &mut H) {
    let s = h.create();
    for i in 1..=5 {
        s.append(vec![NewEvent::new("Filler", format!("f{i}"))])
            .expect("append");
    }
    for data in ["opened", "named", "secret"] {
        s.append(vec![NewEvent::new("Changed", data).stream("acct")])
            .expect("append");
    }
    // Positions 6, 7, 8 hold the stream's revisions 0, 1, 2.
    for (key, at) in [
        ("view", 3),
        ("view", 5),
        ("view", 8),
        ("acct", 1),
        ("acct", 2),
    ] {
        s.save_snapshot(key, at, format!("{key} at {at}").as_bytes())
            .expect("save_snapshot");
    }
    let lists = |s: &H::Store| {
        let list = |key| s.list_snapshots(key).expect("list_snapshots");
        (list("view"), list("acct"))
    };
    // An event in no stream: by its position alone.
    s.redact(&Target::Positions(vec![4])).expect("redact");
    h.compact(&s);
    assert_eq!(lists(&s), (vec![3], vec![1, 2]), "{}", h.name());
    // The stream's revision 2 (position 8): from revision 2.
    s.redact(&Target::Positions(vec![8])).expect("redact");
    h.compact(&s);
    assert_eq!(lists(&s), (vec![], vec![1]), "{}", h.name());
    // A redaction that erases nothing deletes nothing.
    s.redact(&Target::Positions(vec![8])).expect("redact");
    h.compact(&s);
    assert_eq!(lists(&s), (vec![], vec![1]), "{}", h.name());
}

/// Redactions and their audit entries are durable: on events in on-disk
/// index runs and in the in-memory index alike, through index flushes and
/// reopens in either order; after a reopen the events read erased,
/// redacting them again counts none, and appends and operations carry on
/// at the head and the next audit sequence.
pub fn redacted_events_survive_flush_and_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    append(
        &s,
        &mut m.log,
        vec![
            ev("A", &["t1"], "1").stream("s").id(1).metadata("m1"),
            ev("B", &[], "2"),
        ],
    );
    h.flush_index(&s);
    append(
        &s,
        &mut m.log,
        vec![
            ev("C", &["t2"], "3").id(3).metadata("m3"),
            ev("A", &["t1"], "4").stream("s"),
        ],
    );
    // Event 1 is in an index run, 3 in the memtable.
    assert_eq!(redact(&s, &mut m, &at(&[3, 1])), redacted(2, 2));
    let check = |s: &H::Store, m: &Model, t1: &[u64]| {
        assert_contents(s, &m.log);
        for id in [1, 3] {
            let e = m.log.events.iter().find(|e| e.id == Some(id));
            assert_eq!(by_id(s, id).as_ref(), e, "event_by_id {id}");
        }
        assert_eq!(
            stream(s, "s", ReadOptions::forwards()),
            stream_in_log(&m.log, "s")
        );
        check_query(s, &m.log, &Query::tag("t1"), t1);
        check_audit(s, &m.audit)
    };
    let trail = check(&s, &m, &[1, 4]);
    h.flush_index(&s);
    assert_eq!(check(&s, &m, &[1, 4]), trail, "after flush_index");
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &[1, 4]), trail, "after reopen");
    assert_eq!(
        payloads(&s),
        [
            payload("", b""),
            payload("2", b""),
            payload("", b""),
            payload("4", b"")
        ]
    );
    assert_eq!(redact(&s, &mut m, &at(&[1, 3])), redacted(2, 0));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("t1"))),
        redacted(2, 1)
    );
    let trail = check(&s, &m, &[1, 4]);
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &[1, 4]), trail, "reopen without a flush");
    h.flush_index(&s);
    let a = append(&s, &mut m.log, vec![ev("D", &["t1"], "5").metadata("m5")]);
    assert_eq!((a.first, a.last), (5, 5));
    assert_eq!(payloads(&s)[4], payload("5", b"m5"));
    assert_eq!(redact(&s, &mut m, &matching(Query::all())), redacted(5, 2));
    let trail = check(&s, &m, &[1, 4, 5]);
    assert_eq!(trail.len(), 4);
    let s = h.reopen(s);
    assert_eq!(check(&s, &m, &[1, 4, 5]), trail, "reopen");
    h.flush_index(&s);
    assert_eq!(check(&s, &m, &[1, 4, 5]), trail, "flush after reopen");
    assert_eq!(redact(&s, &mut m, &matching(Query::all())), redacted(5, 0));
}

/// Added tags stay on a redacted event — added before or after the
/// redaction — and find it, and a redaction can target an added tag;
/// redaction removes no tag from the index or the listings.
pub fn added_tags_stay_on_redacted_events<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    fixture(&s, &mut m.log);
    assert_eq!(add_tags(&s, &mut m, &at(&[1, 4]), &["n"]), added(2, 2));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("n"))),
        redacted(2, 2)
    );
    assert_eq!(add_tags(&s, &mut m, &at(&[4, 5]), &["m"]), added(2, 2));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("m"))),
        redacted(2, 1)
    );
    let tagged: Vec<(Vec<String>, usize)> = read(&s, &Query::all(), ReadOptions::forwards())
        .into_iter()
        .map(|e| (e.tags, e.data.len()))
        .collect();
    let t = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>();
    assert_eq!(
        tagged,
        [
            (t(&["t1", "n"]), 0),
            (t(&["t1", "t2"]), 2),
            (t(&["t2"]), 2),
            (t(&["n", "m"]), 0),
            (t(&["t3", "m"]), 0),
            (t(&["t1", "t2", "t3"]), 2),
            (t(&["t2", "t3"]), 2),
            (t(&["t3", "t1"]), 0),
        ]
    );
    check_query(&s, &m.log, &Query::tag("n"), &[1, 4]);
    check_query(&s, &m.log, &Query::item(tags(&["n", "m"])), &[4]);
    check_query(&s, &m.log, &Query::item(types(&["B"]).tag("m")), &[5]);
    assert_eq!(list_tags(&s, "", None, 100), tag_counts(&m.log));
    assert_eq!(
        list_tags(&s, "", Some("l"), 2),
        [Listed::new("m", 2), Listed::new("n", 2)]
    );
    h.flush_index(&s);
    let s = h.reopen(s);
    assert_contents(&s, &m.log);
    check_query(&s, &m.log, &Query::tag("m"), &[4, 5]);
}

/// Each redaction is recorded, among the other operations: sequence 1,
/// 2, …, the head when it committed, the target exactly as given
/// (positions unsorted and repeated, the query as it was), and the result
/// — also one that erased nothing (on an empty store, a query matching
/// nothing, events redacted already). Pages follow `after` and `limit`.
pub fn audit_log_records_redactions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    assert_eq!(redact(&s, &mut m, &matching(Query::all())), redacted(0, 0));
    fixture(&s, &mut m.log);
    assert_eq!(redact(&s, &mut m, &at(&[3, 1, 3])), redacted(2, 2));
    assert_eq!(add_tags(&s, &mut m, &at(&[2]), &["x"]), added(1, 1));
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("x"))),
        redacted(1, 1)
    );
    assert_eq!(
        redact(&s, &mut m, &matching(Query::tag("zzz"))),
        redacted(0, 0)
    );
    append(&s, &mut m.log, vec![ev("X", &[], "9")]);
    let q = Query::tag("t2").or(types(&["X"]));
    assert_eq!(redact(&s, &mut m, &matching(q.clone())), redacted(5, 3));
    assert_eq!(redact(&s, &mut m, &at(&[1])), redacted(1, 0));
    let entry = |sequence, head, target, result| AuditEntry {
        sequence,
        timestamp_micros: 0,
        head,
        operation: Operation::Redact { target, result },
    };
    let want = vec![
        entry(1, 0, matching(Query::all()), redacted(0, 0)),
        entry(2, 8, at(&[3, 1, 3]), redacted(2, 2)),
        AuditEntry {
            sequence: 3,
            timestamp_micros: 0,
            head: 8,
            operation: Operation::AddTags {
                tags: strings(&["x"]),
                target: at(&[2]),
                result: added(1, 1),
            },
        },
        entry(4, 8, matching(Query::tag("x")), redacted(1, 1)),
        entry(5, 8, matching(Query::tag("zzz")), redacted(0, 0)),
        entry(6, 9, matching(q), redacted(5, 3)),
        entry(7, 9, at(&[1]), redacted(1, 0)),
    ];
    assert_eq!(m.audit, want, "the test's own expectation");
    check_audit(&s, &want);
    let page =
        |after, limit| -> Vec<u64> { audit(&s, after, limit).iter().map(|e| e.sequence).collect() };
    assert_eq!(page(0, 2), [1, 2]);
    assert_eq!(page(2, 3), [3, 4, 5]);
    assert_eq!(page(5, 10), [6, 7]);
    assert_eq!(page(7, 10), [] as [u64; 0]);
}

/// A refused redaction — no position, position 0, a position beyond the
/// head (on an empty store: any), more positions than one operation may
/// name, an invalid query — is `InvalidInput` and changes nothing: no
/// event, not the head, not the audit trail, and it marks nothing (the
/// events it named count as redacted when a valid one erases them).
pub fn redact_bad_input_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut m = Model::default();
    let rejected =
        |s: &H::Store, m: &Model, what: &str, target: &Target, reason: Option<String>| {
            let what = format!("{what}: redact");
            match (err(&what, s.redact(target)), reason) {
                (Error::InvalidInput { reason }, Some(want)) => {
                    assert_eq!(reason, want, "{what}: reason")
                }
                (e, _) => assert_invalid(&what, e),
            }
            assert_contents(s, &m.log);
            check_audit(s, &m.audit);
        };
    let not_committed = |p: u64, head: u64| {
        Some(format!(
            "position {p} is not a committed position (the head is {head})"
        ))
    };
    rejected(&s, &m, "an empty store", &at(&[1]), not_committed(1, 0));
    fixture(&s, &mut m.log);
    let long = "t".repeat(MAX_NAME_LEN + 1);
    let too_many = vec![1; MAX_TARGETED_EVENTS + 1];
    let cases: Vec<(&str, Target, Option<String>)> = vec![
        ("no position", at(&[]), None),
        ("position 0", at(&[0]), not_committed(0, 8)),
        (
            "position 0 among others",
            at(&[2, 0, 1]),
            not_committed(0, 8),
        ),
        ("beyond the head", at(&[9]), not_committed(9, 8)),
        ("beyond among others", at(&[3, 9, 1]), not_committed(9, 8)),
        ("u64::MAX", at(&[1, u64::MAX]), not_committed(u64::MAX, 8)),
        ("too many positions", Target::Positions(too_many), None),
        ("an empty query tag", matching(Query::tag("")), None),
        ("an empty query type", matching(Query::event_type("")), None),
        ("an overlong query tag", matching(Query::tag(long)), None),
    ];
    for (what, target, reason) in &cases {
        rejected(&s, &m, what, target, reason.clone());
    }
    assert!(m.audit.is_empty());
    assert_eq!(redact(&s, &mut m, &at(&[8, 1, 2, 3])), redacted(4, 4));
    assert_eq!(head(&s), 8);
    assert_eq!(m.audit.len(), 1);
}

/// A batch with ids re-sent after its events were tagged or redacted is
/// still recognised as the retry it is: the comparison is with the events
/// as they were appended (their own tags), and a redacted event's data and
/// metadata, which are gone, are not compared. Anything else about the
/// batch still has to match.
pub fn a_retry_of_an_amended_batch_is_recognised<H: Harness>(h: &mut H) {
    let s = h.create();
    let batch = |data: &str| {
        vec![
            NewEvent::new("Opened", data.to_owned())
                .tag("account:a")
                .id(0xa1)
                .metadata("m1"),
            NewEvent::new("Named", "{\"name\":\"x\"}")
                .tag("account:a")
                .id(0xa2),
        ]
    };
    let first = s.append(batch("{\"owner\":\"p\"}")).unwrap();
    assert_eq!((first.first, first.last), (1, 2));
    s.append(vec![NewEvent::new("Other", "{}")]).unwrap();
    s.add_tags(&at(&[1, 2]), &strings(&["gdpr:p"])).unwrap();
    let retried = s.append(batch("{\"owner\":\"p\"}")).unwrap();
    assert_eq!((retried.first, retried.last), (1, 2), "after add_tags");
    s.redact(&at(&[1])).unwrap();
    let s = h.reopen(s);
    h.flush_index(&s);
    let retried = s.append(batch("{\"owner\":\"p\"}")).unwrap();
    assert_eq!((retried.first, retried.last), (1, 2), "after redact");
    // The redacted event's data is not compared; its type still is.
    let retried = s.append(batch("{\"owner\":\"someone else\"}")).unwrap();
    assert_eq!((retried.first, retried.last), (1, 2));
    let mut other_type = batch("{}");
    other_type[0].event_type = "Closed".into();
    assert!(matches!(
        s.append(other_type),
        Err(Error::DuplicateEventId { .. })
    ));
    // The unredacted event is compared whole.
    let mut other_data = batch("{}");
    other_data[1].data = "{\"name\":\"y\"}".into();
    assert!(matches!(
        s.append(other_data),
        Err(Error::DuplicateEventId { .. })
    ));
    assert_eq!(head(&s), 3);
}
