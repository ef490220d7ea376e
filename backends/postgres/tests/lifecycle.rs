//! Retroactive tags, redaction and the audit trail on PostgreSQL: what
//! the tables hold after `add_tags` (read back, queried, listed, checked
//! by conditions), that refused input leaves no trace, audit paging,
//! reconnecting, a schema made before the audit table, and that
//! subscriptions are not fed by it (no `NOTIFY` is sent); what reads
//! return after `redact`, its audit entries, refused targets, schemas
//! made before the `redacted` and `added_tags` tables, and what `VACUUM (FULL)` does to
//! the bytes left in the table's files. Runs against
//! the server named by `GESTA_POSTGRES_URL` (`.ci/postgres.sh` starts
//! one); skips without it.
// The clock seam is for the crate's code; a test measures real time.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gesta::event::MAX_TAGS;
use gesta::lifecycle::{AuditEntry, Operation, Redacted, TagsAdded, Target};
use gesta::{
    AppendOptions, Error, EventStore, Listing, NewEvent, Query, QueryItem, ReadOptions,
    RecordedEvent,
};
use gesta_postgres::{PostgresOptions, PostgresStore};
use postgres::fallible_iterator::FallibleIterator;

/// A store in a schema of its own, dropped at the end.
struct Fixture {
    url: String,
    options: PostgresOptions,
    store: PostgresStore,
}

impl Fixture {
    /// A store in a fresh schema named after `name`; `None` (the test
    /// skips) without a server.
    fn new(name: &str) -> Option<Fixture> {
        Fixture::with_poll(name, Duration::from_millis(500))
    }

    fn with_poll(name: &str, poll_interval: Duration) -> Option<Fixture> {
        let Some(url) = std::env::var("GESTA_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            eprintln!("skipping: GESTA_POSTGRES_URL is not set");
            return None;
        };
        let options = PostgresOptions {
            schema: format!("gesta_lifecycle_{}_{name}", std::process::id()),
            pool_size: 4,
            poll_interval,
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect(&url, options.clone()).expect("connect");
        store.drop_schema().expect("drop a leftover schema");
        let store = PostgresStore::connect(&url, options.clone()).expect("connect");
        Some(Fixture {
            url,
            options,
            store,
        })
    }

    /// Another handle on the same schema.
    fn reconnect(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, self.options.clone()).expect("reconnect")
    }

    /// A plain client on the server.
    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("client")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.store.drop_schema();
    }
}

fn strings(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

fn events(store: &PostgresStore, query: &Query) -> Vec<RecordedEvent> {
    store
        .read(query, ReadOptions::forwards())
        .expect("read")
        .map(|e| e.expect("event"))
        .collect()
}

fn positions(store: &PostgresStore, query: &Query) -> Vec<u64> {
    events(store, query).iter().map(|e| e.position).collect()
}

/// Every event's tags, by position.
fn all_tags(store: &PostgresStore) -> Vec<Vec<String>> {
    events(store, &Query::all())
        .into_iter()
        .map(|e| e.tags)
        .collect()
}

fn tag_counts(store: &PostgresStore) -> Vec<(String, u64)> {
    store
        .list(Listing::Tags, "", None, 1000)
        .expect("list")
        .into_iter()
        .map(|l| (l.name, l.count))
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

/// Three events: 1 `A` [a], 2 `B` [b, x], 3 `A` [].
fn three(store: &PostgresStore) {
    store
        .append(vec![
            NewEvent::new("A", "1").tag("a"),
            NewEvent::new("B", "2").tag("b").tag("x"),
        ])
        .expect("append");
    store.append(vec![NewEvent::new("A", "3")]).expect("append");
}

fn now_micros() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    u64::try_from(since.as_micros()).expect("fits")
}

#[test]
fn tags_added_by_positions_and_by_query_are_read_queried_and_listed() {
    let Some(fx) = Fixture::new("added") else {
        return;
    };
    let store = &fx.store;
    three(store);

    let added = store
        .add_tags(
            &Target::Positions(vec![3, 1, 3]),
            &strings(&["n1", "n2", "n1"]),
        )
        .expect("add by positions");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 2,
            tagged: 2
        }
    );
    let added = store
        .add_tags(&Target::Query(Query::tag("b")), &strings(&["x", "n1"]))
        .expect("add by query");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 1,
            tagged: 1
        }
    );
    assert_eq!(store.head().expect("head"), 3, "no position consumed");

    // After the event's own tags, in the order added; `x` was there.
    assert_eq!(
        all_tags(store),
        [
            strings(&["a", "n1", "n2"]),
            strings(&["b", "x", "n1"]),
            strings(&["n1", "n2"]),
        ]
    );
    let last = store.read_last(&Query::tag("n2")).expect("read_last");
    assert_eq!(
        last.map(|e| (e.position, e.tags)),
        Some((3, strings(&["n1", "n2"])))
    );
    let mut lent = Vec::new();
    store
        .read_each(&Query::all(), ReadOptions::backwards(), &mut |e| {
            lent.push(e.tags.map(str::to_owned).collect::<Vec<_>>());
            std::ops::ControlFlow::Continue(())
        })
        .expect("read_each");
    assert_eq!(lent[0], strings(&["n1", "n2"]));

    // Queries by the new tags find the events, alone and with others.
    assert_eq!(positions(store, &Query::tag("n1")), [1, 2, 3]);
    assert_eq!(positions(store, &Query::tag("n2")), [1, 3]);
    assert_eq!(
        positions(
            store,
            &Query::item(QueryItem::new().event_type("A").tags(["n1", "n2"]))
        ),
        [1, 3]
    );
    assert_eq!(
        positions(
            store,
            &Query::item(QueryItem::new().tags(["b", "n1"])).or(QueryItem::new().tag("a"))
        ),
        [1, 2]
    );
    assert_eq!(
        tag_counts(store),
        counts(&[("a", 1), ("b", 1), ("n1", 3), ("n2", 2), ("x", 1)])
    );

    // A query target sees the tags added before it.
    let added = store
        .add_tags(&Target::Query(Query::tag("n2")), &strings(&["n3"]))
        .expect("add by a retroactive tag");
    assert_eq!(added.tagged, 2);
    assert_eq!(positions(store, &Query::tag("n3")), [1, 3]);
}

