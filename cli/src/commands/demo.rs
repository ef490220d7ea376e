//! `gesta demo [DIR]`: courses and students. Students race, from many
//! threads, for the seats of a few courses; each decides on what it read
//! and appends with a DCB condition, so that no course takes more students
//! than it has seats and no student more than two courses, however the
//! threads interleave. Then the store is read back with queries.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use gesta::{
    AppendOptions, Error, ExpectedRevision, NewEvent, Query, QueryItem, ReadOptions, RecordedEvent,
    Store,
};

use crate::failure::Failure;

pub const AFTER_HELP: &str = "\
Without DIR the store lives in a temporary directory that is removed at the end; with DIR (new or empty) it
stays, to look at with `gesta read`, `gesta stats` and `gesta verify`.

Examples:
  cargo run --release -p gesta-cli -- demo
  gesta demo ./demo-store && gesta read ./demo-store --tag course:databases";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to create the store (new or empty); default: a temporary
    /// directory, removed afterwards.
    #[arg(value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// A student may take at most this many courses.
const MAX_COURSES: usize = 2;

const COURSES: [(&str, &str, u64); 3] = [
    ("databases", "Databases", 3),
    ("rust", "Systems programming in Rust", 4),
    ("history", "A history of computing", 2),
];

const STUDENTS: [(&str, &[&str]); 12] = [
    ("ada", &["databases", "rust", "history"]),
    ("alan", &["databases", "history", "rust"]),
    ("grace", &["databases", "rust"]),
    ("edsger", &["history", "databases", "rust"]),
    ("barbara", &["databases", "rust", "history"]),
    ("donald", &["rust", "databases"]),
    ("frances", &["databases", "history"]),
    ("ken", &["rust", "history", "databases"]),
    ("leslie", &["databases", "rust", "history"]),
    ("margaret", &["history", "rust"]),
    ("tony", &["databases", "history", "rust"]),
    ("radia", &["rust", "databases", "history"]),
];

fn course_tag(course: &str) -> String {
    format!("course:{course}")
}

fn student_tag(student: &str) -> String {
    format!("student:{student}")
}

/// What a subscription decision needs: the course's definition and
/// subscriptions, and the student's subscriptions.
fn decision_query(course: &str, student: &str) -> Query {
    Query::from_items([
        QueryItem::new()
            .types([
                "CourseDefined",
                "CourseCapacityChanged",
                "StudentSubscribed",
            ])
            .tag(course_tag(course)),
        QueryItem::new()
            .event_type("StudentSubscribed")
            .tag(student_tag(student)),
    ])
}

fn json_u64(e: &RecordedEvent, field: &str) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&e.data)
        .ok()
        .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

enum Outcome {
    Admitted(u64),
    Full,
    AtLimit,
    Already,
}

