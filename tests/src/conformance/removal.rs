//! Removal and retention (the `removal` contract): `remove` by positions
//! and by query, `truncate_stream` and `delete_stream`, retention rules
//! by count, and what every read, lookup, listing, condition, retry and
//! subscription sees afterwards, persistence, the audit trail and bad
//! input.
//!
//! A store that does not offer removal yet must say so with
//! [`Error::Unsupported`] on every call (checked by [`supported`]); the
//! cases then stop there.

use gesta::listing::MAX_LIST_LIMIT;
use gesta::{
    Error, EventStore, ExpectedRevision, Listed, Listing, Operation, Query, ReadOptions, Redacted,
    Removal, Removed, RetentionRule, TagsAdded, Target,
};

use super::Harness;
use super::helpers::*;
use super::lifecycle::{at, audit, by_id, matching, receive_until, strip_entry, subscribe};

/// Whether the store offers removal; if not, every removal call answers
/// `Unsupported` and changes nothing.
fn supported<S: EventStore>(s: &S, log: &Log) -> bool {
    match s.remove(&at(&[1])) {
        Err(Error::Unsupported { .. }) => {}
        other => {
            // Supported: undo nothing (there is no undo), so only a fresh
            // store may be probed this way — callers probe an empty one.
            assert!(
                matches!(other, Err(Error::InvalidInput { .. })),
                "probe: {other:?}"
            );
            return true;
        }
    }
    for r in [
        s.delete_stream("s1").map(|_| ()),
        s.truncate_stream("s1", 1).map(|_| ()),
        s.set_retention(&RetentionRule::stream("s1").max_count(1)),
        s.retention_rules().map(|_| ()),
        s.enforce_retention().map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::Unsupported { .. })), "{r:?}");
    }
    assert_contents(s, log);
    false
}

/// A store with the fixture, if it supports removal (probed while empty:
/// position 1 is not committed, so the probe is refused as bad input).
fn fixture_store<H: Harness>(h: &mut H) -> Option<(H::Store, Log)> {
    let s = h.create();
    let mut log = Log::default();
    if !supported(&s, &log) {
        fixture(&s, &mut log);
        supported(&s, &log);
        return None;
    }
    fixture(&s, &mut log);
    Some((s, log))
}

fn removed(targeted: u64, removed: u64) -> Removed {
    Removed { targeted, removed }
}

/// Every fixture query, read forwards and backwards, by `read_each` and
/// `read_last`, returns exactly the events of `log` it matches that are
/// not in `gone`.
fn check_reads<S: EventStore>(s: &S, log: &Log, gone: &[u64]) {
    for (q, want) in fixture_queries() {
        let want: Vec<u64> = want.into_iter().filter(|p| !gone.contains(p)).collect();
        let got = read(s, &q, ReadOptions::forwards());
        assert_eq!(positions(&got), want, "{q:?} forwards");
        for e in &got {
            assert_eq!(e, log.get(e.position), "{q:?}: contents");
        }
        let mut back = want.clone();
        back.reverse();
        assert_eq!(positions(&read(s, &q, ReadOptions::backwards())), back);
        let first_two: Vec<u64> = want.iter().copied().take(2).collect();
        assert_eq!(
            positions(&read(s, &q, ReadOptions::forwards().limit(2))),
            first_two,
            "{q:?} limit 2"
        );
        let each = read_each(s, &q, ReadOptions::forwards());
        assert_eq!(positions(&each), want, "{q:?} read_each");
        assert_eq!(
            read_last(s, &q).map(|e| e.position),
            want.last().copied(),
            "{q:?} read_last"
        );
    }
}

fn listed(s: &impl EventStore, what: Listing) -> Vec<Listed> {
    ok("list", s.list(what, "", None, MAX_LIST_LIMIT))
}

/// The listings `log` minus `gone` must give.
fn listings_of(log: &Log, gone: &[u64], what: Listing) -> Vec<Listed> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for e in log.events.iter().filter(|e| !gone.contains(&e.position)) {
        let names: Vec<String> = match what {
            Listing::Streams => e.stream.iter().cloned().collect(),
            Listing::Types => vec![e.event_type.clone()],
            Listing::Tags => {
                let mut t = e.tags.clone();
                t.sort();
                t.dedup();
                t
            }
        };
        for n in names {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(name, count)| Listed { name, count })
        .collect()
}

fn check_listings<S: EventStore>(s: &S, log: &Log, gone: &[u64]) {
    for what in [Listing::Streams, Listing::Types, Listing::Tags] {
        assert_eq!(listed(s, what), listings_of(log, gone, what), "{what:?}");
    }
}

