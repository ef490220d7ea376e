//! Idempotency by event id: retries, partial duplicates, repeated ids.

use std::sync::Barrier;

use gesta::{
    AppendOptions, Appended, Error, EventStore, ExpectedRevision, NewEvent, Query, Result,
};

use super::Harness;
use super::helpers::*;

fn id_batch(ids: &[u128], label: &str) -> Vec<NewEvent> {
    ids.iter()
        .map(|&id| ev("Idem", &["idem"], &format!("{label}-{id}")).id(id))
        .collect()
}

/// Re-sending a committed batch with the same ids returns its original
/// positions and appends nothing; a single-event batch too.
pub fn idempotent_retry_returns_original_positions<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, vec![ev("Before", &[], "b")]);
    let batch = id_batch(&[10, 11, 12], "x");
    let first = append(&s, &mut log, batch.clone());
    let single = vec![sev("s", "one").id(20).metadata("m")];
    let one = append(&s, &mut log, single.clone());
    append(&s, &mut log, vec![ev("After", &[], "a")]);
    for _ in 0..3 {
        assert_eq!(ok("retry", s.append(batch.clone())), first);
        assert_eq!(ok("retry one", s.append(single.clone())), one);
        assert_contents(&s, &log);
    }
    let next = append(&s, &mut log, vec![ev("Next", &[], "n")]);
    assert_eq!(next.first, 7);
    assert_contents(&s, &log);
}

/// A retry succeeds with the original positions even when its own
/// condition or expected revisions would now fail.
pub fn idempotent_retry_ignores_failing_condition_and_expectations<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![sev("s", "0").id(1).tag("course:1"), sev("s", "1").id(2)];
    let options = AppendOptions::new()
        .expect("s", ExpectedRevision::NoStream)
        .fail_if(Query::tag("course:1"), None);
    let first = append_with(&s, &mut log, batch.clone(), options.clone());
    append(&s, &mut log, vec![sev("s", "2").tag("course:1")]);
    assert_eq!(ok("retry", s.append_with(batch.clone(), options)), first);
    let options = AppendOptions::new()
        .expect("s", ExpectedRevision::Exact(0))
        .expect("t", ExpectedRevision::Exists)
        .fail_if(Query::all(), Some(0));
    assert_eq!(ok("retry", s.append_with(batch, options)), first);
    assert_contents(&s, &log);
}

fn retry_survives<H: Harness>(h: &mut H, flush: bool) {
    let s = h.create();
    let mut log = Log::default();
    let a = id_batch(&[1, 2], "a");
    let b = vec![sev("s", "b").id(3)];
    let pa = append(&s, &mut log, a.clone());
    let pb = append(&s, &mut log, b.clone());
    if flush {
        h.flush_index(&s);
    }
    let c = id_batch(&[4, 5, 6], "c");
    let pc = append(&s, &mut log, c.clone());
    if flush {
        h.flush_index(&s);
        assert_eq!(ok("retry after flush", s.append(a.clone())), pa);
    }
    let s = h.reopen(s);
    assert_contents(&s, &log);
    for (batch, want) in [(&a, pa), (&b, pb), (&c, pc)] {
        assert_eq!(ok("retry after reopen", s.append(batch.clone())), want);
    }
    let e = err("partial after reopen", s.append(id_batch(&[2, 7], "a")));
    assert_duplicate("partial after reopen", e, &[2]);
    let e = err(
        "changed after reopen",
        s.append(id_batch(&[4, 5, 6], "changed")),
    );
    assert_duplicate("changed after reopen", e, &[4, 5, 6]);
    append(&s, &mut log, id_batch(&[7], "d"));
    assert_contents(&s, &log);
}

/// Retries still return the original positions after a reopen.
pub fn idempotent_retry_after_reopen<H: Harness>(h: &mut H) {
    retry_survives(h, false);
}

/// Retries still return the original positions after the index was
/// flushed to disk, and after a reopen then.
pub fn idempotent_retry_after_flush_index<H: Harness>(h: &mut H) {
    retry_survives(h, true);
}

/// A batch whose ids overlap a committed batch without being exactly it —
/// a subset, a superset, a mix with new ids, a reordering, a spread over
/// two batches — is rejected.
pub fn partial_duplicate_ids_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, id_batch(&[1, 2, 3], "x"));
    append(&s, &mut log, id_batch(&[4], "x"));
    let cases: Vec<(&str, Vec<NewEvent>, Vec<u128>)> = vec![
        ("prefix", id_batch(&[1, 2], "x"), vec![1, 2]),
        ("suffix", id_batch(&[2, 3], "x"), vec![2, 3]),
        ("middle", id_batch(&[2], "x"), vec![2]),
        ("superset", id_batch(&[1, 2, 3, 9], "x"), vec![1, 2, 3]),
        ("new first", id_batch(&[9, 1, 2, 3], "x"), vec![1, 2, 3]),
        ("mixed", id_batch(&[8, 3], "x"), vec![3]),
        ("reordered", id_batch(&[3, 2, 1], "x"), vec![1, 2, 3]),
        ("two batches", id_batch(&[3, 4], "x"), vec![3, 4]),
        (
            "two whole batches",
            id_batch(&[1, 2, 3, 4], "x"),
            vec![1, 2, 3, 4],
        ),
    ];
    for (what, batch, offending) in cases {
        let e = err(what, s.append(batch));
        assert_duplicate(what, e, &offending);
        assert_contents(&s, &log);
    }
    // New ids only are fine.
    append(&s, &mut log, id_batch(&[8, 9], "x"));
    assert_contents(&s, &log);
}

