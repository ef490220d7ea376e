//! Read replicas against a real S3-compatible server (moto's, on
//! loopback): a replica follows a writer that ships while it appends,
//! every event shipped becomes readable on the replica byte for byte,
//! tag queries and live subscriptions work there, its writes are refused
//! naming the writer, its lag is reported and goes to zero; it follows
//! the writer's segments rolling over and being compressed, and a new
//! writer taking over the prefix; a bucket whose history is not the
//! replica's is reported.

mod harness;

use std::time::{Duration, Instant};

use gesta::{Query, ReadOptions, RecordedEvent, Store};
use gesta_tier::{Error, Replica, ReplicaOptions, ShipOptions, Shipper};
use harness::*;
use object_store::ObjectStoreExt;

fn replica_options() -> ReplicaOptions {
    ReplicaOptions::default()
        .interval(Duration::from_millis(50))
        .store(options())
}

fn tagged(store: &Store, tag: &str) -> Vec<RecordedEvent> {
    store
        .read(&Query::tag(tag), ReadOptions::forwards())
        .expect("read")
        .collect::<gesta::Result<Vec<_>>>()
        .expect("read")
}

fn same_events(replica: &Store, writer: &Store) {
    let (ours, theirs) = (read_all(replica), read_all(writer));
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(
            a == b,
            "position {}: replica {a:?}, writer {b:?}",
            b.position
        );
    }
}

fn wal_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("wal"))
        .expect("wal")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_replica_follows_a_writer_that_ships_while_it_appends() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    fill(&writer, 0, 300, 10);
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default()
            .interval(Duration::from_millis(50))
            .writer("writer-one"),
    )
    .expect("start shipping");
    assert!(shipper.wait_shipped(300, Duration::from_secs(60)));

    let replica =
        Replica::start(location.clone(), dir.path().join("r"), replica_options()).expect("start");
    let store = replica.store().clone();
    assert!(store.head() >= 300, "restored at the shipped head");
    assert!(
        store
            .replica_of()
            .expect("a replica")
            .contains("writer-one")
    );
    let mut live = store.subscribe(&Query::tag("mod:3"), 0).expect("subscribe");

    // The writer goes on appending while it ships; the replica follows.
    let appender = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                fill(&writer, 300 + i * 50, 50, 5);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut seen = Vec::new();
    let mut max_behind = 0;
    let want: usize = (0..2_300).filter(|i| i % 7 == 3).count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < want {
        assert!(Instant::now() < deadline, "got {} of {want}", seen.len());
        max_behind = max_behind.max(replica.status().behind);
        if let Some(batch) = live
            .recv_timeout(Duration::from_millis(100))
            .expect("the subscription works")
        {
            seen.extend(batch);
        }
    }
    appender.join().expect("appender");
    assert_eq!(writer.head(), 2_300);
    assert!(shipper.wait_shipped(2_300, Duration::from_secs(60)));
    assert!(
        replica.wait_for(2_300, Duration::from_secs(60)),
        "{:?}",
        replica.status()
    );

    // Byte for byte: positions, types, tags, data, metadata, streams,
    // revisions, commit times; and in the live subscription too.
    same_events(&store, &writer);
    assert_eq!(seen, tagged(&writer, "mod:3"));
    assert_eq!(tagged(&store, "mod:5"), tagged(&writer, "mod:5"));
    assert_eq!(
        store.stream_revision("s-4").expect("revision"),
        writer.stream_revision("s-4").expect("revision")
    );
    // The writer rolled over segments while the replica followed.
    assert!(wal_files(&dir.path().join("w")).len() > 3);

    // Writes are refused, naming the writer.
    let refused = store.append(vec![event(9_999)]).unwrap_err();
    match &refused {
        gesta::Error::Replica { writer } => {
            assert!(writer.contains("writer-one"), "{writer}");
            assert!(writer.contains("epoch 1"), "{writer}");
        }
        other => panic!("{other:?}"),
    }
    assert!(refused.to_string().contains("writer-one"), "{refused}");

    // The lag: reported while the writer appended, zero once it stops.
    assert_eq!(replica.poll_now().expect("poll"), 2_300);
    let status = replica.status();
    assert_eq!(
        (status.head, status.bucket_head, status.behind),
        (2_300, 2_300, 0)
    );
    assert_eq!(replica.lag(), 0);
    assert!(status.since_last_poll.expect("polled") < Duration::from_secs(5));
    assert!(
        status.polls > 1 && status.events_applied >= 2_000,
        "{status:?}"
    );
    assert_eq!(status.epoch, 1);
    assert_eq!(status.writer, "writer-one");
    assert!(status.diverged.is_none() && status.last_error.is_none());
    assert!(
        status.bytes_fetched < 3 * dir_bytes(&dir.path().join("w/wal")),
        "fetched {} bytes",
        status.bytes_fetched
    );
    eprintln!("largest lag seen: {max_behind} positions; {status:?}");

    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop the replica");
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

