//! Online backup (`Store::backup`): a copy taken while appends go on opens
//! as a normal store, verifies, and holds exactly the positions up to its
//! position, with the same events, index runs, lifecycle journal,
//! snapshots and cursors; a backup killed midway never leaves a directory
//! that opens as a whole store; and the store backed up is left intact
//! even after the backup (which shares its immutable files by hard links)
//! is opened, appended to and compacted.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gesta::io::{FileHandle, FileSystem, LockGuard, OpenMode, StdFs};
use gesta::lifecycle::Target;
use gesta::{
    BACKUP_INCOMPLETE, Compression, NewEvent, Options, Query, QueryItem, ReadOptions,
    RecordedEvent, Store,
};
use gesta_tests::read_all;

const CHILD_DIR: &str = "GESTA_BACKUP_CHILD_DIR";
const CHILD_DEST: &str = "GESTA_BACKUP_CHILD_DEST";

fn options() -> Options {
    // Small segments, so that a backup meets many sealed ones, and a small
    // memtable, so that index runs are written and merged under it.
    Options::default()
        .segment_size(64 << 10)
        .memtable_postings(2_000)
}

fn event(thread: u64, i: u64) -> NewEvent {
    NewEvent::new(
        "Happened",
        format!("thread {thread} event {i}").into_bytes(),
    )
    .tag(format!("thread:{thread}"))
    .tag(format!("mod:{}", i % 7))
    .stream(format!("s-{thread}-{}", i % 5))
}

fn fill(store: &Store, thread: u64, batches: u64, per_batch: u64) {
    for b in 0..batches {
        let events = (0..per_batch)
            .map(|i| event(thread, b * per_batch + i))
            .collect();
        store.append(events).expect("append");
    }
}

/// Opens the backup, checks it verifies and holds exactly the source's
/// first `position` events, and that an indexed query agrees too.
fn check_backup(source: &Store, dest: &Path, position: u64, options: Options) -> Store {
    let report = gesta::inspect::verify(dest, &mut |_, _| {}).expect("verify runs");
    // Harmless findings: redacted events whose bytes the next compaction
    // erases, as in the source.
    assert!(
        report.findings.iter().all(|f| f.harmless),
        "backup verifies: {report:?}"
    );
    assert_eq!(report.last_position, position);
    let backup = Store::open_with(dest, options).expect("the backup opens");
    assert_eq!(
        backup.head(),
        position,
        "the backup holds up to its position"
    );
    let ours = read_all(&backup).expect("read the backup");
    let theirs: Vec<RecordedEvent> = read_all(source)
        .expect("read the source")
        .into_iter()
        .take(position as usize)
        .collect();
    assert_eq!(ours.len() as u64, position);
    assert!(ours == theirs, "the backup's events are the source's");
    let query = Query::from_items(vec![QueryItem::new().tag("mod:3")]);
    let indexed = |store: &Store| -> Vec<u64> {
        store
            .read(&query, ReadOptions::forwards())
            .expect("query")
            .map(|e| e.expect("event").position)
            .filter(|&p| p <= position)
            .collect()
    };
    assert_eq!(indexed(&backup), indexed(source), "the index agrees");
    backup
}

/// Verifies `dir`; returns whether it is intact (else every finding is
/// harmless).
fn verify_intact(dir: &Path) -> bool {
    let report = gesta::inspect::verify(dir, &mut |_, _| {}).expect("verify runs");
    assert!(
        report.findings.iter().all(|f| f.harmless),
        "{} verifies: {report:?}",
        dir.display()
    );
    report.is_intact()
}

