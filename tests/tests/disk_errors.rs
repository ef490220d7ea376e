//! Disk errors (`EIO`, `ENOSPC`) on the write path, during open, and the
//! directory lock — on the fault-injecting file system.
//!
//! For every operation the write path uses (the group write and the
//! preallocation ahead of it, `fdatasync`, the creation of the next segment
//! and the directory sync that makes it durable, the trim and offset table
//! of the segment it seals) and both errors, the fault is injected at each
//! of its first occurrences during a stream of appends — failing without
//! effect, and failing after taking effect in part (a short write, a sync
//! that made the data durable and still reported the error). The append it
//! hits gets `Error::Io`, which promises that nothing of it is in the store
//! and never will be: a reopen — clean, or after a simulated power loss —
//! must find exactly the acknowledged events, never the failed batch. A
//! failure before the log wrote any of the batch (no room to preallocate or
//! to start the next segment) leaves the store usable; any later one
//! poisons it (later appends get `Error::Poisoned`, reads keep working). A
//! fault in tidying a sealed segment fails no append at all. Only when
//! cutting a failed batch off the log fails too is the answer
//! `Error::OutcomeUnknown`, and then the batch is there whole or not at
//! all.

use std::path::Path;
use std::sync::Arc;

use gesta::clock::ManualClock;
use gesta::io::FileSystem;
use gesta::io::fault::{CrashMode, Fault, FaultFs, OpKind};
use gesta::{Appended, Durability, Error, NewEvent, Options, RecordedEvent, Store};
use gesta_tests::{batch, check_event, read_all};

const DIR: &str = "/store";
const SEED: u64 = 0xd15c;

fn options(fs: &FaultFs) -> Options {
    Options::default()
        .fs(Arc::new(fs.clone()))
        .segment_size(16 << 10)
        .preallocate(4 << 10)
        .durability(Durability::Sync)
        .clock(Arc::new(ManualClock::new(1_700_000_000_000_000)))
}

fn open(fs: &FaultFs) -> Store {
    Store::open_with(DIR, options(fs)).unwrap_or_else(|e| panic!("open failed: {e}"))
}

fn errno(fault: Fault) -> i32 {
    fault.to_io_error().raw_os_error().expect("an OS error")
}

/// The events the store should hold, in position order.
#[derive(Clone, Debug, Default)]
struct Expected {
    events: Vec<NewEvent>,
}

impl Expected {
    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    /// Records an acknowledged append, checking the positions it got.
    fn acknowledged(&mut self, appended: Appended, events: Vec<NewEvent>) {
        assert_eq!(
            (appended.first, appended.last),
            (self.head() + 1, self.head() + events.len() as u64),
            "positions of an acknowledged append"
        );
        self.events.extend(events);
    }

    /// Checks that `got` is exactly these events; `case` names the test
    /// case in failure messages.
    fn check(&self, got: &[RecordedEvent], case: &str) {
        assert_eq!(
            got.len(),
            self.events.len(),
            "{case}: number of events (expected {} acknowledged)",
            self.events.len()
        );
        for (i, (got, want)) in got.iter().zip(&self.events).enumerate() {
            assert_eq!(got.position, i as u64 + 1, "{case}");
            check_event(got, want).unwrap_or_else(|e| panic!("{case}: {e}"));
        }
    }

    /// Checks the store against these events, allowing `maybe` (a batch
    /// whose append failed) to follow them whole or not at all; returns
    /// what the store holds.
    fn check_store(&self, store: &Store, maybe: Option<&[NewEvent]>, case: &str) -> Expected {
        let got = read_all(store).unwrap_or_else(|e| panic!("{case}: read failed: {e}"));
        assert_eq!(store.head(), got.len() as u64, "{case}");
        let mut holds = self.clone();
        if let Some(maybe) = maybe
            && got.len() > self.events.len()
        {
            holds.events.extend(maybe.iter().cloned());
        }
        holds.check(&got, case);
        holds
    }
}

/// How the store is reopened after the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reopen {
    /// Close, clear the faults, reopen.
    Clean,
    /// Close, clear the faults, lose power, reopen.
    AfterCrash(CrashMode),
    /// Close, clear the faults, reopen, append, lose power, reopen: what
    /// the recovered store showed and acknowledged must have been durable.
    ThenCrash,
    /// Close, clear the faults, reopen, lose power at once, reopen: what
    /// the recovered store showed must have been durable.
    ShowThenCrash,
}

