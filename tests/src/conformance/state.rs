//! Snapshots and tracking info, as the `EventStore` docs define them:
//! snapshots saved, loaded at or before a position, listed, deleted and
//! trimmed to the newest three per key (every harness opens its stores
//! with the default retention); tracking info committed with its batch,
//! refused unless it grows, checked after the DCB condition, kept per
//! source and across reopening.

use std::sync::Barrier;

use gesta::snapshots::MAX_STATE_LEN;
use gesta::{
    AppendOptions, Appended, Error, EventStore, ExpectedRevision, NewEvent, Query, Result, Snapshot,
};

use super::Harness;
use super::helpers::*;

/// The default number of snapshots kept per key.
const KEPT: usize = 3;

fn save<S: EventStore>(s: &S, key: &str, position: u64, state: &[u8]) {
    ok(
        &format!("save_snapshot {key:?} at {position}"),
        s.save_snapshot(key, position, state),
    );
}

/// `load_snapshot`, as `(position, state)`.
fn load<S: EventStore>(s: &S, key: &str, at_or_before: u64) -> Option<(u64, Vec<u8>)> {
    ok(
        &format!("load_snapshot {key:?} at or before {at_or_before}"),
        s.load_snapshot(key, at_or_before),
    )
    .map(|Snapshot { position, state }| (position, state))
}

fn list<S: EventStore>(s: &S, key: &str) -> Vec<u64> {
    ok(&format!("list_snapshots {key:?}"), s.list_snapshots(key))
}

fn delete<S: EventStore>(s: &S, key: &str, position: u64) -> bool {
    ok(
        &format!("delete_snapshot {key:?} at {position}"),
        s.delete_snapshot(key, position),
    )
}

fn tracked<S: EventStore>(s: &S, source: &str) -> Option<u64> {
    ok(
        &format!("tracking_info {source:?}"),
        s.tracking_info(source),
    )
}

fn track(source: &str, position: u64) -> AppendOptions {
    AppendOptions::new().track(source, position)
}

/// A state that tells its position apart and holds every byte value.
fn state(position: u64) -> Vec<u8> {
    let mut out = format!("state at {position}: ").into_bytes();
    out.extend(0..=255u8);
    out
}

/// `n` events, one per batch.
fn events<S: EventStore>(s: &S, log: &mut Log, n: usize) {
    for i in 0..n {
        append(s, log, vec![ev("E", &["t"], &format!("e{i}"))]);
    }
}

pub(super) fn assert_tracking_conflict(
    what: &str,
    e: Error,
    source: &str,
    position: u64,
    stored: u64,
) {
    match e {
        Error::TrackingConflict {
            source_name,
            position: p,
            stored: s,
        } => assert_eq!(
            (source_name.as_str(), p, s),
            (source, position, stored),
            "{what}: (source, position, stored)"
        ),
        other => panic!("{what}: expected TrackingConflict on {source:?}, got {other:?}"),
    }
}

