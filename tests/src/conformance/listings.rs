//! Listings: the streams, event types and tags a store holds, with their
//! counts, by prefix and a page at a time.

use std::collections::BTreeMap;

use gesta::listing::MAX_LIST_LIMIT;
use gesta::{EventStore, Listed, Listing, NewEvent};

use super::Harness;
use super::helpers::*;

const KINDS: [Listing; 3] = [Listing::Streams, Listing::Types, Listing::Tags];

/// The listing the log implies: every name of `what` with its number of
/// events (a tag repeated within an event counts once), in byte order.
fn expected(log: &Log, what: Listing) -> Vec<Listed> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &log.events {
        let mut names: Vec<&str> = match what {
            Listing::Streams => e.stream.iter().map(String::as_str).collect(),
            Listing::Types => vec![e.event_type.as_str()],
            Listing::Tags => e.tags.iter().map(String::as_str).collect(),
        };
        names.sort_unstable();
        names.dedup();
        for name in names {
            *counts.entry(name).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(name, count)| Listed::new(name, count))
        .collect()
}

fn list<S: EventStore>(
    s: &S,
    what: Listing,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<Listed> {
    ok(
        &format!("list {what:?} prefix {prefix:?} after {after:?} limit {limit}"),
        s.list(what, prefix, after, limit),
    )
}

/// Every page of a listing with `limit`, put together.
fn all_pages<S: EventStore>(s: &S, what: Listing, prefix: &str, limit: usize) -> Vec<Listed> {
    let mut out: Vec<Listed> = Vec::new();
    loop {
        let after = out.last().map(|l| l.name.clone());
        let page = list(s, what, prefix, after.as_deref(), limit);
        assert!(
            page.len() <= limit,
            "{what:?}: a page longer than its limit"
        );
        // Names strictly ascending from `after` on, so a page that repeats
        // a name fails here instead of paging forever.
        let mut previous = after;
        for l in &page {
            assert!(
                previous
                    .as_ref()
                    .is_none_or(|p| l.name.as_bytes() > p.as_bytes()),
                "{what:?} prefix {prefix:?} by {limit}: {:?} listed after {previous:?}",
                l.name
            );
            previous = Some(l.name.clone());
        }
        let last = page.len() < limit;
        out.extend(page);
        if last {
            return out;
        }
    }
}

/// What `list` must answer, from the expected full listing.
fn want(full: &[Listed], prefix: &str, after: Option<&str>, limit: usize) -> Vec<Listed> {
    full.iter()
        .filter(|l| l.name.starts_with(prefix))
        .filter(|l| after.is_none_or(|a| l.name.as_bytes() > a.as_bytes()))
        .take(limit)
        .cloned()
        .collect()
}

/// Checks every listing against the log: whole, by every prefix of every
/// name (and some no name has), after every name (and some the store does
/// not hold), with small limits, and paged.
fn check_listings<S: EventStore>(s: &S, log: &Log) {
    for what in KINDS {
        let full = expected(log, what);
        assert_eq!(list(s, what, "", None, MAX_LIST_LIMIT), full, "{what:?}");
        let mut prefixes: Vec<String> = vec![String::new(), "zz-none".into(), "\u{10FFFF}".into()];
        let mut afters: Vec<String> =
            vec![String::new(), "0".into(), "~".into(), "\u{10FFFF}".into()];
        for l in &full {
            for (i, _) in l.name.char_indices().skip(1) {
                prefixes.push(l.name[..i].to_owned());
            }
            prefixes.push(l.name.clone());
            afters.push(l.name.clone());
            afters.push(format!("{}\0", l.name));
        }
        prefixes.sort();
        prefixes.dedup();
        for prefix in &prefixes {
            assert_eq!(
                list(s, what, prefix, None, MAX_LIST_LIMIT),
                want(&full, prefix, None, MAX_LIST_LIMIT),
                "{what:?} prefix {prefix:?}"
            );
            for limit in [1, 2, 3] {
                assert_eq!(
                    all_pages(s, what, prefix, limit),
                    want(&full, prefix, None, MAX_LIST_LIMIT),
                    "{what:?} prefix {prefix:?} paged by {limit}"
                );
            }
        }
        for after in &afters {
            for prefix in ["", "a", "s", after.as_str()] {
                for limit in [1, 2, MAX_LIST_LIMIT] {
                    assert_eq!(
                        list(s, what, prefix, Some(after), limit),
                        want(&full, prefix, Some(after), limit),
                        "{what:?} prefix {prefix:?} after {after:?} limit {limit}"
                    );
                }
            }
        }
    }
}

/// Names that are prefixes of each other, upper and lower case, non-ASCII
/// (whose UTF-8 bytes sort above ASCII), repeated tags, events without a
/// stream and streams of several events.
fn listing_fixture<S: EventStore>(s: &S, log: &mut Log) {
    append(
        s,
        log,
        vec![
            ev("a", &["t", "tag", "tag:1"], "1").stream("s"),
            ev("ab", &["tag", "tag"], "2").stream("s"),
            ev("abc", &["tag:1", "Tag"], "3").stream("s-1"),
        ],
    );
    append(
        s,
        log,
        vec![
            ev("B", &["é", "e"], "4").stream("stream"),
            ev("a", &["日本", "z"], "5"),
            ev("é", &["ß"], "6").stream("s"),
            ev("b", &[], "7").stream("é"),
        ],
    );
    append(s, log, vec![ev("ab", &["tag"], "8").stream("s-1")]);
}

/// A store without events lists nothing, whatever the prefix or after.
pub fn listings_of_an_empty_store<H: Harness>(h: &mut H) {
    let s = h.create();
    for what in KINDS {
        assert_eq!(list(&s, what, "", None, 10), []);
        assert_eq!(list(&s, what, "a", Some("a"), 1), []);
        assert_eq!(list(&s, what, "", Some("zzz"), MAX_LIST_LIMIT), []);
    }
    let s = h.reopen(s);
    for what in KINDS {
        assert_eq!(list(&s, what, "", None, 10), []);
    }
}

/// Each listing names what the events hold, once, in byte order, with
/// the number of events: a stream's is its last revision + 1, a tag
/// carried twice by one event counts once.
pub fn listings_count_events<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    listing_fixture(&s, &mut log);
    let l = |n: &str, c: u64| Listed::new(n, c);
    assert_eq!(
        list(&s, Listing::Streams, "", None, 100),
        [l("s", 3), l("s-1", 2), l("stream", 1), l("é", 1)]
    );
    assert_eq!(
        list(&s, Listing::Types, "", None, 100),
        [
            l("B", 1),
            l("a", 2),
            l("ab", 2),
            l("abc", 1),
            l("b", 1),
            l("é", 1)
        ]
    );
    assert_eq!(
        list(&s, Listing::Tags, "", None, 100),
        [
            l("Tag", 1),
            l("e", 1),
            l("t", 1),
            l("tag", 3),
            l("tag:1", 2),
            l("z", 1),
            l("ß", 1),
            l("é", 1),
            l("日本", 1),
        ]
    );
    for stream in list(&s, Listing::Streams, "", None, 100) {
        assert_eq!(
            revision(&s, &stream.name),
            Some(stream.count - 1),
            "stream {:?}",
            stream.name
        );
    }
    // The trait's shorthands are the same listings.
    assert_eq!(
        ok("list_streams", s.list_streams("s", Some("s"), 2)),
        [l("s-1", 2), l("stream", 1)]
    );
    assert_eq!(
        ok("list_types", s.list_types("a", None, 2)),
        [l("a", 2), l("ab", 2)]
    );
    assert_eq!(
        ok("list_tags", s.list_tags("tag", Some("tag"), 5)),
        [l("tag:1", 2)]
    );
    check_listings(&s, &log);
}

