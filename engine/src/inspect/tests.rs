use std::path::Path;

use gesta_wal::files::{SegmentTable, table_path};

use super::*;
use crate::{Error, NewEvent, Options, Store};

fn fill(dir: &Path, options: Options, batches: u64) -> Store {
    let store = Store::open_with(dir, options).unwrap();
    for b in 0..batches {
        let events = (0..5)
            .map(|i| {
                NewEvent::new(format!("T{}", i % 2), format!("{{\"b\":{b},\"i\":{i}}}"))
                    .tags([format!("batch:{b}"), "all".to_string()])
                    .stream(format!("s{}", b % 3))
            })
            .collect();
        store.append(events).unwrap();
    }
    store
}

fn small_segments() -> Options {
    Options::default().segment_size(4096).preallocate(4096)
}

#[test]
fn a_healthy_store_verifies_with_its_runs_and_sealed_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), small_segments(), 40);
    store.flush_index().unwrap();
    for b in 40..50 {
        store
            .append(vec![NewEvent::new("Late", "x").tag(format!("batch:{b}"))])
            .unwrap();
    }
    store.flush_index().unwrap();
    store.append(vec![NewEvent::new("Tail", "y")]).unwrap();
    store.close().unwrap();

    let mut calls = 0;
    let mut last = (0, 0);
    let report = verify(tmp.path(), &mut |done, total| {
        calls += 1;
        assert!(done <= total);
        last = (done, total);
    })
    .unwrap();
    assert_eq!(report.events, 211);
    assert_eq!(report.last_position, 211);
    assert_eq!(report.records, 51);
    assert!(report.segments > 2, "{report:?}");
    assert_eq!(report.runs, 2);
    assert_eq!(last.0, last.1);
    assert!(calls > 2);
    assert!(report.torn_tail.is_none());
    assert!(report.is_intact(), "{:?}", report.findings);

    let st = stats(tmp.path(), &mut |_, _| {}).unwrap();
    assert_eq!((st.head, st.events, st.records), (211, 211, 51));
    assert_eq!(st.streams, 3);
    assert_eq!(st.types[0], ("T0".to_string(), 120));
    assert_eq!(st.types.len(), 4);
    assert_eq!(st.tags[0], ("all".to_string(), 200));
    assert_eq!(st.index_runs, 2);
    assert!(st.bytes_on_disk >= st.segment_bytes + st.index_bytes);
}

/// `stats` counts what the store holds: removed events are left out (and
/// counted apart), tags added after the fact are in, so its types, tags
/// and streams agree with the store's listings.
#[test]
fn stats_agree_with_the_listings_after_removals_and_added_tags() {
    use crate::lifecycle::Target;
    use crate::{Listing, Query};
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), small_segments(), 6);
    store.delete_stream("s1").unwrap();
    store
        .add_tags(
            &Target::Query(Query::event_type("T0")),
            &["late".to_owned()],
        )
        .unwrap();
    let listed = |listing| -> Vec<(String, u64)> {
        let mut all: Vec<_> = store
            .list(listing, "", None, 1000)
            .unwrap()
            .into_iter()
            .map(|l| (l.name, l.count))
            .collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all
    };
    let (types, tags, streams) = (
        listed(Listing::Types),
        listed(Listing::Tags),
        listed(Listing::Streams),
    );
    store.close().unwrap();
    let st = stats(tmp.path(), &mut |_, _| {}).unwrap();
    assert_eq!((st.head, st.events, st.removed), (30, 20, 10));
    assert_eq!(st.types, types);
    assert_eq!(st.tags, tags);
    assert_eq!(st.streams, streams.len() as u64);
    assert!(st.tags.contains(&("late".to_owned(), 12)), "{:?}", st.tags);
}

/// The paths of the offset tables in `dir`'s log, in position order.
fn tables(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "off"))
        .collect();
    found.sort();
    found
}

fn verified(dir: &Path) -> VerifyReport {
    verify(dir, &mut |_, _| {}).expect("verify runs")
}

