//! Appends a few batches to a store in a temporary directory, reopens it and
//! reads everything back, forwards and backwards.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use gesta::{NewEvent, Query, ReadOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("gesta-quickstart-{}", std::process::id()));
    let store = Store::open(&dir)?;
    println!("opened a store in {}", dir.display());

    let a = store.append(vec![
        NewEvent::new("CourseDefined", r#"{"course":"c1","capacity":2}"#)
            .tag("course:c1")
            .stream("course-c1"),
    ])?;
    println!("appended CourseDefined at position {}", a.first);
    let b = store.append(vec![
        NewEvent::new("StudentSubscribed", r#"{"student":"s1"}"#)
            .tags(["course:c1", "student:s1"])
            .stream("course-c1"),
        NewEvent::new("StudentSubscribed", r#"{"student":"s2"}"#)
            .tags(["course:c1", "student:s2"])
            .stream("course-c1"),
    ])?;
    println!(
        "appended a batch of two at positions {}..={}",
        b.first, b.last
    );

    let started = Instant::now();
    let n = 10_000;
    for i in 0..n {
        store.append(vec![NewEvent::new("Ping", format!("{{\"i\":{i}}}"))])?;
    }
    let elapsed = started.elapsed();
    println!(
        "appended {n} single-event batches durably in {:.2?} ({:.0} appends/s, one writer)",
        elapsed,
        f64::from(n) / elapsed.as_secs_f64()
    );
    store.close()?;

    let store = Store::open(&dir)?;
    println!("reopened: head is {}", store.head());
    for event in store.read(&Query::all(), ReadOptions::forwards().limit(3)) {
        let e = event?;
        println!(
            "  {:>5} {:<18} stream {:?} rev {:?} tags {:?} {}",
            e.position,
            e.event_type,
            e.stream,
            e.revision,
            e.tags,
            String::from_utf8_lossy(&e.data)
        );
    }
    println!("  ...");
    let last: Vec<_> = store
        .read(&Query::all(), ReadOptions::backwards().limit(2))
        .collect::<Result<_, _>>()?;
    for e in last {
        println!(
            "  {:>5} {:<18} {}",
            e.position,
            e.event_type,
            String::from_utf8_lossy(&e.data)
        );
    }
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
