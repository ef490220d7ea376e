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
