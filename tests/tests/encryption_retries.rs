//! Idempotent appends survive sealing: for random batches with ids —
//! naming random subjects or none, with random data and metadata, empty
//! ones included — appended through `Encrypted` among other batches, a
//! retry of any committed batch is answered with its original positions
//! and appends nothing, on the reference store and on the engine after a
//! reopen; a retry with one byte changed is a conflict.

use gesta::encryption::{Encrypted, EncryptionOptions};
use gesta::{Error, EventStore, MemoryStore, NewEvent, Store};
use proptest::prelude::*;

/// One event: the subject it names (by number) if any, its data and its
/// metadata.
type Raw = (Option<u8>, Vec<u8>, Vec<u8>);

fn event() -> impl Strategy<Value = Raw> {
    (
        proptest::option::of(0u8..3),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..10),
    )
}

fn batches() -> impl Strategy<Value = Vec<Vec<Raw>>> {
    proptest::collection::vec(proptest::collection::vec(event(), 1..4), 1..6)
}

fn to_events(batches: &[Vec<Raw>]) -> Vec<Vec<NewEvent>> {
    let mut id = 0u128;
    batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|(subject, data, metadata)| {
                    id += 1;
                    let e = NewEvent::new("T", data.clone())
                        .metadata(metadata.clone())
                        .id(id << 64 | 0xFEED);
                    match subject {
                        Some(s) => e.tag(format!("subject:s{s}")),
                        None => e.tag("plain"),
                    }
                })
                .collect()
        })
        .collect()
}

fn check<S: EventStore>(s: &S, batches: &[Vec<NewEvent>], firsts: &[gesta::Appended]) {
    let head = s.head().unwrap();
    for (batch, first) in batches.iter().zip(firsts) {
        assert_eq!(&s.append(batch.clone()).unwrap(), first);
        if let Some(i) = batch.iter().position(|e| !e.data.is_empty()) {
            let mut changed = batch.clone();
            let mut data = changed[i].data.to_vec();
            data[0] ^= 1;
            changed[i].data = data.into();
            assert!(matches!(
                s.append(changed),
                Err(Error::DuplicateEventId { .. })
            ));
        }
    }
    assert_eq!(s.head().unwrap(), head);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn retries_through_the_wrapper_are_idempotent(raw in batches()) {
        let batches = to_events(&raw);
        let keys = tempfile::tempdir().unwrap();
        let s = Encrypted::open(MemoryStore::new(), EncryptionOptions::new(keys.path().join("k"))).unwrap();
        let firsts: Vec<_> = batches.iter().map(|b| s.append(b.clone()).unwrap()).collect();
        check(&s, &batches, &firsts);
    }

    #[test]
    fn retries_after_a_reopen_are_idempotent(raw in batches()) {
        let batches = to_events(&raw);
        let dir = tempfile::tempdir().unwrap();
        let open = || Encrypted::open(Store::open(dir.path()).unwrap(), EncryptionOptions::in_dir(dir.path())).unwrap();
        let s = open();
        let firsts: Vec<_> = batches.iter().map(|b| s.append(b.clone()).unwrap()).collect();
        s.into_inner().close().unwrap();
        let s = open();
        check(&s, &batches, &firsts);
    }
}