/// Positions may repeat and come in any order; a removed event is gone
/// from every query, both directions, limits, `read_each` and
/// `read_last`; the head stays and the other events are untouched;
/// removing again targets nothing; a query target finds only events not
/// removed.
pub fn remove_by_positions_and_query<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    assert_eq!(ok("remove", s.remove(&at(&[6, 2, 6]))), removed(2, 2));
    check_reads(&s, &log, &[2, 6]);
    assert_eq!(head(&s), 8, "the head stays");
    assert_eq!(ok("again", s.remove(&at(&[2, 6]))), removed(0, 0));
    assert_eq!(
        ok("by query", s.remove(&matching(Query::tag("t3")))),
        removed(3, 3),
        "5, 7 and 8 (6 is gone already)"
    );
    check_reads(&s, &log, &[2, 5, 6, 7, 8]);
    check_listings(&s, &log, &[2, 5, 6, 7, 8]);
}

/// By id, by stream, by listing, by subscription: a removed event is gone
/// everywhere, while positions, revisions and `position_at` stay.
pub fn removed_events_are_gone_for_every_read<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    let mut live = subscribe(&s, &Query::all(), 8);
    assert_eq!(ok("remove", s.remove(&at(&[4, 5]))), removed(2, 2));
    assert_eq!(by_id(&s, 0xA4), None, "a removed event's id");
    assert_eq!(by_id(&s, 0xA6).map(|e| e.position), Some(6));
    let s1: Vec<(u64, Option<u64>)> = stream(&s, "s1", ReadOptions::forwards())
        .iter()
        .map(|e| (e.position, e.revision))
        .collect();
    assert_eq!(s1, [(2, Some(0)), (7, Some(2))], "revision 1 is a hole");
    assert!(stream(&s, "s2", ReadOptions::forwards()).is_empty());
    assert_eq!(revision(&s, "s1"), Some(2));
    assert_eq!(revision(&s, "s2"), Some(0), "s2's revision stays");
    check_listings(&s, &log, &[4, 5]);
    let mut caught_up = subscribe(&s, &Query::all(), 0);
    let seen: Vec<u64> = positions(&receive_until(&mut caught_up, 8));
    assert_eq!(seen, [1, 2, 3, 6, 7, 8], "a catch-up skips removed events");
    let mut by_tag = subscribe(&s, &Query::tag("t3"), 0);
    assert_eq!(positions(&receive_until(&mut by_tag, 8)), [6, 7, 8]);
    append(&s, &mut log.clone(), vec![ev("Z", &["t3"], "9")]);
    let nine: Vec<u64> = positions(&receive_until(&mut live, 9));
    assert_eq!(nine, [9], "live events go on");
}

/// `truncate_stream` removes the revisions below `before`; `delete_stream`
/// every event of the stream. The stream's revision stays, expected
/// revisions are checked against it, the next append continues it, and
/// other streams are untouched.
pub fn delete_and_truncate_streams<H: Harness>(h: &mut H) {
    let Some((s, mut log)) = fixture_store(h) else {
        return;
    };
    assert_eq!(ok("truncate", s.truncate_stream("s1", 1)), removed(1, 1));
    let revisions = |s: &H::Store| -> Vec<Option<u64>> {
        stream(s, "s1", ReadOptions::forwards())
            .iter()
            .map(|e| e.revision)
            .collect()
    };
    assert_eq!(revisions(&s), [Some(1), Some(2)]);
    assert_eq!(
        ok("truncate again", s.truncate_stream("s1", 1)),
        removed(0, 0)
    );
    assert_eq!(ok("unknown", s.truncate_stream("nope", 5)), removed(0, 0));
    assert_eq!(ok("delete", s.delete_stream("s1")), removed(2, 2));
    assert!(revisions(&s).is_empty(), "a deleted stream reads as empty");
    assert_eq!(
        ok("last", s.read_stream_last("s1")).map(|e| e.position),
        None
    );
    assert_eq!(revision(&s, "s1"), Some(2), "the revision stays");
    let e = err(
        "no stream",
        s.append_with(
            vec![sev("s1", "x")],
            expect("s1", ExpectedRevision::NoStream),
        ),
    );
    assert_wrong_revision(
        "no stream after delete",
        e,
        "s1",
        ExpectedRevision::NoStream,
        Some(2),
    );
    let a = append_with(
        &s,
        &mut log,
        vec![sev("s1", "again")],
        expect("s1", ExpectedRevision::Exact(2)),
    );
    assert_eq!(a.first, 9);
    let back: Vec<(u64, Option<u64>)> = stream(&s, "s1", ReadOptions::forwards())
        .iter()
        .map(|e| (e.position, e.revision))
        .collect();
    assert_eq!(back, [(9, Some(3))], "the stream goes on from its revision");
    assert_eq!(
        positions(&stream(&s, "s2", ReadOptions::forwards())),
        [5],
        "other streams stay"
    );
}

