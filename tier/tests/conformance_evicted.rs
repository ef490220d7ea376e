//! The conformance suite on a store whose sealed segments exist only in
//! the bucket (moto's S3 server on loopback): 8 KiB segments, and every
//! 20 ms in the background the active segment is sealed, shipped and
//! evicted (no hot set: every sealed segment the bucket holds), and so
//! at every index flush,
//! compaction and reopen, where the harness checks that every segment
//! sealed before the round was evicted — its local file gone — so the
//! suite's reads, recoveries and compactions run through
//! `BucketSegments`. Reopens go through the bucket too.

mod harness;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use gesta::{Options, Store};
use gesta_tests::conformance::Harness;
use gesta_tier::{BucketSegments, EvictPolicy, Evictor, Location, ShipOptions, Shipper};

/// One store's shipper, evictor and the thread that runs them.
struct Running {
    remote: Arc<BucketSegments>,
    shipper: Arc<Shipper>,
    evictor: Arc<Evictor>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn halt(mut self) {
        let stats = self.remote.stats();
        FETCHED.fetch_add(stats.bytes_fetched, Ordering::Relaxed);
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("the evicting thread");
        }
        if let Ok(shipper) = Arc::try_unwrap(self.shipper) {
            let _ = shipper.stop();
        }
    }
}

/// Bytes read from the bucket by the harnesses of this process, and
/// segments found evicted by the hooks (printed with `--nocapture`).
static FETCHED: AtomicU64 = AtomicU64::new(0);
static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Ships the store through its head, then evicts every sealed segment
/// the bucket holds; returns the segments sealed before, still plain.
fn ship_and_evict(store: &Store, shipper: &Shipper, evictor: &Evictor) -> Vec<u64> {
    store.seal_active_segment().expect("seal");
    let before: Vec<u64> = store
        .sealed_segments()
        .iter()
        .filter(|s| !s.evicted && !s.compressed)
        .map(|s| s.first_position)
        .collect();
    // A round of its own, not a wait for the head: a segment rewritten
    // by an erasure at an unchanged head is shipped anew only by a round.
    shipper.ship_now().expect("ship");
    evictor.run(store).expect("evict");
    before
}

#[derive(Default)]
pub struct EvictedHarness {
    temps: Vec<tempfile::TempDir>,
    running: HashMap<PathBuf, (Running, Location)>,
}

fn options(remote: Arc<BucketSegments>) -> Options {
    let mut options = Options::default()
        .segment_size(8 << 10)
        .preallocate(4 << 10)
        .remote_segments(remote);
    options.memtable_postings = 64;
    options.close_flush_postings = 16;
    options
}

fn wal_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("wal"))
        .expect("list wal")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

impl EvictedHarness {
    fn open(&mut self, dir: &Path, location: Location) -> Store {
        let remote = Arc::new(BucketSegments::new(location.clone()).expect("bucket segments"));
        let store = Store::open_with(dir, options(remote.clone())).expect("open");
        let ship = ShipOptions::default().interval(Duration::from_secs(3600));
        let shipper =
            Arc::new(Shipper::start(store.clone(), location.clone(), ship).expect("ship"));
        let policy = EvictPolicy {
            keep_newest: 0,
            keep_bytes: 0,
        };
        let evictor = Arc::new(Evictor::new(location.clone(), policy).expect("evictor"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (store, shipper, evictor, stop) = (
                store.clone(),
                shipper.clone(),
                evictor.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                    // A store closed by the test, or a round racing a
                    // close, fails here; the hooks check what matters.
                    if store.seal_active_segment().is_ok()
                        && shipper
                            .ship_through(store.head(), Duration::from_secs(10))
                            .is_ok()
                    {
                        let _ = evictor.run(&store);
                    }
                }
            })
        };
        let running = Running {
            remote,
            shipper,
            evictor,
            stop,
            thread: Some(thread),
        };
        self.running.insert(dir.to_owned(), (running, location));
        store
    }

    /// Ships and evicts now, and checks that every segment sealed before
    /// is evicted, its local file gone.
    fn evict_now(&self, store: &Store) {
        let (running, _) = &self.running[store.path()];
        let before = ship_and_evict(store, &running.shipper, &running.evictor);
        let files = wal_files(store.path());
        for s in store.sealed_segments() {
            if before.contains(&s.first_position) {
                assert!(s.evicted, "segment {} was not evicted", s.first_position);
                let name = format!("{:020}.seg", s.first_position);
                assert!(!files.contains(&name), "{name} is still local");
            }
            if s.evicted {
                EVICTED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for EvictedHarness {
    fn drop(&mut self) {
        for (_, (running, _)) in self.running.drain() {
            running.halt();
        }
        eprintln!(
            "so far: {} segments found evicted by the hooks, {} bytes read from the bucket",
            EVICTED.load(Ordering::Relaxed),
            FETCHED.load(Ordering::Relaxed)
        );
    }
}

impl Harness for EvictedHarness {
    type Store = Store;

    fn create(&mut self) -> Store {
        let temp = tempfile::tempdir().expect("temporary directory");
        let dir = temp.path().join("store");
        self.temps.push(temp);
        let (_bucket, location) = harness::fresh_location();
        self.open(&dir, location)
    }

    fn reopen(&mut self, store: Store) -> Store {
        self.evict_now(&store);
        let dir = store.path().to_owned();
        let (running, location) = self.running.remove(&dir).expect("a running store");
        running.halt();
        store.close().expect("close");
        drop(store);
        self.open(&dir, location)
    }

    fn flush_index(&mut self, store: &Store) {
        store.flush_index().expect("flush the index");
        self.evict_now(store);
    }

    fn compact(&mut self, store: &Store) {
        store.compact().expect("compact");
        self.evict_now(store);
    }

    fn name(&self) -> &'static str {
        "store-evicted-to-s3"
    }
}

gesta_tests::conformance_tests!(EvictedHarness::default());
