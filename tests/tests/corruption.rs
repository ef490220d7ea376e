//! Corruption: one flipped bit anywhere in a store's files — sealed and
//! active segments, offset tables, index runs, the MANIFEST, cursor files —
//! is either detected, as `Error::Corruption` naming the damaged file, or
//! harmless (a byte no reader trusts, or a cache such as an offset table
//! that is checked and rebuilt): the store never returns different events,
//! query answers or cursors than it had. The one exception is the last
//! record of the newest segment, where damage cannot be told from a torn
//! write: recovery cuts that record off and says so in its report.
//!
//! Each flip is made on a fresh copy of a reference store on the in-memory
//! file system; the store is then opened and read completely (a scan, an
//! indexed query per type and per tag, point reads backwards, the cursors).
//! Small files have every bit flipped; larger ones a seeded sample
//! (`GESTA_CORRUPTION_BITS` per file, 160 by default).
//!
//! Every flip is also verified (`inspect::verify`, on a copy on disk):
//! verification never passes over one. It reports damage in the flipped
//! file and nowhere else, or the torn tail recovery cuts off; and when it
//! calls all it found harmless, the store indeed returns what it had.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta::inspect::verify;
use gesta::io::fault::FaultFs;
use gesta::io::{FileSystem, OpenMode, read_all};
use gesta::{Compression, Error, NewEvent, Options, Query, ReadOptions, RecordedEvent, Store};
use gesta_tests::SplitMix64;

const DIR: &str = "/store";

fn options(fs: &Arc<FaultFs>, compress: bool) -> Options {
    let mut o = Options::default()
        .fs(fs.clone())
        .segment_size(8 << 10)
        .preallocate(4 << 10)
        .compression(compress.then_some(Compression {
            level: 3,
            block_size: 1024,
            dictionary_size: 256,
        }));
    o.memtable_postings = 400;
    o.close_flush_postings = 1 << 30;
    o
}

/// Everything a reader can observe of a store.
#[derive(Debug, PartialEq)]
struct Observed {
    scan: Vec<RecordedEvent>,
    queries: Vec<Vec<u64>>,
    backwards: Vec<RecordedEvent>,
    cursors: Vec<gesta::DurableSubscriptionState>,
}

fn queries() -> Vec<Query> {
    let mut q: Vec<Query> = (0..4).map(|t| Query::event_type(format!("T{t}"))).collect();
    q.extend((0..6).map(|t| Query::tag(format!("k:{t}"))));
    q
}

fn observe(store: &Store) -> gesta::Result<Observed> {
    let scan = store
        .read(&Query::all(), ReadOptions::forwards())?
        .collect::<gesta::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for q in queries() {
        out.push(
            store
                .read(&q, ReadOptions::forwards())?
                .map(|e| e.map(|e| e.position))
                .collect::<gesta::Result<Vec<_>>>()?,
        );
    }
    // Point reads of every event through the index, newest first.
    let backwards = store
        .read(&Query::tag("all"), ReadOptions::backwards())?
        .collect::<gesta::Result<Vec<_>>>()?;
    Ok(Observed {
        scan,
        queries: out,
        backwards,
        cursors: store.durable_subscriptions()?,
    })
}

