//! Retroactive tags on the engine beyond what the conformance suite checks
//! on every store: the lifecycle journal on disk — replayed on open, a torn
//! last entry cut, damage refused — the order of durability (an entry never
//! names an event a crash can lose), disk errors while writing an entry,
//! and tagged events in index runs, merged runs and compressed segments.

use std::path::Path;
use std::sync::Arc;

use gesta::clock::ManualClock;
use gesta::io::fault::{CrashMode, Fault, FaultFs, OpKind};
use gesta::io::{FileSystem, OpenMode};
use gesta::lifecycle::{Operation, Target};
use gesta::{Durability, Error, EventStore, NewEvent, Options, Query, ReadOptions, Store};

const DIR: &str = "/store";

fn options(fs: &FaultFs, durability: Durability) -> Options {
    Options::default()
        .fs(Arc::new(fs.clone()))
        .segment_size(16 << 10)
        .preallocate(4 << 10)
        .durability(durability)
        .clock(Arc::new(ManualClock::new(1_700_000_000_000_000)))
}

fn open(fs: &FaultFs, durability: Durability) -> Store {
    Store::open_with(DIR, options(fs, durability)).unwrap_or_else(|e| panic!("open: {e}"))
}

fn event(i: u64) -> NewEvent {
    NewEvent::new("Happened", format!("{{\"i\":{i}}}")).tag(format!("item:{i}"))
}

