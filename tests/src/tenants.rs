//! The tenants suite, generic over a [`TenantHome`], so that the engine's
//! tenants and the SQL backends' (a file per tenant, a schema per tenant)
//! are held to one contract: names checked alike and kept inside their
//! home, one tenant never seeing another's events through any door
//! (reads, queries, conditions, stream revisions, ids, subscriptions,
//! durable cursors, snapshots, listings), purge, the bound on open
//! stores, and the events quota.
//!
//! Each function takes a set with no tenants named `a`, `b`, `c` yet.

use std::sync::Arc;
use std::time::Duration;

use gesta::tenants::{TenantError, TenantHome, TenantSet};
use gesta::{
    AppendOptions, Error, EventStore, ExpectedRevision, NewEvent, Query, QueryItem, ReadOptions,
};

/// Names every home must refuse, with the error [`TenantError::InvalidName`]:
/// empty, path steps and separators, upper case, a leading `-` or `_`,
/// SQL quoting, a purge's temporary name, and 65 bytes.
pub fn bad_names() -> Vec<String> {
    [
        "",
        "..",
        ".",
        "../x",
        "a/b",
        "a\\b",
        "A",
        "-a",
        "_a",
        "a b",
        "a\"b",
        "a'; DROP SCHEMA public CASCADE; --",
        "a\0",
        ".purging-a",
        "é",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(["a".repeat(65)])
    .collect()
}

/// Every bad name is refused by create, get and purge, and nothing is
/// listed for them.
pub fn names_are_checked<H: TenantHome>(set: &TenantSet<H>) {
    for bad in bad_names() {
        assert!(
            matches!(set.create(&bad), Err(TenantError::InvalidName { .. })),
            "{bad:?} was accepted"
        );
        assert!(matches!(
            set.get(&bad),
            Err(TenantError::InvalidName { .. })
        ));
        assert!(matches!(
            set.purge(&bad),
            Err(TenantError::InvalidName { .. })
        ));
    }
    assert!(set.list().unwrap().is_empty());
    set.create("acme-1_x").unwrap();
    assert!(matches!(
        set.create("acme-1_x"),
        Err(TenantError::Exists(_))
    ));
    assert!(matches!(set.get("nobody"), Err(TenantError::Unknown(_))));
    assert_eq!(set.list().unwrap(), ["acme-1_x"]);
}

fn ev(t: &str, label: &str) -> NewEvent {
    NewEvent::new(t, label.to_owned())
        .tag("course:c1")
        .tag("shared")
}

fn labels<S: EventStore>(store: &S, query: &Query) -> Vec<String> {
    store
        .read(query, ReadOptions::forwards())
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().data.to_vec()).unwrap())
        .collect()
}

const WAIT: Duration = Duration::from_secs(20);

/// Tenants `a` and `b` hold events of the same types, tags, streams and
/// ids; each sees only its own, through every door.
pub fn tenants_are_isolated<H: TenantHome>(set: &TenantSet<H>)
where
    H::Store: EventStore,
{
    set.create("a").unwrap();
    set.create("b").unwrap();
    let a = set.get("a").unwrap();
    let b = set.get("b").unwrap();
    let mut sub_a = a.subscribe(&Query::all(), 0).unwrap();
    let mut durable_b = b.subscribe_durable("projector", &Query::all()).unwrap();

    let id = 0x1234_u128;
    a.append(vec![
        ev("Defined", "a1").stream("s-1").id(id),
        ev("Renamed", "a2"),
    ])
    .unwrap();
    // The same id, stream and types in b: no idempotent retry, no
    // revision or condition conflict with a's events.
    b.append_with(
        vec![ev("Defined", "b1").stream("s-1").id(id)],
        AppendOptions::new()
            .expect("s-1", ExpectedRevision::NoStream)
            .fail_if(Query::tag("course:c1"), None),
    )
    .unwrap();
    assert_eq!((a.head().unwrap(), b.head().unwrap()), (2, 1));

    // Reads and queries.
    assert_eq!(labels(&*a, &Query::all()), ["a1", "a2"]);
    assert_eq!(labels(&*b, &Query::all()), ["b1"]);
    let defined = Query::item(QueryItem::new().types(["Defined"]).tag("shared"));
    assert_eq!(labels(&*a, &defined), ["a1"]);
    assert_eq!(labels(&*b, &defined), ["b1"]);
    assert_eq!(labels(&*b, &Query::tag("course:c1")), ["b1"]);
    let last = b.read_last(&Query::all()).unwrap().unwrap();
    assert_eq!(&last.data[..], b"b1");
    assert_eq!(&b.event_by_id(id).unwrap().unwrap().data[..], b"b1");
    assert_eq!(b.stream_revision("s-1").unwrap(), Some(0));
    assert_eq!(
        labels(&*b, &Query::all()),
        b.read_stream("s-1", ReadOptions::forwards())
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().data.to_vec()).unwrap())
            .collect::<Vec<_>>()
    );

    // Conditions: b's condition sees only b's events.
    let refused = b.append_with(
        vec![ev("Defined", "b2")],
        AppendOptions::new().fail_if(Query::tag("course:c1"), Some(0)),
    );
    assert!(
        matches!(refused, Err(Error::ConditionFailed { .. })),
        "{refused:?}"
    );
    b.append_with(
        vec![ev("Other", "b2")],
        AppendOptions::new().fail_if(Query::event_type("Renamed"), None),
    )
    .unwrap();
    let refused = b.append_with(
        vec![ev("Defined", "b3").stream("s-1")],
        AppendOptions::new().expect("s-1", ExpectedRevision::Exact(1)),
    );
    assert!(
        matches!(refused, Err(Error::WrongExpectedRevision { .. })),
        "{refused:?}"
    );

    // Subscriptions: a's gets a's batch only, b's durable one b's.
    let batch = sub_a.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(|e| e.data.starts_with(b"a")));
    assert!(sub_a.try_recv().unwrap().is_none());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = durable_b.recv_timeout(WAIT).unwrap().unwrap();
        seen.extend(batch.into_iter().map(|e| e.data));
    }
    assert_eq!(seen, [&b"b1"[..], &b"b2"[..]]);
    durable_b.ack(2).unwrap();
    assert!(a.durable_subscriptions().unwrap().is_empty());
    assert_eq!(b.durable_subscriptions().unwrap()[0].acknowledged, 2);

    // Snapshots and tracking under the same keys.
    a.save_snapshot("p", 1, b"from a").unwrap();
    assert!(b.load_snapshot("p", u64::MAX).unwrap().is_none());

    // Listings.
    let names = |listed: Vec<gesta::Listed>| -> Vec<(String, u64)> {
        listed.into_iter().map(|l| (l.name, l.count)).collect()
    };
    assert_eq!(
        names(a.list_types("", None, 10).unwrap()),
        [("Defined".into(), 1), ("Renamed".into(), 1)]
    );
    assert_eq!(
        names(b.list_types("", None, 10).unwrap()),
        [("Defined".into(), 1), ("Other".into(), 1)]
    );
    assert_eq!(
        names(b.list_streams("", None, 10).unwrap()),
        [("s-1".into(), 1)]
    );
    assert_eq!(
        names(a.list_tags("", None, 10).unwrap()),
        [("course:c1".into(), 2), ("shared".into(), 2)]
    );
    drop((sub_a, durable_b));
    assert_eq!(set.list().unwrap(), ["a", "b"]);
}

