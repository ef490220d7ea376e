//! The `gesta` binary, run as a user would: the round trip from append to
//! import, the read flags, conditional appends, and every error case.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn gesta() -> Command {
    Command::cargo_bin("gesta").expect("the gesta binary is built")
}

/// Runs `gesta args…` with `stdin`, expecting success; returns stdout.
fn ok(args: &[&str], stdin: &str) -> String {
    let out = gesta().args(args).write_stdin(stdin).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).expect("utf-8 output")
}

fn lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

fn positions(s: &str) -> Vec<u64> {
    lines(s)
        .iter()
        .map(|v| v["position"].as_u64().expect("a position"))
        .collect()
}

fn store(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

const EVENTS: &str = r#"{"type":"CourseDefined","tags":["course:c1"],"data":{"capacity": 2,"title":"Databases"},"stream":"course-c1","id":"0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"}
{"type":"CourseDefined","tags":["course:c2"],"data":{"capacity":1},"stream":"course-c2"}

{"type":"StudentSubscribed","tags":["course:c1","student:s1"],"data":{"student":"s1"}}
{"type":"StudentSubscribed","tags":["course:c1","student:s2"],"data":"s2","metadata":{"by":"import"}}
{"type":"StudentSubscribed","tags":["course:c2","student:s1"],"data_base64":"AAEC/w=="}
{"type":"CourseRenamed","tags":["course:c1"],"stream":"course-c1","data":[1,2,3]}
{"type":"Ping"}
"#;

fn filled(tmp: &tempfile::TempDir) -> PathBuf {
    let dir = store(tmp, "s");
    let out = ok(&["append", dir.to_str().unwrap(), "--batch", "3"], EVENTS);
    assert_eq!(
        out,
        "{\"first\":1,\"last\":3}\n{\"first\":4,\"last\":6}\n{\"first\":7,\"last\":7}\n"
    );
    dir
}

#[test]
fn append_read_stats_verify_export_import_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();

    let all = ok(&["read", d], "");
    let events = lines(&all);
    assert_eq!(events.len(), 7);
    let first = &events[0];
    assert_eq!(first["position"], 1);
    assert_eq!(first["type"], "CourseDefined");
    assert_eq!(first["tags"], serde_json::json!(["course:c1"]));
    assert_eq!(first["stream"], "course-c1");
    assert_eq!(first["revision"], 0);
    assert_eq!(first["id"], "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    // Data is printed as the exact JSON text it was given.
    assert!(
        all.lines()
            .next()
            .unwrap()
            .contains(r#""data":{"capacity": 2,"title":"Databases"}"#)
    );
    assert_eq!(events[3]["data"], "s2");
    assert_eq!(events[3]["metadata"], serde_json::json!({"by": "import"}));
    assert_eq!(events[4]["data_base64"], "AAEC/w==");
    assert!(events[4].get("data").is_none());
    assert_eq!(events[5]["revision"], 1);
    assert!(events[6].get("data").is_none() && events[6].get("data_base64").is_none());

    gesta()
        .args(["stats", d])
        .assert()
        .success()
        .stdout(contains("head             7"))
        .stdout(contains("events           7"))
        .stdout(contains("streams          2"))
        .stdout(contains("distinct types   4"))
        .stdout(contains("3  StudentSubscribed"))
        .stdout(contains("4  course:c1"));
    gesta()
        .args(["stats", d, "--top", "1"])
        .assert()
        .success()
        .stdout(contains(
            "top 1 tags by events:\n             4  course:c1\n",
        ));
    gesta()
        .args(["verify", d])
        .assert()
        .success()
        .stdout(contains("ok: 7 events in 3 records, positions 1..=7"));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["stats", d, "--json", "--top", "2"], "")).unwrap();
    assert_eq!(json["head"], 7);
    assert_eq!(json["streams"], 2);
    assert_eq!(json["distinct_tags"], 4);
    assert_eq!(
        json["top_tags"],
        serde_json::json!([["course:c1", 4], ["course:c2", 2]])
    );
    assert!(json["torn_tail_offset"].is_null());

    let exported = ok(&["export", d], "");
    assert_eq!(exported, all, "export writes what read writes");
    let copy = store(&tmp, "copy");
    let c = copy.to_str().unwrap();
    gesta()
        .args(["import", c, "--batch", "2"])
        .write_stdin(exported.clone())
        .assert()
        .success()
        .stderr(contains("imported 7 events"));
    let without_time = |s: &str| {
        lines(s)
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("timestamp");
                v
            })
            .collect::<Vec<_>>()
    };
    let copied = ok(&["read", c], "");
    assert_eq!(without_time(&copied), without_time(&all));
    // The bytes of data and metadata survive, not only their JSON meaning.
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                let key = "\"timestamp\":\"";
                let at = l.find(key).unwrap() + key.len();
                let end = at + l[at..].find('"').unwrap();
                format!("{}{}", &l[..at], &l[end..])
            })
            .collect()
    };
    assert_eq!(strip(&copied), strip(&all));
    gesta().args(["verify", c]).assert().success();
}

#[test]
fn read_filters_bounds_and_directions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let read = |extra: &[&str]| {
        let mut args = vec!["read", d];
        args.extend_from_slice(extra);
        positions(&ok(&args, ""))
    };
    assert_eq!(read(&["--type", "CourseDefined"]), [1, 2]);
    assert_eq!(
        read(&["--type", "CourseDefined", "--type", "Ping"]),
        [1, 2, 7]
    );
    assert_eq!(read(&["--tag", "course:c1"]), [1, 3, 4, 6]);
    assert_eq!(read(&["--tag", "course:c1", "--tag", "student:s1"]), [3]);
    assert_eq!(
        read(&["--type", "StudentSubscribed", "--tag", "student:s1"]),
        [3, 5]
    );
    assert_eq!(
        read(&[
            "--query",
            r#"{"items":[{"tags":["course:c2"]},{"types":["Ping"]}]}"#
        ]),
        [2, 5, 7]
    );
    assert_eq!(read(&["--query", "{}"]), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(read(&["--after", "2", "--before", "6"]), [3, 4, 5]);
    assert_eq!(read(&["--backwards"]), [7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(
        read(&["--backwards", "--after", "2", "--before", "6"]),
        [5, 4, 3]
    );
    assert_eq!(read(&["--tag", "course:c1", "--limit", "2"]), [1, 3]);
    assert_eq!(
        read(&["--tag", "course:c1", "--backwards", "--limit", "2"]),
        [6, 4]
    );
    assert_eq!(read(&["--tag", "course:c1", "--last"]), [6]);
    assert_eq!(
        read(&["--tag", "course:c1", "--last", "--before", "6"]),
        [4]
    );
    assert_eq!(read(&["--tag", "nobody"]), Vec::<u64>::new());
}

#[test]
fn conditional_appends_and_expected_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let event = r#"{"type":"StudentSubscribed","tags":["course:c1","student:s9"]}"#;
    let c1 = r#"{"items":[{"tags":["course:c1"]}]}"#;
    // Something about c1 happened after position 4 (at 6): refused.
    gesta()
        .args(["append", d, "--condition", c1, "--after", "4"])
        .write_stdin(event)
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains(
            "line 1: append condition failed: event at position 6",
        ));
    // Nothing after 6: accepted.
    assert_eq!(
        ok(&["append", d, "--condition", c1, "--after", "6"], event),
        "{\"first\":8,\"last\":8}\n"
    );
    // Without --after, any matching event fails the append.
    gesta()
        .args([
            "append",
            d,
            "--condition",
            r#"{"items":[{"types":["Ping"]}]}"#,
        ])
        .write_stdin(event)
        .assert()
        .code(3)
        .stderr(contains("event at position 7 matches"));
    gesta()
        .args(["append", d, "--expected-revision", "course-c1=0"])
        .write_stdin(r#"{"type":"CourseRenamed","stream":"course-c1"}"#)
        .assert()
        .code(3)
        .stderr(contains(
            "stream \"course-c1\" is at revision 1, but the append expected revision 0",
        ));
    assert_eq!(
        ok(
            &[
                "append",
                d,
                "--expected-revision",
                "course-c1=1",
                "--expected-revision",
                "course-c3=no-stream"
            ],
            r#"{"type":"CourseRenamed","stream":"course-c1"}"#
        ),
        "{\"first\":9,\"last\":9}\n"
    );
    gesta()
        .args(["append", d, "--expected-revision", "course-c1=soon"])
        .write_stdin(event)
        .assert()
        .code(2)
        .stderr(contains("not a number"));
    assert_eq!(
        positions(&ok(&["read", d, "--backwards", "--limit", "1"], "")),
        [9]
    );
}

#[test]
fn a_locked_store_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let held = gesta::Store::open(&dir).unwrap();
    for args in [
        vec!["read", d],
        vec!["append", d],
        vec!["export", d],
        vec!["import", d],
    ] {
        gesta()
            .args(&args)
            .write_stdin("{\"type\":\"T\"}\n")
            .assert()
            .code(1)
            .stderr(contains("is locked by another process"))
            .stderr(predicate::function(|s: &str| s.lines().count() == 1));
    }
    // verify and stats read the files without the lock.
    gesta().args(["verify", d]).assert().success();
    gesta().args(["stats", d]).assert().success();
    held.close().unwrap();
    gesta().args(["read", d]).assert().success();
}