fn tags_at(store: &Store, position: u64) -> Vec<String> {
    store
        .read(
            &Query::all(),
            ReadOptions::forwards().start(position - 1).limit(1),
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .tags
}

fn positions_of(store: &Store, tag: &str) -> Vec<u64> {
    store
        .read(&Query::tag(tag), ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect()
}

fn tag(store: &Store, positions: &[u64], tag: &str) -> gesta::TagsAdded {
    store
        .add_tags(&Target::Positions(positions.to_vec()), &[tag.to_owned()])
        .unwrap()
}

#[test]
fn the_journal_is_replayed_on_open_and_its_torn_tail_cut() {
    let fs = FaultFs::new();
    let store = open(&fs, Durability::Sync);
    for i in 1..=20 {
        store.append(vec![event(i)]).unwrap();
    }
    tag(&store, &[3, 7], "gdpr:a");
    tag(&store, &[7, 9], "gdpr:b");
    store.close().unwrap();
    let store = open(&fs, Durability::Sync);
    assert_eq!(positions_of(&store, "gdpr:a"), [3, 7]);
    assert_eq!(tags_at(&store, 7), ["item:7", "gdpr:a", "gdpr:b"]);
    let trail = store.audit_log(0, 10).unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!((trail[0].sequence, trail[0].head), (1, 20));
    assert_eq!(
        trail[0].operation,
        Operation::AddTags {
            tags: vec!["gdpr:a".into()],
            target: Target::Positions(vec![3, 7]),
            result: gesta::TagsAdded {
                targeted: 2,
                tagged: 2
            },
        }
    );
    assert_eq!(store.audit_log(1, 10).unwrap(), trail[1..]);
    store.close().unwrap();

    // Every cut of the last entry reads as a torn append: the first entry
    // stays, the second is gone whole, and the journal takes new entries.
    let path = Path::new(DIR).join("LIFECYCLE");
    let whole = fs.durable_contents(&path).unwrap();
    let first_end = {
        let len = u32::from_le_bytes(whole[16..20].try_into().unwrap()) as usize;
        16 + 12 + len
    };
    let write_journal = |bytes: &[u8]| {
        let file = fs.open(&path, OpenMode::Truncate).unwrap();
        file.write_at(bytes, 0).unwrap();
        file.sync_data().unwrap();
    };
    for cut in [first_end + 1, first_end + 12, whole.len() - 1] {
        write_journal(&whole[..cut]);
        let store = open(&fs, Durability::Sync);
        assert_eq!(positions_of(&store, "gdpr:a"), [3, 7], "cut at {cut}");
        assert!(positions_of(&store, "gdpr:b").is_empty(), "cut at {cut}");
        assert_eq!(store.audit_log(0, 10).unwrap().len(), 1);
        tag(&store, &[1], "gdpr:c");
        assert_eq!(store.audit_log(0, 10).unwrap()[1].sequence, 2);
        store.close().unwrap();
    }
}

#[test]
fn a_damaged_journal_entry_is_corruption_not_a_lost_tag() {
    let fs = FaultFs::new();
    let store = open(&fs, Durability::Sync);
    for i in 1..=5 {
        store.append(vec![event(i)]).unwrap();
    }
    tag(&store, &[2], "gdpr:a");
    tag(&store, &[3], "gdpr:b");
    store.close().unwrap();
    let path = Path::new(DIR).join("LIFECYCLE");
    // A flip in the first entry's body, which an entry follows.
    fs.corrupt(&path, 16 + 12 + 3, 0x40);
    match Store::open_with(DIR, options(&fs, Durability::Sync)) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn tags_never_outlive_the_events_they_name() {
    // In Buffered mode an acknowledged append may not be durable; tagging
    // it makes it durable first, so a crash keeps both or, for events
    // appended after the tag, loses only those.
    let fs = FaultFs::new();
    let store = open(&fs, Durability::Buffered);
    for i in 1..=10 {
        store.append(vec![event(i)]).unwrap();
    }
    tag(&store, &[10], "gdpr:last");
    store.append(vec![event(11)]).unwrap();
    // The power fails while the store is open (a close would sync).
    fs.crash(CrashMode::DropUnsynced);
    drop(store);
    let store = open(&fs, Durability::Buffered);
    assert!(store.head() >= 10, "the tagged event was lost");
    assert_eq!(positions_of(&store, "gdpr:last"), [10]);
    assert_eq!(tags_at(&store, 10), ["item:10", "gdpr:last"]);
}

#[test]
fn a_failed_journal_write_changes_nothing() {
    let fs = FaultFs::new();
    let store = open(&fs, Durability::Sync);
    for i in 1..=5 {
        store.append(vec![event(i)]).unwrap();
    }
    for (kind, partly) in [
        (OpKind::Write, false),
        (OpKind::Sync, false),
        (OpKind::Sync, true),
    ] {
        if partly {
            fs.fail_nth_partly(kind, 1, Fault::Eio);
        } else {
            fs.fail_nth(kind, 1, Fault::Enospc);
        }
        match store.add_tags(&Target::Positions(vec![2]), &["gdpr:x".into()]) {
            Err(Error::Io { .. }) => {}
            other => panic!("{kind:?}: expected an I/O error, got {other:?}"),
        }
        assert!(positions_of(&store, "gdpr:x").is_empty());
        assert!(store.audit_log(0, 10).unwrap().is_empty());
    }
    tag(&store, &[2], "gdpr:y");
    // Appends were never affected.
    store.append(vec![event(6)]).unwrap();
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let store = open(&fs, Durability::Sync);
    assert!(positions_of(&store, "gdpr:x").is_empty());
    assert_eq!(positions_of(&store, "gdpr:y"), [2]);
    assert_eq!(store.audit_log(0, 10).unwrap().len(), 1);
}

#[test]
fn tagged_events_in_runs_merged_runs_and_compressed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        Options::default()
            .segment_size(64 << 10)
            .compression(Some(gesta::Compression::default())),
    )
    .unwrap();
    for chunk in 0..10u64 {
        let events = (0..100).map(|i| event(chunk * 100 + i + 1)).collect();
        store.append(events).unwrap();
        store.flush_index().unwrap();
    }
    store.compact().unwrap();
    let every_seventh: Vec<u64> = (1..=1000).filter(|p| p % 7 == 0).collect();
    let added = store
        .add_tags(
            &Target::Positions(every_seventh.clone()),
            &["seventh".into()],
        )
        .unwrap();
    assert_eq!(added.tagged, every_seventh.len() as u64);
    let query = Query::item(
        gesta::QueryItem::new()
            .event_type("Happened")
            .tag("seventh"),
    );
    let check = |store: &Store| {
        let got: Vec<u64> = store
            .read(&query, ReadOptions::forwards())
            .unwrap()
            .map(|e| e.unwrap().position)
            .collect();
        assert_eq!(got, every_seventh);
        let back: Vec<u64> = store
            .read(&query, ReadOptions::backwards().limit(3))
            .unwrap()
            .map(|e| e.unwrap().position)
            .collect();
        assert_eq!(back, [994, 987, 980]);
        assert_eq!(
            store.list_tags("seventh", None, 10).unwrap()[0].count,
            every_seventh.len() as u64
        );
    };
    check(&store);
    store.append(vec![event(1001)]).unwrap();
    store.flush_index().unwrap();
    store.compact().unwrap();
    check(&store);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    check(&store);
    assert_eq!(tags_at(&store, 14), ["item:14", "seventh"]);
}

#[test]
fn a_follower_shows_added_tags_and_hides_redacted_data() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    for i in 1..=6 {
        store.append(vec![event(i)]).unwrap();
    }
    tag(&store, &[2], "late");
    store.redact(&Target::Positions(vec![3])).unwrap();
    // Read-only, beside the open store, as `gesta read --follow` does.
    let mut follower = gesta::inspect::Follower::new(tmp.path(), 0).unwrap();
    let mut seen = Vec::new();
    follower.poll(&mut seen).unwrap();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[1].tags, ["item:2", "late"]);
    assert!(seen[2].data.is_empty() && seen[2].metadata.is_empty());
    assert!(!seen[3].data.is_empty());
    // Later operations are seen by later polls.
    store.append(vec![event(7)]).unwrap();
    store.redact(&Target::Positions(vec![7])).unwrap();
    let mut more = Vec::new();
    follower.poll(&mut more).unwrap();
    assert_eq!(more.len(), 1);
    assert!(more[0].data.is_empty());
}