#[test]
fn tags_an_event_carries_are_skipped_and_still_audited() {
    let Some(fx) = Fixture::new("skipped") else {
        return;
    };
    let store = &fx.store;
    three(store);
    let before = all_tags(store);
    let added = store
        .add_tags(&Target::Positions(vec![2]), &strings(&["x", "b"]))
        .expect("add");
    assert_eq!(
        added,
        TagsAdded {
            targeted: 1,
            tagged: 0
        }
    );
    assert_eq!(all_tags(store), before);
    store
        .add_tags(&Target::Positions(vec![1, 2]), &strings(&["x"]))
        .expect("add");
    store
        .add_tags(&Target::Positions(vec![1, 2]), &strings(&["x"]))
        .expect("add again");
    assert_eq!(all_tags(store)[0], strings(&["a", "x"]), "once");
    assert_eq!(all_tags(store)[1], strings(&["b", "x"]));
    assert_eq!(tag_counts(store), counts(&[("a", 1), ("b", 1), ("x", 2)]));
    // A query target that matches nothing, in an empty range too.
    let added = store
        .add_tags(&Target::Query(Query::tag("nothing")), &strings(&["y"]))
        .expect("add to nothing");
    assert_eq!(added, TagsAdded::default());
    let log = store.audit_log(0, 100).expect("audit");
    let results: Vec<TagsAdded> = log
        .iter()
        .map(|e| match &e.operation {
            Operation::AddTags { result, .. } => *result,
            other => panic!("not an add_tags: {other:?}"),
        })
        .collect();
    assert_eq!(
        results,
        [
            TagsAdded {
                targeted: 1,
                tagged: 0
            },
            TagsAdded {
                targeted: 2,
                tagged: 1
            },
            TagsAdded {
                targeted: 2,
                tagged: 0
            },
            TagsAdded::default(),
        ]
    );
}

