//! The tier against a real S3-compatible server (moto's, on loopback):
//! shipping and restoring give back the store byte for byte; a second
//! writer is refused and a fenced one cannot replace the new writer's
//! checkpoint; a corrupt object is refused on restore; an unreachable
//! bucket delays shipping without reporting anything shipped that was
//! not; and a writer killed under load restores with every event it
//! reported shipped.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gesta::Store;
use gesta_tier::{Error, ShipOptions, Shipper, restore};
use harness::*;
use object_store::ObjectStoreExt;

#[test]
fn a_shipped_store_restores_byte_for_byte_and_later_rounds_ship_only_what_is_new() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 3_000, 50);
    store
        .save_snapshot("counter", 1_000, b"state at 1000")
        .expect("snapshot");
    store.compact().expect("compact: index runs");
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    assert_eq!(shipper.epoch(), 1);
    assert_eq!(shipper.ship_now().expect("ship"), 3_000);
    assert_eq!(shipper.shipped_head(), 3_000);
    assert_eq!(shipper.lag(), 0);
    // The first round (at start) uploaded everything; the one asked for
    // then only the checkpoint.
    let everything = shipper.status().bytes_uploaded;

    let report = restore(&location, dir.path().join("r1")).expect("restore");
    assert_eq!(report.head, 3_000);
    assert!(!dir.path().join("r1.partial").exists());
    check_restored(&dir.path().join("r1"), &read_all(&store));

    // Ten more events: the round uploads the log's new bytes and the
    // small files that changed, not the sealed segments again.
    fill(&store, 3_000, 10, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 3_010);
    let second = shipper.status().last_round.expect("a round");
    assert!(
        second.bytes_uploaded * 20 < everything,
        "a round after ten events uploaded {} bytes, the store is {everything}",
        second.bytes_uploaded,
    );
    assert!(second.files_unchanged > 0, "{second:?}");
    // A round with nothing new does nothing at all.
    let third_head = shipper.ship_now().expect("ship");
    assert_eq!(third_head, 3_010);
    let third = shipper.status().last_round.expect("a round");
    assert!(third.idle, "{third:?}");
    assert_eq!(third.bytes_uploaded, 0, "{third:?}");
    // A redaction consumes no position, yet it is shipped.
    store
        .redact(&gesta::lifecycle::Target::Positions(vec![7]))
        .expect("redact");
    assert_eq!(shipper.ship_now().expect("ship"), 3_010);
    let fourth = shipper.status().last_round.expect("a round");
    assert!(!fourth.idle && fourth.objects_uploaded > 0, "{fourth:?}");

    restore(&location, dir.path().join("r2")).expect("restore");
    check_restored(&dir.path().join("r2"), &read_all(&store));
    assert_eq!(shipper.stop().expect("stop"), 3_010);
    store.close().expect("close");
}

#[test]
fn a_store_restores_from_the_bucket_after_its_directory_is_gone() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let store = Store::open_with(&src, options()).expect("open");
    let shipper = Shipper::start(
        store.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_millis(50)),
    )
    .expect("start");
    fill(&store, 0, 2_000, 20);
    assert!(
        shipper.wait_shipped(2_000, Duration::from_secs(60)),
        "shipped {:?}",
        shipper.status()
    );
    let expected = read_all(&store);
    shipper.stop().expect("stop");
    store.close().expect("close");
    std::fs::remove_dir_all(&src).expect("lose the disk");
    assert!(
        !dir.path().join(".src.tier").exists(),
        "the staging directory is removed when the shipper stops"
    );

    let report = restore(&location, &src).expect("restore");
    assert_eq!(report.head, 2_000);
    assert!(report.objects > 0 && report.bytes > 0);
    check_restored(&src, &expected);
    // A restore never writes over a directory.
    let again = restore(&location, &src).unwrap_err();
    assert!(matches!(again, Error::InvalidInput(_)), "{again}");
}

