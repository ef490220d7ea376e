//! Crash exploration on the fault-injecting file system.
//!
//! Each run opens a store on a fresh [`FaultFs`], arms
//! [`FaultFs::crash_after`] so that the machine goes down after *n*
//! state-changing operations (every operation fails with `EIO` from then
//! on), runs a workload of batch appends, simulates the power loss
//! ([`CrashMode::DropUnsynced`] or [`CrashMode::Torn`], alternately), reopens
//! and checks what recovery left:
//!
//! - every append that returned `Ok` is present at exactly the positions it
//!   was given, with identical type, tags, data, metadata, id and stream
//!   (the event data says which thread, batch and index it is, and the rest
//!   of the event is regenerated from the seed and compared byte for byte);
//! - no batch is partly present: a batch is either absent or has all its
//!   events, in order, at consecutive positions;
//! - positions run from 1 to the head without a gap; no event comes from
//!   anywhere but the workload; a batch whose append failed may be present
//!   only after every acknowledged one;
//! - stream revisions run 0, 1, 2, … per stream in position order;
//! - the store takes appends again and survives another close and reopen.
//!
//! Two explorations: **systematic** (one writer, a deterministic workload,
//! a crash after every state-changing operation of it in turn, both crash
//! modes, plus crashes during the recovery that follows a torn tail) and
//! **random** (four writers, crash points, modes and workloads drawn from a
//! seeded generator; some runs crash a second time, during recovery; some
//! run in `Buffered` durability, where acknowledged appends may be lost but
//! only as a suffix). Besides: a targeted test of crashes while recovery
//! cuts a torn tail, and runs through [`ObfuscatedFs`] (which transforms
//! every byte on the disk) proving that nothing reaches the disk around the
//! I/O trait.
//!
//! Environment:
//!
//! - `GESTA_CRASH_POINTS=<n>`: run `n` random crash scenarios instead of
//!   the default 800, with a master seed taken from the clock (printed), and
//!   run the systematic exploration over a workload three times longer
//!   (120 batches instead of 40, about three times the crash points, each
//!   run three times longer: a minute or more in debug mode).
//! - `GESTA_CRASH_SEED=<seed>` (decimal or `0x` hex): replay the one random
//!   run with that seed; a failing run prints it. Thread interleavings are
//!   not replayed, but the workload, crash point and crash modes are.
//!
//! By default (CI) the systematic exploration runs about 540 scenarios
//! (790 crash points) and the random one 800 (about 1,000 crash points),
//! deterministically, in about ten seconds in debug mode.
//! Each test prints a summary line (run with `--nocapture` to see it):
//! crash points explored, appends acknowledged, torn tails cut, …

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use gesta::clock::ManualClock;
use gesta::io::FileSystem;
use gesta::io::fault::{CrashMode, Fault, FaultFs, OpKind};
use gesta::io::obfuscated::ObfuscatedFs;
use gesta::{
    Appended, Compression, Durability, Error, Options, Query, ReadOptions, RecordedEvent, Store,
};
use gesta_tests::{
    EventKey, SplitMix64, batch, check_event, derive_seed, env_u64, expected_event, read_all,
};

/// Postings after which the memtable is flushed to an index run.
const MEMTABLE_POSTINGS: usize = 48;
const DIR: &str = "/store";
/// Small segments and preallocation steps, so that a short run rolls over
/// and extends its segments many times.
const SEGMENT_SIZE: u64 = 16 << 10;
const PREALLOCATE: u64 = 4 << 10;
/// The writer "thread" number of the batches appended after recovery.
const AFTER_THREAD: u32 = 1000;
/// The prefix of the tags the workload adds after the fact; the workload's
/// events never carry such a tag of their own.
const AMEND_PREFIX: &str = "amended:";
/// The default master seed of the random exploration.
const DEFAULT_MASTER_SEED: u64 = 0x6765_7374_615f_6372;

/// The disk a run uses: the fault-injecting file system that crashes, and
/// the file system the store sees (the same, or a wrapper around it).
#[derive(Clone, Debug)]
struct Disk {
    fault: FaultFs,
    fs: Arc<dyn FileSystem>,
}

impl Disk {
    fn plain() -> Disk {
        let fault = FaultFs::new();
        Disk {
            fs: Arc::new(fault.clone()),
            fault,
        }
    }

    fn obfuscated() -> Disk {
        let fault = FaultFs::new();
        Disk {
            fs: Arc::new(ObfuscatedFs::new(fault.clone())),
            fault,
        }
    }

    /// The options of a run that does not compress segments.
    fn options(&self, durability: Durability, clock: &Arc<ManualClock>) -> Options {
        self.options_for(durability, false, clock)
    }

    fn options_for(
        &self,
        durability: Durability,
        compress: bool,
        clock: &Arc<ManualClock>,
    ) -> Options {
        let mut options = Options::default()
            .fs(self.fs.clone())
            .segment_size(SEGMENT_SIZE)
            .preallocate(PREALLOCATE)
            .durability(durability)
            .clock(clock.clone());
        // Tiny memtables, so that index runs are written and the MANIFEST
        // switched many times within a short workload — and crash points
        // land inside those too.
        options.memtable_postings = MEMTABLE_POSTINGS;
        options.close_flush_postings = 1;
        if compress {
            // Every sealed segment rewritten compressed in the background,
            // in small blocks, so that crash points land inside rewrites.
            options.compression = Some(Compression {
                level: 1,
                block_size: 1024,
                dictionary_size: 256,
            });
            options.block_cache_bytes = 8 << 10;
            options.merge_bytes_per_sec = None;
        }
        options
    }
}