#[test]
fn conditions_see_added_tags_only_after_their_after() {
    let Some(fx) = Fixture::new("conditions") else {
        return;
    };
    let store = &fx.store;
    three(store);
    let late = Query::tag("late");
    let try_append = |after: Option<u64>| {
        store.append_with(
            vec![NewEvent::new("C", "c")],
            AppendOptions::new().fail_if(late.clone(), after),
        )
    };
    // Passes before the tag exists, then the tag lands on position 2.
    let head = store.head().expect("head");
    store
        .add_tags(&Target::Positions(vec![2]), &strings(&["late"]))
        .expect("add");
    for after in [None, Some(0), Some(1)] {
        match try_append(after) {
            Err(Error::ConditionFailed { position }) => assert_eq!(position, 2, "{after:?}"),
            other => panic!("after {after:?}: {other:?}"),
        }
    }
    assert_eq!(
        store.head().expect("head"),
        head,
        "the failed appends wrote nothing"
    );
    let appended = try_append(Some(2)).expect("tagging at or before `after` is not a conflict");
    assert_eq!(appended.first, 4);
    try_append(Some(3)).expect("after the tagged event");
    // A type-and-tag condition, through the multi-arm statement.
    let both = Query::item(QueryItem::new().event_type("B").tag("late"))
        .or(QueryItem::new().event_type("Z"));
    match store.append_with(
        vec![NewEvent::new("C", "c")],
        AppendOptions::new().fail_if(both, Some(1)),
    ) {
        Err(Error::ConditionFailed { position }) => assert_eq!(position, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refused_input_changes_nothing_and_is_not_audited() {
    let Some(fx) = Fixture::new("refused") else {
        return;
    };
    let store = &fx.store;
    three(store);
    // Event 4 carries all but one tag it may.
    let nearly_full: Vec<String> = (0..MAX_TAGS - 1).map(|i| format!("f{i}")).collect();
    let mut e = NewEvent::new("F", "f");
    for t in &nearly_full {
        e = e.tag(t.clone());
    }
    store.append(vec![e]).expect("append");
    let before = all_tags(store);
    let listed = tag_counts(store);

    let bad: Vec<(Target, Vec<String>)> = vec![
        (Target::Positions(vec![0]), strings(&["t"])),
        (Target::Positions(vec![5]), strings(&["t"])),
        (Target::Positions(vec![1, 99]), strings(&["t"])),
        (Target::Positions(vec![]), strings(&["t"])),
        (Target::Positions(vec![1]), vec![]),
        (Target::Positions(vec![1]), strings(&[""])),
        (Target::Positions(vec![1]), vec!["x".repeat(2000)]),
        (
            Target::Positions(vec![1]),
            (0..=MAX_TAGS).map(|i| format!("t{i}")).collect(),
        ),
        // Event 4 would carry MAX_TAGS + 1; event 1, first, would be fine.
        (Target::Positions(vec![1, 4]), strings(&["g1", "g2"])),
        (Target::Query(Query::all()), strings(&["g1", "g2"])),
        (Target::Query(Query::tag("")), strings(&["t"])),
        (Target::Query(Query::tag("q".repeat(2000))), strings(&["t"])),
    ];
    for (target, tags) in &bad {
        match store.add_tags(target, tags) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("{target:?} {tags:?}: {other:?}"),
        }
    }
    assert_eq!(all_tags(store), before);
    assert_eq!(tag_counts(store), listed);
    assert!(positions(store, &Query::tag("g1")).is_empty());
    assert!(store.audit_log(0, 100).expect("audit").is_empty());

    // One tag more fits exactly; the first entry is sequence 1.
    let added = store
        .add_tags(&Target::Positions(vec![4]), &strings(&["last"]))
        .expect("up to the limit");
    assert_eq!(added.tagged, 1);
    assert_eq!(all_tags(store)[3].len(), MAX_TAGS);
    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1]);
}

#[test]
fn the_audit_log_pages_in_order_and_records_each_operation() {
    let Some(fx) = Fixture::new("paging") else {
        return;
    };
    let store = &fx.store;
    three(store);
    // The server's clock, on this machine: within a second of ours.
    let started = now_micros() - 1_000_000;
    let targets = [
        Target::Positions(vec![3, 1, 3]),
        Target::Query(Query::tag("a")),
        Target::Positions(vec![2]),
        Target::Query(Query::event_type("A").or(QueryItem::new().tags(["b", "x"]))),
        Target::Positions(vec![1]),
    ];
    for (i, target) in targets.iter().enumerate() {
        store
            .add_tags(
                target,
                &[format!("op{i}"), "dup".to_owned(), format!("op{i}")],
            )
            .expect("add");
        if i == 2 {
            store.append(vec![NewEvent::new("D", "d")]).expect("append");
        }
    }
    let ended = now_micros() + 1_000_000;

    let mut paged: Vec<AuditEntry> = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_log(after, 2).expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.sequence;
        paged.extend(page);
    }
    assert_eq!(
        paged.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.audit_log(0, 100).expect("all"), paged);
    assert_eq!(store.audit_log(3, 1).expect("one"), paged[3..4]);
    assert!(store.audit_log(5, 10).expect("none after").is_empty());
    assert!(store.audit_log(u64::MAX, 10).expect("none").is_empty());
    for limit in [0, gesta::listing::MAX_LIST_LIMIT + 1] {
        assert!(matches!(
            store.audit_log(0, limit),
            Err(Error::InvalidInput { .. })
        ));
    }

    let heads: Vec<u64> = paged.iter().map(|e| e.head).collect();
    assert_eq!(heads, [3, 3, 3, 4, 4]);
    for (i, (entry, target)) in paged.iter().zip(&targets).enumerate() {
        let Operation::AddTags {
            tags,
            target: recorded,
            result,
        } = &entry.operation
        else {
            panic!("not an add_tags: {entry:?}");
        };
        assert_eq!(tags, &[format!("op{i}"), "dup".to_owned()], "each once");
        assert_eq!(recorded, target, "the target as given");
        assert!(result.targeted >= 1);
        assert!(
            (started..=ended).contains(&entry.timestamp_micros),
            "{entry:?} not in {started}..={ended}"
        );
    }
    assert!(
        paged
            .windows(2)
            .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros)
    );
    let d = events(store, &Query::event_type("D")).remove(0);
    assert!(paged[3].timestamp_micros >= d.timestamp_micros);
    // Operation 4 targets 1, 3 and 4 (A, or b and x: 2), all of them.
    let Operation::AddTags { result, .. } = &paged[3].operation else {
        panic!("not an add_tags: {:?}", paged[3]);
    };
    assert_eq!(
        *result,
        TagsAdded {
            targeted: 3,
            tagged: 3
        }
    );
}