/// A purge is refused while the store is held, then removes the tenant
/// and all it held; the name then makes a new, empty tenant.
pub fn purge_removes_a_tenant<H: TenantHome>(set: &TenantSet<H>)
where
    H::Store: EventStore,
{
    set.create("a").unwrap();
    set.create("b").unwrap();
    set.append("a", vec![ev("E", "a1")], AppendOptions::new())
        .unwrap();
    set.append("b", vec![ev("E", "b1")], AppendOptions::new())
        .unwrap();
    let held = set.get("a").unwrap();
    assert!(matches!(set.purge("a"), Err(TenantError::InUse(_))));
    assert_eq!(held.head().unwrap(), 1);
    drop(held);
    set.purge("a").unwrap();
    assert_eq!(set.list().unwrap(), ["b"]);
    assert!(matches!(set.get("a"), Err(TenantError::Unknown(_))));
    assert!(matches!(set.purge("a"), Err(TenantError::Unknown(_))));
    assert_eq!(labels(&*set.get("b").unwrap(), &Query::all()), ["b1"]);
    set.create("a").unwrap();
    assert_eq!(set.get("a").unwrap().head().unwrap(), 0);
}

/// At most `max_open` (2) stores are open; held ones are never closed,
/// and when all are held another is refused as busy.
pub fn open_stores_are_bounded<H: TenantHome>(set: &TenantSet<H>)
where
    H::Store: EventStore,
{
    assert_eq!(set.limits().max_open, 2);
    for name in ["a", "b", "c"] {
        set.create(name).unwrap();
        set.append(name, vec![ev("E", name)], AppendOptions::new())
            .unwrap();
        assert!(set.open_count() <= 2);
    }
    let a = set.get("a").unwrap();
    let b = set.get("b").unwrap();
    assert!(matches!(set.get("c"), Err(TenantError::Busy(2))));
    drop(b);
    let c: Arc<H::Store> = set.get("c").unwrap();
    assert_eq!(labels(&*c, &Query::all()), ["c"]);
    assert_eq!(labels(&*a, &Query::all()), ["a"]);
    drop((a, c));
    assert_eq!(labels(&*set.get("b").unwrap(), &Query::all()), ["b"]);
}

/// With `max_events` 3: an append that would pass it is refused whole.
pub fn event_quota_refuses_whole_appends<H: TenantHome>(set: &TenantSet<H>)
where
    H::Store: EventStore,
{
    assert_eq!(set.limits().max_events, Some(3));
    set.create("a").unwrap();
    set.append("a", vec![ev("E", "1"), ev("E", "2")], AppendOptions::new())
        .unwrap();
    let refused = set.append("a", vec![ev("E", "3"), ev("E", "4")], AppendOptions::new());
    assert!(
        matches!(refused, Err(TenantError::QuotaExceeded { ref tenant, .. }) if tenant == "a"),
        "{refused:?}"
    );
    assert_eq!(set.get("a").unwrap().head().unwrap(), 2);
    set.append("a", vec![ev("E", "3")], AppendOptions::new())
        .unwrap();
}

/// With `max_bytes` far below what an empty store takes: the first
/// append is refused.
pub fn byte_quota_refuses_appends<H: TenantHome>(set: &TenantSet<H>)
where
    H::Store: EventStore,
{
    set.create("a").unwrap();
    let refused = set.append("a", vec![ev("E", "1")], AppendOptions::new());
    assert!(
        matches!(refused, Err(TenantError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    assert_eq!(set.get("a").unwrap().head().unwrap(), 0);
}