/// One run: the workload, where to crash, and how.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    /// Seeds the workload's events.
    seed: u64,
    threads: u32,
    /// Batches each thread appends (it stops earlier at its first error).
    batches: u32,
    /// Mutating operations (counted from the empty disk, store open
    /// included) after which the machine goes down; `None`: never.
    crash_after: Option<u64>,
    mode: CrashMode,
    /// A second crash during the first reopen: after this many mutating
    /// operations, with this mode.
    recovery_crash: Option<(u64, CrashMode)>,
    durability: Durability,
    /// Whether sealed segments are compressed in the background.
    compress: bool,
}

/// One append of the workload and what it returned.
#[derive(Clone, Debug)]
struct Attempt {
    thread: u32,
    seq: u32,
    len: usize,
    result: Result<Appended, String>,
    /// Whether the batch must be present after recovery: acknowledged in
    /// `Sync` mode, or acknowledged and followed by a clean close.
    required: bool,
}

/// A lifecycle operation the workload made on one of its acknowledged
/// batches, and what it returned: a retroactive tag on its first and last
/// events, or the redaction of its first event.
#[derive(Clone, Debug)]
struct Amendment {
    /// The tag added; `None` for a redaction.
    tag: Option<String>,
    positions: Vec<u64>,
    /// The batch, for a redaction: its events are known by their data,
    /// which the redacted one no longer has.
    key: EventKey,
    result: Result<(), String>,
}

impl Amendment {
    fn tag(thread: u32, seq: u32, len: usize, appended: &Appended) -> Amendment {
        let mut positions = vec![appended.first, appended.last];
        positions.dedup();
        Amendment {
            tag: Some(format!("{AMEND_PREFIX}{thread}:{seq}")),
            positions,
            key: EventKey {
                thread,
                seq,
                index: 0,
                len: len as u16,
            },
            result: Err("not attempted".into()),
        }
    }

    fn redaction(thread: u32, seq: u32, len: usize, appended: &Appended) -> Amendment {
        Amendment {
            tag: None,
            positions: vec![appended.first],
            key: EventKey {
                thread,
                seq,
                index: 0,
                len: len as u16,
            },
            result: Err("not attempted".into()),
        }
    }

    fn apply(mut self, store: &Store) -> Amendment {
        let target = gesta::lifecycle::Target::Positions(self.positions.clone());
        let n = self.positions.len() as u64;
        self.result = match &self.tag {
            Some(tag) => store
                .add_tags(&target, std::slice::from_ref(tag))
                .map(|added| assert_eq!(added.tagged, n)),
            None => store
                .redact(&target)
                .map(|redacted| assert_eq!(redacted.redacted, n)),
        }
        .map_err(|e| e.to_string());
        self
    }
}

/// What one run observed.
#[derive(Clone, Debug, Default)]
struct Outcome {
    /// Mutating operations of the first phase (open, workload, close).
    ops: u64,
    acknowledged: usize,
    /// Failed appends whose batch was nevertheless recovered (whole).
    failed_but_present: usize,
    /// Acknowledged appends lost (allowed in `Buffered` mode only).
    lost: usize,
    open_failed: bool,
    torn_tails: usize,
    partial_segments: usize,
    /// Mutating operations of the reopen that `recover_and_check` does,
    /// up to its return.
    recovery_ops: u64,
    /// Events recovered after the crash(es).
    recovered: u64,
    /// Compressed segments found after the crash(es).
    compressed_segments: usize,
    /// Retroactive tag operations acknowledged, and failed ones found whole.
    amendments: usize,
    failed_amendments_present: usize,
}

/// Phase 1: open, run the workload from `threads` writers, close.
fn workload(
    disk: &Disk,
    s: &Scenario,
    clock: &Arc<ManualClock>,
    outcome: &mut Outcome,
) -> (Vec<Attempt>, Vec<Amendment>) {
    let store = match Store::open_with(DIR, disk.options_for(s.durability, s.compress, clock)) {
        Ok(store) => store,
        Err(e) => {
            assert!(
                s.crash_after.is_some(),
                "open failed without an injected crash: {e}"
            );
            assert!(matches!(e, Error::Io { .. }), "open failed with {e:?}");
            outcome.open_failed = true;
            return (Vec::new(), Vec::new());
        }
    };
    let (mut attempts, mut amendments) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..s.threads)
            .map(|thread| {
                let store = store.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut amended = Vec::new();
                    for seq in 0..s.batches {
                        let events = batch(s.seed, thread, seq);
                        let len = events.len();
                        let result = store.append(events);
                        clock.advance(1 + u64::from(seq % 7));
                        let failed = result.is_err();
                        if let Ok(a) = &result {
                            assert_eq!(a.last + 1 - a.first, len as u64, "positions of {a:?}");
                            // Every third batch is tagged after the fact, the
                            // first event of every fourth redacted.
                            if seq % 3 == 1 {
                                amended.push(Amendment::tag(thread, seq, len, a).apply(&store));
                            }
                            if seq % 4 == 2 {
                                let r = Amendment::redaction(thread, seq, len, a);
                                amended.push(r.apply(&store));
                            }
                        }
                        mine.push(Attempt {
                            thread,
                            seq,
                            len,
                            required: result.is_ok() && s.durability == Durability::Sync,
                            result: result.map_err(|e| e.to_string()),
                        });
                        if failed {
                            break;
                        }
                    }
                    (mine, amended)
                })
            })
            .collect();
        let mut attempts = Vec::new();
        let mut amendments = Vec::new();
        for h in handles {
            let (mine, amended) = h.join().expect("writer thread panicked");
            attempts.extend(mine);
            amendments.extend(amended);
        }
        (attempts, amendments)
    });
    let _ = store.close();
    drop(store);
    if s.crash_after.is_none() || !disk.fault.is_down() {
        // No crash happened during the run: every failure is a bug, and a
        // clean close makes even `Buffered` appends durable.
        for a in &mut attempts {
            assert!(a.result.is_ok(), "append failed without a crash: {a:?}");
            a.required = true;
        }
        for a in &mut amendments {
            assert!(a.result.is_ok(), "add_tags failed without a crash: {a:?}");
        }
    }
    (attempts, amendments)
}