#[test]
fn a_replica_follows_compressed_segments_and_a_new_writer_on_the_prefix() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let compressed = options().compression(Some(gesta::Compression::default()));
    let writer = Store::open_with(dir.path().join("w"), compressed.clone()).expect("open");
    fill(&writer, 0, 50, 5);
    let on_demand = ShipOptions::default()
        .interval(Duration::from_secs(3600))
        .writer("writer-one");
    let shipper = Shipper::start(writer.clone(), location.clone(), on_demand).expect("ship");
    // The first round runs in the background: wait for it.
    assert_eq!(shipper.ship_now().expect("ship"), 50);
    let replica = Replica::start(
        location.clone(),
        dir.path().join("r"),
        replica_options().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    assert_eq!(replica.poll_now().expect("poll"), 50);

    // Many segments, sealed and compressed before the replica sees them.
    fill(&writer, 50, 3_000, 20);
    writer.compact().expect("compact");
    let files = wal_files(&dir.path().join("w"));
    assert!(
        files.iter().filter(|n| n.ends_with(".zseg")).count() > 2,
        "{files:?}"
    );
    assert_eq!(shipper.ship_now().expect("ship"), 3_050);
    assert_eq!(replica.poll_now().expect("poll"), 3_050);
    same_events(replica.store(), &writer);

    // The active segment grows and rolls over; the first segment the
    // replica followed in part is compressed meanwhile.
    fill(&writer, 3_050, 30, 3);
    assert_eq!(shipper.ship_now().expect("ship"), 3_080);
    assert_eq!(replica.poll_now().expect("poll"), 3_080);
    fill(&writer, 3_080, 1_000, 10);
    writer.compact().expect("compact");
    assert_eq!(shipper.ship_now().expect("ship"), 4_080);
    assert_eq!(replica.poll_now().expect("poll"), 4_080);
    same_events(replica.store(), &writer);

    // A new writer takes the prefix over (restored from the bucket, as
    // after losing the first one's machine); the replica follows it.
    shipper.stop().expect("stop");
    writer.close().expect("close");
    gesta_tier::restore(&location, dir.path().join("w2")).expect("restore");
    let writer = Store::open_with(dir.path().join("w2"), compressed).expect("open");
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default()
            .interval(Duration::from_secs(3600))
            .writer("writer-two"),
    )
    .expect("ship");
    fill(&writer, 4_080, 200, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 4_280);
    assert_eq!(replica.poll_now().expect("poll"), 4_280);
    same_events(replica.store(), &writer);
    let status = replica.status();
    assert_eq!((status.epoch, status.writer.as_str()), (2, "writer-two"));
    let refused = replica.store().append(vec![event(1)]).unwrap_err();
    assert!(refused.to_string().contains("writer-two"), "{refused}");
    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop");
}

