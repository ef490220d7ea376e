//! Query evaluation against a brute-force model: random events split into
//! runs and memtables at random boundaries, random queries read forwards
//! and backwards within random ranges.

use std::sync::Arc;

use bytes::Bytes;
use gesta_index::{
    Direction, IndexView, ItemSpec, Key, Memtable, Positions, QuerySpec, Run, write_run,
};
use proptest::prelude::*;

const TYPES: usize = 4;
const TAGS: usize = 5;

#[derive(Clone, Debug)]
struct Event {
    ty: usize,
    tags: u8,
    id: Option<u128>,
}

fn type_key(i: usize) -> Key {
    Key::event_type(&format!("T{i}"))
}

fn tag_key(i: usize) -> Key {
    Key::tag(&format!("g{i}"))
}

/// The keys an event at `position` is indexed under.
fn keys_of(e: &Event) -> Vec<Key> {
    let mut keys = vec![type_key(e.ty)];
    keys.extend((0..TAGS).filter(|t| e.tags & (1 << t) != 0).map(tag_key));
    keys.extend(e.id.map(Key::id));
    keys
}

/// The posting lists of the events at positions `lo..=hi` (1-based).
fn entries(events: &[Event], lo: u64, hi: u64) -> Vec<(Key, Vec<u64>)> {
    let mut map = std::collections::BTreeMap::<Key, Vec<u64>>::new();
    for p in lo..=hi {
        for k in keys_of(&events[p as usize - 1]) {
            map.entry(k).or_default().push(p);
        }
    }
    map.into_iter().collect()
}

/// Query items in index form (`ItemSpec`) and model form (type and tag
/// numbers; numbers past the known ones are keys no event has).
#[derive(Clone, Debug)]
struct Item {
    types: Vec<usize>,
    tags: Vec<usize>,
}

fn matches(e: &Event, item: &Item) -> bool {
    (item.types.is_empty() || item.types.contains(&e.ty))
        && item
            .tags
            .iter()
            .all(|&t| t < TAGS && e.tags & (1 << t) != 0)
}

fn spec(items: &[Item]) -> QuerySpec {
    QuerySpec {
        items: items
            .iter()
            .map(|i| ItemSpec {
                types: i.types.iter().map(|&t| type_key(t)).collect(),
                tags: i.tags.iter().map(|&t| tag_key(t)).collect(),
            })
            .collect(),
    }
}

fn event() -> impl Strategy<Value = Event> {
    (
        0..TYPES,
        any::<u8>(),
        prop::option::weighted(0.3, any::<u128>()),
    )
        .prop_map(|(ty, tags, id)| Event {
            ty,
            tags: tags & ((1 << TAGS) - 1),
            id,
        })
}

fn item() -> impl Strategy<Value = Item> {
    (
        prop::collection::vec(0..TYPES + 1, 0..3),
        prop::collection::vec(0..TAGS + 1, 0..4),
    )
        .prop_map(|(types, tags)| Item { types, tags })
}

struct Store {
    view: IndexView,
    runs: Vec<Arc<Run>>,
}

