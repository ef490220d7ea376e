//! What reading a compressed segment costs beside reading the same bytes
//! from the map, block size by block size: the bound under the
//! compressed-store targets (R1 ≥ 0.8× and R2 ≥ 0.5× of the plain store).
//!
//! It takes the first segment of the standard data's store (built once and
//! kept in the bench cache directory, as `gesta-bench` does), compresses it
//! with `gesta-wal`'s own writer at each block size, and times, on one
//! thread and through `CompressedSegment`:
//!
//! - a scan: the whole segment decompressed (`read_all`), against one pass
//!   summing the plain bytes eight at a time (what the harness's reader
//!   does with every event, `workloads::look_at`);
//! - point reads: 288-byte ranges (an event of the standard data) at
//!   random offsets, through a block cache far smaller than the segment
//!   (as R2's hits are to its working set), against the same ranges summed
//!   from the plain bytes.
//!
//! ```text
//! cargo run --release -p gesta-benches --example zstd_blocks -- [READS]
//! ```
//! Default: 200,000 point reads.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gesta_benches::harness::workloads::sum_words as sum;
use gesta_wal::files::{CompressedSegment, compress};
use gesta_wal::{BlockCache, Compression};

/// An event of the standard data takes about this many bytes in a record.
const EVENT: u64 = 288;
/// The block cache of the point reads: a sixteenth of a 64 MiB segment.
const CACHE: usize = 4 << 20;

/// Random offsets at which a whole event fits in `len` bytes.
fn offsets(len: u64, n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (len - EVENT)
        })
        .collect()
}

fn main() {
    let reads: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().expect("a number of reads"));
    let (store, _) =
        gesta_benches::cached_store_batched(1_000_000, gesta_benches::BUILD_BATCH).expect("store");
    let mut segments: Vec<_> = std::fs::read_dir(store.join("wal"))
        .expect("wal")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let path = segments.first().expect("a segment");
    let mut plain = std::fs::read(path).expect("read the segment");
    // A segment is preallocated; what follows its last record is zeros.
    let used = plain.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    plain.truncate(used);
    let len = plain.len() as u64;
    let at = offsets(len, reads);
    println!(
        "segment {} ({:.1} MiB), {reads} point reads of {EVENT} bytes, block cache {} MiB",
        path.display(),
        len as f64 / f64::from(1 << 20),
        CACHE >> 20
    );

    let start = Instant::now();
    black_box(sum(&plain));
    let scan_plain = start.elapsed().as_nanos() as f64 / len as f64;
    let start = Instant::now();
    for &o in &at {
        black_box(sum(&plain[o as usize..(o + EVENT) as usize]));
    }
    let point_plain = start.elapsed().as_nanos() as f64 / reads as f64;
    println!(
        "| blocks | dictionary | bytes kept | scan ns/byte | scan ÷ plain | point read ns | point ÷ plain |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!("| plain (in memory) | – | 100% | {scan_plain:.3} | 1.00 | {point_plain:.0} | 1.00 |");

    for (block_size, dictionary_size) in [
        (1 << 10, 16 << 10),
        (1 << 10, 0),
        (4 << 10, 16 << 10),
        (16 << 10, 16 << 10),
        (64 << 10, 0),
    ] {
        let settings = Compression {
            level: 3,
            block_size,
            dictionary_size,
        };
        let file = compress(&plain, 1, 1, settings).expect("compress");
        let kept = file.len() as f64 / len as f64;
        let cache = Arc::new(BlockCache::new(CACHE));
        let segment = CompressedSegment::open(path.clone(), Bytes::from(file), cache)
            .expect("open the compressed segment");
        let start = Instant::now();
        let all = segment.read_all().expect("read_all");
        black_box(sum(&all));
        let scan = start.elapsed().as_nanos() as f64 / len as f64;
        assert_eq!(&all[..], &plain[..], "the segment reads back");
        let start = Instant::now();
        for &o in &at {
            let event = segment.read(o, o + EVENT).expect("read");
            black_box(sum(&event));
        }
        let point = start.elapsed().as_nanos() as f64 / reads as f64;
        println!(
            "| {} KiB | {} | {:.1}% | {scan:.3} | {:.2} | {point:.0} | {:.3} |",
            block_size >> 10,
            match dictionary_size {
                0 => "none".to_string(),
                d => format!("{} KiB", d >> 10),
            },
            100.0 * kept,
            scan_plain / scan,
            point_plain / point
        );
    }
}