/// Every index answer must equal a scan of the log: each type, tag and
/// stream query forwards and backwards, `read_last`, and stream revisions.
fn check_index(store: &Store, events: &[RecordedEvent]) -> Result<(), String> {
    let mut types = BTreeMap::<&str, Vec<u64>>::new();
    let mut tags = BTreeMap::<&str, Vec<u64>>::new();
    let mut streams = BTreeMap::<&str, Vec<u64>>::new();
    for e in events {
        types.entry(&e.event_type).or_default().push(e.position);
        for t in &e.tags {
            let list = tags.entry(t).or_default();
            if list.last() != Some(&e.position) {
                list.push(e.position);
            }
        }
        if let Some(s) = &e.stream {
            streams.entry(s).or_default().push(e.position);
        }
    }
    let queries = types
        .iter()
        .map(|(t, p)| (Query::event_type(*t), p))
        .chain(tags.iter().map(|(t, p)| (Query::tag(*t), p)));
    for (query, expected) in queries {
        let forwards: Vec<u64> = store
            .read(&query, ReadOptions::forwards())
            .unwrap()
            .map(|e| e.map(|e| e.position))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{query:?}: {e}"))?;
        if &forwards != expected {
            return Err(format!(
                "{query:?}: the index answers {forwards:?}, the log {expected:?}"
            ));
        }
        let backwards: Vec<u64> = store
            .read(&query, ReadOptions::backwards())
            .unwrap()
            .map(|e| e.map(|e| e.position))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{query:?}: {e}"))?;
        if !backwards.iter().rev().eq(expected.iter()) {
            return Err(format!(
                "{query:?} backwards: the index answers {backwards:?}"
            ));
        }
    }
    for (stream, positions) in &streams {
        let revision = store
            .stream_revision(stream)
            .map_err(|e| format!("stream_revision({stream}): {e}"))?;
        if revision != Some(positions.len() as u64 - 1) {
            return Err(format!(
                "stream {stream}: revision {revision:?} but {} events in the log",
                positions.len()
            ));
        }
    }
    Ok(())
}