#[test]
fn reopening_keeps_the_tags_and_the_audit_trail() {
    let Some(fx) = Fixture::new("reopen") else {
        return;
    };
    let store = &fx.store;
    three(store);
    store
        .add_tags(&Target::Positions(vec![1, 3]), &strings(&["kept"]))
        .expect("add");
    store
        .add_tags(&Target::Query(Query::tag("kept")), &strings(&["too"]))
        .expect("add");
    let tags = all_tags(store);
    let log = store.audit_log(0, 10).expect("audit");
    assert_eq!(log.len(), 2);
    let store = fx.reconnect();
    let store = &store;
    assert_eq!(all_tags(store), tags);
    assert_eq!(positions(store, &Query::tag("too")), [1, 3]);
    assert_eq!(store.audit_log(0, 10).expect("audit"), log);
    store
        .add_tags(&Target::Positions(vec![2]), &strings(&["after"]))
        .expect("add after reopening");
    let log = store.audit_log(2, 10).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
}

/// A schema made before the audit table existed (the same tables without
/// it) connects, keeps its version, and gains the table.
#[test]
fn a_schema_without_the_audit_table_gains_it() {
    let Some(fx) = Fixture::new("upgrade") else {
        return;
    };
    three(&fx.store);
    let schema = &fx.options.schema;
    let mut client = fx.client();
    client
        .batch_execute(&format!("DROP TABLE \"{schema}\".audit"))
        .expect("the earlier layout");

    let store = fx.reconnect();
    assert!(store.audit_log(0, 10).expect("empty trail").is_empty());
    store
        .add_tags(&Target::Positions(vec![1]), &strings(&["new"]))
        .expect("add");
    assert_eq!(store.audit_log(0, 10).expect("audit").len(), 1);
    assert_eq!(all_tags(&store)[0], strings(&["a", "new"]));
    let version: String = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".gesta_meta WHERE key = 'schema_version'"),
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "2", "the table is an addition, not a new version");
}

/// The store's notification channel (as the crate names it: `gesta_` and
/// the hex of the FNV-1a hash of `gesta-postgres:` and the schema).
fn channel(schema: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"gesta-postgres:".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("gesta_{hash:016x}")
}

/// `add_tags` feeds no subscription: it sends no `NOTIFY` (an append
/// does, on the same channel), and neither a subscription on the tag it
/// adds (the old event is not delivered) nor one caught up on everything
/// receives anything — whether the tags come through the subscriber's
/// handle or another one, with the listener polling meanwhile.
#[test]
fn subscriptions_deliver_nothing_for_added_tags() {
    let Some(fx) = Fixture::with_poll("subscriptions", Duration::from_millis(20)) else {
        return;
    };
    let a = &fx.store;
    let b = fx.reconnect();
    three(a);
    let mut listener = fx.client();
    listener
        .batch_execute(&format!("LISTEN {}", channel(&fx.options.schema)))
        .expect("listen");
    let mut on_tag = a.subscribe(&Query::tag("new"), 0).expect("subscribe");
    let mut on_all = a.subscribe(&Query::all(), 3).expect("subscribe");
    assert_eq!(
        on_tag
            .recv_timeout(Duration::from_millis(50))
            .expect("recv"),
        None
    );
    assert_eq!(on_tag.checkpoint(), 3);

    a.add_tags(&Target::Positions(vec![1]), &strings(&["new"]))
        .expect("add through a");
    b.add_tags(&Target::Query(Query::tag("b")), &strings(&["new"]))
        .expect("add through b");
    for sub in [&mut on_tag, &mut on_all] {
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(300)).expect("recv"),
            None,
            "{sub:?}"
        );
        assert_eq!(sub.checkpoint(), 3);
    }
    let notified = listener
        .notifications()
        .timeout_iter(Duration::from_millis(300))
        .next()
        .expect("notifications");
    assert!(notified.is_none(), "add_tags notified: {notified:?}");

    // The next append is announced and delivered, and only it.
    b.append(vec![NewEvent::new("N", "n").tag("new")])
        .expect("append");
    let notified = listener
        .notifications()
        .timeout_iter(Duration::from_secs(20))
        .next()
        .expect("notifications");
    assert!(notified.is_some(), "the append notifies the channel");
    let batch = on_tag.recv_timeout(Duration::from_secs(20)).expect("recv");
    assert_eq!(
        batch.map(|b| b.iter().map(|e| e.position).collect::<Vec<_>>()),
        Some(vec![4])
    );
    let batch = on_all.recv_timeout(Duration::from_secs(20)).expect("recv");
    assert_eq!(batch.map(|b| b.len()), Some(1));
    // A new subscription from the start reads the old events with the
    // tags they have now (1 and 2 were one append).
    let mut fresh = a.subscribe(&Query::tag("new"), 0).expect("subscribe");
    let batch = fresh.recv_timeout(Duration::from_secs(20)).expect("recv");
    let got: Vec<(u64, Vec<String>)> = batch
        .expect("a batch")
        .into_iter()
        .map(|e| (e.position, e.tags))
        .collect();
    assert_eq!(
        got,
        [
            (1, strings(&["a", "new"])),
            (2, strings(&["b", "x", "new"]))
        ]
    );
}

