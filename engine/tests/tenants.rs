//! The engine's tenants: what is particular to stores in directories
//! (where they are, what a crash in a purge leaves, the quota's error).
//! The contract every home shares (isolation, purge, the bound on open
//! stores, quotas) is `gesta-tests`' tenants suite, run on the engine's
//! tenants there.

use gesta::tenants::{TenantError, TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Options, Query, ReadOptions};

fn small() -> Options {
    // Small segments and preallocation: many stores in one test.
    Options::default()
        .segment_size(1 << 20)
        .preallocate(64 << 10)
}

fn options(max_open: usize) -> TenantOptions {
    TenantOptions {
        store: small(),
        max_open,
        ..TenantOptions::default()
    }
}

fn ev(i: u64) -> NewEvent {
    NewEvent::new("E", format!("{{\"i\":{i}}}")).tag("t:1")
}

fn count(store: &gesta::Store) -> usize {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .count()
}

#[test]
fn names_are_checked_and_cannot_leave_the_root() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    for bad in [
        "",
        "..",
        ".",
        "../x",
        "a/b",
        "A",
        "-a",
        "_a",
        "a b",
        ".purging-a",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(tenants.create(bad), Err(TenantError::InvalidName { .. })),
            "{bad:?} was accepted"
        );
        assert!(matches!(
            tenants.get(bad),
            Err(TenantError::InvalidName { .. })
        ));
        assert!(matches!(
            tenants.purge(bad),
            Err(TenantError::InvalidName { .. })
        ));
    }
    tenants.create(&"a".repeat(64)).unwrap();
    tenants.create("acme-1_x").unwrap();
    assert!(matches!(
        tenants.create("acme-1_x"),
        Err(TenantError::Exists(_))
    ));
    assert!(matches!(
        tenants.get("nobody"),
        Err(TenantError::Unknown(_))
    ));
    // Nothing was made outside `tenants/`.
    let mut top: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["tenants"]);
    assert_eq!(tenants.list().unwrap(), ["a".repeat(64), "acme-1_x".into()]);
}

#[test]
fn tenants_see_only_their_own_events() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    tenants.create("a").unwrap();
    tenants.create("b").unwrap();
    tenants
        .append("a", vec![ev(1), ev(2)], AppendOptions::new())
        .unwrap();
    tenants
        .append("b", vec![ev(3)], AppendOptions::new())
        .unwrap();
    assert_eq!(count(&tenants.get("a").unwrap()), 2);
    assert_eq!(count(&tenants.get("b").unwrap()), 1);
    // Each is a store of its own, in its own directory.
    assert_eq!(
        tenants.get("a").unwrap().path(),
        root.path().join("tenants/a")
    );
    tenants.close().unwrap();
    // Reopened as plain stores, each holds its own events.
    let a = gesta::Store::open_with(root.path().join("tenants/a"), small()).unwrap();
    assert_eq!(count(&a), 2);
}

#[test]
fn quotas_refuse_appends_and_append_nothing() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            max_events: Some(5),
            ..options(4)
        },
    )
    .unwrap();
    tenants.create("a").unwrap();
    tenants
        .append("a", vec![ev(1), ev(2), ev(3)], AppendOptions::new())
        .unwrap();
    let refused = tenants.append("a", vec![ev(4), ev(5), ev(6)], AppendOptions::new());
    match refused {
        Err(TenantError::QuotaExceeded { tenant, what }) => {
            assert_eq!(tenant, "a");
            assert!(what.contains("limit of 5"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tenants.get("a").unwrap().head(), 3);
    tenants
        .append("a", vec![ev(4), ev(5)], AppendOptions::new())
        .unwrap();
    assert!(matches!(
        tenants.append("a", vec![ev(6)], AppendOptions::new()),
        Err(TenantError::QuotaExceeded { .. })
    ));

    // A byte quota below what an empty store's files take refuses at once.
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            max_bytes: Some(1024),
            ..options(4)
        },
    )
    .unwrap();
    tenants.create("b").unwrap();
    assert!(matches!(
        tenants.append("b", vec![ev(1)], AppendOptions::new()),
        Err(TenantError::QuotaExceeded { .. })
    ));
    assert_eq!(tenants.get("b").unwrap().head(), 0);
}

