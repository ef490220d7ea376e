//! What the log's integration tests share: a deterministic workload of
//! small records, one commit each, and a check of what a forward read
//! returns.

use bytes::Bytes;
use gesta_wal::{OpenedWal, Payload, Pushed, RecordMeta};

/// The payload of the record holding positions `position..position +
/// count`: its positions, then up to 96 repeated bytes.
pub fn payload(position: u64, count: u32) -> Payload {
    let text = format!(
        "events {position}+{count} {}",
        "x".repeat((position % 97) as usize)
    );
    Payload::new(Bytes::from(text))
}

/// Appends `batches` records of 1–3 events each, one commit per record.
pub fn append(wal: &mut OpenedWal, batches: usize) {
    for i in 0..batches {
        let first = wal.writer.next_position();
        let count = (i % 3) as u32 + 1;
        let meta = RecordMeta {
            first_position: first,
            count,
            timestamp_micros: first * 10,
        };
        let pushed = wal.writer.push(meta, b"", &payload(first, count)).unwrap();
        assert_eq!(pushed, Pushed::Added, "a group of one record always fits");
        wal.writer.commit(true).unwrap();
    }
}

/// Reads every record forwards and checks positions and payloads up to
/// `last`.
pub fn check_contents(wal: &OpenedWal, last: u64) {
    let mut next = 1;
    for r in wal.reader.forward(1, u64::MAX) {
        let r = r.unwrap();
        assert_eq!(r.meta.first_position, next);
        assert_eq!(r.payload, payload(next, r.meta.count).bytes());
        next = r.meta.last_position() + 1;
    }
    assert_eq!(next - 1, last);
}
