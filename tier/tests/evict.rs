//! Eviction against the S3 server (moto's, on loopback): sealed segments
//! the bucket holds leave the local disk, and reads of them go to the
//! bucket through `BucketSegments`; a store opened without it refuses,
//! naming the segment; a corrupt chunk is refused and never served; an
//! unreachable bucket fails reads of evicted segments with a typed error
//! while the local data stays usable; erasure brings a segment back local.

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gesta::{
    Error as StoreError, Options, Query, ReadOptions, RecordedEvent, SealedSegment, Store,
};
use gesta_tier::{BucketOptions, BucketSegments, EvictPolicy, Evictor, Location, Shipper};
use harness::*;
use object_store::ObjectStoreExt;

fn remote(location: &Location, options: BucketOptions) -> Arc<BucketSegments> {
    Arc::new(BucketSegments::with_options(location.clone(), options).expect("bucket segments"))
}

fn with_remote(remote: Arc<BucketSegments>) -> Options {
    options().remote_segments(remote)
}

/// The store in `dir`, opened with the default reader of `location`'s
/// evicted segments.
fn open_evictable(dir: &Path, location: &Location) -> Store {
    Store::open_with(dir, with_remote(remote(location, BucketOptions::default()))).expect("open")
}

fn wal_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("wal"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tagged(store: &Store, tag: &str) -> gesta::Result<Vec<RecordedEvent>> {
    store
        .read(&Query::tag(tag), ReadOptions::forwards())?
        .collect()
}

fn all(store: &Store) -> gesta::Result<Vec<RecordedEvent>> {
    store
        .read(&Query::all(), ReadOptions::forwards())?
        .collect()
}

/// A store of 3,000 events in 64 KiB segments, shipped, with every
/// sealed segment but the newest evicted: (store, shipper, the events).
fn evicted_store(
    dir: &Path,
    location: &Location,
    remote: Arc<BucketSegments>,
) -> (Store, Shipper, Vec<RecordedEvent>) {
    let store = Store::open_with(dir, with_remote(remote)).expect("open");
    fill(&store, 0, 3_000, 50);
    let expected = read_all(&store);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 3_000);
    let policy = EvictPolicy {
        keep_newest: 1,
        keep_bytes: 0,
    };
    let report = Evictor::new(location.clone(), policy)
        .expect("evictor")
        .run(&store)
        .expect("evict");
    let sealed = store.sealed_segments();
    assert!(sealed.len() >= 4, "{sealed:?}");
    assert_eq!(report.evicted.len(), sealed.len() - 1, "{report:?}");
    assert!(sealed[..sealed.len() - 1].iter().all(|s| s.evicted));
    assert!(!sealed.last().expect("one").evicted);
    // The data files are gone; markers and offset tables stay.
    let names = wal_names(dir);
    for s in &sealed[..sealed.len() - 1] {
        assert!(!names.contains(&format!("{:020}.seg", s.first_position)));
        assert!(names.contains(&format!("{:020}.evicted", s.first_position)));
        assert!(names.contains(&format!("{:020}.off", s.first_position)));
    }
    (store, shipper, expected)
}

/// [`evicted_store`] with the bucket's own remote, shipped, then closed:
/// its first (evicted) segment and every event it holds.
fn evicted_and_closed(dir: &Path, location: &Location) -> (SealedSegment, Vec<RecordedEvent>) {
    let (store, shipper, expected) =
        evicted_store(dir, location, remote(location, BucketOptions::default()));
    let first = store.sealed_segments()[0].clone();
    shipper.stop().expect("stop");
    store.close().expect("close");
    (first, expected)
}

#[test]
fn evicted_segments_are_read_from_the_bucket_and_the_bucket_keeps_them() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = remote(&location, BucketOptions::default());
    let (store, shipper, expected) =
        evicted_store(&dir.path().join("src"), &location, bucket.clone());
    let tag = tagged(&store, "mod:3").expect("read");
    assert_eq!(all(&store).expect("read all"), expected);
    let cold = bucket.stats();
    assert!(cold.bytes_fetched > 100_000, "{cold:?}");
    // Warm: the cache serves it all again.
    assert_eq!(all(&store).expect("read all"), expected);
    assert_eq!(bucket.stats().bytes_fetched, cold.bytes_fetched);
    assert_eq!(tagged(&store, "mod:3").expect("read"), tag);

    // Later rounds keep naming the evicted segments' chunks (the markers
    // are not shipped): a restore is the whole store, local.
    fill(&store, 3_000, 500, 50);
    let expected = read_all(&store);
    assert_eq!(shipper.ship_now().expect("ship"), 3_500);
    let restored = dir.path().join("restored");
    gesta_tier::restore(&location, &restored).expect("restore");
    assert!(
        wal_names(&restored)
            .iter()
            .all(|n| !n.ends_with(".evicted"))
    );
    check_restored(&restored, &expected);

    // A backup of the evicted store links the markers: it opens with the
    // same remote, and holds the same events.
    let backup = dir.path().join("backup");
    store.backup(&backup).expect("backup");
    assert!(wal_names(&backup).iter().any(|n| n.ends_with(".evicted")));
    let copy = Store::open_with(
        &backup,
        with_remote(remote(&location, BucketOptions::default())),
    )
    .expect("open the backup");
    assert_eq!(all(&copy).expect("read"), all(&store).expect("read"));
    copy.close().expect("close");
    shipper.stop().expect("stop");
    store.close().expect("close");
}