#[test]
fn damaged_and_missing_offset_tables_are_each_reported_as_a_harmless_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), small_segments(), 100);
    store.flush_index().unwrap();
    store.close().unwrap();
    let tables = tables(tmp.path());
    assert!(tables.len() >= 3, "{tables:?}");
    let pristine: Vec<Vec<u8>> = tables.iter().map(|p| std::fs::read(p).unwrap()).collect();

    // A flipped bit in one table, another table deleted.
    let mut flipped = pristine[0].clone();
    flipped[30] ^= 0x10;
    std::fs::write(&tables[0], &flipped).unwrap();
    std::fs::remove_file(&tables[2]).unwrap();
    let report = verified(tmp.path());
    assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
    let (damaged, missing) = (&report.findings[0], &report.findings[1]);
    assert_eq!(damaged.part, Part::OffsetTable);
    assert_eq!(damaged.file, tables[0]);
    assert_eq!(damaged.offset, Some(flipped.len() as u64 - 4));
    assert!(damaged.problem.contains("checksum"), "{damaged}");
    assert!(damaged.harmless);
    assert_eq!(missing.part, Part::OffsetTable);
    assert_eq!(missing.file, tables[2]);
    assert_eq!(missing.offset, None);
    assert!(missing.problem.contains("missing"), "{missing}");
    assert!(missing.harmless);
    assert!(Part::OffsetTable.is_rebuildable_cache());
    // The log and the index were checked all the same.
    assert_eq!((report.events, report.runs), (500, 1));
    assert!(!report.is_intact());

    // Harmless indeed: the store opens and reads as before.
    {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(tmp.path(), copy.path());
        let store = Store::open(copy.path()).unwrap();
        assert_eq!(store.head(), 500);
        store.close().unwrap();
    }

    // The repair writes them again, exactly as they were written at the
    // seal, and touches nothing else.
    let index_before = std::fs::read_dir(tmp.path().join("index")).unwrap().count();
    let repaired = repair(tmp.path(), &report).unwrap();
    assert!(!repaired.index_rebuilt && repaired.removed.is_empty());
    assert_eq!(
        repaired.tables_rebuilt,
        vec![tables[0].clone(), tables[2].clone()]
    );
    assert_eq!(repaired.events, 500);
    for (path, bytes) in tables.iter().zip(&pristine) {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("index")).unwrap().count(),
        index_before
    );
    assert!(verified(tmp.path()).is_intact());
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_offset_table_that_recovery_would_trust_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), small_segments(), 40);
    store.flush_index().unwrap();
    store.close().unwrap();
    let path = table_path(&tmp.path().join("wal"), 1);
    let pristine = std::fs::read(&path).unwrap();
    let mut table = SegmentTable::decode(&pristine).unwrap();
    table.last_position += 1;
    std::fs::write(&path, table.encode()).unwrap();
    let report = verified(tmp.path());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert_eq!(finding.part, Part::OffsetTable);
    assert_eq!((&finding.file, finding.offset), (&path, Some(24)));
    // Its checksum is intact and the index covers the segment, so recovery
    // trusts it: not harmless, and indeed the store does not open.
    assert!(!finding.harmless);
    assert!(matches!(
        Store::open(tmp.path()),
        Err(Error::Corruption { .. })
    ));
    let repaired = repair(tmp.path(), &report).unwrap();
    assert_eq!(repaired.tables_rebuilt, vec![path.clone()]);
    assert_eq!(std::fs::read(&path).unwrap(), pristine);
    assert!(verified(tmp.path()).is_intact());
    Store::open(tmp.path()).unwrap().close().unwrap();

    // The same table beyond what the index covers is not trusted: the next
    // open scans the segment and writes the table again.
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), small_segments(), 40).close().unwrap();
    let path = table_path(&tmp.path().join("wal"), 1);
    let pristine = std::fs::read(&path).unwrap();
    let mut table = SegmentTable::decode(&pristine).unwrap();
    table.entries.push((table.last_position, table.end - 1));
    std::fs::write(&path, table.encode()).unwrap();
    let report = verified(tmp.path());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert!(
        finding.problem.contains("not the start of a record"),
        "{finding}"
    );
    assert!(finding.harmless, "{finding}");
    Store::open(tmp.path()).unwrap().close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), pristine);
    assert!(verified(tmp.path()).is_intact());
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), small_segments(), 100);
    store.flush_index().unwrap();
    store.close().unwrap();
    let wal = tmp.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    let tables = tables(tmp.path());
    let run = std::fs::read_dir(tmp.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();

    // A bit flipped in the second record of the first segment, the header
    // of the third segment damaged in its last (reserved) byte, the second
    // segment's offset table deleted, and the index run damaged.
    let mut first = std::fs::read(&segments[0]).unwrap();
    let second = 32 + 12 + u32::from_le_bytes(first[32..36].try_into().unwrap()) as usize;
    first[second + 40] ^= 1;
    std::fs::write(&segments[0], &first).unwrap();
    let mut third = std::fs::read(&segments[2]).unwrap();
    third[31] ^= 0x80;
    std::fs::write(&segments[2], &third).unwrap();
    std::fs::remove_file(&tables[1]).unwrap();
    let mut run_bytes = std::fs::read(&run).unwrap();
    run_bytes[20] ^= 4;
    std::fs::write(&run, &run_bytes).unwrap();

    let report = verified(tmp.path());
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.part, f.file.clone(), f.offset))
        .collect();
    assert_eq!(
        found,
        vec![
            (Part::Log, segments[0].clone(), Some(second as u64)),
            (Part::OffsetTable, tables[1].clone(), None),
            (Part::Log, segments[2].clone(), Some(0)),
            (Part::Index, run.clone(), found[3].2),
        ],
        "{:#?}",
        report.findings
    );
    assert!(
        report.findings[2].problem.contains("reserved"),
        "{}",
        report.findings[2]
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.harmless || f.part == Part::OffsetTable)
    );

    // Nothing is repaired while the log is damaged.
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let (wal_before, index_before) = (listing(&wal), listing(&tmp.path().join("index")));
    match repair(tmp.path(), &report) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, segments[0]),
        other => panic!("expected the log's damage, got {other:?}"),
    }
    assert_eq!(listing(&wal), wal_before);
    assert_eq!(listing(&tmp.path().join("index")), index_before);
}