#[test]
fn backup_under_concurrent_appends_is_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open_with(&dir, options()).unwrap();
    fill(&store, 99, 200, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .append(vec![event(t, i), event(t, i + 1)])
                        .expect("append while the backup runs");
                    i += 2;
                }
                i
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let mut reports = Vec::new();
    for round in 0..3 {
        let before = store.head();
        let dest = tmp.path().join(format!("backup-{round}"));
        let report = store.backup(&dest).expect("backup");
        assert!(report.position >= before, "{} < {before}", report.position);
        assert!(!tmp.path().join(format!("backup-{round}.partial")).exists());
        reports.push((dest, report));
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    let appended: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(appended > 0);
    for (dest, report) in &reports {
        assert!(
            report.files_linked > 0,
            "sealed files are linked: {report:?}"
        );
        assert!(report.segments > 1);
        let backup = check_backup(&store, dest, report.position, options());
        // The backup is a store of its own: it takes appends and
        // compaction without touching the source's files.
        fill(&backup, 7, 20, 50);
        backup.compact().unwrap();
        backup.close().unwrap();
        verify_intact(dest);
    }
    assert!(
        store.backup(&reports[0].0).is_err(),
        "an existing destination is refused"
    );
    store.close().unwrap();
    verify_intact(&dir);
}

#[test]
fn backup_of_compressed_segments_index_runs_lifecycle_snapshots_and_cursors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let options = || options().compression(Some(Compression::default()));
    let store = Store::open_with(&dir, options()).unwrap();
    fill(&store, 1, 100, 50);
    store.compact().unwrap();
    fill(&store, 2, 40, 50);
    store.flush_index().unwrap();
    fill(&store, 3, 3, 10);
    let zsegs = |dir: &Path| {
        std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".zseg")
            })
            .count()
    };
    assert!(zsegs(&dir) > 0, "compaction compressed sealed segments");
    store
        .add_tags(&Target::Positions(vec![3, 400, 5_000]), &["vip".to_owned()])
        .unwrap();
    store
        .redact(&Target::Positions(vec![4, 4_100]))
        .expect("redact");
    store
        .save_snapshot("balance", 5_000, b"state at 5000")
        .unwrap();
    store
        .save_snapshot("balance", 6_000, b"state at 6000")
        .unwrap();
    let subscription = store
        .subscribe_durable("mailer", &Query::all())
        .expect("subscribe");
    subscription.ack(4_321).unwrap();
    drop(subscription);

    let head = store.head();
    let dest = tmp.path().join("backup");
    let report = store.backup(&dest).expect("backup");
    assert_eq!(report.position, head);
    assert!(report.index_runs > 0, "{report:?}");
    assert_eq!(report.lifecycle_entries, 2);
    assert_eq!(report.snapshots, 2);
    assert_eq!(report.cursors, 1);
    assert!(zsegs(&dest) > 0, "compressed segments are kept compressed");

    let backup = check_backup(&store, &dest, head, options());
    assert_eq!(
        backup.audit_log(0, 10).unwrap(),
        store.audit_log(0, 10).unwrap()
    );
    let vip: Vec<u64> = backup
        .read(
            &Query::from_items(vec![QueryItem::new().tag("vip")]),
            ReadOptions::forwards(),
        )
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(vip, vec![3, 400, 5_000]);
    assert_eq!(
        backup.list_snapshots("balance").unwrap(),
        vec![5_000, 6_000]
    );
    assert_eq!(
        backup
            .load_snapshot("balance", 5_500)
            .unwrap()
            .unwrap()
            .state,
        b"state at 5000".to_vec()
    );
    let cursors = backup.durable_subscriptions().unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].acknowledged, 4_321);
    // Erasing the redacted bytes in the backup rewrites its segments (by
    // rename), never the source's.
    backup.compact().unwrap();
    backup.close().unwrap();
    assert!(verify_intact(&dest), "the backup's compaction erased");
    let data = |store: &Store, p: u64| {
        store
            .read(&Query::all(), ReadOptions::forwards().start(p - 1).limit(1))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .data
    };
    assert!(data(&store, 4).is_empty(), "redacted in the source");
    assert_eq!(data(&store, 5), "thread 1 event 4".as_bytes());
    store.close().unwrap();
    assert!(
        !verify_intact(&dir),
        "the source's redacted bytes are still there: the backup's erasure left its files alone"
    );
}