#[test]
fn a_second_writer_on_the_prefix_is_refused_until_the_first_releases_it() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Store::open_with(dir.path().join("a"), options()).expect("open a");
    let c = Store::open_with(dir.path().join("c"), options()).expect("open c");
    // The same events as b's, appended on their own: another history.
    let d = Store::open_with(dir.path().join("d"), options()).expect("open d");
    fill(&a, 0, 100, 10);
    fill(&d, 0, 150, 10);
    let first = Shipper::start(a.clone(), location.clone(), on_demand()).expect("start a");
    first.ship_now().expect("ship a");
    // b: the bucket restored, then appended to.
    restore(&location, dir.path().join("b")).expect("restore b");
    let b = Store::open_with(dir.path().join("b"), options()).expect("open b");
    fill(&b, 100, 50, 10);

    let refused = Shipper::start(b.clone(), location.clone(), on_demand()).unwrap_err();
    match &refused {
        Error::Claimed { epoch, writer, .. } => {
            assert_eq!(*epoch, 1);
            assert!(!writer.is_empty());
        }
        e => panic!("expected Claimed, got {e}"),
    }
    assert!(refused.to_string().contains("take over"), "{refused}");

    // Released by a clean stop: the next writer needs no takeover — but a
    // store behind the bucket (here an empty one) is refused before it
    // claims anything, lest it replace the bucket's store by its own.
    first.stop().expect("stop a");
    match Shipper::start(c.clone(), location.clone(), on_demand().takeover(true)) {
        Err(Error::Behind {
            head: 0,
            bucket_head: 100,
            ..
        }) => {}
        other => panic!("expected Behind, got {other:?}"),
    }
    // So is a store of another history, though ahead of the bucket: its
    // record at the bucket's head is not the bucket's.
    for takeover in [false, true] {
        match Shipper::start(d.clone(), location.clone(), on_demand().takeover(takeover)) {
            Err(Error::HistoryDiffers { reason, .. }) => {
                assert!(reason.contains("position 100"), "{reason}")
            }
            other => panic!("expected HistoryDiffers, got {:?}", other.map(|_| ())),
        }
    }
    // Chunks no checkpoint names: one of epoch 1 (a killed round's), one
    // of a later epoch (a writer that could be taking over right now).
    let rt = runtime();
    let orphan = location.key("data/e00000001/wal/orphan.seg/0000000000000000-1-00000000");
    let later = location.key("data/e00000099/wal/later.seg/0000000000000000-1-00000000");
    for key in [&orphan, &later] {
        rt.block_on(location.store().put(key, vec![0u8].into()))
            .expect("put a chunk");
    }
    let second = Shipper::start(b.clone(), location.clone(), on_demand()).expect("start b");
    assert_eq!(second.epoch(), 2, "the refused start claimed nothing");
    let exists = |key| rt.block_on(location.store().head(key)).is_ok();
    assert!(
        !exists(&orphan),
        "an earlier epoch's unnamed chunk is deleted"
    );
    assert!(exists(&later), "a later epoch's chunk is left alone");
    assert_eq!(second.ship_now().expect("ship b"), 150);
    second.stop().expect("stop b");
    c.close().expect("close");
    d.close().expect("close");
    a.close().expect("close");
    b.close().expect("close");
}

