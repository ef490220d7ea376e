//! `gesta backup DIR DEST`: the copy opens, verifies and reads as the
//! store did; an existing destination, a missing store and a store open
//! elsewhere are refused; an unfinished backup is refused by every command.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn gesta() -> Command {
    Command::cargo_bin("gesta").expect("the gesta binary is built")
}

const EVENTS: &str = r#"{"type":"CourseDefined","tags":["course:c1"],"data":{"capacity":2}}
{"type":"StudentSubscribed","tags":["course:c1","student:s1"],"data":{"student":"s1"}}
{"type":"StudentSubscribed","tags":["course:c1","student:s2"],"data":"s2"}
"#;

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success();
    String::from_utf8(out.get_output().stdout.clone()).expect("utf-8 output")
}

#[test]
fn backup_copies_a_store_that_verifies_and_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let dest = tmp.path().join("copy");
    let (d, b) = (dir.to_str().unwrap(), dest.to_str().unwrap());
    gesta()
        .args(["append", d])
        .write_stdin(EVENTS)
        .assert()
        .success();
    gesta()
        .args(["tag", d, "--add", "vip", "--tag", "student:s2"])
        .assert()
        .success();

    let out = stdout(gesta().args(["backup", d, b]));
    assert!(out.contains("backed up positions 1..=3"), "{out}");
    assert!(out.contains("1 lifecycle entry"), "{out}");
    assert!(!tmp.path().join("copy.partial").exists());

    gesta().args(["verify", b]).assert().success();
    let original = stdout(gesta().args(["read", d]));
    let copy = stdout(gesta().args(["read", b]));
    assert_eq!(copy, original);
    assert_eq!(copy.lines().count(), 3);
    let vip = stdout(gesta().args(["read", b, "--tag", "vip"]));
    assert_eq!(vip.lines().count(), 1, "the added tag came along: {vip}");

    // The destination must be new.
    gesta()
        .args(["backup", d, b])
        .assert()
        .failure()
        .stderr(contains("already exists"));
    // DIR must be a store.
    gesta()
        .args(["backup", tmp.path().join("none").to_str().unwrap(), b])
        .assert()
        .failure()
        .stderr(contains("no Gesta store"));
}

#[test]
fn an_unfinished_backup_is_refused_and_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    gesta()
        .args(["append", d])
        .write_stdin(EVENTS)
        .assert()
        .success();
    // What a backup killed midway leaves: a store-like directory with the
    // marker.
    let partial = tmp.path().join("copy.partial");
    std::fs::create_dir_all(partial.join("wal")).unwrap();
    std::fs::write(partial.join(gesta::BACKUP_INCOMPLETE), b"").unwrap();
    gesta()
        .args(["read", partial.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains("unfinished backup"));
    let dest = tmp.path().join("copy");
    gesta()
        .args(["backup", d, dest.to_str().unwrap()])
        .assert()
        .success();
    assert!(!partial.exists());
    gesta()
        .args(["verify", dest.to_str().unwrap()])
        .assert()
        .success();
}

#[test]
fn a_store_open_elsewhere_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = gesta::Store::open(&dir).unwrap();
    store.append(vec![gesta::NewEvent::new("T", "x")]).unwrap();
    gesta()
        .args([
            "backup",
            dir.to_str().unwrap(),
            tmp.path().join("copy").to_str().unwrap(),
        ])
        .assert()
        .failure()
        .stderr(contains("locked").and(contains("Store::backup")));
    store.close().unwrap();
}