/// Conditional appends through one handle and `add_tags` through another
/// run at once, serialized by the store's lock: each append's condition
/// on a tag added meanwhile either passes or fails at the tagged event,
/// and nothing is half done at the end.
#[test]
fn add_tags_serializes_with_conditional_appends_of_another_handle() {
    let Some(fx) = Fixture::new("serialized") else {
        return;
    };
    let a = &fx.store;
    let b = fx.reconnect();
    a.append(vec![NewEvent::new("A", "0")]).expect("append");
    let rounds = 50;
    let committed = std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..rounds {
                b.add_tags(&Target::Positions(vec![1]), &[format!("t{i}")])
                    .expect("add");
            }
        });
        let mut committed = 0;
        for i in 0..rounds {
            let query = Query::tag(format!("t{i}"));
            match a.append_with(
                vec![NewEvent::new("B", "b")],
                AppendOptions::new().fail_if(query, Some(0)),
            ) {
                Ok(_) => committed += 1,
                Err(Error::ConditionFailed { position: 1 }) => {}
                Err(e) => panic!("append {i}: {e}"),
            }
        }
        committed
    });
    assert_eq!(a.head().expect("head"), 1 + committed);
    let want: Vec<String> = (0..rounds).map(|i| format!("t{i}")).collect();
    assert_eq!(all_tags(a)[0], want);
    for tag in &want {
        assert_eq!(positions(a, &Query::tag(tag.clone())), [1]);
    }
    let log = a.audit_log(0, 100).expect("audit");
    assert_eq!(log.len(), rounds);
    assert!(log.windows(2).all(|w| w[0].head <= w[1].head));
}

// ---- Redaction ----

fn redacted(targeted: u64, redacted: u64) -> Redacted {
    Redacted { targeted, redacted }
}

/// `events` with those at `positions` erased: data and metadata empty.
fn erasing(events: &[RecordedEvent], positions: &[u64]) -> Vec<RecordedEvent> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if positions.contains(&e.position) {
                e.data = Default::default();
                e.metadata = Default::default();
            }
            e
        })
        .collect()
}

/// Five events: 1 `A` [a] in stream s, id 1, with metadata; 2 `B` [b] in
/// s; 3 `A` [] with empty data and metadata; 4 `C` [a, c], id 4, with
/// metadata; 5 `B` [] in s.
fn five(store: &PostgresStore) {
    store
        .append(vec![
            NewEvent::new("A", "d1")
                .tag("a")
                .stream("s")
                .id(1)
                .metadata("m1"),
            NewEvent::new("B", "d2").tag("b").stream("s"),
        ])
        .expect("append");
    store.append(vec![NewEvent::new("A", "")]).expect("append");
    store
        .append(vec![
            NewEvent::new("C", "d4")
                .tags(["a", "c"])
                .id(4)
                .metadata(vec![0u8, 255]),
            NewEvent::new("B", "d5").stream("s"),
        ])
        .expect("append");
}

