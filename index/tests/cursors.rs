//! Every cursor against a sorted-set model, under arbitrary (not only
//! monotone) sequences of seeks.

use std::collections::BTreeSet;

use bytes::Bytes;
use gesta_index::{
    All, Chain, Cursor, Empty, Intersection, Key, ListCursor, Memtable, Run, Segment, Union,
    write_run,
};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Seek {
    Ge(u64),
    Le(u64),
    /// `take_ge(target, hi, n)`.
    Take(u64, u64, usize),
}

fn seek() -> impl Strategy<Value = Seek> {
    prop_oneof![
        (0u64..1200).prop_map(Seek::Ge),
        (0u64..1200).prop_map(Seek::Le),
        (0u64..1200, 0u64..1300, 0usize..300).prop_map(|(t, hi, n)| Seek::Take(t, hi, n)),
    ]
}

/// A walk: mostly small steps in one direction, sometimes a jump, as
/// forward/backward iteration and leapfrog do.
fn seeks() -> impl Strategy<Value = Vec<Seek>> {
    prop::collection::vec(seek(), 1..200)
}

fn set() -> impl Strategy<Value = BTreeSet<u64>> {
    prop::collection::btree_set(0u64..1100, 0..400)
}

fn check(
    cursor: &mut dyn Cursor,
    model: &BTreeSet<u64>,
    ops: &[Seek],
) -> Result<(), TestCaseError> {
    for &op in ops {
        match op {
            Seek::Ge(t) => prop_assert_eq!(
                cursor.seek_ge(t),
                model.range(t..).next().copied(),
                "ge {}",
                t
            ),
            Seek::Le(t) => prop_assert_eq!(
                cursor.seek_le(t),
                model.range(..=t).next_back().copied(),
                "le {}",
                t
            ),
            Seek::Take(t, hi, n) => {
                let mut out = vec![u64::MAX];
                cursor.take_ge(t, hi, n, &mut out);
                let wanted: Vec<u64> = std::iter::once(u64::MAX)
                    .chain(model.range(t..).copied().take_while(|&p| p <= hi).take(n))
                    .collect();
                prop_assert_eq!(out, wanted, "take {} ..= {}, {}", t, hi, n);
            }
        }
    }
    // Forwards in takes of a few, as a read does.
    let mut taken = Vec::new();
    let mut t = 0;
    loop {
        let before = taken.len();
        cursor.take_ge(t, u64::MAX, 7, &mut taken);
        match taken.last() {
            Some(&p) if taken.len() == before + 7 => t = p + 1,
            _ => break,
        }
    }
    prop_assert_eq!(taken, model.iter().copied().collect::<Vec<_>>());
    // Then full iteration both ways.
    let mut t = 0;
    let mut fwd = Vec::new();
    while let Some(p) = cursor.seek_ge(t) {
        fwd.push(p);
        t = p + 1;
    }
    prop_assert_eq!(fwd, model.iter().copied().collect::<Vec<_>>());
    let mut t = u64::MAX;
    let mut back = Vec::new();
    while let Some(p) = cursor.seek_le(t) {
        back.push(p);
        if p == 0 {
            break;
        }
        t = p - 1;
    }
    prop_assert_eq!(back, model.iter().rev().copied().collect::<Vec<_>>());
    Ok(())
}

fn list(s: &BTreeSet<u64>) -> Box<dyn Cursor> {
    Box::new(ListCursor::new(s.iter().copied().collect()))
}

fn run_cursor(s: &BTreeSet<u64>) -> Box<dyn Cursor> {
    let key = Key::tag("k");
    let other = (Key::tag("l"), vec![3, 5, 2000]);
    let bytes = write_run(
        vec![(key.clone(), s.iter().copied().collect()), other],
        (0, 2000),
    );
    let run = Run::open(Bytes::from(bytes)).unwrap();
    run.cursor(&key).unwrap_or_else(|| Box::new(Empty))
}

fn mem_cursor(s: &BTreeSet<u64>) -> Box<dyn Cursor> {
    let m = Memtable::new();
    let key = Key::tag("k");
    for &p in s {
        m.insert(&key, p);
        m.insert(&Key::tag("noise"), p);
    }
    m.cursor(&key).unwrap_or_else(|| Box::new(Empty))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn leaves(s in set(), ops in seeks()) {
        check(list(&s).as_mut(), &s, &ops)?;
        check(run_cursor(&s).as_mut(), &s, &ops)?;
        check(mem_cursor(&s).as_mut(), &s, &ops)?;
    }

    #[test]
    fn union(sets in prop::collection::vec(set(), 0..5), ops in seeks(), leaf in 0..3usize) {
        let make = [list, run_cursor, mem_cursor][leaf];
        let model: BTreeSet<u64> = sets.iter().flatten().copied().collect();
        let mut u = Union::new(sets.iter().map(make).collect());
        check(&mut u, &model, &ops)?;
    }

    #[test]
    fn intersection(
        sets in prop::collection::vec(prop::collection::btree_set(0u64..300, 0..250), 1..5),
        ops in seeks(),
        leaf in 0..3usize,
        with_all in any::<bool>(),
    ) {
        let make = [list, run_cursor, mem_cursor][leaf];
        let mut model = sets[0].clone();
        for s in &sets[1..] {
            model = model.intersection(s).copied().collect();
        }
        let mut children: Vec<Box<dyn Cursor>> = sets.iter().map(make).collect();
        if with_all {
            children.insert(1, Box::new(All));
        }
        let mut i = Intersection::new(children);
        check(&mut i, &model, &ops)?;
    }

    #[test]
    fn chain(s in set(), cuts in prop::collection::vec(0u64..1100, 0..4), ops in seeks(), leaf in 0..3usize) {
        let make = [list, run_cursor, mem_cursor][leaf];
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let mut segments = Vec::new();
        let mut lo = 0;
        for hi in cuts.into_iter().chain([u64::MAX]) {
            if hi < lo {
                continue;
            }
            let part: BTreeSet<u64> = s.range(lo..=hi).copied().collect();
            segments.push(Segment { lo, hi, cursor: make(&part) });
            lo = hi.saturating_add(1);
        }
        check(&mut Chain::new(segments), &s, &ops)?;
    }

    /// Union of intersections of unions: the shape of a query.
    #[test]
    fn nested(sets in prop::collection::vec(prop::collection::btree_set(0u64..200, 0..150), 4), ops in seeks()) {
        let [a, b, c, d] = [&sets[0], &sets[1], &sets[2], &sets[3]];
        let ab: BTreeSet<u64> = a.union(b).copied().collect();
        let left: BTreeSet<u64> = ab.intersection(c).copied().collect();
        let model: BTreeSet<u64> = left.union(d).copied().collect();
        let inner = Box::new(Union::new(vec![run_cursor(a), mem_cursor(b)]));
        let and = Box::new(Intersection::new(vec![list(c), inner]));
        let mut q = Union::new(vec![and, run_cursor(d)]);
        check(&mut q, &model, &ops)?;
    }
}