/// Checks everything the store holds against the attempts.
fn verify(
    store: &Store,
    seed: u64,
    attempts: &[Attempt],
    amendments: &[Amendment],
    outcome: &mut Outcome,
) -> Result<(), String> {
    let events = read_all(store).map_err(|e| format!("reading the recovered store failed: {e}"))?;
    let head = store.head();
    if events.len() as u64 != head {
        return Err(format!(
            "head is {head} but {} events were read",
            events.len()
        ));
    }
    for (i, e) in events.iter().enumerate() {
        if e.position != i as u64 + 1 {
            return Err(format!(
                "event {i} has position {}, expected {}",
                e.position,
                i + 1
            ));
        }
    }

    check_index(store, &events)?;

    // Content of every event, and the batches they form.
    // A redacted event has no data to say which it is: the redaction that
    // emptied it does.
    let redactions: HashMap<u64, EventKey> = amendments
        .iter()
        .filter(|a| a.tag.is_none())
        .map(|a| (a.positions[0], a.key))
        .collect();
    let mut groups: BTreeMap<(u32, u32), Vec<(u64, EventKey)>> = BTreeMap::new();
    for e in &events {
        let redacted = e.data.is_empty() && e.metadata.is_empty();
        let key = match redactions.get(&e.position) {
            Some(&key) if redacted => Some(key),
            _ => EventKey::decode(&e.data),
        }
        .ok_or_else(|| format!("position {}: data is not from the workload", e.position))?;
        let mut want = expected_event(seed, key)
            .ok_or_else(|| format!("position {}: {key:?} is no workload event", e.position))?;
        if redacted {
            want.data = bytes::Bytes::new();
            want.metadata = bytes::Bytes::new();
        }
        // The tags added after the fact follow the event's own; they are
        // checked against the amendments below.
        let mut own = e.clone();
        own.tags.retain(|t| !t.starts_with(AMEND_PREFIX));
        if own.tags.len() < e.tags.len()
            && !e.tags[own.tags.len()..]
                .iter()
                .all(|t| t.starts_with(AMEND_PREFIX))
        {
            return Err(format!(
                "position {}: added tags are not after the event's own: {:?}",
                e.position, e.tags
            ));
        }
        check_event(&own, &want)?;
        groups
            .entry((key.thread, key.seq))
            .or_default()
            .push((e.position, key));
    }
    let mut present: HashMap<(u32, u32), (u64, u64)> = HashMap::new();
    for (&(thread, seq), members) in &groups {
        let len = usize::from(members[0].1.len);
        let first = members[0].0;
        let whole = members.len() == len
            && members
                .iter()
                .enumerate()
                .all(|(i, (p, k))| usize::from(k.index) == i && *p == first + i as u64);
        if !whole {
            let at: Vec<_> = members.iter().map(|(p, k)| (*p, k.index)).collect();
            return Err(format!(
                "batch {seq} of thread {thread} ({len} events) is partly present: (position, index) {at:?}"
            ));
        }
        present.insert((thread, seq), (first, first + len as u64 - 1));
    }

    // Against what was appended.
    let by_key: HashMap<(u32, u32), &Attempt> =
        attempts.iter().map(|a| ((a.thread, a.seq), a)).collect();
    for (&(thread, seq), &(first, last)) in &present {
        let a = by_key.get(&(thread, seq)).ok_or_else(|| {
            format!("batch {seq} of thread {thread} at {first}..={last} was never appended")
        })?;
        if a.len as u64 != last + 1 - first {
            return Err(format!(
                "batch {seq} of thread {thread} has the wrong length"
            ));
        }
    }
    // Appends made after recovery come after everything; the ordering
    // checks below are about the crashed run.
    let crashed_run = || attempts.iter().filter(|a| a.thread != AFTER_THREAD);
    let mut max_acked_last = 0;
    let mut min_lost_first = u64::MAX;
    let mut max_present_acked_last = 0;
    for a in crashed_run() {
        let here = present.get(&(a.thread, a.seq)).copied();
        match (&a.result, here) {
            (Ok(app), Some((first, last))) => {
                if (first, last) != (app.first, app.last) {
                    return Err(format!(
                        "acknowledged batch {} of thread {} was given {}..={} but recovered at {first}..={last}",
                        a.seq, a.thread, app.first, app.last
                    ));
                }
                max_acked_last = max_acked_last.max(app.last);
                max_present_acked_last = max_present_acked_last.max(app.last);
            }
            (Ok(app), None) => {
                if a.required {
                    return Err(format!(
                        "acknowledged batch {} of thread {} ({}..={}) is missing; head is {head}",
                        a.seq, a.thread, app.first, app.last
                    ));
                }
                outcome.lost += 1;
                max_acked_last = max_acked_last.max(app.last);
                min_lost_first = min_lost_first.min(app.first);
            }
            (Err(_), Some(_)) => outcome.failed_but_present += 1,
            (Err(_), None) => {}
        }
    }
    if max_present_acked_last > min_lost_first {
        return Err(format!(
            "acknowledged events up to {max_present_acked_last} survived but earlier ones from {min_lost_first} were lost"
        ));
    }
    for a in crashed_run().filter(|a| a.result.is_err()) {
        if let Some(&(first, _)) = present.get(&(a.thread, a.seq))
            && first <= max_acked_last
        {
            return Err(format!(
                "failed batch {} of thread {} recovered at {first}, before acknowledged position {max_acked_last}",
                a.seq, a.thread
            ));
        }
    }

    // Stream revisions and timestamps.
    let mut next_revision: HashMap<&str, u64> = HashMap::new();
    let mut last_timestamp = 0;
    for e in &events {
        if let Some(stream) = e.stream.as_deref() {
            let next = next_revision.entry(stream).or_insert(0);
            if e.revision != Some(*next) {
                return Err(format!(
                    "position {}: stream {stream} revision {:?}, expected {next}",
                    e.position, e.revision
                ));
            }
            *next += 1;
        }
        if e.timestamp_micros < last_timestamp {
            return Err(format!("position {}: timestamp goes backwards", e.position));
        }
        last_timestamp = e.timestamp_micros;
    }

    let mut backwards: Vec<RecordedEvent> = store
        .read(&Query::all(), ReadOptions::backwards())
        .unwrap()
        .collect::<gesta::Result<_>>()
        .map_err(|e| format!("backward read failed: {e}"))?;
    backwards.reverse();
    if backwards != events {
        return Err("a backward read disagrees with the forward read".into());
    }
    check_amendments(store, &events, amendments, outcome)?;
    outcome.recovered = head;
    Ok(())
}

/// Every acknowledged `add_tags` is there — its tag at exactly its
/// positions, even in `Buffered` mode, where it made its events durable —
/// and a failed one is there whole or not at all; no other tag was added;
/// every acknowledged redaction's event is there without data or metadata;
/// the audit trail lists what is there, numbered without a gap.
fn check_amendments(
    store: &Store,
    events: &[RecordedEvent],
    amendments: &[Amendment],
    outcome: &mut Outcome,
) -> Result<(), String> {
    let mut found = BTreeMap::<&str, Vec<u64>>::new();
    for e in events {
        for t in e.tags.iter().filter(|t| t.starts_with(AMEND_PREFIX)) {
            found.entry(t).or_default().push(e.position);
        }
    }
    // The redaction a position's emptiness is owed to: the last one made
    // on it (a failed one may name a position whose batch a crash lost and
    // a later batch took, and was redacted in its turn).
    let owner: HashMap<u64, EventKey> = amendments
        .iter()
        .filter(|a| a.tag.is_none())
        .map(|a| (a.positions[0], a.key))
        .collect();
    let mut present = 0;
    for a in amendments {
        let Some(tag) = &a.tag else {
            // A redaction: acknowledged, its event is there and empty; failed,
            // it may be either.
            let p = a.positions[0];
            let e = events.get(p as usize - 1).filter(|e| e.position == p);
            let erased = e.is_some_and(|e| e.data.is_empty() && e.metadata.is_empty());
            match (&a.result, e) {
                (Ok(()), Some(_)) if erased => present += 1,
                (Ok(()), _) => {
                    return Err(format!("acknowledged redaction of {p} lost: {e:?}"));
                }
                (Err(_), Some(_)) if erased && owner.get(&p) == Some(&a.key) => {
                    present += 1;
                    outcome.failed_amendments_present += 1;
                }
                (Err(_), _) => {}
            }
            continue;
        };
        let here = found.remove(tag.as_str());
        match (&a.result, here) {
            (Ok(()), Some(p)) if p == a.positions => present += 1,
            (Ok(()), got) => {
                return Err(format!(
                    "acknowledged tag {tag} at {:?} recovered at {got:?}",
                    a.positions
                ));
            }
            (Err(_), Some(p)) if p == a.positions => {
                present += 1;
                outcome.failed_amendments_present += 1;
            }
            (Err(_), Some(p)) => {
                return Err(format!(
                    "failed tag {tag} at {:?} is partly present: {p:?}",
                    a.positions
                ));
            }
            (Err(_), None) => {}
        }
    }
    if let Some((tag, p)) = found.into_iter().next() {
        return Err(format!("tag {tag} at {p:?} was never added"));
    }
    let trail = store
        .audit_log(0, 10_000)
        .map_err(|e| format!("audit_log: {e}"))?;
    if trail.len() != present {
        return Err(format!(
            "the audit trail has {} entries, the store shows {present} operations",
            trail.len()
        ));
    }
    if trail
        .iter()
        .enumerate()
        .any(|(i, e)| e.sequence != i as u64 + 1)
    {
        return Err(format!("the audit trail is not numbered 1..: {trail:?}"));
    }
    outcome.amendments = amendments.iter().filter(|a| a.result.is_ok()).count();
    Ok(())
}