#[test]
fn a_store_reopens_with_the_remote_and_refuses_without_it_naming_the_segment() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let (first, expected) = evicted_and_closed(&dir, &location);

    match Store::open_with(&dir, options()) {
        Err(StoreError::Evicted {
            file,
            first_position,
            last_position,
        }) => {
            assert_eq!(file, first.path);
            assert_eq!((first_position, last_position), (1, first.last_position));
            let message = StoreError::Evicted {
                file,
                first_position,
                last_position,
            }
            .to_string();
            assert!(message.contains("evicted to remote storage"), "{message}");
        }
        other => panic!("expected Error::Evicted, got {other:?}"),
    }
    // Offline tools say the same.
    assert!(matches!(
        gesta::inspect::verify(&dir, &mut |_, _| {}),
        Err(StoreError::Evicted { .. })
    ));
    // Nothing was changed by the refusal: with the remote it opens, and
    // an offset table lost meanwhile is rebuilt from a whole, checked
    // fetch of the segment.
    std::fs::remove_file(dir.join(format!("wal/{:020}.off", first.first_position)))
        .expect("remove a table");
    let bucket = remote(&location, BucketOptions::default());
    let store = Store::open_with(&dir, with_remote(bucket.clone())).expect("reopen");
    assert!(bucket.stats().bytes_fetched >= first.len);
    assert!(
        dir.join(format!("wal/{:020}.off", first.first_position))
            .exists()
    );
    assert!(store.sealed_segments()[0].evicted);
    assert_eq!(all(&store).expect("read"), expected);
    fill(&store, 3_000, 10, 10);
    assert_eq!(store.head(), 3_010);
    store.close().expect("close");
}

#[test]
fn an_eviction_interrupted_before_the_file_was_removed_keeps_the_local_file() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let store = open_evictable(&dir, &location);
    fill(&store, 0, 3_000, 50);
    let expected = read_all(&store);
    let first = store.sealed_segments()[0].clone();
    let seg = dir.join(format!("wal/{:020}.seg", first.first_position));
    let bytes = std::fs::read(&seg).expect("read the segment");
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("ship");
    shipper.ship_now().expect("ship");
    Evictor::new(location.clone(), EvictPolicy::default())
        .expect("evictor")
        .run(&store)
        .expect("evict");
    shipper.stop().expect("stop");
    store.close().expect("close");
    drop(store);
    // As if the process died between the marker and the removal.
    std::fs::write(&seg, &bytes).expect("put the file back");
    let store = open_evictable(&dir, &location);
    assert!(!store.sealed_segments()[0].evicted);
    assert!(store.sealed_segments()[1].evicted);
    assert!(
        !dir.join(format!("wal/{:020}.evicted", first.first_position))
            .exists()
    );
    assert_eq!(read_all(&store), expected);
    store.close().expect("close");
}