#[test]
fn a_bucket_whose_history_is_not_the_replicas_is_reported() {
    let (bucket, location) = fresh_location();
    let other = location_at(&endpoint(), &bucket, "stores/other");
    let dir = tempfile::tempdir().expect("tempdir");
    let on_demand = || ShipOptions::default().interval(Duration::from_secs(3600));
    // A store of 200 events at the location, one of 100 at the other.
    for (place, count, name) in [(&location, 200, "a"), (&other, 100, "b")] {
        let store = Store::open_with(dir.path().join(name), options()).expect("open");
        fill(&store, 0, count, 10);
        let shipper = Shipper::start(store.clone(), place.clone(), on_demand()).expect("ship");
        shipper.stop().expect("stop");
        store.close().expect("close");
    }
    let replica = Replica::start(
        location.clone(),
        dir.path().join("r"),
        replica_options().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    assert_eq!(replica.poll_now().expect("poll"), 200);

    // The location's checkpoint replaced by the other store's: a head
    // below the replica's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let checkpoint = other
            .store()
            .get(&other.key("CHECKPOINT"))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        location
            .store()
            .put(&location.key("CHECKPOINT"), checkpoint.into())
            .await
            .expect("put");
    });
    let e = replica.poll_now().unwrap_err();
    assert!(matches!(e, Error::Diverged { .. }), "{e}");
    let status = replica.status();
    assert!(status.diverged.is_some(), "{status:?}");
    assert_eq!((status.head, status.bucket_head), (200, 100));
    assert_eq!(replica.store().head(), 200, "nothing was applied");
    // It stays so: the replica applies nothing more.
    assert!(matches!(replica.poll_now(), Err(Error::Diverged { .. })));
    replica.stop().expect("stop");
}

/// A writer whose history differs from the replica's below the
/// replica's head — here a store restored from the bucket earlier that
/// then appended events of its own — is reported, not followed, even when
/// its file has a record ending at the very offset the replica's cursor
/// stands at (events of one size, one per append, do that): the replica
/// compares the record before its cursor with the writer's.
#[test]
fn a_writer_whose_history_differs_below_the_replicas_head_is_reported() {
    let (bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let on_demand = |name: &str| {
        ShipOptions::default()
            .interval(Duration::from_secs(3600))
            .writer(name)
    };
    // Events of one size: only the letter differs between the writers.
    let ev = |who: char, i: u64| gesta::NewEvent::new("T", format!("{who}{i:06}")).tag("t");
    let a = Store::open_with(dir.path().join("a"), options()).expect("open");
    for i in 1..=100 {
        a.append(vec![ev('a', i)]).expect("append");
    }
    let shipper = Shipper::start(a.clone(), location.clone(), on_demand("writer-a")).expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 100);
    shipper.stop().expect("stop");
    // B: the bucket restored at 100.
    gesta_tier::restore(&location, dir.path().join("b")).expect("restore");
    // The replica follows A to 120.
    let replica = Replica::start(
        location.clone(),
        dir.path().join("r"),
        replica_options().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    assert_eq!(replica.poll_now().expect("poll"), 100);
    for i in 101..=120 {
        a.append(vec![ev('a', i)]).expect("append");
    }
    let shipper = Shipper::start(a.clone(), location.clone(), on_demand("writer-a")).expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 120);
    assert_eq!(replica.poll_now().expect("poll"), 120);
    shipper.stop().expect("stop");
    a.close().expect("close");
    // B appends its own 101..=130. Shipping it to the prefix is refused
    // before anything is claimed: it would replace A's 101..=120.
    let b = Store::open_with(dir.path().join("b"), options()).expect("open");
    for i in 101..=130 {
        b.append(vec![ev('b', i)]).expect("append");
    }
    for takeover in [false, true] {
        let refused = Shipper::start(
            b.clone(),
            location.clone(),
            on_demand("writer-b").takeover(takeover),
        );
        assert!(
            matches!(refused, Err(Error::HistoryDiffers { .. })),
            "{:?}",
            refused.map(|_| ())
        );
    }
    assert_eq!(replica.poll_now().expect("poll"), 120, "the bucket is A's");
    // The bucket's files replaced by B's all the same (shipped elsewhere
    // and copied over): the replica finds it diverged.
    let other = location_at(&endpoint(), &bucket, "stores/other");
    let shipper = Shipper::start(b.clone(), other.clone(), on_demand("writer-b")).expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 130);
    copy_prefix(&other, &location);
    let polled = replica.poll_now();
    assert!(
        matches!(polled, Err(Error::Diverged { .. })),
        "the replica followed a writer whose history is not its own: {polled:?}"
    );
    assert_eq!(replica.store().head(), 120, "nothing applied");
    let data = |s: &Store, p: u64| {
        s.read(&Query::all(), ReadOptions::forwards().start(p - 1).limit(1))
            .expect("read")
            .next()
            .expect("an event")
            .expect("read")
            .data
    };
    assert_eq!(&data(replica.store(), 110)[..], b"a000110");
    shipper.stop().expect("stop");
    b.close().expect("close");
    replica.stop().expect("stop");
}

