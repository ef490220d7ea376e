//! Removal on the engine under crashes: a workload of appends, removals,
//! stream deletions and truncations and retention rules runs on a
//! fault-injecting file system that loses power after its n-th mutating
//! operation, for every n. Recovered, the store must equal the reference
//! store after some prefix of the workload's operations that holds every
//! operation acknowledged before the crash: no acknowledged removal (or
//! append) is lost, none is half applied, and nothing is removed that no
//! operation asked for. Compactions in the workload cover the merge that
//! purges removed events' postings from the index runs (the listings
//! compared after every crash count them).

use std::sync::Arc;

use gesta::clock::ManualClock;
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::lifecycle::Target;
use gesta::{
    EventStore, Listing, MemoryStore, NewEvent, Options, Query, ReadOptions, RecordedEvent,
    RetentionRule, Store,
};

const DIR: &str = "/store";
const STREAMS: [&str; 3] = ["s0", "s1", "s2"];

fn options(fs: &FaultFs) -> Options {
    Options::default()
        .fs(Arc::new(fs.clone()))
        .segment_size(16 << 10)
        .preallocate(4 << 10)
        .clock(Arc::new(ManualClock::new(1_700_000_000_000_000)))
        // No background enforcement: only the workload's own calls.
        .retention_interval(std::time::Duration::from_secs(3600))
}

/// One operation of the workload.
#[derive(Clone, Debug)]
enum Op {
    Append(Vec<NewEvent>),
    Remove(Target),
    Delete(&'static str),
    Truncate(&'static str, u64),
    /// A rule keeping the stream's newest `n` events.
    Retain(&'static str, u64),
    Enforce,
    FlushIndex,
    /// `Store::compact`: retention enforced, every run merged and purged
    /// of removed events' postings, erased bytes rewritten.
    Compact,
}

fn workload() -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..30u64 {
        let batch = (0..=i % 3)
            .map(|k| {
                NewEvent::new(
                    if k == 0 { "A" } else { "B" },
                    format!("{{\"i\":{i},\"k\":{k}}}"),
                )
                .tag(format!("t{}", (i + k) % 4))
                .stream(STREAMS[((i + k) % 3) as usize])
            })
            .collect();
        ops.push(Op::Append(batch));
        match i % 6 {
            1 => ops.push(Op::Remove(Target::Query(Query::tag(format!("t{}", i % 4))))),
            2 => ops.push(Op::Truncate(STREAMS[(i % 3) as usize], i / 2)),
            3 => {
                ops.push(Op::Retain(STREAMS[(i % 3) as usize], 2));
                ops.push(Op::Enforce);
            }
            4 => ops.push(Op::Remove(Target::Positions(vec![i, i + 3]))),
            5 => ops.push(Op::Delete(STREAMS[(i % 3) as usize])),
            _ if i == 12 => ops.push(Op::Compact),
            // A removal between two compactions with nothing appended: the
            // second rewrites the one run there is.
            _ if i == 24 => ops.extend([
                Op::Compact,
                Op::Remove(Target::Query(Query::event_type("B"))),
                Op::Compact,
            ]),
            _ => ops.push(Op::FlushIndex),
        }
    }
    ops
}

fn apply<S: EventStore>(s: &S, op: &Op) -> gesta::Result<()> {
    match op {
        Op::Append(events) => s.append(events.clone()).map(|_| ()),
        Op::Remove(target) => s.remove(target).map(|_| ()),
        Op::Delete(stream) => s.delete_stream(stream).map(|_| ()),
        Op::Truncate(stream, before) => s.truncate_stream(stream, *before).map(|_| ()),
        Op::Retain(stream, n) => s.set_retention(&RetentionRule::stream(*stream).max_count(*n)),
        Op::Enforce => s.enforce_retention().map(|_| ()),
        Op::FlushIndex => Ok(()),
        // What compacting changes that reads can see: the rules enforced.
        Op::Compact => s.enforce_retention().map(|_| ()),
    }
}

/// What must be equal: every event (without its commit time), the head,
/// each stream's revision and stream read, the listings, and how many
/// operations the audit trail records.
#[derive(Debug, PartialEq)]
struct State {
    events: Vec<RecordedEvent>,
    head: u64,
    streams: Vec<(Option<u64>, Vec<u64>)>,
    listings: Vec<Vec<gesta::Listed>>,
    audited: usize,
}

fn state<S: EventStore>(s: &S) -> State {
    let events = s
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            e.timestamp_micros = 0;
            e
        })
        .collect();
    let streams = STREAMS
        .iter()
        .map(|name| {
            let read = s
                .read_stream(name, ReadOptions::forwards())
                .unwrap()
                .map(|e| e.unwrap().position)
                .collect();
            (s.stream_revision(name).unwrap(), read)
        })
        .collect();
    let listings = [Listing::Streams, Listing::Types, Listing::Tags]
        .into_iter()
        .map(|what| s.list(what, "", None, 1000).unwrap())
        .collect();
    State {
        events,
        head: s.head().unwrap(),
        streams,
        listings,
        audited: s.audit_log(0, 10_000).unwrap().len(),
    }
}