#[test]
fn a_corrupt_chunk_is_refused_and_never_served() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let (first, expected) = evicted_and_closed(&dir, &location);

    let rt = runtime();
    let checkpoint = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint");
    let entry = checkpoint
        .file(&format!("wal/{:020}.seg", first.first_position))
        .expect("shipped");
    let key = location.key(&entry.chunks[0].key);
    let original = rt
        .block_on(async { location.store().get(&key).await?.bytes().await })
        .expect("get");
    let mut damaged = original.to_vec();
    // A byte in the middle of the records, under a record's checksum.
    let at = damaged.len() / 2;
    damaged[at] ^= 0x40;
    rt.block_on(location.store().put(&key, damaged.into()))
        .expect("damage");

    for block in [64 << 10, 4096] {
        let bucket = remote(
            &location,
            BucketOptions {
                block_bytes: block,
                fetch_bytes: 0,
                ..BucketOptions::default()
            },
        );
        let store = Store::open_with(&dir, with_remote(bucket)).expect("open: no byte fetched");
        // A scan reads the chunk whole: its CRC-32 refuses it.
        match all(&store) {
            Err(StoreError::Remote { file, source }) => {
                assert_eq!(file, first.path);
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{source}");
                assert!(source.to_string().contains("CRC-32"), "{source}");
            }
            other => panic!(
                "block {block}: expected a refusal, got {:?}",
                other.as_ref().map(Vec::len)
            ),
        }
        // Point reads (a tag's events) read one block of it where blocks
        // are smaller than the chunk: the damaged record's checksum
        // refuses it; every event served is the right one.
        let mut refused = 0;
        for m in 0..7 {
            let tag = format!("mod:{m}");
            let want: Vec<_> = expected
                .iter()
                .filter(|e| e.tags.contains(&tag))
                .cloned()
                .collect();
            match tagged(&store, &tag) {
                Ok(got) => assert_eq!(got, want, "{tag}"),
                Err(StoreError::Corruption { file, .. }) if block < entry.chunks[0].len => {
                    assert_eq!(file, first.path);
                    refused += 1;
                }
                Err(StoreError::Remote { file, source }) if block >= entry.chunks[0].len => {
                    assert_eq!(file, first.path);
                    assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{source}");
                    refused += 1;
                }
                Err(e) => panic!("block {block}, {tag}: {e}"),
            }
        }
        assert!(refused >= 1, "block {block}: the damaged record was read");
        // Events of the other segments are served, each one right.
        let later = store
            .read(
                &Query::all(),
                ReadOptions::forwards().start(first.last_position),
            )
            .expect("read")
            .collect::<gesta::Result<Vec<_>>>()
            .expect("the other segments");
        assert_eq!(&later[..], &expected[first.last_position as usize..]);
        store.close().expect("close");
    }

    // Mended, it reads again (the damage was never cached).
    rt.block_on(location.store().put(&key, original.into()))
        .expect("mend");
    let store = open_evictable(&dir, &location);
    assert_eq!(all(&store).expect("read"), expected);
    store.close().expect("close");
}