/// A batch that brought a tenant to its quota, sent again because its
/// answer was lost, is answered with its positions: the quota refusal
/// says nothing was appended, and the events are in the store. A batch
/// reusing one of its ids is refused for that (it adds nothing either),
/// and a new batch is still refused by the quota.
#[test]
fn a_retry_of_a_batch_that_reached_the_quota_gets_its_positions() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            max_events: Some(2),
            ..options(4)
        },
    )
    .unwrap();
    tenants.create("a").unwrap();
    let batch = || vec![ev(1).id(11), ev(2).id(12)];
    let first = tenants.append("a", batch(), AppendOptions::new()).unwrap();
    let again = tenants.append("a", batch(), AppendOptions::new()).unwrap();
    assert_eq!((again.first, again.last), (first.first, first.last));
    assert!(matches!(
        tenants.append("a", vec![ev(3).id(12)], AppendOptions::new()),
        Err(TenantError::Store(gesta::Error::DuplicateEventId { .. }))
    ));
    assert!(matches!(
        tenants.append("a", vec![ev(3).id(13)], AppendOptions::new()),
        Err(TenantError::QuotaExceeded { .. })
    ));
    assert_eq!(tenants.get("a").unwrap().head(), 2);
}

#[test]
fn an_interrupted_purge_is_finished_on_open() {
    let root = tempfile::tempdir().unwrap();
    {
        let tenants = Tenants::open(root.path(), options(4)).unwrap();
        tenants.create("a").unwrap();
        tenants
            .append("a", vec![ev(1)], AppendOptions::new())
            .unwrap();
        tenants.close().unwrap();
    }
    // A purge that renamed the directory and then stopped.
    std::fs::rename(
        root.path().join("tenants/a"),
        root.path().join("tenants/.purging-a"),
    )
    .unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    assert!(tenants.list().unwrap().is_empty());
    assert!(!root.path().join("tenants/.purging-a").exists());
}

/// What the test companions saw: (tenant, event) in order, and the head
/// each finish read from its store (still open then).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

struct Recorder {
    tenant: String,
    store: gesta::Store,
    seen: Seen,
}

impl gesta::tenants::Companion for Recorder {
    fn finish(self: Box<Self>) -> Result<(), String> {
        // The store is still open: a shipper's last round reads it.
        let head = self.store.head();
        let readable = self.store.read(&Query::all(), ReadOptions::forwards());
        assert!(
            readable.is_ok(),
            "the store closed before its companion finished"
        );
        self.seen
            .lock()
            .unwrap()
            .push((self.tenant.clone(), format!("finish at {head}")));
        Ok(())
    }
}

