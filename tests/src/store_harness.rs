//! The harness that runs the conformance suite and the model tests on
//! Gesta's engine, on a real directory or on the in-memory fault-injecting
//! file system, with small segments and memtables so that rollover and
//! background index flushes happen within short tests.

use std::path::PathBuf;
use std::sync::Arc;

use gesta::io::fault::FaultFs;
use gesta::{Options, Store};

use crate::conformance::Harness;

/// Opens [`Store`]s for the suites.
#[derive(Debug)]
pub struct StoreHarness {
    options: Options,
    /// Temporary directories, kept alive as long as the harness.
    temps: Vec<tempfile::TempDir>,
    /// Directory counter for stores on the in-memory file system.
    next: u64,
    on_disk: bool,
    compacting: bool,
}

fn small(options: Options) -> Options {
    let mut options = options.segment_size(8 << 10).preallocate(4 << 10);
    options.memtable_postings = 64;
    options.close_flush_postings = 16;
    options
}

impl StoreHarness {
    /// Stores in temporary directories on the real file system.
    pub fn on_disk() -> StoreHarness {
        StoreHarness {
            options: small(Options::default()),
            temps: Vec::new(),
            next: 0,
            on_disk: true,
            compacting: false,
        }
    }

    /// Stores on a fresh in-memory [`FaultFs`] (no faults injected).
    pub fn in_memory() -> StoreHarness {
        StoreHarness {
            options: small(Options::default().fs(Arc::new(FaultFs::new()))),
            temps: Vec::new(),
            next: 0,
            on_disk: false,
            compacting: false,
        }
    }

    /// Stores with aggressive compaction running concurrently with the
    /// suites: a memtable of 8 postings (a flush every few events), every
    /// two runs of a tier merged, every sealed (8 KiB) segment rewritten
    /// compressed in 1 KiB blocks behind a 4 KiB block cache, no rate
    /// limit; on a real directory or on the in-memory file system.
    pub fn compacting(on_disk: bool) -> StoreHarness {
        let mut harness = if on_disk {
            StoreHarness::on_disk()
        } else {
            StoreHarness::in_memory()
        };
        harness.options.memtable_postings = 8;
        harness.options.close_flush_postings = 1;
        harness.options.merge_fan_in = 2;
        harness.options.merge_bytes_per_sec = None;
        harness.options.compression = Some(gesta::Compression {
            level: 1,
            block_size: 1024,
            dictionary_size: 256,
        });
        harness.options.block_cache_bytes = 4 << 10;
        harness.compacting = true;
        harness
    }

    fn new_dir(&mut self) -> PathBuf {
        if self.on_disk {
            let temp = tempfile::tempdir().expect("temporary directory");
            let dir = temp.path().to_owned();
            self.temps.push(temp);
            dir
        } else {
            self.next += 1;
            PathBuf::from(format!("/store-{}", self.next))
        }
    }
}

impl Harness for StoreHarness {
    type Store = Store;

    fn create(&mut self) -> Store {
        let dir = self.new_dir();
        Store::open_with(dir, self.options.clone()).expect("open a new store")
    }

    fn reopen(&mut self, store: Store) -> Store {
        let dir = store.path().to_owned();
        store.close().expect("close");
        drop(store);
        Store::open_with(dir, self.options.clone()).expect("reopen")
    }

    fn flush_index(&mut self, store: &Store) {
        store.flush_index().expect("flush the index");
        assert_eq!(store.index_shape().frozen, 0, "no memtable left frozen");
    }

    fn compact(&mut self, store: &Store) {
        store.compact().expect("compact");
    }

    fn name(&self) -> &'static str {
        match (self.on_disk, self.compacting) {
            (true, false) => "store-on-disk",
            (false, false) => "store-in-memory",
            (true, true) => "store-on-disk-compacting",
            (false, true) => "store-in-memory-compacting",
        }
    }
}