#[test]
fn a_replica_follows_the_writers_lifecycle_operations() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    fill(&writer, 0, 500, 10);
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 500);
    let replica = Replica::start(
        location.clone(),
        dir.path().join("r"),
        replica_options().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    assert_eq!(replica.poll_now().expect("poll"), 500);

    // Tags added, an event redacted (and its bytes erased by compaction),
    // events removed, a retention rule set; then more events, and a tag
    // added to one of them.
    let late = |s: &Store| tagged(s, "late");
    writer
        .add_tags(
            &gesta::lifecycle::Target::Positions(vec![1, 2, 300]),
            &["late".into()],
        )
        .expect("add tags");
    writer
        .redact(&gesta::lifecycle::Target::Positions(vec![7]))
        .expect("redact");
    writer
        .remove(&gesta::lifecycle::Target::Positions(vec![10, 20]))
        .expect("remove");
    writer
        .set_retention(&gesta::RetentionRule::stream("s-3").max_age(Duration::from_secs(3600)))
        .expect("retention");
    writer.compact().expect("compact: erase");
    fill(&writer, 500, 100, 10);
    writer
        .add_tags(
            &gesta::lifecycle::Target::Positions(vec![590]),
            &["late".into()],
        )
        .expect("add tags");
    assert_eq!(shipper.ship_now().expect("ship"), 600);
    assert_eq!(replica.poll_now().expect("poll"), 600);

    let store = replica.store();
    same_events(store, &writer);
    assert_eq!(late(store).len(), 4);
    assert_eq!(late(store), late(&writer));
    assert!(read_all(store)[6].data.is_empty(), "position 7 redacted");
    assert_eq!(store.events(), 598);
    assert_eq!(
        store.audit_log(0, 100).expect("audit"),
        writer.audit_log(0, 100).expect("audit")
    );
    assert_eq!(replica.status().journal_entries, 5);
    // The replica refuses them itself.
    let refused = store
        .redact(&gesta::lifecycle::Target::Positions(vec![8]))
        .unwrap_err();
    assert!(matches!(refused, gesta::Error::Replica { .. }), "{refused}");
    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop");
}

