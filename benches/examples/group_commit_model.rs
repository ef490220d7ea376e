//! A model of the commit loop, to try other shapes of group commit on the
//! disk without the engine: `WRITERS` threads each send a 290-byte append
//! and wait for its answer; one committer takes everything waiting, writes
//! it to a pre-zeroed file and syncs it, and answers. Three shapes:
//!
//! - `leader` (the engine's, and the harness's group-commit probe's): the
//!   committer syncs, then answers every writer of the group itself;
//! - `inflight K`: the committer hands each group's `fdatasync` to one of
//!   `K` sync threads and takes the next group at once, up to `K` syncs in
//!   flight; groups are answered in order as their syncs (and all earlier
//!   ones) return;
//! - `answerer`: as `leader`, but a second thread answers the writers
//!   while the committer goes back for the next group.
//!
//! ```text
//! cargo run --release -p gesta-benches --example group_commit_model -- leader [WRITERS] [SECS]
//! cargo run --release -p gesta-benches --example group_commit_model -- inflight 4
//! ```
//! It prints commits per second and commits per `fdatasync`. Defaults: 16
//! writers, 3 seconds, `K` = 2. `WORK_US=N` has each writer spin N µs
//! before each append, standing in for what a caller does to build and
//! encode it.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::Duration;

/// Bytes per append: about a standard event's record.
const APPEND: usize = 290;
/// The file's size; writes wrap around inside it, so it stays pre-zeroed.
const FILE_LEN: u64 = 256 << 20;

enum Shape {
    Leader,
    InFlight(usize),
    Answerer,
}

struct Append {
    bytes: Vec<u8>,
    answer: Sender<()>,
}