#[test]
fn a_missing_segment_is_reported_and_the_walk_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), small_segments(), 100).close().unwrap();
    let wal = tmp.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    std::fs::remove_file(&segments[1]).unwrap();
    let report = verified(tmp.path());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert_eq!((finding.part, &finding.file), (Part::Log, &segments[2]));
    assert!(
        finding.problem.contains("a segment is missing"),
        "{finding}"
    );
    // The segments after the gap were walked.
    assert!(segments.len() > 3, "{segments:?}");
    assert_eq!(report.last_position, 500);
}

#[test]
fn a_torn_tail_is_reported_not_refused_and_nothing_is_changed() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), Options::default(), 3).close().unwrap();
    let segment = tmp.path().join("wal").join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let mut end = 32;
    while bytes[end..end + 4] != [0, 0, 0, 0] {
        end += 12 + u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
    }
    bytes[end..end + 8].copy_from_slice(&[0xff; 8]);
    std::fs::write(&segment, &bytes).unwrap();
    let report = verify(tmp.path(), &mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "a torn tail is not damage");
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!((torn.file, torn.offset), (segment.clone(), end as u64));
    assert_eq!(report.last_position, 15);
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "verify changes nothing"
    );

    // The same bytes followed by a record's worth of data are damage.
    bytes[end + 100] = 1;
    std::fs::write(&segment, &bytes).unwrap();
    let report = verified(tmp.path());
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.part, f.file.clone(), f.offset))
        .collect();
    assert_eq!(found, vec![(Part::Log, segment, Some(end as u64))]);
    assert!(report.torn_tail.is_none());
}

#[test]
fn a_torn_looking_record_the_index_covers_is_damage_not_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), Options::default(), 3);
    store.flush_index().unwrap();
    store.close().unwrap();
    let segment = tmp.path().join("wal").join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let (mut last, mut end) = (32, 32);
    while bytes[end..end + 4] != [0, 0, 0, 0] {
        last = end;
        end += 12 + u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
    }
    // The last record's body zeroed, its frame intact: what an append cut
    // short by a crash leaves — but the index holds its positions, so it
    // was committed.
    bytes[last + 12..end].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let report = verified(tmp.path());
    assert!(report.torn_tail.is_none());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert_eq!(
        (finding.part, &finding.file, finding.offset),
        (Part::Log, &segment, Some(last as u64))
    );
    assert!(
        finding.problem.contains("known to be committed"),
        "{finding}"
    );
    assert!(repair(tmp.path(), &report).is_err());
    assert!(
        repair_index(tmp.path()).is_err(),
        "the index is not thrown away"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing is cut");
    assert!(matches!(
        Store::open(tmp.path()),
        Err(Error::Corruption { .. })
    ));
}

#[test]
fn damaged_snapshots_and_cursors_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), Options::default(), 3);
    store.save_snapshot("course", 10, b"some state").unwrap();
    store.save_snapshot("course", 15, b"newer state").unwrap();
    store
        .subscribe_durable("projector", &crate::Query::all())
        .unwrap()
        .ack(5)
        .unwrap();
    store.close().unwrap();
    assert!(verified(tmp.path()).is_intact());
    let files = |sub: &str, ext: &str| -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![tmp.path().join(sub)];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == ext) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    };
    let (snaps, cursors) = (files("snapshots", "snap"), files("cursors", "cursor"));
    assert_eq!((snaps.len(), cursors.len()), (2, 1));
    for path in [&snaps[0], &cursors[0]] {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[20] ^= 2;
        std::fs::write(path, bytes).unwrap();
    }
    // A cursor file under another cursor's name.
    let other = cursors[0].with_file_name("6f74686572.cursor");
    std::fs::write(&other, crate::cursors::encode("projector", 5)).unwrap();
    let report = verified(tmp.path());
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.part, f.file.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (Part::Snapshot, snaps[0].clone()),
            (Part::Cursor, other.clone()),
            (Part::Cursor, cursors[0].clone()),
        ],
        "{:#?}",
        report.findings
    );
    assert!(report.findings.iter().all(|f| !f.harmless));
    assert!(
        report.findings[1].problem.contains("\"projector\""),
        "{}",
        report.findings[1]
    );
}

