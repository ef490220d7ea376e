use bytes::Bytes;

use super::*;
use crate::run::write_run;

fn forward(c: &mut dyn Cursor) -> Vec<u64> {
    let mut out = Vec::new();
    let mut t = 0;
    while let Some(p) = c.seek_ge(t) {
        out.push(p);
        t = p + 1;
    }
    out
}

fn run(entries: Vec<(Key, Vec<u64>)>, covers: (u64, u64)) -> Arc<Run> {
    Arc::new(Run::open(Bytes::from(write_run(entries, covers))).unwrap())
}

#[test]
fn chains_runs_and_memtables() {
    let t = Key::event_type("T");
    let r1 = run(
        vec![(t.clone(), vec![1, 4]), (Key::id(5), vec![2])],
        (1, 10),
    );
    let r2 = run(vec![(Key::tag("x"), vec![12])], (11, 20));
    let frozen = Arc::new(Memtable::new());
    frozen.insert(&t, 21);
    frozen.insert(&Key::id(6), 22);
    let active = Arc::new(Memtable::new());
    active.insert(&t, 30);
    // Given out of order: the view sorts runs by range.
    let view = IndexView::new(vec![r2, r1], vec![frozen, active.clone()]);
    assert_eq!(forward(view.cursor(&t).as_mut()), vec![1, 4, 21, 30]);
    assert_eq!(view.count(&t), 4);
    assert_eq!(view.first(&t), Some(1));
    assert_eq!(view.last(&t), Some(30));
    assert_eq!(view.last(&Key::tag("x")), Some(12));
    assert_eq!(view.lookup_id(5), Some(2));
    assert_eq!(view.lookup_id(6), Some(22));
    assert_eq!(view.lookup_id(7), None);
    assert_eq!(
        forward(view.cursor(&Key::tag("none")).as_mut()),
        Vec::<u64>::new()
    );
    assert_eq!(view.count(&Key::tag("none")), 0);
    assert_eq!(view.last(&Key::tag("none")), None);
    // The active memtable keeps growing under the view.
    active.insert(&t, 31);
    assert_eq!(view.last(&t), Some(31));
}

#[test]
fn a_source_never_answers_outside_its_range() {
    let t = Key::event_type("T");
    // The frozen memtable was flushed into r1 and is still listed: its
    // positions fall in the run's range and must not appear twice.
    let r1 = run(vec![(t.clone(), vec![1, 2, 3])], (1, 3));
    let frozen = Arc::new(Memtable::new());
    for p in 1..=3 {
        frozen.insert(&t, p);
    }
    let active = Arc::new(Memtable::new());
    active.insert(&t, 4);
    let view = IndexView::new(vec![r1], vec![frozen, active]);
    assert_eq!(forward(view.cursor(&t).as_mut()), vec![1, 2, 3, 4]);
    let mut c = view.cursor(&t);
    assert_eq!(c.seek_le(u64::MAX), Some(4));
    assert_eq!(c.seek_le(3), Some(3));
    assert_eq!(view.last(&t), Some(4));
}

#[test]
fn empty_view() {
    let view = IndexView::new(Vec::new(), Vec::new());
    assert_eq!(view.cursor(&Key::tag("a")).seek_ge(0), None);
    assert_eq!(view.lookup_id(1), None);
}