#[test]
fn malformed_json_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = store(&tmp, "s");
    let d = d.to_str().unwrap();
    let input =
        "{\"type\":\"A\"}\n\n{\"type\":\"B\"}\n{\"type\":\"C\",\"data\":{oops}\n{\"type\":\"D\"}\n";
    gesta()
        .args(["append", d])
        .write_stdin(input)
        .assert()
        .code(1)
        .stdout("{\"first\":1,\"last\":1}\n{\"first\":2,\"last\":2}\n")
        .stderr("gesta: line 4, column 21: key must be a string\n");
    gesta()
        .args(["append", d])
        .write_stdin("{\"tags\":[]}\n")
        .assert()
        .code(1)
        .stderr(contains("line 1, column 11: missing field `type`"));
    gesta()
        .args(["append", d])
        .write_stdin("{\"type\":\"A\",\"tag\":[\"x\"]}\n")
        .assert()
        .code(1)
        .stderr(contains("line 1, column 17: unknown field `tag`"));
    gesta()
        .args(["append", d])
        .write_stdin("{\"type\":\"A\"}\n{\"type\":\"\"}\n")
        .assert()
        .code(1)
        .stderr(contains("line 2: invalid input: event 0: empty event type"));
    gesta()
        .args(["append", d])
        .write_stdin("{\"type\":\"A\",\"id\":\"not-a-uuid\"}\n")
        .assert()
        .code(1)
        .stderr(contains("line 1: id \"not-a-uuid\""));
    gesta()
        .args(["import", d])
        .write_stdin("{\"type\":\"A\"}\n[1,2]\n")
        .assert()
        .code(1)
        .stderr("gesta: line 2: not a JSON object\n");
    // Only the well-formed batches before the bad lines were committed.
    assert_eq!(positions(&ok(&["read", d], "")), [1, 2, 3]);
}

#[test]
fn bad_query_json_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    gesta()
        .args(["read", d, "--query", r#"{"items":[{"tag":["x"]}]}"#])
        .assert()
        .code(1)
        .stderr(contains(
            "--query is not a query, column 16: unknown field `tag`, expected `types` or `tags`",
        ));
    gesta()
        .args(["read", d, "--query", "{items"])
        .assert()
        .code(1)
        .stderr(contains(
            "--query is not a query, column 2: key must be a string",
        ));
    gesta()
        .args(["append", d, "--condition", r#"{"items":{"tags":[]}}"#])
        .write_stdin("{\"type\":\"A\"}")
        .assert()
        .code(1)
        .stderr(contains(
            "--condition is not a query, column 9: invalid type: map, expected a sequence",
        ));
    gesta()
        .args(["read", d, "--query", r#"{"items":[{"tags":[""]}]}"#])
        .assert()
        .code(1)
        .stderr(contains("invalid input: query item 0"));
    gesta()
        .args(["read", d, "--query", "{}", "--tag", "x"])
        .assert()
        .code(2)
        .stderr(contains("cannot be used with"));
}

/// Offset of the `n`th record (from 0) of a segment file.
fn record_offset(segment: &[u8], n: usize) -> usize {
    let mut at = 32;
    for _ in 0..n {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    at
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_names_the_file_and_offset_of_a_corrupt_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let segment = dir.join("wal").join("00000000000000000001.seg");
    let bytes = std::fs::read(&segment).unwrap();
    let second = record_offset(&bytes, 1);
    flip(&segment, second + 40);
    gesta()
        .args(["verify", d])
        .assert()
        .code(1)
        .stdout(format!(
            "log damage: {} at offset {second}: record checksum mismatch; the log is never repaired\n",
            segment.display()
        ))
        .stderr("gesta: 1 problem(s): 1 in the log; damage to the log is not repairable\n");
    gesta()
        .args(["stats", d])
        .assert()
        .code(1)
        .stderr(contains(format!("at offset {second}")));
    // Opening the store refuses it too.
    gesta()
        .args(["read", d])
        .assert()
        .code(1)
        .stderr(contains(format!(
            "corruption in {} at offset {second}",
            segment.display()
        )));
}

#[test]
fn verify_checks_index_runs_against_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let store = gesta::Store::open(&dir).unwrap();
    store.flush_index().unwrap();
    store.close().unwrap();
    gesta()
        .args(["verify", d])
        .assert()
        .success()
        .stdout(contains("1 index run(s)"))
        .stdout(contains("agree with the log"));
    let run = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("an index run");
    flip(&run, 20);
    gesta()
        .args(["verify", d])
        .assert()
        .code(1)
        .stdout(contains(format!(
            "index damage: {} at offset",
            run.display()
        )))
        .stdout(contains("--repair rebuilds the index from the log"))
        .stderr(contains("1 problem(s): 1 in the index"));
}

#[test]
fn verify_repair_rebuilds_a_damaged_or_lost_index_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let store = gesta::Store::open(&dir).unwrap();
    store.flush_index().unwrap();
    store.close().unwrap();
    let before = gesta()
        .args(["read", d, "--tag", "course:c1"])
        .output()
        .unwrap();
    assert!(before.status.success() && !before.stdout.is_empty());
    let run = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("an index run");

    // A damaged run: refused until repaired, then identical answers.
    flip(&run, 20);
    gesta()
        .args(["read", d, "--tag", "course:c1"])
        .assert()
        .code(1);
    gesta()
        .args(["verify", d, "--repair"])
        .assert()
        .success()
        .stdout(contains(format!(
            "index damage: {} at offset",
            run.display()
        )))
        .stdout(contains("repaired: removed 2 index file(s)"))
        .stdout(contains("agree with the log"));
    let after = gesta()
        .args(["read", d, "--tag", "course:c1"])
        .output()
        .unwrap();
    assert_eq!(after.stdout, before.stdout);

    // A lost MANIFEST-listed run, then a lost MANIFEST.
    for victim in ["run", "MANIFEST"] {
        let path = if victim == "run" {
            std::fs::read_dir(dir.join("index"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "idx"))
                .expect("an index run")
        } else {
            dir.join("MANIFEST")
        };
        std::fs::remove_file(&path).unwrap();
        gesta()
            .args(["verify", d, "--repair"])
            .assert()
            .success()
            .stdout(contains("agree with the log"));
        let again = gesta()
            .args(["read", d, "--tag", "course:c1"])
            .output()
            .unwrap();
        assert_eq!(again.stdout, before.stdout, "after losing the {victim}");
    }

    // Damage to the log is not repaired, and the index is left alone.
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let index_before = listing(&dir.join("index"));
    let segment = dir.join("wal").join("00000000000000000001.seg");
    let bytes = std::fs::read(&segment).unwrap();
    flip(&segment, record_offset(&bytes, 1) + 40);
    gesta()
        .args(["verify", d, "--repair"])
        .assert()
        .code(1)
        .stdout(contains(format!("log damage: {}", segment.display())))
        .stdout(contains("repaired:").not())
        .stderr("gesta: the log is damaged: nothing was repaired (damage to the log is never repaired)\n");
    assert_eq!(listing(&dir.join("index")), index_before);
}

/// A store with several sealed segments, each with its offset table.
fn sealed_segments(tmp: &tempfile::TempDir) -> PathBuf {
    let dir = store(tmp, "sealed");
    let options = gesta::Options::default()
        .segment_size(4096)
        .preallocate(4096);
    let store = gesta::Store::open_with(&dir, options).unwrap();
    for b in 0..60 {
        let events = (0..4)
            .map(|i| {
                gesta::NewEvent::new("Ping", format!("{{\"b\":{b},\"i\":{i}}}"))
                    .tag(format!("b:{b}"))
            })
            .collect();
        store.append(events).unwrap();
    }
    store.flush_index().unwrap();
    store.close().unwrap();
    dir
}

fn offset_tables(dir: &Path) -> Vec<PathBuf> {
    let mut tables: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "off"))
        .collect();
    tables.sort();
    tables
}

#[test]
fn verify_reports_damaged_and_missing_offset_tables_and_repair_rebuilds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed_segments(&tmp);
    let d = dir.to_str().unwrap();
    ok(&["verify", d], "");
    let tables = offset_tables(&dir);
    assert!(tables.len() >= 2, "{tables:?}");
    let pristine: Vec<Vec<u8>> = tables.iter().map(|t| std::fs::read(t).unwrap()).collect();
    let before = ok(&["read", d, "--tag", "b:7"], "");

    // One table with a flipped bit, another deleted: both reported, each
    // as harmless damage to a cache, and verify fails.
    flip(&tables[0], 30);
    std::fs::remove_file(&tables[1]).unwrap();
    let crc_at = pristine[0].len() - 4;
    let out = gesta().args(["verify", d]).assert().code(1).stderr(
        "gesta: 2 problem(s), all in offset tables, caches that the next open rebuilds by itself \
             (harmless); --repair rebuilds them now\n",
    );
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "cache damage (harmless): {} at offset {crc_at}: offset table checksum mismatch; the offset \
             table is a cache that the next open ignores and rebuilds from its segment; --repair rebuilds it now",
            tables[0].display()
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "cache damage (harmless): {}: the offset table of the sealed segment ",
            tables[1].display()
        )) && lines[1].contains("is missing;"),
        "{}",
        lines[1]
    );

    // --repair writes both again from their segments, and all is well.
    gesta()
        .args(["verify", d, "--repair"])
        .assert()
        .success()
        .stdout(contains(format!(
            "repaired: {} was rebuilt from its segment",
            tables[0].display()
        )))
        .stdout(contains(format!(
            "repaired: {} was rebuilt from its segment",
            tables[1].display()
        )))
        .stdout(contains("repaired: removed").not())
        .stdout(contains("agree with the log"));
    for (table, bytes) in tables.iter().zip(&pristine) {
        assert_eq!(&std::fs::read(table).unwrap(), bytes, "{}", table.display());
    }
    ok(&["verify", d], "");
    assert_eq!(ok(&["read", d, "--tag", "b:7"], ""), before);
}