/// Save, load at or before positions, list ascending, replace at the same
/// position, delete (saying whether there was one); an unknown key loads
/// nothing, lists empty and deletes nothing; keys are independent; an
/// empty state at position 0 is a state.
pub fn snapshot_save_load_list_delete<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    events(&s, &mut log, 10);
    assert_eq!(load(&s, "acct", u64::MAX), None);
    assert_eq!(list(&s, "acct"), Vec::<u64>::new());
    assert!(!delete(&s, "acct", 3));
    for p in [7, 3, 5] {
        save(&s, "acct", p, &state(p));
    }
    let other = "other/key with spaces, \u{e9}\u{1F600} and \0";
    save(&s, other, 5, b"x");
    assert_eq!(list(&s, "acct"), [3, 5, 7]);
    assert_eq!(list(&s, other), [5]);
    assert_eq!(
        list(&s, "acc"),
        Vec::<u64>::new(),
        "a prefix is another key"
    );
    assert_eq!(load(&s, "acct", 0), None);
    assert_eq!(load(&s, "acct", 2), None);
    assert_eq!(load(&s, "acct", 3), Some((3, state(3))));
    assert_eq!(load(&s, "acct", 4), Some((3, state(3))));
    assert_eq!(load(&s, "acct", 6), Some((5, state(5))));
    assert_eq!(load(&s, "acct", 7), Some((7, state(7))));
    assert_eq!(load(&s, "acct", 1000), Some((7, state(7))));
    assert_eq!(load(&s, "acct", u64::MAX), Some((7, state(7))));
    assert_eq!(load(&s, other, u64::MAX), Some((5, b"x".to_vec())));
    // Saving at a position the key has replaces that snapshot.
    save(&s, "acct", 5, b"new");
    assert_eq!(list(&s, "acct"), [3, 5, 7]);
    assert_eq!(load(&s, "acct", 6), Some((5, b"new".to_vec())));
    assert!(delete(&s, "acct", 5));
    assert!(!delete(&s, "acct", 5), "deleted already");
    assert!(!delete(&s, "acct", 4), "never saved");
    assert!(!delete(&s, "acct", u64::MAX), "never saved");
    assert_eq!(list(&s, "acct"), [3, 7]);
    assert_eq!(load(&s, "acct", 6), Some((3, state(3))));
    assert_eq!(list(&s, other), [5], "another key is untouched");
    save(&s, "empty", 0, b"");
    assert_eq!(load(&s, "empty", 0), Some((0, Vec::new())));
    assert_eq!(load(&s, "empty", u64::MAX), Some((0, Vec::new())));
    // Snapshots are not events.
    assert_contents(&s, &log);
}

/// A save keeps the newest three snapshots of its key by position and
/// deletes the rest — the one just saved too, when three newer ones exist;
/// other keys keep theirs.
pub fn snapshots_keep_the_newest_per_key<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    events(&s, &mut log, 50);
    for p in 1..=10 {
        save(&s, "a", p * 5, &state(p));
        save(&s, "b", p, &state(p));
        assert_eq!(list(&s, "a").len(), (p as usize).min(KEPT));
    }
    assert_eq!(list(&s, "a"), [40, 45, 50]);
    assert_eq!(list(&s, "b"), [8, 9, 10]);
    assert_eq!(load(&s, "a", 39), None);
    assert_eq!(load(&s, "a", 44), Some((40, state(8))));
    // Older than the three kept: saved, then trimmed away at once.
    save(&s, "a", 10, &state(99));
    assert_eq!(list(&s, "a"), [40, 45, 50]);
    assert_eq!(load(&s, "a", 39), None);
    // Between kept ones: it stays and the oldest goes.
    save(&s, "a", 42, &state(42));
    assert_eq!(list(&s, "a"), [42, 45, 50]);
    // Replacing a kept one trims nothing.
    save(&s, "a", 45, b"again");
    assert_eq!(list(&s, "a"), [42, 45, 50]);
    assert_eq!(load(&s, "a", 49), Some((45, b"again".to_vec())));
    assert_eq!(list(&s, "b"), [8, 9, 10]);
}

/// Bad keys (empty, longer than 255 bytes), states past the limit and
/// positions past the head are `InvalidInput` and change nothing; a key of
/// 255 bytes and a position at the head are fine.
pub fn snapshot_bad_input_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let what = "a snapshot past the head of an empty store";
    assert_invalid(what, err(what, s.save_snapshot("k", 1, b"x")));
    save(&s, "k", 0, b"at zero");
    events(&s, &mut log, 4);
    save(&s, "k", 2, &state(2));
    let long = "k".repeat(256);
    let longest = "k".repeat(255);
    for key in ["", long.as_str()] {
        let what = format!("key of {} bytes", key.len());
        assert_invalid(&what, err(&what, s.save_snapshot(key, 1, b"x")));
        assert_invalid(&what, err(&what, s.load_snapshot(key, u64::MAX)));
        assert_invalid(&what, err(&what, s.list_snapshots(key)));
        assert_invalid(&what, err(&what, s.delete_snapshot(key, 1)));
    }
    for position in [5, 6, u64::MAX] {
        let what = format!("a snapshot at {position}, past the head 4");
        assert_invalid(&what, err(&what, s.save_snapshot("k", position, b"x")));
    }
    // The size is checked before anything is stored (the zeroed buffer
    // costs no memory until it is touched).
    let too_big = vec![0u8; MAX_STATE_LEN + 1];
    let what = "a state past the limit";
    assert_invalid(what, err(what, s.save_snapshot("k", 1, &too_big)));
    drop(too_big);
    assert_eq!(list(&s, "k"), [0, 2]);
    assert_eq!(load(&s, "k", u64::MAX), Some((2, state(2))));
    save(&s, &longest, 4, b"longest key, at the head");
    assert_eq!(
        load(&s, &longest, 4),
        Some((4, b"longest key, at the head".to_vec()))
    );
    assert_contents(&s, &log);
}