/// `list` merges the sources' keys in order, sums their counts (a memtable
/// counted within its range and up to the head), keeps to the prefix and
/// starts after `after`.
#[test]
fn lists_keys_over_all_sources() {
    let a = Key::stream("a");
    let ab = Key::stream("ab");
    let b = Key::stream("b");
    let r1 = run(
        vec![
            (Key::event_type("T"), vec![1]),
            (a.clone(), vec![1, 2]),
            (ab.clone(), vec![3]),
        ],
        (1, 10),
    );
    let r2 = run(vec![(a.clone(), vec![11]), (b.clone(), vec![12])], (11, 20));
    let frozen = Arc::new(Memtable::new());
    frozen.insert(&ab, 21);
    frozen.insert(&Key::tag("x"), 22);
    let active = Arc::new(Memtable::new());
    active.insert(&a, 30);
    active.insert(&Key::stream("c"), 31);
    active.insert(&Key::stream("d"), 40);
    active.insert(&Key::id(1), 30);
    let view = IndexView::new(vec![r2, r1], vec![frozen, active]);
    let names = |v: Vec<(Key, u64)>| {
        v.into_iter()
            .map(|(k, n)| (String::from_utf8(k.name().to_vec()).unwrap(), n))
            .collect::<Vec<_>>()
    };
    let s = |n: &str, c: u64| (n.to_string(), c);
    let all = Key::stream("");
    // The head hides "d", whose only position is above it.
    assert_eq!(
        names(view.list(&all, None, 100, 35)),
        [s("a", 4), s("ab", 2), s("b", 1), s("c", 1)]
    );
    assert_eq!(names(view.list(&all, None, 100, 40)).len(), 5);
    assert_eq!(names(view.list(&all, None, 2, 35)), [s("a", 4), s("ab", 2)]);
    assert_eq!(
        names(view.list(&all, Some(&ab), 2, 35)),
        [s("b", 1), s("c", 1)]
    );
    assert_eq!(names(view.list(&a, None, 10, 35)), [s("a", 4), s("ab", 2)]);
    assert_eq!(names(view.list(&a, Some(&a), 10, 35)), [s("ab", 2)]);
    assert_eq!(names(view.list(&a, Some(&b), 10, 35)), []);
    assert_eq!(names(view.list(&b, Some(&a), 10, 35)), [s("b", 1)]);
    assert_eq!(
        names(view.list(&Key::event_type(""), None, 10, 35)),
        [s("T", 1)]
    );
    assert_eq!(names(view.list(&Key::tag(""), None, 10, 35)), [s("x", 1)]);
    // Paging one at a time through every key gives the whole list.
    let mut pages = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let page = view.list(&all, after.as_ref(), 1, 40);
        let Some((last, _)) = page.last().cloned() else {
            break;
        };
        pages.extend(names(page));
        after = Some(last);
    }
    assert_eq!(pages, names(view.list(&all, None, 100, 40)));
}

/// A memtable with more keys than one chunk is walked chunk by chunk.
#[test]
fn lists_past_a_memtable_chunk() {
    let m = Arc::new(Memtable::new());
    for i in 0..100u64 {
        m.insert(&Key::tag(&format!("t{i:03}")), i + 1);
    }
    let view = IndexView::new(Vec::new(), vec![m]);
    let got = view.list(&Key::tag("t"), None, 60, 100);
    assert_eq!(got.len(), 60);
    assert_eq!(got[59].0, Key::tag("t059"));
    let got = view.list(&Key::tag("t0"), Some(&Key::tag("t050")), 1000, 100);
    assert_eq!(got.len(), 49);
    assert!(got.iter().all(|(_, n)| *n == 1));
}

#[test]
fn the_overlay_adds_postings_inside_runs_ranges() {
    let x = Key::tag("x");
    let t = Key::event_type("T");
    let r1 = run(
        vec![(x.clone(), vec![2]), (t.clone(), vec![1, 2, 3])],
        (1, 10),
    );
    let active = Arc::new(Memtable::new());
    active.insert(&x, 12);
    active.insert(&t, 11);
    let overlay = Arc::new(
        crate::Overlay::new().with(&[(x.clone(), vec![5, 1]), (Key::tag("new"), vec![3, 11])]),
    );
    let view = IndexView::new(vec![r1], vec![active]).with_overlay(overlay);
    assert_eq!(forward(view.cursor(&x).as_mut()), vec![1, 2, 5, 12]);
    assert_eq!(view.count(&x), 4);
    assert_eq!(view.first(&x), Some(1));
    assert_eq!(view.last(&x), Some(12));
    let new = Key::tag("new");
    assert_eq!(forward(view.cursor(&new).as_mut()), vec![3, 11]);
    assert_eq!(view.last(&new), Some(11));
    // Queries AND the overlay's lists with the sources'.
    let spec = crate::QuerySpec {
        items: vec![crate::ItemSpec {
            types: vec![t.clone()],
            tags: vec![new.clone()],
        }],
    };
    assert_eq!(forward(view.evaluate(&spec).as_mut()), vec![3, 11]);
    // Listings count the overlay's keys up to the head.
    let listed = view.list(&Key::tag(""), None, 10, 11);
    assert_eq!(listed, vec![(new.clone(), 2), (x.clone(), 3)]);
    let listed = view.list(&Key::tag(""), None, 10, 10);
    assert_eq!(listed, vec![(new, 1), (x, 3)]);
}

