//! Projections: `project` equals a fold of every matching event; the
//! background compactor writes snapshots every N folded events; after a
//! reopen `project` starts from the newest snapshot and folds only what
//! follows it; a new version replays from the start.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gesta::io::FileSystem;
use gesta::io::fault::FaultFs;
use gesta::{Error, NewEvent, Options, Projection, Query, RecordedEvent, Store};

const DIR: &str = "/store";

fn open(fault: &FaultFs) -> Store {
    let mut o = Options::default().fs(Arc::new(fault.clone()));
    o.snapshots_kept = 2;
    Store::open_with(DIR, o).expect("open")
}

/// A store whose background projector does not run during a test, so that
/// only the test's calls fold.
fn open_quiet(fault: &FaultFs) -> Store {
    let o = Options::default()
        .fs(Arc::new(fault.clone()))
        .projection_interval(Duration::from_secs(3600));
    Store::open_with(DIR, o).expect("open")
}

fn amount(e: &RecordedEvent) -> u64 {
    std::str::from_utf8(&e.data)
        .expect("utf-8")
        .parse()
        .expect("a number")
}

/// The balance of account 1, counting how many events it folds.
fn balance(version: u32, folds: Arc<AtomicU64>) -> Projection<u64> {
    Projection::new(
        "balance",
        version,
        Query::tag("account:1"),
        0u64,
        move |state: &mut u64, e: &RecordedEvent| {
            folds.fetch_add(1, Ordering::Relaxed);
            *state += amount(e);
        },
        |s: &u64| s.to_le_bytes().to_vec(),
        |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
    )
    .snapshot_every(10)
}

fn append(store: &Store, from: u64, to: u64) -> u64 {
    let mut expected = 0;
    for i in from..to {
        let account = i % 3;
        store
            .append(vec![
                NewEvent::new("Deposited", format!("{i}")).tag(format!("account:{account}")),
            ])
            .expect("append");
        if account == 1 {
            expected += i;
        }
    }
    expected
}