#[test]
fn a_fenced_writer_stops_shipping_and_cannot_replace_the_new_writers_checkpoint() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let old = Store::open_with(dir.path().join("old"), options()).expect("open");
    fill(&old, 0, 500, 25);
    let old_shipper = Shipper::start(old.clone(), location.clone(), on_demand()).expect("start");
    assert_eq!(old_shipper.ship_now().expect("ship"), 500);

    // The old writer is cut off but alive. A new one restores the bucket
    // and takes the prefix over.
    let new_dir = dir.path().join("new");
    restore(&location, &new_dir).expect("restore");
    let new = Store::open_with(&new_dir, options()).expect("open the restored store");
    let new_shipper = Shipper::start(new.clone(), location.clone(), on_demand().takeover(true))
        .expect("take over");
    assert_eq!(new_shipper.epoch(), 2);
    fill(&new, 10_000, 100, 10);
    assert_eq!(new_shipper.ship_now().expect("ship"), 600);

    // The old writer goes on appending and tries to ship: refused, for good.
    fill(&old, 500, 300, 25);
    match old_shipper.ship_now() {
        Err(Error::Fenced {
            epoch: 1, by: 2, ..
        }) => {}
        other => panic!("expected Fenced by epoch 2, got {other:?}"),
    }
    let status = old_shipper.status();
    assert!(status.fenced_by.is_some(), "{status:?}");
    assert_eq!(status.shipped_head, 500, "nothing more is reported shipped");
    assert!(matches!(old_shipper.ship_now(), Err(Error::Fenced { .. })));

    // The bucket is the new writer's: its 600 events, not the old 800.
    let restored = dir.path().join("check");
    let report = restore(&location, &restored).expect("restore");
    assert_eq!((report.head, report.epoch), (600, 2));
    check_restored(&restored, &read_all(&new));

    // The new writer ships on; the old one's stop releases nothing.
    drop(old_shipper);
    fill(&new, 10_100, 10, 10);
    assert_eq!(new_shipper.ship_now().expect("ship"), 610);
    new_shipper.stop().expect("stop");
    let epoch = runtime()
        .block_on(gesta_tier::fence::read_epoch(&location))
        .expect("read the epoch")
        .expect("an epoch");
    assert_eq!((epoch.epoch, epoch.held), (2, false));
    old.close().expect("close");
    new.close().expect("close");
}