/// Opens the store after the crash(es) and checks it; then appends, closes,
/// reopens and checks again.
fn recover_and_check(
    disk: &Disk,
    s: &Scenario,
    clock: &Arc<ManualClock>,
    mut attempts: Vec<Attempt>,
    mut amendments: Vec<Amendment>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let options = disk.options_for(s.durability, s.compress, clock);
    let before = disk.fault.mutating_ops();
    let store = Store::open_with(DIR, options.clone())
        .map_err(|e| format!("reopen after the crash failed: {e}"))?;
    outcome.recovery_ops = disk.fault.mutating_ops() - before;
    let report = store.recovery_report().clone();
    outcome.torn_tails += usize::from(report.torn_tail.is_some());
    outcome.partial_segments += usize::from(report.removed_partial_segment.is_some());
    outcome.compressed_segments = disk
        .fault
        .list(&Path::new(DIR).join("wal"))
        .map_err(|e| format!("listing the log: {e}"))?
        .iter()
        .filter(|n| n.ends_with(".zseg"))
        .count();
    if report.last_position != store.head() {
        return Err(format!(
            "recovery report {report:?} disagrees with head {}",
            store.head()
        ));
    }
    verify(&store, s.seed, &attempts, &amendments, outcome)?;
    if store.is_poisoned() {
        return Err("a freshly recovered store is poisoned".into());
    }

    // The recovered store takes appends, and they survive a clean reopen.
    for seq in 0..3 {
        let head = store.head();
        let events = batch(s.seed, AFTER_THREAD, seq);
        let len = events.len();
        let appended = store
            .append(events)
            .map_err(|e| format!("append after recovery failed: {e}"))?;
        if appended.first != head + 1 || appended.last != head + len as u64 {
            return Err(format!(
                "append after recovery at head {head} got {appended:?}"
            ));
        }
        let amended = match seq {
            1 => Some(Amendment::tag(AFTER_THREAD, seq, len, &appended)),
            2 => Some(Amendment::redaction(AFTER_THREAD, seq, len, &appended)),
            _ => None,
        };
        if let Some(amended) = amended {
            let amended = amended.apply(&store);
            if let Err(e) = &amended.result {
                return Err(format!("a lifecycle operation after recovery failed: {e}"));
            }
            amendments.push(amended);
        }
        attempts.push(Attempt {
            thread: AFTER_THREAD,
            seq,
            len,
            result: Ok(appended),
            required: true,
        });
    }
    store
        .close()
        .map_err(|e| format!("close after recovery failed: {e}"))?;
    drop(store);
    let store = Store::open_with(DIR, options).map_err(|e| format!("second reopen failed: {e}"))?;
    if let Some(torn) = &store.recovery_report().torn_tail {
        return Err(format!("a clean close left a torn tail: {torn:?}"));
    }
    let mut second = Outcome::default();
    verify(&store, s.seed, &attempts, &amendments, &mut second)?;
    if second.lost != outcome.lost {
        return Err("events were lost between two clean reopens".into());
    }
    store
        .close()
        .map_err(|e| format!("final close failed: {e}"))?;
    Ok(())
}

/// Runs one scenario on `disk` to the end.
fn run_on(disk: &Disk, s: &Scenario) -> Result<Outcome, String> {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let mut outcome = Outcome::default();
    if let Some(n) = s.crash_after {
        disk.fault.crash_after(n);
    }
    let (attempts, amendments) = workload(disk, s, &clock, &mut outcome);
    outcome.ops = disk.fault.mutating_ops();
    outcome.acknowledged = attempts.iter().filter(|a| a.result.is_ok()).count();
    disk.fault.crash(s.mode);

    if let Some((k, mode)) = s.recovery_crash {
        disk.fault.crash_after(k);
        match Store::open_with(DIR, disk.options_for(s.durability, s.compress, &clock)) {
            Ok(store) => {
                outcome.torn_tails += usize::from(store.recovery_report().torn_tail.is_some());
                outcome.partial_segments +=
                    usize::from(store.recovery_report().removed_partial_segment.is_some());
                let _ = store.close();
            }
            Err(Error::Io { .. }) => {}
            Err(e) => return Err(format!("reopen that crashed failed with {e:?}")),
        }
        disk.fault.crash(mode);
    }
    recover_and_check(disk, s, &clock, attempts, amendments, &mut outcome)?;
    Ok(outcome)
}