#[test]
fn project_folds_and_resumes_from_snapshots() {
    let fault = FaultFs::new();
    let store = open(&fault);
    let folds = Arc::new(AtomicU64::new(0));
    store
        .register_projection(balance(1, folds.clone()))
        .expect("register");
    let mut expected = append(&store, 0, 300);
    assert_eq!(store.project::<u64>("balance").expect("project"), expected);
    assert_eq!(folds.load(Ordering::Relaxed), 100);
    expected += append(&store, 300, 330);
    assert_eq!(store.project::<u64>("balance").expect("project"), expected);
    assert_eq!(
        folds.load(Ordering::Relaxed),
        110,
        "only the new events folded"
    );

    // compact() snapshots projections that are due.
    store.compact().expect("compact");
    let key = "projection:balance:v1";
    // (The background projector may have written one already, at the
    // head it saw then.)
    let listed = store.list_snapshots(key).expect("list");
    assert_eq!(listed.last(), Some(&330), "{listed:?}");
    let snap = store
        .load_snapshot(key, u64::MAX)
        .expect("load")
        .expect("one");
    assert_eq!(snap.state, expected.to_le_bytes());

    // The background projector snapshots on its own.
    expected += append(&store, 330, 400);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.list_snapshots(key).expect("list").last() <= Some(&330) {
        assert!(Instant::now() < deadline, "no background snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    expected += append(&store, 400, 406);
    store.close().expect("close");
    drop(store);

    // After a reopen: the newest snapshot plus the events after it.
    let store = open(&fault);
    let folds = Arc::new(AtomicU64::new(0));
    store
        .register_projection(balance(1, folds.clone()))
        .expect("register");
    let newest = *store
        .list_snapshots(key)
        .expect("list")
        .last()
        .expect("one");
    assert!(newest > 330);
    assert_eq!(store.project::<u64>("balance").expect("project"), expected);
    // Positions are indices + 1; account 1 has indices 1, 4, 7, …
    let after = (newest..406).filter(|i| i % 3 == 1).count() as u64;
    assert_eq!(
        folds.load(Ordering::Relaxed),
        after,
        "only events after {newest}"
    );

    // A new version replays everything, and the old version's snapshots go.
    let folds = Arc::new(AtomicU64::new(0));
    store
        .register_projection(balance(2, folds.clone()))
        .expect("register");
    assert_eq!(store.list_snapshots(key).expect("list"), Vec::<u64>::new());
    // Its directory (named by the key's bytes in hex) goes too.
    let old_dir: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    let snapshot_dirs = fault
        .list(&Path::new(DIR).join("snapshots"))
        .expect("list snapshots/");
    assert!(
        !snapshot_dirs.contains(&old_dir),
        "the old version's directory remains: {snapshot_dirs:?}"
    );
    assert_eq!(store.project::<u64>("balance").expect("project"), expected);
    assert_eq!(
        folds.load(Ordering::Relaxed),
        (0..406).filter(|i| i % 3 == 1).count() as u64
    );

    // Misuse is an error, not a panic.
    assert!(matches!(
        store.project::<String>("balance"),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.project::<u64>("nothing"),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn a_snapshot_the_projection_cannot_decode_is_corruption() {
    let fault = FaultFs::new();
    let store = open(&fault);
    append(&store, 0, 30);
    store
        .save_snapshot("projection:balance:v1", 20, b"not eight bytes")
        .expect("save");
    store
        .register_projection(balance(1, Arc::new(AtomicU64::new(0))))
        .expect("register");
    match store.project::<u64>("balance") {
        Err(Error::Corruption { file, .. }) => assert_eq!(
            file,
            Path::new(DIR).join(format!(
                "snapshots/{}/00000000000000000020.snap",
                "projection:balance:v1"
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ))
        ),
        other => panic!("{other:?}"),
    }
}

/// A counter of the events of type `Counted`, named `name`.
fn counter(name: &str) -> Projection<u64> {
    counter_at(name, 1)
}

/// [`counter`] at `version`.
fn counter_at(name: &str, version: u32) -> Projection<u64> {
    Projection::new(
        name,
        version,
        Query::event_type("Counted"),
        0u64,
        |n: &mut u64, _: &RecordedEvent| *n += 1,
        |n: &u64| n.to_le_bytes().to_vec(),
        |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
    )
}

fn count(store: &Store, from: u64, to: u64) {
    for i in from..to {
        store
            .append(vec![NewEvent::new("Counted", format!("counted-{i:06}"))])
            .expect("append");
    }
}

/// Where `needle` lies in the store's only segment.
fn find_in_segment(fault: &FaultFs, needle: &[u8]) -> (std::path::PathBuf, u64) {
    let wal = Path::new(DIR).join("wal");
    for name in fault.list(&wal).expect("list wal/") {
        if !name.ends_with(".seg") {
            continue;
        }
        let path = wal.join(&name);
        let file = fault
            .open(&path, gesta::io::OpenMode::Existing)
            .expect("open segment");
        let bytes = gesta::io::read_all(file.as_ref()).expect("read segment");
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            return (path, at as u64);
        }
    }
    panic!("{:?} is in no segment", String::from_utf8_lossy(needle));
}

/// A catch-up that fails partway keeps what it folded only with the
/// position it folded it up to: the next one folds no event twice.
#[test]
fn a_catch_up_that_fails_partway_folds_no_event_twice() {
    let fault = FaultFs::new();
    let store = open_quiet(&fault);
    store
        .register_projection(counter("count"))
        .expect("register");
    count(&store, 0, 10);
    assert_eq!(store.project::<u64>("count").expect("project"), 10);
    count(&store, 10, 20);
    // Event 15 (index 14) is damaged on the medium, then repaired.
    let (path, at) = find_in_segment(&fault, b"counted-000014");
    fault.corrupt(&path, at, 0x01);
    assert!(matches!(
        store.project::<u64>("count"),
        Err(Error::Corruption { .. })
    ));
    fault.corrupt(&path, at, 0x01);
    assert_eq!(store.project::<u64>("count").expect("project"), 20);
}

/// A fold that panics partway leaves no half-folded state behind: the
/// next catch-up starts over and folds every event once.
#[test]
fn a_fold_that_panics_leaves_no_half_folded_state() {
    let fault = FaultFs::new();
    let store = open_quiet(&fault);
    let panic_at = Arc::new(AtomicU64::new(u64::MAX));
    let at = panic_at.clone();
    store
        .register_projection(Projection::new(
            "count",
            1,
            Query::event_type("Counted"),
            0u64,
            move |n: &mut u64, e: &RecordedEvent| {
                if e.position == at.load(Ordering::Relaxed) {
                    at.store(u64::MAX, Ordering::Relaxed);
                    panic!("the fold fails at {}", e.position);
                }
                *n += 1;
            },
            |n: &u64| n.to_le_bytes().to_vec(),
            |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
        ))
        .expect("register");
    count(&store, 0, 10);
    assert_eq!(store.project::<u64>("count").expect("project"), 10);
    count(&store, 10, 20);
    panic_at.store(15, Ordering::Relaxed);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.project::<u64>("count")
    }));
    assert!(panicked.is_err(), "the fold did not panic");
    assert_eq!(store.project::<u64>("count").expect("project"), 20);
}

/// Registering a projection deletes the snapshots of its own other
/// versions only, not those of a projection whose name it begins.
#[test]
fn registering_a_projection_keeps_the_snapshots_of_longer_names() {
    let fault = FaultFs::new();
    let store = open_quiet(&fault);
    store
        .register_projection(counter("user:visits").snapshot_every(1))
        .expect("register");
    count(&store, 0, 5);
    store.compact().expect("compact");
    let key = "projection:user:visits:v1";
    assert_eq!(store.list_snapshots(key).expect("list"), vec![5]);
    store
        .register_projection(counter("user"))
        .expect("register");
    assert_eq!(
        store.list_snapshots(key).expect("list"),
        vec![5],
        "registering \"user\" deleted the snapshots of \"user:visits\""
    );
    assert_eq!(store.project::<u64>("user:visits").expect("project"), 5);
}

/// A projection name is 1 to `MAX_PROJECTION_NAME_LEN` bytes at every
/// version: the cap does not move with the digits of the version.
#[test]
fn a_projection_name_has_one_cap_at_every_version() {
    let fault = FaultFs::new();
    let store = open_quiet(&fault);
    let at = |name: &str, version: u32| {
        store.register_projection(Projection::new(
            name,
            version,
            Query::all(),
            0u64,
            |n: &mut u64, _: &RecordedEvent| *n += 1,
            |n: &u64| n.to_le_bytes().to_vec(),
            |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
        ))
    };
    let longest = "n".repeat(gesta::MAX_PROJECTION_NAME_LEN);
    assert_eq!(longest.len(), 232);
    for version in [1, 4_000_000_000, u32::MAX] {
        at(&longest, version).expect("the longest name");
    }
    let over = "n".repeat(gesta::MAX_PROJECTION_NAME_LEN + 1);
    for version in [1, 4_000_000_000] {
        match at(&over, version) {
            Err(Error::InvalidInput { reason }) => assert!(reason.contains("232"), "{reason}"),
            other => panic!("a name of 233 bytes at v{version}: {other:?}"),
        }
    }
    assert!(matches!(at("", 1), Err(Error::InvalidInput { .. })));
}

/// A counter named `name` that panics on every event from `from` on while
/// `armed` is set.
fn panicking_counter(name: &str, from: u64, armed: Arc<AtomicU64>) -> Projection<u64> {
    Projection::new(
        name,
        1,
        Query::event_type("Counted"),
        0u64,
        move |n: &mut u64, e: &RecordedEvent| {
            if e.position >= from && armed.load(Ordering::Relaxed) != 0 {
                armed.fetch_add(1, Ordering::Relaxed);
                panic!("the fold of event {} fails", e.position);
            }
            *n += 1;
        },
        |n: &u64| n.to_le_bytes().to_vec(),
        |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
    )
    .snapshot_every(1)
}

/// `compact` snapshots every projection even when one fails, and returns
/// that one's error afterwards.
#[test]
fn compact_snapshots_every_projection_when_one_fails() {
    // The projections are tried in no fixed order: a few stores make it
    // all but certain that the failing one comes before some others.
    for _ in 0..3 {
        let fault = FaultFs::new();
        let store = open_quiet(&fault);
        count(&store, 0, 5);
        store
            .save_snapshot("projection:broken:v1", 2, b"not eight bytes")
            .expect("save");
        store
            .register_projection(counter("broken").snapshot_every(1))
            .expect("register");
        let good: Vec<String> = (0..10).map(|i| format!("good-{i}")).collect();
        for name in &good {
            store
                .register_projection(counter(name).snapshot_every(1))
                .expect("register");
        }
        assert!(matches!(store.compact(), Err(Error::Corruption { .. })));
        for name in &good {
            assert_eq!(
                store
                    .list_snapshots(&format!("projection:{name}:v1"))
                    .expect("list"),
                vec![5],
                "{name} was not snapshotted"
            );
        }
    }
}

/// A fold that panics in `compact` holds up no other projection; the
/// panic goes on in the caller once they are snapshotted, and the
/// projection's state is folded again afterwards.
#[test]
fn a_fold_that_panics_in_compact_holds_up_no_other_projection() {
    let fault = FaultFs::new();
    let store = open_quiet(&fault);
    count(&store, 0, 5);
    let armed = Arc::new(AtomicU64::new(1));
    store
        .register_projection(panicking_counter("panics", 3, armed.clone()))
        .expect("register");
    for i in 0..10 {
        store
            .register_projection(counter(&format!("good-{i}")).snapshot_every(1))
            .expect("register");
    }
    let compacted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.compact()));
    assert!(compacted.is_err(), "the fold's panic reaches the caller");
    for i in 0..10 {
        let key = format!("projection:good-{i}:v1");
        assert_eq!(store.list_snapshots(&key).expect("list"), vec![5], "{key}");
    }
    armed.store(0, Ordering::Relaxed);
    assert_eq!(store.project::<u64>("panics").expect("project"), 5);
    store.compact().expect("compact");
    assert_eq!(
        store.list_snapshots("projection:panics:v1").expect("list"),
        vec![5]
    );
}