/// A prefix keeps the names that start with it — the prefix itself among
/// them — and `after` is exclusive, need not be a held name, and combines
/// with the prefix: an `after` below the prefix changes nothing, one
/// above every name with the prefix leaves nothing.
pub fn listings_by_prefix_and_after<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    listing_fixture(&s, &mut log);
    let l = |n: &str, c: u64| Listed::new(n, c);
    let t = Listing::Types;
    assert_eq!(
        list(&s, t, "a", None, 10),
        [l("a", 2), l("ab", 2), l("abc", 1)]
    );
    assert_eq!(list(&s, t, "ab", None, 10), [l("ab", 2), l("abc", 1)]);
    assert_eq!(list(&s, t, "abc", None, 10), [l("abc", 1)]);
    assert_eq!(list(&s, t, "abcd", None, 10), []);
    assert_eq!(list(&s, t, "A", None, 10), []);
    assert_eq!(list(&s, t, "a", Some("a"), 10), [l("ab", 2), l("abc", 1)]);
    assert_eq!(list(&s, t, "a", Some("aa"), 10), [l("ab", 2), l("abc", 1)]);
    assert_eq!(list(&s, t, "a", Some("ab"), 10), [l("abc", 1)]);
    assert_eq!(list(&s, t, "ab", Some("B"), 10), [l("ab", 2), l("abc", 1)]);
    assert_eq!(list(&s, t, "a", Some("abc"), 10), []);
    assert_eq!(list(&s, t, "a", Some("b"), 10), []);
    assert_eq!(list(&s, t, "", Some("abc"), 10), [l("b", 1), l("é", 1)]);
    assert_eq!(list(&s, t, "", Some("abc"), 1), [l("b", 1)]);
    assert_eq!(list(&s, t, "", Some("é"), 1), []);
    assert_eq!(list(&s, t, "é", None, 10), [l("é", 1)]);
    assert_eq!(
        list(&s, Listing::Tags, "tag", None, 10),
        [l("tag", 3), l("tag:1", 2)]
    );
    assert_eq!(
        list(&s, Listing::Streams, "s", Some("s"), 10),
        [l("s-1", 2), l("stream", 1)]
    );
    assert_eq!(list(&s, Listing::Streams, "s-", None, 10), [l("s-1", 2)]);
    check_listings(&s, &log);
}