/// Appends workload batches until one fails (at most `limit`), recording
/// the acknowledged ones; returns the failed batch and its error.
fn append_until_failure(
    store: &Store,
    expected: &mut Expected,
    first_seq: u32,
    limit: u32,
) -> Option<(Vec<NewEvent>, Error)> {
    for seq in first_seq..first_seq + limit {
        let events = batch(SEED, 0, seq);
        match store.append(events.clone()) {
            Ok(appended) => expected.acknowledged(appended, events),
            Err(e) => return Some((events, e)),
        }
    }
    None
}

/// What became of one injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// It never fired within the appends the case makes.
    NotFired,
    /// It failed an append.
    Failed,
    /// It fired in tidying work and failed no append.
    Absorbed,
}

/// One case: `kind` fails with `fault` at its `nth` occurrence from after
/// a few acknowledged appends (`partly`: after taking effect in part).
fn fault_during_appends(
    kind: OpKind,
    fault: Fault,
    nth: u64,
    partly: bool,
    reopen: Reopen,
) -> Outcome {
    let case = format!("{kind:?} #{nth} fails with {fault:?} (partly {partly}), reopen {reopen:?}");
    let fs = FaultFs::new();
    let store = open(&fs);
    let mut expected = Expected::default();
    assert!(append_until_failure(&store, &mut expected, 0, 3).is_none());

    let before = fs.op_count(kind);
    if partly {
        fs.fail_nth_partly(kind, nth, fault);
    } else {
        fs.fail_nth(kind, nth, fault);
    }
    let outcome = match append_until_failure(&store, &mut expected, 3, 40) {
        None if fs.op_count(kind) - before < nth => return Outcome::NotFired,
        None => Outcome::Absorbed,
        Some((_failed, error)) => {
            // The count includes the syncs of the rollback, if any.
            assert!(
                fs.op_count(kind) - before >= nth,
                "{case}: failed before the fault"
            );
            match &error {
                Error::Io { source, .. } => {
                    assert_eq!(source.raw_os_error(), Some(errno(fault)), "{case}: {error}")
                }
                other => panic!("{case}: the failed append returned {other:?}"),
            }
            if store.is_poisoned() {
                // Appends refused, reads unaffected.
                for seq in [1000, 1001] {
                    match store.append(batch(SEED, 0, seq)) {
                        Err(Error::Poisoned) => {}
                        other => panic!("{case}: append to a poisoned store returned {other:?}"),
                    }
                }
            } else {
                // The batch failed before the log wrote any of it: the store
                // goes on, at the position the failed batch would have had.
                let events = batch(SEED, 0, 1000);
                let appended = store
                    .append(events.clone())
                    .unwrap_or_else(|e| panic!("{case}: append after the failure: {e}"));
                expected.acknowledged(appended, events);
            }
            Outcome::Failed
        }
    };
    assert_eq!(store.head(), expected.head(), "{case}");
    expected.check(&read_all(&store).unwrap(), &case);
    let last = store
        .read(
            &gesta::Query::all(),
            gesta::ReadOptions::backwards().limit(1),
        )
        .unwrap()
        .next()
        .expect("an event")
        .unwrap();
    assert_eq!(last.position, expected.head(), "{case}");
    let _ = store.close();
    drop(store);
    fs.clear_faults();

    if let Reopen::AfterCrash(mode) = reopen {
        fs.crash(mode);
    }
    let store = open(&fs);
    assert!(!store.is_poisoned(), "{case}");
    // Exactly the acknowledged events: the failed batch is not there.
    let mut holds = expected.check_store(&store, None, &case);
    if reopen == Reopen::ShowThenCrash {
        drop(store);
        fs.crash(CrashMode::DropUnsynced);
        let store = open(&fs);
        holds.check(&read_all(&store).unwrap(), &case);
        return outcome;
    }
    // The recovered store takes appends again.
    let events = batch(SEED, 1, 0);
    let appended = store
        .append(events.clone())
        .unwrap_or_else(|e| panic!("{case}: append after reopen failed: {e}"));
    holds.acknowledged(appended, events);
    if reopen == Reopen::ThenCrash {
        drop(store);
        fs.crash(CrashMode::DropUnsynced);
    } else {
        store.close().unwrap();
        drop(store);
    }
    let store = open(&fs);
    holds.check(&read_all(&store).unwrap(), &case);
    assert!(!store.is_poisoned());
    store.close().unwrap();
    outcome
}

