//! Stream reads by revision and lookups by event id.

use gesta::{EventStore, ReadOptions, RecordedEvent};

use super::Harness;
use super::helpers::*;

/// A stream reads in revision order, its start an exclusive revision in
/// both directions as a position is for `read`, with limits; neither other
/// streams' events nor events without a stream are in it; a stream without
/// events reads as empty; `read_stream_last` is its newest event.
pub fn stream_read_by_revision<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for i in 0..6 {
        append(&s, &mut log, vec![sev("s", &format!("s{i}"))]);
        append(
            &s,
            &mut log,
            vec![sev("t", &format!("t{i}")), ev("X", &[], "x")],
        );
    }
    append(&s, &mut log, vec![sev("s", "s6"), sev("s", "s7")]);
    let check = |s: &H::Store, log: &Log| {
        let want: Vec<RecordedEvent> = log
            .events
            .iter()
            .filter(|e| e.stream.as_deref() == Some("s"))
            .cloned()
            .collect();
        assert_eq!(want.len(), 8);
        let mut reversed = want.clone();
        reversed.reverse();
        assert_eq!(stream(s, "s", ReadOptions::forwards()), want);
        assert_eq!(stream(s, "s", ReadOptions::backwards()), reversed);
        for start in 0..=9u64 {
            let after = want.iter().filter(|e| e.revision > Some(start));
            assert_eq!(
                stream(s, "s", ReadOptions::forwards().start(start)),
                after.cloned().collect::<Vec<_>>(),
                "forwards after revision {start}"
            );
            let before = reversed.iter().filter(|e| e.revision < Some(start));
            assert_eq!(
                stream(s, "s", ReadOptions::backwards().start(start)),
                before.cloned().collect::<Vec<_>>(),
                "backwards before revision {start}"
            );
            for limit in [0, 1, 3] {
                assert_eq!(
                    stream(s, "s", ReadOptions::forwards().start(start).limit(limit)),
                    want.iter()
                        .filter(|e| e.revision > Some(start))
                        .take(limit)
                        .cloned()
                        .collect::<Vec<_>>(),
                    "forwards after revision {start}, limit {limit}"
                );
                assert_eq!(
                    stream(s, "s", ReadOptions::backwards().start(start).limit(limit)),
                    reversed
                        .iter()
                        .filter(|e| e.revision < Some(start))
                        .take(limit)
                        .cloned()
                        .collect::<Vec<_>>(),
                    "backwards before revision {start}, limit {limit}"
                );
            }
        }
        assert_eq!(stream(s, "s", ReadOptions::forwards().start(u64::MAX)), []);
        assert_eq!(stream(s, "t", ReadOptions::forwards()).len(), 6);
        assert_eq!(stream(s, "nobody", ReadOptions::forwards()), []);
        assert_eq!(stream(s, "nobody", ReadOptions::backwards()), []);
        assert_eq!(
            ok("read_stream_last", s.read_stream_last("s")).map(strip),
            want.last().cloned()
        );
        assert_eq!(ok("read_stream_last", s.read_stream_last("nobody")), None);
        // `read_stream_each` stops when the callback breaks off.
        for stop in 0..want.len() {
            let mut seen = Vec::new();
            let r = s.read_stream_each("s", ReadOptions::backwards(), &mut |e| {
                seen.push(e.revision);
                if seen.len() > stop {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            });
            ok("read_stream_each", r);
            let revisions: Vec<_> = reversed.iter().map(|e| e.revision).take(stop + 1).collect();
            assert_eq!(seen, revisions, "break after {stop}");
        }
    };
    check(&s, &log);
    h.flush_index(&s);
    let s = h.reopen(s);
    check(&s, &log);
    // Appends after a flush land in the memtable: the stream spans both.
    append(&s, &mut log, vec![sev("s", "s8")]);
    let all = stream(&s, "s", ReadOptions::forwards().start(6));
    assert_eq!(
        all.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [Some(7), Some(8)]
    );
    assert_invalid(
        "empty stream name",
        err(
            "read_stream",
            s.read_stream("", ReadOptions::forwards()).map(|_| ()),
        ),
    );
    let long = "s".repeat(gesta::event::MAX_NAME_LEN + 1);
    assert_invalid(
        "overlong stream name",
        err(
            "read_stream",
            s.read_stream(&long, ReadOptions::forwards()).map(|_| ()),
        ),
    );
    for name in ["", long.as_str()] {
        let lent = s.read_stream_each(name, ReadOptions::forwards(), &mut |_| {
            panic!("an invalid stream name lends nothing")
        });
        assert_invalid("invalid stream name", err("read_stream_each", lent));
    }
}

