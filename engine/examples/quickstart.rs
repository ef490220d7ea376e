//! A tour of Gesta in a temporary directory: durable appends, a course
//! capacity enforced with DCB conditional appends while students race for
//! the seats, queries by tag and type, a stream with an expected revision, an
//! idempotent retry, and a reopen that finds everything.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use gesta::{
    AppendOptions, Error, ExpectedRevision, NewEvent, Query, QueryItem, ReadOptions, Store,
};

const CAPACITY: usize = 3;

/// One student's attempt: read what is known about the course, decide, and
/// append on the condition that nothing relevant happened since.
fn subscribe(store: &Store, student: usize) -> Result<bool, Error> {
    let course = Query::tag("course:c1");
    loop {
        let seen = store.head();
        let subscribed = store
            .read(
                &Query::item(
                    QueryItem::new()
                        .event_type("StudentSubscribed")
                        .tag("course:c1"),
                ),
                ReadOptions::forwards(),
            )?
            .count();
        if subscribed >= CAPACITY {
            return Ok(false);
        }
        let event = NewEvent::new(
            "StudentSubscribed",
            format!(r#"{{"student":"s{student}"}}"#),
        )
        .tags(["course:c1".to_string(), format!("student:s{student}")]);
        match store.append_with(
            vec![event],
            AppendOptions::new().fail_if(course.clone(), Some(seen)),
        ) {
            Ok(_) => return Ok(true),
            // Someone changed the course after we looked: decide again.
            Err(Error::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("gesta-quickstart-{}", std::process::id()));
    let store = Store::open(&dir)?;
    println!("opened a store in {}", dir.display());

    let defined = store.append_with(
        vec![
            NewEvent::new(
                "CourseDefined",
                format!(r#"{{"course":"c1","capacity":{CAPACITY}}}"#),
            )
            .tag("course:c1")
            .stream("course-c1"),
        ],
        AppendOptions::new().expect("course-c1", ExpectedRevision::NoStream),
    )?;
    println!(
        "CourseDefined at position {} (stream course-c1 was expected not to exist)",
        defined.first
    );

    // Eight students race for three seats; the append condition lets exactly
    // three of them in, however the threads interleave.
    let barrier = Arc::new(Barrier::new(8));
    let racers: Vec<_> = (1..=8)
        .map(|student| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                subscribe(&store, student).map(|ok| (student, ok))
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for r in racers {
        if let (student, true) = r.join().expect("student thread")? {
            admitted.push(student);
        }
    }
    admitted.sort_unstable();
    println!("8 students raced for {CAPACITY} seats; admitted: {admitted:?}");
    assert_eq!(admitted.len(), CAPACITY);

    // An idempotent append: sending the same batch with the same ids twice
    // commits it once and returns the original positions.
    let renamed = || {
        vec![
            NewEvent::new("CourseRenamed", r#"{"title":"Event Sourcing 101"}"#)
                .tag("course:c1")
                .stream("course-c1")
                .id(0x5eed),
        ]
    };
    let first = store.append_with(
        renamed(),
        AppendOptions::new().expect("course-c1", ExpectedRevision::Exact(0)),
    )?;
    let retry = store.append_with(
        renamed(),
        AppendOptions::new().expect("course-c1", ExpectedRevision::Exact(0)),
    )?;
    println!(
        "CourseRenamed at {}; the retry returned {} and appended nothing (head {})",
        first.first,
        retry.first,
        store.head()
    );

    #[allow(clippy::disallowed_methods)] // measuring real time is the point here
    let started = Instant::now();
    let n = 2_000;
    for i in 0..n {
        store.append(vec![
            NewEvent::new("Ping", format!(r#"{{"i":{i}}}"#)).tag(format!("ping:{}", i % 10)),
        ])?;
    }
    let elapsed = started.elapsed();
    println!(
        "{n} single-event appends, each durable before it returned: {:.2?} ({:.0} appends/s, one writer)",
        elapsed,
        f64::from(n) / elapsed.as_secs_f64()
    );
    store.close()?;

    let store = Store::open(&dir)?;
    println!(
        "reopened: head {}, stream course-c1 at revision {:?}",
        store.head(),
        store.stream_revision("course-c1")?
    );
    println!("everything about course c1, by tag:");
    for event in store.read(&Query::tag("course:c1"), ReadOptions::forwards())? {
        let e = event?;
        println!(
            "  {:>5} {:<17} tags {:?} {}",
            e.position,
            e.event_type,
            e.tags,
            String::from_utf8_lossy(&e.data)
        );
    }
    let last_ping = store.read_last(&Query::item(
        QueryItem::new().event_type("Ping").tag("ping:7"),
    ))?;
    if let Some(e) = last_ping {
        println!(
            "the last Ping tagged ping:7 is at {}: {}",
            e.position,
            String::from_utf8_lossy(&e.data)
        );
    }
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
