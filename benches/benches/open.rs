//! Open times (O1's shape): how long `Store::open_with` takes for stores of
//! 100,000 and 1,000,000 standard events, depending on how the store was
//! left. Opening must cost time in proportion to the unflushed tail of the
//! log, not to the whole log.
//!
//! For each size, starting from a cached store whose index is wholly in
//! on-disk runs (`gesta_benches::cached_store`: built in batches of 1,000,
//! `flush_index`ed, closed cleanly), each scenario works on a copy:
//!
//! - `a clean close`: the copy as it is.
//! - `b flush + 5k, clean close`: 5,000 more events, one per append in
//!   `Sync` mode, then a clean close (which leaves a memtable that small to
//!   be rebuilt from the log on open).
//! - `c crash (copy while open)`: the same 5,000 appends, then the store's
//!   files copied while it is still open — the image a crashed process
//!   leaves, since every acknowledged append was synced.
//! - `d crash (child killed)`: a child process (this executable) opens the
//!   copy in `Sync` mode and appends one event at a time until it has done
//!   5,000 and is killed (SIGKILL) in the middle of its appends.
//! - `e crash, no flush_index`: a store built afresh the same way but never
//!   `flush_index`ed, copied while open — the tail is whatever the automatic
//!   memtable flush (`memtable_postings`) left unflushed.
//! - `f index lost`: a copy without its MANIFEST, so the whole log is
//!   replayed (the largest tail there can be).
//!
//! Each copy is opened once (the figure that counts: the first open after
//! the event), then `REPEATS` more times for a median; those opens use
//! `close_flush_postings = usize::MAX` so closing never changes what the
//! next open has to do. The copies are synced before the first open and
//! their pages are in the page cache (warm opens).
//!
//! Run with `cargo bench -p gesta-benches --bench open`; `--quick` measures
//! the 100,000-event store only.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gesta::{Durability, Options, Store};
use gesta_benches::{
    EventGen, bench_root, build_options, cached_store, copy_dir, dir_size, fill_store, fs_type,
    scratch_dir, wait_for_index_flush,
};

/// Events appended after the flushed base in scenarios b–d.
const TAIL: u64 = 5_000;
/// Opens after the first one, for the median.
const REPEATS: usize = 4;
/// The environment variable that makes this executable the child of
/// scenario d: its value is the store directory.
const CHILD_ENV: &str = "GESTA_OPEN_BENCH_CHILD";