/// Runs the cases for `kind`: the fault at each of its first `occurrences`
/// occurrences, both errors, without and (for the operations that can)
/// with a partial effect; returns how many failed an append.
fn matrix(kind: OpKind, occurrences: u64, reopen: Reopen) -> usize {
    let (mut failed, mut absorbed) = (0, 0);
    let partial = [false, true];
    let partial = match kind {
        OpKind::Write | OpKind::Sync | OpKind::SetLen => &partial[..],
        _ => &partial[..1],
    };
    for &partly in partial {
        for fault in [Fault::Eio, Fault::Enospc] {
            for nth in 1..=occurrences {
                match fault_during_appends(kind, fault, nth, partly, reopen) {
                    Outcome::NotFired => {
                        panic!("{kind:?} #{nth} (partly {partly}): the fault never fired")
                    }
                    Outcome::Failed => failed += 1,
                    Outcome::Absorbed => absorbed += 1,
                }
            }
        }
    }
    assert!(
        failed > 0 || kind == OpKind::SetLen,
        "{kind:?}: no fault failed an append"
    );
    let _ = absorbed;
    failed
}

/// The write path's operations, with how many of their occurrences to hit:
/// the group write and `fdatasync` occur on every append and at rollover
/// (segment header, trim sync, offset table), so a dozen covers both; the
/// others occur only at rollover.
const WRITE_PATH: [(OpKind, u64); 5] = [
    (OpKind::Write, 12),
    (OpKind::Sync, 12),
    (OpKind::SetLen, 2),
    (OpKind::Open, 3),
    (OpKind::SyncDir, 3),
];

#[test]
fn write_path_faults_then_clean_reopen() {
    for (kind, n) in WRITE_PATH {
        matrix(kind, n, Reopen::Clean);
    }
}

#[test]
fn write_path_faults_then_power_loss() {
    for (i, (kind, n)) in WRITE_PATH.into_iter().enumerate() {
        matrix(kind, n, Reopen::AfterCrash(CrashMode::DropUnsynced));
        matrix(
            kind,
            n,
            Reopen::AfterCrash(CrashMode::Torn { seed: i as u64 }),
        );
    }
}

/// After a failed `fdatasync` or directory sync, the data or the segment
/// the reopened store reads may exist only in the page cache. The reopened
/// store shows those events and acknowledges new appends on top of them,
/// so recovery must make them durable first — a power loss afterwards must
/// lose nothing the reopened store showed or acknowledged.
#[test]
fn write_path_faults_then_reopen_then_power_loss() {
    for (kind, n) in WRITE_PATH {
        matrix(kind, n, Reopen::ShowThenCrash);
        matrix(kind, n, Reopen::ThenCrash);
    }
}

/// A full disk at every append from some point on: each append fails with
/// `Error::Io` and appends nothing; once space is back, the same store
/// (never poisoned when the failure came before the log wrote anything)
/// or a reopened one takes appends again, and the failed batches are
/// nowhere — the retry a user makes after a reported failure does not
/// append the events twice.
#[test]
fn a_full_disk_fails_appends_definitely() {
    let mut usable = 0;
    for from in 1..=12 {
        let case = format!("no space from write #{from}");
        let fs = FaultFs::new();
        let store = open(&fs);
        let mut expected = Expected::default();
        assert!(append_until_failure(&store, &mut expected, 0, 3).is_none());
        fs.fail_from(OpKind::Write, from, Fault::Enospc);
        let (failed, error) =
            append_until_failure(&store, &mut expected, 3, 100).expect("the disk filled up");
        assert!(matches!(error, Error::Io { .. }), "{case}: {error:?}");
        for seq in 200..205 {
            assert!(store.append(batch(SEED, 0, seq)).is_err(), "{case}");
        }
        fs.clear_faults();
        let store = if store.is_poisoned() {
            drop(store);
            open(&fs)
        } else {
            usable += 1;
            store
        };
        expected.check(&read_all(&store).unwrap(), &case);
        // The user retries the batch that was reported failed.
        let appended = store.append(failed.clone()).unwrap();
        expected.acknowledged(appended, failed);
        drop(store);
        fs.crash(CrashMode::DropUnsynced);
        let store = open(&fs);
        expected.check(&read_all(&store).unwrap(), &case);
    }
    assert!(usable > 0, "no case left the store usable");
}