#[test]
fn a_corrupt_object_is_refused_on_restore_and_never_served() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 1_000, 20);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    shipper.ship_now().expect("ship");
    shipper.stop().expect("stop");

    let rt = runtime();
    let checkpoint = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint");
    let segment = checkpoint
        .files
        .iter()
        .find(|f| f.path.starts_with("wal/") && f.path.ends_with(".seg"))
        .expect("a segment");
    let chunk = &segment.chunks[0];
    let key = location.key(&chunk.key);
    let original = rt
        .block_on(async { location.store().get(&key).await?.bytes().await })
        .expect("read the chunk");
    let mut damaged = original.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    rt.block_on(location.store().put(&key, damaged.into()))
        .expect("damage the chunk");

    let target = dir.path().join("restored");
    match restore(&location, &target) {
        Err(Error::Corrupt { key: k, reason }) => {
            assert!(k.ends_with(&chunk.key), "{k}");
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!target.exists());
    let partial = dir.path().join("restored.partial");
    assert!(partial.join(gesta::BACKUP_INCOMPLETE).exists());
    assert!(
        Store::open(&partial).is_err(),
        "a half-restored directory never opens"
    );

    // A truncated chunk, and a damaged checkpoint, are refused too.
    rt.block_on(
        location
            .store()
            .put(&key, original.slice(..original.len() - 1).into()),
    )
    .expect("truncate the chunk");
    assert!(matches!(
        restore(&location, &target),
        Err(Error::Corrupt { .. })
    ));
    let checkpoint_key = location.key(gesta_tier::fence::CHECKPOINT_OBJECT);
    let mut bytes = rt
        .block_on(async { location.store().get(&checkpoint_key).await?.bytes().await })
        .expect("read the checkpoint")
        .to_vec();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    rt.block_on(location.store().put(&checkpoint_key, bytes.into()))
        .expect("damage the checkpoint");
    match restore(&location, &target) {
        Err(Error::Corrupt { key, .. }) => assert!(key.ends_with("CHECKPOINT"), "{key}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Put right, the bucket restores again.
    rt.block_on(location.store().put(&key, original.into()))
        .expect("repair the chunk");
    store.close().expect("close");
}

/// A checkpoint whose MANIFEST lists an index run that the checkpoint
/// does not name would restore to a store that does not open: the restore
/// refuses it, naming the run, and leaves only a marked partial directory.
#[test]
fn a_checkpoint_missing_a_listed_index_run_is_refused_on_restore() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 500, 20);
    store.flush_index().expect("flush");
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    shipper.ship_now().expect("ship");
    shipper.stop().expect("stop");

    let rt = runtime();
    let mut checkpoint = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint");
    let run = checkpoint
        .files
        .iter()
        .position(|f| f.path.starts_with("index/") && f.path.ends_with(".idx"))
        .expect("an index run");
    let dropped = checkpoint.files.remove(run).path;
    let key = location.key(gesta_tier::fence::CHECKPOINT_OBJECT);
    rt.block_on(location.store().put(&key, checkpoint.encode().into()))
        .expect("replace the checkpoint");

    let target = dir.path().join("restored");
    match restore(&location, &target) {
        Err(Error::Corrupt { key, reason }) => {
            assert!(key.ends_with("CHECKPOINT"), "{key}");
            assert!(reason.contains(&dropped), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!target.exists());
    assert!(
        dir.path()
            .join("restored.partial")
            .join(gesta::BACKUP_INCOMPLETE)
            .exists()
    );
    store.close().expect("close");
}

#[test]
fn an_unreachable_bucket_delays_shipping_reports_nothing_unshipped_and_shipping_resumes() {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let proxy = Proxy::start(&endpoint);
    let through_proxy = location_at(&proxy.endpoint, &bucket, "p");
    let direct = location_at(&endpoint, &bucket, "p");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    let shipper = Shipper::start(
        store.clone(),
        through_proxy,
        ShipOptions::default()
            .interval(Duration::from_millis(50))
            .backoff(Duration::from_millis(50), Duration::from_millis(400)),
    )
    .expect("start");
    fill(&store, 0, 200, 20);
    assert!(shipper.wait_shipped(200, Duration::from_secs(60)));

    proxy.cut();
    // Appends go on while the bucket is away.
    fill(&store, 200, 300, 20);
    let failed = shipper.ship_now();
    assert!(failed.is_err(), "a round with the bucket away: {failed:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while shipper.status().failures < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = shipper.status();
    assert!(status.failures >= 3, "retried: {status:?}");
    assert!(status.last_error.is_some());
    assert_eq!(status.shipped_head, 200, "nothing unshipped is reported");
    assert_eq!(shipper.lag(), 300);
    // What the bucket holds is still the last checkpoint, whole.
    let during = dir.path().join("during");
    assert_eq!(restore(&direct, &during).expect("restore").head, 200);
    check_restored(&during, &read_all(&store)[..200]);

    proxy.mend();
    assert!(
        shipper.wait_shipped(500, Duration::from_secs(60)),
        "shipping resumes: {:?}",
        shipper.status()
    );
    let status = shipper.status();
    assert_eq!(status.failures_in_a_row, 0);
    assert!(status.last_error.is_none());
    shipper.stop().expect("stop");
    let after = dir.path().join("after");
    assert_eq!(restore(&direct, &after).expect("restore").head, 500);
    check_restored(&after, &read_all(&store));
    store.close().expect("close");
}

/// The acknowledgement after upload: with rounds due only once an hour,
/// `ship_through` hurries a round for each append, waiters arriving
/// together share rounds, every acknowledged event is in the bucket, and
/// with the bucket away the wait ends in `NotShipped` naming what the
/// bucket holds.
/// With a bytes bound, a round starts as soon as the log has grown by
/// it, long before the interval; growth below it waits for the interval.
#[test]
fn a_bytes_bound_ships_before_the_interval() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("s"), options()).expect("open");
    fill(&store, 0, 10, 10);
    let before = store.log_bytes();
    let shipper = Shipper::start(
        store.clone(),
        location,
        ShipOptions::default()
            .interval(Duration::from_secs(3600))
            .bytes(16 << 10),
    )
    .expect("ship");
    assert!(shipper.wait_shipped(10, Duration::from_secs(60)));
    // Well below the bound: nothing more ships within a second.
    fill(&store, 10, 2, 2);
    assert!(store.log_bytes() - before < 16 << 10);
    assert!(!shipper.wait_shipped(12, Duration::from_secs(1)));
    // Past it, in one append (so that no round starts halfway): shipped
    // within seconds, not an hour.
    fill(&store, 12, 300, 300);
    assert!(store.log_bytes() - before > 20 << 10);
    assert!(
        shipper.wait_shipped(312, Duration::from_secs(30)),
        "{:?}",
        shipper.status()
    );
    let rounds = shipper.status().rounds;
    assert!(rounds >= 2, "{rounds} rounds");
    shipper.stop().expect("stop");
    store.close().expect("close");
}

#[test]
fn ship_through_acknowledges_only_what_the_bucket_holds_and_shares_rounds() {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let proxy = Proxy::start(&endpoint);
    let through_proxy = location_at(&proxy.endpoint, &bucket, "p");
    let direct = location_at(&endpoint, &bucket, "p");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    let shipper = Shipper::start(
        store.clone(),
        through_proxy,
        on_demand().backoff(Duration::from_millis(50), Duration::from_millis(200)),
    )
    .expect("start");
    // The first round, which runs at start, ships nothing yet.
    assert!(shipper.wait_shipped(0, Duration::from_secs(30)));
    let writers = 8u64;
    let appends = 10u64;
    let acknowledged: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (store, shipper) = (&store, &shipper);
                scope.spawn(move || {
                    let mut last = 0;
                    for i in 0..appends {
                        let appended = store.append(vec![event(w * 1_000 + i)]).expect("append");
                        let shipped = shipper
                            .ship_through(appended.last, Duration::from_secs(60))
                            .expect("shipped");
                        assert!(shipped >= appended.last);
                        last = appended.last;
                    }
                    last
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let total = writers * appends;
    assert_eq!(store.head(), total);
    assert!(shipper.shipped_head() >= *acknowledged.iter().max().expect("some"));
    let rounds = shipper.status().rounds;
    eprintln!("{rounds} rounds for {total} acknowledgements");
    // Eight writers wait at once: one round each would be 80.
    assert!(
        rounds <= 1 + total / 2,
        "{rounds} rounds for {total} acknowledgements: waiters did not share rounds"
    );
    // Every acknowledged event restores from the bucket alone.
    let restored = dir.path().join("restored");
    let report = restore(&direct, &restored).expect("restore");
    assert!(report.head >= total, "restored {}", report.head);
    check_restored(&restored, &read_all(&store));

    // The bucket away: the event is committed, the acknowledgement is not.
    proxy.cut();
    let appended = store.append(vec![event(99_999)]).expect("append");
    match shipper.ship_through(appended.last, Duration::from_millis(800)) {
        Err(Error::NotShipped {
            position,
            shipped_head,
            ..
        }) => {
            assert_eq!(position, appended.last);
            assert_eq!(shipped_head, total);
        }
        other => panic!("expected NotShipped, got {other:?}"),
    }
    assert_eq!(store.head(), total + 1);
    proxy.mend();
    assert_eq!(
        shipper
            .ship_through(appended.last, Duration::from_secs(60))
            .expect("shipped once the bucket is back"),
        total + 1
    );
    shipper.stop().expect("stop");
    store.close().expect("close");
}

const CHILD: &str = "GESTA_TIER_KILL_CHILD";

/// The writer of the kill test, run as a child process: appends under
/// load and ships every 20 ms, printing each shipped head.
#[test]
fn kill_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split('|');
    let (endpoint, bucket, dir) = (
        parts.next().expect("endpoint"),
        parts.next().expect("bucket"),
        parts.next().expect("dir"),
    );
    let store = Store::open_with(dir, options()).expect("open");
    let shipper = Shipper::start(
        store.clone(),
        location_at(endpoint, bucket, "kill"),
        ShipOptions::default().interval(Duration::from_millis(20)),
    )
    .expect("start");
    let mut reported = 0;
    let mut i = 0;
    loop {
        store
            .append((i..i + 10).map(event).collect())
            .expect("append");
        i += 10;
        let shipped = shipper.shipped_head();
        if shipped > reported {
            reported = shipped;
            println!("shipped {shipped}");
        }
    }
}

/// Runs the kill test's writer (`kill_child`) as a child process on
/// `src`, shipping to `bucket`'s prefix `kill`, and SIGKILLs it once it
/// has reported eight rounds and at least 2,000 positions shipped: the
/// last head it reported.
fn kill_a_writer_under_load(endpoint: &str, bucket: &str, src: &std::path::Path) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "kill_child", "--nocapture", "--test-threads=1"])
        .env(
            CHILD,
            format!("{endpoint}|{bucket}|{}", src.to_str().expect("utf-8 path")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut reported = 0u64;
    let mut reports = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("shipped ") {
            reported = n.parse().expect("a head");
            reports += 1;
            if reports >= 8 && reported >= 2_000 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap");
    assert!(reported >= 2_000, "the writer reported {reported} shipped");
    reported
}

/// Restores the killed writer's bucket into `target` and checks that it
/// holds every event the writer reported shipped, byte for byte.
fn restore_what_was_reported(
    endpoint: &str,
    bucket: &str,
    target: &std::path::Path,
    reported: u64,
) -> gesta_tier::RestoreReport {
    let report = restore(&location_at(endpoint, bucket, "kill"), target).expect("restore");
    assert!(
        report.head >= reported,
        "reported {reported} shipped, restored {}",
        report.head
    );
    let store = Store::open_with(target, options()).expect("open");
    let events = read_all(&store);
    assert_eq!(events.len() as u64, report.head);
    for (i, recorded) in events.iter().enumerate() {
        let sent = event(i as u64);
        assert_eq!(recorded.position, i as u64 + 1);
        assert_eq!(recorded.data, sent.data, "position {}", recorded.position);
        assert_eq!(recorded.event_type, sent.event_type);
        assert_eq!(recorded.tags, sent.tags);
        assert_eq!(recorded.stream, sent.stream);
    }
    store.close().expect("close");
    report
}

#[test]
fn a_writer_killed_under_load_restores_with_every_event_it_reported_shipped() {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let reported = kill_a_writer_under_load(&endpoint, &bucket, &dir.path().join("src"));
    restore_what_was_reported(&endpoint, &bucket, &dir.path().join("restored"), reported);
}

/// The killed writer restarted on its own directory takes the prefix over
/// and ships only what the bucket lacks; the bucket then restores to all
/// of it. (It once failed now and then: a new MANIFEST of the old one's
/// length kept the old one's chunk, both having CRC-32's residue as their
/// CRC; docs/TIER.md, "The CRC-32 residue".)
#[test]
fn a_killed_writer_restarted_takes_over_and_ships_only_what_the_bucket_lacks() {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let reported = kill_a_writer_under_load(&endpoint, &bucket, &src);
    let report =
        restore_what_was_reported(&endpoint, &bucket, &dir.path().join("restored"), reported);

    // The killed writer restarts on its own directory: it still holds
    // the epoch, so it must take over; its first round uploads only what
    // the bucket lacks (the killed round's bytes are not trusted, the
    // checkpoint's are kept), and the bucket then restores to all of it.
    let location = location_at(&endpoint, &bucket, "kill");
    let store = Store::open_with(&src, options()).expect("reopen the killed writer's store");
    assert!(store.head() >= report.head);
    assert!(matches!(
        Shipper::start(store.clone(), location.clone(), on_demand()),
        Err(Error::Claimed { .. })
    ));
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand().takeover(true))
        .expect("take over");
    assert_eq!(shipper.ship_now().expect("ship"), store.head());
    let uploaded = shipper.status().bytes_uploaded;
    shipper.stop().expect("stop");
    let checkpoint = runtime()
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint");
    // The killed round's chunks, which no checkpoint named, were deleted
    // when the restarted writer started: every chunk is named.
    let named: std::collections::HashSet<String> = checkpoint
        .keys()
        .map(|k| location.key(k).to_string())
        .collect();
    let unnamed: Vec<String> = objects(&location)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("/data/") && !named.contains(k))
        .collect();
    assert!(
        unnamed.is_empty(),
        "chunks no checkpoint names: {unnamed:?}"
    );
    let kept: u64 = checkpoint
        .files
        .iter()
        .flat_map(|f| &f.chunks)
        .filter(|c| c.key.starts_with("data/e00000001/"))
        .map(|c| c.len)
        .sum();
    assert!(
        kept >= report.bytes / 2,
        "the restarted writer kept {kept} bytes of the killed one's {}, uploaded {uploaded}",
        report.bytes
    );
    let again = dir.path().join("again");
    assert_eq!(
        restore(&location, &again).expect("restore").head,
        store.head()
    );
    check_restored(&again, &read_all(&store));
    store.close().expect("close");
}

