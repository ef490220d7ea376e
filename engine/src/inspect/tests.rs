use std::path::Path;

use gesta_wal::table::{SegmentTable, table_path};

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

    let st = stats(tmp.path(), &mut |_, _| {}).unwrap();
    assert_eq!((st.head, st.events, st.records), (211, 211, 51));
    assert_eq!(st.streams, 3);
    assert_eq!(st.types[0], ("T0".to_string(), 120));
    assert_eq!(st.types.len(), 4);
    assert_eq!(st.tags[0], ("all".to_string(), 200));
    assert_eq!(st.index_runs, 2);
    assert!(st.bytes_on_disk >= st.segment_bytes + st.index_bytes);
}

#[test]
fn an_offset_table_that_recovery_would_trust_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), small_segments(), 40).close().unwrap();
    let wal = tmp.path().join("wal");
    let path = table_path(&wal, 1);
    let mut table = SegmentTable::decode(&std::fs::read(&path).unwrap()).unwrap();
    table.last_position += 1;
    std::fs::write(&path, table.encode()).unwrap();
    match verify(tmp.path(), &mut |_, _| {}) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (path, 24)),
        other => panic!("expected corruption, got {other:?}"),
    }
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
    match verify(tmp.path(), &mut |_, _| {}) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!((file, offset), (segment, end as u64))
        }
        other => panic!("expected corruption, got {other:?}"),
    }
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
    match verify(tmp.path(), &mut |_, _| {}) {
        Err(Error::Io { path, .. }) => assert_eq!(path, run),
        other => panic!("expected an I/O error, got {other:?}"),
    }
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
        match verify(tmp.path(), &mut |_, _| {}) {
            Err(Error::Corruption { file, reason, .. }) => {
                assert_eq!(file, run_path);
                reason
            }
            other => panic!("expected corruption, got {other:?}"),
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
    verify(tmp.path(), &mut |_, _| {}).unwrap();
}
