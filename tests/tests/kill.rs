//! Real process kills: a child process appends at full speed from several
//! threads and prints every acknowledged append; the parent kills it with
//! SIGKILL at a random moment, reopens the store and checks that every
//! acknowledged batch is there with the right bytes, that every batch in the
//! store is whole, and that positions are contiguous. Then it starts the
//! next child on the same store, so later rounds also kill recoveries and
//! stores with many segments.
//!
//! CI runs 50 rounds; `GESTA_KILL_ROUNDS=<n>` runs more, and
//! `GESTA_KILL_SEED=<seed>` changes the kill moments.
//!
//! The child is this test binary itself, running the otherwise ignored
//! [`child_writer`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gesta::{Options, Query, ReadOptions, Store};
use gesta_tests::{EventKey, SplitMix64, batch, check_event, expected_event};

const CHILD_DIR: &str = "GESTA_KILL_CHILD_DIR";
const CHILD_ROUND: &str = "GESTA_KILL_CHILD_ROUND";
const SEED: u64 = 0x6b69_6c6c;
const THREADS: u32 = 4;

fn options() -> Options {
    // Small segments, so that rollover and sealing happen under the kills.
    Options::default().segment_size(256 << 10)
}

/// The child: appends until killed, printing `ack <thread> <seq> <first>
/// <last>` for every acknowledged append. Ignored in a normal run; the
/// parent starts it with `--ignored`.
#[test]
#[ignore = "the child process of sigkill_under_load_loses_no_acknowledged_event"]
fn child_writer() {
    let dir = std::env::var(CHILD_DIR)
        .expect("started by the parent test, which sets the store directory");
    let round: u32 = std::env::var(CHILD_ROUND)
        .ok()
        .and_then(|r| r.parse().ok())
        .expect("round number");
    let store = Arc::new(Store::open_with(&dir, options()).expect("child: open"));
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let thread = round * THREADS + t;
                for seq in 0.. {
                    let a = store
                        .append(batch(SEED, thread, seq))
                        .expect("child: append");
                    let mut out = out.lock().expect("stdout");
                    writeln!(out, "ack {thread} {seq} {} {}", a.first, a.last).expect("print");
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

/// An acknowledged append: (thread, seq) → (first, last).
type Acks = BTreeMap<(u32, u32), (u64, u64)>;

fn run_child(dir: &std::path::Path, round: u32, kill_after: Duration) -> Acks {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut acks = Acks::new();
        let mut first_ack = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 5 && f[0] == "ack" {
                let n = |i: usize| f[i].parse::<u64>().expect("ack field");
                acks.insert((n(1) as u32, n(2) as u32), (n(3), n(4)));
                first_ack.get_or_insert_with(Instant::now);
            }
        }
        acks
    });
    // Kill at a random moment after the child has started appending (or,
    // if it takes long to open, while it is still recovering).
    let started = Instant::now();
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let acks = reader.join().expect("reader thread");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a round took too long"
    );
    acks
}

/// Checks the store after a kill; returns its head.
fn check_store(dir: &std::path::Path, verified: u64, acks: &Acks, round: u32) -> u64 {
    let store = Store::open_with(dir, options())
        .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
    let head = store.head();
    for (&(thread, seq), &(first, last)) in acks {
        assert!(
            last <= head,
            "round {round}: acknowledged batch {thread}/{seq} at {first}..={last} lost (head {head})"
        );
        let want = batch(SEED, thread, seq);
        let got: Vec<_> = store
            .read(
                &Query::all(),
                ReadOptions::forwards().start(first - 1).limit(want.len()),
            )
            .unwrap()
            .collect::<gesta::Result<_>>()
            .unwrap_or_else(|e| panic!("round {round}: read failed: {e}"));
        assert_eq!(got.len() as u64, last - first + 1);
        for (g, w) in got.iter().zip(&want) {
            check_event(g, w).unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    // Everything new since the last round: contiguous, whole batches, each
    // event exactly as some writer sent it.
    let mut expected_position = verified + 1;
    let mut open_batch: Option<(EventKey, u64)> = None;
    for e in store
        .read(&Query::all(), ReadOptions::forwards().start(verified))
        .unwrap()
    {
        let e = e.unwrap_or_else(|err| panic!("round {round}: scan failed: {err}"));
        assert_eq!(
            e.position, expected_position,
            "round {round}: gap in positions"
        );
        expected_position += 1;
        let key = EventKey::decode(&e.data)
            .unwrap_or_else(|| panic!("round {round}: unknown event at {}", e.position));
        let want = expected_event(SEED, key)
            .unwrap_or_else(|| panic!("round {round}: impossible key {key:?}"));
        check_event(&e, &want).unwrap_or_else(|err| panic!("round {round}: {err}"));
        match open_batch {
            Some((k, _)) if k.thread == key.thread && k.seq == key.seq => {
                assert_eq!(key.index, k.index + 1, "round {round}: batch out of order");
            }
            Some((k, at)) => panic!("round {round}: batch {k:?} at {at} is cut short"),
            None => assert_eq!(key.index, 0, "round {round}: batch starts mid-way"),
        }
        open_batch = (key.index + 1 < key.len).then_some((key, e.position));
    }
    assert!(
        open_batch.is_none(),
        "round {round}: the last batch is cut short"
    );
    assert_eq!(expected_position - 1, head);
    store.close().expect("close");
    head
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let rounds: u32 = std::env::var("GESTA_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("GESTA_KILL_SEED")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    println!("SIGKILL rounds: {rounds}, seed {seed} (GESTA_KILL_ROUNDS, GESTA_KILL_SEED)");
    let temp = tempfile::tempdir().expect("temporary directory");
    let mut rng = SplitMix64::new(seed);
    let mut verified = 0;
    let mut total_acks = 0;
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.range(20, 400));
        let acks = run_child(temp.path(), round, kill_after);
        total_acks += acks.len();
        verified = check_store(temp.path(), verified, &acks, round);
    }
    println!("{rounds} kills, {total_acks} acknowledged appends checked, {verified} events");
    assert!(total_acks > 0, "the children acknowledged nothing");
}