/// Prints how to replay a run if it panics.
struct ReplayHint(String);

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("crash test failed; {}", self.0);
        }
    }
}

/// Totals over an exploration.
#[derive(Debug, Default)]
struct Totals {
    runs: u64,
    crash_points: u64,
    acknowledged: u64,
    failed_but_present: u64,
    lost: u64,
    torn_tails: u64,
    partial_segments: u64,
    open_failures: u64,
    clean: u64,
    compressed_segments: u64,
    amendments: u64,
    failed_amendments_present: u64,
}

impl Totals {
    fn add(&mut self, o: &Outcome, crash_points: u64, crashed: bool) {
        self.runs += 1;
        self.crash_points += crash_points;
        self.acknowledged += o.acknowledged as u64;
        self.failed_but_present += o.failed_but_present as u64;
        self.lost += o.lost as u64;
        self.torn_tails += o.torn_tails as u64;
        self.partial_segments += o.partial_segments as u64;
        self.open_failures += u64::from(o.open_failed);
        self.clean += u64::from(!crashed);
        self.compressed_segments += o.compressed_segments as u64;
        self.amendments += o.amendments as u64;
        self.failed_amendments_present += o.failed_amendments_present as u64;
    }

    fn summary(&self, name: &str, started: Instant) -> String {
        format!(
            "{name}: {} runs, {} crash points explored, {} appends acknowledged, {} failed appends recovered whole, \
             {} acknowledged appends lost (Buffered), {} torn tails cut, {} partial segments removed, \
             {} crashes during open, {} runs finished before their crash point, \
             {} compressed segments recovered, {} lifecycle operations (tags, redactions) acknowledged, \
             {} failed ones recovered whole, {:.1?}",
            self.runs,
            self.crash_points,
            self.acknowledged,
            self.failed_but_present,
            self.lost,
            self.torn_tails,
            self.partial_segments,
            self.open_failures,
            self.clean,
            self.compressed_segments,
            self.amendments,
            self.failed_amendments_present,
            started.elapsed()
        )
    }

    /// The exploration must have exercised what it claims to.
    fn assert_not_vacuous(&self) {
        assert!(
            self.acknowledged > 0,
            "no append was ever acknowledged: {self:?}"
        );
        assert!(
            self.torn_tails > 0,
            "no run ever had a torn tail to cut: {self:?}"
        );
        assert!(
            self.failed_but_present + self.lost < self.acknowledged,
            "{self:?}"
        );
        assert!(
            self.amendments > 0,
            "no tag operation was acknowledged: {self:?}"
        );
    }
}

fn long_run() -> bool {
    env_u64("GESTA_CRASH_POINTS").is_some()
}

// ---------------------------------------------------------------------------
// Systematic exploration.

fn systematic_scenario(batches: u32, crash_after: Option<u64>, mode: CrashMode) -> Scenario {
    Scenario {
        seed: 0x5eed,
        threads: 1,
        batches,
        crash_after,
        mode,
        recovery_crash: None,
        durability: Durability::Sync,
        compress: false,
    }
}

/// A crash after every mutating operation of a single-writer workload, in
/// both modes; and, for each crash that left a torn tail or a partial
/// segment, a second crash after every mutating operation of the recovery.
#[test]
fn systematic_crash_points() {
    let started = Instant::now();
    let batches = if long_run() { 120 } else { 40 };
    let uncrashed = run_on(
        &Disk::plain(),
        &systematic_scenario(batches, None, CrashMode::DropUnsynced),
    )
    .unwrap_or_else(|e| panic!("uncrashed run: {e}"));
    let total = uncrashed.ops;
    assert_eq!(uncrashed.acknowledged, batches as usize);
    assert!(uncrashed.torn_tails == 0 && uncrashed.lost == 0);

    let mut totals = Totals::default();
    let mut second_level = Vec::new();
    for n in 1..=total {
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
            let s = systematic_scenario(batches, Some(n), mode);
            let _hint = ReplayHint(format!("systematic scenario {s:?}"));
            let disk = Disk::plain();
            let o = run_on(&disk, &s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            if o.torn_tails + o.partial_segments > 0 {
                second_level.push((s, o.recovery_ops));
            }
            totals.add(&o, 1, true);
        }
    }

    // Crashes during the recoveries that rewrite part of the log (cutting a
    // torn tail, removing a partial segment). Each first crash is replayed
    // (the workload is deterministic), then the reopen is crashed after
    // each of its own mutating operations.
    let mut recovery_points = 0;
    for (first, ops) in second_level {
        for k in 1..=ops {
            for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: k ^ 0xabc }] {
                let s = Scenario {
                    recovery_crash: Some((k, mode)),
                    ..first
                };
                let _hint = ReplayHint(format!("systematic scenario {s:?}"));
                let o = run_on(&Disk::plain(), &s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
                recovery_points += 1;
                totals.add(&o, 2, true);
            }
        }
    }
    println!(
        "{} (workload of {batches} batches = {total} mutating ops; {recovery_points} of the runs also crashed during recovery)",
        totals.summary("systematic crash exploration", started)
    );
    totals.assert_not_vacuous();
    assert!(recovery_points > 0, "no recovery was crashed: {totals:?}");
    assert!(
        totals.open_failures > 0,
        "no crash ever hit the first open: {totals:?}"
    );
}