/// One measured scenario.
struct Row {
    /// The size of the store the scenario started from.
    events: u64,
    /// The last position after recovery.
    head: u64,
    scenario: &'static str,
    first: Duration,
    median: Duration,
    segments: usize,
    tables_trusted: usize,
    records: u64,
    /// Events after the last position the index runs cover.
    tail: u64,
    runs: usize,
    torn: bool,
    bytes: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The last position the index runs in `dir` cover, from their file names
/// (`index/<lo:020>-<hi:020>.idx`, docs/FORMAT.md).
fn covered(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.join("index")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (_, hi) = name.strip_suffix(".idx")?.split_once('-')?;
            hi.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

fn measure_options() -> Options {
    let mut options = Options::default().durability(Durability::Sync);
    options.close_flush_postings = usize::MAX;
    options
}

/// Opens the store in `dir` once for the record and `REPEATS` more times.
fn measure(dir: &Path, events: u64, scenario: &'static str) -> Row {
    let start = Instant::now();
    let store = Store::open_with(dir, measure_options()).expect("open");
    let first = start.elapsed();
    let report = store.recovery_report().clone();
    let runs = store.index_shape().runs;
    let head = store.head();
    store.close().expect("close");
    drop(store);
    let tail = head - covered(dir);
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let start = Instant::now();
        let store = Store::open_with(dir, measure_options()).expect("open");
        times.push(start.elapsed());
        assert_eq!(store.head(), head, "{scenario}: reopen changed the head");
        store.close().expect("close");
    }
    times.sort_unstable();
    let row = Row {
        events,
        head,
        scenario,
        first,
        median: times[times.len() / 2],
        segments: report.segments,
        tables_trusted: report.tables_trusted,
        records: report.records,
        tail,
        runs,
        torn: report.torn_tail.is_some(),
        bytes: dir_size(dir).unwrap_or(0),
    };
    println!(
        "{:>9} events, {:<28} first open {:>7.1} ms, median {:>7.1} ms; {} segments, {} trusted, {} records, tail {}, {} runs{}",
        row.events,
        row.scenario,
        ms(row.first),
        ms(row.median),
        row.segments,
        row.tables_trusted,
        row.records,
        row.tail,
        row.runs,
        if row.torn { ", torn tail cut" } else { "" }
    );
    row
}

/// Appends `n` events one per append.
fn append_singles(store: &Store, writer: u64, n: u64) {
    let mut generator = EventGen::for_writer(writer);
    for _ in 0..n {
        store.append(vec![generator.next_event()]).expect("append");
    }
}

/// The child of scenario d: appends one event at a time in `Sync` mode,
/// printing each acknowledged position, until it is killed.
fn child(dir: &str) {
    let store = Store::open_with(dir, Options::default().durability(Durability::Sync))
        .expect("child: open");
    let mut generator = EventGen::for_writer(0xd);
    let mut out = std::io::stdout().lock();
    loop {
        let appended = store
            .append(vec![generator.next_event()])
            .expect("child: append");
        if writeln!(out, "{}", appended.last)
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Runs the child on `dir` until it has acknowledged `TAIL` appends, then
/// kills it; returns the last position it acknowledged.
fn crash_child(dir: &Path) -> u64 {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acknowledged = 0u64;
    let mut first = None;
    for line in BufReader::new(stdout).lines() {
        let position: u64 = line
            .expect("child output")
            .trim()
            .parse()
            .expect("a position");
        let first = *first.get_or_insert(position);
        acknowledged = position;
        if position + 1 - first >= TAIL {
            break;
        }
    }
    child.kill().expect("kill the child");
    let status = child.wait().expect("wait for the child");
    assert!(!status.success(), "the child was killed");
    acknowledged
}

fn scenarios(events: u64, rows: &mut Vec<Row>) {
    let (base, built) = cached_store(events).expect("cached store");
    if let Some(t) = built {
        println!(
            "built the {events}-event store in {:.1} s: {}",
            t.as_secs_f64(),
            base.display()
        );
    }
    let scratch = scratch_dir("gesta-bench-open").expect("scratch dir");
    let copy = |name: &str| {
        let dir = scratch.path().join(name);
        copy_dir(&base, &dir).expect("copy the cached store");
        dir
    };
    let done = |dir: &Path| std::fs::remove_dir_all(dir).expect("remove a copy");

    // a
    let dir = copy("a");
    rows.push(measure(&dir, events, "a clean close"));
    done(&dir);

    // b
    let dir = copy("b");
    let store =
        Store::open_with(&dir, Options::default().durability(Durability::Sync)).expect("open");
    append_singles(&store, 0xb, TAIL);
    store.close().expect("close");
    drop(store);
    rows.push(measure(&dir, events, "b flush + 5k, clean close"));
    done(&dir);

    // c
    let dir = copy("c");
    let store =
        Store::open_with(&dir, Options::default().durability(Durability::Sync)).expect("open");
    append_singles(&store, 0xc, TAIL);
    let image = scratch.path().join("c-image");
    copy_dir(&dir, &image).expect("copy the open store");
    store.close().expect("close");
    drop(store);
    done(&dir);
    rows.push(measure(&image, events, "c crash (copy while open)"));
    done(&image);

    // d
    let dir = copy("d");
    let acknowledged = crash_child(&dir);
    let row = measure(&dir, events, "d crash (child killed)");
    assert!(
        row.head >= acknowledged,
        "every acknowledged append survives"
    );
    rows.push(row);
    done(&dir);

    // e
    let dir = scratch.path().join("e");
    let build = Instant::now();
    let store = Store::open_with(&dir, build_options()).expect("open");
    fill_store(&store, &mut EventGen::new(gesta_benches::SEED), events).expect("fill");
    assert!(
        wait_for_index_flush(&store, Duration::from_secs(60)),
        "the automatic index flush finished"
    );
    let built = build.elapsed();
    let image = scratch.path().join("e-image");
    copy_dir(&dir, &image).expect("copy the open store");
    let close = Instant::now();
    store.close().expect("close");
    let closed = close.elapsed();
    drop(store);
    println!(
        "scenario e: built {events} events in {:.1} s; the clean close afterwards took {:.0} ms",
        built.as_secs_f64(),
        ms(closed)
    );
    done(&dir);
    rows.push(measure(&image, events, "e crash, no flush_index"));
    done(&image);

    // f
    let dir = copy("f");
    std::fs::remove_file(dir.join("MANIFEST")).expect("remove the MANIFEST");
    rows.push(measure(&dir, events, "f index lost (full replay)"));
    done(&dir);
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(&dir.to_string_lossy());
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[u64] = if quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let root = bench_root();
    println!(
        "open times (scratch dir {}, {}; warm page cache)",
        root.display(),
        fs_type(&root).unwrap_or_else(|| "file system unknown".into())
    );
    let mut rows = Vec::new();
    for &events in sizes {
        scenarios(events, &mut rows);
    }
    println!();
    println!(
        "| store | scenario | events after open | first open ms | median ms | segments | tables trusted | records scanned | tail events | runs | MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {}{} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {:.0} |",
            r.events,
            r.scenario,
            if r.torn { " (torn tail cut)" } else { "" },
            r.head,
            ms(r.first),
            ms(r.median),
            r.segments,
            r.tables_trusted,
            r.records,
            r.tail,
            r.runs,
            r.bytes as f64 / 1e6
        );
    }
    println!();
    // Replay cost per tail event, from the scenarios with the largest tails.
    for r in rows.iter().filter(|r| r.scenario.starts_with('f')) {
        let clean = rows
            .iter()
            .find(|a| a.events == r.events && a.scenario.starts_with('a'))
            .map_or(Duration::ZERO, |a| a.median);
        let per = (r.median.saturating_sub(clean)).as_secs_f64() / r.tail.max(1) as f64;
        println!(
            "- {} events: replaying the log costs {:.2} µs per event ({:.0} events/s); \
             a crash just before the automatic flush (memtable_postings = {} ≈ {} events of 5 keys) \
             would take ≈ {:.0} ms",
            r.events,
            per * 1e6,
            1.0 / per,
            Options::default().memtable_postings,
            Options::default().memtable_postings / 5,
            ms(clean) + per * 1e3 * (Options::default().memtable_postings / 5) as f64
        );
    }
    if let (Some(a), Some(b)) = (
        rows.iter()
            .find(|r| r.events == 100_000 && r.scenario.starts_with('c')),
        rows.iter()
            .find(|r| r.events == 1_000_000 && r.scenario.starts_with('c')),
    ) {
        println!(
            "- crash with a 5,000-event tail: 1,000,000 events take {:.2}× the time of 100,000",
            b.median.as_secs_f64() / a.median.as_secs_f64()
        );
    }
    println!("- O1 targets (1 M events): ≤ 50 ms after a clean close, ≤ 500 ms after a crash");
}