const SECRET: &[u8] = b"secret-c0ffee-must-leave-the-bucket";

/// Every object under the location's prefix, with its bytes.
fn objects(location: &gesta_tier::Location) -> Vec<(String, bytes::Bytes)> {
    use futures::TryStreamExt;
    let rt = runtime();
    rt.block_on(async {
        let prefix = location.key("");
        let metas: Vec<_> = location
            .store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .expect("list");
        let mut out = Vec::new();
        for meta in metas {
            let bytes = location
                .store()
                .get(&meta.location)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            out.push((meta.location.to_string(), bytes));
        }
        out
    })
}

fn holds_secret(bytes: &[u8]) -> bool {
    bytes.windows(SECRET.len()).any(|w| w == SECRET)
}

#[test]
fn a_redacted_event_leaves_the_bucket_at_the_next_round() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 500, 25);
    let secret = store
        .append(vec![
            gesta::NewEvent::new("Secret", SECRET.to_vec()).tag("user:secret"),
        ])
        .expect("append the secret")
        .last;
    fill(&store, 501, 1_500, 25);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    shipper.ship_now().expect("ship");
    assert!(
        objects(&location).iter().any(|(_, b)| holds_secret(b)),
        "the secret was shipped (the search can find it)"
    );

    store
        .redact(&gesta::lifecycle::Target::Positions(vec![secret]))
        .expect("redact");
    store.compact().expect("compact: the bytes leave the store");
    shipper.ship_now().expect("ship");
    let left: Vec<String> = objects(&location)
        .into_iter()
        .filter(|(_, b)| holds_secret(b))
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "the secret is still in {left:?}");
    let restored = dir.path().join("restored");
    restore(&location, &restored).expect("restore");
    check_restored(&restored, &read_all(&store));
    shipper.stop().expect("stop");
    store.close().expect("close");
}