/// Snapshots survive reopening, with and without an index flush.
pub fn snapshots_survive_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    events(&s, &mut log, 6);
    save(&s, "a", 2, &state(2));
    save(&s, "a", 6, &state(6));
    save(&s, "b", 0, b"");
    let s = h.reopen(s);
    assert_eq!(list(&s, "a"), [2, 6]);
    assert_eq!(load(&s, "a", 5), Some((2, state(2))));
    assert_eq!(load(&s, "b", 0), Some((0, Vec::new())));
    assert!(delete(&s, "a", 2));
    h.flush_index(&s);
    let s = h.reopen(s);
    assert_eq!(list(&s, "a"), [6]);
    assert_eq!(load(&s, "a", u64::MAX), Some((6, state(6))));
    assert_contents(&s, &log);
}

/// A source's first tracking position is any (0 too); each later one must
/// be greater, jumps allowed, up to `u64::MAX`; appends without tracking
/// info leave it alone; the events commit as usual.
pub fn tracking_first_and_advance<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    assert_eq!(tracked(&s, "p"), None);
    append_with(&s, &mut log, vec![ev("A", &["t"], "a")], track("p", 5));
    assert_eq!(tracked(&s, "p"), Some(5));
    append_with(
        &s,
        &mut log,
        vec![ev("B", &[], "b"), sev("s", "s0")],
        track("p", 6),
    );
    assert_eq!(tracked(&s, "p"), Some(6));
    append(&s, &mut log, vec![ev("C", &[], "untracked")]);
    assert_eq!(tracked(&s, "p"), Some(6));
    append_with(&s, &mut log, vec![ev("D", &[], "d")], track("p", 1000));
    assert_eq!(tracked(&s, "p"), Some(1000));
    append_with(&s, &mut log, vec![ev("E", &[], "e")], track("zero", 0));
    assert_eq!(tracked(&s, "zero"), Some(0));
    append_with(&s, &mut log, vec![ev("F", &[], "f")], track("zero", 1));
    assert_eq!(tracked(&s, "zero"), Some(1));
    append_with(
        &s,
        &mut log,
        vec![ev("G", &[], "g")],
        track("max", u64::MAX),
    );
    assert_eq!(tracked(&s, "max"), Some(u64::MAX));
    let what = "tracking past u64::MAX";
    let e = err(
        what,
        s.append_with(vec![ev("H", &[], "h")], track("max", u64::MAX)),
    );
    assert_tracking_conflict(what, e, "max", u64::MAX, u64::MAX);
    assert_eq!(tracked(&s, "never"), None);
    assert_contents(&s, &log);
}

/// A position equal to or lower than the stored one fails with
/// `TrackingConflict` naming the source, the position and the stored one,
/// and appends nothing — its ids are not taken either.
pub fn tracking_conflict_appends_nothing<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(&s, &mut log, vec![ev("A", &["t"], "a")], track("p", 5));
    for stale in [5, 4, 0] {
        let what = format!("tracking {stale} after 5");
        let batch = vec![
            ev("B", &["t"], "b").id(0xB1).stream("s"),
            ev("B", &[], "b2").id(0xB2),
        ];
        let e = err(&what, s.append_with(batch, track("p", stale)));
        assert_tracking_conflict(&what, e, "p", stale, 5);
        assert_eq!(tracked(&s, "p"), Some(5), "{what}");
        assert_contents(&s, &log);
    }
    // The refused batch's ids and revisions are free: it commits as new.
    let batch = vec![
        ev("B", &["t"], "b").id(0xB1).stream("s"),
        ev("B", &[], "b2").id(0xB2),
    ];
    append_with(&s, &mut log, batch, track("p", 6));
    assert_eq!(tracked(&s, "p"), Some(6));
    assert_eq!(revision(&s, "s"), Some(0));
    assert_contents(&s, &log);
}