#[test]
fn an_unreachable_bucket_holds_the_replica_back_and_says_so_and_a_restarted_replica_resumes() {
    // A directory that does not exist yet needs the bucket.
    {
        let endpoint = endpoint();
        let proxy = Proxy::start(&endpoint);
        proxy.cut();
        let nowhere = location_at(&proxy.endpoint, &harness::unique("gesta-t"), "p");
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = Replica::start(nowhere, dir.path().join("r"), replica_options());
        assert!(refused.is_err());
        assert!(!dir.path().join("r").exists());
    }
    let endpoint = endpoint();
    let bucket = harness::unique("gesta-t");
    create_bucket(&endpoint, &bucket);
    let proxy = Proxy::start(&endpoint);
    let through_proxy = location_at(&proxy.endpoint, &bucket, "p");
    let direct = location_at(&endpoint, &bucket, "p");
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    fill(&writer, 0, 200, 20);
    let shipper = Shipper::start(
        writer.clone(),
        direct,
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 200);
    let on_demand = || replica_options().interval(Duration::from_secs(3600));
    let replica =
        Replica::start(through_proxy.clone(), dir.path().join("r"), on_demand()).expect("start");
    assert_eq!(replica.poll_now().expect("poll"), 200);

    // The bucket away: the writer goes on shipping (directly), the
    // replica's polls fail, and its status says so.
    proxy.cut();
    fill(&writer, 200, 100, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 300);
    assert!(replica.poll_now().is_err());
    assert!(replica.poll_now().is_err());
    std::thread::sleep(Duration::from_millis(100));
    let status = replica.status();
    assert_eq!((status.head, status.bucket_head), (200, 200));
    assert_eq!(status.failures_in_a_row, 2, "{status:?}");
    assert!(status.last_error.is_some());
    assert!(status.since_last_poll.expect("polled once") >= Duration::from_millis(100));
    assert!(status.diverged.is_none());

    proxy.mend();
    assert_eq!(replica.poll_now().expect("poll"), 300);
    let status = replica.status();
    assert_eq!((status.behind, status.failures_in_a_row), (0, 0));
    assert!(status.last_error.is_none());
    same_events(replica.store(), &writer);

    // Stopped and started again on its directory while the bucket is
    // away, it serves what it holds; once the bucket is back, it resumes.
    replica.stop().expect("stop");
    fill(&writer, 300, 50, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 350);
    proxy.cut();
    let replica =
        Replica::start(through_proxy, dir.path().join("r"), on_demand()).expect("restart");
    assert_eq!(replica.store().head(), 300);
    assert_eq!(read_all(replica.store()).len(), 300);
    let refused = replica.store().append(vec![event(1)]).unwrap_err();
    assert!(refused.to_string().contains("not reached yet"), "{refused}");
    assert!(replica.poll_now().is_err());
    assert!(replica.status().last_error.is_some());
    proxy.mend();
    assert_eq!(replica.poll_now().expect("poll"), 350);
    same_events(replica.store(), &writer);
    let refused = replica.store().append(vec![event(1)]).unwrap_err();
    assert!(refused.to_string().contains("epoch 1"), "{refused}");

    // Its store closed under it, the replica stops polling.
    replica.store().close().expect("close");
    fill(&writer, 350, 10, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 360);
    let closed = replica.poll_now().unwrap_err();
    assert!(
        matches!(closed, Error::Store(gesta::Error::Closed)),
        "{closed}"
    );
    assert!(matches!(replica.poll_now(), Err(Error::Stopped)));
    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop");
}

#[test]
fn a_replica_restores_the_writers_current_manifest_after_compacted_rounds() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    // Two MANIFESTs of one run each: the same length, and (both ending in
    // their own CRC-32) the same CRC-32, CRC_RESIDUE. The second round
    // must ship the second MANIFEST all the same.
    fill(&writer, 0, 300, 10);
    writer.compact().expect("compact");
    assert_eq!(shipper.ship_now().expect("ship"), 300);
    fill(&writer, 300, 300, 10);
    writer.compact().expect("compact");
    assert_eq!(shipper.ship_now().expect("ship"), 600);

    let replica = Replica::start(location.clone(), dir.path().join("r"), replica_options())
        .expect("the replica opens");
    same_events(replica.store(), &writer);
    assert_eq!(tagged(replica.store(), "mod:4"), tagged(&writer, "mod:4"));
    fill(&writer, 600, 50, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 650);
    assert_eq!(replica.poll_now().expect("poll"), 650);
    same_events(replica.store(), &writer);
    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop");
}