#[test]
fn compressed_segments_ship_and_restore_and_their_plain_copies_leave_the_bucket() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let compressed = || options().compression(Some(gesta::Compression::default()));
    let store = Store::open_with(dir.path().join("src"), compressed()).expect("open");
    fill(&store, 0, 2_000, 20);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    shipper.ship_now().expect("ship");
    let rt = runtime();
    let files = |rt: &tokio::runtime::Runtime| -> Vec<String> {
        rt.block_on(gesta_tier::fence::load_checkpoint(&location))
            .expect("checkpoint")
            .files
            .into_iter()
            .map(|f| f.path)
            .collect()
    };
    let before = files(&rt);
    // Sealing compresses in the background: compact makes it happen now.
    store.compact().expect("compact");
    shipper.ship_now().expect("ship");
    let after = files(&rt);
    let zseg: Vec<&String> = after.iter().filter(|p| p.ends_with(".zseg")).collect();
    assert!(
        !zseg.is_empty(),
        "compressed segments are shipped: {after:?}"
    );
    for z in &zseg {
        let plain = z.replace(".zseg", ".seg");
        assert!(
            !after.contains(&plain),
            "{plain} was replaced by {z} (before: {before:?})"
        );
    }
    // Only what the checkpoint names is left under data/.
    let checkpoint = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint");
    let named: std::collections::HashSet<String> = checkpoint
        .keys()
        .map(|k| location.key(k).to_string())
        .collect();
    for (key, _) in objects(&location) {
        assert!(
            !key.contains("/data/") || named.contains(&key),
            "{key} is named by no checkpoint"
        );
    }
    let restored = dir.path().join("restored");
    restore(&location, &restored).expect("restore");
    let expected = read_all(&store);
    shipper.stop().expect("stop");
    store.close().expect("close");
    let report = gesta::inspect::verify(&restored, &mut |_, _| {}).expect("verify");
    assert!(report.findings.iter().all(|f| f.harmless), "{report:?}");
    let back = Store::open_with(&restored, compressed()).expect("open");
    assert!(
        read_all(&back) == expected,
        "the restored events are the store's"
    );
    back.close().expect("close");
}