/// A disk whose log ends in a torn write: three acknowledged batches, then
/// one whose write completed but whose sync did not, torn by the crash.
/// Returns the disk and the acknowledged events, or `None` if the crash with
/// `seed` happened not to tear that record.
fn torn_tail_disk(seed: u64) -> Option<(Disk, Vec<RecordedEvent>)> {
    let setup = || {
        let disk = Disk::plain();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
        let store = Store::open_with(DIR, disk.options(Durability::Sync, &clock)).unwrap();
        for seq in 0..3 {
            store.append(batch(1, 0, seq)).unwrap();
        }
        (disk, store)
    };
    let build = || {
        let (disk, store) = setup();
        let acknowledged = read_all(&store).unwrap();
        // The record is written, its sync fails, and so does cutting it
        // off again: it stays in the log, unsynced.
        disk.fault.fail_from(OpKind::Sync, 1, Fault::Eio);
        disk.fault.fail_from(OpKind::SetLen, 1, Fault::Eio);
        let e = store.append(batch(1, 0, 3)).unwrap_err();
        assert!(matches!(e, gesta::Error::OutcomeUnknown { .. }), "{e:?}");
        drop(store);
        disk.fault.clear_faults();
        disk.fault.crash(CrashMode::Torn { seed });
        (disk, acknowledged)
    };
    // Probe whether this seed tears the record (the probe's open cuts the
    // tail, so the caller gets a second, identical build).
    let (probe, _) = build();
    let clock = Arc::new(ManualClock::new(0));
    let store = Store::open_with(DIR, probe.options(Durability::Sync, &clock)).unwrap();
    let torn = store.recovery_report().torn_tail.is_some();
    drop(store);
    torn.then(build)
}