/// Splits the events into `runs` runs then `mems` memtables at the given
/// cut points. With `stale`, the first memtable also still holds the last
/// run's postings, as a frozen memtable does between its flush and the
/// view switch.
fn build(events: &[Event], runs: usize, mems: usize, cuts: &[u64], stale: bool) -> Store {
    let n = events.len() as u64;
    let sources = runs + mems;
    let mut bounds: Vec<u64> = cuts
        .iter()
        .map(|c| c % (n + 1))
        .take(sources.saturating_sub(1))
        .collect();
    bounds.sort_unstable();
    bounds.insert(0, 0);
    bounds.push(n);
    let mut run_list = Vec::new();
    let mut mem_list = Vec::new();
    for s in 0..sources {
        let (lo, hi) = (bounds[s] + 1, bounds[s + 1]);
        if s < runs {
            let bytes = write_run(entries(events, lo, hi), (lo, hi));
            run_list.push(Arc::new(Run::open(Bytes::from(bytes)).unwrap()));
        } else {
            let m = Memtable::new();
            if stale && s == runs && runs > 0 {
                for (k, list) in entries(events, bounds[runs - 1] + 1, bounds[runs]) {
                    for p in list {
                        m.insert(&k, p);
                    }
                }
            }
            let batch: Vec<(Key, u64)> = (lo..=hi)
                .flat_map(|p| {
                    keys_of(&events[p as usize - 1])
                        .into_iter()
                        .map(move |k| (k, p))
                })
                .collect();
            m.insert_many(&batch);
            mem_list.push(Arc::new(m));
        }
    }
    Store {
        view: IndexView::new(run_list.clone(), mem_list),
        runs: run_list,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn queries_match_brute_force(
        events in prop::collection::vec(event(), 0..400),
        runs in 0usize..=3,
        mems in 0usize..=2,
        cuts in prop::collection::vec(any::<u64>(), 4),
        stale in any::<bool>(),
        queries in prop::collection::vec(prop::collection::vec(item(), 0..4), 1..5),
        ranges in prop::collection::vec((any::<u64>(), any::<u64>()), 3),
    ) {
        let events = if runs + mems == 0 { Vec::new() } else { events };
        let n = events.len() as u64;
        let store = build(&events, runs, mems, &cuts, stale);
        for items in &queries {
            let spec = spec(items);
            let want_all: Vec<u64> = (1..=n)
                .filter(|&p| items.iter().any(|i| matches(&events[p as usize - 1], i)))
                .collect();
            for &(a, b) in &ranges {
                let (lo, hi) = (a % (n + 3), b % (n + 3));
                let want: Vec<u64> = want_all.iter().copied().filter(|p| (lo..=hi).contains(p)).collect();
                // `All` matches every position; the caller bounds it by 1..=head.
                let (lo_b, hi_b) = (lo.max(1), hi.min(n));
                let fwd: Vec<u64> = Positions::new(store.view.evaluate(&spec), lo_b, hi_b, Direction::Forwards).collect();
                prop_assert_eq!(&fwd, &want, "forward {:?} in {}..={}", items, lo, hi);
                let mut back: Vec<u64> = Positions::new(store.view.evaluate(&spec), lo_b, hi_b, Direction::Backwards).collect();
                back.reverse();
                prop_assert_eq!(&back, &want, "backward {:?} in {}..={}", items, lo, hi);
            }
        }
        // Per-key answers.
        for k in (0..=TYPES).map(type_key).chain((0..=TAGS).map(tag_key)) {
            let want: Vec<u64> = (1..=n).filter(|&p| keys_of(&events[p as usize - 1]).contains(&k)).collect();
            prop_assert_eq!(store.view.count(&k), want.len() as u64);
            prop_assert_eq!(store.view.last(&k), want.last().copied());
            prop_assert_eq!(store.view.first(&k), want.first().copied());
        }
        for (i, e) in events.iter().enumerate() {
            if let Some(id) = e.id {
                let first = events.iter().position(|x| x.id == Some(id)).unwrap() as u64 + 1;
                prop_assert_eq!(store.view.lookup_id(id), Some(first), "id of event {}", i + 1);
            }
        }
        prop_assert_eq!(store.view.lookup_id(u128::MAX - 12345), None);
    }
}

/// Big enough that lists span many blocks in runs and many chunks in
/// memtables, and leapfrog skips whole blocks; type 0 is dense enough for
/// the runs to read it through bitmaps.
#[test]
fn large_lists_across_sources() {
    let events: Vec<Event> = (0..20_000u64)
        .map(|p| Event {
            ty: if p % 20 == 0 { 1 } else { 0 },
            tags: if p % 333 == 0 {
                0b11
            } else if p % 3 == 0 {
                0b10
            } else {
                0
            },
            id: None,
        })
        .collect();
    let store = build(&events, 3, 2, &[5_000, 9_999, 15_000, 18_000], false);
    let items = vec![
        Item {
            types: vec![1],
            tags: vec![0],
        },
        Item {
            types: vec![0],
            tags: vec![0, 1],
        },
        Item {
            types: vec![1, 0],
            tags: vec![1],
        },
        Item {
            types: vec![],
            tags: vec![0],
        },
        Item {
            types: vec![1],
            tags: vec![],
        },
    ];
    for item in items {
        let items = vec![item];
        let want: Vec<u64> = (1..=20_000u64)
            .filter(|&p| matches(&events[p as usize - 1], &items[0]))
            .collect();
        let got: Vec<u64> = Positions::new(
            store.view.evaluate(&spec(&items)),
            1,
            20_000,
            Direction::Forwards,
        )
        .collect();
        assert_eq!(got, want, "{items:?}");
        let mut got: Vec<u64> = Positions::new(
            store.view.evaluate(&spec(&items)),
            1,
            20_000,
            Direction::Backwards,
        )
        .collect();
        got.reverse();
        assert_eq!(got, want, "{items:?} backward");
    }
    let dense: Vec<usize> = store.runs.iter().map(|r| r.dense_bytes()).collect();
    assert!(dense.iter().all(|&b| b > 0), "bitmaps held: {dense:?}");
}

#[test]
fn no_items_matches_nothing_and_empty_item_everything() {
    let events: Vec<Event> = (0..10)
        .map(|i| Event {
            ty: i % 2,
            tags: 0,
            id: None,
        })
        .collect();
    let store = build(&events, 1, 1, &[5], false);
    let none = QuerySpec::default();
    assert_eq!(
        Positions::new(store.view.evaluate(&none), 1, 10, Direction::Forwards).count(),
        0
    );
    let all = QuerySpec {
        items: vec![ItemSpec::default()],
    };
    assert_eq!(
        Positions::new(store.view.evaluate(&all), 1, 10, Direction::Forwards).count(),
        10
    );
    let unknown = QuerySpec {
        items: vec![ItemSpec {
            types: vec![type_key(9)],
            tags: vec![],
        }],
    };
    assert_eq!(
        Positions::new(store.view.evaluate(&unknown), 1, 10, Direction::Forwards).count(),
        0
    );
}