/// A position target naming a removed event leaves it out, for every
/// lifecycle operation: the event is neither redacted, tagged nor removed
/// again, and the others named are (not a failure of the whole call).
pub fn position_targets_leave_removed_events_out<H: Harness>(h: &mut H) {
    let Some((s, _log)) = fixture_store(h) else {
        return;
    };
    assert_eq!(ok("remove", s.remove(&at(&[2]))), removed(1, 1));
    assert_eq!(
        ok("redact", s.redact(&at(&[2, 3]))),
        Redacted {
            targeted: 1,
            redacted: 1
        }
    );
    assert_eq!(
        ok("add_tags", s.add_tags(&at(&[3, 2]), &["z".to_owned()])),
        TagsAdded {
            targeted: 1,
            tagged: 1
        }
    );
    assert_eq!(
        positions(&read(&s, &Query::tag("z"), ReadOptions::forwards())),
        vec![3]
    );
    assert_eq!(ok("remove again", s.remove(&at(&[2, 3]))), removed(1, 1));
    assert_eq!(
        positions(&read(&s, &Query::tag("z"), ReadOptions::forwards())),
        Vec::<u64>::new()
    );
}

/// A condition sees only events that exist when it is checked.
pub fn conditions_ignore_removed_events<H: Harness>(h: &mut H) {
    let Some((s, mut log)) = fixture_store(h) else {
        return;
    };
    let t1_after_6 = fail_if(Query::tag("t1"), Some(6));
    let e = err(
        "before",
        s.append_with(vec![ev("N", &[], "n")], t1_after_6.clone()),
    );
    assert_condition_failed("t1 after 6", e, 8);
    assert_eq!(ok("remove", s.remove(&at(&[8]))), removed(1, 1));
    append_with(&s, &mut log, vec![ev("N", &[], "n")], t1_after_6);
    let e = err(
        "after 1",
        s.append_with(vec![ev("N", &[], "m")], fail_if(Query::tag("t1"), Some(1))),
    );
    assert_condition_failed("t1 after 1", e, 2);
}

/// A removed event's id stays taken: a retry of its batch gets the
/// original positions, a new event with the id is a duplicate.
pub fn ids_of_removed_events_stay_taken<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    assert_eq!(ok("remove", s.remove(&at(&[4]))), removed(1, 1));
    let batch = vec![
        ev("A", &[], "e4").stream("s1").id(0xA4),
        ev("B", &["t3"], "e5").stream("s2").id(0xA5),
        ev("A", &["t1", "t2", "t3"], "e6").id(0xA6),
    ];
    let retry = ok("retry", s.append(batch));
    assert_eq!((retry.first, retry.last), (4, 6));
    let e = err("reuse", s.append(vec![ev("X", &[], "x").id(0xA4)]));
    assert_duplicate("a removed event's id", e, &[0xA4]);
    assert_eq!(head(&s), 8);
    check_reads(&s, &log, &[4]);
}

/// Rules by count, per stream and per query: set, listed, replaced,
/// cleared; enforcing removes all but the newest `max_count` of the
/// scope's events (those not removed yet) and records one removal per rule
/// that removed something; a second enforcement removes nothing.
pub fn retention_by_count<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    let on_s1 = RetentionRule::stream("s1").max_count(1);
    let on_t1 = RetentionRule::query(Query::tag("t1")).max_count(3);
    ok("set", s.set_retention(&on_s1));
    ok("set", s.set_retention(&on_t1));
    assert_eq!(
        ok("rules", s.retention_rules()),
        [on_s1.clone(), on_t1.clone()]
    );
    assert_eq!(head(&s), 8, "setting a rule removes nothing");
    check_reads(&s, &log, &[]);
    assert_eq!(ok("enforce", s.enforce_retention()), removed(2, 2));
    // s1: 2, 4, 7 → keeps 7; t1: 1, 6, 8 left → keeps all three.
    check_reads(&s, &log, &[2, 4]);
    assert_eq!(ok("again", s.enforce_retention()), removed(0, 0));
    let on_t1 = RetentionRule::query(Query::tag("t1")).max_count(1);
    ok("replace", s.set_retention(&on_t1));
    assert_eq!(ok("rules", s.retention_rules()), [on_s1, on_t1.clone()]);
    assert_eq!(ok("enforce", s.enforce_retention()), removed(2, 2));
    check_reads(&s, &log, &[1, 2, 4, 6]);
    ok("clear", s.set_retention(&RetentionRule::stream("s1")));
    assert_eq!(
        ok("rules", s.retention_rules()),
        std::slice::from_ref(&on_t1)
    );
    let entries: Vec<Operation> = audit(&s, 0, MAX_LIST_LIMIT)
        .into_iter()
        .map(|e| strip_entry(e).operation)
        .collect();
    let removals: Vec<&Operation> = entries
        .iter()
        .filter(|o| matches!(o, Operation::Remove { .. }))
        .collect();
    assert_eq!(
        removals.len(),
        2,
        "one removal per rule that removed: {entries:?}"
    );
    assert_eq!(
        removals[1],
        &Operation::Remove {
            removal: Removal::Retention(on_t1),
            result: removed(2, 2),
        }
    );
}