/// The reference's state after each prefix of `ops` (index k: after the
/// first k).
fn prefixes(ops: &[Op]) -> Vec<State> {
    let model = MemoryStore::new();
    let mut out = vec![state(&model)];
    for op in ops {
        apply(&model, op).unwrap();
        out.push(state(&model));
    }
    out
}

/// Runs the workload on `fs` until an operation fails; how many
/// succeeded.
fn run(fs: &FaultFs, ops: &[Op]) -> usize {
    let Ok(store) = Store::open_with(DIR, options(fs)) else {
        return 0;
    };
    let mut done = 0;
    for op in ops {
        let result = match op {
            Op::FlushIndex => store.flush_index(),
            Op::Compact => store.compact(),
            op => apply(&store, op),
        };
        if result.is_err() {
            break;
        }
        done += 1;
    }
    done
}

#[test]
fn a_crash_at_any_point_keeps_every_acknowledged_removal_whole() {
    let ops = workload();
    let want = prefixes(&ops);
    // The whole workload without a crash, and how many operations it makes.
    let fs = FaultFs::new();
    assert_eq!(run(&fs, &ops), ops.len());
    let total = fs.mutating_ops();
    let manifest = gesta_compaction::manifest::Manifest::load(&fs, std::path::Path::new(DIR))
        .unwrap()
        .expect("a MANIFEST");
    assert!(
        manifest.purged.sequence > 0,
        "a compaction purged removed events' postings"
    );
    let store = Store::open_with(DIR, options(&fs)).unwrap();
    assert_eq!(state(&store), want[ops.len()]);
    assert!(
        want[ops.len()].events.len() < want[ops.len()].head as usize,
        "the workload removes something"
    );
    drop(store);

    let mut matched_partial = 0;
    for n in 1..=total {
        let mode = if n % 2 == 0 {
            CrashMode::DropUnsynced
        } else {
            CrashMode::Torn { seed: n }
        };
        let fs = FaultFs::new();
        fs.crash_after(n);
        let acknowledged = run(&fs, &ops);
        fs.crash(mode);
        let store = Store::open_with(DIR, options(&fs))
            .unwrap_or_else(|e| panic!("crash after {n} of {total}: reopen: {e}"));
        let got = state(&store);
        // The recovered state is the reference's after some prefix that
        // holds every acknowledged operation (the one in flight may or may
        // not have made it, whole).
        let k = (acknowledged..=ops.len().min(acknowledged + 1))
            .find(|&k| want[k] == got)
            .unwrap_or_else(|| {
                panic!(
                    "crash after {n} of {total} ({acknowledged} operations acknowledged): \
                     the store matches no prefix holding them: {got:#?}"
                )
            });
        matched_partial += usize::from(k > acknowledged);
        // And it goes on: the rest of the workload runs on the recovered
        // store to the same end.
        for op in &ops[k..] {
            match op {
                Op::FlushIndex => store.flush_index().unwrap(),
                Op::Compact => store.compact().unwrap(),
                op => apply(&store, op).unwrap_or_else(|e| panic!("after {n}: {op:?}: {e}")),
            }
        }
        assert_eq!(state(&store), want[ops.len()], "crash after {n}: the rest");
    }
    eprintln!("{total} crash points");
    // Some crash fell after an operation was durable but before it was
    // acknowledged: that case was exercised, not assumed.
    assert!(
        matched_partial > 0,
        "no crash hit an unacknowledged durable operation"
    );
}