/// Builds the reference store: several sealed segments with offset tables
/// (compressed, with `compress`), index runs and a MANIFEST, an unflushed
/// tail, and a cursor.
fn reference(compress: bool) -> Arc<FaultFs> {
    let fs = Arc::new(FaultFs::new());
    let store = Store::open_with(DIR, options(&fs, compress)).expect("open");
    let mut rng = SplitMix64::new(42);
    for i in 0..120u64 {
        let n = 1 + rng.below(3) as usize;
        let batch: Vec<NewEvent> = (0..n)
            .map(|j| {
                let mut e = NewEvent::new(format!("T{}", rng.below(4)), vec![i as u8; 40 + j])
                    .tags([format!("k:{}", rng.below(6)), "all".to_owned()]);
                if rng.chance(1, 2) {
                    e = e.stream(format!("s{}", rng.below(3)));
                }
                e
            })
            .collect();
        store.append(batch).expect("append");
        if i % 40 == 20 {
            // A wide event (names over 255 bytes, varint lengths).
            let long = format!("wide-{i}-{}", "w".repeat(300));
            let wide = NewEvent::new(long.as_str(), "w")
                .tag(long.as_str())
                .stream(long.as_str());
            store.append(vec![wide]).expect("append a wide event");
        }
        if i == 60 {
            store.flush_index().expect("flush");
        }
    }
    store
        .subscribe_durable("projector", &Query::all())
        .expect("subscribe")
        .ack(77)
        .expect("ack");
    if compress {
        store.compact().expect("compact");
    }
    store.close().expect("close");
    fs
}

fn files(fs: &FaultFs, dir: &Path, out: &mut Vec<PathBuf>) {
    for name in fs.list(dir).expect("list") {
        let path = dir.join(&name);
        if ["wal", "index", "cursors"].contains(&name.as_str()) {
            files(fs, &path, out);
        } else if name != "LOCK" {
            out.push(path);
        }
    }
}

fn contents(fs: &FaultFs, path: &Path) -> Vec<u8> {
    let f = fs.open(path, OpenMode::Existing).expect("open");
    read_all(f.as_ref()).expect("read")
}

/// A fresh file system holding `files` with their bytes, all durable.
fn copy_of(files: &[(PathBuf, Vec<u8>)]) -> Arc<FaultFs> {
    let fs = Arc::new(FaultFs::new());
    for (path, bytes) in files {
        let parent = path.parent().expect("parent");
        fs.create_dir_all(parent).expect("mkdir");
        let f = fs.open(path, OpenMode::Truncate).expect("create");
        f.write_at(bytes, 0).expect("write");
        f.sync_data().expect("sync");
        fs.sync_dir(parent).expect("sync dir");
    }
    fs.sync_dir(Path::new("/")).expect("sync root");
    fs
}

#[test]
fn every_flipped_bit_is_detected_or_harmless() {
    flip_bits(false);
}

#[test]
fn every_flipped_bit_of_a_store_with_compressed_segments_is_detected_or_harmless() {
    flip_bits(true);
}