#[test]
fn an_upload_that_times_out_is_retried_and_never_reported_shipped() {
    let endpoint = endpoint();
    let bucket = unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let proxy = Proxy::start(&endpoint);
    // Requests give up after 1 s (the default is 30 s).
    let location = location_with(&proxy.endpoint, &bucket, "p", &[("timeout", "1s")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    let shipper = Shipper::start(
        store.clone(),
        location,
        ShipOptions::default()
            .interval(Duration::from_millis(50))
            .backoff(Duration::from_millis(50), Duration::from_millis(400)),
    )
    .expect("start");
    fill(&store, 0, 100, 10);
    assert!(shipper.wait_shipped(100, Duration::from_secs(60)));

    proxy.stall();
    fill(&store, 100, 100, 10);
    let started = Instant::now();
    let failed = shipper.ship_now();
    assert!(failed.is_err(), "a round whose requests hang: {failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the round gave up in {:?}",
        started.elapsed()
    );
    let status = shipper.status();
    assert_eq!(status.shipped_head, 100, "nothing unshipped is reported");
    let error = status.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "{error}"
    );
    assert_eq!(shipper.lag(), 100);

    proxy.mend();
    assert!(
        shipper.wait_shipped(200, Duration::from_secs(60)),
        "shipping resumes: {:?}",
        shipper.status()
    );
    shipper.stop().expect("stop");
    let restored = dir.path().join("restored");
    let direct = location_at(&endpoint, &bucket, "p");
    assert_eq!(restore(&direct, &restored).expect("restore").head, 200);
    check_restored(&restored, &read_all(&store));
    store.close().expect("close");
}

#[test]
fn a_shipper_whose_store_was_closed_first_stops_retrying_and_says_why() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 50, 10);
    // Rounds only when asked, but retries after 10 to 20 ms.
    let shipper = Shipper::start(
        store.clone(),
        location,
        on_demand().backoff(Duration::from_millis(10), Duration::from_millis(20)),
    )
    .expect("start");
    assert!(shipper.wait_shipped(50, Duration::from_secs(60)));
    fill(&store, 50, 10, 10);
    store.close().expect("close");
    assert!(matches!(
        shipper.ship_now(),
        Err(Error::Store(gesta::Error::Closed))
    ));
    let failures = shipper.status().failures;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        shipper.status().failures,
        failures,
        "no retries of a closed store"
    );
    assert_eq!(shipper.stop().expect("stop"), 50);
}