/// A removal whose events cannot be read (one is damaged on disk) fails
/// before its journal entry is written: nothing is committed, so the
/// removal neither shows up later (at the next open) nor leaves a store
/// whose replay fails on it. A retry after the damage is repaired works.
#[test]
fn a_removal_that_cannot_read_its_events_commits_nothing() {
    const DAMAGED: &[u8] = b"payload-3f81c6d2-to-damage";
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.append(vec![event(1)]).unwrap();
    let at = store
        .append(vec![NewEvent::new("Registered", DAMAGED).tag("doomed")])
        .unwrap()
        .first;
    store.append(vec![event(3)]).unwrap();
    let segment = gesta_tests::files::holders(tmp.path(), DAMAGED)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("the segment holding the event");
    let offset = std::fs::read(&segment)
        .unwrap()
        .windows(DAMAGED.len())
        .position(|w| w == DAMAGED)
        .unwrap() as u64;
    // In place: the store has the file mapped.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    let write =
        |byte: u8| std::os::unix::fs::FileExt::write_all_at(&file, &[byte], offset).unwrap();
    write(DAMAGED[0] ^ 0x01);
    let failed = store.remove(&Target::Positions(vec![at]));
    assert!(
        matches!(failed, Err(Error::Corruption { .. })),
        "{failed:?}"
    );
    assert_eq!(store.audit_log(0, 10).unwrap(), vec![]);
    // Repaired: the event was never hidden, and the same removal commits
    // as the journal's first entry.
    write(DAMAGED[0]);
    assert_eq!(positions_of(&store, "doomed"), vec![at]);
    let removed = store.remove(&Target::Positions(vec![at])).unwrap();
    assert_eq!(removed.removed, 1);
    assert_eq!(store.audit_log(0, 10).unwrap().len(), 1);
    assert_eq!(positions_of(&store, "doomed"), Vec::<u64>::new());
}
