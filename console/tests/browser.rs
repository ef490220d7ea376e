//! The console in a real headless browser (Debian's Chromium, driven over
//! WebDriver): the page loads, a tag query shows what the store reads, an
//! event opens, events appended by another process appear in the live
//! view (and wait while it is paused), and a read-only console refuses a
//! write, which the page shows. See `harness` for what the tests need and
//! for `GESTA_SCREENSHOTS`, which saves the README's screenshots.

mod harness;

use std::time::Duration;

use gesta::{NewEvent, Query, ReadOptions, Store};
use harness::{Browser, Console, browser};

const KEY: &str = "console-test-key";

/// A store of courses and students: 4 courses, 24 subscriptions, a
/// snapshot and a durable subscription, closed again so that the console
/// can open it.
fn seed(dir: &std::path::Path) {
    let store = Store::open(dir).unwrap();
    let courses: Vec<NewEvent> = (1..=4)
        .map(|c| {
            NewEvent::new(
                "CourseDefined",
                format!(r#"{{"course":"c{c}","seats":{}}}"#, 10 * c),
            )
            .tag(format!("course:c{c}"))
            .stream(format!("course-c{c}"))
        })
        .collect();
    store.append(courses).unwrap();
    for s in 1..=24 {
        let c = s % 4 + 1;
        store
            .append(vec![
                NewEvent::new(
                    "StudentSubscribed",
                    format!(
                        r#"{{"student":"s{s}","course":"c{c}","note":"term {}"}}"#,
                        s % 3 + 1
                    ),
                )
                .metadata(r#"{"by":"registrar"}"#)
                .tag(format!("course:c{c}"))
                .tag(format!("student:s{s}"))
                .stream(format!("course-c{c}")),
            ])
            .unwrap();
    }
    store.save_snapshot("seats-per-course", 20, b"{}").unwrap();
    let mailer = store.subscribe_durable("mailer", &Query::all()).unwrap();
    mailer.ack(17).unwrap();
    drop(mailer);
    store.close().unwrap();
}

fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("console.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_query_an_event_and_appends_from_another_process_in_the_live_view() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    seed(&dir);
    let expected: Vec<String> = {
        let store = Store::open(&dir).unwrap();
        let events = store
            .read(&Query::tag("course:c2"), ReadOptions::forwards().limit(20))
            .unwrap()
            .map(|e| e.unwrap().position.to_string())
            .collect();
        store.close().unwrap();
        events
    };
    let keys = key_file(tmp.path());
    let console = Console::start(
        &dir,
        &["--allow-writes", "--api-key-file", keys.to_str().unwrap()],
    );
    let b = Browser::start(&chromium, &driver).await;
    b.client.goto(&console.url).await.unwrap();

    // Without the key the API refuses, and the page says so; with it, the
    // page shows the store.
    b.wait_text("#error", "the refusal", |t| t.contains("401"))
        .await;
    b.fill("#api-key", &format!("{KEY}\u{E004}")).await;
    b.wait_text("#mode", "the mode", |t| t == "appends allowed")
        .await;
    b.wait_text("#head", "the head", |t| t == "28").await;

    // A tag query: the rows are the store's answer, and the query shows as
    // the JSON of a DCB query.
    b.fill("#items .item-tags", "course:c2").await;
    b.click("#run").await;
    b.wait_text("#page-info", "the page", |t| {
        t.starts_with(&format!("{} events", expected.len()))
    })
    .await;
    assert_eq!(b.texts("#result-rows td.pos").await, expected);
    assert_eq!(
        b.text("#query-json").await,
        r#"{"items":[{"types":[],"tags":["course:c2"]}]}"#
    );
    for tags in b.texts("#result-rows td.tags").await {
        assert!(tags.contains("course:c2"), "{tags}");
    }

    // Open an event: its fields, its data pretty-printed.
    b.click(&format!("#result-rows tr[data-position='{}']", expected[1]))
        .await;
    b.wait_text("#detail-position", "the event", |t| t == expected[1])
        .await;
    assert_eq!(b.text("#detail-type").await, "StudentSubscribed");
    let data = b.text("#detail-data").await;
    assert!(data.starts_with("{\n  \"student\": \"s"), "{data:?}");
    assert!(
        b.text("#detail-metadata")
            .await
            .contains("\"by\": \"registrar\"")
    );
    b.screenshot("events").await;

    // Paging: a page of 2, then the next, then back.
    b.fill("#limit", "2").await;
    b.click("#run").await;
    b.wait_text("#page-info", "a page of 2", |t| t.starts_with("2 events"))
        .await;
    b.click("#next").await;
    b.wait_text("#result-rows td.pos", "the next page", |t| t == expected[2])
        .await;
    b.click("#prev").await;
    b.wait_text("#result-rows td.pos", "the first page again", |t| {
        t == expected[0]
    })
    .await;

    // Live: follow course:c2, append from this process (the console is
    // another), see it appear.
    b.click("#tab-live").await;
    b.fill("#live-tags", "course:c2").await;
    b.click("#live-start").await;
    b.wait_text("#live-status", "following", |t| t.starts_with("following"))
        .await;
    let (status, body) = console.request(
        "POST",
        "/api/append",
        Some(KEY),
        "{\"type\":\"SeatsAdded\",\"tags\":[\"course:c3\"],\"data\":{\"seats\":2}}\n\
         {\"type\":\"StudentSubscribed\",\"tags\":[\"course:c2\",\"student:s99\"],\"data\":{\"student\":\"s99\"}}",
    );
    assert_eq!(status, 200, "{body}");
    b.wait_text("#live-rows tr:first-child td.pos", "the new event", |t| {
        t == "30"
    })
    .await;
    assert_eq!(
        b.texts("#live-rows td.pos").await,
        ["30"],
        "course:c3 is not followed"
    );

    // Paused, a new event waits; resumed, it comes, nothing missed.
    b.click("#live-pause").await;
    b.wait_text("#live-status", "paused", |t| t.starts_with("paused"))
        .await;
    let (status, body) = console.request(
        "POST",
        "/api/append",
        Some(KEY),
        r#"{"type":"StudentUnsubscribed","tags":["course:c2","student:s5"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.texts("#live-rows td.pos").await, ["30"]);
    b.click("#live-pause").await;
    b.wait_text(
        "#live-rows tr:first-child td.pos",
        "the event appended while paused",
        |t| t == "31",
    )
    .await;
    assert_eq!(b.texts("#live-rows td.pos").await, ["31", "30"]);
    b.screenshot("live").await;

    // A retroactive tag from the page, then found by a query.
    b.click("#tab-append").await;
    b.fill("#life-positions", &expected[0]).await;
    b.fill("#life-tags", "reviewed:yes").await;
    b.click("#life-tag").await;
    b.wait_text("#life-result", "the tagging", |t| {
        t == "1 of 1 events gained tags"
    })
    .await;
    b.click("#tab-events").await;
    b.fill("#items .item-tags", "reviewed:yes").await;
    b.fill("#limit", "20").await;
    b.click("#run").await;
    b.wait_text("#page-info", "the tagged event", |t| {
        t.starts_with("1 event,")
    })
    .await;
    assert_eq!(b.texts("#result-rows td.pos").await, [expected[0].clone()]);

    // The listings and the state, for the screenshots and a look.
    b.click("#tab-lists").await;
    b.wait_text("#list-rows", "the streams", |t| t.contains("course-c1"))
        .await;
    b.click("#list-what option[value='tags']").await;
    b.fill("#list-prefix", "course:").await;
    b.click("#list-run").await;
    // Its events read above, and the two appended since.
    let count = format!("course:c2 {}", expected.len() + 2);
    b.wait_text("#list-rows tr:nth-child(2)", "course:c2's count", |t| {
        t == count
    })
    .await;
    b.screenshot("lists").await;
    if std::env::var_os("GESTA_SCREENSHOTS").is_some() {
        // Some appends over a few seconds, so that the charts have a shape.
        for round in 0..6u32 {
            let lines: Vec<String> = (0..(round * 7 % 11 + 2))
                .map(|i| {
                    format!(r#"{{"type":"Checked","tags":["round:{round}"],"data":{{"i":{i}}}}}"#)
                })
                .collect();
            console.request("POST", "/api/append", Some(KEY), &lines.join("\n"));
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    b.click("#tab-state").await;
    b.wait_text("[data-figure='events'] .v", "the events", |t| {
        t.parse::<u64>().is_ok_and(|n| n >= 31)
    })
    .await;
    assert!(b.text("#cursor-rows").await.contains("mailer 17"));
    assert!(
        b.text("#snapshot-rows")
            .await
            .contains("seats-per-course 20")
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    b.screenshot("state").await;
    b.close().await;
    console.kill();

    // What the console appended is in the store.
    let store = Store::open(&dir).unwrap();
    let last = store
        .read_last(&Query::tag("student:s99"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.position, last.event_type.as_str()),
        (30, "StudentSubscribed")
    );
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_console_refuses_a_write_and_the_page_shows_it() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    seed(&dir);
    let console = Console::start(&dir, &[]);
    let b = Browser::start(&chromium, &driver).await;
    b.client.goto(&console.url).await.unwrap();
    b.wait_text("#mode", "the mode", |t| t == "read-only").await;
    b.click("#tab-append").await;
    b.click("#append-run").await;
    let shown = b
        .wait_text("#append-result", "the refusal", |t| {
            t.starts_with("refused")
        })
        .await;
    assert!(shown.contains("403 read_only"), "{shown}");
    assert!(b.text("#error").await.contains("read-only"));
    b.screenshot("read-only").await;
    // Refused for any client, not only the page.
    let (status, _) = console.request("POST", "/api/append", None, r#"{"type":"X"}"#);
    assert_eq!(status, 403);
    b.close().await;
    console.kill();
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.head(), 28, "nothing was appended");
    store.close().unwrap();
}