/// The background projector outlives a fold that panics: it goes on
/// snapshotting the other projections, and that one once it folds again.
#[test]
fn the_projector_outlives_a_fold_that_panics() {
    let fault = FaultFs::new();
    let o = Options::default()
        .fs(Arc::new(fault.clone()))
        .projection_interval(Duration::from_millis(10));
    let store = Store::open_with(DIR, o).expect("open");
    let armed = Arc::new(AtomicU64::new(1));
    store
        .register_projection(panicking_counter("panics", 1, armed.clone()))
        .expect("register");
    store
        .register_projection(counter("good").snapshot_every(1))
        .expect("register");
    count(&store, 0, 3);
    let deadline = Instant::now() + Duration::from_secs(20);
    while armed.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the fold never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    count(&store, 3, 6);
    let newest = |key: &str| store.list_snapshots(key).expect("list").last().copied();
    while newest("projection:good:v1") != Some(6) {
        assert!(
            Instant::now() < deadline,
            "the projector stopped after a fold panicked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    armed.store(0, Ordering::Relaxed);
    while newest("projection:panics:v1") != Some(6) {
        assert!(Instant::now() < deadline, "the projector stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pass in flight on a projection that a new version replaces saves no
/// snapshot of the old version after the registration deleted those.
#[test]
fn a_pass_on_a_replaced_projection_saves_no_snapshot() {
    let fault = FaultFs::new();
    let store = Arc::new(open_quiet(&fault));
    count(&store, 0, 3);
    let (entered, in_fold) = std::sync::mpsc::channel::<()>();
    let (release, go) = std::sync::mpsc::channel::<()>();
    let blocking = std::sync::Mutex::new(Some((entered, go)));
    let old = Projection::new(
        "replaced",
        1,
        Query::event_type("Counted"),
        0u64,
        move |n: &mut u64, _: &RecordedEvent| {
            // The first fold waits, in the middle of a pass.
            if let Some((entered, go)) = blocking.lock().expect("lock").take() {
                entered.send(()).expect("send");
                go.recv().expect("recv");
            }
            *n += 1;
        },
        |n: &u64| n.to_le_bytes().to_vec(),
        |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
    )
    .snapshot_every(1);
    store.register_projection(old).expect("register");
    let compacting = {
        let store = store.clone();
        std::thread::spawn(move || store.compact())
    };
    in_fold.recv().expect("the pass folds");
    let registering = {
        let store = store.clone();
        std::thread::spawn(move || store.register_projection(counter_at("replaced", 2)))
    };
    // Time for the registration to finish if it does not wait for the
    // pass.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).expect("release");
    compacting.join().expect("join").expect("compact");
    registering.join().expect("join").expect("register");
    assert_eq!(
        store
            .list_snapshots("projection:replaced:v1")
            .expect("list"),
        Vec::<u64>::new(),
        "a snapshot of the replaced version remains"
    );
}