/// Pages of any size, each started after the last name of the one before,
/// put together are the whole listing; a page shorter than its limit is
/// the last.
pub fn listings_paginate<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let names: Vec<String> = (0..25).map(|i| format!("n{:02}", (i * 7) % 25)).collect();
    for chunk in names.chunks(4) {
        let batch: Vec<NewEvent> = chunk
            .iter()
            .map(|n| ev(n, &[n.as_str(), "all"], n).stream(n.as_str()))
            .collect();
        append(&s, &mut log, batch);
    }
    append(
        &s,
        &mut log,
        vec![ev("n03", &["n03"], "again").stream("n03")],
    );
    for what in KINDS {
        let full = expected(&log, what);
        assert_eq!(list(&s, what, "", None, 100), full);
        for limit in [1, 2, 5, 7, 25, 26] {
            assert_eq!(all_pages(&s, what, "", limit), full, "{what:?} by {limit}");
            assert_eq!(
                all_pages(&s, what, "n1", limit),
                want(&full, "n1", None, 100),
                "{what:?} n1 by {limit}"
            );
        }
        let page = list(&s, what, "n", Some("n09"), 3);
        assert_eq!(page, want(&full, "n", Some("n09"), 3));
    }
    let l = |n: &str, c: u64| Listed::new(n, c);
    assert_eq!(
        list(&s, Listing::Streams, "n0", Some("n01"), 3),
        [l("n02", 1), l("n03", 2), l("n04", 1)]
    );
    assert_eq!(list(&s, Listing::Tags, "al", None, 3), [l("all", 25)]);
}

/// Names sort by the bytes of their UTF-8 encoding: upper case before
/// lower case, ASCII before anything else ("ß" is C3 9F, "é" C3 A9, "日"
/// E6 97 A5, "😀" F0 9F 98 80), not by any locale's collation.
pub fn listings_in_byte_order<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    let names = [
        "é", "ß", "z", "Z", "日本", "\u{7f}", "~", "a b", "ab", "a", "0", "\u{80}", "😀",
        "\u{FFFD}",
    ];
    let batch: Vec<NewEvent> = names.iter().map(|n| ev(n, &[n], n).stream(*n)).collect();
    append(&s, &mut log, batch);
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for what in KINDS {
        let got: Vec<String> = list(&s, what, "", None, 100)
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(got, sorted, "{what:?}");
        assert_eq!(all_pages(&s, what, "", 2).len(), names.len());
    }
    check_listings(&s, &log);
}

/// Listings count events wherever the index holds them: only in the log's
/// unflushed tail, only in on-disk runs, in both (one name's count summed
/// over both), and after a reopen.
pub fn listings_after_flush_and_reopen<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    listing_fixture(&s, &mut log);
    h.flush_index(&s);
    check_listings(&s, &log);
    append(
        &s,
        &mut log,
        vec![
            ev("a", &["tag", "new"], "9").stream("s"),
            ev("new", &["tag:1"], "10").stream("new"),
        ],
    );
    check_listings(&s, &log);
    let l = |n: &str, c: u64| Listed::new(n, c);
    assert_eq!(
        list(&s, Listing::Streams, "", None, 3),
        [l("new", 1), l("s", 4), l("s-1", 2)]
    );
    let s = h.reopen(s);
    check_listings(&s, &log);
    h.flush_index(&s);
    append(&s, &mut log, vec![ev("a", &["tag"], "11").stream("s")]);
    let s = h.reopen(s);
    check_listings(&s, &log);
    assert_eq!(list(&s, Listing::Types, "a", None, 1), [l("a", 4)]);
    assert_eq!(list(&s, Listing::Tags, "tag", None, 1), [l("tag", 5)]);
    assert_eq!(list(&s, Listing::Streams, "s", None, 1), [l("s", 5)]);
}

/// A prefix or `after` longer than any name, and a limit of 0 or above
/// the largest page, are refused as invalid input; the store is intact.
pub fn listing_bad_input_rejected<H: Harness>(h: &mut H) {
    let s = h.create();
    let mut log = Log::default();
    listing_fixture(&s, &mut log);
    let long = "x".repeat(gesta::event::MAX_NAME_LEN + 1);
    let edge = &long[1..];
    for what in KINDS {
        for (prefix, after, limit) in [
            (long.as_str(), None, 1),
            ("", Some(long.as_str()), 1),
            ("", None, 0),
            ("a", Some("a"), MAX_LIST_LIMIT + 1),
            ("", None, usize::MAX),
        ] {
            let what_ = format!(
                "list {what:?} {} {:?} {limit}",
                prefix.len(),
                after.map(str::len)
            );
            assert_invalid(&what_, err(&what_, s.list(what, prefix, after, limit)));
        }
        assert_eq!(list(&s, what, edge, Some(edge), MAX_LIST_LIMIT), []);
    }
    check_listings(&s, &log);
}