/// Removals and rules are durable: after an index flush and a reopen, the
/// same events are gone and the same rules are in force.
pub fn removal_survives_flush_and_reopen<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    assert_eq!(ok("remove", s.remove(&at(&[3, 8]))), removed(2, 2));
    h.flush_index(&s);
    assert_eq!(ok("delete", s.delete_stream("s2")), removed(1, 1));
    let rule = RetentionRule::query(Query::event_type("A")).max_count(2);
    ok("set", s.set_retention(&rule));
    let s = h.reopen(s);
    check_reads(&s, &log, &[3, 5, 8]);
    check_listings(&s, &log, &[3, 5, 8]);
    assert_eq!(ok("rules", s.retention_rules()), [rule]);
    assert_eq!(by_id(&s, 0xA5), None);
    assert_eq!(ok("enforce", s.enforce_retention()), removed(1, 1));
    check_reads(&s, &log, &[1, 3, 5, 8]);
}

/// Every removal and rule is in the audit trail, in order, with what was
/// asked and what it did.
pub fn audit_log_records_removals<H: Harness>(h: &mut H) {
    let Some((s, _log)) = fixture_store(h) else {
        return;
    };
    ok("remove", s.remove(&at(&[1])));
    ok("truncate", s.truncate_stream("s1", 2));
    ok("delete", s.delete_stream("s2"));
    let rule = RetentionRule::stream("s1").max_count(5);
    ok("set", s.set_retention(&rule));
    let got: Vec<(u64, u64, Operation)> = audit(&s, 0, MAX_LIST_LIMIT)
        .into_iter()
        .map(|e| (e.sequence, e.head, e.operation))
        .collect();
    let want = vec![
        (
            1,
            8,
            Operation::Remove {
                removal: Removal::Target(at(&[1])),
                result: removed(1, 1),
            },
        ),
        (
            2,
            8,
            Operation::Remove {
                removal: Removal::Stream {
                    stream: "s1".into(),
                    before: Some(2),
                },
                result: removed(2, 2),
            },
        ),
        (
            3,
            8,
            Operation::Remove {
                removal: Removal::Stream {
                    stream: "s2".into(),
                    before: None,
                },
                result: removed(1, 1),
            },
        ),
        (4, 8, Operation::SetRetention { rule }),
    ];
    assert_eq!(got, want);
}

/// Bad input is refused with `InvalidInput`, and changes nothing.
pub fn removal_bad_input_rejected<H: Harness>(h: &mut H) {
    let Some((s, log)) = fixture_store(h) else {
        return;
    };
    let refused = |what: &str, r: gesta::Result<()>| match r {
        Err(e) => assert_invalid(what, e),
        Ok(()) => panic!("{what}: accepted"),
    };
    refused("no positions", s.remove(&at(&[])).map(|_| ()));
    refused("position 0", s.remove(&at(&[0])).map(|_| ()));
    refused("past the head", s.remove(&at(&[9])).map(|_| ()));
    refused(
        "bad query",
        s.remove(&Target::Query(Query::tag(""))).map(|_| ()),
    );
    refused("empty stream", s.delete_stream("").map(|_| ()));
    refused("empty stream", s.truncate_stream("", 1).map(|_| ()));
    refused(
        "count 0",
        s.set_retention(&RetentionRule::stream("s1").max_count(0)),
    );
    refused(
        "age 0",
        s.set_retention(&RetentionRule::stream("s1").max_age(std::time::Duration::ZERO)),
    );
    refused(
        "bad scope",
        s.set_retention(&RetentionRule::query(Query::tag("")).max_count(1)),
    );
    assert!(ok("rules", s.retention_rules()).is_empty());
    assert!(audit(&s, 0, MAX_LIST_LIMIT).is_empty(), "nothing recorded");
    check_reads(&s, &log, &[]);
}