/// The same ids with different content (any field) are rejected.
pub fn same_ids_different_content_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let original = vec![
        NewEvent::new("T", "data")
            .tag("a")
            .metadata("m")
            .stream("s")
            .id(1),
        NewEvent::new("T", "data2").id(2),
    ];
    append(&s, &mut log, original.clone());
    type Change = fn(&mut NewEvent);
    let changes: [(&str, Change); 7] = [
        ("type", |e| e.event_type = "U".into()),
        ("data", |e| e.data = "other".into()),
        ("metadata", |e| e.metadata = "other".into()),
        ("no metadata", |e| e.metadata = Default::default()),
        ("tags", |e| e.tags.push("b".into())),
        ("stream", |e| e.stream = Some("other".into())),
        ("no stream", |e| e.stream = None),
    ];
    for (what, change) in changes {
        let mut batch = original.clone();
        change(&mut batch[0]);
        let e = err(what, s.append(batch));
        assert_duplicate(what, e, &[1, 2]);
        assert_contents(&s, &log);
    }
    let mut batch = original.clone();
    batch[1].data = "changed".into();
    let e = err("second event", s.append(batch));
    assert_duplicate("second event", e, &[1, 2]);
    assert_contents(&s, &log);
    assert_eq!(
        ok("retry", s.append(original)),
        Appended { first: 1, last: 2 }
    );
}

/// An id repeated inside one batch is rejected, whether or not it was
/// committed before.
pub fn id_repeated_in_batch_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    append(&s, &mut log, id_batch(&[1], "x"));
    // (what, batch, the repeated id, the indices where it appears)
    type Case = (&'static str, Vec<NewEvent>, u128, (usize, usize));
    let cases: Vec<Case> = vec![
        ("new id twice", id_batch(&[5, 5], "x"), 5, (0, 1)),
        ("new id twice apart", id_batch(&[5, 6, 5], "x"), 5, (0, 2)),
        (
            "new id twice, one event without id",
            vec![
                ev("A", &[], "a").id(5),
                ev("A", &[], "b"),
                ev("A", &[], "c").id(5),
            ],
            5,
            (0, 2),
        ),
        ("committed id twice", id_batch(&[1, 1], "x"), 1, (0, 1)),
    ];
    for (what, batch, id, (i, j)) in cases {
        match err(what, s.append(batch)) {
            Error::InvalidInput { reason } => {
                let uuid = format!("{id:032x}");
                let uuid = format!(
                    "{}-{}-{}-{}-{}",
                    &uuid[0..8],
                    &uuid[8..12],
                    &uuid[12..16],
                    &uuid[16..20],
                    &uuid[20..]
                );
                assert_eq!(
                    reason,
                    format!("event id {uuid} appears twice in the batch (at indices {i} and {j})"),
                    "{what}"
                );
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert_contents(&s, &log);
    }
    append(&s, &mut log, id_batch(&[5, 6], "x"));
    assert_contents(&s, &log);
}

/// A committed batch where only some events have ids is not retried: its
/// ids are committed, so re-sending it is `DuplicateEventId`.
pub fn batch_with_some_ids_is_not_a_retry<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![ev("A", &[], "a").id(1), ev("A", &[], "b")];
    append(&s, &mut log, batch.clone());
    let e = err("resend", s.append(batch));
    assert_duplicate("resend", e, &[1]);
    let batch = vec![ev("A", &[], "c"), ev("A", &[], "d").id(2)];
    append(&s, &mut log, batch.clone());
    let e = err("resend", s.append(batch));
    assert_duplicate("resend", e, &[2]);
    assert_contents(&s, &log);
}

/// Batches without ids are appended every time they are sent.
pub fn batches_without_ids_never_deduplicated<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let batch = vec![ev("A", &["t"], "same"), sev("s", "same")];
    for i in 0..3u64 {
        let a = append(&s, &mut log, batch.clone());
        assert_eq!(
            a,
            Appended {
                first: 2 * i + 1,
                last: 2 * i + 2
            }
        );
    }
    assert_eq!(revision(&s, "s"), Some(2));
    assert_contents(&s, &log);
}

/// The same batch with ids sent by many threads at once is committed once;
/// every sender gets its positions.
pub fn concurrent_identical_retries_commit_once<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    for round in 0..ROUNDS as u128 {
        let batch = vec![
            ev("Pay", &["pay"], &format!("p{round}")).id(100 + 2 * round),
            sev("pay", &format!("q{round}")).id(101 + 2 * round),
        ];
        let barrier = Barrier::new(THREADS);
        let results: Vec<Result<Appended>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (s, barrier, batch) = (&s, &barrier, batch.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        s.append(batch)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread panicked"))
                .collect()
        });
        let want = log.commit(&batch);
        for r in results {
            assert_eq!(ok(&format!("round {round}"), r), want);
        }
        assert_contents(&s, &log);
    }
}