/// When the failed batch cannot be cut off the log again, the answer is
/// `Error::OutcomeUnknown` (never a plain I/O error), whose message tells
/// the user to check before retrying; a reopen finds the batch whole or
/// not at all.
#[test]
fn a_failed_rollback_is_an_unknown_outcome() {
    for (partly, crash) in [(false, false), (true, false), (true, true), (false, true)] {
        let case = format!("sync fails (partly {partly}), the cut fails, crash {crash}");
        let fs = FaultFs::new();
        let store = open(&fs);
        let mut expected = Expected::default();
        assert!(append_until_failure(&store, &mut expected, 0, 3).is_none());
        if partly {
            fs.fail_nth_partly(OpKind::Sync, 1, Fault::Eio);
        } else {
            fs.fail_nth(OpKind::Sync, 1, Fault::Eio);
        }
        fs.fail_from(OpKind::SetLen, 1, Fault::Eio);
        let (failed, error) =
            append_until_failure(&store, &mut expected, 3, 1).expect("the append failed");
        match &error {
            Error::OutcomeUnknown { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(errno(Fault::Eio)), "{case}");
                let message = error.to_string();
                assert!(message.contains("may or may not"), "{case}: {message}");
                assert!(message.contains("same event ids"), "{case}: {message}");
            }
            other => panic!("{case}: {other:?}"),
        }
        assert!(store.is_poisoned(), "{case}");
        drop(store);
        fs.clear_faults();
        if crash {
            fs.crash(CrashMode::DropUnsynced);
        }
        let store = open(&fs);
        let holds = expected.check_store(&store, Some(&failed), &case);
        if partly {
            // The sync made the batch durable before it failed.
            assert_eq!(
                holds.head(),
                expected.head() + failed.len() as u64,
                "{case}"
            );
        }
    }
}

/// The smallest case of the above: the directory sync that makes a new
/// segment durable fails at rollover; the reopened store keeps appending to
/// that segment, whose directory entry was never made durable.
#[test]
fn failed_dir_sync_at_rollover_then_reopen_keeps_appends_durable() {
    let fs = FaultFs::new();
    let store = open(&fs);
    let mut expected = Expected::default();
    fs.fail_nth(OpKind::SyncDir, 1, Fault::Eio);
    let (failed, _) = append_until_failure(&store, &mut expected, 0, 40).expect("a rollover");
    drop(store);
    fs.clear_faults();

    let store = open(&fs);
    let case = "failed dir sync at rollover";
    let mut holds = expected.check_store(&store, Some(&failed), case);
    let events = batch(SEED, 1, 0);
    holds.acknowledged(store.append(events.clone()).unwrap(), events);
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let store = open(&fs);
    holds.check(&read_all(&store).unwrap(), case);
}

// ---------------------------------------------------------------------------
// Failed opens.

/// The states a store can be opened from.
#[derive(Clone, Copy, Debug)]
enum Prepared {
    /// Closed cleanly, several segments.
    Clean,
    /// The last record of the newest segment damaged (recovery cuts it off
    /// as a torn write, writing zeros over it).
    TornTail,
    /// A rollover failed after creating the next segment but before writing
    /// its header (recovery removes it and syncs the directory).
    PartialSegment,
}