/// Every way to read the store's events, each compared with `want` (the
/// whole log): both directions, `read_each`, `read_last`, the stream, by
/// id.
fn check_reads(store: &PostgresStore, want: &[RecordedEvent]) {
    assert_eq!(events(store, &Query::all()), want, "read forwards");
    let mut back: Vec<RecordedEvent> = store
        .read(&Query::all(), ReadOptions::backwards())
        .expect("read")
        .map(|e| e.expect("event"))
        .collect();
    back.reverse();
    assert_eq!(back, want, "read backwards");
    let mut lent = Vec::new();
    store
        .read_each(&Query::tag("a"), ReadOptions::forwards(), &mut |e| {
            lent.push(e.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .expect("read_each");
    assert_eq!(lent, [want[0].clone(), want[3].clone()], "read_each");
    assert_eq!(
        store.read_last(&Query::event_type("A")).expect("read_last"),
        Some(want[2].clone())
    );
    let stream: Vec<RecordedEvent> = store
        .read_stream("s", ReadOptions::forwards())
        .expect("read_stream")
        .map(|e| e.expect("event"))
        .collect();
    assert_eq!(
        stream,
        [want[0].clone(), want[1].clone(), want[4].clone()],
        "read_stream"
    );
    assert_eq!(store.event_by_id(1).expect("by id"), Some(want[0].clone()));
    assert_eq!(store.event_by_id(4).expect("by id"), Some(want[3].clone()));
}

fn redact_results(store: &PostgresStore) -> Vec<(Target, Redacted, u64)> {
    store
        .audit_log(0, 100)
        .expect("audit")
        .into_iter()
        .filter_map(|e| match e.operation {
            Operation::Redact { target, result } => Some((target, result, e.head)),
            _ => None,
        })
        .collect()
}

/// The positions in the `redacted` table.
fn marked(fx: &Fixture) -> Vec<i64> {
    fx.client()
        .query(
            &format!(
                "SELECT position FROM \"{}\".redacted ORDER BY position",
                fx.options.schema
            ),
            &[],
        )
        .expect("redacted")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Redaction by positions and by query: the results count the events
/// named and those not redacted before (an event appended with empty data
/// and metadata counts as redacted the first time); reads return the
/// events with empty data and metadata and every other field as it was
/// (added tags too); queries, listings, revisions, conditions and the
/// head do not change; the audit trail records each operation.
#[test]
fn redaction_erases_data_and_metadata_and_nothing_else() {
    let Some(fx) = Fixture::new("redact") else {
        return;
    };
    let store = &fx.store;
    five(store);
    store
        .add_tags(&Target::Positions(vec![4]), &strings(&["n"]))
        .expect("add");
    let before = events(store, &Query::all());
    let listed = tag_counts(store);
    let types = store.list(Listing::Types, "", None, 100).expect("types");

    let by_positions = Target::Positions(vec![4, 1, 4]);
    assert_eq!(store.redact(&by_positions).expect("redact"), redacted(2, 2));
    check_reads(store, &erasing(&before, &[1, 4]));
    let by_query = Target::Query(Query::event_type("A"));
    assert_eq!(store.redact(&by_query).expect("redact"), redacted(2, 1));
    let now = erasing(&before, &[1, 3, 4]);
    check_reads(store, &now);
    assert_eq!(now[3].tags, strings(&["a", "c", "n"]), "added tags stay");
    assert_eq!(now[1].data, "d2", "others keep theirs");
    assert_eq!(marked(&fx), [1, 3, 4]);

    assert_eq!(positions(store, &Query::tag("a")), [1, 4]);
    assert_eq!(positions(store, &Query::tag("n")), [4]);
    assert_eq!(tag_counts(store), listed);
    assert_eq!(
        store.list(Listing::Types, "", None, 100).expect("types"),
        types
    );
    assert_eq!(store.head().expect("head"), 5);
    assert_eq!(store.stream_revision("s").expect("revision"), Some(2));
    match store.append_with(
        vec![NewEvent::new("X", "x")],
        AppendOptions::new().fail_if(Query::tag("c"), Some(3)),
    ) {
        Err(Error::ConditionFailed { position: 4 }) => {}
        other => panic!("the condition sees the redacted event: {other:?}"),
    }
    assert_eq!(store.head().expect("head"), 5);

    // Everything: two new, then nothing new.
    let all = Target::Query(Query::all());
    assert_eq!(store.redact(&all).expect("redact"), redacted(5, 2));
    assert_eq!(store.redact(&all).expect("redact"), redacted(5, 0));
    assert_eq!(
        store
            .redact(&Target::Positions(vec![3]))
            .expect("redact again"),
        redacted(1, 0)
    );
    check_reads(store, &erasing(&before, &[1, 2, 3, 4, 5]));
    assert_eq!(marked(&fx), [1, 2, 3, 4, 5]);

    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(
        log.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(
        log.windows(2)
            .all(|w| w[0].timestamp_micros <= w[1].timestamp_micros)
    );
    assert_eq!(
        redact_results(store),
        [
            (by_positions, redacted(2, 2), 5),
            (by_query, redacted(2, 1), 5),
            (all.clone(), redacted(5, 2), 5),
            (all, redacted(5, 0), 5),
            (Target::Positions(vec![3]), redacted(1, 0), 5),
        ]
    );
}

/// Refused targets change nothing, record nothing, mark nothing.
#[test]
fn refused_redactions_change_nothing_and_are_not_audited() {
    let Some(fx) = Fixture::new("redact_refused") else {
        return;
    };
    let store = &fx.store;
    five(store);
    let before = events(store, &Query::all());
    let bad = [
        Target::Positions(vec![]),
        Target::Positions(vec![0]),
        Target::Positions(vec![6]),
        Target::Positions(vec![1, 99]),
        Target::Positions(vec![2, 0]),
        Target::Positions(vec![u64::MAX]),
        Target::Query(Query::tag("")),
        Target::Query(Query::tag("q".repeat(2000))),
        Target::Query(Query::event_type("")),
    ];
    for target in &bad {
        match store.redact(target) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!("{target:?}: {other:?}"),
        }
    }
    check_reads(store, &before);
    assert!(store.audit_log(0, 100).expect("audit").is_empty());
    assert_eq!(marked(&fx), [] as [i64; 0]);
    assert_eq!(
        store
            .redact(&Target::Positions(vec![5]))
            .expect("a valid one"),
        redacted(1, 1)
    );
    let log = store.audit_log(0, 100).expect("audit");
    assert_eq!(log.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1]);
}

/// A redaction is durable and seen by every handle: through another one,
/// reads return the events erased and redacting them again counts none.
#[test]
fn redaction_is_seen_by_another_handle() {
    let Some(fx) = Fixture::new("redact_reconnect") else {
        return;
    };
    five(&fx.store);
    let before = events(&fx.store, &Query::all());
    fx.store
        .redact(&Target::Query(Query::tag("a")))
        .expect("redact");
    let log = fx.store.audit_log(0, 10).expect("audit");

    let store = fx.reconnect();
    check_reads(&store, &erasing(&before, &[1, 4]));
    assert_eq!(store.audit_log(0, 10).expect("audit"), log);
    assert_eq!(
        store
            .redact(&Target::Positions(vec![1, 2, 3, 4]))
            .expect("redact through another handle"),
        redacted(4, 2)
    );
    check_reads(&fx.store, &erasing(&before, &[1, 2, 3, 4]));
    assert_eq!(fx.store.audit_log(0, 10).expect("audit").len(), 2);
}

/// A schema made before the `redacted` table connects, keeps its version
/// and gains the table.
#[test]
fn a_schema_without_the_redacted_table_gains_it() {
    let Some(fx) = Fixture::new("redact_upgrade") else {
        return;
    };
    five(&fx.store);
    let schema = &fx.options.schema;
    let mut client = fx.client();
    client
        .batch_execute(&format!("DROP TABLE \"{schema}\".redacted"))
        .expect("the earlier layout");
    let store = fx.reconnect();
    assert_eq!(
        store.redact(&Target::Positions(vec![2])).expect("redact"),
        redacted(1, 1)
    );
    assert_eq!(
        store.redact(&Target::Positions(vec![2])).expect("redact"),
        redacted(1, 0)
    );
    let version: String = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".gesta_meta WHERE key = 'schema_version'"),
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "2", "the table is an addition, not a new version");
}

/// Two batches with ids: 1 `A` [a] (id 0xa1) and 2 `B` [b] (id 0xa2);
/// then 3 `C` [c] (id 0xc1).
fn with_ids() -> [Vec<NewEvent>; 2] {
    [
        vec![
            NewEvent::new("A", "1").tag("a").id(0xa1),
            NewEvent::new("B", "2").tag("b").id(0xa2),
        ],
        vec![NewEvent::new("C", "3").tag("c").id(0xc1)],
    ]
}

/// A schema made before the `added_tags` table connects, keeps its
/// version and gains the table; tags added from then on are counted (a
/// retry of their event's batch is recognised, however many operations
/// added them), while tags added before pass for the event's own (a retry
/// is refused as a duplicate, as the crate documents).
#[test]
fn a_schema_without_the_added_tags_table_gains_it() {
    let Some(fx) = Fixture::new("added_upgrade") else {
        return;
    };
    let [first, second] = with_ids();
    fx.store.append(first.clone()).expect("append");
    fx.store.append(second.clone()).expect("append");
    fx.store
        .add_tags(&Target::Positions(vec![1]), &strings(&["before"]))
        .expect("add");
    let schema = &fx.options.schema;
    let mut client = fx.client();
    client
        .batch_execute(&format!("DROP TABLE \"{schema}\".added_tags"))
        .expect("the earlier layout");

    let store = fx.reconnect();
    store
        .add_tags(&Target::Positions(vec![3]), &strings(&["one"]))
        .expect("add");
    store
        .add_tags(&Target::Query(Query::tag("one")), &strings(&["two"]))
        .expect("add");
    let count: i64 = client
        .query_one(
            &format!("SELECT count FROM \"{schema}\".added_tags WHERE position = 3"),
            &[],
        )
        .expect("counted")
        .get(0);
    assert_eq!(count, 2);
    let retried = store.append(second).expect("a retry");
    assert_eq!((retried.first, retried.last), (3, 3));
    assert!(matches!(
        store.append(first),
        Err(Error::DuplicateEventId { id: 0xa1 })
    ));
    assert_eq!(store.head().expect("head"), 3);
    let version: String = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".gesta_meta WHERE key = 'schema_version'"),
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "2", "the table is an addition, not a new version");
}