/// Every call to `StdFs` but hard links (so backups copy), and each sync
/// slowed down when `slow` is set (so a backup takes long enough to be
/// killed in the middle).
#[derive(Debug)]
struct CopyingFs {
    inner: StdFs,
    slow: bool,
}

#[derive(Debug)]
struct SlowFile {
    inner: Arc<dyn FileHandle>,
    slow: bool,
}

impl FileHandle for SlowFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.slow {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.inner.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn map(&self) -> std::io::Result<gesta::io::Mapping> {
        self.inner.map()
    }
}

impl FileSystem for CopyingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(SlowFile {
            inner: self.inner.open(path, mode)?,
            slow: self.slow,
        }))
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

fn copying(slow: bool) -> Options {
    options().fs(Arc::new(CopyingFs { inner: StdFs, slow }))
}

#[test]
fn backup_copies_where_the_file_system_makes_no_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open_with(&dir, copying(false)).unwrap();
    fill(&store, 1, 100, 40);
    store.flush_index().unwrap();
    fill(&store, 2, 7, 3);
    let dest = tmp.path().join("backup");
    let report = store.backup(&dest).unwrap();
    assert_eq!(report.files_linked, 0);
    assert!(report.files_copied > report.segments, "{report:?}");
    assert_eq!(report.position, store.head());
    check_backup(&store, &dest, report.position, copying(false));
}

fn wait_for_line(child: &mut std::process::Child, want: &str) {
    let stdout = child.stdout.as_mut().expect("child stdout");
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("read the child's output");
        assert!(n > 0, "the child ended before saying {want:?}");
        // libtest prints the test's name on the same line.
        if line.trim().ends_with(want) {
            return;
        }
    }
}

/// The child of `a_killed_backup_is_never_taken_for_a_store`: backs its
/// store up, slowly. Ignored in a normal run.
#[test]
#[ignore = "the child process of a_killed_backup_is_never_taken_for_a_store"]
fn child_backup() {
    let (Ok(dir), Ok(dest)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_DEST)) else {
        return;
    };
    let store = Store::open_with(&dir, copying(true)).expect("child: open");
    println!("backing up");
    store.backup(&dest).expect("child: backup");
    println!("done");
}

#[test]
fn a_killed_backup_is_never_taken_for_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    {
        let store = Store::open_with(&dir, options()).unwrap();
        fill(&store, 1, 400, 50);
        store.close().unwrap();
    }
    let dest = tmp.path().join("backup");
    let partial: PathBuf = tmp.path().join("backup.partial");
    for kill_after in [0u64, 40, 150] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_backup",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dir)
            .env(CHILD_DEST, &dest)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        wait_for_line(&mut child, "backing up");
        std::thread::sleep(Duration::from_millis(kill_after));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        assert!(
            !dest.exists(),
            "killed {kill_after} ms into a backup that takes seconds, yet the destination exists"
        );
        // Killed before the marker was written: an empty directory.
        let empty = partial.exists() && std::fs::read_dir(&partial).unwrap().next().is_none();
        if partial.exists() && !empty {
            assert!(partial.join(BACKUP_INCOMPLETE).exists());
            let refused = Store::open(&partial).expect_err("an unfinished backup is refused");
            assert!(
                refused.to_string().contains("unfinished backup"),
                "{refused}"
            );
        }
    }
    assert!(partial.exists(), "the kills left an unfinished backup");
    // A new backup to the same destination replaces the leftover.
    let store = Store::open_with(&dir, options()).unwrap();
    let report = store.backup(&dest).unwrap();
    assert!(!partial.exists());
    check_backup(&store, &dest, report.position, options());
}