/// Builds the state (deterministically) and returns the file system.
fn prepare(state: Prepared) -> FaultFs {
    let fs = FaultFs::new();
    let store = open(&fs);
    let mut expected = Expected::default();
    match state {
        Prepared::Clean | Prepared::TornTail => {
            assert!(append_until_failure(&store, &mut expected, 0, 12).is_none());
            store.close().unwrap();
        }
        Prepared::PartialSegment => {
            // A dry run finds the append that rolls over. Its first write is
            // the new segment's header (the rollover syncs the old segment,
            // then creates the new one, before anything else is written).
            let dry = FaultFs::new();
            let dry_store = open(&dry);
            let start = dry.op_count(OpKind::Write);
            let (roll_seq, header_write) = (0..)
                .find_map(|seq| {
                    let opens = dry.op_count(OpKind::Open);
                    let writes = dry.op_count(OpKind::Write);
                    dry_store.append(batch(SEED, 0, seq)).unwrap();
                    (dry.op_count(OpKind::Open) > opens).then_some((seq, writes - start + 1))
                })
                .unwrap();
            // The header write fails, and so does removing the file again:
            // an empty segment file is left behind.
            fs.fail_nth(OpKind::Write, header_write, Fault::Enospc);
            fs.fail_nth(OpKind::Remove, 1, Fault::Eio);
            let failed = append_until_failure(&store, &mut expected, 0, roll_seq + 1);
            assert!(failed.is_some(), "the header write did not fail");
            assert_eq!(expected.head(), {
                let mut n = 0;
                for seq in 0..roll_seq {
                    n += batch(SEED, 0, seq).len() as u64;
                }
                n
            });
            let _ = store.close();
        }
    }
    drop(store);
    fs.clear_faults();
    if let Prepared::TornTail = state {
        let wal = Path::new(DIR).join("wal");
        let mut names = fs.list(&wal).unwrap();
        names.sort();
        let newest = wal.join(names.last().unwrap());
        let bytes = fs.durable_contents(&newest).unwrap();
        let last = bytes.iter().rposition(|&b| b != 0).unwrap();
        fs.corrupt(&newest, last as u64, 0x5a);
    }
    fs
}

const ALL_KINDS: [OpKind; 13] = [
    OpKind::Open,
    OpKind::Read,
    OpKind::Write,
    OpKind::Sync,
    OpKind::SetLen,
    OpKind::Map,
    OpKind::Rename,
    OpKind::Remove,
    OpKind::List,
    OpKind::Exists,
    OpKind::SyncDir,
    OpKind::CreateDir,
    OpKind::Lock,
];

/// Any operation failing while the store opens makes the open fail with
/// that I/O error (never a silent success, never corruption), and leaves the
/// directory as openable as before, with the same contents.
#[test]
fn failed_open_leaves_the_directory_openable() {
    let mut fired = 0;
    for state in [
        Prepared::Clean,
        Prepared::TornTail,
        Prepared::PartialSegment,
    ] {
        // What a fault-free open of this state holds.
        let reference = {
            let fs = prepare(state);
            let store = open(&fs);
            let report = store.recovery_report().clone();
            match state {
                Prepared::Clean => assert!(report.torn_tail.is_none()),
                Prepared::TornTail => assert!(report.torn_tail.is_some(), "{report:?}"),
                Prepared::PartialSegment => {
                    assert!(report.removed_partial_segment.is_some(), "{report:?}")
                }
            }
            read_all(&store).unwrap()
        };
        assert!(reference.len() > 5);

        for kind in ALL_KINDS {
            for fault in [Fault::Eio, Fault::Enospc] {
                for nth in 1..=3 {
                    let case = format!("{state:?}: {kind:?} #{nth} fails with {fault:?}");
                    let fs = prepare(state);
                    let before = fs.op_count(kind);
                    fs.fail_nth(kind, nth, fault);
                    let result = Store::open_with(DIR, options(&fs));
                    let hit = fs.op_count(kind) - before >= nth;
                    fs.clear_faults();
                    match (hit, result) {
                        (true, Err(Error::Io { source, .. })) => {
                            assert_eq!(source.raw_os_error(), Some(errno(fault)), "{case}");
                            fired += 1;
                        }
                        (true, Err(e)) => panic!("{case}: open failed with {e:?}"),
                        (true, Ok(_)) => panic!("{case}: the fault fired but open succeeded"),
                        (false, Err(e)) => panic!("{case}: open failed without a fault: {e}"),
                        (false, Ok(store)) => drop(store),
                    }
                    let store = open(&fs);
                    let got = read_all(&store).unwrap();
                    assert_eq!(got, reference, "{case}: contents after reopen");
                    let events = batch(SEED, 2, 0);
                    let appended = store.append(events.clone()).unwrap();
                    assert_eq!(appended.first, reference.len() as u64 + 1, "{case}");
                    store.close().unwrap();
                    drop(store);
                    // And the result is durable.
                    fs.crash(CrashMode::DropUnsynced);
                    let store = open(&fs);
                    let got = read_all(&store).unwrap();
                    assert_eq!(got[..reference.len()], reference[..], "{case}");
                    assert_eq!(got.len(), reference.len() + events.len(), "{case}");
                }
            }
        }
    }
    assert!(fired > 40, "only {fired} faults hit an open");
}