#[test]
fn an_unreachable_bucket_fails_reads_of_evicted_segments_and_the_store_goes_on() {
    let endpoint = endpoint();
    let bucket_name = unique("gesta-t");
    create_bucket(&endpoint, &bucket_name);
    let proxy = Proxy::start(&endpoint);
    let direct = location_at(&endpoint, &bucket_name, "p");
    let through_proxy = location_with(&proxy.endpoint, &bucket_name, "p", &[("timeout", "2s")]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let bucket = remote(
        &through_proxy,
        BucketOptions {
            attempts: 3,
            backoff: Duration::from_millis(20),
            ..BucketOptions::default()
        },
    );
    let (store, shipper, expected) = evicted_store(&dir, &direct, bucket.clone());
    let first = store.sealed_segments()[0].clone();

    proxy.cut();
    let started = Instant::now();
    let first_event = store
        .read(&Query::all(), ReadOptions::forwards().limit(1))
        .and_then(|mut r| r.next().transpose());
    match first_event {
        Err(StoreError::Remote { file, .. }) => assert_eq!(file, first.path),
        other => panic!("expected Error::Remote, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(bucket.stats().failures >= 3);
    // The store goes on: appends, and reads of what is local.
    fill(&store, 3_000, 100, 10);
    let tail = store
        .read(&Query::all(), ReadOptions::forwards().start(3_000))
        .expect("read")
        .collect::<gesta::Result<Vec<_>>>()
        .expect("local reads");
    assert_eq!(tail.len(), 100);

    proxy.mend();
    let again = all(&store).expect("read after the bucket is back");
    assert_eq!(&again[..3_000], &expected[..]);
    shipper.stop().expect("stop");
    store.close().expect("close");
}

#[test]
fn erasing_an_event_of_an_evicted_segment_brings_the_segment_back_and_ships_it_anew() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let (store, shipper, _) =
        evicted_store(&dir, &location, remote(&location, BucketOptions::default()));
    let first = store.sealed_segments()[0].clone();
    let rt = runtime();
    let seg = format!("wal/{:020}.seg", first.first_position);
    let before = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint")
        .file(&seg)
        .expect("shipped")
        .clone();

    let secret = store.read_last(&Query::tag("mod:2")).expect("read");
    let position = store
        .read(&Query::tag("mod:2"), ReadOptions::forwards().limit(1))
        .expect("read")
        .next()
        .expect("one")
        .expect("read")
        .position;
    assert!(position <= first.last_position);
    drop(secret);
    store
        .redact(&gesta::Target::Positions(vec![position]))
        .expect("redact");
    store.compact().expect("compact: erase");
    let now = store.sealed_segments()[0].clone();
    assert!(!now.evicted, "the erasure rewrote it locally");
    let names = wal_names(&dir);
    assert!(!names.contains(&format!("{:020}.evicted", first.first_position)));

    shipper.ship_now().expect("ship");
    let after = rt
        .block_on(gesta_tier::fence::load_checkpoint(&location))
        .expect("checkpoint")
        .file(&seg)
        .cloned();
    // Shipped anew (plain or compressed), the old bytes gone from the bucket.
    assert_ne!(after.as_ref(), Some(&before));
    for c in &before.chunks {
        assert!(
            rt.block_on(location.store().head(&location.key(&c.key)))
                .is_err(),
            "the erased bytes' chunk {} is deleted",
            c.key
        );
    }
    shipper.stop().expect("stop");
    store.close().expect("close");
}

#[test]
fn a_round_refuses_an_evicted_segment_the_bucket_does_not_hold() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let (store, shipper, _) =
        evicted_store(&dir, &location, remote(&location, BucketOptions::default()));
    shipper.stop().expect("stop");
    // Another prefix has never held the evicted segments: a checkpoint
    // without them would be a store that does not restore, so no round
    // writes one.
    let (_other_bucket, other) = fresh_location();
    match Shipper::start(store.clone(), other.clone(), on_demand()) {
        Err(gesta_tier::Error::InvalidInput(reason)) => {
            assert!(reason.contains("evicted"), "{reason}")
        }
        Ok(shipper) => {
            let e = shipper.ship_now().expect_err("a round is refused");
            assert!(e.to_string().contains("evicted"), "{e}");
            assert_eq!(shipper.shipped_head(), 0);
        }
        Err(e) => panic!("{e}"),
    }
    // The prefix holds only the fencing checkpoint: nothing.
    let restored = gesta_tier::restore(&other, tmp.path().join("r")).expect("restore");
    assert_eq!(restored.head, 0);
    store.close().expect("close");
}

#[test]
fn an_evicted_segment_as_the_newest_file_is_followed_by_a_new_active_segment() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let bucket = remote(&location, BucketOptions::default());
    let store = Store::open_with(&dir, with_remote(bucket.clone())).expect("open");
    fill(&store, 0, 1_000, 50);
    store.seal_active_segment().expect("seal");
    let expected = read_all(&store);
    let shipper = Shipper::start(store.clone(), location.clone(), on_demand()).expect("ship");
    shipper.ship_now().expect("ship");
    let policy = EvictPolicy {
        keep_newest: 0,
        keep_bytes: 0,
    };
    let report = Evictor::new(location.clone(), policy)
        .expect("evictor")
        .run(&store)
        .expect("evict");
    assert_eq!(report.evicted.len(), store.sealed_segments().len());
    shipper.stop().expect("stop");
    store.close().expect("close");
    drop(store);
    // The empty active segment's creation "lost": the newest file is a
    // marker.
    let active = wal_names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect::<Vec<_>>();
    assert_eq!(active.len(), 1, "only the empty active segment is local");
    std::fs::remove_file(dir.join("wal").join(&active[0])).expect("remove");
    let store = Store::open_with(&dir, with_remote(bucket)).expect("reopen");
    assert_eq!(store.head(), 1_000);
    fill(&store, 1_000, 10, 10);
    let all = read_all(&store);
    assert_eq!(&all[..1_000], &expected[..]);
    assert_eq!(all.len(), 1_010);
    store.close().expect("close");
}

#[test]
fn a_shipper_with_an_eviction_policy_evicts_after_each_round() {
    let (_bucket, location) = fresh_location();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let store = open_evictable(&dir, &location);
    let policy = EvictPolicy {
        keep_newest: 1,
        keep_bytes: 0,
    };
    let shipper =
        Shipper::start(store.clone(), location.clone(), on_demand().evict(policy)).expect("ship");
    fill(&store, 0, 3_000, 50);
    let expected = read_all(&store);
    shipper.ship_now().expect("ship");
    let sealed = store.sealed_segments();
    assert!(sealed.len() >= 4);
    assert!(sealed[..sealed.len() - 1].iter().all(|s| s.evicted));
    assert!(!sealed[sealed.len() - 1].evicted);
    let status = shipper.status();
    assert_eq!(status.segments_evicted, sealed.len() as u64 - 1);
    assert!(status.evict_error.is_none());
    // More rounds: the newly sealed segments follow, the bucket keeps them all.
    fill(&store, 3_000, 1_000, 50);
    shipper.ship_now().expect("ship");
    let sealed = store.sealed_segments();
    assert!(sealed[..sealed.len() - 1].iter().all(|s| s.evicted));
    let expected: Vec<_> = expected
        .into_iter()
        .chain(read_all(&store).into_iter().skip(3_000))
        .collect();
    assert_eq!(read_all(&store), expected);
    shipper.stop().expect("stop");
    store.close().expect("close");
    let restored = tmp.path().join("restored");
    gesta_tier::restore(&location, &restored).expect("restore");
    check_restored(&restored, &expected);
}