#[test]
fn backup_of_an_empty_store_and_of_a_position_at_a_segment_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open_with(&dir, options()).unwrap();
    assert!(
        store.backup(dir.join("inside")).is_err(),
        "a destination inside the store is refused"
    );
    let report = store.backup(tmp.path().join("empty")).unwrap();
    assert_eq!(report.position, 0);
    let empty = Store::open_with(tmp.path().join("empty"), options()).unwrap();
    assert_eq!(empty.head(), 0);
    empty.append(vec![event(0, 0)]).unwrap();
    empty.close().unwrap();
    // Erasing a redacted event of the active segment seals it and starts
    // an empty one: the backup position is then the last of a sealed
    // (rewritten, version 4) segment, which the backup takes as its
    // newest segment and appends to.
    fill(&store, 1, 10, 10);
    store.redact(&Target::Positions(vec![50])).unwrap();
    store.compact().unwrap();
    let head = store.head();
    assert!(
        dir.join("wal")
            .join(format!("{:020}.seg", head + 1))
            .exists(),
        "the erasure sealed the segment holding the head"
    );
    let dest = tmp.path().join("sealed");
    let report = store.backup(&dest).unwrap();
    assert_eq!(report.position, head);
    let backup = check_backup(&store, &dest, head, options());
    fill(&backup, 2, 10, 10);
    backup.close().unwrap();
    assert!(verify_intact(&dest));
    let backup = Store::open_with(&dest, options()).unwrap();
    assert_eq!(backup.head(), head + 100);
    assert_eq!(read_all(&backup).unwrap().len() as u64, head + 100);
    backup.close().unwrap();
    store.close().unwrap();
    assert!(verify_intact(&dir));
}

#[test]
fn backup_goes_through_the_file_system_seam() {
    // Every byte the store writes is transformed on its way to the disk:
    // a backup that read or wrote around the seam would yield a copy that
    // does not open through it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let options = || {
        options()
            .compression(Some(Compression::default()))
            .fs(Arc::new(gesta::io::obfuscated::ObfuscatedFs::new(StdFs)))
    };
    let store = Store::open_with(&dir, options()).unwrap();
    fill(&store, 1, 60, 50);
    store.compact().unwrap();
    fill(&store, 2, 20, 50);
    store.flush_index().unwrap();
    fill(&store, 3, 3, 7);
    store
        .add_tags(&Target::Positions(vec![10]), &["vip".to_owned()])
        .unwrap();
    store.save_snapshot("k", 100, b"state").unwrap();
    let dest = tmp.path().join("backup");
    let report = store.backup(&dest).unwrap();
    assert_eq!(
        report.files_linked, 0,
        "the obfuscating file system makes no links"
    );
    assert!(report.index_runs > 0 && report.snapshots == 1 && report.lifecycle_entries == 1);
    let backup = Store::open_with(&dest, options()).unwrap();
    assert_eq!(backup.head(), store.head());
    assert!(read_all(&backup).unwrap() == read_all(&store).unwrap());
    assert_eq!(
        backup.load_snapshot("k", 100).unwrap().unwrap().state,
        b"state".to_vec()
    );
    assert_eq!(
        backup.audit_log(0, 10).unwrap(),
        store.audit_log(0, 10).unwrap()
    );
}

#[test]
fn backups_race_background_compression_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // Tiny segments and memtables: the background compactor compresses a
    // segment at every rollover and merges runs all along.
    let options = || {
        options()
            .segment_size(16 << 10)
            .memtable_postings(500)
            .compression(Some(Compression::default()))
    };
    let store = Store::open_with(&dir, options()).unwrap();
    fill(&store, 9, 50, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    store.append(vec![event(t, i)]).expect("append");
                    i += 1;
                }
            })
        })
        .collect();
    let mut backups = Vec::new();
    for round in 0..10 {
        let dest = tmp.path().join(format!("b{round}"));
        let before = store.head();
        let report = store.backup(&dest).expect("backup");
        assert!(report.position >= before);
        backups.push((dest, report.position));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    for (dest, position) in &backups {
        check_backup(&store, dest, *position, options())
            .close()
            .unwrap();
    }
    store.close().unwrap();
    verify_intact(&dir);
}