/// Tracking info is checked after the DCB condition: an append that fails
/// any earlier check (input, expected revision, condition) fails with that
/// check's error, even if its tracking position would conflict too, and
/// stores no tracking info; a passing condition with a stale position is a
/// tracking conflict.
pub fn tracking_with_failing_checks_stores_nothing<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(&s, &mut log, vec![ev("A", &["t"], "a")], track("p", 5));
    append(&s, &mut log, vec![sev("s", "s0")]);
    let failing_condition = |position| {
        AppendOptions::new()
            .fail_if(Query::tag("t"), Some(0))
            .track("p", position)
    };
    let wrong_revision = |position| expect("s", ExpectedRevision::NoStream).track("p", position);
    for position in [9, 5] {
        let what = format!("failing condition, tracking {position}");
        let e = err(
            &what,
            s.append_with(vec![ev("B", &[], "b")], failing_condition(position)),
        );
        assert_condition_failed(&what, e, 1);
        let what = format!("wrong expected revision, tracking {position}");
        let e = err(
            &what,
            s.append_with(vec![ev("B", &[], "b")], wrong_revision(position)),
        );
        assert_wrong_revision(&what, e, "s", ExpectedRevision::NoStream, Some(0));
        let what = format!("empty batch, tracking {position}");
        assert_invalid(
            &what,
            err(&what, s.append_with(vec![], track("p", position))),
        );
        let what = format!("invalid event, tracking {position}");
        let e = err(
            &what,
            s.append_with(vec![ev("", &[], "b")], track("p", position)),
        );
        assert_invalid(&what, e);
        let what = format!("condition past the head, tracking {position}");
        let options = AppendOptions::new()
            .fail_if(Query::tag("none"), Some(99))
            .track("p", position);
        assert_invalid(
            &what,
            err(&what, s.append_with(vec![ev("B", &[], "b")], options)),
        );
        assert_eq!(tracked(&s, "p"), Some(5), "{what}");
    }
    // A new source whose first append fails keeps no tracking info.
    let options = AppendOptions::new()
        .fail_if(Query::tag("t"), None)
        .track("new", 1);
    let what = "a new source's failing append";
    assert_condition_failed(
        what,
        err(what, s.append_with(vec![ev("B", &[], "b")], options)),
        1,
    );
    assert_eq!(tracked(&s, "new"), None);
    // A condition that holds, with a stale position: the tracking check.
    let options = AppendOptions::new()
        .fail_if(Query::tag("t"), Some(1))
        .expect("s", ExpectedRevision::Exact(0))
        .track("p", 5);
    let what = "passing checks, stale tracking";
    let e = err(what, s.append_with(vec![ev("B", &[], "b")], options));
    assert_tracking_conflict(what, e, "p", 5, 5);
    assert_contents(&s, &log);
    let options = AppendOptions::new()
        .fail_if(Query::tag("t"), Some(1))
        .expect("s", ExpectedRevision::Exact(0))
        .track("p", 6);
    append_with(&s, &mut log, vec![ev("B", &[], "b")], options);
    assert_eq!(tracked(&s, "p"), Some(6));
    assert_contents(&s, &log);
}

/// An idempotent retry is answered before any check: its tracking info is
/// neither checked (a stale position is no conflict) nor stored.
pub fn tracking_ignored_by_idempotent_retry<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = || vec![ev("A", &["t"], "a").id(0xA1), ev("B", &[], "b").id(0xA2)];
    let first = append_with(&s, &mut log, batch(), track("p", 3));
    for position in [3, 1, 9] {
        let what = format!("retry tracking {position}");
        assert_eq!(
            ok(&what, s.append_with(batch(), track("p", position))),
            first
        );
        assert_eq!(tracked(&s, "p"), Some(3), "{what}");
        assert_eq!(tracked(&s, "q"), None, "{what}");
        assert_eq!(
            ok(&what, s.append_with(batch(), track("q", position))),
            first
        );
        assert_eq!(tracked(&s, "q"), None, "{what}");
    }
    assert_contents(&s, &log);
}