/// One attempt of `student` at `course`: read what the decision depends
/// on, decide, and append on the condition that none of it changed; when
/// it did, read and decide again. Returns the outcome and how many times
/// the condition sent the student back.
fn subscribe(store: &Store, course: &str, student: &str) -> Result<(Outcome, u64), Error> {
    let query = decision_query(course, student);
    let mut conflicts = 0;
    loop {
        let seen = store.head();
        let (mut capacity, mut taken, mut mine, mut already) = (0, 0, 0, false);
        for e in store.read(&query, ReadOptions::forwards())? {
            let e = e?;
            let about_course = e.tags.contains(&course_tag(course));
            let about_student = e.tags.contains(&student_tag(student));
            match e.event_type.as_str() {
                "CourseDefined" | "CourseCapacityChanged" => capacity = json_u64(&e, "capacity"),
                "StudentSubscribed" => {
                    taken += u64::from(about_course);
                    mine += usize::from(about_student);
                    already |= about_course && about_student;
                }
                _ => {}
            }
        }
        let outcome = if already {
            Outcome::Already
        } else if taken >= capacity {
            Outcome::Full
        } else if mine >= MAX_COURSES {
            Outcome::AtLimit
        } else {
            let event = NewEvent::new(
                "StudentSubscribed",
                format!(r#"{{"course":"{course}","student":"{student}"}}"#),
            )
            .tags([course_tag(course), student_tag(student)]);
            match store.append_with(
                vec![event],
                AppendOptions::new().fail_if(query.clone(), Some(seen)),
            ) {
                Ok(appended) => Outcome::Admitted(appended.first),
                Err(Error::ConditionFailed { .. }) => {
                    conflicts += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        return Ok((outcome, conflicts));
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let temp;
    let dir: &Path = match &args.dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new().prefix("gesta-demo-").tempdir()?;
            temp.path()
        }
    };
    let store = Store::open(dir)?;
    if store.head() > 0 {
        return Err(Failure::new(format!(
            "the demo needs a new or empty store; {} already holds {} events",
            dir.display(),
            store.head()
        )));
    }
    println!("Gesta demo: a store in {}", dir.display());
    println!();
    define(&store)?;
    race(&store)?;
    report(&store)?;
    more_seats(&store)?;
    store.close()?;
    println!();
    match &args.dir {
        Some(d) => {
            let d = d.display();
            println!("The store stays in {d}. Look at it with:");
            println!("  gesta read {d} --tag course:databases");
            println!(
                "  gesta read {d} --query '{{\"items\":[{{\"types\":[\"StudentSubscribed\"],\"tags\":[\"student:ada\"]}}]}}'"
            );
            println!("  gesta stats {d}");
            println!("  gesta verify {d}");
        }
        None => println!(
            "The store was in a temporary directory and is removed now; `gesta demo ./demo-store` keeps it."
        ),
    }
    Ok(())
}

fn define(store: &Store) -> Result<(), Failure> {
    println!(
        "1. Three courses, each the first event of its own stream (expected revision: no stream):"
    );
    for (id, title, capacity) in COURSES {
        let at = store.append_with(
            vec![
                NewEvent::new(
                    "CourseDefined",
                    format!(r#"{{"course":"{id}","title":"{title}","capacity":{capacity}}}"#),
                )
                .tag(course_tag(id))
                .stream(format!("course-{id}")),
            ],
            AppendOptions::new().expect(format!("course-{id}"), ExpectedRevision::NoStream),
        )?;
        println!("   {:>3}  {title:<28} {capacity} seats", at.first);
    }
    let registered: Vec<NewEvent> = STUDENTS
        .iter()
        .map(|(s, _)| {
            NewEvent::new("StudentRegistered", format!(r#"{{"student":"{s}"}}"#))
                .tag(student_tag(s))
        })
        .collect();
    let at = store.append(registered)?;
    println!(
        "   {}..{}  {} students registered in one atomic batch",
        at.first,
        at.last,
        STUDENTS.len()
    );
    println!();
    Ok(())
}

/// Every student, in a thread of their own, tries their courses in order
/// of preference until they have two; all start at the same moment.
fn race(store: &Store) -> Result<(), Failure> {
    let seats: u64 = COURSES.iter().map(|c| c.2).sum();
    println!(
        "2. {} students race from {} threads for {seats} seats; each wants {MAX_COURSES} courses.",
        STUDENTS.len(),
        STUDENTS.len()
    );
    println!(
        "   Each attempt reads the course's events and the student's subscriptions, decides, and appends"
    );
    println!(
        "   on the condition that no event matching that query was committed since it read (DCB)."
    );
    let barrier = Barrier::new(STUDENTS.len());
    let conflicts = AtomicU64::new(0);
    // (position, line) of each admission; (student, refusals) of the rest.
    let admitted = Mutex::new(Vec::new());
    let refused = Mutex::new(BTreeMap::new());
    let started = Instant::now();
    let result: Result<(), Error> = std::thread::scope(|scope| {
        let handles: Vec<_> = STUDENTS
            .iter()
            .map(|&(student, wishes)| {
                let (barrier, conflicts) = (&barrier, &conflicts);
                let (admitted, refused) = (&admitted, &refused);
                scope.spawn(move || -> Result<(), Error> {
                    barrier.wait();
                    let mut got = 0;
                    let mut refusals = Vec::new();
                    for course in wishes {
                        if got == MAX_COURSES {
                            break;
                        }
                        let (outcome, retries) = subscribe(store, course, student)?;
                        conflicts.fetch_add(retries, Ordering::Relaxed);
                        let retried = match retries {
                            0 => String::new(),
                            1 => " after 1 conflict".to_owned(),
                            n => format!(" after {n} conflicts"),
                        };
                        match outcome {
                            Outcome::Admitted(p) => {
                                got += 1;
                                if let Ok(mut a) = admitted.lock() {
                                    a.push((
                                        p,
                                        format!("{student:<9} got a seat in {course}{retried}"),
                                    ));
                                }
                            }
                            Outcome::Full => refusals.push(format!("{course} full{retried}")),
                            Outcome::AtLimit => {
                                refusals.push(format!("{course}: has {MAX_COURSES} courses"))
                            }
                            Outcome::Already => refusals.push(format!("{course}: already in")),
                        }
                    }
                    if !refusals.is_empty()
                        && let Ok(mut r) = refused.lock()
                    {
                        r.insert(student, refusals.join(", "));
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| Error::Closed)??;
        }
        Ok(())
    });
    result?;
    let elapsed = started.elapsed();
    let mut admitted = admitted.into_inner().unwrap_or_default();
    admitted.sort();
    for (position, line) in admitted {
        println!("   {position:>5} {line}");
    }
    for (student, refusals) in refused.into_inner().unwrap_or_default() {
        println!("         {student:<9} found {refusals}");
    }
    let conflicts = conflicts.into_inner();
    println!(
        "   The race took {:.1?}; {conflicts} append(s) failed their condition because another student had just",
        elapsed
    );
    println!("   changed what they had read, so they read again and decided again.");
    println!();
    Ok(())
}

fn report(store: &Store) -> Result<(), Failure> {
    println!("3. Read back with queries:");
    let mut all_hold = true;
    for (id, title, capacity) in COURSES {
        let q = Query::item(
            QueryItem::new()
                .event_type("StudentSubscribed")
                .tag(course_tag(id)),
        );
        let mut students = Vec::new();
        for e in store.read(&q, ReadOptions::forwards())? {
            let e = e?;
            students.extend(
                e.tags
                    .iter()
                    .filter_map(|t| t.strip_prefix("student:"))
                    .map(str::to_owned),
            );
        }
        let ok = students.len() as u64 <= capacity;
        all_hold &= ok;
        println!(
            "   {title:<28} {}/{capacity} seats: {}  [{}]",
            students.len(),
            students.join(", "),
            if ok {
                "within capacity"
            } else {
                "OVER CAPACITY"
            }
        );
    }
    let mut per_student: BTreeMap<String, usize> = BTreeMap::new();
    for e in store.read(
        &Query::event_type("StudentSubscribed"),
        ReadOptions::forwards(),
    )? {
        for t in e?.tags.iter().filter_map(|t| t.strip_prefix("student:")) {
            *per_student.entry(t.to_owned()).or_default() += 1;
        }
    }
    let over: Vec<&String> = per_student
        .iter()
        .filter(|(_, n)| **n > MAX_COURSES)
        .map(|(s, _)| s)
        .collect();
    all_hold &= over.is_empty();
    let without = STUDENTS
        .iter()
        .filter(|(s, _)| !per_student.contains_key(*s))
        .count();
    println!(
        "   no student has more than {MAX_COURSES} courses: {}; {without} student(s) got no seat at all",
        if over.is_empty() { "true" } else { "FALSE" }
    );
    if let Some(last) = store.read_last(&Query::event_type("StudentSubscribed"))? {
        println!(
            "   the last subscription (read_last) is at position {}: {}",
            last.position,
            String::from_utf8_lossy(&last.data)
        );
    }
    println!(
        "   head {}: every rule held under concurrency: {}",
        store.head(),
        if all_hold { "yes" } else { "NO" }
    );
    if !all_hold {
        return Err(Failure::new("a rule was broken; this is a bug"));
    }
    println!();
    Ok(())
}

/// The history course gets one more seat (an append that expects the
/// course's stream at the revision the decision saw), and the first
/// student who found it full tries again.
fn more_seats(store: &Store) -> Result<(), Failure> {
    println!("4. The history course gets a third seat, and a student who missed out tries again:");
    let stream = "course-history";
    let revision = store.stream_revision(stream)?;
    let at = store.append_with(
        vec![
            NewEvent::new(
                "CourseCapacityChanged",
                r#"{"course":"history","capacity":3}"#,
            )
            .tag(course_tag("history"))
            .stream(stream),
        ],
        AppendOptions::new().expect(
            stream,
            revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact),
        ),
    )?;
    println!(
        "   {:>5} CourseCapacityChanged (stream {stream} was at revision {}, as expected)",
        at.first,
        revision.map_or("none".to_owned(), |r| r.to_string())
    );
    for (student, wishes) in STUDENTS {
        if !wishes.contains(&"history") {
            continue;
        }
        match subscribe(store, "history", student)?.0 {
            Outcome::Admitted(p) => {
                println!("   {p:>5} {student} got the new seat in history");
                return Ok(());
            }
            Outcome::Full => break,
            Outcome::AtLimit | Outcome::Already => {}
        }
    }
    println!("         nobody who wanted history was free to take the seat");
    Ok(())
}
