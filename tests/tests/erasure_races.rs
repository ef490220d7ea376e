//! What else may hold a redacted event's data when `compact` erases it,
//! and what the erasure must leave alone: a registered projection's state
//! in memory (which its next pass would write to a snapshot again), a
//! redaction committed while `compact` runs (whose snapshots must go at
//! the latest with the next compaction), and a removal in a record whose
//! other event an earlier compaction erased (which keeps snapshots).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gesta::io::{FileHandle, FileSystem, LockGuard, OpenMode, StdFs};
use gesta::lifecycle::Target;
use gesta::{NewEvent, Options, Projection, Query, RecordedEvent, Store};
use gesta_tests::files::holders;

const SECRET: &[u8] = b"secret-2c9e41d7-erase-me";

/// A projection whose state is the data of every event tagged `user`,
/// snapshotted after each event it folds.
fn names() -> Projection<Vec<u8>> {
    Projection::new(
        "names",
        1,
        Query::tag("user"),
        Vec::new(),
        |s: &mut Vec<u8>, e: &RecordedEvent| s.extend_from_slice(&e.data),
        Vec::clone,
        |b: &[u8]| Some(b.to_vec()),
    )
    .snapshot_every(1)
}

/// A projection's state folded from an event, in memory only, is dropped
/// when the event is erased: neither the snapshot pass inside `compact`
/// nor a later one writes it to a file, and the state read afterwards is
/// folded from the redacted event.
#[test]
fn a_projection_forgets_what_it_folded_from_an_erased_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = || Options::default().projection_interval(Duration::from_secs(3600));
    let store = Store::open_with(dir, options()).unwrap();
    store.register_projection(names()).unwrap();
    store
        .append(vec![NewEvent::new("Registered", "before ").tag("user")])
        .unwrap();
    let at = store
        .append(vec![NewEvent::new("Registered", SECRET).tag("user")])
        .unwrap()
        .first;
    // Folded in memory; `project` writes no snapshot.
    let mut folded = b"before ".to_vec();
    folded.extend_from_slice(SECRET);
    assert_eq!(store.project::<Vec<u8>>("names").unwrap(), folded);
    store.redact(&Target::Positions(vec![at])).unwrap();
    store.compact().unwrap();
    assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
    assert_eq!(store.project::<Vec<u8>>("names").unwrap(), b"before ");
    store.compact().unwrap();
    assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
    // The snapshot the pass wrote holds the state without the data.
    let key = "projection:names:v1";
    let newest = *store.list_snapshots(key).unwrap().last().unwrap();
    assert!(newest >= at);
    let state = store.load_snapshot(key, newest).unwrap().unwrap().state;
    assert_eq!(&state[..], b"before ");
}

/// A file system that, once armed, holds the first opening of a sealed
/// segment's offset table (`.off`) until released: in `compact`, the
/// rewrite's check that a segment is complete, after the erasure has
/// chosen what to erase and deleted the snapshots.
#[derive(Debug, Default)]
struct Gate {
    inner: StdFs,
    armed: AtomicBool,
    /// (held, released)
    state: Mutex<(bool, bool)>,
    turn: Condvar,
}

impl Gate {
    fn wait_until_held(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.turn.wait(s).unwrap();
        }
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.turn.notify_all();
    }
}

impl FileSystem for Gate {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn FileHandle>> {
        if matches!(mode, OpenMode::Existing)
            && path.extension().is_some_and(|e| e == "off")
            && self.armed.swap(false, Ordering::SeqCst)
        {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            self.turn.notify_all();
            while !s.1 {
                s = self.turn.wait(s).unwrap();
            }
        }
        self.inner.open(path, mode)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn mmap_is_coherent(&self) -> bool {
        self.inner.mmap_is_coherent()
    }
    fn lock(&self, path: &Path) -> std::io::Result<LockGuard> {
        self.inner.lock(path)
    }
}

/// A redaction committed while `compact` erases other events (after it
/// chose what to erase and deleted snapshots) is not erased behind its
/// snapshots' back: the next compaction still finds its bytes, so deletes
/// the snapshot folded from it, and erases it.
#[test]
fn a_redaction_made_while_compact_erases_loses_its_snapshots_next_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gate = Arc::new(Gate::default());
    let store = Arc::new(Store::open_with(dir, Options::default().fs(gate.clone())).unwrap());
    let secret = store
        .append(vec![NewEvent::new("Registered", SECRET).tag("user:1")])
        .unwrap()
        .first;
    let other = store
        .append(vec![NewEvent::new("Noise", "x").tag("user:2")])
        .unwrap()
        .first;
    // State folded from the secret, saved after it.
    store.save_snapshot("profile", other, SECRET).unwrap();
    // Something for the compaction to erase that keeps snapshots.
    store.remove(&Target::Positions(vec![other])).unwrap();
    gate.armed.store(true, Ordering::SeqCst);
    let compacting = {
        let store = store.clone();
        std::thread::spawn(move || store.compact())
    };
    gate.wait_until_held();
    store.redact(&Target::Positions(vec![secret])).unwrap();
    gate.release();
    compacting.join().unwrap().unwrap();
    store.compact().unwrap();
    assert_eq!(store.list_snapshots("profile").unwrap(), Vec::<u64>::new());
    assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
}

/// Removing an event whose record holds another, redacted and erased by
/// an earlier compaction, deletes no snapshot: only a redaction whose
/// bytes this compaction erases does.
#[test]
fn a_removal_beside_an_event_erased_before_keeps_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let batch = store
        .append(vec![
            NewEvent::new("Registered", SECRET).tag("user:1"),
            NewEvent::new("Noise", "x").tag("user:2"),
        ])
        .unwrap();
    store.redact(&Target::Positions(vec![batch.first])).unwrap();
    store.compact().unwrap();
    // Saved after the erasure: it cannot hold the erased data.
    store.save_snapshot("user", batch.last, b"state").unwrap();
    store.remove(&Target::Positions(vec![batch.last])).unwrap();
    store.compact().unwrap();
    assert_eq!(store.list_snapshots("user").unwrap(), vec![batch.last]);
    assert_eq!(holders(tmp.path(), SECRET), Vec::<PathBuf>::new());
}