/// What the committer waits for: an append, or (`inflight`) a sync that
/// returned, by its group's number.
enum Msg {
    Append(Append),
    Synced(u64),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = match args.first().map(String::as_str) {
        None | Some("leader") => Shape::Leader,
        Some("inflight") => Shape::InFlight(args.get(1).map_or(2, |k| k.parse().expect("K"))),
        Some("answerer") => Shape::Answerer,
        Some(other) => panic!("unknown shape {other}: leader, inflight K or answerer"),
    };
    let rest = if matches!(shape, Shape::InFlight(_)) {
        2
    } else {
        1
    };
    let number = |i: usize, default: u64| {
        args.get(rest + i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let writers = number(0, 16) as usize;
    let secs = number(1, 3);
    let work = Duration::from_micros(
        std::env::var("WORK_US").map_or(0, |w| w.parse().expect("WORK_US: microseconds")),
    );

    let scratch = gesta_benches::scratch_dir("group-commit-model").expect("scratch");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(scratch.path().join("log"))
        .expect("file");
    file.write_all_at(&vec![0; FILE_LEN as usize], 0)
        .expect("zeros");
    file.sync_all().expect("sync");
    let file = Arc::new(file);

    let (queue, taken) = sync_channel::<Msg>(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (queue, stop) = (queue.clone(), stop.clone());
            std::thread::spawn(move || {
                let (answer, answered) = channel();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    while started.elapsed() < work {
                        std::hint::spin_loop();
                    }
                    let append = Append {
                        bytes: vec![7; APPEND],
                        answer: answer.clone(),
                    };
                    queue.send(Msg::Append(append)).expect("committer");
                    answered.recv().expect("answer");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let synced = queue.clone();
    drop(queue);
    let committer = {
        let stop = stop.clone();
        std::thread::spawn(move || commit(&file, &taken, synced, &shape, &stop))
    };
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let commits: u64 = threads.into_iter().map(|t| t.join().expect("writer")).sum();
    let syncs = committer.join().expect("committer");
    println!(
        "{writers} writers: {:.0} commits/s, {:.1} commits per fdatasync",
        commits as f64 / secs as f64,
        commits as f64 / syncs.max(1) as f64
    );
}

/// The committer; returns how many syncs it made. It stops once `stop`
/// is set and nothing is in flight or queued.
fn commit(
    file: &Arc<File>,
    taken: &Receiver<Msg>,
    synced: SyncSender<Msg>,
    shape: &Shape,
    stop: &AtomicBool,
) -> u64 {
    let mut at = 0u64;
    let mut syncs = 0u64;
    let mut buf = Vec::new();
    // `inflight`: the sync threads, and the groups whose syncs run.
    let k = match shape {
        Shape::InFlight(k) => *k,
        _ => 0,
    };
    let jobs = sync_threads(file, k, synced);
    let mut waiting: VecDeque<(u64, Vec<Sender<()>>)> = VecDeque::new();
    let mut finished = BTreeSet::new();
    // `answerer`: the thread that answers.
    let answerer = matches!(shape, Shape::Answerer).then(|| {
        let (to_answer, answers) = channel::<Vec<Sender<()>>>();
        std::thread::spawn(move || answers.into_iter().for_each(answer));
        to_answer
    });
    // Appends that came while the committer waited for a sync to return,
    // for the next group.
    let mut carried = Vec::new();
    loop {
        let first = if carried.is_empty() {
            match taken.recv_timeout(Duration::from_millis(50)) {
                Ok(msg) => Some(msg),
                Err(_) if stop.load(Ordering::Relaxed) && waiting.is_empty() => return syncs,
                Err(_) => continue,
            }
        } else {
            None
        };
        let mut group: Vec<Append> = std::mem::take(&mut carried);
        for msg in first.into_iter().chain(taken.try_iter()) {
            match msg {
                Msg::Append(a) => group.push(a),
                Msg::Synced(n) => {
                    finished.insert(n);
                }
            }
        }
        answer_finished(&mut waiting, &mut finished);
        if group.is_empty() {
            continue;
        }
        buf.clear();
        group.iter().for_each(|a| buf.extend_from_slice(&a.bytes));
        if at + buf.len() as u64 > FILE_LEN {
            at = 0;
        }
        file.write_all_at(&buf, at).expect("write");
        at += buf.len() as u64;
        syncs += 1;
        let answers: Vec<Sender<()>> = group.into_iter().map(|a| a.answer).collect();
        match &answerer {
            _ if k > 0 => {
                // At most `k` in flight: wait for the oldest to return.
                while waiting.len() >= k {
                    match taken.recv().expect("queue") {
                        Msg::Synced(n) => {
                            finished.insert(n);
                        }
                        Msg::Append(a) => carried.push(a),
                    }
                    answer_finished(&mut waiting, &mut finished);
                }
                jobs.send(syncs).expect("sync thread");
                waiting.push_back((syncs, answers));
            }
            Some(to_answer) => {
                file.sync_data().expect("sync");
                to_answer.send(answers).expect("answerer");
            }
            None => {
                file.sync_data().expect("sync");
                answer(answers);
            }
        }
    }
}

/// `k` threads that each sync `file` when given a group's number, and
/// say so on the committer's queue.
fn sync_threads(file: &Arc<File>, k: usize, synced: SyncSender<Msg>) -> SyncSender<u64> {
    let (jobs, job) = sync_channel::<u64>(k.max(1));
    let job = Arc::new(std::sync::Mutex::new(job));
    for _ in 0..k {
        let (file, job, synced) = (file.clone(), job.clone(), synced.clone());
        std::thread::spawn(move || {
            loop {
                let next = job.lock().expect("jobs").recv();
                let Ok(group) = next else { return };
                file.sync_data().expect("sync");
                if synced.send(Msg::Synced(group)).is_err() {
                    return;
                }
            }
        });
    }
    jobs
}

/// Answers the groups at the front whose syncs have returned, in order: a
/// group is durable once its own sync and every earlier one have.
fn answer_finished(waiting: &mut VecDeque<(u64, Vec<Sender<()>>)>, finished: &mut BTreeSet<u64>) {
    while let Some((group, _)) = waiting.front() {
        if !finished.remove(group) {
            return;
        }
        if let Some((_, answers)) = waiting.pop_front() {
            answer(answers);
        }
    }
}

/// Answers every writer of a group (one that stopped waiting is gone).
fn answer(answers: Vec<Sender<()>>) {
    for a in answers {
        let _ = a.send(());
    }
}