#[test]
fn a_view_within_bounds_answers_as_the_whole_view_there_without_the_sources_outside() {
    let (t, u) = (Key::event_type("T"), Key::event_type("U"));
    let (x, y) = (Key::tag("x"), Key::tag("y"));
    // Three runs, a frozen and an active memtable; every key in each.
    let list = |lo: u64, step: u64| (lo..lo + 10).step_by(step as usize).collect::<Vec<_>>();
    let runs: Vec<_> = (0..3u64)
        .map(|i| {
            let lo = i * 10 + 1;
            run(
                vec![
                    (t.clone(), list(lo, 2)),
                    (u.clone(), list(lo + 1, 2)),
                    (x.clone(), list(lo, 3)),
                    (y.clone(), list(lo, 4)),
                ],
                (lo, lo + 9),
            )
        })
        .collect();
    let memtables: Vec<_> = [31u64, 41]
        .iter()
        .map(|&lo| {
            let m = Arc::new(Memtable::new());
            for p in lo..lo + 10 {
                m.insert(if p % 2 == 1 { &t } else { &u }, p);
                if p % 3 == 1 {
                    m.insert(&x, p);
                }
                if p % 4 == 1 {
                    m.insert(&y, p);
                }
            }
            m
        })
        .collect();
    let overlay = Arc::new(crate::Overlay::new().with(&[(y.clone(), vec![3, 24, 44])]));
    let hidden = Arc::new(Hidden::new().with(&[7, 22, 43], []));
    let view = Arc::new(
        IndexView::new(runs, memtables)
            .with_overlay(overlay)
            .with_hidden(hidden),
    );
    let specs = [
        vec![crate::ItemSpec {
            types: vec![t.clone()],
            tags: vec![],
        }],
        vec![crate::ItemSpec {
            types: vec![t.clone(), u.clone()],
            tags: vec![x.clone()],
        }],
        vec![
            crate::ItemSpec {
                types: vec![],
                tags: vec![x.clone(), y.clone()],
            },
            crate::ItemSpec {
                types: vec![u.clone()],
                tags: vec![y.clone()],
            },
        ],
    ];
    let inside = |v: Vec<u64>, lo: u64, hi: u64| -> Vec<u64> {
        v.into_iter().filter(|p| (lo..=hi).contains(p)).collect()
    };
    for items in specs {
        let spec = crate::QuerySpec { items };
        let all = forward(view.evaluate(&spec).as_mut());
        assert!(!all.is_empty());
        for lo in 1..=52 {
            for hi in lo..=52 {
                let within = view.within(lo, hi);
                let got = inside(forward(within.evaluate(&spec).as_mut()), lo, hi);
                assert_eq!(got, inside(all.clone(), lo, hi), "{spec:?} {lo}..={hi}");
            }
        }
    }
    // The sources outside the bounds are left out: their keys are not
    // counted.
    assert_eq!(view.count(&t), 25);
    assert_eq!(view.within(21, 30).count(&t), 5);
    assert_eq!(view.within(29, 32).count(&t), 5 + 5);
    assert_eq!(view.within(45, 60).count(&t), 5);
    // Bounds every source meets share the view instead of copying it.
    assert!(Arc::ptr_eq(&view.within(1, u64::MAX), &view));
    assert!(Arc::ptr_eq(&view.within(10, 41), &view));
    assert!(!Arc::ptr_eq(&view.within(11, 41), &view));
    assert_eq!(
        view.within(60, 70).count(&t),
        5,
        "the active memtable is unbounded"
    );
}