/// A companion is made right after each store opens and finished right
/// before it closes, its store still open, whichever way it closes: to
/// make room (once the store it makes room for opened), purged, or with
/// the set. A maker's error fails the call that opened the store and
/// leaves it closed, and no other store closed for it.
#[test]
fn companions_run_beside_each_open_store() {
    let root = tempfile::tempdir().unwrap();
    let seen: Seen = Default::default();
    let make = {
        let seen = seen.clone();
        std::sync::Arc::new(move |tenant: &str, store: &gesta::Store| {
            if tenant == "refused" {
                return Err("no companion for this one".to_owned());
            }
            seen.lock()
                .unwrap()
                .push((tenant.to_owned(), format!("start at {}", store.head())));
            Ok(Box::new(Recorder {
                tenant: tenant.to_owned(),
                // A handle, not the set's Arc, which would keep the
                // store from ever being idle.
                store: store.clone(),
                seen: seen.clone(),
            }) as Box<dyn gesta::tenants::Companion>)
        })
    };
    let tenants = Tenants::open(root.path(), options(1))
        .unwrap()
        .with_companions(make);
    for name in ["a", "b", "refused"] {
        tenants.create(name).unwrap();
    }
    tenants
        .append("a", vec![ev(1)], AppendOptions::new())
        .unwrap();
    // Opening b makes room: a's companion finishes first.
    tenants
        .append("b", vec![ev(2), ev(3)], AppendOptions::new())
        .unwrap();
    tenants
        .append("a", vec![ev(4)], AppendOptions::new())
        .unwrap();
    match tenants.get("refused") {
        Err(TenantError::Companion { tenant, reason }) => {
            assert_eq!(tenant, "refused");
            assert!(reason.contains("no companion"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A store that failed to open closed no other: a's is still open.
    assert_eq!(tenants.open_count(), 1);
    tenants
        .append("b", vec![ev(5)], AppendOptions::new())
        .unwrap();
    tenants.purge("b").unwrap();
    tenants
        .append("a", vec![ev(6)], AppendOptions::new())
        .unwrap();
    tenants.close().unwrap();
    let seen: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(t, what)| format!("{t}: {what}"))
        .collect();
    assert_eq!(
        seen,
        [
            "a: start at 0",
            // A store is closed to make room once the new one opened.
            "b: start at 0",
            "a: finish at 1",
            "a: start at 1",
            "b: finish at 2",
            "b: start at 2",
            "a: finish at 2",
            "b: finish at 3",
            "a: start at 2",
            "a: finish at 3",
        ]
    );
}

/// A tenant whose store failed (a sync refused for a full disk poisons
/// it) is reopened once no call holds it: with room on the disk again, the
/// tenant appends, without the whole set being restarted.
#[test]
fn a_failed_tenant_store_is_reopened_once_idle() {
    use gesta::io::fault::{Fault, FaultFs, OpKind};
    use gesta::tenants::{DirHome, TenantLimits, TenantSet};
    use std::sync::Arc;
    let root = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let shared: Arc<dyn gesta::io::FileSystem> = Arc::new(fs.clone());
    let home = DirHome::open_on(root.path(), shared.clone(), small().fs(shared)).unwrap();
    let tenants = TenantSet::new(home, TenantLimits::default());
    tenants.create("a").unwrap();
    tenants
        .append("a", vec![ev(1)], AppendOptions::new())
        .unwrap();
    // Held by a call, it is handed out as it is.
    let held = tenants.get("a").unwrap();
    fs.fail_nth(OpKind::Sync, 1, Fault::Enospc);
    assert!(
        tenants
            .append("a", vec![ev(2)], AppendOptions::new())
            .is_err()
    );
    fs.clear_faults();
    assert!(held.is_poisoned());
    assert!(Arc::ptr_eq(&held, &tenants.get("a").unwrap()));
    drop(held);
    let appended = tenants
        .append("a", vec![ev(3)], AppendOptions::new())
        .unwrap();
    assert_eq!(appended.last, 2);
    assert!(!tenants.get("a").unwrap().is_poisoned());
}

/// A tenant whose store cannot be opened closes no other tenant's store
/// to make room for it.
#[test]
fn a_store_that_fails_to_open_closes_no_other() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(1)).unwrap();
    tenants.create("a").unwrap();
    tenants.create("bad").unwrap();
    std::fs::write(root.path().join("tenants/bad/MANIFEST"), b"not a manifest").unwrap();
    tenants
        .append("a", vec![ev(1)], AppendOptions::new())
        .unwrap();
    assert!(tenants.get("bad").is_err());
    assert_eq!(tenants.open_count(), 1);
    // And one that opens still takes the idle store's place.
    tenants.create("b").unwrap();
    tenants
        .append("b", vec![ev(1)], AppendOptions::new())
        .unwrap();
    assert_eq!(tenants.open_count(), 1);
}

/// A walk over the open stores (the metrics') holds one at a time: the
/// others stay idle, so a tenant whose store is closed can still be
/// given room meanwhile.
#[test]
fn a_walk_over_the_open_stores_leaves_the_others_idle() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(2)).unwrap();
    for name in ["a", "b", "c"] {
        tenants.create(name).unwrap();
    }
    drop(tenants.get("a").unwrap());
    drop(tenants.get("b").unwrap());
    let mut walked = Vec::new();
    tenants.for_each_open(|name, _| {
        walked.push(name.to_owned());
        if name == "a" {
            // "b" is idle and makes room.
            drop(tenants.get("c").unwrap());
        }
    });
    assert_eq!(walked, ["a"]);
}

/// A purge whose deletion failed leaves the renamed directory behind; a
/// later purge of the name removes it first instead of failing on it.
#[test]
fn a_purge_after_one_that_left_files_behind_succeeds() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    let leftover = root.path().join("tenants/.purging-a");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000001.seg"), b"x").unwrap();
    tenants.create("a").unwrap();
    tenants
        .append("a", vec![ev(1)], AppendOptions::new())
        .unwrap();
    tenants.purge("a").unwrap();
    assert!(!root.path().join("tenants/a").exists());
    assert!(!leftover.exists());
}

/// The senders that let companions held in their last round finish.
type Releases = std::sync::Arc<std::sync::Mutex<Vec<std::sync::mpsc::Sender<()>>>>;