/// Copies the checkpoint at `from` and every chunk object it names to
/// `to`, under the same relative keys: `to` then holds `from`'s store.
fn copy_prefix(from: &gesta_tier::Location, to: &gesta_tier::Location) {
    runtime().block_on(async {
        let raw = get_object(from, from.key("CHECKPOINT")).await;
        let checkpoint = gesta_tier::checkpoint::Checkpoint::decode(&raw).expect("a checkpoint");
        for chunk in checkpoint.files.iter().flat_map(|f| &f.chunks) {
            let bytes = get_object(from, from.key(&chunk.key)).await;
            to.store()
                .put(&to.key(&chunk.key), bytes.into())
                .await
                .expect("put");
        }
        to.store()
            .put(&to.key("CHECKPOINT"), raw.into())
            .await
            .expect("put");
    });
}

/// The bytes of the object `key` at `location`.
async fn get_object(
    location: &gesta_tier::Location,
    key: object_store::path::Path,
) -> bytes::Bytes {
    location
        .store()
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
}

/// The chunk objects of the newest segment the checkpoint at `location`
/// names, with their bytes.
fn newest_segment_chunks(
    location: &gesta_tier::Location,
) -> Vec<(object_store::path::Path, bytes::Bytes)> {
    runtime().block_on(async {
        let get = |key| get_object(location, key);
        let checkpoint =
            gesta_tier::checkpoint::Checkpoint::decode(&get(location.key("CHECKPOINT")).await)
                .expect("a checkpoint");
        let newest = checkpoint
            .files
            .iter()
            .rfind(|f| f.path.starts_with("wal/") && f.path.ends_with(".seg"))
            .expect("a segment");
        let mut out = Vec::new();
        for chunk in &newest.chunks {
            let key = location.key(&chunk.key);
            out.push((key.clone(), get(key).await));
        }
        out
    })
}

fn put_all(location: &gesta_tier::Location, objects: &[(object_store::path::Path, bytes::Bytes)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for (key, bytes) in objects {
            location
                .store()
                .put(key, bytes.clone().into())
                .await
                .expect("put");
        }
    });
}

#[test]
fn a_corrupt_or_missing_chunk_is_never_applied_and_the_replica_resumes_once_it_is_back() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    fill(&writer, 0, 100, 10);
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 100);
    let replica = Replica::start(
        location.clone(),
        dir.path().join("r"),
        replica_options().interval(Duration::from_secs(3600)),
    )
    .expect("start");
    fill(&writer, 100, 50, 10);
    assert_eq!(shipper.ship_now().expect("ship"), 150);
    let good = newest_segment_chunks(&location);

    // Every chunk of the newest segment damaged in its last bytes (where
    // the new records are): refused, nothing applied.
    let damaged: Vec<_> = good
        .iter()
        .map(|(key, bytes)| {
            let mut b = bytes.to_vec();
            let at = b.len() - 10;
            b[at] ^= 0x01;
            (key.clone(), bytes::Bytes::from(b))
        })
        .collect();
    put_all(&location, &damaged);
    let e = replica.poll_now().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Corrupt { .. } | Error::Store(gesta::Error::Corruption { .. })
        ),
        "{e}"
    );
    assert_eq!(replica.store().head(), 100, "nothing of it applied");
    assert_eq!(replica.status().failures_in_a_row, 1);

    // Gone: the poll goes on from a newer checkpoint a few times, then
    // fails; nothing applied.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for (key, _) in &good {
            location.store().delete(key).await.expect("delete");
        }
    });
    assert!(replica.poll_now().is_err());
    let status = replica.status();
    assert_eq!(status.moved, 3, "{status:?}");
    assert_eq!((status.head, status.failures_in_a_row), (100, 2));

    // Back: the replica catches up, byte for byte.
    put_all(&location, &good);
    assert_eq!(replica.poll_now().expect("poll"), 150);
    same_events(replica.store(), &writer);
    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop");
}