fn flip_bits(compress: bool) {
    let fs = reference(compress);
    let mut paths = Vec::new();
    files(&fs, Path::new(DIR), &mut paths);
    let mut kinds = vec![".seg", "off", "idx", "MANIFEST", "cursor"];
    if compress {
        kinds.push(".zseg");
    }
    for kind in kinds {
        assert!(
            paths.iter().any(|p| p.to_string_lossy().contains(kind)),
            "the reference store has no {kind} file: {paths:?}"
        );
    }
    let pristine: Vec<(PathBuf, Vec<u8>)> = paths
        .iter()
        .map(|p| (p.clone(), contents(&fs, p)))
        .collect();
    if compress {
        // Flips must land in a compressed segment's dictionary too.
        let with_dictionary = pristine.iter().any(|(p, bytes)| {
            p.extension().is_some_and(|x| x == "zseg")
                && bytes.len() > 20
                && u32::from_le_bytes(bytes[16..20].try_into().unwrap()) > 0
        });
        assert!(with_dictionary, "no compressed segment has a dictionary");
    }
    let want = {
        let fs = copy_of(&pristine);
        let store = Store::open_with(DIR, options(&fs, compress)).expect("open the copy");
        observe(&store).expect("read the copy")
    };
    assert!(
        want.scan.len() > 200
            && want.cursors
                == vec![gesta::DurableSubscriptionState {
                    name: "projector".to_owned(),
                    acknowledged: 77
                }]
    );

    let per_file: usize = std::env::var("GESTA_CORRUPTION_BITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    // The same store on disk, for verification, which reads real files.
    let disk = tempfile::tempdir().expect("tempdir");
    let on_disk = |path: &Path| {
        disk.path()
            .join(path.strip_prefix(DIR).expect("in the store"))
    };
    for (path, bytes) in &pristine {
        let copy = on_disk(path);
        std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        std::fs::write(copy, bytes).expect("write");
    }
    let intact = verify(disk.path(), &mut |_, _| {}).expect("verify");
    assert!(intact.is_intact(), "{:?}", intact.findings);

    let mut rng = SplitMix64::new(7);
    let (mut detected, mut harmless, mut torn_tails) = (0, 0, 0);
    let mut harmless_in_tables = 0;
    for (i, (path, bytes)) in pristine.iter().enumerate() {
        let bits = bytes.len() * 8;
        let chosen: Vec<usize> = if bits <= 2048 {
            (0..bits).collect()
        } else {
            (0..per_file)
                .map(|_| rng.below(bits as u64) as usize)
                .collect()
        };
        for bit in chosen {
            let mut damaged = pristine.clone();
            damaged[i].1[bit / 8] ^= 1 << (bit % 8);
            let copy = on_disk(path);
            std::fs::write(&copy, &damaged[i].1).expect("write");
            let verified = verify(disk.path(), &mut |_, _| {}).expect("verify");
            std::fs::write(&copy, bytes).expect("restore");
            let where_ = format!("bit {bit} of {}: {:?}", path.display(), verified.findings);
            assert!(
                verified.findings.iter().all(|f| f.file == copy),
                "verify reports damage elsewhere than in the flipped file: {where_}"
            );
            let torn_by_verify = verified.torn_tail.as_ref().is_some_and(|t| t.file == copy);
            assert!(
                !verified.is_intact() || torn_by_verify,
                "verify passes over a flipped {where_}"
            );
            let verify_says_harmless =
                !verified.is_intact() && verified.findings.iter().all(|f| f.harmless);
            let fs = copy_of(&damaged);
            let result = Store::open_with(DIR, options(&fs, compress)).and_then(|store| {
                let torn = store.recovery_report().torn_tail.clone();
                let seen = observe(&store);
                let _ = store.close();
                seen.map(|seen| (seen, torn))
            });
            match result {
                Ok((seen, Some(torn))) => {
                    assert_eq!(&torn.file, path, "bit {bit}: torn tail in another file");
                    let kept = seen.scan.len();
                    // A flip in the first zeros after the last record reads
                    // as the frame of a torn append: cut, losing nothing.
                    let nothing_lost = kept == want.scan.len() && seen == want;
                    assert!(
                        nothing_lost
                            || (kept < want.scan.len()
                                && kept + 3 >= want.scan.len()
                                && seen.scan[..] == want.scan[..kept]),
                        "bit {bit} of {}: the cut tail is not just the last record",
                        path.display()
                    );
                    torn_tails += 1;
                }
                Ok((seen, None)) => {
                    assert!(
                        seen == want,
                        "bit {bit} of {} changed what the store returns",
                        path.display()
                    );
                    // An offset table is a cache by design: a damaged one
                    // is ignored and rebuilt from the records.
                    if path.extension().is_some_and(|x| x == "off") {
                        harmless_in_tables += 1;
                    } else {
                        harmless += 1;
                    }
                }
                Err(Error::Corruption { file, .. }) => {
                    assert_eq!(
                        &file,
                        path,
                        "bit {bit} of {} reported in another file",
                        path.display()
                    );
                    assert!(
                        !verify_says_harmless,
                        "verify calls harmless what the store refuses: {where_}"
                    );
                    detected += 1;
                }
                Err(e) => panic!("bit {bit} of {}: unexpected error {e}", path.display()),
            }
        }
    }
    println!(
        "compressed segments: {compress}: {detected} flips detected, {harmless} harmless \
         (and {harmless_in_tables} in offset tables, which are rebuilt), {torn_tails} cut as a \
         torn tail"
    );
    assert!(
        detected > harmless,
        "most flips outside the offset tables must be detected"
    );
}