/// Lets every companion held in its last round finish, again and again,
/// until `done`.
fn release_until(releases: &Releases, done: impl Fn() -> bool) {
    while !done() {
        for release in releases.lock().unwrap().iter() {
            let _ = release.send(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Closes the set on a thread of its own, its companions let finish.
fn close_releasing(tenants: &std::sync::Arc<Tenants>, releases: &Releases) {
    let closing = {
        let tenants = tenants.clone();
        std::thread::spawn(move || tenants.close())
    };
    release_until(releases, || closing.is_finished());
    closing.join().unwrap().unwrap();
}

/// The tenant's store, retried while every open store is in use, as a
/// client retries `Busy`.
fn get_retrying(
    tenants: &Tenants,
    name: &str,
) -> gesta::tenants::TenantResult<std::sync::Arc<gesta::Store>> {
    loop {
        match tenants.get(name) {
            Err(TenantError::Busy(_)) => std::thread::sleep(std::time::Duration::from_millis(5)),
            got => return got,
        }
    }
}

/// A companion whose last round takes a while (a shipper's upload).
struct Slow(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl gesta::tenants::Companion for Slow {
    fn finish(self: Box<Self>) -> Result<(), String> {
        // Until the test lets it go.
        let rx = self.0.lock().unwrap();
        let _ = rx.recv_timeout(std::time::Duration::from_secs(30));
        Ok(())
    }
}

/// The store closed to make room is closed outside the set's lock: while
/// its companion's last round runs, other tenants' calls go on (a store
/// already open is handed out at once), and a call of the tenant being
/// closed waits for the close, then opens its store again.
#[test]
fn a_store_closed_to_make_room_holds_up_no_other_tenant() {
    use std::sync::{Arc, Mutex, mpsc};
    let root = tempfile::tempdir().unwrap();
    let releases: Releases = Default::default();
    let make = {
        let releases = releases.clone();
        Arc::new(move |_: &str, _: &gesta::Store| {
            let (tx, rx) = mpsc::channel();
            releases.lock().unwrap().push(tx);
            Ok(Box::new(Slow(Mutex::new(rx))) as Box<dyn gesta::tenants::Companion>)
        })
    };
    let tenants = Arc::new(
        Tenants::open(root.path(), options(2))
            .unwrap()
            .with_companions(make),
    );
    for name in ["a", "b", "c"] {
        tenants.create(name).unwrap();
    }
    let c = tenants.get("c").unwrap();
    drop(tenants.get("a").unwrap());
    // Opening b closes a, whose companion's round does not end yet.
    let opener = {
        let tenants = tenants.clone();
        std::thread::spawn(move || drop(tenants.get("b").unwrap()))
    };
    while tenants.open_count() < 2 || releases.lock().unwrap().len() < 3 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !opener.is_finished(),
        "a's close did not wait for its companion"
    );
    // c is open: handed out while a closes.
    let getter = {
        let tenants = tenants.clone();
        std::thread::spawn(move || tenants.get("c").unwrap())
    };
    for _ in 0..2_000 {
        if getter.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(getter.is_finished(), "a call of c waited for a's close");
    let again = getter.join().unwrap();
    assert!(Arc::ptr_eq(&c, &again));
    // a waits for its close, then opens again (closing b, now idle).
    let reopener = {
        let tenants = tenants.clone();
        // Busy, a retry: b is in use until its opener's call returns.
        std::thread::spawn(move || get_retrying(&tenants, "a").map(|s| s.head()))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!reopener.is_finished(), "a reopened before it closed");
    release_until(&releases, || opener.is_finished());
    opener.join().unwrap();
    // Its close of b waits for b's companion too.
    release_until(&releases, || reopener.is_finished());
    assert_eq!(reopener.join().unwrap().unwrap(), 0);
    drop((c, again));
    close_releasing(&tenants, &releases);
}

/// While a store closed to make room is still closing, a call that needs
/// room waits for it instead of closing another: at most one store past
/// the bound is ever open (counted by the companions alive).
#[test]
fn one_store_past_the_bound_at_most_while_one_closes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    struct Counted {
        live: Arc<AtomicUsize>,
        release: Mutex<mpsc::Receiver<()>>,
    }
    impl gesta::tenants::Companion for Counted {
        fn finish(self: Box<Self>) -> Result<(), String> {
            let _ = self
                .release
                .lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(30));
            self.live.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let root = tempfile::tempdir().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let releases: Releases = Default::default();
    let make = {
        let (live, most, releases) = (live.clone(), most.clone(), releases.clone());
        Arc::new(move |_: &str, _: &gesta::Store| {
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let (tx, rx) = mpsc::channel();
            releases.lock().unwrap().push(tx);
            Ok(Box::new(Counted {
                live: live.clone(),
                release: Mutex::new(rx),
            }) as Box<dyn gesta::tenants::Companion>)
        })
    };
    let tenants = Arc::new(
        Tenants::open(root.path(), options(2))
            .unwrap()
            .with_companions(make),
    );
    for name in ["a", "x", "b", "c"] {
        tenants.create(name).unwrap();
    }
    drop(tenants.get("a").unwrap());
    drop(tenants.get("x").unwrap());
    let calls: Vec<_> = ["b", "c"]
        .into_iter()
        .map(|name| {
            let tenants = tenants.clone();
            std::thread::spawn(move || get_retrying(&tenants, name).map(drop))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(most.load(Ordering::SeqCst), 3, "a fourth store opened");
    release_until(&releases, || calls.iter().all(|c| c.is_finished()));
    for call in calls {
        call.join().unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 3);
    close_releasing(&tenants, &releases);
}