/// Sources are independent: each has its own stored position and
/// conflicts only with it.
pub fn tracking_sources_are_independent<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append_with(&s, &mut log, vec![ev("A", &[], "a")], track("p", 5));
    append_with(&s, &mut log, vec![ev("A", &[], "b")], track("q", 1));
    append_with(&s, &mut log, vec![ev("A", &[], "c")], track("p2", 5));
    let what = "q at 1";
    let e = err(what, s.append_with(vec![ev("A", &[], "x")], track("q", 1)));
    assert_tracking_conflict(what, e, "q", 1, 1);
    let what = "p at 3";
    let e = err(what, s.append_with(vec![ev("A", &[], "x")], track("p", 3)));
    assert_tracking_conflict(what, e, "p", 3, 5);
    append_with(&s, &mut log, vec![ev("A", &[], "d")], track("q", 3));
    append_with(&s, &mut log, vec![ev("A", &[], "e")], track("P", 1));
    assert_eq!(
        ["p", "q", "p2", "P", "p "].map(|source| tracked(&s, source)),
        [Some(5), Some(3), Some(5), Some(1), None]
    );
    assert_contents(&s, &log);
}

/// Tracking info survives reopening, with and without an index flush, and
/// still refuses positions that are not greater.
pub fn tracking_survives_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let streamed = vec![sev("s", "s0"), ev("B", &[], "b"), sev("s", "s1")];
    append_with(&s, &mut log, streamed, track("p", 10));
    h.flush_index(&s);
    append_with(&s, &mut log, vec![ev("C", &[], "c")], track("p", 11));
    append_with(&s, &mut log, vec![ev("D", &[], "d")], track("q", 3));
    let s = h.reopen(s);
    assert_eq!(tracked(&s, "p"), Some(11));
    assert_eq!(tracked(&s, "q"), Some(3));
    let what = "p at 11 after reopening";
    let e = err(what, s.append_with(vec![ev("E", &[], "e")], track("p", 11)));
    assert_tracking_conflict(what, e, "p", 11, 11);
    append_with(&s, &mut log, vec![ev("E", &[], "e")], track("p", 12));
    h.flush_index(&s);
    let s = h.reopen(s);
    assert_eq!(tracked(&s, "p"), Some(12));
    assert_eq!(tracked(&s, "q"), Some(3));
    assert_contents(&s, &log);
}

/// A tracking source is named like a stream: empty or longer than 255
/// bytes is `InvalidInput`, on append (appending nothing) and on lookup.
pub fn tracking_invalid_source_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let long = "p".repeat(256);
    let longest = "p".repeat(255);
    for source in ["", long.as_str()] {
        let what = format!("tracking source of {} bytes", source.len());
        assert_invalid(&what, err(&what, s.tracking_info(source)));
        let e = err(
            &what,
            s.append_with(vec![ev("A", &[], "a")], track(source, 1)),
        );
        assert_invalid(&what, e);
    }
    append_with(&s, &mut log, vec![ev("A", &[], "a")], track(&longest, 1));
    assert_eq!(tracked(&s, &longest), Some(1));
    assert_contents(&s, &log);
}

/// Appends racing with the same tracking position of one source: exactly
/// one commits, the others are tracking conflicts with nothing appended.
pub fn concurrent_tracking_one_wins<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for round in 0..ROUNDS {
        let position = round as u64 + 1;
        let barrier = Barrier::new(THREADS);
        let results: Vec<(usize, Result<Appended>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (s, barrier) = (&s, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let batch = vec![ev("R", &[], &format!("r{round}t{t}"))];
                        (t, s.append_with(batch, track("race", position)))
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
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let (winner, appended) = winners[0];
        let batch: [NewEvent; 1] = [ev("R", &[], &format!("r{round}t{winner}"))];
        assert_eq!(appended, log.commit(&batch));
        for (t, r) in results {
            if t != winner {
                let what = format!("round {round} thread {t}");
                let e = r.expect_err("one winner");
                assert_tracking_conflict(&what, e, "race", position, position);
            }
        }
        assert_eq!(tracked(&s, "race"), Some(position));
        assert_contents(&s, &log);
    }
}