/// How many times `needle` occurs in the file of relation `relation` (as
/// `pg_relation_filepath` names it, under `data_directory`), after a
/// checkpoint wrote every page out; `None` when this client may not (not
/// a superuser, or the files are not readable from here).
fn in_relation_file(client: &mut postgres::Client, relation: &str, needle: &[u8]) -> Option<usize> {
    client.batch_execute("CHECKPOINT").ok()?;
    let row = client
        .query_one(
            "SELECT current_setting('data_directory'), pg_relation_filepath($1::text::regclass)",
            &[&relation],
        )
        .ok()?;
    let (dir, file): (String, String) = (row.get(0), row.get(1));
    let bytes = std::fs::read(std::path::Path::new(&dir).join(file)).ok()?;
    Some(bytes.windows(needle.len()).filter(|w| *w == needle).count())
}

/// What the store's docs say of the bytes: the redacted values are gone
/// from every read at once, stay in the table's file in the old row
/// version, and leave it with `VACUUM (FULL)` on the table (the recipe the
/// docs give), after which the store reads on as before. (The file is only searched when the test's client may
/// read it: a superuser on a server on this machine.)
#[test]
fn vacuum_full_rewrites_the_redacted_values_out_of_the_table() {
    let Some(fx) = Fixture::new("redact_vacuum") else {
        return;
    };
    let store = &fx.store;
    let secret = "secret-pg-4f1c9a2e";
    store
        .append(vec![
            NewEvent::new("F", "before").tag("f"),
            NewEvent::new("Registered", secret)
                .tag("user:u1")
                .metadata(secret),
            NewEvent::new("F", "after").tag("f"),
        ])
        .expect("append");
    let relation = format!("\"{}\".events", fx.options.schema);
    let mut client = fx.client();
    let searched = in_relation_file(&mut client, &relation, secret.as_bytes());
    match searched {
        Some(found) => assert!(found >= 2, "data and metadata in the file: {found}"),
        None => eprintln!("not searching the table's file: not permitted here"),
    }

    assert_eq!(
        store
            .redact(&Target::Query(Query::tag("user:u1")))
            .expect("redact"),
        redacted(1, 1)
    );
    let e = events(store, &Query::tag("user:u1")).remove(0);
    assert!(e.data.is_empty() && e.metadata.is_empty());
    if searched.is_some() {
        let left = in_relation_file(&mut client, &relation, secret.as_bytes());
        assert!(
            left.is_some_and(|n| n >= 1),
            "the old row version stays until VACUUM: {left:?}"
        );
    }
    client
        .batch_execute(&format!("VACUUM (FULL) {relation}"))
        .expect("vacuum full");
    if searched.is_some() {
        assert_eq!(
            in_relation_file(&mut client, &relation, secret.as_bytes()),
            Some(0)
        );
    }
    let all = events(store, &Query::all());
    assert_eq!(
        all.iter()
            .map(|e| (e.position, e.data.len(), e.tags.clone()))
            .collect::<Vec<_>>(),
        [
            (1, 6, strings(&["f"])),
            (2, 0, strings(&["user:u1"])),
            (3, 5, strings(&["f"])),
        ]
    );
    assert_eq!(
        store.redact(&Target::Positions(vec![2])).expect("redact"),
        redacted(1, 0)
    );
    store
        .append(vec![NewEvent::new("F", "later")])
        .expect("append after the vacuum");
    assert_eq!(store.head().expect("head"), 4);
}

/// A version 1 schema (the same layout without the removal tables) is
/// upgraded to version 2 on connect: it gains them, and removal works on
/// it without taking a removed position again.
#[test]
fn a_version_1_schema_gains_removal() {
    let Some(fx) = Fixture::new("removal-upgrade") else {
        return;
    };
    three(&fx.store);
    let schema = &fx.options.schema;
    let mut client = fx.client();
    client
        .batch_execute(&format!(
            "DROP TABLE \"{schema}\".removed_events; DROP TABLE \"{schema}\".retention; \
             UPDATE \"{schema}\".gesta_meta SET value = '1' WHERE key = 'schema_version'"
        ))
        .expect("the version 1 layout");

    let store = fx.reconnect();
    let removed = store
        .remove(&Target::Positions(vec![3]))
        .expect("remove the last event");
    assert_eq!(removed.removed, 1);
    assert_eq!(store.head().expect("head"), 3, "the head stays");
    let next = store.append(vec![NewEvent::new("C", "4")]).expect("append");
    assert_eq!(next.first, 4, "a removed position is not taken again");
    let version: String = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".gesta_meta WHERE key = 'schema_version'"),
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "2");
}