#[test]
fn a_missing_index_run_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), Options::default(), 3);
    store.flush_index().unwrap();
    store.close().unwrap();
    let run = std::fs::read_dir(tmp.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    std::fs::remove_file(&run).unwrap();
    let report = verified(tmp.path());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert_eq!((finding.part, &finding.file), (Part::Index, &run));
    assert!(finding.problem.contains("missing"), "{finding}");
    assert!(!finding.harmless);
    let repaired = repair(tmp.path(), &report).unwrap();
    assert!(repaired.index_rebuilt && repaired.tables_rebuilt.is_empty());
    assert!(verified(tmp.path()).is_intact());

    std::fs::remove_file(tmp.path().join("MANIFEST")).unwrap();
    std::fs::write(tmp.path().join("MANIFEST"), b"GESTAMAN").unwrap();
    let report = verified(tmp.path());
    let [finding] = &report.findings[..] else {
        panic!("one finding expected: {:?}", report.findings)
    };
    assert_eq!(
        (finding.part, &finding.file),
        (Part::Index, &tmp.path().join("MANIFEST"))
    );
}

#[test]
fn a_directory_without_a_log_is_not_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify(tmp.path(), &mut |_, _| {}),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        stats(tmp.path(), &mut |_, _| {}),
        Err(Error::Io { .. })
    ));
}

#[test]
fn a_well_formed_run_that_disagrees_with_the_log_is_caught() {
    use gesta_index::{Key, Run, write_run};
    type Entries = Vec<(Key, Vec<u64>)>;
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), Options::default(), 3);
    store.flush_index().unwrap();
    store.close().unwrap();
    let run_path = std::fs::read_dir(tmp.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let run = Run::open(std::fs::read(&run_path).unwrap().into()).unwrap();
    let covers = run.covers();
    let rewrite = |change: &dyn Fn(&mut Entries)| {
        let mut entries: Entries = run.iter().collect();
        change(&mut entries);
        std::fs::write(&run_path, write_run(entries, covers)).unwrap();
        let report = verified(tmp.path());
        match &report.findings[..] {
            [f] if f.part == Part::Index && f.file == run_path => f.problem.clone(),
            other => panic!("expected one finding in the run, got {other:?}"),
        }
    };
    let reason = rewrite(&|e| {
        let all = e.iter_mut().find(|(k, _)| *k == Key::tag("all")).unwrap();
        all.1.remove(4);
    });
    assert!(reason.contains("Tag(\"all\")"), "{reason}");
    let reason = rewrite(&|e| e.push((Key::tag("zzz"), vec![2])));
    assert!(reason.contains("no event"), "{reason}");
    let reason = rewrite(&|e| e.retain(|(k, _)| *k != Key::event_type("T1")));
    assert!(reason.contains("lacks Type(\"T1\")"), "{reason}");
    std::fs::write(&run_path, run.as_bytes()).unwrap();
    assert!(verified(tmp.path()).is_intact());
}

#[test]
fn the_lifecycle_journal_is_checked_and_its_torn_tail_harmless() {
    use crate::lifecycle::Target;
    let tmp = tempfile::tempdir().unwrap();
    let store = fill(tmp.path(), Options::default(), 4);
    for p in [3, 7] {
        store
            .add_tags(&Target::Positions(vec![p]), &[format!("late:{p}")])
            .unwrap();
    }
    store.close().unwrap();
    assert!(verified(tmp.path()).is_intact());
    let path = tmp.path().join("LIFECYCLE");
    let whole = std::fs::read(&path).unwrap();

    // Cut into the last entry: harmless, the next open cuts it off.
    std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
    let report = verified(tmp.path());
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!((f.part, f.harmless), (Part::Lifecycle, true), "{f}");

    // A flip in the first entry: damage.
    let mut bad = whole.clone();
    bad[16 + 12 + 2] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let report = verified(tmp.path());
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(
        (f.part, f.harmless, f.offset),
        (Part::Lifecycle, false, Some(16)),
        "{f}"
    );

    // An entry made at a head the log does not reach: the log lost events
    // the journal names.
    std::fs::write(&path, &whole).unwrap();
    let report = verify_with_head(tmp.path(), 10);
    assert!(
        report
            .iter()
            .any(|f| f.part == Part::Lifecycle && !f.harmless)
    );
}

/// The journal's findings against a log that ends at `head`.
fn verify_with_head(dir: &Path, head: u64) -> Vec<Finding> {
    let mut findings = Vec::new();
    super::verify::check_journal(dir, head, &mut findings);
    findings
}