/// The smallest case of a crash during recovery: the reopen that cuts a
/// torn tail off (by writing zeros over it) is itself interrupted by a
/// power loss, at each of its mutating operations, and its own writes may
/// be torn too. The next open must still succeed with every acknowledged
/// event.
#[test]
fn crash_while_recovery_cuts_a_torn_tail() {
    let seeds: Vec<u64> = (0..64)
        .filter(|&seed| torn_tail_disk(seed).is_some())
        .take(3)
        .collect();
    assert!(!seeds.is_empty(), "no seed tore the last record");
    let clock = Arc::new(ManualClock::new(0));
    for seed in seeds {
        let ops = {
            let (disk, _) = torn_tail_disk(seed).unwrap();
            let before = disk.fault.mutating_ops();
            drop(Store::open_with(DIR, disk.options(Durability::Sync, &clock)).unwrap());
            disk.fault.mutating_ops() - before
        };
        for k in 1..=ops {
            for tear in 0..8 {
                let mode = if tear == 0 {
                    CrashMode::DropUnsynced
                } else {
                    CrashMode::Torn { seed: tear }
                };
                let case =
                    format!("tail torn by seed {seed}, recovery crashed after {k} ops, {mode:?}");
                let (disk, acknowledged) = torn_tail_disk(seed).unwrap();
                disk.fault.crash_after(k);
                let _ = Store::open_with(DIR, disk.options(Durability::Sync, &clock));
                disk.fault.crash(mode);
                let store = Store::open_with(DIR, disk.options(Durability::Sync, &clock))
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(read_all(&store).unwrap(), acknowledged, "{case}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Random exploration.

/// The scenario of random run `seed`; everything about it follows from the
/// seed.
fn random_scenario(seed: u64) -> Scenario {
    let mut rng = SplitMix64::new(seed);
    let threads = 4;
    let batches = rng.range(3, 8) as u32;
    // Roughly the mutating operations of the whole run: four writers
    // sharing commit groups make about ten per batch each (writes, syncs,
    // and eight per rollover), so most crash points fall inside the run and
    // about one in ten after its end.
    // Every third batch is tagged after the fact and every fourth has an
    // event redacted: a journal write and sync each, and the journal's
    // creation (five operations) once.
    let amended = u64::from(threads * (batches.div_ceil(3) + (batches + 1) / 4));
    let estimate = u64::from(threads * batches) * 5 / 2 + amended * 2 + 9;
    let crash_after = Some(rng.range(1, estimate));
    let mode = if rng.chance(1, 2) {
        CrashMode::DropUnsynced
    } else {
        CrashMode::Torn {
            seed: rng.next_u64(),
        }
    };
    let recovery_crash = if rng.chance(1, 4) {
        let mode = if rng.chance(1, 2) {
            CrashMode::DropUnsynced
        } else {
            CrashMode::Torn {
                seed: rng.next_u64(),
            }
        };
        Some((rng.range(1, 8), mode))
    } else {
        None
    };
    let durability = if rng.chance(1, 8) {
        Durability::Buffered
    } else {
        Durability::Sync
    };
    let compress = rng.chance(1, 3);
    Scenario {
        seed,
        threads,
        batches,
        crash_after,
        mode,
        recovery_crash,
        durability,
        compress,
    }
}

fn run_random(seed: u64, totals: &mut Totals) {
    let s = random_scenario(seed);
    let _hint = ReplayHint(format!("replay with GESTA_CRASH_SEED={seed:#x} ({s:?})"));
    let disk = Disk::plain();
    let o = run_on(&disk, &s).unwrap_or_else(|e| panic!("GESTA_CRASH_SEED={seed:#x}: {s:?}: {e}"));
    let crashed = s.crash_after.is_some_and(|n| n <= o.ops);
    totals.add(&o, 1 + u64::from(s.recovery_crash.is_some()), crashed);
}

/// Random crash points under four concurrent writers.
#[test]
fn random_crash_points() {
    let started = Instant::now();
    let mut totals = Totals::default();
    if let Some(seed) = env_u64("GESTA_CRASH_SEED") {
        run_random(seed, &mut totals);
        println!(
            "{}",
            totals.summary(&format!("replayed random run {seed:#x}"), started)
        );
        return;
    }
    let (points, master) = match env_u64("GESTA_CRASH_POINTS") {
        Some(points) => {
            let clock = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            (points, derive_seed(clock, &[]))
        }
        None => (800, DEFAULT_MASTER_SEED),
    };
    for i in 0..points {
        run_random(derive_seed(master, &[i]), &mut totals);
    }
    // Whether a crash finds a compressed segment depends on how far the
    // background compression got, which the machine's load moves: more
    // runs (as many again at most) until one does, so that the check below
    // asks for coverage, not for luck.
    let mut more = 0;
    while totals.compressed_segments == 0 && more < points {
        run_random(derive_seed(master, &[points + more]), &mut totals);
        more += 1;
    }
    println!(
        "{} (master seed {master:#x})",
        totals.summary("random crash exploration", started)
    );
    totals.assert_not_vacuous();
    assert!(
        totals.compressed_segments > 0,
        "no run recovered a compressed segment: {totals:?}"
    );
}

// ---------------------------------------------------------------------------
// Through the obfuscating file system.

/// A workload, a clean reopen and a read-back through [`ObfuscatedFs`]:
/// every byte on the inner disk is transformed, so anything that reached
/// the disk around the I/O trait would read garbage or leave plaintext.
#[test]
fn obfuscated_fs_round_trip() {
    let disk = Disk::obfuscated();
    let s = systematic_scenario(30, None, CrashMode::DropUnsynced);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let mut outcome = Outcome::default();
    let (attempts, amendments) = workload(&disk, &s, &clock, &mut outcome);
    assert_eq!(attempts.len(), 30);
    assert_eq!(amendments.len(), 17);

    let store = Store::open_with(DIR, disk.options_for(s.durability, s.compress, &clock)).unwrap();
    assert!(
        store.recovery_report().segments > 3,
        "{:?}",
        store.recovery_report()
    );
    verify(&store, s.seed, &attempts, &amendments, &mut outcome).unwrap();
    assert!(outcome.recovered > 60);
    let first = read_all(&store).unwrap().remove(0);
    store.close().unwrap();
    drop(store);

    // The inner disk holds neither the segment magic nor event data, nor
    // the journal's magic or an added tag.
    let wal = Path::new(DIR).join("wal");
    let inner = &disk.fault;
    let journal = inner
        .open(
            &Path::new(DIR).join("LIFECYCLE"),
            gesta::io::OpenMode::Existing,
        )
        .unwrap();
    let raw = gesta::io::read_all(journal.as_ref()).unwrap();
    assert!(!contains(&raw, b"GESTAJNL"), "the journal is plaintext");
    assert!(
        !contains(&raw, AMEND_PREFIX.as_bytes()),
        "the journal holds a plaintext tag"
    );
    let names = inner.list(&wal).unwrap();
    assert!(names.len() > 3, "{names:?}");
    for name in &names {
        let file = inner
            .open(&wal.join(name), gesta::io::OpenMode::Existing)
            .unwrap();
        let raw = gesta::io::read_all(file.as_ref()).unwrap();
        assert!(
            !contains(&raw, b"GESTAWAL"),
            "{name} holds a plaintext header"
        );
        assert!(
            !contains(&raw, &first.data[..]),
            "{name} holds plaintext data"
        );
        assert!(
            !contains(&raw, first.event_type.as_bytes()),
            "{name} holds a plaintext type"
        );
    }
    // A store opened on the inner disk directly sees garbage and refuses it.
    let direct = Store::open_with(
        DIR,
        disk.options_for(s.durability, s.compress, &clock)
            .fs(Arc::new(inner.clone())),
    );
    assert!(
        matches!(direct, Err(Error::Corruption { .. })),
        "{direct:?}"
    );

    // Through the wrapper everything is still there, also after a crash.
    inner.crash(CrashMode::DropUnsynced);
    recover_and_check(&disk, &s, &clock, attempts, amendments, &mut outcome).unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Crash runs through [`ObfuscatedFs`]: the power-loss model applies to the
/// transformed bytes (a torn write keeps a prefix of them), and recovery,
/// reading through the wrapper, must still tell a torn record from the
/// zeros after it. A single writer keeps the runs deterministic; every
/// seventh mutating operation of the workload is a crash point, alternately
/// dropping and tearing the unsynced writes.
#[test]
fn obfuscated_fs_crash_runs() {
    let mut totals = Totals::default();
    let started = Instant::now();
    let total = run_on(
        &Disk::obfuscated(),
        &systematic_scenario(15, None, CrashMode::DropUnsynced),
    )
    .unwrap_or_else(|e| panic!("uncrashed run: {e}"))
    .ops;
    // Every crash point, in both modes: a sparser choice can miss every
    // point that tears a write whenever the write path gains an operation.
    let points = (2..=total)
        .flat_map(|n| [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }].map(|m| (n, m)));
    for (n, mode) in points {
        let s = systematic_scenario(15, Some(n), mode);
        let _hint = ReplayHint(format!("obfuscated scenario {s:?}"));
        let o = run_on(&Disk::obfuscated(), &s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        totals.add(&o, 1, true);
    }
    println!("{}", totals.summary("obfuscated crash runs", started));
    totals.assert_not_vacuous();
}