#[test]
fn verify_reports_every_problem_and_a_trusted_wrong_offset_table_is_not_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed_segments(&tmp);
    let d = dir.to_str().unwrap();
    let tables = offset_tables(&dir);
    let pristine = std::fs::read(&tables[0]).unwrap();
    // A table whose checksum is intact but whose last position is wrong:
    // the index covers the segment, so the next open would trust it.
    let mut wrong = pristine.clone();
    wrong[24] ^= 1;
    let crc = crc32fast::hash(&wrong[..wrong.len() - 4]);
    let n = wrong.len();
    wrong[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&tables[0], &wrong).unwrap();
    // And the index run damaged.
    let run = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("an index run");
    flip(&run, 20);
    let out = gesta()
        .args(["verify", d])
        .assert()
        .code(1)
        .stderr(
            "gesta: 2 problem(s): 1 in the index, 1 in offset tables; --repair rebuilds them from the log\n",
        );
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "cache damage: {} at offset 24: ",
            tables[0].display()
        )) && lines[0].contains("the next open does not rebuild this offset table by itself"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("index damage: {} at offset", run.display())),
        "{}",
        lines[1]
    );
    gesta()
        .args(["verify", d, "--repair"])
        .assert()
        .success()
        .stdout(contains("repaired: removed 2 index file(s)"))
        .stdout(contains(format!(
            "repaired: {} was rebuilt from its segment",
            tables[0].display()
        )));
    assert_eq!(std::fs::read(&tables[0]).unwrap(), pristine);
    ok(&["verify", d], "");
}

#[test]
fn compact_merges_the_index_into_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let before = ok(&["read", d, "--tag", "course:c1"], "");
    for i in 0..3 {
        let line = format!("{{\"type\":\"Ping\",\"tags\":[\"course:c1\"],\"data\":{i}}}\n");
        ok(&["append", d], &line);
        let store = gesta::Store::open(&dir).unwrap();
        store.flush_index().unwrap();
        store.close().unwrap();
    }
    gesta()
        .args(["compact", d])
        .assert()
        .success()
        .stdout(contains("index run(s) -> 1 (10 events"));
    let after = ok(&["read", d, "--tag", "course:c1"], "");
    assert!(after.starts_with(&before) && positions(&after).len() == positions(&before).len() + 3);
    ok(&["verify", d], "");
    // A store held open elsewhere is refused.
    let held = gesta::Store::open(&dir).unwrap();
    gesta()
        .args(["compact", d])
        .assert()
        .code(1)
        .stderr(contains("locked"));
    drop(held);
}

#[test]
fn compact_compress_rewrites_sealed_segments_and_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store =
        gesta::Store::open_with(&dir, gesta::Options::default().segment_size(8 << 10)).unwrap();
    for i in 0..400 {
        let event = gesta::NewEvent::new(
            "Noted",
            format!("{{\"n\":{i},\"text\":\"the same words again\"}}"),
        )
        .tag(format!("k:{}", i % 7));
        store.append(vec![event]).unwrap();
    }
    store.close().unwrap();
    drop(store);
    let d = dir.to_str().unwrap();
    let before = ok(&["read", d, "--tag", "k:3"], "");
    gesta()
        .args([
            "compact",
            d,
            "--compress",
            "--level",
            "5",
            "--block-size",
            "1024",
            "--dictionary-size",
            "512",
        ])
        .assert()
        .success()
        .stdout(contains("log: "));
    let names: Vec<String> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().filter(|n| n.ends_with(".zseg")).count() >= 3,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".seg")).count(),
        1,
        "{names:?}"
    );
    // Each compressed segment carries the dictionary trained on it (its
    // length is the header's bytes 16..20).
    for name in names.iter().filter(|n| n.ends_with(".zseg")) {
        let bytes = std::fs::read(dir.join("wal").join(name)).unwrap();
        let dictionary = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        assert!((1..=512).contains(&dictionary), "{name}: {dictionary}");
    }
    assert_eq!(ok(&["read", d, "--tag", "k:3"], ""), before);
    ok(&["verify", d], "");
    let zseg = names.iter().filter(|n| n.ends_with(".zseg")).count();
    let stats = ok(&["stats", d], "");
    assert!(stats.contains(&format!("({zseg} compressed;")), "{stats}");
    // Out-of-range settings are usage errors.
    for bad in [["--level", "30"], ["--dictionary-size", "2000000"]] {
        gesta()
            .args(["compact", d, "--compress", bad[0], bad[1]])
            .assert()
            .code(2);
    }
}

#[test]
fn snapshot_save_list_load_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let state: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    for p in ["3", "6"] {
        gesta()
            .args(["snapshot", "save", d, "course-list", "--position", p])
            .write_stdin(state.clone())
            .assert()
            .success()
            .stdout(contains(format!(
                "saved 5000 bytes for \"course-list\" at position {p}"
            )));
    }
    assert_eq!(ok(&["snapshot", "list", d, "course-list"], ""), "3\n6\n");
    let newest = gesta()
        .args(["snapshot", "load", d, "course-list"])
        .assert()
        .success()
        .stderr(contains("at position 6"));
    assert_eq!(newest.get_output().stdout, state);
    gesta()
        .args(["snapshot", "load", d, "course-list", "--at", "5"])
        .assert()
        .success()
        .stderr(contains("at position 3"));
    gesta()
        .args(["snapshot", "load", d, "course-list", "--at", "2"])
        .assert()
        .code(1)
        .stderr("gesta: no snapshot of \"course-list\" at or before position 2\n");
    gesta()
        .args(["snapshot", "save", d, "course-list", "--position", "99"])
        .write_stdin("x")
        .assert()
        .code(1)
        .stderr(contains("past the head"));
    ok(
        &["snapshot", "delete", d, "course-list", "--position", "3"],
        "",
    );
    assert_eq!(ok(&["snapshot", "list", d, "course-list"], ""), "6\n");
    gesta()
        .args(["snapshot", "delete", d, "course-list", "--position", "3"])
        .assert()
        .code(1)
        .stderr(contains("no snapshot"));

    // verify checks snapshots; a damaged one is reported, and not
    // repaired, until it is deleted.
    ok(&["verify", d], "");
    let snap = dir
        .join("snapshots")
        .join("636f757273652d6c697374")
        .join("00000000000000000006.snap");
    flip(&snap, 40);
    for args in [&["verify", d][..], &["verify", d, "--repair"][..]] {
        gesta()
            .args(args)
            .assert()
            .code(1)
            .stdout(contains(format!("snapshot damage: {} at offset", snap.display())))
            .stdout(contains("repaired:").not())
            .stderr(
                "gesta: 1 problem(s): 1 in snapshots; --repair does not touch snapshots or cursors\n",
            );
    }
    ok(
        &["snapshot", "delete", d, "course-list", "--position", "6"],
        "",
    );
    ok(&["verify", d], "");
}