/// A MANIFEST and a cursor file end with their own CRC-32, so every
/// version of one has the same CRC-32 (CRC_RESIDUE): each new version
/// must be shipped all the same.
#[test]
fn files_that_end_with_their_own_crc_are_shipped_again_when_they_change() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path().join("src"), options()).expect("open");
    fill(&store, 0, 300, 10);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("start");
    let cursor = store
        .subscribe_durable("reader", &gesta::Query::all())
        .expect("subscribe");
    cursor.ack(10).expect("ack");
    store.compact().expect("compact: one run");
    assert_eq!(shipper.ship_now().expect("ship"), 300);
    // The same lengths: a cursor at another position, a MANIFEST of one
    // other run.
    fill(&store, 300, 300, 10);
    cursor.ack(100).expect("ack");
    store.compact().expect("compact: one run");
    assert_eq!(shipper.ship_now().expect("ship"), 600);
    drop(cursor);

    let restored = dir.path().join("restored");
    restore(&location, &restored).expect("restore");
    check_restored(&restored, &read_all(&store));
    let reopened = Store::open_with(&restored, options()).expect("open");
    let cursors = reopened.durable_subscriptions().expect("cursors");
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].acknowledged, 100);
    reopened.close().expect("close");
    shipper.stop().expect("stop");
    store.close().expect("close");
}