/// `event_by_id` finds a committed event by its id, from the memtable, an
/// index run and after a reopen; an id never committed, or one whose
/// append failed, finds nothing.
pub fn event_by_id_lookup<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(
        &s,
        &mut log,
        vec![ev("A", &["t"], "a").id(10), ev("B", &[], "b")],
    );
    append(&s, &mut log, vec![sev("s", "c").id(11)]);
    let failed = s.append_with(
        vec![ev("C", &[], "never").id(12)],
        fail_if(gesta::Query::tag("t"), None),
    );
    assert!(failed.is_err());
    let check = |s: &H::Store| {
        for (id, position) in [(10u128, 1u64), (11, 3)] {
            let got = by_id_raw(s, id).map(strip);
            assert_eq!(got.as_ref(), Some(log.get(position)), "id {id}");
        }
        for id in [0u128, 12, u128::MAX] {
            assert_eq!(by_id_raw(s, id), None, "id {id}");
        }
    };
    check(&s);
    h.flush_index(&s);
    check(&s);
    let s = h.reopen(s);
    check(&s);
}

/// `position_at(t)` is the last position committed at or before `t`,
/// judged by the commit times the store itself reads back: 0 before the
/// first event, the head at and after the last.
pub fn position_at_commit_time<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    assert_eq!(ok("position_at", s.position_at(u64::MAX)), 0, "empty store");
    for i in 0..12 {
        let batch = (0..1 + i % 3)
            .map(|j| ev("A", &[], &format!("{i}.{j}")))
            .collect();
        append(&s, &mut log, batch);
        if i % 4 == 0 {
            // Let the clock move on between some batches.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let check = |s: &H::Store| {
        let events = read_raw(s, &gesta::Query::all(), ReadOptions::forwards());
        let head = events.len() as u64;
        assert!(
            events
                .windows(2)
                .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros),
            "commit times never decrease"
        );
        let last_at = |t: u64| {
            events
                .iter()
                .rev()
                .find(|e| e.timestamp_micros <= t)
                .map_or(0, |e| e.position)
        };
        let first = events[0].timestamp_micros;
        for t in events.iter().flat_map(|e| {
            [
                e.timestamp_micros.saturating_sub(1),
                e.timestamp_micros,
                e.timestamp_micros + 1,
            ]
        }) {
            assert_eq!(ok("position_at", s.position_at(t)), last_at(t), "time {t}");
        }
        assert_eq!(
            ok("position_at", s.position_at(first - 1)),
            0,
            "before the first"
        );
        assert_eq!(ok("position_at", s.position_at(0)), 0);
        assert_eq!(
            ok("position_at", s.position_at(u64::MAX)),
            head,
            "after the last"
        );
        // A read from a time: everything committed at or after it.
        let t = events[head as usize / 2].timestamp_micros;
        let from = ok("position_at", s.position_at(t - 1));
        let got = read(s, &gesta::Query::all(), ReadOptions::forwards().start(from));
        assert!(got.iter().all(|e| e.position > from));
        assert_eq!(got.len() as u64, head - from);
        assert!(
            events
                .iter()
                .filter(|e| e.position <= from)
                .all(|e| e.timestamp_micros < t)
        );
    };
    check(&s);
    h.flush_index(&s);
    let s = h.reopen(s);
    check(&s);
}