#[test]
fn serve_holds_the_store_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gesta"))
        .args(["serve", d, "--listen", &listen, "--worker-threads", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut listening = false;
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(listening, "gesta serve never listened");
    // The server owns the store meanwhile.
    gesta()
        .args(["read", d])
        .assert()
        .code(1)
        .stderr(contains("locked"));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    assert_eq!(positions(&ok(&["read", d], "")).len(), 7);
}

/// `gesta serve --metrics`: the Prometheus text at /metrics, sampled from
/// the store it serves, and the server's log lines through `tracing` on
/// stderr, filtered by `RUST_LOG`.
#[test]
fn serve_exports_metrics_and_logs_through_tracing() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    // Both ports are held until both are known, so that they differ.
    let (port, metrics_port) = {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        )
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gesta"))
        .args(["serve", d, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The log is read as it comes: the endpoint is asked only once the
    // server says it serves it, so a request never reaches a socket that
    // is not (yet) this server's exporter.
    let serving = format!("serving Prometheus metrics on http://127.0.0.1:{metrics_port}/metrics");
    let (said, heard) = std::sync::mpsc::channel();
    let log = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in log.lines().map_while(Result::ok) {
            let _ = said.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match heard.recv_timeout(left) {
            Ok(line) if line.contains(&serving) => break,
            Ok(_) => {}
            Err(e) => panic!("the server never said it serves metrics: {e}"),
        }
    }
    let mut body = None;
    for _ in 0..40 {
        let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) else {
            std::thread::sleep(std::time::Duration::from_millis(25));
            continue;
        };
        let mut response = String::new();
        let asked = socket
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .and_then(|()| socket.read_to_string(&mut response));
        if asked.is_ok() {
            body = Some(response);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let body = body.expect("the metrics endpoint never answered");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("\ngesta_head_position 7\n"), "{body}");
    assert!(body.contains("# TYPE gesta_disk_bytes gauge"), "{body}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let stderr = reader.join().unwrap();
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(stderr.contains(&serving), "{stderr}");
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gesta serve` with `args` and `--listen 127.0.0.1:PORT` on a port
/// that was free when picked, and waits for its stderr to say it listens
/// (a tenant server says so once it has bound the port). Another test may
/// take the port between the pick and the bind, and would answer a probe
/// by connection; the server then exits instead, and is started again on
/// another port.
fn serve_tenants_on_a_free_port(args: &[&str]) -> std::process::Child {
    use std::io::BufRead as _;
    for _ in 0..5 {
        let port = free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gesta"))
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (said, listening) = std::sync::mpsc::channel();
        // Reads to the end, so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = said.send(());
                }
            }
        });
        if listening
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok()
        {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("gesta serve {args:?} never listened");
}

/// `gesta serve ROOT --tenants --tenant-keys FILE` serves the tenants
/// under ROOT (the routing itself is tested in gesta-server's
/// tests/tenants.rs); a key file is required, and an API key refused.
#[test]
fn serve_tenants_starts_over_a_root_with_a_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let r = root.to_str().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::write(&keys, "alpha key-a\n").unwrap();
    usage_error(&["serve", r, "--tenants"], "--tenant-keys");
    usage_error(
        &[
            "serve",
            r,
            "--tenants",
            "--tenant-keys",
            keys.to_str().unwrap(),
            "--api-key",
            "k",
        ],
        "cannot be used with",
    );
    let mut child = serve_tenants_on_a_free_port(&[
        "serve",
        r,
        "--tenants",
        "--tenant-keys",
        keys.to_str().unwrap(),
        "--insecure-loopback-api-key",
    ]);
    assert!(root.join("tenants").is_dir());
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn read_follow_tails_a_store_another_process_appends_to() {
    use std::io::Read as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    // The writer holds the store, with small segments so that the follower
    // must move across several rollovers.
    let options = gesta::Options::default()
        .segment_size(8 << 10)
        .preallocate(4 << 10);
    let store = gesta::Store::open_with(&dir, options).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gesta"))
        .args([
            "read", d, "--follow", "--type", "Ping", "--after", "3", "--limit", "41",
        ])
        .args(["--poll-ms", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut want = vec![7]; // the Ping already in the store
    for i in 0..80u64 {
        let event = |t: &str| {
            gesta::NewEvent::new(t, format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(300)))
        };
        let a = store.append(vec![event("Other"), event("Ping")]).unwrap();
        if want.len() < 41 {
            want.push(a.last);
        }
        if i % 10 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gesta read --follow did not stop after --limit events");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(positions(&out), want);
    assert!(
        std::fs::read_dir(dir.join("wal")).unwrap().count() > 3,
        "the appends rolled over into several segments"
    );
    store.close().unwrap();
}

/// Runs `gesta args…`, expecting a usage error: exit status 2 and one line
/// on stderr that contains `message`.
fn usage_error(args: &[&str], message: &str) {
    let out = gesta().args(args).write_stdin("").assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("gesta: "), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
}

/// `bench` forwards its flags to the comparison harness, which checks them
/// before it measures anything.
#[test]
#[cfg(feature = "bench")]
fn bench_flags_are_checked() {
    gesta()
        .args(["bench", "--only", "W9"])
        .assert()
        .code(1)
        .stderr("gesta: unknown workload \"W9\"; known: W1,W2,W3,W4,W5,R1,R2,R3,R4,R5,R6,R7,S1,O1,M1,D1\n");
    gesta()
        .args(["bench", "--quick", "--budget", "0"])
        .assert()
        .code(1)
        .stderr("gesta: --budget must be positive\n");
    gesta()
        .args(["bench", "--server", "--only", "W5"])
        .assert()
        .code(1)
        .stderr(contains("--server runs W1, W2, W3, W4, R2 only"));
    gesta()
        .args(["bench", "--server", "--connections", "0"])
        .assert()
        .code(1)
        .stderr("gesta: --connections must be at least 1\n");
    usage_error(&["bench", "--connections", "4"], "--server");
}

/// Without the `bench` feature, `bench` says how to get the harness.
#[test]
#[cfg(not(feature = "bench"))]
fn bench_flags_are_checked() {
    gesta()
        .args(["bench", "--quick"])
        .assert()
        .code(1)
        .stderr(contains("--features bench"));
}

#[test]
fn usage_errors_and_help() {
    usage_error(
        &["frobnicate"],
        "unrecognized subcommand 'frobnicate' (see gesta --help)",
    );
    usage_error(&["read"], "<DIR> (see gesta read --help)");
    usage_error(&["read", "x", "--limit", "many"], "invalid value 'many'");
    usage_error(
        &["read", "x", "--frobnicate"],
        "unexpected argument '--frobnicate' found (see gesta read --help)",
    );
    usage_error(&["append", "x", "--after", "3"], "--condition");
    usage_error(
        &["append", "x", "--batch", "0"],
        "invalid value '0' for '--batch <N>'",
    );
    usage_error(
        &["append", "x", "--after", "abc"],
        "invalid value 'abc' for '--after",
    );
    bench_flags_are_checked();
    gesta()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Examples:"))
        .stdout(contains("gesta demo"));
    for sub in [
        "append", "read", "stats", "verify", "export", "import", "demo", "bench",
    ] {
        if sub == "bench" && cfg!(not(feature = "bench")) {
            continue;
        }
        gesta()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(contains("Examples:"));
    }
}

/// Failures name the real problem, in words.
#[test]
fn failures_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    // A condition after a position the store never had (head 7).
    gesta()
        .args([
            "append",
            d,
            "--condition",
            r#"{"items":[{"types":["Ping"]}]}"#,
            "--after",
            "100",
        ])
        .write_stdin(r#"{"type":"Late"}"#)
        .assert()
        .code(1)
        .stderr("gesta: line 1: invalid input: the condition's after 100 is beyond the head 7\n");
    // An expected revision of a stream without events.
    gesta()
        .args(["append", d, "--expected-revision", "s=5"])
        .write_stdin(r#"{"type":"A","stream":"s"}"#)
        .assert()
        .code(3)
        .stderr("gesta: line 1: stream \"s\" has no events, but the append expected revision 5\n");
    // The same id twice in one batch.
    let id = "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a00";
    gesta()
        .args(["append", d, "--batch", "2"])
        .write_stdin(format!(
            "{{\"type\":\"A\",\"id\":\"{id}\"}}\n{{\"type\":\"B\",\"id\":\"{id}\"}}\n"
        ))
        .assert()
        .code(1)
        .stderr(format!(
            "gesta: lines 1–2: invalid input: event id {id} appears twice in the batch (at indices 0 and 1)\n"
        ));
    // Nothing of the refused appends is in the store.
    assert_eq!(
        positions(&ok(&["read", d], "")),
        (1..=7).collect::<Vec<_>>()
    );
    // A store path that is a file, and a directory that is not a store.
    let file = tmp.path().join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    gesta()
        .args(["append", file.to_str().unwrap()])
        .write_stdin(r#"{"type":"A"}"#)
        .assert()
        .code(1)
        .stderr(format!(
            "gesta: invalid input: {} is not a directory\n",
            file.display()
        ));
    gesta()
        .args(["append", tmp.path().to_str().unwrap()])
        .write_stdin(r#"{"type":"A"}"#)
        .assert()
        .code(1)
        .stderr(contains("is not a Gesta store: it holds \"events.jsonl\""));
    assert!(!tmp.path().join("LOCK").exists());
}

/// `read --stream` reads a stream by revision; `get --id` finds an event by
/// its id.
#[test]
fn read_a_stream_and_get_an_event_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    for i in 0..4 {
        ok(
            &["append", d],
            &format!(r#"{{"type":"CourseRenamed","stream":"course-c1","data":{{"n":{i}}}}}"#),
        );
    }
    // course-c1: revision 0 at position 1, 1 at 6, then 2..=5 at 8..=11.
    let revisions = |out: &str| -> Vec<u64> {
        lines(out)
            .iter()
            .map(|v| v["revision"].as_u64().expect("a revision"))
            .collect()
    };
    let out = ok(&["read", d, "--stream", "course-c1"], "");
    assert_eq!(revisions(&out), [0, 1, 2, 3, 4, 5]);
    assert_eq!(positions(&out), [1, 6, 8, 9, 10, 11]);
    let out = ok(
        &[
            "read",
            d,
            "--stream",
            "course-c1",
            "--after",
            "1",
            "--limit",
            "2",
        ],
        "",
    );
    assert_eq!(revisions(&out), [2, 3]);
    let out = ok(
        &[
            "read",
            d,
            "--stream",
            "course-c1",
            "--after",
            "1",
            "--before",
            "4",
        ],
        "",
    );
    assert_eq!(revisions(&out), [2, 3]);
    let out = ok(
        &[
            "read",
            d,
            "--stream",
            "course-c1",
            "--backwards",
            "--before",
            "3",
        ],
        "",
    );
    assert_eq!(revisions(&out), [2, 1, 0]);
    let out = ok(
        &[
            "read",
            d,
            "--stream",
            "course-c1",
            "--backwards",
            "--after",
            "2",
        ],
        "",
    );
    assert_eq!(revisions(&out), [5, 4, 3]);
    let out = ok(&["read", d, "--stream", "course-c1", "--last"], "");
    assert_eq!(revisions(&out), [5]);
    assert_eq!(ok(&["read", d, "--stream", "nobody"], ""), "");
    usage_error(&["read", d, "--stream", "s", "--tag", "t"], "--stream");

    let out = ok(
        &["get", d, "--id", "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"],
        "",
    );
    assert_eq!(positions(&out), [1]);
    assert_eq!(lines(&out)[0]["type"], "CourseDefined");
    gesta()
        .args(["get", d, "--id", "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a00"])
        .assert()
        .code(1)
        .stderr("gesta: no event has id 0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a00\n");
    usage_error(&["get", d, "--id", "seven"], "--id \"seven\" is not a UUID");

    // --since: the events committed at or after a time.
    let all = lines(&ok(&["read", d], ""));
    let times: Vec<&str> = all
        .iter()
        .map(|v| v["timestamp"].as_str().unwrap())
        .collect();
    for (i, t) in times.iter().enumerate() {
        let want: Vec<u64> = all
            .iter()
            .zip(&times)
            .filter(|(_, u)| *u >= t)
            .map(|(v, _)| v["position"].as_u64().unwrap())
            .collect();
        assert_eq!(
            positions(&ok(&["read", d, "--since", t], "")),
            want,
            "since event {i}"
        );
    }
    assert_eq!(ok(&["read", d, "--since", "2999-01-01T00:00:00Z"], ""), "");
    assert_eq!(
        positions(&ok(
            &["read", d, "--since", "2000-01-01T00:00:00Z", "--limit", "2"],
            ""
        )),
        [1, 2]
    );
    usage_error(
        &["read", d, "--since", "yesterday"],
        "--since \"yesterday\"",
    );
}

#[test]
fn looking_at_a_missing_store_does_not_create_one() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = store(&tmp, "nothing-here");
    let m = missing.to_str().unwrap();
    for sub in ["read", "stats", "verify", "export"] {
        gesta()
            .args([sub, m])
            .assert()
            .code(1)
            .stderr(contains("no Gesta store at"));
    }
    assert!(!missing.exists());
}

#[test]
fn the_demo_runs_and_keeps_its_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = store(&tmp, "demo");
    let d = dir.to_str().unwrap();
    gesta()
        .args(["demo", d])
        .assert()
        .success()
        .stdout(contains("every rule held under concurrency: yes"))
        .stdout(contains("Databases                    3/3 seats"));
    // Every seat of every course was taken, and never more.
    let subscribed = |course: &str| {
        positions(&ok(
            &[
                "read",
                d,
                "--type",
                "StudentSubscribed",
                "--tag",
                &format!("course:{course}"),
            ],
            "",
        ))
        .len()
    };
    assert_eq!(subscribed("databases"), 3);
    assert_eq!(subscribed("rust"), 4);
    assert_eq!(subscribed("history"), 3);
    gesta().args(["verify", d]).assert().success();
    // A second run refuses the non-empty store.
    gesta()
        .args(["demo", d])
        .assert()
        .code(1)
        .stderr(contains("needs a new or empty store"));
    gesta()
        .arg("demo")
        .assert()
        .success()
        .stdout(contains("removed now"));
}

#[test]
fn export_to_a_file_and_import_from_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let file = tmp.path().join("events.jsonl");
    let f = file.to_str().unwrap();
    gesta()
        .args(["export", d, "--output", f])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("exported 7 events"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        ok(&["read", d], "")
    );
    let copy = store(&tmp, "copy");
    let c = copy.to_str().unwrap();
    gesta()
        .args(["import", c, f, "--batch", "1000"])
        .assert()
        .success()
        .stderr(contains("imported 7 events"))
        .stderr(contains("head 7"));
    // Importing again is refused at the event with an id: its id is
    // committed, in a batch with other events. Nothing is appended.
    gesta()
        .args(["import", c, f, "--batch", "1"])
        .assert()
        .code(1)
        .stderr(contains(
            "line 1: event id 0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69 is already committed",
        ));
    // A file whose events all have ids imports idempotently, batch by batch.
    let with_ids = tmp.path().join("ids.jsonl");
    std::fs::write(
        &with_ids,
        (1..=5)
            .map(|i| {
                format!("{{\"type\":\"T\",\"id\":\"00000000-0000-0000-0000-00000000000{i}\"}}\n")
            })
            .collect::<String>(),
    )
    .unwrap();
    for new in [5, 0] {
        gesta()
            .args(["import", c, with_ids.to_str().unwrap(), "--batch", "2"])
            .assert()
            .success()
            .stderr(contains(format!("{new} new, head 12")));
    }
    gesta()
        .args([
            "import",
            c,
            tmp.path().join("missing.jsonl").to_str().unwrap(),
        ])
        .assert()
        .code(1)
        .stderr(contains("cannot open"));
    // An empty input appends nothing.
    gesta()
        .args(["append", c])
        .write_stdin("")
        .assert()
        .success()
        .stdout("");
    gesta()
        .args(["import", c])
        .write_stdin("\n\n")
        .assert()
        .success();
    assert_eq!(positions(&ok(&["read", c, "--last"], "")), [12]);
}

#[test]
fn verify_reports_a_torn_tail_without_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let segment = dir.join("wal").join("00000000000000000001.seg");
    let bytes = std::fs::read(&segment).unwrap();
    let end = record_offset(&bytes, 3);
    // The start of a frame whose checksum fails, then nothing: an append
    // that a crash interrupted.
    let mut torn = bytes.clone();
    torn[end..end + 8].copy_from_slice(&[0xff; 8]);
    std::fs::write(&segment, &torn).unwrap();
    gesta()
        .args(["verify", d])
        .assert()
        .success()
        .stdout(contains("ok: 7 events in 3 records"))
        .stdout(contains(format!(
            "note: a torn write of 8 bytes at offset {end} of {}",
            segment.display()
        )));
    gesta()
        .args(["stats", d, "--json"])
        .assert()
        .success()
        .stdout(contains(format!("\"torn_tail_offset\":{end}")));
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        torn,
        "verify changes nothing"
    );
    // Opening the store cuts it off; then it verifies clean.
    ok(&["read", d], "");
    gesta()
        .args(["verify", d])
        .assert()
        .success()
        .stdout(contains("note:").not());
}

/// `streams`, `types` and `tags` list names with their counts in byte
/// order, by prefix and a page at a time, as text or JSON lines; bad flags
/// are usage errors and a missing store is not created.
#[test]
fn streams_types_and_tags_are_listed_with_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let text = |rows: &[(u64, &str)]| -> String {
        rows.iter()
            .map(|(n, name)| format!("{n:>12}  {name}\n"))
            .collect()
    };
    assert_eq!(
        ok(&["streams", d], ""),
        text(&[(2, "course-c1"), (1, "course-c2")])
    );
    assert_eq!(
        ok(&["types", d], ""),
        text(&[
            (2, "CourseDefined"),
            (1, "CourseRenamed"),
            (1, "Ping"),
            (3, "StudentSubscribed")
        ])
    );
    assert_eq!(
        ok(&["tags", d], ""),
        text(&[
            (4, "course:c1"),
            (2, "course:c2"),
            (2, "student:s1"),
            (1, "student:s2")
        ])
    );
    assert_eq!(
        ok(&["tags", d, "--prefix", "student:"], ""),
        text(&[(2, "student:s1"), (1, "student:s2")])
    );
    assert_eq!(
        ok(
            &["types", d, "--prefix", "Course", "--after", "CourseDefined"],
            ""
        ),
        text(&[(1, "CourseRenamed")])
    );
    assert_eq!(ok(&["types", d, "--prefix", "Nothing"], ""), "");
    // Pages: --limit, then --after the last name of the page.
    let page = lines(&ok(&["tags", d, "--limit", "2", "--json"], ""));
    assert_eq!(
        page,
        [
            serde_json::json!({"name": "course:c1", "count": 4}),
            serde_json::json!({"name": "course:c2", "count": 2}),
        ]
    );
    let next = lines(&ok(
        &["tags", d, "--limit", "2", "--after", "course:c2", "--json"],
        "",
    ));
    assert_eq!(
        next,
        [
            serde_json::json!({"name": "student:s1", "count": 2}),
            serde_json::json!({"name": "student:s2", "count": 1}),
        ]
    );
    let last = ok(
        &["tags", d, "--limit", "2", "--after", "student:s2", "--json"],
        "",
    );
    assert_eq!(last, "");
    assert_eq!(
        lines(&ok(&["streams", d, "--json", "--prefix", "course-c2"], "")),
        [serde_json::json!({"name": "course-c2", "count": 1})]
    );
    // The listings agree with the events after a compaction and appends.
    ok(&["compact", d], "");
    ok(
        &["append", d],
        "{\"type\":\"Ping\",\"tags\":[\"course:c2\"],\"stream\":\"course-c2\"}\n",
    );
    assert_eq!(
        ok(&["streams", d], ""),
        text(&[(2, "course-c1"), (2, "course-c2")])
    );
    assert_eq!(
        ok(&["tags", d, "--prefix", "course:"], ""),
        text(&[(4, "course:c1"), (3, "course:c2")])
    );
    assert_eq!(ok(&["types", d, "--prefix", "P"], ""), text(&[(2, "Ping")]));
    // Bad flags.
    for sub in ["streams", "types", "tags"] {
        usage_error(&[sub, d, "--limit", "0"], "--limit");
        usage_error(
            &[sub, d, "--limit", "10001"],
            "is not a number from 1 to 10000",
        );
        usage_error(&[sub, d, "--limit", "many"], "--limit");
        let long = "x".repeat(1025);
        usage_error(
            &[sub, d, "--prefix", &long],
            "prefix is 1025 bytes, the limit is 1024",
        );
        usage_error(
            &[sub, d, "--after", &long],
            "after is 1025 bytes, the limit is 1024",
        );
        usage_error(&[sub], "DIR");
    }
    let missing = store(&tmp, "nothing-here");
    let m = missing.to_str().unwrap();
    for sub in ["streams", "types", "tags"] {
        gesta()
            .args([sub, m])
            .assert()
            .code(1)
            .stderr(contains("no Gesta store at"));
    }
    assert!(!missing.exists());
}

/// `tag` adds tags to committed events by position or by query, without
/// moving any position; `read` and `tags` see them, and `audit` lists
/// each operation with its target in the form `read --query` takes.
#[test]
fn tag_adds_tags_by_position_and_by_query_and_audit_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let tagged = |args: &[&str]| {
        let mut all = vec!["tag", d];
        all.extend_from_slice(args);
        ok(&all, "")
    };
    // By positions (repeats count once), by --tag, by --type, by --query.
    assert_eq!(
        tagged(&[
            "--add",
            "gdpr:s1",
            "--position",
            "5",
            "--position",
            "3",
            "--position",
            "5"
        ]),
        "targeted 2 events, tagged 2\n"
    );
    assert_eq!(
        tagged(&[
            "--add",
            "gdpr:s1",
            "--add",
            "reviewed",
            "--tag",
            "student:s1",
            "--json"
        ]),
        "{\"targeted\":2,\"tagged\":2}\n"
    );
    assert_eq!(
        tagged(&[
            "--add",
            "reviewed",
            "--type",
            "Ping",
            "--type",
            "CourseRenamed"
        ]),
        "targeted 2 events, tagged 2\n"
    );
    let legacy = r#"{"items":[{"types":["CourseDefined"],"tags":["course:c2"]}]}"#;
    assert_eq!(
        tagged(&["--add", "legacy", "--query", legacy, "--json"]),
        "{\"targeted\":1,\"tagged\":1}\n"
    );
    // An event that carries the tag already keeps it, once.
    assert_eq!(
        tagged(&["--add", "reviewed", "--position", "3"]),
        "targeted 1 event, tagged 0\n"
    );

    // Reads and queries see the added tags, after the event's own.
    let gdpr = lines(&ok(&["read", d, "--tag", "gdpr:s1"], ""));
    assert_eq!(
        gdpr.iter()
            .map(|e| e["position"].clone())
            .collect::<Vec<_>>(),
        [3, 5]
    );
    assert_eq!(
        gdpr[0]["tags"],
        serde_json::json!(["course:c1", "student:s1", "gdpr:s1", "reviewed"])
    );
    assert_eq!(
        positions(&ok(&["read", d, "--tag", "reviewed"], "")),
        [3, 5, 6, 7]
    );
    assert_eq!(
        lines(&ok(&["read", d, "--type", "Ping"], ""))[0]["tags"],
        serde_json::json!(["reviewed"])
    );
    assert_eq!(positions(&ok(&["read", d, "--query", legacy], "")), [2]);
    assert_eq!(
        positions(&ok(
            &["read", d, "--tag", "legacy", "--tag", "course:c2"],
            ""
        )),
        [2]
    );
    assert_eq!(
        ok(&["tags", d, "--prefix", "reviewed", "--json"], ""),
        "{\"name\":\"reviewed\",\"count\":4}\n"
    );
    // Positions never move: the next event is the 8th.
    assert_eq!(
        ok(&["append", d], "{\"type\":\"Ping\"}\n"),
        "{\"first\":8,\"last\":8}\n"
    );

    // The audit trail, as text…
    let text = ok(&["audit", d], "");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 5, "{text}");
    for (i, row) in rows.iter().enumerate() {
        assert!(row.starts_with(&format!("{:>6}  ", i + 1)), "{row}");
        assert!(row.contains("Z  head 7  add_tags ["), "{row}");
    }
    assert!(
        rows[0].ends_with("add_tags [\"gdpr:s1\"]  positions [5,3,5]  targeted 2, tagged 2"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].ends_with(
            "add_tags [\"gdpr:s1\",\"reviewed\"]  query {\"items\":[{\"tags\":[\"student:s1\"]}]}  targeted 2, tagged 2"
        ),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].ends_with(
            "query {\"items\":[{\"types\":[\"Ping\",\"CourseRenamed\"]}]}  targeted 2, tagged 2"
        ),
        "{}",
        rows[2]
    );
    assert!(
        rows[3].ends_with(&format!("query {legacy}  targeted 1, tagged 1")),
        "{}",
        rows[3]
    );
    assert!(
        rows[4].ends_with("positions [3]  targeted 1, tagged 0"),
        "{}",
        rows[4]
    );
    // …and as JSON lines, whose query targets `read --query` takes.
    let entries = lines(&ok(&["audit", d, "--json"], ""));
    assert_eq!(entries.len(), 5);
    let first = &entries[0];
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["head"], 7);
    assert_eq!(first["operation"], "add_tags");
    assert_eq!(first["tags"], serde_json::json!(["gdpr:s1"]));
    assert_eq!(first["target"], serde_json::json!({"positions": [5, 3, 5]}));
    assert_eq!(
        first["result"],
        serde_json::json!({"targeted": 2, "tagged": 2})
    );
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        times.iter().all(|t| t.len() == 27 && t.ends_with('Z')),
        "{times:?}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let events = lines(&ok(&["read", d], ""));
    assert!(times[0] >= events[6]["timestamp"].as_str().unwrap());
    assert_eq!(
        entries[3]["target"],
        serde_json::json!({"query": {"items": [{"types": ["CourseDefined"], "tags": ["course:c2"]}]}})
    );
    let shown = entries[2]["target"]["query"].to_string();
    assert_eq!(
        positions(&ok(&["read", d, "--query", &shown], "")),
        [6, 7, 8]
    );
    // Pages.
    let page = lines(&ok(
        &["audit", d, "--after", "2", "--limit", "2", "--json"],
        "",
    ));
    assert_eq!(page, entries[2..4]);
    assert_eq!(ok(&["audit", d, "--after", "5"], ""), "");
    assert_eq!(
        ok(&["audit", d, "--limit", "1"], ""),
        format!("{}\n", rows[0])
    );
}

/// `tag` and `audit` refuse bad flags as usage errors (status 2); a
/// position the store does not have, or a bad tag, is the store's typed
/// refusal (status 1) and changes nothing.
#[test]
fn tag_and_audit_refuse_what_they_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    usage_error(
        &["tag", d, "--position", "1"],
        "required arguments were not provided: --add <TAG> (see gesta tag --help)",
    );
    usage_error(
        &["tag", d, "--add", "x"],
        "required arguments were not provided: <--position <P>|--type <TYPE>|--tag <TAG>|--query <QUERY_JSON>>",
    );
    usage_error(
        &["tag", d, "--add", "x", "--position", "abc"],
        "invalid value 'abc' for '--position <P>': \"abc\" is not a position",
    );
    usage_error(
        &["tag", d, "--add", "x", "--position", "0"],
        "invalid value '0' for '--position <P>': \"0\" is not a position",
    );
    usage_error(
        &[
            "tag",
            d,
            "--add",
            "x",
            "--position",
            "1",
            "--tag",
            "course:c1",
        ],
        "cannot be used with",
    );
    usage_error(
        &["tag", d, "--add", "x", "--position", "1", "--query", "{}"],
        "cannot be used with",
    );
    usage_error(
        &["tag", d, "--add", "x", "--tag", "t", "--query", "{}"],
        "cannot be used with",
    );
    usage_error(&["tag", "--add", "x", "--position", "1"], "<DIR>");
    usage_error(
        &["audit", d, "--limit", "0"],
        "is not a number from 1 to 10000",
    );
    usage_error(
        &["audit", d, "--after", "abc"],
        "invalid value 'abc' for '--after <N>'",
    );
    usage_error(&["audit"], "<DIR> (see gesta audit --help)");

    gesta()
        .args([
            "tag",
            d,
            "--add",
            "x",
            "--position",
            "3",
            "--position",
            "99",
        ])
        .assert()
        .code(1)
        .stderr(contains("gesta: invalid input: position 99"));
    gesta()
        .args(["tag", d, "--add", "", "--position", "3"])
        .assert()
        .code(1)
        .stderr(contains("gesta: invalid input: tag \"\""));
    gesta()
        .args([
            "tag",
            d,
            "--add",
            "x",
            "--query",
            r#"{"items":[{"tags":[""]}]}"#,
        ])
        .assert()
        .code(1)
        .stderr(contains("invalid input: query item 0"));
    gesta()
        .args(["tag", d, "--add", "x", "--query", "{items"])
        .assert()
        .code(1)
        .stderr(contains("--query is not a query, column 2"));
    // Nothing changed, and nothing was recorded.
    assert_eq!(ok(&["read", d, "--tag", "x"], ""), "");
    assert_eq!(ok(&["audit", d], ""), "");

    let missing = store(&tmp, "nothing-here");
    let m = missing.to_str().unwrap();
    for args in [
        &["tag", m, "--add", "x", "--position", "1"][..],
        &["audit", m],
    ] {
        gesta()
            .args(args)
            .assert()
            .code(1)
            .stderr(contains("no Gesta store at"));
    }
    assert!(!missing.exists());
    for sub in ["tag", "audit"] {
        gesta()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(contains("Examples:"));
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// `read`'s line for an event without its data and metadata, whichever
/// form they were printed in.
fn without_payload(event: &serde_json::Value) -> serde_json::Value {
    let mut event = event.clone();
    let fields = event.as_object_mut().unwrap();
    for key in ["data", "data_base64", "metadata", "metadata_base64"] {
        fields.remove(key);
    }
    event
}

/// `redact` erases the data and metadata of committed events by position
/// or by query; every read then prints them without either, all else as
/// it was; `audit` lists each redaction; `compact` takes the bytes out of
/// the store's files.
#[test]
fn redact_erases_data_and_metadata_by_position_and_by_query_and_audit_lists_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let before = lines(&ok(&["read", d], ""));
    assert_eq!(before[3]["metadata"], serde_json::json!({"by": "import"}));
    assert!(!files_holding(&dir, b"Databases").is_empty());
    let redacted = |args: &[&str]| {
        let mut all = vec!["redact", d];
        all.extend_from_slice(args);
        ok(&all, "")
    };
    ok(&["tag", d, "--add", "gdpr:s1", "--tag", "student:s1"], "");

    // By position (repeats count once; data and metadata both go)…
    assert_eq!(
        redacted(&["--position", "4", "--yes", "--position", "4"]),
        "targeted 1 event, redacted 1\n"
    );
    // …by a tag, added after the fact (JSON data and base64 data)…
    assert_eq!(
        redacted(&["--tag", "gdpr:s1", "--yes", "--json"]),
        "{\"targeted\":2,\"redacted\":2}\n"
    );
    // …by --query (an event with a stream and an id)…
    let first = r#"{"items":[{"types":["CourseDefined"],"tags":["course:c1"]}]}"#;
    assert_eq!(
        redacted(&["--query", first, "--yes"]),
        "targeted 1 event, redacted 1\n"
    );
    // …and again: an event already redacted counts as targeted only.
    assert_eq!(
        redacted(&["--type", "StudentSubscribed", "--yes", "--json"]),
        "{\"targeted\":3,\"redacted\":0}\n"
    );

    // Every read prints them without data and metadata; all else stays,
    // and the other events are untouched.
    let after = lines(&ok(&["read", d], ""));
    assert_eq!(after.len(), 7);
    for (i, (was, now)) in before.iter().zip(&after).enumerate() {
        let position = i as u64 + 1;
        if [1, 3, 4, 5].contains(&position) {
            let mut expected = without_payload(was);
            if [3, 5].contains(&position) {
                expected["tags"]
                    .as_array_mut()
                    .unwrap()
                    .push("gdpr:s1".into());
            }
            assert_eq!(*now, expected, "position {position}");
            for key in ["data", "data_base64", "metadata", "metadata_base64"] {
                assert!(now.get(key).is_none(), "position {position}: {now}");
            }
        } else {
            assert_eq!(now, was, "position {position}");
        }
    }
    assert_eq!(after[0]["id"], "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69");
    assert_eq!(
        lines(&ok(
            &["get", d, "--id", "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"],
            ""
        )),
        [after[0].clone()]
    );
    let stream = lines(&ok(&["read", d, "--stream", "course-c1"], ""));
    assert_eq!(stream, [after[0].clone(), after[5].clone()]);
    assert_eq!(
        positions(&ok(&["read", d, "--tag", "student:s1"], "")),
        [3, 5]
    );
    assert_eq!(
        ok(&["types", d, "--prefix", "StudentSubscribed", "--json"], ""),
        "{\"name\":\"StudentSubscribed\",\"count\":3}\n"
    );
    let exported = lines(&ok(&["export", d], ""));
    assert_eq!(exported[3], after[3]);
    // Positions never move: the next event is the 8th.
    assert_eq!(
        ok(&["append", d], "{\"type\":\"Ping\"}\n"),
        "{\"first\":8,\"last\":8}\n"
    );

    // The audit trail: the target as given and the counts, as text…
    let text = ok(&["audit", d], "");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 5, "{text}");
    assert!(
        rows[0].contains("  add_tags [\"gdpr:s1\"]  "),
        "{}",
        rows[0]
    );
    let expected = [
        "redact  positions [4,4]  targeted 1, redacted 1".to_owned(),
        "redact  query {\"items\":[{\"tags\":[\"gdpr:s1\"]}]}  targeted 2, redacted 2".to_owned(),
        format!("redact  query {first}  targeted 1, redacted 1"),
        "redact  query {\"items\":[{\"types\":[\"StudentSubscribed\"]}]}  targeted 3, redacted 0"
            .to_owned(),
    ];
    for (i, (row, tail)) in rows[1..].iter().zip(&expected).enumerate() {
        assert!(row.starts_with(&format!("{:>6}  ", i + 2)), "{row}");
        assert!(row.ends_with(&format!("Z  head 7  {tail}")), "{row}");
    }
    // …and as JSON lines, without tags, with "redacted" for "tagged".
    let entries = lines(&ok(&["audit", d, "--json"], ""));
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["operation"], "add_tags");
    let second = entries[1].as_object().unwrap();
    assert_eq!(
        second.keys().collect::<Vec<_>>(),
        [
            "head",
            "operation",
            "result",
            "sequence",
            "target",
            "timestamp"
        ]
    );
    assert_eq!(second["sequence"], 2);
    assert_eq!(second["head"], 7);
    assert_eq!(second["operation"], "redact");
    assert_eq!(second["target"], serde_json::json!({"positions": [4, 4]}));
    assert_eq!(
        second["result"],
        serde_json::json!({"targeted": 1, "redacted": 1})
    );
    assert_eq!(
        entries[3]["target"],
        serde_json::json!({"query": {"items": [{"types": ["CourseDefined"], "tags": ["course:c1"]}]}})
    );
    assert_eq!(
        entries[4]["result"],
        serde_json::json!({"targeted": 3, "redacted": 0})
    );
    // The trail never holds the data.
    assert!(!text.contains("Databases") && !text.contains("import"));

    // Compacting takes the bytes out of the store's files, and the store
    // checks out.
    ok(&["compact", d], "");
    gesta().args(["verify", d]).assert().success();
    for erased in [
        &b"Databases"[..],
        b"\"by\":\"import\"",
        b"\"student\":\"s1\"",
    ] {
        assert_eq!(
            files_holding(&dir, erased),
            Vec::<PathBuf>::new(),
            "{}",
            String::from_utf8_lossy(erased)
        );
    }
    assert_eq!(lines(&ok(&["read", d], ""))[..7], after[..]);
    assert!(!files_holding(&dir, b"[1,2,3]").is_empty());
}

/// `redact` asks for --yes and refuses bad flags as usage errors (status
/// 2); a position the store does not have is the store's typed refusal
/// (status 1); either way nothing changes and nothing is recorded.
#[test]
fn redact_refuses_what_it_cannot_do_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let before = ok(&["read", d], "");
    usage_error(
        &["redact", d, "--position", "3"],
        "cannot be undone: add --yes to do it (see gesta redact --help)",
    );
    usage_error(&["redact", d, "--query", "{}", "--json"], "add --yes");
    usage_error(
        &["redact", d, "--yes"],
        "required arguments were not provided: <--position <P>|--type <TYPE>|--tag <TAG>|--query <QUERY_JSON>>",
    );
    usage_error(
        &["redact", d, "--position", "abc", "--yes"],
        "invalid value 'abc' for '--position <P>': \"abc\" is not a position",
    );
    usage_error(
        &["redact", d, "--position", "0", "--yes"],
        "invalid value '0' for '--position <P>'",
    );
    usage_error(
        &[
            "redact",
            d,
            "--position",
            "1",
            "--tag",
            "course:c1",
            "--yes",
        ],
        "cannot be used with",
    );
    usage_error(
        &["redact", d, "--tag", "t", "--query", "{}", "--yes"],
        "cannot be used with",
    );
    usage_error(&["redact", "--position", "1", "--yes"], "<DIR>");

    gesta()
        .args(["redact", d, "--position", "3", "--position", "99", "--yes"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains(
            "gesta: invalid input: position 99 is not a committed position (the head is 7)",
        ));
    gesta()
        .args([
            "redact",
            d,
            "--query",
            r#"{"items":[{"tags":[""]}]}"#,
            "--yes",
        ])
        .assert()
        .code(1)
        .stderr(contains("invalid input: query item 0"));
    gesta()
        .args(["redact", d, "--query", "{items", "--yes"])
        .assert()
        .code(1)
        .stderr(contains("--query is not a query, column 2"));
    // Nothing changed, and nothing was recorded.
    assert_eq!(ok(&["read", d], ""), before);
    assert_eq!(ok(&["audit", d], ""), "");

    let missing = store(&tmp, "nothing-here");
    let m = missing.to_str().unwrap();
    gesta()
        .args(["redact", m, "--position", "1", "--yes"])
        .assert()
        .code(1)
        .stderr(contains("no Gesta store at"));
    assert!(!missing.exists());
    gesta()
        .args(["redact", "--help"])
        .assert()
        .success()
        .stdout(contains("Examples:"))
        .stdout(contains("cannot be undone"))
        .stdout(contains("position, type, tags"))
        .stdout(contains("gesta compact"));
    gesta()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("gesta redact ./events"));
    gesta()
        .args(["serve", "--help"])
        .assert()
        .success()
        .stdout(contains("redaction"));
}

/// `remove`, `delete-stream`, `truncate-stream` and `retention`: nothing
/// without --yes (status 2); then the events are gone from `read`, `get`,
/// the stream and the listings, positions and revisions stay, `audit`
/// lists each operation, and rules are set, listed, enforced and cleared.
#[test]
fn remove_delete_truncate_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    // Streams: course-c1 at 1 (revision 0) and 6 (revision 1); course-c2 at 2.
    gesta()
        .args(["delete-stream", d, "course-c2"])
        .assert()
        .code(2);
    assert_eq!(positions(&ok(&["read", d], "")), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        ok(&["delete-stream", d, "course-c2", "--yes"], ""),
        "targeted 1 event, removed 1\n"
    );
    assert_eq!(
        ok(
            &[
                "truncate-stream",
                d,
                "course-c1",
                "--before",
                "1",
                "--yes",
                "--json"
            ],
            ""
        ),
        "{\"targeted\":1,\"removed\":1}\n"
    );
    assert_eq!(
        positions(&ok(&["read", d, "--stream", "course-c1"], "")),
        [6]
    );
    // A removed event's id finds nothing.
    gesta()
        .args(["get", d, "--id", "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"])
        .assert()
        .code(1);
    assert_eq!(
        ok(&["remove", d, "--tag", "student:s2", "--yes"], ""),
        "targeted 1 event, removed 1\n"
    );
    assert_eq!(positions(&ok(&["read", d], "")), [3, 5, 6, 7]);
    assert_eq!(
        ok(&["streams", d, "--json"], ""),
        "{\"name\":\"course-c1\",\"count\":1}\n"
    );
    // Rules: set, listed, enforced, cleared.
    assert_eq!(
        ok(
            &[
                "retention",
                d,
                "--type",
                "StudentSubscribed",
                "--max-count",
                "1"
            ],
            ""
        ),
        ""
    );
    assert_eq!(
        ok(
            &[
                "retention",
                d,
                "--stream",
                "course-c1",
                "--max-age",
                "30days"
            ],
            ""
        ),
        ""
    );
    assert_eq!(
        ok(&["retention", d], ""),
        "query {\"items\":[{\"types\":[\"StudentSubscribed\"]}]} max_count 1\n\
         stream \"course-c1\" max_age 30days\n"
    );
    assert_eq!(
        ok(&["retention", d, "--enforce"], ""),
        "targeted 1 event, removed 1\n"
    );
    assert_eq!(positions(&ok(&["read", d], "")), [5, 6, 7]);
    ok(&["retention", d, "--stream", "course-c1", "--clear"], "");
    assert_eq!(
        ok(&["retention", d, "--json"], ""),
        "{\"query\":{\"items\":[{\"types\":[\"StudentSubscribed\"]}]},\"max_count\":1}\n"
    );
    gesta()
        .args(["retention", d, "--stream", "course-c1"])
        .assert()
        .code(2);
    let audit = ok(&["audit", d], "");
    let ops: Vec<&str> = audit
        .lines()
        .map(|l| {
            let after_head = l.split_once("  head ").map_or("", |(_, rest)| rest);
            after_head.split("  ").nth(1).unwrap_or_default()
        })
        .collect();
    assert_eq!(
        ops,
        [
            "delete_stream",
            "truncate_stream",
            "remove",
            "set_retention",
            "set_retention",
            "retention",
            "set_retention"
        ],
        "{audit}"
    );
    // Positions stay taken: the next event is the 8th.
    assert_eq!(
        ok(&["append", d], "{\"type\":\"Ping\"}\n"),
        "{\"first\":8,\"last\":8}\n"
    );
    gesta().args(["verify", d]).assert().success();
}

/// With its MANIFEST damaged too, a store's index runs still prove which
/// records were committed: `verify --repair` refuses to cut off a damaged
/// record they cover (a torn write would be cut), and the event stays;
/// `verify` calls it damage, not a torn write.
#[test]
fn repair_never_cuts_a_record_the_index_runs_prove_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(&["append", d], EVENTS);
    ok(&["compact", d], "");
    let segment = dir.join("wal").join("00000000000000000001.seg");
    let bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    flip(&segment, end - 2);
    let manifest = dir.join("MANIFEST");
    let len = std::fs::metadata(&manifest).unwrap().len() as usize;
    flip(&manifest, len - 1);
    let verified = gesta().args(["verify", d]).assert().code(1);
    let said = String::from_utf8_lossy(&verified.get_output().stderr).to_string()
        + &String::from_utf8_lossy(&verified.get_output().stdout);
    assert!(said.contains("known to be committed"), "{said}");
    gesta().args(["verify", d, "--repair"]).assert().failure();
    // Nothing was cut: the damaged segment is as it was.
    let after = std::fs::read(&segment).unwrap();
    assert_eq!(after.iter().rposition(|&b| b != 0), Some(end));
}

/// A lost newest segment is found: the segment before it was trimmed and
/// got its offset table, which a rollover writes only once the next
/// segment exists. `verify` reports it, and opening the store refuses
/// rather than append into the old segment and hand the lost positions
/// to new events.
#[test]
fn a_lost_newest_segment_is_found_not_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(&["append", d], EVENTS);
    ok(&["remove", d, "--position", "1", "--yes"], "");
    // Erasing the removed event seals the active segment.
    ok(&["compact", d], "");
    ok(&["append", d], "{\"type\":\"D\"}\n");
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    let verified = gesta().args(["verify", d]).assert().code(1);
    let said = String::from_utf8_lossy(&verified.get_output().stderr).to_string()
        + &String::from_utf8_lossy(&verified.get_output().stdout);
    assert!(said.contains("segment is missing"), "{said}");
    let opened = gesta()
        .args(["append", d])
        .write_stdin("{\"type\":\"E\"}\n")
        .assert()
        .failure();
    let said = String::from_utf8_lossy(&opened.get_output().stderr);
    assert!(said.contains("segment is missing"), "{said}");
}

/// An export of a store with removed events says so: importing it cannot
/// keep the positions after each gap (nor the revisions of their streams).
#[test]
fn an_export_with_removed_events_says_that_positions_move() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    let three = "{\"type\":\"A\",\"stream\":\"s\"}\n{\"type\":\"B\",\"stream\":\"s\"}\n{\"type\":\"C\",\"stream\":\"s\"}\n";
    ok(&["append", d], three);
    let clean = gesta().args(["export", d]).assert().success();
    let said = String::from_utf8_lossy(&clean.get_output().stderr).to_string();
    assert!(!said.contains("removed"), "{said}");
    ok(&["remove", d, "--position", "2", "--yes"], "");
    let exported = gesta().args(["export", d]).assert().success();
    let out = &exported.get_output();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1 of the 3 positions hold removed events"),
        "{said}"
    );
}

/// `gesta stats` into a pipe whose reader went away ends quietly (exit 0),
/// as the commands that stream do, not with a panic.
#[test]
fn stats_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(&["append", d], EVENTS);
    let bin = assert_cmd::cargo::cargo_bin("gesta");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "(sleep 0.3; '{}' stats '{d}') | true; echo ${{PIPESTATUS[0]}}",
            bin.display()
        ))
        .output()
        .unwrap();
    let code = String::from_utf8(out.stdout).unwrap();
    assert_eq!(code.trim(), "0", "{}", String::from_utf8_lossy(&out.stderr));
}

/// A redaction that waits for `gesta compact` to erase its bytes is a
/// notice, not damage: verify succeeds. Damage to the lifecycle journal is
/// named as such, and `--repair` refuses to rebuild the index without it.
#[test]
fn verify_tells_pending_erasures_from_lifecycle_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(&["append", d], EVENTS);
    ok(&["redact", d, "--position", "2", "--yes"], "");
    let pending = gesta().args(["verify", d]).assert().success();
    let said = String::from_utf8_lossy(&pending.get_output().stdout).to_string();
    assert!(said.contains("gesta compact"), "{said}");
    assert!(said.contains("ok:"), "{said}");
    // A later entry, so that damage to the first is not a torn tail.
    ok(&["tag", d, "--add", "a:1", "--position", "1"], "");
    flip(&dir.join("LIFECYCLE"), 40);
    let damaged = gesta().args(["verify", d]).assert().code(1);
    let said = String::from_utf8_lossy(&damaged.get_output().stderr).to_string();
    assert!(said.contains("in the lifecycle journal"), "{said}");
    let refused = gesta().args(["verify", d, "--repair"]).assert().failure();
    let said = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(said.contains("nothing was repaired"), "{said}");
    assert!(dir.join("LIFECYCLE").is_file());
}
