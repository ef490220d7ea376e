//! Tenants: stores under one root, opened lazily, bounded, isolated by
//! name, with quotas, creation, listing and purge.

use gesta::tenants::{TenantError, TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Options, Query, ReadOptions};

fn small() -> Options {
    // Small segments and preallocation: many stores in one test.
    Options::default()
        .segment_size(1 << 20)
        .preallocate(64 << 10)
}

fn options(max_open: usize) -> TenantOptions {
    TenantOptions {
        store: small(),
        max_open,
        ..TenantOptions::default()
    }
}

fn ev(i: u64) -> NewEvent {
    NewEvent::new("E", format!("{{\"i\":{i}}}")).tag("t:1")
}

fn count(store: &gesta::Store) -> usize {
    store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .count()
}

#[test]
fn names_are_checked_and_cannot_leave_the_root() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    for bad in [
        "",
        "..",
        ".",
        "../x",
        "a/b",
        "A",
        "-a",
        "_a",
        "a b",
        ".purging-a",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(tenants.create(bad), Err(TenantError::InvalidName { .. })),
            "{bad:?} was accepted"
        );
        assert!(matches!(
            tenants.get(bad),
            Err(TenantError::InvalidName { .. })
        ));
        assert!(matches!(
            tenants.purge(bad),
            Err(TenantError::InvalidName { .. })
        ));
    }
    tenants.create(&"a".repeat(64)).unwrap();
    tenants.create("acme-1_x").unwrap();
    assert!(matches!(
        tenants.create("acme-1_x"),
        Err(TenantError::Exists(_))
    ));
    assert!(matches!(
        tenants.get("nobody"),
        Err(TenantError::Unknown(_))
    ));
    // Nothing was made outside `tenants/`.
    let mut top: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["tenants"]);
    assert_eq!(tenants.list().unwrap(), ["a".repeat(64), "acme-1_x".into()]);
}

#[test]
fn tenants_see_only_their_own_events() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    tenants.create("a").unwrap();
    tenants.create("b").unwrap();
    tenants
        .append("a", vec![ev(1), ev(2)], AppendOptions::new())
        .unwrap();
    tenants
        .append("b", vec![ev(3)], AppendOptions::new())
        .unwrap();
    assert_eq!(count(&tenants.get("a").unwrap()), 2);
    assert_eq!(count(&tenants.get("b").unwrap()), 1);
    // Each is a store of its own, in its own directory.
    assert_eq!(
        tenants.get("a").unwrap().path(),
        root.path().join("tenants/a")
    );
    tenants.close().unwrap();
    // Reopened as plain stores, each holds its own events.
    let a = gesta::Store::open_with(root.path().join("tenants/a"), small()).unwrap();
    assert_eq!(count(&a), 2);
}

#[test]
fn at_most_max_open_stores_are_open_and_held_ones_stay_open() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(2)).unwrap();
    for name in ["a", "b", "c"] {
        tenants.create(name).unwrap();
        tenants
            .append(name, vec![ev(1)], AppendOptions::new())
            .unwrap();
        assert!(tenants.open_count() <= 2);
    }
    assert_eq!(tenants.open_count(), 2);
    // Held stores are never closed under their holder: with both open
    // ones held, a third is refused rather than passing the bound.
    let a = tenants.get("a").unwrap();
    let b = tenants.get("b").unwrap();
    assert!(matches!(tenants.get("c"), Err(TenantError::Busy(2))));
    a.append(vec![ev(2)]).unwrap();
    drop(b);
    // b was idle: c takes its place, a stays open and usable.
    let c = tenants.get("c").unwrap();
    assert_eq!(count(&c), 1);
    a.append(vec![ev(3)]).unwrap();
    assert_eq!(count(&a), 3);
    assert_eq!(tenants.open_count(), 2);
    // b reopens lazily with what it had.
    drop((a, c));
    assert_eq!(count(&tenants.get("b").unwrap()), 1);
}

#[test]
fn quotas_refuse_appends_and_append_nothing() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            max_events: Some(5),
            ..options(4)
        },
    )
    .unwrap();
    tenants.create("a").unwrap();
    tenants
        .append("a", vec![ev(1), ev(2), ev(3)], AppendOptions::new())
        .unwrap();
    let refused = tenants.append("a", vec![ev(4), ev(5), ev(6)], AppendOptions::new());
    match refused {
        Err(TenantError::QuotaExceeded { tenant, what }) => {
            assert_eq!(tenant, "a");
            assert!(what.contains("limit of 5"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tenants.get("a").unwrap().head(), 3);
    tenants
        .append("a", vec![ev(4), ev(5)], AppendOptions::new())
        .unwrap();
    assert!(matches!(
        tenants.append("a", vec![ev(6)], AppendOptions::new()),
        Err(TenantError::QuotaExceeded { .. })
    ));

    // A byte quota below what an empty store's files take refuses at once.
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            max_bytes: Some(1024),
            ..options(4)
        },
    )
    .unwrap();
    tenants.create("b").unwrap();
    assert!(matches!(
        tenants.append("b", vec![ev(1)], AppendOptions::new()),
        Err(TenantError::QuotaExceeded { .. })
    ));
    assert_eq!(tenants.get("b").unwrap().head(), 0);
}

#[test]
fn a_purge_removes_every_file_and_waits_for_no_one() {
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    tenants.create("a").unwrap();
    tenants.create("b").unwrap();
    tenants
        .append("a", vec![ev(1)], AppendOptions::new())
        .unwrap();
    let held = tenants.get("a").unwrap();
    assert!(matches!(tenants.purge("a"), Err(TenantError::InUse(_))));
    assert_eq!(held.head(), 1);
    drop(held);
    tenants.purge("a").unwrap();
    assert!(!root.path().join("tenants/a").exists());
    assert_eq!(tenants.list().unwrap(), ["b"]);
    assert!(matches!(tenants.get("a"), Err(TenantError::Unknown(_))));
    assert!(matches!(tenants.purge("a"), Err(TenantError::Unknown(_))));
    // The name can be used again, for an empty store.
    tenants.create("a").unwrap();
    assert_eq!(tenants.get("a").unwrap().head(), 0);
}

#[test]
fn an_interrupted_purge_is_finished_on_open() {
    let root = tempfile::tempdir().unwrap();
    {
        let tenants = Tenants::open(root.path(), options(4)).unwrap();
        tenants.create("a").unwrap();
        tenants
            .append("a", vec![ev(1)], AppendOptions::new())
            .unwrap();
        tenants.close().unwrap();
    }
    // A purge that renamed the directory and then stopped.
    std::fs::rename(
        root.path().join("tenants/a"),
        root.path().join("tenants/.purging-a"),
    )
    .unwrap();
    let tenants = Tenants::open(root.path(), options(4)).unwrap();
    assert!(tenants.list().unwrap().is_empty());
    assert!(!root.path().join("tenants/.purging-a").exists());
}
