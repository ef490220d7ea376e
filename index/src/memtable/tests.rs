use std::sync::Barrier;
use std::sync::atomic::AtomicBool;
use std::thread;

use super::*;

fn forward(c: &mut dyn Cursor, from: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut t = from;
    while let Some(p) = c.seek_ge(t) {
        out.push(p);
        t = p + 1;
    }
    out
}

fn backward(c: &mut dyn Cursor, from: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut t = from;
    while let Some(p) = c.seek_le(t) {
        out.push(p);
        match p.checked_sub(1) {
            Some(n) => t = n,
            None => break,
        }
    }
    out
}

#[test]
fn insert_and_read_back() {
    let m = Memtable::new();
    assert!(m.is_empty());
    assert!(m.cursor(&Key::tag("a")).is_none());
    let a = Key::tag("a");
    let t = Key::event_type("T");
    for p in 1..=100 {
        m.insert(&t, p);
        if p % 3 == 0 {
            m.insert(&a, p);
            m.insert(&a, p); // an event carrying the tag twice
        }
    }
    assert_eq!(m.postings(), 133);
    assert_eq!(m.keys(), 2);
    assert_eq!(m.count(&a), 33);
    assert_eq!(m.count(&Key::tag("zz")), 0);
    assert_eq!(m.first(&a), Some(3));
    assert_eq!(m.last(&a), Some(99));
    assert_eq!(m.last(&Key::tag("zz")), None);
    assert_eq!(m.range(), Some((1, 100)));
    assert!(m.approx_bytes() > 0);
    let mut c = m.cursor(&a).unwrap();
    assert_eq!(
        forward(c.as_mut(), 0),
        (1..=33).map(|i| i * 3).collect::<Vec<_>>()
    );
    assert_eq!(
        backward(c.as_mut(), 50),
        vec![48, 45, 42, 39, 36, 33, 30, 27, 24, 21, 18, 15, 12, 9, 6, 3]
    );
    assert_eq!(c.seek_ge(100), None);
    assert_eq!(c.seek_le(2), None);
    let entries = m.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0, t, "entries sorted by key: types before tags");
    assert_eq!(entries[1].1.len(), 33);
}

#[test]
fn insert_many_matches_insert() {
    let one = Memtable::new();
    let many = Memtable::new();
    let keys = [
        Key::tag("x"),
        Key::tag("y"),
        Key::event_type("E"),
        Key::id(9),
    ];
    let mut batch = Vec::new();
    for p in 1..=50u64 {
        for (i, k) in keys.iter().enumerate() {
            if p % (i as u64 + 1) == 0 {
                batch.push((k.clone(), p));
            }
        }
        if p % 10 == 0 {
            many.insert_many(&batch);
            for (k, p) in batch.drain(..) {
                one.insert(&k, p);
            }
        }
    }
    assert_eq!(one.entries(), many.entries());
    assert_eq!(one.postings(), many.postings());
}

#[test]
fn cursor_sees_later_inserts() {
    let m = Memtable::new();
    let k = Key::stream("s");
    m.insert(&k, 5);
    let mut c = m.cursor(&k).unwrap();
    assert_eq!(c.seek_ge(6), None);
    m.insert(&k, 7);
    assert_eq!(c.seek_ge(6), Some(7));
}

/// One thread inserts while others seek: every reader must see an exact
/// prefix of the list, ascending, with nothing skipped.
#[test]
fn concurrent_insert_and_seek() {
    const N: u64 = 60_000;
    let m = Arc::new(Memtable::new());
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(4));
    let even = Key::tag("even");
    let all = Key::event_type("all");
    // Make sure the keys exist before readers start.
    m.insert(&all, 1);
    m.insert(&even, 2);
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let m = Arc::clone(&m);
            let done = Arc::clone(&done);
            let start = Arc::clone(&start);
            let (even, all) = (even.clone(), all.clone());
            thread::spawn(move || {
                start.wait();
                let mut rounds = 0u64;
                let mut partial = 0u64;
                while !done.load(Ordering::Relaxed) || rounds < 3 {
                    rounds += 1;
                    let mut c = m.cursor(&even).unwrap();
                    let seen = forward(c.as_mut(), 0);
                    let expect: Vec<u64> = (1..=seen.len() as u64).map(|i| i * 2).collect();
                    assert_eq!(seen, expect, "reader {r}: forward is an exact prefix");
                    partial += u64::from((seen.len() as u64) < N / 2);
                    let mut c = m.cursor(&all).unwrap();
                    let top = c.seek_le(u64::MAX).unwrap();
                    let seen = backward(c.as_mut(), top);
                    assert_eq!(
                        seen.len() as u64,
                        top,
                        "reader {r}: backward from {top} sees all"
                    );
                    assert!(seen.windows(2).all(|w| w[0] == w[1] + 1));
                    let count = m.count(&all);
                    assert!(count >= top);
                    // Ids are published with their batch: an id seen is
                    // at its own position.
                    let probe = (rounds * 7919) % N + 1;
                    if let Some(p) = m.first(&Key::id(u128::from(probe))) {
                        assert_eq!(p, probe);
                    }
                    // Random-ish leapfrog-style jumps stay consistent.
                    let mut c = m.cursor(&even).unwrap();
                    let mut t = rounds % 97 + 1;
                    while let Some(p) = c.seek_ge(t) {
                        assert!(
                            p >= t && p % 2 == 0 && p - t <= 1,
                            "t={t} p={p} rounds={rounds}"
                        );
                        t = p + 1 + (p % 13);
                    }
                }
                partial
            })
        })
        .collect();
    start.wait();
    for p in 2..=N {
        if p % 2 == 0 {
            if p > 2 {
                m.insert_many(&[
                    (all.clone(), p),
                    (even.clone(), p),
                    (Key::id(u128::from(p)), p),
                ]);
            } else {
                m.insert(&all, p);
            }
        } else {
            m.insert(&all, p);
        }
    }
    done.store(true, Ordering::Relaxed);
    let partial: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(partial > 0, "no reader ran while the writer was inserting");
    assert_eq!(m.count(&all), N);
    assert_eq!(m.count(&even), N / 2);
}

#[test]
fn ids_and_foreign_keys_merge_in_key_order() {
    let m = Memtable::new();
    // A foreign key with the id kind byte but not an id's length lives in
    // the general map and must still come out in byte order among the ids.
    let odd = Key::from_bytes(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    m.insert_many(&[
        (Key::id(1 << 127), 1),
        (odd.clone(), 2),
        (Key::id(5), 3),
        (Key::tag("a"), 3),
    ]);
    m.insert(&Key::id(5), 4);
    m.insert(&Key::id(5), 4); // ignored: not above the last
    let keys: Vec<Key> = m.entries().into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 4);
    assert_eq!(m.keys(), 4);
    assert_eq!(m.postings(), 5);
    assert_eq!(m.count(&Key::id(5)), 2);
    assert_eq!(m.first(&Key::id(5)), Some(3));
    assert_eq!(m.last(&Key::id(5)), Some(4));
    assert_eq!(m.count(&odd), 1);
    let mut c = m.cursor(&Key::id(5)).unwrap();
    assert_eq!(forward(c.as_mut(), 0), vec![3, 4]);
    assert!(m.cursor(&Key::id(6)).is_none());
}