/// The writer's snapshots reach the replica: those it saved before the
/// replica started (through the restore), and those it saves and deletes
/// afterwards, each once the replica holds its position; a snapshot the
/// writer keeps no more leaves the replica.
#[test]
fn a_replica_follows_the_writers_snapshots() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open_with(dir.path().join("w"), options()).expect("open");
    fill(&writer, 0, 100, 10);
    writer.save_snapshot("acct:1", 50, b"at 50").expect("save");
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_millis(50)),
    )
    .expect("start shipping");
    assert!(shipper.wait_shipped(100, Duration::from_secs(60)));
    let replica =
        Replica::start(location.clone(), dir.path().join("r"), replica_options()).expect("start");
    let store = replica.store().clone();
    assert_eq!(store.list_snapshots("acct:1").expect("list"), [50]);

    fill(&writer, 100, 100, 10);
    writer
        .save_snapshot("acct:1", 180, b"at 180")
        .expect("save");
    writer.save_snapshot("acct:2", 200, b"two").expect("save");
    assert!(writer.delete_snapshot("acct:1", 50).expect("delete"));
    assert!(shipper.wait_shipped(200, Duration::from_secs(60)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.list_snapshots("acct:1").expect("list") != [180]
        || store.list_snapshots("acct:2").expect("list") != [200]
    {
        assert!(
            Instant::now() < deadline,
            "the replica has {:?} and {:?}: {:?}",
            store.list_snapshots("acct:1"),
            store.list_snapshots("acct:2"),
            replica.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(store.head() >= 200, "never a snapshot past the head");
    let loaded = store.load_snapshot("acct:1", u64::MAX).expect("load");
    assert_eq!(loaded.expect("one").state, b"at 180");
    assert_eq!(
        store
            .load_snapshot("acct:2", u64::MAX)
            .expect("load")
            .expect("one")
            .state,
        b"two"
    );
    assert!(matches!(
        store.save_snapshot("acct:3", 1, b"no"),
        Err(gesta::Error::Replica { .. })
    ));

    shipper.stop().expect("stop");
    writer.close().expect("close");
    replica.stop().expect("stop the replica");
}

/// A replica started on its own directory (restored, or run before)
/// fetches only what the writer's active segment gained since, not the
/// whole file: its own newest segment holds the same records at the same
/// offsets.
#[test]
fn a_restarted_replica_fetches_only_the_new_bytes_of_the_active_segment() {
    let (_bucket, location) = fresh_location();
    let dir = tempfile::tempdir().expect("tempdir");
    // One segment large enough for every event, so that the writer's
    // active segment holds them all.
    let options = options().segment_size(8 << 20);
    let writer = Store::open_with(dir.path().join("w"), options.clone()).expect("open");
    fill(&writer, 0, 2_000, 10);
    let shipper = Shipper::start(
        writer.clone(),
        location.clone(),
        ShipOptions::default().interval(Duration::from_secs(3600)),
    )
    .expect("ship");
    assert_eq!(shipper.ship_now().expect("ship"), 2_000);
    let active = wal_files(&dir.path().join("w"))
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect::<Vec<_>>();
    assert_eq!(active.len(), 1, "{active:?}");
    // The active segment's records: the file less its preallocated zeros.
    let records_bytes = || {
        let bytes = std::fs::read(dir.path().join("w/wal").join(&active[0])).expect("read");
        bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1) as u64
    };
    let on_demand = || {
        ReplicaOptions::default()
            .interval(Duration::from_secs(3600))
            .store(options.clone())
    };

    // Restored, then started: the first poll fetches the new bytes only.
    for (round, from) in [(0, 2_000), (1, 2_050)] {
        let replica =
            Replica::start(location.clone(), dir.path().join("r"), on_demand()).expect("start");
        assert_eq!(replica.store().head(), from);
        fill(&writer, from, 50, 10);
        assert_eq!(shipper.ship_now().expect("ship"), from + 50);
        let before = replica.status().bytes_fetched;
        assert_eq!(replica.poll_now().expect("poll"), from + 50);
        let fetched = replica.status().bytes_fetched - before;
        let whole = records_bytes();
        assert!(
            fetched * 20 < whole,
            "round {round}: fetched {fetched} bytes of a {whole}-byte segment"
        );
        same_events(replica.store(), &writer);
        replica.stop().expect("stop");
    }
    shipper.stop().expect("stop");
    writer.close().expect("close");
}