/// The simplest failed opens, spelled out: the first `list` of the log
/// directory and the first read (recovery maps the segment) of a segment.
#[test]
fn failed_list_or_read_during_open() {
    for (kind, fault) in [(OpKind::List, Fault::Eio), (OpKind::Map, Fault::Enospc)] {
        let fs = prepare(Prepared::Clean);
        fs.fail_nth(kind, 1, fault);
        match Store::open_with(DIR, options(&fs)) {
            Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(errno(fault))),
            other => panic!("{kind:?}: open returned {other:?}"),
        }
        let store = open(&fs);
        assert_eq!(read_all(&store).unwrap().len() as u64, store.head());
        assert!(store.head() > 5);
        store.append(batch(SEED, 3, 0)).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The directory lock.

#[test]
fn a_second_open_of_the_same_directory_is_locked_out() {
    let fs = FaultFs::new();
    let first = open(&fs);
    let events = batch(SEED, 0, 0);
    let appended = first.append(events.clone()).unwrap();

    match Store::open_with(DIR, options(&fs)) {
        Err(Error::Locked { path }) => assert_eq!(path, Path::new(DIR)),
        other => panic!("second open returned {other:?}"),
    }
    // The refused open disturbed nothing.
    assert!(!first.is_poisoned());
    let more = batch(SEED, 0, 1);
    let next = first.append(more.clone()).unwrap();
    assert_eq!(next.first, appended.last + 1);
    // Another directory on the same file system is independent.
    let other = Store::open_with("/elsewhere", options(&fs)).unwrap();
    other.append(batch(SEED, 9, 0)).unwrap();

    first.close().unwrap();
    assert!(matches!(
        first.append(batch(SEED, 0, 2)),
        Err(Error::Closed)
    ));
    // Closing releases the lock even while the handle lives on.
    let second = open(&fs);
    drop(first);
    let mut expected = Expected::default();
    expected.acknowledged(appended, events);
    expected.acknowledged(next, more);
    expected.check(&read_all(&second).unwrap(), "reopen after close");

    // Dropping the last handle releases the lock too.
    drop(second);
    let third = open(&fs);
    expected.check(&read_all(&third).unwrap(), "reopen after drop");
    // A clone keeps the store (and its lock) alive.
    let clone = third.clone();
    drop(third);
    assert!(matches!(
        Store::open_with(DIR, options(&fs)),
        Err(Error::Locked { .. })
    ));
    drop(clone);
    open(&fs);
    drop(other);
}

// ---------------------------------------------------------------------------
// Concurrent appends.

/// Four writers append at once (so failures hit groups of several
/// appends) while one write or sync fails once. After a reopen every
/// acknowledged batch is at its positions and the store holds nothing
/// else: no batch that was answered with an error.
#[test]
fn concurrent_appends_with_a_one_shot_fault() {
    let cases = [
        (OpKind::Write, 3),
        (OpKind::Write, 9),
        (OpKind::Sync, 4),
        (OpKind::Sync, 11),
        (OpKind::SetLen, 1),
        (OpKind::SyncDir, 1),
    ];
    let mut hit = 0;
    // Group formation depends on thread timing: repeat each case.
    for (round, (kind, nth)) in (0..5).flat_map(|round| cases.map(|c| (round, c))) {
        let case = format!("{kind:?} #{nth} (round {round})");
        let fs = FaultFs::new();
        let store = open(&fs);
        fs.fail_nth(kind, nth, Fault::Eio);
        let results: Vec<(u32, u32, Result<Appended, Error>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u32)
                .map(|thread| {
                    let store = store.clone();
                    scope.spawn(move || {
                        (0..10u32)
                            .map(|seq| (thread, seq, store.append(batch(SEED, thread, seq))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let io_failures = results
            .iter()
            .filter(|(_, _, r)| matches!(r, Err(Error::Io { .. })))
            .count();
        // A fault in tidying a sealed segment fails no append.
        hit += usize::from(io_failures > 0);
        for (thread, seq, r) in &results {
            match r {
                Ok(_) | Err(Error::Poisoned) => {}
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(errno(Fault::Eio)), "{case}")
                }
                Err(e) => panic!("{case}: batch {seq} of thread {thread}: {e:?}"),
            }
        }
        let acknowledged: Vec<_> = results
            .iter()
            .filter_map(|(t, s, r)| r.as_ref().ok().map(|a| (*t, *s, *a)))
            .collect();
        let events: u64 = acknowledged
            .iter()
            .map(|(_, _, a)| a.last - a.first + 1)
            .sum();
        let head = acknowledged.iter().map(|a| a.2.last).max().unwrap_or(0);
        assert_eq!(store.head(), head, "{case}: head after the failure");
        assert_eq!(events, head, "{case}: positions are gapless");
        let _ = store.close();
        drop(store);
        fs.clear_faults();

        // After a reopen: every acknowledged batch at its positions, and
        // nothing else — no failed batch.
        let store = open(&fs);
        let got = read_all(&store).unwrap();
        assert_eq!(
            got.len() as u64,
            head,
            "{case}: a failed batch is in the store"
        );
        for (thread, seq, appended) in &acknowledged {
            let events = batch(SEED, *thread, *seq);
            for (i, want) in events.iter().enumerate() {
                let at = appended.first + i as u64;
                let got = got
                    .get(at as usize - 1)
                    .unwrap_or_else(|| panic!("{case}: acknowledged position {at} is missing"));
                check_event(got, want).unwrap_or_else(|e| panic!("{case}: {e}"));
            }
        }
        store.append(batch(SEED, 9, 0)).unwrap();
    }
    assert!(hit >= 10, "only {hit} cases failed an append");
}

/// A retry of a batch committed earlier (the same event ids), admitted
/// into a group whose write then fails, is answered with the batch's
/// positions, not with the group's `Error::Io`: that error promises that
/// nothing of the batch is in the store and never will be, and its events
/// are. The new batch of the group fails as it must (and a retry in a
/// later group may be refused as the poisoned log refuses every append,
/// which promises nothing). Whether the retries
/// share the new batch's group is up to the committer's timing, so the
/// rounds are many; answered wrongly, a retry fails the test whenever it
/// does.
#[test]
fn a_retry_in_a_failing_group_is_answered_with_its_positions() {
    for round in 0..50 {
        let fs = FaultFs::new();
        let store = open(&fs);
        let original = vec![NewEvent::new("T", "a").id(1), NewEvent::new("T", "b").id(2)];
        let first = store.append(original.clone()).unwrap();
        fs.fail_from(OpKind::Write, 1, Fault::Eio);
        let pending: Vec<_> = (0..21)
            .map(|k| {
                let events = match k {
                    10 => vec![NewEvent::new("T", "new")],
                    _ => original.clone(),
                };
                (k == 10, store.append_async(events, Default::default()))
            })
            .collect();
        for (new, answer) in pending {
            let answer = futures::executor::block_on(answer);
            match (new, answer) {
                (true, Err(Error::Io { .. } | Error::Poisoned)) => {}
                (false, Ok(appended)) => assert_eq!(appended, first, "round {round}"),
                // In a later group, once the failure poisoned the log:
                // refused as every append is, which says nothing of it.
                (false, Err(Error::Poisoned)) => {}
                (new, other) => panic!("round {round}: new batch {new}: {other:?}"),
            }
        }
        let _ = store.close();
        drop(store);
        fs.clear_faults();
        let store = open(&fs);
        assert_eq!(store.append(original).unwrap(), first, "round {round}");
        assert_eq!(
            store.head(),
            2,
            "round {round}: only the original is in the store"
        );
    }
}
